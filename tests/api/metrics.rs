//! `/metrics`: Prometheus text about instances, nodes, actors, callbacks and HTTP requests,
//! readable without a token but not from outside the allow list.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use wharf::config::{ExecutorConfig, LimitsConfig};
use wharf::engine::{ActorJob, Executor, NodePool};
use wharf::metrics::Metrics;
use wharf::model::actor::Actor;
use wharf::store::Store;

use crate::instances::wait_instance;
use crate::on_both_databases;
use crate::support::{Db, TestDb, TestServer};

on_both_databases!(metrics_show_instances_nodes_callbacks_and_requests);

/// Scrapes `/metrics` without a token and checks that Prometheus could read the answer
/// (OpenMetrics text).
async fn scrape(server: &TestServer) -> String {
    let response = server.client.get(server.url("/metrics")).send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("content type").to_owned();
    assert!(content_type.starts_with("application/openmetrics-text; version=1.0.0"), "content type {content_type}");
    let text = response.text().await.expect("text");
    check_format(&text);
    text
}

/// Every sample belongs to a family announced before it with `# HELP` and `# TYPE`, once,
/// its value is a number, and the text ends with `# EOF`.
fn check_format(text: &str) {
    let mut helped = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    assert!(text.ends_with("# EOF\n"), "ends with # EOF:\n{text}");
    for line in text.lines().filter(|line| *line != "# EOF" && !line.starts_with("# UNIT ")) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().expect("name");
            assert!(helped.insert(name.to_owned()), "one HELP for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("name and type");
            assert!(helped.contains(name), "HELP before TYPE for {name}");
            assert!(["counter", "gauge", "histogram", "info"].contains(&kind), "type of {name}: {kind}");
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none(), "one TYPE for {name}");
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample: `{line}`"));
            assert!(value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value), "value of `{line}`");
            let name = series.split('{').next().expect("name");
            assert!(name.starts_with("wharf_"), "prefixed: {line}");
            let family = [
                ("_bucket", "histogram"),
                ("_sum", "histogram"),
                ("_count", "histogram"),
                ("_total", "counter"),
                ("_info", "info"),
            ]
            .iter()
            .find_map(|(suffix, kind)| name.strip_suffix(suffix).filter(|f| types.get(*f).is_some_and(|t| t == kind)))
            .unwrap_or(name);
            assert!(types.contains_key(family), "`{line}` follows the TYPE of its family");
        }
    }
}

/// The value of the sample `series` (the exact text before the value).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn expect(text: &str, series: &str, expected: f64) {
    assert_eq!(value(text, series), Some(expected), "{series} in:\n{text}");
}

/// A callback receiver that accepts everything; returns its URL.
async fn receiver() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
    let url = format!("http://{}/done", listener.local_addr().expect("addr"));
    let app = axum::Router::new().fallback(|| async { "ok" });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// Starts an instance of `name`, with a callback to `host` if given; returns its id.
async fn start(server: &TestServer, name: &str, host: Option<&str>) -> String {
    let parameters = host.map_or_else(|| json!({}), |host| json!({"Host": host}));
    let answer = server.put("/api/v1/StateMachineInstance", json!({"name": name, "parameters": parameters})).await;
    answer.expect_ok()["id"].as_str().expect("id").to_owned()
}

