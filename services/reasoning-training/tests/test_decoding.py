"""Prompt masking and shared-prefix decoding on a real tiny model."""

from __future__ import annotations

import torch

from apt_model.modeling.io import load_model, load_tokenizer
from apt_model.store import Store
from apt_reason.prompts import Chat, training_batch
from apt_reason.search import decode, search


def _lm(home):
    path = Store(home).model("lm").path
    return load_model(path).eval(), Chat.of(load_tokenizer(path))


def test_only_the_completion_is_learned(home):
    _, chat = _lm(home)
    prompt, comp = chat.prompt_ids("Anna has 2 apples."), chat.completion_ids("2 + 1 = 3\nAnswer: 3")
    batch = training_batch([(prompt, comp), (prompt[:3], comp[:2])], pad_id=0, max_len=512)
    labels = batch["labels"]
    assert (labels[0, :len(prompt)] == -100).all()
    assert labels[0, len(prompt):len(prompt) + len(comp)].tolist() == comp
    assert (labels[1, 5:] == -100).all() and batch["attention_mask"][1].sum() == 5
    assert chat.decode(comp).endswith("Answer: 3")


def test_shared_prefix_decodes_what_re_encoding_decodes(home):
    model, chat = _lm(home)
    prompt = chat.prompt_ids("Eva has 5 coins. Eva gets 3 more coins. How many coins does Eva have now?")
    for temperature in (0.0, 0.9):
        a = decode(model, prompt, 4, 12, chat.stop_ids, temperature=temperature,
                   generator=torch.Generator().manual_seed(3), share_prefix=True)
        b = decode(model, prompt, 4, 12, chat.stop_ids, temperature=temperature,
                   generator=torch.Generator().manual_seed(3), share_prefix=False)
        assert a.ids == b.ids and a.tokens == b.tokens


def test_self_consistency_keeps_to_the_budget(home):
    model, chat = _lm(home)
    found = search(model, chat, "Kim has 4 pencils. How many pencils does Kim have now?", "self_consistency",
                   budget=30, max_new_tokens=8, generator=torch.Generator().manual_seed(0))
    assert len(found.tree["children"]) == 3 and found.tokens <= 30
    votes = found.tree["votes"]
    assert found.answer is None or votes[found.answer] == max(votes.values())
