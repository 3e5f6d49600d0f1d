//! The daemon: the regulation's duties on time, unattended.
//!
//! The run ledger (`runs` in the state database, one row per job and
//! period) decides what is due; the scheduler only wakes the daemon. A
//! wake-up is one [`wake`] pass:
//!
//! 1. the inbox is surveyed (new files, by SHA-256, read once for what they
//!    cover);
//! 2. a `running` row is from a dead process (one daemon per state folder
//!    holds `daemon.lock`): its sealed run is adopted, an unsealed one
//!    whose mail was queued is sealed and adopted, otherwise it runs again;
//! 3. every schedule's fire times since the last one it has a row for are
//!    turned into ledger rows, applying `catch_up` and `max_lateness`
//!    (missed periods are recorded and reported, never dropped);
//! 4. due rows run when the inbox covers their period, else wait (and the
//!    admin is told once after `wait_for_inputs`);
//! 5. the outbox is drained, and a generated run whose mail is all
//!    delivered becomes `mailed`.
//!
//! [`serve`] runs passes on `tokio-cron-scheduler` ticks (and every few
//! minutes, for the inbox and the outbox) until SIGTERM or SIGINT.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc};

use crate::archive::RunFolder;
use crate::clock::Clock;
use crate::config::Config;
use crate::job::{Job, Span};
use crate::mail::outbox::stamp;
use crate::model::Table;
use crate::period::RunPeriod;
use crate::schedule::{self, CatchUp, Schedule, SeedRule};
use crate::store::{Ceremony, LedgerRow, MailState, RunState, SeenInput, Store};

/// A failed run is tried again this long after it failed (seconds)…
const RETRY_AFTER: i64 = 30 * 60;

/// …until it has been attempted this often; after that only new inputs in
/// the inbox start it again: a failure that does not pass must not rerun a
/// large audit every half hour for ever.
const MAX_RETRIES: u32 = 6;

/// A fire time later than this after its time is a catch-up, not a tick.
const ON_TIME: i64 = 15 * 60;

use crate::run::operator::AGENCIES_LAST_RUN;

/// How a ledger row left by a dead process begins its note.
const INTERRUPTED: &str = "interrupted";

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub new_inputs: usize,
    pub scheduled: Vec<String>,
    pub missed: Vec<String>,
    pub ran: Vec<String>,
    pub failed: Vec<String>,
    pub waiting: Vec<String>,
    pub resumed: Vec<String>,
    /// Rows done by another row's run (an account review that is also
    /// the password check), or by a run made by hand.
    pub covered: Vec<String>,
    /// Reminders of due items queued.
    pub reminders: usize,
    /// Open items handed over to a unit's new officer.
    pub handovers: usize,
    /// Workbooks taken from `inbox/returns/`: ingested or refused.
    pub returns: Vec<String>,
}

fn key(job: &str, period: &str) -> String {
    format!("{job} {period}")
}

fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// One decision pass at `clock.now()`.
pub fn wake(config: &Config, schedules: &[Schedule], clock: &dyn Clock) -> Result<Pass> {
    // What a killed run left is no record and holds personal data.
    let swept = Store::open(&config.paths.state)
        .map_err(anyhow::Error::from)
        .and_then(|s| crate::archive::remove_leftovers(&config.paths.archive, &s));
    if let Err(e) = swept {
        tracing::error!(error = %format!("{e:#}"), "could not remove what a killed run left");
    }
    let now = clock.now();
    let mut store = Store::open(&config.paths.state)?;
    store.check()?;
    let mut pass = Pass::default();
    let first_start = store.meta_or_insert("first_start", &stamp(now))?;
    // What check-config compares an edited register with.
    store.meta_set(
        AGENCIES_LAST_RUN,
        &crate::config::register::snapshot(config),
    )?;
    let first_start = parse_utc(&first_start).unwrap_or(now);

    let present = survey_inbox(config, &mut store, now, &mut pass)?;
    resume_interrupted(config, &mut store, now, &mut pass)?;
    retry_failed(&mut store, now, pass.new_inputs > 0)?;
    for s in schedules {
        plan(config, s, &mut store, first_start, now, &mut pass)?;
    }
    calendar_notice(config, &mut store, now)?;
    let seen = store.inputs_seen()?;
    let inputs = (&seen[..], &present);
    for row in due_rows(&store)? {
        let Some(s) = schedules.iter().find(|s| s.job.as_str() == row.job) else {
            continue;
        };
        take_due_row(config, &mut store, s, &row, inputs, (now, clock), &mut pass)?;
    }
    follow_up(config, &mut store, (now, clock), &mut pass);
    let mut transport = crate::mail::outbox::transport(config)?;
    crate::mail::outbox::drain(config, &mut store, transport.as_mut(), now)?;
    mark_mailed(&mut store, now)?;
    Ok(pass)
}

/// New exports may cure what made a run fail, and a write fault (a full
/// disk) may have passed: a failed row runs again at once when new inputs
/// came, else once RETRY_AFTER has passed.
fn retry_failed(store: &mut Store, now: DateTime<Utc>, new_inputs: bool) -> Result<()> {
    let retry = |r: &LedgerRow| {
        r.state == RunState::Failed
            && (new_inputs
                || (r.attempts < MAX_RETRIES
                    && r.finished_at
                        .as_deref()
                        .and_then(parse_utc)
                        .is_none_or(|t| now - t >= Duration::seconds(RETRY_AFTER))))
    };
    for r in store.ledger()?.into_iter().filter(retry) {
        store.set_run_state(
            r.id,
            RunState::Scheduled,
            &stamp(now),
            None,
            r.error.as_deref(),
        )?;
    }
    Ok(())
}

