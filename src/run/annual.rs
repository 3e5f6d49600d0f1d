//! The yearly audits: the internal audit each unit owes (point 6(3)) and
//! the Health Bureau's external audit (point 4). Both gather evidence the
//! tool already has — checks, the archive, the state database — into
//! workbooks the auditors assess.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;

use super::LedgerEntry;
use super::{Extras, RunOutcome, RunSpec, complete, local_text, period_folder, take_input_frames};
use crate::archive;
use crate::archive::RunFolder;
use crate::checks::InputFrames;
use crate::checks::Severity;
use crate::checks::{Checked, Code, DutyCount, Scope};
use crate::checks::{NotChecked, NotCheckedWhy};
use crate::clock::Clock;
use crate::config::Config;
use crate::ingest::snapshot::Reference;
use crate::job::Job;
use crate::model::Table;
use crate::period::{Period, RunPeriod};
use crate::report::build::{Kept, Notice, SampleAuditDone, Tally, UnitEvidence};
use crate::sampling::spec::Seed;
use crate::sampling::units;
use crate::store::{MailState, OutboxRow, Store};

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

/// The first and last day of `period` the query log holds.
fn log_days(log: &DataFrame, period: &Period) -> Result<Option<(NaiveDate, NaiveDate)>> {
    let span = log
        .clone()
        .lazy()
        .filter(period.holds_query())
        .select([
            col("queried_at").min().dt().date().alias("from"),
            col("queried_at").max().dt().date().alias("to"),
        ])
        .collect()?;
    let day = |name: &str| -> Result<Option<NaiveDate>> {
        Ok(span.column(name)?.date()?.as_date_iter().next().flatten())
    };
    Ok(day("from")?.zip(day("to")?))
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

/// Why the checks of `codes` (every check of `scope` if empty) did not
/// run, in Traditional Chinese: what they look for, why they did not run
/// and the detail, one sentence per reason (checks withheld for the same
/// reason share it).
fn withheld(not_checked: &[NotChecked], scope: Scope, codes: &[Code]) -> Vec<String> {
    let mut by_reason: Vec<(String, Vec<&'static str>)> = Vec::new();
    for n in not_checked {
        let of: Vec<Code> = n.codes.iter().filter_map(|c| Code::parse(c)).collect();
        let concerned = if codes.is_empty() {
            of.iter().any(|c| c.scope() == scope)
        } else {
            of.iter().any(|c| codes.contains(c))
        };
        if !concerned {
            continue;
        }
        let reason = format!("{}（{}）", n.why.label(), n.detail_zh);
        let at = match by_reason.iter().position(|(r, _)| *r == reason) {
            Some(i) => i,
            None => {
                by_reason.push((reason, Vec::new()));
                by_reason.len() - 1
            }
        };
        for c in of {
            if !by_reason[at].1.contains(&c.description()) {
                by_reason[at].1.push(c.description());
            }
        }
    }
    by_reason
        .into_iter()
        .map(|(reason, what)| format!("{}：{reason}", what.join("、")))
        .collect()
}

/// Two counts per unit, summed.
fn add(a: BTreeMap<String, (i64, i64)>, b: BTreeMap<String, (i64, i64)>) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for (u, (n, _)) in a.into_iter().chain(b) {
        *out.entry(u).or_default() += n;
    }
    out
}

/// What the registers show of a unit (points 5(1)1, 5(4)).
#[derive(Debug, Default)]
struct UnitRegisters {
    /// Active roster accounts and, of them, officers.
    register: (i64, i64),
    /// The earliest request form of the unit's accounts.
    forms_since: Option<NaiveDate>,
    /// The earliest application the register holds of the unit.
    applications_since: Option<NaiveDate>,
}

/// Per unit, the registers' figures: one group-by per register, by agency,
/// summed into the agency's unit.
fn registers(config: &Config, t: &InputFrames) -> Result<BTreeMap<String, UnitRegisters>> {
    let mut out: BTreeMap<String, UnitRegisters> = BTreeMap::new();
    let unit_of = |a: Option<&str>| {
        a.and_then(|a| config.agencies.get(a))
            .map(|a| a.unit.clone())
    };
    let has =
        |df: &DataFrame, c: &[&str]| df.height() > 0 && c.iter().all(|c| df.column(c).is_ok());
    if !has(&t.roster, &["account_id", "agency_id", "role", "status"]) {
        return Ok(out);
    }
    let mut current = t.roster.clone().lazy();
    if t.roster.column("removed").is_ok() {
        current = current.filter(col("removed").not());
    }
    let accounts = current
        .unique_stable(Some(cols(["account_id"])), UniqueKeepStrategy::First)
        .select([
            col("account_id").cast(DataType::String),
            col("agency_id").cast(DataType::String),
            col("role").cast(DataType::String),
            col("status").cast(DataType::String),
        ]);
    let active = accounts
        .clone()
        .filter(col("status").eq(lit("active")))
        .group_by([col("agency_id")])
        .agg([
            len().cast(DataType::Int64).alias("n"),
            col("role")
                .eq(lit("officer"))
                .cast(DataType::Int64)
                .sum()
                .alias("officers"),
        ])
        .collect()?;
    let ids = active.column("agency_id")?.str()?.clone();
    let n = active.column("n")?.i64()?.clone();
    let officers = active.column("officers")?.i64()?.clone();
    for ((a, n), o) in ids.iter().zip(n.iter()).zip(officers.iter()) {
        if let Some(u) = unit_of(a) {
            let r = &mut out.entry(u).or_default().register;
            r.0 += n.unwrap_or(0);
            r.1 += o.unwrap_or(0);
        }
    }
    // The earliest date of a register per agency, as the unit's.
    let earliest = |df: LazyFrame, day: &str| -> Result<Vec<(String, NaiveDate)>> {
        let firsts = df
            .group_by([col("agency_id").cast(DataType::String)])
            .agg([col(day).cast(DataType::Date).min().alias("first")])
            .collect()?;
        let ids = firsts.column("agency_id")?.str()?.clone();
        let days = firsts.column("first")?.date()?.clone();
        Ok(ids
            .iter()
            .zip(days.as_date_iter())
            .filter_map(|(a, d)| Some((unit_of(a)?, d?)))
            .collect())
    };
    let mut keep = |found: Vec<(String, NaiveDate)>, forms: bool| {
        for (u, d) in found {
            let e = out.entry(u).or_default();
            let slot = if forms {
                &mut e.forms_since
            } else {
                &mut e.applications_since
            };
            *slot = Some(slot.map_or(d, |s| s.min(d)));
        }
    };
    if has(&t.request_forms, &["account_id", "requested_at"]) {
        let forms = t
            .request_forms
            .clone()
            .lazy()
            .select([
                col("account_id").cast(DataType::String),
                col("requested_at"),
            ])
            .join(
                accounts.select([col("account_id"), col("agency_id")]),
                [col("account_id")],
                [col("account_id")],
                JoinArgs::new(JoinType::Inner),
            );
        keep(earliest(forms, "requested_at")?, true);
    }
    if has(&t.applications, &["agency_id", "applied_on"]) {
        keep(
            earliest(t.applications.clone().lazy(), "applied_on")?,
            false,
        );
    }
    Ok(out)
}

/// What the run knows of the period's query log, for the evidence.
struct LogFacts {
    /// Queries per unit.
    queries: BTreeMap<String, i64>,
    /// Why the count is short: query-log files that failed to load.
    failed: Vec<String>,
    /// The first and last day of the period the log holds.
    days: Option<(NaiveDate, NaiveDate)>,
}

/// The internal audit's counts of each unit from the run's own findings,
/// with the checks behind each that did not run.
struct Counts {
    unexplained: BTreeMap<String, (i64, i64)>,
    open_items: BTreeMap<String, (i64, i64)>,
    stale: BTreeMap<String, (i64, i64)>,
    officer_count: BTreeMap<String, (i64, i64)>,
    ineligible: BTreeMap<String, i64>,
    purposes: BTreeMap<String, (i64, i64)>,
    applications: BTreeMap<String, (i64, i64)>,
    serious: BTreeMap<String, (i64, i64)>,
    w_unexplained: Vec<String>,
    w_accounts: Vec<String>,
    w_stale: Vec<String>,
    w_officers: Vec<String>,
    w_ineligible: Vec<String>,
    w_purposes: Vec<String>,
    w_applications: Vec<String>,
    w_queries: Vec<String>,
    /// Why the query total is short.
    w_log: Vec<String>,
    /// The roster, or the query log, is missing or failed to load: no
    /// check that reads it ran, so a count over it is not a count.
    no_roster: bool,
    no_log: bool,
}

impl Counts {
    fn of(
        log: &LogFacts,
        (account_findings, query_findings): (&DataFrame, &DataFrame),
        not_checked: &[NotChecked],
    ) -> Result<Counts> {
        let unusable = |dir: &str| {
            not_checked.iter().any(|n| {
                matches!(
                    n.why,
                    NotCheckedWhy::InputMissing | NotCheckedWhy::InputFailed
                ) && n.input.starts_with(dir)
            })
        };
        let (no_roster, no_log) = (unusable("roster/"), unusable("query_logs/"));
        let mut w_log: Vec<String> = log
            .failed
            .iter()
            .map(|f| format!("查詢紀錄檔 {f} 讀取失敗，查詢總數不完整"))
            .collect();
        if no_log && log.failed.is_empty() {
            w_log.push("收件匣無查詢紀錄檔，查詢總數無從計算".to_owned());
        }
        let accounts = |codes: &[Code]| withheld(not_checked, Scope::Accounts, codes);
        let queries = |codes: &[Code]| withheld(not_checked, Scope::Queries, codes);
        let of = Code::counting_toward;
        let (unexplained, ineligible) = (of(DutyCount::Unexplained), of(DutyCount::Ineligible));
        let (purposes, applications) = (of(DutyCount::Purpose), of(DutyCount::Application));
        let (stale, officers) = (of(DutyCount::PasswordStale), of(DutyCount::OfficerCount));
        Ok(Counts {
            unexplained: count_by_unit(query_findings, &unexplained)?,
            open_items: count_by_unit(account_findings, &[])?,
            stale: count_by_unit(account_findings, &stale)?,
            officer_count: count_by_unit(account_findings, &officers)?,
            ineligible: add(
                count_by_unit(account_findings, &ineligible)?,
                count_by_unit(query_findings, &ineligible)?,
            ),
            purposes: count_by_unit(query_findings, &purposes)?,
            applications: count_by_unit(account_findings, &applications)?,
            serious: count_by_unit(query_findings, &[])?,
            w_unexplained: queries(&unexplained),
            w_accounts: accounts(&[]),
            w_stale: accounts(&stale),
            w_officers: accounts(&officers),
            w_ineligible: accounts(&ineligible),
            w_purposes: queries(&purposes),
            w_applications: accounts(&applications),
            w_queries: queries(&[]),
            w_log,
            no_roster,
            no_log,
        })
    }
}

/// A count and the checks behind it that did not run.
fn tally(n: i64, withheld: &[String]) -> Tally {
    Tally {
        n,
        withheld: withheld.to_vec(),
        none_ran: false,
    }
}

/// The year's sample audits, a half each (`<year>H1`, `<year>H2`): its
/// latest run and the run's manifest, if it ran.
type HalfYearAudit = (
    String,
    Option<RunFolder>,
    Option<crate::sampling::manifest::Manifest>,
);

fn sample_audits_of_year(archive: &std::path::Path, year: &str) -> Result<Vec<HalfYearAudit>> {
    ["H1", "H2"]
        .iter()
        .map(|h| {
            let id = format!("{year}{h}");
            let run = RunFolder::latest(archive, Job::SampleAudit, |p| {
                *p == RunPeriod::Period(id.clone())
            })?;
            let manifest = run.as_ref().map(RunFolder::manifest).transpose()?;
            Ok((id, run, manifest))
        })
        .collect()
}

/// What each of the year's sample audits did of unit `u`.
fn unit_sample_audits(
    u: &str,
    halves: &[HalfYearAudit],
    store: &Store,
) -> Result<Vec<(String, Option<SampleAuditDone>)>> {
    halves
        .iter()
        .map(|(id, run, manifest)| {
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
            Ok((id.clone(), done))
        })
        .collect()
}

/// What reached the ethics unit of `unit`: urgent notices of critical
/// findings and anomalies a returned worksheet confirmed.
fn ethics_notices(unit: &crate::config::Agency, outbox: &[OutboxRow]) -> Vec<Notice> {
    let u = unit.id.as_str();
    outbox
        .iter()
        .filter_map(|r| {
            let kind = if r.report.starts_with(&format!("anomalies:{u}:")) {
                "工作底稿確認異常通知"
            } else if r.report == format!("critical:{u}")
                && unit.ethics_email.as_deref() == Some(r.recipient.as_str())
            {
                "重大異常即時通知"
            } else {
                return None;
            };
            Some(Notice {
                kind,
                recipient: r.recipient.clone(),
                sent_at: r.sent_at.clone(),
                state: match r.state {
                    MailState::Pending => "待寄送",
                    MailState::Sending => "寄送中",
                    MailState::Sent => "已寄送",
                    MailState::Failed => "寄送失敗",
                    MailState::Unknown => "寄送結果待確認",
                },
            })
        })
        .collect()
}

/// The unit's investigations opened in `year`: how many, how many closed.
fn investigations(u: &str, due: &[crate::store::DueItem], year: &str) -> (usize, usize) {
    let of_unit: Vec<_> = due
        .iter()
        .filter(|d| {
            crate::worksheet::investigation_kind(&d.job).is_some()
                && crate::report::unit_of_key(&d.unit_id).0 == u
                && d.opened_at.get(..4) == Some(year)
        })
        .collect();
    (
        of_unit.len(),
        of_unit.iter().filter(|d| d.closed_at.is_some()).count(),
    )
}

/// What the internal audit found of each unit in the tool's own records;
/// `report` words it. Counts are the run's own findings, and each carries
/// the checks behind it that did not run.
#[allow(clippy::too_many_arguments)]
fn evidence(
    config: &Config,
    period: &Period,
    as_of: NaiveDate,
    log: &LogFacts,
    account_findings: &DataFrame,
    query_findings: &DataFrame,
    not_checked: &[NotChecked],
    registers: &BTreeMap<String, UnitRegisters>,
    store: &Store,
) -> Result<BTreeMap<String, UnitEvidence>> {
    let c = Counts::of(log, (account_findings, query_findings), not_checked)?;
    let year = period.start.date().format("%Y").to_string();
    let (start, end) = (period.start.date(), period.end.date());
    let archive = &config.paths.archive;
    let review = RunFolder::latest(archive, Job::AccountReview, |p| {
        p.as_of().is_some_and(|d| d >= start && d < end)
    })?;
    let halves = sample_audits_of_year(archive, &year)?;
    let outbox = store.outbox()?;
    let due = store.due_items()?;
    let due_rows = crate::followup::due_rows_with(store, as_of, &[])?;
    let first = |m: &BTreeMap<String, (i64, i64)>, u: &str| m.get(u).map_or(0, |x| x.0);
    let with_none_ran = |mut t: Tally, none_ran: bool| {
        t.none_ran = none_ran;
        t
    };
    let mut out = BTreeMap::new();
    for unit in config.agencies.units() {
        let u = unit.id.as_str();
        let (all_open, serious_open) = c.open_items.get(u).copied().unwrap_or((0, 0));
        let serious_queries = tally(c.serious.get(u).map_or(0, |x| x.1), &c.w_queries);
        let evidence = UnitEvidence {
            as_of,
            queries: tally(log.queries.get(u).copied().unwrap_or(0), &c.w_log),
            log_days: log.days,
            unexplained: tally(first(&c.unexplained, u), &c.w_unexplained),
            review: review
                .as_ref()
                .and_then(|r| Some((r.period.as_of()?, r.id.clone()))),
            open_items: (
                with_none_ran(tally(all_open, &c.w_accounts), c.no_roster),
                serious_open,
            ),
            stale_passwords: tally(first(&c.stale, u), &c.w_stale),
            sample_audits: unit_sample_audits(u, &halves, store)?,
            serious_queries: with_none_ran(serious_queries, c.no_log),
            notices: ethics_notices(unit, &outbox),
            register: (!c.no_roster).then(|| registers.get(u).map_or((0, 0), |r| r.register)),
            officer_count: tally(first(&c.officer_count, u), &c.w_officers),
            ineligible: tally(c.ineligible.get(u).copied().unwrap_or(0), &c.w_ineligible),
            purposes: with_none_ran(tally(first(&c.purposes, u), &c.w_purposes), c.no_log),
            applications: tally(first(&c.applications, u), &c.w_applications),
            kept: Kept {
                forms_since: registers.get(u).and_then(|r| r.forms_since),
                applications_since: registers.get(u).and_then(|r| r.applications_since),
                retention_years: config.rules.retention_years,
            },
            due: due_rows
                .iter()
                .filter(|d| {
                    crate::report::unit_of_key(&d.unit_id).0 == u
                        && !crate::report::is_chief_key(&d.unit_id)
                        && d.opened_on.get(..4) == Some(year.as_str())
                })
                .cloned()
                .collect(),
            investigations: investigations(u, &due, &year),
        };
        out.insert(u.to_owned(), evidence);
    }
    Ok(out)
}

/// What the yearly audits gather of every unit: the checks of the year
/// (accounts as of `day`, the period's queries) and each unit's evidence
/// from them, the registers, the archive and the state.
struct Gathered {
    accounts: Checked,
    queries: Checked,
    evidence: BTreeMap<String, UnitEvidence>,
    roster: DataFrame,
}

impl Gathered {
    /// Everything the checks found and could not check.
    fn not_checked(&self) -> Vec<NotChecked> {
        let mut all = self.accounts.not_checked.clone();
        all.extend(self.queries.not_checked.iter().cloned());
        all
    }
}

/// Gathers [`Gathered`] from `ingested` (its tables are taken).
fn gather(
    config: &Config,
    period: &Period,
    day: NaiveDate,
    ingested: &mut super::Ingested,
) -> Result<Gathered> {
    let log = LogFacts {
        queries: queries_per_unit(config, ingested.table(Table::QueryLog), period)?,
        failed: ingested
            .failed_files()
            .filter(|f| f.table == Some(Table::QueryLog))
            .map(|f| f.path.clone())
            .collect(),
        days: log_days(ingested.table(Table::QueryLog), period)?,
    };
    let roster = ingested.table(Table::Roster).clone();
    let tables = take_input_frames(ingested);
    let registers = registers(config, &tables)?;
    let accounts = super::run_checks(config, ingested, tables.clone(), Scope::Accounts, day, None)?;
    let queries = super::run_checks(
        config,
        ingested,
        tables,
        Scope::Queries,
        day,
        Some(period.clone()),
    )?;
    let mut not_checked = accounts.not_checked.clone();
    not_checked.extend(queries.not_checked.iter().cloned());
    let store = Store::open(&config.paths.state)?;
    let evidence = evidence(
        config,
        period,
        day,
        &log,
        &accounts.findings,
        &queries.findings,
        &not_checked,
        &registers,
        &store,
    )?;
    Ok(Gathered {
        accounts,
        queries,
        evidence,
        roster,
    })
}

/// `run internal-audit --period 2026`: each unit's yearly internal audit
/// (point 6(3)), pre-filled from the checks, the archive and the state.
pub(super) fn internal_audit(
    config: &Config,
    period: &Period,
    ledger: LedgerEntry,
    clock: &dyn Clock,
) -> Result<RunOutcome> {
    let started = clock.local(config.timezone);
    let mut ingested = super::ingest_inbox(
        config,
        Reference::PeriodEnd(period.last_day()),
        Job::InternalAudit,
    )?;
    let folder = period_folder(config, Job::InternalAudit, period, started)?;
    // Held from the folder's making: a failure or a kill before its seal
    // leaves nothing a later run or a reader takes for a run.
    let _writing = archive::Unfinished::new(&folder.dir);
    let by_month = crate::report::build::monthly_queries(ingested.table(Table::QueryLog), period)?;
    // As of the period's last day, or today while the period runs.
    let day = period.last_day().min(started.date());
    let g = gather(config, period, day, &mut ingested)?;
    let not_checked = g.not_checked();
    let findings = concat(
        [g.accounts.findings.lazy(), g.queries.findings.lazy()],
        UnionArgs::default(),
    )?
    .collect()?;
    let asked = asked_before(config, period)?;
    complete(
        config,
        RunSpec {
            job: Job::InternalAudit,
            period: Some(period.clone()),
            as_of: day,
            started,
            ledger,
        },
        folder,
        (
            Checked {
                findings,
                not_checked,
                orphans: g.queries.orphans,
            },
            ingested,
        ),
        &g.roster,
        Extras {
            queries_by_month: Some(&by_month),
            evidence: Some(&g.evidence),
            orphans: true,
            asked: Some(&asked),
            ..Extras::default()
        },
        clock,
    )
}

/// The query findings the sealed sample audits and query checks of
/// `period` (its halves and quarters too) already asked units about, by
/// [`crate::report::build::finding_key`], with the first workbook that
/// asked (`2026H1 抽查工作底稿（執行編號 …）`): the internal audit lists
/// them as asked rather than asking again.
fn asked_before(config: &Config, period: &Period) -> Result<crate::report::build::Asked> {
    let mut asked = BTreeMap::new();
    let runs = RunFolder::all(&config.paths.archive)?;
    for run in runs.iter().filter(|r| {
        matches!(r.job, Job::SampleAudit | Job::QueryCheck)
            && r.is_sealed()
            && matches!(&r.period, RunPeriod::Period(p) if p.starts_with(&period.id))
    }) {
        let path = run.dir.join("findings.csv");
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(path.clone()))?
            .finish()
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        // By position: the first header carries the file's BOM.
        let text = |i: usize| -> Result<Vec<Option<String>>> {
            Ok(df.columns()[i]
                .str()?
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect())
        };
        let (code, unit, account, subject, at) = (text(0)?, text(2)?, text(4)?, text(6)?, text(7)?);
        // What the unit's workbook listed, as it counted them: a finding
        // past the sheet's last row was never asked.
        let mut nth: BTreeMap<(Option<&str>, Code), usize> = BTreeMap::new();
        let label = format!(
            "{} {}（執行編號 {}）",
            run.period,
            crate::report::ReportKind::of(run.job).map_or("", |k| k.title()),
            run.id
        );
        for i in 0..df.height() {
            let Some(c) = code[i].as_deref().and_then(Code::parse) else {
                continue;
            };
            if c.scope() != Scope::Queries {
                continue;
            }
            let n = nth.entry((unit[i].as_deref(), c)).or_default();
            *n += 1;
            if !crate::report::build::listed_on_sheet(c, *n - 1) {
                continue;
            }
            let key = [
                c.as_str(),
                account[i].as_deref().unwrap_or(""),
                subject[i].as_deref().unwrap_or(""),
                at[i].as_deref().unwrap_or(""),
            ]
            .join("|");
            asked.entry(key).or_insert_with(|| label.clone());
        }
    }
    // What the units answered on those sheets, the latest first.
    let mut replies = BTreeMap::new();
    let store = Store::open(&config.paths.state)?;
    for (unit, key, answers, received) in
        store.returned_decisions(crate::worksheet::FOLLOW_UP_JOB)?
    {
        let Some((what, account)) = key.split_once('|') else {
            continue;
        };
        let a: BTreeMap<String, String> = serde_json::from_str(&answers).unwrap_or_default();
        let on = received.get(..10).unwrap_or(&received);
        let reply = match (
            a.get("處理情形").filter(|v| !v.is_empty()),
            a.get("完成日").filter(|v| !v.is_empty()),
        ) {
            (Some(d), Some(done)) => format!("{d}（完成日 {done}；{on} 回傳）"),
            (Some(d), None) => format!("{d}（{on} 回傳）"),
            (None, _) => continue,
        };
        replies
            .entry((unit, what.to_owned(), account.to_owned()))
            .or_insert(reply);
    }
    Ok(crate::report::build::Asked {
        first: asked,
        replies,
    })
}

