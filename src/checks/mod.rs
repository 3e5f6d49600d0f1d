//! Audit checks: every rule of the regulation that data can check, as
//! findings with stable codes.
//!
//! Every check has the same shape: a pure function `fn(&Ctx) ->
//! PolarsResult<LazyFrame>` over the canonical frames, returning rows with the
//! columns of [`RAW_FINDING`]. [`run`] evaluates them, adds each finding's
//! unit and severity, masks the subject, and sorts the result so the same
//! inputs always give the same findings. Checks do no I/O and read no clock:
//! the reference day comes in [`Ctx`].

pub mod account;
pub mod query;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use polars::prelude::*;
use serde::Serialize;

use crate::config::Config;
use crate::ingest::parse::TIME_UNIT;
use crate::ingest::{FileRecord, FileStatus};
/// Finding severities: defined with the vocabularies in `model` (the config
/// names one, `rules.fail_on_severity`), owned here.
pub use crate::model::Severity;
use crate::model::Table;
use crate::period::Period;
use crate::vocab::text_enum;

text_enum! {
    /// The stable finding codes. Their names are a contract with officers,
    /// auditors and the reports: never rename one.
    Code("finding code") {
        AccountHolderDeparted = "ACCOUNT_HOLDER_DEPARTED",
        AccountHolderTransferred = "ACCOUNT_HOLDER_TRANSFERRED",
        AccountHolderSuspended = "ACCOUNT_HOLDER_SUSPENDED",
        AccountIneligibleEmployment = "ACCOUNT_INELIGIBLE_EMPLOYMENT",
        AccountHolderUnknown = "ACCOUNT_HOLDER_UNKNOWN",
        AccountIdle = "ACCOUNT_IDLE",
        AccountNeverUsed = "ACCOUNT_NEVER_USED",
        AccountDuplicate = "ACCOUNT_DUPLICATE",
        AccountPasswordStale = "ACCOUNT_PASSWORD_STALE",
        AccountNotInRoster = "ACCOUNT_NOT_IN_ROSTER",
        AccountRemovedFromRoster = "ACCOUNT_REMOVED_FROM_ROSTER",
        AgencyOfficerCount = "AGENCY_OFFICER_COUNT",
        QueryNoRequestForm = "QUERY_NO_REQUEST_FORM",
        QueryFormNotApproved = "QUERY_FORM_NOT_APPROVED",
        QueryApprovedAfterQuery = "QUERY_APPROVED_AFTER_QUERY",
        QueryFormExpired = "QUERY_FORM_EXPIRED",
        QueryPurposeNotAllowed = "QUERY_PURPOSE_NOT_ALLOWED",
        QueryAfterDeparture = "QUERY_AFTER_DEPARTURE",
        QueryByIneligibleHolder = "QUERY_BY_INELIGIBLE_HOLDER",
        QueryByDisabledAccount = "QUERY_BY_DISABLED_ACCOUNT",
        QuerySelfLookup = "QUERY_SELF_LOOKUP",
        QueryCoworkerLookup = "QUERY_COWORKER_LOOKUP",
        QueryOffHours = "QUERY_OFF_HOURS",
        QueryVolumeSpike = "QUERY_VOLUME_SPIKE",
        QuerySubjectManyAccounts = "QUERY_SUBJECT_MANY_ACCOUNTS",
        QueryFailedBurst = "QUERY_FAILED_BURST",
        QueryPurposeMismatch = "QUERY_PURPOSE_MISMATCH",
        QuerySelfApproved = "QUERY_SELF_APPROVED",
        AccountRepeatPattern = "ACCOUNT_REPEAT_PATTERN",
        QueryByUnrosteredAccount = "QUERY_BY_UNROSTERED_ACCOUNT",
        AccountNoApplication = "ACCOUNT_NO_APPLICATION",
        AccountCreatedBeforeApproval = "ACCOUNT_CREATED_BEFORE_APPROVAL",
        AccountApplicationOtherHolder = "ACCOUNT_APPLICATION_OTHER_HOLDER",
        AccountChangeNotApplied = "ACCOUNT_CHANGE_NOT_APPLIED",
    }
}

/// What a finding code counts toward among the internal audit's duties
/// (point 6(3)'s checklist), beside the totals every code counts in. An
/// exhaustive match: a new code is decided here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DutyCount {
    /// Point 3: a query no approved form explains.
    Unexplained,
    /// Point 5(2): an account held, or a query made, by staff who may
    /// hold none.
    Ineligible,
    /// Point 3: a query for a purpose the agency lacks or its form does
    /// not name.
    Purpose,
    /// Point 5(1)2: the applications register.
    Application,
    /// Point 5(3): a password unchanged too long.
    PasswordStale,
    /// Point 2: the number of officers and chief administrators.
    OfficerCount,
}

impl Code {
    /// The internal audit's duty this code counts toward, if any.
    pub fn duty_count(self) -> Option<DutyCount> {
        use DutyCount::*;
        match self {
            Code::QueryNoRequestForm
            | Code::QueryFormNotApproved
            | Code::QueryApprovedAfterQuery
            | Code::QueryFormExpired => Some(Unexplained),
            Code::AccountIneligibleEmployment | Code::QueryByIneligibleHolder => Some(Ineligible),
            Code::QueryPurposeNotAllowed | Code::QueryPurposeMismatch => Some(Purpose),
            Code::AccountNoApplication
            | Code::AccountCreatedBeforeApproval
            | Code::AccountApplicationOtherHolder
            | Code::AccountChangeNotApplied => Some(Application),
            Code::AccountPasswordStale => Some(PasswordStale),
            Code::AgencyOfficerCount => Some(OfficerCount),
            Code::AccountHolderDeparted
            | Code::AccountHolderTransferred
            | Code::AccountHolderSuspended
            | Code::AccountHolderUnknown
            | Code::AccountIdle
            | Code::AccountNeverUsed
            | Code::AccountDuplicate
            | Code::AccountNotInRoster
            | Code::AccountRemovedFromRoster
            | Code::QueryAfterDeparture
            | Code::QueryByDisabledAccount
            | Code::QuerySelfLookup
            | Code::QueryCoworkerLookup
            | Code::QueryOffHours
            | Code::QueryVolumeSpike
            | Code::QuerySubjectManyAccounts
            | Code::QueryFailedBurst
            | Code::QuerySelfApproved
            | Code::AccountRepeatPattern
            | Code::QueryByUnrosteredAccount => None,
        }
    }

