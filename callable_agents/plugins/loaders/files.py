"""Uploaded files: PDF, DOCX, Markdown, HTML, CSV and plain text.

The type is decided from the content (signatures, a ZIP's parts, text sniffing); the file
name and the declared content type only break ties between text formats (``notes.md`` is
Markdown, ``prices.csv`` is CSV). Anything else is refused when the file is added, naming
the supported types. Corrupt, password-protected and text-less files pass that check (their
type is supported) and fail at indexing with the reason.

Documents: one per PDF page (``page`` metadata, 1-based), one per CSV row (``row``
metadata, text ``Header: value`` lines), one for every other file. Parsing runs in a worker
thread.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from callable_agents.plugin import (
    Document,
    InvalidInput,
    LoadError,
    LoadRequest,
    LoaderType,
    SourceDraft,
    hookimpl,
)
from callable_agents.plugins.loaders import html_content

FileKind = Literal["pdf", "docx", "markdown", "html", "csv", "text"]
SUPPORTED = "PDF, DOCX, Markdown, HTML, CSV and plain text"
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdx", ".mkd"}
CSV_SUFFIXES = {".csv", ".tsv"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
TEXT_SUFFIXES = {".txt", ".text", ".log"}
SNIFF_BYTES = 8192

_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"RIFF", "RIFF media (WebP, WAV or AVI)"),
    (b"\x1f\x8b", "gzip archive"),
    (b"Rar!", "RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"{\\rtf", "RTF document"),
    (b"ID3", "MP3 audio"),
    (b"OggS", "Ogg media"),
    (b"\x7fELF", "executable"),
    (b"MZ", "Windows executable"),
    (b"SQLite format 3\x00", "SQLite database"),
)
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")


class FileOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_type: str | None = Field(default=None, max_length=200, description="The type the upload declared, if any.")


@dataclass(frozen=True)
class Detected:
    kind: FileKind
    encoding: str | None = None  # for text kinds


def unsupported(description: str) -> InvalidInput:
    return InvalidInput(f"file: unsupported file type ({description}); supported types are {SUPPORTED}")


def detect(content: bytes, name: str = "", content_type: str | None = None) -> Detected:
    """The file's kind from its content; raises InvalidInput for unsupported types."""
    suffix = PurePosixPath(name.lower()).suffix
    head = content[:SNIFF_BYTES]
    if b"%PDF-" in content[:1024]:
        return Detected("pdf")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return Detected(_zip_kind(content, suffix))
    if head.startswith(_OLE_SIGNATURE):
        if _ENCRYPTED_PACKAGE in content[:65536] or suffix == ".docx":
            return Detected("docx")  # a password-protected DOCX: loading says so
        raise unsupported("legacy Microsoft Office document (.doc, .xls or .ppt); save it as DOCX or PDF")
    for signature, description in _BINARY_SIGNATURES:
        if head.startswith(signature):
            raise unsupported(description)
    if head[4:8] == b"ftyp":
        raise unsupported("MP4/QuickTime media")
    encoding = _text_encoding(head)
    if encoding is None:
        raise unsupported("binary data")
    text_head = head.decode(encoding, errors="replace").lstrip("\ufeff").lstrip()
    lowered = text_head[:2048].lower()
    declared = (content_type or "").split(";")[0].strip().lower()
    if suffix in HTML_SUFFIXES or declared in ("text/html", "application/xhtml+xml") or _looks_like_html(lowered):
        return Detected("html", encoding)
    if lowered.startswith("<?xml") or lowered.startswith("<svg"):
        raise unsupported("XML document")
    if suffix in CSV_SUFFIXES or declared in ("text/csv", "text/tab-separated-values"):
        return Detected("csv", encoding)
    if suffix in MARKDOWN_SUFFIXES or declared == "text/markdown":
        return Detected("markdown", encoding)
    if suffix in TEXT_SUFFIXES:
        return Detected("text", encoding)
    if _looks_like_csv(text_head):
        return Detected("csv", encoding)
    if _looks_like_markdown(text_head):
        return Detected("markdown", encoding)
    return Detected("text", encoding)


def _zip_kind(content: bytes, suffix: str) -> FileKind:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        if suffix == ".docx":
            return "docx"  # damaged: loading reports it
        raise unsupported("damaged ZIP archive") from None
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        raise unsupported("Excel workbook; export it as CSV")
    if "ppt/presentation.xml" in names:
        raise unsupported("PowerPoint presentation; export it as PDF")
    if "mimetype" in names or "content.xml" in names:
        raise unsupported("OpenDocument file; save it as DOCX or PDF")
    raise unsupported("ZIP archive")


