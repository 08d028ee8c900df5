"""The benchmark's day: N paid orders (and a refund for every 20th) of one channel, made in
PostgreSQL by one INSERT ... SELECT over generate_series (server-side, kept between runs),
and the channel's statement of that day in the channel's own format with injected
differences, written by polars and cached on disk.

Both sides come from the same formula of the row number `i`, so the statement agrees with
the database except where a difference is injected on purpose: every 1000th row dropped
(短款), every 1000th+1 with one fen more, and 50 rows we never had (长款).
"""

from __future__ import annotations

import gzip
import io
import tempfile
import zipfile
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

import polars as pl

CST = timezone(timedelta(hours=8))
DAY = date(2026, 11, 24)
CACHE = Path(tempfile.gettempdir()) / "fulema-recon-bench"
EXTRA = 50
WAYS = ("QR_DYNAMIC", "BARCODE", "JSAPI")


def day_for(n: int) -> date:
    """Each size gets its own day, so sizes do not see each other's orders."""
    return DAY - timedelta(days={10_000: 0, 100_000: 1, 1_000_000: 2}.get(n, 3 + n % 97))


def expected(n: int) -> dict[str, int]:
    drops = len(range(0, n, 1000))
    return {"ONLY_WITH_US": drops, "AMOUNT_MISMATCH": len(range(1, n, 1000)),
            "ONLY_AT_CHANNEL": EXTRA}


def prefix(channel: str, n: int) -> str:
    return f"ord_b{channel[:2]}{n}x"


def insert_sql(channel: str, n: int) -> list[str]:
    day = day_for(n)
    start = datetime.combine(day, time(0), CST).astimezone(UTC).replace(tzinfo=None)
    p = prefix(channel, n)
    # paid across the day but clear of the cross-day window around midnight
    at = (f"timestamp '{start.isoformat(sep=' ')}' + interval '20 minutes' "
          f"+ (i * (82800000 / {n}))::bigint * interval '1 millisecond'")
    ways = "(ARRAY['QR_DYNAMIC','BARCODE','JSAPI'])[1 + i % 3]"
    return [
        # the values are this module's constants and argparse-checked channel names and sizes
        f"""INSERT INTO orders (id, merchant_id, app_id, store_id, out_trade_no, request_hash,
            amount, subject, way_code, channel, status, client_ip, channel_trade_no,
            refunded_amount, refund_pending_amount, expire_at, paid_at, created_at, updated_at)
        SELECT '{p}' || i, 'mch_b' || (i % 1000), 'app_b', NULL, '{p}' || i, '',
            100 + (i * 7919) % 100000, 'bench', {ways}, '{channel}',
            CASE WHEN i % 20 = 0 THEN 'PARTIALLY_REFUNDED' ELSE 'SUCCESS' END, '127.0.0.1',
            'T{p}' || i, CASE WHEN i % 20 = 0 THEN (100 + (i * 7919) % 100000) / 2 ELSE 0 END,
            0, {at}, {at}, {at}, {at}
        FROM generate_series(0::bigint, {n - 1}::bigint) AS i""",  # noqa: S608
        f"""INSERT INTO refunds (id, order_id, merchant_id, out_refund_no, request_hash, amount,
            reason, status, channel, channel_refund_no, succeeded_at, created_at, updated_at)
        SELECT 'rf_' || '{p}' || i, '{p}' || i, 'mch_b' || (i % 1000), 'rf_' || '{p}' || i, '',
            (100 + (i * 7919) % 100000) / 2, 'bench', 'SUCCESS', '{channel}',
            'R{p}' || i, {at}, {at}, {at}
        FROM generate_series(0::bigint, {n - 1}::bigint, 20::bigint) AS i""",  # noqa: S608
    ]


