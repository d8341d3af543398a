#!/usr/bin/env bash
# make bench, part 2: what automatic invalidation and single flight cost and
# give, measured in one run on a private server, printed as ratios:
#   - an L1 hit of an entry that depends on a table against the same entry
#     filled with tusk.invalidation off (no dependencies to check), two
#     pgbench runs side by side, the starter alternating;
#   - a writing workload (pgbench -N) with invalidation on against off, side
#     by side;
#   - 32 concurrent misses of a query that takes 1 s: how many times it ran,
#     and when the last of the 32 had its answer.
# BENCH_SECONDS and BENCH_ROUNDS as in bench.sh.
set -u
. "$(dirname "$0")/lib.sh"
trap tusk_cleanup EXIT
trap 'exit 130' INT TERM

SECONDS_PER_RUN=${BENCH_SECONDS:-6}
ROUNDS=${BENCH_ROUNDS:-5}
CLIENTS=2
MISSES=32

ensure_packages && build_and_install || { tusk_log "setup failed"; exit 1; }
start_postgres "tusk.l1_size = '64MB'" "max_connections = 60" || exit 1
server_tmpdir || exit 1
work=$SERVER_TMPDIR

run_psql <<'SQL' >/dev/null || exit 1
CREATE EXTENSION tusk;
CREATE TABLE bench_items AS
SELECT g AS id, 'item ' || g AS name, round(g * 1.25, 2) AS price, g % 3 = 0 AS on_sale
FROM generate_series(1, 10) g;
ANALYZE;
SELECT tusk_metric_increment('bench_slow_runs', 0);
CREATE FUNCTION bench_slow() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN PERFORM pg_sleep(1); PERFORM tusk_metric_increment('bench_slow_runs'); RETURN 1; END $$;
SQL
HIT_QUERY="SELECT id, name, price, on_sale FROM bench_items ORDER BY id"
run_psql -c "SELECT tusk_cached('with deps', '1 hour', '$HIT_QUERY')" >/dev/null || exit 1
PGOPTIONS="-c tusk.invalidation=off" run_psql -c "SELECT tusk_cached('without deps', '1 hour', '$HIT_QUERY')" >/dev/null || exit 1
deps=$(run_psql -At -c "SELECT dependencies FROM tusk_cache_entry('with deps') WHERE tier = 'l1'")
nodeps=$(run_psql -At -c "SELECT dependencies FROM tusk_cache_entry('without deps') WHERE tier = 'l1'")
printf "SELECT tusk_cached('with deps', '1 hour', '%s');\n" "$HIT_QUERY" >"$work/deps.sql"
printf "SELECT tusk_cached('without deps', '1 hour', '%s');\n" "$HIT_QUERY" >"$work/nodeps.sql"

