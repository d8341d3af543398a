-- tusk_batch_insert(target, records, batch_size): a JSON array of objects
-- inserted through the executor as the caller, batch_size rows per
-- statement, all or nothing.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

CREATE TYPE tbi_mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN tbi_positive AS integer CHECK (VALUE > 0);

-- A statement-level trigger that logs how many rows each INSERT statement carried.
CREATE TABLE tbi_statements (n serial, target text, rows bigint);
CREATE FUNCTION tbi_log_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tbi_statements (target, rows) SELECT TG_TABLE_NAME, count(*) FROM new_rows;
    RETURN NULL;
END $$;

-- every kind of column, defaults for missing keys, explicit null
CREATE TABLE tbi_all (
    id serial PRIMARY KEY,
    i int, b bigint, n numeric, t text, flag bool, d date, ts timestamptz, plain timestamp,
    doc jsonb, tags text[], grid int[], docs jsonb[], code varchar(3), price numeric(5,2),
    pos tbi_positive, mood tbi_mood,
    label text DEFAULT upper('none'), added date DEFAULT date '2000-01-01' + 1);
SELECT tusk_batch_insert('tbi_all', $$[
  {"i": 1, "b": 9007199254740993, "n": 3.14159265358979323846, "t": "hello", "flag": true,
   "d": "2024-02-29", "ts": "2024-01-01T12:00:00.123456+05:30", "plain": "2024-01-01T12:00:00",
   "doc": {"a": [1, {"b": null}], "c": "d"}, "tags": ["x", "y z", "q\"uote", "back\\slash", null, "NULL", ""],
   "grid": [[1, 2], [3, 4]], "docs": [{"k": 1}, [1, 2], "s", 7, null], "code": "abc", "price": 123.456,
   "pos": 5, "mood": "happy", "label": "given", "added": "2024-12-31"},
  {"i": "42", "b": -7, "n": "1e3", "t": 17, "flag": "yes", "d": "20240301", "ts": "2024-06-01 08:30",
   "plain": "2024-06-01 08:30:00+02", "doc": "just a string", "tags": "{a,b}", "grid": "{{5}}",
   "code": "xy", "price": "1.005", "pos": "7", "mood": "ok"},
  {"i": null, "t": null, "label": null, "added": null, "doc": null},
  {"flag": false, "doc": [1, "two", {"three": 3}], "tags": [], "n": -0.5},
  {}
]$$);
SELECT * FROM tbi_all ORDER BY id;

-- JSON numbers into integer columns: integral values only, as int4in/int8in read them
CREATE TABLE tbi_ints (k int, s smallint, i int, b bigint);
SELECT tusk_batch_insert('tbi_ints', $$[
  {"k": 1, "s": 32767, "i": 2147483647, "b": 9223372036854775807},
  {"k": 2, "s": -32768, "i": -2147483648, "b": -9223372036854775808},
  {"k": 3, "s": 1e2, "i": 0, "b": 12E+3},
  {"k": 4, "s": "12", "i": " 13 ", "b": "-14"}
]$$);
SELECT * FROM tbi_ints ORDER BY k;
\set VERBOSITY sqlstate
SELECT tusk_batch_insert('tbi_ints', '[{"s": 32768}]');
SELECT tusk_batch_insert('tbi_ints', '[{"i": 2147483648}]');
SELECT tusk_batch_insert('tbi_ints', '[{"b": 9223372036854775808}]');
SELECT tusk_batch_insert('tbi_ints', '[{"i": 1.5}]');
SELECT tusk_batch_insert('tbi_ints', '[{"i": 2.0}]');
\set VERBOSITY default
SELECT tusk_batch_insert('tbi_ints', '[{"k": 5}, {"i": 1.0}]');

-- Dates and timestamps (read by date_in, timestamp_in, timestamptz_in): the ISO form that to_jsonb writes, and other spellings
-- give what the casts give.
SET timezone = 'America/New_York';
CREATE TABLE tbi_time_source AS
SELECT g AS k, timestamptz '0001-01-01 00:00:00+00' + g * interval '731 days 7 hours 13 minutes 11.123457 seconds' AS tz
FROM generate_series(0, 4800) g;
INSERT INTO tbi_time_source VALUES (-1, '2024-03-10 01:59:59.999999-05'), (-2, '2024-03-10 03:00:00-04'),
    (-3, '2024-11-03 01:30:00-04'), (-4, '2024-11-03 01:30:00-05'), (-5, '9999-12-31 23:59:59.999999+00');
