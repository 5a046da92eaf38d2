"""One call starts a service: servicers + health + reflection + Describe + Jobs + interceptor.

Used by the gateway and by every plugin. A plugin's ``<pkg>/server.py`` reads::

    def build(app: PluginApp) -> None:          # wiring only; also used by in-process tests
        app.add_servicer(x_pb2_grpc.add_XServicer_to_server, XServicer(app))

    def main() -> None:
        PluginApp.main(Path(__file__).resolve().parents[1], build)

Settings are read once, at the entry point, from the environment.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from apt_model import errors
from apt_model.gen.apt.plugin.v1 import plugin_pb2, plugin_pb2_grpc
from apt_model.runtime import contract, logs, results
from apt_model.runtime.interceptors import AsyncServiceInterceptor, AuthPolicy, ServiceInterceptor
from apt_model.runtime.jobs import JobManager
from apt_model.runtime.jobs_grpc import JobsServicer
from apt_model.runtime.manifest import PluginManifest
from apt_model.runtime.plugin_settings import plugin_settings
from apt_model.runtime.settings import Settings
from apt_model.store import Store
from apt_model.trust import EndpointPolicy, PathPolicy

log = logging.getLogger(__name__)


def server_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]


class ServiceApp:
    """A gRPC server with the platform's runtime wired in."""

    def __init__(self, settings: Settings, name: str, policy: AuthPolicy, *, max_threads: int = 64,
                 serve_jobs: bool = True, use_aio: bool = False):
        self.settings = settings
        self.name = name
        self.store = Store(settings.home)
        self.paths = PathPolicy.from_settings(settings)  # host paths callers may name
        self.endpoints = EndpointPolicy.from_settings(settings)  # URLs callers may pick
        self.jobs = JobManager(name, max_workers=settings.job_workers, max_queued=settings.max_queued_jobs,
                               home=self.store.root)
        pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix=f"{name}-rpc")
        # the two servers differ only in where handlers run and how they start and stop (below)
        self._runner = (_AsyncioServer(name, pool, policy, settings) if use_aio
                        else _ThreadServer(pool, policy, settings))
        self.server, self.health = self._runner.server, self._runner.health
        self._service_names: list[str] = []
        self.port = 0
        self._stopped = threading.Event()
        health_pb2_grpc.add_HealthServicer_to_server(self._runner.health_servicer, self.server)
        if serve_jobs:
            self.add_servicer(plugin_pb2_grpc.add_JobsServicer_to_server, JobsServicer(self.jobs))

    def add_servicer(self, add_fn: Callable, servicer) -> None:
        """Register a generated ``add_XServicer_to_server`` with its servicer (the service's name is
        read from the add function's module). A contract whose long-running method declares no
        result message stops the service here, saying what to add."""
        add_fn(servicer, self.server)
        name = _service_name_of(add_fn)
        for method in results.long_running(descriptor_pool.Default().FindServiceByName(name)):
            results.declared_type(method)
        self._service_names.append(name)

    def add_generic_handler(self, handler: grpc.GenericRpcHandler) -> None:
        self.server.add_generic_rpc_handlers((handler,))

    def start(self, address: str | None = None, tls: bool = True) -> int:
        """Bind (``settings.listen`` unless given) and start; returns the bound port (useful with port 0)."""
        self.store.root.mkdir(parents=True, exist_ok=True)
        names = [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server)
        address = address or self.settings.listen
        creds = None
        if tls and self.settings.tls_cert:
            creds = grpc.ssl_server_credentials(
                [(Path(self.settings.tls_key).read_bytes(), Path(self.settings.tls_cert).read_bytes())])
        try:  # grpc raises RuntimeError for an address it cannot bind (older versions returned port 0)
            self.port = (self.server.add_secure_port(address, creds) if creds
                         else self.server.add_insecure_port(address))
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise errors.Unavailable(f"Cannot bind {address}: the port is in use or the address is wrong.")
        self._runner.start()
        for service in self._service_names:  # the server as a whole ("") is SERVING from the servicer's start
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("%s serving on port %d", self.name, self.port)
        threading.Thread(target=self._recover_store, name=f"{self.name}-recover", daemon=True).start()
        return self.port

    def _recover_store(self) -> None:
        """Finish (or, after a machine restart, undo) store entries whose writer died settling them."""
        try:
            if n := self.store.recover():
                log.info("%s: settled %d store entries left unsettled by a stopped process", self.name, n)
        except Exception:  # the next reader that needs those entries' checksums retries
            log.exception("%s: recovering unsettled store entries failed", self.name)

    def stop(self, grace: float | None = None) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        grace = self.settings.grace_seconds if grace is None else grace
        self.jobs.shutdown(cancel_running=True)
        self._runner.stop(grace)
        if not self.store.wait_settled(grace + 1):
            log.warning("%s: stopped while store entries were still settling; the next service to start "
                        "on this machine finishes them", self.name)

    def serve(self) -> None:
        """Start, then block until SIGTERM/SIGINT, then drain within the grace period."""
        self.start()
        done = threading.Event()

        def on_signal(signum, _frame):
            log.info("%s: signal %d, draining for %.1fs", self.name, signum, self.settings.grace_seconds)
            done.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        print(f"{self.name} listening on port {self.port}", flush=True)  # read by the local deployer
        done.wait()
        _exit_after(self.settings.grace_seconds + 0.5, self.name)
        self.stop()


