-- Transactions: a result computed after the transaction wrote data itself is
-- returned to it, enters the shared cache only if it commits, and is never
-- served to anyone after a rollback.
SELECT tusk_cache_flush() >= 0 AS flushed;
CREATE TABLE items (id int);
INSERT INTO items SELECT generate_series(1, 10);

-- rollback: the transaction sees its own write, nobody else ever does
BEGIN;
INSERT INTO items VALUES (11);
SELECT tusk_cached('count', '5 min', 'SELECT count(*) AS n FROM items');
-- served again inside the transaction
SELECT tusk_cached('count', '5 min', 'SELECT count(*) AS n FROM items');
SELECT tusk_cache_get('count');
ROLLBACK;
SELECT tusk_cache_get('count') IS NULL AS not_in_shared_cache;
SELECT tusk_cached('count', '5 min', 'SELECT count(*) AS n FROM items');

-- a transaction that has written does not read older shared entries: it sees its writes
BEGIN;
DELETE FROM items WHERE id > 5;
SELECT tusk_cached('count', '5 min', 'SELECT count(*) AS n FROM items');
COMMIT;
-- commit: the transaction's result entered the shared cache, and its own commit retired it at once
-- (it read the table the transaction wrote: nothing can show it is still current)
SELECT tusk_cache_get('count');

-- a read-only transaction writes the shared cache at once
BEGIN;
SELECT tusk_cached('ids', '5 min', 'SELECT array_agg(id ORDER BY id) AS ids FROM items');
ROLLBACK;
SELECT tusk_cache_get('ids');

-- subtransactions: what a rolled-back savepoint computed is dropped
BEGIN;
INSERT INTO items VALUES (100);
SAVEPOINT s1;
INSERT INTO items VALUES (101);
SELECT tusk_cached('sub', '5 min', 'SELECT max(id) AS m FROM items');
ROLLBACK TO SAVEPOINT s1;
SELECT tusk_cache_get('sub') IS NULL AS dropped_with_savepoint;
SELECT tusk_cached('sub', '5 min', 'SELECT max(id) AS m FROM items');
SAVEPOINT s2;
SELECT tusk_cache_set('kept', '"from s2"', '5 min');
RELEASE SAVEPOINT s2;
COMMIT;
-- (sub read the table the transaction wrote: retired by its commit; kept depends on nothing)
SELECT tusk_cache_get('sub') AS sub_after_commit, tusk_cache_get('kept') AS kept_after_commit;

-- tusk_cache_set in a writing transaction is deferred the same way
BEGIN;
INSERT INTO items VALUES (200);
SELECT tusk_cache_set('manual', '"uncommitted"', '5 min');
SELECT tusk_cache_get('manual');
ROLLBACK;
SELECT tusk_cache_get('manual') IS NULL AS manual_dropped;

-- delete inside a writing transaction removes both the pending and the shared entry
BEGIN;
INSERT INTO items VALUES (300);
SELECT tusk_cache_delete('count');
SELECT tusk_cache_get('count') IS NULL AS gone_inside;
COMMIT;
SELECT tusk_cache_get('count') IS NULL AS gone_after;

-- a transaction that writes again after computing a result: the result is
-- stale, so it is recomputed inside and never published
BEGIN;
INSERT INTO items VALUES (500);
SELECT tusk_cached('later', '5 min', 'SELECT count(*) AS n FROM items');
INSERT INTO items VALUES (501);
SELECT tusk_cached('later', '5 min', 'SELECT count(*) AS n FROM items');
DELETE FROM items WHERE id = 501;
COMMIT;
SELECT tusk_cache_get('later') IS NULL AS stale_result_not_published;
SELECT tusk_cached('later', '5 min', 'SELECT count(*) AS n FROM items');
-- the same within one statement of a single-statement transaction
CREATE FUNCTION add_item(int) RETURNS int LANGUAGE sql AS 'INSERT INTO items VALUES ($1) RETURNING id';
SELECT tusk_cache_delete('later');
SELECT add_item(600) AS first_write,
       tusk_cached('later', '5 min', 'SELECT count(*) AS n FROM items') AS computed_between,
       add_item(601) AS second_write;
SELECT tusk_cache_get('later') IS NULL AS stale_result_not_published;
DROP FUNCTION add_item(int);

-- REPEATABLE READ and SERIALIZABLE read an old snapshot: results are returned, not stored
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT tusk_cached('rr', '5 min', 'SELECT count(*) AS n FROM items');
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT tusk_cached('rr', '5 min', 'SELECT count(*) AS n FROM items');
COMMIT;
SELECT tusk_cache_get('rr') IS NULL AS not_stored_from_old_snapshots;
-- they do read what is cached
SELECT tusk_cached('rr', '5 min', 'SELECT count(*) AS n FROM items');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT tusk_cache_get('rr');
COMMIT;

-- two-phase commit: a prepared transaction's results never reach the cache,
-- whether it is later committed or rolled back
BEGIN;
INSERT INTO items VALUES (400);
SELECT tusk_cached('prepared', '5 min', 'SELECT count(*) AS n FROM items');
PREPARE TRANSACTION 'tusk_p1';
SELECT tusk_cache_get('prepared') IS NULL AS not_published;
COMMIT PREPARED 'tusk_p1';
SELECT tusk_cache_get('prepared') IS NULL AS not_published_after_commit;

DROP TABLE items;
