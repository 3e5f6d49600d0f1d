//! The yearly audits: the internal audit each unit owes (point 6(3)) and
//! the Health Bureau's external audit (point 4). Both gather evidence the
//! tool already has — checks, the archive, the state database — into
//! workbooks the auditors assess.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;

use super::{Extras, RunOutcome, RunSpec, complete, local_text, take_tables};
use crate::archive;
use crate::archive::RunFolder;
use crate::checks::Severity;
use crate::checks::{Checked, Code, Scope};
use crate::clock::Clock;
use crate::config::Config;
use crate::ingest::snapshot::Reference;
use crate::job::Job;
use crate::model::Table;
use crate::period::{Period, RunPeriod};
use crate::report::build::{Notice, SampleAuditDone, UnitEvidence};
use crate::sampling::spec::Seed;
use crate::sampling::units;
use crate::store::Store;

/// Queries of the period per unit.
fn queries_per_unit(
    config: &Config,
    log: &DataFrame,
    period: &Period,
) -> Result<BTreeMap<String, i64>> {
    let counts = log
        .clone()
        .lazy()
        .filter(period.holds_query())
        .group_by([col("agency_id")])
        .agg([len().alias("n")])
        .with_column(col("agency_id").cast(DataType::String))
        .collect()?;
    let mut out = BTreeMap::new();
    let ids = counts.column("agency_id")?.str()?.clone();
    let n = counts.column("n")?.cast(&DataType::Int64)?.i64()?.clone();
    for (a, n) in ids.iter().zip(n.iter()) {
        if let (Some(a), Some(n)) = (a, n)
            && let Some(agency) = config.agencies.get(a)
        {
            *out.entry(agency.unit.clone()).or_default() += n;
        }
    }
    Ok(out)
}

/// Findings of `codes` (all if empty) per unit, and how many of them were
/// critical or high.
fn count_by_unit(findings: &DataFrame, codes: &[Code]) -> Result<BTreeMap<String, (i64, i64)>> {
    let unit = findings.column("unit_id")?.str()?.clone();
    let code = findings.column("code")?.str()?.clone();
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (u, c) in unit.iter().zip(code.iter()) {
        let (Some(u), Some(c)) = (u, c.and_then(Code::parse)) else {
            continue;
        };
        if !codes.is_empty() && !codes.contains(&c) {
            continue;
        }
        let e = out.entry(u.to_owned()).or_default();
        e.0 += 1;
        if c.severity() <= Severity::High {
            e.1 += 1;
        }
    }
    Ok(out)
}

/// What the internal audit found of each unit in the tool's own records;
/// `report` words it.
fn evidence(
    config: &Config,
    period: &Period,
    as_of: NaiveDate,
    queries: &BTreeMap<String, i64>,
    account_findings: &DataFrame,
    query_findings: &DataFrame,
    store: &Store,
) -> Result<BTreeMap<String, UnitEvidence>> {
    let unexplained = count_by_unit(
        query_findings,
        &[
            Code::QueryNoRequestForm,
            Code::QueryFormNotApproved,
            Code::QueryApprovedAfterQuery,
            Code::QueryFormExpired,
        ],
    )?;
    let open_items = count_by_unit(account_findings, &[])?;
    let stale = count_by_unit(account_findings, &[Code::AccountPasswordStale])?;
    let serious = count_by_unit(query_findings, &[])?;
    let year = period.start.date().format("%Y").to_string();
    let (start, end) = (period.start.date(), period.end.date());
    let archive = &config.paths.archive;
    let review = RunFolder::latest(archive, Job::AccountReview, |p| {
        p.as_of().is_some_and(|d| d >= start && d < end)
    })?;
    let halves: Vec<(String, Option<RunFolder>)> = ["H1", "H2"]
        .iter()
        .map(|h| {
            let id = format!("{year}{h}");
            let run = RunFolder::latest(archive, Job::SampleAudit, |p| {
                *p == RunPeriod::Period(id.clone())
            });
            run.map(|r| (id, r))
        })
        .collect::<std::io::Result<_>>()?;
    let manifests: Vec<Option<crate::sampling::manifest::Manifest>> = halves
        .iter()
        .map(|(_, run)| run.as_ref().map(RunFolder::manifest).transpose())
        .collect::<Result<_>>()?;
    let outbox = store.outbox()?;
    let mut out = BTreeMap::new();
    for unit in config.agencies.units() {
        let u = unit.id.as_str();
        let mut sample_audits = Vec::new();
        for ((id, run), manifest) in halves.iter().zip(&manifests) {
            let done = match (run, manifest) {
                (Some(run), Some(m)) => Some(SampleAuditDone {
                    run_id: run.id.clone(),
                    draw_number: m.draw_number,
                    sampled: m.units_sampled().iter().any(|x| x == u),
                    returned: store
                        .worksheet_returns(&run.id)?
                        .into_iter()
                        .rfind(|r| r.unit_id == u)
                        .map(|r| (r.received_at, r.anomalies)),
                }),
                _ => None,
            };
            sample_audits.push((id.clone(), done));
        }
        let notices = outbox
            .iter()
            .filter(|r| r.report.starts_with(&format!("anomalies:{u}:")))
            .map(|r| Notice {
                recipient: r.recipient.clone(),
                sent_at: r.sent_at.clone(),
                state: r.state.to_string(),
            })
            .collect();
        out.insert(
            u.to_owned(),
            UnitEvidence {
                as_of,
                queries: queries.get(u).copied().unwrap_or(0),
                unexplained: unexplained.get(u).map_or(0, |x| x.0),
                review: review
                    .as_ref()
                    .and_then(|r| Some((r.period.as_of()?, r.id.clone()))),
                open_items: open_items.get(u).copied().unwrap_or((0, 0)),
                stale_passwords: stale.get(u).map_or(0, |x| x.0),
                sample_audits,
                serious_queries: serious.get(u).map_or(0, |x| x.1),
                notices,
            },
        );
    }
    Ok(out)
}

