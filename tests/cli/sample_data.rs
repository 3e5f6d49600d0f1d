//! The committed sample city: it is what the generator writes, it ingests
//! cleanly with the README's command, and it carries the planted problems
//! later checks look for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use polars::prelude::*;
use webir_audit::model::Table;

use crate::harness::Test;
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
    let rows = |table: &str| -> usize { out.rows(table).unwrap() };
    assert_eq!(rows("query_log"), 50_000);
    // Both roster snapshots (January's 301 rows and July's 302) are read;
    // a run uses one of them (see `ingest::snapshot`).
    assert_eq!(rows("roster"), 603);
    assert!(
        out.stdout
            .contains("roster/webir_accounts_20260105.xlsx: roster snapshot of 2026-01-05 (date from the title row)"),
        "{}",
        out.stdout
    );
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
fn sample_city_ingests_with_its_shapes_intact() {
    let config = webir_audit::config::load(&repo().join("sample_data/webir-audit.toml")).unwrap();
    assert_eq!(config.agencies.iter().count(), 17);
    let period: webir_audit::period::Period = "2026H1".parse().unwrap();
    let mut ing = webir_audit::ingest::ingest(&config, Some(&period)).unwrap();
    assert!(ing.is_clean());
    ing.resolve_roster(webir_audit::ingest::snapshot::Reference::PeriodEnd(
        period.last_day(),
    ))
    .unwrap();
    let used = ing.roster_use.clone().unwrap();
    assert_eq!(used.date.to_string(), "2026-07-02");
    assert_eq!(used.removed_accounts, 1);
    assert_eq!(ing.outside_period, 0);
    let (roster, hr) = (ing.table(Table::Roster), ing.table(Table::Hr));
    for (status, n) in [
        ("departed", 4),
        ("retired", 2),
        ("transferred", 3),
        ("suspended", 2),
    ] {
        assert_eq!(count(hr, col("status").eq(lit(status))), n, "{status}");
    }
    assert_eq!(count(roster, col("role").eq(lit("chief_admin"))), 1);
    assert_eq!(count(roster, col("status").eq(lit("disabled"))), 12);
}

/// `(code, account id or, for agency-level codes, agency id)` of findings.
fn found(findings: &DataFrame) -> BTreeSet<(String, String)> {
    let get = |c: &str| findings.column(c).unwrap().str().unwrap().clone();
    let (code, account, agency) = (get("code"), get("account_id"), get("agency_id"));
    (0..findings.height())
        .map(|i| {
            let key = account.get(i).or(agency.get(i)).unwrap_or("").to_owned();
            (code.get(i).unwrap().to_owned(), key)
        })
        .collect()
}

/// The checks find every problem planted in the sample city, on the right
/// account, and nothing on accounts where nothing was planted.
#[test]
fn checks_find_every_planted_problem_and_nothing_else() {
    use webir_audit::checks::{self, Scope};
    let config = webir_audit::config::load(&repo().join("sample_data/webir-audit.toml")).unwrap();
    let mut ing = webir_audit::ingest::ingest(&config, None).unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 7, 2).unwrap();
    // As a run does: the roster snapshot of the review day (July's; the
    // January one only adds the account removed since).
    ing.resolve_roster(webir_audit::ingest::snapshot::Reference::Day(as_of))
        .unwrap();
    let tables = webir_audit::run::input_frames(&ing);
    let review = checks::run(&config, tables.clone(), Scope::Accounts, as_of, None).unwrap();
    let queries = checks::run(
        &config,
        tables,
        Scope::Queries,
        as_of,
        Some("2026H1".parse().unwrap()),
    )
    .unwrap();
    let mut got = found(&review);
    got.extend(found(&queries));

    let planted: BTreeSet<(String, String)> =
        webir_audit::synth::planted(webir_audit::synth::DEFAULT_SEED)
            .into_iter()
            .map(|(c, k)| (c.as_str().to_owned(), k))
            .collect();
    let missing: Vec<_> = planted.difference(&got).collect();
    assert!(missing.is_empty(), "planted but not found: {missing:?}");
    let planted_keys: BTreeSet<&str> = planted.iter().map(|(_, k)| k.as_str()).collect();
    let false_positives: Vec<_> = got
        .iter()
        .filter(|(_, k)| !planted_keys.contains(k.as_str()))
        .collect();
    assert!(
        false_positives.is_empty(),
        "findings on accounts with nothing planted: {false_positives:?}"
    );
    // Every planted kind of problem exists, so the test above cannot pass vacuously.
    let kinds: BTreeSet<&str> = planted.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        kinds.len(),
        webir_audit::checks::Code::ALL.len(),
        "{kinds:?}"
    );
    // Subjects never appear unmasked.
    let subjects = queries.column("subject").unwrap().str().unwrap().clone();
    assert!(subjects.iter().flatten().all(|s| s.contains("****")));
}

