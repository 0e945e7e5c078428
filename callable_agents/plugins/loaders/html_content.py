"""Main-content extraction from HTML, shared by the web crawler and HTML file uploads.

Boilerplate goes first: scripts and styles, hidden elements, navigation, site header and
footer, sidebars, cookie banners and the like (by element, ARIA role, and class/id words).
The main content is ``<main>`` (or ``role=main``, or a lone ``<article>``), else what is
left of ``<body>``. It is rendered as text with Markdown headings, list items and table rows
kept, so the chunker can follow the page's structure.

Links are collected from the whole page before anything is removed: a site's navigation is
exactly what a crawler needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin

from bs4 import BeautifulSoup, Comment, Doctype, NavigableString, ProcessingInstruction, Tag

REMOVED_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "canvas",
    "iframe",
    "object",
    "embed",
    "form",
    "button",
    "input",
    "select",
    "textarea",
    "nav",
    "footer",
    "aside",
    "dialog",
    "menu",
)
BOILERPLATE_ROLES = {
    "navigation",
    "banner",
    "contentinfo",
    "complementary",
    "search",
    "dialog",
    "alertdialog",
    "menu",
    "menubar",
}
_BOILERPLATE_WORDS = re.compile(
    r"(?:^|[-_\s])(?:nav|navbar|navigation|menu|footer|breadcrumbs?|sidebar|cookies?|consent|gdpr|share|sharing|"
    r"social|skip-link|newsletter|subscribe|popup|modal|advert|ads|promo-banner|site-header|masthead)(?:$|[-_\s])",
    re.IGNORECASE,
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "blockquote",
    "pre",
    "figure",
    "figcaption",
    "address",
    "details",
    "summary",
    "fieldset",
    "body",
    "center",
    "hr",
}


@dataclass(frozen=True)
class HtmlPage:
    title: str
    text: str
    links: list[str] = field(default_factory=list)
    noindex: bool = False  # <meta name="robots" content="noindex">
    nofollow: bool = False


def extract(markup: bytes | str, *, base_url: str | None = None, encoding: str | None = None) -> HtmlPage:
    soup = BeautifulSoup(markup, "lxml", from_encoding=encoding if isinstance(markup, bytes) else None)
    robots = " ".join(
        str(meta.get("content", "")).lower()
        for meta in soup.find_all("meta", attrs={"name": re.compile(r"^robots$", re.IGNORECASE)})
    )
    links = [] if "nofollow" in robots else _links(soup, base_url)
    title = _title(soup)
    _remove_boilerplate(soup)
    main = _main_element(soup)
    text = render(main) if main is not None else ""
    if not title:
        heading = soup.find("h1")
        title = heading.get_text(" ", strip=True) if heading else ""
    return HtmlPage(
        title=title[:500], text=text, links=links, noindex="noindex" in robots, nofollow="nofollow" in robots
    )


def _links(soup: BeautifulSoup, base_url: str | None) -> list[str]:
    base = base_url or ""
    tag = soup.find("base", href=True)
    if tag is not None:
        base = urljoin(base, str(tag["href"]))
    seen: dict[str, None] = {}
    for anchor in soup.find_all("a", href=True):
        if "nofollow" in (anchor.get("rel") or []):
            continue
        href = str(anchor["href"]).strip()
        if not href or href.startswith(("mailto:", "tel:", "javascript:", "#")):
            continue
        seen.setdefault(urldefrag(urljoin(base, href))[0], None)
    return list(seen)


def _title(soup: BeautifulSoup) -> str:
    og = soup.find("meta", attrs={"property": "og:title"})
    if og is not None and og.get("content"):
        return _SPACES.sub(" ", str(og["content"])).strip()
    if soup.title is not None:
        return _SPACES.sub(" ", soup.title.get_text(" ")).strip()
    return ""


def _remove_boilerplate(soup: BeautifulSoup) -> None:
    for node in soup.find_all(string=lambda text: isinstance(text, (Comment, Doctype, ProcessingInstruction))):
        node.extract()
    for tag in soup.find_all(REMOVED_TAGS):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed or tag.name in ("html", "body", "main", "article"):
            continue
        if _is_boilerplate(tag) and tag.find(["main", "article"]) is None:
            tag.decompose()


def _is_boilerplate(tag: Tag) -> bool:
    if tag.attrs is None:
        return False
    if tag.has_attr("hidden") or str(tag.get("aria-hidden", "")).lower() == "true":
        return True
    if _HIDDEN_STYLE.search(str(tag.get("style", ""))):
        return True
    if str(tag.get("role", "")).lower() in BOILERPLATE_ROLES:
        return True
    if tag.name == "header" and tag.find_parent(["article", "main"]) is None:
        return True  # the site header; an article's own header stays
    words = " ".join([*(tag.get("class") or []), str(tag.get("id", ""))])
    return bool(words.strip()) and _BOILERPLATE_WORDS.search(words) is not None


def _main_element(soup: BeautifulSoup) -> Tag | None:
    main = soup.find("main") or soup.find(True, attrs={"role": "main"})
    if isinstance(main, Tag):
        return main
    articles = soup.find_all("article")
    if len(articles) == 1:
        return articles[0]
    return soup.body or soup


def render(root: Tag) -> str:
    """Text of ``root`` with Markdown headings, ``- `` list items and ``a | b`` table rows.

    Iterative (an explicit stack), so deeply nested markup can't exhaust Python's recursion.
    """
    out: list[str] = []
    stack: list[Tag | NavigableString | str] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, str) and not isinstance(node, NavigableString):
            out.append(node)  # a separator pushed below
            continue
        if isinstance(node, NavigableString):
            out.append(_SPACES.sub(" ", str(node)))
            continue
        name = node.name
        if name in HEADINGS:
            text = node.get_text(" ", strip=True)
            if text:
                out.append(f"\n\n{'#' * HEADINGS[name]} {_SPACES.sub(' ', text)}\n\n")
            continue
        if name == "br":
            out.append("\n")
            continue
        if name == "tr":
            cells = [cell.get_text(" ", strip=True) for cell in node.find_all(["td", "th"], recursive=False)]
            if any(cells):
                out.append("\n" + " | ".join(_SPACES.sub(" ", cell) for cell in cells))
            continue
        if name == "pre":
            out.append("\n\n" + node.get_text() + "\n\n")
            continue
        children = list(node.children)
        if name == "li":
            opening, closing = "\n- ", "\n"
        elif name in BLOCKS:
            opening, closing = "\n\n", "\n\n"
        elif name in ("td", "th"):
            opening, closing = " ", " "
        else:
            opening, closing = "", ""
        stack.append(closing)
        stack.extend(reversed(children))  # type: ignore[arg-type]
        stack.append(opening)
    return _tidy("".join(out))


def _tidy(text: str) -> str:
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    # A list item's lines directly follow each other; blank lines between items go.
    text = re.sub(r"\n\n(?=- )", "\n", text)
    return text.strip()
