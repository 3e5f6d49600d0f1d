//! One function per command: load the config, call the one function of
//! the run layer (or the stage) that does the command, print what it
//! returned. No command decides anything a run or the daemon would decide
//! differently.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use super::print::{self, drained, line as w};
use super::{
    Error, ExitStatus, ExportEvidenceArgs, GenDataArgs, OutboxAction, PasswordsAction, RunArgs,
};
use crate::clock::Clock;
use crate::config;
use crate::ingest::{self, FileStatus};
use crate::job::Job;
use crate::model::Table;
use crate::period::Period;
use crate::run::Request;
use crate::run::operator;

/// `run`: one job, its findings and rejects printed, its mail sent
/// unless `--no-send`.
pub(super) fn run_job(
    a: &RunArgs,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let period = match (&a.period, a.from, a.to) {
        (Some(p), _, _) => Some(p.clone()),
        (None, Some(f), Some(t)) => Some(
            format!("{f}..{t}")
                .parse::<Period>()
                .map_err(|e| Error::Other(e.into()))?,
        ),
        _ => None,
    };
    let config = config::load(&a.config)?;
    let request = Request {
        period,
        as_of: a.as_of,
        seed: a.seed.clone(),
        redraw: a.redraw,
        ..Request::new(a.job)
    };
    let done = crate::run::execute(&config, request, clock)?;
    print::print_done(&config, &done, clock, !a.no_send, out)
}

/// `seed`: the seed of a ceremony, given by hand.
pub(super) fn seed(
    config: &Path,
    (job, period): (Job, &Period),
    value: &str,
    by: Option<&str>,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(config)?;
    let by = by.map_or_else(crate::run::ceremony::operator, str::to_owned);
    let c = crate::run::ceremony::give(
        &config,
        &crate::run::ceremony::key(job, &period.id)?,
        value,
        &by,
        crate::store::SeedVia::Command,
        clock,
    )?;
    w(
        out,
        format!(
            "seed of {} recorded at {} by {}; committed {} (digest {}); \
             the daemon draws on its next pass if what it draws from still matches",
            c.period,
            c.seed_at.as_deref().unwrap_or("?"),
            c.seed_by.as_deref().unwrap_or("?"),
            c.committed_at,
            c.population_digest
        ),
    )?;
    Ok(ExitStatus::Ok)
}

/// `agencies export`: the register as the config has it.
pub(super) fn agencies_export(
    config: &Path,
    file: &Path,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(config)?;
    config::register::write(&config, file, clock.local(config.timezone))
        .with_context(|| format!("writing {}", file.display()))?;
    w(
        out,
        format!(
            "{} agencies written to {}",
            config.agencies.iter().count(),
            file.display()
        ),
    )?;
    Ok(ExitStatus::Ok)
}

/// `export-evidence`: the encrypted bundle of a sealed run.
pub(super) fn export_evidence(
    a: &ExportEvidenceArgs,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(&a.config)?;
    let env = &a.password_env;
    let password = std::env::var(env)
        .ok()
        .filter(|p| !p.is_empty())
        .with_context(|| {
            format!("environment variable {env} (the bundle's password) is not set")
        })?;
    let e = crate::evidence::export(
        &config,
        &a.run,
        &a.out,
        &password,
        a.with_personal_data,
        a.with_inputs,
    )?;
    w(
        out,
        format!(
            "{}: {} files, {} bytes before compression, {} chain entries; AES-256, password from {env}",
            a.out.display(),
            e.files,
            e.bytes,
            e.chain_entries
        ),
    )?;
    for rel in &e.withheld {
        w(
            out,
            format!(
                "left out: run/{rel} (it may hold full national IDs; --with-personal-data puts it in; re-drawing a sample needs its population)"
            ),
        )?;
    }
    Ok(ExitStatus::Ok)
}

/// `followup close`: a unit's open items of a run, closed by hand.
pub(super) fn followup_close(
    config: &Path,
    (run, unit): (&str, &str),
    note: &str,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(config)?;
    for i in operator::close_due_items(&config, run, unit, note, clock)? {
        w(out, format!("closed: {} {} {}", i.unit_id, i.job, i.label))?;
    }
    Ok(ExitStatus::Ok)
}

