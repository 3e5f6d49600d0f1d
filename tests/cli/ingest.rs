//! Ingest of the exports agencies really produce, and of broken ones.

use polars::prelude::*;
use webir_audit::ingest::FileStatus;
use webir_audit::model::Table;

use crate::harness::Test;

const HEADER: &str = "帳號,查詢時間,查詢項目,身分證號,查詢結果,機關,來源IP";

fn strings(df: &DataFrame, column: &str) -> Vec<String> {
    let c = df.column(column).unwrap().cast(&DataType::String).unwrap();
    c.str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or("<null>").to_owned())
        .collect()
}

fn xlsx_query_log() -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "高雄市政府 健保WebIR 查詢紀錄")
        .unwrap();
    ws.write_string(1, 0, "列印日期：115/07/02").unwrap();
    for (c, h) in [
        "使用者代號",
        "查詢日期時間",
        "查詢項目",
        "被查詢人身分證號",
        "結果",
        "查詢機關",
        "IP位址",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(3, c as u16, *h).unwrap();
    }
    let fmt = rust_xlsxwriter::Format::new().set_num_format("yyyy/mm/dd hh:mm:ss");
    let dt = rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 6, 3)
        .unwrap()
        .and_hms(9, 5, 7)
        .unwrap();
    ws.write_number(4, 0, 20001.0).unwrap();
    ws.write_datetime_with_format(4, 1, &dt, &fmt).unwrap();
    ws.write_string(4, 2, "投保資料").unwrap();
    ws.write_string(4, 3, "E123456789").unwrap();
    ws.write_string(4, 4, "成功").unwrap();
    ws.write_string(4, 5, "第一分局").unwrap();
    ws.write_string(4, 6, "10.0.0.9").unwrap();
    ws.write_string(5, 0, "總計：1 筆").unwrap();
    wb.save_to_buffer().unwrap()
}

