//! The judge example end to end on a real service over two nodes: a shell submission on ten
//! tests shows every verdict, a broken one is a compile error, an awk one is accepted, a C
//! one where the full image exists; the callback arrives once, signed; re-running from a
//! stage keeps what came before it.

#[path = "common/service.rs"]
mod service;

use functional_tests::Engine;
use serde_json::{Value, json};
use service::{Receiver, Service, config};

const SUBMISSION: &str = r#"read a b
case "$a" in
    tle) while :; do :; done ;;
    mle) dd if=/dev/zero of=/dev/null bs=200M count=1 ;;
    re) echo oops >&2; exit 3 ;;
    *) echo $((a + b)) ;;
esac
"#;

/// Ten tests: sums (one with a wrong answer on file), a loop, a memory hog, a crash.
fn tests() -> Vec<(String, String, &'static str)> {
    let mut tests = Vec::new();
    for (i, (input, answer, verdict)) in [
        ("1 2", "3", "Accepted"),
        ("10 20", "30", "Accepted"),
        ("-5 5", "0", "Accepted"),
        ("100 1", "101", "Accepted"),
        ("7 8", "16", "Wrong Answer"),
        ("tle 0", "0", "Time Limit Exceeded"),
        ("mle 0", "0", "Memory Limit Exceeded"),
        ("re 0", "0", "Runtime Error"),
        ("2 2", "4\n\n", "Accepted"),
        ("0 0", "0", "Accepted"),
    ]
    .into_iter()
    .enumerate()
    {
        tests.push((format!("{input}\n"), answer.to_owned(), verdict));
        let _ = i;
    }
    tests
}