class _ThreadServer:
    """grpc's thread-pool server (plugins): every handler runs in the pool."""

    def __init__(self, pool: ThreadPoolExecutor, policy: AuthPolicy, settings: Settings):
        self.server = grpc.server(pool, interceptors=[ServiceInterceptor(policy)], options=server_options(settings))
        # grpcio's thread-pool server passes no send_response_callback, so grpc_health's Watch is a
        # blocking generator here whatever experimental_non_blocking says: each watcher holds a
        # handler thread. Probes and the gateway use Check; nothing of ours watches a plugin.
        self.health = self.health_servicer = health.HealthServicer()

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float) -> None:
        self.server.stop(grace).wait(grace + 1)


class _AsyncioServer:
    """grpc.aio's server (the gateway) on an event loop in a thread of its own: async handlers
    (the gateway's router) run on the loop, sync servicers in the migration thread pool. Its
    methods are called from ordinary threads, like ``_ThreadServer``'s."""

    def __init__(self, name: str, pool: ThreadPoolExecutor, policy: AuthPolicy, settings: Settings):
        self._pool = pool
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name=f"{name}-loop", daemon=True)
        self._loop_thread.start()
        self.server = self.run(self._make_server(policy, settings))
        self.health = _AioHealth(self)
        self.health_servicer = self.health.servicer

    async def _make_server(self, policy: AuthPolicy, settings: Settings) -> grpc.aio.Server:
        return grpc.aio.server(migration_thread_pool=self._pool, interceptors=[AsyncServiceInterceptor(policy)],
                               options=server_options(settings))

    def run(self, coro):
        """Run a coroutine on the server's event loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def start(self) -> None:
        self.run(self.server.start())

    def stop(self, grace: float) -> None:
        self.run(self.server.stop(grace))
        # Sync handlers in the pool finish their last write through the loop: let them end
        # before the loop stops, or they wait on it for good (and the interpreter joins them).
        # The calls were cancelled by the stop above, so this takes milliseconds; bounded so
        # a SIGTERM still ends within the grace period (serve's hard exit at grace + 0.5 s).
        drain = threading.Thread(target=self._pool.shutdown, kwargs={"cancel_futures": True}, daemon=True)
        drain.start()
        drain.join(1.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(5)


class _AioHealth:
    """grpc_health's asyncio servicer behind the two sync calls ServiceApp makes. Its Watch is a
    coroutine the server ends when the caller leaves or the server stops; the sync servicer's
    Watch, run in the migration pool, kept a thread waiting for a status change for good."""

    def __init__(self, runner: _AsyncioServer):
        self.servicer = health.aio.HealthServicer()
        self._runner = runner

    def set(self, service: str, status) -> None:
        self._runner.run(self.servicer.set(service, status))

    def enter_graceful_shutdown(self) -> None:
        self._runner.run(self.servicer.enter_graceful_shutdown())


def _exit_after(seconds: float, name: str) -> None:
    """End the process ``seconds`` from now if it has not ended by itself.

    The drain is bounded by the grace period, but a handler thread can stay blocked beyond it
    (a sync streaming handler whose caller stopped reading, served by grpc.aio), and the
    interpreter joins such threads at exit: SIGTERM must not wait on a caller. Store entries
    still settling then are finished by the next service that starts on this machine.
    """
    def hard_exit() -> None:
        log.warning("%s: still busy %.1fs after SIGTERM (a caller that stopped reading?); exiting now",
                    name, seconds)
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(seconds, hard_exit)
    timer.daemon = True
    timer.start()


def _service_name_of(add_fn: Callable) -> str:
    # add_FooServicer_to_server lives in module apt_model.gen.apt.x.v1.y_pb2_grpc; read the
    # full name from the servicer descriptor of the pb2 module.
    module = importlib.import_module(add_fn.__module__.replace("_pb2_grpc", "_pb2"))
    short = add_fn.__name__[len("add_"):-len("Servicer_to_server")]
    for service in module.DESCRIPTOR.services_by_name.values():
        if service.name == short:
            return service.full_name
    raise errors.FailedPrecondition(f"Cannot find the service of {add_fn.__name__}.")


class DescribeServicer(plugin_pb2_grpc.PluginServicer):
    def __init__(self, manifest: PluginManifest):
        self.manifest = manifest
        self._description: plugin_pb2.PluginDescription | None = None

    def Describe(self, request, context):
        if self._description is None:  # the same every time: read from the descriptors once
            self._description = describe(self.manifest)
        return self._description


def _dependency(name: str, spec: str) -> plugin_pb2.Dependency:
    try:
        installed = importlib.metadata.version(name.split("[")[0])
    except importlib.metadata.PackageNotFoundError:
        installed = ""
    return plugin_pb2.Dependency(name=name, specifier=spec, installed_version=installed)


def describe(m: PluginManifest) -> plugin_pb2.PluginDescription:
    """The plugin's catalogue entry plus its operations as its proto declares them."""
    return plugin_pb2.PluginDescription(
        name=m.name, version=m.version, description=m.description,
        required_dependencies=[_dependency(n, s) for n, s in m.requirements],
        optional_dependencies=[_dependency(n, s) for n, s in m.optional_requirements],
        operations=contract.operations(m.services), wants_gpu=m.wants_gpu, services=list(m.services),
        file_descriptor_set=contract.descriptor_set(m.services).SerializeToString(deterministic=True),
    )


