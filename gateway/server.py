"""Wiring of the gateway: registry, router, jobs and core service on one gRPC server."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import threading

from apt_model import errors
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
                          GatewayJobsServicer(self.jobs, self.registry, self.router))
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


def build_settings(env: dict[str, str] | None = None, **overrides) -> Settings:
    """Settings from the environment; refuses what must not start (see ``refuse_unsafe``).

    Besides the shared variables the gateway tolerates the settings its catalogue's plugins
    declare (plugin.yaml ``settings:``): it hands each plugin its own (Registry.plugin_env).

    Only the local deployer generates missing tokens (into the secrets folder beside APT_HOME).
    With docker or kubernetes APT_HOME is a volume every plugin mounts, so tokens must come from
    the environment or mounted secret files (APT_*_TOKEN_FILE), never be made there.
    """
    settings = Settings.from_env(env, declared=catalogue_settings, **overrides)
    refuse_unsafe(settings)
    return ensure_local_tokens(settings) if settings.deployer == "local" else settings


def catalogue_settings(settings: Settings) -> set[str]:
    """Every variable a plugin of the gateway's catalogue declares."""
    return {name for entry in Catalog(settings.plugin_path).entries.values() for name in entry.setting_names}


def refuse_unsafe(settings: Settings) -> None:
    """FailedPrecondition for a gateway that must not start: docker/kubernetes without its three
    tokens, or plaintext on an address beyond loopback without APT_ALLOW_PLAINTEXT."""
    if settings.deployer != "local":
        missing = [f"APT_{attr.upper()}" for attr in ("token", "admin_token", "internal_token")
                   if not getattr(settings, attr)]
        if missing:
            raise errors.FailedPrecondition(
                f"APT_DEPLOYER={settings.deployer} needs {', '.join(missing)} (or the matching *_FILE variable "
                "naming a mounted secret file): the gateway does not generate tokens on the store volume every "
                "plugin shares. docker-compose: run `make secrets` (make up does); Kubernetes: the apt-tokens "
                "Secret (docs/deployment.md)."
            )
    # In a container the gateway listens on every interface of its own network namespace; what
    # decides who reaches it is the host address its port is published on (compose passes it).
    exposed, where = ((f"{settings.publish_addr}:0", f"{settings.publish_addr} (APT_PUBLISH_ADDR)")
                      if settings.publish_addr else (settings.listen, f"{settings.listen} (APT_LISTEN / --listen)"))
    if not settings.tls_cert and not settings.allow_plaintext and not _is_loopback(exposed):
        raise errors.FailedPrecondition(
            f"The gateway would be reachable on {where}, which is not a loopback address, without TLS: "
            "tokens and models would cross the network in clear. Set APT_TLS_CERT and APT_TLS_KEY, or set "
            "APT_ALLOW_PLAINTEXT=1 when only a private network or a TLS-terminating proxy reaches this port."
        )


def _is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "" (every interface) or a host name, which may resolve to anything
        return False


def main(**overrides) -> None:
    try:
        settings = build_settings(**overrides)
        # Files this process (and every plugin it starts) writes into the shared store: 0640/0750.
        os.umask(0o027)
        logs.configure("gateway", settings.log_level, settings.log_json)
        if settings.threads:
            import torch

            torch.set_num_threads(settings.threads)
        app = GatewayApp(settings)
    except errors.AptError as exc:  # a refusal to start: one line that says what to set, no traceback
        from apt_model.cli.common import EXIT_CODES

        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(EXIT_CODES.get(exc.code, 1))
    app.serve()
