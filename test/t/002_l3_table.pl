# L3 with real servers: the tiers after restarts (L1 lost, then L1 and L2
# lost, then a crash), copy-up into the tiers above, a hot standby that reads
# L3 but does not write it, its promotion, and fills that never wait for
# another session's open transaction.
# Run by make test (prove, as the server user); needs redis-server on PATH.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib "t";
use TuskRedis;

sub stat_of
{
	my ($node, $tier, $column) = @_;
	return $node->safe_psql('postgres', "SELECT $column FROM tusk_cache_stats WHERE tier = '$tier'");
}

sub hits_by_tier
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		q{SELECT string_agg(tier || '=' || hits, ' ' ORDER BY tier) FROM tusk_cache_stats});
}

redis_start();
my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tusk'
tusk.l1_size = '8MB'
tusk.redis_host = '127.0.0.1'
tusk.redis_port = $redis_port
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION tusk;
CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 100) g;});
my $query = q{SELECT count(*) AS n FROM items};
my $scope = 'tusk:postgres:' . $node->safe_psql('postgres', 'SELECT current_user') . ':';

# A fill writes every tier.
is($node->safe_psql('postgres', qq{SELECT tusk_cached('report', '1 hour', '$query')}),
	'[{"n": 100}]', 'a miss runs the query');
is(redis_cli('EXISTS', "'${scope}report'"), '1', 'the fill is in L2');
is($node->safe_psql('postgres', q{SELECT tusk_cache_l3_wait()}), 't', 'the L3 writer wrote it');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_l3 WHERE key = 'report'}), '1',
	'and in L3');
# The source changes behind the cache's back (a bulk load with invalidation
# off, as a superuser may run one): what is served below comes from the tiers.
$node->safe_psql('postgres', q{SET tusk.invalidation = off; INSERT INTO items VALUES (101)});

# A clean restart loses L1 (the clock that judges the entries is saved): L2 serves.
$node->restart;
$node->safe_psql('postgres', 'SELECT tusk_cache_stats_reset()');
is($node->safe_psql('postgres', qq{SELECT tusk_cached('report', '1 hour', '$query')}),
	'[{"n": 100}]', 'after a restart the cached rows are served');
is(hits_by_tier($node), 'l1=0 l2=1 l3=0', 'from L2');

# A clean restart and an empty Redis lose L1 and L2: L3 serves, and copies the entry up.
$node->restart;
is(redis_cli('FLUSHALL'), 'OK', 'Redis emptied');
$node->safe_psql('postgres', 'SELECT tusk_cache_stats_reset()');
is($node->safe_psql('postgres', qq{SELECT tusk_cached('report', '1 hour', '$query')}),
	'[{"n": 100}]', 'with L1 and L2 lost the cached rows are still served');
is(hits_by_tier($node), 'l1=0 l2=0 l3=1', 'from L3');
is(redis_cli('EXISTS', "'${scope}report'"), '1', 'the L3 hit was copied into L2');
my $pttl = redis_cli('PTTL', "'${scope}report'");
cmp_ok($pttl, '<=', 3600 * 1000, 'with the remaining TTL, not a new one');
cmp_ok($pttl, '>', 3000 * 1000, 'and about the remaining TTL');
is($node->safe_psql('postgres', qq{SELECT tusk_cached('report', '1 hour', '$query')}),
	'[{"n": 100}]', 'the next call');
is(hits_by_tier($node), 'l1=1 l2=0 l3=1', 'is an L1 hit (copied up as well)');
# tusk_cache_get and a fingerprint that does not match
is($node->safe_psql('postgres', qq{SELECT tusk_cached('report', '1 hour', 'SELECT 0 AS other')}),
	'[{"other": 0}]', 'another query under the key is a miss, not the L3 row');

