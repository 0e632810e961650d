//! The executor against real engines: outputs come back byte-exact, the runner's figures are
//! right, hostile actors get the right verdict while the node stays healthy, and nothing is
//! left behind.

mod common;

use common::{NodeSpec, Rig, SERIAL, actor, job};
use functional_tests::Engine;
use wharf::engine::ActorStatus;
use wharf::model::limitation::Limitation;

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
    let limited = |f: fn(&mut Limitation)| {
        let mut limitation = Limitation { execution_timeout: Some(3000), ..Limitation::default() };
        f(&mut limitation);
        Some(limitation)
    };
    // (name, body, outputs, limits, the verdict's start)
    type Case<'a> = (&'a str, &'a str, &'a [&'a str], Option<Limitation>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "memory-bomb",
            "dd if=/dev/zero of=/dev/null bs=200M count=1",
            &[],
            limited(|l| l.memory = Some(64 << 20)),
            "killed: out of memory (limit 64 MiB)",
        ),
        (
            "fork-bomb",
            "bomb() { bomb | bomb & }; bomb; sleep 30",
            &[],
            limited(|l| l.pids_limit = Some(64)),
            "timed out after 3000 ms",
        ),
        (
            "infinite-loop",
            "while :; do :; done",
            &[],
            limited(|l| l.execution_timeout = Some(1500)),
            "timed out after 1500 ms",
        ),
        (
            "network",
            "ls /sys/class/net\nwget -q -T 2 -O /dev/null http://wharf.invalid/",
            &[],
            limited(|_| {}),
            "exited with code 1",
        ),
        (
            "huge-output",
            "dd if=/dev/zero of=big.out bs=1M count=64",
            &["big.out"],
            limited(|l| l.output_limit = Some(8 << 20)),
            "killed: a file grew past the output limit of 8388608 bytes",
        ),
        ("missing-output", "echo no file here", &["result.txt"], limited(|_| {}), "output result.txt missing"),
        ("exit-code", "echo failing >&2; exit 3", &[], limited(|_| {}), "exited with code 3"),
    ];
    for (name, body, outputs, limitation, verdict) in cases {
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
