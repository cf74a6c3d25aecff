"""The chat model on each family's tiny model: its format is detected from the chat template and
used end to end (prompt, grammar, parser, tool decision), reasoning kept out of the content.

A streamed answer and the invoked one are two runs (the second from the prefix cache): compared
by their tokens up to the first near-tie (``agreement.assert_runs_agree``), by their text where
the tokens agree throughout."""

from __future__ import annotations

import math

import pytest
import torch
from agreement import Runs, assert_runs_agree, tiny_tolerance
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.chat.decision import DecisionConstraint, Reasoning


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


def _chat(family_dir, name, **kw):
    kw.setdefault("max_tokens", 40)
    return ChatAttentionBuckets(model=family_dir(name), device="cpu", dtype="float32", bases=[10000.0], **kw)


FAMILY_FORMATS = [("qwen3", "qwen3"), ("llama3", "llama3"), ("mistral", "mistral"), ("deepseek-r1", "hermes"),
                  ("smollm3", "hermes"), ("granite", "granite")]


@pytest.mark.parametrize(("name", "fmt"), FAMILY_FORMATS)
def test_forced_call_in_the_detected_format_whole_and_streamed(family_dir, name, fmt, monkeypatch):
    runs = Runs(monkeypatch)
    llm = _chat(family_dir, name).bind_tools([get_weather], tool_choice="get_weather")
    message = llm.invoke("Weather in Paris?")
    assert message.response_metadata["tool_format"] == fmt
    assert [c["name"] for c in message.tool_calls] == ["get_weather"] and not message.invalid_tool_calls
    chunks = list(llm.stream("Weather in Paris?"))
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert [c["name"] for c in merged.tool_calls] == ["get_weather"]
    invoked, streamed = runs.take()
    if assert_runs_agree(streamed, invoked, tiny_tolerance(invoked), f"{name}: streamed (cached) vs invoked") is None:
        assert [(c["name"], c["args"]) for c in merged.tool_calls] == [(c["name"], c["args"]) for c in message.tool_calls]
        assert merged.content == message.content
        assert merged.additional_kwargs.get("reasoning_content") == message.additional_kwargs.get("reasoning_content")
    for marker in ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "<think>", "</think>", "<|tool_call|>"):
        assert marker not in message.content


def test_reasoning_goes_to_reasoning_content_never_content(family_dir):
    # the R1 distill's prompt opens <think>: the answer starts inside the reasoning
    llm = _chat(family_dir, "deepseek-r1").bind_tools([get_weather], tool_choice="get_weather")
    chunks = list(llm.stream("Weather in Paris?"))
    kinds = [("reasoning" if c.additional_kwargs.get("reasoning_content") else "call") for c in chunks
             if c.additional_kwargs.get("reasoning_content") or c.tool_call_chunks]
    assert kinds[0] == "reasoning" and "call" in kinds and kinds.index("call") > kinds.index("reasoning")
    message = llm.invoke("Weather in Paris?")
    assert message.content_blocks[0]["type"] == "reasoning" and message.additional_kwargs["reasoning_content"]
    assert "</think>" not in message.content and "</think>" not in message.additional_kwargs["reasoning_content"]


def test_reasoning_without_tools_is_split_off_too(family_dir):
    message = _chat(family_dir, "deepseek-r1", max_tokens=12).invoke("hi")
    assert "reasoning_content" in message.additional_kwargs  # cut inside the reasoning: it ends cleanly
    assert "</think>" not in message.content


def test_reasoning_switch_is_a_call_option(family_dir):
    llm = _chat(family_dir, "qwen3", max_tokens=8)
    off = llm.get_num_tokens_from_messages([HumanMessage("hi")])
    llm_off = _chat(family_dir, "qwen3", max_tokens=8, reasoning=False)
    assert llm_off.get_num_tokens_from_messages([HumanMessage("hi")]) > off  # the empty <think></think> in the prompt
    message = llm.invoke("hi", reasoning=False)
    assert message.usage_metadata["input_tokens"] == llm_off.get_num_tokens_from_messages([HumanMessage("hi")])


def test_auto_with_a_bias_opens_the_llama_call_at_its_own_opener(family_dir):
    llm = _chat(family_dir, "llama3", tool_call_bias=30.0).bind_tools([get_weather])
    message = llm.invoke("Weather in Paris?")
    assert message.response_metadata["tool_decision"]["bias"] == 30.0
    assert [c["name"] for c in message.tool_calls] == ["get_weather"], message


