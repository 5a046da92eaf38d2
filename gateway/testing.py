"""A real gateway in the calling process, for tests and benchmarks (plugins are real processes)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc

from apt_model.client import connect
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.runtime.settings import Settings, ensure_local_tokens

ROOT = Path(__file__).resolve().parents[1]
TEST_PLUGINS = ROOT / "tests" / "plugins"


@dataclasses.dataclass
class Gateway:
    app: object
    settings: Settings

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.app.port}"

    def channel(self, token: str | None = None):
        return connect(self.address, self.settings.token if token is None else token)

    def admin_channel(self):
        return connect(self.address, self.settings.admin_token)


def wait_answering(address: str, token: str, timeout: float = 120) -> bool:
    """Poll until the gateway at ``address`` answers an authenticated call (a gateway in a
    container or another process); False when it did not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with connect(address, token) as ch:
                gateway_pb2_grpc.PluginRegistryStub(ch).ListPlugins(gateway_pb2.ListPluginsRequest(), timeout=3)
                return True
        except grpc.RpcError:  # not up yet; the deadline decides
            time.sleep(0.5)
    return False


def unbuilt_plugin(parent: Path) -> Path:
    """A plugin folder ``parent/not-built-yet`` that says ``available: false`` (the echo plugin's
    files under another name); ``parent`` is then a catalogue folder."""
    import shutil

    import yaml

    folder = parent / "not-built-yet"
    shutil.copytree(TEST_PLUGINS / "echo", folder)
    manifest = yaml.safe_load((folder / "plugin.yaml").read_text())
    (folder / "plugin.yaml").write_text(yaml.safe_dump({**manifest, "name": "not-built-yet", "available": False}))
    return folder


def start_gateway(home: Path, extra_plugins: tuple[str, ...] = (), **overrides) -> Gateway:
    from gateway.server import GatewayApp

    defaults = dict(home=home, listen="127.0.0.1:0", plugin_path=(str(TEST_PLUGINS), *extra_plugins),
                    log_json=False, health_interval=0.3, install_timeout=120, grace_seconds=1.0)
    settings = ensure_local_tokens(Settings(**{**defaults, **overrides}))
    app = GatewayApp(settings)
    app.start()
    return Gateway(app, settings)


def stop_gateway(gw: Gateway, remove_plugins: bool = True) -> None:
    if remove_plugins:
        for inst in gw.app.registry.all_installed():
            gw.app.deployer.remove(inst.name)
    gw.app.stop(grace=0.5)


def run_cli(gw: Gateway, *args: str, env_extra: dict[str, str] | None = None,
            drop: tuple[str, ...] = ("APT_",), timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m apt_model ARGS` as a user runs it against ``gw``: a separate process with the
    environment's variables that start with ``drop`` removed (so only ``--gateway``/``--home``
    choose where it goes), plus ``env_extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "apt_model", *args, "--gateway", gw.address,
                           "--home", str(gw.settings.home)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def tls_files(folder: Path) -> tuple[str, str, str]:
    """(CA, certificate, key) PEM files in ``folder``: a test CA and a server certificate it
    signed, as a real deployment has them. The leaf is CA:FALSE with serverAuth and a SAN for
    localhost and 127.0.0.1 (rustls refuses a CA certificate as a server's; Python grpc does not)."""
    import datetime as dt
    import ipaddress

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
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(ca_path), str(cert_path), str(key_path)