/// `daemon`: serves until stopped (or one pass, `--once`).
pub(super) fn daemon(
    config: &Path,
    now: Option<chrono::DateTime<chrono::FixedOffset>>,
    once: bool,
) -> Result<ExitStatus, Error> {
    let setup = crate::daemon::Setup::load(config).map_err(Error::of)?;
    let clock: std::sync::Arc<dyn Clock> = match now {
        Some(t) => std::sync::Arc::new(crate::clock::FixedClock(t.with_timezone(&chrono::Utc))),
        None => std::sync::Arc::new(crate::clock::SystemClock),
    };
    crate::daemon::serve(setup, clock, once)?;
    Ok(ExitStatus::Ok)
}

/// `status`: what the daemon has done and will do.
pub(super) fn status(
    config: &Path,
    json: bool,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(config)?;
    let schedules = crate::schedule::load(&config.paths.schedules, config.timezone)?;
    let status = crate::status::Status::gather(&config, Some(&schedules), clock)?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &status).context("writing to stdout")?;
        w(out, String::new())?;
    } else {
        write!(out, "{}", status.render()).context("writing to stdout")?;
    }
    Ok(ExitStatus::Ok)
}

/// `gen-data`: the sample city, a load-test city or a large query log.
pub(super) fn gen_data(a: &GenDataArgs, out: &mut dyn Write) -> Result<ExitStatus, Error> {
    let dir = &a.out;
    match (a.rows, a.agencies, a.accounts, a.queries) {
        (Some(n), ..) => crate::synth::write_large_query_log(dir, n, a.seed),
        (None, Some(agencies), Some(accounts), Some(queries)) => {
            let size = crate::synth::LoadSize {
                agencies,
                accounts,
                queries,
            };
            crate::synth::write_load_city(dir, size, a.seed)
        }
        _ => crate::synth::write_sample_city(dir, a.seed),
    }
    .with_context(|| format!("writing generated data to {}", dir.display()))?;
    w(out, format!("wrote {}", dir.display()))?;
    Ok(ExitStatus::Ok)
}

/// `passwords`: each reader's attachment protection, in config order:
/// each requesting unit's officer, its ethics unit, the chief
/// administrator; `issue` first issues passwords, `rotate-key` reseals
/// them under a new key.
pub(super) fn passwords(
    action: &PasswordsAction,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    use crate::config::AttachmentProtection as P;
    let (issue, config) = match action {
        PasswordsAction::RotateKey { new_key, config } => {
            let config = config::load(config)?;
            let n = operator::rotate_key(&config, new_key)?;
            w(
                out,
                format!(
                    "{n} attachment passwords sealed under {}: point paths.key_file (or the systemd \
                     credential) at it now, then destroy {}",
                    new_key.display(),
                    config.paths.key_file.display()
                ),
            )?;
            return Ok(ExitStatus::Ok);
        }
        PasswordsAction::List { config } => (None, config),
        PasswordsAction::Issue { units, config } => (Some(units.as_slice()), config),
    };
    let config = config::load(config)?;
    for h in operator::attachment_passwords(&config, issue, clock)? {
        let how = match (&h.protection, &h.issued) {
            (P::Issued, Some((password, at))) => format!("{password}  issued {at}"),
            (P::Issued, None) => {
                "(none yet: issued at the first mail, or by `passwords issue`)".to_owned()
            }
            (P::Env(var), _) => format!("(from environment variable {var})"),
            (P::Unencrypted(reason), _) => format!("UNENCRYPTED: {reason}"),
        };
        w(out, format!("{:<12} {}  {how}", h.holder, h.label))?;
    }
    Ok(ExitStatus::Ok)
}

/// The exit status of a drain: a message that failed or whose outcome is
/// unknown needs a person.
fn drain_status(d: &crate::mail::outbox::Drained) -> ExitStatus {
    if d.failed > 0 || d.unknown > 0 {
        ExitStatus::InputError
    } else {
        ExitStatus::Ok
    }
}

