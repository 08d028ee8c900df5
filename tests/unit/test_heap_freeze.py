"""A served process freezes what its startup built, so a full collection does not stall it (the
speakers' tail: docs/messaging.md); a test process that builds many apps can turn that off."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from fulema.app import create_app
from fulema.core.config import Settings


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite builds many apps: let them be collected


@pytest.mark.parametrize("freeze", [True, False])
async def test_startup_freezes_the_heap_only_when_asked(settings: Settings, thawed: None,
                                                         freeze: bool) -> None:
    app = create_app(settings.model_copy(update={"gc_freeze": freeze}))
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()
    if freeze:
        assert frozen > 10_000  # the app, its routes and compiled machinery at the least
    else:
        assert frozen == 0
