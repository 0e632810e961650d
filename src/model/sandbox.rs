//! Where an actor runs: a fresh container of its own, or a warm one of its instance.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where an actor runs. An actor declares its default; a script's call may ask otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sandbox {
    /// A container of its own, created for it and removed after it (the default).
    #[default]
    Fresh,
    /// A run in a warm container of its instance: a fresh directory and uid in a container
    /// that serves the instance's runs one after another.
    Warm,
}

impl Sandbox {
    /// `"warm"` or `"fresh"`, as a script's job or an actor says it.
    pub fn parse(text: &str) -> Option<Sandbox> {
        match text {
            "fresh" => Some(Sandbox::Fresh),
            "warm" => Some(Sandbox::Warm),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sandbox::Fresh => "fresh",
            Sandbox::Warm => "warm",
        }
    }
}
