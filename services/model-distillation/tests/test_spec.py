"""DistillSpec.from_request alone (the service runs it on every start): each refusal's whole
message as a caller reads it, the open ends of every range, the documented defaults, and what a
spec records as lineage. The service's own refusals over gRPC are in test_service.py."""

from __future__ import annotations

import math

import pytest

from apt_model import errors
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2 as pb

from apt_distill.spec import DistillSpec

NAME_RULE = "use 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit (no '/', no '..')."
STUDENT = ("Give exactly one student: --student NAME (a store model), --student-preset-size SIZE "
           "(an apt preset: tiny, small, base, medium) or --student-layers N (derived from the teacher).")


def _spec(registered=frozenset(), **fields) -> DistillSpec:
    base = dict(teacher="t", output_name="o", student_layers=1, strategies=["response"], corpus_paths=["c.txt"])
    base.update(fields)
    return DistillSpec.from_request(pb.DistillRequest(**base), frozenset(registered))


@pytest.mark.parametrize("fields,message", [
    (dict(teacher=""), f"Invalid teacher model name '': {NAME_RULE}"),
    (dict(output_name="../x"), f"Invalid output model name '../x': {NAME_RULE}"),
    (dict(student="a/b", student_layers=0), f"Invalid student model name 'a/b': {NAME_RULE}"),
    (dict(dataset="-d"), f"Invalid dataset name '-d': {NAME_RULE}"),
    (dict(student="t", student_layers=0), "The student must differ from the teacher."),
    (dict(student="s"), STUDENT),
    (dict(student_layers=0), STUDENT),
    (dict(student_preset_size="tiny"), STUDENT),
    (dict(student_preset_size="huge", student_layers=0),
     "Unknown student preset size 'huge'; choose one of tiny, small, base, medium."),
    (dict(student_layers=-2), "student_layers must be positive, got -2."),
    (dict(strategies=[]), "Choose at least one strategy: response, feature, relation."),
    (dict(strategies=["magic"]), "Unknown strategy 'magic'; choose from response, feature, relation (custom "
                                 "losses are registered in the 'apt.distillation.loss' entry-point group)."),
    (dict(strategies=["response", "magic", "worse"]), "Unknown strategy 'magic'; choose from response, feature, "
     "relation (custom losses are registered in the 'apt.distillation.loss' entry-point group)."),
    (dict(temperature=0.0), "temperature must be > 0, got 0.0."),
    (dict(temperature=-1.0), "temperature must be > 0, got -1.0."),
    (dict(temperature=math.nan), "temperature must be > 0, got nan."),
    (dict(temperature=math.inf), "temperature must be > 0, got inf."),
    (dict(alpha=1.5), "alpha must be in [0, 1], got 1.5."),
    (dict(alpha=-0.1), "alpha must be in [0, 1], got -0.1."),
    (dict(alpha=math.nan), "alpha must be in [0, 1], got nan."),
    (dict(top_k=-1), "top_k must be >= 0 (0 = the whole vocabulary), got -1."),
    (dict(layer_map={0: 0}), "layer_map is only used by the 'feature' strategy; add it or drop the map."),
    (dict(strategies=["feature"], layer_map={-1: 0}), "Unknown layer mapping -1:0: layers are 0-based block indices."),
    (dict(strategies=["feature"], layer_map={0: -3}), "Unknown layer mapping 0:-3: layers are 0-based block indices."),
    (dict(kl_direction="sideways"), "kl_direction 'sideways' is not one of: forward, reverse."),
    (dict(feature_loss="l1"), "feature_loss 'l1' is not one of: mse, cosine."),
    (dict(relation="graph"), "relation 'graph' is not one of: sample, token."),
    (dict(device="tpu"), "device 'tpu' is not one of: auto, cpu, cuda."),
    (dict(loss_weights={"response": 2.0}), "loss_weights has 'response'; weights apply to feature, relation and "
                                          "custom losses (the response term is weighted by alpha)."),
    (dict(loss_weights={"feature": -1.0}), "loss weight feature=-1.0 must be a finite number >= 0."),
    (dict(loss_weights={"relation": math.inf}), "loss weight relation=inf must be a finite number >= 0."),
    (dict(corpus_paths=[]), "Give training text: --dataset NAME (a store dataset) or --corpus-paths FILE."),
    (dict(seq_len=-1), "seq_len must be > 0 (0 = default 128), got -1."),
    (dict(seq_len=1), "seq_len must be at least 2 tokens, got 1."),
    (dict(batch_size=-4), "batch_size must be > 0 (0 = default 8), got -4."),
    (dict(strategies=["relation"], batch_size=2),
     "Sample relations (RKD) compare the samples of a batch: batch_size must be >= 3, got 2."),
    (dict(max_steps=-5), "max_steps must be > 0 (0 = default 200), got -5."),
    (dict(learning_rate=-0.1), "learning_rate must be > 0, got -0.1."),
    (dict(learning_rate=math.nan), "learning_rate must be > 0, got nan."),
    (dict(warmup_steps=-1), "warmup_steps must be in [0, max_steps), got -1."),
    (dict(warmup_steps=10, max_steps=10), "warmup_steps must be in [0, max_steps), got 10."),
    (dict(eval_every=-1), "eval_every must be > 0 (0 = default 50), got -1."),
    (dict(checkpoint_every=-1), "checkpoint_every must be > 0 (0 = default 100), got -1."),
    (dict(workers=65), "workers must be in 1..64."),
    (dict(workers=3), "batch_size (8) must be a multiple of workers (3): each rank trains an equal share of the "
                      "global batch."),
    (dict(nodes=3), "batch_size (8) must be a multiple of workers x nodes (3): each rank trains an equal share "
                    "of the global batch."),
    (dict(warmup_steps=2, max_steps=2), "warmup_steps must be in [0, max_steps), got 2."),
    (dict(sharding="zero3"), "unknown sharding 'zero3'; choose one of ddp, fsdp."),
])
def test_each_refusal_names_the_field_and_the_fix(fields, message):
    with pytest.raises(errors.InvalidArgument) as err:
        _spec(**fields)
    assert err.value.message == message


