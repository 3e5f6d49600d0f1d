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

/// The README's list of finding codes is the product's: every code of
/// `Code::ALL`, and nothing else, so a new code cannot ship unlisted.
#[test]
fn the_readme_lists_every_finding_code_and_no_other() {
    let readme = std::fs::read_to_string(crate::harness::repo().join("README.md")).unwrap();
    let start = readme
        .find("The codes (stable;")
        .expect("the README's list of codes");
    let list = &readme[start..];
    let list = &list[..list.find("\n\n").unwrap_or(list.len())];
    let listed: std::collections::BTreeSet<&str> = list
        .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
        .filter(|w| w.len() > 4 && w.contains('_'))
        .collect();
    let all: std::collections::BTreeSet<&str> = webir_audit::checks::Code::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    let missing: Vec<_> = all.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&all).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README.md's codes: missing {missing:?}, not codes {unknown:?}"
    );
}
