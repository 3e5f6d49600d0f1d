//! Overlapping query-log exports: the same query in two files counts once.
//!
//! Agencies export by date range and re-export (January–April, then
//! March–June; or a CSV re-saved as XLSX), so the same record can arrive
//! in several files. The rule (README, `docs/sampling.md`):
//!
//! - a record's identity is (account, time to the second, item, subject,
//!   result);
//! - within one file, identical records are real repeats (a person can run
//!   the same query twice in a second);
//! - across files, a record's count is the largest count any one file has
//!   for it: the rows of the file with that count are kept (among several
//!   such files, the one whose SHA-256 is smallest), the others' rows are
//!   counted as shared and left out.
//!
//! The result depends on file contents only, never on names or order. A
//! log whose files share no record is returned unchanged.

use std::collections::BTreeMap;

use polars::prelude::*;

/// Per file: rows whose record also appears in another file, and rows left
/// out because another file's copy of the record is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shared {
    pub shared: usize,
    pub counted_elsewhere: usize,
}

const SECOND: &str = "__second";
const SHA: &str = "__sha";
const ROW: &str = "__i";

/// Applies the rule to the stacked query log. `sha_of` maps each
/// `source_file` to its SHA-256.
///
/// Only rows that another file could also hold are compared: a row whose
/// time lies outside every other file's first-to-last span is unique to
/// its file. Exports are date ranges, so that is a small part of a large
/// log, and the window expressions run on those rows' identity columns
/// alone; the log itself is filtered once, by a mask.
pub fn dedupe(
    log: DataFrame,
    sha_of: &BTreeMap<String, String>,
) -> PolarsResult<(DataFrame, BTreeMap<String, Shared>)> {
    if sha_of.len() < 2 || log.height() == 0 {
        return Ok((log, BTreeMap::new()));
    }
    let candidate = in_another_files_span(&log)?;
    let marked = mark_shared(&log, candidate, sha_of)?;
    let counts = counts_per_file(&marked)?;
    if counts.values().all(|c| c.counted_elsewhere == 0) {
        // Nothing left out: the log stays as it is, not even copied.
        return Ok((log, counts));
    }
    let mut keep = vec![true; log.height()];
    let dropped = marked.lazy().filter(col("elsewhere")).collect()?;
    for i in dropped.column(ROW)?.idx()?.into_no_null_iter() {
        keep[i as usize] = false;
    }
    let mask: BooleanChunked = keep.into_iter().map(Some).collect();
    Ok((log.filter(&mask)?, counts))
}

/// Whether a row is a candidate: it lies in the first-to-last span of a
/// file not its own.
fn in_another_files_span(log: &DataFrame) -> PolarsResult<Expr> {
    let spans = log
        .clone()
        .lazy()
        // The log's file names are categoricals; here they are read as text.
        .group_by([col("source_file").cast(DataType::String)])
        .agg([
            col("queried_at").min().alias("from"),
            col("queried_at").max().alias("to"),
        ])
        .sort(["source_file"], SortMultipleOptions::default())
        .collect()?;
    let files: Vec<String> = spans
        .column("source_file")?
        .str()?
        .iter()
        .map(|f| f.unwrap_or_default().to_owned())
        .collect();
    let from = spans.column("from")?.clone();
    let to = spans.column("to")?.clone();
    let at = |c: &Column, i: usize| -> PolarsResult<Expr> {
        Ok(lit(Scalar::new(c.dtype().clone(), c.get(i)?.into_static())))
    };
    let mut candidate = lit(false);
    for (i, f) in files.iter().enumerate() {
        for (j, _) in files.iter().enumerate().filter(|(j, _)| *j != i) {
            let inside = col("queried_at")
                .gt_eq(at(&from, j)?)
                .and(col("queried_at").lt_eq(at(&to, j)?));
            candidate = candidate.or(col("source_file").eq(lit(f.as_str())).and(inside));
        }
    }
    Ok(candidate)
}

/// A record's identity: account, time to the second, item, subject, result.
fn record_key() -> Vec<Expr> {
    vec![
        col("account_id"),
        col(SECOND),
        col("query_item"),
        col("subject_id"),
        col("result"),
    ]
}

