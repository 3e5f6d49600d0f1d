//! The holidays calendar (`rules.holidays`) in the form the government
//! publishes it: the DGPA's office calendar (政府行政機關辦公日曆表), one
//! CSV a year with the columns 西元日期, 星期, 是否放假 and 備註, where
//! 是否放假 is 2 for a day off and 0 for a working day, weekends included.
//! UTF-8 (with or without a byte-order mark) or Big5, as downloaded.
//!
//! A weekday marked 2 is a holiday; a Saturday or Sunday marked 0 is a
//! make-up workday (補行上班). The TOML form (`[[holidays]]`,
//! `[[workdays]]`) says the same in the config's own words; `config`
//! reads either, or a folder of them (one file per year).

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};

/// Holidays and make-up workdays read from one calendar file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Days {
    pub holidays: BTreeMap<NaiveDate, String>,
    pub workdays: BTreeMap<NaiveDate, String>,
}

/// Reads a DGPA office calendar. `file` names it in problems, each of
/// which gives the row (1-based, as a spreadsheet shows it), the column
/// and the raw value.
pub fn read_dgpa_csv(bytes: &[u8], file: &str) -> Result<Days, Vec<String>> {
    let text = decode(bytes);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(vec![format!("{file}: the calendar is empty")]);
    };
    let header: Vec<String> = super::register::split_csv_line(header, b',')
        .into_iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let at = |name: &str| header.iter().position(|h| h == name);
    let (Some(date_col), Some(off_col)) = (at("西元日期"), at("是否放假")) else {
        return Err(vec![format!(
            "{file}: row 1 is {header:?}; a DGPA office calendar has the columns 西元日期, 星期, 是否放假, 備註"
        )]);
    };
    let note_col = at("備註");
    let mut days = Days::default();
    let mut problems = Vec::new();
    for (i, line) in lines {
        let row = i + 1;
        let cells = super::register::split_csv_line(line, b',');
        let cell = |j: usize| cells.get(j).map_or("", |c| c.trim());
        let Some(date) = parse_date(cell(date_col)) else {
            problems.push(format!(
                "{file}: row {row}, column 西元日期: {:?} is not a date (expected 20260101 or 2026/1/1)",
                cell(date_col)
            ));
            continue;
        };
        let note = note_col.map(cell).filter(|n| !n.is_empty());
        let weekend = date.weekday().number_from_monday() > 5;
        match (cell(off_col), weekend) {
            ("2", false) => {
                days.holidays
                    .insert(date, note.unwrap_or("放假").to_owned());
            }
            ("0", true) => {
                days.workdays
                    .insert(date, note.unwrap_or("補行上班").to_owned());
            }
            ("2", true) | ("0", false) => {}
            (other, _) => problems.push(format!(
                "{file}: row {row}, column 是否放假: {other:?} (expected 2 for a day off or 0 for a working day)"
            )),
        }
    }
    if problems.is_empty() {
        Ok(days)
    } else {
        Err(problems)
    }
}

/// UTF-8 (a byte-order mark dropped), else Big5, as the DGPA's downloads
/// have been both.
fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => encoding_rs::BIG5.decode(bytes).0.into_owned(),
    }
}

/// `20260101`, `2026/1/1` or `2026-01-01`.
fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return NaiveDate::parse_from_str(s, "%Y%m%d").ok();
    }
    let parts: Vec<&str> = s.split(['/', '-']).collect();
    if let [y, m, d] = parts[..] {
        return NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// The calendar as downloaded: weekends are 2 as well, a make-up
    /// Saturday is 0, holidays carry their name.
    const CALENDAR: &str = "西元日期,星期,是否放假,備註\r\n\
        20260101,四,2,開國紀念日\r\n\
        20260102,五,0,\r\n\
        20260103,六,2,\r\n\
        20260104,日,2,\r\n\
        20260214,六,0,補行上班\r\n\
        20260216,一,2,農曆除夕\r\n\
        20260217,二,2,\r\n";

    #[test]
    fn a_dgpa_calendar_gives_weekday_holidays_and_make_up_workdays() {
        for bytes in [
            CALENDAR.as_bytes().to_vec(),
            [b"\xEF\xBB\xBF".as_slice(), CALENDAR.as_bytes()].concat(),
            encoding_rs::BIG5.encode(CALENDAR).0.into_owned(),
        ] {
            let days = read_dgpa_csv(&bytes, "115年行政機關辦公日曆表.csv").unwrap();
            assert_eq!(
                days.holidays,
                BTreeMap::from([
                    (d(2026, 1, 1), "開國紀念日".to_owned()),
                    (d(2026, 2, 16), "農曆除夕".to_owned()),
                    (d(2026, 2, 17), "放假".to_owned()),
                ])
            );
            assert_eq!(
                days.workdays,
                BTreeMap::from([(d(2026, 2, 14), "補行上班".to_owned())])
            );
        }
    }

    #[test]
    fn a_bad_row_is_named_with_its_column_and_value() {
        let text = "西元日期,星期,是否放假,備註\n20260101,四,2,開國紀念日\n2026013,五,0,\n20260105,一,1,\n";
        let problems = read_dgpa_csv(text.as_bytes(), "cal.csv").unwrap_err();
        assert_eq!(
            problems,
            [
                "cal.csv: row 3, column 西元日期: \"2026013\" is not a date (expected 20260101 or 2026/1/1)",
                "cal.csv: row 4, column 是否放假: \"1\" (expected 2 for a day off or 0 for a working day)",
            ]
        );
        let problems = read_dgpa_csv("日期,放假\n".as_bytes(), "cal.csv").unwrap_err();
        assert!(
            problems[0].contains("西元日期, 星期, 是否放假, 備註"),
            "{problems:?}"
        );
    }
}
