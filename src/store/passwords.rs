//! The attachment passwords (rule 5(2)2): one current password per unit,
//! made on first use; a new one retires the old, which is kept so that a
//! workbook encrypted with it can still be opened. Each is stored sealed
//! under the key file outside the state folder ([`KeyFile`]); one an
//! earlier version stored in the clear is sealed when the key is next used.

use rusqlite::{OptionalExtension, params};

use super::{Store, self_err};
use crate::keyfile::KeyFile;

/// A unit's attachment password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentPassword {
    pub unit_id: String,
    pub password: String,
    pub issued_at: String,
    /// When a newer password replaced it (`None`: the current one).
    pub retired_at: Option<String>,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AttachmentPassword> {
    Ok(AttachmentPassword {
        unit_id: r.get(0)?,
        password: r.get(1)?,
        issued_at: r.get(2)?,
        retired_at: r.get(3)?,
    })
}

const COLUMNS: &str = "unit_id, password, issued_at, retired_at";

/// Every row `tail` (a WHERE or ORDER BY clause) selects, with its id.
fn with_ids(
    conn: &rusqlite::Connection,
    tail: &str,
) -> rusqlite::Result<Vec<(i64, AttachmentPassword)>> {
    conn.prepare(&format!(
        "SELECT id, {COLUMNS} FROM attachment_passwords {tail}"
    ))?
    .query_map([], |r| {
        Ok((
            r.get(0)?,
            AttachmentPassword {
                unit_id: r.get(1)?,
                password: r.get(2)?,
                issued_at: r.get(3)?,
                retired_at: r.get(4)?,
            },
        ))
    })?
    .collect()
}

/// A unit's current password.
const CURRENT: &str = "SELECT unit_id, password, issued_at, retired_at FROM attachment_passwords
     WHERE unit_id = ?1 AND retired_at IS NULL";

