//! The command line: argument types (clap derive), dispatch to the stages,
//! and the text a person reads on the terminal. Commands write to the
//! `out` they are given; errors go back to `main` with their exit status.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::Datelike as _;
use clap::{Parser, Subcommand};
use polars::prelude::*;

use crate::config::{self, ConfigError};
use crate::ingest::{self, FileStatus, Ingested};
use crate::job::Job;
use crate::model::Table;
use crate::period::Period;
use crate::run::Request;

#[derive(Debug, Parser)]
#[command(
    name = "webir-audit",
    version,
    about = "Audits agencies' use of the NHI WebIR query service"
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Run as if it were this moment (RFC 3339, e.g.
    /// 2030-01-01T08:00:00+08:00): for reproducing a past run and for tests.
    #[arg(long, global = true, value_name = "TIME", env = "WEBIR_AUDIT_NOW")]
    pub now: Option<chrono::DateTime<chrono::FixedOffset>>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and every input in the inbox.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Ingest the inbox and print a summary of each canonical table.
    Ingest {
        #[arg(long)]
        config: PathBuf,
        /// Keep only query-log rows in this period (2026H1, 2026Q3, 2026, FROM..TO).
        #[arg(long)]
        period: Option<Period>,
    },
    /// Run an audit job and write its run folder under paths.archive.
    Run {
        /// The job.
        #[arg(value_enum)]
        job: Job,
        /// Sample audit: the seed (20-64 digits, e.g. from a public dice
        /// ceremony); without it the tool draws one from the OS.
        #[arg(long)]
        seed: Option<crate::sampling::spec::Seed>,
        /// Only queue the run's mail; do not send it now.
        #[arg(long)]
        no_send: bool,
        #[arg(long)]
        config: PathBuf,
        /// Account review: the day the review is as of (default today).
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// Query check and sample audit: the period (2026H1, 2026H2, 2026, 2026Q3, FROM..TO).
        #[arg(long, conflicts_with_all = ["from", "to"])]
        period: Option<Period>,
        /// Query check: first day of the period (with --to).
        #[arg(long, requires = "to")]
        from: Option<chrono::NaiveDate>,
        /// Query check: last day of the period (with --from).
        #[arg(long, requires = "from")]
        to: Option<chrono::NaiveDate>,
        /// Sample and external audit: draw again a period already drawn.
        /// The new draw is numbered and every report of it says so.
        #[arg(long)]
        redraw: bool,
    },
    /// Record and print the population digest and input hashes of a
    /// period, to publish before a seed ceremony.
    Freeze {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        period: Period,
    },
    /// Give the seed of a period's ceremony (after its commitment was
    /// mailed): recorded once, with who typed it and when; the daemon
    /// draws on its next pass if what it draws from still matches.
    Seed {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        period: Period,
        /// The draw: the sample audit's (default) or the external audit's.
        #[arg(long, value_enum, default_value = "sample-audit")]
        job: Job,
        /// 20 to 64 decimal digits, from the public source the
        /// commitment named.
        #[arg(long)]
        value: String,
        /// Who is giving it (default: the OS user, behind sudo too).
        #[arg(long)]
        by: Option<String>,
    },
    /// Re-draw a sample audit from its manifest and the inputs; prints
    /// MATCH or the first difference (exit 1).
    Verify {
        /// The run folder, or its manifest.json.
        path: PathBuf,
        /// Where the inputs are now (default: the inbox the manifest names).
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// The config to ingest with (default: the file the manifest names).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Read a completed 抽查工作底稿 back: check it belongs to a run and was
    /// not altered, record the answers, list confirmed anomalies (exit 1).
    IngestWorksheet {
        /// The returned workbook (.xlsx).
        file: PathBuf,
        #[arg(long)]
        config: PathBuf,
    },
    /// A legal hold: keeps an archived run or return (RUN: its folder or
    /// its id in the evidence chain), or everything of a unit (UNIT), past
    /// its retention until released; placed and released with a reason,
    /// each recorded in the evidence chain. Without a target: the holds.
    Hold {
        /// The run folder, its chain id, or a unit's id.
        target: Option<String>,
        /// Why (placed or released): recorded, and hashed into the chain.
        #[arg(long)]
        reason: Option<String>,
        /// Releases the hold in force on the target.
        #[arg(long)]
        release: bool,
        #[arg(long)]
        config: PathBuf,
    },
    /// The mail outbox.
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Writes one encrypted archive (zip, AES-256) of a sealed run for an
    /// auditor to verify offline: the run as sealed, the agency tree, the
    /// evidence chain, the spec and the verifiers. The password is read
    /// from the environment variable --password-env names.
    ExportEvidence {
        /// The run folder.
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "WEBIR_AUDIT_EVIDENCE_PASSWORD")]
        password_env: String,
        #[arg(long)]
        config: PathBuf,
        /// Puts in the files holding full national IDs (`population.tsv`),
        /// which re-drawing the sample needs; left out otherwise, their
        /// sealed hashes named in `bundle.json`.
        #[arg(long)]
        with_personal_data: bool,
        /// Puts in the exports the run read, byte for byte (their hashes
        /// are in its `inputs.json`): an auditor rebuilds the population
        /// from them with the spec. They hold personal data in full.
        #[arg(long)]
        with_inputs: bool,
    },
    /// What runs asked of units (due items).
    Followup {
        #[command(subcommand)]
        action: FollowupAction,
    },
    /// The agency register (機關專責人員名冊) as a workbook.
    Agencies {
        #[command(subcommand)]
        action: AgenciesAction,
    },
    /// The units' attachment passwords (rule 5(2)2), for the chief
    /// administrator to hand to each unit's officer by phone or letter.
    Passwords {
        #[command(subcommand)]
        action: PasswordsAction,
    },
    /// Send a test message to ADDRESS through the configured transport,
    /// now. Nothing is queued or marked delivered.
    SendTest {
        #[arg(long)]
        to: String,
        #[arg(long)]
        config: PathBuf,
    },
    /// Run unattended: each schedule's job on time (schedules/*.toml in
    /// paths.schedules), catching up after downtime, until SIGTERM/SIGINT.
    Daemon {
        #[arg(long)]
        config: PathBuf,
        /// One decision pass (at --now, if given), then exit.
        #[arg(long)]
        once: bool,
    },
    /// Last and next run of every job, runs needing attention, the outbox,
    /// the inputs seen and the archive's size.
    Status {
        #[arg(long)]
        config: PathBuf,
        /// Machine-readable, for monitoring.
        #[arg(long)]
        json: bool,
    },
    /// The archive of run folders.
    Archive {
        #[command(subcommand)]
        action: ArchiveAction,
    },
    /// Run every job on a fresh copy of the fictional sample city, mail by
    /// the file transport, and say where the workbooks and messages are.
    Demo {
        /// Run on this config and its inbox (e.g. sample_data/webir-audit.toml)
        /// instead of a freshly generated city.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Without --config: a new (or empty) folder to generate the city in.
        #[arg(long, default_value = "demo-output", conflicts_with = "config")]
        out: PathBuf,
    },
    /// Write the fictional sample city (or a large query log for benchmarks).
    GenData {
        /// Folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Write only a UTF-8 CSV query log of this many rows (benchmarks).
        #[arg(long)]
        rows: Option<usize>,
        /// Write a load-test city instead: this many agencies (with
        /// --accounts and --queries), CSV exports of 2026H1.
        #[arg(long, conflicts_with = "rows", requires_all = ["accounts", "queries"])]
        agencies: Option<usize>,
        /// Load-test city: accounts, spread over the agencies.
        #[arg(long, requires = "agencies")]
        accounts: Option<usize>,
        /// Load-test city: queries in 2026H1.
        #[arg(long, requires = "agencies")]
        queries: Option<usize>,
        /// Generator seed; the committed sample_data uses the default.
        #[arg(long, default_value_t = crate::synth::DEFAULT_SEED)]
        seed: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Every message: state, attempts, recipient, subject, last error.
    List {
        #[arg(long)]
        config: PathBuf,
    },
    /// Send every due message now.
    Send {
        #[arg(long)]
        config: PathBuf,
    },
    /// Make a failed message, or one whose outcome is unknown and which the
    /// recipient did not get, pending again: it goes at the next send.
    Retry {
        id: i64,
        #[arg(long)]
        config: PathBuf,
    },
    /// Record that a message whose outcome was unknown did arrive.
    Confirm {
        id: i64,
        #[arg(long)]
        config: PathBuf,
    },
    /// Send a run's messages to ADDRESS again, as new messages (e.g. the
    /// officer lost them): the messages the run sent to ADDRESS, or, when
    /// ADDRESS is a unit's current officer the run did not mail (an
    /// officer change), the unit's open items with its workbook.
    Resend {
        /// The run folder (or its last component, the run id).
        run: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum FollowupAction {
    /// Closes a unit's open item of a run that no workbook comes back for
    /// (the external audit's preparation, confirmed by the Health
    /// Bureau), saying why; reminders stop.
    Close {
        /// The run folder or its id.
        run: String,
        /// The unit's id.
        unit: String,
        /// Why it is done (recorded).
        #[arg(long)]
        note: String,
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PasswordsAction {
    /// Every reader (each requesting unit's officer, its ethics unit as
    /// `<id>:ethics`, the chief administrator as `chief_administrator`):
    /// how their attachments are protected and, for an issued password,
    /// the password and when it was issued.
    List {
        #[arg(long)]
        config: PathBuf,
    },
    /// Issue a password to every encrypted reader who has none; with
    /// reader ids (as `list` names them), a new password for each (the old
    /// one is retired, kept to open workbooks already mailed).
    Issue {
        units: Vec<String>,
        #[arg(long)]
        config: PathBuf,
    },
    /// Seal every attachment password under a new key, written to NEW
    /// (which must not exist; mode 0400), in one transaction; then point
    /// `paths.key_file` (or the systemd credential) at NEW and destroy the
    /// old key. The passwords themselves do not change.
    RotateKey {
        #[arg(long)]
        new_key: PathBuf,
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgenciesAction {
    /// Write the config's agencies as the register workbook (one row per
    /// agency, drop-downs, a notes sheet); `[paths] agencies = "FILE"`
    /// reads it back.
    Export {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArchiveAction {
    /// Check every run folder against its SHA256SUMS seal and the
    /// evidence chain end to end; exit 1 on any change.
    Verify {
        #[arg(long)]
        config: PathBuf,
        /// A chain head copied from a mail or a workbook (16 or more hex
        /// characters): the chain must still contain it.
        #[arg(long)]
        head: Option<String>,
    },
}

impl clap::ValueEnum for Job {
    fn value_variants<'a>() -> &'a [Self] {
        &Job::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.about()))
    }
}

/// Process exit statuses (a contract with operators' scripts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Ok = 0,
    /// `run` found findings at or above the configured severity; `verify`
    /// found a difference.
    Findings = 1,
    /// Bad input (a file failed, rows were rejected) or a runtime error.
    InputError = 2,
    InvalidConfig = 3,
}

/// An error that ends a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Schedules(#[from] crate::schedule::ScheduleError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Config(_) | Error::Schedules(_) => ExitStatus::InvalidConfig,
            Error::Other(_) => ExitStatus::InputError,
        }
    }
}

impl Cli {
    /// Logs to stderr; `-v` raises the level, `RUST_LOG` overrides it.
    pub fn init_logging(&self) {
        let level = match self.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
        // Colours on a terminal only: journald and log files get plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<ExitStatus, Error> {
    let fixed;
    let clock: &dyn crate::clock::Clock = match cli.now {
        Some(t) => {
            fixed = crate::clock::FixedClock(t.with_timezone(&chrono::Utc));
            &fixed
        }
        None => &crate::clock::SystemClock,
    };
    match &cli.command {
        Command::CheckConfig { config } => check_config(config, clock, out),
        Command::Ingest { config, period } => ingest_cmd(config, period.as_ref(), clock, out),
        Command::Run {
            job,
            seed,
            redraw,
            no_send,
            config,
            as_of,
            period,
            from,
            to,
        } => {
            let period = match (period, from, to) {
                (Some(p), _, _) => Some(p.clone()),
                (None, Some(f), Some(t)) => Some(
                    format!("{f}..{t}")
                        .parse::<Period>()
                        .map_err(|e| Error::Other(e.into()))?,
                ),
                _ => None,
            };
            let config = config::load(config)?;
            let request = crate::run::Request {
                period,
                as_of: *as_of,
                seed: seed.clone(),
                redraw: *redraw,
                ..crate::run::Request::new(*job)
            };
            let done = crate::run::execute(&config, request, clock)?;
            print_done(&config, &done, clock, !no_send, out)
        }
        Command::Freeze { config, period } => freeze(config, period, clock, out),
        Command::Seed {
            config,
            period,
            job,
            value,
            by,
        } => {
            let config = config::load(config)?;
            let by = by.clone().unwrap_or_else(crate::run::ceremony::operator);
            let c = crate::run::ceremony::give(
                &config,
                &crate::run::ceremony::key(*job, &period.id)?,
                value,
                &by,
                crate::store::SeedVia::Command,
                clock,
            )?;
            writeln!(
                out,
                "seed of {} recorded at {} by {}; committed {} (digest {}); \
                 the daemon draws on its next pass if what it draws from still matches",
                c.period,
                c.seed_at.as_deref().unwrap_or("?"),
                c.seed_by.as_deref().unwrap_or("?"),
                c.committed_at,
                c.population_digest
            )
            .context("writing to stdout")?;
            Ok(ExitStatus::Ok)
        }
        Command::Archive {
            action: ArchiveAction::Verify { config, head },
        } => archive_verify(config, head.as_deref(), out),
        Command::Hold {
            target,
            reason,
            release,
            config,
        } => hold(
            &config::load(config)?,
            target.as_deref(),
            reason.as_deref(),
            *release,
            clock,
            out,
        ),
        Command::Outbox { action } => outbox(action, clock, out),
        Command::Passwords { action } => passwords(action, clock, out),
        Command::Agencies {
            action: AgenciesAction::Export { config, out: file },
        } => {
            let config = config::load(config)?;
            config::register::write(&config, file, clock.local(config.timezone))
                .with_context(|| format!("writing {}", file.display()))?;
            writeln!(
                out,
                "{} agencies written to {}",
                config.agencies.iter().count(),
                file.display()
            )
            .context("writing to stdout")?;
            Ok(ExitStatus::Ok)
        }
        Command::ExportEvidence {
            run,
            out: file,
            password_env,
            config,
            with_personal_data,
            with_inputs,
        } => {
            let config = config::load(config)?;
            let password = std::env::var(password_env)
                .ok()
                .filter(|p| !p.is_empty())
                .with_context(|| {
                    format!(
                        "environment variable {password_env} (the bundle's password) is not set"
                    )
                })?;
            let e = crate::evidence::export(
                &config,
                run,
                file,
                &password,
                *with_personal_data,
                *with_inputs,
            )?;
            writeln!(
                out,
                "{}: {} files, {} bytes before compression, {} chain entries; AES-256, password from {password_env}",
                file.display(),
                e.files,
                e.bytes,
                e.chain_entries
            )
            .context("writing to stdout")?;
            for rel in &e.withheld {
                writeln!(
                    out,
                    "left out: run/{rel} (it may hold full national IDs; --with-personal-data puts it in; re-drawing a sample needs its population)"
                )
                .context("writing to stdout")?;
            }
            Ok(ExitStatus::Ok)
        }
        Command::Followup {
            action:
                FollowupAction::Close {
                    run,
                    unit,
                    note,
                    config,
                },
        } => {
            let config = config::load(config)?;
            let mut store =
                crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
            let at = clock
                .local(config.timezone)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            let mut closed = 0;
            for i in store.due_items().map_err(anyhow::Error::from)? {
                if (i.run_id == *run || i.run_dir == *run)
                    && i.unit_id == *unit
                    && i.closed_at.is_none()
                {
                    store
                        .close_due(
                            &i.job,
                            &i.run_id,
                            unit,
                            &at,
                            &format!("closed by hand: {note}"),
                        )
                        .map_err(anyhow::Error::from)?;
                    writeln!(out, "closed: {} {} {}", i.unit_id, i.job, i.label)
                        .context("writing to stdout")?;
                    closed += 1;
                }
            }
            if closed == 0 {
                return Err(Error::Other(anyhow::anyhow!(
                    "no open item of unit {unit} in run {run}"
                )));
            }
            Ok(ExitStatus::Ok)
        }
        Command::SendTest { to, config } => send_test(&config::load(config)?, to, clock, out),
        Command::Daemon { config, once } => {
            // Tests that watch one job alone set this; a deployment cannot
            // lose a duty by deleting its schedule file.
            let partial = std::env::var_os("WEBIR_AUDIT_TEST_PARTIAL_SCHEDULES").is_some();
            if partial {
                tracing::warn!("WEBIR_AUDIT_TEST_PARTIAL_SCHEDULES: duties may be unscheduled");
            }
            let setup = crate::daemon::Setup::load(config, partial).map_err(|e| {
                // Config and schedule problems are exit 3, like check-config.
                match e.downcast::<config::ConfigError>() {
                    Ok(c) => Error::Config(c),
                    Err(e) => match e.downcast::<crate::schedule::ScheduleError>() {
                        Ok(s) => Error::Schedules(s),
                        Err(e) => Error::Other(e),
                    },
                }
            })?;
            let clock: std::sync::Arc<dyn crate::clock::Clock> = match cli.now {
                Some(t) => {
                    std::sync::Arc::new(crate::clock::FixedClock(t.with_timezone(&chrono::Utc)))
                }
                None => std::sync::Arc::new(crate::clock::SystemClock),
            };
            crate::daemon::serve(setup, partial, clock, *once)?;
            Ok(ExitStatus::Ok)
        }
        Command::Status { config, json } => {
            let config = config::load(config)?;
            let schedules = crate::schedule::load(&config.paths.schedules, config.timezone)?;
            let status = crate::status::Status::gather(&config, Some(&schedules), clock)?;
            if *json {
                serde_json::to_writer_pretty(&mut *out, &status).context("writing to stdout")?;
                writeln!(out).context("writing to stdout")?;
            } else {
                write!(out, "{}", status.render()).context("writing to stdout")?;
            }
            Ok(ExitStatus::Ok)
        }
        Command::Demo { config, out: dir } => demo(config.as_deref(), dir, clock, out),
        Command::IngestWorksheet { file, config } => ingest_worksheet(file, config, clock, out),
        Command::Verify {
            path,
            inputs,
            config,
        } => verify(path, inputs.as_deref(), config.as_deref(), out),
        Command::GenData {
            out: dir,
            rows,
            agencies,
            accounts,
            queries,
            seed,
        } => {
            match (rows, agencies, accounts, queries) {
                (Some(n), ..) => crate::synth::write_large_query_log(dir, *n, *seed),
                (None, Some(agencies), Some(accounts), Some(queries)) => {
                    let size = crate::synth::LoadSize {
                        agencies: *agencies,
                        accounts: *accounts,
                        queries: *queries,
                    };
                    crate::synth::write_load_city(dir, size, *seed)
                }
                _ => crate::synth::write_sample_city(dir, *seed),
            }
            .with_context(|| format!("writing generated data to {}", dir.display()))?;
            writeln!(out, "wrote {}", dir.display()).context("writing to stdout")?;
            Ok(ExitStatus::Ok)
        }
    }
}

/// Prints what a job did; returns the exit status it deserves.
fn print_done(
    config: &crate::config::Config,
    done: &crate::run::Done,
    clock: &dyn crate::clock::Clock,
    send: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    use crate::run::Done;
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").context("writing to stdout");
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
                drain_outbox(config, clock, out)?;
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
fn report_run(
    config: &crate::config::Config,
    outcome: &crate::run::RunOutcome,
    clock: &dyn crate::clock::Clock,
    send: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").context("writing to stdout");
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
    record_by_hand(config, outcome, clock)?;
    if send {
        drain_outbox(config, clock, out)?;
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

/// Puts a run made by hand into the daemon's ledger, so the daemon adopts
/// the period instead of running it again. Query checks are not a
/// scheduled duty.
fn record_by_hand(
    config: &crate::config::Config,
    outcome: &crate::run::RunOutcome,
    clock: &dyn crate::clock::Clock,
) -> anyhow::Result<()> {
    if outcome.job.periods().is_empty() {
        return Ok(());
    }
    let mut store = crate::store::Store::open(&config.paths.state)?;
    store.record_manual_run(
        outcome.job.name(),
        &outcome.period,
        &crate::mail::outbox::stamp(clock.now()),
        &outcome.dir.display().to_string(),
    )?;
    Ok(())
}

/// How each reader's attachments are protected, in config order: each
/// requesting unit's officer, its ethics unit, the chief administrator.
fn passwords(
    action: &PasswordsAction,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    use crate::config::AttachmentProtection as P;
    if let PasswordsAction::RotateKey { new_key, config } = action {
        let config = config::load(config)?;
        // Not while the daemon runs: it would seal a new password under
        // the key being retired.
        let _daemon = crate::daemon::DaemonLock::acquire(&config.paths.state)
            .context("stop the daemon before rotating the key")?;
        let old = crate::keyfile::KeyFile::open(&config.paths.key_file)?;
        crate::keyfile::create(new_key)?;
        let new = crate::keyfile::KeyFile::open(new_key)?;
        let mut store =
            crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
        let n = store.reseal_passwords(&old, &new).inspect_err(|_| {
            // Nothing moved to it: the new key goes, the old stays.
            let _ = std::fs::remove_file(new_key);
        })?;
        writeln!(
            out,
            "{n} attachment passwords sealed under {}: point paths.key_file (or the systemd \
             credential) at it now, then destroy {}",
            new_key.display(),
            config.paths.key_file.display()
        )
        .context("writing to stdout")?;
        return Ok(ExitStatus::Ok);
    }
    let (PasswordsAction::List { config }
    | PasswordsAction::Issue { config, .. }
    | PasswordsAction::RotateKey { config, .. }) = action;
    let config = config::load(config)?;
    let mut store = crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
    let at = clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let key = store.password_key(&config.paths.key_file)?;
    // A holder's protection: its unit's (an ethics unit's is its unit's);
    // the chief administrator's is always an issued password.
    let holders: Vec<(String, String, P)> = crate::mail::password_holders(&config)
        .into_iter()
        .map(|(h, label)| {
            let unit = h.split(':').next().unwrap_or(&h);
            let p = config
                .agencies
                .get(unit)
                .map_or(P::Issued, |a| a.attachment.clone());
            (h, label, p)
        })
        .collect();
    if let PasswordsAction::Issue { units: ids, .. } = action {
        for id in ids {
            match holders.iter().find(|(h, ..)| h == id).map(|(.., p)| p) {
                Some(P::Issued) => {}
                Some(_) => {
                    return Err(Error::Other(anyhow::anyhow!(
                        "{id}: its workbooks are not encrypted with an issued password \
                         (attachment_password_env or attachment_unencrypted in the config)"
                    )));
                }
                None => {
                    return Err(Error::Other(anyhow::anyhow!(
                        "{id}: not a requesting agency, its ethics unit (<id>:ethics) or {} of the config",
                        crate::mail::CHIEF_HOLDER
                    )));
                }
            }
        }
        for (h, _, p) in &holders {
            if *p != P::Issued {
                continue;
            }
            if ids.contains(h) {
                store.issue_attachment_password(h, &crate::mail::new_password(), &at, &key)?;
            } else if ids.is_empty() {
                store.attachment_password_or_issue(h, &at, crate::mail::new_password, &key)?;
            }
        }
    }
    for (h, label, p) in holders {
        let how = match &p {
            P::Issued => match store.attachment_password(&h, &key)? {
                Some(p) => format!("{}  issued {}", p.password, p.issued_at),
                None => "(none yet: issued at the first mail, or by `passwords issue`)".to_owned(),
            },
            P::Env(var) => format!("(from environment variable {var})"),
            P::Unencrypted(reason) => format!("UNENCRYPTED: {reason}"),
        };
        writeln!(out, "{h:<12} {label}  {how}").context("writing to stdout")?;
    }
    Ok(ExitStatus::Ok)
}

fn outbox(
    action: &OutboxAction,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").context("writing to stdout");
    match action {
        OutboxAction::List { config } => {
            let config = config::load(config)?;
            let store =
                crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
            let rows = store.outbox().map_err(anyhow::Error::from)?;
            let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
            for r in &rows {
                *counts.entry(r.state.as_str()).or_default() += 1;
                w(
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
            w(
                out,
                format!("{} messages: {}", rows.len(), summary.join(", ")),
            )?;
            Ok(ExitStatus::Ok)
        }
        OutboxAction::Send { config } => {
            let config = config::load(config)?;
            let d = drain_outbox(&config, clock, out)?;
            Ok(if d.failed > 0 || d.unknown > 0 {
                ExitStatus::InputError
            } else {
                ExitStatus::Ok
            })
        }
        OutboxAction::Retry { id, config } => {
            let config = config::load(config)?;
            let mut store =
                crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
            let now = clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            if store
                .dropped_body_sha256(*id)
                .map_err(anyhow::Error::from)?
                .is_some()
            {
                return Err(anyhow::anyhow!(
                    "message {id}'s body was dropped after rules.outbox_keep_days = {}: \
                     its workbook is in the sealed run folder; run it again or send it from there",
                    config.rules.outbox_keep_days
                )
                .into());
            }
            if store.retry(*id, &now).map_err(anyhow::Error::from)? {
                w(out, format!("message {id} is pending again"))?;
                Ok(ExitStatus::Ok)
            } else {
                Err(anyhow::anyhow!("no failed or unknown message {id} in the outbox").into())
            }
        }
        OutboxAction::Confirm { id, config } => {
            let config = config::load(config)?;
            let mut store =
                crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
            let now = crate::mail::outbox::stamp(clock.now());
            if store.confirm_sent(*id, &now).map_err(anyhow::Error::from)? {
                w(out, format!("message {id} is recorded as delivered"))?;
                Ok(ExitStatus::Ok)
            } else {
                Err(anyhow::anyhow!("no message {id} of unknown outcome in the outbox").into())
            }
        }
        OutboxAction::Resend { run, to, config } => {
            let config = config::load(config)?;
            let mut store =
                crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
            // A unit's current officer may be sent the unit's open items of
            // the run even if the run mailed someone else (an officer
            // change); any other address only what the run sent it.
            let current: Vec<crate::store::DueItem> = store
                .due_items()
                .map_err(anyhow::Error::from)?
                .into_iter()
                .filter(|i| {
                    (i.run_dir == *run || i.run_id == *run)
                        && !i.sent_to.eq_ignore_ascii_case(to)
                        && config
                            .agencies
                            .get(&i.unit_id)
                            .and_then(|a| a.officer_email.as_deref())
                            .is_some_and(|o| o.eq_ignore_ascii_case(to))
                })
                .collect();
            if current.is_empty() {
                let ids = crate::mail::outbox::resend(&config, &mut store, run, to, clock.now())?;
                w(out, format!("{} messages queued again to {to}", ids.len()))?;
            } else {
                for item in &current {
                    crate::followup::hand_over_item(&config, &mut store, item, to, clock.now())?;
                }
                w(
                    out,
                    format!(
                        "{} open items handed over to {to}, the unit's officer",
                        current.len()
                    ),
                )?;
            }
            let d = drain_outbox(&config, clock, out)?;
            Ok(if d.failed > 0 || d.unknown > 0 {
                ExitStatus::InputError
            } else {
                ExitStatus::Ok
            })
        }
    }
}

/// `send-test`: one message straight through the transport.
fn send_test(
    config: &crate::config::Config,
    to: &str,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let now = clock.now();
    if !config.mail.may_send_to(to) {
        return Err(anyhow::anyhow!(
            "{to:?} is not an address inside mail.allowed_domains {:?}",
            config.mail.allowed_domains
        )
        .into());
    }
    let stamp = crate::mail::outbox::stamp(now);
    let m = crate::mail::plain(
        config,
        "send-test",
        &stamp,
        to,
        "【健保WebIR稽核】測試信件",
        format!("這是 webir-audit 的測試信件（{stamp}），用以確認郵件設定正確，無須回覆。\n"),
        now,
    )?;
    let mut transport = crate::mail::outbox::transport(config)?;
    let result = transport.deliver(&config.mail.from, to, &m.message_id, &m.eml, &mut || Ok(()));
    transport.finish();
    match result {
        Ok(()) => {
            writeln!(out, "sent {} to {to}", m.message_id).context("writing to stdout")?;
            Ok(ExitStatus::Ok)
        }
        Err(f) => Err(anyhow::anyhow!("the test message to {to} was not delivered: {f:?}").into()),
    }
}

/// The seed the demo's draws use, so its samples are the same every time.
const DEMO_SEED: &str = "20260705080000000000";
/// Who gives the demo's seed, as its record says.
const DEMO_SEED_BY: &str = "webir-audit demo: the fixed public value 20260705080000000000 (README), standing for the public draw after the commitment";

fn demo(
    config_file: Option<&std::path::Path>,
    dir: &std::path::Path,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").context("writing to stdout");
    let config_file = match config_file {
        Some(f) => f.to_owned(),
        None => {
            if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
                return Err(anyhow::anyhow!(
                    "{} is not empty: the demo needs a fresh folder (--out)",
                    dir.display()
                )
                .into());
            }
            let city = dir.join("city");
            crate::synth::write_sample_city(&city, crate::synth::DEFAULT_SEED)
                .with_context(|| format!("writing the sample city to {}", city.display()))?;
            city.join("webir-audit.toml")
        }
    };
    let mut config = config::load(&config_file)?;
    if config.mail.transport != crate::config::Transport::File {
        return Err(anyhow::anyhow!("the demo mails by the file transport only").into());
    }
    let given = config_file != dir.join("city/webir-audit.toml");
    if given {
        // A demo on a city of one's own (the repository's sample_data)
        // leaves its inbox as it is: nothing moves into the input store.
        config.paths.inputs = None;
    }
    let h1: Period = "2026H1".parse().map_err(anyhow::Error::from)?;
    let year: Period = "2026".parse().map_err(anyhow::Error::from)?;
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 7, 2);
    let account_review = Request {
        as_of,
        ..Request::new(Job::AccountReview)
    };
    demo_run(&config, account_review, clock, out)?;
    let minute = |m: i64| crate::clock::Later {
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
        out,
    )?;
    demo_run(
        &config,
        Request {
            period: Some(h1),
            ceremony: Some(sample),
            redraw: true,
            ..Request::new(Job::SampleAudit)
        },
        &minute(1),
        out,
    )?;
    demo_run(
        &config,
        Request {
            period: Some(year.clone()),
            ..Request::new(Job::InternalAudit)
        },
        &minute(1),
        out,
    )?;
    let external = demo_ceremony(
        &config,
        (Job::ExternalAudit, &year),
        (&minute(1), &minute(2)),
        out,
    )?;
    let later = minute(2);
    demo_run(
        &config,
        Request {
            period: Some(year),
            ceremony: Some(external),
            redraw: true,
            ..Request::new(Job::ExternalAudit)
        },
        &later,
        out,
    )?;
    let clock = &later;
    drain_outbox(&config, clock, out)?;
    let mail = crate::mail::outbox::file_transport_dir(&config);
    let n = std::fs::read_dir(&mail).map(|d| d.count()).unwrap_or(0);
    w(
        out,
        format!(
            "workbooks in each run's reports/; {n} messages (.eml) in {}",
            mail.display()
        ),
    )?;
    if let Some(store) = &config.paths.inputs {
        w(
            out,
            format!(
                "the exports the runs read moved from {} to {}",
                config.paths.inbox.display(),
                store.display()
            ),
        )?;
    } else {
        w(
            out,
            format!("{} left as it was", config.paths.inbox.display()),
        )?;
    }
    Ok(ExitStatus::Ok)
}

/// One run of the demo, and where its folder is.
fn demo_run(
    config: &crate::config::Config,
    request: Request,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<(), Error> {
    if let Some(run) = crate::run::execute(config, request, clock)?.run() {
        writeln!(out, "run      {}", run.dir.display()).context("writing to stdout")?;
    }
    Ok(())
}

/// The demo's ceremony for `job`'s draw of `period`: committed (frozen and
/// mailed) at `committed`, the seed given at `given`. Returns the
/// ceremony to draw with.
fn demo_ceremony(
    config: &crate::config::Config,
    (job, period): (Job, &Period),
    (committed, given): (&dyn crate::clock::Clock, &dyn crate::clock::Clock),
    out: &mut dyn Write,
) -> Result<crate::store::Ceremony, Error> {
    use crate::run::ceremony;
    let c = ceremony::commit(config, job, period, (7, false), committed)?;
    // The commitment leaves the server before any seed exists.
    drain_outbox(config, committed, out)?;
    let c = ceremony::give(
        config,
        &c.period,
        DEMO_SEED,
        DEMO_SEED_BY,
        crate::store::SeedVia::Command,
        given,
    )?;
    writeln!(
        out,
        "ceremony {}: committed and mailed at {} (digest {}); seed {} given at {} ({})",
        c.period,
        c.committed_at,
        c.population_digest,
        DEMO_SEED,
        c.seed_at.as_deref().unwrap_or("?"),
        DEMO_SEED_BY
    )
    .context("writing to stdout")?;
    Ok(c)
}

/// Sends every due message of the outbox and says what happened.
fn drain_outbox(
    config: &crate::config::Config,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<crate::mail::outbox::Drained, Error> {
    let mut store = crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
    // What was sealed leaves the server with the mail: its receipt.
    crate::receipt::send(config, &mut store, clock.now())?;
    let mut transport = crate::mail::outbox::transport(config)?;
    let d = crate::mail::outbox::drain(config, &mut store, transport.as_mut(), clock.now())?;
    writeln!(
        out,
        "mail: {} sent, {} to retry, {} failed, {} of unknown outcome",
        d.sent, d.retrying, d.failed, d.unknown
    )
    .context("writing to stdout")?;
    Ok(d)
}

/// The sample audit's draw, as the terminal shows it.
fn print_sample(m: &crate::sampling::manifest::Manifest, out: &mut dyn Write) -> Result<(), Error> {
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").context("writing to stdout");
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

fn freeze(
    path: &std::path::Path,
    period: &Period,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(path)?;
    let f = crate::run::freeze(&config, period, clock)?;
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").context("writing to stdout");
    w(out, format!("frozen {} at {}", f.period, f.frozen_at))?;
    w(out, format!("population digest {}", f.population_digest))?;
    let inputs: Vec<crate::sampling::manifest::InputHash> =
        serde_json::from_str(&f.inputs).context("reading back the inputs")?;
    for i in &inputs {
        w(out, format!("{}  {:>12}  {}", i.sha256, i.bytes, i.file))?;
    }
    Ok(ExitStatus::Ok)
}

fn verify(
    path: &std::path::Path,
    inputs: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").context("writing to stdout");
    let (status, notes) = match crate::verify::verify(path, inputs, config)? {
        crate::verify::Verdict::Match { notes } => {
            w(out, "MATCH".into())?;
            (ExitStatus::Ok, notes)
        }
        crate::verify::Verdict::Differs { first, notes } => {
            w(out, format!("DIFFERS: {first}"))?;
            (ExitStatus::Findings, notes)
        }
    };
    for n in notes {
        w(out, format!("note: {n}"))?;
    }
    Ok(status)
}

fn ingest_worksheet(
    file: &std::path::Path,
    path: &std::path::Path,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(path)?;
    let done = crate::run::returns::ingest_worksheet(&config, file, clock)?;
    // The answers are free text a person typed: an ID in one is masked.
    let w = |out: &mut dyn Write, s: String| {
        writeln!(out, "{}", crate::privacy::mask_ids_in_text(&s)).context("writing to stdout")
    };
    let r = match &done.what {
        crate::run::returns::What::Sample(r) => r,
        crate::run::returns::What::Table(t) => {
            w(
                out,
                format!(
                    "{} of {} for run {}: {} rows, {} answered{}",
                    t.kind.title,
                    t.unit_id,
                    t.run_id,
                    t.rows,
                    t.answered,
                    if done.closed {
                        String::new()
                    } else {
                        format!(
                            "; {} rows without {}: the item stays open",
                            done.unanswered, t.kind.done
                        )
                    }
                ),
            )?;
            w(out, format!("kept: {}", done.kept.display()))?;
            return Ok(ExitStatus::Ok);
        }
    };
    w(
        out,
        format!(
            "worksheet of {} for run {}: {} rows, {} answered, {} confirmed anomalies",
            r.unit_id,
            r.run_id,
            r.rows,
            r.answered,
            r.anomalies.len()
        ),
    )?;
    if !done.closed {
        w(
            out,
            format!(
                "{} rows unanswered: the item stays open until a complete return",
                done.unanswered
            ),
        )?;
    }
    if done.notice_queued {
        w(
            out,
            "the ethics unit is sent the confirmed anomalies".into(),
        )?;
        drain_outbox(&config, clock, out)?;
    }
    for a in &r.anomalies {
        w(
            out,
            format!(
                "  #{:<4} {} {} {} {}  紀錄表已填具={} 主管事前核可={} 事由與查詢相符={} 異常={}  {}",
                a.seq,
                a.account_id,
                a.queried_at,
                a.query_item,
                a.subject,
                a.form_filled,
                a.approved,
                a.matches,
                a.anomaly,
                a.note
            ),
        )?;
    }
    Ok(if r.anomalies.is_empty() {
        ExitStatus::Ok
    } else {
        ExitStatus::Findings
    })
}

/// `hold`: places, releases or lists legal holds.
fn hold(
    config: &crate::config::Config,
    target: Option<&str>,
    reason: Option<&str>,
    release: bool,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let mut store = crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
    let Some(target) = target else {
        for h in store.holds(false).map_err(anyhow::Error::from)? {
            let state = match (&h.released_at, &h.release_reason) {
                (Some(at), Some(why)) => {
                    format!("released {at}: {}", crate::privacy::mask_ids_in_text(why))
                }
                _ => "in force".to_owned(),
            };
            writeln!(
                out,
                "{}  placed {}: {}  ({state})",
                h.target, h.placed_at, h.reason
            )
            .context("writing to stdout")?;
        }
        return Ok(ExitStatus::Ok);
    };
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .context("--reason is required: a hold and its release say why")?;
    let target = hold_target(config, &store, target)?;
    // Kept for years and hashed into the chain: no whole national ID.
    let reason = crate::privacy::mask_ids_in_text(reason);
    let reason = reason.as_str();
    let at = clock
        .local(config.timezone)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let done = if release {
        store.release_hold(&target, reason, &at)?
    } else {
        store.place_hold(&target, reason, &at)?
    };
    match (done, release) {
        (Some(_), false) => writeln!(out, "held     {target} (from {at}; in the evidence chain)"),
        (Some(_), true) => writeln!(out, "released {target} (at {at}; in the evidence chain)"),
        (None, false) => {
            return Err(anyhow::anyhow!("{target} is already held: one hold at a time").into());
        }
        (None, true) => return Err(anyhow::anyhow!("{target} is not held").into()),
    }
    .context("writing to stdout")?;
    Ok(ExitStatus::Ok)
}

/// A hold's target as recorded: a unit's id, or the chain id of an
/// archived run or return (given as its folder or its id).
fn hold_target(
    config: &crate::config::Config,
    store: &crate::store::Store,
    given: &str,
) -> anyhow::Result<String> {
    if config.agencies.units().any(|u| u.id == given) {
        return Ok(given.to_owned());
    }
    if let Some(a) = config.agencies.get(given) {
        anyhow::bail!(
            "{given} is not a unit but an agency of {}: hold its unit, whose workbooks hold its rows",
            a.unit
        );
    }
    let path = std::path::Path::new(given);
    let id = if path.is_dir() {
        crate::archive::chain_id(path)
    } else {
        given.trim_matches('/').to_owned()
    };
    let chain = store.chain()?;
    anyhow::ensure!(
        chain
            .iter()
            .any(|e| (e.kind == "seal" || e.kind == "return") && e.id == id),
        "{given}: neither a unit of the config nor a run or return in the evidence chain"
    );
    anyhow::ensure!(
        config.paths.archive.join(&id).is_dir(),
        "{given}: retention already deleted it (its tombstone is in the evidence chain)"
    );
    Ok(id)
}

fn print_retention(
    config: &crate::config::Config,
    r: &crate::run::Retention,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").context("writing to stdout");
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

fn archive_verify(
    path: &std::path::Path,
    head: Option<&str>,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(path)?;
    let (runs, mut problems) = crate::archive::verify_all(&config.paths.archive)?;
    let store = crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
    let chain = store.chain().map_err(anyhow::Error::from)?;
    problems.extend(crate::archive::verify_chain(
        &config.paths.archive,
        &chain,
        head,
    )?);
    let (exports, stored) = crate::inputs::verify(&config, &store)?;
    problems.extend(stored);
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").context("writing to stdout");
    for p in &problems {
        w(out, format!("{}: {}", p.run, p.problem))?;
    }
    // A head from a receipt, a mail or a workbook: what it vouches for.
    if let Some(h) = head.map(|h| h.trim().to_ascii_lowercase())
        && h.len() >= 16
        && let Some(e) = chain.iter().find(|e| e.hash.starts_with(&h))
    {
        w(
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
        w(
            out,
            format!(
                "{runs} run folders, all sealed and unchanged; {exports} stored exports as moved in; evidence chain of {} entries intact{}",
                chain.len(),
                chain
                    .last()
                    .map(|e| format!(", head {} {}", e.seq, &e.hash[..16]))
                    .unwrap_or_default()
            ),
        )?;
        Ok(ExitStatus::Ok)
    } else {
        w(
            out,
            format!("{runs} run folders, {} problems", problems.len()),
        )?;
        Ok(ExitStatus::Findings)
    }
}

/// The requesting units and the agencies each one's reports cover, and
/// what a reviewer should see before the register goes live: a unit
/// without an ethics address, an officer outside `mail.allowed_domains`.
fn agency_tree(config: &config::Config) -> Vec<String> {
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

fn check_config(
    path: &std::path::Path,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(path)?;
    let ing = ingest::ingest(&config, None).context("ingesting the inbox")?;
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").context("writing to stdout");
    w(
        out,
        format!(
            "config {}: ok ({} agencies)",
            path.display(),
            config.agencies.iter().count()
        ),
    )?;
    for warning in calendar_warnings(&config, clock) {
        w(out, format!("WARNING: {warning}"))?;
    }
    for line in agency_tree(&config) {
        w(out, line)?;
    }
    match &config.chief {
        Some(c) => w(
            out,
            format!("chief administrator (總管理者): {} <{}>", c.name, c.email),
        )?,
        None => w(
            out,
            format!(
                "WARNING: no [chief_administrator]: the city-wide workbooks (every unit's names and \
                 accounts) and the overdue digests go to the Health Bureau's officer ({}), opened with \
                 the Health Bureau's password",
                config
                    .agencies
                    .health_bureau()
                    .officer_email
                    .as_deref()
                    .unwrap_or("no address")
            ),
        )?,
    }
    // An edit shown before it is live: the register against the one the
    // daemon last ran with.
    if config.paths.state.join("state.sqlite3").exists() {
        let store = crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
        if let Some(before) = store
            .meta_get(crate::daemon::AGENCIES_LAST_RUN)
            .map_err(anyhow::Error::from)?
        {
            let changes = config::register::changes(&before, &config);
            if changes.is_empty() {
                w(
                    out,
                    "no change to the agencies since the daemon last ran".into(),
                )?;
            } else {
                w(out, "changes since the daemon last ran:".into())?;
                for c in changes {
                    w(out, format!("  {c}"))?;
                }
            }
        }
    }
    // Rule 5(2)2: an exemption from encryption is shown wherever it applies.
    for a in config.agencies.iter() {
        if let config::AttachmentProtection::Unencrypted(reason) = &a.attachment {
            w(
                out,
                format!(
                    "NOTE: {} ({}) gets its workbooks unencrypted: {reason}",
                    a.id, a.name
                ),
            )?;
        }
    }
    w(
        out,
        format!(
            "{:<48} {:<14} {:>9} {:>9} {:>9}  status",
            "input", "encoding", "read", "rejected", "skipped"
        ),
    )?;
    for f in &ing.files {
        let read = f.rows_loaded + f.rows_rejected;
        w(
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
    for line in file_notes(&ing) {
        w(out, line)?;
    }
    write_rejects(&ing, out)?;
    Ok(if ing.is_clean() {
        ExitStatus::Ok
    } else {
        ExitStatus::InputError
    })
}

/// What `check-config` warns of the holidays calendar: none configured
/// (off-hours then know weekends only), or one that ends before a period
/// the schedules will check next (that run will wait for it).
fn calendar_warnings(
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
    for s in schedules.iter().filter(|s| s.job.needs().calendar) {
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
                    s.job.name(),
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
fn file_notes(ing: &Ingested) -> Vec<String> {
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

fn ingest_cmd(
    path: &std::path::Path,
    period: Option<&Period>,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    use crate::ingest::snapshot::Reference;
    let config = config::load(path)?;
    let ing = ingest::ingest(&config, period).context("ingesting the inbox")?;
    let reference = Reference::of(period, clock.local(config.timezone).date());
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").context("writing to stdout");
    if let Some(p) = period {
        w(
            out,
            format!(
                "period {p}: {} query-log rows outside it left out",
                ing.outside_period
            ),
        )?;
    }
    w(
        out,
        format!(
            "{:<14} {:>10} {:>9} {:>6}  {:<19}  {:<19}",
            "table", "rows", "rejected", "files", "from", "to"
        ),
    )?;
    for t in Table::ALL {
        let df = ing.table(t);
        let rejected = ing
            .rejects
            .column("table")
            .ok()
            .and_then(|c| {
                c.str()
                    .ok()
                    .map(|s| s.iter().filter(|v| *v == Some(t.name())).count())
            })
            .unwrap_or(0);
        let files = ing
            .files
            .iter()
            .filter(|f| f.table == Some(t) && f.status == FileStatus::Loaded)
            .count();
        let (from, to) = date_range(df, t).context("computing date ranges")?;
        w(
            out,
            format!(
                "{:<14} {:>10} {:>9} {:>6}  {:<19}  {:<19}",
                t.name(),
                df.height(),
                rejected,
                files,
                from,
                to
            ),
        )?;
    }
    w(out, String::new())?;
    w(out, "files:".into())?;
    for f in &ing.files {
        w(
            out,
            format!(
                "  {}  {:>10} bytes  sha256 {}  loaded {}  rejected {}  skipped {}  {}",
                f.path,
                f.size,
                f.sha256,
                f.rows_loaded,
                f.rows_rejected,
                f.rows_skipped,
                status_text(&f.status)
            ),
        )?;
    }
    for line in file_notes(&ing) {
        w(out, format!("  {line}"))?;
    }
    if let Some(d) = ing.roster_snapshot(reference) {
        let what = match reference {
            Reference::PeriodEnd(last) => format!("a run over the period ending {last}"),
            Reference::Day(day) => format!("an account review as of {day}"),
        };
        w(
            out,
            format!(
                "roster: {what} uses the snapshot of {d}; accounts only older snapshots list are reported as removed"
            ),
        )?;
    }
    write_rejects(&ing, out)?;
    Ok(if ing.is_clean() {
        ExitStatus::Ok
    } else {
        ExitStatus::InputError
    })
}

fn status_text(s: &FileStatus) -> String {
    match s {
        FileStatus::Loaded => "ok".into(),
        FileStatus::Duplicate { of } => format!("duplicate of {of} (ingested once)"),
        FileStatus::Failed { error } => format!("FAILED: {error}"),
    }
}

/// How many rejects are listed on the terminal; all of them are in the
/// rejects table that reports show.
const REJECTS_SHOWN: usize = 50;

fn write_rejects(ing: &Ingested, out: &mut dyn Write) -> anyhow::Result<()> {
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
fn date_range(df: &DataFrame, t: Table) -> anyhow::Result<(String, String)> {
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
