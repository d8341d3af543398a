-- tusk_cached: rows as a jsonb array, hits served from L1, counters live.
SELECT tusk_cache_flush() >= 0 AS flushed;
SELECT tusk_cache_stats_reset();

CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric, placed date);
INSERT INTO orders
SELECT g, 'customer ' || (g % 7), round((g * 37 % 1000) / 10.0, 1), date '2026-01-01' + g % 30
FROM generate_series(1, 2000) g;

-- first call: a miss that runs the query; the rows keep the query's order
SELECT tusk_cached('top', '5 min',
  'SELECT customer, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3');
SELECT hits, misses, sets, entries FROM tusk_cache_stats WHERE tier = 'l1';

-- second call: a hit, the same value
SELECT tusk_cached('top', '5 min',
  'SELECT customer, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3');
SELECT hits, misses, sets, entries FROM tusk_cache_stats WHERE tier = 'l1';

-- a hit is served from the cache until the table changes: the write retires the entry
UPDATE orders SET amount = amount + 1000 WHERE customer = 'customer 1';
SELECT tusk_cached('top', '5 min',
  'SELECT customer, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3');
SELECT tusk_cache_delete('top') AS deleted, tusk_cache_delete('top') AS deleted_again;
SELECT tusk_cached('top', '5 min',
  'SELECT customer, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3');

-- the same key with another query is a miss that replaces the entry
SELECT tusk_cache_stats_reset();
SELECT tusk_cached('top', '5 min', 'SELECT count(*) AS n FROM orders');
SELECT tusk_cached('top', '5 min', 'SELECT count(*) AS n FROM orders');
SELECT hits, misses, sets, entries FROM tusk_cache_stats WHERE tier = 'l1';

-- params: a JSON array bound to $1..$n, each typed as the query needs
SELECT tusk_cached('by_customer', '5 min',
  'SELECT id, amount, placed FROM orders WHERE customer = $1 AND amount > $2 AND placed >= $3 ORDER BY id LIMIT 2',
  '["customer 3", 90.5, "2026-01-20"]');
-- other params are another entry's worth: a miss, not the cached rows
SELECT tusk_cached('by_customer', '5 min',
  'SELECT id, amount, placed FROM orders WHERE customer = $1 AND amount > $2 AND placed >= $3 ORDER BY id LIMIT 2',
  '["customer 4", 90.5, "2026-01-20"]');
SELECT tusk_cached('types', '5 min',
  'SELECT $1::int + 1 AS i, $2::bool AS b, $3::jsonb -> ''k'' AS j, $4::text IS NULL AS n, $5::int[] AS a',
  '[41, true, {"k": [1, 2]}, null, "{1,2,3}"]');
-- a $n whose type nothing decides is text
SELECT tusk_cached('untyped', '5 min', 'SELECT $1 AS v', '["as text"]');

-- every value renders as to_jsonb renders it; an empty result is []
SELECT tusk_cached('render', '5 min',
  $q$SELECT 1::int AS i, 2.50::numeric AS n, 'x'::text AS t, NULL::int AS z, true AS b,
            '2026-11-23 10:00:00+00'::timestamptz AS ts, ARRAY[1,2] AS arr, '{"a":1}'::jsonb AS doc$q$);
SELECT tusk_cached('empty', '5 min', 'SELECT * FROM orders WHERE false');
SELECT tusk_cached('values', '5 min', 'VALUES (1, ''a''), (2, ''b'')');
SELECT tusk_cached('table', '5 min', 'TABLE orders ORDER BY id LIMIT 1');
SELECT tusk_cached('with', '5 min', 'WITH t AS (SELECT 2 AS x) SELECT x * 21 AS answer FROM t;');
SELECT tusk_cached('comment', '5 min', 'SELECT 1 AS one -- trailing comment');
-- a column may be called anything, even what tusk calls its row
SELECT tusk_cached('row name', '5 min', 'SELECT 42 AS tusk_row, 1 AS b');

