"""A model's raw output read into LangChain messages, whole or streamed, in any format.

    parse_message(text, tools, format="llama3")  -> AIMessage
    MessageStream(tools, format="qwen3").feed(piece) / .finish()  -> list[AIMessageChunk]

The chunks of a stream add up to ``parse_message`` of the whole text, however the text was
split: content without markers; reasoning in ``additional_kwargs["reasoning_content"]`` (which
``AIMessage.content_blocks`` shows as a ``reasoning`` block, as for langchain-ollama and
langchain-deepseek); calls as ``tool_call_chunks`` with their index on every chunk and the name
before the arguments; calls that do not parse as ``invalid_tool_calls`` (their reasons in
``response_metadata["tool_call_errors"]``, by call id, and in ``parse_message``'s
``invalid_tool_calls[].error``). Call ids the model did not write are derived from the text
before the call, so the same text gets the same ids streamed or whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.utils.function_calling import convert_to_openai_tool

from .base import ArgsDelta, CallStart, Format, ParsedCall, ReasoningPiece, TextPiece
from .registry import get

_ENDED = {"length": "max_tokens reached", "stop": "the answer ended"}


def tool_schemas(tools: Sequence[Any] | None) -> dict[str, dict] | None:
    """Parameter schemas by tool name, from tools in any form ``bind_tools`` accepts (None: any name)."""
    if tools is None:
        return None
    out = {}
    for t in tools:
        function = convert_to_openai_tool(t)["function"]
        out[function["name"]] = function.get("parameters") or {}
    return out


class MessageStream:
    """Reads one answer as it streams.

    Args:
        tools: the bound tools (LangChain tools, functions, pydantic models, OpenAI-format dicts),
            or None to accept any tool name without checking arguments.
        format: a format name (``formats.names()``) or a ``Format``.
        reasoning_format: read another reasoning syntax ("none", "think" or a format's name).
        reasoning_opened: whether the prompt opened the reasoning (a thinking-only template);
            None: not known (then text before a lone ``</think>`` is reasoning, read once that
            delimiter or the end of the text is seen).
    """

    def __init__(
        self,
        tools: Sequence[Any] | None = None,
        format: str | Format = "hermes",
        *,
        reasoning_format: str | None = None,
        reasoning_opened: bool | None = None,
    ):
        self.format = get(format, reasoning_format)
        self._parser = self.format.parser(tool_schemas(tools), reasoning_opened)
        self._ids: dict[int, str] = {}
        self._errors: dict[str, str] = {}
        self._seen = ""  # content and reasoning so far, and earlier calls: the seed of call ids

    def feed(self, text: str) -> list[AIMessageChunk]:
        """The chunks that ``text``, the next piece of the answer, completes (none or one)."""
        chunk = self._chunk(self._parser.feed(text))
        return [chunk] if chunk is not None else []

    def finish(self, finish_reason: str | None = None) -> list[AIMessageChunk]:
        """The last chunk: held text, calls the end cut (invalid), the errors of invalid calls.

        Args:
            finish_reason: why the answer ended ("stop", "length"), for the error of a cut call.
        """
        ended = _ENDED.get(finish_reason or "", f"the answer ended ({finish_reason})" if finish_reason else "the text ended")
        events = self._parser.finish(ended, cut=finish_reason == "length" if finish_reason else None)
        chunk = self._chunk(events) or AIMessageChunk(content="")
        metadata = {"tool_format": self.format.name}
        if finish_reason:
            metadata["finish_reason"] = finish_reason
        if self._errors:
            metadata["tool_call_errors"] = dict(self._errors)
        last = AIMessageChunk(
            content=chunk.content,
            additional_kwargs=chunk.additional_kwargs,
            tool_call_chunks=chunk.tool_call_chunks,
            response_metadata=metadata,
            chunk_position="last",
        )
        return [last]

    def _chunk(self, events: list) -> AIMessageChunk | None:
        if not events:
            return None
        text, thought = [], []
        calls: dict[int, dict] = {}  # one tool_call_chunk per call in a chunk
        for e in events:
            if isinstance(e, TextPiece):
                text.append(e.text)
                self._seen += e.text
            elif isinstance(e, ReasoningPiece):
                thought.append(e.text)
                self._seen += e.text
            elif isinstance(e, CallStart):
                seed = f"{self._seen}\x00{e.index}\x00{e.name}"
                self._ids[e.index] = e.id or self.format.call_id(seed)
                self._seen += f"\x00{self._ids[e.index]}"
                calls[e.index] = tool_call_chunk(name=e.name, args="", id=self._ids[e.index], index=e.index)
            elif isinstance(e, ArgsDelta):
                calls.setdefault(e.index, tool_call_chunk(name=None, args="", id=None, index=e.index))["args"] += e.text
            elif isinstance(e, ParsedCall) and not e.valid:
                self._errors[self._ids[e.index]] = e.error
        kwargs = {"reasoning_content": "".join(thought)} if thought else {}
        if not text and not thought and not calls:
            return None
        return AIMessageChunk(content="".join(text), additional_kwargs=kwargs, tool_call_chunks=list(calls.values()))


def parse_message(
    text: str,
    tools: Sequence[Any] | None = None,
    format: str | Format = "hermes",
    *,
    reasoning_format: str | None = None,
    reasoning_opened: bool | None = None,
    finish_reason: str | None = None,
) -> AIMessage:
    """A whole answer read into an AIMessage (arguments as for ``MessageStream``).

    Never raises on the text: what does not parse becomes ``invalid_tool_calls`` with the raw
    text and the reason.
    """
    stream = MessageStream(tools, format, reasoning_format=reasoning_format, reasoning_opened=reasoning_opened)
    chunks = [*stream.feed(text), *stream.finish(finish_reason)]
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    errors = merged.response_metadata.get("tool_call_errors", {})
    invalid = [{**c, "error": c.get("error") or errors.get(c["id"])} for c in merged.invalid_tool_calls]
    return AIMessage(
        content=merged.content,
        additional_kwargs=merged.additional_kwargs,
        tool_calls=merged.tool_calls,
        invalid_tool_calls=invalid,
        response_metadata=merged.response_metadata,
    )
