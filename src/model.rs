//! The canonical data model: the five tables every later stage works on, their
//! columns, and the controlled vocabularies (purposes, roles, statuses) with
//! the spellings exports use for them.
//!
//! This module is pure description. `ingest` reads it to map headers and
//! parse cells; `config` reads it to validate purpose codes and column
//! aliases. Nothing here touches a file or a frame.

use crate::vocab::text_enum;

text_enum! {
    /// One of the five canonical tables, named as the config
    /// (`[columns.query_log]`) and the output name it.
    Table("table") {
        QueryLog = "query_log",
        Roster = "roster",
        Hr = "hr",
        RequestForms = "request_forms",
        /// The account applications register (points 2, 4(3), 5(1)2): each
        /// 業務需求人員申請表 and 專責人員申請表, with its approval.
        Applications = "applications",
    }
}

impl Table {
    /// The inbox sub-folder agencies drop this table's exports into.
    pub fn inbox_dir(self) -> &'static str {
        match self {
            Table::QueryLog => "query_logs",
            Table::Roster => "roster",
            Table::Hr => "hr",
            Table::RequestForms => "forms",
            Table::Applications => "applications",
        }
    }

    pub fn columns(self) -> &'static [ColumnSpec] {
        match self {
            Table::QueryLog => QUERY_LOG,
            Table::Roster => ROSTER,
            Table::Hr => HR,
            Table::RequestForms => REQUEST_FORMS,
            Table::Applications => APPLICATIONS,
        }
    }

    pub fn column(self, name: &str) -> Option<&'static ColumnSpec> {
        self.columns().iter().find(|c| c.name == name)
    }
}

/// How a column's cells are read.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Free text, trimmed; empty is missing.
    Text,
    /// An identifier (account, person, form): trimmed, kept as written.
    Id,
    /// A national ID of a person queried: trimmed, upper-cased, and checked
    /// for the shape of a Taiwanese ID or resident certificate number.
    NationalId,
    /// An agency given by id, name or alias; resolved to the agency id.
    Agency,
    /// A calendar date (ROC or Gregorian); a time part, if any, is ignored.
    Date,
    /// A local date and time to the second.
    DateTime,
    /// One of a fixed set of codes.
    Enum(&'static Vocab),
}

/// Whether a file must have the column, and whether its cells may be empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The header must be present and every row must have a value.
    Required,
    /// The header must be present, but a cell may be empty (e.g. `approved_at`
    /// of a form not yet approved).
    RequiredNullable,
    /// The header may be absent; cells may be empty.
    Optional,
}

#[derive(Debug)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub presence: Presence,
    /// Built-in header spellings (Chinese and English) besides `name` itself.
    pub aliases: &'static [&'static str],
}

impl ColumnSpec {
    pub fn header_required(&self) -> bool {
        self.presence != Presence::Optional
    }

    pub fn value_required(&self) -> bool {
        self.presence == Presence::Required
    }

    pub fn is_date(&self) -> bool {
        matches!(self.kind, Kind::Date)
    }

    pub fn is_temporal(&self) -> bool {
        matches!(self.kind, Kind::Date | Kind::DateTime)
    }
}

const fn col(
    name: &'static str,
    kind: Kind,
    presence: Presence,
    aliases: &'static [&'static str],
) -> ColumnSpec {
    ColumnSpec {
        name,
        kind,
        presence,
        aliases,
    }
}

use Presence::{Optional, Required, RequiredNullable};

pub static QUERY_LOG: &[ColumnSpec] = &[
    col(
        "account_id",
        Kind::Id,
        Required,
        &[
            "帳號",
            "使用者帳號",
            "查詢帳號",
            "使用者代號",
            "account",
            "user_id",
            "userid",
        ],
    ),
    col(
        "queried_at",
        Kind::DateTime,
        Required,
        &[
            "查詢時間",
            "查詢日期時間",
            "查詢日期",
            "時間",
            "query_time",
            "timestamp",
            "datetime",
        ],
    ),
    col(
        "query_item",
        Kind::Text,
        Required,
        &[
            "查詢項目",
            "查詢類別",
            "查詢功能",
            "功能",
            "item",
            "function",
        ],
    ),
    col(
        "subject_id",
        Kind::NationalId,
        Required,
        &[
            "被查詢人身分證號",
            "被查詢人身分證字號",
            "被查詢者身分證號",
            "被查詢人id",
            "身分證號",
            "身分證字號",
            "national_id",
            "id_no",
        ],
    ),
    col(
        "purpose",
        Kind::Enum(&PURPOSE),
        Optional,
        &["查詢目的", "查詢事由", "用途", "目的"],
    ),
    col(
        "result",
        Kind::Enum(&RESULT),
        Optional,
        &["查詢結果", "結果", "狀態", "status"],
    ),
    col(
        "agency_id",
        Kind::Agency,
        Required,
        &[
            "機關",
            "機關代碼",
            "機關名稱",
            "查詢機關",
            "單位",
            "agency",
            "agency_name",
        ],
    ),
    col(
        "client_ip",
        Kind::Text,
        Optional,
        &["來源ip", "ip", "ip位址", "來源位址", "source_ip"],
    ),
];

