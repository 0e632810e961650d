//! The callback delivery worker: POSTs stored deliveries (`Store::enqueue_callback`) to
//! their URL, signed when a secret is set, and retries failures with exponential backoff
//! until delivered or `max_attempts` is reached. Safe to run in every replica: a row is
//! claimed before it is sent (see `store/callbacks.rs`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::hmac::hmac_sha256_hex;
use crate::config::CallbackConfig;
use crate::metrics::{CallbackOutcome, Metrics};
use crate::model::now_millis;
use crate::store::{Callback, Store};

/// Deliveries in flight at once, so one slow receiver does not hold up the others.
const CONCURRENCY: usize = 8;
/// The longest the worker sleeps without looking at the database.
const POLL: Duration = Duration::from_secs(1);
/// The longest wait after database errors in a row.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(30);
/// The least wait after a receiver refused a delivery with a 4xx other than 408 and 429:
/// sending the same request again soon would only be refused again.
const REFUSED_PAUSE_MS: u64 = 10 * 60 * 1000;

/// Where an instance's end is posted: its `Host` with `path` after it (the `callbacks.path`
/// setting), `{id}` replaced by the instance's id; `Host` itself when `path` is empty.
pub fn callback_url(host: &str, path: &str, id: uuid::Uuid) -> String {
    if path.is_empty() {
        return host.to_owned();
    }
    let path = path.replace("{id}", &id.to_string());
    format!("{}/{}", host.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// Milliseconds to wait after the `attempts`-th failed try:
/// `initial_backoff_ms * 2^(attempts-1)`, at most `max_backoff_secs`.
pub fn backoff_ms(config: &CallbackConfig, attempts: u32) -> u64 {
    let doublings = attempts.saturating_sub(1);
    let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
    let cap = config.max_backoff_secs.saturating_mul(1000);
    config.initial_backoff_ms.saturating_mul(factor).min(cap)
}

/// Tries per delivery; at least one, whatever the config says.
fn max_attempts(config: &CallbackConfig) -> i64 {
    i64::from(config.max_attempts.max(1))
}

/// Delivers due callbacks until `cancel`; `wake` says a new one was stored; each try's
/// outcome is counted in `metrics`. At cancel, deliveries in flight get until their own
/// timeout to finish and be recorded.
pub async fn run_deliveries(
    store: Store,
    config: CallbackConfig,
    wake: Arc<Notify>,
    metrics: Metrics,
    workers: super::Workers,
    cancel: CancellationToken,
) {
    let Some(client) = build_client(&config, &cancel).await else { return };
    let config = Arc::new(config);
    let mut in_flight = JoinSet::new();
    let mut consecutive_errors: u32 = 0;
    loop {
        let pause = match start_due(&store, &client, &config, &metrics, &mut in_flight).await {
            Ok(pause) => {
                consecutive_errors = 0;
                workers.ok("callbacks");
                pause
            }
            Err(err) => {
                consecutive_errors = consecutive_errors.saturating_add(1);
                workers.failed("callbacks", &err.to_string());
                tracing::warn!(error = %err, consecutive_errors, "cannot look for due callbacks");
                (POLL * consecutive_errors).min(MAX_ERROR_BACKOFF)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.notified() => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = cancel.cancelled() => break,
        }
    }
    let deadline = Duration::from_secs(config.timeout_secs) + Duration::from_secs(2);
    let drained = tokio::time::timeout(deadline, async { while in_flight.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = in_flight.len(), "callback deliveries still running at shutdown; they will be retried");
        in_flight.shutdown().await;
    }
}

/// The HTTP client for deliveries; retried until it builds or the worker is cancelled.
async fn build_client(config: &CallbackConfig, cancel: &CancellationToken) -> Option<reqwest::Client> {
    loop {
        let built = reqwest::Client::builder()
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(config.timeout_secs))
            // Only the stored URL is ever contacted: no redirects, no proxy.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build();
        match built {
            Ok(client) => return Some(client),
            Err(err) => {
                tracing::error!(error = %crate::errors::with_causes(&err), "cannot build the HTTP client for callbacks")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = cancel.cancelled() => return None,
        }
    }
}

/// Claims and starts the due deliveries there is room for; returns how long to wait
/// before looking again (until the next due time, at most `POLL`).
async fn start_due(
    store: &Store,
    client: &reqwest::Client,
    config: &Arc<CallbackConfig>,
    metrics: &Metrics,
    in_flight: &mut JoinSet<()>,
) -> Result<Duration, crate::store::StoreError> {
    let room = CONCURRENCY.saturating_sub(in_flight.len());
    if room > 0 {
        let now = now_millis();
        // A claimed row is not due again until its send has surely ended.
        let lease_ms = i64::try_from(config.timeout_secs.saturating_mul(2000)).unwrap_or(i64::MAX);
        for due in store.due_callbacks(now, room as i64).await? {
            if due.attempts >= max_attempts(config) {
                // Its last try was cut short (the service stopped during it), or the limit
                // was lowered since: either way it has had its tries.
                let error = format!("given up after {} tries; the last one's outcome was not recorded", due.attempts);
                store.callback_failed(due.id, &error, None).await?;
                metrics.callback_delivery(CallbackOutcome::GivenUp);
                continue;
            }
            if let Some(claimed) = store.claim_callback(&due, now.saturating_add(lease_ms)).await? {
                in_flight.spawn(deliver(store.clone(), client.clone(), config.clone(), metrics.clone(), claimed));
            }
        }
    }
    if in_flight.len() >= CONCURRENCY {
        // A finished delivery wakes the loop.
        return Ok(POLL);
    }
    Ok(match store.next_callback_due().await? {
        Some(at) => {
            let wait = u64::try_from(at.saturating_sub(now_millis())).unwrap_or(0);
            Duration::from_millis(wait).clamp(Duration::from_millis(5), POLL)
        }
        None => POLL,
    })
}

/// One try of one claimed delivery, recorded in the store.
async fn deliver(
    store: Store,
    client: reqwest::Client,
    config: Arc<CallbackConfig>,
    metrics: Metrics,
    callback: Callback,
) {
    let attempt = callback.attempts;
    let outcome = send(&client, &config, &callback).await;
    let recorded = match &outcome {
        Ok(()) => {
            metrics.callback_delivery(CallbackOutcome::Delivered);
            tracing::info!(instance_id = %callback.instance_id, url = %callback.url, attempt, "callback delivered");
            store.callback_delivered(callback.id, now_millis()).await
        }
        Err(failure) => {
            let gives_up = failure.permanent || attempt >= max_attempts(&config);
            metrics.callback_delivery(if gives_up { CallbackOutcome::GivenUp } else { CallbackOutcome::FailedAttempt });
            let next = (!gives_up).then(|| {
                let wait = backoff_ms(&config, u32::try_from(attempt).unwrap_or(u32::MAX)).max(failure.pause_ms);
                now_millis().saturating_add(i64::try_from(wait).unwrap_or(i64::MAX))
            });
            tracing::warn!(
                instance_id = %callback.instance_id,
                url = %callback.url,
                attempt,
                error = %failure.message,
                gives_up,
                "callback delivery failed"
            );
            store.callback_failed(callback.id, &failure.message, next).await
        }
    };
    if let Err(err) = recorded {
        // The row stays claimed until its lease ends, then it is tried again.
        tracing::warn!(
            instance_id = %callback.instance_id,
            url = %callback.url,
            error = %err,
            "cannot record a callback try"
        );
    }
}

/// Why a try failed; a permanent failure is not retried, and the next try of another
/// waits at least `pause_ms`.
struct Failure {
    message: String,
    permanent: bool,
    pause_ms: u64,
}

async fn send(client: &reqwest::Client, config: &CallbackConfig, callback: &Callback) -> Result<(), Failure> {
    let url =
        reqwest::Url::parse(&callback.url).ok().filter(|url| matches!(url.scheme(), "http" | "https")).ok_or_else(
            || Failure { message: format!("`{}` is not an http(s) URL", callback.url), permanent: true, pause_ms: 0 },
        )?;
    let body = callback.payload.clone().into_bytes();
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", callback.id.to_string())
        .header("X-Wharf-Instance", callback.instance_id.to_string());
    if !config.secret.is_empty() {
        let signature = hmac_sha256_hex(config.secret.as_bytes(), &body);
        request = request.header("X-Wharf-Signature", format!("sha256={signature}"));
    }
    let response = request.body(body).send().await.map_err(|err| {
        let message = if err.is_timeout() {
            format!("no answer within {} s", config.timeout_secs)
        } else {
            crate::errors::with_causes(&err)
        };
        Failure { message, permanent: false, pause_ms: 0 }
    })?;
    let status = response.status();
    let refused = status.is_client_error()
        && status != reqwest::StatusCode::REQUEST_TIMEOUT
        && status != reqwest::StatusCode::TOO_MANY_REQUESTS;
    if status.is_success() {
        Ok(())
    } else if refused {
        Err(Failure {
            message: format!("receiver refused it with {status}; the next try waits at least 10 minutes"),
            permanent: false,
            pause_ms: REFUSED_PAUSE_MS,
        })
    } else {
        Err(Failure { message: format!("receiver answered {status}"), permanent: false, pause_ms: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_url_puts_the_path_after_the_host() {
        let id = uuid::Uuid::nil();
        let check = |host: &str, path: &str, expected: &str| {
            assert_eq!(callback_url(host, path, id), expected, "host {host:?}, path {path:?}");
        };
        check("http://oj:5000", "", "http://oj:5000");
        check("http://oj:5000/", "", "http://oj:5000/");
        check(
            "http://oj:5000",
            "/management/judge/stagechange/{id}",
            "http://oj:5000/management/judge/stagechange/00000000-0000-0000-0000-000000000000",
        );
        check(
            "http://oj/base/",
            "hook?instance={id}",
            "http://oj/base/hook?instance=00000000-0000-0000-0000-000000000000",
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = CallbackConfig { initial_backoff_ms: 1000, max_backoff_secs: 600, ..CallbackConfig::default() };
        let check = |attempts: u32, expected: u64| {
            assert_eq!(backoff_ms(&config, attempts), expected, "after {attempts} failed tries");
        };
        check(0, 1000);
        check(1, 1000);
        check(2, 2000);
        check(3, 4000);
        check(10, 512_000);
        check(11, 600_000);
        check(64, 600_000);
        check(u32::MAX, 600_000);
    }
}
