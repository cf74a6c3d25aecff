"""Guarantees within the budget: constrained output is complete within max_tokens, and
degenerate repetition inside constrained strings and arrays is stopped.

Units on a tiny hand-made vocabulary and on the embedded model's tokenizer (tests/data);
hypothesis property tests over random schemas and tiny budgets; the chat model end to end
on the tiny chat model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

xgr = pytest.importorskip("xgrammar")
jsonschema = pytest.importorskip("jsonschema")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_constrain import object_schemas, parse_calls, validate

from langchain_attention_buckets.constrain import ConstraintCompiler, compiler_for
from langchain_attention_buckets.constrain.steering import (
    JsonScanner,
    TokenTable,
    items_loop,
    repetition_closer,
    string_loops,
)
from langchain_attention_buckets.formats.hermes import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

SMOL_VOCAB, SMOL_EOS = 49152, 2
JOKE = {
    "title": "Joke",
    "type": "object",
    "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}, "rating": {"type": "integer"}},
    "required": ["setup", "punchline"],
}
CITIES = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"cities": {"type": "array", "items": {"type": "string"}}},
            "required": ["cities"],
        },
    },
}


def tiny_compiler() -> ConstraintCompiler:
    """Stop token 0, then printable ASCII one byte a token, plus a few longer tokens."""
    vocab = ["</s>"] + [chr(c) for c in range(32, 127)] + ["\n", TOOL_CALL_OPEN, TOOL_CALL_CLOSE, '""', '": "', "}}"]
    return ConstraintCompiler(xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, stop_token_ids=[0]))


@pytest.fixture(scope="module")
def smol(smol_tokenizer):
    return compiler_for(smol_tokenizer, vocab_size=SMOL_VOCAB, stop_token_ids=[SMOL_EOS])


def drive(constraint, prefer, budget: int, vocab: int, eos: int, seed: int = 0, noise: float = 0.0):
    """Decode like the engine under `budget`: each step, argmax of (noise + a pull toward the
    next token of `prefer`, cycled); stop at a stop token or when the budget is spent.
    Returns (text bytes of the tokens, "stop" or "length")."""
    rng = np.random.default_rng(seed)
    table = constraint._steer.table
    out = []
    for step in range(budget):
        row = rng.random(vocab, dtype=np.float32) * noise
        if prefer:
            row[prefer[step % len(prefer)]] += 10.0
        row[eos] -= 20.0  # never stop by choice: the budget must be what ends it
        assert constraint.process(torch.from_numpy(row))
        token = int(row.argmax())
        assert np.isfinite(row[token])
        constraint.accept(token)
        if constraint.is_terminated():
            return b"".join(table.bytes[t] for t in out), "stop"
        out.append(token)
    return b"".join(table.bytes[t] for t in out), "length"


# ---------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------


def test_token_table_spells_with_the_fewest_tokens():
    table = TokenTable([b"", b"a", b"b", b"ab", b"abb", b"</s>"], stop_token_ids=[5])
    assert table.tokenize(b"abbab") == [4, 3]
    assert table.tokenize(b"</s>") is None  # the stop token never spells text
    assert table.tokenize(b"c") is None


def test_scanner_tracks_strings_and_array_items():
    scan = JsonScanner()
    scan.feed(b'{"a": ["x,]", {"b": 1}, "y')
    assert scan.in_string and scan.string_text() == b"y"
    assert scan.stack[-1].items == [b'"x,]"', b'{"b": 1}']
    scan.feed(b'"')
    assert scan.finished_item() == ([b'"x,]"', b'{"b": 1}'], b'"y"')


def test_repetition_rules():
    assert string_loops(b"the cat was a cat, and the cat was a cat, and ")  # 23-byte chunk twice
    assert string_loops(b"ha ha ha ha ha ha ")
    assert not string_loops(b"hello hello")  # short, twice
    assert not string_loops(b"a sentence that does not repeat itself at all")
    assert items_loop([b'"Paris"', b'"Paris"'])
    assert items_loop([b'"a"', b'"b"', b'"a"', b'"b"'])
    assert not items_loop([b"0", b"0"])  # short scalars may repeat
    assert not items_loop([b'"Paris"', b'"Rome"'])


def test_an_item_about_to_repeat_is_closed_then_the_array():
    scan = JsonScanner()
    scan.feed(b'{"c": ["Paris", "Paris')
    assert repetition_closer(scan) == ord('"')
    scan.feed(b'"')
    assert repetition_closer(scan) == ord("]")


# ---------------------------------------------------------------------------
# The shortest output and the error below it
# ---------------------------------------------------------------------------


def test_shortest_output_on_a_tiny_vocabulary():
    c = tiny_compiler()
    n, text = c.json_schema(JOKE).shortest()
    assert text == '{"setup": "", "punchline": ""}'
    assert n < len(text)  # the multi-byte tokens are used
    n, text = c.tool_calls([CITIES], mode="forced").shortest()
    assert text == TOOL_CALL_OPEN + '{"name": "get_weather", "arguments": {"cities": []}}' + TOOL_CALL_CLOSE
    assert c.tool_calls([CITIES], mode="auto").shortest() == (0, "")


def test_below_the_minimum_fails_before_generating_naming_it(smol):
    n, _ = smol.tool_calls([CITIES], mode="forced").shortest()
    with pytest.raises(ValueError, match=rf"max_tokens=5 is below {n}, the fewest tokens a call of get_weather"):
        smol.tool_calls([CITIES], mode="forced").limit(5)
    smol.tool_calls([CITIES], mode="forced").limit(n)  # exactly the minimum is fine
    with pytest.raises(ValueError, match=r"schema 'Joke'"):
        smol.json_schema(JOKE).limit(3)
    smol.tool_calls([CITIES], mode="auto").limit(1)  # free text may end anywhere


def test_the_shortest_call_picks_the_tool_with_the_shortest_arguments(smol):
    long = {"type": "function", "function": {"name": "a", "parameters": JOKE}}
    _n, text = smol.tool_calls([long, CITIES], mode="forced").shortest()
    assert '"name": "get_weather"' in text


# ---------------------------------------------------------------------------
# Closing within the budget
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [0, 1, 3, 10, 30])
def test_a_looping_string_still_closes_within_the_budget(smol, smol_tokenizer, extra):
    loop = smol_tokenizer.encode('{"setup": "the cat was a cat, and the cat', add_special_tokens=False)
    g = smol.json_schema(JOKE)
    budget = g.shortest()[0] + extra
    text, finish = drive(g.limit(budget), loop, budget, SMOL_VOCAB, SMOL_EOS)
    value = json.loads(text)
    validate(value, JOKE)
    assert finish == "length"


def test_the_string_loop_is_closed_and_the_object_completed(smol, smol_tokenizer):
    head = smol_tokenizer.encode('{"setup": "', add_special_tokens=False)
    loop = smol_tokenizer.encode("the cat was a cat, and ", add_special_tokens=False)
    text, _ = drive(smol.json_schema(JOKE).limit(64), head + loop * 20, 64, SMOL_VOCAB, SMOL_EOS)
    value = json.loads(text)
    assert value["setup"].count("the cat was a cat") <= 2 and "punchline" in value


def test_a_repeated_city_ends_the_array(smol, smol_tokenizer):
    prefix = TOOL_CALL_OPEN + '{"name": "get_weather", "arguments": {"cities": ["Paris", "Paris", "Paris", "Paris'
    ids = smol_tokenizer.encode(prefix, add_special_tokens=False)
    g = smol.tool_calls([CITIES], mode="forced", parallel=False).limit(160)
    text, finish = drive(g, ids + ids[-4:] * 50, 160, SMOL_VOCAB, SMOL_EOS)
    ((_name, args),) = parse_calls(text.decode())
    assert args == {"cities": ["Paris", "Paris"]} and finish == "stop"


def test_repetition_control_gives_way_to_min_items(smol, smol_tokenizer):
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"c": {"type": "array", "items": {"type": "string"}, "minItems": 3}},
        "required": ["c"]}}}
    prefix = TOOL_CALL_OPEN + '{"name": "f", "arguments": {"c": ["Rome", "Rome", "Rome", "Rome"'
    ids = smol_tokenizer.encode(prefix, add_special_tokens=False)
    g = smol.tool_calls([tool], mode="forced", parallel=False).limit(80)
    text, _ = drive(g, ids + ids[-4:] * 20, 80, SMOL_VOCAB, SMOL_EOS)
    ((_, args),) = parse_calls(text.decode())
    assert len(args["c"]) >= 3


# ---------------------------------------------------------------------------
# Property tests: random schemas, tiny budgets, random logits
# ---------------------------------------------------------------------------

BUDGET_SETTINGS = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.mark.slow  # ~20 s: most of it compiling 25 random grammars
def test_every_output_within_a_tiny_budget_validates(smol):
    @BUDGET_SETTINGS
    @given(schema=object_schemas(), extra=st.integers(0, 20), seed=st.integers(0, 2**31 - 1))
    def run(schema, extra, seed):
        g = smol.json_schema(schema)
        shortest = g.shortest()
        assert shortest is not None, schema
        budget = shortest[0] + extra
        text, _ = drive(g.limit(budget), [], budget, SMOL_VOCAB, SMOL_EOS, seed=seed, noise=4.0)
        validate(json.loads(text), schema)

    run()


@pytest.mark.slow
def test_every_forced_call_within_a_tiny_budget_validates(smol):
    @BUDGET_SETTINGS
    @given(params=object_schemas(), extra=st.integers(0, 20), seed=st.integers(0, 2**31 - 1))
    def run(params, extra, seed):
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": params}}]
        g = smol.tool_calls(tools, mode="forced", parallel=False)
        budget = g.shortest()[0] + extra
        text, _ = drive(g.limit(budget), [], budget, SMOL_VOCAB, SMOL_EOS, seed=seed, noise=4.0)
        ((_name, args),) = parse_calls(text.decode())
        validate(args, params)

    run()


# ---------------------------------------------------------------------------
# The chat model, end to end on the tiny chat model
# ---------------------------------------------------------------------------


def test_structured_output_is_valid_within_a_small_budget(tiny_chat_dir):
    from pydantic import BaseModel

    from langchain_attention_buckets import ChatAttentionBuckets

    class Joke(BaseModel):
        setup: str
        punchline: str

    llm = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=[10000.0, 40000.0], max_tokens=14)
    out = llm.with_structured_output(Joke, method="json_schema", include_raw=True).invoke("Tell me a joke")
    assert out["parsing_error"] is None and isinstance(out["parsed"], Joke)
    assert out["raw"].response_metadata["finish_reason"] == "length"
    short = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", max_tokens=3)
    with pytest.raises(ValueError, match=r"max_tokens=3 is below \d+, the fewest tokens a value of schema 'Joke'"):
        short.with_structured_output(Joke, method="json_schema").invoke("Tell me a joke")
