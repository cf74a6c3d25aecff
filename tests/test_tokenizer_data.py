"""The tokenizer in tests/data is the embedded model's: same vocabulary, encodings and chat template.

The fast tier renders and encodes with the shipped copy; this test compares it with the tokenizer
the package itself loads (from the converted GGUF), so the copy cannot drift unnoticed.
"""

from __future__ import annotations

import pytest

from langchain_attention_buckets.formats.hermes import format_tool_call
from langchain_attention_buckets.text.render import render

pytestmark = pytest.mark.embedded

TEXTS = [
    "What is the weather in Paris?",
    "  leading spaces, tabs\tand\nnewlines\n\n",
    "Unicode: café, naïve, 東京, Ελληνικά, emoji 🙂, \x80 and ÿ",
    format_tool_call("get_weather", {"city": "Zürich", "days": 2}),
    "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>",
    '{"a": [1, 2.5, -3e4, true, null], "b": "\\"quoted\\""}',
]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
    [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "sunny"},
    ],
]


@pytest.fixture(scope="module")
def converted():
    from transformers import AutoTokenizer

    from langchain_attention_buckets.engine.loading import converted_checkpoint, embedded_model_path

    return AutoTokenizer.from_pretrained(str(converted_checkpoint(embedded_model_path())))


def test_shipped_tokenizer_has_the_same_vocabulary_and_special_tokens(smol_tokenizer, converted):
    assert smol_tokenizer.get_vocab() == converted.get_vocab()
    assert {i: str(t) for i, t in smol_tokenizer.added_tokens_decoder.items()} == {
        i: str(t) for i, t in converted.added_tokens_decoder.items()
    }
    assert smol_tokenizer.special_tokens_map == converted.special_tokens_map
    assert smol_tokenizer.eos_token_id == converted.eos_token_id and smol_tokenizer.bos_token_id == converted.bos_token_id


def test_shipped_tokenizer_encodes_and_decodes_the_same(smol_tokenizer, converted):
    for text in TEXTS:
        ids = converted.encode(text, add_special_tokens=False)
        assert smol_tokenizer.encode(text, add_special_tokens=False) == ids, text
        assert smol_tokenizer.decode(ids) == converted.decode(ids), text


@pytest.mark.parametrize("tools", [None, [TOOL]], ids=["no-tools", "tools"])
def test_shipped_chat_template_renders_the_same(smol_tokenizer, converted, tools):
    assert smol_tokenizer.chat_template == converted.chat_template
    for messages in CONVERSATIONS:
        prompt = render(converted, messages, tools)
        assert render(smol_tokenizer, messages, tools) == prompt
        assert smol_tokenizer.encode(prompt, add_special_tokens=False) == converted.encode(prompt, add_special_tokens=False)
