//! A completed worksheet coming back (`ingest-worksheet`): matched to its
//! run and checked by `worksheet`, its answers recorded, and the anomalies
//! it confirms sent to the unit's ethics unit. `ingest-worksheet` calls
//! [`ingest_worksheet`]; the daemon's passes call [`take_returns`] on
//! what is dropped in `inbox/returns/`.

use std::path::Path;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::Digest as _;

use crate::clock::Clock;
use crate::config::Config;
use crate::mail;
use crate::store::Store;
use crate::worksheet::{ReturnKind, Returned, TableReturned};

/// What came back.
#[derive(Debug)]
pub enum What {
    /// The sample worksheet (point 6(1)).
    Sample(Returned),
    /// An account review's decisions or an internal audit's results.
    Table(TableReturned),
}

/// What ingesting a returned workbook did.
#[derive(Debug)]
pub struct ReturnTaken {
    pub what: What,
    /// Whether the ethics unit was queued a notice of the anomalies.
    pub notice_queued: bool,
    /// Whether it closed the unit's due item: every row answered. A
    /// partial return is recorded and kept, and the item stays open.
    pub closed: bool,
    /// Rows not answered.
    pub unanswered: usize,
    /// Where the file is kept, as received, sealed.
    pub kept: std::path::PathBuf,
}

impl ReturnTaken {
    /// `unit run_id (job)`, for logs and the daemon's pass.
    pub fn describe(&self) -> String {
        let (job, run, unit) = match &self.what {
            What::Sample(r) => (crate::job::Job::SampleAudit.as_str(), &r.run_id, &r.unit_id),
            What::Table(t) => (t.kind.job.as_str(), &t.run_id, &t.unit_id),
        };
        format!(
            "{unit} {job} {run} returned{}",
            if self.closed {
                String::new()
            } else {
                format!(", {} rows unanswered: still open", self.unanswered)
            }
        )
    }
}

