//! A city sized for a load test: `agencies` requesting units (the Health
//! Bureau first), `accounts` accounts spread over them, and `queries`
//! queries in 2026H1, each explained by an approved request form. Plain
//! CSV exports, no planted problems beyond what chance makes: the point is
//! volume (every unit sampled and mailed), not findings.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use chrono::{Datelike, Duration};

use super::{PERIOD_DAYS, PERIOD_START, Rand, date, national_id};

/// How big the load city is.
#[derive(Debug, Clone, Copy)]
pub struct LoadSize {
    pub agencies: usize,
    pub accounts: usize,
    pub queries: usize,
}

const PURPOSES: &[&str] = &[
    "social_welfare",
    "criminal_investigation",
    "drug_follow_up",
    "military_service",
    "unlicensed_lodging",
];

fn agency_id(i: usize) -> String {
    if i == 0 {
        "KHB".to_owned()
    } else {
        format!("U{i:03}")
    }
}

fn purpose_of(i: usize) -> &'static str {
    if i == 0 {
        "public_health"
    } else {
        PURPOSES[i % PURPOSES.len()]
    }
}

fn config(size: LoadSize) -> String {
    let mut s = String::from(
        r#"# webir-audit configuration of a generated load-test city.
timezone = "Asia/Taipei"

[paths]
inbox = "inbox"
archive = "var/archive"
state = "var/state"
schedules = "schedules"

[mail]
transport = "file"
from = "webir-audit <webir-audit@example.gov.tw>"
admin = "admin@example.gov.tw"
allowed_domains = ["example.gov.tw"]

# One requesting unit per agency.
"#,
    );
    for i in 0..size.agencies {
        let id = agency_id(i);
        let lower = id.to_lowercase();
        s.push_str(&format!(
            "\n[[agencies]]\nid = \"{id}\"\nname = \"高雄市測試機關{i:03}\"\nrequesting = true\npurposes = [\"{}\"]\nofficer_email = \"officer.{lower}@example.gov.tw\"\nethics_email = \"ethics.{lower}@example.gov.tw\"\n",
            purpose_of(i)
        ));
        if i == 0 {
            s.push_str("health_bureau = true\n");
        }
    }
    s
}

/// Writes the load city into `dir`: its config, a sample-audit schedule
/// and the four exports.
/// The application problems planted in a load city (points 2, 5(1)2), on
/// its first business users' accounts: `(code, account)`. Every other
/// account was applied for, by its holder, and approved before it opened.
pub fn load_planted(size: LoadSize) -> Vec<(crate::checks::Code, String)> {
    use crate::checks::Code;
    let first = size.agencies;
    if size.accounts < first + 4 {
        return Vec::new();
    }
    vec![
        (Code::AccountNoApplication, format!("L{first:05}")),
        (
            Code::AccountCreatedBeforeApproval,
            format!("L{:05}", first + 1),
        ),
        (
            Code::AccountApplicationOtherHolder,
            format!("L{:05}", first + 2),
        ),
    ]
}

/// The applications register of a load city: one approved 新增 per
/// account (officers' to the Health Bureau, users' to their officer) but
/// the problems [`load_planted`] names. It draws nothing from the city's
/// random stream: the rest of the city is the same with it as without.
fn write_applications(w: &mut impl Write, size: LoadSize) -> Result<()> {
    use crate::checks::Code;
    writeln!(
        w,
        "帳號,申請人,員工編號,申請機關,申請類別,申請權限,申請日期,核定人,核定日期"
    )?;
    let planted = load_planted(size);
    let is = |a: usize, code: Code| {
        planted
            .iter()
            .any(|(c, acc)| *c == code && *acc == format!("L{a:05}"))
    };
    for a in 0..size.accounts {
        if is(a, Code::AccountNoApplication) {
            continue;
        }
        let applicant = if is(a, Code::AccountApplicationOtherHolder) {
            a + 1
        } else {
            a
        };
        // The account opened on 2024-01-02.
        let approved = if is(a, Code::AccountCreatedBeforeApproval) {
            "2024-01-10"
        } else {
            "2023-12-28"
        };
        writeln!(
            w,
            "L{a:05},測試{applicant},P{applicant:05},{},新增,查詢,2023-12-20,主管{},{approved}",
            agency_id(a % size.agencies),
            a % size.agencies
        )?;
    }
    Ok(())
}

