//! Years of real exports (issue: optional columns, overlapping logs,
//! roster snapshots): a small city shaped like a real one — a police
//! bureau with a precinct, exports in several formats that overlap, a
//! roster exported twice, HR changes in two files — run through the real
//! binary. Every count is computed here from the test's own rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::harness::mail::parse_all;
use crate::harness::{Output, Test, findings_per_account, json, write_xlsx};

/// The roster header as a real WebIR account export has it.
const ROSTER_HEADER: &str =
    "帳號,姓名,員工編號,機關,角色,人員類別,帳號狀態,建立日期,密碼變更日期,停用日期";
const HR_HEADER: &str = "員工編號,姓名,機關,人員類別,狀態,生效日期,身分證號";
/// A query-log export without a source-IP column (what the report said
/// was refused whole).
const LOG_HEADER_NO_IP: &str = "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關";

/// One query: account, time, subject.
type Q = (&'static str, &'static str, &'static str);

fn csv(header: &str, rows: &[String]) -> String {
    let mut s = String::from(header);
    s.push('\n');
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

fn log_rows(qs: &[Q]) -> Vec<String> {
    qs.iter()
        .map(|(a, t, s)| format!("{a},{t},投保資料,{s},犯罪偵查,成功,警察局"))
        .collect()
}

/// A query log as an XLSX workbook with a title row (a re-saved export).
fn log_xlsx(path: &Path, qs: &[Q]) {
    let header: Vec<&str> = LOG_HEADER_NO_IP.split(',').collect();
    let rows: Vec<Vec<String>> = log_rows(qs)
        .iter()
        .map(|r| r.split(',').map(str::to_owned).collect())
        .collect();
    write_xlsx(path, &["健保WebIR查詢紀錄"], &header, &rows);
}

/// Accounts: a police officer account, two business users of the precinct
/// and the Health Bureau's officer and chief administrator.
fn roster_rows() -> Vec<String> {
    [
        "P001,王警官,E001,警察局,專責人員,編制內,啟用,2025-01-02,2026-06-01,",
        "P101,李小明,E101,第一分局,業務需求人員,編制內,啟用,2025-01-02,2026-06-01,",
        "P102,陳大華,E102,第一分局,業務需求人員,約聘僱,啟用,2025-01-02,2026-06-01,",
        "H001,林主任,E201,衛生局,總管理者,編制內,啟用,2025-01-02,2026-06-01,",
        "H002,張專員,E202,衛生局,專責人員,編制內,啟用,2025-01-02,2026-06-01,",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn hr_rows() -> Vec<String> {
    [
        "E001,王警官,警察局,編制內,在職,2020-01-01,A100000001",
        "E101,李小明,第一分局,編制內,在職,2020-01-01,A100000002",
        "E102,陳大華,第一分局,約聘僱,在職,2020-01-01,A100000003",
        "E201,林主任,衛生局,編制內,在職,2020-01-01,A100000004",
        "E202,張專員,衛生局,編制內,在職,2020-01-01,A100000005",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Every account queries now and then through the half-year, so none is
/// idle or unused when the logs are all there.
fn steady_queries() -> Vec<Q> {
    const TIMES: [&str; 6] = [
        "2026-01-15 10:00:00",
        "2026-02-16 10:00:00",
        "2026-03-16 10:00:00",
        "2026-04-15 10:00:00",
        "2026-05-15 10:00:00",
        "2026-06-29 10:00:00",
    ];
    let mut out = Vec::new();
    for a in ["P001", "P101", "P102", "H001", "H002"] {
        for t in TIMES {
            out.push((a, t, "B200000001"));
        }
    }
    out
}

fn city() -> Test {
    Test::new()
        .file(
            "inbox/roster/accounts_20260702.csv",
            csv(ROSTER_HEADER, &roster_rows()),
        )
        .file("inbox/hr/hr_20260702.csv", csv(HR_HEADER, &hr_rows()))
}

fn codes(dir: &Path) -> Vec<String> {
    findings_per_account(dir)
        .into_keys()
        .map(|(code, _)| code)
        .collect()
}

fn run_json(dir: &Path) -> serde_json::Value {
    json(dir, "run.json")
}

fn summary_texts(workbook: &Path) -> Vec<String> {
    sheet_rows(workbook, "摘要")
        .into_iter()
        .map(|r| r.join(" "))
        .collect()
}

/// The rows of `sheet` in `workbook`, every cell as text.
fn sheet_rows(workbook: &Path, sheet: &str) -> Vec<Vec<String>> {
    use calamine::{Reader, Xlsx, open_workbook};
    let mut wb: Xlsx<_> = open_workbook(workbook).unwrap();
    let range = wb.worksheet_range(sheet).unwrap();
    range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

/// Regression: with a query-log file refused, an account review reported
/// every account "never used" and recommended revoking working accounts
/// (the officers' and the chief administrator's included). Now the checks
/// that read the log are withheld, and the summary, the mail, `run.json`
/// and the exit status say so.
#[test]
fn a_failed_query_log_withholds_idle_and_never_used_and_says_why() {
    let qs = steady_queries();
    let h1: Vec<Q> = qs.iter().copied().filter(|q| q.1 < "2026-04-01").collect();
    let t = city()
        .file(
            "inbox/query_logs/webir_2026Q1.csv",
            csv(LOG_HEADER_NO_IP, &log_rows(&h1)),
        )
        // The second export is cut short in transfer: not a workbook.
        .file(
            "inbox/query_logs/webir_2026Q2.xlsx",
            "PK\u{3}\u{4} truncated",
        );
    let out = t.run(&["run", "account-review", "--as-of", "2026-07-02"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("NOT CHECKED ACCOUNT_IDLE: input failed (query_logs/webir_2026Q2.xlsx)"),
        "{}",
        out.stdout
    );
    let dir = out.run_dir();
    let found = codes(&dir);
    for code in [
        "ACCOUNT_IDLE",
        "ACCOUNT_NEVER_USED",
        "ACCOUNT_NOT_IN_ROSTER",
    ] {
        assert!(
            !found.iter().any(|c| c == code),
            "{code} reported: {found:?}"
        );
    }
    let run = run_json(&dir);
    let withheld: Vec<(String, String, String)> = run["not_checked"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| {
            n["codes"].as_array().unwrap().iter().map(move |c| {
                (
                    c.as_str().unwrap().to_owned(),
                    n["why"].as_str().unwrap().to_owned(),
                    n["input"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect();
    for code in [
        "ACCOUNT_IDLE",
        "ACCOUNT_NEVER_USED",
        "ACCOUNT_NOT_IN_ROSTER",
    ] {
        assert!(
            withheld.contains(&(
                code.to_owned(),
                "input_failed".to_owned(),
                "query_logs/webir_2026Q2.xlsx".to_owned()
            )),
            "{code}: {withheld:?}"
        );
    }
    // Checks that do not read the log still ran, and found nothing wrong.
    assert!(!withheld.iter().any(|w| w.0 == "ACCOUNT_HOLDER_DEPARTED"));

    // The summary says it first, above everything else.
    let summary = summary_texts(&dir.join("reports/KPB.xlsx"));
    // In the reader's words: what was not checked, never the code.
    let idle = webir_audit::checks::Code::AccountIdle.description();
    assert!(
        summary[2].contains("未檢核") && summary[2].contains(idle),
        "{summary:?}"
    );
    assert!(
        !summary.iter().any(|l| l.contains("ACCOUNT_IDLE")),
        "{summary:?}"
    );
    // A file that failed holds no rows placed in any unit: the unit is
    // told a file failed, not its name (issue 30: a file's name can say
    // whose case it is); the city-wide workbook names it.
    assert!(
        summary[3..]
            .iter()
            .any(|l| l.contains("未列出之輸入檔案（檔名僅列於衛生局彙整表）")),
        "{summary:?}"
    );
    assert!(
        !summary.iter().any(|l| l.contains("webir_2026Q2.xlsx")),
        "{summary:?}"
    );
    assert!(
        summary_texts(&dir.join("reports/city-wide.xlsx"))
            .iter()
            .any(|l| l.contains("query_logs/webir_2026Q2.xlsx"))
    );
    // And so does the officer's mail, before the greeting's first line ends.
    let mails = parse_all(&t.path("var/state/outbox-files"));
    let kpb = mails
        .iter()
        .find(|m| m.to.contains("o.kpb@"))
        .expect("a mail to the police officer");
    let first_lines: Vec<&str> = kpb.text.lines().take(4).collect();
    assert!(
        first_lines
            .iter()
            .any(|l| l.contains("未檢核") && l.contains(idle)),
        "{}",
        kpb.text
    );
}

/// With every export there, the same city has no idle or unused account:
/// the withholding above is what made the difference, not the data.
#[test]
fn the_same_city_with_its_logs_whole_has_nothing_withheld() {
    let qs = steady_queries();
    let (h1, h2): (Vec<Q>, Vec<Q>) = qs.iter().partition(|q| q.1 < "2026-04-01");
    let t = city().file(
        "inbox/query_logs/webir_2026Q1.csv",
        csv(LOG_HEADER_NO_IP, &log_rows(&h1)),
    );
    log_xlsx(&t.path("inbox/query_logs/webir_2026Q2.xlsx"), &h2);
    let out = t.run(&[
        "run",
        "account-review",
        "--as-of",
        "2026-07-02",
        "--no-send",
    ]);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    // Only the register this city does not keep is not checked; nothing
    // the logs feed is.
    let dir = out.run_dir();
    let not_checked = run_json(&dir)["not_checked"].as_array().unwrap().clone();
    assert!(
        not_checked
            .iter()
            .all(|n| n["why"] == "register_missing" && n["input"] == "applications/"),
        "{not_checked:?}"
    );
    let found = codes(&dir);
    assert!(
        !found
            .iter()
            .any(|c| c == "ACCOUNT_IDLE" || c == "ACCOUNT_NEVER_USED"),
        "{found:?}"
    );
}

/// Regression: an export without a source-IP column was refused whole
/// ("lacks required column client_ip"). Nothing needs the IP.
#[test]
fn a_query_log_without_an_ip_column_is_loaded() {
    let t = city().file(
        "inbox/query_logs/webir_2026Q1.csv",
        csv(LOG_HEADER_NO_IP, &log_rows(&steady_queries())),
    );
    let out: Output = t.run(&["check-config"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    // Every row read, none rejected or skipped.
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("query_logs/webir_2026Q1.csv "))
        .expect("a line for the log");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[2..6], ["30", "0", "0", "ok"], "{line}");
    assert!(
        out.stdout.contains(
            "query_logs/webir_2026Q1.csv: no client_ip column (optional; every check runs without it)"
        ),
        "{}",
        out.stdout
    );
}

/// Two overlapping exports: January–April as CSV, March–June re-saved as
/// XLSX. March and April are in both; one record is a real repeat inside
/// the CSV (the same query twice in a second), another inside the XLSX.
fn overlapping_exports() -> (Vec<Q>, Vec<Q>) {
    let mut a: Vec<Q> = Vec::new();
    let mut b: Vec<Q> = Vec::new();
    let times = [
        ("2026-01-12 09:00:00", "A"),
        ("2026-02-10 09:00:00", "A"),
        ("2026-03-10 09:00:00", "AB"),
        ("2026-03-11 14:20:05", "AB"),
        ("2026-04-14 09:30:00", "AB"),
        ("2026-05-12 09:00:00", "B"),
        ("2026-06-10 09:00:00", "B"),
    ];
    for account in ["P001", "P101", "P102", "H002"] {
        for (i, (t, files)) in times.iter().enumerate() {
            let subject = ["C100000001", "C100000002", "C100000003"][i % 3];
            if files.contains('A') {
                a.push((account, t, subject));
            }
            if files.contains('B') {
                b.push((account, t, subject));
            }
        }
    }
    // A real repeat in the CSV, which the XLSX has once: counts twice.
    a.push(("P101", "2026-03-11 14:20:05", "C100000002"));
    // One in the XLSX, which the CSV has once: counts twice too.
    b.push(("P102", "2026-04-14 09:30:00", "C100000002"));
    (a, b)
}

/// What the rule makes of them, counted here: per record, the larger of
/// its counts in the two files.
fn expected_records(a: &[Q], b: &[Q]) -> std::collections::BTreeMap<&'static str, usize> {
    use std::collections::BTreeMap;
    let count = |qs: &[Q]| {
        let mut m: BTreeMap<Q, usize> = BTreeMap::new();
        for q in qs {
            *m.entry(*q).or_default() += 1;
        }
        m
    };
    let (ca, cb) = (count(a), count(b));
    let mut per_account: BTreeMap<&'static str, usize> = BTreeMap::new();
    for q in ca
        .keys()
        .chain(cb.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let n = ca
            .get(q)
            .copied()
            .unwrap_or(0)
            .max(cb.get(q).copied().unwrap_or(0));
        *per_account.entry(q.0).or_default() += n;
    }
    per_account
}

const SEED: &str = "31415926535897932384";

/// Runs the 2026H1 sample audit on a city whose logs are `a` (CSV) and `b`
/// (XLSX) under the given file names.
fn sample_audit_of(
    a: &[Q],
    b: &[Q],
    name_a: &str,
    name_b: &str,
) -> (Test, Output, serde_json::Value) {
    let t = city().file(
        &format!("inbox/query_logs/{name_a}"),
        csv(LOG_HEADER_NO_IP, &log_rows(a)),
    );
    log_xlsx(&t.path(&format!("inbox/query_logs/{name_b}")), b);
    let out = t.run(&[
        "run",
        "sample-audit",
        "--period",
        "2026H1",
        "--seed",
        SEED,
        "--no-send",
    ]);
    out.assert_ran();
    let m = json(&out.run_dir(), "manifest.json");
    (t, out, m)
}

/// Regression: an agency that exported January–April and then March–June
/// doubled March and April in the sample's population and every count.
/// The same query in two files now counts once (as often as the file that
/// has it most), whatever the files are called and in whatever order.
#[test]
fn overlapping_exports_count_once_whatever_their_names_and_order() {
    let (a, b) = overlapping_exports();
    let expected = expected_records(&a, &b);
    let total: usize = expected.values().sum();
    assert!(total < a.len() + b.len(), "the fixture must overlap");

    let (t, out, m) = sample_audit_of(&a, &b, "webir_202601-04.csv", "webir_202603-06.xlsx");
    assert_eq!(m["population_records"], total as u64, "{}", out.stdout);
    // Per account, from the population the verifiers re-draw.
    let tsv = std::fs::read_to_string(out.run_dir().join("population.tsv")).unwrap();
    let mut got: std::collections::BTreeMap<String, usize> = Default::default();
    for line in tsv.lines().skip(1) {
        *got.entry(line.split('\t').next().unwrap().to_owned())
            .or_default() += 1;
    }
    let expected_owned: std::collections::BTreeMap<String, usize> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    assert_eq!(got, expected_owned);

    // `ingest` says what each file shared with the other: the XLSX's
    // March and April rows (smaller hash or larger count decides which
    // copy counts; the totals do not depend on it).
    let shared_b = b.iter().filter(|q| a.contains(q)).count();
    let shared_a = a.iter().filter(|q| b.contains(q)).count();
    let ingest = t.run(&["ingest"]);
    for (name, n) in [
        ("webir_202601-04.csv", shared_a),
        ("webir_202603-06.xlsx", shared_b),
    ] {
        let line = format!("query_logs/{name}: {n} rows are records another file also holds");
        assert!(ingest.stdout.contains(&line), "{line}\n{}", ingest.stdout);
    }

    // Other names, the other order: the same population and sample.
    let (_t2, _, m2) = sample_audit_of(&a, &b, "2_export.csv", "1_export.xlsx");
    for key in ["population_records", "population_digest", "sample_digest"] {
        assert_eq!(m[key], m2[key], "{key}");
    }
}

const HOLIDAYS_2026: &str = "[[holidays]]\ndate = 2026-01-01\nname = \"開國紀念日\"\n";

/// Regression: off-hours checks quietly went wrong at New Year, when the
/// holidays file did not cover the period checked. Now a run says the
/// check did not run, the daemon waits for that year's calendar, and
/// check-config warns before the period comes.
#[test]
fn a_year_the_holidays_file_does_not_cover_is_not_checked_and_waited_for() {
    let schedules = crate::harness::repo().join("schedules");
    let t = city()
        .config_replace(
            "state = \"var/state\"",
            &format!(
                "state = \"var/state\"\nschedules = \"{}\"",
                schedules.display()
            ),
        )
        .config("\n[rules]\nholidays = \"holidays.toml\"\n")
        .file("holidays.toml", HOLIDAYS_2026)
        .file(
            "inbox/query_logs/webir_2027.csv",
            csv(
                LOG_HEADER_NO_IP,
                &log_rows(&[("P101", "2027-01-02 10:00:00", "B200000001")]),
            ),
        );
    // A run over 2027 by hand: off-hours not checked, and why.
    let out = t.run(&["run", "query-check", "--period", "2027H1", "--no-send"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "NOT CHECKED QUERY_OFF_HOURS: no holidays calendar (rules.holidays): the holidays file lists no holiday in 2027"
        ),
        "{}",
        out.stdout
    );
    assert!(!codes(&out.run_dir()).iter().any(|c| c == "QUERY_OFF_HOURS"));
    // The daemon's sample audit of 2027H1 would wait for the calendar.
    let config = t.loaded_config();
    let missing = webir_audit::daemon::missing_inputs(
        &config,
        webir_audit::schedule::Job::SampleAudit,
        "2027H1",
        &[],
        &Default::default(),
    );
    assert!(
        missing
            .iter()
            .any(|m| m.starts_with("a holidays calendar for 2027")),
        "{missing:?}"
    );
    // check-config, in March 2027, warns of July's run.
    let out = t.run(&["check-config", "--now", "2027-03-01T09:00:00+08:00"]);
    assert!(
        out.stdout.contains(
            "WARNING: the holidays file lists no holiday in 2027; sample-audit of 2027H1 (due 2027-07-05 08:00) will wait for that year's calendar"
        ),
        "{}",
        out.stdout
    );
}

/// A request-form register exported in mid-June cannot hold the forms of
/// late June's queries: without this rule every one of them was reported
/// as made without a form (high). Now the explanation checks wait for a
/// register that reaches the period's end.
#[test]
fn a_register_exported_before_the_period_ended_does_not_explain_it() {
    let forms = "表單編號,帳號,被查詢人身分證號,查詢目的,查詢事由,申請時間,核可主管,核可時間\nF1,P101,B200000001,犯罪偵查,偵辦竊盜案,2026-01-10 09:00:00,陳組長,2026-01-10 10:00:00\n";
    let run = |name: &str| {
        let t = city()
            .file(
                "inbox/query_logs/webir_2026H1.csv",
                csv(LOG_HEADER_NO_IP, &log_rows(&steady_queries())),
            )
            .file(&format!("inbox/forms/{name}"), forms);
        let out = t.run(&["run", "query-check", "--period", "2026H1", "--no-send"]);
        (t, out)
    };
    let (_t, short) = run("紀錄表_1150615.csv");
    assert_eq!(short.status, 2, "{}{}", short.stdout, short.stderr);
    assert!(
        short.stdout.contains("NOT CHECKED QUERY_NO_REQUEST_FORM, QUERY_FORM_NOT_APPROVED, QUERY_APPROVED_AFTER_QUERY, QUERY_FORM_EXPIRED: inputs do not cover it (forms/紀錄表_1150615.csv): the newest request-form register is of 2026-06-15 (date from its file name)"),
        "{}",
        short.stdout
    );
    assert!(
        !codes(&short.run_dir())
            .iter()
            .any(|c| c == "QUERY_NO_REQUEST_FORM")
    );
    let (_t, whole) = run("紀錄表_1150701.csv");
    assert!(whole.status <= 1, "{}{}", whole.stdout, whole.stderr);
    assert!(
        codes(&whole.run_dir())
            .iter()
            .any(|c| c == "QUERY_NO_REQUEST_FORM")
    );
}

/// A register is dated by what it carries, a title row or its name; the
/// log ending before the period does, a register of the log's last day
/// covers it. One carrying no date (as `sample_data`'s did: issue 27) is
/// dated by its file's modification time only where that is said and
/// allowed: the query check uses it and warns (terminal, `inputs.json`,
/// `check-config`); the sample audit, sealed as evidence, takes no such
/// date, so its form checks read 未檢核 with the reason (terminal,
/// `run.json`, 資料品質), unless `rules.accept_modification_dates` says so.
#[test]
fn a_register_without_a_date_of_its_own_is_not_dated_by_its_file_in_an_audit() {
    a_title_row_or_a_name_dates_the_register();
    the_query_check_takes_the_file_s_time_and_says_so();
    let (_t, dir) = the_sample_audit_takes_no_file_time_and_says_why();
    the_file_s_time_moved_a_year_on_changes_nothing_recorded(&dir);
    a_config_accepting_file_times_runs_the_form_checks_and_warns();
}

/// A request-form register with one form and no date of its own.
const UNDATED_REGISTER: &str = "表單編號,帳號,被查詢人身分證號,查詢目的,查詢事由,申請時間,核可主管,核可時間\n\
        F1,P101,B200000001,犯罪偵查,偵辦竊盜案,2026-01-10 09:00:00,陳組長,2026-01-10 10:00:00\n";

/// The sample audit's arguments, past `run`.
const SAMPLE_ARGS: [&str; 3] = ["sample-audit", "--seed", "12345678901234567890"];

/// What the query check says of a register dated by its file's time.
const SAID_FILE_TIME: &str = "WARNING: forms/forms.csv: 2026-07-03 (modification time: no date in its title rows or file name, so the result depends on when the file was copied)";

/// A city whose logs end on 29 June, with the register `forms` as
/// `name`, config `extra`, running `args` of 2026H1 on 5 July.
fn register_run(name: &str, forms: &str, extra: &str, args: &[&str]) -> (Test, Output) {
    // The logs end on 29 June: a register made that day covers them.
    let t = city()
        .config(extra)
        .file(
            "inbox/query_logs/webir_2026H1.csv",
            csv(LOG_HEADER_NO_IP, &log_rows(&steady_queries())),
        )
        .file(&format!("inbox/forms/{name}"), forms);
    let mut all = vec!["--now", "2026-07-05T08:00:00+08:00", "run"];
    all.extend(args);
    all.extend(["--period", "2026H1", "--no-send"]);
    let out = t.run(&all);
    (t, out)
}

fn inputs_json(dir: &Path) -> String {
    json(dir, "inputs.json").to_string()
}

/// The run checked the request forms and found a query without one.
fn forms_checked(dir: &Path) -> bool {
    !run_json(dir)["not_checked"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["codes"][0] == "QUERY_NO_REQUEST_FORM")
        && codes(dir).iter().any(|c| c == "QUERY_NO_REQUEST_FORM")
}

/// Dated by a title row, and by the name, on the log's last day: the
/// sample audit checks the forms, warning of nothing.
fn a_title_row_or_a_name_dates_the_register() {
    let (body, sample, inputs) = (UNDATED_REGISTER, &SAMPLE_ARGS, inputs_json);
    // Dated by a title row, and by the name, on the log's last day.
    let titled = format!("查詢申請紀錄表\n製表日期：115/06/29\n{body}");
    let (_t, out) = register_run("forms.csv", &titled, "", sample);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    assert!(forms_checked(&out.run_dir()), "{}", out.stdout);
    assert!(
        inputs(&out.run_dir()).contains("2026-06-29 (title row)"),
        "{}",
        inputs(&out.run_dir())
    );
    assert!(!out.stdout.contains("WARNING"), "{}", out.stdout);
    let (_t, out) = register_run("紀錄表_1150629.csv", body, "", sample);
    assert!(forms_checked(&out.run_dir()), "{}", out.stdout);
}

/// Undated: the query check takes the file's time, and says so, as does
/// `check-config`.
fn the_query_check_takes_the_file_s_time_and_says_so() {
    let (body, inputs, said) = (UNDATED_REGISTER, inputs_json, SAID_FILE_TIME);
    let (t, out) = register_run("forms.csv", body, "", &["query-check"]);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    assert!(forms_checked(&out.run_dir()), "{}", out.stdout);
    assert!(out.stdout.contains(said), "{}", out.stdout);
    assert!(
        inputs(&out.run_dir()).contains("2026-07-03 (modification time: no date"),
        "{}",
        inputs(&out.run_dir())
    );
    let check = t.run(&["check-config"]);
    assert!(
        check.stdout.contains(
            "WARNING: forms/forms.csv: request-form register of 2026-07-03 (modification time"
        ) && check.stdout.contains("rules.accept_modification_dates"),
        "{}",
        check.stdout
    );
}

/// The sample audit does not: its form checks are not checked, and why
/// (terminal, `inputs.json`, 資料品質). Returns its city and run folder.
fn the_sample_audit_takes_no_file_time_and_says_why() -> (Test, std::path::PathBuf) {
    let (body, inputs) = (UNDATED_REGISTER, inputs_json);
    let (t, out) = register_run("forms.csv", body, "", &SAMPLE_ARGS);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    let dir = out.run_dir();
    assert!(
        out.stdout.contains(
            "NOT CHECKED QUERY_NO_REQUEST_FORM, QUERY_FORM_NOT_APPROVED, QUERY_APPROVED_AFTER_QUERY, QUERY_FORM_EXPIRED: inputs do not cover it (forms/forms.csv): the request-form register has no date in its title rows or file name; its modification time is not taken as its date in a sealed audit"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("WARNING: forms/forms.csv: undated"),
        "{}",
        out.stdout
    );
    assert!(!codes(&dir).iter().any(|c| c == "QUERY_NO_REQUEST_FORM"));
    assert!(
        inputs(&dir).contains(
            "undated (no date in its title rows or file name; its modification time is not taken"
        ),
        "{}",
        inputs(&dir)
    );
    let quality: Vec<String> = sheet_rows(&dir.join("reports/KPB.xlsx"), "資料品質")
        .into_iter()
        .flatten()
        .collect();
    assert!(
        quality
            .iter()
            .any(|c| c.starts_with("未載明日期（標題列及檔名均無；檔案修改日期隨複製")),
        "{quality:?}"
    );
    assert!(
        quality.iter().any(|c| c
            .starts_with("查詢申請紀錄表清冊之標題列及檔名均未載明製表日期；檔案修改日期隨複製")),
        "{quality:?}"
    );
    (t, dir)
}

/// The file's time moved a year on changes nothing the audit (run in
/// `dir`) records.
fn the_file_s_time_moved_a_year_on_changes_nothing_recorded(dir: &Path) {
    let (body, inputs) = (UNDATED_REGISTER, inputs_json);
    let (t, _) = register_run("forms.csv", body, "", &["query-check"]);
    crate::harness::written_at(&t.input("forms/forms.csv"), "2027-07-03T09:00:00+08:00");
    let mut again = vec!["--now", "2026-07-05T09:00:00+08:00", "run"];
    again.extend(SAMPLE_ARGS);
    again.extend(["--period", "2026H1", "--no-send"]);
    let later = t.run(&again);
    assert_eq!(
        run_json(&later.run_dir())["not_checked"],
        run_json(dir)["not_checked"],
        "{}",
        later.stdout
    );
    assert_eq!(inputs(&later.run_dir()), inputs(dir));
}

/// Unless the config accepts file times: then it runs them, and warns.
fn a_config_accepting_file_times_runs_the_form_checks_and_warns() {
    let (_t, out) = register_run(
        "forms.csv",
        UNDATED_REGISTER,
        "\n[rules]\naccept_modification_dates = true\n",
        &SAMPLE_ARGS,
    );
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    assert!(forms_checked(&out.run_dir()), "{}", out.stdout);
    assert!(out.stdout.contains(SAID_FILE_TIME), "{}", out.stdout);
}

/// Two roster exports, one dated and one not: in a sealed audit the
/// undated one cannot be placed (older or newer decides which row of an
/// account is current), so it fails and the checks that read rosters say
/// so; it is never merged in as if current (a review found its stale
/// rows could win). The query check, which takes file times, uses both.
#[test]
fn an_undated_roster_beside_dated_ones_is_not_placed_in_an_audit() {
    let t = city()
        .file(
            "inbox/query_logs/webir_2026H1.csv",
            csv(LOG_HEADER_NO_IP, &log_rows(&steady_queries())),
        )
        // Not a byte-for-byte copy (that would be read once): an older
        // export where P101 was still to be disabled, say.
        .file(
            "inbox/roster/accounts.csv",
            csv(ROSTER_HEADER, &roster_rows()).replace("李小明", "李小明 "),
        );
    let mut args = vec!["--now", "2026-07-05T08:00:00+08:00", "run"];
    args.extend(["sample-audit", "--seed", "12345678901234567890"]);
    args.extend(["--period", "2026H1", "--no-send"]);
    let out = t.run(&args);
    // The draw's population would rest on it: nothing is drawn, and why.
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("no seed was drawn")
            && out.stderr.contains("roster/accounts.csv")
            && out.stderr.contains("which is current cannot be told"),
        "{}",
        out.stderr
    );
    // The internal audit runs, and says which checks it could not make.
    let mut args = crate::harness::INTERNAL_AUDIT_2026.to_vec();
    args.push("--no-send");
    let out = t.run(&args);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("NOT CHECKED ACCOUNT_")
                && l.contains("input failed (roster/accounts.csv)")),
        "{}",
        out.stdout
    );
}

/// Logs that start early enough and end late enough can still miss the
/// middle: with April's and May's exports missing, accounts used only then
/// would look idle. A hole of more than a month between exports withholds
/// idle and never-used accounts too.
#[test]
fn a_missing_export_in_the_middle_withholds_idle_and_never_used() {
    let qs = steady_queries();
    let q1: Vec<Q> = qs.iter().copied().filter(|q| q.1 < "2026-04-01").collect();
    let june: Vec<Q> = qs.iter().copied().filter(|q| q.1 >= "2026-06-01").collect();
    let t = city()
        .file(
            "inbox/query_logs/webir_2026Q1.csv",
            csv(LOG_HEADER_NO_IP, &log_rows(&q1)),
        )
        .file(
            "inbox/query_logs/webir_202606.csv",
            csv(LOG_HEADER_NO_IP, &log_rows(&june)),
        );
    let out = t.run(&[
        "run",
        "account-review",
        "--as-of",
        "2026-07-02",
        "--no-send",
    ]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("they run 2026-01-15 to 2026-03-16, then 2026-06-29 to 2026-06-29"),
        "{}",
        out.stdout
    );
    assert!(!codes(&out.run_dir()).iter().any(|c| c == "ACCOUNT_IDLE"));
}

/// The sample worksheet's pre-check (系統預檢) and form column say what the
/// findings say of the same query (issue 15: a row showed 無對應紀錄表
/// while 異常查詢 cited the late-approved form; rows whose purpose differed
/// from their form's were pre-checked 無異常). One account is the
/// police's only one in use, so every one of its queries is sampled: one
/// approved after the query, one whose form states another purpose, one
/// without a form, one in order.
#[test]
fn the_worksheet_pre_check_is_the_findings_verdict_row_by_row() {
    let sampled = PreCheck::the_police_s_only_account_has_its_four_queries_sampled();
    let seen = sampled.each_row_s_pre_check_says_what_its_findings_say();
    every_query_is_sampled(seen);
}

/// The findings of each query, by its masked subject, and the KPB
/// worksheet's rows, of one sample audit.
struct PreCheck {
    /// Holds the city's folder for the test's length.
    _t: Test,
    by_subject: BTreeMap<String, BTreeSet<String>>,
    rows: Vec<Vec<String>>,
}

impl PreCheck {
    /// P101's four queries: approved after, another purpose, no form, in
    /// order; the sample audit draws them all.
    fn the_police_s_only_account_has_its_four_queries_sampled() -> PreCheck {
        let queries: Vec<String> = [
            "P101,2026-03-02 10:00:00,投保資料,B200000011,犯罪偵查,成功,第一分局",
            "P101,2026-03-05 10:00:00,投保資料,B200000012,犯罪偵查,成功,第一分局",
            "P101,2026-03-06 10:00:00,投保資料,B200000013,犯罪偵查,成功,第一分局",
            "P101,2026-03-09 10:00:00,投保資料,B200000014,犯罪偵查,成功,第一分局",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let forms = "表單編號,帳號,被查詢人身分證號,查詢目的,查詢事由,申請時間,核可主管,核可時間\n\
        F1,P101,B200000011,犯罪偵查,偵辦竊盜案,2026-03-02 09:00:00,陳組長,2026-03-03 09:00:00\n\
        F2,P101,B200000012,毒品施用者追蹤輔導,追蹤輔導,2026-03-04 09:00:00,陳組長,2026-03-04 10:00:00\n\
        F4,P101,B200000014,犯罪偵查,偵辦詐欺案,2026-03-08 09:00:00,陳組長,2026-03-08 10:00:00\n";
        let t = city()
            .file(
                "inbox/query_logs/webir_2026H1.csv",
                csv(LOG_HEADER_NO_IP, &queries),
            )
            .file("inbox/forms/紀錄表_1150701.csv", forms);
        let mut args = crate::harness::SAMPLE_AUDIT_2026H1.to_vec();
        args.push("--no-send");
        let out = t.run(&args);
        assert!(out.status <= 2, "{}{}", out.stdout, out.stderr);
        let dir = out.run_dir();
        let by_subject = PreCheck::findings_by_subject(&dir);
        let rows = PreCheck::worksheet_rows(&dir);
        PreCheck {
            _t: t,
            by_subject,
            rows,
        }
    }

    /// The findings of each query of P101, by its masked subject.
    fn findings_by_subject(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
        // The findings of each query, by its masked subject.
        let text = std::fs::read_to_string(dir.join("findings.csv")).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap()
            .trim_start_matches('\u{feff}')
            .split(',')
            .collect();
        let at = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let mut by_subject: BTreeMap<String, BTreeSet<String>> = Default::default();
        for l in lines {
            let f: Vec<&str> = l.split(',').collect();
            if f[at("account_id")] == "P101" && !f[at("subject")].is_empty() {
                let code = webir_audit::checks::Code::parse(f[at("code")]).unwrap();
                by_subject
                    .entry(f[at("subject")].to_owned())
                    .or_default()
                    .insert(code.description().to_owned());
            }
        }
        by_subject
    }

    /// KPB's 抽查工作底稿, as text.
    fn worksheet_rows(dir: &Path) -> Vec<Vec<String>> {
        use calamine::{Data, Reader, Xlsx, open_workbook};
        let mut wb: Xlsx<_> = open_workbook(dir.join("reports/KPB.xlsx")).unwrap();
        let range = wb.worksheet_range("抽查工作底稿").unwrap();
        range
            .rows()
            .map(|r| r.iter().map(Data::to_string).collect())
            .collect()
    }

    /// The worksheet's column headed `n`.
    fn col(&self, n: &str) -> usize {
        let h = &self.rows[2];
        h.iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n}"))
    }

    /// Each row's 系統預檢 lists its query's findings, and its 紀錄表 the
    /// form that query had. Returns the rows' subjects' ends.
    fn each_row_s_pre_check_says_what_its_findings_say(&self) -> Vec<String> {
        let (subject, pre, form_col, purpose) = (
            self.col("被查詢人"),
            self.col("系統預檢"),
            self.col("紀錄表"),
            self.col("查詢目的"),
        );
        let mut seen = Vec::new();
        for r in self.rows[3..]
            .iter()
            .take_while(|r| r.iter().any(|c| !c.is_empty()))
        {
            // 紀錄表: the form's number, then its purpose where it is not the
            // query's.
            let form_lines: Vec<&str> = r[form_col].lines().collect();
            let (f, form_purpose) = (
                form_lines[0].to_owned(),
                form_lines
                    .get(1)
                    .and_then(|l| l.strip_prefix("目的："))
                    .unwrap_or(r[purpose].as_str()),
            );
            let said: BTreeSet<String> = match r[pre].as_str() {
                "無異常" => Default::default(),
                p => p.split('；').map(str::to_owned).collect(),
            };
            let found = self
                .by_subject
                .get(&r[subject])
                .cloned()
                .unwrap_or_default();
            assert_eq!(said, found, "row {r:?}");
            self.the_row_cites_the_form_its_query_had(r, &f, form_purpose, &found);
            seen.push(r[subject][7..].to_owned());
        }
        seen
    }

    /// Row `r`'s form `f` (stating `form_purpose`) is what its query had:
    /// late, of another purpose, none, or in order.
    fn the_row_cites_the_form_its_query_had(
        &self,
        r: &[String],
        f: &str,
        form_purpose: &str,
        found: &BTreeSet<String>,
    ) {
        let (subject, purpose) = (self.col("被查詢人"), self.col("查詢目的"));
        match &r[subject][7..] {
            // Approved the day after the query: the row cites that form.
            "011" => {
                assert_eq!(f, "F1（查詢後始核可）");
                // Who approved it, and when: after the query.
                assert_eq!(r[self.col("核准")], "陳組長\n2026/03/03 09:00", "{r:?}");
            }
            // The form states another purpose than the query.
            "012" => {
                assert_eq!(f, "F2");
                assert_ne!(r[purpose], form_purpose, "{r:?}");
                assert!(found.contains("查詢目的與紀錄表所載目的不符"), "{found:?}");
            }
            "013" => assert_eq!(f, "無對應紀錄表"),
            "014" => {
                assert_eq!(f, "F4");
                assert!(found.is_empty(), "{found:?}");
            }
            other => panic!("unexpected row {other}"),
        }
    }
}

/// Every one of P101's queries has its row.
fn every_query_is_sampled(mut seen: Vec<String>) {
    seen.sort();
    assert_eq!(seen, ["011", "012", "013", "014"], "every query sampled");
}

/// Findings across reviews (issue 16): a departed holder's account still
/// active at the next review is a repeat, raised one severity level, and
/// the 帳號清查 sheet says so; once the data no longer shows it (the
/// account disabled), the history closes it and it is not a repeat again.
#[test]
fn a_finding_still_open_at_the_next_review_is_a_repeat_one_level_higher() {
    let city = Repeat::a_city_where_p102_s_holder_has_left();
    let first = city.the_first_review_lists_it_high();
    city.the_officer_answers_that_it_was_revoked(&first);
    city.the_same_review_day_again_is_not_a_second_review();
    city.the_next_review_lists_it_as_a_repeat_one_level_higher();
    city.once_disabled_it_is_no_longer_listed_and_the_history_closes_it();
}

/// P102's departed-holder finding of `dir`'s review: its severity and
/// its line of `findings.csv`.
fn departed_finding(dir: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(dir.join("findings.csv")).unwrap();
    text.lines()
        .find(|l| l.starts_with("ACCOUNT_HOLDER_DEPARTED,") && l.contains(",P102,"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].to_owned(), l.to_owned())
        })
}

/// A city reviewed again and again while P102's holder has left.
struct Repeat {
    t: Test,
}

impl Repeat {
    /// The HR list says E102 (P102's holder) left on 1 March.
    fn a_city_where_p102_s_holder_has_left() -> Repeat {
        let departed = |hr: Vec<String>| -> Vec<String> {
            hr.into_iter()
                .map(|r| {
                    r.replace(
                        "E102,陳大華,第一分局,約聘僱,在職,2020-01-01",
                        "E102,陳大華,第一分局,約聘僱,離職,2026-03-01",
                    )
                })
                .collect()
        };
        let t = Test::new()
            .file(
                "inbox/roster/accounts_20260702.csv",
                csv(ROSTER_HEADER, &roster_rows()),
            )
            .file(
                "inbox/hr/hr_20260702.csv",
                csv(HR_HEADER, &departed(hr_rows())),
            )
            .file(
                "inbox/query_logs/webir_2026H1.csv",
                csv(LOG_HEADER_NO_IP, &log_rows(&steady_queries())),
            );
        Repeat { t }
    }

    /// The account review as of `day`: its run folder.
    fn review(&self, day: &str) -> std::path::PathBuf {
        let out = self
            .t
            .run(&["run", "account-review", "--as-of", day, "--no-send"]);
        assert!(out.status <= 2, "{}{}", out.stdout, out.stderr);
        out.run_dir()
    }

    /// 2 July: the finding is listed, high, not a repeat.
    fn the_first_review_lists_it_high(&self) -> std::path::PathBuf {
        let first = self.review("2026-07-02");
        let (sev, line) = departed_finding(&first).expect("listed");
        assert_eq!(sev, "high", "{line}");
        assert!(!line.contains("重複列管"), "{line}");
        first
    }

    /// The officer answers that P102 was revoked (it was not).
    fn the_officer_answers_that_it_was_revoked(&self, first: &Path) {
        let t = &self.t;
        let answered = t.path("answered.xlsx");
        crate::harness::workbook::refill_sheet(
            &first.join("reports/KPB.xlsx"),
            &answered,
            "帳號清查",
            |rows| {
                let (done, width) = (
                    crate::harness::workbook::table_column(rows, "處理結果"),
                    rows[2].len(),
                );
                for r in crate::harness::workbook::table_rows(rows).iter_mut() {
                    r.resize(width, calamine::Data::Empty);
                    let d = if r[0] == "P102" {
                        "已廢止"
                    } else {
                        "保留"
                    };
                    r[done] = calamine::Data::String(d.into());
                }
            },
        );
        let config = t.loaded_config();
        let answered = crate::harness::as_returned(&config, &answered);
        let back = t.run(&["ingest-worksheet", answered.to_str().unwrap()]);
        assert_eq!(back.status, 0, "{}{}", back.stdout, back.stderr);
    }

    /// The same review day again is not a second review.
    fn the_same_review_day_again_is_not_a_second_review(&self) {
        let again = self.review("2026-07-02");
        assert_eq!(departed_finding(&again).unwrap().0, "high");
    }

    /// 3 July: still listed, it is a repeat, critical, saying what the
    /// officer answered; the summary and the 帳號清查 sheet say so.
    fn the_next_review_lists_it_as_a_repeat_one_level_higher(&self) {
        let second = self.review("2026-07-03");
        let (sev, line) = departed_finding(&second).expect("still listed");
        assert_eq!(sev, "critical", "{line}");
        assert!(
            line.contains("重複列管：2026-07-02 清查首次列出，本次為第 2 次"),
            "{line}"
        );
        assert!(
            line.contains("專責人員曾回報「已廢止」，惟本次資料仍列"),
            "{line}"
        );
        let texts = summary_texts(&second.join("reports/KPB.xlsx"));
        assert!(texts.iter().any(|l| l.contains("嚴重")), "{texts:?}");
        {
            use calamine::{Reader, Xlsx, open_workbook};
            let mut wb: Xlsx<_> = open_workbook(second.join("reports/KPB.xlsx")).unwrap();
            let sheet = wb.worksheet_range("帳號清查").unwrap();
            let row = sheet
                .rows()
                .find(|r| r.first().is_some_and(|c| *c == "P102"))
                .expect("P102 on 帳號清查")
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" ");
            assert!(row.contains("（重複列管）"), "{row}");
        }
    }

    /// The officer disabled it: the next review no longer lists it, and
    /// the history closes it.
    fn once_disabled_it_is_no_longer_listed_and_the_history_closes_it(&self) {
        let t = &self.t;
        std::fs::write(
            t.path("inbox/roster/accounts_20260710.csv"),
            csv(
                ROSTER_HEADER,
                &roster_rows()
                    .into_iter()
                    .map(|r| {
                        r.replace(
                            "約聘僱,啟用,2025-01-02,2026-06-01,",
                            "約聘僱,停用,2025-01-02,2026-06-01,2026-07-05",
                        )
                    })
                    .collect::<Vec<_>>(),
            ),
        )
        .unwrap();
        let third = self.review("2026-07-10");
        assert!(departed_finding(&third).is_none());
        let config = webir_audit::config::load(&t.path("webir-audit.toml")).unwrap();
        let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
        assert!(
            !store
                .open_findings()
                .unwrap()
                .iter()
                .any(|f| f.key == "ACCOUNT_HOLDER_DEPARTED|P102")
        );
    }
}

/// Regression (seen benchmarking a generated inbox of ten million queries
/// with no roster): every query became QUERY_BY_UNROSTERED_ACCOUNT, ten
/// million high findings and workbooks that took the server's memory. An
/// inbox without a roster or an HR list cannot say whose an account is:
/// the checks that need them say they did not run, and nothing is found
/// against accounts nobody listed.
#[test]
fn a_query_check_without_a_roster_or_hr_list_says_so_and_finds_nothing_on_them() {
    let t = Test::new().file(
        "inbox/query_logs/webir_2026H1.csv",
        csv(
            LOG_HEADER_NO_IP,
            &log_rows(&[
                ("P101", "2026-03-02 10:00:00", "B200000001"),
                ("P102", "2026-03-03 10:00:00", "B200000002"),
            ]),
        ),
    );
    let out = t.run(&["run", "query-check", "--period", "2026H1", "--no-send"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    for code in ["QUERY_BY_UNROSTERED_ACCOUNT", "QUERY_AFTER_DEPARTURE"] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with("NOT CHECKED")
                && l.contains(code)
                && l.contains("input missing")),
            "{code}: {}",
            out.stdout
        );
    }
    assert!(
        out.stdout
            .contains("no roster file was loaded from the inbox"),
        "{}",
        out.stdout
    );
    let found = codes(&out.run_dir());
    assert!(
        !found.iter().any(|c| c == "QUERY_BY_UNROSTERED_ACCOUNT"),
        "{found:?}"
    );
    let not_checked = run_json(&out.run_dir())["not_checked"].clone();
    assert!(
        not_checked
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["why"] == "input_missing" && n["input"] == "roster/"),
        "{not_checked}"
    );
}
