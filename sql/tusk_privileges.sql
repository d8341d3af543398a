-- Privileges: entries belong to (database, role). One role never receives a
-- result that another role computed; flush and reset are not for PUBLIC.
SELECT tusk_cache_flush() >= 0 AS flushed;
CREATE ROLE regress_tusk_alice;
CREATE ROLE regress_tusk_bob;

CREATE TABLE secrets (owner name, secret text);
INSERT INTO secrets VALUES ('regress_tusk_alice', 'alice-secret'), ('regress_tusk_bob', 'bob-secret');
GRANT SELECT ON secrets TO regress_tusk_alice;

-- alice caches a result bob may not read
SET ROLE regress_tusk_alice;
SELECT tusk_cached('secrets', '5 min', 'SELECT secret FROM secrets ORDER BY 1');
SELECT tusk_cache_set('shared name', '"alice value"', '5 min');
RESET ROLE;

-- bob asks for the same key and query: the query runs as bob and is refused
SET ROLE regress_tusk_bob;
\set VERBOSITY sqlstate
SELECT tusk_cached('secrets', '5 min', 'SELECT secret FROM secrets ORDER BY 1');
\set VERBOSITY default
SELECT tusk_cache_get('secrets') IS NULL AS bob_sees_no_entry;
SELECT tusk_cache_get('shared name') IS NULL AS bob_sees_no_value;
SELECT tusk_cache_delete('secrets') AS bob_deleted_nothing;
SELECT tusk_cache_invalidate('') AS bob_invalidated;
-- bob's own value under the same key name is his own
SELECT tusk_cache_set('shared name', '"bob value"', '5 min');
SELECT tusk_cache_get('shared name');
-- flush and reset are privileged (42501)
\set VERBOSITY sqlstate
SELECT tusk_cache_flush();
SELECT tusk_cache_stats_reset();
\set VERBOSITY default
-- the stats view is readable by everyone
SELECT count(*) AS tiers FROM tusk_cache_stats;
RESET ROLE;

-- alice's entries survived bob's delete and invalidate
SET ROLE regress_tusk_alice;
SELECT tusk_cached('secrets', '5 min', 'SELECT secret FROM secrets ORDER BY 1');
SELECT tusk_cache_get('shared name');
RESET ROLE;

-- row-level security: the same key and query give each role its own rows
GRANT SELECT ON secrets TO regress_tusk_bob;
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON secrets USING (owner = current_user);
SELECT tusk_cache_flush() >= 0 AS flushed;
SELECT tusk_cache_stats_reset();
SET ROLE regress_tusk_alice;
SELECT tusk_cached('mine', '5 min', 'SELECT secret FROM secrets');
RESET ROLE;
SET ROLE regress_tusk_bob;
SELECT tusk_cached('mine', '5 min', 'SELECT secret FROM secrets');
RESET ROLE;
SET ROLE regress_tusk_alice;
SELECT tusk_cached('mine', '5 min', 'SELECT secret FROM secrets');
RESET ROLE;
SELECT hits, entries FROM tusk_cache_stats WHERE tier = 'l1';

-- a superuser may flush everything
SELECT tusk_cache_flush() AS flushed_entries;

DROP TABLE secrets;
DROP ROLE regress_tusk_alice;
DROP ROLE regress_tusk_bob;
