/* The payer's app, simulated (development only; sandbox/appshell/routes.py).
 *
 * A real WeChat, Alipay or 云闪付 app injects its JS bridge into the pages it opens; this file
 * is that injection for the app the shell plays (cookie fulema_app_shell). It defines the
 * bridge object exactly as the cashier expects to find it in the app:
 *   WeChat   WeixinJSBridge.invoke('getBrandWCPayRequest', params, cb) -> cb({err_msg})
 *            defined after the page loads, then the 'WeixinJSBridgeReady' event, as WeChat does
 *   Alipay   AlipayJSBridge.call('tradePay', {tradeNO}, cb) -> cb({resultCode: '9000' | ...})
 *            likewise after load, then 'AlipayJSBridgeReady'
 *   云闪付    upsdk.ready(fn), upsdk.pay({tn, success, fail})  (UnionPay's JS SDK)
 *   e-CNY, bank app: the app catches its own payment links (a[data-app-pay]) as it would its
 *            URL scheme, and returns to the link's data-return-url afterwards.
 * Each shows the payer's confirm sheet (amount, balance, password for a payer who needs one)
 * and pays through the channel sandbox's wallet (/sandbox/<channel>/wallet/scan), as the app
 * pays through its own back end. The sandbox password of every payer is 123456.
 */
