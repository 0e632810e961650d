//! Warm sandboxes against a real engine: a warm run gives what a fresh container gives, runs
//! of one instance share a container, and hostile runs (a background process, writes outside
//! the run's directory, a full disk, reading another run's files) affect no later run, hostile
//! actors get the verdicts they get fresh, and a killed agent, a vanished node or a dead
//! process loses no run and leaves no container.

mod common;

use std::time::{Duration, Instant};

use common::{HostileCase, NodeSpec, Rig, SERIAL, actor, hostile_cases, job};
use functional_tests::{Engine, TcpProxy};
use wharf::engine::{ActorJob, ActorStatus, Sandbox};
use wharf::model::actor::Actor;

fn one_slot(engine: &Engine) -> NodeSpec<'static> {
    NodeSpec { name: "primary", address: engine.address.clone(), capacity: 1 }
}

fn warm(actor: Actor, instance: uuid::Uuid) -> ActorJob {
    ActorJob { instance_id: Some(instance), sandbox: Sandbox::Warm, ..job(actor, vec![], None) }
}

#[tokio::test]
async fn a_warm_run_gives_what_a_fresh_container_gives() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[one_slot(&engine)]).await;
    let instance = uuid::Uuid::new_v4();
    let input = rig.blob("in.txt", b"hello warm\n").await;
    let body = "cat in.txt > out.txt\nprintf '1000\\n/bin/sh -c \"echo hi; exit 3\"\\n' | runner\n\
                printf '{\"Outputs\": [\"stdout.txt\"]}' > return.json\n";
    let program = actor("same", body, &["out.txt", "runner.json"]);
    let fresh = rig.run(&job(program.clone(), vec![input.clone()], None)).await;
    let warm_job = ActorJob { inputs: vec![input], ..warm(program, instance) };
    let first = rig.run(&warm_job).await;
    let second = rig.run(&warm_job).await;
    for report in [&fresh, &first, &second] {
        assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
        assert_eq!(report.exit_code, Some(0));
        assert_eq!(rig.output(report, "out.txt").await, b"hello warm\n");
        assert_eq!(rig.output(report, "stdout.txt").await, b"hi\n", "return.json adds outputs warm too");
        let figures: serde_json::Value =
            serde_json::from_slice(&rig.output(report, "runner.json").await).expect("runner.json");
        assert_eq!(figures["ExitCode"], 3, "{figures}");
        assert_eq!(figures["IsTimeout"], false, "{figures}");
    }
    assert_eq!(first.container, second.container, "the second run reuses the warm container");
    assert_ne!(fresh.container, first.container);

    let failing = rig.run(&warm(actor("fails", "echo why >&2; exit 4", &[]), instance)).await;
    assert_eq!(failing.status, ActorStatus::Failed);
    assert_eq!(failing.exit_code, Some(4));
    assert!(failing.exception.as_deref().unwrap_or_default().contains("exited with code 4\n"), "{failing:?}");
    assert!(failing.exception.as_deref().unwrap_or_default().contains("why"), "the log tail is there: {failing:?}");
    let filter = wharf::store::LogFilter { actor: Some("fails".into()), ..Default::default() };
    let logs = rig.store.actor_logs(instance, &filter).await.expect("actor logs");
    assert_eq!(logs.len(), 1, "a warm run's log is kept: {logs:?}");
    assert_eq!(logs[0].container, failing.container.clone().unwrap_or_default());
    let texts: Vec<&str> = logs[0].log.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["why"], "stdout and stderr in one stream");
    let missing = rig.run(&warm(actor("lazy", "true", &["never.txt"]), instance)).await;
    assert_eq!(missing.exception.as_deref(), Some("output never.txt missing"), "{missing:?}");

    rig.executor.warm().end_instance(instance);
    rig.finish(&[&engine]).await;
}

