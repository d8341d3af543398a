# TuskRedis: a throwaway redis-server on a free loopback port for the TAP
# tests, started and stopped (also SIGSTOPped and continued) by the test.
package TuskRedis;
use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(sleep);

our @EXPORT = qw(redis_start redis_stop redis_pid redis_cli $redis_port $redis_dir $redis_pidfile);

# Set by the first redis_start (the test framework is not ready when this module loads).
our ($redis_dir, $redis_port, $redis_pidfile);

sub redis_start
{
	if (!defined $redis_port)
	{
		$redis_dir = PostgreSQL::Test::Utils::tempdir();
		$redis_port = PostgreSQL::Test::Cluster::get_free_port();
		$redis_pidfile = "$redis_dir/redis.pid";
	}
	system('redis-server', '--bind', '127.0.0.1', '--port', $redis_port, '--save', '',
		'--appendonly', 'no', '--daemonize', 'yes', '--pidfile', $redis_pidfile,
		'--dir', $redis_dir, '--logfile', "$redis_dir/redis.log") == 0
	  or die "redis-server did not start";
	for (1 .. 50)
	{
		return if `redis-cli -p $redis_port ping 2>/dev/null` =~ /PONG/;
		sleep 0.1;
	}
	die "redis did not answer";
}

sub redis_pid
{
	return unless defined $redis_pidfile;
	open(my $f, '<', $redis_pidfile) or return;
	my $p = <$f>;
	chomp $p;
	return $p;
}

sub redis_stop
{
	my $pid = redis_pid() or return;
	kill 'CONT', $pid;
	kill 'TERM', $pid;
	for (1 .. 50) { last unless kill 0, $pid; sleep 0.1; }
	unlink $redis_pidfile;
}

# redis-cli against the test's Redis; returns its output without the trailing newline.
sub redis_cli
{
	my $out = `redis-cli -p $redis_port @_ 2>&1`;
	chomp $out;
	return $out;
}

END { redis_stop(); }

1;
