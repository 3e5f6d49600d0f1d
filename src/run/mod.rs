//! The run layer: one dispatcher ([`execute`]) that the command line, the
//! demo and the daemon all call, and the skeleton every run shares
//! (folder, ingest once, checks, record, render, queue mail, seal). The
//! stages it drives (ingest, checks, sampling, report, mail) never import
//! it. Time comes from the clock it is given.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{NaiveDate, NaiveDateTime};
use polars::prelude::*;

use std::io::Write as _;

mod annual;
pub mod ceremony;
mod retention;
pub mod returns;

pub use annual::ExternalSelection;
use annual::{external_audit, internal_audit};
pub use retention::Retention;
use retention::retention;

use crate::archive::{self, InputRecord, RunFolder, RunRecord};
use crate::checks::Severity;
use crate::checks::{self, Checked, Code, InputState, NotChecked, Scope, Tables};
use crate::clock::Clock;
use crate::config::Config;
use crate::ingest::snapshot::Reference;
use crate::ingest::{self, FileStatus, Ingested};
use crate::job::{Job, Span};
use crate::mail;
use crate::model::Table;
use crate::period::{Period, RunPeriod};
use crate::report::{
    self, ReportKind,
    build::{RunFacts, UnitStatus, WorksheetState},
};
use crate::sampling::manifest::{ConfigRecord, InputHash, Manifest, PeriodRecord};
use crate::sampling::spec::{SPEC_VERSION, Seed};
use crate::sampling::{self, Params, Population};
use crate::store::{Freeze, Store};

/// What to run.
#[derive(Debug, Clone)]
pub struct Request {
    pub job: Job,
    /// The audit period, for a job over a period ([`Span::Period`]).
    pub period: Option<Period>,
    /// The review day, for an account review (default: today).
    pub as_of: Option<NaiveDate>,
    /// The seed, for a job that draws (default: one from the OS).
    pub seed: Option<Seed>,
    /// Draw a period already drawn again (numbered and announced).
    pub redraw: bool,
    /// The seed ceremony the daemon ran for this sample audit: its seed
    /// is the draw's, and its commitment is checked and recorded.
    pub ceremony: Option<crate::store::Ceremony>,
    /// The run ledger's name for what is run, for a job whose period is
    /// no audit period (the heartbeat's week).
    pub label: Option<String>,
}

impl Request {
    pub fn new(job: Job) -> Request {
        Request {
            job,
            period: None,
            as_of: None,
            seed: None,
            redraw: false,
            ceremony: None,
            label: None,
        }
    }
}

/// What a job did.
#[derive(Debug)]
pub enum Done {
    /// An account review, a query check or an internal audit.
    Run(RunOutcome),
    /// A sample audit: its run and the manifest of its draw.
    Sample(Box<SampleOutcome>),
    /// An external audit: its run and the draw of units.
    External(RunOutcome, Box<ExternalSelection>),
    Retention(Retention),
    /// The status mail was queued.
    Heartbeat,
}

impl Done {
    /// The run folder's outcome, for jobs that make one.
    pub fn run(&self) -> Option<&RunOutcome> {
        match self {
            Done::Run(r) | Done::External(r, _) => Some(r),
            Done::Sample(s) => Some(&s.run),
            Done::Retention(_) | Done::Heartbeat => None,
        }
    }
}

/// A request a job cannot take.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0} needs --period or --from/--to")]
    NeedsPeriod(Job),
    #[error("{0} is as of a day (--as-of), not over a period")]
    NoPeriod(Job),
    #[error("--seed is for the jobs that draw (sample-audit, external-audit), not {0}")]
    NoSeed(Job),
}

/// Which checks a job runs.
fn scope(job: Job) -> Scope {
    if job.reviews_accounts() || job == Job::ExternalAudit {
        Scope::Accounts
    } else {
        Scope::Queries
    }
}

/// Does `request`: the one place a job is mapped to what does it.
pub fn execute(config: &Config, request: Request, clock: &dyn Clock) -> Result<Done> {
    let job = request.job;
    match (job.span(), &request.period) {
        (Span::Period, None) => return Err(RequestError::NeedsPeriod(job).into()),
        (Span::AsOf | Span::None, Some(_)) => return Err(RequestError::NoPeriod(job).into()),
        _ => {}
    }
    if request.seed.is_some() && !job.draws() {
        return Err(RequestError::NoSeed(job).into());
    }
    // A damaged state database runs nothing.
    let store = Store::open(&config.paths.state)?;
    store.check()?;
    // What a killed run left is no record and holds personal data.
    archive::remove_leftovers(&config.paths.archive, &store)?;
    drop(store);
    let period = request.period;
    let needed = || {
        period
            .clone()
            .context("checked above: the job has a period")
    };
    Ok(match job {
        Job::AccountReview | Job::PasswordCheck => {
            Done::Run(review_or_check(config, job, None, request.as_of, clock)?)
        }
        Job::QueryCheck => Done::Run(review_or_check(config, job, period, None, clock)?),
        Job::SampleAudit => Done::Sample(Box::new(sample_audit(
            config,
            &needed()?,
            request.seed,
            request.redraw,
            request.ceremony,
            clock,
        )?)),
        Job::InternalAudit => Done::Run(internal_audit(config, &needed()?, clock)?),
        Job::ExternalAudit => {
            let (run, selection) = external_audit(
                config,
                &needed()?,
                (request.seed, request.ceremony),
                request.redraw,
                clock,
            )?;
            Done::External(run, Box::new(selection))
        }
        Job::Retention => Done::Retention(retention(config, clock)?),
        Job::Heartbeat => {
            heartbeat(config, request.label.as_deref(), clock)?;
            Done::Heartbeat
        }
    })
}

