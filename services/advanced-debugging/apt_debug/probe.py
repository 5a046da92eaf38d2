"""What the model probes share: the store model loaded as a private copy, the probe text as
token blocks, the batch of a step as a function of (seed, step), the block a parameter
belongs to, and the store dataset a report is written into."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from apt_model import errors
from apt_model.corpus import load_corpus
from apt_model.modeling.io import load_model, load_tokenizer
from apt_model.store import Store


@dataclass(frozen=True)
class ProbeSpec:
    """A model probe, as the servicer checked it."""

    model: str
    output_name: str
    batches: int = 3
    seq_len: int = 64
    batch_size: int = 4
    seed: int = 0
    dataset: str = ""
    data_paths: tuple[str, ...] = ()  # resolved by app.paths
    learning_rate: float = 1e-3
    device: str = "cpu"
    overwrite: bool = False


class TokenBlocks:
    """The probe text as (n, seq_len) blocks of token ids; batch of step s = f(seed, s)."""

    def __init__(self, texts: list[str], tokenizer, seq_len: int, batch_size: int, seed: int):
        eos = tokenizer.eos_token or ""
        ids = torch.tensor(tokenizer(eos.join(texts))["input_ids"], dtype=torch.long)
        if len(ids) < seq_len:
            raise errors.FailedPrecondition(
                f"The probe text holds {len(ids)} tokens, fewer than --seq-len {seq_len}; give more text "
                "or a shorter --seq-len.")
        self.blocks = ids[: len(ids) // seq_len * seq_len].view(-1, seq_len)
        self.batch_size, self.seed = batch_size, seed

    def batch(self, step: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return self.blocks[torch.randint(len(self.blocks), (self.batch_size,), generator=gen)]


def load_probe(store: Store, spec: ProbeSpec) -> tuple[torch.nn.Module, TokenBlocks]:
    """A fresh copy of the store model (the stored one is never written) and its probe text."""
    entry = store.model(spec.model)
    model = load_model(entry.path, spec.device)
    tokenizer = load_tokenizer(entry.path)
    texts = load_corpus(list(spec.data_paths), store, spec.dataset).documents
    if not texts:
        raise errors.FailedPrecondition("The probe text is empty; give --data-path or --dataset with text in it.")
    return model, TokenBlocks(texts, tokenizer, spec.seq_len, spec.batch_size, spec.seed)


def block_list(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList | None]:
    """The transformer blocks (the longest ModuleList) and their qualified name."""
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        return "", None
    return max(lists, key=lambda nm: len(nm[1]))


def group_of(param_name: str, blocks_prefix: str) -> tuple[str, str]:
    """(block, parameter group) of a parameter: ("block 3", "mlp") inside the blocks, else its
    top-level module ("embed_tokens", "norm", "lm_head") for both."""
    if blocks_prefix and param_name.startswith(blocks_prefix + "."):
        index, rest = param_name[len(blocks_prefix) + 1:].split(".", 1)
        return f"block {index}", rest.split(".", 1)[0] if "." in rest else rest
    parts = param_name.split(".")
    top = parts[-2] if len(parts) >= 2 else parts[0]
    return top, top


def finite_only(data: Any) -> Any:
    """``data`` without its NaN/Inf floats, for a job result: the result messages leave such
    fields unset (proto JSON has no bare NaN), while the report's JSON file keeps them."""
    if isinstance(data, dict):
        return {k: finite_only(v) for k, v in data.items() if not (isinstance(v, float) and not math.isfinite(v))}
    if isinstance(data, list):
        return [finite_only(v) for v in data]
    return data


def write_report(store: Store, name: str, *, operation: str, parent: str, parameters: dict[str, Any],
                 overwrite: bool, files: Callable[[Path], None]) -> None:
    """A store dataset entry holding what ``files(folder)`` writes, atomically, with lineage."""
    with store.create("datasets", name, operation=operation, parent=parent, parameters=parameters,
                      overwrite=overwrite) as folder:
        files(folder)


def dump_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, allow_nan=True), encoding="utf-8")
