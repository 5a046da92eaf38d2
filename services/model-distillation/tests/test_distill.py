"""Each strategy on tiny real models, end to end through run_distill (no gRPC here)."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
from transformers import AutoModelForCausalLM

from apt_model import errors
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2 as pb
from apt_model.modeling.io import load_model
from apt_model.runtime.joblog import JobLog, job_log_path, read_job_log
from apt_model.store import Store
from apt_model.testing import CancelAtStep, JobRecorder, assert_same_curve

from apt_distill.data import Corpus, read_texts
from apt_distill.distill import loss_terms, run_distill
from apt_distill.models import build_student, check_spec_against_models, derive_student, load_teacher
from apt_distill.objective import Objective
from apt_distill.spec import DistillSpec


def request(home, **kw) -> pb.DistillRequest:
    base = dict(teacher="tiny-t", output_name="stu", student_layers=1, strategies=["response"],
                corpus_paths=[str(home / "corpus.txt")], seq_len=32, batch_size=4, max_steps=30,
                learning_rate=3e-3, eval_every=10, device="cpu")
    base.update(kw)
    return pb.DistillRequest(**base)


@pytest.fixture
def distil(home, job_recorder):
    def run(running_log=False, **kw):
        store = Store(home)
        spec = DistillSpec.from_request(request(home, **kw))
        ctx = job_recorder()
        if running_log:  # as a service's job context has (JobContext.running_log)
            ctx.running_log = JobLog(job_log_path(home, ctx.job_id))
        result = run_distill(store, spec, ctx)
        return store, result, ctx
    return run


def assert_learns(ctx, key: str) -> None:
    curve = ctx.series(key)
    assert len(curve) >= 20, curve
    start, end = statistics.mean(curve[:3]), statistics.mean(curve[-5:])
    assert end < 0.9 * start, f"{key} did not fall: first {curve[:3]}, last {curve[-5:]}"


@pytest.mark.parametrize("kw,key", [
    (dict(strategies=["response"]), "kd_loss"),
    (dict(strategies=["response"], kl_direction="reverse", top_k=16, temperature=1.5, alpha=0.9), "kd_loss"),
    (dict(strategies=["feature"], feature_loss="mse"), "feature_loss"),
    (dict(strategies=["feature"], feature_loss="cosine", student_preset_size="tiny", student_layers=0,
          layer_map={0: 0, 1: 1}), "feature_loss"),
    (dict(strategies=["relation"], relation="sample", student_preset_size="tiny", student_layers=0), "relation_loss"),
    (dict(strategies=["relation"], relation="token", student_preset_size="tiny", student_layers=0), "relation_loss"),
])
def test_each_strategy_lowers_its_loss_and_student_reloads(distil, kw, key):
    store, result, ctx = distil(**kw)
    assert_learns(ctx, key)
    assert_learns(ctx, "ce_loss")
    entry = store.model("stu")
    assert store.verify("models", "stu") == []
    lineage = entry.meta["lineage"]
    assert lineage["parent"] == "tiny-t" and lineage["operation"] == "distill"
    params = lineage["parameters"]
    assert params["teacher"] == "tiny-t" and params["strategies"] == kw["strategies"]
    assert params["temperature"] == kw.get("temperature", 1.0) and params["alpha"] == kw.get("alpha", 0.5)
    assert entry.meta["metrics"]["eval_ppl"] == pytest.approx(result["eval_ppl"])
    assert result["teacher_eval_ppl"] > 1.0
    plain = AutoModelForCausalLM.from_pretrained(str(entry.path))  # plain transformers, no project code
    ids = torch.tensor([[1, 40, 41, 42]])
    assert plain(input_ids=ids).logits.shape == (1, 4, plain.config.vocab_size)
    assert not (store.root / "checkpoints" / "distill" / "stu").exists()


def test_response_distillation_beats_scratch_on_teacher_agreement(home, distil):
    """Same steps and data: the KD student's distributions end closer to the teacher's."""
    _, kd, _ = distil(output_name="kd", student_preset_size="tiny", student_layers=0, alpha=1.0,
                      temperature=1.0, max_steps=40)
    _, ce, _ = distil(output_name="ce", student_preset_size="tiny", student_layers=0, alpha=0.0,
                      temperature=1.0, max_steps=40)
    # with alpha 1 the objective is the KD term only; with alpha 0 it is CE only (kd_loss still measured)
    assert kd["kd_loss"] < ce["kd_loss"]


def test_width_mismatch_uses_a_learned_projection(home, distil):
    store, result, ctx = distil(teacher="small-t", student_preset_size="tiny", student_layers=0,
                                strategies=["feature"], layer_map={0: 1, 1: 3})
    assert_learns(ctx, "feature_loss")
    assert result["student_params"] < result["teacher_params"]
    # the projection is training state, not part of the student
    saved = load_model(store.model("stu").path)
    assert saved.config.hidden_size == 64
    assert not any(k.startswith("projections") for k in saved.state_dict())


def test_projection_maps_student_width_to_teacher_width_and_trains(home):
    store = Store(home)
    spec = DistillSpec.from_request(request(home, teacher="small-t", student_preset_size="tiny", student_layers=0,
                                            strategies=["feature"], layer_map={0: 1, 1: 3}))
    shapes = check_spec_against_models(store, spec)
    objective = Objective(spec, shapes)
    assert sorted(objective.projections) == ["0_1", "1_3"]
    proj = objective.projections["1_3"]
    assert (proj.in_features, proj.out_features) == (64, 128)
    teacher, t_tok = load_teacher(store, "small-t", "cpu")
    student, s_tok = build_student(store, spec, teacher, t_tok, "cpu")
    corpus = Corpus(read_texts(store, "", spec.corpus_paths), s_tok, t_tok, seq_len=32, batch_size=4,
                    same_tokenizer=True, teacher_max_positions=512, seed=0)
    opt = torch.optim.AdamW([*student.parameters(), *objective.parameters()], lr=1e-2)
    before = proj.weight.detach().clone()
    loss_terms(student, teacher, objective, corpus.train_batch(0), spec, True)["loss"].backward()
    opt.step()
    assert not torch.equal(before, proj.weight)


@pytest.mark.parametrize("strategies", [["response"], ["feature", "response"], ["relation", "response", "feature"]])
def test_vocabulary_mismatch_is_refused_for_response_with_the_difference(home, strategies):
    """Any mix that includes response distillation compares token ids, so it is refused."""
    spec = DistillSpec.from_request(request(home, student="other-tok", student_layers=0, strategies=strategies))
    with pytest.raises(errors.FailedPrecondition) as info:
        check_spec_against_models(Store(home), spec)
    msg = str(info.value)
    assert "identical tokenizers" in msg and "384 tokens" in msg and "320" in msg
    assert info.value.reason == "VOCABULARY_MISMATCH"


def test_vocabulary_mismatch_allowed_for_feature_and_relation_only(home, distil):
    store, result, ctx = distil(student="other-tok", student_layers=0, strategies=["feature", "relation"])
    assert_learns(ctx, "feature_loss")
    assert any("tokenizers differ" in w for w in ctx.warnings)
    assert store.exists("models", "stu")


def test_derived_student_copies_evenly_spaced_teacher_blocks(home):
    teacher = load_model(Store(home).model("small-t").path)
    student = derive_student(teacher, 2)
    assert student.config.num_hidden_layers == 2
    t, s = teacher.state_dict(), student.state_dict()
    for s_i, t_i in ((0, 0), (1, 3)):
        key = "model.layers.{}.mlp.down_proj.weight"
        assert torch.equal(s[key.format(s_i)], t[key.format(t_i)])
    assert torch.equal(s["lm_head.weight"], t["lm_head.weight"])
    ids = torch.tensor([[1, 50, 60]])
    assert student(input_ids=ids).logits.shape == teacher(input_ids=ids).logits.shape


def test_student_bigger_than_teacher_or_bad_map_is_invalid(home):
    store = Store(home)
    with pytest.raises(errors.InvalidArgument, match="more than the teacher"):
        check_spec_against_models(store, DistillSpec.from_request(request(home, student_layers=5)))
    spec = DistillSpec.from_request(request(home, strategies=["feature"], layer_map={0: 7}))
    with pytest.raises(errors.InvalidArgument, match="Unknown layer mapping 0:7"):
        check_spec_against_models(store, spec)


def test_lineage_is_json(home, distil):
    store, _, _ = distil(strategies=["response", "feature"], max_steps=3, eval_every=3)
    params = json.loads((store.model("stu").path / "apt.json").read_text())["lineage"]["parameters"]
    assert params["student_source"] == "derived:1-layers" and params["layer_map"] == {}


@pytest.mark.parametrize("changed", [dict(learning_rate=1e-3), dict(seq_len=64), dict(temperature=2.0),
                                     dict(strategies=["response", "feature"]), dict(batch_size=8)])
def test_resume_with_changed_settings_is_refused(home, changed):
    from apt_distill import checkpoint

    store = Store(home)
    first = DistillSpec.from_request(request(home))
    checkpoint.of(store, first).save(5, {}, checkpoint.settings(first), [])
    again = DistillSpec.from_request(request(home, **changed))
    with pytest.raises(errors.FailedPrecondition, match="different settings"):
        checkpoint.of(store, again).load(checkpoint.settings(again))
    # what may change between the two runs is not part of the settings a resume must repeat
    free = DistillSpec.from_request(request(home, eval_every=3, device="cpu", workers=2, sharding="fsdp"))
    assert checkpoint.settings(free) == checkpoint.settings(first)


@pytest.mark.parametrize("strategies", [["response"], ["response", "feature"]])
def test_two_ranks_distil_the_same_curve_as_one(home, distil, strategies):
    """--workers 2 (torchrun ranks, gloo): the same loss at every step as one rank (#18); rank 0
    keeps the job's running log, as one rank does."""
    from apt_model.modeling import trainlog

    kw = dict(strategies=strategies, max_steps=20, eval_every=10, seed=3)
    store, one, _ = distil(output_name="one", **kw)
    store, two, ctx = distil(output_name="two", workers=2, running_log=True, **kw)
    rows1, rows2 = (trainlog.read(store.model(n).path) for n in ("one", "two"))
    assert read_job_log(job_log_path(home, ctx.job_id)) == rows2
    assert [r["step"] for r in rows2] == list(range(1, 21))
    for a, b in zip(rows1, rows2):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    assert two["eval_ppl"] == pytest.approx(one["eval_ppl"], rel=1e-4)
    assert ctx.series("step")[-1] == 20  # rank 0's reports reached the job


@pytest.mark.parametrize("strategies", [["response"], ["response", "feature"]])
def test_two_fsdp_ranks_distil_the_same_curve_as_one(home, distil, strategies):
    """--sharding fsdp (FSDP2 fully_shard, gloo on CPU): each rank holds half of the student's
    weights, gradients and moments, and the 20 steps are those of one process at the same global
    batch and seed (the logged gradient norms are the whole student's); the stored student is whole."""
    from apt_model.modeling import trainlog

    kw = dict(strategies=strategies, max_steps=20, eval_every=10, seed=3)
    store, one, _ = distil(output_name="one", **kw)
    store, two, ctx = distil(output_name="two", workers=2, sharding="fsdp", **kw)
    rows1, rows2 = (trainlog.read(store.model(n).path) for n in ("one", "two"))
    assert_same_curve(rows2, rows1, 20)
    assert two["eval_ppl"] == pytest.approx(one["eval_ppl"], rel=1e-4)
    stored = load_model(store.model("two").path)
    assert sum(p.numel() for p in stored.parameters()) == two["student_params"] == one["student_params"]


def test_a_checkpoint_resumes_across_shardings_and_world_sizes(home):
    """One process's checkpoint resumes on 2 FSDP ranks (its moments sharded on load), whose own
    checkpoint (gathered whole) resumes on one: the end is the uninterrupted run's."""
    from apt_distill import checkpoint

    def run(ctx, **kw):  # 400 steps: the ranks report twice a second, so the second cancel lands late
        return run_distill(Store(home), DistillSpec.from_request(request(home, max_steps=400, eval_every=400, seed=3,
                                                                         **kw)), ctx)

    with pytest.raises(errors.Cancelled):
        run(CancelAtStep(5), output_name="cut")
    with pytest.raises(errors.Cancelled):
        run(CancelAtStep(15), output_name="cut", workers=2, sharding="fsdp", resume=True)
    spec = DistillSpec.from_request(request(home, output_name="cut"))
    assert 15 <= checkpoint.of(Store(home), spec).step() < 400
    resumed = run(JobRecorder(), output_name="cut", resume=True)
    whole = run(JobRecorder(), output_name="whole")
    assert resumed["steps"] == 400
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-3)
    assert resumed["eval_ppl"] == pytest.approx(whole["eval_ppl"], rel=1e-3)


def test_an_unknown_sharding_is_refused_naming_the_field(home):
    with pytest.raises(errors.InvalidArgument, match="unknown sharding 'zero3'; choose one of ddp, fsdp") as info:
        DistillSpec.from_request(request(home, workers=2, sharding="zero3"))
    assert info.value.violations[0][0] == "sharding"
