//! Ingest: every export in the inbox into the five canonical polars tables,
//! plus a rejects table and a manifest of the files used.
//!
//! Owns file discovery, hashing and de-duplication, and the split of each
//! file's rows into loaded, rejected and skipped. Reading cells is
//! [`read`]'s job, parsing them [`parse`]'s. One bad file is recorded in the
//! manifest and the run goes on; one bad row goes to the rejects table with
//! its file, sheet, row, reason and raw cells. Nothing is dropped silently.

pub mod fast;
pub mod headers;
pub mod overlap;
pub mod parse;
pub mod read;
pub mod snapshot;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::{Config, DateFormat, InputOverride};
use crate::model::Table;
use crate::period::Period;
use headers::HeaderMap;
use parse::{BAD, BLANK, ParseContext, RAW, REASON, SPARSE};
use read::ROW;

/// Why a file could not be ingested. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {detail}")]
    Encoding { file: String, detail: String },
    /// A file the reader refuses as a whole (over a limit, or an
    /// accounting that does not add up).
    #[error("{file}: {detail}")]
    Refused { file: String, detail: String },
    #[error(
        "{file}{}: header row {row} lacks required column(s) {missing}; expected headers: {expected}; found: {found}",
        sheet_suffix(sheet)
    )]
    MissingColumns {
        file: String,
        sheet: Option<String>,
        row: usize,
        missing: String,
        expected: String,
        found: String,
    },
    #[error(
        "{file}{}: header row {row}: columns {first:?} and {second:?} both mean {column}",
        sheet_suffix(sheet)
    )]
    AmbiguousHeader {
        file: String,
        sheet: Option<String>,
        row: usize,
        column: &'static str,
        first: String,
        second: String,
    },
    #[error("{file}: no sheet named {sheet:?}; the workbook has: {available}")]
    NoSuchSheet {
        file: String,
        sheet: String,
        available: String,
    },
    #[error("{file}: cannot open workbook: {message}")]
    Workbook { file: String, message: String },
    #[error("{file}: {source}")]
    Polars { file: String, source: PolarsError },
    #[error(
        "{file}: line {line} has {found} fields but the header has {expected}; an unquoted delimiter inside a value? fix or quote that line"
    )]
    RaggedLine {
        file: String,
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("{file}: unsupported file type; expected .csv, .tsv, .txt, .xlsx, .xls or .ods")]
    UnsupportedType { file: String },
    #[error("{file}: not in a table folder; put it in query_logs/, roster/, hr/ or forms/")]
    Misplaced { file: String },
}

fn sheet_suffix(sheet: &Option<String>) -> String {
    sheet
        .as_ref()
        .map(|s| format!(" sheet {s:?}"))
        .unwrap_or_default()
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    Loaded,
    /// Same SHA-256 as a file already ingested in this run.
    Duplicate {
        of: String,
    },
    Failed {
        error: String,
    },
}

/// The audit-trail record of one input file.
#[derive(Debug, Clone)]
pub struct FileRecord {
    pub table: Option<Table>,
    /// Path relative to the inbox, `/`-separated.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub encoding: String,
    pub sheet: Option<String>,
    pub status: FileStatus,
    pub rows_loaded: usize,
    pub rows_rejected: usize,
    /// Blank rows and footer rows (totals, print notes).
    pub rows_skipped: usize,
    /// Optional columns the file does not have (checks that need one say
    /// they were not checked).
    pub absent_columns: Vec<&'static str>,
    /// Query logs: loaded rows whose record another file also holds.
    pub rows_shared: usize,
    /// Query logs: of those, rows left out because another file's copy of
    /// the record is the one counted (see [`overlap`]).
    pub rows_counted_elsewhere: usize,
    /// Rosters and request-form registers: the day the export shows, and
    /// where that date came from (a register dated before a period ends
    /// cannot explain the period's last queries).
    pub snapshot: Option<snapshot::Snapshot>,
    /// Rosters and registers dated only by their modification time, in a
    /// run that does not take that as their date
    /// ([`Ingested::refuse_modification_dates`]): the file counts as
    /// undated, and nothing the run records names that time.
    pub modified_refused: bool,
    /// The agencies its loaded rows name (sorted): a unit's workbooks list
    /// only the files that hold its agencies' rows; the city-wide one all.
    pub agencies: Vec<String>,
    /// The file as the system knew it while it was read and hashed (the
    /// same before and after): while it still is, its bytes are the ones
    /// hashed, and moving it into the input store need not hash it again.
    /// `None` where it changed during the read, or the system cannot say.
    pub identity: Option<FileIdentity>,
}

/// Whether `path` is a regular file itself (not a link to one).
pub fn is_regular(path: &Path) -> bool {
    irregular(path).is_none()
}

/// What `path` is when it is not a regular file itself, in words for a
/// refusal: a link, a folder, a pipe, a device. `None` for a regular file.
pub fn irregular(path: &Path) -> Option<&'static str> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => None,
        Ok(m) => Some(kind_of(&m)),
        Err(_) => Some("no longer there"),
    }
}

/// What kind of thing `meta` is, in words, for a refusal.
pub fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}

/// What the system says of a file that any write to it, or its
/// replacement, changes: device, inode, size, and modification and
/// status-change times to the nanosecond (the status-change time no user
/// can set back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    /// Its names: a file with another (a hard link elsewhere) can be
    /// written through that one, and is always hashed again.
    links: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileIdentity {
    /// The identity of the file at `path` now (`None` if it cannot be read,
    /// or off Unix).
    pub fn of(path: &Path) -> Option<FileIdentity> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::symlink_metadata(path).ok()?;
            Some(FileIdentity {
                dev: m.dev(),
                ino: m.ino(),
                links: m.nlink(),
                size: m.size(),
                modified: (m.mtime(), m.mtime_nsec()),
                changed: (m.ctime(), m.ctime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            None
        }
    }

    /// Whether the file has no other name (hard link) to be written by.
    pub fn has_one_name(&self) -> bool {
        self.links == 1
    }

    /// Whether `other` is the same file, renamed (a rename sets the
    /// status-change time, and nothing else of these).
    pub fn same_file_renamed(&self, other: &FileIdentity) -> bool {
        (self.dev, self.ino, self.size, self.modified)
            == (other.dev, other.ino, other.size, other.modified)
    }
}

impl FileRecord {
    /// The export's date as records and the terminal state it, if it has
    /// one or had one refused: `2026-07-02 (title row)`.
    pub fn date_note(&self) -> Option<String> {
        match (self.snapshot, self.modified_refused) {
            (Some(s), _) if s.source == snapshot::DateSource::Modified => Some(format!(
                "{} (modification time: no date in its title rows or file name, so the result depends on when the file was copied)",
                s.date
            )),
            (Some(s), _) => Some(format!("{} ({})", s.date, s.source.as_str())),
            (None, true) => Some(
                "undated (no date in its title rows or file name; its modification time is not taken in a sealed audit: rules.accept_modification_dates)".to_owned()
            ),
            (None, false) => None,
        }
    }

    /// The same in Traditional Chinese, for 資料品質.
    pub fn date_note_zh(&self) -> Option<String> {
        match (self.snapshot, self.modified_refused) {
            (Some(s), _) if s.source == snapshot::DateSource::Modified => Some(format!(
                "{}（{}：標題列及檔名未載明日期，結果隨檔案複製時間而異，請於標題列註明製表日期）",
                s.date,
                s.source.label()
            )),
            (Some(s), _) => Some(format!("{}（{}）", s.date, s.source.label())),
            (None, true) => Some(
                "未載明日期（標題列及檔名均無；檔案修改日期隨複製、備份而變動，稽核不予採用）"
                    .to_owned(),
            ),
            (None, false) => None,
        }
    }

    /// Whether the export's date is its file's modification time.
    pub fn dated_by_file_time(&self) -> bool {
        self.snapshot
            .is_some_and(|s| s.source == snapshot::DateSource::Modified)
    }
}

/// The roster column holding the day of the snapshot a row comes from.
pub const SNAPSHOT_DATE: &str = "snapshot_date";

/// Which roster snapshot a run used (see [`snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterUse {
    /// The snapshot's day.
    pub date: chrono::NaiveDate,
    /// Its files.
    pub files: Vec<String>,
    /// Accounts only older snapshots list (reported as removed).
    pub removed_accounts: usize,
}

