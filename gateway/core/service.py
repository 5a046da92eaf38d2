"""The ``apt.gateway.v1.Core`` servicer: proto -> domain spec -> logic -> proto, nothing more."""

from __future__ import annotations

import importlib.metadata
import threading
import time

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2

from apt_model import errors
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.modeling.lm import GenerationParams
from apt_model.runtime.jobs_grpc import job_to_proto
from apt_model.store import validate_name
from gateway.core import debug, evaluate, inspect, size, train, transfer

SERVICE = "/apt.gateway.v1.Core/"


def _struct(data: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    json_format.ParseDict(data, s)
    return s


def train_spec(r: pb.TrainRequest) -> train.TrainSpec:
    d = train.TrainSpec(name=r.name)  # the defaults stand where a field is left at zero/empty
    return train.TrainSpec(
        name=r.name, preset=r.preset or d.preset, size=r.size or d.size, config_json=r.config_json,
        corpus_paths=tuple(r.corpus_paths), dataset=r.dataset, text_field=r.text_field or d.text_field,
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
        max_minutes=r.max_minutes,
    )


def generation_params(g: pb.GenerationOptions) -> GenerationParams:
    return GenerationParams(max_new_tokens=g.max_new_tokens or 32, do_sample=g.do_sample,
                            temperature=g.temperature or 1.0, top_k=g.top_k, top_p=g.top_p or 1.0, seed=g.seed)


def eval_spec(names, r) -> evaluate.EvalSpec:
    return evaluate.EvalSpec(
        names=tuple(names), eval_text=r.eval_text, eval_path=r.eval_path, eval_dataset=r.eval_dataset,
        prompts=tuple(r.prompts), generation=generation_params(r.generation),
        max_eval_tokens=r.max_eval_tokens or 16384, stride=getattr(r, "stride", 0))


def _header(files: list[transfer.FileSpec], name: str = "", overwrite: bool = False) -> pb.UploadHeader:
    return pb.UploadHeader(name=name, overwrite=overwrite,
                           files=[pb.FileInfo(path=f.path, size=f.size, sha256=f.sha256) for f in files])


def _uses(labels, name: str) -> bool:
    """Whether a job's labels say it reads or writes the model ``name``."""
    return name in (labels.get("model"), labels.get("output")) or name in labels.get("models", "").split(",")


def _ended_flag(context) -> threading.Event:
    """Set when the RPC ends for any reason (works with the sync and the asyncio server)."""
    ended = threading.Event()
    context.add_callback(ended.set)
    return ended


class CoreServicer(gateway_pb2_grpc.CoreServicer):
    def __init__(self, app):
        self.app = app
        self.jobs, self.store, self.settings = app.jobs, app.store, app.settings
        self.started = time.time()

    # -- helpers ---------------------------------------------------------------------------
    def _refuse_if_busy(self, name: str, action: str) -> None:
        busy = [j.id for j in self.jobs.list() if not j.state.done and _uses(j.labels, name)]
        busy += self._plugin_jobs_using(name)
        if busy:
            raise errors.FailedPrecondition(
                f"Cannot {action} {name!r}: job(s) {', '.join(busy)} use it. Wait for them or cancel them "
                f"with 'apt-model job cancel ID'.")

    def _plugin_jobs_using(self, name: str) -> list[str]:
        """Active plugin jobs labelled with this model (plugins run in their own processes)."""
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
                        f"Cannot ask plugin {inst.name!r} whether a job uses {name!r} ({exc.code().name}); "
                        "retry when it is healthy ('apt-model plugin list').") from exc
                found += [j.id for j in jobs if _uses(j.labels, name)]
        return found

    def _start(self, method: str, work, labels: dict[str, str]):
        return job_to_proto(self.jobs.start(SERVICE + method, work, labels=labels))

    # -- status and inspection -------------------------------------------------------------
    def GetStatus(self, request, context):
        import torch

        try:
            version = importlib.metadata.version("apt-model")
        except importlib.metadata.PackageNotFoundError:
            version = "0.1.0+source"
        installed = self.app.registry.all_installed() if hasattr(self.app, "registry") else []
        return pb.GatewayStatus(
            version=version, apt_home=str(self.store.root), deployer=self.settings.deployer,
            uptime_seconds=time.time() - self.started, plugins_installed=len(installed),
            plugins_healthy=sum(1 for i in installed if i.healthy_endpoints()),
            jobs_active=sum(1 for j in self.jobs.list() if not j.state.done),
            torch_version=torch.__version__, cuda_available=torch.cuda.is_available())

    def GetModelInfo(self, request, context):
        info = inspect.model_info(self.store, request.name)
        return pb.ModelInfo(
            name=info["name"], architecture=info["architecture"], model_type=info["model_type"],
            config=_struct(info["config"]), parameters=info["parameters"], dtype=info["dtype"],
            files=[pb.FileInfo(**f) for f in info["files"]],
            tokenizer=pb.TokenizerSummary(**info["tokenizer"]), lineage=_struct(info["lineage"]),
            metrics=info["metrics"], created=info["created"], size_bytes=info["size_bytes"])

    def ListModels(self, request, context):
        rows = inspect.list_models(self.store, request.filter, request.order_by, request.descending)
        return pb.ListModelsResponse(models=[pb.ModelSummary(**r) for r in rows])

    def GetModelSize(self, request, context):
        if request.batch_size < 0 or request.seq_len < 0:
            raise errors.InvalidArgument("batch_size and seq_len must be positive (or 0 for the default).")
        s = size.model_size(self.store, request.name, request.batch_size, request.seq_len)
        return pb.ModelSize(**{**s, "training_breakdown": _struct(s["training_breakdown"])})

    def DebugModel(self, request, context):
        report = debug.debug_model(self.store, request.name, request.data_path)
        return pb.DebugReport(name=report["name"], healthy=report["healthy"],
                              findings=[pb.Finding(**f) for f in report["findings"]])

    # -- jobs ------------------------------------------------------------------------------
    def StartTest(self, request, context):
        spec = eval_spec([request.name], request).validate(self.store, compare=False)
        store = self.store
        return self._start("StartTest", lambda ctx: evaluate.run_test(store, spec, ctx), {"model": request.name})

    def StartCompare(self, request, context):
        spec = eval_spec(request.names, request).validate(self.store, compare=True)
        store = self.store
        return self._start("StartCompare", lambda ctx: evaluate.run_compare(store, spec, ctx),
                           {"model": spec.names[0], "models": ",".join(spec.names)})

    def StartTrain(self, request, context):
        spec = train_spec(request).validate(self.store)
        self._refuse_if_busy(spec.name, "train into")
        store = self.store
        return self._start("StartTrain", lambda ctx: train.run_train(store, spec, ctx), {"model": spec.name})

    # -- transfer --------------------------------------------------------------------------
    def UploadModel(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            raise errors.InvalidArgument("An upload starts with a header message listing the files.")
        h = first.header
        validate_name(h.name)
        files = [transfer.FileSpec(f.path, f.size, f.sha256) for f in h.files]
        self._refuse_if_busy(h.name, "overwrite")
        chunks = self._upload_chunks(request_iterator, context)
        transfer.receive_upload(self.store, h.name, files, chunks, overwrite=h.overwrite)
        return self.GetModelInfo(pb.GetModelInfoRequest(name=h.name), context)

    @staticmethod
    def _upload_chunks(request_iterator, context):
        ended = _ended_flag(context)
        try:
            for msg in request_iterator:
                if msg.WhichOneof("part") != "chunk":
                    raise errors.InvalidArgument("Only file chunks may follow the upload header.")
                yield msg.chunk.path, msg.chunk.data
        except grpc.RpcError as exc:  # the client went away mid-stream
            raise errors.Cancelled("The upload was interrupted by the client; nothing was stored.") from exc
        if ended.is_set():
            raise errors.Cancelled("The upload was interrupted by the client; nothing was stored.")

    def DownloadModel(self, request, context):
        ended = _ended_flag(context)
        files = transfer.download_plan(self.store, request.name)
        yield pb.DownloadModelResponse(header=_header(files, request.name))
        for path, data in transfer.iter_download(self.store, request.name, files):
            if ended.is_set():  # the client went away: stop reading the files
                return
            yield pb.DownloadModelResponse(chunk=pb.FileChunk(path=path, data=data))

    def DeleteModel(self, request, context):
        self.store.model(request.name)
        self._refuse_if_busy(request.name, "remove")
        self.store.remove("models", request.name)
        return empty_pb2.Empty()

