# A delete racing a lookup that copies L2 up into L1. Redis is paused for
# writes (CLIENT PAUSE ... WRITE) while tusk_cache_delete waits on its DEL, and
# another session looks the key up meanwhile. 0.1.0 removed from L1 before
# L2, so that lookup missed L1, read L2 (not removed yet) and copied the
# value back into L1, where it outlived the delete. Now L2 goes first, then
# the epoch is bumped, then L1: the lookup meanwhile is an L1 hit (the delete
# has not returned), and after the delete nothing is left.
# Run by make test (prove, as the server user); needs redis-server on PATH.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

use lib "t";
use TuskRedis;

redis_start();
my $node = PostgreSQL::Test::Cluster->new('race');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tusk'
tusk.l1_size = '8MB'
tusk.redis_host = '127.0.0.1'
tusk.redis_port = $redis_port
tusk.redis_timeout = '10s'
});
$node->start;
$node->safe_psql('postgres', q{CREATE EXTENSION tusk; SET tusk.l3_enabled = off;});
$node->safe_psql('postgres', q{ALTER SYSTEM SET tusk.l3_enabled = off; SELECT pg_reload_conf();});

foreach my $round (1 .. 2)
{
	my $key = "race $round";
	is($node->safe_psql('postgres', qq{SELECT tusk_cache_set('$key', '"old"', '1 hour')}), 't', "$key: set");
	is($node->safe_psql('postgres', qq{SELECT tusk_cache_get('$key')}), '"old"', "$key: in the cache");
	is(redis_cli('CLIENT', 'PAUSE', '1500', 'WRITE'), 'OK', "$key: Redis paused for writes");
	my $deleter = $node->background_psql('postgres');
	$deleter->query_until(qr/started/, qq{\\echo started\nSELECT tusk_cache_delete('$key');\n});
	sleep(0.4);
	# the delete waits on its DEL; a lookup now
	my $during = $node->safe_psql('postgres', qq{SELECT coalesce(tusk_cache_get('$key'), 'null')});
	ok($during eq '"old"' || $during eq 'null', "$key: a lookup while the delete runs answers ($during)");
	$deleter->quit;   # waits for the delete to finish
	is($node->safe_psql('postgres', qq{SELECT tusk_cache_get('$key') IS NULL}), 't',
		"$key: after the delete returned, nothing is served");
	is(redis_cli('EXISTS', "'tusk:postgres:" . $node->safe_psql('postgres', 'SELECT current_user') . ":$key'"), '0',
		"$key: nor left in Redis");
}

$node->stop;
redis_stop();
done_testing();
