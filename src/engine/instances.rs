//! Running state machine instances: taking queued ones, replaying their scripts against
//! their histories (on a bounded set of threads), performing the calls they wait on
//! (actors in parallel, HTTP, sleep) as async work that holds no thread, finishing them,
//! and posting the callback. Cancelling, re-running from a stage and recovery after a
//! crash all go through the store's `run_id` so a superseded run cannot write.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::executor::{ActorJob, ActorReport, EndNotice, Executor, StartNotice};
use super::warm::Sandbox;
use crate::config::ScriptConfig;
use crate::metrics::ScriptWait;
use crate::model::blob::BlobRef;
use crate::model::instance::{Instance, Status};
use crate::model::limitation::Limitation;
use crate::script::{
    self, ActorRecord, BlobRead, HostEffects, InstanceView, NewCall, Outcome, RecordedCall, ScriptLimits,
};
use crate::store::{BlobUpload, Store, StoreError};

/// A cheap-to-clone handle on the instance runner.
#[derive(Clone)]
pub struct InstanceRunner {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    executor: Executor,
    /// This process's identity: its claims carry it.
    process: String,
    /// Instances this process runs at once.
    max_active: usize,
    limits: ScriptLimits,
    chunk_size: u64,
    script_slots: Semaphore,
    /// Room for scripts waiting live on their calls (`scripts.max_live`).
    live_slots: Arc<Semaphore>,
    /// Instance id → (run id, token) of the runs in this process.
    active: Mutex<HashMap<Uuid, (String, CancellationToken)>>,
    wake: Notify,
    /// The runs in this process, waited for at shutdown.
    tasks: tokio_util::task::TaskTracker,
    callbacks: Arc<Notify>,
    /// `callbacks.path`: where after `Host` an instance's end is posted.
    callback_path: String,
    http: reqwest::Client,
}

/// Why a run stopped before its instance ended.
enum Interrupted {
    /// Cancelled, superseded, or the service is stopping.
    Stopped,
    Store(StoreError),
}

impl From<StoreError> for Interrupted {
    fn from(err: StoreError) -> Self {
        Interrupted::Store(err)
    }
}

