//! The workbooks as an officer opens them: read back with calamine (and
//! their XML where calamine does not look: protection, drop-downs,
//! formulas), checked for what each unit may see, for masking, and for
//! cells that could run as formulas.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use calamine::Data;

use crate::harness::workbook::{
    Sheets, answer, one_anomaly, read, refill, refill_sheet, refill_sheet_as,
    refill_sheet_with_formula, sign, table_rows, xml,
};
use crate::harness::{Test, repo};

fn members(path: &Path) -> Vec<String> {
    let zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    zip.file_names().map(|n| n.unwrap().into_owned()).collect()
}

fn text(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::Empty => String::new(),
        other => other.to_string(),
    }
}

/// A Taiwanese national ID or resident certificate number, unmasked.
fn has_national_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(10).enumerate().any(|(i, w)| {
        w[0].is_ascii_uppercase()
            && (w[1].is_ascii_digit() || w[1].is_ascii_uppercase())
            && w[2..].iter().all(u8::is_ascii_digit)
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && b.get(i + 10).is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

/// The header row of a table sheet (row 3) and its data rows (to the
/// first blank row: a sheet filled in has its sign-off below).
fn table<'a>(sheets: &'a Sheets, name: &str) -> (Vec<String>, &'a [Vec<Data>]) {
    let rows = &sheets[name];
    let header = rows[2].iter().map(text).collect();
    let n = rows[3..]
        .iter()
        .take_while(|r| r.iter().any(|c| *c != Data::Empty))
        .count();
    (header, &rows[3..3 + n])
}

fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

const SEED: &str = "12345678901234567890";

struct City {
    t: Test,
    config: webir_audit::config::Config,
}

impl City {
    fn new() -> City {
        City::dated(crate::harness::FILE_TIME)
    }

    /// The sample city with every file's modification time `at`.
    fn dated(at: &str) -> City {
        let t = Test::sample_city_dated(at);
        let config = t.loaded_config();
        City { t, config }
    }

    fn run(&self, args: &[&str]) -> PathBuf {
        self.t.run(args).finished().run_dir()
    }

    /// A yearly run on the sample city, whose query logs end on 30 June:
    /// idle and never-used accounts cannot be judged at the year's end, so
    /// the run says they were not checked and exits 2.
    fn run_logs_short(&self, args: &[&str]) -> PathBuf {
        let out = self.t.run(args);
        assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout
                .contains("NOT CHECKED ACCOUNT_IDLE: inputs do not cover it"),
            "{}",
            out.stdout
        );
        out.run_dir()
    }

    /// The year's internal audit (2026, in January), which withholds
    /// something on the sample city (status 2): its run folder.
    fn internal_audit_withheld(&self) -> PathBuf {
        let out = self.t.run(&crate::harness::INTERNAL_AUDIT_2026);
        assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
        out.run_dir()
    }

    /// `ingest-worksheet FILE` on the city: a returned workbook read back.
    fn ingest(&self, file: &Path) -> crate::harness::Output {
        self.ingest_plain(&crate::harness::as_returned(&self.config, file))
    }

    /// No return of run `dir` was recorded or kept in the archive.
    fn assert_nothing_taken(&self, dir: &Path) {
        let store = webir_audit::store::Store::open(&self.config.paths.state).unwrap();
        let run = dir.file_name().unwrap().to_str().unwrap();
        assert!(
            store.worksheet_returns(run).unwrap().is_empty(),
            "nothing recorded"
        );
        let returns = dir.parent().unwrap().parent().unwrap().join("returns");
        assert!(!returns.exists(), "nothing kept");
    }

    /// `ingest-worksheet FILE`, the file as it is (not sealed as returned).
    fn ingest_plain(&self, file: &Path) -> crate::harness::Output {
        self.t.run(&["ingest-worksheet", file.to_str().unwrap()])
    }

    fn sample_audit(&self) -> PathBuf {
        self.run(&["run", "sample-audit", "--period", "2026H1", "--seed", SEED])
    }

    /// Agency ids and names of `unit`'s subtree.
    fn subtree(&self, unit: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let a: Vec<_> = self
            .config
            .agencies
            .iter()
            .filter(|a| a.unit == unit)
            .collect();
        (
            a.iter().map(|a| a.id.clone()).collect(),
            a.iter().map(|a| a.name.clone()).collect(),
        )
    }
}

#[test]
fn sample_audit_workbooks_hold_only_their_unit_and_nothing_unmasked() {
    let city = City::new();
    let dir = city.sample_audit();
    let sample = std::fs::read_to_string(dir.join("sample.csv")).unwrap();
    let units: Vec<String> = city.config.agencies.units().map(|u| u.id.clone()).collect();
    assert_eq!(units.len(), 10);
    for unit in &units {
        let wb = UnitWorkbook::opens_on_the_sample_audit_s_sheets(&city, &dir, unit);
        wb.the_worksheet_holds_the_unit_s_sampled_records_and_nobody_else_s(&sample);
        wb.its_anomalies_name_the_unit_s_own_agencies();
        wb.no_national_id_is_left_unmasked();
        wb.the_auditor_s_columns_are_drop_downs_on_a_protected_sheet();
        wb.charts_show_only_what_the_unit_found();
    }
    the_city_wide_workbook_lists_every_unit_and_the_seed_and_nothing_unmasked(&dir, &units);
}

/// One unit's sample audit workbook, as its officer opens it.
struct UnitWorkbook<'a> {
    dir: &'a Path,
    unit: &'a str,
    path: PathBuf,
    sheets: Sheets,
    /// The names of the unit's agencies.
    agency_names: BTreeSet<String>,
}

impl<'a> UnitWorkbook<'a> {
    /// The unit's workbook holds the sample audit's sheets, in order.
    fn opens_on_the_sample_audit_s_sheets(
        city: &City,
        dir: &'a Path,
        unit: &'a str,
    ) -> UnitWorkbook<'a> {
        let path = dir.join(format!("reports/{unit}.xlsx"));
        let (names, sheets) = read(&path);
        // 異常查詢明細 where a pattern was rolled up by account.
        let names: Vec<&String> = names.iter().filter(|n| *n != "異常查詢明細").collect();
        assert_eq!(
            names,
            [
                "摘要",
                "抽查工作底稿",
                "異常查詢",
                "資料品質",
                "清冊外帳號",
                "抽樣資訊",
                "圖表資料"
            ],
            "{unit}"
        );
        let (_, agency_names) = city.subtree(unit);
        UnitWorkbook {
            dir,
            unit,
            path,
            sheets,
            agency_names,
        }
    }

    /// The worksheet: this unit's sampled records, all of them, nobody else's.
    fn the_worksheet_holds_the_unit_s_sampled_records_and_nobody_else_s(&self, sample: &str) {
        let (h, rows) = table(&self.sheets, "抽查工作底稿");
        the_worksheet_s_columns_are_the_record_s_then_the_auditor_s(&h);
        self.the_officer_and_the_second_review_hold_every_sampled_record(sample, rows.len());
        self.each_row_names_an_account_of_the_unit_its_time_and_its_form(&h, rows);
    }

    /// The officer's worksheet and the second review of the officer's
    /// own account hold every sampled record between them.
    fn the_officer_and_the_second_review_hold_every_sampled_record(
        &self,
        sample: &str,
        rows: usize,
    ) {
        let unit = self.unit;
        let expected = sample
            .lines()
            .filter(|l| l.starts_with(&format!("{unit},")))
            .count();
        let review = self.dir.join(format!("reports/{unit}.second-review.xlsx"));
        let reviewed = if review.exists() {
            let (_, sheets) = read(&review);
            table(&sheets, "抽查工作底稿").1.len()
        } else {
            0
        };
        assert_eq!(rows + reviewed, expected, "{unit}");
    }

    /// Each row names an account of the unit's, its time to the second,
    /// and a form or 無對應紀錄表.
    fn each_row_names_an_account_of_the_unit_its_time_and_its_form(
        &self,
        h: &[String],
        rows: &[Vec<Data>],
    ) {
        let unit = self.unit;
        for r in rows {
            // The account and its holder, and below them its agency when
            // a subordinate one's: one of this unit's.
            let who = text(&r[column(h, "帳號")]);
            let lines: Vec<&str> = who.lines().collect();
            assert_eq!(lines[0].split(' ').count(), 2, "{unit}: {who:?}");
            if let Some(agency) = lines.get(1) {
                // Named within the unit: the unit's name left off.
                assert!(
                    self.agency_names.iter().any(|a| a.ends_with(agency)),
                    "{unit}: {who:?}"
                );
            }
            // The time to the second, as text that sorts as time does.
            let at = text(&r[column(h, "查詢時間")]);
            assert!(
                chrono::NaiveDateTime::parse_from_str(&at, "%Y/%m/%d %H:%M:%S").is_ok(),
                "{at:?}"
            );
            let form = text(&r[column(h, "紀錄表")]);
            assert!(!form.is_empty(), "a form or 無對應紀錄表");
        }
    }

    /// Each anomaly names its agency within the unit, as the worksheet does.
    fn its_anomalies_name_the_unit_s_own_agencies(&self) {
        let unit = self.unit;
        let (h, rows) = table(&self.sheets, "異常查詢");
        for r in rows {
            // Named within the unit, as the worksheet names it.
            let agency = text(&r[column(&h, "機關")]);
            assert!(
                self.agency_names.iter().any(|a| a.ends_with(&agency)),
                "{unit}: {r:?}"
            );
        }
    }

    /// Masking: no national ID anywhere a person reads.
    fn no_national_id_is_left_unmasked(&self) {
        let unit = self.unit;
        for (name, rows) in &self.sheets {
            for r in rows {
                for c in r {
                    assert!(!has_national_id(&text(c)), "{unit}/{name}: {c:?}");
                }
            }
        }
    }

    /// The auditor's columns: drop-downs on a protected sheet, cells unlocked.
    fn the_auditor_s_columns_are_drop_downs_on_a_protected_sheet(&self) {
        let (unit, path) = (self.unit, &self.path);
        let sheet = xml(path, "xl/worksheets/sheet2.xml");
        assert!(sheet.contains("<sheetProtection"), "{unit}");
        for list in [r#""是,否""#, r#""是,否,不確定""#, r#""無,有""#] {
            assert!(sheet.contains(list), "{unit}: {list}");
        }
        assert!(
            sheet.contains("type=\"date\""),
            "the sign-off's day takes dates only"
        );
        assert!(xml(path, "xl/styles.xml").contains("locked=\"0\""));
        assert!(!sheet.contains("<f>"), "no formula anywhere");
        assert!(sheet.contains("<pageSetup") && sheet.contains("orientation=\"landscape\""));
        assert!(sheet.contains("<autoFilter") && sheet.contains("state=\"frozen\""));
    }

    /// Charts of the unit's findings and queries; none of nothing.
    fn charts_show_only_what_the_unit_found(&self) {
        let (dir, unit, path) = (self.dir, self.unit, &self.path);
        let files = members(path);
        let found = std::fs::read_to_string(dir.join("findings.csv"))
            .unwrap()
            .lines()
            .any(|l| l.split(',').nth(2) == Some(unit));
        assert_eq!(
            files.iter().any(|f| f.starts_with("xl/charts/chart")),
            found,
            "{unit}: charts"
        );
        let props = xml(path, "docProps/custom.xml");
        assert!(props.contains(&dir.file_name().unwrap().to_string_lossy().to_string()));
    }
}

/// The sample audit worksheet's columns: the record's, then the auditor's.
fn the_worksheet_s_columns_are_the_record_s_then_the_auditor_s(h: &[String]) {
    assert_eq!(
        h[..10],
        [
            "序號",
            "帳號",
            "查詢時間",
            "查詢項目",
            "被查詢人",
            "查詢目的",
            "紀錄表",
            "核准",
            "查詢事由",
            "系統預檢"
        ]
    );
    assert_eq!(
        h[10..],
        [
            "紀錄表已填具",
            "主管事前核可",
            "事由與查詢相符",
            "異常",
            "說明"
        ]
    );
}

/// The Health Bureau's city-wide workbook: every unit, what this run
/// asked of each (回收狀況), and the rejects; the seed, and no ID unmasked.
fn the_city_wide_workbook_lists_every_unit_and_the_seed_and_nothing_unmasked(
    dir: &Path,
    units: &[String],
) {
    let path = dir.join("reports/city-wide.xlsx");
    let (names, sheets) = read(&path);
    assert_eq!(
        names,
        [
            "摘要",
            "各單位",
            "回收狀況",
            "帳號彙整",
            "異常查詢",
            "異常查詢明細",
            "資料品質",
            "清冊外帳號",
            "剔除資料列",
            "抽樣資訊",
            "圖表資料"
        ]
    );
    let summary: Vec<String> = sheets["各單位"].iter().map(|r| text(&r[0])).collect();
    for unit in units {
        assert!(
            summary.iter().any(|s| s.ends_with(&format!("（{unit}）"))),
            "{unit}"
        );
    }
    let seed_row = sheets["摘要"]
        .iter()
        .find(|r| text(&r[0]) == "種子")
        .unwrap();
    assert!(text(&seed_row[1]).starts_with(SEED));
    for rows in sheets.values() {
        for r in rows {
            for c in r {
                assert!(!has_national_id(&text(c)), "city-wide: {c:?}");
            }
        }
    }
}

/// A query log of twenty of the police's rows (header first), as an
/// export named for one of its cases would hold.
fn police_case(city: &City) -> String {
    let (police, _) = city.subtree("KPB");
    let q1 = std::fs::read_to_string(
        city.t
            .dir
            .path()
            .join("city/inbox/query_logs/webir_querylog_2026Q1.csv"),
    )
    .unwrap();
    let mut lines = q1.lines();
    let mut case = vec![lines.next().unwrap().to_owned()];
    case.extend(
        lines
            .filter(|l| police.contains(l.split(',').nth(6).unwrap()))
            .take(20)
            .map(str::to_owned),
    );
    assert_eq!(case.len(), 21, "the police's rows");
    case.join("\n") + "\n"
}

/// Issue 30: an export named for a police case (`PD_機密_王大明案.csv`)
/// was listed, with its counts and hash, on 資料品質 in all ten units'
/// workbooks. A unit's workbook names only the files holding its own
/// agencies' rows and counts the others; the city-wide one names all.
#[test]
fn a_unit_sees_only_its_own_input_files() {
    let city = City::new();
    let logs = city.t.dir.path().join("city/inbox/query_logs");
    let case = police_case(&city);
    std::fs::write(logs.join("PD_機密_王大明案.csv"), &case).unwrap();
    let dir = city.sample_audit();
    let quality = |file: &str| -> String {
        let (_, sheets) = read(&dir.join("reports").join(file));
        sheets["資料品質"]
            .iter()
            .flatten()
            .map(text)
            .collect::<Vec<_>>()
            .join("|")
    };
    let ksa = quality("KSA.xlsx");
    assert!(!ksa.contains("王大明"), "{ksa}");
    assert!(ksa.contains("另 1 個檔案未列出：不含本機關之資料"), "{ksa}");
    assert!(
        ksa.contains("webir_querylog_2026Q1.csv"),
        "its own files: {ksa}"
    );
    assert!(quality("KPB.xlsx").contains("PD_機密_王大明案.csv"));
    assert!(quality("city-wide.xlsx").contains("PD_機密_王大明案.csv"));
}

/// Issue 30, what the test above left open: a file no unit can be placed
/// in (one that failed to load, named for a case) is named in no unit's
/// workbook — not on 資料品質, not in the warnings of what was not
/// checked — only in the city-wide one; a copy of a unit's file is listed
/// for the unit, as the file is.
#[test]
fn a_failed_file_named_for_a_case_is_named_to_no_unit() {
    let city = City::new();
    let logs = city.t.dir.path().join("city/inbox/query_logs");
    let case = police_case(&city);
    std::fs::write(logs.join("PD_機密_王大明案.csv"), &case).unwrap();
    std::fs::write(logs.join("PD_機密_王大明案 複本.csv"), &case).unwrap();
    std::fs::write(logs.join("PD_機密_李小華案.csv"), "沒有標題列\n1,2\n").unwrap();
    let out = city.t.run(&["run", "query-check", "--period", "2026H1"]);
    assert_eq!(
        out.status, 2,
        "a failed input withholds checks: {}",
        out.stderr
    );
    let dir = out.run_dir();
    let all_text = |file: &str| -> String {
        let (_, sheets) = read(&dir.join("reports").join(file));
        sheets
            .values()
            .flatten()
            .flatten()
            .map(text)
            .collect::<Vec<_>>()
            .join("|")
    };
    let ksa = all_text("KSA.xlsx");
    assert!(
        ksa.contains("未檢核"),
        "the failed file withholds checks: {ksa}"
    );
    assert!(!ksa.contains("李小華") && !ksa.contains("王大明"), "{ksa}");
    assert!(
        ksa.contains("未列出之輸入檔案（檔名僅列於衛生局彙整表）"),
        "{ksa}"
    );
    let kpb = all_text("KPB.xlsx");
    assert!(
        kpb.contains("PD_機密_王大明案 複本.csv"),
        "its file's copy: {kpb}"
    );
    assert!(!kpb.contains("李小華"), "{kpb}");
    assert!(all_text("city-wide.xlsx").contains("PD_機密_李小華案.csv"));
    // Nor in the unit's mail.
    let mails = crate::harness::mail::parse_all(&city.t.dir.path().join("var/state/outbox-files"));
    for m in mails
        .iter()
        .filter(|m| m.to.starts_with("officer.") || m.to.starts_with("ethics."))
    {
        assert!(!m.text.contains("李小華"), "{}: {}", m.to, m.text);
    }
}

#[test]
fn account_review_workbook_lists_the_whole_roster_of_the_unit() {
    let review = AccountReview::runs_on_a_city_with_a_disabled_account_in_use();
    for unit in review.city.config.agencies.units() {
        let (path, sheets) = review.the_unit_s_workbook_holds_the_review_s_sheets(&unit.id);
        review.it_lists_every_account_of_the_unit_and_no_other(&unit.id, &sheets);
        review.each_account_s_action_is_the_regulation_s_for_what_was_found(&sheets);
        the_officer_s_column_is_a_drop_down_on_a_protected_sheet(&path);
    }
    review.officer_accounts_are_left_to_the_external_audit();
}

