//! The `wharf` binary as a client, run as a user would against a real service on a
//! loopback port: every resource command, `run --wait`, `--json` shapes, and errors that are
//! one line and a non-zero exit code.

use serde_json::{Value, json};

use crate::support::{Db, TestServer};

struct Outcome {
    code: i32,
    raw: Vec<u8>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    /// A failure: exit code 1 and one line on standard error that contains `needle`.
    fn fails_with(self, needle: &str) {
        assert_eq!(self.code, 1, "should fail; stdout: {}", self.stdout);
        let lines: Vec<&str> = self.stderr.lines().filter(|l| l.starts_with("wharf: ")).collect();
        assert_eq!(lines.len(), 1, "one error line: {}", self.stderr);
        assert!(lines[0].contains(needle), "`{}` should contain `{needle}`", lines[0]);
        assert!(!self.stderr.contains("panicked") && !self.stderr.contains("backtrace"), "{}", self.stderr);
    }
}

async fn wharf(server: &str, dir: &std::path::Path, args: &[&str]) -> Outcome {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .current_dir(dir)
        .env("WHARF_SERVER", server)
        .env_remove("WHARF_TOKEN")
        .output()
        .await
        .expect("run wharf");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        raw: output.stdout.clone(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn resources_from_the_command_line() {
    let server = TestServer::start(Db::Sqlite).await;
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let base = server.base.clone();
    let cli = |args: &'static [&'static str]| wharf(&base, d, args);

    std::fs::write(d.join("shout.toml"), "body = \"tr a-z A-Z < in.txt > out.txt\"\noutputs = [\"out.txt\"]\n")
        .expect("write");
    std::fs::write(d.join("echo.sh"), "cat in.txt > out.txt\n").expect("write");
    assert!(cli(&["actor", "put", "shout.toml"]).await.ok().stdout.contains("actor shout created"));
    cli(&["actor", "put", "echo.sh", "--output", "out.txt"]).await.ok();
    assert!(cli(&["actor", "put", "echo.sh", "--output", "other.txt"]).await.ok().stdout.contains("updated"));
    let listed = cli(&["--json", "actor", "list"]).await.ok().json();
    let names: Vec<&str> = listed.as_array().expect("array").iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["echo", "shout"]);
    let table = cli(&["actor", "list"]).await.ok().stdout;
    assert!(table.starts_with("NAME") && table.contains("shout") && table.contains("out.txt"), "{table}");
    let got = cli(&["actor", "get", "echo", "--json"]).await.ok().json();
    assert_eq!(got["outputs"], json!(["other.txt"]));
    cli(&["actor", "rm", "echo"]).await.ok();
    cli(&["actor", "get", "echo"]).await.fails_with("actor `echo` not found");

    std::fs::write(d.join("broken.rhai"), "let x = 1;\nlet = ;\n").expect("write");
    cli(&["statemachine", "put", "broken.rhai"]).await.fails_with("line 2, column");
    std::fs::write(d.join("echoes.rhai"), "#{ text: instance.initial_blobs[0].text() }\n").expect("write");
    cli(&["sm", "put", "echoes.rhai"]).await.ok();
    assert_eq!(cli(&["--json", "statemachine", "get", "echoes"]).await.ok().json()["name"], "echoes");

    std::fs::write(d.join("data.bin"), b"\x00\x01binary\xff").expect("write");
    let id = cli(&["blob", "put", "data.bin"]).await.ok().stdout.trim().to_owned();
    let copy = wharf(&base, d, &["blob", "get", &id, "-o", "copy/data.bin"]).await.ok();
    assert!(copy.stderr.contains("9 bytes written to copy/data.bin"), "{}", copy.stderr);
    assert_eq!(std::fs::read(d.join("copy/data.bin")).expect("read"), b"\x00\x01binary\xff");
    let to_stdout = wharf(&base, d, &["blob", "get", &id]).await.ok();
    assert_eq!(to_stdout.raw, b"\x00\x01binary\xff", "the content, byte-exact, on standard output");
    let blobs = cli(&["--json", "blob", "list"]).await.ok().json();
    assert_eq!(blobs[0]["name"], "data.bin");

    cli(&["node", "add", "box2", "tcp://127.0.0.1:2375", "--capacity", "2"]).await.ok();
    cli(&["node", "drain", "box2"]).await.ok();
    let nodes = cli(&["--json", "node", "list"]).await.ok().json();
    let box2 = nodes.as_array().expect("array").iter().find(|n| n["name"] == "box2").cloned().expect("box2");
    assert_eq!(box2["nodeInfo"]["drained"], true);
    assert_eq!(box2["nodeInfo"]["capacity"], 2);
    assert!(cli(&["node", "list"]).await.ok().stdout.contains("(drained)"));
    cli(&["node", "add", "bad", "ftp://x"]).await.fails_with("field `address`");
    cli(&["node", "rm", "box2"]).await.ok();
    cli(&["node", "rm", "box2"]).await.fails_with("node `box2` not found");
    server.finish().await;
}

