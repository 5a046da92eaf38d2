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


def distinct_voices(voices) -> None:
    """Raise when two of ``voices`` sound the same: espeak-ng ignores some variants (1.51 says
    ``en-gb+m7`` exactly as ``en-gb``), so a voice set for held-out evaluation is checked by the
    audio, not the names."""
    import hashlib
    import tempfile

    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng).")
    seen: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for voice in voices:
            wav = Path(tmp) / "probe.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), "seven 七"], check=True, capture_output=True)
            digest = hashlib.sha256(wav.read_bytes()).hexdigest()
            if digest in seen:
                raise ValueError(f"espeak-ng voices {seen[digest]!r} and {voice!r} give the same audio: "
                                 "the variant is ignored, so they are one voice")
            seen[digest] = voice


def spoken(folder: Path, count: int, *, voices=VOICES, speeds=(140, 175), pitches=(50,), seed: int = 0) -> Path:
    """``count`` spoken digits (espeak-ng), each with a voice, speed (words/min) and pitch drawn
    from the given ones; a ``cmn`` voice (``cmn``, ``cmn+f2``, ...) says and captions the digit
    in Chinese (七), the others in English (seven)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng).")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        label = int(rng.integers(10))
        voice, speed, pitch = (str(voices[int(rng.integers(len(voices)))]), int(speeds[int(rng.integers(len(speeds)))]),
                               int(pitches[int(rng.integers(len(pitches)))]))
        word = ZH[label] if voice.startswith("cmn") else EN[label]
        name = f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(folder / name), word],
                       check=True, capture_output=True)
        rows.append({"text": f"<audio> {word}", "audios": [name]})
    return _manifest(folder, rows)


SHAPES = ("circle", "square", "triangle")
SHAPE_COLOURS = {"red": (220, 40, 40), "green": (40, 180, 40), "blue": (50, 80, 230), "yellow": (230, 210, 40)}


def shape_captions() -> list[str]:
    """Every caption ``shapes`` can write, and every hard negative of one."""
    one = [f"a {c} {s} on the {side}" for c in SHAPE_COLOURS for s in SHAPES for side in ("left", "right")]
    two = [f"a {c1} {s1} on the {a} and a {c2} {s2} on the {b}" for c1 in SHAPE_COLOURS for c2 in SHAPE_COLOURS
           for s1 in SHAPES for s2 in SHAPES for a, b in (("left", "right"), ("right", "left"))
           if c1 != c2 and s1 != s2]
    return one + two


def shapes(folder: Path, count: int, *, size: int = 32, seed: int = 0) -> Path:
    """Scenes of one shape, or two of different colours and kinds, on the left/right halves;
    ``negatives.jsonl`` holds each row's hard negatives (colour swapped, side swapped), in row order."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    colours, rows, hard = list(SHAPE_COLOURS), [], []
    for i in range(count):
        picture = Image.new("RGB", (size, size), (15, 15, 15))
        draw = ImageDraw.Draw(picture)
        c = [colours[k] for k in rng.choice(len(colours), 2, replace=False)]
        k = [SHAPES[j] for j in rng.choice(len(SHAPES), 2, replace=False)]
        sides = ["left", "right"] if rng.integers(2) else ["right", "left"]
        n = 1 + int(rng.integers(2))
        for j in range(n):
            _shape(draw, k[j], SHAPE_COLOURS[c[j]], sides[j], size, rng)
        picture.save(folder / f"p{i}.png")
        if n == 1:
            text = f"a {c[0]} {k[0]} on the {sides[0]}"
            negatives = [f"a {c[1]} {k[0]} on the {sides[0]}", f"a {c[0]} {k[0]} on the {sides[1]}"]
        else:
            text = f"a {c[0]} {k[0]} on the {sides[0]} and a {c[1]} {k[1]} on the {sides[1]}"
            negatives = [f"a {c[1]} {k[0]} on the {sides[0]} and a {c[0]} {k[1]} on the {sides[1]}",
                         f"a {c[0]} {k[0]} on the {sides[1]} and a {c[1]} {k[1]} on the {sides[0]}"]
        rows.append({"text": f"<image> {text}", "images": f"p{i}.png"})
        hard.append({"text": f"<image> {text}", "negatives": [f"<image> {x}" for x in negatives]})
    _manifest(folder, hard, "negatives.jsonl")
    return _manifest(folder, rows)


def _shape(draw, kind: str, colour, side: str, size: int, rng) -> None:
    half = size // 2
    r = int(rng.integers(size // 8, size // 5))
    cx = int(rng.integers(r + 1, half - r)) + (half if side == "right" else 0)
    cy = int(rng.integers(r + 1, size - r - 1))
    box = [cx - r, cy - r, cx + r, cy + r]
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)


DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
COLOURS = [(230, 60, 60), (60, 200, 60), (70, 110, 240), (240, 220, 60), (230, 230, 230)]


def motion(folder: Path, count: int, *, size: int = 32, frames: int = 8, speed: float | None = None,
           seed: int = 0) -> Path:
    """``count`` clips of a ball moving left/right/up/down; its position in the middle of the clip
    is drawn from one distribution whatever the direction, so a single frame cannot tell it.
    Writes ``v{i}.mp4``, ``m{i}.png`` (the middle frame), ``manifest.jsonl`` (the clips) and
    ``middle.jsonl`` (the middle frames with the same captions). ``speed``: pixels per frame
    (default size / 16)."""
    import av

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    speed = speed or size / 16
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
