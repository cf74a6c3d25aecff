"""Budget-aware completion and repetition control for one constrained request.

Owns `Steering`, which a `GrammarConstraint` consults at every step to narrow its mask:

- **Budget.** Given `max_tokens`, it keeps the output closable: the shortest completion
  the grammar admits from the current state (`shortest_completion`, a greedy walk over
  bytes that prefers closing: end the string, close the container, give a required field
  the shortest value) is re-tokenized into the fewest tokens (`TokenTable.tokenize`) and
  checked against the matcher. Once the tokens left would not cover it plus a margin, only
  the model's top candidates that keep it closable stay allowed, and when the tokens left
  equal its length, its next token is forced. The last token is then the one that makes
  the output complete.
- **Repetition.** A string whose text ends in the same chunk three times (or a long chunk
  twice) is closed; an array whose last items repeat (the same item, or the same run of
  items, twice; at least 6 bytes of JSON) is closed (`]`), also forcing the closing byte of
  an item that is about to repeat the one before it. The grammar has the last word: a
  closer it forbids (minLength, minItems) is not forced.

Works on bytes (xgrammar's decoded vocabulary): JSON's structural characters are ASCII and
never occur inside a multi-byte UTF-8 character. Imports `formats.hermes` (the call opener), `text.scan` (the JSON scanner) and
`text.repetition` (the repetition detector); the matcher is any object with xgrammar's `GrammarMatcher` methods.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..formats.hermes import TOOL_CALL_OPEN
from ..text.repetition import repeated_tail
from ..text.scan import JsonScanner

__all__ = ["JsonScanner", "Steering", "TokenTable", "shortest_completion"]

# Byte preferences of the greedy walk. Outside strings: close what is open, then the
# separators the grammar forces, then the shortest values. Inside strings: close it.
_STRUCT_ORDER = b'}],: 0"-123456789ntf[{'
_STRING_ORDER = b'"a0'
_BRANCH_MAX = 8  # inside a string, at most this many allowed bytes: an enum or a key; try each
_BRANCH_DEPTH = 2  # branch points explored exhaustively; greedy after that
_WALK_LIMIT = 2048  # bytes; a walk longer than this gives up (no plan, no forcing)

_TIGHT = 16  # slack (tokens left minus tokens needed) under which candidates are checked
_TOP_K = 4  # how many of the model's best tokens are checked when the slack is tight
_REFRESH = 16  # far from the end, re-measure the need every this many tokens

_OPEN_MARKER = TOOL_CALL_OPEN.encode()


def _order(first: bytes) -> bytes:
    """`first`, then printable ASCII, then whitespace, then the rest: every byte once."""
    rest = [b for b in range(33, 127)] + [32, 10, 9, 13] + [b for b in range(256) if b < 9 or 13 < b < 32 or b > 126]
    seen = set(first)
    return first + bytes(b for b in rest if b not in seen and not seen.add(b))


STRUCT_ORDER = _order(_STRUCT_ORDER)
STRING_ORDER = _order(_STRING_ORDER)


# ---------------------------------------------------------------------------
# Tokens as bytes
# ---------------------------------------------------------------------------


class TokenTable:
    """The bytes of every token, and the reverse map used to re-tokenize a completion.

    Args:
        decoded_vocab: each token id's bytes (xgrammar's `TokenizerInfo.decoded_vocab`);
            empty for tokens never allowed (special tokens).
        stop_token_ids: ids that end the output (never used to spell text).
    """

    def __init__(self, decoded_vocab: list[bytes], stop_token_ids: list[int]) -> None:
        self.bytes = decoded_vocab
        self.stop_ids = list(stop_token_ids)
        stops = set(stop_token_ids)
        self._ids: dict[bytes, int] = {}
        for i, b in enumerate(decoded_vocab):
            if b and i not in stops and b not in self._ids:
                self._ids[b] = i
        self._max_len = min(16, max((len(b) for b in self._ids), default=1))
        single = sorted((b[0], i) for b, i in self._ids.items() if len(b) == 1)
        self.single_bytes = np.array([b for b, _ in single], dtype=np.int64)  # (n,) byte values
        self.single_ids = np.array([i for _, i in single], dtype=np.int64)  # (n,) their token ids
        self.byte_token = {b: i for b, i in single}

    def tokenize(self, data: bytes) -> list[int] | None:
        """The fewest tokens that spell `data` exactly, or None when no tokens do."""
        n, inf = len(data), math.inf
        best, back = [0] + [inf] * n, [0] * (n + 1)
        for i in range(n):
            if best[i] == inf:
                continue
            for j in range(i + 1, min(n, i + self._max_len) + 1):
                if best[i] + 1 < best[j] and data[i:j] in self._ids:
                    best[j], back[j] = best[i] + 1, i
        if best[n] == inf:
            return None
        out, j = [], n
        while j:
            out.append(self._ids[data[back[j] : j]])
            j = back[j]
        return out[::-1]


# ---------------------------------------------------------------------------
# Where the JSON text stands
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Repetition rules
# ---------------------------------------------------------------------------

_MAX_CHUNK = 96  # bytes: the longest repeated chunk looked for in a string
_MIN_SPAN = 16  # bytes: a repetition shorter than this is left alone
_LONG_CHUNK = 16  # bytes: a chunk this long repeated twice is already a loop
_MIN_ITEMS_SPAN = 6  # bytes of JSON: a shorter repeated run of items is left alone ([0, 0])


def string_loops(text: bytes) -> bool:
    """True when `text` ends with a chunk repeated 3 times (or a >= 16-byte chunk twice),
    the repeats spanning at least 16 bytes (whole copies; ``repetition.repeated_tail``)."""
    found = repeated_tail(text, min_span=_MIN_SPAN, min_copies=3, max_block=_MAX_CHUNK, long_block=_LONG_CHUNK,
                          whole_copies=True, needs_alnum=False)
    return found is not None


def items_loop(items: list[bytes]) -> bool:
    """True when the last run of p >= 1 items equals the run before it (>= 6 bytes of JSON)."""
    for p in range(1, len(items) // 2 + 1):
        if items[-p:] == items[-2 * p : -p] and sum(map(len, items[-p:])) >= _MIN_ITEMS_SPAN:
            return True
    return False


def repetition_closer(scan: JsonScanner) -> int | None:
    """The byte to force to stop a degenerate repetition, or None."""
    text = scan.string_text()
    if text is not None and len(text) >= _MIN_SPAN and string_loops(text):
        return 0x22
    done = scan.finished_item()
    if done is not None and items_loop([*done[0], done[1]]):
        return 0x5D
    partial = scan.open_item()
    if partial is not None and partial[0]:
        items, text = partial
        last = items[-1]
        if last[-1:] in (b'"', b"}", b"]") and text == last[:-1] and items_loop([*items, last]):
            return last[-1]  # the item would repeat the one before it: end it now, then the array
    return None


# ---------------------------------------------------------------------------
# The shortest completion: a greedy walk over bytes, the matcher judging
# ---------------------------------------------------------------------------


class _Walk:
    """One walk: accepts bytes on the matcher and rolls them all back at the end."""

    def __init__(self, matcher: Any, table: TokenTable, bitmask: torch.Tensor, ends: tuple[bytes, ...] = ()) -> None:
        self.m, self.table, self.bitmask = matcher, table, bitmask
        self.words = bitmask.numpy()[0]  # (ceil(V/32),) int32, same memory
        self.steps = 0
        self.ends = ends  # strings that end free text (the reasoning's end), tried first there

    def push(self, data: bytes) -> bool:
        if self.m.accept_string(data):
            self.steps += 1
            return True
        return False

    def pop(self, n: int = 1) -> None:
        self.m.rollback(n)
        self.steps -= n

    def allowed_bytes(self, order: bytes) -> list[int]:
        """The bytes (as single-byte tokens) the grammar allows next, in `order`."""
        self.m.fill_next_token_bitmask(self.bitmask)
        ids = self.table.single_ids
        ok = (self.words[ids >> 5] >> (ids & 31)) & 1
        allowed = set(self.table.single_bytes[ok.astype(bool)].tolist())
        return [b for b in order if b in allowed]


def shortest_completion(
    matcher: Any, table: TokenTable, bitmask: torch.Tensor, in_string: bool, escape: bool, ends: tuple[bytes, ...] = ()
) -> bytes | None:
    """The bytes that complete the output from the matcher's state by a short path, or None.

    The matcher is left as it was. `in_string`/`escape` say whether the text so far ends
    inside a JSON string (and after a backslash there). `ends`: strings that end a stretch of
    free text (the reasoning's end), written as soon as the grammar takes them outside strings.
    """
    walk = _Walk(matcher, table, bitmask, ends)
    try:
        return _complete(walk, in_string, escape, _BRANCH_DEPTH, _WALK_LIMIT)
    finally:
        if walk.steps:
            matcher.rollback(walk.steps)


def _complete(walk: _Walk, in_string: bool, escape: bool, branches: int, limit: int) -> bytes | None:
    """Greedy walk until the grammar is complete; the first `branches` small choices inside
    strings (a tool name, an enum value, a key) are tried one by one, keeping the shortest."""
    out = bytearray()
    start = walk.steps
    try:
        while not walk.m.is_completed():
            if len(out) > limit:
                return None
            forced = walk.m.find_jump_forward_string().encode()
            if forced and walk.push(forced):
                in_string, escape = _scan_string_state(forced, in_string, escape)
                out += forced
                continue
            end = next((e for e in walk.ends if not in_string and walk.push(e)), None)
            if end is not None:  # free text that a marker ends (the reasoning): end it
                out += end
                continue
            allowed = walk.allowed_bytes(STRING_ORDER if in_string else STRUCT_ORDER)
            if not allowed:
                return None
            if in_string and branches and allowed[0] != 0x22 and 1 < len(allowed) <= _BRANCH_MAX:
                tail = _best_branch(walk, allowed, in_string, escape, branches - 1, limit - len(out))
                return None if tail is None else bytes(out) + tail
            b = allowed[0]
            if not walk.push(bytes([b])):
                return None
            in_string, escape = _scan_string_state(bytes([b]), in_string, escape)
            out.append(b)
        return bytes(out)
    finally:
        walk.pop(walk.steps - start)


def _best_branch(walk: _Walk, allowed: list[int], in_string: bool, escape: bool, branches: int, limit: int) -> bytes | None:
    best: bytes | None = None
    for b in allowed:
        if not walk.push(bytes([b])):
            continue
        s, e = _scan_string_state(bytes([b]), in_string, escape)
        tail = _complete(walk, s, e, branches, limit if best is None else min(limit, len(best)))
        walk.pop()
        if tail is not None and (best is None or len(tail) + 1 < len(best)):
            best = bytes([b]) + tail
    return best


def _scan_string_state(data: bytes, in_string: bool, escape: bool) -> tuple[bool, bool]:
    for b in data:
        if in_string:
            if escape:
                escape = False
            elif b == 0x5C:
                escape = True
            elif b == 0x22:
                in_string = False
        elif b == 0x22:
            in_string = True
    return in_string, escape


def _opener_start(tail: bytes, openers: tuple[bytes, ...]) -> bytes:
    """The longest end of ``tail`` that is the start of one of ``openers`` (b"" if none)."""
    for n in range(len(tail), 0, -1):
        if any(o.startswith(tail[-n:]) for o in openers):
            return tail[-n:]
    return b""


# ---------------------------------------------------------------------------
# Steering: one request's budget and repetition control
# ---------------------------------------------------------------------------


class Steering:
    """Narrows one request's grammar mask so the output is complete within `max_tokens`
    and constrained strings and arrays do not loop.

    Args:
        matcher: the request's xgrammar matcher (shared with the constraint; every probe is
            rolled back).
        table: the tokenizer's `TokenTable`.
        max_tokens: the request's token budget (the stop token counts), or None.
        repetition: stop degenerate repetition inside strings and arrays.
        markers: the format's call openers that stand before a call's JSON (default ``<tool_call>``).
        ends: the reasoning's end delimiter, after which JSON starts afresh.
        json_openers: openers that are the start of the call's own JSON (Llama's '{"name"').
    """

    def __init__(
        self,
        matcher: Any,
        table: TokenTable,
        bitmask: torch.Tensor,
        max_tokens: int | None,
        repetition: bool = True,
        markers: tuple[str, ...] = (),
        ends: tuple[str, ...] = (),
        json_openers: tuple[str, ...] = (),
    ) -> None:
        self.m, self.table, self.max_tokens, self.repetition = matcher, table, max_tokens, repetition
        self.json_openers = tuple(o.encode() for o in json_openers)
        self._text_tail = b""
        self._bitmask = bitmask.clone()  # the walks' own scratch bitmask
        opens = tuple(m.encode() for m in markers) or (_OPEN_MARKER,)
        self.scan = JsonScanner(reset_at=opens, reset_after=tuple(m.encode() for m in ends))  # a call's body starts afresh
        self.used = 0
        self._plan: list[int] | None = None  # tokens that complete the output from here
        self._plan_at = -1  # `used` when the plan was measured
        self._need = 0
        self.closed_early = False  # the budget overrode the model's pick (the output was closed to fit)

    # ---- measuring ----

    def plan(self) -> list[int] | None:
        """The fewest tokens found that complete the output from the current state."""
        if self._plan_at != self.used:
            self._plan, self._plan_at = self._measure(self.scan.in_string, self.scan.escape), self.used
            self._need = len(self._plan) if self._plan is not None else self._need
        return self._plan

    def _measure(self, in_string: bool, escape: bool) -> list[int] | None:
        if self.m.is_completed():
            return []
        text = shortest_completion(self.m, self.table, self._bitmask, in_string, escape, self.scan.reset_after)
        if text is None:
            return None
        tokens = self.table.tokenize(text)
        if tokens is not None and self._accepts(tokens):
            return tokens
        singles = [self.table.byte_token.get(b) for b in text]
        return singles if None not in singles and self._accepts(singles) else None

    def _accepts(self, tokens: list[int]) -> bool:
        n = 0
        try:
            for t in tokens:
                if not self.m.accept_token(t):
                    return False
                n += 1
            return self.m.is_completed()
        finally:
            if n:
                self.m.rollback(n)

    def need_after(self, token: int) -> int | None:
        """Tokens needed to complete the output after `token` (None: no completion found)."""
        if token in self.table.stop_ids:
            return 0 if self.m.is_completed() else None
        if not self.m.accept_token(token):
            return None
        try:
            s, e = _scan_string_state(self.table.bytes[token], self.scan.in_string, self.scan.escape)
            plan = self._measure(s, e)
            return None if plan is None else len(plan)
        finally:
            self.m.rollback(1)

    # ---- per step ----

    def accepted(self, token: int) -> None:
        self.used += 1
        if self._plan and self._plan_at == self.used - 1 and self._plan[0] == token:
            self._plan, self._plan_at = self._plan[1:], self.used  # still the shortest from here
        if self.m.is_completed():
            self.scan.reset()  # free text, or a finished value: nothing is open
            if self.json_openers and token not in self.table.stop_ids:
                # free text so far, but its end may be the start of a bare-JSON call (Llama's
                # '{"name"'): that start is the call's JSON, so the scanner keeps it
                self._text_tail = (self._text_tail + self.table.bytes[token])[-max(map(len, self.json_openers)) :]
                self.scan.feed(_opener_start(self._text_tail, self.json_openers))
        elif token not in self.table.stop_ids:
            self.scan.feed(self.table.bytes[token])

    def restrict(self, logits: torch.Tensor) -> list[int] | None:
        """The only tokens to allow this step (a subset of those the grammar allows), or None
        to leave the mask as it is. `logits` is the grammar-masked row."""
        keep = self._budget(logits)
        if keep is not None and int(logits.argmax()) not in keep:
            self.closed_early = True
        if keep is not None and len(keep) == 1:
            return keep
        closer = self._repetition()
        if closer is not None and (keep is None or closer in keep or self._fits(closer)):
            return [closer]
        return keep

    def _repetition(self) -> int | None:
        if not self.repetition:
            return None
        b = repetition_closer(self.scan)
        if b is None:
            return None
        token = self.table.byte_token.get(b)
        if token is None or not self.m.accept_token(token):
            return None
        self.m.rollback(1)
        return token

    def _remaining(self) -> int | None:
        return None if self.max_tokens is None else self.max_tokens - self.used

    def _fits(self, token: int) -> bool:
        need = self.need_after(token)
        return need is not None and need <= self._remaining() - 1

    def _budget(self, logits: torch.Tensor) -> list[int] | None:
        remaining = self._remaining()
        if remaining is None:
            return None
        far = remaining > 2 * self._need + 64
        if far and self.used % _REFRESH:
            return None  # far from the end: the need is only refreshed now and then
        plan = self.plan()
        if plan is None or remaining > 2 * self._need + 64:
            return None
        slack = remaining - len(plan)
        if slack > _TIGHT:
            return None
        first = plan[0] if plan else self.table.stop_ids[0]
        if slack <= 0:
            return [first]
        vals, ids = torch.topk(logits, min(_TOP_K, logits.shape[0]))
        top = [t for v, t in zip(vals.tolist(), ids.tolist()) if math.isfinite(v) and t != first]
        return [first, *(t for t in top if self._fits(t))]
