//! Files people drop into the inbox (returns, seeds), opened as untrusted
//! input: a regular file only (never a symlink, a device, a FIFO or a
//! folder), read without blocking and up to a cap, so a dropped link to a
//! secret, `/dev/zero` or a pipe can neither leak, fill memory nor stall a
//! pass. Refused files move aside under a name the tool makes, with the
//! name they came with recorded beside them.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The most a returned workbook may weigh: a unit's largest worksheet is
/// well under 5 MB.
pub const RETURN_MAX_BYTES: u64 = 50 * 1024 * 1024;

/// The most a seed file may weigh: a seed is a few dozen digits.
pub const SEED_MAX_BYTES: u64 = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum InboxFileError {
    #[error("{}: a symbolic link: only a file dropped in the inbox itself is read", .0.display())]
    Symlink(PathBuf),
    #[error("{}: not a regular file ({kind}): not read", file.display())]
    NotRegular { file: PathBuf, kind: &'static str },
    #[error("{}: {size} bytes, more than the {max} bytes such a file may have: not read", file.display())]
    TooLarge { file: PathBuf, size: u64, max: u64 },
    #[error("{}: {error}", file.display())]
    Io {
        file: PathBuf,
        error: std::io::Error,
    },
}

pub use crate::ingest::is_regular;
use crate::ingest::kind_of;

/// Reads the regular file at `path`, at most `max` bytes: a symlink, a
/// device, a FIFO or a larger file is refused without being read.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, InboxFileError> {
    let io = |error| InboxFileError::Io {
        file: path.to_owned(),
        error,
    };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if meta.file_type().is_symlink() {
        return Err(InboxFileError::Symlink(path.to_owned()));
    }
    if !meta.file_type().is_file() {
        return Err(InboxFileError::NotRegular {
            file: path.to_owned(),
            kind: kind_of(&meta),
        });
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        // Swapped for a link or a pipe since the check: still not
        // followed, never waited on.
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    #[cfg(unix)]
    {
        // A hard link to a file of someone else's (the daemon's own state,
        // a secret) is not a file dropped here.
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(InboxFileError::NotRegular {
                file: path.to_owned(),
                kind: "a hard link to another file",
            });
        }
    }
    if !meta.file_type().is_file() {
        return Err(InboxFileError::NotRegular {
            file: path.to_owned(),
            kind: kind_of(&meta),
        });
    }
    if meta.len() > max {
        return Err(InboxFileError::TooLarge {
            file: path.to_owned(),
            size: meta.len(),
            max,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(InboxFileError::TooLarge {
            file: path.to_owned(),
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

/// The folder, beside the files it refused, where refused files go.
pub const REFUSED: &str = "refused";

/// The line of a refused file's note that records when it was set aside.
const AT_LINE: &str = "收件時間 / at: ";

/// When the refused file whose note is `note` was set aside, as the note
/// records it (local time); `None` for a file that is not such a note.
pub fn set_aside_at(note: &Path) -> Option<chrono::NaiveDateTime> {
    let text = read_regular(note, 64 * 1024).ok()?;
    let text = String::from_utf8(text).ok()?;
    let at = text.lines().find_map(|l| l.strip_prefix(AT_LINE))?;
    chrono::NaiveDateTime::parse_from_str(at.trim(), "%Y-%m-%dT%H:%M:%S").ok()
}

/// Moves a refused `file` into `folder` under a name the tool makes
/// (`<n>.refused`, the first number free), mode 0600, and writes beside it
/// `<n>.txt`: the name it came with, when, and why it was refused. A name
/// of any length or character moves; nothing refused is overwritten.
pub fn set_aside(file: &Path, folder: &Path, at: &str, why: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(folder)?;
    if std::fs::symlink_metadata(folder)?.file_type().is_symlink() {
        return Err(std::io::Error::other(format!(
            "{}: a symbolic link, not the folder refused files go to",
            folder.display()
        )));
    }
    let mut n: u32 = 1;
    let (to, mut note) = loop {
        let to = folder.join(format!("{n:04}.refused"));
        let note = folder.join(format!("{n:04}.txt"));
        // The note is claimed first: two passes never take one number.
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&note) {
            Ok(f) if !to.exists() => break (to, f),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        n += 1;
    };
    std::fs::rename(file, &to)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A link moved aside stays a link: its target is not ours to change.
        if !std::fs::symlink_metadata(&to)?.file_type().is_symlink() {
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    use std::io::Write;
    writeln!(
        note,
        "原檔名 / name: {}\n{AT_LINE}{at}\n原因 / why: {why}",
        file.file_name().unwrap_or_default().to_string_lossy()
    )?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read_and_never_past_their_cap() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("seed.txt");
        std::fs::write(&ok, "123").unwrap();
        assert_eq!(read_regular(&ok, 10).unwrap(), b"123");
        let big = dir.path().join("big.txt");
        std::fs::write(&big, vec![b'1'; 11]).unwrap();
        assert!(matches!(
            read_regular(&big, 10),
            Err(InboxFileError::TooLarge { .. })
        ));
        #[cfg(unix)]
        {
            let link = dir.path().join("link.txt");
            std::os::unix::fs::symlink(&ok, &link).unwrap();
            assert!(matches!(
                read_regular(&link, 10),
                Err(InboxFileError::Symlink(_))
            ));
            let zero = dir.path().join("zero.txt");
            std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
            assert!(read_regular(&zero, 10).is_err());
            let fifo = dir.path().join("fifo.txt");
            let made = std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap();
            assert!(made.success());
            assert!(matches!(
                read_regular(&fifo, 10),
                Err(InboxFileError::NotRegular {
                    kind: "a named pipe",
                    ..
                })
            ));
        }
        assert!(read_regular(dir.path(), 10).is_err());
        // A hard link to a file of someone else's is not a dropped file.
        let hard = dir.path().join("hard.txt");
        std::fs::hard_link(&ok, &hard).unwrap();
        assert!(matches!(
            read_regular(&hard, 10),
            Err(InboxFileError::NotRegular { .. })
        ));
    }

    #[test]
    fn a_refused_file_of_any_name_is_set_aside_under_a_name_of_ours() {
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join(format!("{}.xlsx", "長".repeat(80)));
        std::fs::write(&long, "x").unwrap();
        let aside = dir.path().join("refused");
        let to = set_aside(&long, &aside, "2026-12-02T10:00:00", "not ours").unwrap();
        assert_eq!(to, aside.join("0001.refused"));
        assert!(!long.exists());
        let note = std::fs::read_to_string(aside.join("0001.txt")).unwrap();
        assert!(note.contains(&"長".repeat(80)) && note.contains("not ours"));
        let again = dir.path().join("b.xlsx");
        std::fs::write(&again, "y").unwrap();
        let to = set_aside(&again, &aside, "2026-12-02T10:00:00", "x").unwrap();
        assert_eq!(to, aside.join("0002.refused"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&to).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
