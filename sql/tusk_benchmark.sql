-- tusk_benchmark(name, sql, iterations, warmup): runs one statement warmup
-- times untimed, then iterations times timed, in the caller's transaction,
-- and returns statistics of the timed runs in milliseconds; a completed
-- benchmark records every timed run in the histogram <name>. Timings vary
-- from run to run, so this test checks relations between them, never values.

-- one row; the statistics are ordered and positive
SELECT name, iterations,
       min > 0 AS min_positive,
       min <= p50 AND p50 <= p95 AND p95 <= p99 AND p99 <= max AS ordered,
       mean BETWEEN min AND max AS mean_in_range,
       stddev >= 0 AS stddev_ok
FROM tusk_benchmark('regress_bench_select', 'SELECT 1', 200, 20);

-- every timed run is in the histogram, and a second run adds to it
SELECT name, kind, count FROM tusk_metrics WHERE name = 'regress_bench_select';
SELECT iterations FROM tusk_benchmark('regress_bench_select', 'SELECT 1', 50);
SELECT count FROM tusk_metrics WHERE name = 'regress_bench_select';

-- defaults: 1000 timed runs after 100 warmup runs
SELECT name, iterations FROM tusk_benchmark('regress_bench_defaults', 'SELECT 1');
SELECT count FROM tusk_metrics WHERE name = 'regress_bench_defaults';

-- the durations are real: pg_sleep(0.005) takes at least 5 ms every time
SELECT * FROM tusk_benchmark('regress_bench_sleep', 'SELECT pg_sleep(0.005)', 5, 1) \gset b_
SELECT :b_iterations AS iterations, :b_min >= 5 AS min_at_least_5ms,
       :b_p50 >= 5 AND :b_max >= :b_p99 AS above_5ms, :b_mean >= 5 AS mean_at_least_5ms;
-- the histogram has the same exact min and max, and percentiles within its 1%
SELECT count, min = :b_min AS same_min, max = :b_max AS same_max,
       abs(p50 / :b_p50 - 1) < 0.01 AS p50_close, abs(p95 / :b_p95 - 1) < 0.01 AS p95_close,
       abs(p99 / :b_p99 - 1) < 0.01 AS p99_close, abs(mean / :b_mean - 1) < 1e-9 AS same_mean
FROM tusk_metrics WHERE name = 'regress_bench_sleep';

-- one iteration: every statistic is that run, stddev is 0
SELECT iterations, stddev, min = max AND p50 = min AND p95 = min AND p99 = min AND mean = min AS one_sample
FROM tusk_benchmark('regress_bench_once', 'SELECT 1', 1, 0);

-- the statement is planned once and that plan executed every time (pgbench -M prepared):
-- an immutable function with constant arguments is evaluated by the planner only
CREATE FUNCTION bench_planned() RETURNS int IMMUTABLE LANGUAGE plpgsql
AS $$BEGIN RAISE NOTICE 'planning'; RETURN 1; END$$;
SELECT iterations FROM tusk_benchmark('regress_bench_planned', 'SELECT bench_planned()', 5, 2);

-- rows are produced in full (and discarded): 10 rows x (1 warmup + 2 timed runs)
CREATE TEMP SEQUENCE bench_rows_seq;
SELECT iterations FROM tusk_benchmark('regress_bench_rows',
    'SELECT nextval(''bench_rows_seq'') FROM generate_series(1, 10)', 2, 1);
SELECT currval('bench_rows_seq') AS rows_produced;

-- warmup runs execute but are neither timed nor recorded; each run sees the
-- writes of the runs before it, like consecutive statements
CREATE TEMP TABLE bench_log (n int);
SELECT iterations FROM tusk_benchmark('regress_bench_insert',
    'INSERT INTO bench_log SELECT count(*) + 1 FROM bench_log', 5, 3);
SELECT count(*) AS rows_inserted, count(DISTINCT n) AS distinct_n, min(n), max(n) FROM bench_log;
SELECT count AS recorded FROM tusk_metrics WHERE name = 'regress_bench_insert';

