//! [`TcpProxy`]: a Docker engine's unix socket served on `tcp://127.0.0.1:PORT`, so the
//! service can be given a node by TCP address, and a test can make that node vanish mid-run
//! ([`TcpProxy::cut`]) and come back ([`TcpProxy::restore`]) on the same port.
//!
//! A cut closes every open connection at once and stops listening, so new connections are
//! refused (`ECONNREFUSED`): a node that is gone. A freeze ([`TcpProxy::freeze`]) keeps every
//! connection open and accepts new ones but forwards nothing more: a node that hangs, as an
//! engine stopped with SIGSTOP does. A cut ends a freeze.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Forwards each TCP connection on `127.0.0.1:<port>` to a unix socket. Dropping it closes
/// everything. Needs a tokio runtime.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    target: PathBuf,
    /// `None` while cut.
    serving: Mutex<Option<Serving>>,
}

/// One listening period, from start or restore to cut.
#[derive(Debug)]
struct Serving {
    cancel: CancellationToken,
    /// Cancelled to freeze the proxy.
    frozen: CancellationToken,
    accepting: JoinHandle<()>,
    connections: TaskTracker,
}

impl TcpProxy {
    /// Listens on an ephemeral loopback port, forwarding to the unix socket `target`.
    pub async fn start(target: impl Into<PathBuf>) -> io::Result<TcpProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let proxy = TcpProxy { addr: listener.local_addr()?, target: target.into(), serving: Mutex::new(None) };
        proxy.serve(listener);
        Ok(proxy)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The engine's address through this proxy: `tcp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// How many connections are open through the proxy now.
    pub fn connections(&self) -> usize {
        self.lock().as_ref().map_or(0, |serving| serving.connections.len())
    }

    /// Whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        self.lock().is_none()
    }

    /// Closes every open connection and stops listening; returns once both are done, so a
    /// request made after it fails at once. Cutting a cut proxy does nothing.
    pub async fn cut(&self) {
        let Some(serving) = self.lock().take() else {
            return;
        };
        serving.cancel.cancel();
        // The accept loop returns on cancel and never panics; dropping it drops the listener.
        let _ = serving.accepting.await;
        serving.connections.close();
        serving.connections.wait().await;
    }

    /// Stops forwarding, leaving every connection open and accepting new ones that get no
    /// answer, until the proxy is cut.
    pub fn freeze(&self) {
        if let Some(serving) = self.lock().as_ref() {
            serving.frozen.cancel();
        }
    }

    /// Listens again on the same port. Restoring a proxy that is not cut does nothing.
    /// Fails if something else took the port in between.
    pub async fn restore(&self) -> io::Result<()> {
        if !self.is_cut() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    fn serve(&self, listener: TcpListener) {
        let cancel = CancellationToken::new();
        let frozen = CancellationToken::new();
        let connections = TaskTracker::new();
        let accepting =
            tokio::spawn(accept(listener, self.target.clone(), cancel.clone(), frozen.clone(), connections.clone()));
        let previous = self.lock().replace(Serving { cancel, frozen, accepting, connections });
        if let Some(previous) = previous {
            // Two concurrent restores: only one bind can succeed, but stay tidy anyway.
            previous.cancel.cancel();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Serving>> {
        // No code panics while holding the lock; a poisoned one still holds valid state.
        self.serving.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(serving) = self.lock().take() {
            serving.cancel.cancel();
        }
    }
}

/// Accepts connections until cancelled, each forwarded by its own task.
async fn accept(
    listener: TcpListener,
    target: PathBuf,
    cancel: CancellationToken,
    frozen: CancellationToken,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
                connections.spawn(forward(client, target.clone(), cancel.clone(), frozen.clone()));
            }
            Err(err) => {
                // E.g. out of file descriptors: say so and keep serving.
                eprintln!("TcpProxy on {:?}: accept failed: {err}", listener.local_addr());
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Copies bytes both ways between `client` and the engine until either side closes or the
/// proxy is cut; then drops both streams, which closes them. Frozen, it holds both open and
/// copies nothing until the cut.
async fn forward(mut client: TcpStream, target: PathBuf, cancel: CancellationToken, frozen: CancellationToken) {
    let _ = client.set_nodelay(true);
    if frozen.is_cancelled() {
        cancel.cancelled().await;
        return;
    }
    let mut engine = tokio::select! {
        () = cancel.cancelled() => return,
        engine = UnixStream::connect(&target) => match engine {
            Ok(engine) => engine,
            Err(err) => {
                eprintln!("TcpProxy: cannot connect to {}: {err}", target.display());
                return;
            }
        },
    };
    tokio::select! {
        () = cancel.cancelled() => {}
        () = frozen.cancelled() => cancel.cancelled().await,
        _ = copy_bidirectional(&mut client, &mut engine) => {}
    }
}
