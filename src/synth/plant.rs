//! The sample city's staff and the problems planted on its people and
//! accounts. Every step draws from the city's one random stream, so the
//! order of the steps is part of the city: `build_city` calls them in the
//! order they were first written, and a new step goes last.

use chrono::{Duration, NaiveDate};

use super::{AGENCIES, Account, Person, Planted, Rand, Twist, date, name, national_id, unit_of};
use crate::checks::Code;

/// An ordinary account's role (not an officer's or the administrator's).
const ORDINARY: &str = "業務需求人員";

/// Each planted query twist: how many accounts carry it, how many cases
/// each has, and the code the checks must report for it.
const TWISTS: [(Twist, usize, usize, Code); 9] = [
    (Twist::NoForm, 2, 6, Code::QueryNoRequestForm),
    (Twist::NotApproved, 2, 4, Code::QueryFormNotApproved),
    (Twist::ApprovedAfter, 2, 4, Code::QueryApprovedAfterQuery),
    (Twist::Expired, 1, 3, Code::QueryFormExpired),
    (Twist::WrongPurpose, 2, 4, Code::QueryPurposeNotAllowed),
    (Twist::OffHours, 2, 8, Code::QueryOffHours),
    (Twist::FailedBurst, 1, 1, Code::QueryFailedBurst),
    (Twist::PurposeMismatch, 2, 3, Code::QueryPurposeMismatch),
    (Twist::SelfApproved, 1, 2, Code::QuerySelfApproved),
];

/// The city's people and accounts while problems are planted on them.
pub(super) struct Staff {
    pub(super) r: Rand,
    pub(super) start: NaiveDate,
    export: NaiveDate,
    pub(super) people: Vec<Person>,
    pub(super) accounts: Vec<Account>,
    pub(super) planted: Vec<Planted>,
    /// Ordinary accounts not yet given a problem.
    pool: Vec<usize>,
}

/// What the holder problems leave for the city's later steps.
pub(super) struct HolderProblems {
    /// Transferred holders' accounts; the first applied for the change.
    pub(super) transferred: Vec<usize>,
    /// People the HR list leaves out.
    pub(super) unknown_holders: Vec<usize>,
}

/// The account in query logs but not in the roster, and the account only
/// the older roster snapshot lists.
pub(super) struct RosterGaps {
    pub(super) ghost: usize,
    pub(super) removed: Account,
}

/// The accounts whose queries carry planted problems.
pub(super) struct QueryPlan {
    /// Each account with a twist, and how many cases of it.
    pub(super) twisted: Vec<(usize, Twist, usize)>,
    pub(super) self_looker: usize,
    pub(super) coworker_looker: usize,
    pub(super) spike_account: usize,
    /// Accounts that all query one popular subject.
    pub(super) many: Vec<usize>,
}

/// The applications register's three planted problems: an account nobody
/// applied for, one opened before its approval, one applied for by
/// another person.
pub(super) struct ApplicationProblems {
    pub(super) missing: usize,
    pub(super) late: usize,
    pub(super) other_holder: usize,
}

impl Staff {
    /// Every agency's staff, each with one ordinary account (a requesting
    /// agency's first its officer), all in good standing.
    pub(super) fn hired(seed: u64, start: NaiveDate, export: NaiveDate) -> Staff {
        let mut r = Rand::new(seed);
        let mut people = Vec::new();
        let mut accounts: Vec<Account> = Vec::new();
        for (ai, (.., requesting, _, n)) in AGENCIES.iter().enumerate() {
            for k in 0..*n {
                let p = people.len();
                people.push(Person {
                    person_id: format!("P{:05}", 10001 + p),
                    name: name(&mut r),
                    agency: ai,
                    employment: if r.chance(750) {
                        "編制內"
                    } else {
                        "約聘僱"
                    },
                    status: "在職",
                    effective: start - Duration::days(r.range(200, 4000)),
                    national_id: national_id(&mut r),
                });
                let created = start - Duration::days(r.range(30, 2500));
                accounts.push(Account {
                    id: format!("W{:05}", 20001 + accounts.len()),
                    person: p,
                    agency: ai,
                    role: if k == 0 && *requesting {
                        "專責人員"
                    } else {
                        ORDINARY
                    },
                    status: "啟用",
                    created,
                    password_changed: Some(export - Duration::days(r.range(1, 85))),
                    disabled_on: None,
                    weight: 20 + r.below(10) * r.below(10),
                    last_day: export,
                    ip: format!(
                        "10.{}.{}.{}",
                        20 + ai,
                        1 + r.below(4),
                        10 + accounts.len() % 240
                    ),
                });
            }
        }
        Staff {
            r,
            start,
            export,
            people,
            accounts,
            planted: Vec::new(),
            pool: Vec::new(),
        }
    }