/// The account review of 2 July on the sample city: its run folder and
/// findings, the roster's accounts and agencies, and the disabled accounts
/// the log shows in use after their disabling.
struct AccountReview {
    city: City,
    dir: PathBuf,
    findings: String,
    accounts: polars::prelude::StringChunked,
    agencies: polars::prelude::StringChunked,
    used_after: BTreeSet<String>,
}

impl AccountReview {
    /// The review runs as of 2 July, on a city whose log shows a disabled
    /// account in use.
    fn runs_on_a_city_with_a_disabled_account_in_use() -> AccountReview {
        let city = City::new();
        let dir = city.run(&["run", "account-review", "--as-of", "2026-07-02"]);
        let findings = std::fs::read_to_string(dir.join("findings.csv")).unwrap();
        let ingested = webir_audit::ingest::ingest(&city.config, None).unwrap();
        let roster = ingested.table(webir_audit::model::Table::Roster);
        let accounts = roster.column("account_id").unwrap().str().unwrap().clone();
        let agencies = roster.column("agency_id").unwrap().str().unwrap().clone();
        let used_after = disabled_accounts_in_use_after_their_disabling(&ingested, &accounts);
        assert!(
            !used_after.is_empty(),
            "the city has a disabled account in use"
        );
        AccountReview {
            city,
            dir,
            findings,
            accounts,
            agencies,
            used_after,
        }
    }

    /// The unit's workbook holds the account review's sheets, in order.
    fn the_unit_s_workbook_holds_the_review_s_sheets(&self, unit: &str) -> (PathBuf, Sheets) {
        let path = self.dir.join(format!("reports/{}.xlsx", unit));
        let (names, sheets) = read(&path);
        assert_eq!(
            names,
            ["摘要", "帳號清查", "資料品質", "清冊外帳號", "圖表資料"]
        );
        (path, sheets)
    }

    /// The review lists every account of the unit's roster and every one
    /// found outside it, and no other.
    fn it_lists_every_account_of_the_unit_and_no_other(&self, unit: &str, sheets: &Sheets) {
        let (ids, _) = self.city.subtree(unit);
        let mut want: BTreeSet<String> = self
            .accounts
            .iter()
            .zip(self.agencies.iter())
            .filter(|(_, g)| g.is_some_and(|g| ids.contains(g)))
            .filter_map(|(a, _)| a.map(str::to_owned))
            .collect();
        for l in self
            .findings
            .lines()
            .filter(|l| l.starts_with("ACCOUNT_NOT_IN_ROSTER,"))
        {
            let f: Vec<&str> = l.split(',').collect();
            if ids.contains(f[3]) {
                want.insert(f[4].to_owned());
            }
        }
        let (_, rows) = table(sheets, "帳號清查");
        let got: BTreeSet<String> = rows.iter().map(|r| text(&r[0])).collect();
        assert_eq!(got, want, "{}", unit);
    }

    /// Each account's suggested action is one the regulation gives, and
    /// the one for what was found on it.
    fn each_account_s_action_is_the_regulation_s_for_what_was_found(&self, sheets: &Sheets) {
        let (h, rows) = table(sheets, "帳號清查");
        let action = column(&h, "建議處理");
        let found = column(&h, "發現");
        let role = column(&h, "角色");
        let status = column(&h, "帳號狀態");
        for r in rows {
            let a = text(&r[action]);
            // Points 5(1)3 and 6(2): the unit's officer revokes (廢止);
            // point 4(5): managers' accounts are the Health Bureau's.
            assert!(
                [
                    "廢止",
                    "保留",
                    "查明帳號來源後廢止",
                    "查明持有人；已無使用需求者廢止",
                    "已停用，無須處理",
                    "已停用；請指定新任專責人員（第二點）",
                    "查明停用後之查詢，會同政風單位調查（第六點第三款）",
                    "通知持有人變更密碼",
                    "由衛生局清查（第四點第五款）",
                    // Points 2 and 5(1)2: the applications register.
                    "補具核定之申請表（第二點），無從補具者廢止",
                    "查明核定前開通原因，申請表存卷",
                    "現持有人重新申請（第二點），否則廢止",
                ]
                .contains(&a.as_str()),
                "{a}"
            );
            let manager = ["專責人員", "總管理者"].contains(&text(&r[role]).as_str());
            if self.used_after.contains(&text(&r[0])) {
                assert_eq!(
                    a, "查明停用後之查詢，會同政風單位調查（第六點第三款）",
                    "{r:?}"
                );
                assert!(text(&r[found]).contains("停用後仍有查詢"), "{r:?}");
            } else if text(&r[status]) == "停用" {
                assert!(a.starts_with("已停用"), "{r:?}");
            } else if manager {
                assert_eq!(a, "由衛生局清查（第四點第五款）", "{r:?}");
            } else if text(&r[found]).contains("離職") {
                assert_eq!(a, "廢止", "{r:?}");
            } else if text(&r[found]) == "無" && text(&r[status]) == "啟用" {
                assert_eq!(a, "保留", "{r:?}");
            }
            assert!(
                !a.contains("健保署"),
                "the NHIA does not revoke a unit's accounts: {a}"
            );
        }
    }

    /// Point 4(5): the officer accounts are the chief administrator's to
    /// review, in the external audit's workbook of its own: not here.
    fn officer_accounts_are_left_to_the_external_audit(&self) {
        let (names, _) = read(&self.dir.join("reports/city-wide.xlsx"));
        assert_eq!(
            names,
            [
                "摘要",
                "各單位",
                "回收狀況",
                "帳號彙整",
                "資料品質",
                "清冊外帳號",
                "剔除資料列",
                "圖表資料"
            ]
        );
    }
}

/// Disabled accounts the log shows in use after their disabling: the
/// review must not call them done with (the same queries are a
/// critical anomaly of the sample audit).
fn disabled_accounts_in_use_after_their_disabling(
    ingested: &webir_audit::ingest::Ingested,
    accounts: &polars::prelude::StringChunked,
) -> BTreeSet<String> {
    use polars::prelude::*;
    let roster = ingested.table(webir_audit::model::Table::Roster);
    let disabled: Vec<(String, chrono::NaiveDate)> = accounts
        .iter()
        .zip(
            roster
                .column("disabled_on")
                .unwrap()
                .date()
                .unwrap()
                .as_date_iter(),
        )
        .filter_map(|(a, d)| Some((a?.to_owned(), d?)))
        .collect();
    let log = ingested.table(webir_audit::model::Table::QueryLog);
    let ids = log
        .column("account_id")
        .unwrap()
        .cast(&DataType::String)
        .unwrap();
    let at = log
        .column("queried_at")
        .unwrap()
        .datetime()
        .unwrap()
        .clone();
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 7, 2).unwrap();
    ids.str()
        .unwrap()
        .iter()
        .zip(at.as_datetime_iter())
        .filter_map(|(a, t)| {
            let (a, day) = (a?, t?.date());
            disabled
                .iter()
                .any(|(d, on)| d == a && day > *on && day <= as_of)
                .then(|| a.to_owned())
        })
        .collect()
}

