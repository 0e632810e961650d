//! The domain's resources as users see them: what the API returns and the store keeps.
//! Serialised camelCase; input types accept PascalCase too, for JoyOI's SDK.

pub mod actor;
pub mod blob;
pub mod instance;
pub mod limitation;
pub mod log;
pub mod node;
pub mod sandbox;
pub mod schemas;
pub mod state_machine;
pub mod timeline;

use chrono::{DateTime, TimeZone, Utc};

/// Checks a resource name that appears in URL paths: 1–128 letters, digits, `-`, `_`, `.`.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "All"
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use 1 to 128 letters, digits, '-', '_' or '.', not starting with '.' (and not `All`)"
        ))
    }
}

/// Milliseconds since the epoch, the way times are stored.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// Seconds since the epoch: a blob's `timeStamp`, as JoyOI keeps it.
pub fn now_secs() -> i64 {
    Utc::now().timestamp()
}

/// A key that orders rows by creation: microseconds since the epoch, strictly increasing
/// within this process even when two rows are made in the same microsecond.
pub fn next_seq() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = Utc::now().timestamp_micros();
    let previous = LAST.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(now.max(last + 1)));
    // fetch_update with a closure that always returns Some cannot fail.
    let previous = previous.unwrap_or_else(|last| last);
    now.max(previous + 1)
}

/// A stored time as the API shows it.
pub fn to_time(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["CompileActor", "judge", "a.b-c_d", "x"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "a/b", "All", ".hidden", &"x".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
