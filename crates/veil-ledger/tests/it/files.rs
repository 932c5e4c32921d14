//! Files that are not (current) Veil ledgers are refused with a message naming the file.

use std::path::Path;

use veil_ledger::SqliteLedger;

fn open_error(path: &Path) -> String {
    let error = SqliteLedger::open(path).expect_err("refused");
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

#[test]
fn a_corrupt_file_is_refused() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    std::fs::write(&path, vec![0x5a_u8; 8192]).expect("written");
    let message = open_error(&path);
    assert!(message.contains("not a Veil ledger"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn a_foreign_sqlite_file_is_refused() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("other.sqlite");
    let connection = rusqlite::Connection::open(&path).expect("opens");
    connection
        .execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);")
        .expect("created");
    drop(connection);
    let message = open_error(&path);
    assert!(
        message.contains("an SQLite database but not a Veil ledger"),
        "{message}"
    );
    assert!(message.contains("other.sqlite"), "{message}");
    // Nothing was written to it.
    let connection = rusqlite::Connection::open(&path).expect("opens");
    let tables: i64 = connection
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |row| row.get(0),
        )
        .expect("counted");
    assert_eq!(tables, 1);
}

#[test]
fn a_ledger_from_a_newer_veil_is_refused_and_a_missing_one_is_named() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    drop(SqliteLedger::create(&path).expect("created"));
    let connection = rusqlite::Connection::open(&path).expect("opens");
    connection
        .execute_batch("PRAGMA user_version = 99;")
        .expect("set");
    drop(connection);
    let message = open_error(&path);
    assert!(message.contains("newer than this Veil"), "{message}");
    let missing = directory.path().join("missing.sqlite");
    let message = open_error(&missing);
    assert!(message.contains("no ledger at"), "{message}");
    assert!(!missing.exists());
}

#[test]
fn an_empty_file_becomes_a_ledger_readable_by_any_sqlite_client() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    std::fs::write(&path, b"").expect("written");
    drop(SqliteLedger::open(&path).expect("an empty file is a new ledger"));
    let connection = rusqlite::Connection::open(&path).expect("opens");
    let mut statement = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("prepared");
    let tables: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .expect("queried")
        .collect::<Result<_, _>>()
        .expect("read");
    assert_eq!(
        tables,
        [
            "budget_amendments",
            "budgets",
            "cancellations",
            "charge_items",
            "charges",
            "diagnostics_not_private",
            "releases"
        ]
    );
}

#[test]
fn a_version_1_ledger_is_migrated_and_keeps_its_charges() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    let connection = rusqlite::Connection::open(&path).expect("opens");
    connection
        .execute_batch(veil_ledger::schema::VERSION_1)
        .expect("version 1 schema");
    connection
        .execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 1;
             INSERT INTO budgets (dataset, purpose, measure, epsilon, delta, period_seconds, created_at)
                 VALUES ('events', 'analytics', 'approx', 1.0, 0.0, NULL, 100);
             INSERT INTO charges (budget_id, job, job_hash, state, cost, created_at, updated_at)
                 VALUES (1, 'old', 'h', 'committed', 0.25, 100, 100),
                        (1, 'killed', 'h', 'reserved', 0.5, 200, 200);
             INSERT INTO charge_items (charge_id, label, mechanism, times)
                 VALUES (1, 'q', 'pure:epsilon=0.25', 1), (2, 'q', 'pure:epsilon=0.5', 1);
             INSERT INTO releases (charge_id, name, location, created_at)
                 VALUES (1, 'q', 'out/q.csv', 100);",
            veil_ledger::schema::APPLICATION_ID
        ))
        .expect("version 1 rows");
    drop(connection);

    let mut ledger = SqliteLedger::open(&path).expect("migrated");
    assert_eq!(
        ledger.schema_version().expect("version"),
        veil_ledger::schema::current_version()
    );
    let history = ledger.history().expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].state, veil_accountant::ChargeState::Committed);
    assert_eq!(history[0].releases.len(), 1);
    assert_eq!(history[1].state, veil_accountant::ChargeState::Reserved);
    assert_eq!(history[1].owner, None);
    let key = crate::key();
    let spent = |ledger: &SqliteLedger| {
        veil_accountant::BudgetLedger::status(ledger, &key)
            .expect("status")
            .spent
            .amount()
    };
    assert!((spent(&ledger) - 0.75).abs() < 1e-9);
    // Who reserved the old charge was not recorded: only the operator can vouch for it.
    let refused = ledger
        .cancel(2, veil_ledger::CancelCheck::RunGone, "")
        .expect_err("unknown owner");
    assert!(refused.to_string().contains("--force"), "{refused}");
    ledger
        .cancel(
            2,
            veil_ledger::CancelCheck::OperatorVouches,
            "killed in 2025",
        )
        .expect("vouched");
    assert!((spent(&ledger) - 0.25).abs() < 1e-9);
}

/// A version 2 ledger with a budget, a committed charge and a cancellation opens at the
/// current version with all of them, and its budget can be amended and listed.
#[test]
fn a_version_2_ledger_is_migrated_and_can_be_amended() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    let connection = rusqlite::Connection::open(&path).expect("opens");
    connection
        .execute_batch(veil_ledger::schema::VERSION_1)
        .expect("version 1 schema");
    connection
        .execute_batch(veil_ledger::schema::VERSION_2)
        .expect("version 2 schema");
    connection
        .execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 2;
             INSERT INTO budgets (dataset, purpose, measure, epsilon, delta, period_seconds, created_at)
                 VALUES ('events', 'analytics', 'approx', 1.0, 0.0, NULL, 100);
             INSERT INTO charges (budget_id, job, job_hash, state, cost, created_at, updated_at,
                                  owner_host, owner_pid)
                 VALUES (1, 'daily', 'h', 'committed', 0.25, 100, 100, 'vm', 7),
                        (1, 'killed', 'h', 'cancelled', 0.5, 200, 300, 'vm', 8);
             INSERT INTO charge_items (charge_id, label, mechanism, times)
                 VALUES (1, 'q', 'pure:epsilon=0.25', 1), (2, 'q', 'pure:epsilon=0.5', 1);
             INSERT INTO cancellations (charge_id, cancelled_at, evidence, note, by_host, by_pid)
                 VALUES (2, 300, 'its process ended', 'OOM', 'vm', 9);",
            veil_ledger::schema::APPLICATION_ID
        ))
        .expect("version 2 rows");
    drop(connection);

    let mut ledger = SqliteLedger::open(&path).expect("migrated");
    assert_eq!(
        ledger.schema_version().expect("version"),
        veil_ledger::schema::current_version()
    );
    let history = ledger.history().expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[1].cancellation.as_ref().map(|c| c.note.as_str()),
        Some("OOM")
    );
    assert!(ledger.amendments().expect("none yet").is_empty());
    let (_, after) = ledger
        .amend_budget(
            &crate::key(),
            veil_ledger::TotalChange::Approx {
                epsilon: 2.0,
                delta: None,
            },
            "migrated and raised",
        )
        .expect("amends");
    assert!(
        (after.status.spent.amount() - 0.25).abs() < 1e-9,
        "{after:?}"
    );
    assert_eq!(ledger.amendments().expect("one").len(), 1);
}
