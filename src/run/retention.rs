//! `run retention`: everything the tool keeps goes when the regulation
//! no longer asks for it (point 5(4): at least three years; points
//! 5(2)3–4: personal data destroyed after use), unless a legal hold keeps
//! it (`webir-audit hold`). Run folders and kept returns past
//! `rules.retention_years`, and the exports in the input store, are
//! deleted with a tombstone in the evidence chain; delivered messages
//! lose their bodies after `rules.outbox_keep_days`; refused returns go
//! after `rules.refused_keep_days`.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::NaiveDateTime;

use super::local_text;
use crate::archive::{self, RunFolder};
use crate::clock::Clock;
use crate::config::Config;
use crate::ingest;
use crate::job::Job;
use crate::store::Store;
use crate::store::retention::Hold;

/// What a retention run did.
#[derive(Debug, Default)]
pub struct Retention {
    /// Run folders deleted (relative to the archive).
    pub deleted: Vec<String>,
    /// Expired sample audits kept because these units' worksheets have not
    /// come back.
    pub kept_unreturned: Vec<(String, Vec<String>)>,
    /// Folders whose period could not be read: kept, and reported.
    pub unreadable: Vec<String>,
    /// Folders still inside their retention.
    pub kept: usize,
    /// Expired folders a legal hold keeps: (folder, the hold's target).
    pub held: Vec<(String, String)>,
    /// The input store's exports deleted, kept current or held.
    pub inputs: crate::inputs::Expired,
    /// Refused returns removed (their numbered names).
    pub refused_removed: Vec<String>,
    /// Delivered messages whose bodies and attachments were dropped.
    pub bodies_dropped: usize,
}

/// Whether the archive folder `dir` concerns `unit`: a run folder with
/// the unit's workbook, or a return from it.
fn concerns(dir: &Path, unit: &str) -> bool {
    let reports = dir.join("reports");
    if reports.join(format!("{unit}.xlsx")).exists()
        || reports.join(format!("{unit}.second-review.xlsx")).exists()
    {
        return true;
    }
    let in_returns = dir.parent().is_some_and(|p| p.ends_with(archive::RETURNS));
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    in_returns
        && name
            .split('_')
            .nth(1)
            .is_some_and(|tag| tag == unit || tag.starts_with(&format!("{unit}.")))
}

/// Whether a hold is on a unit (a unit's id holds no `/`; a run's or a
/// return's chain id does), whether or not the config still has the unit.
fn is_unit(h: &Hold) -> bool {
    !h.target.contains('/')
}

/// The hold in `holds` that keeps archive folder `dir`, if any.
fn hold_on<'h>(holds: &'h [Hold], dir: &Path) -> Option<&'h Hold> {
    let id = archive::chain_id(dir);
    holds
        .iter()
        .find(|h| h.target == id || (is_unit(h) && concerns(dir, &h.target)))
}

