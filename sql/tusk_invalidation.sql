-- Never stale: a write, wherever it happens, retires every cached value that read what it changed.
-- Each case: fill, write, and the same call returns what the query returns now.
SET tusk.l3_enabled = off;
CREATE TABLE inv_t (id int PRIMARY KEY, v int);
INSERT INTO inv_t VALUES (1, 10), (2, 20);

-- The issue's reproduction: stale for the whole TTL on 0.1.0.
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
INSERT INTO inv_t VALUES (3, 30);
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
-- and an unchanged table is still a hit
SELECT hits AS l1_hits_before FROM tusk_cache_stats WHERE tier = 'l1' \gset
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
SELECT hits - :l1_hits_before AS new_l1_hits FROM tusk_cache_stats WHERE tier = 'l1';
-- and so is one after a write to another table
CREATE TABLE inv_other (n int);
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
SELECT hits AS l1_hits_before FROM tusk_cache_stats WHERE tier = 'l1' \gset
INSERT INTO inv_other VALUES (1);
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
SELECT hits - :l1_hits_before AS new_l1_hits FROM tusk_cache_stats WHERE tier = 'l1';
UPDATE inv_t SET v = v + 1 WHERE id = 1;
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
DELETE FROM inv_t WHERE id = 3;
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
MERGE INTO inv_t t USING (VALUES (2, 200)) AS s(id, v) ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v;
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
INSERT INTO inv_t VALUES (2, 0) ON CONFLICT (id) DO UPDATE SET v = 20;
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
-- a data-modifying CTE
WITH moved AS (UPDATE inv_t SET v = v * 2 WHERE id = 1 RETURNING 1) SELECT count(*) FROM moved;
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
-- COPY FROM
COPY inv_t FROM stdin;
4	40
\.
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
-- TRUNCATE
BEGIN;
TRUNCATE inv_t;
COMMIT;
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
INSERT INTO inv_t VALUES (1, 1);
-- ALTER TABLE: the same query text now means other columns
SELECT tusk_cached('inv:star', '1 hour', 'SELECT * FROM inv_t');
ALTER TABLE inv_t ADD COLUMN w int DEFAULT 7;
SELECT tusk_cached('inv:star', '1 hour', 'SELECT * FROM inv_t');
ALTER TABLE inv_t DROP COLUMN w;

-- Writes inside functions, triggers, rules and foreign-key actions.
CREATE FUNCTION inv_bump() RETURNS void LANGUAGE plpgsql AS $$ BEGIN UPDATE inv_t SET v = v + 1; END $$;
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
SELECT inv_bump();
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
CREATE TABLE inv_log (n int);
CREATE FUNCTION inv_log_it() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO inv_log VALUES (NEW.v); RETURN NEW; END $$;
CREATE TRIGGER inv_log_trigger AFTER INSERT ON inv_t FOR EACH ROW EXECUTE FUNCTION inv_log_it();
SELECT tusk_cached('inv:log', '1 hour', 'SELECT count(*) AS n FROM inv_log');
INSERT INTO inv_t VALUES (5, 50);
SELECT tusk_cached('inv:log', '1 hour', 'SELECT count(*) AS n FROM inv_log');
CREATE TABLE inv_audit (n int);
CREATE RULE inv_audit_rule AS ON DELETE TO inv_t DO ALSO INSERT INTO inv_audit VALUES (OLD.id);
SELECT tusk_cached('inv:audit', '1 hour', 'SELECT count(*) AS n FROM inv_audit');
DELETE FROM inv_t WHERE id = 5;
SELECT tusk_cached('inv:audit', '1 hour', 'SELECT count(*) AS n FROM inv_audit');
CREATE TABLE inv_parent (id int PRIMARY KEY);
CREATE TABLE inv_child (id int, parent int REFERENCES inv_parent ON DELETE CASCADE);
INSERT INTO inv_parent VALUES (1), (2);
INSERT INTO inv_child VALUES (1, 1), (2, 2);
SELECT tusk_cached('inv:child', '1 hour', 'SELECT count(*) AS n FROM inv_child');
DELETE FROM inv_parent WHERE id = 1;
SELECT tusk_cached('inv:child', '1 hour', 'SELECT count(*) AS n FROM inv_child');

