//! The generator of the fictional sample city in `sample_data/`, and of large
//! query logs for benchmarks.
//!
//! Deterministic: one ChaCha20 stream from the seed, only integer
//! arithmetic on its output (no floating-point library calls whose results
//! could differ between machines), fixed workbook metadata. A test checks
//! that the committed `sample_data/` is byte for byte what this writes.
//!
//! The city has planted problems for the audit checks: departed, retired,
//! transferred, suspended and ineligible holders; holders unknown to HR;
//! idle, never-used and duplicate accounts; stale passwords; an account
//! missing from the roster; agencies with no or two officers; queries
//! without forms, with forms approved after the query or never approved;
//! off-hours queries; a volume spike; one subject queried by many accounts;
//! queries for a purpose the agency does not have.

mod city;
mod load;
mod plant;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng};

pub use city::AGENCIES;
pub use load::{LoadSize, load_planted, write_load_city};

pub const DEFAULT_SEED: u64 = 20260702;

/// Query-log rows in the sample city's half-year.
pub const SAMPLE_QUERY_ROWS: usize = 50_000;

struct Rand(ChaCha20Rng);

impl Rand {
    fn new(seed: u64) -> Rand {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_be_bytes());
        key[8..24].copy_from_slice(b"webir-audit/synt");
        Rand(ChaCha20Rng::from_seed(key))
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; bias < 2^-40 here).
    fn below(&mut self, n: u64) -> u64 {
        ((self.0.next_u64() as u128 * n as u128) >> 64) as u64
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const SURNAMES: &[&str] = &[
    "陳", "林", "黃", "張", "李", "王", "吳", "劉", "蔡", "楊", "許", "鄭", "謝", "郭", "洪", "曾",
    "邱", "廖", "賴", "周",
];
const GIVEN: &[&str] = &[
    "志", "明", "淑", "芬", "家", "豪", "雅", "婷", "俊", "宏", "美", "玲", "建", "國", "怡", "君",
    "文", "傑", "欣", "惠", "佳", "穎", "柏", "翰", "宗", "翔", "秀", "英", "冠", "廷",
];
const QUERY_ITEMS: &[&str] = &["個人投保資料", "投保單位資料", "眷屬投保資料", "投保紀錄"];

fn name(r: &mut Rand) -> String {
    format!("{}{}{}", r.pick(SURNAMES), r.pick(GIVEN), r.pick(GIVEN))
}

/// A national ID with a valid check digit.
fn national_id(r: &mut Rand) -> String {
    const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVXYWZIO";
    let li = r.below(LETTERS.len() as u64) as usize;
    let code = 10 + li as u32; // A=10 … O=35, the official letter order
    let mut digits = vec![if r.chance(500) { 1 } else { 2 }];
    digits.extend((0..7).map(|_| r.below(10) as u32));
    let mut sum = code / 10 + (code % 10) * 9;
    for (i, d) in digits.iter().enumerate() {
        sum += d * (8 - i as u32);
    }
    let check = (10 - sum % 10) % 10;
    let mut s = String::new();
    s.push(LETTERS[li] as char);
    for d in digits {
        s.push(char::from_digit(d, 10).unwrap_or('0'));
    }
    s.push(char::from_digit(check, 10).unwrap_or('0'));
    s
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("static date")
}

fn is_workday(d: NaiveDate) -> bool {
    let ds = d.format("%Y-%m-%d").to_string();
    if city::WORKDAYS.iter().any(|(w, _)| *w == ds) {
        return true;
    }
    d.weekday().number_from_monday() <= 5 && !city::HOLIDAYS.iter().any(|(h, _)| *h == ds)
}

#[derive(Debug, Clone)]
struct Person {
    person_id: String,
    name: String,
    agency: usize,
    employment: &'static str,
    status: &'static str,
    effective: NaiveDate,
    national_id: String,
}

#[derive(Debug, Clone)]
struct Account {
    id: String,
    person: usize,
    agency: usize,
    role: &'static str,
    status: &'static str,
    created: NaiveDate,
    password_changed: Option<NaiveDate>,
    disabled_on: Option<NaiveDate>,
    /// Relative query volume; 0 = never used.
    weight: u64,
    /// No queries after this day (idle accounts, departed holders).
    last_day: NaiveDate,
    ip: String,
}

#[derive(Debug, Clone)]
struct Query {
    account: usize,
    at: NaiveDateTime,
    item: &'static str,
    subject: String,
    purpose: &'static str,
    success: bool,
}

#[derive(Debug, Clone)]
struct Form {
    id: String,
    account: usize,
    subject: String,
    purpose: &'static str,
    reason: &'static str,
    requested: NaiveDateTime,
    approver: Option<String>,
    approved: Option<NaiveDateTime>,
}

struct City {
    people: Vec<Person>,
    accounts: Vec<Account>,
    queries: Vec<Query>,
    forms: Vec<Form>,
    /// The account that appears in query logs but not in the roster.
    ghost: usize,
    /// An account the January roster snapshot lists and the July one no
    /// longer does (it has no queries).
    removed: Account,
    /// The applications register's three planted problems: an account
    /// nobody applied for, one opened before its approval, one applied
    /// for by another person.
    app_missing: usize,
    app_late: usize,
    app_other: usize,
    /// A transferred holder's account with a 異動 application after the
    /// transfer.
    app_changed: usize,
}

const PERIOD_START: &str = "2026-01-01";
const PERIOD_DAYS: i64 = 181;
const EXPORT_DAY: &str = "2026-07-02";

/// How a case departs from a clean one (a planted query problem).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Twist {
    Clean,
    NoForm,
    NotApproved,
    ApprovedAfter,
    Expired,
    WrongPurpose,
    OffHours,
    /// Twelve failed queries within half an hour.
    FailedBurst,
    /// The query's purpose is not its form's.
    PurposeMismatch,
    /// The holder approved their own form.
    SelfApproved,
}

