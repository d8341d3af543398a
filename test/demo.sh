#!/usr/bin/env bash
# make demo: a private PostgreSQL 15 (with tusk preloaded) and Redis on free
# loopback ports, a million orders, and a slow report becoming a cache hit.
# Everything it starts is stopped and removed at the end.
set -u
. "$(dirname "$0")/lib.sh"
trap tusk_cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

say "Preparing: packages, build, install"
ensure_packages && build_and_install || { tusk_log "setup failed"; exit 1; }

start_redis || exit 1
start_postgres "tusk.l1_size = '64MB'" "work_mem = '64MB'" "tusk.metrics_interval = '1s'" \
    "tusk.redis_host = '127.0.0.1'" "tusk.redis_port = $REDIS_PORT" || exit 1
echo "PostgreSQL 15 on 127.0.0.1:$PG_PORT with shared_preload_libraries = 'tusk', tusk.l1_size = 64MB"
echo "Redis on 127.0.0.1:$REDIS_PORT as the shared L2 tier (tusk.redis_host, tusk.redis_port)"

run_psql <<'SQL'
\pset footer off
\echo
\echo '== CREATE EXTENSION tusk'
CREATE EXTENSION tusk;
\echo
\echo '== Loading 1,000,000 orders of 5,000 customers over two years'
\timing on
CREATE TABLE orders (
    id        bigint PRIMARY KEY,
    customer  text NOT NULL,
    region    text NOT NULL,
    amount    numeric(10,2) NOT NULL,
    placed_at timestamptz NOT NULL
);
INSERT INTO orders
SELECT g,
       'customer-' || lpad((abs(hashint4(g)) % 5000)::text, 4, '0'),
       (ARRAY['north','south','east','west','central'])[1 + g % 5],
       round((abs(hashint4(g * 7)) % 50000) / 100.0 + 5, 2),
       timestamptz '2025-01-01' + (g % 730) * interval '1 day' + (g % 86400) * interval '1 second'
FROM generate_series(1, 1000000) g;
ANALYZE orders;
\timing off

\echo
\echo '== The report: top 10 customers by revenue in 2026, with order counts'
\set report 'SELECT customer, region, count(*) AS orders, sum(amount) AS revenue FROM orders WHERE placed_at >= ''2026-01-01'' GROUP BY customer, region ORDER BY revenue DESC LIMIT 10'
\echo :report
\echo
\echo '-- 1. plain SQL, every time:'
\timing on
SELECT count(*) AS rows FROM (:report) r;
\timing off

\echo
\echo '-- 2. tusk_cached, first call: a miss, so it runs the query and keeps the rows for 5 minutes:'
\timing on
SELECT jsonb_array_length(tusk_cached('top_customers_2026', '5 min', :'report')) AS rows;
\timing off

\echo
\echo '-- 3. tusk_cached, second call: a hit from shared memory, the query does not run:'
\timing on
SELECT jsonb_array_length(tusk_cached('top_customers_2026', '5 min', :'report')) AS rows;
\timing off

\echo
\echo '-- The cached value is the rows as JSON, in the query''s order (first 2 shown):'
SELECT jsonb_pretty(tusk_cached('top_customers_2026', '5 min', :'report') -> 0) AS first_row;
SELECT jsonb_pretty(tusk_cached('top_customers_2026', '5 min', :'report') -> 1) AS second_row;

\echo
\echo '-- 4. 10,000 hits in one statement, to see the cost of one hit without the network:'
\timing on
SELECT count(tusk_cached('top_customers_2026', '5 min', :'report')) AS hits FROM generate_series(1, 10000);
\timing off
\echo '   (divide the time by 10,000: microseconds per hit; SELECT 1 over the network costs more)'

\echo
\echo '-- 5. Parameters: $1.. bound from a JSON array, each typed as the query needs:'
SELECT tusk_cached('region_total', '1 min',
  'SELECT region, count(*) AS orders, sum(amount) AS revenue FROM orders WHERE region = $1 AND placed_at >= $2 GROUP BY region',
  '["north", "2026-06-01"]') AS north_since_june;

\echo
\echo '-- 6. Entries belong to (database, role): another role gets its own miss, never our rows:'
CREATE ROLE demo_analyst;
GRANT SELECT ON orders TO demo_analyst;
SET ROLE demo_analyst;
SELECT tusk_cache_get('top_customers_2026') IS NULL AS analyst_sees_nothing_cached;
RESET ROLE;

