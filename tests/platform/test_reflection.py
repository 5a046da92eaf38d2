"""Server reflection answers (what grpcurl uses), on the gateway and on a plugin."""

from __future__ import annotations

from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from apt_model.client import connect


def test_gateway_and_plugin_list_their_services_by_reflection(echo_gateway):
    gateway_services = set(ProtoReflectionDescriptorDatabase(echo_gateway.channel()).get_services())
    assert {"apt.gateway.v1.Core", "apt.gateway.v1.PluginRegistry", "apt.plugin.v1.Jobs",
            "grpc.health.v1.Health"} <= gateway_services
    endpoint = echo_gateway.app.registry.installed("echo").endpoints[0]
    plugin_db = ProtoReflectionDescriptorDatabase(connect(endpoint, echo_gateway.settings.internal_token))
    assert {"apt.plugins.echo.v1.Echo", "apt.plugin.v1.Plugin", "apt.plugin.v1.Jobs"} <= set(plugin_db.get_services())
    method = plugin_db.FindFileContainingSymbol("apt.plugins.echo.v1.Echo")
    assert method.package == "apt.plugins.echo.v1"
