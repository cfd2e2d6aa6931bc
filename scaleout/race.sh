#!/bin/bash
# The 1000-client proof through the proxy (scaleout/cluster race [CLIENTS]).
#
# On the running cluster (scaleout/cluster start), CLIENTS pgbench clients
# (default 1000) of the proxy each make one call on the same customer, as
# the role billing_admin (no superuser anywhere on the way): first with
# capaccess_update(customer_id, 1), then, on a second customer, with
# capaccess_update(query jsonb, data jsonb) (on a customer of another
# partition, if there are two or more).  Each call's result is logged
# in the proxy database in the statement that makes the call, so the log
# holds only calls whose update had committed on the partition.
#
# Passes when, for each form: the calls queued on the customer's gate (its
# partition's capaccess_stats().waits grew), every client's call was logged and accepted,
# the clocks are exactly 1..CLIENTS with distinct seq values, the owning
# partition (the one hashint8(customer_id) & (N - 1) names) holds
# used = clock = CLIENTS, no other partition holds the customer, and
# capaccess_verify() is empty on every partition.  Exits 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
clients=${1:-1000}
row_customer=${CAPACCESS_RACE_CUSTOMER:-1}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bindir=$($PG_CONFIG --bindir)

eval "$("$here/cluster" env)"
n=$("$here/cluster" partitions)

run_as()
{
	local user=$1
	shift
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- env PGHOST="$PGHOST" PGPORT="$PGPORT" \
			PGDATABASE="$PGDATABASE" PGUSER="$user" "$@"
	else
		env PGUSER="$user" "$@"
	fi
}

proxy_sql()
{
	run_as postgres "$bindir/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"
}

# partition_sql K ARG...: psql into partition K as postgres
partition_sql()
{
	local k=$1
	shift
	(
		eval "$("$here/cluster" env "$k")"
		run_as postgres "$bindir/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"
	)
}

work=$(mktemp -d /tmp/capaccess-race.XXXXXX)
chmod 755 "$work"
barrier1=727274
barrier2=727275
trap '{ release_barrier "$barrier1"; release_barrier "$barrier2"; } >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
ulimit -n 8192 2>/dev/null || true