/// One planted problem: the code the checks must report and the account
/// (or, for agency-level codes, the agency id) it is about.
pub type Planted = (crate::checks::Code, String);

struct Builder {
    r: Rand,
    start: NaiveDate,
    period_end: NaiveDateTime,
    accounts: Vec<Account>,
    queries: Vec<Query>,
    forms: Vec<Form>,
    approvers: Vec<String>,
    /// Each account's holder's name.
    holders: Vec<String>,
    /// The national IDs queries are about.
    subjects: Vec<String>,
    planted: Vec<Planted>,
}

const REASONS: &[(&str, &[&str])] = &[
    (
        "social_welfare",
        &[
            "低收入戶資格審查",
            "中低收入老人生活津貼審核",
            "身心障礙者保費補助審核",
        ],
    ),
    ("public_health", &["傳染病個案疫調", "接觸者追蹤"]),
    (
        "criminal_investigation",
        &["刑案偵查查證身分", "通緝犯查緝"],
    ),
    ("drug_follow_up", &["毒品施用者追蹤輔導"]),
    ("military_service", &["役男身分查核", "替代役徵集查核"]),
    ("unlicensed_lodging", &["無照旅宿經營者查核"]),
    ("other", &["其他法定職務"]),
];

/// How forms write each purpose: the label or the law.
const PURPOSE_SPELLINGS: &[(&str, &[&str])] = &[
    ("social_welfare", &["社政", "社會救助法", "老人福利法"]),
    ("public_health", &["公共衛生", "傳染病防治法"]),
    ("criminal_investigation", &["犯罪偵查", "刑事訴訟法"]),
    (
        "drug_follow_up",
        &["毒品施用者追蹤輔導", "毒品危害防制條例"],
    ),
    ("military_service", &["兵役", "兵役法"]),
    ("unlicensed_lodging", &["無照旅宿", "發展觀光條例"]),
    ("other", &["其他法定職務"]),
];

fn lookup<'a>(table: &'a [(&str, &'a [&'a str])], key: &str) -> &'a [&'a str] {
    table
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(&[], |(_, v)| *v)
}

fn unit_of(ai: usize) -> usize {
    let mut cur = ai;
    while !AGENCIES[cur].4 {
        cur = AGENCIES
            .iter()
            .position(|x| x.0 == AGENCIES[cur].3)
            .expect("parent");
    }
    cur
}

impl Builder {
    fn workday_from(&mut self, lo: i64, hi: i64) -> NaiveDate {
        let mut d = self.start + Duration::days(self.r.range(lo, hi.max(lo + 1)));
        while !is_workday(d) {
            d += Duration::days(1);
        }
        d
    }

    /// A time in office hours (08:30–17:30) on `d`.
    fn office_time(&mut self, d: NaiveDate) -> NaiveDateTime {
        d.and_hms_opt(8, 30, 0).expect("time") + Duration::seconds(self.r.range(0, 9 * 3600))
    }

