//! Fuzzing: random bytes and random mutations of real inputs (the sample
//! city's CSV in UTF-8 and Big5 and its XLSX, the XLS and ODS fixtures, a
//! returned worksheet, the config, the schedules, ROC dates) through the
//! library. Every case must end in a value or an error, never a panic.
//!
//! A bounded number of cases runs with the suite; `FUZZ_CASES` runs more:
//! `FUZZ_CASES=5000 cargo test --release --test cli fuzz -- --test-threads 2`.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

use crate::harness::{Test, repo};

fn cases(default: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(default: u32) -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases: cases(default),
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(f64, u8),
    Insert(f64, Vec<u8>),
    Delete(f64, usize),
    Truncate(f64),
    Duplicate(f64, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let at = 0.0..1.0f64;
    let edit = prop_oneof![
        4 => (at.clone(), any::<u8>()).prop_map(|(a, b)| Edit::Flip(a, b)),
        2 => (at.clone(), proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(b','), Just(b'\n'), Just(b'"'), Just(0u8), Just(b'<')],
            1..16,
        ))
            .prop_map(|(a, b)| Edit::Insert(a, b)),
        2 => (at.clone(), 1..64usize).prop_map(|(a, n)| Edit::Delete(a, n)),
        1 => at.clone().prop_map(Edit::Truncate),
        1 => (at, 1..256usize).prop_map(|(a, n)| Edit::Duplicate(a, n)),
    ];
    proptest::collection::vec(edit, 1..8)
}

