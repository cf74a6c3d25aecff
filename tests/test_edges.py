"""The chat model at its edges: errors of the right kind at the right time, and token counting.

Each test here is a property a user relies on without reading the code: a typo in an argument
is named, a boolean is not a number, a missing GPU or file is reported when the model is built,
a bad tool fails when it is bound, an over-long prompt is LangChain's ContextOverflowError, a
failed parse says why, and tokens are counted with the model's own tokenizer through the same
prompt a call reads. Tiny random Llama with the embedded tokenizer and template (fast tier).
"""

from __future__ import annotations

import time

import pytest
from conftest import CLOSING, TINY_BASES
from langchain_core.exceptions import ContextOverflowError
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage, trim_messages
from langchain_core.tools import tool
from pydantic import BaseModel

import langchain_attention_buckets.engine.loading as loading
from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.engine import ContextLengthError


@pytest.fixture
def llm(tiny_chat_dir):
    return ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=8, logit_bias=CLOSING)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def echo_tool(name: str, params: dict | None = None) -> dict:
    params = params or {"type": "object", "properties": {"text": {"type": "string"}}}
    return {"type": "function", "function": {"name": name, "description": "Echo.", "parameters": params}}


class Person(BaseModel):
    name: str
    age: int


# ---- unknown arguments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_new_tokens": 5}, r"'max_new_tokens'.*did you mean 'max_tokens'"),
        ({"model_name": "x"}, r"'model_name'.*did you mean 'model'"),
        ({"temprature": 0.5}, r"'temprature'.*did you mean 'temperature'"),
        ({"device_map": "auto"}, r"'device_map'.*model_kwargs"),
    ],
)
def test_unknown_constructor_argument_is_named_with_the_nearest_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChatAttentionBuckets(**kwargs)


def test_model_kwargs_reach_from_pretrained_and_key_the_shared_weights(tiny_chat_dir):
    eager = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", model_kwargs={"attn_implementation": "eager"})
    plain = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32")
    assert eager.load().model.config._attn_implementation == "eager"
    assert plain.load().model.config._attn_implementation == "sdpa"
    assert eager.load().model is not plain.load().model
    again = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", model_kwargs={"attn_implementation": "eager"})
    assert again.load().model is eager.load().model


@pytest.mark.parametrize("key, field", [("dtype", "dtype"), ("torch_dtype", "dtype"), ("trust_remote_code", "trust_remote_code")])
def test_model_kwargs_that_have_a_field_are_refused(key, field):
    with pytest.raises(ValueError, match=rf"model_kwargs\['{key}'\].*{field}="):
        ChatAttentionBuckets(model_kwargs={key: "x"})


def test_unknown_call_option_is_an_error_naming_the_nearest(llm):
    with pytest.raises(ValueError, match=r"unknown call option 'max_new_tokens'.*did you mean 'max_tokens'"):
        llm.invoke("hi", max_new_tokens=3)


def test_options_langchain_itself_passes_are_accepted(llm):
    assert isinstance(llm.invoke("hi", stream=True, max_tokens=2), AIMessage)
    assert isinstance(llm.invoke("hi", stream=False, max_tokens=2), AIMessage)


# ---- booleans and bases ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["bases", "temperature", "top_k", "top_p", "n_buckets", "max_tokens", "seed", "repetition_penalty", "speculative_tokens"],
)
def test_a_boolean_is_not_a_number(field):
    with pytest.raises(ValueError, match=rf"{field}=True: a boolean is not a number"):
        ChatAttentionBuckets(**{field: True})


def test_a_boolean_is_not_a_number_per_call_either(llm):
    with pytest.raises(ValueError, match="temperature=True"):
        llm.invoke("hi", temperature=True)
    with pytest.raises(ValueError, match="logit_bias"):
        llm.invoke("hi", logit_bias={5: True})


@pytest.mark.parametrize("bases", [[1e30], [1e4, 1e11], 0.5])
def test_bases_outside_the_range_are_refused_with_the_range(bases):
    with pytest.raises(ValueError, match=r"outside the range.*100 to 1e\+10"):
        ChatAttentionBuckets(bases=bases)


def test_bases_far_from_the_models_own_base_are_refused_with_the_range(tiny_chat_dir):
    llm = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=[1e4, 5e7])
    with pytest.raises(ValueError, match=r"5e\+07 is too far from the model's own rotary base 10000; allowed: 1000 to 1e\+06"):
        llm.invoke("hi")


# ---- device and paths -----------------------------------------------------------------------


