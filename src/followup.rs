//! Following up what runs asked of units (point 6): every open due item
//! is chased on its deadline's schedule — the officer some days before
//! the due day and on it, the officer and the chief administrator once it
//! is overdue, the unit's ethics unit after a further grace period. Each
//! reminder is an outbox message keyed by item and stage, so it goes out
//! once however often the daemon passes; a closed item is not chased.

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::config::{Agency, Config};
use crate::mail::{self, Outgoing};
use crate::store::{DueItem, Stage, Store};

/// The stages an open item is in on `today`: at most one of before / on
/// the due day / overdue, and the ethics stage beside overdue.
pub fn stages(config: &Config, due_on: NaiveDate, today: NaiveDate) -> Vec<Stage> {
    let f = &config.followup;
    let days_left = (due_on - today).num_days();
    let mut out = Vec::new();
    if days_left > 0 && days_left <= i64::from(f.remind_before_days) {
        out.push(Stage::Before);
    } else if days_left == 0 {
        out.push(Stage::Due);
    } else if days_left < 0 {
        out.push(Stage::Overdue);
        if -days_left >= i64::from(f.ethics_after_days) {
            out.push(Stage::Ethics);
        }
    }
    out
}

/// The outbox's report key of an item's reminder at `stage`.
fn report_key(item: &DueItem, stage: Stage) -> String {
    format!("reminder:{}:{}:{}", item.job, item.unit_id, stage)
}

#[derive(Serialize)]
struct Cx<'a> {
    recipient_role: &'static str,
    role: &'static str,
    stage: &'static str,
    unit_name: &'a str,
    /// The chief administrator's digest: every overdue unit of the run.
    units: Vec<String>,
    label: &'a str,
    run_id: &'a str,
    due_on: &'a str,
    days_left: i64,
    days_over: i64,
    opened_on: &'a str,
    reply_to: String,
    contact: &'a str,
    /// The chief administrator's own item (a record, the officer review,
    /// a change of chief): nobody else is told of its delay.
    chief_own: bool,
}

/// The reminders due at `now` for every open item, composed (not queued):
/// per item, the officer (before, on and after the due day) and the
/// ethics unit (past the grace period); per run, one digest of its
/// overdue units to the chief administrator.
pub fn reminders(config: &Config, store: &Store, now: DateTime<Utc>) -> Result<Vec<Outgoing>> {
    let round = ReminderRound {
        config,
        now,
        today: now.with_timezone(&config.timezone).date_naive(),
        reply_to: config.mail.reply_address().to_owned(),
        contact: config.mail.contact.as_deref().unwrap_or(""),
    };
    let mut out = Vec::new();
    // Overdue items by run, for the chief administrator's digest.
    let mut overdue: std::collections::BTreeMap<&str, Vec<&DueItem>> = Default::default();
    let items = store.due_items()?;
    for item in items.iter().filter(|i| i.closed_at.is_none()) {
        let Ok(due_on) = item.due_on.parse::<NaiveDate>() else {
            continue;
        };
        let (unit_id, review) = crate::report::unit_of_key(&item.unit_id);
        let Some(unit) = config.agencies.get(unit_id) else {
            // A unit removed from the config: nobody to chase.
            continue;
        };
        for stage in stages(config, due_on, round.today) {
            // The chief's own items are chased to the chief already: no
            // digest of them to the chief besides.
            if stage == Stage::Overdue && !crate::report::is_chief_key(&item.unit_id) {
                overdue.entry(item.run_dir.as_str()).or_default().push(item);
            }
            let reminder = round.item_reminder(item, unit, review, stage, due_on)?;
            out.extend(reminder);
        }
    }
    if let Some(chief) = config.chief_email() {
        for (run_dir, items) in overdue {
            out.push(round.overdue_digest(run_dir, &items, chief)?);
        }
    }
    Ok(out)
}

/// What the reminders composed at one moment share.
struct ReminderRound<'a> {
    config: &'a Config,
    now: DateTime<Utc>,
    today: NaiveDate,
    reply_to: String,
    contact: &'a str,
}

