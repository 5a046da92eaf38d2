"""Test-session wiring: every plugin's package folder is importable, threads are bounded."""

import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parent
for plugin_dir in sorted((ROOT / "services").iterdir()):
    if plugin_dir.is_dir() and str(plugin_dir) not in sys.path:
        sys.path.insert(0, str(plugin_dir))
sys.path.insert(0, str(ROOT / "tests" / "plugins" / "echo"))

# 2-core machines: keep torch from oversubscribing when several test processes run.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# The fixtures every service's tests share (store, tiny, job_recorder, report_every_step, wait_job):
# pytest loads them itself where apt-model is installed (its pytest11 entry point), else from here.
if not any(ep.value == "apt_model.testing.fixtures" for ep in entry_points(group="pytest11")):
    pytest_plugins = ("apt_model.testing.fixtures",)


def pytest_runtest_logstart(nodeid, location):
    """With APT_TEST_TRACE set (scripts/test.sh), the test that runs now is named in that file, so
    a crash that kills the whole process (a signal in native code) can be pinned on a test."""
    trace = os.environ.get("APT_TEST_TRACE")
    if trace:
        Path(trace).write_text(nodeid + "\n")


def pytest_unconfigure(config):
    """A test run must end when its tests end. The interpreter joins every non-daemon thread at
    exit, and every thread-pool worker, daemon or not, so one handler left blocked by an in-process server
    once kept a finished run alive until CI's time ran out. Name such threads with their stacks
    and end the run as failed instead of waiting."""
    import threading
    import time
    import traceback

    deadline = time.monotonic() + 15
    while True:
        frames = sys._current_frames()
        joined = set(_pool_threads()) | {t for t in threading.enumerate() if not t.daemon}
        stuck = [t for t in joined if t is not threading.main_thread() and t.is_alive()
                 and not _idle_pool_worker(frames.get(t.ident))]
        if not stuck or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not stuck:
        return
    out = [f"\n!! {len(stuck)} thread(s) the interpreter joins at exit still run 15 s after the last test; "
           "the interpreter would wait for them forever:"]
    for t in stuck:
        out.append(f"--- thread {t.name!r}")
        out.extend(line.rstrip() for line in traceback.format_stack(frames.get(t.ident)) if frames.get(t.ident))
    print("\n".join(out), file=sys.stderr, flush=True)
    os._exit(3)


def _idle_pool_worker(frame) -> bool:
    """A thread-pool worker waiting for work: the interpreter wakes and joins it at exit."""
    return (frame is not None and frame.f_code.co_name == "_worker"
            and frame.f_code.co_filename.endswith("concurrent/futures/thread.py"))


def _pool_threads():
    """Thread-pool workers, which the interpreter joins at exit even when they are daemons."""
    from concurrent.futures import thread

    return list(getattr(thread, "_threads_queues", {}).keys())
