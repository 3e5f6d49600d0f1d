//! Reading one export file into a frame of raw text cells: CSV (UTF-8, UTF-8
//! with BOM, Big5/CP950; comma, tab or semicolon) through a polars lazy scan,
//! and workbooks (XLSX, XLS, ODS) through calamine.
//!
//! The result has one `String` column per recognised header, named by its
//! canonical column, plus `__row`: the 1-based line (CSV) or sheet row
//! (workbooks) a person would look at to find the record. Nothing is parsed
//! here; that is [`super::parse`]'s job.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use calamine::{Data, Reader};
use polars::prelude::*;

use super::IngestError;
use super::headers::{HEADER_SEARCH_ROWS, HeaderMap, HeaderProblem, Matched};
use crate::config::register::split_csv_line;
use crate::config::{Encoding, InputOverride, Limits};
use std::io::Read as _;

/// A file's raw cells, ready for [`super::parse`].
pub struct RawFrame {
    /// The whole file's lazy scan; unset for a Big5 CSV until the general
    /// path needs it ([`RawFrame::lf`]): the log's own reader decodes it a
    /// piece at a time, and most files never need the rest.
    lf: std::sync::OnceLock<LazyFrame>,
    /// `(canonical column, header as written)` for each recognised column.
    pub headers: Vec<(&'static str, String)>,
    pub sheet: Option<String>,
    /// `utf-8`, `utf-8 (BOM)`, `big5` or the workbook kind.
    pub encoding: &'static str,
    /// For CSV: the delimiter, the header's line index and field count, so
    /// a parse failure can be traced to the line that caused it.
    pub csv: Option<CsvShape>,
    /// The text of the rows above the header (titles such as
    /// `帳號清冊 匯出日期：115/07/02`), cells joined by spaces.
    pub title: Vec<String>,
    /// For a UTF-8 CSV: where its records are, for readers that take it a
    /// piece at a time.
    pub layout: Option<CsvLayout>,
    /// For a large UTF-8 CSV: the same rows as `lf`, read in pieces (see
    /// [`Pieces`]). `lf` stays for the second pass over rejected rows.
    pub pieces: Option<Pieces>,
}

/// Where a UTF-8 CSV file's records are: after its title rows and its
/// header line. Readers that take the file a piece at a time start there.
#[derive(Debug, Clone)]
pub struct CsvLayout {
    pub path: std::path::PathBuf,
    pub display: String,
    pub matched: Matched,
    pub sep: u8,
    /// The header line's bytes through its line end, in UTF-8 (a
    /// byte-order mark included when it is the file's first line).
    header: Vec<u8>,
    /// The byte offset of the first record in the file.
    records_from: usize,
    /// The file is Big5/CP950: each piece is decoded to UTF-8 as it is
    /// read. (A Big5 trail byte is never a line end, a quote or a
    /// delimiter, so records are cut on the raw bytes as on UTF-8.)
    big5: bool,
}

impl CsvLayout {
    /// The layout of the file at `path` whose first bytes are `head`, with
    /// header `matched`; `None` if `head` does not hold the header line
    /// whole.
    fn new(
        path: &Path,
        display: &str,
        head: &[u8],
        matched: Matched,
        sep: u8,
        big5: bool,
    ) -> Option<Self> {
        let (header, records_from) = header_bytes(head, matched.row)?;
        let header = if big5 {
            let (text, bad) = encoding_rs::BIG5.decode_without_bom_handling(&header);
            if bad {
                return None;
            }
            text.into_owned().into_bytes()
        } else {
            header
        };
        Some(CsvLayout {
            path: path.to_owned(),
            display: display.to_owned(),
            matched,
            sep,
            header,
            records_from,
            big5,
        })
    }

    /// The layout of the file at `path` with header `matched` (tests).
    #[cfg(test)]
    pub(super) fn of(path: &Path, matched: Matched, sep: u8, big5: bool) -> Option<CsvLayout> {
        let head = std::fs::read(path).ok()?;
        CsvLayout::new(path, &path.display().to_string(), &head, matched, sep, big5)
    }

    /// The file's bytes before its first record, as they are in the file:
    /// title rows and header.
    pub fn head(&self) -> Result<Vec<u8>, IngestError> {
        use std::io::Read;
        let mut head = vec![0u8; self.records_from];
        std::fs::File::open(&self.path)
            .and_then(|mut f| f.read_exact(&mut head))
            .map_err(|source| IngestError::Io {
                file: self.display.clone(),
                source,
            })?;
        Ok(head)
    }

