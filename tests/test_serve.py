"""The OpenAI-compatible server: endpoints, errors, limits, disconnects, concurrency, real clients.

A tiny random Llama (with the embedded model's tokenizer and chat template) served on a free
loopback port, reached with the official ``openai`` client, ``httpx`` and langchain-openai's
``ChatOpenAI``; the end-to-end agent test serves the embedded model.

Two answers of the same request (the server and the chat model in process, whole and streamed,
concurrent and one at a time, cold and cached) are two computations: their engine runs are
compared token by token up to the first near-tie (``agreement.assert_runs_agree``), and their
text where the tokens agree throughout. A seeded sample is compared in deterministic mode, bit
for bit.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import jsonschema
import pytest
from agreement import Runs, assert_runs_agree, tiny_tolerance
from conftest import CLOSING, TINY_BASES

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from langchain_attention_buckets import ChatAttentionBuckets  # noqa: E402
from langchain_attention_buckets.serve import ServerSettings  # noqa: E402
from langchain_attention_buckets.serve.run import ServerThread  # noqa: E402

pytestmark = pytest.mark.enable_socket

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
USER = [{"role": "user", "content": "What is the weather in Paris?"}]


def _fields(model_dir: str, **extra) -> dict:
    return {"model": model_dir, "bases": TINY_BASES[:2], "max_tokens": 24, "logit_bias": CLOSING, **extra}


@pytest.fixture(scope="module")
def server(tiny_chat_dir):
    with ServerThread(ServerSettings(model_kwargs=_fields(tiny_chat_dir), served_name="tiny")) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def local(tiny_chat_dir):
    """The same settings in this process: what the server's answers must equal."""
    return ChatAttentionBuckets(**_fields(tiny_chat_dir))


def _post(server, body: dict, **kw) -> httpx.Response:
    return httpx.post(f"{server.url}/chat/completions", json=body, timeout=60, **kw)


def _agree(got, want, what: str, same_length: bool = True) -> bool:
    """The two engine runs agree token for token (True), or part at a near-tie (False)."""
    return assert_runs_agree(got, want, tiny_tolerance(want), what, same_length) is None


# ---- endpoints -------------------------------------------------------------------------


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    health = httpx.get(server.url.removesuffix("/v1") + "/health").json()
    assert health["status"] == "ok" and health["model"] == "tiny"
    assert health["engine"] == {"running": 0, "rows": 0, "queued": 0}


def test_chat_equals_the_chat_model(client, local, monkeypatch):
    runs = Runs(monkeypatch)
    r = client.chat.completions.create(model="tiny", messages=USER, max_tokens=12)
    (served,) = runs.take()
    expected = local.invoke(USER, max_tokens=12)
    (in_process,) = runs.take()
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    if _agree(served, in_process, "server vs chat model"):
        assert r.choices[0].message.content == expected.content
        assert r.usage.completion_tokens == expected.usage_metadata["output_tokens"]
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens == expected.usage_metadata["input_tokens"]
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_max_completion_tokens_and_parallel_calls(client):
    r = client.chat.completions.create(model="tiny", messages=USER, max_completion_tokens=3,
                                       extra_body={"logit_bias": {"2": -100}})
    assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"
    r = client.chat.completions.create(model="tiny", messages=USER, tools=[WEATHER], tool_choice="required",
                                       parallel_tool_calls=True, max_tokens=80)
    assert r.choices[0].message.tool_calls and all(c.function.name == "get_weather" for c in r.choices[0].message.tool_calls)


