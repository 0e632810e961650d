//! HTTPS with client certificates, the way JoyOI's SDK calls the service: certificates made
//! here (a CA, a server certificate for 127.0.0.1 and localhost, a client certificate, and a
//! stranger's from another CA), a real server, the real binary, and the command line.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use reqwest::Method;
use serde_json::{Value, json};
use wharf::config::Config;

use crate::binary::{free_port, refusal, wharf};
use crate::support::{Db, TestDb, TestServer};

/// Certificate and key files in a folder that lives as long as this value.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// `ca.pem`; `server.pem`/`server.key` and `client.pem`/`client.key` signed by it;
    /// `stranger.pem`/`stranger.key` signed by `stranger-ca.pem`, which the service does not know.
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("dir");
        let pki = Pki { dir };
        let ca = pki.authority("ca", "wharf test CA");
        pki.leaf("server", &["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth, &ca);
        pki.leaf("client", &[], ExtendedKeyUsagePurpose::ClientAuth, &ca);
        let stranger_ca = pki.authority("stranger-ca", "someone else's CA");
        pki.leaf("stranger", &[], ExtendedKeyUsagePurpose::ClientAuth, &stranger_ca);
        pki
    }

    fn authority(&self, name: &str, common_name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        self.write(&format!("{name}.pem"), &ca.pem());
        ca
    }

    fn leaf(&self, name: &str, names: &[&str], usage: ExtendedKeyUsagePurpose, ca: &CertifiedIssuer<'_, KeyPair>) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, ca).expect("sign");
        self.write(&format!("{name}.pem"), &cert.pem());
        self.write(&format!("{name}.key"), &key.serialize_pem());
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).expect("write PEM");
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).expect("read PEM")
    }

    /// HTTPS with client certificates, as the service is told in `server.tls`.
    fn require_client_certificates(&self, config: &mut Config) {
        config.server.tls.cert = self.path("server.pem");
        config.server.tls.key = self.path("server.key");
        config.server.tls.client_ca = self.path("ca.pem");
    }

    /// A client that trusts the test CA and presents `identity`'s certificate, if any.
    fn client(&self, identity: Option<&str>) -> reqwest::Client {
        wharf::install_crypto_provider();
        let ca = reqwest::Certificate::from_pem(&self.read("ca.pem")).expect("CA");
        let mut builder = reqwest::Client::builder().tls_certs_only([ca]).timeout(Duration::from_secs(30));
        if let Some(name) = identity {
            let mut pem = self.read(&format!("{name}.pem"));
            pem.extend(self.read(&format!("{name}.key")));
            builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
        }
        builder.build().expect("client")
    }
}

async fn start(pki: &Pki, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let db = TestDb::new(Db::Sqlite).await;
    TestServer::start_reached_by(db, Some(pki.client(Some("client"))), |config| {
        pki.require_client_certificates(config);
        tweak(config);
    })
    .await
}

/// The error of a request from `client` that must fail before any HTTP answer.
async fn refused(client: &reqwest::Client, url: &str) -> String {
    match client.get(url).send().await {
        Ok(response) => panic!("expected no HTTP answer from {url}, got {}", response.status()),
        Err(err) => wharf::errors::with_causes(&err),
    }
}

#[tokio::test]
async fn only_clients_with_a_certificate_from_the_ca_get_in() {
    let pki = Pki::new();
    let server = start(&pki, |_| {}).await;
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);

    assert_eq!(server.get("/api/v1/Actor/All").await.expect_ok(), &json!([]));
    server.put("/api/v1/Actor", json!({"name": "echo", "body": "cat in.txt"})).await.expect_ok();
    assert_eq!(server.count("/api/v1/Actor/All").await, 1);

    let url = server.url("/api/v1/Actor/All");
    let error = refused(&pki.client(None), &url).await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    refused(&pki.client(Some("stranger")), &url).await;
    let plain = url.replacen("https://", "http://", 1);
    refused(&reqwest::Client::new(), &plain).await;

    let metrics = server.client.get(server.url("/metrics")).send().await.expect("metrics");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains(r#"wharf_http_requests_total{method="GET",route="/api/v1/Actor/All",status="200"}"#),
        "requests over TLS are counted:\n{text}"
    );
    server.finish().await;
}

