"""``agent``: time to first token of each turn of a three-turn tool loop, with and without the prefix cache.

The chat model with 6 buckets, a tool context of 14 tools with long descriptions (its
size in tokens is in the output), tool choice "any". The outputs are the same either
way; only the time to first token of turns 2 and 3 should change.

May import the chat model (the LangChain edge) and ``common``.
"""

from __future__ import annotations

import json

from .setup import Setup, bases_for, median

_BUCKETS = 6


def _agent_tools(n: int = 14) -> list[dict]:
    topics = [
        ("get_order", "Look up an order in the shop database by its id", {"order_id": "The order id, like A1001"}),
        ("convert_currency", "Convert an amount of money between two currencies",
         {"amount": "The amount", "from_currency": "ISO code", "to_currency": "ISO code"}),
        ("add_days", "Add a number of days to a date", {"date": "ISO date", "days": "Days to add"}),
        ("get_weather", "Current weather for a city", {"city": "City name"}),
        ("search_products", "Search the product catalog by keyword", {"query": "Search words"}),
        ("track_package", "Tracking status of a parcel", {"tracking_number": "Carrier tracking number"}),
        ("list_events", "Calendar events on a date", {"date": "ISO date"}),
        ("stock_level", "Units in stock for a product", {"product_id": "Product id"}),
        ("send_email", "Send an email message", {"to": "Address", "subject": "Subject line", "body": "Text"}),
        ("translate", "Translate text into another language", {"text": "Text", "target_language": "Language code"}),
        ("geocode", "Coordinates of an address", {"address": "Street address"}),
        ("word_count", "Count the words of a text", {"text": "The text"}),
        ("compound_interest", "Future value with compound interest",
         {"principal": "Amount", "rate": "Yearly rate in percent", "years": "Years"}),
        ("time_in_zone", "Convert a time into another time zone", {"datetime": "ISO datetime", "timezone": "IANA zone"}),
    ]
    filler = (
        " It is meant for customer-support agents and returns a compact JSON object. Use it only when the "
        "request clearly asks for this information, and pass every argument exactly as the user gave it; "
        "never guess missing values, ask instead. Errors come back as an object with an 'error' field."
    )
    tools = []
    for name, desc, params in topics[:n]:
        props = {k: {"type": "string", "description": v + ". Required; no default."} for k, v in params.items()}
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": desc + "." + filler * 2,
                    "parameters": {"type": "object", "properties": props, "required": list(params)},
                },
            }
        )
    return tools


def _three_turns(bound) -> list[float]:
    """Time to first token of each turn; each tool call is answered with a fixed result."""
    from langchain_core.messages import HumanMessage, ToolMessage

    messages = [HumanMessage("Look up order A1001, convert its price to EUR and tell me the delivery date.")]
    ttfts = []
    for turn in range(3):
        ai = bound.invoke(messages)
        ttfts.append(ai.response_metadata["time_to_first_token"])
        messages.append(ai)
        for call in ai.tool_calls:
            messages.append(ToolMessage(json.dumps({"ok": True, "turn": turn, "value": 129.99}), tool_call_id=call["id"]))
    return ttfts


def run(setup: Setup) -> dict:
    """``{"agent": {"tool_context_tokens_approx", "cache", "no_cache", "speedup"}}``, per turn."""
    from ...chat.model import ChatAttentionBuckets

    loaded, tools = setup.loaded, _agent_tools()
    results: dict[str, list[list[float]]] = {"cache": [], "no_cache": []}
    for rep in range(setup.repeats + 1):
        for label, use_cache in (("cache", True), ("no_cache", False)):
            bases = list(bases_for(_BUCKETS, loaded.base))
            llm = ChatAttentionBuckets(model=setup.model, dtype=setup.dtype, bases=bases, max_tokens=40, prefix_cache=use_cache)
            llm.clear_prefix_cache()
            ttfts = _three_turns(llm.bind_tools(tools, tool_choice="any"))
            if rep:
                results[label].append(ttfts)
    out = {"tool_context_tokens_approx": len(loaded.tokenizer.encode(json.dumps(tools)))}
    for label, runs in results.items():
        out[label] = [median([r[t] for r in runs]) for t in range(3)]
    out["speedup"] = [out["no_cache"][t] / out["cache"][t] for t in range(3)]
    return {"agent": out}


def print_rows(result: dict, setup: Setup) -> None:
    a = result["agent"]
    print(
        f"agent loop ({_BUCKETS} buckets), TTFT per turn with / without prefix cache: "
        + ", ".join(f"turn {t + 1}: {a['cache'][t]:.2f}s / {a['no_cache'][t]:.2f}s (x{a['speedup'][t]:.1f})" for t in range(3))
    )
