//! Benchmark (not a test): fresh containers versus warm sandboxes for the shipped judge, in
//! the same run, on the local engine.
//!
//! 1. The judge's test step (`judge-run`: the runner measures `Main.out` on one `stdin.txt`)
//!    for N trivial tests of one instance, straight through wharf's executor: wall time, the
//!    runner's summed TotalTime and wall / summed; then runs one at a time, for the median
//!    overhead of one run (its wall minus the runner's TotalTime) and where it goes.
//! 2. The whole `judge` (compile, N runs, compare) through the HTTP API of a service on
//!    PostgreSQL (`WHARF_TEST_POSTGRES_URL`, e.g. from `scripts/postgres.sh start`; SQLite
//!    when unset), from PUT to Succeeded, warm as shipped and fresh (the same script asking
//!    for fresh containers), to show what the database and the script add to the runs.
//!
//!   cargo run --release --example bench_warm -- [concurrency=4] [tests=10 40 100]
//!
//! Needs the `wharf/actor:latest` image (`bash images/build.sh`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::service::ApiService;
use support::{LocalExecutor, median};
use tokio_util::sync::CancellationToken;
use wharf::engine::{ActorStatus, Sandbox};

#[path = "support/mod.rs"]
mod support;

const JUDGE_RUN: &str = include_str!("../config/definitions/actors/judge-run.toml");
const JUDGE: &str = include_str!("../config/definitions/state_machines/judge.rhai");
const PROGRAM: &[u8] = b"#!/bin/sh\nread a b\necho $((a + b))\n";

#[derive(serde::Deserialize)]
struct ActorFile {
    body: String,
    outputs: Vec<String>,
}

/// Runs measured one at a time.
const SEQUENTIAL: usize = 40;

/// One side of a comparison of N tests at once.
struct Measured {
    wall: Duration,
    runner_total: Duration,
}

/// Medians of runs one at a time, in ms.
struct PerRun {
    wall_ms: f64,
    runner_ms: f64,
    /// A run's wall minus the runner's TotalTime.
    overhead_ms: f64,
    /// Its container made, started and given the inputs; waited for; outputs collected and
    /// the container removed; the rest (inputs looked up, the log stored, the verdict).
    phases_ms: [f64; 4],
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wharf::install_crypto_provider();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let concurrency = args.first().copied().unwrap_or(4);
    let sizes = if args.len() > 1 { args[1..].to_vec() } else { vec![10, 40, 100] };

    let local = LocalExecutor::start(concurrency).await?;
    let file: ActorFile = toml::from_str(JUDGE_RUN)?;
    let actor = support::actor("judge-run", &file.body, &file.outputs);
    let inputs = [
        local.blob("Main.out", PROGRAM).await?,
        local.blob("stdin.txt", b"1 2\n").await?,
        local.blob("time.txt", b"1000").await?,
    ];
    // Both paths once, so that neither pays for first-use costs.
    run_tests(&local, &actor, &inputs, 1, Sandbox::Fresh).await?;
    run_tests(&local, &actor, &inputs, 1, Sandbox::Warm).await?;

    println!("1. judge-run through the executor: trivial tests, concurrency {concurrency}, image {}", support::IMAGE);
    println!(
        "{:>6} {:>9} {:>9} {:>8} {:>12} {:>12}",
        "tests", "fresh s", "warm s", "f / w", "fresh wall/", "warm wall/"
    );
    println!("{:>6} {:>9} {:>9} {:>8} {:>12} {:>12}", "", "", "", "", "runner sum", "runner sum");
    let mut executor_warm = Vec::new();
    for &tests in &sizes {
        let fresh = run_tests(&local, &actor, &inputs, tests, Sandbox::Fresh).await?;
        let warm = run_tests(&local, &actor, &inputs, tests, Sandbox::Warm).await?;
        println!(
            "{tests:>6} {:>9.2} {:>9.2} {:>8.2} {:>12.1} {:>12.1}",
            fresh.wall.as_secs_f64(),
            warm.wall.as_secs_f64(),
            fresh.wall.as_secs_f64() / warm.wall.as_secs_f64(),
            fresh.wall.as_secs_f64() / fresh.runner_total.as_secs_f64(),
            warm.wall.as_secs_f64() / warm.runner_total.as_secs_f64(),
        );
        executor_warm.push(warm.wall);
    }
    println!("\none run at a time, {SEQUENTIAL} runs: median ms of a run's wall, and of its parts");
    println!(
        "{:>6} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "", "wall", "runner", "overhead", "start", "wait", "collect", "rest"
    );
    for sandbox in [Sandbox::Fresh, Sandbox::Warm] {
        let m = run_one_at_a_time(&local, &actor, &inputs, sandbox).await?;
        let [start, wait, collect, rest] = m.phases_ms;
        println!(
            "{:>6} {:>8.1} {:>8.1} {:>9.1} {start:>8.1} {wait:>8.1} {collect:>8.1} {rest:>8.1}",
            sandbox.as_str(),
            m.wall_ms,
            m.runner_ms,
            m.overhead_ms,
        );
    }
    drop(local);

