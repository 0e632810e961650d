//! OnlineJudge's judging against wharf on the machine's engine, end to end. A stand-in for
//! OnlineJudge talks to wharf as JoyOI's SDK does (lower-case routes, compact PascalCase JSON,
//! base64 blobs): it compiles the standard validator through `CompileOnlyStateMachine` as its
//! problem editor does, submits `JudgeStateMachine` instances, polls them every second as its
//! `StateMachineAwaiter` does, takes the callback on `/management/judge/stagechange/{id}`, and
//! gives verdicts by OnlineJudge's rules from the instance and its blobs. A re-judge
//! (`PATCH {"Stage": "Start"}`) gives the same verdicts again.

#[path = "common/service.rs"]
mod service;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use base64::Engine as _;
use functional_tests::Engine;
use reqwest::Method;
use serde_json::{Value, json};

/// The containers of these tests share two cores: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where OnlineJudge takes the end of a judge (its `ManagementServiceCallback` controller).
const CALLBACK_PATH: &str = "/management/judge/stagechange/{id}";

/// The standard validator, written by the rules of JoyOI's (AC, PE, WA by exit code).
const VALIDATOR: &str = include_str!("joyoi/validator.c");

/// A field of JoyOI's JSON, looked up without regard to case as OnlineJudge's deserializer does.
fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    value
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
        .unwrap_or(&NULL)
}

fn text(value: &Value, name: &str) -> String {
    field(value, name).as_str().unwrap_or_default().to_owned()
}

fn items<'a>(value: &'a Value, name: &str) -> &'a [Value] {
    field(value, name).as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The one item that `keep` holds for, as .NET's `Single` (an error otherwise).
fn single<'a>(list: &'a [Value], what: &str, keep: impl Fn(&Value) -> bool) -> Result<&'a Value, String> {
    let found: Vec<&Value> = list.iter().filter(|v| keep(v)).collect();
    match found.as_slice() {
        [one] => Ok(one),
        other => Err(format!("expected one {what}, found {}: {list:?}", other.len())),
    }
}

/// JoyOI's ManagementServiceClient, the calls OnlineJudge makes.
#[derive(Clone)]
struct ManagementService {
    base: String,
    client: reqwest::Client,
}

impl ManagementService {
    fn new(base: &str) -> ManagementService {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        ManagementService { base: base.to_owned(), client }
    }

    /// `data` of a 200 answer to `method /api/v1/<path>`.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut request = self.client.request(method.clone(), format!("{}/api/v1/{path}", self.base));
        if let Some(body) = body {
            request =
                request.header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8").body(body.to_string());
        }
        let response = request.send().await.map_err(|e| format!("{method} /api/v1/{path}: {e}"))?;
        let status = response.status();
        let answer = response.text().await.map_err(|e| format!("{method} /api/v1/{path}: {e}"))?;
        if status != 200 {
            return Err(format!("{method} /api/v1/{path}: {status} {answer}"));
        }
        let answer: Value =
            serde_json::from_str(&answer).map_err(|e| format!("{method} /api/v1/{path}: not JSON ({e}): {answer}"))?;
        Ok(field(&answer, "data").clone())
    }

    async fn put_blob(&self, name: &str, body: &[u8]) -> String {
        let body = json!({"Remark": name, "Body": base64::engine::general_purpose::STANDARD.encode(body)});
        let data = self.call(Method::PUT, "blob", Some(body)).await.expect("PutBlobAsync");
        text(&data, "id")
    }

    async fn get_blob(&self, id: &str) -> Result<Vec<u8>, String> {
        let data = self.call(Method::GET, &format!("blob/{id}"), None).await?;
        base64::engine::general_purpose::STANDARD.decode(text(&data, "body")).map_err(|e| format!("blob {id}: {e}"))
    }

    async fn get_blob_text(&self, id: &str) -> Result<String, String> {
        Ok(String::from_utf8_lossy(&self.get_blob(id).await?).into_owned())
    }

    async fn put_instance(&self, name: &str, host: &str, blobs: &[Value]) -> String {
        let body = json!({"Name": name, "InitialBlobs": blobs, "Parameters": {"Host": host}, "Priority": 1});
        let data =
            self.call(Method::PUT, "statemachineinstance", Some(body)).await.expect("PutStateMachineInstanceAsync");
        text(&data, "id")
    }

    async fn get_instance(&self, id: &str) -> Result<Value, String> {
        self.call(Method::GET, &format!("statemachineinstance/{id}"), None).await
    }

    async fn patch_instance(&self, id: &str, stage: &str) {
        let body = json!({"Stage": stage});
        self.call(Method::PATCH, &format!("statemachineinstance/{id}"), Some(body))
            .await
            .expect("PatchStateMachineInstanceAsync");
    }

    /// StateMachineAwaiter in polling mode: every second until the instance is not Running.
    async fn await_polling(&self, id: &str, retries: u32) -> Value {
        for _ in 0..retries {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let instance = self.get_instance(id).await.expect("GetStateMachineInstanceAsync");
            if text(&instance, "status") != "Running" {
                return instance;
            }
        }
        panic!("Polling State Machine Failed, ID={id}");
    }
}

