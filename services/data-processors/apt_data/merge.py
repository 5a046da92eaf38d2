"""``python -m apt_data.merge``: the last step of a large process job run as a Kubernetes Indexed
Job (or as shard processes by hand): every shard folder under ``$APT_HOME/exports/<name>-shards/``,
in order, through the service's own merge (``apt_data.pipeline.merge_into``: exact dedup, LSH
buckets, families, split) into the store dataset ``<name>`` (and ``<name>-eval``). It prints the
job's result as JSON; the shard folders are removed unless ``--keep-shards``.
"""

from __future__ import annotations

import argparse

from apt_data import cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apt_data.merge", description=__doc__.split("\n\n")[0])
    cluster.add_arguments(parser)
    parser.add_argument("--keep-shards", action="store_true", help="leave the shard folders in place")
    args = parser.parse_args(argv)
    return cluster.run_cli(lambda: cluster.run_merge(args))


if __name__ == "__main__":
    raise SystemExit(main())
