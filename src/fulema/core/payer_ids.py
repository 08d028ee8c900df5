"""How a payer is named in events: never whole in the clear.

An order's `payment.*` event leaves the payments context through the outbox (a table that
operators read and a broker may carry), so its payload names the payer three ways:

* ``payer_id``: masked (``oUp****S6o``), for display and logs;
* ``payer_hash``: the keyed hash (HMAC-SM3 blind index of the vault's ``payer_id`` purpose), for
  consumers that only need to tell payers apart (risk counters and scoring);
* ``payer_id_sealed``: the id sealed with the vault, for the consumers that must act on the
  payer's own id (points accounts and coupons are keyed by the id the merchant names in a quote;
  the merchant's notification carries it, as the channels' notifications do).

The merchant's notification row stores the sealed form too; it is opened only to sign and send.
"""

from __future__ import annotations

from typing import Any

from fulema.core import vault
from fulema.core.masking import mask_identifier

PURPOSE = "payer_id"


def event_fields(payer_id: str | None) -> dict[str, str | None]:
    """The payer fields of an event payload (all None for an order without a payer)."""
    if not payer_id:
        return {"payer_id": None, "payer_hash": None, "payer_id_sealed": None}
    return {"payer_id": mask_identifier(payer_id),
            "payer_hash": vault.blind_index(PURPOSE, payer_id),
            "payer_id_sealed": vault.seal(PURPOSE, payer_id)}


def payer_of(payload: dict[str, Any]) -> str | None:
    """The payer's own id from an event payload (None when the order had none)."""
    sealed = payload.get("payer_id_sealed")
    return vault.open_value(PURPOSE, str(sealed)) if sealed else None


def payer_hash_of(payload: dict[str, Any]) -> str | None:
    """The payer's keyed hash from an event payload: identity without the id."""
    value = payload.get("payer_hash")
    return str(value) if value else None


def open_sealed(value: Any) -> Any:
    """A sealed payer id opened (anything else as it is): for the notification sender."""
    if isinstance(value, str) and vault.is_sealed(value):
        return vault.open_value(PURPOSE, value)
    return value
