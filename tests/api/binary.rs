//! The real `wharf` binary as an operator starts it: refusals at start-up, clean shutdown,
//! and memory that stays flat while a large blob streams in and out.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn wharf() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    for (key, _) in std::env::vars() {
        if key.starts_with("WHARF_") {
            command.env_remove(key);
        }
    }
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    command
}

pub(crate) fn free_port() -> u16 {
    wharf::install_crypto_provider();
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Runs a command that must fail at start-up; returns what it printed.
pub(crate) fn refusal(command: &mut Command) -> String {
    let output = command.output().expect("run wharf");
    assert!(!output.status.success(), "wharf must refuse to start");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

struct Running {
    child: Child,
    base: String,
}

impl Running {
    fn start(dir: &std::path::Path) -> Running {
        Running::start_with_env(dir, &[])
    }

    fn start_with_env(dir: &std::path::Path, env: &[(&str, &str)]) -> Running {
        let port = free_port();
        let child = wharf()
            .current_dir(dir)
            .envs(env.iter().copied())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("start wharf");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "wharf did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Running { child, base }
    }

    /// Peak resident memory of the process so far, in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("number") * 1024
    }

    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "wharf did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        (status, log)
    }
}

#[test]
fn refuses_public_bind_without_token() {
    let dir = tempfile::tempdir().expect("dir");
    let message = refusal(wharf().current_dir(dir.path()).args(["serve", "--bind", "0.0.0.0:0"]));
    assert!(message.contains("auth.tokens"), "{message}");
    assert!(message.contains("127.0.0.1"), "says how to fix it: {message}");
    assert!(!dir.path().join("data").exists(), "nothing created on a refused start");
}

#[test]
fn bad_config_names_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("wharf.toml");
    std::fs::write(&path, "[blobs]\nmax_size = \"huge\"\n").expect("write");
    let message = refusal(wharf().args(["serve", "--config"]).arg(&path));
    assert!(message.contains("max_size"), "{message}");

    let message = refusal(
        wharf().current_dir(dir.path()).env("WHARF_SERVER_BIND", "nowhere").args(["serve", "--config"]).arg(&path),
    );
    assert!(message.contains("max_size") || message.contains("server.bind"), "{message}");

    std::fs::write(&path, "[server]\nbind = \"127.0.0.1:0\"\n").expect("write");
    let message = refusal(wharf().env("WHARF_BLOBS_CHUNK_SIZE", "lots").args(["serve", "--config"]).arg(&path));
    assert!(message.contains("WHARF_BLOBS_CHUNK_SIZE"), "{message}");
    let message = refusal(wharf().args(["serve", "--config", "/nonexistent/wharf.toml"]));
    assert!(message.contains("/nonexistent/wharf.toml"), "{message}");
}

/// A log collector reads JSON values: strings, numbers, lists as text, never Rust's debug
/// forms (`Some("local")`, `["hello"]`, `Sqlite`).
#[test]
fn json_logs_carry_plain_values() {
    let dir = tempfile::tempdir().expect("dir");
    let actors = dir.path().join("config/definitions/actors");
    std::fs::create_dir_all(&actors).expect("mkdir");
    std::fs::write(actors.join("hello.toml"), "body = \"echo hello\"\n").expect("write");
    let running = Running::start_with_env(dir.path(), &[("WHARF_LOG_FORMAT", "json")]);
    // Once it answers, it also handles SIGTERM.
    let health = reqwest::blocking::get(format!("{}/healthz", running.base)).expect("healthz");
    assert_eq!(health.status(), 200);
    let (status, log) = running.terminate();
    assert!(status.success(), "{log}");
    let mut seen = std::collections::HashMap::new();
    for line in log.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let fields = entry["fields"].as_object().unwrap_or_else(|| panic!("fields: {line}"));
        for (key, value) in fields {
            if let Some(text) = value.as_str() {
                let debug_form = text.starts_with("Some(") || text.starts_with("[\"") || text == "None";
                assert!(!debug_form, "field `{key}` is a Rust debug string: {line}");
            }
            seen.insert(key.clone(), value.clone());
        }
    }
    assert_eq!(seen["actors"], "hello", "{log}");
    assert_eq!(seen["database"], "sqlite", "{log}");
}

