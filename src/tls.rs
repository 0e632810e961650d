//! HTTPS for the service: the files of `server.tls` read into a rustls configuration (ring,
//! like every other TLS use in wharf), and a listener that completes each TLS handshake
//! before axum sees the connection, so a client without a certificate the configured CAs
//! signed never reaches the API.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::ServerTlsConfig;

/// Longest a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("setting `{key}`: {path}: {message}")]
    File { key: &'static str, path: String, message: String },
}

fn file_error(key: &'static str, path: &str, message: impl std::fmt::Display) -> TlsError {
    TlsError::File { key, path: path.to_owned(), message: message.to_string() }
}

/// The rustls configuration `server.tls` describes: the service's certificate and key, and,
/// with `client_ca`, the client certificates it requires.
pub fn server_config(settings: &ServerTlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_certificates("server.tls.cert", &settings.cert)?;
    let key = read_key("server.tls.key", &settings.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| file_error("server.tls.cert", &settings.cert, e))?;
    let builder = if settings.client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let path = &settings.client_ca;
        let mut roots = RootCertStore::empty();
        for certificate in read_certificates("server.tls.client_ca", path)? {
            roots
                .add(certificate)
                .map_err(|e| file_error("server.tls.client_ca", path, format!("not a usable CA certificate ({e})")))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| file_error("server.tls.client_ca", path, e))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        file_error("server.tls.key", &settings.key, format!("cannot serve with it and server.tls.cert ({e})"))
    })?;
    // axum serves HTTP/1.1; saying so lets clients that prefer HTTP/2 fall back at once.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(Path::new(path)).map_err(|e| file_error(key, path, format!("cannot read it: {e}")))
}

/// Every certificate of a PEM file, in order.
pub fn read_certificates(key: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(key, path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| file_error(key, path, format!("not a valid PEM file ({e})")))?;
    if certificates.is_empty() {
        return Err(file_error(key, path, "holds no certificate (no `-----BEGIN CERTIFICATE-----` section)"));
    }
    Ok(certificates)
}

/// The first private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn read_key(key: &'static str, path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => file_error(
            key,
            path,
            "holds no private key (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`)",
        ),
        e => file_error(key, path, format!("not a valid PEM file ({e})")),
    })
}

/// A TCP listener whose connections come out TLS-established. Handshakes run as tasks of
/// their own, so a slow or silent client delays nobody; a failed one is logged and dropped.
/// Dropping the listener (at shutdown) closes the port and abandons handshakes under way.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
        TlsListener { tcp, acceptor: TlsAcceptor::from(config), handshakes: JoinSet::new() }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, client)) => {
                        self.handshakes.spawn(handshake(self.acceptor.clone(), stream, client));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(established)) = done {
                        return established;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    client: SocketAddr,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some((tls, client)),
        Ok(Err(e)) => {
            tracing::info!(client = %client, error = %e, "TLS handshake failed; connection closed");
            None
        }
        Err(_) => {
            tracing::info!(client = %client, "TLS handshake took longer than 10 s; connection closed");
            None
        }
    }
}