/// The candidate rows whose record another file also holds: their row
/// number, file, and whether another file's copy is the one counted
/// (`elsewhere`).
fn mark_shared(
    log: &DataFrame,
    candidate: Expr,
    sha_of: &BTreeMap<String, String>,
) -> PolarsResult<DataFrame> {
    let names: Vec<&str> = sha_of.keys().map(String::as_str).collect();
    let shas: Vec<&str> = sha_of.values().map(String::as_str).collect();
    let in_file = || {
        let mut k = record_key();
        k.push(col("source_file"));
        k
    };
    log.clone()
        .lazy()
        .with_row_index(ROW, None)
        .filter(candidate)
        .select([
            col(ROW),
            col("account_id"),
            col("queried_at").dt().truncate(lit("1s")).alias(SECOND),
            col("query_item"),
            col("subject_id"),
            col("result"),
            col("source_file").cast(DataType::String),
        ])
        .with_column(
            col("source_file")
                .replace_strict(
                    lit(Series::new("f".into(), names)),
                    lit(Series::new("s".into(), shas)),
                    None::<Expr>,
                    Some(DataType::String),
                )
                .alias(SHA),
        )
        .with_columns([
            len().over(in_file())?.alias("__n"),
            col("source_file")
                .n_unique()
                .over(record_key())?
                .alias("__files"),
        ])
        .with_column(col("__n").max().over(record_key())?.alias("__max"))
        .with_column(
            col(SHA)
                .filter(col("__n").eq(col("__max")))
                .min()
                .over(record_key())?
                .alias("__chosen"),
        )
        .select([
            col(ROW),
            col("source_file"),
            col("__files").gt(lit(1u32)).alias("shared"),
            col(SHA).neq(col("__chosen")).alias("elsewhere"),
        ])
        .filter(col("shared"))
        .collect()
}

/// Per file, of the `marked` rows: how many are shared and how many
/// counted elsewhere.
fn counts_per_file(marked: &DataFrame) -> PolarsResult<BTreeMap<String, Shared>> {
    let per_file = marked
        .clone()
        .lazy()
        .group_by([col("source_file")])
        .agg([
            len().alias("shared"),
            col("elsewhere").sum().alias("elsewhere"),
        ])
        .collect()?;
    let mut counts = BTreeMap::new();
    let file = per_file.column("source_file")?.str()?;
    let shared = per_file.column("shared")?.cast(&DataType::UInt64)?;
    let elsewhere = per_file.column("elsewhere")?.cast(&DataType::UInt64)?;
    for ((f, s), e) in file
        .iter()
        .zip(shared.u64()?.iter())
        .zip(elsewhere.u64()?.iter())
    {
        if let Some(f) = f {
            counts.insert(
                f.to_owned(),
                Shared {
                    shared: s.unwrap_or(0) as usize,
                    counted_elsewhere: e.unwrap_or(0) as usize,
                },
            );
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn log(rows: &[(&str, u32, &str, &str)]) -> DataFrame {
        let at: Vec<chrono::NaiveDateTime> = rows
            .iter()
            .map(|r| {
                NaiveDate::from_ymd_opt(2026, 3, 2)
                    .unwrap()
                    .and_hms_opt(9, 0, r.1)
                    .unwrap()
            })
            .collect();
        df!(
            "account_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "queried_at" => at,
            "query_item" => vec!["投保"; rows.len()],
            "subject_id" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "result" => vec!["success"; rows.len()],
            "source_file" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    fn shas(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(f, s)| ((*f).to_owned(), (*s).to_owned()))
            .collect()
    }

    #[test]
    fn a_record_counts_as_often_as_the_file_that_has_it_most() {
        // a: the record twice (a real repeat) and one of its own; b: the
        // record once and one of its own.
        let df = log(&[
            ("u1", 1, "A123456789", "a.csv"),
            ("u1", 1, "A123456789", "a.csv"),
            ("u1", 2, "B123456789", "a.csv"),
            ("u1", 1, "A123456789", "b.csv"),
            ("u1", 3, "C123456789", "b.csv"),
        ]);
        let (out, counts) = dedupe(df, &shas(&[("a.csv", "ff"), ("b.csv", "00")])).unwrap();
        assert_eq!(out.height(), 4);
        assert_eq!(
            counts["a.csv"],
            Shared {
                shared: 2,
                counted_elsewhere: 0
            }
        );
        assert_eq!(
            counts["b.csv"],
            Shared {
                shared: 1,
                counted_elsewhere: 1
            }
        );
    }

    #[test]
    fn equal_counts_keep_the_file_with_the_smaller_hash_whatever_the_names() {
        let rows = [
            ("u1", 1, "A123456789", "x.csv"),
            ("u1", 1, "A123456789", "y.csv"),
        ];
        let (out, _) = dedupe(log(&rows), &shas(&[("x.csv", "bb"), ("y.csv", "aa")])).unwrap();
        assert_eq!(
            out.column("source_file").unwrap().str().unwrap().get(0),
            Some("y.csv")
        );
        let (out, _) = dedupe(log(&rows), &shas(&[("x.csv", "aa"), ("y.csv", "bb")])).unwrap();
        assert_eq!(
            out.column("source_file").unwrap().str().unwrap().get(0),
            Some("x.csv")
        );
    }

    #[test]
    fn files_without_shared_records_come_back_unchanged() {
        let df = log(&[
            ("u1", 1, "A123456789", "a.csv"),
            ("u1", 1, "A123456789", "a.csv"),
            ("u1", 2, "A123456789", "b.csv"),
        ]);
        let (out, counts) = dedupe(df.clone(), &shas(&[("a.csv", "1"), ("b.csv", "2")])).unwrap();
        assert!(out.equals(&df));
        assert!(counts.values().all(|c| *c == Shared::default()));
    }
}