/// Everything ingest hands the later stages.
#[derive(Debug)]
pub struct Ingested {
    /// Every canonical table, present even when no file fed it.
    pub tables: BTreeMap<Table, DataFrame>,
    /// `table, source_file, sheet, source_row, reason, raw`.
    pub rejects: DataFrame,
    pub files: Vec<FileRecord>,
    /// Query-log rows outside `--period`, left out on purpose.
    pub outside_period: usize,
    /// Set by [`Ingested::resolve_roster`].
    pub roster_use: Option<RosterUse>,
}

impl Ingested {
    pub fn table(&self, t: Table) -> &DataFrame {
        &self.tables[&t]
    }

    pub fn failed_files(&self) -> impl Iterator<Item = &FileRecord> {
        self.files
            .iter()
            .filter(|f| matches!(f.status, FileStatus::Failed { .. }))
    }

    /// Rewrites every table with one chunk per column. The streamed parse
    /// leaves a chunk per morsel; the checks' joins and sorts would each
    /// make their own contiguous copy of those (measured on the 10M-row
    /// log: 0.7 GB more at the query check's peak), so jobs compact once.
    /// Column by column, each column's morsels freed as soon as its copy is
    /// made: compacting the whole frame at once held both for every
    /// column. Up to [`COMPACT_IN_PAIRS`] rows two columns are copied at a
    /// time, one on each core.
    pub fn compact(&mut self) {
        for df in self.tables.values_mut() {
            let height = df.height();
            let mut columns = std::mem::take(df).into_columns().into_iter();
            let mut out = Vec::with_capacity(columns.len());
            let one = |c: Column| if c.n_chunks() > 1 { c.rechunk() } else { c };
            while let Some(a) = columns.next() {
                let b = (height <= COMPACT_IN_PAIRS)
                    .then(|| columns.next())
                    .flatten();
                let copied = a.n_chunks() > 1 || b.as_ref().is_some_and(|b| b.n_chunks() > 1);
                let (a, b) = rayon::join(|| one(a), || b.map(one));
                out.push(a);
                out.extend(b);
                // The morsels' pages go back before the next copy is made,
                // or the heap keeps both.
                if copied {
                    release_freed_memory();
                }
            }
            *df = DataFrame::new(height, out).expect("the same columns, the same height");
        }
    }

    /// Replaces the stacked roster snapshots by the one roster a run on
    /// `reference` works on (see [`snapshot`]); the roster then has a
    /// boolean `removed` column.
    pub fn resolve_roster(&mut self, reference: snapshot::Reference) -> PolarsResult<()> {
        let roster = self.tables.remove(&Table::Roster).unwrap_or_default();
        let Some(date) = self.roster_snapshot(reference) else {
            let roster = roster
                .lazy()
                .with_column(lit(false).alias("removed"))
                .collect()?;
            self.tables.insert(Table::Roster, roster);
            return Ok(());
        };
        let resolved = snapshot::resolve(roster.lazy(), date)?.collect()?;
        let removed = resolved
            .clone()
            .lazy()
            .filter(col("removed"))
            .select([col("account_id").n_unique()])
            .collect()?
            .column("account_id")?
            .cast(&DataType::UInt64)?
            .u64()?
            .get(0)
            .unwrap_or(0) as usize;
        self.roster_use = Some(RosterUse {
            date,
            files: self
                .loaded_rosters()
                .filter(|f| f.snapshot.is_some_and(|s| s.date == date))
                .map(|f| f.path.clone())
                .collect(),
            removed_accounts: removed,
        });
        self.tables.insert(Table::Roster, resolved);
        Ok(())
    }

    /// Takes no file's modification time as its date: a roster or register
    /// whose date came only from it (no date in its title rows or file
    /// name) becomes undated (`modified_refused`). A copy,
    /// a backup or a restore changes that time, so a sealed audit must not
    /// rest on it. An undated roster's rows count as part of the snapshot
    /// the run uses; an undated register cannot show it covers a period
    /// (`checks::Need::FormsCover`). Call before [`Self::resolve_roster`].
    /// Returns the files it made undated.
    pub fn refuse_modification_dates(&mut self) -> PolarsResult<Vec<String>> {
        let mut refused = Vec::new();
        for f in &mut self.files {
            if f.dated_by_file_time() {
                f.snapshot = None;
                f.modified_refused = true;
                refused.push(f.path.clone());
            }
        }
        // Among several roster exports, one without a date cannot be
        // placed: it might be older or newer than the others, and which
        // row of an account is current depends on it. It fails (the
        // checks that read rosters say so), its rows are left out.
        let rosters = self.loaded_rosters().count();
        let mut unplaced = Vec::new();
        for f in &mut self.files {
            if rosters > 1
                && f.table == Some(Table::Roster)
                && f.status == FileStatus::Loaded
                && f.snapshot.is_none()
            {
                f.status = FileStatus::Failed {
                    error: format!(
                        "{}: a roster export with no date in its title rows or file name, beside other roster exports: which is current cannot be told (its modification time is not taken in a sealed audit: rules.accept_modification_dates)",
                        f.path
                    ),
                };
                unplaced.push(f.path.clone());
            }
        }
        if !unplaced.is_empty()
            && let Some(roster) = self.tables.get_mut(&Table::Roster)
        {
            let names = Series::new("f".into(), unplaced);
            *roster = std::mem::take(roster)
                .lazy()
                .filter(
                    col("source_file")
                        .is_in(lit(names).implode(false), false)
                        .not(),
                )
                .collect()?;
        }
        if let Some(roster) = self.tables.get_mut(&Table::Roster)
            && roster.get_column_index(SNAPSHOT_DATE).is_some()
            && !refused.is_empty()
        {
            let names = Series::new("f".into(), refused.clone());
            *roster = std::mem::take(roster)
                .lazy()
                .with_column(
                    when(col("source_file").is_in(lit(names).implode(false), false))
                        .then(lit(NULL).cast(DataType::Date))
                        .otherwise(col(SNAPSHOT_DATE))
                        .alias(SNAPSHOT_DATE),
                )
                .collect()?;
        }
        Ok(refused)
    }

    fn loaded_rosters(&self) -> impl Iterator<Item = &FileRecord> {
        self.files
            .iter()
            .filter(|f| f.table == Some(Table::Roster) && f.status == FileStatus::Loaded)
    }

    /// The day of the roster snapshot a run on `reference` uses, if any
    /// roster loaded.
    pub fn roster_snapshot(&self, reference: snapshot::Reference) -> Option<chrono::NaiveDate> {
        let dates: Vec<chrono::NaiveDate> = self
            .loaded_rosters()
            .filter_map(|f| f.snapshot.map(|s| s.date))
            .collect();
        snapshot::chosen(&dates, reference)
    }

    /// Whether everything read cleanly: no failed file, no rejected row.
    pub fn is_clean(&self) -> bool {
        self.failed_files().next().is_none() && self.rejects.height() == 0
    }
}

