//! Access control: bearer tokens, the IP allow list, body size limits.

use reqwest::Method;
use serde_json::json;

use crate::support::{Db, TestServer};

#[tokio::test]
async fn tokens_guard_the_api_but_not_health_or_docs() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.auth.tokens = vec!["s3cret".into()]).await;
    let bare = |method: Method, path: &str| server.client.request(method, server.url(path));

    server.send(bare(Method::GET, "/api/v1/Actor/All")).await.expect_error(401, "missing access token");
    server
        .send(bare(Method::GET, "/api/v1/Actor/All").bearer_auth("wrong"))
        .await
        .expect_error(401, "invalid access token");
    server
        .send(bare(Method::PUT, "/api/v1/Actor").json(&json!({"name": "a", "body": "b"})))
        .await
        .expect_error(401, "token");
    server.send(bare(Method::GET, "/api/v1/Actor/All").bearer_auth("s3cret")).await.expect_ok();
    assert_eq!(server.count("/api/v1/Actor/All").await, 0, "the refused PUT wrote nothing");
    server.send(bare(Method::GET, "/healthz")).await.expect_ok();
    let spec = bare(Method::GET, "/api-docs/openapi.json").send().await.expect("spec");
    assert_eq!(spec.status(), 200);
    server.finish().await;
}

#[tokio::test]
async fn allow_list_refuses_other_addresses() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.acl.allow = vec!["10.0.0.0/8".into()]).await;
    server.get("/api/v1/Actor/All").await.expect_error(403, "127.0.0.1 is not in acl.allow");
    server.get("/healthz").await.expect_error(403, "acl.allow");
    server.finish().await;

    let server =
        TestServer::start_with(Db::Sqlite, |c| c.acl.allow = vec!["10.0.0.0/8".into(), "127.0.0.1".into()]).await;
    server.get("/api/v1/Actor/All").await.expect_ok();
    server.finish().await;
}

#[tokio::test]
async fn oversized_json_is_refused() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.server.max_json_body = 1024).await;
    let body = json!({"name": "big", "body": "x".repeat(4096)});
    server.put("/api/v1/Actor", body).await.expect_error(413, "server.max_json_body");
    assert_eq!(server.count("/api/v1/Actor/All").await, 0);
    server.finish().await;
}

#[tokio::test]
async fn the_console_is_served_without_a_token_but_its_data_is_not() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.auth.tokens = vec!["s3cret".into()]).await;
    let bare = |path: &str| server.client.get(server.url(path));

    // `/ui` redirects to `/ui/`, the page itself.
    let page = bare("/ui").send().await.expect("console");
    assert_eq!(page.status(), 200);
    assert_eq!(page.url().path(), "/ui/");
    let policy = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(policy.starts_with("default-src 'self'"), "nothing is loaded from elsewhere: {policy}");
    assert!(page.text().await.expect("html").contains("<title>wharf console</title>"));
    let script = bare("/ui/js/app.js").send().await.expect("script");
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8", "served as a module");

    // What the page shows comes from the API, which still wants the token.
    server.send(bare("/api/v1/DockerNode/WaitingTasks")).await.expect_error(401, "missing access token");
    server.send(bare("/ui/js/missing.js")).await.expect_error(401, "missing access token");
    server
        .send(bare("/ui/js/missing.js").bearer_auth("s3cret"))
        .await
        .expect_error(404, "no route for /ui/js/missing.js");
    server.finish().await;
}
