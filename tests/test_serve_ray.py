"""Ray Serve replicas with session affinity (serve/ray_app.py).

Fast tier: the affinity key, the layout's checks, the deployments ``build_app`` makes, and the
ASGI bridge a replica runs requests through (streaming, disconnects), with a tiny random model
and no sockets. Slow tier (``TestOnRay``): a local Ray cluster with two CPU replicas of the
embedded model, reached through loopback with the ``openai`` client.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("ray.serve")

from langchain_attention_buckets.cli import build_parser  # noqa: E402
from langchain_attention_buckets.serve.app import ServerSettings, create_app, wrap  # noqa: E402
from langchain_attention_buckets.serve.ray_app import (  # noqa: E402
    Ingress,
    RaySettings,
    affinity_key,
    asgi_messages,
    build_app,
    layout_from_args,
)

SYSTEM = "You are a careful assistant. Answer in one short sentence and never use lists."
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def turn(messages, **extra) -> bytes:
    return json.dumps({"messages": messages, **extra}).encode()


TURN_1 = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is Lyon?"}]
TURN_2 = TURN_1 + [{"role": "assistant", "content": "In France."}, {"role": "user", "content": "And Turin?"}]


# --- the affinity key -------------------------------------------------------------------------


def test_turn_two_gets_the_key_of_turn_one():
    assert affinity_key({}, turn(TURN_1)) == affinity_key({}, turn(TURN_2))
    assert affinity_key({}, turn(TURN_1)) == affinity_key({}, turn(TURN_2, tools=TOOLS, stream=True))


def test_other_conversations_get_other_keys():
    other_user = [TURN_1[0], {"role": "user", "content": "Where is Turin?"}]
    other_system = [{"role": "system", "content": "Be brief."}, TURN_1[1]]
    keys = {affinity_key({}, turn(m)) for m in (TURN_1, other_user, other_system)}
    assert len(keys) == 3


def test_the_session_header_wins_over_the_conversation():
    a = affinity_key({"x-session-id": "agent-7"}, turn(TURN_1))
    assert a == affinity_key({"x-session-id": "agent-7"}, turn([{"role": "user", "content": "something else"}]))
    assert a == affinity_key({"X-Session-Id": "agent-7"}, b"not json")
    assert a != affinity_key({"x-session-id": "agent-8"}, turn(TURN_1))
    assert a != affinity_key({}, turn(TURN_1))


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", turn("text"), turn([1, 2]), b'{"model": "m"}', turn([])])
def test_no_key_for_what_is_not_a_chat_request(body):
    assert affinity_key({}, body) is None


# --- the layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, named", [
    ({"replicas": 0}, "replicas=0"),
    ({"replicas": 2, "max_replicas": 1}, "max_replicas=1"),
    ({"replica_cpus": -1}, "replica_cpus=-1"),
    ({"replica_gpus": "one"}, "replica_gpus='one'"),
    ({"max_ongoing_requests": 0}, "max_ongoing_requests=0"),
    ({"fallback_replicas": -1}, "fallback_replicas=-1"),
    ({"target_ongoing_requests": 0}, "target_ongoing_requests=0"),
    ({"replicas": True}, "replicas=True"),
    ({"affinity": "yes"}, "affinity='yes'"),
])
def test_bad_layouts_are_refused_by_name(kwargs, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        RaySettings(**kwargs)


def test_the_command_line_gives_the_layout():
    args = build_parser().parse_args(["serve", "--ray", "--replicas", "2", "--max-replicas", "4", "--replica-cpus", "2",
                                      "--max-ongoing-requests", "32", "--no-affinity"])
    assert layout_from_args(args) == RaySettings(replicas=2, max_replicas=4, replica_cpus=2.0, max_ongoing_requests=32,
                                                 affinity=False)
    assert layout_from_args(build_parser().parse_args(["serve", "--ray"])) == RaySettings()


def _deployments(app):
    """The ingress deployment and the engine deployment bound to it."""
    ingress = app._bound_deployment
    return ingress, ingress.init_args[0]._bound_deployment


def test_build_app_lays_out_the_replicas():
    pytest.importorskip("ray.serve")
    ingress, engine = _deployments(build_app({"model_kwargs": {"bases": [1e5, 2e5]}, "replicas": 3, "replica_cpus": 2,
                                              "replica_gpus": 1, "max_ongoing_requests": 40}))
    assert ingress.ray_actor_options["num_cpus"] == 0
    assert engine.num_replicas == 3 and engine.max_ongoing_requests == 40
    assert engine.ray_actor_options == {"num_cpus": 2, "num_gpus": 1}
    router = engine._deployment_config.request_router_config
    assert router.request_router_kwargs == {"num_fallback_replicas": 1}
    assert "ConsistentHashRouter" in str(router.request_router_class)


def test_build_app_autoscales_and_refuses_unknown_args():
    pytest.importorskip("ray.serve")
    _, engine = _deployments(build_app({"replicas": 1, "max_replicas": 4, "target_ongoing_requests": 12}))
    scaling = engine._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas, scaling.target_ongoing_requests) == (1, 4, 12)
    with pytest.raises(ValueError, match=r"unknown args \['replica'\]"):
        build_app({"replica": 2})


def test_the_serve_run_config_is_valid_and_builds():
    pytest.importorskip("ray.serve")
    import yaml
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples" / "serve_ray.yaml").read_text())
    (app,) = ServeDeploySchema.model_validate(config).applications
    assert app.import_path == "langchain_attention_buckets.serve.ray_app:build_app"
    assert config["http_options"]["host"] == "127.0.0.1"
    _, engine = _deployments(build_app(app.args))
    assert engine._deployment_config.autoscaling_config.max_replicas == app.args["max_replicas"]


# --- the ASGI bridge a replica runs ---------------------------------------------------------------


def _scope(method: str, path: str) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}


@pytest.fixture
def tiny_app(tiny_chat_dir):
    settings = ServerSettings(model_kwargs={"model": tiny_chat_dir, "bases": [10000.0, 20000.0], "max_tokens": 12},
                              preload=False)
    api = create_app(settings)
    return api, wrap(api, settings)


async def test_the_bridge_streams_a_response_as_the_app_sends_it(tiny_app):
    api, app = tiny_app
    body = turn(TURN_1, stream=True, max_tokens=6, temperature=0)
    messages = [m async for m in asgi_messages(app, _scope("POST", "/v1/chat/completions"), body)]
    assert messages[0]["type"] == "http.response.start" and messages[0]["status"] == 200
    chunks = [m for m in messages[1:] if m.get("body")]
    assert len(chunks) >= 4 and all(m["more_body"] for m in chunks)  # one event per chunk, not one body
    assert messages[-1]["type"] == "http.response.body" and not messages[-1].get("more_body")
    text = b"".join(m["body"] for m in chunks).decode()
    assert text.rstrip().endswith("data: [DONE]")


async def test_the_bridge_answers_errors_in_the_apps_shape(tiny_app):
    _, app = tiny_app
    messages = [m async for m in asgi_messages(app, _scope("POST", "/v1/chat/completions"), b'{"messages": 3}')]
    assert messages[0]["status"] == 400
    assert json.loads(messages[1]["body"])["error"]["param"] == "messages"


async def test_closing_the_bridge_is_a_disconnect_that_frees_the_rows(tiny_app):
    api, app = tiny_app
    body = turn(TURN_1, stream=True, max_tokens=3000, temperature=0)
    answer = asgi_messages(app, _scope("POST", "/v1/chat/completions"), body)
    async for message in answer:
        if message.get("body"):
            break
    await answer.aclose()  # the ingress stopped reading: the client went away
    engine = api.state.models.default.engine()
    for _ in range(100):  # 5 s; the whole answer would take far longer
        if api.state.admission.running == 0 and engine.activity()["running"] == 0:
            break
        await asyncio.sleep(0.05)
    assert api.state.admission.running == 0 and engine.activity() == {"running": 0, "rows": 0, "queued": 0}


# --- the ingress, with a stand-in for the engine deployment's handle ------------------------------


class FakeHandle:
    """Records ``options`` and answers ``forward.remote`` with ``answer(scope, body)``."""

    def __init__(self, answer):
        self.answer, self.options_given, self.forwarded = answer, [], []
        self.forward = self

    def options(self, **kwargs):
        self.options_given.append(kwargs)
        return self

    def remote(self, scope, body):
        self.forwarded.append((scope, body))
        self.last = FakeAnswer(self.answer(scope, body))
        return self.last


class FakeAnswer:
    """A streamed answer as a ``DeploymentResponseGenerator`` is one: iterated, and cancellable."""

    def __init__(self, chunks):
        self.chunks, self.cancelled = chunks, False

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self.chunks.__anext__()

    def cancel(self):
        self.cancelled = True


async def _replica_answer(scope, body):
    yield 200, {"content-type": "text/event-stream", "x-replica-id": "r1"}
    yield b"data: 1\n\n"
    yield b"data: [DONE]\n\n"


def _request(body: bytes, headers: dict[str, str]):
    from starlette.requests import Request

    scope = _scope("POST", "/v1/chat/completions")
    scope["headers"] = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    parts = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    return Request(scope, receive)


async def _body_of(response) -> bytes:
    return b"".join([chunk async for chunk in response.body_iterator])


async def test_the_ingress_routes_by_key_and_relays_the_answer_as_it_comes():
    engine = FakeHandle(_replica_answer)
    headers = {"X-Session-Id": "agent-1", "Authorization": "Bearer k"}
    response = await Ingress(engine, 1000, affinity=True)(_request(turn(TURN_1), headers))
    assert engine.options_given == [{"stream": True, "session_id": affinity_key({"x-session-id": "agent-1"}, b"")}]
    scope, body = engine.forwarded[0]
    assert body == turn(TURN_1) and (b"authorization", b"Bearer k") in scope["headers"]
    assert scope["path"] == "/v1/chat/completions" and scope["method"] == "POST"
    assert (response.status_code, response.headers["x-replica-id"]) == (200, "r1")
    assert await _body_of(response) == b"data: 1\n\ndata: [DONE]\n\n"


async def test_a_client_that_stops_reading_cancels_the_call_on_the_replica():
    engine = FakeHandle(_replica_answer)
    response = await Ingress(engine, 1000, affinity=True)(_request(turn(TURN_1), {}))
    body = response.body_iterator
    assert await body.__anext__() == b"data: 1\n\n"
    await body.aclose()  # what Starlette does when the client goes away
    assert engine.last.cancelled

    response = await Ingress(engine, 1000, affinity=True)(_request(turn(TURN_1), {}))
    await _body_of(response)
    assert not engine.last.cancelled  # an answer read to its end has nothing to cancel


async def test_without_affinity_or_a_key_the_ingress_leaves_routing_to_ray():
    engine = FakeHandle(_replica_answer)
    await Ingress(engine, 1000, affinity=False)(_request(turn(TURN_1), {"X-Session-Id": "agent-1"}))
    await Ingress(engine, 1000, affinity=True)(_request(b"not json", {}))
    assert engine.options_given == [{"stream": True}, {"stream": True}]


async def test_the_ingress_refuses_a_body_over_the_limit_without_calling_a_replica():
    engine = FakeHandle(_replica_answer)
    response = await Ingress(engine, 100, affinity=True)(_request(b"x" * 101, {}))
    assert response.status_code == 413 and json.loads(response.body)["error"]["code"] == "request_too_large"
    assert engine.forwarded == []


async def test_a_replica_that_dies_under_a_request_is_a_503_to_retry():
    from ray.exceptions import ActorDiedError

    async def dies(scope, body):
        raise ActorDiedError()
        yield

    response = await Ingress(FakeHandle(dies), 1000, affinity=True)(_request(turn(TURN_1), {}))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "ActorDiedError" in json.loads(response.body)["error"]["message"]


# --- on a local Ray cluster: two CPU replicas of the embedded model --------------------------------


def _ray_processes() -> list:
    import psutil

    return [p for p in psutil.Process().children(recursive=True)]


@pytest.fixture(scope="class")
def deployed():
    """Two replicas on a local Ray; stopped (and Ray shut down) even when a test fails."""
    pytest.importorskip("ray.serve")
    from langchain_attention_buckets.serve.ray_app import start_ray_app

    settings = ServerSettings(model_kwargs={"bases": [100000.0, 180000.0], "max_tokens": 8, "temperature": 0})
    with start_ray_app(settings, replicas=2, ray_init={"log_to_driver": False}) as app:
        yield app


def _client(url):
    from openai import AsyncOpenAI, OpenAI

    return OpenAI(base_url=url, api_key="none", max_retries=0), AsyncOpenAI(base_url=url, api_key="none", max_retries=0)


async def _ask(client, messages, **kwargs):
    raw = await client.chat.completions.with_raw_response.create(model=None, messages=messages, **kwargs)
    return raw.headers["x-replica-id"], raw.parse()


@pytest.mark.slow
@pytest.mark.embedded
@pytest.mark.enable_socket
class TestOnRay:
    async def test_both_replicas_serve_and_a_session_stays_on_one(self, deployed):
        _, client = _client(deployed.url)
        one = [{"role": "user", "content": "Say hi."}]

        async def session(i):
            header = {"X-Session-Id": f"agent-{i}"}
            return [(await _ask(client, one, max_tokens=1, extra_headers=header))[0] for _ in range(3)]

        seen = await asyncio.gather(*(session(i) for i in range(12)))
        assert all(len(set(replicas)) == 1 for replicas in seen), seen
        assert len({replicas[0] for replicas in seen}) == 2, seen  # a 2**-11 chance to fail by hashing

    async def test_turn_two_reaches_the_replica_of_turn_one_and_its_cache(self, deployed):
        _, client = _client(deployed.url)

        async def conversation(i):
            first = [{"role": "system", "content": f"{SYSTEM} You are agent number {i}, of team {i * 7}."},
                     {"role": "user", "content": f"Name a colour that starts with the letter {'bgrw'[i]}."}]
            replica_1, answer_1 = await _ask(client, first)
            second = first + [{"role": "assistant", "content": answer_1.choices[0].message.content},
                              {"role": "user", "content": "Why that one?"}]
            replica_2, answer_2 = await _ask(client, second)
            return replica_1, replica_2, answer_1.usage, answer_2.usage

        for replica_1, replica_2, usage_1, usage_2 in await asyncio.gather(*(conversation(i) for i in range(4))):
            assert replica_1 == replica_2
            cached = usage_2.prompt_tokens_details.cached_tokens
            assert cached >= usage_1.prompt_tokens - 8 and cached > usage_1.prompt_tokens_details.cached_tokens

    def test_a_streamed_answer_streams_through_ray(self, deployed):
        client, _ = _client(deployed.url)
        assert client.models.list().data[0].id == deployed.served
        with client.chat.completions.with_streaming_response.create(
                model=None, messages=TURN_1, stream=True, max_tokens=8,
                stream_options={"include_usage": True}) as response:
            assert response.headers["x-replica-id"]
            arrivals = [(time.monotonic(), chunk) for chunk in response.parse()]
        texts = [c.choices[0].delta.content for _, c in arrivals if c.choices and c.choices[0].delta.content]
        assert len(texts) >= 3 and arrivals[-1][1].usage.completion_tokens == 8
        assert arrivals[-1][0] - arrivals[0][0] > 0.05  # chunks came as decoded, not in one piece

    def test_a_client_that_leaves_frees_its_rows_on_the_replica(self, deployed):
        import httpx

        url, header = deployed.url, {"X-Session-Id": "leaver"}
        never_end = {"0": -100, "2": -100}  # the embedded model's end tokens: the answer runs all 300 tokens
        body = {"messages": TURN_1, "stream": True, "max_tokens": 3000, "logit_bias": never_end, "loop_detection": False}
        with httpx.stream("POST", f"{url}/chat/completions", json=body, headers=header, timeout=60) as response:
            replica = response.headers["x-replica-id"]
            next(response.iter_lines())  # one event, then the client goes away (3000 tokens take minutes)
        health_url = url.removesuffix("/v1") + "/health"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the session header routes /health to the same replica
            health = httpx.get(health_url, headers=header, timeout=10)
            if health.json()["engine"]["running"] == 0:
                break
            time.sleep(0.2)
        assert health.headers["x-replica-id"] == replica
        assert health.json()["engine"] == {"running": 0, "rows": 0, "queued": 0}

    def test_stop_leaves_no_ray_processes(self, deployed):
        import psutil
        import ray

        processes = _ray_processes()
        assert any("raylet" in p.name() for p in processes)
        deployed.stop()
        assert not ray.is_initialized()
        _, alive = psutil.wait_procs(processes, timeout=30)
        assert not alive, [p.name() for p in alive]
