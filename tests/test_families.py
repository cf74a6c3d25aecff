"""Each model family with its real chat template: rendering, forced and automatic calls, reasoning.

Tiny random models of the families' architectures (tests/families.py) with their real templates
(tests/data/templates): a conversation with calls and results renders in the structure each
template reads; a forced call comes out in the family's own syntax and parses back as the call;
in tool_choice="auto" a call opened at the family's opener is constrained from there; reasoning
is switched by ``reasoning=`` where the template supports it, and the grammar lets the output
start inside the reasoning where the prompt opened it.
"""

from __future__ import annotations

import re

import pytest
from families import FAMILIES, family_tokenizer

from langchain_attention_buckets.constrain import compiler_for
from langchain_attention_buckets.constrain.grammar import syntax_of
from langchain_attention_buckets.formats import parse_message
from langchain_attention_buckets.text.render import call_format, drops_calls, render, template_source

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a time zone.",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string", "description": "the zone"}}, "required": ["tz"]},
    },
}
TOOLS = [WEATHER, TIME]

CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Weather in Paris and in Rome?"},
    {
        "role": "assistant",
        "content": "Checking both cities.",
        "tool_calls": [
            {"id": "call_paris_0001", "name": "get_weather", "arguments": {"city": "Paris"}},
            {"id": "call_rome_0002", "name": "get_weather", "arguments": {"city": "Rome"}},
        ],
    },
    {"role": "tool", "content": '{"sky": "sunny"}', "tool_call_id": "call_paris_0001", "name": "get_weather"},
    {"role": "tool", "content": "light rain", "tool_call_id": "call_rome_0002", "name": "get_weather"},
]


@pytest.fixture(scope="module")
def tokenizers():
    return {name: family_tokenizer(name) for name in FAMILIES}


def _in_order(prompt: str, *parts: str) -> bool:
    at = -1
    for p in parts:
        at = prompt.find(p, at + 1)
        if at < 0:
            return False
    return True


# ---- rendering -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_calls_and_results_reach_every_template_in_order(tokenizers, name):
    prompt = render(tokenizers[name], CONVERSATION, TOOLS)
    parts = ("Answer briefly.", "Weather in Paris and in Rome?", "Checking both cities.", "Paris", "Rome", "sunny", "light rain")
    assert _in_order(prompt, *parts)
    assert "get_time" in prompt  # the tools' description (the template's own, or the fallback's)


@pytest.mark.parametrize("name", ["llama3", "llama3.2"])
def test_llama3_one_call_per_turn_and_results_in_the_ipython_role(tokenizers, name):
    prompt = render(tokenizers[name], CONVERSATION, TOOLS)
    header = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert f'{header}{{"name": "get_weather", "parameters": {{"city": "Paris"}}}}<|eot_id|>' in prompt
    assert f'{header}{{"name": "get_weather", "parameters": {{"city": "Rome"}}}}<|eot_id|>' in prompt
    assert f"{header}Checking both cities.<|eot_id|>" in prompt
    assert prompt.count("<|start_header_id|>ipython<|end_header_id|>") == 2
    assert '<|start_header_id|>ipython<|end_header_id|>\n\n{"sky": "sunny"}<|eot_id|>' in prompt  # JSON stays JSON
    assert "Environment: ipython" in prompt  # the template's own tool prompt


def test_mistral_ids_are_nine_alphanumerics_shared_by_call_and_result(tokenizers):
    prompt = render(tokenizers["mistral"], CONVERSATION, TOOLS)
    call_ids = re.findall(r'"id": "([^"]*)"', prompt)
    result_ids = re.findall(r'"call_id": "([^"]*)"', prompt)
    assert len(call_ids) == 2 and call_ids == result_ids
    assert all(len(i) == 9 and i.isalnum() for i in call_ids) and call_ids[0] != call_ids[1]
    assert "Checking both cities.[TOOL_CALLS][" in prompt  # the text the template would drop, before the marker
    assert '[TOOL_RESULTS]{"content": "light rain", ' in prompt  # results as JSON strings (mistral-common)
    assert "Answer briefly." in prompt  # the system message the template would leave out


