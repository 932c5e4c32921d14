//! The report compares thresholding the released row count with a count of units of the
//! query's own, on the data, and says so when the second is better.

use veil_core::mechanism::{LaplaceMechanism, ThresholdMechanism, ThresholdNoise};
use veil_core::{Delta, Epsilon, L1Sensitivity};
use veil_report::{
    Candidate, DataOrigin, Noise, NoisePlanner, NoiseShape, QueryNoise, ReportError, ReportOptions,
    SelectedOn, build,
};

use crate::fixtures::{L0, LINF, Planner, input};

/// Laplace noise everywhere; the job thresholds its released row count; selecting on units
/// takes `units_share` of ε and makes every other noise `1 / (1 − units_share)` larger.
struct RowsOrUnits {
    units_share: f64,
}

impl RowsOrUnits {
    fn noise(&self, epsilon: Epsilon, scale: f64, units: bool) -> QueryNoise {
        let inner = Planner {
            shape: NoiseShape::Laplace,
            selection: false,
        };
        let candidate = Candidate {
            contribution: veil_report::Contribution {
                max_groups_per_unit: L0,
                max_rows_per_group: LINF,
            },
            value_scale: 1.0,
        };
        let mut noise = inner.plan(epsilon, 0, &candidate).unwrap();
        for value in noise.measures.values_mut() {
            *value = Noise::new(NoiseShape::Laplace, value.std_dev() * scale).unwrap();
        }
        let delta = Delta::new(1e-6).unwrap();
        noise.selected_on = if units {
            SelectedOn::Units
        } else {
            SelectedOn::Rows
        };
        noise.selection = Some(if units {
            ThresholdMechanism::laplace(
                u64::from(L0),
                Epsilon::new(epsilon.get() * self.units_share).unwrap(),
                delta,
            )
            .unwrap()
        } else {
            // The row count's own noise (its std from the inner planner, as a scale).
            let std = noise.measures["rows"].std_dev();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let steps = u64::from(L0 * LINF);
            let rows = LaplaceMechanism::new(
                L1Sensitivity::integer(steps),
                Epsilon::new(std::f64::consts::SQRT_2 * f64::from(L0 * LINF) / std).unwrap(),
            )
            .unwrap();
            ThresholdMechanism::on_released(
                ThresholdNoise::Laplace(rows),
                u64::from(LINF),
                u64::from(L0),
                delta,
            )
            .unwrap()
        });
        noise
    }
}

impl NoisePlanner for RowsOrUnits {
    fn plan(
        &self,
        epsilon: Epsilon,
        _query: usize,
        _candidate: &Candidate,
    ) -> Result<QueryNoise, ReportError> {
        Ok(self.noise(epsilon, 1.0, false))
    }

    fn plan_selecting_units(
        &self,
        epsilon: Epsilon,
        _query: usize,
    ) -> Result<Option<QueryNoise>, ReportError> {
        Ok(Some(self.noise(
            epsilon,
            1.0 / (1.0 - self.units_share),
            true,
        )))
    }
}

fn findings(planner: &RowsOrUnits, epsilon: f64) -> Vec<String> {
    let options = ReportOptions {
        epsilons: vec![Epsilon::new(epsilon).unwrap()],
        trials: 0,
        target_error: 0.1,
    };
    let mut rng = veil_testkit::seeded_rng(3);
    let report = build(&input(40, DataOrigin::Sample), planner, &options, &mut rng).unwrap();
    report.queries[0].findings.clone()
}

#[test]
fn selecting_on_units_is_suggested_where_it_helps_and_only_there() {
    // Units hold about 3.3 rows in each group: a row count needs several times more units
    // to pass than a count of units, which at small ε decides which groups appear.
    let helps = findings(&RowsOrUnits { units_share: 0.25 }, 0.5);
    let suggestion = helps
        .iter()
        .find(|finding| finding.contains("selection = \"units\""))
        .unwrap_or_else(|| panic!("no suggestion in {helps:#?}"));
    assert!(suggestion.contains("not private"), "{suggestion}");
    // A units count that takes nearly all of ε leaves the outputs too noisy: no suggestion.
    let hurts = findings(&RowsOrUnits { units_share: 0.9 }, 0.05);
    assert!(
        hurts
            .iter()
            .all(|finding| !finding.contains("selection = \"units\"")),
        "{hurts:#?}"
    );
}

#[test]
fn a_row_count_selection_is_predicted_on_the_groups_rows() {
    // A group passes when its noisy row count reaches τ: its rows decide, not its units
    // (which predicted far fewer groups, and did so in the Monte Carlo too).
    let planner = RowsOrUnits { units_share: 0.25 };
    let epsilon = Epsilon::new(0.5).unwrap();
    let noise = planner.noise(epsilon, 1.0, false);
    let selection = noise.selection.clone().unwrap();
    let input = input(40, DataOrigin::Sample);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let expected: f64 = input.queries[0]
        .groups
        .iter()
        .map(|group| selection.release_probability(group.bounded.rows.round() as u64))
        .sum();
    let options = ReportOptions {
        epsilons: vec![epsilon],
        trials: 400,
        target_error: 0.1,
    };
    let mut rng = veil_testkit::seeded_rng(5);
    let report = build(&input, &planner, &options, &mut rng).unwrap();
    let release = &report.queries[0].release[0];
    assert!(
        (release.expected_groups - expected).abs() < 1e-9,
        "{release:?}"
    );
    let empirical = release.empirical_groups.unwrap();
    assert!(
        (empirical - expected).abs() < 1.0,
        "{empirical} vs {expected}"
    );
}