CREATE TABLE tbi_times (k int, s text, tz timestamptz, ts timestamp, d date);
SELECT tusk_batch_insert('tbi_times',
    (SELECT jsonb_agg(jsonb_build_object('k', k, 's', tz, 'tz', tz, 'ts', tz::timestamp, 'd', tz::date)) FROM tbi_time_source));
SELECT count(*) AS rows,
       count(*) FILTER (WHERE t.tz IS DISTINCT FROM src.tz) AS tz_differs,
       count(*) FILTER (WHERE t.ts IS DISTINCT FROM src.tz::timestamp) AS ts_differs,
       count(*) FILTER (WHERE t.d IS DISTINCT FROM src.tz::date) AS d_differs,
       count(*) FILTER (WHERE t.tz IS DISTINCT FROM t.s::timestamptz) AS cast_differs
FROM tbi_times t JOIN tbi_time_source src USING (k);
TRUNCATE tbi_times;
SELECT tusk_batch_insert('tbi_times', (SELECT jsonb_agg(jsonb_build_object('k', k, 's', s, 'tz', s, 'ts', s, 'd', left(s, 10)) ORDER BY k)
    FROM (VALUES (1, '2024-01-01T00:00:00Z'), (2, '2024-01-01T24:00:00+00'), (3, '2016-12-31T23:59:60+00'),
                 (4, '2024-01-01T00:00:00.1234567+00'), (5, '2024-01-01 00:00:00+0530'), (6, '2024-01-01T00:00:00+05:30:15'),
                 (7, '2024-07-04T12:00:00'), (8, '2024-07-04t12:00:00-07'), (9, '2024-07-04T12:00:00+15:59'),
                 (10, '2024-07-04T12:00:00.5-00:30'), (11, '1999-01-08 04:05:06 PST'), (12, '2024-07-04 12:00:00 America/Chicago'),
                 (13, '0099-07-04T12:00:00+01')) AS v(k, s)));
SELECT k, s, tz AT TIME ZONE 'UTC' AS tz_in_utc, ts, d, tz = s::timestamptz AS tz_as_cast, ts = s::timestamp AS ts_as_cast, d = left(s, 10)::date AS d_as_cast
FROM tbi_times ORDER BY k;
\set VERBOSITY sqlstate
SELECT tusk_batch_insert('tbi_times', '[{"tz": "2023-02-29T00:00:00+00"}]');
SELECT tusk_batch_insert('tbi_times', '[{"tz": "2024-13-01T00:00:00+00"}]');
SELECT tusk_batch_insert('tbi_times', '[{"tz": "2024-01-01T00:00:00+16:00"}]');
SELECT tusk_batch_insert('tbi_times', '[{"d": "0000-01-01"}]');
\set VERBOSITY default
SELECT tusk_batch_insert('tbi_times', '[{"k": 1}, {"k": 2}, {"k": 3, "ts": "2024-01-01T25:00:00"}]');
SET timezone = 'UTC';

