//! Benchmark (not a test): N trivial actors through wharf's executor, in fresh containers and
//! in warm ones, versus a bare loop doing the fresh container lifecycle with bollard directly,
//! at the same concurrency, in the same run, on the local engine. Prints the three, their
//! ratios, and where the time goes (a warm run has no create, start or remove).
//!
//!   cargo run --release --example bench_executor -- [actors=40] [concurrency=4]
//!
//! Needs the `wharf/actor:latest` image (`bash images/build.sh`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures::StreamExt;
use support::{IMAGE, LocalExecutor};
use tokio_util::sync::CancellationToken;
use wharf::engine::{ActorStatus, Sandbox};

#[path = "support/mod.rs"]
mod support;

const SCRIPT: &str = "cat in.txt > out.txt";

#[derive(Default, Clone, Copy)]
struct Phases([Duration; 6]);

const PHASES: [&str; 6] = ["create", "upload", "start", "wait", "collect", "remove"];

impl Phases {
    fn add(&mut self, other: &Phases) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wharf::install_crypto_provider();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let actors = args.first().copied().unwrap_or(40);
    let concurrency = args.get(1).copied().unwrap_or(4);
    let docker = Docker::connect_with_unix("/var/run/docker.sock", 120, bollard::API_DEFAULT_VERSION)?
        .negotiate_version()
        .await?;
    docker.inspect_image(IMAGE).await.map_err(|e| anyhow::anyhow!("{IMAGE} missing ({e}); run images/build.sh"))?;

    // Warm both paths once so that neither pays for first-use costs.
    bare(&docker, 1, 1).await?;
    let (bare_time, bare_phases) = bare(&docker, actors, concurrency).await?;
    let (wharf_time, wharf_phases) = through_wharf(actors, concurrency, Sandbox::Fresh).await?;
    let (warm_time, warm_phases) = through_wharf(actors, concurrency, Sandbox::Warm).await?;

    println!("{actors} actors, concurrency {concurrency}, image {IMAGE}, script `{SCRIPT}`");
    println!("{:<28} {:>9} {:>12}", "", "wall (s)", "actors/s");
    println!(
        "{:<28} {:>9.2} {:>12.1}",
        "bare bollard loop",
        bare_time.as_secs_f64(),
        actors as f64 / bare_time.as_secs_f64()
    );
    println!(
        "{:<28} {:>9.2} {:>12.1}",
        "wharf executor",
        wharf_time.as_secs_f64(),
        actors as f64 / wharf_time.as_secs_f64()
    );
    println!(
        "{:<28} {:>9.2} {:>12.1}",
        "wharf executor, warm",
        warm_time.as_secs_f64(),
        actors as f64 / warm_time.as_secs_f64()
    );
    println!("ratio wharf fresh / bare (wall): {:.2}", wharf_time.as_secs_f64() / bare_time.as_secs_f64());
    println!("ratio warm / bare (actors per second): {:.2}", bare_time.as_secs_f64() / warm_time.as_secs_f64());
    println!("\nmean per actor (ms)   {}", PHASES.map(|p| format!("{p:>8}")).join(""));
    for (label, phases) in [("bare", bare_phases), ("wharf", wharf_phases), ("warm", warm_phases)] {
        let cells: Vec<String> =
            phases.0.iter().map(|d| format!("{:>8.1}", d.as_secs_f64() * 1000.0 / actors as f64)).collect();
        println!("{label:<21} {}", cells.join(""));
    }
    Ok(())
}

/// The container lifecycle by hand: create, upload, start, wait, download, remove.
async fn bare(docker: &Docker, actors: usize, concurrency: usize) -> anyhow::Result<(Duration, Phases)> {
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let clock = Instant::now();
    let runs = (0..actors).map(|i| {
        let docker = docker.clone();
        let gate = gate.clone();
        async move {
            let _permit = gate.acquire().await?;
            one_bare(&docker, i).await
        }
    });
    let mut total = Phases::default();
    for result in futures::future::join_all(runs).await {
        total.add(&result?);
    }
    Ok((clock.elapsed(), total))
}

async fn one_bare(docker: &Docker, i: usize) -> anyhow::Result<Phases> {
    let mut phases = Phases::default();
    let mut clock = Instant::now();
    let mut lap = |phases: &mut Phases, n: usize| {
        phases.0[n] = clock.elapsed();
        clock = Instant::now();
    };
    let body = ContainerCreateBody {
        image: Some(IMAGE.into()),
        entrypoint: Some(vec!["/bin/sh".into(), "/actor/run".into()]),
        working_dir: Some("/workdir".into()),
        user: Some("1000:1000".into()),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            memory: Some(256 << 20),
            network_mode: Some("none".into()),
            cap_drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!("bench-bare-{}-{i}", std::process::id());
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let id = docker.create_container(Some(options), body).await?.id;
    lap(&mut phases, 0);
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content, mode) in
        [("actor/run", SCRIPT.as_bytes(), 0o755), ("workdir/in.txt", b"hello\n".as_slice(), 0o644)]
    {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_uid(1000);
        header.set_gid(1000);
        tar.append_data(&mut header, path, content)?;
    }
    let upload = UploadToContainerOptionsBuilder::default().path("/").build();
    docker.upload_to_container(&id, Some(upload), bollard::body_full(tar.into_inner()?.into())).await?;
    lap(&mut phases, 1);
    docker.start_container(&id, None).await?;
    lap(&mut phases, 2);
    let mut wait = docker.wait_container(&id, None);
    while let Some(status) = wait.next().await {
        status?;
    }
    lap(&mut phases, 3);
    let download = DownloadFromContainerOptionsBuilder::default().path("/workdir/out.txt").build();
    let mut stream = docker.download_from_container(&id, Some(download));
    let mut archive = Vec::new();
    while let Some(chunk) = stream.next().await {
        archive.extend_from_slice(&chunk?);
    }
    lap(&mut phases, 4);
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    docker.remove_container(&id, Some(remove)).await?;
    lap(&mut phases, 5);
    Ok(phases)
}

/// The same work as actors through wharf's pool and executor, on a fresh SQLite store: each in
/// a fresh container, or all as runs of one instance in warm ones.
async fn through_wharf(actors: usize, concurrency: usize, sandbox: Sandbox) -> anyhow::Result<(Duration, Phases)> {
    let local = LocalExecutor::start(concurrency).await?;
    let input = local.blob("in.txt", b"hello\n").await?;
    let actor = support::actor("bench", SCRIPT, &["out.txt".into()]);
    let instance = Some(uuid::Uuid::new_v4());
    let job = support::job(&actor, &[input], instance, sandbox);
    let never = CancellationToken::new();
    local.executor.run(&job, &never).await; // warm-up
    let clock = Instant::now();
    let reports = futures::future::join_all((0..actors).map(|_| local.executor.run(&job, &never))).await;
    let elapsed = clock.elapsed();
    local.executor.warm().close().await;
    let mut total = Phases::default();
    for report in &reports {
        anyhow::ensure!(report.status == ActorStatus::Succeeded, "actor failed: {:?}", report.exception);
        if let Some(t) = &report.timings {
            total.add(&Phases([t.create, t.upload, t.start, t.wait, t.collect, t.remove]));
        }
    }
    Ok((elapsed, total))
}
