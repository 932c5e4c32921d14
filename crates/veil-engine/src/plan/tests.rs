use super::*;
use crate::job::ContributionBounds;
use crate::job::{Aggregate, Output, OutputFormat, Source, SourceFormat, ValueColumn};
use crate::job::{AggregateKind, Partitions};
use veil_core::Bounds;
use veil_core::mechanism::{LaplaceMechanism, ThresholdMechanism, ThresholdNoise};
use veil_core::{L1Sensitivity, Rho};

fn aggregate(kind: AggregateKind) -> Aggregate {
    Aggregate {
        name: kind.default_name(),
        kind,
        weight: 1.0,
    }
}

fn value(name: &str) -> ValueColumn {
    ValueColumn {
        name: name.to_string(),
        bounds: Bounds::new(0.0, 100.0).unwrap(),
    }
}

fn query(name: &str, l0: u32, linf: u32, aggregates: Vec<Aggregate>) -> Query {
    Query {
        name: name.to_string(),
        group_by: vec!["country".to_string()],
        bounds: ContributionBounds {
            max_groups_per_unit: l0,
            max_rows_per_group: linf,
        },
        partitions: Partitions::Private,
        aggregates,
        weight: 1.0,
        drop_missing: Vec::new(),
        selection: Default::default(),
        auto: Vec::new(),
    }
}

fn job(budget: JobBudget, queries: Vec<Query>) -> Job {
    Job {
        name: "test".to_string(),
        job_hash: "0".to_string(),
        source: Source {
            path: "events.parquet".into(),
            format: SourceFormat::Parquet,
            privacy_unit: "user_id".to_string(),
        },
        budget,
        queries,
        output: Output {
            directory: "out".into(),
            format: OutputFormat::Csv,
        },
        governance: crate::job::Governance::unrestricted("analytics", 0),
        noise: crate::job::NoisePreference::Auto,
    }
}

/// Public partitions of one key, `DE`.
fn public_de() -> Partitions {
    Partitions::Public {
        origin: "keys.csv".into(),
        keys: vec![vec!["DE".into()]],
    }
}

fn approx(epsilon: f64, delta: f64) -> JobBudget {
    JobBudget::Approx(Epsilon::new(epsilon).unwrap(), Delta::new(delta).unwrap())
}

fn invalid_key(job: &Job) -> String {
    match plan(job) {
        Err(EngineError::InvalidJob { key, .. } | EngineError::Param { key, .. }) => key,
        other => panic!("expected an invalid job, got {other:?}"),
    }
}

#[test]
fn pure_budget_uses_laplace_with_l1_sensitivity() {
    let mut query = query("q", 3, 5, vec![aggregate(AggregateKind::Count)]);
    query.partitions = public_de();
    let plan = plan(&job(
        JobBudget::Pure(Epsilon::new(1.0).unwrap()),
        vec![query],
    ))
    .unwrap();
    assert_eq!(plan.family, NoiseFamily::Laplace);
    let count = &plan.queries[0].measures[0];
    assert_eq!(count.sensitivity, 15, "L0 · L∞ = 3 · 5");
    let MeasureNoise::Laplace(mechanism) = &count.noise else {
        panic!("Laplace expected")
    };
    // scale = Δ₁/ε = 15 (the share is a hair below one, so that parts never add up past
    // the budget).
    let scale = mechanism.scale().to_f64();
    assert!((scale - 15.0).abs() < 1e-9, "{scale}");
    let PlannedCost::Basic { epsilon, delta } = plan.cost else {
        panic!("{:?}", plan.cost)
    };
    assert!(epsilon <= 1.0 && epsilon > 1.0 - 1e-9 && delta == 0.0);
}

/// A Laplace count stays within `b·ln 20` of its value with probability exactly 95%
/// (`P(|X| > t) = e^(−t/b)`), which is `ln 20 / √2 ≈ 2.12` standard deviations, not the
/// normal `1.96`; Gaussian noise keeps `1.96`.
#[test]
fn the_95_percent_error_follows_the_noise_family() {
    let public = |budget: JobBudget| {
        let mut query = query("q", 3, 5, vec![aggregate(AggregateKind::Count)]);
        query.partitions = public_de();
        let plan = plan(&job(budget, vec![query])).unwrap();
        let noise = plan.queries[0].output_noise(0).remove(0);
        (noise.std.unwrap(), noise.error_95().unwrap())
    };
    let (std, error) = public(JobBudget::Pure(Epsilon::new(1.0).unwrap()));
    let b = std / std::f64::consts::SQRT_2;
    assert!(
        (error - b * 20_f64.ln()).abs() < 1e-9 * error,
        "{error} vs b = {b}"
    );
    assert!((-error / b).exp() - 0.05 < 1e-12);
    let (std, error) = public(JobBudget::Zcdp(Rho::new(0.5).unwrap()));
    assert!(
        (error / std - 1.959_963_984_540_054).abs() < 1e-9,
        "{}",
        error / std
    );
}

#[test]
fn private_partitions_need_delta() {
    let job = job(
        JobBudget::Pure(Epsilon::new(1.0).unwrap()),
        vec![query("q", 1, 1, vec![aggregate(AggregateKind::Count)])],
    );
    assert_eq!(invalid_key(&job), "query[0].partitions");
    let job = crate::plan::tests::job(JobBudget::Zcdp(Rho::new(0.5).unwrap()), job.queries);
    assert_eq!(invalid_key(&job), "query[0].partitions");
}

