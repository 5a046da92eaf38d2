"""Wiring of the gateway: registry, router, jobs and core service on one gRPC server."""

from __future__ import annotations

import logging
import threading

from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.runtime import logs
from apt_model.runtime.app import ServiceApp
from apt_model.runtime.interceptors import AuthPolicy
from apt_model.runtime.settings import Settings, ensure_local_tokens
from gateway.catalog import Catalog
from gateway.dataplane import NativeRouter, find_binary
from gateway.deploy import make_deployer
from gateway.jobs import GatewayJobsServicer
from gateway.plugins_service import PluginRegistryServicer
from gateway.registry import Registry
from gateway.router import Router, load_plugin_descriptors

log = logging.getLogger(__name__)

ADMIN_METHODS = frozenset({
    "/apt.gateway.v1.PluginRegistry/InstallPlugin",
    "/apt.gateway.v1.PluginRegistry/UninstallPlugin",
})


class GatewayApp(ServiceApp):
    def __init__(self, settings: Settings):
        policy = AuthPolicy(user_tokens=(settings.token,), admin_tokens=(settings.admin_token,),
                            admin_methods=ADMIN_METHODS, audience="gateway")
        super().__init__(settings, "gateway", policy, max_threads=128, serve_jobs=False, use_aio=True)
        self.dataplane: NativeRouter | None = None
        # looked up before anything starts: a missing binary fails here, with the command to build it
        self.router_binary = find_binary(settings) if settings.router == "native" else ""
        self.catalog = Catalog(settings.plugin_path)
        self.deployer = make_deployer(settings)
        self.registry = Registry(settings, self.catalog, self.deployer)
        load_plugin_descriptors()
        self.router = Router(self.catalog, self.registry, settings.internal_token, settings.max_message_bytes)
        self.add_servicer(gateway_pb2_grpc.add_PluginRegistryServicer_to_server,
                          PluginRegistryServicer(self.registry, self.router.forget))
        self.add_servicer(plugin_pb2_grpc.add_JobsServicer_to_server,
                          GatewayJobsServicer(self.jobs, self.registry, self.router), "apt.plugin.v1.Jobs")
        self._add_core()
        self.add_generic_handler(self.router)

    def _add_core(self) -> None:
        from apt_model.modeling.io import preload_architectures

        preload_architectures()  # before any job thread races transformers' lazy imports
        try:
            from gateway.core.service import CoreServicer
        except ModuleNotFoundError as exc:
            if exc.name not in ("gateway.core", "gateway.core.service"):
                raise
            log.error("core commands are not built in this checkout (%s): Core calls answer UNIMPLEMENTED", exc)
            return
        self.add_servicer(gateway_pb2_grpc.add_CoreServicer_to_server, CoreServicer(self))

    def start(self) -> int:
        self.store.clean_temporaries()
        self.registry.restore()
        if self.router_binary:
            # apt-router owns the public address (and TLS); this server listens on loopback only
            backend = super().start(address="127.0.0.1:0", tls=False)
            self.dataplane = NativeRouter(self.settings, self.router_binary, f"127.0.0.1:{backend}",
                                          self.registry.route_table, self.registry.mark_unhealthy)
            self.registry.subscribe(self.dataplane.update)
            try:
                self.port = self.dataplane.start()
            except BaseException:
                super().stop(0)
                raise
            log.info("gateway: apt-router on port %d, control plane on loopback port %d", self.port, backend)
        else:
            super().start()
        self.registry.start_monitor()
        return self.port

    def stop(self, grace: float | None = None) -> None:
        self.registry.stop()
        grace = self.settings.grace_seconds if grace is None else grace
        drain = None
        if self.dataplane is not None:
            # both drain at once: calls through the router end when this server ends them
            drain = threading.Thread(target=self.dataplane.stop, args=(grace,), name="router-stop")
            drain.start()
        super().stop(grace)
        if drain is not None:
            drain.join()


def build_settings(**overrides) -> Settings:
    """Settings from the environment, with local tokens created on first start."""
    return ensure_local_tokens(Settings.from_env(**overrides))


def main(**overrides) -> None:
    settings = build_settings(**overrides)
    logs.configure("gateway", settings.log_level, settings.log_json)
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    GatewayApp(settings).serve()
