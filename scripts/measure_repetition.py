"""How often the embedded model's free-text answers loop or leak tool markers, and what they cost.

Runs ``ChatAttentionBuckets()`` with its defaults (six buckets, greedy, max_tokens=512) on
12 free-text prompts and 6 conversations that end with a tool result (tools bound, the
fallback tool format), all in one ``batch``, and prints per answer and in total: output tokens,
finish_reason, ``stopped_by``, whether the text ends in a loop (3+ copies of a block of 8+
characters spanning 48+; judged on the text the caller got) and whether a fallback marker
leaked into it.

Only the public API is used, so the same script measures an older checkout:

    python scripts/measure_repetition.py                      # this checkout
    PYTHONPATH=/path/to/old/checkout python scripts/measure_repetition.py

Usage: python scripts/measure_repetition.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import time

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

PROMPTS = [
    "Tell me a short story about a cat.",
    "What is the capital of France?",
    "Explain photosynthesis in simple terms.",
    "Write a haiku about autumn leaves.",
    "List three tips for staying productive when working from home.",
    "What is the difference between a list and a tuple in Python?",
    "Describe the water cycle.",
    "Why is the sky blue?",
    "Give me a recipe for pancakes.",
    "Summarize the plot of Romeo and Juliet.",
    "What are the benefits of regular exercise?",
    "How does a bicycle work?",
]


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return ""


@tool
def get_stock(sku: str) -> str:
    """Units of a product in stock, by SKU."""
    return ""


@tool
def convert_currency(amount: float, source: str, target: str) -> str:
    """Convert an amount of money from one currency to another."""
    return ""


@tool
def multiply(a: float, b: float) -> str:
    """Multiply two numbers."""
    return ""


@tool
def word_count(text: str) -> str:
    """Count the words in a text."""
    return ""


@tool
def days_between(start: str, end: str) -> str:
    """Number of days between two dates (YYYY-MM-DD)."""
    return ""


TOOLS = [get_weather, get_stock, convert_currency, multiply, word_count, days_between]

# (question, tool name, arguments, the tool's result)
TOOL_TURNS = [
    ("What's the weather in Paris?", "get_weather", {"city": "Paris"}, '{"city": "Paris", "temp_c": 18, "sky": "cloudy"}'),
    ("How many units of SKU B-02 are in stock?", "get_stock", {"sku": "B-02"}, '{"sku": "B-02", "units": 37}'),
    ("Convert 20 EUR to USD.", "convert_currency", {"amount": 20, "source": "EUR", "target": "USD"}, '{"usd": 21.7}'),
    ("What is 12 times 7?", "multiply", {"a": 12, "b": 7}, "84"),
    ("How many words are in 'the quick brown fox'?", "word_count", {"text": "the quick brown fox"}, "4"),
    ("How many days from 2024-01-01 to 2024-03-01?", "days_between", {"start": "2024-01-01", "end": "2024-03-01"}, "60"),
]

MARKERS = ("<tool_response>", "</tool_response>", "<tool_call>", "</tool_call>")
_LOOP = re.compile(r"(.{8,}?)\1{2,}\Z", re.S)


def tool_conversation(i: int, question: str, name: str, args: dict, result: str) -> list:
    call_id = f"call_{i}"
    return [
        HumanMessage(question),
        AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]),
        ToolMessage(result, tool_call_id=call_id, name=name),
    ]


def ends_in_loop(text: str) -> bool:
    """3+ copies of one block of 8+ characters at the end, spanning 48+ characters."""
    m = _LOOP.search(text.rstrip()[-2048:])
    return bool(m) and len(m.group(0)) >= 48


def row(kind: str, message: AIMessage) -> dict:
    meta, text = message.response_metadata, message.text
    return {
        "kind": kind,
        "output_tokens": message.usage_metadata["output_tokens"],
        "finish_reason": meta.get("finish_reason"),
        "stopped_by": meta.get("stopped_by"),
        "loop": ends_in_loop(text),
        "marker": any(m in text for m in MARKERS),
        "tool_call": bool(message.tool_calls or message.invalid_tool_calls),
        "text": text[:120],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows and totals here")
    args = parser.parse_args()

    from langchain_attention_buckets import ChatAttentionBuckets

    llm = ChatAttentionBuckets()
    bound = llm.bind_tools(TOOLS)
    llm.invoke("Hi", max_tokens=2)  # load the weights outside the timing
    start = time.perf_counter()
    free = llm.batch([[HumanMessage(p)] for p in PROMPTS])
    tooled = bound.batch([tool_conversation(i, *t) for i, t in enumerate(TOOL_TURNS)])
    seconds = time.perf_counter() - start
    rows = [row("text", m) for m in free] + [row("tool result", m) for m in tooled]

    print(f"{'kind':<12} {'tokens':>6} {'finish':<7} {'stopped_by':<12} loop marker call  text")
    for r in rows:
        flags = f"{'yes' if r['loop'] else '-':<4} {'yes' if r['marker'] else '-':<6} {'yes' if r['tool_call'] else '-':<5}"
        print(
            f"{r['kind']:<12} {r['output_tokens']:>6} {r['finish_reason']:<7} {r['stopped_by'] or '-':<12} {flags} "
            f"{r['text'][:60]!r}"
        )
    totals = {}
    for kind in ("text", "tool result"):
        sel = [r for r in rows if r["kind"] == kind]
        totals[kind] = {
            "answers": len(sel),
            "output_tokens": sum(r["output_tokens"] for r in sel),
            "hit_max_tokens": sum(r["finish_reason"] == "length" for r in sel),
            "ends_in_loop": sum(r["loop"] for r in sel),
            "stopped_by_repetition": sum(r["stopped_by"] == "repetition" for r in sel),
            "marker_leaked": sum(r["marker"] for r in sel),
            "stopped_by_marker": sum(r["stopped_by"] == "tool_marker" for r in sel),
        }
        print(kind, json.dumps(totals[kind]))
    print(f"{seconds:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "totals": totals, "seconds": seconds}, f, indent=1)


if __name__ == "__main__":
    main()
