//! Rosters are snapshots: each export shows the accounts as they were on
//! the day it was taken. This module says which day that is (a date in a
//! title row, else in the file name, else the file's modification day),
//! and resolves several snapshots into the one roster a run works on.
//!
//! The rule (also in README and `docs/sampling.md`): an account review as
//! of a day uses the newest snapshot dated on or before that day (else the
//! oldest); a run over a period uses the first snapshot dated on or after
//! the period's last day, which knows every account opened during the
//! period (else the newest). An account missing from the snapshot used
//! but present in an older one keeps its row from the newest older
//! snapshot that has it, marked `removed`: it is reported as removed from
//! the roster, not as an unknown account.

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;

/// Where a roster export's date came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateSource {
    TitleRow,
    FileName,
    Modified,
}

impl DateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DateSource::TitleRow => "title row",
            DateSource::FileName => "file name",
            DateSource::Modified => "modification time",
        }
    }

    /// For the data-quality sheet.
    pub fn label(self) -> &'static str {
        match self {
            DateSource::TitleRow => "標題列日期",
            DateSource::FileName => "檔名日期",
            DateSource::Modified => "檔案修改日期",
        }
    }
}

/// The day a roster export shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub date: NaiveDate,
    pub source: DateSource,
}

/// The date of a snapshot: the latest date written in its title rows, else
/// the latest date in its file name, else `modified`.
pub fn snapshot_of(
    title: &[String],
    file_name: &str,
    modified: Option<NaiveDate>,
) -> Option<Snapshot> {
    let title_date = title.iter().filter_map(|t| latest_date_in(t)).max();
    if let Some(date) = title_date {
        return Some(Snapshot {
            date,
            source: DateSource::TitleRow,
        });
    }
    let stem = file_name.rsplit_once('.').map_or(file_name, |(s, _)| s);
    if let Some(date) = latest_date_in(stem) {
        return Some(Snapshot {
            date,
            source: DateSource::FileName,
        });
    }
    modified.map(|date| Snapshot {
        date,
        source: DateSource::Modified,
    })
}

fn ymd(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    // A year below 1000 is a ROC year (民國); 1911 + 115 = 2026.
    let year = if year < 1000 { year + 1911 } else { year };
    NaiveDate::from_ymd_opt(year, month, day).filter(|d| (1990..=2200).contains(&d.year()))
}

/// The latest plausible calendar date written in `text`: separated forms
/// (`115/07/02`, `2026-07-02`, `115年7月2日`, `2026.7.2`) and compact ones
/// (`1150702` ROC, `20260702` Gregorian, as whole digit runs).
pub fn latest_date_in(text: &str) -> Option<NaiveDate> {
    let chars: Vec<char> = text.chars().collect();
    let mut found: Vec<NaiveDate> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && chars[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let run = |from: usize| {
            let mut j = from;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            j
        };
        let end = run(i);
        let digits: String = chars[i..end].iter().collect();
        let sep = |k: usize, allowed: &[char]| -> Option<usize> {
            let mut k = k;
            while k < chars.len() && chars[k] == ' ' {
                k += 1;
            }
            let c = *chars.get(k)?;
            if !allowed.contains(&c) {
                return None;
            }
            k += 1;
            while k < chars.len() && chars[k] == ' ' {
                k += 1;
            }
            chars.get(k).filter(|c| c.is_ascii_digit()).map(|_| k)
        };
        let mut separated = None;
        if (2..=4).contains(&digits.len())
            && let Some(m0) = sep(end, &['/', '-', '.', '年'])
        {
            let m1 = run(m0);
            if m1 - m0 <= 2
                && let Some(d0) = sep(m1, &['/', '-', '.', '月'])
            {
                let d1 = run(d0);
                if d1 - d0 <= 2 {
                    let num = |a: usize, b: usize| {
                        chars[a..b].iter().collect::<String>().parse::<u32>().ok()
                    };
                    if let (Some(y), Some(m), Some(d)) = (num(i, end), num(m0, m1), num(d0, d1)) {
                        let y = y as i32;
                        separated = ymd(y, m, d).map(|date| (date, d1));
                    }
                }
            }
        }
        if let Some((date, next)) = separated {
            found.push(date);
            i = next;
            continue;
        }
        let compact = match digits.len() {
            8 => ymd(
                digits[..4].parse().unwrap_or(0),
                digits[4..6].parse().unwrap_or(0),
                digits[6..].parse().unwrap_or(0),
            ),
            7 => ymd(
                digits[..3].parse().unwrap_or(0),
                digits[3..5].parse().unwrap_or(0),
                digits[5..].parse().unwrap_or(0),
            ),
            _ => None,
        };
        found.extend(compact);
        i = end;
    }
    found.into_iter().max()
}

