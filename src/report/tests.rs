use super::*;

#[test]
fn cjk_counts_double() {
    assert_eq!(display_width("abc"), 3);
    assert_eq!(display_width("衛生局"), 6);
    assert_eq!(display_width("A12****789"), 10);
    assert_eq!(display_width("（全形）"), 8);
}

#[test]
fn period_labels_read_as_officers_write_them() {
    assert_eq!(period_label("2026H1"), "2026年上半年（民國115年）");
    assert_eq!(period_label("2026"), "2026年全年（民國115年）");
    assert_eq!(period_label("2026Q3"), "2026年第三季（民國115年）");
    assert_eq!(
        period_label("2026-02-01..2026-02-28"),
        "2026-02-01..2026-02-28"
    );
    assert_eq!(period_label("as-of-2026-07-02"), "基準日 2026-07-02");
}

#[test]
fn formula_lookalikes_are_recognised() {
    for s in ["=1+1", "+886", "-1", "@SUM(A1)", "\tx", "\rx"] {
        assert!(looks_like_formula(s), "{s:?}");
    }
    for s in ["a=1", "衛生局", "", "1-2"] {
        assert!(!looks_like_formula(s), "{s:?}");
    }
}

use std::collections::BTreeSet;

use calamine::{Data, Reader, Xlsx};
use polars::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng};

use super::build::{RunFacts, models};
use crate::checks::Code;
use crate::config::Config;

fn sheets_of(bytes: Vec<u8>) -> Vec<(String, Vec<Vec<Data>>)> {
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    let names = wb.sheet_names().to_vec();
    names
        .into_iter()
        .map(|n| {
            let r = wb.worksheet_range(&n).unwrap();
            let rows = r.rows().map(<[Data]>::to_vec).collect();
            (n, rows)
        })
        .collect()
}

/// What a run of `kind` hands the reports, with no sample and no files.
fn facts<'a>(
    config: &'a Config,
    kind: ReportKind,
    findings: &'a DataFrame,
    rejects: &'a DataFrame,
    roster: Option<&'a DataFrame>,
) -> RunFacts<'a> {
    RunFacts {
        config,
        kind,
        period_id: "2026H1".into(),
        run_id: "r".into(),
        generated_at: chrono::NaiveDate::from_ymd_opt(2026, 7, 5)
            .unwrap()
            .and_hms_opt(8, 0, 0)
            .unwrap(),
        findings,
        files: &[],
        rejects,
        roster,
        sample: None,
        queries_by_month: None,
        evidence: None,
        selection: None,
        unit_status: None,
        due: None,
        chain_head: None,
        orphans: None,
        notes: Vec::new(),
        not_checked: &[],
        roster_use: None,
        asked: None,
        after_disabling: None,
    }
}

/// A random agency tree: every top-level agency requesting (config
/// validation demands a unit for everyone), others requesting at random.
fn random_config(rng: &mut ChaCha20Rng) -> Config {
    let n = 2 + (rng.next_u64() % 12) as usize;
    let mut toml = String::from(
        "[paths]\ninbox = \"i\"\narchive = \"a\"\nstate = \"s\"\n[mail]\nfrom = \"w@example.gov.tw\"\nadmin = \"a@example.gov.tw\"\n",
    );
    for i in 0..n {
        let parent = if i == 0 || rng.next_u64().is_multiple_of(3) {
            None
        } else {
            Some(rng.next_u64() as usize % i)
        };
        let requesting = parent.is_none() || rng.next_u64().is_multiple_of(3);
        toml.push_str(&format!(
            "[[agencies]]\nid = \"A{i}\"\nname = \"機關{i}\"\nparent = \"{}\"\nrequesting = {requesting}\npurposes = [\"other\"]\n",
            parent.map_or(String::new(), |p| format!("A{p}"))
        ));
        if requesting {
            toml.push_str(&format!("officer_email = \"o{i}@example.gov.tw\"\n"));
        }
        if i == 0 {
            toml.push_str("health_bureau = true\n");
        }
    }
    crate::config::validate(
        toml::from_str(&toml).unwrap(),
        std::path::Path::new("/x/c.toml"),
    )
    .unwrap()
}

