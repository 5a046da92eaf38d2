"""``python -m apt_data.sample_data DIR``: offline test data from the demo corpus.

Writes, from ``apt_model.data.demo_documents`` (Python reference topics and People's Daily
paragraphs) cut into short documents: a jsonl with planted exact duplicates and seeded
near-duplicate families, the same rows as CSV and XLSX, GB18030 / Big5 / cp1252-mojibake
copies of Chinese and English text, and HTML pages wrapping text in navigation and footer
templates. ``planted_corpus`` returns the documents with their ground truth for the benchmark.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from apt_model.data import chinese_documents, english_documents

NAV = ('<header><nav><a href="/">Home</a> | <a href="/docs">Docs</a> | <a href="/blog">Blog</a> | '
       '<a href="/about">About us</a></nav></header>')
FOOTER = ('<footer><p><a href="/privacy">Privacy policy</a> · <a href="/terms">Terms of use</a> · '
          '© 2026 Example Corp. All rights reserved.</p><ul><li><a href="/rss">RSS</a></li>'
          '<li><a href="/contact">Contact</a></li></ul></footer>')
SIDEBAR = '<aside><h3>Related</h3><ul><li><a href="/a">Other page</a></li><li><a href="/b">More</a></li></ul></aside>'


def short_documents(english_chars: int = 200, chinese_chars: int = 120) -> list[str]:
    """The demo corpus cut into paragraph-sized documents (English by blank lines, Chinese by lines)."""
    docs = []
    for text in english_documents():
        for para in text.split("\n\n"):
            para = " ".join(para.split())
            if len(para) >= english_chars and not para.startswith(("*", "=")):
                docs.append(para)
    for text in chinese_documents():
        for line in text.split("\n"):
            if len(line) >= chinese_chars:
                docs.append(line)
    return docs


def cut_documents(english_chars: int = 100, chinese_chars: int = 60, docstring_chars: int = 120) -> list[str]:
    """The demo corpus cut finer, for a corpus of ~20k documents: English paragraphs, the paragraphs
    of the standard library's docstrings (read with ``ast``, nothing imported) and Chinese lines cut
    at sentence ends into pieces of at least ``chinese_chars`` characters; each text once."""
    docs = [d for d in short_documents(english_chars, 10**9) if " " in d]
    docs += stdlib_docstrings(docstring_chars)
    for text in chinese_documents():
        for line in text.split("\n"):
            piece = ""
            for sentence in re.split(r"(?<=[。！？])", line.strip()):
                piece += sentence
                if len(piece) >= chinese_chars:
                    docs.append(piece)
                    piece = ""
    return list(dict.fromkeys(docs))


def stdlib_docstrings(min_chars: int) -> list[str]:
    """Paragraphs of the docstrings of CPython's standard-library modules (tests left out)."""
    import ast
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for path in sorted(root.rglob("*.py")):
        if {"test", "tests", "site-packages", "idlelib"} & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                for para in (ast.get_docstring(node) or "").split("\n\n"):
                    if len(para := " ".join(para.split())) >= min_chars:
                        found.append(para)
    return found


def edit(text: str, rate: float, rng: random.Random) -> str:
    """A near copy: about ``rate`` of the words (characters for Chinese) deleted or replaced."""
    units = text.split() if " " in text else list(text)
    out = []
    for unit in units:
        roll = rng.random()
        if roll < rate / 2:
            continue
        out.append(unit + rng.choice("xyz") if roll < rate else unit)
    return (" " if " " in text else "").join(out)


@dataclass
class Planted:
    documents: list[str]
    families: list[int]   # per document: the index of the original it was made from (itself for originals)


