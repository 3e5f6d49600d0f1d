//! A year of a real inbox through the real daemon and SMTP server: two
//! half-years of exports (roster snapshots of January and July, HR changes
//! in two files, query logs exported with an overlap and in two formats,
//! one without an IP column), the 2026H1 and 2026H2 sample audits and the
//! January account review, with the shipped schedules. Every count is
//! computed here from the test's own rows; renaming and reordering the
//! files changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::harness::served::{arrivals, received};
use crate::harness::{Output, Test, findings_per_account, json, repo, write_xlsx};
use crate::smtp::Smtp;

struct Account {
    id: &'static str,
    agency: &'static str,
    purpose: &'static str,
}

const ACCOUNTS: [Account; 7] = [
    Account {
        id: "P001",
        agency: "KPB",
        purpose: "犯罪偵查",
    },
    Account {
        id: "P101",
        agency: "KPB-1",
        purpose: "犯罪偵查",
    },
    Account {
        id: "P102",
        agency: "KPB-1",
        purpose: "犯罪偵查",
    },
    Account {
        id: "P103",
        agency: "KPB-1",
        purpose: "犯罪偵查",
    },
    Account {
        id: "P104",
        agency: "KPB-1",
        purpose: "犯罪偵查",
    },
    Account {
        id: "H001",
        agency: "KHB",
        purpose: "公共衛生",
    },
    Account {
        id: "H002",
        agency: "KHB",
        purpose: "公共衛生",
    },
];

const H1_TIMES: [&str; 7] = [
    "2026-01-12 09:00:00",
    "2026-02-10 09:00:00",
    "2026-03-10 09:00:00",
    "2026-03-11 14:20:05",
    "2026-04-14 09:30:00",
    "2026-05-12 09:00:00",
    "2026-06-10 09:00:00",
];
const H2_TIMES: [&str; 6] = [
    "2026-07-14 09:00:00",
    "2026-08-11 09:00:00",
    "2026-09-15 09:00:00",
    "2026-10-13 09:00:00",
    "2026-11-10 09:00:00",
    "2026-12-15 09:00:00",
];

/// One query-log record: account, time, subject.
type Rec = (&'static str, &'static str, String);

fn subject(account: &str, time: &str) -> String {
    let a = ACCOUNTS.iter().position(|x| x.id == account).unwrap();
    let t = H1_TIMES
        .iter()
        .chain(&H2_TIMES)
        .chain(&[
            "2026-06-17 10:00:00",
            "2026-06-25 10:00:00",
            "2026-06-30 10:00:00",
            "2026-12-31 10:00:00",
        ])
        .position(|x| *x == time)
        .unwrap();
    format!("C1{a:02}{t:06}")
}

fn rec(account: &'static str, time: &'static str) -> Rec {
    (account, time, subject(account, time))
}

/// The three query-log exports: January–April (CSV, no IP column),
/// March–June (XLSX: March and April again), July–December (CSV with IP).
fn logs() -> (Vec<Rec>, Vec<Rec>, Vec<Rec>) {
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let h1 = |id: &'static str, times: &[&'static str], a: &mut Vec<Rec>, b: &mut Vec<Rec>| {
        for t in times {
            let month: u32 = t[5..7].parse().unwrap();
            if month <= 4 {
                a.push(rec(id, t));
            }
            if month >= 3 {
                b.push(rec(id, t));
            }
        }
    };
    for id in ["P001", "P101", "P102", "H001", "H002"] {
        h1(id, &H1_TIMES, &mut a, &mut b);
    }
    // A real repeat: the same query twice in one second, in the CSV only.
    a.push(rec("P101", "2026-03-11 14:20:05"));
    // P102's holder left on 15 June and the account was disabled on 20 June.
    h1(
        "P102",
        &["2026-06-17 10:00:00", "2026-06-25 10:00:00"],
        &mut a,
        &mut b,
    );
    // P103 was used in January and February, then removed from the roster.
    h1(
        "P103",
        &["2026-01-12 09:00:00", "2026-02-10 09:00:00"],
        &mut a,
        &mut b,
    );
    // P104 was opened in March.
    h1(
        "P104",
        &["2026-03-10 09:00:00", "2026-05-12 09:00:00"],
        &mut a,
        &mut b,
    );
    // The half-year's last day is in the export.
    h1("H001", &["2026-06-30 10:00:00"], &mut a, &mut b);
    for id in ["P001", "P101", "P104", "H001"] {
        for t in H2_TIMES {
            c.push(rec(id, t));
        }
    }
    c.push(rec("H001", "2026-12-31 10:00:00"));
    (a, b, c)
}