    /// One case: a request form, then `n` queries of one subject; the first
    /// on `day`, the rest on later workdays within a week.
    fn case(&mut self, a: usize, day: NaiveDate, subject: String, n: usize, twist: Twist) {
        let (agency, last_day) = (self.accounts[a].agency, self.accounts[a].last_day);
        let (purpose, form_purpose) = self.case_purposes(agency, twist);
        // Approval between 08:30 and 16:00, the first query up to an hour later.
        let t0 =
            day.and_hms_opt(8, 30, 0).expect("time") + Duration::seconds(self.r.range(0, 27_000));
        let first = t0 + Duration::minutes(self.r.range(5, 60));
        for t in self.query_times(day, first, n, twist) {
            if t >= self.period_end || t.date() > last_day {
                break;
            }
            let success = twist != Twist::FailedBurst && !self.r.chance(30);
            let item = self.r.pick(QUERY_ITEMS);
            self.queries.push(Query {
                account: a,
                at: t,
                item,
                subject: subject.clone(),
                purpose,
                success,
            });
        }
        if twist == Twist::NoForm {
            return;
        }
        let (requested, approver, approved) = self.form_approval(a, agency, t0, first, twist);
        let label = self.r.pick(lookup(PURPOSE_SPELLINGS, form_purpose));
        let reason = self.r.pick(lookup(REASONS, purpose));
        self.forms.push(Form {
            id: format!("F2026-{:06}", self.forms.len() + 1),
            account: a,
            subject,
            purpose: label,
            reason,
            requested,
            approver,
            approved,
        });
    }

    /// The purpose a case's queries give and the one its form gives: one
    /// of the agency's, unless the twist makes them differ or makes both
    /// one the agency does not have.
    fn case_purposes(&mut self, agency: usize, twist: Twist) -> (&'static str, &'static str) {
        let purposes = AGENCIES[unit_of(agency)].5;
        let drawn = self.r.pick(purposes);
        match twist {
            Twist::PurposeMismatch => {
                let other = purposes
                    .iter()
                    .chain(&["other", "public_health"])
                    .copied()
                    .find(|p| *p != drawn)
                    .unwrap_or("other");
                (other, drawn)
            }
            Twist::WrongPurpose => {
                let not_allowed = if purposes.contains(&"criminal_investigation") {
                    "social_welfare"
                } else {
                    "criminal_investigation"
                };
                (not_allowed, not_allowed)
            }
            _ => (drawn, drawn),
        }
    }

    /// When a case's queries are made: `first`, then later ones as the
    /// twist has it (one night query instead, a burst of failures, or up
    /// to `n` on later workdays).
    fn query_times(
        &mut self,
        day: NaiveDate,
        first: NaiveDateTime,
        n: usize,
        twist: Twist,
    ) -> Vec<NaiveDateTime> {
        match twist {
            Twist::OffHours => {
                let night = day.and_hms_opt(21, 0, 0).expect("time")
                    + Duration::seconds(self.r.range(0, 9000));
                vec![night]
            }
            Twist::FailedBurst => (0..12).map(|k| first + Duration::minutes(2 * k)).collect(),
            _ => {
                let mut times = vec![first];
                let mut d = day;
                for _ in 1..n {
                    d += Duration::days(self.r.range(1, 3));
                    while !is_workday(d) {
                        d += Duration::days(1);
                    }
                    let t = self.office_time(d);
                    times.push(t);
                }
                times
            }
        }
    }

    /// A form's request time, approver and approval time: approved at
    /// `t0` (before the `first` query) unless the twist says otherwise.
    fn form_approval(
        &mut self,
        a: usize,
        agency: usize,
        t0: NaiveDateTime,
        first: NaiveDateTime,
        twist: Twist,
    ) -> (NaiveDateTime, Option<String>, Option<NaiveDateTime>) {
        let approver = if twist == Twist::SelfApproved {
            self.holders[a].clone()
        } else {
            self.approvers[agency].clone()
        };
        match twist {
            Twist::NotApproved => (t0 - Duration::minutes(self.r.range(5, 25)), None, None),
            Twist::ApprovedAfter => (
                t0 - Duration::minutes(self.r.range(5, 25)),
                Some(approver),
                Some(first + Duration::minutes(self.r.range(30, 300))),
            ),
            Twist::Expired => {
                let old = t0 - Duration::days(40);
                (
                    old - Duration::minutes(self.r.range(5, 25)),
                    Some(approver),
                    Some(old),
                )
            }
            _ => (
                t0 - Duration::minutes(self.r.range(5, 25)),
                Some(approver),
                Some(t0),
            ),
        }
    }
}

