"""One shard of a process job; ``python -m apt_data.shard`` runs the shards of one pod of a
Kubernetes Indexed Job.

``plan`` cuts a job's input into pieces: one per file, and a jsonl, csv or tsv file larger than
the shard size into byte ranges that end at a line end (a csv record end: a newline after an even
number of quotes), only in encodings where bytes 0x0A and 0x22 are always a newline and a quote.
The pieces depend on the input alone, never on how many workers run them, so every worker count
writes the same dataset. ``run_shard`` reads one piece, cleans and quality-filters it and computes
each kept document's exact digest and MinHash band hashes, into the piece's folder:

- ``docs.jsonl``: the documents that passed the filters (``{"text", "source", "where"}``), in order;
- ``keys.npy``: (documents, bands) uint64 band hashes, when the job needs families;
- ``digests.npy``: (documents, 16) uint8 xxh3-128 digests, with dedup;
- ``rejected.jsonl``: the filter drops, with reason and score;
- ``summary.json`` (written last, atomically: a piece without it did not finish): counts, drop
  examples, the file's encoding and the ``id`` / ``augmented_from`` of the documents that have one.

``apt_data.merge`` reads the pieces in order: exact dedup, the LSH buckets, families, split.

On Kubernetes every pod runs ``python -m apt_data.shard --request request.json --of M`` with
``JOB_COMPLETION_INDEX`` set; pod N runs the pieces N, N+M, N+2M, ... into
``$APT_HOME/exports/<name>-shards/`` on the store volume, then ``python -m apt_data.merge`` writes
the dataset (README, "Large jobs on Kubernetes").
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from apt_data.clean import cleaner
from apt_data.dedup import NearDuplicateIndex, digest, shingles
from apt_data.encoding import detect
from apt_data.filters import TokenDensity, quality_check
from apt_data.ingest import ReadOptions, Record, read_records
from apt_data.spec import ProcessSpec

SPLITTABLE = {".jsonl", ".ndjson"}
TABLES = {".csv", ".tsv"}
SCAN_BYTES = 1 << 20
LINE_SAFE = {"utf-8", "utf-8-sig", "ascii"}
BATCH = 256
EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 200
SUMMARY = "summary.json"


@dataclass(frozen=True)
class Piece:
    """A file, or the byte range ``start``..``end`` of one (``first_line`` is the line at ``start``)."""

    path: str
    start: int = 0
    end: int = -1
    first_line: int = 1
    first_row: int = 0      # csv/tsv: data rows before ``start``
    header_end: int = 0     # csv/tsv: the end of the header record


@dataclass(frozen=True)
class ShardJob:
    """Everything one worker needs (picklable: it crosses into a worker process)."""

    spec: ProcessSpec
    piece: Piece
    out: str
    max_file_bytes: int
    tokenizer_file: str = ""


def plan(files: list[Path], shard_bytes: int) -> list[Piece]:
    """The job's pieces, in input order."""
    pieces: list[Piece] = []
    for path in files:
        size = path.stat().st_size
        suffix = path.suffix.lower()
        if suffix in SPLITTABLE | TABLES and size > shard_bytes and detect(path) in LINE_SAFE:
            pieces += _ranges(path, size, shard_bytes) if suffix in SPLITTABLE else _table_ranges(path, shard_bytes)
        else:
            pieces.append(Piece(str(path)))
    return pieces


def _ranges(path: Path, size: int, shard_bytes: int) -> list[Piece]:
    """Byte ranges of about ``shard_bytes`` that each end just after a newline (or at the end)."""
    pieces, start, line = [], 0, 1
    with open(path, "rb") as f:
        while start < size:
            f.seek(min(size, start + shard_bytes))
            f.readline()
            end = min(size, f.tell())
            f.seek(start)
            newlines, left = 0, end - start
            while left:
                block = f.read(min(left, 1 << 20))
                newlines += block.count(b"\n")
                left -= len(block)
            pieces.append(Piece(str(path), start, end, line))
            start, line = end, line + newlines
    return pieces