/// `run retention`.
pub(super) fn retention(config: &Config, clock: &dyn Clock) -> Result<Retention> {
    let now = clock.local(config.timezone);
    let base = &config.paths.archive;
    let mut store = Store::open(&config.paths.state)?;
    let holds = store.holds(true)?;
    let mut out = Retention::default();
    let years = config.rules.retention_years.max(3);
    // The exports read by runs kept past their retention (held, or
    // awaiting worksheets): kept as long as those runs.
    let mut held_inputs: BTreeSet<String> = BTreeSet::new();
    for dir in archive::run_dirs(base)? {
        let rel = dir.strip_prefix(base).unwrap_or(&dir).display().to_string();
        let job_dir = dir.parent();
        let period_dir = job_dir.and_then(Path::parent);
        let run = RunFolder::parse(&dir);
        // A kept return lives as long as the runs of its period.
        let end = match &run {
            Some(r) => r.period.end(),
            None => archive::returned_period(&dir).and_then(|p| p.end()),
        };
        let Some(end) = end else {
            out.unreadable.push(rel);
            continue;
        };
        let Some(expires) = end.checked_add_months(chrono::Months::new(12 * years)) else {
            out.unreadable.push(rel);
            continue;
        };
        if let Some(h) = hold_on(&holds, &dir) {
            held_inputs.extend(read_inputs(&dir));
            if now >= expires {
                out.held.push((rel, h.target.clone()));
            } else {
                out.kept += 1;
            }
            continue;
        }
        if now < expires {
            out.kept += 1;
            continue;
        }
        if let Some(run) = run.as_ref().filter(|r| r.job == Job::SampleAudit) {
            let returned: BTreeSet<String> = store
                .worksheet_returns(&run.id)?
                .into_iter()
                .map(|r| r.unit_id)
                .collect();
            let missing: Vec<String> = run
                .manifest()?
                .units_sampled()
                .into_iter()
                .filter(|u| !returned.contains(u))
                .collect();
            if !missing.is_empty() {
                held_inputs.extend(read_inputs(&dir));
                out.kept_unreturned.push((rel, missing));
                continue;
            }
        }
        let seal = ingest::hash_file(&dir.join(archive::SEAL))
            .map(|(_, sha)| sha)
            .unwrap_or_else(|_| "unsealed".into());
        store.record_deletion(&rel, &seal, &local_text(now), &local_text(expires))?;
        // The chain keeps the folder's place: a tombstone, not a gap.
        store.chain_append(
            "tombstone",
            &archive::chain_id(&dir),
            &seal,
            &local_text(now),
        )?;
        if let Some(run) = &run {
            store.forget_run(run.job.as_str(), &run.id, &dir.display().to_string())?;
        }
        std::fs::remove_dir_all(&dir).with_context(|| format!("deleting {}", dir.display()))?;
        for parent in [job_dir, period_dir].into_iter().flatten() {
            // Only empty folders go; `remove_dir` refuses the others.
            let _ = std::fs::remove_dir(parent);
        }
        out.deleted.push(rel);
    }
    let unit_held = holds
        .iter()
        .any(|h| config.agencies.get(&h.target).is_some());
    out.inputs = crate::inputs::expire(config, &mut store, now.date(), &local_text(now), &|a| {
        unit_held || held_inputs.contains(&a.sha256)
    })?;
    out.refused_removed = remove_refused(config, now)?;
    let before = now - chrono::Duration::days(i64::from(config.rules.outbox_keep_days));
    out.bodies_dropped = drop_bodies(config, &mut store, before, clock)?;
    Ok(out)
}

/// The SHA-256 of every export a run folder's `inputs.json` names.
fn read_inputs(dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(dir.join("inputs.json")) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<Vec<serde_json::Value>>(&text) else {
        return Vec::new();
    };
    v.iter()
        .filter_map(|f| f["sha256"].as_str().map(str::to_owned))
        .collect()
}

/// Removes the refused returns set aside more than
/// `rules.refused_keep_days` ago (by the time their note records), each
/// with its note.
fn remove_refused(config: &Config, now: NaiveDateTime) -> Result<Vec<String>> {
    let dir = config
        .paths
        .inbox
        .join(super::returns::INBOX_RETURNS)
        .join(crate::inbox::REFUSED);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    let mut notes: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    notes.sort();
    let keep = chrono::Duration::days(i64::from(config.rules.refused_keep_days));
    for note in notes {
        let Some(at) = crate::inbox::set_aside_at(&note) else {
            continue; // not a note of ours: left for a person
        };
        if now - at < keep {
            continue;
        }
        let file = note.with_extension("refused");
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", file.display())),
        }
        std::fs::remove_file(&note).with_context(|| format!("removing {}", note.display()))?;
        out.push(
            file.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
    }
    Ok(out)
}

/// Drops the bodies of the messages delivered before `before` (local
/// time), and the file transport's copies of them.
fn drop_bodies(
    config: &Config,
    store: &mut Store,
    before: NaiveDateTime,
    clock: &dyn Clock,
) -> Result<usize> {
    let before_utc = crate::clock::local_to_utc(config.timezone, before);
    let dropped_before = store.dropped_count()?;
    let ids = store.drop_sent_bodies(
        &crate::mail::outbox::stamp(before_utc),
        &crate::mail::outbox::stamp(clock.now()),
    )?;
    let files = crate::mail::outbox::file_transport_dir(config);
    for id in &ids {
        if let Ok(path) = crate::mail::outbox::delivered_file(&files, id) {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
            }
        }
    }
    Ok(ids.len() - dropped_before)
}
