"""Bounds on model configs, checked before any model is built.

A config is a few hundred bytes of JSON, but it decides how much memory and time building its
model takes: millions of layers, a vocabulary of billions or a context of billions make a
gateway or a plugin build (or even lay out on the ``meta`` device) a model it can never hold.
So every config a caller controls (a store model's ``config.json``, a training config) goes
through :func:`checked_config` first:

1. each dimension is a positive integer within a sane ceiling (``CEILINGS``), nested
   sub-configs included; a bad one is ``InvalidArgument`` naming the field;
2. the Hugging Face config object is made (cheap: no weights, no modules);
3. the parameter count is computed from the dimensions alone: exactly for the architectures
   in ``_EXACT`` (with the per-module-type breakdown ``size`` reports), as a generous upper
   bound for the others; over ``max_params`` (``APT_MAX_MODEL_PARAMS``) is
   ``ResourceExhausted``;
4. only for an architecture outside ``_EXACT``, and only once that bound passed, the module
   tree is laid out on the ``meta`` device (no storage; its time is bounded by the layer
   ceiling) for the exact count and breakdown, which is checked against the limit again.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from apt_model import errors

LIMIT_SETTING = "APT_MAX_MODEL_PARAMS"

# Sane ceilings per dimension, far above every published causal LM (the largest have ~130
# layers, width 16-25k, MLP width ~50k, vocabularies ~260k, contexts ~10M tokens), so they
# refuse only configs no one could train or run. Field names: every alias HF configs use.
CEILINGS: dict[str, tuple[int, tuple[str, ...]]] = {
    "layers": (512, ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers",
                     "encoder_layers", "num_decoder_layers", "num_encoder_layers")),
    "width": (65_536, ("hidden_size", "n_embd", "d_model", "embed_dim", "word_embed_proj_dim",
                       "hidden_size_per_layer_input", "head_dim", "kv_channels")),
    "heads": (1_024, ("num_attention_heads", "n_head", "num_heads", "n_heads", "num_key_value_heads",
                      "encoder_attention_heads", "decoder_attention_heads")),
    "intermediate": (262_144, ("intermediate_size", "n_inner", "ffn_dim", "d_ff", "moe_intermediate_size",
                               "shared_expert_intermediate_size", "encoder_ffn_dim", "decoder_ffn_dim")),
    "vocab": (1 << 21, ("vocab_size", "vocab_size_per_layer_input")),
    "context": (1 << 24, ("max_position_embeddings", "n_positions", "n_ctx", "seq_length",
                          "max_sequence_length")),
    "experts": (1_024, ("num_experts", "num_local_experts", "n_routed_experts", "n_shared_experts",
                        "num_experts_per_tok")),
}
# May be null (the architecture's default applies); the expert counts may also be 0 (dense).
OPTIONAL = {"n_inner", "head_dim", "kv_channels", "num_key_value_heads", "moe_intermediate_size",
            "shared_expert_intermediate_size", "hidden_size_per_layer_input", "vocab_size_per_layer_input",
            "seq_length", "max_sequence_length", *CEILINGS["experts"][1]}
REQUIRED = {"width": ("hidden_size", "n_embd", "d_model"), "layers": ("num_hidden_layers", "n_layer", "num_layers"),
            "heads": ("num_attention_heads", "n_head", "num_heads"), "vocab": ("vocab_size",)}
_ROPE_KEYS = ("rope_theta", "rope_scaling", "rope_parameters", "rotary_dim", "rotary_pct", "rotary_emb_base")


@dataclass(frozen=True)
class ParamCount:
    total: int
    by_module_type: dict[str, int]  # module class name -> parameters (tied weights once)
    exact: bool  # False: a generic upper bound (an architecture outside _EXACT)


def check_dimensions(raw: Any, where: str = "the model config") -> dict:
    """``raw`` (parsed JSON) as a config dict whose dimensions are integers within CEILINGS."""
    if not isinstance(raw, dict):
        raise errors.InvalidArgument(f"{where} must be a JSON object, not {type(raw).__name__}.")
    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise errors.InvalidArgument(
            f"{where} needs a 'model_type' such as 'llama', 'gpt2' or 'qwen2' (got {model_type!r}).")
    _check_fields(raw, where, "")
    # A composite config (a text model beside vision/audio towers) may keep its sizes in text_config.
    text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else {}
    missing = [" / ".join(names) for names in REQUIRED.values()
               if not any(raw.get(n) or text.get(n) for n in names)]
    if missing:
        raise errors.InvalidArgument(
            f"{where} does not say its size: it needs {'; '.join(missing)} (positive integers) to be "
            f"bounded before a model is built.")
    return raw


def _check_fields(cfg: dict, where: str, prefix: str, depth: int = 0) -> None:
    if depth > 4:
        raise errors.InvalidArgument(f"{where} nests sub-configs more than 4 levels deep ({prefix.rstrip('.')}).")
    for key, value in cfg.items():
        if isinstance(value, dict):
            _check_fields(value, where, f"{prefix}{key}.", depth + 1)
            continue
        for kind, (ceiling, names) in CEILINGS.items():
            if key not in names:
                continue
            field = prefix + key
            if value is None and key in OPTIONAL:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise errors.InvalidArgument(f"{where}: {field} must be an integer, got {value!r}.")
            low = 0 if kind == "experts" else 1
            if value < low:
                raise errors.InvalidArgument(f"{where}: {field} must be >= {low}, got {value}.")
            if value > ceiling:
                raise errors.InvalidArgument(
                    f"{where}: {field} = {value:,} is beyond the ceiling of {ceiling:,} for {kind}; no model "
                    f"that size can be built here. Fix the config.")


def hf_config(raw: dict, where: str = "the model config"):
    """The transformers config object for a checked dict (no model is built)."""
    from transformers import AutoConfig

    from apt_model.modeling.model_types import ensure_registered

    ensure_registered(raw.get("model_type"))  # a plugin's own model type, when it is one
    data = {k: v for k, v in raw.items() if k != "model_type"}
    try:
        return AutoConfig.for_model(raw["model_type"], **data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise errors.InvalidArgument(
            f"{where} is not a valid Hugging Face config ({type(exc).__name__}: {str(exc)[:300]}); it needs "
            f"a known 'model_type' such as 'llama', 'gpt2' or 'qwen2'.") from exc


def checked_config(raw: Any, max_params: int, where: str = "the model config"):
    """(config object, ParamCount) for ``raw``, refused before anything is built when out of bounds."""
    config = hf_config(check_dimensions(raw, where), where)
    return config, check_count(config, max_params, where)


def check_count(config, max_params: int, where: str = "the model config") -> ParamCount:
    """The parameter count of a config object whose dimensions passed ``check_dimensions``;
    ResourceExhausted when over ``max_params``."""
    count = analytic_count(config)
    _check_limit(count, max_params, where)
    if not count.exact:
        # Outside _EXACT no formula is known to be exact; the upper bound passed and the layer
        # count is within its ceiling, so laying the module tree out on the meta device is cheap.
        count = meta_count(config)
        _check_limit(count, max_params, where)
    return count


def _check_limit(count: ParamCount, max_params: int, where: str) -> None:
    if count.total > max_params:
        kind = "parameters" if count.exact else "parameters at most (an upper bound for this architecture)"
        raise errors.ResourceExhausted(
            f"{where} describes a model of {count.total:,} {kind}; this platform takes at most "
            f"{max_params:,}. Use a smaller config, or raise {LIMIT_SETTING} on the gateway and plugins.")


# -- analytic counts ----------------------------------------------------------------------------

def analytic_count(config) -> ParamCount:
    """Parameters from the dimensions alone: exact for _EXACT architectures, else an upper bound."""
    exact = _EXACT.get(config.model_type)
    if exact is not None:
        by_type = {k: v for k, v in exact(config).items() if v}
        return ParamCount(sum(by_type.values()), by_type, exact=True)
    return ParamCount(_generic_bound(config.to_dict()), {}, exact=False)


def _llama_like(norm: str, *, qkv_bias: Callable = lambda c: c.attention_bias,
                o_bias: Callable = lambda c: c.attention_bias, mlp_bias: Callable = lambda c: False,
                qk_norm: bool = False) -> Callable[[Any], dict[str, int]]:
    """Decoder of RMSNorm + (GQA attention, SwiGLU MLP) layers, the Llama family's layout."""

    def count(c) -> dict[str, int]:
        d, n_layers, vocab = c.hidden_size, c.num_hidden_layers, c.vocab_size
        heads = c.num_attention_heads
        kv = getattr(c, "num_key_value_heads", None) or heads
        hd = getattr(c, "head_dim", None) or d // heads
        inner = c.intermediate_size
        attention = d * heads * hd + 2 * d * kv * hd + heads * hd * d \
            + bool(qkv_bias(c)) * (heads + 2 * kv) * hd + bool(o_bias(c)) * d
        mlp = 3 * d * inner + bool(mlp_bias(c)) * (2 * inner + d)  # gate, up (d -> i), down (i -> d)
        head = 0 if _tied(c) else vocab * d
        return {"Embedding": vocab * d, "Linear": n_layers * (attention + mlp) + head,
                norm: n_layers * (2 * d + qk_norm * 2 * hd) + d}  # two norms a layer (+ q/k norms), final

    return count