/// The day a run's roster must describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// An account review as of this day.
    Day(NaiveDate),
    /// A run over a period whose last day this is.
    PeriodEnd(NaiveDate),
}

impl Reference {
    /// The reference of a run over `period`, else of a review as of `day`.
    pub fn of(period: Option<&crate::period::Period>, day: NaiveDate) -> Reference {
        match period {
            Some(p) => Reference::PeriodEnd(p.last_day()),
            None => Reference::Day(day),
        }
    }
}

/// Which snapshot date a run uses among `dates` (see the module doc).
pub fn chosen(dates: &[NaiveDate], reference: Reference) -> Option<NaiveDate> {
    match reference {
        Reference::Day(day) => dates
            .iter()
            .filter(|d| **d <= day)
            .max()
            .or_else(|| dates.iter().min()),
        Reference::PeriodEnd(last) => dates
            .iter()
            .filter(|d| **d >= last)
            .min()
            .or_else(|| dates.iter().max()),
    }
    .copied()
}

/// Resolves the stacked roster (with a `snapshot_date` column per row) for
/// `day`: every row of the chosen snapshot, and for accounts it lacks, the
/// rows of the newest older snapshot that has them, with `removed` true.
/// Snapshots newer than the chosen one are not used. Rows keep their input
/// order, so a single snapshot comes back unchanged (plus `removed`). A
/// row of a file without a date (its modification time could not be read)
/// counts as part of the chosen snapshot rather than be dropped.
pub fn resolve(roster: LazyFrame, use_date: NaiveDate) -> PolarsResult<LazyFrame> {
    let usable = roster
        .with_column(col("snapshot_date").fill_null(lit(use_date).cast(DataType::Date)))
        .filter(col("snapshot_date").lt_eq(lit(use_date)));
    let newest_per_account = col("snapshot_date").max().over([col("account_id")])?;
    Ok(usable
        .filter(col("snapshot_date").eq(newest_per_account))
        .with_column(col("snapshot_date").neq(lit(use_date)).alias("removed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn dates_in_titles_and_file_names() {
        assert_eq!(latest_date_in("accounts_20260702"), Some(d(2026, 7, 2)));
        assert_eq!(latest_date_in("帳號清冊_1150702"), Some(d(2026, 7, 2)));
        assert_eq!(
            latest_date_in("帳號清冊 匯出日期：115/07/02"),
            Some(d(2026, 7, 2))
        );
        assert_eq!(
            latest_date_in("資料期間 115年1月1日 至 115年6月30日 列印 2026-07-03"),
            Some(d(2026, 7, 3))
        );
        assert_eq!(
            latest_date_in("roster 2026.1.2 export"),
            Some(d(2026, 1, 2))
        );
        // Not dates: a month 13, a phone number, a bare year.
        assert_eq!(latest_date_in("20261302"), None);
        assert_eq!(latest_date_in("tel 07-7995678"), None);
        assert_eq!(latest_date_in("roster 2026"), None);
    }

    #[test]
    fn title_beats_file_name_beats_modified() {
        let t = vec!["清冊 115/01/05".to_owned()];
        let s = snapshot_of(&t, "accounts_20260702.xlsx", Some(d(2026, 8, 1))).unwrap();
        assert_eq!((s.date, s.source), (d(2026, 1, 5), DateSource::TitleRow));
        let s = snapshot_of(&[], "accounts_20260702.xlsx", Some(d(2026, 8, 1))).unwrap();
        assert_eq!((s.date, s.source), (d(2026, 7, 2), DateSource::FileName));
        let s = snapshot_of(&[], "accounts.xlsx", Some(d(2026, 8, 1))).unwrap();
        assert_eq!((s.date, s.source), (d(2026, 8, 1), DateSource::Modified));
    }

    #[test]
    fn the_snapshot_a_run_uses() {
        use Reference::*;
        let dates = [d(2026, 1, 2), d(2026, 7, 2)];
        assert_eq!(chosen(&dates, Day(d(2026, 6, 30))), Some(d(2026, 1, 2)));
        assert_eq!(chosen(&dates, Day(d(2027, 1, 10))), Some(d(2026, 7, 2)));
        assert_eq!(chosen(&dates, Day(d(2025, 12, 1))), Some(d(2026, 1, 2)));
        // 2026H1 is described by the export taken after it ended; 2026H2,
        // with no later export, by the newest.
        assert_eq!(
            chosen(&dates, PeriodEnd(d(2026, 6, 30))),
            Some(d(2026, 7, 2))
        );
        assert_eq!(
            chosen(&dates, PeriodEnd(d(2026, 12, 31))),
            Some(d(2026, 7, 2))
        );
        assert_eq!(
            chosen(&dates, PeriodEnd(d(2025, 12, 31))),
            Some(d(2026, 1, 2))
        );
    }
}
