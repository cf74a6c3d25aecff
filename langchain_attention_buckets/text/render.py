"""Messages -> prompt text, through the tokenizer's own chat template.

Messages arrive as plain dicts in the Hugging Face chat format (``role``,
``content``, and for assistants ``tool_calls``, for tools ``tool_call_id`` and
``name``); the chat model converts LangChain messages to these.

- No tools and no tool traffic: the prompt is exactly ``apply_chat_template``.
- The template renders tools itself (it references ``tools``): the tools are
  passed to it, its own tool prompt is used as it is, and calls and results
  reach it in the structure it reads (``template_messages``): structured
  ``tool_calls`` with arguments as objects (as strings where the template
  concatenates them); one call per assistant turn where it takes only one
  (Llama 3.x); results in the ``ipython`` role where it has one; 9-character
  alphanumeric call ids where it requires them (Mistral), the same id on the
  call and on its result, and results as JSON strings as Mistral's own
  tokenizer writes them; assistant text beside calls in a turn of its own
  where the template writes calls alone (Llama 3.x, Mistral); calls written
  into the assistant's content, in the template's own call syntax, where the
  template renders content only (Granite 3.x). A system
  message the template would leave out (Mistral keeps it only when the
  conversation ends with a user turn) joins the first user turn.
- The template ignores tools (the embedded SmolLM2's does): the fallback
  format. The tools' JSON schemas go into the system turn with instructions to
  answer with ``<tool_call>{...}</tool_call>``; earlier calls are written into
  the assistant turns in that format; tool results become ``tool`` turns
  wrapped in ``<tool_response>`` (``user`` turns where the template refuses a
  ``tool`` role).

``reasoning`` (True/False) is passed as ``enable_thinking`` to templates that
read it (Qwen3); None leaves the template's default.

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
import re
from collections.abc import Sequence
from typing import Any

from ..formats.hermes import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, format_tool_call
from ..formats.mistral import mistral_id
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


def tools_system_text(tools: Sequence[dict], instruction: str | None = None, call_format=None) -> str:
    """The fallback format's description of the tools, for the system turn.

    ``call_format``: a format other than Hermes (``tool_format=`` named one for a template that
    renders no tools): the calls are asked for in its syntax.
    """
    body = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    footer = TOOLS_FOOTER
    if not _is_hermes(call_format):
        example = call_format.format_calls([{"name": "<function-name>", "arguments": {"<argument>": "<value>"}}])
        footer = f"\n</tools>\n\nFor each function call, write it exactly in this form:\n{example}"
    text = TOOLS_HEADER + body + footer
    return f"{text}\n\n{instruction}" if instruction else text


def _is_hermes(call_format) -> bool:
    return call_format is None or format_tool_call("f", {}) == call_format.format_call("f", {})


def call_format(tokenizer, tool_format: str = "auto", reasoning_format: str | None = None):
    """The format (``formats.Format``) the model's calls and reasoning are written in.

    "auto": detected from the chat template's text where the template renders tools; where it
    renders none, the package's own Hermes format, reasoning as the template does (a DeepSeek-R1
    distill's or SmolLM3's ``<think>``). A name (``formats.names()``) picks that format. ``reasoning_format``
    ("none", "think" or a format's name) overrides the reasoning syntax.

    Raises:
        ValueError: an unknown format name, naming the known ones.
    """
    from .. import formats

    source = template_source(tokenizer)
    if tool_format != "auto":
        fmt = formats.get(tool_format)
    elif template_renders_tools(tokenizer):
        fmt = formats.for_template(source)
    else:  # the template's reasoning: its family's, or <think> where it writes </think> (SmolLM3)
        detected = formats.get(formats.detect(source))
        reasoning = detected.name if detected.reasoning else "think" if "</think>" in source else None
        fmt = formats.get("hermes", reasoning)
    return fmt.with_reasoning(reasoning_format) if reasoning_format is not None else fmt


def template_reads_thinking(tokenizer) -> bool:
    """Whether the chat template switches reasoning with ``enable_thinking`` (Qwen3)."""
    return "enable_thinking" in template_source(tokenizer)


def render(
    tokenizer,
    messages: Sequence[dict],
    tools: Sequence[dict] | None = None,
    *,
    tool_instruction: str | None = None,
    add_generation_prompt: bool = True,
    reasoning: bool | None = None,
    call_format=None,
) -> str:
    """The prompt text for ``messages`` (and ``tools``, OpenAI format) under the tokenizer's template.

    Args:
        tokenizer: a transformers tokenizer with a chat template.
        messages: HF chat-format dicts.
        tools: tools in OpenAI format (``{"type": "function", "function": {...}}``), or None.
        tool_instruction: a sentence about how to use the tools this turn (e.g. which tool must be called).
        add_generation_prompt: end with the assistant turn's opening.
        reasoning: switch the model's reasoning on or off (``enable_thinking``) where the
            template supports it; None: the template's default.
        call_format: the ``formats.Format`` calls are written in where the template renders no
            tools (None: the package's own Hermes format), or renders tools but never an assistant
            turn's calls (None: the format detected from the template).
    """
    tools = list(tools or [])
    extra = {"enable_thinking": bool(reasoning)} if reasoning is not None and template_reads_thinking(tokenizer) else {}
    traffic = any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)
    if not tools and not traffic:
        return _apply(tokenizer, list(messages), None, add_generation_prompt, extra)
    if template_renders_tools(tokenizer):
        msgs = list(messages)
        if tool_instruction:
            msgs = _with_system_text(msgs, tool_instruction)
        return _render_native(tokenizer, msgs, tools or None, add_generation_prompt, extra, call_format)
    msgs = [_fallback_message(m, call_format) for m in messages]
    if tools:
        msgs = _with_system_text(msgs, tools_system_text(tools, tool_instruction, call_format))
    try:
        return _apply(tokenizer, msgs, None, add_generation_prompt, extra)
    except ValueError:
        # a template that refuses a "tool" role: tool results become user turns
        msgs = [{**m, "role": "user"} if m["role"] == "tool" else m for m in msgs]
        return _apply(tokenizer, msgs, None, add_generation_prompt, extra)


def render_call(
    tokenizer,
    messages: Sequence[dict],
    tools: Sequence[dict],
    choice: Choice,
    response_format: dict | None,
    reasoning: bool | None = None,
    call_format=None,
) -> str:
    """The prompt of one chat-model call, with the instructions its tool choice and response format need.

    With tools, the instructions join the tools' description (or the system turn, where the
    template renders tools itself). Without tools, a response format is asked for in the system turn.
    ``reasoning``, ``call_format``: see ``render``.
    """
    if not tools and response_format is not None:
        msgs = _with_system_text(list(messages), response_format_text(response_format))
        return render(tokenizer, msgs, reasoning=reasoning, call_format=call_format)
    instruction = call_instruction(choice, response_format)
    return render(tokenizer, messages, tools, tool_instruction=instruction, reasoning=reasoning, call_format=call_format)


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


def _apply(tokenizer, messages: list[dict], tools, add_generation_prompt: bool, extra: dict | None = None) -> str:
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt, **(extra or {})}
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


# ---------------------------------------------------------------------------
# Templates that render tools: calls and results in the structure each one reads
# ---------------------------------------------------------------------------


_MISTRAL_CALLS = "[TOOL_CALLS]"


def _render_native(tokenizer, messages: list[dict], tools, add_generation_prompt: bool, extra: dict,
                   call_format=None) -> str:
    source = template_source(tokenizer)
    if any(m.get("tool_calls") for m in messages) and drops_calls(tokenizer):
        # the template writes an assistant turn's content only (Granite 3.x): the calls go into it
        # in the format the model writes them, so the history keeps them
        if call_format is None:
            from ..formats import for_template

            call_format = for_template(source)
        messages = [_calls_into_content(m, call_format) if m.get("tool_calls") else m for m in messages]
    apart = any(m.get("tool_calls") and (m.get("content") or "").strip() for m in messages) and drops_text_beside_calls(tokenizer)
    msgs = template_messages(messages, source, text_apart=apart)
    try:
        out = _apply(tokenizer, msgs, tools, add_generation_prompt, extra)
    except ValueError:
        # a template that concatenates the arguments as text (DeepSeek's): arguments as JSON strings
        msgs = template_messages(messages, source, string_arguments=True, text_apart=apart)
        out = _apply(tokenizer, msgs, tools, add_generation_prompt, extra)
    if messages and messages[0]["role"] == "system" and messages[0]["content"].strip() not in out:
        # the template left the system message out (Mistral, unless the last turn is the user's)
        msgs = _system_into_first_user(msgs)
        out = _apply(tokenizer, msgs, tools, add_generation_prompt, extra)
    if _MISTRAL_CALLS in source:
        turns = [((m.get("content") or "").strip(), len(m["tool_calls"])) for m in messages if m.get("tool_calls")]
        out = _text_before_calls(out, turns)
    return out


def _text_before_calls(prompt: str, turns: list[tuple[str, int]]) -> str:
    """Mistral's templates write a turn with calls as ``[TOOL_CALLS]...`` alone; the model writes
    its text before the first marker, so each turn's text goes back there. ``turns``: (text,
    number of calls) of each turn with calls; the markers outside the tools' description are one
    per turn (v3's list) or one per call (v11)."""
    if not any(text for text, _ in turns):
        return prompt
    spans = [(m.start(), m.end()) for m in re.finditer(r"\[AVAILABLE_TOOLS\].*?\[/AVAILABLE_TOOLS\]", prompt, re.S)]
    marks = [m.start() for m in re.finditer(re.escape(_MISTRAL_CALLS), prompt) if not any(a <= m.start() < b for a, b in spans)]
    if len(marks) == sum(n for _, n in turns):  # one marker per call: a turn starts at its first
        firsts, k = [], 0
        for _, n in turns:
            firsts.append(marks[k])
            k += n
        marks = firsts
    if len(marks) != len(turns):
        return prompt
    for at, (text, _) in reversed(list(zip(marks, turns))):
        prompt = prompt[:at] + text + prompt[at:]
    return prompt


def template_messages(
    messages: Sequence[dict], source: str, string_arguments: bool = False, text_apart: bool = False
) -> list[dict]:
    """Chat dicts as a template that renders tools reads them (see the module docstring).

    Args:
        messages: chat dicts with ``tool_calls`` as ``{"id", "name", "arguments"}``.
        source: the chat template's text, which says what it needs.
        string_arguments: write the arguments as JSON strings.
        text_apart: the template writes no text beside calls: the text goes in a turn of its own.
    """
    single = "only supports single tool-calls" in source or "tool_calls|length==1" in source.replace(" ", "")
    mistral = _MISTRAL_CALLS in source  # its text goes back before [TOOL_CALLS] (_text_before_calls)
    short_ids = "length != 9" in source or "length(9)" in source
    quoted = short_ids and '{"content": ' in source  # v3's JSON result, not v11's [TOOL_CONTENT]
    ipython = "ipython" in source
    ids = _ShortIds() if short_ids else None
    out: list[dict] = []
    for m in messages:
        if m.get("tool_calls"):
            calls = [_template_call(c, ids, string_arguments) for c in m["tool_calls"]]
            head = {k: v for k, v in m.items() if k != "tool_calls"}
            apart = (text_apart or single) and not mistral
            if apart and (m.get("content") or "").strip():
                out.append({**head, "content": m["content"]})
            if apart or mistral:
                head["content"] = ""
            groups = [[c] for c in calls] if single else [calls]
            out += [{**head, "tool_calls": g} for g in groups]
        elif m["role"] == "tool":
            out.append(_template_result(m, ids, ipython, quoted))
        else:
            out.append(dict(m))
    return out


_PROBE_TEXT = "Checking the weather first."
_PROBE_VALUE = "probe-value-7f3c"  # an argument value that only a rendered call can write


def drops_text_beside_calls(tokenizer) -> bool:
    """Whether the template leaves out an assistant turn's text when the turn also has calls
    (Hermes 3's tool_use template does): tried once per template on a short conversation."""
    out = _probe(tokenizer)
    return out is not None and _PROBE_TEXT not in out


def drops_calls(tokenizer) -> bool:
    """Whether the template leaves out an assistant turn's calls (Granite 3.x's writes the turn's
    content only): tried once per template on the same conversation."""
    out = _probe(tokenizer)
    return out is not None and _PROBE_VALUE not in out


def _probe(tokenizer) -> str | None:
    """A short conversation with a call and its result, rendered once per template (None: the
    template refuses it; then the text stays in the call's turn and the calls are passed as they are)."""
    source = template_source(tokenizer)
    if source not in _PROBED:
        call = {"type": "function", "id": "abcdefgh1", "function": {"name": "f", "arguments": {"x": _PROBE_VALUE}}}
        probe = [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": _PROBE_TEXT, "tool_calls": [call]},
            {"role": "tool", "content": "r", "tool_call_id": "abcdefgh1"},
        ]
        params = {"type": "object", "properties": {"x": {"type": "string"}}}
        tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": params}}
        try:
            _PROBED[source] = tokenizer.apply_chat_template(probe, tools=[tool], tokenize=False, add_generation_prompt=True)
        except Exception:  # a template that refuses the probe
            _PROBED[source] = None
    return _PROBED[source]


_PROBED: dict[str, str | None] = {}


def _template_call(call: dict, ids: _ShortIds | None, string_arguments: bool) -> dict:
    args = call["arguments"]
    if string_arguments and not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False)
    call_id = ids.get(call.get("id")) if ids is not None else call.get("id")
    return {"type": "function", "id": call_id, "function": {"name": call["name"], "arguments": args}}


