//! Configuration: load the TOML file, validate it once, and hand the rest of
//! the program a [`Config`] it never has to re-check.
//!
//! Two phases, as in cargo-deny: [`raw`] holds the serde types exactly as
//! written (unknown keys are errors); [`validate`] turns them into the types
//! below, resolving paths against the config file's folder, building the
//! agency tree and rejecting anything weaker than the regulation. Every
//! problem is reported at once, each naming the key, the value and, for
//! regulation limits, the rule.

pub mod calendar;
pub mod raw;
pub mod register;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;

use crate::model::{PURPOSE, Severity, Table};
use raw::{RawAgency, RawChief, RawConfig, RawHolidays, RawInput, RawMail, RawRules};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub file: PathBuf,
    pub timezone: Tz,
    pub paths: Paths,
    pub rules: Rules,
    pub limits: Limits,
    pub followup: Followup,
    pub agencies: Agencies,
    pub mail: Mail,
    /// The Health Bureau's chief administrator (總管理者, point 4), who
    /// gets the city-wide workbooks, the officer-account review and the
    /// overdue digests. `None`: the Health Bureau's officer gets them, and
    /// `check-config` says so.
    pub chief: Option<Chief>,
    /// Extra header aliases: table -> canonical column -> headers.
    pub column_aliases: BTreeMap<Table, BTreeMap<&'static str, Vec<String>>>,
    /// Extra spellings by vocabulary name: `(lower-cased spelling, code)`.
    pub vocabulary: BTreeMap<&'static str, Vec<(String, &'static str)>>,
    /// Declared date formats: table -> column -> format.
    pub formats: BTreeMap<Table, BTreeMap<&'static str, DateFormat>>,
    pub inputs: Vec<InputOverride>,
    /// The mail templates, compiled.
    pub templates: crate::templates::Templates,
}

/// `[chief_administrator]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chief {
    pub name: String,
    pub email: String,
}

/// Who reviews a unit's officers' own accounts in the sample audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reviewer {
    /// The unit's ethics unit.
    Ethics,
    /// The chief administrator, where the unit has no ethics address.
    ChiefAdmin,
}

impl Config {
    /// The second reviewer of `unit`'s officers' own accounts and where
    /// to write to them: the unit's ethics unit, else the chief
    /// administrator; never the unit's officer, and for the Health
    /// Bureau (whose sample may hold the chief's own account) its ethics
    /// unit only.
    pub fn second_reviewer(&self, unit: &str) -> Option<(&str, Reviewer)> {
        let agency = self.agencies.get(unit);
        let officer = agency.and_then(|a| a.officer_email.as_deref());
        let not_officer = |e: &&str| Some(*e) != officer;
        match agency
            .and_then(|a| a.ethics_email.as_deref())
            .filter(not_officer)
        {
            Some(e) => Some((e, Reviewer::Ethics)),
            // The Health Bureau's sample holds the chief administrator's
            // own account: the chief does not review it either.
            None if agency.is_some_and(|a| a.health_bureau) => None,
            None => self
                .chief_email()
                .filter(not_officer)
                .map(|c| (c, Reviewer::ChiefAdmin)),
        }
    }

    /// Where the chief administrator's mail goes: `[chief_administrator]`,
    /// else the Health Bureau's officer.
    pub fn chief_email(&self) -> Option<&str> {
        self.chief.as_ref().map(|c| c.email.as_str()).or(self
            .agencies
            .health_bureau()
            .officer_email
            .as_deref())
    }
}

/// When what a run asks of a unit is due and when it is chased
/// (`[followup]`), in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Followup {
    pub worksheet_days: u32,
    pub account_review_days: u32,
    pub internal_audit_days: u32,
    pub query_check_days: u32,
    pub external_prep_days: u32,
    pub investigation_days: u32,
    pub remind_before_days: u32,
    pub ethics_after_days: u32,
}

impl Followup {
    /// Days a unit has to answer a run of `job`; `None` when the job asks
    /// nothing of the units.
    pub fn days(&self, job: crate::job::Job) -> Option<u32> {
        use crate::job::Deadline;
        Some(match job.deadline()? {
            Deadline::Worksheet => self.worksheet_days,
            Deadline::AccountReview => self.account_review_days,
            Deadline::InternalAudit => self.internal_audit_days,
            Deadline::QueryCheck => self.query_check_days,
            Deadline::ExternalPrep => self.external_prep_days,
        })
    }
}

/// How much a workbook may inflate to (`[limits]`), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub workbook_bytes: u64,
    pub entry_bytes: u64,
    pub compression_ratio: u64,
    pub rejects_per_file: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            workbook_bytes: 128 << 20,
            entry_bytes: 128 << 20,
            compression_ratio: 100,
            rejects_per_file: 10_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Paths {
    pub inbox: PathBuf,
    pub archive: PathBuf,
    pub state: PathBuf,
    pub schedules: PathBuf,
    /// Mail templates replacing the built-in ones, if set.
    pub templates: Option<PathBuf>,
    /// The input store: exports moved out of the inbox once a sealed run
    /// read them (`<archive>/inputs`), read by later runs with the inbox.
    /// `None` when only the inbox counts (`verify --inputs DIR`).
    pub inputs: Option<PathBuf>,
    /// The key the attachment passwords are sealed under (outside the
    /// state folder: `crate::keyfile`).
    pub key_file: PathBuf,
}

/// The input store's folder under the archive (see the `inputs` module).
pub const INPUT_STORE: &str = "inputs";

#[derive(Debug, Clone)]
pub struct Rules {
    pub idle_days: u32,
    pub password_max_age_days: u32,
    pub sample_account_percent: u32,
    pub sample_records_per_account: u32,
    pub retention_years: u32,
    pub outbox_keep_days: u32,
    pub refused_keep_days: u32,
    pub form_validity_days: u32,
    pub office_hours: (NaiveTime, NaiveTime),
    pub holidays: Holidays,
    pub fail_on_severity: Severity,
    pub spike_factor: u32,
    pub spike_min: u32,
    pub subject_accounts_threshold: u32,
    pub failed_burst: u32,
    pub external_audit_units: u32,
    /// Whether units with critical findings are drawn first (and always).
    pub external_audit_critical_first: bool,
    /// Whether a sealed audit ([`crate::job::Job::sealed_audit`]) may date
    /// a roster or register with no date in its title rows or file name
    /// by its file's modification time (other runs do, and say so).
    pub accept_modification_dates: bool,
}

