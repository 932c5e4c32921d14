//! Rendered reports against snapshots (update with `UPDATE_EXPECT=1 cargo test`), and the
//! HTML's self-containment.

use expect_test::expect_file;
use veil_core::Epsilon;
use veil_report::{DataOrigin, NoiseShape, Report, ReportOptions, build, charts};

use crate::fixtures::{Planner, input};

fn report(origin: DataOrigin) -> Report {
    let planner = Planner {
        shape: NoiseShape::Gaussian,
        selection: true,
    };
    let options = ReportOptions {
        epsilons: [0.5, 1.0, 2.0]
            .into_iter()
            .map(|e| Epsilon::new(e).unwrap())
            .collect(),
        trials: 50,
        target_error: 0.1,
    };
    let mut rng = veil_testkit::seeded_rng(1);
    build(&input(8, origin), &planner, &options, &mut rng).unwrap()
}

#[test]
fn text_markdown_and_json_match_their_snapshots() {
    let report = report(DataOrigin::Sample);
    expect_file!["snapshots/report.txt"].assert_eq(&report.to_text());
    expect_file!["snapshots/report.md"].assert_eq(&report.to_markdown());
    expect_file!["snapshots/report.json"].assert_eq(&report.to_json().unwrap());
}

#[test]
fn a_report_on_real_data_says_first_that_it_is_not_private() {
    let report = report(DataOrigin::Real);
    for rendering in [
        report.to_text(),
        report.to_markdown(),
        report.to_json().unwrap(),
    ] {
        let first = rendering
            .lines()
            .find(|line| !line.trim().is_empty() && line.trim() != "{")
            .unwrap();
        assert!(first.contains("NOT PRIVATE"), "{first}");
    }
    let html = report.to_html(&[]).unwrap();
    let body = html.split("<body>").nth(1).unwrap();
    assert!(
        body.trim_start()
            .starts_with("<p class=\"notice\">NOT PRIVATE")
    );
}

#[test]
fn html_loads_no_external_resource() {
    let report = report(DataOrigin::Sample);
    let charts = charts(&report).unwrap();
    assert_eq!(charts.len(), 3);
    for chart in &charts {
        assert!(chart.svg.starts_with("<svg"), "{}", chart.name);
        assert_eq!(&chart.png[..8], b"\x89PNG\r\n\x1a\n", "{}", chart.name);
    }
    let html = report.to_html(&charts).unwrap();
    assert!(html.contains("<svg"));
    let lower = html.to_lowercase();
    for forbidden in [
        "<script", "<link", "<img", "<iframe", "src=", "url(", "@import", "href=",
    ] {
        assert!(!lower.contains(forbidden), "the HTML contains {forbidden}");
    }
    // The only URLs are XML namespaces, which browsers do not fetch.
    for (at, _) in lower.match_indices("http") {
        let rest = &lower[at..];
        assert!(
            rest.starts_with("http://www.w3.org/2000/svg")
                || rest.starts_with("http://www.w3.org/1999/xlink"),
            "unexpected URL: {}",
            &rest[..rest.len().min(60)]
        );
    }
}

#[test]
fn charts_draw_a_single_group_and_a_single_aggregate() {
    let planner = Planner {
        shape: NoiseShape::Laplace,
        selection: false,
    };
    let mut input = input(1, DataOrigin::Sample);
    input.queries[0].aggregates.truncate(1);
    let options = ReportOptions {
        epsilons: vec![Epsilon::new(1.0).unwrap()],
        trials: 5,
        target_error: 0.1,
    };
    let mut rng = veil_testkit::seeded_rng(2);
    let report = build(&input, &planner, &options, &mut rng).unwrap();
    let charts = charts(&report).unwrap();
    assert!(charts.iter().all(|chart| chart.png.len() > 1000));
}
