"""The wechat channel: see the modules of this package."""
