//! The seed ledger and the frozen population digests: append-only.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError, self_err};

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
pub struct Freeze {
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
}