-- search_path is part of what produced a value
CREATE SCHEMA other;
CREATE TABLE other.orders (id int);
INSERT INTO other.orders VALUES (1);
SELECT tusk_cached('path', '5 min', 'SELECT count(*) AS n FROM orders');
SET search_path = other, public;
SELECT tusk_cached('path', '5 min', 'SELECT count(*) AS n FROM orders');
RESET search_path;

-- so are the settings that change how values render: TimeZone, DateStyle, IntervalStyle
SET TimeZone = 'UTC';
SELECT tusk_cached('zone', '5 min', $q$SELECT '2026-11-23 10:00:00+00'::timestamptz AS ts$q$);
SET TimeZone = 'Asia/Tokyo';
SELECT tusk_cached('zone', '5 min', $q$SELECT '2026-11-23 10:00:00+00'::timestamptz AS ts$q$);
SET IntervalStyle = 'iso_8601';
SELECT tusk_cached('style', '5 min', $q$SELECT interval '90 minutes' AS i$q$);
RESET IntervalStyle;
SELECT tusk_cached('style', '5 min', $q$SELECT interval '90 minutes' AS i$q$);
RESET TimeZone;

-- TTL: an entry lives for ttl, then the query runs again
SELECT tusk_cache_stats_reset();
SELECT tusk_cached('short', '2 seconds', 'SELECT count(*) AS n FROM orders');
-- (written with invalidation off, as a bulk load may be: only the TTL ends the entry)
SET tusk.invalidation = off;
INSERT INTO orders VALUES (5000, 'late', 1, '2026-02-01');
RESET tusk.invalidation;
SELECT tusk_cached('short', '2 seconds', 'SELECT count(*) AS n FROM orders');
SELECT pg_sleep(2.1);
SELECT tusk_cached('short', '2 seconds', 'SELECT count(*) AS n FROM orders');
SELECT hits, misses, sets, expirations FROM tusk_cache_stats WHERE tier = 'l1';
-- TuskLang's duration spellings are intervals
SELECT tusk_cached('spelled', '30s', 'SELECT 1 AS one'), tusk_cached('spelled2', '5m', 'SELECT 1 AS one'),
       tusk_cached('spelled3', '2h', 'SELECT 1 AS one'), tusk_cached('spelled4', '1d', 'SELECT 1 AS one');

-- get / set / delete
SELECT tusk_cache_set('greeting', '{"hello": "world"}', '1 hour');
SELECT tusk_cache_get('greeting');
SELECT tusk_cache_get('no such key') IS NULL AS missing;
SELECT tusk_cache_set('greeting', '[1, 2, 3]', '1 hour');
SELECT tusk_cache_get('greeting');
SELECT tusk_cache_set('json null', 'null', '1 hour'), tusk_cache_get('json null');
-- a value set by hand has no query behind it: tusk_cached replaces it
SELECT tusk_cached('greeting', '1 hour', 'SELECT 42 AS answer');
SELECT tusk_cache_get('greeting');
SELECT tusk_cache_delete('greeting'), tusk_cache_get('greeting') IS NULL AS gone;
SELECT tusk_cache_set('Case', '1', '1 hour'), tusk_cache_get('case') IS NULL AS keys_are_case_sensitive;

-- invalidate by prefix: only the current role's keys that start with it
SELECT tusk_cache_set('user:1', '1', '1 hour'), tusk_cache_set('user:2', '2', '1 hour'),
       tusk_cache_set('users', '3', '1 hour');
SELECT tusk_cache_invalidate('user:');
SELECT tusk_cache_get('user:1') IS NULL AS u1_gone, tusk_cache_get('users') AS users_kept;

-- flush empties L1
SELECT tusk_cache_flush() > 0 AS flushed_some;
SELECT entries, bytes FROM tusk_cache_stats WHERE tier = 'l1';

DROP SCHEMA other CASCADE;