/// National holidays and make-up workdays, for "office hours" checks.
#[derive(Debug, Clone, Default)]
pub struct Holidays {
    pub holidays: BTreeMap<NaiveDate, String>,
    pub workdays: BTreeMap<NaiveDate, String>,
    /// Whether `rules.holidays` names a file. Without one, off-hours are
    /// judged on weekends and office hours alone (check-config says so);
    /// with one, a year it does not cover is not checked.
    pub configured: bool,
}

/// The longest agency id.
pub const MAX_ID_LEN: usize = 32;

/// Whether `id` may be an agency id: ASCII letters, digits, `-` and `_`,
/// 1 to [`MAX_ID_LEN`] of them. Ids name workbooks and folders, so nothing
/// else may reach a path through them.
pub fn is_safe_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Holidays {
    /// The years in which the file lists at least one holiday.
    pub fn years(&self) -> std::collections::BTreeSet<i32> {
        use chrono::Datelike;
        self.holidays.keys().map(|d| d.year()).collect()
    }
}

impl Holidays {
    /// A working day: Monday to Friday unless a holiday, or a make-up
    /// workday. In a year the calendar does not list, the holidays fixed by
    /// date in law (紀念日及節日實施條例: 1 January, 28 February, 10
    /// October) still are: a deadline never falls on 開國紀念日 because
    /// next year's calendar is not in yet.
    pub fn is_workday(&self, date: NaiveDate) -> bool {
        use chrono::Datelike;
        if self.workdays.contains_key(&date) {
            return true;
        }
        let listed = self
            .holidays
            .keys()
            .chain(self.workdays.keys())
            .any(|d| d.year() == date.year());
        let fixed = !listed && matches!((date.month(), date.day()), (1, 1) | (2, 28) | (10, 10));
        date.weekday().number_from_monday() <= 5 && !self.holidays.contains_key(&date) && !fixed
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agency {
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub parent: Option<String>,
    pub requesting: bool,
    /// The nearest requesting ancestor-or-self.
    pub unit: String,
    /// Lawful purposes (codes of [`PURPOSE`]); inherited from the parent when
    /// the config gives none.
    pub purposes: Vec<String>,
    pub officer_email: Option<String>,
    pub ethics_email: Option<String>,
    /// How workbooks mailed to this unit are protected (rule 5(2)2).
    pub attachment: AttachmentProtection,
    pub health_bureau: bool,
}

/// How a unit's mailed workbooks are protected. Every attachment is
/// encrypted unless the config exempts the unit explicitly, with a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentProtection {
    /// Encrypted with the unit's password from the state store
    /// (`webir-audit passwords`), made on first use.
    Issued,
    /// Encrypted with the password in this environment variable.
    Env(String),
    /// Mailed in the clear, for this reason (shown in every mail and in
    /// `check-config`).
    Unencrypted(String),
}

/// The agency tree, in config order.
#[derive(Debug, Clone)]
pub struct Agencies {
    list: Vec<Agency>,
    by_id: BTreeMap<String, usize>,
}

impl Agencies {
    pub fn iter(&self) -> impl Iterator<Item = &Agency> {
        self.list.iter()
    }

    pub fn get(&self, id: &str) -> Option<&Agency> {
        self.by_id.get(id).map(|&i| &self.list[i])
    }

    pub fn health_bureau(&self) -> &Agency {
        self.list
            .iter()
            .find(|a| a.health_bureau)
            .expect("validated: exactly one health bureau")
    }

    /// Requesting agencies (units), in config order.
    pub fn units(&self) -> impl Iterator<Item = &Agency> {
        self.list.iter().filter(|a| a.requesting)
    }

    /// Every spelling an export may use for an agency, upper-cased, with the
    /// agency id it means: ids, names and aliases.
    pub fn spellings(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for a in &self.list {
            out.push((a.id.to_uppercase(), a.id.clone()));
            out.push((a.name.to_uppercase(), a.id.clone()));
            out.extend(a.aliases.iter().map(|s| (s.to_uppercase(), a.id.clone())));
        }
        out.sort();
        out.dedup();
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    File,
    Smtp,
}

#[derive(Debug, Clone)]
pub struct Mail {
    pub transport: Transport,
    pub from: String,
    pub admin: String,
    pub allowed_domains: Vec<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_security: Option<String>,
    pub smtp_username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub max_attempts: u32,
    pub retry_window_hours: u32,
    pub max_attachment_mb: u32,
    pub unknown_resend_after_hours: Option<u32>,
    /// The Reply-To of every mail (returns and questions go there).
    pub reply_to: Option<String>,
    /// The contact every mail names.
    pub contact: Option<String>,
}

/// How to read a date column whose format cannot be told from the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateFormat {
    /// ROC years have 1–3 digits, Gregorian years 4; 7 digits is ROC
    /// `YYYMMDD`, 8 digits Gregorian `YYYYMMDD`.
    #[default]
    Auto,
    /// Every year is an ROC year; 6-digit `YYMMDD` is accepted.
    Roc,
    /// Every year is a Gregorian year.
    Gregorian,
}

impl DateFormat {
    fn parse(s: &str) -> Option<DateFormat> {
        match s {
            "auto" => Some(DateFormat::Auto),
            "roc" => Some(DateFormat::Roc),
            "gregorian" => Some(DateFormat::Gregorian),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Auto,
    Utf8,
    Big5,
}

/// Settings for inputs whose path matches `pattern`.
#[derive(Debug, Clone)]
pub struct InputOverride {
    pub pattern: String,
    pub encoding: Encoding,
    pub sheet: Option<String>,
    pub delimiter: Option<u8>,
    pub formats: BTreeMap<String, DateFormat>,
}

/// What went wrong loading a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read config: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", file.display())]
    Syntax { file: PathBuf, message: String },
    #[error("{}: invalid configuration:\n{}", file.display(), Problems(problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key, e.g. `rules.sample_account_percent` or `agencies[3].parent`.
    pub key: String,
    pub value: String,
    pub message: String,
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {} = {}: {}", p.key, p.value, p.message)?;
        }
        Ok(())
    }
}

/// Loads and validates the config file at `file`.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_owned(),
        source,
    })?;
    let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
        file: file.to_owned(),
        message: e.to_string(),
    })?;
    validate(raw, file)
}

