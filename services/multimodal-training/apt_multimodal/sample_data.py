"""Offline demo and test data, each with a JSON-lines manifest: scikit-learn's handwritten
digits as PNGs with English and Chinese captions, spoken digits from espeak-ng, and 8-frame
clips of a ball moving in one of four directions (encoded with ``av``; the middle frame of each
clip is also written as a PNG, the single-frame baseline).

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


DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
COLOURS = [(230, 60, 60), (60, 200, 60), (70, 110, 240), (240, 220, 60), (230, 230, 230)]


def motion(folder: Path, count: int, *, size: int = 32, frames: int = 8, speed: float = 2.0, seed: int = 0) -> Path:
    """``count`` clips of a ball moving left/right/up/down; its position in the middle of the clip
    is drawn from one distribution whatever the direction, so a single frame cannot tell it.
    Writes ``v{i}.mp4``, ``m{i}.png`` (the middle frame), ``manifest.jsonl`` (the clips) and
    ``middle.jsonl`` (the middle frames with the same captions)."""
    import av

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    radius, half = max(2, size // 10), speed * (frames - 1) / 2
    low, high = radius + half + 1, size - radius - half - 1
    clips, middles = [], []
    for i in range(count):
        name = list(DIRECTIONS)[int(rng.integers(4))]
        (dx, dy), mid = DIRECTIONS[name], rng.uniform(low, high, 2)
        colour = COLOURS[int(rng.integers(len(COLOURS)))]
        pictures = [_ball(size, mid + speed * (t - (frames - 1) / 2) * np.array([dx, dy]), radius, colour)
                    for t in range(frames)]
        with av.open(str(folder / f"v{i}.mp4"), "w") as container:
            stream = container.add_stream("mpeg4", rate=frames)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.options = {"qscale": "2"}
            for picture in pictures:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
            container.mux(stream.encode())
        from PIL import Image

        Image.fromarray(pictures[frames // 2]).save(folder / f"m{i}.png")
        clips.append({"text": f"<video> a ball moving {name}", "videos": f"v{i}.mp4"})
        middles.append({"text": f"<image> a ball moving {name}", "images": f"m{i}.png"})
    _manifest(folder, middles, "middle.jsonl")
    return _manifest(folder, clips)


def _ball(size: int, centre, radius: int, colour) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    inside = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius ** 2
    picture = np.full((size, size, 3), 20, np.uint8)
    picture[inside] = colour
    return picture


def _manifest(folder: Path, rows: list[dict], name: str = "manifest.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--digits", type=int, default=200)
    parser.add_argument("--spoken", type=int, default=0)
    parser.add_argument("--motion", type=int, default=0)
    args = parser.parse_args()
    print(digits(args.folder / "digits", args.digits))
    if args.spoken:
        print(spoken(args.folder / "spoken", args.spoken))
    if args.motion:
        print(motion(args.folder / "motion", args.motion))


if __name__ == "__main__":
    main()
