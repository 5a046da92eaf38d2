"""Import a causal LM from a hub or a local Hugging Face folder into the model store.

The config is fetched and checked first, so a non-causal model is refused before any
weights are downloaded. Safetensors are copied as they are (the header is checked for
completeness); ``.bin`` checkpoints are loaded with transformers and re-saved as
safetensors. Everything is built inside ``Store.create``: a failed or cancelled import
leaves nothing in the store.

The copy is made inside the kernel and the entry settles in the background (sha256 of each
file recorded, files fsynced: ``apt_model.store``), so the model is usable as soon as its
bytes are in the page cache, as a plain ``save_pretrained`` is; readers that need the
checksums (backup, download, verify) wait the fraction of a second per GB that takes.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from apt_model import errors
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store, validate_name
from apt_model.trust import PathPolicy, check_contained

from apt_hf import checkpoint as ckpt
from apt_hf.hubs import ModelHub, Snapshot, check_repo_id


@dataclass(frozen=True)
class ImportSpec:
    source: str  # hub repo id ("org/name") or a local HF folder
    name: str  # store name
    hub: str = "huggingface"
    revision: str = "main"
    overwrite: bool = False

    @property
    def is_local(self) -> bool:
        # repo ids never start like a path, so there is no guessing from what exists on disk
        return self.source.startswith(("/", "./", "../", "~"))

    @classmethod
    def from_request(cls, req, paths: PathPolicy) -> "ImportSpec":
        source = req.source.strip()
        if not source:
            raise errors.InvalidArgument("source is required: a hub repo id ('org/name') or a local model folder.")
        spec = cls(source=source, name=validate_name(req.name.strip(), "model"),
                   hub=(req.hub or "huggingface").strip().lower(), revision=req.revision.strip() or "main",
                   overwrite=req.overwrite)
        if spec.is_local:
            folder = paths.resolve(source, "source folder")  # before any look at the disk
            if not folder.is_dir():
                raise errors.NotFound(f"The local folder {source!r} does not exist on the service's machine.")
            spec = dataclasses.replace(spec, source=str(folder))
        else:
            check_repo_id(source)
        return spec


class _Progress:
    """Byte progress over two phases: download (0..0.7) and copy into the store (0.7..1)."""

    def __init__(self, ctx: JobContext, share: tuple[float, float], stage: str):
        self.ctx, self.lo, self.hi, self.stage = ctx, share[0], share[1], stage
        self.done, self.total = 0, None
        self._last = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        now = time.monotonic()
        if now - self._last < 0.2 and (total is None or done < total):
            return  # keep the job's update rate sane for multi-GB files
        self._last = now
        self.ctx.check_cancelled()
        frac = (done / total) if total else 0.0
        self.ctx.report(progress=self.lo + (self.hi - self.lo) * frac, stage=self.stage,
                        message=f"{done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB" if total else ""),
                        bytes_done=done, bytes_total=float(total or 0))


def resolve_source(spec: ImportSpec, hub: ModelHub | None) -> Snapshot:
    """Find the source and check it is a causal LM, fetching only config and tokenizer files.

    Cheap enough to run inside the Start call, so an unknown repo, a missing token or a
    non-causal model is reported on that call rather than as a failed job.
    """
    if spec.is_local:
        folder = Path(spec.source)  # resolved inside the allowed folders by from_request
        ckpt.check_causal_lm(ckpt.read_json(folder / "config.json", "model"), str(folder))
        return Snapshot(hub="local", repo_id=str(folder), revision="", commit_sha="", folder=folder)
    assert hub is not None
    meta = hub.download(spec.source, spec.revision, ckpt.CONFIG_FILES + ckpt.TOKENIZER_FILES, lambda d, t: None)
    ckpt.check_causal_lm(ckpt.read_json(meta.folder / "config.json", "model"), f"{spec.source}@{spec.revision}")
    return meta


def fetch_weights(spec: ImportSpec, hub: ModelHub | None, meta: Snapshot, ctx: JobContext) -> Snapshot:
    """The complete checkpoint folder: safetensors when the repo has them, else .bin."""
    if meta.hub == "local":
        return meta
    assert hub is not None
    bar = _Progress(ctx, (0.05, 0.7), "download")
    # pin the commit resolved at Start, so a push to the branch meanwhile cannot mix revisions
    revision = meta.commit_sha or spec.revision
    snap = hub.download(spec.source, revision, ckpt.CONFIG_FILES + ckpt.TOKENIZER_FILES + ckpt.SAFETENSORS, bar)
    if not any(snap.folder.glob("*.safetensors")):
        snap = hub.download(spec.source, revision, ckpt.CONFIG_FILES + ckpt.TOKENIZER_FILES + ckpt.PYTORCH_BIN, bar)
    return Snapshot(hub=snap.hub, repo_id=spec.source, revision=spec.revision,
                    commit_sha=snap.commit_sha or meta.commit_sha, folder=snap.folder)


def stage_checkpoint(store: Store, src: Path, dst: Path, ctx: JobContext) -> dict:
    """Write ``src``'s model into ``dst`` as config + safetensors + tokenizer; returns facts about it."""
    config = ckpt.read_json(src / "config.json", "model")
    arch = ckpt.check_causal_lm(config, str(src))
    kind, weights = ckpt.weight_files(src)
    extra = [src / f for f in ckpt.CONFIG_FILES + ckpt.TOKENIZER_FILES if (src / f).is_file()]
    if not any(f.name in ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt") for f in extra):
        ctx.warn(f"{src} has no tokenizer files; the model was imported without a tokenizer.")
    if kind == "safetensors":
        files = weights + sorted(src.glob("*.safetensors.index.json")) + extra
    else:
        ctx.warn("The checkpoint has only PyTorch .bin weights; they were converted to safetensors.")
        files = extra
    total = sum(f.stat().st_size for f in files + (weights if kind == "bin" else []))
    bar = _Progress(ctx, (0.7, 0.95), "copy")
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        bar(done, total)

    for f in files:
        store.copy_in(dst, f, f.name, on_bytes)
    if kind == "bin":
        _convert_bin(src, dst, ctx)
    tensors, params = 0, 0
    for st in sorted(dst.glob("*.safetensors")):
        t, p = ckpt.safetensors_tensor_count(st)
        tensors, params = tensors + t, params + p
    return {"architecture": arch, "model_type": config.get("model_type", ""), "weights_format": kind,
            "tensors": tensors, "parameters": params}


def _convert_bin(src: Path, dst: Path, ctx: JobContext) -> None:
    """Load a .bin checkpoint with transformers (weights only, no pickled code) and save safetensors."""
    import torch
    from transformers import AutoModelForCausalLM

    from apt_model.modeling.io import building

    ctx.report(stage="convert", message="converting pytorch_model.bin to safetensors")
    try:
        with building():  # one load at a time in this process (apt_model.modeling.io._BUILDING)
            model = AutoModelForCausalLM.from_pretrained(str(src), dtype="auto", use_safetensors=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise errors.FailedPrecondition(f"The .bin checkpoint in {src} cannot be loaded: {str(exc)[:300]}") from exc
    with torch.no_grad():
        model.save_pretrained(str(dst), safe_serialization=True)


def check_target_free(store: Store, spec: ImportSpec) -> None:
    if not spec.overwrite and store.exists("models", spec.name):
        raise errors.AlreadyExists(f"Model {spec.name!r} already exists; pass overwrite or choose another name.")


def run_import(store: Store, hub: ModelHub | None, spec: ImportSpec, ctx: JobContext,
               meta: Snapshot | None = None) -> dict:
    """The job: download, check, copy into the store with lineage. Returns the job result."""
    started = time.monotonic()
    check_target_free(store, spec)
    ctx.report(progress=0.0, stage="resolve", message=f"resolving {spec.source}")
    snap = fetch_weights(spec, hub, meta or resolve_source(spec, hub), ctx)
    if spec.is_local:  # the caller named the folder; a link in it may not lead elsewhere
        check_contained(snap.folder, snap.folder.iterdir(), "source folder")
    ctx.check_cancelled()
    source = {"hub": snap.hub, "repo_id": snap.repo_id, "revision": snap.revision, "commit_sha": snap.commit_sha}
    with store.create("models", spec.name, operation="hf-import", overwrite=spec.overwrite,
                      parameters={"source": spec.source, "hub": snap.hub, "revision": spec.revision},
                      extra={"source": source}, settle="background") as tmp:
        facts = stage_checkpoint(store, snap.folder, tmp, ctx)
        ctx.check_cancelled()
        ctx.report(progress=0.95, stage="record", message="recording the model; its checksums follow in the background")
    entry = store.model(spec.name)
    return {"name": spec.name, **source, **facts, "bytes": entry.size_bytes,
            "seconds": round(time.monotonic() - started, 3)}