    /// The codes that count toward `duty`.
    pub fn counting_toward(duty: DutyCount) -> Vec<Code> {
        Code::ALL
            .into_iter()
            .filter(|c| c.duty_count() == Some(duty))
            .collect()
    }

    pub fn severity(self) -> Severity {
        self.info().0
    }

    /// Whether the code is about an account (found by the account checks)
    /// or about queries (found by the query checks and their roll-up).
    pub fn scope(self) -> Scope {
        if account::CHECKS.iter().any(|c| c.codes.contains(&self)) {
            Scope::Accounts
        } else {
            Scope::Queries
        }
    }

    /// Whether a finding of this code must reach the unit's ethics unit
    /// (point 6(3)): a critical or high query anomaly.
    pub fn is_serious_query(self) -> bool {
        self.scope() == Scope::Queries && self.severity() <= Severity::High
    }

    /// What the code means, in Traditional Chinese, for reports.
    pub fn description(self) -> &'static str {
        self.info().1
    }

    /// The code's severity and its meaning, in Traditional Chinese.
    fn info(self) -> (Severity, &'static str) {
        use Severity::*;
        match self {
            Code::AccountHolderDeparted => (High, "帳號持有人已離職或退休，帳號仍為啟用"),
            Code::AccountHolderTransferred => (Medium, "帳號持有人已調離所屬機關或調職"),
            Code::AccountHolderSuspended => (Medium, "帳號持有人留職停薪中，帳號仍為啟用"),
            Code::AccountIneligibleEmployment => {
                (High, "帳號持有人為職工、駕駛或臨時人員，不得申請帳號")
            }
            Code::AccountHolderUnknown => (High, "帳號持有人不在人事資料中"),
            Code::AccountIdle => (Medium, "帳號久未使用"),
            Code::AccountNeverUsed => (Medium, "帳號開通後從未查詢"),
            Code::AccountDuplicate => (Medium, "同一人持有多個啟用帳號"),
            Code::AccountPasswordStale => (Low, "密碼逾三個月未變更"),
            Code::AccountNoApplication => {
                (High, "啟用帳號無核定之申請表（第2點、第5點第1款第2目）")
            }
            Code::AccountCreatedBeforeApproval => (High, "帳號於申請表核定前即已開通"),
            Code::AccountApplicationOtherHolder => (High, "帳號核定之申請人非現持有人"),
            Code::AccountChangeNotApplied => (Medium, "持有人調職後未提帳號異動申請"),
            Code::AccountNotInRoster => (High, "查詢紀錄中的帳號不在帳號清冊"),
            Code::AccountRemovedFromRoster => (Low, "帳號已不在最新帳號清冊（較舊清冊仍列）"),
            Code::AgencyOfficerCount => (High, "專責人員或總管理者人數不符規定"),
            Code::QueryNoRequestForm => (High, "查詢無對應之查詢申請紀錄表"),
            Code::QueryFormNotApproved => (High, "查詢申請紀錄表未經主管核可"),
            Code::QueryApprovedAfterQuery => (High, "主管於查詢後始核可（未事前核可）"),
            Code::QueryFormExpired => (Medium, "查詢時紀錄表已逾有效期間"),
            Code::QueryPurposeNotAllowed => (High, "查詢目的非該機關法定職務範圍"),
            Code::QueryAfterDeparture => (Critical, "持有人離職或退休後仍有查詢"),
            Code::QueryByIneligibleHolder => (High, "職工、駕駛或臨時人員進行查詢"),
            Code::QueryByDisabledAccount => (Critical, "帳號停用後仍有查詢"),
            Code::QuerySelfLookup => (High, "查詢本人資料"),
            Code::QueryCoworkerLookup => (Medium, "查詢本府同仁資料且無核可紀錄表"),
            Code::QueryOffHours => (Low, "非上班時間或假日查詢"),
            Code::QueryVolumeSpike => (Medium, "單日查詢量異常暴增"),
            Code::QuerySubjectManyAccounts => (Medium, "同一對象遭多個帳號查詢"),
            Code::QueryFailedBurst => (Low, "一小時內大量查詢失敗"),
            Code::QueryPurposeMismatch => (Medium, "查詢目的與紀錄表所載目的不符"),
            Code::QuerySelfApproved => (High, "紀錄表由查詢者本人核可（非權責主管事前核可）"),
            Code::QueryByUnrosteredAccount => (High, "以不在帳號清冊之帳號查詢"),
            Code::AccountRepeatPattern => (High, "同一帳號出現三種以上查詢異常"),
        }
    }
}

/// The columns every check returns (before [`run`] adds unit and severity
/// and masks the subject).
pub const RAW_FINDING: [&str; 9] = [
    "code",
    "agency_id",
    "account_id",
    "holder_name",
    "subject_id",
    "occurred_at",
    "reason",
    "source_file",
    "source_row",
];

/// The columns of the findings table, in order.
pub const FINDING: [&str; 12] = [
    "code",
    "severity",
    "unit_id",
    "agency_id",
    "account_id",
    "holder_name",
    "subject",
    "occurred_at",
    "reason",
    "source_file",
    "source_row",
    "sort_rank",
];

/// One finding row, built from expressions in [`RAW_FINDING`] order.
#[allow(clippy::too_many_arguments)]
pub fn finding(
    code: Code,
    agency_id: Expr,
    account_id: Expr,
    holder_name: Expr,
    subject_id: Expr,
    occurred_at: Expr,
    reason: Expr,
    source_file: Expr,
    source_row: Expr,
) -> Vec<Expr> {
    vec![
        lit(code.as_str()).alias("code"),
        agency_id.cast(DataType::String).alias("agency_id"),
        account_id.cast(DataType::String).alias("account_id"),
        holder_name.cast(DataType::String).alias("holder_name"),
        subject_id.cast(DataType::String).alias("subject_id"),
        occurred_at
            .cast(DataType::Datetime(TIME_UNIT, None))
            .alias("occurred_at"),
        reason.cast(DataType::String).alias("reason"),
        source_file.cast(DataType::String).alias("source_file"),
        source_row.cast(DataType::Int64).alias("source_row"),
    ]
}