def _text_encoding(head: bytes) -> str | None:
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut by the sniff window
            return "utf-8"
    controls = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 12, 13))
    return "cp1252" if controls <= len(head) // 100 else None


def _looks_like_html(lowered: str) -> bool:
    return lowered.startswith(("<!doctype html", "<html")) or bool(re.search(r"<(html|head|body)[\s>]", lowered[:1024]))


def _looks_like_csv(text: str) -> bool:
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if len(lines) < 3:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        return False
    widths = {len(row) for row in csv.reader(lines, dialect)}
    return len(widths) == 1 and widths.pop() >= 2


def _looks_like_markdown(text: str) -> bool:
    return bool(re.search(r"(?m)^(#{1,6} \S|```|[-*] \S.*\n[-*] \S)", text) or re.search(r"\[[^\]]+\]\([^)]+\)", text))


# --------------------------------------------------------------------------- the loader


def check(draft: SourceDraft) -> None:
    content = draft.content
    if content is None or len(content) == 0:
        raise InvalidInput("file: the file is empty")
    limit = draft.settings.max_upload_bytes
    if len(content) > limit:
        raise InvalidInput(
            f"file: {len(content):,} bytes is over the upload limit of {limit:,} bytes "
            "(setting CALLABLE_MAX_UPLOAD_BYTES)"
        )
    if not draft.location:
        raise InvalidInput("location: expected the file's name")
    detect(content, draft.location, getattr(draft.options, "content_type", None))


async def load(request: LoadRequest) -> AsyncIterator[Document]:
    content = request.content
    if not content:
        raise LoadError("the file is empty")
    if len(content) > request.settings.max_upload_bytes:
        raise LoadError(f"the file is over the upload limit of {request.settings.max_upload_bytes:,} bytes")
    try:
        detected = detect(content, request.location, request.options.get("content_type"))
    except InvalidInput as exc:
        raise LoadError(str(exc).removeprefix("file: ")) from None
    mismatch = extension_mismatch(request.location, detected)
    if mismatch:
        request.note(mismatch)
    title = PurePosixPath(request.location).name or "Uploaded file"
    documents = await asyncio.to_thread(PARSERS[detected.kind], content, detected, title)
    for document in documents:
        if request.title:  # a title given with the file wins over the document's own
            document.metadata["title"] = request.title
        yield document


# What a file's extension promises, for the formats whose content says what it is.
_PROMISED = {".pdf": "pdf", ".docx": "docx"}
_KIND_NAMES = {"pdf": "a PDF", "docx": "a DOCX document", "markdown": "Markdown", "html": "HTML", "csv": "CSV", "text": "plain text"}
# Titles authoring tools write when the author gave none: not worth a citation.
_PLACEHOLDER_TITLES = re.compile(r"^(untitled( document)?|title|document\d*|microsoft word - .*|\(anonymous\))$", re.I)


def extension_mismatch(name: str, detected: Detected) -> str:
    """A warning when the name promises a format the content is not (``menu.pdf`` holding text)."""
    suffix = PurePosixPath(name.lower()).suffix
    promised = _PROMISED.get(suffix)
    if promised is None or promised == detected.kind:
        return ""
    return (
        f"{PurePosixPath(name).name}: named {suffix} but the content is {_KIND_NAMES[detected.kind]}, "
        f"not {_KIND_NAMES[promised]}: indexed as {_KIND_NAMES[detected.kind]} (rename the file to silence this)"
    )


def own_title(value: object) -> str:
    """A document's own title from its metadata, or "" when it is empty or a placeholder."""
    text = " ".join(str(value or "").split())
    return "" if _PLACEHOLDER_TITLES.match(text) else text


def parse_pdf(content: bytes, detected: Detected, title: str) -> list[Document]:
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            try:
                unlocked = reader.decrypt("")  # owner-password-only PDFs open without a password
            except Exception:
                unlocked = PasswordType.NOT_DECRYPTED
            if unlocked == PasswordType.NOT_DECRYPTED:
                raise LoadError("the PDF is password-protected: upload a copy without a password")
        metadata_title = ""
        try:
            if reader.metadata is not None and reader.metadata.title:
                metadata_title = own_title(reader.metadata.title)
        except Exception:  # broken document info: the file name will do
            pass
        pages = [page.extract_text() or "" for page in reader.pages]
    except LoadError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError) as exc:
        raise LoadError(f"could not read the PDF (damaged or not really a PDF): {type(exc).__name__}: {exc}") from None
    documents = [
        Document(text=_dehyphenate(text), metadata={"title": metadata_title or title, "page": number})
        for number, text in enumerate(pages, start=1)
        if text.strip()
    ]
    if not documents:
        raise LoadError("no text could be extracted from the PDF (scanned pages need OCR, which isn't supported)")
    return documents


