"""The DataProcessors servicer: proto -> checked spec and files -> job. No logic of its own."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from apt_model import errors
from apt_model.corpus import dataset_text_files
from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2, data_processors_pb2_grpc
from apt_model.runtime.jobs import entries
from apt_model.runtime.jobs_grpc import job_to_proto
from apt_model.store import Store, validate_name
from apt_model.store.entry import entry_files
from apt_model.trust import check_contained

from apt_data.augment import run_augment
from apt_data.clean import cleaner
from apt_data.ingest import SUPPORTED, check_file
from apt_data.pipeline import run_process
from apt_data.spec import ProcessSpec

START_PROCESS = "/apt.plugins.data_processors.v1.DataProcessors/StartProcess"
START_AUGMENT = "/apt.plugins.data_processors.v1.DataProcessors/StartAugment"
MAX_CLEAN_CHARS = 16 << 20  # CleanText answers in one message; larger inputs go through StartProcess


class DataProcessorsServicer(data_processors_pb2_grpc.DataProcessorsServicer):
    def __init__(self, app, max_file_bytes: int):
        self.jobs, self.store, self.paths = app.jobs, app.store, app.paths
        self.max_file_bytes = max_file_bytes

    def StartProcess(self, request, context):
        spec = ProcessSpec.from_request(request)
        spec = dataclasses.replace(spec, paths=self.paths.resolve_all(spec.paths, "input path"))
        files = input_files(self.store, spec)
        for f in files:
            check_file(f, self.max_file_bytes)
        check_outputs_free(self.store, spec)
        if spec.tokenizer_model:
            self.store.model(spec.tokenizer_model)  # NOT_FOUND before the job
        snap = self.jobs.start(START_PROCESS, lambda ctx: run_process(self.store, spec, files, ctx, self.max_file_bytes),
                               labels={"dataset": spec.name},
                               reads=entries("datasets", spec.dataset) + entries("models", spec.tokenizer_model),
                               writes=entries("datasets", spec.name, spec.eval_name))
        return job_to_proto(snap)

    def CleanText(self, request, context):
        if sum(len(t) for t in request.texts) > MAX_CLEAN_CHARS:
            raise errors.ResourceExhausted(
                f"CleanText takes at most {MAX_CLEAN_CHARS >> 20} Mi characters at once; push the texts as a "
                "dataset and run 'process' on it.")
        clean = cleaner(request.strategy or "basic", request.traditional_to_simplified)
        return data_processors_pb2.CleanTextResponse(texts=[clean(t) for t in request.texts])

    def StartAugment(self, request, context):
        name = validate_name(request.name, "dataset")
        self.store.dataset(validate_name(request.dataset, "dataset"))  # NOT_FOUND before the job
        if self.store.exists("datasets", name) and not request.overwrite:
            raise errors.AlreadyExists(f"Dataset {name!r} already exists in the store; choose another --name "
                                       "or pass --overwrite.")
        methods = tuple(request.methods) or ("word_drop",)
        work = functools.partial(run_augment, self.store, request.dataset, methods, request.copies or 1, name,
                                 request.seed, request.overwrite)
        snap = self.jobs.start(START_AUGMENT, work, labels={"dataset": name},
                               reads=entries("datasets", request.dataset), writes=entries("datasets", name))
        return job_to_proto(snap)


def input_files(store: Store, spec: ProcessSpec) -> list[Path]:
    """The resolved paths, then the dataset's files (its text_files when it lists them)."""
    files: list[Path] = []
    for path in map(Path, spec.paths):
        files += folder_files(path) if path.is_dir() else [path]
    if spec.dataset:
        entry = store.dataset(spec.dataset)
        if "text_files" in entry.meta:  # a processed dataset: its text, not its reports (checked inside it)
            files += dataset_text_files(entry.path, entry.meta)
        else:
            found = [p for _, p in entry_files(entry.path) if p.suffix.lower() in SUPPORTED]
            if not found:
                raise errors.FailedPrecondition(
                    f"Dataset {spec.dataset!r} holds no file of a kind this plugin reads "
                    f"({', '.join(sorted(SUPPORTED - {'.xls'}))}).")
            files += found
    return files


def folder_files(folder: Path) -> list[Path]:
    """The supported files under a folder a caller named (inside the data roots), sorted; links
    leading out of it are refused."""
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED)
    check_contained(folder, found, "input folder")
    if not found:
        raise errors.FailedPrecondition(f"{folder} holds no file of a kind this plugin reads "
                                        f"({', '.join(sorted(SUPPORTED - {'.xls'}))}).")
    return found


def check_outputs_free(store: Store, spec: ProcessSpec) -> None:
    for name in filter(None, (spec.name, spec.eval_name)):
        if store.exists("datasets", name) and not spec.overwrite:
            raise errors.AlreadyExists(f"Dataset {name!r} already exists in the store; choose another --name "
                                       "or pass --overwrite.")
