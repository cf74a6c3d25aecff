"""Constrained decoding: every output the grammar lets through is well formed.

Tokenizer-free tests use a tiny hand-made vocabulary. The exact-text tests use the real
tokenizer of SmolLM2-135M-Instruct (shipped in tests/data; both fast). The property tests,
marked `slow` (the slow tier: about a minute), drive the constraint over that tokenizer with
random logits (hypothesis), then check each completed output: JSON validates, tool calls
parse and validate, forbidden markers never appear.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

jsonschema = pytest.importorskip("jsonschema")
xgr = pytest.importorskip("xgrammar")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from langchain_attention_buckets.constrain import (  # noqa: E402
    ConstraintCompiler,
    GrammarConstraint,
    TokenConstraint,
    compiler_for,
)
from langchain_attention_buckets.constrain.grammar import (  # noqa: E402
    check_unique_tool_names,
    select_tools,
)
from langchain_attention_buckets.constrain.schema import (  # noqa: E402
    check_schema,
    compile_error,
    prepare_schema,
)
from langchain_attention_buckets.formats.hermes import (  # noqa: E402
    CALL_SEPARATOR,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    format_tool_call,
)

slow = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOL_VOCAB = 49152
SMOL_EOS = 2
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the completion-rate floors below must not flake
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------------
# Fixtures: a tiny vocabulary, and the embedded model's tokenizer
# ---------------------------------------------------------------------------


def tiny_compiler(vocab: list[str] | None = None, **kwargs) -> ConstraintCompiler:
    """A compiler over a raw vocabulary: id 0 is the stop token, then printable ASCII."""
    if vocab is None:
        vocab = ["</s>"] + [chr(c) for c in range(32, 127)] + ["\n", TOOL_CALL_OPEN, TOOL_CALL_CLOSE]
    info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, stop_token_ids=[0])
    return ConstraintCompiler(info, **kwargs)


class Smol:
    """The compiler for the real tokenizer, plus what the random walks need."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.compiler = compiler_for(tokenizer, vocab_size=SMOL_VOCAB, stop_token_ids=[SMOL_EOS])
        self.token_bytes = self.compiler.tokenizer_info.decoded_vocab
        # Biases that steer random walks: toward closing JSON (so most walks finish), toward
        # the call separator, and toward spelling the call marker (to exercise the masks).
        self.closers = np.zeros(SMOL_VOCAB, dtype=np.float32)
        for i, b in enumerate(self.token_bytes):
            if any(c in b for c in (b'"', b"}", b"]", b",")):
                self.closers[i] = 1.0
        self.closers[SMOL_EOS] = 1.5
        self.newline = np.zeros(SMOL_VOCAB, dtype=np.float32)
        self.newline[tokenizer.encode("\n", add_special_tokens=False)] = 1.0
        self.marker = tokenizer.encode(TOOL_CALL_OPEN, add_special_tokens=False)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def text(self, ids: list[int]) -> str:
        return b"".join(self.token_bytes[i] for i in ids).decode("utf-8")

    def raw(self, ids: list[int]) -> bytes:
        return b"".join(self.token_bytes[i] for i in ids)


@pytest.fixture(scope="module")
def smol(smol_tokenizer) -> Smol:
    return Smol(smol_tokenizer)


# ---------------------------------------------------------------------------
# Driving a constraint
# ---------------------------------------------------------------------------


def walk(
    constraint: GrammarConstraint,
    bias: np.ndarray,
    seed: int,
    cap: int = 200,
    lure: tuple[list[int], float] | None = None,
) -> tuple[list[int], str]:
    """Pick argmax(random logits + bias) under the mask until a stop token or `cap` tokens.

    The stop token's bias grows each step, so free text ends too. `lure` = (ids, strength)
    pulls toward spelling `ids` in order (the next one after the part already written),
    until they have been written once. Returns the ids (stop token excluded) and "done",
    "cap" or "dead". (numpy, not torch, for the walk's own arithmetic: single-threaded,
    so the test's speed does not hinge on a busy machine's thread pool.)
    """
    rng = np.random.default_rng(seed)
    ids: list[int] = []
    for step in range(cap):
        # uniform noise in [0, 4): cheap, and a bias of 4 always wins among allowed tokens
        row = rng.random(bias.shape[0], dtype=np.float32) * 4.0 + bias
        row[SMOL_EOS] += 0.05 * step
        if lure is not None:
            target, strength = lure
            done = next((k for k in range(len(target) - 1, 0, -1) if ids[-k:] == target[:k]), 0)
            row[target[done]] += strength
        if not constraint.process(torch.from_numpy(row)):  # masks `row` in place
            return ids, "dead"
        token = int(row.argmax())
        assert np.isfinite(row[token]), "picked a token the mask forbids"
        constraint.accept(token)
        if constraint.is_terminated():
            return ids, "done"
        ids.append(token)
        if lure is not None and ids[-len(lure[0]) :] == lure[0]:
            lure = None
    return ids, "cap"