fn findings_and_roster(config: &Config, rng: &mut ChaCha20Rng) -> (DataFrame, DataFrame) {
    let agencies: Vec<_> = config.agencies.iter().collect();
    let n = 40;
    let pick = |r: u64| agencies[r as usize % agencies.len()];
    let mut rows: Vec<(String, String, String, String, String)> = Vec::new();
    for i in 0..n {
        let a = pick(rng.next_u64());
        let code = Code::ALL[rng.next_u64() as usize % Code::ALL.len()];
        rows.push((
            code.as_str().to_owned(),
            code.severity().name().to_owned(),
            a.unit.clone(),
            a.id.clone(),
            format!("u{i}"),
        ));
    }
    let col_of = |f: fn(&(String, String, String, String, String)) -> String| -> Vec<String> {
        rows.iter().map(f).collect()
    };
    let findings = df!(
        "code" => col_of(|r| r.0.clone()),
        "severity" => col_of(|r| r.1.clone()),
        "unit_id" => col_of(|r| r.2.clone()),
        "agency_id" => col_of(|r| r.3.clone()),
        "account_id" => col_of(|r| r.4.clone()),
        "holder_name" => col_of(|_| "王小明".to_owned()),
        "subject" => col_of(|_| "A12****789".to_owned()),
        "occurred_at" => vec![chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap().and_hms_opt(10, 0, 0).unwrap(); n],
        "reason" => col_of(|_| "理由".to_owned()),
        "source_file" => col_of(|_| "f.csv".to_owned()),
        "source_row" => (0..n as i64).collect::<Vec<_>>(),
    )
    .unwrap();
    let roster = df!(
        "account_id" => col_of(|r| r.4.clone()),
        "agency_id" => col_of(|r| r.3.clone()),
        "holder_name" => col_of(|_| "王小明".to_owned()),
        "role" => col_of(|_| "officer".to_owned()),
        "status" => col_of(|_| "active".to_owned()),
    )
    .unwrap();
    (findings, roster)
}

/// On random agency trees, a unit's workbook shows rows of its own subtree
/// only: findings, accounts and chart rows.
#[test]
fn no_workbook_holds_a_row_of_another_unit() {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    for _ in 0..25 {
        let config = random_config(&mut rng);
        let (findings, roster) = findings_and_roster(&config, &mut rng);
        let rejects = DataFrame::empty_with_schema(&crate::ingest::rejects_schema());
        for kind in [ReportKind::AccountReview, ReportKind::QueryCheck] {
            let facts = facts(
                &config,
                kind,
                &findings,
                &rejects,
                (kind == ReportKind::AccountReview).then_some(&roster),
            );
            let all = models(&facts).unwrap();
            assert_eq!(all.len(), config.agencies.units().count() + 1);
            for m in all.iter().filter(|m| !m.city_wide()) {
                let mine: Vec<_> = config
                    .agencies
                    .iter()
                    .filter(|a| a.unit == m.unit_id)
                    .collect();
                let names: BTreeSet<String> = mine.iter().map(|a| a.name.clone()).collect();
                let text = |c: &Cell| match c {
                    Cell::Text(s) => s.clone(),
                    _ => String::new(),
                };
                let mut shown = 0;
                if let Some(q) = m.queries().map(|q| &q.findings) {
                    let agency = q.headers.iter().position(|h| h == "機關").unwrap();
                    for r in &q.rows {
                        // Named within the unit, as its worksheet names it.
                        let a = text(&r[agency]);
                        assert!(
                            names.iter().any(|n| n.ends_with(&a)),
                            "{}: {r:?}",
                            m.unit_id
                        );
                        shown += 1;
                    }
                }
                if let super::Document::AccountReview { accounts: a } = &m.document {
                    for r in &a.rows {
                        assert!(names.contains(&text(&r[1])), "{}: {r:?}", m.unit_id);
                        shown += 1;
                    }
                }
                for r in &m.severity_by_agency.rows {
                    assert!(names.contains(&text(&r[0])), "{}: {r:?}", m.unit_id);
                }
                // Nothing of the unit is lost either.
                let own = findings
                    .column("unit_id")
                    .unwrap()
                    .str()
                    .unwrap()
                    .iter()
                    .zip(findings.column("code").unwrap().str().unwrap().iter())
                    .filter(|(u, c)| {
                        *u == Some(m.unit_id.as_str())
                            && (kind == ReportKind::AccountReview
                                || c.is_some_and(|c| {
                                    c.starts_with("QUERY_") || c == "ACCOUNT_REPEAT_PATTERN"
                                }))
                    })
                    .count();
                if kind == ReportKind::QueryCheck {
                    assert_eq!(shown, own, "{}", m.unit_id);
                }
                let total: i64 = m
                    .by_severity
                    .rows
                    .iter()
                    .map(|r| if let Cell::Int(n) = r[1] { n } else { 0 })
                    .sum();
                assert_eq!(
                    total as usize,
                    findings
                        .column("unit_id")
                        .unwrap()
                        .str()
                        .unwrap()
                        .iter()
                        .filter(|u| *u == Some(m.unit_id.as_str()))
                        .count()
                );
                // And the rendered workbook reads back.
                let _ = sheets_of(render(m).unwrap());
            }
        }
    }
}

