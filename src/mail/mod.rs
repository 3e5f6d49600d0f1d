//! Mail: every workbook to the right officer, exactly once.
//!
//! [`crate::templates`] holds the Traditional Chinese templates, compiled when the
//! config loads. [`compose`] turns a rendered workbook into one message per
//! recipient (routing is [`recipients`]: the unit's officer, its ethics unit
//! when the run found something serious, the Health Bureau's officer for
//! the city-wide workbook) with a Message-ID derived from run, report and
//! recipient. [`outbox`] queues those messages in the state database — the
//! unique (run, report, recipient) key makes queueing twice a no-op — and
//! drains them through a [`outbox::Deliver`]: files for the demo, SMTP with
//! TLS required for the city.

pub mod outbox;

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentDisposition, ContentType};
use lettre::message::{Mailbox, Message, MultiPart, SinglePart};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Config, domain_of};
use crate::report::{Cell, ReportModel};

/// Who a message is for, which decides the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The requesting agency's designated officer (專責人員).
    Officer,
    /// The ethics unit, copied when a run found serious anomalies (6(3)).
    Ethics,
    /// The Health Bureau's chief administrator (總管理者), who gets the
    /// city-wide workbook (point 4).
    ChiefAdmin,
}

impl Role {
    pub fn greeting(self) -> &'static str {
        match self {
            Role::Officer => "專責人員",
            Role::Ethics => "政風單位",
            Role::ChiefAdmin => "衛生局總管理者",
        }
    }

    /// The templates' name for the role: what the reader must do follows.
    pub fn name(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Ethics => "ethics",
            Role::ChiefAdmin => "chief_admin",
        }
    }
}

/// The holder of the chief administrator's attachment password in the
/// store (a unit's is its id, its ethics unit's `<id>:ethics`).
pub const CHIEF_HOLDER: &str = "chief_administrator";

/// Whose password encrypts what is mailed to `role` about `unit_id`:
/// each reader opens what is sent to them with a password of their own,
/// never with another's (an ethics unit does not ask the officer whose
/// queries it investigates; the unit's officer does not open the
/// city-wide workbook).
pub fn password_holder(config: &Config, unit_id: &str, role: Role) -> String {
    match role {
        Role::Officer => unit_id.to_owned(),
        Role::Ethics => format!("{unit_id}:ethics"),
        Role::ChiefAdmin if config.chief.is_some() => CHIEF_HOLDER.to_owned(),
        Role::ChiefAdmin => config.agencies.health_bureau().id.clone(),
    }
}

/// Every holder of an attachment password, with what it opens: each
/// requesting unit's officer, its ethics unit, and the chief
/// administrator; in the config's order.
pub fn password_holders(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for a in config.agencies.iter().filter(|a| a.requesting) {
        out.push((a.id.clone(), format!("{} 專責人員", a.name)));
        if a.ethics_email.is_some() {
            out.push((
                password_holder(config, &a.id, Role::Ethics),
                format!("{} 政風單位", a.name),
            ));
        }
    }
    if let Some(c) = &config.chief {
        out.push((
            CHIEF_HOLDER.to_owned(),
            format!("衛生局總管理者 {}", c.name),
        ));
    }
    out
}

/// A composed message, ready to queue: the store's row type.
pub use crate::store::NewMessage as Outgoing;

/// A composed message as the outbox stores it.
fn outgoing(
    run: &str,
    report: &str,
    recipient: &str,
    message_id: String,
    subject: String,
    message: &Message,
) -> Outgoing {
    Outgoing {
        run: run.to_owned(),
        report: report.to_owned(),
        recipient: recipient.to_owned(),
        message_id,
        subject,
        eml: message.formatted(),
    }
}

/// The recipients of a workbook: one message each.
pub fn recipients(config: &Config, model: &ReportModel) -> Vec<(String, Role)> {
    let Some(unit) = config.agencies.get(&model.unit_id) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if model.second_review().is_some() {
        // Never the officer: the unit's second reviewer.
        if let Some((to, who)) = config.second_reviewer(&model.unit_id) {
            let role = match who {
                crate::config::Reviewer::Ethics => Role::Ethics,
                crate::config::Reviewer::ChiefAdmin => Role::ChiefAdmin,
            };
            out.push((to.to_owned(), role));
        }
        return out;
    }
    if model.city_wide() || model.chief_document().is_some() {
        if let Some(c) = config.chief_email() {
            out.push((c.to_owned(), Role::ChiefAdmin));
        }
    } else if let Some(o) = &unit.officer_email {
        out.push((o.clone(), Role::Officer));
    }
    if !model.city_wide()
        && model.chief_document().is_none()
        && model.serious
        && let Some(e) = &unit.ethics_email
    {
        out.push((e.clone(), Role::Ethics));
    }
    out
}

