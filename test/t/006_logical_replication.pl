# A logical replication subscriber: its apply worker writes rows without the
# executor's permission check, where tusk sees other writes. Each transaction
# it applies therefore retires every query value of its database: a value
# cached on the subscriber never outlives an applied change.
# Run by make test (prove, as the server user).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $publisher = PostgreSQL::Test::Cluster->new('publisher');
$publisher->init(allows_streaming => 'logical');
$publisher->start;
my $subscriber = PostgreSQL::Test::Cluster->new('subscriber');
$subscriber->init;
$subscriber->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tusk'
tusk.l1_size = '8MB'
});
$subscriber->start;

$publisher->safe_psql('postgres', q{
CREATE TABLE items (id int PRIMARY KEY);
INSERT INTO items SELECT generate_series(1, 5);
CREATE PUBLICATION items_pub FOR TABLE items;});
$subscriber->safe_psql('postgres', q{
CREATE EXTENSION tusk;
CREATE TABLE items (id int PRIMARY KEY);
CREATE TABLE local_only (n int);});
my $conninfo = $publisher->connstr . ' dbname=postgres';
$subscriber->safe_psql('postgres', "CREATE SUBSCRIPTION items_sub CONNECTION '$conninfo' PUBLICATION items_pub");
$publisher->wait_for_catchup('items_sub');
$subscriber->poll_query_until('postgres', q{SELECT count(*) = 5 FROM items}) or die 'no initial copy';

my $query = q{SELECT count(*) AS n FROM items};
is($subscriber->safe_psql('postgres', qq{SELECT tusk_cached('count', '1 hour', '$query')}), '[{"n": 5}]',
	'the subscriber caches a count of the replicated table');
is($subscriber->safe_psql('postgres', qq{SELECT tusk_cached('count', '1 hour', '$query')}), '[{"n": 5}]',
	'and serves it');

$publisher->safe_psql('postgres', q{INSERT INTO items VALUES (6)});
$publisher->wait_for_catchup('items_sub');
is($subscriber->safe_psql('postgres', qq{SELECT tusk_cached('count', '1 hour', '$query')}), '[{"n": 6}]',
	'an applied INSERT retires it');
$publisher->safe_psql('postgres', q{DELETE FROM items WHERE id = 1});
$publisher->wait_for_catchup('items_sub');
is($subscriber->safe_psql('postgres', qq{SELECT tusk_cached('count', '1 hour', '$query')}), '[{"n": 5}]',
	'an applied DELETE too');
# Conservative: the apply worker's transaction retires the database's other query values as well.
is($subscriber->safe_psql('postgres', q{SELECT tusk_cached('local', '1 hour', 'SELECT count(*) AS n FROM local_only')}),
	'[{"n": 0}]', 'a value of a local table');
$publisher->safe_psql('postgres', q{UPDATE items SET id = 100 WHERE id = 2});
$publisher->wait_for_catchup('items_sub');
is($subscriber->safe_psql('postgres', q{SELECT count(*) FROM tusk_cache_entry('local')}), '0',
	'is retired by an applied UPDATE as well');

$subscriber->stop;
$publisher->stop;
done_testing();
