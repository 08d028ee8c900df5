"""Tiny HTML rendering for the cashier. The pages are a handful of static layouts, so plain
templates with `html.escape` are enough; a template engine would add a dependency for ~60 lines."""

from __future__ import annotations

from html import escape

APP_NAMES = {"wechat": "微信 WeChat", "alipay": "支付宝 Alipay", "unionpay": "云闪付 UnionPay",
             "ecny": "数字人民币 e-CNY", "bankpay": "本行手机银行 Mobile banking"}

_STYLE = """
body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;background:#f4f5f7}
main{max-width:420px;margin:0 auto;padding:24px 16px}
.card{background:#fff;border-radius:12px;padding:20px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h1{font-size:20px;margin:0 0 4px}.muted{color:#667;font-size:14px}
.amount{font-size:36px;width:100%;box-sizing:border-box;border:0;border-bottom:2px solid #d33;
padding:8px 0;margin:16px 0;outline:none}
button{width:100%;padding:14px;font-size:18px;border:0;border-radius:8px;background:#d33;color:#fff}
.err{color:#c00;margin:8px 0}.ok{color:#080;font-size:22px}.pad{display:grid;
grid-template-columns:repeat(3,1fr);gap:8px;margin-bottom:12px}
.pad span{background:#eee;border-radius:6px;padding:12px;text-align:center;font-size:20px}
ul{padding-left:20px}
"""


def page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><main>{body}</main></body></html>")


def amount_pad(*, merchant: str, store: str, channel: str, action: str, payer_id: str,
               error: str = "", amount: str = "", nonce: str = "") -> str:
    """The amount pad; `nonce` is the answer's script nonce (web/security_headers.py), without
    which the Content-Security-Policy keeps the pad's keys from typing (the field still works)."""
    err = f'<p class="err" role="alert">{escape(error)}</p>' if error else ""
    keys = "".join(f"<span>{k}</span>" for k in "123456789.0⌫")
    body = f"""<div class="card"><h1>{escape(merchant)}</h1>
<p class="muted">{escape(store)} · {escape(APP_NAMES.get(channel, channel))}</p>
<form method="post" action="{escape(action)}">
<label for="amount" class="muted">付款金额 Amount (元 yuan)</label>
<input class="amount" id="amount" name="amount" inputmode="decimal" autocomplete="off"
 placeholder="0.00" value="{escape(amount)}" required pattern="[0-9]+(\\.[0-9]{{1,2}})?">
<input type="hidden" name="payer_id" value="{escape(payer_id)}">
{err}<div class="pad" aria-hidden="true">{keys}</div>
<button type="submit">付款 Pay</button></form></div>
<script nonce="{escape(nonce)}">
document.querySelectorAll('.pad span').forEach(function(k){{k.onclick=function(){{
var i=document.getElementById('amount');var t=k.textContent;
i.value=t==='⌫'?i.value.slice(0,-1):i.value+t;}};}});
</script>"""
    return page(f"向 {merchant} 付款", body)


KIND_NAMES = {"campaign": "活动优惠 Offer", "coupon": "优惠券 Coupon", "points": "积分抵扣 Points"}


def confirm(*, merchant: str, action: str, payer_id: str, amount: str, lines: list[tuple[str, str]],
            discount: str, payable: str, quote: str, points_offer: tuple[int, str, str, str] | None
            ) -> str:
    """The payer sees the discount before confirming: amount, each discount, what they pay.
    `points_offer` = (points, yuan off, payable with points, that quote) when points can help;
    a checkbox picks between the two signed quotes, so the page needs no script."""
    rows = "".join(f"<tr><td>{escape(KIND_NAMES.get(k, k))}</td><td>-¥{escape(v)}</td></tr>"
                   for k, v in lines)
    points_html = ""
    if points_offer is not None:
        n, off, with_points, token = points_offer
        points_html = f"""<label class="muted"><input type="checkbox" name="use_points" value="1">
使用 {n} 积分抵扣 ¥{escape(off)} · Use {n} points (pay ¥{escape(with_points)})</label>
<input type="hidden" name="quote_points" value="{escape(token)}">"""
    body = f"""<div class="card"><h1>{escape(merchant)}</h1>
<form method="post" action="{escape(action)}">
<table style="width:100%" aria-label="breakdown"><tr><td>订单金额 Amount</td><td>¥{escape(amount)}</td></tr>
{rows}<tr><td>优惠 Discount</td><td data-discount="{escape(discount)}">-¥{escape(discount)}</td></tr>
<tr><td><b>应付 To pay</b></td>
<td><b data-payable="{escape(payable)}">¥{escape(payable)}</b></td></tr></table>
{points_html}
<input type="hidden" name="amount" value="{escape(amount)}">
<input type="hidden" name="payer_id" value="{escape(payer_id)}">
<input type="hidden" name="quote" value="{escape(quote)}">
<input type="hidden" name="confirm" value="1">
<p></p><button type="submit">确认付款 Confirm and pay</button></form></div>"""
    return page(f"向 {merchant} 付款", body)


def unsupported(merchant: str, channels: list[str]) -> str:
    items = "".join(f"<li>{escape(APP_NAMES.get(c, c))}</li>" for c in channels)
    body = f"""<div class="card"><h1>{escape(merchant)}</h1>
<p>请使用以下应用扫码付款 · Please scan this code with one of these apps:</p><ul>{items}</ul></div>"""
    return page("请用支持的应用扫码", body)


def hand_over(*, merchant: str, amount: str, order_id: str, channel: str,
              pay_params: dict[str, str] | None, code_url: str | None, h5_url: str | None) -> str:
    if pay_params:
        params = "".join(f"<li><code>{escape(k)}={escape(str(v))}</code></li>"
                         for k, v in pay_params.items())
        how = f"<p class='muted'>在应用内确认支付 · Confirm in the app</p><ul>{params}</ul>"
    elif h5_url or code_url:
        link = escape(h5_url or code_url or "")
        how = f'<p><a href="{link}">打开{escape(APP_NAMES.get(channel, channel))}付款 Open to pay</a></p>'
    else:
        how = ""
    body = f"""<div class="card" data-order-id="{escape(order_id)}"><h1>{escape(merchant)}</h1>
<p class="amount">¥{escape(amount)}</p>{how}
<p><a href="/pay/result/{escape(order_id)}">查看支付结果 · See the result</a></p></div>"""
    return page("确认支付", body)


def result(*, merchant: str, amount: str, status: str, order_id: str) -> str:
    text = {"SUCCESS": ("ok", "支付成功 Paid"), "PAYING": ("muted", "等待支付 Waiting for payment"),
            "CREATED": ("muted", "等待支付 Waiting for payment"),
            "CLOSED": ("err", "订单已关闭 Closed"), "FAILED": ("err", "支付失败 Failed")}
    cls, label = text.get(status, ("muted", status))
    body = f"""<div class="card" data-status="{escape(status)}"><h1>{escape(merchant)}</h1>
<p class="amount">¥{escape(amount)}</p><p class="{cls}">{escape(label)}</p>
<p class="muted">订单号 Order {escape(order_id)}</p></div>"""
    return page(label, body)
