"""`fulema dr`: status, switchover and drill over the PostgreSQL pair in FULEMA_DR_NODES.

Kept apart from cli.py because it is the bank's disaster-recovery runbook in commands
(docs/operations.md), each printing what it measured."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

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


@dr_app.command()
def backup() -> None:
    """A base backup of the current primary into FULEMA_BACKUP_DIR."""
    from fulema.ops import backup as backups
    from fulema.ops.dr import cluster_status

    settings = get_settings()
    nodes = _nodes()
    statuses = asyncio.run(cluster_status(nodes))
    primary = next((u for u, st in zip(nodes, statuses, strict=True) if st.role == "primary"),
                   None)
    if primary is None:
        typer.echo("fulema dr: no primary to back up", err=True)
        raise typer.Exit(1)
    taken = backups.base_backup(primary, settings.backup_dir)
    console.print(f"base backup {taken.path} ({taken.size_bytes / 1e6:.1f} MB) "
                  f"at {taken.taken_at.isoformat()}")


@dr_app.command()
def restore(target_time: Annotated[str, typer.Option(help="ISO time to recover to, with zone")],
            data_dir: Annotated[Path, typer.Option(help="a new directory for the server")],
            base: Annotated[Path | None, typer.Option(help="base backup (default: the newest "
                                                           "before the target time)")] = None
            ) -> None:
    """Point-in-time recovery into a separate server (the primary is not touched)."""
    from datetime import datetime

    from fulema.ops import backup as backups

    settings = get_settings()
    target = datetime.fromisoformat(target_time)
    if target.tzinfo is None:
        typer.echo("fulema dr: give the target time with its zone (e.g. +08:00)", err=True)
        raise typer.Exit(2)
    chosen = base or backups.newest_before(settings.backup_dir, target)
    if chosen is None:
        typer.echo(f"fulema dr: no base backup before {target_time}", err=True)
        raise typer.Exit(1)
    done = asyncio.run(backups.restore(chosen, settings.backup_archive_dir, target_time=target,
                                       data_dir=data_dir))
    console.print(f"restored to {target_time} from {chosen.name} in {done.seconds} s: "
                  f"{done.url}")


@dr_app.command()
def prune() -> None:
    """Delete backups and archived WAL past FULEMA_BACKUP_RETENTION_DAYS (never the newest)."""
    from fulema.ops import backup as backups

    settings = get_settings()
    gone = backups.prune(settings.backup_dir, settings.backup_archive_dir,
                         retention_days=settings.backup_retention_days)
    console.print(f"pruned {len(gone)} backups and WAL files")