/// Reads `file` back (decrypted with the units' passwords when it comes
/// encrypted, as it was mailed) — a sample worksheet, an account review
/// or an internal audit, told by its summary — records its answers, keeps
/// the file as received in the archive, sealed, closes the unit's due
/// item when every row is answered, and queues the ethics unit's notice
/// of the anomalies a worksheet confirms (sent at the next drain).
pub fn ingest_worksheet(config: &Config, file: &Path, clock: &dyn Clock) -> Result<ReturnTaken> {
    let mut store = Store::open(&config.paths.state)?;
    let local = clock.local(config.timezone);
    let now = local.format("%Y-%m-%dT%H:%M:%S").to_string();
    // Untrusted: a regular file of a workbook's size, never a link.
    let received = crate::inbox::read_regular(file, crate::inbox::RETURN_MAX_BYTES)?;
    let sha = hex::encode(sha2::Sha256::digest(&received));
    // The same file again (a careless resend): recognised, nothing
    // recorded, opened or sent twice.
    if let Some(at) = store.received_before(&sha)? {
        anyhow::bail!(
            "{}: the same file came back already, at {at}: nothing was recorded again",
            file.display()
        );
    }
    let (plain, opened_by) = open_return(config, &mut store, file, &received)?;
    refuse_unsafe_workbook(file, &plain)?;
    // Encrypted, it opened only with the password of the reader it was
    // sent to: that reader is the one it may answer for.
    match opened_by {
        Some(holder) => refuse_other_reader(config, file, &plain, &holder)?,
        None => refuse_plain_if_mailed_encrypted(config, file, &plain)?,
    }
    let (what, job, (run_dir, run_id, unit_id, rows, answered)) =
        read_return(file, &plain, &sha, &config.paths.archive, &now)?;
    let run =
        crate::archive::RunFolder::parse(&run_dir).context("the returned workbook's run folder")?;
    // Anomalies a worksheet confirms, and duties an internal audit found
    // 不符合, open their investigation (point 6(3)): its record is made
    // now, kept beside the return, and mailed.
    let case = Case::of(&what);
    let investigation = match &case {
        Some(c) => Some(investigation(config, c, local)?),
        None => None,
    };
    let mut files: Vec<(&str, &[u8])> = vec![("returned.xlsx", &received)];
    if let (Some((bytes, _)), Some(case)) = (&investigation, &case) {
        let name = case
            .found
            .kind
            .kept_as
            .unwrap_or(crate::worksheet::INVESTIGATION_FILE);
        files.push((name, bytes));
    }
    let kept = crate::archive::keep_return(
        &run,
        &unit_id,
        &local.format("%Y%m%dT%H%M%S").to_string(),
        &files,
        &mut store,
        &now,
    )?;
    tracing::info!(kept = %kept.display(), "returned workbook kept");
    // Checked, its record made and kept: only now is what it said
    // recorded, its item closed, its notices queued and the file counted
    // as taken, in one transaction: all of it, or (a crash, a full disk)
    // none, and the file is taken again from the start (kept once more).
    let unanswered = rows - answered;
    let due_job = match &what {
        What::Sample(_) => job.as_str(),
        What::Table(t) => t.kind.due_job,
    };
    let (closed, notice_queued) = store.atomically(|store| {
        match &what {
            What::Sample(r) => r.pending.record(store)?,
            What::Table(t) => t.pending.record(store)?,
        }
        let closed = unanswered == 0 && store.close_due(due_job, &run_id, &unit_id, &now, &sha)?;
        // The chief administrator's record of a unit, whole: the unit's
        // preparation for that audit is done too.
        if let (true, What::Table(t)) = (closed, &what)
            && t.kind.title == crate::report::EXTERNAL_RECORD_TITLE
        {
            let unit = crate::report::unit_of_key(&unit_id).0;
            store.close_due(due_job, &run_id, unit, &now, &sha)?;
        }
        let notice_queued = match &what {
            What::Sample(r) => queue_anomalies(config, store, r, &sha, clock.now())?,
            What::Table(_) => false,
        };
        if let (Some((bytes, due_on)), Some(case)) = (&investigation, &case) {
            open_investigation(config, store, case, &kept, bytes, due_on, clock)?;
        }
        // Taken whole: only now is the same file again a duplicate.
        store.mark_taken(&sha, &now)?;
        Ok((closed, notice_queued))
    })?;
    Ok(ReturnTaken {
        what,
        notice_queued,
        closed,
        unanswered,
        kept,
    })
}

/// Refuses a return that opened with the password of a reader other than
/// the one its workbook was sent to.
fn refuse_other_reader(config: &Config, file: &Path, plain: &[u8], holder: &str) -> Result<()> {
    let key = crate::worksheet::claimed_key(file, plain)?;
    let (unit, review) = crate::report::unit_of_key(&key);
    let holder_of = |role| crate::mail::password_holder(config, unit, role);
    let chief = crate::report::is_chief_key(&key);
    let allowed = if chief {
        // The chief administrator's own workbook: theirs alone.
        vec![holder_of(crate::mail::Role::ChiefAdmin)]
    } else if review {
        // A second review is its reviewer's: never the officer whose
        // own accounts it is about.
        vec![
            holder_of(crate::mail::Role::Ethics),
            holder_of(crate::mail::Role::ChiefAdmin),
        ]
    } else {
        // The officer's, or the ethics unit's (an investigation record
        // goes to both).
        vec![
            holder_of(crate::mail::Role::Officer),
            holder_of(crate::mail::Role::Ethics),
        ]
    };
    // A password from the environment is the unit's, whoever reads.
    let env_ok = holder
        .strip_suffix(ENV_HOLDER)
        .is_some_and(|u| (u == unit && !chief) || (review && allowed.iter().any(|h| h == u)));
    if !allowed.iter().any(|h| h == holder) && !env_ok {
        anyhow::bail!(
            "{}: it says it is {key}'s, but it opened with the attachment password of {holder}: a workbook is returned by the reader it was sent to, encrypted with that reader's password",
            file.display()
        );
    }
    Ok(())
}

/// Where a return belongs and how complete it is: its run folder, run id,
/// unit, rows and rows answered.
type ReturnOf = (std::path::PathBuf, String, String, usize, usize);

