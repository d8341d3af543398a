-- tusk_query: one statement (reads and writes) through this backend's plan
-- cache; tusk_query_rows and tusk_cached_rows return rows one at a time.
SET TimeZone = 'UTC';
SELECT tusk_prepared_reset() >= 0 AS reset;
CREATE TABLE q_items (id int PRIMARY KEY, name text, price numeric(10,2), added date, seen timestamptz,
                      active bool, tags jsonb, big bigint);
INSERT INTO q_items VALUES
    (1, 'apple', 1.25, '2026-01-02', '2026-01-02 03:04:05+00', true, '{"a": 1}', 9000000000),
    (2, 'pear', 2.50, '2026-02-03', '2026-02-03 04:05:06+00', false, '[1, 2]', -1),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- rows as a JSON array of objects, rendered as tusk_cached renders them
SELECT tusk_query('SELECT * FROM q_items ORDER BY id');
SELECT tusk_query('SELECT * FROM q_items ORDER BY id;')
     = tusk_cached('q_all', '1 min', 'SELECT * FROM q_items ORDER BY id') AS same_as_tusk_cached;
SELECT tusk_query('SELECT 1 AS one WHERE false') AS no_rows;
SELECT tusk_query('VALUES (1, ''a''), (2, ''b'')') AS values_list;
SELECT tusk_query('TABLE q_items') = tusk_query('SELECT * FROM q_items') AS table_statement;

-- parameters of many types, each read as the type the statement needs
SELECT tusk_query('SELECT id FROM q_items WHERE id = $1', '[2]') AS int;
SELECT tusk_query('SELECT id FROM q_items WHERE big = $1', '[9000000000]') AS bigint;
SELECT tusk_query('SELECT id FROM q_items WHERE price = $1', '[1.25]') AS numeric,
       tusk_query('SELECT id FROM q_items WHERE price = $1', '["2.50"]') AS numeric_from_text;
SELECT tusk_query('SELECT id FROM q_items WHERE name = $1', '["pear"]') AS text;
SELECT tusk_query('SELECT id FROM q_items WHERE active = $1', '[false]') AS bool;
SELECT tusk_query('SELECT id FROM q_items WHERE added = $1', '["2026-01-02"]') AS date;
SELECT tusk_query('SELECT id FROM q_items WHERE seen = $1', '["2026-02-03 06:05:06+02"]') AS timestamptz;
SELECT tusk_query('SELECT id FROM q_items WHERE tags @> $1', '[{"a": 1}]') AS jsonb_object,
       tusk_query('SELECT id FROM q_items WHERE tags = $1', '[[1, 2]]') AS jsonb_array;
SELECT tusk_query('SELECT id FROM q_items WHERE name IS NOT DISTINCT FROM $1', '[null]') AS null;
SELECT tusk_query('SELECT id FROM q_items WHERE id > $1 AND name <> $2 ORDER BY id', '[0, "apple"]') AS two;
SELECT tusk_query('SELECT $1::int + 1 AS n, $1::int * 2 AS twice, $2 AS untyped, $3::int[] AS arr',
                  '[41, "hello", "{1,2,3}"]') AS in_select_list;

-- statements that write return their RETURNING rows, or []
SELECT tusk_query('INSERT INTO q_items (id, name) VALUES ($1, $2) RETURNING id, name', '[10, "kiwi"]');
SELECT tusk_query('UPDATE q_items SET name = upper(name) WHERE id = $1', '[10]') AS update;
SELECT tusk_query('DELETE FROM q_items WHERE id = $1 RETURNING name', '[10]') AS delete;
SELECT tusk_query('WITH gone AS (DELETE FROM q_items WHERE id = $1 RETURNING id) SELECT count(*) FROM gone',
                  '[999]') AS modifying_with;
SELECT tusk_query('MERGE INTO q_items t USING (SELECT 11 AS id) s ON t.id = s.id
                   WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, ''merged'')') AS merge;
SELECT id, name FROM q_items WHERE id = 11;
-- in the caller's transaction: rolled back with it
BEGIN;
SELECT tusk_query('INSERT INTO q_items (id) VALUES (20) RETURNING id');
ROLLBACK;
SELECT count(*) AS rolled_back FROM q_items WHERE id = 20;
BEGIN;
SAVEPOINT s;
SELECT tusk_query('DELETE FROM q_items RETURNING id') <> '[]' AS deleted_all;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT count(*) AS still_there FROM q_items;

