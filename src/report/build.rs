//! From a run's outputs to report models: one per requesting agency (its
//! unit: itself and the agencies that belong to it) and one city-wide for
//! the Health Bureau. A unit's model is built only from rows whose agency
//! is in the unit, filtered here once; the renderer never filters.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use polars::prelude::*;

use super::{
    Cell, CityWide, Document, Queries, ReportKind, ReportModel, SampleSection, SecondReview,
    SheetTable, period_label,
};
use crate::checks::NotChecked;
use crate::checks::Severity;
use crate::checks::{Code, Scope, left_keep_order, one_of};
use crate::config::Config;
use crate::ingest::{FileRecord, FileStatus, RosterUse};
use crate::model::{ACCOUNT_STATUS, PURPOSE, ROLE, Vocab};
use crate::sampling::manifest::Manifest;
use crate::sampling::units::UnitDraw;

/// What a run produced that reports show.
#[derive(Debug)]
pub struct RunFacts<'a> {
    pub config: &'a Config,
    pub kind: ReportKind,
    pub period_id: String,
    pub run_id: String,
    pub generated_at: NaiveDateTime,
    /// The findings table of the run (`checks::run`).
    pub findings: &'a DataFrame,
    pub files: &'a [FileRecord],
    pub rejects: &'a DataFrame,
    /// Account review: the canonical roster.
    pub roster: Option<&'a DataFrame>,
    /// Sample audit: the manifest and [`sample_details`].
    pub sample: Option<(&'a Manifest, &'a DataFrame)>,
    /// `agency_id, month (YYYY-MM), queries`.
    pub queries_by_month: Option<&'a DataFrame>,
    /// Internal audit: each unit's evidence table.
    pub evidence: Option<&'a BTreeMap<String, UnitEvidence>>,
    /// External audit: the units drawn.
    /// External audit: the draw of units.
    pub selection: Option<&'a UnitDraw>,
    /// City-wide: per unit, the latest sample audit, the latest account
    /// review and whether the last worksheet came back.
    pub unit_status: Option<&'a BTreeMap<String, UnitStatus>>,
    /// City-wide: what runs asked of units and where each stands.
    pub due: Option<&'a [DueRow]>,
    /// The evidence chain's head (`第 N 筆 <16 hex>`).
    pub chain_head: Option<String>,
    /// Accounts in the query log but not in the roster: `agency_id,
    /// account_id, queries, first, last`.
    pub orphans: Option<&'a DataFrame>,
    /// Lines every summary shows (e.g. the external audit's seed).
    pub notes: Vec<String>,
    /// Checks that did not run, and why.
    pub not_checked: &'a [NotChecked],
    /// The roster snapshot used.
    pub roster_use: Option<&'a RosterUse>,
    /// Query findings an earlier workbook already asked the units about:
    /// shown with where they were asked and what came back, not asked
    /// again.
    pub asked: Option<&'a Asked>,
    /// Account review: the disabled accounts the query log shows in use
    /// after their disabling ([`used_after_disabling`]): not "無須處理".
    pub after_disabling: Option<&'a DataFrame>,
}

/// What earlier workbooks asked the units, and what they answered.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    /// [`finding_key`] → where it was first asked, e.g. `2026H1
    /// 抽查工作底稿（執行編號 …）`.
    pub first: BTreeMap<String, String>,
    /// `(unit, 說明, 帳號)` → the latest answer to it (處理情形, 完成日).
    pub replies: BTreeMap<(String, String, String), String>,
}

/// A query finding's identity across runs: code, account, subject and
/// time. A later run (the year's internal audit re-checking the
/// half-year's queries) finds it again by it.
pub fn finding_key() -> Expr {
    concat_str(
        [
            col("code"),
            col("account_id").fill_null(lit("")),
            col("subject").fill_null(lit("")),
            col("occurred_at")
                .dt()
                .strftime("%Y-%m-%d %H:%M:%S")
                .fill_null(lit("")),
        ],
        "|",
        false,
    )
}

/// One thing a run asked of a unit, and where it stands on the day the
/// workbook is made (the city-wide 回收狀況 sheet).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DueRow {
    pub unit_id: String,
    /// Period and kind, as the workbook named it.
    pub label: String,
    pub run_id: String,
    pub opened_on: String,
    pub due_on: String,
    /// The day the return came in.
    pub returned_on: Option<String>,
    /// Days past the due day: today's for an open item, the return's for
    /// a returned one (zero or less: on time).
    pub days_late: i64,
    /// The latest return's rows answered and rows, if one came back (a
    /// partial one leaves the item open).
    pub answered: Option<(u32, u32)>,
}

impl DueRow {
    /// 已回傳, 逾期未回傳 or 未到期.
    pub fn state(&self) -> &'static str {
        match (&self.returned_on, self.days_late > 0) {
            (Some(_), _) => "已回傳",
            (None, true) => "逾期未回傳",
            (None, false) => "未到期",
        }
    }
}

/// The city-wide 回收狀況 from `due`: every ask of every run, the current
/// one's too once it has opened them.
pub fn refresh_collection(f: &RunFacts<'_>, m: &mut ReportModel, due: &[DueRow]) {
    if let Document::CityWide(c) = &mut m.document {
        c.collection = (!due.is_empty()).then(|| due_table(f, due));
    }
}

fn due_table(f: &RunFacts<'_>, rows: &[DueRow]) -> SheetTable {
    SheetTable {
        headers: headers(&[
            "單位",
            "事項",
            "執行編號",
            "寄送日",
            "期限",
            "狀態",
            "回傳日",
            "已填列數",
            "逾期日數",
        ]),
        rows: rows
            .iter()
            .map(|d| {
                vec![
                    // A unit's second review is the unit's; its label says
                    // which it is.
                    Cell::Text({
                        let (id, _) = super::unit_of_key(&d.unit_id);
                        format!("{}（{id}）", agency_name(f.config, id))
                    }),
                    Cell::Text(d.label.clone()),
                    Cell::Text(d.run_id.clone()),
                    Cell::Text(d.opened_on.clone()),
                    Cell::Text(d.due_on.clone()),
                    Cell::from(d.state()),
                    d.returned_on.clone().map_or(Cell::Empty, Cell::Text),
                    Cell::Text(match d.answered {
                        Some((done, all)) => format!("{done} / {all}"),
                        None => "尚未回傳".to_owned(),
                    }),
                    Cell::Int(d.days_late.max(0)),
                ]
            })
            .collect(),
    }
}

/// What the internal audit found of a unit in the tool's own records
/// (point 6(3)), for [`evidence_table`] to word. Every count comes from
/// the run's own findings and carries the checks behind it that did not
/// run: a count whose check was withheld is shown as 未檢核, never as a
/// number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitEvidence {
    /// The day the account review of the audit is as of.
    pub as_of: NaiveDate,
    /// Queries of the period; withheld: query-log files that failed.
    pub queries: Tally,
    /// The first and last day of the period the loaded query logs hold.
    pub log_days: Option<(NaiveDate, NaiveDate)>,
    /// Queries no approved form explains (the four form codes).
    pub unexplained: Tally,
    /// The period's latest account review: its day and run id.
    pub review: Option<(NaiveDate, String)>,
    /// Account findings as of `as_of`: all, and critical or high.
    pub open_items: (Tally, i64),
    pub stale_passwords: Tally,
    /// Each half-year's sample audit (`2026H1`), if one was made.
    pub sample_audits: Vec<(String, Option<SampleAuditDone>)>,
    /// Critical or high query findings of the period.
    pub serious_queries: Tally,
    /// What the unit's ethics unit was sent: urgent notices of critical
    /// findings and notices of anomalies a returned worksheet confirmed.
    pub notices: Vec<Notice>,
    /// Point 5(1)1, the register of authorised users: the roster's active
    /// accounts of the unit and, of them, officers (none: no roster read).
    pub register: Option<(i64, i64)>,
    /// AGENCY_OFFICER_COUNT findings of the unit.
    pub officer_count: Tally,
    /// Point 5(2): accounts held, and queries made, by staff who may not
    /// hold one.
    pub ineligible: Tally,
    /// Point 3: queries for a purpose the agency does not have, or not
    /// the form's.
    pub purposes: Tally,
    /// Point 5(1)2: accounts whose application is missing or wrong (the
    /// four application codes); withheld without the register.
    pub applications: Tally,
    /// Point 5(4): the earliest request form of the unit's accounts and
    /// the earliest application the registers hold, and how long the tool
    /// keeps its own records.
    pub kept: Kept,
    /// Point 6(3): the investigation records opened for the unit in the
    /// period, and how many came back.
    pub investigations: (usize, usize),
    /// What the unit was asked in the period and whether it answered in
    /// time (its due items, opened in the period): the external audit's
    /// record shows them.
    pub due: Vec<DueRow>,
}

/// What the registers show of records kept (point 5(4)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    pub forms_since: Option<NaiveDate>,
    pub applications_since: Option<NaiveDate>,
    pub retention_years: u32,
}

/// What the internal audit's 系統查得 says of a duty only the auditor can
/// check on site (points 5(2)2–4): the system holds no data of it.
pub const ON_SITE: &str =
    "未檢核（系統無此資料）：請實地查核，並填寫查核方式及佐證（如抽訪人員、現場檢視、銷毀紀錄）";

/// A count of findings, and why the checks behind it that did not run
/// did not (Traditional Chinese, one sentence each; empty: all ran).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub n: i64,
    pub withheld: Vec<String>,
    /// The table every check behind the count reads is missing or failed:
    /// none of them ran, so no part of the count stands.
    pub none_ran: bool,
}

impl Tally {
    /// `text(n)` if every check behind the count ran, else 未檢核 and why:
    /// a withheld check never reads as a number.
    fn or_not_checked(&self, text: impl FnOnce(i64) -> String) -> String {
        if self.withheld.is_empty() {
            text(self.n)
        } else {
            format!("未檢核（{}）", self.withheld.join("；"))
        }
    }

    /// `text(n)`, and when some checks behind it did not run, that the
    /// count covers only the others: the figure is a floor, said so.
    fn partial(&self, text: impl FnOnce(i64) -> String) -> String {
        if self.none_ran {
            return self.or_not_checked(text);
        }
        if self.withheld.is_empty() {
            text(self.n)
        } else {
            format!(
                "{}；另下列檢核未執行，不得視為無異常：{}",
                text(self.n),
                self.withheld.join("；")
            )
        }
    }
}

/// A sample audit as the internal audit sees it for one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleAuditDone {
    pub run_id: String,
    pub draw_number: u32,
    /// Whether the unit had sampled accounts.
    pub sampled: bool,
    /// The unit's latest return: when, and the anomalies it confirmed.
    pub returned: Option<(String, u32)>,
}

/// A notice to the ethics unit, as the outbox has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// What it was: 重大異常即時通知, 工作底稿確認異常通知.
    pub kind: &'static str,
    pub recipient: String,
    pub sent_at: Option<String>,
    /// Where the message is when not sent yet (待寄送, 寄送失敗, …).
    pub state: &'static str,
}

/// The internal audit's evidence sheet of a unit: `查核項目, 依據, 系統查得`.
pub fn evidence_table(e: &UnitEvidence) -> SheetTable {
    let mut rows = account_duties(e);
    rows.extend(query_duties(e));
    let (audits, confirmed) = sample_audit_duties(e);
    rows.extend(audits);
    rows.extend(anomaly_duties(e, confirmed));
    SheetTable {
        headers: headers(&["查核項目", "依據（管理要點）", "系統查得"]),
        rows,
    }
}

/// A row of the evidence sheet: the duty, the point it comes from and
/// what the system found.
fn duty(what: impl Into<Cell>, point: &str, found: String) -> Vec<Cell> {
    vec![what.into(), point.into(), Cell::Text(found)]
}

/// A duty the system cannot see: the auditor checks it on site.
fn on_site(what: &str, point: &str) -> Vec<Cell> {
    duty(what, point, ON_SITE.into())
}

/// The duties of the accounts (points 5(1), 5(2), 6(2)): the register,
/// the applications, the yearly review and what it left open, who may
/// hold an account.
fn account_duties(e: &UnitEvidence) -> Vec<Vec<Cell>> {
    let register = match e.register {
        None => "未檢核（收件匣無帳號清冊或讀取失敗）".to_owned(),
        Some((active, officers)) => format!(
            "帳號清冊列本單位啟用帳號 {active} 個，其中專責人員 {officers} 名；{}；配賦過程之保密請實地查核",
            e.officer_count.or_not_checked(|n| if n == 0 {
                "專責人員人數符合規定".to_owned()
            } else {
                format!("專責人員人數不符規定 {n} 項")
            })
        ),
    };
    let applications = e.applications.or_not_checked(|n| {
        if n == 0 {
            "啟用帳號均有核定之申請表，開通日、申請人及異動均相符".to_owned()
        } else {
            format!(
                "{n} 項申請資料不全（無申請表、核定前開通、申請人非持有人或調職未申請異動；明細見帳號清查工作簿）"
            )
        }
    });
    let review = match &e.review {
        Some((day, run_id)) => format!("已辦理（基準日 {day}，執行編號 {run_id}）"),
        None => "本期間未辦理".into(),
    };
    let open_items = e
        .open_items
        .0
        .partial(|n| format!("{n} 項，其中嚴重或高風險 {} 項", e.open_items.1));
    let ineligible = e.ineligible.or_not_checked(|n| {
        if n == 0 {
            "無不符資格者持有之帳號或其查詢".to_owned()
        } else {
            format!("{n} 項（不符資格者持有帳號或以其帳號查詢）")
        }
    });
    vec![
        duty(
            "業務需求人員帳號及權限之配賦過程保密，並列冊控管授權使用對象",
            "第五點第一款第一目",
            register,
        ),
        duty(
            "妥善保管業務需求人員之申請資料",
            "第五點第一款第二目",
            applications,
        ),
        duty("年度帳號清查", "第六點第二款", review),
        duty(
            format!(
                "帳號清查待處理事項（基準日 {}；重複、閒置、職務調整、離職及退休者之帳號應廢止）",
                e.as_of
            ),
            "第五點第一款第三目",
            open_items,
        ),
        duty(
            "業務需求人員以編制內職員及約聘僱人員為限（不含職工、駕駛及臨時人員）",
            "第五點第二款",
            ineligible,
        ),
    ]
}

/// The share of the unit's queries a request form explains, in words.
fn explained_share(e: &UnitEvidence) -> String {
    let n = e.queries.n;
    let share = e.queries.or_not_checked(|_| String::new());
    if !share.is_empty() {
        share
    } else if !e.unexplained.withheld.is_empty() {
        e.unexplained.or_not_checked(|_| String::new())
    } else if n == 0 {
        "本期間無查詢".to_owned()
    } else {
        e.unexplained.or_not_checked(|unexplained| {
            let permille = (n - unexplained) * 1000 / n;
            format!(
                "{} / {n} 筆（{}.{}%）",
                n - unexplained,
                permille / 10,
                permille % 10
            )
        })
    }
}