/// Reads a return as its kind (a sample worksheet or a table), checked
/// against the run it names.
fn read_return(
    file: &Path,
    plain: &[u8],
    sha: &str,
    archive: &Path,
    now: &str,
) -> Result<(What, crate::job::Job, ReturnOf)> {
    Ok(match crate::worksheet::kind_of(file, plain)? {
        ReturnKind::Sample => {
            let r = crate::worksheet::ingest_returned(file, plain, sha, archive, now)?;
            let of = (
                r.run_dir.clone(),
                r.run_id.clone(),
                r.unit_id.clone(),
                r.rows,
                r.answered,
            );
            (What::Sample(r), crate::job::Job::SampleAudit, of)
        }
        ReturnKind::Table(kind) => {
            let t = crate::worksheet::ingest_table_return(file, plain, sha, kind, archive, now)?;
            let of = (
                t.run_dir.clone(),
                t.run_id.clone(),
                t.unit_id.clone(),
                t.rows,
                t.answered,
            );
            (What::Table(t), kind.job, of)
        }
    })
}

/// What found the irregularities an investigation record is opened for.
struct Found {
    /// The record's kind.
    kind: &'static crate::worksheet::TableKind,
    layout: &'static crate::report::layout::Layout,
    /// The workbook that found them (抽查工作底稿, 內部稽核).
    source: &'static str,
    /// What it found (確認異常, 查核結果不符合).
    finding: &'static str,
    /// How they are counted (筆 records, 項 duties).
    measure: &'static str,
    /// What the officer is asked to do, and (second) the ethics unit.
    asks: [&'static str; 2],
    /// The regulation's point it answers.
    point: &'static str,
}

/// What an investigation of point 6(3) asks.
const INVESTIGATE: [&str; 2] = [
    "請會同貴機關政風單位共同調查",
    "請貴單位會同貴機關專責人員共同調查",
];

/// A worksheet's confirmed anomalies (point 6(1)).
const SAMPLE_ANOMALIES: Found = Found {
    kind: &crate::worksheet::INVESTIGATION_KIND,
    layout: &crate::report::layout::INVESTIGATION,
    source: "抽查工作底稿",
    finding: "確認異常",
    measure: "筆",
    asks: INVESTIGATE,
    point: "第六點第三款",
};

/// The duties a returned internal audit found 不符合 (point 6(3)).
const INTERNAL_NONCONFORMITIES: Found = Found {
    kind: &crate::worksheet::INTERNAL_INVESTIGATION_KIND,
    layout: &crate::report::layout::INTERNAL_INVESTIGATION,
    source: "內部稽核",
    finding: "查核結果不符合",
    measure: "項",
    asks: INVESTIGATE,
    point: "第六點第三款",
};

/// The duties the chief administrator's record of an external audit found
/// 不符合 at a unit (points 4(2), 6(3)): the unit corrects them.
const EXTERNAL_NONCONFORMITIES: Found = Found {
    kind: &crate::worksheet::EXTERNAL_FOLLOW_UP_KIND,
    layout: &crate::report::layout::EXTERNAL_FOLLOW_UP,
    source: "外部稽核紀錄",
    finding: "查核結果不符合",
    measure: "項",
    asks: [
        "請改善並會同貴機關政風單位查明",
        "請貴單位會同貴機關專責人員查明",
    ],
    point: "第四點第二款",
};

/// What a return asks to investigate with the ethics unit: whose, found
/// how, and one row per irregularity (the record's tool columns after
/// 序號).
struct Case<'a> {
    found: &'static Found,
    run_id: &'a str,
    unit_id: &'a str,
    run_dir: &'a Path,
    file_sha256: &'a str,
    rows: Vec<Vec<String>>,
}

