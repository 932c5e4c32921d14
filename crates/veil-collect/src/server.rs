//! The HTTP side: HTTP/1.1 over TLS (rustls) or, on loopback only, plain HTTP.
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/reports` with a [batch](crate::wire) | `200 {"accepted": n}` once stored |
//! | `GET /v1/protocol` | the protocol descriptor, as JSON |
//! | `GET /healthz` | `200 {"status": "ok"}` |
//!
//! A batch is taken whole or refused whole, with a JSON `{"error": …}` that says why:
//! `400` a body that is not a batch or a report that does not decode, `413` a body or batch
//! over the limits, `415` another media type, `422` a report made under another protocol
//! (another id, version, ε or domain), `429` over the rate limit, `503` busy or shutting
//! down (with `Retry-After`), `500` the disk failed.
//!
//! Nothing about the sender is kept: the peer address is dropped when the connection is
//! accepted, cookies and user agents are never read, no per-request line is logged, and
//! every answer says `Cache-Control: no-store` and sets no cookie. The limits — body size,
//! reports per batch, reports per second over all senders, open connections, time to send
//! the headers and the body — are global rather than per sender for the same reason; per
//! sender limits belong to a proxy in front, if one is wanted.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use veil_ldp::{LdpError, Protocol, Report};

use crate::store::{AppendError, Appender};
use crate::wire::{self, WireError};

/// The limits a collector enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// The most reports in one batch.
    pub max_batch: usize,
    /// Reports per second over all senders (bursts up to one second's worth).
    pub max_rate: u32,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Time to complete the TLS handshake and send a request's headers.
    pub header_timeout: Duration,
    /// Time to send a request's body.
    pub body_timeout: Duration,
}

impl Default for Limits {
    /// 1 MiB bodies, 1000 reports per batch, 100,000 reports per second, 1024
    /// connections, 10 s for headers, 30 s for a body.
    fn default() -> Self {
        Self {
            max_body: 1 << 20,
            max_batch: 1000,
            max_rate: 100_000,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// What a collector serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The protocol whose reports it takes.
    pub protocol: Protocol,
    /// TLS; `None` serves plain HTTP (the caller allows that only on loopback).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The limits.
    pub limits: Limits,
    /// Origins (`https://example.org`) whose pages may post from a browser (CORS); `*`
    /// allows any.
    pub allow_origins: Vec<String>,
}

