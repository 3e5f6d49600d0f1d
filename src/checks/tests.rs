//! One small world that produces no finding, and for every code the
//! smallest change that triggers it (and near misses that must not).

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveDateTime};
use polars::prelude::*;

use super::{Ctx, InputFrames, Scope, query, run};
use crate::config::Config;
use crate::ingest::canonical_schema;
use crate::model::Table;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn t(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
}

#[derive(Clone)]
struct Acct {
    id: &'static str,
    person: &'static str,
    agency: &'static str,
    role: &'static str,
    employment: &'static str,
    status: &'static str,
    created: NaiveDate,
    password: Option<NaiveDate>,
    disabled_on: Option<NaiveDate>,
    /// The day of the newest roster snapshot that lists the account, when
    /// that is older than the snapshot the run uses: a removed account.
    last_listed: Option<NaiveDate>,
}

#[derive(Clone)]
struct Person {
    id: &'static str,
    agency: &'static str,
    employment: &'static str,
    status: &'static str,
    effective: NaiveDate,
    national_id: &'static str,
}

#[derive(Clone)]
struct Query {
    account: &'static str,
    at: NaiveDateTime,
    subject: &'static str,
    purpose: Option<&'static str>,
    result: &'static str,
}

#[derive(Clone)]
struct Form {
    id: &'static str,
    account: &'static str,
    subject: &'static str,
    purpose: &'static str,
    approved: Option<NaiveDateTime>,
    valid_until: Option<NaiveDate>,
    /// Who approved it (default 主管, the supervisor).
    approver: Option<&'static str>,
}

/// An application of the applications register (points 2, 5(1)2).
#[derive(Clone)]
struct App {
    account: &'static str,
    person: &'static str,
    agency: &'static str,
    kind: &'static str,
    applied: NaiveDate,
    approved: Option<NaiveDate>,
}

#[derive(Clone)]
struct World {
    accounts: Vec<Acct>,
    people: Vec<Person>,
    queries: Vec<Query>,
    forms: Vec<Form>,
    apps: Vec<App>,
}

const CONFIG: &str = r#"
[paths]
inbox = "inbox"
archive = "archive"
state = "state"
[rules]
holidays = "holidays.toml"
[mail]
from = "w@example.gov.tw"
admin = "a@example.gov.tw"
[[agencies]]
id = "KHB"
name = "衛生局"
requesting = true
purposes = ["public_health"]
officer_email = "o@example.gov.tw"
health_bureau = true
[[agencies]]
id = "KPB"
name = "警察局"
requesting = true
purposes = ["criminal_investigation"]
officer_email = "p@example.gov.tw"
[[agencies]]
id = "KPB-1"
name = "第一分局"
parent = "KPB"
"#;

/// The test config, built once: tests run on parallel threads, and a
/// holidays file rewritten under a reader's feet was a flaky failure
/// (a make-up workday read as a Saturday).
fn config() -> Config {
    static CONFIG_ONCE: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    CONFIG_ONCE.get_or_init(build_config).clone()
}

