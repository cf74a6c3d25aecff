"""Rendering messages through chat templates, and parsing generated text into tool calls."""

from __future__ import annotations

import json

import pytest

from langchain_attention_buckets.formats.hermes import format_tool_call
from langchain_attention_buckets.text.parse import ParsedCall, TextPiece, ToolCallParser, coerce, parse
from langchain_attention_buckets.text.render import render, render_call, template_renders_tools, tools_system_text
from langchain_attention_buckets.text.tool_choice import Choice

SMOL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TOOLS_TEMPLATE = (
    "{% if tools %}TOOLS:{{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] or '' }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}"
    "<call {{ c.function.name }} {{ c.function.arguments | tojson }}>"
    "{% endfor %}{% endif %}"
    "\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
)
STRICT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] not in ['user', 'assistant', 'system'] %}"
    "{{ raise_exception('bad role ' + m['role']) }}{% endif %}"
    "{% if loop.index0 > 0 and m['role'] == messages[loop.index0 - 1]['role'] %}"
    "{{ raise_exception('roles must alternate') }}{% endif %}"
    "<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
)


class TemplateTokenizer:
    """Just enough of a tokenizer to render with a Jinja chat template (transformers' renderer)."""

    def __init__(self, template: str):
        self.chat_template = template

    def apply_chat_template(self, messages, tools=None, tokenize=False, add_generation_prompt=False, **kw):
        from transformers.utils.chat_template_utils import render_jinja_template

        rendered, _ = render_jinja_template(
            conversations=[messages], tools=tools, chat_template=self.chat_template, add_generation_prompt=add_generation_prompt
        )
        return rendered[0]


TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


def test_without_tools_the_prompt_is_exactly_the_template():
    tok = TemplateTokenizer(SMOL_TEMPLATE)
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "x"}]
    assert render(tok, msgs) == tok.apply_chat_template(msgs, add_generation_prompt=True)


def test_fallback_format_puts_schemas_in_the_system_turn():
    tok = TemplateTokenizer(SMOL_TEMPLATE)
    assert not template_renders_tools(tok)
    out = render(tok, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}], [TOOL])
    assert out.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert json.dumps(TOOL) in out
    assert "<tool_call>" in out and "Weather in Paris?" in out


def test_fallback_round_trip_of_calls_and_results():
    tok = TemplateTokenizer(SMOL_TEMPLATE)
    msgs = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"role": "tool", "content": "sunny", "name": "get_weather", "tool_call_id": "1"},
    ]
    out = render(tok, msgs, [TOOL])
    assert format_tool_call("get_weather", {"city": "Paris"}) in out
    assert "<|im_start|>user\nResult of get_weather: sunny<|im_end|>" in out  # the default form
    assert out.index("Weather in Paris?") < out.index('<tool_call>{"name": "get_weather"') < out.index("Result of")


@pytest.mark.parametrize(
    "form, expected",
    [
        ("tagged", '<|im_start|>tool\n<tool_response>\n{"name": "get_weather", "content": {"sky": "clear"}}\n</tool_response>'),
        ("tool-plain", '<|im_start|>tool\nget_weather returned: {"sky": "clear"}<|im_end|>'),
        ("user-plain", '<|im_start|>user\nResult of get_weather: {"sky": "clear"}<|im_end|>'),
        ("user-reminder", 'Result of get_weather: {"sky": "clear"}\n\nAnswer my request using this result.<|im_end|>'),
    ],
)
def test_each_tool_result_form(monkeypatch, form, expected):
    from langchain_attention_buckets.text import render as render_module

    monkeypatch.setattr(render_module, "FALLBACK_RESULT_FORM", form)
    msgs = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"role": "tool", "content": '{"sky": "clear"}', "name": "get_weather", "tool_call_id": "1"},
    ]
    assert expected in render(TemplateTokenizer(SMOL_TEMPLATE), msgs, [TOOL])


def test_tool_results_become_user_turns_where_the_template_refuses_a_tool_role():
    tok = TemplateTokenizer(STRICT_TEMPLATE)
    msgs = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "name": "get_weather", "arguments": {"city": "Oslo"}}]},
        {"role": "tool", "content": "rain", "name": "get_weather"},
    ]
    out = render(tok, msgs, [TOOL])
    assert "<user>Result of get_weather: rain" in out


def test_same_roles_are_joined_only_where_the_template_refuses_them():
    strict = TemplateTokenizer(STRICT_TEMPLATE)
    msgs = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]
    assert render(strict, msgs, add_generation_prompt=False) == "<user>a\n\nb<assistant>c"
    smol = TemplateTokenizer(SMOL_TEMPLATE)
    out = render(smol, msgs)
    assert out.count("<|im_start|>user") == 2


def test_several_system_messages_and_an_ai_first_conversation_keep_their_order():
    tok = TemplateTokenizer(SMOL_TEMPLATE)
    msgs = [
        {"role": "assistant", "content": "first"},
        {"role": "system", "content": "s1"},
        {"role": "system", "content": "s2"},
        {"role": "user", "content": "u"},
    ]
    out = render(tok, msgs)
    positions = [out.index(x) for x in ("first", "s1", "s2", "\nu<")]
    assert positions == sorted(positions)