impl InstanceRunner {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        executor: Executor,
        process: String,
        max_active: u64,
        scripts: &ScriptConfig,
        chunk_size: u64,
        callbacks: Arc<Notify>,
        callback_path: String,
    ) -> InstanceRunner {
        let limits = ScriptLimits {
            max_operations: scripts.max_operations,
            max_call_depth: scripts.max_call_depth as usize,
            max_string_size: scripts.max_string_size as usize,
            max_array_size: scripts.max_array_size as usize,
            max_map_size: scripts.max_map_size as usize,
            wall_time: Duration::from_millis(scripts.wall_time_ms),
        };
        // As for callbacks: only the URL asked for is contacted, no redirects, no proxy.
        let http = reqwest::Client::builder()
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap_or_default();
        InstanceRunner {
            shared: Arc::new(Shared {
                store,
                executor,
                process,
                max_active: usize::try_from(max_active).unwrap_or(usize::MAX).max(1),
                limits,
                chunk_size,
                script_slots: Semaphore::new(scripts.max_concurrent_runs as usize),
                live_slots: Arc::new(Semaphore::new(scripts.max_live as usize)),
                active: Mutex::new(HashMap::new()),
                wake: Notify::new(),
                tasks: tokio_util::task::TaskTracker::new(),
                callbacks,
                callback_path,
                http,
            }),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (String, CancellationToken)>> {
        self.shared.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks for queued instances now.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Stops this process's run of an instance (its containers are killed).
    pub fn stop_run(&self, id: Uuid) {
        if let Some((_, token)) = self.active().remove(&id) {
            token.cancel();
        }
    }

    /// Cancels an instance: marks it Cancelled, stops its run, posts its callback.
    pub async fn cancel(&self, id: Uuid) -> Result<(), StoreError> {
        let mut ended = self.shared.store.get_instance(id).await?;
        ended.status = Status::Cancelled;
        ended.exception = Some("cancelled by request".into());
        ended.end_time = Some(chrono::Utc::now());
        let payload = summary(&ended);
        let url = self.callback_url(&ended);
        let callback = url.as_deref().map(|url| (url, &payload));
        self.shared.store.cancel_instance(id, callback).await?;
        self.stop_run(id);
        if callback.is_some() {
            self.shared.callbacks.notify_one();
        }
        Ok(())
    }

    /// Re-runs an instance from the first time it entered `stage` (from the top for
    /// `Start`), with its parameters changed; returns the new execution key. Nothing changes
    /// when the stage was never reached.
    pub async fn rerun_from(
        &self,
        id: Uuid,
        stage: &str,
        parameters: Option<&BTreeMap<String, Option<String>>>,
    ) -> Result<String, StoreError> {
        let execution_key = self.shared.store.rerun_from_stage(id, stage, parameters).await?;
        // The old run can no longer write; this stops its containers too.
        self.stop_run(id);
        self.wake();
        Ok(execution_key)
    }

    /// Where `instance`'s end is posted, if it has a `Host`.
    fn callback_url(&self, instance: &Instance) -> Option<String> {
        let host = instance.parameters.get("Host")?;
        Some(super::callbacks::callback_url(host, &self.shared.callback_path, instance.id))
    }

    /// Takes queued instances, as many as this process may run at once, and runs them until
    /// `cancel`; then this process's runs stop and go back in the queue. Every second it also
    /// stops the runs that were re-run, cancelled or taken over through another process.
    pub async fn run(self, cancel: CancellationToken) {
        const BATCH: usize = 200;
        loop {
            let active = self.active().len();
            let room = self.shared.max_active.saturating_sub(active).min(BATCH);
            let mut full = false;
            if room > 0 {
                match self.shared.store.queued_instances(room as i64).await {
                    Ok(ids) => {
                        full = ids.len() == room && room == BATCH;
                        for id in ids {
                            self.start(id, &cancel).await;
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot list queued instances"),
                }
            }
            self.stop_superseded().await;
            if full && !cancel.is_cancelled() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.shared.wake.notified() => {}
                _ = cancel.cancelled() => break,
            }
        }
        // Every run sees the cancel, stops its actors and goes back to the queue.
        self.shared.tasks.close();
        if tokio::time::timeout(Duration::from_secs(30), self.shared.tasks.wait()).await.is_err() {
            tracing::warn!("instance runs did not stop within 30 s");
        }
    }

    /// Stops this process's runs whose instance was re-run, cancelled or taken over, wherever
    /// that was asked: their containers are killed.
    async fn stop_superseded(&self) {
        let runs: Vec<(Uuid, String)> = self.active().iter().map(|(id, (run, _))| (*id, run.clone())).collect();
        if runs.is_empty() {
            return;
        }
        match self.shared.store.superseded_runs(&runs).await {
            Ok(superseded) => {
                for id in superseded {
                    tracing::info!(instance_id = %id, "run superseded elsewhere; stopping it");
                    let mut active = self.active();
                    if let Some((_, token)) = active.get(&id) {
                        token.cancel();
                    }
                    active.remove(&id);
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot check that this process's runs are current"),
        }
    }

    async fn start(&self, id: Uuid, stopping: &CancellationToken) {
        let run_id = match self.shared.store.claim_instance(id, &self.shared.process).await {
            Ok(Some(run_id)) => run_id,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(instance_id = %id, error = %err, "cannot claim an instance");
                return;
            }
        };
        let token = stopping.child_token();
        self.active().insert(id, (run_id.clone(), token.clone()));
        let runner = self.clone();
        let stopping = stopping.clone();
        let span = tracing::info_span!("instance", instance_id = %id);
        self.shared.tasks.spawn(
            async move {
                tracing::info!("instance running");
                match runner.drive(id, &run_id, &token).await {
                    Ok(()) => {}
                    // The service is stopping: back to the queue, for the next start.
                    Err(Interrupted::Stopped) if stopping.is_cancelled() => {
                        if let Err(err) = runner.shared.store.requeue_instance(id, &run_id).await {
                            tracing::warn!(instance_id = %id, error = %err, "cannot put an instance back in the queue");
                        }
                    }
                    Err(Interrupted::Stopped) => {}
                    Err(Interrupted::Store(err)) => {
                        tracing::error!(instance_id = %id, error = %err, "instance run broke off");
                        let message = format!("internal error: {err}");
                        let _ = runner.finish(id, &run_id, Status::Failed, None, Some(&message)).await;
                    }
                }
                // Its warm containers serve no other instance.
                runner.shared.executor.warm().end_instance(id);
                let mut active = runner.active();
                if active.get(&id).is_some_and(|(run, _)| run == &run_id) {
                    active.remove(&id);
                }
            }
            .instrument(span),
        );
    }

    /// Replays the script and performs what it waits on, until the instance ends.
    async fn drive(&self, id: Uuid, run_id: &str, token: &CancellationToken) -> Result<(), Interrupted> {
        let store = &self.shared.store;
        let instance = store.get_instance(id).await?;
        let script = store.instance_script(id).await?.unwrap_or_default();
        let machine_limits = store.get_state_machine(&instance.name).await.ok().and_then(|m| m.limitation);
        let view = InstanceView {
            id,
            name: instance.name.clone(),
            parameters: instance.parameters.clone(),
            priority: instance.priority,
            initial_blobs: instance.initial_blobs.clone(),
        };
        loop {
            if token.is_cancelled() {
                return Err(Interrupted::Stopped);
            }
            let history = store.events(id).await?;
            // While the script is evaluated, a crash may be the script's doing.
            store.set_replaying(id, run_id, true).await?;
            let scope = RunScope { instance: &instance, run_id, machine_limits: machine_limits.as_ref(), token };
            let outcome = self.replay(&script, &view, history, &scope).await?;
            store.set_replaying(id, run_id, false).await?;
            match outcome {
                Outcome::Finished(value) => {
                    return self.finish(id, run_id, Status::Succeeded, Some(&value), None).await;
                }
                Outcome::Failed(message) => return self.finish(id, run_id, Status::Failed, None, Some(&message)).await,
                Outcome::Suspended(position) => {
                    self.shared.executor.metrics().script_wait(ScriptWait::Replayed);
                    let events = store.events(id).await?;
                    let Some(call) = events.into_iter().find(|e| e.position == position) else {
                        return Err(Interrupted::Stopped);
                    };
                    self.complete(&scope, &call).await?;
                }
            }
        }
    }

    /// One run of the script, on a blocking thread from a bounded set. A call it waits on
    /// is performed while the script waits for it live, when `scripts.max_live` has room:
    /// the script then goes on without a replay. Otherwise it suspends, and the caller
    /// performs the call and runs it again.
    async fn replay(
        &self,
        script: &str,
        view: &InstanceView,
        history: Vec<RecordedCall>,
        scope: &RunScope<'_>,
    ) -> Result<Outcome, Interrupted> {
        let RunScope { instance, run_id, .. } = *scope;
        let store = &self.shared.store;
        let acquire = || async { self.shared.script_slots.acquire().await.map_err(|_| Interrupted::Stopped) };
        let mut slot = Some(acquire().await?);
        let (live, mut waits) = tokio::sync::mpsc::channel::<LiveWait>(1);
        let host: Arc<dyn HostEffects> = Arc::new(StoreHost {
            store: store.clone(),
            handle: tokio::runtime::Handle::current(),
            instance: view.id,
            run_id: run_id.to_owned(),
            chunk_size: self.shared.chunk_size,
            live,
        });
        let (script, view, limits) = (script.to_owned(), view.clone(), self.shared.limits.clone());
        let mut evaluation = tokio::task::spawn_blocking(move || script::run(&script, &view, history, host, &limits));
        loop {
            tokio::select! {
                done = &mut evaluation => {
                    return done.map_err(|e| Interrupted::Store(StoreError::Conflict(format!("script run panicked: {e}"))));
                }
                Some((call, reply)) = waits.recv() => {
                    // No room for one more live script: it suspends, to be replayed.
                    let Ok(live_slot) = self.shared.live_slots.clone().try_acquire_owned() else { continue };
                    // While it waits, its evaluation slot is for other scripts.
                    drop(slot.take());
                    store.set_replaying(instance.id, run_id, false).await?;
                    let result = self.complete(scope, &call).await?;
                    slot.replace(acquire().await?);
                    store.set_replaying(instance.id, run_id, true).await?;
                    drop(live_slot);
                    if reply.send(result).is_ok() {
                        self.shared.executor.metrics().script_wait(ScriptWait::Live);
                    }
                }
            }
        }
    }

    async fn finish(
        &self,
        id: Uuid,
        run_id: &str,
        status: Status,
        result: Option<&Value>,
        exception: Option<&str>,
    ) -> Result<(), Interrupted> {
        // The delivery is stored with the end, so that an end is never without its callback.
        let mut ended = self.shared.store.get_instance(id).await?;
        ended.status = status;
        ended.result = result.cloned();
        ended.exception = exception.map(str::to_owned);
        ended.end_time = Some(chrono::Utc::now());
        let payload = summary(&ended);
        let url = self.callback_url(&ended);
        let callback = url.as_deref().map(|url| (url, &payload));
        if !self.shared.store.finish_instance(id, run_id, status, result, exception, callback).await? {
            return Err(Interrupted::Stopped);
        }
        if callback.is_some() {
            self.shared.callbacks.notify_one();
        }
        match exception {
            Some(why) => tracing::info!(instance_id = %id, status = status.as_str(), exception = why, "instance ended"),
            None => tracing::info!(instance_id = %id, status = status.as_str(), "instance ended"),
        }
        Ok(())
    }

    /// Stores the end-of-run delivery to `Parameters.Host`, if there is one.
    pub async fn enqueue_callback(&self, id: Uuid) {
        let store = &self.shared.store;
        let Ok(instance) = store.get_instance(id).await else { return };
        let Some(url) = self.callback_url(&instance) else { return };
        let payload = summary(&instance);
        match store.enqueue_callback(id, &url, &payload).await {
            Ok(_) => self.shared.callbacks.notify_one(),
            Err(err) => tracing::error!(instance_id = %id, error = %err, "cannot store the callback"),
        }
    }

    /// Performs a pending call and records its result, which it gives.
    async fn complete(&self, scope: &RunScope<'_>, call: &RecordedCall) -> Result<Value, Interrupted> {
        let RunScope { instance, run_id, machine_limits, token } = *scope;
        let result = self.perform(instance, run_id, machine_limits, call, token).await?;
        if !self.shared.store.complete_event(instance.id, run_id, call.position, &result).await? {
            return Err(Interrupted::Stopped);
        }
        Ok(result)
    }

    /// Performs a call the script waits on and gives its result.
    async fn perform(
        &self,
        instance: &Instance,
        run_id: &str,
        machine_limits: Option<&Limitation>,
        call: &RecordedCall,
        token: &CancellationToken,
    ) -> Result<Value, Interrupted> {
        match call.kind.as_str() {
            "run_actor" | "run_actors" => self.run_actors(instance, run_id, machine_limits, call, token).await,
            "http_invoke" => self.http(&call.args, token).await,
            "sleep" => {
                // Measured from when the script first asked, so a restart does not start it over.
                let due = call.created_at + call.args["ms"].as_i64().unwrap_or_default();
                let left = (due - crate::model::now_millis()).max(0) as u64;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(left)) => Ok(Value::Null),
                    _ = token.cancelled() => Err(Interrupted::Stopped),
                }
            }
            other => Ok(json!({"error": format!("unknown call {other}")})),
        }
    }

    async fn run_actors(
        &self,
        instance: &Instance,
        run_id: &str,
        machine_limits: Option<&Limitation>,
        call: &RecordedCall,
        token: &CancellationToken,
    ) -> Result<Value, Interrupted> {
        let specs = call.args["actors"].as_array().cloned().unwrap_or_default();
        let debug = instance.parameters.get("Debug").is_some_and(|d| d == "true");
        let mut jobs = Vec::with_capacity(specs.len());
        // Actors that ended before this process took the call over are not run again.
        let ended = self.shared.store.ended_actors(instance.id, call.position).await?;
        // Containers as they are created, so that readers can tell running from waiting.
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String, String)>();
        let store = self.shared.store.clone();
        let (instance_id, position) = (instance.id, call.position);
        let recorder = tokio::spawn(async move {
            while let Some((index, node, container)) = started_rx.recv().await {
                if let Err(err) = store.actor_started(instance_id, position, index, &node, &container).await {
                    tracing::warn!(error = %err, "cannot record that an actor has a container");
                }
            }
        });
        for (index, spec) in specs.iter().enumerate() {
            if let Some((_, record)) = ended.iter().find(|(i, _)| *i == index) {
                jobs.push(Err(record.clone()));
                continue;
            }
            let name = spec["actor"].as_str().unwrap_or_default();
            let inputs: Vec<BlobRef> = serde_json::from_value(spec["inputs"].clone()).unwrap_or_default();
            let tag = spec["tag"].as_str().map(str::to_owned);
            let actor = match self.shared.store.get_actor(name).await {
                Ok(actor) => actor,
                Err(StoreError::NotFound { .. }) => {
                    jobs.push(Err(missing_actor(name, inputs, tag, call.stage.clone())));
                    continue;
                }
                Err(err) => return Err(err.into()),
            };
            let mut limitation: Vec<Limitation> = Vec::new();
            if let Ok(own) = serde_json::from_value::<Limitation>(spec["limitation"].clone()) {
                limitation.push(own);
            }
            limitation.extend(instance.limitation.clone());
            limitation.extend(machine_limits.cloned());
            // The call's choice, else the actor's own.
            let sandbox = spec["sandbox"].as_str().and_then(Sandbox::parse).unwrap_or(actor.sandbox);
            let ended = self.end_notice(instance.id, run_id, call, index, (&actor.name, &inputs, tag.clone()));
            jobs.push(Ok(ActorJob {
                instance_id: Some(instance.id),
                actor,
                inputs,
                limitation,
                priority: spec["priority"].as_i64().unwrap_or(instance.priority),
                debug,
                tag,
                started: Some(StartNotice { index, to: started_tx.clone() }),
                sandbox,
                ended: Some(ended),
            }));
        }
        // An ended actor's record is kept by its end notice.
        let runs = jobs.iter().map(|job| async move {
            match job {
                Ok(job) => {
                    let report = self.shared.executor.run(job, token).await;
                    actor_record(&job.actor.name, report, job.tag.clone(), call.stage.clone(), &job.inputs)
                }
                Err(record) => record.clone(),
            }
        });
        let records = futures::future::join_all(runs).await;
        drop(jobs);
        drop(started_tx);
        let _ = recorder.await;
        if token.is_cancelled() {
            return Err(Interrupted::Stopped);
        }
        Ok(json!({"actors": records}))
    }

    /// Keeps the record of actor `index` of `call` (its name, inputs and tag) as soon as it
    /// ended, before its container goes (a cancelled one is not kept: it runs again), so that
    /// a run that continues the call after a crash does not run it again.
    fn end_notice(
        &self,
        instance: Uuid,
        run_id: &str,
        call: &RecordedCall,
        index: usize,
        (name, inputs, tag): (&str, &[BlobRef], Option<String>),
    ) -> EndNotice {
        let store = self.shared.store.clone();
        let (run_id, position, stage) = (run_id.to_owned(), call.position, call.stage.clone());
        let (name, inputs) = (name.to_owned(), inputs.to_vec());
        EndNotice(Arc::new(move |report: ActorReport| {
            let (store, run_id) = (store.clone(), run_id.clone());
            let record = actor_record(&name, report, tag.clone(), stage.clone(), &inputs);
            Box::pin(async move {
                if record.status != "Cancelled"
                    && let Err(err) = store.actor_ended(instance, &run_id, position, index, &record).await
                {
                    tracing::warn!(error = %err, "cannot keep an ended actor's record; a takeover would run it again");
                }
            })
        }))
    }

    /// `http_invoke`: its answer (status and body, the body cut at `HTTP_BODY_LIMIT` bytes)
    /// or why it failed. Interrupted by a stop, it is not recorded, so that it is performed
    /// again when the instance continues.
    async fn http(&self, args: &Value, token: &CancellationToken) -> Result<Value, Interrupted> {
        let method = reqwest::Method::from_bytes(args["method"].as_str().unwrap_or("GET").as_bytes())
            .unwrap_or(reqwest::Method::GET);
        let url = args["url"].as_str().unwrap_or_default();
        let mut request = self.shared.http.request(method, url);
        if !args["body"].is_null() {
            request = request.json(&args["body"]);
        }
        let exchange = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            let mut cut = false;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                let room = HTTP_BODY_LIMIT.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    cut = true;
                    break;
                }
            }
            Ok::<_, reqwest::Error>(json!({"status": status, "body": String::from_utf8_lossy(&body), "truncated": cut}))
        };
        tokio::select! {
            answer = exchange => Ok(answer.unwrap_or_else(|err| json!({"error": crate::errors::with_causes(&err)}))),
            _ = token.cancelled() => Err(Interrupted::Stopped),
        }
    }
}

