use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use veil_collect::client::{Answer, Uploader, self_signed};
use veil_collect::server::{self, Limits, ServerConfig, Stats};
use veil_collect::store::{SegmentSink, Store, StorePolicy};
use veil_core::Epsilon;
use veil_ldp::{Domain, Longitudinal, OracleName, Protocol, ProtocolConfig};

/// Segments as length-prefixed reports.
struct TestSink;

impl SegmentSink for TestSink {
    fn extension(&self) -> &'static str {
        "bin"
    }

    fn write_segment(&self, path: &Path, reports: &[Vec<u8>]) -> Result<(), String> {
        let mut bytes = Vec::new();
        for report in reports {
            bytes.extend_from_slice(&u32::try_from(report.len()).unwrap().to_le_bytes());
            bytes.extend_from_slice(report);
        }
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, bytes).map_err(|e| e.to_string())?;
        std::fs::rename(&temporary, path).map_err(|e| e.to_string())
    }
}

fn stored_count(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "bin") {
            let bytes = std::fs::read(&path).unwrap();
            let mut at = 0;
            while at < bytes.len() {
                at += 4 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                count += 1;
            }
        }
    }
    count
}

fn protocol(epsilon: f64) -> Protocol {
    Protocol::new(ProtocolConfig {
        oracle: OracleName::Olh,
        epsilon: Epsilon::new(epsilon).unwrap(),
        domain: Domain::Size(64),
        longitudinal: Longitudinal::Independent,
    })
    .unwrap()
}

fn reports(protocol: &Protocol, count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = veil_testkit::seeded_rng(seed);
    (0..count)
        .map(|i| {
            protocol
                .randomize_index(u32::try_from(i % 64).unwrap(), &mut rng)
                .unwrap()
                .encode()
        })
        .collect()
}

/// A collector running on a thread of its own, on a runtime of its own.
struct Running {
    base: String,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stats: Arc<Stats>,
    certificate: Option<PathBuf>,
}

fn start(protocol: &Protocol, limits: Limits, tls: bool, origins: &[&str]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let (certificate, config_tls) = if tls {
        let (certificate, key) = self_signed(dir.path()).unwrap();
        let config = server::tls_config(&certificate, &key).unwrap();
        (Some(certificate), Some(config))
    } else {
        (None, None)
    };
    let store_dir = dir.path().join("reports");
    let store = Store::open(
        &store_dir,
        protocol,
        Arc::new(TestSink),
        StorePolicy {
            segment_reports: 1_000_000,
            segment_age: Duration::from_secs(3600),
            queue: 256,
        },
        Box::new(veil_testkit::seeded_rng(1)),
        Arc::new(|_| {}),
    )
    .unwrap();
    let config = ServerConfig {
        protocol: protocol.clone(),
        tls: config_tls,
        limits,
        allow_origins: origins.iter().map(ToString::to_string).collect(),
    };
    let stats = Arc::new(Stats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound, address) = std::sync::mpsc::channel();
    let thread_stats = stats.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let appender = store.appender();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            bound.send(listener.local_addr().unwrap()).unwrap();
            server::serve(listener, config, appender, thread_stats, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        store.close().unwrap();
    });
    let address = address.recv().unwrap();
    Running {
        base: server::base_url(address, tls),
        dir,
        stop: Some(stop),
        thread: Some(thread),
        stats,
        certificate,
    }
}

