"""``apt.gateway.v1.PluginRegistry``: a thin adapter over the Registry."""

from __future__ import annotations

from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from gateway.catalog import CatalogEntry
from gateway.registry import Registry

_STATUS = {
    "NOT_AVAILABLE_YET": gateway_pb2.PLUGIN_STATUS_NOT_AVAILABLE_YET,
    "AVAILABLE": gateway_pb2.PLUGIN_STATUS_AVAILABLE,
    "INSTALLED": gateway_pb2.PLUGIN_STATUS_INSTALLED,
    "UNHEALTHY": gateway_pb2.PLUGIN_STATUS_UNHEALTHY,
}


def plugin_info(registry: Registry, entry: CatalogEntry) -> gateway_pb2.PluginInfo:
    status, message = registry.status_of(entry)
    inst = registry.installed(entry.name)
    return gateway_pb2.PluginInfo(
        name=entry.name, version=entry.version, description=entry.description,
        status=_STATUS[status], status_message=message,
        endpoints=inst.endpoints if inst else [], deployer=inst.deployer if inst else "",
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
        return gateway_pb2.ListPluginsResponse(plugins=[plugin_info(self.registry, e) for e in entries])

    def GetPlugin(self, request, context):
        return plugin_info(self.registry, self.registry.catalog.get(request.name))

    def InstallPlugin(self, request, context):
        self.registry.install(request.name, request.replicas or 1)
        return plugin_info(self.registry, self.registry.catalog.get(request.name))

    def UninstallPlugin(self, request, context):
        inst = self.registry.installed(request.name)
        endpoints = list(inst.endpoints) if inst else []
        self.registry.uninstall(request.name)
        self.on_uninstall(endpoints)
        return plugin_info(self.registry, self.registry.catalog.get(request.name))