/// The duties of querying (points 3, 5(2) to 5(4), 6(1)): how many
/// queries, explained and for a lawful purpose, what is checked on site,
/// passwords and how long the forms are kept.
fn query_duties(e: &UnitEvidence) -> Vec<Vec<Cell>> {
    let span = e
        .log_days
        .map(|(a, b)| format!("（查詢紀錄涵蓋 {a} 至 {b}）"))
        .unwrap_or_default();
    let purposes = e.purposes.or_not_checked(|n| {
        if n == 0 {
            "無目的不符之查詢".to_owned()
        } else {
            format!("{n} 筆（查詢目的非機關業務範圍，或與紀錄表所載目的不符）")
        }
    });
    let since = |d: Option<NaiveDate>| d.map_or("無紀錄".to_owned(), |d| d.to_string());
    let kept = format!(
        "查詢申請紀錄表登記簿所載本單位最早之紀錄表：{}；帳號申請登記簿最早之申請：{}；本系統之稽核紀錄保存 {} 年；紙本申請表及紀錄表之保存請實地查核",
        since(e.kept.forms_since),
        since(e.kept.applications_since),
        e.kept.retention_years
    );
    vec![
        duty(
            "查詢總數",
            "第六點第一款",
            e.queries.or_not_checked(|n| format!("{n} 筆{span}")),
        ),
        duty(
            "經事前核可查詢申請紀錄表說明之查詢",
            "第五點第二款第一目",
            explained_share(e),
        ),
        duty("查詢限於機關法定職務之目的", "第三點", purposes),
        on_site(
            "查詢後資料不留存於螢幕；查詢、輸出及傳送採保密措施",
            "第五點第二款第二目",
        ),
        on_site(
            "查詢時避免非業務權責人員閱覽、擷取及破壞",
            "第五點第二款第三目",
        ),
        on_site(
            "健保資訊使用完畢或列印附卷後立即銷毀（紙本至無法辨識，電子檔刪除並清空資源回收桶）",
            "第五點第二款第四目",
        ),
        duty(
            "密碼逾 90 日未更新之帳號（密碼應每三個月更改）",
            "第五點第三款",
            e.stale_passwords.or_not_checked(|n| format!("{n} 個")),
        ),
        duty("各項申請表及紀錄表至少保存三年", "第五點第四款", kept),
    ]
}

/// One row per sample audit of the year (point 6(1)), and the anomalies
/// their returned worksheets confirmed.
fn sample_audit_duties(e: &UnitEvidence) -> (Vec<Vec<Cell>>, u32) {
    let mut confirmed = 0u32;
    let mut rows = Vec::new();
    for (id, done) in &e.sample_audits {
        let text = match done {
            None => "未辦理".to_owned(),
            Some(d) => {
                if let Some((_, anomalies)) = &d.returned {
                    confirmed += anomalies;
                }
                format!(
                    "已辦理（執行編號 {}，第 {} 次抽籤）；{}",
                    d.run_id,
                    d.draw_number,
                    match (d.sampled, &d.returned) {
                        (false, _) => "本單位無抽樣帳號".to_owned(),
                        (true, Some((at, _))) => format!("工作底稿已回傳（{at}）"),
                        (true, None) => "工作底稿未回傳".to_owned(),
                    }
                )
            }
        };
        rows.push(duty(
            format!("抽查 {}", period_label(id)),
            "第六點第一款",
            text,
        ));
    }
    (rows, confirmed)
}

/// The duties of anomalies (point 6(3)): those the worksheets confirmed
/// (`confirmed`), the serious query findings, the ethics unit told, the
/// investigations opened and returned.
fn anomaly_duties(e: &UnitEvidence, confirmed: u32) -> Vec<Vec<Cell>> {
    // A worksheet not back yet has confirmed nothing either way.
    let pending = e.sample_audits.iter().any(|(_, d)| {
        d.as_ref()
            .is_some_and(|d| d.sampled && d.returned.is_none())
    });
    let confirmed = match (pending, confirmed) {
        (true, 0) => "未檢核（工作底稿未回傳）".to_owned(),
        (true, n) => format!("{n} 筆（另有工作底稿未回傳，未檢核）"),
        (false, n) => format!("{n} 筆"),
    };
    let serious = e.serious_queries.partial(|n| {
        format!("{n} 筆（明細見「異常查詢」；先前工作底稿已詢問者見「已列管異常查詢」）")
    });
    let notices = if e.notices.is_empty() {
        "無通知紀錄".to_owned()
    } else {
        e.notices
            .iter()
            .map(|r| match &r.sent_at {
                Some(at) => format!("{}已寄送 {}（{at}）", r.kind, r.recipient),
                None => format!("{}（{}）{}", r.kind, r.recipient, r.state),
            })
            .collect::<Vec<_>>()
            .join("；")
    };
    let (opened, back) = e.investigations;
    let investigations = if opened == 0 {
        "本期間未開立調查紀錄".to_owned()
    } else {
        format!("本期間開立調查紀錄 {opened} 件，已回傳 {back} 件")
    };
    vec![
        duty("工作底稿確認之異常", "第六點第三款", confirmed),
        duty("嚴重或高風險之異常查詢", "第六點第三款", serious),
        duty("異常已通知政風單位", "第六點第三款", notices),
        duty(
            "異常事項會同政風單位調查並作成調查紀錄",
            "第六點第三款",
            investigations,
        ),
    ]
}

/// What the city-wide workbook says of each unit besides its findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStatus {
    /// Roster accounts of the unit's agencies.
    pub accounts: i64,
    /// The latest sealed sample audit: its period and run id.
    pub last_sample: Option<(String, String)>,
    /// The day of the latest sealed account review.
    pub last_review: Option<NaiveDate>,
    /// The unit's worksheet of that sample audit.
    pub worksheet: WorksheetState,
}

/// Where a unit's worksheet of the latest sample audit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorksheetState {
    /// There is no sample audit yet.
    NoSampleAudit,
    /// The unit had no sampled account.
    NotSampled,
    Returned,
    NotReturned,
}

impl UnitStatus {
    /// The city-wide units table's cells: `帳號數, 最近抽查, 最近帳號清查, 工作底稿`.
    fn cells(&self) -> [Cell; 4] {
        [
            Cell::Int(self.accounts),
            Cell::Text(
                self.last_sample
                    .as_ref()
                    .map_or_else(|| "無紀錄".to_owned(), |(p, id)| format!("{p}（{id}）")),
            ),
            Cell::Text(
                self.last_review
                    .map_or_else(|| "無紀錄".to_owned(), |d| d.to_string()),
            ),
            Cell::from(match self.worksheet {
                WorksheetState::NoSampleAudit => "—",
                WorksheetState::NotSampled => "無抽樣",
                WorksheetState::Returned => "已回傳",
                WorksheetState::NotReturned => "未回傳",
            }),
        ]
    }
}

/// Days a unit has to answer a run of this kind (`[followup]`), and the
/// day that is, from the run's time: the deadline every workbook states
/// and the due item the run opens.
pub fn deadline(
    config: &Config,
    kind: ReportKind,
    generated_at: NaiveDateTime,
) -> (i64, chrono::NaiveDate) {
    let days = i64::from(
        config
            .followup
            .days(kind.job())
            .unwrap_or(config.followup.account_review_days),
    );
    (days, due_after(config, generated_at, days))
}

/// The day `days` after `from`, moved to the next working day: every
/// deadline the tool states (workbooks, investigation records, mail).
pub fn due_after(config: &Config, from: NaiveDateTime, days: i64) -> chrono::NaiveDate {
    next_working_day(config, (from + Duration::days(days)).date())
}

/// `day`, or the first working day after it (a deadline that falls on a
/// weekend or a holiday moves to the next working day, as the calendar of
/// `rules.holidays` says; without one, weekends only).
fn next_working_day(config: &Config, day: chrono::NaiveDate) -> chrono::NaiveDate {
    // No calendar has a month without a working day.
    (0..31)
        .map(|k| day + Duration::days(k))
        .find(|d| config.rules.holidays.is_workday(*d))
        .unwrap_or(day)
}

fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "嚴重",
        Severity::High => "高",
        Severity::Medium => "中",
        Severity::Low => "低",
    }
}

fn severity_of(name: &str) -> Option<Severity> {
    Severity::ALL.into_iter().find(|s| s.name() == name)
}

fn strs<'a>(df: &'a DataFrame, name: &str) -> PolarsResult<Vec<Option<&'a str>>> {
    Ok(df.column(name)?.str()?.iter().collect())
}

fn text(v: Option<&str>) -> Cell {
    v.filter(|s| !s.is_empty()).map_or(Cell::Empty, Cell::from)
}

fn label(vocab: &Vocab, code: Option<&str>) -> Cell {
    match code {
        Some(c) => Cell::Text(vocab.label(c).unwrap_or(c).to_owned()),
        None => Cell::Empty,
    }
}

fn headers(h: &[&str]) -> Vec<String> {
    h.iter().map(|s| (*s).to_owned()).collect()
}