def feed(constraint: TokenConstraint, ids: list[int], vocab: int) -> bool:
    """Feed fixed tokens; False at the first one the grammar forbids."""
    for token in ids:
        row = np.zeros(vocab, dtype=np.float32)
        assert constraint.process(torch.from_numpy(row))
        if not np.isfinite(row[token]):
            with pytest.raises(ValueError):
                constraint.accept(token)
            return False
        constraint.accept(token)
    return True


def parse_calls(text: str) -> list[tuple[str, dict]]:
    """Strictly parse `<tool_call>{json}</tool_call>` calls separated by newlines, nothing else."""
    decoder = json.JSONDecoder()
    calls, pos = [], 0
    while True:
        assert text.startswith(TOOL_CALL_OPEN, pos), text[pos:]
        pos += len(TOOL_CALL_OPEN)
        pos += text.startswith("\n", pos)
        body, pos = decoder.raw_decode(text, pos)
        pos += text.startswith("\n", pos)
        assert text.startswith(TOOL_CALL_CLOSE, pos), text[pos:]
        pos += len(TOOL_CALL_CLOSE)
        assert list(body) == ["name", "arguments"], body
        calls.append((body["name"], body["arguments"]))
        if pos == len(text):
            return calls
        assert text.startswith(CALL_SEPARATOR, pos), text[pos:]
        pos += len(CALL_SEPARATOR)


def validate(value, schema) -> None:
    # `format` stays an annotation (the 2020-12 default): xgrammar checks formats by syntax
    # only, e.g. it lets "2024-11-31" through as a date.
    jsonschema.Draft202012Validator(schema).validate(value)


# ---------------------------------------------------------------------------
# Strategies: schemas within the supported subset, tools, walks
# ---------------------------------------------------------------------------

# SmolLM2's byte-level vocabulary has no token holding the UTF-8 lead bytes 0xF1/0xF2, so
# code points U+40000..U+BFFFF cannot be written at all (a schema demanding one is a dead
# end, tested below). Generated schemas stay below that range.
# Latin-1 next to hex digits is weighted up: it once broke xgrammar's EBNF round trip.
_chars = st.one_of(
    st.sampled_from('\x80\x9féÿ aF0"\\\n/'),
    st.characters(codec="utf-8", max_codepoint=0x3FFFF, exclude_categories=("Cs",)),
)
_texts = st.text(_chars, max_size=4)
_names = st.text(_chars, min_size=1, max_size=6)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: round(x, 3)),
    _texts,
)


def _canonical(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value)


_leaves = st.one_of(
    st.just({"type": "string"}),
    st.integers(0, 3).map(lambda n: {"type": "string", "maxLength": n}),
    st.just({"type": "integer"}),
    st.tuples(st.integers(-50, 50), st.integers(0, 100)).map(
        lambda t: {"type": "integer", "minimum": t[0], "maximum": t[0] + t[1]}
    ),
    st.integers(2, 5).map(lambda k: {"type": "integer", "multipleOf": k}),
    st.just({"type": "number"}),
    st.tuples(st.floats(-10, 10).map(lambda x: round(x, 2)), st.floats(0.5, 10).map(lambda x: round(x, 2))).map(
        lambda t: {"type": "number", "exclusiveMinimum": t[0], "maximum": t[0] + t[1]}
    ),
    st.sampled_from([{"type": "string", "format": "date"}, {"type": "string", "pattern": "^[a-c]{1,3}$"}]),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(_scalars, min_size=1, max_size=4, unique_by=_canonical).map(lambda v: {"enum": v}),
    _scalars.map(lambda v: {"const": v}),
)


@st.composite
def _objects(draw, children):
    props = draw(st.dictionaries(_names, children, max_size=4))
    schema = {"type": "object", "properties": props}
    required = [name for name in props if draw(st.booleans())]
    if required:
        schema["required"] = required
    if draw(st.booleans()):
        schema["additionalProperties"] = False
    return schema


def _arrays(children):
    return st.tuples(children, st.integers(0, 2), st.integers(0, 2)).map(
        lambda t: {"type": "array", "items": t[0], "minItems": t[1], "maxItems": t[1] + t[2]}
    )


_schemas = st.recursive(
    _leaves,
    lambda children: st.one_of(
        _objects(children),
        _arrays(children),
        st.lists(children, min_size=2, max_size=3).map(lambda branches: {"anyOf": branches}),
    ),
    max_leaves=8,
)