/// Why the server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A certificate or key file cannot be read or used.
    #[error("{what} {}: {reason}", path.display())]
    Tls {
        /// `"certificate"` or `"key"`.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// Accepting connections failed.
    #[error("accepting connections: {0}")]
    Accept(#[source] std::io::Error),
}

/// Counters for the operator (aggregates only: nothing per sender).
#[derive(Debug, Default)]
pub struct Stats {
    /// Reports stored.
    pub accepted_reports: AtomicU64,
    /// Batches stored.
    pub accepted_batches: AtomicU64,
    /// Batches refused as malformed (400) or of another media type (415).
    pub malformed: AtomicU64,
    /// Batches refused for a report of another protocol (422).
    pub other_protocol: AtomicU64,
    /// Batches refused for size (413).
    pub too_large: AtomicU64,
    /// Batches refused by the rate limit (429).
    pub rate_limited: AtomicU64,
    /// Batches refused while busy, shutting down or failing (503, 500).
    pub unavailable: AtomicU64,
    /// Connections closed at once for the connection limit.
    pub connections_refused: AtomicU64,
}

impl Stats {
    /// Batches refused, for any reason.
    #[must_use]
    pub fn refused(&self) -> u64 {
        [
            &self.malformed,
            &self.other_protocol,
            &self.too_large,
            &self.rate_limited,
            &self.unavailable,
        ]
        .iter()
        .map(|counter| counter.load(Ordering::Relaxed))
        .sum()
    }
}

/// Reads a PEM certificate chain and private key into a TLS configuration (TLS 1.2 and
/// 1.3, ring's algorithms, HTTP/1.1 by ALPN).
///
/// # Errors
/// [`ServeError::Tls`] naming the file that cannot be read or does not fit.
pub fn tls_config(certificate: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls_error = |what: &'static str, path: &Path, reason: String| ServeError::Tls {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(Iterator::collect)
        .map_err(|error| tls_error("certificate", certificate, error.to_string()))?;
    if chain.is_empty() {
        return Err(tls_error(
            "certificate",
            certificate,
            "holds no PEM certificate".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|error| tls_error("key", key, error.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error("certificate", certificate, error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|error| tls_error("key", key, error.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves until `shutdown` completes, then stops accepting, lets requests in flight finish
/// (up to 10 s) and returns. Stored batches are acknowledged only once synced (see
/// [`crate::store`]).
///
/// # Errors
/// [`ServeError::Accept`] if the listener fails.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    appender: Appender,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let limits = config.limits;
    let context = Arc::new(Context {
        descriptor: serde_json::to_vec(&config.protocol.descriptor()).unwrap_or_default(),
        config,
        appender,
        stats: stats.clone(),
        bucket: Mutex::new(Bucket {
            tokens: f64::from(limits.max_rate),
            refilled: Instant::now(),
        }),
    });
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    let result = loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break Ok(()),
        };
        // The peer's address is dropped here: nothing downstream can keep it.
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) if transient(&error) => continue,
            Err(error) => break Err(ServeError::Accept(error)),
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            stats.connections_refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let context = context.clone();
        tokio::spawn(async move {
            let io: Box<dyn Io> = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => Box::new(stream),
                        _ => return,
                    }
                }
                None => Box::new(stream),
            };
            let service = service_fn(move |request| {
                let context = context.clone();
                async move { Ok::<_, Infallible>(context.handle(request).await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(io), service);
            let _ = watcher.watch(connection).await;
            drop(permit);
        });
    };
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    result
}

/// Accept errors that concern one connection, not the listener.
fn transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        error.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock
    ) || error
        .raw_os_error()
        .is_some_and(|code| code == 24 || code == 23)
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

struct Context {
    config: ServerConfig,
    descriptor: Vec<u8>,
    appender: Appender,
    stats: Arc<Stats>,
    bucket: Mutex<Bucket>,
}

type Answer = Response<Full<Bytes>>;

fn json(status: StatusCode, body: &serde_json::Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn refuse(status: StatusCode, reason: impl Into<String>) -> Answer {
    let mut response = json(status, &serde_json::json!({ "error": reason.into() }));
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

const PATHS: [&str; 3] = ["/v1/reports", "/v1/protocol", "/healthz"];

impl Context {
    async fn handle(&self, request: Request<Incoming>) -> Answer {
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|origin| origin.to_str().ok())
            .filter(|origin| {
                self.config
                    .allow_origins
                    .iter()
                    .any(|allowed| allowed == "*" || allowed == origin)
            })
            .and_then(|origin| HeaderValue::from_str(origin).ok());
        let mut response = self.route(request).await;
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if let Some(origin) = origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        response
    }

    async fn route(&self, request: Request<Incoming>) -> Answer {
        let path = request.uri().path().to_string();
        match (request.method(), path.as_str()) {
            (&Method::POST, "/v1/reports") => self.post_reports(request).await,
            (&Method::OPTIONS, "/v1/reports") => {
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::NO_CONTENT;
                let headers = response.headers_mut();
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("POST"),
                );
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("Content-Type"),
                );
                headers.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
                response
            }
            (&Method::GET, "/v1/protocol") => {
                let mut response = Response::new(Full::new(Bytes::from(self.descriptor.clone())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            (&Method::GET, "/healthz") => {
                json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
            }
            (_, path) if PATHS.contains(&path) => {
                let mut response = refuse(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{} is not allowed on {path}", request.method()),
                );
                let allow = if path == "/v1/reports" {
                    "POST, OPTIONS"
                } else {
                    "GET"
                };
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                response
            }
            _ => refuse(
                StatusCode::NOT_FOUND,
                "not found: reports go to POST /v1/reports",
            ),
        }
    }

    async fn post_reports(&self, request: Request<Incoming>) -> Answer {
        let stats = &self.stats;
        let limits = &self.config.limits;
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|essence| essence.trim().to_ascii_lowercase());
        if content_type.as_deref() != Some(wire::CONTENT_TYPE) {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("send a batch as {}", wire::CONTENT_TYPE),
            );
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        let too_large = || {
            stats.too_large.fetch_add(1, Ordering::Relaxed);
            refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a batch body may hold at most {} bytes", limits.max_body),
            )
        };
        if declared.is_some_and(|length| length > limits.max_body as u64) {
            return too_large();
        }
        let body = Limited::new(request.into_body(), limits.max_body).collect();
        let body = match tokio::time::timeout(limits.body_timeout, body).await {
            Err(_) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                return refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    "the body took too long to arrive",
                );
            }
            Ok(Err(error)) => {
                if error.is::<http_body_util::LengthLimitError>() {
                    return too_large();
                }
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                return refuse(StatusCode::BAD_REQUEST, "the body could not be read");
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        let slices = match wire::decode_batch(&body, limits.max_batch) {
            Ok(slices) => slices,
            Err(error @ WireError::TooMany { .. }) => {
                stats.too_large.fetch_add(1, Ordering::Relaxed);
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, error.to_string());
            }
            Err(error) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                return refuse(StatusCode::BAD_REQUEST, error.to_string());
            }
        };
        let protocol = &self.config.protocol;
        for (position, bytes) in slices.iter().enumerate() {
            let checked = Report::decode(bytes).and_then(|report| protocol.check(&report));
            match checked {
                Ok(()) => {}
                Err(LdpError::WrongProtocol { found, expected }) => {
                    stats.other_protocol.fetch_add(1, Ordering::Relaxed);
                    return refuse(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "report {} of the batch was made under protocol {found:016x}; this collector takes only protocol {expected:016x} (load its descriptor from /v1/protocol)",
                            position + 1
                        ),
                    );
                }
                Err(error) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        format!("report {} of the batch: {error}", position + 1),
                    );
                }
            }
        }
        if !self.take_tokens(slices.len()) {
            stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "the collector takes no more reports this second; retry",
            );
        }
        let count = slices.len();
        let reports: Vec<Vec<u8>> = slices.into_iter().map(<[u8]>::to_vec).collect();
        match self.appender.append(reports).await {
            Ok(()) => {
                stats
                    .accepted_reports
                    .fetch_add(count as u64, Ordering::Relaxed);
                stats.accepted_batches.fetch_add(1, Ordering::Relaxed);
                json(StatusCode::OK, &serde_json::json!({ "accepted": count }))
            }
            Err(error) => {
                stats.unavailable.fetch_add(1, Ordering::Relaxed);
                let status = match error {
                    AppendError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                refuse(status, error.to_string())
            }
        }
    }

    /// Takes `count` reports' worth from the bucket, refilled at `max_rate` per second.
    fn take_tokens(&self, count: usize) -> bool {
        let rate = f64::from(self.config.limits.max_rate);
        let Ok(mut bucket) = self.bucket.lock() else {
            return false;
        };
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.refilled = now;
        #[allow(clippy::cast_precision_loss)]
        let wanted = count as f64;
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            true
        } else {
            false
        }
    }
}

/// The address a listener is bound to, as a URL base (`https://127.0.0.1:8443/`).
#[must_use]
pub fn base_url(address: SocketAddr, tls: bool) -> String {
    format!("{}://{address}/", if tls { "https" } else { "http" })
}
