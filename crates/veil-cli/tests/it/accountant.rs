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
    serde_json::from_slice(&output).expect("the command prints JSON")
}

fn epsilon(args: &[&str]) -> f64 {
    json_output(args)["epsilon"].as_f64().expect("epsilon")
}

#[test]
fn compose_prints_epsilon_delta_and_method() {
    let output = json_output(&[
        "accountant",
        "compose",
        "--delta",
        "1e-6",
        "gaussian:sigma=2,sensitivity=1,times=100",
    ]);
    assert_eq!(output["method"], "best");
    assert_eq!(output["tightest"], "pld");
    assert_eq!(output["delta"].as_f64(), Some(1e-6));
    // 100 Gaussians with σ = 2 are one with σ = 0.2: ε = 35.5663... at δ = 1e-6.
    let value = output["epsilon"].as_f64().expect("epsilon");
    assert!(value > 35.5663 && value < 35.5663 * 1.01, "{value}");
}

#[test]
fn every_method_is_an_upper_bound_and_best_is_the_smallest() {
    let specs = [
        "laplace:epsilon=0.1,times=10",
        "subsampled-gaussian:sigma=1.1,rate=0.01,times=1000",
    ];
    let mut args = vec!["accountant", "compose", "--delta", "1e-6", "--method"];
    let best = {
        let mut call = args.clone();
        call.push("best");
        call.extend(specs);
        epsilon(&call)
    };
    for method in ["pld", "rdp", "basic"] {
        let mut call = args.clone();
        call.push(method);
        call.extend(specs);
        let value = epsilon(&call);
        assert!(best <= value, "{method}: {value} < best {best}");
    }
    args.push("zcdp");
    args.extend(specs);
    veil()
        .args(&args)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "cannot compose subsampled-gaussian",
        ));
}

#[test]
fn bad_specs_are_usage_errors() {
    for (spec, message) in [
        ("gaussian:sigma=x", "not a number"),
        ("gauss:sigma=1", "unknown mechanism"),
        ("gaussian:sigma=1,rate=2", "takes sigma"),
    ] {
        veil()
            .args(["accountant", "compose", "--delta", "1e-6", spec])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(message));
    }
    veil()
        .args(["accountant", "compose", "--delta", "2", "gaussian:sigma=1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("delta"));
}

#[test]
fn calibrate_prints_the_smallest_sigma() {
    let output = json_output(&[
        "accountant",
        "calibrate",
        "--epsilon",
        "1",
        "--delta",
        "1e-6",
        "--times",
        "100",
        "--mechanism",
        "gaussian",
    ]);
    let sigma = output["sigma"].as_f64().expect("sigma");
    // √100 × the analytic Gaussian's σ for (1, 1e-6), 4.2247.
    assert!((sigma - 42.2468).abs() < 0.01, "{sigma}");
    // Composing 100 of them meets the target; 1% less noise does not.
    let at = |sigma: f64| {
        epsilon(&[
            "accountant",
            "compose",
            "--delta",
            "1e-6",
            &format!("gaussian:sigma={sigma},times=100"),
        ])
    };
    assert!(at(sigma) <= 1.0 + 1e-5);
    assert!(at(sigma * 0.99) > 1.0);
    let output = json_output(&[
        "accountant",
        "calibrate",
        "--epsilon",
        "1",
        "--times",
        "4",
        "--mechanism",
        "discrete-laplace",
        "--sensitivity",
        "3",
    ]);
    let scale = output["scale"].as_f64().expect("scale");
    assert!((scale - 12.0).abs() < 1e-3, "{scale}");
    veil()
        .args([
            "accountant",
            "calibrate",
            "--epsilon",
            "1",
            "--mechanism",
            "subsampled-gaussian",
            "--delta",
            "1e-6",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--rate"));
}
