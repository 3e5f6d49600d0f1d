//! What retention needs to remember: legal holds (placed and released by
//! a person, each in the evidence chain), the exports moved from the inbox
//! into the input store (when, by which run), and the outbox messages
//! whose bodies were dropped after delivery (their hash kept).

use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{Store, StoreError, self_err};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS holds (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    placed_at TEXT NOT NULL,
    released_at TEXT,
    release_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS holds_open ON holds (target) WHERE released_at IS NULL;
CREATE TABLE IF NOT EXISTS archived_inputs (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    rel TEXT NOT NULL,
    stored_as TEXT NOT NULL,
    moved_at TEXT NOT NULL,
    run TEXT NOT NULL,
    superseded_at TEXT,
    deleted_at TEXT
);
";

/// The outbox columns a purge adds (to a database made before them).
pub(super) const OUTBOX_COLUMNS: &[(&str, &str)] =
    &[("eml_sha256", "TEXT"), ("body_dropped_at", "TEXT")];

/// A legal hold: what it keeps (a run's chain id or a unit id) and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    pub id: i64,
    pub target: String,
    pub reason: String,
    pub placed_at: String,
    pub released_at: Option<String>,
    pub release_reason: Option<String>,
}

/// An export moved from the inbox into the input store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedInput {
    pub id: i64,
    pub sha256: String,
    /// Inbox-relative path it had (and has in every run's inputs).
    pub rel: String,
    /// Where it is, relative to the input store.
    pub stored_as: String,
    pub moved_at: String,
    /// The run whose seal moved it.
    pub run: String,
    pub superseded_at: Option<String>,
}

/// The digest a hold or release records in the chain:
/// SHA-256 of `target LF reason LF at LF`.
pub fn hold_digest(target: &str, reason: &str, at: &str) -> String {
    hex::encode(Sha256::digest(format!("{target}\n{reason}\n{at}\n")))
}

fn hold_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Hold> {
    Ok(Hold {
        id: r.get(0)?,
        target: r.get(1)?,
        reason: r.get(2)?,
        placed_at: r.get(3)?,
        released_at: r.get(4)?,
        release_reason: r.get(5)?,
    })
}

impl Store {
    /// Places a hold on `target`, with its chain entry, in one
    /// transaction; `None` if one is already in force.
    pub fn place_hold(
        &mut self,
        target: &str,
        reason: &str,
        at: &str,
    ) -> anyhow::Result<Option<Hold>> {
        self.atomically(|s| {
            if s.holds(true)?.iter().any(|h| h.target == target) {
                return Ok(None);
            }
            s.conn
                .execute(
                    "INSERT INTO holds (target, reason, placed_at) VALUES (?1, ?2, ?3)",
                    params![target, reason, at],
                )
                .map_err(|e| s.err(e))?;
            let id = s.conn.last_insert_rowid();
            s.chain_append("hold", target, &hold_digest(target, reason, at), at)?;
            Ok(Some(Hold {
                id,
                target: target.to_owned(),
                reason: reason.to_owned(),
                placed_at: at.to_owned(),
                released_at: None,
                release_reason: None,
            }))
        })
    }

    /// Releases the hold in force on `target`, with its chain entry;
    /// `None` if there is none.
    pub fn release_hold(
        &mut self,
        target: &str,
        reason: &str,
        at: &str,
    ) -> anyhow::Result<Option<Hold>> {
        self.atomically(|s| {
            let Some(mut h) = s.holds(true)?.into_iter().find(|h| h.target == target) else {
                return Ok(None);
            };
            s.conn
                .execute(
                    "UPDATE holds SET released_at = ?2, release_reason = ?3 WHERE id = ?1",
                    params![h.id, at, reason],
                )
                .map_err(|e| s.err(e))?;
            s.chain_append("release", target, &hold_digest(target, reason, at), at)?;
            h.released_at = Some(at.to_owned());
            h.release_reason = Some(reason.to_owned());
            Ok(Some(h))
        })
    }

    /// The holds, oldest first: only those in force if `open`.
    pub fn holds(&self, open: bool) -> Result<Vec<Hold>, StoreError> {
        let sql = format!(
            "SELECT id, target, reason, placed_at, released_at, release_reason FROM holds {} ORDER BY id",
            if open {
                "WHERE released_at IS NULL"
            } else {
                ""
            }
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        stmt.query_map([], hold_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    /// Records an export moved into the input store; an earlier file
    /// stored under the same name is marked superseded (it was moved
    /// aside to `superseded_as`).
    pub fn record_archived_input(
        &mut self,
        input: &ArchivedInput,
        superseded_as: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = super::begin(&mut self.conn).map_err(|e| self_err(&self.file, e))?;
        if let Some(aside) = superseded_as {
            tx.execute(
                "UPDATE archived_inputs SET superseded_at = ?2, stored_as = ?3
                 WHERE stored_as = ?1 AND deleted_at IS NULL AND superseded_at IS NULL",
                params![input.stored_as, input.moved_at, aside],
            )
            .map_err(|e| self_err(&self.file, e))?;
        }
        tx.execute(
            "INSERT INTO archived_inputs (sha256, rel, stored_as, moved_at, run, superseded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                input.sha256,
                input.rel,
                input.stored_as,
                input.moved_at,
                input.run,
                input.superseded_at
            ],
        )
        .map_err(|e| self_err(&self.file, e))?;
        tx.commit().map_err(|e| self_err(&self.file, e))
    }

    /// The exports in the input store (not deleted), oldest first.
    pub fn archived_inputs(&self) -> Result<Vec<ArchivedInput>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, sha256, rel, stored_as, moved_at, run, superseded_at FROM archived_inputs
                 WHERE deleted_at IS NULL ORDER BY moved_at, rel, id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| {
            Ok(ArchivedInput {
                id: r.get(0)?,
                sha256: r.get(1)?,
                rel: r.get(2)?,
                stored_as: r.get(3)?,
                moved_at: r.get(4)?,
                run: r.get(5)?,
                superseded_at: r.get(6)?,
            })
        })
        .map_err(|e| self.err(e))?
        .collect::<Result<_, _>>()
        .map_err(|e| self.err(e))
    }

