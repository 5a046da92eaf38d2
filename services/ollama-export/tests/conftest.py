"""Fixtures: two tiny real models, briefly trained on real text so their logits are peaked.

- ``llama_model``: the ``apt`` preset (LlamaForCausalLM, GQA, untied head, GPT-2-regex BPE).
- ``qwen2_model``: a Qwen2ForCausalLM (q/k/v biases, tied embeddings) with a tokenizer that
  pre-splits with Qwen2's own regex, so its GGUF must say ``qwen2``, not ``gpt-2``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT, JobRecorder


def _train(model, tok, steps: int = 20, seed: int = 0):
    # 20 steps: loss ~2 on the sample text. Longer runs memorise it (loss 0.3 at 40 steps) and
    # their larger logits push the f16-KV-cache deviation past 2e-3 (measured 2.04e-3).
    # Longer training is not needed to test the conversion; f32-cache agreement is ~1e-6 either way.
    import torch

    torch.manual_seed(seed)
    ids = tok("\n".join(SAMPLE_TEXT[:5]), return_tensors="pt").input_ids[:, :96]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _qwen2_tokenizer(vocab_size: int = 384):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from apt_model.modeling.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS
    from apt_ollama.vocab import QWEN2_REGEX

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(SAMPLE_TEXT, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>",
                                   additional_special_tokens=["<|im_start|>", "<|im_end|>"],
                                   clean_up_tokenization_spaces=False)
    fast.chat_template = CHAT_TEMPLATE
    return fast


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Store:
    import torch

    torch.set_num_threads(1)
    return Store(tmp_path_factory.mktemp("apt-home"))


@pytest.fixture(scope="session")
def llama_model(store) -> Path:
    from apt_model.modeling.io import load_model, load_tokenizer, save_model
    from apt_model.testing import make_tiny_model

    path = make_tiny_model(store, "llama-tiny")
    model, tok = _train(load_model(path), load_tokenizer(path)), load_tokenizer(path)
    with store.create("models", "llama-tiny", operation="test-train", overwrite=True) as tmp:
        save_model(model, tok, tmp)
    return store.model("llama-tiny").path


@pytest.fixture(scope="session")
def qwen2_model(store) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from apt_model.modeling.io import save_model

    tok = _qwen2_tokenizer()
    config = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, rms_norm_eps=1e-6, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(1)
    model = _train(Qwen2ForCausalLM(config), tok, seed=1)
    with store.create("models", "qwen2-tiny", operation="test-train") as tmp:
        save_model(model, tok, tmp)
    return store.model("qwen2-tiny").path


@pytest.fixture
def recorder() -> JobRecorder:
    return JobRecorder()


@pytest.fixture
def recorder_cls() -> type[JobRecorder]:
    return JobRecorder


@pytest.fixture
def copy_model(store, tmp_path):
    """Copy a store model to a plain folder and apply config.json changes (for bad-input tests)."""
    import shutil

    def copy(src: Path, **config_changes) -> Path:
        dst = tmp_path / f"{src.name}-copy"
        shutil.copytree(src, dst)
        path = dst / "config.json"
        data = json.loads(path.read_text())
        data.update(config_changes)
        path.write_text(json.dumps(data))
        return dst

    return copy


class LocalOllamaApiServer:
    """A local server implementing the subset of Ollama's REST API used here.

    Endpoints: HEAD/POST /api/blobs/sha256:<hex> (sha256 checked, 400 on mismatch) and
    POST /api/create (files must name uploaded blobs that are GGUF files; streams status
    lines ending in "success", or an error line). It is not Ollama: it checks the requests
    the way Ollama documents them and records them for the tests.
    """

    def __init__(self):
        import threading
        from http.server import ThreadingHTTPServer

        self.blobs: dict[str, bytes] = {}
        self.creates: list[dict] = []
        self.requests: list[tuple[str, str, str | None, str | None]] = []  # method, path, Content-Type, -Length
        self.answers: dict[tuple[str, str], tuple[int, bytes]] = {}  # (method, path prefix) -> a status to answer
        self.create_lines: list[bytes] | None = None  # a create stream to answer instead of the checked one
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def create_stream(self, req: dict) -> list[dict]:
        """The status lines of POST /api/create: each file must name an uploaded GGUF blob."""
        self.creates.append(req)
        lines = [{"status": "parsing GGUF"}]
        for name, digest in req.get("files", {}).items():
            blob = self.blobs.get(digest)
            if blob is None:
                return [*lines, {"error": f"blob {digest} for {name} not found; upload it first"}]
            if blob[:4] != b"GGUF":
                return [*lines, {"error": f"{name} is not a GGUF file"}]
            lines.append({"status": f"using existing layer {digest}"})
        return [*lines, {"status": "writing manifest"}, {"status": "success"}]

    def _handler(self):
        import hashlib
        from http.server import BaseHTTPRequestHandler

        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def _reply(self, code: int, body: bytes = b"", ctype: str = "application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            def _planted(self) -> bool:
                """Record the request; answer a status a test planted for it, if any."""
                server.requests.append((self.command, self.path, self.headers.get("Content-Type"),
                                        self.headers.get("Content-Length")))
                for (method, prefix), (code, body) in server.answers.items():
                    if method == self.command and self.path.startswith(prefix):
                        self._reply(code, body, "text/plain")
                        return True
                return False

            def do_HEAD(self):
                if self._planted():
                    return
                digest = self.path.removeprefix("/api/blobs/")
                self._reply(200 if digest in server.blobs else 404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self._planted():
                    return
                if self.path == "/api/create" and server.create_lines is not None:
                    return self._reply(200, b"".join(server.create_lines), "application/x-ndjson")
                if self.path.startswith("/api/blobs/sha256:"):
                    digest = self.path.removeprefix("/api/blobs/")
                    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                        return self._reply(400, b'{"error":"digest mismatch"}')
                    server.blobs[digest] = body
                    return self._reply(201)
                if self.path == "/api/create":
                    lines = server.create_stream(json.loads(body))
                    return self._reply(200, b"".join(json.dumps(x).encode() + b"\n" for x in lines),
                                       "application/x-ndjson")
                self._reply(404, b'{"error":"not found"}')

        return Handler


@pytest.fixture
def ollama_server():
    server = LocalOllamaApiServer()
    yield server
    server.close()
