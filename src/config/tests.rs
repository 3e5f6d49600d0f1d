use super::*;

const BASE: &str = r#"
[paths]
inbox = "inbox"
archive = "../var/archive"
state = "../var/state"

[mail]
from = "webir-audit <w@example.gov.tw>"
admin = "admin@example.gov.tw"

[[agencies]]
id = "KHB"
name = "高雄市政府衛生局"
aliases = ["衛生局"]
requesting = true
purposes = ["public_health"]
officer_email = "o.khb@example.gov.tw"
health_bureau = true

[[agencies]]
id = "KPB"
name = "高雄市政府警察局"
requesting = true
purposes = ["criminal_investigation"]
officer_email = "o.kpb@example.gov.tw"

[[agencies]]
id = "KPB-1"
name = "第一分局"
parent = "KPB"

[[agencies]]
id = "KPB-1-A"
name = "甲派出所"
parent = "KPB-1"
"#;

fn load_str(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: "x.toml".into(),
        message: e.to_string(),
    })?;
    validate(raw, Path::new("/etc/webir/webir-audit.toml"))
}

/// The problems of an invalid config, as `key: message` lines.
fn problems(text: &str) -> Vec<String> {
    match load_str(text) {
        Err(ConfigError::Invalid { problems, .. }) => problems
            .into_iter()
            .map(|p| format!("{} = {}: {}", p.key, p.value, p.message))
            .collect(),
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

#[test]
fn a_valid_config_resolves_paths_units_and_purposes() {
    let c = load_str(BASE).unwrap();
    assert_eq!(c.paths.inbox, Path::new("/etc/webir/inbox"));
    assert_eq!(c.paths.state, Path::new("/etc/var/state"));
    assert_eq!(c.paths.schedules, Path::new("/etc/webir/schedules"));
    let a = c.agencies.get("KPB-1-A").unwrap();
    assert_eq!(a.unit, "KPB");
    assert_eq!(a.purposes, vec!["criminal_investigation"]);
    assert_eq!(c.agencies.health_bureau().id, "KHB");
    assert_eq!(c.rules.sample_account_percent, 20);
    assert_eq!(c.rules.form_validity_days, 30);
    assert_eq!(c.timezone, chrono_tz::Asia::Taipei);
}

#[test]
fn weaker_than_regulation_settings_cite_the_rule() {
    let cases = [
        (
            "sample_account_percent = 19",
            "rules.sample_account_percent = 19",
            "point 6(1)",
        ),
        (
            "sample_records_per_account = 9",
            "rules.sample_records_per_account = 9",
            "at least 10 records",
        ),
        (
            "retention_years = 2",
            "rules.retention_years = 2",
            "at least 3 years",
        ),
        (
            "password_max_age_days = 91",
            "rules.password_max_age_days = 91",
            "every three months",
        ),
    ];
    for (setting, key, rule) in cases {
        let text = BASE.replace("[mail]", &format!("[rules]\n{setting}\n\n[mail]"));
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{setting}: {p:?}");
        assert!(
            p[0].starts_with(key) && p[0].contains(rule),
            "{setting}: {}",
            p[0]
        );
    }
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let text = BASE.replace("[mail]", "[rules]\nsample_percent = 30\n\n[mail]");
    match load_str(&text) {
        Err(ConfigError::Syntax { message, .. }) => {
            assert!(message.contains("sample_percent"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn agency_tree_problems_are_all_reported() {
    let text = BASE
        .replace("parent = \"KPB-1\"", "parent = \"KPB-9\"")
        .replace("health_bureau = true", "")
        .replace(
            "purposes = [\"criminal_investigation\"]",
            "purposes = [\"fishing\"]",
        );
    let p = problems(&text);
    let joined = p.join("\n");
    assert!(
        joined.contains("agencies[3].parent = \"KPB-9\": no agency has this id"),
        "{joined}"
    );
    assert!(
        joined.contains("agencies[3] = KPB-1-A: belongs to no requesting agency"),
        "{joined}"
    );
    assert!(
        joined.contains("exactly one agency must be the health bureau"),
        "{joined}"
    );
    assert!(
        joined.contains("\"fishing\": unknown purpose; allowed: social_welfare"),
        "{joined}"
    );
}

#[test]
fn names_and_aliases_must_mean_one_agency() {
    let text = BASE.replace(
        "name = \"第一分局\"",
        "name = \"第一分局\"\naliases = [\"衛生局\"]",
    );
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|m| m.contains("\"衛生局\": this name or alias also means agency KHB")),
        "{p:?}"
    );
}

#[test]
fn parent_cycles_are_rejected() {
    let text = BASE.replace(
        "id = \"KPB-1\"\nname = \"第一分局\"\nparent = \"KPB\"",
        "id = \"KPB-1\"\nname = \"第一分局\"\nparent = \"KPB-1-A\"",
    );
    let p = problems(&text);
    assert!(p.iter().any(|m| m.contains("cycle")), "{p:?}");
}

#[test]
fn recipients_outside_allowed_domains_are_refused() {
    let text = BASE.replace(
        "admin = \"admin@example.gov.tw\"",
        "admin = \"admin@example.gov.tw\"\nallowed_domains = [\"kcg.gov.tw\"]",
    );
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|m| m.starts_with("agencies.KPB.officer_email")),
        "{p:?}"
    );
    assert!(p.iter().any(|m| m.starts_with("mail.admin")), "{p:?}");
}

/// Issue 29: two addresses typed into one passed check-config, then
/// failed every run at sending: an address is one mailbox, as the
/// transport parses it.
#[test]
fn an_address_is_one_mailbox_as_the_transport_parses_it() {
    let first = BASE
        .lines()
        .find(|l| l.starts_with("officer_email = "))
        .expect("an officer address");
    let (_, addr) = first.split_once(" = ").unwrap();
    let two = format!(
        "officer_email = \"{},spy@example.gov.tw\"",
        addr.trim_matches('"')
    );
    let p = problems(&BASE.replacen(first, &two, 1));
    assert!(
        p.iter()
            .any(|m| m.contains("officer_email") && m.contains("spy@example.gov.tw")),
        "{p:?}"
    );
}

/// Issue 29: an empty or formula-only 機關名稱 was accepted.
#[test]
fn an_agency_s_name_is_a_name() {
    for bad in ["", "   ", "=HYPERLINK(\\\"x\\\")", "警察局\\u0007"] {
        let text = BASE.replacen(
            "name = \"高雄市政府警察局\"",
            &format!("name = \"{bad}\""),
            1,
        );
        assert_ne!(text, BASE);
        let p = problems(&text);
        assert!(p.iter().any(|m| m.contains(".name")), "{bad:?}: {p:?}");
    }
}

#[test]
fn the_chief_administrator_has_an_address_of_their_own() {
    // Absent: the Health Bureau's officer gets their mail.
    let c = load_str(BASE).unwrap();
    assert_eq!(c.chief_email(), Some("o.khb@example.gov.tw"));
    let text = format!(
        "{BASE}\n[chief_administrator]\nname = \"周秀志\"\nemail = \"chief@example.gov.tw\"\n"
    );
    let c = load_str(&text).unwrap();
    assert_eq!(c.chief_email(), Some("chief@example.gov.tw"));
    assert_eq!(c.chief.as_ref().unwrap().name, "周秀志");
    // A unit without an ethics unit is reviewed by the chief; the Health
    // Bureau, whose sample may hold the chief's own account, is not.
    assert_eq!(
        c.second_reviewer("KPB"),
        Some(("chief@example.gov.tw", Reviewer::ChiefAdmin))
    );
    assert_eq!(c.second_reviewer("KHB"), None);
    // Inside the allowed domains, and named.
    let p = problems(
        &text
            .replace("chief@example.gov.tw", "chief@gmail.com")
            .replace("周秀志", " ")
            .replace(
                "admin = \"admin@example.gov.tw\"",
                "admin = \"admin@example.gov.tw\"\nallowed_domains = [\"example.gov.tw\"]",
            ),
    );
    assert!(
        p.iter().any(|m| m.starts_with("chief_administrator.email"))
            && p.iter().any(|m| m.starts_with("chief_administrator.name")),
        "{p:?}"
    );
}

#[test]
fn column_aliases_and_formats_name_real_columns() {
    let text = format!(
        "{BASE}\n[columns.query_log]\naccount_id = [\"使用者\"]\n[formats.hr]\neffective_date = \"roc\"\nnope = \"roc\"\n[formats.roster]\ncreated_on = \"julian\"\n"
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].contains("formats.hr.nope") && p[0].contains("allowed: person_id"),
        "{}",
        p[0]
    );
    assert!(
        p[1].contains(
            "formats.roster.created_on = \"julian\": allowed values: auto, roc, gregorian"
        ),
        "{}",
        p[1]
    );
}

#[test]
fn input_patterns_match_relative_paths() {
    let i = InputOverride {
        pattern: "hr/*.csv".into(),
        encoding: Encoding::Big5,
        sheet: None,
        delimiter: None,
        formats: BTreeMap::new(),
    };
    assert!(i.matches("hr/hr_status_20260702.csv"));
    assert!(!i.matches("hr/sub/x.csv"));
    assert!(!i.matches("roster/x.csv"));
}

#[test]
fn holidays_decide_workdays() {
    let mut h = Holidays::default();
    h.holidays
        .insert(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(), "元旦".into());
    h.workdays
        .insert(NaiveDate::from_ymd_opt(2026, 2, 7).unwrap(), "補班".into());
    assert!(!h.is_workday(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()));
    assert!(h.is_workday(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()));
    assert!(!h.is_workday(NaiveDate::from_ymd_opt(2026, 1, 3).unwrap()));
    assert!(h.is_workday(NaiveDate::from_ymd_opt(2026, 2, 7).unwrap()));
    // A year the calendar does not list still has its holidays fixed by
    // date: 2027-01-01 (a Friday) is no deadline; a listed year has only
    // its calendar's (2026-02-28 is a Saturday, 2026-10-09 is listed
    // nowhere: a working Friday).
    assert!(!h.is_workday(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()));
    assert!(h.is_workday(NaiveDate::from_ymd_opt(2027, 1, 4).unwrap()));
    assert!(!h.is_workday(NaiveDate::from_ymd_opt(2028, 2, 28).unwrap()));
    assert!(h.is_workday(NaiveDate::from_ymd_opt(2026, 10, 9).unwrap()));
}
