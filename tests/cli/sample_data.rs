//! The committed sample city: it is what the generator writes, it ingests
//! cleanly with the README's command, and it carries the planted problems
//! later checks look for.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;
use webir_audit::model::Table;

use crate::harness::{repo, run_binary};

fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == "var" {
                continue; // state written by demo runs, not generated
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn committed_sample_data_is_what_the_generator_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_binary(
        &["gen-data", "--out", dir.path().to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    let generated = files_under(dir.path());
    let committed = files_under(&repo().join("sample_data"));
    assert_eq!(
        generated.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &generated {
        assert!(
            bytes == &committed[name],
            "sample_data/{name} differs from the generator's output: regenerate with `cargo run -- gen-data --out sample_data`"
        );
    }
}

#[test]
fn readme_demo_ingests_the_sample_city_cleanly() {
    let out = run_binary(
        &["ingest", "--config", "sample_data/webir-audit.toml"],
        &repo(),
    );
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let rows = |table: &str| -> usize {
        let line = out
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(table))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(rows("query_log"), 50_000);
    assert_eq!(rows("roster"), 302);
    assert_eq!(rows("hr"), 298);
    assert!(rows("request_forms") > 15_000);
}

fn count(df: &DataFrame, predicate: Expr) -> usize {
    df.clone()
        .lazy()
        .filter(predicate)
        .collect()
        .unwrap()
        .height()
}

#[test]
fn sample_city_carries_the_planted_problems() {
    let config = webir_audit::config::load(&repo().join("sample_data/webir-audit.toml")).unwrap();
    assert_eq!(config.agencies.iter().count(), 17);
    let ing = webir_audit::ingest::ingest(&config, Some(&"2026H1".parse().unwrap())).unwrap();
    assert!(ing.is_clean());
    assert_eq!(ing.outside_period, 0);
    let (q, roster, hr, forms) = (
        ing.table(Table::QueryLog),
        ing.table(Table::Roster),
        ing.table(Table::Hr),
        ing.table(Table::RequestForms),
    );

    for (status, n) in [
        ("departed", 4),
        ("retired", 2),
        ("transferred", 3),
        ("suspended", 2),
    ] {
        assert_eq!(count(hr, col("status").eq(lit(status))), n, "{status}");
    }
    for kind in ["labourer", "driver", "temporary"] {
        assert_eq!(count(hr, col("employment_type").eq(lit(kind))), 1, "{kind}");
    }
    assert_eq!(count(roster, col("role").eq(lit("chief_admin"))), 1);
    assert_eq!(
        count(
            roster,
            col("role")
                .eq(lit("officer"))
                .and(col("agency_id").eq(lit("KTB")))
        ),
        0
    );
    assert_eq!(
        count(
            roster,
            col("role")
                .eq(lit("officer"))
                .and(col("agency_id").eq(lit("DSM")))
        ),
        2
    );
    assert_eq!(count(roster, col("status").eq(lit("disabled"))), 12);
    // Holders unknown to HR.
    let unknown = roster
        .clone()
        .lazy()
        .join(
            hr.clone().lazy(),
            [col("person_id")],
            [col("person_id")],
            JoinArgs::new(JoinType::Anti),
        )
        .collect()
        .unwrap();
    assert_eq!(unknown.height(), 2);
    // Duplicate holders: two people with two accounts.
    let dup = roster
        .clone()
        .lazy()
        .group_by([col("person_id")])
        .agg([len().alias("n")])
        .filter(col("n").gt(lit(1)))
        .collect()
        .unwrap();
    assert_eq!(dup.height(), 2);
    // An account that queries but is not in the roster.
    assert!(count(q, col("account_id").eq(lit("W09999"))) > 0);
    assert_eq!(count(roster, col("account_id").eq(lit("W09999"))), 0);
    // Forms never approved, and queries at night.
    assert!(count(forms, col("approved_at").is_null()) > 50);
    assert!(count(q, col("queried_at").dt().hour().gt_eq(lit(21i8))) > 100);
    // The spike: one account, one day, 400 queries.
    assert!(
        count(
            q,
            col("queried_at")
                .dt()
                .date()
                .eq(lit(chrono::NaiveDate::from_ymd_opt(2026, 5, 12).unwrap()))
        ) >= 400
    );
    // One subject looked up by many accounts.
    let many = q
        .clone()
        .lazy()
        .group_by([col("subject_id")])
        .agg([col("account_id").n_unique().alias("n")])
        .filter(col("n").gt_eq(lit(15u32)))
        .collect()
        .unwrap();
    assert_eq!(many.height(), 1);
}
