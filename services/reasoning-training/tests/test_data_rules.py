"""The problem datasets' rules (apt_reason.data), rule by rule: a GenerateTasks request's defaults
and refusals, and the row check that keeps a dataset from training on answers nothing can score
(whole sentences, the row numbers named, canonical answers). What `make mutate`'s reasoning-data
target runs (a second)."""

from __future__ import annotations

import json
from dataclasses import replace as dataclasses_replace

import pytest

from apt_model import errors
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2 as pb
from apt_model.store import Store

from apt_reason.data import GenerateSpec, read_split

COT = "question, reasoning and an integer answer"
PLAIN = "a question and an integer answer"


def spec(**fields) -> GenerateSpec:
    return GenerateSpec.from_request(pb.GenerateTasksRequest(**{"output_name": "tasks", **fields}))


def refusal(**fields) -> errors.InvalidArgument:
    with pytest.raises(errors.InvalidArgument) as info:
        spec(**fields)
    return info.value


def test_a_minimal_request_gets_every_default():
    assert spec() == GenerateSpec(output_name="tasks", train_size=2000, eval_size=200, min_steps=1, max_steps=4,
                                  languages=("en", "zh"), held_out_templates=2, distractor_rate=0.3, max_number=20,
                                  seed=0, overwrite=False, held_out_numbers=False, countdown_share=0.0,
                                  countdown_numbers=4, countdown_max_target=99)


def test_every_field_given_is_kept_and_languages_once_each():
    got = spec(train_size=10, eval_size=5, min_steps=2, max_steps=3, languages=["zh", "en", "zh"],
               held_out_templates=1, distractor_rate=0.0, max_number=5, seed=9, overwrite=True, held_out_numbers=True,
               countdown_share=0.5, countdown_numbers=3, countdown_max_target=40)
    assert got == GenerateSpec(output_name="tasks", train_size=10, eval_size=5, min_steps=2, max_steps=3,
                               languages=("zh", "en"), held_out_templates=1, distractor_rate=0.0, max_number=5,
                               seed=9, overwrite=True, held_out_numbers=True, countdown_share=0.5, countdown_numbers=3,
                               countdown_max_target=40)


def test_steps_and_numbers_that_cannot_make_a_problem_are_refused():
    exc = refusal(min_steps=3, max_steps=2)
    assert (exc.message, exc.violations) == ("--min-steps 3 is more than --max-steps 2.",
                                             [("min_steps", "--min-steps 3 is more than --max-steps 2.")])
    assert spec(min_steps=3, max_steps=3).min_steps == 3
    exc = refusal(max_number=4)
    assert exc.message == "--max-number must be at least 5 so every operation has operands."
    assert exc.violations[0][0] == "max_number"


@pytest.mark.parametrize("field", ["countdown_numbers", "countdown_max_target"])
def test_countdown_settings_need_a_countdown_share(field):
    exc = refusal(**{field: 3 if field == "countdown_numbers" else 50})
    flag = "--" + field.replace("_", "-")
    assert exc.message == f"{flag} applies to countdown puzzles: pass --countdown-share too, or leave it out."
    assert exc.violations[0][0] == field
    assert refusal(countdown_share=0.0, **{field: 3 if field == "countdown_numbers" else 50}).message == exc.message


def test_countdown_settings_are_checked_with_a_share():
    assert refusal(countdown_share=0.5, countdown_numbers=1).message == (
        "--countdown-numbers 1: a puzzle needs at least 2 numbers.")
    assert refusal(countdown_share=0.5, countdown_max_target=20).violations[0][0] == "countdown_max_target"


# ---- reading a split ---------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "home")


def dataset(store: Store, name: str, **splits: list) -> None:
    with store.create("datasets", name, operation="test") as staging:
        for split, lines in splits.items():
            (staging / f"{split}.jsonl").write_text(
                "".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n"
                        for line in lines), encoding="utf-8")


