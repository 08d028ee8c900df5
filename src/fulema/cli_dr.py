"""`fulema dr`: status, switchover and drill over the PostgreSQL pair in FULEMA_DR_NODES.

Kept apart from cli.py because it is the bank's disaster-recovery runbook in commands
(docs/operations.md), each printing what it measured."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from fulema.core.config import get_settings

dr_app = typer.Typer(help="Disaster recovery: PostgreSQL primary/standby switchover and drills",
                     no_args_is_help=True)
console = Console()


def _nodes() -> list[str]:
    nodes = get_settings().dr_nodes
    if len(nodes) != 2:
        typer.echo("fulema dr: set FULEMA_DR_NODES to the primary's and the standby's libpq "
                   'URLs, e.g. \'["postgresql://postgres@db1:5432/fulema", '
                   '"postgresql://postgres@db2:5432/fulema"]\'', err=True)
        raise typer.Exit(2)
    return nodes


@dr_app.command()
def status() -> None:
    """Each node's role (primary, standby, fenced, unreachable), WAL position and replay lag."""
    from fulema.ops.dr import cluster_status

    table = Table("node", "role", "WAL position", "replay lag (bytes)")
    for st in asyncio.run(cluster_status(_nodes())):
        table.add_row(st.url, st.role, st.wal_lsn or "-",
                      "-" if st.replay_lag_bytes is None else str(st.replay_lag_bytes))
    console.print(table)


@dr_app.command()
def switchover(to: str = typer.Option("standby", help="only 'standby' is supported"),
               timeout: float = typer.Option(30.0, help="seconds to wait for the standby")) -> None:
    """Fence the primary, wait for the standby to replay everything, promote it, verify."""
    from fulema.ops.dr import DrError
    from fulema.ops.dr import switchover as run_switchover

    if to != "standby":
        typer.echo("fulema dr: --to standby is the only switchover target", err=True)
        raise typer.Exit(2)
    try:
        report = asyncio.run(run_switchover(_nodes(), within=timeout,
                                            on_step=lambda s: console.print(f"  ✓ {s}")))
    except DrError as exc:
        typer.echo(f"fulema dr: switchover refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    console.print(f"new primary {report.new_primary} (was {report.old_primary})")
    console.print(f"RPO {report.rpo_bytes} bytes · RTO {report.rto_seconds:.3f} s")


@dr_app.command()
def drill(seconds: float = typer.Option(10.0, help="length of the payment load"),
          concurrency: int = typer.Option(8, help="concurrent merchant clients")) -> None:
    """A switchover under payment load, then proof that nothing acknowledged was lost."""
    from fulema.drill import run_drill

    report = asyncio.run(run_drill(_nodes(), get_settings(), seconds=seconds,
                                   concurrency=concurrency))
    sw = report.switchover
    table = Table("figure", "value")
    table.add_row("orders acknowledged", str(report.acknowledged))
    table.add_row("acknowledged but missing on the new primary (RPO)", str(report.missing))
    table.add_row("WAL not replayed at promotion (RPO, bytes)", str(sw.rpo_bytes))
    table.add_row("database RTO (fence → writes on the new primary)", f"{sw.rto_seconds:.3f} s")
    table.add_row("service RTO (longest stretch with no create acknowledged)",
                  f"{report.service_gap_seconds:.3f} s")
    table.add_row("failed attempts, retried by the clients",
                  f"{report.failed_attempts} {report.errors}")
    table.add_row("events not sequenced after the drain", str(report.unsequenced_events))
    table.add_row("payment after switchover paid and notified",
                  "yes" if report.notified_after_switchover else "NO")
    console.print(table)
    console.print("[green]drill passed[/green]" if report.passed else "[red]drill FAILED[/red]")
    if not report.passed:
        raise typer.Exit(1)
