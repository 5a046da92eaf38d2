"""The ``apt.gateway.v1.Core`` servicer: proto -> domain spec -> logic -> proto, nothing more."""

from __future__ import annotations

import asyncio
import importlib.metadata
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2

from apt_model import errors
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.modeling import limits, trainlog
from apt_model.modeling.lm import GenerationParams
from apt_model.runtime.jobs import entries
from apt_model.runtime.interceptors import caller_is_admin
from apt_model.runtime.jobs_grpc import job_to_proto
from apt_model.store import validate_name
from apt_model.trust import PathPolicy
from gateway.core import debug, evaluate, inspect, size, train, transfer
from gateway.core.readcache import ReadCache

SERVICE = "/apt.gateway.v1.Core/"


def _struct(data: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    json_format.ParseDict(data, s)
    return s


def train_spec(r: pb.TrainRequest, paths: PathPolicy) -> train.TrainSpec:
    d = train.TrainSpec(name=r.name)  # the defaults stand where a field is left at zero/empty
    return train.TrainSpec(
        name=r.name, preset=r.preset or d.preset, size=r.size or d.size, config_json=r.config_json,
        corpus_paths=paths.resolve_all(r.corpus_paths, "corpus path"), dataset=r.dataset, text_field=r.text_field or d.text_field,
        vocab_size=r.vocab_size or d.vocab_size, tokenizer_from=r.tokenizer_from, seq_len=r.seq_len or d.seq_len,
        batch_size=r.batch_size or d.batch_size, grad_accum=r.grad_accum or d.grad_accum,
        max_steps=r.max_steps or d.max_steps, learning_rate=r.learning_rate or d.learning_rate,
        min_lr_ratio=r.min_lr_ratio if r.HasField("min_lr_ratio") else d.min_lr_ratio,
        warmup_steps=r.warmup_steps if r.HasField("warmup_steps") else d.warmup_steps,
        weight_decay=r.weight_decay if r.HasField("weight_decay") else d.weight_decay,
        grad_clip=r.grad_clip if r.HasField("grad_clip") else d.grad_clip,
        eval_every=r.eval_every or d.eval_every,
        eval_fraction=r.eval_fraction if r.HasField("eval_fraction") else d.eval_fraction,
        seed=r.seed, checkpoint_every=r.checkpoint_every if r.HasField("checkpoint_every") else d.checkpoint_every,
        resume=r.resume, device=r.device or d.device, overwrite=r.overwrite, threads=r.threads,
        max_minutes=r.max_minutes, workers=r.workers or d.workers, nodes=r.nodes or d.nodes,
        sharding=r.sharding or d.sharding,
    )


def generation_params(g: pb.GenerationOptions) -> GenerationParams:
    return GenerationParams(max_new_tokens=g.max_new_tokens or 32, do_sample=g.do_sample,
                            temperature=g.temperature or 1.0, top_k=g.top_k, top_p=g.top_p or 1.0, seed=g.seed)


def eval_spec(names, r, paths: PathPolicy) -> evaluate.EvalSpec:
    return evaluate.EvalSpec(
        names=tuple(names), eval_text=r.eval_text, eval_path=paths.resolve_optional(r.eval_path, "evaluation file"), eval_dataset=r.eval_dataset,
        prompts=tuple(r.prompts), generation=generation_params(r.generation),
        max_eval_tokens=r.max_eval_tokens or 16384, stride=getattr(r, "stride", 0))


def _header(files: list[transfer.FileSpec], name: str = "", overwrite: bool = False) -> pb.UploadHeader:
    return pb.UploadHeader(name=name, overwrite=overwrite,
                           files=[pb.FileInfo(path=f.path, size=f.size, sha256=f.sha256) for f in files])


def _upload_header(first, kind) -> tuple[pb.UploadHeader, list[transfer.FileSpec]]:
    """The header an upload starts with, its name validated, and the files it lists."""
    if first is None or first.WhichOneof("part") != "header":
        raise errors.InvalidArgument("An upload starts with a header message listing the files.")
    h = first.header
    validate_name(h.name, "model" if kind == "models" else "dataset")
    return h, [transfer.FileSpec(f.path, f.size, f.sha256) for f in h.files]


def _log_summary(store, name: str) -> pb.TrainingLogSummary | None:
    summary = trainlog.summary(trainlog.read(store.model(name).path))
    if not summary:
        return None
    return pb.TrainingLogSummary(**{k: v for k, v in summary.items() if k != "spikes"},
                                 spikes=[pb.LossSpike(**s) for s in summary["spikes"]])


def _eval_reads(spec: evaluate.EvalSpec) -> tuple[str, ...]:
    return entries("models", *spec.names) + entries("datasets", spec.eval_dataset)


class _Upload:
    """One upload: its messages are read on the event loop, its files written on a thread.

    The handler is a coroutine, so a caller that stops sending holds no thread while it
    waits (a sync handler held one of the server's pool threads per stalled upload, and
    enough of them stalled every other call). Each message must come within the idle limit
    (APT_UPLOAD_IDLE_SECONDS); chunks go to the writer through a short bounded queue, which
    is the back-pressure; the writer's thread exists only while the upload runs, and at most
    APT_MAX_UPLOADS uploads run at once.
    """

    _END = object()

    def __init__(self, requests, idle_seconds: float):
        self.stream = aiter(requests)
        self.idle = idle_seconds
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=8)
        self.loop = asyncio.get_running_loop()
        self.aborted = threading.Event()

    async def next(self):
        """The next message, None at the end; DEADLINE_EXCEEDED when none comes in time."""
        try:
            return await asyncio.wait_for(anext(self.stream, None), self.idle)
        except TimeoutError:
            raise errors.DeadlineExceeded(
                f"The upload sent nothing for {self.idle:g} s (APT_UPLOAD_IDLE_SECONDS) and was dropped; "
                "nothing was stored. Retry it.") from None

    def chunks(self):
        """The writer thread's side: chunks until the end; Cancelled when the upload was dropped."""
        while True:
            waiting = asyncio.run_coroutine_threadsafe(self.queue.get(), self.loop)
            try:
                item = waiting.result(self.idle + 5)
            except TimeoutError:  # the loop side is gone (it is stopping): drop the upload
                waiting.cancel()
                item = None
            if self.aborted.is_set() or item is None:
                raise errors.Cancelled("The upload was interrupted by the client; nothing was stored.")
            if item is self._END:
                return
            yield item

    async def feed(self, writer: asyncio.Future) -> None:
        """Pass every chunk message to the writer, then the end; stop at once if the writer
        fails (its error is the answer)."""
        while (msg := await self.next()) is not None:
            if msg.WhichOneof("part") != "chunk":
                raise errors.InvalidArgument("Only file chunks may follow the upload header.")
            await self._put((msg.chunk.path, msg.chunk.data), writer)
        await self._put(self._END, writer)

    async def _put(self, item, writer: asyncio.Future) -> None:
        put = asyncio.ensure_future(self.queue.put(item))
        await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            await writer  # it stopped before taking everything: raises its error

    def abort(self) -> None:
        self.aborted.set()
        try:
            self.queue.put_nowait(None)  # wakes a writer waiting for data
        except asyncio.QueueFull:
            pass  # it is busy writing and sees the flag at its next chunk