    /// The chief administrator, and officer anomalies (pt 4, 5(1)): one
    /// agency without its officer, one with two. The ordinary accounts
    /// left become the pool the other problems are drawn from.
    pub(super) fn appoint_officers(&mut self) {
        let find = |agency: &str| AGENCIES.iter().position(|a| a.0 == agency).expect("agency");
        let khb = self.ordinary_accounts_of(find("KHB"));
        self.accounts[khb[0]].role = "總管理者";
        let ktb = self
            .accounts
            .iter()
            .position(|a| a.agency == find("KTB") && a.role == "專責人員")
            .expect("KTB officer");
        self.accounts[ktb].role = ORDINARY;
        let dsm = self.ordinary_accounts_of(find("DSM"));
        self.accounts[dsm[0]].role = "專責人員";
        self.planted.push((Code::AgencyOfficerCount, "KTB".into()));
        self.planted.push((Code::AgencyOfficerCount, "DSM".into()));
        self.pool = (0..self.accounts.len())
            .filter(|&i| self.accounts[i].role == ORDINARY)
            .collect();
    }

    fn ordinary_accounts_of(&self, agency: usize) -> Vec<usize> {
        (0..self.accounts.len())
            .filter(|&i| self.accounts[i].agency == agency && self.accounts[i].role == ORDINARY)
            .collect()
    }

    /// An ordinary account drawn from those not yet given a problem.
    fn take(&mut self) -> usize {
        let i = self.r.below(self.pool.len() as u64) as usize;
        self.pool.remove(i)
    }

    /// Records that the checks must report `code` for account `a`.
    fn plant(&mut self, code: Code, a: usize) {
        let id = self.accounts[a].id.clone();
        self.planted.push((code, id));
    }

    /// A day between `lo` and `hi` days into the period.
    fn day_in_period(&mut self, lo: i64, hi: i64) -> NaiveDate {
        self.start + Duration::days(self.r.range(lo, hi))
    }

    /// Holders who left, moved, paused or may not hold an account, and
    /// holders HR does not know.
    pub(super) fn plant_holder_problems(&mut self) -> HolderProblems {
        self.plant_departed();
        let transferred = self.plant_transferred();
        self.plant_suspended();
        self.plant_ineligible();
        let unknown_holders = self.plant_unknown_holders();
        HolderProblems {
            transferred,
            unknown_holders,
        }
    }

    /// Four departed holders (two go on querying after they left) and two
    /// retired ones.
    fn plant_departed(&mut self) {
        for k in 0..4 {
            let a = self.take();
            let p = self.accounts[a].person;
            let eff = self.day_in_period(30, 140);
            self.people[p].status = "離職";
            self.people[p].effective = eff;
            self.plant(Code::AccountHolderDeparted, a);
            if k < 2 {
                self.plant(Code::QueryAfterDeparture, a);
            } else {
                self.accounts[a].last_day = eff;
            }
        }
        for _ in 0..2 {
            let a = self.take();
            let p = self.accounts[a].person;
            self.people[p].status = "退休";
            self.people[p].effective = self.day_in_period(20, 150);
            self.accounts[a].last_day = self.people[p].effective;
            self.plant(Code::AccountHolderDeparted, a);
        }
    }

    /// Three holders transferred to another unit; returns their accounts.
    fn plant_transferred(&mut self) -> Vec<usize> {
        let mut transferred = Vec::new();
        for _ in 0..3 {
            let a = self.take();
            let p = self.accounts[a].person;
            let own_unit = unit_of(self.accounts[a].agency);
            let other = AGENCIES
                .iter()
                .enumerate()
                .position(|(i, x)| x.4 && i != own_unit)
                .expect("another unit");
            self.people[p].status = "調職";
            self.people[p].agency = other;
            self.people[p].effective = self.day_in_period(10, 160);
            self.plant(Code::AccountHolderTransferred, a);
            transferred.push(a);
        }
        // The first applied for the change (異動) after the transfer; the
        // others did not (point 2: 異動時亦同).
        for &a in &transferred[1..] {
            self.plant(Code::AccountChangeNotApplied, a);
        }
        transferred
    }

    /// Two holders on unpaid leave.
    fn plant_suspended(&mut self) {
        for _ in 0..2 {
            let a = self.take();
            let p = self.accounts[a].person;
            self.people[p].status = "留職停薪";
            self.people[p].effective = self.day_in_period(10, 120);
            self.accounts[a].last_day = self.people[p].effective;
            self.plant(Code::AccountHolderSuspended, a);
        }
    }

    /// Three holders whose kind of employment may not hold an account.
    fn plant_ineligible(&mut self) {
        for kind in ["職工", "駕駛", "臨時人員"] {
            let a = self.take();
            self.people[self.accounts[a].person].employment = kind;
            self.plant(Code::AccountIneligibleEmployment, a);
            self.plant(Code::QueryByIneligibleHolder, a);
        }
    }

    /// Two holders HR does not know; returns those people.
    fn plant_unknown_holders(&mut self) -> Vec<usize> {
        let mut unknown_holders = Vec::new();
        for _ in 0..2 {
            let a = self.take();
            unknown_holders.push(self.accounts[a].person);
            self.plant(Code::AccountHolderUnknown, a);
        }
        unknown_holders
    }

