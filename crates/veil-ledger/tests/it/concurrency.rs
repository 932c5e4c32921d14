//! Many processes on one ledger file. The test binary re-runs itself as the child
//! processes: `child_process` does nothing unless `VEIL_LEDGER_CHILD` says what to do.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use veil_accountant::{BudgetError, BudgetLedger, ChargeState, PrivacyBudget, ReleaseRecord};
use veil_ledger::SqliteLedger;

use crate::{charge, key};

const MODE: &str = "VEIL_LEDGER_CHILD";
const LEDGER: &str = "VEIL_LEDGER_PATH";

/// The body of a child process; a no-op in a normal test run.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    let path = std::env::var(LEDGER).expect("the parent gives the ledger path");
    let mut ledger = SqliteLedger::open(Path::new(&path)).expect("the ledger opens");
    let mut stdout = std::io::stdout();
    match mode.as_str() {
        // Take 1/8 of the budget at a time until refused; print how many were granted.
        "race" => {
            let mut granted = 0;
            loop {
                match ledger.reserve(&key(), &charge("laplace:epsilon=0.125")) {
                    Ok(reservation) => {
                        ledger.commit(&reservation).expect("commit");
                        granted += 1;
                    }
                    Err(BudgetError::Exhausted(_)) => break,
                    Err(error) => panic!("unexpected: {error}"),
                }
            }
            writeln!(stdout, "granted {granted}").expect("stdout");
        }
        // Reserve, say so, and wait to be killed before committing.
        "hang" => {
            let reservation = ledger
                .reserve(&key(), &charge("laplace:epsilon=0.5"))
                .expect("reserve");
            writeln!(stdout, "reserved {}", reservation.id).expect("stdout");
            stdout.flush().expect("stdout");
            std::thread::sleep(Duration::from_secs(600));
        }
        // Reserve, commit, release, abort, as fast as possible, until killed.
        "churn" => {
            writeln!(stdout, "started").expect("stdout");
            stdout.flush().expect("stdout");
            for round in 0_u64.. {
                // A job does some work between charges; without it one process could
                // hold the lock nearly all the time and starve the others.
                std::thread::sleep(Duration::from_millis(2));
                let Ok(reservation) = ledger.reserve(&key(), &charge("gaussian:sigma=50")) else {
                    continue;
                };
                if round % 3 == 0 {
                    ledger.abort(&reservation).expect("abort");
                } else {
                    ledger.commit(&reservation).expect("commit");
                    let release = ReleaseRecord {
                        name: format!("q{round}"),
                        location: "out.csv".to_string(),
                    };
                    ledger
                        .record_release(&reservation, &release)
                        .expect("release");
                }
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn spawn(mode: &str, path: &Path) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "concurrency::child_process",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(MODE, mode)
        .env(LEDGER, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the child starts")
}

/// The first line of a child's output that starts with `prefix`.
fn line_starting(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).expect("readable stdout");
        assert!(read > 0, "the child ended before printing {prefix:?}");
        if line.starts_with(prefix) {
            return line.trim().to_string();
        }
    }
}

fn integrity_ok(path: &Path) {
    let connection = rusqlite::Connection::open(path).expect("opens");
    let result: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity check runs");
    assert_eq!(result, "ok");
}

#[test]
fn twenty_processes_racing_for_the_last_of_a_budget_never_overspend() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    let mut ledger = SqliteLedger::create(&path).expect("created");
    let total = PrivacyBudget::Approx {
        epsilon: 1.0,
        delta: 0.0,
    };
    ledger.init_budget(&key(), total, None).expect("budget");
    let mut children: Vec<Child> = (0..20).map(|_| spawn("race", &path)).collect();
    let mut granted = 0;
    for child in &mut children {
        let line = line_starting(child, "granted ");
        granted += line["granted ".len()..].parse::<u32>().expect("a count");
        assert!(child.wait().expect("the child ends").success());
    }
    // Eight charges of ε = 1/8 fill ε = 1 exactly; no more may be granted.
    assert_eq!(granted, 8);
    let status = ledger.status(&key()).expect("status");
    assert!(status.spent.amount() <= 1.0, "{status:?}");
    let history = ledger.history().expect("history");
    assert_eq!(history.len(), 8);
    assert!(history.iter().all(|c| c.state == ChargeState::Committed));
    integrity_ok(&path);
}

