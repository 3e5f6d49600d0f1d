//! The seeded sample audit of point 6(1), spec `webir-audit/sample/v1`
//! (`docs/sampling.md` is the contract; this is one implementation of it).
//!
//! Three steps, each a pure function of its inputs:
//! 1. [`population`]: the period's query-log records, each account placed
//!    in its agency, sorted canonically, numbered (`occurrence`) and
//!    digested. Computed before any seed exists ("freezing").
//! 2. [`select`]: stage 1 picks accounts per stratum (agency) by smallest
//!    ticket; stage 2 picks records of the selected accounts only, in
//!    parallel.
//! 3. The caller writes `manifest.json`, `population.tsv` and `sample.csv`.
//!
//! Nothing here reads a clock, a file or an RNG other than the tickets.

pub mod manifest;
pub mod spec;
pub mod units;

use std::collections::BTreeMap;
use std::io::Write;

use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::period::Period;
use spec::{Seed, Ticket, accounts_to_select, records_to_select, ticket, ticket_hex};

/// The canonical population of a period.
#[derive(Debug)]
pub struct Population {
    /// One row per record, in canonical order: `acct` (index into
    /// `accounts`), `second` (i64, Unix seconds of local time),
    /// `query_item` (the log's categorical), `subject_id` ("" when
    /// absent), `row` (index into the query log), `occurrence` (u32).
    pub frame: DataFrame,
    /// The accounts in use, in canonical (account id) order.
    pub accounts: Vec<AccountBlock>,
    /// SHA-256 of the sorted population lines, 64 lowercase hex digits.
    pub digest: String,
}

/// An account in use: its agency and where its records sit in the frame.
#[derive(Debug, Clone)]
pub struct AccountBlock {
    pub account_id: String,
    pub agency_id: String,
    /// First row of the account in `Population::frame`.
    pub start: usize,
    /// Its number of records in the period (`m`).
    pub records: usize,
}

/// Builds the population of `period` from the canonical query log and
/// roster. An account's agency is the roster's (the smallest agency id if
/// the roster lists the account more than once); for an account missing
/// from the roster, the smallest agency id its records in the period give.
///
/// The canonical order is reached in two steps, then the records are
/// placed in it once: one sort of `u64` keys (account number in
/// account-id byte order, then the second), and runs of records sharing
/// account and second — short, as people do not query hundreds of times a
/// second — are ordered by item and subject here. The sorted keys give
/// each record's account and second; its item and subject are gathered.
pub fn population(
    query_log: &DataFrame,
    roster: &DataFrame,
    period: &Period,
) -> PolarsResult<Population> {
    let started = std::time::Instant::now();
    let log = period_records(query_log, period)?;
    let accounts_df = account_agencies(log.clone().lazy(), roster)?;
    let mut accounts = account_blocks(&accounts_df)?;
    let mut frame = placed_in_order(&log, &accounts_df, period, query_log)?;
    drop(log);
    frame.rechunk_mut();
    tracing::debug!(elapsed = ?started.elapsed(), rows = frame.height(), "population placed in order");
    let started = std::time::Instant::now();
    let (occurrence, digest) = number_and_digest(&frame, &mut accounts, query_log)?;
    tracing::debug!(elapsed = ?started.elapsed(), "population numbered and digested");
    frame.with_column(Column::new("occurrence".into(), occurrence))?;
    Ok(Population {
        frame,
        accounts,
        digest,
    })
}

/// The query log's records in `period`: `account_id, log_agency,
/// queried_at, row` (the record's row in the log). Their item and subject
/// are read from the log by `row`: for runs of equal keys as they are
/// ordered, then gathered once in order.
fn period_records(query_log: &DataFrame, period: &Period) -> PolarsResult<DataFrame> {
    query_log
        .clone()
        .lazy()
        .with_row_index("row", None)
        .filter(period.holds_query())
        .select([
            col("account_id"),
            col("agency_id").alias("log_agency"),
            col("queried_at"),
            col("row"),
        ])
        .collect()
}

/// The accounts of the period's records with their agency (the roster's
/// smallest, else the records' smallest), in account-id order and
/// numbered: `acct, account_id, agency_id`.
fn account_agencies(log: LazyFrame, roster: &DataFrame) -> PolarsResult<DataFrame> {
    // The log's account and agency are categoricals (as the query checks
    // see them); the roster's keys are cast to join them, and the few
    // accounts are text again before they are ordered.
    let cat = crate::ingest::parse::categorical();
    let from_roster = roster
        .clone()
        .lazy()
        .filter(col("agency_id").is_not_null())
        .group_by([col("account_id").cast(cat.clone())])
        .agg([col("agency_id").min().cast(cat).alias("roster_agency")]);
    log.group_by([col("account_id")])
        .agg([col("log_agency").min()])
        .join(
            from_roster,
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Left),
        )
        .select([
            col("account_id").cast(DataType::String),
            coalesce(&[col("roster_agency"), col("log_agency")])
                .cast(DataType::String)
                .alias("agency_id"),
        ])
        .sort(["account_id"], SortMultipleOptions::default())
        .with_row_index("acct", None)
        .collect()
}

/// One block per account of `accounts_df`, its rows not yet counted.
fn account_blocks(accounts_df: &DataFrame) -> PolarsResult<Vec<AccountBlock>> {
    Ok(accounts_df
        .column("account_id")?
        .str()?
        .iter()
        .zip(accounts_df.column("agency_id")?.str()?.iter())
        .map(|(a, g)| AccountBlock {
            account_id: a.unwrap_or_default().to_owned(),
            agency_id: g.unwrap_or_default().to_owned(),
            start: 0,
            records: 0,
        })
        .collect())
}

