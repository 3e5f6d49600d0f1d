//! The jobs the program does, one closed type: its name (on the command
//! line, in schedules, in the run ledger and in run folders), the period
//! rule it takes, what the inbox must hold before it runs and whether it
//! is a duty of the regulation. Unknown names are refused where they are
//! parsed. Pure description: what each job does is in `run`.

use crate::period::PeriodRule;
use crate::vocab::text_enum;

text_enum! {
    /// A job.
    Job("job") {
        /// Point 6(1): the half-yearly sample audit (its query check included).
        SampleAudit = "sample-audit",
        /// Points 5(1)3, 6(2): the yearly account review.
        AccountReview = "account-review",
        /// Point 5(3): the quarterly account review, for stale passwords
        /// above all (the review includes ACCOUNT_PASSWORD_STALE).
        PasswordCheck = "password-check",
        /// Points 3, 5(2): the query check of a period, by hand.
        QueryCheck = "query-check",
        /// Point 6(3): each unit's yearly internal audit.
        InternalAudit = "internal-audit",
        /// Points 4(2), 4(5): the Health Bureau's external audit.
        ExternalAudit = "external-audit",
        /// Point 5(4): deleting run folders past `rules.retention_years`.
        Retention = "retention",
        /// A weekly status mail to `mail.admin`.
        Heartbeat = "heartbeat",
    }
}

/// What a job's run asks of the units, by the deadline the config sets
/// for it (`[followup]`); a job that asks nothing has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// The sample worksheet (`worksheet_days`).
    Worksheet,
    /// The account review's decisions (`account_review_days`).
    AccountReview,
    /// The internal audit's record (`internal_audit_days`).
    InternalAudit,
    /// What was done about the query findings (`query_check_days`).
    QueryCheck,
    /// The drawn units' preparation for the external audit
    /// (`external_prep_days`).
    ExternalPrep,
}

/// How a job is told what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// An audit period (`2026H1`, `2026`, `FROM..TO`).
    Period,
    /// A review day (`as-of-2026-07-02`).
    AsOf,
    /// Nothing: the job works on the archive or the state.
    None,
}