/// Turns the raw config into a [`Config`], or lists everything wrong with it.
pub fn validate(raw: RawConfig, file: &Path) -> Result<Config, ConfigError> {
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let resolve = |p: &str| {
        if p.is_empty() {
            base.clone()
        } else {
            lexical_normalize(&base.join(p))
        }
    };
    let mut v = Validator::default();
    let timezone = v.timezone(&raw.timezone);
    let paths = v.paths(&raw.paths, &resolve);
    let templates = v.templates(paths.templates.as_deref(), raw.paths.templates.as_deref());
    let rules = v.rules(&raw.rules, &resolve);
    let limits = v.limits(&raw.limits);
    let followup = v.followup(&raw.followup);
    let mut raw = raw;
    let register = v.agency_register(&mut raw, &resolve);
    let agencies = v.agencies(&raw.agencies);
    let mail = v.mail(&raw.mail, &agencies, &resolve);
    let chief = v.chief(&raw, &mail);
    let column_aliases = v.column_aliases(&raw.columns);
    let formats = v.formats(&raw.formats);
    let vocabulary = v.vocabulary(&raw.vocabulary);
    let inputs = v.inputs(&raw.inputs);

    if !v.problems.is_empty() {
        let mut problems = v.problems;
        if let Some(r) = &register {
            for p in &mut problems {
                p.key = register_place(&p.key, &raw.agencies, &r.places);
            }
        }
        return Err(ConfigError::Invalid {
            file: file.to_owned(),
            problems,
        });
    }
    Ok(Config {
        file: file.to_owned(),
        timezone,
        templates: templates.expect("validated: problems were returned above"),
        paths,
        rules,
        limits,
        followup,
        agencies,
        mail,
        chief,
        column_aliases,
        vocabulary,
        formats,
        inputs,
    })
}

/// A problem's key about an agency (`agencies[3].parent`,
/// `agencies.KPB.officer_email`) as the register's sheet, row and column.
fn register_place(key: &str, agencies: &[RawAgency], places: &[register::Place]) -> String {
    let (index, field) = if let Some(rest) = key.strip_prefix("agencies[") {
        let Some((i, field)) = rest.split_once(']') else {
            return key.to_owned();
        };
        (i.parse::<usize>().ok(), field.trim_start_matches('.'))
    } else if let Some(rest) = key.strip_prefix("agencies.") {
        let Some((id, field)) = rest.split_once('.') else {
            return key.to_owned();
        };
        (agencies.iter().position(|a| a.id == id), field)
    } else {
        return key.to_owned();
    };
    match index.and_then(|i| places.get(i)) {
        Some(place) if field.is_empty() => place.row(),
        Some(place) => place.cell(field),
        None => key.to_owned(),
    }
}

