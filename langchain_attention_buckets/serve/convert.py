"""OpenAI's wire format in and out: request messages to LangChain messages, answers to OpenAI JSON.

Owns ``to_messages`` (each message converted by langchain-core, a bad one named by its index),
``completion`` (a whole answer as a ``chat.completion``) and ``ChunkWriter`` (a stream of message
chunks as ``chat.completion.chunk`` objects: the role first, ``delta.reasoning_content`` and text
deltas, ``delta.tool_calls`` with id, type and name in a call's first delta and argument text
after, the finish reason, and the usage chunk when asked). The model's reasoning travels as
``reasoning_content`` (beside ``content``, as vLLM and DeepSeek's API send it), in and out.
Imports langchain-core and ``protocol``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_messages
from langchain_core.messages.tool import invalid_tool_call, tool_call

from ..chat.errors import kind
from .protocol import APIError

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# The fields of each role's message (OpenAI's); any other is a 400 naming it.
_FIELDS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal", "function_call", "audio", "reasoning_content"},
    "tool": {"role", "content", "tool_call_id", "name"},
    "function": {"role", "content", "name"},
}
_PARTS = {"text", "image_url", "input_audio", "file", "refusal"}


def to_messages(raw: list[dict[str, Any]]) -> list[BaseMessage]:
    """LangChain messages of an OpenAI ``messages`` list; a 400 names the first bad field
    (``messages[2].content``). An error describes a value by its type, never repeats it."""
    out: list[BaseMessage] = []
    for i, message in enumerate(raw):
        check_message(message, f"messages[{i}]")
        role = message["role"]
        if role == "developer":  # OpenAI's newer name for system
            message = {**message, "role": "system"}
        if role == "assistant" and message.get("content") is None:
            message = {**message, "content": ""}
        message = {k: v for k, v in message.items() if v is not None and k not in ("refusal", "audio", "function_call")}
        try:
            if role == "assistant" and message.get("tool_calls"):
                out.append(_assistant(message))
                continue
            converted = convert_to_messages([message])
            if role == "assistant" and isinstance(message.get("reasoning_content"), str):
                converted[0].additional_kwargs["reasoning_content"] = message["reasoning_content"]
            out.extend(converted)
        except Exception as exc:  # langchain-core raises several types for malformed messages
            raise APIError(400, f"messages[{i}] is not a valid {role} message ({type(exc).__name__})",
                           param=f"messages[{i}]") from exc
    return out


def check_message(message: dict[str, Any], where: str) -> None:
    """One OpenAI message's shape: its role, its fields, their types; APIError naming the field."""
    role = message.get("role")
    if role not in _ROLES:
        got = "is missing" if role is None else f"={role!r} is not allowed" if isinstance(role, str) else f"is {kind(role)}"
        raise APIError(400, f"{where}.role {got}; use one of {', '.join(_ROLES)}", param=f"{where}.role")
    extra = sorted(set(message) - _FIELDS[role])
    if extra:
        raise APIError(400, f"{where}.{extra[0]} is not a field of a {role} message; its fields: "
                       f"{', '.join(sorted(_FIELDS[role]))}", param=f"{where}.{extra[0]}")
    for key in ("name", "tool_call_id", "refusal", "reasoning_content"):
        if message.get(key) is not None and not isinstance(message[key], str):
            raise APIError(400, f"{where}.{key} must be a string, not {kind(message[key])}", param=f"{where}.{key}")
    content = message.get("content")
    may_be_empty = role in ("assistant", "function")
    if content is None and not may_be_empty:
        raise APIError(400, f"{where}.content is required for a {role} message (a string or an array of text parts)",
                       param=f"{where}.content")
    if content is not None and not isinstance(content, (str, list)):
        raise APIError(400, f"{where}.content must be a string or an array of content parts, not {kind(content)}",
                       param=f"{where}.content")
    for j, part in enumerate(content if isinstance(content, list) else ()):
        _check_part(part, role, f"{where}.content[{j}]")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise APIError(400, f"{where}.tool_call_id is required: the id of the call this result answers",
                       param=f"{where}.tool_call_id")
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise APIError(400, f"{where}.tool_calls must be an array, not {kind(calls)}", param=f"{where}.tool_calls")
        for j, call in enumerate(calls):
            _check_call(call, f"{where}.tool_calls[{j}]")


