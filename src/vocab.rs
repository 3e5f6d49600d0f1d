//! Closed vocabularies: enums whose variants are written as text — on the
//! command line, in schedules, run folders, findings and the state
//! database. [`text_enum!`] gives each, from one list of variants and
//! their texts, `ALL`, `as_str`, `parse`, `names`, `FromStr` (an
//! [`UnknownText`] error naming the known texts), `Display`, `Serialize`
//! and the SQLite conversions. It is the one way an enum becomes text and
//! back: no text is compared in two places.

/// A text that names no variant of a closed vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {text:?}; known: {known}")]
pub struct UnknownText {
    /// What the vocabulary is of (`job`, `finding code`).
    pub kind: &'static str,
    pub text: String,
    /// The texts it knows, comma-separated.
    pub known: String,
}

/// Declares a closed vocabulary: `text_enum! { /// doc
/// Name("what it is") { Variant = "text", ... } }`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident($kind:literal) { $($(#[$vmeta:meta])* $variant:ident = $text:expr,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant,)+];

            /// The variant's text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The variant a text names, if any.
            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// The texts, comma-separated, for messages that refuse an
            /// unknown one.
            pub fn names() -> String {
                $name::ALL.map($name::as_str).join(", ")
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::vocab::UnknownText;

            fn from_str(s: &str) -> Result<$name, $crate::vocab::UnknownText> {
                $name::parse(s).ok_or_else(|| $crate::vocab::UnknownText {
                    kind: $kind,
                    text: s.to_owned(),
                    known: $name::names(),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                v: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<$name> {
                let s = v.as_str()?;
                $name::parse(s).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!("unknown {} {s:?}", $kind).into(),
                    )
                })
            }
        }
    };
}
pub(crate) use text_enum;