    /// The 1-based line of the first record, as a person counts lines.
    pub fn first_row(&self) -> usize {
        self.matched.row + 2
    }

    /// Calls `each` with buffers of whole records in file order (cut
    /// after a line end outside quotes, [`last_record_end`]), about
    /// `piece_bytes` of them each (a record longer than that makes a
    /// longer buffer), in UTF-8, with the header line in front of each
    /// when `with_header`, where in the buffer the records start, and the
    /// records' bytes as the file has them when they differ (a Big5 file);
    /// until `each` says to stop. A buffer `each` leaves in place is used
    /// again for the next piece (its pages are already the process's).
    pub fn for_each_piece(
        &self,
        with_header: bool,
        piece_bytes: usize,
        mut each: impl FnMut(&mut Vec<u8>, usize, Option<&[u8]>) -> Result<ControlFlow<()>, IngestError>,
    ) -> Result<(), IngestError> {
        use std::io::{Read, Seek};
        let io = |source| IngestError::Io {
            file: self.display.clone(),
            source,
        };
        let mut file = std::fs::File::open(&self.path).map_err(io)?;
        file.seek(std::io::SeekFrom::Start(self.records_from as u64))
            .map_err(io)?;
        let mut carry: Vec<u8> = Vec::new();
        let mut eof = false;
        let mut spare: Vec<u8> = Vec::new();
        while !eof || !carry.is_empty() {
            let mut buf = std::mem::take(&mut spare);
            buf.clear();
            buf.reserve(self.header.len() + carry.len() + piece_bytes);
            if with_header {
                buf.extend_from_slice(&self.header);
            }
            let records = buf.len();
            buf.append(&mut carry);
            // Read until the buffer holds a record end or the file ends.
            let cut = loop {
                let start = buf.len();
                buf.resize(start + piece_bytes, 0);
                let mut got = 0;
                while got < piece_bytes {
                    let k = file.read(&mut buf[start + got..]).map_err(io)?;
                    if k == 0 {
                        eof = true;
                        break;
                    }
                    got += k;
                }
                buf.truncate(start + got);
                if eof {
                    break buf.len();
                }
                if let Some(end) = last_record_end(&buf[records..]) {
                    break records + end;
                }
            };
            carry = buf.split_off(cut);
            if buf.len() == records {
                break;
            }
            let flow = if self.big5 {
                let mut utf8 = self.decoded(&buf[records..], with_header)?;
                each(&mut utf8, records, Some(&buf[records..]))?
            } else {
                each(&mut buf, records, None)?
            };
            if flow.is_break() {
                break;
            }
            spare = buf;
        }
        Ok(())
    }
}

impl CsvLayout {
    /// A Big5 piece's records in UTF-8, behind the header line when
    /// `with_header` (so the records start where they did in the raw
    /// buffer: after the header, or at 0).
    /// Decoded by every core at once, each a share cut after a record end
    /// (never inside a character: [`split`]).
    fn decoded(&self, raw: &[u8], with_header: bool) -> Result<Vec<u8>, IngestError> {
        let bounds = split(raw, threads());
        let texts: Vec<Option<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = bounds
                .windows(2)
                .map(|w| {
                    let part = &raw[w[0]..w[1]];
                    s.spawn(move || {
                        let (text, bad) = encoding_rs::BIG5.decode_without_bom_handling(part);
                        (!bad).then(|| text.into_owned())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(None))
                .collect()
        });
        let texts: Option<Vec<String>> = texts.into_iter().collect();
        let texts = texts.ok_or_else(|| not_big5(&self.display))?;
        let len: usize = texts.iter().map(String::len).sum();
        let mut out = Vec::with_capacity(self.header.len() + len);
        if with_header {
            out.extend_from_slice(&self.header);
        }
        for t in &texts {
            out.extend_from_slice(t.as_bytes());
        }
        Ok(out)
    }
}

/// The error of a file whose bytes are neither UTF-8 nor Big5.
fn not_big5(display: &str) -> IngestError {
    IngestError::Encoding {
        file: display.to_owned(),
        detail: "neither valid UTF-8 nor valid Big5/CP950".into(),
    }
}

/// The threads a file is read or decoded on: the machine's cores, at
/// most eight.
pub(super) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// Where to cut `bytes` (whole records) into `n` parts of whole records:
/// after the last record end before each even share ([`last_record_end`],
/// the rule the pieces are cut by).
pub(super) fn split(bytes: &[u8], n: usize) -> Vec<usize> {
    let mut bounds = vec![0];
    for k in 1..n {
        let last = *bounds.last().expect("a bound");
        let share = bytes.len() * k / n;
        let cut = last_record_end(&bytes[..share]).unwrap_or(0);
        bounds.push(cut.max(last));
    }
    bounds.push(bytes.len());
    bounds
}

/// How many bytes of a CSV file one piece reads (a file of more than two
/// pieces is read in pieces).
pub const PIECE_BYTES: usize = 64 << 20;

/// A large UTF-8 CSV file read a piece at a time for polars' reader: each
/// piece is whole records, read into memory and scanned as its own buffer
/// behind the header line, the row numbers carried on. Scanning the path
/// would map the whole file into memory, and its pages would count in the
/// run's resident memory (a 954 MB log: 0.85 GB of the ingest peak).
#[derive(Debug, Clone)]
pub struct Pieces {
    layout: CsvLayout,
    piece_bytes: usize,
}

impl Pieces {
    /// Calls `each` with the lazy scan of every piece in file order, and
    /// the number of rows it gave (the next piece's rows are numbered on).
    pub fn for_each(
        &self,
        mut each: impl FnMut(LazyFrame) -> Result<usize, IngestError>,
    ) -> Result<(), IngestError> {
        let l = &self.layout;
        let mut rows = 0usize;
        l.for_each_piece(true, self.piece_bytes, |buf, _, _| {
            // polars keeps the buffer.
            let buf = std::mem::take(buf);
            let source = ScanSources::Buffers(Arc::from([polars_buffer::Buffer::from(buf)]));
            let lf = scan(
                LazyCsvReader::new_with_sources(source),
                &l.matched,
                l.sep,
                &l.display,
                0,
                (l.first_row() + rows) as IdxSize,
            )?;
            rows += each(lf)?;
            Ok(ControlFlow::Continue(()))
        })
    }
}

/// The position just after the last line end of `bytes` that ends a
/// record: outside double quotes, counted from the start of `bytes`
/// (which starts a record). RFC 4180: a quote inside a quoted field is
/// doubled, so the parity of the quotes before a line end says whether
/// it is inside a field. That is also how polars' reader counts records
/// (a file with a bare quote inside an unquoted cell fails its read, whole
/// or in pieces, and is reported).
pub(super) fn last_record_end(bytes: &[u8]) -> Option<usize> {
    if !bytes.contains(&b'"') {
        return bytes.iter().rposition(|&b| b == b'\n').map(|i| i + 1);
    }
    let mut quoted = false;
    let mut end = None;
    for i in memchr::memchr2_iter(b'"', b'\n', bytes) {
        match bytes[i] {
            b'"' => quoted = !quoted,
            _ if !quoted => end = Some(i + 1),
            _ => {}
        }
    }
    end
}

#[derive(Debug, Clone, Copy)]
pub struct CsvShape {
    pub sep: u8,
    pub header_line: usize,
    pub fields: usize,
    pub big5: bool,
}

/// The first data line with more fields than the header: `(1-based line,
/// fields found)`. Runs only after polars has refused a file, to tell the
/// officer which line to fix.
pub fn find_ragged_line(path: &Path, shape: CsvShape) -> Option<(usize, usize)> {
    let bytes = std::fs::read(path).ok()?;
    let text = if shape.big5 {
        encoding_rs::BIG5
            .decode_without_bom_handling(&bytes)
            .0
            .into_owned()
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    text.split('\n')
        .enumerate()
        .skip(shape.header_line + 1)
        .find_map(|(i, line)| {
            let n = split_csv_line(line.strip_suffix('\r').unwrap_or(line), shape.sep).len();
            (n > shape.fields).then_some((i + 1, n))
        })
}

impl RawFrame {
    /// The whole file's lazy scan (for a Big5 CSV, the file decoded whole
    /// the first time it is asked for).
    pub fn lf(&self) -> Result<LazyFrame, IngestError> {
        if let Some(lf) = self.lf.get() {
            return Ok(lf.clone());
        }
        let layout = self
            .layout
            .as_ref()
            .expect("only a Big5 CSV with a layout defers its scan");
        let lf = scan_big5(&layout.path, &layout.display, &layout.matched, layout.sep)?;
        Ok(self.lf.get_or_init(|| lf).clone())
    }
}

fn ready(lf: LazyFrame) -> std::sync::OnceLock<LazyFrame> {
    let cell = std::sync::OnceLock::new();
    let _ = cell.set(lf);
    cell
}

impl std::fmt::Debug for RawFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawFrame")
            .field("headers", &self.headers)
            .field("sheet", &self.sheet)
            .finish()
    }
}

pub const ROW: &str = "__row";

/// Whether `path` is read as CSV (by its extension, as [`read`] and the
/// inbox's accepted types say).
pub fn is_csv(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_lowercase();
    matches!(ext.as_str(), "csv" | "tsv" | "txt")
}

pub fn read(
    path: &Path,
    display: &str,
    map: &HeaderMap,
    input: Option<&InputOverride>,
    limits: &Limits,
) -> Result<RawFrame, IngestError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_lowercase();
    match ext.as_str() {
        "xlsx" | "xlsm" | "xls" | "ods" => {
            check_workbook(path, display, &ext, limits)?;
            read_workbook(path, display, map, input)
        }
        _ => read_csv(path, display, map, input),
    }
}

