# L2 with real servers: two PostgreSQL clusters sharing one Redis, a restart
# that loses L1, and Redis stopped, hung (SIGSTOP) and back during the test.
# Run by make test (prove, as the server user); needs redis-server on PATH.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use lib "t";
use TuskRedis;

sub new_node
{
	my ($name, $extra, %init) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%init);
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tusk'
tusk.l1_size = '8MB'
tusk.redis_host = '127.0.0.1'
tusk.redis_port = $redis_port
$extra
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION tusk');
	return $node;
}

sub l2_counter
{
	my ($node, $column) = @_;
	return $node->safe_psql('postgres', "SELECT $column FROM tusk_cache_stats WHERE tier = 'l2'");
}

sub log_matches
{
	my ($node, $pattern) = @_;
	my $log = slurp_file($node->logfile);
	my @hits = ($log =~ /$pattern/g);
	return scalar @hits;
}

redis_start();
my $a = new_node('a', '', allows_streaming => 1);
my $b = new_node('b', '');

# Two servers, one Redis: a value that depends on nothing (tusk_cache_set
# without depends_on) is shared through L2.
is($a->safe_psql('postgres', q{SELECT tusk_cache_set('shared set', '{"answer": 42}', '5 min')}), 't',
	'server a sets a value');
is($b->safe_psql('postgres', q{SELECT tusk_cache_get('shared set')}), '{"answer": 42}',
	'server b gets it');
is(l2_counter($b, 'hits'), '1', 'server b served it from L2');
# A query's value depends on what it read, judged by the clock of the server
# that filled it: another server cannot show that it is still fresh, so it
# runs the query itself (coherence across servers is a later release's).
is($a->safe_psql('postgres', q{SELECT tusk_cached('peer', '5 min', 'SELECT 42 AS answer')}),
	'[{"answer": 42}]', 'server a fills a query\'s value');
is($b->safe_psql('postgres', q{SELECT tusk_cached('peer', '5 min', 'SELECT 42 AS answer')}),
	'[{"answer": 42}]', 'server b answers the same');
is(l2_counter($b, 'hits'), '1', 'not from server a\'s entry');
is(l2_counter($b, 'sets'), '1', 'but by running the query and storing its own');

# A clean restart loses L1; L2 still has the entry, and the clock that judges
# it was saved at shutdown: the hit is served and copied back up.
is($a->safe_psql('postgres', q{SELECT tusk_cached('shared', '5 min', 'SELECT 42 AS answer')}),
	'[{"answer": 42}]', 'server a fills another');
$a->restart;
$a->safe_psql('postgres', 'SELECT tusk_cache_stats_reset()');
is($a->safe_psql('postgres', q{SELECT tusk_cache_get('shared')}), '[{"answer": 42}]',
	'after a restart the entry comes from L2');
is(l2_counter($a, 'hits'), '1', 'one L2 hit');
$a->safe_psql('postgres', q{SELECT tusk_cache_get('shared')});
is($a->safe_psql('postgres', q{SELECT hits FROM tusk_cache_stats WHERE tier = 'l1'}), '1',
	'the next lookup is an L1 hit');
# A crash loses the clock: nothing can show that the entry saw every commit
# before the crash, so it is not served; a value without dependencies is.
$a->safe_psql('postgres', q{SELECT tusk_cache_set('crash set', '"kept"', '5 min')});
$a->stop('immediate');
$a->start;
is($a->safe_psql('postgres', q{SELECT tusk_cache_get('shared') IS NULL}), 't',
	'after a crash a query\'s entry is not served');
is($a->safe_psql('postgres', q{SELECT tusk_cache_get('crash set')}), '"kept"',
	'a value that depends on nothing still is');

