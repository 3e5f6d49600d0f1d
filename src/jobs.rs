//! Jobs: one audit run from inbox to archive — ingest, check, write the run
//! folder. The CLI and (later) the daemon call these; they take the clock
//! they are given.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use polars::prelude::*;

use crate::archive::{self, InputRecord, RunRecord};
use crate::checks::{self, Code, Job, Tables};
use crate::clock::Clock;
use crate::config::{Config, Severity};
use crate::ingest::{self, Ingested};
use crate::model::Table;
use crate::period::Period;

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::AccountReview => "account-review",
            Job::QueryCheck => "query-check",
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub findings: DataFrame,
    /// The ingest manifest and rejects; its tables were moved into the
    /// checks (see `take_tables`) and are empty here.
    pub ingested: Ingested,
    /// The most severe finding, if any.
    pub worst: Option<Severity>,
}

pub fn tables(ing: &Ingested) -> Tables {
    Tables {
        query_log: ing.table(Table::QueryLog).clone(),
        roster: ing.table(Table::Roster).clone(),
        hr: ing.table(Table::Hr).clone(),
        request_forms: ing.table(Table::RequestForms).clone(),
    }
}

/// Moves the tables out of `ing`, so the checks hold the only copy and
/// can free the raw query log once it is explained.
fn take_tables(ing: &mut Ingested) -> Tables {
    let mut take = |t: Table| {
        ing.tables
            .get_mut(&t)
            .map(std::mem::take)
            .unwrap_or_default()
    };
    Tables {
        query_log: take(Table::QueryLog),
        roster: take(Table::Roster),
        hr: take(Table::Hr),
        request_forms: take(Table::RequestForms),
    }
}

/// Runs `job`: account review as of `as_of`, or the query check of `period`.
pub fn run(
    config: &Config,
    job: Job,
    period: Option<Period>,
    as_of: Option<NaiveDate>,
    clock: &dyn Clock,
) -> Result<RunOutcome> {
    let started = clock.local(config.timezone);
    let as_of = as_of.unwrap_or(started.date());
    let mut ingested = ingest::ingest(config, None).context("ingesting the inbox")?;
    release_freed_memory();
    let findings = checks::run(
        config,
        take_tables(&mut ingested),
        job,
        as_of,
        period.clone(),
    )
    .map_err(anyhow::Error::from)
    .context("running the checks")?;

    let period_id = match &period {
        Some(p) => p.id.clone(),
        None => format!("as-of-{as_of}"),
    };
    let dir = archive::create_run_dir(&config.paths.archive, &period_id, job.name(), started)?;
    archive::write_csv(&findings, &dir.join("findings.csv"))?;
    archive::write_csv(&ingested.rejects, &dir.join("rejects.csv"))?;
    let inputs: Vec<InputRecord> = ingested.files.iter().map(InputRecord::from).collect();
    archive::write_json(&inputs, &dir.join("inputs.json"))?;

    let codes = findings.column("code")?.str()?.clone();
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_severity: BTreeMap<String, usize> = BTreeMap::new();
    let mut worst: Option<Severity> = None;
    for c in codes.iter().flatten() {
        *by_code.entry(c.to_owned()).or_default() += 1;
        if let Some(code) = Code::parse(c) {
            *by_severity
                .entry(code.severity().name().to_owned())
                .or_default() += 1;
            worst = Some(worst.map_or(code.severity(), |w| w.min(code.severity())));
        }
    }
    let record = RunRecord {
        tool: "webir-audit",
        version: env!("CARGO_PKG_VERSION"),
        job: job.name().into(),
        period: period_id,
        as_of: period.is_none().then(|| as_of.to_string()),
        started: started.format("%Y-%m-%dT%H:%M:%S").to_string(),
        finished: clock
            .local(config.timezone)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
        findings: findings.height(),
        by_code,
        by_severity,
        inputs: ingested.files.len(),
        failed_inputs: ingested.failed_files().count(),
        rejected_rows: ingested.rejects.height(),
    };
    archive::write_json(&record, &dir.join("run.json"))?;
    Ok(RunOutcome {
        dir,
        findings,
        ingested,
        worst,
    })
}

/// Hands memory that ingest freed back to the operating system. glibc keeps
/// freed blocks in per-thread arenas, so without this the peak of a run is
/// ingest's peak plus the checks' working set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_freed_memory() {
    // SAFETY: malloc_trim only returns unused heap pages to the kernel; it
    // takes no pointers and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory() {}
