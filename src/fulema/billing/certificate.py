"""A donation certificate as a one-page PDF, written by hand (a dozen PDF objects).

Chinese text uses the PDF standard CJK font STSong-Light with the UniGB-UCS2-H encoding: every
PDF reader with the Adobe Asian fonts (Acrobat, pdf.js, Poppler with poppler-data) renders it
without a font in the file, which keeps the certificate a few kilobytes and needs no font
package on the server. Text strings are UTF-16BE, written in hex.
"""

from __future__ import annotations

from datetime import date

from fulema.core.money import Money


def _hex(text: str) -> str:
    return "<" + text.encode("utf-16-be").hex().upper() + ">"


def certificate(*, number: str, donor: str, project: str, organisation: str, amount_fen: int,
                on: date) -> bytes:
    lines = [
        (24, 210, 340, "捐赠证书"),
        (14, 60, 290, f"{donor}："),
        (14, 80, 260, f"感谢您向“{project}”捐赠人民币 {Money(amount_fen).to_yuan()} 元。"),
        (14, 80, 235, "您的善举将帮助需要帮助的人，特发此证，以资感谢。"),
        (12, 330, 150, organisation),
        (12, 330, 130, f"{on.year}年{on.month}月{on.day}日"),
        (10, 60, 60, f"证书编号 {number}"),
    ]
    content = "\n".join(f"BT /F1 {size} Tf {x} {y} Td {_hex(text)} Tj ET"
                        for size, x, y, text in lines).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 420] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H "
        b"/DescendantFonts [6 0 R] >>",
        b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> "
        b"/FontDescriptor 7 0 R /DW 1000 >>",
        b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 "
        b"/FontBBox [-25 -254 1000 880] /ItalicAngle 0 /Ascent 880 /Descent -120 "
        b"/CapHeight 880 /StemV 93 >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
            .encode())
    return bytes(out)