# Values in Redis that tusk cannot read are misses and counted errors, never failed calls.
my $scope = 'tusk:postgres:' . $a->safe_psql('postgres', 'SELECT current_user') . ':';
my $fp = '0' x 32;
# A validity record that depends on nothing (see core/dependency_clock.hpp): magic, flags, count, domain, clock.
my $none = '544b4431' . '0000' . '0000' . ('0' x 32);
my %garbage = (
	'not tusk format' => 'plain text',
	'number out of range' => qq({"fingerprint":"$fp","value":1e1000000}),
	'nested too deep' => qq({"fingerprint":"$fp","value":) . ('[' x 100000) . (']' x 100000) . '}',
	'invalid utf-8' => qq({"fingerprint":"$fp","value":"\xff\xfe"}),
	'bad unicode escape' => qq({"fingerprint":"$fp","value":"\\ud800"}),
	'trailing comma' => qq({"fingerprint":"$fp","value":[1,]}),
	'control character in a string' => qq({"fingerprint":"$fp","value":["a\x01b"]}),
	'leading zero' => qq({"fingerprint":"$fp","value":[01]}));
my $g = 0;
foreach my $what (sort keys %garbage)
{
	$g++;
	my $file = "$redis_dir/garbage$g";
	open(my $fh, '>:raw', $file) or die;
	print $fh $garbage{$what};
	close $fh;
	system("redis-cli -p $redis_port -x SET '${scope}garbage$g' < $file > /dev/null") == 0 or die;
	my ($grc, $gout, $gerr) = $a->psql('postgres', qq{SELECT tusk_cache_get('garbage$g') IS NULL});
	is($gout, 't', "$what: a miss") or diag($gerr);
	is($a->safe_psql('postgres', qq{SELECT tusk_cached('garbage$g', '5 min', 'SELECT $g AS n')}),
		qq([{"n": $g}]), "$what: tusk_cached answers and replaces it");
}
# JSON that jsonb would not print (exponents, escapes, duplicate keys), as
# another program might write it, is read as jsonb_in reads it.
my %foreign = (
	'exponent' => [ qq({"fingerprint":"$fp","validity":"$none","value":[1.5e3, -2E-2]}), '[1500, -0.02]' ],
	'escapes' => [ qq({"fingerprint":"$fp","validity":"$none","value":["a\\"b\\u0041\\n"]}), q(["a\"bA\n"]) ],
	'duplicate keys' => [ qq({"fingerprint":"$fp","validity":"$none","value":{"k": 1, "k": 2}}), '{"k": 2}' ],
	'whitespace' => [ qq({"fingerprint":"$fp","validity":"$none","value": \t[ {"a" :\r\n true} ] }), '[{"a": true}]' ],
	'no validity (tusk 0.1.0)' => [ qq({"fingerprint":"$fp","value":[1]}), '' ]);
foreach my $what (sort keys %foreign)
{
	$g++;
	my $file = "$redis_dir/foreign$g";
	open(my $fh, '>:raw', $file) or die;
	print $fh $foreign{$what}[0];
	close $fh;
	system("redis-cli -p $redis_port -x SET '${scope}foreign$g' < $file > /dev/null") == 0 or die;
	is($a->safe_psql('postgres', qq{SELECT tusk_cache_get('foreign$g')}), $foreign{$what}[1],
		"$what: read as jsonb_in reads it");
}
system("redis-cli -p $redis_port LPUSH '${scope}a list' x > /dev/null") == 0 or die;
is($a->safe_psql('postgres', q{SELECT tusk_cached('a list', '5 min', 'SELECT 1 AS n')}),
	'[{"n": 1}]', 'a key of another Redis type is a miss');
cmp_ok(l2_counter($a, 'errors'), '>=', 9, 'unreadable values are counted as errors');

# A backend keeps its connection; when Redis restarts under it, the next call reconnects.
my $pidfile_before = redis_pid();
my ($krc, $kout, $kerr) = $a->psql('postgres', qq{
SELECT tusk_cache_stats_reset();
SELECT tusk_cache_set('kept 1', '1', '5 min');
\\! redis-cli -p $redis_port shutdown nosave > /dev/null 2>&1; redis-server --bind 127.0.0.1 --port $redis_port --save '' --appendonly no --daemonize yes --pidfile $redis_pidfile --dir $redis_dir > /dev/null; sleep 0.5
SELECT tusk_cache_set('kept 2', '2', '5 min');
SELECT errors FROM tusk_cache_stats WHERE tier = 'l2';});
like($kout, qr/^t\nt\n0$/m, 'the same backend reconnects without an error after a Redis restart')
  or diag("out: $kout err: $kerr");

# Redis stopped: every call still answers, the failure is counted and logged once.
redis_stop();
$a->safe_psql('postgres', 'SELECT tusk_cache_stats_reset()');
is( $a->safe_psql(
		'postgres',
		q{SELECT count(DISTINCT tusk_cached('down ' || g, '5 min', 'SELECT ' || g || ' AS n')::text) FROM generate_series(1, 300) g}
	),
	'300',
	'300 calls answer correctly with Redis down');
cmp_ok(l2_counter($a, 'errors'), '>=', 1, 'the failure is counted');
cmp_ok(l2_counter($a, 'errors'), '<=', 2, 'the breaker skips L2 instead of failing every call');
is(log_matches($a, qr/tusk: Redis L2 at [^\n]* failed/), 1, 'one log line, not one per call');
my ($rc, $out, $err) = $a->psql('postgres', q{SELECT tusk_cache_delete('shared')});
like($err, qr/WARNING:  tusk: Redis \(L2\) could not be reached: the key was not removed from L2/,
	'a delete that cannot reach Redis says so');

# Redis back: L2 is used again without a restart once the back-off has passed.
redis_start();
sleep 2.5;
$a->safe_psql('postgres', q{SELECT tusk_cache_set('back', '"again"', '5 min')});
is(l2_counter($a, 'sets'), '1', 'L2 is written again after Redis returns');
is($b->safe_psql('postgres', q{SELECT tusk_cache_get('back')}), '"again"',
	'and the other server reads it');
is(log_matches($a, qr/tusk: Redis L2 at [^\n]* is answering again/), 1, 'the recovery is logged');

# Redis hung (SIGSTOP): calls still answer, bounded by the breaker, not 300 timeouts.
kill 'STOP', redis_pid();
$a->safe_psql('postgres', 'SELECT tusk_cache_stats_reset()');
my $start = time();
($rc, $out, $err) = $a->psql(
	'postgres',
	q{SET statement_timeout = '20s';
	  SELECT count(tusk_cached('hung ' || g, '5 min', 'SELECT 1 AS one')) FROM generate_series(1, 300) g});
my $took = time() - $start;
is($out, '300', '300 calls answer with Redis hung') or diag($err);
cmp_ok(l2_counter($a, 'errors'), '<=', 3, 'a hung Redis costs a few timeouts, not one per call');
note(sprintf('300 calls with Redis hung took %.2f s', $took));

# A cancel (statement_timeout) ends a wait on a hung Redis at once, and the session goes on.
$a->safe_psql('postgres', q{ALTER SYSTEM SET tusk.redis_timeout = '60s'; SELECT pg_reload_conf()});
sleep 3;    # past the breaker's back-off, so the next call waits on Redis
($rc, $out, $err) = $a->psql(
	'postgres',
	q{SET statement_timeout = '500ms';
	  SELECT tusk_cached('cancel me', '5 min', 'SELECT 1 AS one');});
like($err, qr/canceling statement due to statement timeout/, 'statement_timeout cancels a wait on Redis');
$a->safe_psql('postgres', q{ALTER SYSTEM RESET tusk.redis_timeout; SELECT pg_reload_conf()});
kill 'CONT', redis_pid();

# The password is for superusers only and never appears in the log.
$b->append_conf('postgresql.conf', "tusk.redis_password = 'Wr0ng-Secr3t'");
$b->reload;
sleep 0.5;
$b->safe_psql('postgres', q{CREATE ROLE plain LOGIN});
($rc, $out, $err) = $b->psql('postgres', 'SHOW tusk.redis_password', extra_params => [ '-U', 'plain' ]);
like($err, qr/must be superuser|permission denied|privileges of pg_read_all_settings/,
	'a plain role cannot read the password');
is($b->safe_psql('postgres', q{SELECT tusk_cached('pw', '5 min', 'SELECT 7 AS seven')}),
	'[{"seven": 7}]', 'a refused password does not fail the call');
cmp_ok(l2_counter($b, 'errors'), '>=', 1, 'the refused password is counted');
# (PostgreSQL itself logs the new value of any setting changed by a reload.)
is(log_matches($b, qr/tusk:[^\n]*Wr0ng-Secr3t/), 0, 'no tusk message contains the password');
like(slurp_file($b->logfile), qr/Redis refused the password/, 'the log says why');

# A hot standby of server a: L1 and L2 work there. It shares a's values that
# depend on nothing; a query's value filled on one of them is not taken as
# fresh by the other (a lagging standby's value must never pass for the
# primary's).
$a->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($a, 'base', has_streaming => 1);
$standby->start;
$a->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
$a->safe_psql('postgres', q{SELECT tusk_cache_set('from primary', '[{"one": 1}]', '5 min')});
is($standby->safe_psql('postgres', q{SELECT tusk_cache_get('from primary')}),
	'[{"one": 1}]', 'the standby answers');
is(l2_counter($standby, 'hits'), '1', 'from the entry the primary put in L2');
is($standby->safe_psql('postgres', q{SELECT tusk_cached('on standby', '5 min', 'SELECT 2 AS two')}),
	'[{"two": 2}]', 'a miss on the standby runs the query');
is($standby->safe_psql('postgres', q{SELECT tusk_cached('on standby', '5 min', 'SELECT 2 AS two')}),
	'[{"two": 2}]', 'and the next call is a hit');
is($standby->safe_psql('postgres', q{SELECT hits FROM tusk_cache_stats WHERE tier = 'l1'}), '1',
	'an L1 hit on the standby');
is($a->safe_psql('postgres', q{SELECT tusk_cache_get('on standby') IS NULL}), 't',
	'the primary does not serve a query\'s value the standby filled');
$standby->stop;

# With tusk.l1_size = 0 a server runs on L2 alone.
my $c = new_node('c', "tusk.l1_size = 0");
is($c->safe_psql('postgres', q{SELECT tusk_cached('no l1', '5 min', 'SELECT 3 AS three')}),
	'[{"three": 3}]', 'L1 off: a miss');
is($c->safe_psql('postgres', q{SELECT tusk_cached('no l1', '5 min', 'SELECT 3 AS three')}),
	'[{"three": 3}]', 'L1 off: the same rows');
is($c->safe_psql('postgres', q{SELECT tier, hits, sets FROM tusk_cache_stats ORDER BY tier}),
	"l1|0|0\nl2|1|1\nl3|0|1", 'served from L2, nothing in L1 (L3 filled, not read)');
$c->stop;

$a->stop;
$b->stop;
done_testing();
