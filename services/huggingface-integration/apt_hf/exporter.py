"""Export a store model as a plain Hugging Face folder, and push it to a hub."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from apt_model import errors
from apt_model.runtime.jobs import JobContext
from apt_model.store import META_FILE, Store, validate_name

from apt_hf import checkpoint as ckpt
from apt_hf.hubs import ModelHub, check_repo_id
from apt_hf.modelcard import render_model_card


@dataclass(frozen=True)
class ExportSpec:
    name: str
    output_dir: Path

    @classmethod
    def from_request(cls, req) -> "ExportSpec":
        name = validate_name(req.name.strip(), "model")
        if not req.output_dir.strip():
            raise errors.InvalidArgument("output_dir is required: an absolute folder path on the service's machine.")
        out = Path(req.output_dir).expanduser()
        if not out.is_absolute():
            raise errors.InvalidArgument(f"output_dir {req.output_dir!r} must be an absolute path.")
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise errors.AlreadyExists(f"{out} already exists and is not an empty folder; choose a new folder.")
        if not out.parent.is_dir():
            raise errors.NotFound(f"The parent folder {out.parent} does not exist.")
        return cls(name=name, output_dir=out)


@dataclass(frozen=True)
class PushSpec:
    name: str
    repo_id: str
    hub: str = "huggingface"
    private: bool = False
    commit_message: str = ""
    revision: str = "main"

    @classmethod
    def from_request(cls, req) -> "PushSpec":
        name = validate_name(req.name.strip(), "model")
        revision = req.revision.strip() or "main"
        if any(c in revision for c in " ~^:?*[\\") or revision.startswith(("-", "/")) or ".." in revision:
            raise errors.InvalidArgument(f"{revision!r} is not a valid branch name.")
        return cls(name=name, repo_id=check_repo_id(req.repo_id.strip()),
                   hub=(req.hub or "huggingface").strip().lower(), private=req.private,
                   commit_message=req.commit_message.strip() or f"Upload {name} from the APT platform",
                   revision=revision)


def write_hf_folder(store: Store, name: str, dest: Path, ctx: JobContext, share: float = 0.9) -> dict:
    """Copy a store model's HF files (not apt.json) into ``dest`` and add a model card.

    Progress runs from 0 to ``share`` of the job.
    """
    entry = store.model(name)
    config = ckpt.read_json(entry.path / "config.json", "model")
    ckpt.check_causal_lm(config, f"store model {name!r}")
    files = sorted(p for p in entry.path.rglob("*") if p.is_file() and p.name != META_FILE)
    total = sum(p.stat().st_size for p in files)
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        ctx.report(progress=share * done / max(total, 1), stage="export", bytes_done=done, bytes_total=total)

    for p in files:
        ctx.check_cancelled()
        target = dest / p.relative_to(entry.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        ckpt.copy_file(p, target, on_bytes)
    (dest / "README.md").write_text(render_model_card(store, entry, config), encoding="utf-8")
    return {"name": name, "files": len(files) + 1, "bytes": total}


def run_export(store: Store, spec: ExportSpec, ctx: JobContext) -> dict:
    """The job: build the folder beside the target, then rename it into place (all or nothing)."""
    store.model(spec.name)  # NotFound before touching the disk
    tmp = spec.output_dir.with_name(f".{spec.output_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        result = write_hf_folder(store, spec.name, tmp, ctx)
        if spec.output_dir.exists():
            spec.output_dir.rmdir()  # checked empty at the start; fails loudly if that changed
        os.rename(tmp, spec.output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**result, "output_dir": str(spec.output_dir)}


def run_push(store: Store, hub: ModelHub, spec: PushSpec, ctx: JobContext) -> dict:
    """The job: export to a scratch folder, then commit it to the hub repo."""
    started = time.monotonic()
    store.model(spec.name)
    scratch = store.root / ".scratch"
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=f"push-{spec.name}-") as tmp:
        write_hf_folder(store, spec.name, Path(tmp), ctx, share=0.1)

        def progress(done: int, total: int | None) -> None:
            ctx.check_cancelled()
            ctx.report(progress=0.1 + 0.9 * done / max(total or 1, 1), stage="upload",
                       message=f"{done / 1e6:.1f} of {(total or 0) / 1e6:.1f} MB",
                       bytes_done=done, bytes_total=float(total or 0))

        pushed = hub.upload(Path(tmp), spec.repo_id, private=spec.private, commit_message=spec.commit_message,
                            revision=spec.revision, progress=progress)
    record = {"hub": pushed.hub, "repo_id": pushed.repo_id, "revision": pushed.revision,
              "commit_sha": pushed.commit_sha, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    pushes = [*store.model(spec.name).meta.get("pushes", []), record]
    store.update_meta("models", spec.name, pushes=pushes)
    return {"name": spec.name, **record, "commit_url": pushed.commit_url, "files": pushed.files,
            "bytes": pushed.bytes, "private": spec.private, "seconds": round(time.monotonic() - started, 3)}
