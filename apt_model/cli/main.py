"""``python -m apt_model`` / ``apt-model``: the entry point and the platform commands.

Commands of the core and of each plugin live in sibling modules exposing ``register(sub)``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import textwrap
from pathlib import Path

import grpc

from apt_model import errors
from apt_model.client import error_details
from apt_model.cli import generic
from apt_model.cli.common import (EXIT_CODES, examples_text, new_parser, JOB_STATE, CliError, Ctx, add_global_options, emit_json,
                                  finish_job, job_dict, print_table, to_dict, typed_result, watch_job)
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc

# Modules adding their own commands; each defines register(subparsers, common_parent).
COMMAND_MODULES = ["core", "data", "hf"]

PLUGIN_STATUS = {v: k.removeprefix("PLUGIN_STATUS_").replace("_", " ").lower()
                 for k, v in gateway_pb2.PluginStatus.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = _root_parser()
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _register_gateway(sub, common)
    _register_plugin(sub, common)
    _register_job(sub, common)
    for module in COMMAND_MODULES:
        name = f"apt_model.cli.{module}"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(sub, common)
    return parser


def _root_parser() -> argparse.ArgumentParser:
    """``apt-model`` itself: its description, examples and global options."""
    parser = argparse.ArgumentParser(
        prog="apt-model", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="APT platform: an LLM toolkit whose plugins are gRPC services behind one gateway.",
        epilog=examples_text("apt-model gateway serve", "apt-model plugin list",
                             "apt-model plugin install model-pruning", "apt-model job list --json",
                             "apt-model model-pruning --help    (any installed plugin: PLUGIN OPERATION --field value)",
                             "apt-model model-pruning prune --name base --strategy magnitude --ratio 0.5"),
    )
    add_global_options(parser, suppress=False)
    return parser


def _register_gateway(sub, common: argparse.ArgumentParser) -> None:
    """gateway serve and status: run the gateway, or ask it how it is."""
    gw = new_parser(sub, "gateway", common, "run the gateway", ["apt-model gateway serve --listen 127.0.0.1:50051",
                     "APT_TLS_CERT=cert.pem APT_TLS_KEY=key.pem apt-model gateway serve --listen 0.0.0.0:50051"])
    gw_sub = gw.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = new_parser(gw_sub, "serve", common, "start the gateway in the foreground (SIGTERM drains)",
                       ["apt-model gateway serve", "APT_DEPLOYER=docker apt-model gateway serve"])
    serve.add_argument("--listen", help="host:port to bind (env APT_LISTEN; default 127.0.0.1:50051)")
    serve.set_defaults(func=cmd_gateway_serve)

    st = new_parser(sub, "status", common, "gateway status: version, store, plugins, jobs",
                    ["apt-model status", "apt-model status --json"])
    st.set_defaults(func=cmd_status)


def _register_plugin(sub, common: argparse.ArgumentParser) -> None:
    """plugin list/describe/install/uninstall (the catalogue) and new/package (writing one)."""
    pl = new_parser(sub, "plugin", common, "list, describe, install and uninstall plugins",
                    ["apt-model plugin list", "apt-model plugin install cloud-storage --replicas 2"])
    pl_sub = pl.add_subparsers(dest="action", required=True, metavar="ACTION")
    new_parser(pl_sub, "list", common, "the catalogue with each plugin's status",
               ["apt-model plugin list"]).set_defaults(func=cmd_plugin_list)
    d = new_parser(pl_sub, "describe", common, "a plugin's operations and dependencies",
                   ["apt-model plugin describe model-pruning"])
    d.add_argument("name")
    d.set_defaults(func=cmd_plugin_describe)
    i = new_parser(pl_sub, "install", common, "deploy a plugin's service (needs the admin token)",
                   ["apt-model plugin install model-pruning", "apt-model plugin install cloud-storage --replicas 2"])
    i.add_argument("name")
    i.add_argument("--replicas", type=int, default=1, help="instances the router balances (default 1)")
    i.set_defaults(func=cmd_plugin_install)
    u = new_parser(pl_sub, "uninstall", common, "stop and remove a plugin's service (needs the admin token)",
                   ["apt-model plugin uninstall model-pruning"])
    u.add_argument("name")
    u.set_defaults(func=cmd_plugin_uninstall)

    n = new_parser(pl_sub, "new", common, "write a new plugin folder (proto, server, tests, README) ready to install",
                   ["apt-model plugin new word-stats --dir ~/plugins",
                    "APT_PLUGIN_PATH=~/plugins apt-model gateway serve   # then: apt-model plugin install word-stats",
                    "apt-model plugin new my-trainer --torch"])
    n.add_argument("name", help="the plugin's name: lower-case words joined by '-' (e.g. word-stats)")
    n.add_argument("--torch", action="store_true", help="a plugin that needs torch (torch base image, GPU wish)")
    n.add_argument("--dir", default=".", help="folder to write the plugin folder into (default: here)")
    n.set_defaults(func=cmd_plugin_new)
    pk = new_parser(pl_sub, "package", common,
                    "build a plugin folder as a wheel; pip-installing it registers the plugin with the gateway",
                    ["apt-model plugin package ~/plugins/word-stats --out dist",
                     "pip install dist/apt_plugin_word_stats-0.1.0-py3-none-any.whl   # then restart the gateway"])
    pk.add_argument("folder", help="the plugin folder (the one holding plugin.yaml)")
    pk.add_argument("--out", default=".", help="folder to write the wheel into (default: here)")
    pk.set_defaults(func=cmd_plugin_package)


def _register_job(sub, common: argparse.ArgumentParser) -> None:
    """job list/get/watch/cancel: the long-running operations of the gateway and every plugin."""
    jb = new_parser(sub, "job", common, "list, watch and cancel long-running jobs",
                    ["apt-model job list", "apt-model job watch model-pruning:3f2a9c0d1e2b4a5c"])
    jb_sub = jb.add_subparsers(dest="action", required=True, metavar="ACTION")
    jl = new_parser(jb_sub, "list", common, "jobs of the gateway and every installed plugin",
                    ["apt-model job list --active", "apt-model job list --service model-pruning"])
    jl.add_argument("--service", default="", help="only this service's jobs (gateway or a plugin name)")
    jl.add_argument("--active", action="store_true", help="only jobs not yet finished")
    jl.set_defaults(func=cmd_job_list)
    for action, func, text in (("get", cmd_job_get, "a job's current state"),
                               ("watch", cmd_job_watch, "follow a job to its end with a progress bar"),
                               ("cancel", cmd_job_cancel, "cancel a job")):
        p = new_parser(jb_sub, action, common, text, [f"apt-model job {action} gateway:0123456789abcdef"])
        p.add_argument("id")
        p.set_defaults(func=func)


# -- commands ----------------------------------------------------------------------------------
def cmd_gateway_serve(ctx: Ctx) -> None:
    """Become the gateway (``python -m gateway``, the same process id): apt_model ships in every
    image and never imports the gateway, which only its own image and the project carry."""
    if importlib.util.find_spec("gateway") is None:
        raise CliError("The gateway is not installed here; run it from the project's environment "
                       "('make venv') or its image (apt/gateway).", 2)
    env = dict(os.environ)
    if ctx.args.listen:
        env["APT_LISTEN"] = ctx.args.listen
    if ctx.args.home:
        env["APT_HOME"] = ctx.args.home
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "gateway"], env)


def cmd_status(ctx: Ctx) -> None:
    status = gateway_pb2_grpc.CoreStub(ctx.channel()).GetStatus(gateway_pb2.GetStatusRequest(), timeout=ctx.timeout or 10)
    if ctx.as_json:
        emit_json(to_dict(status))
        return
    for key, value in to_dict(status).items():
        print(f"{key:18} {value}")


def cmd_plugin_list(ctx: Ctx) -> None:
    reply = gateway_pb2_grpc.PluginRegistryStub(ctx.channel()).ListPlugins(
        gateway_pb2.ListPluginsRequest(), timeout=ctx.timeout or 10)
    if ctx.as_json:
        emit_json([to_dict(p) for p in reply.plugins])
        return
    print_table("plugins", ["name", "version", "status", "replicas", "gpu", "detail"],
                [[p.name, p.version, PLUGIN_STATUS[p.status], p.replicas or "", "yes" if p.wants_gpu else "",
                  p.status_message] for p in reply.plugins])


def cmd_plugin_describe(ctx: Ctx) -> None:
    from apt_model.gen.apt.plugin.v1 import plugin_pb2

    channel = ctx.channel()
    info = gateway_pb2_grpc.PluginRegistryStub(channel).GetPlugin(
        gateway_pb2.GetPluginRequest(name=ctx.args.name), timeout=ctx.timeout or 10)
    data = {"plugin": to_dict(info)}
    if info.status == gateway_pb2.PLUGIN_STATUS_INSTALLED:
        # Describe is served by the plugin itself; route it by the plugin's metadata header
        desc = plugin_pb2_grpc.PluginStub(channel).Describe(
            plugin_pb2.DescribeRequest(), metadata=[("x-apt-plugin", info.name)], timeout=ctx.timeout or 10)
        data["description"] = to_dict(desc)
        data["description"].pop("file_descriptor_set", None)  # bytes for programs, not for reading
    if ctx.as_json:
        emit_json(data)
        return
    print(f"{info.name} {info.version}: {info.description}\nstatus: {PLUGIN_STATUS[info.status]} ({info.status_message})")
    print("requirements: " + ", ".join(info.requirements))
    if info.status == gateway_pb2.PLUGIN_STATUS_INSTALLED:
        _print_operations(info.name, desc)


def _print_operations(plugin: str, desc) -> None:
    """Each operation as the command that calls it, with the flags it takes (the generic CLI's)."""
    words = generic.operation_words(desc.operations)
    for op in desc.operations:
        aliases = [w for w, o in words.items() if o is op and w != generic.kebab(op.name)]
        also = f" (or {', '.join(aliases)})" if aliases else ""
        print(f"\n  apt-model {plugin} {generic.kebab(op.name)}{also}: {op.description}")
        for a in op.arguments:
            value = "" if a.type == "bool" and not a.repeated else f" <{a.type}>"
            req = " (required)" if a.required else ""
            default = f" (default: {a.default_value})" if a.default_value else ""
            print(f"    --{generic.kebab(a.name)}{value}{req} {a.description}{default}")


def cmd_plugin_new(ctx: Ctx) -> None:
    from apt_model.sdk import scaffold

    folder = scaffold.create(Path(ctx.args.dir).expanduser(), ctx.args.name, torch=ctx.args.torch)
    if ctx.as_json:
        emit_json({"folder": str(folder)})
        return
    print(f"wrote {folder}\n"
          f"  test it:    python -m pytest {folder / 'tests'}\n"
          f"  install it: APT_PLUGIN_PATH={folder.parent} apt-model gateway serve, then "
          f"apt-model plugin install {ctx.args.name}\n"
          f"  call it:    apt-model {ctx.args.name} count-words --dataset NAME\n"
          "  the guide:  docs/plugins.md")


def cmd_plugin_package(ctx: Ctx) -> None:
    from apt_model.sdk import package

    wheel = package.build_wheel(Path(ctx.args.folder).expanduser(), Path(ctx.args.out).expanduser())
    if ctx.as_json:
        emit_json({"wheel": str(wheel)})
        return
    print(f"wrote {wheel}\n"
          f"  install it where the gateway runs: python -m pip install {wheel}\n"
          "  then restart the gateway: the catalogue lists it (entry point group apt.plugins)")


def cmd_plugin_install(ctx: Ctx) -> None:
    stub = gateway_pb2_grpc.PluginRegistryStub(ctx.channel(admin=True))
    if not ctx.as_json:
        print(f"installing {ctx.args.name} ...", file=sys.stderr)
    info = stub.InstallPlugin(gateway_pb2.InstallPluginRequest(name=ctx.args.name, replicas=ctx.args.replicas),
                              timeout=ctx.timeout or 600)
    emit_json(to_dict(info)) if ctx.as_json else print(
        f"installed {info.name} ({info.deployer}, {info.replicas} replica(s)): {', '.join(info.endpoints)}")


def cmd_plugin_uninstall(ctx: Ctx) -> None:
    stub = gateway_pb2_grpc.PluginRegistryStub(ctx.channel(admin=True))
    info = stub.UninstallPlugin(gateway_pb2.UninstallPluginRequest(name=ctx.args.name), timeout=ctx.timeout or 120)
    emit_json(to_dict(info)) if ctx.as_json else print(f"uninstalled {info.name}")


def cmd_job_list(ctx: Ctx) -> None:
    reply = plugin_pb2_grpc.JobsStub(ctx.channel()).ListJobs(
        job_pb2.ListJobsRequest(service=ctx.args.service, active_only=ctx.args.active), timeout=ctx.timeout or 30)
    if ctx.as_json:
        emit_json([to_dict(j) for j in reply.jobs])
        return
    print_table("jobs", ["id", "state", "progress", "stage", "operation", "message"],
                [[j.id, JOB_STATE[j.state], f"{j.progress * 100:.0f}%", j.stage, j.operation.rsplit("/", 1)[-1],
                  (j.error.message or j.message)[:60]] for j in reply.jobs])


def cmd_job_get(ctx: Ctx) -> None:
    job = plugin_pb2_grpc.JobsStub(ctx.channel()).GetJob(job_pb2.GetJobRequest(id=ctx.args.id), timeout=ctx.timeout or 10)
    emit_json(job_dict(job, typed_result(job, generic.result_pool(ctx, job.id))))


def cmd_job_watch(ctx: Ctx) -> None:
    finish_job(ctx, watch_job(ctx, ctx.args.id), pool=generic.result_pool(ctx, ctx.args.id))


def cmd_job_cancel(ctx: Ctx) -> None:
    job = plugin_pb2_grpc.JobsStub(ctx.channel()).CancelJob(job_pb2.CancelJobRequest(id=ctx.args.id),
                                                            timeout=ctx.timeout or 10)
    emit_json(to_dict(job)) if ctx.as_json else print(f"{job.id}: {JOB_STATE[job.state].lower()}")


def main(argv: list[str] | None = None) -> None:
    try:
        try:
            _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here (also after --help), not at interpreter exit
    except BrokenPipeError:
        # '... | head' stopped reading: end quietly, as a writer killed by SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


def _main(argv: list[str] | None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    at = generic.command_index(argv)
    plugin_call = at is not None and argv[at] not in _commands(parser)
    args = None if plugin_call else parser.parse_args(argv)
    ctx = Ctx(args if args is not None else generic.global_args(argv))
    try:
        if plugin_call:  # a plugin's name: its operations come from its proto, through the gateway
            generic.run(argv, at)
        else:
            args.func(ctx)
    except grpc.RpcError as exc:
        text = exc.details() or str(exc)
        if exc.code() == grpc.StatusCode.UNAVAILABLE and "failed to connect" in text.lower():
            text = (f"cannot reach the gateway at {ctx.address}: start it with 'apt-model gateway serve' "
                    "or pass --gateway HOST:PORT")
        details = error_details(exc)
        text = textwrap.shorten(text, 2000)
        if details.fields:  # one line still: the fields at fault, then the id to find the call in the logs
            text += f" [fields: {', '.join(name for name, _ in details.fields)}]"
        if details.request_id:
            text += f" [request id {details.request_id}]"
        print(f"error: {exc.code().name}: {text}", file=sys.stderr)
        sys.exit(EXIT_CODES.get(exc.code(), 1))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.code)
    except errors.AptError as exc:  # raised on this machine (e.g. plugin new), not by a service
        print(f"error: {exc.code.name}: {exc.message}", file=sys.stderr)
        sys.exit(EXIT_CODES.get(exc.code, 1))
    except KeyboardInterrupt:
        sys.exit(130)


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    """The words the static parser knows as commands (with their aliases)."""
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


if __name__ == "__main__":
    main()
