"""Tokenizer metadata for GGUF, read straight from ``tokenizer.json`` (no tokenizers import).

llama.cpp re-implements byte-level BPE; it tokenizes like the HF tokenizer only when it
gets the same tokens (in id order), the same merges, the right token types and, above
all, the same pre-tokenizer regex, which it selects by *name* (``tokenizer.ggml.pre``).
A wrong or missing name still loads and silently splits digits and spaces differently,
so the name is derived from the tokenizer's actual pre-tokenizer, and anything not
recognised is refused rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from apt_model import errors

from apt_ollama.checkpoint import read_json

# The Split regexes that llama.cpp implements under a pre-tokenizer name (tokenizer.json spelling).
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLIT_NAMES = {LLAMA3_REGEX: "llama-bpe", QWEN2_REGEX: "qwen2"}

# gguf.TokenType values (kept as ints so this module stays import-light).
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5


@dataclass
class Vocab:
    tokens: list[str]  # id order
    token_types: list[int]
    merges: list[str]  # "left right"
    pre: str  # llama.cpp pre-tokenizer name
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    unk_id: int | None
    add_bos: bool
    add_eos: bool
    chat_template: str | None
    special_tokens: dict[str, int] = field(default_factory=dict)  # every CONTROL token, text -> id
    warnings: list[str] = field(default_factory=list)


def _is_byte_level(pt: dict, use_regex: bool) -> bool:
    return pt.get("type") == "ByteLevel" and bool(pt.get("use_regex", True)) == use_regex \
        and not pt.get("add_prefix_space", False)


def pre_tokenizer_name(pre: dict | None) -> str:
    """The llama.cpp pre-tokenizer whose regex equals this HF pre-tokenizer, or InvalidArgument."""
    pre = pre or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if len(steps) == 1 and _is_byte_level(steps[0], use_regex=True):
        return "gpt-2"  # ByteLevel's own regex is GPT-2's
    if len(steps) == 2 and steps[0].get("type") == "Split" and _is_byte_level(steps[1], use_regex=False):
        split = steps[0]
        regex = (split.get("pattern") or {}).get("Regex")
        if regex in _SPLIT_NAMES and split.get("behavior") == "Isolated" and not split.get("invert"):
            return _SPLIT_NAMES[regex]
    raise errors.InvalidArgument(
        "The tokenizer's pre-tokenizer is not one llama.cpp implements (supported: byte-level BPE with "
        "the GPT-2 regex -> 'gpt-2', the Llama-3 split -> 'llama-bpe', the Qwen2 split -> 'qwen2'); "
        "exporting it would make llama.cpp tokenize differently from the model's tokenizer."
    )


def _token_text(value) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value


def _post_processor_specials(post: dict | None) -> tuple[str | None, str | None]:
    """Special tokens a TemplateProcessing puts before and after a single sequence."""
    if not post:
        return None, None
    if post.get("type") == "Sequence":
        for p in post.get("processors", []):
            found = _post_processor_specials(p)
            if found != (None, None):
                return found
        return None, None
    if post.get("type") != "TemplateProcessing":
        return None, None
    single = post.get("single", [])
    first = single[0].get("SpecialToken", {}).get("id") if single else None
    last = single[-1].get("SpecialToken", {}).get("id") if len(single) > 1 else None
    return first, last


def read_vocab(folder: Path, vocab_size: int, config: dict) -> Vocab:
    """Everything ``tokenizer.ggml.*`` needs, validated against llama.cpp's BPE."""
    tj = read_json(folder / "tokenizer.json", "GGUF export needs the fast tokenizer's tokenizer.json")
    model = _byte_level_bpe(tj)
    pre = pre_tokenizer_name(tj.get("pre_tokenizer"))
    warnings = _mismatch_warnings(tj.get("normalizer"), model, pre, config)
    by_id: dict[int, tuple[str, int]] = {i: (t, NORMAL) for t, i in model["vocab"].items()}
    for added in tj.get("added_tokens", []):
        by_id[added["id"]] = (added["content"], CONTROL if added.get("special") else USER_DEFINED)
    tokens, types = _id_table(by_id, vocab_size)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    tc_path = folder / "tokenizer_config.json"
    tc = read_json(tc_path, "it holds the special tokens") if tc_path.is_file() else {}
    ids = {t: i for i, (t, _) in by_id.items()}

    def special(key: str, config_key: str | None = None) -> int | None:
        text = _token_text(tc.get(key))
        if text is not None and text in ids:
            return ids[text]
        value = config.get(config_key) if config_key else None
        return value[0] if isinstance(value, list) else value

    first, last = _post_processor_specials(tj.get("post_processor"))
    bos, eos = special("bos_token", "bos_token_id"), special("eos_token", "eos_token_id")
    return Vocab(
        tokens=tokens, token_types=types, merges=merges, pre=pre,
        bos_id=bos, eos_id=eos, pad_id=special("pad_token", "pad_token_id"), unk_id=special("unk_token"),
        add_bos=first is not None and ids.get(first) == bos,
        add_eos=last is not None and ids.get(last) == eos,
        chat_template=_chat_template(tc, folder),
        special_tokens={t: i for i, (t, k) in by_id.items() if k == CONTROL},
        warnings=warnings,
    )