-- the plan cache: one statement per text, its calls counted, its plan reused
SELECT tusk_prepared_reset() > 0 AS had_statements;
SELECT tusk_query('SELECT name FROM q_items WHERE id = $1', jsonb_build_array(g)) FROM generate_series(1, 10) g;
SELECT sql, param_types, calls, custom_plans, generic_plans, prepared_at <= last_used_at AS times, streamed
FROM tusk_prepared;
-- a schema change is PostgreSQL's plan invalidation's business: no stale plan, same entry
SELECT tusk_query('SELECT * FROM q_items WHERE id = $1', '[1]');
ALTER TABLE q_items ADD COLUMN color text DEFAULT 'red';
SELECT tusk_query('SELECT * FROM q_items WHERE id = $1', '[1]');
ALTER TABLE q_items DROP COLUMN tags;
ALTER TABLE q_items ALTER COLUMN big TYPE text;
SELECT tusk_query('SELECT * FROM q_items WHERE id = $1', '[1]');
SELECT calls FROM tusk_prepared WHERE sql = 'SELECT * FROM q_items WHERE id = $1';
-- so is a table dropped and created again, and a changed search_path
CREATE TABLE q_again (v int);
INSERT INTO q_again VALUES (1);
SELECT tusk_query('SELECT v FROM q_again');
DROP TABLE q_again;
SELECT tusk_query('SELECT v FROM q_again');
CREATE TABLE q_again (v text);
INSERT INTO q_again VALUES ('one');
SELECT tusk_query('SELECT v FROM q_again');
CREATE SCHEMA q_s1 CREATE TABLE q_where (v text);
CREATE SCHEMA q_s2 CREATE TABLE q_where (v text);
INSERT INTO q_s1.q_where VALUES ('in s1');
INSERT INTO q_s2.q_where VALUES ('in s2');
SET search_path = q_s1, public;
SELECT tusk_query('SELECT v FROM q_where');
SET search_path = q_s2, public;
SELECT tusk_query('SELECT v FROM q_where');
RESET search_path;
-- bounded by tusk.plan_cache_size, least recently used first out
SET tusk.plan_cache_size = 2;
SELECT tusk_prepared_reset() > 0 AS reset;
SELECT tusk_query('SELECT 1 AS a'), tusk_query('SELECT 2 AS b');
SELECT tusk_query('SELECT 1 AS a');
SELECT tusk_query('SELECT 3 AS c');
SELECT sql, calls FROM tusk_prepared;
SET tusk.plan_cache_size = 0;
SELECT tusk_query('SELECT 4 AS d');
SELECT count(*) AS nothing_kept FROM tusk_prepared;
SET tusk.plan_cache_size = 1;
-- a statement evicted (or reset) while it runs is freed only once it is done
SELECT tusk_query('SELECT tusk_query(''SELECT 5 AS e'') AS inner');
SELECT tusk_query('SELECT tusk_prepared_reset() AS forgotten');
SELECT tusk_query('SELECT tusk_prepared_reset() AS forgotten');
RESET tusk.plan_cache_size;
SELECT tusk_query('SELECT tusk_query(''SELECT 6 AS f'') AS inner');
SELECT sql, calls FROM tusk_prepared ORDER BY sql;

