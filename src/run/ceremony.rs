//! The seed ceremony the daemon runs for a sample audit (points 6(1) and
//! 7): at the due time the period's population is frozen and the
//! commitment — population digest, input hashes, period, the rule the
//! seed will come by — is mailed to the Health Bureau's officer and every
//! ethics unit. The draw then waits for a seed given from outside
//! (`webir-audit seed`, or `inbox/seeds/<period>.txt`), and runs only if
//! the population still matches the commitment. Everything is recorded
//! in the state database (`ceremonies`, written once) and the evidence
//! chain (`freeze`, `commitment`, `seed-given`), so a seed provably came
//! after the population it selects from.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::Digest as _;

use crate::clock::Clock;
use crate::config::Config;
use crate::job::Job;
use crate::mail::outbox::stamp;
use crate::period::Period;
use crate::sampling::manifest::{CeremonyRecord, LedgerDraw};
use crate::sampling::spec::Seed;
use crate::store::{Ceremony, SeedVia, Store};

/// Where a seed file is dropped: `inbox/seeds/<period>.txt`.
pub const INBOX_SEEDS: &str = "seeds";

/// Who receives the commitment: the chief administrator and every
/// ethics unit, each address once, in address order.
pub fn commitment_recipients(config: &Config) -> Vec<String> {
    let mut to: Vec<String> = config
        .chief_email()
        .map(str::to_owned)
        .iter()
        .chain(
            config
                .agencies
                .iter()
                .filter_map(|a| a.ethics_email.as_ref()),
        )
        .cloned()
        .collect();
    to.sort();
    to.dedup();
    to
}

/// What a ceremony commits to before its seed exists: the sample
/// audit's population, or the external audit's candidate units.
struct Committed {
    digest: String,
    inputs: String,
    /// What the commitment mail lists of it (template variables).
    facts: serde_json::Value,
    /// When it was committed, local time.
    at: String,
}

/// What `job`'s draw of `period` selects from, frozen now: the candidate
/// units of an external audit, the population of a sample audit.
fn what_is_committed(
    config: &Config,
    job: Job,
    period: &Period,
    clock: &dyn Clock,
) -> Result<Committed> {
    Ok(match job {
        Job::ExternalAudit => {
            let (candidates, digest, inputs) =
                super::annual::external_candidates(config, period, clock)?;
            let names = |id: &str| {
                config
                    .agencies
                    .get(id)
                    .map(|a| a.name.clone())
                    .unwrap_or_default()
            };
            Committed {
                facts: serde_json::json!({
                    "units": candidates.iter().map(|c| serde_json::json!({
                        "unit_id": c.unit_id, "name": names(&c.unit_id),
                        "critical": c.critical, "first": c.first,
                    })).collect::<Vec<_>>(),
                    "units_to_select": config.rules.external_audit_units,
                }),
                digest,
                inputs: serde_json::to_string(&inputs)?,
                at: super::local_text(clock.local(config.timezone)),
            }
        }
        _ => {
            let (freeze, records, accounts) = super::freeze_counted(config, period, clock)?;
            Committed {
                facts: serde_json::json!({"records": records, "accounts": accounts}),
                digest: freeze.population_digest,
                inputs: freeze.inputs,
                at: freeze.frozen_at,
            }
        }
    })
}