/// A left join that keeps the left frame's row order (polars does not by
/// default, and as-of joins and "first" aggregations depend on order).
pub fn left_keep_order() -> JoinArgs {
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    args
}

/// `e` as the query log's categorical (see
/// [`crate::ingest::parse::LOG_CATEGORICAL`]): a key of a small table cast
/// so that it joins with, or compares to, the log's column.
pub fn as_log(e: Expr) -> Expr {
    e.cast(crate::ingest::parse::categorical())
}

/// `e` as text: a column of the log read where text is needed.
pub fn as_text(e: Expr) -> Expr {
    e.cast(DataType::String)
}

/// Whether `e` is one of `values`.
pub fn one_of(e: Expr, values: Series) -> Expr {
    e.is_in(lit(values).implode(false), false)
}

/// A finding about queries: the agency, account, time and source of the
/// current row (a query, or a group's first-seen query), with `subject`.
pub fn about_queries(code: Code, subject: Expr, reason: Expr) -> Vec<Expr> {
    finding(
        code,
        col("agency_id"),
        col("account_id"),
        null_str(),
        subject,
        col("queried_at"),
        reason,
        col("source_file"),
        col("source_row"),
    )
}

/// `count` plus where a group of queries is first seen: its agency, time
/// and source. Groups are formed over frames sorted on content, so "first"
/// is stable.
pub fn with_first_seen(count: Expr) -> Vec<Expr> {
    vec![
        count,
        col("agency_id").first(),
        col("queried_at").first(),
        col("source_file").first(),
        col("source_row").first(),
    ]
}

pub fn null_str() -> Expr {
    lit(NULL).cast(DataType::String)
}

/// Days since 1970-01-01 (`Int64`) of a date-time column: integer
/// division of its microseconds (local wall time, no zone), where ten
/// million calendar conversions would cost a second.
pub fn day_number(e: Expr) -> Expr {
    const DAY_US: i64 = 86_400_000_000;
    e.to_physical().floor_div(lit(DAY_US))
}

/// `YYYY-MM-DD` of a date or date-time column.
pub fn ymd(e: Expr) -> Expr {
    e.dt().strftime("%Y-%m-%d")
}

/// `YYYY-MM-DD HH:MM:SS` of a date-time column.
pub fn ymd_hms(e: Expr) -> Expr {
    e.dt().strftime("%Y-%m-%d %H:%M:%S")
}

/// Builds a reason sentence from literal pieces and expressions.
pub fn sentence(parts: impl IntoIterator<Item = Expr>) -> Expr {
    let parts: Vec<Expr> = parts.into_iter().collect();
    concat_str(parts, "", true)
}

/// Which family of checks to run: the accounts (as of a day) or the
/// queries (of a period). Which jobs run which is the run layer's
/// business (`run::scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Accounts,
    Queries,
}

/// A check: the codes it can produce, what it needs to give a true
/// answer, and the function that finds them.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub codes: &'static [Code],
    pub needs: &'static [Need],
    pub run: fn(&Ctx) -> PolarsResult<LazyFrame>,
}

/// What a check needs to give a true answer. When a need is not met the
/// check does not run, and the run says it was not checked and why: a
/// check never passes (or fails) for lack of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Every file of the table loaded (a failed roster file would make its
    /// accounts look unknown; a failed log file, used accounts look idle).
    Table(Table),
    /// The optional column, in every file of its table that the run uses.
    Column(Table, &'static str),
    /// Query logs covering the idle window: from `rules.idle_days` before
    /// the review day to within [`LOG_GAP_DAYS`] of it.
    IdleWindow,
    /// A holidays calendar (`rules.holidays`) for every year of the period.
    Calendar,
    /// A request-form register exported no earlier than the last query the
    /// check judges (the period's last day, or the log's last day if the
    /// log ends sooner), when one is loaded: an older one cannot hold the
    /// forms of the last queries. Its date comes from its title rows or
    /// file name, or its modification day where the run accepts that; a
    /// register with no date it can use does not cover.
    FormsCover,
}

/// How far before the review day the query logs may end and idle and
/// never-used accounts still be judged: an export is taken some days after
/// its last day (the daemon's January review has logs to 31 December).
pub const LOG_GAP_DAYS: i64 = 14;

/// Why a check did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotCheckedWhy {
    /// A file of a table the check reads failed to load.
    InputFailed,
    /// A file the check reads lacks the column it needs.
    ColumnAbsent,
    /// The query logs do not cover the window the check judges.
    NotCovered,
    /// No holidays calendar for a year of the period.
    NoCalendar,
    /// No file of a table the check reads is in the inbox: without a
    /// roster every account would look unknown, without an HR list no
    /// holder departed.
    InputMissing,
    /// No file of an optional register (the account applications) is in
    /// the inbox: said, like an absent column, without marking the run's
    /// inputs as failed (a city that keeps no such register yet).
    RegisterMissing,
}

impl NotCheckedWhy {
    /// Whether the run's result is withheld by it (exit status 2, the
    /// warnings in red): not for an absent optional column or register.
    pub fn withholds(self) -> bool {
        !matches!(
            self,
            NotCheckedWhy::ColumnAbsent | NotCheckedWhy::RegisterMissing
        )
    }

    /// For the terminal and logs.
    pub fn phrase(self) -> &'static str {
        match self {
            NotCheckedWhy::InputFailed => "input failed",
            NotCheckedWhy::ColumnAbsent => "column absent",
            NotCheckedWhy::NotCovered => "inputs do not cover it",
            NotCheckedWhy::NoCalendar => "no holidays calendar",
            NotCheckedWhy::InputMissing => "input missing",
            NotCheckedWhy::RegisterMissing => "register not kept",
        }
    }

    /// For reports and mail.
    pub fn label(self) -> &'static str {
        match self {
            NotCheckedWhy::InputFailed => "輸入檔案讀取失敗",
            NotCheckedWhy::ColumnAbsent => "輸入檔案缺少所需欄位",
            NotCheckedWhy::NotCovered => "輸入資料未涵蓋檢核期間",
            NotCheckedWhy::NoCalendar => "行事曆（國定假日）未涵蓋檢核期間",
            NotCheckedWhy::InputMissing => "收件匣無所需之匯出檔",
            NotCheckedWhy::RegisterMissing => "收件匣無此清冊（選用之輸入）",
        }
    }
}