#[tokio::test]
async fn hostile_runs_affect_no_later_run() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[one_slot(&engine)]).await;
    let instance = uuid::Uuid::new_v4();

    // Leaves a process behind, writes wherever it can, keeps a secret in its own directory.
    let hostile = "(sleep 1000 &)\nnohup sh -c 'while :; do sleep 1; done' >/dev/null 2>&1 &\n\
                   echo secret > secret.txt\npwd > where.txt\n\
                   for f in /tmp/x /workdir/x /runs/x /dev/shm/x /x; do echo evil > $f 2>/dev/null; done\n\
                   ls /runs > /dev/null 2>&1; true\n";
    let first = rig.run(&warm(actor("hostile", hostile, &["where.txt"]), instance)).await;
    assert_eq!(first.status, ActorStatus::Succeeded, "{first:?}");
    let where_ = String::from_utf8(rig.output(&first, "where.txt").await).expect("utf-8");

    let probe = format!(
        "ps -o args | grep -c '[s]leep 1' > sleeping.txt || true\n\
         cat {}/secret.txt > stolen.txt 2>/dev/null || echo none > stolen.txt\n\
         ls /runs /dev/shm /tmp > seen.txt 2>&1 || true\n",
        where_.trim()
    );
    let second = rig.run(&warm(actor("probe", &probe, &["sleeping.txt", "stolen.txt", "seen.txt"]), instance)).await;
    assert_eq!(second.status, ActorStatus::Succeeded, "{second:?}");
    assert_eq!(first.container, second.container, "both ran in the same warm container");
    assert_eq!(rig.output(&second, "sleeping.txt").await, b"0\n", "no process of the first run is left");
    assert_eq!(rig.output(&second, "stolen.txt").await, b"none\n", "the first run's files are gone");
    let seen = String::from_utf8(rig.output(&second, "seen.txt").await).expect("utf-8");
    assert!(!seen.contains('x'), "nothing written outside the first run's directory is left: {seen}");

    // Fills the disk of the runs; the next run has its room back.
    // (Files under the 16 MiB file limit, until the disk or the memory it is counted in is full.)
    let filler = "i=0; while [ $i -lt 40 ]; do dd if=/dev/zero of=big$i bs=1M count=15 2>/dev/null; i=$((i+1)); done";
    rig.run(&warm(actor("filler", filler, &[]), instance)).await;
    let writer = "dd if=/dev/zero of=room bs=1M count=8 2>/dev/null && echo ok > ok.txt";
    let after = rig.run(&warm(actor("writer", writer, &["ok.txt"]), instance)).await;
    assert_eq!(after.status, ActorStatus::Succeeded, "{after:?}");
    assert_eq!(rig.output(&after, "ok.txt").await, b"ok\n");

    // A run that times out leaves the container in doubt: the next one gets a new container.
    let mut slow = warm(actor("slow", "sleep 30", &[]), instance);
    slow.limitation = vec![serde_json::from_value(serde_json::json!({"executionTimeout": 1000})).expect("limitation")];
    let timed_out = rig.run(&slow).await;
    assert!(timed_out.timed_out, "{timed_out:?}");
    // Its limits differ, so it needs a container of its own; the idle one gives its slot up at
    // once instead of after `executor.warm_idle_secs` (30 s).
    let took = timed_out.end_time - timed_out.start_time;
    assert!(took < 20_000, "an idle warm container kept the only slot for {took} ms");
    let next = rig.run(&warm(actor("next", "true", &[]), instance)).await;
    assert_eq!(next.status, ActorStatus::Succeeded, "{next:?}");
    assert_ne!(next.container, timed_out.container, "a container in doubt serves no further run");

    rig.executor.warm().end_instance(instance);
    rig.finish(&[&engine]).await;
}

#[tokio::test]
async fn hostile_actors_get_the_same_verdicts_warm_and_doubt_ends_the_container() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[NodeSpec { name: "primary", address: engine.address.clone(), capacity: 2 }]).await;
    let instance = uuid::Uuid::new_v4();
    for HostileCase { name, body, outputs, limitation, verdict } in hostile_cases() {
        let hostile = ActorJob {
            limitation: limitation.clone().into_iter().collect(),
            ..warm(actor(name, body, outputs), instance)
        };
        let report = rig.run(&hostile).await;
        let exception = report.exception.clone().unwrap_or_default();
        assert_eq!(report.status, ActorStatus::Failed, "{name}: {report:?}");
        assert!(exception.starts_with(verdict), "{name} warm: `{exception}` should start with `{verdict}`");
        assert_eq!(rig.health("primary"), "healthy", "{name} does not make the node unhealthy");
        // A run under the same limits after it: a new container when the hostile one left
        // its container in doubt (out of memory, timed out), the same one otherwise.
        let after =
            ActorJob { limitation: limitation.into_iter().collect(), ..warm(actor("after", "true", &[]), instance) };
        let next = rig.run(&after).await;
        assert_eq!(next.status, ActorStatus::Succeeded, "after {name}: {next:?}");
        let in_doubt = matches!(name, "memory-bomb" | "fork-bomb" | "infinite-loop");
        assert_eq!(next.container != report.container, in_doubt, "after {name}: {report:?} then {next:?}");
    }
    rig.executor.warm().end_instance(instance);
    rig.finish(&[&engine]).await;
}

