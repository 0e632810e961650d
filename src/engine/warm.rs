//! Warm sandboxes of the executor: containers of one instance, image and limits that stay
//! running between that instance's runs, each holding the node slot it was started on. A run
//! takes an idle one or starts a new one on a slot of its own (so the runs of a call spread
//! over as many containers and nodes as slots allow); a container returns to the idle set
//! after a run that left nothing in doubt, and is removed after `executor.warm_max_runs`
//! runs, `executor.warm_idle_secs` without a run, a doubt, a node fault, or its instance's end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::executor::{ActorJob, ActorReport, ActorStatus, Executor};
use super::outputs::StoredOutputs;
use super::pool::Lease;
use crate::docker::{ContainerSpec, DockerError, InputFile, WarmAgent};
pub use crate::model::sandbox::Sandbox;

/// Which runs may share a container: those of one instance, image and set of limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    instance: Uuid,
    image: Option<String>,
    limits: String,
}

/// A running warm container and the slot it holds.
struct WarmContainer {
    lease: Lease,
    agent: WarmAgent,
    image: String,
    runs: u32,
    idle_since: Instant,
}

/// The idle warm containers of this process. Cheap to clone.
#[derive(Clone, Default)]
pub struct WarmPool {
    idle: Arc<Mutex<HashMap<Key, Vec<WarmContainer>>>>,
    reaper: Arc<std::sync::OnceLock<()>>,
    /// Told when a container comes back idle: a run waiting for a slot takes it instead, as
    /// the slots may all be held by idle containers of its own instance.
    returned: Arc<tokio::sync::Notify>,
    /// Removals under way, which `close` waits for.
    removals: tokio_util::task::TaskTracker,
}

impl WarmPool {
    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<WarmContainer>>> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self, key: &Key) -> Option<WarmContainer> {
        let mut idle = self.idle();
        let found = idle.get_mut(key).and_then(Vec::pop);
        if idle.get(key).is_some_and(Vec::is_empty) {
            idle.remove(key);
        }
        found
    }

    fn put(&self, key: Key, mut container: WarmContainer, idle_secs: u64) {
        container.idle_since = Instant::now();
        self.idle().entry(key).or_default().push(container);
        self.returned.notify_waiters();
        let pool = self.clone();
        self.reaper.get_or_init(move || {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let limit = Duration::from_secs(idle_secs);
                    let mut stale = Vec::new();
                    for containers in pool.idle().values_mut() {
                        let (old, kept) = containers.drain(..).partition(|c| c.idle_since.elapsed() >= limit);
                        *containers = kept;
                        stale.extend::<Vec<WarmContainer>>(old);
                    }
                    pool.idle().retain(|_, containers| !containers.is_empty());
                    stale.into_iter().for_each(|c| pool.discard(c));
                }
            });
        });
    }

    /// Removes the idle warm containers of `instance` (it ended), freeing their slots.
    pub fn end_instance(&self, instance: Uuid) {
        let mut gone = Vec::new();
        self.idle().retain(|key, containers| {
            if key.instance == instance {
                gone.append(containers);
            }
            key.instance != instance
        });
        gone.into_iter().for_each(|c| self.discard(c));
    }

    /// Removes every idle warm container and waits for all removals under way: the process
    /// stops, and leaves no container behind.
    pub async fn close(&self) {
        let all: Vec<WarmContainer> = self.idle().drain().flat_map(|(_, containers)| containers).collect();
        all.into_iter().for_each(|c| self.discard(c));
        self.removals.close();
        self.removals.wait().await;
    }

    /// Removes the container that has been idle longest, if for at least `min`, freeing its
    /// slot for work that waits for one.
    fn evict_oldest(&self, min: Duration) {
        let mut idle = self.idle();
        let oldest = idle
            .iter()
            .flat_map(|(key, containers)| containers.iter().enumerate().map(move |(at, c)| (key, at, c.idle_since)))
            .filter(|(_, _, since)| since.elapsed() >= min)
            .min_by_key(|(_, _, since)| *since)
            .map(|(key, at, _)| (key.clone(), at));
        let Some((key, at)) = oldest else { return };
        let container = idle.get_mut(&key).map(|containers| containers.remove(at));
        if idle.get(&key).is_some_and(Vec::is_empty) {
            idle.remove(&key);
        }
        drop(idle);
        if let Some(container) = container {
            tracing::debug!(container = %container.agent.id, "idle warm container removed: its slot is wanted");
            self.discard(container);
        }
    }

    /// Idle warm containers, all instances together.
    pub fn idle_count(&self) -> usize {
        self.idle().values().map(Vec::len).sum()
    }

    /// Removes the container in the background; its slot is freed once it is gone.
    fn discard(&self, container: WarmContainer) {
        self.removals.spawn(async move {
            let WarmContainer { lease, agent, .. } = container;
            let id = agent.id.clone();
            // Its agent ends with the stream, and the container with it.
            drop(agent);
            if let Err(err) = lease.client.remove_container(&id).await {
                tracing::warn!(node = %lease.node, container = %id, error = %err, "cannot remove a warm container");
            }
            drop(lease);
        });
    }
}