impl<'a> Case<'a> {
    /// The case a return opens, if it found anything.
    fn of(what: &'a What) -> Option<Case<'a>> {
        let (found, r, rows) = match what {
            What::Sample(r) => (
                &SAMPLE_ANOMALIES,
                (
                    r.run_id.as_str(),
                    r.unit_id.as_str(),
                    r.run_dir.as_path(),
                    r.file_sha256.as_str(),
                ),
                r.anomalies.iter().map(anomaly_row).collect::<Vec<_>>(),
            ),
            What::Table(t)
                if t.kind.due_job == INTERNAL_AUDIT_DUE
                    || t.kind.title == crate::report::EXTERNAL_RECORD_TITLE =>
            {
                let found = if t.kind.due_job == INTERNAL_AUDIT_DUE {
                    &INTERNAL_NONCONFORMITIES
                } else {
                    &EXTERNAL_NONCONFORMITIES
                };
                (
                    found,
                    // The chief administrator's record is followed up with
                    // the unit it is about.
                    (
                        t.run_id.as_str(),
                        crate::report::unit_of_key(&t.unit_id).0,
                        t.run_dir.as_path(),
                        t.file_sha256.as_str(),
                    ),
                    t.cells
                        .iter()
                        .filter(|c| c.get("查核結果").is_some_and(|v| v == "不符合"))
                        .map(nonconformity_row)
                        .collect(),
                )
            }
            What::Table(_) => return None,
        };
        (!rows.is_empty()).then_some(Case {
            found,
            run_id: r.0,
            unit_id: r.1,
            run_dir: r.2,
            file_sha256: r.3,
            rows,
        })
    }

    /// `內部稽核查核結果不符合 2 項`.
    fn what(&self) -> String {
        format!(
            "{}{} {} {}",
            self.found.source,
            self.found.finding,
            self.rows.len(),
            self.found.measure
        )
    }
}

/// The internal audit's due job: its 不符合 open an investigation.
const INTERNAL_AUDIT_DUE: &str = "internal-audit";

/// A confirmed anomaly's row of the record: `帳號, 查詢時間, 查詢項目,
/// 被查詢人, 確認之異常`.
fn anomaly_row(a: &crate::store::WorksheetAnswer) -> Vec<String> {
    let mut said = Vec::new();
    for (label, v) in [
        ("紀錄表已填具", &a.form_filled),
        ("主管事前核可", &a.approved),
        ("事由與查詢相符", &a.matches),
    ] {
        if v == "否" {
            said.push(format!("{label}：否"));
        }
    }
    if a.anomaly == "有" {
        said.push("異常：有".to_owned());
    }
    if !a.note.is_empty() {
        said.push(format!(
            "說明：{}",
            crate::privacy::mask_ids_in_text(&a.note)
        ));
    }
    vec![
        a.account_id.clone(),
        a.queried_at.clone(),
        a.query_item.clone(),
        a.subject.clone(),
        format!("抽查工作底稿第 {} 列：{}", a.seq, said.join("；")),
    ]
}

/// A duty found 不符合's row of the record: `查核項目, 依據, 不符合情形`
/// (what the system found and what the auditor wrote, IDs masked).
fn nonconformity_row(c: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let get = |h: &str| c.get(h).map(String::as_str).unwrap_or("");
    // What the system found, unless it had nothing (a duty checked on
    // site): the auditor's words then say it all.
    let said: Vec<String> = ["系統查得", "查核方式", "佐證", "說明"]
        .into_iter()
        .filter(|h| !get(h).is_empty() && get(h) != crate::report::build::ON_SITE)
        .map(|h| format!("{h}：{}", crate::privacy::mask_ids_in_text(get(h))))
        .collect();
    vec![
        get("查核項目").to_owned(),
        get("依據（管理要點）").to_owned(),
        said.join("；"),
    ]
}

/// The investigation record of a case, and its due day.
fn investigation(
    config: &Config,
    case: &Case<'_>,
    today: chrono::NaiveDateTime,
) -> Result<(Vec<u8>, String)> {
    let unit = config
        .agencies
        .get(crate::report::unit_of_key(case.unit_id).0);
    // On a working day, as every deadline.
    let due_on = crate::report::build::due_after(
        config,
        today,
        i64::from(config.followup.investigation_days),
    )
    .to_string();
    let period = crate::archive::RunFolder::parse(case.run_dir)
        .map(|f| crate::report::period_label(&f.period.to_string()))
        .unwrap_or_default();
    let f = case.found;
    let bytes = crate::report::render_investigation(&crate::report::Investigation {
        layout: f.layout,
        title: f.kind.title,
        todo: format!(
            "{}{}之事項，依管理要點{}，{}，於 {due_on} 前逐{}填寫「{}」黃色欄位，於表格下方簽章後，由專責人員以原檔回覆。",
            f.source, f.finding, f.point, f.asks[0], f.measure, f.layout.sheet
        ),
        unit_id: case.unit_id,
        unit_name: unit.map_or(case.unit_id, |u| u.name.as_str()),
        run_id: case.run_id,
        period_label: &period,
        due_on: &due_on,
        rows: case.rows.clone(),
        return_token: crate::worksheet::return_token(
            &config.paths.state,
            case.run_id,
            case.unit_id,
            f.kind.due_job,
        )?,
    })?;
    Ok((bytes, due_on))
}

/// Opens the investigation's due item and mails its record to the
/// unit's officer and ethics unit (point 6(3): they investigate together).
fn open_investigation(
    config: &Config,
    store: &mut Store,
    case: &Case<'_>,
    kept: &Path,
    workbook: &[u8],
    due_on: &str,
    clock: &dyn Clock,
) -> Result<()> {
    let (unit_id, review) = crate::report::unit_of_key(case.unit_id);
    let Some(unit) = config.agencies.get(unit_id) else {
        return Ok(());
    };
    // Anomalies of the officers' own accounts (a second review) are not
    // the officer's to investigate: the reviewer leads it.
    let to: Vec<(Option<&String>, mail::Role)> = if review {
        vec![(unit.ethics_email.as_ref(), mail::Role::Ethics)]
    } else {
        vec![
            (unit.officer_email.as_ref(), mail::Role::Officer),
            (unit.ethics_email.as_ref(), mail::Role::Ethics),
        ]
    };
    let now = clock.now();
    let at = mail::outbox::stamp(now);
    store.open_due(&crate::store::DueItem {
        id: 0,
        job: case.found.kind.due_job.to_owned(),
        run_id: case.run_id.to_owned(),
        run_dir: kept.display().to_string(),
        unit_id: case.unit_id.to_owned(),
        sent_to: to.iter().find_map(|(a, _)| a.cloned()).unwrap_or_default(),
        label: format!("{}之{}", case.what(), case.found.layout.sheet),
        opened_at: clock
            .local(config.timezone)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
        due_on: due_on.to_owned(),
        closed_at: None,
        closed_by: None,
    })?;
    let name = crate::archive::file_name_of(&format!(
        "健保WebIR稽核_{}_{}_{}.xlsx",
        unit.name, case.run_id, case.found.layout.sheet
    ));
    let mut messages = Vec::new();
    for (to, role) in to {
        let Some(to) = to else { continue };
        let attachment = mail::protect(config, store, unit_id, role, workbook, &at)?;
        let body = config.templates.render(
            "investigation.txt.j2",
            &serde_json::json!({
                "recipient_role": role.greeting(),
                "role": role.name(),
                "unit_name": unit.name,
                "run_id": case.run_id,
                "source": case.found.source,
                "ask": case.found.asks[usize::from(role == mail::Role::Ethics)],
                "point": case.found.point,
                "sheet": case.found.layout.sheet,
                "finding": case.found.finding,
                "measure": case.found.measure,
                "count": case.rows.len(),
                "due_on": due_on,
                "attachment_name": name,
                "encrypted": attachment.unencrypted.is_none(),
                "unencrypted_reason": attachment.unencrypted.clone().unwrap_or_default(),
                "reply_to": config.mail.reply_address().to_owned(),
                "contact": config.mail.contact.clone().unwrap_or_default(),
            }),
        )?;
        // Keyed by the run and the returned file, as the ethics unit's
        // notice is: the same file sent again is not investigated twice.
        messages.push(mail::plain_with_workbook(
            config,
            &case.run_dir.display().to_string(),
            &format!("investigation:{}:{}", case.unit_id, case.file_sha256),
            to,
            &format!(
                "【健保WebIR稽核】請會同調查：{} {}（期限 {due_on}）",
                unit.name,
                case.what()
            ),
            body,
            &name,
            &attachment,
            now,
        )?);
    }
    store.queue(&messages, &at)?;
    Ok(())
}

/// Refuses a return that came unencrypted from a unit whose workbooks are
/// mailed encrypted: what is sent encrypted comes back encrypted, with
/// the password of the reader it was sent to (Excel and LibreOffice keep
/// a workbook's password when it is saved). Anyone holding a plain copy
/// (an archive reader, an evidence export) could otherwise answer for the
/// unit. A unit exempted by the config (`attachment_unencrypted`) returns
/// in the clear.
fn refuse_plain_if_mailed_encrypted(config: &Config, file: &Path, plain: &[u8]) -> Result<()> {
    let key = crate::worksheet::claimed_key(file, plain)?;
    let unit = crate::report::unit_of_key(&key).0;
    let exempt = config.agencies.get(unit).is_none_or(|a| {
        matches!(
            a.attachment,
            crate::config::AttachmentProtection::Unencrypted(_)
        )
    });
    anyhow::ensure!(
        exempt,
        "{}: it says it is {key}'s and came unencrypted, but {unit}'s workbooks are mailed \
         encrypted: return it encrypted with the password it was opened with, as Excel saves it",
        file.display()
    );
    Ok(())
}

/// A returned workbook's bytes, readable: as they are, or, for an
/// encrypted one (an OLE compound file, as we mail them), decrypted with
/// the first password that opens it — every unit's issued passwords,
/// current and retired, and those in units' `attachment_password_env`.
fn open_return(
    config: &Config,
    store: &mut Store,
    file: &Path,
    bytes: &[u8],
) -> Result<(Vec<u8>, Option<String>)> {
    const OLE: [u8; 4] = [0xD0, 0xCF, 0x11, 0xE0];
    if !bytes.starts_with(&OLE) {
        return Ok((bytes.to_vec(), None));
    }
    // Each password with whose it is.
    let mut passwords: Vec<(String, String)> = store
        .attachment_passwords(&crate::keyfile::KeyFile::open_or_create(
            &config.paths.key_file,
        )?)?
        .into_iter()
        .map(|p| (p.unit_id, p.password))
        .collect();
    for a in config.agencies.iter() {
        if let crate::config::AttachmentProtection::Env(var) = &a.attachment
            && let Ok(p) = std::env::var(var)
        {
            // Shared by the unit's readers: it names the unit, not whom.
            passwords.push((format!("{}{ENV_HOLDER}", a.id), p));
        }
    }
    // Most recent first: a return is most likely of the current passwords.
    passwords.reverse();
    for (holder, p) in &passwords {
        // A wrong password can decrypt to noise without an error: only a
        // workbook (a zip archive that reads as one) is the right one.
        // A hostile file must not take the daemon down with it, should the
        // decrypting library panic on it.
        let attempt =
            std::panic::catch_unwind(|| office_crypto::decrypt_from_bytes(bytes.to_vec(), p));
        if let Ok(Ok(plain)) = attempt
            && plain.starts_with(b"PK\x03\x04")
            && zip::ZipArchive::new(std::io::Cursor::new(&plain)).is_ok()
        {
            return Ok((plain, Some(holder.clone())));
        }
    }
    anyhow::bail!(
        "{}: an encrypted workbook that none of the units' {} attachment passwords opens: not one we mailed, or its password was changed",
        file.display(),
        passwords.len()
    )
}

/// Queues, for the unit's ethics unit, the anomalies a returned worksheet
/// confirmed (point 6(3)). Nothing when there are none or the unit has no
/// ethics address. Returns whether a message was queued.
fn queue_anomalies(
    config: &Config,
    store: &mut Store,
    returned: &Returned,
    file_sha256: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    #[derive(Serialize)]
    struct Cx<'a> {
        unit_name: &'a str,
        run_id: &'a str,
        anomalies: Vec<std::collections::BTreeMap<&'static str, String>>,
    }
    let Some(unit) = config
        .agencies
        .get(crate::report::unit_of_key(&returned.unit_id).0)
    else {
        return Ok(false);
    };
    let (Some(ethics), false) = (&unit.ethics_email, returned.anomalies.is_empty()) else {
        return Ok(false);
    };
    let anomalies = returned
        .anomalies
        .iter()
        .map(|a| {
            [
                ("seq", a.seq.to_string()),
                ("account_id", a.account_id.clone()),
                ("queried_at", a.queried_at.clone()),
                ("query_item", a.query_item.clone()),
                ("subject", a.subject.clone()),
                ("form_filled", a.form_filled.clone()),
                ("approved", a.approved.clone()),
                ("matches", a.matches.clone()),
                ("anomaly", a.anomaly.clone()),
                // Typed by a person: an ID in it is masked like any other.
                ("note", crate::privacy::mask_ids_in_text(&a.note)),
            ]
            .into_iter()
            .collect()
        })
        .collect();
    let body = config.templates.render(
        "anomalies.txt.j2",
        &Cx {
            unit_name: &unit.name,
            run_id: &returned.run_id,
            anomalies,
        },
    )?;
    let message = mail::plain(
        config,
        &returned.run_dir.display().to_string(),
        &format!("anomalies:{}:{file_sha256}", returned.unit_id),
        ethics,
        &format!(
            "【健保WebIR稽核】{} 抽查工作底稿確認異常 {} 筆",
            unit.name,
            returned.anomalies.len()
        ),
        body,
        now,
    )?;
    Ok(store.queue(&[message], &mail::outbox::stamp(now))? == 1)
}

