"""`fulema merchant-user create`: an administrator on the server adds a portal user for a
merchant (its first owner, usually), recorded as `cli:<os user>`. The password is asked for on
the terminal (twice, not echoed) unless FULEMA_NEW_PASSWORD is given for scripts."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Callable

import typer

from fulema.core import audit, passwords, vault
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import FulemaError
from fulema.merchants import users
from fulema.merchants.schemas import MerchantUserOut

user_app = typer.Typer(help="Merchant portal users (docs/portal.md)", no_args_is_help=True)
_settings_source: list[Callable[[], Settings]] = []


def install(root: typer.Typer, settings: Callable[[], Settings]) -> None:
    _settings_source[:] = [settings]
    root.add_typer(user_app, name="merchant-user")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli:unknown"


@user_app.command("create")
def create(merchant_id: str, login_name: str,
           role: str = typer.Option("owner", help="owner | cashier | accountant"),
           display_name: str = typer.Option("", help="a person's name, for pages"),
           password: str = typer.Option(
               ..., envvar="FULEMA_NEW_PASSWORD", prompt=True, hide_input=True,
               confirmation_prompt=True, show_default=False,
               help="asked for twice; scripts set FULEMA_NEW_PASSWORD (never an argument in "
                    "a shell history)")) -> None:
    """Create a portal user."""

    async def main() -> MerchantUserOut:
        settings = _settings_source[0]()
        vault.install(settings.keyring())
        audit.use_algorithm(settings.audit_hash_algorithm)
        passwords.configure(settings)
        db = Database(settings.database_url)
        try:
            return await users.create_user(db, merchant_id=merchant_id, login_name=login_name,
                                           display_name=display_name or login_name, role=role,
                                           password=password, actor=_actor())
        finally:
            await db.dispose()

    try:
        view = asyncio.run(main())
    except FulemaError as exc:
        typer.echo(f"fulema: {exc.code.value}: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{view.user_id} {view.login_name} {view.role} for {view.merchant_id}")
