"""The export job: GGUF -> Modelfile -> llama.cpp verification -> ``ollama create``.

Everything lands in ``APT_HOME/exports/<folder>/`` (``model.gguf`` + ``Modelfile``),
each file written under a temporary name and renamed into place, so a cancelled or
failed export never leaves a partial GGUF behind. A GGUF that fails verification is
discarded too, because a file that loads but mispredicts is worse than none.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from apt_model import errors
from apt_model.store import Store, fsync_dir, sha256_file, validate_name
from apt_model.trust import EndpointPolicy, same_endpoint

from apt_ollama import gguf_export, modelfile, ollama_client, verify
from apt_ollama.archs import read_hparams
from apt_ollama.checkpoint import read_json
from apt_ollama.vocab import read_vocab

GGUF_FILE = "model.gguf"
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ExportSpec:
    name: str  # store model
    output_dir: str  # folder name under the exports root
    outtype: str  # f32 | f16 | q8_0
    ollama_url: str = ""  # empty: leave a ready folder and print the command
    ollama_model: str = ""
    verify: bool = True
    system: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    num_ctx: int = 0

    @classmethod
    def from_request(cls, req, default_ollama_url: str = "",
                     endpoints: EndpointPolicy = EndpointPolicy()) -> "ExportSpec":
        """Validate an ExportRequest (raises InvalidArgument); fills the defaults.

        An ``ollama_url`` other than the operator's APT_OLLAMA_URL must be on ``endpoints``
        (APT_ALLOWED_ENDPOINTS): the service would otherwise call any URL a caller names.
        """
        name = validate_name(req.name)
        outtype = gguf_export.check_outtype(req.outtype)
        output_dir = req.output_dir or f"{name}-{outtype}"
        if not _FOLDER.fullmatch(output_dir) or ".." in output_dir:
            raise errors.InvalidArgument(
                f"output_dir {output_dir!r} must be one folder name (letters, digits, '.', '_', '-'); "
                "exports are written under APT_HOME/exports/."
            )
        url = req.ollama_url or default_ollama_url
        if url:
            ollama_client.check_url(url)
            if not same_endpoint(url, default_ollama_url):
                endpoints.check(url, "ollama_url")
        model = ollama_client.check_model_name(req.ollama_model or name)
        if req.num_ctx < 0:
            raise errors.InvalidArgument(f"num_ctx must be positive, got {req.num_ctx}.")
        return cls(name=name, output_dir=output_dir, outtype=outtype, ollama_url=url, ollama_model=model,
                   verify=not req.skip_verify, system=req.system, parameters=dict(req.parameters),
                   num_ctx=req.num_ctx)


class _Span:
    """Maps a step's own 0..1 progress into [start, end] of the whole job."""

    def __init__(self, ctx, start: float, end: float):
        self._ctx, self._start, self._end = ctx, start, end

    def report(self, progress: float | None = None, **kw) -> None:
        if progress is not None:
            progress = self._start + (self._end - self._start) * progress
        self._ctx.report(progress=progress, **kw)

    def check_cancelled(self) -> None:
        self._ctx.check_cancelled()

    def warn(self, text: str) -> None:
        self._ctx.warn(text)


EXPORT_MARKER = ".apt-ollama-export"   # in every folder an Ollama export wrote (holds the model's name)


def exports_root(store: Store) -> Path:
    return store.root / "exports"


