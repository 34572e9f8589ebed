#!/usr/bin/env bash
# Fan-out of the balance stream (GET /points/stream): one ledger process holding many streams
# of many users while consumes arrive at a fixed rate, on a SQLite file and on a throwaway
# PostgreSQL server; then two ledger processes on one PostgreSQL database (streams on one,
# writes through the other). Prints the Markdown table of BENCHMARKS.md.
#
#   bash examples/ledger-server/stream-bench.sh           (500 streams: a quick check)
#   bash examples/ledger-server/stream-bench.sh --full    (10,000 streams, 1,000 writes/s)
#   STREAMS=2000 RATE=500 bash examples/ledger-server/stream-bench.sh
#   TRIGGER_COST=1 bash examples/ledger-server/stream-bench.sh
#       (also: consume throughput on PostgreSQL with the journal's notify trigger on, off, on,
#        off, 10 s each, the consume bench of bench.sh with 32 clients and 1000 users)
source "$(dirname "${BASH_SOURCE[0]}")/../../.ci/lib.sh"
cd "$ROOT"

STREAMS="${STREAMS:-500}"
RATE="${RATE:-1000}"
if [ "${1:-}" = "--full" ]; then
  STREAMS="${STREAMS_FULL:-10000}"
fi
# Each stream is a socket in the ledger and one in the driver.
ulimit -n "$(( STREAMS * 2 + 4096 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt "$(( STREAMS + 512 ))" ] || die "ulimit -n $(ulimit -n) is too low for $STREAMS streams"

ensure_build_deps
start_throwaway_postgres
log "building the bench driver and the ledger (release)"
cargo bench -p points-ledger --bench stream --no-run >&2

bench() {
  cargo bench -q -p points-ledger --bench stream -- --rate "$RATE" "$@" 2>/dev/null | grep '^|'
}
fresh_db() {
  local name="stream_bench_$1"
  "$PG_BINDIR/psql" "$POINTS_LEDGER_PG_URL" -qc "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null 2>&1
  echo "${POINTS_LEDGER_PG_URL%/*}/$name"
}

log "SQLite file, $STREAMS streams"
sqlite_row="$(bench --streams "$STREAMS" --label "SQLite file")"
log "PostgreSQL, $STREAMS streams"
pg_row="$(bench --streams "$STREAMS" --database-url "$(fresh_db one)" --label "PostgreSQL")"
CROSS=$(( STREAMS < 1000 ? STREAMS : 1000 ))
log "PostgreSQL, two ledger processes, $CROSS streams, 5 writes per user"
cross_row="$(bench --streams "$CROSS" --writes-per-user 5 --two-instances --database-url "$(fresh_db two)" --label "PostgreSQL, two processes")"

load="$(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Load average at the end (1, 5, 15 min): $load; $(nproc) cores; ulimit -n $(ulimit -n)"
echo "| case | streams | writes/s | s to open | event p50 / p99 ms | consume p50 / p99 ms | ratio p50 / p99 | KiB per idle stream | starved | missing | duplicate or out of order |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "$sqlite_row" "$pg_row" "$cross_row"

if [ "${TRIGGER_COST:-0}" = 1 ]; then
  url="$(fresh_db trigger)"
  cargo bench -p points-ledger --bench consume --no-run >&2
  consume() {
    cargo bench -q -p points-ledger --bench consume -- --seconds 10 --clients 32 --users 1000 \
      --database-url "$url" --label "$1" 2>/dev/null | grep '^|'
  }
  trigger() { "$PG_BINDIR/psql" "$url" -qc "$1" >/dev/null; }
  log "consume throughput, journal notify trigger on / off"
  on1="$(consume "trigger on")"
  trigger "DROP TRIGGER journal_notify ON journal"
  off1="$(consume "trigger off")"
  trigger "CREATE TRIGGER journal_notify AFTER INSERT ON journal FOR EACH ROW EXECUTE FUNCTION points_journal_notify()"
  on2="$(consume "trigger on")"
  trigger "DROP TRIGGER journal_notify ON journal"
  off2="$(consume "trigger off")"
  echo
  echo "| case | users | clients | consumes/s | p50 ms | p99 ms | failed | charges per group | ms per group |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "$on1" "$off1" "$on2" "$off2"
  printf '%s\n' "$on1" "$off1" "$on2" "$off2" | awk -F'|' '
    { gsub(/ /, "", $5); if ($2 ~ /on/) on += $5; else off += $5 }
    END { printf "\nwith the trigger / without: %.2f\n", on / off }'
fi
