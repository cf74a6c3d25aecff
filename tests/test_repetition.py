"""Answers never loop, and the fallback tool format's markers never reach the caller.

The detector (``guard.find_loop``) fires exactly at its rule's threshold, keeps legitimate
short repeats and layout, and never fires on random text; ``AnswerGuard`` hides markers at
every split of the text. On a tiny random Llama, a forced loop (a logit bias on one token)
stops the engine with ``finish_reason="stop"`` and ``stopped_by="repetition"`` in invoke,
stream, astream and batch alike, with tools bound too; turned off, the old behaviour is back.
"""

from __future__ import annotations

import random

import pytest
from conftest import TINY_BASES
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.chat.call import collect as _collect
from langchain_attention_buckets.engine import Result, TokenEvent
from langchain_attention_buckets.text.guard import FALLBACK_MARKERS, AnswerGuard, answer_guard, fallback_markers, find_loop

CAT = 2644  # " cat" in the embedded model's tokenizer
MIN = 48  # the default loop_min_chars

WORDS = (
    "the of and to in is was for on that with as by at from it an be this are or have not had but which one all "
    "were when we there can their more if will would about out up so what some into time them could these other "
    "than then now only its also two after first new way may where most over such even because through long "
    "river city garden light water stone music number story paper market window yellow quickly slowly 3 42 2024"
).split()


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return "sunny"


def feed_chars(guard: AnswerGuard, text: str) -> tuple[str, int | None]:
    """The text the guard passed, fed one character at a time, and the index of the char that stopped it."""
    out, stopped_at = [], None
    for i, ch in enumerate(text):
        out.append(guard.feed(ch))
        if guard.stopped and stopped_at is None:
            stopped_at = i
    out.append(guard.finish())
    return "".join(out), stopped_at


# ---- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "block",
    [" cat", "ab", "the cat was a cat, and ", "<tool_response>\n", "Paris. ", "x" * 30 + "y" * 30, " ".join(WORDS[:40]) + ". "],
)
def test_a_loop_is_caught_exactly_at_the_threshold(block):
    prefix = "Once upon a time §"  # its last character is in no block: the repeats start after it
    threshold = max(3 * len(block), MIN)  # characters of repeats at which the rule fires
    text = prefix + block * (threshold // len(block) + 2)
    cut = len(prefix) + threshold
    assert find_loop(text[: cut - 1], MIN) is None
    assert find_loop(text[:cut], MIN) is not None
    passed, stopped_at = feed_chars(AnswerGuard(min_chars=MIN), text)
    assert stopped_at == cut - 1
    assert passed == text[:cut]  # the text as streamed, up to where the loop was seen


@pytest.mark.parametrize(
    "text",
    [
        "ha ha ha! That is funny, ha ha ha.",
        "No, no, no, no. I said no.",
        "Wait" + "." * 200 + " done",
        "| name | value |\n|" + "-" * 60 + "|" + "-" * 60 + "|\n| a | 1 |\n",
        "|-----|-----|-----|-----|-----|-----|-----|-----|-----|-----|-----|-----|",
        "=" * 120 + "\nTitle\n" + "=" * 120,
        "def f():\n" + " " * 64 + "return 1\n" + "\t" * 40 + "pass",
        "1. Preheat the oven.\n2. Mix the flour.\n3. Add the eggs.\n4. Stir well.\n5. Bake for 20 minutes.\n",
        "Step 1: go. Step 2: go. Step 3: go. Step 4: go. Step 5: go.",
        "**" * 50 + " bold " + "~" * 80,
    ],
)
def test_legitimate_repeats_are_kept(text):
    passed, stopped_at = feed_chars(AnswerGuard(min_chars=MIN), text)
    assert stopped_at is None and passed == text


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32))
def test_random_text_never_fires(seed):
    # A seeded generator, not hypothesis' own Random: hypothesis picks the same word again on purpose.
    rnd = random.Random(seed)
    text = "".join(rnd.choice(WORDS) + rnd.choice([" ", " ", " ", ", ", ". ", "\n"]) for _ in range(400))
    guard = AnswerGuard(min_chars=MIN)
    for start in range(0, len(text), 7):  # pieces of 7 characters, as tokens would stream
        guard.feed(text[start : start + 7])
    guard.finish()
    assert not guard.stopped


