//! `manifest.json`: everything needed to re-draw a sample and check it —
//! the seed and how it came, the period, the parameters, the inputs with
//! their hashes, the population digest, the selection and its digest.
//! Integers only, no floats; tickets and digests as lowercase hex.

use serde::{Deserialize, Serialize};

use super::{DigestInput, Params, UnitSample, sample_digest, spec::SPEC_VERSION};
use crate::ingest::{FileRecord, FileStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub spec_version: String,
    pub tool: String,
    pub tool_version: String,
    pub seed: String,
    /// `given` (`--seed`, e.g. a public dice ceremony) or `os` (drawn by
    /// the tool from the operating system's CSPRNG after freezing).
    pub seed_source: String,
    /// 1 for the first draw of the period; more means the period was drawn
    /// again, and every report says so.
    pub draw_number: u32,
    /// Local time of the draw (not covered by the sample digest).
    pub drawn_at: String,
    pub period: PeriodRecord,
    pub parameters: Params,
    pub config: ConfigRecord,
    /// The inbox the inputs were read from.
    pub inbox: String,
    pub inputs: Vec<InputHash>,
    pub population_records: u64,
    pub population_accounts: u64,
    pub population_digest: String,
    /// When the population was frozen for a ceremony (`freeze`), if it was;
    /// the draw checked the digest against it.
    pub frozen_at: Option<String>,
    /// The daemon's seed ceremony, when the seed came by one: the
    /// commitment, its mails, when and how the seed arrived, the period's
    /// seed ledger.
    #[serde(default)]
    pub ceremony: Option<CeremonyRecord>,
    /// What proves the seed came after the population, in words:
    /// `ceremony: …`, `freeze: …` or `none: …` (docs/sampling.md § 9).
    #[serde(default)]
    pub seed_postdates_population: String,
    pub units: Vec<UnitSample>,
    pub sample_digest: String,
}

/// A seed ceremony as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CeremonyRecord {
    /// Local time the population was frozen and the commitment queued.
    pub committed_at: String,
    /// SHA-256 of the commitment's text as mailed (a `commitment` entry
    /// of the evidence chain has the same digest).
    pub commitment_sha256: String,
    /// `recipient <Message-ID>` of each commitment mail.
    pub commitment_messages: Vec<String>,
    /// The population digest the commitment published.
    pub population_digest: String,
    /// Local time the seed was recorded.
    pub seed_given_at: String,
    /// Who gave it: an OS user, or a file in `inbox/seeds/`.
    pub seed_given_by: String,
    /// `command`, `inbox` or `os-fallback`.
    pub seed_via: String,
    /// Every draw of the period so far, this one last.
    pub seed_ledger: Vec<LedgerDraw>,
}

/// One row of the seed ledger, as the manifest extracts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerDraw {
    pub draw_number: u32,
    pub seed: String,
    pub source: String,
    pub drawn_at: String,
    pub population_digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodRecord {
    pub id: String,
    /// First local instant of the period, `YYYY-MM-DDTHH:MM:SS`.
    pub start: String,
    /// First local instant after it.
    pub end: String,
    pub timezone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub file: String,
    pub sha256: String,
}

/// One input file as the sample saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputHash {
    /// Path relative to the inbox, `/`-separated.
    pub file: String,
    pub table: Option<String>,
    pub bytes: u64,
    /// Rows loaded from it.
    pub rows: u64,
    pub sha256: String,
    /// `loaded`, `duplicate` or `failed`.
    pub status: String,
}

impl From<&FileRecord> for InputHash {
    fn from(f: &FileRecord) -> InputHash {
        InputHash {
            file: f.path.clone(),
            table: f.table.map(|t| t.as_str().to_owned()),
            bytes: f.size,
            rows: f.rows_loaded as u64,
            sha256: f.sha256.clone(),
            status: match f.status {
                FileStatus::Loaded => "loaded",
                FileStatus::Duplicate { .. } => "duplicate",
                FileStatus::Failed { .. } => "failed",
            }
            .into(),
        }
    }
}

impl Manifest {
    /// The units with sampled accounts: those whose worksheets must come
    /// back.
    pub fn units_sampled(&self) -> Vec<String> {
        self.units
            .iter()
            .filter(|u| u.strata.iter().any(|s| s.accounts_selected > 0))
            .map(|u| u.unit_id.clone())
            .collect()
    }

    /// The sample digest this manifest's content implies.
    pub fn computed_sample_digest(&self) -> String {
        sample_digest(&DigestInput {
            spec_version: &self.spec_version,
            seed: &self.seed,
            period_id: &self.period.id,
            population_digest: &self.population_digest,
            parameters: self.parameters,
            units: &self.units,
        })
    }

    pub fn is_current_spec(&self) -> bool {
        self.spec_version == SPEC_VERSION
    }
}
