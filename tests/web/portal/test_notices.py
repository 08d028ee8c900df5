"""The portal's notices page: the logged-in merchant's notices with the unread count in the
navigation of every page, marking one read (CSRF-checked, once), the unread filter and cursor
pages; merchant B's notice is neither shown to A nor markable by its id (404, unchanged)."""

from __future__ import annotations

import re

from fulema.messaging import notices
from tests.messaging.test_merchant_notices import alert_notice, paid_notice
from tests.web.portal.kit import Kit

_BADGE = re.compile(r'<span class="count"[^>]*>([^<]+)</span>')


def badge(html: str) -> str | None:
    found = _BADGE.search(html)
    return found.group(1) if found else None


async def test_the_navigation_counts_unread_and_the_page_lists_them(kit: Kit) -> None:
    http = await kit.login("a-cashier")
    assert badge((await http.get("/portal/")).text) is None  # nothing unread: no badge
    await paid_notice(kit, kit.merchant_a, 9962)
    await alert_notice(kit, kit.merchant_a, "30 payments <b>in</b> a minute")
    await paid_notice(kit, kit.merchant_b, 4321)

    today = await http.get("/portal/")
    assert badge(today.text) == "2"
    page = await http.get("/portal/notices")
    assert page.status_code == 200
    assert badge(page.text) == "2"
    assert "结算款 99.62 元已到账" in page.text
    assert "&lt;b&gt;in&lt;/b&gt;" in page.text  # the alert's text is escaped, not markup
    assert "43.21" not in page.text  # B's payout
    assert page.text.index("velocity") < page.text.index("结算款 99.62")  # newest first
    assert page.text.count("标为已读 Mark read") == 2
    await http.aclose()


async def test_marking_read_clears_the_badge_and_needs_the_csrf_token(kit: Kit) -> None:
    await paid_notice(kit, kit.merchant_a, 9962)
    [n], _ = await notices.list_notices_of(kit.p.db, merchant_id=kit.merchant_a,
                                           unread_only=False, limit=5)
    http = await kit.login("a-accountant")
    forged = await http.post(f"/portal/notices/{n.id}/read", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert badge((await http.get("/portal/notices")).text) == "1"

    done = await kit.post(http, f"/portal/notices/{n.id}/read", {}, page="/portal/notices")
    assert done.status_code == 303
    assert done.headers["location"] == "/portal/notices"
    page = await http.get("/portal/notices")
    assert badge(page.text) is None
    assert "已读 Read" in page.text
    assert "标为已读 Mark read" not in page.text
    [after], _ = await notices.list_notices_of(kit.p.db, merchant_id=kit.merchant_a,
                                               unread_only=False, limit=5)
    assert after.read_by is not None
    assert after.read_by.startswith("portal:")
    again = await kit.post(http, f"/portal/notices/{n.id}/read", {"unread": "1"},
                           page="/portal/notices")
    assert again.headers["location"] == "/portal/notices?unread=1"
    [still], _ = await notices.list_notices_of(kit.p.db, merchant_id=kit.merchant_a,
                                               unread_only=False, limit=5)
    assert still.read_at == after.read_at
    unread_page = await http.get("/portal/notices?unread=1")
    assert "没有未读消息" in unread_page.text
    await http.aclose()


async def test_another_merchants_notice_is_not_found_and_stays_unread(kit: Kit) -> None:
    await paid_notice(kit, kit.merchant_b, 4321)
    [theirs], _ = await notices.list_notices_of(kit.p.db, merchant_id=kit.merchant_b,
                                                unread_only=False, limit=5)
    http = await kit.login("a-owner")
    answer = await kit.post(http, f"/portal/notices/{theirs.id}/read", {},
                            page="/portal/notices")
    assert answer.status_code == 404
    assert "未找到" in answer.text
    unknown = await kit.post(http, "/portal/notices/ntc_nope/read", {}, page="/portal/notices")
    assert unknown.status_code == 404
    [same], _ = await notices.list_notices_of(kit.p.db, merchant_id=kit.merchant_b,
                                              unread_only=False, limit=5)
    assert same.read_at is None
    b = await kit.login("b-owner")
    assert badge((await b.get("/portal/")).text) == "1"
    await http.aclose()
    await b.aclose()


async def test_pages_by_cursor_and_bad_filters(kit: Kit) -> None:
    for fen in range(1, 23):  # 22 notices: a page of 20 and one of 2
        await paid_notice(kit, kit.merchant_a, fen * 100)
    http = await kit.login("a-cashier")
    first = await http.get("/portal/notices")
    assert first.text.count("结算款") == 20
    assert "结算款 22.00 元已到账" in first.text
    found = re.search(r'href="(/portal/notices\?after=[^"]+)"', first.text)
    assert found, "no next page link"
    second = await http.get(found.group(1).replace("&amp;", "&"))
    assert second.text.count("结算款") == 2
    assert "结算款 1.00 元已到账" in second.text
    assert "第一页 First page" in second.text
    assert badge(second.text) == "22"

    bad = await http.get("/portal/notices?unread=maybe")
    assert bad.status_code == 400
    assert "unread" in bad.text
    odd = await http.get("/portal/notices?after=" + "z" * 500)  # a cursor past every id
    assert odd.status_code == 200
    anonymous = kit.client()
    away = await anonymous.get("/portal/notices")
    assert away.status_code == 303
    assert away.headers["location"] == "/portal/login"
    await anonymous.aclose()
    await http.aclose()
