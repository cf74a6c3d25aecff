"""The server's input contract: every field with wrong types and shapes, malformed bodies, routes
and methods, and a fuzz of random request-shaped JSON documents.

Every bad request is a 400 (or 401/404/405/413) in OpenAI's error shape, whose ``param`` names
the field as the client wrote it and whose message never repeats the request's messages; no
input gives a 500. A tiny random Llama serves (as in test_serve.py), with few new tokens.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter

import httpx
import pytest
from conftest import CLOSING, TINY_BASES

pytest.importorskip("fastapi")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from langchain_attention_buckets.serve import ServerSettings  # noqa: E402
from langchain_attention_buckets.serve.protocol import ChatCompletionRequest  # noqa: E402
from langchain_attention_buckets.serve.run import ServerThread  # noqa: E402

pytestmark = pytest.mark.enable_socket

SECRET = "SECRET-d25-prompt-text"  # in every request's messages; never in an error body
USER = [{"role": "user", "content": f"Say hi. {SECRET}"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def server(tiny_chat_dir):
    fields = {"model": tiny_chat_dir, "bases": TINY_BASES[:2], "max_tokens": 4, "logit_bias": CLOSING}
    with ServerThread(ServerSettings(model_kwargs=fields, served_name="tiny")) as srv:
        yield srv


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=60) as client:
        yield client


def _post(http, server, body, **kw) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return http.post(f"{server.url}/chat/completions", content=body, headers={"content-type": "application/json"}, **kw)
    return http.post(f"{server.url}/chat/completions", json=body, **kw)


def _error(r: httpx.Response, status: int = 400) -> dict:
    """The error object of an OpenAI-shaped error answer, checked."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    error = body["error"]
    assert error["message"] and SECRET not in r.text and "Value error" not in error["message"], error
    return error


# ---- every field, wrong types ---------------------------------------------------------------

# The JSON types each field takes (None is taken by every optional field).
FIELD_TYPES = {
    "messages": {"array"}, "model": {"string"}, "tools": {"array"}, "tool_choice": {"string", "object"},
    "parallel_tool_calls": {"boolean"}, "response_format": {"object"}, "temperature": {"number"},
    "top_p": {"number"}, "max_tokens": {"integer"}, "max_completion_tokens": {"integer"},
    "stop": {"string", "array"}, "seed": {"integer"}, "stream": {"boolean"}, "stream_options": {"object"},
    "user": {"string"}, "metadata": {"object"}, "logit_bias": {"object"}, "n": {"integer"},
    "presence_penalty": {"number"}, "frequency_penalty": {"number"}, "logprobs": {"boolean"},
    "top_logprobs": {"integer"}, "bases": {"string", "number", "array"}, "n_buckets": {"integer"},
    "aggregation": {"string"}, "top_k": {"integer"}, "repetition_penalty": {"number"},
    "tool_call_bias": {"string", "number", "array"}, "loop_detection": {"boolean"}, "deterministic": {"boolean"},
    "reasoning": {"boolean"}, "chat_template_kwargs": {"object"},
}
POOL = [True, False, 0, 3, 2.5, -1, "8", "yes", "", [], ["a"], [1], {}, {"a": 1}]


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def test_the_table_covers_every_field():
    assert set(FIELD_TYPES) == set(ChatCompletionRequest.model_fields)


WALK = [(name, value) for name in FIELD_TYPES for value in POOL]


def test_every_field_with_every_type(server, http):
    """Each field gets each value of the pool: a value of a type the field does not take is a 400
    naming the field; any other is answered (200) or a 400 naming the field; never a 500."""
    seen = Counter()
    for name, value in WALK:
        body = {"model": "tiny", "messages": USER, "max_tokens": 2, name: value}
        if name == "max_completion_tokens":
            del body["max_tokens"]
        if name == "stream_options":
            body["stream"] = True
        r = _post(http, server, body)
        seen[r.status_code] += 1
        kind = _json_type(value)
        wrong = kind not in FIELD_TYPES[name] and not (kind == "integer" and "number" in FIELD_TYPES[name])
        if wrong or r.status_code != 200:
            error = _error(r, 404 if name == "model" and kind == "string" else 400)
            assert error["param"] and error["param"].split("[")[0].split(".")[0] == name, (name, value, error)
            if wrong and name != "messages":
                assert name in error["message"], (name, value, error)
    print(f"\nwalk: {sum(seen.values())} requests ({len(FIELD_TYPES)} fields x {len(POOL)} values); statuses {dict(seen)}")
    assert seen[200] > 20 and seen[400] > 200 and not seen[500], seen


