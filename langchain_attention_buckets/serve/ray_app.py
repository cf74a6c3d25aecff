"""Ray Serve replicas of the server, one engine each, with session affinity.

The flow: Ray's HTTP proxy -> ``Ingress`` (a light replica without CPUs: reads the body, computes
the affinity key) -> ``EngineReplica`` (one engine per replica: runs ``create_app``'s ASGI
application on the forwarded request and streams its response messages back) -> the ingress
streams them to the client. Request handling (validation, limits, errors, streaming) is
``create_app``'s, unchanged; this module only routes.

Affinity: the key is the ``X-Session-Id`` header if given, else a hash of the conversation's
opening (its leading system/developer messages and first user message), which every later turn
of the conversation repeats. The ingress calls the engine deployment with
``handle.options(session_id=key)`` and the engine deployment routes with Ray's consistent-hash
router: a key's replica is a function of the key and the set of running replicas only, the same
from every ingress replica, with no state to propagate. When that replica is full
(``max_ongoing_requests``) the next replica on the ring takes the request; when a replica dies or
the deployment scales, only the keys that hashed to the changed replicas move, and their next
turn recomputes its prefix once on the new replica. Requests without a key spread uniformly.

Entry points: ``start_ray_app`` (start a local Ray or join ``$RAY_ADDRESS``, deploy, wait until
healthy; returns a ``RayApp``: its URL, the served model id and a stop function), ``build_app``
(the ``serve run`` import path) and ``ray_main`` (``attention-buckets serve --ray``). Each
response names the replica that answered in the ``X-Replica-Id`` header.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from dataclasses import asdict, dataclass, fields
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray.exceptions import RayError

from .app import ServerSettings, create_app, wrap
from .protocol import APIError

SESSION_HEADER = "X-Session-Id"
"""The request header that names an agent's session; its turns reach the same replica."""

REPLICA_HEADER = "X-Replica-Id"
"""The response header that names the replica that answered."""

APP_NAME = "attention-buckets"
HASH_ROUTER = "ray.serve.experimental.consistent_hash_router:ConsistentHashRouter"
_SCOPE_KEYS = ("type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "query_string",
               "root_path", "headers", "client", "server")


@dataclass(frozen=True)
class RaySettings:
    """How the Ray Serve application is laid out.

    Args:
        replicas: engine replicas (the minimum when ``max_replicas`` is set).
        max_replicas: set to autoscale between ``replicas`` and this many, aiming at
            ``target_ongoing_requests`` per replica; None: a fixed ``replicas``.
        target_ongoing_requests: the autoscaler's target of requests in flight per replica.
        replica_cpus: CPUs each engine replica reserves (its torch threads follow).
        replica_gpus: GPUs each engine replica reserves (1: one GPU per replica).
        max_ongoing_requests: requests Ray sends one replica at once; high, so that continuous
            batching has work (the server's own ``max_concurrent``/``max_queue`` apply inside).
        affinity: route by session (see the module docstring); False: uniform spread.
        fallback_replicas: replicas after the key's own tried in ring order when it is full.
    """

    replicas: int = 1
    max_replicas: int | None = None
    target_ongoing_requests: float = 8.0
    replica_cpus: float = 1.0
    replica_gpus: float = 0.0
    max_ongoing_requests: int = 48
    affinity: bool = True
    fallback_replicas: int = 1

    def __post_init__(self):
        for name in ("replicas", "max_ongoing_requests"):
            _check_int(name, getattr(self, name), 1)
        _check_int("fallback_replicas", self.fallback_replicas, 0)
        if self.max_replicas is not None:
            _check_int("max_replicas", self.max_replicas, self.replicas)
        for name in ("replica_cpus", "replica_gpus", "target_ongoing_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name}={value!r} must be a number >= 0")
        if self.target_ongoing_requests <= 0:
            raise ValueError(f"target_ongoing_requests={self.target_ongoing_requests!r} must be > 0")
        if not isinstance(self.affinity, bool):
            raise ValueError(f"affinity={self.affinity!r} must be True or False")

    def most_replicas(self) -> int:
        return self.max_replicas or self.replicas


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")


# --- the affinity key -------------------------------------------------------------------------


def affinity_key(headers: Mapping[str, str], body: bytes) -> str | None:
    """The routing key of a request: its session header, else a hash of the conversation's opening.

    The opening is the messages up to and including the first user message; turn 2 of a
    conversation repeats turn 1's messages, so both turns get the same key. Tools are left out
    (an agent that retrieves its tools per turn stays on its replica). None when the body is
    not a chat request (the engine answers it with its usual error).
    """
    session = headers.get(SESSION_HEADER.lower()) or headers.get(SESSION_HEADER)
    if session:
        return "session:" + hashlib.sha256(session.encode()).hexdigest()[:32]
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    opening = _opening(data.get("messages")) if isinstance(data, dict) else None
    if not opening:
        return None
    text = json.dumps(opening, sort_keys=True, ensure_ascii=False, default=str)
    return "prefix:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _opening(messages) -> list | None:
    if not isinstance(messages, list):
        return None
    opening = []
    for m in messages:
        if not isinstance(m, dict):
            return None
        opening.append([m.get("role"), m.get("content")])
        if m.get("role") == "user":
            break
    return opening


