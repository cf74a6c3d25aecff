"""The chat model's input contract: strict call options naming the field, malformed tools as
ValueErrors naming the field, and truncation said plainly (``finish_reason="length"``,
``response_metadata["truncated"]``, ``with_structured_output`` refusing a cut object unless
``allow_truncated``). A tiny random Llama; the server's side is in test_serve_inputs.py.
"""

from __future__ import annotations

import pytest
from conftest import CLOSING, TINY_BASES
from langchain_core.exceptions import OutputParserException
from pydantic import BaseModel, ValidationError

from langchain_attention_buckets import ChatAttentionBuckets

EOS = 2


class Ticket(BaseModel):
    """A support ticket."""

    order_id: str
    problem: str
    severity: int


@pytest.fixture(scope="module")
def llm(tiny_chat_dir):
    return ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES[:2], max_tokens=12)


# ---- strict call options and fields ---------------------------------------------------------

CALL = [
    ({"stop": 5}, "stop=5 is not allowed"),
    ({"stop": [""]}, "stop=[''] is not allowed"),
    ({"stop": ["a"] * 17}, "up to 16"),
    ({"seed": "x"}, "seed='x': a string is not a number"),
    ({"seed": True}, "seed=True: a boolean is not a number"),
    ({"seed": 2**64}, "seed=18446744073709551616"),
    ({"max_tokens": "10"}, "max_tokens='10': a string is not a number"),
    ({"max_tokens": True}, "max_tokens=True: a boolean is not a number"),
    ({"temperature": "0.5"}, "temperature='0.5': a string is not a number"),
    ({"temperature": 2.5}, "temperature=2.5 must be"),
    ({"loop_detection": "yes"}, "loop_detection='yes' must be True or False"),
    ({"parallel_tool_calls": 1}, "parallel_tool_calls=1 must be True or False"),
    ({"logit_bias": {5: 1000}}, "logit_bias entry 5: 1000"),
    ({"tools": [{}]}, "tools[0].type is missing"),
    ({"tools": [{"type": "function"}]}, "tools[0].function is missing"),
    ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name is missing"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema must be an object"),
]


@pytest.mark.parametrize("kwargs,words", CALL, ids=[next(iter(k)) + str(i) for i, (k, _) in enumerate(CALL)])
def test_a_bad_call_option_is_refused_naming_it(llm, kwargs, words):
    with pytest.raises(ValueError) as err:
        llm.invoke("hi", **kwargs)
    assert words in str(err.value)
    assert getattr(err.value, "param", next(iter(kwargs))).split("[")[0].split(".")[0] == next(iter(kwargs))


def test_langchains_own_stop_argument_is_checked(llm):
    """``invoke(..., stop=...)`` is LangChain's own argument, not a call option: checked the same."""
    with pytest.raises(ValueError, match=r"stop=5 is not allowed"):
        llm.invoke("hi", stop=5)
    assert llm.invoke("hi", stop="zzzz-never").content is not None  # one string: a list of one


@pytest.mark.parametrize("field,value,words", [
    ("max_tokens", "10", "a string is not a number"),
    ("seed", "x", "a string is not a number"),
    ("temperature", True, "a boolean is not a number"),
    ("deterministic", "yes", "must be True or False"),
    ("stop", [""], "is not allowed"),
])
def test_a_bad_field_is_refused_at_construction(tiny_chat_dir, field, value, words):
    with pytest.raises(ValidationError, match=f"{field}=.*{words}"):
        ChatAttentionBuckets(model=tiny_chat_dir, **{field: value})


@pytest.mark.parametrize("tool,param", [
    ({}, "tools[0].type"),  # once LangChain's "Unsupported function" text
    ({"type": "function"}, "tools[0].function"),
    ({"type": "function", "function": {}}, "tools[0].function.name"),
    ({"type": "function", "function": {"name": "f", "parameters": []}}, "tools[0].function.parameters"),
])
def test_bind_tools_names_the_malformed_field(llm, tool, param):
    """Once a bare KeyError: 'function' / 'name'."""
    with pytest.raises(ValueError) as err:
        llm.bind_tools([tool])
    assert err.value.param == param and param in str(err.value)


