//! The fuzz targets' checks (`fuzz/src/targets.rs`) on a stable toolchain: each target gets
//! mutations of the shipped configuration files and of valid reports, and random bytes,
//! for a bounded time. This is not coverage-guided like `cargo fuzz` (see TESTING.md); it
//! keeps the targets building and their checks running in every `cargo test`.
//!
//! `VEIL_FUZZ_SECONDS` sets the time per target (default 2); `VEIL_FUZZ_SEED` the seed.
//! A panic fails the test and prints the input in hex, to turn into a regression test.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;

#[path = "../../../../fuzz/src/targets.rs"]
#[allow(unreachable_pub, dead_code)]
mod targets;

/// Pieces of TOML and numbers at the edges, spliced into inputs.
const TOKENS: &[&str] = &[
    "=",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    ",",
    ".",
    "\"",
    "'",
    "\"\"\"",
    "\n",
    "#",
    " = ",
    "0",
    "-1",
    "1e308",
    "-1e308",
    "1e-320",
    "nan",
    "inf",
    "-inf",
    "-0.0",
    "18446744073709551616",
    "9223372036854775807",
    "true",
    "false",
    "\"\"",
    "[]",
    "{}",
    "\u{0}",
    "\u{feff}",
    "é",
    "1979-05-27T07:32:00Z",
    "1979-05-27",
    "[[query]]",
    "[source]",
    "[budget]",
    "[output]",
    "epsilon",
    "delta",
    "rho",
    "bounds",
    "group_by",
    "aggregates",
    "kind",
    "count",
    "sum",
    "quantiles",
    "partitions",
    "public",
    "max_groups_per_unit",
    "max_rows_per_group",
    "oracle",
    "domain",
    "size",
    "values",
    "purpose",
    "purposes",
    "retention",
    "consent",
];

fn seconds() -> Duration {
    let seconds = std::env::var("VEIL_FUZZ_SECONDS")
        .ok()
        .and_then(|text| text.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(seconds)
}

fn seed() -> u64 {
    std::env::var("VEIL_FUZZ_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1)
}

fn config(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(name);
    std::fs::read(&path).unwrap()
}

/// One random change to `input`, sometimes taking bytes from another seed.
fn mutate(input: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut ChaCha20Rng) {
    let position = |rng: &mut ChaCha20Rng, input: &Vec<u8>| rng.random_range(0..=input.len());
    match rng.random_range(0..8_u32) {
        0 if !input.is_empty() => {
            let at = rng.random_range(0..input.len());
            input[at] ^= 1 << rng.random_range(0..8_u32);
        }
        1 => {
            let at = position(rng, input);
            input.insert(at, rng.random());
        }
        2 if !input.is_empty() => {
            let start = rng.random_range(0..input.len());
            let end = (start + rng.random_range(1..=16_usize)).min(input.len());
            input.drain(start..end);
        }
        3 if !input.is_empty() => {
            let start = rng.random_range(0..input.len());
            let end = (start + rng.random_range(1..=32_usize)).min(input.len());
            let copy = input[start..end].to_vec();
            let at = position(rng, input);
            input.splice(at..at, copy);
        }
        4 => {
            let other = &seeds[rng.random_range(0..seeds.len())];
            if !other.is_empty() {
                let start = rng.random_range(0..other.len());
                let end = (start + rng.random_range(1..=64_usize)).min(other.len());
                let at = position(rng, input);
                input.splice(at..at, other[start..end].iter().copied());
            }
        }
        5 => {
            let at = position(rng, input);
            input.truncate(at);
        }
        6 if !input.is_empty() => {
            // Replace a run of bytes with an interesting number in little-endian.
            let value: u64 =
                [0, 1, u64::MAX, u64::MAX / 2 + 1, 255, 65_536][rng.random_range(0..6)];
            let at = rng.random_range(0..input.len());
            for (offset, byte) in value.to_le_bytes().iter().enumerate() {
                if let Some(slot) = input.get_mut(at + offset) {
                    *slot = *byte;
                }
            }
        }
        _ => {
            let token = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
            let at = position(rng, input);
            input.splice(at..at, token.iter().copied());
        }
    }
}

/// Runs `target` on mutants of `seeds` and on random bytes for [`seconds`]. Panics, with
/// the input in hex, if the target panics or one input takes over 10 seconds.
fn drive(name: &str, seeds: &[Vec<u8>], target: fn(&[u8])) {
    let mut rng = veil_testkit::seeded_rng(seed());
    let budget = seconds();
    let start = Instant::now();
    let mut executed = 0_u64;
    let mut slowest = Duration::ZERO;
    while start.elapsed() < budget {
        let mut input = if rng.random_range(0..10_u32) == 0 {
            (0..rng.random_range(0..256_usize))
                .map(|_| rng.random())
                .collect()
        } else {
            seeds[rng.random_range(0..seeds.len())].clone()
        };
        for _ in 0..rng.random_range(1..=8_u32) {
            mutate(&mut input, seeds, &mut rng);
        }
        let began = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
        let took = began.elapsed();
        slowest = slowest.max(took);
        let hex: String = input.iter().map(|byte| format!("{byte:02x}")).collect();
        assert!(outcome.is_ok(), "{name} panicked on input {hex}");
        assert!(
            took < Duration::from_secs(10),
            "{name} took {took:?} on input {hex}"
        );
        executed += 1;
    }
    eprintln!(
        "fuzz {name}: {executed} inputs in {:.1} s, slowest {slowest:?}, no panic",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn job_parser_never_panics() {
    let seeds = vec![
        config("quickstart.toml"),
        b"[source]\npath = \"x\"\n".to_vec(),
    ];
    drive("job_parser", &seeds, targets::job_parser);
}

#[test]
fn purposes_never_panic() {
    drive("purposes", &[config("purposes.toml")], targets::purposes);
}

#[test]
fn ldp_descriptors_never_panic() {
    let mut seeds = vec![config("ldp-country.toml")];
    for protocol in targets::report_protocols() {
        seeds.push(
            toml::to_string(&protocol.descriptor())
                .unwrap()
                .into_bytes(),
        );
    }
    drive("ldp_descriptor", &seeds, targets::ldp_descriptor);
}

#[test]
fn ldp_reports_never_panic() {
    let mut rng = veil_testkit::seeded_rng(5);
    let mut seeds = Vec::new();
    for protocol in targets::report_protocols() {
        for index in 0..4 {
            let report = match protocol.domain() {
                veil_ldp::Domain::Numeric(_) => {
                    protocol.randomize_number(0.25, &mut rng).unwrap().report
                }
                veil_ldp::Domain::Open { .. } => protocol.randomize_value("a", &mut rng).unwrap(),
                _ => protocol.randomize_index(index, &mut rng).unwrap(),
            };
            seeds.push(report.encode());
        }
    }
    drive("ldp_report", &seeds, targets::ldp_report);
}
