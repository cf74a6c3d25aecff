"""Messages -> prompt text, through the tokenizer's own chat template.

Messages arrive as plain dicts in the Hugging Face chat format (``role``,
``content``, and for assistants ``tool_calls``, for tools ``tool_call_id`` and
``name``); the chat model converts LangChain messages to these.

- No tools and no tool traffic: the prompt is exactly ``apply_chat_template``.
- The template renders tools itself (it references ``tools``): the tools are
  passed to it, and assistant tool calls are passed as structured
  ``tool_calls``.
- The template ignores tools (the embedded SmolLM2's does): the fallback
  format. The tools' JSON schemas go into the system turn with instructions to
  answer with ``<tool_call>{...}</tool_call>``; earlier calls are written into
  the assistant turns in that format; tool results become ``tool`` turns
  wrapped in ``<tool_response>`` (``user`` turns where the template refuses a
  ``tool`` role).

Nothing is dropped or reordered. Where a template refuses a conversation as it
is (strict role alternation), consecutive messages of the same role are joined
and rendering is tried again; if it still refuses, ValueError says why.

Every instruction the model reads about this turn is written here too
(``render_call``): the tool choice ("Answer by calling ...") and the response
format ("Reply with a JSON object only ..."). Imports ``tool_format`` and
``tool_choice`` (``Choice``) only; no LangChain types.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..formats.hermes import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, format_tool_call
from .tool_choice import Choice

TOOLS_HEADER = (
    "# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOLS_FOOTER = (
    "\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    f"{TOOL_CALL_OPEN}{TOOL_CALL_CLOSE} XML tags:\n"
    f'{TOOL_CALL_OPEN}{{"name": <function-name>, "arguments": <args-json-object>}}{TOOL_CALL_CLOSE}'
)


def template_source(tokenizer) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()), "")
    return template or ""


def template_renders_tools(tokenizer) -> bool:
    """Whether the chat template uses the ``tools`` it is given."""
    return "tools" in template_source(tokenizer)


def tools_system_text(tools: Sequence[dict], instruction: str | None = None) -> str:
    """The fallback format's description of the tools, for the system turn."""
    body = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    text = TOOLS_HEADER + body + TOOLS_FOOTER
    return f"{text}\n\n{instruction}" if instruction else text


