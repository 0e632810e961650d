//! The host API a state machine script sees: the instance, blobs, actors, stages, uploads,
//! HTTP, logging, and regular expressions. Every effectful call goes through the journal, so that a replay answers
//! recorded calls from the record and only new calls do work.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};
use serde_json::{Value, json};
use uuid::Uuid;

use super::journal::{Journal, NewCall, RecordedCall, Step, Stop};
use super::values::{ActorRecord, ScriptBlob, from_json, to_json};
use crate::model::blob::{BlobRef, validate_file_name};

/// A blob's bytes, or only its size when that is over the limit the reader gave.
pub enum BlobRead {
    Bytes(Vec<u8>),
    TooLarge(u64),
}

/// What the host does for the script: reads and writes that need the database.
pub trait HostEffects: Send + Sync + 'static {
    /// Reads a blob of at most `max` bytes; a larger one is not read.
    fn read_blob(&self, id: Uuid, max: usize) -> Result<BlobRead, String>;
    fn upload(&self, name: &str, bytes: &[u8]) -> Result<BlobRef, String>;
    /// Stores a call made for the first time (pending when it has no result).
    fn record(&self, call: &NewCall) -> Result<(), String>;
    fn log(&self, message: &str);
    /// Waits, with the script live on its thread, for the engine to perform the pending
    /// `call` (recorded, without a result) and give its result. `None`: the script is not to
    /// wait here (no room for one more live script, or the run is over); it suspends, and is
    /// replayed later.
    fn wait(&self, call: &RecordedCall) -> Option<Value> {
        let _ = call;
        None
    }
}

/// The instance as the script sees it.
#[derive(Debug, Clone)]
pub struct InstanceView {
    pub id: Uuid,
    pub name: String,
    pub parameters: BTreeMap<String, String>,
    pub priority: i64,
    pub initial_blobs: Vec<BlobRef>,
}

impl InstanceView {
    pub fn to_dynamic(&self) -> Dynamic {
        let mut map = Map::new();
        map.insert("id".into(), Dynamic::from(self.id.to_string()));
        map.insert("name".into(), Dynamic::from(self.name.clone()));
        map.insert("priority".into(), Dynamic::from_int(self.priority));
        let parameters: Map =
            self.parameters.iter().map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone()))).collect();
        map.insert("parameters".into(), Dynamic::from_map(parameters));
        let blobs: Array = self.initial_blobs.iter().cloned().map(|b| Dynamic::from(ScriptBlob::from(b))).collect();
        map.insert("initial_blobs".into(), Dynamic::from_array(blobs));
        Dynamic::from_map(map)
    }
}

pub(super) struct Ctx {
    pub journal: Journal,
    pub host: Arc<dyn HostEffects>,
    /// Nanoseconds the script spent waiting live, which its wall-time limit does not count.
    pub waited: Arc<AtomicU64>,
}

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// Largest compiled form of a script's regular expression, in bytes: matching is linear in
/// the text, and this bounds the other factor.
const MAX_REGEX_SIZE: usize = 1 << 20;
/// Deepest nesting of groups and repetitions in a script's regular expression.
const MAX_REGEX_NESTING: u32 = 64;

/// Stops the script for good (not catchable by the script), remembering why.
fn halt(ctx: &Ctx, stop: Stop, pos: Position) -> Box<EvalAltResult> {
    ctx.journal.stop(stop);
    EvalAltResult::ErrorTerminated(Dynamic::UNIT, pos).into()
}

/// A catchable script error.
fn throw(message: String, pos: Position) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(Dynamic::from(message), pos).into()
}

/// A call whose effect is quick: performed and recorded at once.
fn immediate(
    ctx: &Ctx,
    kind: &'static str,
    args: Value,
    pos: Position,
    perform: impl FnOnce() -> Result<Value, String>,
) -> Fallible<Value> {
    match ctx.journal.step(kind, &args) {
        Ok(Step::Replayed(result)) => Ok(result),
        Ok(Step::New(position)) => {
            let result = perform().map_err(|e| halt(ctx, Stop::Host(e), pos))?;
            let call = NewCall { position, kind, args, result: Some(result.clone()), stage: ctx.journal.stage() };
            ctx.host.record(&call).map_err(|e| halt(ctx, Stop::Host(e), pos))?;
            Ok(result)
        }
        Err(stop) => Err(halt(ctx, stop, pos)),
    }
}

