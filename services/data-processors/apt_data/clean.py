"""CleanText strategies: text in, text out, one function each (README has before/after examples).

- ``basic``: ftfy (mojibake, HTML entities), NFC, control characters, runs of whitespace.
- ``aggressive``: basic, then URLs, e-mails, IPs and phone numbers become typed placeholders,
  HTML remnants, boilerplate lines and repeated lines go.
- ``chinese``: basic, full-width ASCII -> half-width (CJK punctuation kept), spaces between CJK
  characters dropped; optionally traditional -> simplified (OpenCC t2s).
- ``code``: line endings, trailing whitespace and a leading BOM only. Never NFKC, never quote
  fixing: either would change what a program means.

Other strategies register a ``Callable[[str], str]`` under the entry-point group
``apt.data_processors.cleaners``.
"""

from __future__ import annotations

import functools
import io
import re
import tokenize
import unicodedata
from importlib.metadata import entry_points
from typing import Callable

import ftfy
from ftfy import badness

from apt_model import errors

ENTRY_POINT_GROUP = "apt.data_processors.cleaners"

# what ftfy changes besides mojibake: C1 controls, ligatures, line separators, surrogates, escapes
_FTFY_TOUCHES = re.compile("[\x1b\x80-\x9f\u2028\u2029\ud800-\udfff\ufb00-\ufb06\u0132\u0133\u013f\u0140"
                           "\u0149\u017f\u01c4-\u01cc\u01f1-\u01f3]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200e\u200f\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'）)]+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[ -]?)?(?:\(\d{2,4}\)[ -]?)?\d{3,4}[ -]\d{3,4}(?:[ -]\d{3,4})?(?!\w|[-.]\d)")
_HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")
_BOILERPLATE = re.compile(
    r"^\s*(?:all rights reserved|copyright ©?|©|privacy policy|terms of (?:use|service)|cookie|"
    r"click here|subscribe|sign in|log in|share this|back to top|skip to content)", re.IGNORECASE)
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
_SPACE_BETWEEN_CJK = re.compile(rf"(?<=[{_CJK}])[ \t]+(?=[{_CJK}])")
# full-width ASCII (U+FF01..U+FF5E) -> ASCII, except the punctuation Chinese text keeps full-width
_KEEP_FULL_WIDTH = set("，。！？；：（）【】「」『』《》、")
_HALF_WIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F) if chr(cp) not in _KEEP_FULL_WIDTH}
_HALF_WIDTH[0x3000] = 0x20  # ideographic space


def _ftfy_cannot_change(text: str) -> bool:
    """Text ftfy would return unchanged but for NFC: no HTML entity, terminal escape, C1 control,
    ligature, odd line break or surrogate, and nothing ftfy's own mojibake detector
    (``badness.is_bad``) flags. ASCII is the cheap common case; the detector is ~6x cheaper than
    ``fix_text`` on Chinese text. Skipping ftfy there is most of basic's speed."""
    if text.isascii():
        return "&" not in text and "\x1b" not in text
    return "&" not in text and not _FTFY_TOUCHES.search(text) and not badness.is_bad(text)


def basic(text: str) -> str:
    """Repair mojibake and entities, compose (NFC), drop control characters, squeeze spaces."""
    if _ftfy_cannot_change(text):
        text = unicodedata.normalize("NFC", text)
    else:
        text = ftfy.fix_text(text, normalization="NFC", fix_character_width=False, uncurl_quotes=False)
    text = _CONTROL.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def aggressive(text: str) -> str:
    """basic + personal data to typed placeholders, HTML remnants, boilerplate and repeated lines out."""
    text = _HTML_TAG.sub(" ", basic(text))
    text = _EMAIL.sub("<EMAIL>", text)
    text = _URL.sub("<URL>", text)
    text = _IPV4.sub("<IP>", text)
    text = _PHONE.sub("<PHONE>", text)
    seen: set[str] = set()
    kept = []
    for line in text.split("\n"):
        key = line.strip().lower()
        if key and (key in seen or _BOILERPLATE.match(key)):
            continue
        seen.add(key)
        kept.append(_SPACES.sub(" ", line).strip())
    return _BLANK_LINES.sub("\n\n", "\n".join(kept)).strip()


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def chinese(text: str, traditional_to_simplified: bool = False) -> str:
    """basic + full-width ASCII to half-width (CJK punctuation kept), no spaces between CJK characters."""
    text = basic(text.translate(_HALF_WIDTH))
    text = _SPACE_BETWEEN_CJK.sub("", text)
    return _t2s().convert(text) if traditional_to_simplified else text


def code(text: str) -> str:
    """Line endings to \\n, trailing whitespace and a leading BOM removed; nothing else touched.

    Trailing whitespace inside a multi-line string literal is part of the program's data: for
    Python source (anything ``tokenize`` reads) those lines are left as they are.
    """
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    keep = _lines_inside_strings(text)
    lines = text.split("\n")
    return "\n".join(line if i in keep else line.rstrip() for i, line in enumerate(lines, 1)).rstrip("\n") + "\n"


def _lines_inside_strings(source: str) -> set[int]:
    """1-based numbers of the lines whose end lies inside a multi-line string token."""
    inside: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0], tok.end[0]))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return set()  # not Python: every line is stripped
    return inside


BUILT_IN: dict[str, Callable[[str], str]] = {"basic": basic, "aggressive": aggressive, "chinese": chinese,
                                              "code": code}


def registered_cleaners() -> dict[str, Callable[[str], str]]:
    """The built-in strategies plus those installed under the entry-point group (built-ins win)."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**{name: ep.load() for name, ep in found.items() if name not in BUILT_IN}, **BUILT_IN}


def cleaner(strategy: str, traditional_to_simplified: bool = False) -> Callable[[str], str]:
    """The cleaning function of ``strategy``, or InvalidArgument naming the ones there are."""
    strategies = registered_cleaners()
    if strategy not in strategies:
        raise errors.InvalidArgument(
            f"Unknown cleaning strategy {strategy!r}; use one of {', '.join(sorted(strategies))} "
            f"(or install one under the entry-point group {ENTRY_POINT_GROUP!r}).")
    if strategy == "chinese":
        return functools.partial(chinese, traditional_to_simplified=traditional_to_simplified)
    if traditional_to_simplified:
        raise errors.InvalidArgument("--traditional-to-simplified applies to the 'chinese' strategy only.")
    return strategies[strategy]