/// `outbox`: list, send, retry, confirm or resend messages.
pub(super) fn outbox(
    action: &OutboxAction,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    match action {
        OutboxAction::List { config } => {
            let config = config::load(config)?;
            let store =
                crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
            print::outbox_rows(&store.outbox().map_err(anyhow::Error::from)?, out)?;
            Ok(ExitStatus::Ok)
        }
        OutboxAction::Send { config } => {
            let config = config::load(config)?;
            let d = operator::send_due_mail(&config, clock)?;
            drained(out, &d)?;
            Ok(drain_status(&d))
        }
        OutboxAction::Retry { id, config } => {
            operator::retry_message(&config::load(config)?, *id, clock)?;
            w(out, format!("message {id} is pending again"))?;
            Ok(ExitStatus::Ok)
        }
        OutboxAction::Confirm { id, config } => {
            operator::confirm_delivered(&config::load(config)?, *id, clock)?;
            w(out, format!("message {id} is recorded as delivered"))?;
            Ok(ExitStatus::Ok)
        }
        OutboxAction::Resend { run, to, config } => {
            let config = config::load(config)?;
            let resent = operator::resend(&config, run, to, clock)?;
            w(
                out,
                match resent {
                    operator::Resent::Queued(n) => format!("{n} messages queued again to {to}"),
                    operator::Resent::HandedOver(n) => {
                        format!("{n} open items handed over to {to}, the unit's officer")
                    }
                },
            )?;
            let d = operator::send_due_mail(&config, clock)?;
            drained(out, &d)?;
            Ok(drain_status(&d))
        }
    }
}

/// `send-test`: one message straight through the transport.
pub(super) fn send_test(
    config: &Path,
    to: &str,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let id = operator::send_test(&config::load(config)?, to, clock)?;
    w(out, format!("sent {id} to {to}"))?;
    Ok(ExitStatus::Ok)
}

/// `demo`: the README's main command, its steps printed as they happen.
pub(super) fn demo(
    config_file: Option<&Path>,
    dir: &Path,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    use crate::run::demo::{DEMO_SEED, DEMO_SEED_BY, DemoStep};
    let end = crate::run::demo::demo(config_file, dir, clock, &mut |step| match step {
        DemoStep::Run(dir) => w(out, format!("run      {}", dir.display())),
        DemoStep::Mailed(d) => drained(out, &d),
        DemoStep::Ceremony(c) => w(
            out,
            format!(
                "ceremony {}: committed and mailed at {} (digest {}); seed {DEMO_SEED} given at {} ({DEMO_SEED_BY})",
                c.period,
                c.committed_at,
                c.population_digest,
                c.seed_at.as_deref().unwrap_or("?"),
            ),
        ),
    })
    .map_err(Error::of)?;
    let n = std::fs::read_dir(&end.mail_dir)
        .map(|d| d.count())
        .unwrap_or(0);
    w(
        out,
        format!(
            "workbooks in each run's reports/; {n} messages (.eml) in {}",
            end.mail_dir.display()
        ),
    )?;
    w(
        out,
        match &end.inputs_moved_to {
            Some(store) => format!(
                "the exports the runs read moved from {} to {}",
                end.inbox.display(),
                store.display()
            ),
            None => format!("{} left as it was", end.inbox.display()),
        },
    )?;
    Ok(ExitStatus::Ok)
}

/// `hold`: places or releases a legal hold, or lists them.
pub(super) fn hold(
    config: &Path,
    target: Option<&str>,
    reason: Option<&str>,
    release: bool,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(config)?;
    let Some(target) = target else {
        let store = crate::store::Store::open(&config.paths.state).map_err(anyhow::Error::from)?;
        print::holds(&store.holds(false).map_err(anyhow::Error::from)?, out)?;
        return Ok(ExitStatus::Ok);
    };
    let h = operator::hold(&config, target, reason, release, clock)?;
    w(
        out,
        if release {
            format!("released {} (at {}; in the evidence chain)", h.target, h.at)
        } else {
            format!(
                "held     {} (from {}; in the evidence chain)",
                h.target, h.at
            )
        },
    )?;
    Ok(ExitStatus::Ok)
}