#[tokio::test]
async fn tokens_are_still_demanded_when_configured() {
    let pki = Pki::new();
    let server = start(&pki, |c| c.auth.tokens = vec!["s3cret".into()]).await;
    let bare = server.client.request(Method::GET, server.url("/api/v1/Actor/All"));
    server.send(bare).await.expect_error(401, "missing access token");
    server.get("/api/v1/Actor/All").await.expect_ok();
    server.finish().await;
}

#[tokio::test]
async fn the_console_is_served_over_tls_to_a_client_with_a_certificate() {
    let pki = Pki::new();
    let server = start(&pki, |_| {}).await;
    let page = server.client.get(server.url("/ui/")).send().await.expect("console over TLS");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("wharf console"));
    refused(&pki.client(None), &server.url("/ui/")).await;
    server.finish().await;
}

#[tokio::test]
async fn allow_list_sees_the_client_address_over_tls() {
    let pki = Pki::new();
    let server = start(&pki, |c| c.acl.allow = vec!["10.0.0.0/8".into()]).await;
    server.get("/api/v1/Actor/All").await.expect_error(403, "127.0.0.1 is not in acl.allow");
    server.finish().await;
}

#[tokio::test]
async fn https_without_client_certificates_serves_anyone() {
    let pki = Pki::new();
    let db = TestDb::new(Db::Sqlite).await;
    let server = TestServer::start_reached_by(db, Some(pki.client(None)), |c| {
        pki.require_client_certificates(c);
        c.server.tls.client_ca = String::new();
    })
    .await;
    server.get("/api/v1/Actor/All").await.expect_ok();
    server.finish().await;
}

#[tokio::test]
async fn shutdown_lets_a_running_upload_finish_and_refuses_new_connections() {
    let pki = Pki::new();
    let server = start(&pki, |_| {}).await;
    let upload_url = server.url("/api/v1/Blob/raw?name=slow.bin");
    let health_url = server.url("/healthz");
    let client = server.client.clone();
    // Three pieces a quarter of a second apart: the upload is under way when shutdown starts.
    let pieces = futures::stream::unfold(0, |sent| async move {
        if sent == 3 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 1000])), sent + 1))
    });
    let upload = tokio::spawn(
        client
            .put(upload_url)
            .header(reqwest::header::CONTENT_LENGTH, 3000)
            .body(reqwest::Body::wrap_stream(pieces))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;

    refused(&pki.client(Some("client")), &health_url).await;
    let answer = upload.await.expect("upload task").expect("the upload under way is answered");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("json");
    assert!(body["data"]["id"].is_string(), "the blob was stored: {body}");
    stopping.await.expect("stop task");
}

/// The real binary with `server.tls` from the environment, as an operator would start it.
fn serve(pki: &Pki, dir: &std::path::Path, bind: &str, client_ca: bool) -> Command {
    let mut command = wharf();
    command
        .current_dir(dir)
        .env("WHARF_SERVER_TLS_CERT", pki.path("server.pem"))
        .env("WHARF_SERVER_TLS_KEY", pki.path("server.key"))
        .args(["serve", "--bind", bind]);
    if client_ca {
        command.env("WHARF_SERVER_TLS_CLIENT_CA", pki.path("ca.pem"));
    }
    command
}

#[tokio::test]
async fn binary_listens_publicly_with_client_certificates_and_no_token() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("dir");

    let message = refusal(&mut serve(&pki, dir.path(), "0.0.0.0:0", false));
    assert!(message.contains("auth.tokens") && message.contains("server.tls.client_ca"), "both ways: {message}");

    let port = free_port();
    let mut child = serve(&pki, dir.path(), &format!("0.0.0.0:{port}"), true).spawn().expect("start wharf");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "wharf did not start listening");
        assert!(child.try_wait().expect("wait").is_none(), "wharf exited at start-up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("https://127.0.0.1:{port}/api/v1/Actor/All");
    let answer = pki.client(Some("client")).get(&url).send().await.expect("request with a certificate");
    assert_eq!(answer.status(), 200);
    refused(&pki.client(None), &url).await;

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
    let log = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "{log}");
    assert!(log.contains("scheme=\"https\"") || log.contains("scheme=https"), "{log}");
    assert!(log.contains("TLS handshake failed"), "the refused client is logged: {log}");
}