def _dehyphenate(text: str) -> str:
    """Join words a PDF line break split (``informa-\\ntion``)."""
    return re.sub(r"(\w)-\n(\w)", r"\1\2", text)


def parse_docx(content: bytes, detected: Detected, title: str) -> list[Document]:
    import docx
    from docx.table import Table

    if content.startswith(_OLE_SIGNATURE):
        raise LoadError("the document is password-protected (encrypted): upload a copy without a password")
    try:
        document = docx.Document(io.BytesIO(content))
    except Exception as exc:  # python-docx raises several unrelated types for a damaged package
        raise LoadError(
            f"could not read the DOCX (damaged or not really a DOCX): {type(exc).__name__}: {exc}"
        ) from None
    lines: list[str] = []
    first_title = ""
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells: list[str] = []
                for cell in row.cells:
                    text = " ".join(cell.text.split())
                    if not cells or cells[-1] != text:  # merged cells repeat their text
                        cells.append(text)
                if any(cells):
                    lines.append(" | ".join(cells))
            lines.append("")
            continue
        text = block.text.strip()
        if not text:
            continue
        style = (block.style.name if block.style is not None else "") or ""
        if style == "Title":  # the document's title: citation metadata, not a section
            first_title = first_title or text
        elif style.startswith("Heading") and style[7:].strip().isdigit():
            level = min(int(style[7:].strip()), 6)
            lines += ["", f"{'#' * level} {text}", ""]
        elif "List" in style:
            lines.append(f"- {text}")
        else:
            lines += [text, ""]
    core_title = own_title(document.core_properties.title)
    return [Document(text="\n".join(lines), metadata={"title": core_title or first_title or title})]


_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
_SETEXT = re.compile(r"(?m)^(\S[^\n]*)\n(=+|-+)[ \t]*$")


def parse_markdown(content: bytes, detected: Detected, title: str) -> list[Document]:
    text = _decode(content, detected)
    text = _FRONT_MATTER.sub("", text.replace("\r\n", "\n"))
    text = _SETEXT.sub(lambda m: ("# " if m.group(2)[0] == "=" else "## ") + m.group(1), text)
    text = re.sub(r"(?m)^\s*```.*$", "", text)  # code fences (their content stays)
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)  # images -> alt text
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)  # links -> their text
    text = re.sub(r"(?m)^\s*\[[^\]]+\]:\s*\S+.*$", "", text)  # reference definitions
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", text)
    text = re.sub(r"`([^`]+)`", r"\1", text)
    text = re.sub(r"</?[a-zA-Z][^>]*>", "", text)  # inline HTML tags
    text = re.sub(r"(?m)^\s*[*+] ", "- ", text)
    heading = re.search(r"(?m)^# (.+)$", text)
    return [Document(text=text, metadata={"title": heading.group(1).strip() if heading else title})]


def parse_html(content: bytes, detected: Detected, title: str) -> list[Document]:
    page = html_content.extract(
        content, encoding=None if detected.encoding in (None, "utf-8-sig") else detected.encoding
    )
    return [Document(text=page.text, metadata={"title": page.title or title})]


def parse_csv(content: bytes, detected: Detected, title: str) -> list[Document]:
    text = _decode(content, detected)
    sample = text[:SNIFF_BYTES]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if "\t" in sample.split("\n", 1)[0] else csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise LoadError(f"could not read the CSV: {exc}") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise LoadError("the CSV has no data rows (the first row must name the columns)")
    header = [name.strip() or f"column {index}" for index, name in enumerate(rows[0], start=1)]
    documents = []
    for number, row in enumerate(rows[1:], start=1):
        names = header + [f"column {index}" for index in range(len(header) + 1, len(row) + 1)]
        lines = [f"{name}: {value.strip()}" for name, value in zip(names, row, strict=False) if value.strip()]
        documents.append(Document(text="\n".join(lines), metadata={"title": title, "row": number}))
    return documents


def parse_text(content: bytes, detected: Detected, title: str) -> list[Document]:
    return [Document(text=_decode(content, detected), metadata={"title": title})]


def _decode(content: bytes, detected: Detected) -> str:
    return content.decode(detected.encoding or "utf-8", errors="replace")


PARSERS = {
    "pdf": parse_pdf,
    "docx": parse_docx,
    "markdown": parse_markdown,
    "html": parse_html,
    "csv": parse_csv,
    "text": parse_text,
}


@hookimpl
def register_knowledge_loaders() -> list[LoaderType]:
    return [
        LoaderType(
            name="file",
            description=f"An uploaded file: {SUPPORTED}",
            options_schema=FileOptions,
            load=load,
            check=check,
        )
    ]
