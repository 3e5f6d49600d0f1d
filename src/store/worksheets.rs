//! Returned worksheets and their answers.

use rusqlite::params;

use super::{Store, StoreError, self_err};

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

impl Store {
    /// Records a returned worksheet and its answers in one transaction.
    pub fn record_worksheet(
        &mut self,
        r: &WorksheetReturn,
        answers: &[WorksheetAnswer],
    ) -> Result<i64, StoreError> {
        let file = self.file.clone();
        let err = |e| self_err(&file, e);
        let tx = super::begin(&mut self.conn).map_err(err)?;
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
}

/// A returned account review or internal audit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableReturn {
    pub job: String,
    pub run_id: String,
    pub unit_id: String,
    pub received_at: String,
    pub file_sha256: String,
    pub rows: u32,
    pub answered: u32,
    /// The sheet's sign-off, as filled in (empty where it was not).
    pub sign_off: SignOff,
}

/// Who filled a returned sheet in, its unit's head, and the day (the
/// sign-off below every fill-in sheet).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SignOff {
    pub filled_by: String,
    pub head: String,
    /// `YYYY-MM-DD`, or empty.
    pub day: String,
}

impl Store {
    /// When a file of SHA-256 `sha` was taken whole before (recorded,
    /// kept and acted on), if it was.
    pub fn received_before(&self, sha: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT taken_at FROM returns_taken WHERE file_sha256 = ?1",
                params![sha],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self_err(&self.file, e))
    }

    /// Records that the return of SHA-256 `sha` was taken whole.
    pub fn mark_taken(&mut self, sha: &str, at: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO returns_taken (file_sha256, taken_at) VALUES (?1, ?2)",
                params![sha, at],
            )
            .map_err(|e| self_err(&self.file, e))?;
        Ok(())
    }

    /// The sign-off of the latest return of `job`'s run `run_id` from
    /// `unit_id`, if one came back.
    pub fn sign_off(
        &self,
        job: &str,
        run_id: &str,
        unit_id: &str,
    ) -> Result<Option<SignOff>, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT s.filled_by, s.head, s.signed_on FROM table_returns r
                 JOIN return_sign_offs s ON s.return_id = r.id
                 WHERE r.job = ?1 AND r.run_id = ?2 AND r.unit_id = ?3
                 ORDER BY r.id DESC LIMIT 1",
                rusqlite::params![job, run_id, unit_id],
                |r| {
                    Ok(SignOff {
                        filled_by: r.get(0)?,
                        head: r.get(1)?,
                        day: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self_err(&self.file, e))
    }

    /// Records a returned table and its rows (key, answers as JSON).
    pub fn record_return(
        &mut self,
        r: &TableReturn,
        rows: &[(String, String)],
    ) -> Result<i64, StoreError> {
        let file = self.file.clone();
        let err = |e| self_err(&file, e);
        let tx = super::begin(&mut self.conn).map_err(err)?;
        tx.execute(
            "INSERT INTO table_returns (job, run_id, unit_id, received_at, file_sha256, rows, answered)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![r.job, r.run_id, r.unit_id, r.received_at, r.file_sha256, r.rows, r.answered],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO return_sign_offs (return_id, filled_by, head, signed_on) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![id, r.sign_off.filled_by, r.sign_off.head, r.sign_off.day],
        )
        .map_err(err)?;
        for (seq, (key, answers)) in rows.iter().enumerate() {
            tx.execute(
                "INSERT INTO table_return_rows (return_id, seq, key, answers) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![id, seq as i64 + 1, key, answers],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// What the latest return for a due item answered: `(rows answered,
    /// rows)`, if anything came back. `due_job` is the item's: the sample
    /// worksheet's returns are its own table, an investigation record is
    /// a table returned to the sample audit's run, the others are tables
    /// returned to their job's run.
    pub fn answered(
        &self,
        due_job: &str,
        run_id: &str,
        unit_id: &str,
    ) -> Result<Option<(u32, u32)>, StoreError> {
        use rusqlite::OptionalExtension;
        let pair = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
        let found = match due_job {
            "sample-audit" => self.conn.query_row(
                "SELECT answered, rows FROM worksheet_returns
                 WHERE run_id = ?1 AND unit_id = ?2 ORDER BY id DESC LIMIT 1",
                [run_id, unit_id],
                pair,
            ),
            other => self.conn.query_row(
                "SELECT answered, rows FROM table_returns
                 WHERE run_id = ?1 AND unit_id = ?2 AND job = ?3 ORDER BY id DESC LIMIT 1",
                [
                    run_id,
                    unit_id,
                    if other == "investigation" {
                        "sample-audit"
                    } else {
                        other
                    },
                ],
                pair,
            ),
        };
        found.optional().map_err(|e| self.err(e))
    }

    /// The latest decisions returned for a job's runs, per (unit, key):
    /// `(unit_id, key, answers JSON, received_at)`, latest return first.
    pub fn returned_decisions(
        &self,
        job: &str,
    ) -> Result<Vec<(String, String, String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.unit_id, w.key, w.answers, r.received_at
                 FROM table_return_rows w JOIN table_returns r ON r.id = w.return_id
                 WHERE r.job = ?1 ORDER BY r.received_at DESC, r.id DESC, w.seq",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([job], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }
}