def _byte_level_bpe(tj: dict) -> dict:
    """tokenizer.json's model, or InvalidArgument when it is not byte-level BPE."""
    model = tj.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise errors.InvalidArgument(
            f"Tokenizer model {model.get('type')!r} (byte_fallback={model.get('byte_fallback')}) is not "
            "byte-level BPE; this exporter writes only llama.cpp's 'gpt2' tokenizer type."
        )
    if (tj.get("decoder") or {}).get("type") != "ByteLevel":
        raise errors.InvalidArgument("The tokenizer's decoder is not ByteLevel, so it is not byte-level BPE.")
    return model


def _mismatch_warnings(normalizer: dict | None, model: dict, pre: str, config: dict) -> list[str]:
    """Where llama.cpp will tokenize some text differently; InvalidArgument for a normalizer it lacks."""
    warnings = []
    # transformers' Qwen2Tokenizer installs an NFC normalizer whatever tokenizer.json says.
    if (normalizer and normalizer.get("type") == "NFC") or config.get("model_type") == "qwen2":
        warnings.append("The HF tokenizer applies NFC normalization, which llama.cpp does not (GGUF has no "
                        "field for it); text that is not already NFC (e.g. U+F900) tokenizes differently.")
    elif normalizer:
        raise errors.InvalidArgument(f"Tokenizer normalizer {normalizer.get('type')!r} has no llama.cpp equivalent.")
    if bool(model.get("ignore_merges")) != (pre == "llama-bpe"):
        warnings.append(f"ignore_merges={bool(model.get('ignore_merges'))} differs from what llama.cpp uses "
                        f"with pre-tokenizer {pre!r}; rare whole-word tokens may split differently.")
    return warnings


def _id_table(by_id: dict[int, tuple[str, int]], vocab_size: int) -> tuple[list[str], list[int]]:
    """Token texts and types for every embedding row, in id order."""
    n = max(vocab_size, max(by_id) + 1)
    if n > vocab_size:
        raise errors.FailedPrecondition(
            f"The tokenizer has ids up to {n - 1} but config.json says vocab_size={vocab_size}; "
            "the embedding matrix cannot hold them. Resize the embeddings before exporting."
        )
    tokens, types = [], []
    for i in range(n):  # ids the tokenizer never uses (padded embedding rows) become unused slots
        text, kind = by_id.get(i, (f"[PAD{i}]", UNUSED))
        tokens.append(text)
        types.append(kind)
    return tokens, types


def _chat_template(tc: dict, folder: Path) -> str | None:
    """tokenizer_config.json's chat template (its default one when named), else chat_template.jinja."""
    template = tc.get("chat_template")
    if isinstance(template, list):  # named templates: the default one is what chat uses
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    jinja = folder / "chat_template.jinja"
    if template is None and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    return template


def add_metadata(writer, v: Vocab) -> None:
    """Write ``tokenizer.ggml.*`` and ``tokenizer.chat_template``."""
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(v.pre)
    writer.add_token_list(v.tokens)
    writer.add_token_types(v.token_types)
    writer.add_token_merges(v.merges)
    for setter, value in ((writer.add_bos_token_id, v.bos_id), (writer.add_eos_token_id, v.eos_id),
                          (writer.add_pad_token_id, v.pad_id), (writer.add_unk_token_id, v.unk_id)):
        if value is not None:
            setter(value)
    writer.add_add_bos_token(v.add_bos)
    writer.add_add_eos_token(v.add_eos)
    if v.chat_template:
        writer.add_chat_template(v.chat_template)
