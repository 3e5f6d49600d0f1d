//! Due items: what a run asked of a unit (the sample worksheet, the
//! account review's decisions, the internal audit's results, the query
//! check's findings looked into), with its deadline, open until a valid
//! return closes it. Reminders are messages of the outbox, keyed by the
//! item and the stage, so each goes out once.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::vocab::text_enum;

text_enum! {
    /// How far past its deadline an open item is, and so who is told.
    Stage("follow-up stage") {
        /// Some days before the due day: the officer.
        Before = "before",
        /// On the due day: the officer.
        Due = "due",
        /// After it: the officer and the chief administrator.
        Overdue = "overdue",
        /// Overdue past the grace period: the unit's ethics unit.
        Ethics = "ethics",
    }
}

/// One thing a run asked of a unit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DueItem {
    pub id: i64,
    /// The job that asked (`sample-audit`, `account-review`, …).
    pub job: String,
    pub run_id: String,
    /// The run folder: the outbox's key for the run's messages.
    pub run_dir: String,
    pub unit_id: String,
    /// The officer address it was sent to (changes when it is handed over).
    pub sent_to: String,
    /// What was asked, as the workbook names it (period and kind).
    pub label: String,
    pub opened_at: String,
    /// `YYYY-MM-DD`, local.
    pub due_on: String,
    pub closed_at: Option<String>,
    /// What closed it (the returned file's SHA-256).
    pub closed_by: Option<String>,
}

const COLUMNS: &str =
    "id, job, run_id, run_dir, unit_id, sent_to, label, opened_at, due_on, closed_at, closed_by";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DueItem> {
    Ok(DueItem {
        id: r.get(0)?,
        job: r.get(1)?,
        run_id: r.get(2)?,
        run_dir: r.get(3)?,
        unit_id: r.get(4)?,
        sent_to: r.get(5)?,
        label: r.get(6)?,
        opened_at: r.get(7)?,
        due_on: r.get(8)?,
        closed_at: r.get(9)?,
        closed_by: r.get(10)?,
    })
}

impl Store {
    /// Opens `item` (its id and closing are ignored); opening one a run
    /// already opened for the unit is a no-op (unique job, run and unit).
    pub fn open_due(&mut self, item: &DueItem) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO due_items (job, run_id, run_dir, unit_id, sent_to, label, opened_at, due_on)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    item.job,
                    item.run_id,
                    item.run_dir,
                    item.unit_id,
                    item.sent_to,
                    item.label,
                    item.opened_at,
                    item.due_on
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Closes the open item of (job, run, unit); returns whether one was
    /// open. A second return of the same item leaves it closed by the first.
    pub fn close_due(
        &mut self,
        job: &str,
        run_id: &str,
        unit_id: &str,
        closed_at: &str,
        closed_by: &str,
    ) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "UPDATE due_items SET closed_at = ?4, closed_by = ?5
                 WHERE job = ?1 AND run_id = ?2 AND unit_id = ?3 AND closed_at IS NULL",
                params![job, run_id, unit_id, closed_at, closed_by],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Records that item `id` was handed over to the unit's new officer
    /// `to` at `at` (the handover message is in the outbox).
    pub fn hand_over(&mut self, id: i64, to: &str, at: &str) -> Result<(), StoreError> {
        let tx = super::begin(&mut self.conn).map_err(|e| super::self_err(&self.file, e))?;
        tx.execute(
            "INSERT INTO due_handovers (item_id, from_address, to_address, at)
             SELECT id, sent_to, ?2, ?3 FROM due_items WHERE id = ?1",
            params![id, to, at],
        )
        .map_err(|e| super::self_err(&self.file, e))?;
        tx.execute(
            "UPDATE due_items SET sent_to = ?2 WHERE id = ?1",
            params![id, to],
        )
        .map_err(|e| super::self_err(&self.file, e))?;
        tx.commit().map_err(|e| super::self_err(&self.file, e))
    }

    /// Every item, open and closed, oldest first.
    pub fn due_items(&self) -> Result<Vec<DueItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM due_items ORDER BY id"))
            .map_err(|e| self.err(e))?;
        stmt.query_map([], row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    /// The item of (job, run, unit), if the run opened one.
    pub fn due_item(
        &self,
        job: &str,
        run_id: &str,
        unit_id: &str,
    ) -> Result<Option<DueItem>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM due_items WHERE job = ?1 AND run_id = ?2 AND unit_id = ?3"
                ),
                params![job, run_id, unit_id],
                row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
