//! The input store: exports moved out of the inbox into the archive once a
//! sealed run has read them (point 5(2)3–4: the inbox, where agencies drop
//! files, holds only what is waiting), read by later runs from here as if
//! they were still in the inbox (same names, same order), and deleted with
//! a tombstone in the evidence chain when their retention ends.
//!
//! Layout: `<archive>/inputs/<table folder>/<name>`, folders 0700, files
//! 0600; an export replaced by a newer one of the same name goes to
//! `<archive>/inputs/superseded/<table folder>/<sha256 prefix>-<name>`
//! (no run reads it again; retention deletes it like the others).

use std::path::Path;

use anyhow::{Context as _, Result};
use chrono::{Datelike as _, NaiveDate};

use crate::config::Config;
use crate::ingest::{FileRecord, FileStatus};
use crate::model::Table;
use crate::store::Store;
use crate::store::retention::ArchivedInput;

/// The input store's folder under the archive.
pub const DIR: &str = crate::config::INPUT_STORE;

/// Where an export replaced under the same name goes.
pub const SUPERSEDED: &str = "superseded";

/// Moves every export the sealed run `run` read (`files`) from the inbox
/// into the input store and records it. An export changed since the run
/// hashed it stays (it is not what the run read). One file that cannot
/// move never stops the others: each problem is returned.
pub fn archive_read(config: &Config, files: &[FileRecord], run: &str, at: &str) -> Vec<String> {
    let Some(store_dir) = config.paths.inputs.as_deref() else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    let mut moved = Vec::new();
    {
        // No run reads the inbox or the store while exports move. Only
        // files are touched under the lock (a run holds it shared while it
        // ingests, perhaps inside a database transaction): the records are
        // written after it is released.
        let _moving = match crate::ingest::inputs_lock(config, true) {
            Ok(l) => l,
            Err(e) => return vec![format!("the inputs lock: {e}")],
        };
        if let Err(e) = recover_moving(store_dir) {
            problems.push(format!("{e:#}"));
        }
        for f in files {
            if f.table.is_none() || matches!(f.status, FileStatus::Failed { .. }) {
                continue;
            }
            let from = config.paths.inbox.join(&f.path);
            if !crate::inbox::is_regular(&from) {
                continue; // read from the store, or gone
            }
            match move_one(store_dir, f, &from) {
                Ok(Some(aside)) => moved.push((f, aside)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(file = %f.path, error = %format!("{e:#}"), "export left in the inbox");
                    problems.push(format!("{}: {e:#}", f.path));
                }
            }
        }
    }
    // A record not written (a crash, a full disk) leaves a stored file
    // retention adopts.
    let recorded = Store::open(&config.paths.state)
        .map_err(anyhow::Error::from)
        .and_then(|mut store| {
            for (f, aside) in moved {
                store.record_archived_input(
                    &ArchivedInput {
                        id: 0,
                        sha256: f.sha256.clone(),
                        rel: f.path.clone(),
                        stored_as: f.path.clone(),
                        moved_at: at.to_owned(),
                        run: run.to_owned(),
                        superseded_at: None,
                    },
                    aside.as_deref(),
                )?;
            }
            Ok(())
        });
    if let Err(e) = recorded {
        problems.push(format!("recording the moved exports: {e:#}"));
    }
    problems
}

