//! The skeleton every run shares: ingest once, check, record the run
//! folder (`findings.csv`, `rejects.csv`, `inputs.json`, `run.json`), and
//! the facts its workbooks are built from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{NaiveDate, NaiveDateTime};
use polars::prelude::*;

use super::LedgerEntry;
use super::{finish_run, scope};
use crate::archive::{self, InputRecord, RunFolder, RunRecord};
use crate::checks::Severity;
use crate::checks::{self, Checked, Code, InputFrames, InputState, NotChecked, Scope};
use crate::clock::Clock;
use crate::config::Config;
use crate::ingest::snapshot::Reference;
use crate::ingest::{self, Ingested};
use crate::job::Job;
use crate::model::Table;
use crate::period::{Period, RunPeriod};
use crate::report::{
    self, ReportKind,
    build::{RunFacts, UnitStatus, WorksheetState},
};
use crate::sampling::manifest::Manifest;
use crate::sampling::{self};
use crate::store::Store;

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run folder (`dir` is its path).
    pub folder: RunFolder,
    pub dir: PathBuf,
    /// The job and period as `run.json` names them (`sample-audit`,
    /// `2026H1`; `account-review`, `as-of-2026-07-02`).
    pub job: Job,
    pub period: String,
    /// How the run enters the daemon's ledger.
    pub ledger: LedgerEntry,
    pub findings: DataFrame,
    /// The ingest manifest and rejects; its tables were moved into the
    /// checks (see `take_input_frames`) and are empty here.
    pub ingested: Ingested,
    /// The most severe finding, if any.
    pub worst: Option<Severity>,
    /// Checks that did not run, and why.
    pub not_checked: Vec<NotChecked>,
    /// Accounts the checked queries show but the roster lacks.
    pub orphans: DataFrame,
}

impl RunOutcome {
    /// Whether a check was withheld because its input failed or did not
    /// cover what it judges (a missing optional column is reported, but
    /// is the export's shape, not a failure of this run).
    pub fn withheld(&self) -> bool {
        self.withheld_checks().next().is_some()
    }

    /// The checks withheld, as [`RunOutcome::withheld`] means it.
    pub fn withheld_checks(&self) -> impl Iterator<Item = &NotChecked> {
        self.not_checked.iter().filter(|n| n.why.withholds())
    }
}

pub fn input_frames(ing: &Ingested) -> InputFrames {
    InputFrames {
        query_log: ing.table(Table::QueryLog).clone(),
        roster: ing.table(Table::Roster).clone(),
        hr: ing.table(Table::Hr).clone(),
        request_forms: ing.table(Table::RequestForms).clone(),
        applications: ing.table(Table::Applications).clone(),
    }
}

/// Moves the tables out of `ing`, so the checks hold the only copy and
/// can free the raw query log once it is explained.
pub(super) fn take_input_frames(ing: &mut Ingested) -> InputFrames {
    let mut take = |t: Table| {
        ing.tables
            .get_mut(&t)
            .map(std::mem::take)
            .unwrap_or_default()
    };
    InputFrames {
        query_log: take(Table::QueryLog),
        roster: take(Table::Roster),
        hr: take(Table::Hr),
        request_forms: take(Table::RequestForms),
        applications: take(Table::Applications),
    }
}

