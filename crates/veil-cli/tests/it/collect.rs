//! `veil ldp collect` as a process: devices post, the collector stores, a kill -9 loses no
//! acknowledged report, `veil ldp aggregate` reads the directory, a bounded load over HTTPS.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use predicates::prelude::*;
use veil_collect::client::{Load, Uploader, run_load, self_signed};
use veil_engine::table::{self, Format, Values};

use crate::veil;

const COUNTRIES: [&str; 5] = ["FR", "DE", "IT", "ES", "PL"];

/// A descriptor for the five countries.
fn protocol(dir: &Path, oracle: &str, epsilon: &str) -> (PathBuf, veil_ldp::Protocol) {
    let domain = dir.join("countries.txt");
    std::fs::write(&domain, COUNTRIES.join("\n")).unwrap();
    let path = dir.join(format!("{oracle}-{epsilon}.toml"));
    veil()
        .args(["ldp", "protocol", "--oracle", oracle, "--epsilon", epsilon])
        .arg("--domain-file")
        .arg(&domain)
        .arg("--output")
        .arg(&path)
        .assert()
        .success();
    let built = veil_ldp::Protocol::from_descriptor(
        &toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap(),
    )
    .unwrap();
    (path, built)
}

/// A collector process, its URL, and what it printed.
struct Collector {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_veil"))
}

fn start(protocol: &Path, out: &Path, extra: &[&str]) -> Collector {
    let mut child = Command::new(bin())
        .args(["ldp", "collect", "--listen", "127.0.0.1:0"])
        .arg("--protocol")
        .arg(protocol)
        .arg("--out")
        .arg(out)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(String::new()));
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.lock().unwrap().push_str(&format!("{line}\n"));
        if let Some(rest) = line.strip_prefix("listening on ") {
            url = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no address: {}", log.lock().unwrap()));
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in lines {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    Collector {
        child,
        url,
        log,
        reader: Some(reader),
    }
}

impl Collector {
    /// SIGTERM, then what it printed; it must exit 0.
    fn stop(mut self) -> String {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(stopped.success());
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let log = self.log.lock().unwrap().clone();
        assert!(status.success(), "{status}: {log}");
        log
    }

    /// kill -9.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every report in the directory's segments, as a multiset.
fn stored(out: &Path) -> BTreeMap<Vec<u8>, usize> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "parquet")
        {
            let segment = table::read(&path, Format::Parquet, &["report"]).unwrap();
            let Values::Binary(reports) = segment.columns()[0].values() else {
                panic!("a binary report column in {}", path.display());
            };
            for report in reports {
                *all.entry(report.clone().unwrap()).or_default() += 1;
            }
        }
    }
    all
}

/// 4000 reports: FR 40%, DE 30%, IT 20%, ES 10%.
fn country_reports(built: &veil_ldp::Protocol, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = veil_testkit::seeded_rng(seed);
    (0..4000)
        .map(|i| {
            let country = match i % 10 {
                0..=3 => "FR",
                4..=6 => "DE",
                7 | 8 => "IT",
                _ => "ES",
            };
            built.randomize_value(country, &mut rng).unwrap().encode()
        })
        .collect()
}

