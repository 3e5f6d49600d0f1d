//! The command line: argument types (clap derive) and the dispatch of each
//! command to its one function ([`commands`]), which calls the run layer
//! and prints ([`print`]). Commands write to the `out` they are given;
//! errors go back to `main` with their exit status.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod commands;
mod print;

use crate::clock::Clock;
use crate::config::ConfigError;
use crate::job::Job;
use crate::period::Period;

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
    Run(RunArgs),
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
    ExportEvidence(ExportEvidenceArgs),
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
    GenData(GenDataArgs),
}

/// The arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The job.
    #[arg(value_enum)]
    pub job: Job,
    /// Sample audit: the seed (20-64 digits, e.g. from a public dice
    /// ceremony); without it the tool draws one from the OS.
    #[arg(long)]
    pub seed: Option<crate::sampling::spec::Seed>,
    /// Only queue the run's mail; do not send it now.
    #[arg(long)]
    pub no_send: bool,
    #[arg(long)]
    pub config: PathBuf,
    /// Account review: the day the review is as of (default today).
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
    /// Query check and sample audit: the period (2026H1, 2026H2, 2026, 2026Q3, FROM..TO).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub period: Option<Period>,
    /// Query check: first day of the period (with --to).
    #[arg(long, requires = "to")]
    pub from: Option<chrono::NaiveDate>,
    /// Query check: last day of the period (with --from).
    #[arg(long, requires = "from")]
    pub to: Option<chrono::NaiveDate>,
    /// Sample and external audit: draw again a period already drawn.
    /// The new draw is numbered and every report of it says so.
    #[arg(long)]
    pub redraw: bool,
}

/// The arguments of `export-evidence`.
#[derive(Debug, clap::Args)]
pub struct ExportEvidenceArgs {
    /// The run folder.
    pub run: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "WEBIR_AUDIT_EVIDENCE_PASSWORD")]
    pub password_env: String,
    #[arg(long)]
    pub config: PathBuf,
    /// Puts in the files holding full national IDs (`population.tsv`),
    /// which re-drawing the sample needs; left out otherwise, their
    /// sealed hashes named in `bundle.json`.
    #[arg(long)]
    pub with_personal_data: bool,
    /// Puts in the exports the run read, byte for byte (their hashes
    /// are in its `inputs.json`): an auditor rebuilds the population
    /// from them with the spec. They hold personal data in full.
    #[arg(long)]
    pub with_inputs: bool,
}

/// The arguments of `gen-data`.
#[derive(Debug, clap::Args)]
pub struct GenDataArgs {
    /// Folder to write into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Write only a UTF-8 CSV query log of this many rows (benchmarks).
    #[arg(long)]
    pub rows: Option<usize>,
    /// Write a load-test city instead: this many agencies (with
    /// --accounts and --queries), CSV exports of 2026H1.
    #[arg(long, conflicts_with = "rows", requires_all = ["accounts", "queries"])]
    pub agencies: Option<usize>,
    /// Load-test city: accounts, spread over the agencies.
    #[arg(long, requires = "agencies")]
    pub accounts: Option<usize>,
    /// Load-test city: queries in 2026H1.
    #[arg(long, requires = "agencies")]
    pub queries: Option<usize>,
    /// Generator seed; the committed sample_data uses the default.
    #[arg(long, default_value_t = crate::synth::DEFAULT_SEED)]
    pub seed: u64,
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
        Some(clap::builder::PossibleValue::new(self.as_str()).help(self.about()))
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
    /// A library error as the command line ends with it: a config or
    /// schedules problem keeps its exit status 3.
    fn of(e: anyhow::Error) -> Error {
        match e.downcast::<ConfigError>() {
            Ok(c) => Error::Config(c),
            Err(e) => match e.downcast::<crate::schedule::ScheduleError>() {
                Ok(s) => Error::Schedules(s),
                Err(e) => Error::Other(e),
            },
        }
    }

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

/// Runs the command `cli` names, writing what a person reads to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<ExitStatus, Error> {
    let fixed;
    let clock: &dyn Clock = match cli.now {
        Some(t) => {
            fixed = crate::clock::FixedClock(t.with_timezone(&chrono::Utc));
            &fixed
        }
        None => &crate::clock::SystemClock,
    };
    match &cli.command {
        Command::CheckConfig { config } => commands::check_config(config, clock, out),
        Command::Ingest { config, period } => commands::ingest(config, period.as_ref(), clock, out),
        Command::Run(args) => commands::run_job(args, clock, out),
        Command::Freeze { config, period } => commands::freeze(config, period, clock, out),
        Command::Seed {
            config,
            period,
            job,
            value,
            by,
        } => commands::seed(config, (*job, period), value, by.as_deref(), clock, out),
        Command::Archive {
            action: ArchiveAction::Verify { config, head },
        } => commands::archive_verify(config, head.as_deref(), out),
        Command::Hold {
            target,
            reason,
            release,
            config,
        } => commands::hold(
            config,
            target.as_deref(),
            reason.as_deref(),
            *release,
            clock,
            out,
        ),
        Command::Outbox { action } => commands::outbox(action, clock, out),
        Command::Passwords { action } => commands::passwords(action, clock, out),
        Command::Agencies {
            action: AgenciesAction::Export { config, out: file },
        } => commands::agencies_export(config, file, clock, out),
        Command::ExportEvidence(args) => commands::export_evidence(args, out),
        Command::Followup {
            action:
                FollowupAction::Close {
                    run,
                    unit,
                    note,
                    config,
                },
        } => commands::followup_close(config, (run, unit), note, clock, out),
        Command::SendTest { to, config } => commands::send_test(config, to, clock, out),
        Command::Daemon { config, once } => commands::daemon(config, cli.now, *once),
        Command::Status { config, json } => commands::status(config, *json, clock, out),
        Command::Demo { config, out: dir } => commands::demo(config.as_deref(), dir, clock, out),
        Command::IngestWorksheet { file, config } => {
            commands::ingest_worksheet(file, config, clock, out)
        }
        Command::Verify {
            path,
            inputs,
            config,
        } => commands::verify(path, inputs.as_deref(), config.as_deref(), out),
        Command::GenData(args) => commands::gen_data(args, out),
    }
}
