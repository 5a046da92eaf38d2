"""The generator: exact answers, checkable reasoning, disjoint templates, seeded."""

from __future__ import annotations

import random
import re

from apt_reason import tasks


def _replay(reasoning: str) -> int:
    """Recompute every 'a op b = c' line and return the last value (asserting each line)."""
    value = None
    for line in reasoning.splitlines():
        a, op, b, _, c = line.split()
        got = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert got == int(c), line
        assert value is None or int(a) == value, "each step continues from the previous result"
        value = got
    return value


def test_reasoning_and_answers_are_exact_in_both_languages():
    train_t, _ = tasks.split_templates(["en", "zh"], 2, 3)
    rng = random.Random(3)
    problems = tasks.generate(train_t, 300, 1, 4, 20, 0.5, rng)
    assert {p.language for p in problems} == {"en", "zh"}
    assert {p.steps for p in problems} == {1, 2, 3, 4}
    for p in problems:
        assert _replay(p.reasoning) == int(p.answer) >= 0
        assert len(p.reasoning.splitlines()) == p.steps
        assert tasks.parse_answer(tasks.completion(p.reasoning, p.answer, "cot")) == p.answer
    zh = next(p for p in problems if p.language == "zh")
    assert re.search(r"[\u4e00-\u9fff]", zh.question)


def test_held_out_templates_are_disjoint_and_seeded():
    train_t, eval_t = tasks.split_templates(["en", "zh"], 2, 0)
    assert not set(train_t) & set(eval_t) and len(eval_t) == 4
    assert tasks.split_templates(["en", "zh"], 2, 0) == (train_t, eval_t)
    a = tasks.generate(train_t, 20, 1, 4, 20, 0.3, random.Random(1))
    b = tasks.generate(train_t, 20, 1, 4, 20, 0.3, random.Random(1))
    assert a == b


def test_unparseable_answers_are_none():
    assert tasks.parse_answer("3 + 4 = 7\nAnswer: 7") == "7"
    assert tasks.parse_answer("Answer: 1\nAnswer: 12") == "12"
    assert tasks.parse_answer("seven") is None
    assert tasks.parse_answer("Answer: x") is None


def test_held_out_numbers_start_eval_problems_above_every_train_start(tmp_path):
    from apt_model.store import Store
    from apt_model.testing import JobRecorder
    from apt_reason import data

    store = Store(tmp_path)
    spec = data.GenerateSpec("nums", train_size=300, eval_size=100, max_number=15, seed=2, held_out_numbers=True)
    data.generate_dataset(store, spec, JobRecorder())
    rows = {s: data.read_split(store, "nums", s, need_reasoning=True) for s in data.SPLITS}
    starts = {s: [int(r["reasoning"].split()[0]) for r in rows[s]] for s in data.SPLITS}
    assert max(starts["train"]) <= 15 < min(starts["eval"]) and max(starts["eval"]) <= 30
    assert len(set(starts["eval"])) > 5
    for r in rows["eval"]:
        assert _replay(r["reasoning"]) == int(r["answer"]) >= 0
    plain = data.GenerateSpec("plain", train_size=10, eval_size=100, max_number=15, seed=2)
    data.generate_dataset(store, plain, JobRecorder())
    assert max(int(r["reasoning"].split()[0]) for r in data.read_split(store, "plain", "eval", need_reasoning=True)) <= 15
