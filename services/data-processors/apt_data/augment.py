"""StartAugment's work: seeded copies of every document of a dataset, each recording its original.

Methods (each copy applies one, chosen in turn from the request's list):

- ``char_noise``: about 3% of letters deleted, doubled or swapped with the next one;
- ``word_drop`` / ``word_swap``: about 10% of words dropped / swapped with the next (words of
  Chinese text come from jieba);
- ``width``: ASCII letters and digits <-> full-width forms;
- ``punctuation``: ASCII , . ! ? ; : <-> the CJK forms ， 。 ！ ？ ； ：;
- ``rename_identifiers``: Python source whose local names (assigned variables, arguments) are
  renamed consistently through ``ast`` (the program means the same; comments and layout are
  those of ``ast.unparse``). Text that does not parse as Python is refused for this method.

The output dataset holds the originals (``{"text", "id"}``) and the copies (``{"text",
"augmented_from": id, "method"}``) in ``data.jsonl``; the ids let dedup and split keep a family
together.
"""

from __future__ import annotations

import ast
import builtins
import json
import random
from typing import Callable

from apt_model import errors
from apt_model.corpus import load_corpus
from apt_model.store import Store

from apt_data.filters import is_chinese

OPERATION = "data-processors.augment"
METHODS = ("char_noise", "word_drop", "word_swap", "width", "punctuation", "rename_identifiers")
CHAR_RATE, WORD_RATE = 0.03, 0.1
_ASCII_PUNCT, _CJK_PUNCT = ",.!?;:", "，。！？；："


def char_noise(text: str, rng: random.Random) -> str:
    chars = list(text)
    out, i = [], 0
    while i < len(chars):
        c = chars[i]
        roll = rng.random()
        if c.isalpha() and roll < CHAR_RATE / 3:
            pass  # deleted
        elif c.isalpha() and roll < 2 * CHAR_RATE / 3:
            out += [c, c]
        elif c.isalpha() and roll < CHAR_RATE and i + 1 < len(chars):
            out += [chars[i + 1], c]
            i += 1
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _words(text: str) -> tuple[list[str], str]:
    if is_chinese(text):
        import jieba

        return jieba.lcut(text), ""
    return text.split(" "), " "


def word_drop(text: str, rng: random.Random) -> str:
    words, sep = _words(text)
    kept = [w for w in words if rng.random() >= WORD_RATE]
    return sep.join(kept or words)


def word_swap(text: str, rng: random.Random) -> str:
    words, sep = _words(text)
    for i in range(len(words) - 1):
        if rng.random() < WORD_RATE:
            words[i], words[i + 1] = words[i + 1], words[i]
    return sep.join(words)


def width(text: str, rng: random.Random) -> str:
    """Half-width alphanumerics to full-width, or back when the text has full-width ones."""
    if any("\uff10" <= c <= "\uff5a" for c in text):
        return "".join(chr(ord(c) - 0xFEE0) if "\uff10" <= c <= "\uff5a" and c.isalnum() else c for c in text)
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() and rng.random() < 0.5 else c for c in text)


def punctuation(text: str, rng: random.Random) -> str:
    table = str.maketrans(_CJK_PUNCT, _ASCII_PUNCT) if is_chinese(text) else str.maketrans(_ASCII_PUNCT, _CJK_PUNCT)
    return text.translate(table)


class _Renamer(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]):
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self.names.get(node.id, node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg = self.names.get(node.arg, node.arg)
        return node


def rename_identifiers(text: str, rng: random.Random) -> str:
    """Local names renamed to ``v<k>_<n>``: only names bound inside a function (arguments and
    assignments), never globals, attributes, keywords or builtins, so behaviour is unchanged."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise errors.InvalidArgument(
            f"rename_identifiers needs Python source; a document does not parse (line {exc.lineno}: {exc.msg}).") from exc
    bound: set[str] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            bound |= {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
            bound |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    declared = {n for node in ast.walk(tree) if isinstance(node, (ast.Global, ast.Nonlocal)) for n in node.names}
    keyword_args = {k.arg for node in ast.walk(tree) if isinstance(node, ast.Call) for k in node.keywords if k.arg}
    module_level = {n.id for stmt in tree.body for n in ast.walk(stmt) if isinstance(n, ast.Name)
                    and isinstance(n.ctx, ast.Store) and not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    imported = {(a.asname or a.name).split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    renamable = sorted(bound - declared - keyword_args - module_level - imported - set(dir(builtins)) - {"self", "cls"})
    tag = rng.randrange(1000)
    names = {name: f"v{tag}_{i}" for i, name in enumerate(renamable)}
    return ast.unparse(_Renamer(names).visit(tree)) + "\n"


FUNCTIONS: dict[str, Callable[[str, random.Random], str]] = {
    "char_noise": char_noise, "word_drop": word_drop, "word_swap": word_swap, "width": width,
    "punctuation": punctuation, "rename_identifiers": rename_identifiers}


def run_augment(store: Store, dataset: str, methods: tuple[str, ...], copies: int, name: str, seed: int,
                overwrite: bool, ctx) -> dict:
    documents = load_corpus([], store, dataset).documents
    rng = random.Random(seed)
    written = 0
    with store.create("datasets", name, operation=OPERATION, parent=dataset, overwrite=overwrite,
                      parameters={"methods": list(methods), "copies": copies, "seed": seed},
                      extra={"text_files": ["data.jsonl"]}) as folder:
        with open(folder / "data.jsonl", "w", encoding="utf-8") as out:
            for doc_id, text in enumerate(documents):
                out.write(json.dumps({"text": text, "id": doc_id}, ensure_ascii=False) + "\n")
                for k in range(copies):
                    method = methods[(doc_id * copies + k) % len(methods)]
                    copy = FUNCTIONS[method](text, rng)
                    out.write(json.dumps({"text": copy, "augmented_from": doc_id, "method": method},
                                         ensure_ascii=False) + "\n")
                    written += 1
                if doc_id % 100 == 0:
                    ctx.check_cancelled()
                    ctx.report(progress=doc_id / max(1, len(documents)), stage="augment")
    return {"name": name, "originals": len(documents), "copies_written": written}
