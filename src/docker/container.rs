//! One actor's container on one node: create (labelled, limited, isolated), upload the
//! inputs and script as one archive, start, wait under the execution timeout, read the exit
//! state, collect outputs and the log tail, remove (or keep, for debugging).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, KillContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::archive::{self, Extracted};
use super::outputs::{self, OutputSink};
use super::{DockerClient, DockerError};
use crate::model::log::ContainerLog;

/// A stream of an input's bytes, made anew for each try (a retry on another node reads again).
pub type ContentStream = futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>;

/// Where an input's bytes come from.
#[derive(Clone)]
pub enum InputContent {
    Bytes(bytes::Bytes),
    /// Makes a stream of exactly the input's `size` bytes.
    Stream(std::sync::Arc<dyn Fn() -> ContentStream + Send + Sync>),
}

/// A file put into `/workdir` before the actor starts.
#[derive(Clone)]
pub struct InputFile {
    pub name: String,
    pub size: u64,
    pub content: InputContent,
}

impl std::fmt::Debug for InputFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputFile").field("name", &self.name).field("size", &self.size).finish()
    }
}

impl InputFile {
    pub fn bytes(name: &str, content: impl Into<bytes::Bytes>) -> InputFile {
        let content = content.into();
        InputFile { name: name.to_owned(), size: content.len() as u64, content: InputContent::Bytes(content) }
    }
}

/// Concrete limits of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub memory: i64,
    pub memory_swap: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub pids: i64,
    pub ulimits: Vec<(String, i64)>,
    pub execution_timeout: Duration,
    pub enable_network: bool,
    pub output_limit: u64,
}

/// Everything needed to run one actor in a container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    pub script: String,
    pub inputs: Vec<InputFile>,
    /// Files the actor must leave in `/workdir`; `return.json` may list more.
    pub outputs: Vec<String>,
    pub limits: Limits,
    /// Keep the stopped container for inspection instead of removing it.
    pub keep: bool,
    pub log_tail_lines: usize,
    /// Most outputs (declared and listed) and most bytes of all of them together.
    pub max_outputs: usize,
    pub max_outputs_size: u64,
    /// Bytes of the container's log kept (its tail).
    pub log_max_bytes: u64,
}

/// Where the time of one container went.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub create: Duration,
    pub upload: Duration,
    pub start: Duration,
    pub wait: Duration,
    pub collect: Duration,
    pub remove: Duration,
}

/// How a container ended and what it left.
#[derive(Debug, Clone)]
pub struct ContainerOutcome {
    pub container_id: String,
    pub exit_code: i64,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub cancelled: bool,
    /// Outputs handed to the run's `OutputSink`, declared ones first.
    pub outputs: Vec<String>,
    pub missing: Vec<String>,
    pub too_large: Vec<String>,
    /// Why outputs were not all collected: too many, too large together, out of time.
    pub outputs_problem: Option<String>,
    pub log_tail: String,
    /// Everything it printed, bounded by `log_max_bytes`.
    pub log: ContainerLog,
    pub timings: Timings,
}

/// JoyOI's `/workdir/return.json`.
#[derive(serde::Deserialize)]
pub(super) struct ReturnFile {
    #[serde(alias = "outputs", default)]
    #[serde(rename = "Outputs")]
    pub(super) outputs: Vec<String>,
}

const MAX_LOG_TAIL: usize = 4096;

