"""The payments platform fixture, with rule changes seen by the very next decision."""

from __future__ import annotations

from pathlib import Path

import hypothesis  # noqa: F401 - imported up front: a lazy import at session end trips a CPython 3.11.7 AST bug
import pytest

from fulema.core.config import Settings
from tests.payments.conftest import Platform, platform  # noqa: F401 - the shared fixture

__all__ = ["Platform"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(environment="test", public_base_url="http://testserver", data_dir=tmp_path,
                    database_url=f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
                    operator_token="test-operator", run_background=False, seed_demo=False,
                    risk_ruleset_ttl_seconds=0)