async fn metrics_show_instances_nodes_callbacks_and_requests(db: Db) {
    let server = TestServer::start_with(db, |c| {
        c.callbacks.max_attempts = 2;
        c.callbacks.initial_backoff_ms = 10;
    })
    .await;
    let (receiver_url, receiver_task) = receiver().await;
    for (name, body) in [("done", "1"), ("waits", "sleep(60000)"), ("fails", "fail(\"no\")")] {
        server.put("/api/v1/StateMachine", json!({"name": name, "body": body})).await.expect_ok();
    }
    let delivered = start(&server, "done", Some(&receiver_url)).await;
    // Nothing listens on the discard port: one failed try, then given up.
    let undelivered = start(&server, "done", Some("http://127.0.0.1:9/done")).await;
    let running = start(&server, "waits", None).await;
    let cancelled = start(&server, "waits", None).await;
    let failed = start(&server, "fails", None).await;
    for id in [&delivered, &undelivered] {
        wait_instance(&server, id, "succeeded", |i| i["status"] == "Succeeded").await;
    }
    for id in [&running, &cancelled] {
        wait_instance(&server, id, "running", |i| i["status"] == "Running").await;
    }
    wait_instance(&server, &failed, "failed", |i| i["status"] == "Failed").await;
    server.delete(&format!("/api/v1/StateMachineInstance/{cancelled}")).await.expect_ok();
    server.get("/api/v1/Actor/no-such-actor").await.expect_error(404, "not found");
    server.get("/api/v1/Nothing/here").await.expect_error(404, "no route");

    // Deliveries run in the background: wait until both have ended.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape(&server).await;
        let outcome = |o: &str| value(&text, &format!("wharf_callback_deliveries_total{{outcome=\"{o}\"}}"));
        if outcome("delivered") == Some(1.0) && outcome("given_up") == Some(1.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "callbacks never ended:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    expect(&text, "wharf_callback_deliveries_total{outcome=\"failed_attempt\"}", 1.0);

    for (status, count) in [("Queued", 0.0), ("Running", 1.0), ("Succeeded", 2.0), ("Failed", 1.0), ("Cancelled", 1.0)]
    {
        expect(&text, &format!("wharf_instances{{status=\"{status}\"}}"), count);
    }

    // The configured node, whether or not this machine's engine answers.
    let up = value(&text, "wharf_node_up{node=\"local\"}");
    assert!(up == Some(0.0) || up == Some(1.0), "wharf_node_up of local: {up:?}\n{text}");
    expect(&text, "wharf_node_capacity{node=\"local\"}", 8.0);
    expect(&text, "wharf_node_running_actors{node=\"local\"}", 0.0);
    expect(&text, "wharf_actors_queued", 0.0);
    expect(&text, "wharf_node_drained{node=\"local\"}", 0.0);
    assert!(text.contains(&format!("wharf_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))), "{text}");
    // Every background worker runs, and none keeps failing.
    for worker in ["instances", "callbacks", "probes", "heartbeat"] {
        expect(&text, &format!("wharf_worker_up{{worker=\"{worker}\"}}"), 1.0);
        expect(&text, &format!("wharf_worker_consecutive_errors{{worker=\"{worker}\"}}"), 0.0);
    }

    // Requests by route template, never by raw path.
    expect(&text, "wharf_http_requests_total{method=\"PUT\",route=\"/api/v1/StateMachine\",status=\"200\"}", 3.0);
    expect(
        &text,
        "wharf_http_requests_total{method=\"PUT\",route=\"/api/v1/StateMachineInstance\",status=\"200\"}",
        5.0,
    );
    expect(
        &text,
        "wharf_http_requests_total{method=\"DELETE\",route=\"/api/v1/StateMachineInstance/{id}\",status=\"200\"}",
        1.0,
    );
    expect(&text, "wharf_http_requests_total{method=\"GET\",route=\"/api/v1/Actor/{name}\",status=\"404\"}", 1.0);
    expect(&text, "wharf_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}", 1.0);
    let polls = value(
        &text,
        "wharf_http_requests_total{method=\"GET\",route=\"/api/v1/StateMachineInstance/{id}\",status=\"200\"}",
    );
    assert!(polls.is_some_and(|n| n >= 5.0), "instance polls counted: {polls:?}");
    expect(&text, "wharf_http_request_duration_seconds_count{method=\"PUT\",route=\"/api/v1/StateMachine\"}", 3.0);
    expect(
        &text,
        "wharf_http_request_duration_seconds_bucket{le=\"+Inf\",method=\"PUT\",route=\"/api/v1/StateMachine\"}",
        3.0,
    );
    for id in [&delivered, &running, &cancelled, &failed] {
        assert!(!text.contains(id.as_str()), "no series names instance {id}");
    }
    assert!(!text.contains("no-such-actor") && !text.contains("Nothing/here"), "no raw paths:\n{text}");

    receiver_task.abort();
    server.finish().await;
}

#[tokio::test]
async fn metrics_need_no_token_but_obey_the_allow_list() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.auth.tokens = vec!["s3cret".into()]).await;
    let bare = server.client.request(Method::GET, server.url("/api/v1/Actor/All"));
    server.send(bare).await.expect_error(401, "missing access token");
    let odd = Method::from_bytes(b"BREW").expect("method");
    server.send(server.request(odd, "/api/v1/Actor/All")).await.expect_error(405, "BREW is not allowed");
    let text = scrape(&server).await;
    // Refused requests are counted too, under the route they asked for; methods outside the
    // standard ones are one label value, whatever callers invent.
    expect(&text, "wharf_http_requests_total{method=\"GET\",route=\"/api/v1/Actor/All\",status=\"401\"}", 1.0);
    expect(&text, "wharf_http_requests_total{method=\"other\",route=\"/api/v1/Actor/All\",status=\"405\"}", 1.0);
    server.finish().await;

    let server = TestServer::start_with(Db::Sqlite, |c| c.acl.allow = vec!["10.0.0.0/8".into()]).await;
    let refused = server.client.get(server.url("/metrics")).send().await.expect("scrape");
    assert_eq!(refused.status(), 403, "the allow list applies to /metrics");
    server.finish().await;
}

#[tokio::test]
async fn executor_times_every_actor_it_ends() {
    let db = TestDb::new(Db::Sqlite).await;
    let store = Store::open(&db.url, 2).await.expect("open store");
    // No nodes: the actor waits in the queue until it is cancelled.
    let config = ExecutorConfig::default();
    let membership = wharf::engine::Membership::new(&config, "test");
    let pool = NodePool::load(store.clone(), config, membership).await.expect("pool");
    let metrics = Metrics::new();
    let executor = Executor::new(store.clone(), pool, LimitsConfig::default(), 1 << 20, metrics.clone());
    let now = chrono::Utc::now();
    let actor = Actor {
        id: uuid::Uuid::new_v4(),
        name: "waits".into(),
        body: "true".into(),
        image: None,
        outputs: vec![],
        limitation: None,
        sandbox: Default::default(),
        created_at: now,
        updated_at: now,
    };
    let job = ActorJob {
        instance_id: None,
        actor,
        inputs: vec![],
        limitation: vec![],
        priority: 0,
        debug: false,
        tag: None,
        started: None,
        sandbox: Default::default(),
        ended: None,
    };
    let cancel = CancellationToken::new();
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), executor.run(&job, &cancel)).await.expect("ends");
    assert_eq!(report.status.as_str(), "Cancelled");

    let text = metrics.encode(&prometheus_client::registry::Registry::default());
    check_format(&text);
    expect(&text, "wharf_actor_duration_seconds_count{status=\"Cancelled\"}", 1.0);
    expect(&text, "wharf_actor_duration_seconds_bucket{le=\"+Inf\",status=\"Cancelled\"}", 1.0);
    expect(&text, "wharf_actor_duration_seconds_bucket{le=\"300.0\",status=\"Cancelled\"}", 1.0);
    expect(&text, "wharf_actor_run_seconds_count{status=\"Cancelled\"}", 1.0);
    expect(&text, "wharf_actor_queue_wait_seconds_count", 1.0);
    expect(&text, "wharf_actor_duration_seconds_count{status=\"Succeeded\"}", 0.0);
    store.close().await;
}
