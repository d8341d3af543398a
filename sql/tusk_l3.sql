-- L3, the table tier: filled with L1, read below it, written by the L3 writer
-- (reading transactions' fills) or in the caller's transaction (its own
-- values), never served expired, private to tusk, and safe from the caller's
-- search_path.
SELECT tusk_cache_flush() >= 0 AS flushed;
SELECT tusk_cache_stats_reset();
CREATE TABLE l3_items (id int, name text);
INSERT INTO l3_items SELECT g, 'item ' || g FROM generate_series(1, 5) g;
CREATE ROLE regress_tusk_l3_reader;
GRANT SELECT ON l3_items TO regress_tusk_l3_reader;

-- a fill writes a row: the role's key, the value, a 16-byte fingerprint and the expiry
SELECT tusk_cached('items', '5 min', 'SELECT id, name FROM l3_items WHERE id <= 2 ORDER BY id');
SELECT tusk_cache_l3_wait() AS written;
SELECT role_id = 'postgres'::regrole AS own_role, key, value, octet_length(fingerprint) AS fingerprint_bytes,
       expires_at - stored_at BETWEEN '4 min' AND '5 min' AS ttl_kept
FROM tusk_cache_l3;
SELECT tusk_cache_set('plain', '{"a": 1}', '1 hour') AS stored;
SELECT key, value FROM tusk_cache_l3 ORDER BY key;
-- the same key with another query replaces the row
SELECT tusk_cached('items', '5 min', 'SELECT count(*) AS n FROM l3_items');
SELECT tusk_cache_l3_wait() AS written;
SELECT value FROM tusk_cache_l3 WHERE key = 'items';
SELECT tier, sets FROM tusk_cache_stats ORDER BY tier;

-- no privileges on the table for other roles
SET ROLE regress_tusk_l3_reader;
\set VERBOSITY sqlstate
SELECT * FROM tusk_cache_l3;
INSERT INTO tusk_cache_l3 VALUES (0, 'x', '\x00', '1', now(), now());
DELETE FROM tusk_cache_l3;
SET tusk.l3_enabled = off;
\set VERBOSITY default
-- the role's entries are its own in L3 too
SELECT tusk_cached('items', '5 min', 'SELECT count(*) AS n FROM l3_items WHERE id > 3');
SELECT tusk_cache_get('plain') IS NULL AS other_roles_value_not_served;
RESET ROLE;
SELECT r.rolname, l.key, l.value FROM tusk_cache_l3 l JOIN pg_roles r ON r.oid = l.role_id
ORDER BY 1, 2;

-- expired rows are never served; fills remove them
SELECT tusk_cache_stats_reset();
SELECT tusk_cache_set('short', '"brief"', '10 ms') AS stored;
SELECT pg_sleep(0.05);
SELECT tusk_cache_get('short') IS NULL AS expired_not_served;
SELECT count(*) AS expired_row_still_there FROM tusk_cache_l3 WHERE key = 'short';
SELECT tusk_cache_set('later', '"x"', '5 min') AS stored;
SELECT count(*) AS expired_row_removed_by_a_fill FROM tusk_cache_l3 WHERE key = 'short';
SELECT expirations FROM tusk_cache_stats WHERE tier = 'l3';

-- transactions: a reading transaction's fills are served from L1 at once and
-- reach L3 through the L3 writer, in its transactions: the reading one takes
-- no transaction id and keeps nothing until it commits; its tusk_cache_set
-- values are written when it commits, in one batch, holding no locks meanwhile
SELECT tusk_cache_flush() >= 0 AS flushed;
SELECT tusk_cache_stats_reset();
BEGIN;
SELECT tusk_cached('t1', '5 min', 'SELECT count(*) AS n FROM l3_items');
SELECT tusk_cache_l3_wait() AS written;
SELECT txid_current_if_assigned() IS NULL AS no_xid,
       (SELECT count(*) FROM tusk_cache_l3 WHERE key = 't1') AS t1_rows_before_commit;
SELECT tusk_cached('t1', '5 min', 'SELECT count(*) AS n FROM l3_items');
SELECT hits, misses FROM tusk_cache_stats WHERE tier = 'l1';
SELECT count(*) FILTER (WHERE tusk_cache_set('many:' || g, to_jsonb(g), '5 min')) AS many_set
FROM generate_series(1, 5000) g;
SELECT count(*) < 10 AS few_locks FROM pg_locks WHERE pid = pg_backend_pid();
-- after a write of its own, results wait for the commit, in L3 too
INSERT INTO l3_items VALUES (6, 'item 6');
SELECT tusk_cached('t2', '5 min', 'SELECT count(*) AS n FROM l3_items');
SELECT count(*) AS t2_rows_before_commit FROM tusk_cache_l3 WHERE key = 't2';
COMMIT;
SELECT key, value FROM tusk_cache_l3 WHERE key IN ('t1', 't2') ORDER BY key;
SELECT count(*) AS many_rows, sum(value::int) AS many_sum FROM tusk_cache_l3 WHERE key LIKE 'many:%';
SELECT tusk_cache_invalidate('many:') AS many_invalidated;
-- rollback: the fill is gone from L3 with the transaction
BEGIN;
INSERT INTO l3_items VALUES (7, 'item 7');
SELECT tusk_cached('t3', '5 min', 'SELECT count(*) AS n FROM l3_items');
ROLLBACK;
SELECT count(*) AS t3_rows FROM tusk_cache_l3 WHERE key = 't3';
-- a rolled-back savepoint takes its fill with it
BEGIN;
INSERT INTO l3_items VALUES (8, 'item 8');
SAVEPOINT s;
SELECT tusk_cached('t4', '5 min', 'SELECT count(*) AS n FROM l3_items');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT count(*) AS t4_rows_after_savepoint_rollback FROM tusk_cache_l3 WHERE key = 't4';
-- a result its own later write made stale is not written to L3
BEGIN;
INSERT INTO l3_items VALUES (9, 'item 9');
SELECT tusk_cached('t5', '5 min', 'SELECT count(*) AS n FROM l3_items');
INSERT INTO l3_items VALUES (10, 'item 10');
COMMIT;
SELECT count(*) AS stale_t5_rows FROM tusk_cache_l3 WHERE key = 't5';
-- a read-only transaction: served, not written to L3; a delete warns that L3 kept the row
BEGIN READ ONLY;
SELECT tusk_cached('t6', '5 min', 'SELECT count(*) AS n FROM l3_items');
SELECT tusk_cache_delete('t1') AS deleted_from_l1;
COMMIT;
SELECT key FROM tusk_cache_l3 WHERE key IN ('t1', 't6') ORDER BY key;
-- SERIALIZABLE transactions do not fill L3 (its commit checks must not fail a transaction for cache rows)
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT tusk_cache_set('t7', '7', '5 min') AS stored;
SELECT tusk_cache_get('t7');
COMMIT;
SELECT count(*) AS serializable_rows FROM tusk_cache_l3 WHERE key = 't7';
-- nor do REPEATABLE READ transactions (a row refreshed since their snapshot would fail the commit)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT tusk_cache_set('t9', '9', '5 min') AS stored;
COMMIT;
SELECT count(*) AS repeatable_read_rows FROM tusk_cache_l3 WHERE key = 't9';
-- a value set by hand does not go stale when the transaction writes afterwards
BEGIN;
INSERT INTO l3_items VALUES (11, 'item 11');
SELECT tusk_cache_set('t10', '10', '5 min') AS stored;
INSERT INTO l3_items VALUES (12, 'item 12');
COMMIT;
SELECT value FROM tusk_cache_l3 WHERE key = 't10';
SELECT tusk_cache_get('t10');
-- a delete in the same transaction drops the queued fill
BEGIN;
SELECT tusk_cache_set('t8', '8', '5 min') AS stored;
SELECT tusk_cache_delete('t8') AS deleted;
COMMIT;
SELECT count(*) AS t8_rows FROM tusk_cache_l3 WHERE key = 't8';

-- a delete of a key that comes in while the commit-time batch is being written
-- (here from a trigger on the table): that key's row is deleted, and its value
-- is not published to L1 either
CREATE FUNCTION regress_delete_during_batch() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM tusk_cache_delete('raced'); RETURN NULL; END $$;
CREATE TRIGGER regress_delete_during_batch AFTER INSERT ON tusk_cache_l3
  FOR EACH STATEMENT EXECUTE FUNCTION regress_delete_during_batch();
BEGIN;
INSERT INTO l3_items VALUES (13, 'item 13');
SELECT tusk_cached('raced', '5 min', 'SELECT count(*) AS n FROM l3_items');
COMMIT;
DROP TRIGGER regress_delete_during_batch ON tusk_cache_l3;
DROP FUNCTION regress_delete_during_batch();
SELECT count(*) AS raced_rows FROM tusk_cache_l3 WHERE key = 'raced';
SELECT tusk_cache_get('raced') IS NULL AS raced_not_published;

-- a rolled-back delete leaves the row settled: the next hit is copied up again
SELECT tusk_cache_set('undeleted', '"still"', '5 min') AS stored;
BEGIN;
SELECT tusk_cache_delete('undeleted') AS deleted;
ROLLBACK;
SELECT tusk_cache_stats_reset();
SELECT tusk_cache_get('undeleted') AS from_l3, tusk_cache_get('undeleted') AS from_l1;
SELECT tier, hits FROM tusk_cache_stats WHERE tier IN ('l1', 'l3') ORDER BY tier;

-- delete, invalidate and flush reach L3
SELECT tusk_cache_set('inv:' || g, to_jsonb(g), '5 min') FROM generate_series(1, 3) g;
SELECT tusk_cache_delete('t1') AS deleted, tusk_cache_delete('t1') AS deleted_again;
SELECT tusk_cache_invalidate('inv:') AS invalidated;
SELECT key FROM tusk_cache_l3 ORDER BY key;
-- the prefix is matched literally, as bytes: no pattern characters
SELECT tusk_cache_set(k, '1', '5 min') FROM unnest(ARRAY['a%b', 'a_c', 'abc', 'A%b']) k;
SELECT tusk_cache_invalidate('a%') AS invalidated;
SELECT key FROM tusk_cache_l3 WHERE key ILIKE 'a%' ORDER BY key;
-- tusk.l3_enabled = off: neither read nor written
SET tusk.l3_enabled = off;
SELECT tusk_cached('off', '5 min', 'SELECT 1 AS one');
SELECT count(*) AS rows_while_off FROM tusk_cache_l3 WHERE key = 'off';
RESET tusk.l3_enabled;
SELECT tusk_cache_flush() > 0 AS flushed;
SELECT count(*) AS rows_after_flush FROM tusk_cache_l3;
SELECT tier, entries, bytes > 0 AS has_bytes, capacity_bytes, evictions FROM tusk_cache_stats WHERE tier = 'l3';

-- an L3 write that fails never fails the call: counted, and warned about once a minute
SELECT tusk_cache_stats_reset();
ALTER TABLE tusk_cache_l3 ADD CONSTRAINT regress_refuse CHECK (key <> 'refused' AND key <> 'refused too');
SELECT tusk_cached('refused', '5 min', 'SELECT 1 AS one');
SELECT tusk_cache_l3_wait() AS written;  -- (the writer's warning is in the server log)
SELECT tusk_cache_set('refused too', '2', '5 min') AS stored;
SELECT tusk_cache_get('refused too');
SELECT errors, sets FROM tusk_cache_stats WHERE tier = 'l3';
ALTER TABLE tusk_cache_l3 DROP CONSTRAINT regress_refuse;
SELECT count(*) AS rows FROM tusk_cache_l3;

-- the caller's search_path cannot redirect tusk's statements, which run as the
-- table's owner: an operator planted ahead of pg_catalog is never called
CREATE ROLE regress_tusk_l3_planter;
CREATE SCHEMA planted AUTHORIZATION regress_tusk_l3_planter;
\c -
SET ROLE regress_tusk_l3_planter;
CREATE FUNCTION planted.oid_eq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN RAISE NOTICE 'planted operator called by %', current_user; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR planted.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = planted.oid_eq);
CREATE FUNCTION planted.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN RAISE NOTICE 'planted operator called by %', current_user; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR planted.= (LEFTARG = text, RIGHTARG = text, FUNCTION = planted.text_eq);
SET search_path = planted, pg_catalog, public;
SELECT 1::oid = 1::oid AS planted_operator_is_live;
SELECT tusk_cache_set('p', '"v"', '5 min') AS stored;
SELECT tusk_cache_get('p');
SELECT tusk_cached('p2', '5 min', 'SELECT 1 AS one');
SELECT tusk_cache_delete('p') AS deleted;
SELECT tusk_cache_invalidate('p') AS invalidated;
RESET ROLE;
RESET search_path;
DROP SCHEMA planted CASCADE;

-- the extension dropped and created again in this session: tusk finds the new table
SELECT tusk_cache_set('before', '1', '5 min') AS stored;
DROP EXTENSION tusk;
CREATE EXTENSION tusk;
SELECT tusk_cache_set('after', '2', '5 min') AS stored;
SELECT key FROM tusk_cache_l3 ORDER BY key;
SELECT tusk_cache_get('after');
-- and after its owner changes (then back)
ALTER TABLE tusk_cache_l3 OWNER TO regress_tusk_l3_planter;
SELECT tusk_cache_set('owner changed', '3', '5 min') AS stored;
ALTER TABLE tusk_cache_l3 OWNER TO CURRENT_USER;
SELECT count(*) AS rows FROM tusk_cache_l3;

SELECT tusk_cache_flush() >= 0 AS flushed;
DROP TABLE l3_items;
DROP ROLE regress_tusk_l3_reader;
DROP ROLE regress_tusk_l3_planter;
