"""Write docs/cli.md from the CLI's own argparse definitions (run by `make docs`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import importlib  # noqa: E402
import pkgutil  # noqa: E402

from apt_model.cli import generic  # noqa: E402
from apt_model.cli.common import add_global_options  # noqa: E402
from apt_model.cli.main import build_parser  # noqa: E402
from apt_model.runtime.app import describe  # noqa: E402
from apt_model.runtime.manifest import PluginManifest  # noqa: E402


def walk(parser: argparse.ArgumentParser, path: list[str]):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # an alias maps to the same parser: documented once
                    seen.add(id(sub))
                    yield from walk(sub, [*path, name])


def plugin_parsers():
    """The generic commands of the built-in plugins that are built, as `apt-model PLUGIN --help`
    shows them once the plugin is installed (from the same descriptors its Describe sends)."""
    import apt_model.gen.apt.plugins as gen

    for mod in pkgutil.walk_packages(gen.__path__, gen.__name__ + "."):
        if mod.name.endswith("_pb2"):
            importlib.import_module(mod.name)  # loads the plugin's proto into the descriptor pool
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(common, suppress=True)
    for folder in sorted(p.parent for p in (ROOT / "services").glob("*/plugin.yaml")):
        manifest = PluginManifest.load(folder)
        if manifest.available:
            yield manifest.name, generic.build_parser(manifest.name, describe(manifest), common)


def render() -> str:
    """docs/cli.md's text; 80 columns wherever it runs, so the file does not depend on a terminal."""
    os.environ["COLUMNS"] = "80"
    parser = build_parser()
    parser.prog = "apt-model"
    out = ["# CLI reference", "", "Generated from the parser by `tools/cli_reference.py`; "
           "`apt-model COMMAND --help` prints the same.", ""]
    for path, sub in walk(parser, []):
        title = " ".join(["apt-model", *path])
        out += [f"## `{title}`", "", "```", sub.format_help().replace(sub.prog, title).rstrip(), "```", ""]
    out += ["# Plugin commands", "", "Built from each plugin's proto (`Describe`) when the plugin is "
            "installed; these are the built-in plugins'. A plugin from elsewhere gets the same kind "
            "of commands: `apt-model PLUGIN --help`.", ""]
    for name, plugin_parser in plugin_parsers():
        for path, sub in walk(plugin_parser, []):
            title = " ".join(["apt-model", name, *path])
            out += [f"## `{title}`", "", "```", sub.format_help().replace(sub.prog, title).rstrip(), "```", ""]
    return "\n".join(out)


def main() -> None:
    text = render()
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "cli.md").write_text(text)
    print(f"wrote docs/cli.md ({text.count(chr(10)) + 1} lines)")


if __name__ == "__main__":
    main()
