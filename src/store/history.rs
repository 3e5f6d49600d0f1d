//! Findings across runs: each account-review finding has a stable key
//! (its code and what it is about); the history says when it was first
//! seen, how many reviews have listed it, and when the data stopped
//! showing it.

use rusqlite::params;

use super::{Store, StoreError, self_err};

/// A finding's life across reviews.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tracked {
    /// `CODE|account or agency id`.
    pub key: String,
    pub first_run: String,
    /// Local `YYYY-MM-DD` of the review that first listed it.
    pub first_seen: String,
    pub last_run: String,
    /// Reviews that listed it.
    pub times: u32,
    pub closed_at: Option<String>,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tracked> {
    Ok(Tracked {
        key: r.get(0)?,
        first_run: r.get(1)?,
        first_seen: r.get(2)?,
        last_run: r.get(3)?,
        times: r.get(4)?,
        closed_at: r.get(5)?,
    })
}

impl Store {
    /// Findings still open (listed by the last review that looked).
    pub fn open_findings(&self) -> Result<Vec<Tracked>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, first_run, first_seen, last_run, times, closed_at
                 FROM finding_history WHERE closed_at IS NULL ORDER BY key",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([], row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    /// Records review `run` (on `day`): `keys` are the findings it
    /// listed. Each is opened, or counted once more if open (a run
    /// recorded twice counts once); an open finding it did not list is
    /// closed, since the data no longer shows it — of those whose key
    /// starts with `scope` when the review looked at only those. One
    /// transaction.
    pub fn record_review(
        &mut self,
        run: &str,
        day: &str,
        keys: &[String],
        scope: Option<&str>,
    ) -> Result<(), StoreError> {
        let file = self.file.clone();
        let err = |e| self_err(&file, e);
        let tx = super::begin(&mut self.conn).map_err(err)?;
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS listed (key TEXT PRIMARY KEY)",
            [],
        )
        .map_err(err)?;
        tx.execute("DELETE FROM listed", []).map_err(err)?;
        for k in keys {
            tx.execute("INSERT OR IGNORE INTO listed (key) VALUES (?1)", params![k])
                .map_err(err)?;
        }
        tx.execute(
            "UPDATE finding_history SET closed_at = ?1
             WHERE closed_at IS NULL AND last_run <> ?2 AND key NOT IN (SELECT key FROM listed)
               AND substr(key, 1, length(?3)) = ?3",
            params![day, run, scope.unwrap_or("")],
        )
        .map_err(err)?;
        tx.execute(
            "UPDATE finding_history SET times = times + 1, last_run = ?1
             WHERE closed_at IS NULL AND last_run <> ?1 AND key IN (SELECT key FROM listed)",
            params![run],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO finding_history (key, first_run, first_seen, last_run, times)
             SELECT key, ?1, ?2, ?1, 1 FROM listed
             WHERE key NOT IN (SELECT key FROM finding_history WHERE closed_at IS NULL)",
            params![run, day],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }
}