(function () {
  'use strict';
  var SANDBOX_PASSWORD = '123456';
  var NAMES = {wechat: '微信支付 WeChat Pay', alipay: '支付宝 Alipay', unionpay: '云闪付 UnionPay',
               ecny: '数字人民币 e-CNY', bankpay: '手机银行 Mobile banking'};

  function cookie(name) {
    var m = document.cookie.match(new RegExp('(?:^|; )' + name + '=([^;]*)'));
    return m ? decodeURIComponent(m[1]) : '';
  }
  var app = cookie('fulema_app_shell');
  var payer = cookie('fulema_app_payer');
  if (!NAMES[app]) { return; }
  var base = '/sandbox/' + app + '/wallet/';

  function yuan(fen) { return '¥' + Math.floor(fen / 100) + '.' + ('0' + fen % 100).slice(-2); }
  function getJSON(url) {
    return fetch(url).then(function (r) {
      return r.json().then(function (body) { return {ok: r.ok, body: body}; });
    });
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text) { e.textContent = text; }
    return e;
  }
  function why(body) {
    return body.message || body.sub_msg || body.msg || body.respMsg || body.code || '支付失败';
  }

  /* The confirm sheet: resolves 'paid', 'cancel' or 'fail'. `ref` names the order for the
   * sandbox (prepay_id, trade_no, QR code or link); `scan` is the body the wallet pays with. */
  function sheet(ref, scan) {
    return new Promise(function (resolve) {
      var shade = el('div', {id: 'app-sheet', role: 'dialog', 'aria-label': NAMES[app]});
      shade.style.cssText = 'position:fixed;inset:0;background:rgba(0,0,0,.45);z-index:99;' +
        'display:flex;align-items:flex-end;justify-content:center';
      var box = el('div');
      box.style.cssText = 'background:#fff;width:100%;max-width:480px;border-radius:14px 14px 0 0;' +
        'padding:18px 18px 24px;font-size:15px;box-sizing:border-box';
      box.appendChild(el('p', {'class': 'muted'}, NAMES[app] + ' · 沙箱 sandbox'));
      var amount = el('p', {'data-sheet': 'amount'}, '…');
      amount.style.cssText = 'font-size:30px;font-weight:600;margin:4px 0';
      var balance = el('p', {'class': 'muted', 'data-sheet': 'balance'}, '');
      var pin = el('input', {type: 'password', inputmode: 'numeric', maxlength: '6',
                             autocomplete: 'off', 'aria-label': '支付密码 Payment password',
                             placeholder: '支付密码 Password (6 位)', name: 'app-password'});
      pin.style.cssText = 'width:100%;font-size:20px;padding:8px;margin:6px 0;display:none';
      var note = el('p', {'class': 'err', role: 'alert', 'data-sheet': 'error'}, '');
      var ok = el('button', {type: 'button', 'data-sheet': 'confirm'}, '确认支付 Confirm');
      var no = el('button', {type: 'button', 'class': 'secondary', 'data-sheet': 'cancel'},
                  '取消 Cancel');
      ok.style.cssText = 'width:100%;padding:12px;margin-top:8px;font-size:17px';
      no.style.cssText = 'width:100%;padding:10px;margin-top:8px';
      [amount, balance, pin, note, ok, no].forEach(function (e) { box.appendChild(e); });
      shade.appendChild(box);
      document.body.appendChild(shade);
      var needsPin = false;
      var finish = function (how) { shade.remove(); resolve(how); };

      Promise.all([getJSON(base + 'lookup?ref=' + encodeURIComponent(ref)),
                   getJSON(base + 'payers/' + encodeURIComponent(payer))]).then(function (r) {
        if (!r[0].ok) { note.textContent = why(r[0].body); ok.disabled = true; return; }
        amount.textContent = yuan(r[0].body.amount_fen);
        if (r[1].ok) {
          var fen = r[1].body.balance_fen;
          balance.textContent = '付款账户 ' + payer.slice(0, 3) + '***' + payer.slice(-2) +
            ' · 余额 Balance ' + (typeof fen === 'number' ? yuan(fen) : '—');
          needsPin = !!r[1].body.password_required;
          pin.style.display = needsPin ? 'block' : 'none';
        } else {
          note.textContent = '沙箱里没有这个付款人 · No such sandbox payer: ' + payer;
          ok.disabled = true;
        }
      });
      no.addEventListener('click', function () { finish('cancel'); });
      ok.addEventListener('click', function () {
        if (needsPin && pin.value !== SANDBOX_PASSWORD) {
          note.textContent = '支付密码错误 · Wrong password';
          return;
        }
        ok.disabled = true;
        scan.payer_id = payer;
        fetch(base + 'scan', {method: 'POST', headers: {'Content-Type': 'application/json'},
                              body: JSON.stringify(scan)}).then(function (r) {
          return r.json().then(function (body) {
            if (r.ok) { finish('paid'); return; }
            note.textContent = why(body);
            ok.disabled = false;
          });
        });
      });
    });
  }

  function announce(name, event, bridge) {
    /* like the app: the bridge arrives after the page, then the ready event */
    document.addEventListener('DOMContentLoaded', function () {
      window[name] = bridge;
      document.dispatchEvent(new Event(event));
    });
  }

  if (app === 'wechat') {
    announce('WeixinJSBridge', 'WeixinJSBridgeReady', {
      invoke: function (api, params, cb) {
        if (api !== 'getBrandWCPayRequest') { cb({err_msg: api + ':fail'}); return; }
        var prepay = String(params['package'] || '').replace(/^prepay_id=/, '');
        if (!params.appId || !params.paySign || !prepay) {
          cb({err_msg: 'get_brand_wcpay_request:fail'});
          return;
        }
        sheet(prepay, {prepay_id: prepay}).then(function (how) {
          cb({err_msg: 'get_brand_wcpay_request:' + (how === 'paid' ? 'ok' : how)});
        });
      }
    });
  } else if (app === 'alipay') {
    announce('AlipayJSBridge', 'AlipayJSBridgeReady', {
      call: function (api, params, cb) {
        if (api !== 'tradePay' || !params.tradeNO) { cb({resultCode: '4000'}); return; }
        sheet(params.tradeNO, {trade_no: params.tradeNO}).then(function (how) {
          cb({resultCode: {paid: '9000', cancel: '6001'}[how] || '4000'});
        });
      }
    });
  } else if (app === 'unionpay') {
    window.upsdk = {
      ready: function (fn) {
        if (document.readyState === 'loading') {
          document.addEventListener('DOMContentLoaded', fn);
        } else { fn(); }
      },
      pay: function (opts) {
        sheet(opts.tn, {code_url: opts.tn}).then(function (how) {
          if (how === 'paid') { opts.success && opts.success(); } else {
            opts.fail && opts.fail({msg: how === 'cancel' ? '用户取消支付' : '支付失败'});
          }
        });
      }
    };
  } else {
    document.addEventListener('click', function (event) {
      var link = event.target.closest && event.target.closest('a[data-app-pay]');
      if (!link) { return; }
      event.preventDefault();
      var ref = link.getAttribute('href');
      sheet(ref, {code_url: ref}).then(function (how) {
        if (how === 'paid') { window.location.href = link.getAttribute('data-return-url'); }
      });
    });
  }
}());
