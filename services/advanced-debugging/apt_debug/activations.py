"""Activation statistics by forward hooks: per module mean, std, abs-max, excess kurtosis,
massive-activation channels and the share of dead units, and a NaN/Inf guard.

The guard names the module that *produces* the first non-finite value: a module whose output
holds a NaN/Inf while every tensor it received was finite. Hooks run child-first, so the
first such module is the innermost producer; every module the NaN then flows through has a
non-finite input and is only counted. (``torch.autograd.detect_anomaly`` checks the backward
pass and can blame the wrong line, pytorch/pytorch#160016.) The hooks are removed in a
``finally``: a failed or cancelled run leaves the model as it found it.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch

from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_debug.probe import ProbeSpec, dump_json, finite_only, load_probe, write_report

OPERATION = "activation-analysis"
MASSIVE = 100.0     # a channel whose abs-max is this many times the mean magnitude is massive
MAX_MASSIVE = 8     # massive channels listed per module
SAMPLE = 16384      # values per output the moments are estimated from


class _Moments:
    """Running statistics of one module's outputs. Exact: the abs-max, the per-channel abs-max
    (dead and massive channels) and whether every value is finite (a NaN or Inf becomes the
    abs-max). Estimated from at most SAMPLE values per call, strided across channels: the mean,
    variance and fourth central moment, so a hook costs about two passes over the output."""

    def __init__(self):
        self.calls: list[torch.Tensor] = []  # per call: [n, mean, var, m4, mean |x|]
        self.abs_max: torch.Tensor | None = None
        self.channel_abs_max: torch.Tensor | None = None
        self.nonfinite = False

    def add(self, out: torch.Tensor) -> bool:
        """Record one output; whether all its values were finite."""
        x = out.detach()
        a = x.abs()
        per_channel = a.reshape(-1, x.shape[-1]).amax(0) if x.dim() >= 1 and x.numel() else a.reshape(1)
        top = per_channel.max()
        finite = bool(torch.isfinite(top))
        if not finite:
            self.nonfinite = True
            x = x[torch.isfinite(x)]
            if x.numel() == 0:
                return False
            a, top = x.abs(), x.abs().max()
        else:
            self.channel_abs_max = per_channel.float() if self.channel_abs_max is None or \
                self.channel_abs_max.shape != per_channel.shape else torch.maximum(self.channel_abs_max, per_channel.float())
        self.abs_max = top.float() if self.abs_max is None else torch.maximum(self.abs_max, top.float())
        sample = x.reshape(-1)[::_stride(x.numel(), x.shape[-1] if x.dim() else 1)].float()
        mean = sample.mean()
        d2 = (sample - mean).square()
        self.calls.append(torch.stack([torch.tensor(float(x.numel()), device=sample.device), mean, d2.mean(),
                                       d2.square().mean(), sample.abs().mean()]))
        return finite

    def summary(self, name: str) -> dict[str, Any]:
        """The calls pooled: the overall mean and variance exactly, the fourth moment as the
        count-weighted mean of the calls' (exact when the calls share a mean)."""
        if not self.calls:
            return {"name": name, "mean": math.nan, "std": math.nan, "abs_max": math.nan, "kurtosis": math.nan,
                    "dead_share": 0.0, "massive_channels": [], "nonfinite": self.nonfinite}
        n, mean, var, m4, mean_abs = torch.stack(self.calls).double().cpu().unbind(1)
        w = n / n.sum()
        total_mean = float((w * mean).sum())
        total_var = float((w * (var + (mean - total_mean) ** 2)).sum())
        m4_pooled = float((w * m4).sum())
        kurtosis = m4_pooled / total_var ** 2 - 3.0 if total_var > 0 else math.nan
        dead, massive = 0.0, []
        if self.channel_abs_max is not None:
            channels = self.channel_abs_max.cpu()
            dead = float((channels == 0).double().mean())
            typical = float((w * mean_abs).sum())
            if typical > 0:
                big = torch.nonzero(channels > MASSIVE * typical).flatten()
                order = channels[big].argsort(descending=True)
                massive = [int(c) for c in big[order][:MAX_MASSIVE]]
        return {"name": name, "mean": total_mean, "std": math.sqrt(total_var), "abs_max": float(self.abs_max),
                "kurtosis": kurtosis, "dead_share": dead, "massive_channels": massive,
                "nonfinite": self.nonfinite}


