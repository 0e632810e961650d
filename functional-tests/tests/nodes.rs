//! Scheduling over two real nodes: an image is loaded onto a node that lacks it, work spreads
//! over both, priorities order the queue when every slot is busy, and a node that vanishes
//! or hangs mid-run sends its work to the other one, which leaves nothing behind once it is
//! back.

mod common;

use std::time::{Duration, Instant};

use common::{NodeSpec, Rig, SERIAL, actor, job};
use functional_tests::{Engine, TcpProxy};
use wharf::engine::ActorStatus;

async fn two_engines() -> Option<(Engine, Engine)> {
    Some((Engine::primary_or_skip().await?, Engine::second_or_skip().await?))
}

/// Makes sure the second engine has the actor image, by running one actor there alone.
async fn warm_second(rig: &Rig, primary: &str) {
    rig.set_drained(primary, true).await;
    let report = rig.run(&job(actor("warm", "true", &[]), vec![], None)).await;
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    assert_eq!(report.node.as_deref(), Some("second"));
    rig.set_drained(primary, false).await;
}

#[tokio::test]
async fn image_is_loaded_onto_a_node_that_lacks_it() {
    let Some((primary, second)) = two_engines().await else { return };
    let _serial = SERIAL.lock().await;
    let image_there = second.docker.inspect_image("wharf/actor:latest").await.is_ok();
    if image_there {
        let _ = second
            .docker
            .remove_image("wharf/actor:latest", None::<bollard::query_parameters::RemoveImageOptions>, None)
            .await;
    }
    assert!(
        second.docker.inspect_image("wharf/actor:latest").await.is_err(),
        "the second node starts without the image"
    );
    let rig = Rig::start(&[
        NodeSpec { name: "primary", address: primary.address.clone(), capacity: 2 },
        NodeSpec { name: "second", address: second.address.clone(), capacity: 2 },
    ])
    .await;
    warm_second(&rig, "primary").await;
    assert!(second.docker.inspect_image("wharf/actor:latest").await.is_ok(), "the service loaded the image");
    rig.finish(&[&primary, &second]).await;
}

#[tokio::test]
async fn load_spreads_over_both_nodes() {
    let Some((primary, second)) = two_engines().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[
        NodeSpec { name: "primary", address: primary.address.clone(), capacity: 3 },
        NodeSpec { name: "second", address: second.address.clone(), capacity: 3 },
    ])
    .await;
    warm_second(&rig, "primary").await;
    let jobs: Vec<_> = (0..8).map(|i| job(actor(&format!("spread{i}"), "sleep 1", &[]), vec![], None)).collect();
    let reports = futures::future::join_all(jobs.iter().map(|j| rig.run(j))).await;
    let on = |node: &str| reports.iter().filter(|r| r.node.as_deref() == Some(node)).count();
    assert!(reports.iter().all(|r| r.status == ActorStatus::Succeeded), "{reports:?}");
    assert!(on("primary") >= 3 && on("second") >= 3, "8 actors on 3+3 slots: {} and {}", on("primary"), on("second"));
    rig.finish(&[&primary, &second]).await;
}

