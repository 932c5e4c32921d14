use veil_core::Epsilon;
use veil_ldp::{OracleName, ProtocolConfig};

use super::*;

/// A descriptor's JSON text.
fn descriptor(oracle: OracleName, epsilon: f64, domain: Domain, memoize: bool) -> String {
    let protocol = Protocol::new(ProtocolConfig {
        oracle,
        epsilon: Epsilon::new(epsilon).unwrap(),
        domain,
        longitudinal: if memoize {
            Longitudinal::Memoize
        } else {
            Longitudinal::Independent
        },
    })
    .unwrap();
    serde_json::to_string(&protocol.descriptor()).unwrap()
}

fn countries() -> Domain {
    Domain::Values(["FR", "DE", "IT", "ES"].map(String::from).to_vec())
}

#[test]
fn reports_are_the_bytes_the_server_reads() {
    for oracle in [
        OracleName::Grr,
        OracleName::Oue,
        OracleName::Olh,
        OracleName::Hadamard,
    ] {
        let text = descriptor(oracle, 1.0, countries(), false);
        let protocol = Protocol::from_descriptor(&parse_descriptor(&text).unwrap()).unwrap();
        let mut client = Client::new(&text, None, 100.0).unwrap();
        // Same generator, same draws: the client's bytes are the encoding of exactly the
        // report `veil ldp simulate` makes.
        let mut ours = veil_testkit::seeded_rng(9);
        let mut reference = veil_testkit::seeded_rng(9);
        for value in ["FR", "ES", "DE"] {
            let bytes = client.randomize_value(value, &mut ours).unwrap();
            let expected = protocol.randomize_value(value, &mut reference).unwrap();
            assert_eq!(bytes, expected.encode(), "{oracle:?}");
            assert_eq!(Report::decode(&bytes).unwrap(), expected);
        }
    }
    let numeric = Domain::Numeric(veil_core::Bounds::new(0.0, 100.0).unwrap());
    let text = descriptor(OracleName::Hybrid, 2.0, numeric, false);
    let protocol = Protocol::from_descriptor(&parse_descriptor(&text).unwrap()).unwrap();
    let mut client = Client::new(&text, None, 100.0).unwrap();
    let (mut ours, mut reference) = (veil_testkit::seeded_rng(4), veil_testkit::seeded_rng(4));
    let bytes = client.randomize_number(42.5, &mut ours).unwrap();
    let expected = protocol
        .randomize_number(42.5, &mut reference)
        .unwrap()
        .report;
    assert_eq!(bytes, expected.encode());
}

#[test]
fn json_descriptors_load_and_toml_ones_need_the_feature() {
    let json = descriptor(OracleName::Olh, 1.0, countries(), false);
    let parsed: ProtocolDescriptor = serde_json::from_str(&json).unwrap();
    let from_json = Client::new(&json, None, 1.0).unwrap();
    assert_eq!(
        from_json.protocol().id(),
        Protocol::from_descriptor(&parsed).unwrap().id()
    );
    let toml_text = toml::to_string(&parsed).unwrap();
    let shipped = include_str!("../../../../configs/ldp-country.toml");
    if cfg!(feature = "toml") {
        let from_toml = Client::new(&toml_text, None, 1.0).unwrap();
        assert_eq!(from_toml.protocol().id(), from_json.protocol().id());
        assert!(Client::new(shipped, None, 1.0).is_ok());
    } else {
        let error = Client::new(shipped, None, 1.0).unwrap_err().to_string();
        assert!(error.contains("give the JSON form"), "{error}");
    }
    // Edited or broken descriptors are refused with the field or the syntax error named.
    let edited = json.replace("\"epsilon\":1.0", "\"epsilon\":3.0");
    assert_ne!(edited, json);
    let error = Client::new(&edited, None, 1.0).unwrap_err().to_string();
    assert!(
        error.contains("derived.") || error.contains("id"),
        "{error}"
    );
    let error = Client::new("{\"format\": 3", None, 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("the protocol descriptor cannot be read as JSON"),
        "{error}"
    );
}