#[test]
fn a_job_killed_between_reserve_and_commit_keeps_its_charge() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    let mut ledger = SqliteLedger::create(&path).expect("created");
    let total = PrivacyBudget::Approx {
        epsilon: 1.0,
        delta: 0.0,
    };
    ledger.init_budget(&key(), total, None).expect("budget");
    let mut child = spawn("hang", &path);
    let line = line_starting(&mut child, "reserved ");
    child.kill().expect("killed");
    child.wait().expect("reaped");
    integrity_ok(&path);
    let id: i64 = line["reserved ".len()..].parse().expect("an id");
    let history = ledger.history().expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, id);
    assert_eq!(history[0].state, ChargeState::Reserved);
    // The reserved budget stays spent: lost to the crash, never given back silently.
    let status = ledger.status(&key()).expect("status");
    assert!((status.spent.amount() - 0.5).abs() < 1e-12, "{status:?}");
    assert!(
        ledger
            .reserve(&key(), &charge("laplace:epsilon=0.75"))
            .is_err()
    );
    assert!(
        ledger
            .reserve(&key(), &charge("laplace:epsilon=0.5"))
            .is_ok()
    );
}

#[test]
fn jobs_killed_at_any_point_leave_a_consistent_ledger() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    let mut ledger = SqliteLedger::create(&path).expect("created");
    let total = PrivacyBudget::Approx {
        epsilon: 1000.0,
        delta: 1e-6,
    };
    ledger.init_budget(&key(), total, None).expect("budget");
    for delay in [30_u64, 70, 150] {
        let mut children: Vec<Child> = (0..3).map(|_| spawn("churn", &path)).collect();
        for child in &mut children {
            line_starting(child, "started");
        }
        std::thread::sleep(Duration::from_millis(delay));
        for child in &mut children {
            child.kill().expect("killed");
            child.wait().expect("reaped");
        }
    }
    integrity_ok(&path);
    let history = ledger.history().expect("history");
    assert!(!history.is_empty());
    for record in &history {
        // Releases exist only under committed charges.
        if !record.releases.is_empty() {
            assert_eq!(record.state, ChargeState::Committed, "{record:?}");
        }
        assert_eq!(record.items.len(), 1, "{record:?}");
    }
    let status = ledger.status(&key()).expect("status");
    assert!(status.spent.amount() <= 1000.0);
}

/// Holds the ledger's file with an exclusive transaction, as an SQLite client or a
/// stuck process would.
fn hold(path: &Path) -> rusqlite::Connection {
    let holder = rusqlite::Connection::open(path).expect("opens");
    holder
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("takes the lock");
    holder
}

/// What a ledger's lock-wait hook was told: the file and the timeout, once per call.
type Told = std::sync::Arc<std::sync::Mutex<Vec<(std::path::PathBuf, Duration)>>>;

fn waiting_ledger(timeout: Duration) -> (veil_ledger::OpenOptions, Told) {
    let told = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&told);
    let mut options = veil_ledger::OpenOptions::new();
    options
        .lock_timeout(timeout)
        .on_lock_wait(move |path, timeout| {
            sink.lock()
                .expect("not poisoned")
                .push((path.to_path_buf(), timeout));
        });
    (options, told)
}

