//! A city served by a real SMTP server over TCP, and the daemon run on it
//! pass by pass: the sample data with its mail pointed at the server, the
//! messages as they arrived, the run ledger.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::mail::Parsed;
use super::{Output, copy_dir, repo, run_binary_env};
use crate::smtp::{PASSWORD, Smtp};

pub const KPB_PASSWORD: &str = "警察局-附件密碼-2026";

/// The sample city, mailing through `smtp`; 警察局 (KPB) has its
/// workbooks encrypted with a password from the environment, the other
/// units with the passwords the product issued.
pub struct City {
    pub tmp: tempfile::TempDir,
    pub config: PathBuf,
}

impl City {
    pub fn new(smtp: &Smtp, mail_extra: &str) -> City {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("sample_data"), &tmp.path().join("city"));
        let config = tmp.path().join("city/webir-audit.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        let start = text.find("[mail]").unwrap();
        let end = start + text[start..].find("\n# ").unwrap();
        let text = format!(
            "{}{}{}",
            &text[..start],
            smtp.mail_config(mail_extra),
            &text[end..]
        );
        std::fs::write(&config, text).unwrap();
        crate::harness::set_in_register(
            &tmp.path().join("city/agencies.xlsx"),
            "KPB",
            "附件密碼環境變數",
            "WEBIR_AUDIT_TEST_KPB",
        );
        City { tmp, config }
    }

    pub fn config(&self) -> webir_audit::config::Config {
        webir_audit::config::load(&self.config).unwrap()
    }

    pub fn run(&self, args: &[&str], now: &str) -> Output {
        let mut all = args.to_vec();
        all.extend(["--config", self.config.to_str().unwrap(), "--now", now]);
        run_binary_env(&all, self.tmp.path(), &ENV)
    }

    /// The outbox's rows as `(id, state, recipient)`.
    /// The outbox but the evidence chain's receipts (as [`received`]).
    pub fn outbox(&self) -> Vec<(i64, String, String)> {
        let store = webir_audit::store::Store::open(&self.config().paths.state).unwrap();
        store
            .outbox()
            .unwrap()
            .into_iter()
            .filter(|r| !r.report.starts_with("receipt:"))
            .map(|r| (r.id, r.state.to_string(), r.recipient))
            .collect()
    }
}

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

/// The sample city with `schedules` as its only schedules file.
pub fn city(smtp: &Smtp, schedules: &str) -> City {
    let c = City::new(smtp, "");
    let dir = c.tmp.path().join("schedules");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("test.toml"), schedules).unwrap();
    crate::harness::suspend_unscheduled_duties(&dir);
    c
}

pub const SAMPLE_AUDIT: &str = r#"
[[schedule]]
job = "sample-audit"
cron = "0 0 8 5 1,7 *"
period = "previous-half-year"
max_lateness = "30d"
wait_for_inputs = "14d"
"#;

pub fn pass(c: &City, now: &str) {
    let out = c.run(&["daemon", "--once"], now);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
}

/// The ledger as `(job, period, state)`.
pub fn ledger(c: &City) -> Vec<(String, String, String)> {
    let store = webir_audit::store::Store::open(&c.config().paths.state).unwrap();
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

pub fn run_folders(c: &City, period: &str) -> Vec<std::path::PathBuf> {
    let dir = c.config().paths.archive.join(period).join("sample-audit");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}