    /// Records an input deleted at the end of its retention, with its
    /// tombstone in the chain, in one transaction.
    pub fn delete_archived_input(&mut self, input: &ArchivedInput, at: &str) -> anyhow::Result<()> {
        self.atomically(|s| {
            s.conn
                .execute(
                    "UPDATE archived_inputs SET deleted_at = ?2 WHERE id = ?1",
                    params![input.id, at],
                )
                .map_err(|e| s.err(e))?;
            s.chain_append(
                "input-tombstone",
                &format!("inputs/{}", input.stored_as),
                &input.sha256,
                at,
            )?;
            Ok(())
        })
    }

    /// Forgets what the state database holds of a run retention deleted
    /// (`job`, `run_id`, its folder as recorded `run_dir`): the answers
    /// and returns it got, what it asked (due items), and its messages.
    /// The seed ledger, the chain and the retention log keep their rows.
    pub fn forget_run(&mut self, job: &str, run_id: &str, run_dir: &str) -> Result<(), StoreError> {
        let tx = super::begin(&mut self.conn).map_err(|e| self_err(&self.file, e))?;
        let statements = [
            "DELETE FROM worksheet_answers WHERE return_id IN
                 (SELECT id FROM worksheet_returns WHERE run_id = ?2 AND ?1 = 'sample-audit')",
            "DELETE FROM worksheet_returns WHERE run_id = ?2 AND ?1 = 'sample-audit'",
            "DELETE FROM table_return_rows WHERE return_id IN
                 (SELECT id FROM table_returns WHERE job = ?1 AND run_id = ?2)",
            "DELETE FROM return_sign_offs WHERE return_id IN
                 (SELECT id FROM table_returns WHERE job = ?1 AND run_id = ?2)",
            "DELETE FROM table_returns WHERE job = ?1 AND run_id = ?2",
            "DELETE FROM due_handovers WHERE item_id IN
                 (SELECT id FROM due_items WHERE job = ?1 AND run_id = ?2)",
            "DELETE FROM due_items WHERE job = ?1 AND run_id = ?2",
        ];
        for sql in statements {
            tx.execute(sql, params![job, run_id])
                .map_err(|e| self_err(&self.file, e))?;
        }
        tx.execute(
            "DELETE FROM outbox WHERE run = ?1 AND state IN ('sent', 'failed')",
            params![run_dir],
        )
        .map_err(|e| self_err(&self.file, e))?;
        tx.commit().map_err(|e| self_err(&self.file, e))
    }

    /// Drops the body and attachments of every message delivered (or
    /// failed for good) before `before`: its headers, recipient, state and
    /// the SHA-256 of the whole message stay. Returns the message ids of
    /// every message whose body is dropped, now or before (their delivered
    /// copies go too, whatever stopped an earlier pass).
    pub fn drop_sent_bodies(&mut self, before: &str, at: &str) -> Result<Vec<String>, StoreError> {
        let tx = super::begin(&mut self.conn).map_err(|e| self_err(&self.file, e))?;
        let rows: Vec<(i64, String, Vec<u8>)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, message_id, eml FROM outbox WHERE state IN ('sent', 'failed')
                     AND body_dropped_at IS NULL AND coalesce(sent_at, queued_at) < ?1
                     ORDER BY id",
                )
                .map_err(|e| self_err(&self.file, e))?;
            stmt.query_map(params![before], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(|e| self_err(&self.file, e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self_err(&self.file, e))?
        };
        for (id, _message_id, eml) in rows {
            let sha = hex::encode(Sha256::digest(&eml));
            let headers = header_block(&eml);
            tx.execute(
                "UPDATE outbox SET eml = ?2, eml_sha256 = ?3, body_dropped_at = ?4 WHERE id = ?1",
                params![id, headers, sha, at],
            )
            .map_err(|e| self_err(&self.file, e))?;
        }
        let ids: Vec<String> = {
            let mut stmt = tx
                .prepare(
                    "SELECT message_id FROM outbox WHERE body_dropped_at IS NOT NULL ORDER BY id",
                )
                .map_err(|e| self_err(&self.file, e))?;
            stmt.query_map([], |r| r.get(0))
                .map_err(|e| self_err(&self.file, e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self_err(&self.file, e))?
        };
        tx.commit().map_err(|e| self_err(&self.file, e))?;
        Ok(ids)
    }

    /// How many messages' bodies were dropped so far.
    pub fn dropped_count(&self) -> Result<usize, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM outbox WHERE body_dropped_at IS NOT NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    /// The SHA-256 recorded of a message whose body was dropped.
    pub fn dropped_body_sha256(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT eml_sha256 FROM outbox WHERE id = ?1 AND body_dropped_at IS NOT NULL",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
            .map(Option::flatten)
    }
}

/// A message's header block: everything before the first empty line.
fn header_block(eml: &[u8]) -> Vec<u8> {
    eml.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(|| eml.to_vec(), |i| eml[..i + 2].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_dropped_to_its_headers() {
        let eml = b"Subject: x\r\nTo: a@b\r\n\r\nbody\r\n--attachment--\r\n";
        assert_eq!(header_block(eml), b"Subject: x\r\nTo: a@b\r\n");
    }
}
