//! Turning raw text cells into canonical typed columns, as polars
//! expressions over whole columns (no per-row Rust loop).
//!
//! For every row the plan produces either the parsed values or a reject
//! reason naming each bad column, its header as written and the raw value.
//! Rows with no value at all are blank; mostly-empty rows after the last
//! real record are the export's footer (totals, print notes). Both are
//! counted, not loaded.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::read::ROW;
use crate::config::DateFormat;
use crate::model::{ColumnSpec, Kind, Table, Vocab};

pub const REASON: &str = "__reason";
pub const RAW: &str = "__raw";
/// The row has a bad or missing value.
pub const BAD: &str = "__bad";
/// Fewer than half of the row's columns have a value (footer-like).
pub const SPARSE: &str = "__sparse";
/// The row has no value at all.
pub const BLANK: &str = "__blank";

/// The most bytes a cell may hold: Excel's own limit is 32,767
/// characters, at most 3 bytes each in the encodings exports use. A longer
/// one is no export's value.
pub const MAX_CELL_BYTES: u32 = 128 * 1024;

/// How much of a raw cell a reject shows.
const SHOWN_CHARS: usize = 60;

/// The output time unit for date-times.
pub const TIME_UNIT: TimeUnit = TimeUnit::Microseconds;

/// What the parse plan needs besides the frame.
#[allow(missing_debug_implementations)] // holds a closure
pub struct ParseContext<'a> {
    pub table: Table,
    /// `(canonical column, header as written)` of the columns the file has.
    pub headers: &'a [(&'static str, String)],
    /// Declared format of each date column (absent: auto).
    pub format_of: &'a dyn Fn(&str) -> DateFormat,
    /// Upper-cased agency spellings and the ids they mean.
    pub agencies: &'a [(String, String)],
    /// Extra spellings from the config, by vocabulary name.
    pub vocabulary: &'a BTreeMap<&'static str, Vec<(String, &'static str)>>,
}

/// The dtype of a canonical column.
pub fn dtype(kind: Kind) -> DataType {
    match kind {
        Kind::Date => DataType::Date,
        Kind::DateTime => DataType::Datetime(TIME_UNIT, None),
        _ => DataType::String,
    }
}

/// The query log's identifier and code columns, held as categoricals (a
/// 4-byte code per row into one shared dictionary) from the parse on: at
/// ten million rows a text column of 16-byte views is 160 MB, and these
/// repeat a few thousand values. The subject's national ID, nearly unique,
/// stays text. Only the log: the other tables are small, and a join of
/// the log with one casts that side's key ([`categorical`]).
pub const LOG_CATEGORICAL: [&str; 6] = [
    "account_id",
    "query_item",
    "purpose",
    "result",
    "agency_id",
    "client_ip",
];

/// The dtype of the log's categorical columns: the process-wide
/// dictionary, so every frame's codes mean the same strings and joins and
/// comparisons between them need no re-mapping. Sorts on it are lexical,
/// as on text.
pub fn categorical() -> DataType {
    DataType::from_categories(Categories::global())
}

/// `values` at the codes of `keys` (a [`categorical`] column holding
/// each key once) in the one dictionary, null where no key has the code:
/// a frame's value for its key is then a gather by the key's code. A
/// lookup by a join (as `replace_strict` does) held 1.5 GB more at fifty
/// million queries.
pub fn by_code(keys: &Series, values: &Series) -> PolarsResult<Series> {
    let codes = keys.to_physical_repr();
    let codes = codes.u32()?;
    let mut row_of = vec![None; codes.max().map_or(0, |m| m as usize + 1)];
    for (row, code) in codes.iter().enumerate() {
        if let Some(c) = code {
            row_of[c as usize] = Some(row as IdxSize);
        }
    }
    values.take(&IdxCa::from_iter_options("row".into(), row_of.into_iter()))
}

/// `columns` gathered in `order` (row numbers), two at a time, one per
/// core; each original is dropped as its copy is made, so where nothing
/// else holds it, its memory is freed as it goes.
pub fn gathered(columns: Vec<Column>, order: &IdxCa) -> PolarsResult<Vec<Column>> {
    let mut out = Vec::with_capacity(columns.len());
    let mut originals = columns.into_iter();
    while let Some(a) = originals.next() {
        let b = originals.next();
        let (a, b) = rayon::join(|| a.take(order), || b.map(|b| b.take(order)));
        out.push(a?);
        out.extend(b.transpose()?);
    }
    Ok(out)
}

/// Two values of [`categorical`] columns (or text cast to one) as one
/// integer: their codes in the one dictionary, the first in the high half.
/// Equal pairs, equal integers; a null in either, null. Grouping,
/// filtering or de-duplicating ten million rows on it hashes one number
/// per row, where the same on the two keys encodes both as bytes.
pub fn code_pair(a: Expr, b: Expr) -> Expr {
    halves(code(a), code(b))
}

