"""Load a dataset (hub repo or local json/jsonl/csv/parquet/text) into ``datasets/<name>/``.

The store keeps one split as ``data.parquet`` (readable by datasets, pandas, pyarrow and
every other plugin) and records rows, column types, a preview and token statistics in
apt.json. Hub datasets are fetched through the ``ModelHub`` interface, like models.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from apt_model import errors
from apt_model.runtime.jobs import JobContext
from apt_model.store import META_FILE, Store, validate_name
from apt_model.trust import PathPolicy, check_contained

from apt_hf.hubs import ModelHub, check_repo_id

# our format name -> (datasets builder, file suffixes)
FORMATS = {
    "json": ("json", (".json",)),
    "jsonl": ("json", (".jsonl",)),
    "csv": ("csv", (".csv",)),
    "parquet": ("parquet", (".parquet",)),
    "text": ("text", (".txt", ".text")),
}
DATA_FILE = "data.parquet"
STORE_SOURCE = "dataset:"  # a source naming a store dataset
MAX_TOKEN_STAT_ROWS = 100_000  # token statistics read at most this many rows (said in the result)
_PREVIEW_CHARS = 200


@dataclass(frozen=True)
class DatasetSpec:
    source: str
    name: str
    format: str = ""  # "" = from the file suffixes
    split: str = "train"
    tokenizer_from: str = ""  # store model whose tokenizer counts tokens
    text_field: str = ""  # "" = "text" when present, else the first string column
    preview_rows: int = 5
    overwrite: bool = False
    revision: str = "main"
    hub: str = "huggingface"

    @property
    def is_local(self) -> bool:
        return self.source.startswith(("/", "./", "../", "~")) or bool(self.store_dataset)

    @property
    def store_dataset(self) -> str:
        """The store dataset named by a ``dataset:NAME`` source (files pushed with 'apt-model data push')."""
        return self.source.removeprefix(STORE_SOURCE) if self.source.startswith(STORE_SOURCE) else ""

    @classmethod
    def from_request(cls, req, paths: PathPolicy) -> "DatasetSpec":
        source = req.source.strip()
        if not source:
            raise errors.InvalidArgument("source is required: a hub dataset id or a local file or folder.")
        fmt = req.format.strip().lower()
        if fmt and fmt not in FORMATS:
            raise errors.InvalidArgument(f"Unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
        if req.preview_rows < 0 or req.preview_rows > 100:
            raise errors.InvalidArgument("preview_rows must be between 0 and 100.")
        spec = cls(source=source, name=validate_name(req.name.strip(), "dataset"), format=fmt,
                   split=req.split.strip() or "train", tokenizer_from=req.tokenizer_from.strip(),
                   text_field=req.text_field.strip(), preview_rows=req.preview_rows or 5,
                   overwrite=req.overwrite, revision=req.revision.strip() or "main",
                   hub=(req.hub or "huggingface").strip().lower())
        if spec.tokenizer_from:
            validate_name(spec.tokenizer_from, "model")
        if spec.store_dataset:
            validate_name(spec.store_dataset, "dataset")
        elif spec.is_local:
            path = paths.resolve(source, "dataset source")  # before any look at the disk
            if not path.exists():
                raise errors.NotFound(f"{source!r} does not exist on the service's machine.")
            spec = dataclasses.replace(spec, source=str(path))
        else:
            check_repo_id(source)
        return spec


def data_files(path: Path, fmt: str) -> tuple[str, list[str]]:
    """(our format, files) for a file or a folder; the format is inferred when empty."""
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != META_FILE and not any(
            part.startswith(".") for part in p.relative_to(path).parts))
    if not fmt:
        found = {f for f, (_, suffixes) in FORMATS.items() for p in files if p.suffix.lower() in suffixes}
        if len(found) != 1:
            raise errors.InvalidArgument(
                f"Cannot tell the format of {path} (found {sorted(found) or 'no known suffix'}); "
                f"pass format, one of: {', '.join(FORMATS)}."
            )
        fmt = found.pop()
    suffixes = FORMATS[fmt][1]
    chosen = [str(p) for p in files if p.suffix.lower() in suffixes or path.is_file()]
    if not chosen:
        raise errors.InvalidArgument(f"{path} holds no {fmt} files ({', '.join(suffixes)}).")
    return fmt, chosen


def load_split(files: list[str], fmt: str, split: str, cache_dir: Path):
    import datasets

    try:
        ds = datasets.load_dataset(FORMATS[fmt][0], data_files={split: files}, split=split,
                                   cache_dir=str(cache_dir))
    except (ValueError, TypeError, KeyError, datasets.exceptions.DatasetGenerationError) as exc:
        cause = exc.__cause__ or exc
        raise errors.InvalidArgument(
            f"The {fmt} data cannot be read ({type(cause).__name__}: {str(cause)[:300]}); check the file "
            "or pass the right format."
        ) from exc
    if len(ds) == 0:
        raise errors.InvalidArgument(f"The {fmt} data has no rows.")
    return ds


def pick_text_field(ds, wanted: str) -> str:
    string_cols = [c for c, f in ds.features.items() if getattr(f, "dtype", "") in ("string", "large_string")]
    if wanted:
        if wanted not in ds.column_names:
            raise errors.InvalidArgument(f"No column {wanted!r}; the columns are {ds.column_names}.")
        if wanted not in string_cols:
            raise errors.InvalidArgument(f"Column {wanted!r} is not text (type {ds.features[wanted]}).")
        return wanted
    if "text" in string_cols:
        return "text"
    if not string_cols:
        raise errors.InvalidArgument(f"No text column among {ds.column_names}; pass text_field.")
    return string_cols[0]


def token_stats(ds, field: str, tokenizer) -> dict:
    n = min(len(ds), MAX_TOKEN_STAT_ROWS)
    texts = [t or "" for t in ds.select(range(n))[field]]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    ordered = sorted(lengths)
    return {
        "field": field, "rows_counted": n, "sampled": n < len(ds), "total_tokens": sum(lengths),
        "mean": round(statistics.fmean(lengths), 3), "min": ordered[0], "max": ordered[-1],
        "p50": ordered[len(ordered) // 2], "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
    }


def _preview(ds, rows: int) -> list[dict]:
    out = []
    for row in ds.select(range(min(rows, len(ds)))):
        out.append({k: (v[:_PREVIEW_CHARS] + "…" if isinstance(v, str) and len(v) > _PREVIEW_CHARS else
                        v if isinstance(v, (str, int, float, bool)) or v is None else str(v)[:_PREVIEW_CHARS])
                    for k, v in row.items()})
    return out


def run_load_dataset(store: Store, hub: ModelHub | None, spec: DatasetSpec, ctx: JobContext) -> dict:
    from apt_model.modeling.io import load_tokenizer

    started = time.monotonic()
    if not spec.overwrite and store.exists("datasets", spec.name):
        raise errors.AlreadyExists(f"Dataset {spec.name!r} already exists; pass overwrite or choose another name.")
    tokenizer = load_tokenizer(store.model(spec.tokenizer_from).path) if spec.tokenizer_from else None
    source = {"hub": "local", "repo_id": spec.source, "revision": "", "commit_sha": ""}
    if spec.store_dataset:
        path = store.dataset(spec.store_dataset).path
        source = {"hub": "store", "repo_id": spec.store_dataset, "revision": "", "commit_sha": ""}
    elif spec.is_local:
        path = Path(spec.source)  # resolved inside the allowed folders by from_request
    else:
        assert hub is not None
        ctx.report(progress=0.0, stage="download", message=f"fetching dataset {spec.source}")
        snap = hub.download(spec.source, spec.revision, [], lambda d, t: ctx.report(
            progress=0.5 * d / max(t or 1, 1), bytes_done=d, bytes_total=float(t or 0)), repo_type="dataset")
        path = snap.folder
        source = {"hub": snap.hub, "repo_id": spec.source, "revision": spec.revision, "commit_sha": snap.commit_sha}
    fmt, files = data_files(path, spec.format)
    if spec.is_local:  # the caller named the folder; a link in it may not lead elsewhere
        check_contained(path if path.is_dir() else path.parent, files, "dataset source")
    ctx.check_cancelled()
    ctx.report(progress=0.5, stage="read", message=f"reading {len(files)} {fmt} file(s)")
    scratch = store.root / ".scratch"
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="datasets-cache-") as cache:
        ds = load_split(files, fmt, spec.split, Path(cache))
        features = {c: str(f) for c, f in ds.features.items()}
        stats = None
        if tokenizer is not None:
            ctx.report(progress=0.7, stage="tokens", message="counting tokens")
            stats = token_stats(ds, pick_text_field(ds, spec.text_field), tokenizer)
        preview = _preview(ds, spec.preview_rows)
        ctx.check_cancelled()
        metrics = {"rows": len(ds), "columns": len(ds.column_names)}
        if stats:
            metrics["total_tokens"] = stats["total_tokens"]
        with store.create("datasets", spec.name, operation="hf-load-dataset", overwrite=spec.overwrite,
                          parameters={"source": spec.source, "format": fmt, "split": spec.split,
                                      "tokenizer_from": spec.tokenizer_from,
                                      "hub": source["hub"], "revision": spec.revision if not spec.is_local else ""},
                          metrics=metrics,
                          extra={"source": source, "features": features, "preview": preview,
                                 "token_stats": stats, "data_file": DATA_FILE}) as tmp:
            ds.to_parquet(str(tmp / DATA_FILE))
    return {"name": spec.name, "format": fmt, "files": len(files), **metrics, "features": features,
            "preview": preview, "token_stats": stats, **{f"source_{k}": v for k, v in source.items()},
            "seconds": round(time.monotonic() - started, 3)}


def open_store_dataset(store: Store, name: str, cache_dir: Path):
    """The stored split as a ``datasets.Dataset``."""
    entry = store.dataset(name)
    data = entry.path / entry.meta.get("data_file", DATA_FILE)
    if not data.is_file():
        raise errors.FailedPrecondition(
            f"Dataset {name!r} has no {data.name}; load it with 'apt-model hf dataset' to train with it.")
    return load_split([str(data)], "parquet", "train", cache_dir)
