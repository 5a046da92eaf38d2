"""StartProcess's work: files -> clean -> quality filters -> dedup -> split -> a store dataset.

One pass streams every file in bounded memory: each document is cleaned, filtered, checked
against the exact-duplicate digests and, a batch at a time, against the MinHash-LSH index; the
documents that enter the index go to a staging file (the index re-reads a candidate's text from
there to confirm it), so memory holds digests, band hashes, offsets and family ids, never the
corpus. A second pass over the staging file writes the train split to ``data.jsonl`` and the
eval split to the dataset ``<name>-eval``: a document's split is a seeded hash of its family's
root, so no near-duplicate family crosses it.

The dataset written holds ``data.jsonl`` (``{"text", "source", "where"}``: what ``train`` and the
other services read, listed in apt.json ``text_files``), ``stats.json``, ``rejected.jsonl``
(reason, score, where, text) and ``duplicates.jsonl`` (each family of two or more).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import xxhash

from apt_model import errors
from apt_model.store import Store

from apt_data.clean import cleaner
from apt_data.dedup import ExactIndex, NearDuplicateIndex
from apt_data.filters import TokenDensity, quality_check
from apt_data.ingest import ReadOptions, Record, read_records
from apt_data.spec import ProcessSpec

OPERATION = "data-processors.process"
BATCH = 256
EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 200


@dataclass
class Staging:
    """Documents that entered the dedup index, one JSON line each, re-readable by id."""

    path: Path
    offsets: list[int] = field(default_factory=list)
    kept: bytearray = field(default_factory=bytearray)   # 1 = not dropped as a duplicate
    _out: IO[bytes] | None = None
    _in: IO[bytes] | None = None

    def __post_init__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.path, "wb")
        self._in = open(self.path, "rb")

    def append(self, record: Record) -> int:
        self.offsets.append(self._out.tell())
        self.kept.append(1)
        line = json.dumps({"text": record.text, "source": record.source, "where": record.where}, ensure_ascii=False)
        self._out.write(line.encode("utf-8") + b"\n")
        return len(self.offsets) - 1

    def flush(self) -> None:
        self._out.flush()

    def record(self, doc: int) -> dict:
        self._in.seek(self.offsets[doc])
        return json.loads(self._in.readline())

    def text(self, doc: int) -> str:
        return self.record(doc)["text"]

    def close(self) -> None:
        self._out.close()
        self._in.close()


@dataclass
class Counts:
    read: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=lambda: defaultdict(list))
    encodings: dict = field(default_factory=dict)
    near_pairs: list = field(default_factory=list)      # (doc, earlier doc, jaccard)

    def drop(self, reason: str, score: float, record: Record, rejected: IO[str], **extra) -> None:
        self.dropped[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append({"source": record.source, "where": record.where, "score": score,
                                          "text": record.text[:EXAMPLE_CHARS]})
        row = {"reason": reason, "score": score, "source": record.source, "where": record.where, **extra,
               "text": record.text}
        rejected.write(json.dumps(row, ensure_ascii=False) + "\n")


class Processor:
    """The streaming pass: one instance per job."""

    def __init__(self, store: Store, spec: ProcessSpec, staging: Path, rejected: IO[str], ctx, max_file_bytes: int):
        self.spec, self.ctx, self.rejected, self.max_file_bytes = spec, ctx, rejected, max_file_bytes
        self.clean = cleaner(spec.cleaning)
        self.density = TokenDensity.of_model(store, spec.tokenizer_model) if spec.tokenizer_model else None
        self.staging = Staging(staging)
        self.exact = ExactIndex()
        self.near = (NearDuplicateIndex(spec.threshold, spec.num_perm, seed=1,
                                        text_of=self.staging.text if spec.confirm else None)
                     if spec.needs_families else None)
        self.counts = Counts()
        self.batch: list[Record] = []
        self.direct: IO[str] | None = None   # data.jsonl itself when no family is needed
        self.written = 0

    def run(self, files: list[Path]) -> None:
        options = ReadOptions(self.spec.text_field, self.spec.html_extractor,
                              whole_files=self.spec.cleaning == "code", max_file_bytes=self.max_file_bytes)
        total = sum(f.stat().st_size for f in files) or 1
        done, started = 0, time.monotonic()
        for path in files:
            encoding, records = read_records(path, options)
            self.counts.encodings[path.name] = encoding
            for record in records:
                self.take(record)
            done += path.stat().st_size
            self.ctx.check_cancelled()
            self.ctx.report(progress=0.9 * done / total, stage="ingest", message=path.name,
                            documents=self.counts.read,
                            docs_per_s=self.counts.read / max(1e-9, time.monotonic() - started))
        self.flush_batch()
        self.staging.flush()

    def take(self, record: Record) -> None:
        self.counts.read += 1
        text = self.clean(record.text)
        record = Record(text, record.source, record.where)
        if not text.strip():
            self.counts.drop("empty_after_cleaning", 0.0, record, self.rejected)
            return
        verdict = quality_check(text, self.spec.cleaning, self.density) if self.spec.quality_filters else None
        if verdict is not None:
            self.counts.drop(verdict[0], verdict[1], record, self.rejected)
            return
        if self.spec.dedup:
            first = self.exact.seen(text, self.counts.read)
            if first >= 0:
                self.counts.drop("exact_duplicate", 1.0, record, self.rejected)
                return
        self.batch.append(record)
        if len(self.batch) >= BATCH:
            self.flush_batch()

    def flush_batch(self) -> None:
        if not self.batch:
            return
        if self.direct is not None:  # no family to find: straight into data.jsonl, no staging
            self.direct.writelines(json.dumps({"text": r.text, "source": r.source, "where": r.where},
                                              ensure_ascii=False) + "\n" for r in self.batch)
            self.written += len(self.batch)
            self.batch = []
            self.ctx.check_cancelled()
            return
        ids = [self.staging.append(r) for r in self.batch]
        if self.near is not None:
            self.staging.flush()
            for doc, record, (match, score) in zip(ids, self.batch, self.near.add(r.text for r in self.batch)):
                if match < 0:
                    continue
                self.counts.near_pairs.append((doc, match, round(score, 4)))
                if self.spec.dedup:
                    self.staging.kept[doc] = 0
                    self.counts.drop("near_duplicate", round(score, 4), record, self.rejected,
                                     duplicate_of=self.staging.record(match)["where"] or match)
        self.batch = []
        self.ctx.check_cancelled()


def family_of(processor: Processor, doc: int) -> int:
    return processor.near.families.find(doc) if processor.near is not None else doc


def in_eval(root: int, spec: ProcessSpec) -> bool:
    """A seeded hash of the family's root: the same family always lands on the same side."""
    if spec.eval_fraction <= 0:
        return False
    return xxhash.xxh64_intdigest(str(root), seed=spec.seed & 0xFFFFFFFFFFFFFFFF) / 2**64 < spec.eval_fraction