/// A value of a [`categorical`] column and the day of a date-time (days
/// since 1970, shifted to be non-negative) as one integer, as
/// [`code_pair`].
pub fn code_and_day(a: Expr, at: Expr) -> Expr {
    const DAY_US: i64 = 86_400_000_000;
    halves(
        code(a),
        at.to_physical().floor_div(lit(DAY_US)) + lit(1i64 << 31),
    )
}

fn code(e: Expr) -> Expr {
    e.cast(categorical()).to_physical()
}

/// Two values below 2^32 as one: `hi` in the high half.
pub fn halves(hi: Expr, lo: Expr) -> Expr {
    hi.cast(DataType::UInt64) * lit(1u64 << 32) + lo.cast(DataType::UInt64)
}

/// The dtype of canonical column `c` of `table`.
pub fn column_dtype(table: Table, c: &ColumnSpec) -> DataType {
    if table == Table::QueryLog && LOG_CATEGORICAL.contains(&c.name) {
        categorical()
    } else {
        dtype(c.kind)
    }
}

fn null_of(dt: DataType) -> Expr {
    lit(NULL).cast(dt)
}

fn s(name: &str) -> String {
    format!("__s_{name}")
}

/// Whether the trimmed cell of column `name` is missing or empty.
fn is_empty(name: &str) -> Expr {
    let v = col(s(name));
    v.clone().is_null().or(v.eq(lit("")))
}

fn pattern_col(name: &str) -> String {
    format!("__p_{name}")
}

/// Builds the plan: the row number, every canonical column of the table
/// (typed; absent optional columns are null) and the [`BAD`], [`SPARSE`]
/// and [`BLANK`] flags. With `with_reasons` also [`REASON`] and [`RAW`]
/// (the raw cells, national IDs masked): run that only on the rows already
/// known to be bad, as building sentences for every row would cost more
/// than parsing them.
pub fn plan(lf: LazyFrame, cx: &ParseContext<'_>, with_reasons: bool) -> LazyFrame {
    let present: Vec<&'static ColumnSpec> = cx
        .headers
        .iter()
        .filter_map(|(c, _)| cx.table.column(c))
        .collect();

    // Stage 1: trimmed text. An empty string stays a string here (making
    // it null would rebuild every column); `is_empty` tests for it, and
    // every parser below turns it into null anyway.
    let trimmed: Vec<Expr> = present
        .iter()
        .map(|c| trimmed(col(c.name)).alias(s(c.name)))
        .collect();

    // Stage 2 (inside [`temporal`]): the ISO fast path, then, only for
    // chunks it did not read whole, regex captures for the rest.

    // Stage 3: typed values and per-column problems.
    let mut values = Vec::new();
    let mut problems: Vec<(Expr, Expr)> = Vec::new();
    for c in cx.table.columns() {
        if !present.iter().any(|p| p.name == c.name) {
            values.push(null_of(column_dtype(cx.table, c)).alias(c.name));
            continue;
        }
        let (parsed, what) = typed_value(cx, c);
        values.push(parsed.alias(c.name));
        problems.extend(column_problems(c, &header_of(cx, c.name), &what));
    }

    // Stage 4: flags for bad, blank and sparse rows; reasons on request.
    let [bad, sparse, blank] = row_flags(&present, &problems);
    let mut out = lf.with_columns(trimmed);
    out = out.with_columns(values).with_columns([
        bad.alias(BAD),
        sparse.alias(SPARSE),
        blank.alias(BLANK),
    ]);
    // The cast to a categorical runs per morsel: the text of a morsel is
    // freed as soon as its codes are made.
    let mut keep: Vec<Expr> = std::iter::once(col(ROW))
        .chain(cx.table.columns().iter().map(|c| {
            let dt = column_dtype(cx.table, c);
            if dt == dtype(c.kind) {
                col(c.name)
            } else {
                col(c.name).cast(dt)
            }
        }))
        .chain([col(BAD), col(SPARSE), col(BLANK)])
        .collect();
    if with_reasons {
        out = out.with_columns(reason_and_raw(cx, &present, &problems));
        keep.extend([col(REASON), col(RAW)]);
    }
    out.select(keep)
}

/// The header a column has in the file, or its canonical name.
fn header_of(cx: &ParseContext<'_>, name: &'static str) -> String {
    cx.headers
        .iter()
        .find(|(c, _)| *c == name)
        .map_or(name.to_owned(), |(_, h)| h.clone())
}

