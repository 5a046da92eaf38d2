"""Verifier-guided search under one generated-token budget per question: best-of-N, process-
verifier beam search, DVTS and MCTS (UCT).

A step is one line of the answer (``a op b = c\\n``, or the final ``Answer: N``). Expanding a
node samples ``n`` next steps from it in one batch: the prompt and the node's path run through
the model once and their KV cache is repeated for the ``n`` children (``share_prefix``). Every
expansion is capped so the tokens generated for a question never pass the budget: a child may
generate at most ``min(max_new_tokens - tokens on its path, budget left // n)`` tokens. The
verifier scores each new node (P(correct) at its last step).

- best_of_n: ``n`` whole answers, the best-scored parseable one wins;
- beam: the root gives ``width * expand`` children; each depth keeps the ``width`` best live
  paths and expands each into ``expand`` children;
- dvts: ``width`` independent subtrees, each keeps its single best child per depth;
- mcts: UCT selection (mean value + c * sqrt(ln N_parent / N_child)), expansion of ``expand``
  children, their verifier scores as values, backed up to the root; the answer follows the
  most visited children.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from apt_reason.prompts import Chat
from apt_reason.scorer import Verifier
from apt_reason.search import Searched, decode
from apt_reason.tasks import parse_answer

STEP_STRATEGIES = ("beam", "dvts", "mcts")
MAX_IDLE = 64  # MCTS iterations in a row that reach only finished paths before it stops


@dataclass(eq=False)
class Node:
    id: int
    parent: "Node | None"
    ids: list[int] = field(default_factory=list)  # this step's generated tokens
    text: str = ""
    depth: int = 0
    terminal: bool = False
    score: float | None = None
    visits: int = 0
    value_sum: float = 0.0
    children: list["Node"] = field(default_factory=list)

    def path(self) -> list["Node"]:
        node, out = self, []
        while node.parent is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    def path_ids(self) -> list[int]:
        return [t for n in self.path() for t in n.ids]

    def full_text(self) -> str:
        return "".join(n.text for n in self.path())

    @property
    def answer(self) -> str | None:
        return parse_answer(self.full_text()) if self.terminal else None

    def to_json(self, chosen: set[int]) -> dict:
        out = {"id": self.id, "text": self.text, "tokens": len(self.ids), "depth": self.depth,
               "score": None if self.score is None else round(self.score, 4), "terminal": self.terminal,
               "answer": self.answer, "chosen": self.id in chosen}
        if self.visits:
            out.update(visits=self.visits, value=round(self.value_sum / self.visits, 4))
        return {**out, "children": [c.to_json(chosen) for c in self.children]}


def line_end_ids(chat: Chat) -> tuple[int, ...]:
    """The tokens whose text holds a line break: each ends a step (stop tokens excluded)."""
    tok = chat.tokenizer
    return tuple(i for i in range(len(tok)) if i not in chat.stop_ids and "\n" in tok.decode([i]))


@dataclass
class StepSearch:
    model: object
    chat: Chat
    verifier: Verifier
    question: str
    line_ends: tuple[int, ...]
    budget: int
    max_new_tokens: int
    max_depth: int = 6
    width: int = 4
    expand: int = 4
    temperature: float = 0.8
    exploration: float = 1.0
    generator: torch.Generator | None = None
    share_prefix: bool = True
    spent: int = 0
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self):
        self.prompt = self.chat.prompt_ids(self.question)
        self.root = self._node(None)

    def _node(self, parent: Node | None, **kw) -> Node:
        node = Node(len(self.nodes), parent, depth=0 if parent is None else parent.depth + 1, **kw)
        self.nodes.append(node)
        if parent is not None:
            parent.children.append(node)
        return node

    def expand_node(self, node: Node, n: int, whole: bool = False) -> list[Node]:
        """``n`` sampled next steps (whole answers with ``whole``) of ``node``, scored; [] when
        the budget or the path's token allowance is spent."""
        path = node.path_ids()
        cap = min(self.max_new_tokens - len(path), (self.budget - self.spent) // max(n, 1))
        if n < 1 or cap < 1:
            return []
        out = decode(self.model, self.prompt + path, n, cap, self.chat.stop_ids, temperature=self.temperature,
                     generator=self.generator, share_prefix=self.share_prefix,
                     keep_ids=() if whole else self.line_ends)
        self.spent += out.tokens
        kids = []
        for ids in out.ids:
            open_line = bool(ids) and ids[-1] in self.line_ends and not whole
            spent_path = len(path) + len(ids) >= self.max_new_tokens  # no token left for a next step
            kids.append(self._node(node, ids=ids, text=self.chat.decode(ids),
                                   terminal=not open_line or spent_path or node.depth + 1 >= self.max_depth))
        scores = self.verifier.score(self.question, [(k.full_text().splitlines(keepends=True), k.terminal)
                                                     for k in kids])
        for kid, s in zip(kids, scores):
            kid.score = s
        return kids

    def best_of_n(self, n: int) -> Node | None:
        self.expand_node(self.root, n, whole=True)
        return self._best_finished()

    def stepwise(self, per_subtree: bool) -> Node | None:
        """Beam search (``per_subtree`` False) or DVTS (True)."""
        frontier = [(g if per_subtree else 0, self.root) for g in range(self.width)]
        for _ in range(self.max_depth):
            born: list[tuple[int, Node]] = []
            for node, groups in _by_node(frontier):
                kids = self.expand_node(node, self.expand * len(groups))
                born += [(groups[i // self.expand], k) for i, k in enumerate(kids)]
            live = sorted([(g, k) for g, k in born if not k.terminal], key=lambda gk: -gk[1].score)
            if per_subtree:
                frontier = [next(gk for gk in live if gk[0] == g) for g in dict.fromkeys(g for g, _ in live)]
            else:
                frontier = live[:self.width]
            if not frontier:
                break
        return self._best_finished()

    def mcts(self) -> Node | None:
        idle = 0
        while self.spent < self.budget and idle < MAX_IDLE:
            node = self.root
            while node.children:
                node = max(node.children, key=lambda c: self._uct(node, c))
            if node.terminal:
                value, idle = node.score, idle + 1
            else:
                kids = self.expand_node(node, self.expand)
                if not kids:
                    break
                for k in kids:
                    k.visits, k.value_sum = 1, k.score
                value, idle = max(k.score for k in kids), 0
            while node is not None:
                node.visits, node.value_sum, node = node.visits + 1, node.value_sum + value, node.parent
        return self._most_visited() or self._best_finished()

    def _uct(self, parent: Node, child: Node) -> float:
        mean = child.value_sum / child.visits
        return mean + self.exploration * math.sqrt(math.log(max(parent.visits, 1)) / child.visits)

    def _most_visited(self) -> Node | None:
        node = self.root
        while node.children:
            node = max(node.children, key=lambda c: (c.visits, c.value_sum / max(c.visits, 1)))
        return node if node.answer is not None else None

    def _best_finished(self) -> Node | None:
        done = [n for n in self.nodes if n.answer is not None]
        return max(done, key=lambda n: n.score) if done else None

    def result(self, strategy: str, chosen: Node | None) -> Searched:
        picked = {n.id for n in chosen.path()} if chosen else set()
        tree = {**self.root.to_json(picked), "strategy": strategy, "question": self.question,  # the root's own
                "prompt_tokens": len(self.prompt), "budget": self.budget, "tokens": self.spent,  # tokens/answer
                "answer": chosen.answer if chosen else None, "verifier": self.verifier.kind}       # are the search's
        return Searched(chosen.answer if chosen else None, self.spent, tree)


def _by_node(frontier: list[tuple[int, Node]]) -> list[tuple[Node, list[int]]]:
    """The frontier's distinct nodes in order, each with the groups that hold it."""
    out: dict[int, tuple[Node, list[int]]] = {}
    for g, node in frontier:
        out.setdefault(node.id, (node, []))[1].append(g)
    return list(out.values())


def run(strategy: str, search: StepSearch, n: int = 0) -> Searched:
    """One question with a verifier-guided ``strategy``."""
    if strategy == "best_of_n":
        chosen = search.best_of_n(n or max(1, search.budget // search.max_new_tokens))
    elif strategy == "mcts":
        chosen = search.mcts()
    else:
        chosen = search.stepwise(per_subtree=strategy == "dvts")
    return search.result(strategy, chosen)
