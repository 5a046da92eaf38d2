"""The contracts under proto/: buf lint and buf breaking (buf-bin from PyPI), the committed
Python stubs are what `make proto` makes, and the Java/C# options give every file a home."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
PROTOS = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))


def _buf(*args: str) -> subprocess.CompletedProcess:
    assert BUF, "buf is missing: it comes with requirements/dev.txt (buf-bin); run 'make venv'"
    # buf keeps a cache; point it at a writable folder of ours (HOME may be read-only in CI)
    env = {**os.environ, "BUF_CACHE_DIR": str(ROOT / ".apt" / "buf-cache")}
    return subprocess.run([BUF, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def test_buf_lint_is_clean():
    out = _buf("lint", "proto")
    assert out.returncode == 0, out.stdout + out.stderr


def test_buf_lint_catches_a_violation(tmp_path):
    """The lint step is not vacuous: a field name buf's STANDARD rules refuse fails it."""
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    job = tmp_path / "proto" / "apt" / "common" / "v1" / "job.proto"
    job.write_text(job.read_text().replace("string stage = 5;", "string Stage = 5;"))
    out = subprocess.run([BUF, "lint", str(tmp_path / "proto")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "BUF_CACHE_DIR": str(tmp_path / "cache")})
    assert out.returncode != 0 and "lower_snake_case" in out.stdout, out.stdout + out.stderr


def _against() -> str:
    """main as the remote knows it when there is one (a developer's clone), else the local main."""
    for ref in ("origin/main", "main"):
        try:
            return _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except subprocess.CalledProcessError:
            continue
    pytest.fail("no 'main' branch to check buf breaking against: fetch it (git fetch origin main)")


