"""One self-contained HTML page: plotly.js embedded once (not once per figure, plotly.py#3742),
figures as JSON drawn by ``Plotly.newPlot``, no request to any network at view time; and the
store dataset the page lands in.

Data is embedded as JSON inside ``<script>`` with ``</`` escaped, so a model name or a text
holding ``</script>`` cannot end the script early.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.io as pio
from plotly.offline import get_plotlyjs

from apt_model.store import Store

PLOT_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em}
.plot{width:100%;min-height:380px}
.note{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
"""


def script_json(value: Any) -> str:
    """JSON safe to place inside a <script> element."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).replace("</", "<\\/")


@dataclass
class Page:
    """An HTML page built section by section; ``figures`` are plotly figures by element id."""

    title: str
    parts: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def raw(self, markup: str) -> None:
        self.parts.append(markup)

    def figure(self, element_id: str, fig) -> None:
        self.figures[element_id] = json.loads(pio.to_json(fig, validate=True))
        self.parts.append(f'<div class="plot" id="{element_id}"></div>')

    def _plotly(self) -> str:
        """plotly.js, once, and only on a page that draws a plotly figure (~4.8 MB)."""
        return f"<script>{get_plotlyjs()}</script>" if self.figures else ""

    def files(self, html_name: str, png: bool) -> dict[str, str | bytes]:
        """The page as ``html_name``, plus each figure as ``png/<id>.png`` when ``png``."""
        from apt_viz.png import figures_png  # kaleido only when asked

        return {html_name: self.render(), **(figures_png(self.figures) if png else {})}

    def render(self) -> str:
        draw = "".join(
            f"Plotly.newPlot({json.dumps(k)},FIGS[{json.dumps(k)}].data,FIGS[{json.dumps(k)}].layout,"
            f"{json.dumps(PLOT_CONFIG)});" for k in self.figures)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style>"
            f"{self._plotly()}</head><body>"
            f"<h1>{html.escape(self.title)}</h1>{''.join(self.parts)}"
            f"<script>const FIGS={script_json(self.figures)};{draw}{''.join(self.scripts)}</script>"
            "</body></html>\n")


def write_dataset(store: Store, name: str, files: dict[str, str | bytes], *, operation: str,
                  parent: str, parameters: dict[str, Any], overwrite: bool) -> dict[str, int]:
    """Write ``files`` (relative name -> content) as store dataset ``name``, atomically; their sizes."""
    sizes = {}
    with store.create("datasets", name, operation=operation, parent=parent, parameters=parameters,
                      overwrite=overwrite) as folder:
        for rel, content in files.items():
            path = Path(folder) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                path.write_text(content, encoding="utf-8")
            else:
                path.write_bytes(content)
            sizes[rel] = path.stat().st_size
    return sizes
