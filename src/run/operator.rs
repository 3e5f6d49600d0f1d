//! What an operator does by hand between runs: send the due mail, close an
//! item, resend, retry or confirm a message, issue or rotate attachment
//! passwords, place or release a legal hold, verify the archive. Each is
//! one function the command line calls and prints the result of; the
//! decisions are made here, whoever calls.

use std::path::Path;

use anyhow::{Context, Result};

use crate::clock::Clock;
use crate::config::{AttachmentProtection, Config};
use crate::mail::outbox::Drained;
use crate::store::{DueItem, Store};

/// Held by the one daemon of a state folder; taken too by what must not
/// run beside it (a key rotation).
#[derive(Debug)]
pub struct DaemonLock(#[allow(dead_code)] std::fs::File);

impl DaemonLock {
    /// Takes `paths.state/daemon.lock`, or says who holds it.
    pub fn acquire(state: &Path) -> Result<DaemonLock> {
        std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
        let path = state.join("daemon.lock");
        let mut file = crate::archive::open_lock(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {
                use std::io::{Seek, Write};
                file.set_len(0)?;
                file.seek(std::io::SeekFrom::Start(0))?;
                writeln!(file, "{}", std::process::id())?;
                Ok(DaemonLock(file))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                anyhow::bail!(
                    "another webir-audit daemon (pid {}) is running on {}; only one may",
                    pid.trim(),
                    state.display()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// The state's record of the agency register the daemon last ran with.
pub const AGENCIES_LAST_RUN: &str = "agencies_last_run";

/// The register's changes since the daemon last ran with it, or `None`
/// if it never ran on this state.
pub fn agency_changes_since_daemon(config: &Config) -> Result<Option<Vec<String>>> {
    if !config.paths.state.join("state.sqlite3").exists() {
        return Ok(None);
    }
    let store = Store::open(&config.paths.state)?;
    Ok(store
        .meta_get(AGENCIES_LAST_RUN)?
        .map(|before| crate::config::register::changes(&before, config)))
}

/// Sends every due message of the outbox, the receipt of what was sealed
/// first: it leaves the server with the mail.
pub fn send_due_mail(config: &Config, clock: &dyn Clock) -> Result<Drained> {
    let mut store = Store::open(&config.paths.state)?;
    crate::receipt::send(config, &mut store, clock.now())?;
    let mut transport = crate::mail::outbox::transport(config)?;
    crate::mail::outbox::drain(config, &mut store, transport.as_mut(), clock.now())
}

/// Closes by hand the open items of `unit` in `run` (its id or folder),
/// noting why; the items closed. None open is an error.
pub fn close_due_items(
    config: &Config,
    run: &str,
    unit: &str,
    note: &str,
    clock: &dyn Clock,
) -> Result<Vec<DueItem>> {
    let mut store = Store::open(&config.paths.state)?;
    let at = clock
        .local(config.timezone)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let open: Vec<DueItem> = store
        .due_items()?
        .into_iter()
        .filter(|i| (i.run_id == run || i.run_dir == run) && i.unit_id == unit)
        .filter(|i| i.closed_at.is_none())
        .collect();
    anyhow::ensure!(!open.is_empty(), "no open item of unit {unit} in run {run}");
    // All of them, or (an error) none.
    store.atomically(|store| {
        for i in &open {
            store.close_due(
                &i.job,
                &i.run_id,
                unit,
                &at,
                &format!("closed by hand: {note}"),
            )?;
        }
        Ok(())
    })?;
    Ok(open)
}

/// What a resend did.
#[derive(Debug)]
pub enum Resent {
    /// The unit's open items handed over to its current officer.
    HandedOver(usize),
    /// What the run sent the address, queued again.
    Queued(usize),
}

/// Queues for `to` again what run `run` sent it (the caller sends the due
/// mail). A unit's current officer may be sent the unit's open items of
/// the run even if the run mailed someone else (an officer change); any
/// other address only what the run sent it.
pub fn resend(config: &Config, run: &str, to: &str, clock: &dyn Clock) -> Result<Resent> {
    let mut store = Store::open(&config.paths.state)?;
    let is_officer = |unit: &str| {
        config
            .agencies
            .get(unit)
            .and_then(|a| a.officer_email.as_deref())
            .is_some_and(|o| o.eq_ignore_ascii_case(to))
    };
    let current: Vec<DueItem> = store
        .due_items()?
        .into_iter()
        .filter(|i| (i.run_dir == run || i.run_id == run) && !i.sent_to.eq_ignore_ascii_case(to))
        .filter(|i| is_officer(&i.unit_id))
        .collect();
    let resent = if current.is_empty() {
        let ids = crate::mail::outbox::resend(config, &mut store, run, to, clock.now())?;
        Resent::Queued(ids.len())
    } else {
        for item in &current {
            crate::followup::hand_over_item(config, &mut store, item, to, clock.now())?;
        }
        Resent::HandedOver(current.len())
    };
    Ok(resent)
}

/// Makes a failed or unknown message pending again, unless its body was
/// dropped after `rules.outbox_keep_days`.
pub fn retry_message(config: &Config, id: i64, clock: &dyn Clock) -> Result<()> {
    let mut store = Store::open(&config.paths.state)?;
    let now = clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    anyhow::ensure!(
        store.dropped_body_sha256(id)?.is_none(),
        "message {id}'s body was dropped after rules.outbox_keep_days = {}: \
         its workbook is in the sealed run folder; run it again or send it from there",
        config.rules.outbox_keep_days
    );
    anyhow::ensure!(
        store.retry(id, &now)?,
        "no failed or unknown message {id} in the outbox"
    );
    Ok(())
}

/// Records a message of unknown outcome as delivered (the operator saw
/// it arrive).
pub fn confirm_delivered(config: &Config, id: i64, clock: &dyn Clock) -> Result<()> {
    let mut store = Store::open(&config.paths.state)?;
    let now = crate::mail::outbox::stamp(clock.now());
    anyhow::ensure!(
        store.confirm_sent(id, &now)?,
        "no message {id} of unknown outcome in the outbox"
    );
    Ok(())
}

/// One holder of attachment passwords, in config order: each requesting
/// unit's officer, its ethics unit, the chief administrator.
#[derive(Debug)]
pub struct PasswordHolder {
    /// `<unit id>`, `<unit id>:ethics` or the chief's holder name.
    pub holder: String,
    pub label: String,
    pub protection: AttachmentProtection,
    /// The issued password and when, for an issued protection that has one.
    pub issued: Option<(String, String)>,
}

/// The attachment password holders and their passwords, after issuing new
/// ones to `issue` (holder ids) or, if `issue` is `Some(&[])`, to every
/// issued holder that has none. A holder whose workbooks are not
/// protected by an issued password cannot be issued one.
pub fn attachment_passwords(
    config: &Config,
    issue: Option<&[String]>,
    clock: &dyn Clock,
) -> Result<Vec<PasswordHolder>> {
    use AttachmentProtection as P;
    let mut store = Store::open(&config.paths.state)?;
    let at = clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let key = store.password_key(&config.paths.key_file)?;
    // A holder's protection: its unit's (an ethics unit's is its unit's);
    // the chief administrator's is always an issued password.
    let holders: Vec<(String, String, P)> = crate::mail::password_holders(config)
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
    if let Some(ids) = issue {
        for id in ids {
            match holders.iter().find(|(h, ..)| h == id).map(|(.., p)| p) {
                Some(P::Issued) => {}
                Some(_) => anyhow::bail!(
                    "{id}: its workbooks are not encrypted with an issued password \
                     (attachment_password_env or attachment_unencrypted in the config)"
                ),
                None => anyhow::bail!(
                    "{id}: not a requesting agency, its ethics unit (<id>:ethics) or {} of the config",
                    crate::mail::CHIEF_HOLDER
                ),
            }
        }
        for (h, ..) in holders.iter().filter(|(.., p)| *p == P::Issued) {
            if ids.contains(h) {
                store.issue_attachment_password(h, &crate::mail::new_password(), &at, &key)?;
            } else if ids.is_empty() {
                store.attachment_password_or_issue(h, &at, crate::mail::new_password, &key)?;
            }
        }
    }
    holders
        .into_iter()
        .map(|(holder, label, protection)| {
            let issued = match protection {
                P::Issued => store
                    .attachment_password(&holder, &key)?
                    .map(|p| (p.password, p.issued_at)),
                P::Env(_) | P::Unencrypted(_) => None,
            };
            Ok(PasswordHolder {
                holder,
                label,
                protection,
                issued,
            })
        })
        .collect()
}

/// Seals every attachment password under the key at `new_key` (created
/// there); the number moved. Not while the daemon runs: it would seal a
/// new password under the key being retired.
pub fn rotate_key(config: &Config, new_key: &Path) -> Result<usize> {
    let _daemon = DaemonLock::acquire(&config.paths.state)
        .context("stop the daemon before rotating the key")?;
    let old = crate::keyfile::KeyFile::open(&config.paths.key_file)?;
    crate::keyfile::create(new_key)?;
    let new = crate::keyfile::KeyFile::open(new_key)?;
    let mut store = Store::open(&config.paths.state)?;
    store.reseal_passwords(&old, &new).inspect_err(|_| {
        // Nothing moved to it: the new key goes, the old stays.
        let _ = std::fs::remove_file(new_key);
    })
}

/// Sends one test message straight through the transport; its message id.
pub fn send_test(config: &Config, to: &str, clock: &dyn Clock) -> Result<String> {
    let now = clock.now();
    anyhow::ensure!(
        config.mail.may_send_to(to),
        "{to:?} is not an address inside mail.allowed_domains {:?}",
        config.mail.allowed_domains
    );
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
    result
        .map(|()| m.message_id)
        .map_err(|f| anyhow::anyhow!("the test message to {to} was not delivered: {f:?}"))
}

/// What [`hold`] did to a target: its recorded id and when.
#[derive(Debug)]
pub struct HoldChange {
    pub target: String,
    pub at: String,
}

/// Places (or, with `release`, releases) a legal hold on `target`: a
/// unit's id, or an archived run or return (its folder or chain id). The
/// reason is required, masked and hashed into the evidence chain.
pub fn hold(
    config: &Config,
    target: &str,
    reason: Option<&str>,
    release: bool,
    clock: &dyn Clock,
) -> Result<HoldChange> {
    let mut store = Store::open(&config.paths.state)?;
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .context("--reason is required: a hold and its release say why")?;
    let target = hold_target(config, &store, target)?;
    // Kept for years and hashed into the chain: no whole national ID.
    let reason = crate::privacy::mask_ids_in_text(reason);
    let at = clock
        .local(config.timezone)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let done = if release {
        store.release_hold(&target, &reason, &at)?
    } else {
        store.place_hold(&target, &reason, &at)?
    };
    match (done, release) {
        (Some(_), _) => Ok(HoldChange { target, at }),
        (None, false) => anyhow::bail!("{target} is already held: one hold at a time"),
        (None, true) => anyhow::bail!("{target} is not held"),
    }
}

/// A hold's target as recorded: a unit's id, or the chain id of an
/// archived run or return (given as its folder or its id).
fn hold_target(config: &Config, store: &Store, given: &str) -> Result<String> {
    if config.agencies.units().any(|u| u.id == given) {
        return Ok(given.to_owned());
    }
    if let Some(a) = config.agencies.get(given) {
        anyhow::bail!(
            "{given} is not a unit but an agency of {}: hold its unit, whose workbooks hold its rows",
            a.unit
        );
    }
    let path = Path::new(given);
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

/// What [`verify_archive`] found.
#[derive(Debug)]
pub struct ArchiveCheck {
    pub runs: usize,
    pub exports: usize,
    pub problems: Vec<crate::archive::ArchiveProblem>,
    pub chain: Vec<crate::store::ChainEntry>,
    /// The entry a given head names, if it is in the chain.
    pub head_entry: Option<crate::store::ChainEntry>,
}

/// Verifies every run folder against its seal, the evidence chain (to
/// `head`, a head a receipt or workbook showed, if given) and the stored
/// exports.
pub fn verify_archive(config: &Config, head: Option<&str>) -> Result<ArchiveCheck> {
    let (runs, mut problems) = crate::archive::verify_all(&config.paths.archive)?;
    let store = Store::open(&config.paths.state)?;
    let chain = store.chain()?;
    problems.extend(crate::archive::verify_chain(
        &config.paths.archive,
        &chain,
        head,
    )?);
    let (exports, stored) = crate::inputs::verify(config, &store)?;
    problems.extend(stored);
    let head_entry = head
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| h.len() >= 16)
        .and_then(|h| chain.iter().find(|e| e.hash.starts_with(&h)).cloned());
    Ok(ArchiveCheck {
        runs,
        exports,
        problems,
        chain,
        head_entry,
    })
}