pgbench_run() { # PGOPTIONS value, then pgbench arguments; prints pgbench's report
    PGOPTIONS="$1" "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n "${@:2}" postgres 2>&1
}
tps_of() { sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -n 1; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# side_by_side ROUND OPTIONS_A ARGS_A OPTIONS_B ARGS_B: two pgbench runs at
# once, A starting first in odd rounds and B in even ones; prints "tps_a tps_b".
side_by_side() {
    local round=$1
    if [ $((round % 2)) -eq 1 ]; then
        pgbench_run "$2" $3 >"$work/a.out" & sleep 0.05; pgbench_run "$4" $5 >"$work/b.out" & wait
    else
        pgbench_run "$4" $5 >"$work/b.out" & sleep 0.05; pgbench_run "$2" $3 >"$work/a.out" & wait
    fi
    echo "$(tps_of <"$work/a.out") $(tps_of <"$work/b.out")"
}
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN {print a / b}'; }

echo "tusk bench (invalidation): ${SECONDS_PER_RUN}s per run, $ROUNDS rounds, $CLIENTS clients per side"
hit_ratios=""
declare -A tpss=()
RUN="-M prepared -c $CLIENTS -j $CLIENTS -T $SECONDS_PER_RUN"
for round in $(seq 1 "$ROUNDS"); do
    read -r with without <<<"$(side_by_side "$round" "" "$RUN -f $work/deps.sql" "" "$RUN -f $work/nodeps.sql")"
    [ -n "$with" ] && [ -n "$without" ] || { tusk_log "hit bench: pgbench failed"; cat "$work/a.out" "$work/b.out" >&2; exit 1; }
    tpss[with]+="$with "; tpss[without]+="$without "
    hit_ratios+="$(ratio_of "$with" "$without") "
    printf '  round %d: L1 hit of an entry with %s dependencies %6.0f tps, with %s %6.0f tps\n' \
        "$round" "$deps" "$with" "$nodeps" "$without"
done

# pgbench -N (the simple-update script without the tellers and branches
# updates): every transaction updates pgbench_accounts and inserts into
# pgbench_history, so every commit bumps the clock; one side runs with
# tusk.invalidation off (nothing recorded, nothing bumped).
"$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -i -s 4 -q postgres >/dev/null 2>&1 ||
    { tusk_log "pgbench -i failed"; exit 1; }
write_ratios=""
for round in $(seq 1 "$ROUNDS"); do
    read -r on off <<<"$(side_by_side "$round" "" "$RUN -N" "-c tusk.invalidation=off" "$RUN -N")"
    [ -n "$on" ] && [ -n "$off" ] || { tusk_log "write bench: pgbench failed"; cat "$work/a.out" "$work/b.out" >&2; exit 1; }
    tpss[on]+="$on "; tpss[off]+="$off "
    write_ratios+="$(ratio_of "$on" "$off") "
    printf '  round %d: pgbench -N, invalidation on %6.0f tps, off %6.0f tps\n' "$round" "$on" "$off"
done

# 32 sessions miss one entry whose query takes 1 s, all at once.
printf "SELECT tusk_cached('slow', '1 hour', 'SELECT bench_slow() AS one');\n" >"$work/slow.sql"
flight_runs=""
flight_walls=""
for round in $(seq 1 "$ROUNDS"); do
    run_psql -c "SELECT tusk_cache_delete('slow'), tusk_metrics_reset('bench_slow_runs')" >/dev/null || exit 1
    start=$(date +%s.%N)
    report=$(pgbench_run "" -c "$MISSES" -j "$MISSES" -t 1 -f "$work/slow.sql")
    wall=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {print e - s}')
    processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$report")
    [ "$processed" = "$MISSES" ] || { tusk_log "single-flight bench: $processed of $MISSES answered"; echo "$report" >&2; exit 1; }
    runs=$(run_psql -At -c "SELECT value FROM tusk_metrics WHERE name = 'bench_slow_runs'")
    flight_runs+="$runs "; flight_walls+="$wall "
    printf '  round %d: %d concurrent misses of a 1 s query: %s execution(s), all answered in %.2f s (pgbench, connections included)\n' \
        "$round" "$MISSES" "$runs" "$wall"
done
waits=$(run_psql -At -c "SELECT waits FROM tusk_cache_stats WHERE tier = 'l1'")

echo
echo "| what (pgbench -M prepared, two runs side by side, $CLIENTS clients each) | median TPS |"
echo "|---|---:|"
printf '| `tusk_cached` L1 hit, 10-row entry with %s dependencies | %.0f |\n' "$deps" "$(printf '%s\n' ${tpss[with]} | median)"
printf '| the same entry filled with `tusk.invalidation = off` (%s dependencies) | %.0f |\n' "$nodeps" "$(printf '%s\n' ${tpss[without]} | median)"
printf '| `pgbench -N`, `tusk.invalidation = on` | %.0f |\n' "$(printf '%s\n' ${tpss[on]} | median)"
printf '| `pgbench -N`, `tusk.invalidation = off` | %.0f |\n' "$(printf '%s\n' ${tpss[off]} | median)"
echo
printf 'L1 hit with dependencies / without, median of %d rounds: %.2f (goal: at least 0.97)\n' "$ROUNDS" "$(printf '%s\n' $hit_ratios | median)"
printf 'pgbench -N with invalidation on / off, median of %d rounds: %.2f (goal: at least 0.97)\n' "$ROUNDS" "$(printf '%s\n' $write_ratios | median)"
printf '%d concurrent misses of a 1 s query: executions per round %s, median %.2f s until the last answer (goal: 1 execution, within 1.3 s); %s waits counted\n' \
    "$MISSES" "$(echo $flight_runs | tr ' ' '/')" "$(printf '%s\n' $flight_walls | median)" "$waits"
