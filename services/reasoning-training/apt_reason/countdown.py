"""Countdown-style puzzles: reach a target from a few numbers with + - * /, each number used at
most once; a seeded generator with programmatic chain-of-thought and an exact checker.

The generator combines two numbers of the pool at a time (``12 - 4 = 8``, one reasoning line per
operation, every intermediate value a positive integer) until the value is the target, and
ships the expression that records those operations as the answer (``(12 - 4) * 5``). Not every
number has to be used.

The checker accepts *any* correct expression, not only the shipped one: the answer is parsed
with ``ast`` (never evaluated), may hold only integer literals, ``+ - * /`` and parentheses,
uses each given number at most once, and must equal the target exactly (``Fraction``
arithmetic, so ``/`` never rounds). Everything else is refused with a reason.

Splits: targets are grouped in blocks of ten (10-19, 20-29, ...); a template is one language
and one block (``en-countdown-30-39``). The eval split's blocks are held out, the same for
every language, so no eval puzzle's target is one a train puzzle had.
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from apt_model import errors

KIND = "countdown"
MIN_TARGET = 10
BLOCK = 10              # targets per template block
MAX_EXPRESSION = 200    # characters of an answer expression the checker reads at most
MAX_ATTEMPTS = 5000     # random combinations tried per puzzle before the settings are refused
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_REFUSED = {ast.Pow: "**", ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
            ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&"}
_QUESTION = {
    "en": "Using some of the numbers {numbers} (each at most once) and + - * /, make {target}.",
    "zh": "用数字{numbers}中的若干个（每个最多用一次），通过加、减、乘、除得到{target}。",
}
_SEPARATOR = {"en": ", ", "zh": "、"}


@dataclass(frozen=True)
class Check:
    """The checker's verdict: ``ok``, or the reason the expression is refused."""

    ok: bool
    reason: str = ""
    value: Fraction | None = None


def parse(expression: str) -> ast.expr:
    """The expression's tree when it holds only integer literals, + - * / and parentheses;
    ValueError with the reason otherwise."""
    text = expression.strip()
    if not text:
        raise ValueError("the expression is empty")
    if len(text) > MAX_EXPRESSION:
        raise ValueError(f"the expression is longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression ({exc.msg})") from None
    _allowed(tree)
    return tree


def _allowed(node: ast.expr) -> None:
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _OPS:
            raise ValueError(f"{ast.unparse(node)!r} uses the operator {_REFUSED.get(type(node.op), type(node.op).__name__)}, "
                             "which is not allowed (only + - * /)")
        _allowed(node.left)
        _allowed(node.right)
    elif isinstance(node, ast.Constant):
        if type(node.value) is not int:
            raise ValueError(f"{node.value!r} is not a whole number")
    else:
        raise ValueError(f"{ast.unparse(node)!r} ({type(node).__name__}) is not allowed: only whole numbers, "
                         "+ - * / and parentheses")


def _value(node: ast.expr) -> Fraction:
    """The exact value of an allowed tree; ValueError on a division by zero."""
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    left, right = _value(node.left), _value(node.right)
    if isinstance(node.op, ast.Div):
        if right == 0:
            raise ValueError("it divides by zero")
        return left / right
    return {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}[type(node.op)]


def literals(node: ast.expr) -> list[int]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)]


def check(expression: str, numbers: list[int], target: int) -> Check:
    """Whether ``expression`` reaches ``target`` using each of ``numbers`` at most once."""
    try:
        tree = parse(expression)
    except ValueError as exc:
        return Check(False, str(exc))
    extra = Counter(literals(tree)) - Counter(numbers)
    if extra:
        used = ", ".join(map(str, sorted(extra.elements())))
        return Check(False, f"it uses {used} more often than given (the numbers are {list(numbers)})")
    try:
        value = _value(tree)
    except ValueError as exc:
        return Check(False, str(exc))
    if value != target:
        return Check(False, f"it equals {value}, not {target}", value)
    return Check(True, "", value)


def canonical(expression: str) -> str | None:
    """The expression as ``ast.unparse`` writes it (spacing and redundant parentheses gone), or
    None when it is not an allowed arithmetic expression with at least one operator."""
    try:
        tree = parse(expression)
    except ValueError:
        return None
    return ast.unparse(tree) if isinstance(tree, ast.BinOp) else None


@dataclass(frozen=True)
class Puzzle:
    question: str
    reasoning: str      # one "a op b = c" line per operation
    answer: str         # an expression reaching the target (any correct one is accepted)
    template: str       # "<language>-countdown-<lo>-<hi>": the target's block
    language: str
    steps: int
    numbers: tuple[int, ...]
    target: int
    kind: str = KIND

    def row(self) -> dict:
        return {"question": self.question, "reasoning": self.reasoning, "answer": self.answer,
                "template": self.template, "language": self.language, "steps": self.steps,
                "kind": self.kind, "numbers": list(self.numbers), "target": self.target}