#[test]
fn many_groups_per_unit_choose_gaussian() {
    let aggregates = vec![
        aggregate(AggregateKind::Count),
        aggregate(AggregateKind::UnitCount),
        aggregate(AggregateKind::Sum(value("value"))),
        aggregate(AggregateKind::Mean(value("value"))),
    ];
    let plan = plan(&job(
        approx(1.0, 1e-6),
        vec![query("q", 20, 5, aggregates.clone())],
    ))
    .unwrap();
    assert_eq!(plan.family, NoiseFamily::Gaussian);
    let PlannedCost::Zcdp {
        epsilon,
        conversion_delta,
        selection_delta,
        ..
    } = plan.cost
    else {
        panic!("zCDP cost expected")
    };
    assert!(epsilon <= 1.0 && epsilon > 0.99, "{epsilon}");
    assert!((conversion_delta + selection_delta - 1e-6).abs() < 1e-18);
    // One group per unit and a single count: Laplace is better.
    let single = super::plan(&job(
        approx(1.0, 1e-6),
        vec![query("q", 1, 1, vec![aggregate(AggregateKind::Count)])],
    ))
    .unwrap();
    assert_eq!(single.family, NoiseFamily::Laplace);
    let PlannedCost::Basic { epsilon, delta } = single.cost else {
        panic!("basic cost expected")
    };
    assert!(epsilon <= 1.0 + 1e-12 && delta <= 1e-6 + 1e-18);
}

#[test]
fn gaussian_sensitivity_is_squared_l2() {
    let budget = JobBudget::Zcdp(Rho::new(0.5).unwrap());
    let mut query = query("q", 4, 3, vec![aggregate(AggregateKind::Count)]);
    query.group_by.clear();
    let plan = plan(&job(budget, vec![query])).unwrap();
    let count = &plan.queries[0].measures[0];
    assert_eq!(count.sensitivity, 36, "L0 · L∞² = 4 · 9");
    let MeasureNoise::Gaussian(mechanism) = &count.noise else {
        panic!("Gaussian expected")
    };
    let sigma_squared = mechanism.sigma_squared().to_f64();
    assert!(
        (sigma_squared - 36.0).abs() < 1e-9,
        "σ² = Δ₂²/(2ρ) = 36: {sigma_squared}"
    );
}

#[test]
fn measures_are_shared_between_aggregates() {
    let aggregates = vec![
        aggregate(AggregateKind::Mean(value("value"))),
        aggregate(AggregateKind::Variance(value("value"))),
        aggregate(AggregateKind::UnitCount),
    ];
    let plan = plan(&job(approx(1.0, 1e-6), vec![query("q", 1, 1, aggregates)])).unwrap();
    let keys: Vec<String> = plan.queries[0]
        .measures
        .iter()
        .map(|noisy| noisy.measure.key())
        .collect();
    assert_eq!(
        keys,
        [
            "values:value",
            "centered_sum:value[0,100]",
            "centered_squares:value[0,100]",
            "units"
        ]
    );
    assert!(plan.queries[0].selection.is_some());
    assert_eq!(
        plan.queries[0].selection_count.as_deref(),
        Some("units"),
        "groups are selected on the released unit count"
    );
    // Every measure is charged, alone or in the joint draw it belongs to.
    let items = plan.charge_items();
    for key in &keys {
        assert!(
            items.iter().any(|item| item.label.contains(key.as_str())),
            "{key}: {items:?}"
        );
    }
}

/// The budget goes where the weighted errors say: two counts weighted 1 and 3 get shares
/// in proportion to the square roots of their weights (which minimises the weighted sum of
/// Laplace errors, each proportional to 1/ε).
#[test]
fn budget_is_split_by_weight() {
    let mut first = query("a", 1, 1, vec![aggregate(AggregateKind::Count)]);
    let mut second = query("b", 1, 1, vec![aggregate(AggregateKind::Count)]);
    for query in [&mut first, &mut second] {
        query.partitions = Partitions::Public {
            origin: "keys".into(),
            keys: vec![vec!["x".into()]],
        };
    }
    second.weight = 3.0;
    let plan = plan(&job(
        JobBudget::Pure(Epsilon::new(1.0).unwrap()),
        vec![first, second],
    ))
    .unwrap();
    let epsilon = |index: usize| match plan.queries[index].measures[0].noise.loss() {
        PrivacyLoss::Pure(epsilon) => epsilon.get(),
        other => panic!("{other:?}"),
    };
    let expected = 1.0 / (1.0 + 3.0_f64.sqrt());
    assert!((epsilon(0) - expected).abs() < 1e-3, "{}", epsilon(0));
    assert!((epsilon(0) + epsilon(1) - 1.0).abs() < 1e-9);
}