def write_splits(p: Processor, folder: Path, eval_file: Path | None) -> tuple[int, int]:
    """Kept documents into data.jsonl (train) and ``eval_file``; (train, eval) counts."""
    n_train = n_eval = 0
    with open(folder / "data.jsonl", "w", encoding="utf-8") as train, \
            (open(eval_file, "w", encoding="utf-8") if eval_file else contextlib.nullcontext()) as held:
        for doc in range(len(p.staging.offsets)):
            if not p.staging.kept[doc]:
                continue
            line = json.dumps(p.staging.record(doc), ensure_ascii=False) + "\n"
            if eval_file and in_eval(family_of(p, doc), p.spec):
                held.write(line)
                n_eval += 1
            else:
                train.write(line)
                n_train += 1
    return n_train, n_eval


def write_clusters(p: Processor, path: Path) -> int:
    """Every family of two or more documents, members with where they came from; their count."""
    if p.near is None:
        path.write_text("", encoding="utf-8")
        return 0
    members: dict[int, list[int]] = defaultdict(list)
    for doc, match, _ in p.counts.near_pairs:
        root = family_of(p, doc)
        members[root].extend((doc, match))
    with open(path, "w", encoding="utf-8") as out:
        for root, docs in sorted(members.items()):
            rows = [{k: v for k, v in p.staging.record(d).items() if k != "text"} | {"id": d, "kept": bool(p.staging.kept[d])}
                    for d in sorted(set(docs))]
            out.write(json.dumps({"family": root, "members": rows}, ensure_ascii=False) + "\n")
    return len(members)


