//! The service's settings: a TOML file, then `WHARF_<SECTION>_<KEY>` environment variables,
//! then command-line flags, each layer overriding the one before. Every setting has a safe
//! default, so `wharf serve` with no file at all starts a loopback-only service on SQLite.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Everything `wharf serve` can be told. `config/wharf.toml` documents each key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub acl: AclConfig,
    pub blobs: BlobConfig,
    pub log: LogConfig,
    pub executor: ExecutorConfig,
    pub limits: LimitsConfig,
    pub callbacks: CallbackConfig,
    pub scripts: ScriptConfig,
    pub nodes: Vec<NodeConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port the HTTP API listens on.
    pub bind: String,
    /// Largest JSON request body in bytes (blob uploads have their own limit).
    pub max_json_body: u64,
    /// Seconds to let in-flight requests finish at shutdown.
    pub shutdown_grace_secs: u64,
    /// Folder of definitions loaded at start (`actors/*.toml`, `state_machines/*.rhai`);
    /// a missing folder is skipped. Relative to the config file's folder when the file names
    /// it, else to the working folder.
    pub definitions: String,
    /// HTTPS, and client certificates; all empty: plain HTTP.
    pub tls: ServerTlsConfig,
}

/// The service's own certificate, and the CAs whose client certificates it accepts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    /// PEM file: the service's certificate, then its chain. Empty: plain HTTP.
    pub cert: String,
    /// PEM file: the private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// PEM bundle of CAs; set, every connection must present a client certificate one of
    /// them signed, or the TLS handshake fails.
    pub client_ca: String,
}

impl ServerTlsConfig {
    /// Whether the service speaks HTTPS.
    pub fn enabled(&self) -> bool {
        !self.cert.is_empty()
    }

    /// Whether every connection must present a client certificate.
    pub fn requires_client_certificate(&self) -> bool {
        self.enabled() && !self.client_ca.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path` (embedded, created on first start) or `postgres://user:pass@host/db`.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct AuthConfig {
    /// Bearer tokens accepted on the API. Empty: no token needed (loopback binds only).
    pub tokens: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct AclConfig {
    /// Client addresses or CIDR ranges allowed to call the service. Empty: any address.
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobConfig {
    /// Size of one stored chunk of blob content, in bytes.
    pub chunk_size: u64,
    /// Largest blob accepted, in bytes; larger uploads get 413.
    pub max_size: u64,
    /// Largest blob the base64 JSON routes (`PUT /Blob`, `GET /Blob/{id}`) take or give, in
    /// bytes; larger ones get 413 pointing to the raw routes, which stream.
    pub max_inline_size: u64,
    /// Transfers of more than one chunk (raw or base64, up or down) running at once; more wait.
    pub max_concurrent_transfers: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log collectors.
    pub format: String,
    /// A tracing filter such as `info` or `wharf=debug,info`; `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// The deployment's name: the `wharf.service` label of its containers. Every process of a
    /// deployment (replicas on one database) shares it; two unrelated installations sharing
    /// an engine need distinct names.
    pub service_name: String,
    /// This process's identity among those sharing the database; empty: a new one at each
    /// start. Its instances and containers are claimed under it.
    pub process_id: String,
    /// Seconds between two heartbeats of this process.
    pub heartbeat_secs: u64,
    /// Seconds without a heartbeat after which a process is dead and another takes its work over.
    pub process_lease_secs: u64,
    /// Instances this process runs at once; the others stay queued for other processes.
    pub max_active_instances: u64,
    /// Seconds between health probes of each node.
    pub probe_interval_secs: u64,
    /// Seconds one engine call (ping, create, upload, inspect, ...) may take.
    pub engine_timeout_secs: u64,
    /// Failed probes in a row that make a node unhealthy.
    pub unhealthy_after: u32,
    /// Nodes an actor is tried on when nodes fail (not when the actor fails).
    pub max_attempts: u32,
    /// Lines of the container's log kept when an actor fails.
    pub log_tail_lines: u32,
    /// Most output files one actor may give (declared plus listed in `return.json`).
    pub max_outputs: u32,
    /// Most bytes all of one actor's outputs may hold together.
    pub max_outputs_size: u64,
    /// Bytes of each actor's stdout and stderr kept (the tail), served by
    /// `GET /StateMachineInstance/{id}/logs`.
    pub log_max_bytes: u64,
    /// Runs one warm container serves before it is replaced by a new one.
    pub warm_max_runs: u32,
    /// Seconds a warm container may wait for its instance's next run before it is removed.
    pub warm_idle_secs: u64,
    /// Bytes of the in-memory file system that holds a warm container's run directories.
    pub warm_disk_size: u64,
}

/// The service's default container limits; a state machine's or instance's override them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Bytes of memory.
    pub memory: u64,
    /// Bytes of memory plus swap; equal to `memory` means no swap.
    pub memory_swap: u64,
    /// CFS period and quota in microseconds: quota/period CPUs.
    pub cpu_period: u64,
    pub cpu_quota: u64,
    /// Most processes in one container.
    pub pids_limit: u64,
    /// Milliseconds an actor may run.
    pub execution_timeout: u64,
    /// Largest output file in bytes (also the `fsize` ulimit).
    pub output_limit: u64,
    /// Most open files per process.
    pub nofile: u64,
}

/// Deliveries of an instance's end to its `Parameters.Host`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackConfig {
    /// Key of the `X-Wharf-Signature: sha256=<hex HMAC of the body>` header; empty: unsigned.
    pub secret: String,
    /// Tries before a delivery is given up.
    pub max_attempts: u32,
    /// Wait before the first retry, in milliseconds; it doubles with each failure.
    pub initial_backoff_ms: u64,
    /// Longest wait between two tries, in seconds.
    pub max_backoff_secs: u64,
    /// Seconds one delivery may take.
    pub timeout_secs: u64,
    /// Put after `Parameters.Host`, with `{id}` replaced by the instance id, to make the
    /// callback's URL (JoyOI's OnlineJudge: `/management/judge/stagechange/{id}`); empty: `Host`.
    pub path: String,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            path: String::new(),
            secret: String::new(),
            max_attempts: 12,
            initial_backoff_ms: 1000,
            max_backoff_secs: 600,
            timeout_secs: 10,
        }
    }
}

