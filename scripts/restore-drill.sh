#!/usr/bin/env bash
# Backup and restore drill: dumps a callroom database with pg_dump and
# restores it into a fresh database on the same server, then compares what
# matters. It never writes to the source.
#
#   scripts/restore-drill.sh SOURCE_DATABASE_URL TARGET_DATABASE_NAME
#
# Prints the restored database's URL on stdout (everything else on stderr).
# Then start callroom on it with the SAME master key file (the database
# holds only wrapped data keys; without the master key no message, page text
# or attachment can be read) and check it; docs/OPERATIONS.md has the whole
# procedure, and internal/server/restore_test.go runs this script as a test.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 SOURCE_DATABASE_URL TARGET_DATABASE_NAME" >&2
  exit 2
fi
src=$1
target=$2
case "$target" in
  *[!a-z0-9_]*|"") echo "restore-drill: target name must be lower-case letters, digits and _" >&2; exit 2 ;;
esac

# The same database URL with another database name.
with_db() { printf '%s' "$1" | sed -E "s#^([a-z]+://[^/]*)/[^?]*#\1/$2#"; }
admin=$(with_db "$src" postgres)
dst=$(with_db "$src" "$target")

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

ms() { echo $(( $(date +%s%N) / 1000000 )); }
start=$(ms)
# Custom format: compressed, restorable in parallel (pg_restore -j), and a
# consistent snapshot of the whole database (callroom tables and River's
# jobs together) taken without blocking callroom.
pg_dump --format=custom --no-owner --no-privileges --file "$dir/callroom.dump" "$src"
dumped=$(ms)
echo "restore-drill: dump $(du -h "$dir/callroom.dump" | cut -f1) in $((dumped - start)) ms" >&2

psql "$admin" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $target" >&2
pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname "$dst" "$dir/callroom.dump"
restored=$(ms)
echo "restore-drill: restored into $target in $((restored - dumped)) ms" >&2

# What must have come across: the same rows in the tables that matter.
count() {
  psql "$1" -Atc "SELECT
    (SELECT count(*) FROM users) || ' users, ' ||
    (SELECT count(*) FROM schedules) || ' schedules, ' ||
    (SELECT count(*) FROM pages) || ' pages, ' ||
    (SELECT count(*) FROM messages) || ' messages, ' ||
    (SELECT count(*) FROM data_keys) || ' data keys, ' ||
    (SELECT count(*) FROM audit_events) || ' audit events, ' ||
    (SELECT count(*) FROM river_job WHERE state IN ('available', 'scheduled', 'retryable')) || ' pending jobs'"
}
echo "restore-drill: restored: $(count "$dst")" >&2
printf '%s\n' "$dst"