/// The folder under the inbox where returned workbooks are dropped.
pub const INBOX_RETURNS: &str = "returns";

/// What became of one file dropped into `inbox/returns/`.
#[derive(Debug)]
pub enum Taken {
    /// Ingested (and kept in the archive): the file left the inbox.
    Ingested(Box<ReturnTaken>),
    /// Refused: moved to `inbox/returns/refused/`, the admin told why.
    Refused { file: String, error: String },
}

/// Ingests every workbook dropped into `inbox/returns/` (the daemon calls
/// this each pass). A return that is ingested leaves the inbox (the
/// archive keeps it); one that is refused moves to `refused/` beside it,
/// and the admin is queued the reason once, so nothing is retried for
/// ever and nothing is lost.
pub fn take_returns(config: &Config, clock: &dyn Clock) -> Result<Vec<Taken>> {
    let dir = config.paths.inbox.join(INBOX_RETURNS);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    // Everything dropped here but folders (refused/ among them): a link,
    // a pipe or a device is refused like a file that is not ours.
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
                && !name.starts_with('.')
                && !name.starts_with("~$")
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    // One file never stops the pass: whatever happens to it is reported
    // and the next is read.
    for f in files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let taken = match ingest_worksheet(config, &f, clock) {
            Ok(done) => {
                if let Err(e) = std::fs::remove_file(&f) {
                    tracing::error!(file = %f.display(), error = %e, "return ingested but not removed from the inbox");
                }
                Taken::Ingested(Box::new(done))
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::warn!(file = %f.display(), %error, "return refused");
                if let Err(e) = refuse(config, &dir, &f, &name, &error, clock) {
                    tracing::error!(file = %f.display(), error = %format!("{e:#}"), "a refused return could not be set aside");
                }
                Taken::Refused { file: name, error }
            }
        };
        out.push(taken);
    }
    Ok(out)
}

