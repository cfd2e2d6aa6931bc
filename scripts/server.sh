# Throwaway PostgreSQL 15 servers for the demo and the benchmark.
# Source this file; it defines:
#
#   server_start DIR [CONF_LINE...]  initdb in DIR/data as postgres, preload
#                                    capaccess, start on a free port; sets
#                                    PGHOST, PGPORT, PGUSER, PGDATABASE
#   server_stop DIR                  stop it (immediate) and remove DIR
#   as_pg CMD...                     run a client as the postgres user

PGBIN=${PGBIN:-$(${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config} --bindir)}

as_pg()
{
	runuser -u postgres -- env PGHOST="$PGHOST" PGPORT="$PGPORT" \
		PGUSER=postgres PGDATABASE=postgres "$@"
}

server_free_port()
{
	local port=55432
	while [ -e "/tmp/.s.PGSQL.$port" ] || ss -ltn 2>/dev/null | grep -q ":$port "; do
		port=$((port + 1))
	done
	echo "$port"
}

server_start()
{
	local dir=$1
	shift
	mkdir -p "$dir"
	chown postgres: "$dir"
	runuser -u postgres -- "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres \
		--no-locale -E UTF8 >"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log"
		return 1
	}
	PGPORT=$(server_free_port)
	{
		echo "shared_preload_libraries = 'capaccess'"
		echo "port = $PGPORT"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$dir'"
		echo "max_connections = 1100"
		echo "shared_buffers = 512MB"
		for line in "$@"; do echo "$line"; done
	} >>"$dir/data/postgresql.conf"
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
		-w -t 60 start >/dev/null || {
		tail -n 30 "$dir/server.log"
		return 1
	}
	export PGHOST=$dir PGPORT PGUSER=postgres PGDATABASE=postgres
}

server_stop()
{
	local dir=$1
	[ -d "$dir/data" ] &&
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -m immediate \
			-w stop >/dev/null 2>&1
	rm -rf "$dir"
}
