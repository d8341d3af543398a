-- L2: Redis, shared by every server that points at it. make test points this
-- instance at its throwaway Redis. Entries larger than tusk.l1_max_entry_size
-- live in L2 only, which lets these tests see L2 hits from one server.
CREATE EXTENSION tusk;
SELECT tusk_cache_flush() >= 0 AS flushed;
SELECT tusk_cache_stats_reset();
SELECT setting <> '' AS l2_configured FROM pg_settings WHERE name = 'tusk.redis_host';

-- a fill writes L1 and L2; the next call is an L1 hit
SELECT tusk_cached('l2 fill', '5 min', 'SELECT 1 AS one');
SELECT tusk_cached('l2 fill', '5 min', 'SELECT 1 AS one');
SELECT tusk_cache_l3_wait() AS l3_written;
SELECT tier, hits, misses, sets, errors FROM tusk_cache_stats ORDER BY tier;

-- entries above tusk.l1_max_entry_size are served from L2
ALTER SYSTEM SET tusk.l1_max_entry_size = '1kB';
SELECT pg_reload_conf();
SELECT pg_sleep(0.3);
SHOW tusk.l1_max_entry_size;
SELECT tusk_cache_stats_reset();
SELECT length(tusk_cached('wide', '5 min', 'SELECT repeat(''w'', 2000) AS w')::text) AS len;
SELECT length(tusk_cached('wide', '5 min', 'SELECT repeat(''w'', 2000) AS w')::text) AS len;
SELECT length(tusk_cache_get('wide')::text) AS len_via_get;
SELECT tusk_cache_l3_wait() AS l3_written;
SELECT tier, hits, misses, sets, errors FROM tusk_cache_stats ORDER BY tier;

