"""A model card (README.md) for an exported store model: lineage, metrics, how it was made."""

from __future__ import annotations

import json

import yaml

from apt_model.store import Entry, Store


def lineage_chain(store: Store, entry: Entry, limit: int = 20) -> list[Entry]:
    """The entry and its ancestors still in the store, newest first (stops at a missing parent)."""
    chain, seen = [entry], {entry.name}
    while (parent := chain[-1].parent) and parent not in seen and len(chain) < limit:
        if not store.exists("models", parent):
            break
        chain.append(store.model(parent))
        seen.add(parent)
    return chain


def render_model_card(store: Store, entry: Entry, config: dict) -> str:
    chain = lineage_chain(store, entry)
    root_source = next((e.meta.get("source") for e in reversed(chain) if e.meta.get("source")), None)
    front = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["apt-platform", config.get("model_type", "causal-lm")],
    }
    if root_source and root_source.get("hub") in ("huggingface", "modelscope"):
        front["base_model"] = root_source["repo_id"]
    metrics = entry.meta.get("metrics", {})
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
        f"# {entry.name}", "",
        f"A {config.get('architectures', ['causal LM'])[0]} exported from the APT platform model store "
        f"on {entry.created or 'an unknown date'}.", "",
        "## How it was made", "",
        "| step | model | operation | parameters |", "|---|---|---|---|",
    ]
    for i, e in enumerate(reversed(chain), 1):
        lin = e.meta.get("lineage", {})
        params = json.dumps(lin.get("parameters", {}), sort_keys=True, ensure_ascii=False)
        lines.append(f"| {i} | `{e.name}` | {lin.get('operation', '?')} | `{params}` |")
    if chain[-1].parent:
        lines += ["", f"Earlier ancestor `{chain[-1].parent}` is no longer in the store."]
    if root_source:
        lines += ["", f"Original source: {root_source.get('hub')} `{root_source.get('repo_id')}` "
                      f"revision `{root_source.get('revision') or '-'}` commit `{root_source.get('commit_sha') or '-'}`."]
    lines += ["", "## Metrics", ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in sorted(metrics.items())]]
    else:
        lines.append("No metrics were recorded for this model.")
    size = {k: config.get(k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                       "vocab_size", "max_position_embeddings") if k in config}
    lines += [
        "", "## Architecture", "", "```json", json.dumps(size, indent=2), "```", "",
        "## Use", "", "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "tok = AutoTokenizer.from_pretrained(PATH_OR_REPO)",
        "model = AutoModelForCausalLM.from_pretrained(PATH_OR_REPO)",
        "```", "",
    ]
    return "\n".join(lines)
