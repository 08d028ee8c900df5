"""Rules and lists as stored data: versioned, validated before they take effect, audited.

Every change bumps `risk_state.ruleset` in its own transaction; each process keeps the compiled
rule set and compares that one number at most every `risk_ruleset_ttl_seconds` (one primary-key
read a second per process, in the background: a decision never waits for it), so an edit takes
effect everywhere within about that time, without a restart. The default rules are written on
first use when no rule has ever been stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.risk.defaults import DEFAULT_RULES
from fulema.risk.domain import (
    RULE_ID_RE,
    Rule,
    RuleError,
    RuleSet,
    build_lists,
    check_not_deny_all,
    compile_rule,
)
from fulema.risk.models import RiskListEntry, RiskRule, RiskRuleVersion, RiskState

STATE_KEY = "ruleset"


@dataclass(frozen=True)
class RuleView:
    id: str
    version: int
    enabled: bool
    body: dict[str, Any]
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class ListEntryView:
    list_name: str
    value: str
    reason: str
    added_by: str
    added_at: datetime


def _view(r: RiskRule) -> RuleView:
    return RuleView(id=r.id, version=r.version, enabled=r.enabled, body=dict(r.body),
                    updated_by=r.updated_by, updated_at=r.updated_at)


async def current_version(db: Database) -> int:
    async with db.transaction() as s:
        v = await s.scalar(select(RiskState.version).where(RiskState.key == STATE_KEY))
    return int(v or 0)


async def _bump(s: AsyncSession) -> None:
    done = await s.execute(update(RiskState).where(RiskState.key == STATE_KEY)
                           .values(version=RiskState.version + 1))
    if done.rowcount == 0:  # type: ignore[attr-defined]
        s.add(RiskState(key=STATE_KEY, version=1))


async def install_defaults(db: Database) -> None:
    """Writes the shipped rules once, on an installation that has never stored a rule."""
    try:
        async with db.transaction() as s:
            if await s.scalar(select(RiskState.version).where(RiskState.key == STATE_KEY)):
                return
            now = clock.now()
            for body in DEFAULT_RULES:
                compile_rule(body)
                s.add(RiskRule(id=body["id"], version=1, body=body, enabled=True,
                               updated_by="system", updated_at=now))
                s.add(RiskRuleVersion(rule_id=body["id"], version=1, body=body, enabled=True,
                                      changed_by="system", changed_at=now))
            s.add(RiskState(key=STATE_KEY, version=1))
    except IntegrityError:
        return  # another process installed them first


async def _stored(db: Database) -> tuple[int, list[RiskRule], list[tuple[str, str]]]:
    """The rule-set version, the enabled rules and the list entries, read together."""
    async with db.transaction() as s:
        version = int(await s.scalar(select(RiskState.version).where(
            RiskState.key == STATE_KEY)) or 0)
        rows = list(await s.scalars(select(RiskRule).where(RiskRule.enabled.is_(True))
                                    .order_by(RiskRule.id)))
        entries = [(e.list_name, e.value) for e in await s.scalars(select(RiskListEntry))]
    return version, rows, entries


def _compiled(rows: list[RiskRule]) -> tuple[list[Rule], list[str]]:
    compiled: list[Rule] = []
    broken: list[str] = []
    for row in rows:
        try:
            compiled.append(compile_rule(row.body))
        except RuleError:
            broken.append(row.id)  # written around the API: fail safe, never crash the payment
    return compiled, broken


async def load_ruleset(db: Database) -> RuleSet:
    """The enabled rules, compiled, with the lists: what every decision runs."""
    version, rows, entries = await _stored(db)
    compiled, broken = _compiled(rows)
    return RuleSet(version=version, rules=tuple(compiled), lists=build_lists(entries),
                   broken=tuple(broken))


async def _check_list_change(db: Database, *, list_name: str, value: str, adding: bool) -> None:
    """A list change can make the rules deny everything too: an IP range that holds every
    address on a blacklist, or the last entry taken off the list a `not_in_list` DENY rule
    exempts. Refused like a rule that would (`RISK_RULE_INVALID`), before it takes effect."""
    _version, rows, entries = await _stored(db)
    if adding:
        entries.append((list_name, value))
    else:
        entries = [e for e in entries if e != (list_name, value)]
    try:
        check_not_deny_all(_compiled(rows)[0], build_lists(entries))
    except RuleError as exc:
        raise _refuse(exc) from None


def _refuse(exc: RuleError) -> FulemaError:
    return FulemaError(ErrorCode.RISK_RULE_INVALID, str(exc))


async def validate(db: Database, body: dict[str, Any], *, enabled: bool = True) -> Rule:
    """Parses the rule and checks the rule set it would make: `RISK_RULE_INVALID` otherwise."""
    try:
        rule = compile_rule(body)
    except RuleError as exc:
        raise _refuse(exc) from None
    current = await load_ruleset(db)
    others = [r for r in current.rules if r.id != rule.id]
    try:
        check_not_deny_all([*others, rule] if enabled else others, current.lists)
    except RuleError as exc:
        raise _refuse(exc) from None
    return rule


async def list_rules(db: Database) -> list[RuleView]:
    async with db.transaction() as s:
        return [_view(r) for r in await s.scalars(select(RiskRule).order_by(RiskRule.id))]


async def rule_versions(db: Database, *, rule_id: str) -> list[dict[str, Any]]:
    async with db.transaction() as s:
        rows = list(await s.scalars(select(RiskRuleVersion).where(
            RiskRuleVersion.rule_id == rule_id).order_by(RiskRuleVersion.version)))
    if not rows:
        raise FulemaError(ErrorCode.RISK_RULE_NOT_FOUND)
    return [{"version": r.version, "enabled": r.enabled, "body": r.body,
             "changed_by": r.changed_by, "changed_at": r.changed_at} for r in rows]


async def save_rule(db: Database, *, body: dict[str, Any], enabled: bool, operator: str,
                    expected_version: int | None = None) -> RuleView:
    """Creates a rule or writes its next version (optimistic: `expected_version`, when given,
    must be the current one). Validated first; audited in the same transaction."""
    await install_defaults(db)
    rule = await validate(db, body, enabled=enabled)
    now = clock.now()
    async with db.transaction() as s:
        row = await s.get(RiskRule, rule.id, with_for_update=True)
        if expected_version is not None and (row.version if row else 0) != expected_version:
            raise FulemaError(ErrorCode.RISK_RULE_CONFLICT,
                              f"rule {rule.id} is at version {row.version if row else 0}")
        if row is None:
            row = RiskRule(id=rule.id, version=1, body=dict(body), enabled=enabled,
                           updated_by=operator, updated_at=now)
            s.add(row)
        else:
            row.version += 1
            row.body, row.enabled, row.updated_by, row.updated_at = dict(body), enabled, operator, now
        s.add(RiskRuleVersion(rule_id=rule.id, version=row.version, body=dict(body),
                              enabled=enabled, changed_by=operator, changed_at=now))
        await _bump(s)
        await audit.record(s, actor=operator, action="risk.rule.save", target_type="risk_rule",
                           target_id=rule.id, detail={"version": row.version, "enabled": enabled,
                                                      "body": dict(body)})
        await s.flush()
        return _view(row)


async def set_enabled(db: Database, *, rule_id: str, enabled: bool, operator: str) -> RuleView:
    async with db.transaction() as s:
        row = await s.get(RiskRule, rule_id)
        if row is None:
            raise FulemaError(ErrorCode.RISK_RULE_NOT_FOUND)
        body = dict(row.body)
    return await save_rule(db, body=body, enabled=enabled, operator=operator)


def _check_list(name: str, value: str) -> None:
    if not RULE_ID_RE.match(name):
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "list name: lower-case letters, digits, -_.")
    if not value or len(value) > 128:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "value: 1..128 characters")


def _masked(value: str) -> str:
    """What the audit trail keeps of a listed value: enough to recognise, not the identifier."""
    return value if len(value) <= 8 else value[:3] + "***" + value[-3:]


async def add_to_list_in(s: AsyncSession, *, list_name: str, value: str, reason: str,
                         operator: str) -> bool:
    """In the caller's transaction (closing a case as fraud lists the merchant with it)."""
    _check_list(list_name, value)
    found = await s.scalar(select(RiskListEntry.id).where(
        RiskListEntry.list_name == list_name, RiskListEntry.value == value))
    if found is not None:
        return False
    s.add(RiskListEntry(id=new_id("rle"), list_name=list_name, value=value,
                        reason=reason[:256], added_by=operator, added_at=clock.now()))
    await _bump(s)
    await audit.record(s, actor=operator, action="risk.list.add", target_type="risk_list",
                       target_id=list_name, detail={"value": _masked(value), "reason": reason[:256]})
    return True


