"""Countdown puzzles: the checker accepts any correct expression and refuses the rest with a
reason; the generator is seeded and ships solvable puzzles; train and eval targets never meet."""

from __future__ import annotations

import random

import pytest

from apt_model import errors
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2 as pb
from apt_model.store import Store
from apt_model.testing import JobRecorder
from apt_reason import countdown, data, tasks

NUMBERS = [12, 4, 5, 2, 80]


@pytest.mark.parametrize("expression", ["(12 - 4) * 5", "5*(12-4)", "((12 - 4)) * 5", "80 / 2",
                                        "80 * 5 / (12 - 2)", "80 / 4 * 2", "(80 - 12 * 5) * 2", "2 * 4 * 5"])
def test_any_correct_expression_is_accepted(expression):
    verdict = countdown.check(expression, NUMBERS, 40)
    assert verdict.ok and verdict.value == 40, verdict.reason


def test_fractions_are_exact_not_rounded():
    assert countdown.check("5 / 2 * 4 * 4", [5, 2, 4, 4], 40).ok            # 5/2 is kept as 5/2
    seven = countdown.check("5 / 2 * 3", [5, 2, 3], 7)                     # 15/2, not 7
    assert not seven.ok and "equals 15/2, not 7" in seven.reason


@pytest.mark.parametrize("expression, reason", [
    ("12 + 12 + 4 * 4", "4, 12 more often than given"),     # reused numbers
    ("(12 - 4) * 5 * 1", "1 more often than given"),        # a number not given
    ("12 * 4 - 5", "equals 43, not 40"),                    # a wrong value
])
def test_reused_numbers_and_wrong_values_are_refused(expression, reason):
    verdict = countdown.check(expression, NUMBERS, 40)
    assert not verdict.ok and reason in verdict.reason, verdict
    assert countdown.check("(12 - 2 - 2) * 5", [12, 2, 2, 5], 40).ok  # a number given twice may be used twice


@pytest.mark.parametrize("expression, reason", [
    ("x * 5", "Name"), ("abs(40)", "Call"), ("(40).real", "Attribute"), ("__import__('os')", "Call"),
    ("2 ** 80", "operator **"), ("80 // 2", "operator //"), ("80 % 41", "operator %"),
    ("-12 + 52", "UnaryOp"), ("40.0", "not a whole number"), ("True * 40", "not a whole number"),
    ("12 +", "not an arithmetic expression"), ("", "empty"), ("1 + " * 100 + "1", "longer than"),
    ("[40][0]", "Subscript"), ("5 / (4 - 4)", "divides by zero"),
])
def test_non_arithmetic_syntax_is_refused_with_a_reason(expression, reason):
    verdict = countdown.check(expression, [12, 4, 5, 2, 80, 40, 52, 41, 4, 1] + [1] * 101, 40)
    assert not verdict.ok and reason in verdict.reason, verdict


def test_answers_parse_and_score_for_both_kinds():
    row = {"kind": "countdown", "numbers": NUMBERS, "target": 40, "answer": "(12 - 4) * 5"}
    assert tasks.parse_answer("12 - 4 = 8\n8 * 5 = 40\nAnswer: 5*(12-4)") == "5 * (12 - 4)"
    assert tasks.is_correct(row, tasks.parse_answer("Answer: 80/2"))
    assert not tasks.is_correct(row, tasks.parse_answer("Answer: 12*4-5"))
    assert tasks.parse_answer("Answer: 2 ** 3") is None and tasks.parse_answer("Answer: abs(40)") is None
    assert not tasks.is_correct(row, None)
    arithmetic = {"answer": "42"}
    assert tasks.parse_answer("6 * 7 = 42\nAnswer: 42") == "42" and tasks.is_correct(arithmetic, "42")
    assert tasks.parse_answer("Answer: 42 apples.") == "42" and not tasks.is_correct(arithmetic, "40 + 2")


def _replay(puzzle: countdown.Puzzle) -> int:
    """Recompute every line from the given numbers and earlier results (each used once)."""
    pool = list(puzzle.numbers)
    for line in puzzle.reasoning.splitlines():
        a, op, b, _, c = line.split()
        a, b, c = int(a), int(b), int(c)
        pool.remove(a)
        pool.remove(b)
        assert {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op] == c > 0, line
        pool.append(c)
    return c


def test_generator_is_seeded_and_its_puzzles_are_solvable():
    train_t, eval_t = countdown.split_templates(["en", "zh"], 99, 2, 0)
    a = countdown.generate(train_t, 200, 4, 20, random.Random(5))
    assert a == countdown.generate(train_t, 200, 4, 20, random.Random(5))
    assert a != countdown.generate(train_t, 200, 4, 20, random.Random(6))
    assert {p.language for p in a} == {"en", "zh"} and {p.steps for p in a} == {1, 2, 3}
    for p in a:
        assert countdown.check(p.answer, list(p.numbers), p.target).ok, p
        assert _replay(p) == p.target and len(p.numbers) == 4 and max(p.numbers) <= 20
        lo, hi = map(int, p.template.rsplit("-", 2)[1:])
        assert lo <= p.target <= hi and str(p.target) in p.question
        assert tasks.parse_answer(tasks.completion(p.reasoning, p.answer, "cot")) == p.answer


