//! `verify`: re-draws a sample audit from its manifest and the inputs, and
//! says MATCH or where the first difference is. It trusts nothing in the
//! manifest it can recompute: input hashes, the population digest, every
//! stratum, account and record, and the sample digest.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config;
use crate::ingest::{self, FileStatus};
use crate::period::Period;
use crate::run;
use crate::sampling::manifest::InputHash;
use crate::sampling::spec::Seed;
use crate::sampling::{self, first_difference};

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything recomputed equals the manifest.
    Match {
        /// Things worth knowing that are not differences (e.g. the config
        /// file changed but the sample did not).
        notes: Vec<String>,
    },
    /// The first difference found, in words.
    Differs { first: String, notes: Vec<String> },
}

pub use crate::archive::read_manifest;

/// Verifies the sample audit at `path`. `inputs` overrides the inbox the
/// manifest names; `config` the config file it names.
pub fn verify(path: &Path, inputs: Option<&Path>, config: Option<&Path>) -> Result<Verdict> {
    let (_, m) = read_manifest(path)?;
    let mut notes = Vec::new();
    let differs = |first: String, notes: Vec<String>| Ok(Verdict::Differs { first, notes });
    if !m.is_current_spec() {
        return differs(
            format!(
                "the manifest follows spec {}, this tool implements {}",
                m.spec_version,
                sampling::spec::SPEC_VERSION
            ),
            notes,
        );
    }
    let digest = m.computed_sample_digest();
    if digest != m.sample_digest {
        return differs(
            format!(
                "the manifest's sample_digest {} does not match its own content ({digest}): the manifest was altered",
                m.sample_digest
            ),
            notes,
        );
    }

    let config_file = config.map_or_else(|| PathBuf::from(&m.config.file), Path::to_path_buf);
    let mut cfg = config::load(&config_file)?;
    let (_, sha) = ingest::hash_file(&config_file)
        .with_context(|| format!("hashing {}", config_file.display()))?;
    if sha != m.config.sha256 {
        notes.push(format!(
            "config {} differs from the one the run used (sha256 {} then, {sha} now)",
            config_file.display(),
            m.config.sha256
        ));
    }
    cfg.paths.inbox = inputs.map_or_else(|| PathBuf::from(&m.inbox), Path::to_path_buf);
    if inputs.is_some() {
        // Exactly the files given: not the input store beside them.
        cfg.paths.inputs = None;
    }
    let period: Period = m.period.id.parse()?;
    let seed: Seed = m.seed.parse()?;

    let frozen = run::freeze_inputs(&cfg, &period)?;
    // Exports retention deleted (their tombstones in the chain): not a
    // difference in themselves. The population, recomputed without them,
    // still has to match: it does when they held no record of the period.
    let deleted: std::collections::BTreeSet<String> =
        match crate::store::Store::open(&cfg.paths.state).and_then(|s| s.chain()) {
            Ok(chain) => chain
                .into_iter()
                .filter(|e| e.kind == "input-tombstone")
                .map(|e| e.digest)
                .collect(),
            Err(_) => Default::default(),
        };
    let (gone, kept): (Vec<InputHash>, Vec<InputHash>) = m.inputs.iter().cloned().partition(|r| {
        deleted.contains(&r.sha256) && !frozen.ingested.files.iter().any(|f| f.path == r.file)
    });
    for r in &gone {
        notes.push(format!(
            "input {} was deleted at the end of its retention (its tombstone is in the evidence chain); the population is recomputed without it",
            r.file
        ));
    }
    if let Some(first) = input_difference(&kept, &frozen.ingested.files, &cfg.paths.inbox) {
        return differs(first, notes);
    }
    let pop = &frozen.population;
    if pop.digest != m.population_digest {
        let recomputed = sampling::select(pop, &cfg, &period.id, &seed, m.parameters)?;
        let first = first_difference(&m.units, &recomputed).unwrap_or_else(|| {
            "no stratum's counts differ, so a record changed within an account".into()
        });
        return differs(
            format!(
                "population digest differs: the manifest has {}, recomputed {} ({} records); {first}",
                m.population_digest,
                pop.digest,
                pop.frame.height()
            ),
            notes,
        );
    }
    let recomputed = sampling::select(pop, &cfg, &period.id, &seed, m.parameters)?;
    if let Some(first) = first_difference(&m.units, &recomputed) {
        return differs(first, notes);
    }
    Ok(Verdict::Match { notes })
}

/// The first input that is missing, changed, failed differently or new.
fn input_difference(
    recorded: &[InputHash],
    now: &[ingest::FileRecord],
    inbox: &Path,
) -> Option<String> {
    for r in recorded {
        let Some(f) = now.iter().find(|f| f.path == r.file) else {
            return Some(format!(
                "input {} is missing from {}",
                r.file,
                inbox.display()
            ));
        };
        if f.sha256 != r.sha256 {
            return Some(format!(
                "input {} changed: sha256 {} in the manifest, {} now ({} bytes then, {} now)",
                r.file, r.sha256, f.sha256, r.bytes, f.size
            ));
        }
        if matches!(f.status, FileStatus::Loaded) && f.rows_loaded as u64 != r.rows {
            return Some(format!(
                "input {}: {} rows loaded now, {} in the manifest (same bytes: the config's reading of it changed)",
                r.file, f.rows_loaded, r.rows
            ));
        }
    }
    now.iter()
        .find(|f| !recorded.iter().any(|r| r.file == f.path))
        .map(|f| {
            format!(
                "input {} is new: it is in {} but not in the manifest",
                f.path,
                inbox.display()
            )
        })
}