@st.composite
def object_schemas(draw):
    """A top-level object schema; sometimes with a $defs entry used through $ref."""
    schema = draw(_objects(_schemas))
    if draw(st.booleans()):
        schema["$defs"] = {"Shared": draw(_objects(_schemas))}
        schema["properties"]["shared ref"] = {"$ref": "#/$defs/Shared"}
        if draw(st.booleans()):
            schema.setdefault("required", []).append("shared ref")
    return schema


TOOL_NAMES = ["get_weather", "search", "météo"]


@st.composite
def toolsets(draw):
    params = draw(st.lists(object_schemas(), min_size=1, max_size=3))
    return [
        {"type": "function", "function": {"name": TOOL_NAMES[i], "description": f"tool {i}", "parameters": p}}
        for i, p in enumerate(params)
    ]


def tool_params(tools) -> dict[str, dict]:
    return {t["function"]["name"]: t["function"]["parameters"] for t in tools}


_seeds = st.integers(0, 2**31 - 1)
_strengths = st.floats(1.0, 4.0)


def assert_mostly_done(stats: Counter, floor: float = 0.8) -> None:
    total = sum(stats.values())
    assert stats["dead"] == 0, stats
    assert total and stats["done"] >= floor * total, stats


# ---------------------------------------------------------------------------
# Property tests with the real tokenizer
# ---------------------------------------------------------------------------


@slow
def test_json_schema_outputs_validate(smol):
    stats = Counter()

    @PROPERTY_SETTINGS
    @given(schema=object_schemas(), seed=_seeds, strength=_strengths)
    def run(schema, seed, strength):
        ids, status = walk(smol.compiler.json_schema(schema), strength * smol.closers, seed)
        stats[status] += 1
        if status == "done":
            validate(json.loads(smol.text(ids)), schema)

    run()
    assert_mostly_done(stats)


@slow
def test_json_object_outputs_are_objects(smol):
    stats = Counter()

    @PROPERTY_SETTINGS
    @given(seed=_seeds, strength=_strengths)
    def run(seed, strength):
        ids, status = walk(smol.compiler.json_object(), strength * smol.closers, seed)
        stats[status] += 1
        if status == "done":
            assert isinstance(json.loads(smol.text(ids)), dict)

    run()
    assert_mostly_done(stats)


@slow
def test_forced_calls_parse_and_validate(smol):
    stats, counts = Counter(), Counter()

    @PROPERTY_SETTINGS
    @given(tools=toolsets(), data=st.data(), seed=_seeds, strength=_strengths, sep=st.floats(0.0, 16.0))
    def run(tools, data, seed, strength, sep):
        names = [t["function"]["name"] for t in tools]
        allowed = data.draw(st.none() | st.lists(st.sampled_from(names), min_size=1, unique=True))
        parallel = data.draw(st.booleans())
        constraint = smol.compiler.tool_calls(tools, mode="forced", allowed=allowed, parallel=parallel)
        ids, status = walk(constraint, strength * smol.closers + sep * smol.newline, seed, cap=300)
        stats[status] += 1
        if status != "done":
            return
        calls = parse_calls(smol.text(ids))
        counts["multi" if len(calls) > 1 else "single"] += 1
        assert len(calls) >= 1
        if not parallel:
            assert len(calls) == 1
        for name, arguments in calls:
            assert name in (allowed or names)
            validate(arguments, tool_params(tools)[name])

    run()
    assert_mostly_done(stats, floor=0.7)
    assert counts["multi"] > 0, counts  # parallel calls really happen


@slow
def test_named_choice_always_calls_that_tool(smol):
    stats = Counter()

    @PROPERTY_SETTINGS
    @given(tools=toolsets(), data=st.data(), seed=_seeds, strength=_strengths)
    def run(tools, data, seed, strength):
        name = data.draw(st.sampled_from([t["function"]["name"] for t in tools]))
        constraint = smol.compiler.tool_calls(tools, mode="forced", allowed=[name], parallel=False)
        ids, status = walk(constraint, strength * smol.closers, seed, cap=300)
        stats[status] += 1
        if status == "done":
            [(called, arguments)] = parse_calls(smol.text(ids))
            assert called == name
            validate(arguments, tool_params(tools)[name])

    run()
    assert_mostly_done(stats, floor=0.7)


