"""`apt-model <plugin> <operation> --field value`: commands built from the plugin's proto.

A separate CLI process against a real gateway with the echo plugin as a real child process; the
CLI has no code for echo: its operations, flags and help come from Describe.
"""

from __future__ import annotations

import functools
import json
import re

import pytest

from apt_model.cli import generic
from apt_model.gen.apt.plugin.v1 import plugin_pb2
from gateway.testing import run_cli

run_cli = functools.partial(run_cli, timeout=120)


@pytest.fixture
def cli(echo_gateway, tmp_path):
    cache = tmp_path / "cache"
    return functools.partial(run_cli, echo_gateway, env_extra={"XDG_CACHE_HOME": str(cache)})


def test_unary_operation_with_flags_from_the_proto(cli):
    out = cli("echo", "echo", "--text", "hello", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["text"] == "hello"


def test_server_streaming_operation_prints_one_json_line_per_message(cli):
    out = cli("echo", "count", "--n", "3")
    assert out.returncode == 0, out.stderr
    assert [json.loads(line).get("index", 0) for line in out.stdout.splitlines()] == [0, 1, 2]


def test_errors_keep_their_exit_codes(cli):
    out = cli("echo", "fail", "--error", "NotFound", "--message", "no such thing")
    assert out.returncode == 4, out.stderr
    assert out.stderr.startswith("error: NOT_FOUND: no such thing")


def test_client_streaming_operation_is_refused_with_a_reason(cli):
    out = cli("echo", "collect", "--text", "x")
    assert out.returncode == 2
    assert "reads a stream of requests" in out.stderr


def test_help_comes_from_the_proto_comments(cli):
    out = cli("echo", "--help")
    assert out.returncode == 0, out.stderr
    assert "get-stats" in out.stdout and "the text back, with the metadata seen" in out.stdout
    out = cli("echo", "count", "--help")
    assert out.returncode == 0, out.stderr
    assert re.search(r"--n INT\s+messages to send", out.stdout), out.stdout
    assert "--interval-seconds" in out.stdout


def test_a_wrong_type_is_a_usage_error(cli):
    out = cli("echo", "count", "--n", "three")
    assert out.returncode == 2
    assert "invalid int value" in out.stderr


def test_unknown_word_is_neither_command_nor_plugin(cli):
    out = cli("no-such-thing", "run")
    assert out.returncode == 2
    assert "neither a command nor a plugin" in out.stderr


def test_a_plugin_not_installed_says_how_to_install_it(gateway, tmp_path):
    out = run_cli(gateway, "echo", "echo", "--text", "x", env_extra={"XDG_CACHE_HOME": str(tmp_path)})
    assert out.returncode == 7
    assert "apt-model plugin install echo" in out.stderr


def test_description_is_cached_per_plugin_version(cli, tmp_path):
    assert cli("echo", "echo", "--text", "a").returncode == 0
    (cached,) = (tmp_path / "cache" / "apt" / "plugins").glob("echo-*.binpb")
    desc = plugin_pb2.PluginDescription.FromString(cached.read_bytes())
    assert desc.name == "echo" and desc.file_descriptor_set
    # the cached copy is what the next call uses: a changed help shows up
    for op in desc.operations:
        if op.name == "Echo":
            op.description = "changed in the cache"
    cached.write_bytes(desc.SerializeToString())
    assert "changed in the cache" in cli("echo", "--help").stdout


def test_plugin_describe_shows_only_flags_that_exist(cli, echo_gateway):
    out = cli("plugin", "describe", "echo")
    assert out.returncode == 0, out.stderr
    shown = re.findall(r"apt-model echo ([a-z-]+)|\s(--[a-z0-9_-]+)", out.stdout)
    op = None
    checked = 0
    for word, flag in shown:
        if word:
            op = word
            helptext = cli("echo", op, "--help").stdout
            continue
        assert re.search(rf"{re.escape(flag)}(?![\w-])", helptext), f"{op}: describe shows {flag}, the command has no such flag"
        checked += 1
    assert checked >= 8


def test_kebab_case_and_operation_words():
    assert generic.kebab("lottery_round_ratio") == "lottery-round-ratio"
    assert generic.kebab("StartImportModel") == "start-import-model"
    assert generic.kebab("StartRLTraining") == "start-rl-training"
    assert generic.kebab("StartGGUF") == "start-gguf"
    ops = [plugin_pb2.Operation(name="StartPrune"), plugin_pb2.Operation(name="ListStrategies")]
    assert set(generic.operation_words(ops)) == {"start-prune", "prune", "list-strategies"}


def test_long_running_operation_is_followed_to_its_typed_result(cli):
    """StartEcho is a job: the CLI follows it; its short word 'echo' is taken by the Echo method."""
    out = cli("echo", "start-echo", "--text", "hi", "--steps", "2", "--json")
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["result"]["text"] == "hi" and job["result"]["length"] == 2
    assert job["response"] == {"@type": "type.googleapis.com/apt.plugins.echo.v1.EchoResult", "text": "hi",
                               "steps": 2, "length": "2", "warnings": []}
    # printed for a person: the declared message, integers as integers (int64 as a string, the
    # proto3 JSON mapping), empty fields shown; not the Struct view's doubles
    out = cli("echo", "start-echo", "--text", "hi", "--steps", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['{', '"text":', '"hi",', '"steps":', '2,', '"length":', '"2",', '"warnings":', '[]', '}']
    # a detached job, followed and fetched later by id: the same typed result
    out = cli("echo", "start-echo", "--text", "hey", "--steps", "1", "--detach")
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    out = cli("job", "watch", job_id)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"text": "hey", "steps": 1, "length": "3", "warnings": []}
    out = cli("job", "get", job_id)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["response"]["length"] == "3"
    out = cli("echo", "start-echo", "--text", "hi", "--undeclared-key", "x")
    assert out.returncode == 1 and "INTERNAL" in out.stderr, out.stderr
