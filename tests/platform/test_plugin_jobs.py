"""A plugin's job followed through the gateway; the plugin dies mid-job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import psutil
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2, pruning_pb2_grpc
from apt_model.runtime.testing import wait_job
from apt_model.store import Store
from apt_model.testing import ECHO_JOB, make_tiny_model
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


def _running_job(jobs, service: str, deadline_s: float = 120) -> job_pb2.Job:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for job in jobs.ListJobs(job_pb2.ListJobsRequest(service=service), timeout=10).jobs:
            if job.state == job_pb2.JOB_STATE_RUNNING and job.progress > 0:
                return job
        time.sleep(0.1)
    raise AssertionError(f"no {service} job reported progress within {deadline_s} s")


def _ends_cancelled(jobs, job_id: str) -> job_pb2.Job:
    deadline = time.monotonic() + 30
    while (job := jobs.GetJob(job_pb2.GetJobRequest(id=job_id), timeout=10)).state != job_pb2.JOB_STATE_CANCELLED:
        assert job.state in (job_pb2.JOB_STATE_RUNNING, job_pb2.JOB_STATE_QUEUED), job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


@pytest.mark.slow
def test_cancel_of_a_plugin_job_through_the_gateway_and_the_cli(tmp_path):
    """CancelJob reaches the plugin holding the job, and the CLI's --on-interrupt cancel sends
    it on Ctrl-C; both jobs end CANCELLED and store nothing."""
    home = tmp_path / "home"
    store = Store(home)
    make_tiny_model(store, "tiny", texts=[TEXT])
    with store.create("datasets", "corpus", operation="test") as folder:
        (folder / "c.txt").write_text(TEXT)
    gw = start_gateway(home)
    try:
        gateway_pb2_grpc.PluginRegistryStub(gw.admin_channel()).InstallPlugin(
            gateway_pb2.InstallPluginRequest(name="model-pruning"), timeout=180)
        jobs = plugin_pb2_grpc.JobsStub(gw.channel())
        long_prune = dict(name="tiny", strategy="magnitude", ratio=0.5, recovery_steps=100000,
                          recovery_dataset="corpus", batch_size=2, seq_len=32)

        started = pruning_pb2_grpc.PruningStub(gw.channel()).StartPrune(
            pruning_pb2.PruneRequest(output_name="by-rpc", **long_prune), timeout=60)
        assert _running_job(jobs, "model-pruning").id == started.id
        assert (list(started.reads), list(started.writes)) == (["models/tiny", "datasets/corpus"], ["models/by-rpc"])
        core = gateway_pb2_grpc.CoreStub(gw.channel())
        removals = (lambda: core.DeleteModel(gateway_pb2.DeleteModelRequest(name="tiny"), timeout=30),
                    lambda: core.DeleteDataset(gateway_pb2.DeleteDatasetRequest(name="corpus"), timeout=30))
        for remove in removals:  # what the running prune reads
            with pytest.raises(grpc.RpcError) as refused:
                remove()
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert started.id in refused.value.details()
        jobs.CancelJob(job_pb2.CancelJobRequest(id=started.id), timeout=10)
        assert _ends_cancelled(jobs, started.id).error.code == "CANCELLED"

        env = {k: v for k, v in os.environ.items() if not k.startswith("APT_")}
        env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the generic CLI's description cache
        # A CLI started from a terminal, where Ctrl-C is not ignored: a shell's background job
        # (`make test &`) starts with SIGINT ignored, and Python keeps it so in every child.
        inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            cli = subprocess.Popen(
                [sys.executable, "-m", "apt_model", "model-pruning", "prune", "--name", "tiny", "--output-name",
                 "by-cli", "--strategy", "magnitude", "--ratio", "0.5", "--recovery-steps", "100000",
                 "--recovery-dataset", "corpus", "--batch-size", "2", "--seq-len", "32", "--on-interrupt", "cancel",
                 "--gateway", gw.address, "--home", str(home)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        finally:
            signal.signal(signal.SIGINT, inherited)
        try:
            watched = _running_job(jobs, "model-pruning")
            cli.send_signal(signal.SIGINT)
            _, err = cli.communicate(timeout=60)
        finally:
            cli.kill()
        assert cli.returncode == 130, err
        assert f"Cancelled job {watched.id}" in err
        _ends_cancelled(jobs, watched.id)
        assert not store.exists("models", "by-rpc") and not store.exists("models", "by-cli")
        for remove in removals:  # no job uses them any more
            remove()
        assert not store.exists("models", "tiny") and not store.exists("datasets", "corpus")
    finally:
        stop_gateway(gw)


def _code_and_details(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_list_jobs_merges_the_gateways_and_each_plugins_jobs_newest_first(echo_gateway):
    """ListJobs at the gateway: its own jobs and the installed plugins', one list, newest first;
    a service name keeps that service's jobs only."""
    make_tiny_model(Store(echo_gateway.settings.home), "tiny", texts=[TEXT])
    echo = echo_pb2_grpc.EchoStub(echo_gateway.channel())
    core = gateway_pb2_grpc.CoreStub(echo_gateway.channel())
    first = echo.StartEcho(echo_pb2.StartEchoRequest(text="a", steps=1), timeout=10)
    own = core.StartTest(gateway_pb2.TestModelRequest(name="tiny", eval_text=TEXT[:400]), timeout=10)
    last = echo.StartEcho(echo_pb2.StartEchoRequest(text="b", steps=1), timeout=10)
    for job in (first, own, last):
        assert wait_job(echo_gateway.channel(), job.id, 60).state == job_pb2.JOB_STATE_SUCCEEDED
    gateway_service = own.id.partition(":")[0]
    assert gateway_service != "echo"

    jobs = plugin_pb2_grpc.JobsStub(echo_gateway.channel())

    def listed(service: str) -> list[str]:
        return [j.id for j in jobs.ListJobs(job_pb2.ListJobsRequest(service=service), timeout=10).jobs]

    assert listed("") == [last.id, own.id, first.id]
    assert listed("echo") == [last.id, first.id]
    assert listed(gateway_service) == [own.id]
    assert listed("no-such-plugin") == []