# --- the replicas -----------------------------------------------------------------------------


async def asgi_messages(app, scope: dict, body: bytes) -> AsyncIterator[dict]:
    """The ASGI messages ``app`` sends for one request with ``body``, as it sends them.

    Closing the iterator early is the client going away: the app's ``receive`` then answers
    ``http.disconnect`` (the server frees the call's rows at the next step).
    """
    sent: asyncio.Queue = asyncio.Queue()
    gone = asyncio.Event()
    delivered = False

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    task = asyncio.ensure_future(app(scope, receive, sent.put))
    task.add_done_callback(lambda _: sent.put_nowait(None))
    try:
        while (message := await sent.get()) is not None:
            yield message
            if message["type"] == "http.response.body" and not message.get("more_body"):
                return
        task.result()  # the app ended without a complete response: its exception, if any
    finally:
        gone.set()


class EngineReplica:
    """One engine: ``create_app(settings)`` served to the ingress through ``forward``."""

    async def __init__(self, settings: ServerSettings):
        from ray import serve

        self.api = create_app(settings)
        self.app = wrap(self.api, settings)
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        self._lifespan = self.api.router.lifespan_context(self.api)
        await self._lifespan.__aenter__()  # loads the weights (settings.preload)

    async def forward(self, scope: dict, body: bytes) -> AsyncIterator:
        """(status, headers) first, then the body's chunks as the application sends them."""
        async with aclosing(asgi_messages(self.app, scope, body)) as messages:  # closed now when Ray stops reading
            async for message in messages:
                if message["type"] == "http.response.start":
                    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in message.get("headers", [])}
                    yield message["status"], {**headers, REPLICA_HEADER: self.replica_id}
                elif message["type"] == "http.response.body" and message.get("body"):
                    yield message["body"]


class Ingress:
    """Reads the request, computes its affinity key, and relays the engine's answer as it streams."""

    def __init__(self, engine, max_body_bytes: int, affinity: bool):
        self.engine, self.max_body_bytes, self.affinity = engine, max_body_bytes, affinity

    async def __call__(self, request: Request):
        try:
            body = await _read_body(request, self.max_body_bytes)
        except APIError as err:
            return JSONResponse(err.body(), status_code=err.status, headers=err.headers)
        key = affinity_key(request.headers, body) if self.affinity else None
        handle = self.engine.options(stream=True, **({"session_id": key} if key else {}))
        scope = {k: request.scope[k] for k in _SCOPE_KEYS if k in request.scope}
        answer = handle.forward.remote(scope, body)
        try:
            status, headers = await answer.__anext__()
        except RayError as exc:  # the replica died under the request: the retry goes to another one
            err = APIError(503, f"the replica failed ({type(exc).__name__}); retry", headers={"Retry-After": "1"})
            return JSONResponse(err.body(), status_code=err.status, headers=err.headers)
        return StreamingResponse(_rest(answer), status_code=status, headers=headers)


async def _rest(answer) -> AsyncIterator[bytes]:
    """The rest of the replica's answer. Stopped early (the client went away), it cancels the call
    on the replica itself: otherwise only Ray's cascade from the cancelled ingress request would,
    which Serve does not promise for a call made from its router's own loop."""
    finished = False
    try:
        async for chunk in answer:
            yield chunk
        finished = True
    finally:
        if not finished:
            answer.cancel()


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or a 413 past ``limit`` bytes (so that the ingress never holds a bigger one)."""
    too_big = APIError(413, f"the request body is larger than the server's limit of {limit} bytes",
                       code="request_too_large")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_big
    chunks, seen = [], 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


# --- the application --------------------------------------------------------------------------


def application(settings: ServerSettings, layout: RaySettings):
    """The Ray Serve application: the ingress bound to ``layout.replicas`` engine replicas."""
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    scale: dict[str, Any] = {"num_replicas": layout.replicas}
    if layout.max_replicas is not None:
        scale = {"autoscaling_config": {"min_replicas": layout.replicas, "max_replicas": layout.max_replicas,
                                        "target_ongoing_requests": layout.target_ongoing_requests}}
    router = RequestRouterConfig(request_router_class=HASH_ROUTER,
                                 request_router_kwargs={"num_fallback_replicas": layout.fallback_replicas})
    engine = serve.deployment(EngineReplica, name="engine").options(
        **scale, max_ongoing_requests=layout.max_ongoing_requests, request_router_config=router,
        ray_actor_options={"num_cpus": layout.replica_cpus, "num_gpus": layout.replica_gpus},
    )
    ingress = serve.deployment(Ingress, name="ingress").options(
        num_replicas=1, max_ongoing_requests=layout.max_ongoing_requests * layout.most_replicas(),
        ray_actor_options={"num_cpus": 0},
    )
    return ingress.bind(engine.bind(settings), settings.max_body_bytes, layout.affinity)


def build_app(args: dict[str, Any]):
    """The ``serve run`` entry point: ``ServerSettings`` and ``RaySettings`` fields from the config's ``args``."""
    server_names = {f.name for f in fields(ServerSettings)}
    layout_names = {f.name for f in fields(RaySettings)}
    unknown = sorted(set(args) - server_names - layout_names)
    if unknown:
        raise ValueError(f"unknown args {unknown}; allowed: {sorted(server_names | layout_names)}")
    settings = ServerSettings(**{k: v for k, v in args.items() if k in server_names})
    return application(settings, RaySettings(**{k: v for k, v in args.items() if k in layout_names}))


