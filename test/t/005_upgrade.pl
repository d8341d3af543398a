# ALTER EXTENSION tusk UPDATE from 0.1.0 to 0.2.0 on a live server: the
# cached entries, the metrics and their history survive it, and the upgraded
# objects are those of a fresh 0.2.0 install.
# Run by make test (prove, as the server user).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tusk'
tusk.l1_size = '8MB'
tusk.metrics_interval = '1s'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION tusk VERSION '0.1.0';
CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 5) g;});
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'tusk'}), '0.1.0',
	'created at 0.1.0');

# Used at 0.1.0 with the 0.2.0 library.
is($node->safe_psql('postgres', q{SELECT tusk_cached('report', '1 hour', 'SELECT count(*) AS n FROM items')}),
	'[{"n": 5}]', 'a query is cached');
is($node->safe_psql('postgres', q{SELECT tusk_cache_set('manual', '"set at 0.1.0"', '1 hour')}), 't',
	'a value is set');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_stats}), '3', 'the 0.1.0 stats view reads');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_l3}), '0',
	'L3 waits for the upgrade (its table has no validity column yet)');
$node->safe_psql('postgres', q{SELECT tusk_metric_record('upgrade_probe', 7)});
$node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM tusk_metrics_history WHERE name = 'upgrade_probe'})
  or die 'the worker wrote no history';
my $history = $node->safe_psql('postgres', q{SELECT count(*) FROM tusk_metrics_history});

$node->safe_psql('postgres', q{ALTER EXTENSION tusk UPDATE});
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'tusk'}), '0.2.0',
	'updated to 0.2.0');

# What was there is still there.
my $hits = $node->safe_psql('postgres', q{SELECT hits FROM tusk_cache_stats WHERE tier = 'l1'});
is($node->safe_psql('postgres', q{SELECT tusk_cached('report', '1 hour', 'SELECT count(*) AS n FROM items')}),
	'[{"n": 5}]', 'the cached query');
is($node->safe_psql('postgres', q{SELECT hits FROM tusk_cache_stats WHERE tier = 'l1'}), $hits + 1,
	'is still a hit (the upgrade changed none of what it read)');
is($node->safe_psql('postgres', q{SELECT tusk_cache_get('manual')}), '"set at 0.1.0"', 'the value set');
is($node->safe_psql('postgres', q{SELECT count FROM tusk_metrics WHERE name = 'upgrade_probe'}), '1',
	'the metric');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_metrics_history}), '>=', $history,
	'the history');

# And 0.2.0 works: L3, the new functions, the new columns, invalidation.
is($node->safe_psql('postgres', q{SELECT tusk_cached('after', '1 hour', 'SELECT count(*) AS n FROM items')}),
	'[{"n": 5}]', 'a fill after the upgrade');
is($node->safe_psql('postgres', q{SELECT tusk_cache_l3_wait()}), 't', 'written by the L3 writer');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_l3 WHERE key = 'after'}), '1', 'reaches L3');
is($node->safe_psql('postgres', q{SELECT tier FROM tusk_cache_entry('after') ORDER BY 1 LIMIT 1}), 'l1',
	'tusk_cache_entry');
$node->safe_psql('postgres', q{INSERT INTO items VALUES (6)});
is($node->safe_psql('postgres', q{SELECT tusk_cached('report', '1 hour', 'SELECT count(*) AS n FROM items')}),
	'[{"n": 6}]', 'a write retires the entry cached before the upgrade');
is($node->safe_psql('postgres', q{SELECT invalidations > 0 FROM tusk_cache_stats WHERE tier = 'l1'}), 't',
	'counted in the new invalidations column');

# The upgraded objects are a fresh install's.
$node->safe_psql('postgres', q{CREATE DATABASE fresh});
$node->safe_psql('fresh', q{CREATE EXTENSION tusk});
my $objects = q{
SELECT string_agg(d, E'\n' ORDER BY d) FROM (
  SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '
         || pg_get_function_result(p.oid) || ' ' || array_to_string(coalesce(p.proacl, '{}'), ',') AS d
  FROM pg_proc p JOIN pg_depend e ON e.objid = p.oid AND e.classid = 'pg_proc'::regclass AND e.deptype = 'e'
  UNION ALL
  SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
         || a.attnotnull
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_depend e ON e.objid = c.oid AND e.classid = 'pg_class'::regclass AND e.deptype = 'e'
  UNION ALL
  SELECT 'acl ' || c.relname || ' ' || array_to_string(coalesce(c.relacl, '{}'), ',')
  FROM pg_class c JOIN pg_depend e ON e.objid = c.oid AND e.classid = 'pg_class'::regclass AND e.deptype = 'e'
) objects};
my $fresh = $node->safe_psql('fresh', $objects);
my $upgraded = $node->safe_psql('postgres', $objects);
# A column added by ALTER TABLE comes last; compare as sets.
is(join("\n", sort split /\n/, $upgraded), join("\n", sort split /\n/, $fresh),
	'the upgraded extension has the objects of a fresh 0.2.0 install');

$node->stop;
done_testing();