/// A present column's typed value (null where its cell cannot be read)
/// and what a cell that cannot be read is not (empty when every cell can).
fn typed_value(cx: &ParseContext<'_>, c: &ColumnSpec) -> (Expr, String) {
    let v = col(s(c.name));
    match c.kind {
        Kind::Text => (kernel(v, str::is_empty, |_| None), String::new()),
        // An identifier is a plain token: no control or invisible
        // formatting character, no quotes or brackets around it.
        Kind::Id => (
            kernel(v, |v| v.is_empty() || id_junk(v), |_| None),
            "is not an identifier: it holds a control or invisible character, or quote marks around it"
                .to_owned(),
        ),
        Kind::NationalId => (
            kernel(
                v,
                |v| !national_id(v),
                |v| Some(v.to_uppercase()).filter(|u| national_id(u)),
            ),
            "is not a national ID (a letter, then a letter or digit, then eight digits)".to_owned(),
        ),
        Kind::Agency => (
            lookup(
                v,
                Lookup::of(cx, c).expect("an agency column has a lookup"),
                column_dtype(cx.table, c),
            ),
            "is not an agency id, name or alias in the config".to_owned(),
        ),
        Kind::Enum(vocab) => (
            lookup(
                v,
                Lookup::of(cx, c).expect("a vocabulary column has a lookup"),
                column_dtype(cx.table, c),
            ),
            vocab_hint(vocab),
        ),
        Kind::Date | Kind::DateTime => {
            let dt = temporal(c.name, (cx.format_of)(c.name));
            let parsed = if c.is_date() { dt.dt().date() } else { dt };
            (
                parsed,
                if c.is_date() {
                    "cannot be read as a date (ROC 112/08/17, 1120817, 民國112年8月17日; or 2023/8/17, 2023-08-17)"
                } else {
                    "cannot be read as a date and time (112/08/17 14:03:22, 2023/8/17 下午 02:03:22, 2023-08-17T14:03:22)"
                }
                .to_owned(),
            )
        }
    }
}

/// A present column's problems, each a flag and the sentence saying it:
/// a cell that cannot be read (`what` it is not), an empty required cell,
/// a cell over [`MAX_CELL_BYTES`].
fn column_problems(c: &ColumnSpec, header: &str, what: &str) -> Vec<(Expr, Expr)> {
    let v = col(s(c.name));
    let prefix = format!("column {:?} ({})", header, c.name);
    let mut problems = Vec::new();
    // Flags refer to the parsed column by name, so parsing runs once.
    if !what.is_empty() {
        let flag = is_empty(c.name).not().and(col(c.name).is_null());
        let msg = concat_str(
            [
                lit(format!("{prefix}: \"")),
                shown(c, v.clone()),
                lit(format!("\" {what}")),
            ],
            "",
            false,
        );
        problems.push((flag, msg));
    }
    if c.value_required() {
        problems.push((is_empty(c.name), lit(format!("{prefix} is empty"))));
    }
    // Byte lengths are the offsets polars keeps: no cell is read.
    problems.push((
        v.clone()
            .str()
            .len_bytes()
            .gt(lit(MAX_CELL_BYTES))
            .fill_null(lit(false)),
        concat_str(
            [
                lit(format!("{prefix} has ")),
                v.str().len_bytes().cast(DataType::String),
                lit(format!(" bytes, more than any cell may ({MAX_CELL_BYTES})")),
            ],
            "",
            false,
        ),
    ));
    problems
}

/// The row flags, in the order [`BAD`], [`SPARSE`], [`BLANK`]: any
/// problem; fewer than half the present columns filled; none filled.
fn row_flags(present: &[&'static ColumnSpec], problems: &[(Expr, Expr)]) -> [Expr; 3] {
    let filled = present
        .iter()
        .map(|c| is_empty(c.name).not().cast(DataType::UInt32))
        .reduce(|a, b| a + b)
        .unwrap_or(lit(0u32));
    let sparse = (filled.clone() * lit(2u32)).lt(lit(present.len() as u32));
    // A null flag would drop its row from both the loaded and the
    // rejected set: every flag is true or false.
    let any_problem = problems
        .iter()
        .map(|p| p.0.clone())
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false))
        .fill_null(lit(false));
    [any_problem, sparse, filled.eq(lit(0u32))]
}

