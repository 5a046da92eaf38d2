"""StartVerifierTraining through the real gRPC server, and the stored verifiers as plain transformers models."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from apt_model import errors
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2 as pb
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2_grpc
from apt_model.modeling import trainlog
from apt_model.runtime.testing import serve_plugin
from apt_model.store import Store
from apt_model.testing import JobRecorder
from apt_reason import planted, verifier

PLUGIN = Path(__file__).resolve().parents[1]

# Run with `python -I` (no PYTHONPATH, no current folder): only the venv's packages, never the project.
LOAD = textwrap.dedent("""
    import json, sys
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer
    path = sys.argv[1]
    arch = AutoConfig.from_pretrained(path).architectures[0]
    cls = AutoModelForSequenceClassification if arch.endswith("SequenceClassification") else AutoModelForTokenClassification
    model, tok = cls.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    ids = tok("Anna has 2 apples.\\n2 + 1 = 3\\n", return_tensors="pt")["input_ids"]
    logits = model(input_ids=ids).logits
    print(json.dumps({"class": type(model).__name__, "shape": list(logits.shape), "labels": model.config.id2label,
                      "project": sorted(m for m in sys.modules if m.split(".")[0] in ("apt_model", "apt_reason"))}))
""")


@pytest.fixture
def svc(home):
    with serve_plugin(PLUGIN, home) as (channel, _):
        yield reasoning_pb2_grpc.ReasoningStub(channel), channel


def _load_elsewhere(folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-I", "-c", LOAD, str(folder)], capture_output=True, text=True,
                         timeout=180, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind,cls", [("outcome", "LlamaForSequenceClassification"),
                                      ("process", "LlamaForTokenClassification")])
def test_verifier_is_trained_scored_and_loads_as_plain_transformers(svc, wait_job, home, kind, cls):
    stub, channel = svc
    job = stub.StartVerifierTraining(pb.VerifierTrainingRequest(
        model="lm", dataset="probs", output_name="v", kind=kind, max_steps=6, batch_size=4, eval_examples=10,
        device="cpu"))
    done = wait_job(channel, job.id, timeout=240)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
    out = json_format.MessageToDict(done.result)
    assert out["model"] == "v" and out["kind"] == kind and out["steps"] == 6 and out["eval_examples"] == 10
    assert 0 <= out["auroc"] <= 1
    assert ("first_wrong_step_accuracy" in out) == (kind == "process") == ("step_accuracy" in out)
    entry = Store(home).model("v")
    assert entry.meta["lineage"]["parent"] == "lm" and entry.meta["verifier"] == kind
    assert len(trainlog.read(entry.path)) == 6
    loaded = _load_elsewhere(entry.path)
    assert loaded["class"] == cls and loaded["project"] == []
    assert loaded["labels"] == {"0": "wrong", "1": "correct"}
    assert loaded["shape"][-1] == 2 and len(loaded["shape"]) == (2 if kind == "outcome" else 3)
    assert not (home / "checkpoints" / verifier.KIND / "v").exists()


def test_the_process_verifier_learns_the_planted_labels(home):
    """Its training loss falls well below the entropy of the step labels (what guessing by their
    share reaches): it tells planted steps from right ones on the rows it trains on."""
    store = Store(home)
    spec = verifier.VerifierSpec("lm", "probs", "pv", max_steps=200, kind="process", batch_size=16,
                                 learning_rate=3e-3, eval_examples=20, device="cpu", checkpoint_every=0)
    out = verifier.run_verifier(store, spec, JobRecorder())
    chained = verifier.read_chains(store, spec)["train"]
    labels = [y for s in planted.solutions(*chained, spec.corrupt_rate, spec.seed) for y in s.step_labels()]
    share = sum(labels) / len(labels)
    prior = -(share * math.log(share) + (1 - share) * math.log(1 - share))
    losses = [r["loss"] for r in trainlog.read(store.model("pv").path)]
    assert statistics.mean(losses[-20:]) < prior - 0.15, (prior, losses[-20:])
    assert 0 <= out["first_wrong_step_accuracy"] <= 1 and 0 <= out["step_accuracy"] <= 1


def test_cancel_leaves_no_verifier_and_resume_matches_an_uninterrupted_run(home, report_every_step):
    store = Store(home)
    base = dict(max_steps=8, kind="outcome", batch_size=4, eval_examples=4, device="cpu", checkpoint_every=1000)
    with pytest.raises(errors.Cancelled):
        verifier.run_verifier(store, verifier.VerifierSpec("lm", "probs", "vc", **base), JobRecorder(cancel_at_step=3))
    assert not store.exists("models", "vc") and (home / "checkpoints" / verifier.KIND / "vc").is_dir()
    with pytest.raises(errors.FailedPrecondition, match="--resume"):
        verifier.check_start(store, verifier.VerifierSpec("lm", "probs", "vc", **base))
    resumed = verifier.run_verifier(store, verifier.VerifierSpec("lm", "probs", "vc", resume=True, **base), JobRecorder())
    whole = verifier.run_verifier(store, verifier.VerifierSpec("lm", "probs", "vw", **base), JobRecorder())
    assert resumed["steps"] == 8 and resumed["loss"] == pytest.approx(whole["loss"], rel=1e-4)
    assert resumed["auroc"] == pytest.approx(whole["auroc"])


def test_verifier_refusals(svc, home, push_rows):
    stub, _ = svc
    good = {"question": "Anna has 2 apples.", "reasoning": "2 + 1 = 3", "answer": "3"}
    push_rows(Store(home), "loose", [good, {**good, "reasoning": "add one"}, {**good, "reasoning": "2 + 1 = 4"}],
              [good])
    cases = [
        (dict(dataset="loose"), grpc.StatusCode.INVALID_ARGUMENT, "rows 2, 3 "),
        (dict(model="missing"), grpc.StatusCode.NOT_FOUND, "missing"),
        (dict(output_name="lm"), grpc.StatusCode.ALREADY_EXISTS, "--overwrite"),
        (dict(resume=True), grpc.StatusCode.FAILED_PRECONDITION, "no checkpoint"),
        (dict(kind="both"), grpc.StatusCode.INVALID_ARGUMENT, "kind"),
    ]
    for extra, code, words in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.StartVerifierTraining(pb.VerifierTrainingRequest(
                **{**dict(model="lm", dataset="probs", output_name="v", device="cpu"), **extra}))
        assert err.value.code() == code, extra
        assert words in err.value.details(), (extra, err.value.details())