/// Queues the weekly status mail to `mail.admin`.
fn heartbeat(config: &Config, label: Option<&str>, clock: &dyn Clock) -> Result<()> {
    let now = clock.now();
    let week = label.map_or_else(
        || crate::period::PeriodRule::Week.period_for(clock.local(config.timezone)),
        str::to_owned,
    );
    let text = crate::status::Status::gather(config, None, clock)?.render();
    let body = config.templates.render(
        "daemon.txt.j2",
        &serde_json::json!({ "what": "heartbeat", "status": text }),
    )?;
    let m = mail::plain(
        config,
        &format!("ledger:{}:{week}", Job::Heartbeat.name()),
        "heartbeat",
        &config.mail.admin,
        &format!("【健保WebIR稽核】每週運作狀態 {week}"),
        body,
        now,
    )?;
    let mut store = Store::open(&config.paths.state)?;
    store.queue(&[m], &mail::outbox::stamp(now))?;
    Ok(())
}

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
    pub findings: DataFrame,
    /// The ingest manifest and rejects; its tables were moved into the
    /// checks (see `take_tables`) and are empty here.
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
        self.not_checked.iter().any(|n| n.why.withholds())
    }
}

pub fn tables(ing: &Ingested) -> Tables {
    Tables {
        query_log: ing.table(Table::QueryLog).clone(),
        roster: ing.table(Table::Roster).clone(),
        hr: ing.table(Table::Hr).clone(),
        request_forms: ing.table(Table::RequestForms).clone(),
        applications: ing.table(Table::Applications).clone(),
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
        applications: take(Table::Applications),
    }
}

