#!/usr/bin/env bash
# Install everything the tests need into .venv and run the whole suite:
# lint (ruff), types (mypy), layer contracts (import-linter), then pytest.
# PostgreSQL / MariaDB tests run when FULEMA_TEST_POSTGRES_URL / FULEMA_TEST_MYSQL_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,postgres,mysql]"
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports
exec .venv/bin/pytest -q "$@"