/// Refuses a workbook that would inflate past `limits` before anything of
/// it is parsed: the reader holds a whole sheet in memory, so a small file
/// that inflates to gigabytes would take the server's memory. An XLS is not
/// compressed: its size is what it holds. For XLSX and ODS (zip files)
/// every entry's declared size is checked, then every entry is inflated
/// into nothing, counting, so a size that lies is caught too.
fn check_workbook(
    path: &Path,
    display: &str,
    ext: &str,
    limits: &Limits,
) -> Result<(), IngestError> {
    let refuse = |detail: String| IngestError::Refused {
        file: display.to_owned(),
        detail,
    };
    let io = |source| IngestError::Io {
        file: display.to_owned(),
        source,
    };
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64);
    let size = std::fs::metadata(path).map_err(io)?.len();
    if ext == "xls" {
        if size > limits.workbook_bytes {
            return Err(refuse(format!(
                "the workbook is {}, over limits.workbook_mib ({}); not read",
                mib(size),
                mib(limits.workbook_bytes)
            )));
        }
        return Ok(());
    }
    // Not a zip: the workbook reader says what it is.
    let Ok(mut zip) = ::zip::ZipArchive::new(std::io::BufReader::new(
        std::fs::File::open(path).map_err(io)?,
    )) else {
        return Ok(());
    };
    let mut total = 0u64;
    for i in 0..zip.len() {
        let Ok(e) = zip.by_index_raw(i) else {
            continue;
        };
        let name = e.name().map(|n| n.into_owned()).unwrap_or_default();
        let (declared, packed) = (e.size(), e.compressed_size());
        if declared > limits.entry_bytes {
            return Err(refuse(format!(
                "{name} would inflate to {}, over limits.entry_mib ({}); not read",
                mib(declared),
                mib(limits.entry_bytes)
            )));
        }
        if declared > 10 << 20 && declared / packed.max(1) > limits.compression_ratio {
            return Err(refuse(format!(
                "{name} would inflate {}:1 ({} from {}), over limits.compression_ratio ({}:1); not read",
                declared / packed.max(1),
                mib(declared),
                mib(packed),
                limits.compression_ratio
            )));
        }
        total += declared;
        if total > limits.workbook_bytes {
            return Err(refuse(format!(
                "its entries would inflate to more than limits.workbook_mib ({}); not read",
                mib(limits.workbook_bytes)
            )));
        }
    }
    let mut total = 0u64;
    for i in 0..zip.len() {
        let Ok(mut e) = zip.by_index(i) else {
            continue;
        };
        let name = e.name().map(|n| n.into_owned()).unwrap_or_default();
        let cap = limits
            .entry_bytes
            .min(limits.workbook_bytes - total.min(limits.workbook_bytes));
        // A broken entry is the reader's to report; only the count matters here.
        let n = std::io::copy(&mut (&mut e).take(cap + 1), &mut std::io::sink()).unwrap_or(0);
        if n > cap {
            return Err(refuse(format!(
                "{name} inflates to more than it declares and than the limits allow (limits.entry_mib {}, limits.workbook_mib {}); not read",
                mib(limits.entry_bytes),
                mib(limits.workbook_bytes)
            )));
        }
        total += n;
    }
    Ok(())
}

