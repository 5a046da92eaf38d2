"""Verifier-guided search: budgets kept, the same tree for the same seed, shared prefixes that
change nothing, the tree as JSON, and the service's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
import torch
from google.protobuf import json_format

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2 as pb
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2_grpc
from apt_model.modeling.io import load_model, load_tokenizer
from apt_model.runtime.testing import serve_plugin
from apt_model.store import Store
from apt_reason.prompts import Chat
from apt_reason.scorer import Verifier
from apt_reason.stepsearch import StepSearch, line_end_ids, run

PLUGIN = Path(__file__).resolve().parents[1]
QUESTION = "Eva has 5 coins. Eva gets 3 more coins. Eva gives away 2 coins. How many coins does Eva have now?"


@pytest.fixture
def parts(vhome):
    store = Store(vhome)
    path = store.model("lm").path
    model, chat = load_model(path).eval(), Chat.of(load_tokenizer(path))
    pv = Verifier.load(store.model("pv").path, "pv", "cpu")
    return model, chat, pv, line_end_ids(chat), Verifier.load(store.model("ov").path, "ov", "cpu")


def _search(parts, strategy, budget, seed=0, verifier=None, **kw):
    model, chat, pv, ends, _ = parts
    s = StepSearch(model, chat, verifier or pv, QUESTION, ends, budget, kw.pop("max_new_tokens", 24),
                   generator=torch.Generator().manual_seed(seed), **kw)
    return run(strategy, s, n=kw.get("width", 0)), s


def _nodes(tree: dict) -> list[dict]:
    return [tree] + [n for c in tree["children"] for n in _nodes(c)]


@pytest.mark.parametrize("strategy", ["best_of_n", "beam", "dvts", "mcts"])
def test_every_strategy_keeps_to_the_budget_and_is_deterministic(parts, strategy):
    for budget in (5, 37, 120):
        found, s = _search(parts, strategy, budget, width=2, expand=3, max_depth=4)
        assert found.tokens == s.spent == found.tree["tokens"] <= budget, (budget, found.tokens)
        assert found.tree["answer"] == found.answer and found.tree["budget"] == budget
        nodes = _nodes(found.tree)[1:]
        assert sum(n["tokens"] for n in nodes) <= found.tokens
        assert all(n["depth"] <= 4 for n in nodes) and all(n["score"] is not None for n in nodes)
        again, _ = _search(parts, strategy, budget, width=2, expand=3, max_depth=4)
        assert json.dumps(again.tree) == json.dumps(found.tree)  # the same seed, the same tree
    if strategy == "mcts":  # it searches until the budget cannot pay for another expansion
        assert s.spent > 120 - 3 or all(n["terminal"] for n in nodes if not n["children"])
    chosen = [n for n in nodes if n["chosen"]]
    if found.answer is not None:
        assert chosen and chosen[-1]["terminal"] and chosen[-1]["answer"] == found.answer


def test_beam_search_keeps_width_paths_and_shares_the_prefix_without_changing_anything(parts):
    shared, s = _search(parts, "beam", 400, width=2, expand=3, max_depth=3, share_prefix=True)
    copied, _ = _search(parts, "beam", 400, width=2, expand=3, max_depth=3, share_prefix=False)
    assert json.dumps(shared.tree) == json.dumps(copied.tree) and shared.tokens == copied.tokens
    assert len(shared.tree["children"]) == 6  # the root: width * expand
    for depth in (1, 2):  # at most width live paths are expanded per depth
        expanded = [n for n in s.nodes if n.depth == depth and n.children]
        assert len(expanded) <= 2 and all(len(n.children) == 3 for n in expanded)


def test_dvts_keeps_one_path_per_subtree_and_mcts_backs_values_up(parts):
    _, s = _search(parts, "dvts", 400, width=3, expand=2, max_depth=3)
    for depth in (1, 2):
        assert len([n for n in s.nodes if n.depth == depth and n.children]) <= 3
    _, m = _search(parts, "mcts", 200, expand=3, max_depth=4, exploration=1.0)
    assert m.root.children and m.root.visits == 1 + sum(c.visits - 1 for c in m.root.children)
    for node in m.nodes[1:]:  # a node's visits: its first score, its own expansion, each backup through a child
        assert node.visits == (2 + sum(c.visits - 1 for c in node.children) if node.children else node.visits) >= 1


def test_best_of_n_with_an_outcome_verifier_picks_the_best_scored_answer(parts):
    found, s = _search(parts, "best_of_n", 96, verifier=parts[4], max_new_tokens=24)
    kids = found.tree["children"]
    assert len(kids) == 4 and all(k["terminal"] for k in kids)
    answered = [k for k in kids if k["answer"] is not None]
    if answered:
        assert found.answer == max(answered, key=lambda k: k["score"])["answer"]
    assert found.tree["verifier"] == "outcome"


@pytest.fixture
def svc(vhome):
    with serve_plugin(PLUGIN, vhome) as (channel, _):
        yield reasoning_pb2_grpc.ReasoningStub(channel), channel


def test_beam_search_through_the_service(svc, wait_job, vhome):
    stub, channel = svc
    job = stub.StartTreeSearch(pb.TreeSearchRequest(
        model="lm", verifier="pv", dataset="probs", output_name="bs", strategy="beam", token_budget=60,
        max_new_tokens=20, max_questions=2, beam_width=2, expand=2, max_depth=3, device="cpu", seed=1))
    done = wait_job(channel, job.id, timeout=240)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
    out = json_format.MessageToDict(done.result)
    assert out["questions"] == 2 and out["tokens_generated"] <= 2 * 60
    tree = json.loads(out["tree_json"])
    assert tree["strategy"] == "beam" and tree["verifier"] == "process" and len(tree["children"]) == 4
    assert len(json.loads((Store(vhome).dataset("bs").path / "trees.json").read_text())) == 2


def test_verifier_search_refusals(svc):
    stub, _ = svc
    base = dict(model="lm", prompt="q", output_name="r", device="cpu")
    cases = [
        (dict(strategy="beam"), grpc.StatusCode.INVALID_ARGUMENT, "--verifier"),
        (dict(strategy="greedy", verifier="pv"), grpc.StatusCode.INVALID_ARGUMENT, "not by greedy"),
        (dict(strategy="beam", verifier="ov"), grpc.StatusCode.FAILED_PRECONDITION, "outcome verifier"),
        (dict(strategy="mcts", verifier="lm"), grpc.StatusCode.FAILED_PRECONDITION, "not a verifier"),
        (dict(strategy="best_of_n", verifier="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
        (dict(strategy="self_consistency", max_depth=3), grpc.StatusCode.INVALID_ARGUMENT, "--max-depth"),
        (dict(strategy="beam", verifier="pv", exploration=2.0), grpc.StatusCode.INVALID_ARGUMENT, "--exploration"),
        (dict(strategy="best_of_n", verifier="ov", token_budget=2_000_000_000, max_new_tokens=1),
         grpc.StatusCode.RESOURCE_EXHAUSTED, "GiB"),
    ]
    for extra, code, words in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.StartTreeSearch(pb.TreeSearchRequest(**{**base, **extra}))
        assert err.value.code() == code, extra
        assert words in err.value.details(), (extra, err.value.details())