/// An account review as of `as_of`, or the query check of `period`.
pub(super) fn review_or_check(
    config: &Config,
    (job, ledger): (Job, LedgerEntry),
    period: Option<Period>,
    as_of: Option<NaiveDate>,
    clock: &dyn Clock,
) -> Result<RunOutcome> {
    let started = clock.local(config.timezone);
    let as_of = as_of.unwrap_or(started.date());
    let mut ingested = ingest_inbox(config, Reference::of(period.as_ref(), as_of), job)?;
    let covers = match &period {
        Some(p) => RunPeriod::Period(p.id.clone()),
        None => RunPeriod::AsOf(as_of),
    };
    let folder = RunFolder::create(&config.paths.archive, &covers, job, started)?;
    // Held from the folder's making: a failure or a kill before its seal
    // leaves nothing a later run or a reader takes for a run.
    let _writing = archive::Unfinished::new(&folder.dir);
    let roster = ingested.table(Table::Roster).clone();
    let by_month = match &period {
        Some(p) => Some(report::build::monthly_queries(
            ingested.table(Table::QueryLog),
            p,
        )?),
        None => None,
    };
    // The account review tells of disabled accounts used after their
    // disabling (not "nothing to do"); the password check is about
    // passwords only.
    let after_disabling = if job == Job::AccountReview {
        report::build::used_after_disabling(ingested.table(Table::QueryLog), &roster, as_of)?
    } else {
        None
    };
    let tables = take_input_frames(&mut ingested);
    let checked = run_checks(config, &ingested, tables, scope(job), as_of, period.clone())?;
    // The password check is about passwords only (point 5(3)): the
    // yearly review is about the rest.
    let (checked, orphans) = if job == Job::PasswordCheck {
        (checked.only(&[Code::AccountPasswordStale])?, false)
    } else {
        (checked, true)
    };
    complete(
        config,
        RunSpec {
            job,
            period,
            as_of,
            started,
            ledger,
        },
        folder,
        (checked, ingested),
        &roster,
        Extras {
            review_roster: job.reviews_accounts().then_some(&roster),
            queries_by_month: by_month.as_ref(),
            orphans,
            after_disabling: after_disabling.as_ref(),
            ..Extras::default()
        },
        clock,
    )
}

/// What every run's workbooks start from; callers add what their job has.
pub(super) fn facts<'a>(
    config: &'a Config,
    kind: ReportKind,
    period_id: String,
    outcome: &'a RunOutcome,
    clock: &dyn Clock,
) -> RunFacts<'a> {
    RunFacts {
        config,
        kind,
        period_id,
        run_id: outcome.folder.id.clone(),
        generated_at: clock.local(config.timezone),
        findings: &outcome.findings,
        files: &outcome.ingested.files,
        rejects: &outcome.ingested.rejects,
        roster: None,
        sample: None,
        queries_by_month: None,
        evidence: None,
        selection: None,
        unit_status: None,
        due: None,
        chain_head: None,
        orphans: None,
        after_disabling: None,
        notes: Vec::new(),
        not_checked: &outcome.not_checked,
        roster_use: outcome.ingested.roster_use.as_ref(),
        asked: None,
    }
}

/// For the city-wide workbook: each unit's latest sample audit, latest
/// account review and whether its last worksheet came back, from the
/// archive (sealed runs) and the state database.
/// `current`: the run being finished, counted as the latest of its job
/// (it is not sealed yet). Accounts are the roster's and those the log
/// shows but the roster lacks (`orphans`): the same accounts the sample's
/// 使用中帳號 counts.
pub(super) fn unit_status(
    config: &Config,
    roster: Option<&DataFrame>,
    orphans: Option<&DataFrame>,
    current: &RunFolder,
) -> Result<BTreeMap<String, UnitStatus>> {
    let mut accounts: BTreeMap<String, i64> = BTreeMap::new();
    let mut seen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    if let Some(r) = roster {
        let mut current = r.clone().lazy();
        if r.column("removed").is_ok() {
            // Accounts only an older snapshot lists are not on the roster.
            current = current.filter(col("removed").not());
        }
        let unique = current
            .unique_stable(Some(cols(["account_id"])), UniqueKeepStrategy::First)
            .collect()?;
        let ids = unique.column("account_id")?.str()?.clone();
        for (id, a) in ids.iter().zip(unique.column("agency_id")?.str()?.iter()) {
            if let (Some(id), Some(agency)) = (id, a.and_then(|a| config.agencies.get(a))) {
                seen.insert(id.to_owned());
                *accounts.entry(agency.unit.clone()).or_default() += 1;
            }
        }
    }
    if let Some(o) = orphans {
        let ids = o.column("account_id")?.str()?.clone();
        for (id, a) in ids.iter().zip(o.column("agency_id")?.str()?.iter()) {
            if let (Some(id), Some(agency)) = (id, a.and_then(|a| config.agencies.get(a)))
                && seen.insert(id.to_owned())
            {
                *accounts.entry(agency.unit.clone()).or_default() += 1;
            }
        }
    }
    let store = Store::open(&config.paths.state)?;
    let archive = &config.paths.archive;
    let sample = match current.job {
        Job::SampleAudit => Some(current.clone()),
        _ => RunFolder::latest(archive, Job::SampleAudit, |_| true)?,
    };
    let review = RunFolder::latest(archive, Job::AccountReview, |p| p.as_of().is_some())?;
    let returned: Vec<String> = match &sample {
        Some(run) => store
            .worksheet_returns(&run.id)?
            .into_iter()
            .map(|r| r.unit_id)
            .collect(),
        None => Vec::new(),
    };
    let sampled: Vec<String> = match &sample {
        Some(run) => run.manifest()?.units_sampled(),
        None => Vec::new(),
    };
    Ok(config
        .agencies
        .units()
        .map(|u| {
            let worksheet = if sample.is_none() {
                WorksheetState::NoSampleAudit
            } else if !sampled.contains(&u.id) {
                WorksheetState::NotSampled
            } else if returned.contains(&u.id) {
                WorksheetState::Returned
            } else {
                WorksheetState::NotReturned
            };
            (
                u.id.clone(),
                UnitStatus {
                    accounts: accounts.get(&u.id).copied().unwrap_or(0),
                    last_sample: sample
                        .as_ref()
                        .map(|r| (r.period.to_string(), r.id.clone())),
                    last_review: review.as_ref().and_then(|r| r.period.as_of()),
                    worksheet,
                },
            )
        })
        .collect())
}

