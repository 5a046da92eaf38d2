"""The GRPO loss against TRL's GRPOTrainer on the same batch (trl is a test-only dependency),
and group advantages against TRL's definition."""

from __future__ import annotations

import pytest
import torch

from apt_reason import grpo


def _batch(seed: int = 0, groups: int = 2, group: int = 4, width: int = 7):
    gen = torch.Generator().manual_seed(seed)
    b = groups * group
    logps = -torch.rand((b, width), generator=gen) * 3
    old = logps + torch.randn((b, width), generator=gen) * 0.8   # ratios on both sides of the clip
    ref = logps + torch.randn((b, width), generator=gen) * 0.2
    lengths = torch.randint(2, width + 1, (b,), generator=gen)
    mask = (torch.arange(width)[None] < lengths[:, None]).long()
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])[:b]
    return logps, old, ref, mask, rewards


def _trl_trainer(tiny_lm, loss_type: str, beta: float, eps_high: float, max_len: int):
    """A real GRPOTrainer over a tiny model (nothing downloaded), the batch's settings."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tok = tiny_lm
    args = GRPOConfig(output_dir="/tmp/unused-trl", loss_type=loss_type, beta=beta, epsilon=0.2,
                      epsilon_high=eps_high, max_completion_length=max_len, num_generations=4,
                      per_device_train_batch_size=8, report_to=[], use_cpu=True, logging_steps=1)
    return GRPOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions), args=args,
                       train_dataset=Dataset.from_dict({"prompt": ["a"] * 8}), processing_class=tok)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A tiny model saved to a folder: TRL builds its reference model from the folder (beta > 0)."""
    from apt_model.modeling.preset import create_model, preset_config
    from apt_model.modeling.tokenizer import train_tokenizer

    tok = train_tokenizer(["Answer: 12 + 3 = 15"] * 20, vocab_size=300)
    model = create_model(preset_config("tiny", vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    folder = tmp_path_factory.mktemp("trl-lm")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder), tok


@pytest.mark.parametrize("loss_type,beta,eps_high", [("grpo", 0.0, 0.2), ("grpo", 0.04, 0.2),
                                                     ("dr_grpo", 0.04, 0.2), ("dapo", 0.0, 0.28)])
def test_policy_loss_equals_trl(tiny_lm, loss_type, beta, eps_high):
    logps, old, ref, mask, rewards = _batch()
    width = logps.size(1)
    advantages, _ = grpo.group_advantages(rewards, 4, scale=loss_type != "dr_grpo")
    cfg = grpo.LossConfig(loss_type, beta, 0.2, eps_high, max_completion_length=width)
    ours = grpo.policy_loss(logps, old, advantages, mask, cfg, ref if beta else None)["loss"]

    trainer = _trl_trainer(tiny_lm, loss_type, beta, eps_high, width)
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (logps, torch.zeros_like(logps), None)
    trainer.current_gradient_accumulation_steps = 1
    inputs = {"prompt_ids": torch.ones((8, 2), dtype=torch.long), "prompt_mask": torch.ones((8, 2), dtype=torch.long),
              "completion_ids": torch.ones((8, width), dtype=torch.long), "completion_mask": mask,
              "advantages": advantages, "old_per_token_logps": old, "ref_per_token_logps": ref,
              "num_items_in_batch": mask.sum()}
    theirs = trainer._compute_loss(trainer.model, inputs)
    assert float(ours) == pytest.approx(float(theirs), abs=1e-6)
    assert abs(float(ours)) > 1e-3  # a batch whose loss is not trivially zero


def test_equal_rewards_give_zero_advantages_and_are_flagged():
    adv, zero = grpo.group_advantages(torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0]), 3)
    assert zero.tolist() == [True] * 3 + [False] * 3
    assert adv[:3].abs().max() == 0 and adv[3] < 0 < adv[4]