# ---- shapes ---------------------------------------------------------------------------------

F = "function"
SHAPES = [
    # tools: the malformed ones first (once a KeyError and a 500)
    ({"tools": [{"type": F}]}, "tools[0].function"),
    ({"tools": [{"type": F, F: {}}]}, "tools[0].function.name"),
    ({"tools": [{}]}, "tools[0].type"),
    ({"tools": [{F: {}}]}, "tools[0].type"),
    ({"tools": [TOOL, {"type": F, F: {"name": 5}}]}, "tools[1].function.name"),
    ({"tools": [{"type": F, F: {"name": "f", "parameters": "x"}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": F, F: {"name": "f", "extra": 1}}]}, "tools[0].function.extra"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tools": [TOOL, {"type": F, F: {"name": "bad name!"}}]}, "tools[1].function.name"),
    ({"tools": [{"type": F, F: {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}}}]},
     "tools[0].function.parameters"),
    ({"tools": [TOOL], "tool_choice": {"type": F, F: {"name": "nope"}}}, "tool_choice"),
    ({"tools": [TOOL], "tool_choice": {"type": F}}, "tool_choice"),
    ({"tools": [TOOL], "tool_choice": "maybe"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    # messages
    ({"messages": []}, "messages"),
    ({"messages": [1]}, "messages[0]"),
    ({"messages": [{"content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": SECRET, "foo": 1}]}, "messages[0].foo"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [5]}]}, "messages[0].content[0]"),
    ({"messages": USER + [{"role": "tool", "content": "x"}]}, "messages[1].tool_call_id"),
    ({"messages": USER + [{"role": "tool", "content": "x", "tool_call_id": "nope"}]}, "messages[1]"),
    ({"messages": USER + [{"role": "assistant", "tool_calls": {}}]}, "messages[1].tool_calls"),
    ({"messages": USER + [{"role": "assistant", "tool_calls": [{"id": "c", F: {"name": "f"}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
    ({"messages": USER + [{"role": "assistant", "tool_calls": [{"id": 3, F: {"name": "f", "arguments": "{}"}}]}]},
     "messages[1].tool_calls[0].id"),
    ({"messages": [{"role": "user", "content": SECRET, "name": 7}]}, "messages[0].name"),
    # response_format
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": 5, "schema": {}}}},
     "response_format.json_schema.name"),
    ({"response_format": {"type": "json_object", "x": 1}}, "response_format.x"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    # the list: neutral-only fields, pairs, stop
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": -1}, "frequency_penalty"),
    ({"max_tokens": 4, "max_completion_tokens": 5}, "max_completion_tokens"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"stop": 5}, "stop"),
    ({"stop": [""]}, "stop"),
    ({"stop": ["a"] * 17}, "stop"),
    ({"max_tokens": True}, "max_tokens"),
    ({"max_tokens": "8"}, "max_tokens"),
    ({"stream": "yes"}, "stream"),
    ({"deterministic": "yes"}, "deterministic"),
    ({"seed": "x"}, "seed"),
    ({"seed": 2**64}, "seed"),
    ({"temperature": 2.5}, "temperature"),
    ({"logit_bias": {"99999999": 5}}, "logit_bias"),
    ({"logit_bias": {"12": 101}}, "logit_bias"),
    ({"metadata": {"a": 1}}, "metadata"),
    ({"bases": [-1]}, "bases"),
    ({"n_buckets": 99}, "n_buckets"),
    ({"foo": 1}, "foo"),
]


@pytest.mark.parametrize("extra,param", SHAPES, ids=[str(i) for i in range(len(SHAPES))])
def test_a_bad_shape_names_its_field(server, http, extra, param):
    error = _error(_post(http, server, {"model": "tiny", "messages": USER, **extra}))
    assert error["param"] == param and error["type"] == "invalid_request_error", error


def test_the_call_options_of_a_request():
    body = ChatCompletionRequest.model_validate({"messages": USER, "stop": "ab", "max_completion_tokens": 5,
                                                 "logit_bias": {"7": -100}, "seed": 3, "temperature": 1})
    assert body.call_options() == {"stop": ["ab"], "max_tokens": 5, "logit_bias": {7: -100.0}, "seed": 3,
                                   "temperature": 1.0}


def test_the_messages_are_never_echoed(server, http):
    """A bad field next to the prompt: the error names the field, not the prompt."""
    for extra in ({"n": 2}, {"stop": 5}, {"messages": [{"role": "user", "content": SECRET, "x": SECRET}]},
                  {"messages": USER + [{"role": "tool", "content": SECRET}]}):
        _error(_post(http, server, {"model": "tiny", "messages": USER, **extra}))


# ---- the library and the server: the same values refused with the same words ----------------

SAME_CALL = [
    ("temperature", 2.5), ("temperature", True), ("temperature", "0.5"), ("top_p", 0), ("top_k", "5"), ("top_k", 0),
    ("max_tokens", "8"), ("max_tokens", True), ("max_tokens", 0), ("stop", 5), ("stop", [""]), ("stop", [1]),
    ("seed", "x"), ("seed", 2**64), ("seed", 1.5), ("repetition_penalty", 0), ("aggregation", "nope"),
    ("logit_bias", {"5": 1000}), ("logit_bias", {"x": 1}), ("tool_call_bias", "x"), ("loop_detection", "yes"),
    ("parallel_tool_calls", 1),
]
SAME_FIELDS = [("bases", [-1]), ("bases", True), ("n_buckets", 0), ("n_buckets", "3"), ("deterministic", "yes")]


@pytest.fixture(scope="module")
def local(tiny_chat_dir):
    from langchain_attention_buckets import ChatAttentionBuckets

    return ChatAttentionBuckets(model=tiny_chat_dir, bases=TINY_BASES[:2], max_tokens=4, logit_bias=CLOSING)


@pytest.mark.parametrize("field,value", SAME_CALL, ids=[f"{f}={v!r}"[:30] for f, v in SAME_CALL])
def test_a_call_option_and_a_request_field_are_refused_with_the_same_words(server, http, local, field, value):
    with pytest.raises(ValueError) as err:
        local.invoke("hi", **{field: value})
    error = _error(_post(http, server, {"model": "tiny", "messages": USER, field: value}))
    assert error["message"] == str(err.value) and error["param"] == field


SAME_SHAPES = [
    ("tools", [{"type": "function"}]), ("tools", [{"type": "function", "function": {}}]), ("tools", [{}]),
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": []}}]),
    ("response_format", {"type": "json_schema"}), ("response_format", {"type": "yaml"}),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "x"}}),
]


@pytest.mark.parametrize("field,value", SAME_SHAPES, ids=[str(i) for i in range(len(SAME_SHAPES))])
def test_a_malformed_tool_or_format_is_refused_with_the_same_words(server, http, local, field, value):
    with pytest.raises(ValueError) as err:
        local.bind_tools(value) if field == "tools" else local.invoke("hi", response_format=value)
    error = _error(_post(http, server, {"model": "tiny", "messages": USER, field: value}))
    assert error["message"] == str(err.value) and error["param"] == err.value.param


@pytest.mark.parametrize("field,value", SAME_FIELDS, ids=[f"{f}={v!r}" for f, v in SAME_FIELDS])
def test_a_model_field_and_a_request_field_are_refused_with_the_same_words(server, http, tiny_chat_dir, field, value):
    from pydantic import ValidationError

    from langchain_attention_buckets import ChatAttentionBuckets

    with pytest.raises(ValidationError) as err:
        ChatAttentionBuckets(model=tiny_chat_dir, **{field: value})
    error = _error(_post(http, server, {"model": "tiny", "messages": USER, field: value}))
    assert error["message"] == str(err.value.errors()[0]["ctx"]["error"]) and error["param"] == field


# ---- truncation ---------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}, "problem": {"type": "string"},
                                           "severity": {"type": "integer"}},
          "required": ["order_id", "problem", "severity"], "additionalProperties": False}


