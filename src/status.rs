//! `status`: what the daemon did and will do, for a person (text) or for
//! monitoring (`--json`). Also the body of the weekly heartbeat mail.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::Serialize;

use super::schedule::Schedule;
use crate::clock::Clock;
use crate::config::Config;
use crate::mail::outbox::stamp;
use crate::store::{LedgerRow, MailState, SeenInput, Store};

#[derive(Debug, Serialize)]
pub struct JobStatus {
    pub job: String,
    pub cron: String,
    pub last: Option<LedgerRow>,
    pub next: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub now: String,
    pub state_dir: String,
    /// One per schedule (empty when the schedules were not given).
    pub jobs: Vec<JobStatus>,
    /// Rows waiting for inputs (their `error` says what is missing),
    /// running, failed or missed.
    pub attention: Vec<LedgerRow>,
    /// Outbox messages by state.
    pub outbox: BTreeMap<String, usize>,
    /// Messages whose outcome is unknown: the operator must decide.
    pub outbox_unknown: Vec<String>,
    /// What runs asked of units, and where each stands (point 6).
    pub due: Vec<crate::report::build::DueRow>,
    /// Inbox files seen, newest first seen first.
    pub inputs: Vec<SeenInput>,
    pub archive_bytes: u64,
    /// Run folders a killed run left (no seal, no live run): the next run
    /// removes them.
    pub leftovers: Vec<String>,
    /// Duties of the regulation the schedules suspend, and why.
    pub suspended: Vec<SuspendedDuty>,
}

/// A duty the schedules suspend (`[[suspended]]`).
#[derive(Debug, Serialize)]
pub struct SuspendedDuty {
    pub job: String,
    pub reason: String,
    pub file: String,
}

/// The duties the schedules in `paths.schedules` suspend; none if they do
/// not load (the daemon names that problem when it starts).
fn suspended_duties(config: &Config) -> Vec<SuspendedDuty> {
    let dir = &config.paths.schedules;
    let Ok(schedules) = crate::schedule::load(dir, config.timezone) else {
        return Vec::new();
    };
    crate::schedule::suspended(dir, &schedules)
        .unwrap_or_default()
        .into_iter()
        .map(|s| SuspendedDuty {
            job: s.job.as_str().to_owned(),
            reason: s.reason,
            file: s.file.display().to_string(),
        })
        .collect()
}

impl Status {
    pub fn gather(
        config: &Config,
        schedules: Option<&[Schedule]>,
        clock: &dyn Clock,
    ) -> Result<Status> {
        let now = clock.now();
        let store = Store::open(&config.paths.state)?;
        store.check()?;
        let ledger = store.ledger()?;
        let mut jobs = Vec::new();
        for s in schedules.unwrap_or_default() {
            jobs.push(JobStatus {
                job: s.job.as_str().to_owned(),
                cron: s.cron_text.clone(),
                last: ledger
                    .iter()
                    .filter(|r| r.job == s.job.as_str())
                    .max_by(|a, b| a.scheduled_for.cmp(&b.scheduled_for))
                    .cloned(),
                next: s.next_after(now, config.timezone).map(stamp),
            });
        }
        let attention = ledger
            .iter()
            .filter(|r| r.state.is_open())
            .cloned()
            .collect();
        let rows = store.outbox()?;
        let mut outbox = BTreeMap::new();
        for r in &rows {
            *outbox.entry(r.state.as_str().to_owned()).or_default() += 1;
        }
        let outbox_unknown = rows
            .iter()
            .filter(|r| r.state == MailState::Unknown)
            .map(|r| format!("{} {} {}", r.id, r.recipient, r.subject))
            .collect();
        let present: BTreeSet<String> = crate::ingest::discover_inbox(config)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, _, rel)| rel)
            .collect();
        let mut inputs: Vec<SeenInput> = store
            .inputs_seen()?
            .into_iter()
            .filter(|i| present.contains(&i.path))
            .collect();
        inputs.reverse();
        let due = crate::followup::due_rows(&store, clock.local(config.timezone).date())?;
        Ok(Status {
            now: stamp(now),
            state_dir: config.paths.state.display().to_string(),
            jobs,
            attention,
            outbox,
            outbox_unknown,
            due,
            inputs,
            archive_bytes: dir_size(&config.paths.archive),
            leftovers: crate::archive::leftovers(
                &config.paths.archive,
                &rows.iter().map(|r| r.run.clone()).collect(),
            )
            .unwrap_or_default()
            .iter()
            .map(|d| d.display().to_string())
            .collect(),
            suspended: suspended_duties(config),
        })
    }

    /// The text a person reads.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "webir-audit status at {} ({})", self.now, self.state_dir);
        if !self.jobs.is_empty() {
            let _ = writeln!(s, "\njobs:");
            for j in &self.jobs {
                let last = j.last.as_ref().map_or_else(
                    || "never".to_owned(),
                    |r| format!("{} {} ({})", r.period, r.state, r.scheduled_for),
                );
                let _ = writeln!(
                    s,
                    "  {:<15} last: {last}; next: {}",
                    j.job,
                    j.next.as_deref().unwrap_or("never")
                );
            }
        }
        self.render_attention(&mut s);
        let counts: Vec<String> = self
            .outbox
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let _ = writeln!(
            s,
            "\noutbox: {}",
            if counts.is_empty() {
                "empty".to_owned()
            } else {
                counts.join(", ")
            }
        );
        for u in &self.outbox_unknown {
            let _ = writeln!(s, "  unknown outcome (outbox confirm|retry): {u}");
        }
        let open: Vec<_> = self
            .due
            .iter()
            .filter(|d| d.returned_on.is_none())
            .collect();
        let _ = writeln!(
            s,
            "\nreturns: {} asked, {} returned, {} open ({} overdue)",
            self.due.len(),
            self.due.len() - open.len(),
            open.len(),
            open.iter().filter(|d| d.days_late > 0).count()
        );
        for d in open {
            let when = if d.days_late > 0 {
                format!("OVERDUE by {} days (due {})", d.days_late, d.due_on)
            } else {
                format!("due {} (in {} days)", d.due_on, -d.days_late)
            };
            let _ = writeln!(s, "  {:<10} {} [{}]: {when}", d.unit_id, d.label, d.run_id);
        }
        let _ = writeln!(s, "\ninputs in the inbox:");
        for i in &self.inputs {
            let span = match (&i.first_at, &i.last_at) {
                (Some(a), Some(b)) => format!(", {a} .. {b}"),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "  {} ({} rows{span}; modified {}; {})",
                i.path, i.rows, i.modified, i.status
            );
        }
        let _ = writeln!(s, "\narchive: {:.1} MB", self.archive_bytes as f64 / 1e6);
        s
    }

    /// What needs a person: runs a kill left, suspended duties, and ledger
    /// rows waiting, running, failed or missed.
    fn render_attention(&self, s: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(s, "\nneeds attention:");
        for d in &self.leftovers {
            let _ = writeln!(
                s,
                "  {d}: left unsealed by a run that was killed (it holds personal data and is no record); the next run removes it"
            );
        }
        for d in &self.suspended {
            let _ = writeln!(
                s,
                "  {} suspended: {} ({}); a duty of the regulation the daemon does not run",
                d.job, d.reason, d.file
            );
        }
        if self.attention.is_empty() && self.leftovers.is_empty() && self.suspended.is_empty() {
            let _ = writeln!(s, "  nothing");
        }
        for r in &self.attention {
            let _ = writeln!(
                s,
                "  {} {} {} since {}{}",
                r.job,
                r.period,
                r.state,
                r.scheduled_for,
                r.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
