"""The tool decision in tool_choice="auto": a bias on opening a call at the first token.

The constraint is tested with a fake grammar (what it does to the logits at each step), the
chat model on a tiny random Llama with the embedded tokenizer (the decision follows the bias
and the conversation's state; a picked call is a whole, valid call), and the calibrated
default on the embedded model (it calls for a request that needs a tool and answers once the
result is in).
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import CLOSING, TINY_BASES
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.chat.decision import (
    DEFAULT_DECISION,
    OFF,
    DecisionConstraint,
    ToolDecision,
    check_tool_call_bias,
    conversation_state,
    opener_ids,
    resolve_decision,
)
from langchain_attention_buckets.formats.hermes import TOOL_CALL_OPEN


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class _Grammar:
    """A fake grammar that forbids token 0 and records what it accepted."""

    def __init__(self):
        self.accepted = []

    def apply_mask(self, logits):
        logits[0] = -math.inf
        return True

    def accept(self, token):
        self.accepted.append(token)

    def is_terminated(self):
        return False


def test_constraint_biases_the_first_step_then_forces_the_opener():
    inner = _Grammar()
    c = DecisionConstraint(inner, (5, 6, 7), bias=3.0)
    row = torch.zeros(10)
    assert c.process(row)
    assert row[5] == 3.0 and row[0] == -math.inf and row[4] == 0.0
    c.accept(5)
    for forced in (6, 7):
        row = torch.zeros(10)
        row[forced] = -math.inf  # a forced token the model ruled out still wins
        c.process(row)
        assert torch.isfinite(row).nonzero().flatten().tolist() == [forced]
        c.accept(forced)
    row = torch.zeros(10)
    c.process(row)  # past the opener: only the grammar's mask, no bias
    assert row[5] == 0.0 and row[0] == -math.inf
    assert inner.accepted == [5, 6, 7]


def test_a_positive_bias_acts_at_the_first_step_only():
    c = DecisionConstraint(None, (5, 6), bias=4.0)
    row = torch.zeros(10)
    c.process(row)
    assert row[5] == 4.0
    c.accept(2)
    row = torch.zeros(10)
    c.process(row)
    assert row.eq(0).all() and not c.is_terminated()


def test_a_negative_bias_holds_until_a_call_opens():
    c = DecisionConstraint(None, (5, 6), bias=-4.0)
    for token in (2, 3, 5, 6):  # text, then the model's own opener (against the bias)
        row = torch.zeros(10)
        c.process(row)
        assert row[5] == -4.0 and row.ne(0).sum() == 1
        c.accept(token)
    row = torch.zeros(10)
    c.process(row)  # inside the call: the arguments are left alone
    assert row.eq(0).all()


def test_state_and_policy_values():
    assert conversation_state([{"role": "user", "content": "hi"}]) == "before"
    traffic = [{"role": "user"}, {"role": "assistant", "tool_calls": [{}]}, {"role": "tool"}]
    assert conversation_state(traffic) == "after"
    assert conversation_state([*traffic, {"role": "user"}]) == "before"  # a new request
    assert resolve_decision("auto", embedded=True) == DEFAULT_DECISION
    assert resolve_decision("auto", embedded=False) == OFF
    assert resolve_decision(None, embedded=True).off
    assert resolve_decision(1.5, embedded=True) == ToolDecision(1.5, 1.5)
    assert resolve_decision((2, -3), embedded=False) == ToolDecision(2.0, -3.0)


@pytest.mark.parametrize("bad", ["always", (1.0,), (1, 2, 3), True, float("inf"), "1.0", {"before": 1}])
def test_bad_values_name_what_is_allowed(bad):
    with pytest.raises(ValueError, match="tool_call_bias=.*'auto'.*None.*pair"):
        check_tool_call_bias(bad)
    with pytest.raises(ValueError, match="tool_call_bias"):
        ChatAttentionBuckets(tool_call_bias=bad)


def test_opener_ids(smol_tokenizer):
    ids = opener_ids(smol_tokenizer)
    assert smol_tokenizer.decode(list(ids)) == TOOL_CALL_OPEN and len(ids) > 1


@pytest.fixture(scope="module")
def llm(tiny_chat_dir):
    return ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=40, logit_bias=CLOSING)


def _after_result():
    call = {"name": "multiply", "args": {"a": 12, "b": 7}, "id": "call_1"}
    return [HumanMessage("What is 12 times 7?"), AIMessage("", tool_calls=[call]), ToolMessage("84", tool_call_id="call_1")]


def test_a_large_bias_makes_a_whole_valid_call(llm):
    ai = llm.bind_tools([multiply], tool_call_bias=50.0).invoke("What is 12 times 7?")
    assert len(ai.tool_calls) == 1 and not ai.invalid_tool_calls, ai
    assert ai.tool_calls[0]["name"] == "multiply" and set(ai.tool_calls[0]["args"]) == {"a", "b"}
    assert ai.response_metadata["tool_decision"] == {"state": "before", "bias": 50.0}


def test_a_large_negative_bias_answers_in_text(llm):
    ai = llm.bind_tools([multiply], tool_call_bias=-50.0).invoke("What is 12 times 7?")
    assert not ai.tool_calls and not ai.invalid_tool_calls and TOOL_CALL_OPEN not in ai.text


def test_the_state_picks_the_bias(llm):
    eager_then_answer = llm.bind_tools([multiply], tool_call_bias=(50.0, -50.0))
    first = eager_then_answer.invoke([HumanMessage("What is 12 times 7?")])
    assert first.tool_calls
    last = eager_then_answer.invoke(_after_result())
    assert not last.tool_calls and last.response_metadata["tool_decision"]["state"] == "after"
    again = llm.bind_tools([multiply], tool_call_bias=(-50.0, 50.0)).invoke(_after_result())
    assert again.tool_calls


def test_stream_and_invoke_agree(llm):
    bound = llm.bind_tools([multiply], tool_call_bias=50.0)
    chunks = list(bound.stream("What is 12 times 7?"))
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    ai = bound.invoke("What is 12 times 7?")
    assert [c["args"] for c in merged.tool_calls] == [c["args"] for c in ai.tool_calls]


def test_off_and_forced_choices_are_untouched(llm):
    ai = llm.bind_tools([multiply], tool_call_bias=None).invoke("What is 12 times 7?")
    assert "tool_decision" not in ai.response_metadata
    forced = llm.bind_tools([multiply], tool_choice="multiply", tool_call_bias=-50.0).invoke("hi")
    assert forced.tool_calls and "tool_decision" not in forced.response_metadata
    # "auto" is off for models other than the embedded one
    auto = llm.bind_tools([multiply]).invoke("What is 12 times 7?")
    assert "tool_decision" not in auto.response_metadata


def test_without_constrained_decoding_the_opener_is_still_whole(tiny_chat_dir):
    free = ChatAttentionBuckets(
        model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=12, constrained_decoding=False
    )
    result = free.bind_tools([multiply], tool_call_bias=50.0).invoke("hi")
    raw = result.text + "".join(c.get("args") or "" for c in result.invalid_tool_calls)
    assert result.tool_calls or result.invalid_tool_calls or raw.startswith(TOOL_CALL_OPEN), result
