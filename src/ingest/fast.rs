//! The query log's own CSV reader: a UTF-8 export (or a Big5 one, decoded a
//! piece at a time: `CsvLayout::for_each_piece`) read straight into the
//! parse plan's output, on every core, without polars' CSV reader and the
//! text columns between.
//!
//! It reads the rows every clean export is made of, and only those: every
//! value present where one is required, identifiers and codes that check
//! out, and the date-time in the commonest forms. Each distinct
//! identifier or code is trimmed, checked and looked up once per thread
//! (a log repeats a few thousand of them) and goes into the categorical
//! dictionary as its code; a date-time is read as `YYYY-MM-DD HH:MM:SS`
//! or the ROC `YYY/MM/DD HH:MM:SS`. Any other row (an empty required cell, a value
//! in another format or none at all, a footer, too few cells) is kept as
//! raw text and parsed by [`parse::plan`], the general path, a piece at a
//! time, so every value and every reject reads exactly as it would there.
//! The raw cells of the rows the plan flags are what the second pass over
//! rejected and footer rows reads.
//!
//! A file it cannot tokenize the way polars' reader does (a quote inside
//! an unquoted cell, text after a closing quote, more cells than the
//! header, a cell it reads that is not UTF-8) is left whole to the
//! general path, which reads it or says what is wrong with it; so is a
//! file of which a piece has over a tenth of its rows for the plan
//! ([`MOST_LEFT`]), which the general path reads faster, and one of more
//! rows than a frame's row number holds.

use std::borrow::Cow;
use std::ops::ControlFlow;

use polars::prelude::*;
use polars_arrow::bitmap::{Bitmap, MutableBitmap};
use sha2::{Digest, Sha256};

use super::IngestError;
use super::parse::{
    self, BAD, BLANK, Lookup, MAX_CELL_BYTES, ParseContext, SPARSE, TIME_UNIT, column_dtype,
};
use super::read::{CsvLayout, ROW, split, threads};
use crate::config::DateFormat;
use crate::model::{ColumnSpec, Kind};

/// What the reader made of a file.
#[derive(Debug)]
pub struct Read {
    /// What [`parse::plan`] (without reasons) gives for the whole file:
    /// the row number, every column typed, and the flags.
    pub df: DataFrame,
    /// The raw cells of the rows the plan flags (bad, sparse or blank), in
    /// the shape of [`super::read::RawFrame::lf`]: what the second pass
    /// over rejected and footer rows reads.
    pub residue: DataFrame,
    /// The size and SHA-256 of the bytes read: the whole file, hashed as
    /// it was parsed (one read of the file, not two).
    pub hashed: (u64, String),
}

/// Why a file is left to the general path.
#[derive(Debug)]
enum Abort {
    Unsupported(&'static str),
    Malformed(&'static str, usize),
    NotUtf8,
    Panicked,
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Abort::Unsupported(what) => write!(f, "{what}"),
            Abort::Malformed(what, at) => write!(f, "{what} (byte {at} of a piece)"),
            Abort::NotUtf8 => write!(f, "bytes that are not UTF-8"),
            Abort::Panicked => write!(f, "a reading thread panicked"),
        }
    }
}

/// A present column's parser: how its cells are read.
enum ColumnParser {
    /// Into the log's categorical dictionary, after the check.
    Code(CodeCheck, DataType),
    NationalId,
    DateTime(Forms),
}

/// What a cell must be before it gets a code: any text, an identifier,
/// or a spelling the lookup knows.
enum CodeCheck {
    Text,
    Id,
    Lookup(Lookup),
}

/// A column the file has, and its parser.
struct Present {
    spec: &'static ColumnSpec,
    parser: ColumnParser,
}

/// A parsed cell's value, or why the row is left to the plan.
enum CellValue<'a> {
    Empty,
    Other,
    Code(u32),
    Text(Cow<'a, str>),
    Time(i64),
}

/// A code cell's outcome (cached per distinct raw cell).
#[derive(Clone, Copy)]
enum CodeOutcome {
    Empty,
    Other,
    Code(u32),
}

/// One thread's memory of the code cells it has resolved: the last one,
/// and every one seen (a cell of up to 16 digits and the like, or of up
/// to 15 bytes, packed into an integer key, which hashes and compares
/// without a call to `memcmp`).
#[derive(Default)]
struct CodeMemo {
    // Lookups only: no iteration order reaches any output.
    /// Cells of up to 16 digits, `.:-/` and spaces, four bits a byte
    /// ([`nibbles`]): an address column's tens of thousands of values in
    /// half the memory of `short`, whose lookup on each row of a
    /// ten-million-row log missed the core's cache (a quarter of the
    /// reader's time, now 15%).
    nibbles: PlHashMap<u64, CodeOutcome>,
    short: PlHashMap<u128, CodeOutcome>,
    long: PlHashMap<Box<[u8]>, CodeOutcome>,
    last: Vec<u8>,
    last_outcome: Option<CodeOutcome>,
}

impl CodeMemo {
    /// The outcome of `raw`, resolved by `resolve` the first time.
    fn get(
        &mut self,
        raw: &[u8],
        resolve: impl FnOnce() -> Result<CodeOutcome, Abort>,
    ) -> Result<CodeOutcome, Abort> {
        if let Some(got) = self.last_outcome.filter(|_| same(&self.last, raw)) {
            return Ok(got);
        }
        let got = if let Some(key) = nibbles(raw) {
            remembered(&mut self.nibbles, &key, || key, resolve)?
        } else if raw.len() < 16 {
            let mut key = [0u8; 16];
            key[..raw.len()].copy_from_slice(raw);
            key[15] = raw.len() as u8;
            let key = u128::from_le_bytes(key);
            remembered(&mut self.short, &key, || key, resolve)?
        } else {
            remembered(&mut self.long, raw, || raw.into(), resolve)?
        };
        self.last.clear();
        self.last.extend_from_slice(raw);
        self.last_outcome = Some(got);
        Ok(got)
    }
}

/// The outcome `memo` holds for `key`, resolved by `resolve` the first
/// time and kept under `owned()` (the key made only then).
fn remembered<K, Q>(
    memo: &mut PlHashMap<K, CodeOutcome>,
    key: &Q,
    owned: impl FnOnce() -> K,
    resolve: impl FnOnce() -> Result<CodeOutcome, Abort>,
) -> Result<CodeOutcome, Abort>
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(got) = memo.get(key) {
        return Ok(*got);
    }
    let got = resolve()?;
    memo.insert(owned(), got);
    Ok(got)
}

/// A cell of up to 16 bytes, each a digit, `.`, `:`, `-`, `/` or a
/// space, as four bits a byte (none is zero, so lengths differ too);
/// `None` for any other cell.
fn nibbles(raw: &[u8]) -> Option<u64> {
    if raw.len() > 16 {
        return None;
    }
    raw.iter().try_fold(0u64, |key, b| {
        let n = match b {
            b'0'..=b'9' => b - b'0' + 1,
            b'.' => 11,
            b':' => 12,
            b'-' => 13,
            b'/' => 14,
            b' ' => 15,
            _ => return None,
        };
        Some(key << 4 | u64::from(n))
    })
}

/// One column's values from one part, in buffers its thread keeps from
/// piece to piece (their pages are touched once, not once a piece).
enum Values {
    Codes(Vec<u32>),
    Times(Vec<i64>),
    /// The texts one after another, and where each ends.
    Text(String, Vec<usize>),
}

