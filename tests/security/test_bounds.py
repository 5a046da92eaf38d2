"""Attack: make the gateway build, allocate or queue more than it can hold (issue #15, item 5).

An attacker with only the user token stores a model whose config.json declares millions of
layers or a vocabulary of billions, or starts training from such a config, or floods a service
with jobs. Each must be refused before any work starts: the config by its dimensions and its
parameter count computed from them (``apt_model.modeling.limits``), a training run also by its
memory estimate, a job by the service's queue limit (``APT_MAX_QUEUED_JOBS``). The analytic
counts ``size`` now reports are checked against real models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import grpc
import psutil
import pytest
import torch

from apt_model import errors
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.modeling import limits
from apt_model.modeling.lm import count_parameters
from apt_model.modeling.preset import create_model, preset_config
from apt_model.runtime.jobs import JobManager, JobState
from apt_model.store import Store
from apt_model.testing import ECHO_JOB, make_tiny_model, wait_for_state
from gateway.core.size import model_size
from gateway.testing import start_gateway, stop_gateway

from .conftest import assert_no_leak, rpc_error, user_channel

REFUSED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
LLAMA = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "intermediate_size": 176, "vocab_size": 320, "max_position_embeddings": 256}
MiB = 1 << 20


# -- the analytic count against real models -------------------------------------------------------

def _hf(model_type: str, **kw):
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **kw)


SMALL_LLAMA = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                   intermediate_size=80, vocab_size=300, max_position_embeddings=128)
REAL_CONFIGS = {
    "apt-tiny": lambda: preset_config("tiny", vocab_size=320),
    "apt-small": lambda: preset_config("small", vocab_size=300),
    "apt-tiny-tied": lambda: preset_config("tiny", vocab_size=320, tie_word_embeddings=True),
    "llama-untied-biased": lambda: _hf("llama", **SMALL_LLAMA, attention_bias=True, mlp_bias=True),
    "llama-tied-head-dim": lambda: _hf("llama", **SMALL_LLAMA, head_dim=16, tie_word_embeddings=True),
    "gpt2-tied": lambda: _hf("gpt2", n_embd=32, n_layer=2, n_head=4, n_positions=64, vocab_size=300),
    "gpt2-untied-inner-cross": lambda: _hf("gpt2", n_embd=32, n_layer=2, n_head=4, n_positions=64, vocab_size=300,
                                           n_inner=72, tie_word_embeddings=False, add_cross_attention=True),
    "mistral": lambda: _hf("mistral", **SMALL_LLAMA),
    "qwen2": lambda: _hf("qwen2", **SMALL_LLAMA),
    "qwen3-tied": lambda: _hf("qwen3", **SMALL_LLAMA, head_dim=12, tie_word_embeddings=True),
}


@pytest.mark.parametrize("which", sorted(REAL_CONFIGS))
def test_analytic_count_matches_the_real_model(which):
    config = REAL_CONFIGS[which]()
    count = limits.analytic_count(config)
    model = create_model(config)
    assert count.exact
    assert count.total == count_parameters(model)[0]
    assert count.by_module_type == limits.parameters_by_module_type(model)


def test_unknown_architecture_bound_then_exact_on_meta():
    """Outside the exact formulas: a generous bound first, then the meta-device count, which is exact."""
    raw = {"model_type": "gpt_neox", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 64, "vocab_size": 300, "max_position_embeddings": 64}
    config, count = limits.checked_config(raw, 10**9)
    real = create_model(config)
    assert not limits.analytic_count(config).exact
    assert limits.analytic_count(config).total >= count.total == count_parameters(real)[0]
    assert count.by_module_type == limits.parameters_by_module_type(real)


def test_size_of_stored_presets_unchanged(tmp_path):
    """GetModelSize's numbers for stored apt presets: the real model's, without building one."""
    store = Store(tmp_path)
    for size in ("tiny", "small"):
        make_tiny_model(store, size, size=size, vocab_size=300)
        real = create_model(preset_config(size, vocab_size=len(json.loads(
            (store.model(size).path / "tokenizer.json").read_text())["model"]["vocab"])))
        s = model_size(store, size, batch_size=2, seq_len=16)
        assert s["total_parameters"] == s["trainable_parameters"] == count_parameters(real)[0]
        assert s["parameters_by_module_type"] == limits.parameters_by_module_type(real)


# -- config validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, field", [
    ([1, 2], "JSON object"),
    ("llama", "JSON object"),
    ({**LLAMA, "model_type": 7}, "model_type"),
    ({k: v for k, v in LLAMA.items() if k != "model_type"}, "model_type"),
    ({**LLAMA, "hidden_size": -64}, "hidden_size"),
    ({**LLAMA, "num_hidden_layers": 0}, "num_hidden_layers"),
    ({**LLAMA, "num_attention_heads": 4.5}, "num_attention_heads"),
    ({**LLAMA, "intermediate_size": "176"}, "intermediate_size"),
    ({**LLAMA, "vocab_size": True}, "vocab_size"),
    ({**LLAMA, "max_position_embeddings": 10**12}, "max_position_embeddings"),
    ({"model_type": "llama", "vocab_size": 320}, "hidden_size"),
    ({**LLAMA, "text_config": {"num_hidden_layers": 10**7}}, "text_config.num_hidden_layers"),
    ({**LLAMA, "model_type": "no-such-architecture"}, "model_type"),
])
def test_bad_config_is_invalid_argument_naming_the_field(raw, field):
    with pytest.raises(errors.InvalidArgument, match=field.replace(".", r"\.")):
        limits.checked_config(raw, 10**10)


def test_millions_of_layers_refused_at_once():
    start = time.perf_counter()
    with pytest.raises(errors.InvalidArgument, match="num_hidden_layers = 3,000,000"):
        limits.checked_config({**LLAMA, "num_hidden_layers": 3_000_000}, 10**10)
    with pytest.raises(errors.InvalidArgument, match="num_hidden_layers = 3,000 "):
        limits.checked_config({**LLAMA, "num_hidden_layers": 3_000}, 10**10)  # took 11 s on the meta device
    assert time.perf_counter() - start < 0.5


def test_parameter_limit_counts_before_building():
    big = {**LLAMA, "hidden_size": 16384, "num_hidden_layers": 128, "num_attention_heads": 128,
           "num_key_value_heads": 8, "intermediate_size": 53248, "vocab_size": 128256}  # ~405B
    start = time.perf_counter()
    with pytest.raises(errors.ResourceExhausted, match="APT_MAX_MODEL_PARAMS") as info:
        limits.checked_config(big, 10_000_000_000)
    assert "10,000,000,000" in info.value.message
    unknown = {**big, "model_type": "gpt_neox"}  # refused by the generic bound, never laid out on meta
    with pytest.raises(errors.ResourceExhausted, match="upper bound"):
        limits.checked_config(unknown, 10_000_000_000)
    assert time.perf_counter() - start < 0.5
    with pytest.raises(errors.ResourceExhausted):
        limits.checked_config(LLAMA, 1000)  # the operator's limit, however small


# -- through a live gateway, with the user token --------------------------------------------------------

def _store_model(gw, name: str, config: dict) -> None:
    """A model with the given config.json and a small real weights file, straight into the store."""
    from safetensors.torch import save_file

    with Store(gw.settings.home).create("models", name, operation="upload", overwrite=True) as tmp:
        (tmp / "config.json").write_text(json.dumps(config))
        save_file({"model.embed_tokens.weight": torch.zeros(8, 8)}, str(tmp / "model.safetensors"))


@pytest.fixture(scope="module")
def core(attack_gateway):
    make_tiny_model(Store(attack_gateway.settings.home), "fine", vocab_size=300)
    stub = gateway_pb2_grpc.CoreStub(user_channel(attack_gateway))
    stub.GetModelSize(pb.GetModelSizeRequest(name="fine"))  # warm: transformers' lazy imports
    return stub


def _rss() -> int:
    return psutil.Process().memory_info().rss  # the gateway runs in this process


@pytest.mark.parametrize("name, config", [
    ("deep", {**LLAMA, "num_hidden_layers": 5_000_000}),
    ("wide-vocab", {**LLAMA, "vocab_size": 4_000_000_000}),
    ("huge", {**LLAMA, "hidden_size": 65536, "num_attention_heads": 512, "num_key_value_heads": 512,
              "intermediate_size": 262144, "num_hidden_layers": 512, "vocab_size": 2_000_000}),
    ("huge-gpt2", {"model_type": "gpt2", "n_embd": 65536, "n_layer": 512, "n_head": 512, "n_positions": 1 << 24,
                   "vocab_size": 2_000_000}),
])
def test_size_test_debug_refuse_huge_stored_config(attack_gateway, core, name, config):
    _store_model(attack_gateway, name, config)
    rss, start = _rss(), time.perf_counter()
    err = rpc_error(lambda: core.GetModelSize(pb.GetModelSizeRequest(name=name)))
    # Before the bounds, the model was laid out on the meta device: 3,000 layers took 11 s and
    # ~37 KiB each, so this took minutes and gigabytes, or took the gateway down.
    assert time.perf_counter() - start < 2
    assert err.code() in REFUSED, err.details()
    assert name in err.details() and ("ceiling" in err.details() or "APT_MAX_MODEL_PARAMS" in err.details())
    for call in (lambda: core.StartTest(pb.TestModelRequest(name=name, eval_text="a b c")),
                 lambda: core.DebugModel(pb.DebugModelRequest(name=name)),
                 lambda: core.StartCompare(pb.CompareModelsRequest(names=["fine", name]))):
        assert rpc_error(call).code() in REFUSED  # refused before a job is queued or a model loaded
    assert _rss() - rss < 32 * MiB
    assert_no_leak(attack_gateway, err.details())


def test_size_answers_a_stored_model_from_its_config(core):
    s = core.GetModelSize(pb.GetModelSizeRequest(name="fine", batch_size=2, seq_len=16))
    real = create_model(preset_config("tiny", vocab_size=core.GetModelInfo(
        pb.GetModelInfoRequest(name="fine")).tokenizer.vocab_size))
    assert s.total_parameters == count_parameters(real)[0]
    assert dict(s.parameters_by_module_type) == limits.parameters_by_module_type(real)


def _jobs(gw) -> int:
    return len(gw.app.jobs.list())


@pytest.mark.parametrize("config_json, code, words", [
    (json.dumps({**LLAMA, "num_hidden_layers": 5_000_000}), grpc.StatusCode.INVALID_ARGUMENT, "num_hidden_layers"),
    (json.dumps({**LLAMA, "hidden_size": 32768, "num_attention_heads": 256, "num_key_value_heads": 256,
                 "intermediate_size": 131072, "num_hidden_layers": 256, "vocab_size": 1_000_000}),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "APT_MAX_MODEL_PARAMS"),
    ("{not json", grpc.StatusCode.INVALID_ARGUMENT, "not valid JSON"),
    ("[]", grpc.StatusCode.INVALID_ARGUMENT, "JSON object"),
    (json.dumps({**LLAMA, "hidden_size": 0}), grpc.StatusCode.INVALID_ARGUMENT, "hidden_size"),
    (json.dumps({**LLAMA, "intermediate_size": 17.5}), grpc.StatusCode.INVALID_ARGUMENT, "intermediate_size"),
])
def test_train_refuses_config_before_anything(attack_gateway, core, config_json, code, words):
    jobs, rss, start = _jobs(attack_gateway), _rss(), time.perf_counter()
    err = rpc_error(lambda: core.StartTrain(pb.TrainRequest(name="trained", config_json=config_json)))
    assert time.perf_counter() - start < 2
    assert err.code() == code and words in err.details(), err.details()
    assert _jobs(attack_gateway) == jobs and _rss() - rss < 32 * MiB
    assert_no_leak(attack_gateway, err.details())


def test_train_refuses_what_memory_cannot_hold(attack_gateway, core):
    """A small model whose batch needs terabytes of activations: refused with the numbers."""
    jobs = _jobs(attack_gateway)
    err = rpc_error(lambda: core.StartTrain(pb.TrainRequest(name="trained", size="tiny", seq_len=256,
                                                            batch_size=10_000_000)))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
    assert "GiB" in err.details() and "batch_size" in err.details()
    assert _jobs(attack_gateway) == jobs


# -- the job queue -------------------------------------------------------------------------------------

def _blocked(manager: JobManager, release: threading.Event):
    return manager.start(ECHO_JOB, lambda ctx: release.wait(30) and {})


def test_job_queue_is_bounded():
    manager, release = JobManager("unit", max_workers=1, max_queued=2), threading.Event()
    try:
        running = _blocked(manager, release)
        wait_for_state(manager, running.id, JobState.RUNNING)
        waiting = [_blocked(manager, release) for _ in range(2)]  # the queue's two places
        with pytest.raises(errors.ResourceExhausted) as info:
            _blocked(manager, release)
        assert info.value.message.startswith("2 jobs are already waiting in unit;")
        assert "APT_MAX_QUEUED_JOBS" in info.value.message
        manager.cancel(waiting[0].id)  # a cancelled job no longer waits: its place is free
        _blocked(manager, release)
    finally:
        release.set()
        manager.shutdown(cancel_running=False)


def test_job_queue_limit_through_the_gateway(tmp_path):
    """APT_MAX_QUEUED_JOBS reaches the gateway's job manager; the refusal is RESOURCE_EXHAUSTED."""
    gw = start_gateway(tmp_path / "home", job_workers=1, max_queued_jobs=1)
    release = threading.Event()
    try:
        make_tiny_model(Store(gw.settings.home), "fine", vocab_size=300)
        running = _blocked(gw.app.jobs, release)
        wait_for_state(gw.app.jobs, running.id, JobState.RUNNING)
        _blocked(gw.app.jobs, release)
        core = gateway_pb2_grpc.CoreStub(user_channel(gw))
        err = rpc_error(lambda: core.StartTest(pb.TestModelRequest(name="fine", eval_text="a b c")))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "1 jobs are already waiting in gateway" in err.details() and "APT_MAX_QUEUED_JOBS" in err.details()
    finally:
        release.set()
        stop_gateway(gw)


