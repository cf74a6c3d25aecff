"""The OpenAI-compatible HTTP application over one engine (FastAPI).

Owns ``ServerSettings``, ``create_app`` and the request's life: authentication, the body-size
limit, admission (at most ``max_concurrent`` requests generate, ``max_queue`` more wait, the
rest get a 503), the chat model call (``ChatAttentionBuckets.astream`` in a task of its own, so
that a client that goes away cancels it and its rows leave the engine's batch at the next
step), and the answer as JSON or server-sent events. Every request of one process shares one
engine (continuous batching across requests); per-request ``bases``/``n_buckets``/
``deterministic`` get a chat model of their own over the same weights.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from langchain_core.messages import AIMessageChunk
from langchain_core.messages.ai import add_ai_message_chunks
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from ..chat.errors import OptionError
from ..chat.model import ChatAttentionBuckets
from ..engine import ContextLengthError, MemoryBudgetError
from .args import API_KEY_ENV
from .convert import ChunkWriter, completion, new_id, sse, to_messages
from .protocol import APIError, ChatCompletionRequest, parse_body, validation_error

# Paths that answer without the API key: the liveness check only (the API and its documentation,
# /docs and /openapi.json, need the key when one is set).
_OPEN_PATHS = ("/health",)

_END = object()


@dataclass
class ServerSettings:
    """How the server runs.

    Args:
        model_kwargs: keyword arguments of the served ``ChatAttentionBuckets`` (model, bases,
            aggregation, device, dtype, max_tokens, model_kwargs, ...).
        served_name: the model id clients send and ``/v1/models`` lists (default: the model's name).
        api_key: clients must send ``Authorization: Bearer <key>``; None: ``$ATTENTION_BUCKETS_API_KEY``
            if set, else no key (then bind to loopback only).
        max_concurrent: requests generating at once (the engine batches them together).
        max_queue: requests waiting beyond those; the next one gets a 503.
        max_body_bytes: largest request body (413 beyond).
        max_variants: chat models kept for per-request bucket settings (least recently used go).
        preload: load the weights at startup (``/health`` answers 503 until they are in).
    """

    model_kwargs: dict[str, Any] = field(default_factory=dict)
    served_name: str | None = None
    api_key: str | None = None
    max_concurrent: int = 16
    max_queue: int = 64
    max_body_bytes: int = 8 * 1024 * 1024
    max_variants: int = 8
    preload: bool = True

    def __post_init__(self):
        for name in ("max_concurrent", "max_body_bytes", "max_variants"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        if isinstance(self.max_queue, bool) or not isinstance(self.max_queue, int) or self.max_queue < 0:
            raise ValueError(f"max_queue={self.max_queue!r} must be an integer >= 0")
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV) or None


class Admission:
    """At most ``limit`` holders at once and ``queue`` waiters; one more waiter is a 503."""

    def __init__(self, limit: int, queue: int):
        self.limit, self.queue = limit, queue
        self.running = self.waiting = 0
        self._cond = asyncio.Condition()

    async def acquire(self) -> None:
        """Wait for a slot; a 503 when ``queue`` others already wait."""
        async with self._cond:
            if self.running >= self.limit and self.waiting >= self.queue:
                raise APIError(503, f"the server is busy: {self.running} requests running and {self.waiting} "
                               "queued (the limit); retry later", headers={"Retry-After": "1"})
            self.waiting += 1
            try:
                await self._cond.wait_for(lambda: self.running < self.limit)
            finally:
                self.waiting -= 1
            self.running += 1

    def release(self) -> None:
        """Give a slot back (from any task of the loop)."""
        self.running -= 1
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify()


class Models:
    """The served chat model and, for per-request bucket settings, variants over the same weights."""

    def __init__(self, kwargs: dict[str, Any], max_variants: int):
        self.kwargs = dict(kwargs)
        self.default = ChatAttentionBuckets(**self.kwargs)
        self.max_variants = max_variants
        self._variants: OrderedDict[str, ChatAttentionBuckets] = OrderedDict()

    def get(self, overrides: dict[str, Any]) -> ChatAttentionBuckets:
        if not overrides:
            return self.default
        key = json.dumps(overrides, sort_keys=True)
        llm = self._variants.pop(key, None)
        if llm is None:
            try:
                llm = ChatAttentionBuckets(**{**self.kwargs, **overrides})
            except ValidationError as exc:
                raise validation_error(exc) from exc
        self._variants[key] = llm
        while len(self._variants) > self.max_variants:
            self._variants.popitem(last=False)
        return llm


def _status_of(exc: BaseException, body: ChatCompletionRequest | None = None) -> APIError:
    """The API error of an exception raised by a call (``body``: to name a tool by its index)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ContextLengthError):
        return APIError(413, str(exc), param="messages", code="context_length_exceeded")
    if isinstance(exc, MemoryBudgetError):
        return APIError(413, str(exc), param="max_tokens", code="memory_exceeded")
    if isinstance(exc, ValidationError):
        return validation_error(exc)
    if isinstance(exc, OptionError) and exc.param:
        return APIError(400, str(exc), param=exc.param)
    if isinstance(exc, (ValueError, TypeError)):
        message = str(exc)
        return APIError(400, message, param=_param_of(message, body))
    return APIError(500, f"internal error: {type(exc).__name__}")