-- batch sizes: 1, 7, 1000 and more than the array (statements logged by the trigger)
CREATE TABLE tbi_batches (id serial, v int);
CREATE TRIGGER tbi_batches_log AFTER INSERT ON tbi_batches REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tbi_log_statement();
SELECT tusk_batch_insert('tbi_batches', (SELECT jsonb_agg(jsonb_build_object('v', g)) FROM generate_series(1, 3) g), 1);
SELECT tusk_batch_insert('tbi_batches', (SELECT jsonb_agg(jsonb_build_object('v', g)) FROM generate_series(1, 20) g), 7);
SELECT tusk_batch_insert('tbi_batches', (SELECT jsonb_agg(jsonb_build_object('v', g)) FROM generate_series(1, 2500) g));
SELECT tusk_batch_insert('tbi_batches', (SELECT jsonb_agg(jsonb_build_object('v', g)) FROM generate_series(1, 2500) g), 1000);
SELECT tusk_batch_insert('tbi_batches', (SELECT jsonb_agg(jsonb_build_object('v', g)) FROM generate_series(1, 10) g), 100);
SELECT tusk_batch_insert('tbi_batches', '[]', 5);
SELECT rows FROM tbi_statements WHERE target = 'tbi_batches' ORDER BY n;
-- the serial default numbered the rows in array order
SELECT count(*), min(id), max(id), count(*) FILTER (WHERE id BETWEEN 24 AND 2523 AND v = id - 23) AS third_call_in_order
FROM tbi_batches;
-- rows whose keys differ from the previous row's start a new statement
TRUNCATE tbi_statements;
SELECT tusk_batch_insert('tbi_batches', '[{"v": 1}, {"v": 2}, {"id": -1, "v": 3}, {"v": 4, "id": -2}, {}, {}, {"v": 7}]');
SELECT rows FROM tbi_statements ORDER BY n;
SELECT id > 0 AS generated_id, v FROM tbi_batches WHERE id < 0 OR id > 5033 ORDER BY v NULLS LAST, id;

-- 100,000 rows equal to their source
CREATE TABLE tbi_source AS
SELECT g AS id, CASE WHEN g % 97 = 0 THEN NULL ELSE 'name ' || g END AS name,
       round(g * 1.37, 2) AS amount, timestamptz '2024-01-01 00:00+00' + g * interval '1 minute 0.25 second' AS at,
       g % 3 = 0 AS flag
FROM generate_series(1, 100000) g;
CREATE TABLE tbi_copy (LIKE tbi_source);
SELECT tusk_batch_insert('tbi_copy', (SELECT jsonb_agg(to_jsonb(s)) FROM tbi_source s));
SELECT (SELECT count(*) FROM tbi_copy) AS rows,
       (SELECT count(*) FROM (SELECT * FROM tbi_source EXCEPT SELECT * FROM tbi_copy) a) AS missing,
       (SELECT count(*) FROM (SELECT * FROM tbi_copy EXCEPT SELECT * FROM tbi_source) b) AS extra;

-- keys are identifiers, matched exactly: no SQL is made from them
CREATE TABLE tbi_victim (id int, name text, "CamelCase" int, "we""ird; DROP TABLE tbi_victim; --" text);
SELECT tusk_batch_insert('tbi_victim', $$[{"id": 1, "CamelCase": 2, "we\"ird; DROP TABLE tbi_victim; --": "fine"}]$$);
SELECT * FROM tbi_victim;
SELECT tusk_batch_insert('tbi_victim', $$[{"id": 2}, {"id) VALUES (1); DROP TABLE tbi_victim; --": 2}]$$);
SELECT tusk_batch_insert('tbi_victim', $$[{"\"name\"": "quoted"}]$$);
SELECT tusk_batch_insert('tbi_victim', $$[{"name\", secret) VALUES ('x', 'y'); --": 1}]$$);
SELECT tusk_batch_insert('tbi_victim', $$[{"name;": 1}]$$);
SELECT tusk_batch_insert('tbi_victim', $$[{"NAME": "upper"}]$$);
SELECT tusk_batch_insert('tbi_victim', $$[{"camelcase": 3}]$$);
SELECT tusk_batch_insert('tbi_victim', $$[{" id": 3}]$$);
SELECT tusk_batch_insert('tbi_victim', $$[{"id": 4, "": 5}]$$);
SELECT tusk_batch_insert('tbi_victim', json_build_array(json_build_object(repeat('k', 300), 1))::jsonb);
SELECT count(*) AS rows_still_one FROM tbi_victim;

-- the target's name is quoted too, whatever the search_path
CREATE SCHEMA "tbi schema";
CREATE TABLE "tbi schema"."Odd ""Table""" ("Key" int, "select" text DEFAULT 'default');
SET search_path = pg_catalog;
SELECT public.tusk_batch_insert('"tbi schema"."Odd ""Table"""', '[{"Key": 1, "select": "x"}, {"Key": 2}, {}]');
RESET search_path;
SELECT * FROM "tbi schema"."Odd ""Table""" ORDER BY 1;
DROP TABLE "tbi schema"."Odd ""Table""";
DROP SCHEMA "tbi schema";

