"""Re-encryption of the sealed columns (core/vault.py): what migration 0009 runs over existing
plaintext and what `fulema keys reencrypt` runs after a rotation, on a plain SQLAlchemy
connection (sync; the callers use `run_sync`) through tables of its own, never through the
`Encrypted` type, so it reads and writes the stored form itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import MetaData, bindparam, column, select, table, update
from sqlalchemy.engine import Connection

from fulema.core.vault import Encrypted, blind_index, needs_reencryption, open_value, seal


@dataclass(frozen=True)
class SealedColumn:
    """Where sealed values live: table, primary key, column, purpose, and the blind-index
    column kept beside it (if the value is searched)."""

    table: str
    pk: str
    column: str
    purpose: str
    index_column: str | None = None


def sealed_columns(metadata: MetaData) -> list[SealedColumn]:
    """Every `Encrypted` column of the models, with its index column (named `<column>_hash`
    by convention), so the re-encryption job covers a column the day it is declared."""
    found = []
    for tbl in metadata.sorted_tables:
        for col in tbl.columns:
            if isinstance(col.type, Encrypted):
                pk = [c.name for c in tbl.primary_key.columns]
                index = f"{col.name}_hash"
                found.append(SealedColumn(tbl.name, pk[0], col.name, col.type.purpose,
                                          index if index in tbl.columns else None))
    return found


def reencrypt(conn: Connection, spec: SealedColumn, *, batch: int = 500,
              commit: bool = False) -> int:
    """Seal every plaintext value of one column, and move every value sealed under an older
    data key to the current one, refreshing its blind index; returns how many rows changed.

    Batched by primary key; each row is updated only if it still holds the value read
    (`WHERE col = old`), so a concurrent writer, who seals with the current key anyway, is never
    overwritten. With `commit`, each batch commits on its own (the online job: short
    transactions, resumable); without, the caller's transaction holds it all (the migration).
    """
    t = table(spec.table, column(spec.pk), column(spec.column),
              *([column(spec.index_column)] if spec.index_column else []))
    pk, col = t.c[spec.pk], t.c[spec.column]
    values: dict[str, Any] = {spec.column: bindparam("b_new")}
    if spec.index_column:
        values[spec.index_column] = bindparam("b_hash")
    stmt = (update(t).where(pk == bindparam("b_pk"), col == bindparam("b_old")).values(values))
    changed, last = 0, None
    while True:
        query = select(pk, col).where(col.is_not(None)).order_by(pk).limit(batch)
        if last is not None:
            query = query.where(pk > last)
        rows = conn.execute(query).all()
        if not rows:
            return changed
        params = []
        for row_pk, old in rows:
            if needs_reencryption(spec.purpose, old):
                plain = open_value(spec.purpose, old)
                p = {"b_pk": row_pk, "b_old": old, "b_new": seal(spec.purpose, plain)}
                if spec.index_column:
                    p["b_hash"] = blind_index(spec.purpose, plain)
                params.append(p)
        for p in params:
            changed += conn.execute(stmt, p).rowcount
        if commit:
            conn.commit()
        last = rows[-1][0]


def count_outdated(conn: Connection, spec: SealedColumn) -> tuple[int, int]:
    """(values not under the current key, all values) of one column: what `keys status` shows."""
    t = table(spec.table, column(spec.column))
    col = t.c[spec.column]
    outdated = total = 0
    for (value,) in conn.execute(select(col).where(col.is_not(None))):
        total += 1
        outdated += needs_reencryption(spec.purpose, value)
    return outdated, total
