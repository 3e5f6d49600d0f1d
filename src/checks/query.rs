//! Query explanation (points 3, 5(2)1, 6(1)): is every query of the period
//! explained by an approved request form, made by an eligible holder, for
//! a purpose the agency has, at a normal time and volume?
//!
//! [`explain`] matches each query to request forms with two as-of joins per
//! (account, subject) — the last form approved strictly before the query,
//! and the first approved after it — so no query is compared with forms one
//! by one.

use chrono::Duration;
use polars::prelude::*;

use super::account::{gone_word, holder_gone, holder_ineligible};
use super::{
    Check, Code, Ctx, Need, about_queries, as_log, as_text, day_number, finding, left_keep_order,
    null_str, one_of, sentence, ymd, ymd_hms,
};
use crate::config::Config;
use crate::ingest::parse::{self, TIME_UNIT, code_and_day, code_pair};
use crate::model::{PURPOSE, Table};

/// Queries judged against their holder's roster and HR records.
const LOG_ROSTER_HR: &[Need] = &[
    Need::Table(Table::QueryLog),
    Need::Table(Table::Roster),
    Need::Table(Table::Hr),
];

pub static CHECKS: &[Check] = &[
    Check {
        codes: &[
            Code::QueryNoRequestForm,
            Code::QueryFormNotApproved,
            Code::QueryApprovedAfterQuery,
            Code::QueryFormExpired,
        ],
        needs: &[
            Need::Table(Table::QueryLog),
            Need::Table(Table::RequestForms),
            Need::FormsCover,
        ],
        run: unexplained,
    },
    Check {
        codes: &[Code::QueryPurposeNotAllowed],
        needs: &[
            Need::Table(Table::QueryLog),
            Need::Table(Table::RequestForms),
            Need::Column(Table::RequestForms, "purpose"),
        ],
        run: purpose_not_allowed,
    },
    Check {
        codes: &[Code::QueryPurposeMismatch],
        needs: &[
            Need::Table(Table::QueryLog),
            Need::Table(Table::RequestForms),
            Need::FormsCover,
            // A log without a purpose column states none: its queries
            // cannot differ from their forms, and the others are judged.
            Need::Column(Table::RequestForms, "purpose"),
        ],
        run: purpose_mismatch,
    },
    Check {
        codes: &[Code::QuerySelfApproved],
        needs: &[
            Need::Table(Table::QueryLog),
            Need::Table(Table::Roster),
            Need::Table(Table::RequestForms),
            Need::FormsCover,
            Need::Column(Table::RequestForms, "approver"),
            Need::Column(Table::Roster, "holder_name"),
        ],
        run: self_approved,
    },
    Check {
        codes: &[Code::QueryAfterDeparture],
        needs: LOG_ROSTER_HR,
        run: after_departure,
    },
    Check {
        codes: &[Code::QueryByUnrosteredAccount],
        needs: &[Need::Table(Table::QueryLog), Need::Table(Table::Roster)],
        run: by_unrostered,
    },
    Check {
        codes: &[Code::QueryByIneligibleHolder],
        needs: LOG_ROSTER_HR,
        run: by_ineligible,
    },
    Check {
        codes: &[Code::QueryByDisabledAccount],
        needs: &[
            Need::Table(Table::QueryLog),
            Need::Table(Table::Roster),
            Need::Column(Table::Roster, "disabled_on"),
        ],
        run: by_disabled,
    },
    Check {
        codes: &[Code::QuerySelfLookup],
        needs: &[
            Need::Table(Table::QueryLog),
            Need::Table(Table::Roster),
            Need::Table(Table::Hr),
            Need::Column(Table::Hr, "national_id"),
        ],
        run: self_lookup,
    },
    Check {
        codes: &[Code::QueryCoworkerLookup],
        needs: &[
            Need::Table(Table::QueryLog),
            Need::Table(Table::Hr),
            Need::Table(Table::RequestForms),
            Need::FormsCover,
            Need::Column(Table::Hr, "national_id"),
        ],
        run: coworker_lookup,
    },
    Check {
        codes: &[Code::QueryOffHours],
        needs: &[Need::Table(Table::QueryLog), Need::Calendar],
        run: off_hours,
    },
    Check {
        codes: &[Code::QueryVolumeSpike],
        needs: &[Need::Table(Table::QueryLog)],
        run: volume_spike,
    },
    Check {
        codes: &[Code::QuerySubjectManyAccounts],
        needs: &[Need::Table(Table::QueryLog)],
        run: subject_many_accounts,
    },
    Check {
        codes: &[Code::QueryFailedBurst],
        needs: &[
            Need::Table(Table::QueryLog),
            Need::Column(Table::QueryLog, "result"),
        ],
        run: failed_burst,
    },
];

/// The query-log columns the checks read.
const QUERY_COLUMNS: [&str; 8] = [
    "account_id",
    "queried_at",
    "subject_id",
    "purpose",
    "result",
    "agency_id",
    "source_file",
    "source_row",
];

/// Why a query is unexplained (see [`classify`]).
pub mod status {
    pub const NO_FORM: &str = "no_form";
    pub const NOT_APPROVED: &str = "not_approved";
    pub const APPROVED_AFTER: &str = "approved_after";
    pub const EXPIRED: &str = "expired";
}

fn dt() -> DataType {
    DataType::Datetime(TIME_UNIT, None)
}

/// The first instant after a form's validity: the day after its own
/// `valid_until`, else `form_validity_days` after the day it was approved.
fn window_end(approved_at: Expr, valid_until: Expr, validity_days: u32) -> Expr {
    when(valid_until.clone().is_not_null())
        .then(valid_until.cast(dt()) + lit(Duration::days(1)))
        .otherwise(
            approved_at.dt().date().cast(dt()) + lit(Duration::days(i64::from(validity_days) + 1)),
        )
}

/// Per request form, by its row in `forms` (`form_row`): what a query
/// matched to it reads — its id, purpose (as the log's categorical),
/// approval and the end of its validity window (`form_end`, see
/// [`window_end`]).
fn form_table(forms: &DataFrame, config: &Config) -> LazyFrame {
    forms
        .clone()
        .lazy()
        .with_row_index("form_row", None)
        .select([
            col("form_row"),
            col("form_id"),
            as_log(col("purpose")).alias("form_purpose"),
            col("approved_at").alias("form_approved_at"),
            form_end(config),
        ])
}

/// A form's `form_end`, from its `approved_at` and `valid_until`.
fn form_end(config: &Config) -> Expr {
    window_end(
        col("approved_at"),
        col("valid_until"),
        config.rules.form_validity_days,
    )
    .alias("form_end")
}

/// The row of `forms` (`form_row`) of each query's request form, the
/// latest approved strictly before it for the same account and subject
/// (an as-of join; `queries` sorted by `queried_at`), and whether the
/// query lies inside that form's validity window (`explained`). Only the
/// row is carried: at fifty million queries the form's fields, joined to
/// every query, held 1.6 GB. A form approved at the very second of the
/// query was not approved before it: the match is strict.
fn match_form_rows(queries: LazyFrame, forms: &DataFrame, config: &Config) -> LazyFrame {
    let by = [
        as_log(col("account_id")).alias("account_id"),
        col("subject_id"),
    ];
    match_form_rows_on(
        queries,
        forms,
        config,
        by,
        asof(AsofStrategy::Backward, false),
    )
}

