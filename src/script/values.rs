//! The values scripts handle: `Blob` and `ActorResult` as Rhai types, and the conversion of
//! script values to and from JSON (what the history records and the API shows).

use rhai::{Array, Dynamic, Map};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::blob::BlobRef;

/// A blob as a script sees it: a name for it in the work directory, its id, a tag.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptBlob {
    pub id: Uuid,
    pub name: String,
    pub tag: Option<String>,
}

impl From<BlobRef> for ScriptBlob {
    fn from(b: BlobRef) -> Self {
        ScriptBlob { id: b.id, name: b.name, tag: b.tag }
    }
}

impl From<&ScriptBlob> for BlobRef {
    fn from(b: &ScriptBlob) -> Self {
        BlobRef { id: b.id, name: b.name.clone(), tag: b.tag.clone() }
    }
}

/// What an actor run gave, as recorded in the history and handed to the script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActorRecord {
    pub name: String,
    pub status: String,
    pub exception: Option<String>,
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub node: Option<String>,
    pub container: Option<String>,
    pub start_time: i64,
    pub end_time: i64,
    pub attempts: u32,
    pub tag: Option<String>,
    pub stage: Option<String>,
    pub inputs: Vec<BlobRef>,
    pub outputs: Vec<BlobRef>,
}

/// JSON → script value. Objects become maps, arrays arrays, numbers ints when whole.
pub fn from_json(value: &serde_json::Value) -> Dynamic {
    match value {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => Dynamic::from_bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Dynamic::from(s.clone()),
        serde_json::Value::Array(items) => Dynamic::from_array(items.iter().map(from_json).collect()),
        serde_json::Value::Object(fields) => {
            let map: Map = fields.iter().map(|(k, v)| (k.as_str().into(), from_json(v))).collect();
            Dynamic::from_map(map)
        }
    }
}

/// Script value → JSON. Blobs become `{id, name, tag}`; actor results their record.
pub fn to_json(value: &Dynamic) -> serde_json::Value {
    if value.is_unit() {
        serde_json::Value::Null
    } else if let Some(b) = value.clone().try_cast::<bool>() {
        serde_json::Value::Bool(b)
    } else if let Some(i) = value.clone().try_cast::<i64>() {
        serde_json::Value::from(i)
    } else if let Some(f) = value.clone().try_cast::<f64>() {
        serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
    } else if value.is_string() || value.is_char() {
        serde_json::Value::String(value.to_string())
    } else if let Some(items) = value.clone().try_cast::<Array>() {
        serde_json::Value::Array(items.iter().map(to_json).collect())
    } else if let Some(map) = value.clone().try_cast::<Map>() {
        serde_json::Value::Object(map.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
    } else if let Some(blob) = value.clone().try_cast::<ScriptBlob>() {
        serde_json::to_value(BlobRef::from(&blob)).unwrap_or_default()
    } else if let Some(record) = value.clone().try_cast::<ActorRecord>() {
        serde_json::to_value(record).unwrap_or_default()
    } else {
        serde_json::Value::String(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips() {
        let value = serde_json::json!({"a": [1, 2.5, "x", true, null], "b": {"c": -3}});
        assert_eq!(to_json(&from_json(&value)), value);
    }
}
