//! Running one actor: its inputs from the database, a slot on a node, the image there, the
//! container's life, its outputs back into the database as blobs, and a verdict a person
//! can read. Faults of a node send the actor to another node, a bounded number of times;
//! the actor's own failure is final.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::limits;
use super::outputs::StoredOutputs;
use super::pool::{ImageLocks, Lease, NodePool};
use super::warm::{Sandbox, WarmPool};
use crate::config::LimitsConfig;
use crate::docker::{
    ContainerOutcome, ContainerSpec, ContentStream, DockerError, InputContent, InputFile, LABEL_ACTOR, LABEL_INSTANCE,
    LABEL_PROCESS, LABEL_SERVICE, Timings,
};
use crate::metrics::{ImageLoad, Metrics};
use crate::model::actor::Actor;
use crate::model::blob::BlobRef;
use crate::model::limitation::Limitation;
use crate::model::log::ContainerLog;
use crate::model::now_millis;
use crate::store::{NewActorLog, Store};

/// Exit status of a process killed for writing past its `fsize` ulimit (128 + SIGXFSZ).
const SIGXFSZ_EXIT: i64 = 153;

/// One actor to run.
#[derive(Debug, Clone)]
pub struct ActorJob {
    pub instance_id: Option<Uuid>,
    pub actor: Actor,
    /// Blobs put into `/workdir` under their `name`.
    pub inputs: Vec<BlobRef>,
    /// Limits over the actor's own and the service's: instance's, then state machine's.
    pub limitation: Vec<Limitation>,
    pub priority: i64,
    /// Keep the container after it ends.
    pub debug: bool,
    pub tag: Option<String>,
    /// Told once the actor has a container, so that it no longer shows as waiting.
    pub started: Option<StartNotice>,
    /// A container of its own (the default) or a warm one of its instance.
    pub sandbox: Sandbox,
    /// Told the report once the actor ended, before its container is removed.
    pub ended: Option<EndNotice>,
}

/// What is told an actor's report as soon as it ended, while its container still exists: a
/// record kept there survives a crash during the removal, so the actor is not run again.
#[derive(Clone)]
pub struct EndNotice(pub Arc<dyn Fn(ActorReport) -> futures::future::BoxFuture<'static, ()> + Send + Sync>);

impl std::fmt::Debug for EndNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndNotice")
    }
}

/// Where an actor's container is announced: the actor's index among those of its call, and
/// the channel that takes `(index, node, container)`.
#[derive(Debug, Clone)]
pub struct StartNotice {
    pub index: usize,
    pub to: tokio::sync::mpsc::UnboundedSender<(usize, String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorStatus {
    Succeeded,
    Failed,
    Cancelled,
}

impl ActorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorStatus::Succeeded => "Succeeded",
            ActorStatus::Failed => "Failed",
            ActorStatus::Cancelled => "Cancelled",
        }
    }
}

/// How an actor ended.
#[derive(Debug, Clone)]
pub struct ActorReport {
    pub status: ActorStatus,
    pub outputs: Vec<BlobRef>,
    pub exception: Option<String>,
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub node: Option<String>,
    pub container: Option<String>,
    pub start_time: i64,
    pub end_time: i64,
    /// Nodes tried (more than one when nodes failed).
    pub attempts: u32,
    pub timings: Option<Timings>,
    /// Time spent waiting for a node slot or a warm container, all attempts together.
    pub queued: Duration,
}

/// Runs actors on the pool's nodes. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    pub(super) store: Store,
    pool: NodePool,
    limits: Arc<LimitsConfig>,
    pub(super) chunk_size: u64,
    images: Arc<ImageLocks>,
    metrics: Metrics,
    pub(super) warm: WarmPool,
}

/// Why one attempt did not produce an outcome.
enum AttemptError {
    /// The node is to blame: try another.
    Node(DockerError, Option<String>),
    /// The actor cannot run, wherever it goes.
    Final(String),
}

impl Executor {
    pub fn new(store: Store, pool: NodePool, limits: LimitsConfig, chunk_size: u64, metrics: Metrics) -> Executor {
        Executor {
            store,
            pool,
            limits: Arc::new(limits),
            chunk_size,
            images: Arc::default(),
            metrics,
            warm: WarmPool::default(),
        }
    }

    pub fn pool(&self) -> &NodePool {
        &self.pool
    }

    /// The series this executor records into, shared with the service's `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The warm containers of this process.
    pub fn warm(&self) -> &WarmPool {
        &self.warm
    }

    /// The container limits of `job`: its call's, the instance's, the state machine's, the actor's.
    pub(super) fn job_limits(&self, job: &ActorJob) -> crate::docker::Limits {
        let layers: Vec<Option<&Limitation>> =
            job.limitation.iter().map(Some).chain([job.actor.limitation.as_ref()]).collect();
        limits::resolve(&layers, &self.limits)
    }

