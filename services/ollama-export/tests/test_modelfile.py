"""Modelfile: the Go TEMPLATE renders what the model's Jinja chat template renders.

Go is not installed here, so the Go templates are executed by ``GoTemplateSubset`` below:
a small interpreter of the part of Go's text/template language these templates use
(trim markers, range with two variables, if/end, :=, and/eq/ne/len/slice, fields).
"""

from __future__ import annotations

import re

import pytest

from apt_model import errors

from apt_ollama import modelfile
from apt_ollama.export_job import make_modelfile

LLAMA3_JINJA = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


class GoTemplateSubset:
    """Executes the subset of Go text/template used by Ollama chat templates here."""

    _ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)

    def __init__(self, source: str):
        parts, pos = [], 0
        for m in self._ACTION.finditer(source):
            parts += [("text", source[pos:m.start()]), ("action", m.group(2), m.group(1), m.group(3))]
            pos = m.end()
        parts.append(("text", source[pos:]))
        for i, p in enumerate(parts):  # apply {{- and -}}: trim whitespace of the neighbouring text
            if p[0] == "action" and p[2] and parts[i - 1][0] == "text":
                parts[i - 1] = ("text", parts[i - 1][1].rstrip())
            if p[0] == "action" and p[3] and parts[i + 1][0] == "text":
                parts[i + 1] = ("text", parts[i + 1][1].lstrip())
        self.nodes, rest = self._block([p[:2] for p in parts], 0)
        assert rest == len(parts)

    def _block(self, parts, i):
        nodes = []
        while i < len(parts):
            kind, body = parts[i]
            if kind == "action" and body == "end":
                return nodes, i + 1
            if kind == "action" and body.startswith(("range ", "if ")):
                inner, i = self._block(parts, i + 1)
                nodes.append((body.split(" ", 1)[0], body.split(" ", 1)[1], inner))
                continue
            nodes.append((kind, body))
            i += 1
        return nodes, i

    def render(self, data: dict) -> str:
        out: list[str] = []
        self._run(self.nodes, data, {"$": data}, out)
        return "".join(out)

    def _run(self, nodes, dot, env, out):
        for node in nodes:
            if node[0] == "text":
                out.append(node[1])
            elif node[0] == "range":
                names, expr = node[1].split(":=")
                i_name, v_name = [n.strip() for n in names.split(",")]
                for i, item in enumerate(self._eval(expr.strip(), dot, env)):
                    self._run(node[2], item, {**env, i_name: i, v_name: item}, out)
            elif node[0] == "if":
                if self._eval(node[1], dot, env):
                    self._run(node[2], dot, env, out)
            elif ":=" in node[1]:
                name, expr = node[1].split(":=")
                env[name.strip()] = self._eval(expr.strip(), dot, env)
            else:
                out.append(str(self._eval(node[1], dot, env)))

    def _eval(self, expr: str, dot, env):
        tokens = re.findall(r'\(|\)|"[^"]*"|[^\s()]+', expr)
        value, rest = self._call(tokens, dot, env)
        assert not rest, expr
        return value

    def _call(self, tokens, dot, env):
        args = []
        while tokens and tokens[0] != ")":
            tok, tokens = tokens[0], tokens[1:]
            if tok == "(":
                value, tokens = self._call(tokens, dot, env)
                tokens = tokens[1:]  # ")"
                args.append(value)
            else:
                args.append(tok)
        funcs = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "len": len,
                 "and": lambda *a: all(a), "slice": lambda s, i: s[i:]}
        if isinstance(args[0], str) and args[0] in funcs:
            return funcs[args[0]](*[self._atom(a, dot, env) for a in args[1:]]), tokens
        assert len(args) == 1
        return self._atom(args[0], dot, env), tokens

    def _atom(self, a, dot, env):
        if not isinstance(a, str):
            return a
        if a.startswith('"'):
            return a[1:-1]
        if a.isdigit():
            return int(a)
        if a.startswith("$."):
            return env["$"][a[2:]]
        if a.startswith("$"):
            return env[a]
        if a.startswith("."):
            return dot[a[1:]]
        raise AssertionError(f"unsupported token {a!r}")


def _go_messages(messages):
    return {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]}


CONVERSATIONS = modelfile.PROBES + [
    [{"role": "user", "content": "多语言 测试 😀"}, {"role": "assistant", "content": "好"}, {"role": "user", "content": "again\n\ttabs"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "u"}],
]


@pytest.mark.parametrize("jinja", ["apt", "llama3"])
def test_go_template_renders_like_the_jinja_template(jinja, llama_model):
    from apt_model.modeling.tokenizer import CHAT_TEMPLATE

    source = CHAT_TEMPLATE if jinja == "apt" else LLAMA3_JINJA
    fmt = modelfile.detect_format(source)
    assert fmt is not None and fmt.name == {"apt": "chatml", "llama3": "llama3"}[jinja]
    go = GoTemplateSubset(fmt.go_template)
    for conv in CONVERSATIONS:
        want = modelfile.render_jinja(source, conv, add_generation_prompt=conv[-1]["role"] != "assistant")
        assert go.render(_go_messages(conv)) == want


def test_the_subset_interpreter_can_tell_templates_apart():
    chatml = GoTemplateSubset(modelfile.FORMATS[0].go_template)
    llama3 = GoTemplateSubset(modelfile.FORMATS[1].go_template)
    conv = _go_messages(modelfile.PROBES[0])
    assert chatml.render(conv) == "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n"
    assert llama3.render(conv) != chatml.render(conv)


def test_modelfile_of_a_store_model(store, llama_model):
    warnings = []
    mf = make_modelfile(store, "llama-tiny", system="You are terse.", parameters={"temperature": "0.7"},
                        num_ctx=128, warn=warnings.append)
    text = mf.text()
    assert text.startswith("FROM ./model.gguf\n")
    assert 'TEMPLATE """{{- range $i, $_ := .Messages }}' in text
    assert 'SYSTEM """You are terse."""' in text
    assert 'PARAMETER stop "<|im_start|>"' in text and 'PARAMETER stop "<|im_end|>"' in text
    assert 'PARAMETER stop "</s>"' in text  # eos is a control token: also a stop
    assert "PARAMETER num_ctx 128" in text and "PARAMETER temperature 0.7" in text
    assert mf.create_parameters() == {"temperature": 0.7, "stop": ["<|im_start|>", "<|im_end|>", "</s>"],
                                      "num_ctx": 128}
    assert warnings == []
    assert "num_ctx 256" in make_modelfile(store, "llama-tiny").text()  # default: the context length


def test_unknown_chat_template_gives_no_template_and_a_warning():
    warnings = []
    mf = modelfile.build_modelfile(gguf_file="./m.gguf", chat_template="{% for m in messages %}[{{ m['content'] }}]{% endfor %}",
                                   context_length=64, warn=warnings.append)
    assert mf.template is None and "TEMPLATE" not in mf.text()
    assert warnings and "no known format" in warnings[0]


@pytest.mark.parametrize("kwargs,match", [
    ({"parameters": {"mirostat_magic": "1"}}, "Unknown or reserved"),
    ({"parameters": {"temperature": "warm"}}, "not a valid float"),
    ({"parameters": {"num_ctx": "64"}}, "own option"),
    ({"num_ctx": 100000}, "outside 1..256"),
    ({"system": 'a """ b'}, "cannot contain"),
])
def test_bad_modelfile_settings(store, llama_model, kwargs, match):
    with pytest.raises(errors.InvalidArgument, match=match):
        make_modelfile(store, "llama-tiny", **kwargs)
