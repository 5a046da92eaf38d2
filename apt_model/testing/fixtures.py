"""The testing library as a pytest plugin: the fixtures every service's tests share.

Loaded by the repository's root ``conftest.py`` and, where ``apt-model`` is pip-installed (a
plugin written outside this repository), by pytest itself through the ``pytest11`` entry point
in ``pyproject.toml``. A test folder's own ``conftest.py`` may override any of them.

- ``store``: an empty model store in the test's temporary folder;
- ``tiny``: that store holding ``"tiny"``, a real (untrained) apt-preset model; its name;
- ``job_recorder``: ``JobRecorder``, the job context that keeps every report (call it for one);
- ``report_every_step``: the training loop reports every step, not twice a second, here and in
  the ranks of a data-parallel run this process launches (tests that read loss curves or cancel
  at a step ask for it);
- ``wait_job``: follow a job over gRPC to its end (``apt_model.runtime.testing.wait_job``);
- ``home``: a private copy, for one test, of the store folder the test folder's own
  ``seeded_home`` fixture built once per session (models trained once, copied per test).
"""

from __future__ import annotations

import shutil

import pytest

from apt_model.store import Store
from apt_model.testing import JobRecorder, make_tiny_model


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "home")


@pytest.fixture
def tiny(store) -> str:
    make_tiny_model(store, "tiny", vocab_size=320)
    return "tiny"


@pytest.fixture
def job_recorder() -> type[JobRecorder]:
    return JobRecorder


@pytest.fixture
def report_every_step(monkeypatch) -> None:
    import apt_model.modeling.loop as loop_mod

    monkeypatch.setattr(loop_mod, "REPORT_SECONDS", 0.0)


@pytest.fixture
def wait_job():
    from apt_model.runtime.testing import wait_job as follow

    return follow


@pytest.fixture
def home(seeded_home, tmp_path):
    dst = tmp_path / "home"
    shutil.copytree(seeded_home, dst)
    return dst