    /// The labels of a container of `job`, fresh or warm: deployment, instance, actor, process.
    pub(super) fn container_labels(&self, job: &ActorJob) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_SERVICE.to_owned(), self.pool.config().service_name.clone()),
            (LABEL_INSTANCE.to_owned(), job.instance_id.map(|id| id.to_string()).unwrap_or_default()),
            (LABEL_ACTOR.to_owned(), job.actor.name.clone()),
            (LABEL_PROCESS.to_owned(), self.pool.process_id().to_owned()),
        ])
    }

    /// Runs `job` to its end. Never fails: every problem is in the report.
    pub async fn run(&self, job: &ActorJob, cancel: &CancellationToken) -> ActorReport {
        let start_time = now_millis();
        let mut report = ActorReport {
            status: ActorStatus::Failed,
            outputs: Vec::new(),
            exception: None,
            exit_code: None,
            timed_out: false,
            oom_killed: false,
            node: None,
            container: None,
            start_time,
            end_time: start_time,
            attempts: 0,
            timings: None,
            queued: Duration::ZERO,
        };
        let span = match job.instance_id {
            Some(id) => tracing::info_span!("actor", actor = %job.actor.name, instance_id = %id),
            None => tracing::info_span!("actor", actor = %job.actor.name),
        };
        let mut told = false;
        let result = if job.sandbox == Sandbox::Warm && !job.debug {
            Box::pin(self.run_warm_attempts(job, cancel, &mut report, &mut told)).instrument(span.clone()).await
        } else {
            Box::pin(self.run_attempts(job, cancel, &mut report, &mut told)).instrument(span.clone()).await
        };
        if let Err(message) = result {
            report.exception = Some(message);
        }
        // An actor that ended without a container to remove is told here.
        if !told {
            self.tell_ended(job, &mut report, &Ok(()), &mut told).instrument(span.clone()).await;
        }
        let _in_span = span.enter();
        let queued = report.queued;
        let total = Duration::from_millis(u64::try_from(report.end_time - report.start_time).unwrap_or(0));
        self.metrics.actor_ended(report.status.as_str(), total, queued);
        let (status, node, elapsed_ms) = (report.status.as_str(), report.node.as_deref(), total.as_millis() as u64);
        if report.status == ActorStatus::Failed {
            let error = report.exception.as_deref();
            tracing::warn!(status, node, elapsed_ms, queued_ms = queued.as_millis() as u64, error, "actor failed");
        } else {
            tracing::info!(status, node, elapsed_ms, queued_ms = queued.as_millis() as u64, "actor ended");
        }
        report
    }

    async fn run_attempts(
        &self,
        job: &ActorJob,
        cancel: &CancellationToken,
        report: &mut ActorReport,
        told: &mut bool,
    ) -> Result<(), String> {
        let inputs = self.load_inputs(&job.inputs).await?;
        let limits = self.job_limits(job);
        let max_attempts = self.pool.config().max_attempts;
        let mut last_error = String::new();
        while report.attempts < max_attempts {
            report.attempts += 1;
            let mut description = format!("actor={}", job.actor.name);
            if let Some(tag) = &job.tag {
                description.push_str(&format!(" tag={tag}"));
            }
            if let Some(id) = job.instance_id {
                description.push_str(&format!(" instance={id}"));
            }
            let waiting = std::time::Instant::now();
            let lease = tokio::select! {
                lease = self.acquire_slot(job.priority, description) => lease,
                _ = cancel.cancelled() => {
                    report.queued += waiting.elapsed();
                    report.status = ActorStatus::Cancelled;
                    return Err("cancelled while waiting for a node".into());
                }
            };
            report.queued += waiting.elapsed();
            report.node = Some(lease.node.clone());
            let spec = ContainerSpec {
                name: format!("wharf-{}-{}", job.actor.name, &Uuid::new_v4().simple().to_string()[..12]),
                image: job.actor.image.clone().unwrap_or_else(|| lease.image.clone()),
                labels: self.container_labels(job),
                script: job.actor.body.clone(),
                inputs: inputs.clone(),
                outputs: job.actor.outputs.clone(),
                limits: limits.clone(),
                keep: job.debug,
                log_tail_lines: self.pool.config().log_tail_lines as usize,
                max_outputs: self.pool.config().max_outputs as usize,
                max_outputs_size: self.pool.config().max_outputs_size,
                log_max_bytes: self.pool.config().log_max_bytes,
            };
            let mut outputs = StoredOutputs::new(self.store.clone(), self.chunk_size, &job.actor.name, job.tag.clone());
            // Boxed, as every large step after the wait for a slot: a waiting actor holds only
            // the small future of its wait.
            match Box::pin(self.attempt(&lease, &spec, job.started.as_ref(), cancel, report, &mut outputs)).await {
                Ok(mut outcome) => {
                    let log = std::mem::take(&mut outcome.log);
                    let mut timings = outcome.timings.clone();
                    let verdict = self.conclude(&spec, outcome, &outputs, report);
                    Box::pin(self.save_log(job, report, &log)).await;
                    Box::pin(self.tell_ended(job, report, &verdict, told)).await;
                    // Only now: a crash before this point leaves the container to the sweep,
                    // and the record says the actor ended.
                    if !spec.keep {
                        let removal = std::time::Instant::now();
                        if let Some(id) = &report.container
                            && let Err(err) = Box::pin(lease.client.remove_container(id)).await
                        {
                            tracing::warn!(node = %lease.node, container = %id, error = %err, "cannot remove container");
                            if err.is_node_fault() {
                                // The node removes it once it answers again.
                                self.pool.report_failure(&lease.node, &err, Some(id.clone()));
                            }
                        }
                        timings.remove = removal.elapsed();
                        report.timings = Some(timings);
                    }
                    return verdict;
                }
                Err(AttemptError::Final(message)) => return Err(message),
                Err(AttemptError::Node(err, container)) => {
                    tracing::warn!(node = %lease.node, actor = %job.actor.name, error = %err, "node failed; trying another");
                    self.pool.report_failure(&lease.node, &err, container);
                    last_error = err.to_string();
                }
            }
        }
        Err(format!("gave up after {max_attempts} nodes failed; last: {last_error}"))
    }

    async fn attempt(
        &self,
        lease: &Lease,
        spec: &ContainerSpec,
        started: Option<&StartNotice>,
        cancel: &CancellationToken,
        report: &mut ActorReport,
        outputs: &mut StoredOutputs,
    ) -> Result<ContainerOutcome, AttemptError> {
        let classify = |err: DockerError, container: Option<String>| {
            if let Some(operation) = engine_operation(&err) {
                self.metrics.engine_error(&lease.node, operation);
            }
            if err.is_node_fault() { AttemptError::Node(err, container) } else { AttemptError::Final(err.to_string()) }
        };
        let span = tracing::info_span!("container", node = %lease.node, container = tracing::field::Empty);
        async {
            self.ensure_image(lease, &spec.image).await.map_err(|e| classify(e, None))?;
            let clock = std::time::Instant::now();
            let id = lease.client.create_container(spec).await.map_err(|e| classify(e, None))?;
            tracing::Span::current().record("container", id.as_str());
            report.container = Some(id.clone());
            lease.started(&id);
            if let Some(notice) = started {
                // The receiver only goes away with the instance's run, which no longer asks.
                let _ = notice.to.send((notice.index, lease.node.clone(), id.clone()));
            }
            let timings = Timings { create: clock.elapsed(), ..Timings::default() };
            tracing::info!(name = %spec.name, image = %spec.image, "container created");
            tokio::select! {
                outcome = lease.client.run_container(&id, spec, cancel, timings, outputs) => {
                    outcome.map_err(|e| classify(e, Some(id.clone())))
                }
                _ = lease.lost.cancelled() => Err(AttemptError::Node(
                    DockerError::Broken {
                        node: lease.node.clone(),
                        doing: "running the actor",
                        message: "the node stopped answering".into(),
                    },
                    Some(id.clone()),
                )),
            }
        }
        .instrument(span)
        .await
    }

    /// The actor ended: its end time is now, and the job's end notice is told the report as
    /// it will be returned (with the verdict's exception), once.
    pub(super) async fn tell_ended(
        &self,
        job: &ActorJob,
        report: &mut ActorReport,
        verdict: &Result<(), String>,
        told: &mut bool,
    ) {
        report.end_time = now_millis();
        *told = true;
        let Some(notice) = &job.ended else { return };
        let mut told = report.clone();
        if let Err(message) = verdict {
            told.exception = Some(message.clone());
        }
        (notice.0)(told).await;
    }

    /// Makes sure the leased node has `image`, copying it from another node if needed.
    pub(super) async fn ensure_image(&self, lease: &Lease, image: &str) -> Result<(), DockerError> {
        let lock = self.images.get(&lease.node, image);
        let mut present = lock.lock().await;
        if *present {
            return Ok(());
        }
        if !lease.client.has_image(image).await? {
            let mut copied = false;
            for source in self.pool.other_clients(&lease.node) {
                match source.has_image(image).await {
                    Ok(true) => {
                        let copy = lease.client.copy_image_from(&source, image).await;
                        let outcome = if copy.is_ok() { ImageLoad::Copied } else { ImageLoad::Failed };
                        self.metrics.image_load(&lease.node, outcome);
                        copy?;
                        copied = true;
                        break;
                    }
                    Ok(false) => {}
                    Err(err) => tracing::debug!(node = %source.node, error = %err, "cannot ask node for the image"),
                }
            }
            if !copied {
                self.metrics.image_load(&lease.node, ImageLoad::Unavailable);
                return Err(DockerError::ImageUnavailable { node: lease.node.clone(), image: image.to_owned() });
            }
        }
        *present = true;
        Ok(())
    }

    /// Keeps what the actor printed, for `GET /StateMachineInstance/{id}/logs`. A log that
    /// cannot be stored is logged, not fatal: the actor's verdict stands.
    pub(super) async fn save_log(&self, job: &ActorJob, report: &ActorReport, log: &ContainerLog) {
        let (Some(instance_id), Some(node), Some(container)) = (job.instance_id, &report.node, &report.container)
        else {
            return;
        };
        let entry = NewActorLog {
            instance_id,
            actor: &job.actor.name,
            tag: job.tag.as_deref(),
            node,
            container,
            state: report.status.as_str(),
            started_at: report.start_time,
            ended_at: now_millis(),
            log,
        };
        if let Err(err) = self.store.put_actor_log(&entry).await {
            tracing::warn!(error = %err, "cannot store the actor's log");
        }
    }

    /// The inputs as files whose bytes stream from the database chunk by chunk when uploaded.
    pub(super) async fn load_inputs(&self, inputs: &[BlobRef]) -> Result<Vec<InputFile>, String> {
        let mut files = Vec::with_capacity(inputs.len());
        for input in inputs {
            let (_, content) = self.store.get_blob(input.id).await.map_err(|e| format!("input {}: {e}", input.name))?;
            let store = self.store.clone();
            let (sha256, chunks) = (content.chunk_key.clone(), content.chunk_count);
            let make = move || -> ContentStream {
                let (store, sha256) = (store.clone(), sha256.clone());
                futures::stream::iter(0..chunks)
                    .then(move |index| {
                        let (store, sha256) = (store.clone(), sha256.clone());
                        async move { store.blob_chunk(&sha256, index).await.map(Bytes::from).map_err(std::io::Error::other) }
                    })
                    .boxed()
            };
            files.push(InputFile {
                name: input.name.clone(),
                size: content.size.max(0) as u64,
                content: InputContent::Stream(Arc::new(make)),
            });
        }
        Ok(files)
    }

    /// Turns the container's end, and the outputs it gave, into a verdict.
    pub(super) fn conclude(
        &self,
        spec: &ContainerSpec,
        outcome: ContainerOutcome,
        outputs: &StoredOutputs,
        report: &mut ActorReport,
    ) -> Result<(), String> {
        report.exit_code = Some(outcome.exit_code);
        report.timed_out = outcome.timed_out;
        report.oom_killed = outcome.oom_killed;
        report.container = Some(outcome.container_id.clone());
        report.timings = Some(outcome.timings.clone());
        report.outputs = outputs.in_order(&outcome.outputs);
        let limits = &spec.limits;
        let problem = if outcome.cancelled {
            report.status = ActorStatus::Cancelled;
            return Err("cancelled".into());
        } else if outcome.timed_out {
            Some(format!("timed out after {} ms", limits.execution_timeout.as_millis()))
        } else if outcome.exit_code == SIGXFSZ_EXIT {
            Some(format!("killed: a file grew past the output limit of {} bytes", limits.output_limit))
        } else if outcome.oom_killed && outcome.exit_code != 0 {
            // The last words are JoyOI's, which OnlineJudge looks for to call it a memory limit.
            Some(format!("killed: out of memory (limit {} MiB). May cause by out of memory", limits.memory >> 20))
        } else if outcome.exit_code != 0 {
            Some(format!("exited with code {}", outcome.exit_code))
        } else if let Some(problem) = &outcome.outputs_problem {
            Some(problem.clone())
        } else if let Some(name) = outcome.too_large.first() {
            Some(format!("output {name} is larger than the limit of {} bytes", limits.output_limit))
        } else {
            outcome.missing.first().map(|name| format!("output {name} missing"))
        };
        match problem {
            None => {
                report.status = ActorStatus::Succeeded;
                Ok(())
            }
            Some(problem) if outcome.log_tail.is_empty() => Err(problem),
            Some(problem) => Err(format!("{problem}\n--- last lines of the log ---\n{}", outcome.log_tail)),
        }
    }
}

/// What the engine was doing when `err` happened, as a metric label; `None` when no engine
/// call failed (the image is on no node).
fn engine_operation(err: &DockerError) -> Option<&'static str> {
    match err {
        DockerError::Connect { .. } => Some("connecting"),
        DockerError::Engine { doing, .. } | DockerError::Timeout { doing, .. } | DockerError::Broken { doing, .. } => {
            Some(doing)
        }
        DockerError::ImageUnavailable { .. } | DockerError::Refused { .. } => None,
    }
}
