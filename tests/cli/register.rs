//! The agency register as a workbook (issue 19): `[paths] agencies =
//! "agencies.xlsx"` instead of `[[agencies]]`, validated exactly as the
//! TOML form with each problem at its sheet, row and column, and
//! `agencies export` writing the register that reads back the same.

use crate::harness::{BASE_CONFIG, Test, write_xlsx};

const HEADER: [&str; 8] = [
    "機關代碼",
    "機關名稱",
    "別名",
    "上級機關代碼",
    "資訊需求機關",
    "查詢目的",
    "專責人員信箱",
    "政風單位信箱",
];

/// A config whose agencies come from `agencies.xlsx` (its rows given),
/// with the Health Bureau's flag column added.
fn city(rows: &[Vec<String>]) -> Test {
    let agencies = &BASE_CONFIG[BASE_CONFIG.find("[[agencies]]").unwrap()..];
    let t = Test::new()
        .config_replace(agencies, "")
        .config_replace(
            "state = \"var/state\"\n",
            "state = \"var/state\"\nagencies = \"agencies.xlsx\"\n",
        )
        .config_replace(
            "admin = \"admin@example.gov.tw\"\n",
            "admin = \"admin@example.gov.tw\"\nallowed_domains = [\"example.gov.tw\"]\n",
        );
    write_register(&t, rows);
    t
}

