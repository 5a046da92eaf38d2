"""The live Dash view is for the local deployer only: started inside the plugin's image (docker
sets APT_PLUGIN_DIR, Kubernetes KUBERNETES_SERVICE_HOST) it refuses with FAILED_PRECONDITION
before it looks for Dash, which the image does not hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apt_model import errors
from apt_model.store import Store

from apt_viz.serve import make_app

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("marker, value", [("APT_PLUGIN_DIR", "/app/services/advanced-visualization"),
                                           ("KUBERNETES_SERVICE_HOST", "10.96.0.1")])
def test_inside_the_image_the_live_view_is_refused(home, monkeypatch, marker, value):
    monkeypatch.setenv(marker, value)
    monkeypatch.setitem(sys.modules, "dash", None)  # the image has no Dash: the refusal says why anyway
    with pytest.raises(errors.FailedPrecondition, match=f"local deployer only.*{marker} is set"):
        make_app(Store(home), ["run-a"])


def test_the_command_line_says_so_without_a_traceback(home):
    env = {k: v for k, v in os.environ.items() if k not in ("APT_PLUGIN_DIR", "KUBERNETES_SERVICE_HOST")}
    env.update(APT_PLUGIN_DIR="/app/services/advanced-visualization",
               PYTHONPATH=os.pathsep.join([str(PLUGIN_DIR), str(PLUGIN_DIR.parents[1])]))
    out = subprocess.run([sys.executable, "-m", "apt_viz.serve", "--home", str(home), "run-a"], env=env,
                         capture_output=True, text=True, timeout=120, cwd=PLUGIN_DIR)
    assert out.returncode != 0
    assert out.stderr.startswith("FAILED_PRECONDITION: The live dashboard is for the local deployer only")
    assert "Traceback" not in out.stderr


def test_on_the_host_it_is_not_refused(home, monkeypatch):
    pytest.importorskip("dash")
    for marker in ("APT_PLUGIN_DIR", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(marker, raising=False)
    assert make_app(Store(home), ["run-a"]).server.test_client().get("/").status_code == 200