/// What a run is, for its `run.json`.
pub(super) struct RunSpec {
    pub(super) job: Job,
    pub(super) period: Option<Period>,
    pub(super) as_of: NaiveDate,
    pub(super) started: NaiveDateTime,
    /// How the run enters the daemon's ledger.
    pub(super) ledger: LedgerEntry,
}

impl RunSpec {
    /// What the run covers: its period, or for a review its day.
    fn covers(&self) -> RunPeriod {
        self.period
            .as_ref()
            .map_or(RunPeriod::AsOf(self.as_of), |p| {
                RunPeriod::Period(p.id.clone())
            })
    }
}

/// What a job adds to its workbooks beyond what every run has.
#[derive(Default)]
pub(super) struct Extras<'e> {
    /// The roster the account sheets list (account reviews, the external
    /// audit).
    pub(super) review_roster: Option<&'e DataFrame>,
    pub(super) queries_by_month: Option<&'e DataFrame>,
    pub(super) sample: Option<(&'e Manifest, &'e DataFrame)>,
    pub(super) evidence: Option<&'e BTreeMap<String, report::build::UnitEvidence>>,
    pub(super) selection: Option<&'e sampling::units::UnitDraw>,
    /// Whether the data-quality sheet lists the accounts not in the roster.
    pub(super) orphans: bool,
    /// Query findings earlier workbooks asked about (the internal audit).
    pub(super) asked: Option<&'e report::build::Asked>,
    /// The account review's disabled accounts used after their disabling.
    pub(super) after_disabling: Option<&'e DataFrame>,
}

/// The end every run shares: `findings.csv`, `rejects.csv`, `inputs.json`
/// and `run.json` ([`record_run`]), then the workbooks, their mail and the
/// seal ([`finish_run`]).
pub(super) fn complete(
    config: &Config,
    spec: RunSpec,
    folder: RunFolder,
    (checked, ingested): (Checked, Ingested),
    roster: &DataFrame,
    extras: Extras<'_>,
    clock: &dyn Clock,
) -> Result<RunOutcome> {
    let job = spec.job;
    let period_id = spec.covers().to_string();
    let unfinished = archive::Unfinished::new(&folder.dir);
    let checked = if job.reviews_accounts() {
        // The password check closes only password findings it no longer
        // lists: it did not look at the rest.
        let scope = (job == Job::PasswordCheck)
            .then(|| format!("{}|", Code::AccountPasswordStale.as_str()));
        track_findings(config, checked, &period_id, spec.as_of, scope.as_deref())?
    } else {
        checked
    };
    let outcome = record_run(config, spec, folder, checked, ingested, clock)?;
    let kind = ReportKind::of(job).context("every job that makes a run folder makes workbooks")?;
    finish_run(
        config,
        &outcome,
        Some(roster),
        RunFacts {
            roster: extras.review_roster,
            queries_by_month: extras.queries_by_month,
            sample: extras.sample,
            evidence: extras.evidence,
            selection: extras.selection,
            orphans: extras.orphans.then_some(&outcome.orphans),
            asked: extras.asked,
            after_disabling: extras.after_disabling,
            ..facts(config, kind, period_id, &outcome, clock)
        },
    )?;
    unfinished.finished();
    Ok(outcome)
}