def test_mistral_v11_calls_one_marker_each_with_their_ids(tokenizers):
    prompt = render(tokenizers["mistral-v11"], CONVERSATION, TOOLS)
    call_ids = re.findall(r"\[CALL_ID\](.*?)\[ARGS\]", prompt)
    result_ids = re.findall(r"\[TOOL_RESULTS\](.*?)\[TOOL_CONTENT\]", prompt)
    assert len(call_ids) == 2 and call_ids == result_ids and all(len(i) == 9 and i.isalnum() for i in call_ids)
    assert "[/INST]Checking both cities.[TOOL_CALLS]get_weather[CALL_ID]" in prompt
    assert "[TOOL_CONTENT]light rain[/TOOL_RESULTS]" in prompt  # v11 results are not quoted


@pytest.mark.parametrize("name", ["qwen2.5", "qwen3", "hermes3"])
def test_hermes_family_templates_get_tool_call_blocks(tokenizers, name):
    prompt = render(tokenizers[name], CONVERSATION, TOOLS)
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert _in_order(prompt, "<tool_response>\n" + '{"sky": "sunny"}', "<tool_response>\nlight rain")


def test_granite_calls_go_into_the_content_the_template_renders(tokenizers):
    # Granite's template writes an assistant turn's content only: the calls are written into it,
    # in Granite's own syntax, and the results go back in the tool role
    tok = tokenizers["granite"]
    # SmolLM3's template renders no calls either, but no tools: the fallback writes its calls
    assert [n for n in FAMILIES if drops_calls(tokenizers[n])] == ["smollm3", "granite"]
    prompt = render(tok, CONVERSATION, TOOLS)
    calls = '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}, ' \
            '{"name": "get_weather", "arguments": {"city": "Rome"}}]'
    assert f"<|start_of_role|>assistant<|end_of_role|>Checking both cities.\n{calls}<|end_of_text|>" in prompt
    assert '<|start_of_role|>tool<|end_of_role|>{"sky": "sunny"}<|end_of_text|>' in prompt
    assert "<|start_of_role|>available_tools<|end_of_role|>" in prompt  # the template's own tool prompt
    assert prompt.endswith("<|start_of_role|>assistant<|end_of_role|>")


def test_a_template_that_renders_no_tools_gets_the_fallback(tokenizers):
    # the R1 distill template renders calls but no tool list: the package's own format, with R1's reasoning
    tok = tokenizers["deepseek-r1"]
    prompt = render(tok, CONVERSATION, TOOLS)
    assert '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>' in prompt
    fmt = call_format(tok)
    assert fmt.name == "hermes" and fmt.reasoning == ("<think>", "</think>")


def test_smollm3_gets_the_fallback_with_its_think_reasoning(tokenizers):
    # SmolLM3's template renders neither tools nor calls, and writes </think> where thinking is off
    tok = tokenizers["smollm3"]
    prompt = render(tok, CONVERSATION, TOOLS)
    assert '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>' in prompt
    assert "<tools>" in prompt and "Reasoning Mode: /think" in prompt
    fmt = call_format(tok)
    assert fmt.name == "hermes" and fmt.reasoning == ("<think>", "</think>")
    msgs = [{"role": "user", "content": "hi"}]
    syntax = syntax_of(fmt)
    assert syntax.for_prompt(render(tok, msgs)).reasoning_start == "optional"  # the model may open <think>
    off = render(tok, msgs, reasoning=False)  # enable_thinking=False: the prompt closes it
    assert off.endswith("<think>\n\n</think>\n") and syntax.for_prompt(off).reasoning_start == "none"
    flagged = render(tok, [{"role": "system", "content": "Be brief. /no_think"}, *msgs])  # the template's own flag
    assert "Reasoning Mode: /no_think" in flagged and syntax.for_prompt(flagged).reasoning_start == "none"