\echo
\echo '-- 7. Transactions: a result computed after writing in a rolled-back transaction is never cached:'
BEGIN;
DELETE FROM orders WHERE region = 'north';
SELECT tusk_cached('regions', '1 min', 'SELECT count(DISTINCT region) AS regions FROM orders') AS inside_the_transaction;
ROLLBACK;
SELECT tusk_cache_get('regions') IS NULL AS not_cached_after_rollback;
SELECT tusk_cached('regions', '1 min', 'SELECT count(DISTINCT region) AS regions FROM orders') AS after_rollback;

\echo
\echo '-- 8. Bad input is an ERROR (here with its SQLSTATE), and the session goes on:'
\set VERBOSITY verbose
\set SHOW_CONTEXT never
\set ON_ERROR_STOP off
SELECT tusk_cached('oops', '1 min', 'DELETE FROM orders');
SELECT tusk_cached('oops', '0 seconds', 'SELECT 1');
\set ON_ERROR_STOP on
\set VERBOSITY default
SELECT count(*) AS orders_still_there FROM orders;

\echo
\echo '== Summary, timed inside the server (no network): the report as plain SQL, as a miss, as a hit'
SET demo.report = :'report';
DO $$
DECLARE
    q text := current_setting('demo.report');
    t0 timestamptz;
    plain_ms float8;
    miss_ms float8;
    hit_us float8;
BEGIN
    t0 := clock_timestamp();
    EXECUTE 'SELECT count(*) FROM (' || q || ') r';
    plain_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    PERFORM tusk_cache_delete('summary');
    t0 := clock_timestamp();
    PERFORM tusk_cached('summary', '5 min', q);
    miss_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    t0 := clock_timestamp();
    FOR i IN 1..10000 LOOP
        PERFORM tusk_cached('summary', '5 min', q);
    END LOOP;
    hit_us := extract(epoch FROM clock_timestamp() - t0) * 1000000 / 10000;
    RAISE NOTICE 'plain SQL: % ms   miss: % ms   hit: % us (mean of 10,000)   hit is %x faster than the query',
        round(plain_ms::numeric, 1), round(miss_ms::numeric, 1), round(hit_us::numeric, 1),
        round((miss_ms * 1000 / hit_us)::numeric);
END $$;