/// The ledger rows due to run, in order: at one moment the yearly account
/// review goes before the quarterly password check it also does (ledger
/// order is time, then insertion).
fn due_rows(store: &Store) -> Result<Vec<LedgerRow>> {
    let mut due: Vec<LedgerRow> = store
        .ledger()?
        .into_iter()
        .filter(|r| {
            matches!(
                r.state,
                RunState::Scheduled | RunState::WaitingForInputs | RunState::WaitingForSeed
            )
        })
        .collect();
    due.sort_by_key(|r| (r.scheduled_for.clone(), Job::parse(&r.job)));
    Ok(due)
}

/// One due row: covered by a review already made, run (after its seed
/// ceremony, if it has one), or left waiting for its inputs (the admin
/// told once it has waited too long).
fn take_due_row(
    config: &Config,
    store: &mut Store,
    s: &Schedule,
    row: &LedgerRow,
    (seen, present): (&[SeenInput], &BTreeSet<String>),
    (now, clock): (DateTime<Utc>, &dyn Clock),
    pass: &mut Pass,
) -> Result<()> {
    if s.job.reviews_accounts()
        && let Some((by, dir)) = review_done(config, &store.ledger()?, row)
    {
        let note = format!("satisfied by {by}: the same account review, one run and one mail");
        tracing::info!(job = %row.job, period = %row.period, %note, "covered");
        store.set_run_state(
            row.id,
            RunState::Generated,
            &stamp(now),
            Some(&dir),
            Some(&note),
        )?;
        pass.covered.push(key(&row.job, &row.period));
        return Ok(());
    }
    let missing = missing_inputs(config, s.job, &row.period, seen, present);
    if !missing.is_empty() {
        store.set_run_state(
            row.id,
            RunState::WaitingForInputs,
            &stamp(now),
            None,
            Some(&missing.join("; ")),
        )?;
        pass.waiting.push(key(&row.job, &row.period));
        let since = parse_utc(&row.scheduled_for).unwrap_or(now);
        if !row.alerted && now - since >= s.wait_for_inputs {
            notify(config, store, Alert::Waiting, row, s, missing, now)?;
            store.mark_alerted(row.id)?;
        }
        return Ok(());
    }
    let ceremony = match s.seed {
        SeedRule::Os => None,
        SeedRule::Ceremony { wait, fallback_os } => {
            match ceremony_step(config, store, s, row, wait, fallback_os, clock)? {
                Step::Draw(c) => Some(*c),
                Step::Wait => {
                    pass.waiting.push(key(&row.job, &row.period));
                    return Ok(());
                }
                Step::Failed => {
                    pass.failed.push(key(&row.job, &row.period));
                    return Ok(());
                }
            }
        }
    };
    run_one(config, store, s, row, ceremony, clock, pass)
}

/// What the pass does besides runs: returns dropped into inbox/returns/
/// close their items first, so a unit that answered is not reminded; then
/// officer handovers, a new chief administrator, reminders and receipts.
/// Each step stands alone: one that fails is reported and the others
/// still run (mail above all).
fn follow_up(
    config: &Config,
    store: &mut Store,
    (now, clock): (DateTime<Utc>, &dyn Clock),
    pass: &mut Pass,
) {
    let mut failed = Vec::new();
    let mut step = |what: &str, r: Result<()>| {
        if let Err(e) = r {
            tracing::error!(step = what, error = %format!("{e:#}"), "a step of the pass failed; the rest goes on");
            failed.push(format!("{what}: {e:#}"));
        }
    };
    step(
        "returns",
        crate::run::returns::take_returns(config, clock).map(|taken| {
            pass.returns = taken
                .into_iter()
                .map(|t| match t {
                    crate::run::returns::Taken::Ingested(d) => d.describe(),
                    crate::run::returns::Taken::Refused { file, .. } => format!("{file} refused"),
                })
                .collect();
        }),
    );
    // A unit whose officer changed: its open items go to the new one.
    step(
        "handovers",
        crate::followup::hand_over(config, store, now).map(|n| pass.handovers = n),
    );
    // A new chief administrator: the NHIA is to be applied to.
    step(
        "chief administrator",
        crate::followup::chief_changed(config, store, now).map(|_| ()),
    );
    // What runs asked of units is chased on its deadline's schedule.
    step(
        "reminders",
        crate::followup::remind(config, store, now).map(|n| pass.reminders = n),
    );
    // Witnessed seals: the chain's new head leaves the server.
    step(
        "receipts",
        crate::receipt::send(config, store, now).map(|_| ()),
    );
    pass.failed.extend(failed);
}

/// Turns `s`'s fire times since its last ledger row (or, the first time,
/// since the daemon's first start less `max_lateness`) into ledger rows.
fn plan(
    config: &Config,
    s: &Schedule,
    store: &mut Store,
    first_start: DateTime<Utc>,
    now: DateTime<Utc>,
    pass: &mut Pass,
) -> Result<()> {
    let tz = config.timezone;
    let fires = fires_to_plan(s, &store.ledger_of(s.job.as_str())?, first_start, now, tz);
    let Some(newest) = fires.last().copied() else {
        return Ok(());
    };
    // Fire times missed in one outage are one ledger row, one alert and
    // one status line, not one per fire time.
    let mut missed: Vec<(DateTime<Utc>, String, String)> = Vec::new();
    for f in &fires {
        let period = s.period.period_for(f.with_timezone(&tz).naive_local());
        match whether_to_run(s, *f, newest, now, tz) {
            Ok(()) => {
                if store.schedule_run(
                    s.job.as_str(),
                    &period,
                    &stamp(*f),
                    RunState::Scheduled,
                    None,
                )? {
                    tracing::info!(job = s.job.as_str(), %period, "scheduled");
                    pass.scheduled.push(key(s.job.as_str(), &period));
                }
            }
            Err(why) => {
                // A period run by hand (or already in the ledger) is not missed.
                let taken = store
                    .ledger_of(s.job.as_str())?
                    .iter()
                    .any(|r| r.period == period);
                if !taken {
                    missed.push((*f, period, why));
                }
            }
        }
    }
    record_missed(config, store, s, &missed, now, pass)
}

