"""Perplexity against transformers' own loss, and the timed generation loop against generate()."""

from __future__ import annotations

import math

import pytest
import torch

from apt_model import errors
from apt_model.modeling import lm
from apt_model.modeling.io import load_model, load_tokenizer
from apt_model.testing import SAMPLE_TEXT


@pytest.fixture
def model_and_tok(store, tiny):
    folder = store.model(tiny).path
    return load_model(folder), load_tokenizer(folder)


def _ids(tok, n):
    ids = tok(" ".join(SAMPLE_TEXT), return_tensors="pt").input_ids[0]
    assert ids.numel() >= n
    return ids[:n]


def test_single_window_perplexity_equals_transformers_loss(model_and_tok):
    model, tok = model_and_tok
    ids = _ids(tok, 200)
    with torch.no_grad():
        ref = math.exp(float(model(ids.unsqueeze(0), labels=ids.unsqueeze(0)).loss))
    got = lm.perplexity(model, ids, max_length=256)
    assert got.tokens_scored == 199 and got.windows == 1
    assert abs(got.perplexity - ref) / ref < 1e-4


@pytest.mark.parametrize("stride", [32, 64])
def test_strided_perplexity_equals_reference_recipe(model_and_tok, stride):
    """The transformers 'perplexity of fixed-length models' loop, with exact token counts."""
    model, tok = model_and_tok
    ids = _ids(tok, 300).unsqueeze(0)
    max_length, seq_len = 64, ids.size(1)
    nll_sum, n_tokens, prev_end = 0.0, 0, 0
    with torch.no_grad():
        for begin in range(0, seq_len, stride):
            end = min(begin + max_length, seq_len)
            trg_len = end - prev_end
            input_ids = ids[:, begin:end]
            target_ids = input_ids.clone()
            target_ids[:, :-trg_len] = -100
            loss = model(input_ids, labels=target_ids).loss
            counted = int((target_ids[:, 1:] != -100).sum())  # labels the model's shifted loss averages
            nll_sum += float(loss) * counted
            n_tokens += counted
            prev_end = end
            if end == seq_len:
                break
    ref = math.exp(nll_sum / n_tokens)
    got = lm.perplexity(model, ids[0], max_length=max_length, stride=stride)
    assert got.tokens_scored == n_tokens
    assert abs(got.perplexity - ref) / ref < 1e-4


def test_perplexity_rejects_bad_input(model_and_tok):
    model, _ = model_and_tok
    with pytest.raises(errors.InvalidArgument):
        lm.perplexity(model, torch.tensor([1]))
    with pytest.raises(errors.InvalidArgument):
        lm.perplexity(model, torch.arange(10), max_length=8, stride=9)


def test_greedy_generation_matches_transformers_generate(model_and_tok):
    model, tok = model_and_tok
    g = lm.generate(model, tok, "The quick", lm.GenerationParams(max_new_tokens=12))
    prompt = torch.tensor([[tok.bos_token_id] + tok("The quick", add_special_tokens=False).input_ids])
    with torch.no_grad():
        ref = model.generate(prompt, max_new_tokens=12, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)[0, prompt.size(1):].tolist()
    assert g.token_ids == ref
    assert g.prompt_tokens == prompt.size(1) and g.prefill_seconds > 0


def test_sampling_is_seeded(model_and_tok):
    model, tok = model_and_tok
    p = lm.GenerationParams(max_new_tokens=10, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, seed=7)
    a, b = lm.generate(model, tok, "机器", p), lm.generate(model, tok, "机器", p)
    assert a.token_ids == b.token_ids
    greedy = lm.generate(model, tok, "机器", lm.GenerationParams(max_new_tokens=10))
    others = {tuple(lm.generate(model, tok, "机器", lm.GenerationParams(
        max_new_tokens=10, do_sample=True, temperature=1.5, seed=s)).token_ids) for s in range(4)}
    assert len(others | {tuple(greedy.token_ids)}) > 1  # sampling really samples


