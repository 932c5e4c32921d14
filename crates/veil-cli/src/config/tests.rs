use super::*;
use veil_engine::job::{JobBudget, OutputFormat, Partitions, Selection, SourceFormat};

const VALID: &str = r#"
[source]
path = "data/events.parquet"
privacy_unit = "user_id"

[budget]
ledger = "veil-ledger.sqlite"
dataset = "events"
purpose = "analytics"
epsilon = 1.0
delta = 1e-6

[[query]]
name = "by_country"
group_by = ["country"]
max_groups_per_unit = 3
max_rows_per_group = 5
aggregates = [
  { kind = "count" },
  { kind = "unit_count" },
  { kind = "sum", column = "value", bounds = [0.0, 100.0] },
  { kind = "mean", column = "value", bounds = [0.0, 100.0] },
  { kind = "quantiles", column = "value", bounds = [0.0, 100.0], q = [0.5, 0.9] },
]

[output]
path = "out/"
format = "csv"
"#;

fn load_text(text: &str) -> Result<LoadedJob, ConfigError> {
    parse(Path::new("job.toml"), text, AsOf::Now(0))
}

/// Replaces the first occurrence of `from` in the valid job and expects an error at `key`
/// whose message contains `message`.
fn check_error(from: &str, to: &str, key: &str, message: &str) {
    assert!(VALID.contains(from), "the valid job has no {from:?}");
    let text = VALID.replacen(from, to, 1);
    let error = load_text(&text).expect_err("the edited job must be refused");
    assert_eq!(error.key, key, "{error}");
    assert!(error.to_string().contains(message), "{error}");
}

#[test]
fn valid_job_converts() {
    let loaded = load_text(VALID).unwrap();
    let job = loaded.job;
    assert_eq!(job.name, "job");
    assert_eq!(job.source.format, SourceFormat::Parquet);
    assert_eq!(job.queries.len(), 1);
    assert_eq!(job.queries[0].aggregates.len(), 5);
    assert_eq!(job.queries[0].aggregates[2].name, "sum_value");
    assert_eq!(job.queries[0].partitions, Partitions::Private);
    assert!(matches!(job.budget, JobBudget::Approx(..)));
    assert_eq!(job.output.format, OutputFormat::Csv);
    assert_eq!(job.job_hash.len(), 64);
    assert_eq!(loaded.budget.dataset, "events");
}

#[test]
fn errors_name_the_key() {
    check_error(
        "max_rows_per_group = 5",
        "max_rows_per_group = 5\ncolour = 1",
        "query[0].colour",
        "unknown field `colour`",
    );
    check_error(
        "{ kind = \"count\" }",
        "{ kind = \"median\" }",
        "query[0].aggregates[0].kind",
        "unknown variant `median`",
    );
    check_error(
        "bounds = [0.0, 100.0] }",
        "bounds = [100.0, 0.0] }",
        "query[0].aggregates[2].bounds",
        "lower bound 100 is above upper bound 0",
    );
    check_error(
        "bounds = [0.0, 100.0] }",
        "bounds = [0.0, inf] }",
        "query[0].aggregates[2].bounds",
        "upper bound = inf",
    );
    check_error(
        "bounds = [0.0, 100.0] }",
        "bounds = [0.0] }",
        "query[0].aggregates[2].bounds",
        "expected two numbers",
    );
    check_error(
        "epsilon = 1.0",
        "epsilon = 0.0",
        "budget.epsilon",
        "epsilon = 0 is out of range",
    );
    check_error(
        "epsilon = 1.0",
        "epsilon = -2.0",
        "budget.epsilon",
        "out of range",
    );
    check_error(
        "delta = 1e-6",
        "delta = 1.0",
        "budget.delta",
        "delta = 1 is out of range",
    );
    check_error(
        "delta = 1e-6",
        "delta = 1e-6\nrho = 0.5",
        "budget.rho",
        "not both",
    );
    check_error(
        "max_groups_per_unit = 3\n",
        "",
        "query[0].max_groups_per_unit",
        "contribution bounds",
    );
    check_error(
        "{ kind = \"sum\", column = \"value\", bounds = [0.0, 100.0] }",
        "{ kind = \"sum\", bounds = [0.0, 100.0] }",
        "query[0].aggregates[2].column",
        "needs a column",
    );
    check_error(
        "q = [0.5, 0.9]",
        "q = 0.5",
        "query[0].aggregates[4].q",
        "invalid type",
    );
    check_error(
        "{ kind = \"count\" }",
        "{ kind = \"count\", column = \"value\" }",
        "query[0].aggregates[0].column",
        "take no column",
    );
    check_error(
        "format = \"csv\"",
        "format = \"xlsx\"",
        "output.format",
        "unknown variant `xlsx`",
    );
    check_error(
        "group_by = [\"country\"]",
        "group_by = [\"country\"]\npartitions = \"secret\"",
        "query[0].partitions",
        "expected \"private\"",
    );
    check_error(
        "group_by = [\"country\"]",
        "group_by = [\"country\"]\npartitions = { public = \"/nonexistent/keys.csv\" }",
        "query[0].partitions",
        "cannot read keys file",
    );
    check_error(
        "max_rows_per_group = 5",
        "max_rows_per_group = -5",
        "query[0].max_rows_per_group",
        "invalid value",
    );
}

