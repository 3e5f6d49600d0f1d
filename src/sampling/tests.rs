//! The properties spec v1 promises, each on a small world: the digest is
//! the spec's (computed the slow, obvious way), and neither row order nor
//! file splits, nor a new account or agency elsewhere, change a stratum.

use std::collections::BTreeMap;

use polars::prelude::*;
use sha2::{Digest, Sha256};

use super::spec::Seed;
use super::*;
use crate::config::Config;
use crate::ingest::canonical_schema;
use crate::model::Table;

const CONFIG: &str = r#"
[paths]
inbox = "inbox"
archive = "archive"
state = "state"
[mail]
from = "w@example.gov.tw"
admin = "a@example.gov.tw"
[[agencies]]
id = "KHB"
name = "衛生局"
requesting = true
purposes = ["public_health"]
officer_email = "o@example.gov.tw"
health_bureau = true
[[agencies]]
id = "KPB"
name = "警察局"
requesting = true
purposes = ["criminal_investigation"]
officer_email = "p@example.gov.tw"
[[agencies]]
id = "KPB-1"
name = "第一分局"
parent = "KPB"
"#;

fn config(extra: &str) -> Config {
    let raw = toml::from_str(&format!("{CONFIG}{extra}")).unwrap();
    crate::config::validate(raw, std::path::Path::new("/nonexistent/c.toml")).unwrap()
}

/// `(account, agency, "YYYY-MM-DD HH:MM:SS[.ffffff]", item, subject)`.
type Row = (String, String, String, String, Option<String>);

fn frame(table: Table, cols: Vec<Column>) -> DataFrame {
    let n = cols.first().map_or(0, |c| c.len());
    let df = DataFrame::new(n, cols).unwrap();
    let exprs: Vec<Expr> = canonical_schema(table)
        .iter()
        .map(|(name, dt)| match df.column(name) {
            Ok(_) => col(name.clone()).cast(dt.clone()),
            Err(_) => lit(NULL).cast(dt.clone()).alias(name.clone()),
        })
        .collect();
    df.lazy().select(exprs).collect().unwrap()
}