/// The [`REASON`] (every problem's sentence) and [`RAW`] (the raw cells,
/// national IDs masked) columns.
fn reason_and_raw(
    cx: &ParseContext<'_>,
    present: &[&'static ColumnSpec],
    problems: &[(Expr, Expr)],
) -> [Expr; 2] {
    let messages: Vec<Expr> = problems
        .iter()
        .map(|(flag, msg)| {
            when(flag.clone())
                .then(msg.clone())
                .otherwise(null_of(DataType::String))
        })
        .collect();
    let raw_parts: Vec<Expr> = present
        .iter()
        .map(|c| {
            concat_str(
                [
                    lit(format!("{}=", header_of(cx, c.name))),
                    first_chars(shown(c, col(s(c.name)))).fill_null(lit("")),
                ],
                "",
                false,
            )
        })
        .collect();
    [
        concat_str(&messages, "; ", true).alias(REASON),
        concat_str(&raw_parts, " | ", false).alias(RAW),
    ]
}

/// The first characters of a cell, and how long it was when it was cut.
fn first_chars(v: Expr) -> Expr {
    let n = SHOWN_CHARS as u32;
    when(v.clone().str().len_chars().gt(lit(n)))
        .then(concat_str(
            [
                v.clone().str().slice(lit(0), lit(n as u64)),
                lit("…（共 "),
                v.clone().str().len_chars().cast(DataType::String),
                lit(" 字）"),
            ],
            "",
            false,
        ))
        .otherwise(v)
}

/// A cell as it may appear in a reject: national IDs masked, since rejects
/// reach people (the terminal, the data-quality sheet of later reports).
fn shown(c: &ColumnSpec, v: Expr) -> Expr {
    match c.kind {
        Kind::NationalId => crate::privacy::mask_national_id_expr(v),
        _ => v,
    }
}

/// How a lookup's spellings are folded.
#[derive(Debug, Clone, Copy)]
enum Case {
    Upper,
    Lower,
}

/// The spellings of an agency or vocabulary column and the codes they
/// mean (keys folded to `case`): the one place a spelling is resolved, for
/// the parse plan and for the query log's own reader ([`super::fast`]).
#[derive(Debug, Clone)]
pub struct Lookup {
    // Lookups only: no iteration order reaches any output.
    map: PlHashMap<String, String>,
    case: Case,
}

impl Lookup {
    /// The lookup of column `c`, if it is an agency or vocabulary column.
    pub fn of(cx: &ParseContext<'_>, c: &ColumnSpec) -> Option<Lookup> {
        let (case, pairs): (Case, Vec<(String, String)>) = match c.kind {
            Kind::Agency => (Case::Upper, cx.agencies.to_vec()),
            Kind::Enum(vocab) => (
                Case::Lower,
                vocab
                    .spellings()
                    .into_iter()
                    .map(|(s, c)| (s.to_lowercase(), c.to_owned()))
                    .chain(
                        cx.vocabulary
                            .get(vocab.name)
                            .into_iter()
                            .flatten()
                            .map(|(s, c)| (s.clone(), (*c).to_owned())),
                    )
                    .collect(),
            ),
            _ => return None,
        };
        Some(Lookup {
            map: pairs.into_iter().collect(),
            case,
        })
    }

    /// The code a trimmed cell means: as written, else folded.
    pub fn find(&self, v: &str) -> Option<&str> {
        self.find_in(&self.map, v).map(String::as_str)
    }

    fn find_in<'m, V>(&self, map: &'m PlHashMap<String, V>, v: &str) -> Option<&'m V> {
        map.get(v).or_else(|| {
            map.get(&match self.case {
                Case::Upper => v.to_uppercase(),
                Case::Lower => v.to_lowercase(),
            })
        })
    }
}

/// Maps spellings to codes ([`Lookup`]); unknown spellings become null.
/// An elementwise function (one hash lookup per value; the value is
/// folded only when it misses as written), not `replace_strict`: that
/// takes its mapping as column inputs, which the streaming engine can only
/// feed by collecting the whole file first (the ingest memory peak). Into
/// a categorical `out` (the log's columns) the codes go straight in, with
/// no text column between.
fn lookup(key: Expr, lookup: Lookup, out: DataType) -> Expr {
    // Into a categorical: each spelling straight to its code's number.
    let numbers: Option<PlHashMap<String, u32>> =
        categorical_codes(&out, lookup.map.values()).map(|codes| {
            lookup
                .map
                .iter()
                .filter_map(|(s, code)| Some((s.clone(), *codes.get(code)?)))
                .collect()
        });
    // Text when no codes could be had; the plan casts it at the end.
    let field = if numbers.is_some() {
        out.clone()
    } else {
        DataType::String
    };
    key.map(
        move |c: Column| {
            let ca = c.str()?;
            if let Some(numbers) = &numbers {
                let codes: UInt32Chunked = ca
                    .iter()
                    .map(|v| lookup.find_in(numbers, v?).copied())
                    .collect();
                return Ok(categorical_column(c.name().clone(), codes, &out));
            }
            let text: StringChunked = ca.iter().map(|v| lookup.find(v?)).collect();
            Ok(text.with_name(c.name().clone()).into_column())
        },
        move |_, f| Ok(Field::new(f.name().clone(), field.clone())),
    )
}

/// For a categorical `dt` of 32-bit codes (the log's, see [`categorical`]):
/// the code of each of `values` in its dictionary ([`category`]).
pub(super) fn categorical_codes<'a>(
    dt: &DataType,
    values: impl Iterator<Item = &'a String>,
) -> Option<std::collections::HashMap<String, u32>> {
    values
        .map(|v| Some((v.clone(), category(dt, v)?)))
        .collect()
}

/// For a categorical `dt` of 32-bit codes: the code of `v` in its
/// dictionary, entered there if new.
pub(super) fn category(dt: &DataType, v: &str) -> Option<u32> {
    let DataType::Categorical(cats, mapping) = dt else {
        return None;
    };
    if cats.physical() != CategoricalPhysical::U32 {
        return None;
    }
    mapping.insert_cat(v).ok()
}

/// A categorical column of `dt` from codes [`category`] gave.
#[allow(unsafe_code)]
pub(super) fn categorical_column(name: PlSmallStr, codes: UInt32Chunked, dt: &DataType) -> Column {
    // SAFETY: every code was returned by `insert_cat` of `dt`'s own
    // mapping ([`category`]), which never removes an entry, or is the
    // physical code of a column whose dtype equals `dt` (the same
    // mapping: `fast::FileColumns::take_planned` checks); a null's slot
    // holds 0 and is never read as a code. `dt` has 32-bit codes
    // (checked in `category`): the codes are in bounds and the dtype
    // matches their width.
    let ca = unsafe {
        CategoricalChunked::<Categorical32Type>::from_cats_and_dtype_unchecked(codes, dt.clone())
    };
    ca.into_series().with_name(name).into_column()
}