/// The records with their account's number and Unix second, in the
/// population's order: by one `u64` key, the account number, then the
/// second into the period, records with equal keys by `query_item|` then
/// `subject_id|` bytes, then in the log's order. The keys are made
/// straight from the log's codes and times, and give back each record's
/// account and second once sorted; the records' item and subject (and
/// row, where the log runs past the period) are gathered once, in that
/// order, from `query_log`.
fn placed_in_order(
    log: &DataFrame,
    accounts_df: &DataFrame,
    period: &Period,
    query_log: &DataFrame,
) -> PolarsResult<DataFrame> {
    let start_second = period.start.and_utc().timestamp();
    // Each account code's number, by the account's code.
    let acct_by_code = crate::ingest::parse::by_code(
        accounts_df
            .column("account_id")?
            .cast(&crate::ingest::parse::categorical())?
            .as_materialized_series(),
        accounts_df.column("acct")?.as_materialized_series(),
    )?;
    let acct_of_code: Vec<IdxSize> = acct_by_code
        .idx()?
        .iter()
        .map(|a| a.unwrap_or(NO_ACCOUNT))
        .collect();
    let physical = |name: &str| -> PolarsResult<Series> {
        Ok(log
            .column(name)?
            .as_materialized_series()
            .to_physical_repr()
            .rechunk())
    };
    let (code, micros) = (physical("account_id")?, physical("queried_at")?);
    let (code, micros) = (code.u32()?, micros.i64()?);
    if code.null_count() + micros.null_count() > 0 {
        return Err(PolarsError::ComputeError(
            "a record of the period without an account or a time".into(),
        ));
    }
    let parts = KeyParts {
        code: code.cont_slice()?,
        acct_of_code: &acct_of_code,
        micros: micros.cont_slice()?,
    };
    let (keys, by_key) = key_order(&parts, start_second)?;
    // Where the period holds the whole log, a record's row in it is its
    // row in the log.
    let rows = if log.height() == query_log.height() {
        None
    } else {
        Some(log.column("row")?.idx()?.rechunk().into_owned())
    };
    let rows = rows.as_ref().map(|r| r.cont_slice()).transpose()?;
    let order = within_seconds(query_log, rows, &keys, by_key)?;
    // The keys, in order already, give each record's account and second;
    // the log's row is gathered, and by it the item and subject.
    let second_mask = (1u64 << SECOND_BITS) - 1;
    let acct = keys
        .iter()
        .map(|&k| (k >> SECOND_BITS) as IdxSize)
        .collect();
    // In place: the keys' memory becomes the seconds'.
    let second = keys
        .into_iter()
        .map(|k| (k & second_mask) as i64 + start_second)
        .collect();
    let (acct, second) = (
        IdxCa::from_vec("acct".into(), acct),
        Int64Chunked::from_vec("second".into(), second),
    );
    let row = match rows {
        None => order.with_name("row".into()),
        Some(rows) => IdxCa::from_slice("row".into(), rows).take(&order)?,
    }
    .into_column();
    let texts = crate::ingest::parse::gathered(
        vec![
            query_log.column("query_item")?.clone(),
            query_log.column("subject_id")?.clone(),
        ],
        row.idx()?,
    )?;
    // A missing subject is "" (a column without one is passed on as is).
    let texts = DataFrame::new_infer_height(texts)?
        .lazy()
        .select([col("query_item"), col("subject_id").fill_null(lit(""))])
        .collect()?;
    let columns = [acct.into_column(), second.into_column()];
    DataFrame::new_infer_height(
        columns
            .into_iter()
            .chain(texts.into_columns())
            .chain([row])
            .collect(),
    )
}

/// An account code that no account of the population has.
const NO_ACCOUNT: IdxSize = IdxSize::MAX;

/// The period's records as the parts of their keys: each one's account
/// code (numbered by `acct_of_code`) and time in microseconds.
struct KeyParts<'a> {
    code: &'a [u32],
    acct_of_code: &'a [IdxSize],
    micros: &'a [i64],
}

impl KeyParts<'_> {
    fn len(&self) -> usize {
        self.code.len()
    }

    /// Record `i`'s account number ([`NO_ACCOUNT`] for a code without one).
    fn acct(&self, i: usize) -> IdxSize {
        let code = self.code[i] as usize;
        self.acct_of_code.get(code).copied().unwrap_or(NO_ACCOUNT)
    }

    /// Record `i`'s Unix second (microseconds floored, as a truncation to
    /// the second is).
    fn second(&self, i: usize) -> i64 {
        self.micros[i].div_euclid(1_000_000)
    }
}

/// The records in key order (the account number, then the second into
/// the period from `start_second`), equal keys in the log's order, with
/// their keys (see [`population_key`]).
fn key_order(parts: &KeyParts<'_>, start_second: i64) -> PolarsResult<(Vec<u64>, Vec<IdxSize>)> {
    // A key holds the second into the period and the account number above
    // it: both must fit (the period's filter keeps the seconds in it).
    let out_of_key = || {
        PolarsError::ComputeError(
            "a record's time or account does not fit the population's key".into(),
        )
    };
    let seconds = |m: Option<i64>| m.map(|m| m.div_euclid(1_000_000));
    let micros = parts.micros.par_iter().copied();
    let (first, last) = (seconds(micros.clone().min()), seconds(micros.max()));
    let fits =
        |s: Option<i64>| s.is_none_or(|s| (0..1 << SECOND_BITS).contains(&(s - start_second)));
    let accounts = parts
        .acct_of_code
        .iter()
        .filter(|&&a| a != NO_ACCOUNT)
        .max();
    if !fits(first)
        || !fits(last)
        || accounts.is_some_and(|&a| u64::from(a) >> (64 - SECOND_BITS) > 0)
    {
        return Err(out_of_key());
    }
    if (0..parts.len())
        .into_par_iter()
        .any(|i| parts.acct(i) == NO_ACCOUNT)
    {
        return Err(out_of_key());
    }
    let (last, accounts) = (last.unwrap_or(start_second), accounts.copied().unwrap_or(0));
    Ok(
        match packed_key_order(parts, start_second, last, accounts) {
            Some(ordered) => ordered,
            None => stable_key_order(parts, start_second)?,
        },
    )
}

