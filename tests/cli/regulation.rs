//! README's table of the regulation, point by point, kept true: every
//! point has a row, every finding code and job it names exists, and every
//! finding code is named by some point.

use std::collections::BTreeSet;

use crate::harness::repo;

/// The points of the regulation (要點, 2018), each a duty the table answers.
const POINTS: &[&str] = &[
    "1",
    "2",
    "3",
    "4",
    "4(1)",
    "4(2)",
    "4(3)",
    "4(4)",
    "4(5)",
    "4, last paragraph",
    "5(1)",
    "5(1)1",
    "5(1)2",
    "5(1)3",
    "5(2)",
    "5(2)1",
    "5(2)2",
    "5(2)3",
    "5(2)4",
    "5(3)",
    "5(4)",
    "6(1)",
    "6(2)",
    "6(3)",
    "6(4)",
    "7",
];

const KINDS: &[&str] = &[
    "check",
    "document",
    "reminder",
    "own records",
    "attestation",
    "not yet",
    "outside",
];

/// The table's rows: (point, kind, what the product does).
fn rows() -> Vec<(String, String, String)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let at = readme
        .find("<!-- regulation")
        .expect("the regulation marker");
    readme[at..]
        .lines()
        .skip(3)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            (c[1].to_owned(), c[3].to_owned(), c[4].to_owned())
        })
        .collect()
}

/// The backticked words of `text`.
fn quoted(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

#[test]
fn every_point_of_the_regulation_is_answered_and_names_only_what_exists() {
    let rows = rows();
    let points: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(points, POINTS, "one row per point, in order");
    let mut named = BTreeSet::new();
    for (point, kind, what) in &rows {
        assert!(KINDS.contains(&kind.as_str()), "{point}: kind {kind:?}");
        assert!(!what.is_empty(), "{point}: says nothing");
        for word in quoted(what) {
            if word.chars().all(|c| c.is_ascii_uppercase() || c == '_') && word.contains('_') {
                assert!(
                    webir_audit::checks::Code::parse(word).is_some(),
                    "{point}: {word} is no finding code"
                );
                named.insert(word.to_owned());
            }
            if let Some(job) = word.strip_prefix("run ") {
                assert!(
                    webir_audit::job::Job::parse(job).is_some(),
                    "{point}: {job} is no job"
                );
            }
        }
        if kind == "check" {
            assert!(
                quoted(what)
                    .iter()
                    .any(|w| webir_audit::checks::Code::parse(w).is_some()),
                "{point}: a check names its code"
            );
        }
    }
    for code in webir_audit::checks::Code::ALL {
        assert!(
            named.contains(code.as_str()),
            "{} answers no point of the regulation in README",
            code.as_str()
        );
    }
}