impl Builder {
    /// Starts the query log of `staff`'s accounts: draws each agency's
    /// approver, then the subjects queries are about.
    fn new(staff: plant::Staff, query_rows: usize) -> (Builder, Vec<Person>) {
        let plant::Staff {
            mut r,
            start,
            people,
            accounts,
            planted,
            ..
        } = staff;
        let approvers: Vec<String> = (0..AGENCIES.len()).map(|_| name(&mut r)).collect();
        let holders: Vec<String> = accounts
            .iter()
            .map(|a| people[a.person].name.clone())
            .collect();
        let subjects: Vec<String> = (0..200_000).map(|_| national_id(&mut r)).collect();
        let builder = Builder {
            r,
            start,
            period_end: (start + Duration::days(PERIOD_DAYS))
                .and_hms_opt(0, 0, 0)
                .expect("time"),
            accounts,
            queries: Vec::with_capacity(query_rows + 1000),
            forms: Vec::new(),
            approvers,
            holders,
            subjects,
            planted,
        };
        (builder, people)
    }

    /// A subject drawn from the city's subjects.
    fn subject(&mut self) -> String {
        self.subjects[self.r.below(self.subjects.len() as u64) as usize].clone()
    }

    /// The cases of the planted query problems in `plan`; `people` gives
    /// the self lookup and the coworker lookups their subjects.
    fn plant_query_cases(&mut self, plan: &plant::QueryPlan, people: &[Person]) {
        for &(a, twist, n_cases) in &plan.twisted {
            for _ in 0..n_cases {
                let day = self.workday_from(5, 150);
                let s = self.subject();
                self.case(a, day, s, 1, twist);
            }
        }
        let own_id = people[self.accounts[plan.self_looker].person]
            .national_id
            .clone();
        let day = self.workday_from(5, 150);
        self.case(plan.self_looker, day, own_id, 1, Twist::Clean);
        for k in 0..2 {
            let coworker = people
                [(self.accounts[plan.coworker_looker].person + 7 + k) % people.len()]
            .national_id
            .clone();
            let day = self.workday_from(5, 150);
            self.case(plan.coworker_looker, day, coworker, 1, Twist::NoForm);
        }
        let spike_day = date("2026-05-12");
        for _ in 0..400 {
            let s = self.subject();
            self.case(plan.spike_account, spike_day, s, 1, Twist::Clean);
        }
        let popular = self.subject();
        for &a in &plan.many {
            let day = self.workday_from(40, 150);
            self.case(a, day, popular.clone(), 1, Twist::Clean);
        }
    }

    /// Clean cases until the log has `query_rows` queries, each of an
    /// account drawn in proportion to its weight, within its active days.
    fn fill_with_clean_traffic(&mut self, query_rows: usize) {
        let total_weight: u64 = self.accounts.iter().map(|a| a.weight).sum();
        while self.queries.len() < query_rows {
            let mut x = self.r.below(total_weight);
            let mut a = 0;
            while x >= self.accounts[a].weight {
                x -= self.accounts[a].weight;
                a += 1;
            }
            let last = (self.accounts[a].last_day - self.start)
                .num_days()
                .clamp(1, PERIOD_DAYS - 7);
            let first = (self.accounts[a].created - self.start)
                .num_days()
                .clamp(0, last - 1);
            let day = self.workday_from(first, last);
            let s = self.subject();
            let n = 1 + self.r.below(4) as usize;
            self.case(a, day, s, n, Twist::Clean);
        }
    }
}

fn build_city(seed: u64, query_rows: usize) -> (City, Vec<Planted>) {
    let mut staff = plant::Staff::hired(seed, date(PERIOD_START), date(EXPORT_DAY));
    staff.appoint_officers();
    let holder_problems = staff.plant_holder_problems();
    staff.plant_account_problems();
    let gaps = staff.plant_roster_gaps();
    let plan = staff.plan_query_problems();
    let applications = staff.plant_application_problems();

    // The planted cases first, then clean traffic up to the row count.
    let (mut b, mut people) = Builder::new(staff, query_rows);
    b.plant_query_cases(&plan, &people);
    b.fill_with_clean_traffic(query_rows);
    let mut queries = b.queries;
    queries.truncate(query_rows);
    queries.sort_by(|x, y| {
        x.at.cmp(&y.at)
            .then(x.account.cmp(&y.account))
            .then(x.subject.cmp(&y.subject))
    });
    // People unknown to HR are left out of the HR list when written.
    for p in holder_problems.unknown_holders {
        people[p].person_id = format!("X{}", &people[p].person_id[1..]);
    }
    let city = City {
        people,
        accounts: b.accounts,
        queries,
        forms: b.forms,
        ghost: gaps.ghost,
        removed: gaps.removed,
        app_missing: applications.missing,
        app_late: applications.late,
        app_other: applications.other_holder,
        app_changed: holder_problems.transferred[0],
    };
    (city, b.planted)
}

/// The problems planted in the sample city built from `seed`, for tests
/// that check every one is found and nothing else is.
pub fn planted(seed: u64) -> Vec<Planted> {
    let mut p = build_city(seed, SAMPLE_QUERY_ROWS).1;
    p.sort();
    p.dedup();
    p
}