/// Writes `agencies.xlsx` as the Health Bureau keeps it: title rows, then
/// the header and one row per agency.
fn write_register(t: &Test, rows: &[Vec<String>]) {
    let mut header: Vec<&str> = HEADER.to_vec();
    header.push("衛生局");
    write_xlsx(
        &t.path("agencies.xlsx"),
        &["高雄市政府 機關專責人員名冊", "更新日期：115/07/01", ""],
        &header,
        rows,
    );
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// A subordinate agency: no purposes, officer or ethics unit of its own.
fn member(id: &str, name: &str, parent: &str) -> Vec<String> {
    row(&[id, name, "", parent, "否", "", "", "", "否"])
}

/// A city of 150 agencies: the Health Bureau, 30 first-level bureaus
/// (each requesting, with two subordinates each), 38 district offices
/// (the three mountain indigenous ones among them) and 21 health centres
/// under the Health Bureau.
fn register_of_150() -> Vec<Vec<String>> {
    let mut rows = vec![row(&[
        "KHB",
        "高雄市政府衛生局",
        "衛生局",
        "",
        "是",
        "公共衛生",
        "officer.khb@example.gov.tw",
        "ethics.khb@example.gov.tw",
        "是",
    ])];
    for b in 1..=30 {
        let id = format!("B{b:02}");
        rows.push(row(&[
            &id,
            &format!("高雄市政府第{b}局"),
            "",
            "KHB",
            "是",
            if b % 2 == 0 {
                "社政、公共衛生"
            } else {
                "犯罪偵查"
            },
            &format!("officer.{id}@example.gov.tw"),
            &format!("ethics.{id}@example.gov.tw"),
            "否",
        ]));
        for s in 1..=2 {
            rows.push(member(
                &format!("{id}-{s}"),
                &format!("第{b}局第{s}科"),
                &id,
            ));
        }
    }
    let mountain = ["那瑪夏區公所", "桃源區公所", "茂林區公所"];
    for d in 1..=38 {
        let name = if d <= 3 {
            mountain[d - 1].to_owned()
        } else {
            format!("第{d}區公所")
        };
        rows.push(row(&[
            &format!("D{d:02}"),
            &name,
            "",
            "KHB",
            "是",
            "社政",
            &format!("officer.d{d:02}@example.gov.tw"),
            &format!("ethics.d{d:02}@example.gov.tw"),
            "否",
        ]));
    }
    for h in 1..=21 {
        rows.push(member(
            &format!("KHB-H{h:02}"),
            &format!("第{h}衛生所"),
            "KHB",
        ));
    }
    rows
}

#[test]
fn a_register_of_150_agencies_is_read_as_the_toml_form_would_be() {
    let rows = register_of_150();
    assert_eq!(rows.len(), 150);
    let t = city(&rows);
    let out = t.run(&["check-config"]);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("ok (150 agencies)"), "{}", out.stdout);
    // The tree: each unit and what its reports cover.
    assert!(
        out.stdout
            .contains("  B02 高雄市政府第2局 → officer.B02@example.gov.tw: B02-1, B02-2"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  D01 那瑪夏區公所 → officer.d01@example.gov.tw: itself only")
    );
    let config = t.loaded_config();
    let get = |id: &str| config.agencies.get(id).unwrap().clone();
    assert_eq!(get("B02-1").unit, "B02");
    assert_eq!(get("B02-1").purposes, ["social_welfare", "public_health"]);
    assert_eq!(get("KHB-H07").unit, "KHB");
    assert!(get("KHB").health_bureau);
    for (id, name) in [
        ("D01", "那瑪夏區公所"),
        ("D02", "桃源區公所"),
        ("D03", "茂林區公所"),
    ] {
        let a = get(id);
        assert_eq!(
            (a.name.as_str(), a.requesting, a.unit.as_str()),
            (name, true, id)
        );
    }
}

#[test]
fn every_problem_of_a_register_is_named_by_sheet_row_column_and_value_in_one_run() {
    let mut rows = register_of_150();
    // Row numbers: three title rows and a blank one, the header on row 5,
    // agencies from row 6.
    rows[1][3] = "B01-2".into(); // B01 under its own subordinate: a cycle (row 7)
    rows[10][0] = "B03".into(); // a second B03 (row 16)
    rows[20][3] = "ZZZ".into(); // an unknown parent (row 26)
    rows[100][6] = String::new(); // a requesting district office without an officer (row 106)
    rows[101][6] = "officer@gmail.com".into(); // outside the allowed domains (row 107)
    rows[102][4] = "也許".into(); // neither 是 nor 否 (row 108)
    let t = city(&rows);
    let out = t.run(&["check-config"]);
    assert_eq!(out.status, 3, "{}{}", out.stdout, out.stderr);
    for want in [
        "agencies.xlsx: sheet Sheet1, row 7, column 上級機關代碼",
        "the parent chain forms a cycle",
        "agencies.xlsx: sheet Sheet1, row 16, column 機關代碼",
        "duplicate agency id",
        "agencies.xlsx: sheet Sheet1, row 26, column 上級機關代碼",
        "\"ZZZ\"",
        "no agency has this id",
        "agencies.xlsx: sheet Sheet1, row 106, column 專責人員信箱",
        "designated officer's address",
        "agencies.xlsx: sheet Sheet1, row 107, column 專責人員信箱",
        "\"officer@gmail.com\"",
        "outside mail.allowed_domains",
        "agencies.xlsx: sheet Sheet1, row 108, column 資訊需求機關",
        "\"也許\"",
    ] {
        assert!(out.stderr.contains(want), "{want}: {}", out.stderr);
    }
}

#[test]
fn an_exported_register_reads_back_as_the_same_agencies() {
    let t = Test::new().config(
        "\n[[agencies]]\nid = \"KPB-2\"\nname = \"第二分局\"\naliases = [\"二分局\", \"2分局\"]\nparent = \"KPB\"\nethics_email = \"e.kpb2@example.gov.tw\"\n\n[[agencies]]\nid = \"KSA\"\nname = \"社會局\"\nrequesting = true\npurposes = [\"social_welfare\", \"other\"]\nofficer_email = \"o.ksa@example.gov.tw\"\nattachment_unencrypted = \"對方系統無法開啟加密檔（115年專案核准）\"\n",
    );
    let config = t.config_path();
    let before = webir_audit::config::load(config).unwrap();
    let out = t.run(&["agencies", "export", "--out", "register.xlsx"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    // The same config, its agencies from the exported workbook.
    let text = std::fs::read_to_string(config).unwrap();
    let cut = text.find("[[agencies]]").unwrap();
    let text = text[..cut].replace(
        "state = \"var/state\"\n",
        "state = \"var/state\"\nagencies = \"register.xlsx\"\n",
    );
    std::fs::write(t.path("from-register.toml"), text).unwrap();
    let after = webir_audit::config::load(&t.path("from-register.toml")).unwrap();
    let a: Vec<_> = before.agencies.iter().cloned().collect();
    let b: Vec<_> = after.agencies.iter().cloned().collect();
    assert_eq!(a, b);
    // What the officer sees: drop-downs, the notes, a protected header.
    use calamine::Reader as _;
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook(t.path("register.xlsx")).unwrap();
    let notes = wb.worksheet_range("欄位說明").unwrap();
    assert!(notes.rows().any(|r| r[0] == "上級機關代碼"));
    let xml = crate::harness::workbook::xml(&t.path("register.xlsx"), "xl/worksheets/sheet1.xml");
    assert!(xml.contains("<sheetProtection"), "header protected");
    assert!(
        xml.contains("代碼!$A$2:$A$6"),
        "parent drop-down of the ids"
    );
    assert!(
        xml.contains("&quot;是,否&quot;") || xml.contains("\"是,否\""),
        "是/否 drop-down"
    );
}

/// The chief administrator (point 4) may be kept in the register, on the
/// Health Bureau's row, as the Health Bureau keeps its officers there; on
/// any other row it is a problem named by its cell.
#[test]
fn the_chief_administrator_is_named_on_the_health_bureau_s_row_of_the_register() {
    let t = Test::new()
        .config("\n[chief_administrator]\nname = \"陳總管\"\nemail = \"chief@example.gov.tw\"\n");
    let config = t.config_path();
    let before = webir_audit::config::load(config).unwrap();
    assert!(before.chief.is_some());
    let out = t.run(&["agencies", "export", "--out", "register.xlsx"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let text = std::fs::read_to_string(config).unwrap();
    let cut = text.find("[[agencies]]").unwrap();
    let text = text[..cut].replace(
        "state = \"var/state\"\n",
        "state = \"var/state\"\nagencies = \"register.xlsx\"\n",
    );
    std::fs::write(t.path("from-register.toml"), &text).unwrap();
    let after = webir_audit::config::load(&t.path("from-register.toml")).unwrap();
    assert_eq!(
        after.chief, before.chief,
        "the chief comes from the register"
    );
    assert_eq!(after.chief_email(), Some("chief@example.gov.tw"));
    // Named on a unit's row instead: refused, at its cell.
    crate::harness::set_in_register(&t.path("register.xlsx"), "KPB", "總管理者姓名", "王小明");
    let err = webir_audit::config::load(&t.path("from-register.toml")).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("row 3")
            && err.contains("總管理者姓名")
            && err.contains("Health Bureau's row only"),
        "{err}"
    );
}

/// A reviewer sees an edit's effect before it is live: check-config lists
/// what changed against the register the daemon last ran with.
#[test]
fn check_config_shows_what_an_edit_of_the_register_changes_against_the_daemon_s() {
    let rows = register_of_150();
    let t = city(&rows).schedules(
        "[[schedule]]\njob = \"heartbeat\"\ncron = \"0 0 8 * * Mon\"\nperiod = \"week\"\n",
    );
    let out = t.run_at(&["daemon", "--once"], "2026-07-01T10:00:00+08:00");
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let same = t.run(&["check-config"]);
    assert!(
        same.stdout
            .contains("no change to the agencies since the daemon last ran"),
        "{}",
        same.stdout
    );
    // The duties this test's schedules leave to no one are said, with why.
    assert!(
        same.stdout
            .contains("WARNING: duty sample-audit suspended in ")
            && same.stdout.contains("this test watches other jobs alone"),
        "{}",
        same.stdout
    );
    let status = t.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("retention suspended: this test watches other jobs alone"),
        "{}",
        status.stdout
    );
    // B05's officer changes, a district office closes, a health centre opens.
    let mut edited = rows.clone();
    edited[13][6] = "new.officer.b05@example.gov.tw".into();
    assert_eq!(edited[128][0], "D38");
    edited.remove(128);
    edited.push(member("KHB-H22", "第22衛生所", "KHB"));
    write_register(&t, &edited);
    let out = t.run(&["check-config"]);
    for want in [
        "changes since the daemon last ran:",
        "  ~ B05 officer: officer.B05@example.gov.tw → new.officer.b05@example.gov.tw",
        "  + KHB-H22 第22衛生所 added (unit KHB)",
        "  - D38 第38區公所 removed",
    ] {
        assert!(out.stdout.contains(want), "{want}: {}", out.stdout);
    }
}