def cross_split_pairs(p: Processor) -> int:
    return sum(in_eval(family_of(p, a), p.spec) != in_eval(family_of(p, b), p.spec) for a, b, _ in p.counts.near_pairs)


def nothing_left(counts: Counts) -> errors.FailedPrecondition:
    per_filter = ", ".join(f"{reason}: {n}" for reason, n in counts.dropped.most_common())
    return errors.FailedPrecondition(
        f"All {counts.read} documents were filtered out ({per_filter or 'no documents read'}); no dataset was "
        "written. Check --text-field and --cleaning, or pass --no-quality-filters to keep what the filters drop.")


def run_process(store: Store, spec: ProcessSpec, files: list[Path], ctx, max_file_bytes: int) -> dict:
    started = time.monotonic()
    with store.create("datasets", spec.name, operation=OPERATION, parent=spec.dataset, parameters=spec.lineage(),
                      overwrite=spec.overwrite, extra={"text_files": ["data.jsonl"]}) as folder:
        with open(folder / "rejected.jsonl", "w", encoding="utf-8") as rejected, \
                (open(folder / "data.jsonl", "w", encoding="utf-8") if not spec.needs_families
                 else contextlib.nullcontext()) as direct:
            p = Processor(store, spec, folder / ".staging" / "docs.jsonl", rejected, ctx, max_file_bytes)
            p.direct = direct
            p.run(files)
        ctx.report(progress=0.92, stage="write", message="splitting and writing")
        eval_tmp = folder / ".staging" / "eval.jsonl" if spec.eval_name else None
        n_train, n_eval = write_splits(p, folder, eval_tmp) if spec.needs_families else (p.written, 0)
        if n_train + n_eval == 0:
            raise nothing_left(p.counts)
        if spec.eval_name and n_eval == 0:
            ctx.warn(f"No family fell into the eval split at --eval-fraction {spec.eval_fraction}; "
                     f"{spec.eval_name!r} was not written.")
        clusters = write_clusters(p, folder / "duplicates.jsonl")
        result = summary(p, spec, n_train, n_eval, clusters, time.monotonic() - started)
        (folder / "stats.json").write_text(json.dumps(stats(p, result), ensure_ascii=False, indent=2), encoding="utf-8")
        if spec.eval_name and n_eval:
            write_eval_dataset(store, spec, eval_tmp)
        p.staging.close()
        shutil.rmtree(folder / ".staging")
    return result


def write_eval_dataset(store: Store, spec: ProcessSpec, eval_file: Path) -> None:
    with store.create("datasets", spec.eval_name, operation=OPERATION, parent=spec.name,
                      parameters={**spec.lineage(), "split": "eval"}, overwrite=spec.overwrite,
                      extra={"text_files": ["data.jsonl"]}) as folder:
        shutil.copyfile(eval_file, folder / "data.jsonl")


def summary(p: Processor, spec: ProcessSpec, n_train: int, n_eval: int, clusters: int, seconds: float) -> dict:
    """The job's result (ProcessResult)."""
    return {
        "name": spec.name, "eval_name": spec.eval_name if n_eval else "",
        "documents_read": p.counts.read, "documents_kept": n_train, "eval_documents": n_eval,
        "exact_duplicates": p.counts.dropped["exact_duplicate"],
        "near_duplicates": p.counts.dropped["near_duplicate"] if spec.dedup else len(p.counts.near_pairs),
        "duplicate_clusters": clusters,
        "dropped": [{"reason": r, "count": n} for r, n in p.counts.dropped.most_common()],
        "cross_split_pairs": cross_split_pairs(p) if spec.eval_fraction > 0 else 0,
        "seconds": round(seconds, 3),
    }


def stats(p: Processor, result: dict) -> dict:
    """stats.json: the result plus examples of every drop, the would-be drops and the encodings."""
    index = p.near
    return {**result, "examples": dict(p.counts.examples), "encodings": p.counts.encodings, "spec": p.spec.lineage(),
            "lsh": {"bands": index.bands, "rows": index.rows, "confirmations": index.comparisons} if index else None}