def test_generation_params_validated():
    with pytest.raises(errors.InvalidArgument):
        lm.GenerationParams(max_new_tokens=0).validate()
    with pytest.raises(errors.InvalidArgument):
        lm.GenerationParams(do_sample=True, temperature=0).validate()
    with pytest.raises(errors.InvalidArgument):
        lm.GenerationParams(top_p=1.5).validate()


def test_random_windows_depend_only_on_seed_and_step():
    ids = torch.arange(1000)
    a = lm.random_windows(ids, 4, 16, seed=1, step=5)
    assert torch.equal(a, lm.random_windows(ids, 4, 16, seed=1, step=5))
    assert not torch.equal(a, lm.random_windows(ids, 4, 16, seed=1, step=6))
    assert a.shape == (4, 17) and torch.equal(a[:, 1:] - a[:, :-1], torch.ones(4, 16, dtype=torch.long))


def test_fused_linear_cross_entropy_matches_plain(model_and_tok):
    from apt_model.modeling.loss import can_fuse, causal_lm_loss, linear_cross_entropy

    model, tok = model_and_tok
    model.train()
    assert can_fuse(model)
    ids = _ids(tok, 2 * 33).view(2, 33)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    grads = {}
    for fused in (False, True):
        model.zero_grad()
        loss = causal_lm_loss(model, inputs, targets, fused=fused)
        (loss * 0.5).backward()  # a scaled upstream gradient, as with gradient accumulation
        grads[fused] = (float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()})
    assert abs(grads[True][0] - grads[False][0]) < 1e-5
    for name, g in grads[False][1].items():
        torch.testing.assert_close(grads[True][1][name], g, rtol=1e-4, atol=1e-6)
    h, w, t = torch.randn(10, 8), torch.randn(20, 8), torch.randint(0, 20, (10,))
    torch.testing.assert_close(linear_cross_entropy(h, w, t, chunk=3),
                               torch.nn.functional.cross_entropy(h @ w.T, t))


def test_one_estimator_test_pruning_and_distillation_agree(model_and_tok):
    """The number 'apt-model test' prints, the pruning report's (the held-out stream, in the same
    windows as test) and the distillation report's (validation batches, windows of S) for the
    same model and tokens: one estimator, so equal to 1e-6 relative."""
    from apt_distill.data import Batch
    from apt_distill.distill import evaluate
    from apt_prune.measure import perplexity as pruning_perplexity

    model, tok = model_and_tok
    n_blocks, s = 6, 32
    ids = _ids(tok, n_blocks * s)
    blocks = ids.view(n_blocks, s)

    class HeldOut:  # the distillation corpus's validation side, holding these blocks
        def val_batches(self):
            return [Batch(b, b, torch.ones_like(b, dtype=torch.bool), None) for b in blocks.split(4)]

    by_test = lm.perplexity(model, ids, max_length=s)
    assert by_test.tokens_scored == n_blocks * (s - 1)
    by_prune = pruning_perplexity(model, ids).perplexity
    assert by_prune == pytest.approx(lm.perplexity(model, ids).perplexity, rel=1e-6)
    by_distill = evaluate(model, HeldOut(), "cpu")
    by_blocks = lm.block_perplexity(model, blocks, batch_size=5).perplexity
    for other in (by_distill, by_blocks):
        assert other == pytest.approx(by_test.perplexity, rel=1e-6)
    # padding does not count: a masked-out tail scores fewer tokens and gives the unpadded number
    mask = torch.ones_like(blocks)
    mask[:, s // 2:] = 0
    half = lm.block_perplexity(model, blocks, mask=mask)
    assert half.tokens_scored == n_blocks * (s // 2 - 1)
    assert half.perplexity == pytest.approx(lm.block_perplexity(model, blocks[:, : s // 2]).perplexity, rel=1e-6)
