//! A city served by a real SMTP server over TCP ([`Test::served`]), and
//! the daemon run on it pass by pass: the messages as they arrived, the
//! run ledger.

use std::collections::BTreeMap;

use super::Test;
use super::mail::Parsed;
use crate::smtp::{PASSWORD, Smtp};

pub const KPB_PASSWORD: &str = "警察局-附件密碼-2026";

pub const ENV: [(&str, &str); 2] = [
    ("WEBIR_AUDIT_TEST_SMTP_PASSWORD", PASSWORD),
    ("WEBIR_AUDIT_TEST_KPB", KPB_PASSWORD),
];

/// Every message the server kept, parsed, with its envelope recipients.
pub fn received(smtp: &Smtp) -> Vec<(Vec<String>, Parsed)> {
    let got = smtp.received();
    if got.is_empty() {
        return Vec::new();
    }
    let dir = got[0].eml.parent().unwrap();
    let parsed = crate::harness::mail::parse_every(dir);
    assert_eq!(parsed.len(), got.len());
    // The evidence chain's receipts are `chain`'s to test.
    got.into_iter()
        .map(|r| r.rcpt_tos)
        .zip(parsed)
        .filter(|(_, p)| !crate::harness::mail::is_receipt(p))
        .collect()
}

/// How many times each Message-ID arrived.
pub fn arrivals(smtp: &Smtp) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for (_, p) in received(smtp) {
        *n.entry(p.message_id).or_default() += 1;
    }
    n
}

/// The sample city served by `smtp`, `schedules` as its only schedules
/// file.
pub fn city(smtp: &Smtp, schedules: &str) -> Test {
    Test::sample_city().served(smtp, "").schedules(schedules)
}

pub const SAMPLE_AUDIT: &str = r#"
[[schedule]]
job = "sample-audit"
cron = "0 0 8 5 1,7 *"
period = "previous-half-year"
max_lateness = "30d"
wait_for_inputs = "14d"
"#;

pub fn pass(c: &Test, now: &str) {
    let out = c.run_at(&["daemon", "--once"], now);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
}

/// The ledger as `(job, period, state)`.
pub fn ledger(c: &Test) -> Vec<(String, String, String)> {
    let store = webir_audit::store::Store::open(&c.loaded_config().paths.state).unwrap();
    store
        .ledger()
        .unwrap()
        .into_iter()
        .map(|r| (r.job, r.period, r.state.to_string()))
        .collect()
}

pub fn row(job: &str, period: &str, state: &str) -> (String, String, String) {
    (job.into(), period.into(), state.into())
}

/// Messages to the admin whose subject contains `what`.
pub fn admin_mail(smtp: &Smtp, what: &str) -> Vec<String> {
    received(smtp)
        .into_iter()
        .filter(|(_, p)| p.to == "admin@example.gov.tw" && p.subject.contains(what))
        .map(|(_, p)| p.text)
        .collect()
}

pub fn run_folders(c: &Test, period: &str) -> Vec<std::path::PathBuf> {
    let dir = c
        .loaded_config()
        .paths
        .archive
        .join(period)
        .join("sample-audit");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}
