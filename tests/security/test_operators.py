"""Operators have their own names, tokens and roles: what a penetration tester and the bank's
security reviewer check is that every operator endpoint asks who is calling and whether their
role allows it, that a revoked, expired or disabled credential stops working at once, and that
the shared token is only a bootstrap identity that production can switch off."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from fulema.cli import app as cli
from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.operators import service
from fulema.operators.domain import OperatorStatus
from fulema.operators.models import OperatorToken
from tests.security.operator_helpers import (
    BOOTSTRAP,
    active_merchant,
    as_,
    operator,
    ops_app,
    ops_client,
)


async def test_each_operator_is_recorded_under_their_own_name(db: Database,
                                                              settings: Settings) -> None:
    async with ops_client(db, settings) as http:
        mid = await active_merchant(http)
        risk = await operator(db, "li.risk", "risk")
        r = await http.post(f"/ops/v1/merchants/{mid}/freeze", json={"reason": "可疑交易"},
                            headers=risk)
        assert r.status_code == 200, r.text
        events = (await http.get(f"/ops/v1/merchants/{mid}/events", headers=BOOTSTRAP)).json()
    assert [(e["action"], e["operator"]) for e in events["data"]][-1] == ("freeze", "li.risk")
    trail = await audit.search(db, action="merchant.freeze")
    assert [(r.actor, r.target_id) for r in trail] == [("li.risk", mid)]
    assert (await audit.search(db, action="merchant.approve"))[0].actor == "bootstrap-admin"


async def test_a_role_the_operator_lacks_is_refused(db: Database, settings: Settings) -> None:
    async with ops_client(db, settings) as http:
        mid = await active_merchant(http)
        reviewer = await operator(db, "wang.review", "reviewer")
        r = await http.post(f"/ops/v1/merchants/{mid}/freeze", json={"reason": "x"},
                            headers=reviewer)
        assert (r.status_code, r.json()["code"]) == (403, "OPERATOR_FORBIDDEN")
        assert "risk or admin" in r.json()["message"]
        r = await http.get("/ops/v1/events/consumers", headers=reviewer)
        assert (r.status_code, r.json()["code"]) == (403, "OPERATOR_FORBIDDEN")
        status = (await http.get(f"/ops/v1/merchants/{mid}", headers=reviewer)).json()["status"]
    assert status == "ACTIVE"  # nothing was frozen


# Every operator endpoint of the merchants, events, channels and operators routers, with the
# roles that may call it (docs/merchants.md, docs/security.md).
_ANY = {"reviewer", "risk", "finance", "admin"}
_ROLE_TABLE: dict[tuple[str, str], set[str]] = {
    ("POST", "/ops/v1/merchants"): {"reviewer"},
    ("GET", "/ops/v1/merchants"): {"reviewer", "risk", "finance"},
    ("GET", "/ops/v1/merchants/{merchant_id}"): {"reviewer", "risk", "finance"},
    ("GET", "/ops/v1/merchants/{merchant_id}/events"): {"reviewer", "risk", "finance"},
    ("POST", "/ops/v1/merchants/{merchant_id}/approve"): {"reviewer"},
    ("POST", "/ops/v1/merchants/{merchant_id}/reject"): {"reviewer"},
    ("POST", "/ops/v1/merchants/{merchant_id}/resubmit"): {"reviewer"},
    ("POST", "/ops/v1/merchants/{merchant_id}/activate"): {"reviewer"},
    ("POST", "/ops/v1/merchants/{merchant_id}/freeze"): {"risk", "admin"},
    ("POST", "/ops/v1/merchants/{merchant_id}/unfreeze"): {"risk", "admin"},
    ("POST", "/ops/v1/merchants/{merchant_id}/close"): {"reviewer", "admin"},
    ("POST", "/ops/v1/merchants/{merchant_id}/settlement-account"): {"reviewer", "finance"},
    ("POST", "/ops/v1/merchants/{merchant_id}/stores"): {"reviewer"},
    ("POST", "/ops/v1/merchants/{merchant_id}/stores/{store_id}/disable"): {"reviewer"},
    ("POST", "/ops/v1/merchants/{merchant_id}/stores/{store_id}/terminals"): {"reviewer"},
    ("POST", "/ops/v1/merchants/{merchant_id}/stores/{store_id}/terminals/{terminal_id}/disable"):
        {"reviewer"},
    ("POST", "/ops/v1/merchants/{merchant_id}/apps"): {"reviewer", "admin"},
    ("POST", "/ops/v1/merchants/{merchant_id}/apps/{app_id}/rotate"): {"reviewer", "admin"},
    ("POST", "/ops/v1/merchants/{merchant_id}/apps/{app_id}/disable"): {"reviewer", "admin"},
    ("PUT", "/ops/v1/merchants/{merchant_id}/fee-rates/{channel}"): {"finance"},
    ("POST", "/ops/v1/merchants/{merchant_id}/plates"): {"reviewer"},
    ("POST", "/ops/v1/plates/{code}/disable"): {"reviewer"},
    ("GET", "/ops/v1/plates/{code}.png"): {"reviewer", "risk", "finance"},
    ("GET", "/ops/v1/events/consumers"): {"admin"},
    ("GET", "/ops/v1/events/consumers/{name}/dead-letters"): {"admin"},
    ("POST", "/ops/v1/events/consumers/{name}/replay"): {"admin"},
    ("POST", "/ops/v1/events/consumers/{name}/skip"): {"admin"},
    ("GET", "/ops/v1/channels"): {"admin"},
    ("POST", "/ops/v1/operators"): {"admin"},
    ("GET", "/ops/v1/operators"): {"admin"},
    ("GET", "/ops/v1/operators/{name}"): {"admin"},
    ("PUT", "/ops/v1/operators/{name}/roles"): {"admin"},
    ("POST", "/ops/v1/operators/{name}/disable"): {"admin"},
    ("POST", "/ops/v1/operators/{name}/enable"): {"admin"},
    ("POST", "/ops/v1/operators/{name}/tokens"): {"admin"},
    ("GET", "/ops/v1/operators/{name}/tokens"): {"admin"},
    ("POST", "/ops/v1/operators/{name}/tokens/{token_id}/revoke"): {"admin"},
    ("PUT", "/ops/v1/operators/{name}/password"): {"admin"},
    ("GET", "/ops/v1/approvals"): _ANY,
    ("GET", "/ops/v1/approvals/{approval_id}"): _ANY,
    ("POST", "/ops/v1/approvals/{approval_id}/approve"): _ANY,  # the action's roles: checked
    ("POST", "/ops/v1/approvals/{approval_id}/reject"): _ANY,   # when deciding (four eyes tests)
    ("GET", "/ops/v1/audit"): {"admin"},
}


def _fill(path: str) -> str:
    return (path.replace("{channel}", "wechat").replace("{code}", "NOPLATE01")
            .replace("{", "x_").replace("}", ""))


async def test_every_operator_route_checks_a_role(sqlite_db: Database, settings: Settings) -> None:
    """Each single-role operator calls every /ops/v1 route. A route in the table refuses
    exactly the roles outside its set with OPERATOR_FORBIDDEN, before the body is read, and lets
    the others past the role check (whatever the route then says of the made-up ids and the
    broken body). A route not in the table (another context's) must refuse at least one role:
    a route that any token opens is a route someone forgot to give a role."""
    tokens = {role: await operator(sqlite_db, f"only.{role}", role) for role in sorted(_ANY)}
    app = ops_app(sqlite_db, settings)
    async with ops_client(sqlite_db, settings, app) as http:
        routes = {(method.upper(), path) for path, item in app.openapi()["paths"].items()
                  if path.startswith("/ops/v1/") for method in item}
        assert set(_ROLE_TABLE) <= routes
        for method, path in sorted(routes):
            refused_roles = set()
            for role, headers in tokens.items():
                resp = await http.request(method, _fill(path), headers=headers,
                                          content=b"{not json")
                assert resp.status_code != 401, (method, path, role)
                if resp.status_code == 403 and resp.json()["code"] == "OPERATOR_FORBIDDEN":
                    refused_roles.add(role)
            if (method, path) in _ROLE_TABLE:
                assert refused_roles == _ANY - _ROLE_TABLE[(method, path)], (method, path)
            else:
                assert refused_roles, f"{method} {path} checks no role"


@pytest.mark.parametrize("header", [
    None, "Bearer ", "Basic test-operator", "Bearer wrong", "Bearer fop_otk_nope.secret",
    "Bearer test-operator\xe9", "Bearer fop_otk_\xe9\xe9",
])
async def test_no_valid_token_is_unauthorized_never_a_500(sqlite_db: Database, settings: Settings,
                                                          header: str | None) -> None:
    async with ops_client(sqlite_db, settings) as http:
        headers = {"Authorization": header.encode("latin-1")} if header is not None else {}
        resp = await http.get("/ops/v1/merchants", headers=headers)  # type: ignore[arg-type]
    assert (resp.status_code, resp.json()["code"]) == (401, "UNAUTHORIZED")


async def test_revoked_expired_or_disabled_credentials_stop_at_once(db: Database,
                                                                    settings: Settings) -> None:
    await service.create_operator(db, name="zhao.fin", display_name="", roles=["finance"],
                                  actor="test")
    keep = await service.issue_token(db, name="zhao.fin", label="desk", actor="test")
    revoked = await service.issue_token(db, name="zhao.fin", label="old", actor="test")
    short = await service.issue_token(db, name="zhao.fin", label="temp", actor="test",
                                      expires_in_days=1)
    await service.revoke_token(db, name="zhao.fin", token_id=revoked.info.token_id, actor="admin")
    async with ops_client(db, settings) as http:
        async def status(token: str) -> int:
            return (await http.get("/ops/v1/merchants", headers=as_(token))).status_code

        assert [await status(t.token) for t in (keep, revoked, short)] == [200, 401, 200]
        # the right token id with another secret is no token
        forged = keep.token[:-4] + ("AAAA" if not keep.token.endswith("AAAA") else "BBBB")
        assert await status(forged) == 401
        clock.advance(timedelta(days=1, seconds=1))
        assert await status(short.token) == 401
        await service.set_status(db, name="zhao.fin",
                                 status=OperatorStatus.DISABLED, actor="admin")
        assert await status(keep.token) == 401


async def test_tokens_are_stored_as_digests_only(db: Database) -> None:
    await service.create_operator(db, name="qian.admin", display_name="", roles=["admin"],
                                  actor="test")
    issued = await service.issue_token(db, name="qian.admin", label="x", actor="test")
    secret = issued.token.split(".", 1)[1]
    async with db.transaction() as s:
        row = (await s.scalars(select(OperatorToken))).one()
    stored = " ".join(str(v) for v in vars(row).values())
    assert secret not in stored
    assert row.secret_digest != secret
    assert len(row.secret_digest) == 64


async def test_the_bootstrap_token_can_be_switched_off(sqlite_db: Database,
                                                       settings: Settings) -> None:
    off = settings.model_copy(update={"operator_bootstrap_enabled": False})
    named = await operator(sqlite_db, "sun.review", "reviewer")
    async with ops_client(sqlite_db, off) as http:
        assert (await http.get("/ops/v1/merchants", headers=BOOTSTRAP)).status_code == 401
        assert (await http.get("/ops/v1/merchants", headers=named)).status_code == 200


async def test_admins_manage_operators_and_every_change_is_audited(db: Database,
                                                                  settings: Settings) -> None:
    admin = await operator(db, "zhou.admin", "admin")
    async with ops_client(db, settings) as http:
        r = await http.post("/ops/v1/operators", headers=BOOTSTRAP,
                            json={"name": "wu.review", "display_name": "吴审核",
                                  "roles": ["reviewer"]})
        assert r.status_code == 201, r.text
        assert (r.json()["name"], r.json()["roles"], r.json()["status"]) == (
            "wu.review", ["reviewer"], "ACTIVE")
        again = await http.post("/ops/v1/operators", headers=admin,
                                json={"name": "wu.review", "roles": ["risk"], "reason": "再建"})
        assert again.json()["code"] == "OPERATOR_EXISTS"
        taken = await http.post("/ops/v1/operators", headers=admin,
                                json={"name": "bootstrap-admin", "roles": ["risk"],
                                       "reason": "冒名"})
        assert taken.json()["code"] == "OPERATOR_EXISTS"
        bad = await http.post("/ops/v1/operators", headers=admin,
                              json={"name": "Wu Review", "roles": ["god"]})
        assert bad.json()["code"] == "VALIDATION_ERROR"
        issued = await http.post("/ops/v1/operators/wu.review/tokens", headers=admin,
                                 json={"label": "laptop"})
        assert issued.status_code == 201, issued.text
        token, token_id = issued.json()["token"], issued.json()["token_id"]
        assert token.startswith(f"fop_{token_id}.")
        listed = (await http.get("/ops/v1/operators/wu.review/tokens", headers=admin)).json()
        assert [t["token_id"] for t in listed["data"]] == [token_id]
        assert token.split(".")[1] not in str(listed)
        assert (await http.get("/ops/v1/merchants", headers=as_(token))).status_code == 200
        roles = await http.put("/ops/v1/operators/wu.review/roles", headers=admin,
                               json={"roles": ["risk", "reviewer"], "reason": "兼任风控"})
        assert roles.status_code == 202, roles.text  # a grant: four eyes (test_role_grants_*)
        removed = await http.put("/ops/v1/operators/wu.review/roles", headers=admin,
                                 json={"roles": ["reviewer"]})
        assert removed.json()["roles"] == ["reviewer"]
        revoke = await http.post(f"/ops/v1/operators/wu.review/tokens/{token_id}/revoke",
                                 headers=admin)
        assert revoke.json()["revoked_by"] == "zhou.admin"
        assert (await http.get("/ops/v1/merchants", headers=as_(token))).status_code == 401
        self_disable = await http.post("/ops/v1/operators/zhou.admin/disable", headers=admin)
        assert self_disable.json()["code"] == "VALIDATION_ERROR"
        missing = await http.post("/ops/v1/operators/nobody/disable", headers=admin)
        assert missing.json()["code"] == "OPERATOR_NOT_FOUND"
    trail = [(r.actor, r.action) for r in await audit.search(db, target_id="wu.review")]
    assert trail[::-1] == [("bootstrap-admin", "operator.create"),
                           ("zhou.admin", "operator.issue_token"),
                           ("zhou.admin", "approval.request"), ("zhou.admin", "operator.set_roles"),
                           ("zhou.admin", "operator.revoke_token")]
    assert token.split(".")[1] not in str(await audit.search(db))


async def test_the_cli_creates_an_operator_and_shows_the_token_once(
        sqlite_db: Database, settings: Settings, tmp_path: object) -> None:
    import asyncio

    env = {"FULEMA_DATABASE_URL": settings.database_url}
    result = await asyncio.to_thread(CliRunner().invoke, cli,
                                     ["operator", "create", "he.admin", "--role", "admin",
                                      "--role", "finance"], env=env)
    assert result.exit_code == 0, result.output
    token = result.output.split("token (shown once): ")[1].strip()
    async with ops_client(sqlite_db, settings) as http:
        me = await http.get("/ops/v1/operators/he.admin", headers=as_(token))
    assert me.status_code == 200, me.text
    assert me.json()["roles"] == ["admin", "finance"]
    assert me.json()["created_by"].startswith("cli:")
    dup = await asyncio.to_thread(CliRunner().invoke, cli,
                                  ["operator", "create", "he.admin", "--role", "admin"], env=env)
    assert dup.exit_code == 1
    assert "OPERATOR_EXISTS" in dup.output