-- Reads through views, partitions, inheritance, functions, nested tusk calls, materialized views.
CREATE VIEW inv_view AS SELECT id, v FROM inv_t WHERE v > 0;
SELECT tusk_cached('inv:view', '1 hour', 'SELECT count(*) AS n FROM inv_view');
INSERT INTO inv_t VALUES (6, 60);
SELECT tusk_cached('inv:view', '1 hour', 'SELECT count(*) AS n FROM inv_view');
CREATE TABLE inv_part (k int, v int) PARTITION BY RANGE (k);
CREATE TABLE inv_part_1 PARTITION OF inv_part FOR VALUES FROM (0) TO (10);
CREATE TABLE inv_part_2 PARTITION OF inv_part FOR VALUES FROM (10) TO (20);
INSERT INTO inv_part VALUES (1, 1), (11, 11);
SELECT tusk_cached('inv:parent', '1 hour', 'SELECT sum(v) AS s FROM inv_part');
SELECT tusk_cached('inv:partition', '1 hour', 'SELECT sum(v) AS s FROM inv_part_2');
INSERT INTO inv_part_2 VALUES (12, 12);   -- a partition written: its parent's readers see it
SELECT tusk_cached('inv:parent', '1 hour', 'SELECT sum(v) AS s FROM inv_part');
SELECT tusk_cached('inv:partition', '1 hour', 'SELECT sum(v) AS s FROM inv_part_2');
INSERT INTO inv_part VALUES (13, 13);     -- the parent written: its partitions' readers see it
SELECT tusk_cached('inv:partition', '1 hour', 'SELECT sum(v) AS s FROM inv_part_2');
UPDATE inv_part SET v = v + 100 WHERE k = 13;
SELECT tusk_cached('inv:partition', '1 hour', 'SELECT sum(v) AS s FROM inv_part_2');
CREATE TABLE inv_base (v int);
CREATE TABLE inv_heir () INHERITS (inv_base);
SELECT tusk_cached('inv:inherit', '1 hour', 'SELECT count(*) AS n FROM inv_base');
INSERT INTO inv_heir VALUES (1);
SELECT tusk_cached('inv:inherit', '1 hour', 'SELECT count(*) AS n FROM inv_base');
SELECT tusk_cached('inv:heir', '1 hour', 'SELECT count(*) AS n FROM inv_heir');
UPDATE inv_base SET v = 2;  -- through the parent
SELECT tusk_cached('inv:heir', '1 hour', 'SELECT sum(v) AS n FROM inv_heir');
INSERT INTO inv_heir VALUES (3);
SELECT tusk_cached('inv:heir', '1 hour', 'SELECT sum(v) AS n FROM inv_heir');
CREATE FUNCTION inv_total() RETURNS bigint LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN (SELECT sum(v) FROM inv_t); END $$;
CREATE FUNCTION inv_total_sql() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT sum(v) FROM inv_t $$;
SELECT tusk_cached('inv:plpgsql', '1 hour', 'SELECT inv_total() AS s');
SELECT tusk_cached('inv:sqlfn', '1 hour', 'SELECT inv_total_sql() AS s');
SELECT tusk_cached('inv:nested', '1 hour', $$SELECT tusk_query('SELECT sum(v) AS n FROM inv_t') AS q$$);
SELECT tusk_cached('inv:inner', '1 hour', 'SELECT max(v) AS m FROM inv_t');
SELECT tusk_cached('inv:outer', '1 hour', $$SELECT tusk_cached('inv:inner', '1 hour', 'SELECT max(v) AS m FROM inv_t') AS inner_value$$);
UPDATE inv_t SET v = 1000 WHERE id = 6;
SELECT tusk_cached('inv:plpgsql', '1 hour', 'SELECT inv_total() AS s');
SELECT tusk_cached('inv:sqlfn', '1 hour', 'SELECT inv_total_sql() AS s');
SELECT tusk_cached('inv:nested', '1 hour', $$SELECT tusk_query('SELECT sum(v) AS n FROM inv_t') AS q$$);
-- the outer value was filled from the inner one's hit: it depends on what the inner one read
SELECT tusk_cached('inv:outer', '1 hour', $$SELECT tusk_cached('inv:inner', '1 hour', 'SELECT max(v) AS m FROM inv_t') AS inner_value$$);
-- a changed function body counts too
CREATE OR REPLACE FUNCTION inv_total() RETURNS bigint LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN -1; END $$;
SELECT tusk_cached('inv:plpgsql', '1 hour', 'SELECT inv_total() AS s');
CREATE MATERIALIZED VIEW inv_mat AS SELECT count(*) AS n FROM inv_t;
SELECT tusk_cached('inv:mat', '1 hour', 'SELECT n FROM inv_mat');
INSERT INTO inv_t VALUES (7, 70);
SELECT tusk_cached('inv:mat', '1 hour', 'SELECT n FROM inv_mat');  -- the view was not refreshed: same
REFRESH MATERIALIZED VIEW inv_mat;
SELECT tusk_cached('inv:mat', '1 hour', 'SELECT n FROM inv_mat');