@pytest.mark.parametrize("stream", [False, True])
def test_an_object_closed_early_is_reported_as_length(server, http, stream):
    """The grammar closes the object to fit max_tokens: valid JSON, but cut; finish_reason says so."""
    body = {"model": "tiny", "messages": USER, "max_tokens": 20, "logit_bias": {"2": -100}, "stream": stream,
            "response_format": {"type": "json_schema", "json_schema": {"name": "ticket", "schema": SCHEMA}}}
    r = _post(http, server, body)
    assert r.status_code == 200, r.text
    if stream:
        events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
        last = events[-1]
        assert last["choices"][0]["finish_reason"] == "length" and last["attention_buckets"]["truncated"] is True
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    else:
        answer = r.json()
        assert answer["choices"][0]["finish_reason"] == "length" and answer["attention_buckets"]["truncated"] is True
        text = answer["choices"][0]["message"]["content"]
    assert set(json.loads(text)) == set(SCHEMA["required"])  # closed: valid JSON, cut short


def test_a_whole_answer_is_not_truncated(server, http):
    r = _post(http, server, {"model": "tiny", "messages": USER, "max_tokens": 4, "logit_bias": {"2": 100}})
    answer = r.json()
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["attention_buckets"]["truncated"] is False


# ---- bodies, routes, methods ----------------------------------------------------------------

