"""Tokens as a person reads them: byte-level BPE pieces decoded, and a character that spans
several tokens (a Chinese character is 3 UTF-8 bytes, often split) drawn whole, once."""

from __future__ import annotations

import unicodedata


def readable_pieces(tokenizer, ids: list[int]) -> list[tuple[str, int, int]]:
    """(text, first token, last token + 1) groups: consecutive tokens are joined until their
    bytes decode to whole characters (no U+FFFD), so every group is printable text."""
    out: list[tuple[str, int, int]] = []
    start = 0
    while start < len(ids):
        end = start + 1
        text = tokenizer.decode(ids[start:end])
        while "\ufffd" in text and end < len(ids) and end - start < 8:
            end += 1
            text = tokenizer.decode(ids[start:end])
        out.append((text, start, end))
        start = end
    return out


def language_of(text: str) -> str:
    """The dominant script of a document, as a language label: 'zh' (Han), 'ja', 'ko', 'ru'
    (Cyrillic), 'ar', 'en' (Latin) or 'other'. A script count, not a language model: it
    separates Chinese from English text, the platform's two sample languages."""
    counts: dict[str, int] = {}
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        script = ("zh" if name.startswith("CJK") else "ja" if name.startswith(("HIRAGANA", "KATAKANA"))
                  else "ko" if name.startswith("HANGUL") else "ru" if name.startswith("CYRILLIC")
                  else "ar" if name.startswith("ARABIC") else "en" if name.startswith("LATIN") else "other")
        counts[script] = counts.get(script, 0) + 1
    if not counts:
        return "other"
    return max(counts, key=counts.get)
