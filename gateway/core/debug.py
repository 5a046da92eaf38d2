"""``debug`` (basic): is a stored model whole, consistent and trainable? Each problem has a fix hint.

Checks run in order and later ones that depend on an earlier failure are skipped with a
note, so a corrupt file gives one clear finding instead of a cascade of tracebacks.
"""

from __future__ import annotations

import math
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from apt_model import errors
from apt_model.store import Store
from apt_model.corpus import load_corpus
from gateway.core.inspect import safetensors_header, tokenizer_summary, weight_files


@dataclass(frozen=True)
class Finding:
    check: str  # e.g. "weights.finite"
    severity: str  # ok, warning, error
    message: str
    hint: str = ""


class Report:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def ok(self, check: str, message: str) -> None:
        self.findings.append(Finding(check, "ok", message))

    def warn(self, check: str, message: str, hint: str) -> None:
        self.findings.append(Finding(check, "warning", message, hint))

    def error(self, check: str, message: str, hint: str) -> None:
        self.findings.append(Finding(check, "error", message, hint))

    @property
    def healthy(self) -> bool:
        return all(f.severity != "error" for f in self.findings)


def _files(store: Store, name: str, r: Report) -> bool:
    problems = store.verify("models", name)
    if problems:
        r.error("files.checksums", "; ".join(problems),
                "The files changed since the model was stored: re-upload it ('apt-model model push') or retrain.")
    else:
        r.ok("files.checksums", "every file matches the sha256 recorded in apt.json")
    folder = store.model(name).path
    missing = [f for f in ("config.json", "tokenizer.json") if not (folder / f).is_file()]
    if missing:
        r.error("files.present", f"missing: {', '.join(missing)}",
                "A Hugging Face model folder needs config.json, tokenizer files and *.safetensors weights.")
        return False
    try:
        for path in weight_files(folder):
            safetensors_header(path)
    except errors.FailedPrecondition as exc:
        r.error("files.weights_readable", exc.message,
                "The weights file is damaged or truncated: re-upload the model or retrain it.")
        return False
    r.ok("files.present", "config, tokenizer and weights present; safetensors headers readable")
    return True


def _load(folder: Path, r: Report):
    from apt_model.modeling.io import load_model, load_tokenizer

    try:
        model = load_model(folder)
    except errors.FailedPrecondition as exc:
        r.error("model.loadable", exc.message,
                "The weights do not match the config (shapes or names): check config.json against the weights.")
        return None, None
    try:
        tokenizer = load_tokenizer(folder)
    except errors.FailedPrecondition as exc:
        r.error("tokenizer.loadable", exc.message, "Save the tokenizer with save_pretrained into the folder.")
        return model, None
    r.ok("model.loadable", f"{type(model).__name__} and its tokenizer load")
    return model, tokenizer


def _consistency(folder: Path, model, tokenizer, r: Report) -> None:
    emb = model.get_input_embeddings().num_embeddings
    if tokenizer is not None:
        n = len(tokenizer)
        if n > emb:
            r.error("tokenizer.vocab_fits", f"the tokenizer has {n} tokens but the embedding only {emb} rows",
                    "Resize the embeddings (model.resize_token_embeddings(len(tokenizer))) or use the right tokenizer.")
        else:
            r.ok("tokenizer.vocab_fits", f"{n} tokenizer tokens fit the {emb}-row embedding")
        summary = tokenizer_summary(folder)
        for role in ("eos",):
            token_id = getattr(tokenizer, f"{role}_token_id")
            if token_id is None:
                r.warn(f"tokenizer.{role}", f"no {role} token", "Set eos_token so generation can stop.")
            elif token_id >= emb:
                r.error(f"tokenizer.{role}", f"{role} id {token_id} is outside the embedding",
                        "Fix the special tokens in tokenizer_config.json.")
        cfg_eos = getattr(model.config, "eos_token_id", None)
        if cfg_eos is not None and tokenizer.eos_token_id is not None and \
                tokenizer.eos_token_id not in (cfg_eos if isinstance(cfg_eos, list) else [cfg_eos]):
            r.warn("config.eos_matches", f"config eos_token_id {cfg_eos} != tokenizer eos {tokenizer.eos_token_id}",
                   "Set eos_token_id in config.json and generation_config.json to the tokenizer's eos id.")
        if not summary["has_chat_template"]:
            r.warn("tokenizer.chat_template", "no chat template", "Add a chat template for chat-style prompts.")
    if getattr(model.config, "vocab_size", emb) != emb:
        r.error("config.vocab_size", f"config vocab_size {model.config.vocab_size} != embedding rows {emb}",
                "Set vocab_size in config.json to the embedding size.")


def _finite(model, r: Report) -> None:
    import torch

    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        r.error("weights.finite", f"NaN/Inf in {len(bad)} tensor(s): {', '.join(bad[:5])}",
                "Training diverged: retrain from an earlier checkpoint with a lower learning rate.")
    else:
        r.ok("weights.finite", "no NaN or Inf in any weight")


def _step(model, tokenizer, r: Report) -> None:
    import torch

    vocab = model.get_input_embeddings().num_embeddings
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (2, 16), generator=gen)
    if tokenizer is not None:
        ids = tokenizer("Hello world, 你好世界! def f(x): return x", return_tensors="pt").input_ids[:, :16]
    model.train()
    out = model(ids, labels=ids)
    loss = float(out.loss.detach())
    if not math.isfinite(loss):
        r.error("train.forward", f"the loss of one forward pass is {loss}",
                "Check the weights for NaN/Inf and the config (norm eps, dtype).")
        return
    out.loss.backward()
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    if bad:
        r.error("train.backward", f"non-finite gradients in {', '.join(bad[:5])}",
                "Lower the learning rate or check for overflow in fp16.")
    elif missing:
        r.warn("train.backward", f"{len(missing)} parameter(s) get no gradient: {', '.join(missing[:5])}",
               "Unused parameters waste memory; check the config matches the architecture.")
    else:
        r.ok("train.step", f"forward + backward on a tiny batch: loss {loss:.3f}, all gradients finite")


def _environment(r: Report) -> None:
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if cuda else ""
    r.ok("environment", f"python {platform.python_version()}, torch {torch.__version__}, transformers "
         f"{transformers.__version__}, CUDA {'available' if cuda else 'not available'}{gpu}, "
         f"{torch.get_num_threads()} CPU threads")


def debug_model(store: Store, name: str, data_path: str = "", data_dataset: str = "") -> dict[str, Any]:
    """Checks of a store model; ``data_path`` (resolved by the caller inside what callers may
    name) or ``data_dataset`` (a store dataset) is checked for readability too."""
    r = Report()
    folder = store.model(name).path
    _environment(r)
    if _files(store, name, r):
        model, tokenizer = _load(folder, r)
        if model is not None:
            _consistency(folder, model, tokenizer, r)
            _finite(model, r)
            _step(model, tokenizer, r)
    else:
        r.warn("model.loadable", "skipped: the files are not whole", "Fix the file findings first.")
    if data_dataset:
        store.dataset(data_dataset)  # an unknown dataset is the caller's mistake, not a finding
    if data_path or data_dataset:
        what = data_path or f"dataset {data_dataset}"
        try:
            docs = load_corpus([data_path] if data_path else [], store, data_dataset).documents
            r.ok("data.readable", f"{what}: {len(docs)} document(s), {sum(map(len, docs))} characters")
        except errors.AptError as exc:
            r.error("data.readable", exc.message, "Fix the data file as the message says.")
    return {"name": name, "findings": [asdict(f) for f in r.findings], "healthy": r.healthy}