def _gpt2(c) -> dict[str, int]:
    d, n_layers, vocab, positions = c.n_embd, c.n_layer, c.vocab_size, c.n_positions
    inner = c.n_inner or 4 * d
    conv = (d * 3 * d + 3 * d) + (d * d + d) + (d * inner + inner) + (inner * d + d)  # c_attn, c_proj, c_fc, c_proj
    norms = 2 * (2 * d)  # ln_1, ln_2 (weight and bias)
    if getattr(c, "add_cross_attention", False):
        conv += (d * d + d) + (d * 2 * d + 2 * d) + (d * d + d)  # q_attn, c_attn, c_proj
        norms += 2 * d  # ln_cross_attn
    return {"Embedding": (vocab + positions) * d, "Conv1D": n_layers * conv,
            "LayerNorm": n_layers * norms + 2 * d, "Linear": 0 if _tied(c) else vocab * d}


def _tied(c) -> bool:
    return bool(getattr(c, "tie_word_embeddings", False))


_EXACT: dict[str, Callable[[Any], dict[str, int]]] = {
    "llama": _llama_like("LlamaRMSNorm", mlp_bias=lambda c: c.mlp_bias),
    "mistral": _llama_like("MistralRMSNorm", qkv_bias=lambda c: False, o_bias=lambda c: False),
    "qwen2": _llama_like("Qwen2RMSNorm", qkv_bias=lambda c: True, o_bias=lambda c: False),
    "qwen3": _llama_like("Qwen3RMSNorm", qk_norm=True),
    "gpt2": _gpt2,
}