/// The parent an agency names, if any.
fn parent_of(a: &RawAgency) -> Option<&str> {
    (!a.parent.is_empty()).then_some(a.parent.as_str())
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn problem(&mut self, key: impl Into<String>, value: impl fmt::Display, message: &str) {
        self.problems.push(Problem {
            key: key.into(),
            value: value.to_string(),
            message: message.to_owned(),
        });
    }

    /// The configured time zone (Asia/Taipei if it is none).
    fn timezone(&mut self, written: &str) -> Tz {
        match written.parse::<Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                self.problem(
                    "timezone",
                    written,
                    "not an IANA time zone, e.g. \"Asia/Taipei\"",
                );
                chrono_tz::Asia::Taipei
            }
        }
    }

    /// The folders and the key file, resolved against the config's folder;
    /// the key file must lie outside the folders whose files it opens.
    fn paths(&mut self, raw: &raw::RawPaths, resolve: &dyn Fn(&str) -> PathBuf) -> Paths {
        let paths = Paths {
            inbox: resolve(&raw.inbox),
            archive: resolve(&raw.archive),
            state: resolve(&raw.state),
            schedules: resolve(raw.schedules.as_deref().unwrap_or("schedules")),
            templates: raw.templates.as_deref().map(resolve),
            inputs: Some(resolve(&raw.archive).join(INPUT_STORE)),
            key_file: self.key_file(raw, resolve),
        };
        for (key, dir) in [
            ("paths.state", &paths.state),
            ("paths.archive", &paths.archive),
            ("paths.inbox", &paths.inbox),
        ] {
            if paths.key_file.starts_with(dir) {
                self.problem(
                    "paths.key_file",
                    paths.key_file.display(),
                    &format!(
                        "must be outside {key} ({}): the key is not kept beside what it opens",
                        dir.display()
                    ),
                );
            }
        }
        paths
    }

    /// The attachment-password key file: as written (under
    /// `$CREDENTIALS_DIRECTORY/` when it says so), else `keys/` beside the
    /// state folder.
    fn key_file(&mut self, raw: &raw::RawPaths, resolve: &dyn Fn(&str) -> PathBuf) -> PathBuf {
        let Some(k) = raw.key_file.as_deref() else {
            return resolve(&raw.state)
                .parent()
                .map_or_else(|| resolve("keys"), Path::to_path_buf)
                .join("keys/attachment-passwords.key");
        };
        let Some(name) = k.strip_prefix("$CREDENTIALS_DIRECTORY/") else {
            return resolve(k);
        };
        match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(d) => PathBuf::from(d).join(name),
            None => {
                self.problem(
                    "paths.key_file",
                    k,
                    "CREDENTIALS_DIRECTORY is not set: run under the systemd unit \
                     (LoadCredential), or set it to the key's folder",
                );
                resolve(k)
            }
        }
    }

    /// The mail templates, from `dir` (`paths.templates` resolved, as
    /// `written`) or built in.
    fn templates(
        &mut self,
        dir: Option<&Path>,
        written: Option<&str>,
    ) -> Option<crate::templates::Templates> {
        match crate::templates::Templates::load(dir) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(
                    "paths.templates",
                    format!("{:?}", written.unwrap_or("(built in)")),
                    &format!("a mail template is missing or broken: {e}"),
                );
                None
            }
        }
    }

    /// Reads the agency register `paths.agencies` names, if any, into
    /// `raw.agencies` (which must then be empty).
    fn agency_register(
        &mut self,
        raw: &mut RawConfig,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Option<register::Register> {
        let p = raw.paths.agencies.as_ref()?;
        match register::read(&resolve(p), p) {
            Ok(r) => {
                if !raw.agencies.is_empty() {
                    self.problem(
                        "paths.agencies",
                        format!("{p:?}"),
                        "the agencies come from the register or from [[agencies]] tables, not both",
                    );
                }
                for (place, value, why) in &r.problems {
                    self.problem(place.clone(), format!("{value:?}"), why);
                }
                raw.agencies = r.agencies.clone();
                Some(r)
            }
            Err(e) => {
                self.problem("paths.agencies", format!("{p:?}"), &e);
                None
            }
        }
    }

    /// The chief administrator: `[chief_administrator]`, else the
    /// register's Health Bureau row.
    fn chief(&mut self, raw: &RawConfig, mail: &Mail) -> Option<Chief> {
        let from_register = self.chief_in_register(&raw.agencies);
        let c = raw
            .chief_administrator
            .as_ref()
            .or(from_register.as_ref())?;
        if c.name.trim().is_empty() {
            self.problem(
                "chief_administrator.name",
                format!("{:?}", c.name),
                "the chief administrator's name, as the city-wide mail greets them",
            );
        }
        if !mail.may_send_to(&c.email) {
            self.problem(
                "chief_administrator.email",
                format!("{:?}", c.email),
                "must be an address inside mail.allowed_domains",
            );
        }
        Some(Chief {
            name: c.name.trim().to_owned(),
            email: c.email.clone(),
        })
    }

    /// The chief administrator the register names, on the Health Bureau's
    /// row and no other.
    fn chief_in_register(&mut self, agencies: &[RawAgency]) -> Option<RawChief> {
        let mut from_register = None;
        for a in agencies {
            if a.chief_name.is_none() && a.chief_email.is_none() {
                continue;
            }
            match (a.health_bureau, &a.chief_name, &a.chief_email) {
                (true, Some(name), Some(email)) => {
                    from_register = Some(RawChief {
                        name: name.clone(),
                        email: email.clone(),
                    });
                }
                (true, _, _) => self.problem(
                    format!("agencies.{}.chief_name", a.id),
                    format!("{:?} / {:?}", a.chief_name, a.chief_email),
                    "the chief administrator needs both a name and an address",
                ),
                (false, _, _) => self.problem(
                    format!("agencies.{}.chief_name", a.id),
                    format!("{:?} / {:?}", a.chief_name, a.chief_email),
                    "the chief administrator is named on the Health Bureau's row only",
                ),
            }
        }
        from_register
    }

    /// A whole number within `[min, max]`, or a problem naming the rule.
    fn bounded(&mut self, key: &str, value: i64, min: i64, max: i64, rule: &str) -> u32 {
        if value < min || value > max {
            let msg = format!("must be between {min} and {max}{rule}");
            self.problem(format!("rules.{key}"), value, &msg);
            return min.max(0) as u32;
        }
        value as u32
    }

    fn followup(&mut self, f: &raw::RawFollowup) -> Followup {
        let mut days = |key: &str, value: i64, min: i64| -> u32 {
            if !(min..=365).contains(&value) {
                self.problem(
                    format!("followup.{key}"),
                    value,
                    &format!("must be between {min} and 365 (days)"),
                );
            }
            value.clamp(min, 365) as u32
        };
        let out = Followup {
            worksheet_days: days("worksheet_days", f.worksheet_days, 1),
            account_review_days: days("account_review_days", f.account_review_days, 1),
            internal_audit_days: days("internal_audit_days", f.internal_audit_days, 1),
            query_check_days: days("query_check_days", f.query_check_days, 1),
            external_prep_days: days("external_prep_days", f.external_prep_days, 1),
            investigation_days: days("investigation_days", f.investigation_days, 1),
            remind_before_days: days("remind_before_days", f.remind_before_days, 0),
            ethics_after_days: days("ethics_after_days", f.ethics_after_days, 0),
        };
        let shortest = [
            out.worksheet_days,
            out.account_review_days,
            out.internal_audit_days,
            out.query_check_days,
            out.external_prep_days,
            out.investigation_days,
        ]
        .into_iter()
        .min()
        .unwrap_or(1);
        if out.remind_before_days >= shortest {
            self.problem(
                "followup.remind_before_days",
                f.remind_before_days,
                "must be shorter than every deadline: a reminder before the work is even sent",
            );
        }
        out
    }

    /// Extra spellings: a known vocabulary, a known code, and no spelling
    /// that already means another code.
    fn vocabulary(
        &mut self,
        raw: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    ) -> BTreeMap<&'static str, Vec<(String, &'static str)>> {
        let mut out: BTreeMap<&'static str, Vec<(String, &'static str)>> = BTreeMap::new();
        for (name, codes) in raw {
            let Some(vocab) = crate::model::VOCABS.iter().find(|v| v.name == name) else {
                let names: Vec<&str> = crate::model::VOCABS.iter().map(|v| v.name).collect();
                self.problem(
                    format!("vocabulary.{name}"),
                    format!("{name:?}"),
                    &format!("not a vocabulary; one of {}", names.join(", ")),
                );
                continue;
            };
            let mut known: BTreeMap<String, &'static str> = vocab
                .spellings()
                .into_iter()
                .map(|(s, c)| (s.to_lowercase(), c))
                .collect();
            for (code, spellings) in codes {
                let Some(code) = vocab.codes().find(|c| c == code) else {
                    let all: Vec<&str> = vocab.codes().collect();
                    self.problem(
                        format!("vocabulary.{name}.{code}"),
                        format!("{code:?}"),
                        &format!("not a {name} code; one of {}", all.join(", ")),
                    );
                    continue;
                };
                for s in spellings {
                    let key = s.trim().to_lowercase();
                    match known.get(&key) {
                        _ if key.is_empty() => self.problem(
                            format!("vocabulary.{name}.{code}"),
                            format!("{s:?}"),
                            "an empty spelling",
                        ),
                        Some(other) if *other != code => self.problem(
                            format!("vocabulary.{name}.{code}"),
                            format!("{s:?}"),
                            &format!("already means {other}: a spelling means one code"),
                        ),
                        _ => {
                            known.insert(key.clone(), code);
                            out.entry(vocab.name).or_default().push((key, code));
                        }
                    }
                }
            }
        }
        out
    }

    fn limits(&mut self, l: &raw::RawLimits) -> Limits {
        let mut mib = |key: &str, value: i64| -> u64 {
            if !(1..=64 * 1024).contains(&value) {
                self.problem(
                    format!("limits.{key}"),
                    value,
                    "must be between 1 and 65536 (MiB)",
                );
            }
            (value.clamp(1, 64 * 1024) as u64) << 20
        };
        let workbook_bytes = mib("workbook_mib", l.workbook_mib);
        let entry_bytes = mib("entry_mib", l.entry_mib);
        if !(2..=10_000).contains(&l.compression_ratio) {
            self.problem(
                "limits.compression_ratio",
                l.compression_ratio,
                "must be between 2 and 10000",
            );
        }
        if !(1..=100_000_000).contains(&l.rejects_per_file) {
            self.problem(
                "limits.rejects_per_file",
                l.rejects_per_file,
                "must be between 1 and 100000000",
            );
        }
        Limits {
            workbook_bytes,
            entry_bytes,
            compression_ratio: l.compression_ratio.clamp(2, 10_000) as u64,
            rejects_per_file: l.rejects_per_file.clamp(1, 100_000_000) as usize,
        }
    }

    fn rules(&mut self, r: &RawRules, resolve: &dyn Fn(&str) -> PathBuf) -> Rules {
        const PT61: &str = ": point 6(1) of the regulation requires";
        // Fields in the order they are checked, so problems list in it.
        Rules {
            sample_account_percent: self.bounded(
                "sample_account_percent",
                r.sample_account_percent,
                20,
                100,
                &format!("{PT61} sampling at least 20% of the accounts in use"),
            ),
            sample_records_per_account: self.bounded(
                "sample_records_per_account",
                r.sample_records_per_account,
                10,
                100_000,
                &format!("{PT61} at least 10 records of each sampled account"),
            ),
            retention_years: self.bounded(
                "retention_years",
                r.retention_years,
                3,
                100,
                ": point 5(4) of the regulation requires keeping records at least 3 years",
            ),
            outbox_keep_days: self.bounded(
                "outbox_keep_days",
                r.outbox_keep_days,
                1,
                365,
                ": the days a delivered message keeps its body and attachments",
            ),
            refused_keep_days: self.bounded(
                "refused_keep_days",
                r.refused_keep_days,
                1,
                365,
                ": the days a refused return is kept for the admin to look at",
            ),
            password_max_age_days: self.bounded(
                "password_max_age_days",
                r.password_max_age_days,
                1,
                90,
                ": point 5(3) of the regulation requires changing passwords every three months",
            ),
            idle_days: self.bounded("idle_days", r.idle_days, 1, 3650, ""),
            form_validity_days: self.bounded(
                "form_validity_days",
                r.form_validity_days,
                0,
                366,
                "",
            ),
            spike_factor: self.bounded("spike_factor", r.spike_factor, 2, 1000, ""),
            spike_min: self.bounded("spike_min", r.spike_min, 1, 1_000_000, ""),
            subject_accounts_threshold: self.bounded(
                "subject_accounts_threshold",
                r.subject_accounts_threshold,
                2,
                10_000,
                "",
            ),
            failed_burst: self.bounded("failed_burst", r.failed_burst, 2, 10_000, ""),
            external_audit_units: self.bounded(
                "external_audit_units",
                r.external_audit_units,
                1,
                10_000,
                ": point 4 requires the Health Bureau to audit agencies",
            ),
            office_hours: self.office_hours(&r.office_hours),
            holidays: match &r.holidays {
                None => Holidays::default(),
                Some(p) => self.holidays(p, &resolve(p)),
            },
            fail_on_severity: self.fail_on_severity(&r.fail_on_severity),
            external_audit_critical_first: r.external_audit_critical_first,
            accept_modification_dates: r.accept_modification_dates,
        }
    }

    /// `rules.office_hours`: `HH:MM-HH:MM`, the start before the end.
    fn office_hours(&mut self, written: &str) -> (NaiveTime, NaiveTime) {
        match parse_office_hours(written) {
            Some(h) => h,
            None => {
                self.problem(
                    "rules.office_hours",
                    format!("{written:?}"),
                    "expected \"HH:MM-HH:MM\" with the start before the end, e.g. \"08:00-18:00\"",
                );
                (NaiveTime::MIN, NaiveTime::MIN)
            }
        }
    }

    /// `rules.fail_on_severity`: a severity's name.
    fn fail_on_severity(&mut self, written: &str) -> Severity {
        match Severity::ALL.into_iter().find(|s| s.name() == written) {
            Some(s) => s,
            None => {
                self.problem(
                    "rules.fail_on_severity",
                    format!("{written:?}"),
                    "allowed values: critical, high, medium, low",
                );
                Severity::High
            }
        }
    }

    /// `rules.holidays`: a TOML calendar, the DGPA's office calendar CSV
    /// ([`calendar`]), or a folder of them (its `.toml` and `.csv` files,
    /// one a year, say).
    fn holidays(&mut self, written: &str, path: &Path) -> Holidays {
        let key = "rules.holidays";
        let mut out = Holidays {
            configured: true,
            ..Holidays::default()
        };
        let files = if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut files: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.extension().is_some_and(|x| {
                                x.eq_ignore_ascii_case("toml") || x.eq_ignore_ascii_case("csv")
                            })
                        })
                        .collect();
                    files.sort();
                    files
                }
                Err(e) => {
                    self.problem(
                        key,
                        format!("{written:?}"),
                        &format!("cannot read {}: {e}", path.display()),
                    );
                    return Holidays::default();
                }
            }
        } else {
            vec![path.to_owned()]
        };
        for file in files {
            self.calendar_file(written, &file, &mut out);
        }
        out
    }

    /// One calendar file into `out`.
    fn calendar_file(&mut self, written: &str, path: &Path, out: &mut Holidays) {
        let key = "rules.holidays";
        let bytes = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) => {
                self.problem(
                    key,
                    format!("{written:?}"),
                    &format!("cannot read {}: {e}", path.display()),
                );
                return;
            }
        };
        if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("csv"))
        {
            match calendar::read_dgpa_csv(&bytes, &path.display().to_string()) {
                Ok(days) => {
                    out.holidays.extend(days.holidays);
                    out.workdays.extend(days.workdays);
                }
                Err(problems) => {
                    for p in problems {
                        self.problem(key, format!("{written:?}"), &p);
                    }
                }
            }
            return;
        }
        let text = String::from_utf8_lossy(&bytes);
        let raw: RawHolidays = match toml::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                self.problem(
                    key,
                    format!("{written:?}"),
                    &format!("{}: {e}", path.display()),
                );
                return;
            }
        };
        for (list, target) in [
            (&raw.holidays, &mut out.holidays),
            (&raw.workdays, &mut out.workdays),
        ] {
            for day in list {
                match day.date.date {
                    Some(d) if day.date.time.is_none() => {
                        if let Some(date) =
                            NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())
                        {
                            target.insert(date, day.name.clone());
                        }
                    }
                    _ => self.problem(
                        key,
                        day.date,
                        &format!(
                            "{}: expected a plain date such as 2026-01-01",
                            path.display()
                        ),
                    ),
                }
            }
        }
    }

    fn agencies(&mut self, raw: &[RawAgency]) -> Agencies {
        let by_id = self.agency_ids(raw);
        if raw.is_empty() {
            self.problem("agencies", "[]", "at least one agency is required");
        }
        self.one_agency_per_spelling(raw);
        let list: Vec<Agency> = raw
            .iter()
            .enumerate()
            .map(|(i, a)| self.agency(i, a, raw, &by_id))
            .collect();
        self.health_bureau(&list);
        Agencies { list, by_id }
    }

    /// Each agency's index by id; ids must be safe as file names and
    /// unique, names readable.
    fn agency_ids(&mut self, raw: &[RawAgency]) -> BTreeMap<String, usize> {
        let mut by_id = BTreeMap::new();
        for (i, a) in raw.iter().enumerate() {
            if !is_safe_id(&a.id) {
                self.problem(
                    format!("agencies[{i}].id"),
                    format!("{:?}", a.id),
                    &format!(
                        "must be 1 to {MAX_ID_LEN} letters, digits, '-' or '_' (it names files and folders)"
                    ),
                );
            }
            if by_id.insert(a.id.clone(), i).is_some() {
                self.problem(format!("agencies[{i}].id"), &a.id, "duplicate agency id");
            }
            // The name greets officers and heads every workbook: a name,
            // not a blank or what a spreadsheet would run.
            let name = a.name.trim();
            if name.is_empty()
                || name.starts_with(['=', '+', '-', '@'])
                || name.chars().any(char::is_control)
            {
                self.problem(
                    format!("agencies[{i}].name"),
                    format!("{:?}", a.name),
                    "the agency's name: not blank, not a formula, no control characters",
                );
            }
        }
        by_id
    }

    /// Names and aliases must each mean one agency, or an export's agency
    /// column could not be resolved.
    fn one_agency_per_spelling(&mut self, raw: &[RawAgency]) {
        let mut spelled: BTreeMap<String, &str> = BTreeMap::new();
        for (i, a) in raw.iter().enumerate() {
            let spellings = std::iter::once(&a.id)
                .chain(std::iter::once(&a.name))
                .chain(&a.aliases);
            for s in spellings {
                if let Some(other) = spelled.insert(s.to_uppercase(), &a.id)
                    && other != a.id
                {
                    self.problem(
                        format!("agencies[{i}]"),
                        format!("{s:?}"),
                        &format!("this name or alias also means agency {other}"),
                    );
                }
            }
        }
    }

    /// Agency `i` of `raw`, with its unit and purposes (inherited through
    /// its parents) and how its attachments are protected.
    fn agency(
        &mut self,
        i: usize,
        a: &RawAgency,
        raw: &[RawAgency],
        by_id: &BTreeMap<String, usize>,
    ) -> Agency {
        if let Some(p) = parent_of(a)
            && !by_id.contains_key(p)
        {
            self.problem(
                format!("agencies[{i}].parent"),
                format!("{p:?}"),
                "no agency has this id",
            );
        }
        let (unit, purposes) = self.unit_and_purposes(i, a, raw, by_id);
        let unit = unit.unwrap_or_else(|| {
            self.problem(
                format!("agencies[{i}]"),
                &a.id,
                "belongs to no requesting agency: set requesting = true on it or an ancestor",
            );
            a.id.clone()
        });
        let purposes = purposes.unwrap_or_default();
        self.purposes(i, &purposes);
        self.agency_addresses(i, a);
        let attachment = self.attachment_protection(i, a);
        Agency {
            id: a.id.clone(),
            name: a.name.clone(),
            aliases: a.aliases.clone(),
            parent: parent_of(a).map(str::to_owned),
            requesting: a.requesting,
            unit,
            purposes,
            officer_email: a.officer_email.clone(),
            ethics_email: a.ethics_email.clone(),
            attachment,
            health_bureau: a.health_bureau,
        }
    }

    /// Walks up from agency `i` to the nearest requesting ancestor-or-self
    /// (its unit), and the purposes of the nearest ancestor-or-self that
    /// lists some; a parent chain that forms a cycle is a problem.
    fn unit_and_purposes(
        &mut self,
        i: usize,
        a: &RawAgency,
        raw: &[RawAgency],
        by_id: &BTreeMap<String, usize>,
    ) -> (Option<String>, Option<Vec<String>>) {
        let mut unit = None;
        let mut purposes = None;
        let mut cur = Some(a);
        let mut steps = 0;
        while let Some(c) = cur {
            if unit.is_none() && c.requesting {
                unit = Some(c.id.clone());
            }
            if purposes.is_none() && !c.purposes.is_empty() {
                purposes = Some(c.purposes.clone());
            }
            steps += 1;
            if steps > raw.len() {
                self.problem(
                    format!("agencies[{i}].parent"),
                    format!("{:?}", a.parent),
                    "the parent chain forms a cycle",
                );
                break;
            }
            cur = parent_of(c).and_then(|p| by_id.get(p)).map(|&j| &raw[j]);
        }
        (unit, purposes)
    }

    /// Agency `i`'s purposes: known codes, at least one.
    fn purposes(&mut self, i: usize, purposes: &[String]) {
        for p in purposes {
            if !PURPOSE.codes().any(|c| c == p) {
                let allowed: Vec<_> = PURPOSE.codes().collect();
                self.problem(
                    format!("agencies[{i}].purposes"),
                    format!("{p:?}"),
                    &format!("unknown purpose; allowed: {}", allowed.join(", ")),
                );
            }
        }
        if purposes.is_empty() {
            self.problem(
                format!("agencies[{i}].purposes"),
                "[]",
                "no lawful purpose (point 3) given or inherited",
            );
        }
    }

    /// Agency `i`'s officer and ethics addresses: addresses, and an officer
    /// for a requesting agency.
    fn agency_addresses(&mut self, i: usize, a: &RawAgency) {
        if a.requesting && a.officer_email.is_none() {
            self.problem(
                format!("agencies[{i}].officer_email"),
                &a.id,
                "a requesting agency needs its designated officer's address (point 5(1))",
            );
        }
        for (k, e) in [
            ("officer_email", &a.officer_email),
            ("ethics_email", &a.ethics_email),
        ] {
            if let Some(e) = e
                && !is_address(e)
            {
                self.problem(
                    format!("agencies[{i}].{k}"),
                    format!("{e:?}"),
                    "not an email address",
                );
            }
        }
    }

    /// How agency `i`'s workbooks are protected: a password from an
    /// environment variable, none (with the reason), or an issued one.
    fn attachment_protection(&mut self, i: usize, a: &RawAgency) -> AttachmentProtection {
        if let Some(v) = &a.attachment_password_env
            && (!a.requesting
                || v.is_empty()
                || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            self.problem(
                format!("agencies[{i}].attachment_password_env"),
                format!("{v:?}"),
                "the name of an environment variable (letters, digits, _), on a requesting agency",
            );
        }
        if let Some(r) = &a.attachment_unencrypted {
            if !a.requesting || r.trim().is_empty() {
                self.problem(
                    format!("agencies[{i}].attachment_unencrypted"),
                    format!("{r:?}"),
                    "the reason this requesting agency's workbooks are mailed unencrypted",
                );
            } else if a.attachment_password_env.is_some() {
                self.problem(
                    format!("agencies[{i}].attachment_unencrypted"),
                    format!("{r:?}"),
                    "an agency is either encrypted (attachment_password_env) or exempted, not both",
                );
            }
        }
        match (&a.attachment_password_env, &a.attachment_unencrypted) {
            (Some(v), _) => AttachmentProtection::Env(v.clone()),
            (None, Some(r)) => AttachmentProtection::Unencrypted(r.trim().to_owned()),
            (None, None) => AttachmentProtection::Issued,
        }
    }

    /// Exactly one agency is the health bureau, and it requests.
    fn health_bureau(&mut self, list: &[Agency]) {
        let bureaus: Vec<_> = list
            .iter()
            .filter(|a| a.health_bureau)
            .map(|a| a.id.as_str())
            .collect();
        if bureaus.len() != 1 {
            self.problem(
                "agencies.health_bureau",
                format!("{bureaus:?}"),
                "exactly one agency must be the health bureau (point 4)",
            );
        } else if let Some(hb) = list.iter().find(|a| a.health_bureau)
            && !hb.requesting
        {
            self.problem(
                "agencies.health_bureau",
                &hb.id,
                "the health bureau must be a requesting agency",
            );
        }
    }

    fn mail(
        &mut self,
        m: &RawMail,
        agencies: &Agencies,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Mail {
        let transport = self.transport(&m.transport);
        for (k, e) in [("mail.from", &m.from), ("mail.admin", &m.admin)] {
            if !is_address(e) {
                self.problem(k, format!("{e:?}"), "not an email address");
            }
        }
        self.smtp_settings(m, transport);
        let allowed: Vec<String> = m.allowed_domains.iter().map(|d| d.to_lowercase()).collect();
        if !allowed.is_empty() {
            self.addresses_in_allowed_domains(&allowed, m, agencies);
        }
        let retry_window_hours = match parse_hours(&m.retry_window) {
            Some(h) => h,
            None => {
                self.problem(
                    "mail.retry_window",
                    format!("{:?}", m.retry_window),
                    "expected hours or days, e.g. \"48h\" or \"2d\"",
                );
                48
            }
        };
        let unknown_resend_after_hours = m.unknown_resend_after.as_ref().and_then(|s| {
            let h = parse_hours(s);
            if h.is_none() {
                self.problem(
                    "mail.unknown_resend_after",
                    format!("{s:?}"),
                    "expected hours or days, e.g. \"24h\" or \"2d\"",
                );
            }
            h
        });
        if let Some(r) = &m.reply_to {
            self.reply_to(r, &allowed);
        }
        Mail {
            unknown_resend_after_hours,
            transport,
            from: m.from.clone(),
            admin: m.admin.clone(),
            allowed_domains: allowed,
            smtp_host: m.smtp_host.clone(),
            smtp_port: m.smtp_port,
            smtp_security: m.smtp_security.clone(),
            smtp_username: m.smtp_username.clone(),
            password_env: m.password_env.clone(),
            password_file: m.password_file.as_deref().map(resolve),
            ca_file: m.ca_file.as_deref().map(resolve),
            max_attempts: m.max_attempts,
            retry_window_hours,
            max_attachment_mb: m.max_attachment_mb,
            reply_to: m.reply_to.clone(),
            contact: m.contact.clone(),
        }
    }

    /// `mail.transport`: `file` or `smtp`.
    fn transport(&mut self, written: &str) -> Transport {
        match written {
            "file" => Transport::File,
            "smtp" => Transport::Smtp,
            other => {
                self.problem(
                    "mail.transport",
                    format!("{other:?}"),
                    "allowed values: file, smtp",
                );
                Transport::File
            }
        }
    }

    /// The SMTP settings: a host and at most one password source when mail
    /// goes by SMTP, and a TLS mode if one is given.
    fn smtp_settings(&mut self, m: &RawMail, transport: Transport) {
        if transport == Transport::Smtp {
            if m.smtp_host.is_none() {
                self.problem(
                    "mail.smtp_host",
                    "(missing)",
                    "required when transport = \"smtp\"",
                );
            }
            if m.password_env.is_some() && m.password_file.is_some() {
                self.problem(
                    "mail.password_env",
                    "(both set)",
                    "give password_env or password_file, not both",
                );
            }
        }
        if let Some(s) = &m.smtp_security
            && s != "starttls"
            && s != "tls"
        {
            self.problem(
                "mail.smtp_security",
                format!("{s:?}"),
                "allowed values: starttls, tls (TLS is always required)",
            );
        }
    }

    /// The admin's and every agency's addresses lie in the `allowed`
    /// domains (lowercase).
    fn addresses_in_allowed_domains(
        &mut self,
        allowed: &[String],
        m: &RawMail,
        agencies: &Agencies,
    ) {
        let mut check = |key: String, addr: &str| {
            if !domain_allowed(allowed, addr) {
                self.problem(
                    key,
                    format!("{addr:?}"),
                    &format!("outside mail.allowed_domains {allowed:?}"),
                );
            }
        };
        check("mail.admin".to_owned(), &m.admin);
        for a in agencies.iter() {
            for (k, e) in [
                ("officer_email", &a.officer_email),
                ("ethics_email", &a.ethics_email),
            ] {
                if let Some(e) = e {
                    check(format!("agencies.{}.{k}", a.id), e);
                }
            }
        }
    }

    /// `mail.reply_to`: an address in the `allowed` domains, if any.
    fn reply_to(&mut self, r: &str, allowed: &[String]) {
        let domain = domain_of(r).to_lowercase();
        if !r.contains('@')
            || (!allowed.is_empty() && !allowed.iter().any(|d| d.to_lowercase() == domain))
        {
            self.problem(
                "mail.reply_to",
                format!("{r:?}"),
                "must be an address inside mail.allowed_domains",
            );
        }
    }

    fn table_column(
        &mut self,
        key: &str,
        table: &str,
        column: &str,
    ) -> Option<(Table, &'static str)> {
        let Some(t) = Table::parse(table) else {
            let allowed: Vec<_> = Table::ALL.iter().map(|t| t.as_str()).collect();
            self.problem(
                key,
                format!("{table:?}"),
                &format!("unknown table; allowed: {}", allowed.join(", ")),
            );
            return None;
        };
        match t.column(column) {
            Some(c) => Some((t, c.name)),
            None => {
                let allowed: Vec<_> = t.columns().iter().map(|c| c.name).collect();
                self.problem(
                    format!("{key}.{column}"),
                    format!("{column:?}"),
                    &format!("not a column of {table}; allowed: {}", allowed.join(", ")),
                );
                None
            }
        }
    }

    fn column_aliases(
        &mut self,
        raw: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    ) -> BTreeMap<Table, BTreeMap<&'static str, Vec<String>>> {
        let mut out: BTreeMap<Table, BTreeMap<&'static str, Vec<String>>> = BTreeMap::new();
        for (table, cols) in raw {
            for (column, aliases) in cols {
                if let Some((t, c)) = self.table_column(&format!("columns.{table}"), table, column)
                {
                    out.entry(t).or_default().insert(c, aliases.clone());
                }
            }
        }
        out
    }

    fn date_format(&mut self, key: String, value: &str) -> DateFormat {
        DateFormat::parse(value).unwrap_or_else(|| {
            self.problem(
                key,
                format!("{value:?}"),
                "allowed values: auto, roc, gregorian",
            );
            DateFormat::Auto
        })
    }

    fn formats(
        &mut self,
        raw: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> BTreeMap<Table, BTreeMap<&'static str, DateFormat>> {
        let mut out: BTreeMap<Table, BTreeMap<&'static str, DateFormat>> = BTreeMap::new();
        for (table, cols) in raw {
            for (column, fmt) in cols {
                if let Some((t, c)) = self.table_column(&format!("formats.{table}"), table, column)
                {
                    let f = self.date_format(format!("formats.{table}.{column}"), fmt);
                    out.entry(t).or_default().insert(c, f);
                }
            }
        }
        out
    }

    fn inputs(&mut self, raw: &[RawInput]) -> Vec<InputOverride> {
        raw.iter()
            .enumerate()
            .map(|(i, r)| {
                let encoding = match r.encoding.as_deref() {
                    None | Some("auto") => Encoding::Auto,
                    Some("utf-8") | Some("utf8") => Encoding::Utf8,
                    Some("big5") | Some("cp950") => Encoding::Big5,
                    Some(other) => {
                        self.problem(
                            format!("inputs[{i}].encoding"),
                            format!("{other:?}"),
                            "allowed values: auto, utf-8, big5",
                        );
                        Encoding::Auto
                    }
                };
                let delimiter = match r.delimiter.as_deref() {
                    None => None,
                    Some(",") => Some(b','),
                    Some("\t") => Some(b'\t'),
                    Some(";") => Some(b';'),
                    Some(other) => {
                        self.problem(
                            format!("inputs[{i}].delimiter"),
                            format!("{other:?}"),
                            "allowed values: \",\", \"\\t\", \";\"",
                        );
                        None
                    }
                };
                let formats = r
                    .formats
                    .iter()
                    .map(|(c, f)| {
                        (
                            c.clone(),
                            self.date_format(format!("inputs[{i}].formats.{c}"), f),
                        )
                    })
                    .collect();
                InputOverride {
                    pattern: r.pattern.clone(),
                    encoding,
                    sheet: r.sheet.clone(),
                    delimiter,
                    formats,
                }
            })
            .collect()
    }
}

