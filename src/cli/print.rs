//! What a person reads on the terminal: a run's findings by code and its
//! rejects, a draw, what retention did, the inputs and the agency tree.
//! Everything here formats what the run layer returned; nothing decides.

use std::io::Write;

use anyhow::Context as _;
use chrono::Datelike as _;
use polars::prelude::*;

use super::{Error, ExitStatus};
use crate::config;
use crate::ingest::{FileStatus, Ingested};
use crate::model::Table;
use crate::period::Period;

/// Writes one line to the terminal.
pub(super) fn line(out: &mut dyn Write, s: String) -> anyhow::Result<()> {
    writeln!(out, "{s}").context("writing to stdout")
}

/// What a drain of the outbox did.
pub(super) fn drained(out: &mut dyn Write, d: &crate::mail::outbox::Drained) -> anyhow::Result<()> {
    line(
        out,
        format!(
            "mail: {} sent, {} to retry, {} failed, {} of unknown outcome",
            d.sent, d.retrying, d.failed, d.unknown
        ),
    )
}

/// Prints what a job did; returns the exit status it deserves.
pub(super) fn print_done(
    config: &crate::config::Config,
    done: &crate::run::Done,
    clock: &dyn crate::clock::Clock,
    send: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    use crate::run::Done;
    let w = line;
    match done {
        Done::Sample(s) => print_sample(&s.manifest, out)?,
        Done::External(_, sel) => {
            w(
                out,
                format!(
                    "external audit {}: seed {} ({}), draw {}",
                    sel.period_id, sel.seed, sel.seed_source, sel.draw_number
                ),
            )?;
            for u in sel.units.iter().filter(|u| u.selected) {
                w(
                    out,
                    format!(
                        "  selected {:<12} rank {} ticket {}",
                        u.unit_id, u.rank, u.ticket
                    ),
                )?;
            }
        }
        Done::Retention(r) => return print_retention(config, r, out),
        Done::Heartbeat => {
            w(out, "status mail queued".into())?;
            if send {
                drained(out, &crate::run::operator::send_due_mail(config, clock)?)?;
            }
            return Ok(ExitStatus::Ok);
        }
        Done::Run(_) => {}
    }
    match done.run() {
        Some(run) => report_run(config, run, clock, send, out),
        None => Ok(ExitStatus::Ok),
    }
}

/// Prints a run's findings by code and its rejects, then the run folder;
/// returns the exit status the run deserves.
pub(super) fn report_run(
    config: &crate::config::Config,
    outcome: &crate::run::RunOutcome,
    clock: &dyn crate::clock::Clock,
    send: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let w = line;
    let codes = outcome
        .findings
        .column("code")
        .and_then(|c| c.str().cloned())
        .map_err(anyhow::Error::from)?;
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for c in codes.iter().flatten() {
        *counts.entry(c).or_default() += 1;
    }
    w(out, format!("{} findings", outcome.findings.height()))?;
    for (code, n) in &counts {
        w(out, format!("  {code:<32} {n:>8}"))?;
    }
    for n in &outcome.not_checked {
        w(
            out,
            format!(
                "NOT CHECKED {}: {} ({}{}): {}",
                n.codes.join(", "),
                n.why.phrase(),
                n.input,
                n.column
                    .map(|c| format!(", column {c}"))
                    .unwrap_or_default(),
                n.detail
            ),
        )?;
    }
    // An export dated by its file's time, or left undated for that reason:
    // the result would change with a copy of the file.
    for f in &outcome.ingested.files {
        if f.dated_by_file_time() || f.modified_refused {
            w(
                out,
                format!("WARNING: {}: {}", f.path, f.date_note().unwrap_or_default()),
            )?;
        }
    }
    write_rejects(&outcome.ingested, out)?;
    if send {
        drained(out, &crate::run::operator::send_due_mail(config, clock)?)?;
    }
    // The last line is the run folder, for scripts.
    w(out, outcome.dir.display().to_string())?;
    Ok(if !outcome.ingested.is_clean() || outcome.withheld() {
        ExitStatus::InputError
    } else if outcome
        .worst
        .is_some_and(|s| s <= config.rules.fail_on_severity)
    {
        ExitStatus::Findings
    } else {
        ExitStatus::Ok
    })
}