    /// Idle, never-used, stale-password, disabled and duplicate accounts.
    pub(super) fn plant_account_problems(&mut self) {
        for _ in 0..5 {
            let a = self.take();
            self.accounts[a].last_day = self.day_in_period(20, 70);
            self.plant(Code::AccountIdle, a);
        }
        for _ in 0..4 {
            let a = self.take();
            self.accounts[a].weight = 0;
            self.accounts[a].created = date("2024-03-01") + Duration::days(self.r.range(0, 300));
            self.plant(Code::AccountNeverUsed, a);
        }
        for _ in 0..10 {
            let a = self.take();
            self.accounts[a].password_changed =
                Some(self.export - Duration::days(self.r.range(95, 400)));
            self.plant(Code::AccountPasswordStale, a);
        }
        self.plant_disabled();
        self.plant_duplicates();
    }

    /// Twelve disabled accounts, one of them still used.
    fn plant_disabled(&mut self) {
        for k in 0..12 {
            let a = self.take();
            self.accounts[a].status = "停用";
            self.accounts[a].weight = 0;
            self.accounts[a].disabled_on = Some(self.start - Duration::days(self.r.range(1, 300)));
            if k == 0 {
                self.accounts[a].weight = 3;
                self.plant(Code::QueryByDisabledAccount, a);
            }
        }
    }

    /// Two people who hold a second active account.
    fn plant_duplicates(&mut self) {
        for _ in 0..2 {
            let a = self.take();
            let mut dup = self.accounts[a].clone();
            dup.id = format!("W{:05}", 20001 + self.accounts.len());
            dup.created = self.day_in_period(0, 60);
            dup.weight = 20;
            self.plant(Code::AccountDuplicate, a);
            self.planted.push((Code::AccountDuplicate, dup.id.clone()));
            self.accounts.push(dup);
        }
    }

    /// An account that queries but is missing from the roster, and one
    /// only the older roster snapshot lists (made without a draw, so the
    /// rest of the city is what it was before it existed).
    pub(super) fn plant_roster_gaps(&mut self) -> RosterGaps {
        let ghost_owner = self.take();
        let mut ghost = self.accounts[ghost_owner].clone();
        ghost.id = "W09999".into();
        ghost.weight = 3;
        self.planted
            .push((Code::AccountNotInRoster, ghost.id.clone()));
        self.planted
            .push((Code::QueryByUnrosteredAccount, ghost.id.clone()));
        let mut removed = ghost.clone();
        removed.id = "W09998".into();
        removed.weight = 0;
        self.planted
            .push((Code::AccountRemovedFromRoster, removed.id.clone()));
        self.accounts.push(ghost);
        RosterGaps {
            ghost: self.accounts.len() - 1,
            removed,
        }
    }

    /// The accounts whose queries will carry planted problems: the
    /// twists, one account with three kinds of wrong (the roll-up must
    /// flag it), a self lookup, coworker lookups, a volume spike and one
    /// subject queried by many accounts.
    pub(super) fn plan_query_problems(&mut self) -> QueryPlan {
        let mut twisted: Vec<(usize, Twist, usize)> = Vec::new();
        for (twist, n_accounts, n_cases, code) in TWISTS {
            for _ in 0..n_accounts {
                let a = self.take();
                twisted.push((a, twist, n_cases));
                self.plant(code, a);
            }
        }
        let repeat = self.take();
        for twist in [Twist::NoForm, Twist::OffHours, Twist::WrongPurpose] {
            twisted.push((repeat, twist, 2));
        }
        for code in [
            Code::QueryNoRequestForm,
            Code::QueryOffHours,
            Code::QueryPurposeNotAllowed,
            Code::AccountRepeatPattern,
        ] {
            self.plant(code, repeat);
        }
        let self_looker = self.take();
        self.plant(Code::QuerySelfLookup, self_looker);
        let coworker_looker = self.take();
        self.plant(Code::QueryCoworkerLookup, coworker_looker);
        self.plant(Code::QueryNoRequestForm, coworker_looker);
        let spike_account = self.take();
        self.plant(Code::QueryVolumeSpike, spike_account);
        let many: Vec<usize> = (0..25).map(|_| self.take()).collect();
        for &a in &many {
            self.plant(Code::QuerySubjectManyAccounts, a);
        }
        QueryPlan {
            twisted,
            self_looker,
            coworker_looker,
            spike_account,
            many,
        }
    }

    /// The applications register (points 2, 5(1)2): every account applied
    /// for by its holder and approved before it opened, but three, picked
    /// without a draw so that the rest of the city stays as it was.
    pub(super) fn plant_application_problems(&mut self) -> ApplicationProblems {
        let (missing, late, other_holder) = (self.pool[0], self.pool[1], self.pool[2]);
        self.plant(Code::AccountNoApplication, missing);
        self.plant(Code::AccountCreatedBeforeApproval, late);
        self.plant(Code::AccountApplicationOtherHolder, other_holder);
        ApplicationProblems {
            missing,
            late,
            other_holder,
        }
    }
}