/// Moves one export: first under a hidden name in the store (a rename, or
/// a copy there), so what is hashed is what stays, whatever is dropped in
/// the inbox meanwhile; then an older export of its name aside, and the
/// rename into place. Returns whether it moved (and where the older one
/// went); a crash leaves a hidden file, which the next move or retention
/// puts in place.
fn move_one(store_dir: &Path, f: &FileRecord, from: &Path) -> Result<Option<Option<String>>> {
    let to = store_dir.join(&f.path);
    let parent = to.parent().unwrap_or(store_dir);
    private_dirs(store_dir, parent)?;
    let name = to.file_name().unwrap_or_default().to_string_lossy();
    let moving = parent.join(format!(".moving-{name}"));
    // Unchanged since the run hashed it (no write, no replacement: the
    // status-change time says so) and renamed whole: the bytes hashed.
    // Otherwise, hashed again.
    let unchanged = f.identity.filter(|read| {
        read.has_one_name() && crate::ingest::FileIdentity::of(from).as_ref() == Some(read)
    });
    let renamed = move_file(from, &moving)?;
    let same = unchanged
        .zip(crate::ingest::FileIdentity::of(&moving))
        .is_some_and(|(read, now)| renamed && read.same_file_renamed(&now));
    let sha = if same {
        f.sha256.clone()
    } else {
        crate::ingest::hash_file(&moving)
            .with_context(|| format!("hashing {}", moving.display()))?
            .1
    };
    if sha != f.sha256 {
        // Not what the run read: back where it was, for the next run.
        if !from.exists() {
            let _ = std::fs::rename(&moving, from);
        }
        anyhow::bail!("changed since the run read it: left for the next run");
    }
    let mut aside = None;
    if crate::inbox::is_regular(&to) {
        let (_, stored) =
            crate::ingest::hash_file(&to).with_context(|| format!("hashing {}", to.display()))?;
        if stored == sha {
            // The same export dropped again: the stored copy stands.
            std::fs::remove_file(&moving)
                .with_context(|| format!("removing {}", moving.display()))?;
            return Ok(None);
        }
        let (table_dir, name) = f.path.split_once('/').unwrap_or(("", &f.path));
        let rel = format!("{SUPERSEDED}/{table_dir}/{}-{name}", &stored[..12]);
        let dest = store_dir.join(&rel);
        private_dirs(store_dir, dest.parent().unwrap_or(store_dir))?;
        std::fs::rename(&to, &dest)
            .with_context(|| format!("moving {} to {}", to.display(), dest.display()))?;
        aside = Some(rel);
    }
    std::fs::rename(&moving, &to)
        .with_context(|| format!("moving {} to {}", moving.display(), to.display()))?;
    Ok(Some(aside))
}

/// Creates `dir` and the folders between `base` and it, mode 0700.
fn private_dirs(base: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut d = Some(dir);
        while let Some(p) = d.filter(|p| p.starts_with(base)) {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making {} private", p.display()))?;
            d = p.parent();
        }
    }
    Ok(())
}

/// Moves `from` to `to` (a rename; across file systems, a copy with the
/// same modification time, then the original removed), mode 0600.
/// Moves `from` to `to`, made private: renamed, or else copied (its time
/// kept) and removed. Whether it was renamed.
fn move_file(from: &Path, to: &Path) -> Result<bool> {
    let renamed = std::fs::rename(from, to).is_ok();
    if !renamed {
        let modified = std::fs::metadata(from)
            .and_then(|m| m.modified())
            .with_context(|| format!("reading {}", from.display()))?;
        std::fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        std::fs::File::options()
            .write(true)
            .open(to)
            .and_then(|f| f.set_modified(modified))
            .with_context(|| format!("dating {}", to.display()))?;
        std::fs::remove_file(from).with_context(|| format!("removing {}", from.display()))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", to.display()))?;
    }
    Ok(renamed)
}

/// The day an archived export's retention ends: the first day after the
/// end of the year it was archived in, plus `years`. Its rows are all from
/// before it was archived, so every run whose period holds them has ended
/// its own retention by then. A later run listed it too (a run reads the
/// whole store) without using its rows: `verify` recomputes such a run
/// without it, by its tombstone; runs kept longer (a hold, worksheets
/// out) keep what they read.
pub fn expires(moved_at: &str, years: u32) -> Option<NaiveDate> {
    let day = NaiveDate::parse_from_str(moved_at.get(..10)?, "%Y-%m-%d").ok()?;
    NaiveDate::from_ymd_opt(day.year() + i32::try_from(years).ok()? + 1, 1, 1)
}

/// Puts in place every export a move left under its hidden name (the
/// process died between the two renames): under its name if that is free,
/// else aside as superseded. Called under the inputs lock.
fn recover_moving(store_dir: &Path) -> Result<()> {
    for table in Table::ALL.map(Table::inbox_dir) {
        let dir = store_dir.join(table);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut left: Vec<(String, std::path::PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let real = name.strip_prefix(".moving-")?.to_owned();
                Some((real, e.path()))
            })
            .collect();
        left.sort();
        for (real, path) in left {
            let to = dir.join(&real);
            let dest = if to.exists() {
                let (_, sha) = crate::ingest::hash_file(&path)
                    .with_context(|| format!("hashing {}", path.display()))?;
                let aside = store_dir.join(SUPERSEDED).join(table);
                private_dirs(store_dir, &aside)?;
                aside.join(format!("{}-{real}", &sha[..12]))
            } else {
                to
            };
            std::fs::rename(&path, &dest)
                .with_context(|| format!("moving {} to {}", path.display(), dest.display()))?;
        }
    }
    Ok(())
}

