"""Seeded arithmetic word problems in English and Chinese with programmatic chain-of-thought.

A problem is a start quantity and 1-4 operations (add, take away, multiply), told through a
*template*: one story frame (a person and a kind of object) in one language. Each operation
adds one sentence to the question and one line ``x op y = z`` to the reasoning, so the
reasoning is exact and the answer is checkable. A distractor is a sentence about another
person with a number that plays no part. Templates are split once, by seed: the eval split
only uses templates the train split never saw. Countdown puzzles live in ``countdown``;
``parse_answer`` and ``is_correct`` score answers of both kinds.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass

from apt_reason import countdown

ANSWER_PREFIX = "Answer:"
# the last "Answer: <integer>" of a completion; anything else is unparseable
_ANSWER = re.compile(r"Answer:\s*(-?\d+)")
# the rest of each "Answer:" line (a countdown puzzle's answer is an expression)
_ANSWER_LINE = re.compile(r"Answer:[ \t]*([^\n]*)")
_OPERATOR = re.compile(r"[-+*/%()^@<>&|]")


@dataclass(frozen=True)
class Frame:
    """One story: who, what, and how each operation is told in one language."""

    name: str       # template id suffix
    person: str
    other: str      # the distractor's person
    start: str      # "{p} has {n} apples."
    add: str
    sub: str
    mul: str
    question: str
    distractor: str


def _en(key: str, person: str, other: str, thing: str) -> Frame:
    return Frame(key, person, other, f"{{p}} has {{n}} {thing}.", f"{{p}} gets {{n}} more {thing}.",
                 f"{{p}} gives away {{n}} {thing}.", f"Then {{p}}'s {thing} become {{n}} times as many.",
                 f"How many {thing} does {{p}} have now?", f"{{o}} has {{n}} {thing}.")


def _zh(key: str, person: str, other: str, thing: str, unit: str) -> Frame:
    return Frame(key, person, other, f"{{p}}有{{n}}{unit}{thing}。", f"{{p}}又得到了{{n}}{unit}{thing}。",
                 f"{{p}}送出了{{n}}{unit}{thing}。", f"然后{{p}}的{thing}变成了原来的{{n}}倍。",
                 f"{{p}}现在有多少{unit}{thing}？", f"{{o}}有{{n}}{unit}{thing}。")


FRAMES: dict[str, list[Frame]] = {
    "en": [_en("apples", "Anna", "Ben", "apples"), _en("books", "Carl", "Dora", "books"),
           _en("coins", "Eva", "Finn", "coins"), _en("marbles", "Gus", "Hana", "marbles"),
           _en("stamps", "Iris", "Jack", "stamps"), _en("pencils", "Kim", "Leo", "pencils"),
           _en("cookies", "Mia", "Ned", "cookies"), _en("shells", "Omar", "Pia", "shells")],
    "zh": [_zh("apples", "小明", "小红", "苹果", "个"), _zh("books", "小华", "小丽", "书", "本"),
           _zh("coins", "小刚", "小芳", "硬币", "枚"), _zh("marbles", "小军", "小兰", "弹珠", "颗"),
           _zh("stamps", "小强", "小雪", "邮票", "张"), _zh("pencils", "小东", "小梅", "铅笔", "支"),
           _zh("cookies", "小杰", "小玲", "饼干", "块"), _zh("shells", "小勇", "小燕", "贝壳", "个")],
}
_SYMBOL = {"add": "+", "sub": "-", "mul": "*"}


@dataclass(frozen=True)
class Problem:
    question: str
    reasoning: str   # one "a op b = c" line per step
    answer: str      # the exact integer answer, as text
    template: str    # "<language>-<frame>"
    language: str
    steps: int

    def row(self) -> dict:
        return asdict(self)


def split_templates(languages: list[str], held_out: int, seed: int) -> tuple[list[str], list[str]]:
    """(train template ids, eval template ids): ``held_out`` frames per language go to eval only."""
    rng = random.Random(f"templates-{seed}")
    train, held = [], []
    for lang in languages:
        ids = [f"{lang}-{f.name}" for f in FRAMES[lang]]
        rng.shuffle(ids)
        held += sorted(ids[:held_out])
        train += sorted(ids[held_out:])
    return train, held


def make_problem(template: str, steps: int, max_number: int, distractor: bool, rng: random.Random,
                 start: tuple[int, int] | None = None) -> Problem:
    """One problem of ``steps`` operations; values stay in 0..10*max_number. The start quantity is
    drawn from ``start`` (inclusive), by default 2..max_number."""
    lang, key = template.split("-", 1)
    frame = next(f for f in FRAMES[lang] if f.name == key)
    cap = 10 * max_number
    value = rng.randint(*(start or (2, max_number)))
    sentences = [frame.start.format(p=frame.person, n=value)]
    lines = []
    for _ in range(steps):
        op, n = _pick_operation(value, max_number, cap, rng)
        new = {"add": value + n, "sub": value - n, "mul": value * n}[op]
        sentences.append(getattr(frame, op).format(p=frame.person, n=n))
        lines.append(f"{value} {_SYMBOL[op]} {n} = {new}")
        value = new
    if distractor:
        at = rng.randint(1, len(sentences))
        sentences.insert(at, frame.distractor.format(o=frame.other, n=rng.randint(2, max_number)))
    sentences.append(frame.question.format(p=frame.person))
    joiner = " " if lang == "en" else ""
    return Problem(joiner.join(sentences), "\n".join(lines), str(value), template, lang, steps)


def _pick_operation(value: int, max_number: int, cap: int, rng: random.Random) -> tuple[str, int]:
    """An operation whose result stays in 0..cap (a take-away never goes below zero)."""
    choices = ["add", "sub", "mul"]
    while True:
        op = rng.choice(choices)
        if op == "add" and value + 2 <= cap:
            return op, rng.randint(2, min(max_number, cap - value))
        if op == "sub" and value >= 2:
            return op, rng.randint(1, min(max_number, value))
        if op == "mul" and 1 <= value and value * 2 <= cap:
            return op, rng.randint(2, min(5, cap // value))


def generate(templates: list[str], size: int, min_steps: int, max_steps: int, max_number: int,
             distractor_rate: float, rng: random.Random, start: tuple[int, int] | None = None) -> list[Problem]:
    """``size`` problems, templates and step counts drawn uniformly (start quantities from ``start``)."""
    return [make_problem(rng.choice(templates), rng.randint(min_steps, max_steps), max_number,
                         rng.random() < distractor_rate, rng, start) for _ in range(size)]


def held_out_start(max_number: int) -> tuple[int, int]:
    """The start quantities of held-out-number eval problems: above every train problem's start."""
    return max_number + 1, 2 * max_number