/// [`match_form_rows`] on the forms' `by` keys (as the queries have them)
/// and the as-of join `on` them.
fn match_form_rows_on(
    queries: LazyFrame,
    forms: &DataFrame,
    config: &Config,
    by: impl IntoIterator<Item = Expr>,
    on: JoinType,
) -> LazyFrame {
    let back = forms
        .clone()
        .lazy()
        .with_row_index("form_row", None)
        .filter(col("approved_at").is_not_null())
        .select(
            by.into_iter()
                .chain([
                    col("approved_at").alias("form_approved_at"),
                    col("form_row"),
                    form_end(config),
                ])
                .collect::<Vec<_>>(),
        )
        .sort(["form_approved_at"], SortMultipleOptions::default());
    let explained = col("form_row")
        .is_not_null()
        .and(col("queried_at").lt(col("form_end")))
        .fill_null(lit(false));
    queries
        .join(
            back,
            [col("queried_at")],
            [col("form_approved_at")],
            JoinArgs::new(on),
        )
        .with_column(explained.alias("explained"))
        .drop(cols(["form_approved_at", "form_end"]))
}

/// The request form of each query (see [`match_form_rows`]): its id,
/// purpose and approval time, and whether the query lies inside its
/// validity window (`explained`). Queries are matched to forms by one
/// definition, [`match_form_rows_on`]: the sample worksheet uses it here
/// on the two columns, the checks ([`form_rows`]) on the pairs' integers
/// ([`PairKeys`]), which are equal exactly where both columns are (and
/// missing where either is, as a join leaves a missing key unmatched).
pub fn match_forms(queries: LazyFrame, forms: &DataFrame, config: &Config) -> LazyFrame {
    match_form_rows(queries, forms, config).join(
        form_table(forms, config).select([
            col("form_row"),
            col("form_id"),
            col("form_purpose"),
            col("form_approved_at"),
        ]),
        [col("form_row")],
        [col("form_row")],
        left_keep_order(),
    )
}

/// `q` (with `form_row`) with its form's id, approval and window end
/// (`form_id, form_approved_at, form_end`): taken on the few rows a
/// finding cites, not carried by every query.
fn with_form_fields(q: LazyFrame, cx: &Ctx<'_>) -> LazyFrame {
    q.join(
        form_table(&cx.forms, cx.config).select([
            col("form_row"),
            col("form_id"),
            col("form_approved_at"),
            col("form_end"),
        ]),
        [col("form_row")],
        [col("form_row")],
        left_keep_order(),
    )
}

/// Each query's `form_row` and `explained` (see [`match_form_rows`]), as
/// columns of `queries` (`queried_at, account_id, subject_id`, in time
/// order). Where the queries are many, matched per part of the subjects
/// ([`subject_parts`]: a subject's queries and forms meet in one part):
/// at fifty million queries at once, the join on the two columns held
/// 2.5 GB.
fn form_rows(
    queries: &DataFrame,
    forms: &DataFrame,
    config: &Config,
    parts: usize,
) -> PolarsResult<DataFrame> {
    // The (account, subject) pair of each query and form as one integer
    // ([`PairKeys`]): the join then groups on one number, where on the
    // two columns it encoded both as bytes for every row (0.3 s of 0.7 s
    // at ten million queries). The queries' are made per part.
    let form_codes = account_codes(forms)?;
    let mut pairs = PairKeys::new(&[&account_codes(queries)?, &form_codes]);
    let mut forms = forms.clone();
    let form_pairs = pairs.keys(forms.column("subject_id")?.str()?, &form_codes)?;
    forms.with_column(form_pairs.into_column())?;
    let on = asof_by(AsofStrategy::Backward, false, &["pair"]);
    let mut matched = |keys: DataFrame| {
        let pair = pairs.keys(keys.column("subject_id")?.str()?, &account_codes(&keys)?)?;
        let keys = DataFrame::new(
            keys.height(),
            vec![keys.column("queried_at")?.clone(), pair.into_column()],
        )?;
        match_form_rows_on(keys.lazy(), &forms, config, [col("pair")], on.clone())
            .select([col("form_row"), col("explained")])
            .collect()
    };
    let keys = queries.select(["queried_at", "account_id", "subject_id"])?;
    let parts = subject_parts(parts);
    if parts.len() == 1 {
        return matched(keys);
    }
    // Each part's matches scattered to their queries' rows: the part's
    // queries are those its mask holds, in order.
    let mut rows = vec![IdxSize::MAX; queries.height()];
    let mut explained = vec![false; queries.height()];
    for part in parts {
        let mask = keys.clone().lazy().select([part]).collect()?;
        let mask = mask.columns()[0].bool()?;
        let m = matched(keys.filter(mask)?)?;
        let mut found = m.column("form_row")?.idx()?.iter();
        let mut inside = m.column("explained")?.bool()?.iter();
        for (q, in_part) in mask.iter().enumerate() {
            if in_part != Some(true) {
                continue;
            }
            if let Some(f) = found.next().flatten() {
                rows[q] = f;
            }
            explained[q] = inside.next().flatten().unwrap_or(false);
        }
    }
    let rows = IdxCa::from_iter_options(
        "form_row".into(),
        rows.into_iter().map(|f| (f != IdxSize::MAX).then_some(f)),
    );
    DataFrame::new(
        queries.height(),
        vec![
            rows.into_series().into_column(),
            BooleanChunked::from_slice("explained".into(), &explained)
                .into_series()
                .into_column(),
        ],
    )
}

/// The first form approved at or after each query for the same account
/// and subject (`late_form_id`): the late approval QUERY_APPROVED_AFTER_QUERY
/// cites, for a query no earlier form explains (a form approved at the
/// very second of the query counts as after it). `queries` sorted by
/// `queried_at`.
pub fn late_forms(queries: LazyFrame, forms: &DataFrame) -> LazyFrame {
    let forward = forms
        .clone()
        .lazy()
        .filter(col("approved_at").is_not_null())
        .select([
            as_log(col("account_id")).alias("account_id"),
            col("subject_id"),
            col("form_id").alias("late_form_id"),
            col("approved_at").alias("late_approved_at"),
        ])
        .sort(["late_approved_at"], SortMultipleOptions::default());
    queries.join(
        forward,
        [col("queried_at")],
        [col("late_approved_at")],
        JoinArgs::new(asof(AsofStrategy::Forward, true)),
    )
}