impl ReminderRound<'_> {
    /// The reminder of `item` (of `unit`; `review`: a second review of an
    /// officer's own account) at `stage`, if it has someone to go to.
    fn item_reminder(
        &self,
        item: &DueItem,
        unit: &Agency,
        review: bool,
        stage: Stage,
        due_on: NaiveDate,
    ) -> Result<Option<Outgoing>> {
        let (address, role) = match (stage, review) {
            (Stage::Before | Stage::Due | Stage::Overdue, false) => {
                (unit.officer_email.as_ref(), mail::Role::Officer)
            }
            (Stage::Ethics, false) => (unit.ethics_email.as_ref(), mail::Role::Ethics),
            // A second review is chased with its reviewer; past the
            // grace period the chief administrator's digest has it.
            (Stage::Ethics, true) => return Ok(None),
            // Its reviewer is asked as an officer is (the chief
            // administrator's own role words are the digest's).
            (_, true) => (
                Some(&item.sent_to),
                if unit.ethics_email.as_ref() == Some(&item.sent_to) {
                    mail::Role::Ethics
                } else {
                    mail::Role::Officer
                },
            ),
        };
        let Some(address) = address else {
            return Ok(None);
        };
        let greeting = if review && role == mail::Role::Officer {
            mail::Role::ChiefAdmin.greeting()
        } else {
            role.greeting()
        };
        let days_left = (due_on - self.today).num_days();
        let cx = Cx {
            recipient_role: greeting,
            role: role.name(),
            stage: stage.as_str(),
            unit_name: &unit.name,
            units: Vec::new(),
            label: &item.label,
            run_id: &item.run_id,
            due_on: &item.due_on,
            days_left,
            days_over: -days_left,
            opened_on: item.opened_at.get(..10).unwrap_or(&item.opened_at),
            reply_to: self.reply_to.clone(),
            contact: self.contact,
            chief_own: crate::report::is_chief_key(&item.unit_id),
        };
        let key = report_key(item, stage);
        message(self.config, &cx, &item.run_dir, &key, address, self.now).map(Some)
    }

    /// The chief administrator's digest of the overdue `items` of one run.
    fn overdue_digest(&self, run_dir: &str, items: &[&DueItem], chief: &str) -> Result<Outgoing> {
        let first = items[0];
        let days_left = first
            .due_on
            .parse::<NaiveDate>()
            .map_or(0, |d| (d - self.today).num_days());
        let cx = Cx {
            recipient_role: mail::Role::ChiefAdmin.greeting(),
            role: mail::Role::ChiefAdmin.name(),
            stage: Stage::Overdue.as_str(),
            unit_name: "",
            units: items.iter().map(|i| self.overdue_unit(i)).collect(),
            label: &first.label,
            run_id: &first.run_id,
            due_on: &first.due_on,
            days_left,
            days_over: -days_left,
            opened_on: first.opened_at.get(..10).unwrap_or(&first.opened_at),
            reply_to: self.reply_to.clone(),
            contact: self.contact,
            chief_own: false,
        };
        let key = format!("reminder:{}:overdue-digest", first.job);
        message(self.config, &cx, run_dir, &key, chief, self.now)
    }

    /// How the digest names an overdue item's unit, and whose item it is.
    fn overdue_unit(&self, item: &DueItem) -> String {
        let (id, review) = crate::report::unit_of_key(&item.unit_id);
        let name = self.config.agencies.get(id).map_or("", |a| a.name.as_str());
        if crate::report::is_chief_key(&item.unit_id) {
            format!("{name}（{id}，總管理者填復）")
        } else if review {
            format!("{name}（{id}，專責人員本人帳號覆核）")
        } else {
            format!("{name}（{id}）")
        }
    }
}

fn message(
    config: &Config,
    cx: &Cx<'_>,
    run_dir: &str,
    report: &str,
    to: &str,
    now: DateTime<Utc>,
) -> Result<Outgoing> {
    let subject = config.templates.render("reminder-subject.j2", cx)?;
    let body = config.templates.render("reminder.txt.j2", cx)?;
    mail::plain(config, run_dir, report, to, subject.trim(), body, now)
}

