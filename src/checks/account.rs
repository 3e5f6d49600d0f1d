//! Account review (points 5(1)3, 5(2), 6(2)): is every active account still
//! held by an eligible person of the right agency, used, unique and kept up?
//!
//! Disabled accounts produce no account-review findings here; their queries
//! are still checked by [`super::query`].

use chrono::Duration;
use polars::prelude::*;

use super::{
    Check, Code, Ctx, Need, about_queries, finding, null_str, one_of, sentence, with_first_seen,
    ymd,
};
use crate::model::Table;

/// The holder's record: the roster's account and the HR list's person.
const ROSTER_HR: &[Need] = &[Need::Table(Table::Roster), Need::Table(Table::Hr)];

/// Usage: the accounts, their creation day and queries covering the
/// idle window.
const USAGE: &[Need] = &[
    Need::Table(Table::Roster),
    Need::Table(Table::QueryLog),
    Need::Column(Table::Roster, "created_on"),
    Need::IdleWindow,
];

/// The accounts and the applications register (points 2, 5(1)2).
const APPLIED: &[Need] = &[Need::Table(Table::Roster), Need::Table(Table::Applications)];

pub static CHECKS: &[Check] = &[
    Check {
        codes: &[Code::AccountHolderDeparted],
        needs: ROSTER_HR,
        run: departed,
    },
    Check {
        codes: &[Code::AccountHolderTransferred],
        needs: &[
            Need::Table(Table::Roster),
            Need::Table(Table::Hr),
            Need::Column(Table::Roster, "created_on"),
        ],
        run: transferred,
    },
    Check {
        codes: &[Code::AccountHolderSuspended],
        needs: ROSTER_HR,
        run: suspended,
    },
    Check {
        codes: &[Code::AccountIneligibleEmployment],
        needs: ROSTER_HR,
        run: ineligible,
    },
    Check {
        codes: &[Code::AccountHolderUnknown],
        needs: ROSTER_HR,
        run: unknown,
    },
    Check {
        codes: &[Code::AccountIdle],
        needs: USAGE,
        run: idle,
    },
    Check {
        codes: &[Code::AccountNeverUsed],
        needs: USAGE,
        run: never_used,
    },
    Check {
        codes: &[Code::AccountDuplicate],
        needs: &[Need::Table(Table::Roster)],
        run: duplicate,
    },
    Check {
        codes: &[Code::AccountPasswordStale],
        needs: &[
            Need::Table(Table::Roster),
            Need::Column(Table::Roster, "last_password_change"),
        ],
        run: password_stale,
    },
    Check {
        codes: &[Code::AccountNotInRoster],
        needs: &[Need::Table(Table::Roster), Need::Table(Table::QueryLog)],
        run: not_in_roster,
    },
    Check {
        codes: &[Code::AccountRemovedFromRoster],
        needs: &[Need::Table(Table::Roster)],
        run: removed,
    },
    Check {
        codes: &[Code::AccountNoApplication],
        needs: APPLIED,
        run: no_application,
    },
    Check {
        codes: &[Code::AccountCreatedBeforeApproval],
        needs: &[
            Need::Table(Table::Roster),
            Need::Table(Table::Applications),
            Need::Column(Table::Roster, "created_on"),
        ],
        run: created_before_approval,
    },
    Check {
        codes: &[Code::AccountApplicationOtherHolder],
        needs: APPLIED,
        run: application_other_holder,
    },
    Check {
        codes: &[Code::AccountChangeNotApplied],
        needs: &[
            Need::Table(Table::Roster),
            Need::Table(Table::Hr),
            Need::Table(Table::Applications),
            Need::Column(Table::Roster, "created_on"),
        ],
        run: change_not_applied,
    },
    Check {
        codes: &[Code::AgencyOfficerCount],
        needs: &[
            Need::Table(Table::Roster),
            Need::Column(Table::Roster, "role"),
        ],
        run: officer_count,
    },
];

/// Employment types that may not hold an account (point 5(2)).
pub const INELIGIBLE: [&str; 3] = ["labourer", "driver", "temporary"];

/// Active accounts of the roster in use (an account only older snapshots
/// list is not active: it is reported as removed).
fn active(cx: &Ctx<'_>) -> LazyFrame {
    cx.accounts
        .clone()
        .lazy()
        .filter(col("status").eq(lit("active")).and(col("removed").not()))
}

/// A finding about one roster account.
fn about_account(code: Code, occurred_at: Expr, reason: Expr) -> Vec<Expr> {
    finding(
        code,
        col("agency_id"),
        col("account_id"),
        col("holder_name"),
        null_str(),
        occurred_at,
        reason,
        col("source_file"),
        col("source_row"),
    )
}