    let database = std::env::var("WHARF_TEST_POSTGRES_URL").ok();
    let service = ApiService::start(database.as_deref(), concurrency, |_| {}).await?;
    // The shipped judge asking for fresh containers: the baseline.
    let fresh = JUDGE.replace("sandbox: \"warm\"", "sandbox: \"fresh\"");
    anyhow::ensure!(fresh != JUDGE, "judge.rhai no longer asks for warm sandboxes");
    service.call(reqwest::Method::PUT, "/StateMachine", json!({"name": "judge-fresh", "body": fresh})).await?;
    println!("\n2. the judge through the API on {}: PUT to Succeeded", service.backend);
    println!("{:>6} {:>9} {:>9} {:>8} {:>14}", "tests", "fresh s", "warm s", "f / w", "warm api/exec");
    for (&tests, exec_warm) in sizes.iter().zip(&executor_warm) {
        let blobs = submission(&service, tests).await?;
        let fresh = judge(&service, "judge-fresh", &blobs).await?;
        let warm = judge(&service, "judge", &blobs).await?;
        println!(
            "{tests:>6} {:>9.2} {:>9.2} {:>8.2} {:>14.2}",
            fresh.as_secs_f64(),
            warm.as_secs_f64(),
            fresh.as_secs_f64() / warm.as_secs_f64(),
            warm.as_secs_f64() / exec_warm.as_secs_f64(),
        );
    }
    service.stop().await
}

/// `tests` runs of one instance at once; each must succeed.
async fn run_tests(
    local: &LocalExecutor,
    actor: &wharf::model::actor::Actor,
    inputs: &[wharf::model::blob::BlobRef],
    tests: usize,
    sandbox: Sandbox,
) -> anyhow::Result<Measured> {
    let instance = uuid::Uuid::new_v4();
    let never = CancellationToken::new();
    let job = support::job(actor, inputs, Some(instance), sandbox);
    let clock = Instant::now();
    let reports = futures::future::join_all((0..tests).map(|_| local.executor.run(&job, &never))).await;
    let wall = clock.elapsed();
    local.executor.warm().end_instance(instance);
    let mut runner_total = Duration::ZERO;
    for report in &reports {
        runner_total += runner_time(local, report).await?;
    }
    Ok(Measured { wall, runner_total })
}

/// The runner's TotalTime of a run that must have succeeded.
async fn runner_time(local: &LocalExecutor, report: &wharf::engine::ActorReport) -> anyhow::Result<Duration> {
    anyhow::ensure!(report.status == ActorStatus::Succeeded, "test failed: {:?}", report.exception);
    let figures = report.outputs.iter().find(|b| b.name == "runner.json").expect("runner.json");
    let figures: Value = serde_json::from_slice(&local.read(figures).await?)?;
    Ok(Duration::from_millis(figures["TotalTime"].as_u64().unwrap_or(0)))
}

/// `SEQUENTIAL` runs of one instance, each after the one before.
async fn run_one_at_a_time(
    local: &LocalExecutor,
    actor: &wharf::model::actor::Actor,
    inputs: &[wharf::model::blob::BlobRef],
    sandbox: Sandbox,
) -> anyhow::Result<PerRun> {
    let instance = uuid::Uuid::new_v4();
    let never = CancellationToken::new();
    let job = support::job(actor, inputs, Some(instance), sandbox);
    let (mut walls, mut runners, mut overheads) = (Vec::new(), Vec::new(), Vec::new());
    let mut phases: [Vec<f64>; 4] = Default::default();
    for _ in 0..SEQUENTIAL {
        let clock = Instant::now();
        let report = local.executor.run(&job, &never).await;
        let wall = clock.elapsed();
        let runner = runner_time(local, &report).await?;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        walls.push(ms(wall));
        runners.push(ms(runner));
        overheads.push(ms(wall.saturating_sub(runner)));
        if let Some(t) = &report.timings {
            let (start, collect) = (t.create + t.upload + t.start, t.collect + t.remove);
            let rest = wall.saturating_sub(start + t.wait + collect);
            for (at, phase) in [start, t.wait, collect, rest].into_iter().enumerate() {
                phases[at].push(ms(phase));
            }
        }
    }
    local.executor.warm().end_instance(instance);
    Ok(PerRun {
        wall_ms: median(walls),
        runner_ms: median(runners),
        overhead_ms: median(overheads),
        phases_ms: phases.map(median),
    })
}

/// A shell submission and `tests` trivial tests it passes.
async fn submission(service: &ApiService, tests: usize) -> anyhow::Result<Vec<Value>> {
    let mut blobs = vec![service.blob("Main.sh", b"read a b\necho $((a + b))\n").await?];
    for i in 1..=tests {
        blobs.push(service.blob(&format!("input_{i}.txt"), format!("{i} 1\n").as_bytes()).await?);
        blobs.push(service.blob(&format!("answer_{i}.txt"), format!("{}\n", i + 1).as_bytes()).await?);
    }
    Ok(blobs)
}

/// From PUT to Succeeded, with every test accepted.
async fn judge(service: &ApiService, machine: &str, blobs: &[Value]) -> anyhow::Result<Duration> {
    let (took, instance) = service.run(machine, blobs).await?;
    let verdict = &instance["result"]["verdict"];
    anyhow::ensure!(instance["status"] == "Succeeded", "{machine} ended: {instance}");
    anyhow::ensure!(verdict == "Accepted", "{machine}: {verdict}: {}", instance["result"]);
    Ok(took)
}
