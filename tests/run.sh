#!/usr/bin/env bash
# The test suite on real services: `make test` runs this (and CI runs `make test`).
# Starts PostgreSQL and Redis if they are down, installs Debian's Chromium if it is missing, then pytest.
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
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Chromium for the browser tests (Debian package; no browser download)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi
fi

export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/python -m pytest -ra --durations=10 "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests (exit 5): treating that as a failure, the suite must never be empty" >&2
  exit 1
fi
exit "$status"