fn times(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<NaiveDateTime>>> {
    let c = df
        .column(name)?
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
    Ok(c.datetime()?
        .physical()
        .iter()
        .map(|v| {
            v.and_then(|us| chrono::DateTime::from_timestamp_micros(us).map(|t| t.naive_utc()))
        })
        .collect())
}

/// `115/03/02` for 2026-03-02: the ROC date officers write.
pub fn roc_date(t: NaiveDateTime) -> String {
    format!("{}/{:02}/{:02}", t.year() - 1911, t.month(), t.day())
}

/// The sample rows with what the worksheet shows beside each: the holder,
/// the request form that explains it (the latest approved strictly before
/// the query for the same account and subject) and the checks' findings on
/// that record. `sample` is [`crate::sampling::sample_frame`]'s output.
pub fn sample_details(
    config: &Config,
    sample: &DataFrame,
    roster: &DataFrame,
    forms: &DataFrame,
    findings: &DataFrame,
) -> PolarsResult<DataFrame> {
    let holders = holders(roster);
    let candidates = shown_forms(config, sample, forms);
    let prechecks = prechecks(findings);
    let mut out = sample
        .clone()
        .lazy()
        .with_row_index("i", None)
        .join(
            holders,
            [col("account_id")],
            [col("account_id")],
            left_keep_order(),
        )
        .join(candidates, [col("i")], [col("i")], left_keep_order())
        .with_column(col("source_row").cast(DataType::Int64))
        .join(
            prechecks.with_column(col("source_row").cast(DataType::Int64)),
            [col("source_file"), col("source_row")],
            [col("source_file"), col("source_row")],
            left_keep_order(),
        )
        .sort(["i"], SortMultipleOptions::default())
        .collect()?;
    // Codes as Chinese descriptions, one cell.
    let described = described_codes(&out)?;
    out.with_column(Column::new("prechecks".into(), described))?;
    Ok(out)
}

/// Each account's holder and role (`account_id, holder_name,
/// holder_role`). The holder's role decides who reviews the row: an
/// officer's own account is reviewed by someone else (a second review).
fn holders(roster: &DataFrame) -> LazyFrame {
    let role = if roster
        .get_column_names()
        .iter()
        .any(|c| c.as_str() == "role")
    {
        col("role")
    } else {
        lit(NULL).cast(DataType::String)
    };
    roster.clone().lazy().group_by([col("account_id")]).agg([
        col("holder_name").first(),
        role.first().alias("holder_role"),
    ])
}

/// Per sampled row (`i`): the form it shows and that form's approver,
/// approval, purpose and 查詢事由. The form the checks matched (one as-of
/// join, `checks::match_forms`), else the one the finding cites.
fn shown_forms(config: &Config, sample: &DataFrame, forms: &DataFrame) -> LazyFrame {
    let approvers = forms
        .clone()
        .lazy()
        .select([
            col("form_id").alias("shown_form"),
            col("approver").alias("form_approver"),
            col("reason").alias("form_reason"),
            crate::checks::as_text(col("purpose")).alias("shown_purpose"),
        ])
        .unique_stable(Some(cols(["shown_form"])), UniqueKeepStrategy::First);
    crate::checks::query::late_forms(
        crate::checks::query::match_forms(
            sample
                .clone()
                .lazy()
                .with_row_index("i", None)
                .select([
                    col("i"),
                    // Keyed as the checks key the log.
                    crate::checks::as_log(col("account_id")).alias("account_id"),
                    col("subject_id"),
                    col("queried_at_exact").alias("queried_at"),
                ])
                .sort(
                    ["queried_at"],
                    SortMultipleOptions::default().with_maintain_order(true),
                ),
            forms,
            config,
        ),
        forms,
    )
    // The form the row shows: the one that explains the query, else the
    // one the finding cites, approved only after it. Its approver,
    // approval, purpose and 查詢事由 are that form's.
    .with_column(coalesce(&[col("form_id"), col("late_form_id")]).alias("shown_form"))
    .join(
        approvers,
        [col("shown_form")],
        [col("shown_form")],
        left_keep_order(),
    )
    .select([
        col("i"),
        col("form_id"),
        coalesce(&[
            crate::checks::as_text(col("form_purpose")),
            col("shown_purpose"),
        ])
        .alias("form_purpose"),
        col("form_approver"),
        col("form_reason"),
        coalesce(&[col("form_approved_at"), col("late_approved_at")]).alias("form_approved_at"),
        col("late_form_id"),
    ])
}

/// Findings about a query itself, by its source file and row: a roll-up
/// about its account (one finding citing its first query) is not this
/// row's verdict.
fn prechecks(findings: &DataFrame) -> LazyFrame {
    findings
        .clone()
        .lazy()
        .filter(
            col("source_row")
                .is_not_null()
                .and(col("subject").is_not_null())
                .and(col("subject").neq(lit(""))),
        )
        .group_by([col("source_file"), col("source_row")])
        .agg([col("code").sort(SortOptions::default()).unique_stable()])
}

/// The `code` lists of `out` as Chinese descriptions, one cell each.
fn described_codes(out: &DataFrame) -> PolarsResult<Vec<String>> {
    let codes = out.column("code")?.list()?.clone();
    let described = codes
        .amortized_iter()
        .map(|l| {
            let list = l.map(|s| s.as_ref().clone());
            match list {
                Some(s) if !s.is_empty() => s
                    .str()
                    .map(|c| {
                        c.iter()
                            .flatten()
                            .map(|c| {
                                Code::parse(c).map_or(c.to_owned(), |c| c.description().to_owned())
                            })
                            .collect::<Vec<_>>()
                            .join("；")
                    })
                    .unwrap_or_default(),
                _ => "無異常".to_owned(),
            }
        })
        .collect();
    Ok(described)
}

/// The disabled accounts of `roster` the query log shows queries of
/// after the day they were disabled, up to `as_of`: `account_id,
/// queries, last`. The account review lists them for investigation
/// (the same queries QUERY_BY_DISABLED_ACCOUNT finds in the period), not
/// as needing nothing. `None` when the roster has no disabling dates.
pub fn used_after_disabling(
    log: &DataFrame,
    roster: &DataFrame,
    as_of: chrono::NaiveDate,
) -> PolarsResult<Option<DataFrame>> {
    if roster.column("disabled_on").is_err() || log.column("queried_at").is_err() {
        return Ok(None);
    }
    let disabled = roster
        .clone()
        .lazy()
        .filter(col("disabled_on").is_not_null())
        .select([col("account_id").cast(DataType::String), col("disabled_on")])
        .unique_stable(Some(cols(["account_id"])), UniqueKeepStrategy::First);
    let used = log
        .clone()
        .lazy()
        .select([col("account_id").cast(DataType::String), col("queried_at")])
        .join(
            disabled,
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(
            col("queried_at")
                .dt()
                .date()
                .gt(col("disabled_on"))
                .and(col("queried_at").dt().date().lt_eq(lit(as_of))),
        )
        .group_by([col("account_id")])
        .agg([
            len().cast(DataType::Int64).alias("queries"),
            col("queried_at").max().dt().date().alias("last"),
        ])
        .sort(["account_id"], SortMultipleOptions::default())
        .collect()?;
    Ok(Some(used))
}

/// Queries per agency and month of `period`: the summary's line chart.
/// One month at a time, each grouped on the agency alone: a grouping of
/// every query at once on (agency, day) held 1.5 GB more at fifty million
/// queries.
pub fn monthly_queries(log: &DataFrame, period: &crate::period::Period) -> PolarsResult<DataFrame> {
    let mut months = Vec::new();
    let mut start = period.start;
    while start < period.end {
        let first = start.date().with_day(1).unwrap_or(start.date());
        let end = first
            .checked_add_months(chrono::Months::new(1))
            .map_or(period.end, |d| {
                d.and_time(chrono::NaiveTime::MIN).min(period.end)
            });
        months.push(
            log.clone()
                .lazy()
                .filter(
                    col("queried_at")
                        .gt_eq(lit(start))
                        .and(col("queried_at").lt(lit(end))),
                )
                .group_by([col("agency_id")])
                .agg([len().alias("queries")])
                .select([
                    // The log's agency is a categorical (grouped on its
                    // codes); as text for the report.
                    col("agency_id").cast(DataType::String),
                    lit(first.format("%Y-%m").to_string()).alias("month"),
                    col("queries"),
                ]),
        );
        start = end;
    }
    if months.is_empty() {
        return Ok(DataFrame::empty_with_schema(&Schema::from_iter([
            Field::new("agency_id".into(), DataType::String),
            Field::new("month".into(), DataType::String),
            Field::new("queries".into(), IDX_DTYPE),
        ])));
    }
    concat(months, UnionArgs::default())?
        .sort(["agency_id", "month"], SortMultipleOptions::default())
        .collect()
}

/// One model per requesting agency, in config order, then the city-wide one.
pub fn models(f: &RunFacts<'_>) -> PolarsResult<Vec<ReportModel>> {
    let mut out = Vec::new();
    // The external audit is the Health Bureau's alone.
    let units = f
        .config
        .agencies
        .units()
        .filter(|_| f.kind != ReportKind::ExternalAudit);
    for unit in units {
        let mut m = unit_model(f, &unit.id)?;
        // The password check writes only to the units it has something
        // to tell.
        if let Document::PasswordCheck { stale_passwords } = &m.document
            && stale_passwords.rows.is_empty()
        {
            continue;
        }
        let review = second_review_model(f, &m)?;
        if let Some(r) = review.as_ref().and_then(ReportModel::second_review) {
            let rows = review
                .as_ref()
                .and_then(ReportModel::sample)
                .map_or(0, |s| s.worksheet.rows.len());
            m.notes.push(match f.config.second_reviewer(&unit.id) {
                Some((_, who)) => format!(
                    "貴機關專責人員本人帳號（{}）之抽樣紀錄 {rows} 筆不列入本表，另送{}覆核：專責人員不自行抽查本人帳號。",
                    r.accounts.join("、"),
                    reviewer_name(who)
                ),
                None => format!(
                    "貴機關專責人員本人帳號（{}）之抽樣紀錄 {rows} 筆不列入本表，惟無覆核人（未設定政風單位或總管理者信箱）：請衛生局指定覆核人。",
                    r.accounts.join("、")
                ),
            });
        }
        out.push(m);
        out.extend(review);
    }
    out.extend(chief_models(f)?);
    out.push(city_model(f)?);
    Ok(out)
}

/// The external audit's workbooks the chief administrator fills in and
/// returns: the yearly review of every officer account (point 4(5)) and
/// a record of each unit drawn (points 4(2), 6(4)), pre-filled.
fn chief_models(f: &RunFacts<'_>) -> PolarsResult<Vec<ReportModel>> {
    let mut out = Vec::new();
    if f.kind != ReportKind::ExternalAudit {
        return Ok(out);
    }
    if let Some(roster) = f.roster {
        out.push(officer_review(f, roster)?);
    }
    let (Some(draw), Some(evidence)) = (f.selection, f.evidence) else {
        return Ok(out);
    };
    out.extend(external_records(f, draw, evidence)?);
    Ok(out)
}

/// Point 4(5): the chief administrator's review of every officer account
/// of the city (`roster`'s).
fn officer_review(f: &RunFacts<'_>, roster: &DataFrame) -> PolarsResult<ReportModel> {
    let hb = f.config.agencies.health_bureau();
    let (days, deadline) = deadline(f.config, f.kind, f.generated_at);
    // Every officer account of the city. The chief administrator's own
    // is not theirs to review: it is the NHIA's to change (point 4,
    // last paragraph), and the summary says so.
    let officers = roster
        .clone()
        .lazy()
        .filter(col("role").eq(lit("officer")))
        .collect()?;
    // Without a [chief_administrator], the Health Bureau's officer
    // reads the review: their own account is not theirs to review.
    let (officers, own) = if f.config.chief.is_none() {
        let of_hb = col("agency_id")
            .cast(DataType::String)
            .eq(lit(hb.id.as_str()));
        let own = officers.clone().lazy().filter(of_hb.clone()).collect()?;
        (officers.lazy().filter(of_hb.not()).collect()?, own)
    } else {
        (officers, DataFrame::empty())
    };
    let own: Vec<String> = strs(&own, "account_id")
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    let chiefs = roster
        .clone()
        .lazy()
        .filter(col("role").eq(lit("chief_admin")))
        .collect()?;
    let ids: Vec<&str> = strs(&chiefs, "account_id")?.into_iter().flatten().collect();
    let all: Vec<String> = f.config.agencies.iter().map(|a| a.id.clone()).collect();
    let findings = f
        .findings
        .clone()
        .lazy()
        .filter(col("code").neq(lit(Code::AccountNotInRoster.as_str())))
        .collect()?;
    let accounts = accounts(f, &officers, &all, &findings, true)?;
    let mut m = base(
        f,
        &hb.id,
        hb.name.clone(),
        &findings,
        Document::OfficerReview { accounts },
    )?;
    m.notes.clear();
    // How many officers each agency has is the agency's finding, not
    // an account's: said here, where the decision is made.
    let officer_counts = f
        .findings
        .clone()
        .lazy()
        .filter(col("code").eq(lit(Code::AgencyOfficerCount.as_str())))
        .collect()?;
    let agencies = strs(&officer_counts, "agency_id")?;
    for (a, r) in agencies.iter().zip(strs(&officer_counts, "reason")?) {
        let (Some(a), Some(r)) = (a, r) else { continue };
        m.notes.push(format!(
            "專責人員人數不符規定（第五點第一款）：{}（{a}）{r}",
            agency_name(f.config, a)
        ));
    }
    m.actions = vec![format!(
        "請於 {deadline}（{days} 日，期滿日遇假日順延）前逐一確認「專責人員帳號」所列帳號，填寫處理結果並回傳；專責人員異動者，請更新其帳號及權限（管理要點第四點第五款）。"
    )];
    if !own.is_empty() {
        m.notes.push(format!(
            "衛生局專責人員帳號（{}）不列入本清查：未設定總管理者（[chief_administrator]），本清查寄衛生局專責人員辦理，其不自行清查本人帳號；請設定總管理者，由總管理者清查。",
            own.join("、")
        ));
    }
    if !ids.is_empty() {
        m.notes.push(format!(
            "總管理者帳號（{}）不列入本清查：總管理者不自行清查本人帳號，其業務調動或離職時，由衛生局向衛生福利部中央健康保險署申請權限異動（管理要點第四點末段）。",
            ids.join("、")
        ));
    }
    Ok(m)
}

/// Points 4(2), 6(4): the chief administrator's record of each unit the
/// external audit drew.
fn external_records(
    f: &RunFacts<'_>,
    draw: &UnitDraw,
    evidence: &BTreeMap<String, UnitEvidence>,
) -> PolarsResult<Vec<ReportModel>> {
    let mut out = Vec::new();
    let deadline = deadline(f.config, f.kind, f.generated_at).1;
    let record_due = external_record_due(f.config, f.generated_at);
    for u in draw.units.iter().filter(|u| u.selected) {
        let Some(e) = evidence.get(&u.unit_id) else {
            continue;
        };
        let name = agency_name(f.config, &u.unit_id);
        let mut m = base(
            f,
            &u.unit_id,
            name.clone(),
            &f.findings
                .clone()
                .lazy()
                .filter(col("unit_id").eq(lit(u.unit_id.as_str())))
                .collect()?,
            Document::ExternalRecord {
                record: external_record_table(e, u.critical),
            },
        )?;
        m.actions = vec![
            format!("已通知{name}於 {deadline} 前備妥業務需求人員清冊及稽核資料（管理要點第六點第四款）；請於 {record_due} 前實地稽核，逐項填寫「外部稽核紀錄」之查核結果、查核方式及佐證，於表格下方簽章後，以原檔回覆寄送本工作簿之信件（第四點第二款）。"),
            "系統無資料之項目（未檢核）請實地查核；查核結果為「不符合」之項目，回傳後系統即通知該機關專責人員及政風單位改善並回報，列管至改善完成。".to_owned(),
        ];
        m.notes.clear();
        out.push(m);
    }
    Ok(out)
}

/// When the chief administrator's record of a drawn unit is due: after the
/// unit's preparation is (`followup.external_prep_days`), as long again as
/// an internal audit takes (`followup.internal_audit_days`).
pub fn external_record_due(config: &Config, generated_at: NaiveDateTime) -> chrono::NaiveDate {
    let (_, prepared) = deadline(config, ReportKind::ExternalAudit, generated_at);
    due_after(
        config,
        prepared.and_time(chrono::NaiveTime::MIN),
        i64::from(config.followup.internal_audit_days),
    )
}

/// The record of an external audit of one unit: the duties of its own
/// internal audit, as the system found them, and each thing the unit was
/// asked this year with whether it answered in time.
pub fn external_record_table(e: &UnitEvidence, critical: u32) -> SheetTable {
    let mut t = evidence_table(e);
    // The record has no sheet of the unit's findings: they are in the
    // unit's own workbooks.
    for r in &mut t.rows {
        if let Some(Cell::Text(s)) = r.get_mut(2) {
            *s = s.replace(
                "（明細見「異常查詢」；先前工作底稿已詢問者見「已列管異常查詢」）",
                "（明細見全市彙整「帳號彙整」及各次抽查之全市彙整）",
            );
        }
    }
    t.rows.insert(
        0,
        vec![
            "嚴重發現（抽選時，帳號及查詢）".into(),
            "第四點第二款".into(),
            Cell::Text(if critical == 0 {
                "無".to_owned()
            } else {
                format!("{critical} 件（本單位因此優先抽選；明細見全市彙整「帳號彙整」及各次抽查之全市彙整）")
            }),
        ],
    );
    for d in &e.due {
        let point = if d.label.contains("抽查") {
            "第六點第一款"
        } else if d.label.contains("帳號清查") {
            "第六點第二款"
        } else if d.label.contains("內部稽核") || d.label.contains("調查紀錄") {
            "第六點第三款"
        } else if d.label.contains("外部稽核") {
            "第六點第四款"
        } else {
            "第六點"
        };
        let said = match (&d.returned_on, d.days_late) {
            (Some(on), late) if late > 0 => {
                format!("{on} 回傳（期限 {}，逾期 {late} 日）", d.due_on)
            }
            (Some(on), _) => format!("{on} 回傳（期限 {}，如期）", d.due_on),
            (None, late) if late > 0 => format!("未回傳（期限 {}，已逾 {late} 日）", d.due_on),
            (None, _) => format!("未回傳（期限 {}，尚未到期）", d.due_on),
        };
        let said = match d.answered {
            Some((a, n)) if a < n && d.returned_on.is_none() => {
                format!("{said}；已回傳部分 {a} / {n} 列")
            }
            _ => said,
        };
        t.rows.push(vec![
            Cell::Text(format!("回傳：{}（執行編號 {}）", d.label, d.run_id)),
            point.into(),
            Cell::Text(said),
        ]);
    }
    t
}

/// Agency ids of `unit`'s subtree, the unit first.
fn subtree(config: &Config, unit: &str) -> Vec<String> {
    let mut ids: Vec<String> = vec![unit.to_owned()];
    ids.extend(
        config
            .agencies
            .iter()
            .filter(|a| a.unit == unit && a.id != unit)
            .map(|a| a.id.clone()),
    );
    ids
}

/// An agency's name within `unit`'s workbook: 高雄市政府警察局三民第一分局
/// in 高雄市政府警察局's is 三民第一分局; the unit itself keeps its name.
fn name_within(config: &Config, unit: &str, agency: &str) -> String {
    let name = agency_name(config, agency);
    name.strip_prefix(agency_name(config, unit).as_str())
        .filter(|n| !n.is_empty())
        .map_or_else(|| name.clone(), str::to_owned)
}

/// Whether a finding's [`finding_key`] is one of `keys`.
pub fn key_in(keys: impl IntoIterator<Item = String>) -> Expr {
    let keys = Series::new("keys".into(), keys.into_iter().collect::<Vec<String>>());
    finding_key().is_in(lit(keys).implode(false), false)
}

fn agency_name(config: &Config, id: &str) -> String {
    config
        .agencies
        .get(id)
        .map_or_else(|| id.to_owned(), |a| a.name.clone())
}

fn in_set(df: &DataFrame, column: &str, ids: &[String]) -> PolarsResult<DataFrame> {
    let set = Series::new("ids".into(), ids);
    df.clone().lazy().filter(one_of(col(column), set)).collect()
}

/// The columns of 資料品質's input files.
const FILE_COLUMNS: [&str; 12] = [
    "檔案",
    "表別",
    "編碼",
    "狀態",
    "載入列數",
    "剔除列數",
    "略過列數",
    "與他檔重複列數",
    "他檔已計入列數",
    "清冊日期",
    "缺少之選用欄位",
    "SHA-256",
];

fn base(
    f: &RunFacts<'_>,
    unit_id: &str,
    unit_name: String,
    findings: &DataFrame,
    document: Document,
) -> PolarsResult<ReportModel> {
    let city_wide = matches!(document, Document::CityWide(_));
    let (by_severity, by_code) = finding_counts(findings, city_wide)?;
    let files_shown = files_shown(f, unit_id, city_wide);
    let not_checked = not_checked_shown(f, &files_shown);
    Ok(ReportModel {
        document,
        return_token: None,
        kind: f.kind,
        unit_id: unit_id.to_owned(),
        unit_name,
        period_id: f.period_id.clone(),
        period_label: period_label(&f.period_id),
        run_id: f.run_id.clone(),
        generated_at: f.generated_at,
        actions: actions(f),
        by_severity,
        by_code,
        severity_by_agency: SheetTable::default(),
        queries_by_month: SheetTable::default(),
        serious: false,
        files: files_table(f, &files_shown),
        orphans: None,
        chain_head: f.chain_head.clone(),
        notes: f
            .notes
            .iter()
            .cloned()
            .chain(f.selection.map(selection_note))
            .chain(local_policy_note(f))
            .collect(),
        warnings: warnings(&not_checked),
        not_checked: not_checked_table(&not_checked),
        quality: quality_line(f),
    })
}

/// The findings counted by severity (`嚴重度, 件數`) and by code (`說明,
/// 嚴重度, 件數`, the code first on the city-wide copy).
fn finding_counts(findings: &DataFrame, city_wide: bool) -> PolarsResult<(SheetTable, SheetTable)> {
    let sev = strs(findings, "severity")?;
    let codes = strs(findings, "code")?;
    let mut by_sev: BTreeMap<Severity, i64> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
    let mut by_code: BTreeMap<&str, i64> = BTreeMap::new();
    for (s, c) in sev.iter().zip(&codes) {
        if let Some(s) = s.and_then(severity_of) {
            *by_sev.entry(s).or_default() += 1;
        }
        if let Some(c) = c {
            *by_code.entry(c).or_default() += 1;
        }
    }
    let by_severity = SheetTable {
        headers: headers(&["嚴重度", "件數"]),
        rows: by_sev
            .iter()
            .map(|(s, n)| vec![Cell::from(severity_label(*s)), Cell::Int(*n)])
            .collect(),
    };
    let mut code_rows: Vec<(Severity, &str, i64)> = by_code
        .iter()
        .filter_map(|(c, n)| Code::parse(c).map(|code| (code.severity(), *c, *n)))
        .collect();
    code_rows.sort();
    // A unit's officer reads what each finding is; the codes are for the
    // Health Bureau's copy and the archive.
    let with_code = city_wide;
    let mut code_headers = vec!["說明", "嚴重度", "件數"];
    if with_code {
        code_headers.insert(0, "代碼");
    }
    let by_code = SheetTable {
        headers: headers(&code_headers),
        rows: code_rows
            .into_iter()
            .map(|(s, c, n)| {
                let mut r = vec![
                    Cell::from(Code::parse(c).map_or("", |c| c.description())),
                    Cell::from(severity_label(s)),
                    Cell::Int(n),
                ];
                if with_code {
                    r.insert(0, Cell::from(c));
                }
                r
            })
            .collect(),
    };
    Ok((by_severity, by_code))
}

/// What the recipient of a kind's workbook must do, and by when.
fn actions(f: &RunFacts<'_>) -> Vec<String> {
    let (days, deadline) = deadline(f.config, f.kind, f.generated_at);
    match f.kind {
        ReportKind::SampleAudit => vec![
            format!("請於 {deadline}（{days} 日，期滿日遇假日順延）前逐筆完成「抽查工作底稿」黃色欄位，於表末簽章欄簽署後將檔案回傳衛生局。"),
            "「異常」為「有」或「主管事前核可」為「否」者，請敘明原因，並依規定通知政風單位。".to_owned(),
            "「異常查詢」工作表所列事項請查明並回報處理情形。".to_owned(),
        ],
        ReportKind::AccountReview => vec![
            format!("請於 {deadline}（{days} 日，期滿日遇假日順延）前逐一確認「帳號清查」所列帳號，並填寫處理結果。"),
            "建議「廢止」者（重複、閒置、職務調整、離職、退休或不符資格者之帳號），請由貴機關專責人員廢止其使用權限，並於處理結果填寫「已廢止」（管理要點第五點第一款第三目、第六點第二款）。".to_owned(),
            "密碼逾三個月未變更者，請通知持有人立即變更（管理要點第五點第三款）；專責人員及總管理者帳號由衛生局清查（第四點第五款）。".to_owned(),
        ],
        ReportKind::QueryCheck => vec![
            format!("請於 {deadline}（{days} 日，期滿日遇假日順延）前查明「異常查詢」所列事項並回報。"),
        ],
        ReportKind::PasswordCheck => vec![
            "「密碼逾期帳號」所列帳號之密碼逾三個月未變更，請通知各該持有人立即變更密碼（管理要點第五點第三款）。".to_owned(),
            "本通知無須填寫或回傳；下一季檢核時仍逾期者，將再列出並提高嚴重度。".to_owned(),
        ],
        ReportKind::InternalAudit => vec![
            format!("請於 {deadline}（{days} 日，期滿日遇假日順延）前逐項確認「內部稽核」工作表之系統查得資料，填寫查核結果並回傳衛生局；系統無資料之項目（未檢核）請實地查核，並填寫查核方式及佐證。"),
            "查核結果為「不符合」之項目，回傳後系統即寄送調查紀錄，請會同政風單位調查並於期限內回傳；異常查詢之處理情形請填於「異常查詢」工作表。".to_owned(),
        ],
        ReportKind::ExternalAudit => vec![
            "「外部稽核抽選」抽中之單位已由系統通知備妥業務需求人員清冊及稽核資料（管理要點第六點第四款）；各單位之「外部稽核紀錄」工作簿另行寄送，請實地稽核後填寫回傳。".to_owned(),
            format!("「專責人員帳號清查」工作簿另行寄送，請於 {deadline} 前逐一確認並回傳（管理要點第四點第五款）。"),
        ],
    }
}

/// The input files a workbook lists. A unit sees only its own (a file's
/// name can say whose case it is): those holding its agencies' rows.
/// Others are counted.
fn files_shown<'f>(f: &RunFacts<'f>, unit_id: &str, city_wide: bool) -> Vec<&'f FileRecord> {
    if city_wide {
        f.files.iter().collect()
    } else {
        let own = subtree(f.config, crate::report::unit_of_key(unit_id).0);
        f.files
            .iter()
            .filter(|r| r.agencies.iter().any(|a| own.contains(a)))
            .collect()
    }
}

