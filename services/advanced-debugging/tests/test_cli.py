"""`apt-model advanced-debugging ...` as a user runs it: a CLI process, a real in-process gateway
and the real plugin process the gateway installs. Local files given to path fields are pushed
into the store as datasets first (local_files_dataset); reports come back with `data pull`."""

from __future__ import annotations

import functools
import json
import shutil

import pytest

from apt_model.modeling import trainlog
from apt_model.runtime import joblog
from apt_model.store import Store
from gateway.testing import run_cli, start_gateway, stop_gateway


@pytest.fixture(scope="module")
def cli_home(seeded_home, tmp_path_factory):
    """One store copy for the module: starting a gateway and the plugin process is the slow part."""
    root = tmp_path_factory.mktemp("cli")
    shutil.copytree(seeded_home, root / "home")
    shutil.copytree(seeded_home.parent / "data", root / "data")
    return root / "home"


@pytest.fixture(scope="module")
def cli(cli_home, tmp_path_factory):
    gw = start_gateway(cli_home)
    try:
        gw.app.registry.install("advanced-debugging")
        cache = str(tmp_path_factory.mktemp("cli-cache"))
        yield functools.partial(run_cli, gw, timeout=240, env_extra={"XDG_CACHE_HOME": cache})
    finally:
        stop_gateway(gw)


def test_gradient_flow_with_a_local_text_file(cli, cli_home):
    corpus = cli_home.parent / "data" / "corpus.txt"
    out = cli("advanced-debugging", "gradient-flow", "--name", "zero-block", "--data-path", str(corpus),
              "--batches", "2", "--seq-len", "32", "--batch-size", "2", "--device", "cpu", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    job = json.loads(out.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["result"]["verdict"] == "dead"
    assert (Store(cli_home).dataset("zero-block-gradient-flow").path / "gradient_flow.png").is_file()


def test_anomaly_detection_on_a_local_metrics_file_and_pull_the_report(cli, cli_home, tmp_path):
    metrics = cli_home.parent / "data" / "metrics.jsonl"
    out = cli("advanced-debugging", "anomaly-detection", "--metrics-path", str(metrics), "--output-name", "scan",
              "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)["result"]
    assert any(f["kind"] == "lr_off_schedule" for f in result["findings"])
    pulled = cli("data", "pull", "scan", "--output", str(tmp_path / "scan"))
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    assert json.loads((tmp_path / "scan" / "anomalies.json").read_text())["counts"]["lr_off_schedule"] == 1


def test_an_unknown_model_is_not_found_with_exit_code(cli):
    out = cli("advanced-debugging", "anomaly-detection", "--name", "nobody")
    assert out.returncode != 0 and "nobody" in out.stderr and "Traceback" not in out.stderr


def test_a_core_train_job_is_scanned_and_exported_by_its_job_id(cli, cli_home):
    """The trust boundary: the plugin never asks the gateway about the job; it reads the log
    that core train keeps in the store under the job's id."""
    out = cli("train", "by-job", "--dataset", "corp", "--size", "tiny", "--vocab-size", "384", "--seq-len", "32",
              "--batch-size", "4", "--max-steps", "12", "--eval-every", "12", "--checkpoint-every", "0",
              "--device", "cpu", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    job_id = json.loads(out.stdout)["id"]
    assert job_id.startswith("gateway:")
    out = cli("advanced-debugging", "anomaly-detection", "--job-id", job_id, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)["result"]
    assert result["steps"] == 12 and result["source"] == f"job {job_id}"
    logged = [r["loss"] for r in trainlog.read(Store(cli_home).model("by-job").path)]
    assert logged == [r["loss"] for r in joblog.read_job_log(joblog.job_log_path(cli_home, job_id))]
    out = cli("advanced-debugging", "export-to-tracker", "--job-id", job_id, "--output-name", "by-job-tb", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["steps"] == 12
    unknown = job_id[:-4] + ("0000" if not job_id.endswith("0000") else "1111")
    out = cli("advanced-debugging", "anomaly-detection", "--job-id", unknown)
    assert out.returncode != 0 and "No training log for job" in out.stderr


def test_probe_a_cancelled_core_train_run_from_its_checkpoint(cli, cli_home):
    from apt_model import errors
    from apt_model.modeling.checkpoint import RunCheckpoint
    from apt_model.testing import JobRecorder
    from gateway.core.train import TrainSpec, run_train

    store = Store(cli_home)
    spec = TrainSpec(name="cut-cli", dataset="corp", size="tiny", vocab_size=384, seq_len=32, batch_size=4,
                     max_steps=30, eval_every=30, checkpoint_every=0, device="cpu").validate(store)
    with pytest.raises(errors.Cancelled):
        run_train(store, spec, JobRecorder(cancel_after=8))
    start = RunCheckpoint(store, "train", "cut-cli").step()
    out = cli("advanced-debugging", "probe", "--run", "cut-cli", "--steps", "3", "--device", "cpu", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)["result"]
    assert int(result["checkpoint_step"]) == start  # int64 comes as a JSON string
    assert len(result["steps"]) == 3 and store.exists("datasets", f"cut-cli-probe-{start}")
