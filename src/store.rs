//! The state database: one SQLite file, `paths.state/state.sqlite3`
//! (mode 0600). It holds what must outlive a process and must never be
//! rewritten: the ledger of every seed drawn, the frozen population
//! digests of ceremony mode, and the worksheets auditors sent back. (The run ledger and mail outbox of later
//! issues live here too.)
//!
//! Both tables are append-only: triggers refuse UPDATE and DELETE, so a
//! seed that was drawn stays visible even if the run that drew it failed.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {file}: {source}")]
    Sqlite {
        file: String,
        #[source]
        source: rusqlite::Error,
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

/// One row of the seed ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedDraw {
    pub period: String,
    pub draw_number: u32,
    pub seed: String,
    /// `given` or `os`.
    pub source: String,
    pub drawn_at: String,
    pub population_digest: String,
    pub run_dir: String,
}

/// A completed sample worksheet that came back (the latest return of a
/// unit's worksheet is the one that counts; earlier ones stay recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorksheetReturn {
    pub run_id: String,
    pub unit_id: String,
    pub received_at: String,
    pub file_sha256: String,
    pub rows: u32,
    pub answered: u32,
    pub anomalies: u32,
}

/// One row of a returned worksheet: the record (subject masked) and the
/// auditor's answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorksheetAnswer {
    pub seq: u32,
    pub account_id: String,
    pub queried_at: String,
    pub query_item: String,
    pub subject: String,
    pub form_filled: String,
    pub approved: String,
    pub matches: String,
    pub anomaly: String,
    pub note: String,
    pub auditor: String,
    pub audit_date: String,
}

/// A message of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub run: String,
    pub report: String,
    pub recipient: String,
    pub message_id: String,
    pub subject: String,
    pub state: String,
    pub attempts: u32,
    pub queued_at: String,
    pub next_attempt_at: String,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
}

/// A row of the daemon's run ledger: one per (job, period).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerRow {
    pub id: i64,
    pub job: String,
    pub period: String,
    pub scheduled_for: String,
    pub state: String,
    pub started_at: Option<String>,
    pub heartbeat_at: Option<String>,
    pub finished_at: Option<String>,
    pub run_dir: Option<String>,
    pub error: Option<String>,
    pub attempts: u32,
    pub alerted: bool,
}

/// An inbox file the daemon has seen (by content).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeenInput {
    pub sha256: String,
    pub path: String,
    pub table: Option<String>,
    pub size: i64,
    /// Modification time, RFC 3339 UTC.
    pub modified: String,
    pub first_seen: String,
    /// `loaded`, `duplicate` or the error.
    pub status: String,
    pub rows: i64,
    /// Query logs: the first and last `queried_at` (local).
    pub first_at: Option<String>,
    pub last_at: Option<String>,
}

/// A frozen population: published before a seed ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    pub period: String,
    pub frozen_at: String,
    pub population_digest: String,
    /// JSON list of the inputs (file, bytes, rows, sha256).
    pub inputs: String,
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

