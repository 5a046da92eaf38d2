"""Offline demo and test data: scikit-learn's handwritten digits as PNGs with English and
Chinese captions, and spoken digits from espeak-ng, each with a JSON-lines manifest.

``python -m apt_multimodal.sample_data FOLDER [--digits N] [--spoken N]`` writes
``FOLDER/digits/manifest.jsonl`` (and ``FOLDER/spoken/manifest.jsonl`` when espeak-ng is there).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

EN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ZH = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"]
VOICES = ("en-us", "en-gb")


def digits(folder: Path, count: int, *, start: int = 0, chinese_every: int = 0, size: int = 32) -> Path:
    """``count`` digit images (from ``start`` in load_digits' order), upscaled to ``size`` pixels;
    every ``chinese_every``-th row (0: none) has the Chinese caption. Returns the manifest."""
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(start, start + count):
        pixels = (bunch.images[i] * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels, "L").resize((size, size), Image.NEAREST).save(folder / f"d{i}.png")
        label = int(bunch.target[i])
        chinese = chinese_every and i % chinese_every == 0
        caption = f"手写数字{ZH[label]}" if chinese else f"a handwritten {EN[label]}"
        rows.append({"text": f"<image> {caption}", "images": f"d{i}.png"})
    return _manifest(folder, rows)


def spoken(folder: Path, count: int, *, voices=VOICES, speeds=(140, 175), seed: int = 0) -> Path:
    """``count`` spoken digits (espeak-ng) across voices and speeds, with their captions."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng).")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        label, voice, speed = int(rng.integers(10)), voices[i % len(voices)], speeds[i % len(speeds)]
        name = f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(folder / name), EN[label]],
                       check=True, capture_output=True)
        rows.append({"text": f"<audio> {EN[label]}", "audios": [name]})
    return _manifest(folder, rows)


def _manifest(folder: Path, rows: list[dict]) -> Path:
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--digits", type=int, default=200)
    parser.add_argument("--spoken", type=int, default=0)
    args = parser.parse_args()
    print(digits(args.folder / "digits", args.digits))
    if args.spoken:
        print(spoken(args.folder / "spoken", args.spoken))


if __name__ == "__main__":
    main()