/// Sets a refused return aside in `refused/` under a name of the tool's
/// (its own name, of any length, recorded beside it) and queues the admin
/// the reason.
fn refuse(
    config: &Config,
    dir: &Path,
    f: &Path,
    name: &str,
    error: &str,
    clock: &dyn Clock,
) -> Result<()> {
    let at = clock
        .local(config.timezone)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let to = crate::inbox::set_aside(f, &dir.join(crate::inbox::REFUSED), &at, error)
        .with_context(|| format!("setting {} aside", f.display()))?;
    let shown: String = if name.chars().count() > 60 {
        name.chars().take(60).chain("…".chars()).collect()
    } else {
        name.to_owned()
    };
    let mut store = Store::open(&config.paths.state)?;
    let message = mail::plain(
        config,
        "returns",
        &format!("refused:{}", to.display()),
        &config.mail.admin,
        &format!("【健保WebIR稽核】回傳檔案無法收件：{shown}"),
        format!(
            "inbox/returns/ 收到之檔案「{name}」無法收件，已移至 {}（原檔名及原因記於同名 .txt）：\n\n{error}\n\n請確認檔案為本系統寄送之工作簿（未增刪列、未修改系統欄位），再請機關重新回傳。\n",
            to.display()
        ),
        clock.now(),
    )?;
    store.queue(&[message], &mail::outbox::stamp(clock.now()))?;
    Ok(())
}

