"""The text format of tool calls, shared by rendering, parsing and constrained decoding.

A call is written as

    <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>

(the Hermes / Qwen format). Several calls follow one another, separated by a newline.
The same markers are used whether the chat template renders tools itself or the
package's fallback format does, so one parser and one grammar serve both.
"""

from __future__ import annotations

import json
from typing import Any

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
CALL_SEPARATOR = "\n"


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The text of one call, as the model is asked to write it."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}{body}{TOOL_CALL_CLOSE}"
