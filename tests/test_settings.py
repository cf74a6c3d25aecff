"""The table of settings: each setting declared once, everything else derived from it."""

from __future__ import annotations

import pytest

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.chat.options import CallOptions, call_option_names
from langchain_attention_buckets.chat.settings import SETTINGS, Setting, number
from langchain_attention_buckets.text.guard import AnswerGuard, find_loop
from langchain_attention_buckets.text.repetition import collapse_whitespace

THROWAWAY = Setting(
    "probe_width", int, 3, """How wide the probe is (>= 1). Default 3.""",
    number("probe_width", low=1, integer=True), call=True, identifying=True,
)


@pytest.fixture(scope="module")
def Extended():
    return ChatAttentionBuckets.with_settings(THROWAWAY)


def test_a_new_row_is_a_field_with_its_type_default_and_doc(Extended):
    field = Extended.model_fields["probe_width"]
    assert field.default == 3 and field.description == "How wide the probe is (>= 1). Default 3."
    assert Extended().probe_width == 3 and Extended(probe_width=5).probe_width == 5
    assert "probe_width" not in ChatAttentionBuckets.model_fields  # the base class is untouched


def test_a_new_row_is_checked_at_construction_on_assignment_and_per_call(Extended):
    for bad in (0, True, "4", 2.5):
        with pytest.raises(ValueError, match=f"probe_width={bad!r}"):
            Extended(probe_width=bad)
    llm = Extended()
    with pytest.raises(ValueError, match="probe_width=0 must be an integer >= 1"):
        llm.probe_width = 0
    with pytest.raises(ValueError, match="probe_width=True: a boolean is not a number"):
        llm.call_options(probe_width=True)


def test_a_new_row_is_a_call_option_merged_over_the_field(Extended):
    llm = Extended(probe_width=4)
    assert "probe_width" in call_option_names(Extended.settings_table)
    assert llm.call_options().probe_width == 4
    assert llm.call_options(probe_width=9).probe_width == 9
    llm.probe_width = 6  # later calls follow a field set after construction
    assert llm.call_options().probe_width == 6
    with pytest.raises(ValueError, match=r"unknown call option 'probe_widht'.*did you mean 'probe_width'"):
        llm.call_options(probe_widht=2)


def test_a_new_row_is_reported_as_an_identifying_parameter(Extended):
    assert Extended(probe_width=7)._identifying_params["probe_width"] == 7


def test_every_field_comes_from_the_table():
    fields = ChatAttentionBuckets.model_fields
    table = {s.name: s for s in SETTINGS}
    assert set(table) <= set(fields)
    for name, s in table.items():
        assert fields[name].default == s.default
        assert fields[name].description and "default" in fields[name].description.lower(), name
    assert not (set(fields) - set(table) - _langchain_fields()), "a field declared outside the table"
    defaults = CallOptions()
    for s in SETTINGS:
        if s.call:
            assert getattr(defaults, s.name) == s.default


def _langchain_fields() -> set[str]:
    from langchain_core.language_models import BaseChatModel

    return set(BaseChatModel.model_fields)


def test_identifying_params_are_the_identifying_rows():
    ident = ChatAttentionBuckets()._identifying_params
    assert set(ident) == {"model"} | {s.name for s in SETTINGS if s.identifying}


@pytest.mark.parametrize("name, value", [("max_tokens", "10"), ("seed", "x"), ("stop", [""]), ("stop", 5),
                                         ("temperature", "0.5"), ("streaming", "yes"), ("top_k", 2.0)])
def test_strict_types_at_construction_and_per_call_with_the_same_words(name, value):
    with pytest.raises(ValueError) as built:
        ChatAttentionBuckets(**{name: value})
    if next(s for s in SETTINGS if s.name == name).call:
        with pytest.raises(ValueError) as called:
            ChatAttentionBuckets().call_options(**{name: value})
        assert str(called.value) in str(built.value)


# ---- loops whose copies are joined by varying whitespace ------------------------------------


@pytest.mark.parametrize("sentence", [
    "The conversion is not possible due to the lack of a fixed rate between the specified currencies.",
    "The order id is a string that cannot be converted to an integer.",
])
def test_a_loop_with_varying_separators_is_found(sentence):
    text = "".join(sentence + sep for sep in ("\n", " ", "\n\n", " ", "\n", "  "))
    assert find_loop(text, 48) is None  # exact copies: the separators differ
    assert find_loop(collapse_whitespace(text), 48) is not None
    guard, out = AnswerGuard((), 48), ""
    for ch in text:
        out += guard.feed(ch)
        if guard.stopped:
            break
    assert guard.stopped_by == "repetition"
    assert out.count(sentence) == 3  # ended at the third copy, not at max_tokens


def test_model_copy_checks_the_update_and_its_calls_follow_it(Extended):
    llm = ChatAttentionBuckets(temperature=0.0, max_tokens=32, aggregation="confidence")
    copy = llm.model_copy(update={"temperature": 0.7, "max_tokens": 8, "aggregation": "mean"})
    assert (copy.temperature, copy.max_tokens, copy.aggregation) == (0.7, 8, "mean")
    options = copy.call_options()
    assert (options.temperature, options.max_tokens, options.aggregation) == (0.7, 8, "mean")
    assert llm.call_options().max_tokens == 32 and llm.call_options().aggregation == "confidence"  # untouched
    assert Extended(probe_width=4).model_copy(update={"probe_width": 9}).call_options().probe_width == 9
    with pytest.raises(ValueError, match="probe_width=0 must be an integer >= 1"):
        Extended().model_copy(update={"probe_width": 0})
    with pytest.raises(ValueError, match=r"unknown setting 'max_tokns'.*did you mean 'max_tokens'"):
        llm.model_copy(update={"max_tokns": 8})
    with pytest.raises(ValueError, match="strategy='ms-poe' runs one pass"):
        ChatAttentionBuckets(bases=[1e4, 2e4]).model_copy(update={"strategy": "ms-poe"})