-- a statement serves only the role and the search_path it was prepared in: its $n
-- types were resolved there (elsewhere they could name other types, with other
-- input functions); anywhere else it is prepared again
CREATE SCHEMA q_t1;
CREATE DOMAIN q_t1.num AS int CHECK (VALUE > 0);
CREATE SCHEMA q_t2;
CREATE DOMAIN q_t2.num AS text CHECK (VALUE <> 'x');
SET search_path = q_t1, public;
SELECT tusk_query('SELECT $1::num AS v', '["5"]');
SET search_path = q_t2, public;
SELECT tusk_query('SELECT $1::num AS v', '["5"]');
SELECT tusk_query('SELECT $1::num AS v', '["x"]');
RESET search_path;
SELECT sql, calls FROM tusk_prepared WHERE sql LIKE '%::num%';
DROP SCHEMA q_t1, q_t2 CASCADE;
-- a statement forgotten while its params are read (a domain's CHECK that resets)
CREATE FUNCTION q_reset_ok(int) RETURNS bool LANGUAGE sql AS 'SELECT tusk_prepared_reset() >= 0';
CREATE DOMAIN q_resetting_int AS int CHECK (q_reset_ok(VALUE));
SELECT tusk_query('SELECT $1::q_resetting_int AS v', '[1]');
SELECT tusk_query('SELECT $1::q_resetting_int AS v', '[1]');
SELECT tusk_query_rows('SELECT $1::q_resetting_int AS v', '[2]');
DROP DOMAIN q_resetting_int;
DROP FUNCTION q_reset_ok(int);
-- a statement long enough that the parser needs much memory before its $1
SELECT tusk_query(format('SELECT 1 AS one WHERE 1 IN (%s) AND $1::int = 1', string_agg(g::text, ',')), '[1]')
FROM generate_series(1, 50000) g;

-- privileges are checked at every execution, cached or not
CREATE ROLE regress_tusk_query_nobody;
GRANT USAGE ON SCHEMA public TO regress_tusk_query_nobody;
SELECT tusk_query('SELECT name FROM q_items WHERE id = $1', '[1]');
SELECT tusk_query('SELECT 2 AS secret');
SET ROLE regress_tusk_query_nobody;
SELECT tusk_query('SELECT name FROM q_items WHERE id = $1', '[1]');
SELECT tusk_query('INSERT INTO q_items (id) VALUES (50)');
-- and what other roles ran in this session is not shown
SELECT count(*) AS others_statements FROM tusk_prepared WHERE sql LIKE '%secret%';
SELECT tusk_query('SELECT 1 AS mine');
SELECT sql, calls FROM tusk_prepared;
RESET ROLE;
SELECT sql, calls FROM tusk_prepared WHERE sql LIKE '%FROM q_items WHERE id = $1' ORDER BY 1;

-- injection through params is only ever a value
SELECT tusk_query('SELECT id FROM q_items WHERE name = $1', '["x''; DROP TABLE q_items; --"]') AS text_param;
SELECT tusk_query('SELECT id FROM q_items WHERE id = $1', '["1; DROP TABLE q_items"]');
SELECT count(*) AS table_intact FROM q_items;

-- built-in metrics: database_query_count, database_query_time, tusk_query_time
CREATE TEMP TABLE q_before AS
SELECT name, count FROM tusk_metrics WHERE name IN ('database_query_count', 'database_query_time', 'tusk_query_time');
SELECT count(tusk_query('SELECT $1::int AS x', jsonb_build_array(g))) FROM generate_series(1, 5) g;
SELECT m.name, m.count - b.count AS recorded FROM tusk_metrics m JOIN q_before b USING (name) ORDER BY 1;

-- bad input
\set VERBOSITY sqlstate
SELECT tusk_query(NULL);
SELECT tusk_query('');
SELECT tusk_query('SELECT 1; SELECT 2');
SELECT tusk_query('SELEC 1');
SELECT tusk_query('SELECT * FROM q_missing');
SELECT tusk_query('SELECT $1::int', '{"a": 1}');
SELECT tusk_query('SELECT $1::int', '5');
SELECT tusk_query('SELECT $1::int', '[1, 2]');
SELECT tusk_query('SELECT $1::int');
SELECT tusk_query('SELECT $1::int', '[{"a": 1}]');
SELECT tusk_query('SELECT 1 / $1', '[0]');
CREATE DOMAIN q_required AS int NOT NULL;
SELECT tusk_query('SELECT $1::q_required AS v', '[null]');
DROP DOMAIN q_required;
\set VERBOSITY default
SELECT tusk_query('CREATE TABLE q_no (a int)');
SELECT tusk_query('SELECT 1 AS a INTO q_no');
SELECT tusk_query('COMMIT');
SELECT tusk_query('SELECT id FROM q_items WHERE id = $1', '["one"]');
BEGIN READ ONLY;
SELECT tusk_query('INSERT INTO q_items (id) VALUES (60)');
ROLLBACK;
-- tusk_cached stays read-only, even through tusk_query
SELECT tusk_cached('q_write', '1 min', 'SELECT tusk_query(''INSERT INTO q_items (id) VALUES (61)'')');
SELECT count(*) AS no_writes FROM q_items WHERE id IN (60, 61);

-- tusk_query_rows: the same rows, one at a time
SELECT tusk_query_rows('SELECT id, name FROM q_items WHERE id <= $1 ORDER BY id', '[2]');
SELECT tusk_query('SELECT id, name FROM q_items WHERE id <= $1 ORDER BY id', '[2]') AS in_one_value;
-- tusk_query_rows keeps a plan of its own, made for reading the first rows fast
SELECT sql, streamed FROM tusk_prepared WHERE sql LIKE 'SELECT id, name FROM q_items WHERE id <= $1%' ORDER BY 2;
SELECT r ->> 'id' AS id FROM tusk_query_rows('SELECT id FROM q_items ORDER BY id') AS r;
SELECT count(*), min((r ->> 'g')::int), max((r ->> 'g')::int)
FROM tusk_query_rows('SELECT g FROM generate_series(1, 100000) g') AS r;
SELECT tusk_query_rows('INSERT INTO q_items (id) VALUES (40), (41) RETURNING id');
SELECT tusk_query_rows('DELETE FROM q_items WHERE id >= 40');
SELECT count(*) AS deleted FROM q_items WHERE id >= 40;
SELECT count(*) AS none FROM tusk_query_rows('SELECT 1 WHERE false');
-- its statement forgotten while its cursor is read: the cursor keeps its plan
SELECT tusk_query_rows('SELECT tusk_prepared_reset() >= 0 AS reset, g FROM generate_series(1, 3) g');
SELECT tusk_query_rows('SELECT tusk_prepared_reset() >= 0 AS reset, g FROM generate_series(1, 3) g');
-- the first rows reach the caller before the statement ends: three rows of an endless one
SET statement_timeout = '60s';
BEGIN;
SELECT tusk_query_rows('SELECT generate_series(1, 1000000000000) AS n') LIMIT 3;
SELECT tusk_query_rows('SELECT generate_series(1, 1000000000000) AS n') LIMIT 2;
SELECT count(*) AS cursors_left_open FROM pg_cursors;
COMMIT;
-- read through a WITH HOLD cursor, which outlives the transaction: the rows are kept, not streamed
BEGIN;
DECLARE q_held CURSOR WITH HOLD FOR SELECT tusk_query_rows('SELECT g FROM generate_series(1, 5) g');
FETCH 2 FROM q_held;
COMMIT;
FETCH 3 FROM q_held;
CLOSE q_held;
-- its cursor rolled back with a savepoint under a reader that goes on: a clear error
BEGIN;
DECLARE q_plain CURSOR FOR SELECT tusk_query_rows('SELECT g FROM generate_series(1, 100) g');
SAVEPOINT s;
FETCH 1 FROM q_plain;
ROLLBACK TO SAVEPOINT s;
FETCH 100 FROM q_plain;
ROLLBACK;

RESET statement_timeout;
SELECT tusk_query_rows('SELECT $1::int AS bad', '["x"]');
SELECT tusk_query_rows('VACUUM');

-- tusk_cached_rows: tusk_cached, one row at a time
SELECT tusk_cached_rows('q_rows', '1 min', 'SELECT id, name FROM q_items WHERE id <= $1 ORDER BY id', '[2]');
UPDATE q_items SET name = 'changed' WHERE id = 1;  -- retires the entry: the rows are read again
SELECT tusk_cached_rows('q_rows', '1 min', 'SELECT id, name FROM q_items WHERE id <= $1 ORDER BY id', '[2]');
SELECT tusk_cached_rows('q_rows', '1 min', 'SELECT id, name FROM q_items WHERE id <= $1 ORDER BY id', '[2]') LIMIT 1;
SELECT count(*) AS none FROM tusk_cached_rows('q_empty', '1 min', 'SELECT 1 WHERE false');
SELECT tusk_cached_rows('q_bad', '1 min', 'DELETE FROM q_items');
-- a miss streams too: three rows of an endless query, and nothing stored (the value is incomplete)
SET statement_timeout = '60s';
SELECT tusk_cached_rows('q_endless', '1 min', 'SELECT generate_series(1, 1000000000000) AS n') LIMIT 3;
RESET statement_timeout;
SELECT tusk_cache_get('q_endless') IS NULL AS nothing_stored;
-- read to the end, the value is stored as tusk_cached stores it, and later calls are hits
SELECT count(*) FROM tusk_cached_rows('q_many', '1 min', 'SELECT g FROM generate_series(1, 5000) g');
SELECT jsonb_array_length(tusk_cache_get('q_many')) AS stored_rows,
       tusk_cache_get('q_many') = tusk_query('SELECT g FROM generate_series(1, 5000) g') AS same_value;
-- the query stays read-only while its rows are fetched, call after call
CREATE FUNCTION q_writer(int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF $1 > 20 THEN INSERT INTO q_items (id) VALUES (1000 + $1); END IF;
    RETURN $1;
END $$;
SELECT tusk_cached_rows('q_writes_late', '1 min', 'SELECT q_writer(g) AS v FROM generate_series(1, 100) g');
SELECT count(*) AS no_writes FROM q_items WHERE id > 1000;
DROP FUNCTION q_writer(int);
-- under a WITH HOLD cursor a miss is built whole first
BEGIN;
DECLARE q_held_cached CURSOR WITH HOLD FOR SELECT tusk_cached_rows('q_held', '1 min', 'SELECT g FROM generate_series(1, 4) g');
FETCH 1 FROM q_held_cached;
COMMIT;
FETCH 3 FROM q_held_cached;
CLOSE q_held_cached;

DROP TABLE q_items, q_again, q_before;
DROP SCHEMA q_s1, q_s2 CASCADE;
REVOKE USAGE ON SCHEMA public FROM regress_tusk_query_nobody;
DROP ROLE regress_tusk_query_nobody;
SELECT tusk_cache_delete(k) FROM unnest(ARRAY['q_all', 'q_rows', 'q_empty', 'q_many', 'q_held']) k;