PUZZLE = {"kind": "countdown", "question": "Reach 24 with 2 3 4", "numbers": [2, 3, 4], "target": 24,
          "answer": "2*3*4"}


def test_good_rows_come_back_with_canonical_answers(store):
    dataset(store, "d", train=[
        {"question": "1+1?", "answer": "2", "reasoning": "1+1=2"},
        "",
        {"question": "问题", "answer": " 007 ", "reasoning": "r", "extra": True},
        {"question": "neg?", "answer": -3, "reasoning": "r"},
        PUZZLE | {"reasoning": "2*3=6, 6*4=24", "answer": " 2*3*4 "},
    ])
    rows = read_split(store, "d", "train", need_reasoning=True)
    assert [(r["question"], r["answer"]) for r in rows] == [("1+1?", "2"), ("问题", "7"), ("neg?", "-3"),
                                                            ("Reach 24 with 2 3 4", "2*3*4")]
    assert rows[1]["extra"] is True and rows[0]["reasoning"] == "1+1=2"


def test_reasoning_is_needed_only_for_chain_of_thought(store):
    dataset(store, "d", eval=[{"question": "q", "answer": 1}, {"question": "q", "answer": 2, "reasoning": 5}])
    assert [r["reasoning"] for r in read_split(store, "d", "eval", need_reasoning=False)] == ["", ""]
    with pytest.raises(errors.InvalidArgument) as info:
        read_split(store, "d", "eval", need_reasoning=True)
    assert info.value.message == (
        f"eval.jsonl of dataset 'd': rows 1, 2 lack {COT} (a countdown puzzle: whole numbers, a whole target and an "
        "answer expression that reaches it), so they cannot be checked; fix or drop them and push the dataset again.")
    assert info.value.reason == "UNCHECKABLE_ROWS"


BAD_ROWS = [
    "not json",
    "[1, 2]",
    {"answer": 1},
    {"question": "  ", "answer": 1},
    {"question": 5, "answer": 1},
    {"question": "q"},
    {"question": "q", "answer": True},
    {"question": "q", "answer": 1.5},
    {"question": "q", "answer": "two"},
    {"question": "q", "answer": "1.0"},
    {"question": "q", "answer": None},
    PUZZLE | {"answer": "2+3+4"},            # does not reach the target
    PUZZLE | {"numbers": [2, 3, 4.0]},
    PUZZLE | {"numbers": []},
    PUZZLE | {"numbers": "2 3 4"},
    PUZZLE | {"target": 24.0},
    PUZZLE | {"target": True},
]


@pytest.mark.parametrize("row", BAD_ROWS, ids=range(len(BAD_ROWS)))
def test_a_row_nothing_can_check_is_named(store, row):
    dataset(store, "d", train=[{"question": "ok", "answer": 1}, row])
    with pytest.raises(errors.InvalidArgument) as info:
        read_split(store, "d", "train", need_reasoning=False)
    assert info.value.message.startswith(f"train.jsonl of dataset 'd': rows 2 lack {PLAIN} (")


def test_at_most_ten_row_numbers_are_named(store):
    dataset(store, "d", train=[{"question": "ok", "answer": 1}] + ["bad"] * 12)
    with pytest.raises(errors.InvalidArgument) as info:
        read_split(store, "d", "train", need_reasoning=False)
    assert info.value.message.startswith(
        f"train.jsonl of dataset 'd': rows 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 2 more lack {PLAIN} (")
    dataset(store, "e", train=["bad"] * 10)
    with pytest.raises(errors.InvalidArgument) as info:
        read_split(store, "e", "train", need_reasoning=False)
    assert f"rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 lack {PLAIN}" in info.value.message