/// OnlineJudge's JudgeResult, in its order (the worst test decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Accepted,
    PresentationError,
    WrongAnswer,
    RuntimeError,
    MemoryExceeded,
    TimeExceeded,
    CompileError,
    SystemError,
}
use Verdict::*;

/// What OnlineJudge records for a judge: the verdict of every test (one CompileError or
/// SystemError when it never ran), with its hint.
type Judged = Vec<(Verdict, String)>;

/// What each callback concluded (or why it could not), by instance id, in order of arrival.
type Callbacks = BTreeMap<String, Vec<Result<Judged, String>>>;

/// The fields of runner.json OnlineJudge reads (missing ones as their defaults).
struct Runner {
    peak_memory: i64,
    exit_code: i64,
    is_timeout: bool,
    error: String,
}

impl Runner {
    async fn of(ms: &ManagementService, actor: &Value) -> Result<Runner, String> {
        let blob = single(items(actor, "outputs"), "runner.json", |b| text(b, "name") == "runner.json")?;
        let bytes = ms.get_blob(&text(blob, "id")).await?;
        let json: Value = serde_json::from_slice(&bytes).map_err(|e| format!("runner.json: {e}"))?;
        Ok(Runner {
            peak_memory: field(&json, "PeakMemory").as_i64().unwrap_or_default(),
            exit_code: field(&json, "ExitCode").as_i64().unwrap_or_default(),
            is_timeout: field(&json, "IsTimeout").as_bool().unwrap_or_default(),
            error: text(&json, "Error"),
        })
    }
}

async fn output_text(ms: &ManagementService, actor: &Value, name: &str) -> Result<String, String> {
    let blob = single(items(actor, "outputs"), name, |b| text(b, "name") == name)?;
    ms.get_blob_text(&text(blob, "id")).await
}

