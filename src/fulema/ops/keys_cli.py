"""What `fulema keys` does with the keyring of encryption at rest (core/vault.py); the CLI
(`fulema.cli`) builds the settings tree and prints the lines these return.

* `status`: the keys (ids, purposes, ciphers, when each starts writing) and, per sealed
  column, how many values are not yet under the current key.
* `rotate`: new data keys (all purposes, or some), writing after the activation delay; old
  keys keep reading. Then `reencrypt` moves the old values over.
* `reencrypt`: seals leftover plaintext and re-seals values under older keys, in short
  batches that each commit (the service keeps running; safe to interrupt and run again).
* `rewrap`: after a master-key change (new FULEMA_CRYPTO_MASTER_KEY and _ID, the old one in
  FULEMA_CRYPTO_PREVIOUS_MASTER_KEYS), wraps every key under the new master; data untouched.
"""

from __future__ import annotations

from fulema.core import vault, vault_jobs
from fulema.core.config import Settings
from fulema.core.db import Base, Database


def _columns() -> list[vault_jobs.SealedColumn]:
    import fulema.app  # noqa: F401 - every context's tables on Base.metadata

    return vault_jobs.sealed_columns(Base.metadata)


async def status(settings: Settings) -> list[str]:
    ring = vault.install(settings.keyring())
    lines = [f"{k.kid:<20} {k.purpose:<13} {k.kind:<6} {k.cipher:<12} "
             f"writes from {k.active_from.isoformat()}" for k in ring.all_keys()]
    db = Database(settings.database_url)
    try:
        async with db.engine.connect() as conn:
            for spec in _columns():
                outdated, total = await conn.run_sync(vault_jobs.count_outdated, spec)
                lines.append(f"{spec.table}.{spec.column}: {outdated} of {total} to re-encrypt")
    finally:
        await db.dispose()
    return lines


def rotate(settings: Settings, purposes: tuple[str, ...],
           activate_in: int | None) -> list[str]:
    unknown = set(purposes) - set(vault.PURPOSES)
    if unknown:
        raise ValueError(f"unknown purpose {sorted(unknown)}: one of {', '.join(vault.PURPOSES)}")
    ring = vault.install(settings.keyring())
    return [f"new key {k.kid} for {k.purpose}, writing from {k.active_from.isoformat()}"
            for k in ring.rotate(purposes, activate_in_seconds=activate_in)]


async def reencrypt(settings: Settings, batch: int) -> list[str]:
    vault.install(settings.keyring())
    lines = []
    db = Database(settings.database_url)
    try:
        for spec in _columns():
            async with db.engine.connect() as conn:
                changed = await conn.run_sync(vault_jobs.reencrypt, spec, batch=batch, commit=True)
            lines.append(f"{spec.table}.{spec.column}: {changed} re-encrypted")
    finally:
        await db.dispose()
    return lines


def rewrap(settings: Settings) -> list[str]:
    changed = vault.install(settings.keyring()).rewrap()
    return [f"{changed} keys re-wrapped under master key {settings.master_keys().kid}"]
