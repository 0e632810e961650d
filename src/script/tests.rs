//! Scripts against a host that keeps everything in memory: replay, suspension, limits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::model::blob::BlobRef;

#[derive(Default)]
struct MemoryHost {
    blobs: Mutex<BTreeMap<Uuid, (String, Vec<u8>)>>,
    calls: Mutex<Vec<NewCall>>,
}

impl HostEffects for MemoryHost {
    fn read_blob(&self, id: Uuid, max: usize) -> Result<BlobRead, String> {
        let bytes = self.blobs.lock().unwrap().get(&id).map(|b| b.1.clone()).ok_or_else(|| format!("no blob {id}"))?;
        Ok(if bytes.len() > max { BlobRead::TooLarge(bytes.len() as u64) } else { BlobRead::Bytes(bytes) })
    }
    fn upload(&self, name: &str, bytes: &[u8]) -> Result<BlobRef, String> {
        let id = Uuid::new_v4();
        self.blobs.lock().unwrap().insert(id, (name.into(), bytes.to_vec()));
        Ok(BlobRef { id, name: name.into(), tag: None })
    }
    fn record(&self, call: &NewCall) -> Result<(), String> {
        self.calls.lock().unwrap().push(call.clone());
        Ok(())
    }
    fn log(&self, _message: &str) {}
}

impl MemoryHost {
    /// The record as the engine would store it, with `result` given to pending calls.
    fn history(&self, results: &[(i64, Value)]) -> Vec<RecordedCall> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| RecordedCall {
                position: c.position,
                kind: c.kind.into(),
                args: c.args.clone(),
                result: c.result.clone().or_else(|| results.iter().find(|r| r.0 == c.position).map(|r| r.1.clone())),
                stage: c.stage.clone(),
                created_at: 0,
            })
            .collect()
    }
}

fn instance(host: &MemoryHost) -> InstanceView {
    let source = host.upload("Main.sh", b"echo 3").expect("upload");
    InstanceView {
        id: Uuid::new_v4(),
        name: "judge".into(),
        parameters: BTreeMap::from([("Host".into(), "http://127.0.0.1:9/cb".into())]),
        priority: 0,
        initial_blobs: vec![source],
    }
}

fn actor_result(name: &str, status: &str, outputs: Vec<BlobRef>) -> Value {
    json!({"actors": [{
        "name": name, "status": status, "exception": if status == "Succeeded" { Value::Null } else { json!("exited with code 1") },
        "exitCode": 0, "timedOut": false, "oomKilled": false, "node": "n1", "container": "c1",
        "startTime": 0, "endTime": 1, "attempts": 1, "tag": null, "stage": null, "inputs": [], "outputs": outputs
    }]})
}