def planted_corpus(n_originals: int, n_exact: int, n_near: int, seed: int = 0,
                   jaccard: tuple[float, float] | None = None) -> Planted:
    """Originals plus ``n_exact`` exact copies and ``n_near`` seeded near copies, shuffled (originals
    from ``short_documents``, or ``cut_documents`` when more are asked for than it has). With
    ``jaccard=(lo, hi)`` every near copy's exact Jaccard to its original lies in [lo, hi]."""
    rng = random.Random(seed)
    pool = short_documents()
    if n_originals > len(pool):
        pool = cut_documents()
        if n_originals > len(pool):
            raise ValueError(f"the demo corpus cuts into {len(pool)} documents, fewer than {n_originals}")
    rng.shuffle(pool)
    originals = pool[:n_originals]
    rows = [(d, i) for i, d in enumerate(originals)]
    rows += [(originals[i], i) for i in (rng.randrange(len(originals)) for _ in range(n_exact))]
    for _ in range(n_near):
        i = rng.randrange(len(originals))
        rows.append((near_copy(originals[i], rng, jaccard) if jaccard else edit(originals[i], rng.uniform(0.01, 0.12), rng), i))
    rng.shuffle(rows)
    return Planted([d for d, _ in rows], [f for _, f in rows])


def near_copy(text: str, rng: random.Random, jaccard: tuple[float, float], tries: int = 50) -> str:
    """A seeded edit of ``text`` whose shingle-set Jaccard to it lies in ``jaccard`` (the closest
    of ``tries`` edits when none does)."""
    from apt_data.dedup import jaccard as exact_jaccard, shingles

    own, lo, hi = shingles(text), *jaccard
    best, best_gap = text, float("inf")
    for _ in range(tries):
        copy = edit(text, rng.uniform(0.002, 0.1), rng)
        score = exact_jaccard(own, shingles(copy))
        if lo <= score <= hi:
            return copy
        gap = min(abs(score - lo), abs(score - hi))
        if gap < best_gap:
            best, best_gap = copy, gap
    return best


def mojibake(text: str) -> str:
    """UTF-8 bytes read as Windows-1252 and saved again ("café" -> "cafÃ©"); the five bytes cp1252
    leaves undefined pass through as the C1 controls Windows itself maps them to."""
    import ftfy.bad_codecs  # noqa: F401  (registers sloppy-windows-1252)

    return text.encode("utf-8").decode("sloppy-windows-1252")


def html_page(title: str, paragraphs: list[str]) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!doctype html><html><head><title>{title}</title><style>p{{margin:0}}</style>"
            f"<script>var x = 1;</script></head><body>{NAV}{SIDEBAR}<main><h1>{title}</h1>{body}</main>"
            f"{FOOTER}</body></html>")


def write_files(out: Path, n: int = 400, seed: int = 0) -> dict[str, Path]:
    """The sample files under ``out``; their paths by kind."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    planted = planted_corpus(n, n // 20, n // 10, seed)
    rows = pd.DataFrame({"id": range(len(planted.documents)), "text": planted.documents})
    paths = {"jsonl": out / "planted.jsonl", "csv": out / "planted.csv", "xlsx": out / "planted.xlsx"}
    with open(paths["jsonl"], "w", encoding="utf-8") as f:
        for d in planted.documents:
            f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
    rows.to_csv(paths["csv"], index=False)
    rows.head(200).to_excel(paths["xlsx"], index=False)
    chinese = [d for d in planted.documents if " " not in d][:20]
    english = [d for d in planted.documents if " " in d][:20]
    for enc in ("gb18030", "big5"):
        paths[enc] = out / f"chinese-{enc}.txt"
        paths[enc].write_bytes("\n\n".join(chinese).encode(enc, errors="ignore"))
    paths["mojibake"] = out / "english-mojibake.txt"
    paths["mojibake"].write_text(mojibake("\n\n".join(e.replace("e", "é", 1) for e in english)), encoding="utf-8")
    paths["html"] = out / "page.html"
    paths["html"].write_text(html_page("Sample page", english[:5]), encoding="utf-8")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--documents", type=int, default=400, help="original documents before planted copies")
    args = parser.parse_args()
    for kind, path in write_files(Path(args.out_dir), args.documents).items():
        print(f"{kind}\t{path}")


if __name__ == "__main__":
    main()
