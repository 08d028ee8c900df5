"""Fixtures of the portal tests (tests/web/portal/kit.py)."""

from tests.payments.conftest import platform as platform  # noqa: F401 - a fixture
from tests.web.portal.kit import cheap_hashes as cheap_hashes  # noqa: F401 - a fixture
from tests.web.portal.kit import kit as kit  # noqa: F401 - a fixture
