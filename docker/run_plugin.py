"""Container entry point of a plugin image: run the module named in the plugin's plugin.yaml.

`python3 /app/run_plugin.py [/app/services/<plugin>]` (default: $APT_PLUGIN_DIR, which
docker/plugin.Dockerfile sets so that every plugin image shares its base's CMD) so the Dockerfile
never repeats what plugin.yaml already says; the module runs as __main__ in this process (PID 1 receives SIGTERM),
in the plugin's folder, with umask 027: what it writes into the shared store is 0640/0750, never
world-readable (the local deployer starts plugins the same way).
"""

import os
import runpy
import sys
from pathlib import Path

import yaml


def main() -> None:
    if len(sys.argv) > 2 or (len(sys.argv) == 1 and not os.environ.get("APT_PLUGIN_DIR")):
        sys.exit("usage: run_plugin.py PLUGIN_DIR (or set APT_PLUGIN_DIR)")
    plugin_dir = Path(sys.argv[1] if len(sys.argv) == 2 else os.environ["APT_PLUGIN_DIR"])
    os.umask(0o027)
    manifest = yaml.safe_load((plugin_dir / "plugin.yaml").read_text())
    module = manifest.get("module") or ""
    if not module:
        sys.exit(f"{plugin_dir}/plugin.yaml names no module: this plugin has no server to run yet.")
    os.chdir(plugin_dir)
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
