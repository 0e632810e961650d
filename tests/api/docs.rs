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
    ("get", "/api/v1/StateMachineInstance/Timeline"),
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

async fn document(server: &TestServer) -> serde_json::Value {
    let answer = server.client.get(server.url("/api-docs/openapi.json")).send().await.expect("spec");
    answer.json().await.expect("json")
}

/// Swagger UI shows lock icons only on a service that asks for a token, with the 401 it
/// then answers; `/healthz` and `/metrics` stay open; error examples carry their status.
#[tokio::test]
async fn the_document_says_what_this_service_asks() {
    let open = TestServer::start(Db::Sqlite).await;
    let spec = document(&open).await;
    let text = spec.to_string();
    assert!(!text.contains("\"security\"") && !text.contains("securitySchemes"), "no lock icons: {text}");
    assert!(spec["paths"]["/api/v1/Actor/All"]["get"]["responses"].get("401").is_none());
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let Ok(code) = status.parse::<u64>() else { continue };
                if let Some(example) = response.pointer("/content/application~1json/example")
                    && code >= 400
                {
                    assert_eq!(example["code"], code, "{method} {path} {status}: {example}");
                    let msg = example["msg"].as_str().unwrap_or_default();
                    assert!(!msg.is_empty(), "{method} {path} {status}: the example says what went wrong: {example}");
                }
            }
        }
    }
    open.finish().await;

    let guarded = TestServer::start_with(Db::Sqlite, |c| c.auth.tokens = vec!["s3cret".into()]).await;
    let spec = document(&guarded).await;
    assert_eq!(spec["security"][0]["bearer"], serde_json::json!([]));
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    let unauthorized = &spec["paths"]["/api/v1/Actor/All"]["get"]["responses"]["401"];
    assert_eq!(unauthorized["content"]["application/json"]["example"]["code"], 401, "{unauthorized}");
    for public in ["/healthz", "/metrics"] {
        let operation = &spec["paths"][public]["get"];
        assert_eq!(operation["security"], serde_json::json!([{}]), "{public} needs no token: {operation}");
        assert!(operation["responses"].get("401").is_none(), "{public}");
    }
    guarded.finish().await;
}

/// The example body of `operation`'s JSON request, as Swagger UI pre-fills it.
fn example_body(spec: &serde_json::Value, operation: &serde_json::Value) -> Option<serde_json::Value> {
    let schema = operation.pointer("/requestBody/content/application~1json/schema")?;
    let name = schema["$ref"].as_str()?.rsplit('/').next()?;
    Some(spec["components"]["schemas"][name]["example"].clone())
}

/// Every example of the document, sent as Swagger UI's "Try it out" sends it, is accepted: each
/// JSON body has one, each required parameter has one, and a path's `{name}` or `{id}` is the
/// resource the example before it made. Creations first, then reads, changes, removals.
#[tokio::test]
async fn every_example_of_the_document_is_accepted() {
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.server.definitions = concat!(env!("CARGO_MANIFEST_DIR"), "/config/definitions").into();
        c.nodes.clear();
    })
    .await;
    let spec = document(&server).await;
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let rank = ["put", "get", "patch", "delete"].iter().position(|m| m == method).expect("a known method");
            // Removals go the other way: instances before the state machines they run.
            let key =
                if *method == "delete" { std::cmp::Reverse(path.clone()) } else { std::cmp::Reverse(String::new()) };
            operations.push((rank, key, path.clone(), path.clone(), method.clone(), operation.clone()));
        }
    }
    operations.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
    // What each kind of resource's example made: `(Actor, name)` → its name, `(Blob, id)` → its id.
    let mut made: std::collections::BTreeMap<(String, String), String> = Default::default();
    let mut sent = 0;
    for (_, _, _, template, method, operation) in operations {
        let kind = template.trim_start_matches("/api/v1/").split('/').next().unwrap_or_default().to_owned();
        let mut path = template.clone();
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().expect("parameter name");
            if parameter["in"] == "path" {
                let value = made
                    .get(&(kind.clone(), name.to_owned()))
                    .unwrap_or_else(|| panic!("{method} {template}: no {kind} {name} was made before it"));
                path = path.replace(&format!("{{{name}}}"), value);
            } else if parameter["required"] == true {
                let example = parameter.get("example").or_else(|| parameter["schema"].get("example"));
                let example =
                    example.unwrap_or_else(|| panic!("{method} {template}: required `{name}` has no example"));
                let text = example.as_str().map(str::to_owned).unwrap_or_else(|| example.to_string());
                path = format!("{path}{}{name}={text}", if path.contains('?') { '&' } else { '?' });
            }
        }
        let method_name = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let mut request = server.request(method_name, &path);
        let body = example_body(&spec, &operation);
        if operation.get("requestBody").is_some() {
            match &body {
                Some(body) => {
                    assert!(body.is_object(), "{method} {template}: the request body has no example");
                    request = request.json(body);
                }
                None => request = request.header("content-type", "application/octet-stream").body("world\n"),
            }
        }
        let response = request.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let text = response.text().await.expect("read body");
        assert!(status < 400, "{method} {path} with the document's example {body:?} answered {status}: {text}");
        sent += 1;
        if method == "put" {
            let answer: serde_json::Value = serde_json::from_str(&text).expect("an envelope");
            if let Some(id) = answer["data"]["id"].as_str() {
                made.insert((kind.clone(), "id".into()), id.to_owned());
            }
            if let Some(name) = body.as_ref().and_then(|b| b["name"].as_str()) {
                made.insert((kind.clone(), "name".into()), name.to_owned());
            }
        }
    }
    assert_eq!(sent, ROUTES.len(), "every operation was tried");
    server.finish().await;
}