fn purpose(account: &str) -> &'static str {
    ACCOUNTS.iter().find(|x| x.id == account).unwrap().purpose
}

fn log_csv(rows: &[Rec], with_ip: bool) -> String {
    let mut s = String::from("帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關");
    s.push_str(if with_ip { ",來源IP\n" } else { "\n" });
    for (a, t, subj) in rows {
        s.push_str(&format!(
            "{a},{t},投保資料,{subj},{},成功,{}",
            purpose(a),
            agency_name(a)
        ));
        s.push_str(if with_ip { ",10.1.2.3\n" } else { "\n" });
    }
    s
}

fn agency_name(account: &str) -> &'static str {
    match ACCOUNTS.iter().find(|x| x.id == account).unwrap().agency {
        "KPB" => "警察局",
        "KPB-1" => "第一分局",
        _ => "衛生局",
    }
}

fn log_xlsx(path: &Path, rows: &[Rec]) {
    let header = [
        "帳號",
        "查詢時間",
        "查詢項目",
        "被查詢人身分證號",
        "查詢目的",
        "查詢結果",
        "機關",
    ];
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(a, t, subj)| {
            [
                *a,
                *t,
                "投保資料",
                subj.as_str(),
                purpose(a),
                "成功",
                agency_name(a),
            ]
            .map(str::to_owned)
            .to_vec()
        })
        .collect();
    write_xlsx(
        path,
        &["健保WebIR查詢紀錄 115/03/01-115/06/30"],
        &header,
        &rows,
    );
}

/// January's roster (CSV, ROC date in the name) and July's (XLSX, date in
/// its title row): P102 disabled on 20 June, P103 removed, P104 added.
/// July's export has no password column.
fn roster_january() -> String {
    let mut s =
        String::from("帳號,姓名,員工編號,機關,角色,人員類別,帳號狀態,建立日期,密碼變更日期\n");
    for r in [
        "P001,王警官,E001,警察局,專責人員,編制內,啟用,2025-01-02,2025-12-20",
        "P101,李小明,E101,第一分局,業務需求人員,編制內,啟用,2025-01-02,2025-12-20",
        "P102,陳大華,E102,第一分局,業務需求人員,約聘僱,啟用,2025-01-02,2025-12-20",
        "P103,黃美玲,E103,第一分局,業務需求人員,編制內,啟用,2025-01-02,2025-12-20",
        "H001,林主任,E201,衛生局,總管理者,編制內,啟用,2025-01-02,2025-12-20",
        "H002,張專員,E202,衛生局,專責人員,編制內,啟用,2025-01-02,2025-12-20",
    ] {
        s.push_str(r);
        s.push('\n');
    }
    s
}

