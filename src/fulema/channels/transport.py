"""Transport steps the JSON adapters share: send with a deadline, read a {code, message, data}
answer, read the error of a failed download. Each raises ChannelUnavailable (outcome unknown:
query again) for anything it cannot read, and ChannelError only for a refusal the channel states.
`label` starts every message ("bankpay /api/orders"), so each channel keeps its own wording.
"""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import httpx
import orjson

from fulema.channels.base import ChannelError, ChannelUnavailable


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