-- COMMIT PREPARED: what the prepared transaction wrote shows at once.
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
BEGIN;
INSERT INTO inv_t VALUES (8, 80);
PREPARE TRANSACTION 'inv_prepared';
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');
COMMIT PREPARED 'inv_prepared';
SELECT tusk_cached('inv:sum', '1 hour', 'SELECT sum(v) AS s FROM inv_t');

-- What an entry depends on, and relations tusk cannot watch (TTL only, visibly).
SELECT tier, ttl_left > '59 min' AS ttl_ok, dependencies > 2 AS has_dependencies, ttl_only, fill_clock > 0 AS clocked
FROM tusk_cache_entry('inv:sum');
SELECT tusk_cached('inv:catalog', '1 hour', $$SELECT count(*) > 0 AS ok FROM pg_class WHERE relname = 'inv_t'$$);
SELECT tier, ttl_only FROM tusk_cache_entry('inv:catalog');
CREATE EXTENSION file_fdw;
CREATE SERVER inv_files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE inv_foreign (line text) SERVER inv_files OPTIONS (filename '/dev/null');
SELECT tusk_cached('inv:foreign', '1 hour', 'SELECT count(*) AS n FROM inv_foreign JOIN inv_t ON true');
SELECT tier, dependencies > 2 AS still_tracks_inv_t, ttl_only FROM tusk_cache_entry('inv:foreign');
DROP FOREIGN TABLE inv_foreign;
DROP SERVER inv_files;
DROP EXTENSION file_fdw;
SELECT tusk_cached('inv:constant', '1 hour', 'SELECT 1 AS one');
SELECT tier, dependencies, ttl_only FROM tusk_cache_entry('inv:constant');
SELECT count(*) AS rows_for_a_missing_key FROM tusk_cache_entry('inv:none');

-- A temporary table is this session's own: such a value is returned, never stored.
CREATE TEMP TABLE inv_temp (v int);
INSERT INTO inv_temp VALUES (1);
SELECT tusk_cached('inv:temp', '1 hour', 'SELECT count(*) AS n FROM inv_temp');
SELECT count(*) AS stored FROM tusk_cache_entry('inv:temp');

-- tusk_cache_invalidate_relation retires at once, for every role; only for who could write the relation.
SELECT tusk_cached('inv:manual', '1 hour', 'SELECT count(*) AS n FROM inv_t');
SELECT tusk_cache_invalidate_relation('inv_t');
SELECT count(*) AS still_served FROM tusk_cache_entry('inv:manual');
SELECT tusk_cache_invalidate_relation(NULL);
CREATE ROLE regress_inv_reader;
GRANT SELECT ON inv_t TO regress_inv_reader;
SET ROLE regress_inv_reader;
SELECT tusk_cache_invalidate_relation('inv_t');
RESET ROLE;