def lines(channel: str, n: int) -> pl.DataFrame:
    """The statement's rows as the channel has them: kind, ref, txn, fen, local time."""
    p = prefix(channel, n)
    day = day_for(n)
    i = pl.int_range(0, n, eager=True).alias("i")
    base = pl.DataFrame(i).with_columns(
        amount=(100 + (pl.col("i") * 7919) % 100000),
        ms=(20 * 60_000 + pl.col("i") * (82_800_000 / n)).cast(pl.Int64))
    pays = base.filter(pl.col("i") % 1000 != 0).with_columns(
        kind=pl.lit("PAY"), ref=pl.lit(p) + pl.col("i").cast(pl.String),
        order=pl.lit(p) + pl.col("i").cast(pl.String),
        txn=pl.lit(f"T{p}") + pl.col("i").cast(pl.String),
        amount=pl.when(pl.col("i") % 1000 == 1).then(pl.col("amount") + 1)
        .otherwise(pl.col("amount")))
    refunds = base.filter(pl.col("i") % 20 == 0).with_columns(
        kind=pl.lit("REFUND"), ref=pl.lit(f"rf_{p}") + pl.col("i").cast(pl.String),
        order=pl.lit(p) + pl.col("i").cast(pl.String),
        txn=pl.lit(f"R{p}") + pl.col("i").cast(pl.String), amount=pl.col("amount") // 2)
    extra = pl.DataFrame({"i": range(n, n + EXTRA)}).with_columns(
        amount=pl.lit(999, pl.Int64), ms=pl.lit(43_200_000, pl.Int64), kind=pl.lit("PAY"),
        ref=pl.lit("ghost") + pl.col("i").cast(pl.String),
        order=pl.lit("ghost") + pl.col("i").cast(pl.String),
        txn=pl.lit("G") + pl.col("i").cast(pl.String))
    cols = ["i", "kind", "ref", "order", "txn", "amount", "ms"]
    out = pl.concat([pays.select(cols), refunds.select(cols), extra.select(cols)],
                    how="vertical_relaxed").sort("ms", "i")
    start = datetime.combine(day, time(0))
    return out.with_columns(when=pl.lit(start) + pl.duration(milliseconds=pl.col("ms")))


def _yuan(col: str) -> pl.Expr:
    fen = pl.col(col).abs()
    return ((fen // 100).cast(pl.String) + "." + (fen % 100).cast(pl.String).str.zfill(2))


def _csv(frame: pl.DataFrame, terminator: str = "\n") -> bytes:
    out = io.BytesIO()
    frame.write_csv(out, line_terminator=terminator, quote_style="necessary")
    return out.getvalue()


def wechat(rows: pl.DataFrame) -> bytes:
    from fulema.channels.wechat.bill import DETAIL_COLUMNS, SUMMARY_COLUMNS
    pay = pl.col("kind") == "PAY"
    yuan = _yuan("amount")
    values = {
        "交易时间": pl.col("when").dt.strftime("%Y-%m-%d %H:%M:%S"), "公众账号ID": pl.lit("wxbench"),
        "商户号": pl.lit("1900000109"), "特约商户号": pl.lit("0"),
        "微信订单号": pl.col("txn").str.replace("^R", "T"), "商户订单号": pl.col("order"),
        "用户标识": pl.lit("oUpF8uBench"), "交易类型": pl.lit("NATIVE"),
        "交易状态": pl.when(pay).then(pl.lit("SUCCESS")).otherwise(pl.lit("REFUND")),
        "付款银行": pl.lit("OTHERS"), "货币种类": pl.lit("CNY"),
        "应结订单金额": pl.when(pay).then(yuan).otherwise(pl.lit("0.00")),
        "微信退款单号": pl.when(pay).then(pl.lit("")).otherwise(pl.col("txn")),
        "商户退款单号": pl.when(pay).then(pl.lit("")).otherwise(pl.col("ref")),
        "退款金额": pl.when(pay).then(pl.lit("0.00")).otherwise(yuan),
        "退款状态": pl.when(pay).then(pl.lit("")).otherwise(pl.lit("SUCCESS")),
        "商品名称": pl.lit("bench"), "手续费": pl.lit("0.00"), "费率": pl.lit("0.60%"),
        "订单金额": pl.when(pay).then(yuan).otherwise(pl.lit("0.00")),
        "申请退款金额": pl.when(pay).then(pl.lit("0.00")).otherwise(yuan)}
    frame = rows.select([(pl.lit("`") + values.get(c, pl.lit(""))).alias(c)
                         for c in DETAIL_COLUMNS])
    summary = (",".join(SUMMARY_COLUMNS) + "\r\n" + ",".join(
        ["`" + str(rows.height)] + ["`0.00"] * (len(SUMMARY_COLUMNS) - 1)) + "\r\n").encode()
    return gzip.compress(_csv(frame, "\r\n") + summary, compresslevel=1, mtime=0)


def alipay(rows: pl.DataFrame) -> bytes:
    from fulema.channels.alipay.bill import COLUMNS, DETAIL_SUFFIX
    pay = pl.col("kind") == "PAY"
    signed = pl.when(pay).then(_yuan("amount")).otherwise(pl.lit("-") + _yuan("amount"))
    when = pl.col("when").dt.strftime("%Y-%m-%d %H:%M:%S")
    values = {"支付宝交易号": pl.col("txn").str.replace("^R", "T") + "\t",
              "商户订单号": pl.col("order") + "\t",
              "业务类型": pl.when(pay).then(pl.lit("交易")).otherwise(pl.lit("退款")),
              "商品名称": pl.lit("面条"), "创建时间": when, "完成时间": when,
              "订单金额（元）": signed, "商家实收（元）": signed,
              "退款批次号/请求号": pl.when(pay).then(pl.lit("\t")).otherwise(pl.col("ref") + "\t")}
    frame = rows.select([values.get(c, pl.lit("0.00")).alias(c) for c in COLUMNS])
    body = ("#支付宝业务明细查询\r\n#账号：[20880000000000000156]\r\n"
            "#-----------------------------------------业务明细列表----\r\n").encode("gbk")
    body += _csv(frame, "\r\n").decode().encode("gbk")
    body += "#-----------------------------------------业务明细列表结束----\r\n".encode("gbk")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(f"20880000000000000156_20261124{DETAIL_SUFFIX}", body)
    return buf.getvalue()


def unionpay(rows: pl.DataFrame) -> bytes:
    from fulema.channels.unionpay.bill import CONSUME, FIELDS, REFUND, ZERO_PADDED
    pay = pl.col("kind") == "PAY"
    values = {"tradeNo": pl.when(pay).then(pl.lit(CONSUME)).otherwise(pl.lit(REFUND)),
              "acqInsCode": pl.lit("48020000"), "sendInsCode": pl.lit("48020000"),
              "traceNo": (pl.col("i") % 1_000_000).cast(pl.String),
              "txnTime": pl.col("when").dt.strftime("%m%d%H%M%S"),
              "txnAmt": pl.col("amount").cast(pl.String),
              "queryId": pl.col("txn").str.slice(0, 21),
              "orderId": pl.col("ref").str.replace_all("_", "Z"),
              "txnType": pl.when(pay).then(pl.lit("01")).otherwise(pl.lit("04")),
              "txnSubType": pl.lit("07"), "bizType": pl.lit("000000"),
              "merId": pl.lit("777290058110048")}
    cells = []
    for name, width in FIELDS:
        v = values.get(name, pl.lit(""))
        cells.append(v.str.zfill(width) if name in ZERO_PADDED else v.str.pad_end(width))
    line = pl.concat_str(cells, separator=" ")
    return ("\r\n".join(rows.select(line.alias("l"))["l"].to_list()) + "\r\n").encode("ascii")


def fen_csv(rows: pl.DataFrame, channel: str) -> bytes:
    pay = pl.col("kind") == "PAY"
    day = pl.col("when").dt.strftime("%Y-%m-%d")
    common = {"record_type": pl.col("kind"), "out_trade_no": pl.col("order"),
              "trade_no": pl.col("txn").str.replace("^R", "T"),
              "out_refund_no": pl.when(pay).then(pl.lit("")).otherwise(pl.col("ref")),
              "refund_no": pl.when(pay).then(pl.lit("")).otherwise(pl.col("txn")),
              "way_code": pl.lit("QR_DYNAMIC"), "amount_fen": pl.col("amount").cast(pl.String),
              "fee_fen": pl.lit("0"), "trade_time": pl.col("when").dt.strftime("%H:%M:%S")}
    if channel == "bankpay":
        from fulema.sandbox.bankpay.statement import STATEMENT_COLUMNS as columns
        common.update(trade_date=day, merchant_no=pl.lit("BANKMCH01"), state=pl.lit("SUCCESS"),
                      settle_date=day, same_day_settlement=pl.lit("true"))
    else:
        from fulema.sandbox.ecny.routes import BILL_COLUMNS as columns
        common.update(bill_date=day, merchant_id=pl.lit("ECNYMCH01"), status=pl.lit("SUCCESS"))
    return _csv(rows.select([common.get(c, pl.lit("")).alias(c) for c in columns]))


def statement(channel: str, n: int) -> bytes:
    """The cached file, made on first use."""
    path = CACHE / f"{channel}-{n}.bin"
    if path.exists():
        return path.read_bytes()
    rows = lines(channel, n)
    data = {"wechat": wechat, "alipay": alipay, "unionpay": unionpay}.get(channel)
    made = data(rows) if data else fen_csv(rows, channel)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(made)
    return made