/// Limits of state machine scripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScriptConfig {
    /// Operations one run of a script may take.
    pub max_operations: u64,
    /// Milliseconds one run of a script may take.
    pub wall_time_ms: u64,
    /// Deepest function call nesting.
    pub max_call_depth: u64,
    /// Largest string, array and map a script may build.
    pub max_string_size: u64,
    pub max_array_size: u64,
    pub max_map_size: u64,
    /// Scripts evaluated at the same time (each on a thread); waiting instances need none.
    pub max_concurrent_runs: u64,
    /// Scripts that wait on their calls live, each on a thread of its own, and go on when a
    /// call ends instead of being replayed from the top; beyond it (or 0), waiting scripts are
    /// replayed from their record.
    pub max_live: u64,
}

impl Default for ScriptConfig {
    fn default() -> Self {
        Self {
            max_operations: 1_000_000,
            wall_time_ms: 10_000,
            max_call_depth: 64,
            max_string_size: 4 << 20,
            max_array_size: 100_000,
            max_map_size: 10_000,
            max_concurrent_runs: 4,
            max_live: 64,
        }
    }
}

/// A Docker engine to run actors on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    /// `unix:///var/run/docker.sock`, `tcp://host:2375`, or `https://host:2376` with `tls`.
    pub address: String,
    #[serde(default = "default_image")]
    pub image: String,
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Client certificate files for a TLS-protected engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

pub const DEFAULT_IMAGE: &str = "wharf/actor:latest";
pub const DEFAULT_CAPACITY: u32 = 8;

fn default_image() -> String {
    DEFAULT_IMAGE.to_owned()
}

fn default_capacity() -> u32 {
    DEFAULT_CAPACITY
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            max_json_body: 64 << 20,
            shutdown_grace_secs: 30,
            definitions: "config/definitions".into(),
            tls: ServerTlsConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "sqlite://data/wharf.db".into(), max_connections: 8 }
    }
}

