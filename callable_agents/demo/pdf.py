"""A tiny PDF writer: styled lines on A4 pages, for the demo's menu.

Enough for a menu; it saves the demo depending on a PDF library for one file.
"""

from __future__ import annotations

_PAGE_WIDTH, _PAGE_HEIGHT, _MARGIN, _LEADING = 595, 842, 56, 15
_STYLES = {"title": ("F2", 18), "heading": ("F2", 13), "text": ("F1", 10.5)}


def _pdf_string(text: str) -> bytes:
    encoded = text.encode("cp1252", errors="replace")  # WinAnsiEncoding: £ and é included
    return b"(" + encoded.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def simple_pdf(lines: list[tuple[str, str]]) -> bytes:
    """A plain A4 PDF of styled lines (``title``, ``heading``, ``text``), paginated.

    Enough for a menu; it saves depending on a PDF library for one demo file.
    """
    per_page = (_PAGE_HEIGHT - 2 * _MARGIN) // _LEADING
    pages = [lines[start : start + per_page] for start in range(0, len(lines), per_page)] or [[]]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, filled in once the page object numbers are known
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    ]
    page_numbers = []
    for page in pages:
        stream = bytearray(b"BT\n")
        y = _PAGE_HEIGHT - _MARGIN
        for style, text in page:
            font, size = _STYLES[style]
            stream += f"/{font} {size} Tf 1 0 0 1 {_MARGIN} {y} Tm ".encode() + _pdf_string(text) + b" Tj\n"
            y -= _LEADING
        stream += b"ET"
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + bytes(stream) + b"\nendstream")
        content_number = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> "
            b"/Contents %d 0 R >>" % (_PAGE_WIDTH, _PAGE_HEIGHT, content_number)
        )
        page_numbers.append(len(objects))
    kids = b" ".join(b"%d 0 R" % number for number in page_numbers)
    objects[1] = b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(page_numbers)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)
