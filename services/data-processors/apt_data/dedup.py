"""Exact (xxhash) and near-duplicate (MinHash-LSH) detection, streaming, with families kept.

Shingles follow the script (datatrove#72/#225/#234): word n-grams for Latin text, character
n-grams for CJK text (which has no spaces to split on), and one whole-text shingle for a text
shorter than one n-gram, so two distinct short texts never share a signature.

MinHash is computed for a batch of documents at once: every shingle of the batch goes through
every permutation as one numpy array operation (multiply-shift hashing in wrapping uint64
arithmetic), and ``np.minimum.reduceat`` takes each document's minimum. The index holds only
band hashes (and a family id per document); a candidate pair is confirmed by exact Jaccard of
the two shingle sets unless the caller opts out.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import xxhash

from apt_data.filters import is_chinese

WORD_NGRAM = 3
CJK_NGRAM = 3
SHINGLE_BUDGET = 1 << 15     # shingles hashed per numpy operation: (num_perm, budget) uint64 ~ 32 MiB at 128
BUCKET_CAP = 8               # documents kept per band bucket to compare a newcomer with
CONFIRM_CACHE = 4096
MIN_RECALL_AT_THRESHOLD = 0.99
_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53], dtype=np.uint64)


def shingles(text: str) -> np.ndarray:
    """The document's shingle hashes (uint64, unique, sorted)."""
    if is_chinese(text):
        chars = np.frombuffer(_SPACE.sub("", text).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        units, n = chars, CJK_NGRAM
    else:
        words = _WORD.findall(text.lower())
        units = np.fromiter((xxhash.xxh3_64_intdigest(w) for w in words), dtype=np.uint64, count=len(words))
        n = WORD_NGRAM
    if len(units) < n:
        return np.array([xxhash.xxh3_64_intdigest(_SPACE.sub(" ", text.strip().lower()))], dtype=np.uint64)
    grams = np.zeros(len(units) - n + 1, dtype=np.uint64)
    for k in range(n):  # wrapping arithmetic: an order-dependent mix of the n units
        grams = (grams ^ units[k:len(units) - n + 1 + k]) * _MIX[k]
    return np.unique(grams)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def _candidate_probability(s: np.ndarray | float, bands: int, rows: int):
    """The LSH S-curve: the chance two documents of Jaccard ``s`` share at least one band."""
    return 1 - (1 - s ** rows) ** bands


def choose_bands(threshold: float, num_perm: int, confirm: bool) -> tuple[int, int]:
    """(bands, rows) for the threshold (Leskovec et al., Mining of Massive Datasets, ch. 3).

    With exact-Jaccard confirmation a false positive costs one comparison and a false negative a
    missed duplicate: take the fewest candidates below the threshold among the settings that
    find a pair at the threshold with probability >= MIN_RECALL_AT_THRESHOLD. Without it,
    balance the areas of false positives and false negatives (datasketch's choice).
    """
    s_lo, s_hi = np.linspace(0, threshold, 200), np.linspace(threshold, 1, 200)
    best, best_cost = (1, num_perm), np.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = np.trapezoid(_candidate_probability(s_lo, b, r), s_lo)
            fn = np.trapezoid(1 - _candidate_probability(s_hi, b, r), s_hi)
            if confirm:
                cost = fp if _candidate_probability(threshold, b, r) >= MIN_RECALL_AT_THRESHOLD else np.inf
            else:
                cost = fp + fn
            if cost < best_cost:
                best, best_cost = (b, r), cost
    return best


class MinHasher:
    """Signatures of documents, ``num_perm`` uint32 values each, a batch at a time."""

    def __init__(self, num_perm: int, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.a = (rng.integers(0, 2**63, num_perm, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)  # odd
        self.b = rng.integers(0, 2**63, num_perm, dtype=np.uint64)

    def signatures(self, shingle_sets: list[np.ndarray]) -> np.ndarray:
        """(D, num_perm) uint32: per document, the minimum of each permuted shingle hash."""
        out = np.empty((len(shingle_sets), self.num_perm), dtype=np.uint32)
        start = 0
        while start < len(shingle_sets):
            stop, total = start, 0
            while stop < len(shingle_sets) and (stop == start or total + len(shingle_sets[stop]) <= SHINGLE_BUDGET):
                total += len(shingle_sets[stop])
                stop += 1
            out[start:stop] = self._block(shingle_sets[start:stop])
            start = stop
        return out

    def _block(self, sets: list[np.ndarray]) -> np.ndarray:
        flat = np.concatenate(sets)                                                  # (S,)
        hashed = (self.a[:, None] * flat[None, :] + self.b[:, None]) >> np.uint64(32)  # (P, S) multiply-shift
        starts = np.cumsum([0] + [len(s) for s in sets[:-1]])
        return np.minimum.reduceat(hashed, starts, axis=1).T.astype(np.uint32)         # (D, P)


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(D, bands) uint64: each band's ``rows`` values mixed into one 64-bit key."""
    sig = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
    keys = np.zeros((len(signatures), bands), dtype=np.uint64)
    for j in range(rows):
        keys = (keys ^ sig[:, :, j]) * _MIX[j % len(_MIX)]
    return keys


@dataclass
class Families:
    """Union-find over document ids: a near-duplicate family is one set."""

    parent: list[int] = field(default_factory=list)

    def add(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)  # the earliest document is the family's root


class NearDuplicateIndex:
    """MinHash-LSH over a stream of documents; ``add`` returns, per new document, the earlier
    document it was found to duplicate (or -1) and the exact Jaccard when confirmed."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, *, text_of: Callable[[int], str] | None = None,
                 seed: int = 1):
        self.threshold = threshold
        self.hasher = MinHasher(num_perm, seed)
        confirm = text_of is not None
        self.bands, self.rows = choose_bands(threshold, num_perm, confirm)
        self.buckets: list[dict[int, list[int]]] = [{} for _ in range(self.bands)]
        self.families = Families()
        self._shingles_of = functools.lru_cache(CONFIRM_CACHE)(lambda i: shingles(text_of(i))) if confirm else None
        self.comparisons = 0

    def add(self, texts: Iterable[str], shingle_sets: list[np.ndarray] | None = None) -> list[tuple[int, float]]:
        texts = list(texts)
        sets = shingle_sets if shingle_sets is not None else [shingles(t) for t in texts]
        keys = self.keys(sets)
        return [self.insert(self.families.add(), doc_keys, lambda s=sets[k]: s) for k, doc_keys in enumerate(keys)]

    def keys(self, shingle_sets: list[np.ndarray]) -> np.ndarray:
        """(D, bands) band hashes of the documents: what a shard computes and the index holds."""
        return band_hashes(self.hasher.signatures(shingle_sets), self.bands, self.rows)

    def insert(self, doc: int, keys: np.ndarray, own_of: Callable[[], np.ndarray]) -> tuple[int, float]:
        """Put document ``doc`` (already in ``families``) into its band buckets; the first earlier
        document of another family it duplicates (or -1) and the Jaccard. ``own_of`` gives its
        shingles, asked only when a candidate is to be confirmed."""
        match, score, own = -1, 0.0, None
        for band, key in zip(self.buckets, keys.tolist()):
            members = band.setdefault(key, [])
            for other in members:
                if self.families.find(other) == self.families.find(doc):
                    continue
                if own is None and self._shingles_of is not None:
                    own = own_of()
                similarity = self._confirm(own, other)
                if similarity >= self.threshold:
                    self.families.union(doc, other)
                    if match < 0:
                        match, score = other, similarity
            if len(members) < BUCKET_CAP:
                members.append(doc)
        return match, score

    def _confirm(self, own: np.ndarray, other: int) -> float:
        if self._shingles_of is None:
            return 1.0  # unconfirmed: a shared band is taken as a duplicate
        self.comparisons += 1
        return jaccard(own, self._shingles_of(other))


def digest(text: str) -> bytes:
    """xxh3-128 of the text's UTF-8: the exact-duplicate key."""
    return xxhash.xxh3_128_digest(text.encode("utf-8"))


class ExactIndex:
    """xxh3-128 digests of the texts seen; 16 bytes a document."""

    def __init__(self):
        self.first: dict[bytes, int] = {}

    def seen(self, text: str, doc: int) -> int:
        """The earlier document with exactly this text, or -1 (and remember this one)."""
        return self.seen_digest(digest(text), doc)

    def seen_digest(self, key: bytes, doc: int) -> int:
        """``seen`` for a digest computed elsewhere (a shard)."""
        first = self.first.setdefault(key, doc)
        return -1 if first == doc else first