/// Queues the reminders due at `now`; returns how many were new (a
/// reminder queued before is not queued again).
pub fn remind(config: &Config, store: &mut Store, now: DateTime<Utc>) -> Result<usize> {
    let messages = reminders(config, store, now)?;
    let queued = store.queue(&messages, &now.format("%Y-%m-%dT%H:%M:%SZ").to_string())?;
    if queued > 0 {
        tracing::info!(queued, "reminders queued");
    }
    Ok(queued)
}

/// Every item ever opened and where it stands on `today`, by unit, then
/// oldest first: the city-wide 回收狀況 sheet and `status`.
pub fn due_rows(store: &Store, today: NaiveDate) -> Result<Vec<crate::report::build::DueRow>> {
    due_rows_with(store, today, &[])
}

/// [`due_rows`], with `opening`: the items a run opens as it is sealed,
/// not yet in the store.
pub fn due_rows_with(
    store: &Store,
    today: NaiveDate,
    opening: &[crate::store::DueItem],
) -> Result<Vec<crate::report::build::DueRow>> {
    let day = |s: &str| s.get(..10).and_then(|d| d.parse::<NaiveDate>().ok());
    let mut rows: Vec<crate::report::build::DueRow> = store
        .due_items()?
        .into_iter()
        .chain(opening.iter().cloned())
        .map(|i| {
            let due = day(&i.due_on).unwrap_or(today);
            let returned = i.closed_at.as_deref().and_then(day);
            let answered = store.answered(&i.job, &i.run_id, &i.unit_id)?;
            Ok(crate::report::build::DueRow {
                answered,
                days_late: (returned.unwrap_or(today) - due).num_days(),
                returned_on: returned.map(|d| d.to_string()),
                unit_id: i.unit_id,
                label: i.label,
                run_id: i.run_id,
                opened_on: i.opened_at.get(..10).unwrap_or(&i.opened_at).to_owned(),
                due_on: i.due_on,
            })
        })
        .collect::<Result<_>>()?;
    rows.sort_by(|a, b| (&a.unit_id, &a.opened_on).cmp(&(&b.unit_id, &b.opened_on)));
    Ok(rows)
}

/// Hands each open item whose unit's officer changed (`officer_email` in
/// the config is not the address it went to) to the new officer: the
/// run's workbook again, protected as every attachment, with what is due
/// and by when. Recorded (`due_handovers`); reminders go to the unit's
/// current officer only, so the old address is not used again. Returns
/// how many items were handed over.
pub fn hand_over(config: &Config, store: &mut Store, now: DateTime<Utc>) -> Result<usize> {
    let mut n = 0;
    for item in store
        .due_items()?
        .into_iter()
        .filter(|i| i.closed_at.is_none())
    {
        let Some(unit) = config.agencies.get(&item.unit_id) else {
            continue;
        };
        let Some(officer) = &unit.officer_email else {
            continue;
        };
        if officer.eq_ignore_ascii_case(&item.sent_to) {
            continue;
        }
        hand_over_item(config, store, &item, officer, now)?;
        tracing::info!(unit = %item.unit_id, from = %item.sent_to, to = %officer, "open item handed over");
        n += 1;
    }
    Ok(n)
}

/// Queues the handover of `item` to `to` and records it.
pub fn hand_over_item(
    config: &Config,
    store: &mut Store,
    item: &DueItem,
    to: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let at = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let message = handover(config, store, item, to, now)?;
    store.queue(&[message], &at)?;
    store.hand_over(item.id, to, &at)?;
    Ok(())
}