/// Records, as moved now, every file in the store no record names (a run
/// that moved it died before recording it): nothing there outlives its
/// retention unseen.
fn adopt_unrecorded(store_dir: &Path, store: &mut Store, at: &str) -> Result<()> {
    let known: std::collections::BTreeSet<String> = store
        .archived_inputs()?
        .into_iter()
        .map(|a| a.stored_as)
        .collect();
    let mut found = Vec::new();
    for table in Table::ALL.map(Table::inbox_dir) {
        for base in [store_dir.to_path_buf(), store_dir.join(SUPERSEDED)] {
            let Ok(entries) = std::fs::read_dir(base.join(table)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let rel = if base == store_dir {
                    format!("{table}/{name}")
                } else {
                    format!("{SUPERSEDED}/{table}/{name}")
                };
                if crate::inbox::is_regular(&e.path())
                    && !name.starts_with('.')
                    && !known.contains(&rel)
                {
                    found.push((rel, e.path()));
                }
            }
        }
    }
    found.sort();
    for (rel, path) in found {
        let (_, sha) = crate::ingest::hash_file(&path)
            .with_context(|| format!("hashing {}", path.display()))?;
        let superseded = rel.starts_with(SUPERSEDED);
        store.record_archived_input(
            &ArchivedInput {
                id: 0,
                sha256: sha,
                rel: rel.clone(),
                stored_as: rel,
                moved_at: at.to_owned(),
                run: "(found in the store unrecorded)".to_owned(),
                superseded_at: superseded.then(|| at.to_owned()),
            },
            None,
        )?;
    }
    Ok(())
}

/// Checks the input store against its records (`archive verify`): every
/// export recorded is there with the hash it was moved with, and nothing
/// is there unrecorded. Returns the exports checked and the problems.
pub fn verify(
    config: &Config,
    store: &Store,
) -> Result<(usize, Vec<crate::archive::ArchiveProblem>)> {
    let mut problems = Vec::new();
    let Some(store_dir) = config.paths.inputs.as_deref() else {
        return Ok((0, problems));
    };
    let mut report = |rel: &str, problem: String| {
        problems.push(crate::archive::ArchiveProblem {
            run: format!("{DIR}/{rel}"),
            problem,
        });
    };
    let recorded = store.archived_inputs()?;
    for a in &recorded {
        let path = store_dir.join(&a.stored_as);
        match crate::ingest::hash_file(&path) {
            Ok((_, sha)) if sha == a.sha256 => {}
            Ok(_) => report(
                &a.stored_as,
                format!("changed since {} moved it in at {}", a.run, a.moved_at),
            ),
            Err(_) => report(
                &a.stored_as,
                "recorded but gone, and no retention deletion recorded it".to_owned(),
            ),
        }
    }
    for table in Table::ALL.map(Table::inbox_dir) {
        for (base, prefix) in [
            (store_dir.join(table), table.to_owned()),
            (
                store_dir.join(SUPERSEDED).join(table),
                format!("{SUPERSEDED}/{table}"),
            ),
        ] {
            let Ok(entries) = std::fs::read_dir(&base) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                let rel = format!("{prefix}/{name}");
                if !recorded.iter().any(|a| a.stored_as == rel) {
                    report(&rel, "in the input store but in no record".to_owned());
                }
            }
        }
    }
    Ok((recorded.len(), problems))
}

/// What retention did to the input store.
#[derive(Debug, Default)]
pub struct Expired {
    /// Stored paths deleted.
    pub deleted: Vec<String>,
    /// Expired but the newest export of its table: still what runs read.
    pub kept_current: Vec<String>,
    /// Expired but under a legal hold.
    pub held: Vec<String>,
}

