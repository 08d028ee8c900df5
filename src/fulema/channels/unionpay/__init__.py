"""The unionpay channel: see the modules of this package."""
