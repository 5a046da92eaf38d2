"""StartProcess's work: files -> shards (clean, quality filters, hashes) -> merge (dedup, families,
split) -> a store dataset.

``apt_data.shard`` cuts the input into pieces (a file each, big jsonl files into byte ranges) and
reads, cleans and filters each piece and computes its documents' exact digests and MinHash band
hashes into a folder of its own; with ``workers`` > 1 the pieces run in a process pool
(``multiprocessing``, forkserver workers), one at a time otherwise. The merge here takes the pieces in
input order, so every worker count writes the same bytes: exact duplicates by digest, the LSH band
buckets (confirming candidates by the exact Jaccard of the two shingle sets), the near-duplicate
families (union-find, which rows carrying ``augmented_from`` join through their original's
``id``) and the split. The documents that enter the index go to a staging file (the index re-reads
a candidate's text from there to confirm it), so memory holds digests, band hashes, offsets and
family ids, never the corpus. A last pass over the staging file writes the train split to
``data.jsonl`` and the eval split to the dataset ``<name>-eval``: a document's split is a seeded
hash of its family's root, so no family crosses it.

The dataset written holds ``data.jsonl`` (``{"text", "source", "where"}``: what ``train`` and the
other services read, listed in apt.json ``text_files``), ``stats.json``, ``rejected.jsonl``
(reason, score, where, text) and ``duplicates.jsonl`` (each family of two or more).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np
import xxhash

from apt_model import errors
from apt_model.store import Store

from apt_data.dedup import ExactIndex, NearDuplicateIndex, shingles
from apt_data.filters import tokenizer_file
from apt_data.ingest import Record
from apt_data.shard import EXAMPLES_PER_REASON, SUMMARY, ShardJob, plan, run_shard, shard_folder
from apt_data.spec import ProcessSpec

OPERATION = "data-processors.process"
SHARD_BYTES = 32 << 20    # a jsonl file larger than this is read as several pieces
POLL_SECONDS = 0.2        # how often the parent checks for a cancel while workers run


@dataclass
class Staging:
    """Documents that entered the dedup index, one JSON line each, re-readable by id."""

    path: Path
    offsets: list[int] = field(default_factory=list)
    kept: bytearray = field(default_factory=bytearray)   # 1 = not dropped as a duplicate
    _out: IO[bytes] | None = None
    _in: IO[bytes] | None = None
    _dirty: bool = False

    def __post_init__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.path, "wb")
        self._in = open(self.path, "rb")

    def append_line(self, line: str) -> int:
        """A shard's docs.jsonl line (``{"text", "source", "where"}``); its document id."""
        self.offsets.append(self._out.tell())
        self.kept.append(1)
        self._out.write(line.encode("utf-8"))
        self._dirty = True
        return len(self.offsets) - 1

    def record(self, doc: int) -> dict:
        if self._dirty:
            self._out.flush()
            self._dirty = False
        self._in.seek(self.offsets[doc])
        return json.loads(self._in.readline())

    def text(self, doc: int) -> str:
        return self.record(doc)["text"]

    def lines(self) -> Iterator[bytes]:
        """Every document's line as written (JSON and newline), in order."""
        self._out.flush()
        self._dirty = False
        with open(self.path, "rb") as f:
            yield from f

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
    linked_pairs: list = field(default_factory=list)    # (augmented copy, its original): augmented_from

    def drop(self, reason: str, score: float, record: Record, rejected: IO[str], **extra) -> None:
        self.dropped[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append({"source": record.source, "where": record.where, "score": score,
                                          "text": record.text[:200]})
        row = {"reason": reason, "score": score, "source": record.source, "where": record.where, **extra,
               "text": record.text}
        rejected.write(json.dumps(row, ensure_ascii=False) + "\n")

    def add_shard(self, summary: dict) -> None:
        """A shard's counts, drop examples and encodings, after those of the shards before it."""
        self.read += summary["read"]
        self.dropped.update(summary["dropped"])
        for reason, examples in summary["examples"].items():
            room = EXAMPLES_PER_REASON - len(self.examples[reason])
            self.examples[reason].extend(examples[:max(0, room)])
        self.encodings.update(summary["encodings"])


class Merger:
    """The merge of the shards, in input order: exact dedup, LSH buckets, families. One per job."""

    def __init__(self, spec: ProcessSpec, staging: Path, rejected: IO[str], ctx):
        self.spec, self.ctx, self.rejected = spec, ctx, rejected
        self.staging = Staging(staging)
        self.exact = ExactIndex()
        self.near = (NearDuplicateIndex(spec.threshold, spec.num_perm, seed=1,
                                        text_of=self.staging.text if spec.confirm else None)
                     if spec.needs_families else None)
        self.counts = Counts()
        self.ids: dict[tuple[str, str], int] = {}                    # (file, id) -> document
        self.pending: dict[tuple[str, str], list[int]] = defaultdict(list)  # copies seen before their original

    def add_shard(self, folder: Path) -> None:
        summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
        self.counts.add_shard(summary)
        with open(folder / "rejected.jsonl", encoding="utf-8") as filtered:
            shutil.copyfileobj(filtered, self.rejected)
        keys = np.load(folder / "keys.npy") if self.near is not None else None
        digests = np.load(folder / "digests.npy") if self.spec.dedup else None
        refs = {doc: (ident, origin) for doc, ident, origin in summary["refs"]}
        with open(folder / "docs.jsonl", encoding="utf-8") as docs:
            for k, line in enumerate(docs):
                self.take(line, None if keys is None else keys[k], None if digests is None else digests[k].tobytes(),
                          refs.get(k, (None, None)))
        self.ctx.check_cancelled()

    def take(self, line: str, keys: np.ndarray | None, key: bytes | None, ref: tuple) -> None:
        if self.near is None and not self.spec.dedup:  # nothing to compare: the line as the shard wrote it
            self.staging.append_line(line)
            return
        row = json.loads(line)
        record = Record(row["text"], row["source"], row["where"])
        ident, origin = ref
        if self.spec.dedup:
            first = self.exact.seen_digest(key, len(self.staging.offsets))
            if first >= 0:
                self.register(record.source, ident, first)  # copies of this row belong to the one it repeats
                self.counts.drop("exact_duplicate", 1.0, record, self.rejected)
                return
        doc = self.staging.append_line(line)
        if self.near is None:
            return
        self.near.families.add()
        self.register(record.source, ident, doc)
        original = self.link(record.source, origin, doc)
        match, score = self.near.insert(doc, keys, lambda: shingles(record.text))
        if match >= 0:
            self.counts.near_pairs.append((doc, match, round(score, 4)))
        if self.spec.dedup and (original >= 0 or match >= 0):
            self.staging.kept[doc] = 0
            if original >= 0:
                self.counts.drop("augmented_copy", 1.0, record, self.rejected,
                                 duplicate_of=self.staging.record(original)["where"] or original)
            else:
                self.counts.drop("near_duplicate", round(score, 4), record, self.rejected,
                                 duplicate_of=self.staging.record(match)["where"] or match)

    def register(self, source: str, ident: str | None, doc: int) -> None:
        """Row ``doc`` carries ``id``: later copies naming it join its family, earlier ones join now."""
        if ident is None or self.near is None:
            return
        self.ids.setdefault((source, ident), doc)
        for early in self.pending.pop((source, ident), ()):
            self.near.families.union(early, doc)
            self.counts.linked_pairs.append((early, doc))

    def link(self, source: str, origin: str | None, doc: int) -> int:
        """The original ``doc`` was augmented from (now in its family), or -1."""
        if origin is None:
            return -1
        original = self.ids.get((source, origin))
        if original is None:
            self.pending[(source, origin)].append(doc)
            return -1
        self.near.families.union(doc, original)
        self.counts.linked_pairs.append((doc, original))
        return original


@contextlib.contextmanager
def shards_done(jobs: list[ShardJob], workers: int, ctx) -> Iterator[Iterator[Path]]:
    """The shard folders in input order, each once its shard has run: in this process with one
    worker, else in a pool of processes forked from multiprocessing's fork server (a clean process
    started once, never a fork of this threaded server), terminated on cancel or error."""
    if workers <= 1 or len(jobs) <= 1:
        yield _inline(jobs, ctx)
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["apt_data.shard"])  # workers fork from a server that imported it once
    pool = context.Pool(min(workers, len(jobs)))
    try:
        yield _in_order(pool.imap(run_shard, jobs), jobs, ctx)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _inline(jobs: list[ShardJob], ctx) -> Iterator[Path]:
    for job in jobs:
        run_shard(job, ctx.check_cancelled)
        yield Path(job.out)