/// Queries with their account, holder and the request form that explains
/// them (or why none does), in a deterministic order.
pub fn explain(
    queries: LazyFrame,
    in_time_order: bool,
    parts: usize,
    accounts: &DataFrame,
    forms: &DataFrame,
    config: &Config,
) -> PolarsResult<LazyFrame> {
    // A stable sort on time: as-of joins need it, and every "first" below
    // then depends only on content (ties keep file order, which changes
    // nothing but the source row a finding points to).
    // Only the columns the checks read are sorted: the sort copies them.
    let queries = queries.select(QUERY_COLUMNS.map(col)).collect()?;
    let queries = if in_time_order {
        queries
    } else {
        by_time(queries)?
    };
    // Only the account's agency is looked up for every query; holder
    // attributes are joined by the checks that need them, on the few rows
    // they select. The roster's keys as the log's categoricals.
    let roster_keys = |name: &str| -> PolarsResult<Series> {
        accounts
            .column(name)?
            .as_materialized_series()
            .cast(&crate::ingest::parse::categorical())
    };
    let (ids, agencies) = (roster_keys("account_id")?, roster_keys("agency_id")?);
    // A query's agency, a gather by its account's code.
    let by_code = crate::ingest::parse::by_code(&ids, &agencies)?;
    let queries = queries
        .lazy()
        .with_columns([
            one_of(col("account_id"), ids).alias("in_roster"),
            coalesce(&[
                lit(by_code).gather(col("account_id").to_physical(), true),
                col("agency_id"),
            ])
            .alias("agency_id"),
        ])
        .collect()?;
    // Every query carries its form's row and purpose (4 bytes each) and
    // whether the form explains it; the form's other fields are taken
    // where a finding cites them ([`with_form_fields`]).
    let matched = form_rows(&queries, forms, config, parts)?;
    let purpose = form_table(forms, config)
        .select([col("form_purpose")])
        .collect()?
        .take(matched.column("form_row")?.idx()?)?;
    let q = queries
        .hstack(matched.columns())?
        .hstack(purpose.columns())?
        .lazy();
    // Only what the checks read: at ten million rows every column counts.
    Ok(q.select(
        QUERY_COLUMNS
            .iter()
            .chain(&["in_roster", "form_row", "form_purpose", "explained"])
            .map(|c| col(*c))
            .collect::<Vec<_>>(),
    ))
}

/// `queries` in time order, stably (ties keep file order): the order the
/// frame's sort gives, made one column at a time. Where the frame alone
/// holds its columns (a run's own log), each is freed as its copy is
/// made; at fifty million queries a sort of the frame at once holds two
/// copies of it (2.4 GB more). Where another holds them too (the annual
/// review's two runs share one log), nothing is freed early.
fn by_time(queries: DataFrame) -> PolarsResult<DataFrame> {
    let times = queries.column("queried_at")?;
    let order = match packed_time_order(times)? {
        Some(order) => order,
        None => times.arg_sort(
            SortOptions::default()
                .with_maintain_order(true)
                .with_nulls_last(true),
        ),
    };
    let height = order.len();
    let mut columns = crate::ingest::parse::gathered(queries.into_columns(), &order)?;
    if let Some(c) = columns
        .iter_mut()
        .find(|c| c.name().as_str() == "queried_at" && c.null_count() == 0)
    {
        c.set_sorted_flag(polars::series::IsSorted::Ascending);
    }
    DataFrame::new(height, columns)
}

/// The stable time order of `times` (no nulls) by one sort of 64-bit
/// keys, each the time (from the earliest, in whole seconds where every
/// time is one) above the row number: equal times keep row order, as the
/// stable sort does. At fifty million queries polars' stable arg-sort
/// held 1.6 GB, these keys 0.4 GB, sorted in place. `None` where the keys
/// would not fit in 64 bits (or a time is null): then polars' sort.
fn packed_time_order(times: &Column) -> PolarsResult<Option<IdxCa>> {
    let physical = times.as_materialized_series().to_physical_repr();
    let times = physical.i64()?;
    let (Some(min), Some(max)) = (times.min(), times.max()) else {
        return Ok(None);
    };
    if times.null_count() > 0 {
        return Ok(None);
    }
    const SECOND: i64 = 1_000_000;
    let unit = if times.into_no_null_iter().all(|t| t % SECOND == 0) {
        SECOND
    } else {
        1
    };
    let bits = |n: u64| 64 - n.leading_zeros();
    let row_bits = bits(times.len() as u64);
    let span = (max - min) as u64 / unit as u64;
    if bits(span) + row_bits > 64 {
        return Ok(None);
    }
    let mut keys: Vec<u64> = times
        .into_no_null_iter()
        .enumerate()
        .map(|(row, t)| ((t - min) as u64 / unit as u64) << row_bits | row as u64)
        .collect();
    rayon::slice::ParallelSliceMut::par_sort_unstable(&mut keys[..]);
    let rows = (1u64 << row_bits) - 1;
    Ok(Some(IdxCa::from_vec(
        "order".into(),
        keys.into_iter().map(|k| (k & rows) as IdxSize).collect(),
    )))
}

/// An as-of join per (account, subject) on the approval time.
fn asof(strategy: AsofStrategy, allow_eq: bool) -> JoinType {
    asof_by(strategy, allow_eq, &["account_id", "subject_id"])
}

/// An as-of join per group of the `by` columns on the approval time.
fn asof_by(strategy: AsofStrategy, allow_eq: bool, by: &[&str]) -> JoinType {
    let by: Vec<PlSmallStr> = by.iter().map(|c| (*c).into()).collect();
    JoinType::AsOf(Box::new(AsOfOptions {
        strategy,
        tolerance: None,
        tolerance_str: None,
        left_by: Some(by.clone()),
        right_by: Some(by),
        allow_eq,
        check_sortedness: false,
    }))
}

/// Why each unexplained query is unexplained: no form, a form never
/// approved, one approved only after the query, or one expired. Runs on
/// the unexplained rows only.
fn classify(unexplained: LazyFrame, forms: &DataFrame, config: &Config) -> LazyFrame {
    let key = [col("account_id"), col("subject_id")];
    let pairs = forms
        .clone()
        .lazy()
        .with_column(as_log(col("account_id")).alias("account_id"))
        .group_by(key.clone())
        .agg([
            len().alias("n_forms"),
            col("form_id")
                .filter(col("approved_at").is_null())
                .sort(SortOptions::default())
                .first()
                .alias("unapproved_form_id"),
        ]);
    let validity = config.rules.form_validity_days as i64;
    // A form approved after the query counts as "approved after" only when
    // it is close enough to be that query's form, not a later case's.
    let late_is_this =
        (col("late_approved_at") - col("queried_at")).lt_eq(lit(Duration::days(validity.max(1))));
    let status = when(col("n_forms").is_null())
        .then(lit(status::NO_FORM))
        .when(col("late_form_id").is_not_null().and(late_is_this))
        .then(lit(status::APPROVED_AFTER))
        .when(col("unapproved_form_id").is_not_null())
        .then(lit(status::NOT_APPROVED))
        .when(col("form_row").is_not_null())
        .then(lit(status::EXPIRED))
        .otherwise(lit(status::NO_FORM));
    late_forms(unexplained, forms)
        .join(pairs, key.clone(), key, left_keep_order())
        .with_column(status.alias("explanation"))
}

fn queries(cx: &Ctx<'_>) -> LazyFrame {
    cx.queries.clone().lazy()
}

/// `select` (a filter judging each query on its own, with small tables)
/// over slices of the queries one after another, as many as
/// [`part_count`] says: its intermediates (a column or two of every
/// query) then hold a slice's rows. At fifty million queries the
/// purpose check's, over all at once, held 1.3 GB.
fn per_slice(
    cx: &Ctx<'_>,
    select: impl Fn(LazyFrame) -> PolarsResult<LazyFrame>,
) -> PolarsResult<LazyFrame> {
    let n = cx.queries.height();
    let size = n.div_ceil(cx.parts).max(1);
    let mut found = Vec::new();
    for start in (0..n.max(1)).step_by(size) {
        found.push(select(queries(cx).slice(start as i64, size as IdxSize))?.collect()?);
    }
    Ok(concat_frames(found)?.lazy())
}

