"""What every CLI command shares: connection, output (table / JSON), job progress, errors."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message

from apt_model.client import connect
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.runtime.jobs_grpc import FINAL_STATES
from apt_model.runtime.settings import DEFAULT_GATEWAY, read_local_token

EXIT_CODES = {  # deliberate exit codes, documented in the README
    grpc.StatusCode.INVALID_ARGUMENT: 3, grpc.StatusCode.NOT_FOUND: 4, grpc.StatusCode.ALREADY_EXISTS: 4,
    grpc.StatusCode.UNAVAILABLE: 5, grpc.StatusCode.UNAUTHENTICATED: 6, grpc.StatusCode.PERMISSION_DENIED: 6,
    grpc.StatusCode.FAILED_PRECONDITION: 7, grpc.StatusCode.DATA_LOSS: 8, grpc.StatusCode.CANCELLED: 9,
    grpc.StatusCode.DEADLINE_EXCEEDED: 10, grpc.StatusCode.RESOURCE_EXHAUSTED: 11,
}
JOB_STATE = {v: k.removeprefix("JOB_STATE_") for k, v in job_pb2.JobState.items()}


class CliError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def add_global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """--gateway/--token/--json/--home; on subcommands too (SUPPRESS keeps the top-level values)."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    g = parser.add_argument_group("connection and output")
    g.add_argument("--gateway", default=d(None), metavar="HOST:PORT",
                   help=f"gateway address (env APT_GATEWAY; default {DEFAULT_GATEWAY})")
    g.add_argument("--token", default=d(None), metavar="TOKEN|@FILE|-",
                   help="bearer token; @FILE reads it from a file and - from stdin, so it stays out of 'ps' "
                        "(env APT_TOKEN; default: the token file the gateway wrote in its secrets folder, "
                        "APT_SECRETS_DIR or .<APT_HOME name>-secrets beside APT_HOME)")
    g.add_argument("--json", action="store_true", default=d(False), help="machine-readable JSON output, no bars")
    g.add_argument("--home", default=d(None), metavar="DIR",
                   help="APT_HOME, beside which the local tokens are (default ./.apt)")
    g.add_argument("--timeout", type=float, default=d(None), metavar="S", help="deadline of each call in seconds")


@dataclass
class Ctx:
    args: argparse.Namespace

    @property
    def home(self) -> Path:
        return Path(self.args.home or os.environ.get("APT_HOME", ".apt"))

    @property
    def address(self) -> str:
        return self.args.gateway or os.environ.get("APT_GATEWAY") or DEFAULT_GATEWAY

    def token(self, admin: bool = False) -> str:
        if self.args.token:
            return self._given_token
        env = os.environ.get("APT_ADMIN_TOKEN" if admin else "APT_TOKEN")
        return env or read_local_token(self.home, "admin_token" if admin else "token",
                                       os.environ.get("APT_SECRETS_DIR") or None)

    @functools.cached_property
    def _given_token(self) -> str:
        """``--token`` read once: stdin can be read only once, and every call opens a channel."""
        return read_token_argument(self.args.token)

    def channel(self, admin: bool = False) -> grpc.Channel:
        return connect(self.address, self.token(admin), ca_cert=os.environ.get("APT_TLS_CA", ""))

    @property
    def timeout(self) -> float | None:
        return self.args.timeout

    @property
    def as_json(self) -> bool:
        return bool(self.args.json)

    @property
    def interactive(self) -> bool:
        return not self.as_json and sys.stdout.isatty()


def read_token_argument(value: str) -> str:
    """``--token``'s value: the token itself, ``@FILE`` (read from that file) or ``-`` (stdin)."""
    if value == "-":
        token, source = sys.stdin.readline().strip(), "stdin"
    elif value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            token, source = path.read_text(encoding="utf-8").strip(), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise CliError(f"--token {value}: cannot read {path} ({why}).", 2) from exc
    else:
        return value
    if not token:
        raise CliError(f"--token {value}: {source} holds no token; put the token in it.", 2)
    if any(c.isspace() for c in token):
        raise CliError(f"--token {value}: {source} holds more than one token (it has spaces or lines).", 2)
    return token


def to_dict(message: Message) -> dict[str, Any]:
    if isinstance(message, job_pb2.Job) and message.HasField("response"):
        # its JSON view is Job.result already; and a plugin's result type may be unknown here
        job = job_pb2.Job()
        job.CopyFrom(message)
        job.ClearField("response")
        message = job
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(x) for x in r])
    # logs and pipes get the whole table, not one cut to 80 columns
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.on_broken_pipe = _broken_pipe  # main() ends with 141 like every write (rich itself exits 1)
    console.print(table)


def _broken_pipe() -> None:
    raise BrokenPipeError


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _metrics_text(job: job_pb2.Job) -> str:
    return "  ".join(f"{k}={v:.4g}" for k, v in sorted(job.metrics.items()))


