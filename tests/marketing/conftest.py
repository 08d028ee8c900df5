"""The whole platform in process (the payments tests' fixture), for the marketing flows."""

from tests.payments.conftest import platform

__all__ = ["platform"]
