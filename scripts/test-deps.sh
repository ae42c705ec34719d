#!/usr/bin/env bash
# Installs what the test suite needs beyond Go and PostgreSQL, on a fresh
# Debian machine. Idempotent and quiet when everything is present.
set -euo pipefail

need=()
/usr/bin/python3 -c 'import icalendar' 2>/dev/null || need+=(python3-icalendar)
# The web client's end-to-end tests drive Debian's Chromium headless.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# The test FHIR engine (scripts/fhir-engine) runs on Node with Medplum's packages.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
fhir_engine() {
  local dir; dir="$(dirname "$0")/fhir-engine"
  if [ ! -d "$dir/node_modules/@medplum/fhir-router" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "test-deps: installing the test FHIR engine's npm packages" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}
# swaks drives the email gateway as a real SMTP client; the two Perl modules
# give it STARTTLS.
command -v swaks >/dev/null 2>&1 || need+=(swaks)
/usr/bin/perl -MNet::SSLeay -e1 2>/dev/null || need+=(libnet-ssleay-perl)
/usr/bin/perl -MIO::Socket::SSL -e1 2>/dev/null || need+=(libio-socket-ssl-perl)

if [ ${#need[@]} -eq 0 ]; then fhir_engine; exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: missing Debian packages: ${need[*]} (install them with apt-get as root)" >&2
  exit 1
fi
echo "test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fhir_engine