/// A check that did not run: its codes, why, and the input that stopped it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NotChecked {
    pub codes: Vec<&'static str>,
    pub why: NotCheckedWhy,
    /// The file (inbox-relative) or table concerned.
    pub input: String,
    pub column: Option<&'static str>,
    /// What was wrong, in English (the error, or the span found).
    pub detail: String,
    /// The same for the people who read reports and mail, in Traditional
    /// Chinese (an input's own error text is quoted as it is).
    pub detail_zh: String,
}

impl NotChecked {
    /// One line in Traditional Chinese, for the summary, the data-quality
    /// sheet and mail: what the checks look for (their descriptions, not
    /// their codes), why they did not run, and the input.
    pub fn sentence(&self) -> String {
        let codes = self.descriptions().join("、");
        let column = self
            .column
            .map(|c| format!("（欄位 {c}）"))
            .unwrap_or_default();
        format!(
            "未檢核 {codes}：{}，{}{column}；{}",
            self.why.label(),
            self.input,
            self.detail_zh
        )
    }
}

impl NotChecked {
    /// What the withheld checks look for, in Traditional Chinese.
    pub fn descriptions(&self) -> Vec<&'static str> {
        self.codes
            .iter()
            .map(|c| Code::parse(c).map_or(*c, Code::description))
            .collect()
    }
}