def _first(cfg: dict, names: tuple[str, ...], default: int = 0) -> int:
    for name in names:
        value = cfg.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def _generic_bound(cfg: dict) -> int:
    """An upper bound on a causal LM's parameters from its dimensions, for any architecture.

    Every layer is assumed to have biased q/k/v/o projections, a gated MLP with biases, every
    expert the config names, cross-attention when it may have one, layer norms with biases and
    q/k norms; embeddings are assumed untied, and a learned position table is assumed unless
    the config names rotary embeddings. Nested sub-configs (text/vision towers) add their own.
    """
    d = _first(cfg, ("hidden_size", "n_embd", "d_model", "embed_dim"))
    total = 0
    if d:
        layers = _first(cfg, ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers",
                              "num_decoder_layers")) + _first(cfg, ("encoder_layers", "num_encoder_layers"))
        heads = _first(cfg, ("num_attention_heads", "n_head", "num_heads", "n_heads"), 1)
        kv = max(_first(cfg, ("num_key_value_heads",), heads), heads)
        hd = max(_first(cfg, ("head_dim", "kv_channels")), math.ceil(d / heads))
        inner = _first(cfg, ("intermediate_size", "n_inner", "ffn_dim", "d_ff"), 4 * d)
        moe_inner = max(_first(cfg, ("moe_intermediate_size",)), _first(cfg, ("shared_expert_intermediate_size",))) \
            or inner
        experts = sum(_first(cfg, (n,)) for n in ("num_experts", "num_local_experts", "n_routed_experts",
                                                  "n_shared_experts")) + ("shared_expert_intermediate_size" in cfg)
        attention = 4 * d * max(heads, kv) * hd + 3 * max(heads, kv) * hd + d
        if cfg.get("is_encoder_decoder") or cfg.get("add_cross_attention"):
            attention *= 2
        mlp = 3 * d * inner + 2 * inner + d + experts * (3 * d * moe_inner + 2 * moe_inner + 2 * d)
        per_layer = attention + mlp + 6 * d + 4 * hd
        vocab = _first(cfg, ("vocab_size",))
        positions = 0 if any(k in cfg for k in _ROPE_KEYS) else _first(cfg, CEILINGS["context"][1])
        per_layer_vocab = _first(cfg, ("vocab_size_per_layer_input",)) * _first(cfg, ("hidden_size_per_layer_input",))
        total = layers * (per_layer + per_layer_vocab) + 2 * vocab * d + positions * d + 4 * d
    return total + sum(_generic_bound(v) for v in cfg.values() if isinstance(v, dict))


