//! Benchmark (not a test): the data path against baselines measured in the same run.
//! - `PUT /Blob/raw` and `GET /Blob/{id}/content` of a file versus `cp` of it on the same
//!   disk, on SQLite and (with `WHARF_TEST_POSTGRES_URL`) PostgreSQL. Each figure is the
//!   median of three rounds, each round with a file of its own (the same bytes again would be
//!   stored once). Beside `cp`, two more baselines: `cp` followed by an fsync of the copy, and
//!   SHA-256 of the file alone, which every upload must compute, and "HTTP alone": the same
//!   client (`curl`, in a process of its own) against a server on loopback that throws an
//!   upload away and sends a download from memory, the most any HTTP service could do here;
//! - on PostgreSQL, a page of `StateMachineInstance/All` over 100,000 instances versus `/healthz`.
//!
//!   cargo run --release --example bench_blobs -- [MiB=1024] [instances=100000]
//!
//! Each transfer starts on a service at rest: on SQLite, once the chunk file's log was copied
//! back (as `cp` starts with its writeback done). Back to back, a copy-back runs beside the next
//! transfer and shares the disk with it.
//!
//! Prints each figure and its ratio to the baselines (higher is better; targets: upload ≥ 0.5,
//! download ≥ 0.6, listing ≥ 0.3).

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::Connection;

type Error = Box<dyn std::error::Error>;

