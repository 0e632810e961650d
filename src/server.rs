//! `wharf serve`: opens the database, registers the configured nodes, and serves the API
//! (HTTP, or HTTPS with `server.tls`) until the shutdown future completes, then lets requests
//! finish within a deadline.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, access};
use crate::config::Config;
use crate::engine::callbacks::run_deliveries;
use crate::engine::workers::supervise;
use crate::engine::{Executor, InstanceRunner, Membership, NodePool, Workers, run_heartbeats, run_probes};
use crate::model::node::NodeRecord;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {addr} without authentication: anyone who can reach it could run programs. \
         Set auth.tokens in the config file (or WHARF_AUTH_TOKENS=<secret>), or require client certificates \
         with server.tls.client_ca (with server.tls.cert and server.tls.key), or bind to 127.0.0.1"
    )]
    Exposed { addr: SocketAddr },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("definitions: {0}")]
    Definitions(#[from] crate::definitions::DefinitionError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// Refuses a non-loopback address unless callers must authenticate: with a token, or with a
/// client certificate one of `server.tls.client_ca` signed.
pub fn check_exposure(config: &Config, addr: SocketAddr) -> Result<(), ServeError> {
    let authenticated = !config.auth.tokens.is_empty() || config.server.tls.requires_client_certificate();
    if !addr.ip().is_loopback() && !authenticated {
        return Err(ServeError::Exposed { addr });
    }
    Ok(())
}

/// Binds the configured address.
pub async fn bind(config: &Config) -> Result<TcpListener, ServeError> {
    let addr = config.bind_addr().map_err(|e| ServeError::Bind {
        addr: config.server.bind.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    check_exposure(config, addr)?;
    TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr: config.server.bind.clone(), source })
}

/// Runs the service on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    crate::install_crypto_provider();
    let local = listener.local_addr().map_err(ServeError::Http)?;
    check_exposure(&config, local)?;
    let tls = if config.server.tls.enabled() { Some(crate::tls::server_config(&config.server.tls)?) } else { None };
    let store = Store::open(&config.database.url, config.database.max_connections).await?;
    register_config_nodes(&store, &config).await?;
    let definitions = std::path::Path::new(&config.server.definitions);
    let loaded = if config.server.definitions.is_empty() {
        crate::definitions::Loaded::default()
    } else {
        crate::definitions::load(&store, definitions).await?
    };
    if !loaded.actors.is_empty() || !loaded.state_machines.is_empty() {
        tracing::info!(
            actors = %loaded.actors.join(","),
            state_machines = %loaded.state_machines.join(","),
            "definitions loaded"
        );
    }
    let access = access::Access {
        tokens: config.auth.tokens.clone(),
        // Validated when the config was loaded.
        allow: config.acl.allow.iter().filter_map(|rule| access::IpRule::parse(rule).ok()).collect(),
    };
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let membership = Membership::new(&config.executor, &hostname());
    let recovered = membership.join(&store).await?;
    tracing::info!(process = membership.id(), deployment = membership.deployment(), "joined the deployment");
    let workers = Workers::default();
    let pool = NodePool::load(store.clone(), config.executor.clone(), membership.clone()).await?;
    let background = CancellationToken::new();
    let probes = supervise(&workers, "probes", run_probes(pool.clone(), workers.clone(), background.clone()));
    let metrics = crate::metrics::Metrics::new();
    let executor =
        Executor::new(store.clone(), pool.clone(), config.limits.clone(), config.blobs.chunk_size, metrics.clone());
    let warm = executor.warm().clone();
    let callbacks_wake = Arc::new(Notify::new());
    let deliveries = supervise(
        &workers,
        "callbacks",
        run_deliveries(
            store.clone(),
            config.callbacks.clone(),
            callbacks_wake.clone(),
            metrics.clone(),
            workers.clone(),
            background.clone(),
        ),
    );
    let runner = InstanceRunner::new(
        store.clone(),
        executor,
        membership.id().to_owned(),
        config.executor.max_active_instances,
        &config.scripts,
        config.blobs.chunk_size,
        callbacks_wake,
        config.callbacks.path.clone(),
    );
    for id in &recovered.requeued {
        tracing::info!(instance_id = %id, "continuing an instance interrupted by a stop");
    }
    for id in &recovered.exhausted {
        tracing::warn!(instance_id = %id, "instance failed: re-run times exhausted");
        runner.enqueue_callback(*id).await;
    }
    let runs = supervise(&workers, "instances", runner.clone().run(background.clone()));
    let heartbeats = supervise(
        &workers,
        "heartbeat",
        run_heartbeats(
            membership.clone(),
            store.clone(),
            runner.clone(),
            pool.clone(),
            workers.clone(),
            background.clone(),
        ),
    );
    let client_certificates = config.server.tls.requires_client_certificate();
    let transfers = Arc::new(tokio::sync::Semaphore::new(config.blobs.max_concurrent_transfers as usize));
    let state = AppState {
        transfers,
        store: store.clone(),
        pool,
        runner,
        config: Arc::new(config),
        metrics,
        service_id: format!("wharf@{}", hostname()).into(),
        workers,
    };
    let app = api::app(state, access).into_make_service_with_connect_info::<SocketAddr>();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %local, scheme, client_certificates, database = store.backend().as_str(), "wharf is listening");

    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let stopping = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections");
        let _ = stopping_tx.send(());
    };
    let server = match tls {
        None => tokio::spawn(axum::serve(listener, app).with_graceful_shutdown(stopping).into_future()),
        // `tap_io` does nothing to a connection; it is how axum hands the client's address
        // (`ConnectInfo<SocketAddr>`, which the allow list reads) from a listener of our own.
        Some(tls) => tokio::spawn(
            axum::serve(crate::tls::TlsListener::new(listener, tls).tap_io(|_| {}), app)
                .with_graceful_shutdown(stopping)
                .into_future(),
        ),
    };
    let outcome = tokio::select! {
        result = server => result,
        _ = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period; stopping anyway");
            Ok(Ok(()))
        }
    };
    background.cancel();
    let _ = runs.await;
    let _ = deliveries.await;
    let _ = probes.await;
    let _ = heartbeats.await;
    warm.close().await;
    // Its runs went back to the queue: nothing of this process is left to take over.
    if let Err(err) = store.unregister_process(membership.id()).await {
        tracing::warn!(error = %err, "cannot unregister this process; others take it for dead after the lease");
    }
    store.close().await;
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ServeError::Http(e)),
        Err(join) => Err(ServeError::Http(std::io::Error::other(join.to_string()))),
    }
}

/// Makes the nodes listed in the config file present in the database.
async fn register_config_nodes(store: &Store, config: &Config) -> Result<(), StoreError> {
    for node in &config.nodes {
        let record = NodeRecord {
            name: node.name.clone(),
            address: node.address.clone(),
            image: node.image.clone(),
            capacity: i64::from(node.capacity),
            drained: false,
            tls: node.tls.as_ref().map(|t| crate::model::node::NodeTls {
                ca: t.ca.clone(),
                cert: t.cert.clone(),
                key: t.key.clone(),
            }),
            source: "config".into(),
            created_at: crate::model::now_millis(),
        };
        store.sync_config_node(&record).await?;
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "localhost".into())
}