BODIES = [
    (b"{not json", None, "not valid JSON"),
    (b"[]", None, "JSON object"),
    (b'"x"', None, "JSON object"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}', None, "NaN"),
    (b"[" * 5000 + b"]" * 5000, None, "deeper"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": ' + b"[" * 70 + b"]" * 70 + b"}]}",
     "messages[0].content", "deeper"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "a\\ud800b"}]}', "messages[0].content", "lone surrogate"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "stop": ["\\udfff"]}', "stop[0]", "lone surrogate"),
    (b"\xff\xfe", None, "UTF-8"),
]


@pytest.mark.parametrize("raw,param,words", BODIES, ids=[str(i) for i in range(len(BODIES))])
def test_a_malformed_body_is_a_400(server, http, raw, param, words):
    error = _error(_post(http, server, raw))
    assert (error["param"] or "").startswith(param) if param else error["param"] is None, error
    assert words in error["message"], error


def test_other_methods_and_routes_answer_in_openais_shape(server, http):
    root = server.url.removesuffix("/v1")
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        error = _error(http.request(method, f"{server.url}/chat/completions"), 405)
        assert method in error["message"] and "POST" in error["message"]
    assert "GET" in _error(http.post(f"{server.url}/models"), 405)["message"]
    _error(http.get(f"{root}/v1/nope"), 404)
    _error(http.post(f"{root}/v2/chat/completions", json={}), 404)


# ---- fuzz -------------------------------------------------------------------------------------

# ATTENTION_BUCKETS_FUZZ=N: N examples from a random seed (a longer search than CI's fixed one)
FUZZ_EXAMPLES = int(os.environ.get("ATTENTION_BUCKETS_FUZZ", 400))
FUZZ_SECONDS = 60.0 if "ATTENTION_BUCKETS_FUZZ" not in os.environ else 3600.0  # bounds CI time

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "bot"])
text = st.text(max_size=30)
# near a message: a role, and any of its fields with a plausible or any value
near_message = st.fixed_dictionaries({"role": ROLES}, optional={
    "content": text | json_values,
    "name": st.text(max_size=8) | json_values,
    "tool_call_id": st.text(max_size=8),
    "tool_calls": st.lists(st.fixed_dictionaries({}, optional={
        "id": st.text(max_size=6), "type": st.just("function") | json_values,
        "function": st.fixed_dictionaries({}, optional={"name": st.text(max_size=8) | json_values,
                                                          "arguments": st.text(max_size=20) | json_values})}), max_size=2),
})
user = st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": text})
messages = (st.lists(user, min_size=1, max_size=3) | st.lists(user, min_size=1, max_size=3)
            | st.lists(user | near_message, min_size=1, max_size=3) | json_values)