def test_a_layout_refusal_names_its_field_for_the_callers_form():
    """The BadRequest field violation of a workers/nodes/batch refusal, as the CLI and the
    clients show it next to the field."""
    with pytest.raises(errors.InvalidArgument) as err:
        _spec(workers=3)
    assert err.value.violations == [("batch_size", "batch_size (8) must be a multiple of workers (3): each rank "
                                                   "trains an equal share of the global batch")]


def test_registered_losses_are_offered_and_accepted():
    with pytest.raises(errors.InvalidArgument) as err:
        _spec(registered={"zeta", "alpha_loss"}, strategies=[])
    assert err.value.message == ("Choose at least one strategy: response, feature, relation or a registered "
                                 "loss (alpha_loss, zeta).")
    with pytest.raises(errors.InvalidArgument) as err:
        _spec(registered={"zeta", "alpha_loss"}, strategies=["magic"])
    assert err.value.message.startswith("Unknown strategy 'magic'; choose from response, feature, relation, "
                                        "alpha_loss, zeta (custom losses")
    spec = _spec(registered={"zeta"}, strategies=["zeta", "response", "zeta", "feature"],
                 loss_weights={"zeta": 0.5, "feature": 2.0})
    assert spec.strategies == ("zeta", "response", "feature") and spec.custom_losses == ("zeta",)
    assert spec.uses == frozenset({"zeta", "response", "feature"})
    assert (spec.weight("zeta"), spec.weight("feature"), spec.weight("relation")) == (0.5, 2.0, 1.0)
    assert spec.loss_weights == (("feature", 2.0), ("zeta", 0.5))


