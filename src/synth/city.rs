//! The fictional city: its agencies, holidays and the config that describes
//! them. Kept beside the generator so the config and the data cannot drift.

/// `(id, name, alias, parent, requesting, purposes, accounts)`.
pub type AgencyRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    usize,
);

pub static AGENCIES: &[AgencyRow] = &[
    (
        "KHB",
        "高雄市政府衛生局",
        "衛生局",
        "",
        true,
        &["public_health", "other"],
        30,
    ),
    (
        "KHB-SM",
        "高雄市三民區衛生所",
        "三民區衛生所",
        "KHB",
        false,
        &[],
        12,
    ),
    (
        "KHB-FS",
        "高雄市鳳山區衛生所",
        "鳳山區衛生所",
        "KHB",
        false,
        &[],
        12,
    ),
    (
        "KSA",
        "高雄市政府社會局",
        "社會局",
        "",
        true,
        &["social_welfare"],
        40,
    ),
    (
        "KSA-RA",
        "高雄市立仁愛之家",
        "仁愛之家",
        "KSA",
        false,
        &[],
        10,
    ),
    (
        "KPB",
        "高雄市政府警察局",
        "警察局",
        "",
        true,
        &["criminal_investigation", "drug_follow_up"],
        30,
    ),
    (
        "KPB-SM1",
        "高雄市政府警察局三民第一分局",
        "三民一分局",
        "KPB",
        false,
        &[],
        20,
    ),
    (
        "KPB-XX",
        "高雄市政府警察局新興分局",
        "新興分局",
        "KPB",
        false,
        &[],
        20,
    ),
    (
        "KPB-FS",
        "高雄市政府警察局鳳山分局",
        "鳳山分局",
        "KPB",
        false,
        &[],
        18,
    ),
    (
        "KPB-FS-WJ",
        "高雄市政府警察局鳳山分局五甲派出所",
        "五甲派出所",
        "KPB-FS",
        false,
        &[],
        8,
    ),
    (
        "KDC",
        "高雄市政府毒品防制局",
        "毒防局",
        "",
        true,
        &["drug_follow_up"],
        20,
    ),
    (
        "KMS",
        "高雄市政府兵役局",
        "兵役局",
        "",
        true,
        &["military_service"],
        15,
    ),
    (
        "KTB",
        "高雄市政府觀光局",
        "觀光局",
        "",
        true,
        &["unlicensed_lodging"],
        10,
    ),
    (
        "DSM",
        "高雄市三民區公所",
        "三民區公所",
        "",
        true,
        &["social_welfare", "military_service"],
        20,
    ),
    (
        "DFS",
        "高雄市鳳山區公所",
        "鳳山區公所",
        "",
        true,
        &["social_welfare", "military_service"],
        20,
    ),
    (
        "DTY",
        "高雄市桃源區公所",
        "桃源區公所",
        "",
        true,
        &["social_welfare", "military_service"],
        8,
    ),
    (
        "DNM",
        "高雄市那瑪夏區公所",
        "那瑪夏區公所",
        "",
        true,
        &["social_welfare", "military_service"],
        7,
    ),
];

/// Taiwan's 2026 national holidays (fictional schedule for the sample city).
pub static HOLIDAYS: &[(&str, &str)] = &[
    ("2026-01-01", "中華民國開國紀念日"),
    ("2026-02-16", "農曆除夕"),
    ("2026-02-17", "春節"),
    ("2026-02-18", "春節"),
    ("2026-02-19", "春節"),
    ("2026-02-20", "春節"),
    ("2026-02-27", "和平紀念日補假"),
    ("2026-04-03", "兒童節補假"),
    ("2026-04-06", "民族掃墓節補假"),
    ("2026-05-01", "勞動節"),
    ("2026-06-19", "端午節"),
    ("2026-09-25", "中秋節"),
    ("2026-10-09", "國慶日補假"),
];

pub static WORKDAYS: &[(&str, &str)] = &[("2026-02-07", "補行上班")];