/// A critical finding as the immediate notice lists it (subject masked).
#[derive(Debug, Clone, Serialize)]
pub struct CriticalItem {
    pub description: String,
    pub account: String,
    /// Critical findings of this account and code.
    pub count: i64,
    /// When the first and the last of them happened.
    pub first: String,
    pub last: String,
    /// Distinct people looked up (masked IDs counted).
    pub subjects: i64,
    /// The first finding's reason.
    pub example: String,
}

/// The immediate notice of a unit's critical findings (issue 15, point
/// 6(3)): one message to its officer and one to its ethics unit, apart
/// from the scheduled workbook and its deadline.
pub fn critical_notices(
    config: &Config,
    model: &ReportModel,
    run: &str,
    items: &[CriticalItem],
    now: DateTime<Utc>,
) -> Result<Vec<Outgoing>> {
    let Some(unit) = config.agencies.get(&model.unit_id) else {
        return Ok(Vec::new());
    };
    if items.is_empty() || model.city_wide() {
        return Ok(Vec::new());
    }
    let total: i64 = items.iter().map(|i| i.count).sum();
    let accounts = items
        .iter()
        .map(|i| i.account.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut out = Vec::new();
    let to = [
        (unit.officer_email.as_ref(), Role::Officer),
        (unit.ethics_email.as_ref(), Role::Ethics),
    ];
    for (address, role) in to {
        let Some(address) = address else { continue };
        let body = config.templates.render(
            "critical.txt.j2",
            &serde_json::json!({
                "recipient_role": role.greeting(),
                "role": role.name(),
                "unit_name": model.unit_name,
                "period_label": model.period_label,
                "run_id": model.run_id,
                // The deadline the workbook states, a working day.
                "due_on": crate::report::build::deadline(
                    config,
                    model.kind,
                    model.generated_at
                )
                .1
                .to_string(),
                "total": total,
                "accounts": accounts,
                "items": items,
            }),
        )?;
        out.push(plain(
            config,
            run,
            &format!("critical:{}", model.unit_id),
            address,
            &format!(
                "【健保WebIR稽核】緊急：{} 發現嚴重異常 {total} 件（{accounts} 個帳號）",
                model.unit_name,
            ),
            body,
            now,
        )?);
    }
    Ok(out)
}

/// `<hash@domain>`: the same run, report and recipient always give the same
/// Message-ID, so a resent message is recognisably the same message.
pub fn message_id(config: &Config, run: &str, report: &str, recipient: &str) -> String {
    let h = Sha256::digest(format!("{run}\n{report}\n{recipient}").as_bytes());
    let domain = match domain_of(&config.mail.from) {
        "" => "webir-audit.invalid",
        d => d,
    };
    format!("<{}.webir-audit@{domain}>", &hex::encode(h)[..32])
}

/// RFC 2047 encoded-word (base64) for a header parameter Outlook reads.
fn encoded_word(s: &str) -> String {
    format!(
        "=?utf-8?b?{}?=",
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    )
}

#[derive(Debug, Serialize)]
struct Count {
    label: String,
    count: i64,
}

/// What the templates see.
#[derive(Debug, Serialize)]
struct MailContext<'a> {
    recipient_role: &'static str,
    /// `officer`, `ethics` or `chief_admin`.
    role: &'static str,
    unit_name: &'a str,
    period_label: &'a str,
    kind_title: &'static str,
    city_wide: bool,
    rule: &'static str,
    run_id: &'a str,
    findings_total: i64,
    by_severity: Vec<Count>,
    actions: &'a [String],
    /// Checks withheld because their inputs failed: first in the mail.
    warnings: &'a [String],
    attachment_name: &'a str,
    too_large: bool,
    encrypted: bool,
    /// Why the attachment is not encrypted (the config's exemption).
    unencrypted_reason: &'a str,
    max_attachment_mb: u32,
    collect_path: String,
    draw_number: u32,
    subject: String,
    /// Where to return the workbook and ask (`mail.reply_to`, else `from`).
    reply_to: String,
    /// Who to ask (`mail.contact`).
    contact: &'a str,
    /// The evidence chain's head when the workbook was made.
    chain_head: &'a str,
    /// A sample audit's seed, how it came and the commitment's time.
    seed_line: String,
    /// A second review of the officers' own accounts: the reviewer audits.
    second_review: bool,
    /// The accounts a second review holds.
    review_accounts: String,
    /// A workbook the chief administrator fills in: its name (else empty)
    /// and the rows to fill (it says that, not the run's findings).
    chief_document: &'a str,
    chief_rows: usize,
}