#[test]
fn invalid_jobs_name_their_key() {
    let count = || vec![aggregate(AggregateKind::Count)];
    let mut unit_group = query("q", 1, 1, count());
    unit_group.group_by = vec!["user_id".into()];
    assert_eq!(
        invalid_key(&job(approx(1.0, 1e-6), vec![unit_group])),
        "query[0].group_by"
    );
    let duplicate = vec![query("q", 1, 1, count()), query("q", 1, 1, count())];
    assert_eq!(
        invalid_key(&job(approx(1.0, 1e-6), duplicate)),
        "query[1].name"
    );
    assert_eq!(
        invalid_key(&job(approx(1.0, 1e-6), vec![query("q", 0, 1, count())])),
        "query[0].max_groups_per_unit"
    );
    assert_eq!(
        invalid_key(&job(approx(1.0, 1e-6), vec![query("q", 1, 0, count())])),
        "query[0].max_rows_per_group"
    );
    assert_eq!(
        invalid_key(&job(
            approx(1.0, 1e-6),
            vec![query("bad/name", 1, 1, count())]
        )),
        "query[0].name"
    );
    // A query's table would overwrite the release manifest (release.json), on a
    // case-insensitive file system too.
    for reserved in ["release", "Release"] {
        assert_eq!(
            invalid_key(&job(
                approx(1.0, 1e-6),
                vec![query(reserved, 1, 1, count())]
            )),
            "query[0].name"
        );
    }
    assert_eq!(invalid_key(&job(approx(1.0, 1e-6), vec![])), "query");
    let same_bounds = ValueColumn {
        name: "value".into(),
        bounds: Bounds::new(5.0, 5.0).unwrap(),
    };
    let empty_bounds = query("q", 1, 1, vec![aggregate(AggregateKind::Sum(same_bounds))]);
    assert_eq!(
        invalid_key(&job(approx(1.0, 1e-6), vec![empty_bounds])),
        "query[0].aggregates[0].bounds"
    );
    let quantiles = AggregateKind::Quantiles {
        column: value("value"),
        levels: vec![1.5],
        interval: Default::default(),
    };
    assert_eq!(
        invalid_key(&job(
            approx(1.0, 1e-6),
            vec![query("q", 1, 1, vec![aggregate(quantiles)])]
        )),
        "query[0].aggregates[0].q"
    );
    // A level given twice names the levels, not the aggregate's `name`.
    let repeated = AggregateKind::Quantiles {
        column: value("value"),
        levels: vec![0.5, 0.9, 0.5],
        interval: Default::default(),
    };
    assert_eq!(
        invalid_key(&job(
            approx(1.0, 1e-6),
            vec![query("q", 1, 1, vec![aggregate(repeated)])]
        )),
        "query[0].aggregates[0].q"
    );
    let twice = vec![
        aggregate(AggregateKind::Count),
        aggregate(AggregateKind::Count),
    ];
    assert_eq!(
        invalid_key(&job(approx(1.0, 1e-6), vec![query("q", 1, 1, twice)])),
        "query[0].aggregates[1].name"
    );
}

#[test]
fn quantile_output_names() {
    let quantiles = aggregate(AggregateKind::Quantiles {
        column: value("value"),
        levels: vec![0.5, 0.9, 0.995],
        interval: Default::default(),
    });
    assert_eq!(
        output_names_of(&quantiles),
        ["q50_value", "q90_value", "q99_5_value"]
    );
    let named = Aggregate {
        name: "latency".into(),
        kind: quantiles.kind,
        weight: 1.0,
    };
    assert_eq!(
        output_names_of(&named),
        ["latency_q50", "latency_q90", "latency_q99_5"]
    );
}

/// `selection = "units"`: a count of units drawn for the selection alone, charged, even when
/// the query releases a row count; a released unit count is still the one thresholded.
#[test]
fn the_job_can_ask_to_select_groups_on_units() {
    let count_and_sum = || {
        vec![
            aggregate(AggregateKind::Count),
            aggregate(AggregateKind::Sum(value("value"))),
        ]
    };
    let on_rows = plan(&job(
        JobBudget::Approx(Epsilon::new(0.1).unwrap(), Delta::new(1e-6).unwrap()),
        vec![query("q", 3, 5, count_and_sum())],
    ))
    .unwrap();
    assert_eq!(on_rows.queries[0].selection_count.as_deref(), Some("rows"));
    // A unit adds up to L∞ rows to a group's count: the threshold's δ is computed for
    // that whole contribution (for 1 row it would be about seven times the claim).
    assert_eq!(
        on_rows.queries[0]
            .selection
            .as_ref()
            .unwrap()
            .contribution(),
        5
    );
    let mut units_query = query("q", 3, 5, count_and_sum());
    units_query.selection = crate::job::Selection::Units;
    let on_units = plan(&job(
        JobBudget::Approx(Epsilon::new(0.1).unwrap(), Delta::new(1e-6).unwrap()),
        vec![units_query.clone()],
    ))
    .unwrap();
    let query_plan = &on_units.queries[0];
    assert_eq!(query_plan.selection_count, None);
    let selection = query_plan.selection.as_ref().unwrap();
    assert_eq!(selection.max_partitions(), 3);
    // Its own noise, charged beside the released measures, and no noisy unit count among them.
    assert!(
        query_plan
            .measures
            .iter()
            .all(|noisy| noisy.measure != Measure::Units)
    );
    let items = on_units.charge_items();
    assert!(
        items.iter().any(|item| item.label == "q.partition_selection"
            && matches!(
                item.profile,
                MechanismProfile::Guarantee(PrivacyLoss::Approx(epsilon, _)) if epsilon.get() > 0.001
            )),
        "{items:?}"
    );
    // A released unit count is thresholded as before.
    units_query
        .aggregates
        .push(aggregate(AggregateKind::UnitCount));
    let released = plan(&job(
        JobBudget::Approx(Epsilon::new(0.1).unwrap(), Delta::new(1e-6).unwrap()),
        vec![units_query],
    ))
    .unwrap();
    assert_eq!(
        released.queries[0].selection_count.as_deref(),
        Some("units")
    );
}