/// [`key_order`] as one in-place sort of `u64`s, the account above the
/// second above the row, where the three fit in 64 bits (at ten million
/// records of a half-year, for up to 65,536 accounts); `None` where they
/// do not. The caller ([`key_order`]) has checked that every record's
/// account and second fit a key, that no second is past `last_second`
/// and no account number above `last_acct`: were one, its bits would
/// run into its neighbour's.
fn packed_key_order(
    parts: &KeyParts<'_>,
    start_second: i64,
    last_second: i64,
    last_acct: IdxSize,
) -> Option<(Vec<u64>, Vec<IdxSize>)> {
    let bits = |n: u64| 64 - n.leading_zeros();
    let offset = |s: i64| (s - start_second) as u64;
    let (second_bits, row_bits) = (bits(offset(last_second)), bits(parts.len() as u64));
    if bits(u64::from(last_acct)) + second_bits + row_bits > 64 {
        return None;
    }
    let mut packed: Vec<u64> = (0..parts.len())
        .into_par_iter()
        .map(|row| {
            let (a, s) = (u64::from(parts.acct(row)), offset(parts.second(row)));
            (a << second_bits | s) << row_bits | row as u64
        })
        .collect();
    rayon::slice::ParallelSliceMut::par_sort_unstable(&mut packed[..]);
    let (row_mask, second_mask) = ((1u64 << row_bits) - 1, (1u64 << second_bits) - 1);
    let order = packed
        .par_iter()
        .map(|&p| (p & row_mask) as IdxSize)
        .collect();
    packed.par_iter_mut().for_each(|p| {
        let (a, s) = (*p >> row_bits >> second_bits, *p >> row_bits & second_mask);
        *p = a << SECOND_BITS | s;
    });
    Some((packed, order))
}

/// [`key_order`] by a stable sort of the keys.
fn stable_key_order(
    parts: &KeyParts<'_>,
    start_second: i64,
) -> PolarsResult<(Vec<u64>, Vec<IdxSize>)> {
    let key = population_key(parts, start_second);
    let by_key = key.arg_sort(SortOptions::default().with_maintain_order(true));
    let keys = key.take(&by_key)?.rechunk().cont_slice()?.to_vec();
    Ok((keys, by_key.rechunk().cont_slice()?.to_vec()))
}

/// The bits of a key that hold the second into the period.
const SECOND_BITS: u32 = 36;

/// Each record's key: its account number, then its second into the
/// period (from `start_second`), as one `u64`.
fn population_key(parts: &KeyParts<'_>, start_second: i64) -> UInt64Chunked {
    (0..parts.len())
        .map(|i| {
            let (a, s) = (parts.acct(i), parts.second(i));
            u64::from(a) << SECOND_BITS | (s - start_second) as u64
        })
        .collect_ca("key".into())
}

/// A categorical column read a row at a time: each row's code, and its
/// text from the one dictionary. Its rows keep their 4-byte codes as they
/// are ordered, not ten million texts.
struct CodeTexts {
    codes: UInt32Chunked,
    mapping: std::sync::Arc<CategoricalMapping>,
}

impl CodeTexts {
    fn of(column: &Column) -> PolarsResult<CodeTexts> {
        // The log's columns are categorical with 32-bit codes already
        // (and a cast to the same dtype would map every code again).
        let column = match column.dtype() {
            DataType::Categorical(cats, _) if cats.physical() == CategoricalPhysical::U32 => {
                column.clone()
            }
            _ => column.cast(&crate::ingest::parse::categorical())?,
        };
        let DataType::Categorical(_, mapping) = column.dtype() else {
            return Err(PolarsError::ComputeError(
                format!("{} is not categorical", column.name()).into(),
            ));
        };
        let mapping = mapping.clone();
        let physical = column.as_materialized_series().to_physical_repr();
        let codes = physical.u32()?.rechunk().into_owned();
        Ok(CodeTexts { codes, mapping })
    }

    fn text(&self, code: Option<u32>) -> &str {
        code.and_then(|c| self.mapping.cat_to_str(c)).unwrap_or("")
    }

    /// Row `i`'s text, "" for a null.
    fn get(&self, i: usize) -> &str {
        self.text(self.codes.get(i))
    }
}

/// `order` (rows of the period's records in key order; `keys` their keys,
/// `rows` their rows in `query_log`, `None` where they are its rows in
/// order) with each run of rows sharing a key ordered by `query_item|`
/// then `subject_id|` bytes, keeping key order (the log's) for equal ones.
fn within_seconds(
    query_log: &DataFrame,
    rows: Option<&[IdxSize]>,
    keys: &[u64],
    mut order: Vec<IdxSize>,
) -> PolarsResult<IdxCa> {
    let item = CodeTexts::of(query_log.column("query_item")?)?;
    let subject = query_log.column("subject_id")?.str()?;
    // A field's bytes with its `|`, compared without being copied.
    fn field(text: &str) -> impl Iterator<Item = u8> + '_ {
        text.bytes().chain(std::iter::once(b'|'))
    }
    let mut i = 0;
    while i < keys.len() {
        let mut j = i + 1;
        while j < keys.len() && keys[j] == keys[i] {
            j += 1;
        }
        if j - i > 1 {
            let at = |r: IdxSize| rows.map_or(r, |rows| rows[r as usize]) as usize;
            let mut run: Vec<(&str, &str, IdxSize)> = order[i..j]
                .iter()
                .map(|&r| (item.get(at(r)), subject.get(at(r)).unwrap_or(""), r))
                .collect();
            // The key order last: the log's for equal fields.
            run.sort_by(|a, b| {
                (field(a.0).cmp(field(b.0)))
                    .then_with(|| field(a.1).cmp(field(b.1)))
                    .then(a.2.cmp(&b.2))
            });
            for (at, (_, _, r)) in order[i..j].iter_mut().zip(run) {
                *at = r;
            }
        }
        i = j;
    }
    Ok(IdxCa::from_vec("order".into(), order))
}

