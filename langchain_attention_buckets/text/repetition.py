"""One repetition detector: does a text end in copies of one block?

Shared by the answer guard (``guard.find_loop``: a free-text answer that loops ends early) and
the grammar's steering (``constrain.steering.string_loops``: a JSON string that loops is
closed). Works on ``str`` and ``bytes`` alike; each caller sets its thresholds.
"""

from __future__ import annotations

import re

__all__ = ["collapse_whitespace", "repeated_tail"]

_SPACES = re.compile(r"\s+")


def collapse_whitespace(text: str) -> str:
    """``text`` with every run of whitespace read as one space: a loop whose copies are joined by
    varying separators ("X.\\n\\nX. X.\\nX.") is then one repeated block."""
    return _SPACES.sub(" ", text)


def _has_alnum(block: str | bytes) -> bool:
    if isinstance(block, bytes):
        block = block.decode("utf-8", errors="ignore")
    return any(c.isalnum() for c in block)


def repeated_tail(
    text: str | bytes,
    *,
    min_span: int,
    min_copies: int = 3,
    max_block: int = 512,
    long_block: int | None = None,
    whole_copies: bool = False,
    needs_alnum: bool = True,
) -> tuple[int, int] | None:
    """The shortest block that ``text`` ends repeating, as (block length, repeated span), or None.

    A block of length ``b`` repeats when the last ``span`` characters have period ``b``
    (``text[i] == text[i - b]`` over them), where ``span`` is at least ``min_span`` and covers
    ``min_copies`` copies (2 copies for a block of ``long_block`` or more characters). With
    ``whole_copies`` the span is a whole number of copies. With ``needs_alnum`` the block must
    hold a letter or a digit (runs of punctuation or whitespace are layout, not loops).
    """
    n = len(text)
    if n < min_span or n < 2:
        return None
    last = text[-1]
    for block in range(1, min(max_block, n // 2) + 1):
        if text[-1 - block] != last:  # most blocks fail here, cheaply
            continue
        copies = 2 if long_block is not None and block >= long_block else min_copies
        span = max(copies * block, min_span)
        if whole_copies:
            span = -(-span // block) * block
        if span > n:
            continue
        tail = text[-span:]
        if tail[block:] == tail[:-block] and (not needs_alnum or _has_alnum(tail[-block:])):
            return block, span
    return None
