//! The executor: nodes and their health (`pool`), the queue of actors waiting for a slot,
//! and running one actor from its input blobs to its output blobs (`executor`), in a fresh
//! container or a warm one of its instance (`warm`).
//! Knows nothing of HTTP; reaches Docker only through `crate::docker`.

pub mod callbacks;
mod executor;
pub mod hmac;
mod instances;
pub mod limits;
pub mod membership;
mod outputs;
mod pool;
mod warm;
pub mod workers;

pub use executor::{ActorJob, ActorReport, ActorStatus, EndNotice, Executor};
pub use instances::{InstanceRunner, summary};
pub use membership::{Membership, run_heartbeats};
pub use pool::{Health, Lease, NodePool, run_probes};
pub use warm::{Sandbox, WarmPool};
pub use workers::Workers;
