"""Questions and answers in the model's own chat template: the prompt is the user turn plus the
assistant header (``add_generation_prompt``), the completion is what the assistant says, closed
by the template's end-of-turn token. Training masks the prompt out of the loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from apt_model import errors


@dataclass(frozen=True)
class Chat:
    """A tokenizer and the ids that end an assistant turn."""

    tokenizer: object
    stop_ids: tuple[int, ...]   # end of turn (template) and end of sequence
    end_of_turn: str            # text appended to a completion before tokenizing

    @classmethod
    def of(cls, tokenizer) -> "Chat":
        if not getattr(tokenizer, "chat_template", None):
            raise errors.FailedPrecondition(
                "The model's tokenizer has no chat template, and the question/answer format is the "
                "template's; train the model with 'apt-model train' (its tokenizer carries ChatML) or "
                "add a chat_template to its tokenizer_config.json.")
        end = "<|im_end|>" if "<|im_end|>" in tokenizer.get_vocab() else (tokenizer.eos_token or "")
        stops = {tokenizer.convert_tokens_to_ids(end)} if end else set()
        if tokenizer.eos_token_id is not None:
            stops.add(tokenizer.eos_token_id)
        return cls(tokenizer, tuple(sorted(stops)), end)

    def prompt_ids(self, question: str) -> list[int]:
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                                  add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def completion_ids(self, completion: str) -> list[int]:
        return self.tokenizer(completion + self.end_of_turn, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def training_batch(pairs: list[tuple[list[int], list[int]]], pad_id: int, max_len: int) -> dict[str, torch.Tensor]:
    """Right-padded (prompt + completion) rows; labels are -100 on the prompt and the padding, so
    only the completion is learned. Rows longer than ``max_len`` lose their tail."""
    rows = [(p + c)[:max_len] for p, c in pairs]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, ((prompt, _), row) in enumerate(zip(pairs, rows)):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
        labels[i, len(prompt):len(row)] = ids[i, len(prompt):len(row)]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
