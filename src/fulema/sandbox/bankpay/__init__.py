"""The bankpay channel sandbox: see the modules of this package."""
