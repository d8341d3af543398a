# Never stale across restarts, crashes and concurrency, with real servers:
#   - a write, then a clean restart, a crash right after the commit, or a run
#     of the server without tusk: no tier serves what the write made stale;
#   - a bounded stress test: writers commit through several write paths
#     (INSERT, a partition, a function, a trigger, MERGE, a data-modifying
#     CTE) and, once each COMMIT has returned, add the rows it wrote to a
#     counter; cached readers read that counter, then the cached count. The
#     data only grows, so a cached count below the rows whose COMMIT had
#     returned before the call is a stale read. Zero are allowed.
# Run by make test (prove, as the server user); needs redis-server on PATH.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib "t";
use TuskRedis;

redis_start();
my $node = PostgreSQL::Test::Cluster->new('inv');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tusk'
tusk.l1_size = '16MB'
tusk.redis_host = '127.0.0.1'
tusk.redis_port = $redis_port
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION tusk;
CREATE TABLE counted (id int);
INSERT INTO counted SELECT generate_series(1, 10);});
my $query = q{SELECT count(*) AS n FROM counted};
sub cached { return $node->safe_psql('postgres', qq{SELECT tusk_cached('count', '1 hour', '$query')}); }

is(cached(), '[{"n": 10}]', 'filled');
is(cached(), '[{"n": 10}]', 'served');

# A write, then a clean restart: the saved clock carries the write.
$node->safe_psql('postgres', q{INSERT INTO counted VALUES (11)});
$node->restart;
is(cached(), '[{"n": 11}]', 'after a write and a clean restart');

# A crash right after a commit: the commit's bump is lost with shared
# memory, so nothing filled before the crash is served (L2 and L3 still
# hold the old entry).
is(cached(), '[{"n": 11}]', 'cached again');
is($node->safe_psql('postgres', q{SELECT tusk_cache_l3_wait()}), 't', 'in L3 too');
$node->safe_psql('postgres', q{INSERT INTO counted VALUES (12)});
$node->stop('immediate');
$node->start;
is(cached(), '[{"n": 12}]', 'after a commit and a crash');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_l3 WHERE key = 'count'}), '1',
	'(the entry was in L3 all along)');

# The server runs without tusk in between, and someone writes: tusk cannot
# know, so the saved clock does not match and nothing old is served.
is(cached(), '[{"n": 12}]', 'cached again');
$node->stop;
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$node->start;
$node->safe_psql('postgres', q{INSERT INTO counted VALUES (13)});
$node->stop;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'tusk'");
$node->start;
is(cached(), '[{"n": 13}]', 'after a run without tusk');

# The stress test.
$node->safe_psql('postgres', q{
CREATE TABLE stress (id bigserial, v int) PARTITION BY RANGE (id);
CREATE TABLE stress_low PARTITION OF stress FOR VALUES FROM (MINVALUE) TO (1000000);
CREATE TABLE stress_high PARTITION OF stress FOR VALUES FROM (1000000) TO (MAXVALUE);
CREATE VIEW stress_view AS SELECT id FROM stress;
CREATE TABLE stress_feed (v int);
CREATE FUNCTION stress_feed_insert() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO stress (v) VALUES (NEW.v); RETURN NEW; END$$;
CREATE TRIGGER stress_feed_trigger AFTER INSERT ON stress_feed FOR EACH ROW EXECUTE FUNCTION stress_feed_insert();
CREATE FUNCTION stress_add(n int) RETURNS void LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO stress (v) SELECT g FROM generate_series(1, n) g; END$$;
CREATE FUNCTION stress_count() RETURNS bigint LANGUAGE plpgsql STABLE AS
  $$BEGIN RETURN (SELECT count(*) FROM stress); END$$;
SELECT tusk_metric_increment('stress_stale_reads', 0);
SELECT tusk_metric_increment('stress_reads', 0);
SELECT tusk_metric_increment('stress_committed', 0);
});
my $dir = PostgreSQL::Test::Utils::tempdir();
# Each write script commits, then (its COMMIT returned) counts the rows it added.
sub counted { my ($sql, $rows) = @_; return "$sql\nSELECT tusk_metric_increment('stress_committed', $rows);\n"; }
my %scripts = (
	'write_direct.sql' => counted("INSERT INTO stress (v) VALUES (1);", 1),
	'write_partition.sql' => counted("INSERT INTO stress_low (v) VALUES (2);", 1),
	'write_function.sql' => counted("SELECT stress_add(3);", 3),
	'write_trigger.sql' => counted("INSERT INTO stress_feed VALUES (4);", 1),
	'write_merge.sql' => counted(
		"MERGE INTO stress s USING (VALUES (0)) AS x(v) ON false WHEN NOT MATCHED THEN INSERT (v) VALUES (5);", 1),
	'write_cte.sql' => counted("WITH w AS (INSERT INTO stress (v) VALUES (6) RETURNING 1) SELECT count(*) FROM w;", 1));