-- all or nothing: a rolled-back transaction keeps no row, an error keeps no row
CREATE TABLE tbi_tx (id int PRIMARY KEY, v text);
BEGIN;
SELECT tusk_batch_insert('tbi_tx', '[{"id": 1}, {"id": 2}]');
SELECT count(*) AS inside FROM tbi_tx;
ROLLBACK;
SELECT count(*) AS after_rollback FROM tbi_tx;
-- row 1500 of 2000 cannot be converted: the first 1000 rows, already inserted, go too
SELECT tusk_batch_insert('tbi_tx',
    (SELECT jsonb_agg(jsonb_build_object('id', CASE WHEN g = 1500 THEN to_jsonb('x'::text) ELSE to_jsonb(g) END) ORDER BY g)
     FROM generate_series(1, 2000) g), 1000);
SELECT count(*) AS after_bad_value FROM tbi_tx;
-- row 1500 duplicates row 3: the second statement fails
SELECT tusk_batch_insert('tbi_tx',
    (SELECT jsonb_agg(jsonb_build_object('id', CASE WHEN g = 1500 THEN 3 ELSE g END) ORDER BY g) FROM generate_series(1, 2000) g), 1000);
SELECT count(*) AS after_duplicate FROM tbi_tx;
-- in a transaction block, the error aborts the transaction
BEGIN;
SELECT tusk_batch_insert('tbi_tx', '[{"id": 10}]');
SELECT tusk_batch_insert('tbi_tx', '[{"id": 11}, {"id": 10}]');
SELECT count(*) FROM tbi_tx;
ROLLBACK;
SELECT count(*) AS after_abort FROM tbi_tx;

-- privileges: the caller's, with column privileges and row-level security
CREATE ROLE regress_tusk_batch_reader;
CREATE ROLE regress_tusk_batch_writer;
CREATE TABLE tbi_priv (id int, note text, secret text DEFAULT 'default secret');
GRANT SELECT ON tbi_priv TO regress_tusk_batch_reader;
GRANT INSERT (id, note) ON tbi_priv TO regress_tusk_batch_writer;
SET ROLE regress_tusk_batch_reader;
\set VERBOSITY sqlstate
SELECT tusk_batch_insert('tbi_priv', '[{"id": 1}]');
SELECT tusk_batch_insert('tbi_priv', '[]');
\set VERBOSITY default
SELECT tusk_batch_insert('tbi_priv', '[{"id": 1}]');
RESET ROLE;
SET ROLE regress_tusk_batch_writer;
SELECT tusk_batch_insert('tbi_priv', '[{"id": 2, "note": "allowed"}, {"id": 3}]');
\set VERBOSITY sqlstate
SELECT tusk_batch_insert('tbi_priv', '[{"id": 4, "secret": "not allowed"}]');
\set VERBOSITY terse
SELECT tusk_batch_insert('tbi_priv', '[{"id": 4, "secret": "not allowed"}]');
\set VERBOSITY default
RESET ROLE;
SELECT * FROM tbi_priv ORDER BY id;

CREATE TABLE tbi_rls (owner name, v int);
ALTER TABLE tbi_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY tbi_rls_insert ON tbi_rls FOR INSERT WITH CHECK (owner = current_user);
CREATE POLICY tbi_rls_select ON tbi_rls FOR SELECT USING (true);
GRANT SELECT, INSERT ON tbi_rls TO regress_tusk_batch_writer;
SET ROLE regress_tusk_batch_writer;
SELECT tusk_batch_insert('tbi_rls', '[{"owner": "regress_tusk_batch_writer", "v": 1}]');
\set VERBOSITY sqlstate
SELECT tusk_batch_insert('tbi_rls', '[{"owner": "regress_tusk_batch_writer", "v": 2}, {"owner": "regress_tusk_batch_reader", "v": 3}]');
\set VERBOSITY terse
SELECT tusk_batch_insert('tbi_rls', '[{"owner": "regress_tusk_batch_writer", "v": 2}, {"owner": "regress_tusk_batch_reader", "v": 3}]');
\set VERBOSITY default
RESET ROLE;
SELECT * FROM tbi_rls ORDER BY v;

