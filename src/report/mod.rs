//! Excel reports: the workbooks officers read, fill in and file.
//!
//! Two halves. [`build`] turns a run's outputs (findings, sample, roster,
//! manifest, input records) into one [`ReportModel`] per requesting agency
//! and one for the Health Bureau — plain data, each holding only rows of
//! its own unit. [`render`] turns a model into `.xlsx` bytes and does
//! nothing else: no file, no clock, no frame.
//!
//! Every text cell from input data is written as a string; one that Excel
//! could read as a formula (`=`, `+`, `-`, `@`, tab, CR) also gets Excel's
//! quote prefix (CWE-1236). Subject IDs arrive masked from `build`.

pub mod build;
pub mod layout;
pub(crate) mod sheets;

pub use sheets::{
    CHIEF_FILLS, CHIEF_LABEL, REVIEW_LABEL, RUN_ID_LABEL, SAMPLE_DIGEST_LABEL, SECOND_REVIEW,
    UNIT_LABEL, seed_source, unit_cell, unit_id_in,
};

use crate::job::Job;
use crate::vocab::text_enum;
use chrono::NaiveDateTime;

/// What a workbook reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// Point 6(1): sheets summary, sample worksheet, query findings, data
    /// quality, sampling record.
    SampleAudit,
    /// Point 6(2): summary, account review, data quality.
    AccountReview,
    /// Point 5(3): the quarterly password check (密碼定期更換): a notice
    /// of the accounts whose password is overdue, to the units that have
    /// any; nothing to return.
    PasswordCheck,
    /// Query explanation of a period: summary, query findings, data quality.
    QueryCheck,
    /// Point 6(3): the yearly internal audit, per unit, with pre-filled
    /// evidence for the auditor to assess.
    InternalAudit,
    /// Point 4: the Health Bureau's external audit: the seeded draw of units
    /// to spot-check and the review of officer accounts.
    ExternalAudit,
}

impl ReportKind {
    /// The workbook a job makes, if it makes one (the password check is
    /// an account review).
    pub fn of(job: Job) -> Option<ReportKind> {
        Some(match job {
            Job::SampleAudit => ReportKind::SampleAudit,
            Job::AccountReview => ReportKind::AccountReview,
            Job::PasswordCheck => ReportKind::PasswordCheck,
            Job::QueryCheck => ReportKind::QueryCheck,
            Job::InternalAudit => ReportKind::InternalAudit,
            Job::ExternalAudit => ReportKind::ExternalAudit,
            Job::Retention | Job::Heartbeat => return None,
        })
    }

    /// The job whose workbook this is; its name is the templates' stem.
    pub fn job(self) -> Job {
        match self {
            ReportKind::SampleAudit => Job::SampleAudit,
            ReportKind::AccountReview => Job::AccountReview,
            ReportKind::PasswordCheck => Job::PasswordCheck,
            ReportKind::QueryCheck => Job::QueryCheck,
            ReportKind::InternalAudit => Job::InternalAudit,
            ReportKind::ExternalAudit => Job::ExternalAudit,
        }
    }

    /// Whether the kind's workbooks show the query findings (異常查詢):
    /// exhaustive, so a new kind says.
    pub fn shows_queries(self) -> bool {
        match self {
            ReportKind::SampleAudit | ReportKind::QueryCheck | ReportKind::InternalAudit => true,
            ReportKind::AccountReview | ReportKind::PasswordCheck | ReportKind::ExternalAudit => {
                false
            }
        }
    }