#[tokio::test]
async fn priorities_are_honoured_when_all_slots_are_busy() {
    let Some(primary) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[NodeSpec { name: "primary", address: primary.address.clone(), capacity: 1 }]).await;
    let blocker = job(actor("blocker", "sleep 2", &[]), vec![], None);
    let blocking = tokio::spawn({
        let executor = rig.executor.clone();
        async move { executor.run(&blocker, &Default::default()).await }
    });
    while rig.running("primary") < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Queued in this order: two of low priority, then one of high (lower value) priority.
    let mut waiting = Vec::new();
    for (name, priority) in [("low1", 5), ("low2", 5), ("high", 0)] {
        let mut queued = job(actor(name, "true", &[]), vec![], None);
        queued.priority = priority;
        let executor = rig.executor.clone();
        let before = rig.pool.queued();
        waiting.push(tokio::spawn(async move { executor.run(&queued, &Default::default()).await }));
        while rig.pool.queued() == before {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(blocking.await.expect("blocker").status, ActorStatus::Succeeded);
    let mut reports = Vec::new();
    for handle in waiting {
        reports.push(handle.await.expect("join"));
    }
    let (low1, low2, high) = (&reports[0], &reports[1], &reports[2]);
    assert!(reports.iter().all(|r| r.status == ActorStatus::Succeeded), "{reports:?}");
    // Each ran alone; the one that ended first got the slot first.
    assert!(high.end_time <= low1.end_time && high.end_time <= low2.end_time, "high priority ran first: {reports:?}");
    assert!(low1.end_time <= low2.end_time, "equal priorities keep their arrival order");
    rig.finish(&[&primary]).await;
}

#[tokio::test]
async fn a_node_that_vanishes_mid_run_sends_its_work_elsewhere() {
    let Some((primary, second)) = two_engines().await else { return };
    let _serial = SERIAL.lock().await;
    let proxy = TcpProxy::start(&primary.socket).await.expect("proxy");
    let rig = Rig::start(&[
        NodeSpec { name: "flaky", address: proxy.url(), capacity: 2 },
        NodeSpec { name: "second", address: second.address.clone(), capacity: 2 },
    ])
    .await;
    warm_second(&rig, "flaky").await;
    rig.set_drained("second", true).await;
    let work = job(actor("survivor", "sleep 2; echo done > out.txt", &["out.txt"]), vec![], None);
    let running = tokio::spawn({
        let executor = rig.executor.clone();
        async move { executor.run(&work, &Default::default()).await }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while rig.running("flaky") < 1 {
        assert!(Instant::now() < deadline, "the actor never started on the flaky node");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.set_drained("second", false).await;
    proxy.cut().await;
    let report = running.await.expect("join");
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    assert_eq!(report.node.as_deref(), Some("second"), "it finished on the other node");
    assert_eq!(report.attempts, 2);
    assert_eq!(rig.output(&report, "out.txt").await, b"done\n");
    assert_eq!(rig.health("flaky"), "unhealthy", "the vanished node takes no work");
    let view = rig.pool.view();
    let flaky = view.iter().find(|n| n.name == "flaky").expect("flaky listed");
    assert!(flaky.last_error.is_some(), "the node's last error is shown: {flaky:?}");

    // Back again: it heals, and the container it lost is removed.
    proxy.restore().await.expect("restore");
    rig.wait_health("flaky", "healthy").await;
    rig.finish(&[&primary, &second]).await;
}

#[tokio::test]
async fn a_node_that_stops_answering_has_its_actors_moved_within_30_s() {
    let Some((primary, second)) = two_engines().await else { return };
    let _serial = SERIAL.lock().await;
    let proxy = TcpProxy::start(&primary.socket).await.expect("proxy");
    let rig = Rig::start(&[
        NodeSpec { name: "frozen", address: proxy.url(), capacity: 2 },
        NodeSpec { name: "second", address: second.address.clone(), capacity: 2 },
    ])
    .await;
    warm_second(&rig, "frozen").await;
    rig.set_drained("second", true).await;
    let work = job(actor("patient", "sleep 3; echo done > out.txt", &["out.txt"]), vec![], None);
    let running = tokio::spawn({
        let executor = rig.executor.clone();
        async move { executor.run(&work, &Default::default()).await }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while rig.running("frozen") < 1 {
        assert!(Instant::now() < deadline, "the actor never started on the node");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.set_drained("second", false).await;
    // The engine hangs: connections stay open, nothing answers.
    proxy.freeze();
    let frozen_at = Instant::now();
    let report = running.await.expect("join");
    let moved_after = frozen_at.elapsed();
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    assert_eq!(report.node.as_deref(), Some("second"), "it finished on the other node");
    // Moved within 30 s, plus the 3 s the actor takes on the other node.
    assert!(moved_after < Duration::from_secs(33), "the actor moved {moved_after:?} after the node hung");
    println!("a hung node's actor finished elsewhere {moved_after:?} after the hang");
    assert_eq!(rig.health("frozen"), "unhealthy");
    proxy.cut().await;
    proxy.restore().await.expect("restore");
    rig.wait_health("frozen", "healthy").await;
    rig.finish(&[&primary, &second]).await;
}