/// The quantile noise of a median and 90th percentile of `value` (public partitions,
/// L0 = 3, L∞ = 5, rows without a value dropped), with a count of the rows beside them
/// when `counted`: what value intervals aim their ends by.
fn quantile_noise_of(
    budget: JobBudget,
    interval: crate::job::QuantileInterval,
    counted: bool,
) -> QuantileNoise {
    let quantiles = aggregate(AggregateKind::Quantiles {
        column: value("value"),
        levels: vec![0.5, 0.9],
        interval,
    });
    let mut aggregates = vec![quantiles];
    if counted {
        aggregates.push(aggregate(AggregateKind::Count));
    }
    let mut query = query("q", 3, 5, aggregates);
    query.drop_missing = vec!["value".into()];
    query.partitions = public_de();
    let plan = plan(&job(budget, vec![query])).unwrap();
    plan.queries[0]
        .measures
        .iter()
        .find_map(|noisy| match &noisy.noise {
            MeasureNoise::Quantile(noise) => Some(noise.clone()),
            _ => None,
        })
        .expect("a quantile's noise")
}

/// A rank interval draws nothing beyond the points, which take the histogram's whole
/// share: 1/0.9 of a value interval's point ε under pure DP, and the loss charged is the
/// points' alone (pure: L0·levels·ε_p; zCDP: L0·levels·ε_p²/8), never less than what is drawn.
#[test]
fn a_rank_interval_gives_the_points_the_whole_budget() {
    use crate::job::QuantileInterval;
    let plan_with = quantile_noise_of;
    let pure = || JobBudget::Pure(Epsilon::new(1.0).unwrap());
    let rank = plan_with(pure(), QuantileInterval::Rank, false);
    assert!(rank.interval.is_none());
    // Value intervals with no count to aim by would be the bounds: none is drawn and the
    // point takes the whole budget, as with rank intervals.
    assert_eq!(plan_with(pure(), QuantileInterval::Value, false), rank);
    let counted = plan_with(pure(), QuantileInterval::Value, true);
    let interval = counted.interval.as_ref().expect("a count to aim by");
    let ratio = interval.epsilon().get() / counted.point.epsilon().get();
    let expected = (1.0 - QUANTILE_POINT_SHARE) / 2.0 / QUANTILE_POINT_SHARE;
    assert!((ratio - expected).abs() < 1e-9, "{ratio}");
    let point = rank.point.epsilon().get();
    // 3 groups per unit · 2 levels share ε = 1 (a hair below, never above).
    assert!(point <= 1.0 / 6.0 && point > 1.0 / 6.0 - 1e-9, "{point}");
    let PrivacyLoss::Pure(loss) = rank.loss() else {
        panic!("{:?}", rank.loss())
    };
    assert!(
        loss.get() >= 6.0 * point && loss.get() <= 1.0 + 1e-12,
        "{loss:?}"
    );

    let zcdp = plan_with(
        JobBudget::Zcdp(Rho::new(0.05).unwrap()),
        QuantileInterval::Rank,
        false,
    );
    assert!(zcdp.interval.is_none());
    let point = zcdp.point.epsilon().get();
    let PrivacyLoss::Zcdp(rho) = zcdp.loss() else {
        panic!("{:?}", zcdp.loss())
    };
    assert!(rho.get() >= 6.0 * point * point / 8.0, "{rho:?}");
    assert!(rho.get() <= 0.05 + 1e-12, "{rho:?}");
    assert!(
        rho.get() > 0.05 - 1e-9,
        "the whole share goes to the points: {rho:?}"
    );
}

/// A group whose released count leaves an interval end at its bound gives that end's
/// budget to the point, never more: with both ends unused the point's loss stays within
/// what the plan charges per group and level, in each family, and within a hair of it.
#[test]
fn unused_interval_ends_leave_their_budget_to_the_point() {
    use crate::job::QuantileInterval;
    for budget in [
        JobBudget::Pure(Epsilon::new(1.0).unwrap()),
        JobBudget::Zcdp(Rho::new(0.05).unwrap()),
    ] {
        let noise = quantile_noise_of(budget, QuantileInterval::Value, true);
        let interval = noise.interval.clone().expect("a count to aim by");
        assert!(noise.point_taking(0).is_none());
        let one = noise.point_taking(1).unwrap();
        let two = noise.point_taking(2).unwrap();
        assert_eq!(noise.point_taking(3), Some(two.clone()), "two ends at most");
        assert!(noise.point.epsilon() < one.epsilon() && one.epsilon() < two.epsilon());
        assert_eq!(two.selection(), noise.point.selection());
        assert_eq!(two.max_rows(), noise.point.max_rows());
        let times = noise.groups * noise.draws;
        match (noise.loss(), two.loss()) {
            (PrivacyLoss::Pure(total), PrivacyLoss::Pure(point)) => {
                let planned = noise.point.epsilon().get() + 2.0 * interval.epsilon().get();
                assert!(point.get() <= planned, "{point:?} > {planned}");
                assert!(
                    point.get() > planned * (1.0 - 1e-9),
                    "{point:?} < {planned}"
                );
                assert!(times * point.get() <= total.get(), "{point:?} {total:?}");
            }
            (PrivacyLoss::Zcdp(total), PrivacyLoss::Zcdp(point)) => {
                let (PrivacyLoss::Zcdp(rho_p), PrivacyLoss::Zcdp(rho_i)) =
                    (noise.point.loss(), interval.loss())
                else {
                    panic!("zCDP draws expected")
                };
                let planned = rho_p.get() + 2.0 * rho_i.get();
                assert!(point.get() <= planned, "{point:?} > {planned}");
                assert!(
                    point.get() > planned * (1.0 - 1e-9),
                    "{point:?} < {planned}"
                );
                assert!(times * point.get() <= total.get(), "{point:?} {total:?}");
            }
            other => panic!("{other:?}"),
        }
    }
}