/// A call that waits: recorded as pending, then waited for live when the host can, else
/// the script suspends until the engine has its result and replays it.
fn suspending(ctx: &Ctx, kind: &'static str, args: Value, pos: Position) -> Fallible<Value> {
    let pending = match ctx.journal.step(kind, &args) {
        Ok(Step::Replayed(result)) => return Ok(result),
        Ok(Step::New(position)) => {
            let stage = ctx.journal.stage();
            let call = NewCall { position, kind, args: args.clone(), result: None, stage: stage.clone() };
            ctx.host.record(&call).map_err(|e| halt(ctx, Stop::Host(e), pos))?;
            let created_at = crate::model::now_millis();
            RecordedCall { position, kind: kind.to_owned(), args, result: None, stage, created_at }
        }
        Err(Stop::Suspend(position)) => match ctx.journal.recorded(position) {
            Some(recorded) => recorded.clone(),
            None => return Err(halt(ctx, Stop::Suspend(position), pos)),
        },
        Err(stop) => return Err(halt(ctx, stop, pos)),
    };
    let waiting = Instant::now();
    let result = ctx.host.wait(&pending);
    ctx.waited.fetch_add(waiting.elapsed().as_nanos() as u64, Ordering::Relaxed);
    result.ok_or_else(|| halt(ctx, Stop::Suspend(pending.position), pos))
}

fn blobs_of(inputs: &Array, what: &str, pos: Position) -> Fallible<Vec<BlobRef>> {
    inputs
        .iter()
        .map(|item| {
            item.clone()
                .try_cast::<ScriptBlob>()
                .map(|b| BlobRef::from(&b))
                .ok_or_else(|| throw(format!("{what}: expected blobs, found {}", item.type_name()), pos))
        })
        .collect()
}

/// One actor of a `run_actor(s)` call, as recorded.
fn actor_args(name: &str, inputs: &[BlobRef], options: &Map, pos: Position) -> Fallible<Value> {
    let mut args = json!({"actor": name, "inputs": inputs});
    for key in ["tag", "limitation", "priority", "sandbox"] {
        if let Some(value) = options.get(key) {
            args[key] = to_json(value);
        }
    }
    if let Some(sandbox) = args.get("sandbox")
        && sandbox.as_str().and_then(crate::engine::Sandbox::parse).is_none()
    {
        return Err(throw(format!("sandbox of actor {name}: must be \"fresh\" or \"warm\", not {sandbox}"), pos));
    }
    if let Some(limitation) = args.get("limitation")
        && let Err(e) = serde_json::from_value::<crate::model::limitation::Limitation>(limitation.clone())
    {
        return Err(throw(format!("limitation of actor {name}: {e}"), pos));
    }
    Ok(args)
}

/// Turns recorded actor results into script values; a failed actor throws unless
/// `keep_failed`, when the script gets every result and reads `.status` itself. An actor that
/// failed without ever getting a container (no node has its image, every node failed) could
/// not run at all: that ends the instance with the cause, not as the script's error, since
/// no script can judge a program that never ran.
fn actor_results(ctx: &Ctx, result: Value, keep_failed: bool, pos: Position) -> Fallible<Vec<ActorRecord>> {
    let records: Vec<ActorRecord> = serde_json::from_value(result["actors"].clone())
        .map_err(|e| throw(format!("unreadable actor record: {e}"), pos))?;
    if let Some(unrun) = records.iter().find(|r| r.status == "Failed" && r.container.is_none()) {
        let why = unrun.exception.clone().unwrap_or_else(|| "no reason recorded".into());
        return Err(halt(ctx, Stop::Fail(format!("actor {} could not run: {why}", unrun.name)), pos));
    }
    if keep_failed {
        return Ok(records);
    }
    if let Some(failed) = records.iter().find(|r| r.status != "Succeeded") {
        let why = failed.exception.clone().unwrap_or_else(|| failed.status.clone());
        return Err(throw(format!("actor {} {}: {why}", failed.name, failed.status.to_lowercase()), pos));
    }
    Ok(records)
}