-- tusk_cache_set's depends_on
SELECT tusk_cache_set('inv:set', '"derived"', '1 hour', ARRAY['inv_t'::regclass]);
SELECT tusk_cache_set('inv:free', '"free"', '1 hour');
SELECT tusk_cache_get('inv:set'), tusk_cache_get('inv:free');
UPDATE inv_t SET v = v WHERE id = 1;
SELECT tusk_cache_get('inv:set') AS retired, tusk_cache_get('inv:free') AS kept;
SELECT tusk_cache_set('inv:set', '1', '1 hour', ARRAY[NULL::regclass]);
SELECT tusk_cache_set('inv:set', '1', '1 hour', ARRAY[12345678::regclass]);

-- tusk_cache_set follows its transaction: a rollback leaves nothing behind (0.1.0 kept it in L1).
BEGIN;
SELECT tusk_cache_set('inv:rolled', '"never"', '1 hour');
SELECT tusk_cache_get('inv:rolled') AS seen_by_itself;
ROLLBACK;
SELECT tusk_cache_get('inv:rolled') AS after_rollback;
BEGIN;
SELECT tusk_cache_set('inv:kept', '"kept"', '1 hour');
COMMIT;
SELECT tusk_cache_get('inv:kept') AS after_commit;

-- A streamed miss judges its rows by when its stream opened (0.1.0 stored a row that never committed).
BEGIN;
INSERT INTO inv_t VALUES (100, 1);
DECLARE inv_cursor CURSOR FOR SELECT * FROM tusk_cached_rows('inv:stream', '1 hour', 'SELECT id FROM inv_t WHERE id = 100 OR id = 1 ORDER BY id');
FETCH 1 FROM inv_cursor;
DELETE FROM inv_t WHERE id = 100;
FETCH ALL FROM inv_cursor;
CLOSE inv_cursor;
COMMIT;
SELECT count(*) AS stream_entries FROM tusk_cache_entry('inv:stream');
SELECT tusk_cached('inv:stream', '1 hour', 'SELECT id FROM inv_t WHERE id = 100 OR id = 1 ORDER BY id');

-- Settings that change how values are rendered are part of the fingerprint.
SELECT tusk_cached('inv:float', '1 hour', 'SELECT 1.1::float8 * 1.1 AS f, ''\x01''::bytea AS b');
SET extra_float_digits = 0;
SET bytea_output = 'escape';
SELECT tusk_cached('inv:float', '1 hour', 'SELECT 1.1::float8 * 1.1 AS f, ''\x01''::bytea AS b');
RESET extra_float_digits;
RESET bytea_output;
-- and so are custom settings, and the ones tusk.fingerprint_settings names
SELECT tusk_cached('inv:setting', '1 hour', $$SELECT current_setting('app.color', true) AS c$$);
SET app.color = 'red';
SELECT tusk_cached('inv:setting', '1 hour', $$SELECT current_setting('app.color', true) AS c$$);
SET app.color = 'blue';
SELECT tusk_cached('inv:setting', '1 hour', $$SELECT current_setting('app.color', true) AS c$$);
SELECT tusk_cached('inv:listed', '1 hour', $$SELECT current_setting('work_mem') AS w$$);
SET work_mem = '5MB';
SELECT tusk_cached('inv:listed', '1 hour', $$SELECT current_setting('work_mem') AS w$$);  -- not listed: same
SET tusk.fingerprint_settings = 'work_mem';
SELECT tusk_cached('inv:listed', '1 hour', $$SELECT current_setting('work_mem') AS w$$);
SET tusk.fingerprint_settings = 'work_mem,';
RESET tusk.fingerprint_settings;
RESET work_mem;

-- tusk.invalidation: a superuser's bulk load may skip it; then its writes retire nothing.
SELECT tusk_cached('inv:bulk', '1 hour', 'SELECT count(*) AS n FROM inv_t');
SET tusk.invalidation = off;
INSERT INTO inv_t VALUES (9, 9);
RESET tusk.invalidation;
SELECT tusk_cached('inv:bulk', '1 hour', 'SELECT count(*) AS n FROM inv_t') AS stale_by_request;
SET ROLE regress_inv_reader;
SET tusk.invalidation = off;
RESET ROLE;
SELECT invalidations > 0 AS counted FROM tusk_cache_stats WHERE tier = 'l1';
SELECT tier, invalidations IS NULL AS null_here, waits IS NULL AS waits_null_here FROM tusk_cache_stats ORDER BY tier;

