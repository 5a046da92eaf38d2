"""The contracts under proto/: buf lint and buf breaking (buf-bin from PyPI), the committed
Python stubs are what `make proto` makes, and the Java/C# options give every file a home."""

from __future__ import annotations

import os
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
