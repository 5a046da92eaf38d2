"""Training anomalies in metric series: each detector reads one series and returns findings
(kind, step, severity, what it saw, what its baseline predicted, the action to take).

The spike detectors are causal (a step is judged by the ``window`` steps before it), so a
spike is found at the step it happens: the robust z-score of the residual from the rolling
median, with the median absolute deviation as scale. Lightning's and trainlog's fixed
"3x the median" rule misses moderate spikes on a noisy curve and fires on a quiet one; the
robust z adapts to each run's noise. A spike's value is kept out of the windows after it,
so one spike does not hide the next.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from apt_debug.series import Series

LOSS_NAMES = ("loss", "train_loss", "train/loss")
VAL_NAMES = ("val_loss", "eval_loss", "val/loss", "eval/loss")
LR_NAMES = ("lr", "learning_rate", "train/lr")
GRAD_NAMES = ("grad_norm", "train/grad_norm")
SPEED_NAMES = ("tokens_per_s", "samples_per_s", "throughput")
MIN_HISTORY = 5             # steps a spike detector needs before it judges one
SPIKE_EXIT_SHARE = 0.5      # a spike event goes on while the z stays above this share of --spike-z
MAD_TO_SIGMA = 1.4826       # MAD * this = the standard deviation of a normal series
LR_TOLERANCE = 1.5          # a step-to-step learning-rate change beyond this factor is a jump
LR_WINDOW = 10              # steps within which an override must end to be one
DIVERGENCE_RATIO = 1.25     # rolling median this much above the best rolling median so far
PLATEAU_GAIN = 0.01         # relative loss improvement over 3 windows below which training has stalled
THROUGHPUT_RATIO = 0.5      # throughput below this share of its rolling median ...
THROUGHPUT_STEPS = 3        # ... for at least this many steps in a row (one slow step is noise)
THROUGHPUT_LOST_SECONDS = 1.0  # ... and, when the log has step_seconds, costing at least this much time
VAL_GAP_RISE = 0.02         # validation loss this much above its minimum while train still falls

ACTIONS = {
    "nonfinite": "Roll back to the last checkpoint before step {step}; lower the learning rate or skip that "
                 "step's batch, and run StartActivationAnalysis to find the module producing it.",
    "loss_spike": "Inspect the batch of step {step} (batches are a function of seed and step); if spikes "
                  "recur, lower the learning rate, tighten gradient clipping or add warm-up.",
    "grad_spike": "Gradient norm jumped at step {step}: check that step's batch and the clipping threshold; "
                  "run StartGradientFlow to see which block it comes from.",
    "divergence": "Loss has been rising since step {step}: stop, restore the checkpoint before it and resume "
                  "with a lower learning rate.",
    "plateau": "Loss has stopped improving from step {step}: lower the learning rate (or decay it), add "
               "data, or stop here.",
    "lr_off_schedule": "The learning rate at step {step} is off the schedule around it: check schedule "
                       "code, resumed optimiser state or a manual override.",
    "throughput_drop": "Throughput fell from step {step} for 3 or more steps: look for other jobs on the machine, data "
                       "loading stalls, checkpoint writes or memory swapping.",
    "val_gap": "Validation loss rises from step {step} while training loss still falls (overfitting): "
               "keep the checkpoint of the lowest validation loss, add data or regularisation.",
}


@dataclass
class Finding:
    kind: str
    step: int
    end_step: int
    severity: str  # critical, warning, info
    metric: str
    value: float
    expected: float
    action: str = ""

    def __post_init__(self):
        self.action = self.action or ACTIONS[self.kind].format(step=self.step)


@dataclass(frozen=True)
class Settings:
    spike_z: float = 8.0
    window: int = 20


def pick(series: Series, names: tuple[str, ...]) -> str:
    """The first of ``names`` the series has ('' when none)."""
    return next((n for n in names if n in series.values), "")


def detect(series: Series, settings: Settings = Settings()) -> list[Finding]:
    """Every detector over the series' known metrics, findings in step order."""
    found: list[Finding] = []
    loss, val, lr = pick(series, LOSS_NAMES), pick(series, VAL_NAMES), pick(series, LR_NAMES)
    grad, speed = pick(series, GRAD_NAMES), pick(series, SPEED_NAMES)
    found += nonfinite(series, [m for m in (loss, grad, val, lr) if m])
    if loss:
        found += spikes("loss_spike", loss, *series.get(loss), settings, log_scale=False)
        found += divergence(loss, *series.get(loss), settings.window)
        found += plateaus(loss, *series.get(loss), settings.window)
    if grad:
        found += spikes("grad_spike", grad, *series.get(grad), settings, log_scale=True)
    if lr:
        found += lr_off_schedule(lr, *series.get(lr))
    if speed:
        found += throughput_drops(speed, *series.get(speed), settings.window, series.values.get("step_seconds"))
    if loss and val:
        found += val_gap(val, *series.get(val), *series.get(loss), settings.window)
    return sorted(found, key=lambda f: (f.step, f.kind))