/// What follows an agency's id as the holder of a password taken from
/// its `attachment_password_env` (every reader of the unit has it).
const ENV_HOLDER: &str = ":env";

/// The most a returned workbook may hold unpacked: its parts one by one
/// and all together (a unit's largest worksheet unpacks to a few MB).
const RETURN_MAX_UNPACKED: u64 = 256 * 1024 * 1024;

/// Refuses a returned workbook with macros (a VBA project: not one we
/// sent), that says it unpacks to more than [`RETURN_MAX_UNPACKED`]
/// (before any reader inflates it), or that holds a formula anywhere.
fn refuse_unsafe_workbook(file: &Path, plain: &[u8]) -> Result<()> {
    refuse_unsafe_archive(file, plain)?;
    refuse_formulas(file, plain)
}

/// Refuses a returned workbook with a formula in any cell. Webir-audit
/// writes none (every value is text or a number), so a formula is the
/// returner's: its cached value is what a reader of the cells sees, but
/// the archive keeps the file as received, and there it would run again
/// (a HYPERLINK behind a masked ID) for every later reader. The officer
/// types the value instead. The cell is named; the formula is not quoted.
fn refuse_formulas(file: &Path, plain: &[u8]) -> Result<()> {
    use calamine::Reader as _;
    let Ok(mut wb) = calamine::Xlsx::new(std::io::Cursor::new(plain)) else {
        // Not a workbook: the workbook reader says what it is.
        return Ok(());
    };
    for sheet in wb.sheet_names().to_vec() {
        let formulas = wb
            .worksheet_formula(&sheet)
            .with_context(|| format!("{}: reading sheet {sheet}", file.display()))?;
        let (top, left) = formulas.start().unwrap_or((0, 0));
        if let Some((r, c, _)) = formulas.used_cells().find(|(_, _, f)| !f.is_empty()) {
            let (row, col) = (top as usize + r + 1, left as usize + c);
            anyhow::bail!(
                "{}: sheet {sheet}, cell {}{row} holds a formula: answers are typed as values, \
                 and a formula is never kept in the archive; type its value there and return it again",
                file.display(),
                column_letters(col)
            );
        }
    }
    Ok(())
}

