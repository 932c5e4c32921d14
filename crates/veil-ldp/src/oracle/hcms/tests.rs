use super::*;

fn epsilon(value: f64) -> Epsilon {
    Epsilon::new(value).unwrap()
}

#[test]
fn rejects_bad_shapes() {
    assert!(matches!(
        Hcms::new(16, 1000, 1, epsilon(1.0)),
        Err(LdpError::Option { .. })
    ));
    assert!(matches!(
        Hcms::new(0, 1024, 1, epsilon(1.0)),
        Err(LdpError::Option { .. })
    ));
    assert!(Hcms::new(16, 1024, 1, epsilon(1.0)).is_ok());
}

#[test]
fn bits_agree_with_the_hadamard_sign_with_probability_one_minus_q() {
    let hcms = Hcms::new(8, 64, 9, epsilon(1.0)).unwrap();
    let mut rng = veil_testkit::seeded_rng(7);
    let trials = 100_000_u64;
    let mut agree = 0_u64;
    for _ in 0..trials {
        let (index, column, bit) = hcms.randomize(b"paris", &mut rng);
        let sign = Hcms::sign(hcms.bucket(index, b"paris"), column);
        agree += u64::from(bit == sign);
    }
    let q = hcms.flip().to_f64();
    assert!(veil_testkit::binomial_consistent(agree, trials, 1.0 - q));
    assert!(hcms.actual_epsilon() <= 1.0);
}
