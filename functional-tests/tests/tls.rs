//! Nodes reached over TCP with TLS client certificates: the second engine listens on
//! `$WHARF_TEST_DOCKER2_TLS` (`https://127.0.0.1:23760`, set by `scripts/dockerd2.sh start`)
//! and only answers clients whose certificate its CA (`$WHARF_TEST_DOCKER2_TLS_DIR/ca.pem`)
//! signed. wharf must get in with such a certificate, in the key formats people hand it, and
//! be turned away without one, with one from another CA, or when it does not trust the engine.
//!
//! Throwaway CAs and client certificates are made in temp dirs with `openssl`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wharf::config::ExecutorConfig;
use wharf::docker::{DockerClient, DockerError};
use wharf::engine::NodePool;
use wharf::model::node::{NodeRecord, NodeTls};
use wharf::store::Store;

const ADDRESS_VAR: &str = "WHARF_TEST_DOCKER2_TLS";
const DIR_VAR: &str = "WHARF_TEST_DOCKER2_TLS_DIR";
const TIMEOUT: Duration = Duration::from_secs(10);

/// The engine's TLS address and the directory of its certificates.
struct TlsEngine {
    address: String,
    dir: PathBuf,
}

impl TlsEngine {
    /// The client certificate `scripts/dockerd2.sh` made (ECDSA P-256, PKCS#8).
    fn client(&self) -> NodeTls {
        tls_files(&self.dir.join("ca.pem"), &self.dir.join("cert.pem"), &self.dir.join("key.pem"))
    }

    /// The CA that signs the certificates this engine accepts.
    fn ca(&self) -> Issuer {
        Issuer { cert: self.dir.join("ca.pem"), key: self.dir.join("ca-key.pem") }
    }

    /// `https://127.0.0.1:PORT` as `tcp://127.0.0.1:PORT`, which wharf reaches without TLS.
    fn plain_address(&self) -> String {
        self.address.replacen("https://", "tcp://", 1)
    }
}

/// The TLS engine, or `None` (after saying why) when the variables are unset; panics on CI.
fn engine_or_skip() -> Option<TlsEngine> {
    wharf::install_crypto_provider();
    let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var(ADDRESS_VAR), var(DIR_VAR)) {
        (Some(address), Some(dir)) => Some(TlsEngine { address, dir: PathBuf::from(dir) }),
        _ => {
            let why =
                format!("{ADDRESS_VAR} or {DIR_VAR} is not set (eval \"$(scripts/dockerd2.sh start)\" sets them)");
            if functional_tests::engine::on_ci() {
                panic!("{why}; CI=true needs the TLS engine (scripts/test.sh starts it)");
            }
            eprintln!("skipping: {why}");
            None
        }
    }
}

fn tls_files(ca: &Path, cert: &Path, key: &Path) -> NodeTls {
    NodeTls { ca: path_text(ca), cert: path_text(cert), key: path_text(key) }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Runs `openssl args` in `dir`; panics with its error output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run openssl (apt-get install openssl): {err}"));
    assert!(out.status.success(), "openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A private key format, as `openssl` writes it.
#[derive(Debug, Clone, Copy)]
enum KeyFormat {
    EcPkcs8,
    EcSec1,
    RsaPkcs1,
    RsaPkcs8,
}

impl KeyFormat {
    /// Writes a new key in this format to `dir/name`.
    fn generate(self, dir: &Path, name: &str) {
        let args: &[&str] = match self {
            KeyFormat::EcPkcs8 => &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name],
            KeyFormat::EcSec1 => &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name],
            KeyFormat::RsaPkcs1 => &["genrsa", "-traditional", "-out", name, "2048"],
            KeyFormat::RsaPkcs8 => &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", name],
        };
        openssl(dir, args);
        let pem = std::fs::read_to_string(dir.join(name)).expect("read the key openssl wrote");
        assert!(pem.starts_with(self.pem_header()), "{self:?} key starts {:?}", pem.lines().next());
    }

    fn pem_header(self) -> &'static str {
        match self {
            KeyFormat::EcPkcs8 | KeyFormat::RsaPkcs8 => "-----BEGIN PRIVATE KEY-----",
            KeyFormat::EcSec1 => "-----BEGIN EC PRIVATE KEY-----",
            KeyFormat::RsaPkcs1 => "-----BEGIN RSA PRIVATE KEY-----",
        }
    }
}

