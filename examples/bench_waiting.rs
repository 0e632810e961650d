//! Benchmark (not a test): many instances waiting for actors on busy nodes hold no thread.
//! N instances each run one actor while the only node is unreachable, so every actor waits
//! in the node queue. Prints how long it took until all waited, the process's threads and
//! resident memory, against the same process before the instances existed.
//!
//!   cargo run --release --example bench_waiting -- [instances=10000] [scripts.max_live=64]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wharf::config::{ExecutorConfig, LimitsConfig, ScriptConfig};
use wharf::engine::{Executor, InstanceRunner, NodePool, run_probes};
use wharf::model::node::NodeRecord;
use wharf::store::{ActorFields, NewInstance, StateMachineFields, Store};

/// (threads, resident MiB) of this process.
fn footprint() -> (u64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_default()
    };
    (field("Threads:"), field("VmRSS:") as f64 / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    wharf::install_crypto_provider();
    let count: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let scripts = match std::env::args().nth(2).and_then(|a| a.parse().ok()) {
        Some(max_live) => ScriptConfig { max_live, ..ScriptConfig::default() },
        None => ScriptConfig::default(),
    };
    let dir = tempfile::tempdir()?;
    let store = Store::open(&format!("sqlite://{}/bench.db", dir.path().display()), 8).await?;
    store
        .create_node(&NodeRecord {
            name: "busy".into(),
            address: "unix:///nonexistent/docker.sock".into(),
            image: "wharf/actor:latest".into(),
            capacity: 8,
            drained: false,
            tls: None,
            source: "api".into(),
            created_at: 0,
        })
        .await?;
    let actor = ActorFields {
        name: "noop".into(),
        body: "true".into(),
        image: None,
        outputs: vec![],
        limitation: None,
        sandbox: Default::default(),
    };
    store.create_actor(&actor).await?;
    let script = "set_stage(\"Wait\");\nrun_actor(\"noop\", [])";
    store
        .create_state_machine(&StateMachineFields { name: "wait".into(), body: script.into(), limitation: None })
        .await?;
    let new = NewInstance {
        name: "wait".into(),
        initial_blobs: vec![],
        limitation: None,
        parameters: Default::default(),
        priority: 0,
    };
    for _ in 0..count {
        store.create_instance(&new, script, "bench").await?;
    }
    let before = footprint();

    let background = CancellationToken::new();
    let executor_config = ExecutorConfig { service_name: "bench-waiting".into(), ..ExecutorConfig::default() };
    let membership = wharf::engine::Membership::new(&executor_config, "bench");
    let pool = NodePool::load(store.clone(), executor_config.clone(), membership.clone()).await?;
    tokio::spawn(run_probes(pool.clone(), wharf::engine::Workers::default(), background.clone()));
    let executor =
        Executor::new(store.clone(), pool.clone(), LimitsConfig::default(), 3 << 20, wharf::metrics::Metrics::new());
    let runner = InstanceRunner::new(
        store.clone(),
        executor,
        membership.id().to_owned(),
        count as u64,
        &scripts,
        3 << 20,
        Arc::default(),
        String::new(),
    );
    let clock = Instant::now();
    let running = tokio::spawn(runner.run(background.clone()));
    let mut peak_threads = 0;
    while pool.queued() < count {
        peak_threads = peak_threads.max(footprint().0);
        anyhow::ensure!(
            clock.elapsed() < Duration::from_secs(600),
            "only {} of {count} waiting after 10 min",
            pool.queued()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = clock.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = footprint();
    println!(
        "{count} instances, each waiting for an actor on an unreachable node (scripts.max_live {})",
        scripts.max_live
    );
    println!(
        "all waiting after {:.1} s ({:.0} instances/s claimed, replayed and queued)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
    println!("{:<34} {:>8} {:>12}", "", "threads", "RSS (MiB)");
    println!("{:<34} {:>8} {:>12.1}", "before the runner started", before.0, before.1);
    println!("{:<34} {:>8} {:>12.1}", "with every instance waiting", after.0, after.1);
    println!("peak threads while they started: {peak_threads}");
    println!("memory per waiting instance: {:.1} KiB", (after.1 - before.1) * 1024.0 / count as f64);
    background.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(60), running).await;
    Ok(())
}
