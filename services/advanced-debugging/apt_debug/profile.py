"""torch.profiler over a few training steps (forward, backward, AdamW) of a private copy of a
store model: the top operators by self time, peak device memory on CUDA, and a Chrome trace
(open it in chrome://tracing or https://ui.perfetto.dev)."""

from __future__ import annotations

from typing import Any

import torch

from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_debug.probe import ProbeSpec, dump_json, finite_only, load_probe, write_report

OPERATION = "profile"
TOP_OPERATORS = 15
WARMUP_STEPS = 1  # not recorded: first-call allocations and lazy initialisation


def profile_steps(model: torch.nn.Module, batch_of, steps: int, device: str, lr: float, ctx: JobContext,
                  trace_path) -> dict[str, Any]:
    """Profile ``steps`` training steps after WARMUP_STEPS unrecorded ones."""
    from torch.profiler import ProfilerActivity, profile

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])

    def step(i: int) -> float:
        ids = batch_of(i).to(device)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    for i in range(WARMUP_STEPS):
        step(-1 - i)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with profile(activities=activities, profile_memory=True, record_shapes=False) as prof:
        for i in range(steps):
            ctx.check_cancelled()
            step(i)
            ctx.report(progress=(i + 1) / steps, stage="profile", message=f"step {i + 1}/{steps}", step=i + 1)
        if device == "cuda":
            torch.cuda.synchronize()
    prof.export_chrome_trace(str(trace_path))
    return {"steps": steps, "top_operators": top_operators(prof, device == "cuda"),
            "peak_memory_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else 0,
            "warnings": [] if device == "cuda" else [
                "Peak memory is measured on CUDA only; on CPU each operator's own allocations are listed."]}


def top_operators(prof, cuda: bool) -> list[dict[str, Any]]:
    """The TOP_OPERATORS operators with the most self time (device time first on CUDA)."""
    events = prof.key_averages()

    def device_us(e) -> float:
        return float(getattr(e, "self_device_time_total", 0.0) or getattr(e, "self_cuda_time_total", 0.0) or 0.0)

    ranked = sorted(events, key=lambda e: (device_us(e) if cuda else 0.0, e.self_cpu_time_total), reverse=True)
    return [{"name": e.key, "calls": int(e.count), "self_cpu_ms": e.self_cpu_time_total / 1e3,
             "cpu_total_ms": e.cpu_time_total / 1e3, "self_device_ms": device_us(e) / 1e3,
             "self_cpu_memory_bytes": int(getattr(e, "self_cpu_memory_usage", 0) or 0)}
            for e in ranked[:TOP_OPERATORS]]


def run_profile(store: Store, spec: ProbeSpec, ctx: JobContext) -> dict[str, Any]:
    """The job: profile, then profile.json and trace.json into store dataset ``spec.output_name``."""
    ctx.report(progress=0.0, stage="load", message=f"loading {spec.model!r}")
    model, data = load_probe(store, spec)
    report: dict[str, Any] = {}

    def files(folder) -> None:
        report.update(profile_steps(model, data.batch, spec.batches, spec.device, spec.learning_rate, ctx,
                                    folder / "trace.json"))
        report.update(model=spec.model, output=spec.output_name, device=spec.device)
        dump_json(folder / "profile.json", report)

    write_report(store, spec.output_name, operation=OPERATION, parent=spec.model, overwrite=spec.overwrite,
                 parameters={"batches": spec.batches, "seq_len": spec.seq_len, "batch_size": spec.batch_size,
                             "seed": spec.seed, "device": spec.device}, files=files)
    return finite_only(report)