def _in_order(results, jobs: list[ShardJob], ctx) -> Iterator[Path]:
    for job in jobs:
        while True:
            ctx.check_cancelled()
            try:
                results.next(timeout=POLL_SECONDS)
                break
            except multiprocessing.TimeoutError:
                continue
        yield Path(job.out)


def family_of(processor: Merger, doc: int) -> int:
    return processor.near.families.find(doc) if processor.near is not None else doc


def in_eval(root: int, spec: ProcessSpec) -> bool:
    """A seeded hash of the family's root: the same family always lands on the same side."""
    if spec.eval_fraction <= 0:
        return False
    return xxhash.xxh64_intdigest(str(root), seed=spec.seed & 0xFFFFFFFFFFFFFFFF) / 2**64 < spec.eval_fraction


def write_splits(p: Merger, folder: Path, eval_file: Path | None) -> tuple[int, int]:
    """Kept documents into data.jsonl (train) and ``eval_file``; (train, eval) counts. The staging
    lines are copied as they are (they are data.jsonl's rows)."""
    n_train = n_eval = 0
    with open(folder / "data.jsonl", "wb") as train, \
            (open(eval_file, "wb") if eval_file else contextlib.nullcontext()) as held:
        for doc, line in enumerate(p.staging.lines()):
            if not p.staging.kept[doc]:
                continue
            if eval_file and in_eval(family_of(p, doc), p.spec):
                held.write(line)
                n_eval += 1
            else:
                train.write(line)
                n_train += 1
    return n_train, n_eval


