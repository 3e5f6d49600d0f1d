//! The end of every run: its workbooks rendered, what it asks of units
//! opened as due items, its mail queued and its folder sealed, in one
//! transaction.

use anyhow::{Context, Result};
use polars::prelude::*;

use std::io::Write as _;

use super::LedgerEntry;
use super::skeleton::{RunOutcome, local_text, unit_status};
use crate::archive::{self, RunFolder};
use crate::checks::Code;
use crate::checks::Severity;
use crate::config::Config;
use crate::mail;
use crate::mail::outbox::stamp;
use crate::report::{self, ReportKind, ReportModel, build::RunFacts};
use crate::store::Store;

/// Ends a run: renders every unit's workbook and the city-wide one into
/// `<run>/reports/` (`<unit id>.xlsx`, `city-wide.xlsx`), queues their mail,
/// and seals the folder. Nothing writes to the folder after this.
pub(super) fn finish_run(
    config: &Config,
    outcome: &RunOutcome,
    roster: Option<&DataFrame>,
    facts: RunFacts<'_>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let status = unit_status(config, roster, facts.orphans, &outcome.folder)?;
    let state = Store::open(&config.paths.state)?;
    let due = crate::followup::due_rows(&state, facts.generated_at.date())?;
    let chain_head = state.chain_head()?.map(|e| e.label());
    drop(state);
    let facts = RunFacts {
        unit_status: Some(&status),
        due: Some(&due),
        chain_head,
        ..facts
    };
    let models = report::build::models(&facts)
        .map_err(anyhow::Error::from)
        .context("building the report models")?;
    let dir = outcome.folder.reports();
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut mailing = Mailing::new(config, outcome, &facts)?;
    let workbooks = models.len();
    // The city-wide workbook comes last: its 回收狀況 shows what this run
    // asked of the units too.
    let (city_wide, units): (Vec<ReportModel>, Vec<ReportModel>) =
        models.into_iter().partition(ReportModel::city_wide);
    mailing.workbooks(units)?;
    for mut m in city_wide {
        let due = crate::followup::due_rows_with(
            &mailing.store,
            facts.generated_at.date(),
            &mailing.opening,
        )?;
        report::build::refresh_collection(&facts, &mut m, &due);
        mailing.workbooks(vec![m])?;
    }
    tracing::info!(elapsed = ?started.elapsed(), workbooks, memory = %crate::ingest::memory(), "reports written");
    let run = mailing.run.clone();
    let queued = mailing.seal_and_queue()?;
    tracing::info!(queued, "mail queued, run sealed");
    // What the sealed run read leaves the inbox for the input store; an
    // export that cannot move stays for the next run (told in the log).
    crate::inputs::archive_read(config, facts.files, &run, &local_text(facts.generated_at));
    Ok(())
}

/// One workbook between its store reads and its rendering: the model
/// with its return token, its file name, and each reader with how their
/// copy is sealed.
struct Planned {
    model: ReportModel,
    key: String,
    name: String,
    readers: Vec<(String, mail::Role, mail::Sealing)>,
}

/// What a run's end gathers before its one transaction: the mail to
/// queue, the critical findings it tells of, the items it opens.
struct Mailing<'a> {
    config: &'a Config,
    outcome: &'a RunOutcome,
    facts: &'a RunFacts<'a>,
    store: Store,
    /// The run folder, as mail and items name it.
    run: String,
    now: chrono::DateTime<chrono::Utc>,
    issued_at: String,
    messages: Vec<mail::Outgoing>,
    /// Critical findings an earlier run's urgent notice told of are not
    /// told again; those this run tells of are recorded with its mail.
    notified: std::collections::BTreeSet<String>,
    told: Vec<String>,
    /// The items this run opens: written with its mail and its seal.
    opening: Vec<crate::store::DueItem>,
}

impl<'a> Mailing<'a> {
    fn new(config: &'a Config, outcome: &'a RunOutcome, facts: &'a RunFacts<'a>) -> Result<Self> {
        let now = {
            use chrono::TimeZone;
            config
                .timezone
                .from_local_datetime(&facts.generated_at)
                .earliest()
                .map_or_else(
                    || facts.generated_at.and_utc(),
                    |t| t.with_timezone(&chrono::Utc),
                )
        };
        let store = Store::open(&config.paths.state)?;
        let notified = store.notified_criticals()?;
        Ok(Mailing {
            config,
            outcome,
            facts,
            store,
            run: outcome.dir.display().to_string(),
            now,
            issued_at: now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            messages: Vec::new(),
            notified,
            told: Vec::new(),
            opening: Vec::new(),
        })
    }