#[tokio::test]
async fn a_killed_agent_moves_its_run_to_a_new_container_and_the_node_stays_healthy() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let rig = Rig::start(&[one_slot(&engine)]).await;
    let instance = uuid::Uuid::new_v4();
    let first = rig.run(&warm(actor("first", "true", &[]), instance)).await;
    let container = first.container.clone().expect("a container");
    let survivor = warm(actor("survivor", "sleep 2; echo done > out.txt", &["out.txt"]), instance);
    let running = tokio::spawn({
        let executor = rig.executor.clone();
        async move { executor.run(&survivor, &Default::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Detached: the container stops once its agent is gone, and an attached exec can be
    // cut off with it before it reports; the assertions below tell whether the kill landed.
    let killed = std::process::Command::new("docker")
        .args(["exec", "--detach", &container, "sh", "-c", "kill -9 $(pidof runner)"])
        .output()
        .expect("docker exec");
    assert!(killed.status.success(), "killing the agent: {}", String::from_utf8_lossy(&killed.stderr));
    let report = running.await.expect("join");
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    assert_eq!(report.attempts, 2, "the run was tried again: {report:?}");
    assert_ne!(report.container.as_deref(), Some(container.as_str()), "in a new container");
    assert_eq!(rig.output(&report, "out.txt").await, b"done\n");
    assert_eq!(rig.health("primary"), "healthy", "a dead agent is the container's fault, not the node's");
    rig.executor.warm().end_instance(instance);
    rig.finish(&[&engine]).await;
}

#[tokio::test]
async fn a_node_that_vanishes_mid_warm_run_sends_it_elsewhere_and_leaves_nothing() {
    let Some(primary) = Engine::primary_or_skip().await else { return };
    let Some(second) = Engine::second_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let proxy = TcpProxy::start(&primary.socket).await.expect("proxy");
    let rig = Rig::start(&[
        NodeSpec { name: "flaky", address: proxy.url(), capacity: 1 },
        NodeSpec { name: "second", address: second.address.clone(), capacity: 1 },
    ])
    .await;
    let instance = uuid::Uuid::new_v4();
    // The second engine gets the image first; then the run starts on the flaky node.
    rig.set_drained("flaky", true).await;
    let loaded = rig.run(&job(actor("load", "true", &[]), vec![], None)).await;
    assert_eq!(loaded.node.as_deref(), Some("second"), "{loaded:?}");
    rig.set_drained("flaky", false).await;
    rig.set_drained("second", true).await;
    let work = warm(actor("mover", "sleep 2; echo done > out.txt", &["out.txt"]), instance);
    let running = tokio::spawn({
        let executor = rig.executor.clone();
        async move { executor.run(&work, &Default::default()).await }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while rig.running("flaky") < 1 {
        assert!(Instant::now() < deadline, "the warm run never started on the flaky node");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    rig.set_drained("second", false).await;
    proxy.cut().await;
    let report = running.await.expect("join");
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    assert_eq!(report.node.as_deref(), Some("second"), "it finished on the other node");
    assert_eq!(report.attempts, 2);
    assert_eq!(rig.output(&report, "out.txt").await, b"done\n");
    assert_eq!(rig.health("flaky"), "unhealthy");
    rig.executor.warm().end_instance(instance);

    // Back again: it heals, and the warm container it lost is removed.
    proxy.restore().await.expect("restore");
    rig.wait_health("flaky", "healthy").await;
    rig.finish(&[&primary, &second]).await;
}

#[tokio::test]
async fn warm_containers_of_a_process_that_died_are_swept() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    let _serial = SERIAL.lock().await;
    let service = format!("wharf-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let dead = Rig::start_as(&service, &[one_slot(&engine)]).await;
    let instance = uuid::Uuid::new_v4();
    let report = dead.run(&warm(actor("idle", "true", &[]), instance)).await;
    assert_eq!(report.status, ActorStatus::Succeeded, "{report:?}");
    assert_eq!(dead.containers_on(&engine).await, 1, "the warm container waits for the next run");
    // The process is gone without ending its instance: a new one (its own database: no record
    // of the old process as live) sweeps the container at its first contact with the node.
    dead.stop_probes();
    let heir = Rig::start_as(&service, &[one_slot(&engine)]).await;
    assert_eq!(heir.containers_on(&engine).await, 0, "the dead process's warm container was swept");
    heir.finish(&[&engine]).await;
}