def test_results_go_back_in_the_family_structure(family_dir):
    llm = _chat(family_dir, "mistral", max_tokens=4).bind_tools([get_weather])
    history = [
        HumanMessage("Weather in Paris?"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_abcdefghijklmnop"}]),
        ToolMessage("sunny", tool_call_id="call_abcdefghijklmnop"),
    ]
    message = llm.invoke(history)  # Mistral's template refuses ids that are not 9 alphanumerics
    assert message.usage_metadata["input_tokens"] > 0


def test_a_granite_history_keeps_its_calls(family_dir):
    # Granite's template renders an assistant turn's content only: the call goes into it, in
    # Granite's syntax, and the prompt a call reads is the one rendered here
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from langchain_attention_buckets.chat.call import prompt_text
    from langchain_attention_buckets.text.render import call_format

    llm = _chat(family_dir, "granite", max_tokens=4)
    history = [
        HumanMessage("Weather in Paris?"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}]),
        ToolMessage("sunny", tool_call_id="call_1"),
        AIMessage("It is sunny in Paris."),
        HumanMessage("And in Rome?"),
    ]
    tok = llm.tokenizer()
    options = llm.call_options(tools=[convert_to_openai_tool(get_weather)])
    prompt = prompt_text(tok, history, options, fmt=call_format(tok))
    parts = ["<|start_of_role|>user<|end_of_role|>Weather in Paris?<|end_of_text|>",
             '<|start_of_role|>assistant<|end_of_role|><|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]'
             "<|end_of_text|>",
             "<|start_of_role|>tool<|end_of_role|>sunny<|end_of_text|>",
             "<|start_of_role|>assistant<|end_of_role|>It is sunny in Paris.<|end_of_text|>",
             "<|start_of_role|>user<|end_of_role|>And in Rome?<|end_of_text|>"]
    at = [prompt.find(p) for p in parts]
    assert -1 not in at and at == sorted(at), prompt
    message = llm.bind_tools([get_weather]).invoke(history)
    assert message.response_metadata["tool_format"] == "granite"
    assert message.usage_metadata["input_tokens"] == len(tok.encode(prompt, add_special_tokens=False))


def test_format_settings_are_checked():
    with pytest.raises(ValueError, match="tool_format='gpt' is not allowed.*'llama3'"):
        ChatAttentionBuckets(tool_format="gpt")
    with pytest.raises(ValueError, match="reasoning_format='xml' is not allowed.*'think'"):
        ChatAttentionBuckets(reasoning_format="xml")
    with pytest.raises(ValueError, match="reasoning=1 must be True, False or None"):
        ChatAttentionBuckets(reasoning=1)


def test_the_decision_waits_for_the_reasoning_to_end():
    # tokens: 5 opener, 8 <think>, 9 </think>, 7 newline
    c = DecisionConstraint(None, (5,), bias=3.0, reasoning=Reasoning((8,), (9,), opened=True, gap=frozenset({7})))
    for token in (2, 3, 9):  # the reasoning and its end: no bias
        row = torch.zeros(10)
        c.apply_bias(row)
        assert row[5] == 0.0
        c.accept(token)
    for token in (7, 4):  # the answer's first token (a newline after the reasoning does not count)
        row = torch.zeros(10)
        c.apply_bias(row)
        assert row[5] == 3.0
        c.accept(token)
    row = torch.zeros(10)
    c.apply_bias(row)
    assert row[5] == 0.0 and not math.isinf(row[0])  # decided: text


def test_the_decision_defers_when_the_model_opens_its_reasoning():
    c = DecisionConstraint(None, (5, 6), bias=2.0, reasoning=Reasoning((8,), (9,), opened=False, gap=frozenset({7})))
    row = torch.zeros(10)
    c.apply_bias(row)
    assert row[5] == 2.0  # the first token may open a call or the reasoning
    c.accept(8)
    for token in (3, 9):
        row = torch.zeros(10)
        c.apply_bias(row)
        assert row[5] == 0.0
        c.accept(token)
    row = torch.zeros(10)
    c.apply_bias(row)
    assert row[5] == 2.0
    c.accept(5)  # the opener's first token: the rest is forced
    row = torch.zeros(10)
    c.apply_steering(row)
    assert torch.isfinite(row).nonzero().flatten().tolist() == [6]