fn build_config() -> Config {
    let dir = std::env::temp_dir().join(format!("webir-checks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("holidays.toml"),
        "[[holidays]]\ndate = 2026-03-04\nname = \"假日\"\n[[workdays]]\ndate = 2026-03-07\nname = \"補班\"\n",
    )
    .unwrap();
    let raw = toml::from_str(CONFIG).unwrap();
    let config = crate::config::validate(raw, &dir.join("c.toml")).unwrap();
    // The calendar is read into the config: its folder goes, not left in
    // the temporary folder by every test run.
    std::fs::remove_dir_all(&dir).unwrap();
    config
}

const AS_OF: &str = "2026-03-10";

impl World {
    /// Four accounts, each used once on Monday 2026-03-02 at 10:00 with an
    /// approved form: nothing to find.
    fn base() -> World {
        let acct = |id, person, agency, role| Acct {
            id,
            person,
            agency,
            role,
            employment: "permanent",
            status: "active",
            created: d("2025-01-01"),
            password: Some(d("2026-02-01")),
            disabled_on: None,
            last_listed: None,
        };
        let person = |id, agency, national_id| Person {
            id,
            agency,
            employment: "permanent",
            status: "active",
            effective: d("2020-01-01"),
            national_id,
        };
        let accounts = vec![
            acct("C0", "P0", "KHB", "chief_admin"),
            acct("O1", "P1", "KHB", "officer"),
            acct("O2", "P2", "KPB", "officer"),
            acct("U1", "P3", "KPB-1", "business_user"),
        ];
        let people = vec![
            person("P0", "KHB", "A100000000"),
            person("P1", "KHB", "A100000001"),
            person("P2", "KPB", "A100000002"),
            person("P3", "KPB-1", "A100000003"),
        ];
        let mut queries = Vec::new();
        let mut forms = Vec::new();
        for (a, subject, purpose, form) in [
            ("C0", "B200000000", "public_health", "F0"),
            ("O1", "B200000001", "public_health", "F1"),
            ("O2", "B200000002", "criminal_investigation", "F2"),
            ("U1", "B200000003", "criminal_investigation", "F3"),
        ] {
            queries.push(Query {
                account: a,
                at: t("2026-03-02 10:00:00"),
                subject,
                purpose: Some(purpose),
                result: "success",
            });
            forms.push(Form {
                id: form,
                account: a,
                subject,
                purpose,
                approved: Some(t("2026-03-02 09:00:00")),
                valid_until: None,
                approver: None,
            });
        }
        // Each account applied for by its holder and approved before it
        // was opened.
        let apps = accounts
            .iter()
            .map(|a| App {
                account: a.id,
                person: a.person,
                agency: a.agency,
                kind: "add",
                applied: d("2024-12-01"),
                approved: Some(d("2024-12-15")),
            })
            .collect();
        World {
            accounts,
            people,
            queries,
            forms,
            apps,
        }
    }

    fn app(&mut self, account: &str) -> &mut App {
        self.apps.iter_mut().find(|a| a.account == account).unwrap()
    }

    fn tables(&self) -> InputFrames {
        let frame = |table: Table, cols: Vec<Column>| -> DataFrame {
            let n = cols.first().map_or(0, |c| c.len());
            let df = DataFrame::new(n, cols).unwrap();
            let schema = canonical_schema(table);
            let exprs: Vec<Expr> = schema
                .iter()
                .map(|(name, dt)| match df.column(name) {
                    Ok(_) => col(name.clone()).cast(dt.clone()),
                    Err(_) if name == "source_file" => lit(table.as_str()).alias(name.clone()),
                    Err(_) if name == "source_row" => col("__i").alias(name.clone()),
                    Err(_) => lit(NULL).cast(dt.clone()).alias(name.clone()),
                })
                .collect();
            df.lazy()
                .with_row_index("__i", Some(2))
                .select(exprs)
                .collect()
                .unwrap()
        };
        let s = |name: &str, v: Vec<Option<String>>| Column::new(name.into(), v);
        let strs =
            |f: &dyn Fn(usize) -> Option<String>, n: usize| (0..n).map(f).collect::<Vec<_>>();
        let a = &self.accounts;
        let mut roster = frame(
            Table::Roster,
            vec![
                s("account_id", strs(&|i| Some(a[i].id.into()), a.len())),
                s(
                    "holder_name",
                    strs(&|i| Some(format!("持有人{}", a[i].id)), a.len()),
                ),
                s("person_id", strs(&|i| Some(a[i].person.into()), a.len())),
                s("agency_id", strs(&|i| Some(a[i].agency.into()), a.len())),
                s("role", strs(&|i| Some(a[i].role.into()), a.len())),
                s(
                    "employment_type",
                    strs(&|i| Some(a[i].employment.into()), a.len()),
                ),
                s("status", strs(&|i| Some(a[i].status.into()), a.len())),
                Column::new(
                    "created_on".into(),
                    a.iter().map(|x| x.created).collect::<Vec<_>>(),
                ),
                Column::new(
                    "last_password_change".into(),
                    a.iter().map(|x| x.password).collect::<Vec<_>>(),
                ),
                Column::new(
                    "disabled_on".into(),
                    a.iter().map(|x| x.disabled_on).collect::<Vec<_>>(),
                ),
            ],
        );
        // What ingest adds when it resolves the roster's snapshots.
        roster
            .hstack_mut(&[
                Column::new(
                    "removed".into(),
                    a.iter()
                        .map(|x| x.last_listed.is_some())
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    crate::ingest::SNAPSHOT_DATE.into(),
                    a.iter().map(|x| x.last_listed).collect::<Vec<_>>(),
                ),
            ])
            .unwrap();
        let p = &self.people;
        let hr = frame(
            Table::Hr,
            vec![
                s("person_id", strs(&|i| Some(p[i].id.into()), p.len())),
                s("name", strs(&|i| Some(format!("人員{}", p[i].id)), p.len())),
                s("agency_id", strs(&|i| Some(p[i].agency.into()), p.len())),
                s(
                    "employment_type",
                    strs(&|i| Some(p[i].employment.into()), p.len()),
                ),
                s("status", strs(&|i| Some(p[i].status.into()), p.len())),
                Column::new(
                    "effective_date".into(),
                    p.iter().map(|x| x.effective).collect::<Vec<_>>(),
                ),
                s(
                    "national_id",
                    strs(&|i| Some(p[i].national_id.into()), p.len()),
                ),
            ],
        );
        let q = &self.queries;
        let agency_of = |acc: &str| {
            self.accounts
                .iter()
                .find(|x| x.id == acc)
                .map_or("KPB", |x| x.agency)
        };
        let query_log = frame(
            Table::QueryLog,
            vec![
                s("account_id", strs(&|i| Some(q[i].account.into()), q.len())),
                Column::new(
                    "queried_at".into(),
                    q.iter().map(|x| x.at).collect::<Vec<_>>(),
                ),
                s("query_item", strs(&|_| Some("投保資料".into()), q.len())),
                s("subject_id", strs(&|i| Some(q[i].subject.into()), q.len())),
                s("purpose", strs(&|i| q[i].purpose.map(Into::into), q.len())),
                s("result", strs(&|i| Some(q[i].result.into()), q.len())),
                s(
                    "agency_id",
                    strs(&|i| Some(agency_of(q[i].account).into()), q.len()),
                ),
                s("client_ip", strs(&|_| Some("10.0.0.1".into()), q.len())),
            ],
        );
        let f = &self.forms;
        let request_forms = frame(
            Table::RequestForms,
            vec![
                s("form_id", strs(&|i| Some(f[i].id.into()), f.len())),
                s("account_id", strs(&|i| Some(f[i].account.into()), f.len())),
                s("subject_id", strs(&|i| Some(f[i].subject.into()), f.len())),
                s("purpose", strs(&|i| Some(f[i].purpose.into()), f.len())),
                s("reason", strs(&|_| Some("業務".into()), f.len())),
                Column::new(
                    "requested_at".into(),
                    f.iter()
                        .map(|x| x.approved.unwrap_or(t("2026-03-02 08:00:00")))
                        .collect::<Vec<_>>(),
                ),
                s(
                    "approver",
                    strs(
                        &|i| {
                            f[i].approved
                                .map(|_| f[i].approver.unwrap_or("主管").into())
                        },
                        f.len(),
                    ),
                ),
                Column::new(
                    "approved_at".into(),
                    f.iter().map(|x| x.approved).collect::<Vec<_>>(),
                ),
                Column::new(
                    "valid_until".into(),
                    f.iter().map(|x| x.valid_until).collect::<Vec<_>>(),
                ),
            ],
        );
        let p = &self.apps;
        let applications = frame(
            Table::Applications,
            vec![
                s("account_id", strs(&|i| Some(p[i].account.into()), p.len())),
                s("person_id", strs(&|i| Some(p[i].person.into()), p.len())),
                s("agency_id", strs(&|i| Some(p[i].agency.into()), p.len())),
                s("kind", strs(&|i| Some(p[i].kind.into()), p.len())),
                Column::new(
                    "applied_on".into(),
                    p.iter().map(|x| x.applied).collect::<Vec<_>>(),
                ),
                Column::new(
                    "approved_on".into(),
                    p.iter().map(|x| x.approved).collect::<Vec<_>>(),
                ),
            ],
        );
        InputFrames {
            query_log,
            roster,
            hr,
            request_forms,
            applications,
        }
    }

    /// `CODE@account-or-agency` of every finding of `job`.
    fn findings(&self, scope: Scope) -> BTreeSet<String> {
        let period = "2026Q1".parse().ok();
        let df = run(&config(), self.tables(), scope, d(AS_OF), period).unwrap();
        let get = |c: &str| df.column(c).unwrap().str().unwrap().clone();
        let (code, account, agency) = (get("code"), get("account_id"), get("agency_id"));
        (0..df.height())
            .map(|i| {
                format!(
                    "{}@{}",
                    code.get(i).unwrap(),
                    account.get(i).or(agency.get(i)).unwrap()
                )
            })
            .collect()
    }

    fn all(&self) -> BTreeSet<String> {
        let mut f = self.findings(Scope::Accounts);
        f.extend(self.findings(Scope::Queries));
        f
    }

    fn acct(&mut self, id: &str) -> &mut Acct {
        self.accounts.iter_mut().find(|a| a.id == id).unwrap()
    }

    fn person(&mut self, id: &str) -> &mut Person {
        self.people.iter_mut().find(|p| p.id == id).unwrap()
    }

    fn u1_query(&mut self) -> &mut Query {
        self.queries.iter_mut().find(|q| q.account == "U1").unwrap()
    }

    fn u1_form(&mut self) -> &mut Form {
        self.forms.iter_mut().find(|f| f.account == "U1").unwrap()
    }

    /// U1's holder (P3) is `status` from `effective`.
    fn u1_holder_is(&mut self, status: &'static str, effective: &str) {
        self.person("P3").status = status;
        self.person("P3").effective = d(effective);
    }

    /// U1's holder (P3) is transferred to `agency` on 2026-02-01.
    fn u1_holder_moves_to(&mut self, agency: &'static str) {
        self.u1_holder_is("transferred", "2026-02-01");
        self.person("P3").agency = agency;
    }

    /// A change (異動) of U1 applied for on `applied`.
    fn u1_change_applied_on(&mut self, applied: &str) {
        let mut change = self.app("U1").clone();
        change.kind = "change";
        change.applied = d(applied);
        self.apps.push(change);
    }

    /// `account` queries B200000009 on Monday 2026-03-02 at 10:00 with a
    /// form approved an hour before, as the clean world's accounts do.
    fn query_with_form(&mut self, account: &'static str) {
        self.queries.push(Query {
            account,
            at: t("2026-03-02 10:00:00"),
            subject: "B200000009",
            purpose: None,
            result: "success",
        });
        self.forms.push(Form {
            id: "F9",
            account,
            subject: "B200000009",
            purpose: "criminal_investigation",
            approved: Some(t("2026-03-02 09:00:00")),
            valid_until: None,
            approver: None,
        });
    }

    /// U1 queries `subject` `n` times at `at`, one minute apart, with a form.
    fn u1_more(&mut self, subject: &'static str, at: &str, n: usize, result: &'static str) {
        for k in 0..n {
            let at = t(at) + chrono::Duration::minutes(k as i64);
            self.queries.push(Query {
                account: "U1",
                at,
                subject,
                purpose: None,
                result,
            });
        }
        self.forms.push(Form {
            id: "FX",
            account: "U1",
            subject,
            purpose: "criminal_investigation",
            approved: Some(t(at) - chrono::Duration::hours(1)),
            valid_until: None,
            approver: None,
        });
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_clean_world_has_no_findings() {
    assert_eq!(World::base().all(), BTreeSet::new());
}

type Change = fn(&mut World);

/// For every code, the smallest changes to the clean world that trigger
/// it: a name, the change, and exactly the findings it must cause.
fn smallest_changes() -> Vec<(&'static str, Change, &'static [&'static str])> {
    vec![
        (
            "departed",
            |w| w.u1_holder_is("departed", "2026-03-05"),
            &["ACCOUNT_HOLDER_DEPARTED@U1"],
        ),
        (
            "retired, then queried",
            |w| w.u1_holder_is("retired", "2026-03-01"),
            &["ACCOUNT_HOLDER_DEPARTED@U1", "QUERY_AFTER_DEPARTURE@U1"],
        ),
        (
            "transferred out of the unit",
            |w| w.u1_holder_moves_to("KHB"),
            &[
                "ACCOUNT_HOLDER_TRANSFERRED@U1",
                "ACCOUNT_CHANGE_NOT_APPLIED@U1",
            ],
        ),
        (
            "transferred within the unit after the account was made",
            |w| w.u1_holder_moves_to("KPB"),
            &[
                "ACCOUNT_HOLDER_TRANSFERRED@U1",
                "ACCOUNT_CHANGE_NOT_APPLIED@U1",
            ],
        ),
        (
            "suspended",
            |w| w.u1_holder_is("suspended", "2026-03-05"),
            &["ACCOUNT_HOLDER_SUSPENDED@U1"],
        ),
        (
            "a driver holds an account",
            |w| w.person("P3").employment = "driver",
            &[
                "ACCOUNT_INELIGIBLE_EMPLOYMENT@U1",
                "QUERY_BY_INELIGIBLE_HOLDER@U1",
            ],
        ),
        (
            "holder unknown to HR",
            |w| w.people.retain(|p| p.id != "P3"),
            &["ACCOUNT_HOLDER_UNKNOWN@U1"],
        ),
        (
            "idle: last success 91 days before",
            |w| {
                w.u1_query().at = t("2025-12-08 10:00:00");
                w.u1_form().approved = Some(t("2025-12-08 09:00:00"));
            },
            &["ACCOUNT_IDLE@U1"],
        ),
        (
            "never used",
            |w| w.queries.retain(|q| q.account != "U1"),
            &["ACCOUNT_NEVER_USED@U1"],
        ),
        (
            "one person, two active accounts",
            |w| {
                let mut twin = w.acct("U1").clone();
                twin.id = "U2";
                w.accounts.push(twin);
                let mut applied = w.app("U1").clone();
                applied.account = "U2";
                w.apps.push(applied);
                w.query_with_form("U2");
            },
            &["ACCOUNT_DUPLICATE@U1", "ACCOUNT_DUPLICATE@U2"],
        ),
        (
            "an account nobody applied for",
            |w| w.apps.retain(|a| a.account != "U1"),
            &["ACCOUNT_NO_APPLICATION@U1"],
        ),
        (
            "an application still waiting for approval",
            |w| w.app("U1").approved = None,
            &["ACCOUNT_NO_APPLICATION@U1"],
        ),
        (
            "approved only after the review day",
            |w| w.app("U1").approved = Some(d("2026-03-11")),
            &["ACCOUNT_NO_APPLICATION@U1"],
        ),
        (
            "only a revocation on file",
            |w| w.app("U1").kind = "revoke",
            &["ACCOUNT_NO_APPLICATION@U1"],
        ),
        (
            "opened before the approval",
            |w| w.app("U1").approved = Some(d("2025-01-02")),
            &["ACCOUNT_CREATED_BEFORE_APPROVAL@U1"],
        ),
        (
            "moved, and a change applied for long before the move",
            |w| {
                w.u1_holder_moves_to("KHB");
                w.u1_change_applied_on("2025-11-01");
            },
            &[
                "ACCOUNT_HOLDER_TRANSFERRED@U1",
                "ACCOUNT_CHANGE_NOT_APPLIED@U1",
            ],
        ),
        (
            "moved, and the change applied for the day before",
            |w| {
                w.u1_holder_moves_to("KHB");
                w.u1_change_applied_on("2026-01-31");
            },
            &["ACCOUNT_HOLDER_TRANSFERRED@U1"],
        ),
        (
            "moved, and the change applied for after it",
            |w| {
                w.u1_holder_moves_to("KHB");
                w.u1_change_applied_on("2026-02-01");
            },
            &["ACCOUNT_HOLDER_TRANSFERRED@U1"],
        ),
        (
            "applied for by someone else",
            |w| w.app("U1").person = "P9",
            &["ACCOUNT_APPLICATION_OTHER_HOLDER@U1"],
        ),
        (
            "password 91 days old",
            |w| w.acct("U1").password = Some(d("2025-12-09")),
            &["ACCOUNT_PASSWORD_STALE@U1"],
        ),
        (
            "an account only the logs know",
            |w| w.query_with_form("ZZ"),
            &["ACCOUNT_NOT_IN_ROSTER@ZZ", "QUERY_BY_UNROSTERED_ACCOUNT@ZZ"],
        ),
        (
            "an account only the older roster snapshot lists",
            |w| w.acct("U1").last_listed = Some(d("2026-01-05")),
            &["ACCOUNT_REMOVED_FROM_ROSTER@U1"],
        ),
        (
            "a unit without an officer",
            |w| w.acct("O2").role = "business_user",
            &["AGENCY_OFFICER_COUNT@KPB"],
        ),
        (
            "two chief administrators",
            |w| w.acct("O1").role = "chief_admin",
            &["AGENCY_OFFICER_COUNT@KHB"],
        ),
        (
            "no form at all",
            |w| w.forms.retain(|f| f.account != "U1"),
            &["QUERY_NO_REQUEST_FORM@U1"],
        ),
        (
            "form never approved",
            |w| w.u1_form().approved = None,
            &["QUERY_FORM_NOT_APPROVED@U1"],
        ),
        (
            "approved one second after the query",
            |w| w.u1_form().approved = Some(t("2026-03-02 10:00:01")),
            &["QUERY_APPROVED_AFTER_QUERY@U1"],
        ),
        (
            "approved at the very second of the query",
            |w| w.u1_form().approved = Some(t("2026-03-02 10:00:00")),
            &["QUERY_APPROVED_AFTER_QUERY@U1"],
        ),
        (
            "form 31 days old",
            |w| w.u1_form().approved = Some(t("2026-01-30 09:00:00")),
            &["QUERY_FORM_EXPIRED@U1"],
        ),
        (
            "form past its own valid_until",
            |w| w.u1_form().valid_until = Some(d("2026-03-01")),
            &["QUERY_FORM_EXPIRED@U1"],
        ),
        (
            "a purpose the agency lacks (form), which the query does not state",
            |w| w.u1_form().purpose = "social_welfare",
            &["QUERY_PURPOSE_NOT_ALLOWED@U1", "QUERY_PURPOSE_MISMATCH@U1"],
        ),
        (
            "the query states another purpose than its form",
            |w| w.u1_query().purpose = Some("other"),
            &["QUERY_PURPOSE_MISMATCH@U1"],
        ),
        (
            "the holder approved their own form",
            |w| w.u1_form().approver = Some("持有人U1"),
            &["QUERY_SELF_APPROVED@U1"],
        ),
        (
            "a purpose the agency lacks (log, no form)",
            |w| {
                w.forms.retain(|f| f.account != "U1");
                w.u1_query().purpose = Some("public_health");
            },
            &["QUERY_NO_REQUEST_FORM@U1", "QUERY_PURPOSE_NOT_ALLOWED@U1"],
        ),
        (
            "query after the account was disabled",
            |w| {
                w.acct("U1").status = "disabled";
                w.acct("U1").disabled_on = Some(d("2026-03-01"));
            },
            &["QUERY_BY_DISABLED_ACCOUNT@U1"],
        ),
        (
            "looking oneself up",
            |w| {
                w.u1_query().subject = "A100000003";
                w.u1_form().subject = "A100000003";
            },
            &["QUERY_SELF_LOOKUP@U1"],
        ),
        (
            "looking a coworker up without a form",
            |w| w.u1_query().subject = "A100000000",
            &["QUERY_COWORKER_LOOKUP@U1", "QUERY_NO_REQUEST_FORM@U1"],
        ),
        (
            "at 18:00 sharp",
            |w| w.u1_query().at = t("2026-03-02 18:00:00"),
            &["QUERY_OFF_HOURS@U1"],
        ),
        (
            "on a national holiday",
            |w| w.u1_query().at = t("2026-03-04 10:00:00"),
            &["QUERY_OFF_HOURS@U1"],
        ),
        (
            "on a Sunday",
            |w| w.u1_query().at = t("2026-03-08 10:00:00"),
            &["QUERY_OFF_HOURS@U1"],
        ),
        (
            "a day of 31 after days of 1",
            |w| {
                for day in ["2026-03-03", "2026-03-05", "2026-03-06"] {
                    w.u1_more("B200000004", &format!("{day} 10:00:00"), 1, "success");
                }
                w.u1_more("B200000005", "2026-03-09 09:00:00", 31, "success");
            },
            &["QUERY_VOLUME_SPIKE@U1"],
        ),
        (
            "five accounts look up one person",
            |w| {
                for a in ["C0", "O1", "O2", "ZZ"] {
                    w.queries.push(Query {
                        account: a,
                        at: t("2026-03-03 10:00:00"),
                        subject: "B200000003",
                        purpose: None,
                        result: "success",
                    });
                }
            },
            &[
                "QUERY_SUBJECT_MANY_ACCOUNTS@C0",
                "QUERY_SUBJECT_MANY_ACCOUNTS@O1",
                "QUERY_SUBJECT_MANY_ACCOUNTS@O2",
                "QUERY_SUBJECT_MANY_ACCOUNTS@U1",
                "QUERY_SUBJECT_MANY_ACCOUNTS@ZZ",
                "ACCOUNT_NOT_IN_ROSTER@ZZ",
                "QUERY_BY_UNROSTERED_ACCOUNT@ZZ",
                "ACCOUNT_REPEAT_PATTERN@ZZ",
                "QUERY_NO_REQUEST_FORM@C0",
                "QUERY_NO_REQUEST_FORM@O1",
                "QUERY_NO_REQUEST_FORM@O2",
                "QUERY_NO_REQUEST_FORM@ZZ",
            ],
        ),
        (
            "ten failures within an hour",
            |w| w.u1_more("B200000006", "2026-03-03 10:00:00", 10, "failure"),
            &["QUERY_FAILED_BURST@U1"],
        ),
        (
            "two kinds of wrong are not yet a pattern",
            |w| {
                w.u1_query().at = t("2026-03-08 10:00:00");
                w.forms.retain(|f| f.account != "U1");
            },
            &["QUERY_NO_REQUEST_FORM@U1", "QUERY_OFF_HOURS@U1"],
        ),
        (
            "three kinds of wrong",
            |w| {
                w.u1_query().at = t("2026-03-08 10:00:00");
                w.forms.retain(|f| f.account != "U1");
                w.u1_query().purpose = Some("public_health");
            },
            &[
                "QUERY_NO_REQUEST_FORM@U1",
                "QUERY_PURPOSE_NOT_ALLOWED@U1",
                "QUERY_OFF_HOURS@U1",
                "ACCOUNT_REPEAT_PATTERN@U1",
            ],
        ),
    ]
}

#[test]
fn each_code_is_triggered_by_the_smallest_change() {
    let cases = smallest_changes();
    let covered: BTreeSet<&str> = cases
        .iter()
        .flat_map(|(_, _, want)| want.iter().map(|f| f.split('@').next().unwrap_or(f)))
        .collect();
    let all: BTreeSet<&str> = super::Code::ALL.iter().map(|c| c.as_str()).collect();
    let uncovered: Vec<&&str> = all.difference(&covered).collect();
    assert!(
        uncovered.is_empty(),
        "no case triggers {uncovered:?}: add the smallest change that does to smallest_changes"
    );
    let unknown: Vec<&&str> = covered.difference(&all).collect();
    assert!(unknown.is_empty(), "cases want unknown codes {unknown:?}");
    let mut failures = Vec::new();
    for (name, change, want) in cases {
        let mut w = World::base();
        change(&mut w);
        let got = w.all();
        if got != set(want) {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn near_misses_find_nothing() {
    type Change = fn(&mut World);
    let cases: Vec<(&str, Change)> = vec![
        ("approved one second before the query", |w| {
            w.u1_form().approved = Some(t("2026-03-02 09:59:59"))
        }),
        (
            "another account's form, approved by its own holder, bears the same number",
            |w| {
                let mut other = w.u1_form().clone();
                other.account = "C0";
                other.approver = Some("持有人C0");
                w.forms.push(other);
            },
        ),
        (
            "the chief administrator's own account, which the NHIA assigns",
            |w| {
                w.apps.retain(|a| a.account != "C0");
            },
        ),
        ("handed on, and the new holder's change approved", |w| {
            w.app("U1").person = "P9";
            let mut change = w.app("U1").clone();
            change.kind = "change";
            change.person = "P3";
            w.apps.push(change);
        }),
        ("applied for under the holder's national ID", |w| {
            w.app("U1").person = "A100000003";
        }),
        ("approved on the day it was opened", |w| {
            w.app("U1").approved = Some(d("2025-01-01"))
        }),
        ("handed on with a new application by the new holder", |w| {
            w.app("U1").person = "P9";
            let mut again = w.app("U1").clone();
            again.person = "P3";
            again.approved = Some(d("2024-12-20"));
            w.apps.push(again);
        }),
        ("a disabled account nobody applied for", |w| {
            w.apps.retain(|a| a.account != "U1");
            w.acct("U1").status = "disabled";
            w.acct("U1").disabled_on = Some(d("2026-03-03"));
        }),
        ("form on its 30th day", |w| {
            w.u1_form().approved = Some(t("2026-01-31 09:00:00"))
        }),
        ("departure effective the day of the query", |w| {
            w.person("P3").status = "departed";
            w.person("P3").effective = d("2026-03-02");
            w.acct("U1").status = "disabled";
        }),
        ("at 17:59:59", |w| {
            w.u1_query().at = t("2026-03-02 17:59:59")
        }),
        ("on a make-up workday", |w| {
            w.u1_query().at = t("2026-03-07 10:00:00")
        }),
        ("idle: last success 90 days before", |w| {
            w.u1_query().at = t("2025-12-10 10:00:00");
            w.u1_form().approved = Some(t("2025-12-10 09:00:00"));
        }),
        ("password 90 days old", |w| {
            w.acct("U1").password = Some(d("2025-12-10"))
        }),
        ("nine failures within an hour", |w| {
            w.u1_more("B200000006", "2026-03-03 10:00:00", 9, "failure")
        }),
        ("a disabled account's past queries", |w| {
            w.acct("U1").status = "disabled";
            w.acct("U1").disabled_on = Some(d("2026-03-02"));
        }),
        ("a day of exactly 30 after days of 1", |w| {
            for day in ["2026-03-03", "2026-03-05", "2026-03-06"] {
                w.u1_more("B200000004", &format!("{day} 10:00:00"), 1, "success");
            }
            w.u1_more("B200000005", "2026-03-09 09:00:00", 30, "success");
        }),
        ("four accounts look up one person, all with forms", |w| {
            for (a, f) in [("C0", "G0"), ("O1", "G1"), ("O2", "G2")] {
                w.queries.push(Query {
                    account: a,
                    at: t("2026-03-03 10:00:00"),
                    subject: "B200000003",
                    purpose: None,
                    result: "success",
                });
                w.forms.push(Form {
                    id: f,
                    account: a,
                    subject: "B200000003",
                    purpose: "criminal_investigation",
                    approved: Some(t("2026-03-03 09:00:00")),
                    valid_until: None,
                    approver: None,
                });
            }
            // O2's agency has criminal investigation; C0 and O1's (KHB) do not,
            // so their forms name public health.
            for f in w.forms.iter_mut().filter(|f| f.id == "G0" || f.id == "G1") {
                f.purpose = "public_health";
            }
        }),
        ("one person, a second account that is disabled", |w| {
            let mut twin = w.acct("U1").clone();
            twin.id = "U2";
            twin.status = "disabled";
            twin.disabled_on = Some(d("2026-01-01"));
            w.accounts.push(twin);
        }),
        (
            "transferred before the account was made, within the unit",
            |w| {
                w.person("P3").status = "transferred";
                w.person("P3").agency = "KPB-1";
                w.person("P3").effective = d("2024-06-01");
            },
        ),
    ];
    let mut failures = Vec::new();
    for (name, change) in cases {
        let mut w = World::base();
        change(&mut w);
        let got = w.all();
        if !got.is_empty() {
            failures.push(format!("{name}: got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Shuffling rows or splitting the log across files changes no finding
/// (other than the source file and row it points to).
#[test]
fn row_order_and_file_split_do_not_change_findings() {
    let mut w = World::base();
    w.u1_more("B200000006", "2026-03-03 10:00:00", 12, "failure");
    w.u1_more("B200000007", "2026-03-08 10:00:00", 3, "success");
    w.queries.push(Query {
        account: "ZZ",
        at: t("2026-03-03 11:00:00"),
        subject: "B200000003",
        purpose: None,
        result: "success",
    });
    let strip = |df: DataFrame| df.drop_many(["source_file", "source_row"]);
    let cfg = config();
    let base = w.tables();
    let want = strip(
        run(
            &cfg,
            base.clone(),
            Scope::Queries,
            d(AS_OF),
            "2026Q1".parse().ok(),
        )
        .unwrap(),
    );
    // A deterministic shuffle (seeded; no thread_rng).
    for seed in 0..5u64 {
        let mut shuffled = base.clone();
        let n = shuffled.query_log.height();
        let mut order: Vec<IdxSize> = (0..n as IdxSize).collect();
        let mut rng = <rand_chacha::ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(seed);
        for i in (1..n).rev() {
            let j = (rand_core::Rng::next_u64(&mut rng) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let idx = IdxCa::from_vec("i".into(), order);
        shuffled.query_log = shuffled.query_log.take(&idx).unwrap();
        // Split: the second half comes "from another file".
        let half = (n / 2) as i64;
        let names: Vec<&str> = (0..n)
            .map(|i| if (i as i64) < half { "a.csv" } else { "b.csv" })
            .collect();
        shuffled
            .query_log
            .with_column(Column::new("source_file".into(), names))
            .unwrap();
        let got = strip(
            run(
                &cfg,
                shuffled,
                Scope::Queries,
                d(AS_OF),
                "2026Q1".parse().ok(),
            )
            .unwrap(),
        );
        assert!(got.equals_missing(&want), "seed {seed}:\n{got}\nvs\n{want}");
    }
}

/// Subjects of many accounts counted in parts (as at tens of millions of
/// queries) are those counted at once, finding for finding: subjects
/// ending in different digits, one just under the threshold, and pairs
/// queried more than once, whose first query the finding cites.
#[test]
fn subjects_of_many_accounts_counted_in_parts_are_those_counted_at_once() {
    let mut w = World::base();
    let subjects = [
        "B200000003",
        "B200000014",
        "B200000025",
        "B20000003X",
        "B200000049",
    ];
    for (s, subject) in subjects.into_iter().enumerate() {
        // The last subject is queried by four accounts only.
        let accounts = if s == 4 { 4 } else { 5 };
        for (a, account) in ["U1", "C0", "O1", "O2", "ZZ"]
            .into_iter()
            .take(accounts)
            .enumerate()
        {
            for k in 0..=a {
                w.queries.push(Query {
                    account,
                    at: t("2026-03-03 10:00:00")
                        + chrono::Duration::minutes((s * 10 + a + k) as i64),
                    subject,
                    purpose: None,
                    result: "success",
                });
            }
        }
    }
    let config = config();
    let cx = Ctx::new(&config, w.tables(), d(AS_OF), "2026Q1".parse().ok()).unwrap();
    let rows = |n: usize| -> Vec<String> {
        let df = query::subject_many_in_parts(&cx, n)
            .unwrap()
            .collect()
            .unwrap();
        let mut rows: Vec<String> = (0..df.height())
            .map(|i| format!("{:?}", df.get_row(i).unwrap().0))
            .collect();
        rows.sort();
        rows
    };
    let at_once = rows(1);
    // Four subjects, five accounts each.
    assert_eq!(at_once.len(), 20, "{at_once:#?}");
    for n in [2, 5, 10] {
        assert_eq!(rows(n), at_once, "{n} parts");
    }
}

/// Every query check, and every query's form and verdict, are the same
/// whether the work over every query runs at once or in 2, 5 or 10 parts
/// (subjects, accounts or row slices), for every smallest change.
#[test]
fn query_checks_in_parts_find_what_they_find_at_once() {
    let config = config();
    let rows = |w: &World, parts: usize| -> Vec<String> {
        let cx =
            Ctx::in_parts(&config, w.tables(), d(AS_OF), "2026Q1".parse().ok(), parts).unwrap();
        // Categoricals as their text: rows read as a person would.
        let text = |lf: LazyFrame| -> Vec<String> {
            let mut df = lf.collect().unwrap();
            let names: Vec<PlSmallStr> = df
                .columns()
                .iter()
                .filter(|c| c.dtype().is_categorical())
                .map(|c| c.name().clone())
                .collect();
            for n in names {
                let text = df.column(&n).unwrap().cast(&DataType::String).unwrap();
                df.with_column(text).unwrap();
            }
            (0..df.height())
                .map(|i| format!("{:?}", df.get_row(i).unwrap().0))
                .collect()
        };
        let mut rows = text(cx.queries.clone().lazy());
        for c in query::CHECKS {
            let mut found = text((c.run)(&cx).unwrap().select(super::RAW_FINDING.map(col)));
            found.sort();
            rows.extend(found);
        }
        rows
    };
    let mut compared = 0;
    for (name, change, _) in smallest_changes() {
        let mut w = World::base();
        change(&mut w);
        let at_once = rows(&w, 1);
        compared += at_once.len();
        for parts in [2, 5, 10] {
            assert_eq!(rows(&w, parts), at_once, "{name}: {parts} parts");
        }
    }
    assert!(compared > 100, "{compared} rows compared");
}

/// Checks run two at a time come back in the checks' order, each once,
/// and never more than two run at once (the peak depends on it).
#[test]
fn two_at_a_time_keeps_the_order_and_runs_two_at_once_at_most() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (running, most, runs) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let items: Vec<u64> = (0..40).collect();
    let out = super::two_at_a_time(&items, |i| {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        runs.fetch_add(1, Ordering::SeqCst);
        // Uneven work, so the two threads take items out of turn.
        std::thread::sleep(std::time::Duration::from_millis(if i % 3 == 0 {
            5
        } else {
            1
        }));
        running.fetch_sub(1, Ordering::SeqCst);
        i * i
    });
    assert_eq!(out, items.iter().map(|i| i * i).collect::<Vec<_>>());
    assert_eq!(runs.load(Ordering::SeqCst), items.len());
    assert_eq!(most.load(Ordering::SeqCst), 2);
}
