//! The bodies of the fuzz targets, one function per target. `fuzz_targets/*.rs` hand them
//! libFuzzer's inputs; the stable test `crates/veil-cli/tests/it/fuzz.rs` includes this
//! file and hands them mutated and random bytes, so the same checks run without a nightly
//! toolchain. Each function returns normally for every input; a panic is a bug.

use std::sync::OnceLock;

use veil_core::{Bounds, Epsilon};
use veil_ldp::server::Aggregator;
use veil_ldp::{
    Domain, Longitudinal, OracleName, Protocol, ProtocolConfig, ProtocolDescriptor, Report,
};

/// Job files: any text gives a job or a configuration error.
pub fn job_parser(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = veil_cli::parse::job(text);
    }
}

/// Purposes registries: any text gives a registry or a configuration error.
pub fn purposes(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = veil_cli::parse::purposes(text);
    }
}

/// LDP protocol descriptors: any TOML text gives a protocol or an error. A protocol that
/// loads describes itself again identically.
pub fn ldp_descriptor(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(descriptor) = toml::from_str::<ProtocolDescriptor>(text) else {
        return;
    };
    let Ok(protocol) = Protocol::from_descriptor(&descriptor) else {
        return;
    };
    let again = Protocol::from_descriptor(&protocol.descriptor())
        .expect("a loaded protocol's own descriptor loads");
    assert_eq!(again.id(), protocol.id());
}

/// LDP reports: any bytes decode to a report or an error, and a decoded report encodes
/// back to itself; the server checks and counts (or refuses) any bytes under every oracle.
pub fn ldp_report(data: &[u8]) {
    if let Ok(report) = Report::decode(data) {
        let again = Report::decode(&report.encode()).expect("an encoded report decodes");
        assert_eq!(again, report);
    }
    for protocol in report_protocols() {
        // A report in another protocol's name is refused by its tag alone: rewrite the tag
        // so that the payload is checked too.
        let mut tagged = data.to_vec();
        if tagged.len() >= 9 {
            tagged[1..9].copy_from_slice(&protocol.id().short().to_le_bytes());
        }
        let mut aggregator = Aggregator::new(protocol);
        let _ = aggregator.add_encoded(&tagged);
        let _ = aggregator.finish();
    }
}

/// One protocol per oracle, for [`ldp_report`].
pub fn report_protocols() -> &'static [Protocol] {
    static PROTOCOLS: OnceLock<Vec<Protocol>> = OnceLock::new();
    PROTOCOLS.get_or_init(|| {
        let epsilon = Epsilon::new(1.0).expect("1 is a valid epsilon");
        let unit = || Domain::Numeric(Bounds::new(0.0, 1.0).expect("[0, 1] is valid"));
        [
            (OracleName::Grr, Domain::Size(8)),
            (OracleName::Oue, Domain::Size(64)),
            (OracleName::Olh, Domain::Size(64)),
            (OracleName::Hadamard, Domain::Size(64)),
            (
                OracleName::Hcms,
                Domain::Open {
                    hashes: 4,
                    width: 16,
                    seed: 1,
                    candidates: vec!["a".into()],
                },
            ),
            (OracleName::Duchi, unit()),
            (OracleName::Piecewise, unit()),
            (OracleName::Hybrid, unit()),
        ]
        .into_iter()
        .map(|(oracle, domain)| {
            Protocol::new(ProtocolConfig {
                oracle,
                epsilon,
                domain,
                longitudinal: Longitudinal::Independent,
            })
            .expect("a valid protocol")
        })
        .collect()
    })
}