/// The columns of the population the spec's lines are made of, read a
/// row at a time: accounts and seconds as slices (they have no nulls:
/// `key_order` refuses them), not through zipped iterators of options.
/// The frame is in one chunk, as [`population`] leaves it.
struct Keys<'a> {
    acct: &'a [IdxSize],
    second: &'a [i64],
    item: CodeTexts,
    subject: &'a StringChunked,
    /// The subjects as one array, where none is missing.
    texts: Option<&'a <StringType as PolarsDataType>::Array>,
}

impl<'a> Keys<'a> {
    fn of(df: &'a DataFrame) -> PolarsResult<Keys<'a>> {
        let subject = df.column("subject_id")?.str()?;
        let whole = subject.null_count() == 0 && subject.chunks().len() == 1;
        Ok(Keys {
            acct: df.column("acct")?.idx()?.cont_slice()?,
            second: df.column("second")?.i64()?.cont_slice()?,
            item: CodeTexts::of(df.column("query_item")?)?,
            subject,
            texts: whole.then(|| subject.downcast_as_array()),
        })
    }

    /// Row `i`'s subject, "" where it has none.
    fn subject(&self, i: usize) -> &'a str {
        match self.texts {
            Some(texts) => texts.value(i),
            None => self.subject.get(i).unwrap_or(""),
        }
    }

    /// Row `i`: its account (index into the population's accounts),
    /// second, item and subject.
    fn row(&self, i: usize) -> (usize, i64, &str, &'a str) {
        (
            self.acct[i] as usize,
            self.second[i],
            self.item.get(i),
            self.subject(i),
        )
    }
}

/// The query-log columns that order records with identical keys: the
/// exact time, then purpose, result and client IP (input order last).
/// The text columns are the log's categoricals, read a row at a time:
/// only identical records, a handful, are ever compared.
struct TieBreak<'a> {
    at: &'a Int64Chunked,
    purpose: &'a Column,
    result: &'a Column,
    ip: &'a Column,
}

