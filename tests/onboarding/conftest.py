"""The onboarding tests' platform (tests/onboarding/helpers.py builds it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fulema.core.config import Settings
from fulema.core.db import Database
from tests.onboarding.helpers import onboarding_platform
from tests.payments.conftest import Platform


@pytest.fixture
async def platform(db: Database, settings: Settings) -> AsyncIterator[Platform]:
    async with onboarding_platform(db, settings) as p:
        yield p
