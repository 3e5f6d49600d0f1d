//! The archive: one folder per run under `paths.archive`,
//! `<period>/<job>/<run-id>/`, holding what the run found and what it read.
//! Runs never overwrite each other. Every file is written with mode 0600,
//! because the archive is the one place raw personal data may rest; once
//! the run is finished the folder is sealed: every file listed with its
//! SHA-256 in `SHA256SUMS` and made read-only (0400).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polars::prelude::*;
use serde::Serialize;

use crate::ingest::{FileRecord, FileStatus};
use crate::job::Job;
use crate::period::RunPeriod;
use crate::sampling::manifest::Manifest;

/// A name that would not stay inside its folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} cannot be a file name inside {}: {why}", dir.display())]
pub struct UnsafeName {
    pub dir: PathBuf,
    pub name: String,
    pub why: &'static str,
}

/// `dir/name`, proven to stay inside `dir`: `name` is one plain path
/// component (not empty, not `.` or `..`, no separator, no NUL or other
/// control character, not absolute). Every path the program writes from
/// a name that came from input goes through here.
pub fn inside(dir: &Path, name: &str) -> Result<PathBuf, UnsafeName> {
    let refuse = |why| {
        Err(UnsafeName {
            dir: dir.to_owned(),
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.chars().any(|c| c == '/' || c == '\\') {
        return refuse("it holds a path separator");
    }
    if name.chars().any(char::is_control) {
        return refuse("it holds a control character");
    }
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(_)), None) => Ok(dir.join(name)),
        _ => refuse("it is not a plain file name"),
    }
}

/// `text` as a file name a person's mail client or file system takes as
/// is: separators, control characters and the characters Windows refuses
/// become `_`. For names shown to people (attachments), not for paths.
pub fn file_name_of(text: &str) -> String {
    let name: String = text
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    match name.trim_matches('.') {
        "" => "_".to_owned(),
        _ => name,
    }
}

/// A run folder: `<archive>/<period>/<job>/<run id>`, the run id being
/// the local start time (`20260705T080000`, suffixed `-2`, `-3`… if
/// taken). The one type that builds and reads these paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    pub period: RunPeriod,
    pub job: Job,
    pub id: String,
    /// The folder itself.
    pub dir: PathBuf,
    /// Files this run hashed as it wrote them (see [`seal`]).
    pub written: Written,
}

/// Files of a run folder hashed as they were written
/// ([`crate::ingest::Hashing`]):
/// their path in the folder, their size and SHA-256.
pub type Written = BTreeMap<String, (u64, String)>;

impl RunFolder {
    /// Where `job`'s runs of `period` are.
    pub fn parent(base: &Path, period: &RunPeriod, job: Job) -> Result<PathBuf, UnsafeName> {
        inside(
            &inside(base, &period.to_string())?,
            job.folder().unwrap_or(job).as_str(),
        )
    }

    /// Creates a fresh run folder for `job` over `period`.
    pub fn create(
        base: &Path,
        period: &RunPeriod,
        job: Job,
        started: chrono::NaiveDateTime,
    ) -> Result<RunFolder> {
        let parent = RunFolder::parent(base, period, job)?;
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let (id, dir) = create_unique(&parent, &started.format("%Y%m%dT%H%M%S").to_string())?;
        Ok(RunFolder {
            period: period.clone(),
            job: job.folder().unwrap_or(job),
            id,
            dir,
            written: Written::new(),
        })
    }

    /// Reads a run folder's path; `None` if it is not `<period>/<job>/<id>`
    /// of a known period form and job.
    pub fn parse(dir: &Path) -> Option<RunFolder> {
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let job_dir = dir.parent()?;
        Some(RunFolder {
            period: RunPeriod::parse(&name(job_dir.parent()?)?)?,
            job: Job::parse(&name(job_dir)?)?,
            id: name(dir)?,
            dir: dir.to_owned(),
            written: Written::new(),
        })
    }

    /// Every run folder under `base` that reads as one, in path order.
    pub fn all(base: &Path) -> std::io::Result<Vec<RunFolder>> {
        Ok(run_dirs(base)?
            .iter()
            .filter_map(|d| RunFolder::parse(d))
            .collect())
    }

