"""The whole platform in process (tests/payments/conftest.py), reused for the security tests."""

from tests.payments.conftest import Platform, platform  # noqa: F401 - the fixture