def test_a_missing_or_empty_split_is_a_failed_precondition(store):
    dataset(store, "d", train=["", "  "])
    with pytest.raises(errors.FailedPrecondition) as info:
        read_split(store, "d", "eval", need_reasoning=False)
    assert info.value.message == (
        "Dataset 'd' has no eval.jsonl; make one with 'apt-model reasoning-training generate-tasks' or push a "
        "folder holding train.jsonl and eval.jsonl.")
    with pytest.raises(errors.FailedPrecondition) as info:
        read_split(store, "d", "train", need_reasoning=False)
    assert info.value.message == "train.jsonl of dataset 'd' holds no rows."
    with pytest.raises(errors.NotFound):
        read_split(store, "nope", "train", need_reasoning=False)


# ---- generating a dataset ----------------------------------------------------------------------

def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_generated_dataset_has_both_splits_from_templates_they_do_not_share(store):
    from apt_model.testing import JobRecorder
    from apt_reason.data import generate_dataset

    ctx = JobRecorder()
    got = spec(train_size=40, eval_size=12, min_steps=2, max_steps=3, held_out_templates=2, seed=5,
               held_out_numbers=True, max_number=20)
    result = generate_dataset(store, got, ctx)
    entry = store.dataset("tasks")
    train, ev = read_lines(entry.path / "train.jsonl"), read_lines(entry.path / "eval.jsonl")
    assert (len(train), len(ev)) == (40, 12)
    assert result == {"dataset": "tasks", "train_rows": 40, "eval_rows": 12,
                      "train_templates": result["train_templates"], "eval_templates": result["eval_templates"]}
    assert not set(result["train_templates"]) & set(result["eval_templates"]) and len(result["eval_templates"]) == 4
    assert {r["template"] for r in train} <= set(result["train_templates"])
    assert {r["template"] for r in ev} <= set(result["eval_templates"])
    assert all(2 <= r["steps"] <= 3 for r in train + ev) and {r["language"] for r in train} == {"en", "zh"}
    assert read_lines(entry.path / "templates.jsonl") == (
        [{"split": "train", "template": t} for t in result["train_templates"]]
        + [{"split": "eval", "template": t} for t in result["eval_templates"]])
    text = (entry.path / "train.jsonl").read_text(encoding="utf-8")
    assert "\\u" not in text and any(ord(c) > 127 for c in text)   # Chinese written as text, not escapes
    meta = entry.meta
    assert meta["metrics"] == {"train_rows": 40, "eval_rows": 12}
    assert meta["lineage"]["operation"] == "reasoning-generate-tasks"
    params = meta["lineage"]["parameters"]
    assert params["languages"] == ["en", "zh"] and params["seed"] == 5 and "overwrite" not in params
    assert meta["text_files"] == ["train.jsonl"]
    assert [(r["progress"], r["stage"]) for r in ctx.reports] == [(0.1, "generate"), (0.8, "save")]
    assert ctx.reports[0]["message"] == "40 train problems" and ctx.reports[1]["message"] == "saving 'tasks'"
    # the same seed gives the same dataset; every row can be read back as checkable
    assert generate_dataset(store, dataclasses_replace(got, output_name="again"), JobRecorder())["train_templates"] \
        == result["train_templates"]
    assert read_lines(store.dataset("again").path / "train.jsonl") == train
    assert len(read_split(store, "tasks", "eval", need_reasoning=True)) == 12


def test_held_out_numbers_start_above_every_train_start(store):
    from apt_model.testing import JobRecorder
    from apt_reason.data import generate_dataset

    generate_dataset(store, spec(train_size=30, eval_size=10, held_out_numbers=True, max_number=20, min_steps=1,
                                 max_steps=1, distractor_rate=0.0), JobRecorder())
    ev = read_lines(store.dataset("tasks").path / "eval.jsonl")
    firsts = [int(r["reasoning"].split()[0]) for r in ev]
    assert all(21 <= n <= 40 for n in firsts), firsts