fn header_error(
    display: &str,
    sheet: Option<&str>,
    map: &HeaderMap,
    p: HeaderProblem,
) -> IngestError {
    let file = display.to_owned();
    let sheet = sheet.map(str::to_owned);
    match p {
        HeaderProblem::Missing {
            row,
            missing,
            found,
        } => IngestError::MissingColumns {
            file,
            sheet,
            row: row + 1,
            missing: missing.join(", "),
            expected: map.expected().join(", "),
            found: if found.is_empty() {
                "(none)".into()
            } else {
                found.join(", ")
            },
        },
        HeaderProblem::Ambiguous {
            row,
            column,
            first,
            second,
        } => IngestError::AmbiguousHeader {
            file,
            sheet,
            row: row + 1,
            column,
            first,
            second,
        },
    }
}

fn headers_of(m: &Matched) -> Vec<(&'static str, String)> {
    m.columns
        .iter()
        .map(|&(j, spec)| (spec.name, m.cells[j].trim().to_owned()))
        .collect()
}

// ---------------------------------------------------------------- CSV

/// How many bytes from the top of a CSV file are decoded to find the header
/// and sniff the encoding.
const SNIFF_BYTES: usize = 256 * 1024;

fn read_csv(
    path: &Path,
    display: &str,
    map: &HeaderMap,
    input: Option<&InputOverride>,
) -> Result<RawFrame, IngestError> {
    let head = read_head(path, display)?;
    let whole_file = head.len() < SNIFF_BYTES;
    let bom = head.starts_with(b"\xEF\xBB\xBF");
    let declared = input.map(|i| i.encoding).unwrap_or_default();
    let big5 = match declared {
        Encoding::Big5 => true,
        Encoding::Utf8 => false,
        Encoding::Auto => !bom && !looks_utf8(&head, whole_file),
    };
    if big5 {
        read_big5_csv(path, display, map, input, &head)
    } else {
        read_utf8_csv(path, display, map, input, &head, bom)
    }
}