/// The message that hands `item` to `to`: what is due, by when, and the
/// workbook the run made for the unit.
fn handover(
    config: &Config,
    store: &mut Store,
    item: &DueItem,
    to: &str,
    now: DateTime<Utc>,
) -> Result<Outgoing> {
    // The workbook the item asked for: the run's, or the investigation
    // record kept beside the return that made it.
    let path = if crate::worksheet::investigation_kind(&item.job).is_some() {
        std::path::Path::new(&item.run_dir).join(crate::worksheet::INVESTIGATION_FILE)
    } else {
        std::path::Path::new(&item.run_dir).join("reports").join(
            crate::archive::RunFolder::workbook_name(Some(&item.unit_id)),
        )
    };
    let workbook =
        std::fs::read(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let at = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let attachment = mail::protect(
        config,
        store,
        &item.unit_id,
        mail::Role::Officer,
        &workbook,
        &at,
    )?;
    let unit_name = config
        .agencies
        .get(&item.unit_id)
        .map_or(item.unit_id.as_str(), |a| a.name.as_str());
    let name = crate::archive::file_name_of(&format!(
        "健保WebIR稽核_{unit_name}_{}_{}.xlsx",
        item.run_id,
        item.label.replace(' ', "_")
    ));
    #[derive(Serialize)]
    struct Hx<'a> {
        unit_name: &'a str,
        label: &'a str,
        run_id: &'a str,
        due_on: &'a str,
        opened_on: &'a str,
        attachment_name: &'a str,
        encrypted: bool,
        unencrypted_reason: &'a str,
        role: &'static str,
        reply_to: String,
        contact: &'a str,
    }
    let cx = Hx {
        unit_name,
        label: &item.label,
        run_id: &item.run_id,
        due_on: &item.due_on,
        opened_on: item.opened_at.get(..10).unwrap_or(&item.opened_at),
        attachment_name: &name,
        encrypted: attachment.unencrypted.is_none(),
        unencrypted_reason: attachment.unencrypted.as_deref().unwrap_or(""),
        role: mail::Role::Officer.name(),
        reply_to: config.mail.reply_address().to_owned(),
        contact: config.mail.contact.as_deref().unwrap_or(""),
    };
    let body = config.templates.render("handover.txt.j2", &cx)?;
    mail::plain_with_workbook(
        config,
        &item.run_dir,
        &format!(
            "handover:{}:{}:{}",
            item.job,
            item.unit_id,
            to.to_ascii_lowercase()
        ),
        to,
        &format!(
            "【健保WebIR稽核】移交待辦：{unit_name} {}（期限 {}）",
            item.label, item.due_on
        ),
        body,
        &name,
        &attachment,
        now,
    )
}

/// The state's record of who the chief administrator is (`name <email>`).
const CHIEF_SEEN: &str = "chief_administrator";

/// The due item of a change of chief administrator.
pub const CHIEF_CHANGE_JOB: &str = "chief-change";

