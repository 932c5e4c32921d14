//! Prints the tightness table of BENCHMARKS.md: ε of each composition by every method,
//! next to the exact value where a closed form exists and to Google's dp_accounting PLD
//! (0.6.0, recorded: see `tests/it/reference.rs` for how).
//!
//! Then the PLD grid-step table: the 1,000 heterogeneous mechanisms of the `compose`
//! bench at δ = 1e-6 on the automatic grid and on fixed ones (fastest of five runs).
//!
//! `cargo run --release -p veil-accountant --example tightness`

use std::time::Instant;

use veil_accountant::{Component, MechanismProfile, Method, PldOptions, compose, compose_with};
use veil_core::Delta;
use veil_core::special::normal_cdf;

/// 1,000 distinct mechanisms, as a large job might release: Gaussians and discrete
/// Gaussians of many noise levels, Laplace and discrete Laplace counts, randomized
/// responses. Deterministic.
fn heterogeneous() -> Vec<Component> {
    (0..1000_u32)
        .map(|i| {
            let x = f64::from(i);
            let profile = match i % 5 {
                0 => MechanismProfile::Gaussian {
                    sigma_over_sensitivity: 40.0 + x * 0.1,
                },
                1 => MechanismProfile::DiscreteGaussian {
                    sigma: 60.0 + x * 0.05,
                    sensitivity: 1 + u64::from(i % 3),
                },
                2 => MechanismProfile::Laplace {
                    scale_over_sensitivity: 200.0 + x,
                },
                3 => MechanismProfile::DiscreteLaplace {
                    scale: 300.0 + x,
                    sensitivity: 1,
                },
                _ => MechanismProfile::RandomizedResponse {
                    epsilon: 0.002 + x * 1e-6,
                },
            };
            Component::new(profile, 1)
        })
        .collect()
}

/// The exact ε of one Gaussian with σ/Δ = `sigma` at `delta` (Balle and Wang 2018).
fn exact_gaussian(sigma: f64, delta: f64) -> f64 {
    let delta_at = |epsilon: f64| {
        normal_cdf(0.5 / sigma - epsilon * sigma)
            - epsilon.exp() * normal_cdf(-0.5 / sigma - epsilon * sigma)
    };
    let (mut low, mut high) = (0.0, 1000.0);
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if delta_at(middle) > delta {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

/// A row: name, specs, δ, the exact ε if known, dp_accounting's PLD ε if recorded.
type Case = (
    &'static str,
    &'static [&'static str],
    f64,
    Option<f64>,
    Option<f64>,
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cases: [Case; 8] = [
        (
            "100 Gaussians σ=2",
            &["gaussian:sigma=2,times=100"],
            1e-6,
            Some(exact_gaussian(0.2, 1e-6)),
            Some(35.566_343_715_977_15),
        ),
        (
            "100 Gaussians σ=20",
            &["gaussian:sigma=20,times=100"],
            1e-6,
            Some(exact_gaussian(2.0, 1e-6)),
            Some(2.254_084_656_659_037_6),
        ),
        (
            "1000 Gaussians σ=50",
            &["gaussian:sigma=50,times=1000"],
            1e-6,
            Some(exact_gaussian(50.0 / 1000f64.sqrt(), 1e-6)),
            None,
        ),
        (
            "100 Laplace b=10",
            &["laplace:scale=10,times=100"],
            1e-6,
            None,
            Some(4.692_667_438_647_5),
        ),
        (
            "50 discrete Laplace t=10",
            &["discrete-laplace:scale=10,sensitivity=1,times=50"],
            1e-6,
            None,
            Some(3.172_902_734_149_411),
        ),
        (
            "20 Gaussians σ=5 + 30 Laplace b=20",
            &["gaussian:sigma=5,times=20", "laplace:scale=20,times=30"],
            1e-5,
            None,
            Some(4.047_388_681_888_447),
        ),
        (
            "10⁴ subsampled Gaussians σ=1.1 q=0.01",
            &["subsampled-gaussian:sigma=1.1,rate=0.01,times=10000"],
            1e-6,
            None,
            Some(5.806_974_791_241_559),
        ),
        (
            "100 discrete Gaussians σ=40",
            &["discrete-gaussian:sigma=40,sensitivity=1,times=100"],
            1e-6,
            None,
            None,
        ),
    ];
    println!(
        "| composition | δ | exact | dp_accounting PLD | Veil best | Veil PLD | RDP | zCDP | naive sum | sum / best | RDP / best | zCDP / best |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, specs, delta, exact, reference) in cases {
        let components: Vec<Component> =
            specs.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
        let delta_value = Delta::new(delta)?;
        let at = |method| {
            compose(&components, delta_value, method)
                .map(|c| c.epsilon.get())
                .ok()
        };
        let best = at(Method::Best).ok_or("best must compose")?;
        let show = |value: Option<f64>| value.map_or("—".to_string(), |v| format!("{v:.4}"));
        let ratio =
            |value: Option<f64>| value.map_or("—".to_string(), |v| format!("{:.3}", v / best));
        let (pld, rdp, zcdp, basic) = (
            at(Method::Pld),
            at(Method::Rdp),
            at(Method::Zcdp),
            at(Method::Basic),
        );
        println!(
            "| {name} | {delta:e} | {} | {} | {best:.4} | {} | {} | {} | {} | {} | {} | {} |",
            show(exact),
            show(reference),
            show(pld),
            show(rdp),
            show(zcdp),
            show(basic),
            ratio(basic),
            ratio(rdp),
            ratio(zcdp),
        );
    }
    println!();
    println!("| PLD grid step | ε (1,000 mechanisms, δ = 1e-6) | fastest of 5 runs |");
    println!("|---|---|---|");
    let mechanisms = heterogeneous();
    for step in [None, Some(1e-4), Some(3e-4), Some(1e-3), Some(3e-3)] {
        let options = PldOptions {
            discretization: step,
            ..PldOptions::default()
        };
        let mut fastest = f64::INFINITY;
        let mut epsilon = 0.0;
        for _ in 0..5 {
            let start = Instant::now();
            epsilon = compose_with(&mechanisms, Delta::new(1e-6)?, Method::Pld, &options)?
                .epsilon
                .get();
            fastest = fastest.min(start.elapsed().as_secs_f64());
        }
        let name = step.map_or("automatic".to_string(), |s| format!("{s:e}"));
        println!("| {name} | {epsilon:.6} | {:.1} ms |", fastest * 1e3);
    }
    Ok(())
}