/// `run internal-audit --period 2026`: each unit's yearly internal audit
/// (point 6(3)), pre-filled from the checks, the archive and the state.
pub(super) fn internal_audit(
    config: &Config,
    period: &Period,
    clock: &dyn Clock,
) -> Result<RunOutcome> {
    let started = clock.local(config.timezone);
    let mut ingested = super::ingest_inbox(
        config,
        Reference::PeriodEnd(period.last_day()),
        Job::InternalAudit,
    )?;
    let folder = RunFolder::create(
        &config.paths.archive,
        &RunPeriod::Period(period.id.clone()),
        Job::InternalAudit,
        started,
    )?;
    let by_month = crate::report::build::monthly_queries(ingested.table(Table::QueryLog), period)?;
    let queries = queries_per_unit(config, ingested.table(Table::QueryLog), period)?;
    let roster = ingested.table(Table::Roster).clone();
    let tables = take_tables(&mut ingested);
    // As of the period's last day, or today while the period runs.
    let day = period.last_day().min(started.date());
    let accounts = super::run_checks(
        config,
        &ingested,
        tables.clone(),
        Scope::Accounts,
        day,
        None,
    )?;
    let queries_found = super::run_checks(
        config,
        &ingested,
        tables,
        Scope::Queries,
        day,
        Some(period.clone()),
    )?;
    let mut not_checked = accounts.not_checked.clone();
    not_checked.extend(queries_found.not_checked.iter().cloned());
    let orphans = queries_found.orphans;
    let (accounts, queries_found) = (accounts.findings, queries_found.findings);
    let store = Store::open(&config.paths.state)?;
    let evidence = evidence(
        config,
        period,
        day,
        &queries,
        &accounts,
        &queries_found,
        &store,
    )?;
    let findings = concat(
        [accounts.lazy(), queries_found.lazy()],
        UnionArgs::default(),
    )?
    .collect()?;
    complete(
        config,
        RunSpec {
            job: Job::InternalAudit,
            period: Some(period.clone()),
            as_of: day,
            started,
        },
        folder,
        (
            Checked {
                findings,
                not_checked,
                orphans,
            },
            ingested,
        ),
        &roster,
        Extras {
            queries_by_month: Some(&by_month),
            evidence: Some(&evidence),
            orphans: true,
            ..Extras::default()
        },
        clock,
    )
}

pub use crate::sampling::units::UnitDraw as ExternalSelection;

/// `run external-audit --period 2026 [--seed]`: the Health Bureau's draw
/// of units to spot-check (tickets as in docs/sampling.md, kind "unit";
/// the Health Bureau does not draw itself) and the review of every officer
/// account (point 4).
pub(super) fn external_audit(
    config: &Config,
    period: &Period,
    seed: Option<Seed>,
    redraw: bool,
    clock: &dyn Clock,
) -> Result<(RunOutcome, ExternalSelection)> {
    let started = clock.local(config.timezone);
    super::refuse_second_draw(
        &Store::open(&config.paths.state)?,
        &format!("{}/{}", period.id, Job::ExternalAudit),
        Job::ExternalAudit,
        redraw,
    )?;
    let day = period.last_day().min(started.date());
    let mut ingested = super::ingest_inbox(config, Reference::Day(day), Job::ExternalAudit)?;
    let hb = config.agencies.health_bureau().id.clone();
    let (candidates, digest) = units::candidates(
        config
            .agencies
            .units()
            .filter(|u| u.id != hb)
            .map(|u| u.id.clone()),
    );
    let folder = RunFolder::create(
        &config.paths.archive,
        &RunPeriod::Period(period.id.clone()),
        Job::ExternalAudit,
        started,
    )?;
    let unfinished = archive::Unfinished::new(&folder.dir);
    let dir = &folder.dir;
    let (seed, source) = Seed::given_or_drawn(seed)
        .map_err(|e| anyhow::anyhow!("drawing a seed from the OS: {e}"))?;
    let mut store = Store::open(&config.paths.state)?;
    let drawn_at = local_text(clock.local(config.timezone));
    let ledger_period = format!("{}/{}", period.id, Job::ExternalAudit);
    let draw_number = store.record_draw(
        &ledger_period,
        seed.as_str(),
        source,
        &drawn_at,
        &digest,
        &dir.display().to_string(),
    )?;
    super::chain_seed(
        &mut store,
        &ledger_period,
        draw_number,
        seed.as_str(),
        source,
        &digest,
        &drawn_at,
    )?;
    let selection = units::draw(
        &seed,
        source,
        draw_number,
        &period.id,
        (&candidates, &digest),
        config.rules.external_audit_units,
    );
    archive::write_json(&selection, &folder.file("selection.json")?)?;
    let roster = ingested.table(Table::Roster).clone();
    let tables = take_tables(&mut ingested);
    let checked = super::run_checks(config, &ingested, tables, Scope::Accounts, day, None)?;
    let outcome = complete(
        config,
        RunSpec {
            job: Job::ExternalAudit,
            period: Some(period.clone()),
            as_of: day,
            started,
        },
        folder,
        (checked, ingested),
        &roster,
        Extras {
            review_roster: Some(&roster),
            selection: Some(&selection),
            ..Extras::default()
        },
        clock,
    )?;
    unfinished.finished();
    Ok((outcome, selection))
}