/// The canonical column list of a table, with the source columns.
pub fn canonical_schema(t: Table) -> Schema {
    let mut schema: Schema = t
        .columns()
        .iter()
        .map(|c| Field::new(c.name.into(), parse::column_dtype(t, c)))
        .collect();
    schema.with_column("source_file".into(), source_file_dtype(t));
    schema.with_column("source_row".into(), IDX_DTYPE);
    schema
}

/// The log's `source_file` is a categorical, as its identifiers are
/// ([`parse::LOG_CATEGORICAL`]): one value for millions of rows.
fn source_file_dtype(t: Table) -> DataType {
    if t == Table::QueryLog {
        parse::categorical()
    } else {
        DataType::String
    }
}

/// The rejects table's columns.
pub fn rejects_schema() -> Schema {
    ["table", "source_file", "sheet"]
        .into_iter()
        .map(|n| Field::new(n.into(), DataType::String))
        .chain([Field::new("source_row".into(), IDX_DTYPE)])
        .chain(
            ["reason", "raw"]
                .into_iter()
                .map(|n| Field::new(n.into(), DataType::String)),
        )
        .collect()
}

/// Takes `<state>/locks/inputs.lock`: shared while a run reads the inbox
/// and the input store, exclusive while exports move into the store or
/// retention deletes them, so no run reads a file half gone.
pub fn inputs_lock(config: &Config, exclusive: bool) -> std::io::Result<std::fs::File> {
    let dir = config.paths.state.join("locks");
    std::fs::create_dir_all(&dir)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts.open(dir.join("inputs.lock"))?;
    if exclusive {
        f.lock()?
    } else {
        f.lock_shared()?
    }
    Ok(f)
}

/// Ingests every file in the config's inbox. Query-log rows outside
/// `period` (if given) are left out.
pub fn ingest(config: &Config, period: Option<&Period>) -> Result<Ingested, IngestError> {
    // Held to the end: no export moves or goes while it is read.
    let _reading = take_reading_lock(config)?;
    let files = discover_inbox(config).map_err(|source| IngestError::Io {
        file: config.paths.inbox.display().to_string(),
        source,
    })?;
    let progress = progress_bar(files.len() as u64);
    let agencies = config.agencies.spellings();
    let mut gathered = Gathered::new();
    for (table, path, rel) in files {
        let path = stored_if_moved(config, path, &rel);
        progress.set_message(rel.clone());
        progress.inc(1);
        let mut record = FileRecord::unread(table, rel);
        let before = FileIdentity::of(&path);
        // A link could make the run read (and an error quote) a file
        // outside the inbox: only regular files are read.
        let (hashed, parsed) = match irregular(&path) {
            None => hash_and_parse(config, table, &path, &record.path, &agencies),
            Some(kind) => {
                let refused = format!("{kind}, not a regular file: not read");
                (Err(std::io::Error::other(refused)), None)
            }
        };
        record.identity = before.filter(|b| FileIdentity::of(&path).as_ref() == Some(b));
        gathered.add(config, record, &path, hashed, parsed)?;
    }
    progress.finish_and_clear();
    let Gathered {
        mut records,
        frames,
        mut rejects,
        ..
    } = gathered;
    let (tables, outside_period) = assemble_tables(frames, &mut records, period)?;
    attribute_through_accounts(&tables, &mut records)?;
    rejects.rechunk_mut();
    Ok(Ingested {
        tables,
        rejects,
        files: records,
        outside_period,
        roster_use: None,
    })
}

/// Takes the inputs lock shared, when the config has an input store. One
/// who may not write the state folder (an auditor's check-config) reads
/// without it: nothing it does moves a file.
fn take_reading_lock(config: &Config) -> Result<Option<std::fs::File>, IngestError> {
    if config.paths.inputs.is_none() {
        return Ok(None);
    }
    match inputs_lock(config, false) {
        Ok(l) => Ok(Some(l)),
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                || e.kind() == std::io::ErrorKind::ReadOnlyFilesystem =>
        {
            tracing::warn!(error = %e, "reading the inbox without the inputs lock");
            Ok(None)
        }
        Err(source) => Err(IngestError::Io {
            file: config
                .paths
                .state
                .join("locks/inputs.lock")
                .display()
                .to_string(),
            source,
        }),
    }
}

/// The file's place in the input store if a run sealed since the listing
/// moved it there; otherwise `path` as listed.
fn stored_if_moved(config: &Config, path: PathBuf, rel: &str) -> PathBuf {
    if path.exists() {
        return path;
    }
    config
        .paths
        .inputs
        .as_deref()
        .map(|d| d.join(rel))
        .filter(|p| p.is_file())
        .unwrap_or(path)
}

impl FileRecord {
    /// The record of the file at `path` (the inbox's `rel`) as a run
    /// reads it: its size and digest, and its identity while it was read.
    #[cfg(test)]
    pub(crate) fn as_read(path: &Path, rel: &str, table: Table) -> FileRecord {
        let mut r = FileRecord::unread(Some(table), rel.to_owned());
        let before = FileIdentity::of(path);
        (r.size, r.sha256) = hash_file(path).expect("hashed");
        r.identity = before.filter(|b| FileIdentity::of(path).as_ref() == Some(b));
        r
    }

    /// The record of a file not yet read: loaded, with nothing counted.
    fn unread(table: Option<Table>, path: String) -> FileRecord {
        FileRecord {
            table,
            path,
            size: 0,
            sha256: String::new(),
            encoding: String::new(),
            sheet: None,
            status: FileStatus::Loaded,
            rows_loaded: 0,
            rows_rejected: 0,
            rows_skipped: 0,
            absent_columns: Vec::new(),
            rows_shared: 0,
            rows_counted_elsewhere: 0,
            snapshot: None,
            modified_refused: false,
            agencies: Vec::new(),
            identity: None,
        }
    }
}

/// A file's size and SHA-256, and its parse (none for a file in no table
/// folder).
type HashedAndParsed = (
    std::io::Result<(u64, String)>,
    Option<Result<OneFile, IngestError>>,
);

/// Hashes and parses one file. The file is hashed on another thread while
/// it is parsed: one is a read at disk speed, the other CPU. A file that
/// turns out to be a copy of an earlier one is then dropped
/// unparsed-for-use. A CSV query log is hashed by its own reader, from
/// the bytes it parses (one read of the file, not two); if that reader left
/// the file to the general path, it is hashed after.
fn hash_and_parse(
    config: &Config,
    table: Option<Table>,
    path: &Path,
    rel: &str,
    agencies: &[(String, String)],
) -> HashedAndParsed {
    let started = std::time::Instant::now();
    let by_reader = table == Some(Table::QueryLog) && read::is_csv(path);
    let (hashed, parsed) = std::thread::scope(|scope| {
        let hashing = (!by_reader).then(|| scope.spawn(|| hash_file(path)));
        let parsed = table.map(|t| {
            let started = std::time::Instant::now();
            let parsed = ingest_file(config, t, path, rel, agencies);
            tracing::info!(
                file = %rel,
                elapsed = ?started.elapsed(),
                bytes = parsed.as_ref().map_or(0, |p| p.good.estimated_size()),
                "parsed"
            );
            parsed
        });
        let hashed = match hashing {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the hashing thread panicked"))),
            None => match parsed
                .as_ref()
                .and_then(|p| p.as_ref().ok()?.hashed.clone())
            {
                Some(h) => Ok(h),
                None => hash_file(path),
            },
        };
        (hashed, parsed)
    });
    tracing::info!(file = %rel, elapsed = ?started.elapsed(), memory = %memory(), "hashed and parsed");
    (hashed, parsed)
}