/// Removes `.` and `..` components without touching the file system, so
/// `sample_data/../var` reads `var` in every message and path.
fn lexical_normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn parse_office_hours(s: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (a, b) = s.split_once('-')?;
    let a = NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?;
    let b = NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?;
    (a < b).then_some((a, b))
}

fn parse_hours(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some(h) = s.strip_suffix('h') {
        return h.parse().ok();
    }
    s.strip_suffix('d')?.parse::<u32>().ok().map(|d| d * 24)
}

/// The address inside `Name <addr>` or the whole string.
fn bare_address(s: &str) -> &str {
    match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s.trim(),
    }
}

/// Whether `addr` is inside `allowed` (a domain or a subdomain of one);
/// everything is when `allowed` is empty.
fn domain_allowed(allowed: &[String], addr: &str) -> bool {
    let domain = domain_of(addr).to_lowercase();
    allowed.is_empty()
        || allowed
            .iter()
            .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
}

impl Mail {
    /// Where returns and questions go: `reply_to`, else `from`.
    pub fn reply_address(&self) -> &str {
        self.reply_to.as_deref().unwrap_or(&self.from)
    }

    /// Whether mail may go to `addr`: an address, inside
    /// `mail.allowed_domains`.
    pub fn may_send_to(&self, addr: &str) -> bool {
        is_address(addr) && domain_allowed(&self.allowed_domains, addr)
    }
}

/// The domain of `addr` or `Name <addr>`.
pub(crate) fn domain_of(s: &str) -> &str {
    bare_address(s).rsplit_once('@').map_or("", |(_, d)| d)
}

/// Whether `s` is one mailbox, as the transport that sends to it parses
/// one (`a@x.gov.tw,b@y.gov.tw` in one cell passed a looser check, then
/// failed every run at sending).
pub(crate) fn is_address(s: &str) -> bool {
    if s.parse::<lettre::message::Mailbox>().is_err() {
        return false;
    }
    let addr = bare_address(s);
    match addr.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !addr.contains(char::is_whitespace)
        }
        None => false,
    }
}

impl InputOverride {
    /// Whether `rel` (a path relative to the inbox, `/`-separated) matches.
    pub fn matches(&self, rel: &str) -> bool {
        glob_match(self.pattern.as_bytes(), rel.as_bytes())
    }
}

/// `*` matches any run of characters except `/`; `?` any one character.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_match(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && glob_match(p, &s[1..]))
        }
        (Some(b'?'), Some(&c)) => c != b'/' && glob_match(&p[1..], &s[1..]),
        (Some(a), Some(b)) => a == b && glob_match(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
