-- Traces: tusk_trace_start / tusk_trace_end, the <operation>_duration
-- histograms, the tusk_traces view (order, metadata, ring bound, privacy)
-- and bad input. Only booleans, counts and names are shown: ids, pids,
-- timestamps and durations differ from run to run.
-- The ring is server-wide: start from an empty one.
SELECT tusk_traces_reset() >= 0 AS reset;
SELECT count(*) AS spans FROM tusk_traces;
SHOW tusk.max_traces;
-- and from zeroed histograms, should an earlier run have left them
SELECT count(tusk_metrics_reset(name)) >= 0 AS metrics_reset FROM tusk_metrics
WHERE name IN ('regress_outer_duration', 'regress_inner_duration', 'regress_meta_duration',
               'regress_across_duration', 'regress_rolled_back_duration');

-- one span: start returns an id, end returns the duration
SELECT tusk_trace_start('regress_op') AS span \gset
SELECT :span > 0 AS positive_id;
SELECT tusk_trace_end(:span) >= interval '0' AS ended;
SELECT span_id = :span AS same_id, operation, role = current_user AS own_role,
       database = current_database() AS this_database, pid = pg_backend_pid() AS this_backend,
       ended_at >= started_at AS times_ordered, duration >= interval '0' AS duration_ok,
       metadata IS NULL AS no_metadata
FROM tusk_traces;

-- the duration is measured: a span around pg_sleep(0.05) lasts at least 50 ms,
-- and lands in the histogram regress_sleep_duration in milliseconds
SELECT tusk_trace_start('regress_sleep') AS span \gset
-- the histogram exists from tusk_trace_start on (zeroed here, in case of an earlier run)
SELECT tusk_metrics_reset('regress_sleep_duration');
SELECT name, kind, count FROM tusk_metrics WHERE name = 'regress_sleep_duration';
SELECT pg_sleep(0.05);
SELECT tusk_trace_end(:span) >= interval '50 ms' AS slept_50ms;
SELECT duration >= interval '50 ms' AS at_least_50ms, duration < interval '1 min' AS plausible,
       ended_at - started_at >= interval '40 ms' AS wall_clock_agrees
FROM tusk_traces WHERE span_id = :span;
SELECT name, kind, count, min >= 50 AS min_at_least_50ms, max < 60000 AS max_plausible,
       abs(sum - (SELECT extract(epoch FROM duration) * 1000 FROM tusk_traces WHERE span_id = :span)) < 0.01
         AS sum_matches_view
FROM tusk_metrics WHERE name = 'regress_sleep_duration';

-- nested spans: the outer one starts first, ends last, lasts longer
SELECT tusk_trace_start('regress_outer') AS outer_span \gset
SELECT tusk_trace_start('regress_inner') AS inner_span \gset
SELECT :inner_span > :outer_span AS ids_increase;
SELECT pg_sleep(0.01);
SELECT tusk_trace_end(:inner_span) >= interval '10 ms' AS inner_ended;
SELECT pg_sleep(0.01);
SELECT tusk_trace_end(:outer_span) >= interval '20 ms' AS outer_ended;
SELECT o.duration > i.duration AS outer_longer, o.started_at <= i.started_at AS outer_started_first,
       o.ended_at >= i.ended_at AS outer_ended_last
FROM tusk_traces o, tusk_traces i WHERE o.span_id = :outer_span AND i.span_id = :inner_span;

-- the view lists the most recently ended span first (inner ended before outer)
SELECT operation FROM tusk_traces;
SELECT bool_and(previous >= ended_at) AS newest_first
FROM (SELECT ended_at, lag(ended_at) OVER () AS previous FROM tusk_traces) s WHERE previous IS NOT NULL;

-- metadata: any jsonb, returned as it was given
SELECT tusk_trace_end(tusk_trace_start('regress_meta', '{"user": 42, "tags": ["a", "b"], "nested": {"x": null}}'))
       IS NOT NULL AS ended;