/// OnlineJudge's JudgeStateMachineHandler for a local problem: the verdicts of a finished
/// JudgeStateMachine instance.
async fn judge_result(ms: &ManagementService, id: &str, memory_limit: i64) -> Result<Judged, String> {
    let machine = ms.get_instance(id).await?;
    if text(&machine, "status") == "Running" && text(&machine, "stage") != "Finally" {
        return Err(format!("The statemachine status is: Running ({machine})"));
    }
    if text(&machine, "status") == "Failed" {
        return Ok(vec![(SystemError, text(&machine, "exception"))]);
    }
    let actors = items(&machine, "startedActors");
    let exceptions =
        |actor: &Value| items(actor, "exceptions").iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\r\n");

    // IsFailedInCompileStageAsync
    if let [actor] = actors
        && text(actor, "name") == "CompileActor"
    {
        if text(actor, "status") == "Failed" {
            return Ok(vec![(CompileError, exceptions(actor))]);
        }
        let runner = Runner::of(ms, actor).await?;
        let stdout = output_text(ms, actor, "stdout.txt").await?;
        let stderr = output_text(ms, actor, "stderr.txt").await?;
        return Ok(vec![(CompileError, [runner.error, stdout, stderr].join("\n"))]);
    }
    let compile = actors.iter().find(|a| text(a, "name") == "CompileActor").ok_or("no CompileActor")?;
    single(items(compile, "outputs"), "program", |b| text(b, "name").starts_with("Main"))?;

    // HandleRuntimeResultAsync
    let named = |name: &str| actors.iter().filter(|a| text(a, "name") == name).cloned().collect::<Vec<Value>>();
    let (runs, compares) = (named("RunUserProgramActor"), named("CompareActor"));
    let tests = items(&machine, "initialBlobs").iter().filter(|b| text(b, "name").starts_with("input_")).count();
    if runs.len() != tests {
        return Err(format!("Missing RunUserProgramActor: {} runs for {tests} tests", runs.len()));
    }
    let mut judged = Vec::new();
    for i in 0..tests {
        let tag = i.to_string();
        let run = single(&runs, &format!("run tagged {tag}"), |a| text(a, "tag") == tag)?;
        let run_runner = Runner::of(ms, run).await?;
        let compared: Vec<Value> = compares.iter().filter(|a| text(a, "tag") == tag).cloned().collect();
        let verdict = match compared.as_slice() {
            [] => {
                let hint = format!("{}\n{}", exceptions(run), run_runner.error);
                if run_runner.is_timeout {
                    (TimeExceeded, hint)
                } else if run_runner.exit_code == 139
                    || exceptions(run).contains("May cause by out of memory")
                    || run_runner.error.contains("std::bad_alloc")
                    || run_runner.peak_memory > memory_limit
                {
                    (MemoryExceeded, hint)
                } else {
                    (RuntimeError, format!("{hint}\nUser process exited with code {}", run_runner.exit_code))
                }
            }
            [compare] => {
                let check = Runner::of(ms, compare).await?;
                match check.exit_code {
                    0 => (Accepted, "Congratulations!".to_owned()),
                    1 => (PresentationError, output_text(ms, compare, "stdout.txt").await?),
                    2 => (WrongAnswer, output_text(ms, compare, "stdout.txt").await?),
                    code => (SystemError, format!("{}\nValidator process exited with code {code}", check.error)),
                }
            }
            more => return Err(format!("{} CompareActors tagged {tag}", more.len())),
        };
        judged.push(verdict);
    }
    Ok(judged)
}

/// The stand-in for OnlineJudge: its management-service client, and its callback controller.
#[derive(Clone)]
struct OnlineJudge {
    ms: ManagementService,
    host: String,
    /// The memory limit of each judge it submitted, by instance id.
    submitted: Arc<Mutex<BTreeMap<String, i64>>>,
    judged: Arc<Mutex<Callbacks>>,
}

/// `POST /management/judge/stagechange/{id}`: judges the instance, 404 when it is no judge of
/// this site's (as OnlineJudge answers a compile-only instance's callback).
async fn stage_change(State(oj): State<OnlineJudge>, Path(id): Path<String>) -> (axum::http::StatusCode, String) {
    let Some(memory_limit) = oj.submitted.lock().expect("lock").get(&id).copied() else {
        return (axum::http::StatusCode::NOT_FOUND, format!("no judge status relates to {id}"));
    };
    let result = judge_result(&oj.ms, &id, memory_limit).await;
    let answer = match &result {
        Ok(_) => (axum::http::StatusCode::OK, "ok".to_owned()),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.clone()),
    };
    oj.judged.lock().expect("lock").entry(id).or_default().push(result);
    answer
}

