"""ChatAttentionBuckets on a tiny random Llama (with the embedded model's tokenizer and template).

A random model writes nonsense, which is what these tests want: every property that
holds for nonsense holds because the package makes it hold (grammar, parser, plumbing).

Two answers to the same call (streamed and invoked, batched and alone, cold and cached) are two
computations: their engine runs are compared token by token up to the first near-tie
(``agreement.assert_runs_agree``), their text where the tokens agree throughout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Literal

import pytest
import torch
from agreement import TINY_TOLERANCE, Runs, assert_greedy_agrees, assert_runs_agree, reference_logits, tiny_tolerance
from conftest import CLOSING, TINY_BASES
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

import langchain_attention_buckets.engine.loading as loading
from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.chat.call import Call as _Call
from langchain_attention_buckets.chat.call import collect as _collect
from langchain_attention_buckets.chat.model import normalize_tool_choice, to_chat_dicts
from langchain_attention_buckets.engine import Request, Result, TokenEvent


@pytest.fixture
def llm(tiny_chat_dir):
    return ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=12, logit_bias=CLOSING)


def agree(got, want, what: str) -> bool:
    """The two engine runs agree token for token (True), or part at a near-tie (False)."""
    return assert_runs_agree(got, want, tiny_tolerance(want), what) is None


def agree_by_prompt(got: dict, want: dict, what: str) -> list[bool]:
    """``agree`` for each prompt of ``want`` (``Runs.take_by_prompt``), in its order."""
    assert got.keys() == want.keys()
    return [agree(got[p], want[p], f"{what}, call {i}") for i, p in enumerate(want)]


class GetWeather(BaseModel):
    """Get the current weather in a city."""

    city: str = Field(description="City name")
    days: int = Field(description="Days of forecast")


class Unit(TypedDict):
    """Convert a length."""

    value: float
    unit: Literal["m", "km", "mi"]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def lookup(order_id: str) -> dict:
    """Look up an order by id.

    Args:
        order_id: the order id, like A1001.
    """
    return {}


OPENAI_DICT = {
    "type": "function",
    "function": {
        "name": "echo",
        "description": "Echo a text.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
}
ALL_TOOLS = [GetWeather, Unit, add, lookup, OPENAI_DICT]
ALL_NAMES = ["GetWeather", "Unit", "add", "lookup", "echo"]


# ---- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("bases", "best", "'best'.*'paper', 'auto'"),
        ("bases", [], "empty"),
        ("bases", [1e4, -1.0], "-1"),
        ("bases", [float("nan")], "nan"),
        ("bases", [1.0] * 33, "32"),
        ("aggregation", "median", "median"),
        ("temperature", -0.5, "temperature=-0.5"),
        ("top_p", 1.5, "top_p=1.5"),
        ("top_k", 0, "top_k=0"),
        ("max_tokens", 0, "max_tokens=0"),
        ("device", "tpu", "'tpu'"),
        ("dtype", "int8", "'int8'"),
        ("n_buckets", 40, "n_buckets=40"),
    ],
)
def test_bad_settings_raise_at_construction(field, value, match):
    with pytest.raises(ValueError, match=match):
        ChatAttentionBuckets(**{field: value})


def test_construction_is_cheap_and_weights_are_shared(tiny_chat_dir, monkeypatch):
    calls = []
    real = loading._load
    monkeypatch.setattr(loading, "_load", lambda spec: calls.append(spec) or real(spec))
    a = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", temperature=0.3)
    b = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES)
    assert calls == []  # nothing loaded yet
    assert a.load().model is b.load().model
    assert len(calls) <= 1


def test_ls_params_profile_and_serialisation(llm):
    params = llm._get_ls_params(stop=["x"])
    assert params["ls_provider"] == "attention_buckets" and params["ls_model_type"] == "chat"
    assert params["ls_stop"] == ["x"] and params["ls_max_tokens"] == 12
    assert llm._get_ls_params(model="other")["ls_model_name"] == "other"
    assert llm.profile["tool_calling"] and llm.profile["tool_choice"] and llm.profile["structured_output"]
    from langchain_core.load import dumpd, load

    again = load(dumpd(llm), valid_namespaces=["langchain_attention_buckets"], allowed_objects=[ChatAttentionBuckets])
    assert again.bases == llm.bases and again.model == llm.model


# ---- calls --------------------------------------------------------------------------------


def test_invoke_reports_usage_and_metadata(llm):
    msg = llm.invoke("Hello there")
    assert isinstance(msg, AIMessage)
    u = msg.usage_metadata
    assert u["output_tokens"] >= 1 and u["total_tokens"] == u["input_tokens"] + u["output_tokens"]
    meta = msg.response_metadata
    assert meta["bases"] == TINY_BASES and meta["aggregation"] == "confidence"
    assert meta["finish_reason"] in ("stop", "length") and meta["model_name"]


def test_stream_adds_up_to_invoke_and_ends_with_last(llm, monkeypatch):
    runs = Runs(monkeypatch)
    chunks = list(llm.stream("Tell me a story"))
    assert chunks[-1].chunk_position == "last"
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    msg = llm.invoke("Tell me a story")
    counts = lambda m: {k: m.usage_metadata[k] for k in ("input_tokens", "output_tokens", "total_tokens")}  # noqa: E731
    streamed, invoked = runs.take()
    if agree(invoked, streamed, "invoked (cached) vs streamed"):
        assert full.content == msg.content and counts(full) == counts(msg)
    assert full.usage_metadata["output_tokens"] == streamed[1].final.completion_tokens  # the stream's own count


def test_on_llm_new_token_fires_per_token(llm):
    llm.streaming = True  # invoke reports each token only when asked (tests/test_streaming.py)

    class Count(BaseCallbackHandler):
        def __init__(self):
            self.tokens = []

        def on_llm_new_token(self, token, **kwargs):
            self.tokens.append(token)

    h = Count()
    msg = llm.invoke("Hi", config={"callbacks": [h]})
    assert len(h.tokens) >= msg.usage_metadata["output_tokens"] - 1
    assert "".join(h.tokens) == msg.content


async def test_ainvoke_astream_and_events(llm, monkeypatch):
    runs = Runs(monkeypatch)
    msg = await llm.ainvoke("Hello")
    chunks = [c async for c in llm.astream("Hello")]
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    invoked, streamed = runs.take()
    if agree(streamed, invoked, "astream (cached) vs ainvoke"):
        assert full.content == msg.content
    events = [e["event"] async for e in llm.astream_events("Hello", version="v2")]
    assert "on_chat_model_stream" in events and events[-1] == "on_chat_model_end"


def test_batch_equals_one_at_a_time(llm, monkeypatch):
    runs = Runs(monkeypatch)
    prompts = ["one", "two three", "four five six", "seven"]
    alone = [llm.invoke(p).content for p in prompts]
    alone_runs = runs.take_by_prompt()
    batched = [m.content for m in llm.batch(prompts)]
    for i, same in enumerate(agree_by_prompt(runs.take_by_prompt(), alone_runs, "batch vs alone")):
        assert batched[i] == alone[i] or not same


async def test_abatch_and_concurrent_tasks_equal_one_at_a_time(llm, monkeypatch):
    runs = Runs(monkeypatch)
    prompts = ["alpha", "beta gamma", "delta"]
    alone = [llm.invoke(p).content for p in prompts]
    alone_runs = runs.take_by_prompt()
    batched = [m.content for m in await llm.abatch(prompts)]
    for i, same in enumerate(agree_by_prompt(runs.take_by_prompt(), alone_runs, "abatch vs alone")):
        assert batched[i] == alone[i] or not same
    got = [m.content for m in await asyncio.gather(*(llm.ainvoke(p) for p in prompts))]
    for i, same in enumerate(agree_by_prompt(runs.take_by_prompt(), alone_runs, "gather vs alone")):
        assert got[i] == alone[i] or not same


def test_concurrent_threads_equal_one_at_a_time(llm, monkeypatch):
    runs = Runs(monkeypatch)
    prompts = [f"question number {i}" for i in range(4)]
    alone = [llm.invoke(p).content for p in prompts]
    alone_runs = runs.take_by_prompt()
    out = [None] * 4
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, llm.invoke(prompts[i]).content)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, same in enumerate(agree_by_prompt(runs.take_by_prompt(), alone_runs, "threads vs alone")):
        assert out[i] == alone[i] or not same


async def test_cancelling_astream_stops_generation(tiny_chat_dir):
    llm = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=2000)
    engine = llm.engine()
    seen = []
    real_submit = engine.submit

    def spy(request, loop=None):
        gen = real_submit(request, loop)
        seen.append(gen)
        return gen

    engine.submit = spy
    try:
        n = 0
        async for _ in llm.astream("Write forever"):
            n += 1
            if n == 3:
                break
        deadline = time.monotonic() + 30  # the engine ends the request at its next step
        while seen[0].final is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        del engine.submit
    assert seen[0].cancelled
    assert seen[0].final is not None and seen[0].final.finish_reason == "cancelled"
    assert seen[0].final.completion_tokens < 2000


# ---- exactness ------------------------------------------------------------------------------


def test_single_own_base_without_tools_equals_plain_transformers(tiny_chat_dir, monkeypatch):
    llm = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=10000.0, max_tokens=15, prefix_cache=False)
    loaded = llm.load()
    messages = [{"role": "user", "content": "What is two plus two?"}]
    ids = loaded.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    ref = loaded.model.generate(torch.tensor([ids]), max_new_tokens=15, do_sample=False, eos_token_id=2, pad_token_id=2)
    want = ref[0, len(ids) :].tolist()
    expected = loaded.tokenizer.decode(want, skip_special_tokens=True)
    runs = Runs(monkeypatch)
    msg = llm.invoke([HumanMessage("What is two plus two?")])
    ((_, run),) = runs.take()
    assert list(run.request.prompt) == ids
    logits = reference_logits(loaded.model, ids, want, (10000.0,))
    if assert_greedy_agrees(run.final.token_ids, want, logits, TINY_TOLERANCE[torch.float32], "chat model vs generate",
                            same_length=True) is None:
        assert msg.content == expected.strip() or msg.content == expected
    assert msg.usage_metadata["input_tokens"] == len(ids)


# ---- messages -------------------------------------------------------------------------------


def test_every_message_kind_renders_in_order():
    msgs = [
        AIMessage("I start."),
        SystemMessage("sys one"),
        SystemMessage("sys two"),
        HumanMessage("hi", name="alice"),
        HumanMessage("again"),
        AIMessage(
            "", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "c1"}, {"name": "add", "args": {}, "id": "c2"}]
        ),
        ToolMessage("3", tool_call_id="c1", name="add"),
        ToolMessage([{"type": "text", "text": "list content"}], tool_call_id="c2"),
    ]
    dicts = to_chat_dicts(msgs)
    assert [d["role"] for d in dicts] == ["assistant", "system", "system", "user", "user", "assistant", "tool", "tool"]
    assert dicts[3]["content"] == "alice: hi"
    assert dicts[5]["tool_calls"][0] == {"id": "c1", "name": "add", "arguments": {"a": 1, "b": 2}}
    assert dicts[7]["content"] == "list content"


def test_images_are_refused_clearly():
    with pytest.raises(ValueError, match="'image'.*text only"):
        to_chat_dicts([HumanMessage([{"type": "image", "url": "http://x/y.png"}])])


def test_tool_history_round_trip(llm):
    bound = llm.bind_tools([add], tool_choice="any")
    first = bound.invoke("What is 2 + 3?", max_tokens=80)
    assert first.tool_calls and first.tool_calls[0]["name"] == "add"
    call = first.tool_calls[0]
    follow = llm.bind_tools([add]).invoke(
        [HumanMessage("What is 2 + 3?"), first, ToolMessage("5", tool_call_id=call["id"], name="add")]
    )
    assert isinstance(follow, AIMessage)
    assert follow.usage_metadata["input_tokens"] > first.usage_metadata["input_tokens"]


# ---- tools ----------------------------------------------------------------------------------


def test_bind_tools_accepts_every_kind(llm):
    from langchain_core.runnables import RunnableLambda

    as_tool = RunnableLambda(lambda x: x).as_tool(name="runnable_tool", description="A runnable.", arg_types={"x": int})
    bound = llm.bind_tools([*ALL_TOOLS, as_tool])
    names = [t["function"]["name"] for t in bound.kwargs["tools"]]
    assert names == [*ALL_NAMES, "runnable_tool"]


@pytest.mark.parametrize("choice", ["nope", {"type": "function", "function": {"name": "nope"}}])
def test_unknown_tool_choice_lists_the_bound_names(llm, choice):
    with pytest.raises(ValueError, match="'nope'.*GetWeather, Unit, add, lookup, echo"):
        llm.bind_tools(ALL_TOOLS, tool_choice=choice)


def test_bad_tool_choice_value(llm):
    with pytest.raises(ValueError, match="tool_choice=3"):
        normalize_tool_choice(3, ["a"])


@pytest.mark.parametrize("choice", ["any", "required", True])
def test_forced_choice_always_calls_a_bound_tool_with_valid_args(llm, choice):
    import jsonschema

    bound = llm.bind_tools(ALL_TOOLS, tool_choice=choice)
    specs = {t["function"]["name"]: t["function"]["parameters"] for t in bound.kwargs["tools"]}
    for prompt in ["weather?", "add numbers", "convert 3 km", "echo this"]:
        msg = bound.invoke(prompt, max_tokens=80)
        assert msg.tool_calls, msg
        for call in msg.tool_calls:
            jsonschema.validate(call["args"], specs[call["name"]])
            assert call["id"]


def test_named_choice_among_several_tools(llm):
    for name in ("add", "GetWeather", {"type": "function", "function": {"name": "echo"}}):
        msg = llm.bind_tools(ALL_TOOLS, tool_choice=name).invoke("do something", max_tokens=80)
        expected = name if isinstance(name, str) else "echo"
        assert [c["name"] for c in msg.tool_calls] == [expected]


def test_typed_arguments(llm):
    msg = llm.bind_tools([GetWeather], tool_choice="GetWeather").invoke("Weather in Paris for 3 days", max_tokens=80)
    args = msg.tool_calls[0]["args"]
    assert isinstance(args["days"], int) and isinstance(args["city"], str)


def test_choice_none_never_calls(llm):
    bound = llm.bind_tools(ALL_TOOLS, tool_choice="none")
    for prompt in ["call a tool", "weather?"]:
        msg = bound.invoke(prompt, max_tokens=40)
        assert msg.tool_calls == [] and msg.invalid_tool_calls == []
        assert "<tool_call>" not in msg.content


def test_parallel_tool_calls_false_gives_one_call(llm):
    bound = llm.bind_tools(ALL_TOOLS, tool_choice="any", parallel_tool_calls=False)
    for prompt in ["a", "b", "c"]:
        assert len(bound.invoke(prompt, max_tokens=80).tool_calls) == 1


def test_tool_call_ids_are_unique(llm):
    bound = llm.bind_tools(ALL_TOOLS, tool_choice="any")
    ids = [c["id"] for p in ("x", "y", "z") for c in bound.invoke(p, max_tokens=80).tool_calls]
    assert len(ids) == len(set(ids))


def test_streamed_tool_calls_add_up_to_invoke(llm, monkeypatch):
    runs = Runs(monkeypatch)
    bound = llm.bind_tools(ALL_TOOLS, tool_choice="any")
    msg = bound.invoke("weather in Oslo", max_tokens=80)
    full = None
    for c in bound.stream("weather in Oslo", max_tokens=80):
        full = c if full is None else full + c
    strip = lambda calls: [(c["name"], c["args"]) for c in calls]  # noqa: E731 (ids are fresh per call)
    invoked, streamed = runs.take()  # a forced call: the grammar masks, but where two runs part both picks are allowed
    if agree(streamed, invoked, "streamed (cached) vs invoked call"):
        assert strip(full.tool_calls) == strip(msg.tool_calls) and full.content == msg.content
    assert full.tool_calls


def test_broken_output_becomes_invalid_tool_calls():
    """The assembly of chunks from text that does not parse (a model writing without a grammar)."""
    from langchain_attention_buckets.text.parse import ToolCallParser

    parser = ToolCallParser({"add": add.args_schema.model_json_schema()})
    call = _Call(engine=None, request=Request((1,), (1.0,)), parser=parser, model_name="m", bases=(1.0,))
    text = (
        'ok <tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'
        '<tool_call>{"name": "add", "arguments": {"a": </tool_call><tool_call>{"name": "sub"'
    )
    chunks = [call.chunk(TokenEvent(0, ch)) for ch in text]
    chunks.append(call.last(Result([], text, "length", 3, len(text))))
    msg = _collect(chunks).generations[0].message
    assert msg.content == "ok"
    assert msg.tool_calls[0]["args"] == {"a": 1, "b": 2}
    assert len(msg.invalid_tool_calls) == 2
    assert msg.invalid_tool_calls[0]["args"].startswith('{"a": ') and msg.invalid_tool_calls[1]["name"] == "sub"
    assert all(c["error"] for c in msg.invalid_tool_calls)


# ---- structured output -------------------------------------------------------------------------


class Person(BaseModel):
    """A person."""

    name: str
    age: int


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output_is_always_an_instance(llm, method):
    structured = llm.with_structured_output(Person, method=method)
    for prompt in ["Anna is 30", "Bob, 41"]:
        assert isinstance(structured.invoke(prompt, max_tokens=60), Person)


def test_structured_output_typed_dict_and_json_schema(llm):
    out = llm.with_structured_output(Unit, method="json_schema").invoke("3 km", max_tokens=60)
    assert set(out) == {"value", "unit"} and out["unit"] in ("m", "km", "mi")
    schema = {"title": "pt", "type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    assert isinstance(llm.with_structured_output(schema).invoke("x is 2", max_tokens=40)["x"], int)


def test_json_mode_gives_json(llm):
    structured = llm.with_structured_output(None or {"title": "any", "type": "object"}, method="json_mode")
    out = structured.invoke("json please", max_tokens=60)
    assert isinstance(out, dict)


def test_include_raw(llm):
    out = llm.with_structured_output(Person, include_raw=True).invoke("Anna is 30", max_tokens=60)
    assert set(out) == {"raw", "parsed", "parsing_error"} and isinstance(out["raw"], AIMessage)


def test_response_format_kwarg_from_create_agent(llm):
    rf = {"type": "json_schema", "json_schema": {"name": "Person", "schema": Person.model_json_schema()}}
    msg = llm.bind_tools([add], response_format=rf).invoke("Anna is 30", max_tokens=60)
    assert msg.tool_calls or Person.model_validate_json(msg.content)


def test_bad_response_format(llm):
    with pytest.raises(ValueError, match="response_format"):
        llm.invoke("x", response_format={"type": "xml"})


def test_chunks_are_message_chunks(llm):
    assert all(isinstance(c, AIMessageChunk) for c in llm.stream("hey"))
