use predicates::prelude::*;
use serde_json::Value;

use crate::veil;

fn json_output(args: &[&str]) -> Value {
    let output = veil()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&output).expect("calibrate prints JSON")
}

fn samples(args: &[&str]) -> Vec<i64> {
    let output = veil()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(output)
        .expect("utf-8")
        .lines()
        .map(|line| line.parse().expect("one integer per line"))
        .collect()
}

#[test]
fn sample_prints_one_integer_per_line() {
    let values = samples(&[
        "noise",
        "sample",
        "--mechanism",
        "discrete-laplace",
        "--scale",
        "5/2",
        "--count",
        "1000",
    ]);
    assert_eq!(values.len(), 1000);
    assert!(values.iter().any(|&v| v != 0));
}

#[test]
fn seeded_samples_are_reproducible_and_say_so() {
    let args = [
        "noise",
        "sample",
        "--mechanism",
        "discrete-gaussian",
        "--sigma",
        "3",
        "--count",
        "50",
        "--seed",
        "7",
    ];
    assert_eq!(samples(&args), samples(&args));
    veil()
        .args(args)
        .assert()
        .success()
        .stderr(predicate::str::contains("NOT private"));
}

#[test]
fn unseeded_samples_differ_between_runs() {
    let args = [
        "noise",
        "sample",
        "--mechanism",
        "discrete-laplace",
        "--scale",
        "1000",
        "--count",
        "20",
    ];
    assert_ne!(samples(&args), samples(&args));
    veil()
        .args(args)
        .assert()
        .success()
        .stderr(predicate::str::is_empty());
}

#[test]
fn sampled_laplace_fits_its_distribution() {
    // Scales are read exactly: 2.5 and 5/2 are the same distribution.
    let values = samples(&[
        "noise",
        "sample",
        "--mechanism",
        "discrete-laplace",
        "--scale",
        "2.5",
        "--count",
        "100000",
        "--seed",
        "11",
    ]);
    let q = (-1.0 / 2.5_f64).exp();
    #[allow(clippy::cast_precision_loss)]
    let cdf = move |x: i64| {
        if x >= 0 {
            1.0 - q.powf(x as f64 + 1.0) / (1.0 + q)
        } else {
            q.powf(-(x as f64)) / (1.0 + q)
        }
    };
    let fit = veil_testkit::chi_square_cdf(&values, cdf, 40);
    assert!(fit.passes(), "{fit:?}");
}

#[test]
fn calibrate_gaussian_uses_the_analytic_mechanism() {
    let output = json_output(&[
        "noise",
        "calibrate",
        "--mechanism",
        "gaussian",
        "--epsilon",
        "1",
        "--delta",
        "1e-5",
        "--sensitivity",
        "1",
    ]);
    assert_eq!(output["mechanism"], "gaussian");
    let sigma = output["sigma"].as_f64().expect("sigma is a number");
    assert!((sigma - 3.730_631_634_8).abs() < 1e-6, "{sigma}");
}

#[test]
fn calibrate_laplace_is_sensitivity_over_epsilon() {
    let output = json_output(&[
        "noise",
        "calibrate",
        "--mechanism",
        "laplace",
        "--epsilon",
        "0.5",
        "--sensitivity",
        "2",
    ]);
    assert_eq!(output["mechanism"], "laplace");
    assert_eq!(output["scale"].as_f64(), Some(4.0));
}

#[test]
fn calibrate_zcdp_and_discrete() {
    let output = json_output(&[
        "noise",
        "calibrate",
        "--mechanism",
        "gaussian",
        "--rho",
        "0.5",
        "--sensitivity",
        "1",
    ]);
    assert!((output["sigma"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    let output = json_output(&[
        "noise",
        "calibrate",
        "--mechanism",
        "discrete-gaussian",
        "--epsilon",
        "1",
        "--delta",
        "1e-6",
    ]);
    assert_eq!(output["mechanism"], "discrete-gaussian");
    assert!(output["sigma"].as_f64().unwrap() > 4.0);
}

#[test]
fn invalid_input_exits_with_usage_error_and_names_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "noise",
                "calibrate",
                "--mechanism",
                "gaussian",
                "--epsilon",
                "0",
                "--delta",
                "1e-6",
            ],
            "epsilon = 0 is out of range",
        ),
        (
            &[
                "noise",
                "calibrate",
                "--mechanism",
                "gaussian",
                "--epsilon",
                "1",
                "--delta",
                "1",
            ],
            "delta = 1 is out of range",
        ),
        (
            &[
                "noise",
                "calibrate",
                "--mechanism",
                "gaussian",
                "--epsilon",
                "1",
            ],
            "needs --delta",
        ),
        (
            &[
                "noise",
                "calibrate",
                "--mechanism",
                "laplace",
                "--epsilon",
                "-1",
            ],
            "epsilon = -1 is out of range",
        ),
        (
            &[
                "noise",
                "calibrate",
                "--mechanism",
                "laplace",
                "--epsilon",
                "1",
                "--delta",
                "1e-6",
            ],
            "pure ε-DP",
        ),
        (
            &[
                "noise",
                "calibrate",
                "--mechanism",
                "laplace",
                "--epsilon",
                "nan",
            ],
            "epsilon = NaN",
        ),
        (
            &[
                "noise",
                "calibrate",
                "--mechanism",
                "discrete-gaussian",
                "--epsilon",
                "1",
                "--delta",
                "1e-6",
                "--sensitivity",
                "0.5",
            ],
            "--sensitivity 0.5",
        ),
        (
            &[
                "noise",
                "sample",
                "--mechanism",
                "discrete-laplace",
                "--scale",
                "0",
            ],
            "scale = 0",
        ),
        (
            &[
                "noise",
                "sample",
                "--mechanism",
                "discrete-laplace",
                "--scale",
                "-1",
            ],
            "cannot read \"-1\"",
        ),
        (
            &["noise", "sample", "--mechanism", "discrete-laplace"],
            "needs --scale",
        ),
        (
            &[
                "noise",
                "sample",
                "--mechanism",
                "discrete-gaussian",
                "--scale",
                "2",
            ],
            "takes --sigma",
        ),
        (
            &[
                "noise",
                "sample",
                "--mechanism",
                "discrete-gaussian",
                "--sigma",
                "x",
            ],
            "cannot read \"x\"",
        ),
        (
            &["noise", "sample", "--mechanism", "uniform", "--scale", "1"],
            "invalid value 'uniform'",
        ),
    ];
    for (args, message) in cases {
        veil()
            .args(*args)
            .assert()
            .code(2)
            .stdout(predicate::str::is_empty())
            .stderr(predicate::str::contains(*message));
    }
}