fn roster_july(path: &Path) {
    let header = [
        "帳號",
        "姓名",
        "員工編號",
        "機關",
        "角色",
        "人員類別",
        "帳號狀態",
        "建立日期",
        "停用日期",
    ];
    let rows: Vec<Vec<String>> = [
        [
            "P001",
            "王警官",
            "E001",
            "警察局",
            "專責人員",
            "編制內",
            "啟用",
            "2025-01-02",
            "",
        ],
        [
            "P101",
            "李小明",
            "E101",
            "第一分局",
            "業務需求人員",
            "編制內",
            "啟用",
            "2025-01-02",
            "",
        ],
        [
            "P102",
            "陳大華",
            "E102",
            "第一分局",
            "業務需求人員",
            "約聘僱",
            "停用",
            "2025-01-02",
            "115/06/20",
        ],
        [
            "P104",
            "吳志明",
            "E104",
            "第一分局",
            "業務需求人員",
            "編制內",
            "啟用",
            "2026-03-01",
            "",
        ],
        [
            "H001",
            "林主任",
            "E201",
            "衛生局",
            "總管理者",
            "編制內",
            "啟用",
            "2025-01-02",
            "",
        ],
        [
            "H002",
            "張專員",
            "E202",
            "衛生局",
            "專責人員",
            "編制內",
            "啟用",
            "2025-01-02",
            "",
        ],
    ]
    .iter()
    .map(|r| r.map(str::to_owned).to_vec())
    .collect();
    write_xlsx(
        path,
        &["健保WebIR 使用者帳號清冊", "資料日期：115/07/02"],
        &header,
        &rows,
    );
}

const HR_HEADER: &str = "員工編號,姓名,機關,人員類別,狀態,生效日期,身分證號\n";
const HR_BASE: [&str; 6] = [
    "E001,王警官,警察局,編制內,在職,2020-01-01,A100000001",
    "E101,李小明,第一分局,編制內,在職,2020-01-01,A100000002",
    "E102,陳大華,第一分局,約聘僱,在職,2020-01-01,A100000003",
    "E103,黃美玲,第一分局,編制內,在職,2020-01-01,A100000006",
    "E201,林主任,衛生局,編制內,在職,2020-01-01,A100000004",
    "E202,張專員,衛生局,編制內,在職,2020-01-01,A100000005",
];

/// HR exports are change lists: July's repeats January's rows (they
/// collapse) and adds a hire and a departure.
fn hr_files() -> (String, String) {
    let jan = HR_HEADER.to_owned() + &HR_BASE.join("\n") + "\n";
    let jul = HR_HEADER.to_owned()
        + &HR_BASE.join("\n")
        + "\nE104,吳志明,第一分局,編制內,在職,2026-03-01,A100000007\nE102,陳大華,第一分局,約聘僱,離職,2026-06-15,A100000003\n";
    (jan, jul)
}

/// The city's config; its mail goes to the test's server
/// ([`Test::served`] fills in the `[mail]` section).
fn config() -> String {
    format!(
        r#"timezone = "Asia/Taipei"

[paths]
inbox = "inbox"
archive = "var/archive"
state = "var/state"
schedules = "{}"

[mail]

[[agencies]]
id = "KHB"
name = "高雄市政府衛生局"
aliases = ["衛生局"]
requesting = true
purposes = ["public_health"]
officer_email = "o.khb@example.gov.tw"
ethics_email = "e.khb@example.gov.tw"
health_bureau = true

[[agencies]]
id = "KPB"
name = "高雄市政府警察局"
aliases = ["警察局"]
requesting = true
purposes = ["criminal_investigation"]
officer_email = "o.kpb@example.gov.tw"
ethics_email = "e.kpb@example.gov.tw"

[[agencies]]
id = "KPB-1"
name = "高雄市政府警察局第一分局"
aliases = ["第一分局"]
parent = "KPB"
purposes = ["criminal_investigation"]
"#,
        repo().join("schedules").display(),
    )
}

/// The file names of one arrangement of the inbox.
struct Names {
    log_a: &'static str,
    log_b: &'static str,
    log_c: &'static str,
    roster_jan: &'static str,
    roster_jul: &'static str,
    hr_jan: &'static str,
    hr_jul: &'static str,
}

const NAMES: Names = Names {
    log_a: "webir_202601-04.csv",
    log_b: "webir_202603-06.xlsx",
    log_c: "webir_2026H2.csv",
    roster_jan: "帳號清冊_1150102.csv",
    roster_jul: "accounts_20260702.xlsx",
    hr_jan: "hr_a.csv",
    hr_jul: "hr_b.csv",
};

