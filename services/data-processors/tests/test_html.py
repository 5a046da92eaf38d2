"""The main-text extractor on the markup of generated documentation (pydoc's pages): inline tags
join as rendered, a named anchor is not a link, a definition's term is kept however short."""

from __future__ import annotations

import pydoc
import textwrap

from apt_data.html import extract_text

PAGE = ('<html><body><nav><a href="/">Home</a> <a href="/docs">Docs</a></nav><dl>'
        '<dt><a name="-wrap"><strong>wrap</strong></a>(text, width=70)</dt>'
        '<dd>Wrap a single paragraph of text, returning a list of wrapped lines.</dd></dl>'
        '<p>See <a href="#-wrap">wrap</a>() and <b>fill</b>() for the two functions this module offers.</p>'
        '<footer><a href="/privacy">Privacy</a></footer></body></html>')


def test_definition_terms_anchors_and_inline_tags():
    text = extract_text(PAGE, "main")
    assert text.split("\n\n") == ["wrap(text, width=70)",
                                  "Wrap a single paragraph of text, returning a list of wrapped lines.",
                                  "See wrap() and fill() for the two functions this module offers."]


def test_a_pydoc_page_keeps_the_signatures_and_docstrings_and_drops_the_index_links():
    doc = pydoc.HTMLDoc()
    text = extract_text(doc.page("textwrap", doc.document(textwrap, "textwrap")), "main")
    assert "dedent(text)" in text and "Remove any common leading whitespace" in text
    assert "index" not in text.split()
