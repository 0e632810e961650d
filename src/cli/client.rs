//! The HTTP client the commands share: the server's address, token and TLS files, the
//! envelope, and errors a person can act on — one line each, naming the server, the resource
//! or the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach the wharf service at {server}: {detail} (is it running? set --server or WHARF_SERVER)")]
    Unreachable { server: String, detail: String },
    #[error(
        "TLS with the wharf service at {server} failed: {detail} \
         (check --cacert, --cert and --key, or WHARF_CACERT, WHARF_CERT and WHARF_KEY)"
    )]
    Tls { server: String, detail: String },
    #[error("{message} (set --token or WHARF_TOKEN)")]
    Unauthorized { message: String },
    #[error("{0}")]
    Api(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Ended(String),
}

impl CliError {
    fn file(path: &Path, err: impl std::fmt::Display) -> CliError {
        CliError::File { path: path.display().to_string(), message: err.to_string() }
    }
}

/// Files for HTTPS: the CA to trust for the service, and this client's certificate and key.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    fn any(&self) -> bool {
        self.cacert.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// `builder` trusting `cacert` only, and presenting `cert` and `key`; each file is checked
    /// here so that an error names it.
    fn apply(&self, mut builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, CliError> {
        if let Some(path) = &self.cacert {
            let roots = crate::tls::read_certificates("--cacert", &path.display().to_string())
                .map_err(|e| tls_file_error(path, e))?;
            let roots = roots
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CliError::file(path, format!("not a usable CA certificate ({e}) (--cacert)")))?;
            builder = builder.tls_certs_only(roots);
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                crate::tls::read_certificates("--cert", &cert.display().to_string())
                    .map_err(|e| tls_file_error(cert, e))?;
                crate::tls::read_key("--key", &key.display().to_string()).map_err(|e| tls_file_error(key, e))?;
                // Both were just read; reqwest takes them as one PEM text.
                let mut pem = std::fs::read(cert).map_err(|e| CliError::file(cert, e))?;
                pem.push(b'\n');
                pem.extend(std::fs::read(key).map_err(|e| CliError::file(key, e))?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    CliError::file(cert, format!("cannot be used with {} ({e}) (--cert, --key)", key.display()))
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => return Err(CliError::Usage("--cert and --key go together: give both files".into())),
        }
        Ok(builder)
    }
}

/// A TLS file error as the CLI says it: the file, what is wrong, and the flag it came from.
fn tls_file_error(path: &Path, err: crate::tls::TlsError) -> CliError {
    let crate::tls::TlsError::File { key: flag, message, .. } = err;
    CliError::file(path, format!("{message} ({flag})"))
}

/// A connection to a running service.
#[derive(Clone)]
pub struct Client {
    server: String,
    token: Option<String>,
    http: reqwest::Client,
    /// Whether `--cert` was given: without it, an https:// service that drops the connection
    /// right after the handshake most likely wants one.
    presents_certificate: bool,
}