/// The sample audit's draw, as the terminal shows it.
pub(super) fn print_sample(
    m: &crate::sampling::manifest::Manifest,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let w = line;
    w(
        out,
        format!("sample audit {} ({})", m.period.id, m.spec_version),
    )?;
    w(
        out,
        format!("  seed               {} ({})", m.seed, m.seed_source),
    )?;
    let again = if m.draw_number > 1 {
        format!(" (WARNING: this period was drawn {} times)", m.draw_number)
    } else {
        String::new()
    };
    w(
        out,
        format!("  draw number        {}{again}", m.draw_number),
    )?;
    w(
        out,
        format!(
            "  population         {} records, {} accounts in use",
            m.population_records, m.population_accounts
        ),
    )?;
    w(out, format!("  population digest  {}", m.population_digest))?;
    let (accounts, records) = m
        .units
        .iter()
        .flat_map(|u| &u.strata)
        .fold((0, 0), |(a, r), s| {
            (
                a + s.accounts_selected,
                r + s.accounts.iter().map(|a| a.records_selected).sum::<u64>(),
            )
        });
    w(
        out,
        format!("  selected           {accounts} accounts, {records} records"),
    )?;
    w(out, format!("  sample digest      {}", m.sample_digest))?;
    Ok(())
}

pub(super) fn print_retention(
    config: &crate::config::Config,
    r: &crate::run::Retention,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let w = line;
    for d in &r.deleted {
        w(out, format!("deleted  {d}"))?;
    }
    for (d, units) in &r.kept_unreturned {
        w(
            out,
            format!(
                "kept     {d}: worksheets not returned by {}",
                units.join(", ")
            ),
        )?;
    }
    for d in &r.unreadable {
        w(out, format!("kept     {d}: its period cannot be read"))?;
    }
    for (d, target) in &r.held {
        w(out, format!("held     {d}: legal hold on {target}"))?;
    }
    for d in &r.inputs.deleted {
        w(out, format!("deleted  inputs/{d}"))?;
    }
    for d in &r.inputs.kept_current {
        w(
            out,
            format!("kept     inputs/{d}: the newest export of its table"),
        )?;
    }
    for d in &r.inputs.held {
        w(out, format!("held     inputs/{d}: legal hold"))?;
    }
    w(
        out,
        format!(
            "{} deleted, {} kept within {} years, {} expired but kept, {} held; \
             {} exports deleted; {} refused returns removed (after {} days); \
             {} delivered messages' bodies dropped (after {} days)",
            r.deleted.len(),
            r.kept,
            config.rules.retention_years,
            r.kept_unreturned.len() + r.unreadable.len(),
            r.held.len(),
            r.inputs.deleted.len(),
            r.refused_removed.len(),
            config.rules.refused_keep_days,
            r.bodies_dropped,
            config.rules.outbox_keep_days,
        ),
    )?;
    Ok(ExitStatus::Ok)
}

/// The requesting units and the agencies each one's reports cover, and
/// what a reviewer should see before the register goes live: a unit
/// without an ethics address, an officer outside `mail.allowed_domains`.
pub(super) fn agency_tree(config: &config::Config) -> Vec<String> {
    let mut out = vec!["units (each unit's reports cover the agencies under it):".to_owned()];
    for unit in config.agencies.iter().filter(|a| a.requesting) {
        let members: Vec<String> = config
            .agencies
            .iter()
            .filter(|a| a.unit == unit.id && a.id != unit.id)
            .map(|a| a.id.clone())
            .collect();
        out.push(format!(
            "  {} {} → {}: {}",
            unit.id,
            unit.name,
            unit.officer_email.as_deref().unwrap_or("(no officer)"),
            if members.is_empty() {
                "itself only".to_owned()
            } else {
                members.join(", ")
            }
        ));
        if unit.ethics_email.is_none() {
            out.push(format!(
                "WARNING: unit {} has no ethics_email: critical findings and overdue returns reach no ethics unit",
                unit.id
            ));
        }
    }
    out
}

/// What `check-config` warns of the holidays calendar: none configured
/// (off-hours then know weekends only), or one that ends before a period
/// the schedules will check next (that run will wait for it).
pub(super) fn calendar_warnings(
    config: &crate::config::Config,
    clock: &dyn crate::clock::Clock,
) -> Vec<String> {
    use crate::schedule;
    let h = &config.rules.holidays;
    if !h.configured {
        return vec![
            "rules.holidays is not set: QUERY_OFF_HOURS knows weekends and office hours, not national holidays or make-up workdays".into(),
        ];
    }
    let known = h.years();
    let Ok(schedules) = schedule::load(&config.paths.schedules, config.timezone) else {
        return Vec::new();
    };
    let now = clock.now();
    let mut out = Vec::new();
    for s in schedules.iter().filter(|s| s.job.awaits().calendar) {
        let Some(next) = s.next_after(now, config.timezone) else {
            continue;
        };
        let period = s
            .period
            .period_for(next.with_timezone(&config.timezone).naive_local());
        let Ok(p) = period.parse::<Period>() else {
            continue;
        };
        for y in p.start.date().year()..=p.last_day().year() {
            if !known.contains(&y) {
                out.push(format!(
                    "the holidays file lists no holiday in {y}; {} of {period} (due {}) will wait for that year's calendar",
                    s.job.as_str(),
                    next.with_timezone(&config.timezone).format("%Y-%m-%d %H:%M")
                ));
            }
        }
    }
    out
}