def _param_of(message: str, body: ChatCompletionRequest | None = None) -> str | None:
    """The request field a chat-model error names: "aggregation='x' ..." -> aggregation,
    "message 2 (tool) ..." -> messages[2], "tool name 'x' ..." -> tools[i].function.name,
    "tool 'x': ..." -> tools[i].function.parameters, a response schema -> response_format.json_schema.schema."""
    if (m := re.match(r"(\w+)[=\s\[]", message)) and m.group(1) in ChatCompletionRequest.model_fields:
        return m.group(1)
    if m := re.match(r"messages? (\d+)", message):
        return f"messages[{m.group(1)}]"
    if m := re.match(r"tool (name )?'([^']*)'", message):
        names = [((t.get("function") or {}).get("name")) for t in (body.tools or [])] if body else []
        where = f"tools[{names.index(m.group(2))}]" if m.group(2) in names else "tools"
        return f"{where}.function.name" if m.group(1) else f"{where}.function.parameters"
    if body is not None and body.response_format and body.response_format.get("type") == "json_schema" \
            and "schema" in message:
        return "response_format.json_schema.schema"
    return None


def _authorized(request: Request, key: str) -> bool:
    """``Authorization: Bearer <key>``, the scheme in any case (RFC 7235), the key exactly."""
    scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode())


def _error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


class _BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is a 413 (by its Content-Length or as it streams in)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        too_big = APIError(413, f"the request body is larger than the server's limit of {self.limit} bytes",
                           code="request_too_large")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _error_response(too_big)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise too_big
            return message

        try:
            await self.app(scope, limited, send)
        except APIError as err:  # raised before any response started (the body is read first)
            await _error_response(err)(scope, receive, send)