pub static ROSTER: &[ColumnSpec] = &[
    col(
        "account_id",
        Kind::Id,
        Required,
        &["帳號", "使用者帳號", "使用者代號", "account"],
    ),
    col(
        "holder_name",
        Kind::Text,
        Optional,
        &["姓名", "使用者姓名", "使用者", "name"],
    ),
    col(
        "person_id",
        Kind::Id,
        Required,
        &["員工編號", "人員代號", "員工代號", "employee_id"],
    ),
    col(
        "agency_id",
        Kind::Agency,
        Required,
        &[
            "機關",
            "機關代碼",
            "機關名稱",
            "單位",
            "服務機關",
            "agency",
            "agency_name",
        ],
    ),
    col(
        "role",
        Kind::Enum(&ROLE),
        Optional,
        &["角色", "身分", "帳號類別", "權限"],
    ),
    col(
        "employment_type",
        Kind::Enum(&EMPLOYMENT),
        Optional,
        &["人員類別", "任用類別", "職務類別", "employment"],
    ),
    col(
        "status",
        Kind::Enum(&ACCOUNT_STATUS),
        Required,
        &["帳號狀態", "狀態", "state"],
    ),
    col(
        "created_on",
        Kind::Date,
        Optional,
        &["建立日期", "開通日期", "申請日期", "created", "created_at"],
    ),
    col(
        "last_password_change",
        Kind::Date,
        Optional,
        &[
            "最後變更密碼日期",
            "密碼變更日期",
            "密碼最後變更日",
            "password_changed",
        ],
    ),
    col(
        "assigned_by",
        Kind::Text,
        Optional,
        &["授權人", "核發人", "指派人", "assigner"],
    ),
    col(
        "disabled_on",
        Kind::Date,
        Optional,
        &["停用日期", "註銷日期", "disabled", "disabled_at"],
    ),
];

pub static HR: &[ColumnSpec] = &[
    col(
        "person_id",
        Kind::Id,
        Required,
        &["員工編號", "人員代號", "員工代號", "employee_id"],
    ),
    col("name", Kind::Text, Optional, &["姓名", "人員姓名"]),
    col(
        "agency_id",
        Kind::Agency,
        Required,
        &[
            "機關",
            "服務機關",
            "現職機關",
            "機關代碼",
            "機關名稱",
            "單位",
            "agency",
            "agency_name",
        ],
    ),
    col(
        "employment_type",
        Kind::Enum(&EMPLOYMENT),
        Required,
        &["人員類別", "任用類別", "職務類別", "employment"],
    ),
    col(
        "status",
        Kind::Enum(&HR_STATUS),
        Required,
        &["狀態", "人事狀態", "在職狀態", "異動類別"],
    ),
    col(
        "effective_date",
        Kind::Date,
        Required,
        &[
            "生效日期",
            "異動日期",
            "到職日期",
            "effective",
            "effective_on",
        ],
    ),
    col(
        "national_id",
        Kind::NationalId,
        Optional,
        &["身分證號", "身分證字號", "id_no"],
    ),
];