const ROUNDS: usize = 3;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wharf::install_crypto_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: u64 = args.first().map_or(Ok(1024), |a| a.parse())?;
    let instances: i64 = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let dir = tempfile::tempdir_in(".")?;
    let files: Vec<_> = (0..ROUNDS).map(|round| dir.path().join(format!("blob-{round}.bin"))).collect();
    for (round, file) in files.iter().enumerate() {
        make_file(file, mib << 20, round as u64)?;
    }
    let copy = dir.path().join("copy.bin");
    let cp = median(|| time_cp(&files[0], &copy, false))?;
    let cp_sync = median(|| time_cp(&files[0], &copy, true))?;
    let hash = median(|| time_sha256(&files[0]))?;
    let mb = |d: Duration| (mib << 20) as f64 / d.as_secs_f64() / 1e6;
    println!(
        "{mib} MiB files; cp {:.2} s ({:.0} MB/s); cp+fsync {:.2} s ({:.0} MB/s); SHA-256 alone {:.2} s ({:.0} MB/s, {:.2}× cp)",
        cp.as_secs_f64(),
        mb(cp),
        cp_sync.as_secs_f64(),
        mb(cp_sync),
        hash.as_secs_f64(),
        mb(hash),
        cp.as_secs_f64() / hash.as_secs_f64()
    );

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
    let ratio = |base: Duration, d: Duration| base.as_secs_f64() / d.as_secs_f64();
    let (http_up, http_down) = http_alone(&files, &copy).await?;
    println!(
        "HTTP alone: upload {:.2} s ({:.0} MB/s, {:.2}× cp); download {:.2} s ({:.0} MB/s, {:.2}× cp)",
        http_up.as_secs_f64(),
        mb(http_up),
        ratio(cp, http_up),
        http_down.as_secs_f64(),
        mb(http_down),
        ratio(cp, http_down)
    );
    for (label, url, postgres) in &databases {
        let (base, stop, served) = serve(url).await?;
        let (mut ups, mut downs) = (Vec::new(), Vec::new());
        for file in &files {
            let (up, id) = upload(&format!("{base}/api/v1/Blob/raw?name=blob.bin"), file).await?;
            ups.push(up);
            at_rest(dir.path()).await?;
            downs.push(download(&format!("{base}/api/v1/Blob/{id}/content"), &copy).await?);
            std::fs::remove_file(&copy)?;
            at_rest(dir.path()).await?;
        }
        let (up, down) = (middle(ups), middle(downs));
        println!(
            "{label}: upload {:.2} s ({:.0} MB/s, {:.2}× cp, {:.2}× cp+fsync); download {:.2} s ({:.0} MB/s, {:.2}× cp, {:.2}× cp+fsync)",
            up.as_secs_f64(),
            mb(up),
            ratio(cp, up),
            ratio(cp_sync, up),
            down.as_secs_f64(),
            mb(down),
            ratio(cp, down),
            ratio(cp_sync, down)
        );
        if postgres.is_some() {
            let alone = postgres_alone(url, &files[0]).await?;
            println!(
                "PostgreSQL alone (the same chunk inserts from one connection, no HTTP, no hashing): {:.2} s ({:.0} MB/s, {:.2}× cp); the upload is {:.2}× this",
                alone.as_secs_f64(),
                mb(alone),
                ratio(cp, alone),
                ratio(alone, up)
            );
            listing(&base, url, instances).await?;
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

/// Waits until the SQLite chunk file's log in `dir` was copied back and emptied.
async fn at_rest(dir: &Path) -> Result<(), Error> {
    let log = dir.join("wharf-chunks.db-wal");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
        if Instant::now() > deadline {
            return Err("the chunk file's log was not copied back within 2 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The client's uploads and downloads against a server on loopback that does nothing else:
/// it counts an upload's bytes and sends a download from memory, in 3 MiB pieces as the
/// service does. The medians over `ROUNDS` of each.
async fn http_alone(files: &[std::path::PathBuf], copy: &Path) -> Result<(Duration, Duration), Error> {
    use axum::body::{Body, Bytes};
    let len = std::fs::metadata(&files[0])?.len() as usize;
    let content = Bytes::from(vec![7u8; len]);
    let app = axum::Router::new()
        .route(
            "/sink",
            axum::routing::put(|body: Body| async move {
                let mut stream = body.into_data_stream();
                let mut size = 0;
                while let Some(piece) = stream.next().await {
                    size += piece.map_err(|e| e.to_string())?.len();
                }
                Ok::<_, String>(axum::Json(serde_json::json!({"data": {"id": size.to_string()}})))
            }),
        )
        .route(
            "/source",
            axum::routing::get(move || async move {
                let pieces = (0..len).step_by(3 << 20).map(move |at| content.slice(at..len.min(at + (3 << 20))));
                Body::from_stream(futures::stream::iter(pieces.map(Ok::<_, std::io::Error>)))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (mut ups, mut downs) = (Vec::new(), Vec::new());
    for file in files {
        ups.push(upload(&format!("{base}/sink"), file).await?.0);
        downs.push(download(&format!("{base}/source"), copy).await?);
        std::fs::remove_file(copy)?;
    }
    server.abort();
    Ok((middle(ups), middle(downs)))
}

/// `PUT` of `file` to `url` (`/Blob/raw`) by `curl -T`, a process of its own as a user's
/// client is: how long it took, and the blob's id.
async fn upload(url: &str, file: &Path) -> Result<(Duration, String), Error> {
    let clock = Instant::now();
    let answer = curl(&["-T", &file.display().to_string(), url]).await?;
    let took = clock.elapsed();
    let answer: serde_json::Value = serde_json::from_slice(&answer)?;
    let id = answer["data"]["id"].as_str().ok_or("no blob id")?.to_owned();
    Ok((took, id))
}

/// `GET` of `url` (`/Blob/{id}/content`) into the file `to` by `curl -o`.
async fn download(url: &str, to: &Path) -> Result<Duration, Error> {
    let clock = Instant::now();
    curl(&["-o", &to.display().to_string(), url]).await?;
    Ok(clock.elapsed())
}

/// Runs `curl` with `args`, failing on an HTTP error status: what it wrote to stdout.
async fn curl(args: &[&str]) -> Result<Vec<u8>, Error> {
    let ran = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--fail"])
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running curl, the benchmark's client (install the curl package): {e}"))?;
    if !ran.status.success() {
        return Err(format!("curl {}: {}", args.join(" "), String::from_utf8_lossy(&ran.stderr)).into());
    }
    Ok(ran.stdout)
}

/// The median of `ROUNDS` timings of `run`.
fn median(mut run: impl FnMut() -> Result<Duration, Error>) -> Result<Duration, Error> {
    let runs = (0..ROUNDS).map(|_| run()).collect::<Result<Vec<_>, _>>()?;
    Ok(middle(runs))
}

fn middle<T: PartialOrd + Copy>(mut runs: Vec<T>) -> T {
    runs.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    runs[runs.len() / 2]
}

/// Fills `path` with `len` bytes that do not compress, different for each `seed`.
fn make_file(path: &Path, len: u64, seed: u64) -> Result<(), Error> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ (seed.wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
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

/// `cp from to`, and with `sync` an fsync of the copy; the copy is removed afterwards.
fn time_cp(from: &Path, to: &Path, sync: bool) -> Result<Duration, Error> {
    let clock = Instant::now();
    let status = std::process::Command::new("cp").arg(from).arg(to).status()?;
    if !status.success() {
        return Err("cp failed".into());
    }
    if sync {
        std::fs::File::open(to)?.sync_all()?;
    }
    let took = clock.elapsed();
    std::fs::remove_file(to)?;
    Ok(took)
}

/// SHA-256 of the file, read in 1 MiB blocks, by the same implementation the service uses.
fn time_sha256(path: &Path) -> Result<Duration, Error> {
    use std::io::Read;
    let clock = Instant::now();
    let mut file = std::fs::File::open(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut block = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut block)?;
        if read == 0 {
            break;
        }
        context.update(&block[..read]);
    }
    std::hint::black_box(context.finish());
    Ok(clock.elapsed())
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

/// Writes `file` into a table like the service's chunk table, in 3 MiB chunks, three to a
/// transaction: what the database alone takes for the bytes of one upload.
async fn postgres_alone(url: &str, file: &Path) -> Result<Duration, Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(
        "CREATE TABLE bench_chunks (sha256 TEXT NOT NULL, idx BIGINT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (sha256, idx)); \
         ALTER TABLE bench_chunks ALTER COLUMN data SET STORAGE EXTERNAL",
    )
    .execute(&mut conn)
    .await?;
    let bytes = std::fs::read(file)?;
    let clock = Instant::now();
    for (batch, chunks) in bytes.chunks(9 << 20).enumerate() {
        let mut tx = conn.begin().await?;
        for (index, chunk) in chunks.chunks(3 << 20).enumerate() {
            sqlx::query("INSERT INTO bench_chunks (sha256, idx, data) VALUES ('bench', $1, $2)")
                .bind((batch * 3 + index) as i64)
                .bind(chunk)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let took = clock.elapsed();
    sqlx::raw_sql("DROP TABLE bench_chunks").execute(&mut conn).await?;
    Ok(took)
}

/// Requests per second of a page of instances over `rows` of them, and of `/healthz`.
async fn listing(base: &str, url: &str, rows: i64) -> Result<(), Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(
        "INSERT INTO instances (id, name, status, stage, initial_blobs, parameters, priority, re_run_times, seq, created_at) \
         SELECT md5(i::text), 'judge', 'Succeeded', 'Finally', '[]', '{}', 0, 0, i, i FROM generate_series(1, $1) i",
    )
    .bind(rows)
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql("ANALYZE instances").execute(&mut conn).await?;
    // Short windows of each in turn, so that a slow spell of the shared machine falls on both.
    let client = &reqwest::Client::new();
    let rate = |path: &'static str| async move {
        let clock = Instant::now();
        let mut done = 0u32;
        while clock.elapsed() < Duration::from_millis(500) {
            client.get(format!("{base}{path}")).send().await?.error_for_status()?.bytes().await?;
            done += 1;
        }
        Ok::<f64, Error>(f64::from(done) / clock.elapsed().as_secs_f64())
    };
    let (mut health, mut page, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        let healthz = rate("/healthz").await?;
        let listed = rate("/api/v1/StateMachineInstance/All?page=1&pageSize=20").await?;
        health.push(healthz);
        page.push(listed);
        ratios.push(listed / healthz);
    }
    println!(
        "PostgreSQL, {rows} instances: /healthz {:.0}/s; StateMachineInstance/All page {:.0}/s ({:.2}× /healthz, the median of ten pairs of windows)",
        middle(health),
        middle(page),
        middle(ratios)
    );
    Ok(())
}
