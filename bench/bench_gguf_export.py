"""GGUF f16 export: this plugin's converter vs llama.cpp's own convert_hf_to_gguf.py.

    .venv/bin/python bench/bench_gguf_export.py [--quick] [--llama-cpp-src DIR]

One HF checkpoint (the ``apt`` medium preset, ~110M parameters, f32 safetensors, built
from its config with random weights) is exported to f16 by both converters, each in its
own fresh process, alternating, ``--repeat`` times. Wall time and peak RSS (the child's
own ``ru_maxrss`` from wait4) are compared as medians; file sizes must agree within 1%,
and the tensor data of the two files is compared byte for byte.

The baseline is the ``convert_hf_to_gguf.py`` shipped in llama-cpp-python's source
distribution (fetched with ``pip download --no-binary`` when ``--llama-cpp-src`` is not
given), run unmodified except for one thing: the tokenizer here is trained on the spot,
so its fingerprint is not in llama.cpp's table of known tokenizers and the script would
refuse it. The driver answers that one question the way the table would for a GPT-2-regex
byte-level BPE ("gpt-2"), by replacing ``TextModel.get_vocab_base_pre`` before running it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "services" / "ollama-export")]

from common import machine, median, save, verdict  # noqa: E402

LLAMA_CPP_VERSION = "0.3.36"
BASELINE_DRIVER = """
import runpy, sys
src = sys.argv.pop(1)
sys.path[:0] = [src, src + "/gguf-py"]
import conversion.base
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv[0] = src + "/convert_hf_to_gguf.py"
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def build_checkpoint(folder: Path, size: str, layers: int) -> int:
    """Save an apt-preset model (f32 safetensors) + tokenizer; returns its parameter count.

    Runs in its own process (``--build``): a child inherits its parent's peak RSS across
    fork and exec, so the parent must never hold a model while it measures its children.
    """
    import torch

    from apt_model.modeling.io import save_model
    from apt_model.modeling.preset import create_model, preset_config
    from apt_model.modeling.tokenizer import train_tokenizer
    from apt_model.testing import SAMPLE_TEXT

    torch.set_num_threads(1)
    tok = train_tokenizer(SAMPLE_TEXT, vocab_size=512)
    config = preset_config(size, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config.num_hidden_layers = layers or config.num_hidden_layers
    model = create_model(config, seed=0)
    save_model(model, tok, folder)
    return sum(p.numel() for p in model.parameters())


def llama_cpp_source(cache: Path) -> Path:
    src = cache / f"llama_cpp_python-{LLAMA_CPP_VERSION}" / "vendor" / "llama.cpp"
    if (src / "convert_hf_to_gguf.py").is_file():
        return src
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", f"llama-cpp-python=={LLAMA_CPP_VERSION}",
                    "--no-binary", "llama-cpp-python", "--no-deps", "-d", str(cache)], check=True)
    with tarfile.open(cache / f"llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz") as tar:
        tar.extractall(cache, filter="data")
    return src