impl Running {
    fn stop(&mut self) -> usize {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        stored_count(&self.dir.path().join("reports"))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn assert_refused(answer: &Answer, status: u16, says: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains(says), "{message:?} does not say {says:?}");
}

#[test]
fn batches_are_taken_whole_or_refused_whole_with_a_status_that_says_why() {
    let built = protocol(1.0);
    let limits = Limits {
        max_batch: 50,
        max_body: 4096,
        ..Limits::default()
    };
    let mut running = start(&built, limits, false, &[]);
    runtime().block_on(async {
        let mut client = Uploader::connect(&running.base, None).await.unwrap();
        let good = reports(&built, 20, 1);
        let answer = client.post_reports(&good).await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body.trim(), "{\"accepted\":20}");
        // Another protocol's report, second in the batch.
        let mut mixed = reports(&built, 3, 2);
        mixed[1] = reports(&protocol(2.0), 1, 3).remove(0);
        let answer = client.post_reports(&mixed).await.unwrap();
        assert_refused(
            &answer,
            422,
            "report 2 of the batch was made under protocol",
        );
        // A report that does not decode.
        let mut corrupt = reports(&built, 3, 4);
        corrupt[2].push(7);
        assert_refused(
            &client.post_reports(&corrupt).await.unwrap(),
            400,
            "report 3 of the batch: report is corrupt",
        );
        // Framing, size and batch limits.
        assert_refused(
            &client
                .request("POST", "/v1/reports", Some(vec![5, 0, 1]))
                .await
                .unwrap(),
            400,
            "cut off",
        );
        assert_refused(
            &client.post_reports(&reports(&built, 51, 5)).await.unwrap(),
            413,
            "more than 50 reports",
        );
        assert_refused(
            &client
                .post_reports(&vec![vec![1_u8; 1000]; 5])
                .await
                .unwrap(),
            413,
            "at most 4096 bytes",
        );
        // Routes and methods.
        let answer = client.request("GET", "/v1/protocol", None).await.unwrap();
        assert_eq!(answer.status, 200);
        let descriptor: veil_ldp::ProtocolDescriptor = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(
            Protocol::from_descriptor(&descriptor).unwrap().id(),
            built.id()
        );
        assert_refused(
            &client.request("GET", "/v1/reports", None).await.unwrap(),
            405,
            "GET is not allowed",
        );
        assert_refused(
            &client.request("GET", "/admin", None).await.unwrap(),
            404,
            "not found",
        );
        assert_eq!(
            client
                .request("GET", "/healthz", None)
                .await
                .unwrap()
                .status,
            200
        );
    });
    // Only the accepted batch was stored; the refusals are counted by reason.
    assert_eq!(running.stop(), 20);
    let stats = &running.stats;
    assert_eq!(
        stats
            .accepted_reports
            .load(std::sync::atomic::Ordering::Relaxed),
        20
    );
    assert_eq!(
        stats
            .other_protocol
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats.too_large.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        stats.malformed.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[test]
fn https_a_rate_limit_and_cors_for_allowed_pages_only() {
    let built = protocol(1.0);
    let limits = Limits {
        max_rate: 150,
        ..Limits::default()
    };
    let mut running = start(&built, limits, true, &["https://consent.example"]);
    let certificate = running.certificate.clone().unwrap();
    runtime().block_on(async {
        let mut client = Uploader::connect(&running.base, Some(&certificate))
            .await
            .unwrap();
        assert_eq!(
            client
                .post_reports(&reports(&built, 100, 1))
                .await
                .unwrap()
                .status,
            200
        );
        // The bucket holds 150 reports; 100 more at once are refused.
        let answer = client.post_reports(&reports(&built, 100, 2)).await.unwrap();
        assert_refused(&answer, 429, "retry");
        // A plain-HTTP client cannot talk to the TLS port.
        let plain = running.base.replace("https://", "http://");
        let mut wrong = Uploader::connect(&plain, None).await.unwrap();
        assert!(wrong.request("GET", "/healthz", None).await.is_err());
    });
    // CORS headers: raw requests, to see the headers.
    let origin_header = |origin: &str| {
        runtime().block_on(async {
            let stream = tokio::net::TcpStream::connect(running.base.trim_start_matches("https://").trim_end_matches('/'))
                .await
                .unwrap();
            let mut roots = rustls::RootCertStore::empty();
            use rustls::pki_types::pem::PemObject;
            for der in rustls::pki_types::CertificateDer::pem_file_iter(&certificate).unwrap() {
                roots.add(der.unwrap()).unwrap();
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(
                    rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                    stream,
                )
                .await
                .unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let request = format!(
                "OPTIONS /v1/reports HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nCookie: id=42\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response.to_ascii_lowercase()
        })
    };
    let allowed = origin_header("https://consent.example");
    assert!(allowed.starts_with("http/1.1 204"), "{allowed}");
    assert!(
        allowed.contains("access-control-allow-origin: https://consent.example"),
        "{allowed}"
    );
    assert!(allowed.contains("cache-control: no-store"), "{allowed}");
    assert!(!allowed.contains("set-cookie"), "{allowed}");
    let other = origin_header("https://elsewhere.example");
    assert!(!other.contains("access-control-allow-origin"), "{other}");
    assert_eq!(running.stop(), 100);
}

#[test]
fn a_stop_lets_requests_in_flight_finish_and_seals_what_they_stored() {
    let built = protocol(1.0);
    let mut running = start(&built, Limits::default(), false, &[]);
    let base = running.base.clone();
    let sender = std::thread::spawn(move || {
        runtime().block_on(async {
            let mut client = Uploader::connect(&base, None).await.unwrap();
            let mut accepted = 0;
            for seed in 0..200 {
                match client
                    .post_reports(&reports(&protocol(1.0), 10, seed))
                    .await
                {
                    Ok(answer) if answer.status == 200 => accepted += 10,
                    _ => break,
                }
            }
            accepted
        })
    });
    std::thread::sleep(Duration::from_millis(100));
    let stored = running.stop();
    let accepted = sender.join().unwrap();
    // Every acknowledged batch is in a segment, and nothing else.
    assert_eq!(stored, accepted);
}
