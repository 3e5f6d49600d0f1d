//! Witnessed seals (docs/sampling.md § 13): the evidence chain's new head
//! is mailed to people outside the server — the chief administrator, and
//! the ethics unit of each unit the new entries concern — so that a chain
//! rebuilt afterwards (a changed file, its seal and every hash after it
//! recomputed) no longer contains a head someone holds. One receipt per
//! recipient per pass, covering every entry since the last receipt: a busy
//! day is one mail.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::mail;
use crate::store::{ChainEntry, Store};

/// The state's record of the last entry a receipt covered.
const RECEIPT_SEQ: &str = "receipt_seq";

/// The outbox's folder key of receipts (they belong to no run).
const RECEIPTS: &str = "receipts";

/// An entry as a receipt lists it.
#[derive(Serialize)]
struct Line<'a> {
    seq: i64,
    kind: &'a str,
    id: &'a str,
    at: &'a str,
}

/// Whether `e` concerns `unit`: a run's seal concerns every unit (each has
/// its workbook there), a kept return its own unit; seeds, freezes and
/// deletions are the Health Bureau's.
fn concerns(e: &ChainEntry, unit: &str) -> bool {
    match e.kind.as_str() {
        "seal" => true,
        // `<period>/returns/<run>_<unit>_<received>` (`KPB.review` for a
        // second review's, `DSM.chief` for the chief's record of DSM).
        "return" => {
            e.id.rsplit('/')
                .next()
                .and_then(|name| name.split('_').nth(1))
                .is_some_and(|key| key == unit || key.starts_with(&format!("{unit}.")))
        }
        _ => false,
    }
}

/// Queues the receipts of the entries appended since the last receipt;
/// returns how many messages were queued (none when nothing was added).
/// The receipt's head and the mark of what it covered are written in one
/// transaction: a crash sends it again, never skips it.
pub fn send(config: &Config, store: &mut Store, now: DateTime<Utc>) -> Result<usize> {
    let last: i64 = store
        .meta_get(RECEIPT_SEQ)?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chain = store.chain()?;
    let new: Vec<&ChainEntry> = chain.iter().filter(|e| e.seq > last).collect();
    let Some(head) = new.last() else {
        return Ok(0);
    };
    let mut to: Vec<(String, mail::Role, Vec<&ChainEntry>, String)> = Vec::new();
    let chief = config
        .chief_email()
        .unwrap_or(config.mail.admin.as_str())
        .to_owned();
    to.push((
        chief,
        mail::Role::ChiefAdmin,
        new.clone(),
        "衛生局".to_owned(),
    ));
    for unit in config.agencies.units() {
        let Some(ethics) = &unit.ethics_email else {
            continue;
        };
        let mine: Vec<&ChainEntry> = new
            .iter()
            .copied()
            .filter(|e| concerns(e, &unit.id))
            .collect();
        if !mine.is_empty() && !to.iter().any(|(t, ..)| t.eq_ignore_ascii_case(ethics)) {
            to.push((ethics.clone(), mail::Role::Ethics, mine, unit.name.clone()));
        }
    }
    let subject = format!(
        "【健保WebIR稽核】證據鏈收據：第 {} 筆 {}",
        head.seq,
        &head.hash[..16]
    );
    let mut messages = Vec::new();
    for (address, role, entries, whose) in &to {
        let body = config.templates.render(
            "receipt.txt.j2",
            &serde_json::json!({
                "recipient_role": role.greeting(),
                "head_seq": head.seq,
                "head_hash": head.hash,
                "whose": whose,
                "entries": entries
                    .iter()
                    .map(|e| Line {
                        seq: e.seq,
                        kind: &e.kind,
                        id: &e.id,
                        at: &e.at,
                    })
                    .collect::<Vec<_>>(),
            }),
        )?;
        messages.push(mail::plain(
            config,
            RECEIPTS,
            &format!("receipt:{}", head.seq),
            address,
            &subject,
            body,
            now,
        )?);
    }
    let stamp = mail::outbox::stamp(now);
    let queued = store.atomically(|store| {
        let n = store.queue(&messages, &stamp)?;
        store.meta_set(RECEIPT_SEQ, &head.seq.to_string())?;
        Ok(n)
    })?;
    tracing::info!(head = head.seq, queued, "evidence chain receipts queued");
    Ok(queued)
}