/// The holder has left the service (departed or retired) per HR.
pub fn holder_gone() -> Expr {
    one_of(
        col("hr_status"),
        Series::new("s".into(), ["departed", "retired"]),
    )
}

/// 離職 or 退休, for reason sentences about a holder who has gone.
pub fn gone_word() -> Expr {
    when(col("hr_status").eq(lit("retired")))
        .then(lit("退休"))
        .otherwise(lit("離職"))
}

/// The holder's employment type: HR's, else the roster's.
pub fn holder_employment() -> Expr {
    coalesce(&[col("hr_employment"), col("employment_type")])
}

/// The holder may not hold an account (point 5(2)).
pub fn holder_ineligible() -> Expr {
    one_of(holder_employment(), Series::new("s".into(), INELIGIBLE))
}

fn day_start(e: Expr) -> Expr {
    e.cast(DataType::Datetime(crate::ingest::parse::TIME_UNIT, None))
}

fn departed(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    Ok(active(cx).filter(holder_gone()).select(about_account(
        Code::AccountHolderDeparted,
        day_start(col("hr_effective")),
        sentence([
            lit("帳號仍為啟用，但持有人依人事資料已於 "),
            ymd(col("hr_effective")),
            lit(" "),
            gone_word(),
            lit("，應即停用帳號"),
        ]),
    )))
}

/// The holder moved out of the account's unit, or was transferred after
/// the account was made (and has not left the service).
fn holder_moved() -> Expr {
    let outside = col("hr_unit_id").neq(col("unit_id")).fill_null(lit(false));
    let later = col("hr_status")
        .eq(lit("transferred"))
        .and(col("hr_effective").gt(col("created_on")))
        .fill_null(lit(false));
    outside
        .or(later)
        .and(holder_gone().not().fill_null(lit(true)))
}

fn transferred(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let outside = col("hr_unit_id").neq(col("unit_id")).fill_null(lit(false));
    let reason = when(outside.clone())
        .then(sentence([
            lit("持有人依人事資料現職於 "),
            col("hr_agency_id"),
            lit("（"),
            ymd(col("hr_effective")),
            lit(" 生效），已不屬帳號所屬機關 "),
            col("unit_id"),
            lit(" 及其所屬機關，應停用或移轉帳號"),
        ]))
        .otherwise(sentence([
            lit("持有人於 "),
            ymd(col("hr_effective")),
            lit(" 調職，晚於帳號建立日 "),
            ymd(col("created_on")),
            lit("，請確認權限是否仍為業務所需"),
        ]));
    Ok(active(cx).filter(holder_moved()).select(about_account(
        Code::AccountHolderTransferred,
        day_start(col("hr_effective")),
        reason,
    )))
}

fn suspended(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    Ok(active(cx)
        .filter(col("hr_status").eq(lit("suspended")))
        .select(about_account(
            Code::AccountHolderSuspended,
            day_start(col("hr_effective")),
            sentence([
                lit("持有人自 "),
                ymd(col("hr_effective")),
                lit(" 起留職停薪，帳號仍為啟用，應暫停使用"),
            ]),
        )))
}

fn ineligible(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let label = holder_employment().replace_strict(
        lit(Series::new("c".into(), INELIGIBLE)),
        lit(Series::new("l".into(), ["職工", "駕駛", "臨時人員"])),
        None::<Expr>,
        Some(DataType::String),
    );
    Ok(active(cx).filter(holder_ineligible()).select(about_account(
        Code::AccountIneligibleEmployment,
        day_start(col("created_on")),
        sentence([
            lit("持有人人員類別為「"),
            label,
            lit("」，依第5點第2款僅編制內職員及約聘僱人員得申請帳號"),
        ]),
    )))
}

fn unknown(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    Ok(active(cx)
        .filter(col("hr_present").not())
        .select(about_account(
            Code::AccountHolderUnknown,
            day_start(col("created_on")),
            sentence([
                lit("持有人員工編號 "),
                col("person_id"),
                lit(" 不在人事資料中，無法確認其在職身分"),
            ]),
        )))
}

/// Per account: queries up to the review day, and the last successful one.
fn usage(cx: &Ctx<'_>) -> LazyFrame {
    cx.queries
        .clone()
        .lazy()
        .group_by([super::as_text(col("account_id")).alias("account_id")])
        .agg([
            len().alias("n_queries"),
            // An export without a result column cannot tell a failed query
            // from a successful one: such a query counts as use.
            col("queried_at")
                .filter(col("result").neq(lit("failure")).fill_null(lit(true)))
                .max()
                .alias("last_success"),
        ])
}

