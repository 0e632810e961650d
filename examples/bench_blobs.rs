//! Benchmark (not a test): the data path against baselines measured in the same run.
//! - `PUT /Blob/raw` and `GET /Blob/{id}/content` of one file versus `cp` of it on the same
//!   disk, on SQLite and (with `WHARF_TEST_POSTGRES_URL`) PostgreSQL;
//! - on PostgreSQL, a page of `StateMachineInstance/All` over 100,000 instances versus `/healthz`.
//!
//!   cargo run --release --example bench_blobs -- [MiB=1024] [instances=100000]
//!
//! Prints each figure and its ratio to the baseline (higher is better; targets: upload ≥ 0.5,
//! download ≥ 0.6, listing ≥ 0.3).

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::Connection;
use tokio::io::AsyncWriteExt;

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: u64 = args.first().map_or(Ok(1024), |a| a.parse())?;
    let instances: i64 = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let dir = tempfile::tempdir_in(".")?;
    let file = dir.path().join("blob.bin");
    make_file(&file, mib << 20)?;
    let cp = time_cp(&file, &dir.path().join("copy.bin"))?;
    let mb = |d: Duration| (mib << 20) as f64 / d.as_secs_f64() / 1e6;
    println!("{mib} MiB file; cp: {:.2} s ({:.0} MB/s)", cp.as_secs_f64(), mb(cp));

    let mut databases = vec![("SQLite", format!("sqlite://{}/wharf.db", dir.path().display()), None)];
    if let Ok(admin) = std::env::var("WHARF_TEST_POSTGRES_URL") {
        let name = format!("wharf_bench_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
        let url = match admin.rfind('/') {
            Some(slash) => format!("{}/{name}", &admin[..slash]),
            None => return Err("WHARF_TEST_POSTGRES_URL has no database part".into()),
        };
        databases.push(("PostgreSQL", url, Some((admin, name))));
    }
    for (label, url, postgres) in &databases {
        let (base, stop, served) = serve(url).await?;
        let client = reqwest::Client::new();
        let clock = Instant::now();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::open(&file).await?,
            256 << 10,
        ));
        let answer = client.put(format!("{base}/api/v1/Blob/raw?name=blob.bin")).body(body).send().await?;
        let answer: serde_json::Value = answer.error_for_status()?.json().await?;
        let up = clock.elapsed();
        let id = answer["data"]["id"].as_str().ok_or("no blob id")?.to_owned();

        let clock = Instant::now();
        let mut out = tokio::fs::File::create(dir.path().join("download.bin")).await?;
        let mut stream = client.get(format!("{base}/api/v1/Blob/{id}/content")).send().await?.bytes_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?).await?;
        }
        out.flush().await?;
        drop(out);
        let down = clock.elapsed();
        let ratio = |d: Duration| cp.as_secs_f64() / d.as_secs_f64();
        println!(
            "{label}: upload {:.2} s ({:.0} MB/s, {:.2}× cp); download {:.2} s ({:.0} MB/s, {:.2}× cp)",
            up.as_secs_f64(),
            mb(up),
            ratio(up),
            down.as_secs_f64(),
            mb(down),
            ratio(down)
        );
        if postgres.is_some() {
            listing(&client, &base, url, instances).await?;
        }
        stop.cancel();
        served.await??;
    }
    for (_, _, postgres) in databases {
        if let Some((admin, name)) = postgres {
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&mut conn).await?;
        }
    }
    Ok(())
}

/// Fills `path` with `len` bytes that do not compress.
fn make_file(path: &Path, len: u64) -> Result<(), Error> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..len.div_ceil(1 << 20) {
        for word in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&block)?;
    }
    file.flush()?;
    Ok(())
}

fn time_cp(from: &Path, to: &Path) -> Result<Duration, Error> {
    let clock = Instant::now();
    let status = std::process::Command::new("cp").arg(from).arg(to).status()?;
    if !status.success() {
        return Err("cp failed".into());
    }
    let took = clock.elapsed();
    std::fs::remove_file(to)?;
    Ok(took)
}

type Served = tokio::task::JoinHandle<Result<(), wharf::server::ServeError>>;

/// Starts the service on a loopback port with no Docker node.
async fn serve(url: &str) -> Result<(String, tokio_util::sync::CancellationToken, Served), Error> {
    let mut config = wharf::config::Config::default();
    config.database.url = url.to_owned();
    config.nodes.clear();
    config.server.definitions = String::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let served = tokio::spawn(wharf::server::run(config, listener, async move { stopped.cancelled().await }));
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        if Instant::now() > deadline {
            return Err("the service did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((base, stop, served))
}

/// Requests per second of a page of instances over `rows` of them, and of `/healthz`.
async fn listing(client: &reqwest::Client, base: &str, url: &str, rows: i64) -> Result<(), Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(
        "INSERT INTO instances (id, name, status, stage, initial_blobs, parameters, priority, re_run_times, seq, created_at) \
         SELECT md5(i::text), 'judge', 'Succeeded', 'Finally', '[]', '{}', 0, 0, i, i FROM generate_series(1, $1) i",
    )
    .bind(rows)
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql("ANALYZE instances").execute(&mut conn).await?;
    let rate = |path: String| async move {
        let clock = Instant::now();
        let mut done = 0u32;
        while clock.elapsed() < Duration::from_secs(5) {
            client.get(format!("{base}{path}")).send().await?.error_for_status()?.bytes().await?;
            done += 1;
        }
        Ok::<f64, Error>(f64::from(done) / clock.elapsed().as_secs_f64())
    };
    let health = rate("/healthz".into()).await?;
    let page = rate("/api/v1/StateMachineInstance/All?page=1&pageSize=20".into()).await?;
    println!(
        "PostgreSQL, {rows} instances: /healthz {health:.0}/s; StateMachineInstance/All page {page:.0}/s ({:.2}× /healthz)",
        page / health
    );
    Ok(())
}