/// With private partitions, a count that selection thresholds (or one drawn together with
/// it) leans up in the groups released, so value interval ends never aim by it: explain
/// says which, the point takes the ends' budget, and the quantile's measures (what the
/// audit claims for it) name the count its ends aim by only when there is one.
#[test]
fn value_interval_ends_never_aim_by_a_count_that_selection_thresholds() {
    use crate::job::QuantileInterval;
    let median = || {
        aggregate(AggregateKind::Quantiles {
            column: value("value"),
            levels: vec![0.5],
            interval: QuantileInterval::Value,
        })
    };
    let planned = |query: Query| {
        let mut job = job(approx(1.0, 1e-6), vec![query]);
        job.noise = crate::job::NoisePreference::Laplace;
        plan(&job).unwrap().queries.remove(0)
    };
    let unaimed = |query: &QueryPlan, why: &str| {
        assert!(query.interval_count("value").is_none(), "{why}");
        let formula = query.output_noise(0)[0].formula.clone();
        for text in [
            why,
            "the point took their share",
            "no value interval (rank only",
        ] {
            assert!(formula.contains(text), "{formula}");
        }
        assert_eq!(query.derivation_measures(&query.derivations[0]).len(), 1);
    };
    // The rows are the values' count (rows without one are dropped) and selection
    // thresholds them.
    let mut thresholded = query("q", 3, 5, vec![median(), aggregate(AggregateKind::Count)]);
    thresholded.drop_missing = vec!["value".into()];
    let thresholded = planned(thresholded);
    assert_eq!(thresholded.selection_count.as_deref(), Some("rows"));
    unaimed(&thresholded, "is the one selection thresholds");
    // A mean beside it releases the values' count: the ends aim by it...
    let mut with_mean = planned(query(
        "q",
        3,
        5,
        vec![
            median(),
            aggregate(AggregateKind::Count),
            aggregate(AggregateKind::Mean(value("value"))),
        ],
    ));
    let count = with_mean
        .interval_count("value")
        .expect("the values' count");
    assert_eq!(count.measure.key(), "values:value");
    let formula = with_mean.output_noise(0)[0].formula.clone();
    assert!(
        formula.contains("value interval from two more draws"),
        "{formula}"
    );
    assert_eq!(
        with_mean.derivation_measures(&with_mean.derivations[0]),
        ["histogram:value[0,100]", "values:value"]
    );
    // ... unless it is drawn together with the count selection thresholds.
    let selected = with_mean.selection_count.clone().expect("a selected count");
    let mechanism =
        veil_core::mechanism::JointLaplaceMechanism::new(&[5, 5], Epsilon::new(0.3).unwrap())
            .unwrap();
    let keys = vec![selected.clone(), "values:value".to_string()];
    for noisy in &mut with_mean.measures {
        if let Some(index) = keys.iter().position(|key| *key == noisy.measure.key()) {
            noisy.noise = MeasureNoise::Joint(JointNoise {
                mechanism: mechanism.clone(),
                keys: keys.clone(),
                index,
                groups: 3,
            });
        }
    }
    unaimed(
        &with_mean,
        "is drawn together with the one selection thresholds",
    );
}

/// Quantiles of one column and bounds share their draws, so they must agree on what
/// their interval is about; the error names the second aggregate.
#[test]
fn quantiles_sharing_draws_agree_on_their_interval() {
    use crate::job::QuantileInterval;
    let quantiles = |levels: Vec<f64>, interval| {
        aggregate(AggregateKind::Quantiles {
            column: value("value"),
            levels,
            interval,
        })
    };
    let mut mixed = query(
        "q",
        1,
        1,
        vec![
            quantiles(vec![0.5], QuantileInterval::Rank),
            quantiles(vec![0.9], QuantileInterval::Value),
        ],
    );
    mixed.aggregates[1].name = "p90".into();
    assert_eq!(
        invalid_key(&job(approx(1.0, 1e-6), vec![mixed.clone()])),
        "query[0].aggregates[1].interval"
    );
    mixed.aggregates[1].kind = AggregateKind::Quantiles {
        column: value("value"),
        levels: vec![0.9],
        interval: QuantileInterval::Rank,
    };
    assert!(plan(&job(approx(1.0, 1e-6), vec![mixed])).is_ok());
}

