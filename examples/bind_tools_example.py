"""Tool calling: bind tools, force a call, run it, and answer from the result.

    python examples/bind_tools_example.py
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from langchain_attention_buckets import ChatAttentionBuckets


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Args:
        city: The city name, e.g. "Paris".
    """
    return {"Paris": "18 C, sunny", "Oslo": "4 C, rain"}.get(city, "12 C, cloudy")


def main() -> list:
    llm = ChatAttentionBuckets(max_tokens=48)  # the embedded model; with tools bound: six buckets ("paper")
    bound = llm.bind_tools([get_weather], tool_choice="get_weather")  # the call is guaranteed
    messages = [HumanMessage("What is the weather in Paris?")]
    ai = bound.invoke(messages)
    print("tool calls:", ai.tool_calls)
    messages.append(ai)
    for call in ai.tool_calls:
        messages.append(get_weather.invoke(call))  # a ToolMessage
    answer = llm.bind_tools([get_weather], tool_choice="none").invoke(messages, max_tokens=32)
    print("answer:", answer.content)
    print("tokens:", answer.usage_metadata, "| buckets:", answer.response_metadata["bases"])
    return messages + [answer]


if __name__ == "__main__":
    main()