def _check_part(part: Any, role: str, where: str) -> None:
    kind_ = part.get("type") if isinstance(part, dict) else None
    if kind_ not in _PARTS:
        raise APIError(400, f"{where} must be a content part such as {{'type': 'text', 'text': ...}}"
                       + (f", not {kind(part)}" if not isinstance(part, dict) else ""), param=f"{where}.type"
                       if isinstance(part, dict) else where)
    if kind_ in ("image_url", "input_audio", "file"):
        raise APIError(400, f"{where} is an {kind_!r} part; this model reads text only", param=where)
    field_ = "refusal" if kind_ == "refusal" else "text"
    if not isinstance(part.get(field_), str):
        raise APIError(400, f"{where}.{field_} must be a string, not {kind(part.get(field_))}", param=f"{where}.{field_}")
    if kind_ == "refusal" and role != "assistant":
        raise APIError(400, f"{where}: a refusal part belongs to an assistant message", param=f"{where}.type")


def _check_call(call: Any, where: str) -> None:
    shape = "{'id': ..., 'type': 'function', 'function': {'name': ..., 'arguments': '...'}}"
    if not isinstance(call, dict):
        raise APIError(400, f"{where} must be a tool call {shape}, not {kind(call)}", param=where)
    if call.get("type", "function") != "function":
        raise APIError(400, f"{where}.type must be 'function'", param=f"{where}.type")
    if call.get("id") is not None and not isinstance(call["id"], str):
        raise APIError(400, f"{where}.id must be a string, not {kind(call['id'])}", param=f"{where}.id")
    function = call.get("function")
    if not isinstance(function, dict):
        raise APIError(400, f"{where}.function must be an object {shape}", param=f"{where}.function")
    for key in ("name", "arguments"):
        if not isinstance(function.get(key), str):
            raise APIError(400, f"{where}.function.{key} must be a string, not {kind(function.get(key))}",
                           param=f"{where}.function.{key}")


def _assistant(message: dict[str, Any]) -> AIMessage:
    """An assistant turn with (checked) tool calls; a call whose arguments are not a JSON object stays, as an
    invalid call with its text (OpenAI's API takes any argument string back in the history, and
    this server may have returned such a call itself)."""
    valid, invalid = [], []
    for call in message["tool_calls"]:
        function = call["function"]
        name, arguments, call_id = function["name"], function["arguments"], call.get("id")
        try:
            args = json.loads(arguments or "{}")
        except (json.JSONDecodeError, RecursionError) as exc:
            invalid.append(invalid_tool_call(name=name, args=arguments, id=call_id, error=f"not JSON: {exc}"))
            continue
        if isinstance(args, dict):
            valid.append(tool_call(name=name, args=args, id=call_id))
        else:
            invalid.append(invalid_tool_call(name=name, args=arguments, id=call_id, error="not a JSON object"))
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content")
    kwargs = {"reasoning_content": reasoning} if isinstance(reasoning, str) else {}
    return AIMessage(
        content=content, tool_calls=valid, invalid_tool_calls=invalid, name=message.get("name"), additional_kwargs=kwargs
    )


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """OpenAI's usage object from a message's ``usage_metadata``."""
    meta = metadata or {}
    prompt, completion = meta.get("input_tokens", 0), meta.get("output_tokens", 0)
    cached = (meta.get("input_token_details") or {}).get("cache_read", 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def finish_reason(message: AIMessage | AIMessageChunk, made_calls: bool | None = None) -> str:
    """"length" when the budget cut the answer or closed its JSON or call early (``truncated``);
    else "tool_calls" when it made calls; else the engine's reason in OpenAI's words.
    ``made_calls`` None: read the calls from ``message``."""
    if message.response_metadata.get("truncated") or message.response_metadata.get("finish_reason") == "length":
        return "length"
    if made_calls is None:
        made_calls = bool(message.tool_calls or message.invalid_tool_calls)
    if made_calls:
        return "tool_calls"
    reason = message.response_metadata.get("finish_reason", "stop")
    return "length" if reason == "length" else "stop"


def extras(message: AIMessage | AIMessageChunk) -> dict[str, Any]:
    """This package's facts about an answer (bases, rule, why it stopped), under ``attention_buckets``."""
    meta = message.response_metadata
    keys = ("bases", "aggregation", "finish_reason", "truncated", "stopped_by", "tool_decision", "tool_call_errors",
            "time_to_first_token")
    return {k: meta[k] for k in keys if k in meta}


def _tool_calls(message: AIMessage) -> list[dict[str, Any]]:
    """Valid calls with their arguments as JSON text; invalid ones with the text as generated (nothing lost)."""
    calls = [(c.get("id"), c["name"], json.dumps(c["args"], ensure_ascii=False)) for c in message.tool_calls]
    calls += [(c.get("id"), c.get("name") or "", c.get("args") or "") for c in message.invalid_tool_calls]
    return [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls]


def completion(message: AIMessage, model: str, request_id: str, created: int) -> dict[str, Any]:
    """A whole answer as OpenAI's ``chat.completion`` object."""
    calls = _tool_calls(message)
    text = message.content if isinstance(message.content, str) else message.text
    body: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    reasoning = message.additional_kwargs.get("reasoning_content")
    if reasoning:
        body["reasoning_content"] = reasoning
    if calls:
        body["tool_calls"] = calls
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": body, "finish_reason": finish_reason(message), "logprobs": None}],
        "usage": usage(message.usage_metadata),
        "attention_buckets": extras(message),
    }