/// The files read so far: their records, their loaded rows by table and
/// their rejected rows.
struct Gathered {
    /// SHA-256 → the first file with that content.
    seen: BTreeMap<String, String>,
    records: Vec<FileRecord>,
    frames: BTreeMap<Table, Vec<DataFrame>>,
    rejects: DataFrame,
}

impl Gathered {
    fn new() -> Gathered {
        Gathered {
            seen: BTreeMap::new(),
            records: Vec::new(),
            frames: BTreeMap::new(),
            rejects: DataFrame::empty_with_schema(&rejects_schema()),
        }
    }

    /// Records one file: failed if it could not be hashed or parsed, a
    /// duplicate if an earlier file had its content, misplaced if it lies
    /// in no table folder; otherwise its rows join its table's.
    fn add(
        &mut self,
        config: &Config,
        mut rec: FileRecord,
        path: &Path,
        hashed: std::io::Result<(u64, String)>,
        parsed: Option<Result<OneFile, IngestError>>,
    ) -> Result<(), IngestError> {
        match hashed {
            Ok((size, sha)) => {
                rec.size = size;
                rec.sha256 = sha;
            }
            Err(source) => {
                rec.status = FileStatus::Failed {
                    error: IngestError::Io {
                        file: rec.path.clone(),
                        source,
                    }
                    .to_string(),
                };
                self.records.push(rec);
                return Ok(());
            }
        }
        if let Some(of) = self.seen.get(&rec.sha256) {
            tracing::info!(file = %rec.path, of = %of, "same content as an earlier file; ingested once");
            rec.status = FileStatus::Duplicate { of: of.clone() };
            self.records.push(rec);
            return Ok(());
        }
        self.seen.insert(rec.sha256.clone(), rec.path.clone());
        let (Some(table), Some(parsed)) = (rec.table, parsed) else {
            rec.status = FileStatus::Failed {
                error: IngestError::Misplaced {
                    file: rec.path.clone(),
                }
                .to_string(),
            };
            self.records.push(rec);
            return Ok(());
        };
        match parsed {
            Ok(one) => self.load(config, &mut rec, table, path, one)?,
            Err(e) => {
                tracing::warn!("{e}");
                rec.status = FileStatus::Failed {
                    error: e.to_string(),
                };
            }
        }
        self.records.push(rec);
        Ok(())
    }

    /// Takes a parsed file's rows and rejects, and counts them in its record.
    fn load(
        &mut self,
        config: &Config,
        rec: &mut FileRecord,
        table: Table,
        path: &Path,
        one: OneFile,
    ) -> Result<(), IngestError> {
        rec.encoding = one.encoding.to_owned();
        rec.sheet = one.sheet;
        rec.rows_loaded = one.good.height();
        rec.rows_rejected = one.rejects.height();
        rec.rows_skipped = one.skipped;
        rec.absent_columns = one.absent;
        if matches!(table, Table::Roster | Table::RequestForms) {
            rec.snapshot = export_date(config, path, &one.title);
        }
        self.frames.entry(table).or_default().push(one.good);
        self.rejects
            .vstack_mut(&one.rejects)
            .map_err(polars_in(&rec.path))?;
        tracing::debug!(file = %rec.path, loaded = rec.rows_loaded, rejected = rec.rows_rejected, "ingested");
        Ok(())
    }
}

/// The day a roster or register export shows: from its title rows, its
/// file name, or else its modification time (in the config's time zone).
fn export_date(config: &Config, path: &Path, title: &[String]) -> Option<snapshot::Snapshot> {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .with_timezone(&config.timezone)
                .date_naive()
        });
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    snapshot::snapshot_of(title, &name, modified)
}

/// Wraps a polars error in the file (or table) it happened on.
fn polars_in(file: &str) -> impl Fn(PolarsError) -> IngestError + Copy + '_ {
    move |source| IngestError::Polars {
        file: file.to_owned(),
        source,
    }
}

/// Stacks each table's files, in the order read, and finishes it: the
/// agencies each file names, the query log's overlap between files, each
/// roster row's snapshot day, and the period's query-log rows. Returns the
/// tables and the number of query-log rows outside `period`.
fn assemble_tables(
    mut frames: BTreeMap<Table, Vec<DataFrame>>,
    records: &mut [FileRecord],
    period: Option<&Period>,
) -> Result<(BTreeMap<Table, DataFrame>, usize), IngestError> {
    let mut tables = BTreeMap::new();
    let mut outside_period = 0;
    for t in Table::ALL {
        let polars = polars_in(t.as_str());
        let mut df = DataFrame::empty_with_schema(&canonical_schema(t));
        for part in frames.remove(&t).unwrap_or_default() {
            df.vstack_mut(&part).map_err(polars)?;
        }
        // No rechunk here: the streamed parse hands back a chunk per morsel,
        // and copying them into one is the jobs' choice (`compact`), after
        // ingest's own working set is gone.
        if df.column("agency_id").is_ok() {
            attribute(records, &df).map_err(polars)?;
        }
        if t == Table::QueryLog {
            df = count_overlap(df, records).map_err(polars)?;
        }
        if t == Table::Roster {
            df = date_roster_rows(df, records).map_err(polars)?;
        }
        if let (Table::QueryLog, Some(p)) = (t, period) {
            let before = df.height();
            df = df
                .lazy()
                .filter(p.holds_query())
                .collect()
                .map_err(polars)?;
            outside_period = before - df.height();
        }
        tables.insert(t, df);
    }
    Ok((tables, outside_period))
}

/// Leaves out of the query log the rows another file's copy of the same
/// record counts (see [`overlap`]), and records in each file's record how
/// many it shares.
fn count_overlap(df: DataFrame, records: &mut [FileRecord]) -> PolarsResult<DataFrame> {
    let sha_of: BTreeMap<String, String> = records
        .iter()
        .filter(|r| r.table == Some(Table::QueryLog) && r.status == FileStatus::Loaded)
        .map(|r| (r.path.clone(), r.sha256.clone()))
        .collect();
    let (kept, shared) = overlap::dedupe(df, &sha_of)?;
    for r in records.iter_mut() {
        if let Some(s) = shared.get(&r.path) {
            r.rows_shared = s.shared;
            r.rows_counted_elsewhere = s.counted_elsewhere;
        }
    }
    Ok(kept)
}

/// Adds to the roster the [`SNAPSHOT_DATE`] of each row: its file's
/// export date.
fn date_roster_rows(df: DataFrame, records: &[FileRecord]) -> PolarsResult<DataFrame> {
    let (names, days): (Vec<&str>, Vec<Option<chrono::NaiveDate>>) = records
        .iter()
        .filter(|r| r.table == Some(Table::Roster) && r.status == FileStatus::Loaded)
        .map(|r| (r.path.as_str(), r.snapshot.map(|s| s.date)))
        .unzip();
    let names = Series::new("f".into(), names);
    let days = Series::new("d".into(), days);
    df.lazy()
        .with_column(
            col("source_file")
                .replace_strict(lit(names), lit(days), None::<Expr>, Some(DataType::Date))
                .alias(SNAPSHOT_DATE),
        )
        .collect()
}

/// Records the agencies of the files of tables without an agency column
/// (the request-form register): through their accounts, as the roster
/// places them.
fn attribute_through_accounts(
    tables: &BTreeMap<Table, DataFrame>,
    records: &mut [FileRecord],
) -> Result<(), IngestError> {
    let accounts = tables[&Table::Roster]
        .clone()
        .lazy()
        .select([col("account_id"), col("agency_id")])
        .unique(None, UniqueKeepStrategy::First);
    for (t, df) in tables {
        let names = df.get_column_names();
        if !names.iter().any(|c| c.as_str() == "agency_id")
            && names.iter().any(|c| c.as_str() == "account_id")
        {
            let polars = polars_in(t.as_str());
            let placed = df
                .clone()
                .lazy()
                .select([col("source_file"), col("account_id").cast(DataType::String)])
                .join(
                    accounts
                        .clone()
                        .with_column(col("account_id").cast(DataType::String)),
                    [col("account_id")],
                    [col("account_id")],
                    JoinArgs::new(JoinType::Inner),
                )
                .collect()
                .map_err(polars)?;
            attribute(records, &placed).map_err(polars)?;
        }
    }
    Ok(())
}

