//! Exit statuses and what `check-config` prints.

use crate::harness::Test;

#[test]
fn an_invalid_config_exits_3_and_cites_the_rule() {
    let t = Test::new().config_replace(
        "[mail]",
        "[rules]\nsample_account_percent = 10\nretention_years = 1\n\n[mail]",
    );
    let out = t.run(&["check-config"]);
    assert_eq!(out.status, 3, "{}", out.stderr);
    // Every command that loads the config says so the same way.
    let demo = t.run(&["demo"]);
    assert_eq!(demo.status, 3, "{}", demo.stderr);
    assert!(
        out.stderr.contains("invalid configuration:"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("rules.sample_account_percent = 10: must be between 20 and 100: point 6(1) of the regulation requires sampling at least 20% of the accounts in use"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("rules.retention_years = 1"),
        "{}",
        out.stderr
    );
    // The same config stops `ingest` the same way.
    assert_eq!(t.run(&["ingest"]).status, 3);
}

#[test]
fn an_unknown_key_exits_3_naming_file_and_key() {
    let t = Test::new().config("\n[extras]\nfoo = 1\n");
    let out = t.run(&["check-config"]);
    assert_eq!(out.status, 3);
    assert!(
        out.stderr.contains("webir-audit.toml") && out.stderr.contains("extras"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_config_file_exits_3() {
    let t = Test::new();
    let out = crate::harness::run_binary(&["check-config", "--config", "nope.toml"], t.dir.path());
    assert_eq!(out.status, 3);
    assert!(
        out.stderr.contains("nope.toml: cannot read config"),
        "{}",
        out.stderr
    );
}

#[test]
fn check_config_lists_each_input_with_rows_read_and_rejected() {
    let t = Test::new()
        .file("inbox/hr/h.csv", "員工編號,姓名,機關,人員類別,狀態,生效日期\nP1,王小明,KHB,編制內,在職,115/01/01\nP2,李大華,KHB,編制內,失蹤,115/01/01\n");
    let out = t.run(&["check-config"]);
    assert_eq!(
        out.status, 2,
        "a rejected row is an input error\n{}",
        out.stdout
    );
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("hr/h.csv"))
        .expect("a line for the input");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols, ["hr/h.csv", "utf-8", "2", "1", "0", "ok"]);
    assert!(
        out.stdout.contains(
            "hr/h.csv row 3: column \"狀態\" (status): \"失蹤\" is not a known hr_status"
        ),
        "{}",
        out.stdout
    );

    let clean = Test::new().file(
        "inbox/hr/h.csv",
        "員工編號,姓名,機關,人員類別,狀態,生效日期\nP1,王小明,KHB,編制內,在職,115/01/01\n",
    );
    let out = clean.run(&["check-config"]);
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert!(out.stdout.starts_with("config "), "{}", out.stdout);
}
