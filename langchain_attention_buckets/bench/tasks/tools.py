"""Tool-in-the-middle: pick the one needed tool out of M bound tools.

Each question binds M tools drawn from a built-in catalog of distinct domains
(see `tool_catalog`) and asks a request that exactly one of them serves; that
tool sits at the chosen position among the bound tools. The design catalog
(`CATALOG`) serves by default (the dev split); `heldout=True` draws from
`HELDOUT_CATALOG`, tools the candidates were never designed on (the test split). The reply is scored
through the chat model's own tool calling (`bind_tools(..., tool_choice="any")`):

- "tool": the first tool call's name is the needed tool's name (primary metric);
  when there is no valid call, the name of the first invalid one (a call cut
  short by max_tokens) counts, since the choice is already made;
- "tool+args": a valid first call to the needed tool, and every argument value
  the request states matches (numbers numerically, strings case-insensitively
  as a substring).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any, Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from .base import Item, Sample, check_settings, place, question_rng
from .tool_catalog import CATALOG, HELDOUT_CATALOG, SLOTS, ToolSpec

MAX_TOKENS = 96
DEFAULT_ITEMS = 16
SYSTEM = "You are a helpful assistant. Answer the user's request by calling the one tool that fits it."


@dataclass(frozen=True)
class ToolSample(Sample):
    metrics = ("tool", "tool+args")

    def messages(self, items: Sequence[Item] | None = None) -> list[BaseMessage]:
        return [SystemMessage(SYSTEM), HumanMessage(self.question)]

    def tools(self, items: Sequence[Item] | None = None) -> list[dict[str, Any]]:
        items = self.items if items is None else items
        return [it.payload for it in items]

    def score(self, message: AIMessage) -> dict[str, bool]:
        if message.tool_calls:
            call = message.tool_calls[0]
            if call["name"] != self.answer:
                return {"tool": False, "tool+args": False}
            args = call.get("args") or {}
            ok = all(_arg_matches(v, args.get(k)) for k, v in self.answer_args.items())
            return {"tool": True, "tool+args": ok}
        # A call cut short (max_tokens) is invalid, but its name already shows the choice.
        picked = _invalid_call_name(message)
        return {"tool": picked == self.answer, "tool+args": False}


def _invalid_call_name(message: AIMessage) -> str | None:
    for call in message.invalid_tool_calls:
        if call.get("name"):
            return call["name"]
        m = re.search(r'"name"\s*:\s*"([^"]+)"', str(call.get("args") or "").replace('\\"', '"'))
        if m:
            return m.group(1)
    return None


def _arg_matches(expected: Any, got: Any) -> bool:
    if got is None:
        return False
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            return abs(float(str(got).replace(",", "")) - float(expected)) < 1e-6
        except ValueError:
            return False
    return str(expected).lower() in str(got).lower()


def _fill(spec: ToolSpec, rng) -> tuple[str, dict[str, Any]]:
    """A request for `spec` and the argument values it states."""
    template = rng.choice(spec.requests)
    values: dict[str, Any] = {}
    slots = {p.slot for p in spec.params if p.slot} | _template_slots(template)
    for slot in sorted(slots):  # "city" before "city2"
        pool = SLOTS[slot]
        if slot.endswith("2") and slot[:-1] in values:  # a second city / currency: a different one
            pool = [v for v in pool if v != values[slot[:-1]]]
        values[slot] = rng.choice(pool)
    request = template.format(**values)
    args = {p.name: values[p.slot] for p in spec.params if p.slot is not None}
    return request, args


def _template_slots(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def make_samples(
    *, n_items: int, positions: Sequence[int], samples_per_position: int, seed: int, heldout: bool = False
) -> list[Sample]:
    """Questions x positions: M = `n_items` bound tools, the needed one at each position.

    Args:
        heldout: Draw tools and requests from `HELDOUT_CATALOG` instead of `CATALOG`.
    """
    check_settings(n_items, positions, samples_per_position)
    catalog, which = (HELDOUT_CATALOG, "held-out") if heldout else (CATALOG, "design")
    if n_items > len(catalog):
        raise ValueError(f"tools supports at most {len(catalog)} items (the {which} catalog's size), "
                         f"got n_items={n_items}")
    samples: list[Sample] = []
    for q in range(samples_per_position):
        rng = question_rng("tools", seed, n_items, q)
        specs = rng.sample(catalog, n_items)
        request, args = _fill(specs[0], rng)
        items = [Item(id=s.name, text=s.description, payload=s.schema()) for s in specs]
        gold, others = items[0], items[1:]
        for pos in positions:
            samples.append(
                ToolSample("tools", q, pos, place(gold, others, pos), request, gold.id, args)
            )
    return samples