impl Job {
    /// One line on what the job is, for `--help`.
    pub fn about(self) -> &'static str {
        match self {
            Job::SampleAudit => "Point 6(1): the seeded sample audit of a period",
            Job::AccountReview => "Points 5(1)3, 6(2): the account review as of a day",
            Job::PasswordCheck => {
                "Point 5(3): the quarterly password check, a notice to the units with overdue passwords"
            }
            Job::QueryCheck => "Points 3, 5(2): the query check of a period",
            Job::InternalAudit => "Point 6(3): each unit's yearly internal audit, pre-filled",
            Job::ExternalAudit => {
                "Point 4: the Health Bureau's seeded draw of units and its review of officer accounts"
            }
            Job::Retention => {
                "Delete run folders past rules.retention_years (kept while a sample worksheet has not come back)"
            }
            Job::Heartbeat => "Queue the weekly status mail to mail.admin",
        }
    }

    /// What the job covers.
    pub fn span(self) -> Span {
        match self {
            Job::SampleAudit | Job::QueryCheck | Job::InternalAudit | Job::ExternalAudit => {
                Span::Period
            }
            Job::AccountReview | Job::PasswordCheck => Span::AsOf,
            Job::Retention | Job::Heartbeat => Span::None,
        }
    }

    /// Whether the job's run is an audit sealed as evidence (a draw or the
    /// yearly audit): it takes no export's date from the file's
    /// modification time unless `rules.accept_modification_dates` says so,
    /// since a copy, a backup or a restore changes that time.
    pub fn sealed_audit(self) -> bool {
        matches!(
            self,
            Job::SampleAudit | Job::InternalAudit | Job::ExternalAudit
        )
    }

    /// The job whose run folders hold this job's runs
    /// (`<period>/<job>/<id>`); none for a job that makes no run folder.
    /// The quarterly password check has its own: it is no account review
    /// (nothing finds it as the latest one).
    pub fn folder(self) -> Option<Job> {
        match self {
            Job::Retention | Job::Heartbeat => None,
            j => Some(j),
        }
    }

    /// Whether the job draws a seed (and is refused a second draw of a
    /// period unless asked for).
    pub fn draws(self) -> bool {
        matches!(self, Job::SampleAudit | Job::ExternalAudit)
    }

    /// Whether the job is an account review as of its due day (the yearly
    /// review and the quarterly password check are the same work).
    pub fn reviews_accounts(self) -> bool {
        matches!(self, Job::AccountReview | Job::PasswordCheck)
    }

    /// The period rules a schedule of the job may take; none for a job
    /// that is not scheduled.
    pub fn periods(self) -> &'static [PeriodRule] {
        match self {
            Job::SampleAudit => &[PeriodRule::PreviousHalfYear],
            Job::AccountReview | Job::InternalAudit | Job::ExternalAudit => {
                &[PeriodRule::PreviousYear]
            }
            Job::PasswordCheck => &[PeriodRule::PreviousQuarter],
            Job::Retention => &[PeriodRule::Day],
            Job::Heartbeat => &[PeriodRule::Week],
            Job::QueryCheck => &[],
        }
    }

    /// The longest the regulation allows between two runs, and the rule.
    pub fn slowest(self) -> Option<(i64, &'static str)> {
        match self {
            Job::SampleAudit => Some((184, "point 6(1): a sample audit every six months")),
            Job::AccountReview => Some((366, "points 5(1)3 and 6(2): a yearly account review")),
            Job::InternalAudit => Some((366, "point 6(3): a yearly internal audit")),
            Job::ExternalAudit => Some((366, "point 4(2): a yearly external audit")),
            Job::PasswordCheck => Some((92, "point 5(3): passwords changed every 90 days")),
            Job::QueryCheck | Job::Retention | Job::Heartbeat => None,
        }
    }

    /// The duty of the regulation the job is, which every deployment must
    /// schedule. The heartbeat is a convenience and the query check is run
    /// by hand (the sample audit includes it).
    pub fn duty(self) -> Option<&'static str> {
        match self {
            Job::SampleAudit => Some("point 6(1): a sample audit at least every six months"),
            Job::AccountReview => Some("points 5(1)3 and 6(2): a yearly account review"),
            Job::PasswordCheck => Some("point 5(3): passwords changed every three months"),
            Job::InternalAudit => Some("point 6(3): a yearly internal audit"),
            Job::ExternalAudit => Some("points 4(2) and 4(5): the yearly external audit"),
            Job::Retention => Some("point 5(4): records kept at least three years, then deleted"),
            Job::QueryCheck | Job::Heartbeat => None,
        }
    }

    /// The deadline by which a unit answers a run of the job; none when
    /// the job asks nothing of the units.
    pub fn deadline(self) -> Option<Deadline> {
        match self {
            Job::SampleAudit => Some(Deadline::Worksheet),
            Job::AccountReview => Some(Deadline::AccountReview),
            // A notice: nothing to return.
            Job::PasswordCheck => None,
            Job::InternalAudit => Some(Deadline::InternalAudit),
            Job::QueryCheck => Some(Deadline::QueryCheck),
            // Asked of the units drawn, not of every unit (point 6(4)).
            Job::ExternalAudit => Some(Deadline::ExternalPrep),
            Job::Retention | Job::Heartbeat => None,
        }
    }

    /// What the inbox must hold before the job runs for a period. Account
    /// reviews wait for query logs too: idle and never-used accounts are
    /// judged on them.
    pub fn awaits(self) -> AwaitedInputs {
        match self {
            Job::SampleAudit | Job::InternalAudit | Job::QueryCheck => AwaitedInputs {
                query_logs: true,
                roster_and_hr: true,
                calendar: true,
            },
            Job::ExternalAudit | Job::AccountReview | Job::PasswordCheck => AwaitedInputs {
                query_logs: true,
                roster_and_hr: true,
                calendar: false,
            },
            Job::Retention | Job::Heartbeat => AwaitedInputs::default(),
        }
    }
}

/// The exports a job waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AwaitedInputs {
    /// Query logs reaching the period's last day.
    pub query_logs: bool,
    /// A roster and an HR file modified after the period's end.
    pub roster_and_hr: bool,
    /// A holidays calendar (if one is configured) for every year of the
    /// period: off-hours checks need it.
    pub calendar: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for j in Job::ALL {
            assert_eq!(j.as_str().parse::<Job>(), Ok(j));
        }
        let e = "query_check".parse::<Job>().unwrap_err().to_string();
        assert!(e.contains("unknown job \"query_check\""), "{e}");
        assert!(e.contains("sample-audit"), "{e}");
    }
}