pub use crate::sampling::units::UnitDraw as ExternalSelection;

/// Critical findings per unit, over every frame of findings given: one
/// group-by over their `severity` column.
fn critical_by_unit(findings: &[&DataFrame]) -> Result<BTreeMap<String, u32>> {
    let frames: Vec<LazyFrame> = findings
        .iter()
        .map(|f| {
            (*f).clone()
                .lazy()
                .select([col("unit_id"), col("severity")])
        })
        .collect();
    let counts = concat(frames, UnionArgs::default())?
        .filter(col("severity").eq(lit(Severity::Critical.name())))
        .group_by([col("unit_id")])
        .agg([len().cast(DataType::UInt32).alias("n")])
        .collect()?;
    let units = counts.column("unit_id")?.str()?.clone();
    let n = counts.column("n")?.u32()?.clone();
    Ok(units
        .iter()
        .zip(n.iter())
        .filter_map(|(u, n)| Some((u?.to_owned(), n?)))
        .collect())
}

/// What the external audit's draw of `period` selects from, as of `day`
/// (the period's last day, or today before it): the inputs read, the
/// checks gathered, and the candidate units with their digest (§ 14).
struct Candidates {
    ingested: super::Ingested,
    gathered: Gathered,
    units: Vec<units::Candidate>,
    digest: String,
}

