"""Text corpora from files and store datasets, shared by every service that reads text.

Bad data is reported with where it is (file, line, byte offset) and what to do; nothing
is skipped silently. A corpus is a list of documents. No torch here: torch-free services
read corpora too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from apt_model import errors
from apt_model.jsonl import json_objects
from apt_model.store import Store

TEXT_SUFFIXES = (".txt", ".md", ".text")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
MAX_CORPUS_BYTES = 2 << 30  # 2 GiB read into memory at most


@dataclass(frozen=True)
class Corpus:
    documents: list[str]
    sources: list[str]  # the files read, for lineage
    bytes_read: int

    @property
    def characters(self) -> int:
        return sum(len(d) for d in self.documents)


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise errors.InvalidArgument(
            f"{path} is not valid UTF-8: undecodable bytes at byte offset {exc.start} (line {line}). "
            f"Convert it first, e.g. 'iconv -f GB18030 -t UTF-8 {path.name}'."
        ) from exc


def read_text_file(path: Path) -> list[str]:
    raw = path.read_bytes()
    text = _decode(path, raw).lstrip("\ufeff")
    if not text.strip():
        raise errors.InvalidArgument(f"{path} is empty (or only whitespace): there is no text to use.")
    return [text]


def read_jsonl_file(path: Path, text_field: str, warn: Callable[[str], None]) -> list[str]:
    docs, empty = [], 0
    text = _decode(path, path.read_bytes()).lstrip("\ufeff")
    for lineno, record in json_objects(text.splitlines(), str(path)):
        if text_field not in record:
            raise errors.InvalidArgument(
                f"{path} line {lineno} has no field {text_field!r} (it has: {', '.join(sorted(record))}); "
                f"pass --text-field with the right name.")
        value = record[text_field]
        if not isinstance(value, str):
            raise errors.InvalidArgument(
                f"{path} line {lineno}: field {text_field!r} is a {type(value).__name__}, not a string.")
        if value.strip():
            docs.append(value)
        else:
            empty += 1
    if empty:
        warn(f"{path}: {empty} record(s) with an empty {text_field!r} were left out.")
    if not docs:
        raise errors.InvalidArgument(f"{path} holds no non-empty {text_field!r} text.")
    return docs


def read_corpus_file(path: Path, text_field: str, warn: Callable[[str], None]) -> list[str]:
    if not path.exists():
        raise errors.NotFound(f"Corpus file {path} does not exist (paths are read on the machine of the service doing the work).")
    if not path.is_file():
        raise errors.InvalidArgument(f"Corpus path {path} is not a regular file.")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return read_jsonl_file(path, text_field, warn)
    if suffix in TEXT_SUFFIXES:
        return read_text_file(path)
    raise errors.InvalidArgument(
        f"{path}: unsupported corpus type {suffix or '(no suffix)'!r}; use .txt or .jsonl "
        f"(convert other formats with the data-processors plugin).")


def dataset_text_files(folder: Path, meta: dict) -> list[Path]:
    """The text files of a dataset entry: those its apt.json lists under ``text_files`` (a
    dataset that also holds reports, e.g. data-processors' rejected.jsonl), else every
    .txt/.jsonl file in it, sorted."""
    if "text_files" in meta:
        files = [(folder / str(rel)).resolve() for rel in meta["text_files"]]
        outside = [str(rel) for rel, f in zip(meta["text_files"], files) if not f.is_relative_to(folder.resolve())]
        if outside:  # apt.json is the store's own record, but a record is never trusted with the host
            raise errors.DataLoss(f"The record of dataset {folder.name!r} lists text files outside the dataset "
                                  f"({', '.join(outside[:3])}); remove the dataset and store it again.")
        return files
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES + JSONL_SUFFIXES)


def load_corpus(paths: list[str], store: Store | None = None, dataset: str = "", text_field: str = "text",
                warn: Callable[[str], None] = lambda _: None) -> Corpus:
    """Documents from corpus files and/or a store dataset (its .txt/.jsonl files, sorted).

    ``paths`` are host paths a service vouches for: a path a remote caller named reaches here
    only through ``apt_model.trust.PathPolicy.resolve`` (the servicer's request conversion).
    """
    files = [Path(p) for p in paths]
    if dataset:
        if store is None:
            raise errors.FailedPrecondition("A dataset was named but no store is available.")
        entry = store.dataset(dataset)
        found = dataset_text_files(entry.path, entry.meta)
        if not found:
            raise errors.FailedPrecondition(f"Dataset {dataset!r} holds no .txt or .jsonl file to read.")
        files.extend(found)
    if not files:
        raise errors.InvalidArgument("No corpus given: pass one or more .txt/.jsonl files or a store dataset.")
    total = 0
    docs: list[str] = []
    for f in files:
        if f.exists() and f.is_file():
            total += f.stat().st_size
        if total > MAX_CORPUS_BYTES:
            raise errors.ResourceExhausted(
                f"The corpus exceeds {MAX_CORPUS_BYTES >> 30} GiB; train on a subset or shard it.")
        docs.extend(read_corpus_file(f, text_field, warn))
    return Corpus(documents=docs, sources=[str(f) for f in files], bytes_read=total)


def load_eval_documents(text: str = "", path: str = "", dataset: str = "", store: Store | None = None,
                        text_field: str = "text") -> list[str]:
    """The documents of one held-out text from exactly one of: inline text, a file, a store dataset."""
    given = [bool(text), bool(path), bool(dataset)]
    if sum(given) != 1:
        raise errors.InvalidArgument("Give exactly one evaluation text: inline text, a file path or a dataset.")
    if text:
        return [text]
    return load_corpus([path] if path else [], store, dataset, text_field).documents


def load_eval_text(text: str = "", path: str = "", dataset: str = "", store: Store | None = None,
                   text_field: str = "text") -> str:
    """One held-out text from exactly one of: inline text, a file, a store dataset (its
    documents joined by a blank line)."""
    return "\n\n".join(load_eval_documents(text, path, dataset, store, text_field))