#[tokio::test]
async fn run_waits_and_reports() {
    let server = TestServer::start(Db::Sqlite).await;
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let base = server.base.clone();
    server.put("/api/v1/StateMachine", json!({"name": "echoes", "body": "set_stage(\"Read\");\n#{ text: instance.initial_blobs[0].text(), mode: instance.parameters.Mode }"})).await.expect_ok();
    server
        .put("/api/v1/StateMachine", json!({"name": "refuses", "body": "fail(\"no tests given\")"}))
        .await
        .expect_ok();
    server
        .put("/api/v1/StateMachine", json!({"name": "waits", "body": "set_stage(\"Wait\");\nsleep(60000);\n1"}))
        .await
        .expect_ok();
    std::fs::write(d.join("note.txt"), "hello").expect("write");

    let done =
        wharf(&base, d, &["--json", "run", "echoes", "-i", "in.txt=note.txt", "-p", "Mode=fast", "--wait"]).await.ok();
    let instance = done.json();
    assert_eq!(instance["status"], "Succeeded");
    assert_eq!(instance["result"], json!({"text": "hello", "mode": "fast"}));
    assert_eq!(instance["initialBlobs"][0]["name"], "in.txt");

    let human = wharf(&base, d, &["run", "echoes", "-i", "note.txt", "--wait"]).await.ok();
    assert!(
        human.stderr.contains("Succeeded stage Read"),
        "plain progress lines when not a terminal: {}",
        human.stderr
    );
    assert!(
        human.stdout.contains("status:    Succeeded") && human.stdout.contains("\"text\": \"hello\""),
        "{}",
        human.stdout
    );

    wharf(&base, d, &["run", "refuses", "--wait"]).await.fails_with("Failed: no tests given");
    wharf(&base, d, &["run", "nothing-by-this-name"])
        .await
        .fails_with("state machine `nothing-by-this-name` not found");
    wharf(&base, d, &["run", "echoes", "-i", "missing.txt"]).await.fails_with("missing.txt");
    wharf(&base, d, &["run", "echoes", "-p", "novalue"]).await.fails_with("is not key=value");

    let id = wharf(&base, d, &["run", "waits"]).await.ok().stdout.trim().to_owned();
    crate::instances::wait_instance(&server, &id, "waiting", |i| i["stage"] == "Wait").await;
    let listed = wharf(&base, d, &["--json", "instance", "list", "--status", "Running"]).await.ok().json();
    assert_eq!(listed[0]["id"], id.as_str());
    wharf(&base, d, &["instance", "rerun", &id, "--stage", "Nowhere"])
        .await
        .fails_with("never reached stage `Nowhere`");
    wharf(&base, d, &["instance", "rerun", &id, "--stage", "Wait"]).await.ok();
    let graph = wharf(&base, d, &["instance", "graph", &id]).await.ok().stdout;
    assert!(graph.starts_with("digraph"), "{graph}");
    assert!(wharf(&base, d, &["instance", "cancel", &id]).await.ok().stdout.contains("cancelled"));
    let got = wharf(&base, d, &["instance", "get", &id]).await.ok().stdout;
    assert!(got.contains("status:    Cancelled"), "{got}");
    wharf(&base, d, &["instance", "cancel", &id]).await.fails_with("already ended");
    assert!(wharf(&base, d, &["instance", "rm", &id]).await.ok().stdout.contains("deleted"));
    wharf(&base, d, &["instance", "get", &id]).await.fails_with("not found");
    wharf(&base, d, &["instance", "get", "not-an-id"]).await.fails_with("not a valid instance id");
    server.finish().await;
}