/// The most of an `http_invoke` answer's body a script gets (1 MiB).
const HTTP_BODY_LIMIT: usize = 1 << 20;

/// An ended actor as the instance keeps it.
fn actor_record(
    name: &str,
    report: ActorReport,
    tag: Option<String>,
    stage: Option<String>,
    inputs: &[BlobRef],
) -> ActorRecord {
    ActorRecord {
        name: name.to_owned(),
        status: report.status.as_str().to_owned(),
        exception: report.exception,
        exit_code: report.exit_code,
        timed_out: report.timed_out,
        oom_killed: report.oom_killed,
        node: report.node,
        container: report.container,
        start_time: report.start_time,
        end_time: report.end_time,
        attempts: report.attempts,
        tag,
        stage,
        inputs: inputs.to_vec(),
        outputs: report.outputs,
    }
}

fn missing_actor(name: &str, inputs: Vec<BlobRef>, tag: Option<String>, stage: Option<String>) -> ActorRecord {
    let now = crate::model::now_millis();
    ActorRecord {
        name: name.to_owned(),
        status: "Failed".into(),
        exception: Some(format!("actor `{name}` not found")),
        exit_code: None,
        timed_out: false,
        oom_killed: false,
        node: None,
        container: None,
        start_time: now,
        end_time: now,
        attempts: 0,
        tag,
        stage,
        inputs,
        outputs: Vec::new(),
    }
}

