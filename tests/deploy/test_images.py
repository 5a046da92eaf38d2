"""What docker/images.py builds, checked without an engine: one template for every plugin, FROM the
base its plugin.yaml names, from a context holding only what the template copies."""

from __future__ import annotations

import ast
import io
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from .conftest import ECHO_DIR, ROOT

import imagebuild as ib  # noqa: E402  (docker/ is put on sys.path by conftest)


def _available():
    return [p.parent for p in sorted((ROOT / "services").glob("*/plugin.yaml"))
            if yaml.safe_load(p.read_text()).get("available")]


def test_no_plugin_folder_carries_a_dockerfile_of_its_own():
    assert not list((ROOT / "services").glob("*/Dockerfile")), "docker/plugin.Dockerfile builds every plugin"


@pytest.mark.parametrize("folder", [*_available(), ECHO_DIR], ids=lambda p: p.name)
def test_every_plugin_image_is_the_template_on_its_base(folder):
    spec = ib.plugin_spec(folder)
    base = yaml.safe_load((folder / "plugin.yaml").read_text())["base"]
    rel = folder.relative_to(ROOT).as_posix()
    assert spec.dockerfile == ib.PLUGIN_DOCKERFILE and spec.parent == f"{base}-base"
    packages = " ".join(yaml.safe_load((folder / "plugin.yaml").read_text()).get("system_packages", []))
    assert dict(spec.build_args) == {"PLUGIN_DIR": rel, "PLUGIN_NAME": folder.name,
                                     **({"SYSTEM_PACKAGES": packages} if packages else {})}
    # the context: the template, apt_model, the plugin folder (no tests) and requirements files only
    files = {p.relative_to(ROOT).as_posix() for p in ib._context_files(spec)}
    assert ib.PLUGIN_DOCKERFILE in files and f"{rel}/plugin.yaml" in files
    stray = {f for f in files if not f.startswith(("apt_model/", f"{rel}/", "requirements/"))} - {ib.PLUGIN_DOCKERFILE}
    assert stray == set()
    assert not [f for f in files if "/tests/" in f.removeprefix(rel) or f.endswith(".pyc")]


def test_the_catalogue_builds_both_bases_the_gateway_and_each_available_plugin():
    specs = ib.all_specs()
    assert [s.name for s in specs[:3]] == ["torch-base", "slim-base", "gateway"]
    assert {s.name for s in specs[3:]} == {p.name for p in _available()}
    for s in specs[:2]:
        assert s.dockerfile == ib.BASE_DOCKERFILE and dict(s.build_args)["REQUIREMENTS"] == ib.BASE_REQUIREMENTS[s.name]
    # the deployers render from plugin.yaml: no Kubernetes file (and never k8s/base/secrets) in the gateway
    assert not [f for f in ib._context_files(specs[2]) if f.relative_to(ROOT).parts[0] == "k8s"]