def test_a_countdown_share_mixes_puzzles_into_each_split(store):
    from apt_model.testing import JobRecorder
    from apt_reason.data import generate_dataset

    result = generate_dataset(store, spec(train_size=20, eval_size=10, countdown_share=0.5, countdown_numbers=3,
                                          countdown_max_target=59, held_out_templates=1), JobRecorder())
    train = read_lines(store.dataset("tasks").path / "train.jsonl")
    puzzles = [r for r in train if r.get("kind") == "countdown"]
    assert len(puzzles) == 10 and all(len(r["numbers"]) == 3 for r in puzzles)
    assert train[:10] != [r for r in train if r.get("kind") != "countdown"][:10]   # shuffled in, not appended
    assert any(t in result["eval_templates"] for t in {r["template"] for r in read_lines(
        store.dataset("tasks").path / "eval.jsonl") if r.get("kind") == "countdown"})
    assert len(read_split(store, "tasks", "train", need_reasoning=True)) == 20


def test_a_cancelled_generation_stores_nothing(store):
    from apt_model.testing import JobRecorder
    from apt_reason.data import generate_dataset

    for after in (0, 1):
        with pytest.raises(errors.Cancelled):
            generate_dataset(store, spec(train_size=10, eval_size=5), JobRecorder(cancel_after=after))
        assert not store.exists("datasets", "tasks")


def test_a_taken_name_is_kept_unless_overwrite(store):
    from apt_model.testing import JobRecorder
    from apt_reason.data import generate_dataset

    generate_dataset(store, spec(train_size=4, eval_size=2), JobRecorder())
    with pytest.raises(errors.AlreadyExists):
        generate_dataset(store, spec(train_size=6, eval_size=2), JobRecorder())
    assert len(read_lines(store.dataset("tasks").path / "train.jsonl")) == 4
    generate_dataset(store, spec(train_size=6, eval_size=2, overwrite=True), JobRecorder())
    assert len(read_lines(store.dataset("tasks").path / "train.jsonl")) == 6


def test_the_seed_decides_which_templates_are_held_out_and_repeats_them(store):
    from apt_model.testing import JobRecorder
    from apt_reason.data import generate_dataset

    splits = set()
    for seed in range(6):
        result = generate_dataset(store, spec(output_name=f"s{seed}", train_size=4, eval_size=2, seed=seed,
                                              countdown_share=0.5, countdown_max_target=99), JobRecorder())
        splits.add((tuple(result["eval_templates"])))
    # arithmetic frames and countdown blocks each move with the seed
    assert len({tuple(t for t in split if "-countdown-" not in t) for split in splits}) > 1
    assert len({tuple(t for t in split if "-countdown-" in t) for split in splits}) > 1
    again = generate_dataset(store, spec(output_name="s5-again", train_size=4, eval_size=2, seed=5,
                                         countdown_share=0.5, countdown_max_target=99), JobRecorder())
    assert tuple(again["eval_templates"]) in splits
    assert read_lines(store.dataset("s5-again").path / "train.jsonl") == read_lines(
        store.dataset("s5").path / "train.jsonl")   # puzzles included: their generator is seeded too


def test_puzzles_keep_to_their_splits_templates(store):
    from apt_model.testing import JobRecorder
    from apt_reason.data import generate_dataset

    result = generate_dataset(store, spec(train_size=30, eval_size=20, countdown_share=0.5, countdown_numbers=3,
                                          countdown_max_target=59, held_out_templates=1), JobRecorder())
    assert not set(result["train_templates"]) & set(result["eval_templates"])
    for split, allowed in (("train", result["train_templates"]), ("eval", result["eval_templates"])):
        rows = read_lines(store.dataset("tasks").path / f"{split}.jsonl")
        assert {r["template"] for r in rows} <= set(allowed), split


def test_without_held_out_numbers_eval_starts_where_train_does(store):
    from apt_model.testing import JobRecorder
    from apt_reason.data import generate_dataset

    generate_dataset(store, spec(train_size=4, eval_size=30, max_number=20, min_steps=1, max_steps=1,
                                 distractor_rate=0.0), JobRecorder())
    firsts = [int(r["reasoning"].split()[0]) for r in read_lines(store.dataset("tasks").path / "eval.jsonl")]
    assert max(firsts) <= 20, firsts