/// A CA's certificate and key.
struct Issuer {
    cert: PathBuf,
    key: PathBuf,
}

/// Signs a certificate for the key `dir/key_name` with `extensions`; `None` signs it with itself.
fn sign(dir: &Path, key_name: &str, subject: &str, extensions: &str, issuer: Option<&Issuer>, out: &str) {
    let stem = out.trim_end_matches(".pem");
    let (csr, ext) = (format!("{stem}.csr"), format!("{stem}.ext"));
    std::fs::write(dir.join(&ext), extensions).expect("write extensions");
    openssl(dir, &["req", "-new", "-key", key_name, "-subj", &format!("/CN={subject}"), "-out", &csr]);
    let serial = format!("0x{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let signer: Vec<String> = match issuer {
        Some(issuer) => vec!["-CA".into(), path_text(&issuer.cert), "-CAkey".into(), path_text(&issuer.key)],
        None => vec!["-signkey".into(), key_name.into()],
    };
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &csr,
        "-set_serial",
        &serial,
        "-days",
        "2",
        "-sha256",
        "-extfile",
        &ext,
        "-out",
        out,
    ];
    args.extend(signer.iter().map(String::as_str));
    openssl(dir, &args);
}

/// A new CA of no engine's, in `dir`.
fn stranger_ca(dir: &Path) -> Issuer {
    KeyFormat::EcPkcs8.generate(dir, "stranger-ca-key.pem");
    let extensions = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
    sign(dir, "stranger-ca-key.pem", "stranger CA", extensions, None, "stranger-ca.pem");
    Issuer { cert: dir.join("stranger-ca.pem"), key: dir.join("stranger-ca-key.pem") }
}

/// A new client certificate `{name}-cert.pem` for a new key `{name}-key.pem` in `format`,
/// signed by `issuer`; returns the two paths.
fn client_cert(dir: &Path, name: &str, format: KeyFormat, issuer: &Issuer) -> (PathBuf, PathBuf) {
    let (cert, key) = (format!("{name}-cert.pem"), format!("{name}-key.pem"));
    format.generate(dir, &key);
    let extensions =
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n";
    sign(dir, &key, name, extensions, Some(issuer), &cert);
    (dir.join(cert), dir.join(key))
}

/// Connects as node `node` and pings; the error says what went wrong.
async fn connect_and_ping(node: &str, address: &str, tls: Option<&NodeTls>) -> Result<DockerClient, DockerError> {
    let client = DockerClient::connect(node, address, tls, TIMEOUT).await?;
    client.ping().await?;
    Ok(client)
}

/// `err` and its sources, outermost first.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

/// Asserts that connecting failed as the node's fault and that the error names the node.
fn assert_refused(result: Result<DockerClient, DockerError>, node: &str) {
    let err = result.expect_err("the engine must refuse this client");
    eprintln!("{node}: refused as expected: {}", chain(&err));
    assert!(err.is_node_fault(), "{err}");
    assert_eq!(err.node(), node);
    assert!(err.to_string().contains(node), "{err}");
}

#[tokio::test]
async fn client_certificate_signed_by_the_engines_ca_gets_in() {
    let Some(engine) = engine_or_skip() else { return };
    let client = connect_and_ping("tls-node", &engine.address, Some(&engine.client()))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    // A real call beyond the ping: what the probe does when it first meets a node.
    client.containers_labelled(wharf::docker::LABEL_SERVICE, "wharf-tls-test").await.expect("list containers over TLS");
}

#[tokio::test]
async fn client_without_tls_is_refused() {
    let Some(engine) = engine_or_skip() else { return };
    assert_refused(connect_and_ping("plain-node", &engine.plain_address(), None).await, "plain-node");
}

