"""`fulema reconcile` as an operator runs it on a fresh database: a file is reconciled with a
progress bar and its figures printed; the same file again and a malformed one are refused
with their code, reason and line, exit code 1."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fulema.cli import app
from tests.reconciliation import files


def test_reconcile_a_file_then_refuse_it_again_and_refuse_a_broken_one(tmp_path: Path) -> None:
    env = {"FULEMA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
           "FULEMA_ENABLED_CHANNELS": '["bankpay"]'}
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    statement = tmp_path / "bank.csv"
    statement.write_bytes(files.fen_csv("bankpay"))
    args = ["reconcile", "--channel", "bankpay", "--date", "2026-11-24", "--file", str(statement)]

    first = runner.invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    assert "3 lines, 0 of ours, 0 matched, 3 discrepancies" in first.output
    assert "ONLY_AT_CHANNEL" in first.output

    again = runner.invoke(app, args, env=env)
    assert again.exit_code == 1
    assert "STATEMENT_ALREADY_IMPORTED" in again.output

    statement.write_bytes(files.fen_csv("bankpay", amount="12.50"))
    broken = runner.invoke(app, args, env=env)
    assert broken.exit_code == 1
    assert "STATEMENT_INVALID: line 2: bad amount" in broken.output

    bad_date = runner.invoke(app, [*args[:3], "--date", "24/11/2026", *args[5:]], env=env)
    assert bad_date.exit_code == 2