/// The file name officers see: Chinese, and saying what it is.
pub fn attachment_name(model: &ReportModel) -> String {
    let scope = match (model.city_wide(), &model.second_review()) {
        (true, _) => "全市彙整",
        (false, Some(_)) => "專責人員本人帳號覆核",
        (false, None) => "",
    };
    // A review day reads 基準日2026-07-10, not the folder's as-of form.
    let period = match crate::period::RunPeriod::parse(&model.period_id).and_then(|p| p.as_of()) {
        Some(day) => format!("基準日{day}"),
        None => model.period_id.clone(),
    };
    crate::archive::file_name_of(&format!(
        "健保WebIR稽核_{}{scope}_{period}_{}.xlsx",
        model.unit_name,
        // What the chief fills in is named as such (外部稽核紀錄).
        model.chief_document().unwrap_or(model.kind.title())
    ))
}

/// A workbook as mailed (rule 5(2)2): encrypted with Office's agile
/// encryption (AES-256, SHA-512) so Excel asks for the unit's password,
/// unless the config exempts the unit, which every mail then says.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub bytes: Vec<u8>,
    /// `None`: encrypted; `Some(reason)`: mailed in the clear.
    pub unencrypted: Option<String>,
}

/// Characters of an issued password: no 0/O, 1/l/I, read out by phone.
const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
const PASSWORD_LEN: usize = 16;

/// A new attachment password from the OS's randomness: it must not be
/// guessable, so it is never derived from anything the program knows.
pub fn new_password() -> String {
    use rand09::{Rng as _, SeedableRng as _};
    let mut rng = rand09::rngs::StdRng::from_os_rng();
    (0..PASSWORD_LEN)
        .map(|_| char::from(PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())]))
        .collect()
}

/// `workbook` as it is mailed to `role` about `unit_id`. The password is
/// the unit's `attachment_password_env` when set (a missing variable is an
/// error, never a plain copy), else the reader's own issued password in
/// the state store ([`password_holder`]), made now (`at`) if it has none.
pub fn protect(
    config: &Config,
    store: &mut crate::store::Store,
    unit_id: &str,
    role: Role,
    workbook: &[u8],
    at: &str,
) -> Result<Attachment> {
    sealing(config, store, unit_id, role, at)?.apply(workbook)
}

/// How a workbook is sealed for one reader: the password it is encrypted
/// with, or why it goes in the clear. Taken from the state store (in
/// order, one reader after another); [`Sealing::apply`] then needs nothing
/// but the workbook, so that a run's attachments encrypt side by side.
#[derive(Clone)]
pub enum Sealing {
    Password(String),
    Unencrypted(String),
}

impl std::fmt::Debug for Sealing {
    /// Never the password itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sealing::Password(_) => f.write_str("Sealing::Password(…)"),
            Sealing::Unencrypted(reason) => write!(f, "Sealing::Unencrypted({reason:?})"),
        }
    }
}

