"""`fulema operator ...` and `fulema audit ...`: what a bank's administrator runs on the
server, with the database's own credentials (so the CLI is trusted as an admin and recorded
as `cli:<os user>`). The first named admin is made here; everyone else can then be managed
through /ops/v1/operators."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from fulema.core import audit
from fulema.core import passwords as core_passwords
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import FulemaError
from fulema.operators import passwords, service
from fulema.operators.domain import ROLES, OperatorStatus

T = TypeVar("T")
_ROLE_HELP = f"one of {', '.join(ROLES)}; repeat for several"

operator_app = typer.Typer(help="Operators: create, roles, tokens (docs/security.md)",
                           no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail: prove it intact", no_args_is_help=True)


# Where the settings tree comes from: the `fulema` entry point says (`install`).
_settings_source: list[Callable[[], Settings]] = []


def install(root: typer.Typer, settings: Callable[[], Settings]) -> None:
    """Adds `operator` and `audit` to the `fulema` command; `settings` builds the tree."""
    _settings_source[:] = [settings]
    root.add_typer(operator_app, name="operator")
    root.add_typer(audit_app, name="audit")


def _settings() -> Settings:
    return _settings_source[0]()


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return f"cli:{user}"[:64]


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    """Runs `work` against FULEMA_DATABASE_URL; a refusal ends the command with its message."""

    async def main() -> T:
        settings = _settings()
        audit.use_algorithm(settings.audit_hash_algorithm)
        core_passwords.configure(settings)
        db = Database(settings.database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except FulemaError as exc:
        typer.echo(f"fulema: {exc.code.value}: {exc.message}", err=True)
        raise typer.Exit(1) from exc


@operator_app.command("create")
def create(name: str,
           role: Annotated[list[str], typer.Option("--role", help=_ROLE_HELP)],
           display_name: str = typer.Option("", help="a person's name, for pages"),
           label: str = typer.Option("cli", help="the first token's label")) -> None:
    """Create an operator and print its first API token (shown once, never stored)."""
    reserved = (_settings().operator_bootstrap_name,)

    async def work(db: Database) -> str:
        await service.create_operator(db, name=name, display_name=display_name, roles=role,
                                      actor=_actor(), reserved=reserved)
        issued = await service.issue_token(db, name=name, label=label, actor=_actor())
        return issued.token

    token = _run(work)
    typer.echo(f"created operator {name} ({', '.join(sorted(set(role)))})")
    typer.echo(f"token (shown once): {token}")


@operator_app.command("token")
def token(name: str, label: str = typer.Option("cli"),
          expires_in_days: int | None = typer.Option(None, min=1, max=3650)) -> None:
    """Issue another API token for an operator (shown once)."""
    issued = _run(lambda db: service.issue_token(db, name=name, label=label, actor=_actor(),
                                                 expires_in_days=expires_in_days))
    typer.echo(f"token {issued.info.token_id} (shown once): {issued.token}")


@operator_app.command("revoke")
def revoke(name: str, token_id: str) -> None:
    """Revoke one of an operator's tokens."""
    _run(lambda db: service.revoke_token(db, name=name, token_id=token_id, actor=_actor()))
    typer.echo(f"revoked {token_id}")


@operator_app.command("disable")
def disable(name: str) -> None:
    """Disable an operator: every token stops working at once."""
    _run(lambda db: service.set_status(db, name=name, status=OperatorStatus.DISABLED,
                                       actor=_actor()))
    typer.echo(f"disabled {name}")


@operator_app.command("password")
def password(name: str,
             new: Annotated[str, typer.Option("--password", prompt=True, hide_input=True,
                                              confirmation_prompt=True,
                                              help="asked for when not given")]) -> None:
    """Set an operator's console password (/console); ends its console sessions."""
    _run(lambda db: passwords.set_password(db, name=name, password=new, actor=_actor()))
    typer.echo(f"password set for {name}")


@operator_app.command("list")
def list_() -> None:
    """Every operator with its roles and status."""
    for op in _run(service.list_operators):
        typer.echo(f"{op.name}\t{','.join(op.roles)}\t{op.status}\t{op.display_name}")


@audit_app.command("verify")
def verify(heads: bool = typer.Option(False, help="also print each chain's head hash, to keep "
                                                  "outside the database")) -> None:
    """Recompute every chain of the audit trail; exit 1 naming the first broken record of each
    broken chain."""

    async def work(db: Database) -> tuple[audit.Verification, list[tuple[str, int, str]]]:
        result = await audit.verify(db)
        return result, (await audit.chain_heads(db) if heads else [])

    result, chain_heads = _run(work)
    for chain, last_seq, head_hash in chain_heads:
        typer.echo(f"head {chain} {last_seq} {head_hash}")
    if result.intact:
        typer.echo(f"audit trail intact: {result.chains} chains, {result.records} records")
        return
    for b in result.breaks:
        typer.echo(f"BROKEN chain {b.chain} at seq {b.seq} (record {b.record_id or '-'}): "
                   f"{b.reason}", err=True)
    typer.echo(f"audit trail BROKEN: {len(result.breaks)} of {result.chains} chains, "
               f"{result.records} records checked", err=True)
    raise typer.Exit(1)
