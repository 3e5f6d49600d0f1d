//! The daemon's run ledger (one row per job and period), the inbox files
//! it has seen, its small key-value table, and the append-only log of run
//! folders deleted by retention.

use rusqlite::params;

use super::{Store, StoreError, self_err};
use crate::vocab::text_enum;

text_enum! {
    /// Where a row of the run ledger is.
    RunState("run state") {
        Scheduled = "scheduled",
        WaitingForInputs = "waiting-for-inputs",
        /// The population is committed and mailed; the draw waits for
        /// the ceremony's seed.
        WaitingForSeed = "waiting-for-seed",
        Running = "running",
        /// The run folder is made and its mail queued.
        Generated = "generated",
        /// Every message of the run was delivered.
        Mailed = "mailed",
        Failed = "failed",
        Missed = "missed",
    }
}

impl RunState {
    /// A row still owed: due, waiting, running, failed or missed.
    pub fn is_open(self) -> bool {
        !matches!(self, RunState::Generated | RunState::Mailed)
    }
}

/// A row of the daemon's run ledger: one per (job, period).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerRow {
    pub id: i64,
    pub job: String,
    pub period: String,
    pub scheduled_for: String,
    pub state: RunState,
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

impl Store {
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

    /// Sets a value of the daemon's small key-value table.
    pub fn meta_set(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A value of the daemon's small key-value table, if set.
    pub fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension as _;
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
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
        state: RunState,
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

    /// Records the daemon's row `id` as `generated` with its run, in the
    /// transaction that seals the run and queues its mail, so no crash
    /// leaves one without the other.
    pub fn record_in_ledger(&mut self, id: i64, run_dir: &str, at: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET state = 'generated', run_dir = ?2, finished_at = ?3 WHERE id = ?1",
                params![id, run_dir, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
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
        let tx = super::begin(&mut self.conn).map_err(|e| self_err(&self.file, e))?;
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
        state: RunState,
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
}
