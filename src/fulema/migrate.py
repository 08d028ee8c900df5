"""Apply the Alembic migrations, from a source checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def alembic_config(database_url: str) -> Config:
    here = Path(__file__).resolve()
    checkout = here.parents[2]
    if (checkout / "migrations" / "env.py").exists():
        cfg = Config(str(checkout / "alembic.ini"))
        cfg.set_main_option("script_location", str(checkout / "migrations"))
    else:  # installed wheel: migrations are packaged inside fulema/
        cfg = Config(str(here.parent / "_alembic.ini"))
        cfg.set_main_option("script_location", str(here.parent / "_migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Fails if the models and the migrations disagree (alembic check)."""
    command.check(alembic_config(database_url))
