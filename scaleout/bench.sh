#!/bin/bash
# The benchmark through the proxy (scaleout/cluster bench [options]).
#
# For each partition count (default 1, 2 and 4) it starts a cluster of its
# own (scaleout/cluster, in a directory and ports apart from yours), loads
# each partition with the customers it owns, and runs the hot workload (one
# customer) and the uniform one (100,000 customers, each call a random one)
# at each client count (default 1, 16 and 256; 1 client, which measures the
# hop's latency, with the first partition count only), --rounds times.
# Points of 64 clients or more run longer (15 s direct, 50 s through the
# proxy): through the proxy, each new backend's first call opens its
# connection to the partition, and the measurement starts once 95% of the
# clients have had an answer.  In every
# round each point runs twice, side by side: through the proxy, and against
# capaccess called directly on one server of its own (same settings, every
# customer).  Each point is pgbench with capaccess_update(k, 1).
#
# Writes DIR/results.csv (one row per point and round), DIR/results.md
# (medians over the rounds, the proxy/direct ratio and the hop's cost per
# call) and DIR/machine.txt.  DIR defaults to
# bench/results/<timestamp>-scaleout.
#
# On one machine the partitions share its cores: the numbers measure what
# the proxy hop costs and show that nothing is lost; they are not the
# speed-up of N machines (README, "Scaling out").
#
# Usage: scaleout/cluster bench [--quick] [--seconds N] [--clients 1,16,256]
#                               [--partitions 1,2,4] [--rounds N] [--out DIR]
# --quick: 4-second points, 16 clients, 1 and 2 partitions, one round; a
# smoke test (CI runs it), not a measurement.  Exits 1 if an update was
# lost or a call failed; performance is reported, never enforced.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=$($PG_CONFIG --bindir)

seconds=15
clients=1,16,256
partitions=1,2,4
rounds=2
out=
while [ $# -gt 0 ]; do
	case $1 in
		--quick) seconds=4; clients=16; partitions=1,2; rounds=1 ;;
		--seconds) seconds=$2; shift ;;
		--clients) clients=$2; shift ;;
		--partitions) partitions=$2; shift ;;
		--rounds) rounds=$2; shift ;;
		--out) out=$2; shift ;;
		*) echo "unknown option: $1" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" -eq 0 ] || { echo "scaleout/cluster bench runs as root" >&2; exit 2; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
[ -n "$out" ] || out=$top/bench/results/$stamp-scaleout
mkdir -p "$out"
work=$(mktemp -d /tmp/capaccess-scaleout-bench.XXXXXX)
# postgres's alone: the direct server's socket is in it, and trusts
chmod 700 "$work"
chown postgres: "$work"
export CAPACCESS_SCALEOUT_DIR=$work/cluster
export CAPACCESS_SCALEOUT_PORT=${CAPACCESS_BENCH_PORT:-6840}

# the direct server: one server, capaccess preloaded, the partitions' settings
. "$top/scripts/server.sh"
server_start "$work/direct" "shared_buffers = 128MB"
direct_env="PGHOST=$PGHOST PGPORT=$PGPORT"
trap '"$here/cluster" stop >/dev/null 2>&1 || true; server_stop "$work/direct"; rm -rf "$work"' EXIT
ulimit -n 8192 2>/dev/null || true

# psql_at "PGHOST=.. PGPORT=.." ARG...: psql as postgres, database from ARGs
psql_at()
{
	local env=$1
	shift
	runuser -u postgres -- env $env PGUSER=postgres "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"
}

# load ENV DB N K: the customers partition K of N owns (all of them for N = 1):
# customer 1 (the hot one) and 1000..100999, bulk-loaded as a restore would
load()
{
	psql_at "$1" -d "$2" <<EOF
INSERT INTO capaccess.customer
SELECT id, 1000000000000, 0, 'standard', 0, NULL,
	   capaccess.state_hash(id, 0, 0, 1000000000000, 'standard'), now()
  FROM (SELECT 1::bigint AS id UNION ALL SELECT generate_series(1000, 100999)) ids
 WHERE (hashint8(id) & ($3 - 1)) = $4;
VACUUM ANALYZE capaccess.customer;
EOF
}

psql_at "$direct_env" -d postgres -c 'CREATE EXTENSION capaccess'
load "$direct_env" postgres 1 0

# the sum of used over the target's servers
used_sum()
{
	local target=$1 n=$2 k sum=0
	if [ "$target" = direct ]; then
		psql_at "$direct_env" -d postgres -c 'SELECT coalesce(sum(used), 0) FROM capaccess.customer'
		return
	fi
	for ((k = 0; k < n; k++)); do
		sum=$((sum + $(psql_at "$(part_env "$k")" -c 'SELECT coalesce(sum(used), 0) FROM capaccess.customer')))
	done
	echo "$sum"
}

# part_env [K]: PGHOST=... PGPORT=... PGDATABASE=... of partition K, or of
# the proxy without K
part_env()
{
	"$here/cluster" env ${1:+"$1"} | sed 's/^export //; s/PGUSER=[^ ]*//'
}

{
	echo "date: $stamp"
	echo "cores: $(nproc)"
	echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
	echo "postgresql: $(psql_at "$direct_env" -d postgres -c 'SELECT version()')"
	echo "plproxy: $(dpkg-query -W -f '${Version}' postgresql-15-plproxy 2>/dev/null || echo unknown)"
	echo "pgbench: $("$PGBIN/pgbench" --version) (-j up to 2)"
	echo "point: $seconds s (and a ramp); tps and mean latency over the steady part: from 1 s after 95% of the clients had their first answer to the last 10%"
	echo "servers: max_connections = 1100, shared_buffers = 128MB, fsync on; Unix sockets"
	echo "rounds: $rounds"
} >"$out/machine.txt"
cat "$out/machine.txt"