def render(
    tokenizer,
    messages: Sequence[dict],
    tools: Sequence[dict] | None = None,
    *,
    tool_instruction: str | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text for ``messages`` (and ``tools``, OpenAI format) under the tokenizer's template.

    Args:
        tokenizer: a transformers tokenizer with a chat template.
        messages: HF chat-format dicts.
        tools: tools in OpenAI format (``{"type": "function", "function": {...}}``), or None.
        tool_instruction: a sentence about how to use the tools this turn (e.g. which tool must be called).
        add_generation_prompt: end with the assistant turn's opening.
    """
    tools = list(tools or [])
    traffic = any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)
    if not tools and not traffic:
        return _apply(tokenizer, list(messages), None, add_generation_prompt)
    if template_renders_tools(tokenizer):
        msgs = [_structured_calls(m) for m in messages]
        if tool_instruction:
            msgs = _with_system_text(msgs, tool_instruction)
        return _apply(tokenizer, msgs, tools or None, add_generation_prompt)
    msgs = [_fallback_message(m) for m in messages]
    if tools:
        msgs = _with_system_text(msgs, tools_system_text(tools, tool_instruction))
    try:
        return _apply(tokenizer, msgs, None, add_generation_prompt)
    except ValueError:
        # a template that refuses a "tool" role: tool results become user turns
        msgs = [{**m, "role": "user"} if m["role"] == "tool" else m for m in msgs]
        return _apply(tokenizer, msgs, None, add_generation_prompt)


def render_call(
    tokenizer, messages: Sequence[dict], tools: Sequence[dict], choice: Choice, response_format: dict | None
) -> str:
    """The prompt of one chat-model call, with the instructions its tool choice and response format need.

    With tools, the instructions join the tools' description (or the system turn, where the
    template renders tools itself). Without tools, a response format is asked for in the system turn.
    """
    if not tools and response_format is not None:
        return render(tokenizer, _with_system_text(list(messages), response_format_text(response_format)))
    return render(tokenizer, messages, tools, tool_instruction=call_instruction(choice, response_format))


def call_instruction(choice: Choice, response_format: dict | None) -> str | None:
    """What the model is told about tools this turn (and the answer's format when it does not call one)."""
    parts = []
    if choice.kind == "required":
        parts.append("Answer by calling one of the functions.")
    elif choice.kind == "named":
        parts.append(f"Answer by calling the function {choice.name}.")
    elif choice.kind == "none":
        parts.append("Do not call a function now; answer in text.")
    if response_format is not None:
        parts.append(response_format_text(response_format, final=True))
    return " ".join(parts) or None


def response_format_text(response_format: dict, final: bool = False) -> str:
    """The request for a JSON answer; ``final``: for the answer given instead of a tool call."""
    when = "When you give your final answer instead of calling a function, reply" if final else "Reply"
    if response_format["type"] == "json_object":
        return f"{when} with a JSON object only."
    schema = json.dumps(response_format["json_schema"]["schema"], ensure_ascii=False)
    return f"{when} with a JSON object only, valid under this JSON schema: {schema}"


def _apply(tokenizer, messages: list[dict], tools, add_generation_prompt: bool) -> str:
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
    if tools:
        kwargs["tools"] = tools
    try:
        return tokenizer.apply_chat_template(messages, **kwargs)
    except Exception as first:  # jinja2 TemplateError and friends
        joined = _join_same_roles(messages)
        if len(joined) == len(messages):
            raise ValueError(f"the chat template cannot render this conversation: {first}") from first
        try:
            return tokenizer.apply_chat_template(joined, **kwargs)
        except Exception as exc:
            raise ValueError(f"the chat template cannot render this conversation: {exc}") from exc


def _join_same_roles(messages: list[dict]) -> list[dict]:
    out: list[dict] = []
    for m in messages:
        if out and out[-1]["role"] == m["role"] and not out[-1].get("tool_calls") and not m.get("tool_calls"):
            out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n\n{m['content']}"}
        else:
            out.append(dict(m))
    return out


def _with_system_text(messages: list[dict], text: str) -> list[dict]:
    """Add ``text`` to the first system message (after its content), or open with a system message."""
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        content = f"{first['content']}\n\n{text}" if first["content"] else text
        return [{**first, "content": content}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _structured_calls(message: dict) -> dict:
    """Tool calls as templates that render tools expect them (arguments as objects)."""
    if not message.get("tool_calls"):
        return message
    calls = [
        {"type": "function", "id": c.get("id"), "function": {"name": c["name"], "arguments": c["arguments"]}}
        for c in message["tool_calls"]
    ]
    return {**message, "tool_calls": calls}


def _fallback_message(message: dict) -> dict:
    role = message["role"]
    if role == "assistant" and message.get("tool_calls"):
        calls = "\n".join(format_tool_call(c["name"], c["arguments"]) for c in message["tool_calls"])
        content = f"{message['content']}\n{calls}" if message.get("content") else calls
        return {"role": "assistant", "content": content}
    if role == "tool":
        return RESULT_FORMS[FALLBACK_RESULT_FORM](message.get("name"), message["content"])
    return {k: v for k, v in message.items() if k != "tool_calls"}


def _tagged(name, content: str) -> dict:
    body = json.dumps({"name": name, "content": _json_or_text(content)}, ensure_ascii=False)
    return {"role": "tool", "content": f"<tool_response>\n{body}\n</tool_response>"}


def _tool_plain(name, content: str) -> dict:
    return {"role": "tool", "content": f"{name or 'the tool'} returned: {content}"}


def _user_plain(name, content: str) -> dict:
    return {"role": "user", "content": f"Result of {name or 'the tool'}: {content}"}


def _user_reminder(name, content: str) -> dict:
    return {"role": "user", "content": f"Result of {name or 'the tool'}: {content}\n\nAnswer my request using this result."}


RESULT_FORMS = {"tagged": _tagged, "tool-plain": _tool_plain, "user-plain": _user_plain, "user-reminder": _user_reminder}
"""How the fallback format writes a tool result: "tagged" (a ``tool`` turn holding
``<tool_response>{"name": ..., "content": ...}</tool_response>``), "tool-plain" (a ``tool`` turn,
"NAME returned: RESULT"), "user-plain" (a ``user`` turn, "Result of NAME: RESULT") or
"user-reminder" (that, then "Answer my request using this result.")."""
FALLBACK_RESULT_FORM = "user-plain"
"""The form in use (see ``RESULT_FORMS``): the one the embedded model answered best from,
measured by ``examples/tool_catalog/result_forms.py`` (docs/chat-model.md)."""


def _json_or_text(content: str):
    """A tool result that is JSON is embedded as JSON, not as an escaped string."""
    try:
        value = json.loads(content)
    except (TypeError, ValueError):
        return content
    return value if isinstance(value, (dict, list)) else content
