"""The alipay channel sandbox: see the modules of this package."""