    /// Traditional Chinese name, as in subjects and titles.
    pub const fn title(self) -> &'static str {
        match self {
            ReportKind::SampleAudit => "抽查工作底稿",
            ReportKind::AccountReview => "帳號清查",
            ReportKind::PasswordCheck => "密碼定期更換",
            ReportKind::QueryCheck => "查詢稽核",
            ReportKind::InternalAudit => "內部稽核",
            ReportKind::ExternalAudit => "外部稽核",
        }
    }

    /// The rule each kind answers.
    pub fn rule(self) -> &'static str {
        match self {
            ReportKind::SampleAudit => {
                "管理要點第六點第一款：每半年抽查所屬使用帳號至少百分之二十，每帳號至少十筆查詢紀錄"
            }
            ReportKind::AccountReview => {
                "管理要點第六點第二款、第五點第一款第三目及第三款：每年清查帳號，由專責人員廢止重複、閒置、職務調整、離職及退休者之帳號，密碼至少每三個月變更"
            }
            ReportKind::QueryCheck => {
                "管理要點第三點、第五點第二款：查詢應經主管事前核可並填具查詢申請紀錄表"
            }
            ReportKind::PasswordCheck => {
                "管理要點第五點第三款：專責人員及業務需求人員應每三個月定期更改密碼"
            }
            ReportKind::InternalAudit => {
                "管理要點第六點第三款：每年至少辦理一次內部稽核，異常事項會同政風單位調查並作成紀錄"
            }
            ReportKind::ExternalAudit => {
                "管理要點第四點：衛生局辦理各機關外部稽核，並每年至少清查專責人員帳號一次"
            }
        }
    }
}

/// A cell value. Text is always written as a string, never a formula.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    /// Local date-time, written as a real Excel date `yyyy/mm/dd hh:mm`.
    Time(NaiveDateTime),
}

impl Cell {
    /// The text of a text cell.
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<Option<&str>> for Cell {
    fn from(s: Option<&str>) -> Cell {
        s.map_or(Cell::Empty, Cell::from)
    }
}

impl From<i64> for Cell {
    fn from(v: i64) -> Cell {
        Cell::Int(v)
    }
}

impl From<Option<NaiveDateTime>> for Cell {
    fn from(t: Option<NaiveDateTime>) -> Cell {
        t.map_or(Cell::Empty, Cell::Time)
    }
}

/// A table of a sheet: headers and rows. Its rows belong to one unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SheetTable {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// A seed ceremony, as the workbooks and mails show it.
#[derive(Debug, Clone, PartialEq)]
pub struct CeremonyNote {
    /// When the population commitment was mailed.
    pub committed_at: String,
    pub seed_given_at: String,
    pub seed_given_by: String,
    /// `command`, `inbox` or `os-fallback`.
    pub via: String,
}

impl SampleSection {
    /// How the seed came, in words: a ceremony's seed, or its OS
    /// fallback, is said to be one.
    /// A seed given by hand is called public only when the population
    /// was frozen before it (the manifest's `seed_postdates_population`
    /// says the same): the words must not claim more than the evidence.
    pub fn source_text(&self) -> String {
        match (
            self.ceremony.as_ref().map(|c| c.via.as_str()),
            &self.frozen_at,
        ) {
            (Some("os-fallback"), _) => "系統亂數產生，抽籤儀式等候種子逾時之備援".into(),
            (Some(_), _) => "抽籤儀式之公開種子，母體承諾後登錄".into(),
            (None, None) if self.seed_source == "given" => {
                "抽籤時提供，抽籤前未凍結公告母體".into()
            }
            (None, _) => seed_source(&self.seed_source).into(),
        }
    }

    /// The seed line of a mail: the seed, how it came, and the
    /// commitment's time where there was one.
    pub fn seed_line(&self) -> String {
        let mut line = format!("{}（{}", self.seed, self.source_text());
        if let Some(c) = &self.ceremony {
            line.push_str(&format!(
                "；母體承諾 {} 寄出，種子 {} 登錄",
                c.committed_at, c.seed_given_at
            ));
        }
        line.push('）');
        line
    }
}

/// A row of the sample worksheet: the record and what the tool already
/// knows about it; the auditor's columns are added by the renderer.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSection {
    pub spec_version: String,
    pub seed: String,
    pub seed_source: String,
    pub draw_number: u32,
    pub drawn_at: String,
    pub frozen_at: Option<String>,
    /// The daemon's seed ceremony, when the seed came by one.
    pub ceremony: Option<CeremonyNote>,
    pub period_start: String,
    pub period_end: String,
    pub timezone: String,
    pub percent: u32,
    pub per_account: u32,
    pub population_records: u64,
    /// The unit's records in the population (a unit's workbook).
    pub unit_population_records: Option<u64>,
    pub population_digest: String,
    pub sample_digest: String,
    /// `機關, 母體筆數 M, 使用中帳號 N, 抽樣帳號 n`.
    pub strata: SheetTable,
    /// `檔案, 位元組, 列數, SHA-256`.
    pub inputs: SheetTable,
    /// The sampled records of the unit.
    pub worksheet: SheetTable,
}