-- Rows reach only sessions that could read them now: tenants, policies, REVOKE, row-level security.
CREATE ROLE regress_inv_app;
CREATE ROLE regress_inv_group;
CREATE TABLE inv_tenant (tenant text, item text);
INSERT INTO inv_tenant VALUES ('a', 'apple'), ('b', 'banana');
GRANT SELECT ON inv_tenant TO regress_inv_group;
GRANT regress_inv_group TO regress_inv_app;
ALTER TABLE inv_tenant ENABLE ROW LEVEL SECURITY;
CREATE POLICY inv_tenant_policy ON inv_tenant USING (tenant = current_setting('app.tenant', true));
SET ROLE regress_inv_app;
SET app.tenant = 'a';
SELECT tusk_cached('inv:items', '1 hour', 'SELECT item FROM inv_tenant ORDER BY 1');
SET app.tenant = 'b';
SELECT tusk_cached('inv:items', '1 hour', 'SELECT item FROM inv_tenant ORDER BY 1');  -- 0.1.0 gave tenant a's rows
SET app.tenant = 'a';
SELECT tusk_cached('inv:items', '1 hour', 'SELECT item FROM inv_tenant ORDER BY 1');
RESET ROLE;
ALTER POLICY inv_tenant_policy ON inv_tenant USING (tenant = 'b');
SET ROLE regress_inv_app;
SELECT tusk_cached('inv:items', '1 hour', 'SELECT item FROM inv_tenant ORDER BY 1');  -- 0.1.0 ignored the new policy
RESET ROLE;
DROP POLICY inv_tenant_policy ON inv_tenant;
SET ROLE regress_inv_app;
SELECT tusk_cached('inv:items', '1 hour', 'SELECT item FROM inv_tenant ORDER BY 1');  -- no policy: no rows
RESET ROLE;
ALTER TABLE inv_tenant DISABLE ROW LEVEL SECURITY;
SET ROLE regress_inv_app;
SELECT tusk_cached('inv:items', '1 hour', 'SELECT item FROM inv_tenant ORDER BY 1');
RESET ROLE;
ALTER TABLE inv_tenant ENABLE ROW LEVEL SECURITY;
SET ROLE regress_inv_app;
SELECT tusk_cached('inv:items', '1 hour', 'SELECT item FROM inv_tenant ORDER BY 1');  -- enabled again
RESET ROLE;
ALTER TABLE inv_tenant DISABLE ROW LEVEL SECURITY;
SET ROLE regress_inv_app;
SELECT tusk_cached('inv:items', '1 hour', 'SELECT item FROM inv_tenant ORDER BY 1');
RESET ROLE;
REVOKE regress_inv_group FROM regress_inv_app;  -- a membership, not a table's ACL
SET ROLE regress_inv_app;
SELECT tusk_cached('inv:items', '1 hour', 'SELECT item FROM inv_tenant ORDER BY 1');
RESET ROLE;
GRANT SELECT ON inv_tenant TO regress_inv_app;
SET ROLE regress_inv_app;
SELECT tusk_cached('inv:items', '1 hour', 'SELECT item FROM inv_tenant ORDER BY 1');
RESET ROLE;
REVOKE SELECT ON inv_tenant FROM regress_inv_app;  -- 0.1.0 still served the rows
SET ROLE regress_inv_app;
SELECT tusk_cached('inv:items', '1 hour', 'SELECT item FROM inv_tenant ORDER BY 1');
RESET ROLE;
RESET app.tenant;

DROP TABLE inv_tenant;
DROP ROLE regress_inv_app;
DROP ROLE regress_inv_group;
REVOKE ALL ON inv_t FROM regress_inv_reader;
DROP ROLE regress_inv_reader;