#[test]
fn the_lifetime_cap_refuses_the_report_that_would_pass_it() {
    let text = descriptor(OracleName::Grr, 0.5, countries(), false);
    let mut client = Client::new(&text, None, 1.2).unwrap();
    let mut rng = veil_testkit::seeded_rng(1);
    client.randomize_value("FR", &mut rng).unwrap();
    client.randomize_value("FR", &mut rng).unwrap();
    assert!((client.spent_epsilon() - 1.0).abs() < 1e-12);
    let error = client.randomize_value("FR", &mut rng).unwrap_err();
    assert!(matches!(error, WebError::Exhausted { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("spent epsilon = 1 of its lifetime cap of 1.2"),
        "{error}"
    );
    // The refusal charged nothing, and the cap survives a reload, at the smaller value.
    let state = client.state();
    let mut reloaded = Client::new(&text, Some(&state), 5.0).unwrap();
    assert!((reloaded.lifetime_epsilon() - 1.2).abs() < 1e-12);
    assert!(reloaded.randomize_value("DE", &mut rng).is_err());
    let mut lowered = Client::new(&text, Some(&state), 0.4).unwrap();
    assert!((lowered.lifetime_epsilon() - 0.4).abs() < 1e-12);
    assert!(lowered.randomize_value("DE", &mut rng).is_err());
    // A cap exactly at a multiple of epsilon allows that many reports.
    let mut exact = Client::new(&text, None, 1.5).unwrap();
    for _ in 0..3 {
        exact.randomize_index(2, &mut rng).unwrap();
    }
    assert!(exact.randomize_index(2, &mut rng).is_err());
    assert!(Client::new(&text, None, 0.0).is_err());
    assert!(Client::new(&text, None, f64::NAN).is_err());
}

#[test]
fn memoised_values_are_resent_for_free_and_new_ones_charged() {
    let text = descriptor(OracleName::Olh, 1.0, countries(), true);
    let mut client = Client::new(&text, None, 2.0).unwrap();
    let mut rng = veil_testkit::seeded_rng(5);
    let first = client.randomize_value("IT", &mut rng).unwrap();
    assert!(client.cost_of_value("IT").abs() < 1e-12);
    assert!((client.cost_of_value("FR") - 1.0).abs() < 1e-12);
    for _ in 0..20 {
        assert_eq!(client.randomize_value("IT", &mut rng).unwrap(), first);
    }
    assert!((client.spent_epsilon() - 1.0).abs() < 1e-12);
    // The permanent answer survives a reload.
    let mut reloaded = Client::new(&text, Some(&client.state()), 2.0).unwrap();
    assert_eq!(reloaded.randomize_value("IT", &mut rng).unwrap(), first);
    reloaded.randomize_value("FR", &mut rng).unwrap();
    // A third distinct value would pass the cap; the two known ones still go out.
    assert!(matches!(
        reloaded.randomize_value("DE", &mut rng),
        Err(WebError::Exhausted { .. })
    ));
    assert_eq!(reloaded.randomize_value("IT", &mut rng).unwrap(), first);
    // A refused value was not memoised: it is refused again, not resent for free.
    assert!(reloaded.randomize_value("DE", &mut rng).is_err());
}

#[test]
fn bad_input_is_refused_before_anything_is_charged() {
    let text = descriptor(OracleName::Grr, 1.0, countries(), false);
    let mut client = Client::new(&text, None, 1.0).unwrap();
    let mut rng = veil_testkit::seeded_rng(2);
    let error = client.randomize_value("Atlantis", &mut rng).unwrap_err();
    // The value itself is never repeated.
    assert!(!error.to_string().contains("Atlantis"), "{error}");
    assert!(client.randomize_index(4, &mut rng).is_err());
    assert!(client.randomize_number(1.0, &mut rng).is_err());
    assert!(client.spent_epsilon().abs() < 1e-12);
    client.randomize_index(3, &mut rng).unwrap();
    let numeric = Domain::Numeric(veil_core::Bounds::new(0.0, 1.0).unwrap());
    let text = descriptor(OracleName::Duchi, 1.0, numeric, false);
    let mut client = Client::new(&text, None, 1.0).unwrap();
    assert!(client.randomize_number(f64::NAN, &mut rng).is_err());
    assert!(client.randomize_value("0.5", &mut rng).is_err());
    assert!(client.spent_epsilon().abs() < 1e-12);
}

#[test]
fn stored_state_of_another_protocol_or_form_is_refused() {
    let text = descriptor(OracleName::Grr, 1.0, countries(), false);
    let other = descriptor(OracleName::Grr, 2.0, countries(), false);
    let mut client = Client::new(&other, None, 10.0).unwrap();
    client
        .randomize_value("FR", &mut veil_testkit::seeded_rng(3))
        .unwrap();
    let error = Client::new(&text, Some(&client.state()), 10.0).unwrap_err();
    assert!(error.to_string().contains("belongs to protocol"), "{error}");
    for broken in [
        "",
        "{}",
        "not json",
        "{\"format\":\"veil-ldp-device\",\"version\":9}",
    ] {
        assert!(
            matches!(
                Client::new(&text, Some(broken), 10.0),
                Err(WebError::State { .. })
            ),
            "{broken}"
        );
    }
    // Memoised state loaded under an independent protocol, and the reverse, is refused.
    let memoizing = descriptor(OracleName::Grr, 1.0, countries(), true);
    let fresh = Client::new(&memoizing, None, 10.0).unwrap().state();
    let tampered = fresh.replace(
        &Client::new(&memoizing, None, 1.0)
            .unwrap()
            .protocol()
            .id()
            .to_string(),
        &Client::new(&text, None, 1.0)
            .unwrap()
            .protocol()
            .id()
            .to_string(),
    );
    assert!(Client::new(&text, Some(&tampered), 10.0).is_err());
}

#[test]
fn reports_are_described_in_words() {
    let mut rng = veil_testkit::seeded_rng(8);
    let text = descriptor(OracleName::Grr, 8.0, countries(), false);
    let mut client = Client::new(&text, None, 100.0).unwrap();
    let report = client.randomize_value("ES", &mut rng).unwrap();
    // At epsilon = 8 the true answer is kept with probability above 0.99.
    assert_eq!(
        describe_report(client.protocol(), &report).unwrap(),
        "the answer \"ES\""
    );
    let olh = descriptor(OracleName::Olh, 1.0, countries(), false);
    let mut olh = Client::new(&olh, None, 100.0).unwrap();
    let report = olh.randomize_value("ES", &mut rng).unwrap();
    assert!(
        describe_report(olh.protocol(), &report)
            .unwrap()
            .starts_with("group ")
    );
    // Another protocol's report is refused.
    assert!(describe_report(client.protocol(), &report).is_err());
    assert!(describe_report(client.protocol(), b"\x01").is_err());
}
