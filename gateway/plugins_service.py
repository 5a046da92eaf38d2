"""``apt.gateway.v1.PluginRegistry``: a thin adapter over the Registry."""

from __future__ import annotations

from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.runtime.interceptors import caller_is_admin
from gateway.catalog import CatalogEntry
from gateway.registry import Registry

_STATUS = {
    "NOT_AVAILABLE_YET": gateway_pb2.PLUGIN_STATUS_NOT_AVAILABLE_YET,
    "AVAILABLE": gateway_pb2.PLUGIN_STATUS_AVAILABLE,
    "INSTALLED": gateway_pb2.PLUGIN_STATUS_INSTALLED,
    "UNHEALTHY": gateway_pb2.PLUGIN_STATUS_UNHEALTHY,
}


def plugin_info(registry: Registry, entry: CatalogEntry, *, show_endpoints: bool) -> gateway_pb2.PluginInfo:
    """``show_endpoints`` for admin callers only: plugin addresses are internal-network detail."""
    status, message = registry.status_of(entry)
    inst = registry.installed(entry.name)
    return gateway_pb2.PluginInfo(
        name=entry.name, version=entry.version, description=entry.description,
        status=_STATUS[status], status_message=message,
        endpoints=inst.endpoints if inst and show_endpoints else [], deployer=inst.deployer if inst else "",
        replicas=inst.replicas if inst else 0, wants_gpu=entry.wants_gpu, services=list(entry.services),
        requirements=entry.requirement_lines,
        install_command=f"apt-model plugin install {entry.name}" if entry.available else "",
    )


class PluginRegistryServicer(gateway_pb2_grpc.PluginRegistryServicer):
    def __init__(self, registry: Registry, on_uninstall=lambda endpoints: None):
        self.registry = registry
        self.on_uninstall = on_uninstall

    def ListPlugins(self, request, context):
        entries = sorted(self.registry.catalog.entries.values(), key=lambda e: e.name)
        admin = caller_is_admin()
        return gateway_pb2.ListPluginsResponse(plugins=[plugin_info(self.registry, e, show_endpoints=admin)
                                                        for e in entries])

    def GetPlugin(self, request, context):
        return plugin_info(self.registry, self.registry.catalog.get(request.name), show_endpoints=caller_is_admin())

    # install and uninstall are admin methods (gateway.server.ADMIN_METHODS)
    def InstallPlugin(self, request, context):
        self.registry.install(request.name, request.replicas or 1)
        return plugin_info(self.registry, self.registry.catalog.get(request.name), show_endpoints=True)

    def UninstallPlugin(self, request, context):
        inst = self.registry.installed(request.name)
        endpoints = list(inst.endpoints) if inst else []
        self.registry.uninstall(request.name)
        self.on_uninstall(endpoints)
        return plugin_info(self.registry, self.registry.catalog.get(request.name), show_endpoints=True)
