"""TLS on the gateway when a certificate and key are configured."""

from __future__ import annotations

import datetime as dt
import ipaddress

import grpc
import pytest

from apt_model.client import connect
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from gateway.testing import start_gateway, stop_gateway


def _ca_and_leaf(tmp_path):
    """A test CA and a server certificate it signed, as a real deployment has them: the leaf is
    CA:FALSE with serverAuth and a SAN for localhost and 127.0.0.1 (rustls refuses a CA
    certificate as a server's, Python grpc does not: this is what any client accepts)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def build(subject: str, issuer: x509.Name, public_key, *extensions):
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(issuer).public_key(public_key).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1)))
        for ext, critical in extensions:
            b = b.add_extension(ext, critical)
        return b

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apt test CA")])
    ca = build("apt test CA", ca_name, ca_key.public_key(),
               (x509.BasicConstraints(ca=True, path_length=0), True),
               (x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False), True)).sign(ca_key, hashes.SHA256())
    leaf = build("localhost", ca_name, key.public_key(),
                 (x509.BasicConstraints(ca=False, path_length=None), True),
                 (x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
                 (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)).sign(ca_key, hashes.SHA256())
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(ca_path), str(cert_path), str(key_path)


def test_gateway_serves_tls_and_refuses_plaintext(tmp_path):
    ca, cert, key = _ca_and_leaf(tmp_path)
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