def run_measured(cmd: list[str], env: dict) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes of one child process (its own rusage, via wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{stderr.decode(errors='replace')[-3000:]}")
    return wall, usage.ru_maxrss * 1024  # Linux reports KiB


def compare_tensors(ours: Path, theirs: Path) -> tuple[int, int, list[str]]:
    import gguf
    import numpy as np

    a = {t.name: t for t in gguf.GGUFReader(ours).tensors}
    b = {t.name: t for t in gguf.GGUFReader(theirs).tensors}
    same = [n for n in a if n in b and a[n].tensor_type == b[n].tensor_type
            and np.array_equal(np.asarray(a[n].data), np.asarray(b[n].data))]
    return len(same), len(a.keys() | b.keys()), sorted(a.keys() ^ b.keys())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run each instead of --repeat")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", default="medium", help="apt preset size")
    parser.add_argument("--layers", type=int, default=18, help="blocks (medium has 12: 76M parameters; 18: 114M)")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)  # internal: build the checkpoint here
    parser.add_argument("--llama-cpp-src", type=Path, default=None,
                        help="llama.cpp source folder holding convert_hf_to_gguf.py (default: fetched)")
    args = parser.parse_args()
    if args.build:
        print(build_checkpoint(args.build, args.size, args.layers))
        return
    repeat = 1 if args.quick else args.repeat
    src = args.llama_cpp_src or llama_cpp_source(Path(tempfile.gettempdir()) / "apt-bench-llama-cpp-sdist")

    with tempfile.TemporaryDirectory(prefix="bench-gguf-") as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "ckpt"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "services" / "ollama-export")])}
        n_params = int(subprocess.run([sys.executable, __file__, "--build", str(ckpt), "--size", args.size,
                                       "--layers", str(args.layers)], env=env, check=True, capture_output=True,
                                      text=True).stdout.split()[-1])
        ours_out, base_out = tmp / "ours.gguf", tmp / "llama-cpp.gguf"
        ours_cmd = [sys.executable, "-m", "apt_ollama.convert_cli", str(ckpt), str(ours_out), "--outtype", "f16"]
        base_cmd = [sys.executable, "-c", BASELINE_DRIVER, str(src), str(ckpt), "--outfile", str(base_out),
                    "--outtype", "f16"]
        runs = {"ours": [], "llama.cpp": []}
        for i in range(repeat):
            for name, cmd in (("llama.cpp", base_cmd), ("ours", ours_cmd)):
                wall, rss = run_measured(cmd, env)
                runs[name].append((wall, rss))
                print(f"run {i + 1}/{repeat} {name:9s} {wall:7.2f} s  peak RSS {rss / 2**20:8.1f} MiB", flush=True)
        same, total, only_one = compare_tensors(ours_out, base_out)
        sizes = {"ours": ours_out.stat().st_size, "llama.cpp": base_out.stat().st_size}

    med = {k: (median([w for w, _ in v]), median([r for _, r in v])) for k, v in runs.items()}
    time_ratio = med["ours"][0] / med["llama.cpp"][0]
    mem_ratio = med["ours"][1] / med["llama.cpp"][1]
    size_diff = abs(sizes["ours"] - sizes["llama.cpp"]) / sizes["llama.cpp"]
    m = machine()
    print(f"\nGGUF f16 export of a {n_params / 1e6:.1f}M-parameter checkpoint (apt {args.size}, {args.layers} blocks), "
          f"median of {repeat} — {m['date']}, {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB")
    print(f"{'':10s} {'llama.cpp':>12s} {'ours':>12s} {'ratio':>8s} {'target':>8s}")
    print(f"{'wall s':10s} {med['llama.cpp'][0]:12.2f} {med['ours'][0]:12.2f} {time_ratio:8.2f} {'<= 1.0':>8s} "
          f"{verdict(time_ratio, 1.0, False)}")
    print(f"{'peak MiB':10s} {med['llama.cpp'][1] / 2**20:12.1f} {med['ours'][1] / 2**20:12.1f} {mem_ratio:8.2f} "
          f"{'<= 1.1':>8s} {verdict(mem_ratio, 1.1, False)}")
    print(f"{'size MiB':10s} {sizes['llama.cpp'] / 2**20:12.2f} {sizes['ours'] / 2**20:12.2f} "
          f"{1 + size_diff:8.4f} {'< 1%':>8s} {verdict(size_diff, 0.01, False)}")
    print(f"tensors byte-identical: {same}/{total}" + (f"; only in one file: {only_one}" if only_one else ""))
    path = save("gguf_export", {
        "parameters": n_params, "preset": args.size, "layers": args.layers, "repeat": repeat, "outtype": "f16",
        "baseline": f"llama.cpp convert_hf_to_gguf.py from llama-cpp-python {LLAMA_CPP_VERSION} sdist",
        "wall_s": {k: v[0] for k, v in med.items()}, "peak_rss_bytes": {k: v[1] for k, v in med.items()},
        "file_bytes": sizes, "time_ratio": time_ratio, "memory_ratio": mem_ratio, "size_diff_fraction": size_diff,
        "tensors_identical": same, "tensors_total": total, "runs": runs,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
