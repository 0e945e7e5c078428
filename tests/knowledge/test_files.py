"""Uploaded files and pasted text: what is extracted, with which metadata, and bad inputs."""

from __future__ import annotations

import io
import zipfile

import pytest

from callable_agents.core.bootstrap import running
from callable_agents.core.config import Settings
from callable_agents.core.errors import InvalidInput
from callable_agents.plugins.loaders.files import detect
from tests.knowledge.conftest import (
    CSV_FILE,
    HTML_FILE,
    PDF_PAGES,
    KnowledgeEnv,
    make_docx,
    make_env,
    make_pdf,
)


async def test_multi_page_pdf_keeps_page_numbers_and_title(env: KnowledgeEnv) -> None:
    source = await env.add_and_ingest("file", location="handbook.pdf", content=make_pdf())
    assert (source.status, source.error) == ("ready", None)
    assert source.document_count == 3
    chunks = await env.chunks(source.id)
    assert [(chunk.meta["page"], chunk.meta["title"]) for chunk in chunks] == [
        (1, "Customer Handbook"),
        (2, "Customer Handbook"),
        (3, "Customer Handbook"),
    ]
    for chunk, (heading, text) in zip(chunks, PDF_PAGES, strict=True):
        assert heading in chunk.text and text.split()[0] in chunk.text

    [best] = await env.search("can I return accessories I never used?", k=1)
    assert best.page == 2 and best.title == "Customer Handbook" and best.url is None
    assert best.citation() == {"title": "Customer Handbook", "url": None, "page": 2, "source_id": source.id}


async def test_docx_headings_lists_and_tables(env: KnowledgeEnv) -> None:
    source = await env.add_and_ingest("file", location="terms.docx", content=make_docx())
    assert source.status == "ready", source.error
    chunks = await env.chunks(source.id)
    by_heading = {chunk.meta.get("heading"): chunk.text for chunk in chunks}
    assert set(by_heading) == {"Deposits", "Deposits > Late returns"}
    assert "refundable deposit of $100" in by_heading["Deposits"]
    late = by_heading["Deposits > Late returns"]
    assert "$10 per hour" in late and "- Helmets are included" in late and "Tandem | $60" in late
    assert all(chunk.meta["title"] == "Rental Terms" for chunk in chunks)


async def test_html_file_drops_navigation_footer_and_banners(env: KnowledgeEnv) -> None:
    source = await env.add_and_ingest("file", location="hours.html", content=HTML_FILE)
    assert source.status == "ready", source.error
    [chunk] = await env.chunks(source.id)
    assert chunk.meta == {
        "title": "Opening hours | Harbour Bikes",
        "heading": "Opening hours",
        "hash": chunk.meta["hash"],
    }
    assert "Saturday 10am to 4pm" in chunk.text
    for boilerplate in ("Copyright", "Privacy", "cookies", "Services", "Partner"):
        assert boilerplate not in chunk.text


async def test_csv_rows_become_records_with_header_names(env: KnowledgeEnv) -> None:
    source = await env.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
    assert (source.status, source.document_count, source.chunk_count) == ("ready", 3, 3)
    chunks = await env.chunks(source.id)
    assert [chunk.meta["row"] for chunk in chunks] == [1, 2, 3]
    assert chunks[1].text == "Model: Quay Runner\nType: Road bike\nPrice: $1299\nFrame sizes: M L XL"
    [best] = await env.search("how much is the electric bike", k=1)
    assert "Tide E-Bike" in best.text


async def test_markdown_and_pasted_text(env: KnowledgeEnv) -> None:
    markdown = b"---\nlayout: faq\n---\n# FAQ\n\n## Do you fix punctures?\n\nYes, **while you wait**: see [our prices](https://x.test/p).\n"
    md = await env.add_and_ingest("file", location="faq.md", content=markdown)
    [chunk] = await env.chunks(md.id)
    assert chunk.text == "FAQ > Do you fix punctures?\nYes, while you wait: see our prices."
    assert chunk.meta["title"] == "FAQ"

    text = await env.add_and_ingest(
        "text", title="Parking", location="Parking", content=b"Free parking behind the shop."
    )
    [pasted] = await env.chunks(text.id)
    assert (pasted.text, pasted.meta["title"]) == ("Free parking behind the shop.", "Parking")


def test_type_is_detected_from_content_not_name() -> None:
    assert detect(make_pdf(), "notes.txt").kind == "pdf"
    assert detect(make_docx(), "upload.bin").kind == "docx"
    assert detect(HTML_FILE, "page.txt").kind == "html"
    assert detect(CSV_FILE, "export").kind == "csv"
    assert detect(b"# Title\n\nSome *markdown* text", "README").kind == "markdown"
    assert detect("Plain caf\u00e9 notes".encode("cp1252"), "notes").kind == "text"
    assert detect(CSV_FILE, "bikes.txt").kind == "text"  # the name breaks ties between text formats


