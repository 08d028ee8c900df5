/* The payer's cashier, in the app that opened it (no inline script: the pages' CSP).
 *
 * Hand-over (#hand-over): calls the app's own in-app payment interface, as each vendor
 * documents it, then sends the payer to the result page:
 *   WeChat  WeixinJSBridge.invoke('getBrandWCPayRequest', {appId, timeStamp, nonceStr, package,
 *           signType, paySign}, cb): err_msg 'get_brand_wcpay_request:ok' | ':cancel' | ':fail';
 *           waits for 'WeixinJSBridgeReady' when the bridge is not there yet.
 *   Alipay  AlipayJSBridge.call('tradePay', {tradeNO}, cb): resultCode '9000' paid, '8000' /
 *           '6004' being processed, '6001' cancelled, '6002' network, '4000' failed;
 *           waits for 'AlipayJSBridgeReady'.
 *   云闪付   upsdk.ready(fn); upsdk.pay({tn, success, fail}) (UnionPay's JS SDK, 手机支付控件).
 * The result the app reports is only a hint (the vendors say so): the result page shows what
 * the platform knows, from the channel's notification, and keeps asking until it is final.
 *
 * Amount pad (.pad): its keys type into the amount field (the field works without them).
 * Status (#pay-state): polls /pay/result/{id}/status until the order is final.
 */
(function () {
  'use strict';
  var FINAL = ['SUCCESS', 'FAILED', 'CLOSED', 'REFUNDED', 'PARTIAL_REFUNDED'];

  function handOver(box) {
    var status = document.getElementById('pay-status');
    var again = document.getElementById('pay-again');
    var resultUrl = box.getAttribute('data-result-url');
    var data = document.getElementById('pay-params');
    var params = data ? JSON.parse(data.textContent) : null;
    var way = box.getAttribute('data-way');
    if (!status) { return; }

    function say(text, cls) { status.textContent = text; status.className = cls || 'muted'; }
    function paid() { say('正在确认支付结果… · Checking the result…'); window.location.href = resultUrl; }
    function stopped(text) { say(text, 'err'); again.hidden = false; }
    function whenReady(name, event, go) {
      if (window[name]) { go(); return; }
      document.addEventListener(event, function once() {
        document.removeEventListener(event, once);
        go();
      }, false);
      window.setTimeout(function () {
        if (!window[name]) {
          stopped('请在 App 中打开此页面付款 · Open this page in the app to pay');
        }
      }, 5000);
    }

    var ways = {
      wechat: function () {
        whenReady('WeixinJSBridge', 'WeixinJSBridgeReady', function () {
          window.WeixinJSBridge.invoke('getBrandWCPayRequest', {
            appId: params.appId, timeStamp: params.timeStamp, nonceStr: params.nonceStr,
            'package': params['package'], signType: params.signType, paySign: params.paySign
          }, function (res) {
            var msg = (res && res.err_msg) || '';
            if (msg === 'get_brand_wcpay_request:ok') { paid(); }
            else if (msg === 'get_brand_wcpay_request:cancel') { stopped('已取消支付 · Payment cancelled'); }
            else { stopped('支付未完成，请重试 · The payment did not go through; try again'); }
          });
        });
      },
      alipay: function () {
        whenReady('AlipayJSBridge', 'AlipayJSBridgeReady', function () {
          window.AlipayJSBridge.call('tradePay', {tradeNO: params.tradeNO}, function (res) {
            var code = String((res && res.resultCode) || '');
            if (code === '9000' || code === '8000' || code === '6004') { paid(); }
            else if (code === '6001') { stopped('已取消支付 · Payment cancelled'); }
            else if (code === '6002') { stopped('网络连接出错，请重试 · Network error; try again'); }
            else { stopped('支付未完成，请重试 · The payment did not go through; try again'); }
          });
        });
      },
      unionpay: function () {
        var waited = 0;
        (function look() {
          if (!window.upsdk) {
            waited += 100;
            if (waited > 5000) {
              stopped('请在云闪付 App 中打开此页面付款 · Open this page in 云闪付 to pay');
            } else { window.setTimeout(look, 100); }
            return;
          }
          window.upsdk.ready(function () {
            window.upsdk.pay({
              tn: box.getAttribute('data-tn'),
              success: paid,
              fail: function (err) {
                stopped(((err && err.msg) || '支付未完成') + ' · The payment did not go through');
              }
            });
          });
        }());
      }
    };
    var go = ways[way];
    if (!go) { return; }
    again.addEventListener('click', function () {
      again.hidden = true;
      say('正在打开支付… · Opening the payment…');
      go();
    });
    go();
  }

  function watch(state) {
    var url = state.getAttribute('data-status-url');
    var started = Date.now();
    function done(s) { return FINAL.indexOf(s) >= 0; }
    function later(ms) {
      /* every 2 s for a minute, then every 5 s (payers behind one carrier address share the
       * poll's per-IP budget); give up after 30 min, past any order's expiry */
      var waited = Date.now() - started;
      if (waited < 30 * 60 * 1000) { window.setTimeout(tick, Math.max(ms, waited < 60000 ? 2000 : 5000)); }
    }
    function tick() {
      fetch(url, {headers: {Accept: 'application/json'}, cache: 'no-store'}).then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (body) {
        if (body && body.status !== state.getAttribute('data-status')) {
          state.setAttribute('data-status', body.status);
          state.className = 'state ' + body.status;
          state.textContent = body.label;
          var card = state.closest('.card');
          if (card) { card.setAttribute('data-status', body.status); }
          if (body.status === 'SUCCESS' && card) { card.classList.add('paid'); }
        }
        if (!body || !done(body.status)) { later(0); }
      }, function () { later(5000); });
    }
    if (!done(state.getAttribute('data-status'))) { window.setTimeout(tick, 1000); }
  }

  function pad(keys) {
    var input = document.getElementById('amount');
    keys.addEventListener('click', function (event) {
      var key = event.target.getAttribute && event.target.getAttribute('data-key');
      if (!key || !input) { return; }
      input.value = key === 'back' ? input.value.slice(0, -1) : input.value + key;
    });
  }

  var keys = document.querySelector('.pad');
  if (keys) { pad(keys); }
  var box = document.getElementById('hand-over');
  if (box) { handOver(box); }
  var state = document.getElementById('pay-state');
  if (state) { watch(state); }
}());