/// Point 4, last paragraph: when the config names another chief
/// administrator than the one the state last saw, the Health Bureau must
/// apply to the NHIA for the change of permissions. The new chief (and
/// the old one, and the admin) are told, and a due item for the Health
/// Bureau is opened and chased until closed by hand (`followup close`).
/// The first chief the state sees is recorded without a notice. Returns
/// whether a change was noticed.
pub fn chief_changed(config: &Config, store: &mut Store, now: DateTime<Utc>) -> Result<bool> {
    let Some(chief) = &config.chief else {
        return Ok(false);
    };
    let current = format!("{} <{}>", chief.name, chief.email);
    let Some(seen) = store.meta_get(CHIEF_SEEN)? else {
        store.meta_set(CHIEF_SEEN, &current)?;
        return Ok(false);
    };
    if seen == current {
        return Ok(false);
    }
    let local = now.with_timezone(&config.timezone).naive_local();
    let at = local.format("%Y-%m-%dT%H:%M:%S").to_string();
    let due_on = crate::report::build::due_after(
        config,
        local,
        i64::from(config.followup.account_review_days),
    );
    let hb = config.agencies.health_bureau();
    // Keyed by the change: the same change is noticed once, a later one
    // again.
    let key = {
        use sha2::Digest as _;
        hex::encode(&sha2::Sha256::digest(format!("{seen}\n{current}"))[..8])
    };
    let run = format!("{CHIEF_CHANGE_JOB}/{key}");
    let body = config.templates.render(
        "chief-change.txt.j2",
        &serde_json::json!({
            "old": seen,
            "new": current,
            "changed_at": at,
            "due_on": due_on.to_string(),
            "reply_to": config.mail.reply_address(),
            "contact": config.mail.contact.clone().unwrap_or_default(),
        }),
    )?;
    let old_email = seen
        .rsplit_once('<')
        .and_then(|(_, e)| e.strip_suffix('>'))
        .map(str::to_owned);
    let mut to = vec![chief.email.clone(), config.mail.admin.clone()];
    to.extend(old_email.filter(|e| !to.iter().any(|t| t.eq_ignore_ascii_case(e))));
    let subject = "【健保WebIR稽核】總管理者異動：請向健保署申請權限異動（管理要點第四點末段）";
    let messages = to
        .iter()
        .map(|t| {
            mail::plain(
                config,
                &run,
                &format!("chief-change:{key}"),
                t,
                subject,
                body.clone(),
                now,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    store.atomically(|store| {
        store.open_due(&DueItem {
            id: 0,
            job: CHIEF_CHANGE_JOB.to_owned(),
            run_id: key.clone(),
            run_dir: run.clone(),
            unit_id: crate::report::chief_key(&hb.id),
            sent_to: chief.email.clone(),
            label: "總管理者異動之健保署權限異動申請".to_owned(),
            opened_at: at.clone(),
            due_on: due_on.to_string(),
            closed_at: None,
            closed_by: None,
        })?;
        store.queue(&messages, &mail::outbox::stamp(now))?;
        store.meta_set(CHIEF_SEEN, &current)?;
        Ok(())
    })?;
    tracing::info!(from = %seen, to = %current, "chief administrator changed: notice queued");
    Ok(true)
}

/// Point 6(4): the units an external audit drew are each told what to
/// prepare and by when, and their preparation opens a due item; a new
/// draw of the period closes the earlier draw's items. Returns the
/// notices, for the run to queue with its mail.
pub fn drawn_units(
    config: &Config,
    store: &mut Store,
    facts: &crate::report::build::RunFacts<'_>,
    draw: &crate::sampling::units::UnitDraw,
    run_dir: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Outgoing>> {
    use crate::report::{self, build::deadline};
    let job = facts.kind.job().as_str();
    let (_, due_on) = deadline(config, facts.kind, facts.generated_at);
    let period = report::period_label(&facts.period_id);
    let label = format!("{period} 外部稽核受稽核準備");
    let opened = facts.generated_at.format("%Y-%m-%dT%H:%M:%S").to_string();
    // The chief administrator's workbooks of that draw (its records and
    // officer review) are asked again by this one.
    let chiefs = [
        format!("{period} {}", report::EXTERNAL_RECORD_TITLE),
        format!("{period} {}", report::OFFICER_REVIEW_TITLE),
    ];
    for old in store.due_items()? {
        if old.job == job
            && (old.label == label || chiefs.contains(&old.label))
            && old.run_id != facts.run_id
            && old.closed_at.is_none()
        {
            let why = format!(
                "superseded by draw {} (run {})",
                draw.draw_number, facts.run_id
            );
            store.close_due(&old.job, &old.run_id, &old.unit_id, &opened, &why)?;
        }
    }
    let mut out = Vec::new();
    for u in draw.units.iter().filter(|u| u.selected) {
        let Some(unit) = config.agencies.get(&u.unit_id) else {
            continue;
        };
        let Some(officer) = &unit.officer_email else {
            continue;
        };
        store.open_due(&DueItem {
            id: 0,
            job: job.to_owned(),
            run_id: facts.run_id.clone(),
            run_dir: run_dir.to_owned(),
            unit_id: u.unit_id.clone(),
            sent_to: officer.clone(),
            label: label.clone(),
            opened_at: opened.clone(),
            due_on: due_on.to_string(),
            closed_at: None,
            closed_by: None,
        })?;
        let body = config.templates.render(
            "external-notice.txt.j2",
            &serde_json::json!({
                "period_label": period,
                "run_id": facts.run_id,
                "unit_name": unit.name,
                "due_on": due_on.to_string(),
                "reply_to": config.mail.reply_address(),
                "contact": config.mail.contact.clone().unwrap_or_default(),
            }),
        )?;
        out.push(mail::plain(
            config,
            run_dir,
            &format!("external-notice:{}", u.unit_id),
            officer,
            &format!(
                "【健保WebIR稽核】外部稽核受稽核通知：{}（請於 {due_on} 前備妥資料）",
                unit.name
            ),
            body,
            now,
        )?);
    }
    Ok(out)
}