def test_the_open_ends_of_each_range_are_accepted():
    assert _spec(alpha=0.0).alpha == 0.0 and _spec(alpha=1.0).alpha == 1.0
    assert _spec(temperature=1e-6).temperature == 1e-6
    assert _spec(top_k=0).top_k == 0
    assert _spec(strategies=["feature"], layer_map={0: 0}).layer_map == ((0, 0),)
    assert _spec(seq_len=2).seq_len == 2
    assert _spec(strategies=["relation"], batch_size=3).batch_size == 3
    assert _spec(strategies=["relation"], relation="token", batch_size=2).batch_size == 2
    assert _spec(warmup_steps=9, max_steps=10).warmup_steps == 9
    assert _spec(max_steps=1).warmup_steps == 1          # a one-step run keeps its single warm-up step
    assert _spec(warmup_steps=1).warmup_steps == 1        # one warm-up step given is kept, not the default 10
    assert _spec(loss_weights={"relation": 0.0}).loss_weights == (("relation", 0.0),)
    assert (_spec(workers=64, batch_size=64).workers, _spec(workers=2, nodes=4, batch_size=8).nodes) == (64, 4)
    assert _spec(student="s", student_layers=0).student == "s"
    assert _spec(student_preset_size="small", student_layers=0).student_preset_size == "small"


def test_a_spec_fills_the_documented_defaults_and_keeps_what_was_given():
    spec = _spec()
    assert (spec.teacher, spec.output_name, spec.student_layers) == ("t", "o", 1)
    assert (spec.temperature, spec.alpha, spec.kl_direction, spec.top_k, spec.layer_map) == (1.0, 0.5, "forward", 0, ())
    assert (spec.feature_loss, spec.relation, spec.loss_weights, spec.device) == ("mse", "sample", (), "auto")
    assert (spec.seq_len, spec.batch_size, spec.max_steps, spec.learning_rate, spec.warmup_steps) == \
        (128, 8, 200, 1e-3, 10)
    assert (spec.eval_every, spec.checkpoint_every, spec.seed, spec.resume, spec.overwrite) == (50, 100, 0, False, False)
    assert (spec.workers, spec.nodes, spec.sharding, spec.custom_losses) == (1, 1, "ddp", ())
    assert _spec(max_steps=100).warmup_steps == 5 and _spec(max_steps=30).warmup_steps == 1
    given = _spec(strategies=["feature", "relation"], temperature=2.0, alpha=0.25, kl_direction="reverse", top_k=5,
                  layer_map={1: 3, 0: 1}, feature_loss="cosine", relation="token", dataset="corpus",
                  corpus_paths=[], seq_len=16, batch_size=4, max_steps=40, learning_rate=0.01, warmup_steps=3,
                  seed=7, resume=True, overwrite=True, device="cpu", eval_every=5, checkpoint_every=9,
                  workers=2, sharding="fsdp")
    assert (given.temperature, given.alpha, given.kl_direction, given.top_k, given.layer_map) == \
        (2.0, 0.25, "reverse", 5, ((0, 1), (1, 3)))
    assert (given.feature_loss, given.relation, given.dataset, given.corpus_paths, given.device) == \
        ("cosine", "token", "corpus", (), "cpu")
    assert (given.seq_len, given.batch_size, given.max_steps, given.learning_rate, given.warmup_steps) == \
        (16, 4, 40, 0.01, 3)
    assert (given.seed, given.resume, given.overwrite, given.eval_every, given.checkpoint_every) == \
        (7, True, True, 5, 9)
    assert (given.workers, given.nodes, given.sharding, given.strategies) == (2, 1, "fsdp", ("feature", "relation"))


def test_the_student_source_names_where_the_student_comes_from():
    assert _spec(student="s", student_layers=0).student_source == "store:s"
    assert _spec(student_preset_size="tiny", student_layers=0).student_source == "preset:tiny"
    assert _spec(student_layers=3).student_source == "derived:3-layers"


def test_lineage_records_the_run_and_leaves_out_what_is_not_a_parameter():
    spec = _spec(registered={"zeta"}, strategies=["feature", "zeta"], layer_map={0: 2}, loss_weights={"zeta": 0.5},
                 resume=True, overwrite=True)
    lineage = spec.lineage()
    assert not {"resume", "overwrite", "output_name", "custom_losses"} & set(lineage)
    assert lineage["layer_map"] == {"0": 2} and lineage["loss_weights"] == {"zeta": 0.5}
    assert lineage["strategies"] == ["feature", "zeta"] and lineage["corpus_paths"] == ["c.txt"]
    assert lineage["student_source"] == "derived:1-layers" and lineage["teacher"] == "t"
    assert lineage["seq_len"] == 128 and lineage["workers"] == 1
