"""Findings 2 and 3: a merchant's notify_url is checked at input (order, refund, app) and again
at delivery, after DNS resolution and against the resolved address, to which the POST is then
made; redirects are not followed; the attempt log keeps a status and a reason of our wording;
no URL, however broken, makes the delivery loop fail."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.outbound import (
    OutboundPolicy,
    OutboundRefused,
    address_kind,
    parse_ip_literal,
    pinned_request,
)
from fulema.payments.models import Notification
from fulema.payments.notifications import deliver_due
from tests.payments.conftest import Platform
from tests.payments.test_notification_schedule import notifications_of, paid_order

# the list, and the other spellings of the same places
REFUSED = [
    "http://127.0.0.1:5432/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
    "http://[::1]/", "http://2852039166/", "http://good.com@169.254.169.254/",
    "http://0177.0.0.1/", "http://0x7f.0.0.1/", "http://0x7f000001/", "http://127.1/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/", "http://[fe80::1]/",
    "http://[fc00::1]/", "http://0.0.0.0/", "http://[::]/", "http://224.0.0.251/",
    "http://192.168.1.1/", "http://172.16.0.1/", "http://100.64.0.1/", "http://240.0.0.1/",
    "http://localhost/", "http://api.localhost/", "https://user:pw@shop.example/",
    "https://shop.example@10.0.0.1/", "ftp://shop.example/", "file:///etc/passwd",
    "gopher://shop.example/", "http://shop.example/a\r\nX-Injected: 1",
    "http://shop.example/\n", "http://shop.example/a b", "http://shop.example:0/",
    "http://shop.example:99999/", "http:///nohost", "http://[::1/", "javascript:alert(1)",
    "http://shop.example\\@10.0.0.1/", "http://999.1.1.1/",
]
ACCEPTED = ["https://shop.example/notify", "http://shop.example:8080/n?x=1",
            "https://8.8.8.8/n", "http://[2606:4700::1111]/n", "https://xn--fiqs8s.example/n"]


@pytest.mark.parametrize("url", REFUSED)
def test_the_policy_refuses_at_input(url: str) -> None:
    with pytest.raises(OutboundRefused):
        OutboundPolicy().check_url(url)


@pytest.mark.parametrize("url", ACCEPTED)
def test_the_policy_accepts_public_urls(url: str) -> None:
    assert OutboundPolicy().check_url(url).url == url


def test_every_spelling_of_an_address_is_read_as_that_address() -> None:
    metadata = ipaddress.ip_address("169.254.169.254")
    for spelling in ("2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "169.254.43518",
                     "0xa9.0xfe.0xa9.0xfe", "::ffff:169.254.169.254"):
        parsed = parse_ip_literal(spelling)
        assert parsed is not None
        assert address_kind(parsed) == "link-local", spelling
    assert parse_ip_literal(str(metadata)) == metadata
    assert parse_ip_literal("shop.example") is None


def test_loopback_only_explicitly_and_only_in_development() -> None:
    assert OutboundPolicy(allow_loopback=True).check_url("http://127.0.0.1:9/n")
    with pytest.raises(OutboundRefused):
        OutboundPolicy(allow_loopback=True).check_url("http://10.0.0.1/n")  # loopback only
    dev = Settings(environment="development")
    assert dev.allows_loopback  # the demo's receiver is local
    assert not Settings(environment="development", outbound_allow_loopback=False).allows_loopback
    prod = Settings(environment="production", outbound_allow_loopback=True)
    assert not prod.allows_loopback
    assert any("FULEMA_OUTBOUND_ALLOW_LOOPBACK" in p for p in prod.production_problems())


def test_allow_listed_hosts_are_reached_by_name() -> None:
    policy = Settings(outbound_allow_hosts=["Notify-Test.Bank."]).outbound_policy()
    target = policy.check_url("http://notify-test.bank/cb")
    assert target.address is None
    assert pinned_request(target) == ("http://notify-test.bank/cb", {}, {})


def test_a_pinned_request_names_the_address_and_keeps_host_and_tls_name() -> None:
    from fulema.core.outbound import Target

    target = Target(url="https://shop.example:8443/n?x=1", scheme="https", host="shop.example",
                    port=8443, address="2606:4700::1111")
    url, headers, extensions = pinned_request(target)
    assert url == "https://[2606:4700::1111]:8443/n?x=1"
    assert headers == {"Host": "shop.example:8443"}
    assert extensions == {"sni_hostname": "shop.example"}


# ------------------------------------------------------------------ at input, over the API

def strict(p: Platform) -> None:
    """Production's view of loopback, on the test platform."""
    p.settings.outbound_allow_loopback = False