tool = st.fixed_dictionaries({}, optional={
    "type": st.just("function") | json_values,
    "function": st.fixed_dictionaries({}, optional={
        "name": st.from_regex(r"[a-z_]{1,8}", fullmatch=True) | json_values,
        "description": st.text(max_size=10) | json_values,
        "parameters": st.just(TOOL["function"]["parameters"]) | json_values,
    }) | json_values,
})
small_int = st.integers(1, 3)
# each field: plausible values (twice: drawn more often) or any JSON value
FIELDS = {name: valid | valid | json_values for name, valid in {
    "model": st.just("tiny"),
    "tools": st.lists(tool, max_size=2) | st.just([TOOL]),
    "tool_choice": st.sampled_from(["none", "auto", "required"]),
    "parallel_tool_calls": st.booleans(),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1),
    "max_tokens": small_int,
    "max_completion_tokens": small_int,
    "stop": st.lists(st.text(max_size=4), max_size=3),
    "seed": st.integers(-(2**64), 2**64),
    "stream": st.booleans(),
    "stream_options": st.just({"include_usage": True}),
    "user": st.text(max_size=8),
    "metadata": st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    "logit_bias": st.dictionaries(st.integers(0, 60000).map(str), st.floats(-100, 100), max_size=2),
    "n": st.just(1),
    "presence_penalty": st.just(0),
    "frequency_penalty": st.just(0),
    "logprobs": st.just(False),
    "top_logprobs": st.just(0),
    "bases": st.sampled_from(["paper", "narrow", [10000.0], [10000.0, 20000.0]]),
    "n_buckets": st.integers(1, 3),
    "aggregation": st.sampled_from(["confidence", "mean", "max", "anchored"]),
    "top_k": st.integers(1, 10**12),
    "repetition_penalty": st.floats(0.5, 2),
    "tool_call_bias": st.sampled_from(["auto", 1.0, [0.0, -1.0]]),
    "loop_detection": st.booleans(),
    "deterministic": st.booleans(),
    "reasoning": st.booleans(),
    "chat_template_kwargs": st.fixed_dictionaries({"enable_thinking": st.booleans()}),
    "foo": st.nothing(),
}.items()}
# a few fields per request, so that many requests are valid and each field is tried often
request = st.lists(st.sampled_from(sorted(FIELDS)), max_size=4, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({"messages": messages, **{k: FIELDS[k] for k in keys}}))
document = request | request | request | json_values


def test_fuzz_no_500_and_no_crash(server, http):
    """Random JSON documents of the request's shape (most fields valid or near it, any of them
    any JSON value): every answer is a 200 or an OpenAI-shaped 4xx, never a 500; the server
    still answers afterwards. The counts are printed (run with -s to see them)."""
    statuses: Counter = Counter()
    params: Counter = Counter()
    start = time.monotonic()

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize="ATTENTION_BUCKETS_FUZZ" not in os.environ, database=None,
              suppress_health_check=list(HealthCheck))
    @given(document)
    def fuzz(body):
        if time.monotonic() - start > FUZZ_SECONDS:
            return
        if isinstance(body, dict) and isinstance(body.get("max_tokens"), int) and not isinstance(body["max_tokens"], bool):
            body["max_tokens"] = min(body["max_tokens"], 3)  # a valid request stays short
        r = _post(http, server, body)
        statuses[r.status_code] += 1
        assert r.status_code in (200, 400, 404, 413), (body, r.text)
        if r.status_code != 200:
            params[(r.json()["error"]["param"] or "-").split("[")[0].split(".")[0]] += 1
            _error(r, r.status_code)
        else:
            assert '"server_error"' not in r.text, (body, r.text)

    fuzz()
    print(f"\nfuzz: {sum(statuses.values())} requests in {time.monotonic() - start:.0f} s; statuses "
          f"{dict(sorted(statuses.items()))}; 400s by field {dict(params.most_common())}")
    assert statuses[500] == 0 and statuses[200] > 0 and statuses[400] > 0
    assert http.get(server.url.removesuffix("/v1") + "/health").json()["status"] == "ok"
    r = _post(http, server, {"model": "tiny", "messages": USER, "max_tokens": 2})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["role"] == "assistant"
