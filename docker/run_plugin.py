"""Container entry point of a plugin image: run the module named in the plugin's plugin.yaml.

`python3 /app/run_plugin.py /app/services/<plugin>` so the Dockerfile never repeats what
plugin.yaml already says; the module runs as __main__ in this process (PID 1 receives SIGTERM).
"""

import runpy
import sys
from pathlib import Path

import yaml


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: run_plugin.py PLUGIN_DIR")
    manifest = yaml.safe_load((Path(sys.argv[1]) / "plugin.yaml").read_text())
    module = manifest.get("module") or ""
    if not module:
        sys.exit(f"{sys.argv[1]}/plugin.yaml names no module: this plugin has no server to run yet.")
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
