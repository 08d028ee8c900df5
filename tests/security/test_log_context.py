"""One order followed through the logs: every line written while a request or an event is
handled names the request, the merchant app and the order (structlog context variables bound
by the request middleware, the signed door, the payments routes and the event dispatcher),
captured as the JSON lines production writes."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog

from fulema.core.config import Settings
from fulema.core.logs import configure_logging
from fulema.points import service as points_service
from fulema.risk.engine import Engine
from tests.payments.conftest import APP_ID, Platform, platform

__all__ = ["platform"]


@pytest.fixture
def log_lines(settings: Settings) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(settings.model_copy(update={"log_format": "json", "log_level": "INFO"}),
                      stream=stream)
    try:
        yield stream
    finally:
        logging.getLogger().handlers = []
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def _lines(stream: io.StringIO, event: str) -> list[dict[str, Any]]:
    found = [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [f for f in found if f.get("event") == event]


async def test_a_request_line_names_the_request_the_app_and_the_order(
        platform: Platform, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("rules store down")

    monkeypatch.setattr(Engine, "evaluate", broken)  # risk fails safe to REVIEW, and logs it
    created = await platform.order(out_trade_no="LOG-ORDER-1")
    assert created.status_code == 200, created.text
    [line] = _lines(log_lines, "risk.decide_failed")
    assert line["request_id"] == created.headers["X-Request-Id"]
    assert (line["app_id"], line["merchant_id"], line["out_trade_no"]) == (
        APP_ID, platform.merchant_id, "LOG-ORDER-1")
    # the next request starts clean: nothing of this one leaks into it
    other = await platform.order(out_trade_no="LOG-ORDER-2")
    lines = _lines(log_lines, "risk.decide_failed")
    assert [x["out_trade_no"] for x in lines] == ["LOG-ORDER-1", "LOG-ORDER-2"]
    assert lines[1]["request_id"] == other.headers["X-Request-Id"]
    assert "order_id" not in lines[1]  # bound only once the order exists


async def test_event_and_notification_lines_name_the_order(
        platform: Platform, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("points store down")

    monkeypatch.setattr(points_service, "earn", broken)
    order = (await platform.order(amount=2000, payer_id="payer_rich")).json()
    paid = await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                                      "payer_id": "payer_rich"})
    assert paid.status_code == 200, paid.text
    await platform.wait_status(order["order_id"], "SUCCESS")
    await platform.settle_background()
    failed = [x for x in _lines(log_lines, "events.handler_failed")
              if x.get("consumer") == "points.earn"]
    assert failed, "the points consumer's failure was logged"
    assert {x["order_id"] for x in failed} == {order["order_id"]}
    assert failed[0]["topic"] == "payment.succeeded"
    sent = _lines(log_lines, "notify.attempt")
    assert {x["order_id"] for x in sent} == {order["order_id"]}