fn apply(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let pos = |b: &Vec<u8>, a: f64| ((b.len() as f64) * a) as usize;
    for e in edits {
        match e {
            Edit::Flip(a, x) if !b.is_empty() => {
                let i = pos(&b, *a).min(b.len() - 1);
                b[i] ^= x | 1;
            }
            Edit::Insert(a, bytes) => {
                let i = pos(&b, *a);
                b.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(a, n) => {
                let i = pos(&b, *a);
                let j = (i + n).min(b.len());
                b.drain(i..j);
            }
            Edit::Truncate(a) => {
                let i = pos(&b, *a);
                b.truncate(i);
            }
            Edit::Duplicate(a, n) => {
                let i = pos(&b, *a);
                let j = (i + n).min(b.len());
                let piece = b[i..j].to_vec();
                b.splice(j..j, piece);
            }
            Edit::Flip(..) => {}
        }
    }
    b
}

/// A config whose inbox holds `file` (relative to the inbox) with `bytes`.
fn ingest_one(t: &Test, rel: &str, bytes: &[u8]) {
    let inbox = t.path("inbox");
    let _ = std::fs::remove_dir_all(&inbox);
    let p = inbox.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    let config = t.loaded_config();
    // A value or an error; a panic fails the case.
    let _ = webir_audit::ingest::ingest(&config, None);
}

fn sample(rel: &str) -> Vec<u8> {
    std::fs::read(repo().join("sample_data/inbox").join(rel)).unwrap()
}

#[test]
fn fuzz_ingest_of_mutated_real_exports() {
    let t = Test::new();
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        (
            "query_logs/q.csv",
            sample("query_logs/webir_querylog_2026Q1.csv"),
        ),
        (
            "query_logs/q_big5.csv",
            sample("query_logs/webir_querylog_202604-05_big5.csv"),
        ),
        (
            "query_logs/q.xlsx",
            sample("query_logs/webir_querylog_202606.xlsx"),
        ),
        (
            "roster/r.xlsx",
            sample("roster/webir_accounts_20260702.xlsx"),
        ),
        (
            "roster/r.xls",
            std::fs::read(repo().join("tests/fixtures/roster.xls")).unwrap(),
        ),
        (
            "hr/h.ods",
            std::fs::read(repo().join("tests/fixtures/hr.ods")).unwrap(),
        ),
        ("forms/f.csv", sample("forms/request_forms_2026H1.csv")),
    ];
    // The big CSVs are cut to their first 64 KiB: mutations, not volume.
    let inputs: Vec<(&str, Vec<u8>)> = inputs
        .into_iter()
        .map(|(r, b)| {
            let b = if r.ends_with(".csv") {
                b[..b.len().min(65536)].to_vec()
            } else {
                b
            };
            (r, b)
        })
        .collect();
    let mut runner = runner(12);
    for (rel, bytes) in &inputs {
        runner
            .run(&edits(), |e| {
                ingest_one(&t, rel, &apply(bytes, &e));
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
    }
}

#[test]
fn fuzz_ingest_of_random_bytes() {
    let t = Test::new();
    let mut runner = runner(24);
    for rel in [
        "query_logs/x.csv",
        "roster/x.xlsx",
        "hr/x.ods",
        "forms/x.xls",
    ] {
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..4096), |b| {
                ingest_one(&t, rel, &b);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
    }
}

/// Dates as agencies write them, and near misses, in a query log.
#[test]
fn fuzz_roc_and_gregorian_dates() {
    let t = Test::new();
    let date = prop_oneof![
        "(民國)?[0-9]{1,4}[/.年-][0-9]{1,2}[/.月-][0-9]{1,2}日?( (上午|下午)?[0-9]{1,2}[:時][0-9]{1,2}([:分][0-9]{1,2}秒?)?)?",
        "[0-9]{6,8}( [0-9]{2}:?[0-9]{2}(:?[0-9]{2})?)?",
        "\\PC{0,24}",
    ];
    let mut runner = runner(48);
    runner
        .run(&proptest::collection::vec(date, 1..20), |dates| {
            let mut csv = String::from("帳號,查詢時間,查詢項目,被查詢人身分證號,機關\n");
            for d in &dates {
                csv.push_str(&format!(
                    "u1,\"{}\",個人投保資料,A123456789,KHB\n",
                    d.replace('"', "")
                ));
            }
            ingest_one(&t, "query_logs/d.csv", csv.as_bytes());
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_config_and_schedule_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let config_text = std::fs::read(repo().join("sample_data/webir-audit.toml")).unwrap();
    let schedule_text = std::fs::read(repo().join("schedules/sample-audit.toml")).unwrap();
    let cfg = tmp.path().join("c.toml");
    let sched = tmp.path().join("schedules");
    std::fs::create_dir_all(&sched).unwrap();
    let mut runner = runner(64);
    runner
        .run(&edits(), |e| {
            std::fs::write(&cfg, apply(&config_text, &e)).unwrap();
            let _ = webir_audit::config::load(&cfg);
            std::fs::write(sched.join("s.toml"), apply(&schedule_text, &e)).unwrap();
            let _ = webir_audit::schedule::load(&sched, chrono_tz::Asia::Taipei);
            Ok(())
        })
        .unwrap();
}

/// A returned worksheet, mutated: refused with an error or read, never a
/// panic.
#[test]
fn fuzz_returned_worksheets() {
    let city = Test::sample_city();
    let run: PathBuf = city.sample_audit_2026h1(&["--no-send"]).run_dir();
    let original = std::fs::read(run.join("reports/KPB.xlsx")).unwrap();
    let cfg = city.loaded_config();
    let state = city.path("fuzz-state");
    let file = city.path("returned.xlsx");
    let mut runner = runner(24);
    runner
        .run(&edits(), |e| {
            let bytes = apply(&original, &e);
            std::fs::write(&file, &bytes).unwrap();
            let mut store = webir_audit::store::Store::open(&state).unwrap();
            if let Ok(r) = webir_audit::worksheet::ingest_returned(
                &file,
                &bytes,
                "0",
                &cfg.paths.archive,
                "2026-07-10T09:00:00",
            ) {
                r.pending.record(&mut store).unwrap();
            }
            Ok(())
        })
        .unwrap();
    let _: &Path = &file;
}