/// Every supported export shape in one inbox: UTF-8 with BOM and CRLF,
/// Big5 with title rows and ROC dates, tab separated, XLSX with a title
/// row and native date cells, XLS, and ODS read from a named sheet.
#[test]
fn every_export_shape_lands_in_the_canonical_tables() {
    let t = Test::new()
        .config("\n[[inputs]]\npattern = \"hr/*.ods\"\nsheet = \"人員\"\n")
        .file(
            "inbox/query_logs/a_utf8_bom.csv",
            format!("\u{FEFF}{HEADER}\r\nu001,2026-01-05 09:12:33,投保資料,a123456789,成功,KHB,10.0.0.1\r\n"),
        )
        .big5(
            "inbox/query_logs/b_big5.csv",
            &format!("高雄市政府衛生局 WebIR 查詢紀錄\r\n列印日期：115/07/02\r\n{HEADER}\r\nu002,115/04/03 14:22:10,投保資料,B223456789,失敗,衛生局,10.0.0.2\r\n合計,1 筆,,,,,\r\n"),
        )
        .file(
            "inbox/query_logs/c_tab.txt",
            format!("{}\nu003\t2026/5/6 下午 02:03:04\t投保資料\tC123456789\tS\t警察局\t10.0.0.3\n", HEADER.replace(',', "\t")),
        )
        .file("inbox/query_logs/d.xlsx", xlsx_query_log())
        .fixture("inbox/roster/roster.xls", "roster.xls")
        .fixture("inbox/hr/hr.ods", "hr.ods");
    let ing = t.load();

    let q = ing.table(Table::QueryLog);
    assert_eq!(strings(q, "account_id"), ["u001", "u002", "u003", "20001"]);
    assert_eq!(
        strings(q, "queried_at"),
        [
            "2026-01-05 09:12:33.000000",
            "2026-04-03 14:22:10.000000",
            "2026-05-06 14:03:04.000000",
            "2026-06-03 09:05:07.000000"
        ]
    );
    assert_eq!(
        strings(q, "subject_id"),
        ["A123456789", "B223456789", "C123456789", "E123456789"]
    );
    assert_eq!(
        strings(q, "result"),
        ["success", "failure", "success", "success"]
    );
    assert_eq!(strings(q, "agency_id"), ["KHB", "KHB", "KPB", "KPB-1"]);
    assert_eq!(strings(q, "purpose"), ["<null>"; 4]);
    // Rows point to the line or sheet row a person would open.
    assert_eq!(strings(q, "source_row"), ["2", "4", "2", "5"]);
    assert_eq!(
        strings(q, "source_file"),
        [
            "query_logs/a_utf8_bom.csv",
            "query_logs/b_big5.csv",
            "query_logs/c_tab.txt",
            "query_logs/d.xlsx"
        ]
    );

    let r = ing.table(Table::Roster);
    assert_eq!(strings(r, "account_id"), ["20001", "W20002", "W20003"]);
    assert_eq!(
        strings(r, "created_on"),
        ["2024-03-01", "2023-08-17", "2025-01-05"]
    );
    assert_eq!(
        strings(r, "last_password_change"),
        ["2026-03-02", "<null>", "2026-04-02"]
    );
    assert_eq!(
        strings(r, "employment_type"),
        ["permanent", "contract", "labourer"]
    );
    assert_eq!(strings(r, "status"), ["active", "disabled", "active"]);
    assert_eq!(
        strings(r, "role"),
        ["officer", "business_user", "business_user"]
    );

    // The ODS's third person has an impossible date: rejected, not dropped.
    let h = ing.table(Table::Hr);
    assert_eq!(strings(h, "person_id"), ["P10001", "P10002"]);
    assert_eq!(strings(h, "effective_date"), ["2023-08-17", "2026-03-10"]);
    assert_eq!(strings(h, "status"), ["active", "departed"]);
    assert_eq!(strings(&ing.rejects, "source_file"), ["hr/hr.ods"]);
    assert_eq!(strings(&ing.rejects, "sheet"), ["人員"]);
    assert_eq!(strings(&ing.rejects, "source_row"), ["4"]);
    let reason = &strings(&ing.rejects, "reason")[0];
    assert!(
        reason.contains(
            "column \"生效日期\" (effective_date): \"13/45/2020\" cannot be read as a date"
        ),
        "{reason}"
    );

    let by_path = |p: &str| ing.files.iter().find(|f| f.path == p).unwrap();
    assert_eq!(by_path("query_logs/b_big5.csv").encoding, "big5");
    assert_eq!(
        by_path("query_logs/b_big5.csv").rows_skipped,
        1,
        "the 合計 footer"
    );
    assert_eq!(by_path("query_logs/a_utf8_bom.csv").encoding, "utf-8 (BOM)");
    assert_eq!(
        by_path("query_logs/d.xlsx").rows_skipped,
        1,
        "the 總計 footer"
    );
    assert_eq!(by_path("roster/roster.xls").rows_skipped, 1);
    assert_eq!(by_path("hr/hr.ods").sheet.as_deref(), Some("人員"));
    assert!(
        ing.files
            .iter()
            .all(|f| f.status == FileStatus::Loaded && f.sha256.len() == 64)
    );
}