def completion(reasoning: str, answer: str, target: str) -> str:
    """The assistant turn the model learns: the reasoning lines then the answer line (``cot``),
    or the answer line alone (``answer_only``)."""
    line = f"{ANSWER_PREFIX} {answer}"
    return f"{reasoning}\n{line}" if target == "cot" and reasoning else line


def parse_answer(text: str) -> str | None:
    """A completion's answer, or None (unparseable). When the last ``Answer:`` line holds an
    operator it must be an arithmetic expression (a countdown puzzle's answer), returned as
    ``countdown.canonical`` writes it, so ``Answer: 2 ** 3`` is unparseable rather than 2;
    otherwise the integer of the last ``Answer: N``."""
    lines = _ANSWER_LINE.findall(text)
    if lines and _OPERATOR.search(lines[-1].strip().removeprefix("-")):
        return countdown.canonical(lines[-1])
    found = _ANSWER.findall(text)
    return str(int(found[-1])) if found else None


def is_correct(row: dict, answer: str | None) -> bool:
    """Whether a parsed answer solves the row: any expression the countdown checker accepts for a
    countdown puzzle, the exact integer otherwise."""
    if answer is None:
        return False
    if countdown.is_countdown(row):
        return countdown.check(answer, row["numbers"], row["target"]).ok
    return answer == row["answer"]
