"""Training text -> fixed-length token blocks for the student (and the teacher when its
tokenizer differs), with a held-out validation split and a deterministic, resumable order.

With one tokenizer both models read the same ids. With two, every student block is cut
back to its characters and re-tokenized for the teacher, and ``align`` maps each student
position to the teacher token that covers the student token's last character, so
hidden states can be compared position by position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from apt_model.corpus import load_corpus
from apt_model.modeling.heldout import held_out
from apt_model.store import Store

VAL_FRACTION = 0.1
MAX_VAL_BLOCKS = 64


def read_texts(store: Store, dataset: str, corpus_paths: tuple[str, ...]) -> list[str]:
    """Documents from a store dataset and/or text files (.txt/.md, or .jsonl with "text")."""
    return load_corpus(list(corpus_paths), store, dataset).documents


@dataclass
class Batch:
    input_ids: torch.Tensor                 # (B, S) student ids; labels are the same ids, shifted in the loss
    teacher_ids: torch.Tensor               # (B, St) what the teacher reads (== input_ids with one tokenizer)
    teacher_mask: torch.Tensor              # (B, St) bool, real teacher tokens
    align: torch.Tensor | None              # (B, S) teacher position for each student position; None = identity

    @property
    def mask(self) -> torch.Tensor:          # every student position is real (packed blocks, no padding)
        return torch.ones_like(self.input_ids, dtype=torch.bool)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, rows: slice) -> "Batch":
        """Some rows of the batch (a rank's share of the global batch)."""
        return Batch(self.input_ids[rows], self.teacher_ids[rows], self.teacher_mask[rows],
                     None if self.align is None else self.align[rows])

    def to(self, device: str) -> "Batch":
        return Batch(self.input_ids.to(device), self.teacher_ids.to(device), self.teacher_mask.to(device),
                     None if self.align is None else self.align.to(device))


class Corpus:
    """Packed blocks of ``seq_len`` student tokens; the last ~10% held out for validation."""

    def __init__(self, texts: list[str], student_tok, teacher_tok, *, seq_len: int, batch_size: int,
                 same_tokenizer: bool, teacher_max_positions: int, seed: int):
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.teacher_tok = None if same_tokenizer else teacher_tok
        self.teacher_max = teacher_max_positions
        self.text = "\n\n".join(texts)
        enc = student_tok(self.text, add_special_tokens=False, return_offsets_mapping=not same_tokenizer,
                          verbose=False)
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        n_blocks = len(ids) // seq_len
        n_val = held_out(n_blocks, VAL_FRACTION, min_held=1, min_train=1, max_held=MAX_VAL_BLOCKS,
                         unit=f"blocks of seq_len={seq_len}", hint="give more text or a smaller --seq-len")
        self.blocks = ids[: n_blocks * seq_len].reshape(n_blocks, seq_len)
        self.offsets = (np.asarray(enc["offset_mapping"], dtype=np.int64)[: n_blocks * seq_len]
                        .reshape(n_blocks, seq_len, 2) if not same_tokenizer else None)
        self.train_index = np.arange(n_blocks - n_val)
        self.val_index = np.arange(n_blocks - n_val, n_blocks)

    @property
    def tokens(self) -> int:
        return int(self.blocks.size)

    def train_batch(self, step: int) -> Batch:
        """The batch of optimiser step ``step``: a fresh seeded permutation every epoch, so a
        resumed run reads exactly the blocks the interrupted one would have."""
        n = len(self.train_index)
        rows = []
        for p in range(step * self.batch_size, (step + 1) * self.batch_size):
            epoch, i = divmod(p, n)
            perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            rows.append(self.train_index[perm[i]])
        return self._batch(rows)

    def val_batches(self) -> list[Batch]:
        idx = self.val_index
        return [self._batch(idx[i:i + self.batch_size]) for i in range(0, len(idx), self.batch_size)]

    def _batch(self, rows) -> Batch:
        ids = torch.from_numpy(self.blocks[list(rows)])
        if self.teacher_tok is None:
            return Batch(ids, ids, torch.ones_like(ids, dtype=torch.bool), None)
        t_ids, aligns = [], []
        for r in rows:
            offs = self.offsets[r]
            start, end = int(offs[0, 0]), int(offs[:, 1].max())
            enc = self.teacher_tok(self.text[start:end], add_special_tokens=False, return_offsets_mapping=True,
                                   truncation=True, max_length=self.teacher_max, verbose=False)
            t_ends = np.asarray([e for _, e in enc["offset_mapping"]], dtype=np.int64)
            # first teacher token whose span reaches the student token's last character
            a = np.searchsorted(t_ends, offs[:, 1] - start, side="left").clip(0, max(len(t_ends) - 1, 0))
            t_ids.append(enc["input_ids"])
            aligns.append(a)
        width = max(len(t) for t in t_ids)
        pad = self.teacher_tok.pad_token_id or 0
        teacher_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        teacher_mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, t in enumerate(t_ids):
            teacher_ids[i, : len(t)] = torch.tensor(t, dtype=torch.long)
            teacher_mask[i, : len(t)] = True
        return Batch(ids, teacher_ids, teacher_mask, torch.from_numpy(np.stack(aligns)))