/// Everything one workbook shows: what every workbook has (its header,
/// summary figures, inputs and charts), and the [`Document`] of its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportModel {
    pub kind: ReportKind,
    /// The requesting agency the workbook is for (the Health Bureau for the
    /// city-wide one).
    pub unit_id: String,
    pub unit_name: String,
    pub period_id: String,
    /// E.g. `2026年上半年`.
    pub period_label: String,
    pub run_id: String,
    pub generated_at: NaiveDateTime,
    /// What the recipient must do, and by when.
    pub actions: Vec<String>,
    /// Findings by severity: `嚴重度, 件數`.
    pub by_severity: SheetTable,
    /// Findings by code: `代碼, 說明, 嚴重度, 件數`.
    pub by_code: SheetTable,
    /// Chart data: findings per agency and severity (`機關, 嚴重, 高, 中, 低`).
    pub severity_by_agency: SheetTable,
    /// Chart data: queries per month (`月份, <agency>…`).
    pub queries_by_month: SheetTable,
    /// Whether the query findings hold a critical or high anomaly (the
    /// ethics unit is then sent the workbook, point 6(3)).
    pub serious: bool,
    /// Inputs: `檔案, 表別, 編碼, 狀態, 載入, 剔除, 略過, SHA-256`.
    pub files: SheetTable,
    /// Accounts the query log shows but the roster lacks (data quality).
    pub orphans: Option<SheetTable>,
    /// The evidence chain's head when the workbook was made (`第 N 筆
    /// <16 hex>`): a copy outside the server of what the archive was.
    pub chain_head: Option<String>,
    /// Notes shown on the summary (e.g. a second draw).
    pub notes: Vec<String>,
    /// Shown first on the summary, in red, and at the top of the mail:
    /// checks withheld because their inputs failed.
    pub warnings: Vec<String>,
    /// Checks that did not run (data-quality sheet).
    pub not_checked: SheetTable,
    /// One line on the inputs: files used and failed, rows rejected.
    pub quality: String,
    /// The sheets only this kind of workbook has.
    pub document: Document,
    /// A unit's workbook: the token that binds its return to this run and
    /// unit (`worksheet::return_token`), kept in the workbook's
    /// properties; set when the run writes it.
    pub return_token: Option<String>,
}

/// What a workbook is, with the sheets its kind has and no other: each
/// kind its own type, so a sheet cannot be missing from the workbook that
/// needs it nor appear in one that does not, and the renderer and the
/// mail match on every kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A unit's sample audit (6(1)): the worksheet the officer fills in,
    /// and what its query findings ask.
    SampleAudit {
        sample: SampleSection,
        queries: Queries,
    },
    /// The rows of a unit's sample that are its officers' own accounts,
    /// for a reviewer other than the officer.
    SecondReview {
        sample: SampleSection,
        review: SecondReview,
    },
    /// A unit's query check: what its query findings ask.
    QueryCheck { queries: Queries },
    /// A unit's account review (5(1)3, 6(2)): its roster, one decision per
    /// account.
    AccountReview { accounts: SheetTable },
    /// The password check (5(3)): the unit's overdue accounts only.
    PasswordCheck { stale_passwords: SheetTable },
    /// A unit's internal audit (6(3)): the evidence to assess, the query
    /// findings not asked before, and those an earlier workbook asked.
    InternalAudit {
        evidence: SheetTable,
        queries: Queries,
        asked_before: Option<SheetTable>,
    },
    /// The Health Bureau's city-wide workbook of any kind.
    CityWide(Box<CityWide>),
    /// Point 4(5): the chief administrator's yearly review of the officer
    /// accounts, one decision per account, returned.
    OfficerReview { accounts: SheetTable },
    /// Points 4(2), 6(4): the chief administrator's record of the external
    /// audit of one drawn unit, pre-filled from the archive, returned.
    ExternalRecord { record: SheetTable },
}