/// The [`Sealing`] of `role`'s copies of `unit_id`'s workbooks (see
/// [`protect`]).
pub fn sealing(
    config: &Config,
    store: &mut crate::store::Store,
    unit_id: &str,
    role: Role,
    at: &str,
) -> Result<Sealing> {
    use crate::config::AttachmentProtection as P;
    let holder = password_holder(config, unit_id, role);
    let setting = match role {
        Role::ChiefAdmin if config.chief.is_some() => None,
        _ => config.agencies.get(unit_id).map(|a| &a.attachment),
    };
    Ok(match setting {
        Some(P::Unencrypted(reason)) => Sealing::Unencrypted(reason.clone()),
        Some(P::Env(var)) => Sealing::Password(
            std::env::var(var)
                .ok()
                .filter(|p| !p.is_empty())
                .with_context(|| {
                    format!(
                        "environment variable {var} (agencies.{unit_id}.attachment_password_env) is not \
                         set: its workbooks are not mailed unencrypted"
                    )
                })?,
        ),
        Some(P::Issued) | None => Sealing::Password(
            store
                .attachment_password_or_issue(
                    &holder,
                    at,
                    new_password,
                    &store.password_key(&config.paths.key_file)?,
                )?
                .password,
        ),
    })
}

impl Sealing {
    /// `workbook` sealed: encrypted (ECMA-376 agile, a fresh salt from the
    /// OS), or a plain copy with its reason.
    pub fn apply(&self, workbook: &[u8]) -> Result<Attachment> {
        use rand09::SeedableRng as _;
        use std::io::Write as _;
        let password = match self {
            Sealing::Unencrypted(reason) => {
                return Ok(Attachment {
                    bytes: workbook.to_vec(),
                    unencrypted: Some(reason.clone()),
                });
            }
            Sealing::Password(p) => p,
        };
        let mut rng = rand09::rngs::StdRng::from_os_rng();
        let mut w = ms_offcrypto_writer::Ecma376AgileWriter::create(
            &mut rng,
            password.as_str(),
            std::io::Cursor::new(Vec::new()),
        )
        .context("encrypting the workbook")?;
        w.write_all(workbook).context("encrypting the workbook")?;
        let out = w.into_inner().context("encrypting the workbook")?;
        Ok(Attachment {
            bytes: out.into_inner(),
            unencrypted: None,
        })
    }
}

/// Composes the message carrying `attachment` (the workbook written at
/// `path`, as [`protect`] made it) to `recipient`.
#[allow(clippy::too_many_arguments)]
pub fn compose(
    config: &Config,
    model: &ReportModel,
    run: &str,
    report: &str,
    attachment: &Attachment,
    path: &std::path::Path,
    recipient: &str,
    role: Role,
    draw_number: u32,
    now: DateTime<Utc>,
) -> Result<Outgoing> {
    let by_severity: Vec<Count> = model
        .by_severity
        .rows
        .iter()
        .filter_map(|r| match (r.first(), r.get(1)) {
            (Some(Cell::Text(l)), Some(Cell::Int(n))) => Some(Count {
                label: l.clone(),
                count: *n,
            }),
            _ => None,
        })
        .collect();
    let name = attachment_name(model);
    let too_large =
        attachment.bytes.len() as u64 > u64::from(config.mail.max_attachment_mb) * 1024 * 1024;
    let mut cx = MailContext {
        recipient_role: role.greeting(),
        role: role.name(),
        unit_name: &model.unit_name,
        period_label: &model.period_label,
        kind_title: model.kind.title(),
        city_wide: model.city_wide(),
        rule: model.rule(),
        run_id: &model.run_id,
        findings_total: by_severity.iter().map(|c| c.count).sum(),
        by_severity,
        actions: &model.actions,
        warnings: &model.warnings,
        attachment_name: &name,
        too_large,
        encrypted: attachment.unencrypted.is_none(),
        unencrypted_reason: attachment.unencrypted.as_deref().unwrap_or(""),
        max_attachment_mb: config.mail.max_attachment_mb,
        collect_path: path.display().to_string(),
        draw_number,
        subject: String::new(),
        reply_to: config.mail.reply_address().to_owned(),
        contact: config.mail.contact.as_deref().unwrap_or(""),
        // The run that opens the chain has no entry before it.
        chain_head: model
            .chain_head
            .as_deref()
            .unwrap_or("（本次為證據鏈首筆）"),
        seed_line: model.sample().map(|s| s.seed_line()).unwrap_or_default(),
        second_review: model.second_review().is_some(),
        chief_document: model.chief_document().unwrap_or(""),
        chief_rows: match &model.document {
            crate::report::Document::OfficerReview { accounts: t }
            | crate::report::Document::ExternalRecord { record: t } => t.rows.len(),
            _ => 0,
        },
        review_accounts: model
            .second_review()
            .map(|r| r.accounts.join("、"))
            .unwrap_or_default(),
    };
    let t = &config.templates;
    cx.subject = t.render("subject.j2", &cx)?.trim().to_owned();
    // A kind's templates are named after its job.
    let kind = model.kind.job().as_str();
    let text = t.render(&format!("{kind}.txt.j2"), &cx)?;
    let html = t.render(&format!("{kind}.html.j2"), &cx)?;
    let id = message_id(config, run, report, recipient);
    let mut parts = MultiPart::mixed().multipart(MultiPart::alternative_plain_html(text, html));
    if !too_large {
        parts = parts.singlepart(workbook_part(&name, attachment)?);
    }
    let message = envelope(config, recipient, &cx.subject, &id, now)?
        .multipart(parts)
        .context("composing the message")?;
    Ok(outgoing(run, report, recipient, id, cx.subject, &message))
}

