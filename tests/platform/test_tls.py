"""TLS on the gateway when a certificate and key are configured."""

from __future__ import annotations

import datetime as dt
import ipaddress

import grpc
import pytest

from apt_model.client import connect
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from gateway.testing import start_gateway, stop_gateway


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_gateway_serves_tls_and_refuses_plaintext(tmp_path):
    cert, key = _self_signed(tmp_path)
    gw = start_gateway(tmp_path / "home", tls_cert=cert, tls_key=key)
    try:
        secure = connect(gw.address, gw.settings.token, ca_cert=cert)
        reply = gateway_pb2_grpc.PluginRegistryStub(secure).ListPlugins(gateway_pb2.ListPluginsRequest(), timeout=10)
        assert any(p.name == "echo" for p in reply.plugins)
        with pytest.raises(grpc.RpcError) as err:
            gateway_pb2_grpc.PluginRegistryStub(gw.channel()).ListPlugins(gateway_pb2.ListPluginsRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        stop_gateway(gw)
