//! Callback deliveries: the real store and delivery worker against a small receiver on a
//! loopback port that records what it gets and can refuse the first requests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wharf::config::CallbackConfig;
use wharf::store::{Callback, CallbackView, Store};

use crate::on_both_databases;
use crate::support::{Db, TestDb};

on_both_databases!(
    delivers_once_signed,
    retries_until_the_receiver_accepts,
    reaches_a_receiver_that_starts_late,
    gives_up_after_max_attempts,
    replicas_deliver_each_callback_once,
    a_slow_receiver_does_not_hold_up_others,
    a_try_cut_short_waits_for_its_lease_and_counts,
);

const SECRET: &str = "callback-secret";

/// Quick retries, so the tests take well under a second per delivery.
fn config(max_attempts: u32) -> CallbackConfig {
    CallbackConfig {
        secret: SECRET.into(),
        max_attempts,
        initial_backoff_ms: 50,
        max_backoff_secs: 1,
        timeout_secs: 5,
        path: String::new(),
    }
}

/// One request as the receiver saw it.
#[derive(Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }
}

/// Records every POST; answers 500 to the first `refuse` of them, then 200, each after `delay`.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(refuse: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        Self::serve(listener, refuse, Duration::ZERO)
    }

    /// A receiver that takes a minute to answer.
    async fn slow() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        Self::serve(listener, 0, Duration::from_secs(60))
    }

    fn serve(listener: TcpListener, refuse: usize, delay: Duration) -> Receiver {
        let url = format!("http://{}/hook", listener.local_addr().expect("local addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    let answer = {
                        let mut log = log.lock().expect("receiver log");
                        log.push(Received { headers, body: body.to_vec() });
                        if log.len() <= refuse { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
                    };
                    tokio::time::sleep(delay).await;
                    answer
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, received, task }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("receiver log").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The delivery worker on its own store handle, as one service replica runs it.
struct Worker {
    store: Store,
    wake: Arc<Notify>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Worker {
    async fn start(db: &TestDb, config: CallbackConfig) -> Worker {
        wharf::install_crypto_provider();
        let store = Store::open(&db.url, 4).await.expect("open store");
        let wake = Arc::new(Notify::new());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(wharf::engine::callbacks::run_deliveries(
            store.clone(),
            config,
            wake.clone(),
            wharf::metrics::Metrics::new(),
            wharf::engine::Workers::default(),
            cancel.clone(),
        ));
        Worker { store, wake, cancel, task }
    }

    /// Stores a delivery and wakes the worker, as the executor does when an instance ends.
    async fn enqueue(&self, instance_id: Uuid, url: &str, payload: &Value) -> Uuid {
        let id = self.store.enqueue_callback(instance_id, url, payload).await.expect("enqueue");
        self.wake.notify_one();
        id
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("worker stops when cancelled")
            .expect("worker task");
        self.store.close().await;
    }
}

/// The one callback of `instance_id` once `done` holds for it (10 s at most).
async fn wait_for(store: &Store, instance_id: Uuid, what: &str, done: impl Fn(&Callback) -> bool) -> Callback {
    for _ in 0..500 {
        let callbacks = store.callbacks_of(instance_id).await.expect("list callbacks");
        if let [callback] = callbacks.as_slice()
            && done(callback)
        {
            return callback.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("callback of {instance_id} never {what}: {:?}", store.callbacks_of(instance_id).await);
}

/// Long enough for any further (wrong) try to arrive: several backoffs of `config`.
async fn quiet_period() {
    tokio::time::sleep(Duration::from_millis(600)).await;
}

/// Checks `header` as a receiver would: `sha256=<hex>` that verifies under the shared secret.
fn signature_verifies(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(tag) = header.strip_prefix("sha256=").and_then(|hex| hex::decode(hex).ok()) else { return false };
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret).is_ok_and(|mac| mac.chain_update(body).verify_slice(&tag).is_ok())
}

async fn delivers_once_signed(db: Db) {
    let db = TestDb::new(db).await;
    let receiver = Receiver::start(0).await;
    let worker = Worker::start(&db, config(5)).await;
    let instance = Uuid::new_v4();
    let payload = json!({"id": instance.to_string(), "status": "Succeeded", "note": "ünïcode ✓"});
    let id = worker.enqueue(instance, &receiver.url, &payload).await;

    let callback = wait_for(&worker.store, instance, "delivered", |c| c.status == "Delivered").await;
    quiet_period().await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "exactly one POST for one delivered callback");
    let request = &received[0];
    assert_eq!(serde_json::from_slice::<Value>(&request.body).expect("JSON body"), payload);
    assert_eq!(request.body, callback.payload.as_bytes(), "the stored payload, byte for byte");
    assert_eq!(request.header("idempotency-key"), id.to_string());
    assert_eq!(request.header("x-wharf-instance"), instance.to_string());
    assert_eq!(request.header("content-type"), "application/json");
    assert!(request.header("user-agent").starts_with("wharf/"), "user agent: {}", request.header("user-agent"));
    let signature = request.header("x-wharf-signature");
    assert!(signature_verifies(SECRET.as_bytes(), &request.body, &signature), "signature verifies: {signature}");
    assert!(!signature_verifies(b"another secret", &request.body, &signature), "and only with the secret");

    assert_eq!(callback.attempts, 1);
    assert_eq!(callback.last_error, None);
    let view = serde_json::to_value(CallbackView::from(&callback)).expect("view");
    assert_eq!(view["id"], id.to_string());
    assert_eq!(view["url"], receiver.url);
    assert_eq!(view["status"], "Delivered");
    assert_eq!(view["attempts"], 1);
    assert!(view["nextAttemptAt"].is_null(), "nothing left to do: {view}");
    assert!(view["deliveredAt"].as_str().is_some_and(|t| t.contains('T')), "RFC 3339 time: {view}");
    worker.stop().await;
    db.drop_database().await;
}

async fn retries_until_the_receiver_accepts(db: Db) {
    let db = TestDb::new(db).await;
    let receiver = Receiver::start(2).await;
    let worker = Worker::start(&db, config(5)).await;
    let instance = Uuid::new_v4();
    let id = worker.enqueue(instance, &receiver.url, &json!({"status": "Failed"})).await;

    let callback = wait_for(&worker.store, instance, "delivered", |c| c.status == "Delivered").await;
    assert_eq!(callback.attempts, 3, "two refusals, then accepted");
    assert!(callback.delivered_at.is_some());
    quiet_period().await;
    let received = receiver.received();
    assert_eq!(received.len(), 3, "no POST after the accepted one");
    for request in &received {
        assert_eq!(request.header("idempotency-key"), id.to_string(), "a retry carries the same key");
    }
    let stored = worker.store.callbacks_of(instance).await.expect("list");
    assert_eq!(stored[0].attempts, 3);
    assert_eq!(stored[0].status, "Delivered");
    worker.stop().await;
    db.drop_database().await;
}

async fn reaches_a_receiver_that_starts_late(db: Db) {
    let db = TestDb::new(db).await;
    // A port nobody listens on: take one, then close it.
    let probe = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = probe.local_addr().expect("local addr");
    drop(probe);
    let worker = Worker::start(&db, config(20)).await;
    let instance = Uuid::new_v4();
    worker.enqueue(instance, &format!("http://{addr}/hook"), &json!({"status": "Cancelled"})).await;

    let failed = wait_for(&worker.store, instance, "failed a try", |c| c.last_error.is_some()).await;
    assert_eq!(failed.status, "Pending", "a closed port is retried");
    let error = failed.last_error.unwrap_or_default();
    assert!(error.to_lowercase().contains("connect"), "the error says why: {error}");

    let listener = TcpListener::bind(addr).await.expect("bind the same port again");
    let receiver = Receiver::serve(listener, 0, Duration::ZERO);
    let callback = wait_for(&worker.store, instance, "delivered", |c| c.status == "Delivered").await;
    assert!(callback.attempts >= 2);
    quiet_period().await;
    assert_eq!(receiver.received().len(), 1, "exactly one delivery once the receiver is up");
    worker.stop().await;
    db.drop_database().await;
}

async fn gives_up_after_max_attempts(db: Db) {
    let db = TestDb::new(db).await;
    let receiver = Receiver::start(usize::MAX).await;
    let worker = Worker::start(&db, config(3)).await;
    let instance = Uuid::new_v4();
    worker.enqueue(instance, &receiver.url, &json!({"status": "Succeeded"})).await;

    let callback = wait_for(&worker.store, instance, "given up", |c| c.status == "Failed").await;
    assert_eq!(callback.attempts, 3);
    let error = callback.last_error.clone().unwrap_or_default();
    assert!(error.contains("500"), "the last error names the answer: {error}");
    assert_eq!(callback.delivered_at, None);
    let view = serde_json::to_value(CallbackView::from(&callback)).expect("view");
    assert_eq!(view["status"], "Failed");
    assert_eq!(view["lastError"], error);
    quiet_period().await;
    assert_eq!(receiver.received().len(), 3, "no try after giving up");
    worker.stop().await;
    db.drop_database().await;
}

/// Two replicas on one database: every callback reaches the receiver exactly once.
async fn replicas_deliver_each_callback_once(db: Db) {
    let db = TestDb::new(db).await;
    let receiver = Receiver::start(0).await;
    let first = Worker::start(&db, config(5)).await;
    let second = Worker::start(&db, config(5)).await;
    let mut ids = Vec::new();
    let mut instances = Vec::new();
    for n in 0..20 {
        let instance = Uuid::new_v4();
        ids.push(first.enqueue(instance, &receiver.url, &json!({ "n": n })).await.to_string());
        second.wake.notify_one();
        instances.push(instance);
    }
    for instance in &instances {
        wait_for(&first.store, *instance, "delivered", |c| c.status == "Delivered").await;
    }
    quiet_period().await;
    let mut keys: Vec<String> = receiver.received().iter().map(|r| r.header("idempotency-key")).collect();
    keys.sort();
    ids.sort();
    assert_eq!(keys, ids, "each callback POSTed once");
    first.stop().await;
    second.stop().await;
    db.drop_database().await;
}

/// A receiver that does not answer holds up neither the others nor shutdown for long.
async fn a_slow_receiver_does_not_hold_up_others(db: Db) {
    let db = TestDb::new(db).await;
    let slow = Receiver::slow().await;
    let fast = Receiver::start(0).await;
    let worker = Worker::start(&db, CallbackConfig { timeout_secs: 2, ..config(5) }).await;
    let (slow_instance, fast_instance) = (Uuid::new_v4(), Uuid::new_v4());
    worker.enqueue(slow_instance, &slow.url, &json!({"to": "slow"})).await;
    let started = std::time::Instant::now();
    worker.enqueue(fast_instance, &fast.url, &json!({"to": "fast"})).await;

    wait_for(&worker.store, fast_instance, "delivered", |c| c.status == "Delivered").await;
    assert!(started.elapsed() < Duration::from_millis(1500), "waited for the slow receiver: {:?}", started.elapsed());
    assert_eq!(slow.received().len(), 1, "the slow receiver got its request");

    let timed_out = wait_for(&worker.store, slow_instance, "timed out", |c| c.last_error.is_some()).await;
    assert_eq!(timed_out.last_error.as_deref(), Some("no answer within 2 s"));
    assert_eq!(timed_out.status, "Pending", "a timeout is retried");
    worker.stop().await;
    db.drop_database().await;
}

/// A replica that claimed rows and died: they wait out the lease, then are retried, and
/// the try that was cut short counts towards `max_attempts`.
async fn a_try_cut_short_waits_for_its_lease_and_counts(db: Db) {
    let db = TestDb::new(db).await;
    let receiver = Receiver::start(0).await;
    let store = Store::open(&db.url, 2).await.expect("open store");
    let (retried, exhausted) = (Uuid::new_v4(), Uuid::new_v4());
    let retried_id = store.enqueue_callback(retried, &receiver.url, &json!({"n": 1})).await.expect("enqueue");
    store.enqueue_callback(exhausted, &receiver.url, &json!({"n": 2})).await.expect("enqueue");
    let lease_until = wharf::model::now_millis() + 700;
    let mut claims = 0;
    for (instance, times) in [(retried, 1), (exhausted, 2)] {
        for _ in 0..times {
            let due = store.callbacks_of(instance).await.expect("list").remove(0);
            assert!(store.claim_callback(&due, lease_until + claims).await.expect("claim").is_some());
            let again = store.claim_callback(&due, lease_until).await.expect("claim");
            assert!(again.is_none(), "a row is claimed once");
            claims += 1;
        }
    }

    let worker = Worker::start(&db, config(2)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.received().is_empty(), "nothing is sent while a lease holds");
    let delivered = wait_for(&worker.store, retried, "delivered", |c| c.status == "Delivered").await;
    assert_eq!(delivered.attempts, 2, "the try cut short counts");
    let given_up = wait_for(&worker.store, exhausted, "given up", |c| c.status == "Failed").await;
    assert_eq!(given_up.attempts, 2, "no third try");
    let error = given_up.last_error.unwrap_or_default();
    assert!(error.contains("not recorded"), "the error says what happened: {error}");
    quiet_period().await;
    let keys: Vec<String> = receiver.received().iter().map(|r| r.header("idempotency-key")).collect();
    assert_eq!(keys, [retried_id.to_string()], "only the callback with a try left is sent");
    store.close().await;
    worker.stop().await;
    db.drop_database().await;
}
