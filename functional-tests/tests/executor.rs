//! The executor against real engines: outputs come back byte-exact, the runner's figures are
//! right, hostile actors get the right verdict while the node stays healthy, and nothing is
//! left behind.

mod common;

use common::{HostileCase, NodeSpec, Rig, SERIAL, actor, hostile_cases, job};
use functional_tests::Engine;
use wharf::engine::ActorStatus;

fn primary_node(engine: &Engine, capacity: i64) -> NodeSpec<'static> {
    NodeSpec { name: "primary", address: engine.address.clone(), capacity }
}

/// Bytes that do not repeat, so a shuffled or cut file shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7919) % 251) as u8 ^ (i >> 11) as u8).collect()
}

#[tokio::test]
async fn outputs_come_back_byte_exact() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[primary_node(&engine, 4)]).await;
    let input = pattern(3 << 20);
    let blob = rig.blob("in.bin", &input).await;
    let body = "cat in.bin > out.bin\necho hello > note.txt\nprintf '{\"Outputs\": [\"note.txt\"]}' > return.json\n";
    let report = rig.run(&job(actor("copy", body, &["out.bin"]), vec![blob], None)).await;
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    assert!(rig.output(&report, "out.bin").await == input, "out.bin is byte-exact");
    assert_eq!(rig.output(&report, "note.txt").await, b"hello\n", "return.json adds outputs, as in JoyOI");
    assert_eq!(report.node.as_deref(), Some("primary"));
    assert_eq!(report.exit_code, Some(0));
    rig.finish(&[&engine]).await;
}

#[tokio::test]
async fn runner_measures_a_busy_loop_and_a_memory_hog() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[primary_node(&engine, 4)]).await;
    let busy = "printf '1000\\n/bin/sh -c \"while :; do :; done\"\\n' | runner\n";
    let report = rig.run(&job(actor("busy", busy, &["runner.json"]), vec![], None)).await;
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    let figures: serde_json::Value = serde_json::from_slice(&rig.output(&report, "runner.json").await).expect("json");
    assert_eq!(figures["IsTimeout"], true, "{figures}");
    let user = figures["UserTime"].as_i64().expect("UserTime");
    let total = figures["TotalTime"].as_i64().expect("TotalTime");
    assert!((700..=1500).contains(&user), "a busy loop uses about a second of CPU: {figures}");
    assert!((1000..=3000).contains(&total), "it is stopped at its limit: {figures}");

    let hog = "printf '5000\\ndd if=/dev/zero of=/dev/null bs=64M count=1\\n' | runner\n";
    let report = rig.run(&job(actor("hog", hog, &["runner.json"]), vec![], None)).await;
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    let figures: serde_json::Value = serde_json::from_slice(&rig.output(&report, "runner.json").await).expect("json");
    let peak = figures["PeakMemory"].as_i64().expect("PeakMemory");
    assert!((60 << 20..=100 << 20).contains(&peak), "a 64 MiB buffer shows as ~64 MiB: {figures}");
    assert_eq!(figures["ExitCode"], 0);
    rig.finish(&[&engine]).await;
}

#[tokio::test]
async fn hostile_actors_get_the_right_verdict_and_the_node_stays_healthy() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[primary_node(&engine, 4)]).await;
    for HostileCase { name, body, outputs, limitation, verdict } in hostile_cases() {
        let report = rig.run(&job(actor(name, body, outputs), vec![], limitation)).await;
        let exception = report.exception.clone().unwrap_or_default();
        assert_eq!(report.status, ActorStatus::Failed, "{name}: {report:?}");
        assert!(exception.starts_with(verdict), "{name}: `{exception}` should start with `{verdict}`");
        assert_eq!(rig.health("primary"), "healthy", "{name} does not make the node unhealthy");
        if name == "network" {
            assert!(exception.contains("lo"), "the only interface is loopback: {exception}");
            assert!(!exception.contains("eth0"), "no network interface: {exception}");
        }
        if name == "exit-code" {
            assert!(exception.contains("failing"), "the log tail is in the verdict: {exception}");
        }
    }
    rig.finish(&[&engine]).await;
}

#[tokio::test]
async fn debug_keeps_the_container_and_leftovers_are_swept_at_start() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[primary_node(&engine, 4)]).await;
    let mut kept = job(actor("kept", "echo kept", &[]), vec![], None);
    kept.debug = true;
    let report = rig.run(&kept).await;
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    assert_eq!(rig.containers_on(&engine).await, 1, "Debug keeps the stopped container");
    let service = rig.service.clone();
    rig.pool.request_reload();
    // A new life of the same service removes what the last one left.
    let reborn = Rig::start_as(&service, &[primary_node(&engine, 4)]).await;
    assert_eq!(reborn.containers_on(&engine).await, 0, "swept at first contact");
    reborn.finish(&[&engine]).await;
    rig.finish(&[&engine]).await;
}