/// The first [`SNIFF_BYTES`] of a file (all of it if shorter).
fn read_head(path: &Path, display: &str) -> Result<Vec<u8>, IngestError> {
    use std::io::Read;
    let io = |source| IngestError::Io {
        file: display.to_owned(),
        source,
    };
    let mut head = vec![0u8; SNIFF_BYTES];
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut n = 0;
    loop {
        let k = f.read(&mut head[n..]).map_err(io)?;
        if k == 0 || n + k == head.len() {
            n += k;
            break;
        }
        n += k;
    }
    head.truncate(n);
    Ok(head)
}

/// Reads a Big5 CSV file: its header found in `head` (its first bytes,
/// decoded up to the last whole line); the whole file is decoded only when
/// the general path needs it ([`RawFrame::lf`]), as the log's own reader
/// decodes it a piece at a time.
fn read_big5_csv(
    path: &Path,
    display: &str,
    map: &HeaderMap,
    input: Option<&InputOverride>,
    head: &[u8],
) -> Result<RawFrame, IngestError> {
    // A line end is never a Big5 trail byte: the head up to its last one
    // holds whole characters.
    let whole = if head.len() < SNIFF_BYTES {
        head
    } else {
        head.iter()
            .rposition(|&b| b == b'\n')
            .map_or(head, |i| &head[..=i])
    };
    let (text, had_errors) = encoding_rs::BIG5.decode_without_bom_handling(whole);
    if had_errors {
        return Err(not_big5(display));
    }
    let top = top_lines(&text);
    let (matched, sep) = find_csv_header(&top, display, map, input)?;
    let title = title_lines(&top, matched.row, sep);
    let csv = Some(CsvShape {
        sep,
        header_line: matched.row,
        fields: matched.cells.len(),
        big5: true,
    });
    let layout = CsvLayout::new(path, display, head, matched.clone(), sep, true);
    let lf = match layout {
        Some(_) => std::sync::OnceLock::new(),
        None => ready(scan_big5(path, display, &matched, sep)?),
    };
    Ok(RawFrame {
        lf,
        headers: headers_of(&matched),
        sheet: None,
        encoding: "big5",
        csv,
        title,
        layout,
        pieces: None,
    })
}

