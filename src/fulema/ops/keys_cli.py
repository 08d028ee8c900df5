"""`fulema keys`: the keyring of encryption at rest (core/vault.py) from the command line.

* `status`: the keys (ids, purposes, ciphers, when each starts writing) and, per sealed
  column, how many values are not yet under the current key.
* `rotate`: new data keys (all purposes, or `--purpose`), writing after the activation delay;
  old keys keep reading. Then `reencrypt` moves the old values over.
* `reencrypt`: seals leftover plaintext and re-seals values under older keys, in short
  batches that each commit (the service keeps running; safe to interrupt and run again).
* `rewrap`: after a master-key change (new FULEMA_CRYPTO_MASTER_KEY and _ID, the old one in
  FULEMA_CRYPTO_PREVIOUS_MASTER_KEYS), wraps every key under the new master; data untouched.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from fulema.core import vault
from fulema.core.config import Settings, get_settings
from fulema.core.db import Base, Database

keys_app = typer.Typer(help="Encryption at rest: the keyring (docs/security.md)",
                       no_args_is_help=True)


def _keyring(settings: Settings) -> vault.Keyring:
    return vault.install(settings.keyring())


def _columns() -> list[vault.SealedColumn]:
    import fulema.app  # noqa: F401 - every context's tables on Base.metadata

    return vault.sealed_columns(Base.metadata)


@keys_app.command()
def status() -> None:
    """The keys, and how many stored values each sealed column has left to re-encrypt."""
    settings = get_settings()
    ring = _keyring(settings)
    for k in ring.keys():
        typer.echo(f"{k.kid:<20} {k.purpose:<13} {k.kind:<6} {k.cipher:<12} "
                   f"writes from {k.active_from.isoformat()}")

    async def count() -> None:
        db = Database(settings.database_url)
        try:
            async with db.engine.connect() as conn:
                for spec in _columns():
                    outdated, total = await conn.run_sync(
                        lambda c, s=spec: vault.count_outdated(c, s))
                    typer.echo(f"{spec.table}.{spec.column}: {outdated} of {total} to re-encrypt")
        finally:
            await db.dispose()

    asyncio.run(count())


@keys_app.command()
def rotate(purpose: Annotated[list[str] | None, typer.Option(
               help=f"one of {', '.join(vault.PURPOSES)}; repeat; default all")] = None,
           activate_in: Annotated[int | None, typer.Option(
               help="seconds until the new keys write (default FULEMA_CRYPTO_ACTIVATION_"
                    "DELAY_SECONDS): longer than any process takes to see the keyring")] = None,
           ) -> None:
    """New data keys; old values stay readable; run `reencrypt` after they activate."""
    chosen = tuple(purpose or vault.PURPOSES)
    unknown = set(chosen) - set(vault.PURPOSES)
    if unknown:
        raise typer.BadParameter(f"unknown purpose {sorted(unknown)}", param_hint="--purpose")
    for k in _keyring(get_settings()).rotate(chosen, activate_in_seconds=activate_in):
        typer.echo(f"new key {k.kid} for {k.purpose}, writing from {k.active_from.isoformat()}")


@keys_app.command()
def reencrypt(batch: int = typer.Option(500, min=1, max=10_000)) -> None:
    """Seal plaintext leftovers and move values to the current keys, batch by batch."""
    settings = get_settings()
    _keyring(settings)

    async def run() -> None:
        db = Database(settings.database_url)
        try:
            for spec in _columns():
                async with db.engine.connect() as conn:
                    changed = await conn.run_sync(
                        lambda c, s=spec: vault.reencrypt(c, s, batch=batch, commit=True))
                typer.echo(f"{spec.table}.{spec.column}: {changed} re-encrypted")
        finally:
            await db.dispose()

    asyncio.run(run())


@keys_app.command()
def rewrap() -> None:
    """Wrap every key of the keyring under the current master key."""
    changed = _keyring(get_settings()).rewrap()
    typer.echo(f"{changed} keys re-wrapped under master key {get_settings().master_keys().kid}")