/// The row of the first of each distinct pair of `df`'s `source_file` and
/// `agency_id`, in row order. A pair with a null names no agency for a
/// file, and the caller drops it: the code pass keeps each such pair's
/// first row, the general path one row for them all. Where both are
/// categorical, as the query log's are, their codes are read in one pass
/// that looks a pair up only where it differs from the row before's (a
/// log's rows come a file at a time, and a file holds a few agencies):
/// at ten million rows 0.5 s and 0.2 GB less than hashing a number made
/// of each row's pair.
fn first_of_each_pair(df: &DataFrame) -> PolarsResult<IdxCa> {
    let codes = |name: &str| -> PolarsResult<Option<UInt32Chunked>> {
        let c = df.column(name)?;
        if !matches!(c.dtype(), DataType::Categorical(..)) {
            return Ok(None);
        }
        let physical = c.as_materialized_series().to_physical_repr();
        Ok(physical.u32().ok().cloned())
    };
    if let (Some(files), Some(agencies)) = (codes("source_file")?, codes("agency_id")?) {
        // Lookups only: the rows come out in row order.
        let mut seen: PlHashSet<(Option<u32>, Option<u32>)> = PlHashSet::new();
        let mut last = None;
        let mut firsts: Vec<IdxSize> = Vec::new();
        for (i, pair) in files.iter().zip(agencies.iter()).enumerate() {
            if last != Some(pair) {
                last = Some(pair);
                if seen.insert(pair) {
                    firsts.push(i as IdxSize);
                }
            }
        }
        return Ok(IdxCa::from_vec("first".into(), firsts));
    }
    let firsts = df
        .clone()
        .lazy()
        .select([parse::code_pair(col("source_file"), col("agency_id"))
            .arg_unique()
            .alias("first")])
        .collect()?;
    Ok(firsts.column("first")?.idx()?.clone())
}

/// Records in each file's record the agencies its rows (`df`: its
/// `source_file` and `agency_id`) name. The query log's are taken before
/// its overlap is removed: a file whose rows another file counts still
/// holds them.
fn attribute(records: &mut [FileRecord], df: &DataFrame) -> PolarsResult<()> {
    let mut by_file: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if df.height() == 0 {
        return Ok(());
    }
    // The first row of each distinct pair (a few per file), found on the
    // codes (`first_of_each_pair`); then text: the log's columns are
    // categorical, and 50 million casts would cost. (A de-duplication of
    // the frame indexes every row: at fifty million it peaked 0.2 GiB
    // higher.) Ten million rows at a time, for columns that are not
    // categorical: their pairs' integers of fifty million at once held
    // 1.2 GB.
    const SLICE: usize = 10_000_000;
    for offset in (0..df.height()).step_by(SLICE) {
        let slice = df.slice(offset as i64, SLICE);
        let firsts = first_of_each_pair(&slice)?;
        let pairs = slice
            .select(["source_file", "agency_id"])?
            .take(&firsts)?
            .lazy()
            .drop_nulls(None)
            .select([
                col("source_file").cast(DataType::String),
                col("agency_id").cast(DataType::String),
            ])
            .collect()?;
        let files = pairs.column("source_file")?.str()?;
        let agencies = pairs.column("agency_id")?.str()?;
        for (f, a) in files.iter().zip(agencies.iter()) {
            if let (Some(f), Some(a)) = (f, a) {
                by_file
                    .entry(f.to_owned())
                    .or_default()
                    .insert(a.to_owned());
            }
        }
    }
    for r in records.iter_mut() {
        if let Some(a) = by_file.remove(&r.path) {
            r.agencies.extend(a);
            r.agencies.sort();
            r.agencies.dedup();
        }
    }
    // A copy of a file holds the same rows: whoever sees the file sees
    // the copy.
    let originals: BTreeMap<String, Vec<String>> = records
        .iter()
        .map(|r| (r.path.clone(), r.agencies.clone()))
        .collect();
    for r in records.iter_mut() {
        if let FileStatus::Duplicate { of } = &r.status
            && let Some(a) = originals.get(of)
        {
            r.agencies.clone_from(a);
        }
    }
    Ok(())
}

struct OneFile {
    /// Size and SHA-256, when the reader hashed the bytes it parsed.
    hashed: Option<(u64, String)>,
    good: DataFrame,
    rejects: DataFrame,
    skipped: usize,
    encoding: &'static str,
    sheet: Option<String>,
    absent: Vec<&'static str>,
    title: Vec<String>,
}

fn ingest_file(
    config: &Config,
    table: Table,
    path: &Path,
    rel: &str,
    agencies: &[(String, String)],
) -> Result<OneFile, IngestError> {
    refuse_unsupported_type(path, rel)?;
    let input: Option<&InputOverride> = config.inputs.iter().find(|i| i.matches(rel));
    let map = HeaderMap::new(table, config);
    let raw = read::read(path, rel, &map, input, &config.limits)?;
    let table_formats = config.formats.get(&table);
    let format_of = |c: &str| -> DateFormat {
        input
            .and_then(|i| i.formats.get(c).copied())
            .or_else(|| table_formats.and_then(|f| f.get(c).copied()))
            .unwrap_or_default()
    };
    let cx = ParseContext {
        table,
        headers: &raw.headers,
        format_of: &format_of,
        agencies,
        vocabulary: &config.vocabulary,
    };
    let file = FileParse {
        cx: &cx,
        raw: &raw,
        path,
        rel,
    };
    // A CSV query log (UTF-8 or Big5), the one large table, is read by its own reader
    // where it can be; `second` is then the raw cells of the rows the plan
    // flagged, which hold every rejected and footer row.
    let fast = match (&raw.layout, table) {
        (Some(layout), Table::QueryLog) => {
            fast::read(layout, &cx, read::PIECE_BYTES, fast::MOST_LEFT)?
        }
        _ => None,
    };
    let (df, second, hashed) = match fast {
        Some(f) => (f.df, f.residue.lazy(), Some(f.hashed)),
        None => (file.parse_all()?, raw.lf()?, None),
    };
    let read = df.height();
    let fates = file.row_fates(&df, &second)?;
    let max_rejects = config.limits.rejects_per_file;
    if fates.rejected.len() > max_rejects {
        return Err(file.too_many_rejects(second, &fates.rejected, read, max_rejects));
    }
    let skipped = fates.skipped;
    let good = file.loaded_rows(df, &fates)?;
    let rejects = file.rejects_table(second, fates.rejected)?;
    account_for_every_row(rel, read, &good, &rejects, skipped)?;
    let absent = absent_columns(table, &raw.headers);
    Ok(OneFile {
        hashed,
        good,
        rejects,
        skipped,
        encoding: raw.encoding,
        sheet: raw.sheet,
        absent,
        title: raw.title,
    })
}

/// Checks that every row read is loaded, rejected or skipped: never lost.
fn account_for_every_row(
    rel: &str,
    read: usize,
    good: &DataFrame,
    rejects: &DataFrame,
    skipped: usize,
) -> Result<(), IngestError> {
    if good.height() + rejects.height() + skipped == read {
        return Ok(());
    }
    Err(IngestError::Refused {
        file: rel.to_owned(),
        detail: format!(
            "internal error: of {read} rows read, {} loaded, {} rejected and {skipped} skipped; the file was not used",
            good.height(),
            rejects.height()
        ),
    })
}

