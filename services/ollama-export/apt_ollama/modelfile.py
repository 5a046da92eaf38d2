"""An Ollama Modelfile whose Go ``TEMPLATE`` renders what the model's Jinja chat template does.

A Jinja template cannot be translated to Go mechanically, so the model's template is
*identified* instead: it is rendered (the way transformers renders it) on probe
conversations and compared with the rendering of each chat format known here. A match
gives that format's Go template and stop strings; no match gives no ``TEMPLATE`` and a
warning, leaving Ollama to pick one from the chat template stored in the GGUF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from apt_model import errors

Message = dict[str, str]


@dataclass(frozen=True)
class ChatFormat:
    name: str
    go_template: str  # Ollama TEMPLATE over .Messages
    stops: tuple[str, ...]
    render: Callable[[list[Message]], str]  # what the Go template produces, for matching


def _chatml(messages: list[Message]) -> str:
    out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return out + ("<|im_start|>assistant\n" if messages[-1]["role"] != "assistant" else "")


def _llama3(messages: list[Message]) -> str:
    out = "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>" for m in messages)
    return out + ("<|start_header_id|>assistant<|end_header_id|>\n\n" if messages[-1]["role"] != "assistant" else "")


# In both templates the generation prompt follows the last message unless it is the
# assistant's own (HF's add_generation_prompt); `slice $.Messages $i` has length 1 there.
FORMATS = [
    ChatFormat(
        "chatml",
        "{{- range $i, $_ := .Messages }}\n"
        "{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
        "<|im_start|>{{ .Role }}\n"
        "{{ .Content }}<|im_end|>\n"
        "{{ if and $last (ne .Role \"assistant\") }}<|im_start|>assistant\n"
        "{{ end }}\n"
        "{{- end }}",
        ("<|im_start|>", "<|im_end|>"),
        _chatml,
    ),
    ChatFormat(
        "llama3",
        "{{- range $i, $_ := .Messages }}\n"
        "{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
        "<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
        "{{ .Content }}<|eot_id|>\n"
        "{{- if and $last (ne .Role \"assistant\") }}<|start_header_id|>assistant<|end_header_id|>\n\n"
        "{{ end }}\n"
        "{{- end }}",
        ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        _llama3,
    ),
]

PROBES: list[list[Message]] = [
    [{"role": "user", "content": "Hello there"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}],
    [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}],
]

# Ollama PARAMETER names and the type each value must parse as.
PARAMETER_TYPES: dict[str, type] = {
    "num_ctx": int, "num_predict": int, "temperature": float, "top_k": int, "top_p": float,
    "min_p": float, "repeat_penalty": float, "repeat_last_n": int, "seed": int, "stop": str,
}


def render_jinja(template: str, messages: list[Message], add_generation_prompt: bool) -> str:
    """Render a chat template the way transformers does (sandboxed, trimmed blocks)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    # bos is empty on purpose: llama.cpp adds BOS itself from tokenizer.ggml.add_bos_token.
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            bos_token="", eos_token="")


def detect_format(template: str | None) -> ChatFormat | None:
    """The known format that renders every probe exactly as ``template`` does, if any."""
    if not template:
        return None
    import jinja2

    for fmt in FORMATS:
        try:
            same = all(render_jinja(template, p, p[-1]["role"] != "assistant") == fmt.render(p) for p in PROBES)
        except jinja2.exceptions.TemplateError:
            same = False  # a template that rejects a probe (e.g. no system role) is another format
        if same:
            return fmt
    return None


@dataclass
class Modelfile:
    gguf_file: str  # path relative to the Modelfile, or a blob reference
    template: str | None
    system: str | None
    parameters: dict[str, list[str]] = field(default_factory=dict)  # name -> values (stop repeats)
    format_name: str = ""

    def text(self) -> str:
        lines = [f"FROM {self.gguf_file}"]
        if self.template is not None:
            lines.append(f'TEMPLATE """{self.template}"""')
        if self.system:
            lines.append(f'SYSTEM """{self.system}"""')
        for name, values in self.parameters.items():
            for v in values:
                lines.append(f"PARAMETER {name} {_quote(v) if name == 'stop' else v}")
        return "\n".join(lines) + "\n"

    def create_parameters(self) -> dict:
        """Parameters as ``/api/create`` takes them (typed values, stop as a list)."""
        out: dict = {}
        for name, values in self.parameters.items():
            typed = [PARAMETER_TYPES[name](v) for v in values]
            out[name] = typed if name == "stop" else typed[0]
        return out


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_modelfile(*, gguf_file: str, chat_template: str | None, context_length: int,
                    num_ctx: int = 0, system: str = "", parameters: dict[str, str] | None = None,
                    extra_stops: list[str] | None = None, warn: Callable[[str], None] = lambda _t: None) -> Modelfile:
    """Validate the user's settings and assemble the Modelfile."""
    if '"""' in system:
        raise errors.InvalidArgument('The system prompt cannot contain \'"""\' (it ends a Modelfile block).')
    params: dict[str, list[str]] = {}
    for name, value in (parameters or {}).items():
        if name not in PARAMETER_TYPES or name in ("num_ctx", "stop"):
            allowed = ", ".join(k for k in PARAMETER_TYPES if k not in ("num_ctx", "stop"))
            raise errors.InvalidArgument(
                f"Unknown or reserved Modelfile parameter {name!r}; use one of: {allowed} "
                "(num_ctx has its own option; stop strings come from the chat template)."
            )
        try:
            PARAMETER_TYPES[name](value)
        except ValueError as exc:
            raise errors.InvalidArgument(f"Parameter {name}={value!r} is not a valid {PARAMETER_TYPES[name].__name__}.") from exc
        params[name] = [str(value)]
    if num_ctx < 0 or num_ctx > context_length:
        raise errors.InvalidArgument(
            f"num_ctx {num_ctx} is outside 1..{context_length}, the context length the model was built for."
        )
    fmt = detect_format(chat_template)
    if chat_template and fmt is None:
        warn("The chat template matches no known format (chatml, llama3); the Modelfile has no TEMPLATE, "
             "so Ollama will derive one from the template stored in the GGUF. Check `ollama show --template`.")
    stops = list(fmt.stops) if fmt else []
    stops += [s for s in (extra_stops or []) if s not in stops]
    if stops:
        params["stop"] = stops
    params["num_ctx"] = [str(num_ctx or context_length)]
    return Modelfile(gguf_file=gguf_file, template=fmt.go_template if fmt else None, system=system or None,
                     parameters=params, format_name=fmt.name if fmt else "")
