# The tusk metrics worker and the registry with a real server: the worker
# waits for the extension, writes per-interval history, trims it after a
# reload, sweeps expired L3 rows, comes back after pg_terminate_backend and
# after a crash, and fires and clears alerts with NOTIFY. Also: a full
# registry, and the Prometheus text checked by promtool.
# Run by make test (prove, as the server user).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('metrics');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'tusk'
tusk.l1_size = '8MB'
tusk.max_metrics = 32
tusk.metrics_interval = '300ms'
tusk.database = 'postgres'
restart_after_crash = on
});
$node->start;

sub worker_pid
{
	return $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'tusk metrics worker'});
}

# Started with the server, visible in pg_stat_activity, waiting quietly for the extension.
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tusk metrics worker'}),
	'the worker shows in pg_stat_activity');
ok($node->wait_for_log(qr/extension tusk is not created in database "postgres"; waiting for it/),
	'before CREATE EXTENSION it waits, and says so');
sleep 1;
my $waiting_lines = () = slurp_file($node->logfile) =~ /waiting for it/g;
is($waiting_lines, 1, 'it says so once, not every interval');

$node->safe_psql('postgres', 'CREATE EXTENSION tusk');

# History: what one interval recorded, with that interval's own statistics.
$node->safe_psql('postgres', q{
SELECT count(*) FROM (SELECT tusk_metric_record('t_latency', g) FROM generate_series(1, 100) g) s;
SELECT tusk_metric_increment('t_requests', 5);
SELECT tusk_metric_gauge('t_depth', 42);});
ok($node->poll_query_until('postgres',
		q{SELECT coalesce(sum(count), 0) = 100 FROM tusk_metrics_history WHERE name = 't_latency'}),
	'the 100 observations reach the history');
is($node->safe_psql('postgres', q{
SELECT count(*), sum(sum), min(min), max(max), bool_and(p50 BETWEEN 49.5 AND 50.5 OR count < 100)
FROM tusk_metrics_history WHERE name = 't_latency'}),
	'1|5050|1|100|t', 'one interval row: count, sum, min, max and p50 of that interval');
ok($node->poll_query_until('postgres', q{
SELECT count(*) = 2 FROM tusk_metrics_history
WHERE (name = 't_requests' AND sum = 5 AND value = 5 AND kind = 'counter')
   OR (name = 't_depth' AND value = 42 AND kind = 'gauge')}),
	'a counter row holds the interval increase and the total, a gauge its value');
$node->safe_psql('postgres', q{SELECT tusk_metric_record('t_latency', 1000)});
ok($node->poll_query_until('postgres', q{
SELECT count(*) = 1 FROM tusk_metrics_history
WHERE name = 't_latency' AND count = 1 AND min = 1000 AND max = 1000 AND p99 BETWEEN 990 AND 1010}),
	'the next interval has only its own observation');
my $intervals = $node->safe_psql('postgres', q{
SELECT bool_and(interval_start < interval_end) FROM tusk_metrics_history});
is($intervals, 't', 'intervals run forward');

# SIGHUP: a shorter retention, read on reload, trims old history.
$node->safe_psql('postgres', q{
INSERT INTO tusk_metrics_history (interval_start, interval_end, name, kind, count)
VALUES (now() - interval '2 hours', now() - interval '1 hour', 't_old', 'counter', 1)});
sleep 1;
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_metrics_history WHERE name = 't_old'}),
	'1', 'an hour-old row stays under the default retention of 7 days');
$node->safe_psql('postgres', q{ALTER SYSTEM SET tusk.metrics_retention = '10min'; SELECT pg_reload_conf()});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM tusk_metrics_history WHERE name = 't_old'}),
	'after a reload with a 10 min retention it is trimmed');
is($node->safe_psql('postgres', q{SELECT count(*) > 0 FROM tusk_metrics_history WHERE name = 't_latency'}),
	't', 'recent history stays');

# The worker sweeps expired L3 rows even when no fill comes to sweep them.
$node->safe_psql('postgres', q{
SELECT tusk_cache_stats_reset();
SELECT tusk_cache_set('sweep ' || g, '1', '1 second') FROM generate_series(1, 50) g;});
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_l3 WHERE key LIKE '%sweep %'}),
	'50', 'fifty L3 rows with a TTL of one second');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM tusk_cache_l3 WHERE key LIKE '%sweep %'}),
	'the worker removes them once expired');
