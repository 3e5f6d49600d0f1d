//! Header recognition: which row of a file is the header (government exports
//! put titles and print dates above it), and which canonical column each
//! header cell means.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::model::{ColumnSpec, Table};

/// How many rows from the top of a file are searched for the header.
pub const HEADER_SEARCH_ROWS: usize = 30;

/// Normalises a header cell for matching: full-width ASCII to half-width,
/// all whitespace removed, lower case, `_`/`-` ignored.
pub fn normalize_header(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-' && *c != '\u{FEFF}')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The header spellings of one table: built-in aliases plus the config's.
#[derive(Debug)]
pub struct HeaderMap {
    table: Table,
    by_spelling: BTreeMap<String, &'static ColumnSpec>,
}

/// A header row matched against a table.
#[derive(Debug, Clone)]
pub struct Matched {
    /// Index of the header row among the rows searched (0-based).
    pub row: usize,
    /// The header cells as written.
    pub cells: Vec<String>,
    /// `(position, column)` of each recognised cell, in file order.
    pub columns: Vec<(usize, &'static ColumnSpec)>,
}

/// Why no usable header row was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Required columns are absent from the best candidate row.
    Missing {
        row: usize,
        missing: Vec<&'static str>,
        found: Vec<String>,
    },
    /// Two cells of the header row mean the same column.
    Ambiguous {
        row: usize,
        column: &'static str,
        first: String,
        second: String,
    },
}

impl HeaderMap {
    pub fn new(table: Table, config: &Config) -> HeaderMap {
        let mut by_spelling = BTreeMap::new();
        let extra = config.column_aliases.get(&table);
        for spec in table.columns() {
            let configured = extra.and_then(|m| m.get(spec.name)).into_iter().flatten();
            let spellings = std::iter::once(spec.name)
                .chain(spec.aliases.iter().copied())
                .chain(configured.map(String::as_str));
            for s in spellings {
                by_spelling.insert(normalize_header(s), spec);
            }
        }
        HeaderMap { table, by_spelling }
    }

    pub fn lookup(&self, cell: &str) -> Option<&'static ColumnSpec> {
        self.by_spelling.get(&normalize_header(cell)).copied()
    }

    /// The required columns with a few spellings each, for error messages.
    pub fn expected(&self) -> Vec<String> {
        self.table
            .columns()
            .iter()
            .filter(|c| c.header_required())
            .map(|c| match c.aliases.first() {
                Some(a) => format!("{} ({a})", c.name),
                None => c.name.to_owned(),
            })
            .collect()
    }

    /// Picks the header among `rows` (the top of a file): the row that names
    /// the most canonical columns, the earliest on a tie.
    pub fn find(&self, rows: &[Vec<String>]) -> Result<Matched, HeaderProblem> {
        let mut best: Option<(usize, Vec<(usize, &'static ColumnSpec)>)> = None;
        for (i, row) in rows.iter().enumerate().take(HEADER_SEARCH_ROWS) {
            let cols: Vec<_> = row
                .iter()
                .enumerate()
                .filter_map(|(j, c)| Some((j, self.lookup(c)?)))
                .collect();
            if cols.len() > best.as_ref().map_or(0, |b| b.1.len()) {
                best = Some((i, cols));
            }
        }
        let Some((row, columns)) = best else {
            return Err(HeaderProblem::Missing {
                row: 0,
                missing: self
                    .table
                    .columns()
                    .iter()
                    .filter(|c| c.header_required())
                    .map(|c| c.name)
                    .collect(),
                found: rows.first().cloned().unwrap_or_default(),
            });
        };
        let cells = rows[row].clone();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for &(j, spec) in &columns {
            if let Some(first) = seen.insert(spec.name, j) {
                return Err(HeaderProblem::Ambiguous {
                    row,
                    column: spec.name,
                    first: cells[first].clone(),
                    second: cells[j].clone(),
                });
            }
        }
        let missing: Vec<_> = self
            .table
            .columns()
            .iter()
            .filter(|c| c.header_required() && !seen.contains_key(c.name))
            .map(|c| c.name)
            .collect();
        if !missing.is_empty() {
            let found = cells
                .iter()
                .filter(|c| !c.trim().is_empty())
                .cloned()
                .collect();
            return Err(HeaderProblem::Missing {
                row,
                missing,
                found,
            });
        }
        Ok(Matched {
            row,
            cells,
            columns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_across_width_space_and_case() {
        assert_eq!(normalize_header(" 查詢 時間 "), "查詢時間");
        assert_eq!(normalize_header("ＩＰ"), "ip");
        assert_eq!(normalize_header("\u{FEFF}Account_ID"), "accountid");
        assert_eq!(normalize_header("來源ＩＰ"), normalize_header("來源IP"));
    }
}