@slow
def test_auto_calls_after_the_marker_are_well_formed(smol):
    stats, counts = Counter(), Counter()

    @PROPERTY_SETTINGS
    @given(tools=toolsets(), seed=_seeds, strength=_strengths, lure=st.sampled_from([0.0, 8.0, 12.0]))
    def run(tools, seed, strength, lure):
        constraint = smol.compiler.tool_calls(tools, mode="auto")
        ids, status = walk(constraint, strength * smol.closers, seed, cap=300, lure=(smol.marker, lure))
        stats[status] += 1
        if status != "done":
            return
        raw = smol.raw(ids)
        start = raw.find(TOOL_CALL_OPEN.encode())
        counts["calls" if start >= 0 else "text"] += 1
        if start >= 0:
            for name, arguments in parse_calls(raw[start:].decode("utf-8")):
                validate(arguments, tool_params(tools)[name])

    run()
    assert_mostly_done(stats, floor=0.7)
    assert counts["calls"] > 0 and counts["text"] > 0, counts


@slow
def test_none_never_opens_a_call(smol):
    stats, near = Counter(), Counter()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]

    @PROPERTY_SETTINGS
    @given(seed=_seeds, lure=st.floats(4.0, 10.0))
    def run(seed, lure):
        # A strong lure toward spelling the marker: the mask alone must keep it out.
        constraint = smol.compiler.tool_calls(tools, mode="none")
        ids, status = walk(constraint, smol.closers, seed, lure=(smol.marker, lure))
        stats[status] += 1
        raw = smol.raw(ids)
        assert TOOL_CALL_OPEN.encode() not in raw
        near["near miss"] += b"<tool_call" in raw

    run()
    assert_mostly_done(stats)
    assert near["near miss"] > 0  # the walk got to the brink, and the mask held


@slow
def test_calls_or_json_answer(smol):
    stats, counts = Counter(), Counter()

    @PROPERTY_SETTINGS
    @given(tools=toolsets(), schema=object_schemas(), seed=_seeds, strength=_strengths, lure=st.sampled_from([0, 8]))
    def run(tools, schema, seed, strength, lure):
        constraint = smol.compiler.tool_calls_or_json(tools, schema)
        ids, status = walk(constraint, strength * smol.closers, seed, cap=300, lure=(smol.marker, lure))
        stats[status] += 1
        if status != "done":
            return
        text = smol.text(ids)
        if text.startswith(TOOL_CALL_OPEN):
            counts["calls"] += 1
            for name, arguments in parse_calls(text):
                validate(arguments, tool_params(tools)[name])
        else:
            counts["json"] += 1
            validate(json.loads(text), schema)

    run()
    assert_mostly_done(stats, floor=0.7)
    assert counts["calls"] > 0 and counts["json"] > 0, counts


# ---------------------------------------------------------------------------
# Exact texts with the real tokenizer
# ---------------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}


def accepts(smol: Smol, constraint: TokenConstraint, text: str) -> bool:
    """Whether `text` followed by the stop token is a complete output."""
    return feed(constraint, smol.encode(text) + [SMOL_EOS], SMOL_VOCAB) and constraint.is_terminated()


def test_the_tool_format_text_is_accepted(smol):
    call = format_tool_call("get_weather", {"city": "Paris", "days": 2})
    latin = tool("t", {**obj(née={"enum": ["é1", "\x800", "ÿF"]}, **{"\x80a": {"const": "café"}}), "required": ["née"]})
    latin_call = format_tool_call("t", {"née": "\x800", "\x80a": "café"})
    assert accepts(smol, smol.compiler.tool_calls([latin], mode="forced"), latin_call)
    assert not accepts(smol, smol.compiler.tool_calls([latin], mode="forced"), latin_call.replace("\x800", "\u0800"))
    qwen_style = f'{TOOL_CALL_OPEN}\n{{"name": "search", "arguments": {{"q": "ü \\"x\\""}}}}\n{TOOL_CALL_CLOSE}'
    two = call + CALL_SEPARATOR + qwen_style
    forced = lambda **kw: smol.compiler.tool_calls([WEATHER, SEARCH], mode="forced", **kw)  # noqa: E731
    assert accepts(smol, forced(), call)
    assert accepts(smol, forced(), qwen_style)
    assert accepts(smol, forced(), two)
    assert not accepts(smol, forced(parallel=False), two)
    assert not accepts(smol, forced(allowed=["search"]), call)
    assert not accepts(smol, forced(), "Sure! " + call)
    # compact form only: no whitespace variants
    assert not accepts(smol, forced(), call.replace('", "', '","'))
    # arguments follow the schema: required key, integer bound, no undeclared keys
    assert not accepts(smol, forced(), format_tool_call("get_weather", {"days": 2}))
    assert not accepts(smol, forced(), format_tool_call("get_weather", {"city": "P", "days": 0}))
    assert not accepts(smol, forced(), format_tool_call("get_weather", {"city": "P", "x": 1}))

    auto = lambda: smol.compiler.tool_calls([WEATHER, SEARCH], mode="auto")  # noqa: E731
    assert accepts(smol, auto(), "It is sunny.")
    assert accepts(smol, auto(), "Let me check.\n" + two)
    assert not accepts(smol, auto(), call + " Done.")
    assert not accepts(smol, auto(), '<tool_call>{"name": "nope", "arguments": {}}</tool_call>')

    none = smol.compiler.tool_calls([WEATHER], mode="none")
    assert not accepts(smol, none, "Calling " + call)
    assert accepts(smol, smol.compiler.tool_calls([WEATHER], mode="none"), "No <tool_ call here.")


