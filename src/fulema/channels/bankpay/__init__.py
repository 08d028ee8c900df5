"""The bankpay channel: see the modules of this package."""
