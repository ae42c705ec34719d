#!/usr/bin/env bash
# Starts (or reuses) a private PostgreSQL cluster for callroom under ./.data/.
#
#   scripts/postgres.sh run    durable cluster for `make run` (port 54329)
#   scripts/postgres.sh test   fast cluster for `make test` (port 54330, fsync off:
#                              a crash may lose it, which is fine for throwaway test data)
#   scripts/postgres.sh bench  durable cluster for `make bench` (port 54331, fsync on)
#   scripts/postgres.sh stop [run|test|bench]
#
# Prints the DATABASE_URL on stdout; everything else goes to stderr.
# PostgreSQL refuses to run as root, so as root the server runs as the postgres user.
set -euo pipefail

kind=${1:-run}
cd "$(dirname "$0")/.."
top=$(pwd)

case "$kind" in
  run)   port=54329 ;;
  test)  port=54330 ;;
  bench) port=54331 ;;
  stop)  ;;
  *) echo "usage: $0 run|test|bench|stop [kind]" >&2; exit 2 ;;
esac
# CALLROOM_PG_PORT moves the cluster, e.g. for a second checkout on one machine.
port=${CALLROOM_PG_PORT:-${port:-}}

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

bin=$(find_bin || true)
if [ -z "$bin" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "postgres: PostgreSQL is not installed; installing Debian's postgresql package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
    # Debian's package starts its own cluster on 5432; we do not use it.
    bin=$(find_bin || true)
  fi
  if [ -z "$bin" ]; then
    echo "postgres: PostgreSQL server binaries not found. Install them (Debian/Ubuntu: 'sudo apt-get install postgresql'; macOS: 'brew install postgresql@15') or set DATABASE_URL to an existing database." >&2
    exit 1
  fi
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "$kind" = stop ]; then
  which=${2:-}
  for k in run test bench; do
    [ -n "$which" ] && [ "$which" != "$k" ] && continue
    d="$top/.data/postgres-$k"
    [ -f "$d/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$d" -m fast -w stop >&2 || true
  done
  exit 0
fi

data="$top/.data/postgres-$kind"
mkdir -p "$top/.data"
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/false postgres
  # The postgres user must be able to reach the data directory.
  chmod o+x "$top/.data"
  p="$top"; while [ "$p" != / ]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
fi

if [ ! -f "$data/PG_VERSION" ]; then
  echo "postgres: creating a private cluster in $data" >&2
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres: "$data"
  chmod 700 "$data"
  # Trust on loopback only: this is a developer's private cluster, reachable only from this machine.
  as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null 2>&1 \
    || as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C >&2
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = ''"
    echo "max_connections = 300"
    echo "shared_buffers = 256MB"
    echo "log_min_messages = warning"
    echo "logging_collector = off"
    if [ "$kind" = test ]; then
      echo "fsync = off"
      echo "synchronous_commit = off"
      echo "full_page_writes = off"
    fi
  } | as_owner tee -a "$data/postgresql.conf" >/dev/null
fi

if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "postgres: port $port is taken by another server (another checkout's cluster?). Stop it, or set CALLROOM_PG_PORT, or point DATABASE_URL / CALLROOM_TEST_DATABASE_URL at a server you have." >&2
    exit 1
  fi
  echo "postgres: starting the $kind cluster on 127.0.0.1:$port" >&2
  as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >&2
fi

db=callroom
[ "$kind" = test ] && db=postgres
if [ "$kind" != test ]; then
  exists=$("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'")
  [ "$exists" = 1 ] || "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE $db" >&2
fi
echo "postgres://postgres@127.0.0.1:$port/$db?sslmode=disable"