    /// Renders, writes and sends `models`' workbooks. What reads or writes
    /// the state store (return tokens, then, once every workbook rendered,
    /// readers' passwords) and what the run sends is done in the models'
    /// order; the rendering and the encryption side by side. An error is
    /// the first in the models' order.
    fn workbooks(&mut self, models: Vec<ReportModel>) -> Result<()> {
        use rayon::prelude::*;
        let mut planned = Vec::with_capacity(models.len());
        for m in models {
            planned.push(self.plan(m)?);
        }
        let hb = &self.config.agencies.health_bureau().id;
        let rendered: Vec<Result<Vec<u8>>> = planned
            .par_iter()
            .map(|p| {
                report::render(&p.model).with_context(|| format!("rendering {} ({hb})", p.name))
            })
            .collect();
        let rendered = rendered.into_iter().collect::<Result<Vec<_>>>()?;
        for p in &mut planned {
            for (to, role) in mail::recipients(self.config, &p.model) {
                // Encrypted for its reader: each opens it with their own
                // password.
                let sealing = mail::sealing(
                    self.config,
                    &mut self.store,
                    &p.model.unit_id,
                    role,
                    &self.issued_at,
                )?;
                p.readers.push((to, role, sealing));
            }
        }
        let sealed: Vec<Result<Vec<mail::Attachment>>> = planned
            .par_iter()
            .zip(&rendered)
            .map(|(p, bytes)| p.readers.iter().map(|r| r.2.apply(bytes)).collect())
            .collect();
        for ((p, bytes), attachments) in planned.into_iter().zip(&rendered).zip(sealed) {
            self.send(p, bytes, attachments?)?;
        }
        Ok(())
    }

    /// One workbook's model with its return token (from the state store)
    /// and its file name; its readers come once it rendered.
    fn plan(&mut self, mut m: ReportModel) -> Result<Planned> {
        let config = self.config;
        let key = m.key();
        // What comes back must come from the unit it was sent to.
        if !m.city_wide() {
            m.return_token = Some(crate::worksheet::return_token(
                &config.paths.state,
                &m.run_id,
                &key,
                m.kind.job().as_str(),
            )?);
        }
        let unit = (!m.city_wide()).then_some(key.as_str());
        let name = RunFolder::workbook_name(unit);
        Ok(Planned {
            model: m,
            key,
            name,
            readers: Vec::new(),
        })
    }

