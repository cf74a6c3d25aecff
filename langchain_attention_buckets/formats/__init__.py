"""Tool-call and reasoning formats: how each model family writes a call, one object per family.

- ``hermes``: ``<tool_call>{"name", "arguments"}</tool_call>`` (Hermes, Qwen2.5; the package's
  own fallback where a chat template renders no tools, as for the embedded model);
- ``qwen3``: Hermes calls after ``<think>`` reasoning;
- ``llama3``: a bare ``{"name", "parameters"}`` object, optionally after ``<|python_tag|>``,
  several joined by ``;``;
- ``mistral``: ``[TOOL_CALLS][{...}, ...]`` (v3) or ``[TOOL_CALLS]name{...}`` (v11+);
- ``deepseek-r1``: ``<think>`` reasoning, DeepSeek's ``<｜tool▁call▁begin｜>`` calls;
- ``granite``: ``<|tool_call|>[{...}, ...]`` (IBM Granite 3.x).

``detect(chat_template)`` picks one from a template's text (as llama.cpp does); ``get(name)``
returns the object; ``parse_message`` and ``MessageStream`` read a model's output into
LangChain messages. ``base`` holds what they share (events, the streaming parser); adding a
family is one module with one ``Format`` subclass, registered in ``registry.FORMATS``. See
docs/chat-model.md.
"""

from __future__ import annotations

from .base import Format
from .message import MessageStream, parse_message
from .registry import FORMATS, detect, for_template, get, names, reasoning_names

__all__ = [
    "FORMATS",
    "Format",
    "MessageStream",
    "detect",
    "for_template",
    "get",
    "names",
    "parse_message",
    "reasoning_names",
]
