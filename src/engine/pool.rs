//! The node pool: which Docker nodes exist, how healthy and busy each is, and the queue of
//! actors waiting for a slot. A waiting actor is a queue entry, not a thread. Slots are rows
//! in the database (`store/slots.rs`), shared by every process of the deployment, so a node
//! never runs more containers than its capacity however many processes use it: the first
//! actor of this process's queue, in (priority, arrival) order, takes a slot on the
//! least-loaded healthy node once no better actor of another live process waits, and gets a
//! `Lease`; the slot comes back when the lease is dropped. A lease is lost (its token
//! cancelled) when its node stops answering, so that the actor moves to another node.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::membership::Membership;
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
    /// Lease id → what runs there, and the token that tells it the node is lost.
    running: BTreeMap<u64, (String, CancellationToken)>,
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

    /// Whether the node may take work (capacity is counted in the database).
    fn usable(&self) -> bool {
        self.health == Health::Healthy && !self.record.drained && self.client.is_some()
    }

    /// Tells every actor running here that the node is lost.
    fn lose_running(&self) {
        for (_, lost) in self.running.values() {
            lost.cancel();
        }
    }
}

#[derive(Default)]
struct PoolState {
    nodes: BTreeMap<String, NodeState>,
    /// This process's waiting actors by (priority, arrival): lower priority values go first.
    queue: BTreeMap<(i64, u64), String>,
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
    membership: Membership,
    /// Told when a slot may have come free or the queue's head changed.
    changed: Notify,
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
    pool: NodePool,
    id: u64,
    slot: i64,
    pub node: String,
    pub image: String,
    pub client: DockerClient,
    /// Cancelled when the node stops answering: the actor should move elsewhere.
    pub lost: CancellationToken,
}

impl Lease {
    /// Tells the pool the slot's container has started, for the node's description of it.
    pub fn started(&self, container: &str) {
        let mut state = self.pool.lock();
        if let Some(job) = state.nodes.get_mut(&self.node).and_then(|n| n.running.get_mut(&self.id)) {
            let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            job.0.push_str(&format!(" container={} since={since}", &container[..container.len().min(12)]));
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(node) = self.pool.lock().nodes.get_mut(&self.node) {
            node.running.remove(&self.id);
        }
        let (store, node, slot) = (self.pool.shared.store.clone(), self.node.clone(), self.slot);
        let process = self.pool.shared.membership.id().to_owned();
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Err(err) = store.release_slot(&node, slot, &process).await {
                // Freed with this process's other slots when it stops or is taken for dead.
                tracing::warn!(node, slot, error = %err, "cannot release a node slot");
            }
            pool.shared.changed.notify_waiters();
        });
    }
}

/// Takes a waiting actor out of the queue, here and in the database, when its `acquire` ends.
struct QueueGuard<'a> {
    pool: &'a NodePool,
    key: (i64, u64),
    wait_id: String,
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        self.pool.lock().queue.remove(&self.key);
        self.pool.shared.changed.notify_waiters();
        let store = self.pool.shared.store.clone();
        let wait_id = std::mem::take(&mut self.wait_id);
        tokio::spawn(async move {
            if let Err(err) = store.remove_wait(&wait_id).await {
                tracing::warn!(error = %err, "cannot remove a waiting actor from the database");
            }
        });
    }
}

/// How often the first waiting actor looks for a slot freed by another process.
const SLOT_POLL: Duration = Duration::from_millis(250);