-- writes happen in the caller's transaction and roll back with it; the
-- histogram is not transactional: the completed runs stay recorded
BEGIN;
SELECT iterations FROM tusk_benchmark('regress_bench_insert',
    'INSERT INTO bench_log SELECT count(*) + 1 FROM bench_log', 10, 0);
SELECT count(*) AS rows_in_transaction FROM bench_log;
ROLLBACK;
SELECT count(*) AS rows_after_rollback FROM bench_log;
SELECT count AS recorded FROM tusk_metrics WHERE name = 'regress_bench_insert';

-- utility statements run too
SELECT iterations FROM tusk_benchmark('regress_bench_utility', 'SHOW work_mem', 3, 0);

-- a benchmark may benchmark a benchmark: 4 outer runs of 10 inner ones
SELECT iterations FROM tusk_benchmark('regress_bench_outer',
    'SELECT iterations FROM tusk_benchmark(''regress_bench_inner'', ''SELECT 1'', 10, 0)', 3, 1);
SELECT name, count FROM tusk_metrics WHERE name IN ('regress_bench_outer', 'regress_bench_inner') ORDER BY name;

-- the statement runs with the caller's privileges
CREATE ROLE regress_tusk_bench_user;
CREATE TABLE bench_secret (s text);
SET ROLE regress_tusk_bench_user;
SELECT iterations FROM tusk_benchmark('regress_bench_user', 'SELECT 1', 3, 0);
SELECT iterations FROM tusk_benchmark('regress_bench_denied', 'SELECT * FROM bench_secret', 3, 0);
RESET ROLE;
DROP TABLE bench_secret;
DROP ROLE regress_tusk_bench_user;

-- progress: a NOTICE whenever tusk.benchmark_progress_interval has passed
-- (terse: the DETAIL with the timings so far is not shown)
SHOW tusk.benchmark_progress_interval;
SET tusk.benchmark_progress_interval = '1ms';
SHOW tusk.benchmark_progress_interval;
\set VERBOSITY terse
SELECT iterations FROM tusk_benchmark('regress_bench_progress', 'SELECT pg_sleep(0.003)', 3, 1);
-- 0 turns progress off
SET tusk.benchmark_progress_interval = 0;
SELECT iterations FROM tusk_benchmark('regress_bench_progress', 'SELECT pg_sleep(0.003)', 3, 1);
SET tusk.benchmark_progress_interval = -1;
\set VERBOSITY default
RESET tusk.benchmark_progress_interval;
SHOW tusk.benchmark_progress_interval;

-- cancel: statement_timeout ends a run that would take 1000 s, in the timed
-- runs and in the warmup; nothing is recorded and the session goes on
SET statement_timeout = '300ms';
\set VERBOSITY terse
SELECT * FROM tusk_benchmark('regress_bench_cancel', 'SELECT pg_sleep(0.01)', 100000, 0);
SELECT * FROM tusk_benchmark('regress_bench_cancel', 'SELECT pg_sleep(0.01)', 1, 100000);
SELECT * FROM tusk_benchmark('regress_bench_cancel', 'SELECT 1', 1000000, 1000000);
\set VERBOSITY default
RESET statement_timeout;
SELECT count AS recorded FROM tusk_metrics WHERE name = 'regress_bench_cancel';
SELECT 1 AS still_working;

