# The 1000-client proof through the proxy, both forms: scaleout/cluster race.
use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;
use Scaleout;
use Test::More;

start_cluster(4, 6750);
END { stop_cluster() }

my $out = `"$FindBin::Bin/../cluster" race 1000 2>&1`;
my $rc = $? >> 8;
diag($out);
is($rc, 0, 'scaleout/cluster race exits 0');
like($out, qr/^  PASS: row form, 1000 of 1000 applied, clocks 1\.\.1000$/m,
	'row form: 1000 clients of the proxy, 1000 applied, clocks 1..1000');
like($out, qr/^  PASS: jsonb form, 1000 of 1000 applied, clocks 1\.\.1000$/m,
	'jsonb form: 1000 clients of the proxy, 1000 applied, clocks 1..1000');

for my $form ('row', 'jsonb')
{
	my ($waited) = $out =~ /^\Q$form\E form, customer.*?calls that waited for the customer's gate\s+(\d+)/ms;
	cmp_ok($waited // 0, '>', 0, "$form form: the calls queued on the gate (" . ($waited // 'none') . ' waited)');
}

# the same facts, read here rather than from the script's own report
my $proxy = db('proxy');
for my $t (['row', 'SELECT clock FROM race_log WHERE updated ORDER BY clock'],
	['jsonb', q{SELECT (answer->>'clock')::bigint FROM race_log_json
				WHERE (answer->>'updated')::boolean ORDER BY 1}])
{
	my ($form, $sql) = @$t;
	my @clocks = map { $_->[0] } rows($proxy, $sql);
	is_deeply(\@clocks, [ 1 .. 1000 ], "$form form: the logged clocks are exactly 1..1000");
}
my %owner;
while ($out =~ /^(\w+) form, customer (\d+) on partition (\d+) of 4:$/mg)
{
	$owner{$1} = [ $2, $3 ];
}
isnt($owner{row}[1], $owner{jsonb}[1], 'the two forms ran on different partitions');
for my $form ('row', 'jsonb')
{
	my ($c, $k) = @{ $owner{$form} };
	is(one($proxy, 'SELECT capaccess.partition_of($1)', $c), $k,
		"$form form: customer $c belongs to partition $k");
	is( join(',', db($k)->selectrow_array(
		'SELECT used, clock FROM capaccess.customer WHERE customer_id = $1', undef, $c)),
		'1000,1000', "$form form: partition $k holds used = clock = 1000");
}

done_testing();
