"""The payer's app, played in the browser (development only): see `routes.py`.

The cookies are the shell's whole state: which app it plays and who is signed in to it. The
cashier reads the first (to include the app's bridge), the channel sandboxes' authorize pages
read the second (the app knows its own user).
"""

APP_COOKIE = "fulema_app_shell"  # wechat | alipay | unionpay | ecny | bankpay
APP_PAYER_COOKIE = "fulema_app_payer"  # the sandbox payer signed in to that app
