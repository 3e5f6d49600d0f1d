//! The yearly audits: the internal audit each unit owes (point 6(3)) and
//! the Health Bureau's external audit (point 4). Both gather evidence the
//! tool already has — checks, the archive, the state database — into
//! workbooks the auditors assess.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;

use super::{
    RunOutcome, RunSpec, facts, finish_run, local_text, queries_by_month, record_run, take_tables,
};
use crate::archive;
use crate::archive::RunFolder;
use crate::checks::Severity;
use crate::checks::{Checked, Code, Scope};
use crate::clock::Clock;
use crate::config::Config;
use crate::ingest::snapshot::Reference;
use crate::job::Job;
use crate::model::Table;
use crate::period::{Period, RunPeriod};
use crate::report::{Cell, ReportKind, Table as Sheet, build::RunFacts};
use crate::sampling::spec::Seed;
use crate::sampling::units;
use crate::store::Store;

/// Queries of the period per unit.
fn queries_per_unit(
    config: &Config,
    log: &DataFrame,
    period: &Period,
) -> Result<BTreeMap<String, i64>> {
    let counts = log
        .clone()
        .lazy()
        .filter(period.holds_query())
        .group_by([col("agency_id")])
        .agg([len().alias("n")])
        .collect()?;
    let mut out = BTreeMap::new();
    let ids = counts.column("agency_id")?.str()?.clone();
    let n = counts.column("n")?.cast(&DataType::Int64)?.i64()?.clone();
    for (a, n) in ids.iter().zip(n.iter()) {
        if let (Some(a), Some(n)) = (a, n)
            && let Some(agency) = config.agencies.get(a)
        {
            *out.entry(agency.unit.clone()).or_default() += n;
        }
    }
    Ok(out)
}

/// Findings of `codes` (all if empty) per unit, and how many of them were
/// critical or high.
fn count_by_unit(findings: &DataFrame, codes: &[Code]) -> Result<BTreeMap<String, (i64, i64)>> {
    let unit = findings.column("unit_id")?.str()?.clone();
    let code = findings.column("code")?.str()?.clone();
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (u, c) in unit.iter().zip(code.iter()) {
        let (Some(u), Some(c)) = (u, c.and_then(Code::parse)) else {
            continue;
        };
        if !codes.is_empty() && !codes.contains(&c) {
            continue;
        }
        let e = out.entry(u.to_owned()).or_default();
        e.0 += 1;
        if c.severity() <= Severity::High {
            e.1 += 1;
        }
    }
    Ok(out)
}

