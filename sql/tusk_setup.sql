-- The extension installs, and its objects are what the README says.
CREATE EXTENSION tusk;

SELECT proname, pg_get_function_identity_arguments(oid) AS args,
       pg_get_function_result(oid) AS result
FROM pg_proc WHERE proname LIKE 'tusk\_%' ORDER BY 1, 2;

SELECT attname, format_type(atttypid, atttypmod)
FROM pg_attribute WHERE attrelid = 'tusk_cache_stats'::regclass AND attnum > 0 ORDER BY attnum;

-- flush and reset are not for PUBLIC
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute
FROM pg_proc p WHERE proname LIKE 'tusk\_%' ORDER BY 1;

SELECT name, boot_val AS default, unit, context FROM pg_settings WHERE name LIKE 'tusk.%' ORDER BY 1;

-- the reserved prefix: unknown tusk.* settings are refused
SET tusk.no_such_setting = 1;

SELECT tier, entries, bytes, capacity_bytes > 0 AS has_capacity FROM tusk_cache_stats;

-- the L3 table: tusk's own, nothing for PUBLIC
SELECT attname, format_type(atttypid, atttypmod), attnotnull
FROM pg_attribute WHERE attrelid = 'tusk_cache_l3'::regclass AND attnum > 0 ORDER BY attnum;
SELECT p.privilege, has_table_privilege('public', 'tusk_cache_l3', p.privilege) AS public_has_it
FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p(privilege);
SELECT count(*) AS member_of_extension FROM pg_depend
WHERE classid = 'pg_class'::regclass AND objid = 'tusk_cache_l3'::regclass AND deptype = 'e';
