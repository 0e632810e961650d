//! The node pool: which Docker nodes exist, how healthy and busy each is, and the queue of
//! actors waiting for a slot. A waiting actor is a queue entry, not a thread: it is handed
//! a `Lease` on the least-loaded healthy node with a free slot, in (priority, arrival)
//! order, and the slot comes back when the lease is dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use crate::config::ExecutorConfig;
use crate::docker::{DockerClient, DockerError};
use crate::model::node::{DockerNode, NodeRecord};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not probed yet: takes no work.
    Unknown,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// What the pool knows of one node.
struct NodeState {
    record: NodeRecord,
    client: Option<DockerClient>,
    health: Health,
    consecutive_failures: u32,
    last_error: Option<String>,
    /// Whether the node has its image, as of the last probe.
    image_present: Option<bool>,
    /// Lease id → what runs there.
    running: BTreeMap<u64, String>,
    /// Containers to remove once the node answers again.
    leftovers: Vec<String>,
    /// Whether containers left by an earlier run of the service were removed.
    swept: bool,
}

impl NodeState {
    fn new(record: NodeRecord) -> Self {
        NodeState {
            record,
            client: None,
            health: Health::Unknown,
            consecutive_failures: 0,
            last_error: None,
            image_present: None,
            running: BTreeMap::new(),
            leftovers: Vec::new(),
            swept: false,
        }
    }

    fn has_room(&self) -> bool {
        self.health == Health::Healthy
            && !self.record.drained
            && self.client.is_some()
            && (self.running.len() as i64) < self.record.capacity
    }

    /// Fraction of the capacity in use, as a comparable integer.
    fn load(&self) -> u64 {
        (self.running.len() as u64 * 1_000_000) / self.record.capacity.max(1) as u64
    }
}

struct Waiter {
    description: String,
    tx: oneshot::Sender<Lease>,
}

#[derive(Default)]
struct PoolState {
    nodes: BTreeMap<String, NodeState>,
    /// Waiting actors by (priority, arrival): lower priority values go first.
    queue: BTreeMap<(i64, u64), Waiter>,
    next_id: u64,
    /// Engine calls that timed out, oldest first, as JoyOI's `TimeoutErrors` lists them.
    timeouts: std::collections::VecDeque<String>,
}

/// Timed-out engine calls remembered for `GET /DockerNode/TimeoutErrors`.
const TIMEOUTS_KEPT: usize = 1000;

impl PoolState {
    /// Remembers `error` if it is an engine call that timed out.
    fn note_timeout(&mut self, error: &DockerError) {
        if matches!(error, DockerError::Timeout { .. }) {
            if self.timeouts.len() == TIMEOUTS_KEPT {
                self.timeouts.pop_front();
            }
            self.timeouts.push_back(format!("({}): {error}", chrono::Utc::now().to_rfc2822()));
        }
    }
}

struct Shared {
    state: Mutex<PoolState>,
    store: Store,
    config: ExecutorConfig,
    /// Wakes the probe loop to reload nodes from the database.
    reload: Notify,
    /// One reload at a time, so that an older read of the nodes never lands after a newer
    /// one (a node just deleted would come back until the next probe).
    reloading: tokio::sync::Mutex<()>,
}

/// A cheap-to-clone handle on the pool.
#[derive(Clone)]
pub struct NodePool {
    shared: Arc<Shared>,
}

/// A slot on a node, held while an actor runs there; dropping it frees the slot.
pub struct Lease {
    /// `None` once the slot was given back by other means.
    pool: Option<NodePool>,
    id: u64,
    pub node: String,
    pub image: String,
    pub client: DockerClient,
}

impl Lease {
    /// Tells the pool the slot's container has started, for the node's description of it.
    pub fn started(&self, container: &str) {
        let Some(pool) = &self.pool else { return };
        let mut state = pool.lock();
        if let Some(job) = state.nodes.get_mut(&self.node).and_then(|n| n.running.get_mut(&self.id)) {
            let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            job.push_str(&format!(" container={} since={since}", &container[..container.len().min(12)]));
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else { return };
        let mut state = pool.lock();
        if let Some(node) = state.nodes.get_mut(&self.node) {
            node.running.remove(&self.id);
        }
        dispatch(&mut state, &pool);
    }
}

/// Removes a waiter from the queue when its `acquire` is abandoned.
struct QueueGuard<'a> {
    pool: &'a NodePool,
    key: (i64, u64),
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        self.pool.lock().queue.remove(&self.key);
    }
}