/// The officer's column: a drop-down on a protected sheet.
fn the_officer_s_column_is_a_drop_down_on_a_protected_sheet(path: &Path) {
    let sheet = xml(path, "xl/worksheets/sheet2.xml");
    assert!(sheet.contains(r#""已廢止,已調整權限,保留,其他""#));
    assert!(sheet.contains("<sheetProtection"));
}

/// Input that looks like a formula stays text: written as a string with
/// Excel's quote prefix, never as a formula.
#[test]
fn formula_lookalikes_from_input_are_never_formulas() {
    let evil = "=HYPERLINK(\"http://x.example\",\"點我\")";
    let t = Test::new()
        .file(
            "inbox/query_logs/log.csv",
            format!(
                "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP\n\
             \"{}\",2026-03-02 10:00:00,@SUM(1),A123456789,public_health,成功,KHB,+886\n",
                evil.replace('"', "\"\"")
            ),
        )
        // An empty register: the query has no form, so it is on 異常查詢.
        .file(
            "inbox/forms/forms_20260702.csv",
            "表單編號,查詢帳號,被查詢人身分證號,查詢目的,查詢事由,申請時間,核可主管,核可時間\n",
        );
    let out = t.run(&["run", "query-check", "--period", "2026H1"]);
    out.assert_ran();
    let dir = out.run_dir();
    let path = dir.join("reports/KHB.xlsx");
    let (_, sheets) = read(&path);
    let (h, rows) = table(&sheets, "異常查詢");
    assert!(!rows.is_empty());
    let account = column(&h, "帳號");
    assert!(
        rows.iter()
            .all(|r| r[account] == Data::String(evil.to_owned()))
    );
    let mut any_formula = false;
    for m in members(&path)
        .iter()
        .filter(|m| m.starts_with("xl/worksheets/"))
    {
        any_formula |= xml(&path, m).contains("<f>");
    }
    assert!(!any_formula, "no cell is a formula");
    assert!(xml(&path, "xl/styles.xml").contains("quotePrefix=\"1\""));
    assert!(!has_national_id(&format!("{sheets:?}")));
}

/// A sealed run folder that changes is caught, file by file.
#[test]
fn archive_verify_catches_any_change_to_a_sealed_run() {
    let city = City::new();
    let dir = city.run(&["run", "query-check", "--period", "2026H1"]);
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    for f in [
        "findings.csv",
        "rejects.csv",
        "inputs.json",
        "run.json",
        "reports/KHB.xlsx",
        "reports/city-wide.xlsx",
    ] {
        assert!(
            sums.lines().any(|l| l.ends_with(&format!("  {f}"))),
            "{f} sealed"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("findings.csv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400, "sealed files are read-only");
    }
    let verify = || city.t.run(&["archive", "verify"]);
    let ok = verify();
    assert_eq!(ok.status, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout
            .contains("1 run folders, all sealed and unchanged"),
        "{}",
        ok.stdout
    );

    let findings = dir.join("findings.csv");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&findings, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut text = std::fs::read_to_string(&findings).unwrap();
    text.push_str("forged,row\n");
    std::fs::write(&findings, text).unwrap();
    std::fs::write(dir.join("extra.txt"), "x").unwrap();
    let bad = verify();
    assert_eq!(bad.status, 1);
    assert!(
        bad.stdout.contains("findings.csv changed"),
        "{}",
        bad.stdout
    );
    assert!(bad.stdout.contains("extra.txt was added"), "{}", bad.stdout);
}

#[test]
fn a_returned_worksheet_is_matched_checked_and_its_anomalies_listed() {
    let kpb = Returned::kpb_s_worksheet_comes_back_with_one_anomaly_listed();
    kpb.the_same_file_again_is_refused_and_the_ethics_unit_hears_once();
    kpb.the_next_city_wide_workbook_shows_who_sent_theirs_back();
    kpb.altered_workbooks_are_refused_each_with_its_reason();
    kpb.a_workbook_of_no_known_run_is_refused();
}

/// The sample audit's KPB workbook as sent, and as it came back filled in.
struct Returned {
    city: City,
    original: PathBuf,
    done: PathBuf,
}

impl Returned {
    /// KPB's worksheet comes back with one anomaly: matched to its run,
    /// the anomaly listed masked, and the ethics unit sent it.
    fn kpb_s_worksheet_comes_back_with_one_anomaly_listed() -> Returned {
        let city = City::new();
        let dir = city.sample_audit();
        let original = dir.join("reports/KPB.xlsx");

        let done = city.t.dir.path().join("KPB-done.xlsx");
        refill(&original, &done, |rows| one_anomaly(rows, "王稽核"));
        let out = city.ingest(&done);
        assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("worksheet of KPB"), "{}", out.stdout);
        assert!(
            out.stdout.contains("1 confirmed anomalies"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("#1") && out.stdout.contains("未經主管核可"),
            "{}",
            out.stdout
        );
        assert!(!has_national_id(&out.stdout));

        // Point 6(3): the ethics unit hears of the confirmed anomaly, once.
        assert!(
            out.stdout.contains("the ethics unit is sent"),
            "{}",
            out.stdout
        );
        Returned {
            city,
            original,
            done,
        }
    }

    /// The same file again is refused as such, and the ethics unit's one
    /// notice is not sent twice.
    fn the_same_file_again_is_refused_and_the_ethics_unit_hears_once(&self) {
        let city = &self.city;
        let ethics_mail = || -> Vec<String> {
            std::fs::read_dir(city.config.paths.state.join("outbox-files"))
                .unwrap()
                .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .filter(|m| m.contains("To: ethics.kpb@example.gov.tw"))
                .collect()
        };
        let before = ethics_mail().len();
        let again = city.ingest(&self.done);
        assert_eq!(again.status, 2, "{}{}", again.stdout, again.stderr);
        assert!(
            again.stderr.contains("the same file came back already"),
            "recognised as the same file: {}",
            again.stderr
        );
        assert!(
            !again.stdout.contains("the ethics unit is sent"),
            "the same file notifies once"
        );
        assert_eq!(ethics_mail().len(), before);
        let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
        let notices: Vec<_> = store
            .outbox()
            .unwrap()
            .into_iter()
            .filter(|r| r.report.starts_with("anomalies:KPB:"))
            .collect();
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].recipient, "ethics.kpb@example.gov.tw");
        assert_eq!(notices[0].state.as_str(), "sent");
        assert!(
            notices[0].subject.contains("確認異常 1 筆"),
            "{}",
            notices[0].subject
        );
    }

    /// The Health Bureau's next workbook shows who sent theirs back.
    fn the_next_city_wide_workbook_shows_who_sent_theirs_back(&self) {
        let next = self.city.run(&["run", "query-check", "--period", "2026H1"]);
        let (_, sheets) = read(&next.join("reports/city-wide.xlsx"));
        let summary = &sheets["各單位"];
        let header: Vec<String> = summary
            .iter()
            .find(|r| text(&r[0]) == "單位")
            .unwrap()
            .iter()
            .map(text)
            .collect();
        let (returned, accounts) = (column(&header, "工作底稿"), column(&header, "帳號數"));
        let row = |unit: &str| {
            summary
                .iter()
                .find(|r| text(&r[0]).ends_with(&format!("（{unit}）")))
                .unwrap()
        };
        let status = |unit: &str| text(&row(unit)[returned]);
        assert!(matches!(row("KPB")[accounts], Data::Float(n) if n > 0.0));
        assert_eq!(
            (status("KPB"), status("KHB")),
            ("已回傳".to_owned(), "未回傳".to_owned())
        );
    }

    /// Altered workbooks are refused, each with its reason.
    fn altered_workbooks_are_refused_each_with_its_reason(&self) {
        type Edit = Box<dyn Fn(&mut Vec<Vec<Data>>)>;
        let cases: [(&str, Edit); 5] = [
            (
                "rows were added or removed",
                Box::new(|rows| {
                    rows.remove(5);
                }),
            ),
            (
                "must not be changed",
                Box::new(|rows| {
                    rows[6][2] = Data::String("W99999".into());
                }),
            ),
            (
                "is not one of",
                Box::new(|rows| {
                    answer(&mut rows[4], ["maybe", "是", "是", "無", ""]);
                }),
            ),
            (
                // A row slipped in below the sign-off is not a quiet extra.
                "（表格下方）",
                Box::new(|rows| {
                    let mut extra = vec![Data::Empty; 3];
                    extra[1] = Data::String("W99999".into());
                    rows.push(Vec::new());
                    rows.push(extra);
                }),
            ),
            (
                // Nor is a sign-off label rewritten.
                "（表格下方）",
                Box::new(|rows| {
                    let at = rows
                        .iter()
                        .position(|r| r.first().is_some_and(|c| *c == "日期"))
                        .unwrap();
                    rows[at][0] = Data::String("審核日期".into());
                }),
            ),
        ];
        for (i, (why, edit)) in cases.iter().enumerate() {
            let bad = self.city.t.dir.path().join(format!("bad-{i}.xlsx"));
            refill(&self.original, &bad, edit);
            let out = self.city.ingest(&bad);
            assert_eq!(out.status, 2, "{why}: {}{}", out.stdout, out.stderr);
            assert!(out.stderr.contains(why), "{why}: {}", out.stderr);
        }
    }

    /// A workbook of no known run is refused.
    fn a_workbook_of_no_known_run_is_refused(&self) {
        let stranger = self.city.t.dir.path().join("stranger.xlsx");
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name("摘要").unwrap();
        ws.write_string(2, 0, "執行編號").unwrap();
        ws.write_string(2, 1, "20990101T000000").unwrap();
        ws.write_string(3, 0, "機關").unwrap();
        ws.write_string(3, 1, "警察局（KPB）").unwrap();
        wb.add_worksheet().set_name("抽查工作底稿").unwrap();
        wb.save(&stranger).unwrap();
        let out = self.city.ingest(&stranger);
        assert_eq!(out.status, 2);
        assert!(out.stderr.contains("unknown workbook"), "{}", out.stderr);
    }
}

/// Point 5(4): records are kept three years from the end of their period,
/// then go — except a sample audit whose worksheets have not all come back.
#[test]
fn retention_deletes_expired_runs_but_keeps_unreturned_worksheets() {
    let city = City::new();
    let qc = city.run(&["run", "query-check", "--period", "2026H1"]);
    let sa = city.sample_audit();
    let ar = city.run(&["run", "account-review", "--as-of", "2026-07-02"]);
    let retention = |now: &str| {
        let out = city.t.run_at(&["run", "retention"], now);
        assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
        out.stdout
    };

    let out = retention("2029-06-30T23:00:00+08:00");
    assert!(out.contains("0 deleted, 3 kept within 3 years"), "{out}");
    assert!(qc.exists() && sa.exists() && ar.exists());

    let out = retention("2029-07-04T00:00:00+08:00");
    assert!(!qc.exists() && !ar.exists(), "{out}");
    assert!(sa.exists(), "{out}");
    assert!(out.contains("worksheets not returned by"), "{out}");
    assert!(out.contains("2 deleted"), "{out}");

    // Every unit sends its worksheet back; then the sample audit may go.
    for e in std::fs::read_dir(sa.join("reports")).unwrap() {
        let path = e.unwrap().path();
        if path.file_name().unwrap() == "city-wide.xlsx" {
            continue;
        }
        let done = city.t.dir.path().join(path.file_name().unwrap());
        refill(&path, &done, |rows| {
            for r in table_rows(rows).iter_mut() {
                answer(r, ["是", "是", "是", "無", ""]);
            }
            sign(rows, "稽核員", "2026/07/20");
        });
        let out = city.ingest(&done);
        assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    }
    let out = retention("2029-07-04T00:00:00+08:00");
    assert!(!sa.exists(), "{out}");
    // The run and the returns to it (one per workbook it sent).
    let sent = std::fs::read_dir(sa.parent().unwrap()).map_or(0, |d| d.count());
    assert_eq!(sent, 0, "{out}");
    let returned = out.lines().filter(|l| l.contains("/returns/")).count();
    assert!(
        out.contains(&format!("{} deleted, 0 kept", returned + 1)),
        "{out}"
    );

    // Each deletion is on record, and the record cannot be rewritten.
    let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
    let deleted: Vec<String> = store
        .deletions()
        .unwrap()
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    // Three runs, and the worksheets returned to the sample audit, kept
    // as long as their period's runs.
    let (returns, runs): (Vec<&String>, Vec<&String>) =
        deleted.iter().partition(|r| r.contains("/returns/"));
    assert_eq!(runs.len(), 3, "{deleted:?}");
    assert!(!returns.is_empty() && returns.iter().all(|r| r.starts_with("2026H1/returns/")));
    assert!(
        deleted
            .iter()
            .any(|r| r.starts_with("2026H1/sample-audit/"))
    );
    assert!(store.execute_raw("DELETE FROM retention_log").is_err());
}

/// The layout of a workbook, as text: sheet names and every cell.
fn dump(path: &Path) -> String {
    let (names, sheets) = read(path);
    let mut out = String::new();
    for n in names {
        out.push_str(&format!("## {n}\n"));
        for row in &sheets[&n] {
            let cells: Vec<String> = row
                .iter()
                .map(|d| match d {
                    Data::DateTime(t) => t
                        .as_datetime()
                        .map_or_else(|| t.to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
                    other => text(other),
                })
                .collect();
            let mut line = cells.join(" | ");
            // The chain head covers earlier runs' seals, whose manifests
            // name this machine's temporary folders: not for a golden.
            if line.starts_with("證據鏈 | 第 ") {
                line = "證據鏈 | <head>".to_owned();
            }
            out.push_str(line.trim_end_matches([' ', '|']));
            out.push('\n');
        }
    }
    out
}

/// The evidence chain's heads in receipts' subjects (`證據鏈收據：第 N 筆
/// <16 hex>`) as `<HEAD>`: a head covers the run's seal, which covers its
/// workbooks, whose bytes carry their write time.
fn mask_heads(s: &str) -> String {
    const AT: &str = "證據鏈收據：第 ";
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(AT) {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        let Some(j) = after.find(" 筆 ") else {
            out.push_str(after);
            rest = "";
            break;
        };
        let end = j + " 筆 ".len();
        out.push_str(&after[..end]);
        let hex = after[end..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .count();
        // Masked already (a second look at the same text): as it is.
        if hex == 16 {
            out.push_str("<HEAD>");
        }
        rest = &after[end + hex..];
    }
    out.push_str(rest);
    out
}

/// Compares `got` with `tests/golden/<name>` (`UPDATE_GOLDEN=1` rewrites
/// it), naming the first line that differs.
fn assert_golden(name: &str, got: &str) {
    let got = &mask_heads(got);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(repo().join("tests/golden").join(name), got).unwrap();
    }
    assert_as_golden(name, got);
}

/// Compares `got` with `tests/golden/<name>`, never rewriting it (for a
/// second scenario that must give what the first pinned).
fn assert_as_golden(name: &str, got: &str) {
    let got = mask_heads(got);
    let got = got.as_str();
    let file = repo().join("tests/golden").join(name);
    let want = std::fs::read_to_string(&file).unwrap_or_default();
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "{name} differs at line {}:\n  now:    {:?}\n  golden: {:?}\n(UPDATE_GOLDEN=1 rewrites it after a deliberate change)",
            line + 1,
            got.lines().nth(line),
            want.lines().nth(line)
        );
    }
}

/// Golden files keep the layout stable: a change to any sheet, header,
/// label or value of the sample city's workbooks shows up here first.
/// `UPDATE_GOLDEN=1 cargo test golden` rewrites them after a deliberate
/// change.
#[test]
fn workbooks_match_their_golden_files() {
    let city = City::new();
    let now = "2026-07-05T08:00:00+08:00";
    for (args, unit, golden) in [
        (
            vec!["run", "sample-audit", "--period", "2026H1", "--seed", SEED],
            "KHB",
            "sample-audit-KHB.txt",
        ),
        (
            vec!["run", "account-review", "--as-of", "2026-07-02"],
            "KSA",
            "account-review-KSA.txt",
        ),
        (
            vec!["run", "query-check", "--period", "2026H1"],
            "city-wide",
            "query-check-city-wide.txt",
        ),
    ] {
        let dir = city.t.run_at(&args, now).finished().run_dir();
        let got = dump(&dir.join(format!("reports/{unit}.xlsx")));
        assert_golden(golden, &got);
    }
}

/// Point 6(3): the internal audit gathers what the year's runs left in
/// the archive and the state database.
#[test]
fn internal_audit_evidence_comes_from_the_year_s_runs() {
    let year = YearEvidence::the_sample_audit_account_review_and_internal_audit_run();
    year.kpb_s_workbook_lists_the_half_year_s_anomalies_apart();
    year.the_internal_audit_has_a_row_per_duty();
    year.the_year_s_reviews_and_draws_are_found_in_the_archive();
    year.the_queries_approved_are_the_period_s_less_the_unit_s_findings();
    year.the_ethics_unit_s_notices_and_the_checks_not_run_are_said();
    year.the_verdict_column_is_a_drop_down_on_a_protected_sheet();
}

/// The year's runs on the sample city, and KPB's internal audit of them.
struct YearEvidence {
    /// Holds the city's folder for the test's length.
    _city: City,
    /// The 2026H1 sample audit's run folder.
    sa: PathBuf,
    /// The internal audit's run folder.
    dir: PathBuf,
    /// KPB's internal audit workbook, its sheet names and sheets.
    path: PathBuf,
    names: Vec<String>,
    sheets: Sheets,
}

impl YearEvidence {
    /// July's sample audit and account review, then January's internal
    /// audit of 2026.
    fn the_sample_audit_account_review_and_internal_audit_run() -> YearEvidence {
        let city = City::new();
        let run = |now: &str, args: &[&str]| {
            let out = city.t.run_at(args, now);
            // The year's internal audit reviews accounts at its end, which the
            // sample city's logs (to 30 June) do not reach: idle accounts are
            // not checked, and the run says so with status 2.
            let logs_short = out
                .stdout
                .contains("NOT CHECKED ACCOUNT_IDLE: inputs do not cover it");
            assert!(
                out.status <= 1 || (out.status == 2 && logs_short),
                "{}{}",
                out.stdout,
                out.stderr
            );
            out.run_dir()
        };
        let sa = run(
            "2026-07-05T08:00:00+08:00",
            &["run", "sample-audit", "--period", "2026H1", "--seed", SEED],
        );
        run(
            "2026-07-06T08:00:00+08:00",
            &["run", "account-review", "--as-of", "2026-07-02"],
        );
        let dir = run(
            "2027-01-10T08:00:00+08:00",
            &["run", "internal-audit", "--period", "2026"],
        );
        let path = dir.join("reports/KPB.xlsx");
        let (names, sheets) = read(&path);
        YearEvidence {
            _city: city,
            sa,
            dir,
            path,
            names,
            sheets,
        }
    }

    /// KPB's workbook holds the internal audit, and the anomalies the
    /// sample audit asked about listed apart, not asked again.
    fn kpb_s_workbook_lists_the_half_year_s_anomalies_apart(&self) {
        assert_eq!(
            self.names,
            [
                "摘要",
                "內部稽核",
                // The sample audit asked about the half-year's anomalies: they
                // are listed, not asked again (and rolled up nothing new).
                "異常查詢",
                "已列管異常查詢",
                "資料品質",
                "清冊外帳號",
                "圖表資料"
            ]
        );
    }

    /// The 內部稽核 sheet's rows.
    fn rows(&self) -> &[Vec<Data>] {
        table(&self.sheets, "內部稽核").1
    }

    /// What the system found (系統查得) of the row of `item`.
    fn found(&self, item: &str) -> String {
        self.rows()
            .iter()
            .find(|r| text(&r[0]).starts_with(item))
            .map(|r| text(&r[2]))
            .unwrap_or_else(|| panic!("no {item}"))
    }

    /// The 內部稽核 sheet's columns, and one row per duty.
    fn the_internal_audit_has_a_row_per_duty(&self) {
        let (h, rows) = table(&self.sheets, "內部稽核");
        assert_eq!(
            h,
            [
                "查核項目",
                "依據（管理要點）",
                "系統查得",
                "查核結果",
                "查核方式",
                "佐證",
                "說明"
            ]
        );
        // One row per duty of 資料安全管制作業 (5(1)1–3, 5(2)1–4, 5(3), 5(4)).
        let points: Vec<String> = rows.iter().map(|r| text(&r[1])).collect();
        for point in crate::harness::DUTIES {
            assert!(points.iter().any(|p| p == *point), "no row of {point}");
        }
    }

    /// The account review and the first half's draw are found, the second
    /// half's is not, and the worksheet is not back.
    fn the_year_s_reviews_and_draws_are_found_in_the_archive(&self) {
        let found = |item: &str| self.found(item);
        assert!(
            found("年度帳號清查").starts_with("已辦理（基準日 2026-07-02"),
            "{}",
            found("年度帳號清查")
        );
        let sid = self.sa.file_name().unwrap().to_string_lossy().to_string();
        let h1 = found("抽查 2026年上半年");
        assert!(
            h1.contains(&sid) && h1.contains("第 1 次抽籤") && h1.contains("工作底稿未回傳"),
            "{h1}"
        );
        assert_eq!(found("抽查 2026年下半年"), "未辦理");
        // The worksheet is not back: what it confirms is not known yet.
        assert_eq!(found("工作底稿確認之異常"), "未檢核（工作底稿未回傳）");
    }

    /// The queries explained are the period's queries less the unit's
    /// findings of the four form codes, in this run's own findings.
    fn the_queries_approved_are_the_period_s_less_the_unit_s_findings(&self) {
        let found = |item: &str| self.found(item);
        let total = found("查詢總數");
        assert!(
            total.ends_with("筆（查詢紀錄涵蓋 2026-01-02 至 2026-06-30）"),
            "the year's count says what the logs hold: {total}"
        );
        let n: i64 = total.split(' ').next().unwrap().parse().unwrap();
        let unexplained = findings_of_unit(&self.dir, "KPB")
            .iter()
            .filter(|c| {
                [
                    "QUERY_NO_REQUEST_FORM",
                    "QUERY_FORM_NOT_APPROVED",
                    "QUERY_APPROVED_AFTER_QUERY",
                    "QUERY_FORM_EXPIRED",
                ]
                .contains(&c.as_str())
            })
            .count() as i64;
        assert!(unexplained > 0);
        assert!(
            found("經事前核可").starts_with(&format!("{} / {n} 筆（", n - unexplained)),
            "{} against {unexplained} unexplained of {n}",
            found("經事前核可")
        );
    }

    /// The ethics unit's urgent notices are found, and the open items say
    /// which checks did not run.
    fn the_ethics_unit_s_notices_and_the_checks_not_run_are_said(&self) {
        // The urgent notices of the sample audit's critical findings went to
        // the ethics unit too: the row says so (it said 無通知紀錄).
        let ethics = self.found("異常已通知政風單位");
        assert!(ethics.starts_with("重大異常即時通知"), "{ethics}");
        // Idle accounts were not checked: the open items say the count leaves
        // them out, and which.
        let open = self.found("帳號清查待處理事項");
        assert!(
            open.contains("另下列檢核未執行，不得視為無異常：帳號久未使用、帳號開通後從未查詢：輸入資料未涵蓋檢核期間"),
            "{open}"
        );
    }

    /// 查核結果 is a drop-down of the three verdicts on a protected sheet.
    fn the_verdict_column_is_a_drop_down_on_a_protected_sheet(&self) {
        let sheet = xml(&self.path, "xl/worksheets/sheet2.xml");
        assert!(sheet.contains(r#""符合,不符合,不適用""#) && sheet.contains("<sheetProtection"));
    }
}

/// Point 6(3): a duty the returned internal audit finds 不符合 opens an
/// investigation with the ethics unit exactly as a confirmed sample
/// anomaly does: its record goes to the officer and the ethics unit, a due
/// item is opened, and the record, concluded, comes back and closes it.
/// The duties the system has no data of say so (未檢核) and ask the
/// auditor how they checked.
#[test]
fn a_duty_the_internal_audit_finds_nonconforming_is_investigated_with_the_ethics_unit() {
    let city = City::new();
    let dir = city.internal_audit_withheld();
    for item in [
        "查詢後資料不留存",
        "查詢時避免非業務權責",
        "健保資訊使用完畢",
    ] {
        let said = evidence(&dir, "KPB", item);
        assert!(said.starts_with("未檢核（系統無此資料）"), "{item}: {said}");
    }
    // The register of authorised users and the applications, from data.
    let register = evidence(&dir, "KPB", "業務需求人員帳號及權限之配賦");
    assert!(
        register.starts_with("帳號清冊列本單位啟用帳號 "),
        "{register}"
    );
    let applications = evidence(&dir, "KPB", "妥善保管業務需求人員之申請資料");
    assert!(!applications.starts_with("未檢核"), "{applications}");
    let filled = city.t.dir.path().join("KPB-internal.xlsx");
    refill_sheet(
        &dir.join("reports/KPB.xlsx"),
        &filled,
        "內部稽核",
        |rows| {
            for r in table_rows(rows).iter_mut() {
                r.resize(7, Data::Empty);
                let bad = text(&r[0]).starts_with("健保資訊使用完畢");
                r[3] = Data::String(if bad { "不符合" } else { "符合" }.into());
                r[4] = Data::String("抽訪承辦人 3 名並現場檢視".into());
                r[5] = Data::String("訪談紀錄 115-01-08".into());
                if bad {
                    r[6] = Data::String(
                        "刑事組列印之查詢結果（A123456789）未銷毀，置於公用印表機旁".into(),
                    );
                }
            }
            sign(rows, "稽核 陳小明", "2027/01/12");
        },
    );
    let out = city.ingest(&filled);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let run = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
    let items = store.due_items().unwrap();
    let of = |job: &str| {
        items
            .iter()
            .find(|i| i.unit_id == "KPB" && i.job == job && i.run_id == run)
            .unwrap_or_else(|| panic!("no {job} item"))
            .clone()
    };
    assert!(of("internal-audit").closed_at.is_some(), "the audit is in");
    let case = of("internal-audit-investigation");
    assert!(case.closed_at.is_none());
    let kpb = city.config.agencies.get("KPB").unwrap();
    assert_eq!(Some(&case.sent_to), kpb.officer_email.as_ref());
    assert!(
        case.label.contains("內部稽核查核結果不符合 1 項"),
        "{}",
        case.label
    );
    // Mailed to both: the officer and the ethics unit investigate together.
    mailed_to_kpb_officer_and_ethics(&city, &store, "內部稽核查核結果不符合 1 項");
    drop(store);
    // The record: one row, the duty and what was found, the ID masked.
    let record = webir_audit::archive::kept_file(
        &webir_audit::archive::RunFolder::parse(&dir).unwrap(),
        "KPB",
        webir_audit::worksheet::INVESTIGATION_FILE,
    )
    .expect("the investigation record is kept beside the return");
    crate::harness::keep_artifact(&record, "internal-investigation.xlsx");
    let (item, found) = one_nonconformity(&record, "調查紀錄", "第五點第二款第四目");
    assert!(item.starts_with("健保資訊使用完畢"));
    assert!(
        found.contains("公用印表機")
            && found.contains("A12****789")
            && !found.contains("A123456789"),
        "{found}"
    );
    // Concluded and returned, it closes the investigation.
    let back = city.t.dir.path().join("KPB-internal-investigation.xlsx");
    refill_sheet(&record, &back, "調查紀錄", |rows| {
        for r in table_rows(rows).iter_mut() {
            r.resize(9, Data::Empty);
            r[4] = Data::String("政風室王科員".into());
            r[5] = Data::String("訪談刑事組並檢視印表機".into());
            r[6] = Data::String("異常屬實".into());
            r[7] = Data::String("設置碎紙機並宣導".into());
            r[8] = Data::String("2027/01/20".into());
        }
    });
    let out = city.ingest(&back);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
    let closed = store
        .due_items()
        .unwrap()
        .into_iter()
        .find(|i| i.job == "internal-audit-investigation" && i.unit_id == "KPB")
        .and_then(|i| i.closed_at);
    assert!(closed.is_some(), "the investigation is closed");
    // The internal audit's own return still reads as returned whole.
    let (answered, rows) = store
        .answered("internal-audit", &run, "KPB")
        .unwrap()
        .expect("the internal audit's return");
    assert_eq!((answered, rows), (19, 19));
}

/// The follow-up a return opened (`what` in every subject) was mailed to
/// KPB's officer and ethics unit, and to nobody else.
fn mailed_to_kpb_officer_and_ethics(city: &City, store: &webir_audit::store::Store, what: &str) {
    let kpb = city.config.agencies.get("KPB").unwrap();
    let mailed: Vec<(String, String)> = store
        .outbox()
        .unwrap()
        .into_iter()
        .filter(|r| r.report.starts_with("investigation:KPB:"))
        .map(|r| (r.recipient, r.subject))
        .collect();
    let to: BTreeSet<&str> = mailed.iter().map(|(r, _)| r.as_str()).collect();
    let want: BTreeSet<&str> = [&kpb.officer_email, &kpb.ethics_email]
        .into_iter()
        .map(|a| a.as_deref().unwrap())
        .collect();
    assert_eq!(to, want);
    assert!(mailed.iter().all(|(_, s)| s.contains(what)), "{mailed:?}");
}

/// A follow-up record (`sheet`) of one duty found 不符合: its columns, its
/// one row citing `point`; returns the row's 查核項目 and 不符合情形.
fn one_nonconformity(record: &Path, sheet: &str, point: &str) -> (String, String) {
    let (_, sheets) = read(record);
    let (h, rows) = table(&sheets, sheet);
    assert_eq!(h[..4], ["序號", "查核項目", "依據", "不符合情形"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(text(&rows[0][2]), point);
    (text(&rows[0][1]), text(&rows[0][3]))
}

/// A check withheld reads 未檢核 on the internal audit, never a number
/// (issue 28: the register's date was its file's, the form checks were
/// withheld, and the row read 15852 / 15852 筆（100.0%）). Here the
/// register carries no date of its own: the year's audit takes none from
/// its file, so the form checks do not run, and the row says so and why.
#[test]
fn internal_audit_says_not_checked_where_a_check_was_withheld() {
    let city = City::new();
    let forms = city.t.city_path("inbox/forms/request_forms_2026H1.csv");
    let register = std::fs::read_to_string(&forms).unwrap();
    let (_, from_header) = register.split_at(register.find("表單編號").unwrap());
    std::fs::write(&forms, from_header).unwrap();
    crate::harness::written_at(&forms, crate::harness::FILE_TIME);
    let dir = city.internal_audit_withheld();
    for unit in ["KPB", "KHB", "DNM"] {
        let row = evidence(&dir, unit, "經事前核可");
        assert!(
            row.starts_with("未檢核（查詢無對應之查詢申請紀錄表")
                && row.contains("查詢申請紀錄表清冊之標題列及檔名均未載明製表日期")
                && !row.contains('%'),
            "{unit}: {row}"
        );
    }
}

/// With no query log in the inbox at all, nothing about queries was
/// checked: the year's count of queries, the share explained and the
/// serious anomalies all read 未檢核, not 0 筆 or 本期間無查詢.
#[test]
fn internal_audit_without_query_logs_counts_nothing_about_queries() {
    let city = City::new();
    std::fs::remove_dir_all(city.t.dir.path().join("city/inbox/query_logs")).unwrap();
    let dir = city.internal_audit_withheld();
    let found = |item: &str| evidence(&dir, "KPB", item);
    for item in ["查詢總數", "經事前核可", "嚴重或高風險之異常查詢"] {
        let said = found(item);
        assert!(said.starts_with("未檢核（"), "{item}: {said}");
    }
    assert!(found("查詢總數").contains("收件匣無查詢紀錄檔"));
}

/// What the internal audit's 內部稽核 sheet of `unit` found (系統查得) for
/// the item starting `item`.
fn evidence(dir: &Path, unit: &str, item: &str) -> String {
    let (_, sheets) = read(&dir.join(format!("reports/{unit}.xlsx")));
    let (_, rows) = table(&sheets, "內部稽核");
    rows.iter()
        .find(|r| text(&r[0]).starts_with(item))
        .map(|r| text(&r[2]))
        .unwrap_or_else(|| panic!("{unit}: no {item}"))
}

/// The codes of `unit`'s findings in a run folder's findings.csv (code and
/// unit are its first and third fields, which hold no comma).
fn findings_of_unit(dir: &Path, unit: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("findings.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(4, ',').collect();
            (f.len() == 4
                && f[2] == unit
                && f[0].chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .then(|| f[0].to_owned())
        })
        .collect()
}

/// Points 4(2), 4(5), 6(4): the external audit sends the chief
/// administrator a record of each drawn unit, pre-filled from what the
/// archive knows of it, and the review of every officer account, each a
/// workbook of its own (the city-wide one no longer asks for either). Both
/// are chased as the chief's items, come back encrypted with the chief's
/// password (never a unit officer's) and are recorded; a duty the record
/// finds 不符合 is followed up with the unit, whose preparation item the
/// record closes.
#[test]
fn the_external_audit_s_record_and_the_officer_review_come_back_from_the_chief() {
    let ext = ExternalAudit::draws_units_and_writes_the_chief_a_workbook_for_each();
    ext.each_is_an_item_of_the_chief_s();
    ext.the_chief_s_mail_says_what_to_fill_in();
    let record = ext.kpb_s_record_is_pre_filled_from_the_archive();
    let filled = ext.the_chief_fills_in_kpb_s_record_with_one_nonconformity(&record);
    ext.a_unit_s_officer_cannot_answer_for_the_chief(&filled);
    ext.the_chief_s_return_closes_the_items_and_its_nonconformity_goes_to_kpb(&filled);
    let kept = ext.the_follow_up_record_is_kept_beside_the_return_masked();
    ext.kpb_returns_what_it_did(&kept);
    let review = ext.the_officer_review_lists_every_officer_account_but_the_chief_s();
    ext.the_chief_decides_every_officer_account(&review);
    ext.the_follow_up_and_the_officer_review_are_closed();
}

/// An external audit run of the sample city, after its sample audit.
struct ExternalAudit {
    city: City,
    dir: PathBuf,
    run: String,
    drawn: Vec<String>,
}

impl ExternalAudit {
    /// The external audit draws KPB among its units and writes the chief
    /// administrator a record of each and the officer review, which the
    /// city-wide workbook no longer asks for.
    fn draws_units_and_writes_the_chief_a_workbook_for_each() -> ExternalAudit {
        let city = City::new();
        city.sample_audit();
        let dir = city.run_logs_short(&[
            "run",
            "external-audit",
            "--period",
            "2026",
            "--seed",
            "27182818284590452353602874",
        ]);
        let run = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let selection = crate::harness::json(&dir, "selection.json");
        let drawn: Vec<String> = selection["units"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["selected"] == true)
            .map(|u| u["unit_id"].as_str().unwrap().to_owned())
            .collect();
        assert!(drawn.contains(&"KPB".to_owned()), "{drawn:?}");
        let mut want: BTreeSet<String> = drawn
            .iter()
            .map(|u| format!("{u}.chief-admin.xlsx"))
            .collect();
        want.extend([
            "KHB.chief-admin.xlsx".to_owned(),
            "city-wide.xlsx".to_owned(),
        ]);
        let reports: BTreeSet<String> = std::fs::read_dir(dir.join("reports"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(reports, want);
        let (names, _) = read(&dir.join("reports/city-wide.xlsx"));
        assert!(
            !names.iter().any(|n| n == "專責人員帳號"),
            "asked once: {names:?}"
        );
        ExternalAudit {
            city,
            dir,
            run,
            drawn,
        }
    }

    /// The chief's items: one per record and the officer review, each of
    /// the external audit and sent to the chief.
    fn each_is_an_item_of_the_chief_s(&self) {
        let (city, run) = (&self.city, &self.run);
        let chief = city.config.chief_email().unwrap().to_owned();
        let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
        let items = store.due_items().unwrap();
        for key in self
            .drawn
            .iter()
            .map(|u| format!("{u}:chief"))
            .chain(["KHB:chief".to_owned()])
        {
            let item = items
                .iter()
                .find(|i| i.unit_id == key && &i.run_id == run)
                .unwrap_or_else(|| panic!("no item {key}"));
            assert_eq!(item.sent_to, chief, "{key}");
            assert_eq!(item.job, "external-audit");
        }
        drop(store);
    }

    /// The chief's mail says what to fill in, not the run's findings, and
    /// names the attachment for what it is.
    fn the_chief_s_mail_says_what_to_fill_in(&self) {
        let city = &self.city;
        let chief = city.config.chief_email().unwrap().to_owned();
        let mails = crate::harness::mail::parse_all(
            &webir_audit::mail::outbox::file_transport_dir(&city.config),
        );
        let mail = mails
            .iter()
            .find(|m| {
                m.subject.contains("高雄市政府警察局")
                    && m.subject.contains("外部稽核紀錄（總管理者填復）")
            })
            .expect("KPB's record mailed to the chief");
        assert_eq!(mail.to, chief);
        assert!(
            mail.text.contains("待填寫：「外部稽核紀錄」共 ") && !mail.text.contains("發現統計"),
            "{}",
            mail.text
        );
        assert!(mail.name.ends_with("_外部稽核紀錄.xlsx"), "{}", mail.name);
    }

    /// KPB's record, pre-filled: why it was drawn, its duties, and what it
    /// was asked this year (its sample worksheet, not back yet).
    fn kpb_s_record_is_pre_filled_from_the_archive(&self) -> PathBuf {
        let record = self.dir.join("reports/KPB.chief-admin.xlsx");
        let (_, sheets) = read(&record);
        let (h, rows) = table(&sheets, "外部稽核紀錄");
        assert_eq!(
            h,
            [
                "查核項目",
                "依據（管理要點）",
                "系統查得",
                "查核結果",
                "查核方式",
                "佐證",
                "說明"
            ]
        );
        assert!(text(&rows[0][2]).contains("優先抽選"), "{:?}", rows[0]);
        let asked = rows
            .iter()
            .find(|r| text(&r[0]).starts_with("回傳：") && text(&r[0]).contains("抽查工作底稿"))
            .expect("the sample worksheet asked of KPB");
        assert!(text(&asked[2]).starts_with("未回傳（期限 "), "{asked:?}");
        record
    }

    /// The chief finds one duty of KPB's 不符合 and signs the record.
    fn the_chief_fills_in_kpb_s_record_with_one_nonconformity(&self, record: &Path) -> PathBuf {
        let filled = self.city.t.dir.path().join("KPB-record.xlsx");
        refill_sheet(record, &filled, "外部稽核紀錄", |rows| {
            for r in table_rows(rows).iter_mut() {
                r.resize(7, Data::Empty);
                let bad = text(&r[0]).starts_with("查詢時避免非業務權責");
                r[3] = Data::String(if bad { "不符合" } else { "符合" }.into());
                r[4] = Data::String("實地訪查".into());
                if bad {
                    r[6] = Data::String("刑事組螢幕面向走道，查詢 B223456789 時民眾可見".into());
                }
            }
            sign(rows, "衛生局 周秀志", "2027/01/20");
        });
        filled
    }

    /// A unit's officer cannot answer for the chief: the record encrypted
    /// with KPB's officer's password is refused.
    fn a_unit_s_officer_cannot_answer_for_the_chief(&self, filled: &Path) {
        let city = &self.city;
        let by_officer = city.t.dir.path().join("KPB-record-by-officer.xlsx");
        {
            let mut store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
            let bytes = webir_audit::mail::protect(
                &city.config,
                &mut store,
                "KPB",
                webir_audit::mail::Role::Officer,
                &std::fs::read(filled).unwrap(),
                "2026-07-10T09:00:00Z",
            )
            .unwrap()
            .bytes;
            std::fs::write(&by_officer, bytes).unwrap();
        }
        let out = city.ingest(&by_officer);
        assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    }

    /// The chief's return is recorded and closes the chief's item and the
    /// unit's preparation; its 不符合 goes to the unit.
    fn the_chief_s_return_closes_the_items_and_its_nonconformity_goes_to_kpb(&self, filled: &Path) {
        let (city, run) = (&self.city, &self.run);
        let out = city.ingest(filled);
        assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
        let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
        let items = store.due_items().unwrap();
        let item = |key: &str, job: &str| {
            items
                .iter()
                .find(|i| i.unit_id == key && i.job == job && &i.run_id == run)
                .unwrap_or_else(|| panic!("no {job} item of {key}"))
                .clone()
        };
        assert!(item("KPB:chief", "external-audit").closed_at.is_some());
        assert!(
            item("KPB", "external-audit").closed_at.is_some(),
            "prepared"
        );
        let follow = item("KPB", "external-audit-follow-up");
        let kpb = city.config.agencies.get("KPB").unwrap();
        assert_eq!(Some(&follow.sent_to), kpb.officer_email.as_ref());
        assert!(follow.closed_at.is_none());
        assert!(
            follow
                .label
                .ends_with("外部稽核紀錄查核結果不符合 1 項之改善紀錄"),
            "{}",
            follow.label
        );
        mailed_to_kpb_officer_and_ethics(city, &store, "外部稽核紀錄查核結果不符合 1 項");
        drop(store);
    }

    /// The follow-up record is kept beside the chief's return, with the
    /// national ID its finding quotes masked.
    fn the_follow_up_record_is_kept_beside_the_return_masked(&self) -> PathBuf {
        let kept = webir_audit::archive::kept_file(
            &webir_audit::archive::RunFolder::parse(&self.dir).unwrap(),
            "KPB:chief",
            webir_audit::worksheet::EXTERNAL_FOLLOW_UP_FILE,
        )
        .expect("the follow-up record is kept beside the chief's return");
        crate::harness::keep_artifact(&kept, "external-follow-up.xlsx");
        let (_, found) = one_nonconformity(&kept, "改善紀錄", "第五點第二款第三目");
        assert!(
            found.contains("B22****789") && !found.contains("B223456789"),
            "{found}"
        );
        kept
    }

    /// The unit returns what it did, and the return is taken.
    fn kpb_returns_what_it_did(&self, kept: &Path) {
        let done = self.city.t.dir.path().join("KPB-follow-up.xlsx");
        refill_sheet(kept, &done, "改善紀錄", |rows| {
            for r in table_rows(rows).iter_mut() {
                r.resize(7, Data::Empty);
                r[4] = Data::String("螢幕加裝防窺片並調整座位".into());
                r[5] = Data::String("政風室王科員".into());
                r[6] = Data::String("2027/02/10".into());
            }
        });
        let out = self.city.ingest(&done);
        assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    }

    /// The officer review lists every officer account of the roster and
    /// leaves out the chief administrator's own, the NHIA's to change, and
    /// says where an agency has more or fewer than one officer.
    fn the_officer_review_lists_every_officer_account_but_the_chief_s(&self) -> PathBuf {
        let review = self.dir.join("reports/KHB.chief-admin.xlsx");
        let ing = webir_audit::ingest::ingest(&self.city.config, None).unwrap();
        let roster = ing.table(webir_audit::model::Table::Roster);
        let accounts = roster.column("account_id").unwrap().str().unwrap().clone();
        let roles = roster.column("role").unwrap().str().unwrap().clone();
        let with_role = |role: &str| -> BTreeSet<String> {
            accounts
                .iter()
                .zip(roles.iter())
                .filter(|(_, r)| *r == Some(role))
                .filter_map(|(a, _)| a.map(str::to_owned))
                .collect()
        };
        let (_, sheets) = read(&review);
        let (_, rows) = table(&sheets, "專責人員帳號");
        let listed: BTreeSet<String> = rows.iter().map(|r| text(&r[0])).collect();
        assert_eq!(listed, with_role("officer"));
        let chief_accounts: Vec<String> = with_role("chief_admin").into_iter().collect();
        assert!(!chief_accounts.is_empty());
        let summary: String = sheets["摘要"]
            .iter()
            .flatten()
            .map(text)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            summary.contains(&format!(
                "總管理者帳號（{}）不列入",
                chief_accounts.join("、")
            )) && summary.contains("中央健康保險署申請權限異動"),
            "{summary}"
        );
        // An agency with more or fewer than one officer is said where the
        // officers are decided (the sample city plants both).
        assert_eq!(
            summary
                .matches("專責人員人數不符規定（第五點第一款）")
                .count(),
            2,
            "{summary}"
        );
        // Each names its agency.
        for agency in ["高雄市三民區公所（DSM）", "高雄市政府觀光局（KTB）"] {
            assert!(summary.contains(agency), "{agency}: {summary}");
        }
        assert!(summary.contains("第四點第五款"), "its own rule: {summary}");
        review
    }

    /// Every officer account decided, the review is returned whole and taken.
    fn the_chief_decides_every_officer_account(&self, review: &Path) {
        let decided = self.city.t.dir.path().join("officer-review.xlsx");
        refill_sheet(review, &decided, "專責人員帳號", |rows| {
            for r in table_rows(rows).iter_mut() {
                r.resize(11, Data::Empty);
                r[7] = Data::String("保留".into());
                r[9] = Data::String("周秀志".into());
                r[10] = Data::String("2027/01/15".into());
            }
            sign(rows, "周秀志", "2027/01/15");
        });
        let out = self.city.ingest(&decided);
        assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    }

    /// KPB's follow-up and the chief's officer review are closed, the
    /// review answered in full.
    fn the_follow_up_and_the_officer_review_are_closed(&self) {
        let run = &self.run;
        let store = webir_audit::store::Store::open(&self.city.config.paths.state).unwrap();
        let items = store.due_items().unwrap();
        let closed = |key: &str, job: &str| {
            items
                .iter()
                .find(|i| i.unit_id == key && i.job == job && &i.run_id == run)
                .is_some_and(|i| i.closed_at.is_some())
        };
        assert!(closed("KPB", "external-audit-follow-up"));
        assert!(closed("KHB:chief", "external-audit"));
        let (answered, n) = store
            .answered("external-audit", run, "KHB:chief")
            .unwrap()
            .expect("the officer review's return");
        assert!(n > 0 && answered == n, "{answered} of {n}");
    }
}

/// Point 4: the external audit draws units from a seed like the sample
/// audit does (kind "unit"), never the Health Bureau itself, and reviews
/// every officer account.
#[test]
fn external_audit_draws_units_reproducibly() {
    let draw = UnitDraw::a_redraw_with_the_same_seed_draws_the_same_units();
    draw.every_unit_but_the_health_bureau_is_ranked_by_its_ticket();
    draw.the_unit_with_critical_findings_comes_first_and_is_drawn();
    draw.the_units_digest_is_that_of_section_14();
    draw.only_the_health_bureau_s_workbooks_are_written();
    draw.the_city_wide_workbook_names_the_seed_and_the_units_drawn();
}

/// The external audit drawn twice from one seed, and what it drew first.
struct UnitDraw {
    /// Holds the city's folder for the test's length.
    _city: City,
    seed: &'static str,
    first: PathBuf,
    selection: serde_json::Value,
}

impl UnitDraw {
    /// The draw and its redraw with the same seed list the same units,
    /// numbered 1 and 2.
    fn a_redraw_with_the_same_seed_draws_the_same_units() -> UnitDraw {
        let city = City::new();
        let seed = "27182818284590452353602874";
        let first =
            city.run_logs_short(&["run", "external-audit", "--period", "2026", "--seed", seed]);
        let second = city.run_logs_short(&[
            "run",
            "external-audit",
            "--period",
            "2026",
            "--seed",
            seed,
            "--redraw",
        ]);
        let sel = |d: &Path| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(d.join("selection.json")).unwrap()).unwrap()
        };
        let (a, b) = (sel(&first), sel(&second));
        assert_eq!(a["units"], b["units"], "same seed, same draw");
        assert_eq!(
            (a["draw_number"].as_u64(), b["draw_number"].as_u64()),
            (Some(1), Some(2))
        );
        UnitDraw {
            _city: city,
            seed,
            first,
            selection: a,
        }
    }

    fn units(&self) -> &Vec<serde_json::Value> {
        self.selection["units"].as_array().unwrap()
    }

    /// Every unit but the Health Bureau is listed, ranked, with its
    /// ticket of kind "unit"; three are drawn.
    fn every_unit_but_the_health_bureau_is_ranked_by_its_ticket(&self) {
        let units = self.units();
        assert_eq!(units.len(), 9, "every unit but the Health Bureau");
        assert!(units.iter().all(|u| u["unit_id"] != "KHB"));
        assert_eq!(units.iter().filter(|u| u["selected"] == true).count(), 3);
        use webir_audit::sampling::spec::{ticket, ticket_hex};
        for (i, u) in units.iter().enumerate() {
            let id = u["unit_id"].as_str().unwrap();
            assert_eq!(
                u["ticket"],
                ticket_hex(&ticket(&[self.seed, "unit", "2026", id]))
            );
            assert_eq!(u["rank"], i + 1);
        }
    }

    /// The unit with critical findings (KPB) comes first and is drawn;
    /// the others follow by ticket.
    fn the_unit_with_critical_findings_comes_first_and_is_drawn(&self) {
        let units = self.units();
        // docs/sampling.md § 14: the unit with critical findings (KPB: queries
        // after its holders left) comes first and is drawn; the others follow
        // by ticket, and the two smallest fill the three places.
        let put_first: Vec<&str> = units
            .iter()
            .filter(|u| u["first"] == true)
            .map(|u| u["unit_id"].as_str().unwrap())
            .collect();
        assert_eq!(put_first, ["KPB"]);
        assert!(units[0]["critical"].as_u64().unwrap() > 0);
        assert_eq!(units[0]["unit_id"], "KPB");
        assert_eq!(units[0]["selected"], true);
        let rest: Vec<&str> = units[1..]
            .iter()
            .map(|u| u["ticket"].as_str().unwrap())
            .collect();
        assert!(rest.windows(2).all(|w| w[0] < w[1]), "the rest by ticket");
        assert!(units[1..].iter().all(|u| u["critical"] == 0));
    }

    /// The selection's digest is § 14's: of the sorted unit ids, the one
    /// put first marked so.
    fn the_units_digest_is_that_of_section_14(&self) {
        use sha2::{Digest, Sha256};
        let mut ids: Vec<&str> = self
            .units()
            .iter()
            .map(|u| u["unit_id"].as_str().unwrap())
            .collect();
        ids.sort();
        let lines: String = ids
            .iter()
            .map(|u| {
                if *u == "KPB" {
                    format!("{u}\tfirst\n")
                } else {
                    format!("{u}\n")
                }
            })
            .collect();
        assert_eq!(
            self.selection["units_digest"],
            hex::encode(Sha256::digest(lines)),
            "the digest of § 14"
        );
    }

    /// The run writes the Health Bureau's workbooks alone: the city-wide
    /// one, the officer review, and a record of each unit drawn.
    fn only_the_health_bureau_s_workbooks_are_written(&self) {
        let reports: Vec<String> = std::fs::read_dir(self.first.join("reports"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        // The Health Bureau's alone: the city-wide workbook, and those the
        // chief administrator fills in (the officer review, a record of each
        // unit drawn).
        let mut want = vec![
            "city-wide.xlsx".to_owned(),
            "KHB.chief-admin.xlsx".to_owned(),
        ];
        want.extend(
            self.units()
                .iter()
                .filter(|u| u["selected"] == true)
                .map(|u| format!("{}.chief-admin.xlsx", u["unit_id"].as_str().unwrap())),
        );
        want.sort();
        let mut reports = reports;
        reports.sort();
        assert_eq!(reports, want);
    }

    /// The city-wide workbook holds the draw's sheets, names the seed and
    /// the draw's number, and lists the units drawn, saying why KPB first.
    fn the_city_wide_workbook_names_the_seed_and_the_units_drawn(&self) {
        let seed = self.seed;
        let (names, sheets) = read(&self.first.join("reports/city-wide.xlsx"));
        assert_eq!(
            names,
            [
                "摘要",
                "各單位",
                // What the draw asks: the units' preparation, the chief's
                // records and officer review.
                "回收狀況",
                "外部稽核抽選",
                "帳號彙整",
                "資料品質",
                "清冊外帳號",
                "剔除資料列",
                "圖表資料"
            ]
        );
        let note = sheets["摘要"]
            .iter()
            .find(|r| text(&r[0]) == "注意")
            .map(|r| text(&r[1]))
            .unwrap_or_default();
        assert!(
            note.contains(seed) && note.contains("第 1 次抽籤"),
            "{note}"
        );
        let (_, rows) = table(&sheets, "外部稽核抽選");
        let picked: Vec<String> = rows
            .iter()
            .filter(|r| text(&r[4]) == "是")
            .map(|r| text(&r[1]))
            .collect();
        assert_eq!(picked.len(), 3);
        // The sheet says why KPB came first.
        assert!(
            text(&rows[0][2]).ends_with("件（優先抽選）"),
            "{:?}",
            rows[0]
        );
        for u in self.units().iter().filter(|u| u["selected"] == true) {
            let id = u["unit_id"].as_str().unwrap();
            assert!(
                picked.iter().any(|p| p.ends_with(&format!("（{id}）"))),
                "{id}"
            );
        }
    }
}

/// A1-style `$B$9` or `$A$10:$A$15` (after the sheet name) as 0-based
/// `(row, col)` corners.
fn a1_range(f: &str) -> ((u32, u32), (u32, u32)) {
    let cell = |s: &str| -> (u32, u32) {
        let s = s.replace('$', "");
        let letters: String = s.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        let col = letters
            .bytes()
            .fold(0u32, |n, b| n * 26 + u32::from(b - b'A' + 1))
            - 1;
        let row: u32 = s[letters.len()..].parse().unwrap();
        (row - 1, col)
    };
    let refs = f.rsplit('!').next().unwrap();
    match refs.split_once(':') {
        Some((a, b)) => (cell(a), cell(b)),
        None => (cell(refs), cell(refs)),
    }
}

/// Regression (reported with the sample city's workbooks): in the
/// 各機關每月查詢次數 chart the series were named after January's counts
/// ("35", "41"), January was missing and a slot was empty; the
/// findings-per-agency chart had an empty trailing category. Every series
/// must be named by its column's header and span exactly the data rows of
/// its block on 圖表資料.
#[test]
fn chart_series_are_named_by_their_headers_and_span_their_data() {
    let city = City::new();
    let dir = city.sample_audit();
    let path = dir.join("reports/KHB.xlsx");
    let (_, sheets) = read(&path);
    let data = &sheets["圖表資料"];
    let cell = |(r, c): (u32, u32)| -> String {
        data.get(r as usize)
            .and_then(|row| row.get(c as usize))
            .map(text)
            .unwrap_or_default()
    };
    let charts: Vec<String> = members(&path)
        .into_iter()
        .filter(|m| m.starts_with("xl/charts/chart"))
        .collect();
    assert_eq!(charts.len(), 2, "{charts:?}");
    let mut months_seen = false;
    for member in charts {
        let x = xml(&path, &member);
        for ser in x.split("<c:ser>").skip(1) {
            let refs: Vec<&str> = ser
                .split("<c:f>")
                .skip(1)
                .map(|s| s.split("</c:f>").next().unwrap())
                .collect();
            assert_eq!(refs.len(), 3, "name, categories, values: {refs:?}");
            let (name, _) = a1_range(refs[0]);
            let (cat_from, cat_to) = a1_range(refs[1]);
            let (val_from, val_to) = a1_range(refs[2]);
            // The name is the header cell right above the first value.
            assert_eq!(name.0 + 1, val_from.0, "{member}: {refs:?}");
            let header = cell(name);
            assert!(
                !header.is_empty() && header.parse::<f64>().is_err(),
                "{member}: series named {header:?} ({refs:?})"
            );
            assert_eq!((cat_from.0, cat_to.0), (val_from.0, val_to.0), "{refs:?}");
            // Every category is filled, and the row after the last is not
            // data of this block.
            for r in cat_from.0..=cat_to.0 {
                assert!(!cell((r, 0)).is_empty(), "{member}: empty category row {r}");
            }
            assert!(
                cell((cat_to.0 + 1, 0)).is_empty(),
                "{member}: {refs:?} stops early"
            );
            if cell((cat_from.0, 0)) == "2026-01" {
                months_seen = true;
                assert_eq!(cell((cat_to.0, 0)), "2026-06", "{refs:?}");
            }
        }
    }
    assert!(months_seen, "the monthly chart starts in January");
}

/// One fixed-seed sample audit's run folder, pinned: every file's name,
/// the SHA-256 of every CSV, TSV and JSON (with the temporary folder's
/// path written as `<ROOT>`), the cell values of every workbook, what the
/// terminal printed and what the outbox holds. A restructuring of the
/// run layer must leave all of it as it was;
/// `UPDATE_GOLDEN=1 cargo test golden` rewrites it after a deliberate
/// change.
#[test]
fn sample_audit_run_folder_matches_its_golden_file() {
    assert_golden(
        "sample-audit-run.txt",
        &golden_run_folder(crate::harness::FILE_TIME),
    );
}

/// The same run on the sample city copied a year later (every file's
/// modification time 2027-07-03, as a clone or a restore that day gives
/// it), and on one copied the day before the period ended, gives the same
/// folder: a result depends on the inputs, never on their files' times.
#[test]
fn the_golden_run_folder_does_not_depend_on_when_the_files_were_copied() {
    // Against what the golden scenario gives now: while `UPDATE_GOLDEN`
    // rewrites the file, the file may be mid-write.
    let want = mask_heads(&golden_run_folder(crate::harness::FILE_TIME));
    for at in ["2027-07-03T09:00:00+08:00", "2026-06-29T23:59:59+08:00"] {
        let got = mask_heads(&golden_run_folder(at));
        assert!(
            got == want,
            "files dated {at} give another run folder:\n{got}\n---\n{want}"
        );
    }
    if std::env::var_os("UPDATE_GOLDEN").is_none() {
        assert_as_golden("sample-audit-run.txt", &want);
    }
}

/// The golden scenario's run folder, on the sample city with every file
/// dated `at`, as the golden file pins it.
fn golden_run_folder(at: &str) -> String {
    use sha2::{Digest, Sha256};
    let hex = |b: &[u8]| -> String {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let city = City::dated(at);
    let root = city.t.dir.path().to_str().unwrap().to_owned();
    let now = "2026-07-05T08:00:00+08:00";
    let out = city
        .t
        .run_at(
            &["run", "sample-audit", "--period", "2026H1", "--seed", SEED],
            now,
        )
        .finished();
    let dir = out.run_dir();
    let unroot = |s: &str| s.replace(&root, "<ROOT>");
    let mut got = format!("# stdout\n{}\n", unroot(&out.stdout));
    // Sorted, so the listing is the same whatever the directory order.
    let files = crate::harness::files_in(&dir);
    got.push_str(&format!(
        "# files of {}\n",
        unroot(&dir.display().to_string())
    ));
    for f in &files {
        let rel = f.strip_prefix(&dir).unwrap().display().to_string();
        let what = if rel.ends_with(".xlsx") {
            format!("cells sha256 {}", hex(dump(f).as_bytes()))
        } else if rel == "SHA256SUMS" {
            // It holds the workbooks' bytes, which carry their write time.
            "seal".to_owned()
        } else {
            let text = unroot(&String::from_utf8_lossy(&std::fs::read(f).unwrap()));
            format!("sha256 {}", hex(text.as_bytes()))
        };
        got.push_str(&format!("{rel}  {what}\n"));
    }
    let outbox = city.t.run(&["outbox", "list"]);
    got.push_str(&format!("# outbox\n{}", unroot(&outbox.stdout)));
    got
}

/// The sample worksheet's layout is defined once (`report::layout`): the
/// workbook shows exactly its headers, each choice column carries a
/// drop-down of exactly its choices over exactly its column, and a copy
/// filled in by the layout's column names reads back with those answers.
/// A column added to the layout and missed by the writer or the reader
/// fails here.
#[test]
fn the_sample_worksheet_is_written_and_read_back_by_one_layout() {
    use webir_audit::report::layout::{HEADER_ROW, Input, SAMPLE_WORKSHEET as L};
    let letter = |c: usize| -> String {
        let mut n = c + 1;
        let mut s = String::new();
        while n > 0 {
            s.insert(0, (b'A' + ((n - 1) % 26) as u8) as char);
            n = (n - 1) / 26;
        }
        s
    };
    let city = City::new();
    let dir = city.sample_audit();
    let original = dir.join("reports/KPB.xlsx");
    let (names, sheets) = read(&original);
    let rows = &sheets[L.sheet];
    let header: Vec<String> = rows[HEADER_ROW as usize].iter().map(text).collect();
    assert_eq!(header, L.headers());
    let index = names.iter().position(|n| n == L.sheet).unwrap() + 1;
    let sheet = xml(&original, &format!("xl/worksheets/sheet{index}.xml"));
    let first = HEADER_ROW as usize + 2;
    let last = HEADER_ROW as usize + 1 + table(&sheets, L.sheet).1.len();
    for (h, input) in L.inputs {
        let col = letter(L.column(h));
        let range = format!("sqref=\"{col}{first}:{col}{last}\"");
        match input {
            Input::Choice(list) => {
                let formula = format!("<formula1>\"{}\"</formula1>", list.join(","));
                let at = sheet
                    .find(&range)
                    .unwrap_or_else(|| panic!("{h}: no validation over {range}"));
                let end = sheet[at..].find("</dataValidation>").unwrap();
                assert!(sheet[at..at + end].contains(&formula), "{h}: {formula}");
            }
            Input::Date => assert!(sheet.contains(&range), "{h}: no date validation"),
            Input::Text => assert!(!sheet.contains(&range), "{h}: free text"),
        }
    }

    let done = city.t.dir.path().join("KPB-layout.xlsx");
    refill(&original, &done, |rows| {
        let row = &mut rows[HEADER_ROW as usize + 1];
        row.resize(L.headers().len(), Data::Empty);
        for (h, v) in [
            ("紀錄表已填具", "是"),
            ("主管事前核可", "是"),
            ("事由與查詢相符", "否"),
            ("異常", "有"),
            ("說明", "查詢目的與紀錄表不符"),
        ] {
            row[L.column(h)] = Data::String(v.to_owned());
        }
        sign(rows, "王稽核", "2026/07/20");
    });
    let out = city.ingest(&done);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("1 answered, 1 confirmed anomalies"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("事由與查詢相符=否 異常=有  查詢目的與紀錄表不符"),
        "{}",
        out.stdout
    );
    // Who audited and when: from the sign-off, once, for every row.
    let db = auditors_recorded(&city.t.dir.path().join("var/state/state.sqlite3"));
    assert_eq!(db, ["王稽核"], "{db:?}");
}

/// The distinct auditors the state database recorded for returned
/// worksheets, read with Python's sqlite3 (a reader other than the
/// product's own).
fn auditors_recorded(db: &Path) -> Vec<String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print('\\n'.join(r[0] for r in c.execute('select distinct auditor from worksheet_answers')))",
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The city-wide workbook of a sample audit counts that audit as each
/// unit's latest, and a unit's accounts include those the log shows but
/// the roster lacks, so 帳號數 is never below 使用中帳號.
#[test]
fn the_city_wide_sample_audit_counts_itself_and_every_account() {
    let city = City::new();
    let dir = city.sample_audit();
    let run_id = dir.file_name().unwrap().to_string_lossy().into_owned();
    let (_, sheets) = read(&dir.join("reports/city-wide.xlsx"));
    let (h, rows) = table(&sheets, "各單位");
    let rows: Vec<&Vec<Data>> = rows.iter().collect();
    let (last, n_use, n_acc) = (
        column(&h, "最近抽查"),
        column(&h, "使用中帳號"),
        column(&h, "帳號數"),
    );
    assert!(!rows.is_empty());
    let coverage = column(&h, "涵蓋率");
    for r in rows {
        assert_eq!(text(&r[last]), format!("2026H1（{run_id}）"), "{r:?}");
        let n = |c: usize| text(&r[c]).parse::<i64>().unwrap_or(0);
        assert!(n(n_acc) >= n(n_use), "帳號數 below 使用中帳號: {r:?}");
        if n(n_use) > 0 {
            // Point 6(1): at least 20% of the accounts in use.
            let pct: f64 = text(&r[coverage]).trim_end_matches('%').parse().unwrap();
            assert!(pct >= 20.0, "{r:?}");
        }
    }
    // The roll-up by account: most serious first, each with a next action.
    let (h, rows) = table(&sheets, "帳號彙整");
    let (crit, high, next) = (column(&h, "嚴重"), column(&h, "高"), column(&h, "下一步"));
    let key = |r: &Vec<Data>| {
        let n = |c: usize| text(&r[c]).parse::<i64>().unwrap_or(0);
        (n(crit), n(high))
    };
    assert!(!rows.is_empty());
    for w in rows.windows(2) {
        assert!(key(&w[0]) >= key(&w[1]), "not most serious first: {w:?}");
    }
    for r in rows {
        assert!(!text(&r[next]).is_empty(), "{r:?}");
        if key(r).0 > 0 {
            assert!(text(&r[next]).contains("政風"), "{r:?}");
        }
    }
}

/// The worksheet and the findings agree row by row: a row whose pre-check
/// says the form was approved after the query shows that form, not
/// 無對應紀錄表; a row pre-checked for a purpose mismatch shows two
/// different purposes; a row pre-checked 無異常 has a form with its own
/// purpose.
#[test]
fn the_worksheet_agrees_with_the_findings_row_by_row() {
    let city = City::new();
    let dir = city.sample_audit();
    let (mut late, mut mismatch, mut clean) = (0, 0, 0);
    for e in std::fs::read_dir(dir.join("reports")).unwrap() {
        let path = e.unwrap().path();
        let (_, sheets) = read(&path);
        if !sheets.contains_key("抽查工作底稿") {
            continue;
        }
        let (h, rows) = table(&sheets, "抽查工作底稿");
        let (form, pre) = (column(&h, "紀錄表"), column(&h, "系統預檢"));
        let purpose = column(&h, "查詢目的");
        for r in rows {
            let p = text(&r[pre]);
            // 紀錄表: the form's number, then its purpose where it is not
            // the query's.
            let cell = text(&r[form]);
            let lines: Vec<&str> = cell.lines().collect();
            let form_purpose = lines
                .get(1)
                .and_then(|l| l.strip_prefix("目的："))
                .map_or_else(|| text(&r[purpose]), str::to_owned);
            if lines.len() > 1 {
                assert_ne!(text(&r[purpose]), form_purpose, "{r:?}");
            }
            if p.contains("主管於查詢後始核可") {
                late += 1;
                assert!(lines[0].ends_with("（查詢後始核可）"), "{r:?}");
            }
            if p.contains("查詢目的與紀錄表所載目的不符") {
                mismatch += 1;
                assert_ne!(text(&r[purpose]), form_purpose, "{r:?}");
            }
            if p == "無異常" {
                clean += 1;
                assert!(!cell.contains("無對應"), "{r:?}");
                let q = text(&r[purpose]);
                assert!(q.is_empty() || q == form_purpose, "{r:?}");
                // Approved, by whom and when, beside it.
                let approval = text(&r[column(&h, "核准")]);
                assert!(approval.lines().count() == 2, "{r:?}");
            }
        }
    }
    assert!(clean > 0, "{late} {mismatch} {clean}");
}

/// A unit writes down what it did about each finding (issue 15): 異常查詢
/// carries the follow-up columns of `report::layout` (and 清冊外帳號 where
/// no 異常查詢 asks about the same accounts: the account review), the
/// account review its 處理人 and 處理日; the city-wide reading copy does
/// not ask the Health Bureau to fill them in.
#[test]
fn units_have_columns_to_record_what_they_did() {
    use webir_audit::report::layout::{ACCOUNT_REVIEW_INPUTS, FOLLOW_UP_INPUTS};
    let city = City::new();
    let dir = city.sample_audit();
    let (_, unit) = read(&dir.join("reports/KPB.xlsx"));
    let (_, city_wide) = read(&dir.join("reports/city-wide.xlsx"));
    let asks = |sheets: &Sheets, sheet: &str| {
        let (h, _) = table(sheets, sheet);
        FOLLOW_UP_INPUTS
            .iter()
            .all(|(name, _)| h.iter().any(|x| x == name))
    };
    assert!(asks(&unit, "異常查詢"));
    // The same accounts: asked once, on 異常查詢.
    assert!(!asks(&unit, "清冊外帳號"));
    for sheet in ["異常查詢", "清冊外帳號"] {
        let (h, _) = table(&city_wide, sheet);
        assert!(
            !h.iter().any(|x| x == "處理情形"),
            "city-wide {sheet}: {h:?}"
        );
    }
    let review = city.run(&["run", "account-review", "--as-of", "2026-07-02"]);
    let (_, sheets) = read(&review.join("reports/KSA.xlsx"));
    let (h, _) = table(&sheets, "帳號清查");
    for (name, _) in ACCOUNT_REVIEW_INPUTS {
        assert!(h.iter().any(|x| x == name), "帳號清查: no {name} in {h:?}");
    }
    // The account review has no 異常查詢: 清冊外帳號 asks there.
    let (_, kpb) = read(&review.join("reports/KPB.xlsx"));
    assert!(asks(&kpb, "清冊外帳號"));
}

/// On screen and on paper (issues 15, 28): the worksheet keeps its key
/// columns (to the account) frozen beside the inputs, and is laid out to
/// print one page wide with its header on every page (the render test
/// measures its type); a protected sheet still sorts and filters; the
/// page header names the sheet once; the sampling record has a page
/// setup.
#[test]
fn the_worksheet_reads_on_screen_and_prints_legibly() {
    let city = City::new();
    let dir = city.sample_audit();
    let path = dir.join("reports/DSM.xlsx");
    let (names, _) = read(&path);
    let index = |n: &str| names.iter().position(|x| x == n).unwrap() + 1;
    let sheet = xml(
        &path,
        &format!("xl/worksheets/sheet{}.xml", index("抽查工作底稿")),
    );
    assert!(
        sheet.contains(r#"<pane xSplit="2" ySplit="3""#),
        "key columns frozen"
    );
    assert!(
        sheet.contains(r#"sort="0""#) && sheet.contains(r#"autoFilter="0""#),
        "sorting allowed"
    );
    // Laid out to print one page wide at legible size (issue 28: it
    // printed in four column bands, the inputs 24 pages from the query).
    assert!(
        sheet.contains(r#"fitToHeight="0""#),
        "one page wide, as many pages long as it takes"
    );
    assert!(
        !sheet.contains("抽查工作底稿 抽查工作底稿"),
        "header names the sheet once"
    );
    let workbook = xml(&path, "xl/workbook.xml");
    assert!(
        workbook.contains("_xlnm.Print_Titles") && workbook.contains("抽查工作底稿!$3:$3"),
        "the header repeats on each page: {workbook}"
    );
    let summary = xml(&path, &format!("xl/worksheets/sheet{}.xml", index("摘要")));
    assert!(
        summary.contains("<rowBreaks"),
        "the charts print on a page of their own"
    );
    let record = xml(
        &path,
        &format!("xl/worksheets/sheet{}.xml", index("抽樣資訊")),
    );
    assert!(
        record.contains(r#"orientation="landscape""#),
        "sampling record page setup"
    );
}

/// Each unit's 抽樣資訊 shows its own population (issue 15), beside the
/// city's: the unit's records in `population.tsv`, and per agency `M`
/// adding up to it; the city-wide sheet's `M` add up to the city's.
#[test]
fn each_unit_s_sampling_sheet_counts_its_own_population() {
    let city = City::new();
    let dir = city.sample_audit();
    let population = std::fs::read_to_string(dir.join("population.tsv")).unwrap();
    let mut by_agency: BTreeMap<String, i64> = BTreeMap::new();
    for line in population.lines().skip(1) {
        *by_agency
            .entry(line.split('\t').nth(1).unwrap().to_owned())
            .or_default() += 1;
    }
    let total: i64 = by_agency.values().sum();
    let pair = |rows: &[Vec<Data>], label: &str| -> String {
        rows.iter()
            .find(|r| r.first().is_some_and(|c| text(c) == label))
            .map(|r| text(&r[1]))
            .unwrap_or_else(|| panic!("no {label}"))
    };
    // The strata block: `機關, 母體筆數 M, …` rows under its header.
    let strata_m = |rows: &[Vec<Data>]| -> i64 {
        let at = rows
            .iter()
            .position(|r| r.get(1).is_some_and(|c| text(c) == "母體筆數 M"))
            .expect("the strata header");
        rows[at + 1..]
            .iter()
            .take_while(|r| r.first().is_some_and(|c| !text(c).is_empty()))
            .map(|r| text(&r[1]).parse::<i64>().unwrap())
            .sum()
    };
    let mut units_seen = 0;
    for unit in city.config.agencies.units() {
        let path = dir.join(format!("reports/{}.xlsx", unit.id));
        let (_, sheets) = read(&path);
        let Some(rows) = sheets.get("抽樣資訊") else {
            continue;
        };
        let (ids, _) = city.subtree(&unit.id);
        let own: i64 = ids.iter().filter_map(|a| by_agency.get(a)).sum();
        assert_eq!(
            pair(rows, "母體筆數（貴機關）"),
            own.to_string(),
            "{}",
            unit.id
        );
        assert_eq!(pair(rows, "母體筆數（全市）"), total.to_string());
        assert_eq!(strata_m(rows), own, "{}: strata M", unit.id);
        units_seen += 1;
    }
    assert!(units_seen >= 5, "{units_seen}");
    let (_, sheets) = read(&dir.join("reports/city-wide.xlsx"));
    assert_eq!(strata_m(&sheets["抽樣資訊"]), total);
}

/// One decision per item (issue 28): a pattern of an account's queries
/// (an ineligible holder's, a departed one's, an account off the roster)
/// is one row of 異常查詢 to answer, its queries a line each on
/// 異常查詢明細; a query that is its own question (no form, a purpose the
/// unit lacks) keeps its row. Every query finding of the unit is shown
/// once, in one of the two.
#[test]
fn query_findings_roll_up_to_one_decision_per_account_pattern() {
    let city = City::new();
    let dir = city.sample_audit();
    let (_, sheets) = read(&dir.join("reports/KPB.xlsx"));
    let (h, rows) = table(&sheets, "異常查詢");
    let (what, account, why) = (column(&h, "說明"), column(&h, "帳號"), column(&h, "理由"));
    let (dh, details) = table(&sheets, "異常查詢明細");
    let (d_what, d_account) = (column(&dh, "異常類型"), column(&dh, "帳號"));
    let ineligible = webir_audit::checks::Code::QueryByIneligibleHolder.description();
    let rolled: Vec<&Vec<Data>> = rows
        .iter()
        .filter(|r| text(&r[what]) == ineligible && text(&r[account]) == "W20106")
        .collect();
    assert_eq!(rolled.len(), 1, "one decision for the account's pattern");
    let behind = details
        .iter()
        .filter(|r| text(&r[d_what]) == ineligible && text(&r[d_account]) == "W20106")
        .count();
    assert!(behind > 100, "{behind}");
    assert!(
        text(&rolled[0][why]).starts_with(&format!("共 {behind} 筆查詢")),
        "{:?}",
        rolled[0]
    );
    // Each (pattern, account) asked once.
    let mut asked = std::collections::BTreeSet::new();
    for r in rows {
        if text(&r[why]).starts_with("共 ") {
            assert!(asked.insert((text(&r[what]), text(&r[account]))), "{r:?}");
        }
    }
    // Every query finding of the unit, once.
    let findings = findings_of_unit(&dir, "KPB")
        .into_iter()
        .filter(|c| c.starts_with("QUERY_"))
        .count();
    let own_rows = rows
        .iter()
        .filter(|r| !text(&r[why]).starts_with("共 "))
        .count();
    assert_eq!(own_rows + details.len(), findings);
    assert!(
        rows.len() < findings / 3,
        "{} rows for {findings}",
        rows.len()
    );
}

/// A worksheet sent before the sign-off asked who audited and when once
/// (its rows ending in 稽核人員 and 稽核日期, no sign-off below) still
/// comes back filled in as it asked: those columns are its inputs, and
/// the auditor is recorded from them.
#[test]
fn a_worksheet_sent_before_the_sign_off_still_comes_back() {
    let city = City::new();
    let dir = city.sample_audit();
    let original = dir.join("reports/KPB.xlsx");
    // The archived original as the earlier version wrote it.
    let old = city.t.dir.path().join("old.xlsx");
    refill(&original, &old, |rows| {
        let n = 3 + table_rows(rows).len();
        rows.truncate(n);
        rows[2].push(Data::String("稽核人員".into()));
        rows[2].push(Data::String("稽核日期".into()));
    });
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&original, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::copy(&old, &original).unwrap();
    let done = city.t.dir.path().join("old-done.xlsx");
    refill(&original, &done, |rows| {
        let width = rows[2].len();
        for r in table_rows(rows).iter_mut() {
            answer(r, ["是", "是", "是", "無", ""]);
            r.resize(width, Data::Empty);
            r[width - 2] = Data::String("舊版稽核員".into());
            r[width - 1] = Data::String("2026/07/20".into());
        }
    });
    let out = city.ingest(&done);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let db = auditors_recorded(&city.t.dir.path().join("var/state/state.sqlite3"));
    assert_eq!(db, ["舊版稽核員"], "{db:?}");
}

/// No column of the city-wide 各單位 table is left blank (issue 28: the
/// external audit's left 使用中帳號, 抽樣帳號 and 涵蓋率 empty): a run
/// without a sample has no coverage columns, and every cell says something.
#[test]
fn the_city_wide_units_table_has_no_blank_column() {
    let city = City::new();
    let sample = city.sample_audit();
    let external = city.run_logs_short(&[
        "run",
        "external-audit",
        "--period",
        "2026",
        "--seed",
        "27182818284590452353602874",
    ]);
    // Each unit's accounts are one count in every city-wide workbook (the
    // external audit counted 96 where the others counted 97: it left out
    // the account only the log shows).
    let mut accounts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (dir, coverage) in [(sample, true), (external, false)] {
        let (_, sheets) = read(&dir.join("reports/city-wide.xlsx"));
        let (h, rows) = table(&sheets, "各單位");
        assert_eq!(h.iter().any(|x| x == "涵蓋率"), coverage, "{h:?}");
        // A run that checked accounts only says its counts are of accounts.
        assert_eq!(
            h.iter().any(|x| x.starts_with("帳號發現")),
            !coverage,
            "{h:?}"
        );
        for r in rows {
            accounts
                .entry(text(&r[0]))
                .or_default()
                .insert(text(&r[column(&h, "帳號數")]));
        }
        assert!(!rows.is_empty());
        for r in rows {
            for (c, name) in h.iter().enumerate() {
                assert!(
                    !text(r.get(c).unwrap_or(&Data::Empty)).is_empty(),
                    "{}: {name} blank in {r:?}",
                    dir.display()
                );
            }
        }
    }
    for (unit, n) in &accounts {
        assert_eq!(n.len(), 1, "{unit}: {n:?}");
    }
}

/// A critical finding is told urgently once, ever (issue 28: the year's
/// internal audit re-checks the half-year's queries and sent the same
/// urgent notices again): the sample audit tells each unit of its
/// critical findings; the internal audit and a query check of the same
/// queries find them again and tell nobody.
#[test]
fn a_critical_finding_is_told_urgently_once() {
    let city = City::new();
    let sample = city.sample_audit();
    let year = city.internal_audit_withheld();
    let check = city.run(&["run", "query-check", "--period", "2026H1"]);
    let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
    let urgent = |dir: &Path| {
        let run = dir.to_string_lossy().into_owned();
        store
            .outbox()
            .unwrap()
            .into_iter()
            .filter(|r| r.run == run && r.report.starts_with("critical:"))
            .count()
    };
    assert!(
        urgent(&sample) > 0,
        "the sample audit tells of its critical findings"
    );
    assert_eq!(urgent(&year), 0, "told already");
    assert_eq!(urgent(&check), 0, "told already");
    // Its critical findings are still in its findings and workbooks.
    assert!(
        std::fs::read_to_string(year.join("findings.csv"))
            .unwrap()
            .lines()
            .any(|l| l.split(',').nth(1) == Some("critical"))
    );
}

/// Issue 28: no officer audits their own account. The sampled rows of a
/// unit's officer accounts are not in the worksheet its officer gets;
/// they go, in a workbook of their own, to a second reviewer (the unit's
/// ethics unit), who returns it apart from the officer's.
#[test]
fn no_officer_reviews_their_own_account() {
    let city = City::new();
    let dir = city.sample_audit();
    let unit = officers_accounts_are_left_to_a_second_review(&city, &dir);
    let review = SecondReview::of(&city, &dir, &unit);
    review.goes_to_the_ethics_unit_and_the_officer_is_told();
    let done = review.the_reviewer_confirms_one_anomaly();
    review.the_officer_cannot_return_it(&done);
    let store = review.its_return_closes_it_and_the_ethics_unit_investigates(&done);
    review.a_careless_resend_opens_and_sends_nothing_twice(&done, store);
    review.a_return_cannot_move_itself_to_the_officer_s_worksheet(&done);
}

/// No unit's worksheet holds its officers' own accounts; those drawn are
/// in the unit's second review alone. Returns a unit with a second review
/// and an ethics unit.
fn officers_accounts_are_left_to_a_second_review(
    city: &City,
    dir: &Path,
) -> webir_audit::config::Agency {
    let ing = webir_audit::ingest::ingest(&city.config, None).unwrap();
    let roster = ing.table(webir_audit::model::Table::Roster);
    let accounts = roster.column("account_id").unwrap().str().unwrap().clone();
    let roles = roster.column("role").unwrap().str().unwrap().clone();
    let own: BTreeSet<&str> = accounts
        .iter()
        .zip(roles.iter())
        .filter(|(_, r)| matches!(r, Some("officer" | "chief_admin")))
        .filter_map(|(a, _)| a)
        .collect();
    let worksheet_accounts = |path: &Path| -> BTreeSet<String> {
        let (_, sheets) = read(path);
        let (h, rows) = table(&sheets, "抽查工作底稿");
        rows.iter()
            .map(|r| {
                text(&r[column(&h, "帳號")])
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let mut reviewed = Vec::new();
    for unit in city.config.agencies.units() {
        let officer = worksheet_accounts(&dir.join(format!("reports/{}.xlsx", unit.id)));
        let mine: Vec<&String> = officer
            .iter()
            .filter(|a| own.contains(a.as_str()))
            .collect();
        assert!(mine.is_empty(), "{}: the officer audits {mine:?}", unit.id);
        let review = dir.join(format!("reports/{}.second-review.xlsx", unit.id));
        if review.exists() {
            let theirs = worksheet_accounts(&review);
            assert!(
                theirs.iter().all(|a| own.contains(a.as_str())),
                "{}: {theirs:?}",
                unit.id
            );
            reviewed.push(unit.clone());
        }
    }
    // A unit whose officer's account was drawn, and its ethics unit.
    reviewed
        .iter()
        .find(|u| u.ethics_email.is_some())
        .expect("the sample city draws an officer's account of a unit with an ethics unit")
        .clone()
}

/// The second review of one unit's officers' accounts, in the sample
/// audit's run at `dir`.
struct SecondReview<'a> {
    city: &'a City,
    dir: &'a Path,
    id: String,
    /// The review's item key, `<unit>:review`.
    key: String,
    officer: String,
    ethics: String,
}

impl SecondReview<'_> {
    /// The second review of `unit`.
    fn of<'a>(
        city: &'a City,
        dir: &'a Path,
        unit: &webir_audit::config::Agency,
    ) -> SecondReview<'a> {
        let id = unit.id.clone();
        SecondReview {
            city,
            dir,
            key: format!("{id}:review"),
            id,
            officer: unit.officer_email.clone().unwrap(),
            ethics: unit.ethics_email.clone().unwrap(),
        }
    }

    /// It goes to the ethics unit, with a password of its own, as an item
    /// of its own; its officer is told it went there.
    fn goes_to_the_ethics_unit_and_the_officer_is_told(&self) {
        let (city, dir, id, key) = (self.city, self.dir, self.id.as_str(), &self.key);
        let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
        let sent: Vec<(String, String)> = store
            .outbox()
            .unwrap()
            .into_iter()
            .map(|r| (r.report, r.recipient))
            .collect();
        let to_review: Vec<&String> = sent
            .iter()
            .filter(|(r, _)| *r == format!("{id}.second-review.xlsx"))
            .map(|(_, to)| to)
            .collect();
        assert_eq!(to_review, [&self.ethics], "{sent:?}");
        let (_, sheets) = read(&dir.join(format!("reports/{id}.xlsx")));
        let summary: String = sheets["摘要"].iter().flatten().map(text).collect();
        assert!(
            summary.contains("不列入本表，另送貴機關政風單位覆核"),
            "{summary}"
        );
        let items = store.due_items().unwrap();
        let item = |unit: &str| {
            items
                .iter()
                .find(|i| i.unit_id == unit && i.job == "sample-audit")
                .unwrap_or_else(|| panic!("no item {unit}"))
        };
        assert_eq!(item(id).sent_to, self.officer);
        assert_eq!(item(key).sent_to, self.ethics);
        drop(store);
    }

    /// The reviewer fills in the review with one anomaly confirmed.
    fn the_reviewer_confirms_one_anomaly(&self) -> PathBuf {
        let done = self.city.t.dir.path().join("review-done.xlsx");
        refill(
            &self
                .dir
                .join(format!("reports/{}.second-review.xlsx", self.id)),
            &done,
            |rows| one_anomaly(rows, "政風室 林覆核"),
        );
        done
    }

    /// The officer cannot return it: sealed with the officer's own
    /// password, the review of their own accounts is refused.
    fn the_officer_cannot_return_it(&self, done: &Path) {
        let (city, id) = (self.city, self.id.as_str());
        let by_officer = city.t.dir.path().join("review-by-officer.xlsx");
        {
            let mut store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
            let bytes = webir_audit::mail::protect(
                &city.config,
                &mut store,
                id,
                webir_audit::mail::Role::Officer,
                &std::fs::read(done).unwrap(),
                "2026-07-10T09:00:00Z",
            )
            .unwrap()
            .bytes;
            std::fs::write(&by_officer, bytes).unwrap();
        }
        let out = city.ingest(&by_officer);
        assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(&format!("attachment password of {id}")),
            "{}",
            out.stderr
        );
    }

    /// The reviewer's return closes the review, not the officer's item, and
    /// the anomaly it confirms is investigated by the ethics unit, whose
    /// record comes back and is never sent to the officer. Returns the
    /// store it was read from, still open.
    fn its_return_closes_it_and_the_ethics_unit_investigates(
        &self,
        done: &Path,
    ) -> webir_audit::store::Store {
        let (city, id, key) = (self.city, self.id.as_str(), &self.key);
        let out = city.ingest(done);
        assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
        let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
        let items = store.due_items().unwrap();
        let closed = |unit: &str, job: &str| {
            items
                .iter()
                .find(|i| i.unit_id == unit && i.job == job)
                .map(|i| i.closed_at.is_some())
        };
        assert_eq!(closed(key, "sample-audit"), Some(true));
        assert_eq!(closed(id, "sample-audit"), Some(false));
        let investigation = items
            .iter()
            .find(|i| &i.unit_id == key && i.job == "investigation")
            .expect("an investigation of the confirmed anomaly");
        assert_eq!(investigation.sent_to, self.ethics);
        // Its investigation record (機關 …（<unit>:review）) comes back too.
        let record = webir_audit::archive::kept_file(
            &webir_audit::archive::RunFolder::parse(self.dir).unwrap(),
            key,
            webir_audit::worksheet::INVESTIGATION_FILE,
        )
        .expect("the review's investigation record is kept");
        let filled = city.t.dir.path().join("review-investigation.xlsx");
        refill_sheet(&record, &filled, "調查紀錄", |rows| {
            for r in table_rows(rows).iter_mut() {
                r.resize(11, Data::Empty);
                r[6] = Data::String("政風室王科員".into());
                r[7] = Data::String("經查係承辦人誤植目的".into());
                r[8] = Data::String("經查無異常".into());
                r[9] = Data::String("加強宣導".into());
            }
        });
        let back = city.ingest(&filled);
        assert!(back.status <= 1, "{}{}", back.stdout, back.stderr);
        let to_officer = store.outbox().unwrap().into_iter().any(|r| {
            r.report.starts_with(&format!("investigation:{key}")) && r.recipient == self.officer
        });
        assert!(
            !to_officer,
            "the officer is sent the investigation of their own account"
        );
        store
    }

    /// The same file again (a careless resend): nothing opened or sent
    /// twice. `store` is the one the last step read, still open.
    fn a_careless_resend_opens_and_sends_nothing_twice(
        &self,
        done: &Path,
        store: webir_audit::store::Store,
    ) {
        let (city, key) = (self.city, &self.key);
        let sent_before = store.outbox().unwrap().len();
        drop(store);
        let again = city.ingest(done);
        assert_eq!(again.status, 2, "{}{}", again.stdout, again.stderr);
        assert!(
            again.stderr.contains("the same file came back already"),
            "{}",
            again.stderr
        );
        let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
        let investigations = store
            .due_items()
            .unwrap()
            .into_iter()
            .filter(|i| &i.unit_id == key && i.job == "investigation")
            .count();
        assert_eq!(investigations, 1);
        let extra: Vec<String> = store
            .outbox()
            .unwrap()
            .into_iter()
            .skip(sent_before)
            .map(|m| format!("{} {}", m.report, m.recipient))
            .collect();
        assert!(extra.is_empty(), "{extra:?}");
        drop(store);
    }

    /// A return cannot move itself between the two worksheets: relabelled
    /// as the officer's, it is refused.
    fn a_return_cannot_move_itself_to_the_officer_s_worksheet(&self, done: &Path) {
        let moved = self.city.t.dir.path().join("review-moved.xlsx");
        refill_sheet(done, &moved, "摘要", |rows| {
            for r in rows.iter_mut() {
                if r.first()
                    .is_some_and(|c| text(c) == webir_audit::report::REVIEW_LABEL)
                {
                    r[1] = Data::String("專責人員".into());
                }
            }
        });
        let out = self.city.ingest(&moved);
        assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("not the workbook sent to"),
            "{}",
            out.stderr
        );
    }
}

/// Issue 29: a return proves its unit. Another unit's workbook made to
/// read as this one's, cell for cell (the trial relabelled DXA's 內部稽核
/// as DXB's, whose cells were alike, and closed DXB's item), is refused by
/// its token; the unit's own is taken.
#[test]
fn a_workbook_relabelled_as_another_unit_s_is_refused() {
    let city = City::new();
    let dir = city.sample_audit();
    let fill = |rows: &mut Vec<Vec<Data>>| {
        for r in table_rows(rows).iter_mut() {
            answer(r, ["是", "是", "是", "無", ""]);
        }
        sign(rows, "王稽核", "2026/07/20");
    };
    let forged = city.t.dir.path().join("forged.xlsx");
    refill_sheet_as(
        &dir.join("reports/KSA.xlsx"),
        &dir.join("reports/KPB.xlsx"),
        &forged,
        "抽查工作底稿",
        fill,
    );
    let out = city.ingest(&forged);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("not the workbook sent to KSA"),
        "{}",
        out.stderr
    );
    let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
    let run = dir.file_name().unwrap().to_str().unwrap();
    assert!(
        store.worksheet_returns(run).unwrap().is_empty(),
        "nothing recorded"
    );
    drop(store);
    let own = city.t.dir.path().join("own.xlsx");
    refill_sheet(&dir.join("reports/KSA.xlsx"), &own, "抽查工作底稿", fill);
    // Mailed encrypted, it comes back encrypted: a plain copy (an archive
    // reader's, an evidence export's) does not answer for the unit.
    let out = city.ingest_plain(&own);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("came unencrypted, but KSA's workbooks are mailed encrypted"),
        "{}",
        out.stderr
    );
    // Encrypted, it must open with its own unit's password: KSA's genuine
    // return sealed with the police's password is not KSA's answer.
    let sealed = |unit: &str| {
        let mut store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
        let bytes = webir_audit::mail::protect(
            &city.config,
            &mut store,
            unit,
            webir_audit::mail::Role::Officer,
            &std::fs::read(&own).unwrap(),
            "2026-07-10T09:00:00Z",
        )
        .unwrap()
        .bytes;
        let path = city.t.dir.path().join(format!("own-{unit}.xlsx"));
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let out = city.ingest(&sealed("KPB"));
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("attachment password of KPB"),
        "{}",
        out.stderr
    );
    let out = city.ingest(&sealed("KSA"));
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
    assert_eq!(
        store.worksheet_returns(run).unwrap().len(),
        1,
        "KSA's own, once"
    );
}

/// Issue 29: a 說明 of 32,767 characters was recorded as a return (the
/// internal audit then said 工作底稿已回傳) though its investigation record
/// could not be written and nothing was archived. It is refused before
/// anything is recorded, naming the cell.
#[test]
fn an_answer_too_long_to_quote_is_refused_before_anything_is_recorded() {
    let city = City::new();
    let dir = city.sample_audit();
    let long = city.t.dir.path().join("long.xlsx");
    refill_sheet(
        &dir.join("reports/KPB.xlsx"),
        &long,
        "抽查工作底稿",
        |rows| {
            for (i, r) in table_rows(rows).iter_mut().enumerate() {
                if i == 0 {
                    answer(r, ["是", "否", "是", "有", &"說".repeat(32_767)]);
                } else {
                    answer(r, ["是", "是", "是", "無", ""]);
                }
            }
            sign(rows, "王稽核", "2026/07/20");
        },
    );
    let out = city.ingest(&long);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("row 4, 說明: 32767 characters"),
        "{}",
        out.stderr
    );
    city.assert_nothing_taken(&dir);
}

/// Issue 29: a return with a formula in any cell (the trial put a
/// HYPERLINK behind a masked ID, cached as the ID as sent, so every cell
/// read as sent and the link was archived live) or with macros (a VBA
/// project) is refused, naming the cell; nothing is recorded or kept.
/// The same answers typed as values are taken.
#[test]
fn a_return_with_a_formula_or_macros_is_refused_and_nothing_recorded() {
    let city = City::new();
    let dir = city.sample_audit();
    let run = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let sent = dir.join("reports/KPB.xlsx");
    let fill = |rows: &mut Vec<Vec<Data>>| {
        for r in table_rows(rows).iter_mut() {
            answer(r, ["是", "是", "是", "無", ""]);
        }
        sign(rows, "王稽核", "2026/07/20");
    };
    let (_, sheets) = read(&sent);
    let (header, rows) = table(&sheets, "抽查工作底稿");
    let who = column(&header, "被查詢人");
    let shows = text(&rows[0][who]);
    assert!(shows.contains('*'), "masked as sent: {shows}");
    let linked = city.t.dir.path().join("linked.xlsx");
    let link = format!("HYPERLINK(\"http://evil.example/\",\"{shows}\")");
    refill_sheet_with_formula(
        &sent,
        &linked,
        "抽查工作底稿",
        fill,
        (3, who as u16, &link, &shows),
    );
    let out = city.ingest(&linked);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("sheet 抽查工作底稿, cell E4 holds a formula"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("evil.example"),
        "not quoted: {}",
        out.stderr
    );
    let done = city.t.dir.path().join("done.xlsx");
    refill_sheet(&sent, &done, "抽查工作底稿", fill);
    let macros = city.t.dir.path().join("macros.xlsx");
    with_member(
        &done,
        &macros,
        "xl/vbaProject.bin",
        b"\xD0\xCF\x11\xE0 Sub AutoOpen()",
    );
    let out = city.ingest(&macros);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("holds macros"), "{}", out.stderr);
    city.assert_nothing_taken(&dir);
    let store = || webir_audit::store::Store::open(&city.config.paths.state).unwrap();
    let out = city.ingest(&done);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(store().worksheet_returns(&run).unwrap().len(), 1);
}

/// Issue 29: what a return records — its answers, its item closed, the
/// ethics unit's notice, the investigation it opens, the file counted as
/// taken — is one transaction. The last write failing (here a trigger
/// standing in for a full disk) leaves none of the others; the same file
/// sent again is taken whole, once.
#[test]
fn a_return_whose_last_write_fails_records_none_of_it() {
    let city = City::new();
    let dir = city.sample_audit();
    let run = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let done = city.t.dir.path().join("done.xlsx");
    refill_sheet(
        &dir.join("reports/KPB.xlsx"),
        &done,
        "抽查工作底稿",
        |rows| {
            for (i, r) in table_rows(rows).iter_mut().enumerate() {
                if i == 0 {
                    answer(r, ["是", "否", "是", "有", "未經主管核可即查詢"]);
                } else {
                    answer(r, ["是", "是", "是", "無", ""]);
                }
            }
            sign(rows, "王稽核", "2026/07/20");
        },
    );
    let state = &city.config.paths.state;
    let store = || webir_audit::store::Store::open(state).unwrap();
    let (items, mails) = (
        store().due_items().unwrap(),
        store().outbox().unwrap().len(),
    );
    let db = rusqlite::Connection::open(state.join("state.sqlite3")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER full_disk BEFORE INSERT ON returns_taken \
         BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    )
    .unwrap();
    let out = city.ingest(&done);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("disk is full"), "{}", out.stderr);
    assert!(
        store().worksheet_returns(&run).unwrap().is_empty(),
        "no answers"
    );
    assert_eq!(
        store().due_items().unwrap(),
        items,
        "no item closed or opened"
    );
    assert_eq!(store().outbox().unwrap().len(), mails, "no notice queued");
    db.execute_batch("DROP TRIGGER full_disk").unwrap();
    let out = city.ingest(&done);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(store().worksheet_returns(&run).unwrap().len(), 1);
    let investigations = store()
        .due_items()
        .unwrap()
        .into_iter()
        .filter(|i| i.job == "investigation" && i.unit_id == "KPB")
        .count();
    assert_eq!(investigations, 1, "one investigation opened");
    assert!(
        store().outbox().unwrap().len() > mails,
        "the notices queued"
    );
}

/// Issue 30: a national ID typed into free text (a returned worksheet's
/// 說明, in ASCII and in full-width letters and digits) reaches no mail and
/// no workbook whole: the investigation record, the ethics unit's notice
/// and every other message show it masked. Only the return as received,
/// kept in the archive, holds it.
#[test]
fn a_national_id_typed_into_an_answer_is_masked_wherever_it_is_shown() {
    let city = City::new();
    let dir = city.sample_audit();
    let done = city.t.dir.path().join("done.xlsx");
    refill_sheet(
        &dir.join("reports/KPB.xlsx"),
        &done,
        "抽查工作底稿",
        |rows| {
            for (i, r) in table_rows(rows).iter_mut().enumerate() {
                if i == 0 {
                    answer(
                        r,
                        [
                            "是",
                            "否",
                            "是",
                            "有",
                            "對象A123456789與Ｆ２２８６５４３２１係同一案",
                        ],
                    );
                } else {
                    answer(r, ["是", "是", "是", "無", ""]);
                }
            }
            sign(rows, "王稽核", "2026/07/20");
        },
    );
    let out = city.ingest(&done);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    let whole = |s: &str| s.contains("A123456789") || s.contains("Ｆ２２８６５４３２１");
    assert!(!whole(&out.stdout) && !whole(&out.stderr));
    let mails = crate::harness::mail::parse_all(&city.config.paths.state.join("outbox-files"));
    assert!(
        mails.iter().any(|m| m.text.contains("A12****789")),
        "the ethics unit's notice quotes the answer, masked"
    );
    for m in &mails {
        assert!(
            !whole(&m.text) && !whole(&m.subject),
            "{}: {}",
            m.subject,
            m.text
        );
    }
    let record = webir_audit::archive::kept_file(
        &webir_audit::archive::RunFolder::parse(&dir).unwrap(),
        "KPB",
        webir_audit::worksheet::INVESTIGATION_FILE,
    )
    .expect("the investigation record is kept");
    let (_, sheets) = read(&record);
    let cells: Vec<String> = sheets.values().flatten().flatten().map(text).collect();
    assert!(
        cells.iter().any(|c| c.contains("A12****789")),
        "quoted, masked"
    );
    assert!(!cells.iter().any(|c| whole(c)), "{cells:?}");
}

/// `from` with one more zip member `name`: what saving as .xlsm adds.
fn with_member(from: &Path, to: &Path, name: &str, bytes: &[u8]) {
    use std::io::Write as _;
    let mut zin = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut z = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    for i in 0..zin.len() {
        z.raw_copy_file(zin.by_index_raw(i).unwrap()).unwrap();
    }
    z.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(bytes).unwrap();
    z.finish().unwrap();
}

/// Issue 29: a return is recorded only once it is taken whole. Where it
/// cannot be kept (the archive's returns folder cannot be made), nothing
/// of it is recorded, and the same file sent again once the archive is
/// fixed is taken, not refused as a duplicate.
#[test]
fn a_return_that_cannot_be_kept_records_nothing_and_comes_back_later() {
    let city = City::new();
    let dir = city.sample_audit();
    let run = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let done = city.t.dir.path().join("done.xlsx");
    refill_sheet(
        &dir.join("reports/KSA.xlsx"),
        &done,
        "抽查工作底稿",
        |rows| {
            for r in table_rows(rows).iter_mut() {
                answer(r, ["是", "是", "是", "無", ""]);
            }
            sign(rows, "王稽核", "2026/07/20");
        },
    );
    // A file where the returns folder goes: keeping fails.
    let returns = dir.parent().unwrap().parent().unwrap().join("returns");
    std::fs::write(&returns, "in the way").unwrap();
    let out = city.ingest(&done);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    let store = || webir_audit::store::Store::open(&city.config.paths.state).unwrap();
    assert!(
        store().worksheet_returns(&run).unwrap().is_empty(),
        "nothing recorded"
    );
    std::fs::remove_file(&returns).unwrap();
    let out = city.ingest(&done);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(store().worksheet_returns(&run).unwrap().len(), 1);
}

/// A second review nobody can be sent (the unit has no ethics unit and
/// its officer is the chief administrator) is not dropped silently: the
/// admin is told which workbook waits for a reviewer, and nobody whose
/// account is in it is sent it.
#[test]
fn a_second_review_without_a_reviewer_is_told_to_the_admin() {
    let city = City::new();
    let register = city.t.dir.path().join("city/agencies.xlsx");
    crate::harness::set_in_register(&register, "DTY", "政風單位信箱", "");
    crate::harness::set_in_register(&register, "DTY", "專責人員信箱", "chief.khb@example.gov.tw");
    let dir = city.sample_audit();
    assert!(dir.join("reports/DTY.second-review.xlsx").exists());
    let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
    let outbox = store.outbox().unwrap();
    let review: Vec<&str> = outbox
        .iter()
        .filter(|r| r.report == "DTY.second-review.xlsx")
        .map(|r| r.recipient.as_str())
        .collect();
    assert!(review.is_empty(), "{review:?}");
    let told: Vec<_> = outbox
        .iter()
        .filter(|r| r.report == "no-reviewer:DTY:review")
        .collect();
    assert_eq!(told.len(), 1, "the admin is told once");
    assert_eq!(told[0].recipient, "admin@example.gov.tw");
    assert!(told[0].subject.contains("無覆核人"), "{}", told[0].subject);
}

/// Issue 28: one roster, one count of stale passwords. A roster of July
/// says nothing of a change after July, so the year's internal audit in
/// January (the same roster) finds exactly the accounts the July review
/// found (it found 89 where the review found 2, judging July's passwords
/// as of December).
#[test]
fn stale_passwords_are_judged_as_of_the_roster_that_shows_them() {
    let city = City::new();
    let stale = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_to_string(dir.join("findings.csv"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("ACCOUNT_PASSWORD_STALE,"))
            .map(|l| l.split(',').nth(4).unwrap().to_owned())
            .collect()
    };
    let review = city.run(&["run", "account-review", "--as-of", "2026-07-02"]);
    let audit = city.internal_audit_withheld();
    let (a, b) = (stale(&review), stale(&audit));
    assert!(!a.is_empty());
    assert_eq!(a, b);
    // Each says as of which day: the roster's.
    let findings = std::fs::read_to_string(audit.join("findings.csv")).unwrap();
    assert!(
        findings
            .lines()
            .filter(|l| l.starts_with("ACCOUNT_PASSWORD_STALE,"))
            .all(|l| l.contains("至 2026-07-02（帳號清冊所示）已逾 90 日")),
        "{findings}"
    );
}

/// Issue 28: the quarterly password check (point 5(3)) is a notice of its
/// own, 密碼定期更換: written only to the units with an overdue password,
/// only about those accounts, asking nothing back (it mailed every unit a
/// whole 帳號清查 to fill in, with reminders, four times a year).
#[test]
fn the_password_check_tells_only_the_units_with_overdue_passwords() {
    let city = City::new();
    let dir = city.run(&["run", "password-check", "--as-of", "2026-09-30"]);
    assert!(
        dir.parent().unwrap().ends_with("password-check"),
        "{}",
        dir.display()
    );
    let findings = std::fs::read_to_string(dir.join("findings.csv")).unwrap();
    let mut stale: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in findings.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f[0], "ACCOUNT_PASSWORD_STALE", "only passwords: {l}");
        stale
            .entry(f[2].to_owned())
            .or_default()
            .insert(f[4].to_owned());
    }
    assert!(!stale.is_empty());
    let mut books: BTreeSet<String> = std::fs::read_dir(dir.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(books.remove("city-wide.xlsx"));
    let units: BTreeSet<String> = stale.keys().map(|u| format!("{u}.xlsx")).collect();
    assert_eq!(
        books, units,
        "a workbook for each unit with an overdue password, no other"
    );
    for (unit, accounts) in &stale {
        let (names, sheets) = read(&dir.join(format!("reports/{unit}.xlsx")));
        assert!(names.contains(&"密碼逾期帳號".to_owned()), "{names:?}");
        assert!(!names.contains(&"帳號清查".to_owned()), "{names:?}");
        let (h, rows) = table(&sheets, "密碼逾期帳號");
        let listed: BTreeSet<String> = rows.iter().map(|r| text(&r[column(&h, "帳號")])).collect();
        assert_eq!(&listed, accounts, "{unit}");
        let summary: String = sheets["摘要"].iter().flatten().map(text).collect();
        assert!(
            summary.contains("密碼定期更換") && summary.contains("無須填寫或回傳"),
            "{summary}"
        );
    }
    // Nothing to return, nothing to chase; each unit's officer told once,
    // under the notice's own name.
    let store = webir_audit::store::Store::open(&city.config.paths.state).unwrap();
    assert!(store.due_items().unwrap().is_empty());
    let sent = store.outbox().unwrap();
    for unit in city.config.agencies.units() {
        let to_officer: Vec<_> = sent
            .iter()
            .filter(|m| Some(&m.recipient) == unit.officer_email.as_ref())
            .collect();
        let expected = usize::from(stale.contains_key(&unit.id));
        assert_eq!(to_officer.len(), expected, "{}", unit.id);
        for m in to_officer {
            assert!(m.subject.contains("密碼定期更換"), "{}", m.subject);
        }
    }
}

/// Issue 28: what a workbook asked is not asked again. The year's
/// internal audit re-checks the half-year's queries; those the sample
/// audit's 異常查詢 already asked the unit about are listed on
/// 已列管異常查詢 with where they were asked, without the follow-up
/// columns, and 異常查詢 asks only the rest.
#[test]
fn the_internal_audit_does_not_ask_again_what_the_sample_audit_asked() {
    let mut kpb = Asked::the_police_answer_the_first_of_their_query_findings();
    kpb.a_return_that_changes_a_finding_is_refused();
    kpb.the_answer_is_taken_and_the_year_s_internal_audit_runs();
    let (mut listed, mut replied) = (0, 0);
    for unit in ["KPB", "KHB", "KSA"] {
        let Some(sheets) = kpb.what_was_asked_already_is_listed_apart(unit) else {
            continue;
        };
        replied += kpb.each_listed_finding_shows_the_unit_s_reply_or_none(unit, &sheets);
        kpb.only_the_rest_is_asked_and_nothing_points_to_a_row_gone(unit, &sheets);
        listed += 1;
    }
    assert!(listed > 0);
    assert_eq!(
        replied, 1,
        "the police's answer is shown where it was asked"
    );
    kpb.the_ethics_unit_still_gets_the_internal_audit();
}

/// The sample audit, KPB's answered return, and the year's internal audit.
struct Asked {
    city: City,
    sample: PathBuf,
    /// KPB's worksheet, signed, with the first query finding answered.
    done: PathBuf,
    /// The first query finding's 說明 and 帳號.
    first: (String, String),
    audit: PathBuf,
}

impl Asked {
    /// The police sign their worksheet, and say what they did about the
    /// first of their query findings.
    fn the_police_answer_the_first_of_their_query_findings() -> Asked {
        let city = City::new();
        let sample = city.sample_audit();
        let signed = city.t.dir.path().join("KPB-signed.xlsx");
        refill(&sample.join("reports/KPB.xlsx"), &signed, |rows| {
            for r in table_rows(rows).iter_mut() {
                answer(r, ["是", "是", "是", "無", ""]);
            }
            sign(rows, "王稽核", "2026/07/20");
        });
        let done = city.t.dir.path().join("KPB-done.xlsx");
        let first = std::cell::RefCell::new((String::new(), String::new()));
        refill_sheet(&signed, &done, "異常查詢", |rows| {
            let h: Vec<String> = rows[2].iter().map(text).collect();
            let r = &mut table_rows(rows)[0];
            *first.borrow_mut() = (text(&r[column(&h, "說明")]), text(&r[column(&h, "帳號")]));
            r.resize(h.len(), Data::Empty);
            r[column(&h, "處理情形")] = Data::String("已查明並補正紀錄表".into());
            r[column(&h, "完成日")] = Data::String("2026/07/25".into());
        });
        let first = first.into_inner();
        Asked {
            city,
            sample,
            done,
            first,
            audit: PathBuf::new(),
        }
    }

    /// The finding itself may not be changed: such a return is refused,
    /// and nothing of it recorded.
    fn a_return_that_changes_a_finding_is_refused(&self) {
        let forged = self.city.t.dir.path().join("KPB-forged.xlsx");
        refill_sheet(&self.done, &forged, "異常查詢", |rows| {
            let h: Vec<String> = rows[2].iter().map(text).collect();
            table_rows(rows)[0][column(&h, "理由")] = Data::String("無異常".into());
        });
        let out = self.city.ingest(&forged);
        assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("異常查詢") && out.stderr.contains("理由"),
            "{}",
            out.stderr
        );
    }

    /// The answered return is taken; the year's internal audit runs.
    fn the_answer_is_taken_and_the_year_s_internal_audit_runs(&mut self) {
        let out = self.city.ingest(&self.done);
        assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
        self.audit = self.city.internal_audit_withheld();
    }

    /// The query findings the sample audit asked `unit` about and the
    /// internal audit finds again are listed on 已列管異常查詢, without
    /// the follow-up columns, with where they were first asked; returns
    /// the unit's sheets, or none when nothing was found again.
    fn what_was_asked_already_is_listed_apart(&self, unit: &str) -> Option<Sheets> {
        let before: BTreeSet<String> = query_finding_keys(&self.sample, unit).into_iter().collect();
        let again = query_finding_keys(&self.audit, unit)
            .into_iter()
            .filter(|k| before.contains(k))
            .count();
        let (names, sheets) = read(&self.audit.join(format!("reports/{unit}.xlsx")));
        if again == 0 {
            assert!(!names.contains(&"已列管異常查詢".to_owned()), "{unit}");
            return None;
        }
        let (h, rows) = table(&sheets, "已列管異常查詢");
        assert!(!h.contains(&"處理情形".to_owned()), "{h:?}");
        let n: f64 = rows
            .iter()
            .map(|r| match r[column(&h, "件數")] {
                Data::Float(n) => n,
                _ => 0.0,
            })
            .sum();
        assert_eq!(n as usize, again, "{unit}");
        assert!(
            rows.iter()
                .all(|r| text(&r[column(&h, "首次詢問")]).starts_with("2026H1 抽查工作底稿"))
        );
        Some(sheets)
    }

    /// What the unit answered there is shown; nothing else is made up.
    /// Returns how many answers were shown.
    fn each_listed_finding_shows_the_unit_s_reply_or_none(
        &self,
        unit: &str,
        sheets: &Sheets,
    ) -> usize {
        let (h, rows) = table(sheets, "已列管異常查詢");
        let mut replied = 0;
        for r in rows {
            let reply = text(&r[column(&h, "回覆")]);
            let key = (text(&r[column(&h, "說明")]), text(&r[column(&h, "帳號")]));
            if unit == "KPB" && key == self.first {
                assert!(
                    reply.starts_with("已查明並補正紀錄表（完成日 2026/07/25"),
                    "{reply}"
                );
                replied += 1;
            } else {
                assert_eq!(reply, "尚未回覆", "{unit} {key:?}");
            }
        }
        replied
    }

    /// 異常查詢 asks fewer than the sample audit asked; no action points
    /// to a row it no longer has, and no state is in English.
    fn only_the_rest_is_asked_and_nothing_points_to_a_row_gone(&self, unit: &str, sheets: &Sheets) {
        let sample_sheet = |unit: &str| {
            let (_, sheets) = read(&self.sample.join(format!("reports/{unit}.xlsx")));
            table(&sheets, "異常查詢").1.len()
        };
        // 異常查詢 asks fewer than the sample audit asked.
        assert!(
            table(sheets, "異常查詢").1.len() < sample_sheet(unit),
            "{unit}"
        );
        // No action points to a row 異常查詢 no longer has; no state in
        // English.
        let summary: Vec<String> = sheets["摘要"].iter().flatten().map(text).collect();
        let unrostered = webir_audit::checks::Code::QueryByUnrosteredAccount.description();
        let asked_here = table(sheets, "異常查詢")
            .1
            .iter()
            .any(|r| r.iter().any(|c| text(c) == unrostered));
        if !asked_here {
            assert!(
                !summary
                    .iter()
                    .any(|l| l.contains(&format!("「異常查詢」之「{unrostered}」列"))),
                "{unit}: {summary:?}"
            );
        }
        let evidence: String = sheets["內部稽核"].iter().flatten().map(text).collect();
        assert!(
            !["pending", "sent", "failed", "unknown"]
                .iter()
                .any(|w| evidence.contains(w)),
            "{unit}: {evidence}"
        );
    }

    /// The ethics unit, which investigates with the unit (6(3)), still gets
    /// the internal audit while serious anomalies stand, asked or not.
    fn the_ethics_unit_still_gets_the_internal_audit(&self) {
        let store = webir_audit::store::Store::open(&self.city.config.paths.state).unwrap();
        let run = self.audit.display().to_string();
        assert!(
            store.outbox().unwrap().iter().any(|m| m.run == run
                && m.report == "KPB.xlsx"
                && m.recipient == "ethics.kpb@example.gov.tw"),
            "the ethics unit is sent KPB's internal audit"
        );
    }
}

/// Query findings of run `dir` by key (code|account|subject|time), for
/// `unit`.
fn query_finding_keys(dir: &Path, unit: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join("findings.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split(',').collect();
            webir_audit::checks::Code::parse(f[0])
                .is_some_and(|c| c.scope() == webir_audit::checks::Scope::Queries)
                && f[2] == unit
        })
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            [f[0], f[4], f[6], f[7]].join("|")
        })
        .collect()
}