/// One column's values from one part, and which of them are null (by
/// position among the part's rows; a null holds a zero or an empty text).
struct PartColumn {
    values: Values,
    nulls: Vec<IdxSize>,
}

impl PartColumn {
    fn new(p: &Present) -> PartColumn {
        let values = match p.parser {
            ColumnParser::Code(..) => Values::Codes(Vec::new()),
            ColumnParser::NationalId => Values::Text(String::new(), Vec::new()),
            ColumnParser::DateTime(_) => Values::Times(Vec::new()),
        };
        PartColumn {
            values,
            nulls: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.nulls.clear();
        match &mut self.values {
            Values::Codes(v) => v.clear(),
            Values::Times(v) => v.clear(),
            Values::Text(t, ends) => {
                t.clear();
                ends.clear();
            }
        }
    }

    /// Adds the value of the part's row `at` (its position among the
    /// part's rows).
    fn push(&mut self, at: usize, v: CellValue<'_>) {
        let null = match (&mut self.values, v) {
            (Values::Codes(b), CellValue::Code(c)) => {
                b.push(c);
                false
            }
            (Values::Times(b), CellValue::Time(t)) => {
                b.push(t);
                false
            }
            (Values::Text(t, ends), CellValue::Text(v)) => {
                t.push_str(&v);
                ends.push(t.len());
                false
            }
            (Values::Codes(b), _) => {
                b.push(0);
                true
            }
            (Values::Times(b), _) => {
                b.push(0);
                true
            }
            (Values::Text(t, ends), _) => {
                ends.push(t.len());
                true
            }
        };
        if null {
            self.nulls.push(at as IdxSize);
        }
    }
}

/// One column's values from the whole file, each piece's parts one
/// after another and the piece's rows read by the plan after them: a
/// single buffer, which grows in place (a mapping's pages are moved, not
/// copied), so the column is one chunk without a copy of its values.
enum Gathered {
    Codes(Vec<u32>),
    Times(Vec<i64>),
    Text(StringChunkedBuilder),
}

/// A column of the whole file: its values and, once one is null, which
/// are valid (a text column's builder keeps its own).
struct FileColumn {
    values: Gathered,
    valid: Option<MutableBitmap>,
}

impl FileColumn {
    fn new(p: &Present) -> FileColumn {
        let values = match p.parser {
            ColumnParser::Code(..) => Gathered::Codes(Vec::new()),
            ColumnParser::NationalId => {
                Gathered::Text(StringChunkedBuilder::new(p.spec.name.into(), 0))
            }
            ColumnParser::DateTime(_) => Gathered::Times(Vec::new()),
        };
        FileColumn {
            values,
            valid: None,
        }
    }

    /// Marks the next `n` values (of which those at `nulls`, counted from
    /// the first of them, are null) in the numeric columns' validity.
    fn mark(&mut self, before: usize, n: usize, nulls: impl Iterator<Item = usize>) {
        if matches!(self.values, Gathered::Text(_)) {
            return;
        }
        let mut nulls = nulls.peekable();
        if self.valid.is_none() && nulls.peek().is_none() {
            return;
        }
        let valid = self
            .valid
            .get_or_insert_with(|| MutableBitmap::from_len_set(before));
        valid.extend_constant(n, true);
        for k in nulls {
            valid.set(before + k, false);
        }
    }

    /// Appends a part's values; `before` values come before them.
    fn append(&mut self, part: &PartColumn, before: usize) {
        let n = match &part.values {
            Values::Codes(v) => v.len(),
            Values::Times(v) => v.len(),
            Values::Text(_, ends) => ends.len(),
        };
        self.mark(before, n, part.nulls.iter().map(|&k| k as usize));
        match (&mut self.values, &part.values) {
            (Gathered::Codes(all), Values::Codes(v)) => all.extend_from_slice(v),
            (Gathered::Times(all), Values::Times(v)) => all.extend_from_slice(v),
            (Gathered::Text(all), Values::Text(t, ends)) => {
                let mut nulls = part.nulls.iter().peekable();
                let mut from = 0;
                for (k, &end) in ends.iter().enumerate() {
                    if nulls.next_if(|&&n| n as usize == k).is_some() {
                        all.append_null();
                    } else {
                        all.append_value(&t[from..end]);
                    }
                    from = end;
                }
            }
            _ => unreachable!("a part's column is of its file column's kind"),
        }
    }

    /// Appends the plan's values of this column (`c`, typed as this
    /// column is); `before` values come before them.
    fn append_planned(&mut self, c: &Column, before: usize) -> PolarsResult<()> {
        let physical = c.as_materialized_series().to_physical_repr();
        let nulls: Vec<usize> = physical
            .is_null()
            .iter()
            .enumerate()
            .filter_map(|(k, null)| (null == Some(true)).then_some(k))
            .collect();
        self.mark(before, physical.len(), nulls.into_iter());
        match &mut self.values {
            Gathered::Codes(all) => all.extend(physical.u32()?.iter().map(|v| v.unwrap_or(0))),
            Gathered::Times(all) => all.extend(physical.i64()?.iter().map(|v| v.unwrap_or(0))),
            Gathered::Text(all) => {
                for v in physical.str()?.iter() {
                    match v {
                        Some(v) => all.append_value(v),
                        None => all.append_null(),
                    }
                }
            }
        }
        Ok(())
    }

    /// The column, typed as the plan types it.
    fn finish(self, cx: &ParseContext<'_>, p: &Present) -> Column {
        let name: PlSmallStr = p.spec.name.into();
        let valid = self.valid.map(Bitmap::from);
        match self.values {
            Gathered::Codes(v) => {
                let dt = column_dtype(cx.table, p.spec);
                let codes = UInt32Chunked::from_vec_validity(name.clone(), v, valid);
                parse::categorical_column(name, codes, &dt)
            }
            Gathered::Times(v) => Int64Chunked::from_vec_validity(name, v, valid)
                .into_datetime(TIME_UNIT, None)
                .into_column(),
            Gathered::Text(b) => b.finish().into_column(),
        }
    }
}

/// A present column's cell in a record, if the record has one, and
/// whether it was quoted.
type RecordCell<'b> = Option<(Cow<'b, [u8]>, bool)>;

