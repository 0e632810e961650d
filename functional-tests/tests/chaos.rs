//! Three service processes on one PostgreSQL database and two real nodes, killed with SIGKILL
//! at random moments and restarted (one never comes back): every instance still succeeds, no
//! node ever runs more containers than its capacity, nothing of the deployment is left, and a
//! cancel sent to any process stops the container within 3 s. Also: one process killed ten
//! times in quick succession, and a node whose containers are wiped mid-run.

#[path = "common/service.rs"]
mod service;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptionsBuilder;
use functional_tests::{Engine, count_labelled};
use reqwest::Method;
use serde_json::{Value, json};
use service::{Api, Service, binary, config};
use sqlx::Connection;

const CAPACITY: u32 = 3;

/// A fresh PostgreSQL database for the test, dropped at the end.
struct Database {
    url: String,
    base: String,
    name: String,
}

impl Database {
    async fn create() -> Option<Database> {
        let base = match std::env::var("WHARF_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ if functional_tests::engine::on_ci() => {
                panic!("WHARF_TEST_POSTGRES_URL is not set: CI must run this test")
            }
            _ => {
                eprintln!("skipping: WHARF_TEST_POSTGRES_URL is not set (scripts/test.sh starts PostgreSQL)");
                return None;
            }
        };
        let name = format!("wharf_chaos_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect to PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create");
        let slash = base.rfind('/').expect("a database URL");
        Some(Database { url: format!("{}/{name}", &base[..slash]), base, name })
    }

    async fn drop(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.base).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
        }
    }
}

/// One service process: the real binary on its own port and config file.
struct Process {
    child: Child,
    api: Api,
    config_file: std::path::PathBuf,
}