foreach my $how ('table', 'view', 'function')
{
	my $read = {
		table => q{SELECT count(*) AS n FROM stress},
		view => q{SELECT count(*) AS n FROM stress_view},
		function => q{SELECT stress_count() AS n} }->{$how};
	# The rows whose COMMIT has returned are counted first; the cached answer must hold them all.
	$scripts{"read_$how.sql"} = <<"EOS";
SELECT value::bigint AS direct FROM tusk_metrics WHERE name = 'stress_committed' \\gset
SELECT (tusk_cached('stress $how', '1 hour', '$read') -> 0 ->> 'n')::bigint AS cached \\gset
SELECT tusk_metric_increment('stress_reads'), CASE WHEN :cached < :direct THEN tusk_metric_increment('stress_stale_reads') END;
EOS
}
foreach my $name (keys %scripts)
{
	open(my $fh, '>', "$dir/$name") or die;
	print $fh $scripts{$name};
	close $fh;
}
my $seconds = 8;
my @connect = ('-h', $node->host, '-p', $node->port, 'postgres');
my @writers = ('pgbench', '-n', '-T', $seconds, '-c', '2', '-j', '1', '-R', '400',
	map { ('-f', "$dir/$_") } grep { /^write_/ } sort keys %scripts);
my @readers = ('pgbench', '-n', '-T', $seconds, '-c', '6', '-j', '2',
	map { ('-f', "$dir/$_") } grep { /^read_/ } sort keys %scripts);
my ($wout, $werr, $rout, $rerr) = ('', '', '', '');
my $w = IPC::Run::start([ @writers, @connect ], '>', \$wout, '2>', \$werr);
my $r = IPC::Run::start([ @readers, @connect ], '>', \$rout, '2>', \$rerr);
$w->finish;
$r->finish;
my ($writes) = $wout =~ /number of transactions actually processed: (\d+)/;
my ($reads) = $rout =~ /number of transactions actually processed: (\d+)/;
ok(defined $writes && $writes > 0 && $wout !~ /aborted/, 'the writers committed') or diag("$wout\n$werr");
ok(defined $reads && $reads > 0 && $rout !~ /aborted/, 'the readers read') or diag("$rout\n$rerr");
my $stale = $node->safe_psql('postgres',
	q{SELECT value FROM tusk_metrics WHERE name = 'stress_stale_reads'});
my $checked = $node->safe_psql('postgres', q{SELECT value FROM tusk_metrics WHERE name = 'stress_reads'});
is($stale, '0', 'no stale read');
cmp_ok($checked, '>', 0, 'reads were compared');
my $hits = $node->safe_psql('postgres', q{SELECT hits FROM tusk_cache_stats WHERE tier = 'l1'});
diag(sprintf('stress: %d writes (%.0f/s), %d cached reads (%.0f/s) compared with the rows whose COMMIT had returned, %s stale; L1 hits %s',
	$writes // 0, ($writes // 0) / $seconds, $checked, $checked / $seconds, $stale, $hits));
# The final answer of every cached read path is the table's.
my $direct = $node->safe_psql('postgres', q{SELECT count(*) FROM stress});
foreach my $how ('table', 'view', 'function')
{
	my $read = {
		table => q{SELECT count(*) AS n FROM stress},
		view => q{SELECT count(*) AS n FROM stress_view},
		function => q{SELECT stress_count() AS n} }->{$how};
	is($node->safe_psql('postgres', qq{SELECT tusk_cached('stress $how', '1 hour', '$read') -> 0 ->> 'n'}),
		$direct, "the $how path ends where the table is");
}

$node->stop;
redis_stop();
done_testing();
