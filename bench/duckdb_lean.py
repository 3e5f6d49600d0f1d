"""The core of `webir-audit run query-check` as ONE DuckDB query: the lean
formulation, and the reference peer of bench/compare.sh.

The same work as bench/duckdb_core.py (which says what the core is and
what it leaves out), written as a single statement of CTEs with no
temporary tables, so DuckDB reads only the columns each part needs and
materializes nothing it does not have to (the log's CTE is NOT
MATERIALIZED: each part scans the file for its own columns, which on the
2-core machine beat a materialized log, 6.0 s against 7.6 s on 10M rows):

- read the query log and the request-form register (timestamps typed) and
  the roster;
- the as-of join of every query to the latest earlier approved form of
  the same account and subject: unexplained (no form, other purpose) and
  expired (more than 30 days before), and for those the next form
  approved after the query (approved afterwards);
- queries by accounts not on the roster;
- per-account-day volumes against each account's median;
- off-hours on weekdays;
- subjects queried by five or more accounts.

It prints each count, then the query count and the time.

usage: python3 duckdb_lean.py QUERY_LOG.csv FORMS.csv ROSTER.csv
"""

import sys
import time

import duckdb

log, forms, roster = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.time()
con = duckdb.connect()
# Rows in any order: nothing here is order-sensitive, and keeping the order
# costs DuckDB memory.
con.execute("SET preserve_insertion_order = false")
names = [
    "unrostered",
    "unexplained",
    "approved_after_query",
    "volume_spike_days",
    "off_hours",
    "subjects_by_5_accounts",
    "queries",
]
row = con.execute(
    f"""
WITH q AS NOT MATERIALIZED (
    SELECT "帳號" AS account, "查詢時間" AS ts, "被查詢人身分證號" AS subject,
           "查詢目的" AS purpose
    FROM read_csv('{log}', header = true, timestampformat = '%Y-%m-%d %H:%M:%S',
                  types = {{'查詢時間': 'TIMESTAMP'}})
    WHERE "查詢時間" >= TIMESTAMP '2026-01-01' AND "查詢時間" < TIMESTAMP '2026-07-01'
),
f AS (
    SELECT "查詢帳號" AS account, "被查詢人身分證號" AS subject,
           "查詢目的" AS purpose, "核可時間" AS approved_at
    FROM read_csv('{forms}', header = true, timestampformat = '%Y-%m-%d %H:%M:%S',
                  types = {{'核可時間': 'TIMESTAMP', '申請時間': 'TIMESTAMP'}})
    WHERE "核可時間" IS NOT NULL
),
r AS (
    SELECT DISTINCT "帳號" AS account
    FROM read_csv('{roster}', header = true, all_varchar = true)
),
unexplained AS (
    SELECT q.account, q.subject, q.ts
    FROM q ASOF LEFT JOIN f
        ON q.account = f.account AND q.subject = f.subject AND q.ts >= f.approved_at
    WHERE f.approved_at IS NULL
       OR q.ts > f.approved_at + INTERVAL 30 DAY
       OR q.purpose <> f.purpose
),
after AS (
    SELECT count(*) AS n FROM unexplained u ASOF JOIN f
        ON u.account = f.account AND u.subject = f.subject AND u.ts < f.approved_at
),
days AS (
    SELECT account, CAST(ts AS DATE) AS day, count(*) AS n FROM q GROUP BY ALL
),
spikes AS (
    SELECT count(*) AS n
    FROM days d JOIN (SELECT account, median(n) AS med FROM days GROUP BY account) m
        USING (account)
    WHERE d.n >= 20 AND d.n > 3 * m.med
),
subjects AS (
    SELECT count(*) AS n FROM (
        SELECT subject FROM q GROUP BY subject HAVING count(DISTINCT account) >= 5)
)
SELECT
    (SELECT count(*) FROM q ANTI JOIN r USING (account)),
    (SELECT count(*) FROM unexplained),
    (SELECT n FROM after),
    (SELECT n FROM spikes),
    (SELECT count(*) FROM q
        WHERE hour(ts) < 8 OR hour(ts) >= 18 OR dayofweek(ts) IN (0, 6)),
    (SELECT n FROM subjects),
    (SELECT count(*) FROM q)
"""
).fetchone()
for name, n in zip(names, row):
    print(name, n)
print(f"{time.time() - t0:.2f} s")
