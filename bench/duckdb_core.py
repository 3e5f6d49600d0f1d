"""The core of `webir-audit run query-check`, as DuckDB SQL over the same
CSV files (the peer the product is measured against; bench/compare.sh).

It does what dominates the product's check: read and parse the query log
and the request-form register (timestamps typed), join each query to its
account's roster row and unit, the as-of join of every query to the
latest earlier approved form of the same account and subject with the
30-day validity and the purpose (no form, expired, other purpose), and
for the queries left unexplained the next form approved after them
(approved afterwards); per-account-day volumes against each account's
median, off-hours on weekdays, and subjects queried by five or more
accounts. It prints each count and fails if any statement fails.

It leaves out what the product also does: header detection and Chinese
header aliases, ROC-calendar and 上午/下午 fallbacks, the per-row reject
report, overlap between exports, the HR joins (departed, ineligible,
self and coworker lookups), the holiday calendar, failed bursts, masking,
the workbooks, the run folder and its seal, and the mail.

usage: python3 duckdb_core.py QUERY_LOG.csv FORMS.csv ROSTER.csv
"""

import sys
import time

import duckdb

log, forms, roster = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.time()
con = duckdb.connect()
con.execute(
    f"""
CREATE TEMP TABLE q AS
SELECT "帳號" AS account, "查詢時間" AS ts, "查詢項目" AS item,
       "被查詢人身分證號" AS subject, "查詢目的" AS purpose, "查詢結果" AS result,
       "機關" AS agency
FROM read_csv('{log}', header = true, timestampformat = '%Y-%m-%d %H:%M:%S',
              types = {{'查詢時間': 'TIMESTAMP'}})
WHERE "查詢時間" >= TIMESTAMP '2026-01-01' AND "查詢時間" < TIMESTAMP '2026-07-01';

CREATE TEMP TABLE f AS
SELECT "表單編號" AS form_id, "查詢帳號" AS account, "被查詢人身分證號" AS subject,
       "查詢目的" AS purpose, "核可時間" AS approved_at
FROM read_csv('{forms}', header = true, timestampformat = '%Y-%m-%d %H:%M:%S',
              types = {{'核可時間': 'TIMESTAMP', '申請時間': 'TIMESTAMP'}})
WHERE "核可時間" IS NOT NULL;

CREATE TEMP TABLE r AS
SELECT "帳號" AS account, "機關名稱" AS agency_name, "帳號狀態" AS status
FROM read_csv('{roster}', header = true, all_varchar = true);

CREATE TEMP TABLE unexplained AS
SELECT q.*, f.form_id
FROM q ASOF LEFT JOIN f
    ON q.account = f.account AND q.subject = f.subject AND q.ts >= f.approved_at
WHERE f.approved_at IS NULL
   OR q.ts > f.approved_at + INTERVAL 30 DAY
   OR q.purpose <> f.purpose;
"""
)
checks = {
    "unrostered": """
        SELECT count(*) FROM q ANTI JOIN r USING (account)""",
    "unexplained": "SELECT count(*) FROM unexplained",
    "approved_after_query": """
        SELECT count(*) FROM unexplained u ASOF JOIN f
            ON u.account = f.account AND u.subject = f.subject AND u.ts < f.approved_at""",
    "volume_spike_days": """
        WITH d AS (SELECT account, CAST(ts AS DATE) AS day, count(*) AS n FROM q GROUP BY ALL),
             m AS (SELECT account, median(n) AS med FROM d GROUP BY account)
        SELECT count(*) FROM d JOIN m USING (account) WHERE n >= 20 AND n > 3 * med""",
    "off_hours": """
        SELECT count(*) FROM q
        WHERE hour(ts) < 8 OR hour(ts) >= 18 OR dayofweek(ts) IN (0, 6)""",
    "subjects_by_5_accounts": """
        SELECT count(*) FROM (
            SELECT subject FROM q GROUP BY subject HAVING count(DISTINCT account) >= 5)""",
}
for name, sql in checks.items():
    print(name, con.execute(sql).fetchone()[0])
print(f"queries {con.execute('SELECT count(*) FROM q').fetchone()[0]}; {time.time() - t0:.2f} s")
