//! An instance's life against real nodes: kill -9 of the service mid-run loses nothing that
//! was recorded (an actor that ended while its siblings of the same call still ran included)
//! and leaves no container once it is back; a DELETE mid-run kills the actor's
//! container; the callback reaches a receiver that was down for a while, exactly once.

#[path = "common/service.rs"]
mod service;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use functional_tests::{Engine, count_labelled, count_labelled_all};
use reqwest::Method;
use serde_json::json;
use service::{Api, Receiver, Service, binary, config};

const CRASHY: &str = r#"
set_stage("First");
let marked = run_actor("mark", []);
set_stage("Second");
let slow = run_actor("slow", []);
#{ mark_container: marked.container, slow: slow.output("s.txt").text() }
"#;

async fn put_definitions(api: &Api) {
    for (name, body, outputs) in
        [("mark", "echo marked > m.txt", vec!["m.txt"]), ("slow", "sleep 6; echo ok > s.txt", vec!["s.txt"])]
    {
        api.ok(Method::PUT, "/api/v1/Actor", Some(json!({"name": name, "body": body, "outputs": outputs}))).await;
    }
    api.ok(Method::PUT, "/api/v1/StateMachine", Some(json!({"name": "crashy", "body": CRASHY}))).await;
}

/// The config file of a binary service of deployment `service` on `primary`, on a free
/// loopback port, and an API client for it.
fn binary_config(dir: &std::path::Path, service: &str, primary: &Engine) -> (std::path::PathBuf, Api) {
    let mut settings = config(dir, service, &[("one", &primary.address)]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    settings.server.bind = format!("127.0.0.1:{port}");
    settings.server.definitions = String::new();
    let config_file = dir.join("wharf.toml");
    std::fs::write(&config_file, toml::to_string(&settings).expect("toml")).expect("write config");
    (config_file, Api::new(format!("http://127.0.0.1:{port}")))
}

fn spawn(config_file: &std::path::Path) -> Child {
    spawn_logging(config_file, Stdio::null())
}

fn spawn_logging(config_file: &std::path::Path, log: Stdio) -> Child {
    Command::new(binary())
        .args(["serve", "--config"])
        .arg(config_file)
        .env_remove("WHARF_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start wharf")
}

async fn wait_listening(api: &Api) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = api.base.trim_start_matches("http://").to_owned();
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        assert!(Instant::now() < deadline, "wharf did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn kill_9_mid_run_loses_nothing_recorded() {
    let Some(primary) = Engine::primary_or_skip().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let service_name = format!("crash-{}", std::process::id());
    let (config_file, api) = binary_config(dir.path(), &service_name, &primary);

    let mut first = spawn(&config_file);
    wait_listening(&api).await;
    put_definitions(&api).await;
    let id = api.start("crashy", vec![], json!({})).await;
    let running = api
        .wait(&id, "running slow", 60, |i| {
            i["startedActors"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["name"] == "slow" && x["status"] == "Running"))
        })
        .await;
    let marked = running["startedActors"]
        .as_array()
        .expect("actors")
        .iter()
        .find(|a| a["name"] == "mark")
        .cloned()
        .expect("mark ran");
    // This deployment's slow container: other tests run a `slow` actor at the same time.
    let service_label = format!("wharf.service={service_name}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_labelled_all(&primary.docker, &[&service_label, "wharf.actor=slow"]).await.expect("count") == 0 {
        assert!(Instant::now() < deadline, "the slow actor's container never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().expect("kill -9");
    let _ = first.wait();
    assert!(
        count_labelled(&primary.docker, &service_label).await.expect("count") >= 1,
        "the container outlives the service"
    );

    let mut second = spawn(&config_file);
    wait_listening(&api).await;
    let done = api.wait_ended(&id, 90).await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    assert_eq!(done["reRunTimes"], 1);
    assert_eq!(done["result"]["slow"], "ok\n");
    let actors = done["startedActors"].as_array().expect("actors");
    let marks: Vec<_> = actors.iter().filter(|a| a["name"] == "mark").collect();
    assert_eq!(marks.len(), 1, "the finished actor is not run again: {actors:?}");
    assert_eq!(marks[0]["usedContainer"], marked["usedContainer"], "its record is the one from before the crash");
    assert_eq!(done["result"]["mark_container"], marked["usedContainer"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_labelled(&primary.docker, &service_label).await.expect("count") > 0 {
        assert!(Instant::now() < deadline, "containers were left behind");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = Command::new("kill").args(["-TERM", &second.id().to_string()]).status();
    let status = second.wait().expect("wait");
    assert!(status.success(), "a clean stop: {status:?}");
}

#[tokio::test]
async fn an_actor_that_ended_before_a_crash_is_not_run_again() {
    let Some(primary) = Engine::primary_or_skip().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let (config_file, api) = binary_config(dir.path(), &format!("pair-{}", std::process::id()), &primary);

    let mut first = spawn(&config_file);
    wait_listening(&api).await;
    put_definitions(&api).await;
    let pair = "let r = run_actors([#{actor: \"mark\", inputs: []}, #{actor: \"slow\", inputs: []}]);\nr[0].container";
    api.ok(Method::PUT, "/api/v1/StateMachine", Some(json!({"name": "pair", "body": pair}))).await;
    let id = api.start("pair", vec![], json!({})).await;
    // The quick one has ended while the slow one of the same call still runs.
    let running = api
        .wait(&id, "mark ended", 60, |i| {
            i["startedActors"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["name"] == "mark" && x["state"] == "Succeeded"))
        })
        .await;
    let marked = running["startedActors"][0]["usedContainer"].as_str().expect("container").to_owned();
    first.kill().expect("kill -9");
    let _ = first.wait();

    let mut second = spawn(&config_file);
    wait_listening(&api).await;
    let done = api.wait_ended(&id, 90).await;
    assert_eq!(done["state"], "Succeeded", "{done}");
    assert_eq!(done["result"], marked.as_str(), "the ended actor's record from before the crash is the one used");
    assert_eq!(done["startedActors"][0]["usedContainer"], marked.as_str());
    let _ = Command::new("kill").args(["-TERM", &second.id().to_string()]).status();
    let _ = second.wait();
}

#[tokio::test]
async fn delete_mid_run_kills_the_container_and_calls_back_once() {
    let Some(primary) = Engine::primary_or_skip().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let service_name = format!("cancel-{}", std::process::id());
    let mut settings = config(dir.path(), &service_name, &[("one", &primary.address)]);
    settings.server.definitions = String::new();
    let service = Service::start(settings).await;
    let api = service.api.clone();
    api.ok(Method::PUT, "/api/v1/Actor", Some(json!({"name": "forever", "body": "sleep 300"}))).await;
    api.ok(
        Method::PUT,
        "/api/v1/StateMachine",
        Some(json!({"name": "stuck", "body": "set_stage(\"Wait\"); run_actor(\"forever\", []); 1"})),
    )
    .await;
    let receiver = Receiver::reserve();
    let id = api.start("stuck", vec![], json!({"Host": receiver.url("/done")})).await;
    let label = format!("wharf.service={service_name}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_labelled(&primary.docker, &label).await.expect("count") == 0 {
        assert!(Instant::now() < deadline, "the actor's container never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = api.ok(Method::DELETE, &format!("/api/v1/StateMachineInstance/{id}"), None).await;
    assert_eq!(answer["cancelled"], 1);
    assert_eq!(api.instance(&id).await["state"], "Cancelled");
    let deadline = Instant::now() + Duration::from_secs(20);
    while count_labelled(&primary.docker, &label).await.expect("count") > 0 {
        assert!(Instant::now() < deadline, "the cancelled actor's container is still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The receiver was down; it comes up and gets the delivery once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pending = api.instance(&id).await;
    assert_eq!(pending["callbacks"][0]["status"], "Pending", "{pending}");
    assert!(pending["callbacks"][0]["attempts"].as_i64().unwrap_or(0) >= 1);
    receiver.listen().await;
    let got = receiver.expect(1).await;
    let payload: serde_json::Value = serde_json::from_slice(&got[0].body).expect("json");
    assert_eq!(payload["state"], "Cancelled");
    assert_eq!(payload["status"], "Failed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.instance(&id).await["state"], "Cancelled", "a cancelled instance stays cancelled");
    service.stop().await;
}

#[tokio::test]
async fn json_logs_carry_instance_actor_node_and_container() {
    let Some(primary) = Engine::primary_or_skip().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let mut settings = config(dir.path(), &format!("logs-{}", std::process::id()), &[("one", &primary.address)]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    settings.server.bind = format!("127.0.0.1:{port}");
    settings.server.definitions = String::new();
    settings.log.format = "json".into();
    let config_file = dir.path().join("wharf.toml");
    std::fs::write(&config_file, toml::to_string(&settings).expect("toml")).expect("write config");
    let log_path = dir.path().join("wharf.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let api = Api::new(format!("http://127.0.0.1:{port}"));
    let mut service = spawn_logging(&config_file, Stdio::from(log));
    wait_listening(&api).await;
    api.ok(Method::PUT, "/api/v1/Actor", Some(json!({"name": "say", "body": "echo hi"}))).await;
    api.ok(Method::PUT, "/api/v1/StateMachine", Some(json!({"name": "once", "body": "run_actor(\"say\", []); 1"})))
        .await;
    let id = api.start("once", vec![], json!({})).await;
    let done = api.wait_ended(&id, 60).await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    let container = done["startedActors"][0]["usedContainer"].as_str().expect("container").to_owned();
    let _ = Command::new("kill").args(["-TERM", &service.id().to_string()]).status();
    let _ = service.wait();

    let text = std::fs::read_to_string(&log_path).expect("read log");
    let lines: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty() && lines.len() == text.lines().count(), "every log line is JSON: {text}");
    let created = lines
        .iter()
        .find(|l| l["fields"]["message"] == "container created")
        .unwrap_or_else(|| panic!("no `container created` line: {text}"));
    let spans = created["spans"].as_array().expect("span list");
    let field = |name: &str| spans.iter().find_map(|s| s.get(name).and_then(|v| v.as_str()).map(str::to_owned));
    assert_eq!(field("instance_id").as_deref(), Some(id.as_str()), "{created}");
    assert_eq!(field("actor").as_deref(), Some("say"), "{created}");
    assert_eq!(field("node").as_deref(), Some("one"), "{created}");
    assert_eq!(field("container").as_deref(), Some(container.as_str()), "{created}");
}
