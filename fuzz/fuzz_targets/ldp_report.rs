//! LDP reports: any bytes must decode to a report or an error, and a decoded report must
//! encode back to the same bytes; the server must check and count (or refuse) any bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use veil_core::{Bounds, Epsilon};
use veil_ldp::server::Aggregator;
use veil_ldp::{Domain, Longitudinal, OracleName, Protocol, ProtocolConfig, Report};

fn protocols() -> &'static Vec<Protocol> {
    static PROTOCOLS: OnceLock<Vec<Protocol>> = OnceLock::new();
    PROTOCOLS.get_or_init(|| {
        let epsilon = Epsilon::new(1.0).expect("valid");
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
            (OracleName::Duchi, Domain::Numeric(Bounds::new(0.0, 1.0).expect("valid"))),
            (OracleName::Piecewise, Domain::Numeric(Bounds::new(0.0, 1.0).expect("valid"))),
            (OracleName::Hybrid, Domain::Numeric(Bounds::new(0.0, 1.0).expect("valid"))),
        ]
        .into_iter()
        .map(|(oracle, domain)| {
            Protocol::new(ProtocolConfig {
                oracle,
                epsilon,
                domain,
                longitudinal: Longitudinal::Independent,
            })
            .expect("valid protocol")
        })
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = Report::decode(data) {
        let again = Report::decode(&report.encode()).expect("an encoded report decodes");
        assert_eq!(again, report);
    }
    for protocol in protocols() {
        // A report in another protocol's name is counted under this one's id: rewrite the
        // tag so that the payload is checked too.
        let mut tagged = data.to_vec();
        if tagged.len() >= 9 {
            tagged[1..9].copy_from_slice(&protocol.id().short().to_le_bytes());
        }
        let mut aggregator = Aggregator::new(protocol);
        let _ = aggregator.add_encoded(&tagged);
        let _ = aggregator.finish();
    }
});