#[test]
fn starts_with_defaults_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let running = Running::start(dir.path());
    let health = reqwest::blocking::get(format!("{}/healthz", running.base)).expect("healthz");
    assert_eq!(health.status(), 200);
    assert!(dir.path().join("data/wharf.db").exists(), "the default SQLite file is created");
    let (status, log) = running.terminate();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(log.contains("wharf is listening"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn large_blobs_stream_in_constant_memory() {
    const SIZE: u64 = 256 << 20;
    let dir = tempfile::tempdir().expect("dir");
    let running = Running::start(dir.path());
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().expect("client");
    let baseline = running.peak_rss();

    // A reader that makes 256 MiB of bytes without holding them.
    struct Zeros(u64);
    impl Read for Zeros {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = (buf.len() as u64).min(self.0) as usize;
            buf[..n].iter_mut().enumerate().for_each(|(i, b)| *b = (i % 251) as u8);
            self.0 -= n as u64;
            Ok(n)
        }
    }
    let upload = client
        .put(format!("{}/api/v1/Blob/raw?name=big.bin", running.base))
        .body(reqwest::blocking::Body::new(Zeros(SIZE)))
        .send()
        .expect("upload");
    assert_eq!(upload.status(), 200);
    let id = upload.json::<serde_json::Value>().expect("json")["data"]["id"].as_str().expect("id").to_owned();

    let mut download = client.get(format!("{}/api/v1/Blob/{id}/content", running.base)).send().expect("download");
    assert_eq!(download.status(), 200);
    let mut received = 0u64;
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = download.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    assert_eq!(received, SIZE);
    let grew = running.peak_rss().saturating_sub(baseline);
    let (status, log) = running.terminate();
    assert!(status.success(), "{log}");
    // Seen: 62–81 MiB before chunks had a SQLite file of their own, 81–96 MiB since, with its
    // writer's fixed 16 MiB page cache. Holding the blob would take 256 MiB.
    assert!(grew < 112 << 20, "a 256 MiB blob went through while memory grew by only {} MiB", grew >> 20);
}

#[test]
fn base64_routes_refuse_large_blobs_and_concurrent_transfers_wait() {
    const INLINE: u64 = 8 << 20;
    let dir = tempfile::tempdir().expect("dir");
    let running = Running::start_with_env(
        dir.path(),
        &[("WHARF_BLOBS_MAX_INLINE_SIZE", "8388608"), ("WHARF_BLOBS_MAX_CONCURRENT_TRANSFERS", "2")],
    );
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().expect("client");
    let put_raw = |name: &str, bytes: Vec<u8>| -> String {
        let answer =
            client.put(format!("{}/api/v1/Blob/raw?name={name}", running.base)).body(bytes).send().expect("upload");
        assert_eq!(answer.status(), 200);
        answer.json::<serde_json::Value>().expect("json")["data"]["id"].as_str().expect("id").to_owned()
    };
    let big = put_raw("big.bin", (0..3 * INLINE).map(|i| (i % 253) as u8).collect());
    let fits = put_raw("fits.bin", (0..INLINE).map(|i| (i % 241) as u8).collect());
    let baseline = running.peak_rss();

    // Over the limit, both ways: a 413 that says where to go instead, before anything is read.
    let down = client.get(format!("{}/api/v1/Blob/{big}", running.base)).send().expect("get");
    assert_eq!(down.status(), 413);
    let text = down.text().expect("text");
    assert!(text.contains(&format!("/api/v1/Blob/{big}/content")) && text.contains("blobs.max_inline_size"), "{text}");
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(vec![7u8; (INLINE + 1) as usize]);
    let up = client
        .put(format!("{}/api/v1/Blob", running.base))
        .json(&serde_json::json!({"Body": body, "Remark": "x.bin"}))
        .send()
        .expect("put");
    assert_eq!(up.status(), 413);
    assert!(up.text().expect("text").contains("PUT /api/v1/Blob/raw"));

    // Eight callers at once read a blob at the limit; two at a time are served.
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let answer = client.get(format!("{}/api/v1/Blob/{fits}", running.base)).send().expect("get");
                assert_eq!(answer.status(), 200);
                let blob = answer.json::<serde_json::Value>().expect("json");
                assert_eq!(blob["data"]["size"], INLINE);
            });
        }
    });
    let grew = running.peak_rss().saturating_sub(baseline);
    let (status, log) = running.terminate();
    assert!(status.success(), "{log}");
    // Each base64 reply holds about 3 to 4 times its blob: eight at once would take ~250 MiB.
    assert!(grew < 128 << 20, "eight 8 MiB base64 downloads grew memory by {} MiB", grew >> 20);
}

