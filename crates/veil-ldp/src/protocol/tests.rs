use super::*;
use alloc::string::ToString;
use alloc::vec;

fn epsilon(value: f64) -> Epsilon {
    Epsilon::new(value).unwrap()
}

fn config(oracle: OracleName, eps: f64, domain: Domain) -> ProtocolConfig {
    ProtocolConfig {
        oracle,
        epsilon: epsilon(eps),
        domain,
        longitudinal: Longitudinal::Independent,
    }
}

fn protocol(oracle: OracleName, eps: f64, domain: Domain) -> Protocol {
    Protocol::new(config(oracle, eps, domain)).unwrap()
}

fn open() -> Domain {
    Domain::Open {
        hashes: 16,
        width: 256,
        seed: 99,
        candidates: vec!["a".into(), "b".into()],
    }
}

fn numeric() -> Domain {
    Domain::Numeric(Bounds::new(0.0, 100.0).unwrap())
}

#[test]
fn auto_picks_the_least_variance_oracle() {
    let check = |size: u32, eps: f64, expect: OracleName| {
        assert_eq!(
            choose_oracle(size, epsilon(eps)).unwrap(),
            expect,
            "d={size} ε={eps}"
        );
    };
    check(2, 1.0, OracleName::Grr);
    check(10, 1.0, OracleName::Grr);
    check(11, 1.0, OracleName::Oue);
    check(64, 1.0, OracleName::Oue);
    check(1024, 1.0, OracleName::Olh);
    check(64, 4.0, OracleName::Grr);
    check(1024, 4.0, OracleName::Olh);
    check(1 << 20, 1.0, OracleName::Hadamard);
    assert_eq!(
        protocol(OracleName::Auto, 1.0, numeric()).oracle().name(),
        OracleName::Hybrid
    );
    assert_eq!(
        protocol(OracleName::Auto, 1.0, open()).oracle().name(),
        OracleName::Hcms
    );
}

#[test]
fn every_oracle_round_trips_through_its_descriptor() {
    let cases = [
        (OracleName::Grr, Domain::Size(10)),
        (
            OracleName::Oue,
            Domain::Values(vec!["fr".into(), "de".into(), "it".into()]),
        ),
        (OracleName::Olh, Domain::Size(1024)),
        (OracleName::Hadamard, Domain::Size(1000)),
        (OracleName::Hcms, open()),
        (OracleName::Duchi, numeric()),
        (OracleName::Piecewise, numeric()),
        (OracleName::Hybrid, numeric()),
    ];
    for (oracle, domain) in cases {
        let built = protocol(oracle, 1.5, domain);
        let descriptor = built.descriptor();
        let loaded = Protocol::from_descriptor(&descriptor).unwrap();
        assert_eq!(loaded.id(), built.id(), "{oracle}");
        assert_eq!(descriptor.oracle, oracle.as_str());
        assert!(descriptor.derived.epsilon_actual <= 1.5);
        assert!(descriptor.id.starts_with("sha256:"));
        assert_eq!(
            descriptor.id[7..23],
            alloc::format!("{:016x}", built.id().short())
        );
    }
}

#[test]
fn ids_change_with_every_parameter() {
    let base = protocol(OracleName::Grr, 1.0, Domain::Size(10)).id();
    assert_ne!(base, protocol(OracleName::Grr, 1.1, Domain::Size(10)).id());
    assert_ne!(base, protocol(OracleName::Grr, 1.0, Domain::Size(11)).id());
    assert_ne!(base, protocol(OracleName::Oue, 1.0, Domain::Size(10)).id());
    let memoized = Protocol::new(ProtocolConfig {
        longitudinal: Longitudinal::Memoize,
        ..config(OracleName::Grr, 1.0, Domain::Size(10))
    })
    .unwrap();
    assert_ne!(base, memoized.id());
    assert_eq!(base, protocol(OracleName::Grr, 1.0, Domain::Size(10)).id());
}

#[test]
fn edited_descriptors_are_refused_naming_the_field() {
    let built = protocol(OracleName::Olh, 1.0, Domain::Size(100));
    let mut edited = built.descriptor();
    edited.derived.keep = Some(Prob64::from_numerator(u64::MAX - 5));
    let error = Protocol::from_descriptor(&edited).unwrap_err();
    assert!(
        matches!(&error, LdpError::Descriptor { field, .. } if field == "derived.keep"),
        "{error}"
    );
    let mut edited = built.descriptor();
    edited.epsilon = 2.0;
    let error = Protocol::from_descriptor(&edited).unwrap_err();
    assert!(matches!(error, LdpError::Descriptor { .. }), "{error}");
    let mut edited = built.descriptor();
    edited.id = "sha256:00".to_string();
    let error = Protocol::from_descriptor(&edited).unwrap_err();
    assert!(matches!(&error, LdpError::Descriptor { field, .. } if field == "id"));
    let mut edited = built.descriptor();
    edited.domain.lower = Some(1.0);
    assert!(Protocol::from_descriptor(&edited).is_err());
    let mut edited = built.descriptor();
    edited.version = 2;
    assert!(Protocol::from_descriptor(&edited).is_err());
}