/// Writes the whole sample city (config, holidays, inbox) into `dir`.
pub fn write_sample_city(dir: &Path, seed: u64) -> Result<()> {
    let (city, _) = build_city(seed, SAMPLE_QUERY_ROWS);
    let inbox = dir.join("inbox");
    for sub in ["query_logs", "roster", "hr", "forms"] {
        std::fs::create_dir_all(inbox.join(sub))
            .with_context(|| format!("creating {}", inbox.join(sub).display()))?;
    }
    std::fs::write(dir.join("holidays.toml"), city::holidays_toml())?;
    // The agencies as the Health Bureau keeps them: the register workbook,
    // exported from the same agencies the TOML form lists.
    let config = dir.join("webir-audit.toml");
    std::fs::write(&config, city::config_toml())?;
    let loaded = crate::config::load(&config)?;
    crate::config::register::write(
        &loaded,
        &dir.join("agencies.xlsx"),
        date("2026-07-02").and_hms_opt(0, 0, 0).expect("time"),
    )?;
    std::fs::write(&config, city::config_toml_register("agencies.xlsx"))?;

    let month = |q: &Query| q.at.month();
    let q1: Vec<&Query> = city.queries.iter().filter(|q| month(q) <= 3).collect();
    let q2: Vec<&Query> = city
        .queries
        .iter()
        .filter(|q| (4..=5).contains(&month(q)))
        .collect();
    let q3: Vec<&Query> = city.queries.iter().filter(|q| month(q) >= 6).collect();
    write_queries_utf8(
        &city,
        &q1,
        &inbox.join("query_logs/webir_querylog_2026Q1.csv"),
    )?;
    write_queries_big5(
        &city,
        &q2,
        &inbox.join("query_logs/webir_querylog_202604-05_big5.csv"),
    )?;
    write_queries_xlsx(
        &city,
        &q3,
        &inbox.join("query_logs/webir_querylog_202606.xlsx"),
    )?;
    // Two roster snapshots: January's (with an account removed since) and
    // July's, which the runs of 2026H1 use.
    write_roster(
        &city,
        &inbox.join("roster/webir_accounts_20260105.xlsx"),
        "資料日期：115/01/05",
        Some(&city.removed),
    )?;
    write_roster(
        &city,
        &inbox.join("roster/webir_accounts_20260702.xlsx"),
        "資料日期：115/07/02",
        None,
    )?;
    write_hr(&city, &inbox.join("hr/hr_status_20260702.csv"))?;
    write_forms(&city, &inbox.join("forms/request_forms_2026H1.csv"))?;
    std::fs::create_dir_all(inbox.join("applications"))?;
    write_applications(
        &city,
        &inbox.join("applications/account_applications_20260702.csv"),
    )?;
    Ok(())
}

/// Writes the sample city's config with an inbox holding one UTF-8 CSV
/// query log of `rows` rows, a register of one request form per 33
/// queries (300,000 forms for 10,000,000 rows), and the roster and HR list
/// of the accounts that query: the benchmark input. Each form is approved
/// on a workday morning and its 33 queries follow within hours, so most
/// queries are explained, as in a well-run city.
pub fn write_large_query_log(dir: &Path, rows: usize, seed: u64) -> Result<()> {
    let logs = dir.join("inbox/query_logs");
    let forms_dir = dir.join("inbox/forms");
    std::fs::create_dir_all(&logs)?;
    std::fs::create_dir_all(&forms_dir)?;
    std::fs::write(dir.join("webir-audit.toml"), city::config_toml())?;
    std::fs::write(dir.join("holidays.toml"), city::holidays_toml())?;
    // Its own stream: the log and forms are what they were before the
    // roster was added.
    write_large_roster(dir, &mut Rand::new(seed ^ 0x0052_4f53_5445_5200))?;
    let mut r = Rand::new(seed);
    let subjects: Vec<String> = (0..200_000).map(|_| national_id(&mut r)).collect();
    let start = date(PERIOD_START);
    const PER_FORM: usize = 33;
    let n_forms = rows.div_ceil(PER_FORM).max(1);

    let mut q = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(logs.join(format!("query_log_{rows}.csv")))?,
    );
    writeln!(
        q,
        "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP"
    )?;
    let mut f = std::io::BufWriter::with_capacity(
        1 << 20,
        // Dated by its name, as the period's registers are.
        std::fs::File::create(forms_dir.join("request_forms_20260702.csv"))?,
    );
    writeln!(
        f,
        "表單編號,查詢帳號,被查詢人身分證號,查詢目的,查詢事由,申請時間,核可主管,核可時間"
    )?;
    let mut written = 0;
    for k in 0..n_forms {
        let ai = r.below(AGENCIES.len() as u64) as usize;
        let agency = AGENCIES[ai].0;
        let purpose = r.pick(AGENCIES[unit_of(ai)].5);
        let account = 20001 + ai as u64 * 100 + r.below(20);
        let subject = &subjects[r.below(subjects.len() as u64) as usize];
        let mut day = start + Duration::days((k as i64 * (PERIOD_DAYS - 3)) / n_forms as i64);
        while !is_workday(day) {
            day += Duration::days(1);
        }
        let approved =
            day.and_hms_opt(8, 30, 0).expect("time") + Duration::seconds(r.range(0, 3600));
        writeln!(
            f,
            "F{k:07},W{account:05},{subject},{purpose},業務需要,{},主管,{}",
            (approved - Duration::minutes(10)).format("%Y-%m-%d %H:%M:%S"),
            approved.format("%Y-%m-%d %H:%M:%S")
        )?;
        for j in 0..PER_FORM.min(rows - written) {
            let at = approved + Duration::seconds(60 + 300 * j as i64 + r.range(0, 240));
            writeln!(
                q,
                "W{account:05},{},{},{subject},{purpose},{},{agency},10.{}.{}.{}",
                at.format("%Y-%m-%d %H:%M:%S"),
                r.pick(QUERY_ITEMS),
                if r.chance(30) { "失敗" } else { "成功" },
                20 + ai,
                r.below(4),
                r.below(250)
            )?;
        }
        written += PER_FORM.min(rows - written);
    }
    q.flush()?;
    f.flush()?;
    Ok(())
}