/// Findings across reviews (issue 16): each account finding's key (its
/// code and account, or agency) is looked up in the history. One that an
/// earlier review listed and that is still there is a repeat: raised one
/// severity level, its reason saying since when and how often it was
/// listed. Then the history records this review: what it lists stays or
/// becomes open, what it no longer lists is closed.
pub(super) fn track_findings(
    config: &Config,
    checked: Checked,
    review: &str,
    day: NaiveDate,
    scope: Option<&str>,
) -> Result<Checked> {
    let mut store = Store::open(&config.paths.state)?;
    let open: BTreeMap<String, crate::store::Tracked> = store
        .open_findings()?
        .into_iter()
        .map(|t| (t.key.clone(), t))
        .collect();
    // What officers answered in earlier reviews (latest first): a repeat
    // the officer reported revoked is a contradiction to look into.
    let mut decided: BTreeMap<String, String> = BTreeMap::new();
    for (_, key, answers, _) in store.returned_decisions(Job::AccountReview.as_str())? {
        let done = serde_json::from_str::<BTreeMap<String, String>>(&answers)
            .ok()
            .and_then(|a| a.get("處理結果").cloned())
            .unwrap_or_default();
        decided.entry(key).or_insert(done);
    }
    let f = &checked.findings;
    let text = |c: &str| -> Result<Vec<Option<String>>> {
        Ok(f.column(c)?
            .str()?
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect())
    };
    let (code, account, agency) = (text("code")?, text("account_id")?, text("agency_id")?);
    let (mut severity, mut reason) = (text("severity")?, text("reason")?);
    let mut keys = Vec::new();
    for i in 0..f.height() {
        let Some(c) = code[i].as_deref().and_then(Code::parse) else {
            continue;
        };
        if c.scope() != Scope::Accounts {
            continue;
        }
        let about = account[i].as_deref().or(agency[i].as_deref()).unwrap_or("");
        let key = format!("{}|{about}", c.as_str());
        if let Some(t) = open.get(&key).filter(|t| t.last_run != review) {
            let raised = severity[i]
                .as_deref()
                .and_then(Severity::parse)
                .unwrap_or(c.severity())
                .raised();
            severity[i] = Some(raised.name().to_owned());
            let revoked = if decided.get(about).is_some_and(|d| d == "已廢止") {
                "；專責人員曾回報「已廢止」，惟本次資料仍列，請查明"
            } else {
                ""
            };
            reason[i] = Some(format!(
                "{}（{}：{} 清查首次列出，本次為第 {} 次仍未改善，嚴重度提高一級{revoked}）",
                reason[i].as_deref().unwrap_or(""),
                crate::model::REPEAT_MARK,
                t.first_seen,
                t.times + 1
            ));
        }
        keys.push(key);
    }
    let mut findings = checked.findings.clone();
    findings.with_column(Column::new("severity".into(), severity))?;
    findings.with_column(Column::new("reason".into(), reason))?;
    store.record_review(review, &day.to_string(), &keys, scope)?;
    Ok(Checked {
        findings,
        ..checked
    })
}