def family_pairs(p: Merger) -> Iterable[tuple[int, int]]:
    """Every pair that made a family: near duplicates found, and augmented copies with their original."""
    yield from ((a, b) for a, b, _ in p.counts.near_pairs)
    yield from p.counts.linked_pairs


def write_clusters(p: Merger, path: Path) -> int:
    """Every family of two or more documents, members with where they came from; their count."""
    if p.near is None:
        path.write_text("", encoding="utf-8")
        return 0
    members: dict[int, list[int]] = defaultdict(list)
    for doc, other in family_pairs(p):
        members[family_of(p, doc)].extend((doc, other))
    with open(path, "w", encoding="utf-8") as out:
        for root, docs in sorted(members.items()):
            rows = [{k: v for k, v in p.staging.record(d).items() if k != "text"} | {"id": d, "kept": bool(p.staging.kept[d])}
                    for d in sorted(set(docs))]
            out.write(json.dumps({"family": root, "members": rows}, ensure_ascii=False) + "\n")
    return len(members)


def cross_split_pairs(p: Merger) -> int:
    return sum(in_eval(family_of(p, a), p.spec) != in_eval(family_of(p, b), p.spec) for a, b in family_pairs(p))


def nothing_left(counts: Counts) -> errors.FailedPrecondition:
    per_filter = ", ".join(f"{reason}: {n}" for reason, n in counts.dropped.most_common())
    return errors.FailedPrecondition(
        f"All {counts.read} documents were filtered out ({per_filter or 'no documents read'}); no dataset was "
        "written. Check --text-field and --cleaning, or pass --no-quality-filters to keep what the filters drop.")