/// A table longer than a sheet continues on the next, nothing dropped.
#[test]
fn long_tables_continue_on_further_sheets() {
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let config = random_config(&mut rng);
    let (findings, _) = findings_and_roster(&config, &mut rng);
    let rejects = DataFrame::empty_with_schema(&crate::ingest::rejects_schema());
    let facts = facts(&config, ReportKind::QueryCheck, &findings, &rejects, None);
    let city = models(&facts).unwrap().pop().unwrap();
    let rows = city.queries().unwrap().findings.rows.len();
    assert!(rows > 10, "{rows}");
    let sheets = sheets_of(super::sheets::render_split(&city, 4).unwrap());
    let parts: Vec<&(String, Vec<Vec<Data>>)> = sheets
        .iter()
        .filter(|(n, _)| n.starts_with("異常查詢"))
        .collect();
    assert_eq!(parts.len(), rows.div_ceil(4));
    assert_eq!(parts[1].0, "異常查詢(2)");
    let data: usize = parts.iter().map(|(_, r)| r.len() - 3).sum();
    assert_eq!(data, rows, "every row on some sheet");
}

/// Every deadline a run states is a working day of the city's calendar
/// (a weekend or holiday moves it to the next working day), and never
/// earlier than the days `[followup]` gives: for a run made on any day of
/// the year, of every kind.
#[test]
fn every_deadline_is_a_working_day() {
    let config = crate::config::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/webir-audit.toml"),
    )
    .unwrap();
    let holidays = &config.rules.holidays;
    assert!(holidays.configured);
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let mut moved = 0;
    for k in 0..365 {
        let day = start + chrono::Duration::days(k);
        let at = day.and_hms_opt(8, 0, 0).unwrap();
        for kind in [
            ReportKind::SampleAudit,
            ReportKind::AccountReview,
            ReportKind::QueryCheck,
            ReportKind::InternalAudit,
            ReportKind::ExternalAudit,
        ] {
            let (days, due) = super::build::deadline(&config, kind, at);
            let earliest = day + chrono::Duration::days(days);
            assert!(holidays.is_workday(due), "{kind:?} made {day}: due {due}");
            assert!(due >= earliest, "{kind:?} made {day}: due {due}");
            assert!(
                earliest
                    .iter_days()
                    .take_while(|d| *d < due)
                    .all(|d| !holidays.is_workday(d)),
                "{kind:?} made {day}: due {due}, not the first working day from {earliest}"
            );
            moved += usize::from(due > earliest);
        }
    }
    // Weekends and the sample calendar's holidays did move some.
    assert!(moved > 500, "{moved}");
}

/// Issue 34: 異常查詢明細 listed every query of a pattern (a city's
/// off-hours queries over a half-year of ten million: a million lines,
/// half a minute to write, nobody to read them). An item lists its first
/// [`DETAILS_SHOWN`](super::build::DETAILS_SHOWN) and says, on both
/// sheets, how many more there are and where: the run's `findings.csv`.
#[test]
fn a_pattern_lists_what_a_person_reads_and_says_where_the_rest_are() {
    use super::build::DETAILS_SHOWN;
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let config = random_config(&mut rng);
    let unit = config.agencies.iter().next().unwrap();
    let n = DETAILS_SHOWN + 7;
    // Account u1: n off-hours queries; u2: three.
    let accounts: Vec<&str> = (0..n + 3)
        .map(|i| if i < n { "u1" } else { "u2" })
        .collect();
    let findings = findings_of(Code::QueryOffHours, unit, &accounts);
    let rejects = DataFrame::empty_with_schema(&crate::ingest::rejects_schema());
    let facts = facts(&config, ReportKind::QueryCheck, &findings, &rejects, None);
    let city = models(&facts).unwrap().pop().unwrap();
    let queries = city.queries().unwrap();
    let details = queries.details.as_ref().unwrap();
    assert_eq!(details.rows.len(), DETAILS_SHOWN + 1 + 3);
    let text = |c: &Cell| match c {
        Cell::Text(s) => s.clone(),
        other => format!("{other:?}"),
    };
    let note = text(&details.rows[DETAILS_SHOWN][0]);
    assert!(
        note.contains("其餘 7 筆未列出")
            && note.contains(&format!("全部 {n} 筆見本次執行之 findings.csv")),
        "{note}"
    );
    let decision = queries
        .findings
        .rows
        .iter()
        .map(|r| r.iter().map(text).collect::<Vec<_>>().join("|"))
        .find(|r| r.contains("u1"))
        .unwrap();
    assert!(
        decision.contains(&format!("共 {n} 筆查詢"))
            && decision.contains(&format!("列前 {DETAILS_SHOWN} 筆"))
            && decision.contains("findings.csv"),
        "{decision}"
    );
    // The item of three lists all three, and says nothing of a rest.
    let small = queries
        .findings
        .rows
        .iter()
        .map(|r| r.iter().map(text).collect::<Vec<_>>().join("|"))
        .find(|r| r.contains("u2"))
        .unwrap();
    assert!(!small.contains("findings.csv"), "{small}");
    // As rendered: the note is on the detail sheet.
    let sheets = sheets_of(render(&city).unwrap());
    let (_, rows) = sheets
        .iter()
        .find(|(name, _)| name == "異常查詢明細")
        .unwrap();
    assert!(
        rows.iter()
            .any(|r| r.iter().any(|c| c.to_string().contains("其餘 7 筆未列出"))),
        "the note is on the sheet"
    );
}