class PluginApp(ServiceApp):
    """A plugin service: accepts only calls carrying the gateway's internal token."""

    def __init__(self, settings: Settings, manifest: PluginManifest):
        policy = AuthPolicy(user_tokens=(settings.internal_token,) if settings.internal_token else (),
                            audience="plugin")
        # its plugin.yaml's settings, typed: a bad value stops the service before it starts anything
        own_settings = plugin_settings(manifest, settings.plugin_env)
        super().__init__(settings, manifest.name, policy)
        self.manifest = manifest
        self.plugin_settings = own_settings  # variable name -> typed value
        self.add_servicer(plugin_pb2_grpc.add_PluginServicer_to_server, DescribeServicer(manifest))

    @classmethod
    def main(cls, plugin_dir: Path | str, build: Callable[["PluginApp"], None]) -> None:
        """Entry point of a plugin process: settings from env, wiring, serve until SIGTERM."""
        app = cls.from_env(plugin_dir)
        build(app)
        app.serve()

    @classmethod
    def from_env(cls, plugin_dir: Path | str, **overrides) -> "PluginApp":
        manifest = PluginManifest.load(plugin_dir)
        settings = Settings.from_env(declared=manifest.setting_names, **overrides)
        logs.configure(Path(plugin_dir).name, settings.log_level, settings.log_json)
        if not settings.internal_token:
            raise errors.FailedPrecondition(
                "APT_INTERNAL_TOKEN is not set: a plugin accepts calls from the gateway only. "
                "Install it with 'apt-model plugin install' or set the gateway's internal token."
            )
        if settings.threads:
            _set_torch_threads(settings.threads)
        return cls(settings, manifest)


def _set_torch_threads(n: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)
