//! Blobs: immutable files. A blob row names content that is stored once per SHA-256.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A stored blob without its bytes.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    pub id: Uuid,
    pub name: String,
    pub remark: String,
    /// The caller's timestamp (JoyOI's `TimeStamp`), in Unix seconds; the upload's time by default.
    pub time_stamp: i64,
    pub size: i64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

/// A reference to a blob under a name, as instances and actors use them (JoyOI's BlobInfo).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlobRef {
    #[serde(alias = "Id")]
    pub id: Uuid,
    #[serde(alias = "Name")]
    #[schema(
        pattern = "^([^/\\x00.][^/\\x00]{0,254}|\\.[^/\\x00.][^/\\x00]{0,253}|\\.\\.[^/\\x00]{1,253})$",
        min_length = 1,
        max_length = 255
    )]
    pub name: String,
    #[serde(alias = "Tag", default)]
    pub tag: Option<String>,
}

/// Where a blob's content lives: its hash, size and chunking.
#[derive(Debug, Clone)]
pub struct Content {
    pub sha256: String,
    pub size: i64,
    pub chunk_count: i64,
    /// The key its chunks are stored under: the SHA-256, or the key of the upload that
    /// streamed them in before the hash was known.
    pub chunk_key: String,
}

/// Checks a file name used inside a container's work directory.
pub fn validate_file_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if ok { Ok(()) } else { Err(format!("`{name}` is not a valid file name (1-255 bytes, no '/')")) }
}