/// What was not checked, as a unit may read it: a file it is not shown
/// is not named there either.
fn not_checked_shown(f: &RunFacts<'_>, files_shown: &[&FileRecord]) -> Vec<NotChecked> {
    f.not_checked
        .iter()
        .map(|n| {
            let hidden = f
                .files
                .iter()
                .any(|r| r.path == n.input && !files_shown.iter().any(|s| s.path == r.path));
            if hidden {
                let mut n = n.clone();
                n.detail = n.detail.replace(&n.input, UNLISTED_FILE);
                n.detail_zh = n.detail_zh.replace(&n.input, UNLISTED_FILE);
                n.input = UNLISTED_FILE.to_owned();
                n
            } else {
                n.clone()
            }
        })
        .collect()
}

/// 資料品質's input files: those shown, and a line counting the others.
fn files_table(f: &RunFacts<'_>, files_shown: &[&FileRecord]) -> SheetTable {
    SheetTable {
        headers: headers(&FILE_COLUMNS),
        rows: files_shown
            .iter()
            .map(|r| {
                let used = f.roster_use.is_some_and(|u| u.files.contains(&r.path));
                vec![
                    Cell::Text(r.path.clone()),
                    Cell::from(r.table.map_or("（未知）", |t| t.as_str())),
                    Cell::Text(match &r.sheet {
                        Some(s) => format!("{} [{s}]", r.encoding),
                        None => r.encoding.clone(),
                    }),
                    Cell::Text(match &r.status {
                        FileStatus::Loaded => "已載入".into(),
                        FileStatus::Duplicate { of } => format!("與 {of} 相同，未重複載入"),
                        FileStatus::Failed { error } => format!("讀取失敗：{error}"),
                    }),
                    Cell::Int(r.rows_loaded as i64),
                    Cell::Int(r.rows_rejected as i64),
                    Cell::Int(r.rows_skipped as i64),
                    Cell::Int(r.rows_shared as i64),
                    Cell::Int(r.rows_counted_elsewhere as i64),
                    r.date_note_zh().map_or(Cell::Empty, |d| {
                        Cell::Text(format!("{d}{}", if used { "，本次採用" } else { "" }))
                    }),
                    Cell::Text(r.absent_columns.join(", ")),
                    Cell::Text(r.sha256.clone()),
                ]
            })
            .chain((files_shown.len() < f.files.len()).then(|| {
                let mut row = vec![Cell::Text(format!(
                    "（另 {} 個檔案未列出：不含本機關之資料，或未能讀取；衛生局彙整表列出全部）",
                    f.files.len() - files_shown.len()
                ))];
                row.resize(FILE_COLUMNS.len(), Cell::Empty);
                row
            }))
            .collect(),
    }
}

/// The summary's line on the inputs: files used and failed, rows
/// rejected, skipped and counted once, the roster used.
fn quality_line(f: &RunFacts<'_>) -> String {
    let failed = f
        .files
        .iter()
        .filter(|r| matches!(r.status, FileStatus::Failed { .. }))
        .count();
    let rejected: usize = f.files.iter().map(|r| r.rows_rejected).sum();
    let skipped: usize = f.files.iter().map(|r| r.rows_skipped).sum();
    let elsewhere: usize = f.files.iter().map(|r| r.rows_counted_elsewhere).sum();
    let roster = f.roster_use.map_or(String::new(), |u| {
        format!(
            "；帳號清冊採用 {} 之版本（{}），較舊清冊有而本版無之帳號 {} 個",
            u.date,
            u.files.join("、"),
            u.removed_accounts
        )
    });
    format!(
        "使用 {} 個檔案（讀取失敗 {failed} 個）；剔除 {rejected} 列（明細由衛生局彙整），略過空白及合計列 {skipped} 列；查詢紀錄與他檔重複而只計一次者 {elsewhere} 列{roster}；明細見「資料品質」工作表",
        f.files.len()
    )
}

/// How a unit's workbook names an input file it is not shown (one that
/// holds none of its agencies' rows: its name may say whose case it is).
const UNLISTED_FILE: &str = "未列出之輸入檔案（檔名僅列於衛生局彙整表）";

/// The lines in red at the top of the summary: checks withheld because
/// their inputs failed or fell short. An officer must not read a missing
/// finding as a clean result.
fn warnings(not_checked: &[NotChecked]) -> Vec<String> {
    let withheld: Vec<&NotChecked> = not_checked.iter().filter(|n| n.why.withholds()).collect();
    let absent = not_checked.len() - withheld.len();
    let mut out = Vec::new();
    if !withheld.is_empty() {
        let mut what: Vec<&str> = withheld.iter().flat_map(|n| n.descriptions()).collect();
        what.sort_unstable();
        what.dedup();
        // For the reader, not the operator: what was not checked, that
        // its absence is no clean result, and that it will be done.
        out.push(format!(
            "注意：下列項目因輸入資料讀取失敗或未涵蓋檢核期間而未檢核，其結果不得視為無異常；資料補正後將另行辦理：{}。",
            what.join("、")
        ));
        out.extend(withheld.iter().map(|n| n.sentence()));
    }
    if absent > 0 {
        out.push(format!(
            "另有 {absent} 項檢核因輸入檔案缺少所需欄位或未提供選用之清冊而未檢核，明細見「資料品質」工作表。"
        ));
    }
    out
}

/// The not-checked block of the data-quality sheet.
fn not_checked_table(items: &[NotChecked]) -> SheetTable {
    SheetTable {
        headers: headers(&["未檢核項目", "原因", "輸入", "欄位", "說明"]),
        rows: items
            .iter()
            .map(|n| {
                vec![
                    Cell::Text(n.descriptions().join("、")),
                    Cell::from(n.why.label()),
                    Cell::Text(n.input.clone()),
                    Cell::Text(n.column.unwrap_or("").to_owned()),
                    // Read by officers: the Chinese wording (the English
                    // is the terminal's and run.json's).
                    Cell::Text(n.detail_zh.clone()),
                ]
            })
            .collect(),
    }
}

fn orphan_table(f: &RunFacts<'_>, o: &DataFrame) -> PolarsResult<SheetTable> {
    let agency = strs(o, "agency_id")?;
    let account = strs(o, "account_id")?;
    let n: Vec<Option<i64>> = o
        .column("queries")?
        .cast(&DataType::Int64)?
        .i64()?
        .iter()
        .collect();
    let first = times(o, "first")?;
    let last = times(o, "last")?;
    Ok(SheetTable {
        headers: headers(&["機關", "帳號", "查詢筆數", "首筆查詢", "末筆查詢"]),
        rows: (0..o.height())
            .map(|i| {
                vec![
                    agency[i].map_or(Cell::Empty, |a| Cell::Text(agency_name(f.config, a))),
                    text(account[i]),
                    n[i].map_or(Cell::Empty, Cell::Int),
                    Cell::from(first[i]),
                    Cell::from(last[i]),
                ]
            })
            .collect(),
    })
}

fn is_query_code(c: &str) -> bool {
    Code::parse(c).is_some_and(|c| c.scope() == Scope::Queries)
}

/// Whether `findings` hold a critical or high query anomaly.
fn serious(findings: &DataFrame) -> PolarsResult<bool> {
    Ok(strs(findings, "code")?
        .iter()
        .flatten()
        .filter_map(|c| Code::parse(c))
        .any(Code::is_serious_query))
}

/// What a finding asks of the unit: one decision about an account for a
/// pattern of its queries (who made them), one per query where each
/// query is its own question (was it explained, allowed, whose).
/// Exhaustive: a new code must say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// One row per (code, account) on 異常查詢, its queries on
    /// 異常查詢明細.
    PerAccount,
    /// One row per query on 異常查詢.
    PerQuery,
}

