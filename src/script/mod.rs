//! State machine scripts (Rhai): a sandboxed engine (no imports, eval, files, network or
//! environment), bounded in operations, call depth, data sizes and wall time; the host API
//! (`host`); and durable execution by replay against a recorded history (`journal`).
//!
//! `run` executes a script from the top against its history. It ends in one of three ways:
//! the script's value, a failure with a message a person can act on, or a suspension at a
//! call that waits (actors, HTTP, sleep), which the engine performs before running again.
//! A call that waits is first offered to the host (`HostEffects::wait`): while the engine has
//! room for live scripts, the script waits on its thread for the result and goes on, so a
//! script that waits N times runs once instead of N times from the top.

mod host;
mod journal;
mod values;

pub use host::{BlobRead, HostEffects, InstanceView};
pub use journal::{NewCall, RecordedCall};
pub use values::{ActorRecord, ScriptBlob, from_json, to_json};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{Dynamic, Engine, EvalAltResult, Scope};

use journal::{Journal, Stop};

/// Limits of one script run.
#[derive(Debug, Clone)]
pub struct ScriptLimits {
    pub max_operations: u64,
    pub max_call_depth: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub wall_time: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 1_000_000,
            max_call_depth: 64,
            max_string_size: 4 << 20,
            max_array_size: 100_000,
            max_map_size: 10_000,
            wall_time: Duration::from_secs(10),
        }
    }
}

/// How one run of a script ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished(serde_json::Value),
    Failed(String),
    /// The call recorded at this position waits for the engine.
    Suspended(i64),
}

/// Deepest expression nesting a script may have.
const MAX_EXPR_DEPTH: usize = 64;

/// An engine that can read no files, import no modules and see no environment.
pub fn sandboxed_engine() -> Engine {
    let mut engine = Engine::new();
    engine.set_module_resolver(DummyModuleResolver::new());
    engine.set_max_expr_depths(MAX_EXPR_DEPTH, MAX_EXPR_DEPTH);
    engine.disable_symbol("eval");
    engine.disable_symbol("import");
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine
}

/// Compiles `body`; the error names the line and column of the first problem.
pub fn check(body: &str) -> Result<(), String> {
    match sandboxed_engine().compile(body) {
        Ok(_) => Ok(()),
        Err(err) => {
            let position = err.position();
            match (position.line(), position.position()) {
                (Some(line), Some(column)) => {
                    Err(format!("script error at line {line}, column {column}: {}", err.err_type()))
                }
                (Some(line), None) => Err(format!("script error at line {line}: {}", err.err_type())),
                _ => Err(format!("script error: {}", err.err_type())),
            }
        }
    }
}

/// Runs `body` from the top against `history`.
pub fn run(
    body: &str,
    instance: &InstanceView,
    history: Vec<RecordedCall>,
    host: Arc<dyn HostEffects>,
    limits: &ScriptLimits,
) -> Outcome {
    let mut engine = sandboxed_engine();
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_depth);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    let started = Instant::now();
    let wall = limits.wall_time;
    // Time spent waiting live on a call is not the script's.
    let waited = Arc::new(AtomicU64::new(0));
    let paused = waited.clone();
    engine.on_progress(move |_| {
        let running = started.elapsed().saturating_sub(Duration::from_nanos(paused.load(Ordering::Relaxed)));
        (running > wall).then(|| Dynamic::from("wall-time"))
    });
    let ctx = Arc::new(host::Ctx { journal: Journal::new(history), host, waited });
    host::register(&mut engine, ctx.clone(), instance.parameters.get("Host").cloned());

    let ast = match engine.compile(body) {
        Ok(ast) => ast,
        Err(err) => return Outcome::Failed(format!("script does not compile: {err}")),
    };
    let mut scope = Scope::new();
    scope.push_constant("instance", instance.to_dynamic());
    match engine.eval_ast_with_scope::<Dynamic>(&mut scope, &ast) {
        Ok(value) => Outcome::Finished(to_json(&value)),
        Err(err) => match ctx.journal.take_stop() {
            Some(Stop::Suspend(position)) => Outcome::Suspended(position),
            Some(Stop::NonDeterministic(message)) | Some(Stop::Fail(message)) => Outcome::Failed(message),
            Some(Stop::Host(message)) => Outcome::Failed(format!("host error: {message}")),
            None => Outcome::Failed(describe(&err, limits)),
        },
    }
}

/// A script error in words, with its line.
fn describe(err: &EvalAltResult, limits: &ScriptLimits) -> String {
    let at = match err.position().line() {
        Some(line) => format!(" at line {line}"),
        None => String::new(),
    };
    match err {
        EvalAltResult::ErrorTooManyOperations(_) => {
            format!("script exceeded {} operations{at}", thousands(limits.max_operations))
        }
        EvalAltResult::ErrorTerminated(..) => {
            format!("script ran longer than {} ms in one run{at}", limits.wall_time.as_millis())
        }
        EvalAltResult::ErrorStackOverflow(_) => {
            format!("script exceeded the call depth of {}{at}", limits.max_call_depth)
        }
        EvalAltResult::ErrorDataTooLarge(what, _) => format!("script exceeded the size limit of {what}{at}"),
        EvalAltResult::ErrorRuntime(value, _) => format!("script error{at}: {value}"),
        other => format!("script error{at}: {}", other.to_string().trim_end_matches(&format!(" ({})", err.position()))),
    }
}

/// 1000000 → "1,000,000".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