#[test]
fn base64_uploads_wait_for_a_transfer_permit_before_their_body_is_read() {
    const INLINE: usize = 8 << 20;
    let dir = tempfile::tempdir().expect("dir");
    let running = Running::start_with_env(
        dir.path(),
        &[("WHARF_BLOBS_MAX_INLINE_SIZE", "8388608"), ("WHARF_BLOBS_MAX_CONCURRENT_TRANSFERS", "2")],
    );
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().expect("client");
    use base64::Engine as _;
    let bodies: Vec<String> = (0..8u8)
        .map(|n| {
            let bytes: Vec<u8> = (0..INLINE).map(|i| (i % 251) as u8 ^ n).collect();
            serde_json::json!({"Body": base64::engine::general_purpose::STANDARD.encode(bytes), "Remark": "in.bin"})
                .to_string()
        })
        .collect();
    let baseline = running.peak_rss();
    // Eight callers send a blob at the limit at once; the service reads two bodies at a time.
    let ids: Vec<String> = std::thread::scope(|scope| {
        let sent: Vec<_> = bodies
            .iter()
            .map(|body| {
                let client = &client;
                let url = format!("{}/api/v1/Blob", running.base);
                scope.spawn(move || {
                    let answer = client
                        .put(url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .expect("put");
                    assert_eq!(answer.status(), 200);
                    answer.json::<serde_json::Value>().expect("json")["data"]["id"].as_str().expect("id").to_owned()
                })
            })
            .collect();
        sent.into_iter().map(|h| h.join().expect("caller")).collect()
    });
    let grew = running.peak_rss().saturating_sub(baseline);
    for (n, id) in ids.iter().enumerate() {
        let blob: serde_json::Value =
            client.get(format!("{}/api/v1/Blob/{id}", running.base)).send().expect("get").json().expect("json");
        let body = base64::engine::general_purpose::STANDARD.decode(blob["data"]["body"].as_str().expect("body"));
        assert_eq!(body.expect("base64").get(1), Some(&(1 ^ n as u8)), "blob {n} kept its own content");
    }
    // A body longer than a blob at the limit is refused by its length: the answer comes
    // before a byte of it is sent.
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(running.base.trim_start_matches("http://")).expect("connect");
    let head = "PUT /api/v1/Blob HTTP/1.1\r\nhost: wharf\r\ncontent-type: application/json\r\n\
                content-length: 12582912\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).expect("send the head");
    let mut answer = String::new();
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("PUT /api/v1/Blob/raw"), "{answer}");
    let (status, log) = running.terminate();
    assert!(status.success(), "{log}");
    // Each upload holds its body, its text and its bytes (~3.7 × 8 MiB): eight at once took
    // 292 MiB, the two permitted take ~60 MiB live, plus what the allocator keeps of freed
    // buffers in each worker thread's arena (up to 135 MiB peak seen in all).
    assert!(grew < 176 << 20, "eight 8 MiB base64 uploads grew memory by {} MiB", grew >> 20);
}