impl OnlineJudge {
    async fn start(wharf: &str) -> OnlineJudge {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind OnlineJudge");
        let host = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let oj =
            OnlineJudge { ms: ManagementService::new(wharf), host, submitted: Arc::default(), judged: Arc::default() };
        let app = axum::Router::new()
            .route("/management/judge/stagechange/{id}", axum::routing::post(stage_change))
            .with_state(oj.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        oj
    }

    /// ProblemController: compiles a validator with CompileOnlyStateMachine, waits by polling,
    /// and keeps CompileActor's program when it compiled.
    async fn compile_validator(&self, source: &str) -> String {
        let code = self.ms.put_blob("validator-a-plus-b", source.as_bytes()).await;
        let blobs = [json!({"Id": code, "Name": "Main.c", "Tag": null})];
        let id = self.ms.put_instance("CompileOnlyStateMachine", &self.host, &blobs).await;
        let result = self.ms.await_polling(&id, 120).await;
        assert_eq!(text(&result, "status"), "Succeeded", "{result}");
        let last = items(&result, "startedActors").last().cloned().unwrap_or_default();
        let runner = Runner::of(&self.ms, &last).await.expect("runner.json");
        assert!(
            text(&last, "name") == "CompileActor" && runner.exit_code == 0 && text(&last, "status") == "Succeeded",
            "the validator compiles: {}\n{result}",
            runner.error
        );
        let program =
            single(items(&last, "outputs"), "program", |b| text(b, "name").starts_with("Main.")).expect("Main.*");
        text(program, "id")
    }

    /// JudgeController: uploads a submission, its limits and tests, and starts the judge.
    async fn submit(&self, validator: &str, submission: &Submission) -> String {
        let (file, source) = submission.source;
        let mut blobs = vec![
            json!({"Id": self.ms.put_blob(file, source.as_bytes()).await, "Name": file, "Tag": null}),
            json!({"Id": self.ms.put_blob("limit.json", submission.limit.as_bytes()).await, "Name": "limit.json", "Tag": null}),
            json!({"Id": validator, "Name": "Validator.out", "Tag": null}),
        ];
        for (i, (input, output, _)) in submission.tests.iter().enumerate() {
            let input_name = format!("input_{i}.txt");
            let output_name = format!("output_{i}.txt");
            let input_id = self.ms.put_blob(&input_name, input.as_bytes()).await;
            let output_id = self.ms.put_blob(&output_name, output.as_bytes()).await;
            blobs.push(json!({"Id": input_id, "Name": input_name, "Tag": i.to_string()}));
            blobs.push(json!({"Id": output_id, "Name": output_name, "Tag": i.to_string()}));
        }
        let id = self.ms.put_instance("JudgeStateMachine", &self.host, &blobs).await;
        self.submitted.lock().expect("lock").insert(id.clone(), submission.memory());
        id
    }

    /// The `n`th callback's verdicts for `id` (1-based), once it has come.
    async fn judged(&self, id: &str, n: usize) -> Judged {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(result) = self.judged.lock().expect("lock").get(id).and_then(|all| all.get(n - 1)) {
                return result.clone().unwrap_or_else(|e| panic!("callback {n} of {id} could not be judged: {e}"));
            }
            assert!(Instant::now() < deadline, "callback {n} of {id} never came");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A submission, its limit.json and its tests (input, answer, the verdict OnlineJudge must give).
struct Submission {
    source: (&'static str, &'static str),
    limit: String,
    tests: Vec<(String, String, Verdict)>,
}

impl Submission {
    fn new(source: (&'static str, &'static str), user_ms: i64, memory: i64, modes: &[(&str, Verdict)]) -> Submission {
        let limit = format!(r#"{{"UserTime":{user_ms},"PhysicalTime":{},"Memory":{memory}}}"#, user_ms * 4);
        let tests = modes
            .iter()
            .enumerate()
            .map(|(i, (mode, verdict))| (format!("{mode} {i} {}\n", i * 10), format!("{}\n", i * 11), *verdict))
            .collect();
        Submission { source, limit, tests }
    }

    fn memory(&self) -> i64 {
        let limit: Value = serde_json::from_str(&self.limit).expect("limit.json");
        limit["Memory"].as_i64().expect("Memory")
    }

    fn expected(&self) -> Vec<Verdict> {
        self.tests.iter().map(|t| t.2).collect()
    }
}

/// Every mode the programs below know, and what OnlineJudge must make of it.
const EVERY_VERDICT: [(&str, Verdict); 7] = [
    ("ac", Accepted),
    ("blank", Accepted),
    ("wa", WrongAnswer),
    ("pe", PresentationError),
    ("tle", TimeExceeded),
    ("mle", MemoryExceeded),
    ("re", RuntimeError),
];

/// Reads `mode a b`: prints a + b (`ac`), the same with blanks at the line end and blank lines
/// after it (`blank`), a wrong sum (`wa`), the sum after a blank line (`pe`), or loops (`tle`),
/// fills a gigabyte (`mle`), exits with 3 (`re`).
const CPP: &str = r#"#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
int main() {
    char mode[16];
    long a, b;
    if (scanf("%15s %ld %ld", mode, &a, &b) != 3) return 4;
    if (!strcmp(mode, "ac")) printf("%ld\n", a + b);
    else if (!strcmp(mode, "blank")) printf("%ld  \t\n\n\n", a + b);
    else if (!strcmp(mode, "wa")) printf("%ld\n", a + b + 1);
    else if (!strcmp(mode, "pe")) printf("\n%ld\n", a + b);
    else if (!strcmp(mode, "tle")) { volatile unsigned long spin = 0; for (;;) spin++; }
    else if (!strcmp(mode, "mle")) { std::vector<char> hog(1UL << 30, 1); printf("%d\n", hog[12345]); }
    else exit(3);
    return 0;
}
"#;

const PYTHON: &str = r#"import sys
mode, a, b = sys.stdin.read().split()
a, b = int(a), int(b)
if mode == "ac":
    print(a + b)
elif mode == "blank":
    print(str(a + b) + "  \t\n\n")
elif mode == "wa":
    print(a + b + 1)
elif mode == "pe":
    print()
    print(a + b)
elif mode == "tle":
    while True:
        pass
elif mode == "mle":
    hog = b"x" * (1 << 30)
    print(hog[12345])
else:
    raise ValueError("asked to fail")
"#;

const C: &str = "#include <stdio.h>\nint main(void) { char m[8]; long a, b; if (scanf(\"%7s %ld %ld\", m, &a, &b) != 3) return 4; printf(\"%ld\\n\", a + b); return 0; }\n";

const PASCAL: &str = "program Sum;\nvar m: string; c: char; a, b: longint;\nbegin\n  m := '';\n  read(c);\n  while c <> ' ' do begin m := m + c; read(c) end;\n  readln(a, b);\n  writeln(a + b)\nend.\n";

const JAVA: &str = "import java.util.Scanner;\npublic class Main {\n    public static void main(String[] args) {\n        Scanner in = new Scanner(System.in);\n        in.next();\n        long a = in.nextLong(), b = in.nextLong();\n        System.out.println(a + b);\n    }\n}\n";

/// A service on the machine's engine (two slots: the machine has two cores) whose callback
/// is OnlineJudge's stage-change route, and the stand-in.
async fn start(engine: &Engine, dir: &std::path::Path, name: &str) -> (service::Service, OnlineJudge) {
    let mut config = service::config(dir, name, &[("local", &engine.address)]);
    for node in &mut config.nodes {
        node.capacity = 2;
    }
    config.callbacks.path = CALLBACK_PATH.into();
    let service = service::Service::start(config).await;
    let oj = OnlineJudge::start(&service.api.base).await;
    (service, oj)
}

/// The machine's engine with both images, or `None` (a failure on CI).
async fn engine() -> Option<Engine> {
    let engine = Engine::primary_or_skip().await?;
    let ready = engine.has_image_or_skip("wharf/actor:latest", "bash images/build.sh").await
        && engine.has_image_or_skip("wharf/full:latest", "bash images/build-full.sh").await;
    ready.then_some(engine)
}

async fn finish(service: service::Service, engine: &Engine, name: &str) {
    service.stop().await;
    let left = functional_tests::count_labelled(&engine.docker, &format!("wharf.service={name}")).await.expect("count");
    assert_eq!(left, 0, "no container of the judges is left");
}

fn verdicts(judged: &Judged) -> Vec<Verdict> {
    judged.iter().map(|(verdict, _)| *verdict).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpp_and_python_get_every_verdict_and_the_same_again_when_rejudged() {
    let _serial = SERIAL.lock().await;
    let Some(engine) = engine().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let name = format!("joyoi-judge-{}", std::process::id());
    let (service, oj) = start(&engine, dir.path(), &name).await;
    let validator = oj.compile_validator(VALIDATOR).await;

    let submissions = [
        Submission::new(("Main.cpp", CPP), 1000, 64 << 20, &EVERY_VERDICT),
        Submission::new(("Main.py", PYTHON), 1000, 64 << 20, &EVERY_VERDICT),
        Submission::new(("Main14.cpp", "int main() { return 0 }\n"), 1000, 64 << 20, &[("ac", CompileError)]),
        Submission::new(("Main.py", "def broken(:\n    pass\n"), 1000, 64 << 20, &[("ac", CompileError)]),
    ];
    let mut ids = Vec::new();
    for submission in &submissions {
        ids.push(oj.submit(&validator, submission).await);
    }
    for (submission, id) in submissions.iter().zip(&ids) {
        let polled = oj.ms.await_polling(id, 300).await;
        assert_eq!(text(&polled, "status"), "Succeeded", "{polled}");
        assert_eq!(text(&polled, "stage"), "Finally", "{polled}");
        let judged = oj.judged(id, 1).await;
        let file = submission.source.0;
        if submission.tests[0].2 == CompileError {
            assert_eq!(verdicts(&judged), [CompileError], "{file}: {judged:?}");
            let hint = &judged[0].1;
            assert!(hint.contains("error") || hint.contains("SyntaxError"), "{file}: the compiler says why: {hint}");
            let actors: Vec<String> = items(&polled, "startedActors").iter().map(|a| text(a, "name")).collect();
            assert_eq!(actors, ["CompileActor"], "{file}: nothing runs after a compile error");
            continue;
        }
        assert_eq!(verdicts(&judged), submission.expected(), "{file}: {judged:?}");
        assert!(judged[2].1.contains("expected `22`, found `23`"), "{file}: the validator's message: {judged:?}");

        // The instance in JoyOI's shape: one run per test tagged by its index, a compare for
        // each run that ended well, tagged as its run, with JoyOI's input names.
        let actors = items(&polled, "startedActors");
        let tags = |actor: &str| -> Vec<String> {
            actors.iter().filter(|a| text(a, "name") == actor).map(|a| text(a, "tag")).collect()
        };
        assert_eq!(tags("RunUserProgramActor"), ["0", "1", "2", "3", "4", "5", "6"], "{file}");
        assert_eq!(tags("CompareActor"), ["0", "1", "2", "3"], "{file}");
        for actor in actors {
            let inputs: Vec<String> = items(actor, "inputs").iter().map(|b| text(b, "name")).collect();
            let stage = text(actor, "stage");
            match text(actor, "name").as_str() {
                "CompileActor" => assert_eq!((inputs, stage.as_str()), (vec![file.to_owned()], "Start")),
                "RunUserProgramActor" => {
                    let program = if file.ends_with(".py") { "Main.py" } else { "Main.out" };
                    assert_eq!(
                        (inputs, stage.as_str()),
                        (vec!["stdin.txt".into(), "limit.json".into(), program.into()], "RunUserProgram")
                    );
                }
                "CompareActor" => assert_eq!(
                    (inputs, stage.as_str()),
                    (vec!["std.txt".into(), "out.txt".into(), "Validator.out".into()], "ValidateUserOutput")
                ),
                other => panic!("unexpected actor {other}"),
            }
        }
    }

    // Re-judge: from the top, the same verdicts, a second callback each.
    for id in &ids {
        oj.ms.patch_instance(id, "Start").await;
    }
    for (submission, id) in submissions.iter().zip(&ids) {
        let again = oj.judged(id, 2).await;
        assert_eq!(verdicts(&again), verdicts(&oj.judged(id, 1).await), "{}: re-judged", submission.source.0);
        let instance = oj.ms.get_instance(id).await.expect("instance");
        let runs =
            items(&instance, "startedActors").iter().filter(|a| text(a, "name") == "RunUserProgramActor").count();
        assert_eq!(runs, submission.tests.len() * usize::from(submission.tests[0].2 != CompileError), "{instance}");
    }
    finish(service, &engine, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_pascal_and_java_are_accepted() {
    let _serial = SERIAL.lock().await;
    let Some(engine) = engine().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let name = format!("joyoi-judge-langs-{}", std::process::id());
    let (service, oj) = start(&engine, dir.path(), &name).await;
    let validator = oj.compile_validator(VALIDATOR).await;
    let both = [("ac", Accepted), ("ac", Accepted)];
    let submissions = [
        Submission::new(("Main.c", C), 1000, 64 << 20, &both),
        Submission::new(("Main.pas", PASCAL), 1000, 64 << 20, &both),
        // The JVM spends CPU time on its own threads before main runs.
        Submission::new(("Main.java", JAVA), 5000, 256 << 20, &both),
    ];
    let mut ids = Vec::new();
    for submission in &submissions {
        ids.push(oj.submit(&validator, submission).await);
    }
    for (submission, id) in submissions.iter().zip(&ids) {
        let judged = oj.judged(id, 1).await;
        assert_eq!(verdicts(&judged), submission.expected(), "{}: {judged:?}", submission.source.0);
    }
    let java = oj.ms.get_instance(&ids[2]).await.expect("instance");
    let compile =
        single(items(&java, "startedActors"), "CompileActor", |a| text(a, "name") == "CompileActor").expect("compile");
    let outputs: Vec<String> = items(compile, "outputs").iter().map(|b| text(b, "name")).collect();
    assert!(outputs.contains(&"Main.jar".to_owned()), "Java compiles to Main.jar: {outputs:?}");
    finish(service, &engine, &name).await;
}
