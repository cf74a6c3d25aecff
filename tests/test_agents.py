"""Agents: LangGraph's create_react_agent and LangChain's create_agent.

A 135M model does not decide to call tools by itself, so each agent forces a tool call for the
first two steps and asks for the answer after that (a forced tool choice, as the issue allows).
The tests check the loop: calls made with valid arguments, results fed back, a final answer.
The grammar makes the calls, not the model's skill, so a tiny random Llama with the embedded
tokenizer runs them (fast tier); the examples and the demo run agents with the embedded model.
"""

from __future__ import annotations

import warnings

import pytest
from conftest import CLOSING, TINY_BASES
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_attention_buckets import ChatAttentionBuckets

QUESTION = "What is 12 times 7? Then add 5 to the result."
STEPS = 2  # forced tool calls before the answer


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


TOOLS = [multiply, add]


class Answer(BaseModel):
    """The final answer."""

    result: int


@pytest.fixture(scope="module")
def llm(tiny_chat_dir):
    return ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=80, logit_bias=CLOSING)


def _tool_messages(messages) -> int:
    return sum(isinstance(m, ToolMessage) for m in messages)


def _check_loop(messages) -> None:
    calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    assert len(calls) == STEPS, messages
    for c in calls:
        assert c["name"] in ("multiply", "add")
        assert isinstance(c["args"]["a"], int) and isinstance(c["args"]["b"], int)
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert [r.tool_call_id for r in results] == [c["id"] for c in calls]
    assert all(r.status != "error" for r in results)


def test_langgraph_create_react_agent(llm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langgraph.prebuilt import create_react_agent

    def model(state, runtime):
        choice = "any" if _tool_messages(state["messages"]) < STEPS else "none"
        return llm.bind_tools(TOOLS, tool_choice=choice)

    agent = create_react_agent(model, TOOLS)
    state = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    _check_loop(state["messages"])
    final = state["messages"][-1]
    assert isinstance(final, AIMessage) and not final.tool_calls and final.text


def _forcing_middleware(structured: bool):
    from langchain.agents.middleware import AgentMiddleware

    class ForceTools(AgentMiddleware):
        def wrap_model_call(self, request, handler):
            choice = "any" if _tool_messages(request.messages) < STEPS else "none"
            if structured:  # the provider strategy passes model settings to bind_tools
                return handler(request.override(model_settings={**request.model_settings, "tool_choice": choice}))
            return handler(request.override(tool_choice=choice))

    return ForceTools()


def test_langchain_create_agent(llm):
    from langchain.agents import create_agent

    agent = create_agent(llm, TOOLS, middleware=[_forcing_middleware(structured=False)])
    state = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    _check_loop(state["messages"])
    final = state["messages"][-1]
    assert isinstance(final, AIMessage) and not final.tool_calls and final.text


def test_langchain_create_agent_with_response_format(llm):
    from langchain.agents import create_agent

    agent = create_agent(llm, TOOLS, response_format=Answer, middleware=[_forcing_middleware(structured=True)])
    state = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    _check_loop(state["messages"])
    assert isinstance(state["structured_response"], Answer)
