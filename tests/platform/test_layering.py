"""Layering: apt_model (copied into every image) depends on no gateway and no plugin code."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("gateway",) + tuple(sorted(
    p.name for d in (ROOT / "services").iterdir() if d.is_dir() for p in d.iterdir()
    if p.is_dir() and p.name.startswith("apt_") and (p / "__init__.py").is_file()))


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_apt_model_imports_no_gateway_and_no_plugin():
    assert "apt_prune" in FORBIDDEN and "apt_hf" in FORBIDDEN  # the walk found the plugin packages
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}"
           for path in sorted((ROOT / "apt_model").rglob("*.py")) if "gen" not in path.parts
           for line, name in _imports(path) if name.split(".")[0] in FORBIDDEN]
    assert bad == [], "apt_model must not depend on the gateway or a plugin:\n" + "\n".join(bad)


def test_the_hub_clients_import_no_hub_library():
    """apt_model.hubs is in every image, most of which lack huggingface_hub and modelscope: the
    clients import them inside their functions, never when the module is imported."""
    import subprocess
    import sys

    libraries = ("huggingface_hub", "modelscope", "modelscope_hub", "httpx2", "requests")
    code = ("import sys, apt_model.hubs, apt_model.hubs.errors, apt_model.hubs.hf, apt_model.hubs.modelscope\n"
            f"print(' '.join(m for m in {libraries!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"importing apt_model.hubs imported {done.stdout.strip()}"