fn with_usage(cx: &Ctx<'_>) -> LazyFrame {
    active(cx)
        .join(
            usage(cx),
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("n_queries").fill_null(lit(0u32)))
}

fn idle(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let days = cx.config.rules.idle_days;
    let cutoff = (cx.as_of - Duration::days(days.into()))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default();
    let last = coalesce(&[col("last_success"), day_start(col("created_on"))]);
    Ok(with_usage(cx)
        .filter(
            col("n_queries")
                .gt(lit(0u32))
                .and(last.clone().lt(lit(cutoff))),
        )
        .select(about_account(
            Code::AccountIdle,
            last,
            sentence([
                when(col("last_success").is_null())
                    .then(lit("帳號從未成功查詢（僅有失敗紀錄）"))
                    .otherwise(sentence([
                        lit("最後一次成功查詢為 "),
                        ymd(col("last_success")),
                    ])),
                lit(format!(
                    "，至 {} 已逾 {days} 日未使用，應檢討停用",
                    cx.as_of
                )),
            ]),
        )))
}

fn never_used(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let days = cx.config.rules.idle_days;
    let cutoff = cx.as_of - Duration::days(days.into());
    Ok(with_usage(cx)
        .filter(
            col("n_queries")
                .eq(lit(0u32))
                .and(col("created_on").lt(lit(cutoff))),
        )
        .select(about_account(
            Code::AccountNeverUsed,
            day_start(col("created_on")),
            sentence([
                lit("帳號於 "),
                ymd(col("created_on")),
                lit(format!(
                    " 建立，逾 {days} 日，現有查詢紀錄中從未使用，應檢討停用"
                )),
            ]),
        )))
}