/// What the run knows of its inputs, for deciding which checks can run.
/// The default knows of no problem (unit tests on hand-made frames).
#[derive(Debug, Clone, Default)]
pub struct InputState {
    /// Per table: files that failed to load, with the error.
    pub failed: BTreeMap<Table, Vec<(String, String)>>,
    /// Per table: files the run uses and the optional columns they lack.
    pub absent: BTreeMap<Table, Vec<(String, Vec<&'static str>)>>,
    /// The stretches of days the loaded query logs cover without a gap
    /// longer than [`LOG_HOLE_DAYS`] between files, first first, when assessed (empty
    /// inside: no query log at all).
    pub log_span: Option<Vec<(NaiveDate, NaiveDate)>>,
    /// The newest request-form register's day and its file, if any.
    pub forms_dated: Option<(NaiveDate, String, &'static str)>,
    /// Loaded request-form registers with no date the run may use, and
    /// whether that is because their modification time was refused.
    pub forms_undated: Vec<(String, bool)>,
    /// InputFrames no file of which was loaded, when assessed.
    pub missing: BTreeSet<Table>,
}

impl InputState {
    /// From ingest's file records. Roster files count only when they belong
    /// to the snapshot the run uses (`roster_files`, if resolved).
    pub fn from_files(
        files: &[FileRecord],
        roster_files: Option<&[String]>,
        query_log: &DataFrame,
    ) -> PolarsResult<InputState> {
        let mut state = InputState {
            missing: Table::ALL.into_iter().collect(),
            ..InputState::default()
        };
        for f in files {
            if let (Some(t), FileStatus::Loaded | FileStatus::Duplicate { .. }) =
                (f.table, &f.status)
            {
                state.missing.remove(&t);
            }
            let Some(t) = f.table else { continue };
            match &f.status {
                FileStatus::Failed { error } => state
                    .failed
                    .entry(t)
                    .or_default()
                    .push((f.path.clone(), error.clone())),
                FileStatus::Loaded => {
                    match (t, f.snapshot) {
                        (Table::RequestForms, Some(s))
                            if state
                                .forms_dated
                                .as_ref()
                                .is_none_or(|(d, _, _)| s.date > *d) =>
                        {
                            state.forms_dated = Some((s.date, f.path.clone(), s.source.as_str()));
                        }
                        (Table::RequestForms, None) => state
                            .forms_undated
                            .push((f.path.clone(), f.modified_refused)),
                        _ => {}
                    }
                    let used =
                        t != Table::Roster || roster_files.is_none_or(|r| r.contains(&f.path));
                    if used && !f.absent_columns.is_empty() {
                        state
                            .absent
                            .entry(t)
                            .or_default()
                            .push((f.path.clone(), f.absent_columns.clone()));
                    }
                }
                FileStatus::Duplicate { .. } => {}
            }
        }
        state.log_span = Some(log_stretches(query_log)?);
        Ok(state)
    }

    /// Why `check` cannot run on a run over `period` as of `as_of`, if it
    /// cannot: its tables' problems first, then each need's in order.
    fn blockers(
        &self,
        check: &Check,
        config: &Config,
        as_of: NaiveDate,
        period: Option<&Period>,
    ) -> Vec<NotChecked> {
        let mut found = self.table_blockers(check);
        for n in check.needs {
            match *n {
                Need::Table(_) => {}
                Need::Column(t, c) => found.extend(self.column_blockers(t, c)),
                Need::IdleWindow => found.extend(self.idle_window_blocker(config, as_of)),
                Need::FormsCover => found.extend(period.and_then(|p| self.forms_cover_blocker(p))),
                Need::Calendar => found.extend(
                    period
                        .into_iter()
                        .flat_map(|p| calendar_blockers(config, p)),
                ),
            }
        }
        let codes: Vec<&'static str> = check.codes.iter().map(|c| c.as_str()).collect();
        found
            .into_iter()
            .map(|b| NotChecked {
                codes: codes.clone(),
                why: b.why,
                input: b.input,
                column: b.column,
                detail: b.detail,
                detail_zh: b.detail_zh,
            })
            .collect()
    }

    /// The tables `check` needs that no file was loaded for, and the files
    /// of them that failed, each table once in the order first needed.
    fn table_blockers(&self, check: &Check) -> Vec<Blocker> {
        let mut tables: Vec<Table> = Vec::new();
        for n in check.needs {
            if let Need::Table(t) | Need::Column(t, _) = n
                && !tables.contains(t)
            {
                tables.push(*t);
            }
        }
        let mut found = Vec::new();
        for t in tables {
            if self.missing.contains(&t) && !self.failed.contains_key(&t) {
                found.push(Blocker {
                    why: if t == Table::Applications {
                        NotCheckedWhy::RegisterMissing
                    } else {
                        NotCheckedWhy::InputMissing
                    },
                    input: format!("{}/", t.inbox_dir()),
                    column: None,
                    detail: format!("no {} file was loaded from the inbox", t.as_str()),
                    detail_zh: format!("收件匣 {}/ 無已載入之檔案", t.inbox_dir()),
                });
            }
            for (file, error) in self.failed.get(&t).into_iter().flatten() {
                found.push(Blocker {
                    why: NotCheckedWhy::InputFailed,
                    input: file.clone(),
                    column: None,
                    detail: error.clone(),
                    detail_zh: format!(
                        "讀取錯誤：{}",
                        error.strip_prefix(&format!("{file}: ")).unwrap_or(error)
                    ),
                });
            }
        }
        found
    }

    /// The files of table `t` the run uses that lack column `c`.
    fn column_blockers(&self, t: Table, c: &'static str) -> Vec<Blocker> {
        self.absent
            .get(&t)
            .into_iter()
            .flatten()
            .filter(|(_, absent)| absent.contains(&c))
            .map(|(file, _)| Blocker {
                why: NotCheckedWhy::ColumnAbsent,
                input: file.clone(),
                column: Some(c),
                detail: format!("the file has no {c} column"),
                detail_zh: format!("檔案無 {c} 欄位"),
            })
            .collect()
    }

    /// The query logs, when assessed, do not cover the idle window ending
    /// at `as_of` without a hole.
    fn idle_window_blocker(&self, config: &Config, as_of: NaiveDate) -> Option<Blocker> {
        let stretches = self.log_span.as_ref()?;
        let from = as_of - Duration::days(config.rules.idle_days.into());
        let to = as_of - Duration::days(LOG_GAP_DAYS);
        if stretches.iter().any(|(a, b)| *a <= from && *b >= to) {
            return None;
        }
        let (found, found_zh) = if stretches.is_empty() {
            (
                "nowhere (none loaded)".to_owned(),
                "無任何查詢紀錄".to_owned(),
            )
        } else {
            let spans = |sep: &str, joiner: &str| {
                stretches
                    .iter()
                    .map(|(a, b)| format!("{a}{sep}{b}"))
                    .collect::<Vec<_>>()
                    .join(joiner)
            };
            (spans(" to ", ", then "), spans(" 至 ", "、"))
        };
        Some(Blocker {
            why: NotCheckedWhy::NotCovered,
            input: Table::QueryLog.inbox_dir().to_owned() + "/",
            column: None,
            detail: format!(
                "query logs must run from {from} or earlier to {to} or later without {LOG_HOLE_DAYS} days missing between exports; they run {found}"
            ),
            detail_zh: format!(
                "判斷閒置及從未使用須有 {from} 以前至 {to} 以後、中間未缺逾 {LOG_HOLE_DAYS} 日之查詢紀錄；現有紀錄期間為 {found_zh}"
            ),
        })
    }

    /// The request-form registers do not reach the last query judged in
    /// period `p` (the newest is older, or none has a usable date).
    fn forms_cover_blocker(&self, p: &Period) -> Option<Blocker> {
        // The last query the check judges: none, nothing to cover.
        let last_log = self.log_span.iter().flatten().map(|(_, to)| *to).max();
        let last = last_log.map(|d| d.min(p.last_day()))?;
        let (input, detail, detail_zh) = match (&self.forms_dated, self.forms_undated.first()) {
            (Some((day, _, _)), _) if *day >= last => return None,
            (Some((day, file, source)), _) => (
                file.clone(),
                format!(
                    "the newest request-form register is of {day} (date from its {source}); the queries run to {last}, so the later ones would look unexplained"
                ),
                format!(
                    "最新之查詢申請紀錄表清冊日期為 {day}，早於所檢核查詢之末日 {last}，其後之查詢將誤判為無紀錄表；請匯入涵蓋至 {last} 之清冊"
                ),
            ),
            (None, Some((file, refused))) => {
                let (why, why_zh) = if *refused {
                    (
                        "; its modification time is not taken as its date in a sealed audit (rules.accept_modification_dates), since a copy or restore changes it",
                        "；檔案修改日期隨複製、備份而變動，稽核不予採用",
                    )
                } else {
                    ("", "")
                };
                (
                    file.clone(),
                    format!(
                        "the request-form register has no date in its title rows or file name{why}: it cannot be shown to cover the queries to {last}"
                    ),
                    format!(
                        "查詢申請紀錄表清冊之標題列及檔名均未載明製表日期{why_zh}，無從確認涵蓋至 {last} 之查詢；請於標題列註明製表日期（例如「製表日期：115/07/02」）或於檔名加註日期"
                    ),
                )
            }
            (None, None) => return None,
        };
        Some(Blocker {
            why: NotCheckedWhy::NotCovered,
            input,
            column: None,
            detail,
            detail_zh,
        })
    }
}

/// One reason a check cannot run, before it is told the codes it withholds.
struct Blocker {
    why: NotCheckedWhy,
    input: String,
    column: Option<&'static str>,
    detail: String,
    detail_zh: String,
}

/// The years of period `p` a configured holidays file lists no holiday in.
fn calendar_blockers(config: &Config, p: &Period) -> Vec<Blocker> {
    if !config.rules.holidays.configured {
        return Vec::new();
    }
    let known = config.rules.holidays.years();
    let last = (p.end - Duration::seconds(1)).date().year();
    (p.start.date().year()..=last)
        .filter(|y| !known.contains(y))
        .map(|y| Blocker {
            why: NotCheckedWhy::NoCalendar,
            input: "rules.holidays".to_owned(),
            column: None,
            detail: format!("the holidays file lists no holiday in {y}"),
            detail_zh: format!("國定假日檔未列 {y} 年之假日，請補入該年行事曆"),
        })
        .collect()
}

/// Between two query-log files, more days than this without a query is a
/// missing export, not a quiet spell (exports are monthly or longer, and
/// their first and last queries are not their first and last days).
pub const LOG_HOLE_DAYS: i64 = 31;

/// The stretches of days the query log covers: each file's first to last
/// day, merged where they overlap or lie at most [`LOG_HOLE_DAYS`] apart.
fn log_stretches(query_log: &DataFrame) -> PolarsResult<Vec<(NaiveDate, NaiveDate)>> {
    let spans = query_log
        .clone()
        .lazy()
        .group_by([col("source_file")])
        .agg([
            col("queried_at").min().dt().date().alias("from"),
            col("queried_at").max().dt().date().alias("to"),
        ])
        .sort(["from", "to"], SortMultipleOptions::default())
        .collect()?;
    let days = |name: &str| -> PolarsResult<Vec<Option<NaiveDate>>> {
        Ok(spans.column(name)?.date()?.as_date_iter().collect())
    };
    let mut out: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for (a, b) in days("from")?
        .into_iter()
        .zip(days("to")?)
        .filter_map(|(a, b)| a.zip(b))
    {
        match out.last_mut() {
            Some(last) if a <= last.1 + Duration::days(LOG_HOLE_DAYS) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    Ok(out)
}

/// The codes of the checks that need `column` of `table` (and so are not
/// checked when an input lacks it).
pub fn codes_needing(table: Table, column: &str) -> Vec<&'static str> {
    account::CHECKS
        .iter()
        .chain(query::CHECKS)
        .filter(|c| {
            c.needs
                .iter()
                .any(|n| matches!(n, Need::Column(t, k) if *t == table && *k == column))
        })
        .flat_map(|c| c.codes.iter().map(|c| c.as_str()))
        .collect()
}

/// What [`run_with`] returns: the findings of the checks that ran, and the
/// checks that did not.
#[derive(Debug)]
pub struct Checked {
    pub findings: DataFrame,
    pub not_checked: Vec<NotChecked>,
    /// Accounts the checked queries show but the roster lacks, per agency
    /// (see [`Ctx::orphans`]): the data-quality sheet's list.
    pub orphans: DataFrame,
}

impl Checked {
    /// Only what `codes` found or could not check: a run about one duty
    /// (the password check) records and reports nothing else.
    pub fn only(self, codes: &[Code]) -> PolarsResult<Checked> {
        let names = Series::new(
            "codes".into(),
            codes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        );
        let findings = self
            .findings
            .lazy()
            .filter(one_of(col("code"), names))
            .collect()?;
        let not_checked = self
            .not_checked
            .into_iter()
            .filter_map(|mut n| {
                n.codes.retain(|c| codes.iter().any(|k| k.as_str() == *c));
                (!n.codes.is_empty()).then_some(n)
            })
            .collect();
        Ok(Checked {
            findings,
            not_checked,
            orphans: self.orphans.clear(),
        })
    }
}

/// What checks read: the canonical frames, prepared once.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub config: &'a Config,
    /// Account review: the day the review is as of.
    pub as_of: NaiveDate,
    /// Query check: the period whose queries are checked.
    pub period: Option<Period>,
    /// Agencies: `agency_id`, `unit_id`.
    pub agencies: DataFrame,
    /// Allowed `(agency_id, purpose)` pairs.
    pub purposes: DataFrame,
    /// The roster, one row per account, with its holder's HR record and unit.
    pub accounts: DataFrame,
    /// Queries (all for account review, the period's for query check), each
    /// with its account, holder and request-form explanation.
    pub queries: DataFrame,
    /// The request-form register.
    pub forms: DataFrame,
    /// The account applications register.
    pub applications: DataFrame,
    /// Every national ID of city staff (HR), for coworker lookups.
    pub staff_ids: DataFrame,
    /// Holidays and make-up workdays as dates.
    pub holidays: Vec<NaiveDate>,
    pub workdays: Vec<NaiveDate>,
    /// How many parts the work over every query is split into (1, 2, 5 or
    /// 10; see `query::part_count`): the same findings whatever it is.
    pub parts: usize,
}

/// The canonical tables a run works on.
#[derive(Debug, Clone)]
pub struct InputFrames {
    pub query_log: DataFrame,
    pub roster: DataFrame,
    pub hr: DataFrame,
    pub request_forms: DataFrame,
    /// The account applications register (empty without one).
    pub applications: DataFrame,
}

/// Runs the checks of `scope` on inputs with no known problem and returns the
/// findings table (see [`run_with`]).
pub fn run(
    config: &Config,
    tables: InputFrames,
    scope: Scope,
    as_of: NaiveDate,
    period: Option<Period>,
) -> PolarsResult<DataFrame> {
    Ok(run_with(config, tables, scope, as_of, period, &InputState::default())?.findings)
}

/// Runs the checks of `scope` whose needs `inputs` meets and returns the
/// findings table, sorted most severe first, then by code, unit, account,
/// time and source, and the checks that could not run.
pub fn run_with(
    config: &Config,
    tables: InputFrames,
    scope: Scope,
    as_of: NaiveDate,
    period: Option<Period>,
    inputs: &InputState,
) -> PolarsResult<Checked> {
    // Account review looks at every query up to the review day.
    let period = if scope == Scope::Queries {
        period
    } else {
        None
    };
    let started = std::time::Instant::now();
    tracing::info!(memory = %crate::ingest::memory(), "preparing frames");
    let mut cx = Ctx::new(config, tables, as_of, period)?;
    tracing::info!(elapsed = ?started.elapsed(), queries = cx.queries.height(), memory = %crate::ingest::memory(), "frames prepared");
    let checks: Vec<Check> = match scope {
        Scope::Accounts => account::CHECKS.to_vec(),
        Scope::Queries => query::CHECKS.to_vec(),
    };
    let mut not_checked = Vec::new();
    let mut runnable = Vec::new();
    for c in &checks {
        let blocked = inputs.blockers(c, config, as_of, cx.period.as_ref());
        if blocked.is_empty() {
            runnable.push(c);
            continue;
        }
        tracing::warn!(
            code = c.codes[0].as_str(),
            "not checked: {}",
            blocked[0].detail
        );
        not_checked.extend(blocked);
    }
    let check = |c: &&Check| -> PolarsResult<LazyFrame> {
        let started = std::time::Instant::now();
        let found = (c.run)(&cx)?.select(RAW_FINDING.map(col)).collect()?;
        tracing::info!(code = c.codes[0].as_str(), rows = found.height(), elapsed = ?started.elapsed(), memory = %crate::ingest::memory(), "check");
        Ok(found.lazy())
    };
    // Where the queries are worked on at once, checks run two at a time
    // (many have steps on one core); where they are worked on in parts,
    // one after another, so that one check's intermediates are held at a
    // time. The findings come in the checks' order either way.
    let found: Vec<PolarsResult<LazyFrame>> = if cx.parts == 1 {
        two_at_a_time(&runnable, check)
    } else {
        runnable.iter().map(check).collect()
    };
    let parts = found.into_iter().collect::<PolarsResult<Vec<_>>>()?;
    // The queries are read for the last time: freed before the findings
    // are put in order (at fifty million queries, 3 GB they no longer need).
    let orphans = cx.orphans()?;
    cx.queries = DataFrame::empty();
    let raw = if parts.is_empty() {
        empty_raw()
    } else {
        concat(parts, UnionArgs::default())?.collect()?
    };
    let raw = match scope {
        Scope::Queries => {
            let rollup = query::repeat_pattern(&raw)?;
            concat(
                [raw.lazy(), rollup.select(RAW_FINDING.map(col))],
                UnionArgs::default(),
            )?
            .collect()?
        }
        Scope::Accounts => raw,
    };
    not_checked.sort();
    not_checked.dedup();
    Ok(Checked {
        findings: finish(raw.lazy(), &cx)?.collect()?,
        not_checked,
        orphans,
    })
}

/// `run` over `items` on two threads, each taking the next item as it
/// finishes one; the outcomes in `items`' order. Never more than two at
/// once: rayon's work stealing started more while one waited inside
/// polars, and their intermediates together took a ten-million-query
/// check's peak from 1.16 to 1.31 GiB.
fn two_at_a_time<T: Sync, R: Send>(items: &[T], run: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let lane = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return done;
            };
            done.push((i, run(item)));
        }
    };
    let mut out: Vec<Option<R>> = items.iter().map(|_| None).collect();
    std::thread::scope(|s| {
        let lanes = [s.spawn(lane), s.spawn(lane)];
        for l in lanes {
            let done = l.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            for (i, r) in done {
                out[i] = Some(r);
            }
        }
    });
    out.into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

