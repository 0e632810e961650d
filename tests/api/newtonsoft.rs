//! What JoyOI's SDK does with an answer: `JToken.ToObject<Dto>()` with Newtonsoft.Json's
//! default rules, checked against the DTOs of `JoyOI.ManagementService.Model`. A value that
//! would make the SDK throw is reported with its path.
//!
//! The rules kept here: property names match case-insensitively and unknown ones are
//! ignored; a JSON `null` for a non-nullable value type (`int`, `long`, `bool`, `Guid`,
//! `DateTime`, an enum) throws; an enum binds from one of its names (any case) or from an
//! integer it defines; a `Guid` and a `DateTime` bind from strings that parse as one.

use serde_json::Value;

/// A C# type as the SDK declares it.
#[derive(Debug, Clone)]
pub enum Ty {
    /// `string`: a string or null.
    Str,
    /// `int`, `long`: a whole number in range.
    Int,
    Long,
    Bool,
    Guid,
    DateTime,
    /// An enum with its names, their values being their positions.
    Enum(&'static [&'static str]),
    /// `T?` for a value type, or a reference type that may be null.
    Nullable(Box<Ty>),
    /// `IList<T>`, `IEnumerable<T>`, `T[]`: an array or null.
    List(Box<Ty>),
    /// `IDictionary<K, T>` (keys as the JSON object's keys; `int_keys` when K is `int`).
    Dict {
        int_keys: bool,
        value: Box<Ty>,
    },
    /// A class: an object or null, its properties by name.
    Class(Vec<(&'static str, Ty)>),
}

/// JoyOI's `StateMachineStatus` and `ActorStatus`.
pub const STATUS: &[&str] = &["Running", "Failed", "Succeeded"];

fn nullable(ty: Ty) -> Ty {
    Ty::Nullable(Box::new(ty))
}

fn list(ty: Ty) -> Ty {
    Ty::List(Box::new(ty))
}

pub fn blob_info() -> Ty {
    Ty::Class(vec![("Id", Ty::Guid), ("Name", Ty::Str), ("Tag", Ty::Str)])
}

pub fn container_limitation() -> Ty {
    Ty::Class(vec![
        ("CPUPeriod", nullable(Ty::Int)),
        ("CPUQuota", nullable(Ty::Int)),
        ("Memory", nullable(Ty::Long)),
        ("MemorySwap", nullable(Ty::Long)),
        ("BlkioDeviceReadBps", nullable(Ty::Int)),
        ("BlkioDeviceWriteBps", nullable(Ty::Int)),
        ("ExecutionTimeout", nullable(Ty::Int)),
        ("EnableNetwork", nullable(Ty::Bool)),
        ("Ulimit", Ty::Dict { int_keys: false, value: Box::new(Ty::Long) }),
    ])
}

pub fn actor_info() -> Ty {
    Ty::Class(vec![
        ("Name", Ty::Str),
        ("StartTime", Ty::DateTime),
        ("EndTime", nullable(Ty::DateTime)),
        ("Inputs", list(blob_info())),
        ("Outputs", list(blob_info())),
        ("Exceptions", list(Ty::Str)),
        ("Status", Ty::Enum(STATUS)),
        ("Stage", Ty::Str),
        ("Tag", Ty::Str),
        ("UsedNode", Ty::Str),
        ("UsedContainer", Ty::Str),
    ])
}

pub fn instance_output() -> Ty {
    Ty::Class(vec![
        ("Id", Ty::Guid),
        ("Name", Ty::Str),
        ("Status", Ty::Enum(STATUS)),
        ("Stage", Ty::Str),
        ("StartedActors", list(actor_info())),
        ("InitialBlobs", list(blob_info())),
        ("Limitation", container_limitation()),
        ("Parameters", Ty::Dict { int_keys: false, value: Box::new(Ty::Str) }),
        ("Priority", Ty::Int),
        ("FromManagementService", Ty::Str),
        ("ReRunTimes", Ty::Int),
        ("Exception", Ty::Str),
        ("ExecutionKey", Ty::Str),
        ("StartTime", Ty::DateTime),
        ("EndTime", nullable(Ty::DateTime)),
    ])
}

pub fn actor_output() -> Ty {
    Ty::Class(vec![("Id", Ty::Guid), ("Name", Ty::Str), ("Body", Ty::Str)])
}

pub fn state_machine_output() -> Ty {
    Ty::Class(vec![("Id", Ty::Guid), ("Name", Ty::Str), ("Body", Ty::Str), ("Limitation", container_limitation())])
}

pub fn blob_output() -> Ty {
    Ty::Class(vec![("Id", Ty::Guid), ("Body", Ty::Str), ("TimeStamp", Ty::Long), ("Remark", Ty::Str)])
}

pub fn docker_node_output() -> Ty {
    Ty::Class(vec![
        ("Name", Ty::Str),
        ("NodeInfo", Ty::Class(vec![("Image", Ty::Str), ("Address", Ty::Str)])),
        ("RunningJobs", Ty::Int),
        ("RunningJobDescriptions", list(Ty::Str)),
        ("ErrorFlags", Ty::Bool),
    ])
}

/// `IDictionary<int, int>` of `WaitingTasks`.
pub fn waiting_tasks() -> Ty {
    Ty::Dict { int_keys: true, value: Box::new(Ty::Int) }
}

pub fn strings() -> Ty {
    list(Ty::Str)
}

pub fn list_of(ty: Ty) -> Ty {
    list(ty)
}

/// Panics, naming the path, where the SDK would throw binding `value` to `ty`.
pub fn assert_binds(value: &Value, ty: &Ty, what: &str) {
    let mut problems = Vec::new();
    check(value, ty, what, &mut problems);
    assert!(problems.is_empty(), "JoyOI's SDK would throw reading {what}:\n{}\nin {value}", problems.join("\n"));
}

fn check(value: &Value, ty: &Ty, path: &str, problems: &mut Vec<String>) {
    let mut fail = |why: String| problems.push(format!("{path}: {why}"));
    match (ty, value) {
        (Ty::Nullable(_), Value::Null) => {}
        (Ty::Nullable(inner), _) => check(value, inner, path, problems),
        (Ty::Str | Ty::List(_) | Ty::Dict { .. } | Ty::Class(_), Value::Null) => {}
        (_, Value::Null) => fail(format!("null for a non-nullable {ty:?}")),
        (Ty::Str, Value::String(_)) => {}
        (Ty::Str, other) => fail(format!("{other} for a string")),
        (Ty::Int, Value::Number(n)) if n.as_i64().is_some_and(|n| i32::try_from(n).is_ok()) => {}
        (Ty::Long, Value::Number(n)) if n.as_i64().is_some() => {}
        (Ty::Int | Ty::Long, other) => fail(format!("{other} for a whole number of {ty:?}'s range")),
        (Ty::Bool, Value::Bool(_)) => {}
        (Ty::Bool, other) => fail(format!("{other} for a bool")),
        (Ty::Guid, Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => {}
        (Ty::Guid, other) => fail(format!("{other} for a Guid")),
        (Ty::DateTime, Value::String(s)) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {}
        (Ty::DateTime, other) => fail(format!("{other} for a DateTime")),
        (Ty::Enum(names), Value::String(s)) if names.iter().any(|n| n.eq_ignore_ascii_case(s)) => {}
        (Ty::Enum(names), Value::Number(n)) if n.as_u64().is_some_and(|n| (n as usize) < names.len()) => {}
        (Ty::Enum(names), other) => fail(format!("{other} is not one of {names:?}")),
        (Ty::List(inner), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                check(item, inner, &format!("{path}[{i}]"), problems);
            }
        }
        (Ty::List(_), other) => fail(format!("{other} for a list")),
        (Ty::Dict { int_keys, value: inner }, Value::Object(map)) => {
            for (key, item) in map {
                if *int_keys && key.parse::<i32>().is_err() {
                    problems.push(format!("{path}: key {key:?} is not an int"));
                }
                check(item, inner, &format!("{path}.{key}"), problems);
            }
        }
        (Ty::Dict { .. }, other) => fail(format!("{other} for a dictionary")),
        (Ty::Class(properties), Value::Object(map)) => {
            for (name, inner) in properties {
                // Newtonsoft matches property names case-insensitively; a missing one keeps
                // its default.
                if let Some((key, item)) = map.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)) {
                    check(item, inner, &format!("{path}.{key}"), problems);
                }
            }
        }
        (Ty::Class(_), other) => fail(format!("{other} for an object")),
    }
}

#[test]
fn the_rules_catch_what_the_sdk_throws_on() {
    let problems = |value: Value, ty: Ty| {
        let mut problems = Vec::new();
        check(&value, &ty, "x", &mut problems);
        problems
    };
    assert!(problems(serde_json::json!(null), Ty::DateTime).len() == 1, "null DateTime throws");
    assert!(problems(serde_json::json!("Queued"), Ty::Enum(STATUS)).len() == 1, "unknown enum name throws");
    assert!(problems(serde_json::json!(3), Ty::Enum(STATUS)).len() == 1, "unknown enum value throws");
    assert!(problems(serde_json::json!("succeeded"), Ty::Enum(STATUS)).is_empty(), "names bind in any case");
    assert!(problems(serde_json::json!({"startTime": null}), actor_info()).len() == 1);
    assert!(problems(serde_json::json!({"endTime": null, "extra": 1}), actor_info()).is_empty());
    assert!(problems(serde_json::json!({"1": 2, "x": 3}), waiting_tasks()).len() == 1);
}