/// Writes the load city of `size` into `dir`: its config, a sample-audit
/// schedule, and an inbox of roster, HR list, applications, query log and
/// request forms, drawn from `seed`.
pub fn write_load_city(dir: &Path, size: LoadSize, seed: u64) -> Result<()> {
    anyhow::ensure!(
        size.agencies >= 1 && size.accounts >= size.agencies,
        "a load city needs an agency and at least one account per agency"
    );
    for sub in ["query_logs", "roster", "hr", "forms", "applications"] {
        std::fs::create_dir_all(dir.join("inbox").join(sub))?;
    }
    std::fs::create_dir_all(dir.join("schedules"))?;
    std::fs::write(dir.join("webir-audit.toml"), config(size))?;
    std::fs::write(
        dir.join("schedules/sample-audit.toml"),
        "[[schedule]]\njob = \"sample-audit\"\ncron = \"0 0 8 5 1,7 *\"\nperiod = \"previous-half-year\"\n",
    )?;
    // A load test measures the sample audit: the other duties say so.
    let suspended: String = crate::job::Job::ALL
        .into_iter()
        .filter(|j| j.duty().is_some() && *j != crate::job::Job::SampleAudit)
        .map(|j| format!("[[suspended]]\njob = \"{j}\"\nreason = \"load-test city: only the sample audit is measured\"\n\n"))
        .collect();
    std::fs::write(dir.join("schedules/suspended.toml"), suspended)?;
    let mut r = Rand::new(seed);
    write_roster_and_hr(dir, size, &mut r)?;
    write_applications(
        &mut inbox_file(dir, "applications/applications_20260702.csv")?,
        size,
    )?;
    write_queries_and_forms(dir, size, &mut r)
}

/// A new buffered file at `rel` in `dir`'s inbox.
fn inbox_file(dir: &Path, rel: &str) -> Result<std::io::BufWriter<std::fs::File>> {
    Ok(std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(dir.join("inbox").join(rel))?,
    ))
}

/// The account of number `a`'s agency: accounts go round the agencies.
fn agency_of(size: LoadSize, a: usize) -> usize {
    a % size.agencies
}

/// The roster and the HR list: one account and person per account
/// number, the first of each agency its officer.
fn write_roster_and_hr(dir: &Path, size: LoadSize, r: &mut Rand) -> Result<()> {
    let mut roster = inbox_file(dir, "roster/accounts_20260702.csv")?;
    writeln!(
        roster,
        "帳號,姓名,員工編號,機關,角色,人員類別,帳號狀態,建立日期,密碼變更日期"
    )?;
    let mut hr = inbox_file(dir, "hr/hr_20260702.csv")?;
    writeln!(hr, "員工編號,姓名,服務機關,人員類別,狀態,生效日期,身分證號")?;
    for a in 0..size.accounts {
        let role = if a < size.agencies {
            "專責人員"
        } else {
            "業務需求人員"
        };
        writeln!(
            roster,
            "L{a:05},測試{a},P{a:05},{},{role},編制內,啟用,2024-01-02,2026-06-{:02}",
            agency_id(agency_of(size, a)),
            1 + a % 28
        )?;
        writeln!(
            hr,
            "P{a:05},測試{a},{},編制內,在職,2024-01-02,{}",
            agency_id(agency_of(size, a)),
            national_id(r)
        )?;
    }
    roster.flush()?;
    hr.flush()?;
    Ok(())
}

/// Queries in runs of up to ten on one subject, each run explained by a
/// form approved shortly before its first query.
fn write_queries_and_forms(dir: &Path, size: LoadSize, r: &mut Rand) -> Result<()> {
    let subjects: Vec<String> = (0..50_000).map(|_| national_id(r)).collect();
    let start = date(PERIOD_START);
    let mut q = inbox_file(dir, "query_logs/query_log_2026H1.csv")?;
    writeln!(
        q,
        "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP"
    )?;
    let mut f = inbox_file(dir, "forms/forms_2026H1.csv")?;
    writeln!(
        f,
        "表單編號,查詢帳號,被查詢人身分證號,查詢目的,查詢事由,申請時間,核可主管,核可時間"
    )?;
    let mut written = 0;
    let mut form = 0;
    while written < size.queries {
        let a = r.below(size.accounts as u64) as usize;
        let ag = agency_of(size, a);
        let subject = &subjects[r.below(subjects.len() as u64) as usize];
        // A weekday, in office hours, leaving room for the run's days.
        let mut day = start + Duration::days(r.range(0, PERIOD_DAYS - 6));
        while day.weekday().number_from_monday() > 5 {
            day += Duration::days(1);
        }
        // The last run is on the period's last day: the exports cover it.
        if written + 10 >= size.queries {
            day = date("2026-06-30");
        }
        let approved = day.and_hms_opt(8, 30, 0).expect("valid time");
        form += 1;
        writeln!(
            f,
            "F{form:07},L{a:05},{subject},{},業務需要,{},主管{ag},{}",
            purpose_of(ag),
            (approved - Duration::minutes(20)).format("%Y-%m-%d %H:%M:%S"),
            approved.format("%Y-%m-%d %H:%M:%S")
        )?;
        let n = (1 + r.below(10) as usize).min(size.queries - written);
        for k in 0..n {
            let at = approved + Duration::minutes(30 + 17 * k as i64 + r.range(0, 15));
            writeln!(
                q,
                "L{a:05},{},個人投保資料,{subject},{},成功,{},10.{}.{}.{}",
                at.format("%Y-%m-%d %H:%M:%S"),
                purpose_of(ag),
                agency_id(ag),
                ag / 250,
                ag % 250,
                1 + a % 250
            )?;
        }
        written += n;
    }
    q.flush()?;
    f.flush()?;
    Ok(())
}