/// See [`Ask`].
pub fn ask(code: Code) -> Ask {
    match code {
        Code::AccountHolderDeparted
        | Code::AccountHolderTransferred
        | Code::AccountHolderSuspended
        | Code::AccountIneligibleEmployment
        | Code::AccountHolderUnknown
        | Code::AccountIdle
        | Code::AccountNeverUsed
        | Code::AccountDuplicate
        | Code::AccountPasswordStale
        | Code::AccountNotInRoster
        | Code::AccountRemovedFromRoster
        | Code::AccountNoApplication
        | Code::AccountCreatedBeforeApproval
        | Code::AccountApplicationOtherHolder
        | Code::AccountChangeNotApplied
        | Code::AgencyOfficerCount
        | Code::AccountRepeatPattern
        | Code::QueryAfterDeparture
        | Code::QueryByIneligibleHolder
        | Code::QueryByDisabledAccount
        | Code::QueryByUnrosteredAccount
        | Code::QueryOffHours
        | Code::QueryVolumeSpike
        | Code::QueryFailedBurst => Ask::PerAccount,
        Code::QueryNoRequestForm
        | Code::QueryFormNotApproved
        | Code::QueryApprovedAfterQuery
        | Code::QueryFormExpired
        | Code::QueryPurposeNotAllowed
        | Code::QuerySelfLookup
        | Code::QueryCoworkerLookup
        | Code::QuerySubjectManyAccounts
        | Code::QueryPurposeMismatch
        | Code::QuerySelfApproved => Ask::PerQuery,
    }
}

/// The query findings as decisions (異常查詢) and, for the patterns
/// rolled up by account, the queries behind each (異常查詢明細; `None`
/// when nothing was rolled up). With `provenance`, each finding's code,
/// source file and row (the city-wide workbook: a unit's officer finds a
/// query by account and time and reads what it is in Chinese, and its
/// sheet has to leave room for the follow-up columns and print one page
/// wide). With `within` (a unit's workbook), agencies by their name within
/// the unit (三民第一分局, as its worksheet names them), not by code.
fn query_findings(
    findings: &DataFrame,
    provenance: bool,
    within: Option<(&Config, &str)>,
) -> PolarsResult<Queries> {
    let q = QueryColumns::of(findings, provenance, within)?;
    let (groups, order) = group_per_account(&q);
    let mut rows = Vec::new();
    let mut details = Vec::new();
    // Rows listed, and not, per code of findings asked one by one.
    let mut listed: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in order {
        match o {
            Ok(i) => {
                let c = q.codes[i].unwrap_or("");
                let (shown, rest) = listed.entry(c).or_default();
                if !Code::parse(c).is_none_or(|code| listed_on_sheet(code, *shown)) {
                    *rest += 1;
                    continue;
                }
                *shown += 1;
                rows.push(q.one(i, c));
            }
            Err(key) => {
                let members = &groups[&key];
                if members.len() == 1 {
                    rows.push(q.one(members[0], key.0));
                    continue;
                }
                rows.push(q.rolled_up(key.0, members));
                // The queries behind it, a line each, up to what a person
                // reads: the decision's row carries what they have in
                // common, and says where the rest are.
                details.extend(
                    members
                        .iter()
                        .take(DETAILS_SHOWN)
                        .map(|i| q.detail(*i, key.0)),
                );
                if members.len() > DETAILS_SHOWN {
                    details.push(q.rest_not_listed(members.len()));
                }
            }
        }
    }
    let (h, dh) = query_headers(provenance);
    let details = (!details.is_empty()).then(|| SheetTable {
        headers: headers(&dh),
        rows: details,
    });
    let not_listed = listed
        .into_iter()
        .filter(|(_, (_, rest))| *rest > 0)
        .map(|(c, (shown, rest))| {
            format!(
                "「{}」共 {} 筆，本表列前 {shown} 筆，其餘 {rest} 筆未列出；全部見本次執行之 findings.csv，可向衛生局索取",
                Code::parse(c).map_or(c, |c| c.description()),
                shown + rest
            )
        })
        .collect();
    Ok(Queries {
        findings: SheetTable {
            headers: headers(&h),
            rows,
        },
        details,
        not_listed,
    })
}

/// The findings of one code asked one by one (not rolled up by account)
/// that 異常查詢 lists: a person decides on a few thousand at most, and
/// the run's `findings.csv` holds them all (the subjects queried by five
/// accounts or more in a half-year of fifty million queries: 1.4 million,
/// a minute and a half to write).
pub const ROWS_SHOWN_PER_CODE: usize = 5_000;

/// Whether a workbook's 異常查詢 lists the finding of `code` that comes
/// after `nth` others of its code (in the findings' order, within the
/// workbook's unit): a per-account pattern always (rolled up), a finding
/// asked one by one among the first [`ROWS_SHOWN_PER_CODE`]. The internal
/// audit counts as asked before only what a sheet listed.
pub fn listed_on_sheet(code: Code, nth: usize) -> bool {
    ask(code) == Ask::PerAccount || nth < ROWS_SHOWN_PER_CODE
}

/// The queries of one item (a per-account pattern) 異常查詢明細 lists: a
/// person reads a few, looks for what stands out in a thousand, and needs
/// the archive's `findings.csv` for more (one account's off-hours queries
/// over a half-year of ten million: 3,000; a city's: a million lines, and
/// half a minute to write).
pub const DETAILS_SHOWN: usize = 1_000;

/// The headers of 異常查詢 and of 異常查詢明細; with `provenance`, the
/// code and the source file and row too.
fn query_headers(provenance: bool) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut h = vec!["嚴重度"];
    if provenance {
        h.push("代碼");
    }
    h.extend(["說明", "機關", "帳號", "使用者", "被查詢人", "時間", "理由"]);
    if provenance {
        h.extend(["來源檔案", "來源列"]);
    }
    let mut dh = vec!["異常類型", "帳號", "被查詢人", "時間"];
    if provenance {
        dh.extend(["來源檔案", "來源列"]);
    }
    (h, dh)
}

/// A per-account pattern: its code and account.
type PatternKey<'a> = (&'a str, &'a str);

/// Each per-account pattern's findings.
type PatternGroups<'a> = BTreeMap<PatternKey<'a>, Vec<usize>>;

/// A finding shown alone (`Ok`), or a pattern rolled up (`Err`).
type RowOrGroup<'a> = Result<usize, PatternKey<'a>>;

/// The query findings' rows in order: a finding alone (`Ok`), or the
/// first of a per-account pattern's group (`Err(key)`), whose members the
/// map holds, in the order their first finding comes.
fn group_per_account<'a>(q: &QueryColumns<'a>) -> (PatternGroups<'a>, Vec<RowOrGroup<'a>>) {
    let mut groups = PatternGroups::new();
    let mut order: Vec<RowOrGroup<'_>> = Vec::new();
    for i in 0..q.codes.len() {
        let Some(c) = q.codes[i].filter(|c| is_query_code(c)) else {
            continue;
        };
        let per_account = Code::parse(c).is_some_and(|c| ask(c) == Ask::PerAccount);
        match (per_account, q.account[i]) {
            (true, Some(a)) => {
                let g = groups.entry((c, a)).or_default();
                if g.is_empty() {
                    order.push(Err((c, a)));
                }
                g.push(i);
            }
            _ => order.push(Ok(i)),
        }
    }
    (groups, order)
}

/// The columns of the findings a query findings sheet shows.
struct QueryColumns<'a> {
    provenance: bool,
    within: Option<(&'a Config, &'a str)>,
    codes: Vec<Option<&'a str>>,
    sev: Vec<Option<&'a str>>,
    agency: Vec<Option<&'a str>>,
    account: Vec<Option<&'a str>>,
    holder: Vec<Option<&'a str>>,
    subject: Vec<Option<&'a str>>,
    at: Vec<Option<NaiveDateTime>>,
    reason: Vec<Option<&'a str>>,
    file: Vec<Option<&'a str>>,
    row: Vec<Option<i64>>,
}

impl<'a> QueryColumns<'a> {
    fn of(
        findings: &'a DataFrame,
        provenance: bool,
        within: Option<(&'a Config, &'a str)>,
    ) -> PolarsResult<QueryColumns<'a>> {
        let row = findings.column("source_row")?.cast(&DataType::Int64)?;
        Ok(QueryColumns {
            provenance,
            within,
            codes: strs(findings, "code")?,
            sev: strs(findings, "severity")?,
            agency: strs(findings, "agency_id")?,
            account: strs(findings, "account_id")?,
            holder: strs(findings, "holder_name")?,
            subject: strs(findings, "subject")?,
            at: times(findings, "occurred_at")?,
            reason: strs(findings, "reason")?,
            file: strs(findings, "source_file")?,
            row: row.i64()?.iter().collect(),
        })
    }

    /// The row of finding `i`, of code `c`.
    fn one(&self, i: usize, c: &str) -> Vec<Cell> {
        let mut r = vec![Cell::from(
            self.sev[i].and_then(severity_of).map_or("", severity_label),
        )];
        if self.provenance {
            r.push(Cell::from(c));
        }
        r.extend([
            Cell::from(Code::parse(c).map_or("", |c| c.description())),
            match (self.within, self.agency[i]) {
                (Some((config, unit)), Some(a)) => Cell::Text(name_within(config, unit, a)),
                _ => text(self.agency[i]),
            },
            text(self.account[i]),
            text(self.holder[i]),
            text(self.subject[i]),
            Cell::from(self.at[i]),
            text(self.reason[i]),
        ]);
        self.push_source(&mut r, i);
        r
    }

    /// With provenance, the source file and row of finding `i`.
    fn push_source(&self, r: &mut Vec<Cell>, i: usize) {
        if self.provenance {
            r.push(text(self.file[i]));
            r.push(self.row[i].map_or(Cell::Empty, Cell::Int));
        }
    }

    /// One row for a per-account pattern's `members` (of code `c`): the
    /// first's, with how many people, when, and how many queries.
    fn rolled_up(&self, c: &str, members: &[usize]) -> Vec<Cell> {
        let minute = |t: NaiveDateTime| t.format("%Y/%m/%d %H:%M").to_string();
        let first = members[0];
        let mut r = self.one(first, c);
        let subjects: BTreeSet<&str> = members.iter().filter_map(|i| self.subject[*i]).collect();
        let times: Vec<NaiveDateTime> = members.iter().filter_map(|i| self.at[*i]).collect();
        let span = match (times.iter().min(), times.iter().max()) {
            (Some(a), Some(b)) if a != b => format!("{} 至 {}", minute(*a), minute(*b)),
            (Some(a), _) => minute(*a),
            _ => String::new(),
        };
        let base = usize::from(self.provenance);
        r[base + 5] = Cell::Text(format!("{} 人", subjects.len()));
        r[base + 6] = Cell::Text(span);
        let shown = if members.len() > DETAILS_SHOWN {
            format!(
                "列前 {DETAILS_SHOWN} 筆、列印前 {} 筆；全部 {} 筆見本次執行之 findings.csv，可向衛生局索取",
                super::sheets::DETAILS_PRINTED,
                members.len()
            )
        } else if members.len() > super::sheets::DETAILS_PRINTED {
            format!("列印前 {} 筆", super::sheets::DETAILS_PRINTED)
        } else {
            String::new()
        };
        r[base + 7] = Cell::Text(format!(
            "共 {} 筆查詢（逐筆見「異常查詢明細」{}{}）；首筆：{}",
            members.len(),
            if shown.is_empty() { "" } else { "，" },
            shown,
            self.reason[first].unwrap_or("")
        ));
        r
    }

    /// The 異常查詢明細 line after an item's first [`DETAILS_SHOWN`]
    /// queries, of `n`: where the rest are.
    fn rest_not_listed(&self, n: usize) -> Vec<Cell> {
        let mut d = vec![Cell::Text(format!(
            "（本項其餘 {} 筆未列出；全部 {n} 筆見本次執行之 findings.csv，可向衛生局索取）",
            n - DETAILS_SHOWN
        ))];
        d.resize(if self.provenance { 6 } else { 4 }, Cell::Empty);
        d
    }

    /// The 異常查詢明細 line of query `i` of a pattern of code `c`.
    fn detail(&self, i: usize, c: &str) -> Vec<Cell> {
        let mut d = vec![
            Cell::from(Code::parse(c).map_or("", |c| c.description())),
            text(self.account[i]),
            text(self.subject[i]),
            Cell::from(self.at[i]),
        ];
        self.push_source(&mut d, i);
        d
    }
}

fn severity_by_agency(
    f: &RunFacts<'_>,
    ids: &[String],
    findings: &DataFrame,
) -> PolarsResult<SheetTable> {
    let agency = strs(findings, "agency_id")?;
    let sev = strs(findings, "severity")?;
    let mut counts: BTreeMap<(&str, Severity), i64> = BTreeMap::new();
    for (a, s) in agency.iter().zip(&sev) {
        if let (Some(a), Some(s)) = (a, s.and_then(severity_of)) {
            *counts.entry((a, s)).or_default() += 1;
        }
    }
    let mut h = vec!["機關".to_owned()];
    h.extend(Severity::ALL.iter().map(|s| severity_label(*s).to_owned()));
    Ok(SheetTable {
        headers: h,
        rows: ids
            .iter()
            .map(|id| {
                let mut r = vec![Cell::Text(agency_name(f.config, id))];
                r.extend(
                    Severity::ALL
                        .iter()
                        .map(|s| Cell::Int(counts.get(&(id.as_str(), *s)).copied().unwrap_or(0))),
                );
                r
            })
            .collect(),
    })
}

fn queries_by_month(f: &RunFacts<'_>, ids: &[String]) -> PolarsResult<SheetTable> {
    let Some(q) = f.queries_by_month else {
        return Ok(SheetTable::default());
    };
    let q = in_set(q, "agency_id", ids)?;
    let agency = strs(&q, "agency_id")?;
    let month = strs(&q, "month")?;
    let n: Vec<Option<u32>> = q
        .column("queries")?
        .cast(&DataType::UInt32)?
        .u32()?
        .iter()
        .collect();
    let mut grid: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    let mut present: BTreeSet<&str> = BTreeSet::new();
    for i in 0..q.height() {
        if let (Some(a), Some(m), Some(n)) = (agency[i], month[i], n[i]) {
            *grid.entry(m).or_default().entry(a).or_default() += i64::from(n);
            present.insert(a);
        }
    }
    let cols: Vec<&String> = ids
        .iter()
        .filter(|id| present.contains(id.as_str()))
        .collect();
    let mut h = vec!["月份".to_owned()];
    h.extend(cols.iter().map(|id| agency_name(f.config, id)));
    Ok(SheetTable {
        headers: h,
        rows: grid
            .iter()
            .map(|(m, by)| {
                let mut r = vec![Cell::from(*m)];
                r.extend(
                    cols.iter()
                        .map(|id| Cell::Int(by.get(id.as_str()).copied().unwrap_or(0))),
                );
                r
            })
            .collect(),
    })
}

