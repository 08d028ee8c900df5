"""Message templates, per event and delivery channel (Jinja2).

A template sees the event's fields plus the derived `amount_words` (the spoken amount,
messaging.domain.amount_words), `amount_yuan` (12.50) and `brand`. Autoescaping is off: the
output is speech, SMS or push text, never HTML (pages escape on their own).
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from fulema.messaging.domain import amount_words, yuan_text

BRAND = "付了码"

# (event topic, delivery channel) -> template source
TEMPLATES: dict[tuple[str, str], str] = {
    ("payment.succeeded", "speaker"): "{{ brand }}收款{{ amount_words }}",
    ("payment.succeeded", "sms"): "【{{ brand }}】您的门店收款{{ amount_yuan }}元，订单{{ order_id }}。",
    ("payment.succeeded", "push"): "收款 {{ amount_yuan }} 元",
    ("refund.succeeded", "sms"): "【{{ brand }}】您的门店退款{{ amount_yuan }}元已成功，订单{{ order_id }}。",
    ("refund.succeeded", "push"): "退款 {{ amount_yuan }} 元",
    ("risk.alert", "notice"): "[{{ severity }}] {{ kind }}: {{ summary }}",
    ("risk.alert", "sms"): "【{{ brand }}】风险提示（{{ severity }}）：{{ summary }}",
    ("risk.alert", "push"): "风险提示：{{ summary }}",
    ("settlement.paid", "sms"): "【{{ brand }}】结算款{{ amount_yuan }}元已到账。",
    ("settlement.paid", "push"): "结算款 {{ amount_yuan }} 元已到账",
    ("settlement.paid", "notice"): "结算款 {{ amount_yuan }} 元已到账",
}

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_compiled = {key: _env.from_string(source) for key, source in TEMPLATES.items()}


def render(topic: str, channel: str, fields: dict[str, Any]) -> str:
    """The text for one event on one delivery channel; KeyError if none is defined."""
    template = _compiled[(topic, channel)]
    context = dict(fields)
    context.setdefault("brand", BRAND)
    if isinstance(fields.get("amount"), int):
        context.setdefault("amount_words", amount_words(fields["amount"]))
        context.setdefault("amount_yuan", yuan_text(fields["amount"]))
    return template.render(context)
