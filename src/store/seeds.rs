//! The seed ledger and the frozen population digests: append-only.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, self_err};
use crate::vocab::text_enum;

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

/// A frozen population: published before a seed ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeRecord {
    pub period: String,
    pub frozen_at: String,
    pub population_digest: String,
    /// JSON list of the inputs (file, bytes, rows, sha256).
    pub inputs: String,
}

impl Store {
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
        first_only: bool,
    ) -> Result<u32, StoreError> {
        let tx = super::begin(&mut self.conn).map_err(|e| self_err(&self.file, e))?;
        let n: u32 = tx
            .query_row(
                "SELECT COALESCE(MAX(draw_number), 0) + 1 FROM seed_draws WHERE period = ?1",
                params![period],
                |r| r.get(0),
            )
            .map_err(|e| self_err(&self.file, e))?;
        // The claim and the check are one transaction: of two runs that
        // started together, one draws and the other is refused.
        if first_only && n > 1 {
            let (at, run): (String, String) = tx
                .query_row(
                    "SELECT drawn_at, run_dir FROM seed_draws WHERE period = ?1 AND draw_number = ?2",
                    params![period, n - 1],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(|e| self_err(&self.file, e))?;
            return Err(StoreError::AlreadyDrawn {
                period: period.to_owned(),
                draw: n - 1,
                at,
                run,
            });
        }
        tx.execute(
            "INSERT INTO seed_draws (period, draw_number, seed, source, drawn_at, population_digest, run_dir)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![period, n, seed, source, drawn_at, population_digest, run_dir],
        )
        .map_err(|e| self_err(&self.file, e))?;
        tx.commit().map_err(|e| self_err(&self.file, e))?;
        Ok(n)
    }

    /// Records that `run_dir` resumes draw `n` of `period`, whose run died
    /// before its seal (the ledger itself is append-only).
    pub fn resume_draw(
        &mut self,
        period: &str,
        n: u32,
        run_dir: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO draw_resumes (period, draw_number, run_dir, resumed_at) VALUES (?1, ?2, ?3, ?4)",
                params![period, n, run_dir, at],
            )
            .map_err(|e| self_err(&self.file, e))?;
        Ok(())
    }

    /// The run folders that resumed draw `n` of `period`, first first.
    pub fn draw_resumed_in(&self, period: &str, n: u32) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT run_dir FROM draw_resumes WHERE period = ?1 AND draw_number = ?2 ORDER BY rowid",
            )
            .map_err(|e| self_err(&self.file, e))?;
        let rows = st
            .query_map(params![period, n], |r| r.get(0))
            .map_err(|e| self_err(&self.file, e))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(|e| self_err(&self.file, e))
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

    pub fn record_freeze(&mut self, f: &FreezeRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO freezes (period, frozen_at, population_digest, inputs) VALUES (?1, ?2, ?3, ?4)",
                params![f.period, f.frozen_at, f.population_digest, f.inputs],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The latest freeze of `period`, if any.
    pub fn latest_freeze(&self, period: &str) -> Result<Option<FreezeRecord>, StoreError> {
        self.conn
            .query_row(
                "SELECT period, frozen_at, population_digest, inputs FROM freezes
                 WHERE period = ?1 ORDER BY id DESC LIMIT 1",
                params![period],
                |r| {
                    Ok(FreezeRecord {
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
}

text_enum! {
    /// How a ceremony's seed reached the tool.
    SeedVia("seed source") {
        /// `webir-audit seed --period P --value DIGITS`.
        Command = "command",
        /// A file dropped in `inbox/seeds/`.
        Inbox = "inbox",
        /// No seed came within the schedule's wait and it allows the OS's.
        OsFallback = "os-fallback",
    }
}

/// A seed ceremony run by the daemon: the population committed and the
/// commitment mailed, then (once) the seed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ceremony {
    pub id: i64,
    pub period: String,
    /// Local time the commitment was made and queued for mail.
    pub committed_at: String,
    pub population_digest: String,
    /// JSON list of the inputs (as `inputs.json`).
    pub inputs: String,
    /// The commitment's text as mailed; its SHA-256 is in the chain.
    pub commitment: String,
    /// `recipient <Message-ID>` of each commitment mail.
    pub messages: Vec<String>,
    pub seed: Option<String>,
    pub seed_at: Option<String>,
    /// Who gave it: the OS user who typed the command, or the file.
    pub seed_by: Option<String>,
    pub seed_via: Option<SeedVia>,
    /// The admin was told no seed came within the wait.
    pub waited_alert: bool,
}

impl Ceremony {
    /// When the commitment was made, local time.
    pub fn committed_local(&self) -> Option<chrono::NaiveDateTime> {
        chrono::NaiveDateTime::parse_from_str(&self.committed_at, "%Y-%m-%dT%H:%M:%S").ok()
    }
}

impl Store {
    /// Records a ceremony's commitment; returns it as stored.
    pub fn record_commitment(
        &mut self,
        period: &str,
        committed_at: &str,
        population_digest: &str,
        inputs: &str,
        commitment: &str,
        messages: &[String],
    ) -> Result<Ceremony, StoreError> {
        let messages_json = serde_json::to_string(messages).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO ceremonies (period, committed_at, population_digest, inputs, commitment, messages)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![period, committed_at, population_digest, inputs, commitment, messages_json],
            )
            .map_err(|e| self.err(e))?;
        let id = self.conn.last_insert_rowid();
        Ok(Ceremony {
            id,
            period: period.to_owned(),
            committed_at: committed_at.to_owned(),
            population_digest: population_digest.to_owned(),
            inputs: inputs.to_owned(),
            commitment: commitment.to_owned(),
            messages: messages.to_vec(),
            seed: None,
            seed_at: None,
            seed_by: None,
            seed_via: None,
            waited_alert: false,
        })
    }

    /// The latest ceremony of `period`, if any.
    pub fn latest_ceremony(&self, period: &str) -> Result<Option<Ceremony>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, period, committed_at, population_digest, inputs, commitment, messages,
                        seed, seed_at, seed_by, seed_via, waited_alert
                 FROM ceremonies WHERE period = ?1 ORDER BY id DESC LIMIT 1",
                params![period],
                |r| {
                    let messages: String = r.get(6)?;
                    Ok(Ceremony {
                        id: r.get(0)?,
                        period: r.get(1)?,
                        committed_at: r.get(2)?,
                        population_digest: r.get(3)?,
                        inputs: r.get(4)?,
                        commitment: r.get(5)?,
                        messages: serde_json::from_str(&messages).unwrap_or_default(),
                        seed: r.get(7)?,
                        seed_at: r.get(8)?,
                        seed_by: r.get(9)?,
                        seed_via: r.get(10)?,
                        waited_alert: r.get(11)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records the seed of ceremony `id`. Returns false when it already
    /// has one: a ceremony's seed is written once.
    pub fn give_seed(
        &mut self,
        id: i64,
        seed: &str,
        at: &str,
        by: &str,
        via: SeedVia,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE ceremonies SET seed = ?2, seed_at = ?3, seed_by = ?4, seed_via = ?5
                 WHERE id = ?1 AND seed IS NULL",
                params![id, seed, at, by, via],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Notes that the admin was told ceremony `id` waits past its time.
    pub fn mark_ceremony_alerted(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE ceremonies SET waited_alert = 1 WHERE id = ?1 AND seed IS NULL",
                params![id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