#[tokio::test]
async fn client_certificate_of_another_ca_is_refused() {
    let Some(engine) = engine_or_skip() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = client_cert(dir.path(), "stranger", KeyFormat::EcPkcs8, &stranger_ca(dir.path()));
    let tls = tls_files(&engine.dir.join("ca.pem"), &cert, &key);
    assert_refused(connect_and_ping("stranger-node", &engine.address, Some(&tls)).await, "stranger-node");
}

#[tokio::test]
async fn missing_client_certificate_files_are_refused() {
    let Some(engine) = engine_or_skip() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = tls_files(&engine.dir.join("ca.pem"), &dir.path().join("no-cert.pem"), &dir.path().join("no-key.pem"));
    assert_refused(connect_and_ping("no-cert-node", &engine.address, Some(&tls)).await, "no-cert-node");
}

#[tokio::test]
async fn engine_signed_by_a_ca_the_client_does_not_trust_is_refused() {
    let Some(engine) = engine_or_skip() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let stranger = stranger_ca(dir.path());
    let mut tls = engine.client();
    tls.ca = path_text(&stranger.cert);
    assert_refused(connect_and_ping("distrustful-node", &engine.address, Some(&tls)).await, "distrustful-node");
}

#[tokio::test]
async fn client_keys_in_the_usual_formats_get_in() {
    let Some(engine) = engine_or_skip() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for format in [KeyFormat::EcPkcs8, KeyFormat::EcSec1, KeyFormat::RsaPkcs1, KeyFormat::RsaPkcs8] {
        if let Err(err) = check(&engine, dir.path(), format).await {
            failures.push(format!("{format:?} ({}): {}", format.pem_header(), chain(&err)));
        }
    }
    assert!(failures.is_empty(), "client keys refused:\n{}", failures.join("\n"));

    async fn check(engine: &TlsEngine, dir: &Path, format: KeyFormat) -> Result<DockerClient, DockerError> {
        let name = format!("{format:?}").to_lowercase();
        let (cert, key) = client_cert(dir, &name, format, &engine.ca());
        connect_and_ping(&name, &engine.address, Some(&tls_files(&engine.dir.join("ca.pem"), &cert, &key))).await
    }
}

/// The path the service takes: nodes stored with their TLS files, probed by the pool.
#[tokio::test]
async fn stored_tls_node_is_probed_healthy_and_a_stranger_unhealthy() {
    let Some(engine) = engine_or_skip() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = client_cert(dir.path(), "stranger", KeyFormat::EcPkcs8, &stranger_ca(dir.path()));
    let store = Store::open(&format!("sqlite://{}/wharf.db", dir.path().display()), 2).await.expect("open store");
    let nodes = [("trusted", engine.client()), ("stranger", tls_files(&engine.dir.join("ca.pem"), &cert, &key))];
    for (name, tls) in nodes {
        let record = NodeRecord {
            name: name.to_owned(),
            address: engine.address.clone(),
            image: "wharf/actor:latest".into(),
            capacity: 1,
            drained: false,
            tls: Some(tls),
            source: "api".into(),
            created_at: wharf::model::now_millis(),
        };
        store.create_node(&record).await.expect("register node");
    }
    let config = ExecutorConfig {
        service_name: format!("wharf-tls-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]),
        probe_interval_secs: 1,
        engine_timeout_secs: 10,
        unhealthy_after: 1,
        max_attempts: 1,
        log_tail_lines: 20,
        ..ExecutorConfig::default()
    };
    let membership = wharf::engine::Membership::new(&config, "test");
    let pool = NodePool::load(store, config, membership).await.expect("load pool");
    pool.probe_all().await;
    let view = pool.view();
    let node = |name: &str| view.iter().find(|n| n.name == name).expect("node in the pool view");
    let (trusted, stranger) = (node("trusted"), node("stranger"));
    assert_eq!(trusted.health, "healthy", "{:?}", trusted.last_error);
    assert!(trusted.node_info.tls);
    assert_eq!(stranger.health, "unhealthy");
    let error = stranger.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("stranger") && error.contains(&engine.address), "{error}");
}