/// `archive verify`: every run folder, the chain and the stored exports.
pub(super) fn archive_verify(
    config: &Path,
    head: Option<&str>,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(config)?;
    let check = operator::verify_archive(&config, head)?;
    print::archive_check(&check, out)?;
    Ok(if check.problems.is_empty() {
        ExitStatus::Ok
    } else {
        ExitStatus::Findings
    })
}

/// `freeze`: the population digest and input hashes to publish before a
/// seed ceremony.
pub(super) fn freeze(
    path: &std::path::Path,
    period: &Period,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(path)?;
    let f = crate::run::freeze(&config, period, clock)?;
    let w = super::print::line;
    w(out, format!("frozen {} at {}", f.period, f.frozen_at))?;
    w(out, format!("population digest {}", f.population_digest))?;
    let inputs: Vec<crate::sampling::manifest::InputHash> =
        serde_json::from_str(&f.inputs).context("reading back the inputs")?;
    for i in &inputs {
        w(out, format!("{}  {:>12}  {}", i.sha256, i.bytes, i.file))?;
    }
    Ok(ExitStatus::Ok)
}

/// `verify`: a sample re-drawn from its manifest, `MATCH` or the first
/// difference.
pub(super) fn verify(
    path: &std::path::Path,
    inputs: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let w = super::print::line;
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

/// `ingest-worksheet`: a returned workbook recorded, its notices sent.
pub(super) fn ingest_worksheet(
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
        drained(out, &operator::send_due_mail(&config, clock)?)?;
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

/// `check-config`: the config, the agency tree and every input in the
/// inbox, with what a reviewer should see before it goes live.
pub(super) fn check_config(
    path: &std::path::Path,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = config::load(path)?;
    let ing = ingest::ingest(&config, None).context("ingesting the inbox")?;
    let w = super::print::line;
    w(
        out,
        format!(
            "config {}: ok ({} agencies)",
            path.display(),
            config.agencies.iter().count()
        ),
    )?;
    print::suspended_duties(&config, out)?;
    for warning in print::calendar_warnings(&config, clock) {
        w(out, format!("WARNING: {warning}"))?;
    }
    for line in print::agency_tree(&config) {
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
    if let Some(changes) = operator::agency_changes_since_daemon(&config)? {
        print::agency_changes(&changes, out)?;
    }
    print::unencrypted_units(&config, out)?;
    print::input_files(&ing, out)?;
    for line in print::file_notes(&ing) {
        w(out, line)?;
    }
    print::write_rejects(&ing, out)?;
    Ok(if ing.is_clean() {
        ExitStatus::Ok
    } else {
        ExitStatus::InputError
    })
}

/// `ingest`: each canonical table's rows, rejects, files and dates.
pub(super) fn ingest(
    path: &std::path::Path,
    period: Option<&Period>,
    clock: &dyn crate::clock::Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    use crate::ingest::snapshot::Reference;
    let config = config::load(path)?;
    let ing = ingest::ingest(&config, period).context("ingesting the inbox")?;
    let reference = Reference::of(period, clock.local(config.timezone).date());
    let w = super::print::line;
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
                    .map(|s| s.iter().filter(|v| *v == Some(t.as_str())).count())
            })
            .unwrap_or(0);
        let files = ing
            .files
            .iter()
            .filter(|f| f.table == Some(t) && f.status == FileStatus::Loaded)
            .count();
        let (from, to) = print::date_range(df, t).context("computing date ranges")?;
        w(
            out,
            format!(
                "{:<14} {:>10} {:>9} {:>6}  {:<19}  {:<19}",
                t.as_str(),
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
                print::status_text(&f.status)
            ),
        )?;
    }
    for line in print::file_notes(&ing) {
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
    print::write_rejects(&ing, out)?;
    Ok(if ing.is_clean() {
        ExitStatus::Ok
    } else {
        ExitStatus::InputError
    })
}
