"""The same model and text give the same perplexity through `test`, `compare` and the pruning
report (#17): one token stream (lm.tokenize_documents), one window rule, one estimator."""

from __future__ import annotations

import pytest

from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pb
from apt_model.store import Store
from apt_model.testing import JobRecorder, make_tiny_model
from gateway.core.evaluate import EvalSpec, run_compare, run_test

from apt_prune.prune import run_prune
from apt_prune.spec import PruneSpec


def test_test_compare_and_the_pruning_report_agree_on_one_text(home, ctx):
    store = Store(home)
    text = home / "corpus.txt"
    make_tiny_model(store, "other", seed=3)
    report = run_prune(store, PruneSpec.from_request(pb.PruneRequest(
        name="tiny", output_name="out", strategy="magnitude", ratio=0.3, seq_len=32, eval_path=str(text))), ctx)
    tested = run_test(store, EvalSpec(names=("tiny",), eval_path=str(text), device="cpu"), JobRecorder())
    compared = run_compare(store, EvalSpec(names=("other", "tiny", "out"), eval_path=str(text), device="cpu"),
                           JobRecorder())
    by_name = {m["name"]: m for m in compared["models"]}
    # disjoint windows: every token is a target but the first of each window
    assert report["eval_tokens"] == tested["tokens_scored"] + report["eval_blocks"]
    assert report["before"]["perplexity"] == pytest.approx(tested["perplexity"], rel=1e-6, abs=1e-4)
    assert by_name["tiny"]["perplexity"] == pytest.approx(tested["perplexity"], rel=1e-9)
    assert report["after"]["perplexity"] == pytest.approx(by_name["out"]["perplexity"], rel=1e-6, abs=1e-4)
    assert report["eval_blocks"] > 1 and report["eval_text"] == str(text)
