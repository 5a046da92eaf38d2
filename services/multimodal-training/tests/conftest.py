"""Fixtures: a store with a tiny causal LM that has read the captions, and a data folder
(inside the test's data root) of digit images, spoken digits and broken files."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # apt_multimodal, as the service runs it

from apt_model.store import Store  # noqa: E402
from apt_model.testing import JobRecorder, make_tiny_model, pretrain  # noqa: E402

from apt_multimodal import sample_data  # noqa: E402
from apt_multimodal.create import CreateSpec, all_modalities, create_dataset  # noqa: E402
from apt_multimodal.media import MediaSpec  # noqa: E402

torch.set_num_threads(1)

CAPTIONS = [f"a handwritten {w}" for w in sample_data.EN] + [f"手写数字{z}" for z in sample_data.ZH] + \
           list(sample_data.EN)


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory):
    """Store 'lm' (tiny, briefly trained on the captions) and, beside the store, data/ with
    digits/ (24 images, a Chinese caption every 4th), spoken/ (3 clips) and odd/ (test files)."""
    root = tmp_path_factory.mktemp("mm")
    home = root / "home"
    store = Store(home)
    make_tiny_model(store, "lm", texts=CAPTIONS * 6, seed=1)
    pretrain(store, "lm", CAPTIONS * 4, steps=20, seq_len=16)
    data = root / "data"  # beside the store (a store is never a data root); copied per test by `data`
    sample_data.digits(data / "digits", 24, chinese_every=4)
    sample_data.spoken(data / "spoken", 3)
    odd = data / "odd"
    odd.mkdir()
    (odd / "broken.png").write_bytes(b"not a png at all")
    t = np.linspace(0, 1, 44100, dtype=np.float32)
    soundfile.write(odd / "stereo.wav", np.stack([np.sin(440 * t), np.sin(660 * t)], axis=1) * 0.3, 44100)
    soundfile.write(odd / "long.wav", np.sin(np.linspace(0, 5000, 16000 * 5, dtype=np.float32)) * 0.3, 16000)
    return home


@pytest.fixture
def write_manifest():
    """write_manifest(folder, rows): a JSON-lines manifest of ``rows`` in ``folder``."""
    def write(folder: Path, rows: list[dict], name: str = "manifest.jsonl") -> Path:
        path = folder / name
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return path
    return write


@pytest.fixture
def data(seeded_home, home) -> Path:
    """A private copy of the data folder beside the test's store: the served APT_DATA_ROOTS."""
    return Path(shutil.copytree(seeded_home.parent / "data", home.parent / "data"))


@pytest.fixture
def store(home, data) -> Store:
    """The test's store with dataset 'digits' (24 images of 16 px, English and Chinese captions)."""
    store = Store(home)
    create_dataset(store, CreateSpec("digits", data / "digits" / "manifest.jsonl", all_modalities([]),
                                     MediaSpec(image_size=16)), JobRecorder())
    return store


@pytest.fixture(autouse=True)
def _every_step(report_every_step):
    """Cancel tests wait for a step in the job's reports (apt_model.testing.fixtures)."""
