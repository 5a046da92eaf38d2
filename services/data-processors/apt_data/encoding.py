"""Per-file encoding: detected once from the file's head, then decoded in chunks (bounded memory).

UTF-8 (and UTF-16/32 with a BOM) is taken as it is; anything else is charset-normalizer's best
guess (GB18030, Big5, cp1252, ...). Bytes the chosen encoding cannot decode are an error naming
the file, the byte offset, the line and the encodings that were candidates: a guess that turns
out wrong half way through is never papered over with replacement characters.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Iterator

from charset_normalizer import from_bytes

from apt_model import errors

SAMPLE_BYTES = 64 << 10  # detection reads the first 64 KiB
CHUNK_BYTES = 1 << 20
FALLBACK_ENCODINGS = ("gb18030", "big5", "cp1252")  # the legacy encodings of the corpora we expect, most common first
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _is_utf8(sample: bytes, whole: bool) -> bool:
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        # a multi-byte character cut by the end of the sample is still UTF-8
        return not whole and exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data"


def candidates(sample: bytes) -> list[str]:
    """charset-normalizer's candidate encodings for ``sample``, best first."""
    return [m.encoding for m in from_bytes(sample)]


def detect(path: Path) -> str:
    """The encoding ``path`` is written in, from its first SAMPLE_BYTES."""
    with open(path, "rb") as f:
        sample = f.read(SAMPLE_BYTES)
        whole = not f.read(1)
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    if _is_utf8(sample, whole):
        return "utf-8"
    found = candidates(sample) or _strict_fallbacks(sample, whole)
    if not found:
        raise errors.InvalidArgument(
            f"{path.name}: no text encoding fits its first {len(sample)} bytes; it looks like a binary "
            "file. Give text files (csv, json, jsonl, xlsx, html, txt).")
    return found[0]


def _strict_fallbacks(sample: bytes, whole: bool) -> list[str]:
    """charset-normalizer gives up on some short texts (a list of names has no language for it
    to recognise): then the first of FALLBACK_ENCODINGS that decodes every byte of the sample."""
    fits = []
    for name in FALLBACK_ENCODINGS:
        try:
            codecs.getincrementaldecoder(name)(errors="strict").decode(sample, final=whole)
            fits.append(name)
        except UnicodeDecodeError:
            continue
    return fits


def _undecodable(path: Path, encoding: str, offset: int, line: int, raw: bytes) -> errors.InvalidArgument:
    others = [c for c in candidates(raw) if c != encoding][:5]
    return errors.InvalidArgument(
        f"{path.name}: bytes at byte offset {offset} (line {line}) are not valid {encoding}, the encoding "
        f"detected from the file's start; candidate encodings: {', '.join(others) or 'none'}. "
        f"Convert the file to UTF-8 first, e.g. 'iconv -f <encoding> -t UTF-8 {path.name}'.")


def decoded_chunks(path: Path, encoding: str, start: int = 0, end: int = -1, first_line: int = 1) -> Iterator[str]:
    """The file's text (bytes ``start``..``end``, -1: to the end) in chunks of about CHUNK_BYTES,
    decoded strictly; ``first_line`` numbers the line at ``start`` in error messages."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset, lines = start, first_line
    with open(path, "rb") as f:
        f.seek(start)
        while True:
            raw = f.read(CHUNK_BYTES if end < 0 else max(0, min(CHUNK_BYTES, end - offset)))
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                good = raw[: max(0, exc.start)]
                line = lines + good.count(b"\n")
                raise _undecodable(path, encoding, offset + max(0, exc.start), line, raw) from exc
            offset += len(raw)
            lines += text.count("\n")
            if text:
                yield text
            if not raw:
                return


def decoded_lines(path: Path, encoding: str, start: int = 0, end: int = -1, first_line: int = 1) -> Iterator[str]:
    """The file's lines (without their line ending), decoded in chunks (bytes ``start``..``end``)."""
    pending = ""
    for chunk in decoded_chunks(path, encoding, start, end, first_line):
        parts = (pending + chunk).split("\n")
        pending = parts.pop()
        for line in parts:
            yield line.removesuffix("\r")
    if pending:
        yield pending.removesuffix("\r")


def read_text(path: Path, encoding: str) -> str:
    """The whole file's text (for formats read whole: json, html, code)."""
    return "".join(decoded_chunks(path, encoding)).removeprefix("\ufeff")
