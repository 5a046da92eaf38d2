"""CoT SFT, verifier training and GRPO with --workers (#18): ranks under torchrun, gloo on CPU
(apt_model.modeling.distributed). Every rank draws the step's global batch (RL: the step's
questions) and trains its share, so 2 ranks train the curve of 1."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2 as pb
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2_grpc
from apt_model.modeling import trainlog
from apt_model.runtime.testing import serve_plugin
from apt_model.store import Store
from apt_model import errors
from apt_model.testing import JobRecorder, assert_same_curve

from apt_reason import cot, rl, verifier

PLUGIN = Path(__file__).resolve().parents[1]


def same_curves(store: Store, keys: tuple[str, ...], steps: int = 20, names: tuple[str, str] = ("one", "two")) -> None:
    """Stored models 'one' (1 process) and 'two' (2 ranks), or ``names``, logged the same ``keys`` at every step."""
    one, two = (trainlog.read(store.model(n).path) for n in names)
    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(1, steps + 1))
    for a, b in zip(one, two):
        for key in keys:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-7), (a["step"], key)
    # each rank trained its share, not the whole batch (the Loop counts a rank's tokens x world;
    # rounding may drop a token a step)
    seen = [sum(r["tokens_per_s"] * r["step_seconds"] for r in rows) for rows in (one, two)]
    assert seen[1] == pytest.approx(seen[0], rel=0.02)


def test_two_ranks_train_the_cot_curve_of_one(home):
    """Completions differ in length: the loss is the global batch's token mean only if each rank
    normalises by the global count of completion tokens."""
    store = Store(home)
    for name, workers in (("one", 1), ("two", 2)):
        cot.run_cot(store, cot.CotSpec("lm", "probs", name, max_steps=20, batch_size=4, eval_questions=2,
                                       max_new_tokens=8, checkpoint_every=0, device="cpu", seed=3,
                                       workers=workers), JobRecorder())
    same_curves(store, ("loss", "grad_norm"))


def test_two_ranks_train_the_outcome_verifier_curve_of_one(home):
    """The outcome verifier; a process verifier's head has dropout (transformers' 0.1 for token
    classification), whose masks two ranks draw other than one process does: the same expected
    gradient, not the same numbers, so no step-by-step equality is claimed for it."""
    store = Store(home)
    for name, workers in (("one", 1), ("two", 2)):
        verifier.run_verifier(store, verifier.VerifierSpec("lm", "probs", name, max_steps=20, kind="outcome",
                                                           batch_size=4, eval_examples=8, checkpoint_every=0,
                                                           device="cpu", seed=3, workers=workers), JobRecorder())
    same_curves(store, ("loss", "grad_norm"))


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_two_ranks_train_the_grpo_curve_of_one(coin_sft, loss_type):
    """Each rank samples its share of a step's groups, each group from its own generator. The
    coin model's completions end at different lengths and dynamic sampling drops about one group
    in eight, so the ranks hold unequal numbers of kept tokens (dapo's normaliser) and of kept
    sequences (grpo's): the loss is one process's only if each rank takes its part of the global one."""
    store = coin_sft
    for name, workers in (("one", 1), ("two", 2)):
        out = rl.run_rl(store, rl.RLSpec("coin-sft", "coin", name, max_steps=20, group=4, questions_per_step=4,
                                         max_new_tokens=8, learning_rate=1e-4, eval_questions=2, beta=0.04,
                                         loss_type=loss_type, format_weight=0.5, patience=20, checkpoint_every=0,
                                         device="cpu", seed=3, workers=workers), JobRecorder())
        assert out["stopped"] == ""
    same_curves(store, ("loss", "grad_norm", "reward_mean", "frac_reward_zero_std", "completion_length",
                        "entropy", "kl", "clip_ratio"))
    rows = trainlog.read(store.model("two").path)
    assert any(0 < r["frac_reward_zero_std"] < 1 for r in rows)  # some steps trained on some groups only


def test_layouts_the_ranks_cannot_run_are_refused(home):
    with serve_plugin(PLUGIN, home) as (channel, _):
        stub = reasoning_pb2_grpc.ReasoningStub(channel)
        base = dict(model="lm", dataset="probs", output_name="x", device="cpu")
        for start, request, field in (
                (stub.StartCotTraining, pb.CotTrainingRequest(**base, batch_size=3, workers=2), "batch_size"),
                (stub.StartVerifierTraining, pb.VerifierTrainingRequest(**base, batch_size=3, workers=2), "batch_size"),
                (stub.StartRLTraining, pb.RLTrainingRequest(**base, questions_per_step=3, workers=2),
                 "questions_per_step")):
            with pytest.raises(grpc.RpcError) as info:
                start(request)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"{field} (3) must be a multiple of workers (2)" in info.value.details()
            request.nodes = 2
            setattr(request, field, 4)
            with pytest.raises(grpc.RpcError) as info:
                start(request)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "--workers N" in info.value.details()


@pytest.mark.parametrize("spec", [cot.CotSpec("lm", "probs", "x"), verifier.VerifierSpec("lm", "probs", "x"),
                                  rl.RLSpec("lm", "probs", "x")])
def test_a_two_rank_checkpoint_resumes_on_one_rank(spec):
    """workers, nodes and sharding are not among the settings a resume must repeat."""
    import dataclasses

    assert dataclasses.replace(spec, workers=2).settings() == spec.settings()
    assert dataclasses.replace(spec, workers=2, nodes=2).settings() == spec.settings()
    assert dataclasses.replace(spec, workers=2, sharding="fsdp").settings() == spec.settings()


def test_two_fsdp_ranks_train_the_cot_curve_of_one(home):
    """--sharding fsdp (FSDP2 fully_shard of each block, gloo on CPU): the 20 steps are one process's,
    and so are the exact-match scores every rank decodes through the sharded model at steps 10 and
    20; the stored model (gathered whole on rank 0) scores as one process's does."""
    store = Store(home)
    results = {}
    for name, kw in (("one", {}), ("two", dict(workers=2, sharding="fsdp"))):
        results[name] = cot.run_cot(store, cot.CotSpec("lm", "probs", name, max_steps=20, batch_size=4,
                                                       eval_questions=2, max_new_tokens=8, eval_every=10,
                                                       checkpoint_every=0, device="cpu", seed=3, **kw), JobRecorder())
    one, two = (trainlog.read(store.model(n).path) for n in ("one", "two"))
    assert_same_curve(two, one, 20)
    assert [r.get("eval_exact_match") for r in two] == [r.get("eval_exact_match") for r in one]
    assert results["two"]["eval_exact_match"] == results["one"]["eval_exact_match"]
    assert results["two"]["loss"] == pytest.approx(results["one"]["loss"], rel=1e-4)


def test_two_fsdp_ranks_train_the_outcome_verifier_curve_of_one(home):
    store = Store(home)
    results = {}
    for name, kw in (("one", {}), ("two", dict(workers=2, sharding="fsdp"))):
        results[name] = verifier.run_verifier(store, verifier.VerifierSpec(
            "lm", "probs", name, max_steps=20, kind="outcome", batch_size=4, eval_examples=8, checkpoint_every=0,
            device="cpu", seed=3, **kw), JobRecorder())
    one, two = (trainlog.read(store.model(n).path) for n in ("one", "two"))
    assert_same_curve(two, one, 20)
    # the stored verifier (gathered whole on rank 0) scores the held-out solutions as one process's does
    assert results["two"]["auroc"] == pytest.approx(results["one"]["auroc"], rel=1e-4)


def test_a_verifier_checkpoint_resumes_across_shardings_and_world_sizes(home, report_every_step):
    """One process's checkpoint resumes on 2 FSDP ranks (its moments sharded on load), whose own
    checkpoint (the verifier's whole state, gathered) resumes on one: every step is the
    uninterrupted run's."""
    from apt_model.modeling.checkpoint import RunCheckpoint
    from apt_model.testing import CancelAtStep

    store = Store(home)

    def run(ctx, name, **kw):
        return verifier.run_verifier(store, verifier.VerifierSpec(
            "lm", "probs", name, max_steps=100, kind="outcome", batch_size=4, eval_examples=8, checkpoint_every=0,
            device="cpu", seed=3, **kw), ctx)

    with pytest.raises(errors.Cancelled):
        run(CancelAtStep(5), "cut")
    with pytest.raises(errors.Cancelled):
        run(CancelAtStep(12), "cut", workers=2, sharding="fsdp", resume=True)
    cut = RunCheckpoint(store, verifier.KIND, "cut").step()
    assert 12 <= cut < 100
    assert run(JobRecorder(), "cut", resume=True)["steps"] == 100
    run(JobRecorder(), "whole")
    rows, whole = (trainlog.read(store.model(n).path) for n in ("cut", "whole"))
    assert [r["step"] for r in rows] == list(range(1, 101))
    for a, b in zip(whole, rows):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4), f"step {b['step']}"


def test_an_unknown_sharding_is_refused():
    base = dict(model="lm", dataset="probs", output_name="x", workers=2)
    for spec_class, request in ((cot.CotSpec, pb.CotTrainingRequest(**base, batch_size=4, sharding="zero3")),
                                (verifier.VerifierSpec, pb.VerifierTrainingRequest(**base, batch_size=4,
                                                                                   sharding="zero3")),
                                (rl.RLSpec, pb.RLTrainingRequest(**base, questions_per_step=4, sharding="zero3"))):
        with pytest.raises(errors.InvalidArgument, match="unknown sharding 'zero3'; choose one of ddp, fsdp") as info:
            spec_class.from_request(request)
        assert info.value.violations[0][0] == "sharding"
    assert rl.RLSpec.from_request(pb.RLTrainingRequest(**base, questions_per_step=4, sharding="fsdp")).sharding == "fsdp"
    assert rl.RLSpec.from_request(pb.RLTrainingRequest(**base, questions_per_step=4)).sharding == "ddp"


def grpo_spec(name: str, steps: int, **kw) -> rl.RLSpec:
    """GRPO on the coin questions, one group a rank at 2 ranks, the KL term on (its reference is
    sharded too under FSDP)."""
    return rl.RLSpec("coin-sft", "coin", name, max_steps=steps, group=4, questions_per_step=2, max_new_tokens=8,
                     learning_rate=1e-4, eval_questions=2, beta=0.04, loss_type="dapo", format_weight=0.5,
                     patience=20, checkpoint_every=0, device="cpu", seed=3, **kw)


def test_two_fsdp_ranks_train_the_grpo_curve_of_one(coin_sft):
    """--sharding fsdp: the policy and the KL reference sharded over 2 ranks, each rank sampling
    its group on the policy gathered whole, completions of different lengths. A step that drops
    one rank's group only leaves that rank idle: it runs the dropped group, every token masked,
    through the same forwards as the other (without, FSDP's collectives would not match)."""
    store = coin_sft
    results = {name: rl.run_rl(store, grpo_spec(name, 8, **kw), JobRecorder())
               for name, kw in (("one", {}), ("two", dict(workers=2, sharding="fsdp")))}
    same_curves(store, ("loss", "grad_norm", "reward_mean", "frac_reward_zero_std", "completion_length",
                        "entropy", "kl", "clip_ratio"), steps=8)
    assert 0.5 in [r["frac_reward_zero_std"] for r in trainlog.read(store.model("two").path)]  # a rank idle
    # the stored policy (gathered whole on rank 0) scores as one process's does
    assert results["two"]["eval_exact_match"] == results["one"]["eval_exact_match"]


def test_a_grpo_checkpoint_resumes_across_shardings_and_world_sizes(coin_sft, report_every_step):
    """One process's checkpoint resumes on 2 FSDP ranks (the policy, its moments and the last good
    weights sharded on load), whose own checkpoint (gathered whole) resumes on one: every step is
    the uninterrupted run's."""
    from apt_model.modeling.checkpoint import RunCheckpoint
    from apt_model.testing import CancelAtStep

    store = coin_sft
    with pytest.raises(errors.Cancelled):
        rl.run_rl(store, grpo_spec("cut", 12), CancelAtStep(3))
    with pytest.raises(errors.Cancelled):
        rl.run_rl(store, grpo_spec("cut", 12, workers=2, sharding="fsdp", resume=True), CancelAtStep(6))
    assert 6 <= RunCheckpoint(store, rl.KIND, "cut").step() < 12
    assert rl.run_rl(store, grpo_spec("cut", 12, resume=True), JobRecorder())["steps"] == 12
    rl.run_rl(store, grpo_spec("whole", 12), JobRecorder())
    same_curves(store, ("loss", "grad_norm", "reward_mean", "kl"), steps=12, names=("whole", "cut"))