/// The raw cells of a row left to the plan, as text: `None` for a missing
/// cell and an unquoted empty one, as polars reads them.
fn residue_cells(cells: &[RecordCell<'_>]) -> Result<Vec<Option<String>>, Abort> {
    cells
        .iter()
        .map(|c| match c {
            Some((raw, quoted)) if *quoted || !raw.is_empty() => Some(
                std::str::from_utf8(raw)
                    .map(str::to_owned)
                    .map_err(|_| Abort::NotUtf8),
            ),
            _ => None,
        })
        .map(Option::transpose)
        .collect()
}

/// What one thread read of one part of a piece, in buffers it keeps from
/// piece to piece.
struct Part {
    /// Of the rows read here, their record index within the part.
    rows: Vec<IdxSize>,
    outs: Vec<PartColumn>,
    /// The rows left to the plan: record index within the part, and the
    /// raw cell of each present column (`None`: no value, as polars reads
    /// an unquoted empty cell or a missing one).
    residue: Vec<(IdxSize, Vec<Option<String>>)>,
    records: usize,
    /// The file's record index of the part's first record.
    first: IdxSize,
}

impl Part {
    fn new(present: &[Present]) -> Part {
        Part {
            rows: Vec::new(),
            outs: present.iter().map(PartColumn::new).collect(),
            residue: Vec::new(),
            records: 0,
            first: 0,
        }
    }
}

/// The rows taken so far: each piece's own rows, then those the plan
/// read; in file order unless `unordered`.
struct FileColumns {
    /// Each row's number (`ROW`).
    rows: Vec<IdxSize>,
    columns: Vec<FileColumn>,
    /// Of the plan's rows, those it flags bad, sparse and blank (by
    /// position); the reader's own rows have no flag.
    flagged: [Vec<IdxSize>; 3],
    /// Whether the rows are no longer in file order (a row the plan read
    /// came before the reader's last).
    unordered: bool,
}

impl FileColumns {
    fn new(present: &[Present]) -> FileColumns {
        FileColumns {
            rows: Vec::new(),
            columns: present.iter().map(FileColumn::new).collect(),
            flagged: Default::default(),
            unordered: false,
        }
    }

    /// Notes whether `rows`, about to be appended, keep the file order.
    /// Each run appended rises (a part's rows; the rows of a piece the
    /// plan read, in order), so its first row tells.
    fn follow(&mut self, mut rows: impl Iterator<Item = IdxSize>) {
        if let (Some(last), Some(next)) = (self.rows.last(), rows.next()) {
            self.unordered |= next < *last;
        }
    }

    /// Appends the plan's output for a piece's rows left to it: each
    /// present column as the reader types it, the columns the file lacks
    /// null. `false` (nothing appended) where the output is otherwise.
    fn take_planned(
        &mut self,
        parsed: &DataFrame,
        cx: &ParseContext<'_>,
        present: &[Present],
    ) -> PolarsResult<bool> {
        for c in cx.table.columns() {
            let column = parsed.column(c.name)?;
            let fits = if present.iter().any(|p| p.spec.name == c.name) {
                column.dtype() == &column_dtype(cx.table, c)
            } else {
                column.null_count() == column.len()
            };
            if !fits {
                return Ok(false);
            }
        }
        let flags =
            [BAD, SPARSE, BLANK].map(|f| parsed.column(f).and_then(|c| Ok(c.bool()?.clone())));
        let flags: Vec<BooleanChunked> = flags.into_iter().collect::<PolarsResult<_>>()?;
        if flags.iter().any(|f| f.null_count() > 0) {
            return Ok(false);
        }
        let before = self.rows.len();
        let rows = parsed.column(ROW)?.idx()?;
        self.follow(rows.into_no_null_iter());
        self.rows.extend(rows.into_no_null_iter());
        for (c, p) in self.columns.iter_mut().zip(present) {
            c.append_planned(parsed.column(p.spec.name)?, before)?;
        }
        for (all, f) in self.flagged.iter_mut().zip(&flags) {
            all.extend(
                f.iter()
                    .enumerate()
                    .filter(|(_, on)| *on == Some(true))
                    .map(|(k, _)| (before + k) as IdxSize),
            );
        }
        Ok(true)
    }

    /// Appends the rows of `parts` (the parts of a piece, in order).
    fn take(&mut self, parts: &[Part]) {
        for part in parts {
            let before = self.rows.len();
            self.follow(part.rows.iter().map(|r| part.first + r));
            self.rows.extend(part.rows.iter().map(|r| part.first + r));
            for (c, p) in self.columns.iter_mut().zip(&part.outs) {
                c.append(p, before);
            }
        }
    }

    /// The rows as the plan's output, in file order: the row numbers,
    /// every column (a column the file lacks is null) and the flags. Rows
    /// out of order (the plan's, of a row amid the reader's) are put in
    /// order by a gather two columns at a time ([`parse::gathered`]); a
    /// sort of the frame would copy every column at once.
    fn finish(self, cx: &ParseContext<'_>, present: &[Present]) -> PolarsResult<DataFrame> {
        let height = self.rows.len();
        let mut built: Vec<Option<Column>> = self
            .columns
            .into_iter()
            .zip(present)
            .map(|(c, p)| Some(c.finish(cx, p)))
            .collect();
        let mut out: Vec<Column> = vec![IdxCa::from_vec(ROW.into(), self.rows).into_column()];
        for c in cx.table.columns() {
            let k = present.iter().position(|p| p.spec.name == c.name);
            out.push(match k.and_then(|k| built.get_mut(k)?.take()) {
                Some(s) => s,
                None => Column::full_null(c.name.into(), height, &column_dtype(cx.table, c)),
            });
        }
        for (flag, on) in [BAD, SPARSE, BLANK].into_iter().zip(self.flagged) {
            let flags = if on.is_empty() {
                BooleanChunked::full(flag.into(), false, height)
            } else {
                let mut set = MutableBitmap::from_len_zeroed(height);
                for k in on {
                    set.set(k as usize, true);
                }
                BooleanChunked::from_bitmap(flag.into(), set.into())
            };
            out.push(flags.into_column());
        }
        let df = DataFrame::new(height, out)?;
        if !self.unordered {
            return Ok(df);
        }
        let order = df
            .column(ROW)?
            .as_materialized_series()
            .arg_sort(SortOptions::default());
        DataFrame::new(height, parse::gathered(df.into_columns(), &order)?)
    }
}

/// Reads the CSV file `layout` (UTF-8, or Big5 decoded piece by piece) into the plan's output, in pieces of
/// about `piece_bytes`, or `None` (the reason logged) when the file is for
/// the general path, as it is when over `most_left` of a piece's rows are
/// for the plan ([`MOST_LEFT`]).
pub fn read(
    layout: &CsvLayout,
    cx: &ParseContext<'_>,
    piece_bytes: usize,
    most_left: f64,
) -> Result<Option<Read>, IngestError> {
    let present = match columns(layout, cx) {
        Ok(p) => p,
        Err(why) => {
            tracing::info!(file = %layout.display, %why, "read by the general path");
            return Ok(None);
        }
    };
    // Field index → position in `present`.
    let fields = layout.matched.cells.len();
    let mut slot_of = vec![None; fields];
    for (k, &(j, _)) in layout.matched.columns.iter().enumerate() {
        slot_of[j] = Some(k);
    }
    let reader = Reader {
        most_left,
        present: &present,
        slot_of: &slot_of,
        sep: layout.sep,
    };
    let mut pieces = Pieces::new(layout, &present)?;
    layout.for_each_piece(false, piece_bytes, |buf, start, raw| {
        // The buffer stays with the loop, for the next piece.
        let bytes = &buf[start..];
        // The file's own bytes are what its digest covers.
        pieces.read(&reader, layout, cx, bytes, raw.unwrap_or(bytes))
    })?;
    pieces.finish(layout, cx, &present)
}

/// What [`read`] keeps from piece to piece.
struct Pieces {
    threads: usize,
    memos: Vec<Vec<CodeMemo>>,
    /// Each thread's part of a piece, in two sets of buffers: while the
    /// threads read a piece into one, this thread appends the last
    /// piece's rows from the other to the file's columns.
    filling: Vec<Part>,
    filled: Vec<Part>,
    waiting: bool,
    file: FileColumns,
    /// The plan's output for the last piece's rows left to it, appended
    /// after the reader's.
    planned_last: Option<DataFrame>,
    /// The raw cells of the rows the plan flags.
    residue: DataFrame,
    /// The next record's number (`ROW`).
    next: IdxSize,
    hasher: Sha256,
    size: u64,
    abort: Option<Abort>,
}

impl Pieces {
    fn new(layout: &CsvLayout, present: &[Present]) -> Result<Pieces, IngestError> {
        let threads = threads();
        let head = layout.head()?;
        let mut hasher = Sha256::new();
        hasher.update(&head);
        let residue = raw_frame(present, Vec::new(), empty_cells(present))
            .map_err(super::polars_in(&layout.display))?;
        Ok(Pieces {
            threads,
            memos: (0..threads)
                .map(|_| present.iter().map(|_| CodeMemo::default()).collect())
                .collect(),
            filling: (0..threads).map(|_| Part::new(present)).collect(),
            filled: (0..threads).map(|_| Part::new(present)).collect(),
            waiting: false,
            file: FileColumns::new(present),
            planned_last: None,
            residue,
            next: layout.first_row() as IdxSize,
            hasher,
            size: head.len() as u64,
            abort: None,
        })
    }

    /// Reads a piece (`bytes`; `raw`, the file's own bytes of it) on
    /// every thread, while this one hashes it and takes the last piece's
    /// rows; then has the plan read the rows left to it.
    fn read(
        &mut self,
        reader: &Reader<'_>,
        layout: &CsvLayout,
        cx: &ParseContext<'_>,
        bytes: &[u8],
        raw: &[u8],
    ) -> Result<ControlFlow<()>, IngestError> {
        let polars = super::polars_in(&layout.display);
        let present = reader.present;
        let bounds = split(bytes, self.threads);
        // One part a thread: every part of `filling` is read anew.
        debug_assert_eq!(bounds.len(), self.threads + 1);
        let Pieces {
            memos,
            filling,
            filled,
            waiting,
            file,
            planned_last,
            hasher,
            size,
            ..
        } = self;
        let (taken, got): (PolarsResult<bool>, Vec<Result<(), Abort>>) = std::thread::scope(|s| {
            let handles: Vec<_> = bounds
                .windows(2)
                .zip(memos.iter_mut())
                .zip(filling.iter_mut())
                .map(|((w, memo), part)| {
                    s.spawn(move || reader.part(&bytes[w[0]..w[1]], memo, part))
                })
                .collect();
            hasher.update(raw);
            *size += raw.len() as u64;
            if std::mem::take(waiting) {
                file.take(filled);
            }
            let taken = planned_last
                .take()
                .map_or(Ok(true), |p| file.take_planned(&p, cx, present));
            let got = handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(Abort::Panicked)))
                .collect();
            (taken, got)
        });
        let abort = if !taken.map_err(polars)? {
            Some(Abort::Unsupported(PLANNED_OTHERWISE))
        } else if let Err(a) = got.into_iter().collect::<Result<Vec<()>, Abort>>() {
            Some(a)
        } else if left_to_plan(&self.filling, reader.most_left) {
            Some(Abort::Unsupported(LEFT_TO_PLAN))
        } else {
            self.number_parts().err()
        };
        if abort.is_some() {
            self.abort = abort;
            return Ok(ControlFlow::Break(()));
        }
        if let Some((parsed, flagged)) = planned(layout, cx, present, &mut self.filling)? {
            self.residue
                .vstack_mut_owned(flagged)
                .map_err(super::polars_in(&layout.display))?;
            self.planned_last = Some(parsed);
        }
        std::mem::swap(&mut self.filling, &mut self.filled);
        self.waiting = true;
        Ok(ControlFlow::Continue(()))
    }

    /// Numbers the records of the parts just read, from `next` on.
    fn number_parts(&mut self) -> Result<(), Abort> {
        for part in &mut self.filling {
            part.first = self.next;
            self.next = IdxSize::try_from(part.records)
                .ok()
                .and_then(|n| self.next.checked_add(n))
                .ok_or(Abort::Unsupported("more rows than a frame holds"))?;
        }
        Ok(())
    }

    /// The file's rows and residue once every piece is read, or `None`
    /// (the reason logged) for a file left to the general path.
    fn finish(
        mut self,
        layout: &CsvLayout,
        cx: &ParseContext<'_>,
        present: &[Present],
    ) -> Result<Option<Read>, IngestError> {
        let polars = super::polars_in(&layout.display);
        if self.abort.is_none() {
            if self.waiting {
                self.file.take(&self.filled);
            }
            if let Some(p) = self.planned_last.take()
                && !self.file.take_planned(&p, cx, present).map_err(polars)?
            {
                self.abort = Some(Abort::Unsupported(PLANNED_OTHERWISE));
            }
        }
        if let Some(why) = self.abort {
            tracing::info!(file = %layout.display, %why, "read by the general path");
            return Ok(None);
        }
        drop((self.filling, self.filled));
        let df = self.file.finish(cx, present).map_err(polars)?;
        self.residue.rechunk_mut();
        Ok(Some(Read {
            df,
            residue: self.residue,
            hashed: (self.size, hex::encode(self.hasher.finalize())),
        }))
    }
}