/// The Big5 CSV file at `path` decoded whole to UTF-8 in memory, and
/// polars' scan of the buffer.
fn scan_big5(path: &Path, display: &str, m: &Matched, sep: u8) -> Result<LazyFrame, IngestError> {
    let bytes = std::fs::read(path).map_err(|source| IngestError::Io {
        file: display.to_owned(),
        source,
    })?;
    let (text, had_errors) = encoding_rs::BIG5.decode_without_bom_handling(&bytes);
    if had_errors {
        return Err(not_big5(display));
    }
    let text = text.into_owned();
    drop(bytes);
    let source = ScanSources::Buffers(Arc::from([polars_buffer::Buffer::from(text.into_bytes())]));
    scan_whole(LazyCsvReader::new_with_sources(source), m, sep, display)
}

/// Reads a UTF-8 CSV file (`head`: its first bytes, `bom`: whether they
/// start with a byte-order mark): scanned from its path, and in pieces when
/// it is large.
fn read_utf8_csv(
    path: &Path,
    display: &str,
    map: &HeaderMap,
    input: Option<&InputOverride>,
    head: &[u8],
    bom: bool,
) -> Result<RawFrame, IngestError> {
    let text = String::from_utf8_lossy(head);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    let top = top_lines(text);
    let (matched, sep) = find_csv_header(&top, display, map, input)?;
    let title = title_lines(&top, matched.row, sep);
    let reader =
        LazyCsvReader::new(
            PlRefPath::try_from_path(path).map_err(|e| IngestError::Polars {
                file: display.to_owned(),
                source: e,
            })?,
        );
    let lf = scan_whole(reader, &matched, sep, display)?;
    let csv = Some(CsvShape {
        sep,
        header_line: matched.row,
        fields: matched.cells.len(),
        big5: false,
    });
    let layout = CsvLayout::new(path, display, head, matched.clone(), sep, false);
    let size = std::fs::metadata(path)
        .map_err(|source| IngestError::Io {
            file: display.to_owned(),
            source,
        })?
        .len();
    let pieces = layout
        .clone()
        .filter(|_| size > 2 * PIECE_BYTES as u64)
        .map(|layout| Pieces {
            layout,
            piece_bytes: PIECE_BYTES,
        });
    Ok(RawFrame {
        lf: ready(lf),
        headers: headers_of(&matched),
        sheet: None,
        encoding: if bom { "utf-8 (BOM)" } else { "utf-8" },
        csv,
        title,
        layout,
        pieces,
    })
}

/// The bytes of line `row` (0-based, split at `\n` as the header search
/// splits) through its line end, with the byte-order mark when it is the
/// file's first line, and where the line after it starts; `None` if
/// `head` does not hold it whole.
fn header_bytes(head: &[u8], row: usize) -> Option<(Vec<u8>, usize)> {
    let mut start = 0;
    for _ in 0..row {
        start += head[start..].iter().position(|&b| b == b'\n')? + 1;
    }
    let len = head[start..].iter().position(|&b| b == b'\n')? + 1;
    Some((head[start..start + len].to_vec(), start + len))
}

/// Whether `head` is UTF-8; a multi-byte character cut off at the end of the
/// sniffed block does not count against it.
fn looks_utf8(head: &[u8], whole_file: bool) -> bool {
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => !whole_file && e.error_len().is_none(),
    }
}