/// Hands free slots to waiters, best first, on the least-loaded node with room.
fn dispatch(state: &mut PoolState, pool: &NodePool) {
    while let Some(entry) = state.queue.first_entry() {
        let chosen = state
            .nodes
            .values()
            .filter(|n| n.has_room())
            .min_by_key(|n| (n.load(), n.running.len(), n.record.name.clone()))
            .map(|n| n.record.name.clone());
        let Some(node_name) = chosen else { return };
        let waiter = entry.remove();
        if waiter.tx.is_closed() {
            continue;
        }
        state.next_id += 1;
        let id = state.next_id;
        let Some(node) = state.nodes.get_mut(&node_name) else { return };
        let Some(client) = node.client.clone() else { return };
        node.running.insert(id, waiter.description);
        let lease =
            Lease { pool: Some(pool.clone()), id, node: node_name.clone(), image: node.record.image.clone(), client };
        if let Err(mut lease) = waiter.tx.send(lease) {
            // The waiter left between the check and the send: take the slot back here,
            // as the lease's own drop would take the lock we hold.
            node.running.remove(&id);
            lease.pool = None;
        }
    }
}

impl NodePool {
    /// A pool over the nodes registered in `store`; nodes take work once probed.
    pub async fn load(store: Store, config: ExecutorConfig) -> Result<NodePool, StoreError> {
        let pool = NodePool {
            shared: Arc::new(Shared {
                state: Mutex::new(PoolState::default()),
                store,
                config,
                reload: Notify::new(),
                reloading: tokio::sync::Mutex::new(()),
            }),
        };
        pool.reload().await?;
        Ok(pool)
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.shared.config
    }

    /// Re-reads the registered nodes: new ones join, removed ones leave, changed ones are
    /// reconnected.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.shared.reloading.lock().await;
        let records = self.shared.store.list_nodes().await?;
        let mut state = self.lock();
        state.nodes.retain(|name, _| records.iter().any(|r| &r.name == name));
        for record in records {
            match state.nodes.get_mut(&record.name) {
                Some(node) if node.record.address != record.address || node.record.tls != record.tls => {
                    let running = std::mem::take(&mut node.running);
                    *node = NodeState::new(record);
                    node.running = running;
                }
                Some(node) => node.record = record,
                None => {
                    state.nodes.insert(record.name.clone(), NodeState::new(record));
                }
            }
        }
        dispatch(&mut state, self);
        Ok(())
    }

    /// Asks the probe loop to reload and probe now (after a node was added or changed).
    pub fn request_reload(&self) {
        self.shared.reload.notify_one();
    }

    pub(super) async fn reload_requested(&self) {
        self.shared.reload.notified().await;
    }

    /// Waits for a slot, in (priority, arrival) order. Dropping the future leaves the queue.
    pub async fn acquire(&self, priority: i64, description: String) -> Lease {
        let (tx, rx) = oneshot::channel();
        let key = {
            let mut state = self.lock();
            state.next_id += 1;
            let key = (priority, state.next_id);
            state.queue.insert(key, Waiter { description, tx });
            dispatch(&mut state, self);
            key
        };
        let _guard = QueueGuard { pool: self, key };
        match rx.await {
            Ok(lease) => lease,
            // The sender lives in the queue until it is used; it is only dropped unused when
            // the pool itself goes away, and then nothing can ever run.
            Err(_) => std::future::pending().await,
        }
    }

    /// How many actors wait for a slot.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// How many actors wait for a slot, by priority.
    pub fn queued_by_priority(&self) -> BTreeMap<i64, usize> {
        let mut counts = BTreeMap::new();
        for (priority, _) in self.lock().queue.keys() {
            *counts.entry(*priority).or_insert(0) += 1;
        }
        counts
    }

    /// The engine calls that timed out lately (at most the last 1,000), oldest first.
    pub fn timeout_errors(&self) -> Vec<String> {
        self.lock().timeouts.iter().cloned().collect()
    }

    /// Records a failure of the node while running work: no new work goes there until a
    /// probe succeeds, and `container` (if any) is removed once it answers.
    pub fn report_failure(&self, node: &str, error: &DockerError, container: Option<String>) {
        let mut state = self.lock();
        state.note_timeout(error);
        if let Some(state) = state.nodes.get_mut(node) {
            state.consecutive_failures += 1;
            state.last_error = Some(error.to_string());
            state.leftovers.extend(container);
            if state.health != Health::Unhealthy {
                tracing::warn!(node, error = %error, "node failed during a run; marked unhealthy");
            }
            state.health = Health::Unhealthy;
        }
    }

    /// Healthy nodes other than `except`, with a client, for fetching images.
    pub fn other_clients(&self, except: &str) -> Vec<DockerClient> {
        let state = self.lock();
        state
            .nodes
            .values()
            .filter(|n| n.record.name != except && n.health == Health::Healthy)
            .filter_map(|n| n.client.clone())
            .collect()
    }

    /// The nodes as the API shows them.
    pub fn view(&self) -> Vec<DockerNode> {
        let state = self.lock();
        state
            .nodes
            .values()
            .map(|n| {
                let mut view = n.record.view();
                view.running_jobs = n.running.len() as i64;
                view.running_job_descriptions = n.running.values().cloned().collect();
                view.error_flags = i64::from(n.consecutive_failures);
                view.health = n.health.as_str().to_owned();
                view.last_error = n.last_error.clone();
                view.image_present = n.image_present;
                view
            })
            .collect()
    }

    /// Probes every node once, concurrently, and applies the results.
    pub async fn probe_all(&self) {
        let targets: Vec<(NodeRecord, Option<DockerClient>)> =
            self.lock().nodes.values().map(|n| (n.record.clone(), n.client.clone())).collect();
        let timeout = Duration::from_secs(self.shared.config.engine_timeout_secs);
        let probes = targets.into_iter().map(|(record, client)| async move {
            let result = probe(&record, client, timeout).await;
            (record.name, result)
        });
        for (name, result) in futures::future::join_all(probes).await {
            match result {
                Ok((client, image_present)) => {
                    if let Some(node) = self.lock().nodes.get_mut(&name) {
                        node.image_present = image_present;
                    }
                    self.probe_succeeded(&name, client).await
                }
                Err(err) => self.probe_failed(&name, &err),
            }
        }
    }

    async fn probe_succeeded(&self, name: &str, client: DockerClient) {
        let (leftovers, swept) = {
            let mut state = self.lock();
            let Some(node) = state.nodes.get_mut(name) else { return };
            node.client = Some(client.clone());
            (std::mem::take(&mut node.leftovers), node.swept)
        };
        // Clean up before taking work: containers of runs this node lost, and at the first
        // contact, everything an earlier life of this service left behind.
        let mut cleanup = Ok(());
        for id in &leftovers {
            if let Err(err) = client.remove_container(id).await {
                cleanup = Err(err);
            }
        }
        if cleanup.is_ok() && !swept {
            cleanup = client.remove_leftovers(&self.shared.config.service_name).await.map(|n| {
                if n > 0 {
                    tracing::info!(node = name, removed = n, "removed containers left by an earlier run");
                }
            });
        }
        let mut state = self.lock();
        let Some(node) = state.nodes.get_mut(name) else { return };
        if let Err(err) = cleanup {
            node.leftovers.extend(leftovers);
            node.last_error = Some(err.to_string());
            node.health = Health::Unhealthy;
            return;
        }
        node.swept = true;
        if node.health != Health::Healthy {
            tracing::info!(node = name, "node healthy");
        }
        node.health = Health::Healthy;
        node.consecutive_failures = 0;
        dispatch(&mut state, self);
    }

    fn probe_failed(&self, name: &str, err: &DockerError) {
        let mut state = self.lock();
        state.note_timeout(err);
        let threshold = self.shared.config.unhealthy_after;
        let Some(node) = state.nodes.get_mut(name) else { return };
        node.consecutive_failures += 1;
        node.last_error = Some(err.to_string());
        node.client = None;
        let was = node.health;
        if node.health == Health::Unknown || node.consecutive_failures >= threshold {
            node.health = Health::Unhealthy;
        }
        if was != Health::Unhealthy && node.health == Health::Unhealthy {
            tracing::warn!(node = name, error = %err, failures = node.consecutive_failures, "node unhealthy");
        }
    }
}

