"""Qwen3 (and QwQ, Qwen3 thinking / hybrid templates): Hermes calls after ``<think>`` reasoning.

    <think>
    The user wants the weather in Paris.
    </think>

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Hybrid templates (Qwen3-8B) let the model open ``<think>`` itself, and close an empty
``<think></think>`` in the generation prompt when ``enable_thinking=False``; thinking-only
templates (Qwen3-*-Thinking-2507, QwQ) write ``<think>`` into the generation prompt, so the
output starts inside the reasoning and only ``</think>`` is seen (``Format.opens_reasoning``).
A call written inside the reasoning is not a call.
"""

from __future__ import annotations

from .base import THINK
from .hermes import Hermes


class Qwen3(Hermes):
    name = "qwen3"
    template_markers = ("<tool_call>", "<think>")
    reasoning = THINK
    markers = ("<tool_call>", "</tool_call>", "</function>", *THINK)


QWEN3 = Qwen3()
