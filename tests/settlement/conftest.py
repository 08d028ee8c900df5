"""The whole platform in process (the payments tests' fixture)."""

from tests.payments.conftest import platform  # noqa: F401 - the fixture, shared
