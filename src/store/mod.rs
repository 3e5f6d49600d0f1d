//! The state database: one SQLite file, `paths.state/state.sqlite3`
//! (mode 0600). It holds what must outlive a process, by concern:
//! [`seeds`] (the seed ledger and frozen population digests, append-only:
//! triggers refuse UPDATE and DELETE, so a seed that was drawn stays
//! visible even if the run that drew it failed), [`outbox`] (the mail
//! queue), [`runs`] (the daemon's run ledger, the inbox files it has seen,
//! the append-only retention log), [`worksheets`] (returned
//! worksheets and their answers), [`passwords`] (the units'
//! attachment passwords) and [`due`] (what runs asked of units, until
//! it comes back).
//!
//! The store imports nothing of the program above it: it defines its own
//! plain row types, and states are enums stored as their text.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

pub mod chain;
pub mod due;
pub mod history;
pub mod outbox;
pub mod passwords;
pub mod retention;
pub mod runs;
pub mod seeds;
pub mod worksheets;

pub use chain::ChainEntry;
pub use due::{DueItem, Stage};
pub use history::Tracked;
pub use outbox::{MailState, NewMessage, OutboxRow};
pub use passwords::AttachmentPassword;
pub use runs::{LedgerRow, RunState, SeenInput};
pub use seeds::{Ceremony, FreezeRecord, SeedDraw, SeedVia};
pub use worksheets::{SignOff, TableReturn, WorksheetAnswer, WorksheetReturn};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {file}: {source}")]
    Sqlite {
        file: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "state database {file} failed its integrity check (PRAGMA quick_check): {detail}; nothing was run. Restore it from a backup, or move it aside to start a new one"
    )]
    Corrupt { file: String, detail: String },
    /// Two runs drew at once: the one that recorded second is refused.
    #[error(
        "{period} was already drawn (draw {draw} at {at}, run {run}), by another run while this one prepared; nothing was drawn now"
    )]
    AlreadyDrawn {
        period: String,
        draw: u32,
        at: String,
        run: String,
    },
    #[error("state folder {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// An open state database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    file: PathBuf,
}

/// The writes of one store method: its own immediate transaction, or,
/// inside [`Store::atomically`], a savepoint of the caller's transaction,
/// so that they land with the caller's other writes or not at all.
pub(crate) enum Tx<'a> {
    Own(rusqlite::Transaction<'a>),
    Inside(rusqlite::Savepoint<'a>),
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Tx::Own(t) => t,
            Tx::Inside(s) => s,
        }
    }
}

impl Tx<'_> {
    pub(crate) fn commit(self) -> rusqlite::Result<()> {
        match self {
            Tx::Own(t) => t.commit(),
            Tx::Inside(s) => s.commit(),
        }
    }
}

/// Begins a store method's writes ([`Tx`]). Its own transaction is
/// immediate: the write lock is taken before anything is read, so two
/// processes never both read a value and then both write from it.
pub(crate) fn begin(conn: &mut Connection) -> rusqlite::Result<Tx<'_>> {
    if conn.is_autocommit() {
        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map(Tx::Own)
    } else {
        conn.savepoint().map(Tx::Inside)
    }
}

impl Store {
    /// Runs `f` as one transaction: everything it writes to the store
    /// lands, or (an error, a crash) none of it does.
    pub fn atomically<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        anyhow::ensure!(
            self.conn.is_autocommit(),
            "a store transaction is already open"
        );
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self_err(&self.file, e))?;
        match f(self) {
            Ok(v) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    // Not left open for the store's next caller.
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(self_err(&self.file, e).into())
                }
            },
            Err(e) => {
                if let Err(r) = self.conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %r, "rolling back a store transaction");
                }
                Err(e)
            }
        }
    }
}

/// The outbox. `sending` is written just before a message's data goes to
/// the server, so a crash mid-transfer leaves a trace; a drain that finds
/// one (under the outbox lock, so no live process owns it) marks it
/// `unknown`.
const OUTBOX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    report TEXT NOT NULL,
    recipient TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    eml BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown')),
    attempts INTEGER NOT NULL DEFAULT 0,
    queued_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    sent_at TEXT,
    last_error TEXT,
    UNIQUE (run, report, recipient)
);
";

/// The daemon's run ledger. Its states are a CHECK constraint: a new
/// state is a migration ([`migrate_check`]).
const RUNS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    period TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('scheduled', 'waiting-for-inputs', 'waiting-for-seed',
        'running', 'generated', 'mailed', 'failed', 'missed')),
    started_at TEXT,
    heartbeat_at TEXT,
    finished_at TEXT,
    run_dir TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    alerted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (job, period)
);
";