fn empty_raw() -> DataFrame {
    let mut schema = Schema::default();
    for c in RAW_FINDING {
        let dt = match c {
            "occurred_at" => DataType::Datetime(TIME_UNIT, None),
            "source_row" => DataType::Int64,
            _ => DataType::String,
        };
        schema.with_column(c.into(), dt);
    }
    DataFrame::empty_with_schema(&schema)
}

/// Adds unit and severity, masks subjects, sorts.
fn finish(raw: LazyFrame, cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let severities: Vec<&str> = Code::ALL.iter().map(|c| c.severity().name()).collect();
    let ranks: Vec<u32> = Code::ALL.iter().map(|c| c.severity() as u32).collect();
    let severity = col("code").replace_strict(
        lit(Series::new("c".into(), codes.clone())),
        lit(Series::new("s".into(), severities)),
        None::<Expr>,
        Some(DataType::String),
    );
    let rank = col("code").replace_strict(
        lit(Series::new("c".into(), codes)),
        lit(Series::new("r".into(), ranks)),
        None::<Expr>,
        Some(DataType::UInt32),
    );
    let masked = when(col("subject_id").is_null())
        .then(null_str())
        .otherwise(crate::privacy::mask_national_id_expr(col("subject_id")));
    // Holder names come from the roster here, once, for the few finding rows.
    let holders = cx
        .accounts
        .clone()
        .lazy()
        .select([col("account_id"), col("holder_name")]);
    Ok(raw
        .drop(cols(["holder_name"]))
        .join(
            holders,
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            cx.agencies.clone().lazy(),
            [col("agency_id")],
            [col("agency_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            severity.alias("severity"),
            rank.alias("sort_rank"),
            masked.alias("subject"),
        ])
        .sort_by_exprs(
            [
                col("sort_rank"),
                col("code"),
                col("unit_id"),
                col("agency_id"),
                col("account_id"),
                col("occurred_at"),
                col("source_file"),
                col("source_row"),
                col("subject"),
                col("reason"),
            ],
            SortMultipleOptions::default()
                .with_nulls_last(true)
                .with_maintain_order(true),
        )
        .select(FINDING[..11].iter().map(|c| col(*c)).collect::<Vec<_>>()))
}

impl<'a> Ctx<'a> {
    /// The queries whose account the roster lacks.
    pub fn not_in_roster(&self) -> LazyFrame {
        self.queries.clone().lazy().filter(col("in_roster").not())
    }

    /// Accounts the queries show but the roster lacks, per agency:
    /// `agency_id, account_id, queries, first, last`. ACCOUNT_NOT_IN_ROSTER
    /// reads the same rows ([`Ctx::not_in_roster`]).
    pub fn orphans(&self) -> PolarsResult<DataFrame> {
        self.not_in_roster()
            .group_by([
                as_text(col("agency_id")).alias("agency_id"),
                as_text(col("account_id")).alias("account_id"),
            ])
            .agg([
                len().alias("queries"),
                col("queried_at").min().alias("first"),
                col("queried_at").max().alias("last"),
            ])
            .sort(["agency_id", "account_id"], SortMultipleOptions::default())
            .collect()
    }

    /// The frames every check reads: agencies, the roster's accounts with
    /// their holders' HR records, the queries judged with their forms.
    pub fn new(
        config: &'a Config,
        t: InputFrames,
        as_of: NaiveDate,
        period: Option<Period>,
    ) -> PolarsResult<Ctx<'a>> {
        let parts = query::part_count(t.query_log.height());
        Ctx::in_parts(config, t, as_of, period, parts)
    }

    /// [`Ctx::new`] with the work over every query split into `parts`.
    pub(crate) fn in_parts(
        config: &'a Config,
        t: InputFrames,
        as_of: NaiveDate,
        period: Option<Period>,
        parts: usize,
    ) -> PolarsResult<Ctx<'a>> {
        let (agencies, purposes) = agency_frames(config)?;
        // HR lists are read as of the review day, or the period's last day.
        let hr_day = match &period {
            Some(p) => (p.end - Duration::seconds(1)).date(),
            None => as_of,
        };
        let hr = hr_as_of(&t.hr, hr_day, &agencies);
        let accounts = roster_accounts(&t.roster, &agencies, hr)?;
        let in_time_order = log_in_time_order(&t.query_log)?;
        let queries = queries_judged(t.query_log, as_of, period.as_ref())?;
        let queries = query::explain(
            queries,
            in_time_order,
            parts,
            &accounts,
            &t.request_forms,
            config,
        )?
        .collect()?;
        Ok(Ctx {
            config,
            as_of,
            period,
            agencies,
            purposes,
            accounts,
            queries,
            staff_ids: staff_ids(&t.hr)?,
            forms: t.request_forms,
            applications: t.applications,
            holidays: config.rules.holidays.holidays.keys().copied().collect(),
            workdays: config.rules.holidays.workdays.keys().copied().collect(),
            parts,
        })
    }
}

