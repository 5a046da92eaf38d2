"""Fixtures: sample files written from the demo corpus once per session, and a data root."""

from __future__ import annotations

import pytest

from apt_data.sample_data import write_files


@pytest.fixture(scope="session")
def sample_files(tmp_path_factory):
    """Kind -> path: planted jsonl/csv/xlsx, GB18030/Big5/mojibake text, an HTML page."""
    return write_files(tmp_path_factory.mktemp("data-root") / "sample", n=300, seed=0)


@pytest.fixture
def data_root(sample_files):
    """The folder the service may read (APT_DATA_ROOTS)."""
    return sample_files["jsonl"].parent
