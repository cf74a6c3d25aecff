"""Streamed tool calls: the name first, then argument text as it is generated.

The parser's events and the chunks built from them depend only on the text, never on how
it was split into tokens: the stream merged by langchain-core equals the invoked message
at every split. Invalid calls stay invalid in the merged stream and carry their reason.

Where a model answers twice (streamed and invoked: the second from the prefix cache), the two
runs are compared by their tokens up to the first near-tie (``agreement.assert_runs_agree``),
and the messages where the tokens agree throughout.
"""

from __future__ import annotations

import itertools
import json

import pytest
from agreement import LOGIT_TOLERANCE, Runs, assert_runs_agree, tiny_tolerance
from conftest import CLOSING, TINY_BASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool
from langchain_core.utils.json import parse_partial_json

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.chat.call import Call as _Call
from langchain_attention_buckets.chat.call import collect as _collect
from langchain_attention_buckets.engine import Request, Result, TokenEvent
from langchain_attention_buckets.text.parse import (
    ArgsDelta,
    CallStart,
    ParsedCall,
    ToolCallParser,
    parse,
)

SCHEMAS = {
    "get_weather": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
    "echo": {"type": "object", "properties": {"text": {"type": "string"}}},
}


def call_text(body: str) -> str:
    return f"<tool_call>{body}</tool_call>"


OSLO = call_text('{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}')
TEXTS = {
    "text and a call": "Let me check. " + OSLO,
    "parallel calls": OSLO + "\n" + call_text('\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n'),
    "coerced value": call_text('{"name": "get_weather", "arguments": {"city": "Oslo", "days": "3"}}'),
    "marker inside a string": call_text('{"name": "echo", "arguments": {"text": "a </tool_call> b\\" {"}}') + " after",
    "schema violated": call_text('{"name": "get_weather", "arguments": {"days": 2}}'),
    "unknown tool": call_text('{"name": "nope", "arguments": {"x": [1, {"y": "}"}]}}'),
    "bad JSON": call_text('{"name": "get_weather", "arguments": {"city": "Oslo",}}'),
    "string arguments": call_text('{"name": "get_weather", "arguments": "{\\"city\\": \\"Lima\\"}"}'),
    "other key order": call_text('{"arguments": {"city": "Oslo"}, "name": "get_weather"}'),
    "repeated key": call_text('{"name": "get_weather", "arguments": {"city": "A"}, "arguments": {"city": "B"}}'),
    "cut in a string": "ok " + OSLO + '<tool_call>{"name": "get_weather", "arguments": {"city": "Pa\\',
    "cut in the name": '<tool_call>{"name": "get_wea',
    "cut after a marker in a string": '<tool_call>{"name": "echo", "arguments": {"text": "x</tool_call> tail',
    "empty call": "<tool_call></tool_call> end",
}


def events_of(pieces: list[str]) -> list:
    parser = ToolCallParser(SCHEMAS)
    events = [e for p in pieces for e in parser.feed(p)]
    return events + list(parser.finish("max_tokens reached"))


def fake_call() -> _Call:
    return _Call(engine=None, request=Request((1,), (1.0,)), parser=ToolCallParser(SCHEMAS), model_name="m", bases=(1.0,))


def chunks_of(pieces: list[str], finish_reason: str = "length") -> list:
    call = fake_call()
    chunks = [call.chunk(TokenEvent(0, p)) for p in pieces]
    text = "".join(pieces)
    return chunks + [call.last(Result([], text, finish_reason, 3, len(pieces)))]


def merged(chunks) -> AIMessageChunk:
    return add_up([c.message for c in chunks])


def add_up(messages) -> AIMessageChunk:
    out = messages[0]
    for m in messages[1:]:
        out = out + m
    return out


def without_ids(msg) -> tuple:
    """What must agree between two runs (call ids are fresh per call)."""
    strip = lambda calls: [{k: v for k, v in c.items() if k != "id"} for c in calls]
    return msg.content, strip(msg.tool_calls), strip(msg.invalid_tool_calls)


def splits(text: str):
    yield [text]
    yield list(text)
    for i in range(1, len(text)):
        yield [text[:i], text[i:]]


# ---- the parser ----------------------------------------------------------------------------------