#[test]
fn a_locked_ledger_says_so_at_once_and_gives_up_after_its_timeout() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    let mut ledger = SqliteLedger::create(&path).expect("created");
    ledger
        .init_budget(
            &key(),
            PrivacyBudget::Approx {
                epsilon: 1.0,
                delta: 0.0,
            },
            None,
        )
        .expect("budget");
    drop(ledger);
    let holder = hold(&path);

    let (options, told) = waiting_ledger(Duration::from_millis(400));
    let started = std::time::Instant::now();
    let error = SqliteLedger::open_with(&path, &options).expect_err("locked");
    let elapsed = started.elapsed();
    let BudgetError::Locked { ledger, waited } = &error else {
        panic!("not a lock error: {error}");
    };
    assert_eq!(ledger, &path.display().to_string());
    assert!(*waited >= Duration::from_millis(400), "{waited:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let message = error.to_string();
    assert!(message.contains("held by another process"), "{message}");
    assert!(message.contains("gave up after waiting 0.4"), "{message}");
    assert_eq!(
        *told.lock().expect("not poisoned"),
        [(path.clone(), Duration::from_millis(400))]
    );

    // A lock released in time: the ledger says it waits, then goes on.
    let (options, told) = waiting_ledger(Duration::from_secs(30));
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        holder.execute_batch("COMMIT").expect("released");
    });
    let mut ledger = SqliteLedger::open_with(&path, &options).expect("opens after the wait");
    release.join().expect("released");
    assert_eq!(told.lock().expect("not poisoned").len(), 1);
    let reservation = ledger
        .reserve(&key(), &charge("laplace:epsilon=0.5"))
        .expect("reserved");

    // A reserve that finds the lock taken waits, then fails naming the file.
    let holder = hold(&path);
    let mut options = veil_ledger::OpenOptions::new();
    options.lock_timeout(Duration::ZERO);
    // Opening only reads, and an exclusive lock blocks reads too.
    assert!(matches!(
        SqliteLedger::open_with(&path, &options),
        Err(BudgetError::Locked { .. })
    ));
    drop(holder);
    let mut impatient = SqliteLedger::open_with(&path, &options).expect("opens");
    let holder = {
        let holder = rusqlite::Connection::open(&path).expect("opens");
        holder.execute_batch("BEGIN IMMEDIATE").expect("write lock");
        holder
    };
    assert!(matches!(
        impatient.reserve(&key(), &charge("laplace:epsilon=0.25")),
        Err(BudgetError::Locked { .. })
    ));
    // Reads still go on under another process's write lock.
    assert!(ledger.status(&key()).is_ok());
    drop(holder);
    ledger
        .commit(&reservation)
        .expect("committed once the lock is free");
}

#[test]
fn a_killed_jobs_reservation_is_cancelled_only_once_its_process_is_gone() {
    if !Path::new("/proc/self/stat").exists() {
        return; // Liveness cannot be checked without /proc.
    }
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("ledger.sqlite");
    let mut ledger = SqliteLedger::create(&path).expect("created");
    let total = PrivacyBudget::Approx {
        epsilon: 1.0,
        delta: 0.0,
    };
    ledger.init_budget(&key(), total, None).expect("budget");
    let mut child = spawn("hang", &path);
    let line = line_starting(&mut child, "reserved ");
    let id: i64 = line["reserved ".len()..].parse().expect("an id");
    let reserved = ledger.reservations().expect("reservations");
    assert_eq!(reserved.len(), 1);
    assert_eq!(
        reserved[0].owner.as_ref().map(|owner| owner.pid),
        Some(child.id())
    );
    assert_eq!(
        reserved[0].owner.as_ref().map(veil_ledger::Owner::liveness),
        Some(veil_ledger::Liveness::Running)
    );
    // While its run is alive, the reservation stays, even when the operator insists.
    let refused = ledger
        .cancel(id, veil_ledger::CancelCheck::OperatorVouches, "")
        .expect_err("running");
    assert!(refused.to_string().contains("still running"), "{refused}");

    child.kill().expect("killed");
    child.wait().expect("reaped");
    let record = ledger
        .cancel(id, veil_ledger::CancelCheck::RunGone, "killed -9")
        .expect("cancelled");
    assert!(
        record
            .evidence
            .contains(&format!("no process {}", child.id()))
    );
    let history = ledger.history().expect("history");
    assert_eq!(history[0].state, ChargeState::Cancelled);
    assert!(history[0].releases.is_empty());
    assert!(ledger.status(&key()).expect("status").spent.amount() < 1e-12);
    integrity_ok(&path);
}