def test_buf_breaking_against_main(tmp_path):
    """main's proto/ comes out of git with `git archive` (works in shallow clones too, where
    buf's own git input cannot clone)."""
    archive = subprocess.run(["git", "archive", _against(), "proto"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive, check=True)
    out = _buf("breaking", "proto", "--against", str(tmp_path / "proto"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_buf_breaking_catches_a_renumbered_field(tmp_path):
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    job = tmp_path / "proto" / "apt" / "common" / "v1" / "job.proto"
    job.write_text(job.read_text().replace("string stage = 5;", "string stage = 55;"))
    out = _buf("breaking", str(tmp_path / "proto"), "--against", "proto")
    assert out.returncode != 0 and "stage" in out.stdout, out.stdout + out.stderr


def test_make_proto_leaves_no_diff(tmp_path):
    """tools/gen_proto.sh into a scratch copy of the tree gives exactly the committed stubs."""
    scratch = tmp_path / "tree"
    (scratch / "apt_model").mkdir(parents=True)
    shutil.copytree(ROOT / "proto", scratch / "proto")
    shutil.copytree(ROOT / "tools", scratch / "tools")
    out = subprocess.run(["bash", "tools/gen_proto.sh"], cwd=scratch, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHON": sys.executable})
    assert out.returncode == 0, out.stderr

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}

    committed, made = files(ROOT / "apt_model" / "gen"), files(scratch / "apt_model" / "gen")
    differing = sorted(n for n in committed.keys() | made.keys() if committed.get(n) != made.get(n))
    assert not differing, f"run 'make proto' and commit the stubs: {differing}"


def _files():
    import importlib
    import pkgutil

    import apt_model.gen.apt as gen

    for info in pkgutil.walk_packages(gen.__path__, gen.__name__ + "."):
        if info.name.endswith("_pb2"):
            yield importlib.import_module(info.name).DESCRIPTOR


def test_every_file_has_java_and_csharp_options_that_resolve():
    """Java: com.<package>, one class per message and an outer class name that no message,
    enum or service of the file takes (javac refuses that clash); C#: the package in Pascal
    case. Go: no go_package (the client's module decides; docs/api.md)."""
    seen = 0
    for f in _files():
        opts = f.GetOptions()
        assert opts.java_package == f"com.{f.package}", f.name
        assert opts.java_multiple_files, f.name
        taken = {*f.message_types_by_name, *f.enum_types_by_name, *f.services_by_name}
        assert opts.java_outer_classname and opts.java_outer_classname not in taken, f.name
        pascal = ".".join("".join(w.capitalize() for w in part.split("_")) for part in f.package.split("."))
        assert opts.csharp_namespace == pascal, f.name
        assert not opts.HasField("go_package"), f.name
        seen += 1
    assert seen == len(PROTOS)


def test_every_long_running_method_declares_a_result_message():
    """Every method returning apt.common.v1.Job, in every service of every contract, names its
    result message with (apt.options.v1.result_type); the name resolves to a message in the pool,
    and every result has its warnings."""
    from google.protobuf.descriptor import FieldDescriptor

    from apt_model.runtime import results

    declared = {}
    for f in _files():
        for service in f.services_by_name.values():
            for method in results.long_running(service):
                result = results.declared_type(method)  # LookupError naming the method otherwise
                warnings = result.fields_by_name.get("warnings")
                assert warnings is not None and warnings.is_repeated and warnings.type == FieldDescriptor.TYPE_STRING, \
                    f"{result.full_name} has no 'repeated string warnings'"
                declared[method.full_name] = result.full_name
    assert declared["apt.plugins.model_pruning.v1.Pruning.StartPrune"] == "apt.plugins.model_pruning.v1.PruneResult"
    assert declared["apt.gateway.v1.Core.StartTrain"] == "apt.gateway.v1.TrainResult"
    # every Start* written in proto/, none of the job service's own (GetJob, CancelJob)
    starts = [m for p in PROTOS for m in re.findall(r"rpc (Start\w+)\(\w+\) returns \(apt\.common\.v1\.Job\)",
                                                   (ROOT / "proto" / p).read_text())]
    # (at least the 28 of the first five plugins and the core: the pattern still finds them)
    assert sorted(m.rsplit(".", 1)[1] for m in declared) == sorted(starts) and len(starts) >= 28



def _method(option: str):
    """StartX of a contract made here, returning apt.common.v1.Job, with ``option`` on it."""
    from google.protobuf import descriptor_pb2, descriptor_pool, text_format

    from apt_model.gen.apt.common.v1 import job_pb2
    from apt_model.gen.apt.options.v1 import options_pb2

    pool, added = descriptor_pool.DescriptorPool(), set()

    def add(file) -> None:
        if file.name not in added:
            for dep in file.dependencies:
                add(dep)
            proto = descriptor_pb2.FileDescriptorProto()
            file.CopyToProto(proto)
            pool.Add(proto)
            added.add(file.name)

    add(job_pb2.DESCRIPTOR)
    add(options_pb2.DESCRIPTOR)
    pool.Add(text_format.Parse(f"""
        name: "x/v1/x.proto" package: "x.v1" syntax: "proto3"
        dependency: "apt/common/v1/job.proto" dependency: "apt/options/v1/options.proto"
        message_type {{ name: "XRequest" }} message_type {{ name: "XResult" }}
        service {{ name: "X" method {{ name: "StartX" input_type: ".x.v1.XRequest"
                                     output_type: ".apt.common.v1.Job" {option} }} }}
        """, descriptor_pb2.FileDescriptorProto()))
    return pool.FindServiceByName("x.v1.X").methods_by_name["StartX"]


def test_a_missing_or_wrong_result_type_is_named_with_the_fix():
    """What the check above (and every service at start-up, ServiceApp.add_servicer) relies on."""
    from apt_model.runtime import results

    declared = results.declared_type(_method('options { [apt.options.v1.result_type]: "x.v1.XResult" }'))
    assert declared.full_name == "x.v1.XResult"
    with pytest.raises(LookupError, match=r"x\.v1\.X\.StartX returns a Job but declares no result message; "
                                          r"add 'option \(apt\.options\.v1\.result_type\).*x/v1/x\.proto: rpc StartX"):
        results.declared_type(_method(""))
    with pytest.raises(LookupError, match=r"declares result_type 'x\.v1\.Missing', which is not a message"):
        results.declared_type(_method('options { [apt.options.v1.result_type]: "x.v1.Missing" }'))