/// What the unit's officer does about an account (points 5(1)3 and 6(2):
/// the officer revokes, 廢止, the accounts of duplicate, idle, reassigned,
/// departed and retired users, and of those not entitled; point 4(5): the
/// Health Bureau reviews the officers' and the chief administrator's own
/// accounts).
fn recommend(
    codes: &[Code],
    role: Option<&str>,
    status: Option<&str>,
    city_wide: bool,
) -> &'static str {
    let revoke = codes.iter().any(|c| {
        matches!(
            c,
            Code::AccountHolderDeparted
                | Code::AccountHolderTransferred
                | Code::AccountHolderSuspended
                | Code::AccountIneligibleEmployment
                | Code::AccountIdle
                | Code::AccountNeverUsed
                | Code::AccountDuplicate
                | Code::AccountRemovedFromRoster
        )
    });
    if codes.contains(&Code::QueryByDisabledAccount) {
        return "查明停用後之查詢，會同政風單位調查（第六點第三款）";
    }
    let manager = matches!(role, Some("officer" | "chief_admin"));
    if manager && !city_wide {
        return "由衛生局清查（第四點第五款）";
    }
    if codes.contains(&Code::AccountNotInRoster) {
        return "查明帳號來源後廢止";
    }
    if codes.contains(&Code::AccountHolderUnknown) {
        return "查明持有人；已無使用需求者廢止";
    }
    if revoke {
        return "廢止";
    }
    if status != Some("disabled") {
        if codes.contains(&Code::AccountApplicationOtherHolder) {
            return "現持有人重新申請（第二點），否則廢止";
        }
        if codes.contains(&Code::AccountNoApplication) {
            return "補具核定之申請表（第二點），無從補具者廢止";
        }
        if codes.contains(&Code::AccountCreatedBeforeApproval) {
            return "查明核定前開通原因，申請表存卷";
        }
    }
    if status == Some("disabled") {
        return if manager {
            "已停用；請指定新任專責人員（第二點）"
        } else {
            "已停用，無須處理"
        };
    }
    if codes.contains(&Code::AccountPasswordStale) {
        return "通知持有人變更密碼";
    }
    "保留"
}

/// The account review's table: every roster account of `ids` (and those
/// the log shows but the roster lacks) with its findings and what to do.
/// `city_wide`: the Health Bureau's review of officer accounts (4(5)).
fn accounts(
    f: &RunFacts<'_>,
    roster: &DataFrame,
    ids: &[String],
    findings: &DataFrame,
    city_wide: bool,
) -> PolarsResult<SheetTable> {
    let mut by_account = findings_by_account(findings)?;
    add_use_after_disabling(f, &mut by_account)?;
    let rows = AccountRows {
        f,
        by_account: &by_account,
        city_wide,
    };
    let roster = in_set(roster, "agency_id", ids)?;
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut table = rows.on_roster(&roster, &mut seen)?;
    table.extend(rows.not_on_roster(findings, ids, &mut seen)?);
    Ok(SheetTable {
        headers: headers(&[
            "帳號",
            "所屬機關",
            "使用者",
            "角色",
            "帳號狀態",
            "發現",
            "建議處理",
        ]),
        rows: table,
    })
}

/// Per account: the codes of its account findings and what they say.
type AccountFindings<'a> = BTreeMap<&'a str, (Vec<Code>, Vec<String>)>;

/// The account findings (not the query findings) of each account; one
/// an earlier review listed too says so.
fn findings_by_account(findings: &DataFrame) -> PolarsResult<AccountFindings<'_>> {
    let mut by_account = AccountFindings::new();
    let codes = strs(findings, "code")?;
    let account = strs(findings, "account_id")?;
    let reasons = strs(findings, "reason")?;
    for i in 0..findings.height() {
        let (Some(c), Some(a)) = (codes[i].and_then(Code::parse), account[i]) else {
            continue;
        };
        if is_query_code(c.as_str()) {
            continue;
        }
        let said = if reasons[i].is_some_and(|r| r.contains(crate::model::REPEAT_MARK)) {
            format!("{}（{}）", c.description(), crate::model::REPEAT_MARK)
        } else {
            c.description().to_owned()
        };
        let e = by_account.entry(a).or_default();
        e.0.push(c);
        if !e.1.contains(&said) {
            e.1.push(said);
        }
    }
    Ok(by_account)
}

/// Adds to `by_account` the disabled accounts the log shows in use after
/// their disabling: not ones that need nothing, the same queries are a
/// critical anomaly.
fn add_use_after_disabling<'a>(
    f: &RunFacts<'a>,
    by_account: &mut AccountFindings<'a>,
) -> PolarsResult<()> {
    let after = f.after_disabling.map(|u| {
        (
            strs(u, "account_id"),
            u.column("queries").and_then(|c| c.i64().cloned()),
            u.column("last").and_then(|c| c.cast(&DataType::String)),
        )
    });
    if let Some((Ok(acct), Ok(n), Ok(last))) = after {
        let last = last.str()?.clone();
        for ((a, n), last) in acct.iter().zip(n.iter()).zip(last.iter()) {
            if let (Some(a), Some(n)) = (a, n) {
                let e = by_account.entry(a).or_default();
                e.0.push(Code::QueryByDisabledAccount);
                e.1.push(format!(
                    "停用後仍有查詢 {n} 筆（末筆 {}）",
                    last.unwrap_or("—")
                ));
            }
        }
    }
    Ok(())
}

/// The rows of the account review: one per account, its findings and
/// what to do.
struct AccountRows<'a, 'f> {
    f: &'a RunFacts<'f>,
    by_account: &'a AccountFindings<'a>,
    city_wide: bool,
}

impl AccountRows<'_, '_> {
    /// An account's row: `holder`, role and status as shown, each code
    /// beside it where there is one.
    fn row(
        &self,
        acct: &str,
        agency: Option<&str>,
        holder: Cell,
        (role_code, role): (Option<&str>, Cell),
        (status_code, status): (Option<&str>, Cell),
    ) -> Vec<Cell> {
        let (codes, found) = self.by_account.get(acct).cloned().unwrap_or_default();
        vec![
            Cell::from(acct),
            agency.map_or(Cell::Empty, |a| Cell::Text(agency_name(self.f.config, a))),
            holder,
            role,
            status,
            Cell::Text(if found.is_empty() {
                "無".into()
            } else {
                found.join("；")
            }),
            Cell::from(recommend(&codes, role_code, status_code, self.city_wide)),
        ]
    }

    /// The roster's accounts (of the unit's agencies), each once.
    fn on_roster<'r>(
        &self,
        roster: &'r DataFrame,
        seen: &mut BTreeSet<&'r str>,
    ) -> PolarsResult<Vec<Vec<Cell>>> {
        let r_account = strs(roster, "account_id")?;
        let r_agency = strs(roster, "agency_id")?;
        let r_holder = strs(roster, "holder_name")?;
        let r_role = strs(roster, "role")?;
        let r_status = strs(roster, "status")?;
        // An account only an older roster snapshot lists is not on the
        // roster any more, whatever status it had there.
        let r_removed: Vec<Option<bool>> = match roster.column("removed") {
            Ok(c) => c.bool()?.iter().collect(),
            Err(_) => vec![None; roster.height()],
        };
        let r_snapshot: Vec<Option<String>> = match roster.column(crate::ingest::SNAPSHOT_DATE) {
            Ok(c) => c
                .cast(&DataType::String)?
                .str()?
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect(),
            Err(_) => vec![None; roster.height()],
        };
        let mut rows = Vec::new();
        for i in 0..roster.height() {
            let Some(a) = r_account[i] else { continue };
            if !seen.insert(a) {
                continue;
            }
            let status = if r_removed[i] == Some(true) {
                // Off the roster already: what is left is to make sure
                // WebIR has it revoked too (point 6(2));
                // ACCOUNT_REMOVED_FROM_ROSTER says so.
                let listed = r_snapshot[i].as_deref().unwrap_or("較舊");
                (
                    None,
                    Cell::Text(format!("已自清冊移除（{listed} 清冊仍列）")),
                )
            } else {
                (r_status[i], label(&ACCOUNT_STATUS, r_status[i]))
            };
            rows.push(self.row(
                a,
                r_agency[i],
                text(r_holder[i]),
                (r_role[i], label(&ROLE, r_role[i])),
                status,
            ));
        }
        Ok(rows)
    }

    /// Accounts of the unit's agencies (`ids`) the log shows but the
    /// roster lacks: the officer confirms them too.
    fn not_on_roster<'r>(
        &self,
        findings: &'r DataFrame,
        ids: &[String],
        seen: &mut BTreeSet<&'r str>,
    ) -> PolarsResult<Vec<Vec<Cell>>> {
        let codes = strs(findings, "code")?;
        let account = strs(findings, "account_id")?;
        let agency_of_finding = strs(findings, "agency_id")?;
        let mut rows = Vec::new();
        for i in 0..findings.height() {
            if codes[i] == Some(Code::AccountNotInRoster.as_str())
                && let Some(a) = account[i]
                && agency_of_finding[i].is_some_and(|g| ids.iter().any(|id| id == g))
                && seen.insert(a)
            {
                rows.push(self.row(
                    a,
                    agency_of_finding[i],
                    Cell::Empty,
                    (None, Cell::Empty),
                    (None, Cell::from("（清冊無此帳號）")),
                ));
            }
        }
        Ok(rows)
    }
}

/// Each agency's records in the period's population: the population is
/// every canonical query of the period (docs/sampling.md § 4), which is
/// what the monthly counts add up to. `None` without those counts.
fn population_by_agency(f: &RunFacts<'_>) -> Option<BTreeMap<String, u64>> {
    let q = f.queries_by_month?;
    let agency = strs(q, "agency_id").ok()?;
    let n = q.column("queries").ok()?.cast(&DataType::UInt64).ok()?;
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (a, n) in agency.iter().zip(n.u64().ok()?.iter()) {
        if let (Some(a), Some(n)) = (a, n) {
            *out.entry((*a).to_owned()).or_default() += n;
        }
    }
    Some(out)
}

/// The sample's strata: per agency, its population records (`M`), its
/// accounts in use (`N`) and the accounts drawn (`n`).
fn strata_table<'s>(
    f: &RunFacts<'_>,
    strata: impl Iterator<Item = &'s crate::sampling::Stratum>,
) -> PolarsResult<SheetTable> {
    let population = population_by_agency(f);
    Ok(SheetTable {
        headers: headers(&["機關", "母體筆數 M", "使用中帳號數 N", "抽樣帳號數 n"]),
        rows: strata
            .map(|s| {
                vec![
                    Cell::Text(format!(
                        "{}（{}）",
                        agency_name(f.config, &s.agency_id),
                        s.agency_id
                    )),
                    population.as_ref().map_or(Cell::Empty, |p| {
                        Cell::Int(*p.get(&s.agency_id).unwrap_or(&0) as i64)
                    }),
                    Cell::Int(s.accounts_in_use as i64),
                    Cell::Int(s.accounts_selected as i64),
                ]
            })
            .collect(),
    })
}

/// The roles whose accounts are reviewed by someone other than the
/// unit's officer: the officer's own (no reviewer certifies their own
/// access) and the chief administrator's.
pub const SECOND_REVIEW_ROLES: [&str; 2] = ["officer", "chief_admin"];

/// Which of a unit's sampled rows a worksheet holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Every row but the officers' own accounts': the officer's worksheet.
    Officer,
    /// The officers' own accounts' rows: the second reviewer's.
    SecondReview,
}

/// The sampled rows of agencies `ids` that `part`'s worksheet holds.
fn part_rows(details: &DataFrame, ids: &[String], part: Part) -> PolarsResult<DataFrame> {
    let reviewed = one_of(
        col("holder_role"),
        Series::new("r".into(), SECOND_REVIEW_ROLES),
    )
    .fill_null(lit(false));
    in_set(details, "agency_id", ids)?
        .lazy()
        .filter(match part {
            Part::Officer => reviewed.not(),
            Part::SecondReview => reviewed,
        })
        .collect()
}

/// The sample worksheet's rows: the tool's columns of each sampled
/// record of `unit` (its first agency).
fn worksheet_rows(
    f: &RunFacts<'_>,
    d: &DataFrame,
    unit: Option<&str>,
) -> PolarsResult<Vec<Vec<Cell>>> {
    let agency = strs(d, "agency_id")?;
    let account = strs(d, "account_id")?;
    let holder = strs(d, "holder_name")?;
    let at = times(d, "queried_at_exact")?;
    let item = strs(d, "query_item")?;
    let subject = strs(d, "subject")?;
    let purpose = strs(d, "purpose")?;
    let form = strs(d, "form_id")?;
    let late = strs(d, "late_form_id")?;
    let form_purpose = strs(d, "form_purpose")?;
    let approver = strs(d, "form_approver")?;
    let reason = strs(d, "form_reason")?;
    let approved = times(d, "form_approved_at")?;
    let pre = strs(d, "prechecks")?;
    let second = |t: NaiveDateTime| t.format("%Y/%m/%d %H:%M:%S").to_string();
    // An approval to the minute, on one line under its approver (the
    // pre-check says whether it came before the query).
    let minute = |t: NaiveDateTime| t.format("%Y/%m/%d %H:%M").to_string();
    Ok((0..d.height())
        .map(|i| {
            let who = who_cell(f, unit, account[i], holder[i], agency[i]);
            let form_cell = form_cell(form[i], late[i], form_purpose[i], purpose[i]);
            // Who approved the form, and when.
            let approval = match (form[i].or(late[i]), approver[i], approved[i]) {
                (None, _, _) => Cell::Empty,
                (Some(_), a, Some(t)) => Cell::Text(
                    format!("{}\n{}", a.unwrap_or(""), minute(t))
                        .trim_start()
                        .to_owned(),
                ),
                (Some(_), _, None) => Cell::from("（未核准）"),
            };
            vec![
                Cell::Int(i as i64 + 1),
                Cell::Text(who),
                at[i].map_or(Cell::Empty, |t| Cell::Text(second(t))),
                text(item[i]),
                text(subject[i]),
                label(&PURPOSE, purpose[i]),
                Cell::Text(form_cell),
                approval,
                reason[i].map_or(Cell::Empty, |r| {
                    Cell::Text(crate::privacy::mask_ids_in_text(r))
                }),
                text(pre[i]),
            ]
        })
        .collect())
}

/// The account and its holder, and below them its agency when it is a
/// subordinate one's (of `unit`): who the row is about, in one cell.
fn who_cell(
    f: &RunFacts<'_>,
    unit: Option<&str>,
    account: Option<&str>,
    holder: Option<&str>,
    agency: Option<&str>,
) -> String {
    let mut who = account.unwrap_or("").to_owned();
    if let Some(h) = holder {
        who.push(' ');
        who.push_str(h);
    }
    if let Some(a) = agency.filter(|a| Some(*a) != unit) {
        let within = match unit {
            Some(u) => name_within(f.config, u, a),
            None => agency_name(f.config, a),
        };
        who.push('\n');
        who.push_str(&within);
    }
    who
}