@pytest.mark.parametrize("url", ["http://127.0.0.1:5432/", "http://169.254.169.254/",
                                 "http://10.0.0.1/", "http://[::1]/", "http://2852039166/",
                                 "http://good.com@169.254.169.254/", "http://a.example/\r\nX: 1",
                                 "ftp://a.example/"])
async def test_an_order_with_such_a_notify_url_is_refused_and_not_recorded(
        platform: Platform, url: str) -> None:
    p = platform
    strict(p)
    resp = await p.order(out_trade_no="SSRF000001", notify_url=url)
    assert resp.status_code == 400, resp.text
    # the body's schema already says ^https?:// (VALIDATION_ERROR); the policy says the rest
    expected = "VALIDATION_ERROR" if url.startswith("ftp") else "NOTIFY_URL_REFUSED"
    assert resp.json()["code"] == expected
    assert (await p.call("GET", "/api/v1/orders/by-out-trade-no/SSRF000001")).status_code == 404


async def test_a_refund_and_an_app_with_such_a_notify_url_are_refused(platform: Platform) -> None:
    p = platform
    strict(p)
    order_id = await paid_order(p, "SSRFREFUND1")
    await p.wait_status(order_id, "SUCCESS")
    resp = await p.call("POST", f"/api/v1/orders/{order_id}/refunds",
                        {"out_refund_no": "SSRFRF0001", "amount": 100,
                         "notify_url": "http://169.254.169.254/"})
    assert resp.status_code == 400
    assert resp.json()["code"] == "NOTIFY_URL_REFUSED"
    view = (await p.call("GET", f"/api/v1/orders/{order_id}")).json()
    assert view["refunded_amount"] == 0
    app = await p.http.post(f"/ops/v1/merchants/{p.merchant_id}/apps",
                            json={"notify_url": "http://10.0.0.1:8080/"},
                            headers={"Authorization": "Bearer test-operator"})
    assert app.status_code == 400
    assert app.json()["code"] == "NOTIFY_URL_REFUSED"


# ------------------------------------------------------------------ at delivery

class Recorder:
    """A merchant-side network: records each request, answers as told."""

    def __init__(self, answer: httpx.Response | Exception) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


def resolving_to(*addresses: str) -> OutboundPolicy:
    async def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return OutboundPolicy(resolver=resolver)


async def staged(p: Platform, out_trade_no: str, url: str) -> str:
    """A paid order whose notification waits for delivery to `url`."""
    order_id = await paid_order(p, out_trade_no)
    await p.wait_status(order_id, "SUCCESS")
    await p.settle_background(rounds=1)  # the first attempt goes to the test receiver
    async with p.db.transaction() as s:
        await s.execute(update(Notification).where(Notification.order_id == order_id)
                        .values(url=url, status="PENDING", next_attempt_at=clock.now(),
                                claimed_until=None))
    return order_id


