"""The loss functions on hand-made tensors, and the spec's validation."""

from __future__ import annotations

import pytest
import torch

from apt_model import errors
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2 as pb

from apt_distill import losses
from apt_distill.models import default_layer_map, evenly_spaced_layers
from apt_distill.spec import DistillSpec

torch.set_num_threads(1)
G = torch.Generator().manual_seed(0)
MASK = torch.ones(2, 5, dtype=torch.bool)


def rand(*shape):
    return torch.randn(*shape, generator=G)


def test_kl_is_zero_for_identical_logits_and_positive_otherwise():
    t = rand(2, 5, 11)
    assert losses.response_kl(t, t, MASK, temperature=2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.response_kl(rand(2, 5, 11), t, MASK, temperature=2.0).item() > 0


def test_kl_matches_torch_and_is_scaled_by_t_squared():
    s, t, T = rand(2, 5, 11), rand(2, 5, 11), 3.0
    expected = torch.nn.functional.kl_div((s / T).log_softmax(-1), (t / T).log_softmax(-1), log_target=True,
                                          reduction="none").sum(-1).mean() * T * T
    assert losses.response_kl(s, t, MASK, temperature=T).item() == pytest.approx(expected.item(), rel=1e-5)


def test_reverse_kl_swaps_the_roles():
    s, t = rand(2, 5, 11), rand(2, 5, 11)
    fwd_swapped = losses.response_kl(t, s, MASK, temperature=1.0, direction="forward")
    assert losses.response_kl(s, t, MASK, temperature=1.0, direction="reverse").item() == pytest.approx(fwd_swapped.item())


def test_top_k_only_sees_the_teachers_top_tokens():
    t = rand(2, 5, 11)
    s = t.clone()
    bottom = t.topk(8, dim=-1, largest=False).indices
    s.scatter_(-1, bottom, 50.0)  # change only tokens outside the teacher's top 3
    assert losses.response_kl(s, t, MASK, temperature=1.0, top_k=3).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.response_kl(s, t, MASK, temperature=1.0).item() > 1.0


def test_masked_positions_do_not_count():
    s, t = rand(2, 5, 11), rand(2, 5, 11)
    mask = MASK.clone()
    mask[:, 3:] = False
    s2 = s.clone()
    s2[:, 3:] = 100.0
    a = losses.response_kl(s, t, mask, temperature=1.0)
    assert losses.response_kl(s2, t, mask, temperature=1.0).item() == pytest.approx(a.item())


def test_feature_losses():
    t = rand(2, 5, 8)
    assert losses.feature_loss(t, t, MASK, "mse").item() == pytest.approx(0.0)
    assert losses.feature_loss(torch.zeros_like(t), t, MASK, "mse").item() == pytest.approx(1.0)  # scale-free
    assert losses.feature_loss(3.0 * t, t, MASK, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert losses.feature_loss(-t, t, MASK, "cosine").item() == pytest.approx(2.0)


def test_rkd_is_invariant_to_scale_and_rotation_but_not_to_structure():
    x = rand(6, 4)
    q, _ = torch.linalg.qr(rand(4, 4))
    assert losses.rkd_distance(x, 5.0 * x @ q).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.rkd_angle(x, 5.0 * x @ q).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.rkd_distance(x, rand(6, 4)).item() > 1e-3
    # different widths are fine: relations live in each model's own space
    h_s, h_t = rand(4, 5, 8), rand(4, 5, 16)
    m = torch.ones(4, 5, dtype=torch.bool)
    assert losses.sample_relation(h_s, h_t, m, m).item() > 0


def test_token_relation_compares_similarity_matrices():
    h = rand(2, 5, 8)
    assert losses.token_relation(h, 2.0 * h, MASK).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.token_relation(h, rand(2, 5, 16), MASK).item() > 0


def test_layer_maps():
    assert default_layer_map(2, 4) == ((0, 1), (1, 3))
    assert default_layer_map(4, 4) == ((0, 0), (1, 1), (2, 2), (3, 3))
    assert evenly_spaced_layers(2, 4) == [0, 3]
    assert evenly_spaced_layers(3, 8) == [0, 4, 7]
    assert evenly_spaced_layers(1, 4) == [3]


def req(**kw):
    base = dict(teacher="t", output_name="o", student_layers=1, strategies=["response"], corpus_paths=["c.txt"])
    base.update(kw)
    return pb.DistillRequest(**base)


@pytest.mark.parametrize("kw,match", [
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(temperature=-1.0), "temperature must be > 0"),
    (dict(alpha=1.5), r"alpha must be in \[0, 1\]"),
    (dict(alpha=-0.1), r"alpha must be in \[0, 1\]"),
    (dict(strategies=["feature"], layer_map={-1: 0}), "Unknown layer mapping"),
    (dict(layer_map={0: 0}), "only used by the 'feature' strategy"),
    (dict(strategies=["magic"]), "Unknown strategy 'magic'"),
    (dict(strategies=[]), "at least one strategy"),
    (dict(student="s", student_layers=1), "exactly one student"),
    (dict(student_layers=0), "exactly one student"),
    (dict(student_preset_size="huge", student_layers=0), "Unknown student preset size"),
    (dict(kl_direction="sideways"), "kl_direction"),
    (dict(corpus_paths=[]), "training text"),
    (dict(strategies=["relation"], batch_size=2), "batch_size must be >= 3"),
    (dict(loss_weights={"response": 2.0}), "weighted by alpha"),
    (dict(output_name="../x"), "Invalid output model name"),
    (dict(device="tpu"), "device"),
])
def test_invalid_requests(kw, match):
    with pytest.raises(errors.InvalidArgument, match=match):
        DistillSpec.from_request(req(**kw))


def test_defaults_and_explicit_zero_alpha():
    spec = DistillSpec.from_request(req())
    assert (spec.temperature, spec.alpha, spec.kl_direction, spec.seq_len, spec.max_steps) == (1.0, 0.5, "forward", 128, 200)
    assert DistillSpec.from_request(req(alpha=0.0)).alpha == 0.0
