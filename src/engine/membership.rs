//! This process among the service processes sharing the database: its identity, its
//! heartbeat, and taking over the work of the ones whose heartbeat stopped. A live process's
//! work is never touched: only a process silent for the whole lease is taken over, and its
//! runs, fenced on their run ids, can no longer write once that happens.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::instances::InstanceRunner;
use super::pool::NodePool;
use super::workers::Workers;
use crate::config::ExecutorConfig;
use crate::model::now_millis;
use crate::store::{Store, StoreError};

/// Who this process is, and how long a silent one is still alive.
#[derive(Debug, Clone)]
pub struct Membership {
    shared: Arc<Identity>,
}

#[derive(Debug)]
struct Identity {
    id: String,
    deployment: String,
    host: String,
    heartbeat: Duration,
    lease: Duration,
}

impl Membership {
    /// The configured identity, or a new one.
    pub fn new(config: &ExecutorConfig, host: &str) -> Membership {
        let id = if config.process_id.is_empty() {
            format!("{}-{}", config.service_name, &uuid::Uuid::new_v4().simple().to_string()[..12])
        } else {
            config.process_id.clone()
        };
        Membership {
            shared: Arc::new(Identity {
                id,
                deployment: config.service_name.clone(),
                host: host.to_owned(),
                heartbeat: Duration::from_secs(config.heartbeat_secs.max(1)),
                lease: Duration::from_secs(config.process_lease_secs),
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.shared.id
    }

    pub fn deployment(&self) -> &str {
        &self.shared.deployment
    }

    /// A process that beat at this time (milliseconds) or later is alive.
    pub fn live_since(&self) -> i64 {
        now_millis() - i64::try_from(self.shared.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Registers this process, first taking back what an earlier life under the same
    /// identity left running.
    pub async fn join(&self, store: &Store) -> Result<crate::store::Recovered, StoreError> {
        let recovered = store.take_over(self.id(), now_millis() + 1).await?;
        store.register_process(self.id(), self.deployment(), &self.shared.host).await?;
        Ok(recovered)
    }
}

/// Beats until `cancel`, and takes over processes found dead: their instances are queued
/// again (or failed, and their callbacks sent), their slots freed, their containers removed.
pub async fn run_heartbeats(
    membership: Membership,
    store: Store,
    runner: InstanceRunner,
    pool: NodePool,
    workers: Workers,
    cancel: CancellationToken,
) {
    const WORKER: &str = "heartbeat";
    workers.started(WORKER);
    loop {
        match beat(&membership, &store, &runner, &pool).await {
            Ok(()) => workers.ok(WORKER),
            Err(err) => {
                workers.failed(WORKER, &err.to_string());
                tracing::warn!(error = %err, "heartbeat or takeover failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(membership.shared.heartbeat) => {}
            _ = cancel.cancelled() => break,
        }
    }
    workers.stopped(WORKER);
}

async fn beat(
    membership: &Membership,
    store: &Store,
    runner: &InstanceRunner,
    pool: &NodePool,
) -> Result<(), StoreError> {
    let shared = &membership.shared;
    if !store.heartbeat(&shared.id, &shared.deployment, &shared.host).await? {
        tracing::warn!(process = %shared.id, "this process was taken for dead (its heartbeat was late); registered again");
    }
    let since = membership.live_since();
    let mut took_any = false;
    for dead in store.dead_processes(since, &shared.id).await? {
        let recovered = store.take_over(&dead, since).await?;
        took_any = true;
        for id in &recovered.requeued {
            tracing::info!(instance_id = %id, process = %dead, "continuing an instance of a process that stopped");
        }
        for id in &recovered.exhausted {
            tracing::warn!(instance_id = %id, process = %dead, "instance failed: re-run times exhausted");
            runner.enqueue_callback(*id).await;
        }
    }
    if took_any {
        // Their containers go at the next probe of each node, and their instances run again.
        pool.sweep_again();
        runner.wake();
    }
    Ok(())
}
