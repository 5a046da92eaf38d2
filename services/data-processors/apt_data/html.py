"""HTML -> text. ``all`` is every visible string; ``main`` keeps the main text by text density.

``main`` drops what is never content (script, style, nav, header, footer, aside, form), then
keeps each block (paragraph, heading, list item, cell, pre, definition) whose text is mostly not
link text (``<a href>``; a bare ``<a name>`` anchor is not a link) and, outside an
``<article>``/``<main>``, long enough to be prose or a heading, code or a definition's term:
navigation bars and footers are short, link-dense blocks. Inline tags join their text as a
browser renders it (``<b>Hel</b>lo`` is "Hello", ``<a>f</a>(x)`` is "f(x)").
"""

from __future__ import annotations

from bs4 import BeautifulSoup

NEVER_CONTENT = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "template", "svg")
BLOCKS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "blockquote", "td", "th", "dd", "dt")
TITLES = ("h1", "h2", "h3", "h4", "h5", "h6", "pre", "dt")  # kept however short: headings, code, a definition's term
MAX_LINK_DENSITY = 0.5   # link characters / text characters above which a block is navigation
MIN_BLOCK_WORDS = 8      # shorter blocks count only inside an <article>/<main>, or as headings


def extract_text(html: str, extractor: str = "main") -> str:
    soup = BeautifulSoup(html, "lxml")
    if extractor == "all":
        return soup.get_text("\n", strip=True)
    for tag in soup(list(NEVER_CONTENT)):
        tag.decompose()
    root = soup.find("article") or soup.find("main") or soup.body or soup
    inside_main = root.name in ("article", "main")
    kept = []
    for block in root.find_all(BLOCKS):
        if block.find(BLOCKS):
            continue  # an outer block: its inner blocks are judged one by one
        text = " ".join(block.get_text().split())  # inline tags join as they render: <b>Hel</b>lo is "Hello"
        if not text:
            continue
        links = sum(len(a.get_text(" ", strip=True)) for a in block.find_all("a", href=True))  # not <a name> anchors
        if links / len(text) > MAX_LINK_DENSITY:
            continue
        if inside_main or block.name in TITLES or len(text.split()) >= MIN_BLOCK_WORDS \
                or _cjk_share(text) > 0.5 and len(text) >= 2 * MIN_BLOCK_WORDS:
            kept.append(block.get_text().strip("\n") if block.name == "pre" else text)
    return "\n\n".join(kept)


def _cjk_share(text: str) -> float:
    return sum("\u4e00" <= ch <= "\u9fff" for ch in text) / max(1, len(text))
