"""Run real services in-process for tests: a plugin on a loopback port, jobs followed to the end.

A plugin's server module must define ``build(app)`` (the wiring) next to ``main()``; see
``apt_model.runtime.app``.
"""

from __future__ import annotations

import contextlib
import importlib
import secrets
import time
from pathlib import Path
from typing import Iterator

import grpc

from apt_model.client import connect
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.runtime.app import PluginApp
from apt_model.runtime.jobs_grpc import FINAL_STATES
from apt_model.runtime.manifest import PluginManifest
from apt_model.runtime.settings import Settings


@contextlib.contextmanager
def serve_plugin(plugin_dir: Path | str, apt_home: Path | str, **settings_overrides
                 ) -> Iterator[tuple[grpc.Channel, PluginApp]]:
    """Start the plugin's real server in this process; yield (authenticated channel, app)."""
    manifest = PluginManifest.load(plugin_dir)
    settings = Settings(home=Path(apt_home), listen="127.0.0.1:0",
                        internal_token=secrets.token_hex(16), log_json=False, **settings_overrides)
    app = PluginApp(settings, manifest)
    build = getattr(importlib.import_module(manifest.module), "build", None)
    if build is None:
        raise RuntimeError(f"{manifest.module} must define build(app) (see apt_model.runtime.app).")
    build(app)
    port = app.start()
    channel = connect(f"127.0.0.1:{port}", settings.internal_token)
    try:
        yield channel, app
    finally:
        channel.close()
        app.stop(grace=1.0)


def wait_job(channel: grpc.Channel, job_id: str, timeout: float = 120.0) -> job_pb2.Job:
    """Follow a job with WatchJob until it reaches a final state; returns the last Job."""
    stub = plugin_pb2_grpc.JobsStub(channel)
    deadline = time.monotonic() + timeout
    last = None
    for job in stub.WatchJob(job_pb2.WatchJobRequest(id=job_id), timeout=timeout):
        last = job
        if job.state in FINAL_STATES:
            return job
        if time.monotonic() > deadline:
            break
    raise TimeoutError(f"job {job_id} did not finish within {timeout}s (last: {last})")
