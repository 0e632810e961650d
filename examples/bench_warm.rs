//! Benchmark (not a test): the shipped judge's test step (`judge-run`: the runner measures
//! `Main.out` on one `stdin.txt`) for N trivial tests of one instance, in fresh containers and
//! in warm ones, through wharf's executor, in the same run, on the local engine. Prints both
//! wall times and their ratio for each N.
//!
//!   cargo run --release --example bench_warm -- [concurrency=4] [tests=10 40 100]
//!
//! Needs the `wharf/actor:latest` image (`bash images/build.sh`).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wharf::config::{ExecutorConfig, LimitsConfig};
use wharf::engine::{ActorJob, ActorStatus, Executor, NodePool, Sandbox, run_probes};
use wharf::model::actor::Actor;
use wharf::model::blob::BlobRef;
use wharf::model::node::NodeRecord;
use wharf::store::{BlobUpload, Store};

const IMAGE: &str = "wharf/actor:latest";
const JUDGE_RUN: &str = include_str!("../config/definitions/actors/judge-run.toml");

#[derive(serde::Deserialize)]
struct ActorFile {
    body: String,
    outputs: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wharf::install_crypto_provider();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let concurrency = args.first().copied().unwrap_or(4);
    let sizes = if args.len() > 1 { args[1..].to_vec() } else { vec![10, 40, 100] };

    let dir = tempfile::tempdir()?;
    let store = Store::open(&format!("sqlite://{}/bench.db", dir.path().display()), 8).await?;
    store
        .create_node(&NodeRecord {
            name: "local".into(),
            address: "unix:///var/run/docker.sock".into(),
            image: IMAGE.into(),
            capacity: concurrency as i64,
            drained: false,
            tls: None,
            source: "api".into(),
            created_at: 0,
        })
        .await?;
    let config = ExecutorConfig { service_name: format!("bench-{}", std::process::id()), ..ExecutorConfig::default() };
    let membership = wharf::engine::Membership::new(&config, "bench");
    let pool = NodePool::load(store.clone(), config, membership).await?;
    let probes = CancellationToken::new();
    tokio::spawn(run_probes(pool.clone(), wharf::engine::Workers::default(), probes.clone()));
    while pool.view().iter().any(|n| n.health != "healthy") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let executor = Executor::new(store.clone(), pool, LimitsConfig::default(), 3 << 20, wharf::metrics::Metrics::new());

    let put = |name: &'static str, bytes: &'static [u8]| {
        let store = store.clone();
        async move {
            let upload = BlobUpload { name: name.into(), remark: String::new(), time_stamp: 0 };
            let blob = store.put_blob(&upload, bytes, 3 << 20).await?;
            anyhow::Ok(BlobRef { id: blob.id, name: name.into(), tag: None })
        }
    };
    let program = put("Main.out", b"#!/bin/sh\nread a b\necho $((a + b))\n").await?;
    let time = put("time.txt", b"1000").await?;
    let stdin = put("stdin.txt", b"1 2\n").await?;
    let file: ActorFile = toml::from_str(JUDGE_RUN)?;
    let now = chrono::Utc::now();
    let actor = Actor {
        id: uuid::Uuid::new_v4(),
        name: "judge-run".into(),
        body: file.body,
        image: None,
        outputs: file.outputs,
        limitation: None,
        sandbox: Default::default(),
        created_at: now,
        updated_at: now,
    };
    let job = |instance: uuid::Uuid, sandbox: Sandbox, index: usize| ActorJob {
        instance_id: Some(instance),
        actor: actor.clone(),
        inputs: vec![program.clone(), stdin.clone(), time.clone()],
        limitation: Vec::new(),
        priority: 0,
        debug: false,
        tag: Some(index.to_string()),
        started: None,
        sandbox,
    };
    let never = CancellationToken::new();
    let run = |tests: usize, sandbox: Sandbox| {
        let (executor, never, job) = (&executor, &never, &job);
        async move {
            let instance = uuid::Uuid::new_v4();
            let jobs: Vec<ActorJob> = (0..tests).map(|i| job(instance, sandbox, i)).collect();
            let clock = Instant::now();
            let reports = futures::future::join_all(jobs.iter().map(|j| executor.run(j, never))).await;
            let elapsed = clock.elapsed();
            executor.warm().end_instance(instance);
            for report in &reports {
                anyhow::ensure!(report.status == ActorStatus::Succeeded, "test failed: {:?}", report.exception);
            }
            anyhow::Ok(elapsed)
        }
    };
    // Both paths once, so that neither pays for first-use costs.
    run(1, Sandbox::Fresh).await?;
    run(1, Sandbox::Warm).await?;

    println!("judge-run, trivial tests, concurrency {concurrency}, image {IMAGE}");
    println!("{:>6} {:>10} {:>10} {:>14}", "tests", "fresh (s)", "warm (s)", "fresh / warm");
    for tests in sizes {
        let fresh = run(tests, Sandbox::Fresh).await?;
        let warm = run(tests, Sandbox::Warm).await?;
        println!(
            "{tests:>6} {:>10.2} {:>10.2} {:>14.2}",
            fresh.as_secs_f64(),
            warm.as_secs_f64(),
            fresh.as_secs_f64() / warm.as_secs_f64()
        );
    }
    probes.cancel();
    Ok(())
}