is($node->safe_psql('postgres', q{SELECT expirations >= 50 FROM tusk_cache_stats WHERE tier = 'l3'}),
	't', 'and counts them as L3 expirations');

# pg_terminate_backend: the worker exits and the postmaster starts it again.
my $pid = worker_pid();
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tusk metrics worker' AND pid <> $pid}),
	'after pg_terminate_backend the worker comes back');
$node->safe_psql('postgres', q{SELECT tusk_metric_increment('t_after_restart')});
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM tusk_metrics_history WHERE name = 't_after_restart'}),
	'and writes history again');

# A counter reset between two intervals: the next row counts from the reset.
$node->safe_psql('postgres', q{SELECT tusk_metric_increment('t_reset', 100) FROM generate_series(1, 10)});
ok($node->poll_query_until('postgres', q{SELECT coalesce(sum(sum), 0) = 1000 FROM tusk_metrics_history WHERE name = 't_reset'}),
	'a counter: 10 increments of 100');
$node->safe_psql('postgres', q{
SELECT tusk_metrics_reset('t_reset');
SELECT tusk_metric_increment('t_reset', 1) FROM generate_series(1, 11);});
ok($node->poll_query_until('postgres', q{
SELECT count(*) = 1 FROM tusk_metrics_history WHERE name = 't_reset' AND count = 11 AND sum = 11 AND value = 11}),
	'after a reset, 11 increments of 1: the row says 11, not 11 - 1000');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tusk_metrics_history WHERE name = 't_reset' AND sum < 0}),
	'0', 'and no interval has a negative increase');

# pg_cancel_backend on the idle worker cancels nothing and does not end it.
$pid = worker_pid();
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
sleep 1;
is(worker_pid(), $pid, 'pg_cancel_backend does not end the worker');

# Alerts: a rule fires in the interval that breaks it and clears in the next;
# each change is one NOTIFY tusk_alerts with a JSON payload and one log line.
$node->safe_psql('postgres', q{SELECT tusk_alert_create('slow_thing', 't_alerted', 'max', '>', 10)});
my $log_offset = -s $node->logfile;
my ($stdout, $stderr);
$node->psql('postgres', q{
LISTEN tusk_alerts;
SELECT tusk_metric_record('t_alerted', 50);
SELECT pg_sleep(2.5);},
	stdout => \$stdout, stderr => \$stderr);
like($stderr . $stdout,
	qr/Asynchronous notification "tusk_alerts" with payload "\{"alert" : "slow_thing", "state" : "firing", "metric" : "t_alerted", "statistic" : "max", "comparison" : ">", "threshold" : 10, "observed" : 50/,
	'the alert fires with a JSON payload');
like($stderr . $stdout, qr/"alert" : "slow_thing", "state" : "ok"/, 'and clears in the next interval');
is($node->safe_psql('postgres', q{SELECT state, observed IS NULL FROM tusk_alerts WHERE name = 'slow_thing'}),
	'ok|t', 'tusk_alerts shows the rule cleared');
ok($node->wait_for_log(qr/tusk alert "slow_thing" is firing: max of t_alerted is 50, threshold > 10/, $log_offset),
	'the firing is logged');
my $firing_lines = () = substr(slurp_file($node->logfile), $log_offset) =~ /tusk alert "slow_thing" is firing/g;
is($firing_lines, 1, 'once');
my ($rc, $out, $err) = $node->psql('postgres', q{SELECT tusk_alert_create('bad', 't', 'p42', '>', 1)});
like($err, qr/unknown statistic "p42"/, 'an unknown statistic is refused');
($rc, $out, $err) = $node->psql('postgres', q{SELECT tusk_alert_create('bad', 't', 'max', '!=', 1)});
like($err, qr/unknown comparison "!="/, 'an unknown comparison is refused');
($rc, $out, $err) = $node->psql('postgres', q{SELECT tusk_alert_create(repeat('a', 64), 't', 'max', '>', 1)});
like($err, qr/an alert name is 1 to 63 characters/, 'a long alert name is refused (its NOTIFY payload must fit)');
($rc, $out, $err) = $node->psql('postgres', q{SELECT tusk_alert_create('bad', 't', 'max', '>', 'NaN')});
like($err, qr/threshold must be a finite number/, 'a NaN threshold is refused');
is($node->safe_psql('postgres', q{SELECT tusk_alert_drop('slow_thing'), tusk_alert_drop('slow_thing')}),
	't|f', 'tusk_alert_drop');