/// An elementwise kernel over a text column that changes only the values
/// `needs` picks, to what `fix` makes of them (`None`: null). A chunk in
/// which no value needs it is passed on as it is, without a copy: most
/// exports are clean, and copying every cell of every column was most of
/// the cost of parsing.
fn kernel(v: Expr, needs: fn(&str) -> bool, fix: fn(&str) -> Option<String>) -> Expr {
    v.map(
        move |c: Column| {
            let ca = c.str()?;
            if !ca.iter().any(|v| v.is_some_and(needs)) {
                return Ok(c);
            }
            let out: StringChunked = ca
                .iter()
                .map(|v| {
                    let v = v?;
                    if needs(v) { fix(v) } else { Some(v.to_owned()) }
                })
                .collect();
            Ok(out.with_name(c.name().clone()).into_column())
        },
        |_, f| Ok(Field::new(f.name().clone(), DataType::String)),
    )
}

/// A cell without the white space around it (Unicode `White_Space`, as
/// `str::trim`); untouched chunks are not copied.
fn trimmed(v: Expr) -> Expr {
    kernel(
        v,
        |v| {
            v.chars().next().is_some_and(char::is_whitespace)
                || v.chars().next_back().is_some_and(char::is_whitespace)
        },
        |v| Some(v.trim().to_owned()),
    )
}

/// `[A-Z][A-Z0-9][0-9]{8}`, exactly.
pub(super) fn national_id(v: &str) -> bool {
    national_id_bytes(v.as_bytes())
}

/// [`national_id`] of bytes.
pub(super) fn national_id_bytes(b: &[u8]) -> bool {
    b.len() == 10
        && b[0].is_ascii_uppercase()
        && (b[1].is_ascii_uppercase() || b[1].is_ascii_digit())
        && b[2..].iter().all(u8::is_ascii_digit)
}

/// A national ID ([`national_id_bytes`]) as a number under 2^37, one per
/// ID; `None` for anything else.
pub fn national_id_key(b: &[u8]) -> Option<u64> {
    if !national_id_bytes(b) {
        return None;
    }
    let second = if b[1].is_ascii_digit() {
        b[1] - b'0'
    } else {
        b[1] - b'A' + 10
    };
    let digits = b[2..]
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some((u64::from(b[0] - b'A') * 36 + u64::from(second)) * 100_000_000 + digits)
}

/// Whether an identifier is junk: a control (`Cc`) or invisible format
/// (`Cf`) character anywhere, or a quote mark at either end (an export
/// that quoted twice).
pub(super) fn id_junk(v: &str) -> bool {
    const QUOTES_START: [char; 4] = ['"', '\'', '「', '『'];
    const QUOTES_END: [char; 4] = ['"', '\'', '」', '』'];
    if v.starts_with(QUOTES_START) || v.ends_with(QUOTES_END) {
        return true;
    }
    if v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return false;
    }
    v.chars().any(|c| c.is_control() || is_format_char(c))
}

