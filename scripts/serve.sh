#!/usr/bin/env bash
# Install Fulema into .venv and run it on the embedded default: SQLite file ./fulema.db,
# sandbox channels, scheduler and dispatcher in process, demo merchant seeded on first start.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/fulema serve "$@"
