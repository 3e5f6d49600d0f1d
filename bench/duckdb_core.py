"""The core of `webir-audit run query-check`, as DuckDB SQL over the same
two CSV files (the peer the product is measured against; bench/compare.sh).

It does what dominates the product's check: read and parse both files
(timestamps included), the as-of join of every query to the latest earlier
approved form of the same account and subject with the 30-day validity
(no form, expired form, approved after the query, purpose mismatch),
per-account-day volumes against each account's median, off-hours, and
subjects queried by five or more accounts. It prints each count.

It leaves out what the product also does: header detection and Chinese
header aliases, ROC-calendar and 上午/下午 fallbacks, the per-row reject
report, overlap between exports, the roster/HR joins (departed, disabled,
unrostered accounts, self and coworker lookups), the holiday calendar,
masking, the workbooks, the run folder and its seal, and the mail.

usage: python3 duckdb_core.py QUERY_LOG.csv FORMS.csv
"""

import sys
import time

import duckdb

log, forms = sys.argv[1], sys.argv[2]
t0 = time.time()
con = duckdb.connect()
con.execute(
    f"""
CREATE TEMP TABLE q AS
SELECT "帳號" AS account,
       strptime("查詢時間", '%Y-%m-%d %H:%M:%S') AS at,
       "查詢項目" AS item,
       "被查詢人身分證號" AS subject,
       "查詢目的" AS purpose,
       "查詢結果" AS result,
       "機關" AS agency
FROM read_csv('{log}', header = true, all_varchar = true)
WHERE "查詢時間" >= '2026-01-01' AND "查詢時間" < '2026-07-01';

CREATE TEMP TABLE f AS
SELECT "表單編號" AS form_id,
       "查詢帳號" AS account,
       "被查詢人身分證號" AS subject,
       "查詢目的" AS purpose,
       strptime("核可時間", '%Y-%m-%d %H:%M:%S') AS approved_at
FROM read_csv('{forms}', header = true, all_varchar = true);
"""
)
checks = {
    # The latest form approved at or before the query, same account and
    # subject: none, or older than 30 days, or for another purpose.
    "no_or_expired_or_other_purpose_form": """
        SELECT count(*) FROM q ASOF LEFT JOIN
            (SELECT * FROM f WHERE approved_at IS NOT NULL) f
            ON q.account = f.account AND q.subject = f.subject AND q.at >= f.approved_at
        WHERE f.approved_at IS NULL
           OR q.at > f.approved_at + INTERVAL 30 DAY
           OR q.purpose <> f.purpose""",
    # A form for the pair approved only after the query.
    "approved_after_query": """
        SELECT count(*) FROM q ASOF LEFT JOIN
            (SELECT * FROM f WHERE approved_at IS NOT NULL) f
            ON q.account = f.account AND q.subject = f.subject AND q.at < f.approved_at""",
    "volume_spike_days": """
        WITH d AS (SELECT account, CAST(at AS DATE) AS day, count(*) AS n FROM q GROUP BY ALL),
             m AS (SELECT account, median(n) AS med FROM d GROUP BY account)
        SELECT count(*) FROM d JOIN m USING (account) WHERE n >= 20 AND n > 3 * med""",
    "off_hours": """
        SELECT count(*) FROM q
        WHERE hour(at) < 8 OR hour(at) >= 18 OR dayofweek(at) IN (0, 6)""",
    "subjects_by_5_accounts": """
        SELECT count(*) FROM (
            SELECT subject FROM q GROUP BY subject HAVING count(DISTINCT account) >= 5)""",
}
for name, sql in checks.items():
    print(name, con.execute(sql).fetchone()[0])
print(f"queries {con.execute('SELECT count(*) FROM q').fetchone()[0]}; {time.time() - t0:.2f} s")