fn duplicate(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let holders = active(cx)
        .group_by([col("person_id")])
        .agg([
            len().alias("n_accounts"),
            col("account_id")
                .sort(SortOptions::default())
                .str()
                .join(", ", true)
                .alias("all_accounts"),
        ])
        .filter(col("n_accounts").gt(lit(1u32)));
    Ok(active(cx)
        .join(
            holders,
            [col("person_id")],
            [col("person_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .select(about_account(
            Code::AccountDuplicate,
            day_start(col("created_on")),
            sentence([
                lit("持有人（員工編號 "),
                col("person_id"),
                lit("）同時持有 "),
                col("n_accounts").cast(DataType::String),
                lit(" 個啟用帳號："),
                col("all_accounts"),
                lit("，應僅保留一個"),
            ]),
        )))
}

/// A password not changed within `password_max_age_days` of the day its
/// roster shows it: the roster's date, or the review day if earlier. A
/// roster of July says nothing of a change in August, so a review in
/// December judges its passwords as of July: the account review, the
/// internal and the external audit count the same accounts from one
/// roster (they counted 2, 89 and 290).
fn password_stale(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let days = cx.config.rules.password_max_age_days;
    let as_of = lit(cx.as_of).cast(DataType::Date);
    let seen = when(
        col(crate::ingest::SNAPSHOT_DATE)
            .is_not_null()
            .and(col(crate::ingest::SNAPSHOT_DATE).lt(as_of.clone())),
    )
    .then(col(crate::ingest::SNAPSHOT_DATE).cast(DataType::Date))
    .otherwise(as_of);
    let changed = col("last_password_change").cast(DataType::Date);
    Ok(active(cx)
        .with_column(seen.alias("password_seen_on"))
        .filter(
            (col("password_seen_on")
                .cast(DataType::Int32)
                .cast(DataType::Int64)
                - changed.cast(DataType::Int32).cast(DataType::Int64))
            .gt(lit(i64::from(days))),
        )
        .select(about_account(
            Code::AccountPasswordStale,
            day_start(col("last_password_change")),
            sentence([
                lit("最後變更密碼日為 "),
                ymd(col("last_password_change")),
                lit("，至 "),
                ymd(col("password_seen_on")),
                lit(format!(
                    "（帳號清冊所示）已逾 {days} 日，依第5點第3款應每三個月變更"
                )),
            ]),
        )))
}

fn not_in_roster(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    Ok(cx
        .not_in_roster()
        .group_by([col("account_id")])
        .agg(with_first_seen(len().alias("n")))
        .select(about_queries(
            Code::AccountNotInRoster,
            null_str(),
            sentence([
                lit("帳號於查詢紀錄中有 "),
                col("n").cast(DataType::String),
                lit(" 筆查詢（首筆 "),
                super::ymd_hms(col("queried_at")),
                lit("），但不在帳號清冊中，應查明帳號來源"),
            ]),
        )))
}

fn removed(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    Ok(cx
        .accounts
        .clone()
        .lazy()
        .filter(col("removed"))
        .select(about_account(
            Code::AccountRemovedFromRoster,
            day_start(col(crate::ingest::SNAPSHOT_DATE)),
            sentence([
                lit("帳號列於 "),
                ymd(col(crate::ingest::SNAPSHOT_DATE)),
                lit(" 之帳號清冊（狀態："),
                when(col("status").eq(lit("active")))
                    .then(lit("啟用"))
                    .otherwise(lit("停用")),
                lit("），但不在本次採用之較新清冊中，視為已移除；請確認已於 WebIR 廢止"),
            ]),
        )))
}

fn officer_count(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let units: Vec<&str> = cx.config.agencies.units().map(|a| a.id.as_str()).collect();
    let units = df!("agency_id" => units)?.lazy();
    let counted = |role: &str| {
        active(cx)
            .filter(col("role").eq(lit(role)))
            .group_by([col("unit_id")])
            .agg([
                len().alias("n"),
                col("account_id")
                    .sort(SortOptions::default())
                    .str()
                    .join(", ", true)
                    .alias("ids"),
            ])
    };
    let officers = units
        .join(
            counted("officer"),
            [col("agency_id")],
            [col("unit_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("n").fill_null(lit(0u32)))
        .filter(col("n").neq(lit(1u32)))
        .select(finding(
            Code::AgencyOfficerCount,
            col("agency_id"),
            null_str(),
            null_str(),
            null_str(),
            lit(NULL),
            sentence([
                lit("該機關（含所屬機關）啟用中之專責人員帳號共 "),
                col("n").cast(DataType::String),
                lit(" 個"),
                when(col("ids").is_null())
                    .then(lit(""))
                    .otherwise(sentence([lit("（"), col("ids"), lit("）")])),
                lit("，依第5點第1款應指定專責人員一名"),
            ]),
            null_str(),
            lit(NULL),
        ));
    let bureau = cx.config.agencies.health_bureau().id.clone();
    let chiefs = active(cx)
        .filter(col("role").eq(lit("chief_admin")))
        .select([
            len().alias("n"),
            col("account_id")
                .sort(SortOptions::default())
                .str()
                .join(", ", true)
                .alias("ids"),
        ])
        .filter(col("n").neq(lit(1u32)))
        .select(finding(
            Code::AgencyOfficerCount,
            lit(bureau),
            null_str(),
            null_str(),
            null_str(),
            lit(NULL),
            sentence([
                lit("全市啟用中之總管理者帳號共 "),
                col("n").cast(DataType::String),
                lit(" 個"),
                when(col("ids").is_null().or(col("ids").eq(lit(""))))
                    .then(lit(""))
                    .otherwise(sentence([lit("（"), col("ids"), lit("）")])),
                lit("，依第4點衛生局應指定總管理者一名"),
            ]),
            null_str(),
            lit(NULL),
        ));
    concat([officers, chiefs], UnionArgs::default())
}

/// The approved applications for a new account (新增), one row per
/// account: the first approval, and every approved applicant.
fn approved_adds(cx: &Ctx<'_>) -> LazyFrame {
    approved(cx, &["add"])
}

/// The register as of the review day: an application made later is not
/// yet on file (a re-run reproduces the review).
fn register(cx: &Ctx<'_>) -> LazyFrame {
    let as_of = lit(cx.as_of).cast(DataType::Date);
    cx.applications
        .clone()
        .lazy()
        .filter(col("applied_on").cast(DataType::Date).lt_eq(as_of))
}

/// The applications of `kinds` approved by the review day.
fn approved(cx: &Ctx<'_>, kinds: &[&str]) -> LazyFrame {
    let as_of = lit(cx.as_of).cast(DataType::Date);
    register(cx)
        .filter(
            one_of(
                col("kind").cast(DataType::String),
                Series::new("k".into(), kinds),
            )
            .and(col("approved_on").cast(DataType::Date).lt_eq(as_of)),
        )
        .select([
            col("account_id").cast(DataType::String),
            col("person_id")
                .cast(DataType::String)
                .alias("applicant_id"),
            col("approved_on").cast(DataType::Date),
        ])
}

/// The active accounts the register answers for: all but the chief
/// administrator's, which the NHIA assigns (point 4, last paragraph).
fn applied_for(cx: &Ctx<'_>) -> LazyFrame {
    active(cx).filter(
        col("role")
            .cast(DataType::String)
            .neq(lit("chief_admin"))
            .fill_null(lit(true)),
    )
}

/// Point 2 and 5(1)2: an active account no approved application created.
fn no_application(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    Ok(applied_for(cx)
        .join(
            approved_adds(cx),
            [col("account_id").cast(DataType::String)],
            [col("account_id")],
            JoinArgs::new(JoinType::Anti),
        )
        .select(about_account(
            Code::AccountNoApplication,
            day_start(col("created_on")),
            sentence([lit(
                "帳號清冊列為啟用，申請表清冊中無核定之新增申請（第2點：業務需求人員應填具申請表向專責人員申請；第5點第1款第2目：妥善保管申請資料）",
            )]),
        )))
}

/// An account opened before the application for it was approved.
fn created_before_approval(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let first = approved_adds(cx)
        .group_by([col("account_id")])
        .agg([col("approved_on").min().alias("first_approved_on")]);
    Ok(applied_for(cx)
        .join(
            first,
            [col("account_id").cast(DataType::String)],
            [col("account_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(
            col("created_on")
                .cast(DataType::Date)
                .lt(col("first_approved_on")),
        )
        .select(about_account(
            Code::AccountCreatedBeforeApproval,
            day_start(col("created_on")),
            sentence([
                lit("帳號開通日 "),
                ymd(col("created_on")),
                lit(" 早於申請表核定日 "),
                ymd(col("first_approved_on")),
                lit("：配賦應於核定之後"),
            ]),
        )))
}

/// An account whose approved applications were all made by someone other
/// than its holder now (an account handed on without a new application).
fn application_other_holder(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    // A new holder's approved change (異動) counts as their application.
    let by_account = approved(cx, &["add", "change"])
        .group_by([col("account_id")])
        .agg([col("applicant_id")
            .unique()
            .sort(Default::default())
            .alias("applicants")]);
    Ok(applied_for(cx)
        .join(
            by_account,
            [col("account_id").cast(DataType::String)],
            [col("account_id")],
            JoinArgs::new(JoinType::Inner),
        )
        // A register may name the applicant by employee number (the
        // roster's person id) or by national ID (HR's).
        .filter(
            col("applicants")
                .list()
                .contains(col("person_id").cast(DataType::String), false)
                .or(col("applicants")
                    .list()
                    .contains(col("hr_national_id").cast(DataType::String), false)
                    .fill_null(lit(false)))
                .not(),
        )
        .select(about_account(
            Code::AccountApplicationOtherHolder,
            day_start(col("created_on")),
            // The applicants are not named: a register may name them by
            // national ID, and findings.csv leaves the archive.
            sentence([
                lit("核定之申請人（"),
                col("applicants").list().len().cast(DataType::String),
                lit(" 人）皆非帳號清冊之持有人（"),
                col("person_id").cast(DataType::String),
                lit("）：帳號轉予他人使用應另提申請"),
            ]),
        )))
}

/// How long before a move a change application counts for it.
const CHANGE_WINDOW_DAYS: i64 = 60;

/// Point 2 (異動時亦同): a holder moved (as [`transferred`] finds) and no
/// change (異動) or revocation (註銷) was applied for from [`CHANGE_WINDOW_DAYS`]
/// before the move on.
fn change_not_applied(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let later_applications = register(cx)
        .filter(one_of(
            col("kind").cast(DataType::String),
            Series::new("k".into(), ["change", "revoke"]),
        ))
        .select([
            col("account_id").cast(DataType::String),
            col("applied_on").cast(DataType::Date),
        ]);
    let moved = applied_for(cx)
        .filter(holder_moved())
        .with_column(col("account_id").cast(DataType::String).alias("__account"));
    let applied = moved
        .clone()
        .join(
            later_applications,
            [col("__account")],
            [col("account_id")],
            JoinArgs::new(JoinType::Inner).with_suffix(Some("_app".into())),
        )
        // Applied for around the move: from CHANGE_WINDOW_DAYS before it
        // (the old text asked for it before the move) on.
        .filter(col("applied_on").gt_eq(
            col("hr_effective").cast(DataType::Date)
                - lit(chrono::Duration::days(CHANGE_WINDOW_DAYS)),
        ))
        .select([col("__account")])
        .unique(None, UniqueKeepStrategy::Any);
    Ok(moved
        .join(
            applied,
            [col("__account")],
            [col("__account")],
            JoinArgs::new(JoinType::Anti),
        )
        .select(about_account(
            Code::AccountChangeNotApplied,
            day_start(col("hr_effective")),
            sentence([
                lit("持有人於 "),
                ymd(col("hr_effective")),
                lit(" 調職（人事資料），申請表清冊中無其前後之帳號異動或註銷申請（第2點：異動時亦同）"),
            ]),
        )))
}
