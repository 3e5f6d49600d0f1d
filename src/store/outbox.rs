//! The mail outbox: messages queued by runs and the daemon, and each
//! attempt to deliver them.

use rusqlite::params;

use super::{Store, StoreError, self_err};
use crate::vocab::text_enum;

text_enum! {
    /// Where a message of the outbox is. `Sending` is written just before
    /// its data goes to the server, so a crash mid-transfer leaves a trace.
    MailState("mail state") {
        Pending = "pending",
        Sending = "sending",
        Sent = "sent",
        Failed = "failed",
        /// The server may or may not have it: an operator confirms or
        /// retries.
        Unknown = "unknown",
    }
}

/// A message to queue: what a run or the daemon composed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The run folder, as recorded (or another key for the daemon's own
    /// messages).
    pub run: String,
    /// The workbook's file name in `reports/` (or the message's kind).
    pub report: String,
    pub recipient: String,
    pub message_id: String,
    pub subject: String,
    /// The whole message (RFC 5322, CRLF), sent as is on every attempt.
    pub eml: Vec<u8>,
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
    pub state: MailState,
    pub attempts: u32,
    pub queued_at: String,
    pub next_attempt_at: String,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
}

impl Store {
    /// Queues messages in one transaction; a message already queued (same
    /// run, report and recipient) is left as it is. Returns how many were
    /// new.
    pub fn queue(&mut self, messages: &[NewMessage], now: &str) -> Result<usize, StoreError> {
        self.queue_noting(messages, now, "", &[])
    }

    /// Queues messages as [`Self::queue`] and, in the same transaction,
    /// records the critical findings (`keys`) their urgent notices tell
    /// of, as told by `run`: a critical finding is told once, ever
    /// ([`Self::notified_criticals`]).
    pub fn queue_noting(
        &mut self,
        messages: &[NewMessage],
        now: &str,
        run: &str,
        keys: &[String],
    ) -> Result<usize, StoreError> {
        let file = self.file.clone();
        let err = |e| self_err(&file, e);
        let tx = super::begin(&mut self.conn).map_err(err)?;
        let mut added = 0;
        for m in messages {
            added += tx
                .execute(
                    "INSERT OR IGNORE INTO outbox (run, report, recipient, message_id, subject, eml, state,
                     queued_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                    params![m.run, m.report, m.recipient, m.message_id, m.subject, m.eml, MailState::Pending, now],
                )
                .map_err(err)?;
        }
        for k in keys {
            tx.execute(
                "INSERT OR IGNORE INTO critical_notified (key, run, at) VALUES (?1, ?2, ?3)",
                params![k, run, now],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(added)
    }

    /// The critical findings an urgent notice has told of (their keys:
    /// code, account, masked subject and time).
    pub fn notified_criticals(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key FROM critical_notified")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
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
        state: MailState,
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
}