async fn upload_tests(api: &service::Api, submission: (&str, &str)) -> Vec<Value> {
    let mut blobs = vec![api.blob(submission.0, submission.1.as_bytes()).await];
    for (i, (input, answer, _)) in tests().iter().enumerate() {
        blobs.push(api.blob(&format!("input_{}.txt", i + 1), input.as_bytes()).await);
        blobs.push(api.blob(&format!("answer_{}.txt", i + 1), answer.as_bytes()).await);
    }
    blobs.push(api.blob("limits.json", br#"{"time": 1000, "memory": 67108864}"#).await);
    blobs
}

fn verdicts(result: &Value) -> Vec<(String, String)> {
    let mut verdicts: Vec<(String, String)> = result["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| {
            (t["name"].as_str().unwrap_or_default().to_owned(), t["verdict"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    verdicts.sort_by_key(|(name, _)| {
        name.trim_start_matches("input_").trim_end_matches(".txt").parse::<u32>().unwrap_or(0)
    });
    verdicts
}

#[tokio::test]
async fn judge_gives_every_verdict_and_calls_back_once() {
    let (Some(primary), Some(second)) = (Engine::primary_or_skip().await, Engine::second_or_skip().await) else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let service_name = format!("judge-{}", std::process::id());
    let service =
        Service::start(config(dir.path(), &service_name, &[("one", &primary.address), ("two", &second.address)])).await;
    let api = service.api.clone();
    let receiver = Receiver::reserve();
    receiver.listen().await;

    let blobs = upload_tests(&api, ("Main.sh", SUBMISSION)).await;
    let id = api.start("judge", blobs, json!({"Host": receiver.url("/judged")})).await;
    let instance = api.wait_ended(&id, 120).await;
    assert_eq!(instance["status"], "Succeeded", "{instance}");
    let result = &instance["result"];
    assert_eq!(result["verdict"], "Wrong Answer", "the first failing test decides: {result}");
    let expected: Vec<(String, String)> =
        tests().iter().enumerate().map(|(i, t)| (format!("input_{}.txt", i + 1), t.2.to_owned())).collect();
    assert_eq!(verdicts(result), expected, "{result}");
    for test in result["tests"].as_array().expect("tests") {
        if test["verdict"] == "Accepted" {
            assert!(test["memory"].as_i64().expect("memory") > 0, "{test}");
        }
    }

    // Compiled once, run on both nodes, all recorded in JoyOI's shape.
    let actors = instance["startedActors"].as_array().expect("startedActors");
    assert_eq!(actors.iter().filter(|a| a["name"] == "judge-compile").count(), 1);
    assert_eq!(actors.iter().filter(|a| a["name"] == "judge-run").count(), 10);
    let nodes: std::collections::BTreeSet<&str> = actors.iter().filter_map(|a| a["usedNode"].as_str()).collect();
    assert_eq!(nodes.len(), 2, "runs spread over both nodes: {nodes:?}");
    assert!(actors.iter().all(|a| a["status"] == "Succeeded" && a["usedContainer"].is_string()));
    let run_containers: std::collections::BTreeSet<&str> =
        actors.iter().filter(|a| a["name"] == "judge-run").filter_map(|a| a["usedContainer"].as_str()).collect();
    assert!(run_containers.len() < 10, "the ten runs share warm containers: {run_containers:?}");

    // The dataflow: the source into the compile, Main.out from it into every run.
    let graph = reqwest::get(format!("{}/api/v1/StateMachineInstance/{id}/graph", api.base)).await.expect("graph");
    assert!(graph.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/vnd.graphviz"));
    let graph = graph.text().await.expect("dot");
    assert!(graph.starts_with("digraph"), "{graph}");
    assert_eq!(graph.matches("[label=\"Main.out\"]").count(), 10, "Main.out feeds ten runs: {graph}");
    assert_eq!(graph.matches("shape=box").count(), 11, "one compile and ten runs: {graph}");

    // One signed delivery.
    let got = receiver.expect(1).await;
    let payload: Value = serde_json::from_slice(&got[0].body).expect("json payload");
    assert_eq!(payload["id"], id.as_str());
    assert_eq!(payload["status"], "Succeeded");
    assert_eq!(payload["result"]["verdict"], "Wrong Answer");
    let expected_signature =
        format!("sha256={}", wharf::engine::hmac::hmac_sha256_hex(b"callback-secret", &got[0].body));
    assert_eq!(got[0].signature.as_deref(), Some(expected_signature.as_str()), "signed with the secret");
    assert!(got[0].idempotency_key.is_some());
    let detail = api.instance(&id).await;
    assert_eq!(detail["callbacks"][0]["status"], "Delivered", "{detail}");

    // Re-run from the Run stage: the compile is kept, the runs are redone, the verdict holds.
    api.ok(reqwest::Method::PATCH, &format!("/api/v1/StateMachineInstance/{id}"), Some(json!({"stage": "Run"}))).await;
    let again = api
        .wait(&id, "ran again", 120, |i| {
            i["status"] == "Succeeded" && i["callbacks"].as_array().is_some_and(|c| c.len() == 2)
        })
        .await;
    let actors = again["startedActors"].as_array().expect("startedActors");
    assert_eq!(actors.iter().filter(|a| a["name"] == "judge-compile").count(), 1, "compile is not run again");
    assert_eq!(actors.iter().filter(|a| a["name"] == "judge-run").count(), 10);
    assert_eq!(verdicts(&again["result"]), expected);
    receiver.expect(2).await;

    // Compile errors and another language.
    let broken = upload_tests(&api, ("Main.sh", "if then fi (\n")).await;
    let broken_id = api.start("judge", broken, json!({})).await;
    let awk = upload_tests(&api, ("Main.awk", "{ print $1 + $2 }\n")).await;
    let awk_id = api.start("judge", awk, json!({})).await;
    let broken = api.wait_ended(&broken_id, 60).await;
    assert_eq!(broken["result"]["verdict"], "Compile Error", "{broken}");
    assert!(broken["result"]["message"].as_str().is_some_and(|m| !m.is_empty()), "the compiler's message is kept");
    let awk = api.wait_ended(&awk_id, 120).await;
    let awk_verdicts = verdicts(&awk["result"]);
    assert_eq!(awk_verdicts[0].1, "Accepted", "{awk}");
    assert_eq!(awk_verdicts[4].1, "Wrong Answer", "{awk}");

    service.stop().await;
    for engine in [&primary, &second] {
        let left = functional_tests::count_labelled(&engine.docker, &format!("wharf.service={service_name}"))
            .await
            .expect("count");
        assert_eq!(left, 0, "no container left on {}", engine.address);
    }
}

#[tokio::test]
async fn judge_compiles_c_where_the_full_image_exists() {
    let Some(primary) = Engine::primary_or_skip().await else { return };
    if !primary.has_image_or_skip("wharf/full:latest", "bash images/build-full.sh").await {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let service =
        Service::start(config(dir.path(), &format!("judge-c-{}", std::process::id()), &[("one", &primary.address)]))
            .await;
    let api = service.api.clone();
    let source = "#include <stdio.h>\nint main(){long a,b; if(scanf(\"%ld %ld\",&a,&b)!=2) return 3; printf(\"%ld\\n\",a+b); return 0;}\n";
    let blobs = upload_tests(&api, ("Main.c", source)).await;
    let id = api.start("judge", blobs, json!({})).await;
    let instance = api.wait_ended(&id, 300).await;
    let verdicts = verdicts(&instance["result"]);
    assert_eq!(verdicts[0].1, "Accepted", "{instance}");
    assert_eq!(verdicts[4].1, "Wrong Answer");
    assert_eq!(verdicts[5].1, "Runtime Error", "`tle 0` does not parse as numbers: exit 3");
    service.stop().await;
}

/// The README's walk-through: `wharf run judge ... --wait -o out` with the real binary.
#[tokio::test]
async fn judge_from_the_command_line() {
    let Some(primary) = Engine::primary_or_skip().await else { return };
    let target =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    let binary = std::path::Path::new(&target).join("debug/wharf");
    assert!(binary.exists(), "{} is missing: build it first (cargo build)", binary.display());
    let dir = tempfile::tempdir().expect("dir");
    let service =
        Service::start(config(dir.path(), &format!("judge-cli-{}", std::process::id()), &[("one", &primary.address)]))
            .await;
    let files = dir.path();
    for (name, content) in [
        ("Main.sh", "read a b\necho $((a + b))\n"),
        ("in1", "1 2\n"),
        ("ans1", "3\n"),
        ("in2", "5 5\n"),
        ("ans2", "11\n"),
        ("limits.json", "{\"time\": 1000, \"memory\": 67108864}"),
    ] {
        std::fs::write(files.join(name), content).expect("write");
    }
    let output = tokio::process::Command::new(&binary)
        .args([
            "--json",
            "run",
            "judge",
            "-i",
            "Main.sh",
            "-i",
            "limits.json",
            "-i",
            "input_1.txt=in1",
            "-i",
            "answer_1.txt=ans1",
        ])
        .args(["-i", "input_2.txt=in2", "-i", "answer_2.txt=ans2", "--wait", "-o", "out"])
        .current_dir(files)
        .env("WHARF_SERVER", &service.api.base)
        .output()
        .await
        .expect("run wharf");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let instance: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(instance["result"]["verdict"], "Wrong Answer");
    assert_eq!(
        std::fs::read_to_string(files.join("out/judge-run-input_1.txt/stdout.txt")).expect("output saved"),
        "3\n"
    );
    assert!(files.join("out/judge-compile/Main.out").exists());
    service.stop().await;
}