def meta_count(config) -> ParamCount:
    """The exact count and breakdown of ``config``'s model laid out on the meta device (no storage).

    Call only after the analytic bound passed (``checked_config`` does).
    """
    import torch
    from transformers import AutoModelForCausalLM

    try:
        from apt_model.modeling.io import building

        with building(), torch.device("meta"):  # see io._BUILDING
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise errors.InvalidArgument(
            f"No causal LM can be built from this {config.model_type!r} config "
            f"({type(exc).__name__}: {str(exc)[:300]}).") from exc
    by_type = parameters_by_module_type(model)
    return ParamCount(sum(by_type.values()), by_type, exact=True)


def parameters_by_module_type(model) -> dict[str, int]:
    """Parameters of a built model by the class of the module that holds them (tied weights once)."""
    counts: Counter[str] = Counter()
    seen = set()
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                counts[type(module).__name__] += p.numel()
    return dict(counts)


# -- memory ----------------------------------------------------------------------------------------

def available_memory(device: str = "cpu") -> int:
    """Bytes that can be allocated now: MemAvailable on the host, or free memory on the GPU."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    free = _meminfo_available()
    room = _cgroup_room()  # a container's memory limit, which MemAvailable does not see
    return min(free, room) if room is not None else free


def _meminfo_available() -> int:
    """MemAvailable from /proc/meminfo (no psutil: slim service images do not carry it)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup memory limit (v2, then v1); None without a limit."""
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            raw = Path(limit).read_text().strip()
            used = int(Path(usage).read_text().strip())
        except (OSError, ValueError):
            continue
        if raw == "max" or int(raw) >= 1 << 60:  # no limit (v1 writes a huge number)
            return None
        return max(0, int(raw) - used)
    return None


def check_memory(needed: int, device: str, what: str, next_step: str) -> None:
    """ResourceExhausted when ``needed`` bytes exceed what ``device`` has free now."""
    free = available_memory(device)
    if needed > free:
        where = "GPU" if device == "cuda" else "machine"
        raise errors.ResourceExhausted(
            f"{what} needs about {_gib(needed)} of memory but the {where} has {_gib(free)} free; {next_step}.")


def _gib(n: int) -> str:
    return f"{n / (1 << 30):,.2f} GiB"


def stored_config(store, name: str, max_params: int):
    """(config, ParamCount) of store model ``name`` once its config passed the bounds, or None
    when it has no readable config (the loader reports that in its own words; nothing is built)."""
    from apt_model.modeling.io import read_config

    try:
        raw = read_config(store.model(name).path)
    except errors.FailedPrecondition:
        return None
    return checked_config(raw, max_params, f"The config of model {name!r}")


def check_trainable(store, name: str, max_params: int, batch_size: int, seq_len: int, device: str = "auto",
                    plus: int = 0, plus_what: str = "") -> None:
    """Refuse, before a job trains model ``name``, a config out of bounds or a training step that
    does not fit in the memory free now on the device the job will use: fp32 weights, gradients,
    AdamW moments and one (batch_size, seq_len) micro-batch's activations
    (``apt_model.modeling.memory``), plus ``plus`` bytes held beside it (a teacher's weights)."""
    from apt_model.modeling.io import pick_device
    from apt_model.modeling.memory import fused_loss_applies, training_estimate

    if (found := stored_config(store, name, max_params)) is None:
        return
    config, count = found
    need = training_estimate(config.to_dict(), count.total, batch_size, seq_len, fused_loss_applies(config))
    check_memory(sum(need.values()) + plus, pick_device(device),
                 f"Training {name!r} ({count.total:,} parameters, batch_size {batch_size}, seq_len {seq_len}"
                 f"{plus_what})", "lower batch_size or seq_len, use a smaller model, or wait for other jobs to finish")


def fp32_bytes(store, name: str, max_params: int) -> int:
    """fp32 bytes of model ``name``'s weights, counted from its config (0 when it has none)."""
    found = stored_config(store, name, max_params)
    return 4 * found[1].total if found else 0


def check_loadable(store, name: str, max_params: int) -> None:
    """Refuse, before a job loads model ``name``, a config out of bounds or weights (fp32) that do
    not fit in the memory free now. A missing or unreadable config builds nothing: the loader
    reports it in its own words."""
    if (found := stored_config(store, name, max_params)) is None:
        return
    count = found[1]
    check_memory(4 * count.total, "cpu", f"Loading {name!r} ({count.total:,} parameters, fp32)",
                 "free memory (finish other jobs) or use a smaller model")