/// The roster and HR list of the benchmark's accounts (`W{20001 + 100 *
/// agency + 0..19}`): every account active, held by a permanent employee
/// in service at its agency, so the roster's checks run and find what the
/// log holds, not an inbox without a roster.
fn write_large_roster(dir: &Path, r: &mut Rand) -> Result<()> {
    std::fs::create_dir_all(dir.join("inbox/roster"))?;
    std::fs::create_dir_all(dir.join("inbox/hr"))?;
    let mut roster = String::from("帳號,姓名,員工編號,機關名稱,角色,人員類別,帳號狀態,停用日期\n");
    let mut hr = String::from("員工編號,姓名,服務機關,人員類別,異動狀態,生效日期,身分證號\n");
    for (ai, agency) in AGENCIES.iter().enumerate() {
        for k in 0..20u64 {
            let account = 20001 + ai as u64 * 100 + k;
            let person = format!("E{account:06}");
            let who = name(r);
            roster.push_str(&format!(
                "W{account:05},{who},{person},{},業務需求人員,編制內,啟用,\n",
                agency.1
            ));
            hr.push_str(&format!(
                "{person},{who},{},編制內,在職,2020-01-01,{}\n",
                agency.1,
                national_id(r)
            ));
        }
    }
    std::fs::write(dir.join("inbox/roster/roster_20260702.csv"), roster)?;
    // The city's config declares its HR exports Big5, as HR sends them.
    write_big5(&dir.join("inbox/hr/hr_20260702.csv"), &hr)?;
    Ok(())
}

fn roc_date(d: NaiveDate) -> String {
    format!("{}/{:02}/{:02}", d.year() - 1911, d.month(), d.day())
}

fn roc_datetime(t: NaiveDateTime) -> String {
    format!("{} {}", roc_date(t.date()), t.format("%H:%M:%S"))
}

/// Taiwan Excel text: `2026/1/5 下午 02:03:22`.
fn taiwan_excel_text(t: NaiveDateTime) -> String {
    let (pm, h) = t.hour12();
    format!(
        "{}/{}/{} {} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        if pm { "下午" } else { "上午" },
        h,
        t.minute(),
        t.second()
    )
}

fn result_text(q: &Query) -> &'static str {
    if q.success { "成功" } else { "失敗" }
}

fn write_queries_utf8(city: &City, qs: &[&Query], path: &Path) -> Result<()> {
    let mut s = String::from(
        "\u{FEFF}帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關代碼,來源IP\r\n",
    );
    for q in qs {
        let a = &city.accounts[q.account];
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{}\r\n",
            a.id,
            q.at.format("%Y-%m-%d %H:%M:%S"),
            q.item,
            q.subject,
            q.purpose,
            result_text(q),
            AGENCIES[a.agency].0,
            a.ip
        ));
    }
    std::fs::write(path, s)?;
    Ok(())
}