pub fn holidays_toml() -> String {
    let mut s = String::from(
        "# National holidays and make-up workdays of the fictional sample city (2026).\n\
         # Office-hours checks treat holidays as non-working days and make-up\n\
         # workdays (補行上班日) as working days.\n",
    );
    for (d, n) in HOLIDAYS {
        s.push_str(&format!("\n[[holidays]]\ndate = {d}\nname = \"{n}\"\n"));
    }
    for (d, n) in WORKDAYS {
        s.push_str(&format!("\n[[workdays]]\ndate = {d}\nname = \"{n}\"\n"));
    }
    s
}

/// The sample city's config with its agencies as `[[agencies]]` tables
/// (the benchmark and load cities).
pub fn config_toml() -> String {
    config_text(None)
}

/// The sample city's config reading its agencies from the register
/// workbook `register` (the committed sample city, as the Health Bureau
/// keeps its list).
pub fn config_toml_register(register: &str) -> String {
    config_text(Some(register))
}

fn config_text(register: Option<&str>) -> String {
    let mut s = String::from(
        r#"# webir-audit configuration for the fictional sample city.
# Every key is documented in README.md; unknown keys are errors.
timezone = "Asia/Taipei"

[paths]
inbox = "inbox"          # exports are dropped here: query_logs/, roster/, hr/, forms/
archive = "../var/archive"
state = "../var/state"
schedules = "../schedules"  # the daemon's jobs: the repository's shipped defaults

[rules]
idle_days = 90
password_max_age_days = 90       # point 5(3): at most every three months
sample_account_percent = 20      # point 6(1): at least 20%
sample_records_per_account = 10  # point 6(1): at least 10 records
retention_years = 3              # point 5(4): at least three years
form_validity_days = 30
office_hours = "08:00-18:00"     # local time, Mon-Fri
holidays = "holidays.toml"

[mail]
transport = "file"
from = "webir-audit <webir-audit@example.gov.tw>"
admin = "admin@example.gov.tw"
allowed_domains = ["example.gov.tw"]
# Returns and questions go to the Health Bureau's WebIR desk.
reply_to = "webir.khb@example.gov.tw"
contact = "衛生局 WebIR 稽核承辦人（07-713-4000 分機 1234）"

# Point 4: the Health Bureau's chief administrator (總管理者) gets the
# city-wide workbooks, the officer-account review and the overdue digests,
# opened with a password of their own; the Health Bureau's officer gets its
# own unit's workbooks only.
[chief_administrator]
name = "周秀志"
email = "chief.khb@example.gov.tw"

# The HR export's status column is headed 異動狀態 in this city.
[columns.hr]
status = ["異動狀態"]

# The 6-digit dates some district offices type are ROC; none here, but this
# is how an ambiguous column would be declared:
# [formats.roster]
# created_on = "roc"

[[inputs]]
pattern = "hr/*.csv"
encoding = "big5"
"#,
    );
    if let Some(r) = register {
        let line = "schedules = \"../schedules\"  # the daemon's jobs: the repository's shipped defaults\n";
        return s.replacen(
            line,
            &format!(
                "{line}agencies = \"{r}\"  # the agency register (機關專責人員名冊), as the Health Bureau keeps it\n"
            ),
            1,
        );
    }
    for (id, name, alias, parent, requesting, purposes, _) in AGENCIES {
        s.push_str(&format!("\n[[agencies]]\nid = \"{id}\"\nname = \"{name}\"\naliases = [\"{alias}\"]\nparent = \"{parent}\"\n"));
        if *requesting {
            let lower = id.to_lowercase();
            let p: Vec<String> = purposes.iter().map(|p| format!("\"{p}\"")).collect();
            s.push_str(&format!(
                "requesting = true\npurposes = [{}]\nofficer_email = \"officer.{lower}@example.gov.tw\"\nethics_email = \"ethics.{lower}@example.gov.tw\"\n",
                p.join(", ")
            ));
            if *id == "KHB" {
                s.push_str("health_bureau = true\n");
            }
        }
    }
    s
}