def test_stream_text_equals_whole(client, monkeypatch):
    runs = Runs(monkeypatch)
    whole = client.chat.completions.create(model="tiny", messages=USER, max_tokens=12)
    chunks = list(client.chat.completions.create(model="tiny", messages=USER, max_tokens=12, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    first, streamed = runs.take()
    if _agree(streamed, first, "streamed vs whole (cached)"):
        assert text == whole.choices[0].message.content
        assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert all(c.usage is None for c in chunks)  # no usage unless asked


def test_stream_usage_chunk(client):
    chunks = list(client.chat.completions.create(
        model="tiny", messages=USER, max_tokens=8, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1
    assert all(c.usage is None for c in chunks[:-1])


def test_forced_tool_call(client):
    r = client.chat.completions.create(model="tiny", messages=USER, tools=[WEATHER], tool_choice="required", max_tokens=120)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])


def test_named_tool_choice(client):
    other = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    r = client.chat.completions.create(
        model="tiny", messages=USER, tools=[WEATHER, other],
        tool_choice={"type": "function", "function": {"name": "get_time"}}, max_tokens=40)
    assert [c.function.name for c in r.choices[0].message.tool_calls] == ["get_time"]


def test_dotted_tool_names_as_mcp_servers_write_them(client):
    dotted = {"type": "function", "function": {**WEATHER["function"], "name": "weather.current"}}
    r = client.chat.completions.create(
        model="tiny", messages=USER, tools=[dotted],
        tool_choice={"type": "function", "function": {"name": "weather.current"}}, max_tokens=40)
    assert [c.function.name for c in r.choices[0].message.tool_calls] == ["weather.current"]  # returned as sent
    bad = {"type": "function", "function": {**WEATHER["function"], "name": "weather/current"}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=USER, tools=[bad], max_tokens=4)
    assert err.value.body["param"] == "tools[0].function.name" and "weather/current" in err.value.body["message"]


def test_streamed_tool_call_deltas(client, monkeypatch):
    runs = Runs(monkeypatch)
    whole = client.chat.completions.create(model="tiny", messages=USER, tools=[WEATHER], tool_choice="required", max_tokens=120)
    chunks = list(client.chat.completions.create(
        model="tiny", messages=USER, tools=[WEATHER], tool_choice="required", max_tokens=120, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    first = deltas[0]
    assert first.index == 0 and first.id.startswith("call_") and first.type == "function"
    assert first.function.name == "get_weather"
    assert all(d.id is None and d.function.name is None for d in deltas[1:])  # later deltas: argument text only
    arguments = "".join(d.function.arguments or "" for d in deltas)
    first_run, streamed = runs.take()
    if _agree(streamed, first_run, "streamed call (cached) vs whole"):
        assert arguments == whole.choices[0].message.tool_calls[0].function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_forced_call_closed_early_is_length(client):
    """The grammar closes the call to fit 40 tokens: a valid call, but cut; OpenAI says "length"."""
    r = client.chat.completions.create(model="tiny", messages=USER, tools=[WEATHER], tool_choice="required", max_tokens=40,
                                       extra_body={"logit_bias": {"2": -100}})
    assert r.choices[0].finish_reason == "length" and r.model_extra["attention_buckets"]["truncated"] is True
    jsonschema.validate(json.loads(r.choices[0].message.tool_calls[0].function.arguments), WEATHER["function"]["parameters"])


def test_tool_results_in_the_conversation(client):
    messages = USER + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
    ]
    r = client.chat.completions.create(model="tiny", messages=messages, tools=[WEATHER], tool_choice="none", max_tokens=8)
    assert r.choices[0].message.tool_calls is None and isinstance(r.choices[0].message.content, str)
    assert r.usage.prompt_tokens > 30


def test_a_returned_invalid_call_can_be_sent_back(server):
    """Arguments that are not JSON (a call cut off by max_tokens, as this server returns it) are
    accepted back in the history, as OpenAI's API accepts any argument string."""
    messages = USER + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Par'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "error: the call was cut off"},
    ]
    r = _post(server, {"model": "tiny", "messages": messages, "tools": [WEATHER], "max_tokens": 4})
    assert r.status_code == 200, r.text
    bad = [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": 3}}]}]
    r = _post(server, {"model": "tiny", "messages": USER + bad})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[1].tool_calls[0].function.name"


@pytest.mark.parametrize("fmt", [
    {"type": "json_object"},
    {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
])
def test_response_format(client, fmt):
    r = client.chat.completions.create(model="tiny", messages=USER, response_format=fmt, max_tokens=60)
    value = json.loads(r.choices[0].message.content)
    jsonschema.validate(value, PERSON if fmt["type"] == "json_schema" else {"type": "object"})


def test_openai_parse_helper(client):
    """The client's own structured-output helper: a pydantic model in, a parsed instance out."""
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    r = client.chat.completions.parse(model="tiny", messages=USER, response_format=Person, max_tokens=60)
    assert isinstance(r.choices[0].message.parsed, Person)


def test_bucket_settings_per_request(client, local, monkeypatch):
    runs = Runs(monkeypatch)
    r = client.chat.completions.create(model="tiny", messages=USER, max_tokens=6,
                                       extra_body={"bases": [10000.0], "aggregation": "mean"})
    assert r.model_extra["attention_buckets"]["bases"] == [10000.0]
    assert r.model_extra["attention_buckets"]["aggregation"] == "mean"
    plain = local.model_copy(update={"bases": [10000.0]})
    expected = plain.invoke(USER, max_tokens=6, aggregation="mean").content
    served, in_process = runs.take()  # also checks that the server ran plain's bases and rule
    if _agree(served, in_process, "server vs chat model, one base"):
        assert r.choices[0].message.content == expected


def test_seed_and_sampling(client):
    # A seed reproduces a sample bit for bit in deterministic mode (the second call's prompt comes
    # from the prefix cache: in the default mode only up to rounding); another seed draws another.
    kw = dict(model="tiny", messages=USER, max_tokens=10, temperature=1.0, top_p=0.9)
    answer = lambda seed: client.chat.completions.create(  # noqa: E731
        **kw, seed=seed, extra_body={"deterministic": True}).choices[0].message.content
    assert answer(7) == answer(7)
    assert answer(8) != answer(7)


def test_stop_strings(client, monkeypatch):
    runs = Runs(monkeypatch)
    whole = client.chat.completions.create(model="tiny", messages=USER, max_tokens=12).choices[0].message.content
    cut = next((whole[:i] for i in range(3, len(whole)) if whole[i] not in " \n" and whole[i] not in whole[:i]), None)
    if cut is None:
        pytest.skip("no usable stop string in this output")
    r = client.chat.completions.create(model="tiny", messages=USER, max_tokens=12, stop=[whole[len(cut)]])
    first, stopped = runs.take()
    if _agree(stopped, first, "with a stop string vs without (cached)", same_length=False):
        assert r.choices[0].message.content == cut and r.choices[0].finish_reason == "stop"


# ---- bad requests ---------------------------------------------------------------------

BAD = [
    ({"messages": []}, "messages"),
    ({"temperature": 5}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_completion_tokens": -1}, "max_completion_tokens"),
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"foo": 1}, "foo"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
     "messages[0].content[0]"),
    ({"aggregation": "nope"}, "aggregation"),
    ({"bases": [-1]}, "bases"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!", "parameters": {}}}]}, "tools[0].function.name"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ({"stop": [""]}, "stop"),
    ({"logit_bias": {"abc": 1}}, "logit_bias"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
]


@pytest.mark.parametrize("extra,param", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_request_is_a_400_naming_the_field(server, extra, param):
    body = {"model": "tiny", "messages": USER, **extra}
    r = _post(server, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    name = next(iter(extra))
    named = {name, name.rstrip("s"), param, (param or "").replace("messages[", "message ").rstrip("]")}
    assert any(n and n in error["message"] for n in named), error
    if param is not None:
        assert error["param"] == param


def test_invalid_json_is_a_400(server):
    r = httpx.post(f"{server.url}/chat/completions", content=b"{not json", timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_unknown_model_is_a_404(server):
    r = _post(server, {"model": "gpt-4o", "messages": USER})
    assert r.status_code == 404 and "gpt-4o" in r.json()["error"]["message"] and "tiny" in r.json()["error"]["message"]


def test_over_long_prompt_is_a_413(server):
    r = _post(server, {"model": "tiny", "messages": [{"role": "user", "content": "word " * 5000}]})
    assert r.status_code == 413 and r.json()["error"]["code"] == "context_length_exceeded"


def test_openai_client_raises_its_own_errors(client):
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="tiny", messages=USER, temperature=3)


def test_body_limit_api_key_and_queue(tiny_chat_dir, monkeypatch):
    monkeypatch.delenv("ATTENTION_BUCKETS_API_KEY", raising=False)
    settings = ServerSettings(model_kwargs=_fields(tiny_chat_dir, max_tokens=400, logit_bias=None), served_name="tiny",
                              api_key="s3cret", max_body_bytes=4096, max_concurrent=1, max_queue=0)
    with ServerThread(settings) as srv:
        headers = {"Authorization": "Bearer s3cret"}
        r = _post(srv, {"model": "tiny", "messages": USER})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert _post(srv, {"model": "tiny", "messages": USER}, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(srv.url.removesuffix("/v1") + "/health").status_code == 200  # health needs no key
        root = srv.url.removesuffix("/v1")
        for path in ("/docs", "/openapi.json", "/redoc"):  # the API's documentation is behind the key too
            r = httpx.get(root + path)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", path
        assert httpx.get(root + "/openapi.json", headers=headers).status_code == 200
        for scheme in ("bearer", "BEARER", "Bearer "):  # the scheme is case-insensitive (RFC 7235)
            assert httpx.get(srv.url + "/models", headers={"Authorization": f"{scheme} s3cret"}).status_code == 200
        assert httpx.get(srv.url + "/models", headers={"Authorization": "Basic s3cret"}).status_code == 401
        assert httpx.get(srv.url + "/models", headers={"Authorization": "Bearer S3CRET"}).status_code == 401
        big = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 5000}]}
        r = _post(srv, big, headers=headers)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        # one long request holds the only slot; with no queue the next one is turned away
        slow = threading.Thread(target=_post, args=(srv, {"model": "tiny", "messages": USER, "max_tokens": 400}),
                                kwargs={"headers": headers})
        slow.start()
        _wait(lambda: srv.app.state.admission.running == 1)
        r = _post(srv, {"model": "tiny", "messages": USER, "max_tokens": 2}, headers=headers)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "overloaded_error"
        slow.join()
        assert _post(srv, {"model": "tiny", "messages": USER, "max_tokens": 2}, headers=headers).status_code == 200


# ---- disconnects and concurrency ------------------------------------------------------


def _wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _engine(server):
    return server.app.state.models.default.engine()


@pytest.mark.parametrize("stream", [True, False])
def test_disconnect_frees_rows(server, client, stream, monkeypatch):
    """A client that goes away stops its generation: 4,000 tokens are asked for, one per pass
    (``deterministic``: no speculation), and far fewer passes run."""
    engine = _engine(server)
    passes = engine.stats.decode_passes
    body = {"model": "tiny", "messages": USER, "max_tokens": 4000, "logit_bias": {"2": -100}, "loop_detection": False,
            "deterministic": True, "stream": stream}
    with httpx.Client(timeout=60) as http:
        if stream:
            with http.stream("POST", f"{server.url}/chat/completions", json=body) as r:
                lines = r.iter_lines()
                assert next(lines).startswith("data: ")  # the stream has started; now the client leaves
        else:
            with pytest.raises(httpx.ReadTimeout):
                http.post(f"{server.url}/chat/completions", json=body, timeout=1.0)
    _wait(lambda: engine.activity() == {"running": 0, "rows": 0, "queued": 0}, timeout=5)
    _wait(lambda: server.app.state.admission.running == 0, timeout=5)
    assert engine.stats.decode_passes - passes < 3000  # stopped early, not run to max_tokens
    runs = Runs(monkeypatch)  # and the server still answers, the same answer twice
    r = client.chat.completions.create(model="tiny", messages=USER, max_tokens=12)
    again = client.chat.completions.create(model="tiny", messages=USER, max_tokens=12)
    first, second = runs.take()
    if _agree(second, first, "after a disconnect: again (cached) vs first"):
        assert r.choices[0].message.content == again.choices[0].message.content


def test_concurrent_greedy_equals_serial(client, server, monkeypatch):
    runs = Runs(monkeypatch)
    prompts = [[{"role": "user", "content": f"Question {i}: what is {i} plus {i * 3}?"}] for i in range(6)]
    serial = [client.chat.completions.create(model="tiny", messages=p, max_tokens=10).choices[0].message.content
              for p in prompts]
    serial_runs = runs.take_by_prompt()
    before = _engine(server).stats.max_requests
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(
            lambda p: client.chat.completions.create(model="tiny", messages=p, max_tokens=10).choices[0].message.content,
            prompts))
    together_runs = runs.take_by_prompt()
    assert together_runs.keys() == serial_runs.keys()
    for i, prompt in enumerate(serial_runs):  # in submission order: serial_runs follows prompts
        if _agree(together_runs[prompt], serial_runs[prompt], f"concurrent vs serial, request {i}"):
            assert together[i] == serial[i]
    assert _engine(server).stats.max_requests >= max(before, 2)  # they did share decode steps


# ---- langchain-openai's ChatOpenAI --------------------------------------------------------


@pytest.fixture(scope="module")
def chat_openai(server):
    langchain_openai = pytest.importorskip("langchain_openai")
    return langchain_openai.ChatOpenAI(base_url=server.url, api_key="unused", model="tiny", max_tokens=40,
                                       temperature=0, max_retries=0)


def test_chat_openai_bind_tools_and_stream(chat_openai, monkeypatch):
    from langchain_core.messages import AIMessageChunk

    runs = Runs(monkeypatch)
    bound = chat_openai.bind_tools([WEATHER], tool_choice="get_weather")
    msg = bound.invoke("What is the weather in Paris?")
    assert [c["name"] for c in msg.tool_calls] == ["get_weather"] and isinstance(msg.tool_calls[0]["args"], dict)
    merged = None
    for chunk in bound.stream("What is the weather in Paris?"):
        assert isinstance(chunk, AIMessageChunk)
        merged = chunk if merged is None else merged + chunk
    # a forced call: the grammar masks, but both runs' picks are allowed wherever they part
    first, streamed = runs.take()
    if _agree(streamed, first, "streamed call vs invoked (cached)"):
        assert merged.tool_calls[0]["args"] == msg.tool_calls[0]["args"]
    assert [c["name"] for c in merged.tool_calls] == ["get_weather"]
    text = "".join(c.content for c in chat_openai.stream("Hello"))
    whole = chat_openai.invoke("Hello").content
    first, again = runs.take()
    if _agree(again, first, "invoked vs streamed (cached)"):
        assert text == whole


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_chat_openai_structured_output(chat_openai, method):
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    result = chat_openai.with_structured_output(Person, method=method).invoke("Make up a person.")
    assert isinstance(result, Person)


@pytest.mark.embedded
def test_chat_openai_create_agent_against_the_embedded_model():
    """The main job through the server: create_agent with ChatOpenAI calls a tool and answers from it."""
    langchain_openai = pytest.importorskip("langchain_openai")
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    calls = []

    @tool
    def get_stock_level(product: str) -> str:
        """How many units of a product are in the warehouse."""
        calls.append(product)
        return f"{product}: 42 units"

    # the embedded model with its defaults but one bucket (six take ~5x longer here; the in-process
    # suite TestWithDefaultSettings runs the agent loop with all six)
    settings = ServerSettings(model_kwargs={"max_tokens": 64, "bases": 100000.0})
    with ServerThread(settings) as srv:
        llm = langchain_openai.ChatOpenAI(base_url=srv.url, api_key="unused", model=srv.app.state.served,
                                          temperature=0, max_retries=0)
        agent = create_agent(llm, [get_stock_level])
        result = agent.invoke({"messages": [("user", "How many units of blue mugs are in stock?")]},
                              {"recursion_limit": 8})
    kinds = [type(m).__name__ for m in result["messages"]]
    assert "ToolMessage" in kinds and calls, kinds
    assert kinds[-1] == "AIMessage" and not result["messages"][-1].tool_calls


# ---- the load run (attention-buckets bench serve) -------------------------------------------


def test_load_run_accounts_for_every_request(server, monkeypatch):
    import asyncio

    from langchain_attention_buckets.bench.load import load_run, replay, summarize

    runs = Runs(monkeypatch)
    records, wall = asyncio.run(load_run(server.url, "tiny", sessions=4, turns=3, max_tokens=12, affinity=True,
                                         timeout=60, deadline=120))
    loaded = runs.take_by_prompt()
    summary = summarize(records, wall, expected=12)
    assert summary["requests_ok"] == summary["requests_sent"] == 12 and summary["requests_failed"] == 0
    assert {(r.session, r.turn) for r in records} == {(s, t) for s in range(4) for t in range(3)}
    assert 0 < summary["ttft_p50"] <= summary["latency_p95"] and summary["tokens_per_second"] > 0
    assert 0 < summary["cache_hit_rate"] < 1  # the shared system prompt and earlier turns come from the cache
    later = [r for r in records if r.turn > 0]
    assert all(r.cached_tokens > 0 for r in later)
    assert all(len(r.body["messages"]) > 2 for r in later)  # each turn sends the conversation so far
    runs = Runs(monkeypatch)
    again = asyncio.run(replay(server.url, records, timeout=60))
    replayed = runs.take_by_prompt()
    assert again["replayed"] == 12 and len(replayed) == 12
    # the load run's answers (concurrent, cached) against the replay's (alone, in order), by prompt
    agreeing = sum(_agree(loaded[p], replayed[p], f"load run vs replay, {i}") for i, p in enumerate(replayed))
    assert again["equal"] >= agreeing, again["different"]  # equal tokens: equal answers


def test_load_run_reports_failures(server):
    import asyncio

    from langchain_attention_buckets.bench.load import load_run, summarize

    records, wall = asyncio.run(load_run(server.url, "not-served", sessions=2, turns=2, max_tokens=4, affinity=True,
                                         timeout=30, deadline=60))
    summary = summarize(records, wall, expected=4)
    assert summary["requests_ok"] == 0 and summary["requests_failed"] == 2  # each session stops at its failed turn
    assert all(r.status == 404 for r in records) and "not-served" in summary["errors"][0]


def test_reasoning_content_in_answers_deltas_and_history():
    from langchain_core.messages import AIMessage, AIMessageChunk

    from langchain_attention_buckets.serve.convert import ChunkWriter, completion, to_messages

    message = AIMessage(content="It is sunny.", additional_kwargs={"reasoning_content": "The user asks about Paris."})
    body = completion(message, "m", "id", 0)["choices"][0]["message"]
    assert body == {"role": "assistant", "content": "It is sunny.", "reasoning_content": "The user asks about Paris."}
    writer = ChunkWriter("m", include_usage=False)
    (delta,) = writer.delta(AIMessageChunk(content="", additional_kwargs={"reasoning_content": "The user"}))
    assert delta["choices"][0]["delta"] == {"reasoning_content": "The user"}
    assert "reasoning_content" not in completion(AIMessage(content="x"), "m", "id", 0)["choices"][0]["message"]
    history = to_messages([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "reasoning_content": "greet back"},
        {"role": "assistant", "content": None, "reasoning_content": "call it",
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    ])
    assert [m.additional_kwargs.get("reasoning_content") for m in history[1:]] == ["greet back", "call it"]


def test_reasoning_switch_in_a_request():
    from langchain_attention_buckets.serve.protocol import ChatCompletionRequest

    msgs = [{"role": "user", "content": "hi"}]
    assert ChatCompletionRequest(messages=msgs, reasoning=False).call_options()["reasoning"] is False
    vllm_style = ChatCompletionRequest(messages=msgs, chat_template_kwargs={"enable_thinking": True})
    assert vllm_style.call_options()["reasoning"] is True
    assert "reasoning" not in ChatCompletionRequest(messages=msgs).call_options()
    with pytest.raises(ValueError, match="'tools_in_user_message' is not read"):
        ChatCompletionRequest(messages=msgs, chat_template_kwargs={"tools_in_user_message": False})
