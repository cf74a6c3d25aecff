"""IBM Granite 3.x: ``<|tool_call|>`` then a JSON list of calls.

    <|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}, {...}]

The chat template renders the tools in an ``available_tools`` turn and asks the model to
"respond only with <|tool_call|> followed by a JSON list of tools used"; ``<|tool_call|>`` is a
special token of Granite's tokenizer, and ``<|end_of_text|>`` ends a turn. A single object after
the marker (not a list) and arguments written as a JSON string are read too. The template
renders an assistant turn's content only, never its calls: rendering writes earlier calls into
the content in this syntax (``text.render``). Results go back in a ``tool`` turn.

Granite 3.3's ``thinking=True`` mode (``<think>`` ... ``</think>`` then ``<response>`` ...
``</response>``) is not read: its blocks stay in the content.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from typing import Any

from .base import Format, Piece, json_calls_after, split_marked

TOOL_CALL = "<|tool_call|>"
END_OF_TEXT = "<|end_of_text|>"

_after_marker = partial(json_calls_after, marker=TOOL_CALL)


class Granite(Format):
    name = "granite"
    template_markers = (TOOL_CALL,)
    openers = (TOOL_CALL,)
    markers = (TOOL_CALL,)
    end_markers = (END_OF_TEXT,)

    def format_call(self, name: str, arguments: dict[str, Any], id: str | None = None) -> str:
        return self.format_calls([{"name": name, "arguments": arguments}])

    def format_calls(self, calls: Sequence[dict]) -> str:
        objects = ", ".join(json.dumps({"name": c["name"], "arguments": c["arguments"]}, ensure_ascii=False) for c in calls)
        return f"{TOOL_CALL}[{objects}]"

    def split_calls(self, s: str, final: bool) -> list[Piece]:
        return split_marked(s, final, TOOL_CALL, _after_marker)


GRANITE = Granite()
