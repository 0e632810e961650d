//! Benchmark (not a test): what one call a script waits on costs as the script's history
//! grows. A state machine makes N `sleep(0)` calls one after another; the cost of a call is
//! the time from PUT to Succeeded over N. Scripts that wait live (the default) for a short
//! and a long N, against scripts replayed from the top after every call
//! (`scripts.max_live = 0`, the path without room for live scripts), in the same run, on
//! SQLite, or PostgreSQL with `WHARF_TEST_POSTGRES_URL`.
//!
//!   cargo run --release --example bench_replay -- [short=100] [long=3000] [replayed long=1000]
//!
//! Target: live, the long script's per-call cost ≤ 2× the short one's.

use std::time::Duration;

use serde_json::json;
use support::service::ApiService;

#[path = "support/mod.rs"]
mod support;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wharf::install_crypto_provider();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let short = args.first().copied().unwrap_or(100);
    let long = args.get(1).copied().unwrap_or(3000);
    let replayed_long = args.get(2).copied().unwrap_or(1000);
    let database = std::env::var("WHARF_TEST_POSTGRES_URL").ok();

    let mut rows = Vec::new();
    for (mode, max_live, sizes) in [("live", 64, [short, long]), ("replayed", 0, [short, replayed_long])] {
        let service = ApiService::start(database.as_deref(), 1, |c| c.scripts.max_live = max_live).await?;
        let mut costs = Vec::new();
        for calls in sizes {
            let name = format!("waits-{calls}");
            let body = format!("for i in 0..{calls} {{ sleep(0); }}\n{calls}");
            service.call(reqwest::Method::PUT, "/StateMachine", json!({"name": name, "body": body})).await?;
            let (took, instance) = service.run(&name, &[]).await?;
            anyhow::ensure!(instance["status"] == "Succeeded", "{name} ended: {instance}");
            anyhow::ensure!(instance["result"] == calls, "{name} gave {}", instance["result"]);
            costs.push((calls, took));
        }
        rows.push((mode, service.backend, costs));
        service.stop().await?;
    }

    println!("N sleep(0) calls in a row, PUT to Succeeded");
    println!(
        "{:<10} {:<11} {:>7} {:>9} {:>12} {:>14}",
        "mode", "database", "calls", "total s", "ms per call", "long / short"
    );
    for (mode, backend, costs) in &rows {
        let per_call = |(calls, took): &(usize, Duration)| took.as_secs_f64() * 1000.0 / *calls as f64;
        let base = per_call(&costs[0]);
        for cost in costs {
            println!(
                "{mode:<10} {backend:<11} {:>7} {:>9.2} {:>12.2} {:>14.2}",
                cost.0,
                cost.1.as_secs_f64(),
                per_call(cost),
                per_call(cost) / base
            );
        }
    }
    Ok(())
}
