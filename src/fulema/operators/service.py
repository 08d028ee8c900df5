"""Operators' use cases: create, change roles, disable, issue and revoke API tokens, and the
token lookup every operator request makes (`Directory`, handed to `core.web` by the
composition root). Every change writes its audit record in its own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.web import OperatorIdentity
from fulema.operators import domain
from fulema.operators.domain import OperatorStatus
from fulema.operators.models import Operator, OperatorToken


@dataclass(frozen=True)
class OperatorView:
    id: str
    name: str
    display_name: str
    roles: list[str]
    status: str
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TokenView:
    token_id: str
    operator: str
    label: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


@dataclass(frozen=True)
class IssuedToken:
    """A new token: `token` is shown once, here, and never stored."""

    info: TokenView
    token: str


def _view(op: Operator) -> OperatorView:
    return OperatorView(id=op.id, name=op.name, display_name=op.display_name,
                        roles=sorted(domain.decode_roles(op.roles)), status=op.status,
                        created_by=op.created_by, created_at=op.created_at,
                        updated_at=op.updated_at)


def _token_view(t: OperatorToken, operator: str) -> TokenView:
    return TokenView(token_id=t.id, operator=operator, label=t.label, created_by=t.created_by,
                     created_at=t.created_at, expires_at=t.expires_at, revoked_at=t.revoked_at,
                     revoked_by=t.revoked_by)


async def _by_name(s: AsyncSession, name: str, *, lock: bool = False) -> Operator:
    stmt = select(Operator).where(Operator.name == name)
    op = await s.scalar(stmt.with_for_update() if lock else stmt)
    if op is None:
        raise FulemaError(ErrorCode.OPERATOR_NOT_FOUND, f"no operator {name}")
    return op


async def create_operator(db: Database, *, name: str, display_name: str, roles: list[str],
                          actor: str, reserved: tuple[str, ...] = ()) -> OperatorView:
    """A new ACTIVE operator without a token (`issue_token` gives one). `reserved` names (the
    bootstrap identity's) cannot be taken, so the trail never has two people under one name."""
    domain.check_name(name)
    if name in reserved:
        raise FulemaError(ErrorCode.OPERATOR_EXISTS, f"{name} is reserved")
    text = domain.encode_roles(roles, allow_none=True)
    now = clock.now()
    op = Operator(id=new_id("opr"), name=name, display_name=display_name.strip() or name,
                  roles=text, status=OperatorStatus.ACTIVE.value, created_by=actor,
                  created_at=now, updated_at=now)
    try:
        async with db.transaction() as s:
            if await s.scalar(select(Operator.id).where(Operator.name == name)):
                raise FulemaError(ErrorCode.OPERATOR_EXISTS, f"operator {name} exists")
            s.add(op)
            await s.flush()
            await audit.record(s, actor=actor, action="operator.create", target_type="operator",
                               target_id=name, detail={"roles": sorted(roles)})
    except IntegrityError:  # a concurrent create of the same name committed first
        raise FulemaError(ErrorCode.OPERATOR_EXISTS, f"operator {name} exists") from None
    return _view(op)


async def get_operator(db: Database, *, name: str) -> OperatorView:
    async with db.transaction() as s:
        return _view(await _by_name(s, name))


async def list_operators(db: Database) -> list[OperatorView]:
    async with db.transaction() as s:
        return [_view(o) for o in await s.scalars(select(Operator).order_by(Operator.name))]


async def set_roles(db: Database, *, name: str, roles: list[str], actor: str) -> OperatorView:
    """Replace the roles at once: for the break-glass identity, the CLI and role removals (the
    API asks a second operator for any grant: `operators.four_eyes`)."""
    async with db.transaction() as s:
        return await set_roles_in(s, name=name, roles=roles, actor=actor)


async def set_roles_in(s: AsyncSession, *, name: str, roles: list[str],
                       actor: str) -> OperatorView:
    text = domain.encode_roles(roles)
    op = await _by_name(s, name, lock=True)
    before = sorted(domain.decode_roles(op.roles))
    op.roles, op.updated_at = text, clock.now()
    await audit.record(s, actor=actor, action="operator.set_roles", target_type="operator",
                       target_id=name, detail={"from": before, "to": sorted(set(roles))})
    return _view(op)


async def current_roles(db: Database, *, name: str) -> frozenset[str]:
    """OPERATOR_NOT_FOUND, or the roles the operator holds now."""
    async with db.transaction() as s:
        return domain.decode_roles((await _by_name(s, name)).roles)


async def set_status(db: Database, *, name: str, status: OperatorStatus,
                     actor: str) -> OperatorView:
    """Disable (every token stops working at once) or enable again. An operator cannot disable
    itself: the admins cannot lock themselves out by mistake."""
    if status is OperatorStatus.DISABLED and name == actor:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "name: an operator cannot disable itself")
    async with db.transaction() as s:
        op = await _by_name(s, name, lock=True)
        before = op.status
        op.status, op.updated_at = status.value, clock.now()
        await audit.record(s, actor=actor, action=f"operator.{status.value.lower()}",
                           target_type="operator", target_id=name,
                           detail={"from": before, "to": status.value})
        view = _view(op)
    # a disabled operator's console sessions end at its next page (passwords.identity)
    return view


