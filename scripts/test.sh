#!/usr/bin/env bash
# Install everything the tests need into .venv and run the whole suite:
# lint (ruff), types (mypy), layer contracts (import-linter), then pytest (Chromium for tests/browser).
# PostgreSQL / MariaDB tests run when FULEMA_TEST_POSTGRES_URL / FULEMA_TEST_MYSQL_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,postgres,mysql]"
# The pages' browser tests drive Debian's Chromium (a downloaded browser is not reachable in a
# bank's closed network); install it where we may, else tests/browser skips and says why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) || echo "chromium could not be installed: browser tests will skip"
fi
# nginx in front of the app (tests/gateway/test_front_nginx.py, bench.burst --front nginx): Debian's,
# as a bank's gateway host would have it; RUNLEVEL=1 keeps the package from starting its own
# server on port 80 (the tests start theirs on free ports). Without it those tests skip and say why.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    RUNLEVEL=1 apt-get install -y -q nginx >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && RUNLEVEL=1 apt-get install -y -q nginx >/dev/null 2>&1) || echo "nginx could not be installed: the front's tests will skip"
fi
# A Chinese font, so the pages' screenshots show Chinese rather than empty boxes (small: 5 MB)
if ! fc-list :lang=zh 2>/dev/null | grep -q . && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1 || echo "no Chinese font: screenshots show boxes for Chinese"
fi
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports
# pytest-xdist: test files spread over FULEMA_TEST_WORKERS processes, each with its own
# PostgreSQL/MariaDB databases (tests/conftest.py); 0 runs in this process.
WORKERS=${FULEMA_TEST_WORKERS:-2}
if [ "$WORKERS" = 0 ]; then
    exec .venv/bin/pytest -q "$@"
fi
if [ $# -gt 0 ]; then
    exec .venv/bin/pytest -q -n "$WORKERS" --dist loadfile "$@"
fi
# The whole suite. Schemathesis gives all its generated tests (one per API operation) a single
# node id, and pytest-xdist, which tells tests apart by node id, would run only the first
# operation: the OpenAPI fuzz file runs on its own, in one process, after the others.
FUZZ=tests/security/test_openapi_fuzz.py
status=0
.venv/bin/pytest -q -n "$WORKERS" --dist loadfile --ignore="$FUZZ" || status=$?
.venv/bin/pytest -q "$FUZZ" || status=$?
exit "$status"