/// What `check-config` and `ingest` say of each file beyond its counts:
/// optional columns it lacks (and the checks that then cannot run), the
/// records it shares with other files, and a roster's snapshot date.
pub(super) fn file_notes(ing: &Ingested) -> Vec<String> {
    let mut out = Vec::new();
    for f in &ing.files {
        let Some(t) = f.table else { continue };
        for c in &f.absent_columns {
            let codes = crate::checks::codes_needing(t, c);
            out.push(if codes.is_empty() {
                format!(
                    "{}: no {c} column (optional; every check runs without it)",
                    f.path
                )
            } else {
                format!(
                    "{}: no {c} column: NOT CHECKED while this file is used: {}",
                    f.path,
                    codes.join(", ")
                )
            });
        }
        if f.rows_shared > 0 {
            out.push(format!(
                "{}: {} rows are records another file also holds; {} of them counted in the other file, not here",
                f.path, f.rows_shared, f.rows_counted_elsewhere
            ));
        }
        let what = match t {
            Table::Roster => "roster snapshot of",
            Table::RequestForms => "request-form register of",
            _ => continue,
        };
        if f.dated_by_file_time() {
            out.push(format!(
                "WARNING: {}: {what} {}; a sealed audit (sample, internal, external) takes no such date unless rules.accept_modification_dates = true: write the export's date in a title row (製表日期：115/07/02) or its file name",
                f.path,
                f.date_note().unwrap_or_default()
            ));
        } else if let Some(s) = f.snapshot {
            out.push(format!(
                "{}: {what} {} (date from the {})",
                f.path,
                s.date,
                s.source.as_str()
            ));
        }
    }
    out
}

pub(super) fn status_text(s: &FileStatus) -> String {
    match s {
        FileStatus::Loaded => "ok".into(),
        FileStatus::Duplicate { of } => format!("duplicate of {of} (ingested once)"),
        FileStatus::Failed { error } => format!("FAILED: {error}"),
    }
}

/// How many rejects are listed on the terminal; all of them are in the
/// rejects table that reports show.
const REJECTS_SHOWN: usize = 50;