/// An account review as of `as_of`, or the query check of `period`.
fn review_or_check(
    config: &Config,
    job: Job,
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
    let tables = take_tables(&mut ingested);
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
fn facts<'a>(
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
fn unit_status(
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

/// Ends a run: renders every unit's workbook and the city-wide one into
/// `<run>/reports/` (`<unit id>.xlsx`, `city-wide.xlsx`), queues their mail,
/// and seals the folder. Nothing writes to the folder after this.
fn finish_run(
    config: &Config,
    outcome: &RunOutcome,
    roster: Option<&DataFrame>,
    facts: RunFacts<'_>,
) -> Result<()> {
    let clock = std::time::Instant::now();
    let status = unit_status(config, roster, facts.orphans, &outcome.folder)?;
    let state = Store::open(&config.paths.state)?;
    let due = crate::followup::due_rows(&state, facts.generated_at.date())?;
    let chain_head = state.chain_head()?.map(|e| e.label());
    drop(state);
    let facts = RunFacts {
        unit_status: Some(&status),
        due: Some(&due),
        chain_head,
        ..facts
    };
    let models = report::build::models(&facts)
        .map_err(anyhow::Error::from)
        .context("building the report models")?;
    let dir = outcome.folder.reports();
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let hb = config.agencies.health_bureau().id.clone();
    let run = outcome.dir.display().to_string();
    let draw_number = facts.sample.map_or(1, |(m, _)| m.draw_number);
    let now = {
        use chrono::TimeZone;
        config
            .timezone
            .from_local_datetime(&facts.generated_at)
            .earliest()
            .map_or_else(
                || facts.generated_at.and_utc(),
                |t| t.with_timezone(&chrono::Utc),
            )
    };
    let mut store = Store::open(&config.paths.state)?;
    let issued_at = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut messages = Vec::new();
    // Critical findings an earlier run's urgent notice told of are not
    // told again; those this run tells of are recorded with its mail.
    let notified = store.notified_criticals()?;
    let mut told: Vec<String> = Vec::new();
    // The items this run opens: written with its mail and its seal.
    let mut opening = Vec::new();
    let workbooks = models.len();
    for mut m in models {
        // The city-wide workbook comes last: its 回收狀況 shows what this
        // run asked of the units too.
        if m.city_wide() {
            let due = crate::followup::due_rows_with(&store, facts.generated_at.date(), &opening)?;
            report::build::refresh_collection(&facts, &mut m, &due);
        }
        let key = m.key();
        // What comes back must come from the unit it was sent to.
        if !m.city_wide() {
            m.return_token = Some(crate::worksheet::return_token(
                &config.paths.state,
                &m.run_id,
                &key,
                m.kind.job().name(),
            )?);
        }
        let m = &m;
        let unit = (!m.city_wide()).then_some(key.as_str());
        let name = RunFolder::workbook_name(unit);
        let bytes = report::render(m).with_context(|| format!("rendering {name} ({hb})"))?;
        let path = outcome.folder.workbook(unit)?;
        let mut f = archive::create_private(&path)?;
        f.write_all(&bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        if !m.city_wide() && m.second_review().is_none() && m.chief_document().is_none() {
            let (items, keys) = critical_items(&outcome.findings, &m.unit_id, &notified)?;
            let notices = mail::critical_notices(config, m, &run, &items, now)?;
            if !notices.is_empty() {
                told.extend(keys);
            }
            messages.extend(notices);
        }
        let recipients = mail::recipients(config, m);
        if recipients.is_empty() {
            // A second review nobody can be sent: a person must name one.
            if m.second_review().is_some() {
                messages.push(mail::plain(
                    config,
                    &run,
                    &format!("no-reviewer:{key}"),
                    &config.mail.admin,
                    &format!("【健保WebIR稽核】{}：專責人員本人帳號之抽查無覆核人", m.unit_name),
                    format!(
                        "{}（{}）專責人員本人帳號之抽查紀錄（{}）已製作於 {}，惟無覆核人可寄送：該機關未設定政風單位信箱{}。\n\n請於設定檔為該機關設定 ethics_email{}，並將上述工作簿交該覆核人（本次未寄出）；在此之前本項無人覆核。\n",
                        m.unit_name,
                        m.unit_id,
                        m.second_review()
                            .map(|r| r.accounts.join("、"))
                            .unwrap_or_default(),
                        path.display(),
                        if config.agencies.get(&m.unit_id).is_some_and(|a| a.health_bureau) {
                            "（衛生局之抽樣可能含總管理者本人帳號，不由總管理者覆核）"
                        } else {
                            "，亦無 [chief_administrator]"
                        },
                        if config.agencies.get(&m.unit_id).is_some_and(|a| a.health_bureau) {
                            ""
                        } else {
                            "或 [chief_administrator]"
                        },
                    ),
                    now,
                )?);
            }
            continue;
        }
        // What the run asks of the unit is due by the workbook's deadline,
        // and chased until a return closes it.
        if !m.city_wide() && m.asks_something() && config.followup.days(facts.kind.job()).is_some()
        {
            let due_on = match &m.document {
                report::Document::ExternalRecord { .. } => {
                    report::build::external_record_due(config, facts.generated_at)
                }
                _ => report::build::deadline(config, facts.kind, facts.generated_at).1,
            };
            opening.push(crate::store::DueItem {
                id: 0,
                job: facts.kind.job().name().to_owned(),
                run_id: m.run_id.clone(),
                run_dir: run.clone(),
                unit_id: key.clone(),
                // Whoever the workbook is for: the officer, or the second
                // reviewer.
                sent_to: recipients[0].0.clone(),
                label: if let Some(doc) = m.chief_document() {
                    format!("{} {doc}", m.period_label)
                } else if m.second_review().is_some() {
                    format!(
                        "{} {}（專責人員本人帳號覆核）",
                        m.period_label,
                        m.kind.title()
                    )
                } else {
                    format!("{} {}", m.period_label, m.kind.title())
                },
                opened_at: facts.generated_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
                due_on: due_on.to_string(),
                closed_at: None,
                closed_by: None,
            });
        }
        for (to, role) in recipients {
            // Encrypted for its reader: each opens it with their own password.
            let attachment =
                mail::protect(config, &mut store, &m.unit_id, role, &bytes, &issued_at)?;
            messages.push(mail::compose(
                config,
                m,
                &run,
                &name,
                &attachment,
                &path,
                &to,
                role,
                draw_number,
                now,
            )?);
        }
    }
    tracing::info!(elapsed = ?clock.elapsed(), workbooks, memory = %crate::ingest::memory(), "reports written");
    // What the run asks, its mail and its seal are one transaction: a run
    // that dies before its seal leaves no item open and no mail queued
    // (nobody was asked anything), and is resumed or removed whole.
    // Queueing a run again adds nothing (unique run, report, recipient).
    // The seal is written and hashed first, outside the transaction: the
    // database is not held locked while a large run folder is read.
    let sealed = archive::seal(&outcome.dir).and_then(|()| {
        archive::seal_digest(&outcome.dir)
            .with_context(|| format!("hashing the seal of {}", outcome.dir.display()))
    });
    let queued = sealed.and_then(|digest| {
        store.atomically(|store| {
            for item in &opening {
                store.open_due(item)?;
            }
            // Point 6(4): each unit the external audit drew is told what to
            // prepare and by when; its preparation is a due item.
            if let (ReportKind::ExternalAudit, Some(draw)) = (facts.kind, facts.selection) {
                messages.extend(crate::followup::drawn_units(
                    config, store, &facts, draw, &run, now,
                )?);
            }
            let queued = store.queue_noting(&messages, &issued_at, &run, &told)?;
            store.chain_append(
                "seal",
                &archive::chain_id(&outcome.dir),
                &digest,
                &local_text(facts.generated_at),
            )?;
            Ok(queued)
        })
    });
    // Whatever failed (the chain, the commit), a seal file left without
    // its chain entry would make the folder look finished: it goes, and
    // the folder is a leftover the next run removes or resumes.
    let queued = queued.inspect_err(|_| {
        let _ = std::fs::remove_file(outcome.dir.join(archive::SEAL));
    })?;
    tracing::info!(queued, "mail queued, run sealed");
    // What the sealed run read leaves the inbox for the input store; an
    // export that cannot move stays for the next run (told in the log).
    crate::inputs::archive_read(config, facts.files, &run, &local_text(facts.generated_at));
    Ok(())
}

/// A unit's critical findings, for the immediate notice, one item per
/// account and code (subjects are masked in the findings already): how
/// many, from when to when, how many people were looked up, and the first
/// finding's reason as an example. Most findings first.
fn critical_items(
    findings: &DataFrame,
    unit: &str,
    notified: &std::collections::BTreeSet<String>,
) -> Result<(Vec<mail::CriticalItem>, Vec<String>)> {
    let ts = |e: Expr| e.dt().strftime("%Y-%m-%d %H:%M:%S");
    // A critical finding's identity across runs: a later run (the year's
    // internal audit re-checks the half-year's queries) finds it again,
    // and it was told already.
    let key = report::build::finding_key();
    let new = findings
        .clone()
        .lazy()
        .filter(
            col("unit_id")
                .eq(lit(unit))
                .and(col("severity").eq(lit(Severity::Critical.name()))),
        )
        .filter(report::build::key_in(notified.iter().cloned()).not())
        .with_column(key.alias("notice_key"))
        .collect()?;
    let keys: Vec<String> = new
        .column("notice_key")?
        .str()?
        .iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    let f = new
        .lazy()
        .sort(
            ["occurred_at"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .group_by_stable([col("code"), col("account_id")])
        .agg([
            len().cast(DataType::Int64).alias("n"),
            ts(col("occurred_at").min()).alias("first"),
            ts(col("occurred_at").max()).alias("last"),
            col("subject")
                .n_unique()
                .cast(DataType::Int64)
                .alias("subjects"),
            col("reason").first().alias("example"),
        ])
        .sort(
            ["n", "account_id", "code"],
            SortMultipleOptions::default().with_order_descending_multi([true, false, false]),
        )
        .collect()?;
    let s = |c: &str| -> Result<Vec<String>> {
        Ok(f.column(c)?
            .str()?
            .iter()
            .map(|v| v.unwrap_or("").to_owned())
            .collect())
    };
    let i = |c: &str| -> Result<Vec<i64>> {
        Ok(f.column(c)?.i64()?.iter().map(|v| v.unwrap_or(0)).collect())
    };
    let (code, account, first, last, example) = (
        s("code")?,
        s("account_id")?,
        s("first")?,
        s("last")?,
        s("example")?,
    );
    let (n, subjects) = (i("n")?, i("subjects")?);
    let items = (0..f.height())
        .map(|k| mail::CriticalItem {
            description: Code::parse(&code[k])
                .map_or(code[k].clone(), |c| c.description().to_owned()),
            account: account[k].clone(),
            count: n[k],
            first: first[k].clone(),
            last: last[k].clone(),
            subjects: subjects[k],
            example: example[k].clone(),
        })
        .collect();
    Ok((items, keys))
}

/// What a run is, for its `run.json`.
struct RunSpec {
    job: Job,
    period: Option<Period>,
    as_of: NaiveDate,
    started: NaiveDateTime,
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
struct Extras<'e> {
    /// The roster the account sheets list (account reviews, the external
    /// audit).
    review_roster: Option<&'e DataFrame>,
    queries_by_month: Option<&'e DataFrame>,
    sample: Option<(&'e Manifest, &'e DataFrame)>,
    evidence: Option<&'e BTreeMap<String, report::build::UnitEvidence>>,
    selection: Option<&'e sampling::units::UnitDraw>,
    /// Whether the data-quality sheet lists the accounts not in the roster.
    orphans: bool,
    /// Query findings earlier workbooks asked about (the internal audit).
    asked: Option<&'e report::build::Asked>,
    /// The account review's disabled accounts used after their disabling.
    after_disabling: Option<&'e DataFrame>,
}

/// The end every run shares: `findings.csv`, `rejects.csv`, `inputs.json`
/// and `run.json` ([`record_run`]), then the workbooks, their mail and the
/// seal ([`finish_run`]).
fn complete(
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
fn track_findings(
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
    for (_, key, answers, _) in store.returned_decisions(Job::AccountReview.name())? {
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
fn record_run(
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
        job: spec.job.name().into(),
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
        findings,
        ingested,
        worst,
        not_checked,
        orphans,
    })
}

/// `path` made absolute, so a manifest can be verified from anywhere.
fn absolute(path: &std::path::Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

fn local_text(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// What a sample audit produced: the run (its query check included) and
/// the manifest of the draw.
#[derive(Debug)]
pub struct SampleOutcome {
    pub run: RunOutcome,
    pub manifest: Manifest,
}

/// The population of a period and the inputs it stands on, frozen before
/// any seed exists.
#[derive(Debug)]
pub struct Frozen {
    pub period: Period,
    pub population: Population,
    pub inputs: Vec<InputHash>,
    pub ingested: Ingested,
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
fn input_state(ingested: &Ingested, query_log: &DataFrame) -> Result<InputState> {
    let roster_files = ingested.roster_use.as_ref().map(|r| r.files.as_slice());
    InputState::from_files(&ingested.files, roster_files, query_log)
        .map_err(anyhow::Error::from)
        .context("assessing the inputs")
}

/// Runs `job`'s checks on `tables`, withholding those whose inputs failed.
pub(crate) fn run_checks(
    config: &Config,
    ingested: &Ingested,
    tables: Tables,
    scope: Scope,
    as_of: NaiveDate,
    period: Option<Period>,
) -> Result<Checked> {
    let state = input_state(ingested, &tables.query_log)?;
    checks::run_with(config, tables, scope, as_of, period, &state)
        .map_err(anyhow::Error::from)
        .context("running the checks")
}

/// Ingests the inbox and computes the period's population and digest.
pub fn freeze_inputs(config: &Config, period: &Period) -> Result<Frozen> {
    let ingested = ingest_inbox(
        config,
        Reference::PeriodEnd(period.last_day()),
        Job::SampleAudit,
    )?;
    let clock = std::time::Instant::now();
    let population = sampling::population(
        ingested.table(Table::QueryLog),
        ingested.table(Table::Roster),
        period,
    )
    .map_err(anyhow::Error::from)
    .context("building the population")?;
    tracing::info!(elapsed = ?clock.elapsed(), records = population.frame.height(), "population digested");
    let inputs = ingested.files.iter().map(InputHash::from).collect();
    Ok(Frozen {
        period: period.clone(),
        population,
        inputs,
        ingested,
    })
}

/// Appends a seed draw to the evidence chain: its digest covers the
/// period, the draw's number, the seed, its source and the population.
pub(crate) fn chain_seed(
    store: &mut Store,
    period: &str,
    draw_number: u32,
    seed: &str,
    source: &str,
    population_digest: &str,
    at: &str,
) -> Result<()> {
    let digest = seed_digest(period, draw_number, seed, source, population_digest);
    store.chain_append("seed", &format!("{period}#{draw_number}"), &digest, at)?;
    Ok(())
}

/// A seed entry's digest (docs/sampling.md § 13): SHA-256 of
/// `key LF draw_number LF seed LF source LF digest LF`.
pub fn seed_digest(key: &str, draw_number: u32, seed: &str, source: &str, digest: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(
        format!("{key}\n{draw_number}\n{seed}\n{source}\n{digest}\n").as_bytes(),
    ))
}

/// A population that misses a failed file must not be frozen or drawn
/// from: the failure would silently shrink what is sampled.
fn refuse_failed_inputs(frozen: &Frozen, consequence: &str) -> Result<()> {
    let failed: Vec<String> = frozen
        .ingested
        .failed_files()
        .map(|f| match &f.status {
            FileStatus::Failed { error } => format!("{}: {error}", f.path),
            _ => f.path.clone(),
        })
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "the population of {} would miss what these inputs hold, so {consequence}; \
         fix or remove them and run again:\n  {}",
        frozen.period.id,
        failed.join("\n  ")
    );
    Ok(())
}

/// Held while a period is drawn: `<state>/locks/draw-<period>.lock`.
fn draw_lock(state: &std::path::Path, period: &str) -> Result<std::fs::File> {
    let dir = state.join("locks");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // `2026/external-audit` names a file `draw-2026.external-audit.lock`.
    let path = dir.join(format!("draw-{}.lock", period.replace('/', ".")));
    let file = archive::open_lock(&path).with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{period} is being drawn by another run now ({} is held); nothing was drawn",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The period's last draw, if its run died before its seal: its folder
/// is gone or unsealed while no run holds the period's draw lock.
fn crashed_draw(store: &Store, period: &str) -> Result<Option<crate::store::SeedDraw>> {
    let Some(last) = store.draws(period)?.pop() else {
        return Ok(None);
    };
    // Its run, or one that resumed it, is sealed; or retention deleted it
    // sealed (a tombstone says so).
    let mut runs = store.draw_resumed_in(period, last.draw_number)?;
    runs.push(last.run_dir.clone());
    // The chain, not the folder, says it was sealed: a seal file deleted
    // or an archive moved does not make a sealed run a crashed one.
    let chain = store.chain()?;
    // Nor does a seal file alone make it sealed: one written by a run
    // that died before its transaction committed has no chain entry.
    let done = runs.iter().any(|d| {
        let id = archive::chain_id(std::path::Path::new(d));
        chain
            .iter()
            .any(|e| (e.kind == "tombstone" || e.kind == "seal") && e.id == id)
    });
    if done {
        return Ok(None);
    }
    // One that died after its mail was queued reached people: it is not
    // redone behind their backs.
    let told = store.outbox()?.iter().any(|m| runs.contains(&m.run));
    anyhow::ensure!(
        !told,
        "draw {} of {period} (run {}) died before its seal but after its mail was queued: it is \
         not resumed automatically; see `webir-audit outbox list`, then seal or remove that \
         folder by hand and run again with --redraw",
        last.draw_number,
        last.run_dir
    );
    Ok(Some(last))
}

/// The seed ledger's key of a draw, which is also its ceremony's: the
/// period id for a sample audit, `<period>/external-audit` for the
/// external audit's draw of units (docs/sampling.md § 13).
pub fn draw_key(job: Job, period: &str) -> String {
    match job {
        Job::ExternalAudit => format!("{period}/{job}"),
        _ => period.to_owned(),
    }
}

/// A period's draw about to be made (`ledger`: the period, or
/// `<year>/external-audit`), held under its draw lock until dropped: the
/// draw whose run died before its seal, to resume, if there is one; else
/// a first draw, or a second one the operator asked for.
pub(crate) struct DrawClaim {
    _lock: std::fs::File,
    ledger: String,
    pub(crate) crashed: Option<crate::store::SeedDraw>,
}

impl DrawClaim {
    /// Takes the draw lock and finds what the draw is: a crashed draw is
    /// resumed (its unsealed folder, personal data, removed; another seed
    /// than its own refused), else a second draw needs `redraw`.
    pub(crate) fn take(
        state: &std::path::Path,
        store: &Store,
        ledger: &str,
        job: Job,
        seed: Option<&Seed>,
        redraw: bool,
    ) -> Result<DrawClaim> {
        // Held until the run is sealed or gone: a draw of the period in
        // progress elsewhere is not mistaken for a crashed one.
        let lock = draw_lock(state, ledger)?;
        // A draw whose run died before its seal (power cut, kill -9) is
        // resumed with its recorded seed and number: never a new seed (that
        // would be seed shopping), never a draw 2 of a draw nobody saw.
        let crashed = crashed_draw(store, ledger)?;
        if let Some(d) = &crashed {
            let left = std::path::Path::new(&d.run_dir);
            tracing::warn!(period = %ledger, draw = d.draw_number, run = %d.run_dir, "a draw whose run died before its seal: resumed with its seed; its unsealed folder (personal data) is removed");
            if left.exists() {
                std::fs::remove_dir_all(left)
                    .with_context(|| format!("removing the unsealed {}", left.display()))?;
            }
            if let Some(given) = seed {
                anyhow::ensure!(
                    given.as_str() == d.seed,
                    "draw {} of {ledger} (seed {}, at {}) died before its seal; it is resumed with its recorded seed, not another: run again without --seed, or with that seed",
                    d.draw_number,
                    d.seed,
                    d.drawn_at
                );
            }
        } else {
            refuse_second_draw(store, ledger, job, redraw)?;
        }
        Ok(DrawClaim {
            _lock: lock,
            ledger: ledger.to_owned(),
            crashed,
        })
    }

    /// The seed to draw with: the crashed draw's, else `given`.
    pub(crate) fn seed(&self, given: Option<Seed>) -> Result<Option<Seed>> {
        match &self.crashed {
            Some(d) => Ok(Some(d.seed.parse::<Seed>()?)),
            None => Ok(given),
        }
    }

    /// Records the draw in the ledger and the chain (a resumed one: that
    /// its run is now `dir`, with its own number, seed and source), once
    /// the run's folder exists. Its number.
    pub(crate) fn record(
        &self,
        store: &mut Store,
        (seed, source): (&Seed, &mut &'static str),
        drawn_at: &str,
        digest: &str,
        dir: &std::path::Path,
        redraw: bool,
    ) -> Result<u32> {
        let ledger = &self.ledger;
        let run_dir = dir.display().to_string();
        let Some(d) = &self.crashed else {
            let n = store.record_draw(
                ledger,
                seed.as_str(),
                source,
                drawn_at,
                digest,
                &run_dir,
                !redraw,
            )?;
            chain_seed(store, ledger, n, seed.as_str(), source, digest, drawn_at)?;
            return Ok(n);
        };
        anyhow::ensure!(
            d.population_digest == digest,
            "draw {} of {ledger} died before its seal and the population changed since (digest {} then, {digest} now): it cannot be resumed; restore the inputs it drew from",
            d.draw_number,
            d.population_digest,
        );
        // Its seed and number stand, and are chained already.
        *source = if d.source == "os" { "os" } else { "given" };
        store.resume_draw(ledger, d.draw_number, &run_dir, drawn_at)?;
        Ok(d.draw_number)
    }
}

/// A period is drawn once. A second draw happens only when the operator
/// asks for it (`--redraw`), and is then numbered and announced in every
/// report; a draw that silently replaced an earlier one would look like
/// seed shopping.
pub(crate) fn refuse_second_draw(
    store: &Store,
    ledger_period: &str,
    job: Job,
    redraw: bool,
) -> Result<()> {
    let draws = store.draws(ledger_period)?;
    if let (Some(last), false) = (draws.last(), redraw) {
        anyhow::bail!(
            "{ledger_period} was already drawn (draw {} at {}, run {}); nothing was drawn now. \
             A second draw happens only when asked for: `run {job} --redraw`, and every report \
             of it says it is draw {}",
            last.draw_number,
            last.drawn_at,
            last.run_dir,
            last.draw_number + 1
        );
    }
    Ok(())
}

/// `freeze`: records the period's population digest and input hashes in
/// the state database, to be published before a seed ceremony.
pub fn freeze(config: &Config, period: &Period, clock: &dyn Clock) -> Result<Freeze> {
    Ok(freeze_counted(config, period, clock)?.0)
}

/// [`freeze`], with the population's records and accounts in use.
pub(crate) fn freeze_counted(
    config: &Config,
    period: &Period,
    clock: &dyn Clock,
) -> Result<(Freeze, usize, usize)> {
    let frozen = freeze_inputs(config, period)?;
    refuse_failed_inputs(&frozen, "nothing was frozen")?;
    let record = Freeze {
        period: period.id.clone(),
        frozen_at: local_text(clock.local(config.timezone)),
        population_digest: frozen.population.digest.clone(),
        inputs: serde_json::to_string(&frozen.inputs)?,
    };
    let mut store = Store::open(&config.paths.state)?;
    store.record_freeze(&record)?;
    store.chain_append(
        "freeze",
        &record.period,
        &record.population_digest,
        &record.frozen_at,
    )?;
    Ok((
        record,
        frozen.population.frame.height(),
        frozen.population.accounts.len(),
    ))
}

/// What proves the seed came after the population, for the manifest.
/// `what` the draw is from: `population` (a sample), `candidate list` (units).
pub(crate) fn seed_timing(
    c: Option<&crate::store::Ceremony>,
    freeze: Option<&Freeze>,
    source: &str,
    what: &str,
) -> String {
    match (c, freeze) {
        (Some(c), _) if ceremony::fell_back(c) => format!(
            "ceremony: the {what} was committed and mailed at {} (ceremony.commitment_messages); \
             no seed came within the wait, so the tool drew one from the OS at {}: the mails prove \
             the {what} predates it, but the seed is not public",
            c.committed_at,
            c.seed_at.as_deref().unwrap_or("?")
        ),
        (Some(c), _) => format!(
            "ceremony: the {what} was committed and mailed at {} (ceremony.commitment_messages, \
             evidence chain `commitment`), the seed was given at {} by {} (`seed-given`); the seed's \
             public source postdates the commitment",
            c.committed_at,
            c.seed_at.as_deref().unwrap_or("?"),
            c.seed_by.as_deref().unwrap_or("?")
        ),
        (None, Some(f)) => format!(
            "freeze: the population was frozen at {} (evidence chain `freeze`) before this draw; \
             only copies of the freeze published before the seed existed prove it outside the server",
            f.frozen_at
        ),
        (None, None) if source == "os" => format!(
            "none: the tool drew the seed from the OS at the draw time; \
             nothing outside the server shows the {what} before it"
        ),
        (None, None) => format!(
            "none: the seed was given at the draw with no freeze before it; nothing \
             shows the {what} was fixed before the seed was known"
        ),
    }
}

/// `run sample-audit`: ingest, freeze, check against a published freeze,
/// take or draw the seed (recorded in the seed ledger before anything is
/// selected), select, write the run folder, then run the period's query
/// check into the same folder.
fn sample_audit(
    config: &Config,
    period: &Period,
    seed: Option<Seed>,
    redraw: bool,
    ceremony: Option<crate::store::Ceremony>,
    clock: &dyn Clock,
) -> Result<SampleOutcome> {
    let started = clock.local(config.timezone);
    let mut store = Store::open(&config.paths.state)?;
    let claim = DrawClaim::take(
        &config.paths.state,
        &store,
        &period.id,
        Job::SampleAudit,
        seed.as_ref(),
        redraw,
    )?;
    let crashed = claim.crashed.clone();
    let mut frozen = freeze_inputs(config, period)?;
    refuse_failed_inputs(&frozen, "no seed was drawn")?;
    let seed = match &ceremony {
        _ if crashed.is_some() => claim.seed(seed)?,
        None => seed,
        Some(c) => Some(ceremony::seed_of(
            c,
            "population",
            &frozen.population.digest,
        )?),
    };
    let freeze = store.latest_freeze(&period.id)?;
    if let Some(f) = &freeze {
        anyhow::ensure!(
            f.population_digest == frozen.population.digest,
            "the population of {} changed since it was frozen at {}: frozen digest {}, now {}; \
             the published freeze no longer describes these inputs (freeze again and publish the new digest)",
            period.id,
            f.frozen_at,
            f.population_digest,
            frozen.population.digest
        );
    }
    let folder = RunFolder::create(
        &config.paths.archive,
        &RunPeriod::Period(period.id.clone()),
        Job::SampleAudit,
        started,
    )?;
    let unfinished = archive::Unfinished::new(&folder.dir);
    let dir = folder.dir.clone();
    let (seed, mut source) = Seed::given_or_drawn(seed)
        .map_err(|e| anyhow::anyhow!("drawing a seed from the OS: {e}"))?;
    if ceremony.as_ref().is_some_and(ceremony::fell_back) {
        source = "os";
    }
    let drawn_at = local_text(clock.local(config.timezone));
    let draw_number = claim.record(
        &mut store,
        (&seed, &mut source),
        &drawn_at,
        &frozen.population.digest,
        &dir,
        redraw,
    )?;
    if draw_number > 1 {
        tracing::warn!(period = %period.id, draw_number, "this period was drawn before; the reports will say so");
    }

    let params = Params {
        sample_account_percent: config.rules.sample_account_percent,
        sample_records_per_account: config.rules.sample_records_per_account,
    };
    // population.tsv is written while the sample is selected: one is disk,
    // the other CPU.
    let clock_sel = std::time::Instant::now();
    let tsv = folder.file("population.tsv")?;
    let population = &frozen.population;
    let (units, written) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| -> Result<()> {
            let mut w = std::io::BufWriter::new(archive::create_private(&tsv)?);
            sampling::write_population(population, &mut w)
                .and_then(|()| w.flush())
                .with_context(|| format!("writing {}", tsv.display()))
        });
        let units = sampling::select(population, config, &period.id, &seed, params);
        (units, writer.join())
    });
    written.map_err(|_| anyhow::anyhow!("the thread writing {} panicked", tsv.display()))??;
    let units = units
        .map_err(anyhow::Error::from)
        .context("selecting the sample")?;
    tracing::info!(elapsed = ?clock_sel.elapsed(), "sample selected and population.tsv written");
    let mut manifest = Manifest {
        spec_version: SPEC_VERSION.into(),
        tool: "webir-audit".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        seed: seed.as_str().into(),
        seed_source: source.into(),
        draw_number,
        drawn_at,
        period: PeriodRecord {
            id: period.id.clone(),
            start: local_text(period.start),
            end: local_text(period.end),
            timezone: config.timezone.name().into(),
        },
        parameters: params,
        config: ConfigRecord {
            file: absolute(&config.file),
            sha256: ingest::hash_file(&config.file)
                .with_context(|| format!("hashing {}", config.file.display()))?
                .1,
        },
        inbox: absolute(&config.paths.inbox),
        inputs: frozen.inputs.clone(),
        population_records: frozen.population.frame.height() as u64,
        population_accounts: frozen.population.accounts.len() as u64,
        population_digest: frozen.population.digest.clone(),
        seed_postdates_population: seed_timing(
            ceremony.as_ref(),
            freeze.as_ref(),
            source,
            "population",
        ),
        ceremony: ceremony
            .as_ref()
            .map(|c| ceremony::record(&store, c))
            .transpose()?,
        frozen_at: freeze.map(|f| f.frozen_at),
        units,
        sample_digest: String::new(),
    };
    manifest.sample_digest = manifest.computed_sample_digest();
    archive::write_json(&manifest, &folder.file("manifest.json")?)?;
    let sample = sampling::sample_frame(
        &frozen.population,
        &manifest.units,
        frozen.ingested.table(Table::QueryLog),
    )?;
    // The raw subject stays in memory only, to match request forms.
    archive::write_csv(&sample.drop("subject_id")?, &folder.file("sample.csv")?)?;
    drop(frozen.population);
    let by_month = report::build::monthly_queries(frozen.ingested.table(Table::QueryLog), period)?;
    let roster = frozen.ingested.table(Table::Roster).clone();
    let forms = frozen.ingested.table(Table::RequestForms).clone();
    ingest::release_freed_memory();

    let tables = take_tables(&mut frozen.ingested);
    let checked = run_checks(
        config,
        &frozen.ingested,
        tables,
        Scope::Queries,
        started.date(),
        Some(period.clone()),
    )?;
    let details =
        report::build::sample_details(config, &sample, &roster, &forms, &checked.findings)?;
    let run = complete(
        config,
        RunSpec {
            job: Job::SampleAudit,
            period: Some(period.clone()),
            as_of: started.date(),
            started,
        },
        folder,
        (checked, frozen.ingested),
        &roster,
        Extras {
            sample: Some((&manifest, &details)),
            queries_by_month: Some(&by_month),
            orphans: true,
            ..Extras::default()
        },
        clock,
    )?;
    unfinished.finished();
    Ok(SampleOutcome { run, manifest })
}

/// Makes a write past the file-size limit (`ulimit -f`) an error the run
/// reports, not a signal that kills the process mid-write.
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn write_errors_not_signals() {
    // SAFETY: sets the disposition of one signal to "ignore"; no handler
    // code runs, and nothing else in the program uses SIGXFSZ.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

#[cfg(not(unix))]
pub fn write_errors_not_signals() {}