/// The table's columns the file's `headers` do not have.
fn absent_columns(table: Table, headers: &[(&'static str, String)]) -> Vec<&'static str> {
    table
        .columns()
        .iter()
        .filter(|c| !headers.iter().any(|(h, _)| *h == c.name))
        .map(|c| c.name)
        .collect()
}

/// Refuses a file whose extension is none of the spreadsheet and text
/// kinds read.
fn refuse_unsupported_type(path: &Path, rel: &str) -> Result<(), IngestError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_lowercase();
    if matches!(
        ext.as_str(),
        "csv" | "tsv" | "txt" | "xlsx" | "xlsm" | "xls" | "ods"
    ) {
        Ok(())
    } else {
        Err(IngestError::UnsupportedType {
            file: rel.to_owned(),
        })
    }
}

/// What becomes of a parsed file's rows besides loading.
struct RowFates {
    /// Rows the plan flagged as no record.
    bad: BooleanChunked,
    /// Blank rows and footer rows: neither loaded nor rejected.
    skip: BooleanChunked,
    skipped: usize,
    /// The row numbers of the bad rows not skipped.
    rejected: Vec<IdxSize>,
}

/// One file's raw cells and how to parse them: what the steps of
/// [`ingest_file`] share.
struct FileParse<'a> {
    cx: &'a ParseContext<'a>,
    raw: &'a read::RawFrame,
    path: &'a Path,
    rel: &'a str,
}

impl FileParse<'_> {
    /// Parses the whole file with the general plan, a piece at a time when
    /// the reader cut it into pieces.
    fn parse_all(&self) -> Result<DataFrame, IngestError> {
        let Some(pieces) = &self.raw.pieces else {
            return self.parse(self.raw.lf()?);
        };
        let mut df: Option<DataFrame> = None;
        pieces.for_each(|lf| {
            let part = self.parse(lf)?;
            let n = part.height();
            match &mut df {
                None => df = Some(part),
                Some(d) => {
                    d.vstack_mut(&part).map_err(polars_in(self.rel))?;
                }
            }
            Ok(n)
        })?;
        match df {
            Some(df) => Ok(df),
            // A file of only a header: the whole-file scan says so.
            None => self.parse(self.raw.lf()?),
        }
    }

    /// Parses `lf` with the plan, without reasons. The streaming engine
    /// parses the file in morsels where it can, so memory holds the
    /// canonical columns rather than every intermediate.
    fn parse(&self, lf: LazyFrame) -> Result<DataFrame, IngestError> {
        Ok(parse::plan(lf, self.cx, false)
            .collect_with_engine(Engine::Streaming)
            .map_err(|e| self.parse_error(e))?
            .unwrap_single())
    }

    /// A parse failure as an error naming the file, and the line when a
    /// CSV line has too many fields (polars names no line for it).
    fn parse_error(&self, source: PolarsError) -> IngestError {
        let ragged = self
            .raw
            .csv
            .filter(|_| source.to_string().contains("more fields"))
            .and_then(|shape| read::find_ragged_line(self.path, shape).map(|l| (l, shape.fields)));
        match ragged {
            Some(((line, found), expected)) => IngestError::RaggedLine {
                file: self.rel.to_owned(),
                line,
                found,
                expected,
            },
            None => polars_in(self.rel)(source),
        }
    }

    /// Which of `df`'s rows are skipped (blank, or a footer) and which
    /// rejected.
    fn row_fates(&self, df: &DataFrame, second: &LazyFrame) -> Result<RowFates, IngestError> {
        let polars_err = polars_in(self.rel);
        let flags = |name: &str| -> Result<BooleanChunked, IngestError> {
            Ok(df
                .column(name)
                .map_err(polars_err)?
                .bool()
                .map_err(polars_err)?
                .clone())
        };
        let (bad, sparse, blank) = (flags(BAD)?, flags(SPARSE)?, flags(BLANK)?);
        let skip = match footer_mask(df, &sparse, second).map_err(polars_err)? {
            Some(tail) => &blank | &tail,
            None => blank,
        };
        let skipped = skip.sum().unwrap_or(0) as usize;
        let rejected_mask = &bad & &!&skip;
        let rejected = if rejected_mask.sum().unwrap_or(0) == 0 {
            Vec::new()
        } else {
            let rows = df
                .column(ROW)
                .map_err(polars_err)?
                .filter(&rejected_mask)
                .map_err(polars_err)?;
            rows.idx()
                .map_err(polars_err)?
                .into_no_null_iter()
                .collect()
        };
        Ok(RowFates {
            bad,
            skip,
            skipped,
            rejected,
        })
    }

    /// The refusal of a file with more rejects than
    /// `limits.rejects_per_file` (`max_rejects`): not an export of this
    /// table (or a broken one), whose rejects would fill memory and every
    /// report. The whole file is refused, with its first reasons, rather
    /// than loaded in part beside hundreds of thousands of rejects.
    fn too_many_rejects(
        &self,
        second: LazyFrame,
        rejected: &[IdxSize],
        read: usize,
        max_rejects: usize,
    ) -> IngestError {
        let first = match self.first_reasons(second, rejected) {
            Ok(first) => first,
            Err(e) => return e,
        };
        IngestError::Refused {
            file: self.rel.to_owned(),
            detail: format!(
                "{} of its {read} rows are no {} records (more than limits.rejects_per_file, {max_rejects}); the file was not used. The first: {}",
                rejected.len(),
                self.cx.table.as_str(),
                first.join("; ")
            ),
        }
    }

    /// The first three rejected rows' reasons, `row 7: …`, for a file
    /// refused for its rejects.
    fn first_reasons(
        &self,
        second: LazyFrame,
        rejected: &[IdxSize],
    ) -> Result<Vec<String>, IngestError> {
        let polars_err = polars_in(self.rel);
        let first = lit(Series::new("r".into(), &rejected[..3.min(rejected.len())]));
        let reasons = parse::plan(
            second.filter(col(ROW).is_in(first.implode(false), false)),
            self.cx,
            true,
        )
        .select([col(ROW), col(REASON)])
        .collect()
        .map_err(polars_err)?;
        let rows = reasons
            .column(ROW)
            .map_err(polars_err)?
            .idx()
            .map_err(polars_err)?
            .clone();
        let why = reasons
            .column(REASON)
            .map_err(polars_err)?
            .str()
            .map_err(polars_err)?
            .clone();
        Ok(rows
            .iter()
            .zip(why.iter())
            .map(|(r, w)| format!("row {}: {}", r.unwrap_or(0), w.unwrap_or("")))
            .collect())
    }

    /// The rows loaded: the canonical columns and where each row came from.
    fn loaded_rows(&self, df: DataFrame, fates: &RowFates) -> Result<DataFrame, IngestError> {
        let polars_err = polars_in(self.rel);
        let table = self.cx.table;
        let mut keep: Vec<Expr> = table.columns().iter().map(|c| col(c.name)).collect();
        keep.push(
            lit(self.rel)
                .cast(source_file_dtype(table))
                .alias("source_file"),
        );
        keep.push(col(ROW).alias("source_row"));
        if fates.rejected.is_empty() && fates.skipped == 0 {
            // The common case: no copy of the frame, only a projection.
            return df.lazy().select(keep).collect().map_err(polars_err);
        }
        let ok = !&(&fates.bad | &fates.skip);
        df.filter(&ok)
            .map_err(polars_err)?
            .lazy()
            .select(keep)
            .collect()
            .map_err(polars_err)
    }

    /// The rejects table's rows for the `rejected` rows of `second`, each
    /// with its reason and raw cells.
    fn rejects_table(
        &self,
        second: LazyFrame,
        rejected: Vec<IdxSize>,
    ) -> Result<DataFrame, IngestError> {
        if rejected.is_empty() {
            return Ok(DataFrame::empty_with_schema(&rejects_schema()));
        }
        // Only now build the sentences, for the rejected rows alone.
        let rows = lit(Series::new("r".into(), rejected));
        parse::plan(
            second.filter(col(ROW).is_in(rows.implode(false), false)),
            self.cx,
            true,
        )
        .select([
            lit(self.cx.table.as_str()).alias("table"),
            lit(self.rel).alias("source_file"),
            lit(self.raw.sheet.clone().unwrap_or_default()).alias("sheet"),
            col(ROW).alias("source_row"),
            col(REASON).alias("reason"),
            col(RAW).alias("raw"),
        ])
        .collect()
        .map_err(polars_in(self.rel))
    }
}

