//! `/api/v1/Blob`: base64 and raw uploads, byte-exact downloads, storage by content, limits.

use base64::Engine as _;
use reqwest::Method;
use serde_json::json;

use crate::on_both_databases;
use crate::support::{Db, TestServer};

on_both_databases!(base64_round_trip, raw_upload_streams_and_dedups, oversized_and_bad_blobs_are_refused);

/// How many distinct contents and chunks the server's database holds.
async fn stored_contents_and_chunks(server: &TestServer) -> (i64, i64) {
    let store = wharf::store::Store::open(&server.db.url, 1).await.expect("open the test database");
    let stats = store.content_stats().await.expect("stats");
    store.close().await;
    stats
}

/// The raw content of blob `id`.
async fn download(server: &TestServer, id: &str) -> bytes::Bytes {
    let response = server.request(Method::GET, &format!("/api/v1/Blob/{id}/content")).send().await.expect("download");
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("body")
}

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
    assert_eq!(stored_contents_and_chunks(&server).await, (1, 11));

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
    assert_eq!(stored_contents_and_chunks(&server).await, (0, 0), "not even chunks");
    server.finish().await;
}

/// A SQLite database from before chunk files kept its chunks in the main file: at the next
/// start they move to `<name>-chunks.db`, and every blob still downloads byte for byte.
#[tokio::test]
async fn chunks_of_an_older_sqlite_database_move_to_their_own_file() {
    use sqlx::{Connection, Executor};

    let tweak = |c: &mut wharf::config::Config| c.blobs.chunk_size = 1 << 20;
    let server = TestServer::start_with(Db::Sqlite, tweak).await;
    let bytes = pattern((3 << 20) + 777);
    let id = server.blob("old.bin", &bytes).await;
    let db = server.stop().await;
    let main_file = db._dir.path().join("wharf.db");
    let chunk_file = db._dir.path().join("wharf-chunks.db");
    assert!(chunk_file.exists(), "chunks are written to {}", chunk_file.display());
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", chunk_file.display())).await.expect("open");
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&mut conn).await.expect("page size");
    assert_eq!(page_size, 65536, "the chunk file has large pages");
    conn.close().await.expect("close");

    // Put the chunks back where an older wharf kept them, and remove the chunk file.
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open the main file");
    sqlx::query("ATTACH DATABASE $1 AS old")
        .bind(chunk_file.display().to_string())
        .execute(&mut conn)
        .await
        .expect("attach");
    conn.execute(
        "CREATE TABLE main.blob_chunks (sha256 TEXT NOT NULL, idx BIGINT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (sha256, idx))",
    )
    .await
    .expect("create the old table");
    let copied = conn.execute("INSERT INTO main.blob_chunks SELECT * FROM old.blob_chunks").await.expect("copy");
    assert_eq!(copied.rows_affected(), 4, "3 MiB and a bit make four chunks of 1 MiB");
    conn.execute("DETACH DATABASE old").await.expect("detach");
    conn.close().await.expect("close");
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", chunk_file.display());
        let _ = std::fs::remove_file(file);
    }

    let server = TestServer::start_on(db, tweak).await;
    assert!(download(&server, &id).await.as_ref() == bytes.as_slice(), "download is byte-exact");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", main_file.display())).await.expect("open");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'blob_chunks'")
        .fetch_one(&mut conn)
        .await
        .expect("look for the old table");
    assert_eq!(left, 0, "the main file keeps no chunk table");
    conn.close().await.expect("close");
    assert_eq!(stored_contents_and_chunks(&server).await, (1, 4), "all four chunks moved");
    server.finish().await;
}

/// The chunk file's write-ahead log holds every chunk written until it is copied back into
/// the file; once uploads pause, that happens and the log is emptied.
#[tokio::test]
async fn the_chunk_files_log_is_copied_back_once_uploads_pause() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.blobs.chunk_size = 1 << 20).await;
    let bytes = pattern(16 << 20);
    let id = server.blob("big.bin", &bytes).await;
    let log = server.db._dir.path().join("wharf-chunks.db-wal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut size = u64::MAX;
    while std::time::Instant::now() < deadline {
        size = std::fs::metadata(&log).map_or(0, |m| m.len());
        if size == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(size, 0, "{} is emptied within 10 s of the last write", log.display());
    assert!(download(&server, &id).await.as_ref() == bytes.as_slice(), "download is byte-exact");
    server.finish().await;
}