def watch_job(ctx: Ctx, job_id: str, on_interrupt: str = "detach") -> job_pb2.Job:
    """Follow a job to its end, drawing a progress bar when output is for a person."""
    channel = ctx.channel()
    stub = plugin_pb2_grpc.JobsStub(channel)
    last = None
    try:
        if ctx.interactive:
            last = _watch_with_bar(stub, job_id)
        else:
            log_line = _LogLines()
            for job in stub.WatchJob(job_pb2.WatchJobRequest(id=job_id)):
                last = job
                if not ctx.as_json:
                    log_line(job)
    except KeyboardInterrupt:
        if on_interrupt == "cancel":
            stub.CancelJob(job_pb2.CancelJobRequest(id=job_id))
            raise CliError(f"Cancelled job {job_id}.", 130) from None
        raise CliError(f"Detached from job {job_id}; it keeps running. Follow it with "
                       f"'apt-model job watch {job_id}' or stop it with 'apt-model job cancel {job_id}'.", 130) from None
    if last is None:
        raise CliError(f"The watch of job {job_id} ended without any state.")
    return last


class _LogLines:
    """Progress for logs (not a terminal): a line per stage, per 10% and at most every 15 s."""

    def __init__(self, every_s: float = 15.0):
        self.every_s = every_s
        self.stage, self.decile, self.at = None, -1, 0.0

    def __call__(self, job: job_pb2.Job) -> None:
        now = time.monotonic()
        decile = int(job.progress * 10)
        if (job.stage != self.stage or decile != self.decile or now - self.at >= self.every_s
                or job.state in FINAL_STATES):
            self.stage, self.decile, self.at = job.stage, decile, now
            print(f"[{JOB_STATE[job.state]}] {job.progress * 100:5.1f}% {job.stage} {job.message} "
                  f"{_metrics_text(job)}".rstrip(), file=sys.stderr, flush=True)


def _watch_with_bar(stub, job_id: str) -> job_pb2.Job:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    columns = [TextColumn("[bold]{task.fields[stage]}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]}"), TextColumn("left {task.fields[eta]}"),
               TextColumn("{task.fields[metrics]}")]
    last = None
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("job", total=1.0, stage="queued", rate="", eta="?", metrics="")
        for job in stub.WatchJob(job_pb2.WatchJobRequest(id=job_id)):
            last = job
            rate = next((f"{v:.3g} {k}" for k, v in job.metrics.items() if k.endswith("_per_s")), "")
            eta = time.strftime("%H:%M:%S", time.gmtime(job.eta_seconds)) if job.eta_seconds >= 0 else "?"
            progress.update(task, completed=job.progress, stage=job.stage or JOB_STATE[job.state].lower(),
                            rate=rate, eta=eta, metrics=_metrics_text(job))
            if job.message:
                progress.console.log(job.message) if job.state not in FINAL_STATES else None
    return last


def typed_result(job: job_pb2.Job, pool) -> dict | None:
    """The job's declared result message (``Job.response``) as JSON, every field shown, integers
    as integers (int64 as strings, the proto3 JSON mapping); None without a ``pool`` that has its type."""
    if pool is None or not job.HasField("response"):
        return None
    try:
        cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(job.response.TypeName()))
    except KeyError:
        return None
    message = cls()
    job.response.Unpack(message)
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def job_dict(job: job_pb2.Job, typed: dict | None = None) -> dict[str, Any]:
    """The job as JSON, plus its ``typed`` result (typed_result) as ``response`` (``@type`` and
    the fields) beside the Struct view ``result``."""
    data = to_dict(job)
    if typed is not None:
        data["response"] = {"@type": job.response.type_url, **typed}
    return data


def finish_job(ctx: Ctx, job: job_pb2.Job, render: Callable[[dict], None] | None = None, pool=None) -> None:
    """Print a finished job's result (JSON or human) and raise on failure. With the descriptor
    ``pool`` of its service, the result is the typed message, not its Struct view."""
    typed = typed_result(job, pool)
    data = job_dict(job, typed)
    if ctx.as_json:
        emit_json(data)
    if job.state == job_pb2.JOB_STATE_SUCCEEDED:
        if not ctx.as_json:
            result = typed if typed is not None else data.get("result", {})
            if render is not None:
                render(result)
            else:
                emit_json(result)
        return
    code = EXIT_CODES.get(getattr(grpc.StatusCode, job.error.code, grpc.StatusCode.UNKNOWN), 1)
    raise CliError(f"job {job.id} {JOB_STATE[job.state].lower()}: {job.error.code}: {job.error.message}", code)


def start_and_watch(ctx: Ctx, start: Callable, request: Message, args: argparse.Namespace,
                    render: Callable[[dict], None] | None = None, pool=None) -> None:
    """Start a job with ``start(request)``; then detach or follow it to the end."""
    job = start(request, timeout=ctx.timeout or 60)
    if getattr(args, "detach", False):
        if ctx.as_json:
            emit_json(to_dict(job))
        else:
            print(job.id)
        return
    if not ctx.as_json:
        print(f"job {job.id} started", file=sys.stderr)
    finish_job(ctx, watch_job(ctx, job.id, getattr(args, "on_interrupt", "detach")), render, pool)


def add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detach", action="store_true", help="print the job id and return at once")
    parser.add_argument("--on-interrupt", choices=["detach", "cancel"], default="detach",
                        help="what Ctrl-C does while watching (default: detach; the job keeps running)")


def examples_text(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def new_parser(sub, name: str, common: argparse.ArgumentParser, help: str, examples: list[str],
               aliases: tuple[str, ...] = ()):
    """A subcommand's parser with the global options, its help as description and its examples;
    ``aliases``: other spellings of the command (e.g. huggingface for hf)."""
    return sub.add_parser(name, parents=[common], help=help, description=help, aliases=list(aliases),
                          epilog=examples_text(*examples), formatter_class=argparse.RawDescriptionHelpFormatter)
