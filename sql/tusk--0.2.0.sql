-- tusk 0.2.0: cached queries over three tiers: shared memory (L1), Redis (L2) and a table (L3).
\echo Use "CREATE EXTENSION tusk" to load this file. \quit

-- L3: the cache tier that survives restarts and is replicated to hot standbys.
-- tusk reads and writes it as the table's owner; no other role may touch it.
-- Not dumped by pg_dump (a cache is rebuilt, not restored).
CREATE TABLE tusk_cache_l3 (
    role_id     oid         NOT NULL,  -- the role whose query produced the value
    key         text COLLATE "C" NOT NULL,  -- the user's key ("C": prefix scans use the index)
    fingerprint bytea       NOT NULL,  -- what produced the value (query, params, settings)
    value       jsonb       NOT NULL,
    expires_at  timestamptz NOT NULL,
    stored_at   timestamptz NOT NULL,
    validity    bytea,                 -- what the value depends on (NULL: written by 0.1.0, never served)
    CONSTRAINT tusk_cache_l3_pkey PRIMARY KEY (role_id, key)
);
CREATE INDEX tusk_cache_l3_expires_at ON tusk_cache_l3 (expires_at);
REVOKE ALL ON tusk_cache_l3 FROM PUBLIC;
COMMENT ON TABLE tusk_cache_l3 IS 'The L3 cache tier of tusk (written and read by tusk only)';

