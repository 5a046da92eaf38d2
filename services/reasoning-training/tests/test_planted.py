"""Planted step errors: exact labels, wrong answers, and the rows that cannot carry them."""

from __future__ import annotations

import random

import grpc
import pytest

from apt_model import errors
from apt_reason import planted, tasks
from apt_reason.scorer import auroc


def _problems(n: int = 200):
    train_t, _ = tasks.split_templates(["en", "zh"], 2, 0)
    return tasks.generate(train_t, n, 1, 4, 20, 0.3, random.Random(5))


def _value(line: str) -> tuple[int, str, int, int]:
    a, op, b, _, c = line.split()
    return int(a), op, int(b), int(c)


def test_planted_solutions_have_exact_step_labels_and_wrong_answers():
    rows = [p.row() for p in _problems()]
    chained = planted.chains(rows, "d", "train")
    sols = planted.solutions(rows, chained, 1.0, seed=3)
    assert all(not s.correct for s in sols)
    for row, steps, sol in zip(rows, chained, sols):
        k = sol.first_wrong
        assert sol.answer != row["answer"]
        assert list(sol.lines[:k]) == row["reasoning"].splitlines()[:k]  # untouched before the error
        a, op, b, c = _value(sol.lines[k])
        prev = steps[k - 1][3] if k else steps[0][0]
        exact = {"+": a + b, "-": a - b, "*": a * b}[op]
        assert exact != c or a != prev  # step k is a wrong result or continues from a wrong value
        assert sol.step_labels() == [1] * k + [0] * (len(steps) - k) + [0]
        value = _value(sol.lines[k])[3]
        for line in sol.lines[k + 1:]:  # later steps follow exactly from the wrong value
            a, op, b, c = _value(line)
            assert a == value and {"+": a + b, "-": a - b, "*": a * b}[op] == c
            value = c
        assert str(value) == sol.answer
    kinds = {("result" if {"+": a + b, "-": a - b, "*": a * b}[op] != c else "operand")
             for s in sols for a, op, b, c in [_value(s.lines[s.first_wrong])]}
    assert kinds == {"result", "operand"}


def test_untouched_and_balanced_solutions():
    rows = [p.row() for p in _problems(40)]
    chained = planted.chains(rows, "d", "eval")
    kept = planted.solutions(rows, chained, 0.0, seed=0)
    assert all(s.correct and s.answer == r["answer"] and s.step_labels() == [1] * (len(s.lines) + 1)
               for s, r in zip(kept, rows))
    ev = planted.balanced(rows, chained, 30, seed=1)
    assert [s.correct for s in ev] == [i % 2 == 0 for i in range(30)]
    assert planted.balanced(rows, chained, 30, seed=1) == ev  # seeded
    assert planted.solutions(rows, chained, 0.5, seed=2) != planted.solutions(rows, chained, 0.5, seed=3)


def test_rows_whose_reasoning_is_not_an_exact_chain_are_refused_with_row_numbers():
    good = {"question": "q", "reasoning": "2 + 3 = 5\n5 * 2 = 10", "answer": "10"}
    rows = [good, {**good, "reasoning": "2 + 3 = 6\n6 * 2 = 12", "answer": "12"},   # wrong arithmetic
            {**good, "reasoning": "2 + 3 = 5\n4 * 2 = 8", "answer": "8"},             # broken chain
            {**good, "answer": "11"},                                                # answer off the chain
            {**good, "reasoning": "first add, then double"}, good]
    with pytest.raises(errors.InvalidArgument) as err:
        planted.chains(rows, "mine", "train")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "rows 2, 3, 4, 5 " in str(err.value) and "'mine'" in str(err.value)
    assert len(planted.chains([good], "mine", "train")) == 1


def test_auroc_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = random.Random(0)
    labels = [rng.random() < 0.4 for _ in range(300)]
    scores = [round(rng.random() + 0.3 * y, 2) for y in labels]  # rounded: ties happen
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert auroc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0 and auroc([0.1, 0.9], [1, 0]) == 0.0