/// Deletes the archived exports past their retention (see [`expires`]),
/// each with a tombstone; the newest roster, HR list and applications
/// register stay while they
/// are the ones runs read, and none goes that `held` keeps (a hold on a
/// unit keeps every export, which holds every unit's rows; a run kept past
/// its own retention, held or awaiting worksheets, keeps what it read).
pub fn expire(
    config: &Config,
    store: &mut Store,
    today: NaiveDate,
    at: &str,
    held_inputs: &dyn Fn(&ArchivedInput) -> bool,
) -> Result<Expired> {
    let mut out = Expired::default();
    let Some(store_dir) = config.paths.inputs.as_deref() else {
        return Ok(out);
    };
    let years = config.rules.retention_years.max(3);
    {
        let _moving = crate::ingest::inputs_lock(config, true)
            .with_context(|| format!("locking the inputs of {}", config.paths.state.display()))?;
        recover_moving(store_dir)?;
    }
    adopt_unrecorded(store_dir, store, at)?;
    let all = store.archived_inputs()?;
    // The newest current snapshot of each snapshot table (the roster, the
    // HR list, the applications register): what runs read now. Query logs and request forms cover
    // their own months; none of them is "current".
    let snapshots = [Table::Roster, Table::Hr, Table::Applications].map(Table::inbox_dir);
    let mut newest: std::collections::BTreeMap<&str, &ArchivedInput> = Default::default();
    for a in all.iter().filter(|a| a.superseded_at.is_none()) {
        let table = a.rel.split_once('/').map_or("", |(t, _)| t);
        if snapshots.contains(&table) {
            newest.insert(table, a); // oldest first, then by name: the last one wins
        }
    }
    for a in &all {
        let Some(end) = expires(a.superseded_at.as_deref().unwrap_or(&a.moved_at), years) else {
            continue;
        };
        if today < end {
            continue;
        }
        let table = a.rel.split_once('/').map_or("", |(t, _)| t);
        if newest.get(table).is_some_and(|n| n.id == a.id) {
            out.kept_current.push(a.stored_as.clone());
            continue;
        }
        if held_inputs(a) {
            out.held.push(a.stored_as.clone());
            continue;
        }
        out.deleted.push(a.stored_as.clone());
    }
    // The files go under the lock (no run is reading them), their records
    // and tombstones after it: a crash between leaves records whose files
    // are gone, which the next pass completes.
    {
        let _deleting = crate::ingest::inputs_lock(config, true)
            .with_context(|| format!("locking the inputs of {}", config.paths.state.display()))?;
        for rel in &out.deleted {
            let path = store_dir.join(rel);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("deleting {}", path.display())),
            }
        }
    }
    for a in all.iter().filter(|a| out.deleted.contains(&a.stored_as)) {
        store.delete_archived_input(a, at)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_is_kept_to_the_end_of_its_year_plus_retention() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(expires("2026-07-01T10:00:00", 3), Some(d("2030-01-01")));
        assert_eq!(expires("2026-12-31T23:59:59", 3), Some(d("2030-01-01")));
        assert_eq!(expires("2027-01-01T00:00:00", 5), Some(d("2033-01-01")));
        assert_eq!(expires("garbage", 3), None);
    }

    /// Issue 34: an export unchanged since the run read it moves into the
    /// store without being hashed again (a 954 MB log: half a second). A
    /// write since, even with its modification time set back, or another
    /// file put in its place, is still caught: the export stays in the
    /// inbox for the next run.
    #[test]
    fn only_an_export_unchanged_since_it_was_read_moves_unhashed() {
        use crate::model::Table;
        let dir = tempfile::tempdir().unwrap();
        let (inbox, store) = (dir.path().join("inbox"), dir.path().join("store"));
        std::fs::create_dir_all(inbox.join("query_logs")).unwrap();
        std::fs::create_dir_all(&store).unwrap();
        let rel = "query_logs/log.csv";
        let from = inbox.join(rel);
        let read = |text: &str| {
            std::fs::write(&from, text).unwrap();
            crate::ingest::FileRecord::as_read(&from, rel, Table::QueryLog)
        };
        let stored = || std::fs::read_to_string(store.join(rel)).unwrap();

        let f = read("as read\n");
        assert!(f.identity.is_some());
        assert!(matches!(move_one(&store, &f, &from), Ok(Some(None))));
        assert_eq!(stored(), "as read\n");
        assert!(!from.exists());

        // Written after the read, its time set back as it was.
        let f = read("as read, again\n");
        let when = std::fs::metadata(&from).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&from, "AS READ, AGAIN\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&from)
            .unwrap()
            .set_modified(when)
            .unwrap();
        let err = move_one(&store, &f, &from).unwrap_err();
        assert!(
            err.to_string().contains("changed since the run read it"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&from).unwrap(), "AS READ, AGAIN\n");
        assert_eq!(stored(), "as read\n", "the store keeps what it had");

        // Another file put in its place, of the same size and time.
        let f = read("12345\n");
        let when = std::fs::metadata(&from).unwrap().modified().unwrap();
        let other = inbox.join("other.csv");
        std::fs::write(&other, "54321\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(when)
            .unwrap();
        std::fs::rename(&other, &from).unwrap();
        let err = move_one(&store, &f, &from).unwrap_err();
        assert!(
            err.to_string().contains("changed since the run read it"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&from).unwrap(), "54321\n");
    }
}