def test_the_name_comes_first_then_argument_text_while_the_call_is_open():
    text = call_text('{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}')
    close = text.index("</tool_call>")
    parser = ToolCallParser(SCHEMAS)
    seen = [(i, e) for i, ch in enumerate(text) for e in parser.feed(ch)]
    start = [i for i, e in seen if isinstance(e, CallStart)]
    deltas = [(i, e.text) for i, e in seen if isinstance(e, ArgsDelta)]
    assert start == [text.index('"get_weather"') + len('"get_weather"') - 1]  # as the name's string closes
    assert len([i for i, _ in deltas if i < close]) > 10  # argument text before the call closed
    assert "".join(t for _, t in deltas) == '{"city": "Oslo", "days": 2}'
    assert all(i < close or t == "}" for i, t in deltas)  # only the last "}" waits for the close


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_events_are_the_same_at_every_split(name):
    text = TEXTS[name]
    whole = events_of([text])
    for pieces in splits(text):
        got = events_of(pieces)
        # text pieces may split differently; everything else is identical
        calls = lambda evs: [e for e in evs if isinstance(e, (CallStart, ParsedCall))]
        args = lambda evs: {i: "".join(e.text for e in evs if isinstance(e, ArgsDelta) and e.index == i) for i in range(5)}
        assert calls(got) == calls(whole) and args(got) == args(whole), pieces


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_argument_text_loads_back_as_the_parsed_call(name):
    """Valid calls: the text loads to exactly the arguments (coercion included); invalid ones:
    langchain-core's partial JSON reading never makes them a JSON object."""
    events = events_of([TEXTS[name]])
    for call in (e for e in events if isinstance(e, ParsedCall)):
        args = "".join(e.text for e in events if isinstance(e, ArgsDelta) and e.index == call.index)
        if call.valid:
            assert json.loads(args) == call.arguments and parse_partial_json(args) == call.arguments
        else:
            assert args and not isinstance(parse_partial_json(args) if _parses(args) else None, dict)


def _parses(text: str) -> bool:
    try:
        parse_partial_json(text)
    except json.JSONDecodeError:
        return False
    return True


def test_argument_text_of_an_open_call_is_never_the_closing_marker():
    text = TEXTS["marker inside a string"]
    args = "".join(e.text for e in events_of(list(text)) if isinstance(e, ArgsDelta))
    assert args == '{"text": "a </tool_call> b\\" {"}'  # the marker inside the string belongs to the argument
    cut = TEXTS["cut after a marker in a string"]
    events = events_of(list(cut))
    assert [e.raw for e in events if isinstance(e, ParsedCall)] == ['{"name": "echo", "arguments": {"text": "x']
    assert "tail" not in "".join(e.text for e in events if isinstance(e, ArgsDelta))


def test_an_unclosed_call_says_why_the_text_ended():
    (call,) = parse('<tool_call>{"name": "get_weather", "arguments": {"city": "Pa', SCHEMAS)[1]
    assert call.error == "the text ended before the call closed with </tool_call>"
    (call,) = [e for e in events_of(['<tool_call>{"name": "get_weather"']) if isinstance(e, ParsedCall)]
    assert call.error.startswith("max_tokens reached before the call closed")


def test_a_repeated_key_makes_the_call_invalid():
    (call,) = parse(TEXTS["repeated key"], SCHEMAS)[1]
    assert not call.valid and "repeats the key 'arguments'" in call.error


# ---- chunks: the merged stream equals the invoked message -----------------------------------------


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_merged_stream_equals_the_collected_message_at_every_split(name):
    text = TEXTS[name]
    content, calls = parse(text, SCHEMAS)
    expected = _collect(chunks_of([text])).generations[0].message
    assert expected.content == content
    assert [(c["name"], c["args"]) for c in expected.tool_calls] == [(c.name, c.arguments) for c in calls if c.valid]
    assert [c["name"] for c in expected.invalid_tool_calls] == [c.name for c in calls if not c.valid]
    assert all(c["error"] for c in expected.invalid_tool_calls)
    for pieces in splits(text):
        chunks = chunks_of(pieces)
        assert without_ids(merged(chunks)) == without_ids(expected)[:2] + (
            [{**c, "error": None} for c in without_ids(expected)[2]],  # langchain-core's merge drops error
        )
        assert without_ids(_collect(chunks).generations[0].message) == without_ids(expected), pieces


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(TEXTS)), st.lists(st.integers(0, 200), max_size=12))
def test_merged_stream_equals_the_whole_parse_at_random_splits(name, cuts):
    text = TEXTS[name]
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    pieces = [text[a:b] for a, b in itertools.pairwise(points)]
    expected = _collect(chunks_of([text])).generations[0].message
    assert without_ids(_collect(chunks_of(pieces)).generations[0].message) == without_ids(expected)