/// The same files under names that sort the other way round (and say
/// nothing of their dates but what the roster files must carry).
const SHUFFLED: Names = Names {
    log_a: "z_export.csv",
    log_b: "a_export.xlsx",
    log_c: "m_export.csv",
    roster_jan: "z_帳號清冊_1150102.csv",
    roster_jul: "a_accounts_20260702.xlsx",
    hr_jan: "z_hr.csv",
    hr_jul: "a_hr.csv",
};

struct Year {
    /// Stopped before the city's folder is removed.
    smtp: Smtp,
    city: Test,
}

impl Year {
    fn new(names: &Names) -> Year {
        let city = Test::with_config("city/webir-audit.toml", &config());
        let smtp = Smtp::start(&city.path("smtp"), "");
        let city = city.served(&smtp, "");
        let inbox = city.city_path("inbox");
        for sub in ["query_logs", "roster", "hr"] {
            std::fs::create_dir_all(inbox.join(sub)).unwrap();
        }
        let (a, b, c) = logs();
        std::fs::write(
            inbox.join("query_logs").join(names.log_a),
            log_csv(&a, false),
        )
        .unwrap();
        log_xlsx(&inbox.join("query_logs").join(names.log_b), &b);
        std::fs::write(
            inbox.join("query_logs").join(names.log_c),
            log_csv(&c, true),
        )
        .unwrap();
        std::fs::write(
            inbox.join("roster").join(names.roster_jan),
            roster_january(),
        )
        .unwrap();
        roster_july(&inbox.join("roster").join(names.roster_jul));
        let (jan, jul) = hr_files();
        std::fs::write(inbox.join("hr").join(names.hr_jan), jan).unwrap();
        std::fs::write(inbox.join("hr").join(names.hr_jul), jul).unwrap();
        // The exports the daemon waits for arrived on 4 January 2027.
        let arrived =
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_799_064_000);
        for sub in ["roster", "hr"] {
            for e in std::fs::read_dir(inbox.join(sub)).unwrap() {
                let f = std::fs::File::options()
                    .write(true)
                    .open(e.unwrap().path())
                    .unwrap();
                f.set_modified(arrived).unwrap();
            }
        }
        Year { smtp, city }
    }

    fn pass(&self, now: &str) -> Output {
        let out = self.city.run_at(&["daemon", "--once"], now);
        assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
        out
    }

    /// The ceremony's seed, dropped in the inbox as an officer would at
    /// `at` (after the commitment: an earlier file is refused).
    fn seed(&self, period: &str, digits: &str, at: &str) {
        let dir = self.city.city_path("inbox/seeds");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{period}.txt"));
        std::fs::write(&file, format!("{digits}\n")).unwrap();
        crate::harness::written_at(&file, at);
    }

    fn state(&self) -> PathBuf {
        self.city.city_path("var/state")
    }

    fn runs(&self, period: &str, job: &str) -> Vec<PathBuf> {
        let dir = self.city.city_path("var/archive").join(period).join(job);
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn ledger(&self) -> Vec<webir_audit::store::LedgerRow> {
        webir_audit::store::Store::open(&self.state())
            .unwrap()
            .ledger()
            .unwrap()
    }
}

/// Per record, the larger of its counts in the files that hold it.
fn counted(files: &[&[Rec]]) -> BTreeMap<Rec, usize> {
    let mut out: BTreeMap<Rec, usize> = BTreeMap::new();
    for f in files {
        let mut here: BTreeMap<Rec, usize> = BTreeMap::new();
        for r in *f {
            *here.entry(r.clone()).or_default() += 1;
        }
        for (r, n) in here {
            let e = out.entry(r).or_default();
            *e = (*e).max(n);
        }
    }
    out
}

fn in_half(r: &Rec, h1: bool) -> bool {
    (r.1 < "2026-07-01") == h1
}