# A write, then a clean restart: the write retired the entry in every tier.
$node->safe_psql('postgres', q{INSERT INTO items VALUES (102)});
$node->restart;
is($node->safe_psql('postgres', qq{SELECT tusk_cached('report', '1 hour', '$query')}),
	'[{"n": 102}]', 'after a write and a restart the query runs again');
is($node->safe_psql('postgres', qq{SELECT tusk_cached('report', '1 hour', '$query')}),
	'[{"n": 102}]', 'and is cached again');
is(hits_by_tier($node), 'l1=1 l2=0 l3=0', 'an L1 hit');

# A crash (immediate stop) keeps L3 rows whose WAL was flushed: the table is
# WAL-logged. (A fill commits without waiting for the flush; the user's
# next synchronous commit, or the WAL writer, flushes it.) A query's entry is
# not served after a crash (the clock that judges it is lost); a value that
# depends on nothing is.
$node->safe_psql('postgres', q{SELECT tusk_cache_set('survivor', '"still here"', '1 hour')});
$node->safe_psql('postgres', q{CREATE TABLE synchronous_commit_marker ()});
$node->stop('immediate');
$node->start;
redis_cli('FLUSHALL');
is($node->safe_psql('postgres', q{SELECT tusk_cache_get('survivor')}), '"still here"',
	'after a crash the value comes from L3');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_l3 WHERE key = 'report'}), '1',
	'the query\'s row is still in L3');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_entry('report')}), '0',
	'but not served');

# Fills reach L3 when their transaction commits, and never wait for another
# session's open transaction.
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN});
$holder->query_safe(q{SELECT tusk_cache_set('held', '"holder"', '1 hour')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_l3 WHERE key = 'held'}), '0',
	'an open transaction\'s fill is not in L3 yet');
is($node->safe_psql('postgres', q{SET lock_timeout = '30s'; SELECT tusk_cache_set('held', '"other"', '1 hour')}),
	't', 'another session fills the same key without waiting');
is($node->safe_psql('postgres', q{SELECT value FROM tusk_cache_l3 WHERE key = 'held'}), '"other"',
	'and its row is there when it commits');
$holder->query_safe(q{COMMIT});
is($node->safe_psql('postgres', q{SELECT value FROM tusk_cache_l3 WHERE key = 'held'}), '"holder"',
	'L3 keeps the value of the transaction that committed last');
# Nor for rows that tusk_cache_invalidate of an open transaction is removing.
$holder->query_safe(q{BEGIN});
$holder->query_safe(q{SELECT tusk_cache_invalidate('he')});
$node->safe_psql('postgres', 'SELECT tusk_cache_stats_reset()');
is($node->safe_psql('postgres', q{SET lock_timeout = '30s'; SELECT tusk_cache_set('held', '"third"', '1 hour')}),
	't', 'a fill of a key being invalidated answers after the short lock wait');
is(stat_of($node, 'l3', 'errors'), '0', 'a lock wait given up is not an error');
$holder->query_safe(q{COMMIT});
$holder->quit;
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_l3 WHERE key = 'held'}), '0',
	'the invalidation removed the row');

# A hot standby reads L3 rows the primary wrote, does not write L3, and says
# so when asked to delete.
$node->safe_psql('postgres', q{SELECT tusk_cache_flush()});
$node->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'base', has_streaming => 1);
$standby->append_conf('postgresql.conf', "tusk.redis_host = ''");
$standby->start;
$node->safe_psql('postgres', q{SELECT tusk_cache_set('replicated', '"from the primary"', '1 hour')});
# (cache rows commit asynchronously: a synchronous commit flushes their WAL before the catch-up)
$node->safe_psql('postgres', q{CREATE TABLE flush_marker_1 ()});
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SELECT tusk_cache_get('replicated')}),
	'"from the primary"', 'the standby serves a row the primary wrote to L3');