impl Client {
    pub fn new(server: &str, token: Option<String>, tls: &TlsFiles) -> Result<Client, CliError> {
        crate::install_crypto_provider();
        let server = server.trim_end_matches('/').to_owned();
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(CliError::Usage(format!("--server `{server}` is not an http:// or https:// URL")));
        }
        if tls.any() && !server.starts_with("https://") {
            return Err(CliError::Usage(format!(
                "--cacert, --cert and --key are for an https:// service; --server is `{server}`"
            )));
        }
        let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        let http =
            tls.apply(builder)?.build().map_err(|e| CliError::Usage(format!("cannot make an HTTP client: {e}")))?;
        Ok(Client { server, token, http, presents_certificate: tls.cert.is_some() })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.server));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    fn unreachable(&self, err: &reqwest::Error) -> CliError {
        let detail = crate::errors::with_causes(err);
        if ["certificate", "Certificate", "handshake", "alert", "tls", "TLS"].iter().any(|w| detail.contains(w)) {
            return CliError::Tls { server: self.server.clone(), detail };
        }
        // Over TLS 1.3 the client counts the handshake done before the service has checked
        // its certificate, so a refusal may arrive as an alert or as the connection closing
        // before the request went out.
        let closed = ["connection was not ready", "connection closed before message completed", "Connection reset"];
        if self.server.starts_with("https://")
            && !self.presents_certificate
            && closed.iter().any(|w| detail.contains(w))
        {
            let detail = format!(
                "{detail}; the service closed the connection right after the handshake, as one that \
                 requires a client certificate does (give --cert and --key)"
            );
            return CliError::Tls { server: self.server.clone(), detail };
        }
        let detail = if detail.contains("Connection refused") {
            "connection refused".to_owned()
        } else if detail.contains("invalid HTTP version") && self.server.starts_with("http://") {
            "it answers, but not in plain HTTP: if it serves HTTPS, use https:// in --server".to_owned()
        } else {
            detail
        };
        CliError::Unreachable { server: self.server.clone(), detail }
    }

    /// Sends a request and returns the envelope's `data`, or its `msg` as the error.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        let envelope: Value = serde_json::from_str(&text).map_err(|_| {
            CliError::Api(format!("{} answered {status} with something that is not wharf's JSON", self.server))
        })?;
        if status.is_success() {
            return Ok(envelope["data"].clone());
        }
        let message = envelope["msg"].as_str().unwrap_or("request failed").to_owned();
        Err(if status.as_u16() == 401 { CliError::Unauthorized { message } } else { CliError::Api(message) })
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.request(Method::PATCH, path).json(body)).await
    }

    /// Text that is not in an envelope (the graph).
    pub async fn get_text(&self, path: &str) -> Result<String, CliError> {
        let response = self.request(Method::GET, path).send().await.map_err(|e| self.unreachable(&e))?;
        if !response.status().is_success() {
            let envelope: Value = response.json().await.unwrap_or_default();
            return Err(CliError::Api(envelope["msg"].as_str().unwrap_or("request failed").to_owned()));
        }
        response.text().await.map_err(|e| self.unreachable(&e))
    }

    /// Uploads a file as a blob, streamed; returns its id.
    pub async fn upload(&self, path: &Path, name: &str) -> Result<String, CliError> {
        let file = tokio::fs::File::open(path).await.map_err(|e| CliError::file(path, e))?;
        let length = file.metadata().await.map_err(|e| CliError::file(path, e))?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let query = form_urlencoded::Serializer::new(String::new()).append_pair("name", name).finish();
        let request = self
            .request(Method::PUT, &format!("/api/v1/Blob/raw?{query}"))
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(body);
        let data = self.send(request).await?;
        data["id"].as_str().map(str::to_owned).ok_or_else(|| CliError::Api("the service gave no blob id".into()))
    }

    /// Downloads a blob's content into `path` (or standard output), streamed; returns the
    /// bytes written.
    pub async fn download(&self, id: &str, path: Option<&Path>) -> Result<u64, CliError> {
        let response = self
            .request(Method::GET, &format!("/api/v1/Blob/{id}/content"))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !response.status().is_success() {
            let envelope: Value = response.json().await.unwrap_or_default();
            return Err(CliError::Api(envelope["msg"].as_str().unwrap_or("download failed").to_owned()));
        }
        let target = path.unwrap_or(Path::new("standard output"));
        let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match path {
            Some(path) => {
                if let Some(parent) = path.parent()
                    && !parent.as_os_str().is_empty()
                {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| CliError::file(parent, e))?;
                }
                Box::new(tokio::fs::File::create(path).await.map_err(|e| CliError::file(path, e))?)
            }
            None => Box::new(tokio::io::stdout()),
        };
        let mut stream = response.bytes_stream();
        let mut written = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.unreachable(&e))?;
            sink.write_all(&chunk).await.map_err(|e| CliError::file(target, e))?;
            written += chunk.len() as u64;
        }
        sink.flush().await.map_err(|e| CliError::file(target, e))?;
        Ok(written)
    }
}

/// Reads a file for a command, naming it when it cannot.
pub fn read_file(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::file(path, e))
}

/// Percent-encodes one URL path segment.
pub fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
}