def record_ends(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(offsets just after each newline that ends a csv record, whether that record is a blank
    line): a newline ends a record when an even number of ``"`` precede it (RFC 4180 quoting,
    where a quote inside a field is doubled)."""
    ends, blank, quotes, offset, last = [], [], 0, 0, -2
    with open(path, "rb") as f:
        while block := f.read(SCAN_BYTES):
            data = np.frombuffer(block, dtype=np.uint8)
            parity = np.bitwise_xor.accumulate((data == ord('"')).view(np.uint8)) ^ quotes  # 1 byte a byte
            at = np.flatnonzero((data == ord("\n")) & (parity == 0)) + offset
            previous = np.concatenate([[last], at[:-1]])
            ends.append(at + 1)
            blank.append(at - previous == 1)
            quotes, offset = int(parity[-1]), offset + len(block)
            last = int(at[-1]) if len(at) else last
    return np.concatenate(ends) if ends else np.zeros(0, np.int64), np.concatenate(blank) if blank else np.zeros(0, bool)


def _table_ranges(path: Path, shard_bytes: int) -> list[Piece]:
    """Byte ranges of a csv/tsv file that end at a record end, each with the data rows before it
    and the line it starts on, read after the header record."""
    ends, blank = record_ends(path)
    size = path.stat().st_size
    if len(ends) < 2:
        return [Piece(str(path))]
    header_end = int(ends[0])
    rows_before = np.cumsum(~blank) - 1            # data rows up to each record end (the header is not one)
    cuts = np.unique(np.searchsorted(ends, np.arange(header_end + shard_bytes, size, shard_bytes)))
    cuts = [int(c) for c in cuts if c < len(ends) and ends[c] < size]
    pieces, start, row, line = [], header_end, 0, 2
    newlines = _newlines_before(path, [int(ends[c]) for c in cuts])
    for cut, lines in zip(cuts, newlines):
        end = int(ends[cut])
        pieces.append(Piece(str(path), start, end, line, row, header_end))
        start, row, line = end, int(rows_before[cut]), lines + 1
    pieces.append(Piece(str(path), start, size, line, row, header_end))
    return pieces


def _newlines_before(path: Path, offsets: list[int]) -> list[int]:
    counts, total, position = [], 0, 0
    with open(path, "rb") as f:
        for target in offsets:
            while position < target:
                block = f.read(min(SCAN_BYTES, target - position))
                total += block.count(b"\n")
                position += len(block)
            counts.append(total)
    return counts


@dataclass
class ShardOutput:
    """What one shard accumulates while it reads."""

    read: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=lambda: defaultdict(list))
    refs: list = field(default_factory=list)          # [doc, id or None, augmented_from or None]
    keys: list = field(default_factory=list)          # band-hash arrays, a batch each
    digests: list = field(default_factory=list)
    documents: int = 0


def run_shard(job: ShardJob, checkpoint: Callable[[], None] | None = None) -> dict:
    """Read, clean and filter one piece, and hash its documents, into ``job.out``; its summary."""
    spec, piece, out = job.spec, job.piece, Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY).unlink(missing_ok=True)
    clean = cleaner(spec.cleaning)
    density = TokenDensity.of_file(job.tokenizer_file) if job.tokenizer_file else None
    index = NearDuplicateIndex(spec.threshold, spec.num_perm, seed=1, text_of=(lambda _: "") if spec.confirm else None) \
        if spec.needs_families else None
    options = ReadOptions(spec.text_field, spec.html_extractor, whole_files=spec.cleaning == "code",
                          max_file_bytes=job.max_file_bytes, start=piece.start, end=piece.end,
                          first_line=piece.first_line, first_row=piece.first_row, header_end=piece.header_end)
    encoding, records = read_records(Path(piece.path), options)
    state, batch = ShardOutput(), []
    with open(out / "docs.jsonl", "w", encoding="utf-8") as docs, \
            open(out / "rejected.jsonl", "w", encoding="utf-8") as rejected:
        for record in records:
            kept = _take(record, clean, density, spec, state, rejected)
            if kept is not None:
                batch.append(kept)
            if len(batch) >= BATCH:
                _flush(batch, docs, index, spec, state)
                batch = []
                if checkpoint:
                    checkpoint()
        _flush(batch, docs, index, spec, state)
    return _finish(out, index, spec, state, {Path(piece.path).name: encoding})


def _take(record: Record, clean, density, spec: ProcessSpec, state: ShardOutput, rejected) -> Record | None:
    """The cleaned record, or None when a filter dropped it (counted and written to rejected)."""
    state.read += 1
    record = Record(clean(record.text), record.source, record.where, record.id, record.augmented_from)
    verdict = ("empty_after_cleaning", 0.0) if not record.text.strip() else (
        quality_check(record.text, spec.cleaning, density) if spec.quality_filters else None)
    if verdict is None:
        return record
    reason, score = verdict
    state.dropped[reason] += 1
    if len(state.examples[reason]) < EXAMPLES_PER_REASON:
        state.examples[reason].append({"source": record.source, "where": record.where, "score": score,
                                       "text": record.text[:EXAMPLE_CHARS]})
    rejected.write(json.dumps({"reason": reason, "score": score, "source": record.source, "where": record.where,
                               "text": record.text}, ensure_ascii=False) + "\n")
    return None


def _flush(batch: list[Record], docs, index: NearDuplicateIndex | None, spec: ProcessSpec, state: ShardOutput) -> None:
    if not batch:
        return
    for record in batch:
        docs.write(json.dumps({"text": record.text, "source": record.source, "where": record.where},
                              ensure_ascii=False) + "\n")
        if record.id is not None or record.augmented_from is not None:
            state.refs.append([state.documents, record.id, record.augmented_from])
        state.documents += 1
    if index is not None:
        state.keys.append(index.keys([shingles(r.text) for r in batch]))
    if spec.dedup:
        state.digests.append(np.frombuffer(b"".join(digest(r.text) for r in batch), dtype=np.uint8).reshape(-1, 16))


def _finish(out: Path, index, spec: ProcessSpec, state: ShardOutput, encodings: dict) -> dict:
    if index is not None:
        keys = np.concatenate(state.keys) if state.keys else np.zeros((0, index.bands), dtype=np.uint64)
        np.save(out / "keys.npy", keys)
    if spec.dedup:
        np.save(out / "digests.npy", np.concatenate(state.digests) if state.digests else np.zeros((0, 16), np.uint8))
    summary = {"read": state.read, "documents": state.documents, "dropped": dict(state.dropped),
               "examples": dict(state.examples), "encodings": encodings, "refs": state.refs}
    tmp = out / (SUMMARY + ".tmp")
    tmp.write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, out / SUMMARY)
    return summary


def shard_folder(work: Path, number: int) -> Path:
    return work / f"{number:05d}"


def plan_record(spec: ProcessSpec, pieces: list[Piece]) -> dict:
    """What a shard folder was made for: merge refuses shards of another plan or request."""
    return {"spec": spec.lineage(), "pieces": [asdict(p) for p in pieces]}


def main(argv: list[str] | None = None) -> int:
    from apt_data import cluster

    parser = argparse.ArgumentParser(prog="python -m apt_data.shard", description=__doc__.split("\n\n")[0])
    cluster.add_arguments(parser)
    parser.add_argument("--index", type=int, default=None,
                        help="this pod's index (default: the JOB_COMPLETION_INDEX variable Kubernetes sets)")
    parser.add_argument("--of", type=int, required=True, help="the number of pods (the Job's completions)")
    args = parser.parse_args(argv)
    return cluster.run_cli(lambda: cluster.run_index(args))


if __name__ == "__main__":
    raise SystemExit(main())
