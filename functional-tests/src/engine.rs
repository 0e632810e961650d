//! The Docker engines tests run against, and how a test gets one: the machine's engine at
//! `unix:///var/run/docker.sock` and a second one at `$WHARF_TEST_DOCKER2`.
//!
//! A missing engine skips the test (`None`, after printing "skipping: ...") unless `CI=true`,
//! where it panics: CI must not pass by skipping.
//!
//! ```no_run
//! # async fn a_test() {
//! use functional_tests::Engine;
//! let Some(engine) = Engine::primary_or_skip().await else { return };
//! # }
//! ```

use std::path::PathBuf;

use bollard::{API_DEFAULT_VERSION, Docker};

/// The machine's engine.
pub const PRIMARY_ADDRESS: &str = "unix:///var/run/docker.sock";

/// The variable holding the second engine's address (`unix:///...`).
pub const SECOND_ADDRESS_VAR: &str = "WHARF_TEST_DOCKER2";

/// Seconds bollard waits for any one request.
const REQUEST_TIMEOUT_SECS: u64 = 60;

/// An engine that answered, with a client speaking an API version it supports.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Where it was reached, e.g. `unix:///var/run/docker.sock`.
    pub address: String,
    /// Its unix socket, for a [`crate::TcpProxy`] in front of it.
    pub socket: PathBuf,
    pub docker: Docker,
}

/// An engine that could not be reached, or whose API version could not be negotiated.
#[derive(Debug, thiserror::Error)]
#[error("Docker engine at {address} does not answer: {source}")]
pub struct ConnectError {
    pub address: String,
    #[source]
    pub source: bollard::errors::Error,
}

impl Engine {
    /// The machine's engine, or `None` (after saying why) when it does not answer.
    pub async fn primary_or_skip() -> Option<Engine> {
        Self::answering_or_skip(PRIMARY_ADDRESS).await
    }

    /// The second engine, `$WHARF_TEST_DOCKER2`, or `None` (after saying why) when the
    /// variable is unset or the engine does not answer.
    pub async fn second_or_skip() -> Option<Engine> {
        match std::env::var(SECOND_ADDRESS_VAR) {
            Ok(address) if !address.is_empty() => Self::answering_or_skip(&address).await,
            _ => skip(&format!("{SECOND_ADDRESS_VAR} is not set (eval \"$(scripts/dockerd2.sh start)\" sets it)")),
        }
    }

    /// Connects to the engine at `address` (`unix:///path` or `/path`).
    pub async fn connect(address: &str) -> Result<Engine, ConnectError> {
        let socket = PathBuf::from(address.strip_prefix("unix://").unwrap_or(address));
        let docker = connect_unix(&socket.to_string_lossy())
            .await
            .map_err(|source| ConnectError { address: address.to_owned(), source })?;
        Ok(Engine { address: address.to_owned(), socket, docker })
    }

    /// Whether `image` is on this engine; when it is not, says so and gives `false`, or panics
    /// on CI. `build` says how to make it (e.g. `bash images/build-full.sh`).
    pub async fn has_image_or_skip(&self, image: &str, build: &str) -> bool {
        match self.docker.inspect_image(image).await {
            Ok(_) => true,
            Err(err) => {
                skip::<()>(&format!("{image} is not on {} ({err}); build it with {build}", self.address)).is_some()
            }
        }
    }

    async fn answering_or_skip(address: &str) -> Option<Engine> {
        match Self::connect(address).await {
            Ok(engine) => Some(engine),
            Err(err) => skip(&err.to_string()),
        }
    }
}

/// A bollard client for the engine at the unix socket `path`, speaking the newest API
/// version both sides know (bollard's default is newer than older engines accept).
pub async fn connect_unix(path: &str) -> Result<Docker, bollard::errors::Error> {
    Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)?.negotiate_version().await
}

/// A bollard client for the engine at `tcp://host:port` (e.g. [`crate::TcpProxy::url`]),
/// with the API version negotiated.
pub async fn connect_tcp(address: &str) -> Result<Docker, bollard::errors::Error> {
    Docker::connect_with_http(address, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)?.negotiate_version().await
}

/// Whether this run is CI's, where every engine must be there.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// Skips (returns `None`), or panics on CI, because of `why`.
fn skip<T>(why: &str) -> Option<T> {
    if on_ci() {
        panic!("{why}; CI=true needs both Docker engines and the images (scripts/test.sh makes them)");
    }
    eprintln!("skipping: {why}");
    None
}
