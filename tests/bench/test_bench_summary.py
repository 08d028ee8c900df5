"""`python -m bench` ends with a one-screen summary, and `--compare RUN` puts each figure beside
an earlier result's: a regression must show as a worse change, a figure that beats its goal as
met. Built from result documents written by hand, so nothing here depends on timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from bench.__main__ import main
from rich.console import Console

from bench import summary


def result(stamp: str, *, create_cpu: float, c4: float, c64: float,
           statements: float) -> dict[str, Any]:
    return {
        "stamp": stamp, "machine": {"loadavg_before": [1.0], "loadavg_after": [2.0]},
        "statements_per_op_counted": {"create": statements, "cycle": 17.3},
        "configs": [{"label": "uvicorn x1", "phases": {
            "ping": {"throughput": 10_000.0},
            "create_c4": {"api_cpu_ms_per_op": c4}, "create_c64": {"api_cpu_ms_per_op": c64},
            "create": {"throughput": 250.0, "api_cpu_ms_per_op": create_cpu},
            "create_fixed_rate": {"latency_ms": {"p99": 9.0}},
            "query": {"api_cpu_ms_per_op": 1.3}}}]}


def by_figure(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["figure"]: r for r in rows}


def test_the_summary_shows_each_figure_against_its_goal() -> None:
    rows = by_figure(summary.rows(result("R1", create_cpu=1.0, c4=3.0, c64=6.0, statements=7)))
    assert rows["API CPU ms per order create"]["met"] is True  # 1.0 <= 1.2
    assert rows["API CPU ms per query"]["met"] is False  # 1.3 > 0.4
    assert rows["CPU per create, highest / lowest concurrency"]["value"] == 2.0
    assert rows["CPU per create, highest / lowest concurrency"]["met"] is False
    assert rows["create / bare /ping"]["value"] == 0.025
    assert rows["create p99 ms at half its rate"]["met"] is True
    assert rows["API CPU ms per full payment cycle"]["value"] is None  # not measured: no verdict
    assert rows["API CPU ms per full payment cycle"]["met"] is None


def test_compare_marks_a_cost_that_grew_as_worse_and_one_that_fell_as_better() -> None:
    before = result("R0", create_cpu=4.0, c4=3.0, c64=3.0, statements=7)
    now = result("R1", create_cpu=5.0, c4=3.0, c64=3.0, statements=5)
    rows = by_figure(summary.rows(now, before))
    grew = rows["API CPU ms per order create"]
    assert (grew["before"], grew["value"], grew["change_pct"], grew["better"]) == (
        4.0, 5.0, 25.0, False)
    fell = rows["SQL statements per create (counted)"]
    assert fell["change_pct"] == pytest.approx(-28.6)
    assert fell["better"] is True
    assert rows["create / bare /ping"]["change_pct"] == 0.0  # same rate: neither


def test_compare_from_the_command_line_reads_both_results_and_prints_one_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "R0.json").write_bytes(orjson.dumps(
        result("R0", create_cpu=4.0, c4=3.0, c64=3.0, statements=7)))
    (tmp_path / "R1.json").write_bytes(orjson.dumps(
        result("R1", create_cpu=2.0, c4=3.0, c64=3.0, statements=5)))
    assert main(["--out", str(tmp_path), "--summary-only", "R1", "--compare", "R0"]) == 0
    out = capsys.readouterr().out
    assert "run R1 against R0" in out
    assert "-50.0%" in out  # the create's CPU halved
    assert "API CPU ms per order create" in out


def test_a_run_that_is_missing_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="R9"):
        summary.load("R9", tmp_path)


def test_the_table_fits_one_screen() -> None:
    console = Console(width=120, record=True)
    summary.render(result("R1", create_cpu=1.0, c4=3.0, c64=6.0, statements=7), console=console)
    assert len(console.export_text().splitlines()) <= 30


def test_a_compare_run_that_is_missing_is_refused_before_anything_is_measured(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # no database, no server: were the run started, this would take minutes (or fail later)
    assert main(["--out", str(tmp_path), "--db", "sqlite", "--compare", "R9"]) == 2
    assert "no benchmark result 'R9'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_fulema_bench_hands_its_arguments_to_the_harness(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from typer.testing import CliRunner

    from fulema.cli import app as cli

    (tmp_path / "R0.json").write_bytes(orjson.dumps(
        result("R0", create_cpu=4.0, c4=3.0, c64=3.0, statements=7)))
    (tmp_path / "R1.json").write_bytes(orjson.dumps(
        result("R1", create_cpu=2.0, c4=3.0, c64=3.0, statements=5)))
    done = CliRunner().invoke(cli, ["bench", "--out", str(tmp_path), "--summary-only", "R1",
                                    "--compare", "R0"])
    assert done.exit_code == 0, done.output
    out = capfd.readouterr().out  # the harness runs in a child process: its own stdout
    assert "run R1 against R0" in out
    assert "-50.0%" in out
