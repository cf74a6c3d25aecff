"""LangChain messages -> Hugging Face chat dicts, the input of ``render``.

Owns ``to_chat_dicts``: every LangChain message type in order, nothing dropped;
tool calls (valid and invalid) and reasoning (``reasoning_content``) on assistant turns, tool results as ``tool`` turns
(each must answer an earlier call), names written into the content; text that
cannot be tokenized (lone surrogates) is refused naming the message. Text only: media blocks raise ValueError. This is
part of the LangChain edge: it imports langchain_core and nothing from this package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

_UNSUPPORTED_BLOCKS = {"image", "image_url", "audio", "input_audio", "video", "file", "document"}


def _text(content: str | list, where: str) -> str:
    """Text of a message content; non-text media raise (this is a text-only model)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(block.get("text", ""))
        elif kind in ("tool_use", "tool_call", "reasoning", "thinking"):
            continue  # carried by tool_calls / not part of the visible text
        elif kind in _UNSUPPORTED_BLOCKS:
            raise ValueError(f"{where} has a content block of type {kind!r}; this model reads text only")
        else:
            parts.append(json.dumps(block, ensure_ascii=False, default=str))
    return "".join(parts) if all(isinstance(b, str) or b.get("type") == "text" for b in content) else "\n".join(parts)


def to_chat_dicts(messages: Sequence[BaseMessage], *, check_tool_call_ids: bool = True) -> list[dict]:
    """LangChain messages -> Hugging Face chat dicts, in order, nothing dropped.

    Args:
        messages: the conversation.
        check_tool_call_ids: a ToolMessage must answer a call of an earlier AIMessage (by
            ``tool_call_id``), as chat APIs require; False for counting tokens of a slice of a
            conversation (``trim_messages`` counts from the end).

    Raises:
        ValueError: naming the message (index and type) for media blocks, text that is not
            valid Unicode, or a tool result that answers no call.
    """
    out = []
    call_ids: set = set()
    for i, m in enumerate(messages):
        where = f"message {i} ({m.type})"
        if check_tool_call_ids and isinstance(m, ToolMessage):
            _check_answers_a_call(m, call_ids, where)
        d = _chat_dict(m, where)
        call_ids.update(c.get("id") for c in d.get("tool_calls", ()))
        _check_encodable(d, where)
        out.append(d)
    return _name_prefixes(out)


def _check_answers_a_call(m: ToolMessage, call_ids: set, where: str) -> None:
    # a call without an id cannot be matched; then the results are taken as they come
    if m.tool_call_id in call_ids or None in call_ids:
        return
    known = sorted(i for i in call_ids if i is not None)
    raise ValueError(
        f"{where}: tool_call_id={m.tool_call_id!r} answers no tool call of an earlier AIMessage "
        f"(calls so far: {known or 'none'})"
    )


def _check_encodable(d: dict, where: str) -> None:
    """Text that is not valid Unicode (a lone surrogate such as '\\ud800') cannot be tokenized."""
    text = d["content"] + json.dumps(d.get("tool_calls", []), ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start : err.end]
        raise ValueError(
            f"{where}, role {d['role']!r}: the text holds {bad!r}, which is not "
            "valid Unicode (a lone surrogate) and cannot be tokenized; remove it or decode the source "
            "text with errors='replace'"
        ) from None


def _chat_dict(m: BaseMessage, where: str) -> dict:
    if isinstance(m, SystemMessage):
        d = {"role": "system", "content": _text(m.content, where)}
    elif isinstance(m, HumanMessage):
        d = {"role": "user", "content": _text(m.content, where)}
    elif isinstance(m, AIMessage):
        d = {"role": "assistant", "content": _text(m.content, where)}
        calls = [{"id": c.get("id"), "name": c["name"], "arguments": c["args"]} for c in m.tool_calls]
        calls += [_invalid_as_call(c) for c in m.invalid_tool_calls]
        if calls:
            d["tool_calls"] = calls
        reasoning = m.additional_kwargs.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:  # templates that keep reasoning (Qwen3's) read it
            d["reasoning_content"] = reasoning
    elif isinstance(m, ToolMessage):
        d = {"role": "tool", "content": _text(m.content, where), "tool_call_id": m.tool_call_id}
        if m.name:
            d["name"] = m.name
        if m.status == "error":
            d["content"] = f"Error: {d['content']}"
    elif isinstance(m, FunctionMessage):
        d = {"role": "tool", "content": _text(m.content, where), "name": m.name}
    elif isinstance(m, ChatMessage):
        d = {"role": m.role, "content": _text(m.content, where)}
    else:
        raise ValueError(f"{where}: message type {type(m).__name__} is not supported")
    if m.name and d["role"] != "tool":
        d["name"] = m.name
    return d


def _invalid_as_call(call: dict) -> dict:
    args = call.get("args")
    try:
        value = json.loads(args) if isinstance(args, str) else args
    except json.JSONDecodeError:
        value = args
    arguments = value if isinstance(value, dict) else {"_raw": value}
    return {"id": call.get("id"), "name": call.get("name") or "", "arguments": arguments}


def _name_prefixes(messages: list[dict]) -> list[dict]:
    """Names go into the content ("alice: ..."): chat templates rarely render them."""
    out = []
    for m in messages:
        if m.get("name") and m["role"] != "tool":
            m = {k: v for k, v in m.items() if k != "name"}
            m["content"] = f"{messages[len(out)]['name']}: {m['content']}"
        out.append(m)
    return out