impl<'a> TieBreak<'a> {
    fn of(log: &'a DataFrame) -> PolarsResult<TieBreak<'a>> {
        Ok(TieBreak {
            at: log.column("queried_at")?.datetime()?.physical(),
            purpose: log.column("purpose")?,
            result: log.column("result")?,
            ip: log.column("client_ip")?,
        })
    }

    /// Renumbers `occurrence` over `span` (rows of one identical key, in
    /// input order) in content order.
    fn number(&self, rows: &IdxCa, span: std::ops::Range<usize>, occurrence: &mut [u32]) {
        let mut order: Vec<usize> = span.clone().collect();
        let text = |c: &Column, r: usize| -> Option<String> {
            c.get(r).ok()?.get_str().map(str::to_owned)
        };
        let key = |i: usize| {
            let r = rows.get(i).unwrap_or(0) as usize;
            (
                self.at.get(r),
                text(self.purpose, r),
                text(self.result, r),
                text(self.ip, r),
            )
        };
        order.sort_by_cached_key(|&i| key(i)); // stable: input order last
        for (o, i) in order.into_iter().enumerate() {
            occurrence[i] = o as u32 + 1;
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats Unix seconds (of local wall time) as `YYYY-MM-DDTHH:MM:SS`,
/// remembering the last one and its day: sorted records repeat seconds,
/// and an account's records run through a day before the next.
#[derive(Debug, Default)]
struct SecondFormatter {
    last: Option<i64>,
    day: Option<i64>,
    text: [u8; 19],
}

impl SecondFormatter {
    fn format(&mut self, s: i64) -> &[u8] {
        if self.last == Some(s) {
            return &self.text;
        }
        let put = |text: &mut [u8; 19], at: usize, v: u32| {
            text[at] = b'0' + (v / 10) as u8;
            text[at + 1] = b'0' + (v % 10) as u8;
        };
        let day = s.div_euclid(86_400);
        if self.day != Some(day) {
            let (y, mo, d) = civil_from_days(day);
            let y = y.clamp(0, 9999) as u32;
            put(&mut self.text, 0, y / 100);
            put(&mut self.text, 2, y % 100);
            put(&mut self.text, 5, mo);
            put(&mut self.text, 8, d);
            for (at, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
                self.text[at] = c;
            }
            self.day = Some(day);
        }
        let t = s.rem_euclid(86_400) as u32;
        put(&mut self.text, 11, t / 3600);
        put(&mut self.text, 14, t / 60 % 60);
        put(&mut self.text, 17, t % 60);
        self.last = Some(s);
        &self.text
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS` for Unix second `s` (local wall time).
pub fn push_second(buf: &mut Vec<u8>, s: i64) {
    buf.extend_from_slice(SecondFormatter::default().format(s));
}

/// The part of `record_key` after the time, without the occurrence:
/// `|query_item|subject_id|`.
fn push_key_tail(buf: &mut Vec<u8>, item: &str, subject: &str) {
    buf.push(b'|');
    buf.extend_from_slice(item.as_bytes());
    buf.push(b'|');
    buf.extend_from_slice(subject.as_bytes());
    buf.push(b'|');
}

/// `record_key` without its occurrence: `queried_at|query_item|subject_id|`.
fn push_key_stem(buf: &mut Vec<u8>, second: i64, item: &str, subject: &str) {
    push_second(buf, second);
    push_key_tail(buf, item, subject);
}

/// One pass over the sorted population: numbers identical keys
/// (`occurrence`), finds the account blocks, and hashes the spec's lines
/// `account_id \t agency_id \t record_key \n` in byte order.
///
/// The frame's sort gives byte order of the lines except in corner cases —
/// a group of ten or more identical keys (`|10` sorts before `|2`, handled
/// here by emitting the group's lines sorted), an account holding a byte
/// below TAB, a query item or subject holding `|` — so every line is
/// compared with the one before, and if the order ever breaks the lines
/// are sorted in full instead.
fn number_and_digest(
    df: &DataFrame,
    accounts: &mut [AccountBlock],
    query_log: &DataFrame,
) -> PolarsResult<(Vec<u32>, String)> {
    let rows = df.column("row")?.idx()?;
    // Records with identical keys are told apart by what else they say,
    // so the same record gets the same occurrence whatever the input order.
    let content = TieBreak::of(query_log)?;
    let n = df.height();
    let mut occurrence: Vec<u32> = Vec::with_capacity(n);
    let mut lines = StreamedDigest::start()?;
    let mut stem: Vec<u8> = Vec::new();
    let mut group = 0u32;
    let keys = Keys::of(df)?;
    let mut prev: Option<(usize, i64, &str, &str)> = None;
    let mut formatter = SecondFormatter::default();
    for i in 0..n {
        let (acct, second, item, subject) = keys.row(i);
        let same_account = prev.is_some_and(|p| p.0 == acct);
        let block = &mut accounts[acct];
        if !same_account {
            block.start = i;
        }
        block.records += 1;
        if same_account && prev.is_some_and(|p| p.1 == second && p.2 == item && p.3 == subject) {
            group += 1;
        } else {
            if group > 0 {
                lines.put_group(&stem, group);
                if group > 1 {
                    content.number(rows, i - group as usize..i, &mut occurrence);
                }
            }
            stem.clear();
            stem.extend_from_slice(block.account_id.as_bytes());
            stem.push(b'\t');
            stem.extend_from_slice(block.agency_id.as_bytes());
            stem.push(b'\t');
            stem.extend_from_slice(formatter.format(second));
            push_key_tail(&mut stem, item, subject);
            group = 1;
        }
        occurrence.push(group);
        prev = Some((acct, second, item, subject));
    }
    if group > 0 {
        lines.put_group(&stem, group);
        if group > 1 {
            content.number(rows, n - group as usize..n, &mut occurrence);
        }
    }
    let digest = match lines.finish()? {
        Some(streamed) => streamed,
        None => {
            tracing::warn!(
                "population lines out of byte order after the sort; sorting them in full"
            );
            sorted_lines_digest(df, accounts, &occurrence)?
        }
    };
    Ok((occurrence, digest))
}

/// The population's lines hashed on another thread, a megabyte at a time,
/// while this one builds the next; notes whether they came in byte order.
struct StreamedDigest {
    hashing: crate::ingest::Hashing,
    line: Vec<u8>,
    prev_line: Vec<u8>,
    in_order: bool,
}

impl StreamedDigest {
    /// Starts the hashing thread.
    fn start() -> PolarsResult<StreamedDigest> {
        Ok(StreamedDigest {
            hashing: crate::ingest::Hashing::new(std::io::sink())?,
            line: Vec::new(),
            prev_line: Vec::new(),
            in_order: true,
        })
    }

    /// The lines of a group of `count` identical keys: `stem` and each
    /// occurrence number, in byte order of the numbers.
    fn put_group(&mut self, stem: &[u8], count: u32) {
        if count < 10 {
            for o in 1..=count as u8 {
                self.put(stem, &[b'0' + o]);
            }
        } else {
            let mut occ: Vec<String> = (1..=count).map(|o| o.to_string()).collect();
            occ.sort();
            for o in occ {
                self.put(stem, o.as_bytes());
            }
        }
    }

    /// The line `stem`, `occ`, LF.
    fn put(&mut self, stem: &[u8], occ: &[u8]) {
        self.line.clear();
        self.line.extend_from_slice(stem);
        self.line.extend_from_slice(occ);
        self.line.push(b'\n');
        if self.line < self.prev_line {
            self.in_order = false;
        }
        // The hasher's sink never fails, so neither does this.
        let _ = std::io::Write::write_all(&mut self.hashing, &self.line);
        std::mem::swap(&mut self.line, &mut self.prev_line);
    }

    /// The digest of the lines, if they came in byte order.
    fn finish(self) -> PolarsResult<Option<String>> {
        let (_, streamed) = self.hashing.finish().map_err(|e| {
            PolarsError::ComputeError(format!("hashing the population: {e}").into())
        })?;
        Ok(self.in_order.then_some(streamed))
    }
}

/// The digest of the population's lines, built one by one and sorted in
/// full: for when the frame's order is not their byte order.
fn sorted_lines_digest(
    df: &DataFrame,
    accounts: &[AccountBlock],
    occurrence: &[u32],
) -> PolarsResult<String> {
    let keys = Keys::of(df)?;
    let mut lines: Vec<Vec<u8>> = (0..df.height())
        .map(|i| {
            let (acct, second, item, subject) = keys.row(i);
            let (account, agency) = (&accounts[acct].account_id, &accounts[acct].agency_id);
            let mut l = Vec::new();
            l.extend_from_slice(account.as_bytes());
            l.push(b'\t');
            l.extend_from_slice(agency.as_bytes());
            l.push(b'\t');
            push_key_stem(&mut l, second, item, subject);
            l.extend_from_slice(occurrence[i].to_string().as_bytes());
            l.push(b'\n');
            l
        })
        .collect();
    lines.sort_unstable();
    let mut h = Sha256::new();
    for l in &lines {
        h.update(l);
    }
    Ok(hex::encode(h.finalize()))
}

/// Writes `population.tsv`: a header, then one line per record with tab,
/// newline, carriage return and backslash escaped as `\t`, `\n`, `\r`, `\\`.
pub fn write_population(pop: &Population, out: &mut dyn Write) -> std::io::Result<()> {
    let f = &pop.frame;
    let columns =
        (|| Ok::<_, PolarsError>((Keys::of(f)?, f.column("occurrence")?.u32()?.cont_slice()?)))();
    let (keys, occurrence) = columns.map_err(std::io::Error::other)?;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
    buf.extend_from_slice(
        b"account_id\tagency_id\tqueried_at\tquery_item\tsubject_id\toccurrence\n",
    );
    let escaped = |buf: &mut Vec<u8>, s: &str| {
        if !s
            .bytes()
            .any(|b| matches!(b, b'\t' | b'\n' | b'\r' | b'\\'))
        {
            buf.extend_from_slice(s.as_bytes());
            return;
        }
        for &b in s.as_bytes() {
            match b {
                b'\t' => buf.extend_from_slice(b"\\t"),
                b'\n' => buf.extend_from_slice(b"\\n"),
                b'\r' => buf.extend_from_slice(b"\\r"),
                b'\\' => buf.extend_from_slice(b"\\\\"),
                _ => buf.push(b),
            }
        }
    };
    // `account_id \t agency_id \t`, escaped once per account.
    let heads: Vec<Vec<u8>> = pop
        .accounts
        .iter()
        .map(|a| {
            let mut h = Vec::new();
            escaped(&mut h, &a.account_id);
            h.push(b'\t');
            escaped(&mut h, &a.agency_id);
            h.push(b'\t');
            h
        })
        .collect();
    let mut formatter = SecondFormatter::default();
    for (i, &occurrence) in occurrence.iter().enumerate() {
        let (acct, second, item, subject) = keys.row(i);
        buf.extend_from_slice(&heads[acct]);
        buf.extend_from_slice(formatter.format(second));
        buf.push(b'\t');
        escaped(&mut buf, item);
        buf.push(b'\t');
        escaped(&mut buf, subject);
        buf.push(b'\t');
        match occurrence {
            o @ 0..=9 => buf.push(b'0' + o as u8),
            o => buf.extend_from_slice(o.to_string().as_bytes()),
        }
        buf.push(b'\n');
        if buf.len() >= 1 << 17 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)
}

/// The sampling parameters (from config, recorded in the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    pub sample_account_percent: u32,
    pub sample_records_per_account: u32,
}

/// The selection: per unit, per stratum, the accounts and their records.
/// Serialised as the manifest's `units`; the sample digest covers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitSample {
    pub unit_id: String,
    pub strata: Vec<Stratum>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stratum {
    pub agency_id: String,
    /// Accounts in use (`N`).
    pub accounts_in_use: u64,
    /// Accounts selected (`n`).
    pub accounts_selected: u64,
    pub accounts: Vec<SampledAccount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampledAccount {
    pub agency_id: String,
    pub account_id: String,
    pub ticket: String,
    /// 1 = smallest ticket of the stratum.
    pub rank: u64,
    /// The account's records in the period (`m`).
    pub records_in_period: u64,
    /// Records selected (`k`).
    pub records_selected: u64,
    pub records: Vec<SampledRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampledRecord {
    /// `YYYY-MM-DDTHH:MM:SS`, local time.
    pub queried_at: String,
    pub query_item: String,
    /// The subject's national ID, masked.
    pub subject: String,
    pub occurrence: u64,
    pub ticket: String,
    /// 1 = smallest ticket of the account.
    pub rank: u64,
    /// Row of the record in `Population::frame` (not part of the manifest).
    #[serde(skip)]
    pub population_row: usize,
}

/// Equal when the manifest would say the same: `population_row` is where
/// this process keeps the record, not part of the sample.
impl PartialEq for SampledRecord {
    fn eq(&self, other: &SampledRecord) -> bool {
        (
            &self.queried_at,
            &self.query_item,
            &self.subject,
            self.occurrence,
            &self.ticket,
            self.rank,
        ) == (
            &other.queried_at,
            &other.query_item,
            &other.subject,
            other.occurrence,
            &other.ticket,
            other.rank,
        )
    }
}

impl Eq for SampledRecord {}

/// Draws the sample: stage 1 over the accounts in use of every stratum,
/// stage 2 over the records of the selected accounts only.
pub fn select(
    pop: &Population,
    config: &Config,
    period_id: &str,
    seed: &Seed,
    params: Params,
) -> PolarsResult<Vec<UnitSample>> {
    let seed = seed.as_str();
    // Stage 1: a ticket per account in use.
    let tickets: Vec<Ticket> = pop
        .accounts
        .par_iter()
        .map(|a| ticket(&[seed, "account", period_id, &a.agency_id, &a.account_id]))
        .collect();
    let strata = draw_accounts(pop, config, &tickets, params)?;
    // Stage 2: records of the selected accounts, in parallel.
    let keys = Keys::of(&pop.frame)?;
    let draw = RecordDraw {
        seed,
        period_id,
        keys: &keys,
        occ: pop.frame.column("occurrence")?.u32()?,
    };
    let chosen: Vec<usize> = strata
        .values()
        .flat_map(|s| s.picked.iter().map(|&(a, _)| a))
        .collect();
    let records: BTreeMap<usize, Vec<SampledRecord>> = chosen
        .par_iter()
        .map(|&a| {
            let block = &pop.accounts[a];
            let k = records_to_select(block.records as u64, params.sample_records_per_account);
            (a, draw.records(block, k))
        })
        .collect();
    Ok(assemble_units(pop, strata, &tickets, &records))
}

/// A stratum's stage-1 draw.
struct DrawnStratum {
    unit: String,
    /// Accounts in use (`N`).
    in_use: u64,
    /// Accounts to select (`n`).
    n: u64,
    /// (account index, rank)
    picked: Vec<(usize, u64)>,
}

/// Stage 1: per configured agency (in id order), its accounts in use
/// ordered by ticket (then id), the first `n` picked. An agency of the
/// population missing from the config is an error.
fn draw_accounts(
    pop: &Population,
    config: &Config,
    tickets: &[Ticket],
    params: Params,
) -> PolarsResult<BTreeMap<String, DrawnStratum>> {
    let mut by_agency: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, a) in pop.accounts.iter().enumerate() {
        by_agency.entry(a.agency_id.as_str()).or_default().push(i);
    }
    let mut strata: BTreeMap<String, DrawnStratum> = BTreeMap::new();
    let mut agencies: Vec<_> = config.agencies.iter().collect();
    agencies.sort_by(|a, b| a.id.cmp(&b.id));
    for agency in agencies {
        let mut members = by_agency.remove(agency.id.as_str()).unwrap_or_default();
        members.sort_by(|&a, &b| {
            tickets[a]
                .cmp(&tickets[b])
                .then_with(|| pop.accounts[a].account_id.cmp(&pop.accounts[b].account_id))
        });
        let in_use = members.len() as u64;
        let n = accounts_to_select(in_use, params.sample_account_percent).min(in_use);
        let picked: Vec<(usize, u64)> = members.into_iter().take(n as usize).zip(1..).collect();
        strata.insert(
            agency.id.clone(),
            DrawnStratum {
                unit: agency.unit.clone(),
                in_use,
                n,
                picked,
            },
        );
    }
    if let Some((agency, _)) = by_agency.into_iter().next() {
        return Err(PolarsError::ComputeError(
            format!("agency {agency:?} of the population is not in the config").into(),
        ));
    }
    Ok(strata)
}

/// What stage 2 draws a selected account's records from.
struct RecordDraw<'a> {
    seed: &'a str,
    period_id: &'a str,
    keys: &'a Keys<'a>,
    occ: &'a UInt32Chunked,
}

impl RecordDraw<'_> {
    /// The `k` records of `block` with the smallest tickets (then record
    /// keys), ranked.
    fn records(&self, block: &AccountBlock, k: u64) -> Vec<SampledRecord> {
        let key_into = |key: &mut Vec<u8>, i: usize| {
            let (_, second, item, subject) = self.keys.row(i);
            key.clear();
            push_key_stem(key, second, item, subject);
            // Writing into a Vec cannot fail.
            let _ = write!(key, "{}", self.occ.get(i).unwrap_or(0));
        };
        let key_of = |i: usize| {
            let mut key = Vec::new();
            key_into(&mut key, i);
            key
        };
        // One key buffer for the whole account; a record's key is made
        // again only to break a tie of tickets.
        let mut key = Vec::new();
        let mut cands: Vec<(Ticket, usize)> = (block.start..block.start + block.records)
            .map(|i| {
                key_into(&mut key, i);
                let t = ticket(&[
                    self.seed,
                    "record",
                    self.period_id,
                    &block.account_id,
                    &String::from_utf8_lossy(&key),
                ]);
                (t, i)
            })
            .collect();
        cands.sort_unstable_by(|x, y| x.0.cmp(&y.0).then_with(|| key_of(x.1).cmp(&key_of(y.1))));
        cands
            .into_iter()
            .take(k as usize)
            .zip(1..)
            .map(|((t, i), rank)| self.sampled(i, &t, rank))
            .collect()
    }

    /// Population row `i` as a sampled record, its subject masked.
    fn sampled(&self, i: usize, t: &Ticket, rank: u64) -> SampledRecord {
        let (_, second, item, subject) = self.keys.row(i);
        let mut at = Vec::new();
        push_second(&mut at, second);
        SampledRecord {
            queried_at: String::from_utf8_lossy(&at).into_owned(),
            query_item: item.to_owned(),
            subject: if subject.is_empty() {
                String::new()
            } else {
                crate::privacy::mask_national_id(subject)
            },
            occurrence: u64::from(self.occ.get(i).unwrap_or(0)),
            ticket: ticket_hex(t),
            rank,
            population_row: i,
        }
    }
}

/// The drawn strata with their accounts' records, grouped by unit (in
/// unit id order, strata in agency id order).
fn assemble_units(
    pop: &Population,
    strata: BTreeMap<String, DrawnStratum>,
    tickets: &[Ticket],
    records: &BTreeMap<usize, Vec<SampledRecord>>,
) -> Vec<UnitSample> {
    let mut units: BTreeMap<String, Vec<Stratum>> = BTreeMap::new();
    for (agency_id, drawn) in strata {
        let accounts = drawn
            .picked
            .into_iter()
            .map(|(a, rank)| {
                let block = &pop.accounts[a];
                let recs = records.get(&a).cloned().unwrap_or_default();
                SampledAccount {
                    agency_id: block.agency_id.clone(),
                    account_id: block.account_id.clone(),
                    ticket: ticket_hex(&tickets[a]),
                    rank,
                    records_in_period: block.records as u64,
                    records_selected: recs.len() as u64,
                    records: recs,
                }
            })
            .collect();
        units.entry(drawn.unit).or_default().push(Stratum {
            agency_id,
            accounts_in_use: drawn.in_use,
            accounts_selected: drawn.n,
            accounts,
        });
    }
    units
        .into_iter()
        .map(|(unit_id, strata)| UnitSample { unit_id, strata })
        .collect()
}

/// What the sample digest covers: everything that determines and is the
/// selection, and no timestamps.
#[derive(Debug, Serialize)]
pub struct DigestInput<'a> {
    pub spec_version: &'a str,
    pub seed: &'a str,
    pub period_id: &'a str,
    pub population_digest: &'a str,
    pub parameters: Params,
    pub units: &'a [UnitSample],
}

/// SHA-256 of the canonical JSON of `d`: keys sorted, no whitespace,
/// non-ASCII characters as UTF-8 (Python: `json.dumps(obj, sort_keys=True,
/// separators=(",", ":"), ensure_ascii=False)`).
pub fn sample_digest(d: &DigestInput<'_>) -> String {
    // serde_json::Value keeps object keys in a BTreeMap: sorted.
    let value = serde_json::to_value(d).expect("plain data serialises");
    let text = serde_json::to_string(&value).expect("plain data serialises");
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The selected records as a frame for `sample.csv` and the reports:
/// subject masked (`subject`), with the record's details from the query
/// log — its exact time and, for matching request forms, the raw
/// `subject_id`, which must be dropped before anything is written.
pub fn sample_frame(
    pop: &Population,
    units: &[UnitSample],
    query_log: &DataFrame,
) -> PolarsResult<DataFrame> {
    let mut unit = Vec::new();
    let mut agency = Vec::new();
    let mut account = Vec::new();
    let mut account_rank = Vec::new();
    let mut record_rank = Vec::new();
    let mut queried_at = Vec::new();
    let mut item = Vec::new();
    let mut subject = Vec::new();
    let mut occurrence = Vec::new();
    let mut record_ticket = Vec::new();
    let mut rows: Vec<IdxSize> = Vec::new();
    let log_rows = pop.frame.column("row")?.idx()?;
    for u in units {
        for s in &u.strata {
            for a in &s.accounts {
                for r in &a.records {
                    unit.push(u.unit_id.clone());
                    agency.push(a.agency_id.clone());
                    account.push(a.account_id.clone());
                    account_rank.push(a.rank);
                    record_rank.push(r.rank);
                    queried_at.push(r.queried_at.clone());
                    item.push(r.query_item.clone());
                    subject.push(r.subject.clone());
                    occurrence.push(r.occurrence);
                    record_ticket.push(r.ticket.clone());
                    rows.push(log_rows.get(r.population_row).unwrap_or(0));
                }
            }
        }
    }
    let details = query_log
        .select([
            "queried_at",
            "subject_id",
            "purpose",
            "result",
            "source_file",
            "source_row",
        ])?
        .take(&IdxCa::from_vec("row".into(), rows))?
        .lazy()
        .rename(["queried_at"], ["queried_at_exact"], true)
        // The log's categoricals, as text for the sample's few rows.
        .with_columns(["purpose", "result", "source_file"].map(|c| col(c).cast(DataType::String)))
        .collect()?;
    let mut df = df!(
        "unit_id" => unit,
        "agency_id" => agency,
        "account_id" => account,
        "account_rank" => account_rank,
        "record_rank" => record_rank,
        "queried_at" => queried_at,
        "query_item" => item,
        "subject" => subject,
        "occurrence" => occurrence,
        "record_ticket" => record_ticket,
    )?;
    df.hstack_mut(details.columns())?;
    Ok(df)
}

/// The first place where `recomputed` differs from `recorded` (a
/// manifest's units), in the words an auditor reads; `None` if equal.
pub fn first_difference(recorded: &[UnitSample], recomputed: &[UnitSample]) -> Option<String> {
    let units = |u: &[UnitSample]| u.iter().map(|u| u.unit_id.clone()).collect::<Vec<_>>();
    if units(recorded) != units(recomputed) {
        return Some(format!(
            "units differ: the manifest has {:?}, recomputed {:?}",
            units(recorded),
            units(recomputed)
        ));
    }
    recorded
        .iter()
        .zip(recomputed)
        .find_map(|(ru, cu)| unit_difference(ru, cu))
}

/// The first place where unit `cu` differs from the manifest's `ru`.
fn unit_difference(ru: &UnitSample, cu: &UnitSample) -> Option<String> {
    let ids = |u: &UnitSample| {
        u.strata
            .iter()
            .map(|s| s.agency_id.clone())
            .collect::<Vec<_>>()
    };
    if ids(ru) != ids(cu) {
        return Some(format!(
            "unit {}: strata differ: the manifest has {:?}, recomputed {:?}",
            ru.unit_id,
            ids(ru),
            ids(cu)
        ));
    }
    ru.strata
        .iter()
        .zip(&cu.strata)
        .find_map(|(rs, cs)| stratum_difference(&ru.unit_id, rs, cs))
}

/// The first place where stratum `cs` of unit `unit_id` differs from the
/// manifest's `rs`.
fn stratum_difference(unit_id: &str, rs: &Stratum, cs: &Stratum) -> Option<String> {
    let at = format!("unit {unit_id}, stratum {}", rs.agency_id);
    if (rs.accounts_in_use, rs.accounts_selected) != (cs.accounts_in_use, cs.accounts_selected) {
        return Some(format!(
            "{at}: the manifest has N = {}, n = {}; recomputed N = {}, n = {}",
            rs.accounts_in_use, rs.accounts_selected, cs.accounts_in_use, cs.accounts_selected
        ));
    }
    let first = rs
        .accounts
        .iter()
        .zip(&cs.accounts)
        .enumerate()
        .find_map(|(i, (ra, ca))| account_difference(&at, i + 1, ra, ca));
    if first.is_some() {
        return first;
    }
    (rs.accounts.len() != cs.accounts.len()).then(|| {
        format!(
            "{at}: the manifest lists {} accounts, recomputed {}",
            rs.accounts.len(),
            cs.accounts.len()
        )
    })
}

/// The first place where the account of rank `rank` at `at` differs: its
/// id, its ticket, rank and counts, then its records.
fn account_difference(
    at: &str,
    rank: usize,
    ra: &SampledAccount,
    ca: &SampledAccount,
) -> Option<String> {
    if ra.account_id != ca.account_id {
        return Some(format!(
            "{at}: account of rank {rank}: the manifest has {}, recomputed {} (ticket {})",
            ra.account_id, ca.account_id, ca.ticket
        ));
    }
    let at = format!("{at}, account {}", ra.account_id);
    let head = |a: &SampledAccount| {
        (
            a.ticket.clone(),
            a.rank,
            a.records_in_period,
            a.records_selected,
        )
    };
    if head(ra) != head(ca) {
        return Some(format!(
            "{at}: the manifest has (ticket, rank, m, k) = {:?}, recomputed {:?}",
            head(ra),
            head(ca)
        ));
    }
    for (rr, cr) in ra.records.iter().zip(&ca.records) {
        if rr != cr {
            return Some(format!(
                "{at}: record of rank {}: the manifest has {} {} occurrence {} (ticket {}), recomputed {} {} occurrence {} (ticket {})",
                rr.rank,
                rr.queried_at,
                rr.query_item,
                rr.occurrence,
                rr.ticket,
                cr.queried_at,
                cr.query_item,
                cr.occurrence,
                cr.ticket
            ));
        }
    }
    (ra.records.len() != ca.records.len()).then(|| {
        format!(
            "{at}: the manifest lists {} records, recomputed {}",
            ra.records.len(),
            ca.records.len()
        )
    })
}

#[cfg(test)]
mod tests;