/// The largest share of a piece's rows that may be left to the plan. The
/// general path reads a file with more faster, and in a fraction of the
/// memory that raw text row by row takes (a log dated in the ROC
/// calendar: 2M rows, 7.1 s and 1.6 GB this way against 5.1 s and 0.6 GB).
pub const MOST_LEFT: f64 = 0.1;

const LEFT_TO_PLAN: &str = "too many rows for the plan (another date format?)";

/// Why a file is left to the general path whose rows the plan reads
/// otherwise than the reader would take them: a column typed otherwise,
/// a value in a column the file lacks, a flag that is null. Not
/// expected: both type each column as the table says.
const PLANNED_OTHERWISE: &str = "the plan's rows typed otherwise than the reader's";

/// Whether more than `most` of the rows of a piece are left to the plan.
fn left_to_plan(parts: &[Part], most: f64) -> bool {
    let records: usize = parts.iter().map(|p| p.records).sum();
    let left: usize = parts.iter().map(|p| p.residue.len()).sum();
    left as f64 > most * records as f64
}

/// The present columns and how each is read, or why the file is not for
/// this reader.
fn columns(layout: &CsvLayout, cx: &ParseContext<'_>) -> Result<Vec<Present>, Abort> {
    let mut present = Vec::new();
    for &(_, spec) in &layout.matched.columns {
        let dt = column_dtype(cx.table, spec);
        let categorical = matches!(dt, DataType::Categorical(..));
        let parser = match spec.kind {
            Kind::Text if categorical => ColumnParser::Code(CodeCheck::Text, dt),
            Kind::Id if categorical => ColumnParser::Code(CodeCheck::Id, dt),
            Kind::Agency | Kind::Enum(_) if categorical => ColumnParser::Code(
                CodeCheck::Lookup(
                    Lookup::of(cx, spec)
                        .ok_or(Abort::Unsupported("a code column without codes"))?,
                ),
                dt,
            ),
            Kind::NationalId => ColumnParser::NationalId,
            // Read in the forms its declared calendar allows.
            Kind::DateTime => ColumnParser::DateTime(Forms::of((cx.format_of)(spec.name))),
            _ => return Err(Abort::Unsupported("a column of a kind it does not read")),
        };
        if let ColumnParser::Code(_, dt) = &parser {
            // The dictionary must hand out 32-bit codes.
            parse::category(dt, "").ok_or(Abort::Unsupported("not a 32-bit dictionary"))?;
        }
        present.push(Present { spec, parser });
    }
    Ok(present)
}

/// One field of a record.
struct Field<'b> {
    /// Quotes removed, doubled quotes made single; a record's last
    /// unquoted cell without its `\r`.
    cell: Cow<'b, [u8]>,
    quoted: bool,
    /// Where the next field starts.
    next: usize,
    /// Whether the record ends after it.
    end: bool,
}