def merge_runs(kind: str, metric: str, hits: list[tuple[int, float, float]], severity: str,
               gap: int = 1) -> list[Finding]:
    """Consecutive hits (step, value, expected) of one kind as one finding each run, reported at
    its first step with its most extreme value."""
    out: list[Finding] = []
    for step, value, expected in hits:
        last = out[-1] if out else None
        if last is not None and step - last.end_step <= gap:
            last.end_step = step
            if not math.isfinite(value) or abs(value - expected) > abs(last.value - last.expected):
                last.value, last.expected = value, expected
            continue
        out.append(Finding(kind, step, step, severity, metric, value, expected))
    return out


def nonfinite(series: Series, metrics: list[str]) -> list[Finding]:
    """One finding per run of steps where any of ``metrics`` is NaN/Inf (a NaN loss and the
    Inf gradient norm of the same step are one event), naming the metrics that were."""
    bad: dict[int, list[str]] = {}
    for metric in metrics:
        for step, value in zip(*series.get(metric)):
            if not math.isfinite(value):
                bad.setdefault(step, []).append(metric)
    found = []
    for step in sorted(bad):
        last = found[-1] if found else None
        if last is not None and step - last.end_step <= 1:
            last.end_step = step
            last.metric = ", ".join(dict.fromkeys(last.metric.split(", ") + bad[step]))
            continue
        value = series.values[bad[step][0]][step]
        found.append(Finding("nonfinite", step, step, "critical", ", ".join(bad[step]), value, math.nan))
    return found


def spikes(kind: str, metric: str, steps: list[int], values: list[float], settings: Settings,
           log_scale: bool) -> list[Finding]:
    """Robust z of each step's residual from the rolling median of the ``window`` accepted
    steps before it, against the residuals of those steps: on a falling curve every residual
    is negative by about the same amount, so the trend cancels and only the noise sets the scale.
    Once a step is a spike, the steps right after it stay in the same event while their z is
    above SPIKE_EXIT_SHARE x ``spike_z`` (hysteresis), so one event is one finding."""
    history: list[float] = []    # accepted values (a spike is replaced by its median)
    residuals: list[float] = []  # each accepted step's residual from its own rolling median
    hits: list[tuple[int, float, float]] = []
    previous = None  # the last step judged
    for step, value in zip(steps, values):
        if not math.isfinite(value) or (log_scale and value <= 0):
            continue
        x = math.log(value) if log_scale else value
        window = history[-settings.window:]
        if len(window) < MIN_HISTORY:
            history.append(x)
            continue
        median = statistics.median(window)
        past = residuals[-settings.window:]
        if len(past) >= MIN_HISTORY:
            centre = statistics.median(past)
            mad = statistics.median(abs(r - centre) for r in past)
            scale = max(MAD_TO_SIGMA * mad, 1e-3 * abs(median), 1e-12)
            # hysteresis: right after a spike, a step still far above the baseline is the same
            # event (a knocked-out model's gradient norm stays high), not a new one
            inside = bool(hits) and hits[-1][0] == previous
            threshold = settings.spike_z * (SPIKE_EXIT_SHARE if inside else 1.0)
            previous = step
            if (x - median - centre) / scale > threshold:
                hits.append((step, value, math.exp(median + centre) if log_scale else median + centre))
                history.append(median + centre)  # keep the spike out of the windows after it
                residuals.append(centre)
                continue
        history.append(x)
        residuals.append(x - median)
    return merge_runs(kind, metric, hits, "warning")


