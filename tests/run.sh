#!/usr/bin/env bash
# The test suite on real services: `make test` runs this (and CI runs `make test`).
# Starts PostgreSQL and Redis if they are down, installs Debian's Chromium, poppler-utils (pdftoppm), Prometheus, Orthanc
# (with its DICOMweb plugin) and dicom3tools (dciodvfy) and
# the browser-test helpers from npm (axe-core, tests/js/package-lock.json) if they are missing, then pytest.
# Extra arguments go to pytest: `make test ARGS="-k api"` or `bash tests/run.sh -k api`.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "==> starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "==> starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v pdftoppm >/dev/null || missing+=(poppler-utils)
command -v Orthanc >/dev/null || missing+=(orthanc orthanc-dicomweb)  # the PACS of the bridge tests
command -v dciodvfy >/dev/null || missing+=(dicom3tools)  # validates the DICOM objects the service makes
command -v promtool >/dev/null || missing+=(prometheus)  # scrapes a test stack; promtool checks the alert rules
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]} for the browser, report and DICOM tests (Debian packages; no browser download)"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -f tests/js/node_modules/axe-core/axe.min.js ] && command -v npm >/dev/null; then
  echo "==> installing axe-core for the accessibility tests (npm ci, pinned in tests/js/package-lock.json)"
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
fi

export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/python -m pytest -ra --durations=10 "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests (exit 5): treating that as a failure, the suite must never be empty" >&2
  exit 1
fi
exit "$status"
