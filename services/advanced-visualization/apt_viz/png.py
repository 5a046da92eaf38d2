"""PNG export of plotly figures with kaleido, driving Debian's Chromium (never a browser
kaleido or choreographer would download). MathJax is off: kaleido would fetch it from a CDN."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from apt_model import errors

CHROMIUM = "/usr/bin/chromium"


def figures_png(figures: dict[str, Any], chromium: str = CHROMIUM) -> dict[str, bytes]:
    """``png/<id>.png`` -> PNG bytes for each plotly figure (as ``Page.figures`` holds them)."""
    require_chromium(chromium)
    return asyncio.run(_render(figures, chromium))


def require_chromium(chromium: str = CHROMIUM) -> None:
    """FAILED_PRECONDITION, before any job, where the service has no Chromium to draw with."""
    if not os.access(chromium, os.X_OK):
        raise errors.FailedPrecondition(
            f"PNG export needs Debian's chromium at {chromium} (apt-get install chromium); nothing is "
            "downloaded. Ask again without --png for the HTML alone.")


async def _render(figures: dict[str, Any], chromium: str) -> dict[str, bytes]:
    import kaleido

    out = {}
    async with kaleido.Kaleido(n=1, mathjax=False, path=chromium) as k:
        for name, fig in figures.items():
            height = int(fig.get("layout", {}).get("height") or 400)
            out[f"png/{name}.png"] = await k.calc_fig(fig, opts={"format": "png", "width": 1100, "height": height})
    return out