struct Reader<'a> {
    most_left: f64,
    present: &'a [Present],
    slot_of: &'a [Option<usize>],
    sep: u8,
}

impl Reader<'_> {
    /// Reads one part, whole records, into `part` (what it held before
    /// is cleared).
    fn part(&self, bytes: &[u8], memos: &mut [CodeMemo], part: &mut Part) -> Result<(), Abort> {
        let n = bytes.len();
        let Part {
            rows,
            outs,
            residue,
            records,
            ..
        } = part;
        rows.clear();
        outs.iter_mut().for_each(PartColumn::clear);
        residue.clear();
        // The cells of the present columns, and whether each was quoted.
        let mut cells: Vec<RecordCell> = vec![None; self.present.len()];
        let mut vals: Vec<CellValue> = Vec::with_capacity(self.present.len());
        let mut dates = DateMemo::default();
        let mut record: usize = 0;
        let mut i = 0;
        while i < n {
            cells.iter_mut().for_each(|c| *c = None);
            let mut field = 0;
            loop {
                let Field {
                    cell,
                    quoted,
                    next,
                    end,
                } = self.field(bytes, i)?;
                if let Some(Some(slot)) = self.slot_of.get(field) {
                    cells[*slot] = Some((cell, quoted));
                } else if field >= self.slot_of.len() {
                    return Err(Abort::Malformed("more cells than the header", i));
                }
                field += 1;
                i = next;
                if end {
                    break;
                }
            }
            let index = IdxSize::try_from(record)
                .map_err(|_| Abort::Unsupported("more rows than a frame holds"))?;
            record += 1;
            // Each present column's value; the row is read here only if
            // the plan would find nothing to say about it.
            vals.clear();
            let mut filled = 0;
            let mut here = true;
            for (k, p) in self.present.iter().enumerate() {
                let v = match &cells[k] {
                    None => CellValue::Empty,
                    Some((raw, _)) => value(p, raw, &mut memos[k], &mut dates)?,
                };
                match v {
                    CellValue::Empty if p.spec.value_required() => here = false,
                    CellValue::Empty => {}
                    CellValue::Other => here = false,
                    _ => filled += 1,
                }
                vals.push(v);
            }
            if here && filled * 2 >= self.present.len() {
                let at = rows.len();
                rows.push(index);
                for (out, v) in outs.iter_mut().zip(vals.drain(..)) {
                    out.push(at, v);
                }
            } else {
                let raw = residue_cells(&cells)?;
                residue.push((index, raw));
                // Stop early on a file that is for the general path.
                if record >= 4096 && residue.len() as f64 > self.most_left * record as f64 {
                    return Err(Abort::Unsupported(LEFT_TO_PLAN));
                }
            }
        }
        *records = record;
        Ok(())
    }

    /// The field starting at `i`.
    fn field<'b>(&self, bytes: &'b [u8], i: usize) -> Result<Field<'b>, Abort> {
        let field = |cell, quoted, next, end| Field {
            cell,
            quoted,
            next,
            end,
        };
        let n = bytes.len();
        if i == n {
            // A separator just before the end of the data.
            return Ok(field(Cow::Borrowed(&bytes[n..]), false, n, true));
        }
        if bytes[i] != b'"' {
            return Ok(match memchr::memchr3(self.sep, b'\n', b'"', &bytes[i..]) {
                None => field(Cow::Borrowed(&bytes[i..]), false, n, true),
                Some(k) => {
                    let e = i + k;
                    match bytes[e] {
                        b'"' => return Err(Abort::Malformed("a quote inside an unquoted cell", e)),
                        b'\n' => {
                            let cell = &bytes[i..e];
                            let cell = cell.strip_suffix(b"\r").unwrap_or(cell);
                            field(Cow::Borrowed(cell), false, e + 1, true)
                        }
                        _ => field(Cow::Borrowed(&bytes[i..e]), false, e + 1, false),
                    }
                }
            });
        }
        let mut owned: Option<Vec<u8>> = None;
        let mut from = i + 1;
        loop {
            let q = from
                + memchr::memchr(b'"', &bytes[from..])
                    .ok_or(Abort::Malformed("a quote that is never closed", i))?;
            if bytes.get(q + 1) == Some(&b'"') {
                owned
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&bytes[from..=q]);
                from = q + 2;
                continue;
            }
            let cell = match owned {
                Some(mut o) => {
                    o.extend_from_slice(&bytes[from..q]);
                    Cow::Owned(o)
                }
                None => Cow::Borrowed(&bytes[from..q]),
            };
            let after = q + 1;
            return match bytes.get(after..) {
                Some([]) => Ok(field(cell, true, n, true)),
                Some([b'\n', ..]) => Ok(field(cell, true, after + 1, true)),
                Some([b'\r', b'\n', ..]) => Ok(field(cell, true, after + 2, true)),
                Some([b, ..]) if *b == self.sep => Ok(field(cell, true, after + 1, false)),
                _ => Err(Abort::Malformed("text after a closing quote", after)),
            };
        }
    }
}

/// Whether a cell starts and ends with a visible ASCII character, as most
/// do: then it has no white space to trim.
fn visible(raw: &[u8]) -> bool {
    let graphic = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_graphic());
    graphic(raw.first()) && graphic(raw.last())
}

/// The trimmed text of a cell.
fn trimmed(raw: &[u8]) -> Result<&str, Abort> {
    let text = std::str::from_utf8(raw).map_err(|_| Abort::NotUtf8)?;
    Ok(if visible(raw) { text } else { text.trim() })
}

/// The value of a present column's raw cell.
fn value<'b>(
    p: &Present,
    raw: &Cow<'b, [u8]>,
    memo: &mut CodeMemo,
    dates: &mut DateMemo,
) -> Result<CellValue<'b>, Abort> {
    Ok(match &p.parser {
        ColumnParser::Code(check, dt) => {
            let raw = raw.as_ref();
            let got = memo.get(raw, || code(check, dt, trimmed(raw)?))?;
            match got {
                CodeOutcome::Empty => CellValue::Empty,
                CodeOutcome::Other => CellValue::Other,
                CodeOutcome::Code(c) => CellValue::Code(c),
            }
        }
        ColumnParser::NationalId => {
            // The common case: the ten bytes of a national ID, as written.
            if let Cow::Borrowed(b) = raw
                && parse::national_id_bytes(b)
            {
                let t = std::str::from_utf8(b).map_err(|_| Abort::NotUtf8)?;
                return Ok(CellValue::Text(Cow::Borrowed(t)));
            }
            let t = trimmed(raw)?;
            if t.is_empty() {
                CellValue::Empty
            } else if parse::national_id(t) {
                CellValue::Text(match raw {
                    Cow::Borrowed(b) => Cow::Borrowed(trimmed(b)?),
                    Cow::Owned(_) => Cow::Owned(t.to_owned()),
                })
            } else {
                let upper = t.to_uppercase();
                if parse::national_id(&upper) {
                    CellValue::Text(Cow::Owned(upper))
                } else {
                    CellValue::Other
                }
            }
        }
        ColumnParser::DateTime(forms) => {
            let t = if visible(raw) {
                raw.as_ref()
            } else {
                trimmed(raw)?.as_bytes()
            };
            if t.is_empty() {
                CellValue::Empty
            } else {
                dates
                    .read(t, *forms)
                    .map_or(CellValue::Other, CellValue::Time)
            }
        }
    })
}