/// Findings of `code`, one per entry of `accounts` (of agency `a`), a
/// minute apart.
fn findings_of(code: Code, a: &crate::config::Agency, accounts: &[&str]) -> DataFrame {
    let k = accounts.len();
    let at = |i: usize| {
        chrono::NaiveDate::from_ymd_opt(2026, 3, 7)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            + chrono::Duration::minutes(i as i64)
    };
    df!(
        "code" => vec![code.as_str(); k],
        "severity" => vec![code.severity().name(); k],
        "unit_id" => vec![a.unit.as_str(); k],
        "agency_id" => vec![a.id.as_str(); k],
        "account_id" => accounts.to_vec(),
        "holder_name" => vec!["王小明"; k],
        "subject" => vec!["A12****789"; k],
        "occurred_at" => (0..k).map(at).collect::<Vec<_>>(),
        "reason" => vec!["理由"; k],
        "source_file" => vec!["f.csv"; k],
        "source_row" => (0..k as i64).collect::<Vec<_>>(),
    )
    .unwrap()
}

/// Issue 34: a kind of finding asked one by one listed every row on
/// 異常查詢 (the subjects queried by five accounts or more in fifty
/// million queries: 1.4 million rows, a minute and a half to write). The
/// sheet lists the first [`ROWS_SHOWN_PER_CODE`](super::build::ROWS_SHOWN_PER_CODE)
/// of a kind and its title says how many more there are, and where; the
/// figures elsewhere count them all.
#[test]
fn a_kind_asked_row_by_row_lists_what_a_person_decides_and_says_the_rest() {
    use super::build::ROWS_SHOWN_PER_CODE;
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let config = random_config(&mut rng);
    let unit = config.agencies.iter().next().unwrap();
    let n = ROWS_SHOWN_PER_CODE + 3;
    let accounts: Vec<String> = (0..n).map(|i| format!("u{}", i % 50)).collect();
    let accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
    let findings = findings_of(Code::QuerySubjectManyAccounts, unit, &accounts);
    let rejects = DataFrame::empty_with_schema(&crate::ingest::rejects_schema());
    let facts = facts(&config, ReportKind::QueryCheck, &findings, &rejects, None);
    let models = models(&facts).unwrap();
    let city = models.last().unwrap();
    let queries = city.queries().unwrap();
    assert_eq!(queries.findings.rows.len(), ROWS_SHOWN_PER_CODE);
    assert_eq!(queries.not_listed.len(), 1);
    let said = &queries.not_listed[0];
    assert!(
        said.contains(&format!("共 {n} 筆"))
            && said.contains("其餘 3 筆未列出")
            && said.contains("findings.csv"),
        "{said}"
    );
    // As rendered: the sheet's title says it.
    let sheets = sheets_of(render(city).unwrap());
    let (_, rows) = sheets.iter().find(|(name, _)| name == "異常查詢").unwrap();
    assert!(
        rows[0][0].to_string().contains("其餘 3 筆未列出"),
        "{:?}",
        rows[0]
    );
    // A unit's workbook too.
    let unit_book = models.iter().find(|m| m.unit_id == unit.unit).unwrap();
    assert_eq!(unit_book.queries().unwrap().not_listed.len(), 1);
}
