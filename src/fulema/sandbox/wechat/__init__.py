"""The wechat channel sandbox: see the modules of this package."""
