"""A plugin's job followed through the gateway; the plugin dies mid-job."""

from __future__ import annotations

import time

import grpc
import psutil
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2, pruning_pb2_grpc
from apt_model.store import Store
from apt_model.testing import make_tiny_model
from gateway.testing import start_gateway, stop_gateway

TEXT = ("The quick brown fox jumps over the lazy dog. " * 40 + "\n") * 8


@pytest.mark.slow
def test_plugin_killed_mid_job_gives_unavailable_and_leaves_the_store_unchanged(tmp_path):
    home = tmp_path / "home"
    store = Store(home)
    make_tiny_model(store, "tiny", texts=[TEXT])
    with store.create("datasets", "corpus", operation="test") as folder:
        (folder / "c.txt").write_text(TEXT)
    before = sorted(p.name for p in (home / "models").iterdir())
    gw = start_gateway(home)
    try:
        gateway_pb2_grpc.PluginRegistryStub(gw.admin_channel()).InstallPlugin(
            gateway_pb2.InstallPluginRequest(name="model-pruning"), timeout=180)
        # the plugin's processes, not the gateway's own data plane (apt-router)
        plugin_processes = [p for p in psutil.Process().children(recursive=True) if p.name() != "apt-router"]
        job = pruning_pb2_grpc.PruningStub(gw.channel()).StartPrune(pruning_pb2.PruneRequest(
            name="tiny", output_name="never", strategy="magnitude", ratio=0.5, recovery_steps=100000,
            recovery_dataset="corpus", batch_size=2, seq_len=32), timeout=60)
        start, killed = time.monotonic(), None
        with pytest.raises(grpc.RpcError) as err:
            for update in plugin_pb2_grpc.JobsStub(gw.channel()).WatchJob(job_pb2.WatchJobRequest(id=job.id),
                                                                          timeout=180):
                if update.progress > 0 and killed is None:
                    for p in plugin_processes:
                        p.kill()
                    killed = time.monotonic()
        assert killed is not None, "the job never reported progress"
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "model-pruning" in err.value.details() and job.id in err.value.details()
        assert time.monotonic() - killed < 10
        assert sorted(p.name for p in (home / "models").iterdir()) == before  # no half model, no temp folder
    finally:
        stop_gateway(gw)
