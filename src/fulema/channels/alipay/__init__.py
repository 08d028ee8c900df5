"""The alipay channel: see the modules of this package."""