impl NodePool {
    /// A pool over the nodes registered in `store`; nodes take work once probed.
    pub async fn load(store: Store, config: ExecutorConfig, membership: Membership) -> Result<NodePool, StoreError> {
        let pool = NodePool {
            shared: Arc::new(Shared {
                state: Mutex::new(PoolState::default()),
                store,
                config,
                membership,
                changed: Notify::new(),
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

    /// This process's identity, which its containers and slots carry.
    pub fn process_id(&self) -> &str {
        self.shared.membership.id()
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
                    node.lose_running();
                }
                Some(node) => node.record = record,
                None => {
                    state.nodes.insert(record.name.clone(), NodeState::new(record));
                }
            }
        }
        drop(state);
        self.shared.changed.notify_waiters();
        Ok(())
    }

    /// Asks the probe loop to reload and probe now (after a node was added or changed).
    pub fn request_reload(&self) {
        self.shared.reload.notify_one();
    }

    pub(super) async fn reload_requested(&self) {
        self.shared.reload.notified().await;
    }

    /// Waits for a slot, in (priority, arrival) order across every live process of the
    /// deployment. Dropping the future leaves the queue.
    pub async fn acquire(&self, priority: i64, description: String) -> Lease {
        let key = {
            let mut state = self.lock();
            state.next_id += 1;
            let key = (priority, state.next_id);
            state.queue.insert(key, description.clone());
            key
        };
        let seq = crate::model::next_seq();
        let wait_id = uuid::Uuid::new_v4().to_string();
        let _guard = QueueGuard { pool: self, key, wait_id: wait_id.clone() };
        let process = self.shared.membership.id();
        if let Err(err) = self.shared.store.add_wait(&wait_id, process, priority, seq).await {
            tracing::warn!(error = %err, "cannot list a waiting actor in the database; it waits unseen by other processes");
        }
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let first = self.lock().queue.keys().next() == Some(&key);
            if first {
                match self.try_take(key, priority, seq, &description).await {
                    Ok(Some(lease)) => {
                        self.shared.changed.notify_waiters();
                        return lease;
                    }
                    Ok(None) => {}
                    Err(err) => tracing::warn!(error = %err, "cannot take a node slot; trying again"),
                }
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep(SLOT_POLL) => {}
                }
            } else {
                changed.await;
            }
        }
    }

    /// A slot for the first waiting actor, when one is free and no better actor of another
    /// live process waits for it.
    async fn try_take(
        &self,
        key: (i64, u64),
        priority: i64,
        seq: i64,
        description: &str,
    ) -> Result<Option<Lease>, StoreError> {
        let store = &self.shared.store;
        let taken = store.slots_taken().await?;
        let mut candidates: Vec<(u64, String, i64)> = {
            let state = self.lock();
            state
                .nodes
                .values()
                .filter(|n| n.usable())
                .filter_map(|n| {
                    let used = taken.get(&n.record.name).copied().unwrap_or(0);
                    let capacity = n.record.capacity.max(1);
                    (used < capacity).then(|| {
                        ((used as u64 * 1_000_000) / capacity as u64, n.record.name.clone(), n.record.capacity)
                    })
                })
                .collect()
        };
        if candidates.is_empty() {
            return Ok(None);
        }
        let free: i64 =
            candidates.iter().map(|(_, name, capacity)| capacity - taken.get(name).copied().unwrap_or(0)).sum();
        let process = self.shared.membership.id();
        if store.waits_ahead(process, priority, seq, self.shared.membership.live_since()).await? >= free {
            return Ok(None);
        }
        candidates.sort();
        for (_, name, capacity) in candidates {
            let Some(slot) = store.take_slot(&name, capacity, process, description).await? else { continue };
            match self.hand_out(key, &name, slot, description) {
                Some(lease) => return Ok(Some(lease)),
                // The node went away or became unusable meanwhile.
                None => store.release_slot(&name, slot, process).await?,
            }
        }
        Ok(None)
    }

    /// Makes a taken slot a lease, if the node is still usable.
    fn hand_out(&self, key: (i64, u64), name: &str, slot: i64, description: &str) -> Option<Lease> {
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        let node = state.nodes.get_mut(name).filter(|n| n.usable())?;
        let client = node.client.clone()?;
        let lost = CancellationToken::new();
        node.running.insert(id, (description.to_owned(), lost.clone()));
        let image = node.record.image.clone();
        state.queue.remove(&key);
        Some(Lease { pool: self.clone(), id, slot, node: name.to_owned(), image, client, lost })
    }

    /// Has every node's containers of dead processes removed at its next probe.
    pub fn sweep_again(&self) {
        for node in self.lock().nodes.values_mut() {
            node.swept = false;
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
                view.running_job_descriptions = n.running.values().map(|(what, _)| what.clone()).collect();
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
        // A probe is a ping: a node that takes longer than a couple of probe intervals to
        // answer one is not going to run actors either.
        let timeout = Duration::from_secs(
            self.shared.config.engine_timeout_secs.min((2 * self.shared.config.probe_interval_secs).max(2)),
        );
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
            cleanup = self.sweep(name, &client).await;
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
        drop(state);
        self.shared.changed.notify_waiters();
    }

    /// Removes the deployment's containers on a node that no live process claims: left by a
    /// crash of this process or of another one that is now dead.
    async fn sweep(&self, name: &str, client: &DockerClient) -> Result<(), DockerError> {
        let live = match self.shared.store.live_processes(self.shared.membership.live_since()).await {
            Ok(live) => live,
            Err(err) => {
                return Err(DockerError::Broken {
                    node: name.to_owned(),
                    doing: "sweeping containers",
                    message: format!("cannot tell which processes are alive: {err}"),
                });
            }
        };
        let me = self.shared.membership.id();
        let mut removed = 0;
        for (id, process) in client.containers_of(&self.shared.config.service_name).await? {
            let claimed = process.as_deref().is_some_and(|p| p == me || live.iter().any(|l| l == p));
            if !claimed {
                client.remove_container(&id).await?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(node = name, removed, "removed containers no live process claims");
        }
        Ok(())
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
        // A node that does not answer while it runs actors has lost them: they move now.
        let stalled = matches!(err, DockerError::Timeout { .. }) && !node.running.is_empty();
        if node.health == Health::Unknown || node.consecutive_failures >= threshold || stalled {
            node.health = Health::Unhealthy;
        }
        if was != Health::Unhealthy && node.health == Health::Unhealthy {
            tracing::warn!(node = name, error = %err, failures = node.consecutive_failures, "node unhealthy");
            node.lose_running();
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
pub async fn run_probes(pool: NodePool, workers: super::Workers, cancel: CancellationToken) {
    let interval = Duration::from_secs(pool.shared.config.probe_interval_secs);
    loop {
        match pool.reload().await {
            Ok(()) => workers.ok("probes"),
            Err(err) => {
                workers.failed("probes", &err.to_string());
                tracing::warn!(error = %err, "cannot reload nodes from the database");
            }
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
