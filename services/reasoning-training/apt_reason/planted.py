"""Solutions with exactly known step labels, for verifier training and scoring.

A row's reasoning is a chain of ``a op b = c`` lines, each continuing from the previous result
and ending at the answer. A *planted* solution keeps the lines before step ``k``, makes step
``k`` wrong (a wrong result, or a wrong first operand computed right) and lets the later steps
follow from the wrong value, so the final answer is wrong too. The labels are exact: every
step before ``k`` can still reach the right answer (correct), step ``k`` and every later step
cannot (wrong), and the answer line is correct only for an untouched solution.

A verifier reads a solution as the chat template's prompt (the question) followed by one piece
per step, ``line + "\\n"``, and the answer line closed by the end-of-turn token; the last token
of each piece is where a process verifier gives that step's label.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from apt_model import errors

from apt_reason.data import MAX_LISTED
from apt_reason.tasks import ANSWER_PREFIX

_STEP = re.compile(r"^\s*(-?\d+)\s*([+\-*])\s*(-?\d+)\s*=\s*(-?\d+)\s*$")
_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
Step = tuple[int, str, int, int]  # a, op, b, c


@dataclass(frozen=True)
class Solution:
    question: str
    lines: tuple[str, ...]        # the reasoning lines
    answer: str                   # what the answer line says
    first_wrong: int | None       # the planted wrong step (0-based), None for an untouched solution

    @property
    def correct(self) -> bool:
        return self.first_wrong is None

    def step_labels(self) -> list[int]:
        """1 (can still reach the right answer) / 0 per reasoning line, then the answer line's."""
        bad = len(self.lines) if self.first_wrong is None else self.first_wrong
        return [int(i < bad) for i in range(len(self.lines))] + [int(self.correct)]

    def pieces(self) -> list[str]:
        """The text of each step as a verifier reads it (the answer line last, end of turn added by the reader)."""
        return [f"{line}\n" for line in self.lines] + [f"{ANSWER_PREFIX} {self.answer}"]


def parse_chain(reasoning: str, answer: str) -> list[Step] | None:
    """The steps of a reasoning that is an exact chain ending at ``answer``; None otherwise."""
    steps: list[Step] = []
    for line in reasoning.splitlines():
        m = _STEP.match(line)
        if m is None:
            return None
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        if _APPLY[op](a, b) != c or (steps and steps[-1][3] != a):
            return None
        steps.append((a, op, b, c))
    return steps if steps and str(steps[-1][3]) == answer else None


def chains(rows: list[dict], dataset: str, split: str) -> list[list[Step]]:
    """Every row's steps; InvalidArgument naming the rows whose reasoning is not an exact chain."""
    out, bad = [], []
    for number, row in enumerate(rows, start=1):
        steps = parse_chain(row.get("reasoning", ""), row["answer"])
        (bad.append(number) if steps is None else out.append(steps))
    if bad:
        listed = ", ".join(map(str, bad[:MAX_LISTED])) + (f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else "")
        raise errors.InvalidArgument(
            f"{split}.jsonl of dataset {dataset!r}: rows {listed} (counting non-empty lines) have a reasoning that "
            f"is not a chain of exact 'a op b = c' lines ending at the answer, so no step label can be planted; "
            f"fix or drop them, or generate the dataset with StartGenerateTasks.", reason="UNCHECKABLE_ROWS")
    return out


def _line(step: Step) -> str:
    a, op, b, c = step
    return f"{a} {op} {b} = {c}"


def plant(question: str, steps: list[Step], rng: random.Random) -> Solution | None:
    """The solution with one planted wrong step; None when no tried error changes the answer."""
    for _ in range(20):
        k = rng.randrange(len(steps))
        a, op, b, c = steps[k]
        if rng.random() < 0.5:  # a wrong result
            wrong = c + rng.choice([d for d in (-3, -2, -1, 1, 2, 3) if c + d >= 0] or [1])
            changed = (a, op, b, wrong)
        else:  # a wrong first operand, computed right
            a2 = a + rng.choice([d for d in (-2, -1, 1, 2) if a + d >= 0])
            changed = (a2, op, b, _APPLY[op](a2, b))
        new, value = [changed], changed[3]
        for _, op2, b2, _ in steps[k + 1:]:
            new.append((value, op2, b2, _APPLY[op2](value, b2)))
            value = new[-1][3]
        if value != steps[-1][3]:
            return Solution(question, tuple(_line(s) for s in steps[:k] + new), str(value), k)
    return None


def solutions(rows: list[dict], chained: list[list[Step]], corrupt_rate: float, seed: int) -> list[Solution]:
    """One solution per row: planted with chance ``corrupt_rate`` (seeded), else untouched."""
    rng = random.Random(f"plant-{seed}")
    out = []
    for row, steps in zip(rows, chained):
        planted = plant(row["question"], steps, rng) if rng.random() < corrupt_rate else None
        out.append(planted or Solution(row["question"], tuple(_line(s) for s in steps), row["answer"], None))
    return out


def balanced(rows: list[dict], chained: list[list[Step]], n: int, seed: int) -> list[Solution]:
    """``n`` eval solutions, alternately untouched and planted, cycling through the rows."""
    rng = random.Random(f"eval-{seed}")
    out: list[Solution] = []
    for i in range(n):
        row, steps = rows[i % len(rows)], chained[i % len(rows)]
        planted = plant(row["question"], steps, rng) if i % 2 else None
        out.append(planted or Solution(row["question"], tuple(_line(s) for s in steps), row["answer"], None))
    return out