/// Issue 34's review: 異常查詢 lists at most
/// `ROWS_SHOWN_PER_CODE` (5,000) findings of a kind asked one by one. The
/// year's internal audit took every finding in the run's `findings.csv` as
/// asked already, the ones no sheet listed too, so those were never asked.
/// Five of DSM's accounts query the same 1,001 people: the query check
/// lists 5,000 of the findings, and the internal audit lists those as
/// asked and asks the rest.
#[test]
fn the_internal_audit_asks_what_a_capped_sheet_did_not_list() {
    const MANY: &str = "QUERY_SUBJECT_MANY_ACCOUNTS";
    const SAID: &str = "同一對象遭多個帳號查詢";
    let city = City::new();
    let mut csv =
        String::from("帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關代碼,來源IP\n");
    for (day, account) in ["W20252", "W20261", "W20265", "W20264", "W20249"]
        .iter()
        .enumerate()
    {
        for s in 0..1001 {
            csv.push_str(&format!(
                "{account},2026-03-{:02} 09:{:02}:{:02},投保單位資料,Z1{s:08},military_service,成功,DSM,10.33.3.33\n",
                2 + day,
                s / 60,
                s % 60
            ));
        }
    }
    let log = city
        .t
        .city_path("inbox/query_logs/webir_querylog_202603_extra.csv");
    std::fs::write(&log, csv).unwrap();
    crate::harness::written_at(&log, crate::harness::FILE_TIME);
    let check = city.run(&["run", "query-check", "--period", "2026H1"]);
    // DSM's findings of the kind, in all.
    let findings = std::fs::read_to_string(check.join("findings.csv")).unwrap();
    let total = findings
        .lines()
        .filter(|l| l.starts_with(MANY) && l.split(',').nth(2) == Some("DSM"))
        .count();
    assert!(total > 5_000, "{total}");
    // The rows of the kind on a sheet, or with `count` the sum of a
    // column of theirs (已列管異常查詢 has a row per account, its 件數).
    let rows_of = |book: &Path, sheet: &str, count: Option<&str>| -> usize {
        let (_, sheets) = crate::harness::workbook::read(book);
        let Some(rows) = sheets.get(sheet) else {
            return 0;
        };
        let said = crate::harness::workbook::table_column(rows, "說明");
        let n = count.map(|c| crate::harness::workbook::table_column(rows, c));
        rows.iter()
            .skip(3)
            .filter(|r| text(&r[said]) == SAID)
            .map(|r| n.map_or(1, |n| text(&r[n]).parse::<usize>().unwrap()))
            .sum()
    };
    let listed = rows_of(&check.join("reports/DSM.xlsx"), "異常查詢", None);
    assert_eq!(listed, 5_000);
    let audit = city.internal_audit_withheld();
    let book = audit.join("reports/DSM.xlsx");
    assert_eq!(
        rows_of(&book, "已列管異常查詢", Some("件數")),
        listed,
        "what was listed was asked"
    );
    assert_eq!(
        rows_of(&book, "異常查詢", None),
        total - listed,
        "the rest is asked now"
    );
}
