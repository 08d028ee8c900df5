"""Transport steps the JSON adapters share: send with a deadline, read a {code, message, data}
answer, read the error of a failed download. Each raises ChannelUnavailable (outcome unknown:
query again) for anything it cannot read, and ChannelError only for a refusal the channel states.
`label` starts every message ("bankpay /api/orders"), so each channel keeps its own wording.
"""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn
from urllib.parse import urlencode

import httpx
import orjson

from fulema.channels.base import ChannelError, ChannelUnavailable, SubMerchantRefused


async def send(http: httpx.AsyncClient, method: str, url: str, *, content: bytes,
               headers: dict[str, str], seconds: float, label: str) -> httpx.Response:
    """One request; ChannelUnavailable for a transport error, a timeout or a 5xx."""
    try:
        # httpx's timeout covers real sockets; asyncio.timeout also bounds in-process
        # transports (the mounted sandbox), which ignore httpx timeouts.
        async with asyncio.timeout(seconds):
            resp = await http.request(method, url, content=content, headers=headers,
                                      timeout=seconds)
    except (httpx.HTTPError, TimeoutError) as exc:
        raise ChannelUnavailable(f"{label}: {type(exc).__name__}") from exc
    if resp.status_code >= 500:
        raise ChannelUnavailable(f"{label}: HTTP {resp.status_code}")
    return resp


def answer_data(content: bytes, label: str) -> dict[str, Any]:
    """The `data` object of a {code: SUCCESS, data} answer; ChannelError(code, message) for any
    other code; ChannelUnavailable for an answer that is not JSON or has no code or data."""
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ChannelUnavailable(f"{label}: response is not JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("code"), str):
        raise ChannelUnavailable(f"{label}: response has no code")
    if doc["code"] != "SUCCESS":
        raise ChannelError(doc["code"], str(doc.get("message", "")))
    data = doc.get("data")
    if not isinstance(data, dict):
        raise ChannelUnavailable(f"{label}: response has no data")
    return data


def raise_download_error(resp: httpx.Response, label: str) -> NoReturn:
    """For a non-200 download answer: ChannelError with the channel's {code, message}, or
    ChannelUnavailable when the answer does not say."""
    try:
        doc = orjson.loads(resp.content)
        code, message = str(doc["code"]), str(doc.get("message", ""))
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ChannelUnavailable(f"{label}: HTTP {resp.status_code}") from exc
    raise ChannelError(code, message)


# --- the partner form of the JSON channels (e-CNY, the bank: our assumed interface) ------------

def partner_request(path: str, payload: dict[str, Any] | None, sub: str | None
                    ) -> tuple[str, dict[str, Any] | None]:
    """Name the sub-merchant a request is for: `sub_merchant_id` in a body, or in the query of
    a request that has none (a GET); unchanged in the direct form (`sub` None)."""
    if not sub:
        return path, payload
    if payload is None:
        return f"{path}?{urlencode({'sub_merchant_id': sub})}", None
    return path, {**payload, "sub_merchant_id": sub}


def answer_for(content: bytes, label: str, sub: str | None,
               refusals: frozenset[str]) -> dict[str, Any]:
    """`answer_data`, with a refusal of the sub-merchant itself (one of the channel's
    `refusals`, in the partner form) raised as SubMerchantRefused: not this order's fault."""
    try:
        return answer_data(content, label)
    except ChannelError as exc:
        if sub and exc.code in refusals:
            raise SubMerchantRefused(exc.code, exc.message) from exc
        raise


def notified_sub(data: dict[str, Any]) -> str | None:
    """The sub-merchant a JSON channel's notification names (None: the direct form)."""
    sub = data.get("sub_merchant_id")
    if sub is not None and (not isinstance(sub, str) or not sub):
        raise ValueError("sub_merchant_id is not a non-empty string")
    return sub