def test_an_absent_device_is_reported_at_construction(monkeypatch):
    monkeypatch.setattr(loading.torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device='cuda:7'.*CUDA is not available"):
        ChatAttentionBuckets(device="cuda:7")
    monkeypatch.setattr(loading.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(loading.torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"device='cuda:7'.*2 CUDA device\(s\) \(cuda:0, cuda:1\)"):
        ChatAttentionBuckets(device="cuda:7")
    assert ChatAttentionBuckets(device="cuda:1").device == "cuda:1"


@pytest.mark.parametrize("path", ["/nonexistent", "./missing-folder", "../missing/model", "~/missing-model-x", "missing.gguf"])
def test_a_missing_local_path_says_so(path):
    with pytest.raises(ValueError, match=r"no such (file or folder|GGUF file)"):
        ChatAttentionBuckets(model=path)


def test_a_hub_id_is_not_taken_for_a_path():
    assert ChatAttentionBuckets(model="HuggingFaceTB/SmolLM2-135M-Instruct").model == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_load_model_says_a_path_is_missing_too():
    with pytest.raises(ValueError, match="no such"):
        loading.load_model(loading.ModelSpec("/nonexistent/model"))


# ---- tools at bind time ---------------------------------------------------------------------


def test_bind_tools_refuses_duplicate_names(llm):
    with pytest.raises(ValueError, match="repeated: echo"):
        llm.bind_tools([echo_tool("echo"), echo_tool("echo", {"type": "object", "properties": {"n": {"type": "integer"}}})])


@pytest.mark.parametrize("name", ["my tool", "x" * 129, "wetter/heute", "wetter:heute", ""])
def test_bind_tools_refuses_names_outside_the_mcp_pattern(llm, name):
    with pytest.raises(ValueError, match=r"tool name .* is not allowed; use 1-128 letters"):
        llm.bind_tools([echo_tool(name)])


@pytest.mark.parametrize("name", ["orders.create", "x" * 128, "a-b_c.d9"])
def test_bind_tools_takes_names_as_mcp_servers_write_them(llm, name):
    llm.bind_tools([echo_tool(name)], tool_choice=name)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, r"tool 'bad'.*'not'"),
        ({"type": "object", "properties": {"x": {"type": "string", "minLength": 5, "maxLength": 2}}}, r"tool 'bad'.*xgrammar"),
    ],
)
def test_bind_tools_compiles_schemas_at_bind_time(llm, params, match):
    with pytest.raises(ValueError, match=match):
        llm.bind_tools([echo_tool("bad", params)])


def test_structured_output_schema_is_checked_when_built(llm):
    schema = {"title": "Answer", "type": "object", "properties": {"x": {"not": {"type": "string"}}}}
    with pytest.raises(ValueError, match=r"schema 'Answer'.*'not'"):
        llm.with_structured_output(schema)


# ---- messages -------------------------------------------------------------------------------


def test_a_tool_result_that_answers_no_call_is_named(llm):
    call = AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1"}])
    msgs = [HumanMessage("add"), call, ToolMessage("3", tool_call_id="call_9")]
    with pytest.raises(ValueError, match=r"message 2 \(tool\): tool_call_id='call_9' answers no tool call.*call_1"):
        llm.invoke(msgs)


def test_text_that_cannot_be_encoded_names_the_message(llm):
    with pytest.raises(ValueError, match=r"message 1 \(human\), role 'user'.*'\\ud800'.*not valid Unicode"):
        llm.invoke([SystemMessage("fine"), HumanMessage("bad \ud800 text")])


# ---- context overflow -----------------------------------------------------------------------


def test_context_overflow_is_langchains_error_with_the_numbers(llm):
    long = "word " * 5000  # the tiny model's window is 4096 tokens
    with pytest.raises(ContextOverflowError, match=r"\d+ prompt tokens \+ max_tokens 8 = \d+ tokens exceed .* 4096"):
        llm.invoke(long)
    err = ContextLengthError("x")
    assert isinstance(err, ValueError) and isinstance(err, ContextOverflowError)


def test_summarization_middleware_retries_a_summary_that_overflows(llm):
    """The middleware catches ContextOverflowError from the summary call and retries shorter."""
    from langchain.agents.middleware import SummarizationMiddleware

    # no trimming beforehand, so the first summary prompt (about 5000 tokens) overflows the window
    mw = SummarizationMiddleware(model=llm, trigger=("tokens", 10), keep=("messages", 1), trim_tokens_to_summarize=None)
    history = [HumanMessage("word " * 2500), AIMessage("ok " * 2500)]
    summary = mw._create_summary(history)  # without the subclass, the first call's error escapes
    assert isinstance(summary, str)


# ---- parse failures say why -----------------------------------------------------------------


# With constrained decoding the grammar closes every call and object within max_tokens (and a
# max_tokens below the shortest output is refused up front, test_budget.py); a cut call or object
# comes only from free decoding.


def _free(tiny_chat_dir):
    return ChatAttentionBuckets(
        model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, logit_bias=CLOSING, constrained_decoding=False
    )


