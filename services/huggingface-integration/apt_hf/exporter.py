"""Export a store model as a plain Hugging Face folder, and push it to a hub."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from apt_model import errors
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store, validate_name
from apt_model.trust import PathPolicy

from apt_hf import checkpoint as ckpt
from apt_hf.hubs import ModelHub, check_repo_id
from apt_hf.modelcard import render_model_card


@dataclass(frozen=True)
class ExportSpec:
    name: str
    output_dir: Path  # APT_HOME/exports/<folder>: the one place exports are written

    @classmethod
    def from_request(cls, req, paths: PathPolicy) -> "ExportSpec":
        name = validate_name(req.name.strip(), "model")
        raw = req.output_dir.strip() or f"{name}-hf"
        exports = paths.export_dir("x").parent
        if os.path.isabs(raw):
            # an absolute path is accepted only where a name would have put it
            real = Path(os.path.realpath(raw))
            if real.parent != Path(os.path.realpath(exports)):
                raise errors.PermissionDenied(
                    f"output_dir {raw!r} is outside APT_HOME/exports: exports are written only there. "
                    f"Give a folder name (e.g. {name}-hf); the export lands in APT_HOME/exports/<name>.")
            raw = real.name
        out = paths.export_dir(raw)
        if out.exists() or out.is_symlink():
            raise errors.AlreadyExists(
                f"The export folder {raw!r} already exists in APT_HOME/exports; choose another name "
                f"(exports never replace anything).")
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
    """Copy a store model's recorded files (not apt.json) into ``dest`` and add a model card.

    Progress runs from 0 to ``share`` of the job.
    """
    entry = store.model(name)
    config = ckpt.read_json(entry.path / "config.json", "model")
    ckpt.check_causal_lm(config, f"store model {name!r}")
    # The files apt.json records, not whatever the folder holds: right after an import the
    # settle thread rewrites apt.json through a temporary file beside it.
    files = [entry.path / rel for rel in sorted(entry.meta["files"])]
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
    """The job: claim the export folder (exclusive mkdir), build it beside, rename it in.

    The empty folder made by the claim is the only thing the rename replaces, so an export
    never replaces anything it did not create; on failure the claim is removed again.
    """
    store.model(spec.name)  # NotFound before touching the disk
    spec.output_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        spec.output_dir.mkdir()
    except FileExistsError as exc:
        raise errors.AlreadyExists(
            f"The export folder {spec.output_dir.name!r} appeared meanwhile; choose another name.") from exc
    tmp = spec.output_dir.with_name(f".{spec.output_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
        result = write_hf_folder(store, spec.name, tmp, ctx)
        os.rename(tmp, spec.output_dir)  # onto our own empty claim
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            spec.output_dir.rmdir()
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