pub static REQUEST_FORMS: &[ColumnSpec] = &[
    col(
        "form_id",
        Kind::Id,
        Required,
        &["表單編號", "紀錄表編號", "申請編號", "編號", "form_no"],
    ),
    col(
        "account_id",
        Kind::Id,
        Required,
        &["帳號", "查詢帳號", "使用者帳號", "account"],
    ),
    col(
        "subject_id",
        Kind::NationalId,
        Required,
        &[
            "被查詢人身分證號",
            "被查詢人身分證字號",
            "身分證號",
            "身分證字號",
            "national_id",
        ],
    ),
    col(
        "purpose",
        Kind::Enum(&PURPOSE),
        Optional,
        &["查詢目的", "用途", "目的", "法令依據"],
    ),
    col(
        "reason",
        Kind::Text,
        Optional,
        &["查詢事由", "事由", "申請事由"],
    ),
    col("conditions", Kind::Text, Optional, &["查詢條件", "條件"]),
    col(
        "requested_at",
        Kind::DateTime,
        Required,
        &["申請時間", "填表時間", "申請日期", "requested"],
    ),
    col(
        "approver",
        Kind::Text,
        Optional,
        &["核可主管", "核可人", "權責主管", "approved_by"],
    ),
    col(
        "approved_at",
        Kind::DateTime,
        RequiredNullable,
        &["核可時間", "核准時間", "核可日期", "approved"],
    ),
    col(
        "valid_until",
        Kind::Date,
        Optional,
        &["有效期限", "有效日期", "valid_to"],
    ),
];

/// The account applications register: one row per application form.
pub static APPLICATIONS: &[ColumnSpec] = &[
    col(
        "account_id",
        Kind::Id,
        Required,
        &["帳號", "使用者帳號", "申請帳號", "account"],
    ),
    col(
        "applicant_name",
        Kind::Text,
        Optional,
        &["申請人", "申請人姓名", "姓名", "applicant"],
    ),
    col(
        "person_id",
        Kind::Id,
        Required,
        // One column only: a register keyed by national ID maps it with
        // `[columns.applications] person_id = ["身分證統一編號"]`.
        &["員工編號", "人員代號", "employee_id"],
    ),
    col(
        "agency_id",
        Kind::Agency,
        Required,
        &["申請機關", "機關", "機關代碼", "機關名稱", "agency"],
    ),
    col(
        "kind",
        Kind::Enum(&APPLICATION_KIND),
        Required,
        &["申請類別", "類別", "申請種類", "kind"],
    ),
    col(
        "permissions",
        Kind::Text,
        Optional,
        &["申請權限", "權限", "permissions"],
    ),
    col(
        "applied_on",
        Kind::Date,
        Required,
        &["申請日期", "applied", "applied_on"],
    ),
    col(
        "approver",
        Kind::Text,
        Optional,
        &["核定人", "核准人", "approver"],
    ),
    col(
        "approved_on",
        Kind::Date,
        RequiredNullable,
        &["核定日期", "核准日期", "approved", "approved_on"],
    ),
];

/// A controlled vocabulary: codes and the spellings exports use for them.
#[derive(Debug)]
pub struct Vocab {
    pub name: &'static str,
    /// `(code, Chinese label, other spellings)`.
    pub entries: &'static [(&'static str, &'static str, &'static [&'static str])],
}

impl Vocab {
    pub fn codes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.0)
    }

    pub fn label(&self, code: &str) -> Option<&'static str> {
        self.entries.iter().find(|e| e.0 == code).map(|e| e.1)
    }

    /// Every `(spelling, code)` pair, the code and label included.
    pub fn spellings(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        for (code, label, others) in self.entries {
            out.push((*code, *code));
            out.push((*label, *code));
            out.extend(others.iter().map(|s| (*s, *code)));
        }
        out
    }
}

/// Every vocabulary an input column is read by; config can add spellings
/// to each (`[vocabulary.<name>]`).
pub static VOCABS: [&Vocab; 7] = [
    &PURPOSE,
    &ROLE,
    &EMPLOYMENT,
    &ACCOUNT_STATUS,
    &HR_STATUS,
    &RESULT,
    &APPLICATION_KIND,
];

/// The lawful purposes of point 3, with the laws that ground them.
pub static PURPOSE: Vocab = Vocab {
    name: "purpose",
    entries: &[
        (
            "social_welfare",
            "社政",
            &[
                "社會福利",
                // Point 3(1), verbatim.
                "社會救助法",
                "老人福利法",
                "身心障礙者權益保障法",
                "身心障礙者參加社會保險保險費補助辦法",
                "全民健康保險法",
                "兒童及少年福利與權益保障法",
                "高雄市弱勢兒童及少年醫療補助辦法",
                "高雄市生育津貼發給辦法",
                // Shortened as forms write them.
                "身心障礙者保險費補助辦法",
                "高雄市弱勢兒童醫療補助辦法",
                "高雄市生育津貼發放辦法",
            ],
        ),
        ("public_health", "公共衛生", &["公衛", "傳染病防治法"]),
        (
            "criminal_investigation",
            "犯罪偵查",
            &["刑事訴訟法", "刑事偵查"],
        ),
        (
            "drug_follow_up",
            "毒品施用者追蹤輔導",
            &["毒品危害防制條例", "毒品追蹤輔導"],
        ),
        (
            "military_service",
            "兵役",
            // Point 3(5): 兵役法 and 徵兵規則.
            &["兵役法", "徵兵規則", "兵役法及徵兵規則", "兵役行政"],
        ),
        (
            "unlicensed_lodging",
            "無照旅宿",
            &["發展觀光條例", "無照旅宿查緝"],
        ),
        ("other", "其他法定職務", &["其他"]),
    ],
};