def test_reasoning_switch(tokenizers):
    qwen3 = tokenizers["qwen3"]
    msgs = [{"role": "user", "content": "hi"}]
    assert render(qwen3, msgs, reasoning=False).endswith("<think>\n\n</think>\n\n")
    assert render(qwen3, msgs, reasoning=True) == render(qwen3, msgs) == qwen3.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True
    )
    syntax = syntax_of(call_format(qwen3))
    assert syntax.for_prompt(render(qwen3, msgs, reasoning=False)).reasoning_start == "none"
    assert syntax.for_prompt(render(qwen3, msgs, reasoning=True)).reasoning_start == "optional"
    r1 = tokenizers["deepseek-r1"]
    assert syntax_of(call_format(r1)).for_prompt(render(r1, msgs)).reasoning_start == "inside"
    llama = tokenizers["llama3"]
    assert render(llama, msgs, reasoning=False) == render(llama, msgs)  # no switch: the template's default


# ---- generation with the tiny models ---------------------------------------------------------


@pytest.fixture(scope="module")
def engines(family_dir):
    from langchain_attention_buckets.engine import Engine
    from langchain_attention_buckets.engine.loading import ModelSpec, load_model

    built = {}

    def get(name):
        if name not in built:
            loaded = load_model(ModelSpec(source=family_dir(name), device="cpu", dtype="float32"))
            built[name] = (loaded, Engine(loaded, prefix_cache_bytes=0))
        return built[name]

    return get


def _generate(engines, name, mode, *, parallel=True, bias_opener=False, max_tokens=48, reasoning=None, allowed=None):
    from langchain_attention_buckets.engine.request import Request

    loaded, engine = engines(name)
    tok = loaded.tokenizer
    fmt = call_format(tok)
    prompt = render(tok, [{"role": "user", "content": "Weather in Paris?"}], TOOLS, reasoning=reasoning)
    syntax = syntax_of(fmt).for_prompt(prompt)
    stops = sorted(loaded.eos_token_ids)
    compiler = compiler_for(tok, vocab_size=loaded.vocab_size, stop_token_ids=stops, markers=syntax.markers)
    grammar = compiler.tool_calls(TOOLS, mode=mode, allowed=allowed, parallel=parallel, syntax=syntax).limit(max_tokens)
    bias = ()
    if bias_opener:  # the opener that is one token (Llama's <|python_tag|>): the model opens a call at once
        opener = min((tok.encode(o, add_special_tokens=False) for o in fmt.openers), key=len)
        bias = ((opener[0], 40.0),)
    ids = tuple(tok.encode(prompt, add_special_tokens=False))
    request = Request(prompt=ids, bases=(loaded.base,), max_tokens=max_tokens, constraint=grammar, logit_bias=bias)
    result = engine.generate(request)
    opened = syntax.reasoning_start == "inside"
    message = parse_message(result.text, TOOLS, fmt, reasoning_opened=opened, finish_reason=result.finish_reason)
    return result, message, fmt


@pytest.mark.parametrize("name", ["llama3", "llama3.2", "qwen3", "mistral", "mistral-v11", "hermes3", "smollm3", "granite"])
def test_a_forced_call_is_written_in_the_family_syntax_and_parses_back(engines, name):
    result, message, fmt = _generate(engines, name, "forced", parallel=False, allowed=["get_weather"])
    assert not message.invalid_tool_calls, (result.text, message.invalid_tool_calls)
    assert [c["name"] for c in message.tool_calls] == ["get_weather"], result.text
    assert isinstance(message.tool_calls[0]["args"].get("city"), str)
    for marker in fmt.markers:
        assert marker not in message.content
    tagged = ("<tool_call>",)
    llama = ("{", "<|python_tag|>{")
    openers = {"llama3": llama, "llama3.2": llama, "qwen3": tagged, "mistral": ("[TOOL_CALLS][",), "hermes3": tagged,
               "mistral-v11": ("[TOOL_CALLS]get_weather",), "smollm3": tagged,
               "granite": ('<|tool_call|>[{"name": "get_weather"',)}
    body = result.text.split("</think>")[-1].lstrip()
    assert body.startswith(openers[name]), result.text


@pytest.mark.parametrize("name", ["llama3", "mistral", "granite"])
def test_auto_constrains_a_call_from_the_family_opener(engines, name):
    result, message, fmt = _generate(engines, name, "auto", parallel=False, bias_opener=True)
    assert fmt.openers[0] in result.text or fmt.name == "llama3" and result.text.lstrip().startswith("{")
    assert len(message.tool_calls) == 1 and not message.invalid_tool_calls, result.text