fn write_big5(path: &Path, text: &str) -> Result<()> {
    let (bytes, _, unmappable) = encoding_rs::BIG5.encode(text);
    if unmappable {
        bail!("{}: text has characters Big5 cannot encode", path.display());
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

fn write_queries_big5(city: &City, qs: &[&Query], path: &Path) -> Result<()> {
    let mut s = String::from(
        "高雄市政府 健保WebIR 查詢紀錄（115年4月至5月）\r\n列印日期：115/07/02,,,,,,\r\n",
    );
    s.push_str("使用者代號,查詢日期時間,查詢項目,被查詢人身分證號,查詢結果,查詢機關,IP位址\r\n");
    for q in qs {
        let a = &city.accounts[q.account];
        s.push_str(&format!(
            "{},{},{},{},{},{},{}\r\n",
            a.id,
            roc_datetime(q.at),
            q.item,
            q.subject,
            result_text(q),
            AGENCIES[a.agency].1,
            a.ip
        ));
    }
    s.push_str(&format!("合計,{} 筆,,,,,\r\n", qs.len()));
    write_big5(path, &s)
}

fn new_workbook() -> rust_xlsxwriter::Workbook {
    let mut wb = rust_xlsxwriter::Workbook::new();
    // Fixed metadata, so the same city gives the same bytes.
    let created = rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 7, 2).expect("valid date");
    wb.set_properties(
        &rust_xlsxwriter::DocProperties::new()
            .set_creation_datetime(&created)
            .set_author("webir-audit synth"),
    );
    wb
}

fn excel_dt(t: NaiveDateTime) -> Result<rust_xlsxwriter::ExcelDateTime> {
    Ok(
        rust_xlsxwriter::ExcelDateTime::from_ymd(t.year() as u16, t.month() as u8, t.day() as u8)?
            .and_hms(t.hour() as u16, t.minute() as u8, t.second())?,
    )
}

fn write_queries_xlsx(city: &City, qs: &[&Query], path: &Path) -> Result<()> {
    let mut wb = new_workbook();
    let ws = wb.add_worksheet();
    ws.set_name("查詢紀錄")?;
    let dt_fmt = rust_xlsxwriter::Format::new().set_num_format("yyyy/mm/dd hh:mm:ss");
    ws.write_string(0, 0, "高雄市政府 健保WebIR 查詢紀錄（115年6月）")?;
    let headers = [
        "帳號",
        "查詢時間",
        "查詢項目",
        "被查詢人身分證號",
        "查詢目的",
        "查詢結果",
        "機關",
        "來源IP",
    ];
    for (c, h) in headers.iter().enumerate() {
        ws.write_string(2, c as u16, *h)?;
    }
    for (i, q) in qs.iter().enumerate() {
        let row = 3 + i as u32;
        let a = &city.accounts[q.account];
        ws.write_string(row, 0, &a.id)?;
        ws.write_datetime_with_format(row, 1, &excel_dt(q.at)?, &dt_fmt)?;
        ws.write_string(row, 2, q.item)?;
        ws.write_string(row, 3, &q.subject)?;
        ws.write_string(
            row,
            4,
            crate::model::PURPOSE.label(q.purpose).unwrap_or(q.purpose),
        )?;
        ws.write_string(row, 5, result_text(q))?;
        ws.write_string(row, 6, AGENCIES[a.agency].2)?;
        ws.write_string(row, 7, &a.ip)?;
    }
    wb.save(path)?;
    Ok(())
}

fn write_roster(city: &City, path: &Path, dated: &str, removed: Option<&Account>) -> Result<()> {
    let mut wb = new_workbook();
    let ws = wb.add_worksheet();
    ws.set_name("帳號清冊")?;
    let d_fmt = rust_xlsxwriter::Format::new().set_num_format("yyyy/mm/dd");
    ws.write_string(0, 0, "健保WebIR 使用者帳號清冊")?;
    ws.write_string(1, 0, dated)?;
    let headers = [
        "帳號",
        "姓名",
        "員工編號",
        "機關名稱",
        "角色",
        "人員類別",
        "帳號狀態",
        "建立日期",
        "密碼變更日期",
        "授權人",
        "停用日期",
    ];
    for (c, h) in headers.iter().enumerate() {
        ws.write_string(3, c as u16, *h)?;
    }
    let officer_of: BTreeMap<usize, String> = city
        .accounts
        .iter()
        .filter(|a| a.role == "專責人員")
        .map(|a| (a.agency, city.people[a.person].name.clone()))
        .collect();
    let listed = city
        .accounts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != city.ghost)
        .map(|(_, a)| a)
        // The older snapshot lists only accounts opened by its day.
        .filter(|a| removed.is_none() || a.created <= date("2026-01-05"))
        .chain(removed);
    for (row, a) in (4u32..).zip(listed) {
        let p = &city.people[a.person];
        ws.write_string(row, 0, &a.id)?;
        ws.write_string(row, 1, &p.name)?;
        ws.write_string(row, 2, &p.person_id)?;
        ws.write_string(row, 3, AGENCIES[a.agency].1)?;
        ws.write_string(row, 4, a.role)?;
        ws.write_string(row, 5, p.employment)?;
        ws.write_string(row, 6, a.status)?;
        ws.write_datetime_with_format(
            row,
            7,
            &excel_dt(a.created.and_hms_opt(0, 0, 0).expect("time"))?,
            &d_fmt,
        )?;
        if let Some(d) = a.password_changed {
            ws.write_string(row, 8, roc_date(d))?;
        }
        let unit = AGENCIES[a.agency].0.split('-').next().unwrap_or("");
        let assigner = officer_of.get(&AGENCIES.iter().position(|x| x.0 == unit).unwrap_or(0));
        ws.write_string(row, 9, assigner.map_or("衛生局總管理者", String::as_str))?;
        if let Some(d) = a.disabled_on {
            ws.write_string(row, 10, roc_date(d))?;
        }
    }
    wb.save(path)?;
    Ok(())
}