/// Freezes what `job`'s draw of `period` selects from (the population of
/// a sample audit, the candidate units of an external audit) and mails
/// the commitment; returns the ceremony as recorded, keyed by
/// [`super::draw_key`]. `wait_days` and `fallback_os` are the
/// schedule's, stated in the commitment so its readers know what happens
/// next.
pub fn commit(
    config: &Config,
    job: Job,
    period: &Period,
    (wait_days, fallback_os): (i64, bool),
    clock: &dyn Clock,
) -> Result<Ceremony> {
    let key = super::draw_key(job, &period.id);
    let to = commitment_recipients(config);
    anyhow::ensure!(
        !to.is_empty(),
        "no one to mail the commitment of {key} to: the Health Bureau has no officer_email and no \
         agency has an ethics_email; nothing was committed"
    );
    let committed = what_is_committed(config, job, period, clock)?;
    let inputs: Vec<crate::sampling::manifest::InputHash> =
        serde_json::from_str(&committed.inputs)?;
    let mut store = Store::open(&config.paths.state)?;
    let head = store.chain_head()?;
    let now = clock.now();
    let mut vars = serde_json::json!({
        "period": period.id,
        "job": job.as_str(),
        "start": super::local_text(period.start),
        "end": super::local_text(period.end),
        "timezone": config.timezone.name(),
        "committed_at": committed.at,
        "digest": committed.digest,
        "inputs": inputs,
        "wait_days": wait_days,
        "fallback_os": fallback_os,
        "inbox_seed": Path::new(INBOX_SEEDS).join(seed_file_name(&key)).display().to_string(),
        "seed_command": seed_command(job, &period.id, "<種子數字>"),
        "chain_head": head.as_ref().map(|h| h.label()).unwrap_or_default(),
        "reply_to": config.mail.reply_address(),
    });
    if let (Some(v), serde_json::Value::Object(f)) = (vars.as_object_mut(), committed.facts) {
        v.extend(f);
    }
    let body = config.templates.render("commitment.txt.j2", &vars)?;
    let subject = match job {
        Job::ExternalAudit => format!(
            "【健保WebIR稽核】外部稽核候選單位承諾：{}（種子產生前公告）",
            period.id
        ),
        _ => format!(
            "【健保WebIR稽核】抽樣母體承諾：{}（種子產生前公告）",
            period.id
        ),
    };
    let run = format!("ceremony:{key}");
    let report = format!("commitment:{}", committed.at);
    let messages = to
        .iter()
        .map(|r| crate::mail::plain(config, &run, &report, r, &subject, body.clone(), now))
        .collect::<Result<Vec<_>>>()?;
    let ids: Vec<String> = messages
        .iter()
        .map(|m| format!("{} {}", m.recipient, m.message_id))
        .collect();
    let ceremony = store.record_commitment(
        &key,
        &committed.at,
        &committed.digest,
        &committed.inputs,
        &body,
        &ids,
    )?;
    store.chain_append(
        "commitment",
        &key,
        &hex::encode(sha2::Sha256::digest(body.as_bytes())),
        &committed.at,
    )?;
    store.queue(&messages, &stamp(now))?;
    Ok(ceremony)
}

/// The file a ceremony's seed may be dropped as, under `inbox/seeds/`:
/// `<key>.txt` with the key's `/` written `.` (`2026H1.txt`,
/// `2026.external-audit.txt`).
pub fn seed_file_name(key: &str) -> String {
    format!("{}.txt", key.replace('/', "."))
}

/// The command that gives the seed of `job`'s ceremony of `period`.
pub fn seed_command(job: Job, period: &str, value: &str) -> String {
    match job {
        Job::ExternalAudit => {
            format!("webir-audit seed --period {period} --job {job} --value {value}")
        }
        _ => format!("webir-audit seed --period {period} --value {value}"),
    }
}

/// The key of `job`'s ceremony of `period` ([`super::draw_key`]); refused
/// for a job that draws nothing, which has no ceremony.
pub fn key(job: Job, period: &str) -> Result<String> {
    anyhow::ensure!(
        job.draws(),
        "{job} draws nothing: a seed is given for sample-audit or external-audit"
    );
    Ok(super::draw_key(job, period))
}

