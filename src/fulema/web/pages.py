"""The oldest page frame (`page`, used by the home page and the OAuth problem page) and the
names the cashier shows for apps and discounts. The cashier's own pages are Jinja2 templates
under templates/cashier/ (web/render.py)."""

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


KIND_NAMES = {"campaign": "活动优惠 Offer", "coupon": "优惠券 Coupon", "points": "积分抵扣 Points"}