/// Records per account in a half-year, by the overlap rule.
fn records_per_account(h1: bool) -> BTreeMap<String, usize> {
    let (a, b, c) = logs();
    let mut out = BTreeMap::new();
    for (r, n) in counted(&[&a, &b, &c]) {
        if in_half(&r, h1) {
            *out.entry(r.0.to_owned()).or_default() += n;
        }
    }
    out
}

/// Findings a half-year's query check must make, per (code, account).
fn expected_query_findings(h1: bool) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    // No request-form register was exported: whether a query had its form
    // is not judged (the run says so), never every query found unexplained.
    if h1 {
        let (a, b, c) = logs();
        let p102: Vec<Rec> = counted(&[&a, &b, &c])
            .into_keys()
            .filter(|r| r.0 == "P102")
            .collect();
        let after = |day: &str| p102.iter().filter(|r| &r.1[..10] > day).count();
        out.insert(
            ("QUERY_AFTER_DEPARTURE".into(), "P102".into()),
            after("2026-06-15"),
        );
        out.insert(
            ("QUERY_BY_DISABLED_ACCOUNT".into(), "P102".into()),
            after("2026-06-20"),
        );
    }
    out
}

fn population_per_account(dir: &Path) -> BTreeMap<String, usize> {
    let tsv = std::fs::read_to_string(dir.join("population.tsv")).unwrap();
    let mut out = BTreeMap::new();
    for l in tsv.lines().skip(1) {
        *out.entry(l.split('\t').next().unwrap().to_owned())
            .or_default() += 1;
    }
    out
}

/// Accounts in use per agency (the strata's N), placed by the roster.
fn strata(h1: bool) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for account in records_per_account(h1).keys() {
        let a = ACCOUNTS.iter().find(|x| x.id == account).unwrap();
        *out.entry(a.agency.to_owned()).or_default() += 1;
    }
    out
}

fn manifest_strata(m: &serde_json::Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for u in m["units"].as_array().unwrap() {
        for s in u["strata"].as_array().unwrap() {
            out.insert(
                s["agency_id"].as_str().unwrap().to_owned(),
                s["accounts_in_use"].as_u64().unwrap(),
            );
        }
    }
    out
}

/// What one arrangement of the inbox produced, to compare arrangements.
#[derive(Debug, PartialEq)]
struct Outcome {
    digests: Vec<(String, String)>,
    findings: Vec<BTreeMap<(String, String), usize>>,
}

/// A year of the daemon over exports named by `names`, and what it
/// produced.
fn live_year(names: &Names) -> Outcome {
    let y = Year::new(names);
    the_daemon_passes_through_the_year_with_two_seed_ceremonies(&y);
    let mut digests = Vec::new();
    let mut all_findings = Vec::new();
    for (period, h1) in [("2026H1", true), ("2026H2", false)] {
        let (digest, got) =
            the_half_year_is_drawn_once_from_its_exports_and_verifies(&y, period, h1);
        digests.push((period.to_owned(), digest));
        all_findings.push(got);
    }
    all_findings.push(the_january_account_review_finds_the_idle_and_the_removed_account(&y));
    the_quarter_s_password_check_is_satisfied_by_the_account_review(&y);
    every_message_arrives_once_and_each_outage_is_alerted_once(&y);
    Outcome {
        digests,
        findings: all_findings,
    }
}

