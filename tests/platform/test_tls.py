"""TLS on the gateway when a certificate and key are configured."""

from __future__ import annotations

import grpc
import pytest

from apt_model.client import connect
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from gateway.testing import start_gateway, stop_gateway, tls_files


def test_gateway_serves_tls_and_refuses_plaintext(tmp_path):
    ca, cert, key = tls_files(tmp_path)
    gw = start_gateway(tmp_path / "home", tls_cert=cert, tls_key=key)
    try:
        secure = connect(gw.address, gw.settings.token, ca_cert=ca)
        reply = gateway_pb2_grpc.PluginRegistryStub(secure).ListPlugins(gateway_pb2.ListPluginsRequest(), timeout=10)
        assert any(p.name == "echo" for p in reply.plugins)
        with pytest.raises(grpc.RpcError) as err:
            gateway_pb2_grpc.PluginRegistryStub(gw.channel()).ListPlugins(gateway_pb2.ListPluginsRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        stop_gateway(gw)