/// Whether two short cells are equal: the memo's test, once per code
/// cell, where a call to `memcmp` cost more than the comparison.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = wa
        .remainder()
        .iter()
        .zip(wb.remainder())
        .fold(0u8, |d, (x, y)| d | (x ^ y));
    tail == 0
        && wa.zip(wb).all(|(x, y)| {
            u64::from_ne_bytes(x.try_into().expect("8 bytes"))
                == u64::from_ne_bytes(y.try_into().expect("8 bytes"))
        })
}

/// A code cell's outcome, from its trimmed text.
fn code(check: &CodeCheck, dt: &DataType, t: &str) -> Result<CodeOutcome, Abort> {
    if t.is_empty() {
        return Ok(CodeOutcome::Empty);
    }
    if t.len() > MAX_CELL_BYTES as usize {
        return Ok(CodeOutcome::Other);
    }
    let value = match check {
        CodeCheck::Text => t,
        CodeCheck::Id if parse::id_junk(t) => return Ok(CodeOutcome::Other),
        CodeCheck::Id => t,
        CodeCheck::Lookup(l) => match l.find(t) {
            Some(code) => code,
            None => return Ok(CodeOutcome::Other),
        },
    };
    parse::category(dt, value)
        .map(CodeOutcome::Code)
        .ok_or(Abort::Unsupported("the dictionary refused a value"))
}

/// Which date-time forms a column is read in here: the plan's fast path
/// (`YYYY-MM-DD HH:MM:SS`, not in a column declared ROC) and the commonest
/// ROC form (`YYY/MM/DD HH:MM:SS`, a three-digit year, not in a column
/// declared Gregorian), each read as the plan's regex reads it.
#[derive(Clone, Copy)]
struct Forms {
    iso: bool,
    roc: bool,
}

impl Forms {
    fn of(format: DateFormat) -> Forms {
        Forms {
            iso: format != DateFormat::Roc,
            roc: format != DateFormat::Gregorian,
        }
    }
}

/// The date part of the last date-time read, and its day's first
/// microsecond (consecutive queries share their day).
#[derive(Default)]
struct DateMemo {
    last: [u8; 10],
    len: usize,
    day: Option<i64>,
}

impl DateMemo {
    /// A date-time in one of `forms` as microseconds since 1970 (local
    /// time, as the plan reads it); `None` for anything else, which the
    /// plan reads or rejects.
    fn read(&mut self, b: &[u8], forms: Forms) -> Option<i64> {
        // The year's digits, the date's bytes, the date's separator, and
        // what the year is counted from.
        let (y, d, sep, era) = match b.len() {
            19 if forms.iso => (4, 10, b'-', 0),
            18 if forms.roc => (3, 9, b'/', 1911),
            _ => return None,
        };
        if b[y] != sep || b[y + 3] != sep || b[d] != b' ' || b[d + 3] != b':' || b[d + 6] != b':' {
            return None;
        }
        let num = |at: usize, len: usize| -> Option<u32> {
            b[at..at + len].iter().try_fold(0u32, |a, &c| {
                c.is_ascii_digit().then(|| a * 10 + u32::from(c - b'0'))
            })
        };
        let day = match self.day {
            Some(day) if same(&self.last[..self.len], &b[..d]) => day,
            _ => {
                let year = num(0, y)? + era;
                if !(1900..=2200).contains(&year) {
                    return None;
                }
                let date =
                    chrono::NaiveDate::from_ymd_opt(year as i32, num(y + 1, 2)?, num(y + 4, 2)?)?;
                let day = date
                    .and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .timestamp_micros();
                self.last[..d].copy_from_slice(&b[..d]);
                self.len = d;
                self.day = Some(day);
                day
            }
        };
        let (h, m, s) = (num(d + 1, 2)?, num(d + 4, 2)?, num(d + 7, 2)?);
        if h > 23 || m > 59 || s > 59 {
            return None;
        }
        Some(day + i64::from(h * 3600 + m * 60 + s) * 1_000_000)
    }
}

/// The rows of a piece's `parts` left to the plan, parsed here, a piece
/// at a time, so a file whose every row is left to it (a log dated in the
/// ROC calendar) holds one piece's raw text at a time, not the whole
/// file's: the plan's output for them, and the raw cells of those it
/// flags. `None` when the reader read every row itself.
fn planned(
    layout: &CsvLayout,
    cx: &ParseContext<'_>,
    present: &[Present],
    parts: &mut [Part],
) -> Result<Option<(DataFrame, DataFrame)>, IngestError> {
    let polars = super::polars_in(&layout.display);
    if parts.iter().all(|p| p.residue.is_empty()) {
        return Ok(None);
    }
    let mut rows: Vec<IdxSize> = Vec::new();
    let mut cells = empty_cells(present);
    for part in parts {
        for (r, raw) in part.residue.drain(..) {
            rows.push(part.first + r);
            for (k, c) in raw.into_iter().enumerate() {
                cells[k].push(c);
            }
        }
    }
    let residue = raw_frame(present, rows, cells).map_err(polars)?;
    let parsed = parse::plan(residue.clone().lazy(), cx, false)
        .collect()
        .map_err(polars)?;
    // The plan keeps the rows' order: its flags select the raw rows.
    let flag = |name: &str| -> Result<BooleanChunked, IngestError> {
        Ok(parsed
            .column(name)
            .map_err(polars)?
            .bool()
            .map_err(polars)?
            .clone())
    };
    let flagged = &(&flag(BAD)? | &flag(SPARSE)?) | &flag(BLANK)?;
    let residue = residue.filter(&flagged).map_err(polars)?;
    Ok(Some((parsed, residue)))
}

/// No cells, for each present column.
fn empty_cells(present: &[Present]) -> Vec<Vec<Option<String>>> {
    present.iter().map(|_| Vec::new()).collect()
}