def test_each_call_streams_its_name_and_id_once_then_argument_deltas():
    text = TEXTS["parallel calls"]
    chunks = chunks_of(list(text), finish_reason="stop")
    parts = [tc for c in chunks for tc in c.message.tool_call_chunks]
    for index in (0, 1):
        mine = [tc for tc in parts if tc["index"] == index]
        assert mine[0]["name"] == "get_weather" and mine[0]["id"].startswith("call_") and mine[0]["args"] == ""
        assert all(tc["name"] is None and tc["id"] is None for tc in mine[1:]) and len(mine) > 10
    msg = merged(chunks)
    assert [c["args"]["city"] for c in msg.tool_calls] == ["Oslo", "Rome"]
    assert len({c["id"] for c in msg.tool_calls}) == 2


def test_the_reason_of_an_invalid_call_travels_in_the_last_chunk():
    text = TEXTS["cut in a string"]
    chunks = chunks_of(list(text), finish_reason="length")
    stream = merged(chunks)
    (bad,) = stream.invalid_tool_calls
    assert bad["error"] is None  # langchain-core rebuilds invalid calls from chunks without it ...
    reason = stream.response_metadata["tool_call_errors"][bad["id"]]  # ... so it rides in the metadata
    assert reason.startswith("max_tokens reached before the call closed")
    (collected,) = _collect(chunks).generations[0].message.invalid_tool_calls
    assert collected == {**bad, "error": reason}
    assert stream.tool_calls[0]["args"] == {"city": "Oslo", "days": 2}


@pytest.mark.parametrize(
    "name, reason",
    [
        ("bad JSON", "the call is not valid JSON"),
        ("schema violated", "the arguments do not match the schema of 'get_weather': 'city' is a required property"),
        ("unknown tool", "unknown tool 'nope'"),
    ],
)
def test_invoke_says_why_a_call_is_invalid(name, reason):
    (bad,) = _collect(chunks_of([TEXTS[name]], "stop")).generations[0].message.invalid_tool_calls
    assert reason in bad["error"]


def test_raw_argument_text_is_kept_in_an_invalid_call():
    (bad,) = _collect(chunks_of(list(TEXTS["schema violated"]), "stop")).generations[0].message.invalid_tool_calls
    assert bad["name"] == "get_weather" and bad["args"].startswith('{"days": 2}')


# ---- the chat model ------------------------------------------------------------------------------------


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@pytest.fixture
def llm(tiny_chat_dir):
    return ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=12, logit_bias=CLOSING)


class Tokens(BaseCallbackHandler):
    def __init__(self):
        self.tokens: list[str] = []
        self.chunks: list = []

    def on_llm_new_token(self, token, *, chunk=None, **kwargs):
        self.tokens.append(token)
        self.chunks.append(chunk)


def agree(runs: Runs, what: str, tolerance=tiny_tolerance) -> bool:
    """The two runs since the last take agree token for token (True), or part at a near-tie."""
    first, second = runs.take()
    return assert_runs_agree(second, first, tolerance(first), what) is None


def test_a_forced_call_streams_its_arguments_and_adds_up_to_invoke(llm, monkeypatch):
    runs = Runs(monkeypatch)
    bound = llm.bind_tools([add], tool_choice="any")
    chunks = list(bound.stream("What is 2 + 3?", max_tokens=80))
    with_args = [c for c in chunks if any(tc["args"] for tc in c.tool_call_chunks)]
    assert len(with_args) > 3  # argument text arrives over many chunks, not in one
    first = next(tc for c in chunks for tc in c.tool_call_chunks)
    assert first["name"] == "add" and first["id"] and first["args"] == ""
    msg = bound.invoke("What is 2 + 3?", max_tokens=80)
    assert msg.tool_calls
    if agree(runs, "invoked (cached) vs streamed"):
        assert without_ids(add_up(chunks)) == without_ids(msg)


def test_a_call_cut_by_max_tokens_is_invalid_with_the_reason():
    """A call cut by the budget (free decoding: with a grammar the call closes in time) is invalid
    with its reason, the same in the collected message and in the summed stream."""
    chunks = _cut_call_chunks()
    msg = _collect(chunks).generations[0].message
    (bad,) = msg.invalid_tool_calls
    assert msg.tool_calls == [] and bad["error"].startswith("max_tokens reached before the call closed")
    stream = add_up([c.message for c in chunks])
    assert stream.invalid_tool_calls[0]["args"] == bad["args"]
    assert list(stream.response_metadata["tool_call_errors"].values()) == [bad["error"]]