/// Each quantile level states its own rank error: the utility's sensitivity is
/// `L∞·max(q, 1 − q)`, so the 90th percentile's is 1.8 times the median's (it once showed
/// the median's for every level). The formula says how the interval is made.
#[test]
fn each_quantile_level_states_its_own_rank_error() {
    use crate::job::QuantileInterval;
    // Value intervals with and without a count of the rows to aim their ends by.
    for (interval, counted) in [
        (QuantileInterval::Value, true),
        (QuantileInterval::Value, false),
        (QuantileInterval::Rank, false),
    ] {
        let mut aggregates = vec![aggregate(AggregateKind::Quantiles {
            column: value("value"),
            levels: vec![0.5, 0.9],
            interval,
        })];
        if counted {
            aggregates.push(aggregate(AggregateKind::Count));
        }
        let mut query = query("q", 3, 5, aggregates);
        query.drop_missing = vec!["value".into()];
        query.partitions = public_de();
        let plan = plan(&job(
            JobBudget::Pure(Epsilon::new(1.0).unwrap()),
            vec![query],
        ))
        .unwrap();
        let outputs = plan.queries[0].output_noise(0);
        let [median, p90] = [&outputs[0], &outputs[1]];
        let (median_rank, p90_rank) = (median.rank_error.unwrap(), p90.rank_error.unwrap());
        // 1.8 up to the level's grid of 2^-20.
        assert!(
            (p90_rank / median_rank - 1.8).abs() < 1e-5,
            "{median_rank} {p90_rank}"
        );
        let says = |text: &str| assert!(p90.formula.contains(text), "{}", p90.formula);
        match (interval, counted) {
            (QuantileInterval::Value, true) => says("value interval from two more draws"),
            (QuantileInterval::Value, false) => {
                says("no value interval ends: the query releases no count of value's rows");
                says("so the point took their share");
                says("no value interval (rank only");
            }
            (QuantileInterval::Rank, _) => {
                says("no value interval (rank only");
                assert!(!p90.formula.contains("took their share"), "{}", p90.formula);
            }
        }
    }
}

/// A quantile's formula (in explain and release.json) names the selection its plan draws
/// with: permute-and-flip under pure ε, the exponential mechanism under zCDP.
#[test]
fn a_quantiles_formula_names_the_selection_it_draws_with() {
    for (budget, selection) in [
        (
            JobBudget::Pure(Epsilon::new(1.0).unwrap()),
            "permute-and-flip on ",
        ),
        (
            JobBudget::Zcdp(Rho::new(0.05).unwrap()),
            "the exponential mechanism on ",
        ),
    ] {
        let quantiles = aggregate(AggregateKind::Quantiles {
            column: value("value"),
            levels: vec![0.5],
            interval: crate::job::QuantileInterval::Rank,
        });
        let mut query = query("q", 3, 5, vec![quantiles]);
        query.partitions = public_de();
        let plan = plan(&job(budget, vec![query])).unwrap();
        let query = &plan.queries[0];
        let formula = query.formula_of(&query.derivations[0]);
        assert!(formula.starts_with(selection), "{formula}");
        assert!(
            query.output_noise(0)[0].formula.starts_with(selection),
            "{formula}"
        );
    }
}