-- triggers fire: a BEFORE ROW trigger changes rows or skips them (not counted)
CREATE TABLE tbi_trig (id int, v text, seen_by text);
CREATE FUNCTION tbi_trig_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.v = 'skip' THEN
        RETURN NULL;
    END IF;
    NEW.v := upper(NEW.v);
    NEW.seen_by := 'trigger';
    RETURN NEW;
END $$;
CREATE TRIGGER tbi_trig_before BEFORE INSERT ON tbi_trig FOR EACH ROW EXECUTE FUNCTION tbi_trig_fn();
SELECT tusk_batch_insert('tbi_trig', '[{"id": 1, "v": "a"}, {"id": 2, "v": "skip"}, {"id": 3, "v": "c", "seen_by": "caller"}]');
SELECT * FROM tbi_trig ORDER BY id;

-- partitions, views
CREATE TABLE tbi_parted (k int, v text) PARTITION BY RANGE (k);
CREATE TABLE tbi_parted_low PARTITION OF tbi_parted FOR VALUES FROM (0) TO (10);
CREATE TABLE tbi_parted_high PARTITION OF tbi_parted FOR VALUES FROM (10) TO (100);
SELECT tusk_batch_insert('tbi_parted', '[{"k": 1, "v": "low"}, {"k": 50, "v": "high"}, {"k": 9, "v": "low"}]');
SELECT tableoid::regclass, * FROM tbi_parted ORDER BY k;
\set VERBOSITY sqlstate
SELECT tusk_batch_insert('tbi_parted', '[{"k": 500}]');
\set VERBOSITY default
CREATE VIEW tbi_simple_view AS SELECT k, v FROM tbi_parted WHERE k < 10;
SELECT tusk_batch_insert('tbi_simple_view', '[{"k": 2, "v": "through a view"}]');
CREATE VIEW tbi_agg_view AS SELECT count(*) AS n FROM tbi_parted;
SELECT tusk_batch_insert('tbi_agg_view', '[{"n": 1}]');
CREATE VIEW tbi_trigger_view AS SELECT k, v FROM tbi_parted;
CREATE FUNCTION tbi_view_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tbi_parted VALUES (NEW.k + 1, NEW.v || ' (instead)');
    RETURN NEW;
END $$;
CREATE TRIGGER tbi_view_instead INSTEAD OF INSERT ON tbi_trigger_view FOR EACH ROW EXECUTE FUNCTION tbi_view_fn();
SELECT tusk_batch_insert('tbi_trigger_view', '[{"k": 3, "v": "via trigger"}, {"k": 4}]');
SELECT * FROM tbi_parted ORDER BY k;

-- wide tables: at most 65535 parameters per statement
DO $$
BEGIN
    EXECUTE (SELECT format('CREATE TABLE tbi_wide (%s)', string_agg(format('c%s int', g), ', ' ORDER BY g))
             FROM generate_series(1, 1600) g);
END $$;
CREATE TRIGGER tbi_wide_log AFTER INSERT ON tbi_wide REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tbi_log_statement();
TRUNCATE tbi_statements;
SELECT tusk_batch_insert('tbi_wide',
    (SELECT jsonb_agg((SELECT jsonb_object_agg('c' || c, r * 10000 + c) FROM generate_series(1, 1600) c)) FROM generate_series(1, 100) r));
SELECT rows FROM tbi_statements ORDER BY n;
SELECT count(*), sum(c1), sum(c800), sum(c1600) FROM tbi_wide;
-- a dropped column is ignored, its old name is no column
ALTER TABLE tbi_wide DROP COLUMN c2;
SELECT tusk_batch_insert('tbi_wide', '[{"c1": 1, "c3": 3}]');
SELECT tusk_batch_insert('tbi_wide', '[{"c1": 1, "c2": 2}]');
SELECT attname AS dropped_name FROM pg_attribute WHERE attrelid = 'tbi_wide'::regclass AND attisdropped \gset
SELECT tusk_batch_insert('tbi_wide', jsonb_build_array(jsonb_build_object(:'dropped_name', 1)));