/// A workbook as a MIME part, its Chinese file name readable by Outlook.
fn workbook_part(name: &str, attachment: &Attachment) -> Result<SinglePart> {
    let ct = ContentType::parse(&format!(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet; name=\"{}\"",
        encoded_word(name)
    ))
    .context("the attachment's content type")?;
    Ok(SinglePart::builder()
        .header(ct)
        .header(ContentDisposition::attachment(name))
        .body(attachment.bytes.clone()))
}

/// A plain-text message carrying a workbook (a handover to a new
/// officer), with the same deterministic Message-ID as a report's.
#[allow(clippy::too_many_arguments)]
pub fn plain_with_workbook(
    config: &Config,
    run: &str,
    report: &str,
    recipient: &str,
    subject: &str,
    body: String,
    name: &str,
    attachment: &Attachment,
    now: DateTime<Utc>,
) -> Result<Outgoing> {
    let parts = MultiPart::mixed()
        .singlepart(SinglePart::plain(body))
        .singlepart(workbook_part(name, attachment)?);
    finish(config, run, report, recipient, subject, now, |b| {
        b.multipart(parts)
    })
}

/// A message of `run` and `report` to `recipient`: the envelope, the body
/// `build` adds, and the outbox row.
fn finish(
    config: &Config,
    run: &str,
    report: &str,
    recipient: &str,
    subject: &str,
    now: DateTime<Utc>,
    build: impl FnOnce(lettre::message::MessageBuilder) -> Result<Message, lettre::error::Error>,
) -> Result<Outgoing> {
    let id = message_id(config, run, report, recipient);
    let message =
        build(envelope(config, recipient, subject, &id, now)?).context("composing the message")?;
    Ok(outgoing(
        run,
        report,
        recipient,
        id,
        subject.to_owned(),
        &message,
    ))
}

/// The headers every message has: from, to, subject, the deterministic
/// Message-ID and the date (from the injected clock).
fn envelope(
    config: &Config,
    recipient: &str,
    subject: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<lettre::message::MessageBuilder> {
    let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(now.timestamp().max(0) as u64);
    let mut builder = Message::builder();
    if let Some(r) = &config.mail.reply_to {
        builder = builder.reply_to(r.parse::<Mailbox>().context("mail.reply_to")?);
    }
    Ok(builder
        .from(config.mail.from.parse::<Mailbox>().context("mail.from")?)
        .to(recipient
            .parse::<Mailbox>()
            .with_context(|| format!("recipient {recipient:?}"))?)
        .subject(subject)
        .message_id(Some(id.to_owned()))
        .date(sent))
}

/// A plain-text message (alerts, anomaly notices) with the same
/// deterministic Message-ID as a report's.
pub fn plain(
    config: &Config,
    run: &str,
    report: &str,
    recipient: &str,
    subject: &str,
    body: String,
    now: DateTime<Utc>,
) -> Result<Outgoing> {
    // Built without a template (the admin's notices quote file names and
    // errors): masked here as every template's output is.
    let subject = crate::privacy::mask_ids_in_text(subject);
    let body = crate::privacy::mask_ids_in_text(&body);
    finish(config, run, report, recipient, &subject, now, |b| {
        b.header(ContentType::TEXT_PLAIN).body(body)
    })
}