#[test]
fn bad_cells_are_rejected_with_file_row_column_and_raw_value() {
    let t = Test::new().file(
        "inbox/query_logs/q.csv",
        format!(
            "{HEADER}\n\
             u001,2026-01-05 09:12:33,投保資料,A123456789,成功,KHB,10.0.0.1\n\
             u002,2026/02/30 10:00,投保資料,A123456789,成功,KHB,10.0.0.1\n\
             u003,2026-01-05 09:12:33,投保資料,A12,成功,高雄市政府環保局,10.0.0.1\n\
             ,2026-01-05 09:12:33,投保資料,A123456789,也許,KHB,10.0.0.1\n\
             u005,2026-01-06 10:00:00,投保資料,A123456789,成功,KHB,10.0.0.1\n"
        ),
    );
    let out = t.run(&["ingest"]);
    assert_eq!(
        out.status, 2,
        "rejected rows make the exit status 2\n{}",
        out.stdout
    );
    let expect = [
        "3 row(s) rejected:",
        "query_logs/q.csv row 3: column \"查詢時間\" (queried_at): \"2026/02/30 10:00\" cannot be read as a date and time",
        "query_logs/q.csv row 4: column \"身分證號\" (subject_id): \"***\" is not a national ID",
        "column \"機關\" (agency_id): \"高雄市政府環保局\" is not an agency id, name or alias in the config",
        "query_logs/q.csv row 5: column \"帳號\" (account_id) is empty; column \"查詢結果\" (result): \"也許\" is not a known result: expected success (成功), failure (失敗)",
    ];
    for e in expect {
        assert!(out.stdout.contains(e), "missing {e:?} in\n{}", out.stdout);
    }
    let ing = t.load();
    assert_eq!(
        strings(ing.table(Table::QueryLog), "account_id"),
        ["u001", "u005"]
    );
    let raw = strings(&ing.rejects, "raw");
    // Privacy: rejects reach people, so subject IDs in them are masked.
    assert!(raw[0].contains("身分證號=A12****789"), "{}", raw[0]);
    assert!(!out.stdout.contains("A123456789"), "{}", out.stdout);
    assert_eq!(
        raw[1],
        "帳號=u003 | 查詢時間=2026-01-05 09:12:33 | 查詢項目=投保資料 | 身分證號=*** | 查詢結果=成功 | 機關=高雄市政府環保局 | 來源IP=10.0.0.1"
    );
}