@pytest.mark.parametrize(
    ("content", "described"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "PNG image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "JPEG image"),
        (b"\x7fELF\x02\x01" + b"\x00" * 40, "executable"),
        (b"\x00\x01\x02\x03binary" * 10, "binary data"),
    ],
)
async def test_unsupported_types_are_refused_naming_the_supported_ones(
    env: KnowledgeEnv, content: bytes, described: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await env.add("file", location="upload.pdf", content=content)
    assert str(refused.value) == (
        f"file: unsupported file type ({described}); supported types are PDF, DOCX, Markdown, HTML, CSV and plain text"
    )


async def test_office_formats_other_than_docx_are_refused_with_advice(env: KnowledgeEnv) -> None:
    workbook = io.BytesIO()
    with zipfile.ZipFile(workbook, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(InvalidInput, match=r"unsupported file type \(Excel workbook; export it as CSV\)"):
        await env.add("file", location="prices.xlsx", content=workbook.getvalue())


async def test_empty_and_oversized_files_are_refused(kb_settings: Settings) -> None:
    settings = kb_settings.model_copy(update={"max_upload_bytes": 10_000})
    async with running(settings) as runtime:
        env = await make_env(runtime)
        with pytest.raises(InvalidInput, match=r"^file: the file is empty$"):
            await env.add("file", location="empty.txt", content=b"")
        with pytest.raises(InvalidInput, match=r"^file: 10,001 bytes is over the upload limit of 10,000 bytes"):
            await env.add("file", location="big.txt", content=b"a" * 10_001)
        assert (await env.add("file", location="ok.txt", content=b"a" * 10_000)).status == "pending"


async def test_corrupt_and_password_protected_files_fail_alone(env: KnowledgeEnv) -> None:
    good = await env.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
    corrupt_pdf = await env.add_and_ingest(
        "file", location="broken.pdf", content=b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage"
    )
    locked_pdf = await env.add_and_ingest("file", location="locked.pdf", content=make_pdf(password="s3cret"))
    corrupt_docx = await env.add_and_ingest("file", location="broken.docx", content=b"PK\x03\x04 this is not a zip")
    scanned = await env.add_and_ingest("file", location="scan.pdf", content=make_pdf([("", "")]))

    assert corrupt_pdf.status == "failed"
    assert corrupt_pdf.error is not None and corrupt_pdf.error.startswith("could not read the PDF")
    assert (locked_pdf.status, locked_pdf.error) == (
        "failed",
        "the PDF is password-protected: upload a copy without a password",
    )
    assert corrupt_docx.status == "failed" and corrupt_docx.error is not None
    assert corrupt_docx.error.startswith("could not read the DOCX")
    assert scanned.status == "failed" and "no text could be extracted" in (scanned.error or "")
    assert "s3cret" not in (locked_pdf.error or "")
    # An encrypted Office document is an OLE container holding an "EncryptedPackage" stream.
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 64
    locked_docx = await env.add_and_ingest("file", location="locked.docx", content=ole)
    assert locked_docx.error == "the document is password-protected (encrypted): upload a copy without a password"

    # Nothing else was touched: the good source is still ready and searchable, and the
    # failed ones have no passages.
    assert {chunk.source_id for chunk in await env.chunks()} == {good.id}
    [best] = await env.search("road bike price", k=1)
    assert best.source_id == good.id and "Quay Runner" in best.text


async def test_pasted_text_must_not_be_empty(env: KnowledgeEnv) -> None:
    with pytest.raises(InvalidInput, match=r"^text: expected some text, got nothing$"):
        await env.add("text", title="Nothing", content=b"   \n")


async def test_same_name_replaces_the_earlier_upload(env: KnowledgeEnv) -> None:
    first = await env.add_and_ingest("file", location="bikes.csv", content=CSV_FILE)
    with pytest.raises(Exception, match="already has a file source 'bikes.csv'"):
        await env.add("file", location="bikes.csv", content=CSV_FILE)
    updated = CSV_FILE.replace(b"$549", b"$499")
    second = await env.add_and_ingest("file", location="bikes.csv", content=updated, replace=True)
    assert second.id == first.id and second.status == "ready"
    texts = [chunk.text for chunk in await env.chunks()]
    assert any("$499" in text for text in texts) and not any("$549" in text for text in texts)
