use super::*;

#[test]
fn gaussian_rdp_is_alpha_rho() {
    let profile = MechanismProfile::Gaussian {
        sigma_over_sensitivity: 2.0,
    };
    for alpha in [1.5, 2.0, 10.0] {
        let value = rdp_epsilon(&profile, alpha).unwrap();
        assert!(value >= alpha / 8.0 && value <= alpha / 8.0 * (1.0 + 1e-9));
    }
}

#[test]
fn subsampled_gaussian_at_full_rate_is_the_gaussian() {
    let full = MechanismProfile::SubsampledGaussian {
        sigma_over_sensitivity: 1.5,
        sampling_rate: 1.0,
    };
    let gaussian = MechanismProfile::Gaussian {
        sigma_over_sensitivity: 1.5,
    };
    // The binomial expansion with q = 1 keeps only k = α: exp((α² - α)/2σ²).
    for alpha in [2.0, 5.0, 32.0] {
        let sum = subsampled_gaussian(1.5, 1.0 - 1e-12, alpha);
        let closed = rdp_epsilon(&gaussian, alpha).unwrap();
        assert!((sum - closed).abs() < 1e-6 * closed, "{sum} vs {closed}");
        assert_eq!(rdp_epsilon(&full, alpha), rdp_epsilon(&gaussian, alpha));
    }
}

#[test]
fn subsampling_reduces_rdp_and_fractional_orders_round_up() {
    let subsampled = MechanismProfile::SubsampledGaussian {
        sigma_over_sensitivity: 1.0,
        sampling_rate: 0.01,
    };
    let gaussian = MechanismProfile::Gaussian {
        sigma_over_sensitivity: 1.0,
    };
    for alpha in [2.0, 8.0, 20.0] {
        assert!(rdp_epsilon(&subsampled, alpha) < rdp_epsilon(&gaussian, alpha));
    }
    // D_α grows with α, so a fractional order may use the next integer.
    assert_eq!(rdp_epsilon(&subsampled, 2.5), rdp_epsilon(&subsampled, 3.0));
    // Reference: A_2 = 1 + q²(e^(1/σ²) - 1), so RDP(2) = ln(1 + 1e-4·(e - 1)).
    let exact = (1e-4 * (1.0_f64.exp() - 1.0)).ln_1p();
    let value = rdp_epsilon(&subsampled, 2.0).unwrap();
    assert!(
        value >= exact && value < exact * (1.0 + 1e-9),
        "{value} vs {exact}"
    );
}

#[test]
fn pure_dp_curves_stay_below_epsilon_and_laplace_below_randomized_response() {
    let laplace = MechanismProfile::Laplace {
        scale_over_sensitivity: 1.0,
    };
    let response = MechanismProfile::RandomizedResponse { epsilon: 1.0 };
    for alpha in orders() {
        let laplace_value = rdp_epsilon(&laplace, alpha).unwrap();
        let response_value = rdp_epsilon(&response, alpha).unwrap();
        assert!(laplace_value <= 1.0 + 1e-9 && response_value <= 1.0 + 1e-9);
        assert!(
            laplace_value <= response_value * (1.0 + 1e-9),
            "α = {alpha}"
        );
    }
    // Mironov (2017): Laplace RDP at α = 2 with λ = 1 is ln(2/3·e + 1/3·e^-2).
    let exact = (2.0 / 3.0 * 1.0_f64.exp() + 1.0 / 3.0 * (-2.0_f64).exp()).ln();
    let value = rdp_epsilon(&laplace, 2.0).unwrap();
    assert!((value - exact).abs() < 1e-9);
}

#[test]
fn conversion_is_never_below_the_zcdp_conversion_by_much_and_needs_delta() {
    // For a Gaussian, RDP(α) = αρ, and minimising the improved conversion over α is
    // exactly the CKS conversion of ρ; the grid minimum is slightly above it.
    let orders = orders();
    let rho = 0.05;
    let curve: Vec<f64> = orders.iter().map(|a| a * rho).collect();
    let from_rdp = rdp_to_epsilon(&curve, &orders, 1e-6);
    let from_zcdp = veil_core::calibrate::rho_to_epsilon(
        veil_core::Rho::new(rho).unwrap(),
        veil_core::Delta::new(1e-6).unwrap(),
    )
    .unwrap()
    .get();
    assert!(
        from_rdp >= from_zcdp * (1.0 - 1e-9),
        "{from_rdp} vs {from_zcdp}"
    );
    assert!(from_rdp <= from_zcdp * 1.001, "{from_rdp} vs {from_zcdp}");
    let approx = MechanismProfile::Guarantee(PrivacyLoss::Approx(
        veil_core::Epsilon::new(1.0).unwrap(),
        veil_core::Delta::new(1e-6).unwrap(),
    ));
    assert!(rdp_curve(&[Component::new(approx, 1)], &orders).is_err());
}
