//! The config file as written: serde types with `deny_unknown_fields` and
//! typed defaults. Nothing outside `config` sees these; `validate` turns them
//! into [`super::Config`].

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default = "default_timezone")]
    pub timezone: String,
    pub paths: RawPaths,
    #[serde(default)]
    pub rules: RawRules,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub followup: RawFollowup,
    #[serde(default)]
    pub agencies: Vec<RawAgency>,
    pub mail: RawMail,
    /// `[chief_administrator]`: the Health Bureau's 總管理者 (point 4).
    pub chief_administrator: Option<RawChief>,
    /// `[columns.<table>] <column> = ["header", ...]`: extra header aliases.
    #[serde(default)]
    pub columns: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// `[vocabulary.<name>] <code> = ["spelling", ...]`: extra spellings
    /// of a vocabulary's codes (purposes, roles, statuses, …).
    #[serde(default)]
    pub vocabulary: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// `[formats.<table>] <column> = "roc" | "gregorian" | "auto"`.
    #[serde(default)]
    pub formats: BTreeMap<String, BTreeMap<String, String>>,
    /// Per-file overrides, matched by a glob relative to the inbox.
    #[serde(default)]
    pub inputs: Vec<RawInput>,
}

fn default_timezone() -> String {
    "Asia/Taipei".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    pub inbox: String,
    pub archive: String,
    pub state: String,
    pub schedules: Option<String>,
    /// Mail templates replacing the built-in ones (see `templates/`).
    pub templates: Option<String>,
    /// The agency register (機關專責人員名冊) as a workbook or CSV, in
    /// place of `[[agencies]]` tables.
    pub agencies: Option<String>,
    /// The key the attachment passwords are sealed under: a file outside
    /// the state folder (default `<state>/../keys/attachment-passwords.key`;
    /// `$CREDENTIALS_DIRECTORY/…` for a systemd credential).
    pub key_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRules {
    pub idle_days: i64,
    pub password_max_age_days: i64,
    pub sample_account_percent: i64,
    pub sample_records_per_account: i64,
    pub retention_years: i64,
    /// Days a delivered message keeps its body and attachments in the
    /// outbox (the sealed run keeps the workbooks).
    pub outbox_keep_days: i64,
    /// Days a refused return is kept in `inbox/returns/refused/`.
    pub refused_keep_days: i64,
    pub form_validity_days: i64,
    pub office_hours: String,
    pub holidays: Option<String>,
    /// `run` exits 1 when a finding is at or above this severity.
    pub fail_on_severity: String,
    /// A day's queries above this many times the account's median day…
    pub spike_factor: i64,
    /// …and above this count are a volume spike.
    pub spike_min: i64,
    /// Distinct accounts querying one subject in a period that draw a finding.
    pub subject_accounts_threshold: i64,
    /// Failed queries by one account within an hour that draw a finding.
    pub failed_burst: i64,
    /// Units the Health Bureau's external audit draws each year (pt 4).
    pub external_audit_units: i64,
    /// Whether the external audit draws every unit with critical findings
    /// first, the rest by ticket (docs/sampling.md § 14).
    pub external_audit_critical_first: bool,
    /// Whether a sealed audit may date a roster or register that carries
    /// no date of its own by its file's modification time.
    pub accept_modification_dates: bool,
}

/// `[followup]`: when what a run asks of a unit is due, and when it is
/// chased.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFollowup {
    /// Days a unit has to return the sample worksheet (point 6(1)).
    pub worksheet_days: i64,
    /// …the account review's decisions (point 6(2)).
    pub account_review_days: i64,
    /// …the internal audit's results (point 6(3)).
    pub internal_audit_days: i64,
    /// …the query check's findings, looked into.
    pub query_check_days: i64,
    /// …its preparation for the Health Bureau's external audit (point 6(4)).
    pub external_prep_days: i64,
    /// …the investigation record of the anomalies its worksheet confirmed (6(3)).
    pub investigation_days: i64,
    /// The officer is reminded this many days before the due day (and on it).
    pub remind_before_days: i64,
    /// Overdue by this many days, the unit's ethics unit is told.
    pub ethics_after_days: i64,
}

impl Default for RawFollowup {
    fn default() -> Self {
        RawFollowup {
            worksheet_days: 30,
            account_review_days: 30,
            internal_audit_days: 30,
            query_check_days: 30,
            external_prep_days: 30,
            investigation_days: 30,
            remind_before_days: 7,
            ethics_after_days: 14,
        }
    }
}

