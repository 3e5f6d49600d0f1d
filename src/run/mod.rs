//! The run layer: one dispatcher ([`execute`]) that the command line, the
//! demo and the daemon all call, and the skeleton every run shares
//! (folder, ingest once, checks, record, render, queue mail, seal). The
//! stages it drives (ingest, checks, sampling, report, mail) never import
//! it. Time comes from the clock it is given.

use anyhow::{Context, Result};
use chrono::NaiveDate;

mod annual;
pub mod ceremony;
pub mod demo;
mod finish;
pub mod operator;
mod retention;
pub mod returns;
mod sample;
mod skeleton;

pub use annual::ExternalSelection;
use annual::{external_audit, internal_audit};
use finish::finish_run;
pub use retention::Retention;
use retention::retention;
use sample::sample_audit;
pub(crate) use sample::{DrawClaim, freeze_counted, seed_timing};
pub use sample::{FrozenPopulation, SampleOutcome, draw_key, freeze, freeze_inputs, seed_digest};
use skeleton::{
    Extras, RunSpec, complete, local_text, period_folder, review_or_check, take_input_frames,
};
pub use skeleton::{RunOutcome, input_frames};
pub(crate) use skeleton::{ingest_inbox, run_checks};

use crate::archive::{self};
use crate::checks::Scope;
use crate::clock::Clock;
use crate::config::Config;
use crate::ingest::Ingested;
use crate::job::{Job, Span};
use crate::mail;
use crate::period::Period;
use crate::sampling::spec::Seed;
use crate::store::Store;

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
    /// How the run enters the daemon's ledger, in the transaction that
    /// seals it (default: as a run by hand).
    pub ledger: LedgerEntry,
}

/// How a run enters the daemon's ledger: written with its seal and mail,
/// so no crash leaves one without the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerEntry {
    /// The daemon's row (its id) becomes `generated`.
    Row(i64),
    /// A run by hand: a duty's period is recorded so the daemon adopts it
    /// instead of running it again.
    ByHand,
    /// Not recorded: the demo's runs show the duties, they do not do them.
    Unrecorded,
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
            ledger: LedgerEntry::ByHand,
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

    /// The run folder's outcome, owned.
    pub fn into_run(self) -> Option<RunOutcome> {
        match self {
            Done::Run(r) | Done::External(r, _) => Some(r),
            Done::Sample(s) => Some(s.run),
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
pub(super) fn scope(job: Job) -> Scope {
    if job.reviews_accounts() || job == Job::ExternalAudit {
        Scope::Accounts
    } else {
        Scope::Queries
    }
}

/// Does `request`. A run is recorded in the daemon's ledger with its seal
/// ([`finish_run`]), whoever started it, so the daemon adopts a period run
/// by hand instead of running it again.
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
    dispatch(config, request, clock)
}

/// The one place a job is mapped to what does it.
fn dispatch(config: &Config, request: Request, clock: &dyn Clock) -> Result<Done> {
    let job = request.job;
    let (period, row) = (request.period, request.ledger);
    let needed = || {
        period
            .clone()
            .context("checked above: the job has a period")
    };
    Ok(match job {
        Job::AccountReview | Job::PasswordCheck => Done::Run(review_or_check(
            config,
            (job, row),
            None,
            request.as_of,
            clock,
        )?),
        Job::QueryCheck => Done::Run(review_or_check(config, (job, row), period, None, clock)?),
        Job::SampleAudit => Done::Sample(Box::new(sample_audit(
            config,
            &needed()?,
            request.seed,
            request.redraw,
            (request.ceremony, row),
            clock,
        )?)),
        Job::InternalAudit => Done::Run(internal_audit(config, &needed()?, row, clock)?),
        Job::ExternalAudit => {
            let (run, selection) = external_audit(
                config,
                &needed()?,
                (request.seed, request.ceremony),
                (request.redraw, row),
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
        &format!("ledger:{}:{week}", Job::Heartbeat.as_str()),
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

/// The tunable that has glibc's malloc ask the kernel for transparent huge
/// pages on the memory it maps (glibc 2.35 and later; older ones ignore it).
/// With 4 KiB pages, every fresh column of ten million rows is twenty
/// thousand page faults; a query check of ten million rows spent half its
/// system time on them (ARCHITECTURE.md, "Scale").
pub const MALLOC_TUNABLES: &str = "glibc.malloc.hugetlb=1";

/// Runs this program again with `GLIBC_TUNABLES` set to
/// [`MALLOC_TUNABLES`]: glibc reads its tunables only when a process
/// starts, so this is the first thing `main` does. The same process (its
/// pid, streams and name) goes on as the program's own file, run by its
/// path. It does nothing when `GLIBC_TUNABLES` is already set (by the
/// service unit, by an operator) or when this process is itself the
/// second start (a loader that drops the variable, as for a set-user-ID
/// program, would otherwise start it again and again); if the program
/// cannot be run again the run goes on as it is: the setting changes
/// speed, never results.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn start_with_huge_pages() {
    use std::os::unix::process::CommandExt;
    const VAR: &str = "GLIBC_TUNABLES";
    const STARTED_AGAIN: &str = "WEBIR_AUDIT_STARTED_AGAIN";
    if std::env::var_os(VAR).is_some() || std::env::var_os(STARTED_AGAIN).is_some() {
        return;
    }
    let mut args = std::env::args_os();
    let Some(arg0) = args.next() else { return };
    // The file's own path, not /proc/self/exe: the kernel names the
    // process after the path it runs (`ps`, journald, the audit log).
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let _unreachable_unless_failed = std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env(VAR, MALLOC_TUNABLES)
        .env(STARTED_AGAIN, "1")
        .exec();
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn start_with_huge_pages() {}

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