/// The first lines of a decoded file (without line terminators).
fn top_lines(text: &str) -> Vec<&str> {
    text.split('\n')
        .take(HEADER_SEARCH_ROWS)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// Finds the header line and the delimiter: each candidate delimiter splits
/// the top lines, and the split that recognises the most columns wins.
fn find_csv_header(
    lines: &[&str],
    display: &str,
    map: &HeaderMap,
    input: Option<&InputOverride>,
) -> Result<(Matched, u8), IngestError> {
    let candidates: Vec<u8> = match input.and_then(|i| i.delimiter) {
        Some(d) => vec![d],
        None => vec![b',', b'\t', b';'],
    };
    let mut best: Option<(Result<Matched, HeaderProblem>, u8)> = None;
    for sep in candidates {
        let rows: Vec<Vec<String>> = lines.iter().map(|l| split_csv_line(l, sep)).collect();
        let found = map.find(&rows);
        let score = |r: &Result<Matched, HeaderProblem>| match r {
            Ok(m) => (2, m.columns.len()),
            Err(HeaderProblem::Ambiguous { .. }) => (1, 0),
            Err(HeaderProblem::Missing { found, .. }) => (0, found.len()),
        };
        if best.as_ref().is_none_or(|(b, _)| score(&found) > score(b)) {
            best = Some((found, sep));
        }
    }
    let (found, sep) = best.expect("at least one delimiter candidate");
    found
        .map(|m| (m, sep))
        .map_err(|p| header_error(display, None, map, p))
}

/// The lines above the header line, their cells joined by spaces.
fn title_lines(top: &[&str], header: usize, sep: u8) -> Vec<String> {
    top[..header.min(top.len())]
        .iter()
        .map(|l| split_csv_line(l, sep).join(" ").trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// A scan of a whole file: its title rows skipped, its records numbered
/// from the line after the header.
pub(super) fn scan_whole(
    reader: LazyCsvReader,
    m: &Matched,
    sep: u8,
    display: &str,
) -> Result<LazyFrame, IngestError> {
    scan(reader, m, sep, display, m.row, (m.row + 2) as IdxSize)
}

/// A scan of the header `m` and its records: `skip` lines above the
/// header, the first record numbered `offset` (header line `m.row`,
/// 0-based, means the first record is on line `m.row + 2`).
fn scan(
    reader: LazyCsvReader,
    m: &Matched,
    sep: u8,
    display: &str,
    skip: usize,
    offset: IdxSize,
) -> Result<LazyFrame, IngestError> {
    let lf = reader
        .with_has_header(true)
        .with_skip_lines(skip)
        .with_separator(sep)
        .with_infer_schema_length(Some(0))
        .with_missing_is_null(true)
        .with_row_index(Some(RowIndex {
            name: ROW.into(),
            offset,
        }))
        .finish()
        .map_err(|source| IngestError::Polars {
            file: display.to_owned(),
            source,
        })?;
    // Select by position: the scanned header names may have been
    // de-duplicated or blank, but positions are what we matched.
    let mut lf = lf;
    let schema = lf.collect_schema().map_err(|source| IngestError::Polars {
        file: display.to_owned(),
        source,
    })?;
    let names: Vec<PlSmallStr> = schema.iter_names().cloned().collect();
    let mut exprs = vec![col(ROW)];
    for &(j, spec) in &m.columns {
        // names[0] is the row index column.
        let Some(name) = names.get(j + 1) else {
            return Err(IngestError::Polars {
                file: display.to_owned(),
                source: polars_err!(ComputeError: "header has fewer fields than expected"),
            });
        };
        exprs.push(col(name.clone()).cast(DataType::String).alias(spec.name));
    }
    Ok(lf.select(exprs))
}

// ---------------------------------------------------------------- workbooks

fn read_workbook(
    path: &Path,
    display: &str,
    map: &HeaderMap,
    input: Option<&InputOverride>,
) -> Result<RawFrame, IngestError> {
    let wb_err = |e: calamine::Error| IngestError::Workbook {
        file: display.to_owned(),
        message: e.to_string(),
    };
    let mut wb = calamine::open_workbook_auto(path).map_err(wb_err)?;
    let sheets = wb.sheet_names();
    let sheet = match input.and_then(|i| i.sheet.clone()) {
        Some(s) if sheets.contains(&s) => s,
        Some(s) => {
            return Err(IngestError::NoSuchSheet {
                file: display.to_owned(),
                sheet: s,
                available: sheets.join(", "),
            });
        }
        None => match sheets.first() {
            Some(s) => s.clone(),
            None => {
                return Err(IngestError::NoSuchSheet {
                    file: display.to_owned(),
                    sheet: "(first)".into(),
                    available: String::new(),
                });
            }
        },
    };
    let range = wb.worksheet_range(&sheet).map_err(wb_err)?;
    let first_row = range.start().map_or(0, |(r, _)| r as usize);
    let rows: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(cell_text).collect())
        .collect();
    let matched = map
        .find(&rows)
        .map_err(|p| header_error(display, Some(&sheet), map, p))?;

    let body = &rows[matched.row + 1..];
    let mut columns: Vec<Column> = Vec::with_capacity(matched.columns.len() + 1);
    // Sheet rows are 1-based; the range may not start at A1.
    let row_numbers: Vec<IdxSize> = (0..body.len())
        .map(|i| (first_row + matched.row + 2 + i) as IdxSize)
        .collect();
    columns.push(Column::new(ROW.into(), row_numbers));
    for &(j, spec) in &matched.columns {
        let values: Vec<Option<&str>> = body
            .iter()
            .map(|r| r.get(j).map(String::as_str).filter(|s| !s.is_empty()))
            .collect();
        columns.push(Column::new(spec.name.into(), values));
    }
    let df = DataFrame::new_infer_height(columns).map_err(|source| IngestError::Polars {
        file: display.to_owned(),
        source,
    })?;
    let kind = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_lowercase)
        .as_deref()
    {
        Some("xls") => "xls",
        Some("ods") => "ods",
        _ => "xlsx",
    };
    Ok(RawFrame {
        lf: ready(df.lazy()),
        headers: headers_of(&matched),
        sheet: Some(sheet),
        encoding: kind,
        csv: None,
        title: rows[..matched.row]
            .iter()
            .map(|r| r.join(" ").trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        layout: None,
        pieces: None,
    })
}

/// A cell as text. Dates become ISO text, which [`super::parse`] reads like
/// any other date; whole numbers lose their `.0` (IDs stored as numbers).
pub(crate) fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => match dt.as_datetime() {
            Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => dt.as_f64().to_string(),
        },
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.replace('T', " "),
        Data::Error(e) => format!("#ERROR {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(
            split_csv_line(r#"a,"b,c","d""e""#, b','),
            vec!["a", "b,c", "d\"e"]
        );
        assert_eq!(split_csv_line("a\tb", b'\t'), vec!["a", "b"]);
    }

    /// A file read in pieces of any size gives the rows, values and row
    /// numbers of a scan of the whole file: title rows, a byte-order
    /// mark, CRLF line ends, and quoted cells holding separators, doubled
    /// quotes and line ends that fall across the cuts.
    #[test]
    fn a_file_read_in_pieces_reads_as_the_whole_file() {
        let dir = std::env::temp_dir().join(format!("webir-pieces-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = |n| crate::model::Table::QueryLog.column(n).unwrap();
        let mut records = String::new();
        for i in 0..40 {
            let subject = match i % 4 {
                0 => format!("K1{i:08}"),
                1 => format!("\"K2,{i}\""),
                2 => format!("\"K3\r\n{i} \"\"x\"\"\""),
                _ => String::new(),
            };
            records.push_str(&format!(
                "A{i},2026-01-02 08:{:02}:00,{subject}\r\n",
                i % 60
            ));
        }
        let header = "帳號,查詢時間,被查詢人身分證號\r\n";
        let files = [
            (
                "title.csv",
                format!("\u{FEFF}查詢紀錄 匯出日期：115/07/02\r\n{header}{records}"),
                1,
            ),
            ("bom.csv", format!("\u{FEFF}{header}{records}"), 0),
        ];
        for (name, text, row) in files {
            let path = dir.join(name);
            std::fs::write(&path, &text).unwrap();
            let m = Matched {
                row,
                cells: vec!["帳號".into(), "查詢時間".into(), "被查詢人身分證號".into()],
                columns: vec![
                    (0, spec("account_id")),
                    (1, spec("queried_at")),
                    (2, spec("subject_id")),
                ],
            };
            let whole = scan_whole(
                LazyCsvReader::new(PlRefPath::try_from_path(&path).unwrap()),
                &m,
                b',',
                name,
            )
            .unwrap()
            .collect()
            .unwrap();
            assert_eq!(whole.height(), 40, "{name}");
            let layout = CsvLayout::of(&path, m.clone(), b',', false).unwrap();
            for piece_bytes in [1, 7, 30, 64, 100, 1 << 20] {
                let pieces = Pieces {
                    layout: layout.clone(),
                    piece_bytes,
                };
                let mut read: Option<DataFrame> = None;
                let mut n_pieces = 0;
                pieces
                    .for_each(|lf| {
                        let part = lf.collect().unwrap();
                        n_pieces += 1;
                        let n = part.height();
                        match &mut read {
                            None => read = Some(part),
                            Some(d) => {
                                d.vstack_mut(&part).unwrap();
                            }
                        }
                        Ok(n)
                    })
                    .unwrap();
                let read = read.unwrap();
                assert!(
                    read.equals_missing(&whole),
                    "{name}, pieces of {piece_bytes} bytes:\n{read}\nwhole:\n{whole}"
                );
                if piece_bytes < 100 {
                    assert!(n_pieces > 5, "{name}: {n_pieces} pieces of {piece_bytes}");
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn utf8_sniffing_tolerates_a_cut_character() {
        let s = "查詢".as_bytes();
        assert!(looks_utf8(&s[..4], false));
        assert!(!looks_utf8(&s[..4], true));
        let big5 = encoding_rs::BIG5.encode("查詢時間").0;
        assert!(!looks_utf8(&big5, true));
    }
}