/// The inputs the daemon has seen, and its first start.
const DAEMON_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inputs_seen (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    tbl TEXT,
    size INTEGER NOT NULL,
    modified TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    status TEXT NOT NULL,
    rows INTEGER NOT NULL,
    first_at TEXT,
    last_at TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS seed_draws (
    id INTEGER PRIMARY KEY,
    period TEXT NOT NULL,
    draw_number INTEGER NOT NULL,
    seed TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('given', 'os')),
    drawn_at TEXT NOT NULL,
    population_digest TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    UNIQUE (period, draw_number)
);
CREATE TRIGGER IF NOT EXISTS seed_draws_no_update BEFORE UPDATE ON seed_draws
BEGIN SELECT RAISE(ABORT, 'the seed ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS seed_draws_no_delete BEFORE DELETE ON seed_draws
BEGIN SELECT RAISE(ABORT, 'the seed ledger is append-only'); END;
CREATE TABLE IF NOT EXISTS freezes (
    id INTEGER PRIMARY KEY,
    period TEXT NOT NULL,
    frozen_at TEXT NOT NULL,
    population_digest TEXT NOT NULL,
    inputs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS worksheet_returns (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    answered INTEGER NOT NULL,
    anomalies INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS worksheet_answers (
    return_id INTEGER NOT NULL REFERENCES worksheet_returns(id),
    seq INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    queried_at TEXT NOT NULL,
    query_item TEXT NOT NULL,
    subject TEXT NOT NULL,
    form_filled TEXT NOT NULL,
    approved TEXT NOT NULL,
    matches TEXT NOT NULL,
    anomaly TEXT NOT NULL,
    note TEXT NOT NULL,
    auditor TEXT NOT NULL,
    audit_date TEXT NOT NULL,
    PRIMARY KEY (return_id, seq)
);
CREATE TABLE IF NOT EXISTS chain (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    digest TEXT NOT NULL,
    at TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE TRIGGER IF NOT EXISTS chain_no_update BEFORE UPDATE ON chain
BEGIN SELECT RAISE(ABORT, 'the evidence chain is append-only'); END;
CREATE TRIGGER IF NOT EXISTS chain_no_delete BEFORE DELETE ON chain
BEGIN SELECT RAISE(ABORT, 'the evidence chain is append-only'); END;
CREATE TABLE IF NOT EXISTS finding_history (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    first_run TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_run TEXT NOT NULL,
    times INTEGER NOT NULL,
    closed_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS finding_history_open
    ON finding_history (key) WHERE closed_at IS NULL;
CREATE TABLE IF NOT EXISTS table_returns (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    run_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    answered INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS returns_taken (
    file_sha256 TEXT PRIMARY KEY,
    taken_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS draw_resumes (
    period TEXT NOT NULL,
    draw_number INTEGER NOT NULL,
    run_dir TEXT NOT NULL,
    resumed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS return_sign_offs (
    return_id INTEGER PRIMARY KEY REFERENCES table_returns(id),
    filled_by TEXT NOT NULL,
    head TEXT NOT NULL,
    signed_on TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS table_return_rows (
    return_id INTEGER NOT NULL REFERENCES table_returns(id),
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    answers TEXT NOT NULL,
    PRIMARY KEY (return_id, seq)
);
CREATE TABLE IF NOT EXISTS due_items (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    run_id TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    sent_to TEXT NOT NULL,
    label TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    due_on TEXT NOT NULL,
    closed_at TEXT,
    closed_by TEXT,
    UNIQUE (job, run_id, unit_id)
);
CREATE TABLE IF NOT EXISTS due_handovers (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES due_items(id),
    from_address TEXT NOT NULL,
    to_address TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attachment_passwords (
    id INTEGER PRIMARY KEY,
    unit_id TEXT NOT NULL,
    password TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    retired_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS attachment_passwords_current
    ON attachment_passwords (unit_id) WHERE retired_at IS NULL;
CREATE TABLE IF NOT EXISTS retention_log (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    seal_sha256 TEXT NOT NULL,
    deleted_at TEXT NOT NULL,
    expired_on TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS retention_log_no_update BEFORE UPDATE ON retention_log
BEGIN SELECT RAISE(ABORT, 'the retention log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS retention_log_no_delete BEFORE DELETE ON retention_log
BEGIN SELECT RAISE(ABORT, 'the retention log is append-only'); END;
CREATE TABLE IF NOT EXISTS critical_notified (
    key TEXT PRIMARY KEY,
    run TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ceremonies (
    id INTEGER PRIMARY KEY,
    period TEXT NOT NULL,
    committed_at TEXT NOT NULL,
    population_digest TEXT NOT NULL,
    inputs TEXT NOT NULL,
    commitment TEXT NOT NULL,
    messages TEXT NOT NULL,
    seed TEXT,
    seed_at TEXT,
    seed_by TEXT,
    seed_via TEXT CHECK (seed_via IN ('command', 'inbox', 'os-fallback')),
    waited_alert INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER IF NOT EXISTS ceremonies_once BEFORE UPDATE ON ceremonies
WHEN OLD.seed IS NOT NULL OR NEW.period IS NOT OLD.period OR NEW.committed_at IS NOT OLD.committed_at
    OR NEW.population_digest IS NOT OLD.population_digest OR NEW.inputs IS NOT OLD.inputs
    OR NEW.commitment IS NOT OLD.commitment OR NEW.messages IS NOT OLD.messages
BEGIN SELECT RAISE(ABORT, 'a ceremony''s commitment and seed are written once'); END;
CREATE TRIGGER IF NOT EXISTS ceremonies_no_delete BEFORE DELETE ON ceremonies
BEGIN SELECT RAISE(ABORT, 'ceremonies are append-only'); END;
CREATE TRIGGER IF NOT EXISTS freezes_no_update BEFORE UPDATE ON freezes
BEGIN SELECT RAISE(ABORT, 'frozen digests are append-only'); END;
CREATE TRIGGER IF NOT EXISTS freezes_no_delete BEFORE DELETE ON freezes
BEGIN SELECT RAISE(ABORT, 'frozen digests are append-only'); END;
";

impl Store {
    /// Opens (creating if needed) `dir/state.sqlite3`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            file: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        #[cfg(unix)]
        {
            // The journal and WAL files SQLite creates inherit no mode of
            // ours; the folder keeps them private.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let file = dir.join("state.sqlite3");
        let sql = |source| StoreError::Sqlite {
            file: file.display().to_string(),
            source,
        };
        let conn = Connection::open(&file).map_err(sql)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        let setup = |conn: &Connection| -> rusqlite::Result<()> {
            conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
            conn.execute_batch(SCHEMA)?;
            migrate_check(conn, "outbox", "'unknown'", OUTBOX_SCHEMA)?;
            migrate_check(conn, "runs", "'waiting-for-seed'", RUNS_SCHEMA)?;
            conn.execute_batch(RUNS_SCHEMA)?;
            conn.execute_batch(DAEMON_SCHEMA)?;
            conn.execute_batch(OUTBOX_SCHEMA)?;
            conn.execute_batch(retention::SCHEMA)?;
            add_columns(conn, "outbox", retention::OUTBOX_COLUMNS)
        };
        // Two processes making a new database at once: SQLite may refuse
        // one at once (no waiting where waiting could deadlock). The
        // schema is idempotent: the refused one tries again.
        let started = std::time::Instant::now();
        loop {
            match setup(&conn) {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && started.elapsed() < std::time::Duration::from_secs(15) =>
                {
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(sql(e)),
            }
        }
        Ok(Store { conn, file })
    }

    /// Checks the database's pages and indexes (`PRAGMA quick_check`): a
    /// damaged file is refused before anything is run on it.
    pub fn check(&self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check")
            .map_err(|e| self.err(e))?;
        let lines: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        if lines.len() == 1 && lines[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                file: self.file.display().to_string(),
                detail: lines.join("; "),
            })
        }
    }

    /// The folder the state database is in.
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            file: self.file.display().to_string(),
            source,
        }
    }

    /// Runs raw SQL; for tests that prove the ledger refuses rewrites.
    #[doc(hidden)]
    pub fn execute_raw(&self, sql: &str) -> Result<usize, StoreError> {
        self.conn.execute(sql, []).map_err(|e| self.err(e))
    }
}

/// A state file from before a table's CHECK allowed a value (`marker`: the
/// outbox's `unknown`, the ledger's `waiting-for-seed`): the table is
/// copied into its current shape (SQLite cannot change a CHECK in place).
/// Adds the `columns` a table made by an earlier version lacks. Looked at
/// and added in one immediate transaction: two processes opening a new
/// database at once add each column once.
fn add_columns(conn: &Connection, table: &str, columns: &[(&str, &str)]) -> rusqlite::Result<()> {
    let missing = |conn: &Connection| -> rusqlite::Result<Vec<(&str, &str)>> {
        let have: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(columns
            .iter()
            .copied()
            .filter(|(name, _)| !have.iter().any(|h| h == name))
            .collect())
    };
    if missing(conn)?.is_empty() {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let added = missing(conn).and_then(|m| {
        m.iter().try_for_each(|(name, kind)| {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {kind}"))
        })
    });
    match added {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate_check(
    conn: &Connection,
    table: &str,
    marker: &str,
    schema: &str,
) -> rusqlite::Result<()> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .optional()?;
    if sql.is_some_and(|s| !s.contains(marker)) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; ALTER TABLE {table} RENAME TO {table}_v1; {schema}
             INSERT INTO {table} SELECT * FROM {table}_v1; DROP TABLE {table}_v1; COMMIT;"
        ))?;
    }
    Ok(())
}

fn self_err(file: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        file: file.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state file from before `waiting-for-seed`: its ledger keeps its
    /// rows and takes the new state.
    #[test]
    fn an_old_ledger_is_migrated_to_the_ceremony_state() {
        let dir = tempfile::tempdir().unwrap();
        let old = RUNS_SCHEMA.replace("'waiting-for-seed',\n        ", "");
        assert!(!old.contains("waiting-for-seed"));
        {
            let c = Connection::open(dir.path().join("state.sqlite3")).unwrap();
            c.execute_batch(&old).unwrap();
            c.execute(
                "INSERT INTO runs (job, period, scheduled_for, state) VALUES ('sample-audit', '2026H1', 'x', 'mailed')",
                [],
            )
            .unwrap();
        }
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.ledger().unwrap()[0].state, RunState::Mailed);
        assert!(
            s.schedule_run(
                "sample-audit",
                "2026H2",
                "y",
                RunState::WaitingForSeed,
                None
            )
            .unwrap()
        );
    }

    /// A ceremony's commitment and seed are written once.
    #[test]
    fn a_ceremony_takes_one_seed_and_keeps_its_commitment() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let c = s
            .record_commitment(
                "2026H1",
                "2026-07-05T08:00:00",
                "ab",
                "[]",
                "text",
                &["a <m>".into()],
            )
            .unwrap();
        assert!(
            s.give_seed(c.id, "1".repeat(20).as_str(), "t", "me", SeedVia::Command)
                .unwrap()
        );
        assert!(
            !s.give_seed(c.id, "2".repeat(20).as_str(), "t", "me", SeedVia::Command)
                .unwrap()
        );
        assert!(
            s.execute_raw("UPDATE ceremonies SET seed = '3' WHERE id = 1")
                .is_err()
        );
        assert!(s.execute_raw("DELETE FROM ceremonies").is_err());
        let got = s.latest_ceremony("2026H1").unwrap().unwrap();
        assert_eq!(got.seed.as_deref(), Some("11111111111111111111"));
        assert_eq!(got.messages, ["a <m>"]);
    }

    #[test]
    fn draws_are_numbered_per_period_and_cannot_be_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let d = |s: &mut Store, p: &str, seed: &str| {
            s.record_draw(p, seed, "given", "2026-07-05T08:00:00", "ab", "/x", false)
                .unwrap()
        };
        assert_eq!(d(&mut s, "2026H1", "11111111111111111111"), 1);
        assert_eq!(d(&mut s, "2026H1", "22222222222222222222"), 2);
        assert_eq!(d(&mut s, "2026H2", "33333333333333333333"), 1);
        drop(s);
        // A reopened database keeps counting.
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(d(&mut s, "2026H1", "44444444444444444444"), 3);
        let seeds: Vec<String> = s
            .draws("2026H1")
            .unwrap()
            .into_iter()
            .map(|d| d.seed)
            .collect();
        assert_eq!(
            seeds,
            [
                "11111111111111111111",
                "22222222222222222222",
                "44444444444444444444"
            ]
        );
        for sql in [
            "UPDATE seed_draws SET seed = '0' WHERE draw_number = 1",
            "DELETE FROM seed_draws",
            "INSERT INTO freezes (period, frozen_at, population_digest, inputs) VALUES ('p', 't', 'd', '[]')",
        ] {
            let r = s.execute_raw(sql);
            if sql.starts_with("INSERT") {
                r.unwrap();
            } else {
                let e = r.unwrap_err().to_string();
                assert!(e.contains("append-only"), "{sql}: {e}");
            }
        }
        assert!(
            s.execute_raw("DELETE FROM freezes")
                .unwrap_err()
                .to_string()
                .contains("append-only")
        );
        assert_eq!(s.draws("2026H1").unwrap().len(), 3);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("state.sqlite3"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_latest_freeze_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.latest_freeze("2026H1").unwrap(), None);
        for digest in ["aa", "bb"] {
            s.record_freeze(&FreezeRecord {
                period: "2026H1".into(),
                frozen_at: "t".into(),
                population_digest: digest.into(),
                inputs: "[]".into(),
            })
            .unwrap();
        }
        assert_eq!(
            s.latest_freeze("2026H1")
                .unwrap()
                .unwrap()
                .population_digest,
            "bb"
        );
        assert_eq!(s.latest_freeze("2026H2").unwrap(), None);
    }
}