/// What a unit's query findings ask: one row per decision (異常查詢), and
/// the queries behind the rolled-up rows (異常查詢明細, to read).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Queries {
    pub findings: SheetTable,
    pub details: Option<SheetTable>,
    /// Per kind of finding past what 異常查詢 lists
    /// ([`build::ROWS_SHOWN_PER_CODE`]): how many more, and where they are,
    /// in a sentence the sheet's title carries. Empty almost always.
    pub not_listed: Vec<String>,
}

/// The city-wide workbook: every unit's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct CityWide {
    /// One row per unit.
    pub units: SheetTable,
    /// What runs asked of units and where each stands (回收狀況).
    pub collection: Option<SheetTable>,
    /// The external audit: the units drawn, with tickets.
    pub selection: Option<SheetTable>,
    /// Findings rolled up by account, the most serious first, each with
    /// the next action (the Health Bureau's short list).
    pub by_account: SheetTable,
    /// The kinds that check queries: every unit's query findings.
    pub queries: Option<Queries>,
    /// Rejected rows (city-wide only: a rejected row cannot be placed in
    /// a unit).
    pub rejects: SheetTable,
    /// The sample audit: the draw's record, every unit's strata.
    pub sample: Option<SampleSection>,
}

text_enum! {
    /// The name of a sheet, said once: the renderer names its sheets by it
    /// and `worksheet` reads a returned workbook's sheets by it. The sheets a
    /// person fills in that have a [`layout::Layout`] of their own (the
    /// investigation and follow-up records) take their name from it.
    SheetName("sheet") {
        /// 摘要: every workbook's first sheet, whose labels name the run and unit.
        Summary = "摘要",
        /// 抽查工作底稿 ([`layout::SAMPLE_WORKSHEET`]).
        SampleWorksheet = layout::SAMPLE_WORKSHEET.sheet,
        Units = "各單位",
        Collection = "回收狀況",
        AccountReview = "帳號清查",
        /// The city-wide review of officer accounts.
        OfficerAccounts = "專責人員帳號",
        StalePasswords = "密碼逾期帳號",
        InternalAudit = "內部稽核",
        /// The chief administrator's record of one unit's external audit.
        ExternalRecord = EXTERNAL_RECORD_TITLE,
        ExternalSelection = "外部稽核抽選",
        ByAccount = "帳號彙整",
        /// 異常查詢: query findings, and what a unit did about each.
        Queries = "異常查詢",
        AskedBefore = "已列管異常查詢",
        QueryDetails = "異常查詢明細",
        Rejects = "剔除資料列",
        DataQuality = "資料品質",
        /// Accounts the query log shows but the roster lacks.
        Orphans = "清冊外帳號",
        SamplingRecord = "抽樣資訊",
        /// The numbers behind the summary's charts.
        ChartData = "圖表資料",
    }
}

/// The title of the chief administrator's review of officer accounts.
pub const OFFICER_REVIEW_TITLE: &str = "專責人員帳號清查";

/// The title of the chief administrator's record of an external audit.
pub const EXTERNAL_RECORD_TITLE: &str = "外部稽核紀錄";

/// The workbook property that carries a unit's return token
/// (`worksheet::return_token`).
pub const TOKEN_PROPERTY: &str = "webir_return_token";

/// What follows a unit's id in the key of its second review (its
/// workbook, due item and return): `KPB:review`.
const REVIEW_SUFFIX: &str = ":review";