def test_templates_that_render_tools_get_them_and_structured_calls():
    tok = TemplateTokenizer(TOOLS_TEMPLATE)
    assert template_renders_tools(tok)
    msgs = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "name": "get_weather", "arguments": {"city": "Rome"}}]},
    ]
    out = render(tok, msgs, [TOOL])
    assert out.startswith("TOOLS:") and '<call get_weather {"city": "Rome"}>' in out


def test_tool_instruction_is_added():
    assert tools_system_text([TOOL], "Call get_weather.").endswith("Call get_weather.")


JSON_SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}}


def test_render_call_asks_for_the_format_in_the_system_turn_without_tools():
    tok = TemplateTokenizer(SMOL_TEMPLATE)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    out = render_call(tok, msgs, [], Choice("auto"), {"type": "json_object"})
    assert out.startswith("<|im_start|>system\nBe brief.\n\nReply with a JSON object only.<|im_end|>")
    out = render_call(tok, msgs[1:], [], Choice("auto"), JSON_SCHEMA_FORMAT)
    assert out.startswith('<|im_start|>system\nReply with a JSON object only, valid under this JSON schema: {"type": "object"}')
    assert render_call(tok, msgs, [], Choice("auto"), None) == render(tok, msgs)


@pytest.mark.parametrize(
    "choice, response_format, text",
    [
        (Choice("required"), None, "Answer by calling one of the functions."),
        (Choice("named", "get_weather"), None, "Answer by calling the function get_weather."),
        (Choice("none"), None, "Do not call a function now; answer in text."),
        (
            Choice("auto"),
            {"type": "json_object"},
            "When you give your final answer instead of calling a function, reply with a JSON object only.",
        ),
    ],
)
def test_render_call_with_tools_adds_the_instruction_after_the_tools(choice, response_format, text):
    tok = TemplateTokenizer(SMOL_TEMPLATE)
    out = render_call(tok, [{"role": "user", "content": "hi"}], [TOOL], choice, response_format)
    assert out == render(tok, [{"role": "user", "content": "hi"}], [TOOL], tool_instruction=text)
    assert f"</tool_call>\n\n{text}<|im_end|>" in out


# ---- parse ------------------------------------------------------------------------------------

SCHEMAS = {"get_weather": TOOL["function"]["parameters"]}


def test_parse_text_and_calls():
    text = 'Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": "3"}}</tool_call>'
    content, calls = parse(text, SCHEMAS)
    assert content == "Let me check."
    assert calls[0].valid and calls[0].arguments == {"city": "Paris", "days": 3}  # "3" typed as the schema says


@pytest.mark.parametrize(
    "body, reason",
    [
        ('{"name": "get_weather", "arguments": {"city": "Paris"', "not valid JSON"),
        ('{"name": "nope", "arguments": {}}', "unknown tool 'nope'"),
        ('{"name": "get_weather", "arguments": {"days": 2}}', "'city' is a required property"),
        ('{"name": "get_weather", "arguments": {"city": "X", "days": "many"}}', "days"),
        ('["get_weather"]', 'string "name"'),
        ('{"name": "get_weather", "arguments": [1]}', "not a JSON object"),
    ],
)
def test_broken_calls_become_invalid_never_exceptions(body, reason):
    content, calls = parse(f"<tool_call>{body}</tool_call>", SCHEMAS)
    assert len(calls) == 1 and not calls[0].valid
    assert reason in calls[0].error
    assert calls[0].raw == body


def test_an_unclosed_call_is_invalid_and_kept():
    _, calls = parse('<tool_call>{"name": "get_weather", "arguments": {"city": "Pa', SCHEMAS)
    assert not calls[0].valid and "before the call closed" in calls[0].error and calls[0].raw.endswith('"Pa')


def test_streamed_parse_equals_whole_parse_for_every_split():
    text = (
        'Hi <tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n'
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call> done <tool'
    )
    whole = parse(text, SCHEMAS)
    for size in (1, 2, 3, 7, 13):
        parser = ToolCallParser(SCHEMAS)
        events = []
        for i in range(0, len(text), size):
            events += list(parser.feed(text[i : i + size]))
        events += list(parser.finish())
        content = "".join(e.text for e in events if isinstance(e, TextPiece))
        calls = [e for e in events if isinstance(e, ParsedCall)]
        assert (content, calls) == whole, size
    assert whole[0] == "Hi done <tool"


def test_coerce_follows_the_schema():
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "ok": {"type": "boolean"},
            "s": {"type": "string"},
            "xs": {"type": "array", "items": {"type": "integer"}},
        },
    }
    assert coerce({"n": "3", "x": "2.5", "ok": "true", "s": "4", "xs": ["1", 2]}, schema) == {
        "n": 3,
        "x": 2.5,
        "ok": True,
        "s": "4",
        "xs": [1, 2],
    }


def test_a_closing_marker_inside_an_argument_string_does_not_end_the_call():
    schemas = {"echo": {"type": "object", "properties": {"text": {"type": "string"}}}}
    text = '<tool_call>{"name": "echo", "arguments": {"text": "a </tool_call> b"}}</tool_call> after'
    content, calls = parse(text, schemas)
    assert calls[0].valid and calls[0].arguments == {"text": "a </tool_call> b"}
    assert content == "after"


def test_invalid_calls_keep_the_name_they_wrote():
    _, calls = parse('<tool_call>{"name": "get_weather", "arguments": {"city": "Pa', SCHEMAS)
    assert calls[0].name == "get_weather" and not calls[0].valid