def _rolling_medians(values: list[float], window: int) -> list[float]:
    finite = [v if math.isfinite(v) else math.nan for v in values]
    out = []
    for i in range(len(finite)):
        chunk = [v for v in finite[max(0, i - window + 1):i + 1] if not math.isnan(v)]
        out.append(statistics.median(chunk) if chunk else math.nan)
    return out


def divergence(metric: str, steps: list[int], values: list[float], window: int) -> list[Finding]:
    """The rolling median climbs DIVERGENCE_RATIO above its best so far and stays there; the
    finding is dated at the start of the climb (the first step of the run above 1.1 x best)."""
    window = max(window, MIN_HISTORY)
    medians = _rolling_medians(values, window)
    best, climbing_since, out = math.inf, None, []
    reported = False
    for i, (step, median) in enumerate(zip(steps, medians)):
        if math.isnan(median) or i < window:
            best = min(best, median) if not math.isnan(median) else best
            continue
        value = values[i]
        climbing_since = (climbing_since if climbing_since is not None else step) \
            if math.isfinite(value) and value > 1.1 * best else None
        if median > DIVERGENCE_RATIO * best and climbing_since is not None and not reported:
            out.append(Finding("divergence", climbing_since, step, "critical", metric, median, best))
            reported = True
        elif reported and median <= DIVERGENCE_RATIO * best:
            reported = False
        if out and reported:
            out[-1].end_step = step
        best = min(best, median)
    return out


def plateaus(metric: str, steps: list[int], values: list[float], window: int) -> list[Finding]:
    """Runs of steps where the rolling median improved less than PLATEAU_GAIN over 3 windows."""
    window = max(window, MIN_HISTORY)
    medians = _rolling_medians(values, window)
    span = 3 * window
    hits = []
    for i in range(span, len(medians)):
        before, now = medians[i - span + window - 1], medians[i]
        if math.isfinite(before) and math.isfinite(now) and before > 0 and (before - now) / before < PLATEAU_GAIN:
            hits.append((steps[i], now, before))
    found = [f for f in merge_runs("plateau", metric, hits, "info") if f.end_step - f.step >= window]
    first_index = {s: i for i, s in enumerate(steps)}
    for f in found:  # the stall began where the flat span that revealed it began
        f.step = steps[first_index[f.step] - span + window - 1]
        f.action = ACTIONS["plateau"].format(step=f.step)
    return found


def lr_off_schedule(metric: str, steps: list[int], values: list[float]) -> list[Finding]:
    """Transient overrides: the learning rate jumps by more than LR_TOLERANCE and, within
    LR_WINDOW steps, jumps back to within LR_TOLERANCE of where it was. A warm-up ramp or a step
    decay jumps without coming back, so a schedule's own moves are never findings."""
    x = [v if math.isfinite(v) and v > 0 else math.nan for v in values]
    out: list[Finding] = []
    i = 1
    while i < len(x):
        if _jump(x[i - 1], x[i]) == 0:
            i += 1
            continue
        back = next((j for j in range(i + 1, min(len(x), i + LR_WINDOW + 1))
                     if _jump(x[i - 1], x[j]) == 0), None)
        if back is None:
            i += 1
            continue
        worst = max(range(i, back), key=lambda j: abs(math.log(x[j] / x[i - 1])) if math.isfinite(x[j]) else math.inf)
        out.append(Finding("lr_off_schedule", steps[i], steps[back - 1], "warning", metric, values[worst], x[i - 1]))
        i = back + 1
    return out


