"""An agent over a large tool catalog: create_agent + ToolRetrievalMiddleware.

Each model call sees only the tools retrieved for the request (with their full
documentation); the agent can run any tool of the catalog.

    python examples/agent_example.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import HumanMessage, ToolMessage
from tool_catalog import build_catalog

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.retrieval.tools import ToolRetriever


class OneCallThenAnswer(AgentMiddleware):
    """A small model needs the nudge: first a tool call (forced), then the answer."""

    def wrap_model_call(self, request, handler):
        called = any(isinstance(m, ToolMessage) for m in request.messages)
        return handler(request.override(tool_choice="none" if called else "any"))


def main() -> dict:
    catalog = build_catalog()
    cache = Path(os.environ.get("ATTENTION_BUCKETS_CACHE", Path.home() / ".cache" / "langchain-attention-buckets"))
    retriever = ToolRetriever(catalog, k=3, cache_path=cache / "tool-catalog-embeddings.json")
    llm = ChatAttentionBuckets(max_tokens=80)
    agent = create_agent(llm, tools=catalog, middleware=[retriever.middleware(), OneCallThenAnswer()])
    state = agent.invoke({"messages": [HumanMessage("Convert 72 degrees Fahrenheit to Celsius.")]})
    for m in state["messages"]:
        print(f"{m.type}: {m.content or m.tool_calls}")
    return state


if __name__ == "__main__":
    main()