def _stride(numel: int, channels: int) -> int:
    """A step through the flat values that keeps at most SAMPLE of them and, being coprime to
    the channel count, visits every channel rather than one column."""
    step = max(1, numel // SAMPLE)
    while math.gcd(step, channels) != 1:
        step += 1
    return step


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else None
    if isinstance(value, (tuple, list)):
        return next((t for t in map(_first_tensor, value) if t is not None), None)
    return None


def _all_finite(values: Iterable[Any]) -> bool:
    for v in values:
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
            return False
        if isinstance(v, (tuple, list)) and not _all_finite(v):
            return False
    return True


class ActivationRecorder:
    """Forward hooks on every named module of ``model`` while the ``with`` block runs."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.moments: dict[str, _Moments] = {}
        self.order: list[str] = []
        self.first_nonfinite = ""
        self.nonfinite_modules: set[str] = set()
        self._handles: list[Any] = []

    def __enter__(self) -> "ActivationRecorder":
        try:
            for name, module in self.model.named_modules():
                if name and not isinstance(module, (torch.nn.ModuleList, torch.nn.ModuleDict)):
                    self._handles.append(module.register_forward_hook(self._hook(name), with_kwargs=True))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def record(module, args, kwargs, output):
            out = _first_tensor(output)
            if out is None:
                return
            if name not in self.moments:
                self.moments[name] = _Moments()
                self.order.append(name)
            if not self.moments[name].add(out):
                self.nonfinite_modules.add(name)
                if not self.first_nonfinite and _all_finite(args) and _all_finite(kwargs.values()):
                    self.first_nonfinite = name
        return record

    def report(self) -> dict[str, Any]:
        return {"modules": [self.moments[n].summary(n) for n in self.order],
                "first_nonfinite_module": self.first_nonfinite,
                "nonfinite_modules": len(self.nonfinite_modules)}


def analyse(model: torch.nn.Module, batch_of, batches: int, device: str, ctx: JobContext) -> dict[str, Any]:
    """``batches`` forward passes of ``batch_of(i)`` under the recorder."""
    model.eval()
    with ActivationRecorder(model) as recorder, torch.no_grad():
        for i in range(max(batches, 1)):
            ctx.check_cancelled()
            model(input_ids=batch_of(i).to(device))
            ctx.report(progress=(i + 1) / max(batches, 1), stage="forward", message=f"batch {i + 1}/{batches}")
    out = recorder.report()
    out["batches"] = max(batches, 1)
    out["warnings"] = []
    if out["first_nonfinite_module"]:
        out["warnings"].append(f"{out['first_nonfinite_module']} produces a non-finite value from finite inputs; "
                               f"{out['nonfinite_modules']} module(s) carried one.")
    elif out["nonfinite_modules"]:
        out["warnings"].append("Non-finite values appeared but no module produced them from finite inputs "
                               "(the embeddings' inputs are token ids): check the embedding weights.")
    return out


def run_activation_analysis(store: Store, spec: ProbeSpec, ctx: JobContext) -> dict[str, Any]:
    """The job: analyse, then activations.json into store dataset ``spec.output_name``."""
    ctx.report(progress=0.0, stage="load", message=f"loading {spec.model!r}")
    model, data = load_probe(store, spec)
    report = analyse(model, data.batch, spec.batches, spec.device, ctx)
    report.update(model=spec.model, output=spec.output_name)
    write_report(store, spec.output_name, operation=OPERATION, parent=spec.model, overwrite=spec.overwrite,
                 parameters={"batches": spec.batches, "seq_len": spec.seq_len, "batch_size": spec.batch_size,
                             "seed": spec.seed}, files=lambda folder: dump_json(folder / "activations.json", report))
    return finite_only(report)
