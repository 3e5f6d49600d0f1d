//! The key the attachment passwords are kept under (rule 5(2)2: the
//! passwords are not kept beside what they open). The state database holds
//! the encrypted attachments in its outbox; the passwords in it are
//! sealed (XChaCha20-Poly1305, a random nonce each, the unit and issue time
//! bound in) under a 32-byte key in a file outside the state folder
//! (`paths.key_file`, mode 0400; a systemd credential in the shipped unit).
//! A copy of the database alone opens nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// How a sealed password starts; anything else is a password stored in
/// the clear by an earlier version (sealed on first use).
const PREFIX: &str = "v1:";

/// A key file's bytes.
const KEY_BYTES: usize = 32;

/// The key the attachment passwords are sealed under.
pub struct KeyFile {
    path: PathBuf,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile").field("path", &self.path).finish()
    }
}

impl KeyFile {
    /// Reads the key at `path`, or makes one there (mode 0400, its folder
    /// 0700) if there is none. A key file others may read, or of another
    /// size, is refused.
    pub fn open_or_create(path: &Path) -> Result<KeyFile> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path)?,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            Ok(_) => {}
        }
        Self::open(path)
    }

    /// Reads the key at `path` (it must exist).
    pub fn open(path: &Path) -> Result<KeyFile> {
        let meta = std::fs::metadata(path).with_context(|| {
            format!(
                "{}: the attachment passwords' key (paths.key_file) cannot be read",
                path.display()
            )
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            anyhow::ensure!(
                mode & 0o077 == 0,
                "{}: mode {mode:04o}: the attachment passwords' key must be readable by its owner only (0400)",
                path.display()
            );
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        anyhow::ensure!(
            bytes.len() == KEY_BYTES,
            "{}: {} bytes: a key file holds exactly {KEY_BYTES}",
            path.display(),
            bytes.len()
        );
        Ok(KeyFile {
            path: path.to_owned(),
            cipher: XChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    /// Where the key is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `password` sealed, bound to its unit and issue time.
    pub fn seal(&self, unit_id: &str, issued_at: &str, password: &str) -> Result<String> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no random nonce: {e}"))?;
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: password.as_bytes(),
                    aad: &bound(unit_id, issued_at),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing a password failed"))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// The password `stored` holds: opened if sealed, as is if it is an
    /// earlier version's clear text.
    pub fn open_password(&self, unit_id: &str, issued_at: &str, stored: &str) -> Result<String> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .context("a sealed password is not base64")?;
        anyhow::ensure!(bytes.len() > 24, "a sealed password is cut short");
        let (nonce, sealed) = bytes.split_at(24);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &bound(unit_id, issued_at),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "{unit_id}'s attachment password of {issued_at} does not open with the key {}: \
                     a different key, or one rotated (passwords rotate-key) without pointing \
                     paths.key_file at the new one",
                    self.path.display()
                )
            })?;
        String::from_utf8(plain).context("a sealed password is not UTF-8")
    }

    /// Whether `stored` is sealed (not an earlier version's clear text).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

/// What a sealed password is bound to: its unit and issue time.
fn bound(unit_id: &str, issued_at: &str) -> Vec<u8> {
    format!("webir-audit/attachment-password/v1\n{unit_id}\n{issued_at}\n").into_bytes()
}

/// Writes a new random key at `path` (which must not exist), mode 0400,
/// its folder made 0700 if it is made.
pub fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making {} private", dir.display()))?;
        }
    }
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no random key: {e}"))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o400);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating the key file {}", path.display()))?;
    f.write_all(&key)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_password_opens_only_with_its_key_unit_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let a = KeyFile::open_or_create(&dir.path().join("keys/a.key")).unwrap();
        let b = KeyFile::open_or_create(&dir.path().join("keys/b.key")).unwrap();
        let sealed = a
            .seal("KPB", "2026-07-01T00:00:00Z", "s3cret-密碼")
            .unwrap();
        assert!(KeyFile::is_sealed(&sealed) && !sealed.contains("s3cret"));
        assert_eq!(
            a.open_password("KPB", "2026-07-01T00:00:00Z", &sealed)
                .unwrap(),
            "s3cret-密碼"
        );
        assert!(
            b.open_password("KPB", "2026-07-01T00:00:00Z", &sealed)
                .is_err()
        );
        assert!(
            a.open_password("KSA", "2026-07-01T00:00:00Z", &sealed)
                .is_err()
        );
        assert!(
            a.open_password("KPB", "2026-07-02T00:00:00Z", &sealed)
                .is_err()
        );
        // Two seals of one password differ (a nonce each).
        assert_ne!(
            sealed,
            a.seal("KPB", "2026-07-01T00:00:00Z", "s3cret-密碼")
                .unwrap()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.path().join("keys/a.key");
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o400);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = KeyFile::open(&p).unwrap_err().to_string();
            assert!(e.contains("readable by its owner only"), "{e}");
        }
    }
}