/// The form the checks matched and what it was for, or the one the
/// finding cites (`late`), approved only after the query (one source of
/// truth).
fn form_cell(
    form: Option<&str>,
    late: Option<&str>,
    form_purpose: Option<&str>,
    purpose: Option<&str>,
) -> String {
    match (form, late) {
        (None, None) => "無對應紀錄表".to_owned(),
        (id, late_id) => {
            let mut s = match (id, late_id) {
                (Some(id), _) => id.to_owned(),
                (_, Some(l)) => format!("{l}（查詢後始核可）"),
                (None, None) => String::new(),
            };
            // Its purpose only where it is not the query's (the
            // row says the query's beside it): a line less to
            // print on nearly every row.
            if let Some(p) = form_purpose.filter(|p| Some(*p) != purpose) {
                s.push_str("\n目的：");
                s.push_str(PURPOSE.label(p).unwrap_or(p));
            }
            s
        }
    }
}

fn sample_section(
    f: &RunFacts<'_>,
    m: &Manifest,
    details: &DataFrame,
    ids: &[String],
    part: Part,
) -> PolarsResult<SampleSection> {
    let d = part_rows(details, ids, part)?;
    let unit = ids.first().map(String::as_str);
    let rows = worksheet_rows(f, &d, unit)?;
    let unit_strata: Vec<_> = m
        .units
        .iter()
        .filter(|u| ids.first() == Some(&u.unit_id))
        .flat_map(|u| &u.strata)
        .collect();
    Ok(SampleSection {
        spec_version: m.spec_version.clone(),
        seed: m.seed.clone(),
        seed_source: m.seed_source.clone(),
        draw_number: m.draw_number,
        drawn_at: m.drawn_at.clone(),
        frozen_at: m.frozen_at.clone(),
        ceremony: m.ceremony.as_ref().map(|c| super::CeremonyNote {
            committed_at: c.committed_at.clone(),
            seed_given_at: c.seed_given_at.clone(),
            seed_given_by: c.seed_given_by.clone(),
            via: c.seed_via.clone(),
        }),
        period_start: m.period.start.clone(),
        period_end: m.period.end.clone(),
        timezone: m.period.timezone.clone(),
        percent: m.parameters.sample_account_percent,
        per_account: m.parameters.sample_records_per_account,
        population_records: m.population_records,
        population_digest: m.population_digest.clone(),
        sample_digest: m.sample_digest.clone(),
        unit_population_records: (!ids.is_empty())
            .then(|| {
                let by_agency = population_by_agency(f)?;
                Some(ids.iter().filter_map(|a| by_agency.get(a)).sum::<u64>())
            })
            .flatten(),
        strata: strata_table(f, unit_strata.into_iter())?,
        inputs: SheetTable {
            headers: headers(&["檔案", "位元組", "列數", "SHA-256"]),
            rows: m
                .inputs
                .iter()
                .map(|i| {
                    vec![
                        Cell::Text(i.file.clone()),
                        Cell::Int(i.bytes as i64),
                        Cell::Int(i.rows as i64),
                        Cell::Text(i.sha256.clone()),
                    ]
                })
                .collect(),
        },
        worksheet: SheetTable {
            headers: headers(super::layout::SAMPLE_WORKSHEET.tool),
            rows,
        },
    })
}

fn unit_model(f: &RunFacts<'_>, unit: &str) -> PolarsResult<ReportModel> {
    let ids = subtree(f.config, unit);
    let findings = in_set(f.findings, "unit_id", &[unit.to_owned()])?;
    let document = unit_document(f, unit, &ids, &findings)?;
    let mut m = base(f, unit, agency_name(f.config, unit), &findings, document)?;
    m.severity_by_agency = severity_by_agency(f, &ids, &findings)?;
    m.queries_by_month = queries_by_month(f, &ids)?;
    // The ethics unit investigates with the unit (6(3)): it gets the
    // workbook while any serious anomaly stands, asked before or not.
    m.serious = f.kind.shows_queries() && serious(&findings)?;
    add_unit_notes(f, unit, &ids, &mut m)?;
    Ok(m)
}

/// The document of `unit`'s workbook of the run's kind, from its
/// `findings` (of its agencies `ids`).
fn unit_document(
    f: &RunFacts<'_>,
    unit: &str,
    ids: &[String],
    findings: &DataFrame,
) -> PolarsResult<Document> {
    let missing =
        |what: &str| polars_err!(ComputeError: "a {} workbook needs {what}", f.kind.title());
    // What an earlier workbook asked is not asked again: it is listed
    // with where it was asked.
    let asked_queries = || -> PolarsResult<(Queries, Option<SheetTable>)> {
        let (ask, asked) = match f.asked {
            Some(before) => split_asked(findings, unit, before)?,
            None => (findings.clone(), None),
        };
        Ok((
            query_findings(&ask, false, Some((f.config, unit)))?,
            asked.filter(|t| !t.rows.is_empty()),
        ))
    };
    let sample = || -> PolarsResult<SampleSection> {
        let (manifest, details) = f.sample.ok_or_else(|| missing("its sample"))?;
        sample_section(f, manifest, details, ids, Part::Officer)
    };
    Ok(match f.kind {
        ReportKind::SampleAudit => Document::SampleAudit {
            sample: sample()?,
            queries: asked_queries()?.0,
        },
        ReportKind::QueryCheck => Document::QueryCheck {
            queries: asked_queries()?.0,
        },
        ReportKind::InternalAudit => {
            let (queries, asked_before) = asked_queries()?;
            Document::InternalAudit {
                evidence: f
                    .evidence
                    .and_then(|e| e.get(unit))
                    .map(evidence_table)
                    .ok_or_else(|| missing("the unit's evidence"))?,
                queries,
                asked_before,
            }
        }
        ReportKind::AccountReview => Document::AccountReview {
            accounts: accounts(
                f,
                f.roster.ok_or_else(|| missing("the roster"))?,
                ids,
                findings,
                false,
            )?,
        },
        ReportKind::PasswordCheck => Document::PasswordCheck {
            stale_passwords: stale_password_table(f, unit, findings)?,
        },
        ReportKind::ExternalAudit => return Err(missing("no unit: it is the Health Bureau's")),
    })
}

/// What `unit`'s workbook notes and asks besides its document: what was
/// asked before, a year the logs hold only part of, the accounts only
/// the log shows, the sample's size and draws.
fn add_unit_notes(
    f: &RunFacts<'_>,
    unit: &str,
    ids: &[String],
    m: &mut ReportModel,
) -> PolarsResult<()> {
    if let Document::InternalAudit {
        asked_before: Some(t),
        ..
    } = &m.document
    {
        let n = t.rows.len();
        m.notes.push(format!(
            "「已列管異常查詢」所列 {n} 項已於先前之工作底稿詢問貴機關（見該表「首次詢問」），本表不再詢問；其處理情形請依原工作底稿回復。"
        ));
    }
    // A year the logs hold only part of: the rest was not checked.
    if let (Some((from, to)), Ok(p)) = (
        f.evidence
            .and_then(|e| e.get(unit))
            .and_then(|e| e.log_days),
        f.period_id.parse::<crate::period::Period>(),
    ) && (from > p.start.date() || to < p.last_day())
    {
        m.notes.push(format!(
            "本期間之查詢紀錄僅涵蓋 {from} 至 {to}；{} 至 {} 之其餘日期無紀錄可查，未檢核，資料補正後將另行辦理。",
            p.start.date(),
            p.last_day()
        ));
    }
    if let Some(o) = f.orphans {
        let t = orphan_table(f, &in_set(o, "agency_id", ids)?)?;
        // Someone used WebIR with an account nobody manages: the officer
        // finds out whose it is.
        if !t.rows.is_empty() {
            m.actions.push(format!(
                "「清冊外帳號」工作表所列 {} 個帳號不在帳號清冊，請查明帳號來源及實際使用人，未經核准者由貴機關專責人員廢止，並將處理情形填入{}（管理要點第五點第一款、第六點第二款）。",
                t.rows.len(),
                where_unrostered_is_asked(&m.document)
            ));
        }
        m.orphans = Some(t);
    }
    if let Document::SampleAudit { sample, .. } = &m.document {
        // How many rows the officer has to check, with the first action.
        let n = sample.worksheet.rows.len();
        if let Some(first) = m.actions.first_mut() {
            first.push_str(&format!("本表共 {n} 筆抽樣紀錄。"));
        }
        if sample.draw_number > 1 {
            m.notes.push(format!(
                "本期間已抽籤 {} 次（本次為第 {} 次）；歷次種子均記錄於系統，供稽核查驗。",
                sample.draw_number, sample.draw_number
            ));
        }
    }
    Ok(())
}

/// Where a unit's workbook asks about the accounts only the query log
/// shows: one decision, asked once. Where 異常查詢 lists the account's
/// queries (以不在帳號清冊之帳號查詢) it is answered there; where an
/// earlier workbook asked, there; else on 清冊外帳號 itself.
fn where_unrostered_is_asked(d: &Document) -> &'static str {
    let unrostered = Code::QueryByUnrosteredAccount.description();
    let listed = |t: Option<&SheetTable>| {
        t.is_some_and(|t| {
            t.rows
                .iter()
                .any(|r| r.iter().any(|c| c.text() == Some(unrostered)))
        })
    };
    match d {
        Document::InternalAudit {
            queries,
            asked_before,
            ..
        } if !listed(Some(&queries.findings)) && listed(asked_before.as_ref()) => {
            "原工作底稿（見「已列管異常查詢」），本表不再詢問"
        }
        Document::SampleAudit { .. }
        | Document::QueryCheck { .. }
        | Document::InternalAudit { .. } => "「異常查詢」之「以不在帳號清冊之帳號查詢」列",
        Document::SecondReview { .. }
        | Document::AccountReview { .. }
        | Document::PasswordCheck { .. }
        | Document::OfficerReview { .. }
        | Document::ExternalRecord { .. }
        | Document::CityWide(_) => "該表",
    }
}

/// The unit's query findings not yet asked (every other finding, too),
/// and those an earlier workbook asked, one row per code and account:
/// 說明, 帳號, 使用者, 件數, 首次詢問, 回覆 (what the unit answered there).
fn split_asked(
    findings: &DataFrame,
    unit: &str,
    before: &Asked,
) -> PolarsResult<(DataFrame, Option<SheetTable>)> {
    let marked = findings
        .clone()
        .lazy()
        .with_column(key_in(before.first.keys().cloned()).alias("asked_before"))
        .with_column(finding_key().alias("finding_key"))
        .collect()?;
    let ask = marked
        .clone()
        .lazy()
        .filter(col("asked_before").not())
        .drop(cols(["asked_before", "finding_key"]))
        .collect()?;
    // One row per code and account: its holder, how many, and the first
    // (earliest) finding's key, which says where it was first asked.
    let asked = marked
        .lazy()
        .filter(col("asked_before"))
        .sort(["occurred_at"], SortMultipleOptions::default())
        .group_by([col("code"), col("account_id").fill_null(lit(""))])
        .agg([
            col("holder_name").first(),
            len().cast(DataType::Int64).alias("n"),
            col("finding_key").first(),
        ])
        .sort(["code", "account_id"], SortMultipleOptions::default())
        .collect()?;
    let code = strs(&asked, "code")?;
    let account = strs(&asked, "account_id")?;
    let holder = strs(&asked, "holder_name")?;
    let key = strs(&asked, "finding_key")?;
    let n: Vec<Option<i64>> = asked.column("n")?.i64()?.iter().collect();
    let rows = (0..asked.height()).map(|i| {
        (
            (code[i].unwrap_or(""), account[i].unwrap_or("")),
            (
                holder[i].unwrap_or(""),
                n[i].unwrap_or(0),
                key[i]
                    .and_then(|k| before.first.get(k))
                    .map_or("", String::as_str),
            ),
        )
    });
    Ok((
        ask,
        Some(SheetTable {
            headers: headers(&["說明", "帳號", "使用者", "件數", "首次詢問", "回覆"]),
            rows: rows
                .into_iter()
                .map(|((c, a), (h, n, at))| {
                    let what = Code::parse(c).map_or(c, |c| c.description());
                    let reply = before
                        .replies
                        .get(&(unit.to_owned(), what.to_owned(), a.to_owned()))
                        .map_or("尚未回覆", String::as_str);
                    vec![
                        Cell::from(what),
                        Cell::from(a),
                        Cell::from(h),
                        Cell::Int(n),
                        Cell::from(at),
                        Cell::from(reply),
                    ]
                })
                .collect(),
        }),
    ))
}

/// The password check's list (密碼逾期帳號): each account of `unit` whose
/// password is overdue, its holder, the last change and how it was found.
fn stale_password_table(
    f: &RunFacts<'_>,
    unit: &str,
    findings: &DataFrame,
) -> PolarsResult<SheetTable> {
    let stale = findings
        .clone()
        .lazy()
        .filter(col("code").eq(lit(Code::AccountPasswordStale.as_str())))
        .sort(["agency_id", "account_id"], SortMultipleOptions::default())
        .collect()?;
    let agency = strs(&stale, "agency_id")?;
    let account = strs(&stale, "account_id")?;
    let holder = strs(&stale, "holder_name")?;
    let changed = times(&stale, "occurred_at")?;
    let reason = strs(&stale, "reason")?;
    Ok(SheetTable {
        headers: headers(&["機關", "帳號", "使用者", "最後變更密碼日", "說明"]),
        rows: (0..stale.height())
            .map(|i| {
                vec![
                    Cell::Text(
                        agency[i].map_or_else(String::new, |a| name_within(f.config, unit, a)),
                    ),
                    text(account[i]),
                    text(holder[i]),
                    Cell::Text(changed[i].map_or_else(String::new, |t| t.date().to_string())),
                    text(reason[i]),
                ]
            })
            .collect(),
    })
}

/// The reviewer's name as documents say it.
pub fn reviewer_name(who: crate::config::Reviewer) -> &'static str {
    match who {
        crate::config::Reviewer::Ethics => "貴機關政風單位",
        crate::config::Reviewer::ChiefAdmin => "衛生局總管理者",
    }
}

/// The second review of a unit's sample (issue 28): its officers' own
/// accounts' sampled rows, for the reviewer the config names (the unit's
/// ethics unit, else the chief administrator) to audit, sign and return.
/// `None` when the unit's sample holds no such account. Its workbook is
/// the unit's with only this worksheet to fill in: the query findings and
/// the roster stay the officer's to answer.
fn second_review_model(f: &RunFacts<'_>, unit: &ReportModel) -> PolarsResult<Option<ReportModel>> {
    let Some((manifest, details)) = f.sample else {
        return Ok(None);
    };
    let ids = subtree(f.config, &unit.unit_id);
    let section = sample_section(f, manifest, details, &ids, Part::SecondReview)?;
    if section.worksheet.rows.is_empty() {
        return Ok(None);
    }
    // The accounts it holds, from the sample itself (not its cells' text).
    let accounts: Vec<String> = part_rows(details, &ids, Part::SecondReview)?
        .column("account_id")?
        .unique_stable()?
        .sort(SortOptions::default())?
        .str()?
        .iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    // Its summary counts what concerns these accounts only: the unit's
    // other findings are its officer's, and read as the officer's own.
    let own = in_set(
        &in_set(f.findings, "unit_id", std::slice::from_ref(&unit.unit_id))?,
        "account_id",
        &accounts,
    )?;
    let deadline = deadline(f.config, f.kind, f.generated_at).1;
    let action = format!(
        "本表為貴機關專責人員本人帳號（{}）之抽查紀錄共 {} 筆：專責人員不自行抽查本人帳號，請由貴單位覆核，逐筆填寫黃色欄位並於表格下方簽章，於 {deadline} 前回傳（管理要點第六點第一款）。",
        accounts.join("、"),
        section.worksheet.rows.len()
    );
    let review = SecondReview {
        accounts,
        reviewer: f
            .config
            .second_reviewer(&unit.unit_id)
            .map_or("（未設定）", |(_, who)| reviewer_name(who))
            .trim_start_matches("貴機關")
            .to_owned(),
    };
    let mut m = base(
        f,
        &unit.unit_id,
        unit.unit_name.clone(),
        &own,
        Document::SecondReview {
            sample: section,
            review,
        },
    )?;
    m.actions = vec![action];
    Ok(Some(m))
}

