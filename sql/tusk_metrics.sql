-- Metrics: the registry, recording from SQL, the tusk_metrics view,
-- tusk_histogram, the built-in metrics and bad input.
-- The registry is server-wide and outlives this database: start from zero.
SELECT tusk_metrics_reset() >= 15 AS reset_all;

-- the built-in metrics exist from server start, with their kinds
SELECT name, kind, count FROM tusk_metrics
WHERE name IN ('cache_l1_hits', 'cache_l2_hits', 'cache_l3_hits', 'cache_misses', 'database_query_count',
               'cache_l1_time', 'cache_l2_time', 'cache_l3_time', 'database_query_time', 'tusk_cached_time',
               'tusk_cache_get_time', 'tusk_cache_set_time', 'tusk_cache_delete_time',
               'tusk_cache_invalidate_time', 'tusk_cache_flush_time')
ORDER BY name;

-- counters, gauges and histograms from SQL
SELECT tusk_metric_increment('regress_requests');
SELECT tusk_metric_increment('regress_requests', 2.5);
SELECT tusk_metric_gauge('regress_queue_depth', 7);
SELECT tusk_metric_gauge('regress_queue_depth', -3);
SELECT count(*) FROM (SELECT tusk_metric_record('regress_latency', g) FROM generate_series(1, 100) g) s;
SELECT tusk_metric_record('regress_latency', 0);
SELECT name, kind, count, sum, min, max, round(mean::numeric, 4) AS mean, value, updated_at IS NOT NULL AS updated
FROM tusk_metrics WHERE name LIKE 'regress\_%' ORDER BY name;
-- quantiles of 0..100 (nearest rank): within 1% of the exact values
SELECT abs(p50 / 50 - 1) <= 0.01 AS p50_ok, abs(p95 / 95 - 1) <= 0.01 AS p95_ok, abs(p99 / 99 - 1) <= 0.01 AS p99_ok
FROM tusk_metrics WHERE name = 'regress_latency';

-- accuracy: p50, p95 and p99 of 200,000 lognormal samples within 1% of the exact percentiles
SELECT setseed(0.42);
CREATE TEMP TABLE lognormal AS
SELECT exp(1.5 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) AS v FROM generate_series(1, 200000);
SELECT count(*) FROM (SELECT tusk_metric_record('regress_lognormal', v) FROM lognormal) s;
WITH exact AS (
    SELECT percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY v) AS p, min(v) AS lo, max(v) AS hi,
           sum(v) AS total, count(*) AS n
    FROM lognormal)
SELECT m.count = exact.n AS count_ok,
       abs(m.sum / exact.total - 1) < 1e-9 AS sum_ok,
       m.min = exact.lo AS min_exact, m.max = exact.hi AS max_exact,
       abs(m.p50 / exact.p[1] - 1) <= 0.01 AS p50_within_1pct,
       abs(m.p95 / exact.p[2] - 1) <= 0.01 AS p95_within_1pct,
       abs(m.p99 / exact.p[3] - 1) <= 0.01 AS p99_within_1pct
FROM tusk_metrics m, exact WHERE m.name = 'regress_lognormal';

-- tusk_histogram: the non-empty buckets, for plotting; their counts add up
SELECT sum(count) AS total, bool_and(lower < upper OR (lower = 0 AND upper = 0)) AS bounds_ok,
       count(*) FILTER (WHERE lower = 0 AND upper = 0) AS zero_buckets
FROM tusk_histogram('regress_latency');
SELECT bool_and(h.count > 0) AS no_empty_rows,
       bool_and(upper / lower < 1.02) AS narrow_buckets
FROM tusk_histogram('regress_lognormal') h WHERE lower > 0;

-- the built-in metrics record tusk's own calls
SELECT tusk_metrics_reset('cache_l1_hits'), tusk_metrics_reset('cache_misses'), tusk_metrics_reset('tusk_cached_time'),
       tusk_metrics_reset('database_query_count');