    /// The runs of `job` over `period`, in id (start time) order.
    pub fn runs(base: &Path, period: &RunPeriod, job: Job) -> Vec<RunFolder> {
        let Ok(parent) = RunFolder::parent(base, period, job) else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&parent)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        dirs.sort();
        dirs.iter().filter_map(|d| RunFolder::parse(d)).collect()
    }

    /// The latest sealed run of `job` whose period `period` accepts.
    pub fn latest(
        base: &Path,
        job: Job,
        period: impl Fn(&RunPeriod) -> bool,
    ) -> std::io::Result<Option<RunFolder>> {
        // Path order: ids are start times, so the last is the latest.
        Ok(RunFolder::all(base)?
            .into_iter()
            .rfind(|r| r.job == job && period(&r.period) && r.is_sealed()))
    }

    /// The run of `job` with this id.
    pub fn find(base: &Path, job: Job, id: &str) -> std::io::Result<Option<RunFolder>> {
        Ok(RunFolder::all(base)?
            .into_iter()
            .find(|r| r.job == job && r.id == id))
    }

    /// A file of the run folder.
    pub fn file(&self, name: &str) -> Result<PathBuf, UnsafeName> {
        inside(&self.dir, name)
    }

    /// The folder of the run's workbooks.
    pub fn reports(&self) -> PathBuf {
        self.dir.join("reports")
    }

    /// The file name of a unit's workbook (`None`: the city-wide one).
    pub fn workbook_name(unit: Option<&str>) -> String {
        match unit.map(|k| {
            (
                crate::report::unit_of_key(k),
                crate::report::is_chief_key(k),
            )
        }) {
            Some(((u, false), _)) => format!("{u}.xlsx"),
            // The chief administrator's workbook about a unit (`DSM:chief`).
            Some(((u, true), true)) => format!("{u}.chief-admin.xlsx"),
            // A unit's second review (`KPB:review`).
            Some(((u, true), false)) => format!("{u}.second-review.xlsx"),
            None => "city-wide.xlsx".to_owned(),
        }
    }

    /// A unit's workbook (`None`: the city-wide one), inside `reports/`.
    pub fn workbook(&self, unit: Option<&str>) -> Result<PathBuf, UnsafeName> {
        inside(&self.reports(), &RunFolder::workbook_name(unit))
    }

    pub fn is_sealed(&self) -> bool {
        self.dir.join(SEAL).exists()
    }

    /// The sample audit's `manifest.json`.
    pub fn manifest(&self) -> Result<Manifest> {
        Ok(read_manifest(&self.dir)?.1)
    }
}

/// A run folder being written: if the run fails before it is sealed, the
/// folder goes with it (a half-written run is no record: nothing was mailed
/// and nothing was sealed). A process that dies leaves it for the daemon's
/// resume logic, which adopts or reruns it.
///
/// While it lives it holds a lock on `<job folder>/.<id>.running`: a
/// folder without a seal whose lock nobody holds is what a killed run left
/// ([`leftovers`]), never one being written.
#[derive(Debug)]
pub struct Unfinished {
    dir: Option<PathBuf>,
    lock: Option<(PathBuf, std::fs::File)>,
}

/// The lock file of a run folder being written.
fn running_lock(dir: &Path) -> Option<PathBuf> {
    let name = dir.file_name()?.to_string_lossy().into_owned();
    Some(dir.parent()?.join(format!(".{name}.running")))
}

impl Unfinished {
    pub fn new(dir: &Path) -> Unfinished {
        let lock = running_lock(dir).and_then(|path| {
            let mut file = open_lock(&path).ok()?;
            file.try_lock().ok()?;
            // Whose it is: a sweeper takes a free lock for a dead run's
            // only when this process is gone.
            use std::io::Write as _;
            file.set_len(0).ok()?;
            write!(file, "{}", std::process::id()).ok()?;
            Some((path, file))
        });
        Unfinished {
            dir: Some(dir.to_owned()),
            lock,
        }
    }

    /// The run was sealed: keep the folder.
    pub fn finished(mut self) {
        self.dir = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take()
            && d.exists()
            && !d.join(SEAL).exists()
        {
            tracing::warn!(run = %d.display(), "the run failed before it was sealed; its folder is removed");
            if let Err(e) = std::fs::remove_dir_all(&d) {
                tracing::error!(run = %d.display(), error = %e, "could not remove the unfinished run folder");
            }
        }
        if let Some((path, _file)) = self.lock.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether the lock file at `path` was left by a run that is gone: no
/// one holds it, and the process it names no longer exists. A lock taken
/// but not yet named (a run starting this instant) is not dead.
fn is_dead_lock(path: &Path) -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return false;
    };
    if f.try_lock().is_err() {
        return false;
    }
    let pid = std::fs::read_to_string(path).unwrap_or_default();
    let pid = pid.trim();
    !pid.is_empty()
        && pid.chars().all(|c| c.is_ascii_digit())
        && Path::new("/proc/self").exists()
        && !Path::new("/proc").join(pid).exists()
}