#[test]
fn devices_post_the_collector_stores_and_aggregate_reads_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (descriptor, built) = protocol(dir.path(), "olh", "2");
    let (other, other_built) = protocol(dir.path(), "olh", "3");
    let out = dir.path().join("reports");
    let collector = start(&descriptor, &out, &["--segment-reports", "1500"]);
    assert!(
        collector
            .log
            .lock()
            .unwrap()
            .contains("warning: serving plain HTTP")
    );
    let reports = country_reports(&built, 1);
    runtime().block_on(async {
        let mut client = Uploader::connect(&collector.url, None).await.unwrap();
        for batch in reports.chunks(100) {
            let answer = client.post_reports(batch).await.unwrap();
            assert_eq!(answer.status, 200, "{answer:?}");
        }
        let foreign = country_reports(&other_built, 2);
        let answer = client.post_reports(&foreign[..10]).await.unwrap();
        assert_eq!(answer.status, 422, "{answer:?}");
        let served = client.request("GET", "/v1/protocol", None).await.unwrap();
        assert!(served.body.contains(&built.id().to_string()));
    });
    let log = collector.stop();
    assert!(
        log.contains("stopped: stored 4000 reports in 40 batches; refused 1 batches (0 malformed, 1 of another protocol"),
        "{log}"
    );
    assert!(log.contains("sealed "), "{log}");
    // Segments only: the log was sealed, and nothing names the sender.
    let mut segments = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(!name.ends_with(".log"), "{name} left");
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes.windows(9).any(|window| window == b"127.0.0.1"),
            "{name} holds an address"
        );
        segments += usize::from(name.starts_with("reports-"));
    }
    assert!(segments >= 2, "{segments} segments");
    assert_eq!(stored(&out).values().sum::<usize>(), 4000);
    let estimates = dir.path().join("estimates.csv");
    veil()
        .args(["ldp", "aggregate", "--protocol"])
        .arg(&descriptor)
        .arg("--reports")
        .arg(&out)
        .arg("--output")
        .arg(&estimates)
        .assert()
        .success()
        .stderr(predicate::str::contains("aggregated 4000 of 4000 reports"));
    let text = std::fs::read_to_string(&estimates).unwrap();
    let truth = [1600.0, 1200.0, 800.0, 400.0, 0.0];
    for (line, truth) in text.lines().skip(1).zip(truth) {
        let cells: Vec<f64> = line
            .split(',')
            .skip(1)
            .map(|cell| cell.parse().unwrap())
            .collect();
        assert!(
            (cells[0] - truth).abs() < 5.0 * cells[1],
            "{line} vs {truth}"
        );
    }
    // Reports of the other protocol are refused by aggregate too, and the estimates are
    // never written into the collector's directory.
    veil()
        .args(["ldp", "aggregate", "--protocol"])
        .arg(&other)
        .arg("--reports")
        .arg(&out)
        .arg("--output")
        .arg(dir.path().join("other.csv"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no report in"));
    veil()
        .args(["ldp", "aggregate", "--protocol"])
        .arg(&descriptor)
        .arg("--reports")
        .arg(&out)
        .arg("--output")
        .arg(out.join("estimates.parquet"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("would be written in --reports"));
}

#[test]
fn a_collector_killed_mid_stream_loses_no_acknowledged_report() {
    let dir = tempfile::tempdir().unwrap();
    let (descriptor, built) = protocol(dir.path(), "olh", "1");
    let out = dir.path().join("reports");
    let collector = start(&descriptor, &out, &[]);
    // OLH reports carry a random 64-bit seed: every report here is distinct.
    let reports = Arc::new(country_reports(&built, 3));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let url = collector.url.clone();
    let (sent, batches_sent) = std::sync::mpsc::channel();
    let sender = {
        let reports = reports.clone();
        let acknowledged = acknowledged.clone();
        std::thread::spawn(move || {
            runtime().block_on(async {
                let mut client = Uploader::connect(&url, None).await.unwrap();
                for (index, batch) in reports.chunks(20).enumerate() {
                    match client.post_reports(batch).await {
                        Ok(answer) if answer.status == 200 => {
                            acknowledged.lock().unwrap().extend(batch.iter().cloned());
                            let _ = sent.send(index);
                        }
                        _ => break,
                    }
                }
            });
        })
    };
    // Kill it while batches are flowing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < 40 {
        batches_sent
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap();
        seen += 1;
    }
    collector.kill();
    sender.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 800, "{}", acknowledged.len());
    // The next start seals what the killed one logged.
    let restarted = start(&descriptor, &out, &[]);
    let log = restarted.stop();
    assert!(log.contains("recovered "), "{log}");
    let stored = stored(&out);
    for report in &acknowledged {
        assert_eq!(
            stored.get(report),
            Some(&1),
            "an acknowledged report is missing"
        );
    }
    // Nothing stored that was not sent, nothing twice.
    let sent: std::collections::BTreeSet<&Vec<u8>> = reports.iter().collect();
    assert!(
        stored
            .iter()
            .all(|(report, count)| *count == 1 && sent.contains(report))
    );
}