    /// Writes one rendered workbook, then what it sends: the unit's
    /// critical notices, the item it opens, a message to each reader.
    fn send(&mut self, p: Planned, bytes: &[u8], attachments: Vec<mail::Attachment>) -> Result<()> {
        let Planned {
            model: m,
            key,
            name,
            readers,
        } = p;
        let unit = (!m.city_wide()).then_some(key.as_str());
        let path = self.outcome.folder.workbook(unit)?;
        let mut f = archive::create_private(&path)?;
        f.write_all(bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        if !m.city_wide() && m.second_review().is_none() && m.chief_document().is_none() {
            self.critical_notices(&m)?;
        }
        if readers.is_empty() {
            // A second review nobody can be sent: a person must name one.
            if m.second_review().is_some() {
                let notice = self.no_reviewer(&m, &key, &path)?;
                self.messages.push(notice);
            }
            return Ok(());
        }
        // Whoever the workbook is for: the officer, or the second reviewer.
        self.open_item(&m, &key, &readers[0].0);
        let draw_number = self.facts.sample.map_or(1, |(s, _)| s.draw_number);
        for ((to, role, _), attachment) in readers.into_iter().zip(attachments) {
            let message = mail::compose(
                self.config,
                &m,
                &self.run,
                &name,
                &attachment,
                &path,
                &to,
                role,
                draw_number,
                self.now,
            )?;
            self.messages.push(message);
        }
        Ok(())
    }

    /// The unit's critical findings not told before, as urgent notices.
    fn critical_notices(&mut self, m: &ReportModel) -> Result<()> {
        let (items, keys) = critical_items(&self.outcome.findings, &m.unit_id, &self.notified)?;
        let notices = mail::critical_notices(self.config, m, &self.run, &items, self.now)?;
        if !notices.is_empty() {
            self.told.extend(keys);
        }
        self.messages.extend(notices);
        Ok(())
    }

    /// The admin's notice that a unit's officer's own accounts have nobody
    /// to review them.
    fn no_reviewer(
        &self,
        m: &ReportModel,
        key: &str,
        path: &std::path::Path,
    ) -> Result<mail::Outgoing> {
        let config = self.config;
        let health_bureau = config
            .agencies
            .get(&m.unit_id)
            .is_some_and(|a| a.health_bureau);
        mail::plain(
            config,
            &self.run,
            &format!("no-reviewer:{key}"),
            &config.mail.admin,
            &format!(
                "【健保WebIR稽核】{}：專責人員本人帳號之抽查無覆核人",
                m.unit_name
            ),
            format!(
                "{}（{}）專責人員本人帳號之抽查紀錄（{}）已製作於 {}，惟無覆核人可寄送：該機關未設定政風單位信箱{}。\n\n請於設定檔為該機關設定 ethics_email{}，並將上述工作簿交該覆核人（本次未寄出）；在此之前本項無人覆核。\n",
                m.unit_name,
                m.unit_id,
                m.second_review()
                    .map(|r| r.accounts.join("、"))
                    .unwrap_or_default(),
                path.display(),
                if health_bureau {
                    "（衛生局之抽樣可能含總管理者本人帳號，不由總管理者覆核）"
                } else {
                    "，亦無 [chief_administrator]"
                },
                if health_bureau {
                    ""
                } else {
                    "或 [chief_administrator]"
                },
            ),
            self.now,
        )
    }

    /// What the run asks of the unit, due by the workbook's deadline and
    /// chased until a return closes it.
    fn open_item(&mut self, m: &ReportModel, key: &str, sent_to: &str) {
        let (config, facts) = (self.config, self.facts);
        let job = facts.kind.job();
        if m.city_wide() || !m.asks_something() || config.followup.days(job).is_none() {
            return;
        }
        let due_on = match &m.document {
            report::Document::ExternalRecord { .. } => {
                report::build::external_record_due(config, facts.generated_at)
            }
            _ => report::build::deadline(config, facts.kind, facts.generated_at).1,
        };
        let label = if let Some(doc) = m.chief_document() {
            format!("{} {doc}", m.period_label)
        } else if m.second_review().is_some() {
            format!(
                "{} {}（專責人員本人帳號覆核）",
                m.period_label,
                m.kind.title()
            )
        } else {
            format!("{} {}", m.period_label, m.kind.title())
        };
        self.opening.push(crate::store::DueItem {
            id: 0,
            job: job.as_str().to_owned(),
            run_id: m.run_id.clone(),
            run_dir: self.run.clone(),
            unit_id: key.to_owned(),
            sent_to: sent_to.to_owned(),
            label,
            opened_at: facts.generated_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
            due_on: due_on.to_string(),
            closed_at: None,
            closed_by: None,
        });
    }

    /// What the run asks, its mail and its seal are one transaction: a run
    /// that dies before its seal leaves no item open and no mail queued
    /// (nobody was asked anything), and is resumed or removed whole.
    /// Queueing a run again adds nothing (unique run, report, recipient).
    /// The seal is written and hashed first, outside the transaction: the
    /// database is not held locked while a large run folder is read.
    /// Returns how many messages were queued.
    fn seal_and_queue(mut self) -> Result<usize> {
        let dir = &self.outcome.dir;
        let sealed = archive::seal(dir, &self.outcome.folder.written).and_then(|()| {
            archive::seal_digest(dir)
                .with_context(|| format!("hashing the seal of {}", dir.display()))
        });
        let (config, facts, run, now) = (self.config, self.facts, &self.run, self.now);
        let (messages, opening, told) = (&mut self.messages, &self.opening, &self.told);
        let queued = sealed.and_then(|digest| {
            self.store.atomically(|store| {
                for item in opening {
                    store.open_due(item)?;
                }
                // Point 6(4): each unit the external audit drew is told what
                // to prepare and by when; its preparation is a due item.
                if let (ReportKind::ExternalAudit, Some(draw)) = (facts.kind, facts.selection) {
                    messages.extend(crate::followup::drawn_units(
                        config, store, facts, draw, run, now,
                    )?);
                }
                let queued = store.queue_noting(messages, &self.issued_at, run, told)?;
                let job = self.outcome.job;
                let (job_period, at) = ((job.as_str(), &*self.outcome.period), stamp(now));
                match self.outcome.ledger {
                    LedgerEntry::Row(id) => store.record_in_ledger(id, run, &at)?,
                    // Query checks are no scheduled duty.
                    LedgerEntry::ByHand if !job.periods().is_empty() => {
                        store.record_manual_run(job_period.0, job_period.1, &at, run)?;
                    }
                    LedgerEntry::ByHand | LedgerEntry::Unrecorded => {}
                }
                store.chain_append(
                    "seal",
                    &archive::chain_id(dir),
                    &digest,
                    &local_text(facts.generated_at),
                )?;
                Ok(queued)
            })
        });
        // Whatever failed (the chain, the commit), a seal file left without
        // its chain entry would make the folder look finished: it goes, and
        // the folder is a leftover the next run removes or resumes.
        queued.inspect_err(|_| {
            let _ = std::fs::remove_file(dir.join(archive::SEAL));
        })
    }
}

/// A unit's critical findings, for the immediate notice, one item per
/// account and code (subjects are masked in the findings already): how
/// many, from when to when, how many people were looked up, and the first
/// finding's reason as an example. Most findings first.
pub(super) fn critical_items(
    findings: &DataFrame,
    unit: &str,
    notified: &std::collections::BTreeSet<String>,
) -> Result<(Vec<mail::CriticalItem>, Vec<String>)> {
    let ts = |e: Expr| e.dt().strftime("%Y-%m-%d %H:%M:%S");
    // A critical finding's identity across runs: a later run (the year's
    // internal audit re-checks the half-year's queries) finds it again,
    // and it was told already.
    let key = report::build::finding_key();
    let new = findings
        .clone()
        .lazy()
        .filter(
            col("unit_id")
                .eq(lit(unit))
                .and(col("severity").eq(lit(Severity::Critical.name()))),
        )
        .filter(report::build::key_in(notified.iter().cloned()).not())
        .with_column(key.alias("notice_key"))
        .collect()?;
    let keys: Vec<String> = new
        .column("notice_key")?
        .str()?
        .iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    let f = new
        .lazy()
        .sort(
            ["occurred_at"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .group_by_stable([col("code"), col("account_id")])
        .agg([
            len().cast(DataType::Int64).alias("n"),
            ts(col("occurred_at").min()).alias("first"),
            ts(col("occurred_at").max()).alias("last"),
            col("subject")
                .n_unique()
                .cast(DataType::Int64)
                .alias("subjects"),
            col("reason").first().alias("example"),
        ])
        .sort(
            ["n", "account_id", "code"],
            SortMultipleOptions::default().with_order_descending_multi([true, false, false]),
        )
        .collect()?;
    let s = |c: &str| -> Result<Vec<String>> {
        Ok(f.column(c)?
            .str()?
            .iter()
            .map(|v| v.unwrap_or("").to_owned())
            .collect())
    };
    let i = |c: &str| -> Result<Vec<i64>> {
        Ok(f.column(c)?.i64()?.iter().map(|v| v.unwrap_or(0)).collect())
    };
    let (code, account, first, last, example) = (
        s("code")?,
        s("account_id")?,
        s("first")?,
        s("last")?,
        s("example")?,
    );
    let (n, subjects) = (i("n")?, i("subjects")?);
    let items = (0..f.height())
        .map(|k| mail::CriticalItem {
            description: Code::parse(&code[k])
                .map_or(code[k].clone(), |c| c.description().to_owned()),
            account: account[k].clone(),
            count: n[k],
            first: first[k].clone(),
            last: last[k].clone(),
            subjects: subjects[k],
            example: example[k].clone(),
        })
        .collect();
    Ok((items, keys))
}
