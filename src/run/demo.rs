//! The demo: the README's main command. A fresh sample city (or a given
//! config) run through every duty in order by the demo's clock, each draw
//! by the seed ceremony the daemon runs, its mail sent by the file
//! transport. Progress is told to the caller as [`DemoStep`]s.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::ceremony;
use super::operator::send_due_mail;
use super::{LedgerEntry, Request, execute};
use crate::clock::{Clock, Later};
use crate::config::{Config, Transport};
use crate::job::Job;
use crate::mail::outbox::Drained;
use crate::period::Period;
use crate::store::{Ceremony, SeedVia};

/// The seed the demo's draws use, so its samples are the same every time.
pub const DEMO_SEED: &str = "20260705080000000000";
/// Who gives the demo's seed, as its record says.
pub const DEMO_SEED_BY: &str = "webir-audit demo: the fixed public value 20260705080000000000 (README), standing for the public draw after the commitment";

/// One step of the demo, as it happens.
#[derive(Debug)]
pub enum DemoStep {
    /// A run made its folder.
    Run(PathBuf),
    /// A ceremony was committed and its seed given.
    Ceremony(Box<Ceremony>),
    /// The due mail was sent.
    Mailed(Drained),
}

/// Where the demo left its mail and the exports it read.
#[derive(Debug)]
pub struct DemoEnd {
    /// The file transport's folder of `.eml`.
    pub mail_dir: PathBuf,
    /// Where the exports the runs read went, or `None` if the inbox was
    /// left as it was (a city of one's own).
    pub inputs_moved_to: Option<PathBuf>,
    pub inbox: PathBuf,
}

/// Runs the demo into `dir` (empty, for the generated sample city) or on
/// `config_file`'s city, telling `step` each step as it is done.
pub fn demo(
    config_file: Option<&Path>,
    dir: &Path,
    clock: &dyn Clock,
    step: &mut dyn FnMut(DemoStep) -> Result<()>,
) -> Result<DemoEnd> {
    let config = demo_config(config_file, dir)?;
    let h1: Period = "2026H1".parse()?;
    let year: Period = "2026".parse()?;
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 7, 2);
    let account_review = Request {
        as_of,
        ..Request::new(Job::AccountReview)
    };
    demo_run(&config, account_review, clock, step)?;
    let minute = |m: i64| Later {
        base: clock,
        by: chrono::Duration::minutes(m),
    };
    // Each draw by the ceremony the daemon runs (docs/sampling.md § 5):
    // what it draws from is frozen and the commitment mailed, then the
    // seed is given, a minute later, and only then drawn. The seed is
    // the demo's fixed public value, standing for the lottery draw a
    // real ceremony waits for. The fixed seed may draw the city again:
    // numbered and announced like any other draw.
    let sample = demo_ceremony(
        &config,
        (Job::SampleAudit, &h1),
        (&minute(0), &minute(1)),
        step,
    )?;
    let draw = |job, period: &Period, ceremony| Request {
        period: Some(period.clone()),
        ceremony: Some(ceremony),
        redraw: true,
        ..Request::new(job)
    };
    demo_run(
        &config,
        draw(Job::SampleAudit, &h1, sample),
        &minute(1),
        step,
    )?;
    let internal = Request {
        period: Some(year.clone()),
        ..Request::new(Job::InternalAudit)
    };
    demo_run(&config, internal, &minute(1), step)?;
    let external = demo_ceremony(
        &config,
        (Job::ExternalAudit, &year),
        (&minute(1), &minute(2)),
        step,
    )?;
    demo_run(
        &config,
        draw(Job::ExternalAudit, &year, external),
        &minute(2),
        step,
    )?;
    step(DemoStep::Mailed(send_due_mail(&config, &minute(2))?))?;
    Ok(DemoEnd {
        mail_dir: crate::mail::outbox::file_transport_dir(&config),
        inputs_moved_to: config.paths.inputs.clone(),
        inbox: config.paths.inbox.clone(),
    })
}

/// One run of the demo, and where its folder is.
fn demo_run(
    config: &Config,
    request: Request,
    clock: &dyn Clock,
    step: &mut dyn FnMut(DemoStep) -> Result<()>,
) -> Result<()> {
    // The demo shows the duties; the daemon's ledger does not take its
    // runs for them.
    let request = Request {
        ledger: LedgerEntry::Unrecorded,
        ..request
    };
    if let Some(r) = execute(config, request, clock)?.run() {
        step(DemoStep::Run(r.dir.clone()))?;
    }
    Ok(())
}

/// The demo's config: the given one, or a fresh sample city written into
/// the empty `dir`. Mail goes by the file transport only; a city of one's
/// own (the repository's sample_data) leaves its inbox as it is.
fn demo_config(config_file: Option<&Path>, dir: &Path) -> Result<Config> {
    let config_file = match config_file {
        Some(f) => f.to_owned(),
        None => {
            anyhow::ensure!(
                !std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()),
                "{} is not empty: the demo needs a fresh folder (--out)",
                dir.display()
            );
            let city = dir.join("city");
            crate::synth::write_sample_city(&city, crate::synth::DEFAULT_SEED)
                .with_context(|| format!("writing the sample city to {}", city.display()))?;
            city.join("webir-audit.toml")
        }
    };
    let mut config = crate::config::load(&config_file)?;
    anyhow::ensure!(
        config.mail.transport == Transport::File,
        "the demo mails by the file transport only"
    );
    if config_file != dir.join("city/webir-audit.toml") {
        config.paths.inputs = None;
    }
    Ok(config)
}

/// The demo's ceremony for `job`'s draw of `period`: committed (frozen and
/// mailed) at `committed`, the seed given at `given`. Returns the
/// ceremony to draw with.
fn demo_ceremony(
    config: &Config,
    (job, period): (Job, &Period),
    (committed, given): (&dyn Clock, &dyn Clock),
    step: &mut dyn FnMut(DemoStep) -> Result<()>,
) -> Result<Ceremony> {
    let c = ceremony::commit(config, job, period, (7, false), committed)?;
    // The commitment leaves the server before any seed exists.
    step(DemoStep::Mailed(send_due_mail(config, committed)?))?;
    let c = ceremony::give(
        config,
        &c.period,
        DEMO_SEED,
        DEMO_SEED_BY,
        SeedVia::Command,
        given,
    )?;
    step(DemoStep::Ceremony(Box::new(c.clone())))?;
    Ok(c)
}