/// The footer of a parsed file: the sparse rows after the last dense one
/// (totals, print notes) that look like a footer, as a mask over `df`;
/// none when the file ends on a dense row. Any other sparse row at the end
/// (garbage after the records) is a row like the others, rejected with its
/// first characters if it is no record.
fn footer_mask(
    df: &DataFrame,
    sparse: &BooleanChunked,
    second: &LazyFrame,
) -> PolarsResult<Option<BooleanChunked>> {
    let footer_from = (0..df.height())
        .rev()
        .take_while(|&i| sparse.get(i) == Some(true))
        .last()
        .unwrap_or(df.height());
    if footer_from == df.height() {
        return Ok(None);
    }
    let rows: Vec<IdxSize> = df
        .column(ROW)?
        .idx()?
        .into_no_null_iter()
        .skip(footer_from)
        .collect();
    let footers = footer_rows(second, &rows)?;
    Ok(Some(
        (0..df.height())
            .map(|i| Some(i >= footer_from && footers.contains(&rows[i - footer_from])))
            .collect(),
    ))
}

/// What one inbox file holds, for the daemon's inputs check: rows loaded
/// and, for a query log, the first and last `queried_at`.
#[derive(Debug, Clone)]
pub struct Surveyed {
    pub rows: usize,
    pub span: Option<(chrono::NaiveDateTime, chrono::NaiveDateTime)>,
}

/// Of the raw rows `rows` (row numbers), those that look like an export's
/// footer: short, and saying what a footer says (a total, a count, a page,
/// a print date, a note).
fn footer_rows(
    raw: &LazyFrame,
    rows: &[IdxSize],
) -> PolarsResult<std::collections::BTreeSet<IdxSize>> {
    const FOOTER: &str = r"(?i)(合計|總計|小計|共\s*\d|筆|頁|列印|製表|以下空白|資料來源|備註|註[:：]|total|page|printed)";
    const SHORT: u32 = 120;
    let texts = raw
        .clone()
        .filter(col(ROW).is_in(lit(Series::new("r".into(), rows)).implode(false), false))
        .select([
            col(ROW),
            concat_str(
                [all().exclude_cols([ROW]).as_expr().cast(DataType::String)],
                " ",
                true,
            )
            .alias("text"),
        ])
        .filter(
            col("text")
                .str()
                .len_chars()
                .lt_eq(lit(SHORT))
                .and(col("text").str().contains(lit(FOOTER), true))
                .and(col("text").str().contains(lit(r"\p{Cc}"), true).not()),
        )
        .collect()?;
    Ok(texts.column(ROW)?.idx()?.into_no_null_iter().collect())
}

/// Reads one file as ingest would and says what it holds.
pub fn survey_file(
    config: &Config,
    table: Table,
    path: &Path,
    rel: &str,
) -> Result<Surveyed, IngestError> {
    let one = ingest_file(config, table, path, rel, &config.agencies.spellings())?;
    let span = if table == Table::QueryLog && one.good.height() > 0 {
        let polars = |source| IngestError::Polars {
            file: rel.to_owned(),
            source,
        };
        let at = one.good.column("queried_at").map_err(polars)?;
        let at = at.datetime().map_err(polars)?;
        let unit = at.time_unit();
        let as_dt = |t: i64| {
            match unit {
                TimeUnit::Milliseconds => chrono::DateTime::from_timestamp_millis(t),
                TimeUnit::Microseconds => chrono::DateTime::from_timestamp_micros(t),
                TimeUnit::Nanoseconds => Some(chrono::DateTime::from_timestamp_nanos(t)),
            }
            .map(|d| d.naive_utc())
        };
        let phys = at.physical();
        phys.min().and_then(as_dt).zip(phys.max().and_then(as_dt))
    } else {
        None
    };
    Ok(Surveyed {
        rows: one.good.height(),
        span,
    })
}

/// Every export in the inbox: its table (by folder), path and path
/// relative to the inbox.
pub fn discover_inbox(config: &Config) -> std::io::Result<Vec<(Option<Table>, PathBuf, String)>> {
    discover(&config.paths.inbox, config.paths.inputs.as_deref())
}

/// Lists the inbox with the input store (exports earlier runs read, moved
/// out of the inbox: the `inputs` module) as one: files in the table folders
/// by name (an inbox file replaces a stored one of the same name), then
/// loose inbox files (reported as misplaced). Sorted by name wherever a
/// file lies, so every run sees the same order before and after a move.
/// Hidden files and Office lock files (`~$…`) are not exports.
fn discover(
    inbox: &Path,
    stored: Option<&Path>,
) -> std::io::Result<Vec<(Option<Table>, PathBuf, String)>> {
    let mut out = Vec::new();
    let is_export = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        p.is_file() && !name.starts_with('.') && !name.starts_with("~$")
    };
    for t in Table::ALL {
        let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
        for base in stored.into_iter().chain([inbox]) {
            let dir = base.join(t.inbox_dir());
            if !dir.is_dir() {
                continue;
            }
            for e in std::fs::read_dir(&dir)? {
                let p = e?.path();
                if is_export(&p) {
                    let name = p
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    by_name.insert(name, p);
                }
            }
        }
        for (name, p) in by_name {
            out.push((Some(t), p, format!("{}/{name}", t.inbox_dir())));
        }
    }
    let mut loose: Vec<PathBuf> = std::fs::read_dir(inbox)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    loose.sort();
    for p in loose.into_iter().filter(|p| is_export(p)) {
        let rel = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        out.push((None, p, rel));
    }
    Ok(out)
}

/// Size and SHA-256 (lowercase hex) of a file, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// A writer that hashes what it is given on a thread of its own, which
/// writes it on to a sink: a large file digested as it is made, beside
/// the thread that makes it. Bytes reach the sink a megabyte at a time,
/// the rest only at [`Hashing::finish`] (`flush` does not reach the sink).
/// A sink's error ends the thread; the next write returns that error.
/// Dropped without `finish`, it waits for the thread to end.
#[derive(Debug)]
pub struct Hashing {
    to_thread: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    /// Chunks the thread is done with, for reuse.
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<(u64, String)>>>,
    pending: Vec<u8>,
}

impl Hashing {
    const CHUNK: usize = 1 << 20;

    /// Starts the thread that hashes and writes to `sink`.
    pub fn new<W: std::io::Write + Send + 'static>(mut sink: W) -> std::io::Result<Hashing> {
        let (to_thread, chunks) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let (spare_tx, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("hashing".into())
            .spawn(move || {
                let (mut hasher, mut len) = (Sha256::new(), 0u64);
                for chunk in chunks {
                    hasher.update(&chunk);
                    sink.write_all(&chunk)?;
                    len += chunk.len() as u64;
                    let _ = spare_tx.send(chunk);
                }
                sink.flush()?;
                Ok((len, hex::encode(hasher.finalize())))
            })?;
        Ok(Hashing {
            to_thread: Some(to_thread),
            spare,
            thread: Some(thread),
            pending: Vec::with_capacity(Self::CHUNK),
        })
    }