class ChunkWriter:
    """Message chunks -> ``chat.completion.chunk`` objects, in OpenAI's order."""

    def __init__(self, model: str, include_usage: bool, request_id: str | None = None):
        self.model, self.include_usage = model, include_usage
        self.id, self.created = request_id or new_id(), int(time.time())
        # what the finish and usage chunks need; the chunks themselves are not merged (merging
        # re-parses the calls' partial arguments at every token)
        self.made_calls = False
        self.last_chunk = AIMessageChunk(content="")  # the chat model's last chunk holds usage and metadata

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        out = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if self.include_usage:
            out["usage"] = None
        out.update(extra)
        return out

    def first(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""})

    def delta(self, chunk: AIMessageChunk) -> list[dict[str, Any]]:
        """The chunks one message chunk adds (none when it adds nothing)."""
        self.made_calls = self.made_calls or bool(chunk.tool_call_chunks)
        if chunk.usage_metadata or chunk.response_metadata:
            self.last_chunk = chunk
        delta: dict[str, Any] = {}
        reasoning = chunk.additional_kwargs.get("reasoning_content")
        if reasoning:
            delta["reasoning_content"] = reasoning
        if chunk.content:
            delta["content"] = chunk.content if isinstance(chunk.content, str) else chunk.text
        calls = []
        for c in chunk.tool_call_chunks:
            entry: dict[str, Any] = {"index": c["index"]}
            if c.get("id"):
                entry.update(id=c["id"], type="function")
            function = {}
            if c.get("name"):
                function["name"] = c["name"]
            if c.get("args") or "name" in function:
                function["arguments"] = c.get("args") or ""
            if function:
                entry["function"] = function
            calls.append(entry)
        if calls:
            delta["tool_calls"] = calls
        return [self._chunk(delta)] if delta else []

    def last(self) -> list[dict[str, Any]]:
        """The finish chunk, and the usage chunk when ``stream_options.include_usage`` was set."""
        last = self.last_chunk
        out = [self._chunk({}, finish_reason(last, self.made_calls), attention_buckets=extras(last))]
        if self.include_usage:
            out.append({**self._chunk(None), "usage": usage(last.usage_metadata)})
        return out


def sse(obj: dict[str, Any] | str) -> bytes:
    """One server-sent event."""
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()
