"""Fixtures: a real store with a briefly trained tiny model, real text files, real job contexts."""

from __future__ import annotations

import textwrap

import pytest
import torch

from apt_model.runtime.jobs import JobContext, JobManager
from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT, make_tiny_model, pretrain

torch.set_num_threads(1)

CORPUS = [
    "Pruning removes weights that matter least, then a short fine-tune recovers what was lost.",
    "Structured pruning takes out whole heads and channels, so the matrices really shrink.",
    "A lottery ticket is a sparse subnetwork that trains as well as the dense network it came from.",
    "def scale(x, k):\n    return [v * k for v in x]\n\nprint(scale([1, 2, 3], 2))\n",
    "剪枝去掉最不重要的权重，然后短暂的微调恢复损失的精度。",
] * 16


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory):
    """A store with 'tiny' (apt tiny preset, 4 query / 2 KV heads, trained 30 steps) and corpus.txt."""
    home = tmp_path_factory.mktemp("prune-home")
    store = Store(home)
    make_tiny_model(store, "tiny", size="tiny", texts=SAMPLE_TEXT + CORPUS, seed=1)
    pretrain(store, "tiny", CORPUS, steps=30)
    (home / "corpus.txt").write_text("\n\n".join(CORPUS), encoding="utf-8")
    return home


@pytest.fixture
def ctx():
    return JobContext(JobManager("test"), "test:job")


@pytest.fixture
def custom_importance(tmp_path, monkeypatch):
    """A real distribution ('apt-prune-reverse') registering importance 'reverse' by entry point.

    It is a package plus a .dist-info folder with entry_points.txt on sys.path, which is what
    pip leaves behind; 'reverse' scores -|w|, so it prunes the *largest* weights, a choice no
    built-in makes, which lets a test see that it was used.
    """
    site = tmp_path / "site"
    (site / "apt_prune_reverse").mkdir(parents=True)
    (site / "apt_prune_reverse" / "__init__.py").write_text(textwrap.dedent("""
        def reverse(name, weight, grad):
            return -weight.abs()
    """))
    info = site / "apt_prune_reverse-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: apt-prune-reverse\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[apt.pruning.importance]\nreverse = apt_prune_reverse:reverse\n")
    monkeypatch.syspath_prepend(str(site))
    return "reverse"


@pytest.fixture(autouse=True)
def _every_step(report_every_step):
    """The tests read loss curves from the job's reports (apt_model.testing.fixtures)."""