def test_special_tokens_are_never_allowed(smol):
    constraint = smol.compiler.tool_calls([], mode="none")
    logits = torch.zeros(SMOL_VOCAB)
    assert constraint.process(logits)
    specials = [i for i, t in smol.tokenizer.added_tokens_decoder.items() if t.special and i != SMOL_EOS]
    assert specials and torch.isinf(logits[specials]).all()
    assert torch.isfinite(logits[SMOL_EOS]) and torch.isfinite(logits[smol.encode("Hi")]).all()


def test_unwritable_character_is_a_dead_end(smol):
    # A required constant the vocabulary cannot spell: reported as a dead end, not raised.
    constraint = smol.compiler.json_schema({"const": "\U00050000"})
    assert feed(constraint, smol.encode('"'), SMOL_VOCAB)
    logits = torch.zeros(SMOL_VOCAB)
    assert constraint.process(logits) is False
    assert torch.isinf(logits).all()


def test_compiler_is_cached_per_tokenizer(smol, smol_tokenizer):
    again = compiler_for(smol_tokenizer, vocab_size=SMOL_VOCAB, stop_token_ids=[SMOL_EOS])
    assert again is smol.compiler
    assert compiler_for(smol_tokenizer, vocab_size=SMOL_VOCAB + 64, stop_token_ids=[SMOL_EOS]) is not again


# ---------------------------------------------------------------------------
# Tokenizer-free: errors, dead ends, caching, masking mechanics
# ---------------------------------------------------------------------------


def tool(name: str, parameters: dict) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def obj(**props) -> dict:
    return {"type": "object", "properties": props}


