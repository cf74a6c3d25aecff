"""Structured output: the checks between the model's message and the output parser.

With ``include_raw=True`` a message that holds no parseable output must fail with a reason
(``parsing_error``), not reach the parser as a half-read object.
"""

from __future__ import annotations

import json

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage
from langchain_core.utils.json import parse_json_markdown

__all__ = ["parseable_call", "parseable_json"]


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