SELECT tusk_cache_delete('metrics key');
SELECT tusk_cached('metrics key', '5 min', 'SELECT 1 AS one');
SELECT tusk_cached('metrics key', '5 min', 'SELECT 1 AS one');
SELECT tusk_cached('metrics key', '5 min', 'SELECT 1 AS one');
SELECT name, count, value FROM tusk_metrics
WHERE name IN ('cache_l1_hits', 'cache_misses', 'tusk_cached_time', 'database_query_count') ORDER BY name;
SELECT p50 > 0 AND p50 < 1000 AS plausible_ms FROM tusk_metrics WHERE name = 'tusk_cached_time';
-- and stop when tusk.builtin_metrics is off
SET tusk.builtin_metrics = off;
SELECT tusk_cached('metrics key', '5 min', 'SELECT 1 AS one');
SELECT name, count FROM tusk_metrics WHERE name IN ('cache_l1_hits', 'tusk_cached_time') ORDER BY name;
RESET tusk.builtin_metrics;

-- bad input: an ERROR with a SQLSTATE, and nothing recorded
\set VERBOSITY sqlstate
SELECT tusk_metric_record(NULL, 1);
SELECT tusk_metric_record('regress_latency', NULL);
SELECT tusk_metric_record('', 1);
SELECT tusk_metric_record('has space', 1);
SELECT tusk_metric_record('dot.name', 1);
SELECT tusk_metric_record(repeat('n', 64), 1);
SELECT tusk_metric_record('regress_latency', 'NaN');
SELECT tusk_metric_record('regress_latency', 'Infinity');
SELECT tusk_metric_record('regress_latency', '-Infinity');
SELECT tusk_metric_record('regress_latency', -1);
SELECT tusk_metric_record('regress_latency', 1e13);
SELECT tusk_metric_record('regress_latency', 1e-10);
SELECT tusk_metric_increment('regress_requests', -1);
SELECT tusk_metric_increment('regress_requests', 'NaN');
SELECT tusk_metric_gauge('regress_queue_depth', 'Infinity');
-- one name, one kind
SELECT tusk_metric_record('regress_requests', 1);
SELECT tusk_metric_increment('regress_latency');
SELECT tusk_metric_gauge('cache_l1_hits', 1);
-- the built-in metrics are tusk's own: SQL cannot record into them
SELECT tusk_metric_increment('cache_l1_hits', 1e308);
SELECT tusk_metric_record('tusk_cached_time', 1e12);
-- unknown names
SELECT * FROM tusk_histogram('regress_no_such_metric');
SELECT * FROM tusk_histogram('regress_requests');
SELECT tusk_metrics_reset('regress_no_such_metric');
\set VERBOSITY default
SELECT tusk_metric_record('regress_latency', 'NaN');
SELECT tusk_metric_record('dot.name', 1);
SELECT tusk_metric_increment('regress_latency');
SELECT name, count, sum FROM tusk_metrics WHERE name IN ('regress_latency', 'regress_requests') ORDER BY name;

-- PUBLIC records and reads, but does not reset
CREATE ROLE regress_tusk_metrics_user;
SET ROLE regress_tusk_metrics_user;
SELECT tusk_metric_increment('regress_requests');
SELECT count > 0 AS sees_metrics FROM tusk_metrics WHERE name = 'regress_requests';
SELECT tusk_metrics_reset('regress_requests');
RESET ROLE;
DROP ROLE regress_tusk_metrics_user;

-- the worker's tables and the alerts are not for PUBLIC
SELECT c.relname, has_table_privilege('public', c.oid, 'SELECT') AS public_reads,
       has_table_privilege('public', c.oid, 'INSERT') AS public_writes
FROM pg_class c WHERE c.relname IN ('tusk_metrics_history', 'tusk_alert_rules', 'tusk_alerts', 'tusk_metrics')
ORDER BY 1;
