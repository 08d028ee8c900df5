"""The app shell: a page that plays the payer's app (WeChat, Alipay, 云闪付, e-CNY, a bank's app)
so a payer in a desktop or phone browser can finish every channel (development only; mounted
with the channel sandboxes at /sandbox/app, never in production: `production_problems` refuses
FULEMA_MOUNT_SANDBOX there).

How the app's bridge reaches the cashier. A real app injects its JS bridge into the page it
opens. The cashier's pages forbid framing (`frame-ancestors 'none'`) and inline script without
the answer's nonce, so the shell can neither wrap the cashier in a frame nor inject a script
into it. Instead the shell sets two cookies (which app it plays, which sandbox payer is signed
in) and opens the cashier as a top-level page; the cashier, in development only and only when
that cookie names an app, includes `/sandbox/app/bridge.js`, a static file from this host that
defines the bridge object exactly as the app would. The cashier's own code is the same with or
without the shell: it calls the app's documented interface and cannot tell the two apart.

The User-Agent cannot be set by a page: the shell shows which app the browser's User-Agent
names (the browser tests set it; a person uses the browser's device emulation).
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from urllib.parse import quote

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulema.sandbox.appshell import APP_COOKIE, APP_PAYER_COOKIE

# what each app is called, the User-Agent marker it carries, and its sandbox's default payer
APPS: dict[str, tuple[str, str, str]] = {
    "wechat": ("微信 WeChat", "MicroMessenger/8.0.47", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
    "alipay": ("支付宝 Alipay", "AlipayClient/10.5.90", "2088102146225135"),
    "unionpay": ("云闪付 UnionPay", "UnionPay/1.0 CloudPay", "up_rich"),
    "ecny": ("数字人民币 e-CNY", "eCNY/1.0.9", "payer_rich"),
    "bankpay": ("手机银行 Bank app", "FulemaBank/3.1", "payer_rich"),
}

_STYLE = """body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;
background:#f4f5f7}main{max-width:520px;margin:0 auto;padding:16px}
.card{background:#fff;border-radius:10px;padding:16px;margin-bottom:12px}
label{display:block;margin:10px 0 4px;font-size:14px}input,select{font:inherit;padding:8px;
width:100%;box-sizing:border-box}button{font:inherit;padding:10px 16px;margin-top:14px;border:0;
border-radius:6px;background:#b8232f;color:#fff;width:100%}code{word-break:break-all}
.muted{color:#667;font-size:13px}"""


def _page(body: str) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>付款人 App 沙箱 · Payer's app (sandbox)</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>")


def app_of(user_agent: str) -> str | None:
    """The app whose marker the User-Agent carries (the shell's own small table)."""
    for name, (_, marker, _) in APPS.items():
        if marker.split("/")[0] in user_agent:
            return name
    return None


def build_app_shell() -> FastAPI:
    app = FastAPI(title="payer's app shell (sandbox)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    bridge = files("fulema.sandbox.appshell").joinpath("bridge.js").read_text("utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def shell(request: Request, plate: str = "DEMO000001") -> HTMLResponse:
        ua = request.headers.get("user-agent", "")
        playing = app_of(ua)
        options = "".join(
            f'<option value="{k}"{" selected" if k == playing else ""}>{escape(n)}</option>'
            for k, (n, _, _) in APPS.items())
        markers = "".join(f"<li>{escape(n)}: <code>{escape(m)}</code>, 付款人 payer "
                          f"<code>{escape(p)}</code></li>" for n, m, p in APPS.values())
        now = (f"本浏览器的 User-Agent 是 {escape(APPS[playing][0])} · This browser is "
               f"{escape(APPS[playing][0])}" if playing else
               "本浏览器的 User-Agent 不是支付 App；请用设备模拟加上下列标记之一 · This "
               "browser's User-Agent names no app: add one of these markers (device emulation)")
        return _page(f"""<div class="card"><h1>付款人 App 沙箱 · Payer's app (sandbox)</h1>
<p class="muted">开发环境专用：扮演付款人的 App，在收银台里提供 App 的支付接口。
Development only: plays the payer's app and gives the cashier the app's payment interface.</p>
<p>{now}</p><ul class="muted">{markers}</ul></div>
<form class="card" method="post" action="/sandbox/app/open">
<label for="app">App</label><select id="app" name="app">{options}</select>
<label for="payer">付款人 Payer (沙箱钱包 sandbox wallet; 空 = 默认 empty = default)</label>
<input id="payer" name="payer" autocomplete="off">
<label for="plate">收款码 Plate code</label>
<input id="plate" name="plate" value="{escape(plate)}" autocomplete="off">
<button type="submit">扫码 Scan</button></form>
<p class="muted"><a href="/sandbox/app/leave">退出 App · Leave the app</a></p>""")

    @app.post("/open")
    async def open_cashier(app_name: str = Form("", alias="app"), payer: str = Form(""),
                           plate: str = Form("DEMO000001")) -> Response:
        if app_name not in APPS or not plate.isascii() or not plate.isalnum():
            return _page('<div class="card"><p>未知的 App 或收款码 · Unknown app or plate</p>'
                         '<p><a href="/sandbox/app/">返回 Back</a></p></div>')
        answer = RedirectResponse(f"/pay/q/{quote(plate)}", status_code=303)
        answer.set_cookie(APP_COOKIE, app_name, samesite="lax", path="/")
        answer.set_cookie(APP_PAYER_COOKIE, payer.strip() or APPS[app_name][2], samesite="lax",
                          path="/")
        return answer

    @app.get("/leave")
    async def leave() -> Response:
        answer = RedirectResponse("/sandbox/app/", status_code=303)
        answer.delete_cookie(APP_COOKIE, path="/")
        answer.delete_cookie(APP_PAYER_COOKIE, path="/")
        return answer

    @app.get("/bridge.js")
    async def bridge_js() -> Response:
        return Response(bridge, media_type="text/javascript",
                        headers={"Cache-Control": "no-store"})

    return app
