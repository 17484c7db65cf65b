#!/usr/bin/env bash
# A PostgreSQL database for a Prefect server, in a folder of its own, on 127.0.0.1.
#
#   deploy/postgres.sh start DIR [PORT]   creates DIR on first use (initdb), starts PostgreSQL on
#                                         127.0.0.1:PORT (default 5432), creates the database
#                                         `prefect`, and prints the URL for
#                                         PREFECT_SERVER_DATABASE_CONNECTION_URL
#   deploy/postgres.sh url DIR [PORT]     prints that URL
#   deploy/postgres.sh stop DIR           stops it (fast shutdown) and waits until it is gone
#
# Uses Debian's PostgreSQL (`apt-get install postgresql`; 15 here). Its server refuses to run
# as root, so as root the folder belongs to the `postgres` user and every command runs through
# `runuser`. Connections are trusted from 127.0.0.1 only: for a server other machines reach,
# see deploy/README.md ("Prefect server on PostgreSQL").
set -euo pipefail

command=${1:?"usage: deploy/postgres.sh start|url|stop DIR [PORT]"}
dir=${2:?"usage: deploy/postgres.sh start|url|stop DIR [PORT]"}
port=${3:-5432}
dir=$(realpath -m "$dir")

bindir=$(dirname "$(realpath "$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)")")
if [ ! -x "$bindir/pg_ctl" ]; then
    echo "PostgreSQL is not installed: apt-get install postgresql (Debian), then rerun." >&2
    exit 2
fi

as_owner() {  # runs a PostgreSQL program as the folder's owner
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

url="postgresql+asyncpg://postgres@127.0.0.1:$port/prefect"

case "$command" in
start)
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        mkdir -p "$dir"
        if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
        if ! as_owner test -w "$dir"; then
            echo "$dir: the postgres user cannot reach this folder; choose one whose parents" \
                "it may enter, such as /var/tmp/recurrent-postgres." >&2
            exit 2
        fi
        as_owner "$bindir/initdb" --pgdata="$dir/data" --username=postgres --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    fi
    if ! as_owner "$bindir/pg_ctl" --pgdata="$dir/data" status >/dev/null; then
        as_owner "$bindir/pg_ctl" --pgdata="$dir/data" --log="$dir/postgres.log" --wait \
            --options="-c listen_addresses=127.0.0.1 -c port=$port -k $dir" start >/dev/null
    fi
    if ! as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'prefect'" | grep -q 1; then
        as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres prefect
    fi
    echo "$url"
    ;;
url)
    echo "$url"
    ;;
stop)
    as_owner "$bindir/pg_ctl" --pgdata="$dir/data" --mode=fast --wait stop >/dev/null
    ;;
*)
    echo "unknown command '$command': use start, url or stop" >&2
    exit 2
    ;;
esac