/// The seed a ceremony gave, for a draw of `what` (`population`,
/// `candidate units`) whose digest is `now`: refused when it changed since
/// the commitment (it binds).
pub fn seed_of(c: &Ceremony, what: &str, now: &str) -> Result<Seed> {
    anyhow::ensure!(
        c.population_digest == now,
        "the {what} of {} changed since its commitment was mailed at {}: committed digest {}, \
         now {now}; nothing was drawn. The commitment binds the draw: restore the inputs it names \
         (the commitment mail lists them), or start a new ceremony",
        c.period,
        c.committed_at,
        c.population_digest,
    );
    Ok(c.seed
        .as_deref()
        .context("the ceremony has no seed yet; nothing was drawn")?
        .parse::<Seed>()?)
}

/// Whether the ceremony's seed is the OS's, no seed having come in time.
pub fn fell_back(c: &Ceremony) -> bool {
    c.seed_via == Some(SeedVia::OsFallback)
}

/// Records the seed of `period`'s open ceremony, given by `by` through
/// `via`. Refused when no commitment exists (a seed must come after one),
/// when the ceremony already has its seed, or when `value` is no seed.
pub fn give(
    config: &Config,
    period: &str,
    value: &str,
    by: &str,
    via: SeedVia,
    clock: &dyn Clock,
) -> Result<Ceremony> {
    let seed: Seed = value.trim().parse()?;
    // Who gave it is free text from an operator: one line of printable
    // characters (a CR/LF would split the lines the chain digest hashes).
    let by: String = by
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect();
    let by = by.as_str();
    anyhow::ensure!(!by.is_empty(), "who gives the seed must be said (--by)");
    let mut store = Store::open(&config.paths.state)?;
    let Some(c) = store.latest_ceremony(period)? else {
        anyhow::bail!(
            "no commitment of {period} has been made: a seed is accepted only after the \
             population is committed and mailed (the daemon does that when the sample audit \
             is due); nothing was recorded"
        );
    };
    if let Some(s) = &c.seed {
        anyhow::bail!(
            "the ceremony of {period} (committed {}) already has its seed {s}, given {} by {}; \
             a seed is recorded once and {} was not recorded",
            c.committed_at,
            c.seed_at.as_deref().unwrap_or("?"),
            c.seed_by.as_deref().unwrap_or("?"),
            seed.as_str()
        );
    }
    let at = super::local_text(clock.local(config.timezone));
    anyhow::ensure!(
        store.give_seed(c.id, seed.as_str(), &at, by, via)?,
        "the ceremony of {period} got its seed meanwhile; {} was not recorded",
        seed.as_str()
    );
    store.chain_append(
        "seed-given",
        period,
        &seed_given_digest(period, seed.as_str(), &at, by, via),
        &at,
    )?;
    store
        .latest_ceremony(period)?
        .context("the ceremony just given its seed is gone")
}

/// The chain digest of a given seed (docs/sampling.md § 13): SHA-256 of
/// `key LF seed LF at LF by LF via LF`.
pub fn seed_given_digest(period: &str, seed: &str, at: &str, by: &str, via: SeedVia) -> String {
    hex::encode(sha2::Sha256::digest(
        format!("{period}\n{seed}\n{at}\n{by}\n{via}\n").as_bytes(),
    ))
}

/// Who is typing: the login behind `sudo`, else the user, and the uid.
pub fn operator() -> String {
    let name = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let Ok(m) = std::fs::metadata("/proc/self") {
            return format!("{name} (uid {})", m.uid());
        }
    }
    name
}

