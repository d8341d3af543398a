#!/usr/bin/env bash
# make test: installs what is missing, builds and installs tusk, runs the unit
# tests of the PostgreSQL-free core, then pg_regress on a throwaway cluster
# (shared_preload_libraries = 'tusk') next to a throwaway Redis on loopback,
# stops everything it started (also on failure or interrupt) and ends with
#   tests: N passed, N failed
# exiting non-zero on any failure.
set -u
. "$(dirname "$0")/lib.sh"
trap tusk_cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
count() { passed=$((passed + $1)); failed=$((failed + $2)); }
finish() {
    echo "tests: $passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    exit $?
}

echo "== packages"
if ! ensure_packages; then count 0 1; finish; fi

echo "== build and install"
if ! build_and_install; then count 0 1; finish; fi

echo "== redis (throwaway, loopback)"
if start_redis; then
    echo "redis on 127.0.0.1:$REDIS_PORT"
    export TUSK_TEST_REDIS_PORT=$REDIS_PORT
else
    count 0 1
fi

echo "== unit tests (PostgreSQL-free core; the Redis client against that Redis)"
server_tmpdir || exit 1
work=$SERVER_TMPDIR
unit="$work/tusk_unit"
if g++ -std=c++17 -O2 -g -Wall -Wextra -I"$TUSK_ROOT/src" "$TUSK_ROOT"/test/unit/*.cpp \
        "$TUSK_ROOT"/src/core/*.cpp -o "$unit" -lgtest -lgtest_main -lpthread -lxxhash -lhiredis; then
    "$unit" --gtest_brief=1 >"$work/unit.log" 2>&1
    unit_rc=$?
    tail -n 5 "$work/unit.log"
    up=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$work/unit.log")
    uf=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$work/unit.log")
    us=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$work/unit.log")
    up=${up:-0}; uf=${uf:-0}; us=${us:-0}
    # make test provides everything a test needs: a skipped test is a failed one.
    [ "$us" -gt 0 ] && { grep -E '^\[  SKIPPED \]' "$work/unit.log"; uf=$((uf + us)); }
    [ "$unit_rc" -ne 0 ] && [ "$uf" -eq 0 ] && { cat "$work/unit.log"; uf=1; }
    [ "$uf" -gt 0 ] && grep -E '^\[  FAILED  \]' "$work/unit.log"
    count "$up" "$uf"
else
    echo "unit tests did not compile"
    count 0 1
fi

# run_suite RUNNER DIR KEEP CONF TESTS...: runs a pg_regress-style RUNNER as the
# server user in DIR (a copy of its inputs) on its own throwaway instance with the
# settings in CONF and counts the results; on failure copies results/ and
# regression.diffs to KEEP for reading.
run_suite() {
    local runner=$1 dir=$2 keep=$3 conf=$4
    shift 4
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
    (cd "$dir" && as_server_user "$runner" --bindir="$PG_BIN" --inputdir=. --outputdir=. \
        --temp-instance="$dir/instance" --temp-config="$conf" "$@") | tee "$dir/run.out"
    local ok bad
    ok=$(grep -cE '\.\.\. ok( |$)' "$dir/run.out" || true)
    bad=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$dir/run.out" || true)
    [ $((ok + bad)) -eq 0 ] && bad=1
    if [ "$bad" -gt 0 ]; then
        rm -rf "$keep/results"
        cp -r "$dir/results" "$keep/results" 2>/dev/null
        cp "$dir/regression.diffs" "$keep/regression.diffs" 2>/dev/null &&
            head -n 200 "$keep/regression.diffs"
        echo "outputs: $keep/results, $keep/regression.diffs"
    fi
    count "$ok" "$bad"
}
pgxs_tests="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test"
cp "$TUSK_ROOT/test/regress.conf" "$work/regress.conf"
cp "$TUSK_ROOT/test/regress.conf" "$work/regress_redis.conf"
printf "tusk.redis_host = '127.0.0.1'\ntusk.redis_port = %s\n" "${REDIS_PORT:-1}" >>"$work/regress_redis.conf"
chmod 644 "$work/regress.conf" "$work/regress_redis.conf"

echo "== pg_regress (throwaway cluster, L1 only)"
mkdir -p "$work/regress"
cp -r "$TUSK_ROOT/sql" "$TUSK_ROOT/expected" "$work/regress/"
run_suite "$pgxs_tests/regress/pg_regress" "$work/regress" "$TUSK_ROOT" "$work/regress.conf" \
    --dbname=contrib_regression $(sed -n 's/^REGRESS = //p' "$TUSK_ROOT/Makefile")

echo "== pg_regress (throwaway cluster, L2 on the throwaway Redis)"
mkdir -p "$work/regress_redis"
cp -r "$TUSK_ROOT/sql" "$TUSK_ROOT/expected" "$work/regress_redis/"
mkdir -p "$TUSK_ROOT/test/regress_redis"
run_suite "$pgxs_tests/regress/pg_regress" "$work/regress_redis" "$TUSK_ROOT/test/regress_redis" "$work/regress_redis.conf" \
    --dbname=contrib_regression $(sed -n 's/^REGRESS_REDIS = //p' "$TUSK_ROOT/Makefile")

echo "== isolation tests (concurrent sessions)"
mkdir -p "$work/isolation"
cp -r "$TUSK_ROOT/test/isolation/specs" "$TUSK_ROOT/test/isolation/expected" "$work/isolation/"
run_suite "$pgxs_tests/isolation/pg_isolation_regress" "$work/isolation" "$TUSK_ROOT/test/isolation" \
    "$work/regress.conf" \
    $(cd "$TUSK_ROOT/test/isolation/specs" && ls *.spec | sed 's/\.spec$//')

echo "== TAP tests (restarts and faults, real servers)"
mkdir -p "$work/tap"
cp -r "$TUSK_ROOT/test/t" "$work/tap/"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work/tap"
(cd "$work/tap" && as_server_user env PATH="$PG_BIN:$PATH" TESTDIR="$work/tap" \
    PG_REGRESS="$pgxs_tests/regress/pg_regress" \
    prove -I "$pgxs_tests/perl" t/*.pl 2>&1) | tee "$work/tap.out"
tap_rc=${PIPESTATUS[0]}
tap_total=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$work/tap.out")
tap_failed=$(sed -n 's/.*Failed \([0-9]*\)\/[0-9]* subtests.*/\1/p' "$work/tap.out" | awk '{s += $1} END {print s + 0}')
tap_total=${tap_total:-0}
if [ "$tap_rc" -ne 0 ] && [ "$tap_failed" -eq 0 ]; then tap_failed=1; fi
[ "$tap_total" -eq 0 ] && tap_failed=$((tap_failed > 0 ? tap_failed : 1))
count $((tap_total - tap_failed > 0 ? tap_total - tap_failed : 0)) "$tap_failed"
if [ "$tap_failed" -gt 0 ]; then
    rm -rf "$TUSK_ROOT/test/tmp_check"
    cp -r "$work/tap/tmp_check" "$TUSK_ROOT/test/tmp_check" 2>/dev/null &&
        echo "TAP logs: $TUSK_ROOT/test/tmp_check/log"
fi

echo "== server health during pg_regress, isolation and TAP tests"
# A backend that crashed takes the whole server through recovery: fail on any sign of that,
# except the backend a TAP test kills on purpose (its last query names itself killed_on_purpose).
logs="$work/regress/log/postmaster.log $work/regress_redis/log/postmaster.log $work/isolation/log/postmaster.log"
logs="$logs $(ls "$work"/tap/tmp_check/log/*.log 2>/dev/null | tr '\n' ' ')"
crashes() {
    cat "$@" | awk '
        /terminated by signal|was terminated by exception|server process .* exited with exit code|PANIC/ {
            if (held != "") print held
            held = $0
            next
        }
        held != "" { if ($0 !~ /killed_on_purpose/) print held; held = "" }
        END { if (held != "") print held }'
}
found=$(ls $logs >/dev/null 2>&1 && crashes $logs) || found="server logs missing"
if [ -z "$found" ]; then
    echo "no backend crashed"
    count 1 0
else
    printf '%s\n' "$found"
    echo "server log missing or shows a crashed backend"
    count 0 1
fi

finish