/// The configured agencies (`agency_id, unit_id`) and the purposes each
/// may query for (`agency_id, purpose`).
fn agency_frames(config: &Config) -> PolarsResult<(DataFrame, DataFrame)> {
    let ids: Vec<&str> = config.agencies.iter().map(|a| a.id.as_str()).collect();
    let units: Vec<&str> = config.agencies.iter().map(|a| a.unit.as_str()).collect();
    let agencies = df!("agency_id" => ids, "unit_id" => units)?;
    let (pa, pp): (Vec<&str>, Vec<&str>) = config
        .agencies
        .iter()
        .flat_map(|a| a.purposes.iter().map(move |p| (a.id.as_str(), p.as_str())))
        .unzip();
    let purposes = df!("agency_id" => pa, "purpose" => pp)?;
    Ok((agencies, purposes))
}

/// Each person's HR record on `day`, as `hr_…` columns with the unit of
/// their agency. HR lists are change lists: per person, the newest record
/// effective on or before the day. Ties on the day are broken on content,
/// so the files' names and order do not matter.
fn hr_as_of(hr: &DataFrame, day: NaiveDate, agencies: &DataFrame) -> LazyFrame {
    hr.clone()
        .lazy()
        .filter(col("effective_date").lt_eq(lit(day)))
        .sort(
            ["effective_date", "status", "agency_id", "employment_type"],
            SortMultipleOptions::default()
                .with_order_descending_multi([true, false, false, false])
                .with_nulls_last(true)
                .with_maintain_order(true),
        )
        .unique_stable(Some(cols(["person_id"])), UniqueKeepStrategy::First)
        .select([
            col("person_id"),
            lit(true).alias("hr_present"),
            col("name").alias("hr_name"),
            col("agency_id").alias("hr_agency_id"),
            col("employment_type").alias("hr_employment"),
            col("status").alias("hr_status"),
            col("effective_date").alias("hr_effective"),
            col("national_id").alias("hr_national_id"),
        ])
        .join(
            agencies.clone().lazy().select([
                col("agency_id").alias("hr_agency_id"),
                col("unit_id").alias("hr_unit_id"),
            ]),
            [col("hr_agency_id")],
            [col("hr_agency_id")],
            JoinArgs::new(JoinType::Left),
        )
}