impl DockerClient {
    /// Creates the container; returns its id.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let limits = &spec.limits;
        let shebang = spec.script.starts_with("#!");
        let host_config = host_config(limits, spec.log_max_bytes);
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(if shebang {
                vec!["/actor/run".into()]
            } else {
                vec!["/bin/sh".into(), "/actor/run".into()]
            }),
            cmd: Some(vec![]),
            working_dir: Some("/workdir".into()),
            user: Some(format!("{0}:{0}", archive::ACTOR_UID)),
            env: Some(vec!["HOME=/workdir".into(), "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into()]),
            labels: Some(spec.labels.clone()),
            network_disabled: Some(!limits.enable_network),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let created = self.call("creating a container", self.docker.create_container(Some(options), body)).await?;
        Ok(created.id)
    }

    /// Runs a created container to its end and collects what it left. The container stays,
    /// for the caller to remove once it has recorded the outcome (or to keep, for debugging);
    /// on an error it is removed if the node allows.
    pub async fn run_container(
        &self,
        id: &str,
        spec: &ContainerSpec,
        cancel: &CancellationToken,
        mut timings: Timings,
        sink: &mut dyn OutputSink,
    ) -> Result<ContainerOutcome, DockerError> {
        let result = self.drive(id, spec, cancel, &mut timings, sink).await;
        if result.is_err()
            && let Err(err) = self.remove_container(id).await
        {
            tracing::warn!(node = %self.node, container = %id, error = %err, "cannot remove container");
        }
        result.map(|mut outcome| {
            outcome.timings = timings;
            outcome
        })
    }

    async fn drive(
        &self,
        id: &str,
        spec: &ContainerSpec,
        cancel: &CancellationToken,
        timings: &mut Timings,
        sink: &mut dyn OutputSink,
    ) -> Result<ContainerOutcome, DockerError> {
        let clock = Instant::now();
        let tar = archive::inputs_archive(&spec.script, &spec.inputs).map_err(|e| DockerError::Broken {
            node: self.node.clone(),
            doing: "packing inputs",
            message: e.to_string(),
        })?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        // Inputs stream from their source into the engine, never whole in memory.
        let uploader = self.docker.clone().with_timeout(self.call_timeout * 20);
        let upload = uploader.upload_to_container(id, Some(options), bollard::body_try_stream(tar));
        super::timed(&self.node, "uploading inputs", self.call_timeout * 20, upload)
            .await?
            .map_err(|source| DockerError::Engine { node: self.node.clone(), doing: "uploading inputs", source })?;
        timings.upload = clock.elapsed();

        let clock = Instant::now();
        self.call("starting the container", self.docker.start_container(id, None)).await?;
        timings.start = clock.elapsed();

        let clock = Instant::now();
        let limit = spec.limits.execution_timeout;
        let collect_by = Instant::now() + limit + self.call_timeout;
        let waiter = self.docker.clone().with_timeout(limit + self.call_timeout);
        let mut wait = waiter.wait_container(id, None);
        let (mut exit_code, mut timed_out, mut cancelled) = (None, false, false);
        tokio::select! {
            next = tokio::time::timeout(limit, wait.next()) => match next {
                Ok(Some(Ok(status))) => exit_code = Some(status.status_code),
                Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => exit_code = Some(code),
                Ok(Some(Err(source))) => {
                    return Err(DockerError::Engine { node: self.node.clone(), doing: "waiting for the container", source });
                }
                Ok(None) => {
                    return Err(DockerError::Broken {
                        node: self.node.clone(),
                        doing: "waiting for the container",
                        message: "the engine closed the wait without a status".into(),
                    });
                }
                Err(_) => timed_out = true,
            },
            _ = cancel.cancelled() => cancelled = true,
        }
        drop(wait);
        if timed_out || cancelled {
            let options = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
            match self.call("killing the container", self.docker.kill_container(id, Some(options))).await {
                // 409: it ended on its own meanwhile.
                Err(DockerError::Engine {
                    source: bollard::errors::Error::DockerResponseServerError { status_code: 409, .. },
                    ..
                }) => {}
                other => other?,
            }
        }
        timings.wait = clock.elapsed();

        let clock = Instant::now();
        let inspect = self.call("inspecting the container", self.docker.inspect_container(id, None)).await?;
        let state = inspect.state.unwrap_or_default();
        use bollard::models::ContainerStateStatusEnum as Status;
        if matches!(state.status, Some(Status::REMOVING | Status::DEAD)) {
            // Removed under our feet (the engine wiped, an operator's `docker rm -f`): the
            // node lost the run, the actor did not fail.
            return Err(DockerError::Broken {
                node: self.node.clone(),
                doing: "inspecting the container",
                message: "the container was removed from the node while it ran".into(),
            });
        }
        let exit_code = exit_code.or(state.exit_code).unwrap_or(-1);
        let oom_killed = state.oom_killed.unwrap_or(false);
        let log = self.read_log(id, spec.log_max_bytes).await;
        let log_tail = log.tail_text(spec.log_tail_lines, MAX_LOG_TAIL);
        let mut outcome = ContainerOutcome {
            container_id: id.to_owned(),
            exit_code,
            timed_out,
            oom_killed,
            cancelled,
            outputs: Vec::new(),
            missing: Vec::new(),
            too_large: Vec::new(),
            outputs_problem: None,
            log_tail,
            log,
            timings: Timings::default(),
        };
        if !timed_out && !cancelled {
            self.collect_outputs(id, spec, &mut outcome, sink, cancel, collect_by).await?;
        }
        timings.collect = clock.elapsed();
        Ok(outcome)
    }

    /// Collects the declared outputs and those `return.json` lists, in one archive read of the
    /// work directory, into `sink`; by `deadline` (the execution timeout, plus one engine call).
    async fn collect_outputs(
        &self,
        id: &str,
        spec: &ContainerSpec,
        outcome: &mut ContainerOutcome,
        sink: &mut dyn OutputSink,
        cancel: &CancellationToken,
        deadline: Instant,
    ) -> Result<(), DockerError> {
        let mut wanted = spec.outputs.clone();
        if let Some(Extracted::File(bytes)) = self.fetch_file(id, "return.json", 1 << 20).await? {
            match serde_json::from_slice::<ReturnFile>(&bytes) {
                Ok(listed) => {
                    for name in listed.outputs {
                        if crate::model::blob::validate_file_name(&name).is_ok() && !wanted.contains(&name) {
                            wanted.push(name);
                        }
                    }
                }
                Err(err) => outcome.log_tail.push_str(&format!("\n(return.json is not valid: {err})")),
            }
        }
        if wanted.len() > spec.max_outputs {
            outcome.outputs_problem = Some(format!(
                "{} outputs declared and listed in return.json, more than the {} one actor may give (executor.max_outputs)",
                wanted.len(),
                spec.max_outputs
            ));
            return Ok(());
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let options = DownloadFromContainerOptionsBuilder::default().path("/workdir").build();
        let archive = outputs::archive_stream(self.docker.download_from_container(id, Some(options)));
        let wanted =
            outputs::Wanted { names: wanted, file_limit: spec.limits.output_limit, total_limit: spec.max_outputs_size };
        let found = outputs::collect(&self.node, archive, wanted, sink, cancel, deadline).await?;
        outcome.outputs = found.files;
        outcome.missing = found.missing;
        outcome.too_large = found.too_large;
        outcome.outputs_problem = found.stopped;
        outcome.cancelled |= found.cancelled;
        Ok(())
    }

    /// Reads `/workdir/<name>` out of the container; `None` when it does not exist.
    async fn fetch_file(&self, id: &str, name: &str, limit: u64) -> Result<Option<Extracted>, DockerError> {
        let options = DownloadFromContainerOptionsBuilder::default().path(&format!("/workdir/{name}")).build();
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut archive = Vec::new();
        // A tar adds headers and padding; anything beyond this is surely over the limit.
        let ceiling = limit.saturating_add(64 << 10);
        let deadline = Instant::now() + self.call_timeout.max(Duration::from_secs(1)) * 4;
        loop {
            let next =
                tokio::time::timeout_at(deadline.into(), stream.next()).await.map_err(|_| DockerError::Timeout {
                    node: self.node.clone(),
                    doing: "downloading an output",
                    secs: self.call_timeout.as_secs() * 4,
                })?;
            match next {
                None => break,
                Some(Ok(chunk)) => {
                    archive.extend_from_slice(&chunk);
                    if archive.len() as u64 > ceiling {
                        return Ok(Some(Extracted::TooLarge));
                    }
                }
                Some(Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })) => {
                    return Ok(None);
                }
                Some(Err(source)) => {
                    return Err(DockerError::Engine {
                        node: self.node.clone(),
                        doing: "downloading an output",
                        source,
                    });
                }
            }
        }
        archive::single_file(&archive, limit).map(Some).map_err(|e| DockerError::Broken {
            node: self.node.clone(),
            doing: "reading an output archive",
            message: e.to_string(),
        })
    }
}

/// The isolation and limits every actor container gets, fresh or warm.
pub(super) fn host_config(limits: &Limits, log_max_bytes: u64) -> HostConfig {
    HostConfig {
        memory: Some(limits.memory),
        memory_swap: Some(limits.memory_swap),
        cpu_period: Some(limits.cpu_period),
        cpu_quota: Some(limits.cpu_quota),
        pids_limit: Some(limits.pids),
        ulimits: Some(
            limits
                .ulimits
                .iter()
                .map(|(name, value)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(*value),
                    hard: Some(*value),
                })
                .collect(),
        ),
        network_mode: (!limits.enable_network).then(|| "none".to_owned()),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                // JSON escaping at least doubles what the log keeps.
                ("max-size".into(), log_max_bytes.saturating_mul(2).max(1 << 20).to_string()),
                ("max-file".into(), "1".into()),
            ])),
        }),
        ..Default::default()
    }
}