/// How long work waits for a slot before an idle warm container gives its slot up.
const RECLAIM_AFTER: Duration = Duration::from_millis(20);

impl Executor {
    /// A node slot for work of `priority`. While it waits, idle warm containers of this
    /// process give up their slots, oldest first: an idle container never keeps work waiting.
    pub(super) async fn acquire_slot(&self, priority: i64, description: String) -> Lease {
        let acquire = self.pool().acquire(priority, description);
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                lease = &mut acquire => return lease,
                _ = tokio::time::sleep(RECLAIM_AFTER) => self.warm.evict_oldest(RECLAIM_AFTER),
            }
        }
    }

    /// Runs `job` in a warm container of its instance, as `run_attempts` does in fresh ones:
    /// node faults move it to another container (and node), the actor's own failure is final.
    pub(super) async fn run_warm_attempts(
        &self,
        job: &ActorJob,
        cancel: &CancellationToken,
        report: &mut ActorReport,
        told: &mut bool,
    ) -> Result<(), String> {
        let inputs = self.load_inputs(&job.inputs).await?;
        let limits = self.job_limits(job);
        let config = self.pool().config().clone();
        let key = Key {
            instance: job.instance_id.unwrap_or_default(),
            image: job.actor.image.clone(),
            limits: format!("{limits:?}"),
        };
        let mut last_error = String::new();
        while report.attempts < config.max_attempts {
            report.attempts += 1;
            let description = match job.instance_id {
                Some(id) => format!("{} ({id}, warm)", job.actor.name),
                None => format!("{} (warm)", job.actor.name),
            };
            let waiting = Instant::now();
            // An idle container of the instance, or a slot for a new one, whichever comes first.
            let acquire = self.acquire_slot(job.priority, description.clone());
            tokio::pin!(acquire);
            let found = loop {
                let returned = self.warm.returned.notified();
                tokio::pin!(returned);
                returned.as_mut().enable();
                if let Some(container) = self.warm.take(&key) {
                    break Ok(container);
                }
                tokio::select! {
                    lease = &mut acquire => break Err(lease),
                    _ = returned => {}
                    _ = cancel.cancelled() => {
                        report.queued += waiting.elapsed();
                        report.status = ActorStatus::Cancelled;
                        return Err("cancelled while waiting for a node".into());
                    }
                }
            };
            report.queued += waiting.elapsed();
            let mut container = match found {
                Ok(container) => container,
                Err(lease) => {
                    let image = job.actor.image.clone().unwrap_or_else(|| lease.image.clone());
                    let spec = self.warm_spec(job, &image, Vec::new(), &limits);
                    let started = match Box::pin(self.ensure_image(&lease, &image)).await {
                        Ok(()) => Box::pin(lease.client.start_warm_container(&spec, config.warm_disk_size)).await,
                        Err(err) => Err(err),
                    };
                    match started {
                        Ok(agent) => WarmContainer { lease, agent, image, runs: 0, idle_since: Instant::now() },
                        Err(err) if err.is_node_fault() => {
                            report.node = Some(lease.node.clone());
                            self.pool().report_failure(&lease.node, &err, None);
                            last_error = err.to_string();
                            continue;
                        }
                        Err(err) => return Err(err.to_string()),
                    }
                }
            };
            report.node = Some(container.lease.node.clone());
            report.container = Some(container.agent.id.clone());
            if let Some(notice) = &job.started {
                let _ = notice.to.send((notice.index, container.lease.node.clone(), container.agent.id.clone()));
            }
            let spec = self.warm_spec(job, &container.image, inputs.clone(), &limits);
            let mut outputs = StoredOutputs::new(self.store.clone(), self.chunk_size, &job.actor.name, job.tag.clone());
            let run = container.runs;
            container.runs += 1;
            let result = tokio::select! {
                result = Box::pin(container.lease.client.warm_run(&mut container.agent, run, &spec, cancel, &mut outputs)) => result,
                _ = container.lease.lost.cancelled() => Err(DockerError::Broken {
                    node: container.lease.node.clone(),
                    doing: "running the actor",
                    message: "the node stopped answering".into(),
                }),
            };
            match result {
                Ok(done) => {
                    let mut outcome = done.outcome;
                    let log = std::mem::take(&mut outcome.log);
                    let verdict = self.conclude(&spec, outcome, &outputs, report);
                    Box::pin(self.save_log(job, report, &log)).await;
                    Box::pin(self.tell_ended(job, report, &verdict, told)).await;
                    match &done.doubt {
                        None if container.runs < config.warm_max_runs => {
                            self.warm.put(key, container, config.warm_idle_secs);
                        }
                        None => self.warm.discard(container),
                        Some(why) => {
                            tracing::info!(container = %container.agent.id, reason = %why, "warm container discarded");
                            self.warm.discard(container);
                        }
                    }
                    return verdict;
                }
                Err(err) if err.is_node_fault() => {
                    last_error = err.to_string();
                    let lease = &container.lease;
                    // The agent's stream ended or went wrong, but the engine answers: the
                    // container failed (its agent killed, its memory gone), not the node.
                    if !lease.lost.is_cancelled() && lease.client.ping().await.is_ok() {
                        tracing::warn!(node = %lease.node, container = %container.agent.id, actor = %job.actor.name, error = %err, "warm container failed; its run moves to a new container");
                        self.warm.discard(container);
                        continue;
                    }
                    tracing::warn!(node = %lease.node, actor = %job.actor.name, error = %err, "warm run failed on its node; trying another");
                    // The node removes the container once it answers again.
                    self.pool().report_failure(&lease.node, &err, Some(container.agent.id.clone()));
                }
                Err(err) => {
                    self.warm.discard(container);
                    return Err(err.to_string());
                }
            }
        }
        Err(format!("gave up after {} nodes failed; last: {last_error}", config.max_attempts))
    }

    fn warm_spec(
        &self,
        job: &ActorJob,
        image: &str,
        inputs: Vec<InputFile>,
        limits: &crate::docker::Limits,
    ) -> ContainerSpec {
        let config = self.pool().config();
        ContainerSpec {
            name: format!("wharf-warm-{}-{}", job.actor.name, &Uuid::new_v4().simple().to_string()[..12]),
            image: image.to_owned(),
            labels: self.container_labels(job),
            script: job.actor.body.clone(),
            inputs,
            outputs: job.actor.outputs.clone(),
            limits: limits.clone(),
            keep: false,
            log_tail_lines: config.log_tail_lines as usize,
            max_outputs: config.max_outputs as usize,
            max_outputs_size: config.max_outputs_size,
            log_max_bytes: config.log_max_bytes,
        }
    }
}