fn write_hr(city: &City, path: &Path) -> Result<()> {
    let mut s = String::from("高雄市政府人事處 人員現況清冊\r\n資料日期：115年7月2日\r\n");
    s.push_str("員工編號\t姓名\t服務機關\t人員類別\t異動狀態\t生效日期\t身分證號\r\n");
    for p in &city.people {
        if p.person_id.starts_with('X') {
            continue;
        }
        let d = p.effective;
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{:03}{:02}{:02}\t{}\r\n",
            p.person_id,
            p.name,
            AGENCIES[p.agency].1,
            p.employment,
            p.status,
            d.year() - 1911,
            d.month(),
            d.day(),
            p.national_id
        ));
    }
    write_big5(path, &s)
}

/// The account applications register the Health Bureau and the officers
/// keep (業務需求人員申請表, and 專責人員申請表 for officers), as one UTF-8
/// CSV with a title: each account's 新增 application, approved a week
/// before the account opened.
fn write_applications(city: &City, path: &Path) -> Result<()> {
    let mut s = String::from(
        "高雄市政府 WebIR 帳號申請表清冊\n製表日期：115年7月2日\n帳號,申請人,員工編號,申請機關,申請類別,申請權限,申請日期,核定人,核定日期\n",
    );
    for (i, a) in city.accounts.iter().enumerate() {
        if i == city.ghost || i == city.app_missing {
            continue;
        }
        let holder = &city.people[a.person];
        let applicant = if i == city.app_other {
            &city.people[(a.person + 1) % city.people.len()]
        } else {
            holder
        };
        let approved = if i == city.app_late {
            a.created + Duration::days(10)
        } else {
            a.created - Duration::days(7)
        };
        let (permission, approver) = if a.role == "業務需求人員" {
            ("查詢", "專責人員")
        } else {
            ("管理", "衛生局總管理者")
        };
        s.push_str(&format!(
            "{},{},{},{},新增,{permission},{},{approver},{}\n",
            a.id,
            applicant.name,
            applicant.person_id,
            AGENCIES[a.agency].0,
            roc_date(approved - Duration::days(7)),
            roc_date(approved),
        ));
        if i == city.app_changed {
            let applied = holder.effective + Duration::days(3);
            s.push_str(&format!(
                "{},{},{},{},異動,{permission},{},{approver},{}\n",
                a.id,
                holder.name,
                holder.person_id,
                AGENCIES[holder.agency].0,
                roc_date(applied),
                roc_date(applied + Duration::days(5)),
            ));
        }
    }
    std::fs::write(path, s)?;
    Ok(())
}

/// The register as a unit exports it: a title and the day it was made
/// (製表日期) above the header, so its date is its own and not its file's.
fn write_forms(city: &City, path: &Path) -> Result<()> {
    let mut s = String::from(
        "高雄市政府 WebIR 查詢申請紀錄表\n製表日期：115年7月2日\n表單編號,查詢帳號,被查詢人身分證號,查詢目的,查詢事由,查詢條件,申請時間,核可主管,核可時間\n",
    );
    for f in &city.forms {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            f.id,
            city.accounts[f.account].id,
            f.subject,
            f.purpose,
            f.reason,
            "身分證號",
            taiwan_excel_text(f.requested),
            f.approver.as_deref().unwrap_or(""),
            f.approved.map(taiwan_excel_text).unwrap_or_default()
        ));
    }
    std::fs::write(path, s)?;
    Ok(())
}