/// The fire times of `s` not yet planned, oldest first. The anchor is the
/// last fire time the daemon planned. A run made by hand is in the ledger
/// at the moment it was made, which is no fire time: it must not hide
/// fire times the daemon has yet to plan (an old period re-run by hand in
/// January would otherwise swallow the January sample audit).
fn fires_to_plan(
    s: &Schedule,
    rows: &[LedgerRow],
    first_start: DateTime<Utc>,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Vec<DateTime<Utc>> {
    let is_fire_time = |t: DateTime<Utc>| {
        s.fires_between(t - Duration::seconds(1), t, tz)
            .last()
            .is_some_and(|f| *f == t)
    };
    let last = rows
        .iter()
        .filter_map(|r| parse_utc(&r.scheduled_for))
        .filter(|t| is_fire_time(*t))
        .max();
    let after = last.unwrap_or(first_start - s.max_lateness);
    // A fire time `after` itself was planned already (or is the anchor).
    let mut fires = s.fires_between(after, now, tz);
    if last.is_none() {
        // Before its first start the daemon owed nothing: of the fire
        // times before it, only the newest (still within max_lateness)
        // is taken on, and the older ones are not reported as missed.
        let before = fires.iter().filter(|f| **f <= first_start).count();
        fires.drain(..before.saturating_sub(1));
    }
    fires
}

/// Whether fire time `f` of `s` runs now, or why not: past
/// `max_lateness`, or passed over by `catch_up` after downtime.
fn whether_to_run(
    s: &Schedule,
    f: DateTime<Utc>,
    newest: DateTime<Utc>,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> std::result::Result<(), String> {
    let late = now - f;
    if late > s.max_lateness {
        return Err(format!(
            "due {} and {} days late, past max_lateness",
            stamp(f),
            late.num_days()
        ));
    }
    if late <= Duration::seconds(ON_TIME) {
        return Ok(());
    }
    match s.catch_up {
        CatchUp::All => Ok(()),
        CatchUp::Latest if f == newest => Ok(()),
        CatchUp::Latest => Err(format!(
            "due {} while the daemon was down; catch_up = \"latest\" runs only {}",
            stamp(f),
            s.period.period_for(newest.with_timezone(&tz).naive_local())
        )),
        CatchUp::Skip => Err(format!(
            "due {} while the daemon was down; catch_up = \"skip\"",
            stamp(f)
        )),
    }
}

/// The fire times missed in one outage, as one `missed` ledger row and
/// one alert to the admin.
fn record_missed(
    config: &Config,
    store: &mut Store,
    s: &Schedule,
    missed: &[(DateTime<Utc>, String, String)],
    now: DateTime<Utc>,
    pass: &mut Pass,
) -> Result<()> {
    let tz = config.timezone;
    let (Some(first), Some(last)) = (missed.first(), missed.last()) else {
        return Ok(());
    };
    let (period, error) = if missed.len() == 1 {
        (first.1.clone(), first.2.clone())
    } else {
        let day = |t: &DateTime<Utc>| t.with_timezone(&tz).date_naive();
        (
            format!("{}..{}", day(&first.0), day(&last.0)),
            format!(
                "{} fire times missed, {} to {} ({} to {}); the last: {}",
                missed.len(),
                stamp(first.0),
                stamp(last.0),
                first.1,
                last.1,
                last.2
            ),
        )
    };
    if store.schedule_run(
        s.job.as_str(),
        &period,
        &stamp(last.0),
        RunState::Missed,
        Some(&error),
    )? {
        tracing::warn!(job = s.job.as_str(), %period, reason = %error, "missed");
        pass.missed.push(key(s.job.as_str(), &period));
        let row = store
            .ledger_of(s.job.as_str())?
            .into_iter()
            .find(|r| r.period == period)
            .context("the row just written")?;
        notify(config, store, Alert::Missed, &row, s, vec![error], now)?;
        store.mark_alerted(row.id)?;
    }
    Ok(())
}

/// Files in the inbox now, by SHA-256; new ones are read once and
/// recorded with what they cover.
fn survey_inbox(
    config: &Config,
    store: &mut Store,
    now: DateTime<Utc>,
    pass: &mut Pass,
) -> Result<BTreeSet<String>> {
    let seen = store.inputs_seen()?;
    let mut present = BTreeSet::new();
    let files = crate::ingest::discover_inbox(config)
        .with_context(|| format!("reading the inbox {}", config.paths.inbox.display()))?;
    for (table, path, rel) in files {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let modified = meta
            .modified()
            .map(DateTime::<Utc>::from)
            .map(stamp)
            .unwrap_or_default();
        let size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
        if let Some(s) = seen
            .iter()
            .find(|s| s.path == rel && s.size == size && s.modified == modified)
        {
            present.insert(s.sha256.clone());
            continue;
        }
        // Moved into the input store under us: seen there next pass.
        let Ok((_, sha)) = crate::ingest::hash_file(&path) else {
            continue;
        };
        present.insert(sha.clone());
        if seen.iter().any(|s| s.sha256 == sha) {
            continue;
        }
        let (status, rows, span) = match table {
            None => ("not in a table's folder".to_owned(), 0, None),
            Some(t) => match crate::ingest::survey_file(config, t, &path, &rel) {
                Ok(s) => ("loaded".to_owned(), s.rows, s.span),
                Err(e) => (e.to_string(), 0, None),
            },
        };
        let fmt = |t: NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        store.record_input(&SeenInput {
            sha256: sha,
            path: rel.clone(),
            table: table.map(|t| t.as_str().to_owned()),
            size,
            modified,
            first_seen: stamp(now),
            status,
            rows: i64::try_from(rows).unwrap_or(i64::MAX),
            first_at: span.map(|s| fmt(s.0)),
            last_at: span.map(|s| fmt(s.1)),
        })?;
        tracing::info!(file = %rel, rows, "new input");
        pass.new_inputs += 1;
    }
    Ok(present)
}

/// What the inbox still lacks for `job`'s `period`; empty when it may run.
pub fn missing_inputs(
    config: &Config,
    job: Job,
    period: &str,
    seen: &[SeenInput],
    present: &BTreeSet<String>,
) -> Vec<String> {
    let awaited = job.awaits();
    let mut out = Vec::new();
    let (Some(end), Some(last_day)) = (
        schedule::period_end(period),
        schedule::period_last_day(period),
    ) else {
        return out;
    };
    let here = |t: Table| {
        seen.iter()
            .filter(move |s| present.contains(&s.sha256) && s.status == "loaded")
            .filter(move |s| s.table.as_deref() == Some(t.as_str()))
    };
    if awaited.query_logs {
        let reach = here(Table::QueryLog)
            .filter_map(|s| s.last_at.as_deref())
            .max()
            .map(str::to_owned);
        let ok = reach
            .as_deref()
            .and_then(|r| NaiveDateTime::parse_from_str(r, "%Y-%m-%dT%H:%M:%S").ok())
            .is_some_and(|r| r.date() >= last_day);
        if !ok {
            out.push(format!(
                "query logs (query_logs/) reaching {last_day}; the latest query seen is {}",
                reach.unwrap_or_else(|| "none".into())
            ));
        }
    }
    if awaited.calendar && config.rules.holidays.configured {
        let known = config.rules.holidays.years();
        let first = schedule::period_end(period)
            .and(period.parse::<crate::period::Period>().ok())
            .map(|p| p.start.date().year());
        for y in first.unwrap_or(last_day.year())..=last_day.year() {
            if !known.contains(&y) {
                out.push(format!(
                    "a holidays calendar for {y} (rules.holidays lists no holiday in {y}; add that year's 行政院人事行政總處 calendar)"
                ));
            }
        }
    }
    if awaited.roster_and_hr {
        let end_utc = crate::clock::local_to_utc(config.timezone, end);
        for (t, what) in [
            (Table::Roster, "account roster"),
            (Table::Hr, "HR status list"),
        ] {
            // When it came: the day its name carries (as the runs date
            // it) or its modification time, whichever is later. A restore
            // from a backup sets old file times on exports whose names
            // say they were made after the period; a file copied in
            // later than its name's day came then. This only decides
            // when to run: which roster a run uses, and its date, come
            // from the exports' contents (`ingest::snapshot`).
            let exported = |s: &crate::store::SeenInput| {
                let name = s.path.rsplit('/').next().unwrap_or(&s.path);
                let stem = name.rsplit_once('.').map_or(name, |(a, _)| a);
                let named = crate::ingest::snapshot::latest_date_in(stem).map(|day| {
                    crate::clock::local_to_utc(
                        config.timezone,
                        day.and_time(chrono::NaiveTime::MIN),
                    )
                });
                named.max(parse_utc(&s.modified))
            };
            let newest = here(t).filter_map(exported).max();
            if newest.is_none_or(|m| m < end_utc) {
                out.push(format!(
                    "an {what} ({}/) exported after the period ended ({end}); newest: {}",
                    t.inbox_dir(),
                    newest.map_or_else(|| "none".into(), stamp)
                ));
            }
        }
    }
    out
}

/// Runs one due ledger row. The row is `running` (committed) while the
/// job works; a crash leaves it so, for [`resume_interrupted`].
fn run_one(
    config: &Config,
    store: &mut Store,
    s: &Schedule,
    row: &LedgerRow,
    ceremony: Option<Ceremony>,
    clock: &dyn Clock,
    pass: &mut Pass,
) -> Result<()> {
    let now = clock.now();
    store.set_run_state(row.id, RunState::Running, &stamp(now), None, None)?;
    tracing::info!(job = %row.job, period = %row.period, "running");
    let beat = KeepAlive::start(config, row.id, clock);
    let result = execute(config, s.job, row, ceremony, clock);
    drop(beat);
    let k = key(&row.job, &row.period);
    let now = clock.now();
    match result {
        Ok(done) => {
            let withheld: Vec<String> = done
                .iter()
                .flat_map(|o| o.withheld_checks())
                .map(|n| format!("{}: {} ({})", n.codes.join(", "), n.detail, n.input))
                .collect();
            let dir = done.map(|o| o.dir.display().to_string());
            store.set_run_state(
                row.id,
                RunState::Generated,
                &stamp(now),
                dir.as_deref(),
                None,
            )?;
            if !withheld.is_empty() {
                // The officers' mail says so at its top; the admin, who
                // can fix the inputs, is told too.
                notify(config, store, Alert::Withheld, row, s, withheld, now)?;
            }
            pass.ran.push(k);
        }
        Err(e) => {
            let e = format!("{e:#}");
            tracing::error!(job = %row.job, period = %row.period, error = %e, "run failed");
            store.set_run_state(row.id, RunState::Failed, &stamp(now), None, Some(&e))?;
            notify(config, store, Alert::Failed, row, s, vec![e], now)?;
            pass.failed.push(k);
        }
    }
    Ok(())
}

/// Keeps a running row's `heartbeat_at` fresh from a thread, until dropped.
struct KeepAlive {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeepAlive {
    fn start(config: &Config, id: i64, clock: &dyn Clock) -> KeepAlive {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let dir = config.paths.state.clone();
        let started = clock.now();
        let t0 = std::time::Instant::now();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(std::time::Duration::from_secs(30))
            {
                let at = started + Duration::from_std(t0.elapsed()).unwrap_or_default();
                if let Ok(mut s) = Store::open(&dir) {
                    let _ = s.run_heartbeat(id, &stamp(at));
                }
            }
        });
        KeepAlive {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Does the job of `row` through the one dispatcher; the run, for jobs
/// that make one.
fn execute(
    config: &Config,
    job: Job,
    row: &LedgerRow,
    ceremony: Option<Ceremony>,
    clock: &dyn Clock,
) -> Result<Option<crate::run::RunOutcome>> {
    let mut request = crate::run::Request::new(job);
    request.ceremony = ceremony;
    request.ledger = crate::run::LedgerEntry::Row(row.id);
    match job.span() {
        Span::Period => request.period = Some(row.period.parse()?),
        Span::AsOf => request.as_of = Some(as_of(config, row)),
        Span::None => request.label = Some(row.period.clone()),
    }
    // A draw the daemon made for a run that was interrupted before it
    // finished is followed by one more (numbered, announced); otherwise a
    // period already drawn is never drawn again by the daemon.
    request.redraw = row
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with(INTERRUPTED))
        || last_draw_unfinished(config, job, &row.period)?;
    Ok(crate::run::execute(config, request, clock)?.into_run())
}

/// Where a ceremony row stands after [`ceremony_step`].
enum Step {
    /// The seed is in: draw with it.
    Draw(Box<Ceremony>),
    /// Committed, waiting for the seed (the row says how to give it).
    Wait,
    /// The commitment could not be made; the admin was told.
    Failed,
}

/// One pass over a due row whose schedule runs a seed ceremony: commit
/// (freeze and mail) the first time, then take a seed dropped in the
/// inbox, then after the wait tell the admin (once) or fall back to the
/// OS's seed if the schedule allows it.
fn ceremony_step(
    config: &Config,
    store: &mut Store,
    s: &Schedule,
    row: &LedgerRow,
    wait: Duration,
    fallback_os: bool,
    clock: &dyn Clock,
) -> Result<Step> {
    use crate::run::ceremony;
    let now = clock.now();
    let period: crate::period::Period = row.period.parse()?;
    let key = crate::run::draw_key(s.job, &period.id);
    let c = match store.latest_ceremony(&key)? {
        Some(c) => c,
        None => match ceremony::commit(
            config,
            s.job,
            &period,
            (wait.num_days(), fallback_os),
            clock,
        ) {
            Ok(c) => {
                tracing::info!(ceremony = %key, committed_at = %c.committed_at, "committed; waiting for the seed");
                c
            }
            Err(e) => {
                let e = format!("committing what {key} draws from for the seed ceremony: {e:#}");
                tracing::error!(job = %row.job, period = %row.period, error = %e, "ceremony failed");
                store.set_run_state(row.id, RunState::Failed, &stamp(now), None, Some(&e))?;
                notify(config, store, Alert::Failed, row, s, vec![e], now)?;
                return Ok(Step::Failed);
            }
        },
    };
    if c.seed.is_some() {
        return Ok(Step::Draw(Box::new(c)));
    }
    // Only a ceremony still without its seed looks in the inbox.
    let c = match ceremony::take_inbox_seed(config, &c, clock)? {
        Some(Ok(given)) => return Ok(Step::Draw(Box::new(given))),
        Some(Err(why)) => {
            notify(config, store, Alert::SeedRefused, row, s, vec![why], now)?;
            c
        }
        None => c,
    };
    let committed = c
        .committed_local()
        .and_then(|t| t.and_local_timezone(config.timezone).earliest())
        .map_or(now, |t| t.with_timezone(&Utc));
    if now - committed >= wait {
        if fallback_os {
            let c = ceremony::fall_back(config, &key, clock)?;
            tracing::warn!(ceremony = %key, "no seed within seed_wait: drawing the OS's seed, said in every report");
            return Ok(Step::Draw(Box::new(c)));
        }
        if !c.waited_alert {
            notify(
                config,
                store,
                Alert::SeedWaiting,
                row,
                s,
                vec![format!(
                    "{} 之承諾已於 {} 寄出，逾 {} 天未登錄種子：{}",
                    key,
                    c.committed_at,
                    wait.num_days(),
                    ceremony::seed_command(s.job, &period.id, "<種子數字>")
                )],
                now,
            )?;
            store.mark_ceremony_alerted(c.id)?;
        }
    }
    let note = format!(
        "commitment mailed at {} to {} recipients; waiting for the seed: {}, or the digits in inbox/{}/{}",
        c.committed_at,
        c.messages.len(),
        ceremony::seed_command(s.job, &period.id, "DIGITS"),
        ceremony::INBOX_SEEDS,
        ceremony::seed_file_name(&key)
    );
    store.set_run_state(
        row.id,
        RunState::WaitingForSeed,
        &stamp(now),
        None,
        Some(&note),
    )?;
    Ok(Step::Wait)
}

/// Whether the period's last draw (a sample or external audit's) left no
/// sealed run: the run failed after drawing (a write fault), so the retry
/// draws again, numbered and announced like any second draw.
fn last_draw_unfinished(config: &Config, job: Job, period: &str) -> Result<bool> {
    if !job.draws() {
        return Ok(false);
    }
    let key = crate::run::draw_key(job, period);
    let store = Store::open(&config.paths.state)?;
    Ok(store
        .draws(&key)?
        .last()
        .is_some_and(|d| !Path::new(&d.run_dir).join(crate::archive::SEAL).exists()))
}

/// The day an account review of the ledger is as of: `as-of-DAY` for one
/// run by hand, else the day the row was due.
fn review_day(config: &Config, row: &LedgerRow) -> Option<NaiveDate> {
    match RunPeriod::parse(&row.period).and_then(|p| p.as_of()) {
        Some(d) => Some(d),
        None => Job::parse(&row.job)
            .filter(|j| j.reviews_accounts())
            .map(|_| as_of(config, row)),
    }
}

/// An account review already made that does `row`'s work: one as of a day
/// after `row`'s period ended and no later than `row` is due (the January
/// review done that morning is the password check of the fourth quarter,
/// and one run by hand on 6 January is the yearly review). Returns what
/// did it and its run folder.
fn review_done(config: &Config, ledger: &[LedgerRow], row: &LedgerRow) -> Option<(String, String)> {
    let due = as_of(config, row);
    let after = schedule::period_end(&row.period)?.date();
    ledger
        .iter()
        .filter(|r| r.id != row.id && !r.state.is_open())
        .filter(|r| Job::parse(&r.job).is_some_and(|j| j.reviews_accounts()))
        .filter_map(|r| Some((r, review_day(config, r)?, r.run_dir.clone()?)))
        .filter(|(_, d, _)| *d >= after && *d <= due)
        .max_by_key(|(r, d, _)| (*d, r.id))
        .map(|(r, d, dir)| (format!("{} {} (as of {d})", r.job, r.period), dir))
}

/// The account review's as-of date: the day it was due (local).
fn as_of(config: &Config, row: &LedgerRow) -> chrono::NaiveDate {
    parse_utc(&row.scheduled_for)
        .map(|t| t.with_timezone(&config.timezone).date_naive())
        .unwrap_or_default()
}

/// What the run folders of `row`'s job cover (none for a job that makes none).
fn run_period(config: &Config, job: Job, row: &LedgerRow) -> Option<RunPeriod> {
    match job.span() {
        Span::AsOf => Some(RunPeriod::AsOf(as_of(config, row))),
        Span::Period => Some(RunPeriod::Period(row.period.clone())),
        Span::None => None,
    }
}

/// The outbox's `run` key of a ledger row's mail.
fn mail_key(row: &LedgerRow) -> String {
    row.run_dir
        .clone()
        .unwrap_or_else(|| format!("ledger:{}:{}", row.job, row.period))
}

/// Rows left `running` by a process that died. A run folder it started
/// that is sealed is adopted; one that is not sealed but whose mail was
/// queued (queueing is the last step before sealing) is sealed and
/// adopted; otherwise the row runs again. Never twice.
fn resume_interrupted(
    config: &Config,
    store: &mut Store,
    now: DateTime<Utc>,
    pass: &mut Pass,
) -> Result<()> {
    for row in store
        .ledger()?
        .into_iter()
        .filter(|r| r.state == RunState::Running)
    {
        let Some(job) = Job::parse(&row.job) else {
            continue;
        };
        let started = row
            .started_at
            .as_deref()
            .and_then(parse_utc)
            .map(|t| {
                t.with_timezone(&config.timezone)
                    .naive_local()
                    .format("%Y%m%dT%H%M%S")
                    .to_string()
            })
            .unwrap_or_default();
        let outbox = store.outbox()?;
        let mut adopted = None;
        if let Some(period) = run_period(config, job, &row) {
            let runs = RunFolder::runs(&config.paths.archive, &period, job);
            for run in runs.iter().filter(|r| r.id >= started) {
                let d = &run.dir;
                let key = d.display().to_string();
                let sealed = d.join(crate::archive::SEAL).exists();
                if !sealed && outbox.iter().any(|m| m.run == key) {
                    crate::archive::seal_chained(d, store, "seal", &stamp(now))?;
                }
                if sealed || outbox.iter().any(|m| m.run == key) {
                    adopted = Some(key);
                }
            }
        } else if outbox.iter().any(|m| m.run == mail_key(&row)) {
            adopted = Some(String::new());
        }
        let k = key(&row.job, &row.period);
        match adopted {
            Some(dir) => {
                tracing::warn!(run = %k, "interrupted after it finished; adopted");
                let dir = (!dir.is_empty()).then_some(dir);
                store.set_run_state(
                    row.id,
                    RunState::Generated,
                    &stamp(now),
                    dir.as_deref(),
                    None,
                )?;
            }
            None => {
                tracing::warn!(run = %k, "interrupted; runs again");
                store.set_run_state(
                    row.id,
                    RunState::Scheduled,
                    &stamp(now),
                    None,
                    Some(&format!("{INTERRUPTED} (the process stopped); run again")),
                )?;
            }
        }
        pass.resumed.push(k);
    }
    Ok(())
}

/// `generated` rows whose every message was delivered become `mailed`.
fn mark_mailed(store: &mut Store, now: DateTime<Utc>) -> Result<()> {
    let outbox = store.outbox()?;
    for row in store
        .ledger()?
        .into_iter()
        .filter(|r| r.state == RunState::Generated)
    {
        let k = mail_key(&row);
        if outbox
            .iter()
            .filter(|m| m.run == k)
            .all(|m| m.state == MailState::Sent)
        {
            // A note (satisfied by another run, run by hand) stays.
            store.set_run_state(
                row.id,
                RunState::Mailed,
                &stamp(now),
                None,
                row.error.as_deref(),
            )?;
        }
    }
    Ok(())
}

/// In December, tells the admin once when the holidays calendar has no
/// day of next year: the deadlines runs state would then skip weekends
/// only, and next year's off-hours check would wait for the calendar.
/// (Without a calendar at all, `check-config` says so.)
fn calendar_notice(config: &Config, store: &mut Store, now: DateTime<Utc>) -> Result<()> {
    use chrono::Datelike;
    let h = &config.rules.holidays;
    let local = now.with_timezone(&config.timezone);
    let next = local.year() + 1;
    if !h.configured || local.month() != 12 || h.years().contains(&next) {
        return Ok(());
    }
    let body = config.templates.render(
        "daemon.txt.j2",
        &serde_json::json!({
            "what": "calendar",
            "year": next,
            "details": [format!("rules.holidays 所列行事曆無 {next} 年之放假日")],
        }),
    )?;
    let m = crate::mail::plain(
        config,
        &format!("calendar:{next}"),
        "calendar",
        &config.mail.admin,
        &format!("【健保WebIR稽核】{next} 年行事曆尚未匯入"),
        body,
        now,
    )?;
    store.queue(&[m], &stamp(now))?;
    Ok(())
}

/// What the admin is told about a ledger row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alert {
    /// Fire times passed and will not run.
    Missed,
    /// The inbox has not covered the period for `wait_for_inputs`.
    Waiting,
    /// The run was made, but checks were withheld for their inputs.
    Withheld,
    Failed,
    /// A ceremony's commitment went out, but no seed came within its wait.
    SeedWaiting,
    /// A seed file in the inbox was refused.
    SeedRefused,
}

impl Alert {
    /// The template's `what`.
    fn name(self) -> &'static str {
        match self {
            Alert::Missed => "missed",
            Alert::Waiting => "waiting",
            Alert::Withheld => "withheld",
            Alert::Failed => "failed",
            Alert::SeedWaiting => "seed-waiting",
            Alert::SeedRefused => "seed-refused",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Alert::Missed => "排程逾期未執行",
            Alert::Waiting => "等待匯入資料",
            Alert::Withheld => "部分檢核未執行",
            Alert::Failed => "排程工作失敗",
            Alert::SeedWaiting => "等候抽樣種子逾時",
            Alert::SeedRefused => "抽樣種子檔不予登錄",
        }
    }
}

/// The outbox key of an alert: a failure is told once per distinct error
/// (a retry that fails the same way says nothing new), the others once per
/// attempt of the row.
fn alert_key(alert: Alert, row: &LedgerRow, details: &[String]) -> String {
    use sha2::{Digest, Sha256};
    match alert {
        Alert::Failed | Alert::SeedRefused => format!(
            "{}:{}",
            alert.name(),
            &hex::encode(Sha256::digest(details.join("\n").as_bytes()))[..16]
        ),
        _ => format!("{}:{}", alert.name(), row.attempts),
    }
}

/// Queues a message to `mail.admin` about a ledger row (once per row and
/// kind: the outbox key is the row's).
fn notify(
    config: &Config,
    store: &mut Store,
    alert: Alert,
    row: &LedgerRow,
    s: &Schedule,
    details: Vec<String>,
    now: DateTime<Utc>,
) -> Result<()> {
    let (what, title) = (alert.name(), alert.title());
    let human = |d: Duration| format!("{} 天", d.num_days());
    let body = config.templates.render(
        "daemon.txt.j2",
        &serde_json::json!({
            "what": what,
            "job": row.job,
            "period": row.period,
            "scheduled_for": row.scheduled_for,
            "details": details,
            "max_lateness": human(s.max_lateness),
            "wait_for_inputs": human(s.wait_for_inputs),
        }),
    )?;
    let m = crate::mail::plain(
        config,
        &format!("ledger-alert:{}:{}", row.job, row.period),
        &alert_key(alert, row, &details),
        &config.mail.admin,
        &format!("【健保WebIR稽核】{title}：{} {}", row.job, row.period),
        body,
        now,
    )?;
    store.queue(&[m], &stamp(now))?;
    Ok(())
}

/// How often the daemon wakes besides the schedules' own times: the inbox
/// and the outbox need a look now and then.
const HOUSEKEEPING: std::time::Duration = std::time::Duration::from_secs(300);

/// What the daemon runs on: the config and schedules as last loaded, and
/// where to load them from again.
#[derive(Debug, Clone)]
pub struct Setup {
    pub path: PathBuf,
    pub config: Arc<Config>,
    pub schedules: Arc<Vec<Schedule>>,
    /// The duties the schedules suspend, each with its reason.
    pub suspended: Arc<Vec<schedule::Suspension>>,
    /// SHA-256 over the config file and every schedule file, to tell a
    /// change from a reload of the same thing.
    pub fingerprint: String,
}

impl Setup {
    /// Loads and validates the config at `path` and its schedules; every
    /// duty must be scheduled or suspended with a reason.
    pub fn load(path: &Path) -> Result<Setup> {
        let config = crate::config::load(path)?;
        let schedules = schedule::load(&config.paths.schedules, config.timezone)?;
        let suspended = schedule::suspended(&config.paths.schedules, &schedules)?;
        schedule::require_duties(&schedules, &suspended, &config.paths.schedules)?;
        let fingerprint = fingerprint(path, &config.paths.schedules);
        Ok(Setup {
            path: path.to_owned(),
            config: Arc::new(config),
            schedules: Arc::new(schedules),
            suspended: Arc::new(suspended),
            fingerprint,
        })
    }

    /// Logs each suspended duty: a duty of the regulation this daemon does
    /// not run is never silent.
    fn warn_suspended(&self) {
        for s in self.suspended.iter() {
            tracing::warn!(job = %s.job, reason = %s.reason, file = %s.file.display(), "duty suspended: not run by this daemon");
        }
    }
}

/// SHA-256 over the bytes of the config file and of the schedule files
/// (sorted by name); files that cannot be read count as empty.
fn fingerprint(config: &Path, schedules: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(std::fs::read(config).unwrap_or_default());
    let mut files: Vec<PathBuf> = std::fs::read_dir(schedules)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        h.update(f.display().to_string().as_bytes());
        h.update(std::fs::read(&f).unwrap_or_default());
    }
    hex::encode(h.finalize())
}