def blocks(max_target: int) -> list[tuple[int, int]]:
    """The target blocks (inclusive bounds) from MIN_TARGET up to ``max_target``."""
    return [(lo, min(lo + BLOCK - 1, max_target)) for lo in range(MIN_TARGET, max_target + 1, BLOCK)]


def template_id(language: str, block: tuple[int, int]) -> str:
    return f"{language}-{KIND}-{block[0]}-{block[1]}"


def split_templates(languages: list[str], max_target: int, held_out: int, seed: int) -> tuple[list[str], list[str]]:
    """(train template ids, eval template ids): ``held_out`` target blocks, the same for every
    language, go to eval only."""
    all_blocks = blocks(max_target)
    held = set(random.Random(f"countdown-blocks-{seed}").sample(range(len(all_blocks)), held_out))
    train = [template_id(lang, b) for lang in languages for i, b in enumerate(all_blocks) if i not in held]
    ev = [template_id(lang, b) for lang in languages for i, b in enumerate(all_blocks) if i in held]
    return train, ev


def check_settings(count: int, max_number: int, max_target: int, held_out: int) -> None:
    """INVALID_ARGUMENT, naming the field, for settings no puzzle can be generated under."""
    if count < 2:
        raise errors.InvalidArgument(f"--countdown-numbers {count}: a puzzle needs at least 2 numbers.",
                                     field="countdown_numbers")
    if max_target < MIN_TARGET + BLOCK * held_out:
        raise errors.InvalidArgument(
            f"--countdown-max-target {max_target} gives {len(blocks(max_target))} target block(s) of {BLOCK}, "
            f"but {held_out} are held out for eval and train needs one more: raise it to at least "
            f"{MIN_TARGET + BLOCK * held_out}.", field="countdown_max_target")
    if max_target > max_number ** count:
        raise errors.InvalidArgument(
            f"--countdown-max-target {max_target} is out of reach: {count} numbers up to {max_number} make at most "
            f"{max_number ** count}; lower it or raise --max-number / --countdown-numbers.",
            field="countdown_max_target")


def make_puzzle(template: str, count: int, max_number: int, rng: random.Random) -> Puzzle:
    """One puzzle whose target lies in ``template``'s block, found by random combination."""
    lang, _, lo, hi = template.split("-")
    for _ in range(MAX_ATTEMPTS):
        numbers = [rng.randint(1, max_number) for _ in range(count)]
        lines, tree, value = _combine(numbers, rng)
        if int(lo) <= value <= int(hi):
            shown = _SEPARATOR[lang].join(map(str, numbers))
            return Puzzle(_QUESTION[lang].format(numbers=shown, target=value), "\n".join(lines),
                          ast.unparse(tree), template, lang, len(lines), tuple(numbers), value)
    raise errors.InvalidArgument(
        f"No countdown puzzle with a target in {lo}..{hi} was found in {MAX_ATTEMPTS} tries from "
        f"{count} numbers up to {max_number}; lower --countdown-max-target or raise --max-number.",
        field="countdown_max_target")


def _combine(numbers: list[int], rng: random.Random) -> tuple[list[str], ast.expr, int]:
    """Combine 2..len(numbers) of the numbers, two at a time, into positive integers:
    (reasoning lines, expression tree, value)."""
    pool = [(n, ast.Constant(n)) for n in rng.sample(numbers, rng.randint(2, len(numbers)))]
    lines = []
    while len(pool) > 1:
        (a, x), (b, y) = pool.pop(rng.randrange(len(pool))), pool.pop(rng.randrange(len(pool)))
        if a < b:
            (a, x), (b, y) = (b, y), (a, x)
        ops = [ast.Add, ast.Mult] + ([ast.Sub] if a > b else []) + ([ast.Div] if b > 1 and a % b == 0 else [])
        op = rng.choice(ops)
        c = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b, ast.Div: a // b}[op]
        lines.append(f"{a} {_OPS[op]} {b} = {c}")
        pool.append((c, ast.BinOp(x, op(), y)))
    return lines, pool[0][1], pool[0][0]


def generate(templates: list[str], size: int, count: int, max_number: int, rng: random.Random) -> list[Puzzle]:
    """``size`` puzzles, templates (language and target block) drawn uniformly."""
    return [make_puzzle(rng.choice(templates), count, max_number, rng) for _ in range(size)]


def is_countdown(row: dict) -> bool:
    return row.get("kind") == KIND