/// Run folders a killed run left: no seal, and their lock file is there
/// but no live run holds it. Nothing in them was mailed or chained as a run; they hold
/// personal data (`population.tsv`, `findings.csv`).
///
/// `mailed`: the run folders the outbox holds mail of. One of those died
/// after its mail was queued: the daemon seals and adopts it, so it is no
/// leftover.
pub fn leftovers(
    base: &Path,
    mailed: &std::collections::BTreeSet<String>,
) -> std::io::Result<Vec<PathBuf>> {
    Ok(run_dirs(base)?
        .into_iter()
        .filter(|d| !d.join(SEAL).exists())
        .filter(|d| !mailed.contains(&d.display().to_string()))
        .filter(|d| {
            let Some(path) = running_lock(d) else {
                return true;
            };
            // No lock file yet: a run may be between making it and locking.
            is_dead_lock(&path)
        })
        .collect())
}

/// Removes what killed runs left ([`leftovers`]) and the lock files no
/// live run holds (a run killed after its seal leaves one); returns the
/// folders removed.
pub fn remove_leftovers(base: &Path, store: &crate::store::Store) -> Result<Vec<PathBuf>> {
    let mailed = store.outbox()?.into_iter().map(|m| m.run).collect();
    let dirs = leftovers(base, &mailed).with_context(|| format!("reading {}", base.display()))?;
    for d in &dirs {
        tracing::warn!(run = %d.display(), "a run killed before its seal left this folder: removed (it holds personal data and is no record)");
        std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
    }
    if !base.exists() {
        return Ok(dirs);
    }
    let subdirs = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for period in subdirs(base).into_iter().filter(|p| p.is_dir()) {
        for job in subdirs(&period).into_iter().filter(|p| p.is_dir()) {
            for lock in subdirs(&job) {
                let name = lock.file_name().map(|n| n.to_string_lossy().into_owned());
                let Some(run) = name
                    .as_deref()
                    .and_then(|n| n.strip_prefix('.'))
                    .and_then(|n| n.strip_suffix(".running"))
                else {
                    continue;
                };
                if is_dead_lock(&lock)
                    && (job.join(run).join(SEAL).exists() || !job.join(run).exists())
                {
                    let _ = std::fs::remove_file(&lock);
                }
            }
        }
    }
    Ok(dirs)
}

