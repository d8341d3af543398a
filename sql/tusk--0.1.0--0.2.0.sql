-- tusk 0.1.0 -> 0.2.0: automatic invalidation, single flight, entry inspection.
\echo Use "ALTER EXTENSION tusk UPDATE TO '0.2.0'" to load this file. \quit

-- L3 rows carry what their value depends on; rows written by 0.1.0 have none and are not served.
ALTER TABLE tusk_cache_l3 ADD COLUMN validity bytea;

DROP FUNCTION tusk_cache_set(text, jsonb, interval);
CREATE FUNCTION tusk_cache_set(key text, value jsonb, ttl interval, depends_on regclass[] DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tusk_cache_set'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_set(text, jsonb, interval, regclass[]) IS
  'Stores value under key for ttl when the transaction commits (until a relation of depends_on changes); false when no tier could keep it';

DROP VIEW tusk_cache_stats;
DROP FUNCTION tusk_cache_stats();
CREATE FUNCTION tusk_cache_stats(
    OUT tier text,
    OUT entries bigint,
    OUT bytes bigint,
    OUT capacity_bytes bigint,
    OUT hits bigint,
    OUT misses bigint,
    OUT sets bigint,
    OUT evictions bigint,
    OUT expirations bigint,
    OUT errors bigint,
    OUT invalidations bigint,
    OUT waits bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tusk_cache_stats'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE VIEW tusk_cache_stats AS SELECT * FROM tusk_cache_stats();
COMMENT ON VIEW tusk_cache_stats IS 'One row per cache tier: size and counters';
GRANT SELECT ON tusk_cache_stats TO PUBLIC;

CREATE FUNCTION tusk_cache_invalidate_relation(relation regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'tusk_cache_invalidate_relation'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_invalidate_relation(regclass) IS
  'Retires now every cached value (of every role) that depends on relation or its partitions';

CREATE FUNCTION tusk_cache_l3_wait(timeout interval DEFAULT '10s')
RETURNS boolean
AS 'MODULE_PATHNAME', 'tusk_cache_l3_wait'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_l3_wait(interval) IS
  'Waits until the L3 rows this database''s fills queued so far are written; false after timeout';

CREATE FUNCTION tusk_cache_entry(key text,
    OUT tier text,
    OUT ttl_left interval,
    OUT dependencies integer,
    OUT ttl_only boolean,
    OUT fill_clock bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tusk_cache_entry'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tusk_cache_entry(text) IS
  'Where key is cached (and may be served) for the current role: per tier its TTL left and what it depends on';