    /// Every byte written, then the count and their SHA-256; the sink's
    /// first error if it had one.
    pub fn finish(mut self) -> std::io::Result<(u64, String)> {
        let pending = std::mem::take(&mut self.pending);
        if let Some(to_thread) = self.to_thread.take() {
            // A send fails only if the thread stopped: its error is below.
            let _ = to_thread.send(pending);
        }
        self.outcome()
    }

    /// What the thread ended with, once it has.
    fn outcome(&mut self) -> std::io::Result<(u64, String)> {
        self.to_thread = None;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err(std::io::Error::other("the hashing thread panicked")),
            None => Err(std::io::Error::other("the hashing thread already ended")),
        }
    }
}

impl std::io::Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= Self::CHUNK {
            let mut next = self
                .spare
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(Self::CHUNK));
            next.clear();
            let full = std::mem::replace(&mut self.pending, next);
            let sent = self.to_thread.as_ref().map(|t| t.send(full));
            if !matches!(sent, Some(Ok(()))) {
                // The thread stopped on the sink's error: that is the error.
                return Err(self
                    .outcome()
                    .err()
                    .unwrap_or_else(|| std::io::Error::other("the hashing thread ended early")));
            }
        }
        Ok(buf.len())
    }

    /// Nothing: bytes reach the sink a megabyte at a time and at
    /// [`Hashing::finish`].
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Hashing {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.outcome();
        }
    }
}

/// A progress bar on a terminal; hidden otherwise (indicatif draws only to a
/// terminal).
fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files  {wide_msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Hands memory that ingest freed back to the operating system. glibc keeps
/// freed blocks in per-thread arenas, so without this the peak of a run is
/// ingest's peak plus the checks' working set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_freed_memory() {
    // SAFETY: malloc_trim only returns unused heap pages to the kernel; it
    // takes no pointers and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed_memory() {}

/// The most rows a table may have for [`Ingested::compact`] to copy two
/// columns at a time: at ten million queries the query check's peak comes
/// later (the checks' frames), and the compaction takes about 0.1 s less; at
/// fifty million the compaction sets the peak, and one column's morsels
/// more would be 0.4 GB more.
const COMPACT_IN_PAIRS: usize = 10_000_000;

/// The process's resident memory now and at its peak so far, for the
/// stage logs (`RUST_LOG=webir_audit=info`): `rss 1.2G peak 2.9G`, or
/// empty where `/proc` does not say.
pub fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / (1u64 << 20) as f64)
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(peak)) => format!("rss {rss:.2}G peak {peak:.2}G"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// A sink that takes `room` bytes, then is full.
    struct Disk {
        room: usize,
        kept: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl std::io::Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() > self.room {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "No space left on device",
                ));
            }
            self.room -= buf.len();
            self.kept.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text(lines: usize) -> Vec<u8> {
        (0..lines)
            .flat_map(|i| format!("A{i:09}\t高雄\t{i}\n").into_bytes())
            .collect()
    }

    /// Every byte reaches the sink, last partial megabyte too, and the
    /// digest is the bytes' SHA-256.
    #[test]
    fn hashing_writes_every_byte_and_hashes_them() {
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let bytes = text(200_000);
        let mut w = Hashing::new(Disk {
            room: usize::MAX,
            kept: kept.clone(),
        })
        .unwrap();
        for line in bytes.chunk_by(|_, &b| b != b'\n') {
            w.write_all(line).unwrap();
        }
        let (len, sha) = w.finish().unwrap();
        assert!(bytes.len() > 3 * Hashing::CHUNK);
        assert_eq!(*kept.lock().unwrap(), bytes);
        assert_eq!(len, bytes.len() as u64);
        assert_eq!(sha, hex::encode(Sha256::digest(&bytes)));
    }

    /// A full disk's own error reaches the writer: from a write, once the
    /// thread has stopped on it, and from `finish` when the last chunk
    /// finds the disk full.
    #[test]
    fn a_full_disk_s_error_reaches_the_writer() {
        let full = |err: std::io::Error| {
            assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
            assert!(err.to_string().contains("No space left"), "{err}");
        };
        // Full after half a chunk: the thread stops on the first; the
        // channel holds four more, so a write within the next few fails.
        let bytes = text(2_000_000);
        let mut w = Hashing::new(Disk {
            room: Hashing::CHUNK / 2,
            kept: Default::default(),
        })
        .unwrap();
        let failed = bytes
            .chunk_by(|_, &b| b != b'\n')
            .find_map(|line| w.write_all(line).err());
        full(failed.expect("a write fails once the disk is full"));

        // Room for all but the last ten bytes: every write succeeds.
        let bytes = text(200_000);
        let mut w = Hashing::new(Disk {
            room: bytes.len() - 10,
            kept: Default::default(),
        })
        .unwrap();
        for line in bytes.chunk_by(|_, &b| b != b'\n') {
            w.write_all(line).unwrap();
        }
        full(w.finish().unwrap_err());
    }

    /// The categorical pass and the general one find the same first rows:
    /// pairs that come back after others, nulls in either column, and
    /// pairs that differ only in one half.
    #[test]
    fn first_of_each_pair_reads_codes_as_the_general_path_reads_text() {
        let files = [
            Some("a.csv"),
            Some("a.csv"),
            Some("a.csv"),
            Some("b.csv"),
            Some("a.csv"),
            None,
            Some("b.csv"),
            None,
            Some("b.csv"),
            Some("a.csv"),
        ];
        let agencies = [
            Some("KHB"),
            Some("KHB"),
            Some("SWB"),
            Some("KHB"),
            Some("KHB"),
            Some("SWB"),
            None,
            Some("SWB"),
            Some("SWB"),
            Some("SWB"),
        ];
        let text = df!("source_file" => files, "agency_id" => agencies).unwrap();
        let codes = text
            .clone()
            .lazy()
            .with_columns([
                col("source_file").cast(parse::categorical()),
                col("agency_id").cast(parse::categorical()),
            ])
            .collect()
            .unwrap();
        let rows = |df: &DataFrame| -> Vec<IdxSize> {
            first_of_each_pair(df)
                .unwrap()
                .into_no_null_iter()
                .collect()
        };
        // Each pair's first row; a pair with a null is one of its own here
        // (the general path counts every such pair as one), and neither
        // names an agency for a file.
        assert_eq!(rows(&codes), [0, 2, 3, 5, 6, 8]);
        let named = |df: &DataFrame| -> BTreeSet<(String, String)> {
            let firsts = first_of_each_pair(df).unwrap();
            let pairs = text.take(&firsts).unwrap();
            let (f, a) = (
                pairs.column("source_file").unwrap(),
                pairs.column("agency_id").unwrap(),
            );
            f.str()
                .unwrap()
                .iter()
                .zip(a.str().unwrap().iter())
                .filter_map(|(f, a)| Some((f?.to_owned(), a?.to_owned())))
                .collect()
        };
        let expected: BTreeSet<(String, String)> = [
            ("a.csv", "KHB"),
            ("a.csv", "SWB"),
            ("b.csv", "KHB"),
            ("b.csv", "SWB"),
        ]
        .map(|(f, a)| (f.to_owned(), a.to_owned()))
        .into();
        assert_eq!(named(&codes), expected);
        assert_eq!(named(&text), expected);
    }
}
