#!/usr/bin/env bash
# Consume throughput of points-ledger, measured against pgbench on the same throwaway PostgreSQL
# server with the same client count, in the same run. Prints the Markdown table of BENCHMARKS.md.
#
#   bash examples/ledger-server/bench.sh            (15 s per run; RUN_SECONDS=10 for shorter)
#   DURABLE=1 bash examples/ledger-server/bench.sh  (the PostgreSQL server with fsync=on and
#                                                     synchronous_commit=on, for both sides)
source "$(dirname "${BASH_SOURCE[0]}")/../../.ci/lib.sh"
cd "$ROOT"

RUN_SECONDS="${RUN_SECONDS:-15}"
CLIENTS=32
USERS=1000

ensure_build_deps
[ "${DURABLE:-0}" = 1 ] && export THROWAWAY_PG_DURABLE=1
start_throwaway_postgres
log "building the bench driver (release)"
cargo bench -p points-ledger --bench consume --no-run >&2

ledger() {
  cargo bench -q -p points-ledger --bench consume -- --seconds "$RUN_SECONDS" --clients "$CLIENTS" "$@" 2>/dev/null | grep '^|'
}
pgbench_tps() {
  "$PG_BINDIR/pgbench" -b simple-update -c "$CLIENTS" -j 2 -T "$RUN_SECONDS" "$POINTS_LEDGER_PG_URL" 2>/dev/null \
    | awk '/^tps/ { printf "%.0f", $3 }'
}

log "pgbench -i -s 10"
"$PG_BINDIR/pgbench" -i -s 10 -q "$POINTS_LEDGER_PG_URL" >/dev/null 2>&1
SQLITE_DIR="$(mktemp -d -t points-bench.XXXXXX)"
trap 'rm -rf "$SQLITE_DIR"; stop_throwaway_postgres' EXIT

log "pgbench -b simple-update -c $CLIENTS -j 2 -T $RUN_SECONDS (before)"
before="$(pgbench_tps)"
log "points-ledger, PostgreSQL, $USERS users"
pg_row="$(ledger --database-url "$POINTS_LEDGER_PG_URL" --users "$USERS" --label "PostgreSQL, $USERS users")"
log "pgbench (after)"
after="$(pgbench_tps)"
log "points-ledger, PostgreSQL, one hot user"
pg_hot_row="$(ledger --database-url "$POINTS_LEDGER_PG_URL" --hot --label "PostgreSQL, one hot user")"
log "points-ledger, SQLite file"
sqlite_row="$(ledger --database-url "sqlite:$SQLITE_DIR/bench.sqlite?mode=rwc" --users "$USERS" --label "SQLite file, $USERS users")"
sqlite_hot_row="$(ledger --database-url "sqlite:$SQLITE_DIR/bench.sqlite?mode=rwc" --hot --label "SQLite file, one hot user")"

pg_settings="$("$PG_BINDIR/psql" "$POINTS_LEDGER_PG_URL" -Atc "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit')")"
baseline=$(( (before + after) / 2 ))
pg_tps="$(echo "$pg_row" | awk -F'|' '{ gsub(/ /, "", $5); print $5 }')"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Load average at the end (1, 5, 15 min): $load"
echo "PostgreSQL server (pgbench and the ledger alike): $pg_settings; SQLite: WAL, synchronous=FULL"
echo "pgbench -b simple-update, $CLIENTS clients: $before TPS before, $after TPS after (mean $baseline)"
awk -v a="$pg_tps" -v b="$baseline" 'BEGIN { printf "points-ledger PostgreSQL / pgbench: %.2f\n\n", a / b }'
echo "| case | users | clients | consumes/s | p50 ms | p99 ms | failed | charges per group | ms per group |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "$pg_row" "$pg_hot_row" "$sqlite_row" "$sqlite_hot_row"
