"""What the bank's interface (the sandbox) knows about the platform: the merchant number it
issued and the HMAC secret it shares. The composition root (`fulema.sandboxes`) fills it in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BankpaySandboxConfig:
    merchant_no: str
    secret: str  # shared HMAC-SHA256 key
    public_url: str = ""  # where the sandbox is reachable: code_url / h5_url point here
