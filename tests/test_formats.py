"""Tool-call and reasoning formats: each family's corpus, whole and streamed in any split; cuts by
max_tokens; the public parsing API; what the formats hand to rendering."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from format_corpus import TOOLS, load, splits, streamed, summary, whole
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_attention_buckets import formats
from langchain_attention_buckets.formats.mistral import Mistral, mistral_id
from langchain_attention_buckets.text.parse import ArgsDelta, CallStart, ParsedCall, ReasoningPiece, TextPiece, ToolCallParser

FAMILIES = formats.names()
CASES = [(f, c) for f in FAMILIES for c in load(f)]
CASE_IDS = [f"{f}:{c['id']}" for f, c in CASES]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def test_the_names_are_the_families_of_the_issue():
    assert FAMILIES == ["hermes", "qwen3", "llama3", "mistral", "deepseek-r1", "granite"]


def test_each_family_has_a_corpus_of_thirty_cases_or_more():
    for family in FAMILIES:
        assert len(load(family)) >= 30, family


# ---- the corpora --------------------------------------------------------------------------------


@pytest.mark.parametrize(("family", "case"), CASES, ids=CASE_IDS)
def test_corpus_case_whole_and_streamed(family, case):
    assert summary(whole(family, case)) == case["expect"]
    for pieces in splits(case["text"], seed=len(case["text"]), n_random=2):
        assert summary(streamed(family, case, pieces)) == case["expect"], pieces


@pytest.mark.parametrize(("family", "case"), CASES, ids=CASE_IDS)
def test_no_marker_reaches_the_content_or_a_call_name(family, case):
    fmt = formats.get(family)
    msg = whole(family, case)
    specials = [m for m in (*fmt.markers, *fmt.end_markers) if len(m) > 3]
    assert not any(m in msg.content for m in specials)
    for c in [*msg.tool_calls, *msg.invalid_tool_calls]:
        assert not any(m in (c.get("name") or "") for m in specials)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_split_reads_as_the_whole(data):
    family, case = data.draw(st.sampled_from(CASES))
    text = case["text"]
    cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=12)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    got = streamed(family, case, pieces)
    want = whole(family, case)
    assert summary(got) == summary(want)
    assert got.tool_calls == want.tool_calls  # ids too: they depend on the text only


def _prefix_cases():
    rng = random.Random(7)
    out = []
    for family, case in CASES:
        if case["expect"]["calls"]:
            out.append((family, case))
    return rng.sample(out, 60)


@pytest.mark.parametrize(("family", "case"), _prefix_cases(), ids=lambda v: v["id"] if isinstance(v, dict) else v)
def test_every_prefix_parses_and_never_as_another_valid_call(family, case):
    full = whole(family, case).tool_calls
    text = case["text"]
    for n in range(0, len(text) + 1, max(1, len(text) // 120)):
        msg = formats.parse_message(text[:n], TOOLS, family, reasoning_opened=case.get("reasoning_opened"),
                                    reasoning_format=case.get("reasoning_format"), finish_reason="length")
        for i, c in enumerate(msg.tool_calls):
            assert i < len(full) and (c["name"], c["args"]) == (full[i]["name"], full[i]["args"]), (n, c)


# ---- the stream's shape --------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_streamed_chunks_carry_the_index_and_the_name_before_the_arguments(family):
    case = next(c for c in load(family) if c["id"] == "parallel-three")
    stream = formats.MessageStream(TOOLS, family, reasoning_opened=False)  # (not known: held until the end)
    chunks = [c for ch in case["text"] for c in stream.feed(ch)] + stream.finish()
    seen_name: set[int] = set()
    for chunk in chunks:
        for tc in chunk.tool_call_chunks:
            assert isinstance(tc["index"], int)
            if tc["name"] is not None:
                seen_name.add(tc["index"])
            elif tc["args"]:
                assert tc["index"] in seen_name  # the name came first
    assert seen_name == {0, 1, 2}
    assert chunks[-1].chunk_position == "last"
    args_chunks = [tc for ch in chunks for tc in ch.tool_call_chunks if tc["args"]]
    assert len(args_chunks) > 6  # the arguments stream while the calls are open


def test_the_parser_events_of_another_format_keep_the_contract():
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    text = "<think>\nweather first\n</think>\n\nChecking.\n" + call
    parser = ToolCallParser(SCHEMAS, format="qwen3")
    events = [e for ch in text for e in parser.feed(ch)] + parser.finish()
    kinds = [type(e) for e in events]
    assert "".join(e.text for e in events if isinstance(e, ReasoningPiece)) == "weather first"
    assert "".join(e.text for e in events if isinstance(e, TextPiece)) == "Checking."
    assert kinds.index(CallStart) < kinds.index(ArgsDelta) < kinds.index(ParsedCall)
    assert json.loads("".join(e.text for e in events if isinstance(e, ArgsDelta))) == {"city": "Oslo"}


def test_reasoning_is_streamed_as_it_is_generated():
    stream = formats.MessageStream(TOOLS, "qwen3")
    out = [c for ch in "<think>\nstep one, step two " for c in stream.feed(ch)]
    assert "".join(c.additional_kwargs.get("reasoning_content", "") for c in out) == "step one, step two"
    assert all(c.content == "" for c in out)


def test_reasoning_is_a_v1_block_and_in_additional_kwargs():
    msg = formats.parse_message("<think>\nWhy not.\n</think>\n\nYes.", None, "qwen3")
    assert msg.content == "Yes."
    assert msg.additional_kwargs["reasoning_content"] == "Why not."
    assert msg.content_blocks[0] == {"type": "reasoning", "reasoning": "Why not."}


def test_a_cut_call_is_invalid_with_its_raw_text_and_reason():
    text = '{"name": "get_weather", "parameters": {"city": "Par'
    msg = formats.parse_message(text, TOOLS, "llama3", finish_reason="length")
    assert msg.tool_calls == [] and msg.content == ""
    (bad,) = msg.invalid_tool_calls
    assert bad["name"] == "get_weather" and "Par" in bad["args"]
    assert bad["error"] == "max_tokens reached before the call was complete"


def test_the_stream_adds_up_to_parse_message():
    text = 'Sure.[TOOL_CALLS][{"name": "add", "arguments": {"a": 1, "b": "2"}}, {"name": "nope", "arguments": {}}]'
    stream = formats.MessageStream(TOOLS, "mistral")
    chunks = [c for ch in text for c in stream.feed(ch)] + stream.finish("stop")
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    msg = formats.parse_message(text, TOOLS, "mistral", finish_reason="stop")
    assert isinstance(total, AIMessageChunk) and isinstance(msg, AIMessage)
    assert (total.content, total.tool_calls, total.additional_kwargs) == (msg.content, msg.tool_calls, msg.additional_kwargs)
    assert [c["id"] for c in total.invalid_tool_calls] == [c["id"] for c in msg.invalid_tool_calls]
    assert msg.tool_calls[0]["args"] == {"a": 1, "b": 2}  # coerced to the schema
    assert all(len(c["id"]) == 9 and c["id"].isalnum() for c in [*msg.tool_calls, *msg.invalid_tool_calls])
    assert msg.invalid_tool_calls[0]["error"].startswith("unknown tool 'nope'")
    assert msg.response_metadata["tool_call_errors"]


# ---- the API --------------------------------------------------------------------------------------


def test_tools_in_every_form_bind_tools_accepts():
    @tool
    def get_weather(city: str) -> str:
        """Weather in a city."""
        return city

    class search(BaseModel):
        """Search the web."""

        query: str

    text = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
        '<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>'
    )
    openai_search = {"type": "function", "function": TOOLS[1]["function"]}
    for tools in ([get_weather, search], [TOOLS[0], search], [get_weather, openai_search]):
        msg = formats.parse_message(text, tools)
        assert [c["name"] for c in msg.tool_calls] == ["get_weather", "search"], tools


def test_without_tools_any_name_is_a_call():
    msg = formats.parse_message('{"name": "whatever", "parameters": {"x": 1}}', None, "llama3")
    assert msg.tool_calls[0]["name"] == "whatever" and msg.tool_calls[0]["args"] == {"x": 1}


def test_unknown_names_are_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="'command-r'.*hermes, qwen3, llama3, mistral, deepseek-r1, granite"):
        formats.get("command-r")
    with pytest.raises(ValueError, match="'thinking'.*none, think"):
        formats.get("hermes", reasoning_format="thinking")
    with pytest.raises(ValueError, match="unknown"):
        formats.MessageStream(TOOLS, "gpt-oss")


def test_reasoning_format_overrides_the_family():
    text = "<think>\nhm\n</think>\nHi"
    assert formats.parse_message(text, None, "hermes", reasoning_format="think").content == "Hi"
    assert formats.parse_message(text, None, "hermes", reasoning_format="qwen3").additional_kwargs == {"reasoning_content": "hm"}
    assert "<think>" in formats.parse_message(text, None, "qwen3", reasoning_format="none").content
    assert formats.get("qwen3").reasoning == ("<think>", "</think>")  # the shared object is untouched


TEMPLATES = {
    # excerpts of each family's official chat template: the markers detection reads
    "hermes": "{%- for tool in tools %}{{- tool | tojson }}{%- endfor %}<tool_call>\\n{\"name\": <function-name>, "
    "\"arguments\": <args-json-object>}\\n</tool_call>",
    "qwen3": "<tool_call>\\n{\"name\": <function-name>}</tool_call>{%- if enable_thinking is defined and "
    "enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}",
    "llama3": "{%- if builtin_tools is defined or tools is not none %}{{- \"Environment: ipython\\n\" }}{%- endif %}"
    "{{- '<|python_tag|>' + tool_call.name + '.call(' }}",
    "mistral": "{%- if message.tool_calls is defined %}{{- \"[TOOL_CALLS] [\" }}{%- endif %}",
    "deepseek-r1": "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>'}}"
    "{%- if add_generation_prompt %}{{'<｜Assistant｜><think>\\n'}}{%- endif %}",
    "granite": "respond only with <|tool_call|> followed by a JSON list of tools used. Write your thoughts between "
    "<think></think> and write your response between <response></response>",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_detect_reads_the_template_markers(family):
    assert formats.detect(TEMPLATES[family]) == family


def test_detect_falls_back_to_the_package_format():
    assert formats.detect(None) == "hermes"
    assert formats.detect("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}") == "hermes"


def test_magistral_templates_read_think_tokens():
    fmt = formats.for_template("[SYSTEM_PROMPT]{{ x }}[THINK][/THINK][TOOL_CALLS]{{ name }}[ARGS]{{ arguments }}")
    assert fmt.reasoning == ("[THINK]", "[/THINK]") and fmt.style == "v11"
    msg = formats.parse_message('[THINK]Paris.[/THINK][TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}', TOOLS, fmt)
    assert msg.additional_kwargs["reasoning_content"] == "Paris." and msg.tool_calls[0]["args"] == {"city": "Paris"}
    assert formats.get("mistral").reasoning is None  # the shared object is untouched


def test_without_calls_a_format_reads_reasoning_and_text_only():
    fmt = formats.get("qwen3").without_calls()
    text = '<think>\nhm\n</think>\n\n<tool_call>{"name": "get_time", "arguments": {}}</tool_call><|im_end|>'
    msg = formats.parse_message(text, TOOLS, fmt)
    assert msg.additional_kwargs["reasoning_content"] == "hm"
    assert msg.content == '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>' and not msg.tool_calls


def test_a_template_that_knows_think_reads_reasoning_in_any_family():
    llama = formats.for_template("<|start_header_id|>ipython<|end_header_id|>{{ '<think>' + r + '</think>' }}")
    assert llama.name == "llama3" and llama.reasoning == ("<think>", "</think>")
    assert formats.for_template("<|start_header_id|>ipython<|end_header_id|>").reasoning is None


def test_no_format_name_is_the_package_format():
    assert formats.get(None).name == "hermes"
    assert formats.parse_message("<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>", TOOLS).tool_calls


TEMPLATE_DIR = Path(__file__).parent / "data" / "templates"
REAL_TEMPLATES = {  # file name -> (format, whether the generation prompt opens the reasoning)
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja": ("hermes", False),
    "Qwen-Qwen2.5-7B-Instruct.jinja": ("hermes", False),
    "Qwen-Qwen3-0.6B.jinja": ("qwen3", False),
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": ("deepseek-r1", True),
    "meta-llama-Llama-3.3-70B-Instruct.jinja": ("llama3", False),
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": ("mistral", False),
    "ibm-granite-granite-3.3-2B-Instruct.jinja": ("granite", False),
}


@pytest.mark.parametrize("name", sorted(REAL_TEMPLATES))
def test_detect_reads_the_real_templates(name):
    path = TEMPLATE_DIR / name
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    source = path.read_text(encoding="utf-8")
    family, opens = REAL_TEMPLATES[name]
    assert formats.detect(source) == family
    assert formats.for_template(source).template_opens_reasoning(source) is opens


def test_mistral_v11_templates_get_the_name_then_arguments_style():
    fmt = formats.for_template("[TOOL_CALLS]{{ name }}[ARGS]{{ arguments }}")
    assert isinstance(fmt, Mistral) and fmt.style == "v11"
    assert fmt.format_call("add", {"a": 1}) == '[TOOL_CALLS]add[ARGS]{"a": 1}'
    with pytest.raises(ValueError, match="style='v2'"):
        Mistral("v2")


def test_granite_reads_no_reasoning_though_its_template_names_think():
    source = (TEMPLATE_DIR / "ibm-granite-granite-3.3-2B-Instruct.jinja").read_text(encoding="utf-8")
    assert "</think>" in source  # its thinking mode's instruction
    fmt = formats.for_template(source)
    assert fmt.name == "granite" and fmt.reasoning is None
    msg = formats.parse_message("<think>Paris.</think><response>Sunny.</response>", TOOLS, fmt)
    assert msg.content == "<think>Paris.</think><response>Sunny.</response>" and not msg.additional_kwargs


def test_granite_writes_all_calls_in_one_list():
    fmt = formats.get("granite")
    calls = [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}, {"name": "get_time", "arguments": {}}]
    assert fmt.format_calls(calls) == (
        '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {}}]'
    )
    assert fmt.format_call("get_time", {}) == '<|tool_call|>[{"name": "get_time", "arguments": {}}]'


def test_thinking_only_templates_open_the_reasoning():
    qwen = formats.get("qwen3")
    assert qwen.opens_reasoning("<|im_start|>assistant\n<think>\n")
    assert not qwen.opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not qwen.opens_reasoning("<|im_start|>assistant\n")
    assert qwen.template_opens_reasoning("{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}")
    assert not qwen.template_opens_reasoning(TEMPLATES["qwen3"].replace("enable_thinking", "add_generation_prompt"))
    assert not formats.get("llama3").opens_reasoning("<think>")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_written_call_parses_back(family):
    fmt = formats.get(family)
    calls = [{"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}, "id": "call_1"},
             {"name": "echo", "arguments": {"text": 'a "quoted" </tool_call> ; ] }'}, "id": "call_2"}]
    msg = formats.parse_message(fmt.format_calls(calls), TOOLS, family, reasoning_opened=False)
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [(c["name"], c["arguments"]) for c in calls]
    assert msg.content == "" and not msg.invalid_tool_calls
    one = formats.parse_message(fmt.format_call("get_time", {}), TOOLS, family, reasoning_opened=False)
    assert [(c["name"], c["args"]) for c in one.tool_calls] == [("get_time", {})]


def test_openers_are_where_written_calls_start():
    for family in FAMILIES:
        fmt = formats.get(family)
        written = fmt.format_call("get_time", {})
        assert any(written.startswith(o) for o in fmt.openers), family


def test_mistral_ids_are_nine_alphanumerics():
    assert mistral_id("a1b2c3d4e") == "a1b2c3d4e"  # already a Mistral id: kept
    ids = {mistral_id(f"call_{i}") for i in range(50)}
    assert len(ids) == 50 and all(len(i) == 9 and i.isalnum() for i in ids)


# ---- any text at all -----------------------------------------------------------------------------

def _alphabet(family: str) -> list[str]:
    fmt = formats.get(family)
    pieces = [*fmt.markers, *fmt.end_markers, *fmt.openers, "<think>", "</think>", "[THINK]", "[/THINK]"]
    pieces += ['{"name": "get_weather", ', '"arguments": ', '"parameters": ', '{"city": "Paris"}', '"', "{", "}",
               "[", "]", ",", ";", " ", "\n", "\\", "```json\n", "```", "get_weather", '{"text": "a', "é", "x",
               "<function=get_weather>", '<function name="echo">']
    return pieces


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_text_parses_without_error_and_the_same_in_any_split(family, data):
    text = "".join(data.draw(st.lists(st.sampled_from(_alphabet(family)), max_size=30)))
    opened = data.draw(st.sampled_from([None, True, False]))
    reason = data.draw(st.sampled_from([None, "stop", "length"]))
    case = {"text": text, "reasoning_opened": opened, "finish_reason": reason}
    want = whole(family, case)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=10)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    got = streamed(family, case, pieces)
    assert summary(got) == summary(want), pieces
    assert got.tool_calls == want.tool_calls


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}[]"\\ab,:é', max_size=40))
def test_the_fast_json_reading_agrees_with_the_scanner(s):
    from langchain_attention_buckets.formats.base import ends_inside_string, json_end
    from langchain_attention_buckets.text.scan import JsonScanner

    assert ends_inside_string(s) == JsonScanner(s).in_string
    text = "{" + s
    scan, end = JsonScanner(), None
    for i, ch in enumerate(text):
        scan.read(ch)
        if scan.broken or not scan.stack:
            end = i + 1
            break
    assert json_end(text, 0) == end
    assert json_end(text, 0) == end  # and again, resumed from the last reading


def test_an_id_the_model_wrote_is_the_call_id():
    msg = formats.parse_message('[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Paris"}', TOOLS, "mistral")
    assert msg.tool_calls[0]["id"] == "a1b2c3d4e"
