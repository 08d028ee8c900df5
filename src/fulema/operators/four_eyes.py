"""Four eyes on role grants, declared for `core.approvals`.

Roles are the keys to every other control (an admin grants roles and issues tokens, a finance
operator approves fee changes): one person able to grant them alone could make the second pair
of eyes a second account of their own. So a named operator's grant of any role, to another
operator or to a new one, is a request (`operator.set_roles`) that a *different* admin
approves; the operator the roles are for may not approve them. Removing roles takes power away
and runs at once. The bootstrap identity (break glass) and the `fulema operator` CLI, which
need the server's own secrets, still act alone: that is how the first admins are made.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.approvals import ApprovalAction
from fulema.operators.service import set_roles_in

SET_ROLES = "operator.set_roles"


def _conflict(params: dict[str, Any], approver: str) -> str | None:
    return "an operator cannot decide on roles for itself" if params["name"] == approver else None


async def _set_roles(s: AsyncSession, params: dict[str, Any], approver: str) -> dict[str, Any]:
    name = str(params["name"])
    view = await set_roles_in(s, name=name, roles=list(params["roles"]), actor=approver)
    return {"name": view.name, "roles": sorted(view.roles)}


def approval_actions() -> list[ApprovalAction]:
    return [ApprovalAction(SET_ROLES, ("admin",), _set_roles, conflict=_conflict)]