/// The key of `unit`'s second review.
pub fn review_key(unit: &str) -> String {
    format!("{unit}{REVIEW_SUFFIX}")
}

/// What follows a unit's id in the key of a workbook the chief
/// administrator fills in about it (its due item and return): `DSM:chief`.
const CHIEF_SUFFIX: &str = ":chief";

/// The key of the chief administrator's workbook about `unit`.
pub fn chief_key(unit: &str) -> String {
    format!("{unit}{CHIEF_SUFFIX}")
}

/// Whether `key` is of a workbook the chief administrator fills in.
pub fn is_chief_key(key: &str) -> bool {
    key.ends_with(CHIEF_SUFFIX)
}

/// The unit a due item's or a return's key is about, and whether it is
/// someone's other than the unit's officer: its second review, or the
/// chief administrator's workbook about it.
pub fn unit_of_key(key: &str) -> (&str, bool) {
    match key
        .strip_suffix(REVIEW_SUFFIX)
        .or_else(|| key.strip_suffix(CHIEF_SUFFIX))
    {
        Some(unit) => (unit, true),
        None => (key, false),
    }
}

impl ReportModel {
    /// The key the workbook is filed, mailed, chased and returned under:
    /// its unit's id, or the unit's second review's.
    pub fn key(&self) -> String {
        if self.second_review().is_some() {
            review_key(&self.unit_id)
        } else if self.chief_document().is_some() {
            chief_key(&self.unit_id)
        } else {
            self.unit_id.clone()
        }
    }

    /// The rule the workbook serves, as its summary and mail cite it.
    pub fn rule(&self) -> &'static str {
        match &self.document {
            Document::OfficerReview { .. } => {
                "管理要點第四點第五款：衛生局每年至少清查資訊需求機關專責人員帳號一次，並更新異動之帳號及權限"
            }
            Document::ExternalRecord { .. } => {
                "管理要點第四點第二款、第六點第四款：衛生局外部稽核各機關是否確實辦理資料安全管制作業及稽核管制作業，受稽核機關備妥業務需求人員清冊及稽核資料"
            }
            _ => self.kind.rule(),
        }
    }

    /// The name of a workbook the chief administrator fills in and
    /// returns (its summary's title says it), if it is one.
    pub fn chief_document(&self) -> Option<&'static str> {
        match &self.document {
            Document::OfficerReview { .. } => Some(OFFICER_REVIEW_TITLE),
            Document::ExternalRecord { .. } => Some(EXTERNAL_RECORD_TITLE),
            _ => None,
        }
    }

    /// Whether it is the Health Bureau's city-wide workbook.
    pub fn city_wide(&self) -> bool {
        matches!(self.document, Document::CityWide(_))
    }

    /// What a second review is about, if it is one.
    pub fn second_review(&self) -> Option<&SecondReview> {
        match &self.document {
            Document::SecondReview { review, .. } => Some(review),
            _ => None,
        }
    }

    /// The sample (a unit's worksheet, or the city-wide draw's record).
    pub fn sample(&self) -> Option<&SampleSection> {
        match &self.document {
            Document::SampleAudit { sample, .. } | Document::SecondReview { sample, .. } => {
                Some(sample)
            }
            Document::CityWide(c) => c.sample.as_ref(),
            Document::QueryCheck { .. }
            | Document::AccountReview { .. }
            | Document::PasswordCheck { .. }
            | Document::InternalAudit { .. }
            | Document::OfficerReview { .. }
            | Document::ExternalRecord { .. } => None,
        }
    }

    /// The query findings it lists (異常查詢).
    pub fn queries(&self) -> Option<&Queries> {
        match &self.document {
            Document::SampleAudit { queries, .. }
            | Document::QueryCheck { queries }
            | Document::InternalAudit { queries, .. } => Some(queries),
            Document::CityWide(c) => c.queries.as_ref(),
            Document::SecondReview { .. }
            | Document::AccountReview { .. }
            | Document::PasswordCheck { .. }
            | Document::OfficerReview { .. }
            | Document::ExternalRecord { .. } => None,
        }
    }
}

