"""Generate Python modules from a folder of .proto files: ``make proto`` and plugin authors alike.

``python -m apt_model.sdk.protogen PROTO_DIR OUT_DIR [--package PKG]`` writes, for every
``PROTO_DIR/**/*.proto``, the protobuf and gRPC modules (``*_pb2.py``, ``*_pb2.pyi``,
``*_pb2_grpc.py``) and the file's descriptor with its comments (``*.binpb``: the help of
Describe and of the CLI, apt_model.runtime.contract) under ``OUT_DIR``, which it replaces.

protoc writes absolute imports (``from apt.common.v1 import job_pb2``); they are rewritten so no
top-level ``apt`` module is needed (Debian's python3-apt has that name): a file generated in
this run is imported from ``PKG`` (the package ``OUT_DIR`` is, e.g. ``apt_hello.gen``), any other
``apt/`` file from ``apt_model.gen``. A plugin outside this repository imports the platform's
contracts (``apt/common/v1/job.proto``, ``apt/options/v1/options.proto``) without their .proto
sources: they are read from the descriptors ``apt_model.gen`` ships.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

GEN = Path(__file__).resolve().parent.parent / "gen"
HEADER = '"""Generated from proto/ by apt_model.sdk.protogen (make proto). Do not edit."""\n'


def _protoc(args: list[str]) -> None:
    import grpc_tools
    from grpc_tools import protoc

    include = str(Path(grpc_tools.__file__).parent / "_proto")  # the well-known types
    code = protoc.main(["protoc", f"-I{include}", *args])
    if code != 0:
        raise SystemExit(f"protoc failed ({code}) on: {' '.join(args)}")


def _platform_descriptors(proto_dir: Path) -> list[str]:
    """Descriptor files of the platform's protos that ``proto_dir`` does not hold itself."""
    return [str(p) for p in sorted(GEN.rglob("*.binpb"))
            if not (proto_dir / p.relative_to(GEN).with_suffix(".proto")).exists()]


def generate(proto_dir: Path, out: Path, package: str) -> list[str]:
    """Write the modules of every proto under ``proto_dir`` into ``out``; the proto paths."""
    proto_dir, out = Path(proto_dir).resolve(), Path(out)
    protos = sorted(p.relative_to(proto_dir).as_posix() for p in proto_dir.rglob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto file under {proto_dir}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    platform = _platform_descriptors(proto_dir)
    imports = [f"-I{proto_dir}"] + ([f"--descriptor_set_in={':'.join(platform)}"] if platform else [])
    _protoc([*imports, f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *protos])
    for proto in protos:
        _protoc([*imports, "--include_source_info", f"--descriptor_set_out={out / proto[:-len('.proto')]}.binpb",
                 proto])
    own = {p[:-len(".proto")].replace("/", ".").rsplit(".", 1)[0] for p in protos}  # packages made here

    def rewrite(match: re.Match) -> str:
        keyword, module = match.group(1), match.group(2)
        root = package if any(module == p or module.startswith(p + ".") for p in own) else "apt_model.gen"
        return f"{keyword} {root}.{module}"

    pattern = re.compile(r"^(from|import) (apt\.[a-z0-9_.]+)", re.MULTILINE)
    for f in sorted([*out.rglob("*.py"), *out.rglob("*.pyi")]):
        f.write_text(pattern.sub(rewrite, f.read_text()))
    for folder in sorted(p for p in out.rglob("*") if p.is_dir()):
        (folder / "__init__.py").write_text("")
    (out / "__init__.py").write_text(HEADER)
    return protos


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m apt_model.sdk.protogen", description=__doc__.split("\n\n")[0])
    parser.add_argument("proto_dir", type=Path, help="folder holding the .proto files (their import root)")
    parser.add_argument("out", type=Path, help="folder to (re)write the modules into")
    parser.add_argument("--package", help="the Python package OUT is (default: OUT's path with dots)")
    a = parser.parse_args(argv)
    package = a.package or ".".join(a.out.with_suffix("").parts)
    protos = generate(a.proto_dir, a.out, package)
    print(f"generated {len(protos)} proto file(s) into {a.out} (package {package})", file=sys.stderr)


if __name__ == "__main__":
    main()
