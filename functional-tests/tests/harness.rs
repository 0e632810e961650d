//! The harness itself, against real engines: both nodes answer over their unix sockets and
//! through a `TcpProxy`, a cut proxy fails requests at once and a restored one serves again,
//! and the label counter sees exactly the containers that carry a label.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{EventsOptions, RemoveContainerOptionsBuilder, RemoveVolumeOptions};
use functional_tests::{Engine, TcpProxy, connect_tcp, count_labelled};
use futures::StreamExt;

/// How long a request may take to fail once its node is cut.
const FAILS_WITHIN: Duration = Duration::from_secs(2);

const ACTOR_IMAGE: &str = "wharf/actor:latest";

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), unix_time().as_nanos())
}

fn unix_time() -> Duration {
    // The clock is past 1970 on any machine these tests run on.
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The engines present: the primary one and, when set up, the second.
async fn engines() -> Vec<Engine> {
    let mut engines = Vec::new();
    engines.extend(Engine::primary_or_skip().await);
    engines.extend(Engine::second_or_skip().await);
    engines
}

#[tokio::test]
async fn both_engines_answer_over_their_unix_sockets() {
    let (Some(primary), Some(second)) = (Engine::primary_or_skip().await, Engine::second_or_skip().await) else {
        return;
    };
    let mut ids = Vec::new();
    for engine in [&primary, &second] {
        let pong = engine.docker.ping().await.expect("ping over the unix socket");
        assert_eq!(pong, "OK", "{}", engine.address);
        let info = engine.docker.info().await.expect("info over the unix socket");
        eprintln!(
            "{}: engine {:?}, API {} negotiated, {} images",
            engine.address,
            info.server_version,
            engine.docker.client_version(),
            info.images.unwrap_or_default()
        );
        ids.push(info.id.expect("the engine reports its ID"));
    }
    assert_ne!(ids[0], ids[1], "the two engines must be two nodes, not one seen twice");
}

#[tokio::test]
async fn each_engine_answers_through_a_tcp_proxy() {
    for engine in engines().await {
        let proxy = TcpProxy::start(&engine.socket).await.expect("start the proxy");
        assert!(proxy.url().starts_with("tcp://127.0.0.1:"), "{}", proxy.url());
        let docker = connect_tcp(&proxy.url()).await.expect("negotiate through the proxy");
        assert_eq!(docker.ping().await.expect("ping through the proxy"), "OK");
        let through = docker.info().await.expect("info through the proxy").id;
        let direct = engine.docker.info().await.expect("info over the unix socket").id;
        assert_eq!(through, direct, "{} through {} is another engine", engine.address, proxy.url());
    }
}

#[tokio::test]
async fn a_cut_proxy_fails_requests_at_once_and_a_restored_one_serves_again() {
    for engine in engines().await {
        check_cut_and_restore(&engine).await;
    }
}

async fn check_cut_and_restore(engine: &Engine) {
    let proxy = TcpProxy::start(&engine.socket).await.expect("start the proxy");
    let docker = connect_tcp(&proxy.url()).await.expect("negotiate through the proxy");

    // In flight: an event stream through the proxy that has already delivered an event (the
    // replayed creation of a fresh volume) and waits for more.
    let volume = unique("wharf-test-cut");
    let since = (unix_time().as_secs() - 60).to_string();
    let request = VolumeCreateRequest { name: Some(volume.clone()), ..Default::default() };
    engine.docker.create_volume(request).await.expect("create a volume");
    let filters =
        HashMap::from([("type".to_owned(), vec!["volume".to_owned()]), ("volume".to_owned(), vec![volume.clone()])]);
    let options = EventsOptions { since: Some(since), until: None, filters: Some(filters) };
    let mut events = docker.events(Some(options));
    let first = tokio::time::timeout(Duration::from_secs(10), events.next()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "{}: the volume's creation was not replayed: {first:?}", engine.address);
    assert!(proxy.connections() >= 1, "the event stream goes through the proxy");

    let cut_at = Instant::now();
    proxy.cut().await;
    assert!(proxy.is_cut());
    assert_eq!(proxy.connections(), 0);
    let in_flight = tokio::time::timeout(FAILS_WITHIN, events.next())
        .await
        .expect("the in-flight request must end once the node is cut, not hang");
    assert!(!matches!(in_flight, Some(Ok(_))), "a cut node delivered an event: {in_flight:?}");
    let refused = tokio::time::timeout(FAILS_WITHIN, docker.ping())
        .await
        .expect("a new request to a cut node must fail at once, not hang");
    assert!(refused.is_err(), "a cut node answered ping");
    eprintln!(
        "{}: cut; within {:?} the in-flight request ended with {in_flight:?}, a new one with {refused:?}",
        engine.address,
        cut_at.elapsed()
    );

    proxy.cut().await; // cutting twice is harmless
    let port = proxy.addr();
    proxy.restore().await.expect("listen again on the same port");
    proxy.restore().await.expect("restoring twice is harmless");
    assert_eq!(proxy.addr(), port);
    assert_eq!(docker.ping().await.expect("ping after restore"), "OK");

    engine.docker.remove_volume(&volume, None::<RemoveVolumeOptions>).await.expect("remove the volume");
}

#[tokio::test]
async fn the_label_counter_sees_a_labelled_container_until_it_is_removed() {
    let Some(engine) = Engine::primary_or_skip().await else {
        return;
    };
    if engine.docker.inspect_image(ACTOR_IMAGE).await.is_err() {
        assert!(!functional_tests::engine::on_ci(), "{ACTOR_IMAGE} is missing: run images/build.sh");
        eprintln!("skipping: {ACTOR_IMAGE} is missing on {} (bash images/build.sh)", engine.address);
        return;
    }
    let value = unique("harness");
    let label = format!("wharf.test={value}");

    assert_eq!(count_labelled(&engine.docker, &label).await.expect("count"), 0);
    let body = ContainerCreateBody {
        image: Some(ACTOR_IMAGE.to_owned()),
        cmd: Some(vec!["true".to_owned()]),
        labels: Some(HashMap::from([("wharf.test".to_owned(), value.clone())])),
        host_config: Some(HostConfig { network_mode: Some("none".to_owned()), ..Default::default() }),
        ..Default::default()
    };
    let created = engine.docker.create_container(None, body).await.expect("create a labelled container");

    let counted = count_labelled(&engine.docker, &label).await;
    let counted_by_key = count_labelled(&engine.docker, "wharf.test").await;
    let removed = engine
        .docker
        .remove_container(&created.id, Some(RemoveContainerOptionsBuilder::new().force(true).build()))
        .await;
    assert_eq!(counted.expect("count"), 1, "the labelled container, stopped, is counted");
    assert!(counted_by_key.expect("count by key") >= 1, "a bare key matches any value");
    removed.expect("remove the container");
    assert_eq!(count_labelled(&engine.docker, &label).await.expect("count"), 0);

    if let Some(second) = Engine::second_or_skip().await {
        assert_eq!(count_labelled(&second.docker, &label).await.expect("count on engine 2"), 0);
    }
}