/// Under pure ε, a count and a centred sum are drawn together (one joint draw per group
/// at the sum of their ε's): each with less noise than the Laplace draw it replaces, the
/// draw charged once, and the plan's charges within the budget. With private partitions
/// the thresholded count is one of them.
#[test]
fn pure_measures_of_a_query_are_drawn_together() {
    let public = |aggregates| {
        let mut query = query("q", 3, 5, aggregates);
        query.partitions = public_de();
        query
    };
    let count_sum_mean = || {
        vec![
            aggregate(AggregateKind::Count),
            aggregate(AggregateKind::Sum(value("value"))),
            aggregate(AggregateKind::Mean(value("value"))),
        ]
    };
    let mut query = public(count_sum_mean());
    query.drop_missing = vec!["value".into()];
    let pure = plan(&job(
        JobBudget::Pure(Epsilon::new(1.0).unwrap()),
        vec![query],
    ))
    .unwrap();
    let measures = &pure.queries[0].measures;
    assert_eq!(measures.len(), 2, "{measures:?}");
    let mut keys = Vec::new();
    for noisy in measures {
        let MeasureNoise::Joint(joint) = &noisy.noise else {
            panic!("{} is not drawn jointly", noisy.measure.key())
        };
        keys.push(joint.keys.clone());
        // Per group, ε/L0 (a hair below).
        let per_group = joint.mechanism.epsilon().get();
        assert!(
            per_group <= 1.0 / 3.0 && per_group > 1.0 / 3.0 - 1e-9,
            "{per_group}"
        );
        // Less noise than a Laplace draw at an even split would have (√8·Δ·L0/ε).
        let even_split = 8_f64.sqrt() * 3.0 * noisy.per_group as f64;
        assert!(
            noisy.noise.std_dev() < 0.72 * even_split,
            "{}",
            noisy.noise.std_dev()
        );
    }
    assert_eq!(keys[0], keys[1]);
    let items = pure.charge_items();
    let joint_items: Vec<_> = items
        .iter()
        .filter(|item| item.label.contains('+'))
        .collect();
    assert_eq!(joint_items.len(), 1, "{items:?}");
    let MechanismProfile::Guarantee(PrivacyLoss::Pure(epsilon)) = joint_items[0].profile else {
        panic!("{:?}", joint_items[0].profile)
    };
    assert!(
        epsilon.get() <= 1.0 && epsilon.get() > 1.0 - 1e-9,
        "{epsilon:?}"
    );
    assert_eq!(items.len(), 1, "{items:?}");

    // Private partitions: the released count is drawn with the centred sum too, and the
    // selection thresholds the joint law's count (a lower threshold than the same count
    // drawn alone with truncated noise), charged as the joint draw plus δ.
    let mut private = public(count_sum_mean());
    private.partitions = Partitions::Private;
    private.drop_missing = vec!["value".into()];
    let private = plan(&job(approx(1.0, 1e-6), vec![private])).unwrap();
    let query = &private.queries[0];
    let selection = query.selection.as_ref().unwrap();
    let ThresholdNoise::Joint { mechanism, index } = selection.noise() else {
        panic!("{:?}", selection.noise())
    };
    let count = query.noise_of("rows").unwrap();
    let MeasureNoise::Joint(joint) = &count.noise else {
        panic!("{:?}", count.noise)
    };
    assert_eq!((joint.index, *index), (0, 0));
    assert_eq!(&joint.mechanism, mechanism);
    assert!(
        query
            .measures
            .iter()
            .all(|noisy| matches!(noisy.noise, MeasureNoise::Joint(_)))
    );
    // The same count drawn alone at its share of ε, truncated, as before.
    let alone = LaplaceMechanism::new(
        L1Sensitivity::integer(15),
        Epsilon::new(mechanism.epsilon().get() * 3.0 / 2.0).unwrap(),
    )
    .unwrap();
    let truncated =
        ThresholdMechanism::on_released(ThresholdNoise::Laplace(alone), 5, 3, selection.delta())
            .unwrap();
    assert!(
        selection.threshold() < truncated.threshold(),
        "{} vs {}",
        selection.threshold(),
        truncated.threshold()
    );
    let items = private.charge_items();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        items
            .iter()
            .any(|item| item.label == "q.rows+centered_sum:value[0,100]"),
        "{items:?}"
    );
    assert!(
        items
            .iter()
            .any(|item| item.label == "q.partition_selection")
    );
}

/// At a large ε per group (ε = 4, L0 = 3: 1.33) the joint draws are staircase-shaped, public
/// and private, with the selection on the staircase's count; the charge is the plain law's.
/// At ε = 1 (0.33 per group) they stay plain.
#[test]
fn a_large_epsilon_per_group_draws_the_staircase() {
    for (partitions, budget) in [
        (public_de(), approx(4.0, 1e-6)),
        (Partitions::Private, approx(4.0, 1e-6)),
    ] {
        let mut query = query(
            "q",
            3,
            5,
            vec![
                aggregate(AggregateKind::Count),
                aggregate(AggregateKind::Sum(value("value"))),
                aggregate(AggregateKind::Mean(value("value"))),
            ],
        );
        query.partitions = partitions;
        query.drop_missing = vec!["value".into()];
        let planned = plan(&job(budget, vec![query.clone()])).unwrap();
        let count = planned.queries[0].noise_of("rows").unwrap();
        let MeasureNoise::Joint(joint) = &count.noise else {
            panic!("{:?}", count.noise)
        };
        let step = joint
            .mechanism
            .step()
            .expect("a staircase at 1.33 per group");
        assert_eq!(
            count.noise.mechanism_name(),
            format!("joint-staircase (step {})", step.get())
        );
        let plain = veil_core::mechanism::JointLaplaceMechanism::new(
            joint.mechanism.sensitivities(),
            joint.mechanism.epsilon(),
        )
        .unwrap();
        assert!(joint.mechanism.ci_half_width(0, 0.5) < plain.ci_half_width(0, 0.5));
        assert_eq!(joint.loss(), plain.loss_over(3));
        if let Some(selection) = &planned.queries[0].selection {
            let ThresholdNoise::Joint { mechanism, .. } = selection.noise() else {
                panic!("{:?}", selection.noise())
            };
            assert_eq!(mechanism, &joint.mechanism);
        }
        let planned = plan(&job(approx(1.0, 1e-6), vec![query])).unwrap();
        let MeasureNoise::Joint(joint) = &planned.queries[0].noise_of("rows").unwrap().noise else {
            panic!("a joint draw at ε = 1")
        };
        assert_eq!(joint.mechanism.step(), None);
    }
}

