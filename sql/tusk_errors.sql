-- Bad input gets an ERROR with a fitting SQLSTATE, and leaves the session and
-- the server healthy. \set VERBOSITY sqlstate shows only the SQLSTATE, then
-- the default verbosity shows the messages a user reads.
SELECT pg_backend_pid() AS pid0, pg_postmaster_start_time() AS start0 \gset
SELECT tusk_cache_flush() >= 0 AS flushed;

\set VERBOSITY sqlstate
-- NULLs (22004)
SELECT tusk_cached(NULL, '1 min', 'SELECT 1');
SELECT tusk_cached('k', NULL, 'SELECT 1');
SELECT tusk_cached('k', '1 min', NULL);
SELECT tusk_cache_get(NULL);
SELECT tusk_cache_set(NULL, '1', '1 min');
SELECT tusk_cache_set('k', NULL, '1 min');
SELECT tusk_cache_set('k', '1', NULL);
SELECT tusk_cache_delete(NULL);
SELECT tusk_cache_invalidate(NULL);
-- TTL must be greater than zero (22023)
SELECT tusk_cached('k', '0', 'SELECT 1');
SELECT tusk_cached('k', '-5 min', 'SELECT 1');
SELECT tusk_cached('k', '1 day -24 hours', 'SELECT 1');
SELECT tusk_cache_set('k', '1', '-1 second');
-- bad keys: empty (22023), 100 kB (54000)
SELECT tusk_cached('', '1 min', 'SELECT 1');
SELECT tusk_cached(repeat('k', 100 * 1024), '1 min', 'SELECT 1');
SELECT tusk_cache_get(repeat('k', 100 * 1024));
-- malformed SQL (42601), unknown table (42P01), runtime errors (22012)
SELECT tusk_cached('k', '1 min', 'SELEC 1');
SELECT tusk_cached('k', '1 min', 'SELECT * FROM no_such_table');
SELECT tusk_cached('k', '1 min', 'SELECT 1/0');
SELECT tusk_cached('k', '1 min', '');
-- statements that write (25006) or are not queries (0A000)
CREATE TABLE t (a int);
SELECT tusk_cached('k', '1 min', 'INSERT INTO t VALUES (1)');
SELECT tusk_cached('k', '1 min', 'UPDATE t SET a = 2');
SELECT tusk_cached('k', '1 min', 'DELETE FROM t');
SELECT tusk_cached('k', '1 min', 'WITH x AS (INSERT INTO t VALUES (1) RETURNING a) SELECT * FROM x');
SELECT tusk_cached('k', '1 min', 'SELECT * FROM t FOR UPDATE');
SELECT tusk_cached('k', '1 min', 'SELECT 1 INTO t2');
SELECT tusk_cached('k', '1 min', 'CREATE TABLE t3 (a int)');
SELECT tusk_cached('k', '1 min', 'SHOW work_mem');
-- writes hidden in functions are refused too: the query runs read-only
CREATE SEQUENCE seq;
CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'INSERT INTO t VALUES (9) RETURNING a';
SELECT tusk_cached('k', '1 min', 'SELECT nextval(''seq'')');
SELECT tusk_cached('k', '1 min', 'SELECT sneaky()');
-- even a write to a temporary table, which a read-only transaction allows
CREATE TEMP TABLE tmp_log (a int);
CREATE FUNCTION log_it() RETURNS int LANGUAGE plpgsql AS $$BEGIN INSERT INTO tmp_log VALUES (1); RETURN 1; END$$;
SELECT tusk_cached('k', '1 min', 'SELECT log_it()');
CREATE FUNCTION lock_it() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM * FROM t FOR UPDATE; RETURN 1; END$$;
SELECT tusk_cached('k', '1 min', 'SELECT lock_it()');
SELECT count(*) AS rows_in_t FROM t;
SELECT count(*) AS rows_in_tmp_log FROM tmp_log;
-- several statements in one string (42601)
SELECT tusk_cached('k', '1 min', 'SELECT 1; SELECT 2');
SELECT tusk_cached('k', '1 min', 'SELECT 1; DELETE FROM t');
-- params: not an array, wrong count, wrong type (22023, 22P02)
SELECT tusk_cached('k', '1 min', 'SELECT $1::int', '{"a": 1}');
SELECT tusk_cached('k', '1 min', 'SELECT $1::int', '1');
SELECT tusk_cached('k', '1 min', 'SELECT $1::int', '[1, 2]');
SELECT tusk_cached('k', '1 min', 'SELECT $1::int, $2::int', '[1]');
SELECT tusk_cached('k', '1 min', 'SELECT $2::int', '[1]');
SELECT tusk_cached('k', '1 min', 'SELECT 1', '[1]');
SELECT tusk_cached('k', '1 min', 'SELECT $1::int', '["abc"]');
SELECT tusk_cached('k', '1 min', 'SELECT $1::date', '[true]');
-- nothing of the above was cached
SELECT tusk_cache_get('k') IS NULL AS nothing_cached;

\set VERBOSITY default
-- what a user reads
SELECT tusk_cached('k', '0', 'SELECT 1');
SELECT tusk_cached(repeat('k', 100 * 1024), '1 min', 'SELECT 1');
SELECT tusk_cached('k', '1 min', 'SELECT 1/0');
SELECT tusk_cached('k', '1 min', 'INSERT INTO t VALUES (1)');
SELECT tusk_cached('k', '1 min', 'SELECT log_it()');
SELECT tusk_cached('k', '1 min', 'SHOW work_mem');
SELECT tusk_cached('k', '1 min', 'SELECT 1; SELECT 2');
SELECT tusk_cached('k', '1 min', 'SELECT $1::int', '{"a": 1}');
SELECT tusk_cached('k', '1 min', 'SELECT $1::int, $2::int', '[1]');
SELECT tusk_cached('k', '1 min', 'SELECT $1::int', '["abc"]');

-- An error inside tusk_cached, caught by PL/pgSQL, rolls back cleanly: the
-- read-only setting of the failed query does not leak into the transaction.
DO $$
BEGIN
  BEGIN
    PERFORM tusk_cached('k', '1 min', 'SELECT 1/0');
  EXCEPTION WHEN division_by_zero THEN
    RAISE NOTICE 'caught: %', SQLERRM;
  END;
  INSERT INTO t VALUES (42);
END $$;
SHOW transaction_read_only;
SELECT a FROM t;

-- functions that only read still work inside a cached query
CREATE FUNCTION count_t() RETURNS bigint LANGUAGE plpgsql AS $$BEGIN RETURN (SELECT count(*) FROM t); END$$;
SELECT tusk_cached('reader', '1 min', 'SELECT count_t() AS n');

-- the session and the server are healthy: same backend, same postmaster, cache works
SELECT pg_backend_pid() = :pid0 AS same_backend,
       pg_postmaster_start_time() = :'start0' AS server_not_restarted;
SELECT tusk_cached('after errors', '1 min', 'SELECT 1 AS ok');
SELECT tusk_cached('after errors', '1 min', 'SELECT 1 AS ok');
DROP FUNCTION sneaky();
DROP FUNCTION log_it();
DROP FUNCTION lock_it();
DROP FUNCTION count_t();
DROP SEQUENCE seq;
DROP TABLE t;
