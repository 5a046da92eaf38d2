"""The attack battery's world: a live gateway (local deployer, plugins as real child processes)
and an attacker holding only the *user* token.

Each test asserts the status code, that no secret appears in any response or log line, and
that the store and the host's files are unchanged (``Host.snapshot``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from gateway.testing import Gateway, start_gateway, stop_gateway

SECRET = "hunter2-not-for-callers"  # planted in host files the attacker tries to read


@dataclass
class Host:
    """A host folder outside every allowed root, holding files an attacker wants."""

    root: Path

    def plant(self) -> None:
        (self.root / "notes").mkdir(parents=True, exist_ok=True)
        (self.root / "notes" / "passwords.txt").write_text(f"my password is {SECRET}\n")
        (self.root / "notes" / "passwords.md").write_text(f"# vault\n{SECRET}\n")
        (self.root / "notes" / "passwords.jsonl").write_text(f'{{"text": "{SECRET}"}}\n')

    def snapshot(self, *folders: Path) -> dict[str, str]:
        """sha256 of every file under the host folder and the given folders (the store)."""
        out = {}
        for folder in (self.root, *folders):
            for p in sorted(Path(folder).rglob("*")):
                if p.is_file() and ".locks" not in p.parts and not p.name.endswith(".log"):
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out


class LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Host:
    h = Host(tmp_path_factory.mktemp("host"))
    h.plant()
    return h


@pytest.fixture(scope="module")
def attack_gateway(tmp_path_factory):
    """A gateway with default (closed) trust settings: no data roots, no allowed endpoints."""
    capture = LogCapture()
    logging.getLogger().addHandler(capture)
    gw = start_gateway(tmp_path_factory.mktemp("attack") / "home")
    gw.log_capture = capture
    yield gw
    stop_gateway(gw)
    logging.getLogger().removeHandler(capture)


def user_channel(gw: Gateway) -> grpc.Channel:
    return gw.channel()  # the user token: the attacker's only credential


def secrets_of(gw: Gateway) -> list[str]:
    s = gw.settings
    return [SECRET, s.token, s.admin_token, s.internal_token]


def assert_no_leak(gw: Gateway, *texts: str) -> None:
    """No admin/internal token or planted secret in the given texts, the gateway's log lines
    or any plugin's log file. (The user token is the attacker's own; it may be echoed.)"""
    forbidden = [x for x in secrets_of(gw) if x and x != gw.settings.token]
    logs = list(getattr(gw, "log_capture", LogCapture()).lines)
    log_dir = Path(gw.settings.home) / "logs"
    if log_dir.exists():
        logs += [p.read_text(errors="replace") for p in log_dir.rglob("*.log")]
    for text in (*texts, *logs):
        for secret in forbidden:
            assert secret not in text, f"a secret leaked: {text[:300]!r}"


def rpc_error(call) -> grpc.RpcError:
    """Run ``call`` and return the RpcError it must raise."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def env_without_apt() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("APT_")}