#[test]
fn a_file_missing_a_column_is_rejected_and_the_run_goes_on() {
    let t = Test::new()
        .file(
            "inbox/query_logs/bad.csv",
            "帳號,查詢時間,查詢項目,結果\nu1,2026-01-05 09:00:00,x,成功\n",
        )
        .file(
            "inbox/query_logs/good.csv",
            format!("{HEADER}\nu001,2026-01-05 09:12:33,投保資料,A123456789,成功,KHB,10.0.0.1\n"),
        )
        .file("inbox/roster/broken.xlsx", "this is not a workbook")
        .file("inbox/stray.csv", "a,b\n");
    let out = t.run(&["ingest"]);
    assert_eq!(out.status, 2);
    assert!(
        out.stdout
            .contains("3 file(s) failed; the others were ingested"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "query_logs/bad.csv: header row 1 lacks required column(s) subject_id, agency_id; expected headers: account_id (帳號), queried_at (查詢時間), query_item (查詢項目), subject_id (被查詢人身分證號), agency_id (機關); found: 帳號, 查詢時間, 查詢項目, 結果"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("roster/broken.xlsx: cannot open workbook"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("stray.csv: not in a table folder"),
        "{}",
        out.stdout
    );
    assert!(out.rows("query_log") == Some(1), "{}", out.stdout);
}

/// A link in the inbox made the run read the file it points to, and the
/// error quoted its first line (`/etc/passwd`'s `root:x:0:0:…`). It is
/// refused unread, named, and the run goes on.
#[test]
fn a_symbolic_link_in_the_inbox_is_refused_unread() {
    let t = Test::new().file(
        "inbox/query_logs/good.csv",
        format!("{HEADER}\nu001,2026-01-05 09:12:33,投保資料,A123456789,成功,KHB,10.0.0.1\n"),
    );
    let secret = t.path("secret.csv");
    std::fs::write(&secret, "機密第一行,root:x:0:0\n").unwrap();
    std::fs::create_dir_all(t.path("inbox/hr")).unwrap();
    std::os::unix::fs::symlink(&secret, t.path("inbox/hr/link.csv")).unwrap();
    let out = t.run(&["ingest"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("hr/link.csv: cannot read: a symbolic link, not a regular file: not read"),
        "{}",
        out.stdout
    );
    assert!(!format!("{}{}", out.stdout, out.stderr).contains("機密第一行"));
    assert!(out.rows("query_log") == Some(1), "{}", out.stdout);
}

#[test]
fn the_same_file_dropped_twice_is_ingested_once() {
    let body =
        format!("{HEADER}\nu001,2026-01-05 09:12:33,投保資料,A123456789,成功,KHB,10.0.0.1\n");
    let t = Test::new()
        .file("inbox/query_logs/a.csv", &body)
        .file("inbox/query_logs/a (copy).csv", &body);
    let ing = t.load();
    assert_eq!(ing.table(Table::QueryLog).height(), 1);
    let copy = ing
        .files
        .iter()
        .find(|f| f.path == "query_logs/a.csv")
        .unwrap();
    assert_eq!(
        copy.status,
        FileStatus::Duplicate {
            of: "query_logs/a (copy).csv".into()
        }
    );
    let out = t.run(&["ingest"]);
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("duplicate of query_logs/a (copy).csv (ingested once)"),
        "{}",
        out.stdout
    );
}

#[test]
fn ambiguous_headers_and_declared_formats() {
    let t = Test::new()
        .config("\n[[inputs]]\npattern = \"roster/*.csv\"\n[inputs.formats]\ncreated_on = \"roc\"\n")
        .file(
            "inbox/roster/r.csv",
            "帳號,姓名,員工編號,機關,角色,人員類別,帳號狀態,建立日期\nW1,王小明,P1,KHB,專責人員,編制內,啟用,990101\n",
        )
        .file("inbox/hr/h.csv", "員工編號,員工代號,姓名,機關,人員類別,狀態,生效日期\nP1,P1,王小明,KHB,編制內,在職,2026-01-01\n");
    let ing = t.load();
    assert_eq!(
        strings(ing.table(Table::Roster), "created_on"),
        ["2010-01-01"]
    );
    let hr = ing.files.iter().find(|f| f.path == "hr/h.csv").unwrap();
    assert_eq!(
        hr.status,
        FileStatus::Failed {
            error:
                "hr/h.csv: header row 1: columns \"員工編號\" and \"員工代號\" both mean person_id"
                    .into()
        }
    );
}

#[test]
fn period_keeps_only_its_queries() {
    let t = Test::new().file(
        "inbox/query_logs/q.csv",
        format!(
            "{HEADER}\nu1,2025-12-31 23:59:59,x,A123456789,成功,KHB,ip\nu2,2026-01-01 00:00:00,x,A123456789,成功,KHB,ip\nu3,2026-06-30 23:59:59,x,A123456789,成功,KHB,ip\nu4,2026-07-01 00:00:00,x,A123456789,成功,KHB,ip\n"
        ),
    );
    let out = t.run(&["ingest", "--period", "2026H1"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("period 2026H1: 2 query-log rows outside it left out"),
        "{}",
        out.stdout
    );
    let config = t.loaded_config();
    let ing = webir_audit::ingest::ingest(&config, Some(&"2026H1".parse().unwrap())).unwrap();
    assert_eq!(
        strings(ing.table(Table::QueryLog), "account_id"),
        ["u2", "u3"]
    );
}

/// Blank lines must not shift the row numbers officers are sent to.
#[test]
fn blank_lines_are_skipped_without_shifting_row_numbers() {
    let t = Test::new().file(
        "inbox/query_logs/q.csv",
        format!("{HEADER}\nu1,2026-01-05 09:12:33,x,A123456789,成功,KHB,ip\n\nu2,2026-01-05 09:12:33,x,A123456789,成功,KHB,ip\n,,,,,,\nu3,2026-99-05 09:12:33,x,A123456789,成功,KHB,ip\n"),
    );
    let ing = t.load();
    assert_eq!(
        strings(ing.table(Table::QueryLog), "source_row"),
        ["2", "4"]
    );
    assert_eq!(strings(&ing.rejects, "source_row"), ["6"]);
    assert_eq!(ing.files[0].rows_skipped, 2);
}

/// Regression: polars reported a row with too many fields without saying
/// which line, and suggested a polars option; the officer needs the line.
#[test]
fn a_line_with_too_many_fields_is_named() {
    let t = Test::new()
        .file(
            "inbox/query_logs/q.csv",
            format!("{HEADER}\nu1,2026-01-05 09:12:33,x,A123456789,成功,KHB,ip\nu2,2026-01-05 09:12:33,x,A123456789,成功,KHB,ip,extra,more\n"),
        )
        .big5(
            "inbox/hr/h.csv",
            "人員清冊\r\n員工編號,姓名,機關,人員類別,狀態,生效日期\r\nP1,王小明,KHB,編制內,在職,115/01/01\r\nP2,李大華,KHB,編制內,在職,115/01/01,多一欄\r\n",
        );
    let out = t.run(&["ingest"]);
    assert_eq!(out.status, 2);
    assert!(
        out.stdout
            .contains("query_logs/q.csv: line 3 has 9 fields but the header has 7"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("hr/h.csv: line 4 has 7 fields but the header has 6"),
        "{}",
        out.stdout
    );
}

/// Point 3 in the regulation's own words (issue 17): a request form that
/// quotes a statute of point 3 verbatim is read as its purpose, and a
/// city's own spelling can be added in the config for any vocabulary; a
/// spelling that would mean two codes, an unknown code or vocabulary is
/// refused with the key and value.
#[test]
fn forms_quoting_the_regulation_s_statutes_verbatim_are_read() {
    const STATUTES: [(&str, &str); 12] = [
        ("社會救助法", "social_welfare"),
        ("老人福利法", "social_welfare"),
        ("身心障礙者權益保障法", "social_welfare"),
        ("身心障礙者參加社會保險保險費補助辦法", "social_welfare"),
        ("全民健康保險法", "social_welfare"),
        ("兒童及少年福利與權益保障法", "social_welfare"),
        ("高雄市弱勢兒童及少年醫療補助辦法", "social_welfare"),
        ("高雄市生育津貼發給辦法", "social_welfare"),
        ("傳染病防治法", "public_health"),
        ("刑事訴訟法", "criminal_investigation"),
        ("毒品危害防制條例", "drug_follow_up"),
        ("徵兵規則", "military_service"),
    ];
    let mut forms = String::from(
        "表單編號,帳號,被查詢人身分證號,查詢目的,查詢事由,申請時間,核可主管,核可時間\n",
    );
    for (i, (statute, _)) in STATUTES.iter().enumerate() {
        forms.push_str(&format!(
            "F{i},u1,A123456789,{statute},事由,2026-03-01 09:00:00,陳組長,2026-03-01 10:00:00\n"
        ));
    }
    forms.push_str(
        "F99,u1,A123456789,社福科專案,事由,2026-03-01 09:00:00,陳組長,2026-03-01 10:00:00\n",
    );
    let t = Test::new()
        .config_replace(
            "[mail]",
            "[vocabulary.purpose]\nsocial_welfare = [\"社福科專案\"]\n\n[mail]",
        )
        .file("inbox/forms/forms.csv", &forms);
    let out = t.run(&["ingest"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let config = webir_audit::config::load(&t.path("webir-audit.toml")).unwrap();
    let ing = webir_audit::ingest::ingest(&config, None).unwrap();
    let f = ing.table(webir_audit::model::Table::RequestForms);
    let ids = f.column("form_id").unwrap().str().unwrap().clone();
    let purposes = f.column("purpose").unwrap().str().unwrap().clone();
    for (i, (statute, code)) in STATUTES.iter().enumerate() {
        let at = ids
            .iter()
            .position(|x| x == Some(&format!("F{i}")))
            .unwrap();
        assert_eq!(purposes.get(at), Some(*code), "{statute}");
    }
    let at = ids.iter().position(|x| x == Some("F99")).unwrap();
    assert_eq!(purposes.get(at), Some("social_welfare"));

    for (extra, key) in [
        (
            "[vocabulary.purpose]\npublic_health = [\"刑事訴訟法\"]",
            "vocabulary.purpose.public_health",
        ),
        (
            "[vocabulary.purpose]\nnot_a_code = [\"x\"]",
            "vocabulary.purpose.not_a_code",
        ),
        ("[vocabulary.colour]\nred = [\"紅\"]", "vocabulary.colour"),
    ] {
        let t = Test::new().config_replace("[mail]", &format!("{extra}\n\n[mail]"));
        let out = t.run(&["check-config"]);
        assert_eq!(out.status, 3, "{extra}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(key), "{}", out.stderr);
    }
}