/// The daemon's passes: July's seed ceremony, down until January, the
/// second half-year's ceremony, then the account review and the password
/// check due at the same moment.
fn the_daemon_passes_through_the_year_with_two_seed_ceremonies(y: &Year) {
    // 5 July 2026, an hour after the sample audit's time: the first start.
    // The shipped schedule runs a seed ceremony: the population is
    // committed and mailed, and the draw waits for the seed, which comes
    // as a file in the inbox (the lottery's digits) three days later.
    y.pass("2026-07-05T09:00:00+08:00");
    assert!(
        y.runs("2026H1", "sample-audit").is_empty(),
        "no draw before the seed"
    );
    y.seed(
        "2026H1",
        "11500007807230541183012",
        "2026-07-08T09:30:00+08:00",
    );
    y.pass("2026-07-08T10:00:00+08:00");
    // 5 January 2027: the second half-year; the daemon was down since July.
    y.pass("2027-01-05T09:00:00+08:00");
    y.seed(
        "2026H2",
        "11600000302111725334408",
        "2027-01-08T09:30:00+08:00",
    );
    y.pass("2027-01-08T10:00:00+08:00");
    // 10 January: the yearly account review and the quarterly password
    // check are due at the same moment.
    y.pass("2027-01-10T09:00:00+08:00");
}