impl Process {
    async fn start(config_file: &std::path::Path, port: u16) -> Process {
        let child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(config_file)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wharf");
        let api = Api::new(format!("http://127.0.0.1:{port}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut child = child;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "wharf did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The port answering is not enough: another listener may hold it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(child.try_wait(), Ok(None)), "wharf on port {port} exited at start: {:?}", child.try_wait());
        Process { child, api, config_file: config_file.to_owned() }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    async fn identity(&self) -> String {
        self.api.ok(Method::GET, "/healthz", None).await["process"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Writes the config of one process of deployment `deployment` and returns its file and port.
fn write_config(
    dir: &std::path::Path,
    deployment: &str,
    db: &str,
    nodes: &[(&str, &str)],
    n: usize,
) -> (std::path::PathBuf, u16) {
    let mut settings = config(dir, deployment, nodes);
    for node in &mut settings.nodes {
        node.capacity = CAPACITY;
    }
    let port = service_port();
    settings.server.bind = format!("127.0.0.1:{port}");
    settings.server.definitions = String::new();
    settings.database.url = db.to_owned();
    settings.log.filter = "warn".into();
    let file = dir.join(format!("wharf-{n}.toml"));
    std::fs::write(&file, toml::to_string(&settings).expect("toml")).expect("write config");
    (file, port)
}

/// A free port for a service process, below the kernel's ephemeral range: a port from
/// `bind(0)` could be handed to another test's listener while a killed process of ours is
/// down, and its restart would then fail to bind.
fn service_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 24_000 + (std::process::id() % 400) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::SeqCst) % 20;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Running containers of the deployment on `engine`.
async fn running(engine: &Engine, deployment: &str) -> usize {
    let label = format!("wharf.service={deployment}");
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let options = ListContainersOptionsBuilder::new().all(false).filters(&filters).build();
    engine.docker.list_containers(Some(options)).await.map(|c| c.len()).unwrap_or(0)
}

async fn put_definitions(api: &Api) {
    let step = json!({"name": "step", "body": "cat /proc/sys/kernel/random/uuid > token.txt; sleep 0.3", "outputs": ["token.txt"]});
    api.ok(Method::PUT, "/api/v1/Actor", Some(step)).await;
    let chain = "let a = run_actor(\"step\", []);\n\
                 let b = run_actors([#{actor: \"step\", inputs: [], tag: \"x\"}, #{actor: \"step\", inputs: [], tag: \"y\"}]);\n\
                 [a.container, b[0].container, b[1].container]";
    api.ok(Method::PUT, "/api/v1/StateMachine", Some(json!({"name": "chain", "body": chain}))).await;
    let long = json!({"name": "long", "body": "sleep 60", "outputs": []});
    api.ok(Method::PUT, "/api/v1/Actor", Some(long)).await;
    let hold = json!({"name": "hold", "body": "run_actor(\"long\", [])"});
    api.ok(Method::PUT, "/api/v1/StateMachine", Some(hold)).await;
}

async fn wait_all_ended(api: &Api, ids: &[String], secs: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut all = Vec::new();
        for id in ids {
            all.push(api.instance(id).await);
        }
        let ended = all.iter().filter(|i| !matches!(i["state"].as_str(), Some("Queued" | "Running"))).count();
        if ended == ids.len() {
            return all;
        }
        assert!(Instant::now() < deadline, "{ended} of {} instances ended in {secs} s", ids.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Samples both engines until told to stop; returns the most running containers seen on each.
fn sample_capacity(
    engines: Vec<Engine>,
    deployment: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<usize>> {
    tokio::spawn(async move {
        let mut peaks = vec![0; engines.len()];
        while !stop.load(Ordering::SeqCst) {
            for (i, engine) in engines.iter().enumerate() {
                peaks[i] = peaks[i].max(running(engine, &deployment).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peaks
    })
}

#[tokio::test]
async fn three_processes_killed_at_random_lose_nothing() {
    let Some(primary) = Engine::primary_or_skip().await else { return };
    let Some(second) = Engine::second_or_skip().await else { return };
    let Some(db) = Database::create().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let deployment = format!("chaos-{}", std::process::id());
    let nodes = [("one", primary.address.as_str()), ("two", second.address.as_str())];
    let mut processes = Vec::new();
    for n in 0..3 {
        let (file, port) = write_config(dir.path(), &deployment, &db.url, &nodes, n);
        processes.push((Process::start(&file, port).await, port));
    }
    let api = processes[0].0.api.clone();
    put_definitions(&api).await;
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = sample_capacity(vec![primary.clone(), second.clone()], deployment.clone(), stop_sampling.clone());

    let mut ids = Vec::new();
    for i in 0..200 {
        let api = &processes[i % 3].0.api;
        ids.push(api.start("chain", vec![], json!({})).await);
    }
    // Kill one at random every 1–3 s for 30 s and start it again; the last one killed in the
    // first half never comes back.
    let chaos_started = Instant::now();
    let mut round: u64 = 0;
    let mut gone: Option<usize> = None;
    while chaos_started.elapsed() < Duration::from_secs(30) {
        round += 1;
        tokio::time::sleep(Duration::from_millis(1000 + (round * 7919) % 2000)).await;
        let victim = (round as usize * 5 + 1) % 3;
        if Some(victim) == gone {
            continue;
        }
        processes[victim].0.kill();
        if gone.is_none() && chaos_started.elapsed() > Duration::from_secs(10) {
            gone = Some(victim);
            continue;
        }
        let (file, port) = (processes[victim].0.config_file.clone(), processes[victim].1);
        processes[victim].0 = Process::start(&file, port).await;
    }
    let survivor = (0..3).find(|i| Some(*i) != gone).expect("a live process");
    let api = processes[survivor].0.api.clone();
    let ended = wait_all_ended(&api, &ids, 600).await;
    stop_sampling.store(true, Ordering::SeqCst);
    let peaks = sampler.await.expect("sampler");

    let failed: Vec<&Value> = ended.iter().filter(|i| i["state"] != "Succeeded").collect();
    assert!(failed.is_empty(), "every instance succeeds: {failed:?}");
    assert!(
        peaks.iter().all(|peak| *peak <= CAPACITY as usize),
        "a node ran more than {CAPACITY} containers: {peaks:?}"
    );
    // No finished actor ran twice: every recorded actor has a container of its own, and each
    // instance has exactly its three.
    let mut containers = std::collections::HashSet::new();
    let mut re_runs = 0;
    for instance in &ended {
        let actors = instance["startedActors"].as_array().expect("actors");
        assert_eq!(actors.len(), 3, "three actors, each once: {instance}");
        for actor in actors {
            let container = actor["usedContainer"].as_str().expect("container").to_owned();
            assert!(containers.insert(container), "a container recorded twice: {instance}");
        }
        re_runs += instance["reRunTimes"].as_i64().unwrap_or(0);
    }
    println!("chaos: 200 instances, {round} kills over 30 s, {re_runs} re-runs, peaks per node {peaks:?}");

    // A cancel sent to any process stops the container within 3 s.
    let id = api.start("hold", vec![], json!({})).await;
    let label = format!("wharf.instance={id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_labelled(&primary.docker, &label).await.unwrap_or(0)
        + count_labelled(&second.docker, &label).await.unwrap_or(0)
        == 0
    {
        assert!(Instant::now() < deadline, "the long actor never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runner = api.instance(&id).await["runBy"].as_str().unwrap_or_default().to_owned();
    let mut elsewhere = api.clone();
    for (i, (process, _)) in processes.iter().enumerate() {
        if Some(i) != gone && process.identity().await != runner {
            elsewhere = process.api.clone();
        }
    }
    let sent = Instant::now();
    elsewhere.ok(Method::DELETE, &format!("/api/v1/StateMachineInstance/{id}"), None).await;
    while count_labelled(&primary.docker, &label).await.unwrap_or(0)
        + count_labelled(&second.docker, &label).await.unwrap_or(0)
        > 0
    {
        assert!(sent.elapsed() < Duration::from_secs(3), "the container outlived a cancel sent elsewhere by 3 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("chaos: a cancel sent to another process removed the container in {:?}", sent.elapsed());

    for (i, (process, _)) in processes.iter_mut().enumerate() {
        if Some(i) != gone {
            process.stop();
        }
    }
    // The process that never came back was taken over: nothing of the deployment is left.
    let label = format!("wharf.service={deployment}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_labelled(&primary.docker, &label).await.unwrap_or(0)
        + count_labelled(&second.docker, &label).await.unwrap_or(0)
        > 0
    {
        assert!(Instant::now() < deadline, "containers of the deployment were left behind");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.drop().await;
}

#[tokio::test]
async fn one_process_killed_ten_times_over_fifty_instances() {
    let Some(primary) = Engine::primary_or_skip().await else { return };
    let Some(db) = Database::create().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let deployment = format!("kills-{}", std::process::id());
    let (file, port) = write_config(dir.path(), &deployment, &db.url, &[("one", primary.address.as_str())], 0);
    let mut process = Process::start(&file, port).await;
    put_definitions(&process.api).await;
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(process.api.start("chain", vec![], json!({})).await);
    }
    for round in 0..10u64 {
        tokio::time::sleep(Duration::from_millis(400 + (round * 331) % 600)).await;
        process.kill();
        process = Process::start(&file, port).await;
    }
    let ended = wait_all_ended(&process.api, &ids, 600).await;
    let failed: Vec<&Value> = ended.iter().filter(|i| i["state"] != "Succeeded").collect();
    assert!(failed.is_empty(), "ten kills of the service are not the instances' fault: {failed:?}");
    process.stop();
    let label = format!("wharf.service={deployment}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_labelled(&primary.docker, &label).await.unwrap_or(0) > 0 {
        assert!(Instant::now() < deadline, "containers were left behind");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.drop().await;
}

#[tokio::test]
async fn a_wiped_node_sends_its_actors_elsewhere() {
    let Some(primary) = Engine::primary_or_skip().await else { return };
    let Some(second) = Engine::second_or_skip().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let deployment = format!("wipe-{}", std::process::id());
    let mut settings = config(dir.path(), &deployment, &[("one", &primary.address), ("two", &second.address)]);
    settings.server.definitions = String::new();
    let service = Service::start(settings).await;
    let api = service.api.clone();
    let slow = json!({"name": "slow", "body": "sleep 4; echo done > out.txt", "outputs": ["out.txt"]});
    api.ok(Method::PUT, "/api/v1/Actor", Some(slow)).await;
    let jobs: Vec<String> = (0..6).map(|i| format!("#{{actor: \"slow\", inputs: [], tag: \"{i}\"}}")).collect();
    let body = format!("let runs = run_actors([{}]);\nruns.map(|r| r.node)", jobs.join(", "));
    api.ok(Method::PUT, "/api/v1/StateMachine", Some(json!({"name": "spread", "body": body}))).await;
    let id = api.start("spread", vec![], json!({})).await;
    let label = format!("wharf.service={deployment}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while running(&second, &deployment).await == 0 {
        assert!(Instant::now() < deadline, "nothing ran on the second node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Wipe the second node's containers, as an engine restart with cleanup would.
    let mut wiped = 0;
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
    for container in second.docker.list_containers(Some(options)).await.expect("list") {
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::new().force(true).build();
        if second.docker.remove_container(container.id.as_deref().unwrap_or_default(), Some(options)).await.is_ok() {
            wiped += 1;
        }
    }
    assert!(wiped > 0, "the second node had containers to wipe");
    let done = api.wait_ended(&id, 120).await;
    assert_eq!(done["state"], "Succeeded", "every actor finished somewhere: {done}");
    let moved: Vec<&Value> =
        done["startedActors"].as_array().expect("actors").iter().filter(|a| a["usedNode"] == "one").collect();
    assert!(!moved.is_empty(), "some actors finished on the first node: {done}");
    service.stop().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_labelled(&primary.docker, &label).await.unwrap_or(0)
        + count_labelled(&second.docker, &label).await.unwrap_or(0)
        > 0
    {
        assert!(Instant::now() < deadline, "containers were left behind");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