-- values of every shape come back from L2 equal to what was stored: plain JSON
-- (what jsonb prints, read by tusk's own scanner) and JSON with escapes, long
-- numbers or deep nesting (read by PostgreSQL's parser)
CREATE TEMP TABLE l2_shapes (name text, value jsonb);
INSERT INTO l2_shapes VALUES
  ('rows', (SELECT jsonb_agg(jsonb_build_object('id', g, 'name', 'name ' || g, 'price', g * 1.25,
                                                'neg', -g / 3.0, 'flag', g % 2 = 0, 'none', NULL))
            FROM generate_series(1, 30) g)),
  ('multibyte', jsonb_build_array(repeat('x', 1100), 'grüß ☃ ü', jsonb_build_object('ключ', 'значение'))),
  ('escapes', jsonb_build_array(repeat('e', 1100), E'quote " backslash \\ tab\t newline\n', E'\u0001',
                                jsonb_build_object(E'k"ey', 1, E'back\\slash', '[]'::jsonb))),
  ('empty containers', jsonb_build_array(repeat('c', 1100), '[]'::jsonb, '{}'::jsonb,
                                         jsonb_build_object('a', '[]'::jsonb, 'b', '{}'::jsonb))),
  ('numbers', jsonb_build_array(repeat('n', 1100), 0, -0.000001, 1e300::numeric, 123456789012345678901234567890.5)),
  ('long number', jsonb_build_array(repeat('9', 3000)::numeric, 1)),
  ('deep', (repeat('[', 100) || '"' || repeat('d', 1100) || '"' || repeat(']', 100))::jsonb),
  ('scalar string', to_jsonb(repeat('s', 1200))),
  ('scalar number', repeat('7', 3000)::jsonb);
SELECT tusk_cache_stats_reset();
SELECT name, tusk_cache_set('shape ' || name, value, '5 min') AS stored FROM l2_shapes ORDER BY name;
SELECT name, tusk_cache_get('shape ' || name) = value AS same_jsonb,
       tusk_cache_get('shape ' || name)::text = value::text AS same_text
FROM l2_shapes ORDER BY name;
SELECT tier, hits, errors FROM tusk_cache_stats WHERE tier IN ('l1', 'l2') ORDER BY tier;

-- the fingerprint rule holds in L2: another query under the key is a miss that replaces it
SELECT tusk_cached('wide', '5 min', 'SELECT repeat(''v'', 2000) AS v') -> 0 ->> 'v' = repeat('v', 2000) AS replaced;
SELECT tusk_cache_get('wide') -> 0 ->> 'v' = repeat('v', 2000) AS stored_replacement;

-- another role never reads this role's L2 entries, and has its own
CREATE ROLE regress_tusk_l2_other;
SET ROLE regress_tusk_l2_other;
SELECT tusk_cache_get('wide') IS NULL AS other_role_sees_nothing;
SELECT tusk_cache_set('wide', to_jsonb(repeat('o', 2000)), '5 min') AS other_role_stored;
SELECT tusk_cache_get('wide') = to_jsonb(repeat('o', 2000)) AS other_role_own_value;
SELECT tusk_cache_invalidate('') AS other_role_invalidated;
RESET ROLE;
SELECT tusk_cache_get('wide') -> 0 ->> 'v' = repeat('v', 2000) AS own_value_intact;

-- a writing transaction publishes to L2 at commit, never after a rollback (a value that read
-- what the transaction wrote is retired by that commit; one that did not is served after it)
CREATE TABLE l2_items (id int);
BEGIN;
INSERT INTO l2_items SELECT generate_series(1, 300);
SELECT length(tusk_cached('txn', '5 min', 'SELECT string_agg(id::text, '','') AS ids FROM l2_items')::text) > 1000 AS wide_result;
ROLLBACK;
SELECT tusk_cache_get('txn') IS NULL AS nothing_after_rollback;
BEGIN;
INSERT INTO l2_items SELECT generate_series(1, 300);
SELECT length(tusk_cached('txn', '5 min', 'SELECT string_agg(id::text, '','') AS ids FROM l2_items')::text) > 1000 AS wide_result;
SELECT length(tusk_cached('txn other', '5 min', 'SELECT string_agg(g::text, '','') AS ids FROM generate_series(1, 300) g')::text) > 1000 AS wide_result;
COMMIT;
SELECT tusk_cache_get('txn') IS NULL AS retired_by_its_commit;
SELECT length(tusk_cache_get('txn other')::text) > 1000 AS in_l2_after_commit;
SELECT tusk_cache_delete('txn other');

-- delete, invalidate and flush reach L2
SELECT tusk_cache_delete('txn') AS deleted, tusk_cache_get('txn') IS NULL AS gone;
SELECT tusk_cache_set('l2 user:1', to_jsonb(repeat('1', 2000)), '5 min') AS s1,
       tusk_cache_set('l2 user:2', to_jsonb(repeat('2', 2000)), '5 min') AS s2;
SELECT tusk_cache_invalidate('l2 user:') AS invalidated;
SELECT tusk_cache_get('l2 user:1') IS NULL AS u1_gone, tusk_cache_get('l2 user:2') IS NULL AS u2_gone;
-- glob characters in a prefix are literal
SELECT tusk_cache_invalidate('w*') AS nothing_matched;
SELECT tusk_cache_get('wide') IS NOT NULL AS wide_kept;

-- an L2 hit is copied into L1 with its remaining TTL, not a fresh one
SELECT tusk_cache_set('promote', to_jsonb(repeat('p', 2000)), '3 seconds') AS stored_in_l2;
ALTER SYSTEM RESET tusk.l1_max_entry_size;
SELECT pg_reload_conf();
SELECT pg_sleep(1.5);
SHOW tusk.l1_max_entry_size;
SELECT tusk_cache_stats_reset();
SELECT tusk_cache_get('promote') IS NOT NULL AS from_l2;
SELECT tusk_cache_get('promote') IS NOT NULL AS from_l1;
SELECT tier, hits, misses FROM tusk_cache_stats ORDER BY tier;
SELECT pg_sleep(1.7);
SELECT tusk_cache_get('promote') IS NULL AS gone_when_its_remaining_ttl_ended;

-- an empty prefix is refused: tusk_cache_flush() would remove every key of the Redis database
ALTER SYSTEM SET tusk.redis_prefix = '';

-- flush empties L2 too
SELECT tusk_cache_set('flush me', '1', '5 min');
SELECT tusk_cache_flush() > 0 AS flushed;
SELECT tusk_cache_get('flush me') IS NULL AS gone;

DROP TABLE l2_items;
DROP ROLE regress_tusk_l2_other;