def test_function_calling_cut_by_max_tokens_gives_a_parsing_error(tiny_chat_dir):
    structured = _free(tiny_chat_dir).with_structured_output(Person, method="function_calling", include_raw=True)
    out = structured.invoke("Anna is 30", max_tokens=2)
    assert out["parsed"] is None
    assert "max_tokens reached before the call closed" in str(out["parsing_error"])


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_json_cut_by_max_tokens_gives_a_parsing_error(tiny_chat_dir, method):
    schema = Person if method == "json_schema" else {"title": "P", "type": "object"}
    out = _free(tiny_chat_dir).with_structured_output(schema, method=method, include_raw=True).invoke("Anna is 30", max_tokens=2)
    assert out["parsed"] is None
    assert "max_tokens reached before the JSON closed" in str(out["parsing_error"])


@pytest.mark.parametrize(
    ("calls", "finish", "why"),
    [
        ([{"name": "Person", "args": '{"name": "An', "id": "c1", "error": None}], "length", "max_tokens reached"),
        ([{"name": "Person", "args": "{oops}", "id": "c1", "error": None}], "stop", "not a valid JSON object"),
        ([], "stop", "no tool call in the output"),
    ],
)
def test_structured_call_errors_say_why(calls, finish, why):
    from langchain_core.exceptions import OutputParserException
    from langchain_core.messages import AIMessage

    from langchain_attention_buckets.chat.structured import parseable_call as _parseable_call

    raw = AIMessage("", invalid_tool_calls=calls, response_metadata={"finish_reason": finish})
    with pytest.raises(OutputParserException, match=why):
        _parseable_call(raw)


# ---- token counting -------------------------------------------------------------------------


def test_token_ids_come_from_the_models_tokenizer(llm, monkeypatch):
    import langchain_core.language_models.base as base

    monkeypatch.setattr(base, "_get_token_ids_default_method", lambda text: pytest.fail("GPT-2 fallback used"))
    tok = llm.load().tokenizer
    assert llm.get_token_ids("Hello there, world") == tok.encode("Hello there, world", add_special_tokens=False)
    assert llm.get_num_tokens("Hello there, world") == len(tok.encode("Hello there, world", add_special_tokens=False))


def test_token_counting_needs_no_weights(tiny_chat_dir, monkeypatch):
    monkeypatch.setattr(loading, "_load", lambda spec: pytest.fail("weights loaded to count tokens"))
    llm = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", model_kwargs={"revision": "main"})
    assert llm.get_num_tokens("Hello") >= 1


@pytest.mark.parametrize("with_tools", [False, True])
def test_messages_count_equals_a_calls_input_tokens(llm, with_tools):
    msgs = [SystemMessage("Be brief."), HumanMessage("What is 2 + 3?")]
    tools = [add] if with_tools else None
    counted = llm.get_num_tokens_from_messages(msgs, tools=tools)
    runnable = llm.bind_tools(tools) if tools else llm
    assert counted == runnable.invoke(msgs, max_tokens=1).usage_metadata["input_tokens"]
    if with_tools:
        assert counted > llm.get_num_tokens_from_messages(msgs)


def test_profile_has_the_context_window_without_loading(tiny_chat_dir, monkeypatch):
    monkeypatch.setattr(loading, "_load", lambda spec: pytest.fail("weights loaded for the profile"))
    start = time.perf_counter()
    llm = ChatAttentionBuckets(model=tiny_chat_dir)
    assert time.perf_counter() - start < 2
    assert llm.profile["max_input_tokens"] == 4096 and llm.profile["max_output_tokens"] == 4096
    assert ChatAttentionBuckets().profile["max_input_tokens"] == 8192  # the embedded GGUF's header
    assert "max_input_tokens" not in ChatAttentionBuckets(model="nobody/not-cached-model").profile


def test_trim_messages_counts_with_the_model(llm):
    msgs = [SystemMessage("Be brief.")] + [HumanMessage(f"question {i} " * 20) for i in range(6)]
    trimmed = trim_messages(msgs, max_tokens=150, token_counter=llm, strategy="last", include_system=True)
    assert 1 < len(trimmed) < len(msgs) and isinstance(trimmed[0], SystemMessage)
    assert llm.get_num_tokens_from_messages(trimmed) <= 150
    partial = [ToolMessage("3", tool_call_id="c1"), HumanMessage("thanks")]  # a slice: its call was cut
    assert llm.get_num_tokens_from_messages(partial) > 0


def test_the_same_tool_twice_is_one_tool(llm):
    """A pydantic model and its JSON schema (LangChain's standard unit suite binds both) differ in titles only."""
    bound = llm.bind_tools([Person, Person.model_json_schema()])
    assert [t["function"]["name"] for t in bound.kwargs["tools"]] == ["Person"]
    other = echo_tool("Person", {"type": "object", "properties": {"other": {"type": "string"}}})
    with pytest.raises(ValueError, match="repeated: Person"):
        llm.bind_tools([Person, other])


def test_langchains_remote_parameters_are_ignored_with_a_warning():
    with pytest.warns(UserWarning, match="timeout, max_retries, api_key: no use for a local model"):
        ChatAttentionBuckets(timeout=60, max_retries=2, api_key="x")
