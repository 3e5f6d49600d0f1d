//! The clock: the one way the program learns the time, injected so tests
//! and reproductions can fix it.

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Local wall time in `tz`.
    fn local(&self, tz: Tz) -> NaiveDateTime {
        self.now().with_timezone(&tz).naive_local()
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// Another clock, `by` later: the steps of one command that must come
/// one after another in the record (a demo's ceremony: the seed given
/// after its commitment was mailed).
#[derive(Debug, Clone, Copy)]
pub struct Later<'a> {
    pub base: &'a dyn Clock,
    pub by: chrono::Duration,
}

impl Clock for Later<'_> {
    fn now(&self) -> DateTime<Utc> {
        self.base.now() + self.by
    }
}

/// The instant of local wall time `t` in `tz` (the earlier one when a
/// clock change makes it ambiguous; Asia/Taipei has none).
pub fn local_to_utc(tz: Tz, t: NaiveDateTime) -> DateTime<Utc> {
    use chrono::TimeZone;
    tz.from_local_datetime(&t)
        .earliest()
        .map_or_else(|| t.and_utc(), |l| l.with_timezone(&Utc))
}
