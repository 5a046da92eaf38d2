"""Convert an HF checkpoint folder to GGUF from the command line, without the service.

    python -m apt_ollama.convert_cli MODEL_DIR OUT.gguf --outtype q8_0

Used by the benchmark and handy for one-off conversions; the service's export job calls
the same ``gguf_export.convert``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apt_model import errors

from apt_ollama.gguf_export import OUTTYPES, convert


class _Console:
    """Progress to stderr: warnings as they come, no bar (this is also run by scripts)."""

    def report(self, progress=None, stage=None, message=None, **_metrics) -> None:
        pass

    def check_cancelled(self) -> None:
        pass

    def warn(self, text: str) -> None:
        print(f"warning: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apt_ollama.convert_cli", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="Hugging Face checkpoint folder (config.json, safetensors, tokenizer.json)")
    parser.add_argument("outfile", type=Path, help="GGUF file to write (atomically)")
    parser.add_argument("--outtype", default="f16", choices=list(OUTTYPES))
    args = parser.parse_args(argv)
    try:
        info = convert(args.model_dir, args.outfile, args.outtype, _Console())
    except errors.AptError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"{info.path}: {info.arch} {info.outtype}, {info.n_tensors} tensors {info.type_counts}, "
          f"{info.size_bytes} bytes, pre-tokenizer {info.pre_tokenizer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