#[test]
fn syntax_errors_point_at_the_line() {
    let error = load_text("[source]\npath = \n").unwrap_err();
    assert!(error.to_string().contains("line 2"), "{error}");
}

#[test]
fn no_queries_is_an_error() {
    let text = VALID.split("[[query]]").next().unwrap().to_string() + "[output]\npath = \"out\"\n";
    let error = load_text(&text).unwrap_err();
    assert_eq!(error.key, "query");
}

#[test]
fn selection_is_released_or_units_and_only_for_private_partitions() {
    assert_eq!(
        load_text(VALID).unwrap().job.queries[0].selection,
        Selection::Released
    );
    let units = VALID.replacen(
        "max_rows_per_group = 5",
        "max_rows_per_group = 5\nselection = \"units\"",
        1,
    );
    assert_eq!(
        load_text(&units).unwrap().job.queries[0].selection,
        Selection::Units
    );
    check_error(
        "max_rows_per_group = 5",
        "max_rows_per_group = 5\nselection = \"people\"",
        "query[0].selection",
        "unknown variant `people`",
    );
    let directory = tempfile::tempdir().unwrap();
    let keys = directory.path().join("countries.csv");
    std::fs::write(&keys, "country\nDE\n").unwrap();
    let public = VALID.replacen(
        "group_by = [\"country\"]",
        &format!(
            "group_by = [\"country\"]\npartitions = {{ public = \"{}\" }}\nselection = \"units\"",
            keys.display()
        ),
        1,
    );
    let error = load_text(&public).expect_err("public partitions select nothing");
    assert_eq!(error.key, "query[0].selection", "{error}");
    assert!(
        error.to_string().contains("private partitions only"),
        "{error}"
    );
}

#[test]
fn public_keys_are_read_from_csv() {
    let directory = tempfile::tempdir().unwrap();
    let keys = directory.path().join("countries.csv");
    std::fs::write(&keys, "region,country\neu,DE\neu,FR\nam,US\n").unwrap();
    let text = VALID.replacen(
        "group_by = [\"country\"]",
        &format!(
            "group_by = [\"country\"]\npartitions = {{ public = \"{}\" }}",
            keys.display()
        ),
        1,
    );
    let job = load_text(&text).unwrap().job;
    let Partitions::Public { keys, .. } = &job.queries[0].partitions else {
        panic!("public partitions expected")
    };
    assert_eq!(
        keys,
        &vec![
            vec!["DE".to_string()],
            vec!["FR".to_string()],
            vec!["US".to_string()]
        ]
    );
}

#[test]
fn pure_and_zcdp_budgets() {
    let pure = load_text(&VALID.replacen("delta = 1e-6\n", "", 1)).unwrap();
    assert!(matches!(pure.job.budget, JobBudget::Pure(_)));
    let zcdp = load_text(&VALID.replacen("epsilon = 1.0\ndelta = 1e-6", "rho = 0.25", 1)).unwrap();
    assert!(matches!(zcdp.job.budget, JobBudget::Zcdp(_)));
}

#[test]
fn bounds_take_a_number_or_auto_and_say_so_otherwise() {
    let auto = VALID
        .replacen(
            "max_groups_per_unit = 3",
            "max_groups_per_unit = \"auto\"",
            1,
        )
        .replacen(
            "{ kind = \"sum\", column = \"value\", bounds = [0.0, 100.0] }",
            "{ kind = \"sum\", column = \"value\", bounds = \"auto\" }",
            1,
        );
    load_text(&auto).expect("\"auto\" is accepted for counts and bounds");
    check_error(
        "max_groups_per_unit = 3",
        "max_groups_per_unit = \"atuo\"",
        "query[0].max_groups_per_unit",
        "neither a number nor \"auto\"",
    );
    check_error(
        "max_rows_per_group = 5",
        "max_rows_per_group = -5",
        "query[0].max_rows_per_group",
        "a whole number of at least 1, or \"auto\"",
    );
}

#[test]
fn a_quantile_interval_is_value_or_rank_and_only_for_quantiles() {
    use veil_engine::job::{AggregateKind, QuantileInterval};
    let interval_of = |text: &str| match &load_text(text).unwrap().job.queries[0].aggregates[4].kind
    {
        AggregateKind::Quantiles { interval, .. } => *interval,
        other => panic!("quantiles expected, got {other:?}"),
    };
    assert_eq!(interval_of(VALID), QuantileInterval::Value);
    let rank = VALID.replacen(
        "q = [0.5, 0.9] }",
        "q = [0.5, 0.9], interval = \"rank\" }",
        1,
    );
    assert_eq!(interval_of(&rank), QuantileInterval::Rank);
    check_error(
        "q = [0.5, 0.9] }",
        "q = [0.5, 0.9], interval = \"values\" }",
        "query[0].aggregates[4].interval",
        "unknown variant `values`",
    );
    check_error(
        "{ kind = \"mean\", column = \"value\", bounds = [0.0, 100.0] }",
        "{ kind = \"mean\", column = \"value\", bounds = [0.0, 100.0], interval = \"rank\" }",
        "query[0].aggregates[3].interval",
        "only quantiles take interval",
    );
}