async def last_attempt(p: Platform, order_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    note = (await notifications_of(p, order_id))[0]
    return note, note["delivery_attempts"][-1]


async def test_a_name_resolving_inside_the_bank_is_not_posted_to(platform: Platform) -> None:
    p = platform
    order_id = await staged(p, "REBIND0001", "https://shop.example/notify")
    net = Recorder(httpx.Response(200, text="SUCCESS"))
    async with net.client() as http:
        sent = await deliver_due(p.db, p.settings, http, policy=resolving_to("10.1.2.3"))
    assert sent == 0
    assert net.requests == []
    note, attempt = await last_attempt(p, order_id)
    assert attempt["http_status"] is None
    assert attempt["error"] == "not sent: the host resolves to an address not accepted (private)"
    assert "10.1.2.3" not in str(note)  # the merchant does not learn our DNS
    assert note["status"] == "PENDING"  # DNS may change: retried on the schedule


async def test_any_resolved_address_inside_the_bank_refuses_the_name(platform: Platform) -> None:
    p = platform
    order_id = await staged(p, "REBIND0002", "https://shop.example/notify")
    net = Recorder(httpx.Response(200, text="SUCCESS"))
    async with net.client() as http:
        await deliver_due(p.db, p.settings, http,
                          policy=resolving_to("93.184.216.34", "127.0.0.1"))
    assert net.requests == []
    _, attempt = await last_attempt(p, order_id)
    assert "loopback" in attempt["error"]


async def test_the_post_goes_to_the_checked_address_with_the_host_named(
        platform: Platform) -> None:
    p = platform
    order_id = await staged(p, "PINNED0001", "https://shop.example:8443/notify?a=1")
    net = Recorder(httpx.Response(200, text="SUCCESS"))
    async with net.client() as http:
        assert await deliver_due(p.db, p.settings, http,
                                 policy=resolving_to("93.184.216.34")) == 1
    [request] = net.requests
    assert str(request.url) == "https://93.184.216.34:8443/notify?a=1"
    assert request.headers["host"] == "shop.example:8443"
    assert request.extensions["sni_hostname"] == "shop.example"
    note, attempt = await last_attempt(p, order_id)
    assert note["status"] == "DELIVERED"
    assert attempt["http_status"] == 200


async def test_a_redirect_is_not_followed_and_the_answer_is_not_shown(platform: Platform) -> None:
    p = platform
    order_id = await staged(p, "REDIR00001", "https://shop.example/notify")
    net = Recorder(httpx.Response(302, headers={"Location": "http://169.254.169.254/"},
                                  text="instance-id: i-0123456789 internal page"))
    async with net.client() as http:
        await deliver_due(p.db, p.settings, http, policy=resolving_to("93.184.216.34"))
    assert len(net.requests) == 1  # the Location was not visited
    note, attempt = await last_attempt(p, order_id)
    assert attempt["http_status"] == 302
    assert attempt["error"] == "redirect not followed"
    assert attempt["response_excerpt"] is None
    assert "i-0123456789" not in str(note)


async def test_an_answer_inside_the_bank_is_never_reflected(platform: Platform) -> None:
    p = platform
    order_id = await staged(p, "REFLECT001", "https://shop.example/notify")
    net = Recorder(httpx.Response(500, text="postgres: FATAL password authentication failed"))
    async with net.client() as http:
        await deliver_due(p.db, p.settings, http, policy=resolving_to("93.184.216.34"))
    note, attempt = await last_attempt(p, order_id)
    assert attempt["http_status"] == 500
    assert "postgres" not in str(note)


async def test_a_stored_url_with_crlf_is_a_failed_attempt_not_a_jammed_job(
        platform: Platform) -> None:
    p = platform
    order_id = await staged(p, "CRLF000001", "http://shop.example/n\r\nX-Evil: 1")
    net = Recorder(httpx.Response(200, text="SUCCESS"))
    async with net.client() as http:
        assert await deliver_due(p.db, p.settings, http, policy=resolving_to("8.8.8.8")) == 0
        note, attempt = await last_attempt(p, order_id)
        assert attempt["error"] == "not sent: contains blanks or control characters"
        assert note["status"] == "FAILED"  # it can never be sent: not retried for a day
        clock.freeze()
        clock.advance(timedelta(days=1))
        assert await deliver_due(p.db, p.settings, http, policy=resolving_to("8.8.8.8")) == 0
    assert net.requests == []


@pytest.mark.parametrize("error", [httpx.InvalidURL("bad"), httpx.ConnectError("refused"),
                                   httpx.ReadTimeout("slow"), RuntimeError("anything")])
async def test_any_delivery_error_is_a_recorded_attempt(platform: Platform,
                                                        error: Exception) -> None:
    p = platform
    order_id = await staged(p, f"ERR{type(error).__name__[:7].upper()}", "https://shop.example/n")
    net = Recorder(error)
    async with net.client() as http:
        await deliver_due(p.db, p.settings, http, policy=resolving_to("93.184.216.34"))
    note, attempt = await last_attempt(p, order_id)
    assert attempt["http_status"] is None
    assert attempt["error"]
    assert str(error) not in attempt["error"] or str(error) in type(error).__name__
    assert note["status"] == "PENDING"
    assert note["next_attempt_at"] is not None
