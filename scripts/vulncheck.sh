#!/usr/bin/env bash
# Runs govulncheck (pinned) over the module: known vulnerabilities in the
# code paths callroom actually calls, in its dependencies and in the Go
# standard library of the toolchain. Needs the vulnerability database at
# vuln.go.dev; when that cannot be reached (an offline builder) it says so and
# passes, unless CALLROOM_REQUIRE_VULNCHECK=1.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.9.0
# Reachability by a TCP connection (bash's /dev/tcp): no curl needed.
if ! timeout 10 bash -c 'exec 3<>/dev/tcp/vuln.go.dev/443' 2>/dev/null; then
  if [ "${CALLROOM_REQUIRE_VULNCHECK:-0}" = 1 ]; then
    echo "vulncheck: vuln.go.dev cannot be reached" >&2
    exit 1
  fi
  echo "vulncheck: SKIPPED, vuln.go.dev cannot be reached (set CALLROOM_REQUIRE_VULNCHECK=1 to make this fail)" >&2
  exit 0
fi
exec go run "golang.org/x/vuln/cmd/govulncheck@${version}" ./...