def make_modelfile(store: Store, name: str, *, gguf_file: str = f"./{GGUF_FILE}", system: str = "",
                   parameters: dict[str, str] | None = None, num_ctx: int = 0, warn=lambda _t: None
                   ) -> modelfile.Modelfile:
    """The Modelfile for a store model (reads only config and tokenizer files)."""
    folder = store.model(name).path
    config = read_json(folder / "config.json", "this is not a Hugging Face model folder")
    hp = read_hparams(config)
    voc = read_vocab(folder, hp.vocab_size, config)
    eos = [voc.tokens[voc.eos_id]] if voc.eos_id is not None and voc.eos_id in voc.special_tokens.values() else []
    return modelfile.build_modelfile(gguf_file=gguf_file, chat_template=voc.chat_template,
                                     context_length=hp.context_length, num_ctx=num_ctx, system=system,
                                     parameters=parameters, extra_stops=eos, warn=warn)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _claim_folder(out: Path) -> Path:
    """The export folder, new, empty or made by an earlier Ollama export: a re-export replaces
    what an export wrote there, never what something else put in a folder (an HF export, ...)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        out.mkdir()
    except FileExistsError:
        check_export_folder(out)
    return out


def check_export_folder(out: Path) -> None:
    """ALREADY_EXISTS unless ``out`` is new, empty, or holds an earlier Ollama export (its marker)."""
    if out.is_symlink() or (out.exists() and (not out.is_dir() or (
            not (out / EXPORT_MARKER).is_file() and any(out.iterdir())))):
        raise errors.AlreadyExists(
            f"APT_HOME/exports/{out.name} exists and was not made by an Ollama export; nothing in it "
            "was touched. Choose another output_dir.")


def run_export(store: Store, spec: ExportSpec, ctx) -> dict:
    """The job's work: returns the JSON result (paths, sizes, verification, Ollama outcome)."""
    folder = store.model(spec.name).path
    out = _claim_folder(exports_root(store) / spec.output_dir)
    gguf_path = out / GGUF_FILE
    mf = make_modelfile(store, spec.name, system=spec.system, parameters=spec.parameters,
                        num_ctx=spec.num_ctx, warn=ctx.warn)
    ctx.report(progress=0.0, stage="convert", message=f"{spec.name} -> {spec.outtype} GGUF")
    # Converted and verified under a hidden name; only a verified file replaces model.gguf, so
    # a failed re-export leaves the previous one intact.
    staged = out / f".{GGUF_FILE}.{uuid.uuid4().hex[:8]}.unverified"
    try:
        info = gguf_export.convert(folder, staged, spec.outtype, _Span(ctx, 0.0, 0.6), model_name=spec.name)
        verification = _verify(folder, staged, spec, ctx)
        _write_text_atomic(out / "Modelfile", mf.text())
        _write_text_atomic(out / EXPORT_MARKER, f"{spec.name}\n")  # the folder is an Ollama export's now
        os.replace(staged, gguf_path)
        fsync_dir(out)
    finally:
        staged.unlink(missing_ok=True)
    result: dict = {
        "gguf": str(gguf_path), "size_bytes": info.size_bytes, "outtype": info.outtype, "arch": info.arch,
        "tensor_types": info.type_counts, "pre_tokenizer": info.pre_tokenizer, "n_vocab": info.n_vocab,
        "modelfile": str(out / "Modelfile"), "chat_format": mf.format_name, "verification": verification,
    }
    if spec.ollama_url:
        result["ollama"] = _ollama_create(gguf_path, mf, spec, ctx)
    else:
        result["command"] = f"cd {out} && ollama create {spec.ollama_model} -f Modelfile"
    ctx.report(progress=1.0, stage="done", message=result.get("command", f"created {spec.ollama_model} in Ollama"))
    return result


def _verify(folder: Path, gguf_path: Path, spec: ExportSpec, ctx) -> dict:
    if not spec.verify:
        return {"skipped": "skip_verify was requested"}
    reason = verify.missing_runtime()
    if reason:
        ctx.warn(f"llama.cpp verification skipped: {reason}; install llama-cpp-python, torch and transformers "
                 "in the service to have every export checked.")
        return {"skipped": reason}
    return verify.verify_export(folder, gguf_path, spec.outtype, _Span(ctx, 0.6, 0.85))


def _ollama_create(gguf_path: Path, mf: modelfile.Modelfile, spec: ExportSpec, ctx) -> dict:
    client = ollama_client.OllamaClient(spec.ollama_url)
    ctx.report(progress=0.85, stage="upload", message="sha256 of the GGUF")
    digest = "sha256:" + sha256_file(gguf_path)
    size = gguf_path.stat().st_size
    uploaded = False
    if not client.has_blob(digest):
        def on_bytes(n: int) -> None:
            ctx.check_cancelled()
            ctx.report(progress=0.85 + 0.1 * n / max(size, 1), stage="upload", message=f"{n}/{size} bytes")
        client.push_blob(gguf_path, digest, on_bytes)
        uploaded = True
    statuses = []
    for status in client.create(spec.ollama_model, {GGUF_FILE: digest}, template=mf.template,
                                system=mf.system, parameters=mf.create_parameters()):
        statuses.append(status)
        ctx.report(progress=0.97, stage="create", message=status)
    return {"url": spec.ollama_url, "model": spec.ollama_model, "digest": digest,
            "uploaded": uploaded, "statuses": statuses}