def run_process(store: Store, spec: ProcessSpec, files: list[Path], ctx, max_file_bytes: int) -> dict:
    """The whole job: plan the pieces, run them (``spec.workers`` processes), merge, write."""
    started = time.monotonic()
    tokenizer = str(tokenizer_file(store, spec.tokenizer_model)) if spec.tokenizer_model else ""
    with store.create("datasets", spec.name, operation=OPERATION, parent=spec.dataset, parameters=spec.lineage(),
                      overwrite=spec.overwrite, extra={"text_files": ["data.jsonl"]}) as folder:
        work = folder / ".staging"
        jobs = [ShardJob(spec, piece, str(shard_folder(work / "shards", i)), max_file_bytes, tokenizer)
                for i, piece in enumerate(plan(files, SHARD_BYTES))]
        with shards_done(jobs, spec.workers, ctx) as folders:
            result, eval_tmp = merge_into(folder, spec, folders, len(jobs), ctx, started)
        if result["eval_documents"]:
            write_eval_dataset(store, spec, eval_tmp)
        shutil.rmtree(work)
    return result


def merge_into(folder: Path, spec: ProcessSpec, shards: Iterable[Path], n_shards: int, ctx,
               started: float) -> tuple[dict, Path | None]:
    """Merge the shard folders (in input order) into the dataset folder being written; the result
    and the eval split's file. The service's jobs and ``python -m apt_data.merge`` both end here."""
    with open(folder / "rejected.jsonl", "w", encoding="utf-8") as rejected:
        p = Merger(spec, folder / ".staging" / "docs.jsonl", rejected, ctx)
        for done, shard in enumerate(shards, 1):
            p.add_shard(shard)
            ctx.report(progress=0.9 * done / max(1, n_shards), stage="ingest", message=f"shard {done}/{n_shards}",
                       documents=p.counts.read, docs_per_s=p.counts.read / max(1e-9, time.monotonic() - started))
    if p.pending:
        ctx.warn(f"{sum(map(len, p.pending.values()))} rows name an augmented_from id that no row of their file "
                 "carries; they were treated as documents of their own.")
    ctx.report(progress=0.92, stage="write", message="splitting and writing")
    eval_tmp = folder / ".staging" / "eval.jsonl" if spec.eval_name else None
    n_train, n_eval = write_splits(p, folder, eval_tmp)
    if n_train + n_eval == 0:
        raise nothing_left(p.counts)
    if spec.eval_name and n_eval == 0:
        ctx.warn(f"No family fell into the eval split at --eval-fraction {spec.eval_fraction}; "
                 f"{spec.eval_name!r} was not written.")
    clusters = write_clusters(p, folder / "duplicates.jsonl")
    result = summary(p, spec, n_train, n_eval, clusters, time.monotonic() - started)
    (folder / "stats.json").write_text(json.dumps(stats(p, result), ensure_ascii=False, indent=2), encoding="utf-8")
    p.staging.close()
    return result, eval_tmp


def write_eval_dataset(store: Store, spec: ProcessSpec, eval_file: Path) -> None:
    with store.create("datasets", spec.eval_name, operation=OPERATION, parent=spec.name,
                      parameters={**spec.lineage(), "split": "eval"}, overwrite=spec.overwrite,
                      extra={"text_files": ["data.jsonl"]}) as folder:
        shutil.copyfile(eval_file, folder / "data.jsonl")


def summary(p: Merger, spec: ProcessSpec, n_train: int, n_eval: int, clusters: int, seconds: float) -> dict:
    """The job's result (ProcessResult)."""
    return {
        "name": spec.name, "eval_name": spec.eval_name if n_eval else "",
        "documents_read": p.counts.read, "documents_kept": n_train, "eval_documents": n_eval,
        "exact_duplicates": p.counts.dropped["exact_duplicate"],
        "near_duplicates": p.counts.dropped["near_duplicate"] if spec.dedup else len(p.counts.near_pairs),
        "duplicate_clusters": clusters,
        "dropped": [{"reason": r, "count": n} for r, n in p.counts.dropped.most_common()],
        "augmented_copies": len(p.counts.linked_pairs),
        "cross_split_pairs": cross_split_pairs(p) if spec.eval_fraction > 0 else 0,
        "seconds": round(seconds, 3),
    }


def stats(p: Merger, result: dict) -> dict:
    """stats.json: the result plus examples of every drop, the would-be drops and the encodings."""
    index = p.near
    return {**result, "examples": dict(p.counts.examples), "encodings": p.counts.encodings, "spec": p.spec.lineage(),
            "lsh": {"bands": index.bands, "rows": index.rows, "confirmations": index.comparisons} if index else None}