fn log(rows: &[Row]) -> DataFrame {
    let at: Vec<chrono::NaiveDateTime> = rows
        .iter()
        .map(|r| chrono::NaiveDateTime::parse_from_str(&r.2, "%Y-%m-%d %H:%M:%S%.f").unwrap())
        .collect();
    frame(
        Table::QueryLog,
        vec![
            Column::new(
                "account_id".into(),
                rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "agency_id".into(),
                rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            ),
            Column::new("queried_at".into(), at),
            Column::new(
                "query_item".into(),
                rows.iter().map(|r| r.3.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "subject_id".into(),
                rows.iter().map(|r| r.4.clone()).collect::<Vec<_>>(),
            ),
            Column::new("source_file".into(), vec!["log.csv"; rows.len()]),
            Column::new(
                "source_row".into(),
                (0..rows.len() as IdxSize).collect::<Vec<_>>(),
            ),
        ],
    )
}

fn roster(accounts: &[(&str, &str)]) -> DataFrame {
    frame(
        Table::Roster,
        vec![
            Column::new(
                "account_id".into(),
                accounts.iter().map(|a| a.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "agency_id".into(),
                accounts.iter().map(|a| a.1).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// A deterministic world: `n` accounts spread over the three agencies,
/// account i with 3 + i mod 17 records in 2026H1, plus a few outside it.
fn world(n: usize) -> Vec<Row> {
    let agencies = ["KHB", "KPB", "KPB-1"];
    let items = ["個人投保資料", "眷屬投保資料", "投保紀錄"];
    let mut rows = Vec::new();
    for i in 0..n {
        let account = format!("u{i:04}");
        for j in 0..3 + i % 17 {
            let day = 1 + (i * 7 + j * 13) % 180;
            let date = chrono::NaiveDate::from_yo_opt(2026, day as u32).unwrap();
            rows.push((
                account.clone(),
                agencies[i % 3].to_owned(),
                format!(
                    "{date} {:02}:{:02}:{:02}",
                    8 + j % 9,
                    (i + j) % 60,
                    (i * j) % 60
                ),
                items[(i + j) % 3].to_owned(),
                (j % 5 != 4).then(|| format!("A1{:08}", (i * 31 + j * 7) % 1000)),
            ));
        }
    }
    // Outside the period: never part of the population.
    rows.push((
        "u0000".into(),
        "KHB".into(),
        "2025-12-31 23:59:59".into(),
        "x".into(),
        None,
    ));
    rows.push((
        "u0000".into(),
        "KHB".into(),
        "2026-07-01 00:00:00".into(),
        "x".into(),
        None,
    ));
    rows
}

fn h1() -> Period {
    "2026H1".parse().unwrap()
}

fn seed() -> Seed {
    "98765432109876543210".parse().unwrap()
}

const PARAMS: Params = Params {
    sample_account_percent: 20,
    sample_records_per_account: 10,
};

/// The population digest computed the obvious way from the spec text.
fn naive_digest(rows: &[Row], agency_of: &BTreeMap<String, String>) -> String {
    let period = h1();
    let mut counts: BTreeMap<(String, String, String, String), u32> = BTreeMap::new();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for r in rows {
        let at = chrono::NaiveDateTime::parse_from_str(&r.2, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        if at < period.start || at >= period.end {
            continue;
        }
        let second = at.format("%Y-%m-%dT%H:%M:%S").to_string();
        let subject = r.4.clone().unwrap_or_default();
        let occ = counts
            .entry((r.0.clone(), second.clone(), r.3.clone(), subject.clone()))
            .or_default();
        *occ += 1;
        lines.push(
            format!(
                "{}\t{}\t{second}|{}|{subject}|{occ}\n",
                r.0, agency_of[&r.0], r.3
            )
            .into_bytes(),
        );
    }
    lines.sort();
    let mut h = Sha256::new();
    for l in lines {
        h.update(l);
    }
    hex::encode(h.finalize())
}

fn log_agencies(rows: &[Row]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    for r in rows {
        let e = m.entry(r.0.clone()).or_insert_with(|| r.1.clone());
        if r.1 < *e {
            *e = r.1.clone();
        }
    }
    m
}

#[test]
fn the_digest_is_the_spec_s_sorted_lines() {
    let mut rows = world(40);
    // Twelve identical keys: occurrences 1..12, whose lines sort 1, 10, 11, 12, 2, ...
    for _ in 0..12 {
        rows.push((
            "u0001".into(),
            "KPB".into(),
            "2026-02-02 10:00:00".into(),
            "投保紀錄".into(),
            Some("B200000000".into()),
        ));
    }
    // Same second, different microseconds: one key, two occurrences.
    rows.push((
        "u0002".into(),
        "KPB-1".into(),
        "2026-02-03 10:00:00.250".into(),
        "a".into(),
        None,
    ));
    rows.push((
        "u0002".into(),
        "KPB-1".into(),
        "2026-02-03 10:00:00.750".into(),
        "a".into(),
        None,
    ));
    let pop = population(&log(&rows), &roster(&[]), &h1()).unwrap();
    assert_eq!(pop.digest, naive_digest(&rows, &log_agencies(&rows)));
    assert_eq!(pop.frame.height(), rows.len() - 2);
    let u1 = pop
        .accounts
        .iter()
        .find(|a| a.account_id == "u0001")
        .unwrap();
    assert_eq!(u1.records, 3 + 1 + 12);
}

#[test]
fn fields_that_break_the_column_sort_fall_back_to_sorting_lines() {
    // "a" and "a|0": the column sort puts "a" first, the lines "a|0|…" first.
    let rows: Vec<Row> = vec![
        (
            "u1".into(),
            "KHB".into(),
            "2026-03-01 10:00:00".into(),
            "a".into(),
            Some("A123456789".into()),
        ),
        (
            "u1".into(),
            "KHB".into(),
            "2026-03-01 10:00:00".into(),
            "a|0".into(),
            Some("A123456789".into()),
        ),
        (
            "u1".into(),
            "KHB".into(),
            "2026-03-01 10:00:00".into(),
            "a!".into(),
            Some("A1".into()),
        ),
        (
            "u1".into(),
            "KHB".into(),
            "2026-03-01 10:00:00".into(),
            "a".into(),
            Some("A12".into()),
        ),
    ];
    let pop = population(&log(&rows), &roster(&[]), &h1()).unwrap();
    assert_eq!(pop.digest, naive_digest(&rows, &log_agencies(&rows)));
}

/// docs/sampling.md § 4's worked example: each line sorts *with* its LF,
/// so a line that another extends by a TAB (09, below LF's 0a) sorts
/// after it; sorted without the LF the digest would be a358….
#[test]
fn lines_sort_with_their_line_feed() {
    let rows: Vec<Row> = ["A1", "A1|1\t9"]
        .iter()
        .map(|subject| {
            (
                "u1".into(),
                "KHB".into(),
                "2026-03-01 10:00:00".into(),
                "X".into(),
                Some((*subject).into()),
            )
        })
        .collect();
    let pop = population(&log(&rows), &roster(&[]), &h1()).unwrap();
    assert_eq!(
        pop.digest,
        "fa6481483ca80df1ea4c0c96158345982cc614d1dcd9fc9aaae32c68270dd55a"
    );
    assert_eq!(pop.digest, naive_digest(&rows, &log_agencies(&rows)));
}

#[test]
fn accounts_take_the_roster_agency_else_the_smallest_log_agency() {
    let rows: Vec<Row> = vec![
        (
            "r1".into(),
            "KHB".into(),
            "2026-03-01 10:00:00".into(),
            "a".into(),
            None,
        ),
        (
            "r1".into(),
            "KPB".into(),
            "2026-03-02 10:00:00".into(),
            "a".into(),
            None,
        ),
        (
            "x1".into(),
            "KPB-1".into(),
            "2026-03-01 10:00:00".into(),
            "a".into(),
            None,
        ),
        (
            "x1".into(),
            "KPB".into(),
            "2026-03-02 10:00:00".into(),
            "a".into(),
            None,
        ),
    ];
    let pop = population(
        &log(&rows),
        &roster(&[("r1", "KPB-1"), ("r1", "KPB")]),
        &h1(),
    )
    .unwrap();
    let agency: Vec<(&str, &str)> = pop
        .accounts
        .iter()
        .map(|a| (a.account_id.as_str(), a.agency_id.as_str()))
        .collect();
    assert_eq!(agency, [("r1", "KPB"), ("x1", "KPB")]);
}

fn draw(rows: &[Row], roster_rows: &[(&str, &str)], cfg: &Config) -> (String, Vec<UnitSample>) {
    let pop = population(&log(rows), &roster(roster_rows), &h1()).unwrap();
    let units = select(&pop, cfg, "2026H1", &seed(), PARAMS).unwrap();
    (pop.digest, units)
}

#[test]
fn selection_meets_the_allocation_and_ranks_by_ticket() {
    let cfg = config("");
    let rows = world(61);
    let (_, units) = draw(&rows, &[], &cfg);
    assert_eq!(
        units.iter().map(|u| u.unit_id.as_str()).collect::<Vec<_>>(),
        ["KHB", "KPB"]
    );
    let kpb: Vec<&str> = units[1]
        .strata
        .iter()
        .map(|s| s.agency_id.as_str())
        .collect();
    assert_eq!(kpb, ["KPB", "KPB-1"]);
    for s in units.iter().flat_map(|u| &u.strata) {
        // 21 + 20 + 20 accounts: (21 * 20 + 99) / 100 = 5, (20 * 20 + 99) / 100 = 4.
        let expected = if s.accounts_in_use == 21 { 5 } else { 4 };
        assert_eq!(s.accounts_selected, expected, "{}", s.agency_id);
        let tickets: Vec<&str> = s.accounts.iter().map(|a| a.ticket.as_str()).collect();
        assert!(tickets.windows(2).all(|w| w[0] < w[1]));
        for a in &s.accounts {
            assert_eq!(a.records_selected, a.records_in_period.min(10));
            let t: Vec<&str> = a.records.iter().map(|r| r.ticket.as_str()).collect();
            assert!(t.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(
                a.records.iter().map(|r| r.rank).collect::<Vec<_>>(),
                (1..=a.records_selected).collect::<Vec<_>>()
            );
        }
    }
}

/// Rows shuffled (a fixed permutation) and split into three "files"
/// concatenated in another order: same population, same sample.
#[test]
fn row_order_and_file_split_change_nothing() {
    let cfg = config("");
    let rows = world(50);
    let (digest, units) = draw(&rows, &[("u0003", "KPB-1")], &cfg);
    let n = rows.len();
    // 7919 is prime and does not divide n: i -> 7919 i + 13 (mod n) permutes.
    assert!(!n.is_multiple_of(7919));
    let mut shuffled: Vec<Row> = (0..n).map(|i| rows[(i * 7919 + 13) % n].clone()).collect();
    let third = n / 3;
    let (a, rest) = shuffled.split_at(third);
    let (b, c) = rest.split_at(third);
    let mut split: Vec<Row> = c.to_vec();
    split.extend_from_slice(a);
    split.extend_from_slice(b);
    shuffled = split;
    let frames = [
        log(&shuffled[..third]),
        log(&shuffled[third..2 * third]),
        log(&shuffled[2 * third..]),
    ];
    let mut joined = frames[0].clone();
    joined.vstack_mut(&frames[1]).unwrap();
    joined.vstack_mut(&frames[2]).unwrap();
    let pop = population(&joined, &roster(&[("u0003", "KPB-1")]), &h1()).unwrap();
    assert_eq!(pop.digest, digest);
    assert_eq!(
        select(&pop, &cfg, "2026H1", &seed(), PARAMS).unwrap(),
        units
    );
}

#[test]
fn a_new_account_or_agency_leaves_other_strata_alone() {
    let cfg = config("");
    let rows = world(45);
    let (_, before) = draw(&rows, &[], &cfg);
    let stratum = |units: &[UnitSample], id: &str| -> Stratum {
        units
            .iter()
            .flat_map(|u| &u.strata)
            .find(|s| s.agency_id == id)
            .unwrap()
            .clone()
    };

    // A new account in KPB-1.
    let mut more = rows.clone();
    more.push((
        "n0001".into(),
        "KPB-1".into(),
        "2026-04-01 09:00:00".into(),
        "a".into(),
        None,
    ));
    let (_, after) = draw(&more, &[], &cfg);
    for id in ["KHB", "KPB"] {
        assert_eq!(stratum(&before, id), stratum(&after, id), "{id}");
    }
    assert_eq!(
        stratum(&after, "KPB-1").accounts_in_use,
        stratum(&before, "KPB-1").accounts_in_use + 1
    );

    // A new agency under KHB with accounts of its own.
    let cfg2 = config("[[agencies]]\nid = \"KHB-2\"\nname = \"新所\"\nparent = \"KHB\"\n");
    let mut more = rows.clone();
    for i in 0..9 {
        more.push((
            format!("h{i}"),
            "KHB-2".into(),
            "2026-05-01 09:00:00".into(),
            "a".into(),
            None,
        ));
    }
    let (_, after) = draw(&more, &[], &cfg2);
    for id in ["KHB", "KPB", "KPB-1"] {
        assert_eq!(stratum(&before, id), stratum(&after, id), "{id}");
    }
    assert_eq!(stratum(&after, "KHB-2").accounts_selected, 2);
}

#[test]
fn the_same_seed_draws_the_same_sample_and_another_seed_another() {
    let cfg = config("");
    let rows = world(30);
    let (_, a) = draw(&rows, &[], &cfg);
    let (_, b) = draw(&rows, &[], &cfg);
    assert_eq!(a, b);
    let pop = population(&log(&rows), &roster(&[]), &h1()).unwrap();
    let other = select(
        &pop,
        &cfg,
        "2026H1",
        &"98765432109876543211".parse().unwrap(),
        PARAMS,
    )
    .unwrap();
    assert_ne!(a, other);
    assert_eq!(first_difference(&a, &a), None);
    let diff = first_difference(&a, &other).unwrap();
    assert!(
        diff.starts_with("unit KHB, stratum KHB: account of rank 1"),
        "{diff}"
    );
}

#[test]
fn population_tsv_escapes_and_round_trips() {
    let rows: Vec<Row> = vec![(
        "u1".into(),
        "KHB".into(),
        "2026-03-01 10:00:00".into(),
        "a\tb\\c".into(),
        None,
    )];
    let pop = population(&log(&rows), &roster(&[]), &h1()).unwrap();
    let mut out = Vec::new();
    write_population(&pop, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "account_id\tagency_id\tqueried_at\tquery_item\tsubject_id\toccurrence\nu1\tKHB\t2026-03-01T10:00:00\ta\\tb\\\\c\t\t1\n"
    );
}

/// Records of one account in one second are ordered by `query_item|`
/// then `subject_id|` bytes (so a subject sorts before an absent one,
/// `A` being below `|`), whatever their order in the log.
#[test]
fn records_of_one_second_are_ordered_by_item_then_subject() {
    let at = "2026-03-01 10:00:00";
    let row = |item: &str, subject: Option<&str>| -> Row {
        (
            "u1".into(),
            "KHB".into(),
            at.into(),
            item.into(),
            subject.map(str::to_owned),
        )
    };
    let rows = vec![
        row("b", Some("A100000001")),
        row("a", None),
        row("a", Some("A100000002")),
        row("a", Some("A100000001")),
    ];
    let want = "account_id\tagency_id\tqueried_at\tquery_item\tsubject_id\toccurrence\n\
        u1\tKHB\t2026-03-01T10:00:00\ta\tA100000001\t1\n\
        u1\tKHB\t2026-03-01T10:00:00\ta\tA100000002\t1\n\
        u1\tKHB\t2026-03-01T10:00:00\ta\t\t1\n\
        u1\tKHB\t2026-03-01T10:00:00\tb\tA100000001\t1\n";
    let mut reversed = rows.clone();
    reversed.reverse();
    for rows in [rows, reversed] {
        let pop = population(&log(&rows), &roster(&[]), &h1()).unwrap();
        let mut out = Vec::new();
        write_population(&pop, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}

/// Records with identical keys get their occurrence from their content
/// (exact time, purpose, …), not from where they sit in the input.
#[test]
fn identical_keys_are_numbered_by_content() {
    let rows: Vec<Row> = (0..3)
        .map(|_| {
            (
                "u1".into(),
                "KHB".into(),
                "2026-03-01 10:00:00".into(),
                "a".into(),
                None,
            )
        })
        .collect();
    let occurrence_of = |purposes: [&str; 3]| -> Vec<(String, u32)> {
        let mut df = log(&rows);
        df.with_column(Column::new("purpose".into(), purposes.to_vec()))
            .unwrap();
        let pop = population(&df, &roster(&[]), &h1()).unwrap();
        let occ = pop
            .frame
            .column("occurrence")
            .unwrap()
            .u32()
            .unwrap()
            .clone();
        let row = pop.frame.column("row").unwrap().idx().unwrap().clone();
        let mut out: Vec<(String, u32)> = (0..3)
            .map(|i| {
                (
                    purposes[row.get(i).unwrap() as usize].to_owned(),
                    occ.get(i).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let want = vec![
        ("drug".into(), 1),
        ("other".into(), 2),
        ("welfare".into(), 3),
    ];
    assert_eq!(occurrence_of(["other", "drug", "welfare"]), want);
    assert_eq!(occurrence_of(["welfare", "other", "drug"]), want);
}

#[test]
fn seconds_format_like_chrono() {
    for s in [
        0i64,
        59,
        86_399,
        86_400,
        951_782_400,
        1_767_225_599,
        1_772_323_200,
        4_102_444_800,
        -1,
        -86_401,
    ] {
        let want = chrono::DateTime::from_timestamp(s, 0)
            .unwrap()
            .naive_utc()
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let mut got = Vec::new();
        push_second(&mut got, s);
        assert_eq!(String::from_utf8(got).unwrap(), want, "{s}");
    }
    // Every day of 1999-2101 (leap years, century rules), and seconds
    // within a day, its neighbours and back, as one formatter meets them.
    let mut f = SecondFormatter::default();
    let seconds = (10_592..48_000i64).map(|day| day * 86_400 + 3_661).chain(
        [
            0,
            59,
            3_600,
            86_399,
            86_400,
            86_399,
            -1,
            86_400 * 20_000 + 45_296,
            0,
        ]
        .map(|t| 1_780_000_000 + t),
    );
    for s in seconds {
        let want = chrono::DateTime::from_timestamp(s, 0)
            .unwrap()
            .naive_utc()
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        assert_eq!(std::str::from_utf8(f.format(s)).unwrap(), want);
    }
}

/// docs/sampling.md § 14: units with critical findings come first and are
/// all drawn, even more than `n`; the config can turn that off; the
/// digest says which came first.
#[test]
fn the_unit_draw_puts_critical_units_first_and_draws_them_all() {
    use super::units::{candidates, draw};
    let seed: Seed = "27182818284590452353602874".parse().unwrap();
    let units =
        || [("A", 0), ("B", 2), ("C", 0), ("D", 1), ("E", 0)].map(|(u, c)| (u.to_owned(), c));
    let (c, digest) = candidates(units(), true);
    let d = draw(&seed, "given", 1, "2026", (&c, &digest), 1);
    let drawn: Vec<&str> = d
        .units
        .iter()
        .filter(|u| u.selected)
        .map(|u| u.unit_id.as_str())
        .collect();
    let mut sorted = drawn.clone();
    sorted.sort();
    assert_eq!(sorted, ["B", "D"], "both critical units, though n = 1");
    assert_eq!(d.units_to_select, 2);
    assert!(d.units[..2].iter().all(|u| u.first));
    let (plain, plain_digest) = candidates(units(), false);
    assert!(plain.iter().all(|u| !u.first));
    assert_ne!(digest, plain_digest, "the digest says which come first");
    let p = draw(&seed, "given", 1, "2026", (&plain, &plain_digest), 1);
    assert_eq!(p.units_to_select, 1);
    assert_eq!(
        p.units.iter().filter(|u| u.selected).count(),
        1,
        "by ticket alone"
    );
    use sha2::Digest as _;
    assert_eq!(
        plain_digest,
        hex::encode(sha2::Sha256::digest("A\nB\nC\nD\nE\n")),
        "no unit first: the plain list of ids"
    );
}

/// The packed sort puts the records in the stable sort's order, equal keys
/// in the log's order, and gives the same keys; where account, second and
/// row do not fit in 64 bits it steps aside; a record outside the period,
/// or of an account the population does not number, is an error.
#[test]
fn the_packed_key_order_is_the_stable_sort_s() {
    let start = 1_767_225_600; // 2026-01-01T00:00:00, as a period's start second
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    // Few accounts and seconds among many rows: long runs of equal keys.
    // Codes number the accounts out of order, as a dictionary's do.
    let acct_of_code: Vec<IdxSize> = vec![4, 0, 6, 2, 5, 1, 3];
    let (code, micros): (Vec<u32>, Vec<i64>) = (0..5_000)
        .map(|_| {
            let second = start + next(40) as i64 * 3_600 * 24 * 4;
            (next(7) as u32, second * 1_000_000 + next(1_000_000) as i64)
        })
        .unzip();
    let parts = KeyParts {
        code: &code,
        acct_of_code: &acct_of_code,
        micros: &micros,
    };
    let last = micros.iter().max().unwrap() / 1_000_000;
    let packed = packed_key_order(&parts, start, last, 6).expect("it packs");
    let stable = stable_key_order(&parts, start).unwrap();
    assert_eq!(packed, stable);
    assert_eq!(key_order(&parts, start).unwrap(), stable);
    assert!(
        packed.0.windows(2).any(|w| w[0] == w[1]),
        "the data has ties"
    );
    // The keys are the accounts' numbers above the seconds, in order, and
    // equal keys keep the log's order.
    let (keys, order) = &stable;
    for (&k, &row) in keys.iter().zip(order) {
        let row = row as usize;
        let account = u64::from(acct_of_code[code[row] as usize]);
        let second = (micros[row] / 1_000_000 - start) as u64;
        assert_eq!(k, account << SECOND_BITS | second);
    }
    for (k, o) in keys.windows(2).zip(order.windows(2)) {
        assert!(k[0] < k[1] || (k[0] == k[1] && o[0] < o[1]));
    }
    // Seconds before 1970 are floored, as a truncation to the second is.
    let before_1970 = KeyParts {
        code: &[0, 0, 0],
        acct_of_code: &[0],
        micros: &[-1_500_000, -2_000_000, -999_999],
    };
    let (keys, order) = key_order(&before_1970, -2).unwrap();
    assert_eq!((keys, order), (vec![0, 0, 1], vec![0, 1, 2]));

    // Account, second and row that need 66 bits.
    let wide = KeyParts {
        code: &[0, 1, 2],
        acct_of_code: &[0, 1 << 27, 3],
        micros: &[
            (start + 5) * 1_000_000,
            (start + (1 << 35)) * 1_000_000,
            (start + 9) * 1_000_000,
        ],
    };
    assert_eq!(
        packed_key_order(&wide, start, start + (1 << 35), 1 << 27),
        None
    );
    let (keys, order) = key_order(&wide, start).expect("the stable sort takes it");
    assert_eq!(order, vec![0, 2, 1]);
    assert_eq!(keys, stable_key_order(&wide, start).unwrap().0);
    // A record before the period's start.
    let early = KeyParts {
        code: &[1, 0, 1],
        acct_of_code: &[0, 1],
        micros: &[
            (start - 1) * 1_000_000,
            start * 1_000_000,
            (start + 9) * 1_000_000,
        ],
    };
    assert!(key_order(&early, start).is_err());
    // A record whose account code the population does not number.
    let stray = KeyParts {
        code: &[1, 0, 2],
        acct_of_code: &[0, 1, NO_ACCOUNT],
        micros: &[start * 1_000_000; 3],
    };
    assert!(key_order(&stray, start).is_err());
    let past_the_numbering = KeyParts {
        code: &[0, 5],
        acct_of_code: &[0],
        micros: &[start * 1_000_000; 2],
    };
    assert!(key_order(&past_the_numbering, start).is_err());
    // An account number above the key's 28 bits.
    let too_many = KeyParts {
        code: &[0],
        acct_of_code: &[1 << 28],
        micros: &[start * 1_000_000],
    };
    assert!(key_order(&too_many, start).is_err());
}
