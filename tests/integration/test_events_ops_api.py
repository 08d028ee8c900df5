"""The operator's view of event consumers over HTTP: lag and failures, dead letters, replay and
skip, and clear refusals for every bad request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fulema.app import create_app
from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Consumer, Event, Poison, publish
from fulema.core.events.consumers import check_unique

AUTH = {"Authorization": "Bearer test-operator"}


class Flaky:
    def __init__(self, fail_on: set[int]) -> None:
        self.fail_on = fail_on
        self.got: list[int] = []

    async def __call__(self, _db: Database, event: Event) -> None:
        if event.payload["n"] in self.fail_on:
            raise ValueError(f"cannot post event {event.payload['n']}")
        self.got.append(event.payload["n"])


@pytest.fixture
async def app(db: Database, settings: Settings) -> FastAPI:
    application = create_app(settings.model_copy(update={"mount_sandbox": False,
                                                         "enabled_channels": []}), db=db)
    return application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver", headers=AUTH) as client:
        yield client


async def stuck(app: FastAPI, db: Database) -> tuple[Flaky, Flaky]:
    """Four events; a STOP consumer stuck at the second, a DEAD_LETTER one that set it aside."""
    clock.freeze()
    ledger, points = Flaky({1}), Flaky({1})
    app.state.dispatcher.consumers.update(check_unique([
        Consumer("ledger.postings", ledger, on_poison=Poison.STOP, max_attempts=2),
        Consumer("points.earn", points, max_attempts=2)]))
    for n in range(4):
        async with db.transaction() as s:
            publish(s, "payment.succeeded", {"n": n})
        clock.advance(timedelta(milliseconds=1))
    for _ in range(3):
        await app.state.dispatcher.drain()
        clock.advance(timedelta(minutes=10))
    return ledger, points


async def test_operator_sees_lag_and_failures_per_consumer(app: FastAPI, db: Database,
                                                          http: httpx.AsyncClient) -> None:
    await stuck(app, db)
    resp = await http.get("/ops/v1/events/consumers")
    assert resp.status_code == 200, resp.text
    by_name = {c["name"]: c for c in resp.json()["consumers"]}
    ledger, points = by_name["ledger.postings"], by_name["points.earn"]
    assert (ledger["position"], ledger["head"], ledger["lag"], ledger["blocked"]) == (1, 4, 3, True)
    assert ledger["last_error"] == "ValueError: cannot post event 1"
    assert ledger["on_poison"] == "STOP"
    assert (points["lag"], points["blocked"], points["dead_letters"]) == (0, False, 1)
    metrics = (await http.get("/metrics")).text
    assert 'fulema_event_consumer_lag{consumer="ledger.postings"} 3.0' in metrics
    assert 'fulema_event_consumer_blocked{consumer="ledger.postings"} 1.0' in metrics


async def test_operator_skips_then_replays_with_their_name(app: FastAPI, db: Database,
                                                           http: httpx.AsyncClient) -> None:
    ledger, points = await stuck(app, db)
    skipped = await http.post("/ops/v1/events/consumers/ledger.postings/skip")
    assert skipped.status_code == 200, skipped.text
    assert skipped.json()["seq"] == 2
    await app.state.dispatcher.drain()
    assert ledger.got == [0, 2, 3]

    letters = (await http.get("/ops/v1/events/consumers/points.earn/dead-letters")).json()
    assert [(x["seq"], x["reason"]) for x in letters["dead_letters"]] == [(2, "EXHAUSTED")]
    points.fail_on.clear()
    replay = await http.post("/ops/v1/events/consumers/points.earn/replay",
                             json={"event_id": letters["dead_letters"][0]["event_id"]})
    assert replay.json() == {"consumer": "points.earn", "replayed": 1, "failed": []}
    assert points.got == [0, 2, 3, 1]
    open_letters = (await http.get("/ops/v1/events/consumers/points.earn/dead-letters")).json()
    assert open_letters["dead_letters"] == []
    every = (await http.get("/ops/v1/events/consumers/points.earn/dead-letters",
                            params={"include_resolved": "true"})).json()["dead_letters"]
    assert every[0]["resolved_by"] == "bootstrap-admin"  # the shared token's name
    assert every[0]["resolved_at"] is not None
    trail = await audit.search(db, action="events.")
    assert sorted((r.actor, r.action, r.target_id) for r in trail) == [
        ("bootstrap-admin", "events.replay", "points.earn"),
        ("bootstrap-admin", "events.skip", "ledger.postings")]


async def test_a_replay_that_fails_again_says_so_and_resolves_nothing(
        app: FastAPI, db: Database, http: httpx.AsyncClient) -> None:
    await stuck(app, db)
    resp = await http.post("/ops/v1/events/consumers/points.earn/replay",
                           json={"from_seq": 1, "to_seq": 4})
    assert resp.status_code == 200
    body = resp.json()
    assert body["replayed"] == 3
    assert [(f["seq"], f["error"]) for f in body["failed"]] == [(2, "ValueError: cannot post event 1")]
    letters = (await http.get("/ops/v1/events/consumers/points.earn/dead-letters")).json()
    assert len(letters["dead_letters"]) == 1


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("points.earn/replay", {}, 400, "EVENT_REPLAY_INVALID"),
    ("points.earn/replay", {"from_seq": 3}, 400, "EVENT_REPLAY_INVALID"),
    ("points.earn/replay", {"from_seq": 4, "to_seq": 2}, 400, "EVENT_REPLAY_INVALID"),
    ("points.earn/replay", {"from_seq": 1, "to_seq": 5000}, 400, "EVENT_REPLAY_INVALID"),
    ("points.earn/replay", {"from_seq": 0, "to_seq": 2}, 400, "VALIDATION_ERROR"),
    ("points.earn/replay", {"from_seq": "one", "to_seq": 2}, 400, "VALIDATION_ERROR"),
    ("points.earn/replay", {"event_id": "evt_1", "extra": 1}, 400, "VALIDATION_ERROR"),
    ("points.earn/replay", {"event_id": "evt_does_not_exist"}, 404, "EVENT_NOT_FOUND"),
    ("nobody.here/replay", {"event_id": "evt_1"}, 404, "EVENT_CONSUMER_NOT_FOUND"),
    ("nobody.here/skip", None, 404, "EVENT_CONSUMER_NOT_FOUND"),
    ("points.earn/skip", None, 409, "EVENT_CONSUMER_NOT_FAILING"),
])
async def test_bad_requests_get_a_clear_code_and_change_nothing(
        app: FastAPI, db: Database, http: httpx.AsyncClient, path: str, body: Any,
        status: int, code: str) -> None:
    await stuck(app, db)
    before = (await http.get("/ops/v1/events/consumers")).json()
    resp = await http.post(f"/ops/v1/events/consumers/{path}", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == code
    assert resp.json()["request_id"]
    assert (await http.get("/ops/v1/events/consumers")).json() == before


async def test_every_events_endpoint_needs_the_operator_token(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as anonymous:
        for method, path in [("GET", "/ops/v1/events/consumers"),
                             ("GET", "/ops/v1/events/consumers/points.earn/dead-letters"),
                             ("POST", "/ops/v1/events/consumers/points.earn/replay"),
                             ("POST", "/ops/v1/events/consumers/points.earn/skip")]:
            resp = await anonymous.request(method, path, content=b"{not json")
            assert resp.status_code == 401, (path, resp.text)
            assert resp.json()["code"] == "UNAUTHORIZED"


async def test_only_api_processes_without_a_dispatcher_send_notify(db: Database,
                                                                   settings: Settings) -> None:
    """A process that runs the dispatcher is woken by its own commits; only API processes of
    a deployment with separate workers pay the NOTIFY statement (PostgreSQL only)."""
    for run_background in (True, False):
        create_app(settings.model_copy(update={"run_background": run_background,
                                               "mount_sandbox": False, "enabled_channels": []}),
                   db=db)
        assert db.notify_other_processes == (db.dialect == "postgresql" and not run_background)
