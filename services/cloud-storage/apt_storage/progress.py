"""Byte progress of a transfer: done, sent, skipped, rate and time left, reported to the job."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class JobLike(Protocol):
    """The part of ``apt_model.runtime.jobs.JobContext`` a transfer uses."""

    def report(self, progress: float | None = None, stage: str | None = None,
               message: str | None = None, eta_seconds: float | None = None, **metrics: float) -> None: ...

    def check_cancelled(self) -> None: ...


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class TransferProgress:
    """Thread-safe counters shared by the part workers of one job.

    ``sent`` counts bytes that went over the wire in this run; ``skipped`` counts bytes
    already at the destination (a resumed upload) — both count towards ``done``.
    """

    def __init__(self, ctx: JobLike, total: int, stage: str, interval: float = 0.5):
        self.ctx = ctx
        self.total = max(total, 0)
        self.stage = stage
        self.sent = 0
        self.skipped = 0
        self.parts_sent = 0
        self.parts_skipped = 0
        self._interval = interval
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last_report = 0.0

    @property
    def done(self) -> int:
        return self.sent + self.skipped

    def check_cancelled(self) -> None:
        self.ctx.check_cancelled()

    def add_sent(self, n: int, part: bool = False) -> None:
        with self._lock:
            self.sent += n
            self.parts_sent += int(part)
        self._maybe_report()

    def add_skipped(self, n: int, part: bool = False) -> None:
        with self._lock:
            self.skipped += n
            self.parts_skipped += int(part)
        self._maybe_report()

    def rate(self) -> float:
        """Bytes per second actually transferred since the start."""
        elapsed = max(time.monotonic() - self._start, 1e-6)
        return self.sent / elapsed

    def _maybe_report(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last_report < self._interval:
                return
            self._last_report = now
            done, sent, skipped = self.done, self.sent, self.skipped
        rate = self.rate()
        left = self.total - done
        eta = left / rate if rate > 0 and left > 0 else (0.0 if left <= 0 else -1.0)
        frac = done / self.total if self.total else 1.0
        msg = f"{human_bytes(done)} / {human_bytes(self.total)} at {human_bytes(rate)}/s"
        if skipped:
            msg += f" ({human_bytes(skipped)} already there)"
        self.ctx.report(progress=min(frac, 1.0), stage=self.stage, message=msg, eta_seconds=eta,
                        bytes_done=done, bytes_total=self.total, bytes_sent=sent,
                        bytes_skipped=skipped, bytes_per_s=rate)

    def finish(self) -> None:
        self._maybe_report(force=True)

    def summary(self) -> dict[str, float | int]:
        elapsed = time.monotonic() - self._start
        return {"bytes_total": self.total, "bytes_sent": self.sent, "bytes_skipped": self.skipped,
                "parts_sent": self.parts_sent, "parts_skipped": self.parts_skipped,
                "seconds": round(elapsed, 3), "bytes_per_s": round(self.rate(), 1)}
