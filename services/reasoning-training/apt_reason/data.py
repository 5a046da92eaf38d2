"""The problem datasets in the store: writing a generated one, reading and checking any one.

A problem dataset holds ``train.jsonl`` and ``eval.jsonl``, one JSON object per line with at
least ``question`` and ``answer`` (an integer, as text or a number) and, for chain-of-thought
training, ``reasoning``. A countdown puzzle's row also holds ``kind: "countdown"``, ``numbers``
and ``target``, and its answer is an expression the checker accepts. Rows that cannot be checked
are refused with their line numbers, so a dataset never trains on answers nothing can score.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from apt_model import errors
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_reason import countdown, tasks

SPLITS = ("train", "eval")
MAX_LISTED = 10  # bad row numbers named in an error


@dataclass(frozen=True)
class GenerateSpec:
    output_name: str
    train_size: int = 2000
    eval_size: int = 200
    min_steps: int = 1
    max_steps: int = 4
    languages: tuple[str, ...] = ("en", "zh")
    held_out_templates: int = 2
    distractor_rate: float = 0.3
    max_number: int = 20
    seed: int = 0
    overwrite: bool = False
    held_out_numbers: bool = False
    countdown_share: float = 0.0   # share of each split that is countdown puzzles
    countdown_numbers: int = 4     # numbers given per puzzle
    countdown_max_target: int = 99  # targets run from 10 to this, in blocks of ten

    @classmethod
    def from_request(cls, r) -> "GenerateSpec":
        spec = cls(output_name=r.output_name, train_size=r.train_size or 2000, eval_size=r.eval_size or 200,
                   min_steps=r.min_steps or 1, max_steps=r.max_steps or 4,
                   languages=tuple(dict.fromkeys(r.languages)) or ("en", "zh"),
                   held_out_templates=r.held_out_templates or 2,
                   distractor_rate=r.distractor_rate if r.HasField("distractor_rate") else 0.3,
                   max_number=r.max_number or 20, seed=r.seed, overwrite=r.overwrite,
                   held_out_numbers=r.held_out_numbers,
                   countdown_share=r.countdown_share if r.HasField("countdown_share") else 0.0,
                   countdown_numbers=r.countdown_numbers or 4, countdown_max_target=r.countdown_max_target or 99)
        spec.check_countdown(r)
        if spec.min_steps > spec.max_steps:
            raise errors.InvalidArgument(
                f"--min-steps {spec.min_steps} is more than --max-steps {spec.max_steps}.", field="min_steps")
        if spec.max_number < 5:
            raise errors.InvalidArgument("--max-number must be at least 5 so every operation has operands.",
                                         field="max_number")
        return spec

    def check_countdown(self, r) -> None:
        """Countdown settings only with a countdown share, and only ones a puzzle can be made under."""
        if not self.countdown_share:
            for name in ("countdown_numbers", "countdown_max_target"):
                if getattr(r, name):
                    raise errors.InvalidArgument(f"--{name.replace('_', '-')} applies to countdown puzzles: pass "
                                                 "--countdown-share too, or leave it out.", field=name)
            return
        countdown.check_settings(self.countdown_numbers, self.max_number, self.countdown_max_target,
                                 self.held_out_templates)


def generate_dataset(store: Store, spec: GenerateSpec, ctx: JobContext) -> dict:
    """The StartGenerateTasks job: both splits generated from one seed, written atomically."""
    train_t, eval_t = tasks.split_templates(list(spec.languages), spec.held_out_templates, spec.seed)
    puzzles_t = countdown.split_templates(list(spec.languages), spec.countdown_max_target, spec.held_out_templates,
                                          spec.seed) if spec.countdown_share else ([], [])
    rng = random.Random(spec.seed)
    ctx.report(progress=0.1, stage="generate", message=f"{spec.train_size} train problems")
    train = _split_rows(spec, "train", train_t, puzzles_t[0], spec.train_size, rng)
    ctx.check_cancelled()
    ev = _split_rows(spec, "eval", eval_t, puzzles_t[1], spec.eval_size, rng,
                     tasks.held_out_start(spec.max_number) if spec.held_out_numbers else None)
    train_t, eval_t = train_t + puzzles_t[0], eval_t + puzzles_t[1]
    ctx.check_cancelled()
    ctx.report(progress=0.8, stage="save", message=f"saving {spec.output_name!r}")
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.__dict__.items() if k != "overwrite"}
    with store.create("datasets", spec.output_name, operation="reasoning-generate-tasks", parameters=params,
                      metrics={"train_rows": len(train), "eval_rows": len(ev)},
                      extra={"text_files": ["train.jsonl"]}, overwrite=spec.overwrite) as folder:
        for name, rows in (("train", train), ("eval", ev)):
            write_jsonl(folder / f"{name}.jsonl", rows)
        write_jsonl(folder / "templates.jsonl", [{"split": "train", "template": t} for t in train_t]
                    + [{"split": "eval", "template": t} for t in eval_t])
    return {"dataset": spec.output_name, "train_rows": len(train), "eval_rows": len(ev),
            "train_templates": train_t, "eval_templates": eval_t}


def _split_rows(spec: GenerateSpec, split: str, templates: list[str], puzzle_templates: list[str], size: int,
                rng: random.Random, start: tuple[int, int] | None = None) -> list[dict]:
    """One split's rows: arithmetic problems drawn from ``rng`` and the countdown share drawn from
    a generator of its own (so a dataset without puzzles is what it was before they existed),
    in a seeded order."""
    puzzles = round(size * spec.countdown_share)
    rows = [p.row() for p in tasks.generate(templates, size - puzzles, spec.min_steps, spec.max_steps,
                                            spec.max_number, spec.distractor_rate, rng, start)]
    if puzzles:
        own = random.Random(f"countdown-{spec.seed}-{split}")
        rows += [p.row() for p in countdown.generate(puzzle_templates, puzzles, spec.countdown_numbers,
                                                     spec.max_number, own)]
        own.shuffle(rows)
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def read_split(store: Store, dataset: str, split: str, *, need_reasoning: bool) -> list[dict]:
    """The checked rows of one split; InvalidArgument naming the bad row numbers (1-based lines)."""
    path = store.dataset(dataset).path / f"{split}.jsonl"
    if not path.is_file():
        raise errors.FailedPrecondition(
            f"Dataset {dataset!r} has no {split}.jsonl; make one with 'apt-model reasoning-training "
            f"generate-tasks' or push a folder holding train.jsonl and eval.jsonl.")
    rows, bad = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = _checked(line, need_reasoning)
        if row is None:
            bad.append(number)
        else:
            rows.append(row)
    if bad:
        listed = ", ".join(map(str, bad[:MAX_LISTED])) + (f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else "")
        what = "question, reasoning and an integer answer" if need_reasoning else "a question and an integer answer"
        raise errors.InvalidArgument(
            f"{split}.jsonl of dataset {dataset!r}: rows {listed} lack {what} (a countdown puzzle: whole numbers, "
            f"a whole target and an answer expression that reaches it), so they cannot be checked; "
            f"fix or drop them and push the dataset again.", reason="UNCHECKABLE_ROWS")
    if not rows:
        raise errors.FailedPrecondition(f"{split}.jsonl of dataset {dataset!r} holds no rows.")
    return rows


def _checked(line: str, need_reasoning: bool) -> dict | None:
    """The row with its answer as canonical integer text (a countdown puzzle's: its expression), or
    None when it cannot be checked."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
        return None
    answer = row.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, (int, str)):
        return None
    try:
        answer = str(answer).strip() if countdown.is_countdown(row) else str(int(str(answer).strip()))
    except ValueError:
        return None
    if countdown.is_countdown(row) and not _checkable_puzzle(row):
        return None
    reasoning = row.get("reasoning", "")
    if need_reasoning and (not isinstance(reasoning, str) or not reasoning.strip()):
        return None
    return {**row, "answer": answer, "reasoning": reasoning if isinstance(reasoning, str) else ""}


def _checkable_puzzle(row: dict) -> bool:
    """A countdown row has whole ``numbers``, a whole ``target`` and an answer the checker accepts."""
    numbers, target = row.get("numbers"), row.get("target")
    if not isinstance(numbers, list) or not numbers or not all(_whole(n) for n in numbers + [target]):
        return False
    return countdown.check(str(row["answer"]), numbers, target).ok


def _whole(value) -> bool:
    return type(value) is int