/// Queries by accounts whose roster-and-HR row passes `filter`, with the
/// holder columns the checks read. The filter runs on the small account
/// table first, so the join only touches the queries that matter.
fn queries_of(cx: &Ctx<'_>, filter: Expr) -> LazyFrame {
    let holders = cx.accounts.clone().lazy().filter(filter).select([
        as_log(col("account_id")).alias("account_id"),
        col("disabled_on"),
        col("employment_type").alias("acct_employment"),
        col("hr_status"),
        col("hr_effective"),
        col("hr_employment"),
        col("hr_national_id"),
    ]);
    queries(cx).join(
        holders,
        [col("account_id")],
        [col("account_id")],
        JoinArgs::new(JoinType::Inner),
    )
}

/// A finding about one query row.
fn about_query(code: Code, reason: Expr) -> Vec<Expr> {
    about_queries(code, col("subject_id"), reason)
}

fn at() -> Expr {
    ymd_hms(col("queried_at"))
}

fn unexplained(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let e = col("explanation");
    let code = when(e.clone().eq(lit(status::NO_FORM)))
        .then(lit(Code::QueryNoRequestForm.as_str()))
        .when(e.clone().eq(lit(status::NOT_APPROVED)))
        .then(lit(Code::QueryFormNotApproved.as_str()))
        .when(e.clone().eq(lit(status::APPROVED_AFTER)))
        .then(lit(Code::QueryApprovedAfterQuery.as_str()))
        .otherwise(lit(Code::QueryFormExpired.as_str()));
    let reason = when(e.clone().eq(lit(status::NO_FORM)))
        .then(sentence([
            lit("於 "),
            at(),
            lit(" 查詢，查無同一帳號、同一被查詢人之查詢申請紀錄表"),
        ]))
        .when(e.clone().eq(lit(status::NOT_APPROVED)))
        .then(sentence([
            lit("紀錄表 "),
            col("unapproved_form_id"),
            lit(" 未經權責主管核可，即於 "),
            at(),
            lit(" 查詢"),
        ]))
        .when(e.clone().eq(lit(status::APPROVED_AFTER)))
        .then(sentence([
            lit("紀錄表 "),
            col("late_form_id"),
            lit(" 於 "),
            ymd_hms(col("late_approved_at")),
            lit(" 始經核可，晚於查詢時間 "),
            at(),
            lit("，未依第5點第2款第1目事前核可"),
        ]))
        .otherwise(sentence([
            lit("紀錄表 "),
            col("form_id"),
            lit(" 於 "),
            ymd_hms(col("form_approved_at")),
            lit(" 核可，有效期間至 "),
            ymd(col("form_end") - lit(Duration::days(1))),
            lit("，查詢時間 "),
            at(),
            lit(" 已逾有效期間"),
        ]));
    let mut cols = about_query(Code::QueryNoRequestForm, reason);
    cols[0] = code.alias("code");
    let rows = queries(cx).filter(col("explained").not());
    Ok(with_form_fields(classify(rows, &cx.forms, cx.config), cx).select(cols))
}

fn label(code: Expr) -> Expr {
    let codes: Vec<&str> = PURPOSE.codes().collect();
    let labels: Vec<&str> = PURPOSE.entries.iter().map(|e| e.1).collect();
    let code = as_text(code);
    code.clone().replace_strict(
        lit(Series::new("c".into(), codes)),
        lit(Series::new("l".into(), labels)),
        Some(code),
        Some(DataType::String),
    )
}

fn purpose_not_allowed(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let allowed_text: Vec<String> = cx
        .config
        .agencies
        .iter()
        .map(|a| {
            a.purposes
                .iter()
                .map(|p| PURPOSE.label(p).unwrap_or(p))
                .collect::<Vec<_>>()
                .join("、")
        })
        .collect();
    let ids: Vec<&str> = cx.config.agencies.iter().map(|a| a.id.as_str()).collect();
    let allowed = df!("agency_id" => ids, "allowed_text" => allowed_text)?
        .lazy()
        .with_column(as_log(col("agency_id")));
    // Each (agency, purpose) pair as one integer: an anti-join on the two
    // keys encoded every query's pair as bytes, 0.2 GB more at the peak
    // for ten million queries.
    let allowed_pairs = cx
        .purposes
        .clone()
        .lazy()
        .select([code_pair(col("agency_id"), col("purpose")).alias("pair")])
        .collect()?
        .column("pair")?
        .as_materialized_series()
        .clone();
    // A query of no known agency has no allowed purpose.
    let permitted = one_of(
        code_pair(col("agency_id"), col("used_purpose")),
        allowed_pairs,
    )
    .fill_null(lit(false));
    let outside = per_slice(cx, |q| {
        Ok(q.with_column(
            when(col("explained"))
                .then(coalesce(&[col("form_purpose"), col("purpose")]))
                .otherwise(col("purpose"))
                .alias("used_purpose"),
        )
        .filter(col("used_purpose").is_not_null())
        .filter(permitted.clone().not()))
    })?;
    Ok(with_form_fields(outside, cx)
        .join(
            allowed,
            [col("agency_id")],
            [col("agency_id")],
            JoinArgs::new(JoinType::Left),
        )
        .select(about_query(
            Code::QueryPurposeNotAllowed,
            sentence([
                lit("查詢目的「"),
                label(col("used_purpose")),
                lit("」"),
                when(col("explained").and(col("form_purpose").is_not_null()))
                    .then(sentence([lit("（紀錄表 "), col("form_id"), lit("）")]))
                    .otherwise(lit("（查詢紀錄）")),
                lit("不在該機關法定職務範圍（"),
                col("allowed_text").fill_null(lit("")),
                lit("），違反第3點"),
            ]),
        )))
}

