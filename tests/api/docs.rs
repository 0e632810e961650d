//! The OpenAPI document describes every route the server answers, and Swagger UI is served.

use reqwest::Method;

use crate::support::{Db, TestServer};

/// The routes DESIGN.md promises: JoyOI's plus wharf's additions.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/Actor/All"),
    ("get", "/api/v1/Actor/{name}"),
    ("put", "/api/v1/Actor"),
    ("patch", "/api/v1/Actor/{name}"),
    ("delete", "/api/v1/Actor/{name}"),
    ("get", "/api/v1/Blob/All"),
    ("get", "/api/v1/Blob/{id}"),
    ("put", "/api/v1/Blob"),
    ("put", "/api/v1/Blob/raw"),
    ("get", "/api/v1/Blob/{id}/content"),
    ("get", "/api/v1/DockerNode/All"),
    ("get", "/api/v1/DockerNode/WaitingTasks"),
    ("get", "/api/v1/DockerNode/TimeoutErrors"),
    ("put", "/api/v1/DockerNode"),
    ("patch", "/api/v1/DockerNode/{name}"),
    ("delete", "/api/v1/DockerNode/{name}"),
    ("get", "/api/v1/StateMachine/All"),
    ("get", "/api/v1/StateMachine/{name}"),
    ("put", "/api/v1/StateMachine"),
    ("patch", "/api/v1/StateMachine/{name}"),
    ("delete", "/api/v1/StateMachine/{name}"),
    ("get", "/api/v1/StateMachineInstance/All"),
    ("get", "/api/v1/StateMachineInstance/{id}"),
    ("put", "/api/v1/StateMachineInstance"),
    ("patch", "/api/v1/StateMachineInstance/{id}"),
    ("delete", "/api/v1/StateMachineInstance/{id}"),
    ("get", "/api/v1/StateMachineInstance/{id}/graph"),
    ("get", "/api/v1/StateMachineInstance/{id}/logs"),
    ("get", "/healthz"),
    ("get", "/metrics"),
];

#[tokio::test]
async fn spec_and_router_agree() {
    let server = TestServer::start(Db::Sqlite).await;
    let spec: serde_json::Value =
        server.client.get(server.url("/api-docs/openapi.json")).send().await.expect("spec").json().await.expect("json");
    let paths = spec["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        assert!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "{method} {path} is documented");
    }
    // Every documented operation is answered by a handler, not by the 404/405 fallbacks.
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "put", "patch", "delete", "post"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let concrete =
                path.replace("{name}", "no-such-thing").replace("{id}", "00000000-0000-0000-0000-000000000000");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let request =
                server.request(method.clone(), &concrete).header("content-type", "application/json").body("{}");
            let response = request.send().await.expect("request reaches the server");
            let status = response.status().as_u16();
            let text = response.text().await.expect("read body");
            // Not every answer is an envelope (`/metrics` is text); the fallbacks' always are.
            let msg = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|body| body["msg"].as_str().map(str::to_owned));
            assert!(
                !msg.is_some_and(|msg| msg.starts_with("no route")),
                "{method} {concrete} reaches a handler: {text}"
            );
            assert_ne!(status, 405, "{method} {concrete} is routed");
        }
    }
    assert_eq!(operations, ROUTES.len(), "the spec documents exactly the promised routes");
    // An instance is its status fields (JoyOI's `status`, wharf's `state`) and the rest.
    let parts = spec["components"]["schemas"]["Instance"]["allOf"].as_array().expect("Instance is allOf");
    for field in ["status", "state", "startedActors", "executionKey"] {
        assert!(parts.iter().any(|part| part["properties"][field].is_object()), "Instance documents `{field}`");
    }

    let ui = server.client.get(server.url("/swagger/")).send().await.expect("swagger ui");
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.expect("html").contains("swagger-ui"), "Swagger UI page is served offline");
    server.finish().await;
}

#[tokio::test]
async fn healthz_and_fallbacks() {
    let server = TestServer::start(Db::Sqlite).await;
    let health = server.get("/healthz").await;
    assert_eq!(health.expect_ok()["status"], "ok");
    assert_eq!(health.expect_ok()["database"], "sqlite");
    server.get("/api/v1/Nothing").await.expect_error(404, "no route for /api/v1/Nothing");
    server.call(Method::POST, "/api/v1/Actor", None).await.expect_error(405, "POST is not allowed");
    server.finish().await;
}
