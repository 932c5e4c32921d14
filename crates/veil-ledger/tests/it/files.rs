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
    assert_eq!(tables, ["budgets", "charge_items", "charges", "releases"]);
}