# ---- truncation said plainly ------------------------------------------------------------------


def test_a_free_text_answer_cut_by_max_tokens(llm):
    cut = llm.invoke("Tell me a story.", max_tokens=3, logit_bias={EOS: -100})
    assert cut.response_metadata["finish_reason"] == "length" and cut.response_metadata["truncated"] is True
    assert cut.response_metadata["max_tokens"] == 3 and cut.usage_metadata["output_tokens"] == 3
    whole = llm.invoke("Tell me a story.", max_tokens=3, logit_bias={EOS: 100})  # ends at once
    assert whole.response_metadata["finish_reason"] == "stop" and whole.response_metadata["truncated"] is False


def test_structured_output_closed_early_is_an_error_naming_max_tokens(llm):
    """The issue's case: the grammar closes the object to fit 20 tokens; it parses, but it is not
    what the model would have written, so the caller hears of it."""
    structured = llm.with_structured_output(Ticket, method="json_schema", include_raw=True)
    out = structured.invoke("My order A1 arrived broken.", max_tokens=20)
    raw = out["raw"]
    assert raw.response_metadata["truncated"] is True and raw.response_metadata["finish_reason"] == "length"
    assert raw.response_metadata["max_tokens"] == 20  # the call's option reached the model (not the default 12)
    assert raw.usage_metadata["output_tokens"] <= 20
    assert out["parsed"] is None and isinstance(out["parsing_error"], OutputParserException)
    assert "max_tokens=20" in str(out["parsing_error"]) and "allow_truncated" in str(out["parsing_error"])
    with pytest.raises(OutputParserException, match="max_tokens=20"):
        llm.with_structured_output(Ticket, method="json_schema").invoke("My order A1 arrived broken.", max_tokens=20)


def test_allow_truncated_takes_the_early_closed_object(llm):
    ticket = llm.with_structured_output(Ticket, method="json_schema", allow_truncated=True).invoke(
        "My order A1 arrived broken.", max_tokens=20)
    assert isinstance(ticket, Ticket)
    out = llm.with_structured_output(Ticket, include_raw=True, allow_truncated=True).invoke(
        "My order A1 arrived broken.", max_tokens=20)
    assert isinstance(out["parsed"], Ticket) and out["parsing_error"] is None and out["raw"].response_metadata["truncated"]


def test_a_forced_call_closed_early(llm):
    out = llm.with_structured_output(Ticket, method="function_calling", include_raw=True).invoke(
        "My order A1 arrived broken.", max_tokens=45)
    assert out["raw"].response_metadata["truncated"] is True and out["parsed"] is None
    assert "max_tokens=45" in str(out["parsing_error"])


def test_a_whole_object_is_not_truncated(tiny_chat_dir):
    closing = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=TINY_BASES[:2], max_tokens=200,
                                   logit_bias=CLOSING)
    out = closing.with_structured_output(Ticket, include_raw=True).invoke("My order A1 arrived broken.")
    if out["raw"].response_metadata["truncated"]:
        pytest.skip("this random model did not close the object within 200 tokens")
    assert isinstance(out["parsed"], Ticket) and out["parsing_error"] is None
    assert out["raw"].response_metadata["finish_reason"] == "stop"


def test_allow_truncated_is_a_boolean(llm):
    with pytest.raises(ValueError, match="allow_truncated='yes'"):
        llm.with_structured_output(Ticket, allow_truncated="yes")


def test_bind_tools_checks_its_options_when_bound(llm):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(ValueError, match="parallel_tool_calls='yes' must be True or False"):
        llm.bind_tools([tool], parallel_tool_calls="yes")
    with pytest.raises(ValueError, match="unknown call option 'max_new_tokens'"):
        llm.bind_tools([tool], max_new_tokens=3)
    assert llm.bind_tools([tool], tool_choice="any", parallel_tool_calls=True).kwargs["tool_choice"] == "any"