/// What a second-review workbook is about.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondReview {
    /// The officers' own accounts it holds.
    pub accounts: Vec<String>,
    /// Who reviews them (政風單位, 衛生局總管理者).
    pub reviewer: String,
}

/// The investigation record (point 6(3)) of a unit's confirmed anomalies:
/// a summary naming the run and the unit (as every workbook that comes
/// back), and one row per anomaly with the columns to fill in.
#[derive(Debug)]
pub struct Investigation<'a> {
    /// The record's layout: a sample audit's anomalies or an internal
    /// audit's duties found 不符合.
    pub layout: &'static layout::Layout,
    /// Its kind, as the summary's title names it (a return is told by it).
    pub title: &'static str,
    /// What to do, on the summary.
    pub todo: String,
    pub unit_id: &'a str,
    pub unit_name: &'a str,
    pub run_id: &'a str,
    pub period_label: &'a str,
    pub due_on: &'a str,
    /// Per row: the tool's columns of `layout` after 序號.
    pub rows: Vec<Vec<String>>,
    /// The token binding its return to the run and unit.
    pub return_token: String,
}

/// Renders the investigation record.
pub fn render_investigation(i: &Investigation<'_>) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    sheets::investigation(i)
}

impl ReportModel {
    /// Whether the workbook asks the unit to fill something in and send
    /// it back: rows on the sheet it is to complete. A unit with nothing
    /// sampled, no account or no finding is not chased for an empty sheet.
    pub fn asks_something(&self) -> bool {
        match &self.document {
            Document::SampleAudit { sample, .. } | Document::SecondReview { sample, .. } => {
                !sample.worksheet.rows.is_empty()
            }
            Document::AccountReview { accounts } | Document::OfficerReview { accounts } => {
                !accounts.rows.is_empty()
            }
            Document::ExternalRecord { record } => !record.rows.is_empty(),
            // A notice: the holders change their passwords; the next
            // quarter's check sees whether they did.
            Document::PasswordCheck { .. } => false,
            Document::InternalAudit { evidence, .. } => !evidence.rows.is_empty(),
            Document::QueryCheck { queries } => !queries.findings.rows.is_empty(),
            // The Health Bureau's own: what it supervises is chased unit
            // by unit.
            Document::CityWide(_) => false,
        }
    }
}

/// Renders a workbook.
pub fn render(model: &ReportModel) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    sheets::render(model)
}

/// `2026H1` → `2026年上半年` (ROC year too for officers: `115年上半年`).
pub fn period_label(id: &str) -> String {
    if let Some(day) = crate::period::RunPeriod::parse(id).and_then(|p| p.as_of()) {
        return format!("基準日 {day}");
    }
    let (year, rest) = id.split_at(id.len().min(4));
    let Ok(y) = year.parse::<i32>() else {
        return id.to_owned();
    };
    let part = match rest {
        "" => "全年",
        "H1" => "上半年",
        "H2" => "下半年",
        "Q1" => "第一季",
        "Q2" => "第二季",
        "Q3" => "第三季",
        "Q4" => "第四季",
        _ => return id.to_owned(),
    };
    format!("{y}年{part}（民國{}年）", y - 1911)
}

/// Display width of `s` in Excel column units: full-width characters
/// count two.
pub fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            if (0x1100..=0x115F).contains(&u)
                || (0x2E80..=0xA4CF).contains(&u)
                || (0xAC00..=0xD7A3).contains(&u)
                || (0xF900..=0xFAFF).contains(&u)
                || (0xFE30..=0xFE4F).contains(&u)
                || (0xFF00..=0xFF60).contains(&u)
                || (0xFFE0..=0xFFE6).contains(&u)
                || u >= 0x20000
            {
                2
            } else {
                1
            }
        })
        .sum()
}

/// Whether Excel could take `s` for a formula (CWE-1236).
pub fn looks_like_formula(s: &str) -> bool {
    s.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

#[cfg(test)]
mod tests;