impl Default for BlobConfig {
    fn default() -> Self {
        Self { chunk_size: 3 << 20, max_size: 1 << 30, max_inline_size: 16 << 20, max_concurrent_transfers: 8 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: "text".into(), filter: "info".into() }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            service_name: "wharf".into(),
            process_id: String::new(),
            heartbeat_secs: 2,
            process_lease_secs: 10,
            max_active_instances: 1000,
            probe_interval_secs: 5,
            engine_timeout_secs: 30,
            unhealthy_after: 3,
            max_attempts: 3,
            log_tail_lines: 20,
            max_outputs: 1000,
            max_outputs_size: 256 << 20,
            log_max_bytes: 1 << 20,
            warm_max_runs: 100,
            warm_idle_secs: 30,
            warm_disk_size: 256 << 20,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            memory: 256 << 20,
            memory_swap: 256 << 20,
            cpu_period: 100_000,
            cpu_quota: 100_000,
            pids_limit: 256,
            execution_timeout: 30_000,
            output_limit: 16 << 20,
            nofile: 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            acl: AclConfig::default(),
            blobs: BlobConfig::default(),
            log: LogConfig::default(),
            executor: ExecutorConfig::default(),
            limits: LimitsConfig::default(),
            callbacks: CallbackConfig::default(),
            scripts: ScriptConfig::default(),
            nodes: vec![NodeConfig {
                name: "local".into(),
                address: "unix:///var/run/docker.sock".into(),
                image: default_image(),
                capacity: DEFAULT_CAPACITY,
                tls: None,
            }],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("setting `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl Config {
    /// Reads `path` (when given), applies `WHARF_*` variables from `env`, and validates.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let (mut table, origin) = match path {
            Some(path) => {
                let origin = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: origin.clone(), source })?;
                let table: toml::Table = toml::from_str(&text)
                    .map_err(|e| ConfigError::Parse { path: origin.clone(), message: e.to_string() })?;
                (table, origin)
            }
            None => (toml::Table::new(), "(defaults)".to_owned()),
        };
        // A relative definitions folder named in the file is relative to the file's folder.
        let definitions_in_file =
            table.get("server").and_then(|s| s.get("definitions")).and_then(|d| d.as_str()).map(str::to_owned);
        apply_env(&mut table, env)?;
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse { path: origin, message: e.to_string() })?;
        if let (Some(path), Some(named)) = (path, definitions_in_file)
            && config.server.definitions == named
            && !named.is_empty()
            && Path::new(&named).is_relative()
        {
            let folder = path.parent().unwrap_or(Path::new(""));
            config.server.definitions = folder.join(&named).display().to_string();
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot: addresses, sizes, names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid { key: key.into(), message };
        self.bind_addr()?;
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres")) {
            return Err(invalid(
                "database.url",
                format!("`{}` is neither sqlite://… nor postgres://…", self.database.url),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1".into()));
        }
        if self.blobs.chunk_size < 1024 || self.blobs.chunk_size > (64 << 20) {
            return Err(invalid("blobs.chunk_size", "must be between 1 KiB and 64 MiB".into()));
        }
        if self.blobs.max_size == 0 {
            return Err(invalid("blobs.max_size", "must be at least 1 byte".into()));
        }
        if self.blobs.max_concurrent_transfers == 0 {
            return Err(invalid("blobs.max_concurrent_transfers", "must be at least 1".into()));
        }
        crate::model::validate_name(&self.executor.service_name).map_err(|m| invalid("executor.service_name", m))?;
        if !self.executor.process_id.is_empty() {
            crate::model::validate_name(&self.executor.process_id).map_err(|m| invalid("executor.process_id", m))?;
        }
        if self.executor.process_lease_secs < 2 * self.executor.heartbeat_secs.max(1) {
            return Err(invalid(
                "executor.process_lease_secs",
                format!(
                    "must be at least twice executor.heartbeat_secs ({}), or a slow heartbeat makes a live process look dead",
                    self.executor.heartbeat_secs
                ),
            ));
        }
        for (key, value) in [
            ("executor.probe_interval_secs", self.executor.probe_interval_secs),
            ("executor.heartbeat_secs", self.executor.heartbeat_secs),
            ("executor.max_active_instances", self.executor.max_active_instances),
            ("executor.engine_timeout_secs", self.executor.engine_timeout_secs),
            ("executor.unhealthy_after", u64::from(self.executor.unhealthy_after)),
            ("executor.max_attempts", u64::from(self.executor.max_attempts)),
            ("executor.log_max_bytes", self.executor.log_max_bytes),
            ("limits.cpu_period", self.limits.cpu_period),
            ("limits.cpu_quota", self.limits.cpu_quota),
            ("limits.pids_limit", self.limits.pids_limit),
            ("limits.execution_timeout", self.limits.execution_timeout),
            ("limits.output_limit", self.limits.output_limit),
            ("limits.nofile", self.limits.nofile),
            ("callbacks.max_attempts", u64::from(self.callbacks.max_attempts)),
            ("scripts.max_operations", self.scripts.max_operations),
            ("scripts.wall_time_ms", self.scripts.wall_time_ms),
            ("scripts.max_call_depth", self.scripts.max_call_depth),
            ("scripts.max_string_size", self.scripts.max_string_size),
            ("scripts.max_array_size", self.scripts.max_array_size),
            ("scripts.max_map_size", self.scripts.max_map_size),
            ("scripts.max_concurrent_runs", self.scripts.max_concurrent_runs),
            ("callbacks.initial_backoff_ms", self.callbacks.initial_backoff_ms),
            ("callbacks.max_backoff_secs", self.callbacks.max_backoff_secs),
            ("callbacks.timeout_secs", self.callbacks.timeout_secs),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if self.limits.memory < 4 << 20 {
            return Err(invalid("limits.memory", "must be at least 4 MiB (4194304)".into()));
        }
        if self.limits.memory_swap < self.limits.memory {
            return Err(invalid("limits.memory_swap", "must be at least limits.memory".into()));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", format!("`{}` is neither `text` nor `json`", self.log.format)));
        }
        for (i, rule) in self.acl.allow.iter().enumerate() {
            crate::api::access::IpRule::parse(rule).map_err(|message| invalid(&format!("acl.allow[{i}]"), message))?;
        }
        let tls = &self.server.tls;
        if tls.cert.is_empty() != tls.key.is_empty() {
            let (key, other) =
                if tls.cert.is_empty() { ("server.tls.cert", "key") } else { ("server.tls.key", "cert") };
            return Err(invalid(key, format!("must be set with server.tls.{other}: give both files, or neither")));
        }
        if !tls.client_ca.is_empty() && !tls.enabled() {
            return Err(invalid(
                "server.tls.client_ca",
                "client certificates need HTTPS: set server.tls.cert and server.tls.key too".into(),
            ));
        }
        if self.auth.tokens.iter().any(|t| t.trim().is_empty()) {
            return Err(invalid("auth.tokens", "a token must not be empty".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            crate::model::node::validate_node_name(&node.name).map_err(|m| invalid(&format!("nodes[{i}].name"), m))?;
            crate::model::node::validate_address(&node.address)
                .map_err(|m| invalid(&format!("nodes[{i}].address"), m))?;
            if node.capacity == 0 {
                return Err(invalid(&format!("nodes[{i}].capacity"), "must be at least 1".into()));
            }
            if !seen.insert(node.name.as_str()) {
                return Err(invalid(&format!("nodes[{i}].name"), format!("node `{}` is listed twice", node.name)));
            }
        }
        Ok(())
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.bind.parse().map_err(|e| ConfigError::Invalid {
            key: "server.bind".into(),
            message: format!("`{}` is not an address like 127.0.0.1:8080 ({e})", self.server.bind),
        })
    }
}

/// Overrides `[section] key` with `WHARF_SECTION_KEY` for every scalar or list setting, and
/// `[section.table] key` with `WHARF_SECTION_TABLE_KEY`, parsing the value as the setting's
/// type (lists are comma-separated).
fn apply_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("WHARF_")).collect();
    for (section, keys) in &defaults {
        let toml::Value::Table(keys) = keys else { continue };
        apply_env_to(table, section, keys, &env)?;
    }
    Ok(())
}

/// Applies the variables of the settings in `defaults` (the defaults of the table at `path`,
/// dotted) to that table of the file.
fn apply_env_to(
    file: &mut toml::Table,
    path: &str,
    defaults: &toml::Table,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    for (key, default) in defaults {
        let path_of_key = format!("{path}.{key}");
        if let toml::Value::Table(inner) = default {
            apply_env_to(file, &path_of_key, inner, env)?;
            continue;
        }
        let var = format!("WHARF_{}", path_of_key.replace('.', "_").to_uppercase());
        let Some((_, raw)) = env.iter().find(|(k, _)| *k == var) else { continue };
        let value = parse_env_value(raw, default).map_err(|message| ConfigError::Env { var: var.clone(), message })?;
        let mut table = &mut *file;
        for part in path.split('.') {
            let entry = table.entry(part.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Env {
                        var,
                        message: format!("`{path}` in the config file is not a table"),
                    });
                }
            };
        }
        table.insert(key.clone(), value);
    }
    Ok(())
}

