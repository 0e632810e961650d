//! `/api/v1/Blob`: base64 and raw uploads, byte-exact downloads, storage by content, limits.

use base64::Engine as _;
use reqwest::Method;
use serde_json::json;

use crate::on_both_databases;
use crate::support::{Db, TestServer};

on_both_databases!(base64_round_trip, raw_upload_streams_and_dedups, oversized_and_bad_blobs_are_refused);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Bytes that do not repeat within a chunk, so a chunk mix-up shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

async fn base64_round_trip(db: Db) {
    let server = TestServer::start(db).await;
    let bytes = b"#include <stdio.h>\nint main(){puts(\"hi\");}\n\x00\xff";
    let answer = server
        .put("/api/v1/Blob", json!({"Body": b64(bytes), "TimeStamp": 1_700_000_000_000_i64, "Remark": "Main.c"}))
        .await;
    let id = answer.expect_ok()["id"].as_str().expect("id").to_owned();
    let blob = server.get(&format!("/api/v1/Blob/{id}")).await;
    let blob = blob.expect_ok();
    assert_eq!(blob["body"], b64(bytes));
    assert_eq!(blob["timeStamp"], 1_700_000_000_000_i64);
    assert_eq!(blob["remark"], "Main.c");
    assert_eq!(blob["name"], "Main.c", "the remark names the file when no name is given");
    assert_eq!(blob["size"], bytes.len());

    let raw = server.request(Method::GET, &format!("/api/v1/Blob/{id}/content")).send().await.expect("download");
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.bytes().await.expect("bytes").as_ref(), bytes);

    let list = server.get("/api/v1/Blob/All").await;
    let list = list.expect_ok();
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0].get("body").is_none(), "the list carries no content");
    server.finish().await;
}

async fn raw_upload_streams_and_dedups(db: Db) {
    let server = TestServer::start_with(db, |c| c.blobs.chunk_size = 1 << 20).await;
    let bytes = pattern((10 << 20) + 12_345);
    let first = server.blob("input_1.txt", &bytes).await;
    let second = server.blob("copy.txt", &bytes).await;
    assert_ne!(first, second, "each upload is its own blob");

    for id in [&first, &second] {
        let response =
            server.request(Method::GET, &format!("/api/v1/Blob/{id}/content")).send().await.expect("download");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-length"], bytes.len().to_string().as_str());
        assert_eq!(response.headers()["x-blob-sha256"], wharf::store::sha256_hex(&bytes).as_str());
        let body = response.bytes().await.expect("body");
        assert!(body.as_ref() == bytes.as_slice(), "download is byte-exact");
    }
    let info = server.get(&format!("/api/v1/Blob/{second}")).await;
    assert_eq!(info.expect_ok()["name"], "copy.txt");

    // The same bytes are stored once: 11 chunks of 1 MiB, one content row.
    let store = wharf::store::Store::open(&server.db.url, 1).await.expect("open the test database");
    assert_eq!(store.content_stats().await.expect("stats"), (1, 11));
    store.close().await;

    server.blob("empty.txt", b"").await;
    let empty = server.get("/api/v1/Blob/All?page=1&pageSize=1").await;
    assert_eq!(empty.expect_ok()[0]["size"], 0);
    assert_eq!(empty.headers["x-total-count"], "3");
    server.finish().await;
}

async fn oversized_and_bad_blobs_are_refused(db: Db) {
    let server = TestServer::start_with(db, |c| c.blobs.max_size = 1 << 20).await;
    let too_big = vec![7u8; (1 << 20) + 1];
    let request = server.request(Method::PUT, "/api/v1/Blob/raw?name=big.bin").body(too_big.clone());
    server.send(request).await.expect_error(413, "blobs.max_size");
    // Without a length up front the limit is still enforced while streaming.
    let stream = futures::stream::iter(
        too_big.chunks(64 << 10).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let request = server.request(Method::PUT, "/api/v1/Blob/raw?name=big.bin").body(reqwest::Body::wrap_stream(stream));
    server.send(request).await.expect_error(413, "blobs.max_size");
    server.put("/api/v1/Blob", json!({"body": b64(&too_big)})).await.expect_error(413, "blobs.max_size");

    server.put("/api/v1/Blob", json!({"body": "not base64!"})).await.expect_error(400, "field `body`");
    server.put("/api/v1/Blob", json!({"remark": "x"})).await.expect_error(400, "missing field `body`");
    server.put("/api/v1/Blob", json!({"body": "", "name": "a/b"})).await.expect_error(400, "field `name`");
    server.put("/api/v1/Blob", json!({"body": "", "isCompressed": true})).await.expect_error(400, "isCompressed");
    server.put("/api/v1/Blob", json!({"body": "", "timeStamp": "yesterday"})).await.expect_error(400, "timeStamp");
    let request = server.request(Method::PUT, "/api/v1/Blob/raw").body("x");
    server.send(request).await.expect_error(400, "missing field `name`");
    let request = server.request(Method::PUT, "/api/v1/Blob/raw?name=..").body("x");
    server.send(request).await.expect_error(400, "query parameter `name`");

    server.get("/api/v1/Blob/not-a-uuid").await.expect_error(400, "not a valid blob id");
    let unknown = uuid::Uuid::new_v4();
    server.get(&format!("/api/v1/Blob/{unknown}")).await.expect_error(404, &unknown.to_string());
    server.get(&format!("/api/v1/Blob/{unknown}/content")).await.expect_error(404, "not found");
    server.get("/api/v1/Blob/All?pageSize=0").await.expect_error(400, "pageSize");
    server.get("/api/v1/Blob/All?page=x").await.expect_error(400, "page");

    assert_eq!(server.count("/api/v1/Blob/All").await, 0, "no refused upload was stored");
    let store = wharf::store::Store::open(&server.db.url, 1).await.expect("open the test database");
    assert_eq!(store.content_stats().await.expect("stats"), (0, 0), "not even chunks");
    store.close().await;
    server.finish().await;
}