def _template_result(message: dict, ids: _ShortIds | None, ipython: bool, quoted: bool) -> dict:
    m = dict(message)
    if ids is not None:
        m["tool_call_id"] = ids.get(m.get("tool_call_id"))
    if ipython:  # Llama 3.x: results in the ipython role, JSON results as JSON (the template dumps them)
        m["role"] = "ipython"
        value = _json_or_text(m["content"])
        m["content"] = value if isinstance(value, (dict, list)) else m["content"]
    elif quoted:  # Mistral's v3 tokenizer writes {"content": "<the result as a JSON string>", ...}
        m["content"] = json.dumps(m["content"], ensure_ascii=False)
    return m


class _ShortIds:
    """Call ids as 9-character alphanumeric strings (Mistral): kept where they already are, else
    derived from the id; the same id maps to the same short id on the call and on its result."""

    def __init__(self) -> None:
        self._map: dict = {}

    def get(self, call_id) -> str:
        if call_id not in self._map:
            keep = isinstance(call_id, str) and len(call_id) == 9 and call_id.isascii() and call_id.isalnum()
            self._map[call_id] = call_id if keep else mistral_id(f"{call_id}#{len(self._map)}")
        return self._map[call_id]


def _system_into_first_user(messages: list[dict]) -> list[dict]:
    system, rest = messages[0], list(messages[1:])
    for i, m in enumerate(rest):
        if m["role"] == "user":
            rest[i] = {**m, "content": f"{system['content']}\n\n{m['content']}"}
            return rest
    return messages


def _calls_into_content(message: dict, call_format=None) -> dict:
    """An assistant turn with its calls written after its text, in ``call_format`` (None: Hermes)."""
    if _is_hermes(call_format):
        calls = "\n".join(format_tool_call(c["name"], c["arguments"]) for c in message["tool_calls"])
    else:
        calls = call_format.format_calls(message["tool_calls"])
    content = f"{message['content']}\n{calls}" if message.get("content") else calls
    return {"role": "assistant", "content": content}


def _fallback_message(message: dict, call_format=None) -> dict:
    role = message["role"]
    if role == "assistant" and message.get("tool_calls"):
        return _calls_into_content(message, call_format)
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