CREATE FUNCTION tusk_cached(key text, ttl interval, query text, params jsonb DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'tusk_cached'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cached(text, interval, text, jsonb) IS
  'Rows of a read-only query as a jsonb array, served from the cache while fresh';

CREATE FUNCTION tusk_cache_get(key text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'tusk_cache_get'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_get(text) IS 'Cached value of key for the current role, or NULL';

CREATE FUNCTION tusk_cache_set(key text, value jsonb, ttl interval, depends_on regclass[] DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tusk_cache_set'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_set(text, jsonb, interval, regclass[]) IS
  'Stores value under key for ttl when the transaction commits (until a relation of depends_on changes); false when no tier could keep it';

CREATE FUNCTION tusk_cache_delete(key text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tusk_cache_delete'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_delete(text) IS 'Removes key of the current role; true if it was cached';

CREATE FUNCTION tusk_cache_invalidate(prefix text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tusk_cache_invalidate'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_invalidate(text) IS
  'Removes the current role''s keys that start with prefix; returns how many';

CREATE FUNCTION tusk_cache_flush()
RETURNS bigint
AS 'MODULE_PATHNAME', 'tusk_cache_flush'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_flush() IS
  'Removes every entry of every role (L1 and L2: of every database; L3: of this one)';
REVOKE ALL ON FUNCTION tusk_cache_flush() FROM PUBLIC;

CREATE FUNCTION tusk_cache_stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'tusk_cache_stats_reset'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_stats_reset() IS 'Zeroes the hit, miss, set, eviction and expiration counters';
REVOKE ALL ON FUNCTION tusk_cache_stats_reset() FROM PUBLIC;

CREATE FUNCTION tusk_cache_stats(
    OUT tier text,
    OUT entries bigint,
    OUT bytes bigint,
    OUT capacity_bytes bigint,
    OUT hits bigint,
    OUT misses bigint,
    OUT sets bigint,
    OUT evictions bigint,
    OUT expirations bigint,
    OUT errors bigint,
    OUT invalidations bigint,
    OUT waits bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tusk_cache_stats'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE VIEW tusk_cache_stats AS SELECT * FROM tusk_cache_stats();
COMMENT ON VIEW tusk_cache_stats IS 'One row per cache tier: size and counters';
GRANT SELECT ON tusk_cache_stats TO PUBLIC;

CREATE FUNCTION tusk_cache_invalidate_relation(relation regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'tusk_cache_invalidate_relation'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_invalidate_relation(regclass) IS
  'Retires now every cached value (of every role) that depends on relation or its partitions';

CREATE FUNCTION tusk_cache_l3_wait(timeout interval DEFAULT '10s')
RETURNS boolean
AS 'MODULE_PATHNAME', 'tusk_cache_l3_wait'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_l3_wait(interval) IS
  'Waits until the L3 rows this database''s fills queued so far are written; false after timeout';

CREATE FUNCTION tusk_cache_entry(key text,
    OUT tier text,
    OUT ttl_left interval,
    OUT dependencies integer,
    OUT ttl_only boolean,
    OUT fill_clock bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tusk_cache_entry'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_entry(text) IS
  'Where key is cached (and may be served) for the current role: per tier its TTL left and what it depends on';

-- Metrics: one registry per server (shared memory, tusk.max_metrics slots).
-- Names are shared by all databases and roles, like pg_stat_statements' view.

CREATE FUNCTION tusk_metric_record(name text, value float8)
RETURNS void
AS 'MODULE_PATHNAME', 'tusk_metric_record'
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION tusk_metric_record(text, float8) IS
  'Records one observation in the histogram name (created on first use)';

CREATE FUNCTION tusk_metric_increment(name text, delta float8 DEFAULT 1)
RETURNS void
AS 'MODULE_PATHNAME', 'tusk_metric_increment'
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION tusk_metric_increment(text, float8) IS
  'Adds delta (>= 0) to the counter name (created on first use)';

CREATE FUNCTION tusk_metric_gauge(name text, value float8)
RETURNS void
AS 'MODULE_PATHNAME', 'tusk_metric_gauge'
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION tusk_metric_gauge(text, float8) IS 'Sets the gauge name (created on first use)';

CREATE FUNCTION tusk_metrics_reset(name text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tusk_metrics_reset'
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION tusk_metrics_reset(text) IS
  'Zeroes the metric name, or every metric when NULL; returns how many. Names stay registered';
REVOKE ALL ON FUNCTION tusk_metrics_reset(text) FROM PUBLIC;

CREATE FUNCTION tusk_histogram(name text, OUT lower float8, OUT upper float8, OUT count bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tusk_histogram'
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION tusk_histogram(text) IS
  'The non-empty buckets of histogram name: values in (lower, upper], zeros as (0, 0]';

CREATE FUNCTION tusk_metrics_prometheus()
RETURNS text
AS 'MODULE_PATHNAME', 'tusk_metrics_prometheus'
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION tusk_metrics_prometheus() IS
  'Every metric in the Prometheus text exposition format (histograms as summaries)';

CREATE FUNCTION tusk_metrics_list(
    OUT name text,
    OUT kind text,
    OUT count bigint,
    OUT sum float8,
    OUT min float8,
    OUT max float8,
    OUT mean float8,
    OUT p50 float8,
    OUT p95 float8,
    OUT p99 float8,
    OUT value float8,
    OUT updated_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tusk_metrics_list'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW tusk_metrics AS SELECT * FROM tusk_metrics_list();
COMMENT ON VIEW tusk_metrics IS
  'Every metric: histograms with count, sum, min, max, mean and p50/p95/p99; counters and gauges with value';
GRANT SELECT ON tusk_metrics TO PUBLIC;

-- History: per-interval rows written by the tusk metrics worker (worker.cpp)
-- every tusk.metrics_interval, trimmed after tusk.metrics_retention.
CREATE TABLE tusk_metrics_history (
    interval_start timestamptz NOT NULL,
    interval_end timestamptz NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    count bigint NOT NULL,   -- observations, increments or sets in the interval
    sum float8,              -- histograms: of the interval's values; counters: the interval's increase
    min float8,
    max float8,
    p50 float8,
    p95 float8,
    p99 float8,
    value float8             -- counters: the total; gauges: the last value
);
CREATE INDEX tusk_metrics_history_name ON tusk_metrics_history (name, interval_end);
CREATE INDEX tusk_metrics_history_end ON tusk_metrics_history (interval_end);
REVOKE ALL ON tusk_metrics_history FROM PUBLIC;
COMMENT ON TABLE tusk_metrics_history IS
  'Per-interval statistics of every metric active in the interval (tusk metrics worker)';
SELECT pg_catalog.pg_extension_config_dump('tusk_metrics_history', '');

-- Alerts: rules over one statistic of one metric, judged by the worker each interval.
CREATE TABLE tusk_alert_rules (
    name text PRIMARY KEY,
    metric text NOT NULL,
    statistic text NOT NULL,
    comparison text NOT NULL,
    threshold float8 NOT NULL,
    state text NOT NULL DEFAULT 'ok',
    observed float8,
    evaluated_at timestamptz,
    changed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (name <> ''),
    CHECK (statistic IN ('count', 'sum', 'min', 'max', 'mean', 'p50', 'p95', 'p99', 'value')),
    CHECK (comparison IN ('>', '>=', '<', '<=')),
    CHECK (threshold <> 'NaN' AND threshold <> 'Infinity' AND threshold <> '-Infinity'),
    CHECK (state IN ('ok', 'firing'))
);
REVOKE ALL ON tusk_alert_rules FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('tusk_alert_rules', '');

CREATE FUNCTION tusk_alert_create(name text, metric text, statistic text, comparison text, threshold float8)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF name IS NULL OR metric IS NULL OR statistic IS NULL OR comparison IS NULL OR threshold IS NULL THEN
        RAISE EXCEPTION 'tusk_alert_create: no argument may be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF name = '' OR length(name) > 63 THEN
        RAISE EXCEPTION 'an alert name is 1 to 63 characters' USING ERRCODE = 'invalid_name';
    END IF;
    IF metric !~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid metric name "%"', metric USING ERRCODE = 'invalid_name';
    END IF;
    IF statistic NOT IN ('count', 'sum', 'min', 'max', 'mean', 'p50', 'p95', 'p99', 'value') THEN
        RAISE EXCEPTION 'unknown statistic "%"', statistic USING ERRCODE = 'invalid_parameter_value',
            HINT = 'One of count, sum, min, max, mean, p50, p95, p99 (of the interval) or value (now).';
    END IF;
    IF comparison NOT IN ('>', '>=', '<', '<=') THEN
        RAISE EXCEPTION 'unknown comparison "%"', comparison USING ERRCODE = 'invalid_parameter_value',
            HINT = 'One of >, >=, <, <=.';
    END IF;
    IF threshold IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'threshold must be a finite number' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO @extschema@.tusk_alert_rules AS r (name, metric, statistic, comparison, threshold)
    VALUES (name, metric, statistic, comparison, threshold)
    ON CONFLICT ON CONSTRAINT tusk_alert_rules_pkey DO UPDATE
    SET metric = excluded.metric, statistic = excluded.statistic, comparison = excluded.comparison,
        threshold = excluded.threshold, state = 'ok', observed = NULL, evaluated_at = NULL, changed_at = NULL;
END
$$;
COMMENT ON FUNCTION tusk_alert_create(text, text, text, text, float8) IS
  'Creates or replaces the alert rule name: fires while statistic of metric compares true with threshold';
REVOKE ALL ON FUNCTION tusk_alert_create(text, text, text, text, float8) FROM PUBLIC;

CREATE FUNCTION tusk_alert_drop(name text)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog
AS $$
    WITH gone AS (DELETE FROM @extschema@.tusk_alert_rules r WHERE r.name = tusk_alert_drop.name RETURNING 1)
    SELECT count(*) > 0 FROM gone
$$;
COMMENT ON FUNCTION tusk_alert_drop(text) IS 'Removes the alert rule name; true if there was one';
REVOKE ALL ON FUNCTION tusk_alert_drop(text) FROM PUBLIC;

CREATE VIEW tusk_alerts AS
SELECT name, metric, statistic, comparison, threshold, state, observed, evaluated_at, changed_at
FROM tusk_alert_rules;
COMMENT ON VIEW tusk_alerts IS 'The alert rules and their state as of the worker''s last interval';

-- Traces: spans timed on a monotonic clock. Each ended span is one observation (ms)
-- in the histogram <operation>_duration and an entry in a ring in shared memory
-- (the newest tusk.max_traces spans of the server), read through tusk_traces.

CREATE FUNCTION tusk_trace_start(operation text, metadata jsonb DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tusk_trace_start'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_trace_start(text, jsonb) IS
  'Opens a span of operation in this session and returns its id; end it with tusk_trace_end';

CREATE FUNCTION tusk_trace_end(span bigint)
RETURNS interval
AS 'MODULE_PATHNAME', 'tusk_trace_end'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_trace_end(bigint) IS
  'Ends a span opened in this session: returns its duration and records it in <operation>_duration (ms)';

CREATE FUNCTION tusk_traces_reset()
RETURNS bigint
AS 'MODULE_PATHNAME', 'tusk_traces_reset'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_traces_reset() IS
  'Removes every completed span from the tusk_traces ring; returns how many';
REVOKE ALL ON FUNCTION tusk_traces_reset() FROM PUBLIC;

CREATE FUNCTION tusk_traces_list(
    OUT span_id bigint,
    OUT operation text,
    OUT role text,
    OUT database text,
    OUT pid integer,
    OUT started_at timestamptz,
    OUT ended_at timestamptz,
    OUT duration interval,
    OUT metadata jsonb)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tusk_traces_list'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE VIEW tusk_traces AS SELECT * FROM tusk_traces_list();
COMMENT ON VIEW tusk_traces IS
  'Recently ended spans, newest first (spans of roles the reader has the privileges of, or all with pg_read_all_stats)';
GRANT SELECT ON tusk_traces TO PUBLIC;

-- Query operators: statements from this backend's plan cache, batch writes, benchmarks,
-- and rows streamed one at a time.
CREATE FUNCTION tusk_query(sql text, params jsonb DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'tusk_query'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_query(text, jsonb) IS
  'Rows of one statement (writes allowed) as a jsonb array, its plan kept in this backend''s plan cache';

CREATE FUNCTION tusk_query_rows(sql text, params jsonb DEFAULT NULL)
RETURNS SETOF jsonb
AS 'MODULE_PATHNAME', 'tusk_query_rows'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1000;
COMMENT ON FUNCTION tusk_query_rows(text, jsonb) IS
  'Rows of one statement as jsonb objects, one at a time, through this backend''s plan cache';

CREATE FUNCTION tusk_cached_rows(key text, ttl interval, query text, params jsonb DEFAULT NULL)
RETURNS SETOF jsonb
AS 'MODULE_PATHNAME', 'tusk_cached_rows'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1000;
COMMENT ON FUNCTION tusk_cached_rows(text, interval, text, jsonb) IS
  'tusk_cached, one row at a time';

CREATE FUNCTION tusk_prepared_list(
    OUT sql text, OUT param_types regtype[], OUT calls bigint, OUT generic_plans bigint,
    OUT custom_plans bigint, OUT prepared_at timestamptz, OUT last_used_at timestamptz,
    OUT streamed boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tusk_prepared_list'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION tusk_prepared_list() IS 'The statements in this backend''s plan cache';

CREATE VIEW tusk_prepared AS SELECT * FROM tusk_prepared_list();
COMMENT ON VIEW tusk_prepared IS
  'Statements that tusk_query and tusk_query_rows (streamed) keep prepared in this backend for the current role, most recently used first';
GRANT SELECT ON tusk_prepared TO PUBLIC;

CREATE FUNCTION tusk_prepared_reset()
RETURNS bigint
AS 'MODULE_PATHNAME', 'tusk_prepared_reset'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION tusk_prepared_reset() IS
  'Forgets this backend''s cached plans (as DEALLOCATE ALL does); returns how many';

CREATE FUNCTION tusk_batch_insert(target regclass, records jsonb, batch_size integer DEFAULT 1000)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tusk_batch_insert'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_batch_insert(regclass, jsonb, integer) IS
  'Inserts a jsonb array of objects into target, batch_size rows per statement; returns the rows inserted';

CREATE FUNCTION tusk_benchmark(name text, sql text, iterations integer DEFAULT 1000, warmup integer DEFAULT 100,
    OUT name text, OUT iterations integer, OUT mean float8, OUT min float8, OUT max float8,
    OUT p50 float8, OUT p95 float8, OUT p99 float8, OUT stddev float8)
RETURNS record
AS 'MODULE_PATHNAME', 'tusk_benchmark'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_benchmark(text, text, integer, integer) IS
  'Runs sql warmup + iterations times; statistics of the timed runs in milliseconds, also recorded as histogram name';
