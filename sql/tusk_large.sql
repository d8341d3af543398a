-- Large keys and values: results above tusk.l1_max_entry_size (1MB here) are
-- served but not kept in L1 (L3 keeps them); a full L1 evicts instead of failing.
SELECT tusk_cache_flush() >= 0 AS flushed;
SELECT tusk_cache_stats_reset();
-- L1 alone first
SET tusk.l3_enabled = off;

-- a result of tens of megabytes: correct, served twice, never stored in L1
SELECT length(tusk_cached('big', '5 min',
  'SELECT g AS id, repeat(''x'', 1000) AS payload FROM generate_series(1, 30000) g')::text) AS json_length;
SELECT jsonb_array_length(tusk_cached('big', '5 min',
  'SELECT g AS id, repeat(''x'', 1000) AS payload FROM generate_series(1, 30000) g')) AS rows;
SELECT hits, misses, sets, entries FROM tusk_cache_stats WHERE tier = 'l1';
SELECT tusk_cache_set('big value', (SELECT jsonb_agg(repeat('y', 1000)) FROM generate_series(1, 2000)), '5 min') AS stored;
SELECT tusk_cache_get('big value') IS NULL AS not_in_l1;
-- a value that is not kept also removes the older value of its key
SELECT tusk_cache_set('grows', '"small"', '5 min') AS small_stored;
SELECT tusk_cache_set('grows', (SELECT jsonb_agg(repeat('y', 1000)) FROM generate_series(1, 2000)), '5 min') AS big_stored;
SELECT tusk_cache_get('grows') IS NULL AS no_stale_value;
SELECT tusk_cached('grows', '5 min', 'SELECT 1 AS small');
SELECT length(tusk_cached('grows', '5 min', 'SELECT repeat(''z'', 2000000) AS big')::text) AS big_result_length;
SELECT tusk_cache_get('grows') IS NULL AS no_stale_result;
-- the same in a transaction that has written: not kept for its commit either
BEGIN;
CREATE TEMP TABLE scratch (a int);
INSERT INTO scratch VALUES (1);
SELECT tusk_cache_set('big in txn', (SELECT jsonb_agg(repeat('y', 1000)) FROM generate_series(1, 2000)), '5 min') AS stored;
COMMIT;
SELECT tusk_cache_get('big in txn') IS NULL AS not_in_l1;
SELECT count(*) AS l3_rows_while_off FROM tusk_cache_l3;

-- with L3 on, what L1 cannot keep is kept, and served, by L3
RESET tusk.l3_enabled;
SELECT tusk_cache_stats_reset();
SELECT tusk_cache_set('big value', (SELECT jsonb_agg(repeat('y', 1000)) FROM generate_series(1, 2000)), '5 min') AS stored;
SELECT jsonb_array_length(tusk_cache_get('big value')) AS served_from_l3;
SELECT length(tusk_cached('big', '5 min',
  'SELECT g AS id, repeat(''x'', 1000) AS payload FROM generate_series(1, 30000) g')::text) AS json_length;
SELECT jsonb_array_length(tusk_cached('big', '5 min',
  'SELECT g AS id, repeat(''x'', 1000) AS payload FROM generate_series(1, 30000) g')) AS rows;
SELECT tusk_cache_l3_wait() AS l3_written;
SELECT tier, hits, misses, sets FROM tusk_cache_stats WHERE tier IN ('l1', 'l3') ORDER BY tier;
-- a transaction that has written: L3 keeps the value when it commits
BEGIN;
INSERT INTO scratch VALUES (2);
SELECT tusk_cache_set('big in txn', (SELECT jsonb_agg(repeat('y', 1000)) FROM generate_series(1, 2000)), '5 min') AS stored;
SELECT count(*) AS l3_rows_before_commit FROM tusk_cache_l3 WHERE key = 'big in txn';
COMMIT;
SELECT jsonb_array_length(tusk_cache_get('big in txn')) AS served_after_commit;

-- just under the limit is kept
SELECT tusk_cache_set('medium', (SELECT jsonb_agg(repeat('y', 1000)) FROM generate_series(1, 900)), '5 min') AS stored;
SELECT jsonb_array_length(tusk_cache_get('medium')) AS medium_elements;

-- a key of the largest accepted size (2048 bytes, incompressible) works like any other, in every tier
SELECT tusk_cached((SELECT string_agg(md5(g::text), '') FROM generate_series(1, 64) g), '5 min', 'SELECT 1 AS one');
SELECT tusk_cached((SELECT string_agg(md5(g::text), '') FROM generate_series(1, 64) g), '5 min', 'SELECT 1 AS one');
SELECT tusk_cache_get(repeat('k', 2047)) IS NULL AS other_key_misses;
SELECT tusk_cache_l3_wait() AS l3_written;
SELECT count(*) AS l3_row_of_longest_key FROM tusk_cache_l3 WHERE octet_length(key) = 2048;

-- L1 alone again: 100 MB of churn is L1's business
SET tusk.l3_enabled = off;

-- fill L1 (32MB) several times over with 200 kB entries: old ones are evicted,
-- recent ones are served, nothing fails and L1 never exceeds its capacity
SELECT tusk_cache_stats_reset();
SELECT count(*) FILTER (WHERE tusk_cache_set('fill ' || g, to_jsonb(repeat(chr(65 + g % 26), 200000)), '5 min')) AS stored
FROM generate_series(1, 500) g;
SELECT evictions > 0 AS evicted, entries < 500 AS not_all_kept, bytes <= capacity_bytes AS within_capacity
FROM tusk_cache_stats WHERE tier = 'l1';
SELECT tusk_cache_get('fill 500') = to_jsonb(repeat(chr(65 + 500 % 26), 200000)) AS newest_intact;
SELECT tusk_cache_flush() > 0 AS flushed;
SELECT entries, bytes FROM tusk_cache_stats WHERE tier = 'l1';
RESET tusk.l3_enabled;