pub(super) fn register(engine: &mut Engine, ctx: Arc<Ctx>, host_url: Option<String>) {
    engine.register_type_with_name::<ScriptBlob>("Blob");
    engine.register_get("name", |b: &mut ScriptBlob| b.name.clone());
    engine.register_get("id", |b: &mut ScriptBlob| b.id.to_string());
    engine.register_get("tag", |b: &mut ScriptBlob| b.tag.clone().map_or(Dynamic::UNIT, Dynamic::from));
    engine.register_fn("to_string", |b: &mut ScriptBlob| format!("Blob({}, {})", b.name, b.id));
    engine.register_fn("to_debug", |b: &mut ScriptBlob| format!("Blob({}, {})", b.name, b.id));
    engine.register_fn("rename", |ctx: NativeCallContext, b: &mut ScriptBlob, name: &str| -> Fallible<ScriptBlob> {
        validate_file_name(name).map_err(|m| throw(m, ctx.call_position()))?;
        Ok(ScriptBlob { name: name.to_owned(), ..b.clone() })
    });
    engine
        .register_fn("with_tag", |b: &mut ScriptBlob, tag: &str| ScriptBlob { tag: Some(tag.to_owned()), ..b.clone() });
    // A blob is read only when it fits in a script string: its size is checked first.
    let read = |c: &Ctx, call: &NativeCallContext, b: &ScriptBlob| -> Fallible<Vec<u8>> {
        let max = call.engine().max_string_size();
        let max = if max == 0 { usize::MAX } else { max };
        match c.host.read_blob(b.id, max).map_err(|e| halt(c, Stop::Host(e), call.call_position()))? {
            BlobRead::Bytes(bytes) => Ok(bytes),
            BlobRead::TooLarge(size) => Err(throw(
                format!(
                    "blob {} is {size} bytes, more than a script string may hold ({max} bytes, scripts.max_string_size)",
                    b.name
                ),
                call.call_position(),
            )),
        }
    };
    let c = ctx.clone();
    engine.register_fn("text", move |call: NativeCallContext, b: &mut ScriptBlob| -> Fallible<String> {
        let bytes = read(&c, &call, b)?;
        String::from_utf8(bytes).map_err(|_| throw(format!("blob {} is not UTF-8 text", b.name), call.call_position()))
    });
    let c = ctx.clone();
    engine.register_fn("json", move |call: NativeCallContext, b: &mut ScriptBlob| -> Fallible<Dynamic> {
        let bytes = read(&c, &call, b)?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| throw(format!("blob {} is not JSON: {e}", b.name), call.call_position()))?;
        Ok(from_json(&value))
    });

    engine.register_type_with_name::<ActorRecord>("ActorResult");
    engine.register_get("name", |r: &mut ActorRecord| r.name.clone());
    engine.register_get("status", |r: &mut ActorRecord| r.status.clone());
    engine.register_get("node", |r: &mut ActorRecord| r.node.clone().map_or(Dynamic::UNIT, Dynamic::from));
    engine.register_get("container", |r: &mut ActorRecord| r.container.clone().map_or(Dynamic::UNIT, Dynamic::from));
    engine.register_get("exit_code", |r: &mut ActorRecord| r.exit_code.map_or(Dynamic::UNIT, Dynamic::from_int));
    engine.register_get("tag", |r: &mut ActorRecord| r.tag.clone().map_or(Dynamic::UNIT, Dynamic::from));
    engine.register_get("timed_out", |r: &mut ActorRecord| r.timed_out);
    engine.register_get("oom_killed", |r: &mut ActorRecord| r.oom_killed);
    engine.register_get("outputs", |r: &mut ActorRecord| -> Array {
        r.outputs.iter().cloned().map(|b| Dynamic::from(ScriptBlob::from(b))).collect()
    });
    engine.register_fn("output", |call: NativeCallContext, r: &mut ActorRecord, name: &str| -> Fallible<ScriptBlob> {
        r.outputs.iter().find(|b| b.name == name).cloned().map(ScriptBlob::from).ok_or_else(|| {
            let names: Vec<&str> = r.outputs.iter().map(|b| b.name.as_str()).collect();
            throw(format!("actor {} has no output {name} (it has: {})", r.name, names.join(", ")), call.call_position())
        })
    });
    engine.register_get("exception", |r: &mut ActorRecord| r.exception.clone().map_or(Dynamic::UNIT, Dynamic::from));
    engine.register_get("stage", |r: &mut ActorRecord| r.stage.clone().map_or(Dynamic::UNIT, Dynamic::from));
    engine.register_get("inputs", |r: &mut ActorRecord| -> Array {
        r.inputs.iter().cloned().map(|b| Dynamic::from(ScriptBlob::from(b))).collect()
    });
    engine.register_fn("input", |call: NativeCallContext, r: &mut ActorRecord, name: &str| -> Fallible<ScriptBlob> {
        r.inputs.iter().find(|b| b.name == name).cloned().map(ScriptBlob::from).ok_or_else(|| {
            let names: Vec<&str> = r.inputs.iter().map(|b| b.name.as_str()).collect();
            throw(format!("actor {} had no input {name} (it had: {})", r.name, names.join(", ")), call.call_position())
        })
    });
    engine.register_fn("to_string", |r: &mut ActorRecord| format!("ActorResult({}, {})", r.name, r.status));

    engine.register_fn("is_match", |call: NativeCallContext, text: &str, pattern: &str| -> Fallible<bool> {
        let regex = regex_lite::RegexBuilder::new(pattern)
            .size_limit(MAX_REGEX_SIZE)
            .nest_limit(MAX_REGEX_NESTING)
            .build()
            .map_err(|e| {
                throw(format!("is_match: `{pattern}` is not a valid regular expression: {e}"), call.call_position())
            })?;
        Ok(regex.is_match(text))
    });

    let c = ctx.clone();
    let run_one = move |call: &NativeCallContext, name: &str, inputs: Array, options: Map| -> Fallible<ActorRecord> {
        let pos = call.call_position();
        let blobs = blobs_of(&inputs, &format!("inputs of actor {name}"), pos)?;
        let args = json!({"actors": [actor_args(name, &blobs, &options, pos)?]});
        let result = suspending(&c, "run_actor", args, pos)?;
        let mut records = actor_results(&c, result, false, pos)?;
        records.pop().ok_or_else(|| throw("empty actor record".into(), pos))
    };
    let run = run_one.clone();
    engine.register_fn("run_actor", move |call: NativeCallContext, name: &str, inputs: Array| {
        run(&call, name, inputs, Map::new())
    });
    engine.register_fn("run_actor", move |call: NativeCallContext, name: &str, inputs: Array, options: Map| {
        run_one(&call, name, inputs, options)
    });
    let c = ctx.clone();
    let run_many = move |call: &NativeCallContext, jobs: Array, options: Map| -> Fallible<Array> {
        let pos = call.call_position();
        let keep_failed = match options.get("keep_failed") {
            None => false,
            Some(flag) => {
                flag.as_bool().map_err(|_| throw("run_actors: option keep_failed must be true or false".into(), pos))?
            }
        };
        let mut actors = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.into_iter().enumerate() {
            let job = job.try_cast::<Map>().ok_or_else(|| {
                throw(format!("run_actors: item {i} is not a map like #{{actor: \"A\", inputs: [..]}}"), pos)
            })?;
            let name = job
                .get("actor")
                .and_then(|a| a.clone().into_string().ok())
                .ok_or_else(|| throw(format!("run_actors: item {i} has no `actor` name"), pos))?;
            let inputs = job.get("inputs").and_then(|a| a.clone().try_cast::<Array>()).unwrap_or_default();
            let blobs = blobs_of(&inputs, &format!("run_actors: inputs of item {i}"), pos)?;
            actors.push(actor_args(&name, &blobs, &job, pos)?);
        }
        let result = suspending(&c, "run_actors", json!({"actors": actors}), pos)?;
        Ok(actor_results(&c, result, keep_failed, pos)?.into_iter().map(Dynamic::from).collect())
    };
    let run = run_many.clone();
    engine.register_fn("run_actors", move |call: NativeCallContext, jobs: Array| run(&call, jobs, Map::new()));
    engine.register_fn("run_actors", move |call: NativeCallContext, jobs: Array, options: Map| {
        run_many(&call, jobs, options)
    });

    let c = ctx.clone();
    engine.register_fn("set_stage", move |call: NativeCallContext, stage: &str| -> Fallible<()> {
        if stage.trim().is_empty() {
            return Err(throw("set_stage: the stage name must not be empty".into(), call.call_position()));
        }
        c.journal.set_stage(stage);
        immediate(&c, "set_stage", json!({"stage": stage}), call.call_position(), || Ok(Value::Null)).map(|_| ())
    });
    let c = ctx.clone();
    let upload =
        move |call: &NativeCallContext, kind: &'static str, name: &str, bytes: Vec<u8>| -> Fallible<ScriptBlob> {
            validate_file_name(name).map_err(|m| throw(format!("{kind}: {m}"), call.call_position()))?;
            let digest = crate::store::sha256_hex(&bytes);
            let args = json!({"name": name, "sha256": digest});
            let result = immediate(&c, kind, args, call.call_position(), || {
                c.host.upload(name, &bytes).map(|b| serde_json::to_value(b).unwrap_or_default())
            })?;
            let blob: BlobRef =
                serde_json::from_value(result).map_err(|e| throw(format!("{kind}: {e}"), call.call_position()))?;
            Ok(ScriptBlob::from(blob))
        };
    let up = upload.clone();
    engine.register_fn("upload_text", move |call: NativeCallContext, name: &str, text: &str| {
        up(&call, "upload_text", name, text.as_bytes().to_vec())
    });
    engine.register_fn("upload_json", move |call: NativeCallContext, name: &str, value: Dynamic| {
        let text = serde_json::to_vec_pretty(&to_json(&value)).unwrap_or_default();
        upload(&call, "upload_json", name, text)
    });

    let c = ctx.clone();
    engine.register_fn("log", move |call: NativeCallContext, message: Dynamic| -> Fallible<()> {
        let text = message.to_string();
        let host = c.host.clone();
        immediate(&c, "log", json!({"message": text}), call.call_position(), || {
            host.log(&text);
            Ok(Value::Null)
        })
        .map(|_| ())
    });
    let c = ctx.clone();
    engine.register_fn("now", move |call: NativeCallContext| -> Fallible<i64> {
        let value = immediate(&c, "now", json!({}), call.call_position(), || Ok(json!(crate::model::now_millis())))?;
        Ok(value.as_i64().unwrap_or_default())
    });
    let c = ctx.clone();
    engine.register_fn("sleep", move |call: NativeCallContext, millis: i64| -> Fallible<()> {
        if !(0..=86_400_000).contains(&millis) {
            return Err(throw("sleep: milliseconds must be between 0 and one day".into(), call.call_position()));
        }
        suspending(&c, "sleep", json!({"ms": millis}), call.call_position()).map(|_| ())
    });
    let c = ctx.clone();
    engine.register_fn("fail", move |call: NativeCallContext, message: Dynamic| -> Fallible<()> {
        Err(halt(&c, Stop::Fail(message.to_string()), call.call_position()))
    });

    let c = ctx.clone();
    let http = move |call: &NativeCallContext, method: &str, path: &str, body: Option<Dynamic>| -> Fallible<Dynamic> {
        let pos = call.call_position();
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            match &host_url {
                Some(host) => format!("{}{}", host.trim_end_matches('/'), path),
                None => return Err(throw("http_invoke: no Parameters.Host to send a relative path to".into(), pos)),
            }
        };
        let method = method.to_ascii_uppercase();
        if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
            return Err(throw(format!("http_invoke: unsupported method {method}"), pos));
        }
        let args = json!({"method": method, "url": url, "body": body.as_ref().map(to_json)});
        let result = suspending(&c, "http_invoke", args, pos)?;
        if let Some(error) = result.get("error").and_then(Value::as_str) {
            return Err(throw(format!("http_invoke {method} {url}: {error}"), pos));
        }
        Ok(from_json(&result))
    };
    let h = http.clone();
    engine.register_fn("http_invoke", move |call: NativeCallContext, method: &str, path: &str| {
        h(&call, method, path, None)
    });
    engine.register_fn("http_invoke", move |call: NativeCallContext, method: &str, path: &str, body: Dynamic| {
        http(&call, method, path, Some(body))
    });
}