fn parse_env_value(raw: &str, like: &toml::Value) -> Result<toml::Value, String> {
    match like {
        toml::Value::Integer(_) => {
            raw.trim().parse::<i64>().map(toml::Value::Integer).map_err(|_| format!("`{raw}` is not a whole number"))
        }
        toml::Value::Boolean(_) => match raw.trim() {
            "true" | "1" => Ok(toml::Value::Boolean(true)),
            "false" | "0" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("`{raw}` is not true or false")),
        },
        toml::Value::Array(_) => Ok(toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        )),
        _ => Ok(toml::Value::String(raw.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write temp file");
        file
    }

    #[test]
    fn shipped_config_file_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/wharf.toml");
        let mut loaded = Config::load(Some(&path), []).expect("config/wharf.toml loads");
        let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/definitions");
        assert_eq!(Path::new(&loaded.server.definitions), beside, "definitions are found beside the file");
        loaded.server.definitions = Config::default().server.definitions;
        assert_eq!(loaded, Config::default());
    }

    #[test]
    fn definitions_named_in_a_file_are_relative_to_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wharf.toml");
        std::fs::write(&path, "[server]\ndefinitions = \"defs\"\n").expect("write");
        let config = Config::load(Some(&path), []).expect("loads");
        assert_eq!(Path::new(&config.server.definitions), dir.path().join("defs"));
        let config = Config::load(Some(&path), env(&[("WHARF_SERVER_DEFINITIONS", "mine")])).expect("loads");
        assert_eq!(config.server.definitions, "mine", "the environment's stays as given");
        std::fs::write(&path, "[server]\ndefinitions = \"/srv/defs\"\n").expect("write");
        assert_eq!(Config::load(Some(&path), []).expect("loads").server.definitions, "/srv/defs");
        std::fs::write(&path, "[server]\nbind = \"127.0.0.1:9\"\n").expect("write");
        let config = Config::load(Some(&path), []).expect("loads");
        assert_eq!(config.server.definitions, "config/definitions", "not named: the default, from the working folder");
    }

    #[test]
    fn env_overrides_file_and_parses_types() {
        let file = write("[server]\nbind = \"127.0.0.1:9000\"\n[blobs]\nmax_size = 10\n");
        let config = Config::load(
            Some(file.path()),
            env(&[("WHARF_BLOBS_MAX_SIZE", "2048"), ("WHARF_AUTH_TOKENS", "a, b"), ("WHARF_OTHER", "x")]),
        )
        .expect("loads");
        assert_eq!(config.server.bind, "127.0.0.1:9000");
        assert_eq!(config.blobs.max_size, 2048);
        assert_eq!(config.auth.tokens, vec!["a", "b"]);
    }

    #[test]
    fn env_reaches_tables_inside_sections() {
        let file = write("[server]\nbind = \"127.0.0.1:9000\"\n[server.tls]\ncert = \"from-file.pem\"\n");
        let config = Config::load(
            Some(file.path()),
            env(&[
                ("WHARF_SERVER_TLS_KEY", "key.pem"),
                ("WHARF_SERVER_TLS_CLIENT_CA", "ca.pem"),
                ("WHARF_SERVER_SHUTDOWN_GRACE_SECS", "3"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.server.tls.cert, "from-file.pem");
        assert_eq!(config.server.tls.key, "key.pem");
        assert_eq!(config.server.tls.client_ca, "ca.pem");
        assert_eq!(config.server.shutdown_grace_secs, 3);
        assert_eq!(config.server.bind, "127.0.0.1:9000");

        let config = Config::load(None, env(&[("WHARF_SERVER_TLS_CERT", "c.pem"), ("WHARF_SERVER_TLS_KEY", "k.pem")]))
            .expect("loads without a file");
        assert!(config.server.tls.enabled() && !config.server.tls.requires_client_certificate());
    }

    #[test]
    fn errors_name_the_key() {
        fn check(file: &str, env_pairs: &[(&str, &str)], needle: &str) {
            let file = write(file);
            let err = Config::load(Some(file.path()), env(env_pairs)).expect_err("must fail").to_string();
            assert!(err.contains(needle), "`{err}` should mention `{needle}`");
        }
        check("[server]\nbnd = \"x\"\n", &[], "bnd");
        check("[blobs]\nmax_size = \"big\"\n", &[], "max_size");
        check("[server]\nbind = \"nowhere\"\n", &[], "server.bind");
        check("", &[("WHARF_BLOBS_CHUNK_SIZE", "lots")], "WHARF_BLOBS_CHUNK_SIZE");
        check("[log]\nformat = \"xml\"\n", &[], "log.format");
        check("[acl]\nallow = [\"10.0.0.0/99\"]\n", &[], "acl.allow[0]");
        check("[[nodes]]\nname = \"a\"\naddress = \"ftp://x\"\n", &[], "nodes[0].address");
        check("[database]\nurl = \"mysql://x\"\n", &[], "database.url");
        check("this is not toml", &[], "config file");
        check("[server.tls]\ncert = \"c.pem\"\n", &[], "server.tls.key");
        check("", &[("WHARF_SERVER_TLS_KEY", "k.pem")], "server.tls.cert");
        check("[server.tls]\nclient_ca = \"ca.pem\"\n", &[], "server.tls.client_ca");
        check("[server]\ntls = 3\n", &[("WHARF_SERVER_TLS_CERT", "c.pem")], "WHARF_SERVER_TLS_CERT");
    }
}