/// Outputs come out of one archive read and stream into blobs; the caps on their number and
/// total size give a verdict; a cancel while they are collected ends the actor at once.
#[tokio::test]
async fn outputs_are_collected_in_one_read_capped_and_cancellable() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[primary_node(&engine, 4)]).await;

    // 400 outputs listed in return.json (the rig allows 500).
    let many = "for i in $(seq 1 400); do echo \"file $i\" > out_$i.txt; done\n\
                printf '{\"Outputs\": [' > return.json; for i in $(seq 1 399); do printf '\"out_%s.txt\",' $i >> return.json; done\n\
                printf '\"out_400.txt\"]}' >> return.json\n";
    let clock = std::time::Instant::now();
    let report = rig.run(&job(actor("many", many, &[]), vec![], None)).await;
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    assert_eq!(report.outputs.len(), 400);
    assert_eq!(report.outputs[399].name, "out_400.txt", "outputs keep the order return.json gives");
    assert_eq!(rig.output(&report, "out_123.txt").await, b"file 123\n");
    assert!(clock.elapsed() < std::time::Duration::from_secs(30), "400 outputs took {:?}", clock.elapsed());

    // Over the count cap: a verdict naming the setting, without reading a file.
    let too_many = "printf '{\"Outputs\": [' > return.json; for i in $(seq 1 600); do printf '\"o%s\",' $i >> return.json; done\n\
                    printf '\"last\"]}' >> return.json\n";
    let report = rig.run(&job(actor("too-many", too_many, &[]), vec![], None)).await;
    assert_eq!(report.status, ActorStatus::Failed);
    let exception = report.exception.clone().unwrap_or_default();
    assert!(exception.contains("601 outputs") && exception.contains("executor.max_outputs"), "{exception}");

    // Over the total size cap (64 MiB in the rig): five files of 15 MiB.
    let large = "for i in 1 2 3 4 5; do head -c 15728640 /dev/zero > big_$i.bin; done";
    let names = ["big_1.bin", "big_2.bin", "big_3.bin", "big_4.bin", "big_5.bin"];
    let report = rig.run(&job(actor("large", large, &names), vec![], None)).await;
    assert_eq!(report.status, ActorStatus::Failed);
    let exception = report.exception.clone().unwrap_or_default();
    assert!(exception.contains("executor.max_outputs_size"), "{exception}");

    // A cancel as soon as the actor has exited lands while its 60 MiB of outputs are collected.
    let names = ["big_1.bin", "big_2.bin", "big_3.bin", "big_4.bin"];
    let body = "for i in 1 2 3 4; do head -c 15728640 /dev/urandom > big_$i.bin; done";
    let cancel = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let (cancel, docker, label) = (cancel.clone(), engine.docker.clone(), "wharf.actor=slow-collect".to_owned());
        tokio::spawn(async move {
            loop {
                let filters =
                    std::collections::HashMap::from([("label", vec![label.as_str()]), ("status", vec!["exited"])]);
                let options =
                    bollard::query_parameters::ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
                if docker.list_containers(Some(options)).await.is_ok_and(|found| !found.is_empty()) {
                    cancel.cancel();
                    return std::time::Instant::now();
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
    };
    let report = rig.run_cancellable(&job(actor("slow-collect", body, &names), vec![], None), &cancel).await;
    let ended = std::time::Instant::now();
    let cancelled_at = watcher.await.expect("watcher");
    assert_eq!(report.status, ActorStatus::Cancelled, "{report:?}");
    let took = ended.saturating_duration_since(cancelled_at);
    assert!(took < std::time::Duration::from_secs(5), "collection went on for {took:?} after the cancel");
    rig.finish(&[&engine]).await;
}

/// The end notice hears of a finished actor while its container still exists, so that what
/// it records there survives a crash during the removal; the report it hears is the one run
/// returns.
#[tokio::test]
async fn an_ended_actor_is_told_before_its_container_is_removed() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[primary_node(&engine, 1)]).await;
    let (heard, mut hearing) = tokio::sync::mpsc::unbounded_channel();
    let docker = engine.docker.clone();
    let notice = wharf::engine::EndNotice(std::sync::Arc::new(move |report: wharf::engine::ActorReport| {
        let (docker, heard) = (docker.clone(), heard.clone());
        Box::pin(async move {
            let id = report.container.clone().unwrap_or_default();
            let exists = docker.inspect_container(&id, None).await.is_ok();
            let _ = heard.send((report, exists));
        })
    }));
    let mut ended = job(actor("told", "echo done > out.txt", &["out.txt"]), vec![], None);
    ended.ended = Some(notice);
    let report = rig.run(&ended).await;
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    let (told, existed) = hearing.recv().await.expect("the notice was told");
    assert!(existed, "the container still existed when the actor was told ended");
    assert_eq!(told.status, report.status);
    assert_eq!(told.end_time, report.end_time, "the same end as the report");
    assert_eq!(told.outputs, report.outputs, "the outputs were stored before");
    assert!(
        engine.docker.inspect_container(report.container.as_deref().unwrap_or(""), None).await.is_err(),
        "removed after"
    );
    rig.finish(&[&engine]).await;
}
