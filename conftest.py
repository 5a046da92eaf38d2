"""Test-session wiring: every plugin's package folder is importable, threads are bounded."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
for plugin_dir in sorted((ROOT / "services").iterdir()):
    if plugin_dir.is_dir() and str(plugin_dir) not in sys.path:
        sys.path.insert(0, str(plugin_dir))
sys.path.insert(0, str(ROOT / "tests" / "plugins" / "echo"))

# 2-core machines: keep torch from oversubscribing when several test processes run.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
