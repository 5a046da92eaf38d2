"""Build the service images offline: `python docker/images.py build [NAME...]` (what `make images` runs).

Order: apt/torch-base and apt/slim-base (docker/base.Dockerfile), the gateway, then every plugin
whose plugin.yaml says ``available: true`` (docker/plugin.Dockerfile, FROM the base its plugin.yaml
names). The bases build FROM ${BASE_IMAGE}: python:3.11-slim when it is present or can be pulled, otherwise the
local apt/python-base:3.11-bookworm from `make base-image`. An image whose inputs (files, wheels,
parent image) are unchanged since its last build is skipped; the Docker layer cache does the rest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import imagebuild as ib


def docker_image_id(ref: str) -> str | None:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def image_label(ref: str, key: str) -> str | None:
    out = subprocess.run(["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{key}"}}}}', ref],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def choose_base(explicit: str | None) -> str:
    """The base image: an explicit one, the public slim image when reachable, else the local build."""
    if explicit:
        if docker_image_id(explicit) is None and subprocess.run(["docker", "pull", explicit]).returncode != 0:
            raise ib.BuildError(f"BASE_IMAGE={explicit} is neither present nor pullable.")
        return explicit
    if docker_image_id(ib.PUBLIC_BASE) is not None:
        return ib.PUBLIC_BASE
    pulled = subprocess.run(["docker", "pull", ib.PUBLIC_BASE], capture_output=True, text=True, timeout=300)
    if pulled.returncode == 0:
        return ib.PUBLIC_BASE
    print(f">> {ib.PUBLIC_BASE} cannot be pulled ({pulled.stderr.strip()[:120]}); using {ib.LOCAL_BASE}")
    if docker_image_id(ib.LOCAL_BASE) is None:
        print(f">> {ib.LOCAL_BASE} does not exist: building it (debootstrap, about 3 min)")
        if subprocess.run([str(ib.ROOT / "docker/build_base.sh"), ib.LOCAL_BASE]).returncode != 0:
            raise ib.BuildError(f"{ib.PUBLIC_BASE} cannot be pulled and building {ib.LOCAL_BASE} failed "
                                "(docker/build_base.sh, output above); pass --base IMAGE to use another base.")
    return ib.LOCAL_BASE


def base_python(base: str) -> str:
    """The Python version of the base image (e.g. 3.11.2 on Debian bookworm's python3): wheels are
    resolved for it, not for the host's interpreter, which may be newer."""
    done = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3", base, "-c",
                           "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, timeout=120)
    version = done.stdout.strip()
    if done.returncode != 0 or not version.startswith("3."):
        raise ib.BuildError(f"Cannot tell the Python version of the base image {base}: `python3` there "
                            f"answered {(done.stderr or version).strip()[-300:]!r}; its images need python3.")
    return version


def fill_wheelhouse(specs: list[ib.ImageSpec], wheelhouse: Path, python: str) -> None:
    """Download/build the wheels these images need that the wheelhouse lacks (pip skips the rest)."""
    reqs = sorted({r for s in specs for r in s.requirements})
    print(f">> filling the wheelhouse {wheelhouse} for Python {python}: {', '.join(reqs)}")
    env = {**os.environ, "WHEELHOUSE": str(wheelhouse), "PYTHON": sys.executable, "IMAGE_PYTHON": python}
    if subprocess.run([str(ib.ROOT / "docker/wheelhouse.sh"), *reqs], env=env).returncode != 0:
        raise ib.BuildError(f"docker/wheelhouse.sh could not fill {wheelhouse} (output above); "
                            "it needs the package index once, then builds are offline.")


def installed_folder(name: str) -> Path:
    """The folder a pip-installed plugin's package carries, found as the gateway finds it (its
    apt.plugins entry point, located and never imported)."""
    from gateway.catalog import entry_point_folders

    found, broken = entry_point_folders()
    if name in found:
        return found[name]
    if name in broken:
        raise ib.BuildError(f"The installed plugin {name} cannot be built: {broken[name]}")
    raise ib.BuildError(f"No installed package registers the plugin {name} (apt.plugins entry points here: "
                        f"{', '.join(sorted(found)) or 'none'}); `pip install` its wheel into this Python first.")


def build_one(spec: ib.ImageSpec, ctx: ib.Context, base: str, prefix: str, version: str) -> str:
    tag = spec.tag(prefix, version)
    parent_tag = ib.base_spec(spec.parent).tag(prefix, version) if spec.parent else ""
    parents = [docker_image_id(base) or base] + ([docker_image_id(parent_tag) or parent_tag] if parent_tag else [])
    digest = ctx.compute_digest(parents)
    if image_label(tag, "apt.context-digest") == digest:
        print(f">> {tag}: up to date")
        return tag
    size_mb = sum(w.stat().st_size for w in ctx.wheels) / 1e6
    print(f">> {tag}: {len(ctx.files)} files, {len(ctx.wheels)} wheels ({size_mb:.0f} MB) from {spec.dockerfile}")
    args = [f"APT_BASE={parent_tag}" if parent_tag else f"BASE_IMAGE={base}",
            *(f"{k}={v}" for k, v in spec.build_args)]
    start = time.monotonic()
    with ib.WheelServer(ctx.wheels) as wheels_url:
        # --network host: RUN steps reach the wheel server on the host's loopback
        cmd = ["docker", "build", "--force-rm", "--network", "host", "-f", spec.dockerfile, "-t", tag,
               *(f"--build-arg={a}" for a in [*args, f"WHEELS={wheels_url}"]),
               "--label", f"apt.context-digest={digest}", "-"]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        try:
            ctx.write_tar(proc.stdin)
        except BrokenPipeError:
            pass  # docker exited early; its own message and exit code say why
        finally:
            proc.stdin.close()
        proc.wait()
    if proc.returncode != 0:
        raise ib.BuildError(f"docker build of {tag} failed (exit {proc.returncode}); see the output above.")
    print(f">> {tag}: built in {time.monotonic() - start:.0f}s")
    return tag


def build(names: list[str], base: str | None, prefix: str, version: str, wheelhouse: Path,
          extra_plugins: list[Path]) -> list[str]:
    specs = ib.all_specs() + [ib.plugin_spec(d) for d in extra_plugins]
    specs = [s for s in specs if s is not None]
    known = {s.name for s in specs}
    wanted = set(names) if names else known
    unknown = wanted - known
    if unknown:
        raise ib.BuildError(f"No image named {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))} "
                            "(plugins with available: false get no image).")
    parents = {s.parent for s in specs if s.name in wanted and s.parent}
    wanted |= parents
    chosen_base = choose_base(base)
    python = base_python(chosen_base)
    chosen = [s for s in specs if s.name in wanted]
    if "gateway" in wanted and subprocess.run(["make", "-s", "-C", str(ib.ROOT), "router"]).returncode != 0:
        raise ib.BuildError("The gateway image carries apt-router: 'make router' failed (output above).")
    try:
        for spec in chosen:
            ib.resolve_wheels(spec.requirements, wheelhouse, python)
    except ib.BuildError:
        fill_wheelhouse(chosen, wheelhouse, python)
    parent_wheels = {p: ib.resolve_wheels(ib.base_spec(p).requirements, wheelhouse, python) for p in parents}
    built = []
    for spec in specs:
        if spec.name in wanted:
            ctx = ib.make_context(spec, wheelhouse, parent_wheels.get(spec.parent), python)
            built.append(build_one(spec, ctx, chosen_base, prefix, version))
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build images (all when no NAME is given)")
    b.add_argument("names", nargs="*", metavar="NAME", help="torch-base, slim-base, gateway or a plugin name")
    b.add_argument("--base", default=os.environ.get("BASE_IMAGE"), help="base image (default: auto)")
    b.add_argument("--prefix", default=os.environ.get("APT_IMAGE_PREFIX", "apt"))
    b.add_argument("--tag", default=os.environ.get("APT_IMAGE_TAG", "latest"))
    b.add_argument("--wheelhouse", type=Path, default=ib.DEFAULT_WHEELHOUSE,
                   help=f"wheels for offline builds, filled on demand (env APT_WHEELHOUSE; default {ib.DEFAULT_WHEELHOUSE})")
    b.add_argument("--plugin", action="append", default=[], metavar="DIR",
                   help="also build this plugin folder: one of this repository outside services/ (the test "
                        "echo plugin, tests/plugins/echo) or one anywhere else (what `apt-model plugin new` "
                        "writes); the template builds it (a folder in this repository may bring its own Dockerfile)")
    b.add_argument("--installed", action="append", default=[], metavar="NAME",
                   help="also build this pip-installed plugin (an apt.plugins entry point of this Python's "
                        "packages, what `apt-model plugin package` makes) from the folder its package carries")
    sub.add_parser("list", help="print every image, the apt base it builds on and its Dockerfile")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for s in ib.all_specs():
                print(f"{s.name:26} {s.parent or '-':10} {s.dockerfile}")
            return 0
        extra = [Path(d).resolve() for d in args.plugin] + [installed_folder(n) for n in args.installed]
        for tag in build(args.names, args.base, args.prefix, args.tag, args.wheelhouse, extra):
            print(tag)
    except ib.BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
