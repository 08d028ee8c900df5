"""The demo's onboarding chapter: the new merchant registered at WeChat Pay and Alipay as a
sub-merchant (进件/报备), over the same HTTP the operators use, with the channels' sandboxes
playing the reviewers (WeChat asks for account verification first, then approves)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

Op = Callable[..., Awaitable[Any]]
LEVERS = {"wechat": "/sandbox/wechat/sandbox-ops/applyments/",
          "alipay": "/sandbox/alipay/sandbox-ops/indirect/"}


async def onboard(console: Console, http: httpx.AsyncClient, op: Op, merchant_id: str
                  ) -> list[dict[str, Any]]:
    """Supplement, register at both channels, let the sandboxes review; the registrations."""
    base = f"/ops/v1/onboarding/merchants/{merchant_id}"
    check = await op("GET", f"{base}/check")
    console.print(f"pre-submission check, missing per channel: {check['missing']}")
    await op("PUT", f"{base}/supplement", {
        "contact_email": "wang@example.com", "service_phone": "0512-58888888",
        "settlement_bank": "中国农业银行", "address_code": "320582"})
    for channel in LEVERS:
        await op("POST", f"{base}/channels/{channel}/register")
    await op("POST", "/ops/v1/onboarding/poll")
    regs = {c: r for c, r in (await _current(op, base)).items() if c in LEVERS}
    _table(console, regs, "submitted")
    await _lever(http, "wechat", regs["wechat"]["id"], "verify")
    await op("POST", "/ops/v1/onboarding/poll")
    console.print(f"wechat asks for account verification (待账户验证): "
                  f"{(await _current(op, base))['wechat']['state']}")
    for channel in LEVERS:
        await _lever(http, channel, regs[channel]["id"], "approve")
    await op("POST", "/ops/v1/onboarding/poll")
    final = {c: r for c, r in (await _current(op, base)).items() if c in LEVERS}
    _table(console, final, "approved")
    # the two channels this chapter drove (the activation's consumer may, meanwhile, have
    # recorded the merchant's registrations at the other enabled channels too)
    return list(final.values())


async def _current(op: Op, base: str) -> dict[str, dict[str, Any]]:
    rows: list[dict[str, Any]] = await op("GET", f"{base}/registrations")
    return {r["channel"]: r for r in rows}  # the latest version of each channel last


async def _lever(http: httpx.AsyncClient, channel: str, application_no: str,
                 decision: str) -> None:
    resp = await http.post(LEVERS[channel] + application_no, json={"decision": decision})
    if resp.status_code != 200:
        raise SystemExit(f"sandbox {channel} {decision}: {resp.status_code} {resp.text}")


def _table(console: Console, regs: dict[str, dict[str, Any]], title: str) -> None:
    table = Table(title=title, box=None)
    for col in ("channel", "version", "state", "sub_merchant_id"):
        table.add_column(col)
    for r in regs.values():
        table.add_row(r["channel"], str(r["version"]), r["state"], r["sub_merchant_id"] or "—")
    console.print(table)