/// Reads the manifest of a run folder (or the manifest file itself).
pub fn read_manifest(path: &Path) -> Result<(PathBuf, Manifest)> {
    let file = if path.is_dir() {
        path.join("manifest.json")
    } else {
        path.to_owned()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let m: Manifest =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    Ok((file, m))
}

/// Opens (creating, mode 0600, never truncating) the lock file at `path`
/// for reading and writing: the daemon's, the outbox drain's, a draw's and
/// a run folder's being written all open theirs so.
pub fn open_lock(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

pub fn create_private(path: &Path) -> Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// The folder under a period that keeps the workbooks units returned.
pub const RETURNS: &str = "returns";

/// Keeps a returned workbook as it was received (`returned.xlsx`, however
/// it came: encrypted or not) and what its return made (`files`, e.g. the
/// investigation record sent back), in a folder of its own beside the run's
/// period, `<period>/returns/<run id>_<unit>_<received>`, sealed like a
/// run folder: `archive verify` checks it, retention keeps it as long as
/// the run. Returns the folder.
pub fn keep_return(
    run: &RunFolder,
    unit_id: &str,
    received: &str,
    files: &[(&str, &[u8])],
    store: &mut crate::store::Store,
    at: &str,
) -> Result<PathBuf> {
    let period_dir = run
        .dir
        .parent()
        .and_then(Path::parent)
        .context("a run folder has a period folder")?;
    let parent = inside(period_dir, RETURNS)?;
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    // A second review's key (`KPB:review`) as a name (`KPB.review`): no
    // unit id holds a dot.
    let tag = unit_id.replace(':', ".");
    let (_, dir) = create_unique(&parent, &format!("{}_{tag}_{received}", run.id))?;
    for (name, bytes) in files {
        let mut f = create_private(&inside(&dir, name)?)?;
        f.write_all(bytes)
            .with_context(|| format!("writing {}", dir.display()))?;
    }
    seal_chained(&dir, store, "return", at)?;
    Ok(dir)
}

/// Creates a new folder `stem` in `parent`, or `stem-2`, `stem-3`, … if
/// it exists (two runs in one second, two returns at once): never an
/// existing folder. Returns its name and path.
fn create_unique(parent: &Path, stem: &str) -> Result<(String, PathBuf)> {
    for n in 1.. {
        let id = if n == 1 {
            stem.to_owned()
        } else {
            format!("{stem}-{n}")
        };
        let dir = inside(parent, &id)?;
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    unreachable!("an unbounded range always yields")
}

/// The newest kept file `name` of `run`'s returns from `unit_id` (e.g.
/// the investigation record a worksheet's return made).
pub fn kept_file(run: &RunFolder, unit_id: &str, name: &str) -> Option<PathBuf> {
    let parent = run.dir.parent()?.parent()?.join(RETURNS);
    // Exactly this unit's: `<run>_<unit>_<received>`, the rest a time
    // (`20260730T090000`, `-2` if two came in one second), so unit KPB
    // never takes KPB_XX's folder for its own.
    let prefix = format!("{}_{}_", run.id, unit_id.replace(':', "."));
    let received = |rest: &str| {
        let (time, n) = rest.split_once('-').unwrap_or((rest, "1"));
        time.len() == 15
            && time
                .char_indices()
                .all(|(i, c)| if i == 8 { c == 'T' } else { c.is_ascii_digit() })
            && !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&parent)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .strip_prefix(&prefix)
                    .is_some_and(received)
            }) && p.join(name).is_file()
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|d| d.join(name))
}

/// The period of a kept return's folder (`<period>/returns/<id>`).
pub fn returned_period(dir: &Path) -> Option<RunPeriod> {
    let parent = dir.parent()?;
    if parent.file_name()? != RETURNS {
        return None;
    }
    RunPeriod::parse(&parent.parent()?.file_name()?.to_string_lossy())
}

/// Text cells that Excel would run as a formula get a leading apostrophe.
fn defuse(e: Expr) -> Expr {
    let risky = e
        .clone()
        .str()
        .contains(lit(r"^[=+\-@\t\r]"), true)
        .fill_null(lit(false));
    when(risky)
        .then(concat_str([lit("'"), e.clone()], "", false))
        .otherwise(e)
}