/// The daemon's run ledger, the inputs it has seen, and its first start.
const DAEMON_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    period TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('scheduled', 'waiting-for-inputs', 'running',
        'generated', 'mailed', 'failed', 'missed')),
    started_at TEXT,
    heartbeat_at TEXT,
    finished_at TEXT,
    run_dir TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    alerted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (job, period)
);
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
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        migrate_outbox(&conn).map_err(sql)?;
        conn.execute_batch(DAEMON_SCHEMA).map_err(sql)?;
        conn.execute_batch(OUTBOX_SCHEMA).map_err(sql)?;
        Ok(Store { conn, file })
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

    /// Records a seed draw for `period` and returns its draw number (1 for
    /// the first draw of the period). Numbering and insert are one
    /// immediate transaction, so two processes never get the same number.
    #[allow(clippy::too_many_arguments)]
    pub fn record_draw(
        &mut self,
        period: &str,
        seed: &str,
        source: &str,
        drawn_at: &str,
        population_digest: &str,
        run_dir: &str,
    ) -> Result<u32, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self_err(&self.file, e))?;
        let n: u32 = tx
            .query_row(
                "SELECT COALESCE(MAX(draw_number), 0) + 1 FROM seed_draws WHERE period = ?1",
                params![period],
                |r| r.get(0),
            )
            .map_err(|e| self_err(&self.file, e))?;
        tx.execute(
            "INSERT INTO seed_draws (period, draw_number, seed, source, drawn_at, population_digest, run_dir)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![period, n, seed, source, drawn_at, population_digest, run_dir],
        )
        .map_err(|e| self_err(&self.file, e))?;
        tx.commit().map_err(|e| self_err(&self.file, e))?;
        Ok(n)
    }

    /// Every draw of `period`, first first.
    pub fn draws(&self, period: &str) -> Result<Vec<SeedDraw>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT period, draw_number, seed, source, drawn_at, population_digest, run_dir
                 FROM seed_draws WHERE period = ?1 ORDER BY draw_number",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![period], |r| {
                Ok(SeedDraw {
                    period: r.get(0)?,
                    draw_number: r.get(1)?,
                    seed: r.get(2)?,
                    source: r.get(3)?,
                    drawn_at: r.get(4)?,
                    population_digest: r.get(5)?,
                    run_dir: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn record_freeze(&mut self, f: &Freeze) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO freezes (period, frozen_at, population_digest, inputs) VALUES (?1, ?2, ?3, ?4)",
                params![f.period, f.frozen_at, f.population_digest, f.inputs],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The latest freeze of `period`, if any.
    pub fn latest_freeze(&self, period: &str) -> Result<Option<Freeze>, StoreError> {
        self.conn
            .query_row(
                "SELECT period, frozen_at, population_digest, inputs FROM freezes
                 WHERE period = ?1 ORDER BY id DESC LIMIT 1",
                params![period],
                |r| {
                    Ok(Freeze {
                        period: r.get(0)?,
                        frozen_at: r.get(1)?,
                        population_digest: r.get(2)?,
                        inputs: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records a returned worksheet and its answers in one transaction.
    pub fn record_worksheet(
        &mut self,
        r: &WorksheetReturn,
        answers: &[WorksheetAnswer],
    ) -> Result<i64, StoreError> {
        let file = self.file.clone();
        let err = |e| self_err(&file, e);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO worksheet_returns (run_id, unit_id, received_at, file_sha256, rows, answered, anomalies)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![r.run_id, r.unit_id, r.received_at, r.file_sha256, r.rows, r.answered, r.anomalies],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        for a in answers {
            tx.execute(
                "INSERT INTO worksheet_answers (return_id, seq, account_id, queried_at, query_item, subject,
                 form_filled, approved, matches, anomaly, note, auditor, audit_date)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    id, a.seq, a.account_id, a.queried_at, a.query_item, a.subject, a.form_filled,
                    a.approved, a.matches, a.anomaly, a.note, a.auditor, a.audit_date
                ],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Every return of `run_id`, first first.
    pub fn worksheet_returns(&self, run_id: &str) -> Result<Vec<WorksheetReturn>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, unit_id, received_at, file_sha256, rows, answered, anomalies
                 FROM worksheet_returns WHERE run_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run_id], |r| {
                Ok(WorksheetReturn {
                    run_id: r.get(0)?,
                    unit_id: r.get(1)?,
                    received_at: r.get(2)?,
                    file_sha256: r.get(3)?,
                    rows: r.get(4)?,
                    answered: r.get(5)?,
                    anomalies: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records that a run folder was deleted at the end of its retention.
    pub fn record_deletion(
        &mut self,
        run: &str,
        seal_sha256: &str,
        deleted_at: &str,
        expired_on: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO retention_log (run, seal_sha256, deleted_at, expired_on) VALUES (?1, ?2, ?3, ?4)",
                params![run, seal_sha256, deleted_at, expired_on],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every deletion, first first: `(run, deleted_at)`.
    pub fn deletions(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT run, deleted_at FROM retention_log ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Queues messages in one transaction; a message already queued (same
    /// run, report and recipient) is left as it is. Returns how many were
    /// new.
    pub fn queue(
        &mut self,
        messages: &[crate::mail::Outgoing],
        now: &str,
    ) -> Result<usize, StoreError> {
        let file = self.file.clone();
        let err = |e| self_err(&file, e);
        let tx = self.conn.transaction().map_err(err)?;
        let mut added = 0;
        for m in messages {
            added += tx
                .execute(
                    "INSERT OR IGNORE INTO outbox (run, report, recipient, message_id, subject, eml, state,
                     queued_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
                    params![m.run, m.report, m.recipient, m.message_id, m.subject, m.eml, now],
                )
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(added)
    }

    fn outbox_rows(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT id, run, report, recipient, message_id, subject, state, attempts, queued_at,
             next_attempt_at, sent_at, last_error FROM outbox {filter} ORDER BY id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    run: r.get(1)?,
                    report: r.get(2)?,
                    recipient: r.get(3)?,
                    message_id: r.get(4)?,
                    subject: r.get(5)?,
                    state: r.get(6)?,
                    attempts: r.get(7)?,
                    queued_at: r.get(8)?,
                    next_attempt_at: r.get(9)?,
                    sent_at: r.get(10)?,
                    last_error: r.get(11)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// One message of the outbox.
    pub fn message(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        Ok(self.outbox_rows("WHERE id = ?1", &[&id])?.pop())
    }

    /// Every message of the outbox, first first.
    pub fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_rows("", &[])
    }

    /// Messages whose next attempt is due at `now`: pending ones, and
    /// those of unknown outcome whose duplicate-tolerant window has passed.
    pub fn due(&self, now: &str) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_rows(
            "WHERE state IN ('pending', 'unknown') AND next_attempt_at <= ?1",
            &[&now],
        )
    }

    /// Messages left in `sending` (a process died while transferring them).
    pub fn interrupted(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_rows("WHERE state = 'sending'", &[])
    }

    /// Marks a message as being transferred now; committed before its data
    /// goes to the server.
    pub fn mark_sending(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE outbox SET state = 'sending' WHERE id = ?1",
                params![id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Marks a message whose outcome was unknown as delivered (the operator
    /// confirmed it arrived).
    pub fn confirm_sent(&mut self, id: i64, at: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE outbox SET state = 'sent', sent_at = ?2 WHERE id = ?1 AND state = 'unknown'",
                params![id, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Queues a copy of message `id` under a new report key and Message-ID
    /// (the operator's `outbox resend`); returns the new row's id.
    pub fn requeue_copy(
        &mut self,
        id: i64,
        report: &str,
        message_id: &str,
        eml: &[u8],
        now: &str,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO outbox (run, report, recipient, message_id, subject, eml, state,
                 queued_at, next_attempt_at)
                 SELECT run, ?2, recipient, ?3, subject, ?4, 'pending', ?5, ?5 FROM outbox WHERE id = ?1",
                params![id, report, message_id, eml, now],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The message's bytes.
    pub fn eml(&self, id: i64) -> Result<Vec<u8>, StoreError> {
        self.conn
            .query_row("SELECT eml FROM outbox WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
    }

    /// Records an attempt's outcome: `sent`, `pending` again (with the next
    /// attempt's time) or `failed`.
    pub fn record_attempt(
        &mut self,
        id: i64,
        state: &str,
        at: &str,
        next_attempt_at: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE outbox SET state = ?2, attempts = attempts + 1, next_attempt_at = ?4,
                 sent_at = CASE WHEN ?2 = 'sent' THEN ?3 ELSE sent_at END, last_error = ?5 WHERE id = ?1",
                params![id, state, at, next_attempt_at, error],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Makes a failed message, or one whose outcome was unknown, pending
    /// again (the operator's `outbox retry`).
    pub fn retry(&mut self, id: i64, now: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?2
                 WHERE id = ?1 AND state IN ('failed', 'unknown')",
                params![id, now],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// A value of the daemon's small key-value table, set to `default`
    /// the first time it is asked for.
    pub fn meta_or_insert(&mut self, key: &str, default: &str) -> Result<String, StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, default],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
    }

    fn ledger_rows(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let sql = format!(
            "SELECT id, job, period, scheduled_for, state, started_at, heartbeat_at, finished_at,
             run_dir, error, attempts, alerted FROM runs {filter} ORDER BY scheduled_for, id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok(LedgerRow {
                    id: r.get(0)?,
                    job: r.get(1)?,
                    period: r.get(2)?,
                    scheduled_for: r.get(3)?,
                    state: r.get(4)?,
                    started_at: r.get(5)?,
                    heartbeat_at: r.get(6)?,
                    finished_at: r.get(7)?,
                    run_dir: r.get(8)?,
                    error: r.get(9)?,
                    attempts: r.get(10)?,
                    alerted: r.get(11)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The whole run ledger, oldest first.
    pub fn ledger(&self) -> Result<Vec<LedgerRow>, StoreError> {
        self.ledger_rows("", &[])
    }

    /// The ledger rows of `job`.
    pub fn ledger_of(&self, job: &str) -> Result<Vec<LedgerRow>, StoreError> {
        self.ledger_rows("WHERE job = ?1", &[&job])
    }

    /// Records that (job, period) is due; `false` if it already has a row
    /// (the unique key: a period is never run twice).
    pub fn schedule_run(
        &mut self,
        job: &str,
        period: &str,
        scheduled_for: &str,
        state: &str,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO runs (job, period, scheduled_for, state, error)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![job, period, scheduled_for, state, error],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Records a run made by hand (`webir-audit run`) in the ledger, so the
    /// daemon adopts it instead of running the period again: a new row, or
    /// the period's existing row, becomes `generated` with this run.
    pub fn record_manual_run(
        &mut self,
        job: &str,
        period: &str,
        at: &str,
        run_dir: &str,
    ) -> Result<(), StoreError> {
        let note = format!("run by hand at {at}");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self_err(&self.file, e))?;
        tx.execute(
            "INSERT OR IGNORE INTO runs (job, period, scheduled_for, state)
             VALUES (?1, ?2, ?3, 'generated')",
            params![job, period, at],
        )
        .map_err(|e| self_err(&self.file, e))?;
        tx.execute(
            "UPDATE runs SET state = 'generated', run_dir = ?3, finished_at = ?4,
               started_at = COALESCE(started_at, ?4), error = ?5, attempts = attempts + 1
             WHERE job = ?1 AND period = ?2",
            params![job, period, run_dir, at, note],
        )
        .map_err(|e| self_err(&self.file, e))?;
        tx.commit().map_err(|e| self_err(&self.file, e))?;
        Ok(())
    }

    /// Moves a ledger row to `state`, stamping the times that state implies.
    pub fn set_run_state(
        &mut self,
        id: i64,
        state: &str,
        at: &str,
        run_dir: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET state = ?2,
                   started_at = CASE WHEN ?2 = 'running' THEN ?3 ELSE started_at END,
                   heartbeat_at = CASE WHEN ?2 = 'running' THEN ?3 ELSE heartbeat_at END,
                   attempts = attempts + (CASE WHEN ?2 = 'running' THEN 1 ELSE 0 END),
                   finished_at = CASE WHEN ?2 IN ('generated', 'failed', 'missed') THEN ?3
                                      ELSE finished_at END,
                   run_dir = COALESCE(?4, run_dir),
                   error = ?5
                 WHERE id = ?1",
                params![id, state, at, run_dir, error],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A running row's sign of life.
    pub fn run_heartbeat(&mut self, id: i64, at: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1 AND state = 'running'",
                params![id, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Marks that the admin was told about this row (once).
    pub fn mark_alerted(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("UPDATE runs SET alerted = 1 WHERE id = ?1", params![id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every inbox file seen, by content.
    pub fn inputs_seen(&self) -> Result<Vec<SeenInput>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT sha256, path, tbl, size, modified, first_seen, status, rows, first_at,
                 last_at FROM inputs_seen ORDER BY first_seen, path",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SeenInput {
                    sha256: r.get(0)?,
                    path: r.get(1)?,
                    table: r.get(2)?,
                    size: r.get(3)?,
                    modified: r.get(4)?,
                    first_seen: r.get(5)?,
                    status: r.get(6)?,
                    rows: r.get(7)?,
                    first_at: r.get(8)?,
                    last_at: r.get(9)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records a newly seen inbox file (a file already seen is kept as it
    /// was first recorded).
    pub fn record_input(&mut self, i: &SeenInput) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO inputs_seen (sha256, path, tbl, size, modified, first_seen,
                 status, rows, first_at, last_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    i.sha256,
                    i.path,
                    i.table,
                    i.size,
                    i.modified,
                    i.first_seen,
                    i.status,
                    i.rows,
                    i.first_at,
                    i.last_at
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Runs raw SQL; for tests that prove the ledger refuses rewrites.
    #[doc(hidden)]
    pub fn execute_raw(&self, sql: &str) -> Result<usize, StoreError> {
        self.conn.execute(sql, []).map_err(|e| self.err(e))
    }
}

/// A state file from before `sending` and `unknown` existed: its outbox is
/// copied into the current shape (SQLite cannot change a CHECK in place).
fn migrate_outbox(conn: &Connection) -> rusqlite::Result<()> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if sql.is_some_and(|s| !s.contains("'unknown'")) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; ALTER TABLE outbox RENAME TO outbox_v1; {OUTBOX_SCHEMA}
             INSERT INTO outbox SELECT * FROM outbox_v1; DROP TABLE outbox_v1; COMMIT;"
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

    #[test]
    fn draws_are_numbered_per_period_and_cannot_be_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let d = |s: &mut Store, p: &str, seed: &str| {
            s.record_draw(p, seed, "given", "2026-07-05T08:00:00", "ab", "/x")
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
            s.record_freeze(&Freeze {
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