/// Writes `findings.csv`, `rejects.csv`, `inputs.json` and `run.json`.
pub(super) fn record_run(
    config: &Config,
    spec: RunSpec,
    folder: RunFolder,
    checked: Checked,
    ingested: Ingested,
    clock: &dyn Clock,
) -> Result<RunOutcome> {
    let Checked {
        findings,
        not_checked,
        orphans,
    } = checked;
    let dir = folder.dir.clone();
    archive::write_csv(&findings, &folder.file("findings.csv")?)?;
    archive::write_csv(&ingested.rejects, &folder.file("rejects.csv")?)?;
    let inputs: Vec<InputRecord> = ingested.files.iter().map(InputRecord::from).collect();
    archive::write_json(&inputs, &folder.file("inputs.json")?)?;

    let codes = findings.column("code")?.str()?.clone();
    let severities = findings.column("severity")?.str()?.clone();
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_severity: BTreeMap<String, usize> = BTreeMap::new();
    let mut worst: Option<Severity> = None;
    // The finding's own severity: a repeat is raised above its code's.
    for (c, sev) in codes.iter().zip(severities.iter()) {
        let Some(c) = c else { continue };
        *by_code.entry(c.to_owned()).or_default() += 1;
        if let Some(sev) = sev
            .and_then(Severity::parse)
            .or_else(|| Code::parse(c).map(Code::severity))
        {
            *by_severity.entry(sev.name().to_owned()).or_default() += 1;
            worst = Some(worst.map_or(sev, |w| w.min(sev)));
        }
    }
    let record = RunRecord {
        tool: "webir-audit",
        version: env!("CARGO_PKG_VERSION"),
        job: spec.job.as_str().into(),
        period: spec.covers().to_string(),
        as_of: spec.period.is_none().then(|| spec.as_of.to_string()),
        started: local_text(spec.started),
        finished: local_text(clock.local(config.timezone)),
        findings: findings.height(),
        by_code,
        by_severity,
        inputs: ingested.files.len(),
        failed_inputs: ingested.failed_files().count(),
        rejected_rows: ingested.rejects.height(),
        roster_snapshot: ingested.roster_use.as_ref().map(|r| r.date.to_string()),
        not_checked: not_checked.clone(),
    };
    archive::write_json(&record, &folder.file("run.json")?)?;
    Ok(RunOutcome {
        folder,
        dir,
        job: spec.job,
        period: record.period,
        ledger: spec.ledger,
        findings,
        ingested,
        worst,
        not_checked,
        orphans,
    })
}

/// A new run folder for `job`'s run over `period`, started at `started`.
pub(super) fn period_folder(
    config: &Config,
    job: Job,
    period: &Period,
    started: NaiveDateTime,
) -> Result<RunFolder> {
    RunFolder::create(
        &config.paths.archive,
        &RunPeriod::Period(period.id.clone()),
        job,
        started,
    )
}

/// `path` made absolute, so a manifest can be verified from anywhere.
pub(super) fn absolute(path: &std::path::Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

pub(super) fn local_text(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Ingests the inbox for `job`: the tables compacted to one chunk per
/// column (see [`Ingested::compact`]), freed memory returned first, no
/// export dated by its modification time in a sealed audit unless the
/// config accepts it ([`Job::sealed_audit`]), and the roster snapshot for
/// `reference` resolved.
pub(crate) fn ingest_inbox(config: &Config, reference: Reference, job: Job) -> Result<Ingested> {
    let mut ingested = ingest::ingest(config, None).context("ingesting the inbox")?;
    ingest::release_freed_memory();
    tracing::info!(memory = %ingest::memory(), "ingested");
    ingested.compact();
    ingest::release_freed_memory();
    tracing::info!(memory = %ingest::memory(), "compacted");
    if job.sealed_audit() && !config.rules.accept_modification_dates {
        for file in ingested
            .refuse_modification_dates()
            .map_err(anyhow::Error::from)
            .context("leaving out modification dates")?
        {
            tracing::warn!(
                file = %file,
                "no date in its title rows or file name; its modification time is not taken as its date in a {job} (rules.accept_modification_dates)"
            );
        }
    } else {
        for f in ingested.files.iter().filter(|f| {
            f.snapshot
                .is_some_and(|s| s.source == ingest::snapshot::DateSource::Modified)
        }) {
            tracing::warn!(
                file = %f.path,
                "no date in its title rows or file name: dated by its modification time, so the result depends on when the file was copied"
            );
        }
    }
    ingested
        .resolve_roster(reference)
        .map_err(anyhow::Error::from)
        .context("choosing the roster snapshot")?;
    Ok(ingested)
}

/// What the checks need to know of the run's inputs.
pub(super) fn input_state(ingested: &Ingested, query_log: &DataFrame) -> Result<InputState> {
    let roster_files = ingested.roster_use.as_ref().map(|r| r.files.as_slice());
    InputState::from_files(&ingested.files, roster_files, query_log)
        .map_err(anyhow::Error::from)
        .context("assessing the inputs")
}

/// Runs `job`'s checks on `tables`, withholding those whose inputs failed.
pub(crate) fn run_checks(
    config: &Config,
    ingested: &Ingested,
    tables: InputFrames,
    scope: Scope,
    as_of: NaiveDate,
    period: Option<Period>,
) -> Result<Checked> {
    let state = input_state(ingested, &tables.query_log)?;
    checks::run_with(config, tables, scope, as_of, period, &state)
        .map_err(anyhow::Error::from)
        .context("running the checks")
}