#[tokio::test]
async fn unreachable_service_and_bad_tokens_say_what_to_do() {
    let dir = tempfile::tempdir().expect("dir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    wharf(&format!("http://127.0.0.1:{closed}"), dir.path(), &["actor", "list"])
        .await
        .fails_with("cannot reach the wharf service");
    wharf("ftp://x", dir.path(), &["actor", "list"]).await.fails_with("not an http://");

    let server = TestServer::start_with(Db::Sqlite, |c| c.auth.tokens = vec!["s3cret".into()]).await;
    wharf(&server.base, dir.path(), &["actor", "list"]).await.fails_with("missing access token");
    wharf(&server.base, dir.path(), &["--token", "wrong", "actor", "list"])
        .await
        .fails_with("invalid access token (set --token or WHARF_TOKEN)");
    wharf(&server.base, dir.path(), &["--token", "s3cret", "actor", "list"]).await.ok();
    server.finish().await;
}

/// What a user meets around the commands: a closed pipe, help, completion, and files with a
/// misspelt key or a broken script, refused by file name.
#[tokio::test]
async fn pipes_help_completion_and_file_errors() {
    use std::os::unix::process::ExitStatusExt;

    let server = TestServer::start(Db::Sqlite).await;
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();

    // `wharf blob list | head -2`, with the reader gone before the first line is written.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["blob", "list"])
        .env("WHARF_SERVER", &server.base)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run wharf");
    drop(child.stdout.take());
    let output = child.wait_with_output().await.expect("wait for wharf");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    assert!(
        output.status.success() || output.status.signal() == Some(libc::SIGPIPE),
        "ends quietly as `cat` does: {:?}",
        output.status
    );

    let help = wharf(&server.base, d, &["serve", "--help"]).await.ok().stdout;
    assert!(help.contains("--config") && !help.contains("--token") && !help.contains("--json"), "{help}");
    let refused = wharf(&server.base, d, &["serve", "--token", "x"]).await;
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("--token is for client commands"), "{}", refused.stderr);
    assert!(wharf(&server.base, d, &["actor", "put", "--help"]).await.ok().stdout.contains("--token"));
    let script = wharf(&server.base, d, &["completion", "bash"]).await.ok().stdout;
    assert!(script.contains("complete -F _wharf") && script.contains("statemachine"), "{script}");

    std::fs::write(d.join("typo.toml"), "body = \"cat in.txt\"\noutput = [\"out.txt\"]\n").expect("write");
    wharf(&server.base, d, &["actor", "put", "typo.toml"]).await.fails_with("typo.toml: unknown key `output`");
    std::fs::write(d.join("limits.toml"), "body = \"true\"\n[limitation]\ncpu_period = 5\n").expect("write");
    wharf(&server.base, d, &["actor", "put", "limits.toml"])
        .await
        .fails_with("limits.toml: unknown key `limitation.cpu_period`");
    assert_eq!(server.count("/api/v1/Actor/All").await, 0, "nothing stored");
    std::fs::write(d.join("broken.rhai"), "let x = 1;\nlet = ;\n").expect("write");
    wharf(&server.base, d, &["sm", "put", "broken.rhai"])
        .await
        .fails_with("broken.rhai: script error at line 2, column");
    server.finish().await;
}