fn evidence(
    config: &Config,
    period: &Period,
    as_of: NaiveDate,
    queries: &BTreeMap<String, i64>,
    account_findings: &DataFrame,
    query_findings: &DataFrame,
    store: &Store,
) -> Result<BTreeMap<String, Sheet>> {
    let unexplained = count_by_unit(
        query_findings,
        &[
            Code::QueryNoRequestForm,
            Code::QueryFormNotApproved,
            Code::QueryApprovedAfterQuery,
            Code::QueryFormExpired,
        ],
    )?;
    let open_items = count_by_unit(account_findings, &[])?;
    let stale = count_by_unit(account_findings, &[Code::AccountPasswordStale])?;
    let serious = count_by_unit(query_findings, &[])?;
    let year = period.start.date().format("%Y").to_string();
    let (start, end) = (period.start.date(), period.end.date());
    let archive = &config.paths.archive;
    let review = RunFolder::latest(archive, Job::AccountReview, |p| {
        p.as_of().is_some_and(|d| d >= start && d < end)
    })?;
    let halves: Vec<(String, Option<RunFolder>)> = ["H1", "H2"]
        .iter()
        .map(|h| {
            let id = format!("{year}{h}");
            let run = RunFolder::latest(archive, Job::SampleAudit, |p| {
                *p == RunPeriod::Period(id.clone())
            });
            run.map(|r| (id, r))
        })
        .collect::<std::io::Result<_>>()?;
    let outbox = store.outbox()?;
    let mut out = BTreeMap::new();
    for unit in config.agencies.units() {
        let u = unit.id.as_str();
        let n = queries.get(u).copied().unwrap_or(0);
        let bad = unexplained.get(u).map_or(0, |x| x.0);
        let share = if n == 0 {
            "本期間無查詢".to_owned()
        } else {
            let permille = (n - bad) * 1000 / n;
            format!(
                "{} / {n} 筆（{}.{}%）",
                n - bad,
                permille / 10,
                permille % 10
            )
        };
        let mut rows: Vec<Vec<Cell>> = vec![
            vec![
                "查詢總數".into(),
                "第六點第一款".into(),
                Cell::Text(format!("{n} 筆")),
            ],
            vec![
                "經事前核可查詢申請紀錄表說明之查詢".into(),
                "第五點第二款第一目".into(),
                Cell::Text(share),
            ],
            vec![
                "年度帳號清查".into(),
                "第六點第二款".into(),
                Cell::Text(match &review {
                    Some(run) => format!(
                        "已辦理（基準日 {}，執行編號 {}）",
                        run.period
                            .as_of()
                            .map(|d| d.to_string())
                            .unwrap_or_default(),
                        run.id
                    ),
                    None => "本期間未辦理".into(),
                }),
            ],
            vec![
                Cell::Text(format!("帳號清查待處理事項（基準日 {as_of}）")),
                "第五點第一款第三目".into(),
                Cell::Text({
                    let (k, h) = open_items.get(u).copied().unwrap_or((0, 0));
                    format!("{k} 項，其中嚴重或高風險 {h} 項")
                }),
            ],
            vec![
                "密碼逾 90 日未更新之帳號".into(),
                "第五點第三款".into(),
                Cell::Text(format!("{} 個", stale.get(u).map_or(0, |x| x.0))),
            ],
        ];
        let mut confirmed = 0u32;
        for (id, run) in &halves {
            let text = match run {
                None => "未辦理".to_owned(),
                Some(run) => {
                    let rid = &run.id;
                    let m = run.manifest()?;
                    let sampled = m.units_sampled().iter().any(|x| x == u);
                    let back = store
                        .worksheet_returns(rid)?
                        .into_iter()
                        .rfind(|r| r.unit_id == u);
                    if let Some(r) = &back {
                        confirmed += r.anomalies;
                    }
                    format!(
                        "已辦理（執行編號 {rid}，第 {} 次抽籤）；{}",
                        m.draw_number,
                        match (sampled, back) {
                            (false, _) => "本單位無抽樣帳號".to_owned(),
                            (true, Some(r)) => format!("工作底稿已回傳（{}）", r.received_at),
                            (true, None) => "工作底稿未回傳".to_owned(),
                        }
                    )
                }
            };
            rows.push(vec![
                Cell::Text(format!("抽查 {}", crate::report::period_label(id))),
                "第六點第一款".into(),
                Cell::Text(text),
            ]);
        }
        rows.push(vec![
            "工作底稿確認之異常".into(),
            "第六點第三款".into(),
            Cell::Text(format!("{confirmed} 筆")),
        ]);
        rows.push(vec![
            "嚴重或高風險之異常查詢".into(),
            "第六點第三款".into(),
            Cell::Text(format!(
                "{} 筆（明細見「異常查詢」）",
                serious.get(u).map_or(0, |x| x.1)
            )),
        ]);
        let notices: Vec<_> = outbox
            .iter()
            .filter(|r| r.report.starts_with(&format!("anomalies:{u}:")))
            .collect();
        rows.push(vec![
            "工作底稿異常已通知政風單位".into(),
            "第六點第三款".into(),
            Cell::Text(if notices.is_empty() {
                "無通知紀錄".to_owned()
            } else {
                notices
                    .iter()
                    .map(|r| match &r.sent_at {
                        Some(at) => format!("已寄送 {}（{at}）", r.recipient),
                        None => format!("{}：{}", r.recipient, r.state),
                    })
                    .collect::<Vec<_>>()
                    .join("；")
            }),
        ]);
        rows.push(vec![
            "異常事項會同政風單位調查並作成紀錄".into(),
            "第六點第三款".into(),
            "（請稽核人員填寫）".into(),
        ]);
        out.insert(
            u.to_owned(),
            Sheet {
                headers: ["查核項目", "依據（管理要點）", "系統查得"]
                    .map(str::to_owned)
                    .to_vec(),
                rows,
            },
        );
    }
    Ok(out)
}