SELECT tusk_trace_end(tusk_trace_start('regress_meta', '"just a string"')) IS NOT NULL AS ended;
SELECT tusk_trace_end(tusk_trace_start('regress_meta', '[1, 2.50, true]')) IS NOT NULL AS ended;
SELECT tusk_trace_end(tusk_trace_start('regress_meta', '{"name": "größe ✓"}')) IS NOT NULL AS ended;
SELECT tusk_trace_end(tusk_trace_start('regress_meta', NULL)) IS NOT NULL AS ended;
SELECT metadata FROM tusk_traces WHERE operation = 'regress_meta' ORDER BY span_id;
SELECT metadata = '{"name": "größe ✓"}'::jsonb AS non_ascii_round_trip
FROM tusk_traces WHERE operation = 'regress_meta' AND metadata ? 'name';
-- metadata up to 1024 bytes of text is kept; longer is replaced by its size
SELECT tusk_trace_end(tusk_trace_start('regress_meta_limit', jsonb_build_object('k', repeat('x', 1015))))
       IS NOT NULL AS ended;
SELECT tusk_trace_end(tusk_trace_start('regress_meta_limit', jsonb_build_object('k', repeat('x', 1016))))
       IS NOT NULL AS ended;
SELECT length(jsonb_build_object('k', repeat('x', 1015))::text) AS kept_bytes;
SELECT length(metadata->>'k') AS kept_length, metadata ? 'truncated' AS truncated, metadata->'bytes' AS bytes
FROM tusk_traces WHERE operation = 'regress_meta_limit' ORDER BY span_id;

-- spans do not follow transactions: start in one, end in a later one
BEGIN;
SELECT tusk_trace_start('regress_across') AS across_span \gset
COMMIT;
BEGIN;
SELECT tusk_trace_end(:across_span) IS NOT NULL AS ended_in_later_transaction;
COMMIT;
-- a rollback neither closes an open span nor undoes an ended one
BEGIN;
SELECT tusk_trace_start('regress_rolled_back') AS rolled_back_span \gset
ROLLBACK;
BEGIN;
SELECT tusk_trace_end(:rolled_back_span) IS NOT NULL AS still_open_after_rollback;
ROLLBACK;
SELECT operation FROM tusk_traces WHERE span_id IN (:across_span, :rolled_back_span) ORDER BY span_id;

-- every ended span is one observation in <operation>_duration
SELECT name, kind, count FROM tusk_metrics
WHERE name IN ('regress_outer_duration', 'regress_inner_duration', 'regress_meta_duration',
               'regress_across_duration', 'regress_rolled_back_duration')
ORDER BY name;

-- bad input: an ERROR with a SQLSTATE
\set VERBOSITY sqlstate
SELECT tusk_trace_start(NULL);
SELECT tusk_trace_start(NULL, '{}');
SELECT tusk_trace_start('');
SELECT tusk_trace_start('has space');
SELECT tusk_trace_start('dot.name');
SELECT tusk_trace_start('9starts_with_digit');
SELECT tusk_trace_start('größe');
SELECT tusk_trace_start(repeat('n', 55));
SELECT tusk_trace_start(repeat('n', 100000));
SELECT tusk_trace_end(NULL);
SELECT tusk_trace_end(0);
SELECT tusk_trace_end(-1);
SELECT tusk_trace_end(9223372036854775807);
SELECT tusk_trace_start('regress_twice') AS twice_span \gset
SELECT tusk_trace_end(:twice_span) IS NOT NULL AS ended_once;
SELECT tusk_trace_end(:twice_span);
-- <operation>_duration must be a histogram: a counter of that name is a clash, at start
SELECT tusk_metric_increment('regress_clash_duration');
SELECT tusk_trace_start('regress_clash');
\set VERBOSITY default
-- 54 bytes is the longest operation ("<operation>_duration" is then 63 bytes)
SELECT tusk_trace_end(tusk_trace_start(repeat('n', 54))) IS NOT NULL AS longest_name_ok;
SELECT count(*) AS long_histograms FROM tusk_metrics WHERE name = repeat('n', 54) || '_duration';
-- none of the failed calls wrote a span or a histogram
SELECT count(*) FILTER (WHERE operation = 'regress_twice') AS twice_spans,
       count(*) FILTER (WHERE operation = 'regress_clash' OR operation !~ '^[a-z_]+$') AS failed_spans