/// The half-year's sample audit ran once, over the records, strata and
/// findings its exports hold, by the ceremony's seed, and re-draws;
/// returns its population digest and findings.
fn the_half_year_is_drawn_once_from_its_exports_and_verifies(
    y: &Year,
    period: &str,
    h1: bool,
) -> (String, BTreeMap<(String, String), usize>) {
    let runs = y.runs(period, "sample-audit");
    assert_eq!(runs.len(), 1, "{period}: one run");
    let dir = &runs[0];
    let m = json(dir, "manifest.json");
    assert_eq!(m["draw_number"], 1, "{period}");
    let expected = records_per_account(h1);
    assert_eq!(
        population_per_account(dir),
        expected,
        "{period}: records per account"
    );
    assert_eq!(
        m["population_records"].as_u64().unwrap() as usize,
        expected.values().sum::<usize>(),
        "{period}"
    );
    assert_eq!(manifest_strata(&m), strata(h1), "{period}: stratum sizes");
    let got = findings_per_account(dir);
    let run = json(dir, "run.json");
    assert!(
        run["not_checked"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["codes"][0] == "QUERY_NO_REQUEST_FORM" && n["why"] == "input_missing"),
        "{period}: {}",
        run["not_checked"]
    );
    assert_eq!(
        got,
        expected_query_findings(h1),
        "{period}: findings per account"
    );
    // The seed came by the ceremony; the sample re-draws from the
    // inputs as they are.
    assert_eq!(m["ceremony"]["seed_via"], "inbox", "{period}");
    assert_eq!(m["seed_source"], "given", "{period}");
    let verify = y.city.run(&["verify", dir.to_str().unwrap()]);
    assert_eq!(verify.status, 0, "{}{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains("MATCH"), "{}", verify.stdout);
    (m["population_digest"].as_str().unwrap().to_owned(), got)
}

/// The January account review, one run for both schedules, finds H002
/// idle and P103 removed (so its sheet says), and says the password check
/// July's roster cannot support did not run; returns its findings.
fn the_january_account_review_finds_the_idle_and_the_removed_account(
    y: &Year,
) -> BTreeMap<(String, String), usize> {
    // The January account review: one run for both schedules.
    let reviews = y.runs("as-of-2027-01-10", "account-review");
    assert_eq!(reviews.len(), 1, "one account review on 10 January");
    let review = findings_per_account(&reviews[0]);
    let expected: BTreeMap<(String, String), usize> = [
        // H002 was last used on 10 June: idle by 10 January.
        (("ACCOUNT_IDLE".to_owned(), "H002".to_owned()), 1),
        // P103 is only in January's roster: removed, not unknown.
        (
            ("ACCOUNT_REMOVED_FROM_ROSTER".to_owned(), "P103".to_owned()),
            1,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(review, expected, "the account review's findings");
    // The officer's sheet shows P103 as removed, not as an active account.
    {
        use calamine::{Reader, Xlsx, open_workbook};
        let mut wb: Xlsx<_> = open_workbook(reviews[0].join("reports/KPB.xlsx")).unwrap();
        let sheet = wb.worksheet_range("帳號清查").unwrap();
        let p103: Vec<String> = sheet
            .rows()
            .find(|r| r.first().is_some_and(|c| *c == "P103"))
            .expect("P103 on the sheet")
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert!(
            p103.iter()
                .any(|c| c == "已自清冊移除（2026-01-02 清冊仍列）")
                && p103.iter().any(|c| c == "廢止"),
            "{p103:?}"
        );
    }
    let run = json(&reviews[0], "run.json");
    assert_eq!(run["roster_snapshot"], "2026-07-02");
    // July's roster has no password column: that check says it did not run.
    let not_checked = run["not_checked"].as_array().unwrap();
    assert!(
        not_checked
            .iter()
            .any(|n| n["codes"][0] == "ACCOUNT_PASSWORD_STALE"
                && n["why"] == "column_absent"
                && n["column"] == "last_password_change"),
        "{not_checked:?}"
    );
    review
}

/// The ledger: the fourth quarter's password check is mailed as the
/// account review's run, which satisfied it.
fn the_quarter_s_password_check_is_satisfied_by_the_account_review(y: &Year) {
    let ledger = y.ledger();
    let row = |job: &str, period: &str| {
        ledger
            .iter()
            .find(|r| r.job == job && r.period == period)
            .unwrap_or_else(|| panic!("no ledger row {job} {period}: {ledger:?}"))
    };
    let q4 = row("password-check", "2026Q4");
    assert_eq!(q4.state.as_str(), "mailed", "{q4:?}");
    assert!(
        q4.error
            .as_deref()
            .unwrap_or("")
            .contains("satisfied by account-review 2026"),
        "{q4:?}"
    );
    assert_eq!(q4.run_dir, row("account-review", "2026").run_dir);
}

/// Mail: every message once; one account-review message per officer and
/// workbook; one overdue alert per job and outage, not per missed day.
fn every_message_arrives_once_and_each_outage_is_alerted_once(y: &Year) {
    assert!(arrivals(&y.smtp).values().all(|n| *n == 1));
    // Per recipient and workbook (the Health Bureau's officer also gets the
    // city-wide one).
    let mut reviews_to: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut storm: Vec<String> = Vec::new();
    for (_, p) in received(&y.smtp) {
        if p.subject.contains("帳號清查") {
            *reviews_to
                .entry((p.to.clone(), p.subject.clone()))
                .or_default() += 1;
        }
        if p.to == "admin@example.gov.tw" && p.subject.contains("排程逾期未執行") {
            storm.push(p.subject.clone());
        }
    }
    assert!(!reviews_to.is_empty());
    assert!(reviews_to.values().all(|n| *n == 1), "{reviews_to:?}");
    // Down from 5 to 8 July, from July to January, from 5 to 8 and from
    // 8 to 10 January: one alert per job and outage, not one per missed
    // day (the daily retention missed 180 days in the second).
    let retention: Vec<&String> = storm.iter().filter(|s| s.contains("retention")).collect();
    assert_eq!(
        retention,
        [
            "【健保WebIR稽核】排程逾期未執行：retention 2026-07-06..2026-07-07",
            "【健保WebIR稽核】排程逾期未執行：retention 2026-07-09..2027-01-04",
            "【健保WebIR稽核】排程逾期未執行：retention 2027-01-06..2027-01-07",
            "【健保WebIR稽核】排程逾期未執行：retention 2027-01-09"
        ],
        "{storm:?}"
    );
    let per_job_and_outage: BTreeSet<&String> = storm.iter().collect();
    assert_eq!(per_job_and_outage.len(), storm.len(), "{storm:?}");
    assert_eq!(storm.len(), 6, "{storm:?}");
}

#[test]
fn two_half_years_of_real_exports_through_the_daemon() {
    let first = live_year(&NAMES);
    // The same exports under other names, in the other order.
    let shuffled = live_year(&SHUFFLED);
    // The seeds differ (the daemon draws them), the populations do not.
    assert_eq!(first.digests, shuffled.digests);
    assert_eq!(first.findings, shuffled.findings);
}