def test_a_service_filter_skips_the_plugins_before_the_one_it_names(tmp_path):
    """ListJobs(service=...) passes over every other installed plugin, not only the first: with
    cloud-storage installed before echo, echo's jobs are still listed under its name."""
    gw = start_gateway(tmp_path / "home")
    try:
        gw.app.registry.install("cloud-storage")
        gw.app.registry.install("echo")
        assert [i.name for i in gw.app.registry.all_installed()] == ["cloud-storage", "echo"]
        job = echo_pb2_grpc.EchoStub(gw.channel()).StartEcho(echo_pb2.StartEchoRequest(text="a", steps=1), timeout=10)
        wait_job(gw.channel(), job.id, 60)
        jobs = plugin_pb2_grpc.JobsStub(gw.channel())
        assert [j.id for j in jobs.ListJobs(job_pb2.ListJobsRequest(service="echo"), timeout=10).jobs] == [job.id]
        assert jobs.ListJobs(job_pb2.ListJobsRequest(service="cloud-storage"), timeout=10).jobs == []
    finally:
        stop_gateway(gw)


def test_jobs_are_routed_by_their_id_and_a_bad_id_says_what_is_wrong(echo_gateway):
    """GetJob, CancelJob and WatchJob reach the plugin that the id's prefix names; an id without
    a prefix, an uninstalled plugin and a job the plugin does not know each get their own code."""
    echo = echo_pb2_grpc.EchoStub(echo_gateway.channel())
    jobs = plugin_pb2_grpc.JobsStub(echo_gateway.channel())
    long = echo.StartEcho(echo_pb2.StartEchoRequest(text="x", steps=10000, interval_seconds=0.01), timeout=10)
    got = jobs.GetJob(job_pb2.GetJobRequest(id=long.id), timeout=10)
    assert got.id == long.id and got.operation == long.operation
    jobs.CancelJob(job_pb2.CancelJobRequest(id=long.id), timeout=10)
    assert _ends_cancelled(jobs, long.id).error.code == "CANCELLED"

    for bad in ("no-colon", ":abc"):
        code, details = _code_and_details(lambda: jobs.GetJob(job_pb2.GetJobRequest(id=bad), timeout=10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "is not a job id" in details, (bad, details)
    code, details = _code_and_details(lambda: jobs.GetJob(job_pb2.GetJobRequest(id="ghost:1"), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND and "'ghost' is not an installed plugin" in details
    for call in (lambda: jobs.GetJob(job_pb2.GetJobRequest(id="echo:0ff"), timeout=10),
                 lambda: jobs.CancelJob(job_pb2.CancelJobRequest(id="echo:0ff"), timeout=10),
                 lambda: list(jobs.WatchJob(job_pb2.WatchJobRequest(id="echo:0ff"), timeout=10))):
        code, details = _code_and_details(call)
        assert code == grpc.StatusCode.NOT_FOUND and "echo:0ff" in details, details
        if "Watch" not in str(call.__code__.co_names):
            assert "here" in details, details  # the plugin's own answer, passed on as it came


def test_a_job_is_found_on_whichever_replica_holds_it(gateway):
    """With two replicas, a replica that does not know the job is not the answer: the next is asked."""
    gateway.app.registry.install("echo", replicas=2)
    echo = echo_pb2_grpc.EchoStub(gateway.channel())
    jobs = plugin_pb2_grpc.JobsStub(gateway.channel())
    started = [echo.StartEcho(echo_pb2.StartEchoRequest(text=str(i), steps=1), timeout=10) for i in range(4)]
    for job in started:
        assert jobs.GetJob(job_pb2.GetJobRequest(id=job.id), timeout=10).id == job.id
        assert wait_job(gateway.channel(), job.id, 60).state == job_pb2.JOB_STATE_SUCCEEDED  # WatchJob too
    assert sorted(j.id for j in jobs.ListJobs(job_pb2.ListJobsRequest(service="echo"), timeout=10).jobs) == \
        sorted(j.id for j in started)  # each replica lists its own


def _listening(port: int) -> list[psutil.Process]:
    """This test process's children that listen on ``port`` (a local plugin replica)."""
    return [p for p in psutil.Process().children(recursive=True)
            if any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in p.net_connections())]


def test_a_replica_that_stopped_answering_is_marked_unhealthy_at_once_and_skipped(tmp_path, caplog):
    """UNAVAILABLE from a replica marks it unhealthy at once, not a health round later, and job
    calls then go only to the replicas still healthy. ListJobs lists what the others hold and
    logs the one it could not ask."""
    gw = start_gateway(tmp_path / "home", health_interval=3600)
    try:
        inst = gw.app.registry.install("echo", replicas=2)
        jobs = plugin_pb2_grpc.JobsStub(gw.channel())
        echo = echo_pb2_grpc.EchoStub(gw.channel())
        started = [echo.StartEcho(echo_pb2.StartEchoRequest(text=str(i), steps=1), timeout=10) for i in range(4)]
        dead, live = inst.endpoints
        port = int(dead.rpartition(":")[2])
        plugin = _listening(port)
        assert plugin, f"no process listens on {dead}"
        for p in plugin:  # killed behind the data plane's back: only the job call can notice
            p.kill()
        psutil.wait_procs(plugin, timeout=10)
        assert inst.healthy_endpoints() == [dead, live]  # no health round has run
        with caplog.at_level("WARNING", logger="gateway.jobs"):
            listed = jobs.ListJobs(job_pb2.ListJobsRequest(service="echo"), timeout=10).jobs
        assert 0 < len(listed) < len(started)
        prefix = f"cannot list jobs of echo at {dead}: "
        warned = [m for m in caplog.messages if m.startswith(prefix)]
        assert len(warned) == 1 and warned[0].removeprefix(prefix) not in ("", "None"), caplog.messages
        code, _ = _code_and_details(lambda: jobs.GetJob(job_pb2.GetJobRequest(id=started[0].id), timeout=10))
        assert code == grpc.StatusCode.UNAVAILABLE
        assert inst.healthy_endpoints() == [live]
        found = []
        for job in started:  # the live replica's jobs are still there; the dead one's are gone
            try:
                found.append(jobs.GetJob(job_pb2.GetJobRequest(id=job.id), timeout=10).id)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
        assert found, "no job was on the live replica"
    finally:
        stop_gateway(gw)


def test_a_replica_that_accepts_and_never_answers_holds_no_job_call_past_the_deadline(tmp_path, monkeypatch):
    """A stopped replica (SIGSTOP: the kernel still accepts its connections, nothing answers) is
    waited for at most REPLICA_SECONDS by every job call the gateway routes: GetJob and CancelJob
    end DEADLINE_EXCEEDED, ListJobs lists the other replica's jobs, WatchJob goes on to the next
    replica (or NOT_FOUND). Without the deadline each call would wait for the caller's own."""
    import gateway.jobs

    monkeypatch.setattr(gateway.jobs, "REPLICA_SECONDS", 0.5)
    gw = start_gateway(tmp_path / "home", health_interval=3600)
    stopped: list[psutil.Process] = []
    try:
        inst = gw.app.registry.install("echo", replicas=2)
        jobs = plugin_pb2_grpc.JobsStub(gw.channel())
        echo = echo_pb2_grpc.EchoStub(gw.channel())
        started = [echo.StartEcho(echo_pb2.StartEchoRequest(text=str(i), steps=1), timeout=10) for i in range(4)]
        for job in started:
            wait_job(gw.channel(), job.id, 60)
        frozen, _ = inst.endpoints  # asked first: healthy_endpoints keeps the install order
        stopped = _listening(int(frozen.rpartition(":")[2]))
        assert stopped, f"no process listens on {frozen}"
        for p in stopped:
            p.suspend()

        def timed(call) -> tuple[float, object]:
            t0 = time.monotonic()
            try:
                out = call()
            except grpc.RpcError as exc:
                out = exc.code()
            return time.monotonic() - t0, out

        caller = 20  # the caller's own deadline: a call that waited for it took 20 s
        for call in (lambda: jobs.GetJob(job_pb2.GetJobRequest(id=started[0].id), timeout=caller),
                     lambda: jobs.CancelJob(job_pb2.CancelJobRequest(id=started[0].id), timeout=caller)):
            took, code = timed(call)
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED and took < 5, (code, took)
        took, listed = timed(lambda: jobs.ListJobs(job_pb2.ListJobsRequest(service="echo"), timeout=caller))
        assert took < 5 and 0 < len(listed.jobs) < len(started), (took, listed)
        for job in started:
            took, out = timed(lambda: list(jobs.WatchJob(job_pb2.WatchJobRequest(id=job.id), timeout=caller)))
            assert took < 5 and (out == grpc.StatusCode.NOT_FOUND or out[-1].id == job.id), (took, out)
    finally:
        for p in stopped:
            p.resume()
        stop_gateway(gw)


def test_a_watch_through_the_gateway_ends_unavailable_when_the_plugin_dies(tmp_path):
    """The echo plugin killed while a watched job runs: the watch ends at once with UNAVAILABLE
    saying what was lost and where to look, and the endpoint is marked unhealthy by it."""
    gw = start_gateway(tmp_path / "home", health_interval=3600)
    try:
        inst = gw.app.registry.install("echo")
        plugin = [p for p in psutil.Process().children(recursive=True) if p.name() != "apt-router"]
        job = echo_pb2_grpc.EchoStub(gw.channel()).StartEcho(
            echo_pb2.StartEchoRequest(text="x", steps=10000, interval_seconds=0.01), timeout=10)
        with pytest.raises(grpc.RpcError) as err:
            for update in plugin_pb2_grpc.JobsStub(gw.channel()).WatchJob(job_pb2.WatchJobRequest(id=job.id),
                                                                          timeout=60):
                if update.progress > 0 and plugin[0].is_running():
                    for p in plugin:
                        p.kill()
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert err.value.details() == (f"Plugin 'echo' stopped answering while job {job.id} was running; "
                                       "the job is lost with it. See 'apt-model plugin list'.")
        assert inst.healthy_endpoints() == []
    finally:
        stop_gateway(gw)


def test_a_watcher_of_a_quiet_gateway_job_gets_each_snapshot_once(gateway):
    """The gateway follows its own jobs by polling their snapshot every WATCH_POLL s; a snapshot
    goes to the watcher when it changes, not at every poll (mutation WatchJob 8 in docs/mutation.md)."""
    release = threading.Event()
    job = gateway.app.jobs.start(ECHO_JOB, lambda ctx: release.wait(30) and {})
    stream = plugin_pb2_grpc.JobsStub(gateway.channel()).WatchJob(job_pb2.WatchJobRequest(id=job.id), timeout=30)
    got = []
    follower = threading.Thread(target=lambda: got.extend(stream))
    follower.start()
    time.sleep(1.0)  # ten polls of a job that reports nothing
    release.set()
    follower.join(15)
    assert not follower.is_alive() and got[-1].state == job_pb2.JOB_STATE_SUCCEEDED
    repeats = [i for i in range(1, len(got)) if got[i] == got[i - 1]]
    assert not repeats, f"{len(got)} snapshots for a quiet job, {len(repeats)} of them repeats"