pub static ROLE: Vocab = Vocab {
    name: "role",
    entries: &[
        ("chief_admin", "總管理者", &["總管理人員", "總管理員"]),
        ("officer", "專責人員", &["專責管理人員", "機關專責人員"]),
        (
            "business_user",
            "業務需求人員",
            &["一般使用者", "使用者", "業務人員", "user"],
        ),
    ],
};

pub static EMPLOYMENT: Vocab = Vocab {
    name: "employment_type",
    entries: &[
        (
            "permanent",
            "編制內",
            &["編制內職員", "正式", "正式職員", "公務人員"],
        ),
        (
            "contract",
            "約聘僱",
            &["約聘僱人員", "約聘", "約僱", "約用"],
        ),
        ("labourer", "職工", &["技工", "工友", "laborer"]),
        ("driver", "駕駛", &["司機"]),
        ("temporary", "臨時", &["臨時人員", "臨時工"]),
    ],
};

pub static ACCOUNT_STATUS: Vocab = Vocab {
    name: "account_status",
    entries: &[
        ("active", "啟用", &["正常", "使用中", "enabled"]),
        ("disabled", "停用", &["註銷", "已停用", "inactive"]),
    ],
};

pub static HR_STATUS: Vocab = Vocab {
    name: "hr_status",
    entries: &[
        ("active", "在職", &["現職"]),
        ("transferred", "調職", &["調離", "調任"]),
        ("departed", "離職", &["辭職", "免職"]),
        ("retired", "退休", &[]),
        ("suspended", "留職停薪", &["留停"]),
    ],
};

pub static APPLICATION_KIND: Vocab = Vocab {
    name: "application_kind",
    entries: &[
        ("add", "新增", &["新申請", "申請", "開通"]),
        ("change", "異動", &["變更", "權限異動"]),
        ("revoke", "註銷", &["廢止", "停用", "刪除"]),
    ],
};

pub static RESULT: Vocab = Vocab {
    name: "result",
    entries: &[
        (
            "success",
            "成功",
            &["查詢成功", "ok", "s", "y", "1", "true"],
        ),
        (
            "failure",
            "失敗",
            &["查詢失敗", "錯誤", "fail", "failed", "f", "n", "0", "false"],
        ),
    ],
};

/// How a finding's reason marks it still open since an earlier review
/// (raised one severity level); reports show it beside the finding.
pub const REPEAT_MARK: &str = "重複列管";

/// Finding severities, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.name() == s)
    }

    /// One level more severe (critical stays critical): a finding still
    /// open at the next review.
    pub fn raised(self) -> Severity {
        match self {
            Severity::Critical | Severity::High => Severity::Critical,
            Severity::Medium => Severity::High,
            Severity::Low => Severity::Medium,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::headers::normalize_header;
    use std::collections::BTreeMap;

    /// A header spelling that means two columns of one table would make
    /// header mapping depend on column order; none may exist.
    #[test]
    fn no_header_alias_means_two_columns_of_one_table() {
        for table in Table::ALL {
            let mut seen: BTreeMap<String, &str> = BTreeMap::new();
            for c in table.columns() {
                for a in std::iter::once(&c.name).chain(c.aliases) {
                    if let Some(other) = seen.insert(normalize_header(a), c.name) {
                        assert_eq!(other, c.name, "{table}: header {a:?} is ambiguous");
                    }
                }
            }
        }
    }

    #[test]
    fn no_spelling_means_two_codes() {
        let names: std::collections::BTreeSet<&str> = VOCABS.iter().map(|v| v.name).collect();
        assert_eq!(
            names.len(),
            VOCABS.len(),
            "config names vocabularies by these"
        );
        for vocab in VOCABS {
            let mut seen: BTreeMap<String, &str> = BTreeMap::new();
            for (spelling, code) in vocab.spellings() {
                if let Some(other) = seen.insert(spelling.to_lowercase(), code) {
                    assert_eq!(other, code, "{}: {spelling:?} is ambiguous", vocab.name);
                }
            }
        }
    }
}
