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
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::Test;
use crate::harness::served::{arrivals, received};
use crate::smtp::Smtp;
use webir_audit::store::OutboxRow;

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
    let load = Load::a_generated_city_mails_through_a_faulty_server();
    let first = load.the_daemon_passes_and_retries_over_a_day();
    let sent = Sent::every_workbook_is_queued_and_none_left_pending(&load);
    let duplicated = sent.each_workbook_arrives_exactly_once();
    sent.each_message_of_unknown_fate_is_alerted();
    sent.reports_the_readme_s_figures(&load, first, duplicated);
}

/// A generated city whose mail goes through an SMTP server that refuses
/// or cuts some messages.
struct Load {
    agencies: usize,
    accounts: usize,
    queries: usize,
    /// Stopped before the folder it writes in is removed.
    smtp: Smtp,
    /// The city's folder, held for the test's length (dropped last).
    city: Test,
}

impl Load {
    /// The city is generated at the size asked, its mail pointed at a
    /// server refusing every seventh message and cutting two.
    fn a_generated_city_mails_through_a_faulty_server() -> Load {
        let (agencies, accounts, queries) = (
            size("LOAD_AGENCIES", 150),
            size("LOAD_ACCOUNTS", 3000),
            size("LOAD_QUERIES", 20_000),
        );
        let bin = std::env::var("LOAD_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_webir-audit").to_owned());
        let city = Test::generated(
            Path::new(&bin),
            &[
                "--agencies",
                &agencies.to_string(),
                "--accounts",
                &accounts.to_string(),
                "--queries",
                &queries.to_string(),
            ],
        );
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
        let smtp = Smtp::start(&city.path("smtp"), &faults.join(","));
        let city = city.served(&smtp, "");
        Load {
            agencies,
            accounts,
            queries,
            smtp,
            city,
        }
    }

    /// One daemon pass at `now`, succeeding; how long it took.
    fn pass(&self, now: &str) -> Duration {
        let t = Instant::now();
        let out = self.city.run_at(&["daemon", "--once"], now);
        assert_eq!(out.status, 0, "{}", out.stderr);
        t.elapsed()
    }

    /// The first pass runs the audit and mails it; the next ones, over a
    /// day, retry what was refused. Returns the first pass's time.
    fn the_daemon_passes_and_retries_over_a_day(&self) -> Duration {
        let first = self.pass("2026-07-05T08:00:00+08:00");
        // Retries of the transient refusals come due over the next hours.
        for now in [
            "2026-07-05T08:30:00+08:00",
            "2026-07-05T10:00:00+08:00",
            "2026-07-05T14:00:00+08:00",
            "2026-07-06T08:00:00+08:00",
        ] {
            self.pass(now);
        }
        first
    }
}

/// The outbox after the passes, and what the server received.
struct Sent<'a> {
    smtp: &'a Smtp,
    outbox: Vec<OutboxRow>,
    states: BTreeMap<String, usize>,
    unknown: usize,
    arrived: BTreeMap<String, usize>,
}

impl<'a> Sent<'a> {
    /// Every unit's workbook is queued; none is left pending or failed,
    /// and the two cut connections are of unknown fate.
    fn every_workbook_is_queued_and_none_left_pending(load: &'a Load) -> Sent<'a> {
        let store = webir_audit::store::Store::open(&load.city.city_path("var/state")).unwrap();
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
            workbooks > load.agencies,
            "every unit and the city-wide workbook: {workbooks}"
        );
        assert_eq!(
            states.get("pending").copied().unwrap_or(0)
                + states.get("failed").copied().unwrap_or(0),
            0,
            "{states:?}"
        );
        let unknown = states.get("unknown").copied().unwrap_or(0);
        assert_eq!(unknown, 2, "the two cut connections: {states:?}");
        // Exactly once, each: counted on the server.
        let arrived = arrivals(&load.smtp);
        Sent {
            smtp: &load.smtp,
            outbox,
            states,
            unknown,
            arrived,
        }
    }

    /// No message arrives twice, and each workbook arrives once, counted
    /// on the server. Returns how many arrived twice.
    fn each_workbook_arrives_exactly_once(&self) -> usize {
        let duplicated: Vec<_> = self.arrived.iter().filter(|(_, n)| **n > 1).collect();
        assert!(duplicated.is_empty(), "arrived twice: {duplicated:?}");
        for m in self.outbox.iter().filter(|m| m.report.ends_with(".xlsx")) {
            assert_eq!(
                self.arrived.get(&m.message_id),
                Some(&1),
                "{} {}",
                m.recipient,
                m.report
            );
        }
        duplicated.len()
    }

    /// The messages of unknown fate are reported to the admin.
    fn each_message_of_unknown_fate_is_alerted(&self) {
        let alerts: Vec<String> = received(self.smtp)
            .into_iter()
            .filter(|(_, p)| p.to == "admin@example.gov.tw")
            .map(|(_, p)| p.text)
            .collect();
        for m in self.outbox.iter().filter(|m| m.state.as_str() == "unknown") {
            assert!(
                alerts.iter().any(|t| t.contains(&m.recipient)),
                "no alert names {}",
                m.recipient
            );
        }
    }

    /// The figures the README reports (seen with --nocapture).
    fn reports_the_readme_s_figures(&self, load: &Load, first: Duration, duplicated: usize) {
        let (agencies, accounts, queries) = (load.agencies, load.accounts, load.queries);
        let (states, unknown) = (&self.states, self.unknown);
        #[allow(clippy::print_stdout)]
        {
            println!(
                "load: {agencies} agencies, {accounts} accounts, {queries} queries; first pass {:.1} s; peak RSS {:.0} MiB; messages {} queued, {} received by the server, {} duplicated, {} unknown (alerted); outbox {states:?}",
                first.as_secs_f64(),
                children_peak_rss_mib(),
                self.outbox.len(),
                self.arrived.values().sum::<usize>(),
                duplicated,
                unknown
            );
        }
    }
}