async def test_astream_adds_up_to_ainvoke_with_a_call(llm, monkeypatch):
    runs = Runs(monkeypatch)
    bound = llm.bind_tools([add], tool_choice="any")
    stream = None
    async for c in bound.astream("add 4 and 5", max_tokens=80):
        stream = c if stream is None else stream + c
    msg = await bound.ainvoke("add 4 and 5", max_tokens=80)
    assert msg.tool_calls
    if agree(runs, "ainvoked (cached) vs astreamed"):
        assert without_ids(stream) == without_ids(msg)


@pytest.mark.parametrize("streaming", [None, True])
def test_callbacks_see_the_chunks_text_not_the_call_markup(tiny_chat_dir, streaming):
    fields = {} if streaming is None else {"streaming": streaming}
    llm = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, logit_bias=CLOSING, **fields)
    h = Tokens()
    msg = llm.bind_tools([add], tool_choice="any").invoke("What is 2 + 3?", max_tokens=80, config={"callbacks": [h]})
    assert msg.tool_calls and "<tool_call>" not in "".join(h.tokens)
    if not streaming:
        return
    assert len(h.tokens) >= msg.usage_metadata["output_tokens"]
    assert "".join(h.tokens) == msg.content == ""  # the call is in tool_call_chunks, not in the text
    assert h.tokens == [c.message.content for c in h.chunks]
    assert any(tc["args"] for c in h.chunks for tc in c.message.tool_call_chunks)


def test_streaming_decides_whether_invoke_calls_back_per_token(tiny_chat_dir):
    def tokens(**fields) -> tuple[list[str], str]:
        llm = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=12, **fields)
        h = Tokens()
        return h.tokens, llm.invoke("Tell me a story", config={"callbacks": [h]}).content

    per_token, content = tokens(streaming=True)
    assert len(per_token) > 5 and "".join(per_token) == content
    assert tokens()[0] == [] and tokens(streaming=False)[0] == []  # like ChatOpenAI: no per-token callbacks


def test_stream_still_streams_by_default_and_streaming_false_turns_it_off(tiny_chat_dir):
    kw = {"model": tiny_chat_dir, "dtype": "float32", "bases": TINY_BASES, "max_tokens": 12}
    assert len(list(ChatAttentionBuckets(**kw).stream("Tell me a story"))) > 5
    assert len(list(ChatAttentionBuckets(**kw, streaming=False).stream("Tell me a story"))) == 1


def _cut_call_chunks():
    """The chunks of a forced call cut by max_tokens (free decoding: a grammar closes it in time)."""
    parser = ToolCallParser({"add": add.args_schema.model_json_schema()})
    call = _Call(engine=None, request=Request((1,), (1.0,)), parser=parser, model_name="m", bases=(1.0,))
    text = '<tool_call>{"name": "add", "arguments": {"a": 2, "b'
    return [call.chunk(TokenEvent(0, ch)) for ch in text] + [call.last(Result([], text, "length", 3, len(text)))]


def test_streaming_true_invoke_keeps_the_reason_of_an_invalid_call(tiny_chat_dir, monkeypatch):
    llm = ChatAttentionBuckets(
        model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, logit_bias=CLOSING, streaming=True
    )
    monkeypatch.setattr(ChatAttentionBuckets, "_stream", lambda self, *a, **k: iter(_cut_call_chunks()))
    msg = llm.bind_tools([add], tool_choice="any").invoke("What is 2 + 3?", max_tokens=40)
    assert msg.invalid_tool_calls[0]["error"].startswith("max_tokens reached before the call closed")


@pytest.mark.embedded
def test_embedded_stream_adds_up_to_invoke_with_a_call(monkeypatch):
    runs = Runs(monkeypatch)
    llm = ChatAttentionBuckets(bases=[100000.0, 180000.0], max_tokens=40).bind_tools([add], tool_choice="add")
    stream = None
    n_args = 0
    for c in llm.stream("What is 12 plus 30?"):
        n_args += any(tc["args"] for tc in c.tool_call_chunks)
        stream = c if stream is None else stream + c
    msg = llm.invoke("What is 12 plus 30?")
    assert msg.tool_calls
    if agree(runs, "invoked (cached) vs streamed", lambda run: LOGIT_TOLERANCE[run[0].loaded.dtype]):
        assert without_ids(stream) == without_ids(msg)
    assert n_args > 3 and set(msg.tool_calls[0]["args"]) == {"a", "b"}
