#!/usr/bin/env bash
# webir-audit against DuckDB on the same files, side by side in one run (the
# machine is noisy, so both are measured together): wall time, CPU time
# (user + system), system time and peak RSS of `run query-check`, `ingest`
# and `run sample-audit`, and of DuckDB doing the core of the query check
# (bench/duckdb_core.py says what it leaves out), RUNS runs each (default
# 3), medians and ratios.
#
# The reference peer is `duckdb-lean`: that core written as one query of
# CTEs (bench/duckdb_lean.py). `duckdb-temp` is the same core through
# temporary tables (bench/duckdb_core.py), kept as a second row.
#
#   bench/compare.sh [ROWS]         # default 10000000 rows
#   RUNS=5 BENCH_DIR=/data/bench bench/compare.sh 50000000
#   BASELINE=/tmp/webir-audit-before bench/compare.sh   # also an older build
#
# With BASELINE (another build of webir-audit), its three commands run in
# the same rounds, as `before-…`: a before/after figure on one noisy machine.
#
# Needs a Rust toolchain, python3 with venv, and /usr/bin/time (GNU). DuckDB
# comes from PyPI into a venv under BENCH_DIR; the data from `gen-data`.
set -euo pipefail

ROWS=${1:-10000000}
RUNS=${RUNS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/target/bench}
BIN=$ROOT/target/release/webir-audit
DATA=$WORK/data-$ROWS
mkdir -p "$WORK"

(cd "$ROOT" && cargo build --release --locked --quiet)
if [ ! -d "$DATA/pristine" ]; then
  echo "generating $ROWS rows into $DATA" >&2
  rm -rf "$DATA"
  "$BIN" gen-data --out "$DATA" --rows "$ROWS" >/dev/null
  # A sealed run moves the exports it read out of the inbox into the input
  # store: each measurement starts from these (hard links, no copy).
  cp -al "$DATA/inbox" "$DATA/pristine"
fi
VENV=$WORK/venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet duckdb
fi
LOG=$(ls "$DATA"/pristine/query_logs/*.csv)
FORMS=$(ls "$DATA"/pristine/forms/*.csv)
ROSTER=$(ls "$DATA"/pristine/roster/*.csv)
CONFIG=$DATA/webir-audit.toml
# The config keeps its archive and state beside the data folder.
VAR=$(dirname "$DATA")/var

# measure NAME CMD...: one run, appended to $WORK/results as
# "NAME wall_seconds peak_rss_kib user_seconds system_seconds".
measure() {
  local name=$1; shift
  rm -rf "$VAR" "$DATA/inbox"
  # A copy, not hard links: an export in an inbox has one name, and one
  # with a second name is hashed again as it moves into the input store.
  cp -a "$DATA/pristine" "$DATA/inbox"
  sync
  local out
  out=$(mktemp)
  if ! /usr/bin/time -v "$@" >"$out.stdout" 2>"$out"; then
    # webir-audit exits 1 when it found something; anything else fails.
    if [[ "$name" == duckdb* ]] || ! grep -q "Exit status: 1" "$out"; then
      cat "$out" "$out.stdout" >&2
      exit 1
    fi
  fi
  local wall rss user sys
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
    n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$out")
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$out")
  user=$(awk -F': ' '/User time \(seconds\)/ { print $2 }' "$out")
  sys=$(awk -F': ' '/System time \(seconds\)/ { print $2 }' "$out")
  echo "$name $wall $rss $user $sys" >>"$WORK/results"
  printf '%-19s %8.2f s %8.0f MiB  cpu %6.2f s  sys %5.2f s\n' \
    "$name" "$wall" "$((rss / 1024))" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$sys" >&2
  rm -f "$out" "$out.stdout"
}

rm -f "$WORK/results"
echo "$ROWS rows: $(du -h "$LOG" | cut -f1) query log, $(($(wc -l <"$FORMS") - 1)) forms; $(nproc) cores" >&2
for i in $(seq "$RUNS"); do
  measure duckdb-lean "$VENV/bin/python" "$ROOT/bench/duckdb_lean.py" "$LOG" "$FORMS" "$ROSTER"
  measure duckdb-temp "$VENV/bin/python" "$ROOT/bench/duckdb_core.py" "$LOG" "$FORMS" "$ROSTER"
  measure query-check "$BIN" run query-check --config "$CONFIG" --period 2026H1 --no-send
  measure ingest "$BIN" ingest --config "$CONFIG"
  measure sample-audit "$BIN" run sample-audit --config "$CONFIG" --period 2026H1 \
    --seed 12345678901234567890 --no-send
  if [ -n "${BASELINE:-}" ]; then
    measure before-query-check "$BASELINE" run query-check --config "$CONFIG" --period 2026H1 --no-send
    measure before-ingest "$BASELINE" ingest --config "$CONFIG"
    measure before-sample-audit "$BASELINE" run sample-audit --config "$CONFIG" --period 2026H1 \
      --seed 12345678901234567890 --no-send
  fi
done
rm -rf "$VAR"

python3 - "$WORK/results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, wall, rss, user, sys_ = line.split()
    runs.setdefault(name, []).append((float(wall), int(rss), float(user) + float(sys_), float(sys_)))
med = {
    n: tuple(statistics.median(r[i] for r in v) for i in range(4)) for n, v in runs.items()
}
duck = med["duckdb-lean"][0]
print(f"{'':19} {'wall':>9} {'CPU':>9} {'sys':>8} {'peak RSS':>10} {'wall vs lean DuckDB':>20}")
for n, (w, r, cpu, sys_) in med.items():
    print(f"{n:19} {w:7.2f} s {cpu:7.2f} s {sys_:6.2f} s {r / 1048576:6.2f} GiB {w / duck:19.2f}x")
print("(medians of", len(next(iter(runs.values()))), "runs)")
print()
print("targets: query-check <= 1.0x lean DuckDB, <= 1.3 GiB, sys <= 1.5 s; sample-audit <= 1.5x")
PY
