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
from tests.payments.conftest import APP_ID, SECRET, Platform, platform

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



def _test_client_call(line: dict[str, Any], calls: set[str]) -> bool:
    """A line the test's own HTTP client wrote (it shares the platform's client): not ours."""
    return line.get("logger") == "httpx" and any(c in line["event"] for c in calls)


async def test_one_payment_cycle_names_its_ids_and_leaks_no_secret_or_payer_id(
        platform: Platform, log_lines: io.StringIO) -> None:
    """create -> pay -> notify as production logs it (JSON, INFO): the lines written while the
    create request is handled name that request, the app and the order; every line about the
    order (channel calls, event handlers, the notification and its HTTP call, the speaker)
    names the order; no secret, signature or full payer id appears on any line."""
    payer = "payer_rich"
    created = await platform.order(amount=2000, payer_id=payer, out_trade_no="LOG-CYCLE-1")
    assert created.status_code == 200, created.text
    order = created.json()
    scan = await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                                      "payer_id": payer})
    assert scan.status_code == 200, scan.text
    await platform.wait_status(order["order_id"], "SUCCESS")
    await platform.settle_background()
    [notified] = platform.receiver.received
    oid, create_rid = order["order_id"], created.headers["X-Request-Id"]
    calls = {"POST http://testserver/api/v1/orders ", "/sandbox/bankpay/wallet/scan",
             f"GET http://testserver/api/v1/orders/{oid} "}
    raw = log_lines.getvalue()
    lines = [orjson.loads(x) for x in raw.splitlines() if x.strip()]
    # the bankpay sandbox is mounted in process: its side of the scan is the channel's, not ours
    ours = [x for x in lines if not _test_client_call(x, calls)
            and x.get("request_id") != scan.headers["X-Request-Id"]]

    in_create = [x for x in ours if x.get("request_id") == create_rid]
    assert any("/sandbox/bankpay/api/orders" in x["event"] for x in in_create), in_create
    for x in in_create:
        assert (x["app_id"], x["out_trade_no"], x["order_id"]) == (APP_ID, "LOG-CYCLE-1", oid)
    about = [x for x in ours if oid in orjson.dumps(x).decode() or "order_id" in x]
    events = {x["event"].split(" ")[0] for x in about}
    assert {"notify.attempt", "speaker.feed", "HTTP"} <= events, events
    assert [x for x in about if x.get("order_id") != oid] == []
    assert any("/merchant/notify" in x["event"] for x in about)  # the notifier's own call
    for x in ours:  # a line inside any request names it; outside, a job's line is not in one
        assert "request_id" in x or "order_id" in x or oid not in orjson.dumps(x).decode()

    signature = notified["headers"]["fulema-signature"].rsplit("v1=", 1)[1]
    for leak in (SECRET, signature, payer, notified["headers"]["fulema-signature"]):
        assert leak not in raw