/// `[limits]`: how much a workbook may inflate to before it is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// All entries of an XLSX or ODS together, uncompressed (an XLS: its
    /// size), in MiB.
    pub workbook_mib: i64,
    /// One entry (a sheet's XML), uncompressed, in MiB.
    pub entry_mib: i64,
    /// Uncompressed to compressed, for entries over 10 MiB.
    pub compression_ratio: i64,
    /// More rejected rows than this and a file is refused as a whole.
    pub rejects_per_file: i64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            workbook_mib: 128,
            entry_mib: 128,
            compression_ratio: 100,
            rejects_per_file: 10_000,
        }
    }
}

impl Default for RawRules {
    fn default() -> Self {
        RawRules {
            idle_days: 90,
            password_max_age_days: 90,
            sample_account_percent: 20,
            sample_records_per_account: 10,
            retention_years: 3,
            outbox_keep_days: 30,
            refused_keep_days: 30,
            form_validity_days: 30,
            office_hours: "08:00-18:00".to_owned(),
            holidays: None,
            fail_on_severity: "high".to_owned(),
            spike_factor: 5,
            spike_min: 30,
            subject_accounts_threshold: 5,
            failed_burst: 10,
            external_audit_units: 3,
            external_audit_critical_first: true,
            accept_modification_dates: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgency {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub parent: String,
    #[serde(default)]
    pub requesting: bool,
    /// Empty means: the parent's purposes.
    #[serde(default)]
    pub purposes: Vec<String>,
    pub officer_email: Option<String>,
    pub ethics_email: Option<String>,
    /// The environment variable holding the password its workbooks are
    /// encrypted with before they are mailed (rule 5(2)2).
    pub attachment_password_env: Option<String>,
    /// Why this unit's workbooks are mailed unencrypted: the only way to
    /// exempt a unit from encryption, and the reason is shown.
    pub attachment_unencrypted: Option<String>,
    #[serde(default)]
    pub health_bureau: bool,
    /// The register's Health Bureau row may name the chief administrator
    /// (總管理者, point 4) in place of `[chief_administrator]`.
    #[serde(default)]
    pub chief_name: Option<String>,
    #[serde(default)]
    pub chief_email: Option<String>,
}

/// `[chief_administrator]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChief {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMail {
    #[serde(default = "default_transport")]
    pub transport: String,
    pub from: String,
    pub admin: String,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    /// `starttls` (587) or `tls` (465); never opportunistic.
    pub smtp_security: Option<String>,
    pub smtp_username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub ca_file: Option<String>,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_retry_window")]
    pub retry_window: String,
    #[serde(default = "default_max_attachment_mb")]
    pub max_attachment_mb: u32,
    /// A message whose outcome is unknown (the connection was lost after its
    /// data was sent) is sent again after this long ("24h", "2d"); unset,
    /// only when the operator says so (`outbox retry`).
    pub unknown_resend_after: Option<String>,
    /// Where officers reply and return workbooks (the Reply-To header);
    /// unset: `from`.
    pub reply_to: Option<String>,
    /// Who officers ask, as every mail names it ("衛生局 王小明 07-1234567").
    pub contact: Option<String>,
}

fn default_transport() -> String {
    "file".to_owned()
}
fn default_max_attempts() -> u32 {
    8
}
fn default_retry_window() -> String {
    "48h".to_owned()
}
fn default_max_attachment_mb() -> u32 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    /// Glob relative to the inbox, `*` and `?` wildcards, `/` separators.
    pub pattern: String,
    /// `auto` (default), `utf-8` or `big5`.
    pub encoding: Option<String>,
    /// Sheet to read from a workbook; default the first.
    pub sheet: Option<String>,
    /// `,` or `\t`; default detected from the header line.
    pub delimiter: Option<String>,
    /// `<column> = "roc" | "gregorian" | "auto"` for this file.
    #[serde(default)]
    pub formats: BTreeMap<String, String>,
}

/// `holidays.toml`: national holidays and make-up workdays.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHolidays {
    #[serde(default)]
    pub holidays: Vec<RawDay>,
    /// Saturdays or Sundays that are working days (補行上班日).
    #[serde(default)]
    pub workdays: Vec<RawDay>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDay {
    pub date: toml::value::Datetime,
    #[serde(default)]
    pub name: String,
}