-- built-in metrics: batch_insert_records counts rows, batch_insert_time times calls
CREATE TABLE tbi_metrics AS
SELECT name, kind, count, sum FROM tusk_metrics WHERE name IN ('batch_insert_records', 'batch_insert_time');
SELECT tusk_batch_insert('tbi_batches', '[{"v": 1}, {"v": 2}, {"v": 3}]');
SELECT tusk_batch_insert('tbi_batches', (SELECT jsonb_agg(jsonb_build_object('v', g)) FROM generate_series(1, 1234) g), 100);
SELECT m.name, m.kind, m.count - b.count AS count_delta,
       CASE WHEN m.kind = 'counter' THEN (m.sum - b.sum)::text ELSE (m.sum > b.sum)::text END AS sum_delta
FROM tusk_metrics m JOIN tbi_metrics b USING (name) ORDER BY m.name;

-- bad input: a proper SQLSTATE, the row and the column
CREATE TABLE tbi_errors (amount numeric(5,2), code varchar(3), pos tbi_positive, mood tbi_mood, d date,
    total numeric GENERATED ALWAYS AS (amount * 2) STORED, n int NOT NULL DEFAULT 0);
CREATE TABLE tbi_identity (id int GENERATED ALWAYS AS IDENTITY, by_default int GENERATED BY DEFAULT AS IDENTITY, v int);
\set VERBOSITY sqlstate
SELECT tusk_batch_insert(NULL, '[]');
SELECT tusk_batch_insert('tbi_errors', NULL);
SELECT tusk_batch_insert('tbi_errors', '[]', NULL);
SELECT tusk_batch_insert('tbi_errors', '[]', 0);
SELECT tusk_batch_insert('tbi_errors', '[]', -1);
SELECT tusk_batch_insert('tbi_errors', '[]', 1000001);
SELECT tusk_batch_insert('tbi_errors', '{"amount": 1}');
SELECT tusk_batch_insert('tbi_errors', '[{"amount": 1}, 2]');
SELECT tusk_batch_insert('tbi_errors', '[{"amount": 1}, {"nope": 2}]');
SELECT tusk_batch_insert('tbi_errors', '[{"amount": "abc"}]');
SELECT tusk_batch_insert('tbi_errors', '[{"amount": 1000}]');
SELECT tusk_batch_insert('tbi_errors', '[{"code": "abcd"}]');
SELECT tusk_batch_insert('tbi_errors', '[{"pos": 0}]');
SELECT tusk_batch_insert('tbi_errors', '[{"mood": "angry"}]');
SELECT tusk_batch_insert('tbi_errors', '[{"d": "2024-02-30"}]');
SELECT tusk_batch_insert('tbi_errors', '[{"n": null}]');
SELECT tusk_batch_insert('tbi_identity', '[{"id": 1}]');
SELECT tusk_batch_insert('tbi_errors', '[{"total": 1}]');
SELECT tusk_batch_insert('tbi_errors', '[{"ctid": "(0,1)"}]');
SELECT tusk_batch_insert(0::regclass, '[]');
SELECT tusk_batch_insert('tbi_statements_n_seq', '[]');
\set VERBOSITY default
SELECT tusk_batch_insert('tbi_errors', '[]');
SELECT tusk_batch_insert('tbi_errors', '{"amount": 1}');
SELECT tusk_batch_insert('tbi_errors', '"text"');
SELECT tusk_batch_insert('tbi_errors', 'null');
SELECT tusk_batch_insert('tbi_errors', '[]', 0);
SELECT tusk_batch_insert('tbi_errors', '[{"amount": 1}, [1, 2]]');
SELECT tusk_batch_insert('tbi_errors', '[{"amount": 1}, null]');
SELECT tusk_batch_insert('tbi_errors', '[{"amount": 1}, {"amount": 2, "nope": 2}]');
SELECT tusk_batch_insert('tbi_errors',
    (SELECT jsonb_agg(jsonb_build_object('amount', CASE WHEN g = 17 THEN '12x' ELSE g::text END) ORDER BY g) FROM generate_series(1, 20) g));
