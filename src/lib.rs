//! wharf: a Docker-orchestrating distributed executor with a JoyOI-compatible HTTP API.
//!
//! Layout:
//! - [`config`]: settings from a TOML file, `WHARF_*` variables and flags.
//! - [`model`]: the resources (actors, state machines, blobs, instances, nodes) as users see them.
//! - [`store`]: the database (SQLite embedded, PostgreSQL for scale) behind one handle.
//! - [`definitions`]: example actors and state machines loaded from a folder at start.
//! - [`script`]: the sandboxed Rhai engine state machines are written for.
//! - [`metrics`]: counters, gauges and histograms in the Prometheus text format.
//! - [`api`]: HTTP routes, the `{code, msg, data}` envelope, access control, OpenAPI.
//! - [`ui`]: the web console at `/ui/`, files embedded in the binary, calling the API.
//! - [`server`]: `wharf serve`, which ties the above together and shuts down cleanly.
//! - [`tls`]: HTTPS for the service, and the client certificates it requires.
//! - [`cli`]: the command line of the `wharf` binary.

pub mod api;
pub mod cli;
pub mod config;
pub mod definitions;
pub mod docker;
pub mod engine;
pub mod errors;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod script;
pub mod server;
pub mod store;
pub mod tls;
pub mod ui;

/// Installs ring as the process's TLS crypto provider (for the Docker client and outgoing
/// HTTP; the service's own HTTPS names ring explicitly). Call before building any HTTP
/// client; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
