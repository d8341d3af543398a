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

echo "== unit tests (PostgreSQL-free core)"
work=$(server_tmpdir)
unit="$work/tusk_unit"
if g++ -std=c++17 -O2 -g -Wall -Wextra -I"$TUSK_ROOT/src" "$TUSK_ROOT"/test/unit/*.cpp \
        "$TUSK_ROOT"/src/core/*.cpp -o "$unit" -lgtest -lgtest_main -lpthread -lxxhash; then
    "$unit" --gtest_brief=1 >"$work/unit.log" 2>&1
    unit_rc=$?
    tail -n 5 "$work/unit.log"
    up=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$work/unit.log")
    uf=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$work/unit.log")
    up=${up:-0}; uf=${uf:-0}
    [ "$unit_rc" -ne 0 ] && [ "$uf" -eq 0 ] && { cat "$work/unit.log"; uf=1; }
    [ "$uf" -gt 0 ] && grep -E '^\[  FAILED  \]' "$work/unit.log"
    count "$up" "$uf"
else
    echo "unit tests did not compile"
    count 0 1
fi

echo "== redis (throwaway, loopback)"
if start_redis; then
    echo "redis on 127.0.0.1:$REDIS_PORT"
    export TUSK_TEST_REDIS_PORT=$REDIS_PORT
else
    count 0 1
fi

echo "== pg_regress (throwaway cluster)"
# The server user must read the inputs and write the outputs: work on a copy.
cp -r "$TUSK_ROOT/sql" "$TUSK_ROOT/expected" "$TUSK_ROOT/test" "$work/"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work"
tests=$(sed -n 's/^REGRESS = //p' "$TUSK_ROOT/Makefile")
pg_regress="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress"
(cd "$work" && as_server_user "$pg_regress" --bindir="$PG_BIN" --inputdir=. --outputdir=. \
    --temp-instance="$work/regress_instance" --temp-config="$work/test/regress.conf" \
    --dbname=contrib_regression $tests) | tee "$work/regress.out"
rp=$(grep -cE '\.\.\. ok( |$)' "$work/regress.out" || true)
rf=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$work/regress.out" || true)
if [ $((rp + rf)) -eq 0 ]; then rf=1; fi
if [ "$rf" -gt 0 ]; then
    # Leave the outputs where PGXS users look for them.
    rm -rf "$TUSK_ROOT/results"
    cp -r "$work/results" "$TUSK_ROOT/results" 2>/dev/null
    cp "$work/regression.diffs" "$TUSK_ROOT/regression.diffs" 2>/dev/null &&
        head -n 200 "$TUSK_ROOT/regression.diffs"
    echo "outputs: $TUSK_ROOT/results, $TUSK_ROOT/regression.diffs"
fi
count "$rp" "$rf"

echo "== isolation tests (concurrent sessions)"
isolation="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/isolation/pg_isolation_regress"
specs=$(cd "$TUSK_ROOT/test/isolation/specs" && ls *.spec | sed 's/\.spec$//')
mkdir -p "$work/isolation_run"
cp -r "$TUSK_ROOT/test/isolation/specs" "$TUSK_ROOT/test/isolation/expected" "$work/isolation_run/"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work/isolation_run"
(cd "$work/isolation_run" && as_server_user "$isolation" --bindir="$PG_BIN" --inputdir=. \
    --outputdir=. --temp-instance="$work/isolation_run/instance" \
    --temp-config="$work/test/regress.conf" $specs) | tee "$work/isolation.out"
ip=$(grep -cE '\.\.\. ok( |$)' "$work/isolation.out" || true)
if_=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$work/isolation.out" || true)
if [ $((ip + if_)) -eq 0 ]; then if_=1; fi
if [ "$if_" -gt 0 ]; then
    rm -rf "$TUSK_ROOT/test/isolation/results"
    cp -r "$work/isolation_run/results" "$TUSK_ROOT/test/isolation/results" 2>/dev/null
    cp "$work/isolation_run/regression.diffs" "$TUSK_ROOT/test/isolation/regression.diffs" 2>/dev/null &&
        head -n 200 "$TUSK_ROOT/test/isolation/regression.diffs"
fi
count "$ip" "$if_"

echo "== server health during pg_regress and isolation tests"
# A backend that crashed takes the whole server through recovery: fail on any sign of that.
logs="$work/log/postmaster.log $work/isolation_run/log/postmaster.log"
if ls $logs >/dev/null 2>&1 && ! grep -E "terminated by signal|was terminated by exception|server process .* exited with exit code|PANIC" $logs; then
    echo "no backend crashed"
    count 1 0
else
    echo "server log missing or shows a crashed backend"
    count 0 1
fi

finish
