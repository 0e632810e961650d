//! What the benchmarks share: wharf's executor over the machine's engine on a fresh SQLite
//! store, blobs in that store, and actors that live nowhere else. Included by the examples
//! with `#[path = "support/mod.rs"] mod support;`.

#![allow(dead_code)]

pub mod service;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wharf::config::{ExecutorConfig, LimitsConfig};
use wharf::engine::{ActorJob, Executor, NodePool, Sandbox, run_probes};
use wharf::model::actor::Actor;
use wharf::model::blob::BlobRef;
use wharf::model::node::NodeRecord;
use wharf::store::{BlobUpload, Store};

/// The image every benchmark actor runs in (`bash images/build.sh`).
pub const IMAGE: &str = "wharf/actor:latest";
/// The machine's engine.
pub const ENGINE: &str = "unix:///var/run/docker.sock";
const CHUNK: u64 = 3 << 20;

/// An executor with `capacity` slots on the machine's engine, healthy and ready.
pub struct LocalExecutor {
    pub store: Store,
    pub executor: Executor,
    probes: CancellationToken,
    _dir: tempfile::TempDir,
}

impl LocalExecutor {
    pub async fn start(capacity: usize) -> anyhow::Result<LocalExecutor> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&format!("sqlite://{}/bench.db", dir.path().display()), 8).await?;
        store
            .create_node(&NodeRecord {
                name: "local".into(),
                address: ENGINE.into(),
                image: IMAGE.into(),
                capacity: capacity as i64,
                drained: false,
                tls: None,
                source: "api".into(),
                created_at: 0,
            })
            .await?;
        let config = ExecutorConfig { service_name: service_name(), ..ExecutorConfig::default() };
        let membership = wharf::engine::Membership::new(&config, "bench");
        let pool = NodePool::load(store.clone(), config, membership).await?;
        let probes = CancellationToken::new();
        tokio::spawn(run_probes(pool.clone(), wharf::engine::Workers::default(), probes.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while pool.view().iter().any(|n| n.health != "healthy") {
            anyhow::ensure!(std::time::Instant::now() < deadline, "the local engine is not healthy: {:?}", pool.view());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let executor =
            Executor::new(store.clone(), pool, LimitsConfig::default(), CHUNK, wharf::metrics::Metrics::new());
        Ok(LocalExecutor { store, executor, probes, _dir: dir })
    }

    pub async fn blob(&self, name: &str, bytes: &[u8]) -> anyhow::Result<BlobRef> {
        let upload = BlobUpload { name: name.into(), remark: String::new(), time_stamp: 0 };
        let blob = self.store.put_blob(&upload, bytes, CHUNK).await?;
        Ok(BlobRef { id: blob.id, name: name.into(), tag: None })
    }

    pub async fn read(&self, blob: &BlobRef) -> anyhow::Result<Vec<u8>> {
        let (_, content) = self.store.get_blob(blob.id).await?;
        Ok(self.store.read_blob(&content).await?)
    }
}

impl Drop for LocalExecutor {
    fn drop(&mut self) {
        self.probes.cancel();
    }
}

/// A service name of this run, so that its containers are its own.
pub fn service_name() -> String {
    format!("bench-{}", std::process::id())
}

pub fn actor(name: &str, body: &str, outputs: &[String]) -> Actor {
    let now = chrono::Utc::now();
    Actor {
        id: uuid::Uuid::new_v4(),
        name: name.into(),
        body: body.into(),
        image: None,
        outputs: outputs.to_vec(),
        limitation: None,
        sandbox: Sandbox::Fresh,
        created_at: now,
        updated_at: now,
    }
}

pub fn job(actor: &Actor, inputs: &[BlobRef], instance: Option<uuid::Uuid>, sandbox: Sandbox) -> ActorJob {
    ActorJob {
        instance_id: instance,
        actor: actor.clone(),
        inputs: inputs.to_vec(),
        limitation: Vec::new(),
        priority: 0,
        debug: false,
        tag: None,
        started: None,
        sandbox,
        ended: None,
    }
}

pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