const SCRIPT: &str = r#"
set_stage("Compile");
let compiled = run_actor("compile", instance.initial_blobs);
let report = compiled.output("runner.json").json();
set_stage("Report");
let summary = upload_json("summary.json", #{ exit: report.ExitCode });
#{ verdict: "Accepted", summary: summary.id, stage_host: instance.parameters.Host }
"#;

#[test]
fn suspends_at_an_actor_then_replays_to_the_end() {
    let host = Arc::new(MemoryHost::default());
    let view = instance(&host);
    let limits = ScriptLimits::default();
    let first = run(SCRIPT, &view, vec![], host.clone(), &limits);
    assert_eq!(first, Outcome::Suspended(1), "set_stage is recorded, run_actor waits");
    assert_eq!(host.calls.lock().unwrap().len(), 2);

    let report = host.upload("runner.json", br#"{"ExitCode": 0}"#).expect("upload");
    let history = host.history(&[(1, actor_result("compile", "Succeeded", vec![report]))]);
    host.calls.lock().unwrap().clear();
    let second = run(SCRIPT, &view, history.clone(), host.clone(), &limits);
    let Outcome::Finished(value) = second else { panic!("expected the end, got {second:?}") };
    assert_eq!(value["verdict"], "Accepted");
    assert_eq!(value["stage_host"], "http://127.0.0.1:9/cb");
    let new_calls: Vec<&str> = host.calls.lock().unwrap().iter().map(|c| c.kind).collect();
    assert_eq!(new_calls, ["set_stage", "upload_json"], "recorded calls are not made again");
    assert_eq!(host.calls.lock().unwrap()[1].stage.as_deref(), Some("Report"));
}

#[test]
fn a_failed_actor_throws_and_can_be_caught() {
    let host = Arc::new(MemoryHost::default());
    let view = instance(&host);
    let script = r#"let r = "ok"; try { run_actor("compile", []); } catch (e) { r = "caught: " + e; } r"#;
    assert_eq!(run(script, &view, vec![], host.clone(), &ScriptLimits::default()), Outcome::Suspended(0));
    let history = host.history(&[(0, actor_result("compile", "Failed", vec![]))]);
    let outcome = run(script, &view, history, host.clone(), &ScriptLimits::default());
    let Outcome::Finished(Value::String(text)) = outcome else { panic!("{outcome:?}") };
    assert!(text.starts_with("caught: actor compile failed: exited with code 1"), "{text}");
}

#[test]
fn divergence_runaways_and_fail_end_the_run_with_a_message() {
    fn check(script: &str, history: Vec<RecordedCall>, limits: ScriptLimits, needle: &str) {
        let host = Arc::new(MemoryHost::default());
        let view = instance(&host);
        match run(script, &view, history, host, &limits) {
            Outcome::Failed(message) => assert!(message.contains(needle), "`{message}` should contain `{needle}`"),
            other => panic!("{script}: expected a failure, got {other:?}"),
        }
    }
    let stage_a = RecordedCall {
        position: 0,
        kind: "set_stage".into(),
        args: json!({"stage": "A"}),
        result: Some(Value::Null),
        stage: None,
        created_at: 0,
    };
    check(
        "set_stage(\"B\");",
        vec![stage_a],
        ScriptLimits::default(),
        "non-deterministic script: call #1 is set_stage",
    );
    let few = ScriptLimits { max_operations: 1000, ..ScriptLimits::default() };
    check("let x = 0;\nloop { x += 1; }", vec![], few, "script exceeded 1,000 operations at line 2");
    check("fn f(n) { f(n + 1) }\nf(0)", vec![], ScriptLimits::default(), "call depth of 64");
    let short =
        ScriptLimits { wall_time: std::time::Duration::from_millis(50), max_operations: 0, ..ScriptLimits::default() };
    check("loop { }", vec![], short, "ran longer than 50 ms");
    check("let s = \"x\"; loop { s += s; }", vec![], ScriptLimits::default(), "size limit");
    check("fail(\"no tests given\")", vec![], ScriptLimits::default(), "no tests given");
    check("try { fail(\"final\") } catch (e) { 1 }", vec![], ScriptLimits::default(), "final");
    check("let x = ;", vec![], ScriptLimits::default(), "does not compile");
    check("throw \"bad input\"", vec![], ScriptLimits::default(), "bad input");
}

#[test]
fn reports_line_and_column() {
    assert!(check("let x = 1;\nx + 1").is_ok());
    let err = check("let x = 1;\nlet = ;").unwrap_err();
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("column"), "{err}");
    assert!(check("import \"fs\" as fs;").is_err(), "imports are refused");
}

#[test]
fn regular_expressions_match_and_a_bad_one_says_why() {
    let host = Arc::new(MemoryHost::default());
    let view = instance(&host);
    let script = r#"
        let names = ["input_0.txt", "input_12.txt", "input_.txt", "output_1.txt", "input_1.txt.bak"];
        let matched = names.filter(|n| n.is_match("^input_[0-9]*\\.txt$"));
        let error = "";
        try { "x".is_match("(unclosed"); } catch (e) { error = e; }
        #{ matched: matched, error: error }
    "#;
    let outcome = run(script, &view, vec![], host, &ScriptLimits::default());
    let Outcome::Finished(value) = outcome else { panic!("{outcome:?}") };
    assert_eq!(value["matched"], json!(["input_0.txt", "input_12.txt", "input_.txt"]));
    let error = value["error"].as_str().unwrap_or_default();
    assert!(error.contains("`(unclosed` is not a valid regular expression"), "{error}");
}

/// Two actors' results, the second failed, each with the inputs it was given.
fn two_results(host: &MemoryHost) -> Value {
    let stdin = host.upload("stdin.txt", b"1 2").expect("upload");
    let report = host.upload("runner.json", br#"{"ExitCode": 0}"#).expect("upload");
    let record = |tag: &str, status: &str, exception: Value, outputs: Vec<BlobRef>| {
        json!({
            "name": "run", "status": status, "exception": exception, "exitCode": 0, "timedOut": false,
            "oomKilled": false, "node": "n1", "container": "c1", "startTime": 0, "endTime": 1, "attempts": 1,
            "tag": tag, "stage": "Run", "inputs": [stdin.clone()], "outputs": outputs
        })
    };
    json!({"actors": [
        record("0", "Succeeded", Value::Null, vec![report]),
        record("1", "Failed", json!("killed: out of memory (limit 64 MiB)"), vec![]),
    ]})
}

#[test]
fn run_actors_can_keep_failed_results_and_tell_their_inputs() {
    let host = Arc::new(MemoryHost::default());
    let view = instance(&host);
    let script = r#"
        let jobs = [#{ actor: "run", inputs: [], tag: "0" }, #{ actor: "run", inputs: [], tag: "1" }];
        let runs = run_actors(jobs, #{ keep_failed: true });
        runs.map(|r| #{ tag: r.tag, status: r.status, exception: r.exception, stdin: r.input("stdin.txt").name,
                        inputs: r.inputs.len(), stage: r.stage })
    "#;
    assert_eq!(run(script, &view, vec![], host.clone(), &ScriptLimits::default()), Outcome::Suspended(0));
    let history = host.history(&[(0, two_results(&host))]);
    let outcome = run(script, &view, history, host.clone(), &ScriptLimits::default());
    let Outcome::Finished(value) = outcome else { panic!("{outcome:?}") };
    assert_eq!(
        value,
        json!([
            {"tag": "0", "status": "Succeeded", "exception": null, "stdin": "stdin.txt", "inputs": 1, "stage": "Run"},
            {"tag": "1", "status": "Failed", "exception": "killed: out of memory (limit 64 MiB)", "stdin": "stdin.txt",
             "inputs": 1, "stage": "Run"},
        ])
    );

    // Without the option, the failure throws; a missing input is named.
    let script = r#"
        let jobs = [#{ actor: "run", inputs: [] }, #{ actor: "run", inputs: [] }];
        let thrown = "";
        try { run_actors(jobs); } catch (e) { thrown = e; }
        let runs = run_actors(jobs, #{ keep_failed: true });
        let missing = "";
        try { runs[0].input("limit.json"); } catch (e) { missing = e; }
        #{ thrown: thrown, missing: missing }
    "#;
    let host = Arc::new(MemoryHost::default());
    let view = instance(&host);
    assert_eq!(run(script, &view, vec![], host.clone(), &ScriptLimits::default()), Outcome::Suspended(0));
    let results = two_results(&host);
    let mut history = host.history(&[(0, results.clone())]);
    history.push(RecordedCall {
        position: 1,
        kind: "run_actors".into(),
        args: history[0].args.clone(),
        result: Some(results),
        stage: None,
        created_at: 0,
    });
    let outcome = run(script, &view, history, host, &ScriptLimits::default());
    let Outcome::Finished(value) = outcome else { panic!("{outcome:?}") };
    assert!(
        value["thrown"].as_str().unwrap_or_default().contains("actor run failed: killed: out of memory"),
        "{value}"
    );
    assert_eq!(value["missing"], "actor run had no input limit.json (it had: stdin.txt)");
}

#[test]
fn a_blob_larger_than_a_script_string_is_not_read() {
    let host = Arc::new(MemoryHost::default());
    let view = instance(&host);
    let limits = ScriptLimits { max_string_size: 4, ..ScriptLimits::default() };
    // `Main.sh` holds 6 bytes: more than the 4 a string may hold here.
    let script = r#"let r = ""; try { instance.initial_blobs[0].text(); } catch (e) { r = e; } r"#;
    let outcome = run(script, &view, vec![], host.clone(), &limits);
    let Outcome::Finished(Value::String(text)) = outcome else { panic!("{outcome:?}") };
    assert!(text.contains("Main.sh is 6 bytes, more than a script string may hold (4 bytes"), "{text}");
    let fits = run("instance.initial_blobs[0].text()", &view, vec![], host, &ScriptLimits::default());
    assert_eq!(fits, Outcome::Finished(json!("echo 3")));
}

#[test]
fn an_actor_that_never_ran_ends_the_instance_with_its_cause_not_as_a_script_error() {
    let host = Arc::new(MemoryHost::default());
    let view = instance(&host);
    let script = "let r = \"ran\";\ntry { run_actor(\"hello\", []); } catch (e) { r = \"caught\"; }\nr";
    let mut unrun = actor_result("hello", "Failed", vec![]);
    unrun["actors"][0]["container"] = Value::Null;
    unrun["actors"][0]["exception"] = json!("image wharf/actor:latest is on no node");
    assert_eq!(run(script, &view, vec![], host.clone(), &ScriptLimits::default()), Outcome::Suspended(0));
    let history = host.history(&[(0, unrun)]);
    let outcome = run(script, &view, history, host.clone(), &ScriptLimits::default());
    assert_eq!(outcome, Outcome::Failed("actor hello could not run: image wharf/actor:latest is on no node".into()));

    // One that ran and failed is the script's to handle.
    let history = host.history(&[(0, actor_result("hello", "Failed", vec![]))]);
    let outcome = run(script, &view, history, host, &ScriptLimits::default());
    assert_eq!(outcome, Outcome::Finished(json!("caught")));
}

#[test]
fn a_job_asks_for_a_sandbox_by_name_and_a_wrong_one_says_which() {
    let host = Arc::new(MemoryHost::default());
    let view = instance(&host);
    let limits = ScriptLimits::default();
    let warm =
        run("run_actors([#{actor: \"a\", inputs: [], sandbox: \"warm\"}])", &view, vec![], host.clone(), &limits);
    assert_eq!(warm, Outcome::Suspended(0));
    let recorded = host.calls.lock().unwrap()[0].args.clone();
    assert_eq!(recorded["actors"][0]["sandbox"], "warm", "the sandbox reaches the executor: {recorded}");

    let wrong = run("run_actor(\"a\", [], #{sandbox: \"hot\"})", &view, vec![], host.clone(), &limits);
    let Outcome::Failed(message) = wrong else { panic!("expected a failure, got {wrong:?}") };
    assert!(message.contains("sandbox of actor a") && message.contains("\"hot\""), "{message}");
}
