//! Load: a generated city (`gen-data --agencies --accounts --queries`) whose
//! sample audit one daemon pass runs and mails through the real SMTP server
//! while the server answers some messages 421 or 450 and cuts some
//! connections after taking the data. Every message must arrive exactly
//! once (counted on the server), and a message whose fate is unknown must
//! have been reported to the admin.
//!
//! The suite runs a small city; the figures in the README come from
//! `LOAD_QUERIES=1000000 LOAD_BIN=target/release/webir-audit cargo test
//! --test cli load -- --nocapture` (150 agencies and 3,000 accounts by
//! default).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::harness::served::{ENV, arrivals, received};
use crate::smtp::Smtp;

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak RSS of the largest child this process waited for, in MiB.
fn children_peak_rss_mib() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    #[allow(unsafe_code)]
    let u = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, u.as_mut_ptr());
        u.assume_init()
    };
    u.ru_maxrss as f64 / 1024.0
}

#[test]
fn load_a_city_is_audited_and_every_message_arrives_once_despite_faults() {
    let (agencies, accounts, queries) = (
        size("LOAD_AGENCIES", 150),
        size("LOAD_ACCOUNTS", 3000),
        size("LOAD_QUERIES", 20_000),
    );
    let bin =
        std::env::var("LOAD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_webir-audit").to_owned());
    let tmp = tempfile::tempdir().unwrap();
    // Every seventh message: a transient refusal, and two connections cut
    // after the data (the server keeps those messages).
    let mut faults: Vec<&str> = Vec::new();
    for i in 0..160 {
        faults.push(match i % 7 {
            3 => "421",
            5 => "450",
            _ => "ok",
        });
    }
    faults[20] = "cut";
    faults[90] = "cut";
    let smtp = Smtp::start(&tmp.path().join("smtp"), &faults.join(","));
    let city = tmp.path().join("city");
    let made = std::process::Command::new(&bin)
        .args(["gen-data", "--out", city.to_str().unwrap()])
        .args(["--agencies", &agencies.to_string()])
        .args(["--accounts", &accounts.to_string()])
        .args(["--queries", &queries.to_string()])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let config = city.join("webir-audit.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("[mail]").unwrap();
    let end = start + text[start..].find("\n# ").unwrap();
    std::fs::write(
        &config,
        format!("{}{}{}", &text[..start], smtp.mail_config(""), &text[end..]),
    )
    .unwrap();

    let pass = |now: &str| {
        let t = Instant::now();
        let out = std::process::Command::new(&bin)
            .args([
                "daemon",
                "--once",
                "--config",
                config.to_str().unwrap(),
                "--now",
                now,
            ])
            .envs(ENV)
            .env_remove("RUST_LOG")
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    };
    let first = pass("2026-07-05T08:00:00+08:00");
    // Retries of the transient refusals come due over the next hours.
    for now in [
        "2026-07-05T08:30:00+08:00",
        "2026-07-05T10:00:00+08:00",
        "2026-07-05T14:00:00+08:00",
        "2026-07-06T08:00:00+08:00",
    ] {
        pass(now);
    }
    let store = webir_audit::store::Store::open(&tmp.path().join("city/var/state")).unwrap();
    let outbox = store.outbox().unwrap();
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for m in &outbox {
        *states.entry(m.state.to_string()).or_default() += 1;
    }
    let workbooks = outbox
        .iter()
        .filter(|m| m.report.ends_with(".xlsx"))
        .count();
    assert!(
        workbooks > agencies,
        "every unit and the city-wide workbook: {workbooks}"
    );
    assert_eq!(
        states.get("pending").copied().unwrap_or(0) + states.get("failed").copied().unwrap_or(0),
        0,
        "{states:?}"
    );
    let unknown = states.get("unknown").copied().unwrap_or(0);
    assert_eq!(unknown, 2, "the two cut connections: {states:?}");
    // Exactly once, each: counted on the server.
    let arrived = arrivals(&smtp);
    let duplicated: Vec<_> = arrived.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "arrived twice: {duplicated:?}");
    for m in outbox.iter().filter(|m| m.report.ends_with(".xlsx")) {
        assert_eq!(
            arrived.get(&m.message_id),
            Some(&1),
            "{} {}",
            m.recipient,
            m.report
        );
    }
    // The messages of unknown fate are reported to the admin.
    let alerts: Vec<String> = received(&smtp)
        .into_iter()
        .filter(|(_, p)| p.to == "admin@example.gov.tw")
        .map(|(_, p)| p.text)
        .collect();
    for m in outbox.iter().filter(|m| m.state.as_str() == "unknown") {
        assert!(
            alerts.iter().any(|t| t.contains(&m.recipient)),
            "no alert names {}",
            m.recipient
        );
    }
    // The figures the README reports (seen with --nocapture).
    #[allow(clippy::print_stdout)]
    {
        println!(
            "load: {agencies} agencies, {accounts} accounts, {queries} queries; first pass {:.1} s; peak RSS {:.0} MiB; messages {} queued, {} received by the server, {} duplicated, {} unknown (alerted); outbox {states:?}",
            first.as_secs_f64(),
            children_peak_rss_mib(),
            outbox.len(),
            arrived.values().sum::<usize>(),
            duplicated.len(),
            unknown
        );
    }
}
