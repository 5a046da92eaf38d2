"""The live Dash dashboard, through Dash's own HTTP endpoints: its page, and a refresh that
reads a training log grown since the app started."""

from __future__ import annotations

import base64
import json

import numpy as np

import pytest

from apt_model import errors
from apt_model.modeling import trainlog
from apt_model.store import Store

pytest.importorskip("dash")

from apt_viz.serve import make_app  # noqa: E402


def points(trace: dict) -> int:
    """How many x values a trace holds (plotly sends numeric arrays as base64 typed arrays)."""
    x = trace["x"]
    return len(base64.b64decode(x["bdata"])) // np.dtype(x["dtype"]).itemsize if isinstance(x, dict) else len(x)


def refresh(client, app) -> dict:
    callback = next(iter(app.callback_map))
    outputs = [{"id": k.split(".")[0], "property": "figure"} for k in callback.strip(".").split("...")]
    body = {"output": callback, "outputs": outputs, "inputs": [{"id": "tick", "property": "n_intervals", "value": 1}],
            "changedPropIds": ["tick.n_intervals"]}
    reply = client.post("/_dash-update-component", json=body)
    assert reply.status_code == 200, reply.data[:500]
    return json.loads(reply.data)["response"]


def test_the_live_view_follows_a_growing_log(home):
    store = Store(home)
    app = make_app(store, ["run-a", "run-b"], every_s=1)
    client = app.server.test_client()
    page = client.get("/")
    assert page.status_code == 200 and b"_dash-renderer" in page.data
    assert b"https://" not in page.data  # assets are served locally
    before = points(refresh(client, app)["curves-step"]["figure"]["data"][0])
    rows = trainlog.read(store.model("run-a").path)
    grown = rows + [{**rows[-1], "step": rows[-1]["step"] + k} for k in range(1, 6)]
    trainlog.write(store.model("run-a").path, grown)  # a run in progress appends steps
    after = points(refresh(client, app)["curves-step"]["figure"]["data"][0])
    assert after == before + 5


def test_an_unknown_model_is_refused_with_close_names(home):
    with pytest.raises(errors.NotFound, match="Did you mean"):
        make_app(Store(home), ["run-q"])