/// `run internal-audit --period 2026`: each unit's yearly internal audit
/// (point 6(3)), pre-filled from the checks, the archive and the state.
pub(super) fn internal_audit(
    config: &Config,
    period: &Period,
    clock: &dyn Clock,
) -> Result<RunOutcome> {
    let started = clock.local(config.timezone);
    let mut ingested = super::ingest_inbox(config, Reference::PeriodEnd(period.last_day()))?;
    let dir = RunFolder::create(
        &config.paths.archive,
        &RunPeriod::Period(period.id.clone()),
        Job::InternalAudit,
        started,
    )?
    .dir;
    let by_month = queries_by_month(ingested.table(Table::QueryLog), period)?;
    let queries = queries_per_unit(config, ingested.table(Table::QueryLog), period)?;
    let roster = ingested.table(Table::Roster).clone();
    let tables = take_tables(&mut ingested);
    // As of the period's last day, or today while the period runs.
    let day = period.last_day().min(started.date());
    let accounts = super::run_checks(
        config,
        &ingested,
        tables.clone(),
        Scope::Accounts,
        day,
        None,
    )?;
    let queries_found = super::run_checks(
        config,
        &ingested,
        tables,
        Scope::Queries,
        day,
        Some(period.clone()),
    )?;
    let mut not_checked = accounts.not_checked.clone();
    not_checked.extend(queries_found.not_checked.iter().cloned());
    let orphans = queries_found.orphans;
    let (accounts, queries_found) = (accounts.findings, queries_found.findings);
    let store = Store::open(&config.paths.state)?;
    let evidence = evidence(
        config,
        period,
        day,
        &queries,
        &accounts,
        &queries_found,
        &store,
    )?;
    let findings = concat(
        [accounts.lazy(), queries_found.lazy()],
        UnionArgs::default(),
    )?
    .collect()?;
    let outcome = record_run(
        config,
        RunSpec {
            job: Job::InternalAudit,
            period: Some(period.clone()),
            as_of: day,
            started,
        },
        dir,
        Checked {
            findings,
            not_checked,
            orphans,
        },
        ingested,
        clock,
    )?;
    finish_run(
        config,
        &outcome,
        Some(&roster),
        RunFacts {
            queries_by_month: Some(&by_month),
            evidence: Some(&evidence),
            orphans: Some(&outcome.orphans),
            ..facts(
                config,
                ReportKind::InternalAudit,
                period.id.clone(),
                &outcome,
                clock,
            )
        },
    )?;
    Ok(outcome)
}

pub use crate::sampling::units::UnitDraw as ExternalSelection;

/// `run external-audit --period 2026 [--seed]`: the Health Bureau's draw
/// of units to spot-check (tickets as in docs/sampling.md, kind "unit";
/// the Health Bureau does not draw itself) and the review of every officer
/// account (point 4).
pub(super) fn external_audit(
    config: &Config,
    period: &Period,
    seed: Option<Seed>,
    redraw: bool,
    clock: &dyn Clock,
) -> Result<(RunOutcome, ExternalSelection)> {
    let started = clock.local(config.timezone);
    super::refuse_second_draw(
        &Store::open(&config.paths.state)?,
        &format!("{}/{}", period.id, Job::ExternalAudit),
        Job::ExternalAudit,
        redraw,
    )?;
    let day = period.last_day().min(started.date());
    let mut ingested = super::ingest_inbox(config, Reference::Day(day))?;
    let hb = config.agencies.health_bureau().id.clone();
    let (candidates, digest) = units::candidates(
        config
            .agencies
            .units()
            .filter(|u| u.id != hb)
            .map(|u| u.id.clone()),
    );
    let dir = RunFolder::create(
        &config.paths.archive,
        &RunPeriod::Period(period.id.clone()),
        Job::ExternalAudit,
        started,
    )?
    .dir;
    let (seed, source) = Seed::given_or_drawn(seed)
        .map_err(|e| anyhow::anyhow!("drawing a seed from the OS: {e}"))?;
    let mut store = Store::open(&config.paths.state)?;
    let draw_number = store.record_draw(
        &format!("{}/{}", period.id, Job::ExternalAudit),
        seed.as_str(),
        source,
        &local_text(clock.local(config.timezone)),
        &digest,
        &dir.display().to_string(),
    )?;
    let selection = units::draw(
        &seed,
        source,
        draw_number,
        &period.id,
        (&candidates, &digest),
        config.rules.external_audit_units,
    );
    archive::write_json(&selection, &dir.join("selection.json"))?;
    let roster = ingested.table(Table::Roster).clone();
    let tables = take_tables(&mut ingested);
    let checked = super::run_checks(config, &ingested, tables, Scope::Accounts, day, None)?;
    let outcome = record_run(
        config,
        RunSpec {
            job: Job::ExternalAudit,
            period: Some(period.clone()),
            as_of: day,
            started,
        },
        dir,
        checked,
        ingested,
        clock,
    )?;
    finish_run(
        config,
        &outcome,
        Some(&roster),
        RunFacts {
            roster: Some(&roster),
            selection: Some(&selection),
            ..facts(
                config,
                ReportKind::ExternalAudit,
                period.id.clone(),
                &outcome,
                clock,
            )
        },
    )?;
    Ok((outcome, selection))
}
