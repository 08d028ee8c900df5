"""The `fulema` command as an operator runs it: migrate a fresh database, regenerate the error
reference."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fulema.app  # noqa: F401 - registers every context's tables on Base.metadata
from fulema.cli import app
from fulema.core.config import get_settings
from fulema.core.db import Base
from fulema.core.errors import errors_markdown

ROOT = Path(__file__).resolve().parents[2]


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_migrate_builds_every_table_on_a_new_sqlite_file_and_is_repeatable(
        tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    env = {"FULEMA_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    runner = CliRunner()

    first = runner.invoke(app, ["migrate"], env=env)
    assert first.exit_code == 0, first.output
    assert f"migrated sqlite+aiosqlite:///{db}" in first.output
    made = tables(db)
    assert made == {*Base.metadata.tables, "alembic_version"}  # every model's table, no more
    with sqlite3.connect(db) as conn:
        [(head,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()

    again = runner.invoke(app, ["migrate"], env=env)
    assert again.exit_code == 0, again.output
    assert tables(db) == made
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]


def test_docs_errors_writes_the_reference_that_is_checked_in(tmp_path: Path) -> None:
    out = tmp_path / "errors.md"
    result = CliRunner().invoke(app, ["docs-errors", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    written = out.read_text(encoding="utf-8")
    assert written == errors_markdown()
    assert written == (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert "| `METHOD_NOT_ALLOWED` | 405 |" in written


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["--port", "8765"], {}, "http://127.0.0.1:8765"),
    (["--host", "0.0.0.0", "--port", "9000"], {}, "http://127.0.0.1:9000"),  # noqa: S104
    (["--port", "8765"], {"FULEMA_PUBLIC_BASE_URL": "https://pay.bank.example"},
     "https://pay.bank.example"),
])
def test_serve_tells_payers_and_channels_the_port_it_listens_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        args: list[str], env: dict[str, str], expected: str) -> None:
    """`fulema serve --port 8765` must not send a payer's OAuth redirect or a sandbox callback
    to :8000; a configured public URL (behind a load balancer) always wins."""
    import uvicorn

    seen: dict[str, object] = {}

    def run_instead(*_args: object, **kwargs: object) -> None:  # the server itself is not the subject
        seen.update(kwargs, public_base_url=get_settings().public_base_url)

    monkeypatch.setattr(uvicorn, "run", run_instead)
    # serve writes the variable for its workers: record it so monkeypatch removes it afterwards
    monkeypatch.setenv("FULEMA_PUBLIC_BASE_URL", "")
    monkeypatch.delenv("FULEMA_PUBLIC_BASE_URL")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    db = tmp_path / "serve.db"
    result = CliRunner().invoke(app, ["serve", *args], env={
        "FULEMA_DATABASE_URL": f"sqlite+aiosqlite:///{db}"})

    assert result.exit_code == 0, result.output
    assert seen["public_base_url"] == expected


def test_jobs_run_and_list_show_a_manual_round(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    env = {"FULEMA_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
           "FULEMA_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    ran = runner.invoke(app, ["jobs", "run", "nonces"], env=env)
    assert ran.exit_code == 0, ran.output
    assert "nonces: ok" in ran.output
    unknown = runner.invoke(app, ["jobs", "run", "nope"], env=env)
    assert unknown.exit_code == 2
    assert "known:" in unknown.output
    listed = runner.invoke(app, ["jobs", "list"], env=env, terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert "nonces" in listed.output
    with sqlite3.connect(db) as conn:
        [(trigger, ok)] = conn.execute("SELECT trigger, ok FROM job_runs").fetchall()
    assert (trigger, ok) == ("manual", 1)


def test_settle_a_date_then_again_is_a_no_op(tmp_path: Path) -> None:
    env = {"FULEMA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'settle.db'}"}
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    first = runner.invoke(app, ["settle", "--date", "2026-11-30"], env=env)
    assert first.exit_code == 0, first.output
    assert "2026-11-30: settled: 0 batches" in first.output
    again = runner.invoke(app, ["settle", "--date", "2026-11-30", "--no-pay"], env=env)
    assert again.exit_code == 0, again.output
    assert "2026-11-30: already settled" in again.output
    bad = runner.invoke(app, ["settle", "--date", "30/11/2026"], env=env)
    assert bad.exit_code == 2