/// Unicode general category `Cf` (format characters: zero-width spaces
/// and joiners, direction marks, the byte-order mark, …).
fn is_format_char(c: char) -> bool {
    matches!(
        c as u32,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

fn vocab_hint(vocab: &Vocab) -> String {
    let codes: Vec<String> = vocab
        .entries
        .iter()
        .map(|(c, l, _)| format!("{c} ({l})"))
        .collect();
    format!(
        "is not a known {}: expected {}",
        vocab.name,
        codes.join(", ")
    )
}

/// Dates with separators: ROC or Gregorian year, optional 民國 prefix,
/// optional time with 上午/下午 or AM/PM before or after it.
const SEPARATED: &str = r"^(?<roc>民國)?\s*(?<y>\d{1,4})\s*[/\-.年]\s*(?<m>\d{1,2})\s*[/\-.月]\s*(?<d>\d{1,2})\s*日?(?:(?:\s+|T)(?<ap1>上午|下午|AM|PM|am|pm)?\s*(?<H>\d{1,2})\s*[:時]\s*(?<M>\d{1,2})(?:\s*[:分]\s*(?<S>\d{1,2})(?:\.\d+)?\s*秒?)?\s*(?<ap2>AM|PM|am|pm)?)?$";

/// Dates without separators: `YYYYMMDD`, ROC `YYYMMDD` or `YYMMDD`, with an
/// optional `HHMMSS` or `HH:MM:SS`.
const COMPACT: &str = r"^(?<n>\d{6,8})(?:(?:\s+|T)(?<H>\d{2}):?(?<M>\d{2})(?::?(?<S>\d{2}))?)?$";

/// The local date-time of the trimmed temporal column `name`, or null
/// when unreadable: polars' native parser for the commonest format, and
/// the regexes (every ROC and 上午/下午 form, [`date_time`]) only on a chunk
/// holding a value it could not read. A clean export's chunks never build
/// the regexes' capture columns.
fn temporal(name: &str, format: DateFormat) -> Expr {
    let raw = s(name);
    let fast = fast_col(name);
    let out_name = name.to_owned();
    as_struct(vec![
        col(raw.clone()),
        iso_fast_path(col(raw.clone()), format).alias(fast.clone()),
    ])
    .map(
        move |c: Column| {
            let st = c.struct_()?;
            let r = st.field_by_name(&raw)?;
            let f = st.field_by_name(&fast)?;
            let rs = r.str()?;
            // A non-empty value the fast path left null (a null value's
            // comparison is null, which `any` does not count).
            let missed = (&f.is_null() & &rs.not_equal("")).any();
            if !missed {
                return Ok(f.with_name(out_name.as_str().into()).into_column());
            }
            let pattern = pattern_col(&out_name);
            let missed_fast = col(fast.clone()).is_null();
            let a = when(missed_fast.clone())
                .then(col(raw.clone()))
                .otherwise(null_of(DataType::String))
                .str()
                .extract_groups(SEPARATED)
                .expect("valid regex")
                .alias(pattern.clone());
            let a_missed = col(pattern.clone())
                .struct_()
                .field_by_name("y")
                .is_null()
                .and(missed_fast);
            let b = when(a_missed)
                .then(col(raw.clone()))
                .otherwise(null_of(DataType::String))
                .str()
                .extract_groups(COMPACT)
                .expect("valid regex")
                .alias(format!("{pattern}b"));
            let df = DataFrame::new(r.len(), vec![r.into_column(), f.into_column()])?;
            let out = df
                .lazy()
                .with_columns([a])
                .with_columns([b])
                .select([date_time(&out_name, format).alias(out_name.as_str())])
                .collect()?;
            Ok(out.column(&out_name)?.clone())
        },
        |_, f| Ok(Field::new(f.name().clone(), dtype(Kind::DateTime))),
    )
}

/// The local date-time the regexes' captures (`pattern_col(name)`, and
/// `…b` for the compact form) and the fast path (`fast_col(name)`) give.
fn date_time(name: &str, format: DateFormat) -> Expr {
    let a = |group: &str| separated_capture(name, group);
    let b = |group: &str| compact_capture(name, group);
    let year_a = separated_year(name, format);
    let (year_b, mb, db) = compact_date(name, format);
    let year = coalesce(&[year_a, year_b]);
    let month = coalesce(&[as_i32(a("m")), mb]);
    let day = coalesce(&[as_i32(a("d")), db]);
    let hour12 = coalesce(&[as_i32(a("H")), as_i32(b("H"))]).fill_null(lit(0));
    let minute = coalesce(&[as_i32(a("M")), as_i32(b("M"))]).fill_null(lit(0));
    let second = coalesce(&[as_i32(a("S")), as_i32(b("S"))]).fill_null(lit(0));
    let ap = coalesce(&[a("ap1"), a("ap2")]).str().to_uppercase();
    let (hour, hour_ok) = hour_of_day(hour12, ap);
    let ok = year
        .clone()
        .gt_eq(lit(1900))
        .and(year.clone().lt_eq(lit(2200)))
        .and(month.clone().gt_eq(lit(1)))
        .and(month.clone().lt_eq(lit(12)))
        .and(day.clone().gt_eq(lit(1)))
        .and(
            day.clone()
                .lt_eq(days_in_month(year.clone(), month.clone())),
        )
        .and(hour_ok)
        .and(minute.clone().lt_eq(lit(59)))
        .and(second.clone().lt_eq(lit(59)));
    let year = when(ok).then(year).otherwise(null_of(DataType::Int32));
    let slow = datetime(
        DatetimeArgs::new(year, month, day)
            .with_hms(hour, minute, second)
            .with_time_unit(TIME_UNIT),
    );
    coalesce(&[col(fast_col(name)), slow])
}

/// Group `group` of the separated form's captures of column `name`.
fn separated_capture(name: &str, group: &str) -> Expr {
    col(pattern_col(name)).struct_().field_by_name(group)
}

/// Group `group` of the compact form's captures of column `name`.
fn compact_capture(name: &str, group: &str) -> Expr {
    col(format!("{}b", pattern_col(name)))
        .struct_()
        .field_by_name(group)
}

fn as_i32(e: Expr) -> Expr {
    e.cast(DataType::Int32)
}

/// The Gregorian year of the separated form: the year's digit count (or
/// 民國) says ROC or Gregorian, within what `format` allows.
fn separated_year(name: &str, format: DateFormat) -> Expr {
    let a = |group: &str| separated_capture(name, group);
    let ylen = a("y").str().len_bytes();
    let y = as_i32(a("y"));
    let roc_marked = a("roc").is_not_null();
    match format {
        DateFormat::Auto => when(
            roc_marked
                .clone()
                .or(ylen.clone().lt_eq(lit(3u32)))
                .and(ylen.clone().lt_eq(lit(3u32))),
        )
        .then(y.clone() + lit(1911))
        .when(ylen.clone().eq(lit(4u32)).and(roc_marked.not()))
        .then(y)
        .otherwise(null_of(DataType::Int32)),
        DateFormat::Roc => when(ylen.lt_eq(lit(3u32)))
            .then(y + lit(1911))
            .otherwise(null_of(DataType::Int32)),
        DateFormat::Gregorian => when(ylen.eq(lit(4u32)).and(roc_marked.not()))
            .then(y)
            .otherwise(null_of(DataType::Int32)),
    }
}

/// The Gregorian year, the month and the day of the compact form: the
/// digit count says which layout (8 Gregorian, 7 ROC, 6 ROC only where
/// declared).
fn compact_date(name: &str, format: DateFormat) -> (Expr, Expr, Expr) {
    let n = compact_capture(name, "n");
    let nlen = n.clone().str().len_bytes().cast(DataType::Int64);
    let part = |off: Expr, len: Expr| as_i32(n.clone().str().slice(off, len));
    let yb = part(lit(0i64), nlen.clone() - lit(4i64));
    let mb = part(nlen.clone() - lit(4i64), lit(2u64));
    let db = part(nlen.clone() - lit(2i64), lit(2u64));
    let (g8, r7, r6) = match format {
        DateFormat::Auto => (true, true, false),
        DateFormat::Roc => (false, true, true),
        DateFormat::Gregorian => (true, false, false),
    };
    let year_b = when(nlen.clone().eq(lit(8i64)).and(lit(g8)))
        .then(yb.clone())
        .when(nlen.clone().eq(lit(7i64)).and(lit(r7)))
        .then(yb.clone() + lit(1911))
        .when(nlen.eq(lit(6i64)).and(lit(r6)))
        .then(yb + lit(1911))
        .otherwise(null_of(DataType::Int32));
    (year_b, mb, db)
}

/// The hour on a 24-hour clock from the hour as written and its 上午/下午
/// (AM/PM) mark if any, and whether the hour as written is one.
fn hour_of_day(hour12: Expr, ap: Expr) -> (Expr, Expr) {
    let pm = ap.clone().eq(lit("下午")).or(ap.clone().eq(lit("PM")));
    let has_ap = ap.is_not_null();
    let hour = when(has_ap.clone().not())
        .then(hour12.clone())
        .when(hour12.clone().eq(lit(12)))
        .then(when(pm.clone()).then(lit(12)).otherwise(lit(0)))
        .otherwise(
            when(pm)
                .then(hour12.clone() + lit(12))
                .otherwise(hour12.clone()),
        );
    let hour_ok = when(has_ap)
        .then(hour12.clone().gt_eq(lit(1)).and(hour12.lt_eq(lit(12))))
        .otherwise(hour.clone().lt_eq(lit(23)));
    (hour, hour_ok)
}

/// The number of days in `month` of `year` (Gregorian leap years).
fn days_in_month(year: Expr, month: Expr) -> Expr {
    let leap = (year.clone() % lit(4))
        .eq(lit(0))
        .and((year.clone() % lit(100)).neq(lit(0)))
        .or((year % lit(400)).eq(lit(0)));
    let m = month;
    when(m.clone().eq(lit(2)))
        .then(when(leap).then(lit(29)).otherwise(lit(28)))
        .when(
            m.clone()
                .eq(lit(4))
                .or(m.clone().eq(lit(6)))
                .or(m.clone().eq(lit(9)))
                .or(m.eq(lit(11))),
        )
        .then(lit(30))
        .otherwise(lit(31))
}

fn fast_col(name: &str) -> String {
    format!("__f_{name}")
}

/// `YYYY-MM-DD HH:MM:SS`, the commonest export format, through polars'
/// native parser; whatever it cannot read goes on to the regexes. Never in
/// a column declared ROC, where a 4-digit year is an error.
fn iso_fast_path(v: Expr, format: DateFormat) -> Expr {
    if format == DateFormat::Roc {
        return null_of(dtype(Kind::DateTime));
    }
    let options = StrptimeOptions {
        format: Some("%Y-%m-%d %H:%M:%S".into()),
        strict: false,
        exact: true,
        cache: false,
    };
    let t = v
        .str()
        .strptime(dtype(Kind::DateTime), options, lit("raise"));
    let year = t.clone().dt().year();
    when(year.clone().gt_eq(lit(1900)).and(year.lt_eq(lit(2200))))
        .then(t)
        .otherwise(null_of(dtype(Kind::DateTime)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `values` as column `column` of `table` and returns each result
    /// as text (`None` where unreadable).
    fn parse_column(
        table: Table,
        column: &'static str,
        format: DateFormat,
        values: &[&str],
    ) -> Vec<Option<String>> {
        let rows: Vec<IdxSize> = (0..values.len() as IdxSize).collect();
        let df = df!(ROW => rows, column => values).unwrap();
        let headers = [(column, column.to_owned())];
        let format_of = move |_: &str| format;
        let agencies = [
            ("KHB".to_owned(), "KHB".to_owned()),
            ("衛生局".to_owned(), "KHB".to_owned()),
        ];
        let vocabulary = BTreeMap::new();
        let cx = ParseContext {
            table,
            headers: &headers,
            format_of: &format_of,
            agencies: &agencies,
            vocabulary: &vocabulary,
        };
        let out = plan(df.lazy(), &cx, false)
            .select([col(column).cast(DataType::String)])
            .collect()
            .unwrap();
        out.column(column)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    }

    fn datetimes(format: DateFormat, values: &[&str]) -> Vec<Option<String>> {
        parse_column(Table::QueryLog, "queried_at", format, values)
    }

    #[test]
    fn date_times_in_every_export_format() {
        let cases = [
            ("112/08/17 14:03:22", "2023-08-17 14:03:22.000000"),
            ("112-08-17 14:03", "2023-08-17 14:03:00.000000"),
            ("1120817", "2023-08-17 00:00:00.000000"),
            ("1120817 140322", "2023-08-17 14:03:22.000000"),
            ("民國112年8月17日", "2023-08-17 00:00:00.000000"),
            ("民國112年8月17日 14時3分22秒", "2023-08-17 14:03:22.000000"),
            ("2023/8/17", "2023-08-17 00:00:00.000000"),
            ("2023-08-17T14:03:22", "2023-08-17 14:03:22.000000"),
            ("2023-08-17 14:03:22.250", "2023-08-17 14:03:22.000000"),
            ("20230817", "2023-08-17 00:00:00.000000"),
            ("2023/8/17 下午 02:03:22", "2023-08-17 14:03:22.000000"),
            ("2023/8/17 上午 12:03:22", "2023-08-17 00:03:22.000000"),
            ("2023/8/17 下午 12:03:22", "2023-08-17 12:03:22.000000"),
            ("2023/8/17 02:03:22 PM", "2023-08-17 14:03:22.000000"),
            ("  2024/2/29 08:00:00 ", "2024-02-29 08:00:00.000000"),
        ];
        let values: Vec<&str> = cases.iter().map(|c| c.0).collect();
        let got = datetimes(DateFormat::Auto, &values);
        for ((input, want), got) in cases.iter().zip(got) {
            assert_eq!(got.as_deref(), Some(*want), "{input}");
        }
    }

    #[test]
    fn impossible_or_ambiguous_dates_are_not_guessed() {
        let bad = [
            "2023/02/29",              // not a leap year
            "112/13/01",               // month 13
            "112/04/31",               // April has 30 days
            "2023/8/17 25:00:00",      // hour 25
            "2023/8/17 下午 13:00:00", // 13 PM
            "990101",                  // 6 digits: ROC only where declared
            "2023-08-17T14:03:22+08:00",
            "yesterday",
            "0099/01/01",
        ];
        for (input, got) in bad.iter().zip(datetimes(DateFormat::Auto, &bad)) {
            assert_eq!(got, None, "{input}");
        }
    }

    #[test]
    fn declared_formats_decide_ambiguous_dates() {
        let roc = datetimes(DateFormat::Roc, &["990101", "99/1/1", "2023/8/17"]);
        assert_eq!(roc[0].as_deref(), Some("2010-01-01 00:00:00.000000"));
        assert_eq!(roc[1].as_deref(), Some("2010-01-01 00:00:00.000000"));
        assert_eq!(
            roc[2], None,
            "a 4-digit year in a column declared ROC is an error"
        );
        let greg = datetimes(DateFormat::Gregorian, &["1120817", "112/08/17", "20230817"]);
        assert_eq!(
            greg,
            vec![None, None, Some("2023-08-17 00:00:00.000000".to_owned())]
        );
    }

    #[test]
    fn dates_drop_a_time_part() {
        let got = parse_column(
            Table::Hr,
            "effective_date",
            DateFormat::Auto,
            &["1150315", "2026-03-15 00:00:00"],
        );
        assert_eq!(
            got,
            vec![Some("2026-03-15".to_owned()), Some("2026-03-15".to_owned())]
        );
    }

    #[test]
    fn vocabularies_and_agencies_accept_codes_labels_and_laws() {
        let got = parse_column(
            Table::RequestForms,
            "purpose",
            DateFormat::Auto,
            &["社政", "Public_Health", "刑事訴訟法", "兵役法", "買房子"],
        );
        let want = [
            Some("social_welfare"),
            Some("public_health"),
            Some("criminal_investigation"),
            Some("military_service"),
            None,
        ];
        assert_eq!(got, want.map(|w| w.map(str::to_owned)).to_vec());
        let got = parse_column(
            Table::QueryLog,
            "agency_id",
            DateFormat::Auto,
            &["khb", "衛生局", "警察局"],
        );
        assert_eq!(
            got,
            vec![Some("KHB".to_owned()), Some("KHB".to_owned()), None]
        );
        let got = parse_column(
            Table::QueryLog,
            "subject_id",
            DateFormat::Auto,
            &["a123456789", "A12345678", "AB12345678"],
        );
        assert_eq!(
            got,
            vec![
                Some("A123456789".to_owned()),
                None,
                Some("AB12345678".to_owned())
            ]
        );
    }
}
