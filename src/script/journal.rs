//! The record a script replays against. Each effectful host call takes the next position;
//! a position already recorded answers from the record (and must be the same call), a new
//! position is performed — at once for quick effects, or by suspending the script for
//! effects that wait (actors, HTTP, sleep), which the engine performs before replaying.

use std::sync::Mutex;

use serde_json::Value;

/// One recorded host call.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    pub position: i64,
    pub kind: String,
    pub args: Value,
    /// `None` while the call is pending.
    pub result: Option<Value>,
    pub stage: Option<String>,
    /// When the call was first made, milliseconds since the epoch.
    pub created_at: i64,
}

/// A call made for the first time, to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCall {
    pub position: i64,
    pub kind: &'static str,
    pub args: Value,
    pub result: Option<Value>,
    pub stage: Option<String>,
}

/// Why a script run stops before its end.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The call at this position waits for the engine.
    Suspend(i64),
    /// The script made a different call than its record holds at this position.
    NonDeterministic(String),
    /// `fail(message)`.
    Fail(String),
    /// A host effect could not be carried out (the database, say).
    Host(String),
}

/// What a recorded or new call gives back to the journal's user.
pub enum Step {
    /// Recorded: its result.
    Replayed(Value),
    /// Not recorded yet: perform it at this position.
    New(i64),
}

pub struct Journal {
    history: Vec<RecordedCall>,
    state: Mutex<JournalState>,
}

struct JournalState {
    next: usize,
    stage: Option<String>,
    stop: Option<Stop>,
}

impl Journal {
    pub fn new(history: Vec<RecordedCall>) -> Journal {
        Journal { history, state: Mutex::new(JournalState { next: 0, stage: None, stop: None }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JournalState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the next position for a call of `kind` with `args`.
    pub fn step(&self, kind: &str, args: &Value) -> Result<Step, Stop> {
        let mut state = self.lock();
        let index = state.next;
        state.next += 1;
        let Some(recorded) = self.history.get(index) else { return Ok(Step::New(index as i64)) };
        if recorded.kind != kind || &recorded.args != args {
            return Err(Stop::NonDeterministic(format!(
                "non-deterministic script: call #{} is {kind}({}) but the record holds {}({}); \
                 a script must make the same calls in the same order every time it runs",
                index + 1,
                brief(args),
                recorded.kind,
                brief(&recorded.args)
            )));
        }
        match &recorded.result {
            Some(result) => Ok(Step::Replayed(result.clone())),
            None => Err(Stop::Suspend(recorded.position)),
        }
    }

    /// The recorded call at `position`.
    pub fn recorded(&self, position: i64) -> Option<&RecordedCall> {
        self.history.iter().find(|call| call.position == position)
    }

    pub fn stage(&self) -> Option<String> {
        self.lock().stage.clone()
    }

    pub fn set_stage(&self, stage: &str) {
        self.lock().stage = Some(stage.to_owned());
    }

    /// Remembers why the script was stopped (the first reason wins).
    pub fn stop(&self, stop: Stop) {
        let mut state = self.lock();
        if state.stop.is_none() {
            state.stop = Some(stop);
        }
    }

    pub fn take_stop(&self) -> Option<Stop> {
        self.lock().stop.take()
    }
}

/// Arguments shortened for a message.
fn brief(args: &Value) -> String {
    let text = args.to_string();
    if text.len() > 120 {
        let cut = (0..=117).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        format!("{}...", &text[..cut])
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recorded(position: i64, kind: &str, args: Value, result: Option<Value>) -> RecordedCall {
        RecordedCall { position, kind: kind.into(), args, result, stage: None, created_at: 0 }
    }

    #[test]
    fn replays_then_goes_on_and_catches_divergence() {
        let journal = Journal::new(vec![
            recorded(0, "set_stage", json!({"stage": "A"}), Some(Value::Null)),
            recorded(1, "run_actor", json!({"actor": "x"}), None),
        ]);
        assert!(matches!(journal.step("set_stage", &json!({"stage": "A"})), Ok(Step::Replayed(Value::Null))));
        assert_eq!(journal.step("run_actor", &json!({"actor": "x"})).err(), Some(Stop::Suspend(1)));
        assert!(matches!(journal.step("now", &json!({})), Ok(Step::New(2))));

        let journal = Journal::new(vec![recorded(0, "set_stage", json!({"stage": "A"}), Some(Value::Null))]);
        match journal.step("set_stage", &json!({"stage": "B"})) {
            Err(Stop::NonDeterministic(message)) => assert!(message.contains("non-deterministic script"), "{message}"),
            _ => panic!("divergence must be caught"),
        }
    }
}
