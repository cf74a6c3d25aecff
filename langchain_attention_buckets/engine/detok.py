"""Token ids -> text, incrementally, with stop strings.

Text is emitted as soon as it is final: a token that ends inside a multi-byte
character waits for the next one, and text that could be the start of a stop
string is held back until it is known not to be. A matched stop string ends the
text before it; the stop string itself is never emitted.
"""

from __future__ import annotations

from collections.abc import Sequence


class IncrementalDetokenizer:
    def __init__(self, tokenizer, stop: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.ids: list[int] = []
        self.text = ""  # emitted so far
        self._held = ""
        self._prefix_offset = 0
        self._read_offset = 0
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _new_text(self) -> str:
        prefix = self._decode(self.ids[self._prefix_offset : self._read_offset])
        full = self._decode(self.ids[self._prefix_offset :])
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            self._prefix_offset, self._read_offset = self._read_offset, len(self.ids)
            return full[len(prefix) :]
        return ""

    def add(self, token_id: int) -> str:
        """Feed one token; return the text that became final (maybe ""). Sets ``stopped`` on a stop string."""
        if self.stopped:
            return ""
        self.ids.append(token_id)
        buf = self._held + self._new_text()
        hits = [i for i in (buf.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.stopped = True
            self._held = ""
            return self._emit(buf[: min(hits)])
        keep = partial_suffix_len(buf, self.stop)
        self._held = buf[len(buf) - keep :] if keep else ""
        return self._emit(buf[: len(buf) - keep])

    def flush(self) -> str:
        """At the end of generation: the held-back text (not a stop string after all)."""
        if self.stopped:
            return ""
        known = len(self._decode(self.ids[self._prefix_offset : self._read_offset]))
        tail = self._decode(self.ids[self._prefix_offset :])[known:]
        out, self._held = self._held + tail, ""
        self._prefix_offset = self._read_offset = len(self.ids)
        return self._emit(out)

    def _emit(self, text: str) -> str:
        self.text += text
        return text


def partial_suffix_len(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of some string in ``stops``
    (text to hold back: it may be the start of one)."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best
