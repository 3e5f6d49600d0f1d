//! The evidence chain: every sealed run folder, kept return, seed draw,
//! freeze and retention deletion is an entry whose hash covers the entry
//! before it, so changing or removing any past entry changes every hash
//! after it, and a head copied out of the server (it is printed in every
//! mail and on every workbook's summary) proves what the archive was.
//! Appends are one immediate transaction; triggers refuse UPDATE and
//! DELETE.

use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{Store, StoreError, self_err};

/// One entry of the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainEntry {
    /// 1 for the first entry.
    pub seq: i64,
    /// `seal`, `return`, `tombstone`, `seed`, `freeze`, `commitment` or
    /// `seed-given`.
    pub kind: String,
    /// What it is about: a folder relative to the archive, a period.
    pub id: String,
    /// SHA-256 of what it records (a folder's `SHA256SUMS`, a seed line).
    pub digest: String,
    pub at: String,
    /// The previous entry's hash (64 zeros for the first).
    pub prev: String,
    pub hash: String,
}

impl ChainEntry {
    /// The head as mails and workbooks print it: `第 N 筆 <16 hex>`.
    pub fn label(&self) -> String {
        format!("第 {} 筆 {}", self.seq, &self.hash[..16])
    }
}

/// The hash of an entry: SHA-256 over its fields, one per line, `prev`
/// first.
pub fn entry_hash(prev: &str, seq: i64, kind: &str, id: &str, digest: &str, at: &str) -> String {
    hex::encode(Sha256::digest(
        format!("{prev}\n{seq}\n{kind}\n{id}\n{digest}\n{at}\n").as_bytes(),
    ))
}

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChainEntry> {
    Ok(ChainEntry {
        seq: r.get(0)?,
        kind: r.get(1)?,
        id: r.get(2)?,
        digest: r.get(3)?,
        at: r.get(4)?,
        prev: r.get(5)?,
        hash: r.get(6)?,
    })
}

impl Store {
    /// Appends an entry after the current head and returns it.
    pub fn chain_append(
        &mut self,
        kind: &str,
        id: &str,
        digest: &str,
        at: &str,
    ) -> Result<ChainEntry, StoreError> {
        let tx = super::begin(&mut self.conn).map_err(|e| self_err(&self.file, e))?;
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self_err(&self.file, e))?;
        let (seq, prev) = match last {
            Some((s, h)) => (s + 1, h),
            None => (1, GENESIS.to_owned()),
        };
        let hash = entry_hash(&prev, seq, kind, id, digest, at);
        tx.execute(
            "INSERT INTO chain (seq, kind, id, digest, at, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![seq, kind, id, digest, at, prev, hash],
        )
        .map_err(|e| self_err(&self.file, e))?;
        tx.commit().map_err(|e| self_err(&self.file, e))?;
        Ok(ChainEntry {
            seq,
            kind: kind.to_owned(),
            id: id.to_owned(),
            digest: digest.to_owned(),
            at: at.to_owned(),
            prev,
            hash,
        })
    }

    /// Every entry, in order.
    pub fn chain(&self) -> Result<Vec<ChainEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, kind, id, digest, at, prev, hash FROM chain ORDER BY seq")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    /// The last entry, if any.
    pub fn chain_head(&self) -> Result<Option<ChainEntry>, StoreError> {
        self.conn
            .query_row(
                "SELECT seq, kind, id, digest, at, prev, hash FROM chain ORDER BY seq DESC LIMIT 1",
                [],
                row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