async def add_to_list(db: Database, *, list_name: str, value: str, reason: str,
                      operator: str) -> bool:
    await install_defaults(db)  # the first change must not stand in for the shipped rules
    _check_list(list_name, value)
    await _check_list_change(db, list_name=list_name, value=value, adding=True)
    try:
        async with db.transaction() as s:
            return await add_to_list_in(s, list_name=list_name, value=value, reason=reason,
                                        operator=operator)
    except IntegrityError:
        return False  # a concurrent request listed it


async def remove_from_list(db: Database, *, list_name: str, value: str, operator: str) -> bool:
    await install_defaults(db)
    await _check_list_change(db, list_name=list_name, value=value, adding=False)
    async with db.transaction() as s:
        row = (await s.scalars(select(RiskListEntry).where(
            RiskListEntry.list_name == list_name, RiskListEntry.value == value))).first()
        if row is None:
            return False
        await s.delete(row)
        await _bump(s)
        await audit.record(s, actor=operator, action="risk.list.remove", target_type="risk_list",
                           target_id=list_name, detail={"value": _masked(value)})
        return True


async def list_entries(db: Database, *, list_name: str) -> list[ListEntryView]:
    async with db.transaction() as s:
        rows = await s.scalars(select(RiskListEntry).where(RiskListEntry.list_name == list_name)
                               .order_by(RiskListEntry.added_at))
        return [ListEntryView(list_name=r.list_name, value=r.value, reason=r.reason,
                              added_by=r.added_by, added_at=r.added_at) for r in rows]