# the jsonb form's customer: the next one that another partition owns
json_customer=$(proxy_sql -c "SELECT coalesce(min(g), $row_customer + 1)
	FROM generate_series($row_customer + 1, $row_customer + 1000) g
	WHERE capaccess.partition_of(g) <> capaccess.partition_of($row_customer)")

proxy_sql <<EOF
SET client_min_messages = warning;
DROP TABLE IF EXISTS race_log, race_log_json;
SELECT capaccess_unregister($row_customer), capaccess_unregister($json_customer);
SELECT customer_id FROM capaccess_register($row_customer, 1000000000, 'standard');
SELECT customer_id FROM capaccess_register($json_customer, 1000000000, 'standard');
CREATE TABLE race_log AS SELECT * FROM capaccess_update(0, 0) WITH NO DATA;
CREATE TABLE race_log_json (answer jsonb NOT NULL);
GRANT INSERT ON race_log, race_log_json TO billing_admin;
EOF

# Each client first opens its proxy backend's connection to the partition
# (a peek), then waits at a barrier: a shared advisory lock that this
# script holds exclusively until every client waits for it.  So the calls
# reach the gate together, not spread over the minute that 1000 backends
# take to connect.  After its call, a client waits at a second barrier
# until every call is logged, so that no backend exits while the queue
# drains (1000 exits on 2 cores would slow every hand-off down).  The
# proxy's statement_timeout (60 s) is off: the barriers are not calls, and
# on 2 cores the last of 1000 queued calls can wait half a minute.
script()
{
	echo "SET statement_timeout = 0;"
	echo "SELECT 1 FROM capaccess_peek($1);"
	echo "SELECT pg_advisory_lock_shared($barrier1);"
	echo "SELECT pg_advisory_unlock_shared($barrier1);"
	echo "$2"
	echo "SELECT pg_advisory_lock_shared($barrier2);"
}
script "$row_customer" "INSERT INTO race_log SELECT * FROM capaccess_update($row_customer, 1);" \
	>"$work/row.pgbench"
script "$json_customer" "INSERT INTO race_log_json VALUES (capaccess_update('{\"customer_id\": $json_customer}'::jsonb, '{\"consume\": 1}'::jsonb));" \
	>"$work/json.pgbench"

failed=0

# check FORM CUSTOMER LOG_QUERY: print the facts and PASS or FAIL
check()
{
	local form=$1 customer=$2 log_query=$3 owner facts k on_others verify
	owner=$(proxy_sql -c "SELECT capaccess.partition_of($customer)")
	facts=$(proxy_sql -F ' ' -c "
		WITH l AS ($log_query)
		SELECT count(*), count(*) FILTER (WHERE updated),
			   count(DISTINCT clock) FILTER (WHERE updated),
			   coalesce(min(clock) FILTER (WHERE updated), 0),
			   coalesce(max(clock) FILTER (WHERE updated), 0),
			   count(DISTINCT seq) FILTER (WHERE updated)
		  FROM l")
	read -r calls accepted clocks min_clock max_clock seqs <<<"$facts"
	read -r used clock <<<"$(partition_sql "$owner" -F ' ' -c \
		"SELECT used, clock FROM capaccess.customer WHERE customer_id = $customer")"
	on_others=0
	for ((k = 0; k < n; k++)); do
		[ "$k" -eq "$owner" ] && continue
		on_others=$((on_others + $(partition_sql "$k" -c \
			"SELECT count(*) FROM capaccess.customer WHERE customer_id = $customer")))
	done
	verify=$(proxy_sql -c "SELECT count(*) FROM capaccess_verify()")
	printf '%s form, customer %s on partition %s of %s:\n' "$form" "$customer" "$owner" "$n"
	printf '  %-44s %s\n' "clients, one call each" "$clients" \
		"calls logged / accepted" "$calls / $accepted" \
		"distinct clocks (min..max)" "$clocks ($min_clock..$max_clock)" \
		"distinct seq values" "$seqs" \
		"used, clock on the owning partition" "${used:-none}, ${clock:-none}" \
		"rows of the customer on other partitions" "$on_others" \
		"calls that waited for the customer's gate" "$gate_waits" \
		"capaccess_verify() rows, all partitions" "$verify"
	if [ "$calls" -eq "$clients" ] && [ "$accepted" -eq "$clients" ] &&
		[ "$clocks" -eq "$clients" ] && [ "$min_clock" -eq 1 ] &&
		[ "$max_clock" -eq "$clients" ] && [ "$seqs" -eq "$clients" ] &&
		[ "${used:-x}" = "$clients" ] && [ "${clock:-x}" = "$clients" ] &&
		[ "$on_others" -eq 0 ] && [ "$verify" -eq 0 ] && [ "$gate_waits" -gt 0 ]; then
		echo "  PASS: $form form, $clients of $clients applied, clocks 1..$clients"
	else
		echo "  FAIL: $form form"
		failed=1
	fi
}

# waits CUSTOMER: the owning partition's count of calls that waited for a gate
waits()
{
	partition_sql "$(proxy_sql -c "SELECT capaccess.partition_of($1)")" -c \
		"SELECT waits FROM capaccess_stats()"
}

# hold_barrier ID: a session that holds advisory lock ID until released
hold_barrier()
{
	run_as postgres "$bindir/psql" -X -q -c "SET application_name = 'capaccess race barrier $1'" \
		-c "SELECT pg_advisory_lock($1)" -c "SELECT pg_sleep(3600)" >/dev/null 2>&1 &
	for ((i = 0; i < 300; i++)); do
		[ "$(proxy_sql -c "SELECT count(*) FROM pg_locks
							WHERE locktype = 'advisory' AND objid = $1 AND granted")" = 1 ] && return
		sleep 0.1
	done
	echo "  the barrier $1 was not taken" >&2
	failed=1
}

release_barrier()
{
	proxy_sql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				   WHERE application_name = 'capaccess race barrier $1'" >/dev/null
}

# wait_for PGBENCH_PID WHAT SQL: until SQL counts all the clients, or pgbench ended
wait_for()
{
	local pid=$1 what=$2 sql=$3 n=0 since=$SECONDS
	while kill -0 "$pid" 2>/dev/null; do
		n=$(proxy_sql -c "$sql" || echo 0)
		[ "$n" -ge "$clients" ] && break
		# a client that failed before the barrier never arrives: give up
		if [ $((SECONDS - since)) -gt 900 ]; then
			echo "  only $n of $clients clients after 900 s: giving up"
			kill "$pid" 2>/dev/null
			failed=1
			break
		fi
		sleep 0.2
	done
	echo "  $n clients $what ($((SECONDS - since)) s)"
}

# pgbench FORM SCRIPT CUSTOMER LOG_TABLE: every client connects, opens its
# connection to the partition and waits at the first barrier; then all
# make their one call and wait at the second until all are logged
bench()
{
	local form=$1 script=$2 customer=$3 table=$4 start=$SECONDS pgbench_pid before
	echo "running $clients clients of the proxy, $form form ..."
	before=$(waits "$customer")
	hold_barrier "$barrier1"
	hold_barrier "$barrier2"
	run_as billing_admin "$bindir/pgbench" -n -c "$clients" -j 2 -t 1 \
		-f "$script" >"$work/$form.log" 2>&1 &
	pgbench_pid=$!
	wait_for "$pgbench_pid" "connected and waited at the first barrier" \
		"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $barrier1 AND NOT granted"
	release_barrier "$barrier1"
	wait_for "$pgbench_pid" "made their call" "SELECT count(*) FROM $table"
	release_barrier "$barrier2"
	if ! wait "$pgbench_pid"; then
		tail -n 20 "$work/$form.log"
		failed=1
	fi
	wait
	gate_waits=$(( $(waits "$customer") - before ))
	grep -E '^(number of (transactions actually processed|failed transactions)|tps)' \
		"$work/$form.log" | sed 's/^/  pgbench: /'
	echo "  ($((SECONDS - start)) s in all)"
}

bench row "$work/row.pgbench" "$row_customer" race_log
check row "$row_customer" "SELECT updated, clock, seq FROM race_log"
bench jsonb "$work/json.pgbench" "$json_customer" race_log_json
check jsonb "$json_customer" "SELECT (answer->>'updated')::boolean AS updated,
	(answer->>'clock')::bigint AS clock, (answer->>'seq')::bigint AS seq FROM race_log_json"
exit $failed