/// The roster's accounts, once each, with their agency's unit and their
/// holder's HR record (`hr_present` false where HR does not know them).
fn roster_accounts(
    roster: &DataFrame,
    agencies: &DataFrame,
    hr: LazyFrame,
) -> PolarsResult<DataFrame> {
    let mut lazy = roster.clone().lazy();
    if roster.column("removed").is_err() {
        lazy = lazy.with_column(lit(false).alias("removed"));
    }
    if roster.column(crate::ingest::SNAPSHOT_DATE).is_err() {
        lazy = lazy.with_column(
            lit(NULL)
                .cast(DataType::Date)
                .alias(crate::ingest::SNAPSHOT_DATE),
        );
    }
    lazy.unique_stable(Some(cols(["account_id"])), UniqueKeepStrategy::First)
        .join(
            agencies.clone().lazy(),
            [col("agency_id")],
            [col("agency_id")],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            hr,
            [col("person_id")],
            [col("person_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("hr_present").fill_null(lit(false)))
        .collect()
}

/// Whether the log is already in time order. Exports usually are; then
/// the sort that the as-of joins need (and its copy of the whole log) is
/// skipped.
fn log_in_time_order(log: &DataFrame) -> PolarsResult<bool> {
    let times = log.column("queried_at")?.as_materialized_series();
    Ok(times.null_count() == 0 && times.is_sorted(SortOptions::default())?)
}

/// The queries a run judges: those of `period`, or without one those up
/// to the end of `as_of`.
fn queries_judged(
    log: DataFrame,
    as_of: NaiveDate,
    period: Option<&Period>,
) -> PolarsResult<LazyFrame> {
    Ok(match period {
        Some(p) if log_inside(&log, p)? => log.lazy(),
        Some(p) => log.lazy().filter(p.holds_query()),
        None => {
            let end: NaiveDateTime = as_of
                .succ_opt()
                .unwrap_or(as_of)
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default();
            log.lazy().filter(col("queried_at").lt(lit(end)))
        }
    })
}

/// Whether every query of the log lies inside `p`. A log exported for the
/// period does: then the filter (a copy of the whole log) is skipped.
fn log_inside(log: &DataFrame, p: &Period) -> PolarsResult<bool> {
    let times = log
        .column("queried_at")?
        .as_materialized_series()
        .to_physical_repr()
        .into_owned();
    let (Some(min), Some(max)) = (times.min::<i64>()?, times.max::<i64>()?) else {
        return Ok(times.is_empty());
    };
    let us = |d: NaiveDateTime| d.and_utc().timestamp_micros();
    Ok(times.null_count() == 0 && min >= us(p.start) && max < us(p.end))
}

/// The national IDs of staff (`subject_id`, `is_staff`), for lookups of
/// coworkers.
fn staff_ids(hr: &DataFrame) -> PolarsResult<DataFrame> {
    hr.clone()
        .lazy()
        .filter(col("national_id").is_not_null())
        .select([
            col("national_id").alias("subject_id"),
            lit(true).alias("is_staff"),
        ])
        .unique_stable(None, UniqueKeepStrategy::First)
        .collect()
}

#[cfg(test)]
mod tests;
