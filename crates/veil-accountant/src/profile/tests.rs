use super::*;

fn parse(text: &str) -> Component {
    text.parse().unwrap()
}

#[test]
fn specs_parse_with_sensitivity_ratios_rounded_down() {
    let component = parse("gaussian:sigma=2,sensitivity=1,times=100");
    assert_eq!(component.times, 100);
    assert_eq!(
        component.profile,
        MechanismProfile::Gaussian {
            sigma_over_sensitivity: 2.0
        }
    );
    let component = parse("gaussian:sigma=1,sensitivity=3");
    let MechanismProfile::Gaussian {
        sigma_over_sensitivity,
    } = component.profile
    else {
        panic!("not a gaussian")
    };
    assert!(sigma_over_sensitivity * 3.0 <= 1.0);
    let component = parse("laplace:epsilon=0.1,times=10");
    assert!(component.profile.pure_epsilon().unwrap() >= 0.1);
    let component = parse("subsampled-gaussian:sigma=1.1,rate=0.01,times=10000");
    assert_eq!(component.times, 10_000);
    assert_eq!(parse("approx:epsilon=1,delta=1e-7").times, 1);
}

#[test]
fn display_round_trips() {
    for text in [
        "laplace:scale=2.5",
        "discrete-laplace:scale=10,sensitivity=3",
        "gaussian:sigma=0.1",
        "discrete-gaussian:sigma=8.25,sensitivity=1",
        "randomized-response:epsilon=1.5",
        "subsampled-gaussian:sigma=1.1,rate=0.01",
        "pure:epsilon=1",
        "approx:epsilon=1,delta=0.0000001",
        "zcdp:rho=0.125",
    ] {
        let profile: MechanismProfile = text.parse().unwrap();
        let again: MechanismProfile = profile.to_string().parse().unwrap();
        assert_eq!(profile, again, "{text}");
    }
}

#[test]
fn specs_of_extreme_numbers_are_short_and_read_back_exactly() {
    for text in [
        "laplace:scale=1e308",
        "pure:epsilon=2.2e-308",
        "approx:epsilon=1,delta=1e-6",
        "gaussian:sigma=123456789.5",
        "discrete-gaussian:sigma=5e-324,sensitivity=1",
    ] {
        let profile: MechanismProfile = text.parse().unwrap();
        let shown = profile.to_string();
        assert!(shown.len() < 60, "{shown}");
        assert_eq!(
            profile,
            shown.parse::<MechanismProfile>().unwrap(),
            "{text}"
        );
    }
    let profile: MechanismProfile = "pure:epsilon=2.2e-308".parse().unwrap();
    assert_eq!(profile.to_string(), "pure:epsilon=2.2e-308");
}

#[test]
fn bad_specs_name_the_problem() {
    let message = |text: &str| text.parse::<Component>().unwrap_err().to_string();
    assert!(message("gaussian").contains("NAME:KEY=VALUE"));
    assert!(message("gauss:sigma=1").contains("unknown mechanism"));
    assert!(message("gaussian:sigma=-1").contains("finite and > 0"));
    assert!(message("gaussian:scale=1").contains("takes sigma"));
    assert!(message("discrete-gaussian:sigma=1,sensitivity=1.5").contains("whole number"));
    assert!(message("subsampled-gaussian:sigma=1,rate=2").contains("(0, 1]"));
    assert!(message("laplace:epsilon=1,times=2.5").contains("times"));
    assert!(message("gaussian:sigma=1,sigma=2").contains("twice"));
    assert!(
        "gaussian:sigma=1,times=3"
            .parse::<MechanismProfile>()
            .is_err()
    );
}

#[test]
fn measures_of_each_mechanism() {
    let laplace = parse("laplace:scale=4,sensitivity=2").profile;
    assert_eq!(laplace.pure_epsilon(), Some(0.5));
    assert!(laplace.rho().unwrap() >= 0.125);
    let discrete = parse("discrete-gaussian:sigma=2,sensitivity=1").profile;
    assert!(discrete.rho().unwrap() >= 0.125 && discrete.rho().unwrap() < 0.125 + 1e-12);
    assert_eq!(discrete.pure_epsilon(), None);
    assert!(
        parse("subsampled-gaussian:sigma=1,rate=0.5")
            .profile
            .rho()
            .is_none()
    );
    assert!(
        !parse("subsampled-gaussian:sigma=1,rate=0.5")
            .profile
            .is_symmetric()
    );
    assert!(
        parse("discrete-laplace:scale=1,sensitivity=0")
            .profile
            .is_free()
    );
}

#[test]
fn veil_core_mechanisms_describe_themselves() {
    use veil_core::mechanism::{GaussianMechanism, LaplaceMechanism};
    use veil_core::{L1Sensitivity, L2Sensitivity};
    let laplace =
        LaplaceMechanism::new(L1Sensitivity::integer(3), Epsilon::new(0.3).unwrap()).unwrap();
    let profile = MechanismProfile::from(&laplace);
    let epsilon = profile.pure_epsilon().unwrap();
    assert!((0.3..0.3 * (1.0 + 1e-9)).contains(&epsilon), "{epsilon}");
    let gaussian =
        GaussianMechanism::new_zcdp(L2Sensitivity::integer(2), Rho::new(0.125).unwrap()).unwrap();
    let profile = MechanismProfile::from(&gaussian);
    let rho = profile.rho().unwrap();
    assert!((0.125..0.125 * (1.0 + 1e-9)).contains(&rho), "{rho}");
    assert!(matches!(
        profile,
        MechanismProfile::DiscreteGaussian { sensitivity: 2, .. }
    ));
}