/// Issue 31, on a city shaped unlike the sample one (14 agencies, 420
/// accounts, the shape of `render::a_city_shaped_differently_…`): the
/// applications register's checks find the problems planted in it, on
/// the right accounts, and nothing on the other 417, officers included.
#[test]
fn the_application_checks_hold_on_a_city_shaped_differently() {
    use webir_audit::checks::{self, Code, Scope};
    let tmp = tempfile::tempdir().unwrap();
    let size = webir_audit::synth::LoadSize {
        agencies: 14,
        accounts: 420,
        queries: 30_000,
    };
    webir_audit::synth::write_load_city(tmp.path(), size, 7).unwrap();
    let config = webir_audit::config::load(&tmp.path().join("webir-audit.toml")).unwrap();
    let mut ing = webir_audit::ingest::ingest(&config, None).unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 7, 2).unwrap();
    ing.resolve_roster(webir_audit::ingest::snapshot::Reference::Day(as_of))
        .unwrap();
    let review = checks::run(
        &config,
        webir_audit::run::input_frames(&ing),
        Scope::Accounts,
        as_of,
        None,
    )
    .unwrap();
    let application = [
        Code::AccountNoApplication,
        Code::AccountCreatedBeforeApproval,
        Code::AccountApplicationOtherHolder,
        Code::AccountChangeNotApplied,
    ];
    let got: BTreeSet<(String, String)> = found(&review)
        .into_iter()
        .filter(|(c, _)| application.iter().any(|a| a.as_str() == c))
        .collect();
    let want: BTreeSet<(String, String)> = webir_audit::synth::load_planted(size)
        .into_iter()
        .map(|(c, a)| (c.as_str().to_owned(), a))
        .collect();
    assert_eq!(want.len(), 3);
    assert_eq!(got, want);
}

/// `run` writes a run folder with the four files, private, never over an
/// earlier run, and says where as its last line.
#[test]
fn run_writes_a_private_run_folder_per_run() {
    let city = Test::sample_city();
    let args = ["run", "query-check", "--period", "2026H1"];
    let first = city.run(&args);
    assert_eq!(
        first.status, 1,
        "critical and high findings exit 1\n{}{}",
        first.stdout, first.stderr
    );
    let second = city.run(&args);
    let dir_of = |out: &crate::harness::Output| out.run_dir();
    let (a, b) = (dir_of(&first), dir_of(&second));
    assert_ne!(a, b, "a second run must not overwrite the first");
    assert!(
        a.starts_with(city.path("var/archive/2026H1/query-check")),
        "{}",
        a.display()
    );

    let findings = std::fs::read(a.join("findings.csv")).unwrap();
    assert!(
        findings.starts_with(b"\xEF\xBB\xBF"),
        "UTF-8 with BOM so Excel reads it"
    );
    let text = String::from_utf8(findings[3..].to_vec()).unwrap();
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        "code,severity,unit_id,agency_id,account_id,holder_name,subject,occurred_at,reason,source_file,source_row"
    );
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["job"], "query-check");
    assert_eq!(run["period"], "2026H1");
    assert_eq!(
        run["findings"].as_u64().unwrap() as usize,
        text.lines().count() - 1
    );
    assert_eq!(run["by_code"]["QUERY_VOLUME_SPIKE"], 1);
    let inputs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("inputs.json")).unwrap()).unwrap();
    assert_eq!(inputs.as_array().unwrap().len(), 8);
    assert_eq!(inputs[0]["sha256"].as_str().unwrap().len(), 64);
    #[cfg(unix)]
    for f in ["findings.csv", "rejects.csv", "inputs.json", "run.json"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400, "{f}: private, and read-only once sealed");
    }
    // National IDs of people queried never appear unmasked.
    assert!(!text.lines().skip(1).any(|l| {
        l.split(',')
            .nth(6)
            .is_some_and(|s| !s.is_empty() && !s.contains("****"))
    }));

    let review = city.run(&["run", "account-review", "--as-of", "2026-07-02"]);
    assert_eq!(review.status, 1, "{}", review.stderr);
    assert!(dir_of(&review).starts_with(city.path("var/archive/as-of-2026-07-02/account-review")));
    assert!(
        review.stdout.contains("AGENCY_OFFICER_COUNT"),
        "{}",
        review.stdout
    );
}

#[test]
fn query_check_needs_a_period() {
    let out = run_binary(
        &[
            "run",
            "query-check",
            "--config",
            "sample_data/webir-audit.toml",
        ],
        &repo(),
    );
    assert_eq!(out.status, 2);
    assert!(
        out.stderr
            .contains("query-check needs --period or --from/--to"),
        "{}",
        out.stderr
    );
}
