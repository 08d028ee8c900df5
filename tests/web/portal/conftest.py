"""Fixtures of the portal tests (tests/web/portal/kit.py)."""

from tests.payments.conftest import platform as platform
from tests.web.portal.kit import cheap_hashes as cheap_hashes
from tests.web.portal.kit import kit as kit