fn candidates_as_of(config: &Config, period: &Period, day: NaiveDate) -> Result<Candidates> {
    let mut ingested = super::ingest_inbox(config, Reference::Day(day), Job::ExternalAudit)?;
    // The year's queries too: a unit's critical findings put it first in
    // the draw, and its record shows them (their queries are the sample
    // audit's and the query check's to ask about; this run only counts).
    let gathered = gather(config, period, day, &mut ingested)?;
    let critical = critical_by_unit(&[&gathered.accounts.findings, &gathered.queries.findings])?;
    let hb = config.agencies.health_bureau().id.clone();
    let (units, digest) = units::candidates(
        config
            .agencies
            .units()
            .filter(|u| u.id != hb)
            .map(|u| (u.id.clone(), critical.get(&u.id).copied().unwrap_or(0))),
        config.rules.external_audit_critical_first,
    );
    Ok(Candidates {
        ingested,
        gathered,
        units,
        digest,
    })
}

/// The day an external audit of `period` started at `started` is as of.
fn external_day(period: &Period, started: chrono::NaiveDateTime) -> NaiveDate {
    period.last_day().min(started.date())
}

/// The external audit's candidates now, their digest and the inputs they
/// came from: what its ceremony commits to before the seed exists.
pub(super) fn external_candidates(
    config: &Config,
    period: &Period,
    clock: &dyn Clock,
) -> Result<(
    Vec<units::Candidate>,
    String,
    Vec<crate::sampling::manifest::InputHash>,
)> {
    let day = external_day(period, clock.local(config.timezone));
    let c = candidates_as_of(config, period, day)?;
    let inputs = c
        .ingested
        .files
        .iter()
        .map(crate::sampling::manifest::InputHash::from)
        .collect();
    Ok((c.units, c.digest, inputs))
}