/// `inbox/seeds/<period>.txt`, if dropped: its digits are the seed. The
/// file is renamed `.taken` once recorded (or `.refused`, with the reason
/// returned, when it holds no seed or was written before the commitment).
pub fn take_inbox_seed(
    config: &Config,
    ceremony: &Ceremony,
    clock: &dyn Clock,
) -> Result<Option<std::result::Result<Ceremony, String>>> {
    let period = ceremony.period.as_str();
    let file = config
        .paths
        .inbox
        .join(INBOX_SEEDS)
        .join(seed_file_name(period));
    if std::fs::symlink_metadata(&file).is_err() {
        return Ok(None);
    }
    // Untrusted: a regular file of a seed's size, never a link, a device
    // or a pipe, and never quoted.
    let read = crate::inbox::read_regular(&file, crate::inbox::SEED_MAX_BYTES)
        .map_err(anyhow::Error::from)
        .and_then(|b| {
            String::from_utf8(b).map_err(|_| anyhow::anyhow!("{}: not text", file.display()))
        });
    let text = match read {
        Ok(t) => t,
        Err(e) => {
            let to = set_aside_as(&file, "refused");
            std::fs::rename(&file, &to)
                .with_context(|| format!("moving {} to {}", file.display(), to.display()))?;
            return Ok(Some(Err(format!("{e:#}"))));
        }
    };
    let by = format!("file {}", file.display());
    // A file written before the commitment went out holds a seed chosen
    // before the population was published: never taken.
    let written = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).with_timezone(&config.timezone));
    let early = match (written, ceremony.committed_local()) {
        (Some(w), Some(c)) if w.naive_local() < c => Some(format!(
            "the file was written at {}, before the commitment was mailed at {}: a seed must \
             come after the commitment, from the public source it names; nothing was recorded",
            w.naive_local().format("%Y-%m-%dT%H:%M:%S"),
            c.format("%Y-%m-%dT%H:%M:%S")
        )),
        _ => None,
    };
    let outcome = match early {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => give(config, period, &text, &by, SeedVia::Inbox, clock),
    };
    let (suffix, result) = match outcome {
        Ok(c) => ("taken", Ok(c)),
        Err(e) => ("refused", Err(format!("{}: {e:#}", file.display()))),
    };
    let to = set_aside_as(&file, suffix);
    std::fs::rename(&file, &to)
        .with_context(|| format!("moving {} to {}", file.display(), to.display()))?;
    Ok(Some(result))
}

/// Where a seed file taken or refused goes: `<period>.txt.<suffix>`, or
/// `…-2`, `…-3` beside an earlier one (never over it).
fn set_aside_as(file: &std::path::Path, suffix: &str) -> PathBuf {
    let first = file.with_extension(format!("txt.{suffix}"));
    (1..)
        .map(|n| {
            if n == 1 {
                first.clone()
            } else {
                file.with_extension(format!("txt.{suffix}-{n}"))
            }
        })
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .unwrap_or(first)
}

/// No seed came within the wait and the schedule allows it: the OS's
/// seed, recorded as the ceremony's, said to be a fallback everywhere.
pub fn fall_back(config: &Config, period: &str, clock: &dyn Clock) -> Result<Ceremony> {
    let seed = Seed::draw_os().map_err(|e| anyhow::anyhow!("drawing a seed from the OS: {e}"))?;
    give(
        config,
        period,
        seed.as_str(),
        "webir-audit (no seed came within seed_wait)",
        SeedVia::OsFallback,
        clock,
    )
}

/// What the manifest says of a ceremony: the commitment, its mails, the
/// seed's arrival and the period's seed ledger so far.
pub fn record(store: &Store, c: &Ceremony) -> Result<CeremonyRecord> {
    let ledger = store
        .draws(&c.period)?
        .into_iter()
        .map(|d| LedgerDraw {
            draw_number: d.draw_number,
            seed: d.seed,
            source: d.source,
            drawn_at: d.drawn_at,
            population_digest: d.population_digest,
        })
        .collect();
    Ok(CeremonyRecord {
        committed_at: c.committed_at.clone(),
        commitment_sha256: hex::encode(sha2::Sha256::digest(c.commitment.as_bytes())),
        commitment_messages: c.messages.clone(),
        population_digest: c.population_digest.clone(),
        seed_given_at: c.seed_at.clone().unwrap_or_default(),
        seed_given_by: c.seed_by.clone().unwrap_or_default(),
        seed_via: c.seed_via.map(|v| v.to_string()).unwrap_or_default(),
        seed_ledger: ledger,
    })
}