async def issue_token(db: Database, *, name: str, label: str, actor: str,
                      expires_in_days: int | None = None) -> IssuedToken:
    secret = domain.new_secret()
    now = clock.now()
    async with db.transaction() as s:
        op = await _by_name(s, name, lock=True)
        if op.status != OperatorStatus.ACTIVE.value:
            raise FulemaError(ErrorCode.VALIDATION_ERROR, f"name: {name} is disabled")
        row = OperatorToken(id=new_id("otk"), operator_id=op.id, label=label.strip() or "api",
                            secret_digest=domain.digest(secret), created_by=actor, created_at=now,
                            expires_at=now + timedelta(days=expires_in_days)
                            if expires_in_days else None)
        s.add(row)
        await audit.record(s, actor=actor, action="operator.issue_token", target_type="operator",
                           target_id=name, detail={"token_id": row.id, "label": row.label,
                                                   "expires_at": row.expires_at.isoformat()
                                                   if row.expires_at else None})
        return IssuedToken(info=_token_view(row, name), token=domain.token_text(row.id, secret))


async def list_tokens(db: Database, *, name: str) -> list[TokenView]:
    async with db.transaction() as s:
        op = await _by_name(s, name)
        rows = await s.scalars(select(OperatorToken).where(OperatorToken.operator_id == op.id)
                               .order_by(OperatorToken.id))
        return [_token_view(t, name) for t in rows]


async def revoke_token(db: Database, *, name: str, token_id: str, actor: str) -> TokenView:
    """Revoked for good (idempotent: revoking again changes nothing and records nothing)."""
    async with db.transaction() as s:
        op = await _by_name(s, name)
        row = await s.scalar(select(OperatorToken).where(OperatorToken.id == token_id)
                             .with_for_update())
        if row is None or row.operator_id != op.id:
            raise FulemaError(ErrorCode.OPERATOR_TOKEN_NOT_FOUND)
        if row.revoked_at is None:
            row.revoked_at, row.revoked_by = clock.now(), actor
            await audit.record(s, actor=actor, action="operator.revoke_token",
                               target_type="operator", target_id=name,
                               detail={"token_id": token_id})
        return _token_view(row, name)


async def authenticate(db: Database, token: str) -> OperatorIdentity | None:
    """The ACTIVE operator whose live token this is, or None (unknown, wrong secret, revoked,
    expired, or its operator disabled): the caller answers all of them the same way."""
    parsed = domain.parse_token(token)
    if parsed is None:
        return None
    token_id, secret = parsed
    async with db.transaction() as s:
        row = (await s.execute(
            select(OperatorToken, Operator)
            .join(Operator, Operator.id == OperatorToken.operator_id)
            .where(OperatorToken.id == token_id))).first()
    if row is None:
        return None
    tok, op = row
    if not domain.secret_matches(secret, tok.secret_digest):
        return None
    now = clock.now()
    if tok.revoked_at is not None or (tok.expires_at is not None and tok.expires_at <= now):
        return None
    if op.status != OperatorStatus.ACTIVE.value:
        return None
    return OperatorIdentity(name=op.name, roles=domain.decode_roles(op.roles))


class Directory:
    """`core.web.OperatorDirectory` over this context's tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def authenticate(self, token: str) -> OperatorIdentity | None:
        return await authenticate(self.db, token)