is(hits_by_tier($standby), 'l1=0 l2=0 l3=1', 'from L3');
# A query's row is judged by the primary's clock: the standby cannot (yet) show it is fresh.
$node->safe_psql('postgres', qq{SELECT tusk_cached('replicated query', '1 hour', '$query')});
$node->safe_psql('postgres', q{SELECT tusk_cache_l3_wait()});
# (a fill commits asynchronously: a synchronous commit flushes its WAL before the catch-up)
$node->safe_psql('postgres', q{CREATE TABLE flush_marker ()});
$node->wait_for_catchup($standby);
$standby->safe_psql('postgres', 'SELECT tusk_cache_stats_reset()');
is($standby->safe_psql('postgres', qq{SELECT tusk_cached('replicated query', '1 hour', '$query')}),
	'[{"n": 102}]', 'the standby answers a query the primary cached');
is(hits_by_tier($standby), 'l1=0 l2=0 l3=0', 'by running it');
# What the standby fills is served only until its replay moves on: a commit on
# the primary, once replayed, retires it (the standby's replay runs no tusk code).
is($standby->safe_psql('postgres', q{SELECT tusk_cached('standby fill', '1 hour', 'SELECT count(*) AS n FROM items')}),
	'[{"n": 102}]', 'the standby fills');
is($standby->safe_psql('postgres', q{SELECT tusk_cached('standby fill', '1 hour', 'SELECT count(*) AS n FROM items')}),
	'[{"n": 102}]', 'and serves');
$node->safe_psql('postgres', q{INSERT INTO items VALUES (103)});
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SELECT tusk_cached('standby fill', '1 hour', 'SELECT count(*) AS n FROM items')}),
	'[{"n": 103}]', 'after the primary\'s commit is replayed, the standby does not serve its old fill');
$node->safe_psql('postgres', q{DELETE FROM items WHERE id = 103});
$node->wait_for_catchup($standby);
my ($rc, $out, $err) = $standby->psql('postgres',
	qq{SELECT tusk_cached('standby miss', '1 hour', '$query')});
is($out, '[{"n": 102}]', 'a miss on the standby runs the query');
is($err, '', 'without a warning or an error');
is($standby->safe_psql('postgres', qq{SELECT tusk_cached('standby miss', '1 hour', '$query')}),
	'[{"n": 102}]', 'and is then served');
is(stat_of($standby, 'l3', 'errors'), '0', 'the standby did not try to write L3');
($rc, $out, $err) = $standby->psql('postgres', q{SELECT tusk_cache_delete('replicated')});
like($err, qr/cannot be changed on a hot standby: the key was not removed from L3/,
	'a delete on the standby says L3 kept the row');
is($out, 't', 'and removes it from L1');

# After promotion it is a primary: it writes L3.
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
$standby->safe_psql('postgres', qq{SELECT tusk_cached('promoted', '1 hour', '$query')});
$standby->safe_psql('postgres', q{SELECT tusk_cache_l3_wait()});
is($standby->safe_psql('postgres', q{SELECT key FROM tusk_cache_l3 ORDER BY key}), "promoted\nreplicated\nreplicated query",
	'the promoted server writes L3');
is($standby->safe_psql('postgres', q{SELECT tusk_cache_delete('replicated')}), 't',
	'and deletes from it');

# A fill's L3 row is cache data: its commit does not wait for a synchronous
# standby (here one that never comes), as a write of the user's would.
$node->safe_psql('postgres', q{ALTER SYSTEM SET synchronous_standby_names = 'absent_standby'; SELECT pg_reload_conf()});
($rc, $out, $err) = $node->psql('postgres', q{SELECT tusk_cached('sync', '1 hour', 'SELECT 5 AS five')},
	timeout => 60);
is($out, '[{"five": 5}]', 'a fill commits without waiting for the synchronous standby') or diag($err);
$node->safe_psql('postgres', q{SELECT tusk_cache_l3_wait()});
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_l3 WHERE key = 'sync'}), '1',
	'and its L3 row is there');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf()});

$standby->stop;
$node->stop;
done_testing();