def test_a_context_streams_as_the_files_it_lists():
    spec = ib.plugin_spec(ECHO_DIR)
    ctx = ib.Context(spec, ib._context_files(spec), wheels=[])
    buffer = io.BytesIO()
    ctx.write_tar(buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        names = tar.getnames()
    assert names == [p.relative_to(ROOT).as_posix() for p in ctx.files]


def test_a_plugin_folder_outside_the_repository_builds_from_the_folder_as_it_is(tmp_path):
    """`apt-model plugin new` writes outside the repository: the template builds it, its folder at
    plugins/<name> in the context; what the template cannot build is refused with the reason."""
    from apt_model.sdk import scaffold

    folder = scaffold.create(tmp_path, "word-count")
    spec = ib.plugin_spec(folder)
    assert (spec.dockerfile, spec.parent, spec.plugin_dir) == (ib.PLUGIN_DOCKERFILE, "slim-base", "plugins/word-count")
    files = ib._context_files(spec)
    names = {spec.arcname(p) for p in files}
    assert "plugins/word-count/plugin.yaml" in names and "plugins/word-count/requirements.txt" in names
    assert not any("tests/" in n.removeprefix("plugins/word-count/") for n in names if n.startswith("plugins/"))
    copied = tmp_path / "echo"
    shutil.copytree(ECHO_DIR, copied, ignore=shutil.ignore_patterns("__pycache__"))
    (copied / "requirements.txt").write_text("-r ../../requirements/runtime.txt\n")
    with pytest.raises(ib.BuildError, match="no -r or other options"):
        ib.plugin_spec(copied)
    (folder / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(ib.BuildError, match="has its own Dockerfile"):
        ib.plugin_spec(folder)


def _repo_imports(path) -> list[str]:
    """Absolute imports in ``path`` (every one: module level and inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return names + [n.module for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module]


def _module_file(name: str, roots) -> "Path | None":
    """The repository file module ``name`` is, under one of ``roots`` (the image's PYTHONPATH)."""
    rel = Path(*name.split("."))
    for root in roots:
        for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


@pytest.mark.parametrize("spec", ib.all_specs()[2:], ids=lambda s: s.name)
def test_images_ship_no_test_support_and_every_repository_module_their_code_imports(spec):
    """The testing library (apt_model/testing: fixtures, local hub servers) and plugins' test
    packages are left out of every image, so no code an image holds may import them: each module
    of this repository imported by a shipped file must be shipped too."""
    files = ib._context_files(spec)
    shipped = {p.resolve() for p in files}
    names = {spec.arcname(p) for p in files}
    assert not [n for n in names if "/testing/" in n or "_testing/" in n], spec.name
    roots = [ROOT] + ([ROOT / spec.plugin_dir] if spec.plugin_dir and not spec.source else [])
    missing = sorted(f"{spec.arcname(p)} imports {name}" for p in files if p.suffix == ".py"
                     for name in _repo_imports(p)
                     if (target := _module_file(name, roots)) is not None and target.resolve() not in shipped)
    assert missing == [], f"image {spec.name} lacks modules its code imports:\n" + "\n".join(missing)


def test_system_packages_reach_the_template_as_one_build_argument(tmp_path):
    folder = tmp_path / "browser-plugin"
    shutil.copytree(ECHO_DIR, folder)
    manifest = yaml.safe_load((folder / "plugin.yaml").read_text())
    (folder / "plugin.yaml").write_text(yaml.safe_dump({**manifest, "name": folder.name,
                                                        "system_packages": ["chromium", "fonts-noto-cjk"]}))
    (folder / "requirements.txt").write_text("grpcio==1.85.1\n")  # outside the repository: no -r
    assert dict(ib.plugin_spec(folder).build_args)["SYSTEM_PACKAGES"] == "chromium fonts-noto-cjk"
    template = (ROOT / ib.PLUGIN_DOCKERFILE).read_text()
    assert "apt-get install -y -qq --no-install-recommends ${SYSTEM_PACKAGES}" in template


def _wheel(folder: Path, version: str, requires_python: str) -> Path:
    """A minimal pure-Python wheel of the project ``aptfake`` (metadata only)."""
    import zipfile
    path = folder / f"aptfake-{version}-py3-none-any.whl"
    info = f"aptfake-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: aptfake\nVersion: {version}\n"
                                         f"Requires-Python: {requires_python}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


def test_wheels_resolve_for_the_images_python_not_the_hosts(tmp_path):
    """The wheelhouse is filled by the host's interpreter; an image on Debian bookworm has 3.11.2.
    A release that needs a newer Python than the image's must be passed over for one that fits
    (soupsieve 2.9 needs 3.11.5: pip in the image refused it and the build failed)."""
    old, new = _wheel(tmp_path, "1.0", ">=3.11"), _wheel(tmp_path, "2.0", ">=3.11.5")
    (tmp_path / "requirements.txt").write_text("aptfake\n")
    requirements = (str(tmp_path / "requirements.txt"),)
    assert ib.resolve_wheels(requirements, tmp_path, "3.11.2") == {"aptfake": old}
    assert ib.resolve_wheels(requirements, tmp_path, "3.11.7") == {"aptfake": new}
    new.unlink()
    old.unlink()
    with pytest.raises(ib.BuildError, match="make wheelhouse"):
        ib.resolve_wheels(requirements, tmp_path, "3.11.2")