/// Raw rows as text: their number (`ROW`) and each present column's
/// cells.
fn raw_frame(
    present: &[Present],
    rows: Vec<IdxSize>,
    cells: Vec<Vec<Option<String>>>,
) -> PolarsResult<DataFrame> {
    let mut raw: Vec<Column> = vec![IdxCa::from_vec(ROW.into(), rows).into_column()];
    for (p, cells) in present.iter().zip(cells) {
        raw.push(Column::new(p.spec.name.into(), cells));
    }
    DataFrame::new_infer_height(raw)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::headers::Matched;
    use super::super::parse::{RAW, REASON};
    use super::super::read::scan_whole;
    use super::*;
    use crate::model::Table;

    const HEADER: &str = "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP";

    /// The memo's four-bit keys: one per cell (lengths too), none for a
    /// cell with another byte or over 16 bytes.
    #[test]
    fn nibble_keys_differ_for_different_cells() {
        let cells = [
            "",
            "0",
            "00",
            "1",
            "01",
            "10",
            "10.20.3.99",
            "10.20.39.9",
            "10.203.9.9",
            "10.20.3.9",
            "2001:8::1",
            "2026-01-02",
            "2026/01/02",
            "08 41",
            "9999999999999999",
        ];
        let mut keys: Vec<u64> = cells
            .iter()
            .map(|c| nibbles(c.as_bytes()).unwrap())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), cells.len());
        for other in ["99999999999999999", "10.20.3.x", "W20002", "成功", "1\t2"] {
            assert_eq!(nibbles(other.as_bytes()), None, "{other}");
        }
    }

    /// Rows of every shape an export has: clean ones, and ones the plan
    /// must read (padded, other date formats, labels, lower case) or
    /// reject (unknown codes, impossible dates, junk identifiers, empty
    /// required cells), footers, blank and short rows, quoted cells.
    fn records() -> Vec<String> {
        let mut r: Vec<String> = (0..30)
            .map(|i| {
                format!(
                    "W{:03},2026-01-{:02} 08:{:02}:03,個人投保資料,K1{:08},other,成功,KHB,10.0.0.{}",
                    i % 4,
                    1 + i % 28,
                    i % 60,
                    i,
                    i % 7
                )
            })
            .collect();
        r.extend(
            [
                " W001 ,2026-01-02 08:00:00 ,個人投保資料, k123456789,社政,成功,衛生局,",
                "\u{3000}W001\u{3000},2026-01-02 08:00:00,眷屬投保資料,K123456789,,,KHB,",
                "W002,115/01/02 08:00:00,個人投保資料,K123456789,other,成功,KHB,1.1.1.1",
                "W002,2026/1/2 下午 02:03:04,個人投保資料,K123456789,other,成功,KHB,1.1.1.1",
                "W002,2026-02-30 08:00:00,個人投保資料,K123456789,other,成功,KHB,1.1.1.1",
                "W002,2026-01-02 24:00:00,個人投保資料,K123456789,other,成功,KHB,1.1.1.1",
                "W002,1899-01-02 08:00:00,個人投保資料,K123456789,other,成功,KHB,1.1.1.1",
                "W002,2026-01-02 08:00:00,個人投保資料,K12345678,other,成功,KHB,1.1.1.1",
                "W002,2026-01-02 08:00:00,個人投保資料,K123456789,買房子,成功,警察局,1.1.1.1",
                "W2\u{200B},2026-01-02 08:00:00,個人投保資料,K123456789,other,成功,KHB,",
                "'W1',2026-01-02 08:00:00,個人投保資料,K123456789,other,成功,KHB,",
                ",2026-01-02 08:00:00,個人投保資料,K123456789,other,成功,KHB,",
                "\"W003\",\"2026-01-02 08:00:00\",\"個人,投保\"\"資料\"\"\",K123456789,\"\",other,KHB,\"\"",
                "W003,2026-01-03 09:00:00,\"多行\r\n項目\",K123456789,other,成功,KHB,2.2.2.2",
                "W003,2026-01-03 09:00:00,\"\",K123456789,other,成功,KHB,2.2.2.2",
                ",,,,,,,",
                "W004,2026-01-03 09:00:00,個人投保資料",
                "W004,,,,,,,",
                "W005,2026-01-04 10:00:00,個人投保資料,K123456789,other,成功,KHB,3.3.3.3",
                "合計 47 筆",
                "列印日期：115/07/02",
            ]
            .map(str::to_owned),
        );
        r
    }

    fn matched(row: usize, header: &str) -> Matched {
        let cells: Vec<String> = header.split(',').map(str::to_owned).collect();
        let map: BTreeMap<&str, &str> = [
            ("帳號", "account_id"),
            ("查詢時間", "queried_at"),
            ("查詢項目", "query_item"),
            ("被查詢人身分證號", "subject_id"),
            ("查詢目的", "purpose"),
            ("查詢結果", "result"),
            ("機關", "agency_id"),
            ("來源IP", "client_ip"),
        ]
        .into();
        let columns = cells
            .iter()
            .enumerate()
            .filter_map(|(j, c)| Some((j, Table::QueryLog.column(map.get(c.as_str())?)?)))
            .collect();
        Matched {
            row,
            cells,
            columns,
        }
    }

    /// A test file's folder, removed when dropped (also when the reader
    /// left the file to the general path, or an assertion failed).
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Reads `text` both ways; `None` when the own reader left it to the
    /// general path.
    fn both(name: &str, text: &str, row: usize, header: &str, piece: usize) -> Option<()> {
        both_with(name, text, row, header, piece, 1.0, DateFormat::Auto)
    }

    /// [`both`] with a share of rows left to the plan and a declared date
    /// format.
    fn both_with(
        name: &str,
        text: &str,
        row: usize,
        header: &str,
        piece: usize,
        most_left: f64,
        format: DateFormat,
    ) -> Option<()> {
        let dir = std::env::temp_dir().join(format!("webir-fast-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _removed_after = Scratch(dir.clone());
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let path = path.as_path();
        let m = matched(row, header);
        with_context(&m, format, |cx| {
            both_read(name, path, m.clone(), piece, most_left, cx)
        })
    }

    /// The query log's parse context for header `m`, dates read as `format`.
    fn with_context<R>(
        m: &Matched,
        format: DateFormat,
        f: impl FnOnce(&ParseContext<'_>) -> R,
    ) -> R {
        let headers: Vec<(&'static str, String)> = m
            .columns
            .iter()
            .map(|&(j, spec)| (spec.name, m.cells[j].clone()))
            .collect();
        let agencies = vec![
            ("KHB".to_owned(), "KHB".to_owned()),
            ("衛生局".to_owned(), "KHB".to_owned()),
        ];
        let vocabulary = BTreeMap::new();
        let format_of = move |_: &str| format;
        let cx = ParseContext {
            table: Table::QueryLog,
            headers: &headers,
            format_of: &format_of,
            agencies: &agencies,
            vocabulary: &vocabulary,
        };
        f(&cx)
    }

    /// The file at `path` read by the own reader and by the general path,
    /// compared; `None` when the own reader left it to the general path.
    fn both_read(
        name: &str,
        path: &std::path::Path,
        m: Matched,
        piece: usize,
        most_left: f64,
        cx: &ParseContext<'_>,
    ) -> Option<()> {
        let lf = scan_whole(
            LazyCsvReader::new(PlRefPath::try_from_path(path).unwrap()),
            &m,
            b',',
            name,
        )
        .unwrap();
        let layout = CsvLayout::of(path, m, b',', false).unwrap();
        let fast = read(&layout, cx, piece, most_left).unwrap()?;
        assert_eq!(
            fast.hashed,
            super::super::hash_file(path).unwrap(),
            "{name}: the hash of the bytes read"
        );
        let general = parse::plan(lf.clone(), cx, false).collect().unwrap();
        // One chunk a column, footer or bad rows amid the good ones: the
        // compaction has nothing to copy.
        for c in fast.df.columns() {
            assert_eq!(c.n_chunks(), 1, "{name}, pieces of {piece}: {}", c.name());
        }
        assert!(
            fast.df.equals_missing(&general),
            "{name}, pieces of {piece}:\nown reader:\n{}\ngeneral:\n{}",
            fast.df,
            general
        );
        // Every row the plan flags is in the residue, and its reasons and
        // raw cells read from there as from the file.
        let flagged = general
            .clone()
            .lazy()
            .filter(col(BAD).or(col(SPARSE)).or(col(BLANK)))
            .select([col(ROW)])
            .collect()
            .unwrap();
        let rows = lit(flagged
            .column(ROW)
            .unwrap()
            .as_materialized_series()
            .clone());
        let reasons = |lf: LazyFrame| {
            parse::plan(
                lf.filter(col(ROW).is_in(rows.clone().implode(false), false)),
                cx,
                true,
            )
            .select([col(ROW), col(REASON), col(RAW)])
            .collect()
            .unwrap()
        };
        assert_eq!(fast.residue.height(), flagged.height(), "{name}");
        let (from_file, from_residue) = (reasons(lf), reasons(fast.residue.lazy()));
        assert_eq!(from_file.height(), flagged.height(), "{name}");
        assert!(
            from_residue.equals_missing(&from_file),
            "{name}, pieces of {piece}:\nresidue:\n{from_residue}\nfile:\n{from_file}"
        );
        Some(())
    }

    #[test]
    fn the_own_reader_reads_every_row_as_the_general_path() {
        let body = records().join("\n");
        let crlf = records().join("\r\n");
        // Every row left to the plan: dates in the ROC calendar.
        let roc = records()
            .iter()
            .map(|r| r.replace(",2026-", ",115/").replacen('-', "/", 1))
            .collect::<Vec<_>>()
            .join("\n");
        let files = [
            ("plain.csv", format!("{HEADER}\n{body}\n"), 0),
            ("crlf.csv", format!("{HEADER}\r\n{crlf}\r\n"), 0),
            ("no-final-newline.csv", format!("{HEADER}\n{body}"), 0),
            ("bom.csv", format!("\u{FEFF}{HEADER}\n{body}\n"), 0),
            ("roc.csv", format!("{HEADER}\n{roc}\n"), 0),
            (
                "title.csv",
                format!("\u{FEFF}查詢紀錄 匯出日期：115/07/02\n{HEADER}\n{body}\n"),
                1,
            ),
        ];
        for (name, text, row) in &files {
            for piece in [1, 7, 64, 1 << 20] {
                assert!(
                    both(name, text, *row, HEADER, piece).is_some(),
                    "{name}: left to the general path"
                );
            }
        }
        // Other columns in another order, one unknown, one optional absent.
        let header = "查詢結果,機關,備註,帳號,被查詢人身分證號,查詢時間,查詢項目,查詢目的";
        let text = format!(
            "{header}\n成功,KHB,x,W001,K123456789,2026-01-02 08:00:00,個人投保資料,other\n,,y,W002,K123456789,2026-01-02 08:00:00,個人投保資料,\n"
        );
        assert!(both("order.csv", &text, 0, header, 1 << 20).is_some());
        // A declared calendar: the other one's dates are the plan's to
        // reject.
        let roc_file = format!("{HEADER}\n{roc}\n");
        let iso_file = format!("{HEADER}\n{body}\n");
        for format in [DateFormat::Roc, DateFormat::Gregorian] {
            for (name, text) in [("roc.csv", &roc_file), ("plain.csv", &iso_file)] {
                assert!(both_with(name, text, 0, HEADER, 64, 1.0, format).is_some());
            }
        }
        // Over a tenth of a piece's rows for the plan: the general path.
        let afternoon = records()
            .iter()
            .map(|r| {
                r.replace(",2026-01-", ",2026/1/")
                    .replace(" 08:", " 上午 08:")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let afternoon = format!("{HEADER}\n{afternoon}\n");
        let auto = DateFormat::Auto;
        assert!(both_with("ampm.csv", &afternoon, 0, HEADER, 1 << 20, 1.0, auto).is_some());
        assert!(both_with("ampm.csv", &afternoon, 0, HEADER, 1 << 20, MOST_LEFT, auto).is_none());
        let clean = records()[..30].join("\n");
        let mostly_clean = format!("{HEADER}\n{clean}\n{clean}\n{clean}\n{}\n", records()[35]);
        assert!(
            both_with(
                "mostly-clean.csv",
                &mostly_clean,
                0,
                HEADER,
                1 << 20,
                MOST_LEFT,
                auto
            )
            .is_some()
        );
        // Blank lines are rows without values, as polars reads them.
        let text = format!("{HEADER}\n{body}\n\n{body}\n\r\n\n");
        assert!(both("blank.csv", &text, 0, HEADER, 64).is_some());
    }

    /// Issue 34: a Big5 log took the general path, slower and holding the
    /// whole file decoded. It is read by the own reader, decoded piece by
    /// piece, into what its UTF-8 twin reads; its digest is of its own
    /// bytes; a byte no Big5 character has fails the file, as the general
    /// path fails it.
    #[test]
    fn a_big5_log_is_read_by_the_own_reader_as_its_utf8_twin() {
        // Every test record Big5 has the characters of (not U+200B).
        let big5: Vec<String> = records()
            .into_iter()
            .filter(|r| !encoding_rs::BIG5.encode(r).2)
            .collect();
        assert!(big5.len() + 1 == records().len());
        let body = big5.join("\n");
        let crlf = big5.join("\r\n");
        let files = [
            ("plain.csv", format!("{HEADER}\n{body}\n"), 0),
            ("crlf.csv", format!("{HEADER}\r\n{crlf}\r\n"), 0),
            (
                "title.csv",
                format!("查詢紀錄 匯出日期：115/07/02\n{HEADER}\n{body}\n"),
                1,
            ),
        ];
        let dir = std::env::temp_dir().join(format!("webir-big5-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _removed_after = Scratch(dir.clone());
        for (name, text, row) in &files {
            let (utf8, big5) = (dir.join(format!("u-{name}")), dir.join(format!("b-{name}")));
            std::fs::write(&utf8, text).unwrap();
            let (bytes, _, bad) = encoding_rs::BIG5.encode(text);
            assert!(!bad, "{name}: Big5-encodable");
            assert_ne!(bytes.as_ref(), text.as_bytes());
            std::fs::write(&big5, &bytes).unwrap();
            let m = matched(*row, HEADER);
            for piece in [1, 7, 64, 1 << 20] {
                with_context(&m, DateFormat::Auto, |cx| {
                    let twin = CsvLayout::of(&utf8, m.clone(), b',', false).unwrap();
                    let twin = read(&twin, cx, piece, 1.0).unwrap().expect("own reader");
                    let layout = CsvLayout::of(&big5, m.clone(), b',', true).unwrap();
                    let got = read(&layout, cx, piece, 1.0).unwrap().expect("own reader");
                    assert!(got.df.equals_missing(&twin.df), "{name}, pieces of {piece}");
                    assert!(got.residue.equals_missing(&twin.residue), "{name}, {piece}");
                    assert_eq!(
                        got.hashed,
                        super::super::hash_file(&big5).unwrap(),
                        "{name}"
                    );
                });
            }
        }
        // A byte no Big5 character has (0x80), far into the file.
        let (mut bytes, _, _) = encoding_rs::BIG5.encode(&files[0].1);
        let at = bytes.len() - 10;
        bytes.to_mut()[at] = 0x80;
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, &bytes).unwrap();
        let m = matched(0, HEADER);
        with_context(&m, DateFormat::Auto, |cx| {
            let layout = CsvLayout::of(&bad, m.clone(), b',', true).unwrap();
            let err = read(&layout, cx, 64, 1.0).expect_err("a Big5 error");
            assert!(err.to_string().contains("Big5"), "{err}");
        });
    }

    #[test]
    fn files_it_cannot_tokenize_as_polars_does_go_to_the_general_path() {
        let ok = "W001,2026-01-02 08:00:00,個人投保資料,K123456789,other,成功,KHB,1.1.1.1";
        for (name, line) in [
            ("ragged.csv", format!("{ok},extra")),
            (
                "bare-quote.csv",
                "W0\"01,2026-01-02 08:00:00,x,K123456789,,,KHB,".to_owned(),
            ),
            (
                "after-quote.csv",
                "\"W001\"x,2026-01-02 08:00:00,x,K123456789,,,KHB,".to_owned(),
            ),
            (
                "unclosed.csv",
                "\"W001,2026-01-02 08:00:00,x,K123456789,,,KHB,".to_owned(),
            ),
        ] {
            let text = format!("{HEADER}\n{ok}\n{line}\n{ok}\n");
            assert!(both(name, &text, 0, HEADER, 1 << 20).is_none(), "{name}");
        }
    }
}
