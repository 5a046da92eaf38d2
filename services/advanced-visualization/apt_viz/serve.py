"""A live dashboard (Dash) of store models, for the local deployer only: the same curves,
lineage and settings figures as StartDashboard, re-read from the store every few seconds so a
run in progress is followed as its training_log.jsonl grows. It binds to loopback by default and
reads only the store it is given; the HTML dataset of StartDashboard is what to share.

    python -m apt_viz.serve --home ~/.apt MODEL [MODEL ...] [--port 8050] [--every 5]

Dash is not in the plugin's image (its requirements): install it beside the gateway
(``pip install dash``) to use this. Started inside the plugin's image (docker/k8s: the image sets
APT_PLUGIN_DIR, Kubernetes KUBERNETES_SERVICE_HOST) it refuses with FAILED_PRECONDITION: a
deployed plugin exposes its gRPC port only, and its dashboards are the StartDashboard datasets.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from apt_model import errors
from apt_model.store import Store

from apt_viz.checks import check_models
from apt_viz.dashboard import AXES, curve_figure, lineage, lineage_figure, read_curves, settings_figure


def figures(store: Store, models: list[str], max_points: int) -> dict:
    """The dashboard's figures from the store as it is now, by element id."""
    curves = {n: c for n in models if (c := read_curves(store.model(n))) is not None}
    out = {f"curves-{axis}": curve_figure(list(curves.values()), axis, label, max_points)[0]
           for axis, label in AXES} if curves else {}
    nodes, edges = lineage(store, tuple(models))
    out["lineage"] = lineage_figure(nodes, edges)
    settings = settings_figure([nodes[n] for n in models], curves)
    if settings is not None:
        out["settings"] = settings
    return out


IMAGE_MARKERS = ("APT_PLUGIN_DIR", "KUBERNETES_SERVICE_HOST")  # docker/plugin.Dockerfile sets the first


def require_local() -> None:
    """FAILED_PRECONDITION inside the plugin's image: the live view is for the local deployer only."""
    found = [k for k in IMAGE_MARKERS if os.environ.get(k)]
    if found:
        raise errors.FailedPrecondition(
            f"The live dashboard is for the local deployer only, and this process runs in the plugin's image "
            f"({found[0]} is set: docker or Kubernetes), which has no Dash and exposes no port for it. Run "
            "'apt-model advanced-visualization dashboard' and open the HTML dataset it writes, or run "
            "'python -m apt_viz.serve' on the host of a local deployment.")


def make_app(store: Store, models: list[str], every_s: float = 5.0, max_points: int = 2000):
    require_local()
    try:
        from dash import Dash, Input, Output, dcc, html
    except ImportError as exc:
        raise errors.FailedPrecondition("The live dashboard needs Dash: pip install dash (beside the gateway); "
                                        "StartDashboard writes the same view as one HTML file.") from exc
    check_models(store, models)
    ids = list(figures(store, models, max_points))
    app = Dash(__name__, title=f"APT: {', '.join(models)}", serve_locally=True)  # no CDN
    app.layout = html.Div([html.H1(f"Training: {', '.join(models)}"),
                           dcc.Interval(id="tick", interval=int(every_s * 1000)),
                           *[dcc.Graph(id=i) for i in ids]])

    @app.callback([Output(i, "figure") for i in ids], Input("tick", "n_intervals"))
    def refresh(_):
        now = figures(store, models, max_points)
        return [now[i] for i in ids]

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Live training dashboard of store models (Dash, loopback).")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--home", type=Path, required=True, help="the store (APT_HOME)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between re-reads of the store")
    args = parser.parse_args()
    try:
        app = make_app(Store(args.home), args.models, args.every)
    except errors.AptError as exc:
        sys.exit(f"{exc.code.name}: {exc.message}")
    app.run(host=args.host, port=args.port, debug=False)


if __name__ == "__main__":
    main()