csv=$out/results.csv
echo "partitions,workload,clients,round,target,tps,latency_ms,window_s,transactions,failed,lost" >"$csv"

# steady LOGS...: "tps mean_latency_ms window_s" over the steady part of
# the point: from 1 s after 95% of the clients had their first answer (through
# the proxy, each new backend's first call opens its connection to the
# partition: with 256 clients that takes seconds, and a pooled proxy in
# production pays it once) to the last 10% of the point, when clients stop
steady()
{
	cat "$@" | awk '
		$3 ~ /^[0-9]+$/ {
			t[++n] = $5 + $6 / 1e6; l[n] = $3
			if (!($1 in first) || t[n] < first[$1]) first[$1] = t[n]
			if (min == "" || t[n] < min) min = t[n]
			if (t[n] > max) max = t[n]
		}
		END {
			# when 95% of the clients had their first answer (one slow
			# starter does not hold back the window)
			m = 0
			for (c in first) f[++m] = first[c]
			for (i = 2; i <= m; i++)
				for (j = i; j > 1 && f[j - 1] > f[j]; j--) { x = f[j]; f[j] = f[j - 1]; f[j - 1] = x }
			ready = f[int(0.95 * (m - 1)) + 1]
			lo = ready + 1; hi = max - 0.1 * (max - min)
			for (i = 1; i <= n; i++) if (t[i] >= lo && t[i] < hi) { k++; sum += l[i] }
			if (k == 0 || hi <= lo) { print "0 0 0"; exit }
			printf "%.1f %.3f %.1f\n", k / (hi - lo), sum / k / 1000, hi - lo
		}'
}

failed_any=0

# point N WORKLOAD CLIENTS ROUND TARGET
point()
{
	local n=$1 workload=$2 c=$3 round=$4 target=$5 env before after tx failed lost tps lat window rc ramp
	local script=$work/$workload.pgbench log=$work/pgbench.out
	if [ "$target" = direct ]; then
		env="$direct_env PGDATABASE=postgres"
	else
		env=$(part_env)
	fi
	before=$(used_sum "$target" "$n")
	rm -f "$work"/point.*
	# 64 clients and more: more time for the ramp, which steady() leaves out
	# (through the proxy, with every client running, 256 connections to the
	# partition take up to 40 s on 2 cores)
	ramp=0
	[ "$c" -ge 64 ] && ramp=15
	[ "$c" -ge 64 ] && [ "$target" = proxy ] && ramp=50
	runuser -u postgres -- env $env PGUSER=postgres "$PGBIN/pgbench" -n -c "$c" \
		-j "$((c < 2 ? c : 2))" -T "$((seconds + ramp))" -f "$script" --log \
		--log-prefix="$work/point" >"$log" 2>&1 && rc=0 || rc=$?
	after=$(used_sum "$target" "$n")
	tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$log")
	[ -n "$tx" ] || { tx=0; failed=1; }
	# pgbench counts only serialization and deadlock failures; any other
	# error aborts its client, and pgbench exits 2
	if [ "$rc" -ne 0 ] || grep -q 'aborted' "$log"; then
		tail -n 5 "$log"
		failed=$(( ${failed:-0} > 0 ? failed : 1 ))
	fi
	lost=$((tx - (after - before)))
	read -r tps lat window <<<"$(steady "$work"/point.*)"
	echo "$n,$workload,$c,$round,$target,$tps,$lat,$window,$tx,${failed:-0},$lost" >>"$csv"
	printf '%d partition(s) %-8s %4d clients round %d %-6s: %9s tps, mean latency %8s ms (over %s s), %s failed, %s lost\n' \
		"$n" "$workload" "$c" "$round" "$target" "$tps" "$lat" "$window" "${failed:-0}" "$lost"
	if [ "$lost" -ne 0 ] || [ "${failed:-0}" -ne 0 ]; then
		failed_any=1
	fi
}

printf '\\set k 1\nSELECT * FROM capaccess_update(:k, 1);\n' >"$work/hot.pgbench"
printf '\\set k random(1000, 100999)\nSELECT * FROM capaccess_update(:k, 1);\n' >"$work/uniform.pgbench"
chown postgres: "$work"/*.pgbench

IFS=, read -r -a P <<<"$partitions"
IFS=, read -r -a C <<<"$clients"
for n in "${P[@]}"; do
	"$here/cluster" start "$n" >/dev/null
	for ((k = 0; k < n; k++)); do
		load "$(part_env "$k")" capaccess "$n" "$k"
	done
	for ((round = 1; round <= rounds; round++)); do
		for workload in hot uniform; do
			for c in "${C[@]}"; do
				# one client measures the hop's latency: with the first
				# partition count only
				[ "$c" -eq 1 ] && [ "$n" != "${P[0]}" ] && continue
				point "$n" "$workload" "$c" "$round" direct
				point "$n" "$workload" "$c" "$round" proxy
			done
		done
	done
	verify=$(psql_at "$(part_env)" -c 'SELECT count(*) FROM capaccess_verify()')
	echo "$n partition(s): capaccess_verify() rows on every partition: $verify"
	[ "$verify" = 0 ] || failed_any=1
	"$here/cluster" stop >/dev/null
done

"$here/bench-report" "$out"
exit $failed_any
