"""Test and benchmark helpers: store entries, moto's request log and a local OSS server
(``oss_server``). The job context the tests hand the logic is apt_model.testing.JobRecorder;
the local hub servers are apt_model.testing.hubs'.

Nothing here is used by the service itself.
"""

from __future__ import annotations

import json

import requests

from apt_model.store import Store

MiB = 1 << 20
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret-value"}


class S3Recorder:
    """Reads the server-side request log of moto's recorder (what actually reached the server)."""

    def __init__(self, url: str):
        self.url = url

    def start(self) -> None:
        requests.post(f"{self.url}/moto-api/recorder/reset-recording", timeout=10).raise_for_status()
        requests.post(f"{self.url}/moto-api/recorder/start-recording", timeout=10).raise_for_status()

    def stop(self) -> list[dict]:
        requests.post(f"{self.url}/moto-api/recorder/stop-recording", timeout=10).raise_for_status()
        text = requests.get(f"{self.url}/moto-api/recorder/download-recording", timeout=30).text
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def add_entry(store: Store, name: str, files: dict[str, bytes], kind: str = "models") -> None:
    """A store entry made of the given files (what the storage service sees: files and apt.json)."""
    with store.create(kind, name, operation="test", metrics={"loss": 1.5},
                      parameters={"why": "fixture"}) as folder:
        for rel, data in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)


def random_bytes(n: int, seed: int) -> bytes:
    import random
    return random.Random(seed).randbytes(n)


def dead_endpoint() -> str:
    """An http:// URL on a loopback port where nothing listens."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