# Prometheus text: promtool accepts it, also when a metric is named like a
# sample of a histogram's summary (it is left out, with a comment).
$node->safe_psql('postgres', q{SELECT tusk_metric_gauge('t_latency_count', 1)});
my $text = $node->safe_psql('postgres', 'SELECT tusk_metrics_prometheus()');
like($text, qr/^# TYPE t_requests_total counter\nt_requests_total 5$/m, 'a counter, with _total');
like($text, qr/^t_latency\{quantile="0.99"\} /m, 'a histogram, as a summary');
like($text, qr/^# tusk: gauge t_latency_count is not exported: histogram t_latency exports a sample of that name$/m,
	'a gauge named like a sample of the summary is left out');
my $file = "$PostgreSQL::Test::Utils::tmp_check/metrics.prom";
open(my $fh, '>', $file) or die;
print $fh "$text\n";
close $fh;
my $promtool = `sh -c 'command -v promtool'`;
chomp $promtool;
ok($promtool ne '', 'promtool is installed');
my $check = `promtool check metrics < $file 2>&1`;
is($?, 0, 'promtool check metrics accepts it') or diag($check);
open($fh, '>', "$file.bad") or die;
print $fh "# TYPE broken counter\nbroken{ 1\n";
close $fh;
$check = `promtool check metrics < $file.bad 2>&1`;
isnt($?, 0, 'and would refuse a broken text');

# A full registry: a clear error, and the metrics that exist keep working.
my $free = $node->safe_psql('postgres', q{SELECT 32 - count(*) FROM tusk_metrics});
$node->safe_psql('postgres', qq{SELECT tusk_metric_increment('t_fill_' || g) FROM generate_series(1, $free) g});
($rc, $out, $err) = $node->psql('postgres', q{SELECT tusk_metric_increment('t_one_too_many')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/53400: cannot create metric "t_one_too_many": all 32 metric slots are in use/,
	'a full registry is an error with SQLSTATE 53400');
like($err, qr/Raise tusk.max_metrics/, 'with a hint');
$node->safe_psql('postgres', q{SELECT tusk_metric_increment('t_requests')});
is($node->safe_psql('postgres', q{SELECT value FROM tusk_metrics WHERE name = 't_requests'}),
	'6', 'existing metrics still record');

# A crash of a backend restarts the server (and empties the registry); the worker
# is back with it, and the first interval of the new registry is not lost.
my $backend = $node->background_psql('postgres');
# (make test's server-health check knows this backend by its last query.)
my $backend_pid = $backend->query_safe('SELECT pg_backend_pid() AS killed_on_purpose');
kill 'KILL', $backend_pid;
$backend->quit;
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tusk metrics worker'}),
	'after a crash restart the worker runs again');
$node->safe_psql('postgres', q{SELECT tusk_metric_increment('t_after_crash')});
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM tusk_metrics_history WHERE name = 't_after_crash'}),
	'and writes history again');

$node->stop;

# Without shared_preload_libraries: CREATE EXTENSION loads tusk into a running
# backend, which must not end it (PostgreSQL refuses server-start settings
# then), and every function says what is missing.
my $plain = PostgreSQL::Test::Cluster->new('not_preloaded');
$plain->init;
$plain->start;
($rc, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION tusk', extra_params => [ '-v', 'VERBOSITY=verbose' ]);
is($rc, 0, 'CREATE EXTENSION works without the preload') or diag($err);
foreach my $call (q{tusk_cached('k', '1 min', 'SELECT 1')}, q{tusk_metric_record('m', 1)},
	q{tusk_trace_start('op')})
{
	($rc, $out, $err) = $plain->psql('postgres', "SELECT $call", extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/ERROR:  55000: .*shared_preload_libraries/s, "$call: 55000, naming shared_preload_libraries");
}
is($plain->safe_psql('postgres', 'SELECT 1'), '1', 'and the server is fine');
unlike(slurp_file($plain->logfile), qr/FATAL|terminated by signal/, 'no backend ended');
$plain->stop;
done_testing();