/// A spreadsheet column's letters: 0 → A, 25 → Z, 26 → AA.
fn column_letters(mut col: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII letters")
}

/// The archive half of [`refuse_unsafe_workbook`].
fn refuse_unsafe_archive(file: &Path, plain: &[u8]) -> Result<()> {
    let Ok(mut zip) = zip::ZipArchive::new(std::io::Cursor::new(plain)) else {
        // Not a zip: the workbook reader says what it is.
        return Ok(());
    };
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i)?;
        let name = entry.name()?.into_owned();
        if name.to_ascii_lowercase().ends_with("vbaproject.bin") {
            anyhow::bail!(
                "{}: it holds macros (a VBA project): not a workbook webir-audit sent; save it as a plain .xlsx",
                file.display()
            );
        }
        total = total.saturating_add(entry.size());
        anyhow::ensure!(
            entry.size() <= RETURN_MAX_UNPACKED && total <= RETURN_MAX_UNPACKED,
            "{}: it unpacks to more than {} MiB ({} at least): not a workbook webir-audit sent; not read",
            file.display(),
            RETURN_MAX_UNPACKED >> 20,
            name
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn column_letters_count_as_a_spreadsheet_does() {
        for (c, want) in [
            (0, "A"),
            (1, "B"),
            (25, "Z"),
            (26, "AA"),
            (27, "AB"),
            (701, "ZZ"),
            (702, "AAA"),
        ] {
            assert_eq!(super::column_letters(c), want);
        }
    }
}
