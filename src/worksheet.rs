//! The auditor's round trip: a completed 抽查工作底稿 comes back, is matched
//! to the run that produced it, checked against the workbook the archive
//! kept, and its answers are recorded. Rows answered 否 or 有 are the
//! confirmed anomalies the ethics unit must hear about.

use std::path::{Path, PathBuf};

use calamine::{Data, Reader, Xlsx};
use chrono::NaiveDate;

use crate::archive;
use crate::job::Job;
use crate::report::layout::{self, Input, Layout, SAMPLE_WORKSHEET, SIGN_OFF};
use crate::report::{
    REVIEW_LABEL, RUN_ID_LABEL, ReportKind, SAMPLE_DIGEST_LABEL, SheetName, UNIT_LABEL,
};
use crate::store::{Store, WorksheetAnswer, WorksheetReturn};

/// The sheet as `report` writes it.
const LAYOUT: Layout = SAMPLE_WORKSHEET;
/// Rows above the header: title, blank.
const HEADER_ROW: usize = layout::HEADER_ROW as usize;

/// Why a returned workbook was refused. Each names the file, and the
/// sheet, row, column and values where there are some.
#[derive(Debug, thiserror::Error)]
pub enum ReturnError {
    #[error("{}: not a workbook webir-audit can read: {reason}", file.display())]
    Unreadable { file: PathBuf, reason: String },
    #[error("{}: no sheet {sheet:?}", file.display())]
    NoSheet { file: PathBuf, sheet: String },
    #[error("{}: no 執行編號 on the summary: not a webir-audit worksheet", file.display())]
    NotOurs { file: PathBuf },
    #[error("{}: cannot read the agency from {cell:?}", file.display())]
    NoAgency { file: PathBuf, cell: String },
    #[error("{}: no sample-audit run {run_id} in {}: unknown workbook", file.display(), archive.display())]
    UnknownRun {
        file: PathBuf,
        run_id: String,
        archive: PathBuf,
    },
    #[error("{}: its sample digest {got:?} is not that of run {run_id} ({want:?}): the workbook was altered", file.display())]
    DigestChanged {
        file: PathBuf,
        run_id: String,
        got: Option<String>,
        want: Option<String>,
    },
    #[error("{}: the columns of {sheet} were changed: {got:?}, expected {want:?}", file.display())]
    ColumnsChanged {
        file: PathBuf,
        sheet: &'static str,
        got: Vec<String>,
        want: Vec<String>,
    },
    #[error("{}: {sheet} has {got} rows, the run sent {want}: rows were added or removed", file.display())]
    RowCount {
        file: PathBuf,
        sheet: &'static str,
        got: usize,
        want: usize,
    },
    #[error("{}: {sheet} row {row}, column {column}: was {was:?}, now {now:?}: what the tool wrote must not be changed", file.display())]
    CellChanged {
        file: PathBuf,
        sheet: &'static str,
        row: usize,
        column: String,
        was: String,
        now: String,
    },
    #[error("{}: {sheet} row {row}, {column}: {value:?} is not one of {allowed:?}", file.display())]
    NotAChoice {
        file: PathBuf,
        sheet: &'static str,
        row: usize,
        column: &'static str,
        value: String,
        allowed: &'static [&'static str],
    },
    #[error("{}: {sheet} row {row}, {column}: {chars} characters, more than the {max} an answer may have (write the detail in a document of its own and refer to it)", file.display())]
    TooLong {
        file: PathBuf,
        sheet: &'static str,
        row: usize,
        column: String,
        chars: usize,
        max: usize,
    },
    #[error("{}: {sheet} row {row}, {column}: {value:?} is not a date (2026-12-31, 2026/12/31 or 115/12/31)", file.display())]
    NotADate {
        file: PathBuf,
        sheet: &'static str,
        row: usize,
        column: String,
        value: String,
    },
    #[error("{}: it is not the workbook sent to {unit} (its return token differs: another unit's workbook, relabelled, or one saved by a program that drops the workbook's properties)", file.display())]
    NotThisUnits { file: PathBuf, unit: String },
    #[error("{}: {error}", file.display())]
    Io {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What a returned worksheet said.
#[derive(Debug, Clone)]
pub struct Returned {
    pub run_id: String,
    pub unit_id: String,
    pub rows: usize,
    pub answered: usize,
    /// Rows answered 否 (form, approval, purpose) or 有 (anomaly).
    pub anomalies: Vec<WorksheetAnswer>,
    pub run_dir: PathBuf,
    /// SHA-256 of the returned file.
    pub file_sha256: String,
    /// What it records once it is taken whole ([`Pending::record`]).
    pub pending: Pending,
}

/// What a return writes to the state database, held until the return is
/// taken whole (checked, its investigation record made, kept in the
/// archive): a return that fails on the way records nothing.
#[derive(Debug, Clone)]
pub enum Pending {
    Worksheet {
        ret: WorksheetReturn,
        answers: Vec<WorksheetAnswer>,
        /// 異常查詢's answers and sign-off.
        follow_up: Option<(Decisions, crate::store::SignOff)>,
    },
    Table {
        job: &'static str,
        run_id: String,
        unit_id: String,
        received_at: String,
        file_sha256: String,
        decisions: Decisions,
        done: &'static str,
        sign_off: crate::store::SignOff,
    },
}

impl Pending {
    /// Writes what the return said.
    pub fn record(&self, store: &mut Store) -> Result<(), ReturnError> {
        match self {
            Pending::Worksheet {
                ret,
                answers,
                follow_up,
            } => {
                store.record_worksheet(ret, answers)?;
                if let Some((decisions, sign_off)) = follow_up {
                    let returned = Returning {
                        run_id: &ret.run_id,
                        unit_id: &ret.unit_id,
                        received_at: &ret.received_at,
                        file_sha256: &ret.file_sha256,
                        sign_off: sign_off.clone(),
                    };
                    record_decisions(store, FOLLOW_UP_JOB, &returned, decisions, "處理情形")?;
                }
            }
            Pending::Table {
                job,
                run_id,
                unit_id,
                received_at,
                file_sha256,
                decisions,
                done,
                sign_off,
            } => {
                let returned = Returning {
                    run_id,
                    unit_id,
                    received_at,
                    file_sha256,
                    sign_off: sign_off.clone(),
                };
                record_decisions(store, job, &returned, decisions, done)?;
            }
        }
        Ok(())
    }
}

/// A cell as ingest reads it, trimmed: the same text for the original and
/// for a copy Excel saved again.
fn text(d: &Data) -> String {
    crate::ingest::read::cell_text(d).trim().to_owned()
}

/// A sheet's cells, row by row.
type Rows = Vec<Vec<Data>>;

/// A workbook: `bytes` (a return, decrypted), or the file at `path`.
type Book = Xlsx<std::io::Cursor<Vec<u8>>>;

fn book(path: &Path, bytes: Option<&[u8]>) -> Result<Book, ReturnError> {
    let bytes = match bytes {
        Some(b) => b.to_vec(),
        None => std::fs::read(path).map_err(|error| ReturnError::Io {
            file: path.to_owned(),
            error,
        })?,
    };
    Xlsx::new(std::io::Cursor::new(bytes)).map_err(|e| ReturnError::Unreadable {
        file: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A sheet's cells, row by row; `None` when the workbook has no such sheet.
fn sheet_rows(wb: &mut Book, name: &str) -> Option<Rows> {
    let range = wb.worksheet_range(name).ok()?;
    Some(range.rows().map(<[Data]>::to_vec).collect())
}

/// The summary and the worksheet of a workbook: `bytes` (a return,
/// decrypted), or the file at `path`.
fn sheets(path: &Path, bytes: Option<&[u8]>, sheet: &str) -> Result<(Rows, Rows), ReturnError> {
    let mut wb = book(path, bytes)?;
    let mut get = |name: &str| {
        sheet_rows(&mut wb, name).ok_or_else(|| ReturnError::NoSheet {
            file: path.to_owned(),
            sheet: name.to_owned(),
        })
    };
    Ok((get(SheetName::Summary.as_str())?, get(sheet)?))
}

/// A unit's key as a return names it: an agency id that could name a file
/// (not `../reports/KPB`), or its second review's (`KPB:review`, whose
/// investigation record names it so).
fn safe_key(id: &str) -> bool {
    let (unit, _) = crate::report::unit_of_key(id);
    crate::config::is_safe_id(unit)
}

/// The run and unit a returned workbook names on its summary, the run's
/// folder (a sealed run of `job` in the archive) and the workbook the run
/// sent the unit.
fn locate(
    file: &Path,
    summary: &[Vec<Data>],
    archive_dir: &Path,
    job: Job,
) -> Result<(String, String, archive::RunFolder, PathBuf), ReturnError> {
    let path = || file.to_owned();
    let run_id = summary_value(summary, RUN_ID_LABEL)
        .ok_or_else(|| ReturnError::NotOurs { file: path() })?;
    let unit_id = unit_on(file, summary)?;
    // A workbook the chief administrator fills in is filed under the
    // chief's key: its original is the chief's, never the unit's.
    let unit_id = if chief_fills(summary) {
        crate::report::chief_key(&unit_id)
    } else {
        unit_id
    };
    let run_dir = archive::RunFolder::find(archive_dir, job, &run_id)
        .map_err(|error| ReturnError::Io {
            file: archive_dir.to_owned(),
            error,
        })?
        .ok_or_else(|| ReturnError::UnknownRun {
            file: path(),
            run_id: run_id.clone(),
            archive: archive_dir.to_owned(),
        })?;
    let original = run_dir
        .reports()
        .join(archive::RunFolder::workbook_name(Some(&unit_id)));
    Ok((run_id, unit_id, run_dir, original))
}

/// The unit a workbook's summary names beside [`UNIT_LABEL`]. An agency
/// id names files: one that could not be one (`../reports/KPB`) is no
/// agency.
fn unit_on(file: &Path, summary: &[Vec<Data>]) -> Result<String, ReturnError> {
    let cell = summary_value(summary, UNIT_LABEL).unwrap_or_default();
    match crate::report::unit_id_in(&cell).filter(|id| safe_key(id)) {
        Some(id) => Ok(id.to_owned()),
        None => Err(ReturnError::NoAgency {
            file: file.to_owned(),
            cell,
        }),
    }
}

/// The most characters an answer may have: what a returned cell says is
/// quoted into the investigation record and the ethics unit's mail, whose
/// cells hold at most 32,767 (a return of 32,767 was recorded, then its
/// investigation record could not be written).
pub const ANSWER_MAX_CHARS: usize = 2_000;

/// Checks a returned sheet against the one the run sent: the same header,
/// as many rows, every cell the tool wrote unchanged, every choice one of
/// its drop-down's. Returns the header and the returned data rows.
fn check_rows<'r>(
    file: &Path,
    sheet: &'static str,
    rows: &'r [Vec<Data>],
    orig_rows: &[Vec<Data>],
    inputs: &[(&'static str, Input)],
) -> Result<(Vec<String>, Vec<&'r Vec<Data>>), ReturnError> {
    let check = SheetCheck { file, sheet };
    let (header, orig_header) = (header_of(rows), header_of(orig_rows));
    if header != orig_header {
        return Err(ReturnError::ColumnsChanged {
            file: file.to_owned(),
            sheet,
            got: header,
            want: orig_header,
        });
    }
    let (data, tail_at) = table_body(rows);
    let (orig, orig_tail_at) = table_body(orig_rows);
    if data.len() != orig.len() {
        return Err(ReturnError::RowCount {
            file: file.to_owned(),
            sheet,
            got: data.len(),
            want: orig.len(),
        });
    }
    for (i, (got, want)) in data.iter().zip(&orig).enumerate() {
        let row = HEADER_ROW + 2 + i;
        check.tool_cells(row, &orig_header, inputs, got, want)?;
        for (h, kind) in inputs {
            check.answer(row, h, *kind, cell(&orig_header, got, h))?;
        }
    }
    // Below the table nothing but the sign-off's answers may differ from
    // what was sent: no row added after a gap, no label changed.
    let tail = rows.get(tail_at..).unwrap_or_default();
    let orig_tail = orig_rows.get(orig_tail_at..).unwrap_or_default();
    check.below_table(tail_at, tail, orig_tail)?;
    Ok((orig_header, data))
}

/// A sheet's header row, as text.
fn header_of(rows: &[Vec<Data>]) -> Vec<String> {
    rows.get(HEADER_ROW)
        .map(|r| r.iter().map(text).collect())
        .unwrap_or_default()
}

/// A sheet's table rows, which run to its first blank row (below it is
/// the sign-off), and the row where what is below begins.
fn table_body(rows: &[Vec<Data>]) -> (Vec<&Vec<Data>>, usize) {
    let blank = |r: &Vec<Data>| r.iter().all(|c| matches!(c, Data::Empty));
    let after = rows.get(HEADER_ROW + 1..).unwrap_or_default();
    let n = after.iter().take_while(|r| !blank(r)).count();
    (after[..n].iter().collect(), HEADER_ROW + 1 + n)
}

/// The returned sheet being checked, which every refusal names.
struct SheetCheck<'a> {
    file: &'a Path,
    sheet: &'static str,
}

impl SheetCheck<'_> {
    /// Refuses a change to a cell the tool wrote on (1-based) `row`: any
    /// column of `header` that is not one of `inputs`.
    fn tool_cells(
        &self,
        row: usize,
        header: &[String],
        inputs: &[(&'static str, Input)],
        got: &[Data],
        want: &[Data],
    ) -> Result<(), ReturnError> {
        let input = |h: &str| inputs.iter().any(|(i, _)| *i == h);
        for (c, h) in header.iter().enumerate().filter(|(_, h)| !input(h)) {
            let g = got.get(c).map(text).unwrap_or_default();
            let w = want.get(c).map(text).unwrap_or_default();
            if g != w {
                return Err(ReturnError::CellChanged {
                    file: self.file.to_owned(),
                    sheet: self.sheet,
                    row,
                    column: h.clone(),
                    was: w,
                    now: g,
                });
            }
        }
        Ok(())
    }

    /// Refuses an answer `v` in input column `h` on `row`: one too long,
    /// a date that is none, a choice not of its drop-down's.
    fn answer(
        &self,
        row: usize,
        h: &'static str,
        kind: Input,
        v: String,
    ) -> Result<(), ReturnError> {
        self.length(row, h, &v)?;
        if matches!(kind, Input::Date) {
            self.date(row, h, v.clone())?;
        }
        match kind {
            Input::Choice(ok) if !v.is_empty() && !ok.contains(&v.as_str()) => {
                Err(ReturnError::NotAChoice {
                    file: self.file.to_owned(),
                    sheet: self.sheet,
                    row,
                    column: h,
                    value: v,
                    allowed: ok,
                })
            }
            _ => Ok(()),
        }
    }

    /// Refuses an answer longer than [`ANSWER_MAX_CHARS`].
    fn length(&self, row: usize, column: &str, v: &str) -> Result<(), ReturnError> {
        let chars = v.chars().count();
        if chars > ANSWER_MAX_CHARS {
            return Err(ReturnError::TooLong {
                file: self.file.to_owned(),
                sheet: self.sheet,
                row,
                column: column.to_owned(),
                chars,
                max: ANSWER_MAX_CHARS,
            });
        }
        Ok(())
    }

    /// Refuses a date answer that is not empty and not a day.
    fn date(&self, row: usize, column: &str, v: String) -> Result<(), ReturnError> {
        if !v.is_empty() && answer_date(&v).is_none() {
            return Err(ReturnError::NotADate {
                file: self.file.to_owned(),
                sheet: self.sheet,
                row,
                column: column.to_owned(),
                value: v,
            });
        }
        Ok(())
    }

    /// Refuses a change below the table (from row `tail_at`, 0-based)
    /// other than the sign-off's answers, which must be answers.
    fn below_table(
        &self,
        tail_at: usize,
        tail: &[Vec<Data>],
        orig_tail: &[Vec<Data>],
    ) -> Result<(), ReturnError> {
        for i in 0..tail.len().max(orig_tail.len()) {
            let (got, want) = (tail.get(i), orig_tail.get(i));
            let row = tail_at + i + 1;
            let width = got.map_or(0, Vec::len).max(want.map_or(0, Vec::len));
            let label = want.and_then(|r| r.first()).map(text);
            let signs = label
                .as_ref()
                .is_some_and(|l| SIGN_OFF.iter().any(|(s, _)| s == l));
            let at = |r: Option<&Vec<Data>>, c: usize| {
                r.and_then(|r| r.get(c)).map(text).unwrap_or_default()
            };
            for c in 0..width {
                let (g, w) = (at(got, c), at(want, c));
                // The sign-off's answer is the merged cell's first; its
                // day must be a day.
                if signs && c == 2 {
                    let label = label.clone().unwrap_or_default();
                    self.length(row, &label, &g)?;
                    if label == SIGN_OFF[2].0 {
                        self.date(row, &label, g)?;
                    }
                    continue;
                }
                if g != w {
                    return Err(ReturnError::CellChanged {
                        file: self.file.to_owned(),
                        sheet: self.sheet,
                        row,
                        column: format!("（表格下方）第 {} 欄", c + 1),
                        was: w,
                        now: g,
                    });
                }
            }
        }
        Ok(())
    }
}

pub use crate::report::TOKEN_PROPERTY;

/// The key the return tokens are made with: 32 random bytes in
/// `<state>/return-key` (mode 0600, outside the archive and never mailed),
/// made on first use.
fn return_key(state: &Path) -> std::io::Result<Vec<u8>> {
    let file = state.join("return-key");
    match std::fs::read(&file) {
        Ok(k) if k.len() == 32 => return Ok(k),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{}: not a key of 32 bytes",
                file.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(state)?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&file) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(&key)?;
            f.sync_all()?;
            Ok(key.to_vec())
        }
        // Another process made it first: theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(&file),
        Err(e) => Err(e),
    }
}

/// HMAC-SHA-256 (RFC 2104) of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| block.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The token a workbook sent to `key` (a unit, or its second review) by
/// run `run_id` carries, and its return must carry back: an HMAC of the
/// run, the key and what it is under the installation's key. A unit
/// cannot make another's, so a workbook relabelled as another unit's is
/// refused however alike the two are.
pub fn return_token(state: &Path, run_id: &str, key: &str, what: &str) -> std::io::Result<String> {
    let k = return_key(state)?;
    let mac = hmac_sha256(
        &k,
        format!("webir-audit/return/v1\n{run_id}\n{key}\n{what}\n").as_bytes(),
    );
    Ok(mac[..16].iter().map(|b| format!("{b:02x}")).collect())
}

/// The return token in a workbook's properties, if it has one.
pub fn token_in(workbook: &[u8]) -> Option<String> {
    use std::io::Read as _;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(workbook)).ok()?;
    let mut xml = String::new();
    zip.by_name("docProps/custom.xml")
        .ok()?
        .take(1 << 20)
        .read_to_string(&mut xml)
        .ok()?;
    let at = xml.find(&format!("name=\"{TOKEN_PROPERTY}\""))?;
    let rest = &xml[at..];
    let value = rest.find("<vt:lpwstr>")? + "<vt:lpwstr>".len();
    let end = rest[value..].find('<')?;
    Some(rest[value..value + end].to_owned())
}

/// The unit (or second review) a returned workbook says it is from:
/// its summary's 機關 and, for a sample worksheet, whether it is the
/// second review. Trusted only once its token matched
/// ([`check_token`]); read first to see whose password may open it.
pub fn claimed_key(file: &Path, workbook: &[u8]) -> Result<String, ReturnError> {
    let summary_sheet = SheetName::Summary.as_str();
    let summary = sheet_rows(&mut book(file, Some(workbook))?, summary_sheet).ok_or_else(|| {
        ReturnError::NoSheet {
            file: file.to_owned(),
            sheet: summary_sheet.to_owned(),
        }
    })?;
    let unit = unit_on(file, &summary)?;
    Ok(if second_review(&summary) {
        crate::report::review_key(&unit)
    } else if chief_fills(&summary) {
        crate::report::chief_key(&unit)
    } else {
        unit
    })
}

/// Whether a workbook's summary says it is a second review of the
/// officers' own accounts.
fn second_review(summary: &[Vec<Data>]) -> bool {
    summary_value(summary, REVIEW_LABEL)
        .is_some_and(|v| v.starts_with(crate::report::SECOND_REVIEW))
}

/// Whether a workbook's summary says the chief administrator fills it in.
fn chief_fills(summary: &[Vec<Data>]) -> bool {
    summary_value(summary, crate::report::CHIEF_LABEL).as_deref()
        == Some(crate::report::CHIEF_FILLS)
}

/// Refuses a return whose token is not the one the workbook it claims to
/// answer was sent with (a workbook sent before tokens has none to match).
fn check_token(file: &Path, got: &[u8], original: &Path, unit: &str) -> Result<(), ReturnError> {
    let want = std::fs::read(original).ok().and_then(|b| token_in(&b));
    match want {
        Some(w) if token_in(got).as_deref() != Some(w.as_str()) => Err(ReturnError::NotThisUnits {
            file: file.to_owned(),
            unit: unit.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// A day as a person writes it in a returned cell: `2026-12-31`,
/// `2026/12/31`, `2026.12.31`, the ROC calendar's `115/12/31` or
/// `115年12月31日`, or a date cell (read with its time, `00:00:00`).
pub fn answer_date(v: &str) -> Option<NaiveDate> {
    let day = v.split_whitespace().next()?;
    let day = day.replace(['年', '月', '/', '.'], "-").replace('日', "");
    let mut parts = day.split('-').map(|p| p.parse::<i32>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() {
        return None;
    }
    // The ROC calendar counts from 1912.
    let y = if (1..1000).contains(&y) { y + 1911 } else { y };
    NaiveDate::from_ymd_opt(y, u32::try_from(m).ok()?, u32::try_from(d).ok()?)
}

/// The answer beside `label` in a sheet's sign-off ([`SIGN_OFF`]).
fn signed(rows: &[Vec<Data>], label: &str) -> String {
    rows.iter()
        .skip(HEADER_ROW + 1)
        .find(|r| r.first().map(text).as_deref() == Some(label))
        .and_then(|r| r.get(2).map(text))
        .unwrap_or_default()
}

/// The value beside `label` in the summary sheet.
fn summary_value(summary: &[Vec<Data>], label: &str) -> Option<String> {
    summary
        .iter()
        .find(|r| r.first().map(text).as_deref() == Some(label))
        .and_then(|r| r.get(1).map(text))
}

/// Reads a returned worksheet (`workbook`: its bytes, decrypted if it came
/// encrypted; `file_sha256`: of the file as received), checks it against
/// the archived original and records its answers. Unknown or altered
/// workbooks are refused.
pub fn ingest_returned(
    file: &Path,
    workbook: &[u8],
    file_sha256: &str,
    archive_dir: &Path,
    received_at: &str,
) -> Result<Returned, ReturnError> {
    let (summary, rows) = sheets(file, Some(workbook), LAYOUT.sheet)?;
    let (run_id, unit_id, run_dir, original) =
        locate(file, &summary, archive_dir, Job::SampleAudit)?;
    // A second review of the officers' own accounts is the reviewer's
    // return, filed, chased and answered apart from the officer's.
    let (unit_id, original) = if second_review(&summary) {
        let key = crate::report::review_key(&unit_id);
        let original = run_dir
            .reports()
            .join(archive::RunFolder::workbook_name(Some(&key)));
        (key, original)
    } else {
        (unit_id, original)
    };
    check_token(file, workbook, &original, &unit_id)?;
    let (orig_summary, orig_rows) = sheets(&original, None, LAYOUT.sheet)?;
    check_summary_kept(file, &run_id, &summary, &orig_summary)?;
    let inputs = worksheet_inputs(&orig_rows);
    let (orig_header, data) = check_rows(file, LAYOUT.sheet, &rows, &orig_rows, &inputs)?;
    let follow_up = check_follow_up(file, workbook, &original)?;
    let answers = worksheet_answers(&orig_header, &data, &rows);
    let answered = answers.iter().filter(|a| !a.anomaly.is_empty()).count();
    let anomalies: Vec<WorksheetAnswer> =
        answers.iter().filter(|a| is_anomaly(a)).cloned().collect();
    let sha = file_sha256.to_owned();
    let pending = Pending::Worksheet {
        ret: WorksheetReturn {
            run_id: run_id.clone(),
            unit_id: unit_id.clone(),
            received_at: received_at.to_owned(),
            file_sha256: sha.clone(),
            rows: answers.len() as u32,
            answered: answered as u32,
            anomalies: anomalies.len() as u32,
        },
        answers: answers.clone(),
        follow_up,
    };
    Ok(Returned {
        pending,
        run_id,
        unit_id,
        rows: answers.len(),
        answered,
        anomalies,
        run_dir: run_dir.dir,
        file_sha256: sha,
    })
}

/// Refuses a returned worksheet whose summary says other than the one
/// the run sent of who audits it or of the sample's digest.
fn check_summary_kept(
    file: &Path,
    run_id: &str,
    summary: &[Vec<Data>],
    orig_summary: &[Vec<Data>],
) -> Result<(), ReturnError> {
    // Who audits is what the run sent: a return cannot move itself from
    // the officer's worksheet to the reviewer's or back.
    let (was, now) = (
        summary_value(orig_summary, REVIEW_LABEL),
        summary_value(summary, REVIEW_LABEL),
    );
    if was != now {
        return Err(ReturnError::CellChanged {
            file: file.to_owned(),
            sheet: SheetName::Summary.as_str(),
            row: 0,
            column: REVIEW_LABEL.to_owned(),
            was: was.unwrap_or_default(),
            now: now.unwrap_or_default(),
        });
    }
    let digest = summary_value(summary, SAMPLE_DIGEST_LABEL);
    let want = summary_value(orig_summary, SAMPLE_DIGEST_LABEL);
    if digest != want {
        return Err(ReturnError::DigestChanged {
            file: file.to_owned(),
            run_id: run_id.to_owned(),
            got: digest,
            want,
        });
    }
    Ok(())
}

/// The inputs of the worksheet as sent (`orig_rows`). A worksheet sent
/// before the sign-off asked who and when once still has those inputs on
/// every row: they are inputs there too.
fn worksheet_inputs(orig_rows: &[Vec<Data>]) -> Vec<(&'static str, Input)> {
    let sent_with = |h: &str| {
        orig_rows
            .get(HEADER_ROW)
            .is_some_and(|r| r.iter().any(|c| text(c) == h))
    };
    LAYOUT
        .inputs
        .iter()
        .chain(
            layout::SAMPLE_WORKSHEET_BEFORE_SIGN_OFF
                .iter()
                .filter(|(h, _)| sent_with(h)),
        )
        .copied()
        .collect()
}

/// What the unit did about each query finding (異常查詢, in the same
/// workbook as the worksheet), and its sign-off: checked as the worksheet
/// is, before anything is recorded. `None` when the run sent no such
/// sheet.
fn check_follow_up(
    file: &Path,
    workbook: &[u8],
    original: &Path,
) -> Result<Option<(Decisions, crate::store::SignOff)>, ReturnError> {
    match (
        sheet_rows(&mut book(file, Some(workbook))?, FOLLOW_UP_SHEET),
        sheet_rows(&mut book(original, None)?, FOLLOW_UP_SHEET),
    ) {
        (_, None) => Ok(None),
        (None, Some(_)) => Err(ReturnError::NoSheet {
            file: file.to_owned(),
            sheet: FOLLOW_UP_SHEET.to_owned(),
        }),
        (Some(got), Some(sent)) => {
            let (header, rows) =
                check_rows(file, FOLLOW_UP_SHEET, &got, &sent, layout::FOLLOW_UP_INPUTS)?;
            Ok(Some((follow_ups(&header, &rows), sign_off_of(&got))))
        }
    }
}

/// The answers of a returned worksheet's `data` rows. Columns are found
/// by their header in the workbook the run sent (`header`), so a
/// worksheet written before a column was added still reads back; who
/// audited and when is asked once, in the sign-off below the table
/// (`rows`: the whole sheet).
fn worksheet_answers(
    header: &[String],
    data: &[&Vec<Data>],
    rows: &[Vec<Data>],
) -> Vec<WorksheetAnswer> {
    let col = |got: &Vec<Data>, h: &str| cell(header, got, h);
    let (auditor, audit_date) = (signed(rows, SIGN_OFF[0].0), signed(rows, SIGN_OFF[2].0));
    // The sign-off's, or a worksheet sent before it had one, the row's.
    let signed_or = |signed: &String, got: &Vec<Data>, h: &str| {
        if signed.is_empty() {
            col(got, h)
        } else {
            signed.clone()
        }
    };
    data.iter()
        .enumerate()
        .map(|(i, got)| WorksheetAnswer {
            seq: i as u32 + 1,
            // The account, then its holder beside it and its agency below.
            account_id: col(got, "帳號")
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned(),
            queried_at: col(got, "查詢時間"),
            query_item: col(got, "查詢項目"),
            subject: col(got, "被查詢人"),
            form_filled: col(got, "紀錄表已填具"),
            approved: col(got, "主管事前核可"),
            matches: col(got, "事由與查詢相符"),
            anomaly: col(got, "異常"),
            note: col(got, "說明"),
            auditor: signed_or(&auditor, got, "稽核人員"),
            audit_date: signed_or(&audit_date, got, "稽核日期"),
        })
        .collect()
}

/// Whether an answer confirms an anomaly: 有, or 否 to the form, the
/// approval or the purpose.
fn is_anomaly(a: &WorksheetAnswer) -> bool {
    a.anomaly == "有"
        || [&a.form_filled, &a.approved, &a.matches]
            .iter()
            .any(|v| *v == "否")
}

/// The sheet of a sample audit's workbook where the unit writes what it
/// did about each query finding.
pub const FOLLOW_UP_SHEET: &str = SheetName::Queries.as_str();

/// The job its answers are recorded under, apart from the worksheet's.
pub const FOLLOW_UP_JOB: &str = "sample-audit-follow-up";

/// Which return is being recorded.
struct Returning<'a> {
    run_id: &'a str,
    unit_id: &'a str,
    received_at: &'a str,
    file_sha256: &'a str,
    sign_off: crate::store::SignOff,
}

/// A returned sheet's sign-off, its day as `YYYY-MM-DD` (checked a day
/// by [`check_rows`]).
fn sign_off_of(rows: &[Vec<Data>]) -> crate::store::SignOff {
    crate::store::SignOff {
        filled_by: signed(rows, SIGN_OFF[0].0),
        head: signed(rows, SIGN_OFF[1].0),
        day: answer_date(&signed(rows, SIGN_OFF[2].0))
            .map(|d| d.to_string())
            .unwrap_or_default(),
    }
}

/// A returned table's rows: each row's key and its answers by column.
type Decisions = Vec<(String, std::collections::BTreeMap<String, String>)>;

/// Records `decisions` returned to a run of `job`; returns how many rows
/// were answered (their `done` column filled in).
fn record_decisions(
    store: &mut Store,
    job: &str,
    r: &Returning<'_>,
    decisions: &Decisions,
    done: &str,
) -> Result<usize, ReturnError> {
    let answered = answered_in(decisions, done);
    store.record_return(
        &crate::store::TableReturn {
            job: job.to_owned(),
            run_id: r.run_id.to_owned(),
            unit_id: r.unit_id.to_owned(),
            received_at: r.received_at.to_owned(),
            file_sha256: r.file_sha256.to_owned(),
            rows: decisions.len() as u32,
            answered: answered as u32,
            sign_off: r.sign_off.clone(),
        },
        &decisions
            .iter()
            .map(|(k, a)| (k.clone(), serde_json::to_string(a).unwrap_or_default()))
            .collect::<Vec<_>>(),
    )?;
    Ok(answered)
}

/// How many of `decisions` have their `done` column filled in.
fn answered_in(decisions: &Decisions, done: &str) -> usize {
    decisions
        .iter()
        .filter(|(_, a)| a.get(done).is_some_and(|v| !v.is_empty()))
        .count()
}

/// The text of `row` in the column headed `h` of `header` (columns are
/// found by their header in the workbook the run sent, so one written
/// before a column was added still reads back).
fn cell(header: &[String], row: &[Data], h: &str) -> String {
    header
        .iter()
        .position(|x| x == h)
        .and_then(|c| row.get(c))
        .map(text)
        .unwrap_or_default()
}

/// The key of a 異常查詢 row (`說明|帳號`: what and whose, the decision a
/// later workbook looks up) and its answers.
fn follow_ups(header: &[String], rows: &[&Vec<Data>]) -> Decisions {
    let col = |got: &Vec<Data>, h: &str| cell(header, got, h);
    rows.iter()
        .map(|got| {
            (
                format!("{}|{}", col(got, "說明"), col(got, "帳號")),
                layout::FOLLOW_UP_INPUTS
                    .iter()
                    .map(|(h, _)| ((*h).to_owned(), col(got, h)))
                    .collect(),
            )
        })
        .collect()
}

/// A kind of workbook, besides the sample worksheet, that a unit fills in
/// and sends back: the sheet, its inputs, the column naming a row and the
/// column that says the row is done.
#[derive(Debug, Clone, Copy)]
pub struct TableKind {
    /// The job of the run it belongs to (the one its 執行編號 names).
    pub job: Job,
    /// The due item it answers.
    pub due_job: &'static str,
    /// The name its answers are recorded under (`table_returns.job`)
    /// when it is not its run's job ([`TableKind::recorded_as`]).
    pub recorded_apart: Option<&'static str>,
    /// Where the workbook as sent is kept: the run's `reports/`, or, for
    /// one a return made, beside that return (`archive::kept_file`).
    pub kept_as: Option<&'static str>,
    /// The kind's title, as the summary's title names it.
    pub title: &'static str,
    pub sheet: &'static str,
    pub inputs: &'static [(&'static str, Input)],
    pub key: &'static str,
    pub done: &'static str,
}

impl TableKind {
    /// The job its answers are recorded under (`table_returns.job`): its
    /// run's, but for the investigation and follow-up records a return
    /// opens, which must not read as that return's own answers.
    pub fn recorded_as(&self) -> &'static str {
        self.recorded_apart.unwrap_or(self.job.as_str())
    }
}

/// The account review's decisions (point 6(2)), the internal audit's
/// results (point 6(3)), the investigation record, and what a unit did
/// about each finding of a query check.
pub const TABLE_KINDS: &[TableKind] = &[
    TableKind {
        job: Job::AccountReview,
        recorded_apart: None,
        due_job: Job::AccountReview.as_str(),
        kept_as: None,
        title: ReportKind::AccountReview.title(),
        sheet: SheetName::AccountReview.as_str(),
        inputs: layout::ACCOUNT_REVIEW_INPUTS,
        key: "帳號",
        done: "處理結果",
    },
    TableKind {
        job: Job::InternalAudit,
        recorded_apart: None,
        due_job: Job::InternalAudit.as_str(),
        kept_as: None,
        title: ReportKind::InternalAudit.title(),
        sheet: SheetName::InternalAudit.as_str(),
        inputs: layout::INTERNAL_AUDIT_INPUTS,
        key: "查核項目",
        done: "查核結果",
    },
    INVESTIGATION_KIND,
    INTERNAL_INVESTIGATION_KIND,
    TableKind {
        job: Job::ExternalAudit,
        recorded_apart: None,
        due_job: Job::ExternalAudit.as_str(),
        kept_as: None,
        title: crate::report::OFFICER_REVIEW_TITLE,
        sheet: SheetName::OfficerAccounts.as_str(),
        inputs: layout::ACCOUNT_REVIEW_INPUTS,
        key: "帳號",
        done: "處理結果",
    },
    EXTERNAL_RECORD_KIND,
    EXTERNAL_FOLLOW_UP_KIND,
    TableKind {
        job: Job::QueryCheck,
        recorded_apart: None,
        due_job: Job::QueryCheck.as_str(),
        kept_as: None,
        title: ReportKind::QueryCheck.title(),
        sheet: SheetName::Queries.as_str(),
        inputs: layout::FOLLOW_UP_INPUTS,
        key: "帳號",
        done: "處理情形",
    },
];

/// The investigation record's name beside the return that made it.
pub const INVESTIGATION_FILE: &str = "調查紀錄.xlsx";

/// The investigation record (point 6(3)) a worksheet's confirmed
/// anomalies open: it belongs to the sample audit's run.
pub const INVESTIGATION_KIND: TableKind = TableKind {
    job: Job::SampleAudit,
    recorded_apart: None,
    due_job: "investigation",
    kept_as: Some(INVESTIGATION_FILE),
    title: layout::INVESTIGATION.sheet,
    sheet: layout::INVESTIGATION.sheet,
    inputs: layout::INVESTIGATION.inputs,
    key: "序號",
    done: "結論",
};

/// The investigation record (point 6(3)) a returned internal audit's
/// 不符合 opens: it belongs to the internal audit's run.
pub const INTERNAL_INVESTIGATION_KIND: TableKind = TableKind {
    job: Job::InternalAudit,
    recorded_apart: Some("internal-audit-investigation"),
    due_job: "internal-audit-investigation",
    kept_as: Some(INVESTIGATION_FILE),
    title: "內部稽核調查紀錄",
    sheet: layout::INTERNAL_INVESTIGATION.sheet,
    inputs: layout::INTERNAL_INVESTIGATION.inputs,
    key: "序號",
    done: "結論",
};

/// The chief administrator's record of an external audit of one unit
/// (points 4(2), 6(4)).
pub const EXTERNAL_RECORD_KIND: TableKind = TableKind {
    job: Job::ExternalAudit,
    recorded_apart: None,
    due_job: Job::ExternalAudit.as_str(),
    kept_as: None,
    title: crate::report::EXTERNAL_RECORD_TITLE,
    sheet: SheetName::ExternalRecord.as_str(),
    inputs: layout::INTERNAL_AUDIT_INPUTS,
    key: "查核項目",
    done: "查核結果",
};

/// The record of what a unit did about what its external audit found
/// 不符合: made when the chief administrator's record comes back, kept
/// beside it, returned by the unit.
pub const EXTERNAL_FOLLOW_UP_KIND: TableKind = TableKind {
    job: Job::ExternalAudit,
    recorded_apart: Some("external-audit-follow-up"),
    due_job: "external-audit-follow-up",
    kept_as: Some(EXTERNAL_FOLLOW_UP_FILE),
    title: "外部稽核改善紀錄",
    sheet: layout::EXTERNAL_FOLLOW_UP.sheet,
    inputs: layout::EXTERNAL_FOLLOW_UP.inputs,
    key: "序號",
    done: "改善措施",
};

/// The external audit's follow-up record's name beside the chief's return.
pub const EXTERNAL_FOLLOW_UP_FILE: &str = "外部稽核改善紀錄.xlsx";

/// The investigation record a due item of `due_job` asks for, if it asks
/// for one.
pub fn investigation_kind(due_job: &str) -> Option<&'static TableKind> {
    [
        &INVESTIGATION_KIND,
        &INTERNAL_INVESTIGATION_KIND,
        &EXTERNAL_FOLLOW_UP_KIND,
    ]
    .into_iter()
    .find(|k| k.due_job == due_job)
}

/// What a returned workbook is: the sample worksheet, or one of
/// [`TABLE_KINDS`], by its summary's title.
#[derive(Debug, Clone, Copy)]
pub enum ReturnKind {
    Sample,
    Table(&'static TableKind),
}

/// Tells what kind of workbook `workbook` is.
pub fn kind_of(file: &Path, workbook: &[u8]) -> Result<ReturnKind, ReturnError> {
    let mut wb =
        Xlsx::new(std::io::Cursor::new(workbook)).map_err(|e| ReturnError::Unreadable {
            file: file.to_owned(),
            reason: e.to_string(),
        })?;
    let title = wb
        .worksheet_range(SheetName::Summary.as_str())
        .ok()
        .and_then(|r| r.get_value((0, 0)).map(text))
        .unwrap_or_default();
    // "健保WebIR查詢稽核 <kind>：<unit>" (a unit's workbook).
    let kind = title
        .split_once(' ')
        .map_or("", |(_, rest)| rest.split(['：', ' ']).next().unwrap_or(""));
    if kind == LAYOUT.sheet {
        return Ok(ReturnKind::Sample);
    }
    if let Some(k) = TABLE_KINDS.iter().find(|k| kind == k.title) {
        return Ok(ReturnKind::Table(k));
    }
    // No title we wrote: by the sheet a person fills in, so that what is
    // wrong with the file is said by the checks that read it.
    let names = wb.sheet_names();
    if names.iter().any(|n| n == LAYOUT.sheet) {
        return Ok(ReturnKind::Sample);
    }
    TABLE_KINDS
        .iter()
        .find(|k| names.iter().any(|n| n == k.sheet))
        .map(ReturnKind::Table)
        .ok_or_else(|| ReturnError::NotOurs {
            file: file.to_owned(),
        })
}

/// What a returned table said.
#[derive(Debug, Clone)]
pub struct TableReturned {
    pub kind: &'static TableKind,
    pub run_id: String,
    pub unit_id: String,
    pub rows: usize,
    /// Rows whose `done` column is filled in.
    pub answered: usize,
    pub run_dir: PathBuf,
    pub file_sha256: String,
    /// Per row: its key and every input, by header.
    pub decisions: Vec<(String, std::collections::BTreeMap<String, String>)>,
    /// Per row: every cell, the tool's and the inputs, by header.
    pub cells: Vec<std::collections::BTreeMap<String, String>>,
    /// What it records once it is taken whole.
    pub pending: Pending,
}

/// Reads a returned account review or internal audit, checks it against
/// the workbook the run sent (as the sample worksheet) and records its
/// answers.
pub fn ingest_table_return(
    file: &Path,
    workbook: &[u8],
    file_sha256: &str,
    kind: &'static TableKind,
    archive_dir: &Path,
    received_at: &str,
) -> Result<TableReturned, ReturnError> {
    let (summary, rows) = sheets(file, Some(workbook), kind.sheet)?;
    let (run_id, unit_id, run_dir, mut original) = locate(file, &summary, archive_dir, kind.job)?;
    if let Some(name) = kind.kept_as {
        // Kept beside the return that made it: the unit's, or the chief
        // administrator's record of the unit.
        original = archive::kept_file(&run_dir, &unit_id, name)
            .or_else(|| archive::kept_file(&run_dir, &crate::report::chief_key(&unit_id), name))
            .ok_or_else(|| ReturnError::UnknownRun {
                file: file.to_owned(),
                run_id: run_id.clone(),
                archive: archive_dir.to_owned(),
            })?;
    }
    check_token(file, workbook, &original, &unit_id)?;
    let (_, orig_rows) = sheets(&original, None, kind.sheet)?;
    let (header, data) = check_rows(file, kind.sheet, &rows, &orig_rows, kind.inputs)?;
    let col = |got: &Vec<Data>, h: &str| cell(&header, got, h);
    let decisions: Decisions = data
        .iter()
        .map(|got| {
            (
                col(got, kind.key),
                kind.inputs
                    .iter()
                    .map(|(h, _)| ((*h).to_owned(), col(got, h)))
                    .collect(),
            )
        })
        .collect();
    let cells = data
        .iter()
        .map(|got| header.iter().map(|h| (h.clone(), col(got, h))).collect())
        .collect();
    let answered = answered_in(&decisions, kind.done);
    let pending = Pending::Table {
        job: kind.recorded_as(),
        run_id: run_id.clone(),
        unit_id: unit_id.clone(),
        received_at: received_at.to_owned(),
        file_sha256: file_sha256.to_owned(),
        decisions: decisions.clone(),
        done: kind.done,
        sign_off: sign_off_of(&rows),
    };
    Ok(TableReturned {
        pending,
        kind,
        run_id,
        unit_id,
        rows: decisions.len(),
        answered,
        run_dir: run_dir.dir,
        file_sha256: file_sha256.to_owned(),
        decisions,
        cells,
    })
}