/// Writes `df` as CSV, UTF-8 with BOM so Excel opens it in the right encoding.
pub fn write_csv(df: &DataFrame, path: &Path) -> Result<()> {
    let exprs: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(name, dt)| {
            let c = col(name.clone());
            if *dt == DataType::String {
                defuse(c).alias(name.clone())
            } else {
                c
            }
        })
        .collect();
    let mut safe = df.clone().lazy().select(exprs).collect()?;
    let mut f = create_private(path)?;
    f.write_all(b"\xEF\xBB\xBF")?;
    CsvWriter::new(&mut f)
        .include_header(true)
        .with_datetime_format(Some("%Y-%m-%d %H:%M:%S".into()))
        .with_date_format(Some("%Y-%m-%d".into()))
        .finish(&mut safe)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn write_json<T: Serialize>(value: &T, path: &Path) -> Result<()> {
    let mut f = create_private(path)?;
    serde_json::to_writer_pretty(&mut f, value)?;
    f.write_all(b"\n")?;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct InputRecord {
    pub table: Option<&'static str>,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub encoding: String,
    pub sheet: Option<String>,
    pub status: String,
    pub rows_loaded: usize,
    pub rows_rejected: usize,
    pub rows_skipped: usize,
    /// Query logs: loaded rows whose record another file also holds, and
    /// of those the rows left out because the other file's copy counts.
    pub rows_shared: usize,
    pub rows_counted_elsewhere: usize,
    /// Optional columns the file lacks.
    pub absent_columns: Vec<&'static str>,
    /// Rosters and request-form registers: the day the export shows and
    /// where that date came from, or that it has none the run could use.
    pub snapshot: Option<String>,
}

impl From<&FileRecord> for InputRecord {
    fn from(f: &FileRecord) -> InputRecord {
        InputRecord {
            table: f.table.map(|t| t.as_str()),
            path: f.path.clone(),
            bytes: f.size,
            sha256: f.sha256.clone(),
            encoding: f.encoding.clone(),
            sheet: f.sheet.clone(),
            status: match &f.status {
                FileStatus::Loaded => "loaded".into(),
                FileStatus::Duplicate { of } => format!("duplicate of {of}"),
                FileStatus::Failed { error } => format!("failed: {error}"),
            },
            rows_loaded: f.rows_loaded,
            rows_rejected: f.rows_rejected,
            rows_skipped: f.rows_skipped,
            rows_shared: f.rows_shared,
            rows_counted_elsewhere: f.rows_counted_elsewhere,
            absent_columns: f.absent_columns.clone(),
            snapshot: f.date_note(),
        }
    }
}

/// `run.json`: what ran, when, and what it found.
#[derive(Debug, Serialize)]
pub struct RunRecord {
    pub tool: &'static str,
    pub version: &'static str,
    pub job: String,
    pub period: String,
    pub as_of: Option<String>,
    pub started: String,
    pub finished: String,
    pub findings: usize,
    pub by_code: BTreeMap<String, usize>,
    pub by_severity: BTreeMap<String, usize>,
    pub inputs: usize,
    pub failed_inputs: usize,
    pub rejected_rows: usize,
    /// The day of the roster snapshot the run used, if any roster loaded.
    pub roster_snapshot: Option<String>,
    /// Checks that did not run: codes, why, input, column, detail.
    pub not_checked: Vec<crate::checks::NotChecked>,
}

/// The seal of a run folder: `SHA256SUMS` in `sha256sum` format.
pub const SEAL: &str = "SHA256SUMS";

/// Every file under `dir` (recursively), `/`-separated relative paths,
/// sorted.
pub fn files_under(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Seals a finished run folder: writes `SHA256SUMS` (one `hash  path`
/// line per file, `sha256sum -c` reads it) and makes every file read-only.
/// A sealed folder is never written again. A file in `written` has the
/// digest of the bytes the run wrote, if it still has their size: a change
/// after that is not sealed but found by `archive verify`; a change of size,
/// or the file gone, refuses the seal.
pub fn seal(dir: &Path, written: &Written) -> Result<()> {
    let files = files_under(dir).with_context(|| format!("listing {}", dir.display()))?;
    if let Some(gone) = written.keys().find(|f| !files.contains(f)) {
        anyhow::bail!("{} is gone since it was written", dir.join(gone).display());
    }
    let mut sums = String::new();
    for f in files.iter().filter(|f| *f != SEAL) {
        let path = dir.join(f);
        let sha = match written.get(f) {
            Some((len, sha)) => {
                let now = std::fs::metadata(&path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .len();
                anyhow::ensure!(
                    now == *len,
                    "{} changed after it was written: {len} bytes written, {now} bytes now",
                    path.display()
                );
                sha.clone()
            }
            None => {
                crate::ingest::hash_file(&path)
                    .with_context(|| format!("hashing {}", path.display()))?
                    .1
            }
        };
        sums.push_str(&format!("{sha}  {f}\n"));
    }
    let mut out = create_private(&dir.join(SEAL))?;
    out.write_all(sums.as_bytes())?;
    drop(out);
    #[cfg(unix)]
    for f in files.iter().map(String::as_str).chain([SEAL]) {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(f);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400))
            .with_context(|| format!("making {} read-only", p.display()))?;
    }
    Ok(())
}

/// A folder's id in the evidence chain: `<period>/<job or returns>/<id>`,
/// as `run_dirs` finds it under the archive.
pub fn chain_id(dir: &Path) -> String {
    let parts: Vec<String> = dir
        .components()
        .rev()
        .take(3)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// The digest the chain records of a sealed folder: its seal's SHA-256.
pub fn seal_digest(dir: &Path) -> std::io::Result<String> {
    crate::ingest::hash_file(&dir.join(SEAL)).map(|(_, sha)| sha)
}

/// Seals `dir` and appends it to the evidence chain as `kind` (`seal`
/// for a run folder, `return` for a kept return).
pub fn seal_chained(
    dir: &Path,
    store: &mut crate::store::Store,
    kind: &str,
    at: &str,
) -> Result<crate::store::ChainEntry> {
    seal(dir, &Written::new())?;
    let digest =
        seal_digest(dir).with_context(|| format!("hashing the seal of {}", dir.display()))?;
    Ok(store.chain_append(kind, &chain_id(dir), &digest, at)?)
}

/// Checks the evidence chain against itself and the archive: every
/// entry's hash (a changed or removed entry breaks every hash after it);
/// every sealed folder the chain records still has the seal it recorded,
/// or a tombstone says retention deleted it; every sealed folder in the
/// archive is in the chain; and, given a head copied from a mail or a
/// workbook (`head`, 16 or more hex characters), that the chain still
/// contains it, so it extends what that copy saw.
pub fn verify_chain(
    base: &Path,
    chain: &[crate::store::ChainEntry],
    head: Option<&str>,
) -> Result<Vec<ArchiveProblem>> {
    use crate::store::chain::{GENESIS, entry_hash};
    let mut problems = Vec::new();
    let mut report = |run: &str, problem: String| {
        problems.push(ArchiveProblem {
            run: run.to_owned(),
            problem,
        })
    };
    let mut prev = GENESIS.to_owned();
    for (i, e) in chain.iter().enumerate() {
        let at = format!("chain entry {}", i + 1);
        if e.seq != i as i64 + 1 {
            report(
                &at,
                format!("numbered {}: an entry before it is missing", e.seq),
            );
        }
        if e.prev != prev || e.hash != entry_hash(&e.prev, e.seq, &e.kind, &e.id, &e.digest, &e.at)
        {
            report(
                &at,
                format!(
                    "({} {}) was altered: its hash no longer follows from the chain",
                    e.kind, e.id
                ),
            );
        }
        prev = e.hash.clone();
    }
    let tombstoned: BTreeSet<&str> = chain
        .iter()
        .filter(|e| e.kind == "tombstone")
        .map(|e| e.id.as_str())
        .collect();
    let mut recorded: BTreeMap<&str, &str> = BTreeMap::new();
    for e in chain
        .iter()
        .filter(|e| e.kind == "seal" || e.kind == "return")
    {
        recorded.insert(e.id.as_str(), e.digest.as_str());
    }
    for (id, digest) in &recorded {
        let dir = base.join(id);
        if !dir.exists() {
            if !tombstoned.contains(id) {
                report(
                    id,
                    "is in the evidence chain but gone, and no retention deletion recorded it"
                        .into(),
                );
            }
            continue;
        }
        match seal_digest(&dir) {
            Ok(d) if d == *digest => {}
            Ok(_) => report(
                id,
                format!(
                    "its {SEAL} is not the one the evidence chain recorded: the folder was rewritten with a new seal"
                ),
            ),
            Err(_) => report(id, format!("its {SEAL} is missing")),
        }
    }
    for dir in run_dirs(base).with_context(|| format!("reading {}", base.display()))? {
        let id = chain_id(&dir);
        if dir.join(SEAL).exists() && !recorded.contains_key(id.as_str()) {
            report(&id, "is sealed but not in the evidence chain".into());
        }
    }
    if let Some(h) = head {
        let h = h.trim().to_ascii_lowercase();
        if h.len() < 16 || !chain.iter().any(|e| e.hash.starts_with(&h)) {
            report(
                "chain",
                format!(
                    "does not contain head {h}: it was truncated or rewritten since that head was copied"
                ),
            );
        }
    }
    Ok(problems)
}

/// Something wrong with a run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveProblem {
    /// The run folder, relative to the archive.
    pub run: String,
    pub problem: String,
}

/// Run folders: `<period>/<job>/<run-id>` under `base`, sorted.
pub fn run_dirs(base: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !base.exists() {
        return Ok(out);
    }
    let subdirs = |d: &Path| -> std::io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        Ok(v)
    };
    // The input store is not a period (see the `inputs` module).
    for period in subdirs(base)?
        .into_iter()
        .filter(|p| !p.ends_with(crate::config::INPUT_STORE))
    {
        for job in subdirs(&period)? {
            out.extend(subdirs(&job)?);
        }
    }
    Ok(out)
}

/// Checks every run folder under `base` against its seal: a missing seal,
/// a missing, changed or added file is a problem. Returns the folders
/// checked and the problems.
pub fn verify_all(base: &Path) -> Result<(usize, Vec<ArchiveProblem>)> {
    let dirs = run_dirs(base).with_context(|| format!("reading {}", base.display()))?;
    let mut problems = Vec::new();
    for dir in &dirs {
        let run = dir
            .strip_prefix(base)
            .unwrap_or(dir)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let mut report = |problem: String| {
            problems.push(ArchiveProblem {
                run: run.clone(),
                problem,
            })
        };
        let Ok(sums) = std::fs::read_to_string(dir.join(SEAL)) else {
            report(format!(
                "no {SEAL}: the run never finished, or its seal was removed"
            ));
            continue;
        };
        let mut listed = BTreeMap::new();
        for line in sums.lines() {
            match line.split_once("  ") {
                Some((sha, f)) => {
                    listed.insert(f.to_owned(), sha.to_owned());
                }
                None => report(format!("{SEAL}: unreadable line {line:?}")),
            }
        }
        let present = files_under(dir).with_context(|| format!("listing {}", dir.display()))?;
        for f in present.iter().filter(|f| *f != SEAL) {
            if !listed.contains_key(f) {
                report(format!("{f} was added after the run was sealed"));
            }
        }
        for (f, sha) in &listed {
            match crate::ingest::hash_file(&dir.join(f)) {
                Err(_) => report(format!("{f} is missing")),
                Ok((_, now)) if &now != sha => {
                    report(format!("{f} changed: sha256 {sha} when sealed, {now} now"))
                }
                Ok(_) => {}
            }
        }
    }
    Ok((dirs.len(), problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_stay_inside() {
        let dir = Path::new("/srv/archive/run");
        assert_eq!(inside(dir, "KHB.xlsx").unwrap(), dir.join("KHB.xlsx"));
        assert_eq!(
            inside(dir, "2026-01-01..2026-03-31").unwrap(),
            dir.join("2026-01-01..2026-03-31"),
            "dots inside a name are no traversal"
        );
        for bad in [
            "", ".", "..", "../x", "a/b", "a\\b", "/etc", "C:\\x", "a\0b", "a\nb",
        ] {
            assert!(inside(dir, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_for_people_lose_separators_and_controls() {
        assert_eq!(
            file_name_of("../../局/二:三*\u{7}.xlsx"),
            ".._.._局_二_三__.xlsx"
        );
        assert_eq!(file_name_of(".."), "_");
        assert_eq!(
            file_name_of("健保WebIR稽核_高雄.xlsx"),
            "健保WebIR稽核_高雄.xlsx"
        );
    }

    /// A file hashed as it was written is sealed with that digest, the one
    /// `sha256sum` gives; one whose size changed since, or gone, is not.
    #[test]
    fn a_file_hashed_as_written_is_sealed_with_its_digest_unless_it_changed_size_or_went() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |dir: &Path| -> Written {
            std::fs::create_dir(dir).unwrap();
            let file = create_private(&dir.join("population.tsv")).unwrap();
            let mut w = crate::ingest::Hashing::new(file).unwrap();
            w.write_all(b"A123456789\t1\n").unwrap();
            w.write_all("甲\t2\n".as_bytes()).unwrap();
            let (len, sha) = w.finish().unwrap();
            std::fs::write(dir.join("run.json"), b"{}").unwrap();
            Written::from([("population.tsv".to_owned(), (len, sha))])
        };
        let dir = tmp.path().join("run");
        let written = write(&dir);
        seal(&dir, &written).unwrap();
        let sums = std::fs::read_to_string(dir.join(SEAL)).unwrap();
        let (_, on_disk) = crate::ingest::hash_file(&dir.join("population.tsv")).unwrap();
        assert!(
            sums.contains(&format!("{on_disk}  population.tsv\n")),
            "{sums}"
        );
        assert_eq!(written["population.tsv"].1, on_disk);

        let changed = tmp.path().join("changed");
        let written = write(&changed);
        std::fs::write(changed.join("population.tsv"), b"A123456789\t1\n").unwrap();
        let err = seal(&changed, &written).unwrap_err();
        assert!(
            format!("{err:#}").contains("changed after it was written"),
            "{err:#}"
        );
        assert!(!changed.join(SEAL).exists());

        let gone = tmp.path().join("gone");
        let written = write(&gone);
        std::fs::remove_file(gone.join("population.tsv")).unwrap();
        let err = seal(&gone, &written).unwrap_err();
        assert!(
            format!("{err:#}").contains("population.tsv is gone since it was written"),
            "{err:#}"
        );
        assert!(!gone.join(SEAL).exists());
    }
}