/// Point 5(2)1: the form explains a query for the purpose it states. A
/// query made for another purpose than its approved form's is not what the
/// supervisor approved.
fn purpose_mismatch(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let candidates = queries(cx).filter(
        col("explained")
            .and(col("purpose").is_not_null())
            .and(col("form_purpose").is_not_null())
            .and(col("purpose").neq(col("form_purpose"))),
    );
    // The match is the latest form; an earlier one, still valid and for
    // the query's own purpose, explains it as well. Only the few
    // candidates are compared with the forms.
    let same_purpose = candidates
        .clone()
        .select([
            col("source_file"),
            col("source_row"),
            col("account_id"),
            col("subject_id"),
            col("purpose"),
            col("queried_at"),
        ])
        .join(
            cx.forms
                .clone()
                .lazy()
                .filter(col("approved_at").is_not_null())
                .select([
                    as_log(col("account_id")).alias("account_id"),
                    col("subject_id"),
                    as_log(col("purpose")).alias("purpose"),
                    col("approved_at"),
                    col("valid_until"),
                ]),
            [col("account_id"), col("subject_id"), col("purpose")],
            [col("account_id"), col("subject_id"), col("purpose")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(
            col("approved_at")
                .lt(col("queried_at"))
                .and(col("queried_at").lt(window_end(
                    col("approved_at"),
                    col("valid_until"),
                    cx.config.rules.form_validity_days,
                ))),
        )
        .select([col("source_file"), col("source_row")]);
    let mismatched = candidates.join(
        same_purpose,
        [col("source_file"), col("source_row")],
        [col("source_file"), col("source_row")],
        JoinArgs::new(JoinType::Anti),
    );
    Ok(with_form_fields(mismatched, cx).select(about_query(
        Code::QueryPurposeMismatch,
        sentence([
            lit("查詢紀錄之目的「"),
            label(col("purpose")),
            lit("」與紀錄表 "),
            col("form_id"),
            lit(" 所載目的「"),
            label(col("form_purpose")),
            lit("」不符（第5點第2款第1目）"),
        ]),
    )))
}

/// Point 5(2)1: the form is approved beforehand by the responsible
/// supervisor (權責主管), not by the person who queries. A form whose
/// approver is the querying account's holder approves nothing.
fn self_approved(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    // Forms are few: find the self-approved ones first, then their queries.
    let own = cx
        .forms
        .clone()
        .lazy()
        .with_row_index("form_row", None)
        .filter(col("approver").is_not_null())
        .join(
            cx.accounts.clone().lazy().select([
                col("account_id"),
                col("holder_name"),
                col("hr_name"),
            ]),
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(
            col("approver")
                .eq(col("holder_name"))
                .or(col("approver").eq(col("hr_name")))
                .fill_null(lit(false)),
        )
        .select([col("form_row"), col("form_id"), col("approver")])
        .collect()?;
    // The form each query matched, by its row: a form of the same id but
    // another account's does not approve this query.
    Ok(queries(cx)
        .filter(col("explained"))
        .join(
            own.lazy(),
            [col("form_row")],
            [col("form_row")],
            JoinArgs::new(JoinType::Inner),
        )
        .select(about_query(
            Code::QuerySelfApproved,
            sentence([
                lit("紀錄表 "),
                col("form_id"),
                lit(" 之核可人為查詢者本人（"),
                col("approver"),
                lit("），未經權責主管事前核可（第5點第2款第1目）"),
            ]),
        )))
}

fn after_departure(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    Ok(queries_of(cx, holder_gone())
        .filter(col("queried_at").dt().date().gt(col("hr_effective")))
        .select(about_query(
            Code::QueryAfterDeparture,
            sentence([
                lit("持有人依人事資料已於 "),
                ymd(col("hr_effective")),
                lit(" "),
                gone_word(),
                lit("，帳號仍於 "),
                at(),
                lit(" 查詢，應查明是否遭他人使用"),
            ]),
        )))
}

/// Every query of an account nobody manages: the roster (the same rows
/// as the account review's ACCOUNT_NOT_IN_ROSTER and the 清冊外帳號 sheet)
/// lacks it, so each of its queries is counted and followed up.
fn by_unrostered(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    Ok(cx.not_in_roster().select(about_query(
        Code::QueryByUnrosteredAccount,
        sentence([
            lit("帳號不在帳號清冊（無人管理之帳號），仍於 "),
            at(),
            lit(" 查詢，應查明帳號來源及使用人"),
        ]),
    )))
}

fn by_ineligible(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    Ok(queries_of(cx, holder_ineligible()).select(about_query(
        Code::QueryByIneligibleHolder,
        sentence([
            lit("持有人非編制內或約聘僱人員，仍於 "),
            at(),
            lit(" 查詢（第5點第2款）"),
        ]),
    )))
}

fn by_disabled(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    Ok(queries_of(cx, col("disabled_on").is_not_null())
        .filter(col("queried_at").dt().date().gt(col("disabled_on")))
        .select(about_query(
            Code::QueryByDisabledAccount,
            sentence([
                lit("帳號已於 "),
                ymd(col("disabled_on")),
                lit(" 停用，仍於 "),
                at(),
                lit(" 有查詢紀錄"),
            ]),
        )))
}

fn self_lookup(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let own = cx
        .accounts
        .clone()
        .lazy()
        .filter(col("hr_national_id").is_not_null())
        .select([
            as_log(col("account_id")).alias("account_id"),
            col("hr_national_id").alias("subject_id"),
        ]);
    // The few queries of a holder's ID first, on the one key: a join on
    // both keys encoded every query's pair as bytes.
    let holders_ids = own
        .clone()
        .select([col("subject_id")])
        .collect()?
        .column("subject_id")?
        .as_materialized_series()
        .clone();
    let key = [col("account_id"), col("subject_id")];
    Ok(queries(cx)
        .filter(one_of(col("subject_id"), holders_ids))
        .join(own, key.clone(), key, JoinArgs::new(JoinType::Inner))
        .select(about_query(
            Code::QuerySelfLookup,
            sentence([
                lit("於 "),
                at(),
                lit(" 查詢之對象為帳號持有人本人（人事資料身分證號相符）"),
            ]),
        )))
}

fn coworker_lookup(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    Ok(queries(cx)
        .join(
            cx.staff_ids.clone().lazy(),
            [col("subject_id")],
            [col("subject_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .join(
            cx.accounts
                .clone()
                .lazy()
                .select([as_log(col("account_id")), col("hr_national_id")]),
            [col("account_id")],
            [col("account_id")],
            JoinArgs::new(JoinType::Left),
        )
        .filter(
            col("explained").not().and(
                col("subject_id")
                    .neq(col("hr_national_id"))
                    .fill_null(lit(true)),
            ),
        )
        .select(about_query(
            Code::QueryCoworkerLookup,
            sentence([
                lit("於 "),
                at(),
                lit(" 查詢之對象為本府同仁（人事資料），且無核可之查詢申請紀錄表"),
            ]),
        )))
}

fn dates(name: &str, ds: &[chrono::NaiveDate]) -> Series {
    Series::new(name.into(), ds.to_vec())
}

fn off_hours(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    use chrono::Timelike;
    let (start, end) = cx.config.rules.office_hours;
    let secs = |t: chrono::NaiveTime| t.num_seconds_from_midnight() as i64;
    // Day, time of day and weekday by integer arithmetic (`day_number`).
    // 1970-01-01 was a Thursday (ISO weekday 4).
    // The day as a 32-bit date and the time of day in seconds: each
    // intermediate column of ten million rows is memory touched.
    let days = day_number(col("queried_at")).cast(DataType::Int32);
    let tod = col("queried_at")
        .to_physical()
        .floor_div(lit(1_000_000i64))
        .cast(DataType::Int64)
        % lit(86_400i64);
    let weekday = (days.clone() + lit(3i32)) % lit(7i32) + lit(1i32);
    let day = days.cast(DataType::Date);
    let workday = one_of(day.clone(), dates("w", &cx.workdays)).or(weekday
        .lt_eq(lit(5i32))
        .and(one_of(day, dates("h", &cx.holidays)).not()));
    let hours = format!("{}-{}", start.format("%H:%M"), end.format("%H:%M"));
    // The few rows off hours first; whether each is on a workday is then
    // worked out again on those rows only, for its sentence.
    let off = workday
        .clone()
        .not()
        .or(tod.clone().lt(lit(secs(start))))
        .or(tod.gt_eq(lit(secs(end))));
    Ok(per_slice(cx, |q| Ok(q.filter(off.clone())))?
        .with_column(workday.alias("workday"))
        .select(about_query(
            Code::QueryOffHours,
            when(col("workday").not())
                .then(sentence([lit("查詢時間 "), at(), lit(" 為週末或國定假日")]))
                .otherwise(sentence([
                    lit("查詢時間 "),
                    at(),
                    lit(format!(" 不在上班時間 {hours}")),
                ])),
        )))
}

fn volume_spike(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let factor = cx.config.rules.spike_factor as f64;
    let min = cx.config.rules.spike_min;
    let account = (col("account_day") / lit(1u64 << 32)).alias("account");
    let spikes = concat_frames(
        account_parts(cx.parts)
            .into_iter()
            .map(|part| account_days(cx, part))
            .collect::<PolarsResult<_>>()?,
    )?
    .lazy()
    .with_column(
        col("n")
            .cast(DataType::Float64)
            .median()
            .over([account])?
            .alias("median"),
    )
    .filter(
        col("n")
            .cast(DataType::Float64)
            .gt(col("median") * lit(factor))
            .and(col("n").gt(lit(min))),
    )
    .collect()?;
    // Each spike day's first query, taken whole.
    let mut firsts = cx.queries.take(spikes.column("query_row")?.idx()?)?;
    firsts.hstack_mut(&[
        spikes.column("n")?.clone(),
        spikes.column("median")?.clone(),
    ])?;
    Ok(firsts.lazy().select(about_queries(
        Code::QueryVolumeSpike,
        null_str(),
        sentence([
            ymd(col("queried_at").dt().date()),
            lit(" 查詢 "),
            col("n").cast(DataType::String),
            lit(" 筆，為本帳號每日查詢量中位數 "),
            col("median")
                .round(1, RoundMode::default())
                .cast(DataType::String),
            lit(format!(" 筆之 {factor} 倍以上且逾 {min} 筆")),
        ]),
    )))
}

/// Within `part`: the queries per account and day (`account_day`, the two
/// as one integer: a group-by on the two keys encoded every query's pair
/// as bytes), with the count `n` and the first query's row (`query_row`;
/// the frame is in time order).
fn account_days(cx: &Ctx<'_>, part: Expr) -> PolarsResult<DataFrame> {
    queries(cx)
        .with_row_index("query_row", None)
        .select([col("query_row"), col("account_id"), col("queried_at")])
        .filter(part)
        .group_by([code_and_day(col("account_id"), col("queried_at")).alias("account_day")])
        .agg([len().alias("n"), col("query_row").first()])
        .collect()
}

/// `n` parts of the queries that split no account, by its code: at fifty
/// million queries the grouping of them all at once held 1.2 GB more.
fn account_parts(n: usize) -> Vec<Expr> {
    if n <= 1 {
        return vec![lit(true)];
    }
    (0..n as u32)
        .map(|i| {
            (col("account_id").to_physical() % lit(n as u32))
                .eq(lit(i))
                .fill_null(lit(i == 0))
        })
        .collect()
}

fn subject_many_accounts(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    subject_many_in_parts(cx, cx.parts)
}

/// [`subject_many_accounts`] counted in `n` parts (see [`subject_parts`]).
pub(super) fn subject_many_in_parts(cx: &Ctx<'_>, n: usize) -> PolarsResult<LazyFrame> {
    // A subject's queries all fall in one part (by the ID's last
    // character), so each part is counted on its own: at fifty million
    // queries the grouping of them all at once held 3 GB more.
    let mut firsts = Vec::new();
    for part in subject_parts(n) {
        firsts.push(subject_many_in(cx, part)?);
    }
    let firsts = concat_frames(firsts)?;
    let mut per_pair = cx.queries.take(firsts.column("query_row")?.idx()?)?;
    per_pair.with_column(firsts.column("k")?.clone())?;
    per_pair.with_column(firsts.column("n_accounts")?.clone())?;
    Ok(per_pair.lazy().select(about_queries(
        Code::QuerySubjectManyAccounts,
        col("subject_id"),
        sentence([
            lit("同一被查詢人於本期間遭 "),
            col("n_accounts").cast(DataType::String),
            lit(" 個不同帳號查詢；本帳號查詢 "),
            col("k").cast(DataType::String),
            lit(" 次，首次於 "),
            at(),
        ]),
    )))
}

/// Queries worked on at once, in one part: ten million are grouped at
/// once in 1.25 GiB, and every part costs a pass.
const QUERIES_AT_ONCE: usize = 10_000_000;

/// Queries a part holds where there are more than [`QUERIES_AT_ONCE`]:
/// each part's intermediates come on top of the frames, which at fifty
/// million queries are 3.4 GiB of the 4 GiB a run may hold.
const QUERIES_PER_PART: usize = 5_000_000;

/// How many parts `queries` are worked on in: one up to
/// [`QUERIES_AT_ONCE`], else the fewest of 2, 5 or 10 (which share the
/// ten last digits evenly) that hold about [`QUERIES_PER_PART`] each, as
/// the last digits spread; 10 at most.
pub(super) fn part_count(queries: usize) -> usize {
    if queries <= QUERIES_AT_ONCE {
        return 1;
    }
    let needed = queries.div_ceil(QUERIES_PER_PART);
    [1, 2, 5, 10]
        .into_iter()
        .find(|n| *n >= needed)
        .unwrap_or(10)
}

/// `n` parts of the queries that split no subject, by the last character
/// of the ID (a check digit, spread near evenly over 0 to 9): part `i > 0`
/// holds the IDs whose last digit `d` has `d % n == i`, part 0 every other
/// ID (a last character that is no digit, or none).
fn subject_parts(n: usize) -> Vec<Expr> {
    let n = n.clamp(1, 10);
    let ends_with = |d: usize| col("subject_id").str().ends_with(lit(d.to_string()));
    let mut parts: Vec<Expr> = (1..n)
        .filter_map(|i| {
            (0..10)
                .filter(|d| d % n == i)
                .map(ends_with)
                .reduce(|a, b| a.or(b))
        })
        .collect();
    let part_0 = parts
        .iter()
        .cloned()
        .reduce(|a, b| a.or(b))
        .map_or(lit(true), |others| others.not().fill_null(lit(true)));
    parts.insert(0, part_0);
    parts
}

/// Within `part`: per (subject, account) of each subject queried by
/// enough accounts, the first query's row, the pair's count and the
/// subject's count of accounts (`query_row, k, n_accounts`), by the first
/// row. The pairs are grouped on one integer ([`PairKeys`]), then
/// counted per subject among the few pairs: at ten million queries the
/// check took 0.8-1.0 s grouping on the subject's text and counting
/// distinct accounts in each group, 0.5 s this way. The first of each
/// pair (the frame is in time order) is later taken whole.
fn subject_many_in(cx: &Ctx<'_>, part: Expr) -> PolarsResult<DataFrame> {
    let rows = queries(cx)
        .with_row_index("query_row", None)
        .select([col("query_row"), col("subject_id"), col("account_id")])
        .filter(part)
        .collect()?;
    let codes = account_codes(&rows)?;
    let mut numbering = PairKeys::new(&[&codes]);
    let pairs = numbering.keys(rows.column("subject_id")?.str()?, &codes)?;
    let shift = numbering.shift;
    let accounts_of_subject = len()
        .over([col("pair").floor_div(lit(1u64 << shift))])?
        .alias("n_accounts");
    DataFrame::new(
        rows.height(),
        vec![pairs.into_column(), rows.column("query_row")?.clone()],
    )?
    .lazy()
    .filter(col("pair").is_not_null())
    .group_by([col("pair")])
    .agg([col("query_row").min(), len().alias("k")])
    .with_column(accounts_of_subject)
    .filter(col("n_accounts").gt_eq(lit(cx.config.rules.subject_accounts_threshold)))
    .select([col("query_row"), col("k"), col("n_accounts")])
    .sort(["query_row"], SortMultipleOptions::default())
    .collect()
}

/// The codes of `df`'s accounts in the log's dictionary (text cast to
/// it, as a request form's account is), for [`PairKeys`].
fn account_codes(df: &DataFrame) -> PolarsResult<UInt32Chunked> {
    Ok(df
        .column("account_id")?
        .as_materialized_series()
        .cast(&parse::categorical())?
        .to_physical_repr()
        .u32()?
        .clone())
}

/// (Subject, account) pairs as integers, on one numbering of every
/// frame's accounts: equal pairs, equal integers. The subject's key is
/// above, the account's number (in the order of the accounts' codes)
/// below, in the lowest [`PairKeys::shift`] bits. A national ID (a
/// letter, a letter or digit, eight digits) is its own key, under 2^37;
/// any other text a number from 2^37 on, in order of first appearance.
/// A pair missing its subject or its account has no integer: as a join
/// or a filter on the two columns leaves it out, so is it left out
/// where the integer is used. (Ingest lets neither be missing.)
struct PairKeys {
    /// By account code (`u32::MAX`: not numbered).
    number: Vec<u32>,
    shift: u32,
    /// Subjects that are no national ID. Lookups only: no iteration
    /// order reaches any output.
    others: PlHashMap<String, u64>,
}

impl PairKeys {
    const OTHER: u64 = 1 << 37;

    /// The numbering of the accounts whose codes `accounts` hold.
    fn new(accounts: &[&UInt32Chunked]) -> PairKeys {
        let most = accounts
            .iter()
            .filter_map(|a| a.max())
            .max()
            .map_or(0, |m| m as usize + 1);
        let mut seen = vec![false; most];
        for a in accounts {
            for code in a.iter().flatten() {
                seen[code as usize] = true;
            }
        }
        let mut numbers = 0u32;
        let number = seen
            .into_iter()
            .map(|seen| {
                if !seen {
                    return u32::MAX;
                }
                numbers += 1;
                numbers - 1
            })
            .collect();
        PairKeys {
            number,
            shift: 64 - u64::from(numbers).leading_zeros(),
            others: PlHashMap::new(),
        }
    }

    /// The pairs of `subjects` and `accounts` (codes among those
    /// [`PairKeys::new`] numbered).
    fn keys(
        &mut self,
        subjects: &StringChunked,
        accounts: &UInt32Chunked,
    ) -> PolarsResult<UInt64Chunked> {
        let mut keys: Vec<Option<u64>> = Vec::with_capacity(subjects.len());
        for (s, a) in subjects.iter().zip(accounts.iter()) {
            let (Some(s), Some(a)) = (s, a) else {
                keys.push(None);
                continue;
            };
            let subject = match parse::national_id_key(s.as_bytes()) {
                Some(k) => k,
                None => match self.others.get(s) {
                    Some(k) => *k,
                    None => {
                        let next = Self::OTHER + self.others.len() as u64;
                        self.others.insert(s.to_owned(), next);
                        next
                    }
                },
            };
            let account = self.number.get(a as usize).copied().unwrap_or(u32::MAX);
            if account == u32::MAX {
                polars_bail!(ComputeError: "an account the pairs' numbering does not know");
            }
            if self.shift > 0 && subject >> (64 - self.shift) != 0 {
                polars_bail!(ComputeError: "too many accounts to pair with subjects");
            }
            keys.push(Some(subject << self.shift | u64::from(account)));
        }
        Ok(UInt64Chunked::from_iter_options(
            "pair".into(),
            keys.into_iter(),
        ))
    }
}

/// The frames one under another (empty parts add nothing).
fn concat_frames(frames: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut frames = frames.into_iter();
    let mut all = frames.next().unwrap_or_default();
    for f in frames {
        all.vstack_mut_owned(f)?;
    }
    Ok(all)
}

fn failed_burst(cx: &Ctx<'_>) -> PolarsResult<LazyFrame> {
    let n = cx.config.rules.failed_burst.max(1);
    let failures = queries(cx)
        .filter(col("result").eq(lit("failure")))
        .sort_by_exprs(
            [col("account_id"), col("queried_at")],
            SortMultipleOptions::default().with_maintain_order(true),
        );
    // A burst starts at a failure whose (n-1)-th following failure by the
    // same account is within the hour.
    let nth = col("queried_at")
        .shift(lit(-(n as i64 - 1)))
        .over([col("account_id")])?;
    Ok(failures
        .with_column(nth.alias("nth_at"))
        .filter((col("nth_at") - col("queried_at")).lt_eq(lit(Duration::hours(1))))
        // Overlapping starts are one burst: keep a start only when the
        // account's previous start is more than an hour earlier.
        .with_column(
            col("queried_at")
                .shift(lit(1))
                .over([col("account_id")])?
                .alias("prev_start"),
        )
        .filter(
            (col("queried_at") - col("prev_start"))
                .gt(lit(Duration::hours(1)))
                .fill_null(lit(true)),
        )
        .select(about_queries(
            Code::QueryFailedBurst,
            null_str(),
            sentence([
                lit("自 "),
                at(),
                lit(format!(
                    " 起一小時內查詢失敗達 {n} 次以上，請確認是否有人嘗試不當查詢"
                )),
            ]),
        )))
}

/// The roll-up: accounts with findings of three or more query codes.
pub fn repeat_pattern(raw: &DataFrame) -> PolarsResult<LazyFrame> {
    let query_codes: Vec<&str> = CHECKS
        .iter()
        .flat_map(|c| c.codes.iter().map(|c| c.as_str()))
        .collect();
    Ok(raw
        .clone()
        .lazy()
        .filter(
            one_of(col("code"), Series::new("q".into(), query_codes))
                .and(col("account_id").is_not_null()),
        )
        // The source a finding cites breaks ties: the raw findings come
        // in no fixed order (some from hash groupings).
        .sort_by_exprs(
            [
                col("occurred_at"),
                col("code"),
                col("source_file"),
                col("source_row"),
            ],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .group_by([col("account_id")])
        .agg([
            col("code")
                .unique()
                .sort(SortOptions::default())
                .str()
                .join("、", true)
                .alias("codes"),
            col("code").n_unique().alias("n_codes"),
            col("agency_id").first(),
            col("occurred_at").first(),
            col("source_file").first(),
            col("source_row").first(),
        ])
        .filter(col("n_codes").gt_eq(lit(3u32)))
        .select(finding(
            Code::AccountRepeatPattern,
            col("agency_id"),
            col("account_id"),
            null_str(),
            null_str(),
            col("occurred_at"),
            sentence([
                lit("本期間本帳號出現 "),
                col("n_codes").cast(DataType::String),
                lit(" 種查詢異常："),
                col("codes"),
                lit("，應會同政風單位調查"),
            ]),
            col("source_file"),
            col("source_row"),
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ID falls in exactly one part, whatever the number of parts:
    /// a subject's queries are never split.
    #[test]
    fn subject_parts_cover_every_id_once() {
        let ids = [
            "A123456780",
            "A123456781",
            "B223456782",
            "C123456783",
            "D123456784",
            "E123456785",
            "F123456786",
            "G123456787",
            "H123456788",
            "J123456789",
            "AC0123456X",
            "",
        ];
        let df = df!("subject_id" => ids).unwrap();
        for n in 1..=10 {
            let parts = subject_parts(n);
            assert_eq!(parts.len(), n, "{n} parts");
            let mut counts = vec![0u32; ids.len()];
            for part in parts {
                let hit = df
                    .clone()
                    .lazy()
                    .with_column(part.alias("hit"))
                    .collect()
                    .unwrap();
                for (i, h) in hit
                    .column("hit")
                    .unwrap()
                    .bool()
                    .unwrap()
                    .iter()
                    .enumerate()
                {
                    counts[i] += u32::from(h == Some(true));
                }
            }
            assert!(counts.iter().all(|c| *c == 1), "{n} parts: {counts:?}");
        }
    }

    /// Two rows have the same pair integer exactly when they have the
    /// same subject and the same account: national IDs (either form) and
    /// other text alike; the subject is the integer's part above the
    /// account's bits; and a row missing its subject or its account has
    /// none (a join on the two columns leaves such a row unmatched).
    #[test]
    fn pair_keys_are_equal_exactly_for_equal_pairs() {
        let subjects = [
            Some("A123456789"),
            Some("A123456789"),
            Some("AC23456789"),
            Some("Z999999999"),
            Some("ZZ99999999"),
            Some("A12345678"),
            Some("not an id"),
            Some("not an id"),
            Some(""),
            None,
            None,
            Some("A123456789"),
            Some("a123456789"),
        ];
        let accounts = [
            Some(7u32),
            Some(7),
            Some(7),
            Some(7),
            Some(7),
            Some(7),
            Some(7),
            Some(3),
            Some(7),
            Some(7),
            None,
            None,
            Some(7),
        ];
        let subjects_ca = StringChunked::from_iter_options("s".into(), subjects.into_iter());
        let accounts_ca = UInt32Chunked::from_iter_options("a".into(), accounts.into_iter());
        let mut numbering = PairKeys::new(&[&accounts_ca]);
        let shift = numbering.shift;
        let keys: Vec<Option<u64>> = numbering
            .keys(&subjects_ca, &accounts_ca)
            .unwrap()
            .iter()
            .collect();
        for (k, (s, a)) in keys.iter().zip(subjects.iter().zip(&accounts)) {
            assert_eq!(k.is_none(), s.is_none() || a.is_none(), "{s:?} {a:?}");
        }
        let whole = |i: usize| subjects[i].is_some() && accounts[i].is_some();
        let keys: Vec<u64> = keys.into_iter().map(Option::unwrap_or_default).collect();
        for i in (0..keys.len()).filter(|i| whole(*i)) {
            for j in (0..keys.len()).filter(|j| whole(*j)) {
                let same = subjects[i] == subjects[j] && accounts[i] == accounts[j];
                assert_eq!(keys[i] == keys[j], same, "rows {i} and {j}");
                let same_subject = subjects[i] == subjects[j];
                assert_eq!(
                    keys[i] >> shift == keys[j] >> shift,
                    same_subject,
                    "rows {i} and {j}"
                );
            }
        }
        // Every national ID has a key of its own, under 2^37.
        let top = crate::ingest::parse::national_id_key(b"ZZ99999999").unwrap();
        assert!(top < 1 << 37);
        let ids = [
            "A000000000",
            "A100000000",
            "B000000000",
            "AA00000000",
            "A900000000",
        ];
        let mut seen: Vec<u64> = ids
            .iter()
            .map(|i| crate::ingest::parse::national_id_key(i.as_bytes()).unwrap())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), ids.len());
    }

    /// The repeat-pattern finding cites the same query whatever order the
    /// raw findings come in: two of its queries in the same second, of
    /// the same code, differ only in their row.
    #[test]
    fn a_repeat_pattern_cites_one_query_whatever_the_order_of_findings() {
        let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        let same = "QUERY_SUBJECT_MANY_ACCOUNTS";
        let raw = df!(
            "code" => [same, same, "QUERY_OFF_HOURS", "QUERY_VOLUME_SPIKE"],
            "agency_id" => ["KHB"; 4],
            "account_id" => ["U1"; 4],
            "occurred_at" => [at("2026-03-03 10:00:00"), at("2026-03-03 10:00:00"), at("2026-03-04 23:00:00"), at("2026-03-05 10:00:00")],
            "source_file" => ["log.csv"; 4],
            "source_row" => [8i64, 7, 9, 10],
        )
        .unwrap();
        let cited = |raw: &DataFrame| {
            let f = repeat_pattern(raw).unwrap().collect().unwrap();
            assert_eq!(f.height(), 1, "{f}");
            f.column("source_row").unwrap().i64().unwrap().get(0)
        };
        let reversed = raw.reverse();
        assert_eq!(cited(&raw), Some(7));
        assert_eq!(cited(&reversed), Some(7));
    }

    /// Parts hold about ten million queries each, in numbers that share
    /// the ten digits evenly.
    #[test]
    fn the_part_count_grows_with_the_queries() {
        let (once, m) = (QUERIES_AT_ONCE, QUERIES_PER_PART);
        let counts: Vec<usize> = [0, 1, once, once + 1, 5 * m, 5 * m + 1, 10 * m, 40 * m]
            .into_iter()
            .map(part_count)
            .collect();
        assert_eq!(counts, [1, 1, 1, 5, 5, 10, 10, 10]);
    }

    /// The time order made a column at a time is the frame's stable sort:
    /// ties keep file order.
    #[test]
    fn by_time_is_the_stable_sort_of_the_frame() {
        let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        let df = df!(
            "queried_at" => [at("2026-01-02 09:00:00"), at("2026-01-01 09:00:00"), at("2026-01-02 09:00:00"), at("2026-01-01 08:00:00"), at("2026-01-01 09:00:00")],
            "source_row" => [1u32, 2, 3, 4, 5],
            "subject_id" => ["a", "b", "c", "d", "e"],
        )
        .unwrap();
        let sorted = df
            .sort(
                ["queried_at"],
                SortMultipleOptions::default().with_maintain_order(true),
            )
            .unwrap();
        let ours = by_time(df).unwrap();
        assert!(ours.equals(&sorted), "{ours}\n{sorted}");
        let rows: Vec<u32> = ours
            .column("source_row")
            .unwrap()
            .u32()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(rows, [4, 2, 5, 1, 3]);
    }

    /// Times in whole seconds and in microseconds, many equal, a null
    /// (polars' own sort then): the order is polars' stable sort's.
    #[test]
    fn by_time_orders_as_polars_whatever_the_times() {
        let base = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        for (unit_us, with_null) in [(1_000_000i64, false), (1, false), (1_000_000, true)] {
            let n = 2000i64;
            let times: Vec<Option<chrono::NaiveDateTime>> = (0..n)
                .map(|i| {
                    // 50 distinct hours, out of order; sub-second where
                    // the unit is a microsecond.
                    let t = (i * 7919 % 50) * 3_600_000_000 + if unit_us == 1 { i % 3 } else { 0 };
                    (!(with_null && i % 97 == 0))
                        .then_some(base + chrono::Duration::microseconds(t))
                })
                .collect();
            let df = df!(
                "queried_at" => times,
                "source_row" => (0..n as u32).collect::<Vec<_>>(),
            )
            .unwrap();
            let sorted = df
                .sort(
                    ["queried_at"],
                    SortMultipleOptions::default()
                        .with_maintain_order(true)
                        .with_nulls_last(true),
                )
                .unwrap();
            let ours = by_time(df).unwrap();
            assert!(
                ours.equals_missing(&sorted),
                "unit {unit_us} µs, null {with_null}"
            );
        }
    }
}