/// Rules the query checks apply that the regulation does not state: a
/// reader must know they are the city's settings and where they are set.
fn local_policy_note(f: &RunFacts<'_>) -> Option<String> {
    if !f.kind.shows_queries() {
        return None;
    }
    let r = &f.config.rules;
    Some(format!(
        "本市設定（衛生局訂定，非管理要點明文）：紀錄表核可後 {} 日內有效（紀錄表自載有效期限者從之）；辦公時間為週一至週五 {}–{}，其外及假日之查詢列為「非上班時間或假日查詢」供查明。",
        r.form_validity_days,
        r.office_hours.0.format("%H:%M"),
        r.office_hours.1.format("%H:%M")
    ))
}

/// Findings rolled up by account, city-wide: one row per account with its
/// counts by severity, its worst finding and the next action, most serious
/// first, so a handful of critical cases is not buried under one account's
/// many low ones.
fn by_account(f: &RunFacts<'_>) -> PolarsResult<SheetTable> {
    let code = strs(f.findings, "code")?;
    let sev_col = strs(f.findings, "severity")?;
    let unit = strs(f.findings, "unit_id")?;
    let account = strs(f.findings, "account_id")?;
    let holder = strs(f.findings, "holder_name")?;
    #[derive(Default)]
    struct Acc<'a> {
        unit: &'a str,
        holder: &'a str,
        counts: [i64; 4],
        worst: Option<Code>,
    }
    let mut by: BTreeMap<&str, Acc<'_>> = BTreeMap::new();
    for i in 0..f.findings.height() {
        let (Some(a), Some(c)) = (account[i], code[i].and_then(Code::parse)) else {
            continue;
        };
        let e = by.entry(a).or_default();
        e.unit = unit[i].unwrap_or("");
        if e.holder.is_empty() {
            e.holder = holder[i].unwrap_or("");
        }
        // The finding's own severity: a repeat is raised above its code's.
        let sev = sev_col[i].and_then(severity_of).unwrap_or(c.severity());
        let k = Severity::ALL.iter().position(|s| *s == sev).unwrap_or(3);
        e.counts[k] += 1;
        if e.worst
            .is_none_or(|w| (c.severity(), c.as_str()) < (w.severity(), w.as_str()))
        {
            e.worst = Some(c);
        }
    }
    let mut rows: Vec<(&str, Acc<'_>)> = by.into_iter().collect();
    // Most serious first: by the counts from critical down, then by account.
    rows.sort_by(|(a, x), (b, y)| {
        y.counts
            .iter()
            .zip(&x.counts)
            .map(|(p, q)| p.cmp(q))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(b))
    });
    Ok(SheetTable {
        headers: headers(&[
            "單位",
            "帳號",
            "使用者",
            "嚴重",
            "高",
            "中",
            "低",
            "最嚴重項目",
            "下一步",
        ]),
        rows: rows
            .into_iter()
            .map(|(a, x)| {
                let mut r = vec![
                    Cell::Text(format!("{}（{}）", agency_name(f.config, x.unit), x.unit)),
                    Cell::from(a),
                    Cell::from(x.holder),
                ];
                r.extend(x.counts.iter().map(|n| Cell::Int(*n)));
                r.push(Cell::from(x.worst.map_or("", Code::description)));
                r.push(Cell::from(next_action(x.worst)));
                r
            })
            .collect(),
    })
}

/// The next action on an account whose most serious finding is `w`, as
/// the Health Bureau's short list says it.
fn next_action(w: Option<Code>) -> &'static str {
    match w.map(Code::severity) {
        Some(Severity::Critical) => "立即停止使用，會同政風單位調查並作成調查紀錄（第六點第三款）",
        Some(Severity::High) if w.is_some_and(|c| c.scope() == Scope::Accounts) => {
            "督促專責人員廢止或查明（第五點第一款第三目、第六點第二款）"
        }
        // Someone queried who may not: the account, not a form, is
        // what is wrong.
        Some(Severity::High)
            if matches!(
                w,
                Some(
                    Code::QueryByIneligibleHolder
                        | Code::QueryByDisabledAccount
                        | Code::QueryByUnrosteredAccount
                )
            ) =>
        {
            "督促專責人員查明實際使用人並廢止帳號，會同政風單位調查（第六點第二款、第三款）"
        }
        Some(Severity::High) => {
            "督促查明並補正紀錄表，必要時會同政風單位調查（第五點第二款第一目、第六點第三款）"
        }
        Some(Severity::Medium) => "督促查明（第六點）",
        _ => "列入追蹤",
    }
}

/// The external audit's draw as the Health Bureau reads it.
fn selection_table(config: &Config, d: &UnitDraw) -> SheetTable {
    SheetTable {
        headers: headers(&[
            "順位",
            "單位",
            "嚴重發現（帳號及查詢）",
            "籤值 ticket(seed, \"unit\", 期間, 單位)",
            "抽中",
        ]),
        rows: d
            .units
            .iter()
            .map(|u| {
                vec![
                    Cell::Int(i64::from(u.rank)),
                    Cell::Text(format!(
                        "{}（{}）",
                        config
                            .agencies
                            .get(&u.unit_id)
                            .map_or("", |a| a.name.as_str()),
                        u.unit_id
                    )),
                    Cell::Text(if u.first {
                        format!("{} 件（優先抽選）", u.critical)
                    } else {
                        format!("{} 件", u.critical)
                    }),
                    Cell::Text(u.ticket.clone()),
                    Cell::from(if u.selected { "是" } else { "否" }),
                ]
            })
            .collect(),
    }
}

/// The summary's line on how the external audit drew its units.
fn selection_note(d: &UnitDraw) -> String {
    // The words claim no more than the evidence: a ceremony's seed is
    // called public only when it came by the ceremony.
    let source = match &d.ceremony {
        Some(c) if c.seed_via == "os-fallback" => format!(
            "系統亂數產生，抽籤儀式等候種子逾時之備援；候選單位承諾 {} 寄出",
            c.committed_at
        ),
        Some(c) => format!(
            "抽籤儀式之公開種子；候選單位承諾 {} 寄出，種子 {} 登錄",
            c.committed_at, c.seed_given_at
        ),
        None => super::seed_source(d.seed_source).to_owned(),
    };
    format!(
        "外部稽核抽選：種子 {}（{}），第 {} 次抽籤，候選單位摘要值 {}；{}以 ticket(種子, \"unit\", {}, 單位) 由小至大排序，共抽 {} 個單位（規格 {} 第 14 節）；衛生局辦理外部稽核，不列入抽選",
        d.seed,
        source,
        d.draw_number,
        d.units_digest,
        if d.units.iter().any(|u| u.first) {
            "有嚴重發現之單位優先並必抽（計入抽選數，多於設定數時全數抽選），其餘"
        } else {
            ""
        },
        d.period_id,
        d.units_to_select,
        d.spec_version
    )
}

fn city_model(f: &RunFacts<'_>) -> PolarsResult<ReportModel> {
    let hb = f.config.agencies.health_bureau();
    let queries = if f.kind.shows_queries() {
        Some(query_findings(f.findings, true, None)?)
    } else {
        None
    };
    let units: Vec<String> = f.config.agencies.units().map(|u| u.id.clone()).collect();
    let by_agency = severity_by_agency(f, &units, &{
        // City-wide, findings are counted per unit.
        let mut df = f.findings.clone();
        df.drop_in_place("agency_id")?;
        let unit = df.column("unit_id")?.clone().with_name("agency_id".into());
        df.with_column(unit)?;
        df
    })?;
    let units = units_table(f, &units)?;
    let sample = match f.sample {
        Some((manifest, _)) => {
            let mut s = sample_section(
                f,
                manifest,
                &DataFrame::empty_with_schema(&sample_schema()),
                &[],
                Part::Officer,
            )?;
            s.strata = strata_table(f, manifest.units.iter().flat_map(|u| &u.strata))?;
            Some(s)
        }
        None => None,
    };
    let city = CityWide {
        units,
        collection: None,
        selection: f.selection.map(|d| selection_table(f.config, d)),
        by_account: by_account(f)?,
        queries,
        rejects: rejects_table(f.rejects)?,
        sample,
    };
    let mut m = base(
        f,
        &hb.id,
        hb.name.clone(),
        f.findings,
        Document::CityWide(Box::new(city)),
    )?;
    m.severity_by_agency = by_agency;
    m.serious = f.kind.shows_queries() && serious(f.findings)?;
    if let Some(o) = f.orphans {
        m.orphans = Some(orphan_table(f, o)?);
    }
    refresh_collection(f, &mut m, f.due.unwrap_or_default());
    // The external audit's workbook is the Health Bureau's own work (its
    // actions from `base`); the other kinds' city-wide workbook supervises
    // what the units were asked to do.
    if f.kind != ReportKind::ExternalAudit {
        m.actions = vec![format!(
            "請督導各單位於 {} 前回傳工作底稿或處理結果。",
            deadline(f.config, f.kind, f.generated_at).1
        )];
    }
    if f.rejects.height() > 0 {
        m.actions
            .push("「剔除資料列」所列為無法讀入之資料，請通知提供機關更正後重新匯出。".to_owned());
    }
    Ok(m)
}

/// 各單位: one row per unit, its sample's coverage where there is a
/// sample, its findings by severity, and its status where known.
fn units_table(f: &RunFacts<'_>, units: &[String]) -> PolarsResult<SheetTable> {
    let sev = strs(f.findings, "severity")?;
    let unit_of = strs(f.findings, "unit_id")?;
    let mut counts: BTreeMap<(&str, Severity), i64> = BTreeMap::new();
    for (u, s) in unit_of.iter().zip(&sev) {
        if let (Some(u), Some(s)) = (u, s.and_then(severity_of)) {
            *counts.entry((u, s)).or_default() += 1;
        }
    }
    let strata: BTreeMap<&str, (u64, u64)> = f
        .sample
        .map(|(man, _)| {
            man.units
                .iter()
                .map(|u| {
                    (
                        u.unit_id.as_str(),
                        u.strata.iter().fold((0, 0), |(a, b), s| {
                            (a + s.accounts_in_use, b + s.accounts_selected)
                        }),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // The sample's coverage only where there is a sample: no column of a
    // city-wide table is left blank.
    let sampled = f.sample.is_some();
    let mut h = if sampled {
        headers(&["單位", "使用中帳號", "抽樣帳號", "涵蓋率"])
    } else {
        headers(&["單位"])
    };
    // A run that checked accounts only counts account findings.
    let found = if f.kind.shows_queries() {
        "發現"
    } else {
        "帳號發現"
    };
    h.extend(
        Severity::ALL
            .iter()
            .map(|s| format!("{found}：{}", severity_label(*s))),
    );
    if f.unit_status.is_some() {
        h.extend(headers(&["帳號數", "最近抽查", "最近帳號清查", "工作底稿"]));
    }
    Ok(SheetTable {
        headers: h,
        rows: units
            .iter()
            .map(|u| {
                let (n_use, n_sel) = strata.get(u.as_str()).copied().unwrap_or((0, 0));
                let mut r = vec![Cell::Text(format!("{}（{u}）", agency_name(f.config, u)))];
                if sampled {
                    r.extend([
                        Cell::Int(n_use as i64),
                        Cell::Int(n_sel as i64),
                        // Point 6(1): at least 20% of the accounts in use.
                        match (n_sel * 1000).checked_div(n_use) {
                            None => Cell::from("—"),
                            Some(permille) => {
                                Cell::Text(format!("{}.{}%", permille / 10, permille % 10))
                            }
                        },
                    ]);
                }
                r.extend(
                    Severity::ALL
                        .iter()
                        .map(|s| Cell::Int(counts.get(&(u.as_str(), *s)).copied().unwrap_or(0))),
                );
                if let Some(status) = f.unit_status {
                    match status.get(u) {
                        Some(st) => r.extend(st.cells()),
                        None => {
                            r.extend([Cell::Int(0), "無紀錄".into(), "無紀錄".into(), "—".into()])
                        }
                    }
                }
                r
            })
            .collect(),
    })
}

/// The city-wide 剔除資料列: every row no unit can be given.
fn rejects_table(rj: &DataFrame) -> PolarsResult<SheetTable> {
    let table = strs(rj, "table")?;
    let file = strs(rj, "source_file")?;
    let sheet = strs(rj, "sheet")?;
    let row: Vec<Option<i64>> = rj
        .column("source_row")?
        .cast(&DataType::Int64)?
        .i64()?
        .iter()
        .collect();
    let reason = strs(rj, "reason")?;
    let raw = strs(rj, "raw")?;
    Ok(SheetTable {
        headers: headers(&[
            "表別",
            "檔案",
            "工作表",
            "列",
            "原因",
            "原始內容（身分證號已遮蔽）",
        ]),
        rows: (0..rj.height())
            .map(|i| {
                vec![
                    text(table[i]),
                    text(file[i]),
                    text(sheet[i]),
                    row[i].map_or(Cell::Empty, Cell::Int),
                    text(reason[i]),
                    text(raw[i]),
                ]
            })
            .collect(),
    })
}

/// The columns [`sample_details`] produces that the worksheet reads.
fn sample_schema() -> Schema {
    let t = DataType::Datetime(TimeUnit::Microseconds, None);
    [
        ("agency_id", DataType::String),
        ("account_id", DataType::String),
        ("holder_name", DataType::String),
        ("holder_role", DataType::String),
        ("queried_at_exact", t.clone()),
        ("query_item", DataType::String),
        ("subject", DataType::String),
        ("purpose", DataType::String),
        ("form_id", DataType::String),
        ("form_purpose", DataType::String),
        ("form_approver", DataType::String),
        ("form_reason", DataType::String),
        ("late_form_id", DataType::String),
        ("form_approved_at", t),
        ("prechecks", DataType::String),
    ]
    .into_iter()
    .map(|(n, d)| Field::new(n.into(), d))
    .collect()
}