#[test]
fn unusable_files_stop_start_up_naming_the_key_and_the_file() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("dir");
    let check = |command: &mut Command, key: &str, file: &str, what: &str| {
        let message = refusal(command.stdout(Stdio::null()));
        for needle in [key, file, what] {
            assert!(message.contains(needle), "`{message}` should mention `{needle}`");
        }
        assert!(!dir.path().join("data").exists(), "nothing created on a refused start");
    };
    check(
        serve(&pki, dir.path(), "127.0.0.1:0", true).env("WHARF_SERVER_TLS_KEY", "/nonexistent/server.key"),
        "server.tls.key",
        "/nonexistent/server.key",
        "cannot read",
    );
    check(
        serve(&pki, dir.path(), "127.0.0.1:0", true).env("WHARF_SERVER_TLS_CERT", pki.path("server.key")),
        "server.tls.cert",
        &pki.path("server.key"),
        "no certificate",
    );
    check(
        serve(&pki, dir.path(), "127.0.0.1:0", true).env("WHARF_SERVER_TLS_CLIENT_CA", pki.path("client.key")),
        "server.tls.client_ca",
        &pki.path("client.key"),
        "no certificate",
    );
    check(
        serve(&pki, dir.path(), "127.0.0.1:0", true).env("WHARF_SERVER_TLS_KEY", pki.path("client.key")),
        "server.tls.key",
        &pki.path("client.key"),
        "server.tls.cert",
    );
    check(
        serve(&pki, dir.path(), "127.0.0.1:0", false).env_remove("WHARF_SERVER_TLS_KEY"),
        "server.tls.key",
        "server.tls.cert",
        "both",
    );
}

/// The CLI against `server` with `args`; exit code, standard output and standard error.
async fn cli(server: &TestServer, env: &[(&str, String)], args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .env("WHARF_SERVER", &server.base)
        .env_remove("WHARF_TOKEN")
        .env_remove("WHARF_CACERT")
        .env_remove("WHARF_CERT")
        .env_remove("WHARF_KEY")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("run wharf");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

#[tokio::test]
async fn command_line_presents_its_certificate() {
    let pki = Pki::new();
    let server = start(&pki, |_| {}).await;
    server.put("/api/v1/Actor", json!({"name": "echo", "body": "cat in.txt"})).await.expect_ok();
    let (ca, cert, key) = (pki.path("ca.pem"), pki.path("client.pem"), pki.path("client.key"));

    let (code, stdout, stderr) =
        cli(&server, &[], &["--cacert", &ca, "--cert", &cert, "--key", &key, "--json", "actor", "list"]).await;
    assert_eq!(code, 0, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(listed[0]["name"], "echo", "{stdout}");

    let env = [("WHARF_CACERT", ca.clone()), ("WHARF_CERT", cert.clone()), ("WHARF_KEY", key.clone())];
    let (code, stdout, stderr) = cli(&server, &env, &["actor", "list"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("echo"), "{stdout}");

    fn fails(outcome: (i32, String, String), needles: &[&str]) {
        let (code, _, stderr) = outcome;
        assert_eq!(code, 1, "{stderr}");
        let line = stderr.lines().find(|l| l.starts_with("wharf: ")).unwrap_or_default();
        for needle in needles {
            assert!(line.contains(needle), "`{stderr}` should mention `{needle}`");
        }
    }
    fails(cli(&server, &[], &["--cacert", &ca, "actor", "list"]).await, &["TLS", "--cert"]);
    fails(cli(&server, &[], &["--cacert", &ca, "--cert", &cert, "actor", "list"]).await, &["--key"]);
    let plain = server.base.replacen("https://", "http://", 1);
    fails(cli(&server, &[], &["--server", &plain, "actor", "list"]).await, &["use https://"]);
    let missing = pki.path("missing.pem");
    fails(
        cli(&server, &[], &["--cacert", &missing, "--cert", &cert, "--key", &key, "actor", "list"]).await,
        &[&missing, "--cacert"],
    );
    fails(
        cli(&server, &[], &["--cacert", &ca, "--cert", &key, "--key", &key, "actor", "list"]).await,
        &[&key, "--cert"],
    );
    server.finish().await;
}
