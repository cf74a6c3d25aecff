"""``bases="adaptive"`` (the default): buckets for calls with tools bound, the plain model otherwise.

The adaptive call and the fixed one are the same request run twice (the second from the prefix
cache): ``agreement.assert_runs_agree`` checks the settings are equal and the tokens equal up to
the first near-tie; the answers are compared where the tokens agree throughout.
"""

from __future__ import annotations

import pytest
from agreement import Runs, assert_runs_agree, tiny_tolerance
from conftest import CLOSING

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.engine.bases import paper_bases

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather in a city.",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}


@pytest.fixture
def llm(tiny_chat_dir):
    return ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", max_tokens=40, logit_bias=CLOSING)


def test_adaptive_is_the_default(llm):
    assert ChatAttentionBuckets.model_fields["bases"].default == "adaptive"
    assert llm.bases == "adaptive"
    assert ChatAttentionBuckets(bases=" Adaptive ").bases == "adaptive"


def agree(runs: Runs, what: str) -> bool:
    first, second = runs.take()
    return assert_runs_agree(second, first, tiny_tolerance(first), what) is None


def test_free_text_runs_the_plain_model(llm, monkeypatch):
    runs = Runs(monkeypatch)
    msg = llm.invoke("Hello")
    assert msg.response_metadata["bases"] == [10000.0]
    assert "no tools" in msg.response_metadata["bucket_choice"]
    plain = ChatAttentionBuckets(model=llm.model, dtype="float32", max_tokens=40, logit_bias=CLOSING, bases=10000.0)
    want = plain.invoke("Hello").content
    if agree(runs, "bases=10000 vs adaptive without tools"):
        assert msg.content == want


@pytest.mark.parametrize("choice", ["auto", "required", "get_weather"])
def test_bound_tools_run_the_paper_buckets(llm, choice, monkeypatch):
    runs = Runs(monkeypatch)
    msg = llm.bind_tools([WEATHER], tool_choice=choice).invoke("Weather in Paris?")
    assert msg.response_metadata["bases"] == list(paper_bases(10000.0))
    assert "tools bound" in msg.response_metadata["bucket_choice"]
    paper = ChatAttentionBuckets(model=llm.model, dtype="float32", max_tokens=40, logit_bias=CLOSING, bases="paper")
    again = paper.bind_tools([WEATHER], tool_choice=choice).invoke("Weather in Paris?")
    if agree(runs, f"bases='paper' vs adaptive with tools, tool_choice={choice!r}"):
        assert (msg.content, [c["args"] for c in msg.tool_calls]) == (again.content, [c["args"] for c in again.tool_calls])


def test_tool_choice_none_and_json_answers_run_the_plain_model(llm):
    assert llm.bind_tools([WEATHER], tool_choice="none").invoke("Hi").response_metadata["bases"] == [10000.0]
    msg = llm.invoke("A person", response_format={"type": "json_object"})
    assert msg.response_metadata["bases"] == [10000.0]


def test_resolved_bases_per_call_kind(llm):
    assert llm.resolved_bases(tools=False) == (10000.0,)
    assert llm.resolved_bases() == llm.resolved_bases(tools=True) == paper_bases(10000.0)
    fixed = ChatAttentionBuckets(model=llm.model, bases=[10000.0, 20000.0])
    assert fixed.resolved_bases(tools=False) == fixed.resolved_bases(tools=True) == (10000.0, 20000.0)
    assert fixed.bucket_choice(False) == "bases=[10000.0, 20000.0]"
