"""The byte-level BPE tokenizer round-trips any text exactly (property test)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apt_model.modeling.tokenizer import train_tokenizer
from apt_model.testing import SAMPLE_TEXT

TOK = train_tokenizer(SAMPLE_TEXT, vocab_size=400)

chinese = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=30)
english = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
code = st.sampled_from(["def f(x):\n\treturn x**2\n", "for (int i=0;i<n;++i){a[i]=0;}", "  x = {'k': [1, 2]}\r\n"])
emoji = st.text(alphabet=st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), max_size=10)
mixed = st.lists(st.one_of(chinese, english, code, emoji, st.text(max_size=20)), max_size=6).map("".join)


@settings(max_examples=300, deadline=None)
@given(mixed)
def test_round_trip(text):
    ids = TOK(text, add_special_tokens=False).input_ids
    assert TOK.decode(ids) == text


@pytest.mark.parametrize("text", ["机器学习是人工智能的一个分支。", "naïve café ｆｕｌｌｗｉｄｔｈ", "👩‍👩‍👧‍👦 🇨🇳", "\t\n  \u200b"])
def test_known_hard_cases(text):
    assert TOK.decode(TOK(text, add_special_tokens=False).input_ids) == text


def test_special_tokens_and_chat_template():
    assert (TOK.pad_token_id, TOK.bos_token_id, TOK.eos_token_id) == (0, 1, 2)
    chat = TOK.apply_chat_template([{"role": "user", "content": "你好"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"