def test_free_memory_needs_no_psutil():
    """Service images do not carry psutil (dev-only): the memory check reads /proc and cgroups.
    (It once imported psutil, and every prune in a container failed with INTERNAL.)"""
    code = ("import sys; sys.modules['psutil'] = None\n"
            "from apt_model.modeling import limits\n"
            "print(limits.available_memory())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < int(out.stdout) <= total


def test_plugins_refuse_training_steps_memory_cannot_hold(attack_gateway, core):
    """Pruning with recovery and HF fine-tuning count a training step (weights, gradients, AdamW
    moments, one micro-batch's activations) against free memory before a job builds anything."""
    from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2 as hf_pb
    from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2_grpc as hf_grpc
    from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pr_pb
    from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2_grpc as pr_grpc

    for name in ("model-pruning", "huggingface-integration"):
        attack_gateway.app.registry.install(name)
    with Store(attack_gateway.settings.home).create("datasets", "words", operation="test", overwrite=True) as tmp:
        (tmp / "words.txt").write_text("plain words for training\n" * 200)
    ch = user_channel(attack_gateway)
    from apt_model.gen.apt.common.v1 import job_pb2
    from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc

    def every_job() -> int:  # the gateway's and every plugin's
        return len(plugin_pb2_grpc.JobsStub(ch).ListJobs(job_pb2.ListJobsRequest(), timeout=30).jobs)

    jobs_before = every_job()
    calls = {
        "prune with recovery": lambda: pr_grpc.PruningStub(ch).StartPrune(pr_pb.PruneRequest(
            name="fine", strategy="magnitude", ratio=0.5, recovery_steps=10, recovery_dataset="words",
            batch_size=1024, seq_len=32768), timeout=60),
        "hf train": lambda: hf_grpc.HuggingFaceStub(ch).StartTrain(hf_pb.TrainRequest(
            model="fine", dataset="words", output_name="fine-ft", batch_size=4096, seq_len=32768), timeout=60),
    }
    for what, call in calls.items():
        err = rpc_error(call)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (what, err.code(), err.details())
        assert "GiB" in err.details() and "batch_size" in err.details(), err.details()
        assert_no_leak(attack_gateway, err.details())
    assert every_job() == jobs_before