async def _until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class _Run:
    """One call's chunks, produced by a task of its own; a disconnect cancels the task."""

    def __init__(self, runnable, messages, options: dict[str, Any], request: Request, release):
        self._release = release  # called once, when the run ends
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.create_task(self._produce(runnable, messages, options))
        self.watch = asyncio.create_task(_until_disconnected(request))
        self.watch.add_done_callback(lambda _: self.close())  # the client went away

    async def _produce(self, runnable, messages, options) -> None:
        try:
            async for chunk in runnable.astream(messages, **options):
                self.queue.put_nowait(chunk)
            self.queue.put_nowait(_END)
        except asyncio.CancelledError:
            self.queue.put_nowait(_END)
            raise
        except Exception as exc:  # handed to the reader, which answers with its status
            self.queue.put_nowait(exc)

    async def chunks(self) -> AsyncIterator[AIMessageChunk]:
        try:
            while (item := await self.queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self.watch.cancel()
        self.task.cancel()
        if self._release is not None:
            self._release, release = None, self._release
            release()


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI application serving one chat model (see ``ServerSettings``)."""
    settings = settings or ServerSettings()
    models = Models(settings.model_kwargs, settings.max_variants)
    served = settings.served_name or models.default.model_name
    admission = Admission(settings.max_concurrent, settings.max_queue)
    state = {"ready": not settings.preload}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.preload:
            await asyncio.to_thread(models.default.engine)
            state["ready"] = True
        yield

    app = FastAPI(title="attention-buckets", lifespan=lifespan)
    app.state.models, app.state.admission, app.state.served = models, admission, served

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _error_response(validation_error(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):  # unknown paths, wrong methods
        path, method = request.url.path, request.method
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow") or "other methods"
            return _error_response(APIError(405, f"{method} {path} is not allowed; this route answers {allowed}",
                                            code="method_not_allowed", headers=exc.headers))
        if exc.status_code == 404:
            return _error_response(APIError(404, f"{method} {path}: no such route; the API is POST /v1/chat/completions, "
                                            "GET /v1/models and GET /health", code="not_found"))
        return _error_response(APIError(exc.status_code, str(exc.detail), headers=exc.headers))

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if settings.api_key and request.url.path not in _OPEN_PATHS and not _authorized(request, settings.api_key):
            return _error_response(APIError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                            code="invalid_api_key"))
        return await call_next(request)

    @app.get("/health")
    async def health():
        engine = models.default.engine() if state["ready"] else None
        body = {"status": "ok" if state["ready"] else "loading", "model": served,
                "running": admission.running, "queued": admission.waiting}
        if engine is not None:
            body["engine"] = engine.activity()
        return JSONResponse(body, status_code=200 if state["ready"] else 503)

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [{"id": served, "object": "model", "created": 0, "owned_by": "attention-buckets"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        raw = parse_body(await request.body())
        try:
            body = ChatCompletionRequest.model_validate(raw)
        except ValidationError as exc:
            raise validation_error(exc) from None
        if body.model not in (None, served):
            raise APIError(404, f"model {body.model!r} is not served here; this server serves {served!r}",
                           param="model", code="model_not_found")
        messages = to_messages(body.messages)
        options = body.call_options()
        llm = models.get(body.model_overrides())
        binding = body.tool_binding()
        try:
            runnable = llm.bind_tools(**binding) if binding else llm
            if body.response_format and body.response_format.get("type") == "json_schema":
                llm._check_response_schema(body.response_format["json_schema"]["schema"])
        except ValueError as exc:
            raise _status_of(exc, body) from None
        await admission.acquire()
        run = _Run(runnable, messages, options, request, admission.release)
        try:
            return await (_stream(run, body, served) if body.stream else _whole(run, served, body))
        except BaseException:
            run.close()
            raise

    return app


async def _whole(run: _Run, served: str, body: ChatCompletionRequest) -> JSONResponse:
    try:
        chunks = [chunk async for chunk in run.chunks()]
    except Exception as exc:
        raise _status_of(exc, body) from exc
    if not chunks:  # cancelled before anything came back
        raise APIError(499, "the client closed the request")
    merged = add_ai_message_chunks(chunks[0], *chunks[1:])  # one merge, not one per token
    return JSONResponse(completion(merged, served, new_id(), int(time.time())))


async def _stream(run: _Run, body: ChatCompletionRequest, served: str) -> StreamingResponse:
    """Server-sent events; an error before the first chunk is an ordinary error response."""
    chunks = run.chunks()
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        raise APIError(499, "the client closed the request") from None
    except Exception as exc:
        raise _status_of(exc, body) from exc
    writer = ChunkWriter(served, bool(body.stream_options and body.stream_options.get("include_usage")))

    async def events() -> AsyncIterator[bytes]:
        yield sse(writer.first())
        try:
            for item in writer.delta(first):
                yield sse(item)
            async for chunk in chunks:
                for item in writer.delta(chunk):
                    yield sse(item)
            for item in writer.last():
                yield sse(item)
        except Exception as exc:  # after the headers went out: OpenAI's error event
            yield sse(_status_of(exc, body).body())
        finally:
            run.close()
        yield sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def wrap(app: FastAPI, settings: ServerSettings):
    """The ASGI application with the body-size limit around it (what uvicorn runs)."""
    return _BodyLimit(app, settings.max_body_bytes)