def test_splits_share_no_template_and_no_target_block(tmp_path):
    store = Store(tmp_path)
    spec = data.GenerateSpec("mixed", train_size=300, eval_size=100, seed=3, countdown_share=0.5)
    out = data.generate_dataset(store, spec, JobRecorder())
    assert not set(out["train_templates"]) & set(out["eval_templates"])
    rows = {s: data.read_split(store, "mixed", s, need_reasoning=True) for s in data.SPLITS}  # every row checks
    puzzles = {s: [r for r in rows[s] if countdown.is_countdown(r)] for s in data.SPLITS}
    assert len(puzzles["train"]) == 150 and len(puzzles["eval"]) == 50
    train_blocks = {r["target"] // 10 for r in puzzles["train"]}
    assert not train_blocks & {r["target"] // 10 for r in puzzles["eval"]}
    for s in data.SPLITS:
        assert {r["template"] for r in rows[s]} <= set(out[f"{s}_templates"])


def test_without_a_share_the_dataset_is_what_it_was(tmp_path):
    store = Store(tmp_path)
    data.generate_dataset(store, data.GenerateSpec("plain", train_size=30, eval_size=5, seed=8), JobRecorder())
    train_t, _ = tasks.split_templates(["en", "zh"], 2, 8)
    before = [p.row() for p in tasks.generate(train_t, 30, 1, 4, 20, 0.3, random.Random(8))]
    assert data.read_split(store, "plain", "train", need_reasoning=True) == before


def test_a_pushed_puzzle_row_must_check(tmp_path, push_rows):
    store = Store(tmp_path)
    good = {"question": "make 40", "reasoning": "80 / 2 = 40", "answer": "80 / 2", "kind": "countdown",
            "numbers": [80, 2], "target": 40}
    bad = [{**good, "answer": "80 / 2 * 1"}, {**good, "numbers": [80, "2"]}, {**good, "target": 40.0},
           {**good, "answer": "2 ** 80"}]
    push_rows(store, "mine", [good, *bad], [good])
    with pytest.raises(errors.InvalidArgument, match="rows 2, 3, 4, 5 lack"):
        data.read_split(store, "mine", "train", need_reasoning=True)
    assert data.read_split(store, "mine", "eval", need_reasoning=True)[0]["answer"] == "80 / 2"


@pytest.mark.parametrize("settings, field", [
    (dict(countdown_numbers=1), "countdown_numbers"),
    (dict(countdown_max_target=25), "countdown_max_target"),                 # 2 held-out blocks + 1 train
    (dict(max_number=5, countdown_numbers=2), "countdown_max_target"),      # 5 * 5 < 99
    (dict(countdown_max_target=50, held_out_templates=5), "countdown_max_target"),
])
def test_impossible_settings_are_invalid_argument_naming_the_field(settings, field):
    with pytest.raises(errors.InvalidArgument) as err:
        data.GenerateSpec.from_request(pb.GenerateTasksRequest(output_name="x", countdown_share=0.5, **settings))
    assert err.value.violations[0][0] == field
    data.GenerateSpec.from_request(pb.GenerateTasksRequest(output_name="x", countdown_share=0.5))  # the defaults can


@pytest.mark.parametrize("field", ["countdown_numbers", "countdown_max_target"])
def test_countdown_settings_need_a_countdown_share(field):
    with pytest.raises(errors.InvalidArgument, match="--countdown-share") as err:
        data.GenerateSpec.from_request(pb.GenerateTasksRequest(output_name="x", **{field: 5}))
    assert err.value.violations[0][0] == field


def test_the_grpo_reward_scores_any_correct_expression():
    from apt_reason import rl

    row = {"question": "make 40", "kind": "countdown", "numbers": NUMBERS, "target": 40, "answer": "(12 - 4) * 5"}
    texts = ["80 / 2 = 40\nAnswer: 80 / 2", "Answer: 2 * 4 * 5", "Answer: 12 * 4 - 5", "Answer: 2 ** 3", "forty"]
    total, parts = rl.rewards_of(texts, row, rl.RLSpec("lm", "d", "x", format_weight=0.5), None)
    assert total.tolist() == [1.5, 1.5, 0.5, 0.0, 0.0]
    assert float(parts["reward_exact"]) == pytest.approx(0.4)


def test_tree_search_scores_countdown_answers_with_the_checker(home, push_rows, monkeypatch):
    """The search's answers are replaced by fixed ones (the real model and job run around them),
    to check how run_search scores them: a different correct expression counts as right."""
    from apt_reason import search, treesearch

    store = Store(home)
    puzzle = {"question": "make 40", "reasoning": "80 / 2 = 40", "answer": "80 / 2", "kind": "countdown",
              "numbers": NUMBERS, "target": 40}
    push_rows(store, "cd", [puzzle], [puzzle, {**puzzle, "question": "again"}, {**puzzle, "question": "third"}])
    found = iter(["(12 - 4) * 5", "12 * 4 - 5", None])
    monkeypatch.setattr(treesearch, "_answerer", lambda *a: lambda q: search.Searched(next(found), 3, {"q": q}))
    out = treesearch.run_search(store, treesearch.SearchSpec("lm", "cd-out", dataset="cd", device="cpu"),
                                JobRecorder())
    assert out["exact_match"] == pytest.approx(1 / 3) and out["unparseable"] == 1
