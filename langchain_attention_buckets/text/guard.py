"""Where a free-text answer ends early: a loop, or a marker of the fallback tool format.

``AnswerGuard`` reads an answer's text (the content: never a tool call's arguments) as it
streams and passes it on, ending it in two cases:

- **Loop** (``find_loop``): the text, with each run of whitespace read as one space, ends in
  at least 3 consecutive copies of one block, the repeated span covers at least ``min_chars``
  characters (default 48), and the block holds a letter or a digit. The answer keeps the text streamed up to there (the copies
  included: streamed text is never taken back) and ``stopped_by`` is "repetition".
  Short repeats stay ("ha ha ha", "no, no, no"), and runs of punctuation or whitespace
  never count ("...", "-----" table rules, indentation): they are layout, and cheap in
  tokens. Blocks longer than ``MAX_BLOCK`` characters are not looked for.
- **Marker** (``markers``): where the prompt used the package's fallback tool format
  (``fallback_markers``), ``<tool_response>``, ``</tool_response>`` and a ``<tool_call>`` or
  ``</tool_call>`` left in the text (the parser takes the calls out before) are the model
  writing the conversation's next turns, not its answer: the text ends before the marker
  and the whitespace before it, which are never shown (like a stop string: text that may be
  a marker's start, and trailing whitespace, wait until what follows shows they are not).
  ``stopped_by`` is "tool_marker".

Text in, text out: imports ``render`` (whether a template renders tools), ``repetition`` (the
detector it shares with the grammar's steering), ``formats.hermes`` (the fallback markers), and
``engine.detok`` (the held-back-suffix rule it shares with stop strings);
no LangChain types, no engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..engine.detok import partial_suffix_len
from ..formats.hermes import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from .render import template_renders_tools
from .repetition import collapse_whitespace, repeated_tail

__all__ = ["MAX_BLOCK", "MIN_COPIES", "AnswerGuard", "answer_guard", "fallback_markers", "find_loop"]

MIN_COPIES = 3
"""A loop is at least this many consecutive copies of one block."""

MAX_BLOCK = 512
"""The longest block looked for, in characters (3 copies: 1536 characters, some 300+ tokens)."""

TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
FALLBACK_MARKERS = (TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE, TOOL_CALL_OPEN, TOOL_CALL_CLOSE)


def find_loop(text: str, min_chars: int, max_block: int = MAX_BLOCK) -> tuple[int, int] | None:
    """The loop ``text`` ends in, as (block length, repeated span), or None.

    A loop: the last ``span = max(3 * block, min_chars)`` characters repeat one block
    (``text[i] == text[i - block]`` over them), whose text holds a letter or a digit.
    The shortest such block is returned (``repetition.repeated_tail``).
    """
    return repeated_tail(text, min_span=min_chars, min_copies=MIN_COPIES, max_block=max_block)


class AnswerGuard:
    """Passes an answer's text on until a loop or a marker ends it (see the module docstring).

    Args:
        markers: strings the text ends before (never shown).
        min_chars: the shortest repeated span that counts as a loop; None: no loop detection.
    """

    def __init__(self, markers: Sequence[str] = (), min_chars: int | None = None):
        self.markers = tuple(m for m in markers if m)
        self.min_chars = min_chars
        self.stopped_by: str | None = None  # "repetition" | "tool_marker" once the text ended
        self._held = ""  # text that may be the start of a marker
        self._tail = ""  # the end of the text passed on: what a loop is looked for in
        self._window = max(MIN_COPIES * MAX_BLOCK, min_chars or 0)

    @property
    def stopped(self) -> bool:
        return self.stopped_by is not None

    def feed(self, text: str) -> str:
        """The text that is final after ``text`` (maybe ""); nothing once the answer ended."""
        if self.stopped:
            return ""
        buf = self._held + text
        hits = [i for i in (buf.find(m) for m in self.markers) if i >= 0]
        if hits:
            self.stopped_by, self._held = "tool_marker", ""
            return buf[: min(hits)].rstrip()
        keep = partial_suffix_len(buf, self.markers)
        if self.markers:  # trailing whitespace waits too: before a marker it is dropped
            keep = len(buf) - len(buf[: len(buf) - keep].rstrip())
        self._held = buf[len(buf) - keep :]
        return self._pass(buf[: len(buf) - keep])

    def finish(self) -> str:
        """At the end of the text: what was held back (not a marker after all)."""
        if self.stopped:
            return ""
        out, self._held = self._held, ""
        return self._pass(out)

    def _pass(self, text: str) -> str:
        if text and self.min_chars is not None:
            self._tail = (self._tail + text)[-self._window :]
            if find_loop(collapse_whitespace(self._tail), self.min_chars):
                self.stopped_by = "repetition"
        return text


def fallback_markers(tokenizer, tools: Sequence[dict], messages: Sequence[dict]) -> tuple[str, ...]:
    """The markers an answer ends before: the fallback format's, where the prompt uses it
    (tools bound or tool traffic in ``messages``, HF chat dicts, and a template that does not
    render tools); else none."""
    traffic = any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)
    if not (tools or traffic) or template_renders_tools(tokenizer):
        return ()
    return FALLBACK_MARKERS


def answer_guard(
    tokenizer, tools: Sequence[dict], messages: Sequence[dict], response_format: dict | None, min_chars: int | None
) -> AnswerGuard | None:
    """The guard of one call's answer, or None when nothing guards it.

    A JSON answer (``response_format``) is never cut: its grammar has its own repetition
    control (``constrain.closing``), and a cut would leave invalid JSON.
    """
    if response_format is not None:
        return None
    markers = fallback_markers(tokenizer, tools, messages)
    return AnswerGuard(markers, min_chars) if markers or min_chars is not None else None
