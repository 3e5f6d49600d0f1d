//! Audit periods: `2026H1`, `2026H2`, `2026`, `2026Q3` or `FROM..TO`, each a
//! half-open interval of local (config time zone) date-times.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveDateTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// The id as the user wrote it, normalised (`2026H1`, `2026-01-01..2026-03-31`).
    pub id: String,
    /// First local instant inside the period.
    pub start: NaiveDateTime,
    /// First local instant after the period.
    pub end: NaiveDateTime,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid period {0:?}: expected 2026H1, 2026H2, 2026, 2026Q1..2026Q4 or FROM..TO dates (2026-01-01..2026-06-30)"
)]
pub struct PeriodError(pub String);

fn ymd(y: i32, m: u32) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(y, m, 1).and_then(|d| d.and_hms_opt(0, 0, 0))
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Period, PeriodError> {
        let err = || PeriodError(s.to_owned());
        let s = s.trim();
        if let Some((from, to)) = s.split_once("..") {
            let from = NaiveDate::parse_from_str(from, "%Y-%m-%d").map_err(|_| err())?;
            let to = NaiveDate::parse_from_str(to, "%Y-%m-%d").map_err(|_| err())?;
            if to < from {
                return Err(err());
            }
            return Ok(Period {
                id: format!("{from}..{to}"),
                start: from.and_hms_opt(0, 0, 0).ok_or_else(err)?,
                end: to
                    .succ_opt()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .ok_or_else(err)?,
            });
        }
        if s.len() < 4 || !s.is_char_boundary(4) {
            return Err(err());
        }
        let (year, rest) = s.split_at(4);
        let year: i32 = year.parse().map_err(|_| err())?;
        if !(1900..=9999).contains(&year) {
            return Err(err());
        }
        let (first, months) = match rest {
            "" => (1, 12),
            "H1" => (1, 6),
            "H2" => (7, 6),
            "Q1" => (1, 3),
            "Q2" => (4, 3),
            "Q3" => (7, 3),
            "Q4" => (10, 3),
            _ => return Err(err()),
        };
        let last = first + months;
        let end = if last > 12 {
            ymd(year + 1, 1)
        } else {
            ymd(year, last)
        };
        Ok(Period {
            id: format!("{year}{rest}"),
            start: ymd(year, first).ok_or_else(err)?,
            end: end.ok_or_else(err)?,
        })
    }
}

impl Period {
    /// The last day of the period (its end is the next day's midnight).
    pub fn last_day(&self) -> chrono::NaiveDate {
        let end = self.end.date();
        end.pred_opt().unwrap_or(end)
    }

    /// Whether the query log's `queried_at` lies in the period, as a polars
    /// expression (start included, end excluded).
    pub fn holds_query(&self) -> polars::prelude::Expr {
        use polars::prelude::{col, lit};
        col("queried_at")
            .gt_eq(lit(self.start))
            .and(col("queried_at").lt(lit(self.end)))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// What a run covers, as its folder and the run ledger name it: an audit
/// period (`2026H1`) or a review day (`as-of-2026-07-02`). The only code
/// that writes or reads the `as-of-` form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunPeriod {
    Period(String),
    AsOf(NaiveDate),
}

impl RunPeriod {
    const AS_OF: &'static str = "as-of-";

    /// Reads a folder or ledger name; `None` if it is neither form.
    pub fn parse(s: &str) -> Option<RunPeriod> {
        match s.strip_prefix(Self::AS_OF) {
            Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()
                .map(RunPeriod::AsOf),
            None => s.parse::<Period>().ok().map(|p| RunPeriod::Period(p.id)),
        }
    }

    /// The review day, for a review.
    pub fn as_of(&self) -> Option<NaiveDate> {
        match self {
            RunPeriod::AsOf(d) => Some(*d),
            RunPeriod::Period(_) => None,
        }
    }

    /// The first local instant after what the run covers.
    pub fn end(&self) -> Option<NaiveDateTime> {
        match self {
            RunPeriod::AsOf(d) => d.succ_opt()?.and_hms_opt(0, 0, 0),
            RunPeriod::Period(p) => p.parse::<Period>().ok().map(|p| p.end),
        }
    }
}

impl fmt::Display for RunPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunPeriod::Period(p) => f.write_str(p),
            RunPeriod::AsOf(d) => write!(f, "{}{d}", Self::AS_OF),
        }
    }
}

/// Which period a fire time is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodRule {
    PreviousHalfYear,
    PreviousYear,
    PreviousQuarter,
    /// The fire time's date (`2026-07-05`).
    Day,
    /// The fire time's ISO week (`2026-W27`).
    Week,
}

impl PeriodRule {
    pub fn parse(s: &str) -> Option<PeriodRule> {
        Some(match s {
            "previous-half-year" => PeriodRule::PreviousHalfYear,
            "previous-year" => PeriodRule::PreviousYear,
            "previous-quarter" => PeriodRule::PreviousQuarter,
            "day" => PeriodRule::Day,
            "week" => PeriodRule::Week,
            _ => return None,
        })
    }

    /// The period id for a run fired at local time `at`.
    pub fn period_for(self, at: NaiveDateTime) -> String {
        let (y, m) = (at.year(), at.month());
        match self {
            PeriodRule::PreviousHalfYear if m <= 6 => format!("{}H2", y - 1),
            PeriodRule::PreviousHalfYear => format!("{y}H1"),
            PeriodRule::PreviousYear => format!("{}", y - 1),
            PeriodRule::PreviousQuarter => match (m - 1) / 3 {
                0 => format!("{}Q4", y - 1),
                q => format!("{y}Q{q}"),
            },
            PeriodRule::Day => at.date().to_string(),
            PeriodRule::Week => {
                let w = at.date().iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (String, String, String) {
        let p: Period = s.parse().unwrap();
        (p.id, p.start.to_string(), p.end.to_string())
    }

    #[test]
    fn periods_are_half_open_local_intervals() {
        assert_eq!(
            p("2026H1"),
            (
                "2026H1".into(),
                "2026-01-01 00:00:00".into(),
                "2026-07-01 00:00:00".into()
            )
        );
        assert_eq!(
            p("2026H2"),
            (
                "2026H2".into(),
                "2026-07-01 00:00:00".into(),
                "2027-01-01 00:00:00".into()
            )
        );
        assert_eq!(
            p("2026"),
            (
                "2026".into(),
                "2026-01-01 00:00:00".into(),
                "2027-01-01 00:00:00".into()
            )
        );
        assert_eq!(
            p("2026Q3"),
            (
                "2026Q3".into(),
                "2026-07-01 00:00:00".into(),
                "2026-10-01 00:00:00".into()
            )
        );
        assert_eq!(
            p("2026-02-01..2026-02-28"),
            (
                "2026-02-01..2026-02-28".into(),
                "2026-02-01 00:00:00".into(),
                "2026-03-01 00:00:00".into()
            )
        );
    }

    #[test]
    fn malformed_periods_are_rejected() {
        for bad in [
            "",
            "26H1",
            "2026H3",
            "2026Q5",
            "2026-03-01..2026-02-01",
            "二〇二六",
            "2026h1",
        ] {
            assert_eq!(
                bad.parse::<Period>(),
                Err(PeriodError(bad.to_owned())),
                "{bad}"
            );
        }
    }
}
