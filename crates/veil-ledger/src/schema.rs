//! The ledger's schema and its migrations.
//!
//! A Veil ledger is marked by `PRAGMA application_id` ([`APPLICATION_ID`]) and records its
//! schema version in `PRAGMA user_version`. Opening a ledger applies the migrations it
//! lacks, in one transaction; a file from a newer Veil is refused.

/// `PRAGMA application_id` of a Veil ledger: "VEIL" in ASCII.
pub const APPLICATION_ID: i32 = 0x5645_494C;

/// Each migration takes the schema from version `index` to `index + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[VERSION_1, VERSION_2, VERSION_3];

/// The first schema: budgets, charges with their mechanisms, releases. Public so that
/// tests can build a ledger of that version and open it with this one.
pub const VERSION_1: &str = "
    CREATE TABLE budgets (
        id             INTEGER PRIMARY KEY,
        dataset        TEXT    NOT NULL,
        purpose        TEXT    NOT NULL,
        measure        TEXT    NOT NULL CHECK (measure IN ('approx', 'zcdp')),
        epsilon        REAL,
        delta          REAL,
        rho            REAL,
        period_seconds INTEGER CHECK (period_seconds IS NULL OR period_seconds > 0),
        created_at     INTEGER NOT NULL,
        UNIQUE (dataset, purpose),
        CHECK ((measure = 'approx' AND epsilon >= 0 AND delta >= 0 AND delta < 1 AND rho IS NULL)
            OR (measure = 'zcdp' AND rho >= 0 AND epsilon IS NULL AND delta IS NULL))
    );
    CREATE TABLE charges (
        id         INTEGER PRIMARY KEY,
        budget_id  INTEGER NOT NULL REFERENCES budgets (id),
        job        TEXT    NOT NULL,
        job_hash   TEXT    NOT NULL,
        state      TEXT    NOT NULL CHECK (state IN ('reserved', 'committed', 'aborted')),
        cost       REAL    NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX charges_by_budget ON charges (budget_id, state, created_at);
    CREATE TABLE charge_items (
        id        INTEGER PRIMARY KEY,
        charge_id INTEGER NOT NULL REFERENCES charges (id),
        label     TEXT    NOT NULL,
        mechanism TEXT    NOT NULL,
        times     INTEGER NOT NULL CHECK (times >= 0)
    );
    CREATE INDEX charge_items_by_charge ON charge_items (charge_id);
    CREATE TABLE releases (
        id         INTEGER PRIMARY KEY,
        charge_id  INTEGER NOT NULL REFERENCES charges (id),
        name       TEXT    NOT NULL,
        location   TEXT    NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX releases_by_charge ON releases (charge_id);
";

// Version 2: who reserved each charge (to tell a killed run's reservation from a
// running one), the `cancelled` state and a record of each cancellation, and the
// exact diagnostics of a charge's run, which are not private. SQLite cannot change a
// CHECK constraint in place, so `charges` is rebuilt (its ids are kept).
/// The second schema's migration (public, as [`VERSION_1`], so that tests can build a
/// ledger of that version).
pub const VERSION_2: &str = "
    CREATE TABLE charges_v2 (
        id            INTEGER PRIMARY KEY,
        budget_id     INTEGER NOT NULL REFERENCES budgets (id),
        job           TEXT    NOT NULL,
        job_hash      TEXT    NOT NULL,
        state         TEXT    NOT NULL
                      CHECK (state IN ('reserved', 'committed', 'aborted', 'cancelled')),
        cost          REAL    NOT NULL,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        owner_host    TEXT,
        owner_pid     INTEGER,
        owner_started INTEGER,
        owner_boot    TEXT
    );
    INSERT INTO charges_v2 (id, budget_id, job, job_hash, state, cost, created_at, updated_at)
        SELECT id, budget_id, job, job_hash, state, cost, created_at, updated_at FROM charges;
    DROP TABLE charges;
    ALTER TABLE charges_v2 RENAME TO charges;
    CREATE INDEX charges_by_budget ON charges (budget_id, state, created_at);
    CREATE TABLE cancellations (
        charge_id    INTEGER PRIMARY KEY REFERENCES charges (id),
        cancelled_at INTEGER NOT NULL,
        evidence     TEXT    NOT NULL,
        note         TEXT    NOT NULL,
        by_host      TEXT    NOT NULL,
        by_pid       INTEGER NOT NULL
    );
    CREATE TABLE diagnostics_not_private (
        charge_id   INTEGER NOT NULL REFERENCES charges (id),
        name        TEXT    NOT NULL,
        count       INTEGER NOT NULL CHECK (count >= 0),
        recorded_at INTEGER NOT NULL,
        PRIMARY KEY (charge_id, name)
    );
";

// Version 3: a record of each change to a budget's total (`veil budget amend`): the
// budgets row holds the total in force, this table how it came to be.
const VERSION_3: &str = "
    CREATE TABLE budget_amendments (
        id         INTEGER PRIMARY KEY,
        budget_id  INTEGER NOT NULL REFERENCES budgets (id),
        amended_at INTEGER NOT NULL,
        old_epsilon REAL,
        old_delta   REAL,
        old_rho     REAL,
        new_epsilon REAL,
        new_delta   REAL,
        new_rho     REAL,
        note       TEXT    NOT NULL CHECK (trim(note) <> ''),
        by_host    TEXT    NOT NULL,
        by_pid     INTEGER NOT NULL
    );
    CREATE INDEX budget_amendments_by_budget ON budget_amendments (budget_id, id);
";

/// The schema version this build writes.
#[must_use]
pub fn current_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}
