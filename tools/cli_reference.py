"""Write docs/cli.md from the CLI's own argparse definitions (run by `make docs`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apt_model.cli.main import build_parser  # noqa: E402


def walk(parser: argparse.ArgumentParser, path: list[str]):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # an alias maps to the same parser: documented once
                    seen.add(id(sub))
                    yield from walk(sub, [*path, name])


def main() -> None:
    parser = build_parser()
    parser.prog = "apt-model"
    out = ["# CLI reference", "", "Generated from the parser by `tools/cli_reference.py`; "
           "`apt-model COMMAND --help` prints the same.", ""]
    for path, sub in walk(parser, []):
        title = " ".join(["apt-model", *path])
        out += [f"## `{title}`", "", "```", sub.format_help().replace(sub.prog, title).rstrip(), "```", ""]
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "cli.md").write_text("\n".join(out))
    print(f"wrote docs/cli.md ({len(out)} lines)")


if __name__ == "__main__":
    main()
