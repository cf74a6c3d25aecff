"""Every script in examples/ runs offline with the embedded model (in this process, sharing its weights)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, ToolMessage

pytestmark = pytest.mark.embedded

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name: str, *args):
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=name)["main"](*args)


def test_bind_tools_example():
    messages = run("bind_tools_example")
    assert messages[1].tool_calls[0]["name"] == "get_weather"
    assert isinstance(messages[2], ToolMessage) and isinstance(messages[-1], AIMessage)


def test_structured_output_example():
    ticket = run("structured_output_example")
    assert type(ticket).__name__ == "Ticket" and ticket.topic in ("shipping", "refund", "damage", "other")


def test_agent_example():
    state = run("agent_example")
    calls = [c for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    assert len(calls) == 1 and calls[0]["name"] in {"convert_temperature"}
    assert isinstance(state["messages"][-1], AIMessage) and not state["messages"][-1].tool_calls


def test_rag_chain_example():
    out = run("rag_chain", ["When is the Toronto store closed?"])
    assert [d.metadata["title"] for d in out["documents"]][0] == "Stores"
    assert "Monday" in out["answer"]