/// Reloads the setup when its files changed. A new setup that does not
/// validate is refused: the old one stays, and the admin is told once per
/// distinct problem (the alert's key is the problem's hash).
fn reload(current: &Setup, clock: &dyn Clock) -> Option<Setup> {
    let now_print = fingerprint(&current.path, &current.config.paths.schedules);
    if now_print == current.fingerprint {
        return None;
    }
    match Setup::load(&current.path) {
        Ok(new) => {
            tracing::info!(config = %current.path.display(), "configuration reloaded");
            new.warn_suspended();
            Some(new)
        }
        Err(e) => {
            let problem = format!("{e:#}");
            tracing::error!(error = %problem, "the changed configuration is invalid; the previous one stays in force");
            if let Err(e) = alert_invalid_config(&current.config, &problem, clock) {
                tracing::error!(error = %format!("{e:#}"), "could not queue the alert");
            }
            None
        }
    }
}

fn alert_invalid_config(config: &Config, problem: &str, clock: &dyn Clock) -> Result<()> {
    use sha2::{Digest, Sha256};
    let key = hex::encode(Sha256::digest(problem.as_bytes()));
    let body = config.templates.render(
        "daemon.txt.j2",
        &serde_json::json!({ "what": "config-invalid", "details": [problem] }),
    )?;
    let m = crate::mail::plain(
        config,
        &format!("config-invalid:{key}"),
        "config-invalid",
        &config.mail.admin,
        "【健保WebIR稽核】設定檔無效，沿用先前設定",
        body,
        clock.now(),
    )?;
    let mut store = Store::open(&config.paths.state)?;
    store.queue(&[m], &stamp(clock.now()))?;
    Ok(())
}

