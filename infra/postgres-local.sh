#!/usr/bin/env bash
# A throwaway PostgreSQL on 127.0.0.1 for the scale-out integration test and for local use:
#   infra/postgres-local.sh start DIR PORT   # prints the connection string
#   infra/postgres-local.sh stop DIR
# Installs Debian's postgresql when no server is found and we are root.
set -euo pipefail

find_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin /usr/local/bin /usr/bin; do
    if [ -x "$dir/$1" ]; then echo "$dir/$1"; return 0; fi
  done
  return 1
}

ensure_installed() {
  find_bin initdb >/dev/null && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL server not found; install it (Debian/Ubuntu: sudo apt-get install postgresql)" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

# PostgreSQL refuses to run as root: use the `postgres` user the Debian package creates.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    dir=$2 port=$3
    ensure_installed
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
    as_owner "$(find_bin initdb)" -D "$dir/data" -A trust -U expressway >/dev/null
    as_owner "$(find_bin pg_ctl)" -D "$dir/data" -l "$dir/server.log" -w start \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1" >/dev/null
    echo "postgresql://expressway@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_owner "$(find_bin pg_ctl)" -D "$2/data" -m fast -w stop >/dev/null
    ;;
  *)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