def _jump(before: float, after: float) -> int:
    """+1 / -1 when ``after`` is more than LR_TOLERANCE above / below ``before``, else 0
    (a NaN or non-positive value is a jump: an override to nothing is off schedule too)."""
    if math.isnan(before):
        return 0
    if math.isnan(after):
        return 1
    ratio = after / before
    return 1 if ratio > LR_TOLERANCE else -1 if ratio < 1 / LR_TOLERANCE else 0


def throughput_drops(metric: str, steps: list[int], values: list[float], window: int,
                     seconds: dict[int, float] | None = None) -> list[Finding]:
    """Runs of at least THROUGHPUT_STEPS steps whose throughput is below THROUGHPUT_RATIO of the
    rolling median before them (the first step, which pays for warm-up, is never a baseline).
    With the steps' durations (``seconds``, a training log's step_seconds) a run must also have
    cost THROUGHPUT_LOST_SECONDS: three 10 ms steps slowed by a scheduler hiccup are not worth
    acting on, three 1 s steps at half speed are."""
    window = max(window, MIN_HISTORY)
    history: list[float] = []
    hits, lost = [], {}
    for step, value in list(zip(steps, values))[1:]:
        if not math.isfinite(value):
            continue
        if len(history) >= MIN_HISTORY:
            median = statistics.median(history[-window:])
            if median > 0 and value < THROUGHPUT_RATIO * median:
                hits.append((step, value, median))
                if seconds is not None and math.isfinite(seconds.get(step, math.nan)):
                    lost[step] = seconds[step] * (1 - value / median)  # the time the step took beyond its norm
                continue
        history.append(value)
    runs = merge_runs("throughput_drop", metric, hits, "warning")
    index = {s: i for i, s in enumerate(steps)}
    runs = [f for f in runs if index[f.end_step] - index[f.step] + 1 >= THROUGHPUT_STEPS]
    if seconds is None:
        return runs
    return [f for f in runs if sum(t for s, t in lost.items() if f.step <= s <= f.end_step) >= THROUGHPUT_LOST_SECONDS]


def val_gap(metric: str, val_steps: list[int], val_values: list[float], train_steps: list[int],
            train_values: list[float], window: int) -> list[Finding]:
    """The first validation point more than VAL_GAP_RISE above the lowest validation loss so
    far while the training loss (rolling median) is below where it was at that minimum."""
    train = dict(zip(train_steps, _rolling_medians(train_values, max(window, 1))))

    def train_at(step: int) -> float:
        before = [s for s in train_steps if s <= step]
        return train[before[-1]] if before else math.nan

    best_val, best_step = math.inf, None
    for step, value in zip(val_steps, val_values):
        if not math.isfinite(value):
            continue
        if value < best_val:
            best_val, best_step = value, step
            continue
        if value > best_val * (1 + VAL_GAP_RISE) and train_at(step) < train_at(best_step):
            return [Finding("val_gap", step, val_steps[-1], "warning", metric, value, best_val,
                            ACTIONS["val_gap"].format(step=step) + f" (lowest validation loss at step {best_step})")]
    return []


def report(series: Series, findings: list[Finding]) -> dict[str, Any]:
    """The job result (AnomalyDetectionResult's fields)."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    warnings = []
    if series.repeated_steps:
        warnings.append(f"{series.repeated_steps} step values were logged more than once (a resumed run); "
                        "the last occurrence of each step was used.")
    return {"source": series.source, "steps": len(series.steps()), "repeated_steps": series.repeated_steps,
            "findings": [asdict(f) for f in findings], "counts": counts, "metrics": series.metrics(),
            "warnings": warnings}
