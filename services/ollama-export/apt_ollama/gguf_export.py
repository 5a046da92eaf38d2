"""Convert a Hugging Face checkpoint folder to one GGUF file, streaming and atomically.

The tensor table is planned first from the safetensors headers alone (names, shapes,
output types and byte sizes are all known without reading data), so the GGUF header
can be written before any weight is touched; then each tensor is read from its memory
map, re-laid-out, converted and appended, one at a time. Peak memory is about one
tensor, never the model twice. The file is built under a hidden temporary name beside
the target and renamed into place only when complete and fsynced; on any failure
(cancel, disk full, bad tensor) the partial file is deleted.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import gguf
import numpy as np

from apt_model import errors
from apt_model.store import fsync_dir

from apt_ollama import archs, vocab
from apt_ollama.checkpoint import Checkpoint, read_json

Q = gguf.GGMLQuantizationType
OUTTYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}
_Q8_BLOCK = 32  # values per Q8_0 block: an fp16 scale then 32 int8s (34 bytes)


class Progress(Protocol):
    """What the converter needs from its caller; a JobContext satisfies it."""

    def report(self, progress: float | None = None, stage: str | None = None,
               message: str | None = None, **metrics: float) -> None: ...

    def check_cancelled(self) -> None: ...

    def warn(self, text: str) -> None: ...


@dataclass(frozen=True)
class PlannedTensor:
    hf_name: str
    name: str  # llama.cpp name
    shape: tuple[int, ...]  # numpy order: (rows, row length)
    qtype: gguf.GGMLQuantizationType

    @property
    def nbytes(self) -> int:
        block, type_size = gguf.GGML_QUANT_SIZES[self.qtype]
        return int(np.prod(self.shape)) // block * type_size


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    arch: str
    outtype: str
    size_bytes: int
    n_tensors: int
    type_counts: dict[str, int]  # GGML type name -> number of tensors
    pre_tokenizer: str
    n_vocab: int


def check_outtype(outtype: str) -> str:
    outtype = (outtype or "f16").lower()
    if outtype not in OUTTYPES:
        raise errors.InvalidArgument(
            f"Unknown output type {outtype!r}; choose one of: {', '.join(OUTTYPES)}."
        )
    return outtype


def _order(name: str) -> tuple:
    # llama.cpp's own files list token_embd, then blocks in order, then the output head.
    m = re.match(r"blk\.(\d+)\.", name)
    if m:
        return (1, int(m.group(1)), name)
    return (0 if name.startswith("token_embd") else 2, 0, name)


def plan_tensors(ckpt: Checkpoint, hp: archs.HParams, outtype: str, progress: Progress) -> list[PlannedTensor]:
    plan = []
    for hf_name, ref in ckpt.tensors.items():
        name = archs.gguf_name(hf_name, hp)
        if name is None:
            continue
        if len(ref.shape) == 1 or outtype == "f32":
            qtype = Q.F32  # norms and biases stay f32 in every file type, as in llama.cpp's files
        elif outtype == "q8_0" and ref.shape[-1] % _Q8_BLOCK == 0:
            qtype = Q.Q8_0
        else:
            qtype = Q.F16
            if outtype == "q8_0":
                progress.warn(f"{name}: rows of {ref.shape[-1]} values cannot be split into Q8_0 blocks "
                              f"of {_Q8_BLOCK}; written as F16 instead.")
        plan.append(PlannedTensor(hf_name, name, tuple(ref.shape), qtype))
    names = {p.name for p in plan}
    required = ["token_embd.weight", "output_norm.weight"] + ([] if hp.tied_embeddings else ["output.weight"])
    for i in range(hp.block_count):
        required += [f"blk.{i}.{t}.weight" for t in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                                     "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")]
    missing = [n for n in required if n not in names]
    if missing:
        raise errors.FailedPrecondition(
            f"The checkpoint lacks tensors a {hp.arch} model needs ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}); it is incomplete or not a {hp.hf_arch}."
        )
    return sorted(plan, key=lambda p: _order(p.name))


def _encode(w: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    if qtype == Q.F32:
        return np.ascontiguousarray(w, dtype=np.float32)
    if qtype == Q.F16:
        return np.ascontiguousarray(w, dtype=np.float16)
    return gguf.quants.quantize(np.asarray(w, dtype=np.float32), qtype)


def convert(folder: Path, dest: Path, outtype: str, progress: Progress, *, model_name: str = "") -> GgufInfo:
    """Write ``folder`` (an HF checkpoint) to ``dest`` as GGUF of ``outtype``; atomic."""
    outtype = check_outtype(outtype)
    config = read_json(folder / "config.json", "this is not a Hugging Face model folder")
    hp = archs.read_hparams(config)
    voc = vocab.read_vocab(folder, hp.vocab_size, config)
    for text in voc.warnings:
        progress.warn(text)
    ckpt = Checkpoint(folder)
    plan = plan_tensors(ckpt, hp, outtype, progress)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.partial")
    writer = gguf.GGUFWriter(tmp, hp.arch)
    try:
        _write_header(writer, model_name or folder.name, outtype, hp, voc, plan)
        _write_tensors(writer, ckpt, hp, plan, progress)
        writer.close()
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except OSError as exc:
        _discard(writer, tmp)
        if (full := errors.disk_full(exc, need=f"{dest.name} needs about the model's size")) is not None:
            raise full from exc
        raise errors.Unavailable(f"Writing {dest.name} failed ({os.strerror(exc.errno or 0)}); "
                                 "nothing was left behind.") from exc
    except BaseException:
        _discard(writer, tmp)
        raise
    finally:
        ckpt.close()
    counts: dict[str, int] = {}
    for t in plan:
        counts[t.qtype.name] = counts.get(t.qtype.name, 0) + 1
    return GgufInfo(path=dest, arch=hp.arch, outtype=outtype, size_bytes=dest.stat().st_size,
                    n_tensors=len(plan), type_counts=counts, pre_tokenizer=voc.pre, n_vocab=len(voc.tokens))


def _write_header(writer: gguf.GGUFWriter, name: str, outtype: str, hp: archs.HParams, voc: vocab.Vocab,
                  plan: list[PlannedTensor]) -> None:
    """The metadata and the tensor table, written before any weight is read."""
    writer.add_name(name)
    writer.add_file_type(OUTTYPES[outtype])
    if outtype == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    archs.add_metadata(writer, hp)
    vocab.add_metadata(writer, voc)
    for t in plan:
        writer.add_tensor_info(t.name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()


def _write_tensors(writer: gguf.GGUFWriter, ckpt: Checkpoint, hp: archs.HParams, plan: list[PlannedTensor],
                   progress: Progress) -> None:
    """Each planned tensor read, converted and appended in turn (about one tensor in memory);
    flushed and fsynced at the end."""
    fout = writer.fout[0]
    total = sum(t.nbytes for t in plan)
    done = 0
    for t in plan:
        progress.check_cancelled()
        data = _encode(archs.transform(t.name, ckpt.read(t.hf_name), hp), t.qtype)
        assert data.nbytes == t.nbytes, f"{t.name}: planned {t.nbytes} bytes, encoded {data.nbytes}"
        # Written here rather than by GGUFWriter.write_tensor_data, whose numpy tofile reports a
        # short write (disk full) without an errno; file.write raises ENOSPC/EFBIG properly.
        fout.write(bytes(-fout.tell() % writer.data_alignment))
        fout.write(memoryview(data).cast("B"))
        done += t.nbytes
        progress.report(progress=done / total, stage="convert", message=t.name)
    fout.write(bytes(-fout.tell() % writer.data_alignment))
    fout.flush()
    os.fsync(fout.fileno())


def _discard(writer: gguf.GGUFWriter, tmp: Path) -> None:
    # Closing flushes buffered bytes, which fails again on a full disk; the original error
    # is the one worth raising, and the partial file goes either way.
    with contextlib.suppress(OSError):
        writer.close()
    tmp.unlink(missing_ok=True)
