"""The in-process platform of tests/payments (app, mounted sandboxes, demo merchant)."""

from tests.payments.conftest import platform  # noqa: F401 - the fixture, shared