/// A query with many measures gets several joint draws of at most four measures each (a
/// draw of d is kept with probability d!/d^d: sixteen measures in one draw would take
/// about a million attempts per group), as even as can be, each charged once.
#[test]
fn many_measures_make_several_small_joint_draws() {
    let variance = |name: &str| aggregate(AggregateKind::Variance(value(name)));
    let mut query = query(
        "q",
        3,
        5,
        vec![
            aggregate(AggregateKind::Count),
            variance("a"),
            variance("b"),
            variance("c"),
        ],
    );
    query.partitions = public_de();
    let pure = plan(&job(
        JobBudget::Pure(Epsilon::new(1.0).unwrap()),
        vec![query],
    ))
    .unwrap();
    let mut draws: Vec<Vec<String>> = pure.queries[0]
        .measures
        .iter()
        .filter_map(|noisy| match &noisy.noise {
            MeasureNoise::Joint(joint) => Some(joint.keys.clone()),
            _ => None,
        })
        .collect();
    draws.dedup();
    assert!(!draws.is_empty(), "{:?}", pure.queries[0].measures);
    for keys in &draws {
        assert!((2..=4).contains(&keys.len()), "{keys:?}");
    }
    let charged = pure
        .charge_items()
        .iter()
        .filter(|item| item.label.contains('+'))
        .count();
    assert_eq!(charged, draws.len());
}

/// A variance divides by its count of values. On the planner's typical group the count's
/// two effects on `Q/n − (S/n)²` cancel, and the split once gave that count a billionth of
/// the budget (a noise of millions of rows beside a rows count of 75): the variance came
/// out near zero with a tight interval. Every count a variance divides by gets a real
/// share, under either noise family.
#[test]
fn a_variance_never_starves_the_count_it_divides_by() {
    for (budget, public) in [
        (JobBudget::Pure(Epsilon::new(1.0).unwrap()), true),
        (approx(1.0, 1e-6), false),
    ] {
        let mut query = query(
            "q",
            5,
            5,
            vec![
                aggregate(AggregateKind::Count),
                aggregate(AggregateKind::Variance(value("value"))),
            ],
        );
        if public {
            query.partitions = public_de();
        }
        let plan = plan(&job(budget, vec![query])).unwrap();
        let std_of = |key: &str| {
            plan.queries[0]
                .measures
                .iter()
                .find(|noisy| noisy.measure.key() == key)
                .unwrap_or_else(|| panic!("{key} not planned: {:?}", plan.queries[0].measures))
                .noise
                .std_dev()
        };
        let (rows, values) = (std_of("rows"), std_of("values:value"));
        assert!(
            values < 4.0 * rows,
            "{budget:?}: values {values}, rows {rows}"
        );
    }
}

/// A weighted count of count + sum + mean keeps the joint draw: at `weight = 8` the split
/// alone gave the count a larger share of a separate draw (its deviation higher than the
/// joint coordinate's, its median a hair lower) and the sum and mean twice the joint
/// draw's error. The plan now takes whichever noise the weighted objective prefers: the
/// plain joint draw at `weight = 2`, and at `weight = 8` the plateau law, flat on the
/// centred sum, which moves noise off the count; even weights never draw a plateau.
#[test]
fn a_weighted_count_keeps_the_joint_draw_that_serves_the_objective() {
    let plan_with = |weight: f64| {
        let mut count = aggregate(AggregateKind::Count);
        count.weight = weight;
        let mut query = query(
            "q",
            3,
            5,
            vec![
                count,
                aggregate(AggregateKind::Sum(value("value"))),
                aggregate(AggregateKind::Mean(value("value"))),
            ],
        );
        query.partitions = public_de();
        query.drop_missing = vec!["value".into()];
        plan(&job(
            JobBudget::Pure(Epsilon::new(1.0).unwrap()),
            vec![query],
        ))
        .unwrap()
    };
    let even = plan_with(1.0);
    for noisy in &even.queries[0].measures {
        let MeasureNoise::Joint(joint) = &noisy.noise else {
            panic!("{} drawn alone", noisy.measure.key())
        };
        assert_eq!(joint.mechanism.plateau_widths(), None);
    }
    for weight in [2.0, 8.0] {
        let weighted = plan_with(weight);
        // Charged once, at the budget.
        let charged: f64 = weighted
            .charge_items()
            .iter()
            .map(|item| match item.profile {
                MechanismProfile::Guarantee(PrivacyLoss::Pure(epsilon)) => epsilon.get(),
                ref other => panic!("{other:?}"),
            })
            .sum();
        assert!(charged <= 1.0 && charged > 1.0 - 1e-9, "{charged}");
        for (noisy, reference) in weighted.queries[0]
            .measures
            .iter()
            .zip(&even.queries[0].measures)
        {
            let MeasureNoise::Joint(joint) = &noisy.noise else {
                panic!("weight {weight}: {} drawn alone", noisy.measure.key())
            };
            let ratio = noisy.noise.std_dev() / reference.noise.std_dev();
            if weight < 8.0 {
                assert!((ratio - 1.0).abs() <= 1e-9, "weight {weight}: {ratio}");
                continue;
            }
            // The plateau is on the centred sum: less noise on the rows, more on it.
            let reach = joint.plateau_reach().expect("a plateau at weight 8");
            if noisy.measure.key() == "rows" {
                assert!(reach.abs() < f64::EPSILON, "{reach}");
                assert!(ratio < 0.95, "{ratio}");
                assert_eq!(
                    noisy.noise.mechanism_name(),
                    "joint-plateau (flat on another measure)"
                );
            } else {
                assert!(reach > 0.0);
                assert!(ratio > 1.0, "{ratio}");
                assert!(
                    noisy
                        .noise
                        .mechanism_name()
                        .starts_with("joint-plateau (flat to ")
                );
            }
        }
    }
}
