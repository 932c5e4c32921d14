//! Load benchmark of `veil ldp collect` over loopback HTTPS (BENCHMARKS.md):
//!
//! ```sh
//! cargo build --release -p veil-cli
//! cargo run --release -p veil-collect --features client --example load -- \
//!     --veil target/release/veil --connections 8 --batches 1250 --batch 100
//! ```
//!
//! Starts the given `veil` binary as a collector with a self-signed certificate, posts a fixed
//! number of batches of OLH reports (d = 64, ε = 1) over kept-alive connections, stops the
//! collector with SIGTERM, checks with `veil ldp aggregate` that every acknowledged report
//! was stored, and prints reports per second and batch latencies.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use veil_collect::client::{Load, run_load, self_signed};

fn argument(name: &str, default: &str) -> String {
    let arguments: Vec<String> = std::env::args().collect();
    arguments
        .iter()
        .position(|argument| argument == name)
        .and_then(|at| arguments.get(at + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let veil = PathBuf::from(argument("--veil", "target/release/veil"));
    let connections: usize = argument("--connections", "8").parse()?;
    let batches: usize = argument("--batches", "1250").parse()?;
    let batch: usize = argument("--batch", "100").parse()?;
    let directory = tempfile::tempdir()?;
    let (certificate, key) = self_signed(directory.path())?;
    let protocol_path = directory.path().join("protocol.toml");
    let made = Command::new(&veil)
        .args([
            "ldp",
            "protocol",
            "--oracle",
            "olh",
            "--epsilon",
            "1",
            "--domain-size",
            "64",
        ])
        .arg("--output")
        .arg(&protocol_path)
        .status()?;
    assert!(made.success(), "veil ldp protocol failed");
    let protocol = veil_ldp::Protocol::from_descriptor(&toml::from_str(
        &std::fs::read_to_string(&protocol_path)?,
    )?)?;
    let out = directory.path().join("reports");
    let mut collector = Command::new(&veil)
        .args([
            "ldp",
            "collect",
            "--listen",
            "127.0.0.1:0",
            "--max-rate",
            "10000000",
        ])
        .arg("--protocol")
        .arg(&protocol_path)
        .arg("--out")
        .arg(&out)
        .arg("--cert")
        .arg(&certificate)
        .arg("--key")
        .arg(&key)
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = BufReader::new(collector.stderr.take().ok_or("no stderr")?);
    let mut line = String::new();
    stderr.read_line(&mut line)?;
    let base = line
        .split_whitespace()
        .find(|word| word.starts_with("https://"))
        .ok_or_else(|| format!("no address in {line:?}"))?
        .to_string();
    // Reports made ahead, so the clients measure the collector, not the randomizer.
    let mut rng = veil_testkit::seeded_rng(1);
    let pool: Vec<Vec<u8>> = (0..batch * 64)
        .map(|i| {
            protocol
                .randomize_index(u32::try_from(i % 64).unwrap_or(0), &mut rng)
                .map(|report| report.encode())
        })
        .collect::<Result<_, _>>()?;
    let pool = Arc::new(pool);
    let load = Load {
        base,
        certificate: Some(certificate),
        connections,
        batches,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(run_load(
        &load,
        Arc::new(move |connection, index| {
            let start = ((connection * 7919 + index) % 64) * batch;
            pool[start..start + batch].to_vec()
        }),
    ))?;
    Command::new("kill")
        .args(["-TERM", &collector.id().to_string()])
        .status()?;
    let mut rest = String::new();
    for line in stderr.lines() {
        rest.push_str(&line?);
        rest.push('\n');
    }
    collector.wait()?;
    let estimates = directory.path().join("estimates.csv");
    let aggregated = Command::new(&veil)
        .args(["ldp", "aggregate", "--protocol"])
        .arg(&protocol_path)
        .arg("--reports")
        .arg(&out)
        .arg("--output")
        .arg(&estimates)
        .output()?;
    println!(
        "{} reports in {} batches of {batch} over {connections} connections in {:.2} s: {:.0} reports/s; batch latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} failed",
        report.reports,
        report.batches,
        report.elapsed.as_secs_f64(),
        report.reports_per_second(),
        report.latency(0.5).as_secs_f64() * 1e3,
        report.latency(0.99).as_secs_f64() * 1e3,
        report.latency(1.0).as_secs_f64() * 1e3,
        report.failures.len(),
    );
    println!("collector: {}", rest.trim());
    println!(
        "aggregate: {}",
        String::from_utf8_lossy(&aggregated.stderr).trim()
    );
    let expected = format!(
        "aggregated {} of {} reports",
        report.reports, report.reports
    );
    if !String::from_utf8_lossy(&aggregated.stderr).contains(&expected) {
        return Err(
            format!("the collector did not store every acknowledged report ({expected})").into(),
        );
    }
    Ok(())
}