# Refused by the schema checker before xgrammar sees the schema.
REFUSED_BY_CHECKER = [
    ("not", obj(x={"not": {"type": "string"}})),
    ("if", obj(x={"type": "integer", "if": {"minimum": 5}, "then": {"maximum": 6}})),
    ("uniqueItems", obj(x={"type": "array", "items": {"type": "integer"}, "uniqueItems": True})),
    ("contains", obj(x={"type": "array", "contains": {"const": 1}})),
    ("dependentRequired", {**obj(a={"type": "integer"}, b={"type": "integer"}), "dependentRequired": {"a": ["b"]}}),
    ("allOf", obj(x={"allOf": [{"type": "integer"}, {"maximum": 5}]})),
    ("oneOf", obj(x={"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]})),
    ("$ref", obj(x={"$ref": "https://example.com/schema.json"})),
    ("$ref", obj(x={"$ref": "#/$defs/Missing"})),
    ("pattern", obj(x={"type": "string", "pattern": "^(?=a)a+$"})),
    ("items", obj(x={"type": "array", "items": [{"type": "integer"}]})),
    ("multipleOf", obj(x={"type": "number", "multipleOf": 0.5})),
    ("exclusiveMinimum", obj(x={"type": "number", "minimum": 1, "exclusiveMinimum": True})),
    ("required", {**obj(a={"type": "integer"}), "required": ["a", "b"]}),
    ("properties", {"type": "object", "properties": ["a"]}),
]
UNSUPPORTED = REFUSED_BY_CHECKER + [
    # errors that come from xgrammar itself, translated
    ("enum", obj(x={"enum": []})),
    ("minLength", obj(x={"type": "string", "minLength": 5, "maxLength": 2})),
    ("type", obj(x={"type": "text"})),
]


@pytest.mark.parametrize("keyword,params", UNSUPPORTED, ids=[f"{k}-{i}" for i, (k, _) in enumerate(UNSUPPORTED)])
def test_unsupported_schema_fails_at_compile_naming_tool_and_keyword(keyword, params):
    compiler = tiny_compiler()
    good = tool("fine", obj(q={"type": "string"}))
    for mode in ("forced", "auto"):
        with pytest.raises(ValueError, match=rf"tool 'bad_tool'.*'{re.escape(keyword)}'") as err:
            compiler.tool_calls([good, tool("bad_tool", params)], mode=mode)
        assert "fine" not in str(err.value)
    with pytest.raises(ValueError, match=rf"schema 'Report'.*'{re.escape(keyword)}'"):
        compiler.json_schema({**params, "title": "Report"})


@pytest.mark.parametrize("keyword,params", REFUSED_BY_CHECKER, ids=[k for k, _ in REFUSED_BY_CHECKER])
def test_schema_checker_refuses_naming_owner_keyword_and_path(keyword, params):
    with pytest.raises(ValueError, match=rf"^tool 'x'.*'{re.escape(keyword)}' at #") as err:
        check_schema(params, "tool 'x'")
    with pytest.raises(ValueError, match=re.escape(str(err.value))):
        prepare_schema(params, "tool 'x'")


def test_schema_checker_passes_what_is_enforced():
    pet = {
        "oneOf": [
            {**obj(kind={"const": "cat"}, lives={"type": "integer"}), "required": ["kind"]},
            {**obj(kind={"const": "dog"}, good={"type": "boolean"}), "required": ["kind"]},
        ]
    }
    schema = {
        **obj(
            n={"type": "integer", "minimum": 0, "multipleOf": 2},
            tags={"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}, "maxItems": 3},
            pet={"$ref": "#/$defs/Pet"},
            either={"oneOf": [{"type": "string"}, {"type": "integer"}]},
        ),
        "required": ["n"],
        "$defs": {"Pet": pet},
    }
    assert prepare_schema(schema, "schema") is schema
    assert prepare_schema(True, "schema") == {}
    with pytest.raises(ValueError, match="schema 'S': the schema `false` admits no value"):
        prepare_schema(False, "schema 'S'")
    with pytest.raises(ValueError, match=r"at #/properties/a must be an object or a boolean"):
        check_schema(obj(a=3))


def test_compile_error_names_the_keyword_and_drops_the_log_prefix():
    err = compile_error("schema 'R'", RuntimeError("[10:01:02] json_schema.cc:99: minLength 5 > maxLength 2\nmore"))
    assert str(err) == "schema 'R': xgrammar cannot compile the schema (keyword 'minLength'): minLength 5 > maxLength 2"
    assert str(compile_error("tools", RuntimeError(""))) == "tools: xgrammar cannot compile the schema: RuntimeError"


def test_schema_checker_imports_without_xgrammar_or_the_package():
    # Loaded from its file alone, with any import of xgrammar failing: the checker
    # needs neither xgrammar nor the rest of the package.
    code = """
import importlib.util, sys
sys.modules["xgrammar"] = None
spec = importlib.util.spec_from_file_location("schema_alone", sys.argv[1])
schema = importlib.util.module_from_spec(spec)
spec.loader.exec_module(schema)
assert schema.prepare_schema({"type": "object"}, "schema") == {"type": "object"}
assert "torch" not in sys.modules and "langchain_attention_buckets" not in sys.modules
"""
    path = os.path.join(ROOT, "langchain_attention_buckets", "constrain", "schema.py")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_tool_validation_runs_without_xgrammar(monkeypatch):
    monkeypatch.setitem(sys.modules, "xgrammar", None)  # any import of xgrammar now fails
    weather = tool("get_weather", obj(city={"type": "string"}))
    assert select_tools([weather], None) == [("get_weather", obj(city={"type": "string"}))]
    with pytest.raises(ValueError, match="tool names must be unique; repeated: get_weather$"):
        select_tools([weather, weather], None)
    with pytest.raises(ValueError, match="repeated: a, b$"):
        check_unique_tool_names(["a", "b", "c", "b", "a"])


def test_calls_or_json_accepts_exactly_one_of_the_two():
    compiler = tiny_compiler()
    weather = tool("get_weather", {**obj(city={"type": "string"}), "required": ["city"]})
    answer = {"title": "Answer", **obj(text={"type": "string"}), "required": ["text"]}
    make = lambda: compiler.tool_calls_or_json([weather], answer)  # noqa: E731
    call = format_tool_call("get_weather", {"city": "Paris"})
    assert feed_text(make(), call)
    assert feed_text(make(), call + CALL_SEPARATOR + call)
    assert feed_text(make(), '{"text": "done"}')
    assert not feed_text(make(), "Hello")
    assert not feed_text(make(), call + '{"text": "done"}')
    assert not feed_text(make(), '{"city": "Paris"}')
    single = compiler.tool_calls_or_json([weather], answer, parallel=False)
    assert not feed_text(single, call + CALL_SEPARATOR + call)
    with pytest.raises(ValueError, match=r"schema 'Answer'.*'not'"):
        compiler.tool_calls_or_json([weather], {**answer, "not": {"type": "null"}})
    with pytest.raises(ValueError, match=r"tool 'bad'.*'if'"):
        compiler.tool_calls_or_json([tool("bad", {**obj(), "if": {}})], answer)
    # no tool to call: just the answer
    assert feed_text(compiler.tool_calls_or_json([weather], answer, allowed=[]), '{"text": "x"}')


def test_tool_list_errors():
    compiler = tiny_compiler()
    weather = tool("get_weather", obj(city={"type": "string"}))
    with pytest.raises(ValueError, match="unique"):
        compiler.tool_calls([weather, weather], mode="auto")
    with pytest.raises(ValueError, match="not among the tools"):
        compiler.tool_calls([weather], mode="forced", allowed=["search"])
    with pytest.raises(ValueError, match="at least one"):
        compiler.tool_calls([], mode="forced")
    with pytest.raises(ValueError, match="mode"):
        compiler.tool_calls([weather], mode="required")
    with pytest.raises(ValueError, match="object schema"):
        compiler.tool_calls([tool("f", {"type": "string"})], mode="auto")
    with pytest.raises(ValueError, match="OpenAI-format"):
        compiler.tool_calls(["get_weather"], mode="auto")


def test_supported_constructs_compile_and_accept_valid_text():
    compiler = tiny_compiler()
    # A pydantic-style discriminated union: oneOf branches told apart by a const property.
    pet = {
        "$defs": {
            "Cat": {**obj(kind={"const": "cat"}, lives={"type": "integer"}), "required": ["kind"]},
            "Dog": {**obj(kind={"const": "dog"}, good={"type": "boolean"}), "required": ["kind"]},
            "Node": {**obj(next={"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}), "required": ["next"]},
        },
        **obj(
            pet={"oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}]},
            chain={"$ref": "#/$defs/Node"},
            when={"type": "string", "format": "date"},
            code={"type": "string", "pattern": "^[A-Z]{2}[0-9]$"},
            size={"type": ["integer", "null"], "exclusiveMaximum": 10},
            tags={"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "number"}},
            extra={"type": "object", "additionalProperties": {"type": "integer"}},
        ),
    }
    value = {
        "pet": {"kind": "dog", "good": True},
        "chain": {"next": {"next": None}},
        "when": "2024-05-06",
        "code": "AB1",
        "size": 9,
        "tags": ["a", 1.5, -2],
        "extra": {"k": 1},
    }
    validate(value, pet)
    text = json.dumps(value)
    assert feed_text(compiler.json_schema(pet), text)
    assert feed_text(compiler.tool_calls([tool("t", pet)], mode="forced"), format_tool_call("t", value))
    assert not feed_text(compiler.json_schema(pet), text.replace('"dog"', '"cow"'))


def feed_text(constraint: GrammarConstraint, text: str) -> bool:
    """Feed `text` char by char through the tiny vocabulary, then the stop token."""
    ids = [ord(c) - 31 if c != "\n" else 96 for c in text]
    return feed(constraint, ids + [0], 99) and constraint.is_terminated()


def test_granite_calls_are_one_list_after_the_marker(smol):
    # <|tool_call|> is plain text in this tokenizer: the grammar spells it
    from langchain_attention_buckets.constrain.grammar import call_syntax
    from langchain_attention_buckets.formats import get

    syntax, fmt = call_syntax("granite"), get("granite")
    paris = {"name": "get_weather", "arguments": {"city": "Paris"}}
    rust = {"name": "search", "arguments": {"q": "rust"}}
    one, two = fmt.format_calls([paris]), fmt.format_calls([paris, rust])
    grammar = lambda mode, **kw: smol.compiler.tool_calls([WEATHER, SEARCH], mode=mode, syntax=syntax, **kw)  # noqa: E731
    assert one.startswith("<|tool_call|>[{") and two.count("<|tool_call|>") == 1
    assert accepts(smol, grammar("forced"), one) and accepts(smol, grammar("forced"), two)
    assert not accepts(smol, grammar("forced", parallel=False), two)
    assert not accepts(smol, grammar("forced"), "Sure! " + one)
    assert not accepts(smol, grammar("forced"), one[len("<|tool_call|>"):])  # the marker is required
    assert not accepts(smol, grammar("forced"), format_tool_call("get_weather", {"city": "Paris"}))  # not Hermes blocks
    assert accepts(smol, grammar("auto"), "It is sunny.") and accepts(smol, grammar("auto"), "Let me check.\n" + two)
    assert not accepts(smol, grammar("auto"), one + " Done.")
    assert not accepts(smol, grammar("auto"), '<|tool_call|>[{"name": "get_weather", "arguments": {}}]')  # constrained
    assert accepts(smol, grammar("none"), "It is sunny.") and not accepts(smol, grammar("none"), "Sure. " + one)


def test_dead_end_is_reported_not_raised():
    # A vocabulary that can open an object but can spell neither a key nor "}".
    compiler = tiny_compiler(["</s>", "{", "a", " "])
    constraint = compiler.json_object()
    logits = torch.zeros(4)
    assert constraint.process(logits)
    assert torch.isfinite(logits).tolist() == [False, True, False, False]
    constraint.accept(1)
    logits = torch.zeros(4)
    assert constraint.process(logits) is False
    assert torch.isinf(logits).all()


def test_terminated_grammar_allows_nothing():
    constraint = tiny_compiler().json_schema({"const": 1})
    assert feed_text(constraint, "1")
    assert constraint.is_terminated()
    logits = torch.zeros(99)
    assert constraint.process(logits) is False
    assert torch.isinf(logits).all()
    with pytest.raises(ValueError):
        constraint.accept(0)


def test_disallowed_token_raises():
    constraint = tiny_compiler().json_object()
    with pytest.raises(ValueError, match="not allowed"):
        constraint.accept(ord("x") - 31)
    constraint.accept(ord("{") - 31)  # the matcher state is unchanged by the refusal


def test_protocol_and_mask_mechanics():
    constraint = tiny_compiler().json_object()
    assert isinstance(constraint, TokenConstraint)
    padded = torch.zeros(99 + 30)  # a padded lm_head: ids past the vocabulary never allowed
    assert constraint.process(padded)
    assert torch.isinf(padded[99:]).all()
    assert torch.isfinite(padded).nonzero().flatten().tolist() == [ord("{") - 31]
    with pytest.raises(ValueError, match="1-D"):
        constraint.process(torch.zeros(2, 99))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_mask_is_the_same_for_every_dtype(dtype):
    compiler = tiny_compiler()
    reference = torch.zeros(99)
    compiler.json_schema(obj(a={"type": "integer"})).apply_mask(reference)
    logits = torch.zeros(99, dtype=dtype)
    compiler.json_schema(obj(a={"type": "integer"})).apply_mask(logits)
    assert torch.equal(torch.isfinite(logits), torch.isfinite(reference))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_cuda_mask_matches_cpu(dtype):
    compiler = tiny_compiler()
    schema = obj(a={"type": "integer"}, b={"type": "string"})
    cpu, gpu = compiler.json_schema(schema), compiler.json_schema(schema)
    for token in [ord(c) - 31 for c in '{"a": 1']:
        reference = torch.zeros(99)
        logits = torch.zeros(99, dtype=dtype, device="cuda")
        assert cpu.process(reference) and gpu.process(logits)
        assert torch.equal(torch.isfinite(logits).cpu(), torch.isfinite(reference))
        cpu.accept(token)
        gpu.accept(token)


def test_compiled_grammars_are_cached_and_bounded():
    compiler = tiny_compiler(cache_size=2)
    weather = tool("get_weather", obj(city={"type": "string"}))
    compiler.tool_calls([weather], mode="auto")
    assert compiler.cache_info()[:3] == (0, 1, 1)
    # Same spec (descriptions do not shape the grammar): a hit, with a fresh matcher.
    described = {"type": "function", "function": {**weather["function"], "description": "Weather."}}
    a = compiler.tool_calls([described], mode="auto")
    b = compiler.tool_calls([weather], mode="auto")
    assert compiler.cache_info()[:3] == (2, 1, 1)
    a.accept(ord("H") - 31)
    assert feed_text(b, "Hi")  # b is unaffected by a
    # "none" ignores the tools and parallel: one grammar.
    compiler.tool_calls([weather], mode="none")
    compiler.tool_calls([], mode="none", parallel=False)
    assert compiler.cache_info()[:3] == (3, 2, 2)
    # Bounded: a third spec evicts the least recently used (the auto one).
    compiler.json_object()
    assert compiler.cache_info().size == 2
    compiler.tool_calls([weather], mode="auto")
    assert compiler.cache_info().misses == 4


def test_strided_row_is_masked_in_place():
    compiler = tiny_compiler()
    reference = torch.zeros(99)
    compiler.json_object().apply_mask(reference)
    table = torch.zeros(99, 3)
    assert compiler.json_object().apply_mask(table[:, 1])  # a non-contiguous column
    assert torch.equal(torch.isfinite(table[:, 1]), torch.isfinite(reference))
    assert torch.isfinite(table[:, 0]).all() and torch.isfinite(table[:, 2]).all()