\echo
\echo '== tusk_query: one statement from this session''s plan cache; params are typed as the statement needs'
SELECT tusk_query('SELECT customer, count(*) AS orders, sum(amount) AS revenue FROM orders
                   WHERE customer = $1 AND placed_at >= $2 GROUP BY customer', '["customer-0042", "2026-01-01"]');
SELECT tusk_query('SELECT customer, count(*) AS orders, sum(amount) AS revenue FROM orders
                   WHERE customer = $1 AND placed_at >= $2 GROUP BY customer', '["customer-0007", "2026-03-01"]');
SELECT left(sql, 40) || '...' AS sql, param_types, calls FROM tusk_prepared;

\echo
\echo '== tusk_batch_insert: 10,000 JSON objects into a table, 1,000 rows per INSERT, as the caller, all or nothing'
CREATE TABLE refunds (id serial PRIMARY KEY, customer text NOT NULL, amount numeric(10,2) NOT NULL,
                      refunded_at timestamptz NOT NULL DEFAULT now());
SELECT tusk_batch_insert('refunds', (SELECT jsonb_agg(jsonb_build_object('customer', 'customer-' || g, 'amount', g % 100 + 0.5))
                                     FROM generate_series(1, 10000) g)) AS inserted;
\set ON_ERROR_STOP off
\set SHOW_CONTEXT errors
SELECT tusk_batch_insert('refunds', '[{"customer": "a", "amount": 1}, {"customer": "b", "amount": "lots"}]');
\set SHOW_CONTEXT never
\set ON_ERROR_STOP on
SELECT count(*) AS refunds FROM refunds;

\echo
\echo '== tusk_benchmark: a statement run 100 times untimed, then 1,000 times timed; kept as the histogram refund_lookup'
SELECT name, iterations, round(mean::numeric, 4) AS mean_ms, round(p50::numeric, 4) AS p50, round(p99::numeric, 4) AS p99,
       round(max::numeric, 4) AS max
FROM tusk_benchmark('refund_lookup', 'SELECT * FROM refunds WHERE id = 4242', 1000, 100);

\echo
\echo '== tusk_cache_stats: L1 in shared memory, L2 in Redis, L3 in a table'
SELECT tier, entries, pg_size_pretty(bytes) AS bytes, pg_size_pretty(capacity_bytes) AS capacity,
       hits, misses, sets, evictions, expirations, errors
FROM tusk_cache_stats;

\echo
\echo '== tusk_metrics: every tusk call measured itself (lock-free histograms, times in ms)'
SELECT name, kind, count, round(p50::numeric, 4) AS p50, round(p95::numeric, 4) AS p95,
       round(p99::numeric, 4) AS p99, value
FROM tusk_metrics WHERE count > 0 ORDER BY kind, name;

\echo
\echo '== a metric of your own; the tusk metrics worker writes each interval into tusk_metrics_history'
SELECT count(tusk_metric_record('checkout_ms', 5 + 20 * random())) AS recorded FROM generate_series(1, 10000);
SELECT pg_sleep(1.5);
SELECT to_char(interval_end, 'HH24:MI:SS.MS') AS interval_end, name, count, round(min::numeric, 2) AS min,
       round(p50::numeric, 2) AS p50, round(p99::numeric, 2) AS p99, round(max::numeric, 2) AS max
FROM tusk_metrics_history WHERE name = 'checkout_ms';
SELECT pid, backend_type, state FROM pg_stat_activity WHERE backend_type = 'tusk metrics worker';
SQL
rc=$?
[ $rc -eq 0 ] || exit $rc

say "Invalidation: the GRANT on orders above changed who may read it, so it retired the cached report; the next call runs the query again and stores it"
run_psql <<'SQL' || exit 1
\pset footer off
\set report 'SELECT customer, region, count(*) AS orders, sum(amount) AS revenue FROM orders WHERE placed_at >= ''2026-01-01'' GROUP BY customer, region ORDER BY revenue DESC LIMIT 10'
\timing on
SELECT jsonb_array_length(tusk_cached('top_customers_2026', '5 min', :'report')) AS rows;
\timing off
SELECT tusk_cache_l3_wait() AS l3_row_written;
SELECT tier, ttl_left, dependencies FROM tusk_cache_entry('top_customers_2026');
SQL

say "The same entry in Redis, as any other program sees it (key: prefix, database, role, your key):"
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --scan --pattern 'tusk:*top_customers*'
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" GET 'tusk:postgres:postgres:top_customers_2026' | cut -c 1-160
echo "   ... (ttl: $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PTTL 'tusk:postgres:postgres:top_customers_2026') ms left)"

# The report twice after a restart: the first call from the tier named in $1, then L1.
report_after_restart() {
    run_psql -v first="-- first call: $1" <<'SQL'
\pset footer off
\set report 'SELECT customer, region, count(*) AS orders, sum(amount) AS revenue FROM orders WHERE placed_at >= ''2026-01-01'' GROUP BY customer, region ORDER BY revenue DESC LIMIT 10'
\echo :first
\timing on
SELECT jsonb_array_length(tusk_cached('top_customers_2026', '5 min', :'report')) AS rows;
\echo '-- second call: an L1 hit again'
SELECT jsonb_array_length(tusk_cached('top_customers_2026', '5 min', :'report')) AS rows;
\timing off
SELECT tier, hits, misses, sets, errors FROM tusk_cache_stats;
SQL
}

say "Restarting PostgreSQL: shared memory (L1) is gone, Redis (L2) is not"
as_server_user "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w restart >/dev/null || exit 1
report_after_restart "an L2 hit from Redis, copied back into L1" || exit 1

say "Restarting PostgreSQL and emptying Redis: L1 and L2 are gone, the L3 table is not"
as_server_user "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w restart >/dev/null || exit 1
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" FLUSHALL >/dev/null || exit 1
run_psql -c "SELECT key, pg_size_pretty(pg_column_size(value)::bigint) AS value_size, expires_at - now() AS ttl_left
             FROM tusk_cache_l3 WHERE key = 'top_customers_2026'" || exit 1
report_after_restart "an L3 hit from the table, copied back into L2 and L1"
rc=$?
say "Done: servers stopped, temporary files removed."
exit $rc