#[test]
fn collect_refuses_plain_http_off_loopback_a_busy_directory_and_another_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let (descriptor, _) = protocol(dir.path(), "grr", "1");
    let (other, _) = protocol(dir.path(), "grr", "2");
    let out = dir.path().join("reports");
    veil()
        .args(["ldp", "collect", "--listen", "0.0.0.0:0", "--protocol"])
        .arg(&descriptor)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "plain HTTP is allowed only on a loopback address",
        ));
    let collector = start(&descriptor, &out, &[]);
    veil()
        .args(["ldp", "collect", "--listen", "127.0.0.1:0", "--protocol"])
        .arg(&descriptor)
        .arg("--out")
        .arg(&out)
        .timeout(Duration::from_secs(30))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("in use by another collector"));
    collector.stop();
    veil()
        .args(["ldp", "collect", "--listen", "127.0.0.1:0", "--protocol"])
        .arg(&other)
        .arg("--out")
        .arg(&out)
        .timeout(Duration::from_secs(30))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("give each protocol its own --out"));
    // A certificate that is not one is named.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    veil()
        .args(["ldp", "collect", "--listen", "127.0.0.1:0", "--protocol"])
        .arg(&descriptor)
        .arg("--out")
        .arg(dir.path().join("elsewhere"))
        .arg("--cert")
        .arg(&bad)
        .arg("--key")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.pem"));
}

/// A bounded load over HTTPS: fixed batches, a deadline; every acknowledged report stored.
/// The figures in BENCHMARKS.md come from `examples/load.rs` on a release build.
#[test]
fn a_bounded_load_over_https_is_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (descriptor, built) = protocol(dir.path(), "olh", "1");
    let (certificate, key) = self_signed(dir.path()).unwrap();
    let out = dir.path().join("reports");
    let collector = start(
        &descriptor,
        &out,
        &[
            "--cert",
            certificate.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        collector.url.starts_with("https://127.0.0.1:"),
        "{}",
        collector.url
    );
    let pool = Arc::new(country_reports(&built, 4));
    let load = Load {
        base: collector.url.clone(),
        certificate: Some(certificate),
        connections: 4,
        batches: 50,
    };
    let started = Instant::now();
    let report = runtime()
        .block_on(run_load(
            &load,
            Arc::new(move |connection, index| {
                let start = ((connection * 50 + index) % 40) * 100;
                pool[start..start + 100].to_vec()
            }),
        ))
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(120), "too slow");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.reports, 20_000);
    eprintln!(
        "load (debug build): {:.0} reports/s, p99 {:.1} ms",
        report.reports_per_second(),
        report.latency(0.99).as_secs_f64() * 1e3
    );
    let log = collector.stop();
    assert!(
        log.contains("stopped: stored 20000 reports in 200 batches"),
        "{log}"
    );
    assert_eq!(stored(&out).values().sum::<usize>(), 20_000);
}

/// The consent page says what the purposes registry says: each purpose's description and
/// retention appear in it.
#[test]
fn the_consent_page_follows_the_purposes_registry() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let page = std::fs::read_to_string(root.join("examples/web/index.html")).unwrap();
    let registry: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("configs/purposes.toml")).unwrap())
            .unwrap();
    for (name, purpose) in registry["purpose"].as_table().unwrap() {
        let description = purpose["description"]["en"].as_str().unwrap();
        assert!(
            page.contains(description),
            "the page does not give {name}'s description {description:?}"
        );
        let days = purpose["retention"]
            .as_str()
            .unwrap()
            .strip_suffix('d')
            .unwrap();
        assert!(
            page.contains(&format!("{days} days")),
            "the page does not give {name}'s retention of {days} days"
        );
    }
    // Every choice is off until the person turns it on.
    assert!(!page.contains("checked"), "a choice is on by default");
}