#[test]
fn edited_derived_fields_are_named_in_words_not_debug_text() {
    let built = protocol(OracleName::Olh, 1.0, Domain::Size(100));
    let keep = built.descriptor().derived.keep.unwrap();
    let mut edited = built.descriptor();
    edited.derived.keep = Some(Prob64::from_numerator(5));
    let message = Protocol::from_descriptor(&edited).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "protocol descriptor: derived.keep: is 5/2^64, but epsilon and the domain give {keep}; regenerate the descriptor instead of editing it"
        )
    );
    assert!(
        !message.contains("Some(") && !message.contains("Prob64"),
        "{message}"
    );
    edited.derived.keep = None;
    let message = Protocol::from_descriptor(&edited).unwrap_err().to_string();
    assert!(
        message.contains(&format!(
            "derived.keep: is missing, but epsilon and the domain give {keep}"
        )),
        "{message}"
    );
    let mut edited = built.descriptor();
    edited.derived.cells = Some(7);
    let message = Protocol::from_descriptor(&edited).unwrap_err().to_string();
    assert!(
        message.contains("derived.cells: does not apply to oracle olh;"),
        "{message}"
    );
    assert!(!message.contains("Some("), "{message}");
}

#[test]
fn bad_parameters_give_clear_errors() {
    let error = Protocol::new(config(OracleName::Grr, 1.0, Domain::Size(1))).unwrap_err();
    assert!(error.to_string().contains("at least 2"), "{error}");
    let error = Protocol::new(config(OracleName::Grr, 50.0, Domain::Size(10))).unwrap_err();
    assert!(matches!(error, LdpError::Epsilon { .. }));
    let error = Protocol::new(config(
        OracleName::Grr,
        1.0,
        Domain::Values(vec!["a".into(), "b".into(), "a".into()]),
    ))
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("(position 2) repeats position 0"),
        "{error}"
    );
    let error = Protocol::new(config(OracleName::Duchi, 1.0, Domain::Size(10))).unwrap_err();
    assert!(error.to_string().contains("numeric"), "{error}");
    let error = Protocol::new(config(OracleName::Grr, 1.0, numeric())).unwrap_err();
    assert!(matches!(error, LdpError::Option { .. }));
    let error = Protocol::new(config(
        OracleName::Piecewise,
        1.0,
        Domain::Numeric(Bounds::new(3.0, 3.0).unwrap()),
    ))
    .unwrap_err();
    assert!(matches!(error, LdpError::Range { .. }));
    let error = Protocol::new(ProtocolConfig {
        longitudinal: Longitudinal::Memoize,
        ..config(OracleName::Hybrid, 1.0, numeric())
    })
    .unwrap_err();
    assert!(matches!(
        error,
        LdpError::Option {
            option: "memoize",
            ..
        }
    ));
    assert!("laplace".parse::<OracleName>().is_err());
}

#[test]
fn out_of_domain_values_are_errors_that_do_not_repeat_the_value() {
    let built = protocol(
        OracleName::Grr,
        1.0,
        Domain::Values(vec!["fr".into(), "de".into()]),
    );
    let mut rng = veil_testkit::seeded_rng(20);
    let error = built
        .randomize_value("secret-country", &mut rng)
        .unwrap_err();
    assert_eq!(error, LdpError::UnknownValue { size: 2 });
    assert!(!error.to_string().contains("secret"));
    assert!(matches!(
        built.randomize_index(2, &mut rng),
        Err(LdpError::OutOfDomain { index: 2, size: 2 })
    ));
    assert!(matches!(
        built.randomize_number(1.0, &mut rng),
        Err(LdpError::WrongInput { .. })
    ));
    let report = built.randomize_value("de", &mut rng).unwrap();
    built.check(&report).unwrap();
}

#[test]
fn reports_of_another_protocol_are_refused() {
    let mine = protocol(OracleName::Grr, 1.0, Domain::Size(10));
    let theirs = protocol(OracleName::Grr, 2.0, Domain::Size(10));
    let mut rng = veil_testkit::seeded_rng(21);
    let report = theirs.randomize_index(3, &mut rng).unwrap();
    assert!(matches!(
        mine.check(&report),
        Err(LdpError::WrongProtocol { .. })
    ));
    let mut forged = mine.randomize_index(3, &mut rng).unwrap();
    forged.payload = Payload::Grr { value: 10 };
    assert!(matches!(mine.check(&forged), Err(LdpError::Corrupt { .. })));
    forged.payload = Payload::Hadamard { column: 1 };
    assert!(matches!(mine.check(&forged), Err(LdpError::Corrupt { .. })));
}

#[test]
fn numbers_are_clamped_and_counted() {
    let built = protocol(OracleName::Hybrid, 2.0, numeric());
    let mut rng = veil_testkit::seeded_rng(22);
    assert!(built.randomize_number(150.0, &mut rng).unwrap().clamped);
    assert!(!built.randomize_number(50.0, &mut rng).unwrap().clamped);
    assert_eq!(
        built.randomize_number(f64::NAN, &mut rng),
        Err(LdpError::NotANumber)
    );
}

#[test]
fn memoised_reports_repeat() {
    let built = Protocol::new(ProtocolConfig {
        longitudinal: Longitudinal::Memoize,
        ..config(OracleName::Olh, 1.0, Domain::Size(100))
    })
    .unwrap();
    let mut memo = crate::PermanentResponses::new(&built);
    let mut rng = veil_testkit::seeded_rng(23);
    let first = memo.report_index(&built, 7, &mut rng).unwrap();
    for _ in 0..10 {
        assert_eq!(memo.report_index(&built, 7, &mut rng).unwrap(), first);
    }
    assert!(memo.has_index(7) && !memo.has_index(8));
    let other = memo.report_index(&built, 8, &mut rng).unwrap();
    assert_ne!(other, first);
    assert_eq!(memo.len(), 2);
    assert!(memo.has_index(8) && !memo.has_value("8"));
    assert_eq!(memo.protocol(), built.id().short());
    let another = protocol(OracleName::Olh, 1.0, Domain::Size(100));
    assert!(matches!(
        memo.report_index(&another, 7, &mut rng),
        Err(LdpError::WrongProtocol { .. })
    ));
    assert!(
        built
            .descriptor()
            .longitudinal
            .repeated_reports
            .contains("once")
    );
}