impl Store {
    /// The key the passwords are sealed under, at `path`: made there on
    /// first use, but never when passwords are already sealed (a key gone
    /// or a wrong path would otherwise seal new ones under a new key and
    /// leave the old unopenable).
    pub fn password_key(&self, path: &std::path::Path) -> anyhow::Result<KeyFile> {
        if !path.exists() {
            let sealed: i64 = self
                .conn
                .query_row(
                    "SELECT count(*) FROM attachment_passwords WHERE password LIKE 'v1:%'",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            anyhow::ensure!(
                sealed == 0,
                "{}: the key {sealed} attachment passwords are sealed under is not there \
                 (paths.key_file): restore it, or point paths.key_file at it; a new key \
                 would open none of them",
                path.display()
            );
        }
        KeyFile::open_or_create(path)
    }

    /// Seals every password an earlier version stored in the clear.
    fn seal_clear_passwords(&mut self, key: &KeyFile) -> anyhow::Result<()> {
        let tx = super::begin(&mut self.conn).map_err(|e| self_err(&self.file, e))?;
        let clear =
            with_ids(&tx, "WHERE password NOT LIKE 'v1:%'").map_err(|e| self_err(&self.file, e))?;
        for (id, p) in clear {
            let sealed = key.seal(&p.unit_id, &p.issued_at, &p.password)?;
            tx.execute(
                "UPDATE attachment_passwords SET password = ?2 WHERE id = ?1",
                params![id, sealed],
            )
            .map_err(|e| self_err(&self.file, e))?;
        }
        tx.commit().map_err(|e| self_err(&self.file, e))?;
        Ok(())
    }

    fn opened(key: &KeyFile, mut p: AttachmentPassword) -> anyhow::Result<AttachmentPassword> {
        p.password = key.open_password(&p.unit_id, &p.issued_at, &p.password)?;
        Ok(p)
    }

    /// The unit's current attachment password, if one was issued.
    pub fn attachment_password(
        &mut self,
        unit_id: &str,
        key: &KeyFile,
    ) -> anyhow::Result<Option<AttachmentPassword>> {
        self.seal_clear_passwords(key)?;
        let p = self
            .conn
            .query_row(CURRENT, params![unit_id], row)
            .optional()
            .map_err(|e| self.err(e))?;
        p.map(|p| Self::opened(key, p)).transpose()
    }

    /// The unit's current password, or `make()` issued as it at `at` when
    /// it has none. Read and insert are one immediate transaction, so two
    /// processes never issue two passwords for a unit.
    pub fn attachment_password_or_issue(
        &mut self,
        unit_id: &str,
        at: &str,
        make: impl FnOnce() -> String,
        key: &KeyFile,
    ) -> anyhow::Result<AttachmentPassword> {
        self.seal_clear_passwords(key)?;
        let tx = super::begin(&mut self.conn).map_err(|e| self_err(&self.file, e))?;
        let current = tx
            .query_row(CURRENT, params![unit_id], row)
            .optional()
            .map_err(|e| self_err(&self.file, e))?;
        let p = match current {
            Some(p) => Self::opened(key, p)?,
            None => {
                let p = AttachmentPassword {
                    unit_id: unit_id.to_owned(),
                    password: make(),
                    issued_at: at.to_owned(),
                    retired_at: None,
                };
                tx.execute(
                    "INSERT INTO attachment_passwords (unit_id, password, issued_at) VALUES (?1, ?2, ?3)",
                    params![p.unit_id, key.seal(&p.unit_id, &p.issued_at, &p.password)?, p.issued_at],
                )
                .map_err(|e| self_err(&self.file, e))?;
                p
            }
        };
        tx.commit().map_err(|e| self_err(&self.file, e))?;
        Ok(p)
    }

    /// Issues `password` as the unit's current one at `at`, retiring the
    /// one before it.
    pub fn issue_attachment_password(
        &mut self,
        unit_id: &str,
        password: &str,
        at: &str,
        key: &KeyFile,
    ) -> anyhow::Result<()> {
        self.seal_clear_passwords(key)?;
        let sealed = key.seal(unit_id, at, password)?;
        let tx = super::begin(&mut self.conn).map_err(|e| self_err(&self.file, e))?;
        tx.execute(
            "UPDATE attachment_passwords SET retired_at = ?2 WHERE unit_id = ?1 AND retired_at IS NULL",
            params![unit_id, at],
        )
        .map_err(|e| self_err(&self.file, e))?;
        tx.execute(
            "INSERT INTO attachment_passwords (unit_id, password, issued_at) VALUES (?1, ?2, ?3)",
            params![unit_id, sealed, at],
        )
        .map_err(|e| self_err(&self.file, e))?;
        tx.commit().map_err(|e| self_err(&self.file, e))?;
        Ok(())
    }

    /// Every password ever issued, current and retired, by unit and age.
    pub fn attachment_passwords(
        &mut self,
        key: &KeyFile,
    ) -> anyhow::Result<Vec<AttachmentPassword>> {
        self.seal_clear_passwords(key)?;
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM attachment_passwords ORDER BY unit_id, id"
            ))
            .map_err(|e| self.err(e))?;
        let rows: Vec<AttachmentPassword> = stmt
            .query_map([], row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        rows.into_iter().map(|p| Self::opened(key, p)).collect()
    }

    /// Seals every password again under `new` (opened with `old`), in one
    /// transaction: all move to the new key, or none.
    pub fn reseal_passwords(&mut self, old: &KeyFile, new: &KeyFile) -> anyhow::Result<usize> {
        self.seal_clear_passwords(old)?;
        self.atomically(|s| {
            let rows = with_ids(&s.conn, "ORDER BY id").map_err(|e| s.err(e))?;
            for (id, p) in &rows {
                let plain = old.open_password(&p.unit_id, &p.issued_at, &p.password)?;
                s.conn
                    .execute(
                        "UPDATE attachment_passwords SET password = ?2 WHERE id = ?1",
                        params![id, new.seal(&p.unit_id, &p.issued_at, &plain)?],
                    )
                    .map_err(|e| s.err(e))?;
            }
            Ok(rows.len())
        })
    }
}