-- bad input: an ERROR with a SQLSTATE, checked before the statement runs
CREATE TEMP TABLE bench_untouched (a int);
\set VERBOSITY sqlstate
-- NULLs (22004)
SELECT * FROM tusk_benchmark(NULL, 'SELECT 1');
SELECT * FROM tusk_benchmark('regress_bench_bad', NULL);
SELECT * FROM tusk_benchmark('regress_bench_bad', 'SELECT 1', NULL);
SELECT * FROM tusk_benchmark('regress_bench_bad', 'SELECT 1', 10, NULL);
-- bounds (22023)
SELECT * FROM tusk_benchmark('regress_bench_bad', 'SELECT 1', 0);
SELECT * FROM tusk_benchmark('regress_bench_bad', 'SELECT 1', -1);
SELECT * FROM tusk_benchmark('regress_bench_bad', 'SELECT 1', 1000001);
SELECT * FROM tusk_benchmark('regress_bench_bad', 'SELECT 1', 10, -1);
SELECT * FROM tusk_benchmark('regress_bench_bad', 'SELECT 1', 10, 1000001);
-- metric names: invalid (42602), built-in (42501), another kind's (42809)
SELECT * FROM tusk_benchmark('', 'INSERT INTO bench_untouched VALUES (1)');
SELECT * FROM tusk_benchmark('has space', 'INSERT INTO bench_untouched VALUES (1)');
SELECT * FROM tusk_benchmark('1st', 'INSERT INTO bench_untouched VALUES (1)');
SELECT * FROM tusk_benchmark(repeat('n', 64), 'INSERT INTO bench_untouched VALUES (1)');
SELECT * FROM tusk_benchmark('cache_misses', 'INSERT INTO bench_untouched VALUES (1)');
SELECT * FROM tusk_benchmark('tusk_cached_time', 'INSERT INTO bench_untouched VALUES (1)');
SELECT tusk_metric_increment('regress_bench_counter');
SELECT * FROM tusk_benchmark('regress_bench_counter', 'INSERT INTO bench_untouched VALUES (1)');
SELECT tusk_metric_gauge('regress_bench_gauge', 1);
SELECT * FROM tusk_benchmark('regress_bench_gauge', 'INSERT INTO bench_untouched VALUES (1)');
-- not exactly one statement (42601), syntax error (42601), unknown table (42P01),
-- no parameters to bind (42P02), transaction control and COPY with the client (0A000)
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', '');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', '  ;  -- a comment');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', 'INSERT INTO bench_untouched VALUES (1); SELECT 2');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', 'SELEC 1');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', 'SELECT * FROM no_such_table');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', 'SELECT $1');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', 'COMMIT');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', 'BEGIN');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', 'COPY bench_untouched FROM STDIN');
-- a statement that fails: its own error (22012), in the warmup or in a timed run
SELECT * FROM tusk_benchmark('regress_bench_fail', 'SELECT 1/0', 5, 2);
CREATE TEMP SEQUENCE bench_fail_seq;
SELECT * FROM tusk_benchmark('regress_bench_fail', 'SELECT 1 / (5 - nextval(''bench_fail_seq'')::int)', 5, 2);
-- nothing ran
SELECT count(*) AS untouched FROM bench_untouched;

\set VERBOSITY default
-- what a user reads
SELECT * FROM tusk_benchmark(NULL, 'SELECT 1');
SELECT * FROM tusk_benchmark('regress_bench_bad', 'SELECT 1', 0);
SELECT * FROM tusk_benchmark('regress_bench_bad', 'SELECT 1', 1000001);
SELECT * FROM tusk_benchmark('regress_bench_bad', 'SELECT 1', 10, -1);
SELECT * FROM tusk_benchmark('regress_bench_bad', 'SELECT 1', 10, 1000001);
SELECT * FROM tusk_benchmark('has space', 'SELECT 1');
SELECT * FROM tusk_benchmark('cache_misses', 'SELECT 1');
SELECT * FROM tusk_benchmark('regress_bench_counter', 'SELECT 1');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', '');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', 'SELECT 1; SELECT 2');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', 'SELECT 1 FROM');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', 'COMMIT');
SELECT * FROM tusk_benchmark('regress_bench_bad_sql', 'COPY bench_untouched TO STDOUT');
ALTER SEQUENCE bench_fail_seq RESTART;
SELECT * FROM tusk_benchmark('regress_bench_fail', 'SELECT 1 / (5 - nextval(''bench_fail_seq'')::int)', 5, 2);
SELECT * FROM tusk_benchmark('regress_bench_fail', 'SELECT 1/0', 5, 2);

-- a benchmark that fails records nothing; the histogram of a name that passed
-- the checks exists (empty), names refused before that were never created
SELECT name, kind, count FROM tusk_metrics WHERE name LIKE 'regress\_bench%' ORDER BY name;