/// The JSON summary posted when an instance ends.
pub fn summary(instance: &Instance) -> Value {
    json!({
        "id": instance.id,
        "name": instance.name,
        "status": instance.status.joyoi(),
        "state": instance.status,
        "stage": instance.stage,
        "result": instance.result,
        "exception": instance.exception,
        "startTime": instance.start_time,
        "endTime": instance.end_time,
        "reRunTimes": instance.re_run_times,
        "parameters": instance.parameters,
    })
}

/// The script's host effects, done on the database from the script's blocking thread.
struct StoreHost {
    store: Store,
    handle: tokio::runtime::Handle,
    instance: Uuid,
    run_id: String,
    chunk_size: u64,
    /// Where the script asks to wait live on a call.
    live: tokio::sync::mpsc::Sender<LiveWait>,
}

/// What one run of an instance works with.
#[derive(Clone, Copy)]
struct RunScope<'a> {
    instance: &'a Instance,
    run_id: &'a str,
    machine_limits: Option<&'a Limitation>,
    token: &'a CancellationToken,
}

/// A call the script waits on live, and where its result goes.
type LiveWait = (RecordedCall, tokio::sync::oneshot::Sender<Value>);

impl HostEffects for StoreHost {
    fn read_blob(&self, id: Uuid, max: usize) -> Result<BlobRead, String> {
        self.handle.block_on(async {
            let (_, content) = self.store.get_blob(id).await.map_err(|e| e.to_string())?;
            if content.size.max(0) as u64 > max as u64 {
                return Ok(BlobRead::TooLarge(content.size as u64));
            }
            self.store.read_blob(&content).await.map(BlobRead::Bytes).map_err(|e| e.to_string())
        })
    }

    fn upload(&self, name: &str, bytes: &[u8]) -> Result<BlobRef, String> {
        self.handle.block_on(async {
            let upload = BlobUpload {
                name: name.to_owned(),
                remark: format!("from instance {}", self.instance),
                time_stamp: crate::model::now_secs(),
            };
            let blob = self.store.put_blob(&upload, bytes, self.chunk_size).await.map_err(|e| e.to_string())?;
            Ok(BlobRef { id: blob.id, name: name.to_owned(), tag: None })
        })
    }

    fn record(&self, call: &NewCall) -> Result<(), String> {
        self.handle.block_on(self.store.record_event(self.instance, &self.run_id, call)).map_err(|e| e.to_string())
    }

    fn log(&self, message: &str) {
        tracing::info!(instance_id = %self.instance, script_log = message, "script log");
    }

    fn wait(&self, call: &RecordedCall) -> Option<Value> {
        let (reply, result) = tokio::sync::oneshot::channel();
        self.live.blocking_send((call.clone(), reply)).ok()?;
        result.blocking_recv().ok()
    }
}
