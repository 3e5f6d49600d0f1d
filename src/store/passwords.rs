//! The attachment passwords (rule 5(2)2): one current password per unit,
//! made on first use; a new one retires the old, which is kept so that a
//! workbook encrypted with it can still be opened.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, self_err};

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

/// A unit's current password.
const CURRENT: &str = "SELECT unit_id, password, issued_at, retired_at FROM attachment_passwords
     WHERE unit_id = ?1 AND retired_at IS NULL";

impl Store {
    /// The unit's current attachment password, if one was issued.
    pub fn attachment_password(
        &self,
        unit_id: &str,
    ) -> Result<Option<AttachmentPassword>, StoreError> {
        self.conn
            .query_row(CURRENT, params![unit_id], row)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The unit's current password, or `make()` issued as it at `at` when
    /// it has none. Read and insert are one immediate transaction, so two
    /// processes never issue two passwords for a unit.
    pub fn attachment_password_or_issue(
        &mut self,
        unit_id: &str,
        at: &str,
        make: impl FnOnce() -> String,
    ) -> Result<AttachmentPassword, StoreError> {
        let tx = super::begin(&mut self.conn).map_err(|e| self_err(&self.file, e))?;
        let current = tx
            .query_row(CURRENT, params![unit_id], row)
            .optional()
            .map_err(|e| self_err(&self.file, e))?;
        let p = match current {
            Some(p) => p,
            None => {
                let p = AttachmentPassword {
                    unit_id: unit_id.to_owned(),
                    password: make(),
                    issued_at: at.to_owned(),
                    retired_at: None,
                };
                tx.execute(
                    "INSERT INTO attachment_passwords (unit_id, password, issued_at) VALUES (?1, ?2, ?3)",
                    params![p.unit_id, p.password, p.issued_at],
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
    ) -> Result<(), StoreError> {
        let tx = super::begin(&mut self.conn).map_err(|e| self_err(&self.file, e))?;
        tx.execute(
            "UPDATE attachment_passwords SET retired_at = ?2 WHERE unit_id = ?1 AND retired_at IS NULL",
            params![unit_id, at],
        )
        .map_err(|e| self_err(&self.file, e))?;
        tx.execute(
            "INSERT INTO attachment_passwords (unit_id, password, issued_at) VALUES (?1, ?2, ?3)",
            params![unit_id, password, at],
        )
        .map_err(|e| self_err(&self.file, e))?;
        tx.commit().map_err(|e| self_err(&self.file, e))
    }

    /// Every password ever issued, current and retired, by unit and age.
    pub fn attachment_passwords(&self) -> Result<Vec<AttachmentPassword>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM attachment_passwords ORDER BY unit_id, id"
            ))
            .map_err(|e| self.err(e))?;
        stmt.query_map([], row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }
}