/// Runs the daemon until SIGTERM or SIGINT (or, with `once`, one pass).
/// The config and schedules are read again at each wake-up and on SIGHUP.
pub fn serve(setup: Setup, clock: Arc<dyn Clock>, once: bool) -> Result<()> {
    let _lock = crate::run::operator::DaemonLock::acquire(&setup.config.paths.state)?;
    setup.warn_suspended();
    if once {
        let pass = wake(&setup.config, &setup.schedules, clock.as_ref())?;
        tracing::info!(?pass, "pass done");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(run_loop(setup, clock));
    // A pass still working after the stop signal is not waited for.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

/// Why the daemon woke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Start,
    Schedule(Job),
    Housekeeping,
    Hangup,
}

/// The scheduler's jobs for `schedules`: one per schedule, plus the
/// housekeeping tick. Returns their ids, to remove them on a reload.
async fn add_jobs(
    scheduler: &tokio_cron_scheduler::JobScheduler,
    setup: &Setup,
    tx: &tokio::sync::mpsc::Sender<Wake>,
) -> Result<Vec<uuid::Uuid>> {
    use tokio_cron_scheduler::Job as CronJob;
    let mut ids = Vec::new();
    for s in setup.schedules.iter() {
        let tx = tx.clone();
        let kind = s.job;
        let job =
            CronJob::new_async_tz(s.cron_text.as_str(), setup.config.timezone, move |_, _| {
                let tx = tx.clone();
                Box::pin(async move {
                    let _ = tx.try_send(Wake::Schedule(kind));
                })
            })
            .with_context(|| format!("scheduling {} ({})", kind.as_str(), s.cron_text))?;
        ids.push(scheduler.add(job).await.context("the scheduler")?);
    }
    Ok(ids)
}

async fn run_loop(mut setup: Setup, clock: Arc<dyn Clock>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    use tokio_cron_scheduler::{Job as CronJob, JobScheduler};
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Wake>(16);
    let scheduler = JobScheduler::new().await.context("the scheduler")?;
    let mut ids = add_jobs(&scheduler, &setup, &tx).await?;
    {
        let tx = tx.clone();
        let job = CronJob::new_repeated_async(HOUSEKEEPING, move |_, _| {
            let tx = tx.clone();
            Box::pin(async move {
                let _ = tx.try_send(Wake::Housekeeping);
            })
        })
        .context("scheduling housekeeping")?;
        scheduler.add(job).await.context("the scheduler")?;
    }
    scheduler.start().await.context("starting the scheduler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    tracing::info!(
        state = %setup.config.paths.state.display(),
        schedules = setup.schedules.len(),
        "daemon started"
    );
    let _ = tx.try_send(Wake::Start);
    loop {
        let why = tokio::select! {
            Some(why) = rx.recv() => why,
            _ = hup.recv() => Wake::Hangup,
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        // Wake-ups that queued up while a pass ran are one pass.
        while rx.try_recv().is_ok() {}
        tracing::info!(?why, "wake-up");
        let reloaded = {
            let (current, k) = (setup.clone(), clock.clone());
            tokio::task::spawn_blocking(move || reload(&current, k.as_ref()))
                .await
                .unwrap_or(None)
        };
        if let Some(new) = reloaded {
            for id in ids.drain(..) {
                let _ = scheduler.remove(&id).await;
            }
            ids = add_jobs(&scheduler, &new, &tx).await?;
            setup = new;
        }
        let (c, s, k) = (setup.config.clone(), setup.schedules.clone(), clock.clone());
        let mut pass = tokio::task::spawn_blocking(move || wake(&c, &s, k.as_ref()));
        tokio::select! {
            r = &mut pass => log_pass(r),
            _ = term.recv() => { finish_or_leave(pass).await; break; }
            _ = int.recv() => { finish_or_leave(pass).await; break; }
        }
    }
    tracing::info!("stopping");
    let mut scheduler = scheduler;
    let _ = scheduler.shutdown().await;
    Ok(())
}

fn log_pass(r: Result<Result<Pass>, tokio::task::JoinError>) {
    match r {
        Ok(Ok(pass)) => tracing::info!(?pass, "pass done"),
        Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "pass failed"),
        Err(e) => tracing::error!(error = %e, "pass panicked"),
    }
}

/// On a stop signal during a pass: give it 8 seconds to finish, then go.
/// Whatever it was doing is checkpointed in the ledger (a `running` row is
/// resumed at the next start) and the outbox (`sending` becomes `unknown`).
async fn finish_or_leave(pass: tokio::task::JoinHandle<Result<Pass>>) {
    match tokio::time::timeout(std::time::Duration::from_secs(8), pass).await {
        Ok(r) => log_pass(r),
        Err(_) => tracing::warn!("the pass is still working; leaving it to resume at next start"),
    }
}