@settings(max_examples=100, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 12))
def test_a_loop_after_random_text_is_always_caught(rnd, n_words):
    prefix = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(0, 60)))
    block = " " + " ".join(rnd.choice(WORDS) for _ in range(n_words)) + rnd.choice([",", ".", ""])
    need = max(3 * len(block), MIN)
    text = prefix + block * (need // len(block) + 2)
    _, stopped_at = feed_chars(AnswerGuard(min_chars=MIN), text)
    assert stopped_at is not None and stopped_at <= len(prefix) + need - 1


def test_min_chars_tunes_and_none_turns_detection_off():
    laugh = "ha " * 40
    assert feed_chars(AnswerGuard(min_chars=9), laugh)[1] == 8
    assert feed_chars(AnswerGuard(min_chars=MIN), laugh)[1] == MIN - 1
    assert feed_chars(AnswerGuard(min_chars=None), laugh) == (laugh, None)


# ---- markers -------------------------------------------------------------------------------

ANSWER = "The weather in Paris is sunny."


@pytest.mark.parametrize(
    "rest",
    ["\n<tool_response>\n<tool_response>\n", "</tool_call>\n<tool_call>{}", " </tool_response> more", "<tool_call>"],
)
def test_markers_end_the_text_at_every_split(rest):
    text = ANSWER + rest
    for cut in range(len(text) + 1):
        guard = AnswerGuard(FALLBACK_MARKERS, MIN)
        out = guard.feed(text[:cut]) + guard.feed(text[cut:]) + guard.finish()
        assert out == ANSWER and guard.stopped_by == "tool_marker"
    first_end = min(text.find(m) + len(m) - 1 for m in FALLBACK_MARKERS if m in text)  # the marker's last char
    assert feed_chars(AnswerGuard(FALLBACK_MARKERS, MIN), text) == (ANSWER, first_end)


def test_text_that_only_looks_like_a_marker_is_kept():
    for text in ["a < b and <tool", "x <tool_resp", "if a<b: </tool_x>"]:
        assert feed_chars(AnswerGuard(FALLBACK_MARKERS, MIN), text) == (text, None)


def test_markers_apply_only_to_the_fallback_format(smol_tokenizer):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    chat = [{"role": "user", "content": "hi"}]
    traffic = [*chat, {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {}}]},
               {"role": "tool", "content": "1"}]
    assert fallback_markers(smol_tokenizer, tools, chat) == FALLBACK_MARKERS
    assert fallback_markers(smol_tokenizer, [], traffic) == FALLBACK_MARKERS
    assert fallback_markers(smol_tokenizer, [], chat) == ()

    class RendersTools:
        chat_template = "{% for tool in tools %}{{ tool }}{% endfor %}"

    assert fallback_markers(RendersTools(), tools, traffic) == ()
    json_answer = {"type": "json_object"}
    assert answer_guard(smol_tokenizer, tools, traffic, json_answer, MIN) is None  # JSON is never cut
    assert answer_guard(smol_tokenizer, [], chat, None, None) is None


# ---- the chat model ------------------------------------------------------------------------


@pytest.fixture
def looping(tiny_chat_dir):
    """Greedy decoding with a bias that makes every token " cat": a loop from the first token.

    The bias puts " cat" ~100 above every other token, far beyond any rounding: two runs (cold
    and cached, alone and batched) cannot part, so their texts compare exactly."""
    return ChatAttentionBuckets(
        model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=120, logit_bias={CAT: 100.0}
    )


def assert_stopped_by_repetition(message):
    # the text stops once " cat" repeats over 48 characters (12 copies; 13 where the parser trims the first space)
    assert set(message.content.split()) == {"cat"} and MIN <= len(message.content) < MIN + 4
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["stopped_by"] == "repetition"
    assert message.usage_metadata["output_tokens"] < 30  # the engine's work was cancelled, not run to 120


def test_a_loop_stops_generation_in_invoke_and_stream(looping):
    message = looping.invoke("Tell me a story.")
    assert_stopped_by_repetition(message)
    chunks = list(looping.stream("Tell me a story."))
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.content == message.content
    assert chunks[-1].response_metadata["stopped_by"] == "repetition"


async def test_a_loop_stops_generation_in_astream_ainvoke_and_batch(looping):
    reference = looping.invoke("Tell me a story.")
    chunks = [c async for c in looping.astream("Tell me a story.")]
    assert "".join(c.content for c in chunks) == reference.content
    assert chunks[-1].response_metadata["stopped_by"] == "repetition"
    assert_stopped_by_repetition(await looping.ainvoke("Tell me a story."))
    for message in looping.batch(["Tell me a story.", "Write a poem."]):
        assert_stopped_by_repetition(message)