/// `run external-audit --period 2026 [--seed]`: the Health Bureau's draw
/// of units to spot-check (tickets as in docs/sampling.md, kind "unit";
/// the Health Bureau does not draw itself) and the review of every officer
/// account (point 4). With the daemon's ceremony, the seed is the one
/// given after the candidates were committed, and only while they are
/// still the ones committed.
pub(super) fn external_audit(
    config: &Config,
    period: &Period,
    (seed, ceremony): (Option<Seed>, Option<crate::store::Ceremony>),
    (redraw, ledger): (bool, LedgerEntry),
    clock: &dyn Clock,
) -> Result<(RunOutcome, ExternalSelection)> {
    let started = clock.local(config.timezone);
    let ledger_period = super::draw_key(Job::ExternalAudit, &period.id);
    let mut store = Store::open(&config.paths.state)?;
    // Held until the run is sealed: one draw of the year at a time, and
    // one whose run died before its seal is resumed, never redrawn.
    let claim = super::DrawClaim::take(
        &config.paths.state,
        &store,
        &ledger_period,
        Job::ExternalAudit,
        seed.as_ref(),
        redraw,
    )?;
    let day = external_day(period, started);
    let Candidates {
        ingested,
        gathered: g,
        units: candidates,
        digest,
    } = candidates_as_of(config, period, day)?;
    let seed = match &ceremony {
        _ if claim.crashed.is_some() => claim.seed(seed)?,
        None => seed,
        Some(c) => Some(super::ceremony::seed_of(c, "candidate units", &digest)?),
    };
    let folder = period_folder(config, Job::ExternalAudit, period, started)?;
    let unfinished = archive::Unfinished::new(&folder.dir);
    let dir = &folder.dir;
    let (seed, mut source) = Seed::given_or_drawn(seed)
        .map_err(|e| anyhow::anyhow!("drawing a seed from the OS: {e}"))?;
    if ceremony.as_ref().is_some_and(super::ceremony::fell_back) {
        source = "os";
    }
    let drawn_at = local_text(clock.local(config.timezone));
    let draw_number = claim.record(
        &mut store,
        (&seed, &mut source),
        &drawn_at,
        &digest,
        dir,
        redraw,
    )?;
    let mut selection = units::draw(
        &seed,
        source,
        draw_number,
        &period.id,
        (&candidates, &digest),
        config.rules.external_audit_units,
    );
    selection.seed_postdates_candidates =
        super::seed_timing(ceremony.as_ref(), None, source, "candidate list");
    selection.ceremony = ceremony
        .as_ref()
        .map(|c| super::ceremony::record(&store, c))
        .transpose()?;
    archive::write_json(&selection, &folder.file("selection.json")?)?;
    let outcome = complete(
        config,
        RunSpec {
            job: Job::ExternalAudit,
            period: Some(period.clone()),
            as_of: day,
            started,
            ledger,
        },
        folder,
        (g.accounts, ingested),
        &g.roster,
        Extras {
            review_roster: Some(&g.roster),
            selection: Some(&selection),
            evidence: Some(&g.evidence),
            orphans: true,
            ..Extras::default()
        },
        clock,
    )?;
    unfinished.finished();
    Ok((outcome, selection))
}