SELECT tusk_batch_insert('tbi_errors', '[{"amount": 1}, {"amount": 999.999}]');
SELECT tusk_batch_insert('tbi_errors', '[{"code": "abcd"}]');
SELECT tusk_batch_insert('tbi_errors', '[{"pos": 1}, {"pos": -1}]');
SELECT tusk_batch_insert('tbi_errors', '[{"mood": "angry"}]');
SELECT tusk_batch_insert('tbi_errors', '[{"amount": 1}, {"amount": 2}, {"n": null}]');
SELECT tusk_batch_insert('tbi_identity', '[{"v": 1}, {"id": 1}]');
SELECT tusk_batch_insert('tbi_identity', '[{"v": 1}, {"v": 2, "by_default": 20}]');
SELECT tusk_batch_insert('tbi_identity', '[{"v": 4}]');
SELECT * FROM tbi_identity ORDER BY v;
SELECT tusk_batch_insert('tbi_errors', '[{"total": 1}]');
SELECT tusk_batch_insert('tbi_errors', '[{"xmin": 1}]');
SELECT tusk_batch_insert('tbi_statements_n_seq', '[{"last_value": 1}]');
SELECT count(*) AS error_rows FROM tbi_errors;
SELECT tusk_batch_insert('tbi_errors', '[{"amount": 1.5, "code": "ok", "pos": 3, "mood": "sad", "d": "2024-02-29"}, {}]');
SELECT * FROM tbi_errors ORDER BY amount NULLS LAST;

-- a JSON null meets the column's domain (its NOT NULL and CHECK), as a NULL in INSERT does
CREATE DOMAIN tbi_required AS int NOT NULL;
CREATE DOMAIN tbi_doc AS jsonb CHECK (VALUE IS NULL OR jsonb_typeof(VALUE) <> 'number');
CREATE TABLE tbi_domains (k int, r tbi_required DEFAULT 0, d tbi_doc);
SELECT tusk_batch_insert('tbi_domains', '[{"k": 1, "r": 5}, {"k": 2, "r": null}]');
SELECT tusk_batch_insert('tbi_domains', '[{"k": 3, "d": 7}]');
-- a domain over jsonb takes any JSON value as it is: a string stays a string
SELECT tusk_batch_insert('tbi_domains', '[{"k": 4, "d": "null"}, {"k": 5, "d": "[1,2]"}, {"k": 6, "d": null}, {"k": 7, "d": {"a": 1}}]');
SELECT k, r, d, jsonb_typeof(d) FROM tbi_domains ORDER BY k;
-- an object with more keys than the table has columns: the first unknown key, before anything is sized for them
SELECT tusk_batch_insert('tbi_domains', (SELECT jsonb_build_array(jsonb_object_agg('key_' || g, g)) FROM generate_series(1, 100000) g));
-- statements follow runs of the same keys: a row that refers to a later row of another shape
-- meets a foreign key that is checked per statement (make it DEFERRABLE to check at commit)
CREATE TABLE tbi_tree (id int PRIMARY KEY, parent int REFERENCES tbi_tree);
SELECT tusk_batch_insert('tbi_tree', '[{"id": 2, "parent": 1}, {"id": 1}]');
SELECT tusk_batch_insert('tbi_tree', '[{"id": 1, "parent": null}, {"id": 2, "parent": 1}]');
DROP TABLE tbi_tree, tbi_domains;
DROP DOMAIN tbi_required, tbi_doc;

DROP VIEW tbi_simple_view, tbi_agg_view, tbi_trigger_view;
DROP TABLE tbi_all, tbi_ints, tbi_time_source, tbi_times, tbi_batches, tbi_source, tbi_copy, tbi_victim, tbi_tx,
    tbi_priv, tbi_rls, tbi_trig, tbi_parted, tbi_wide, tbi_metrics, tbi_errors, tbi_identity, tbi_statements;
DROP FUNCTION tbi_log_statement(), tbi_trig_fn(), tbi_view_fn();
DROP TYPE tbi_mood;
DROP DOMAIN tbi_positive;
DROP ROLE regress_tusk_batch_reader;
DROP ROLE regress_tusk_batch_writer;