class CoreServicer(gateway_pb2_grpc.CoreServicer):
    def __init__(self, app):
        self.app = app
        self.jobs, self.store, self.settings, self.paths = app.jobs, app.store, app.settings, app.paths
        self.started = time.time()
        try:  # once: looking it up scans every installed distribution (~0.6 ms a call)
            self.version = importlib.metadata.version("apt-model")
        except importlib.metadata.PackageNotFoundError:
            self.version = "0.1.0+source"
        self._uploads = asyncio.Semaphore(self.settings.max_uploads)  # bound to the server's loop on first use
        self._writers = ThreadPoolExecutor(self.settings.max_uploads, thread_name_prefix="upload")
        self.reads = ReadCache(self.store)  # info/list answers while their files are unchanged

    # -- helpers ---------------------------------------------------------------------------
    def _refuse_if_busy(self, kind: str, name: str, action: str) -> None:
        """FAILED_PRECONDITION naming the active jobs (the gateway's and every plugin's) that
        declared ``kind/name`` among what they read or write."""
        ref = f"{kind}/{name}"
        busy = [j.id for j in self.jobs.list() if j.uses(ref)] + self._plugin_jobs_using(ref)
        if busy:
            raise errors.FailedPrecondition(
                f"Cannot {action} {name!r}: job(s) {', '.join(busy)} use it. Wait for them or cancel them "
                f"with 'apt-model job cancel ID'.", reason="ENTRY_IN_USE",
                metadata={"entry": ref, "jobs": ",".join(busy)})

    def _plugin_jobs_using(self, ref: str) -> list[str]:
        """Active plugin jobs that read or write ``ref`` (plugins run in their own processes)."""
        registry, router = getattr(self.app, "registry", None), getattr(self.app, "router", None)
        if registry is None or router is None:
            return []
        from apt_model.gen.apt.common.v1 import job_pb2
        from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc

        found = []
        for inst in registry.all_installed():
            for endpoint in inst.healthy_endpoints():
                stub = plugin_pb2_grpc.JobsStub(router.channel(endpoint))
                try:
                    jobs = stub.ListJobs(job_pb2.ListJobsRequest(active_only=True), timeout=5,
                                         metadata=[router.auth]).jobs
                except grpc.RpcError as exc:
                    raise errors.Unavailable(
                        f"Cannot ask plugin {inst.name!r} whether a job uses {ref} ({exc.code().name}); "
                        "retry when it is healthy ('apt-model plugin list').") from exc
                found += [j.id for j in jobs if ref in j.reads or ref in j.writes]
        return found

    def _start(self, method: str, work, labels: dict[str, str], reads=(), writes=()):
        return job_to_proto(self.jobs.start(SERVICE + method, work, labels=labels, reads=reads, writes=writes))

    # -- status and inspection -------------------------------------------------------------
    def GetStatus(self, request, context):
        import torch

        installed = self.app.registry.all_installed() if hasattr(self.app, "registry") else []
        return pb.GatewayStatus(
            # where the store lives on the host is operator detail: admin callers only
            version=self.version, apt_home=str(self.store.root) if caller_is_admin() else "",
            deployer=self.settings.deployer,
            uptime_seconds=time.time() - self.started, plugins_installed=len(installed),
            plugins_healthy=sum(1 for i in installed if i.healthy_endpoints()),
            jobs_active=sum(1 for j in self.jobs.list() if not j.state.done),
            torch_version=torch.__version__, cuda_available=torch.cuda.is_available())

    async def GetModelInfo(self, request, context):
        return await self._read(("info", request.name, request.training_log),
                                self.reads.entry_version("models", request.name), lambda: self._model_info(request))

    async def _read(self, question: tuple, version, compute):
        """A kept answer straight from the event loop (its version costs a few stat calls, no
        thread hop); a new one is computed on a worker thread and kept at ``version``."""
        if (kept := self.reads.kept(question, version)) is not None:
            return kept
        return self.reads.keep(question, version, await asyncio.to_thread(compute))

    def _model_info(self, request) -> pb.ModelInfo:
        info = inspect.model_info(self.store, request.name)
        return pb.ModelInfo(
            name=info["name"], architecture=info["architecture"], model_type=info["model_type"],
            config=_struct(info["config"]), parameters=info["parameters"], dtype=info["dtype"],
            files=[pb.FileInfo(**f) for f in info["files"]],
            tokenizer=pb.TokenizerSummary(**info["tokenizer"]), lineage=_struct(info["lineage"]),
            metrics=info["metrics"], created=info["created"], size_bytes=info["size_bytes"],
            training_log=_log_summary(self.store, request.name) if request.training_log else None)

    async def ListModels(self, request, context):
        def compute() -> pb.ListModelsResponse:
            rows = inspect.list_models(self.store, request.filter, request.order_by, request.descending)
            return pb.ListModelsResponse(models=[pb.ModelSummary(**r) for r in rows])

        return await self._read(("list", request.filter, request.order_by, request.descending),
                                self.reads.listing_version("models"), compute)

    def GetModelSize(self, request, context):
        for name in ("batch_size", "seq_len"):
            if getattr(request, name) < 0:
                raise errors.InvalidArgument(f"{name} must be positive (or 0 for the default).", field=name)
        s = size.model_size(self.store, request.name, request.batch_size, request.seq_len,
                            max_params=self.settings.max_model_params)
        return pb.ModelSize(**{**s, "training_breakdown": _struct(s["training_breakdown"])})

    def DebugModel(self, request, context):
        data_path = self.paths.resolve_optional(request.data_path, "data file")
        limits.check_loadable(self.store, request.name, self.settings.max_model_params)
        report = debug.debug_model(self.store, request.name, data_path, request.data_dataset)
        return pb.DebugReport(name=report["name"], healthy=report["healthy"],
                              findings=[pb.Finding(**f) for f in report["findings"]])

    # -- jobs ------------------------------------------------------------------------------
    def StartTest(self, request, context):
        spec = eval_spec([request.name], request, self.paths).validate(self.store, compare=False)
        limits.check_loadable(self.store, request.name, self.settings.max_model_params)
        store = self.store
        return self._start("StartTest", lambda ctx: evaluate.run_test(store, spec, ctx), {"model": request.name},
                           reads=_eval_reads(spec))

    def StartCompare(self, request, context):
        spec = eval_spec(request.names, request, self.paths).validate(self.store, compare=True)
        for name in spec.names:
            limits.check_loadable(self.store, name, self.settings.max_model_params)
        store = self.store
        return self._start("StartCompare", lambda ctx: evaluate.run_compare(store, spec, ctx),
                           {"model": spec.names[0], "models": ",".join(spec.names)}, reads=_eval_reads(spec))

    def StartTrain(self, request, context):
        spec = train_spec(request, self.paths).validate(self.store, self.settings.max_model_params,
                                                              deployer=self.settings.deployer)
        self._refuse_if_busy("models", spec.name, "train into")
        store = self.store
        return self._start("StartTrain", lambda ctx: train.run_train(store, spec, ctx), {"model": spec.name},
                           reads=entries("datasets", spec.dataset), writes=entries("models", spec.name))

    # -- transfer --------------------------------------------------------------------------
    async def _receive(self, kind, requests) -> str:
        """Store one upload (``_Upload``); returns its name."""
        upload = _Upload(requests, self.settings.upload_idle_seconds)
        h, files = _upload_header(await upload.next(), kind)
        if self._uploads.locked():
            raise errors.ResourceExhausted(
                f"{self.settings.max_uploads} uploads are running (APT_MAX_UPLOADS); retry when one has "
                "finished.")
        async with self._uploads:
            await asyncio.to_thread(self._refuse_if_busy, kind, h.name, "overwrite")
            writer = asyncio.get_running_loop().run_in_executor(self._writers, lambda: transfer.receive_upload(
                self.store, h.name, files, upload.chunks(), overwrite=h.overwrite, kind=kind,
                quota=self.settings.store_quota))
            try:
                await upload.feed(writer)
            except BaseException:
                upload.abort()  # the writer removes what it wrote; its own error, if any, is this one's cause
                writer.add_done_callback(lambda f: f.cancelled() or f.exception())
                raise
            await writer
        return h.name

    async def UploadModel(self, request_iterator, context):
        name = await self._receive("models", request_iterator)
        return await self.GetModelInfo(pb.GetModelInfoRequest(name=name), context)

    async def _download(self, kind, name: str, response, context):
        """Stream an entry from the event loop, reading files on a worker thread one chunk at a time.

        An async generator, not a sync one: grpc.aio serves a sync generator from its thread
        pool, and a caller that stops reading then keeps that thread blocked on its write for
        good, cancelled or not; enough such callers would take every thread (and SIGTERM would
        wait on them). Here an unread stream holds no thread, and cancelling it ends it.
        """
        files = await asyncio.to_thread(transfer.download_plan, self.store, name, kind)
        yield response(header=_header(files, name))
        chunks = transfer.iter_download(self.store, name, files, kind)
        try:
            while (item := await asyncio.to_thread(next, chunks, None)) is not None:
                yield response(chunk=pb.FileChunk(path=item[0], data=item[1]))
        finally:
            if not chunks.gi_running:  # else a read in flight when cancelled: closed when collected
                chunks.close()

    async def DownloadModel(self, request, context):
        async for message in self._download("models", request.name, pb.DownloadModelResponse, context):
            yield message

    def DeleteModel(self, request, context):
        self.store.model(request.name)
        self._refuse_if_busy("models", request.name, "remove")
        self.store.remove("models", request.name)
        return empty_pb2.Empty()

    # -- datasets --------------------------------------------------------------------------
    async def UploadDataset(self, request_iterator, context):
        name = await self._receive("datasets", request_iterator)
        return await asyncio.to_thread(self.GetDatasetInfo, pb.GetDatasetInfoRequest(name=name), context)

    def ListDatasets(self, request, context):
        return pb.ListDatasetsResponse(datasets=[
            pb.DatasetSummary(name=e.name, size_bytes=e.size_bytes, file_count=len(e.meta.get("files", {})),
                              created=e.created, operation=e.meta.get("lineage", {}).get("operation", ""))
            for e in self.store.list("datasets") if request.filter in e.name])

    def GetDatasetInfo(self, request, context):
        e = self.store.dataset(request.name)
        return pb.DatasetInfo(
            name=e.name, size_bytes=e.size_bytes, created=e.created,
            files=[pb.FileInfo(path=p, size=f["size"], sha256=f["sha256"])
                   for p, f in sorted(e.meta.get("files", {}).items())],
            operation=e.meta.get("lineage", {}).get("operation", ""), lineage=_struct(e.meta.get("lineage", {})),
            metrics={k: float(v) for k, v in e.meta.get("metrics", {}).items() if isinstance(v, (int, float))})

    async def DownloadDataset(self, request, context):
        async for message in self._download("datasets", request.name, pb.DownloadDatasetResponse, context):
            yield message

    def DeleteDataset(self, request, context):
        self.store.dataset(request.name)
        self._refuse_if_busy("datasets", request.name, "remove")
        self.store.remove("datasets", request.name)
        return empty_pb2.Empty()
