"""``apt-model plugin new NAME [--torch]``: a working plugin folder, ready to install.

The folder holds everything that differs between plugins (docs/plugins.md): plugin.yaml, the
proto (package ``apt.plugins.<name>.v1``, so the gateway routes it like a built-in one), the
modules generated from it (``python -m apt_model.sdk.protogen``), the servicer, the work as a
plain function, tests and a README. Its one operation is real: ``StartCountWords`` counts the
words of a store dataset as a long-running job with progress, cancel and a result. It passes
its own tests as written, installs with every deployer through ``APT_PLUGIN_PATH``, and the
generic CLI calls it (``apt-model NAME count-words --dataset D``).
"""

from __future__ import annotations

import re
from pathlib import Path

from apt_model import errors
from apt_model.runtime.manifest import validate_plugin_name
from apt_model.sdk import protogen

# The plugin folder's files. Markers in their names and texts become the plugin's: @@name@@
# (word-stats), @@snake@@ (word_stats), @@Camel@@ (WordStats), @@base@@ and @@gpu@@; a line marked
# @@torch-only@@ is kept for --torch only, one marked @@slim-only@@ without it.
TEMPLATE = Path(__file__).resolve().parent / "template"
_TEMPLATE_MESSAGES = {"CountWordsRequest", "CountWordsResult", "WordFrequency"}  # the proto's own names


def names(name: str) -> dict[str, str]:
    snake = name.replace("-", "_")
    return {"@@name@@": name, "@@snake@@": snake, "@@Camel@@": "".join(p.capitalize() for p in snake.split("_"))}


def create(parent: Path | str, name: str, torch: bool = False) -> Path:
    """Write the plugin folder ``parent/name`` and generate its proto modules; the folder."""
    validate_plugin_name(name)
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name):
        raise errors.InvalidArgument(f"Plugin name {name!r}: use words of lower-case letters and digits joined by "
                                     "single '-' (e.g. word-stats).")
    service = names(name)["@@Camel@@"]
    if service in _TEMPLATE_MESSAGES:
        raise errors.InvalidArgument(f"Plugin name {name!r} makes the service name {service}, which the template's "
                                     "messages already use; choose another name.")
    folder = Path(parent).resolve() / name
    if folder.exists():
        raise errors.AlreadyExists(f"{folder} already exists; choose another name or folder (--dir).")
    values = {**names(name), "@@base@@": "torch" if torch else "slim", "@@gpu@@": "true" if torch else "false"}
    for src in sorted(p for p in TEMPLATE.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        rel = src.relative_to(TEMPLATE).as_posix().removesuffix(".tmpl")
        text = src.read_text()
        for marker, value in values.items():
            rel, text = rel.replace(marker, value), text.replace(marker, value)
        dropped, kept = ("@@slim-only@@", "@@torch-only@@") if torch else ("@@torch-only@@", "@@slim-only@@")
        text = re.sub(rf"^.*{dropped}.*\n", "", text, flags=re.MULTILINE).replace(f"  # {kept}", "")
        dst = folder / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(text)
    snake = values["@@snake@@"]
    protogen.generate(folder / "proto", folder / f"apt_{snake}" / "gen", f"apt_{snake}.gen")
    return folder
