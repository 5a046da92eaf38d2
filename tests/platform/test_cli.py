"""The CLI as a user runs it: a separate process against a real gateway."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from apt_model.cli.main import build_parser
from gateway.testing import run_cli

ROOT = Path(__file__).resolve().parents[2]


run_cli = functools.partial(run_cli, timeout=120)


def test_plugin_list_json(gateway):
    out = run_cli(gateway, "plugin", "list", "--json")
    assert out.returncode == 0, out.stderr
    names = {p["name"] for p in json.loads(out.stdout)}
    assert "echo" in names and "reasoning-training" in names and "data-processors" in names


def test_install_needs_admin_token_and_exit_code_says_so(gateway):
    out = run_cli(gateway, "plugin", "install", "echo", "--token", gateway.settings.token)
    assert out.returncode == 6
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: PERMISSION_DENIED:")
    assert "Traceback" not in out.stderr


def test_install_watch_and_uninstall_through_the_cli(gateway):
    out = run_cli(gateway, "plugin", "install", "echo", "--json")  # admin token found under --home
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "PLUGIN_STATUS_INSTALLED"
    out = run_cli(gateway, "job", "list", "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == []
    out = run_cli(gateway, "plugin", "uninstall", "echo")
    assert out.returncode == 0, out.stderr


def test_malformed_job_id_is_exit_3(gateway):
    out = run_cli(gateway, "job", "get", "nonsense")
    assert out.returncode == 3
    assert "INVALID_ARGUMENT" in out.stderr


def test_unreachable_gateway_says_how_to_start_it(gateway):
    out = subprocess.run([sys.executable, "-m", "apt_model", "plugin", "list", "--gateway", "127.0.0.1:1",
                          "--token", "x"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 5
    assert "apt-model gateway serve" in out.stderr


def _subparsers(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


@pytest.mark.parametrize("name,parser", list(_subparsers(build_parser())))
def test_every_command_has_examples_in_help(name, parser):
    assert "examples:" in parser.format_help(), name


@pytest.mark.parametrize("args", [("plugin", "list"), ("plugin", "list", "--json"), ("job", "list")])
def test_a_closed_pipe_ends_quietly(gateway, args):
    """'apt-model … | head': the reader goes before the CLI writes; no BrokenPipeError traceback,
    exit 141 (128 + SIGPIPE) like any writer whose pipe closed (#24 item 5)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("APT_")}
    read_end, write_end = os.pipe()
    os.close(read_end)  # a pipe nobody reads, from the start: every write the CLI makes fails
    try:
        proc = subprocess.Popen([sys.executable, "-m", "apt_model", *args, "--gateway", gateway.address,
                                 "--home", str(gateway.settings.home)], stdout=write_end, stderr=subprocess.PIPE,
                                env=env)
    finally:
        os.close(write_end)
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


def test_the_original_huggingface_spelling_is_an_alias_and_plugin_names_are_plugin_commands():
    """`apt-model huggingface import ...` is the hand-written hf command (it streams local folders);
    a plugin's own name (`apt-model cloud-storage upload ...`) is the command made from its proto
    (tests/platform/test_generic_cli.py)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and a.choices and "hf" in a.choices)
    assert sub.choices["huggingface"] is sub.choices["hf"]
    for plugin in ("huggingface-integration", "cloud-storage", "ollama-export", "model-pruning", "model-distillation"):
        assert plugin not in sub.choices
    # the hand-written modules left are those that add something (the core's, hf's local folders)
    assert not {"prune", "distill", "ollama", "storage"} & set(sub.choices)
    hf = next(a for a in sub.choices["hf"]._actions if hasattr(a, "choices") and a.choices)
    assert set(hf.choices) == {"import", "dataset"}  # export, push, train: the generated commands


def _cli_reference():
    """tools/cli_reference.py as a module (it is a script, not a package member)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "tools" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_is_current():
    """docs/cli.md is derived from the parsers and the built-in plugins' protos: a flag, help text
    or operation that changes without `make docs` fails here."""
    module = _cli_reference()
    assert (ROOT / "docs" / "cli.md").read_text() == module.render(), "docs/cli.md is stale: run `make docs`"


def _documented_plugin_commands(parsers: dict) -> list[tuple[str, list[str]]]:
    """(where, argv) of every `apt-model <built-in plugin> ...` line of the README and the demo."""
    import re
    import shlex

    found = []
    for path in (ROOT / "README.md", ROOT / "scripts" / "demo.sh"):
        text = path.read_text().replace("\\\n", " ").replace("$CLI ", "apt-model ")
        parts = text.split("```")  # outside code blocks, an inline `span` may wrap: one line again
        parts[::2] = [re.sub(r"`[^`]*`", lambda m: m.group(0).replace("\n", " "), p) for p in parts[::2]]
        for line in "```".join(parts).splitlines():
            for match in re.finditer(r"apt-model ([a-z-]+) [^`|;#\\]*", line):
                flags = re.findall(r"--[a-z-]+", match.group(0))
                if match.group(1) in parsers and flags and "--help" not in flags:  # invocations, not mentions
                    words = [("X" if "$" in w else w) for w in shlex.split(match.group(0))]
                    found.append((f"{path.name}: {match.group(0).strip()}", words[1:]))
    return found


def test_the_documented_plugin_commands_parse():
    """Every plugin command the README and `make demo` show is accepted by the command the CLI
    makes from that plugin's proto (a renamed or newly required field fails here, not in a demo)."""
    import argparse

    module = _cli_reference()
    parsers = dict(module.plugin_parsers())
    commands = _documented_plugin_commands(parsers)
    assert len(commands) >= 8, commands  # the README's examples and the demo's five steps
    for where, argv in commands:
        try:
            parsers[argv[0]].parse_args(argv[1:])
        except SystemExit:
            raise AssertionError(f"{where}: not a valid command (see the usage error above)") from None
        except argparse.ArgumentError as exc:
            raise AssertionError(f"{where}: {exc}") from None
