//! Helpers for tests that need real Docker engines — wharf's nodes.
//!
//! Layout:
//! - [`engine`]: the two engines the tests use, the machine's (`/var/run/docker.sock`) and a
//!   second one (`$WHARF_TEST_DOCKER2`, started by `scripts/dockerd2.sh`), connected through
//!   bollard with the API version negotiated; missing engines skip a test, or fail it on CI.
//! - [`proxy`]: [`TcpProxy`], which makes an engine reachable as `tcp://127.0.0.1:PORT` and
//!   can make it vanish mid-run (`cut`) and come back (`restore`).
//! - [`labels`]: counting the containers that carry a label, to assert nothing was left behind.
//!
//! Invariant: nothing here knows wharf's own code; it is the ground the tests stand on.

pub mod engine;
pub mod labels;
pub mod proxy;

pub use engine::{ConnectError, Engine, connect_tcp, connect_unix};
pub use labels::{count_labelled, count_labelled_all};
pub use proxy::TcpProxy;