FROM tusk_traces;
SELECT name, kind FROM tusk_metrics WHERE name LIKE 'regress\_clash%' ORDER BY name;

-- at most 1000 spans are open at once in a session (failed starts left none open)
CREATE TEMP TABLE open_spans AS SELECT tusk_trace_start('regress_many') AS id FROM generate_series(1, 1000);
SELECT count(DISTINCT id) AS open FROM open_spans;
\set VERBOSITY sqlstate
SELECT tusk_trace_start('regress_many');
\set VERBOSITY default
SELECT count(tusk_trace_end(id)) AS ended FROM open_spans;
SELECT tusk_trace_end(tusk_trace_start('regress_many')) IS NOT NULL AS room_again;
DROP TABLE open_spans;

-- the ring keeps the newest tusk.max_traces spans
SELECT tusk_traces_reset() > 0 AS reset;
SELECT count(*) AS spans FROM tusk_traces;
SELECT coalesce((SELECT count FROM tusk_metrics WHERE name = 'regress_ring_duration'), 0) AS ring_before \gset
DO $$
BEGIN
    FOR i IN 1 .. current_setting('tusk.max_traces')::int + 100 LOOP
        PERFORM tusk_trace_end(tusk_trace_start('regress_ring', jsonb_build_object('i', i)));
    END LOOP;
END
$$;
SELECT count(*) = current_setting('tusk.max_traces')::int AS ring_full,
       min((metadata->>'i')::int) = 101 AS oldest_dropped,
       max((metadata->>'i')::int) = current_setting('tusk.max_traces')::int + 100 AS newest_kept
FROM tusk_traces;
SELECT (metadata->>'i')::int - current_setting('tusk.max_traces')::int AS i_minus_max FROM tusk_traces LIMIT 3;
SELECT bool_and(previous > span_id) AS newest_first
FROM (SELECT span_id, lag(span_id) OVER () AS previous FROM tusk_traces) s WHERE previous IS NOT NULL;
SELECT count - :ring_before = current_setting('tusk.max_traces')::int + 100 AS every_span_in_histogram
FROM tusk_metrics WHERE name = 'regress_ring_duration';

-- privacy: a role sees its own spans (and those of roles it has the privileges
-- of), not another role's, unless it has pg_read_all_stats; as pg_stat_activity
SELECT tusk_traces_reset() > 0 AS reset;
SELECT tusk_trace_end(tusk_trace_start('regress_superuser_op', '{"secret": true}')) IS NOT NULL AS ended;
CREATE ROLE regress_tusk_traces_other;
SET ROLE regress_tusk_traces_other;
SELECT count(*) AS visible FROM tusk_traces;
SELECT tusk_trace_end(tusk_trace_start('regress_other_op')) IS NOT NULL AS ended;
SELECT operation, role, database = current_database() AS this_database FROM tusk_traces;
-- clearing the ring is privileged
\set VERBOSITY sqlstate
SELECT tusk_traces_reset();
\set VERBOSITY default
RESET ROLE;
SELECT operation, role = current_user AS superuser_span FROM tusk_traces ORDER BY span_id;
GRANT pg_read_all_stats TO regress_tusk_traces_other;
SET ROLE regress_tusk_traces_other;
SELECT operation FROM tusk_traces ORDER BY span_id;
RESET ROLE;
REVOKE pg_read_all_stats FROM regress_tusk_traces_other;
-- a member of the role sees its spans
CREATE ROLE regress_tusk_traces_member IN ROLE regress_tusk_traces_other;
SET ROLE regress_tusk_traces_member;
SELECT operation FROM tusk_traces ORDER BY span_id;
RESET ROLE;
DROP ROLE regress_tusk_traces_member;
-- the spans of a dropped role stay, shown with its oid
DROP ROLE regress_tusk_traces_other;
SELECT operation, role ~ '^[0-9]+$' AS role_shown_as_oid FROM tusk_traces ORDER BY span_id;
SELECT tusk_traces_reset() AS cleared;
SELECT count(*) AS spans FROM tusk_traces;
