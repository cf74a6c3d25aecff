"""Structured output: the checks between the model's message and the output parser.

With ``include_raw=True`` a message that holds no parseable output must fail with a reason
(``parsing_error``), not reach the parser as a half-read object.
"""

from __future__ import annotations

import json

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage
from langchain_core.utils.json import parse_json_markdown

__all__ = ["TruncatedOutput", "complete", "parseable_call", "parseable_json"]


def complete(message: AIMessage, allow_truncated: bool = False) -> AIMessage:
    """``message`` unless the budget cut it or closed its object early (``truncated`` in its
    metadata); then OutputParserException naming ``max_tokens``, unless ``allow_truncated``."""
    meta = message.response_metadata
    if allow_truncated or not meta.get("truncated"):
        return message
    budget = meta.get("max_tokens")
    limit = f"max_tokens={budget}" if budget is not None else "the context window"
    raise TruncatedOutput(
        f"no structured output: {limit} was reached, so the output was cut or closed early to fit "
        f"({meta.get('finish_reason')!r}; its fields may be empty or shortened); raise max_tokens, or pass "
        "allow_truncated=True to with_structured_output to take such objects",
        llm_output=message.text or str(message.tool_calls or message.invalid_tool_calls),
    )


class TruncatedOutput(OutputParserException):
    """The output was cut or closed early by ``max_tokens`` (see ``complete``)."""


def parseable_call(message: AIMessage) -> AIMessage:
    """``message`` if it holds a tool call; else OutputParserException saying why none parsed."""
    if message.tool_calls:
        return message
    errors = [c.get("error") for c in message.invalid_tool_calls if c.get("error")]
    if errors:
        why = errors[0]
    elif message.response_metadata.get("finish_reason") == "length":
        why = "max_tokens reached before the call closed"
    elif message.invalid_tool_calls:
        why = "the call's arguments are not a valid JSON object"
    else:
        why = "no tool call in the output"
    raise OutputParserException(f"no structured output: {why}", llm_output=str(message.content))


def parseable_json(message: AIMessage) -> AIMessage:
    """``message`` if its text is one whole JSON value; else OutputParserException saying why."""
    text = message.text.strip()
    try:
        parse_json_markdown(text, parser=json.loads)  # strict: no repair of a cut-off object
        return message
    except ValueError as err:
        if message.response_metadata.get("finish_reason") == "length":
            why = "max_tokens reached before the JSON closed"
        elif not text:
            why = "the output is empty"
        else:
            why = f"the output is not JSON ({err})"
    raise OutputParserException(f"no structured output: {why}", llm_output=text)
