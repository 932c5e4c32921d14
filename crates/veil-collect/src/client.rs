//! A small client for tests and the load benchmark (feature `client`): posts batches over
//! one kept-alive HTTP/1.1 connection (TLS trusting one given certificate, or plain HTTP),
//! makes self-signed certificates, and drives a fixed load to measure throughput and
//! latency. Browsers use the JavaScript client; this one is not needed to run a collector.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::wire;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A bad URL, certificate or TLS setting.
    #[error("{0}")]
    Setup(String),
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Transport(String),
}

fn transport(error: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(error.to_string())
}

/// One connection to a collector.
#[derive(Debug)]
pub struct Uploader {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

/// A collector's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body (JSON).
    pub body: String,
}

impl Uploader {
    /// Connects to `base` (`https://127.0.0.1:8443/` or `http://…`), trusting `certificate`
    /// (a PEM file) for HTTPS.
    ///
    /// # Errors
    /// [`ClientError`] if the URL, the certificate or the connection fails.
    pub async fn connect(base: &str, certificate: Option<&Path>) -> Result<Self, ClientError> {
        let (tls, rest) = if let Some(rest) = base.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = base.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(ClientError::Setup(format!("{base} is not an http(s) URL")));
        };
        let authority = rest.trim_end_matches('/').to_string();
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(transport)?;
        stream.set_nodelay(true).map_err(transport)?;
        let sender = if tls {
            let certificate = certificate
                .ok_or_else(|| ClientError::Setup("HTTPS needs a certificate to trust".into()))?;
            let mut roots = rustls::RootCertStore::empty();
            for der in CertificateDer::pem_file_iter(certificate)
                .map_err(|e| ClientError::Setup(e.to_string()))?
            {
                roots
                    .add(der.map_err(|e| ClientError::Setup(e.to_string()))?)
                    .map_err(|e| ClientError::Setup(e.to_string()))?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError::Setup(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let host = authority
                .rsplit_once(':')
                .map_or(authority.as_str(), |(host, _)| host);
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| ClientError::Setup(e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, stream)
                .await
                .map_err(transport)?;
            handshake(stream).await?
        } else {
            handshake(stream).await?
        };
        Ok(Self { sender, authority })
    }

    /// Posts a batch of encoded reports.
    ///
    /// # Errors
    /// [`ClientError`] if the batch cannot be framed or the exchange fails.
    pub async fn post_reports(&mut self, reports: &[Vec<u8>]) -> Result<Answer, ClientError> {
        let body = wire::encode_batch(reports).map_err(|e| ClientError::Setup(e.to_string()))?;
        self.request("POST", "/v1/reports", Some(body)).await
    }

    /// Sends one request (with a batch's media type when it has a body).
    ///
    /// # Errors
    /// [`ClientError::Transport`] if the exchange fails.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority);
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, wire::CONTENT_TYPE);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        self.sender.ready().await.map_err(transport)?;
        let response = self.sender.send_request(request).await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).to_string(),
        })
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(transport)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Writes a self-signed certificate for `localhost` and `127.0.0.1` and its key, as
/// `cert.pem` and `key.pem` in `directory`. For tests and benchmarks only.
///
/// # Errors
/// [`ClientError::Setup`] if generating or writing fails.
pub fn self_signed(directory: &Path) -> Result<(PathBuf, PathBuf), ClientError> {
    let setup = |error: &dyn std::fmt::Display| ClientError::Setup(error.to_string());
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(|e| setup(&e))?;
    let certificate = directory.join("cert.pem");
    let key = directory.join("key.pem");
    std::fs::write(&certificate, generated.cert.pem()).map_err(|e| setup(&e))?;
    std::fs::write(&key, generated.signing_key.serialize_pem()).map_err(|e| setup(&e))?;
    Ok((certificate, key))
}

/// A fixed load: `connections` clients each posting `batches` batches, one after another.
#[derive(Debug, Clone)]
pub struct Load {
    /// The collector's base URL.
    pub base: String,
    /// The certificate to trust, for HTTPS.
    pub certificate: Option<PathBuf>,
    /// Concurrent connections.
    pub connections: usize,
    /// Batches per connection.
    pub batches: usize,
}

/// What a load measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Reports accepted.
    pub reports: u64,
    /// Batches accepted.
    pub batches: u64,
    /// Batches refused or failed, by status (0 for a transport failure).
    pub failures: Vec<(u16, String)>,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// Batch latencies, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadReport {
    /// Accepted reports per second.
    #[must_use]
    pub fn reports_per_second(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let reports = self.reports as f64;
        reports / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The latency below which a fraction `quantile` of batches were answered.
    #[must_use]
    pub fn latency(&self, quantile: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let index = ((self.latencies.len() as f64 * quantile).ceil() as usize)
            .clamp(1, self.latencies.len());
        self.latencies[index - 1]
    }
}

/// Runs a load; `batch(connection, index)` makes each batch's reports.
///
/// # Errors
/// [`ClientError`] if a connection cannot be opened.
pub async fn run_load(
    load: &Load,
    batch: Arc<dyn Fn(usize, usize) -> Vec<Vec<u8>> + Send + Sync>,
) -> Result<LoadReport, ClientError> {
    let mut uploaders = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        uploaders.push(Uploader::connect(&load.base, load.certificate.as_deref()).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (connection, mut uploader) in uploaders.into_iter().enumerate() {
        let batch = batch.clone();
        let batches = load.batches;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(batches);
            let mut failures = Vec::new();
            let mut reports = 0_u64;
            for index in 0..batches {
                let body = batch(connection, index);
                let count = body.len() as u64;
                let sent = Instant::now();
                match uploader.post_reports(&body).await {
                    Ok(answer) if answer.status == 200 => {
                        latencies.push(sent.elapsed());
                        reports += count;
                    }
                    Ok(answer) => failures.push((answer.status, answer.body)),
                    Err(error) => {
                        failures.push((0, error.to_string()));
                        break;
                    }
                }
            }
            (reports, latencies, failures)
        }));
    }
    let mut report = LoadReport {
        reports: 0,
        batches: 0,
        failures: Vec::new(),
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (reports, latencies, failures) = task.await.map_err(transport)?;
        report.reports += reports;
        report.batches += latencies.len() as u64;
        report.latencies.extend(latencies);
        report.failures.extend(failures);
    }
    report.elapsed = started.elapsed();
    report.latencies.sort_unstable();
    Ok(report)
}