@pytest.mark.parametrize("name", ["mistral", "granite"])
def test_none_never_opens_a_call_even_when_pushed(engines, name):
    result, message, fmt = _generate(engines, name, "none", bias_opener=True, max_tokens=16)
    assert fmt.openers[0] not in result.text and not message.tool_calls and not message.invalid_tool_calls


def test_a_thinking_only_template_starts_inside_the_reasoning(engines):
    result, message, fmt = _generate(engines, "deepseek-r1", "forced", parallel=False, max_tokens=40)
    assert "</think>" in result.text and "<think>" not in result.text
    assert len(message.tool_calls) == 1, result.text
    assert "reasoning_content" in message.additional_kwargs
    assert "</think>" not in message.content and "<tool_call>" not in message.content


def test_qwen3_reasoning_off_means_no_reasoning_in_the_grammar(engines):
    result, message, _ = _generate(engines, "qwen3", "forced", parallel=False, reasoning=False)
    assert result.text.lstrip().startswith("<tool_call>") and len(message.tool_calls) == 1


@pytest.mark.parametrize(("name", "marker"), [("mistral", "[TOOL_CALLS]"), ("granite", "<|tool_call|>")])
def test_family_markers_survive_detokenization(engines, name, marker):
    loaded, _ = engines(name)
    tok = loaded.tokenizer
    ids = tok.encode(marker + '[{"name": "get_weather", "arguments": {}}]', add_special_tokens=False)
    assert ids[0] == tok.convert_tokens_to_ids(marker)
    from langchain_attention_buckets.engine.detok import IncrementalDetokenizer

    detok = IncrementalDetokenizer(tok)
    text = "".join(detok.add(i) for i in ids) + detok.flush()
    assert text.startswith(marker + "[")
    assert template_source(tok)  # the template travels with the saved tokenizer


def test_every_call_style_keeps_its_budget_guarantee(tokenizers):
    from langchain_attention_buckets.formats import get
    from langchain_attention_buckets.formats.mistral import Mistral

    tok = tokenizers["qwen2.5"]  # the markers are plain text here: one compiler serves every style
    compiler = compiler_for(tok, stop_token_ids=[tok.eos_token_id])
    formats = [get("hermes"), get("qwen3"), get("llama3"), get("mistral"), Mistral("v11"), get("deepseek-r1"), get("granite")]
    for fmt in formats:
        syntax = syntax_of(fmt)
        for start in ("none", "inside") if syntax.reasoning else ("none",):
            syntax = syntax.for_prompt("<think>\n" if start == "inside" else "")
            grammar = compiler.tool_calls(TOOLS, mode="forced", allowed=["get_weather"], parallel=True, syntax=syntax)
            n, text = grammar.shortest()
            assert fmt.format_call("get_weather", {"city": ""}).split("{")[0].strip() in text, (fmt, text)
            message = parse_message(text, TOOLS, fmt, reasoning_opened=start == "inside")
            assert [c["name"] for c in message.tool_calls] == ["get_weather"], (fmt, text, message)
            with pytest.raises(ValueError, match=f"max_tokens=2 is below {n}"):
                compiler.tool_calls(TOOLS, mode="forced", allowed=["get_weather"], syntax=syntax).limit(2)


def test_a_named_format_on_a_template_without_tools_asks_for_its_own_syntax(smol_tokenizer):
    from langchain_attention_buckets.formats import get

    llama = get("llama3")
    prompt = render(smol_tokenizer, CONVERSATION, TOOLS, call_format=llama)
    assert '{"name": "<function-name>", "parameters": {"<argument>": "<value>"}}' in prompt
    paris, rome = ('{"name": "get_weather", "parameters": {"city": "%s"}}' % c for c in ("Paris", "Rome"))
    assert f"{paris}; {rome}" in prompt
    assert "<tool_call>" not in prompt
    # the package's own format (and any Hermes-writing one) leaves the fallback as it was
    assert render(smol_tokenizer, CONVERSATION, TOOLS, call_format=get("hermes")) == render(smol_tokenizer, CONVERSATION, TOOLS)