def test_turned_off_the_answer_runs_to_max_tokens(looping, tiny_chat_dir):
    for message in [
        looping.invoke("Tell me a story.", loop_detection=False),
        ChatAttentionBuckets(
            model=tiny_chat_dir, dtype="float32", bases=TINY_BASES, max_tokens=120, logit_bias={CAT: 100.0},
            loop_detection=False,
        ).invoke("Tell me a story."),
    ]:
        assert message.content.strip() == " ".join(["cat"] * 120)
        assert message.response_metadata["finish_reason"] == "length"
        assert "stopped_by" not in message.response_metadata
    longer = looping.invoke("Tell me a story.", loop_min_chars=100)  # 25 copies of " cat"
    assert longer.content.strip() == " ".join(["cat"] * 25)
    assert longer.response_metadata["stopped_by"] == "repetition"


def test_a_loop_stops_with_tools_bound(looping):
    bound = looping.bind_tools([get_weather])
    message = bound.invoke("Tell me a story.")
    assert_stopped_by_repetition(message)
    assert not message.tool_calls and not message.invalid_tool_calls
    chunks = list(bound.stream("Tell me a story."))
    assert "".join(c.content for c in chunks) == message.content


def tool_conversation():
    call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    return [
        HumanMessage("Weather in Paris?"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("sunny", tool_call_id="call_1", name="get_weather"),
    ]


@pytest.mark.parametrize("with_tools", [True, False])
def test_markers_are_hidden_from_the_caller(looping, with_tools):
    """The model's text is played into a prepared call: its content and metadata, chunk by chunk."""
    kwargs = {"tools": looping.bind_tools([get_weather]).kwargs["tools"]} if with_tools else {}
    text = ANSWER + "\n<tool_response>\n" * 5
    for cut in range(len(ANSWER) - 3, len(text), 4):
        call = looping._prepare(tool_conversation(), None, kwargs)
        pieces = [text[:cut], text[cut:]]
        chunks = [call.chunk(TokenEvent(0, p)) for p in pieces]
        chunks.append(call.last(Result([], text, "length", 3, 2)))
        message = _collect(chunks).generations[0].message
        assert message.content == ANSWER
        assert message.response_metadata["finish_reason"] == "stop"
        assert message.response_metadata["stopped_by"] == "tool_marker"


def test_markers_pass_in_a_plain_chat_and_json_answers_are_never_cut(looping):
    text = "Use <tool_response> tags."
    call = looping._prepare([HumanMessage("Which tags?")], None, {"loop_detection": False})
    assert call.guard is None
    call = looping._prepare([HumanMessage("Which tags?")], None, {})
    chunks = [call.chunk(TokenEvent(0, text)), call.last(Result([], text, "stop", 3, 1))]
    assert _collect(chunks).generations[0].message.content == text
    json_call = looping._prepare(tool_conversation(), None, {"response_format": {"type": "json_object"}})
    assert json_call.guard is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loop_detection": "yes"}, "loop_detection='yes' must be True or False"),
        ({"loop_min_chars": 0}, "loop_min_chars=0 must be an integer >= 1"),
        ({"loop_min_chars": True}, "a boolean is not a number"),
        ({"loop_min_chars": 4.5}, "loop_min_chars=4.5 must be an integer >= 1"),
    ],
)
def test_bad_loop_settings_are_refused(tiny_chat_dir, looping, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        looping.invoke("hi", **kwargs)
    if "loop_min_chars" in kwargs and kwargs["loop_min_chars"] == 0:
        with pytest.raises(ValueError, match="loop_min_chars=0"):
            ChatAttentionBuckets(model=tiny_chat_dir, loop_min_chars=0)


# ---- the embedded model --------------------------------------------------------------------


@pytest.mark.embedded
def test_embedded_answer_after_a_tool_result_has_no_markers():
    """The embedded model (six buckets) tends to echo the tool result as a <tool_response> turn
    after one; the caller never sees the marker."""
    call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    conversation = [
        HumanMessage("What's the weather in Paris?"),
        AIMessage("", tool_calls=[call]),
        ToolMessage('{"city": "Paris", "temp_c": 18, "sky": "cloudy"}', tool_call_id="call_1", name="get_weather"),
    ]
    message = ChatAttentionBuckets(max_tokens=64).bind_tools([get_weather]).invoke(conversation)
    assert not any(m in message.content for m in FALLBACK_MARKERS)
    if message.response_metadata.get("stopped_by") == "tool_marker":
        assert message.response_metadata["finish_reason"] == "stop"
