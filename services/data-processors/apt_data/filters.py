"""Quality filters: Gopher/C4-style rules for Latin-script text, character-based rules for
Chinese, and tokens per byte under a store model's tokenizer to catch garbage.

A filter returns ``(reason, score)`` for a document it drops, else None; the pipeline counts
every drop with examples. Thresholds follow the Gopher paper (Rae et al. 2021, appendix A) and
C4 (Raffel et al. 2020) where they apply to short documents too.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from apt_model import errors
from apt_model.store import Store

Drop = tuple[str, float] | None

_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

MIN_WORDS, MAX_WORDS = 5, 100_000
MEAN_WORD_LENGTH = (2.0, 12.0)
MAX_SYMBOL_RATIO = 0.1          # '#' and '...' per word
MAX_ELLIPSIS_LINES = 0.3
MIN_ALPHA_WORDS = 0.6           # Gopher: 80% for web text; reference text has more numbers and code
MAX_DUPLICATE_LINES = 0.3
MIN_CJK_CHARS = 10
MIN_CJK_SHARE = 0.3             # of non-space characters, for a document judged as Chinese
MAX_TOP_CHAR_SHARE = 0.2        # one character repeated over and over
MAX_TOKENS_PER_BYTE = 0.5       # byte-level BPE on real text: ~0.2-0.35; random bytes: ~0.7-1


def cjk_share(text: str) -> float:
    chars = len(text) - text.count(" ") - text.count("\n")
    return len(_CJK.findall(text)) / max(1, chars)


def is_chinese(text: str) -> bool:
    return cjk_share(text) >= MIN_CJK_SHARE


def _duplicate_lines(text: str) -> float:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    return 0.0 if len(lines) < 3 else 1 - len(set(lines)) / len(lines)


def latin_rules(text: str) -> Drop:
    words = _WORD.findall(text)
    if len(words) < MIN_WORDS:
        return "too_few_words", float(len(words))
    if len(words) > MAX_WORDS:
        return "too_many_words", float(len(words))
    mean = sum(map(len, words)) / len(words)
    if not MEAN_WORD_LENGTH[0] <= mean <= MEAN_WORD_LENGTH[1]:
        return "mean_word_length", round(mean, 3)
    symbols = (text.count("#") + text.count("...") + text.count("…")) / len(words)
    if symbols > MAX_SYMBOL_RATIO:
        return "symbol_ratio", round(symbols, 3)
    lines = [line for line in text.split("\n") if line.strip()]
    ellipsis = sum(line.rstrip().endswith(("...", "…")) for line in lines) / max(1, len(lines))
    if ellipsis > MAX_ELLIPSIS_LINES:
        return "ellipsis_lines", round(ellipsis, 3)
    alpha = sum(any(c.isalpha() for c in w) for w in words) / len(words)
    if alpha < MIN_ALPHA_WORDS:
        return "alpha_words", round(alpha, 3)
    if "lorem ipsum" in text.lower():
        return "lorem_ipsum", 1.0
    dup = _duplicate_lines(text)
    return ("duplicate_lines", round(dup, 3)) if dup > MAX_DUPLICATE_LINES else None


def chinese_rules(text: str) -> Drop:
    cjk = len(_CJK.findall(text))
    if cjk < MIN_CJK_CHARS:
        return "too_few_cjk_chars", float(cjk)
    counts = Counter(text)
    for space in [c for c in counts if c.isspace()]:
        del counts[space]
    top = counts.most_common(1)[0][1] / sum(counts.values())
    if top > MAX_TOP_CHAR_SHARE:
        return "repeated_character", round(top, 3)
    dup = _duplicate_lines(text)
    return ("duplicate_lines", round(dup, 3)) if dup > MAX_DUPLICATE_LINES else None


def code_rules(text: str) -> Drop:
    """Code keeps its symbols; only empty files go."""
    return ("empty", 0.0) if not text.strip() else None


def tokenizer_file(store: Store, name: str) -> Path:
    """A store model's tokenizer.json, or FailedPrecondition when it has none."""
    path = Path(store.model(name).path) / "tokenizer.json"
    if not path.is_file():
        raise errors.FailedPrecondition(
            f"Model {name!r} has no tokenizer.json (a fast tokenizer) to count tokens with; "
            "name a model that has one, or leave --tokenizer-model out.")
    return path


@dataclass
class TokenDensity:
    """Tokens per UTF-8 byte under a store model's tokenizer (the ``tokenizers`` library, no torch)."""

    encode: Callable[[str], list]

    @classmethod
    def of_model(cls, store: Store, name: str) -> "TokenDensity":
        return cls.of_file(tokenizer_file(store, name))

    @classmethod
    def of_file(cls, path: Path | str) -> "TokenDensity":
        """From a tokenizer.json already found (a shard worker gets the path from its job)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
        return cls(lambda text: tok.encode(text, add_special_tokens=False).ids)

    def __call__(self, text: str) -> Drop:
        size = len(text.encode("utf-8"))
        density = len(self.encode(text)) / max(1, size)
        return ("tokens_per_byte", round(density, 4)) if density > MAX_TOKENS_PER_BYTE else None


def quality_check(text: str, strategy: str, density: TokenDensity | None) -> Drop:
    """The first filter ``text`` fails, or None."""
    if strategy == "code":
        drop = code_rules(text)
    else:
        drop = chinese_rules(text) if is_chinese(text) else latin_rules(text)
    if drop is None and density is not None:
        drop = density(text)
    return drop