/// Connects (when needed) and pings one node, and asks whether it has its image (`None` when
/// the engine would not say).
async fn probe(
    record: &NodeRecord,
    client: Option<DockerClient>,
    timeout: Duration,
) -> Result<(DockerClient, Option<bool>), DockerError> {
    let client = match client {
        Some(client) => client,
        None => DockerClient::connect(&record.name, &record.address, record.tls.as_ref(), timeout).await?,
    };
    client.ping().await?;
    let image_present = client.has_image(&record.image).await.ok();
    Ok((client, image_present))
}

/// Runs the probe loop until `cancel`: every `probe_interval_secs`, or at once when asked.
pub async fn run_probes(pool: NodePool, cancel: tokio_util::sync::CancellationToken) {
    let interval = Duration::from_secs(pool.shared.config.probe_interval_secs);
    loop {
        if let Err(err) = pool.reload().await {
            tracing::warn!(error = %err, "cannot reload nodes from the database");
        }
        pool.probe_all().await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = pool.reload_requested() => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// Held while an image is checked or loaded on a node; its value says whether the image is
/// known to be there.
type ImageLock = Arc<tokio::sync::Mutex<bool>>;

/// Per node and image, one load at a time.
#[derive(Default)]
pub struct ImageLocks {
    locks: Mutex<HashMap<(String, String), ImageLock>>,
}

impl ImageLocks {
    /// The lock for `image` on `node`; its value says whether the image is known present.
    pub fn get(&self, node: &str, image: &str) -> ImageLock {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry((node.to_owned(), image.to_owned())).or_default().clone()
    }
}