# --- running it -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RayApp:
    """A deployed application: ``url`` (``http://HOST:PORT/v1``), ``served`` (the model id clients
    send) and ``stop()`` (removes the application; shuts down the Ray that ``start_ray_app`` started).
    A context manager too."""

    url: str
    served: str
    stop: Callable[[], None]

    def __enter__(self) -> RayApp:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_ray_app(settings: ServerSettings, replicas: int | None = None, *, layout: RaySettings | None = None,
                  host: str = "127.0.0.1", port: int = 0, timeout_s: float = 300.0,
                  ray_init: dict[str, Any] | None = None) -> RayApp:
    """Deploy the application and wait until it answers (see ``RayApp``).

    Starts a local Ray (no dashboard, a small object store) unless ``$RAY_ADDRESS`` names a
    cluster to join. ``port`` 0 takes a free port. The stop function removes the application
    and, for a Ray it started, shuts Ray down.

    Args:
        settings: the server each replica runs.
        replicas: shorthand for ``RaySettings(replicas=...)`` (not with ``layout``).
        layout: replicas, resources, autoscaling and affinity.
        ray_init: extra ``ray.init`` arguments for a local Ray.
    """
    import ray
    from ray import serve

    if replicas is not None and layout is not None:
        raise ValueError(f"replicas={replicas!r} and layout= both given; give one")
    layout = layout or RaySettings(replicas=replicas or 1)
    started = None  # the Ray this call started or joined, which stop() shuts down or leaves
    if not ray.is_initialized():
        started = "joined" if os.environ.get("RAY_ADDRESS") else "local"
        if started == "joined":
            ray.init(address="auto")
        else:
            ray.init(**_local_ray(layout, ray_init or {}))
    port = port or _free_port(host)
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(application(settings, layout), name=APP_NAME, route_prefix="/")
        url = f"http://{host}:{port}"
        served = _wait_healthy(url, timeout_s)["model"]
    except BaseException:
        _stop(started)
        raise
    return RayApp(f"{url}/v1", served, lambda: _stop(started))


def _local_ray(layout: RaySettings, extra: dict[str, Any]) -> dict[str, Any]:
    cpus = math.ceil(layout.replica_cpus * layout.most_replicas())
    options = {"num_cpus": max(cpus, 1), "include_dashboard": False, "object_store_memory": 200 * 1024**2}
    if layout.replica_gpus == 0:
        options["num_gpus"] = 0
    return {**options, **extra}


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, timeout_s: float) -> dict[str, Any]:
    import httpx

    deadline, last = time.monotonic() + timeout_s, "no answer"
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{url}/health", timeout=10.0)
            if answer.status_code == 200:
                return answer.json()
            last = f"{answer.status_code} {answer.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise TimeoutError(f"the Ray Serve application at {url} was not healthy within {timeout_s}s: {last}")


def _stop(started: str | None) -> None:
    """Remove the application; shut down a Ray this process started, leave a joined cluster."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        return
    if started == "local":
        serve.shutdown()
    else:
        serve.delete(APP_NAME)
    if started is not None:
        ray.shutdown()


def layout_from_args(args) -> RaySettings:
    """The ``RaySettings`` of ``attention-buckets serve --ray`` arguments."""
    given = {"replicas": args.replicas, "max_replicas": args.max_replicas, "replica_cpus": args.replica_cpus,
             "replica_gpus": args.replica_gpus, "max_ongoing_requests": args.max_ongoing_requests,
             "affinity": not args.no_affinity}
    return RaySettings(**{k: v for k, v in given.items() if v is not None})


def ray_main(args, settings: ServerSettings) -> int:
    """``attention-buckets serve --ray``: deploy, print the URL, serve until interrupted."""
    try:
        layout = layout_from_args(args)
    except ValueError as exc:
        raise SystemExit(f"--ray: {exc}") from None
    app = start_ray_app(settings, layout=layout, host=args.host, port=args.port)
    print(f"serving {app.served} on {app.url} with Ray Serve "
          f"({json.dumps(asdict(layout))}); Ctrl-C stops it", file=sys.stderr)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        app.stop()
    return 0
