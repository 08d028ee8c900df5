"""The unionpay channel sandbox: see the modules of this package."""
