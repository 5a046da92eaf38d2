"""Decoding one media file into the fixed-size tensor a shard stores.

Images: PIL, RGB, resized to a square (torchvision), uint8 ``(3, S, S)``. Audio: ``soundfile``
(torchaudio 2.9's own loader needs TorchCodec and FFmpeg), averaged to mono, resampled with
torchaudio, log-mel features ``(n_mels, frames)`` padded to the longest clip allowed. Video:
``av`` (optional), ``frames`` evenly spaced frames as uint8 ``(frames, 3, S, S)``.
A decoder's failure becomes ``MediaError`` carrying the decoder's own message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from apt_model import errors

HOP = 160          # samples between mel frames at 16 kHz: 10 ms
LOG_FLOOR = 1e-5   # added before the log so silence stays finite


class MediaError(Exception):
    """A file that does not decode; the message is the decoder's."""


class TooLong(Exception):
    """An audio clip over the allowed duration (and truncation was not asked for)."""


@dataclass(frozen=True)
class MediaSpec:
    """How files become tensors: the sizes every clip and image of a dataset share."""

    image_size: int = 32
    sample_rate: int = 16000
    n_mels: int = 32
    max_audio_seconds: float = 2.0
    truncate_audio: bool = False
    video_frames: int = 8

    @property
    def audio_frames(self) -> int:
        """Mel frames of the longest clip allowed (every clip is padded to it)."""
        return int(self.max_audio_seconds * self.sample_rate) // HOP + 1


@dataclass
class Audio:
    features: torch.Tensor  # (n_mels, audio_frames) float32 log-mel, padded with log(LOG_FLOOR)
    frames: int             # real (unpadded) frames
    seconds: float
    resampled: bool
    downmixed: bool
    truncated: bool


def decode_image(path: Path, spec: MediaSpec) -> torch.Tensor:
    """uint8 (3, S, S)."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms import v2

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise MediaError(str(exc)) from exc
    resize = v2.Compose([v2.PILToTensor(), v2.Resize((spec.image_size, spec.image_size), antialias=True)])
    return resize(img)


def decode_audio(path: Path, spec: MediaSpec) -> Audio:
    """Log-mel features of a WAV/FLAC/OGG file, mono at ``spec.sample_rate``."""
    import soundfile
    import torchaudio

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (time, channels)
    except (RuntimeError, soundfile.LibsndfileError, TypeError) as exc:
        raise MediaError(str(exc)) from exc
    if samples.shape[0] == 0:
        raise MediaError("the file holds no samples")
    downmixed = samples.shape[1] > 1
    wave = torch.from_numpy(np.ascontiguousarray(samples.mean(axis=1)))
    resampled = rate != spec.sample_rate
    if resampled:
        wave = torchaudio.functional.resample(wave, rate, spec.sample_rate)
    seconds = wave.numel() / spec.sample_rate
    limit = int(spec.max_audio_seconds * spec.sample_rate)
    truncated = wave.numel() > limit
    if truncated and not spec.truncate_audio:
        raise TooLong(f"{seconds:.2f} s is over the {spec.max_audio_seconds:g} s allowed "
                      f"(pass truncate_audio to cut it instead)")
    wave = wave[:limit]
    mel = _mel(spec)(wave)  # (n_mels, frames)
    features = torch.full((spec.n_mels, spec.audio_frames), math.log(LOG_FLOOR))
    features[:, :mel.shape[1]] = torch.log(mel + LOG_FLOOR)
    return Audio(features, int(mel.shape[1]), min(seconds, spec.max_audio_seconds), resampled, downmixed, truncated)


def decode_video(path: Path, spec: MediaSpec) -> torch.Tensor:
    """uint8 (frames, 3, S, S): ``spec.video_frames`` frames evenly spaced over the clip."""
    try:
        import av
    except ImportError as exc:
        raise errors.FailedPrecondition(
            "Video rows need the `av` package (PyAV), which is not installed in this service; "
            "install av from the plugin's requirements.txt or leave the videos out.") from exc
    try:
        with av.open(str(path)) as container:
            frames = [f.to_image() for f in container.decode(video=0)]
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(str(exc)) from exc
    if not frames:
        raise MediaError("the file holds no video frames")
    picks = np.linspace(0, len(frames) - 1, spec.video_frames).round().astype(int)
    from torchvision.transforms import v2

    resize = v2.Compose([v2.PILToTensor(), v2.Resize((spec.image_size, spec.image_size), antialias=True)])
    return torch.stack([resize(frames[i].convert("RGB")) for i in picks])


def _mel(spec: MediaSpec):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(sample_rate=spec.sample_rate, n_fft=400, hop_length=HOP,
                                                n_mels=spec.n_mels, center=True)