pub(super) fn write_rejects(ing: &Ingested, out: &mut dyn Write) -> anyhow::Result<()> {
    let failed: Vec<_> = ing.failed_files().collect();
    if !failed.is_empty() {
        writeln!(
            out,
            "\n{} file(s) failed; the others were ingested:",
            failed.len()
        )?;
        for f in failed {
            writeln!(out, "  {}", status_text(&f.status))?;
        }
    }
    let n = ing.rejects.height();
    if n == 0 {
        return Ok(());
    }
    writeln!(out, "\n{n} row(s) rejected:")?;
    let get = |name: &str| {
        anyhow::Context::context(
            ing.rejects
                .column(name)
                .and_then(|c| c.cast(&DataType::String)),
            "rejects table",
        )
    };
    let (file, sheet, row, reason) = (
        get("source_file")?,
        get("sheet")?,
        get("source_row")?,
        get("reason")?,
    );
    let (file, sheet, row, reason) = (file.str()?, sheet.str()?, row.str()?, reason.str()?);
    for i in 0..n.min(REJECTS_SHOWN) {
        let sheet = sheet
            .get(i)
            .filter(|s| !s.is_empty())
            .map(|s| format!(" sheet {s:?}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  {}{} row {}: {}",
            file.get(i).unwrap_or(""),
            sheet,
            row.get(i).unwrap_or(""),
            // A whole national ID in a reason is masked here too (a
            // malformed one, which the reason is about, is not an ID).
            crate::privacy::mask_ids_in_text(reason.get(i).unwrap_or(""))
        )?;
    }
    if n > REJECTS_SHOWN {
        writeln!(out, "  … and {} more", n - REJECTS_SHOWN)?;
    }
    Ok(())
}

/// The earliest and latest value of a table's main date column.
pub(super) fn date_range(df: &DataFrame, t: Table) -> anyhow::Result<(String, String)> {
    let column = match t {
        Table::QueryLog => "queried_at",
        Table::Roster => "created_on",
        Table::Hr => "effective_date",
        Table::RequestForms => "requested_at",
        Table::Applications => "applied_on",
    };
    if df.height() == 0 {
        return Ok(("-".into(), "-".into()));
    }
    let r = df
        .clone()
        .lazy()
        .select([
            col(column).min().cast(DataType::String).alias("from"),
            col(column).max().cast(DataType::String).alias("to"),
        ])
        .collect()?;
    let get = |n: &str| -> anyhow::Result<String> {
        Ok(r.column(n)?
            .str()?
            .get(0)
            .map(|s| s.trim_end_matches(".000000").to_owned())
            .unwrap_or_else(|| "-".into()))
    };
    Ok((get("from")?, get("to")?))
}

/// The outbox, a message a line, then how many in each state.
pub(super) fn outbox_rows(
    rows: &[crate::store::OutboxRow],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in rows {
        *counts.entry(r.state.as_str()).or_default() += 1;
        line(
            out,
            format!(
                "{:>5} {:<8} {:>2} {:<32} {}{}",
                r.id,
                r.state,
                r.attempts,
                r.recipient,
                r.subject,
                r.last_error
                    .as_deref()
                    .map(|e| format!("  [{e}]"))
                    .unwrap_or_default()
            ),
        )?;
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    line(
        out,
        format!("{} messages: {}", rows.len(), summary.join(", ")),
    )
}

/// The legal holds, in force or released (its reason masked).
pub(super) fn holds(
    holds: &[crate::store::retention::Hold],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    for h in holds {
        let state = match (&h.released_at, &h.release_reason) {
            (Some(at), Some(why)) => {
                format!("released {at}: {}", crate::privacy::mask_ids_in_text(why))
            }
            _ => "in force".to_owned(),
        };
        line(
            out,
            format!(
                "{}  placed {}: {}  ({state})",
                h.target, h.placed_at, h.reason
            ),
        )?;
    }
    Ok(())
}

/// What `archive verify` found: each problem, what a given head vouches
/// for, then the verdict.
pub(super) fn archive_check(
    check: &crate::run::operator::ArchiveCheck,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (chain, problems) = (&check.chain, &check.problems);
    for p in problems {
        line(out, format!("{}: {}", p.run, p.problem))?;
    }
    // A head from a receipt, a mail or a workbook: what it vouches for.
    if let Some(e) = &check.head_entry {
        line(
            out,
            format!(
                "head {} is entry {} of {}: entries 1 to {} are as that copy saw them",
                &e.hash[..16],
                e.seq,
                chain.len(),
                e.seq
            ),
        )?;
    }
    if problems.is_empty() {
        line(
            out,
            format!(
                "{} run folders, all sealed and unchanged; {} stored exports as moved in; evidence chain of {} entries intact{}",
                check.runs,
                check.exports,
                chain.len(),
                chain
                    .last()
                    .map(|e| format!(", head {} {}", e.seq, &e.hash[..16]))
                    .unwrap_or_default()
            ),
        )
    } else {
        line(
            out,
            format!("{} run folders, {} problems", check.runs, problems.len()),
        )
    }
}

/// The register's changes since the daemon last ran.
pub(super) fn agency_changes(changes: &[String], out: &mut dyn Write) -> anyhow::Result<()> {
    if changes.is_empty() {
        return line(
            out,
            "no change to the agencies since the daemon last ran".into(),
        );
    }
    line(out, "changes since the daemon last ran:".into())?;
    for c in changes {
        line(out, format!("  {c}"))?;
    }
    Ok(())
}

/// Rule 5(2)2: an exemption from encryption is shown wherever it applies.
pub(super) fn unencrypted_units(
    config: &config::Config,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    for a in config.agencies.iter() {
        if let config::AttachmentProtection::Unencrypted(reason) = &a.attachment {
            line(
                out,
                format!(
                    "NOTE: {} ({}) gets its workbooks unencrypted: {reason}",
                    a.id, a.name
                ),
            )?;
        }
    }
    Ok(())
}

/// Each input file: its encoding (and sheet), rows read, rejected and
/// skipped, and its status.
pub(super) fn input_files(ing: &Ingested, out: &mut dyn Write) -> anyhow::Result<()> {
    line(
        out,
        format!(
            "{:<48} {:<14} {:>9} {:>9} {:>9}  status",
            "input", "encoding", "read", "rejected", "skipped"
        ),
    )?;
    for f in &ing.files {
        let read = f.rows_loaded + f.rows_rejected;
        line(
            out,
            format!(
                "{:<48} {:<14} {:>9} {:>9} {:>9}  {}",
                f.path,
                f.sheet
                    .as_ref()
                    .map_or(f.encoding.clone(), |s| format!("{} [{s}]", f.encoding)),
                read,
                f.rows_rejected,
                f.rows_skipped,
                status_text(&f.status)
            ),
        )?;
    }
    Ok(())
}

/// Each duty the schedules suspend: a duty of the regulation that the
/// daemon will not run, and why.
pub(super) fn suspended_duties(config: &config::Config, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = &config.paths.schedules;
    let Ok(schedules) = crate::schedule::load(dir, config.timezone) else {
        return Ok(()); // the daemon names the problem when it starts
    };
    for s in crate::schedule::suspended(dir, &schedules).unwrap_or_default() {
        line(
            out,
            format!(
                "WARNING: duty {} suspended in {}: {} (the daemon does not run it)",
                s.job,
                s.file.display(),
                s.reason
            ),
        )?;
    }
    Ok(())
}
