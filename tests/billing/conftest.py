"""The whole platform in process (tests/payments/conftest.py), for flows that pay real orders."""

from tests.payments.conftest import platform as platform
