//! A wharf executor over real engines for one test: a fresh SQLite store, nodes registered
//! in it, the probe loop running, and a service name of its own so that the containers it
//! makes can be counted (and must be gone when the test ends).

#![allow(dead_code)]

mod hostile;

#[allow(unused_imports)]
pub use hostile::{HostileCase, hostile_cases};

use std::time::{Duration, Instant};

use functional_tests::{Engine, count_labelled};
use tokio_util::sync::CancellationToken;
use wharf::config::{ExecutorConfig, LimitsConfig};
use wharf::engine::{ActorJob, ActorReport, Executor, NodePool, run_probes};
use wharf::model::actor::Actor;
use wharf::model::blob::BlobRef;
use wharf::model::limitation::Limitation;
use wharf::model::node::NodeRecord;
use wharf::store::{BlobUpload, NodePatch, Store};

/// Container tests share two cores: one at a time keeps their timings meaningful.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Rig {
    pub store: Store,
    pub pool: NodePool,
    pub executor: Executor,
    pub service: String,
    probes: CancellationToken,
    _dir: tempfile::TempDir,
}

/// A node to register: name, address, capacity.
pub struct NodeSpec<'a> {
    pub name: &'a str,
    pub address: String,
    pub capacity: i64,
}

impl Rig {
    pub async fn start(nodes: &[NodeSpec<'_>]) -> Rig {
        Self::start_as(&format!("wharf-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]), nodes).await
    }

    pub async fn start_as(service: &str, nodes: &[NodeSpec<'_>]) -> Rig {
        wharf::install_crypto_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/wharf.db", dir.path().display());
        let store = Store::open(&url, 4).await.expect("open store");
        for node in nodes {
            let record = NodeRecord {
                name: node.name.to_owned(),
                address: node.address.clone(),
                image: "wharf/actor:latest".into(),
                capacity: node.capacity,
                drained: false,
                tls: None,
                source: "api".into(),
                created_at: wharf::model::now_millis(),
            };
            store.create_node(&record).await.expect("register node");
        }
        let config = ExecutorConfig {
            service_name: service.to_owned(),
            probe_interval_secs: 1,
            engine_timeout_secs: 10,
            unhealthy_after: 2,
            max_attempts: 3,
            log_tail_lines: 20,
            // Small caps, so that tests can go over them quickly.
            max_outputs: 500,
            max_outputs_size: 64 << 20,
            ..ExecutorConfig::default()
        };
        let membership = wharf::engine::Membership::new(&config, "test");
        let pool = NodePool::load(store.clone(), config, membership).await.expect("load pool");
        let probes = CancellationToken::new();
        tokio::spawn(run_probes(pool.clone(), wharf::engine::Workers::default(), probes.clone()));
        let executor = Executor::new(
            store.clone(),
            pool.clone(),
            LimitsConfig::default(),
            1 << 20,
            wharf::metrics::Metrics::new(),
        );
        let rig = Rig { store, pool, executor, service: service.to_owned(), probes, _dir: dir };
        for node in nodes {
            rig.wait_health(node.name, "healthy").await;
        }
        rig
    }

    /// Waits until `node` shows `health` (at most 30 s).
    pub async fn wait_health(&self, node: &str, health: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let view = self.pool.view();
            let found = view.iter().find(|n| n.name == node).map(|n| (n.health.clone(), n.last_error.clone()));
            if found.as_ref().is_some_and(|(h, _)| h == health) {
                return;
            }
            assert!(Instant::now() < deadline, "node {node} never became {health}: {found:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn health(&self, node: &str) -> String {
        self.pool.view().into_iter().find(|n| n.name == node).map(|n| n.health).unwrap_or_default()
    }

    pub fn running(&self, node: &str) -> i64 {
        self.pool.view().into_iter().find(|n| n.name == node).map(|n| n.running_jobs).unwrap_or_default()
    }

    pub async fn set_drained(&self, node: &str, drained: bool) {
        let patch = NodePatch { drained: Some(drained), ..NodePatch::default() };
        self.store.patch_node(node, &patch).await.expect("patch node");
        self.pool.reload().await.expect("reload");
    }

    pub async fn blob(&self, name: &str, bytes: &[u8]) -> BlobRef {
        let upload = BlobUpload { name: name.into(), remark: String::new(), time_stamp: 0 };
        let blob = self.store.put_blob(&upload, bytes, 1 << 20).await.expect("store blob");
        BlobRef { id: blob.id, name: name.into(), tag: None }
    }

    pub async fn read(&self, blob: &BlobRef) -> Vec<u8> {
        let (_, content) = self.store.get_blob(blob.id).await.expect("output blob");
        self.store.read_blob(&content).await.expect("read blob")
    }

    /// The output called `name` of a finished actor.
    pub async fn output(&self, report: &ActorReport, name: &str) -> Vec<u8> {
        let blob = report.outputs.iter().find(|b| b.name == name);
        let blob = blob.unwrap_or_else(|| panic!("no output {name}: {report:?}"));
        self.read(blob).await
    }

    pub async fn run(&self, job: &ActorJob) -> ActorReport {
        self.executor.run(job, &CancellationToken::new()).await
    }

    pub async fn run_cancellable(&self, job: &ActorJob, cancel: &CancellationToken) -> ActorReport {
        self.executor.run(job, cancel).await
    }

    /// Containers of this rig's service on `engine`.
    pub async fn containers_on(&self, engine: &Engine) -> usize {
        count_labelled(&engine.docker, &format!("wharf.service={}", self.service)).await.expect("count containers")
    }

    /// Stops the probes, as a process that died would, leaving its containers.
    pub fn stop_probes(&self) {
        self.probes.cancel();
    }

    /// Stops the probes after checking that no container of this test is left anywhere.
    pub async fn finish(self, engines: &[&Engine]) {
        for engine in engines {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let left = self.containers_on(engine).await;
                if left == 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "{left} container(s) left behind on {}", engine.address);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.probes.cancel();
        self.store.close().await;
    }
}

/// An actor that is not stored anywhere: the executor needs only its fields.
pub fn actor(name: &str, body: &str, outputs: &[&str]) -> Actor {
    Actor {
        id: uuid::Uuid::new_v4(),
        name: name.into(),
        body: body.into(),
        image: None,
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        limitation: None,
        sandbox: Default::default(),
        created_at: chrono_now(),
        updated_at: chrono_now(),
    }
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

pub fn job(actor: Actor, inputs: Vec<BlobRef>, limitation: Option<Limitation>) -> ActorJob {
    ActorJob {
        instance_id: None,
        actor,
        inputs,
        limitation: limitation.into_iter().collect(),
        priority: 0,
        debug: false,
        tag: None,
        started: None,
        sandbox: Default::default(),
        ended: None,
    }
}
