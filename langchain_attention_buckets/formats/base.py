"""What every tool-call format shares: the events, the JSON reading, the streaming parser.

A format (one subclass of ``Format`` per model family) knows its syntax only: its markers, how
a call and a result are written, and ``split_calls``, which cuts the generated text into
``Piece``s (text, and call bodies). The base class adds the reasoning (``<think>`` ...
``</think>``) in front, and ``FormatParser`` turns the pieces into events.

The parser re-reads the whole text at every step and sends what is new since the last step
(the way llama.cpp's chat parser does), so streamed and whole parsing cannot disagree:
``split_calls`` holds back (while the text is not final) whatever could still turn out to be
something else, such as the first characters of a marker.

Events (the contract of the chat model's ``_Call``):

- ``TextPiece``: content text (whitespace around the content trimmed; markers never in it);
- ``ReasoningPiece``: reasoning text, as it is generated;
- ``CallStart``: a call opened and its name is known (index: the calls of the answer from 0);
- ``ArgsDelta``: more of that call's argument text;
- ``ParsedCall``: the call ended: valid (a known tool, a JSON object of arguments that, after
  coercion to the schema's types, validates) or invalid, with the reason and the raw text.

The argument text of a call adds up, over its ``ArgsDelta`` events, to text that
langchain-core reads back as the call: for a valid call, JSON that loads to exactly
``ParsedCall.arguments``; for an invalid one, text that is certainly not a JSON object (so
langchain-core lists it under ``invalid_tool_calls``). While the call is open only text that is
certainly argument text goes out: the arguments object character by character, holding back
its closing ``}``. When the call ends, one last delta completes the arguments: the ``}``; or,
where coercion changed a value ("3" -> 3), the changed keys written again before it; or, for an
invalid call, the rest of the raw text and an unmatched closing bracket. Calls written in
another form (arguments as a string, the name after the arguments) send their name and
arguments whole when they end.

Nothing here raises on model output.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..text.scan import JsonScanner

# ---- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextPiece:
    text: str


@dataclass(frozen=True)
class ReasoningPiece:
    text: str


@dataclass(frozen=True)
class CallStart:
    index: int
    name: str | None
    id: str | None = None  # an id the model wrote (Mistral's [CALL_ID]), else None


@dataclass(frozen=True)
class ArgsDelta:
    index: int
    text: str


@dataclass(frozen=True)
class ParsedCall:
    index: int
    name: str | None
    arguments: dict[str, Any] | None  # None when invalid
    raw: str  # the call's text (between its markers)
    error: str | None = None
    id: str | None = None  # an id the model wrote, else None

    @property
    def valid(self) -> bool:
        return self.error is None


Event = TextPiece | ReasoningPiece | CallStart | ArgsDelta | ParsedCall


# ---- pieces: what a format's split returns -----------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """One part of the generated text, as a format reads it.

    ``kind`` "text" or "reasoning": ``text`` is the text. ``kind`` "call": ``text`` is the call's
    body (between its markers); ``closed`` whether its end was seen; ``safe`` how much of the body
    is certainly the call's (None: all of it); ``name`` the name where it stands outside the body
    (then the body is the arguments object, possibly in a ```json fence); ``named`` whether the
    body is arguments only (the name outside it, perhaps not yet known); ``form`` "json" or
    "python" (``name.call(key=value)``, Llama's built-in tools).
    """

    kind: str
    text: str
    closed: bool = True
    safe: int | None = None
    name: str | None = None
    named: bool = False
    id: str | None = None
    form: str = "json"


def text(s: str) -> Piece:
    return Piece("text", s)


def reasoning(s: str) -> Piece:
    return Piece("reasoning", s)


def call(body: str, closed: bool = True, safe: int | None = None, **kw) -> Piece:
    return Piece("call", body, closed, safe, **kw)


# ---- JSON read one character at a time (the package's one scanner) --------------------------------

Json = JsonScanner
"""JSON nesting read one character at a time (``text.scan.JsonScanner``): open brackets, whether
a string is open, and ``spoiler()``, the text that makes a cut object certainly not JSON."""


# The same reading as ``JsonScanner`` (tests/test_formats.py checks it), at the speed of a regular
# expression: a whole JSON string, or a structural character (a lone quote: a string open to the end).
_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"|[{}\[\]"]')  # possessive: an open string fails fast


def json_end(text: str, start: int) -> int | None:
    """Just past the JSON object or array that opens at ``text[start]`` (or past a closing
    bracket that matches nothing), or None while it is open. Strings are skipped whole, so a
    bracket inside one does not count.

    A stream asks again each step with the same beginning and more text: the reading resumes
    where the last one stopped when the text read so far is unchanged (``_resume``).
    """
    stack: list[str] = []
    pos = start
    key = (start, text[start : start + 32])  # streams read side by side keep apart
    seen = _resume.get(key)
    if seen is not None and text.startswith(seen[0], start):
        pos, stack = start + len(seen[0]), list(seen[1])
    for m in _TOKEN.finditer(text, pos):
        tok = m.group()
        if tok == '"':
            break  # a string open to the end
        pos = m.end()
        if tok[0] == '"':
            continue
        if tok in "{[":
            stack.append("}" if tok == "{" else "]")
        elif not stack or stack.pop() != tok or not stack:
            return m.end()
    if len(_resume) > 64:
        _resume.clear()
    _resume[key] = (text[start:pos], tuple(stack))
    return None


_resume: dict[tuple[int, str], tuple[str, tuple[str, ...]]] = {}  # (start, its text) -> (text read, brackets open)


def ends_inside_string(text: str) -> bool:
    """Whether ``text`` ends inside a JSON string (read from its start, brackets or not)."""
    return any(m.group() == '"' for m in _TOKEN.finditer(text))  # a lone quote: a string open to the end


def find_outside_strings(text: str, marker: str, start: int = 0) -> int:
    """The first ``marker`` at or after ``start`` that is not inside a JSON string, or -1."""
    pos = start
    while True:
        end = text.find(marker, pos)
        if end < 0 or not ends_inside_string(text[start:end]):
            return end
        pos = end + 1


def partial_marker(text: str, markers: str | Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of one of ``markers``."""
    best = 0
    for marker in [markers] if isinstance(markers, str) else markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best


_SEPARATORS = re.compile(r"\s*[,;]?\s*")


def split_objects(body: str, closed: bool, safe: int | None = None) -> list[Piece]:
    """The calls of one block: usually one JSON object; several objects one after another
    (separated by white space, ``,`` or ``;``) or a JSON list of them are several calls (Qwen2.5
    sometimes writes its parallel calls in one ``<tool_call>`` block). A block is split only where
    a next object starts, so what streamed of its first call stays that call's.

    Args:
        body: the block's text; closed: whether its end was seen; safe: how much of the body is
            certainly the block's (for the last call).
    """
    lead = _SEPARATORS.match(body).end() if body[:1].isspace() else 0
    first = _SEPARATORS.match(body, lead + 1).end()
    listed = body.startswith("[", lead) and (first == len(body) or body.startswith("{", first))  # a list of objects
    start = lead + 1 if listed else 0  # where the current call's text starts
    pos = start
    pieces: list[Piece] = []
    while True:
        i = _SEPARATORS.match(body, pos).end()
        if not body.startswith("{", i):
            break
        end = json_end(body, i)
        if end is None:
            break
        nxt = _SEPARATORS.match(body, end).end()
        if body.startswith("{", nxt):
            pieces.append(call(body[start:end]))
            start = pos = nxt
            continue
        if listed and body[nxt:].strip() == "]":  # the list's end: its last call
            pieces.append(call(body[start:end], closed=closed, safe=None if safe is None else max(0, safe - start)))
            return pieces
        break
    pieces.append(call(body[start:], closed=closed, safe=None if safe is None else max(0, safe - start)))
    return pieces


def split_marked(s: str, final: bool, marker: str, after: Callable[[str, int, bool, list[Piece]], int | None],
                 pos: int | None = 0, pieces: list[Piece] | None = None) -> list[Piece]:
    """Text, and the calls that follow each ``marker`` (formats whose calls have no closing marker:
    Mistral's ``[TOOL_CALLS]``, Granite's ``<|tool_call|>``).

    Args:
        s: the text; final: whether it is complete; marker: the marker that opens calls.
        after: ``after(s, pos, final, pieces)`` reads the calls from ``pos`` (just past a marker)
            into ``pieces`` and returns where text resumes, or None (the end of the text).
        pos: where to start (None: nothing left to read); pieces: pieces read before ``pos``.
    """
    pieces = [] if pieces is None else pieces
    while pos is not None:
        at = s.find(marker, pos)
        if at < 0:
            rest = s[pos:]
            pieces.append(text(rest if final else rest[: len(rest) - partial_marker(rest, marker)]))
            return pieces
        pieces.append(text(s[pos:at]))
        pos = after(s, at + len(marker), final, pieces)
    return pieces


def json_calls_after(s: str, pos: int, final: bool, pieces: list[Piece], marker: str) -> int | None:
    """The calls written as JSON after one ``marker``: a list of call objects or one object. Other
    text is an invalid call up to the next marker; nothing after the marker at the end of the text,
    an empty invalid call. Returns where text resumes, or None (the end of the text)."""
    pos += len(s[pos:]) - len(s[pos:].lstrip())
    if pos == len(s):
        if final:
            pieces.append(call("", closed=False))
        return None
    if s[pos] == "[":
        return list_calls(s, pos, final, pieces)
    if s[pos] == "{":
        end = json_end(s, pos)
        pieces.append(call(s[pos:] if end is None else s[pos:end], closed=end is not None))
        return end
    stop = s.find(marker, pos)
    if stop < 0 and not final:
        pieces.append(call(s[pos:], closed=False, safe=0))
        return None
    pieces.append(call(s[pos:stop] if stop >= 0 else s[pos:]))
    return stop if stop >= 0 else None


def list_calls(s: str, pos: int, final: bool, pieces: list[Piece]) -> int | None:
    """The calls of a JSON list of call objects opening at ``s[pos]`` (``[{...}, {...}]``); returns
    where text resumes, or None. A list cut between calls keeps the calls written; an item that is
    not an object makes the rest of the list one invalid call."""
    pos += 1
    while True:
        pos += len(s[pos:]) - len(s[pos:].lstrip(" \t\r\n,"))
        if pos == len(s):  # the list goes on, or was cut between calls: what was written stands
            return None
        if s[pos] == "]":
            return pos + 1
        if s[pos] != "{":  # not a list of call objects: the rest of the list as an invalid call
            stop = s.find("]", pos)
            if stop < 0 and not final:
                pieces.append(call(s[pos:], closed=False, safe=0))
                return None
            stop = len(s) if stop < 0 else stop
            pieces.append(call(s[pos:stop]))
            return min(stop + 1, len(s))
        end = json_end(s, pos)
        if end is None:
            pieces.append(call(s[pos:], closed=False))
            return None
        pieces.append(call(s[pos:end]))
        pos = end


# ---- values against schemas --------------------------------------------------------------------


def coerce(value: Any, schema: dict) -> Any:
    """Values converted to the schema's types where the text says so ("3" -> 3 for an integer)."""
    if not isinstance(schema, dict):
        return value
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if isinstance(value, dict) and "object" in types or (isinstance(value, dict) and "properties" in schema):
        props = schema.get("properties", {})
        return {k: coerce(v, props.get(k, {})) for k, v in value.items()}
    if isinstance(value, list) and "items" in schema:
        return [coerce(v, schema["items"]) for v in value]
    branches = [b for b in schema.get("anyOf", []) + schema.get("oneOf", []) if isinstance(b, dict)]
    if branches and not (isinstance(value, str) and any(_admits_string(b) for b in branches)):
        for branch in branches:  # MCP servers write optional values as anyOf [T, null]
            out = coerce(value, branch)
            if out is not value:
                return out
    if isinstance(value, str):
        s = value.strip()
        if "integer" in types and "string" not in types:
            try:
                return int(s)
            except ValueError:
                try:
                    f = float(s)
                    return int(f) if f.is_integer() else value
                except ValueError:
                    return value
        if "number" in types and "string" not in types:
            try:
                f = float(s)
                return int(f) if f.is_integer() and "." not in s and "e" not in s.lower() else f
            except ValueError:
                return value
        if "boolean" in types and "string" not in types and s.lower() in ("true", "false"):
            return s.lower() == "true"
    if isinstance(value, float) and "integer" in types and value.is_integer():
        return int(value)
    return value


def _admits_string(schema: dict) -> bool:
    types = schema.get("type")
    return types is None or types == "string" or (isinstance(types, list) and "string" in types)


def validation_error(args: dict, schema: dict) -> str | None:
    """A short reason if ``args`` do not validate against ``schema`` (JSON Schema), else None."""
    import jsonschema

    try:
        jsonschema.validate(args, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"{where + ': ' if where else ''}{exc.message}"
    except jsonschema.SchemaError:
        return None  # a schema jsonschema cannot read: do not judge the call by it
    return None


# ---- the format object ---------------------------------------------------------------------------

THINK = ("<think>", "</think>")
THINK_TOKENS = ("[THINK]", "[/THINK]")
REASONING_FORMATS: dict[str, tuple[str, str] | None] = {"none": None, "think": THINK, "magistral": THINK_TOKENS}
"""Reasoning delimiters by name, for ``reasoning_format=``: "none" (no reasoning read), "think"
(``<think>`` ... ``</think>``, Qwen3 and the DeepSeek-R1 family) or "magistral" (``[THINK]`` ...
``[/THINK]``, Mistral's reasoning models)."""


class Format:
    """One model family's tool-call syntax. Subclasses set the class attributes and ``split_calls``.

    Attributes:
        name: the format's name (``formats.names()``).
        template_markers: strings whose presence in a chat template selects this format.
        openers: the strings that open a call (the triggers of a lazy grammar; the tool
            decision biases their first token).
        markers: every marker string of the format (special tokens that must survive detokenization).
        end_markers: end-of-turn tokens dropped where they show in the text.
        reasoning: the reasoning delimiters (start, end), or None.
    """

    name: str = ""
    template_markers: tuple[str, ...] = ()
    openers: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    end_markers: tuple[str, ...] = ()
    reasoning: tuple[str, str] | None = None
    closer: str | None = None  # the marker that ends a call, where there is one

    # ---- what render and the grammars ask ----------------------------------------------------

    def format_call(self, name: str, arguments: dict[str, Any], id: str | None = None) -> str:
        """The text of one call, as the model writes it."""
        raise NotImplementedError

    def format_calls(self, calls: Sequence[dict]) -> str:
        """The text of an assistant turn's calls (dicts with ``name``, ``arguments``, optional ``id``)."""
        return "\n".join(self.format_call(c["name"], c["arguments"], c.get("id")) for c in calls)

    def call_id(self, seed: str) -> str:
        """An id for a call the model wrote without one, derived from ``seed`` (stable: the same
        text gives the same id, streamed or whole)."""
        return "call_" + hashlib.sha1(seed.encode("utf-8", "replace")).hexdigest()[:24]

    def opens_reasoning(self, prompt: str) -> bool:
        """Whether a rendered generation prompt ends inside the reasoning (a thinking-only
        template writes ``<think>`` into it, so the output starts in the reasoning)."""
        if not self.reasoning:
            return False
        start, end = self.reasoning
        return prompt.rfind(start) > prompt.rfind(end)

    def template_opens_reasoning(self, chat_template: str) -> bool:
        """The same, read from the template's text: its generation prompt writes the start
        delimiter and not the end one (a hybrid template writes both, to switch thinking off)."""
        if not self.reasoning:
            return False
        at = chat_template.rfind("add_generation_prompt")
        tail = chat_template[at:] if at >= 0 else ""
        return self.reasoning[0] in tail and self.reasoning[1] not in tail

    def with_reasoning(self, reasoning_format: str | None) -> Format:
        """This format reading another reasoning syntax (a name of ``REASONING_FORMATS`` or a format)."""
        if reasoning_format is None:
            return self
        if reasoning_format in REASONING_FORMATS:
            delims = REASONING_FORMATS[reasoning_format]
        else:
            from .registry import get

            delims = get(reasoning_format).reasoning
        if delims == self.reasoning:
            return self
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.reasoning = delims
        return clone

    def without_calls(self) -> Format:
        """This format reading reasoning and text only (no tools bound: a call written anyway is
        text), with the same reasoning delimiters and end-of-turn markers."""
        return TextOnly(self.reasoning, self.end_markers)

    def parser(self, schemas: Mapping[str, dict] | None, reasoning_opened: bool | None = None) -> FormatParser:
        """A streaming parser for one answer (see ``FormatParser``)."""
        return FormatParser(self, schemas, reasoning_opened)

    def __repr__(self) -> str:
        return f"<format {self.name}>"

    # ---- reading the text ------------------------------------------------------------------------

    def split_calls(self, text: str, final: bool) -> list[Piece]:
        """The text after the reasoning, cut into text and call pieces (the family's syntax).

        While ``final`` is False, text that may still turn out to be something else (the start of
        a marker) is left out; pieces before the last never change as more text arrives.
        """
        raise NotImplementedError

    def split(self, text: str, final: bool, opened: bool | None = None, cut: bool = False) -> list[Piece]:
        """The whole answer cut into reasoning, text and call pieces.

        Args:
            opened: whether the prompt opened the reasoning (True: the text starts inside it);
                None: not known: a text that starts with the start delimiter is reasoning up to
                the end one, and so is text before an end delimiter that no start delimiter
                precedes (read only once that delimiter or the end of the text is seen).
        """
        pieces = self._split_reasoning(text, final, opened)
        last = len(pieces) - 1
        return [self._clean(p, final or i < last, cut and i == last) for i, p in enumerate(pieces)]

    def _split_reasoning(self, text: str, final: bool, opened: bool | None) -> list[Piece]:
        if not self.reasoning:
            return self.split_calls(text, final)
        start, end = self.reasoning
        lead = len(text) - len(text.lstrip())
        if text.startswith(start, lead):
            return self._reasoning_then(text, lead + len(start), final)
        if not final and start.startswith(text[lead:]):
            return []  # perhaps the start delimiter, still arriving
        if opened:
            return self._reasoning_then(text, 0, final)
        if opened is None:
            at = text.find(end)
            if at >= 0:
                return self._reasoning_then(text, 0, final)
            if not final:
                return []  # reasoning or content: known at the end delimiter or the end
        return self.split_calls(text, final)

    def _reasoning_then(self, text: str, begin: int, final: bool) -> list[Piece]:
        end = self.reasoning[1]
        at = text.find(end, begin)
        if at < 0:  # cut inside the reasoning, or still thinking
            keep = 0 if final else partial_marker(text, end)
            return [reasoning(text[begin : len(text) - keep])]
        return [reasoning(text[begin:at]), *self.split_calls(text[at + len(end) :], final)]

    def _clean(self, piece: Piece, final: bool, cut: bool = False) -> Piece:
        """Text without end-of-turn markers (and, while open, without the start of one); where
        max_tokens cut the answer, without the start of a marker it ended in."""
        drop = self.end_markers + (self.reasoning or ())
        if piece.kind != "text" or not drop and not cut:
            return piece
        s = piece.text
        for m in drop:
            s = s.replace(m, "")
        if not final:
            s = s[: len(s) - partial_marker(s, drop)]
        if cut:
            keep = partial_marker(s, (*self.openers, *self.markers, *drop))
            s = s[: len(s) - keep] if keep >= 2 else s
        return Piece(piece.kind, s)


class TextOnly(Format):
    """Reasoning and text, no calls (``Format.without_calls``)."""

    name = "text"

    def __init__(self, reasoning: tuple[str, str] | None = None, end_markers: tuple[str, ...] = ()):
        self.reasoning, self.end_markers = reasoning, tuple(end_markers)

    def split_calls(self, s: str, final: bool) -> list[Piece]:
        return [text(s)]


# ---- the streaming parser -----------------------------------------------------------------------

# The head of a call object in the usual order: the name first, then the arguments object.
_HEAD = re.compile(r'\s*\{\s*(?:"type"\s*:\s*"function"\s*,\s*)?"name"\s*:\s*("(?:[^"\\]|\\.)*")')
_ARGS_KEY = re.compile(r'\s*,\s*"(?:arguments|parameters)"\s*:\s*\{')
_NAME = re.compile(r'"name"\s*:\s*"([^"\\]+)"')
_FENCE = re.compile(r"\s*(?:```(?:json)?\s*)?\{")


@dataclass
class _Call:
    """The state of one call as it streams. Positions are offsets in its body."""

    index: int
    name: str | None = None
    id: str | None = None
    started: bool = False  # CallStart sent
    done: bool = False  # ParsedCall sent
    head_end: int | None = None  # just past the name string
    args_start: int | None = None  # the arguments' "{"
    args_end: int | None = None  # just past their closing "}"
    sent: int = 0  # argument text sent up to here
    scanned: int = 0
    json: Json = field(default_factory=Json)


class FormatParser:
    """Incremental parser for one answer in one format.

    Args:
        fmt: the format.
        schemas: the bound tools' parameter schemas by name (a call naming another tool is
            invalid); None accepts any name and does not check arguments.
        reasoning_opened: whether the prompt opened the reasoning (see ``Format.split``).
    """

    def __init__(self, fmt: Format, schemas: Mapping[str, dict] | None, reasoning_opened: bool | None = None):
        self.format = fmt
        self.schemas = None if schemas is None else dict(schemas)
        self.opened = reasoning_opened
        self._text = ""
        self._sent: dict[tuple[int, str], int] = {}  # (piece index, kind) -> characters sent
        self._calls: dict[int, _Call] = {}
        self._ended = False
        self._cut = True

    def feed(self, text: str) -> list[Event]:
        if self._ended:
            return []
        self._text += text
        return self._step(final=False)

    def finish(self, ended: str = "the text ended", cut: bool | None = None) -> list[Event]:
        """The end of the text: held text is flushed; a call left open ends invalid, unless the
        answer was not cut (the model stopped) and the call is complete but for its closing
        marker (a model that ends its turn right after the call's JSON).

        Args:
            ended: why the text ended, for the error of a call it cut ("max_tokens reached").
            cut: whether the answer was cut (None: where ``ended`` says max_tokens).
        """
        if self._ended:
            return []
        self._cut = "max_tokens" in ended if cut is None else cut
        events = self._step(final=True, ended=ended)
        self._ended = True
        return events

    # ---- one step: the whole text read again, what is new sent ----------------------------------

    def _step(self, final: bool, ended: str = "") -> list[Event]:
        pieces = self.format.split(self._text, final, self.opened, cut=final and self._cut)
        out: list[Event] = []
        started = {"text": False, "reasoning": False}
        n_call = 0
        for i, p in enumerate(pieces):
            if p.kind == "call":
                self._call_events(n_call, p, final, ended, out)
                n_call += 1
                continue
            # Trim whitespace around the content: leading space is dropped, trailing space
            # goes out only when more text of the same kind follows the piece.
            body = p.text.rstrip()
            if not body:
                continue
            if not started[p.kind]:
                body = body.lstrip()
            started[p.kind] = True
            key = (i, p.kind)
            done = self._sent.get(key, 0)
            if len(body) > done:
                out.append((TextPiece if p.kind == "text" else ReasoningPiece)(body[done:]))
                self._sent[key] = len(body)
        return out

    def _call_events(self, index: int, p: Piece, final: bool, ended: str, out: list) -> None:
        c = self._calls.setdefault(index, _Call(index))
        if c.done:
            return
        body = p.text
        seen = body if p.safe is None else body[: p.safe]
        self._find_head(c, p, seen)
        if c.name is not None and not c.started:
            c.started = True
            out.append(CallStart(index, c.name, c.id))
        if c.args_start is not None and c.started:
            self._scan(c, seen)
            limit = len(seen) if c.args_end is None else min(len(seen), c.args_end - 1)
            if limit > c.sent:
                out.append(ArgsDelta(index, seen[c.sent : limit]))
                c.sent = limit
        if p.closed or final:
            self._find_head(c, p, body)
            if c.args_start is not None:
                self._scan(c, body)
            if p.closed or not self._cut and self._complete(c, p):
                parsed = self._judge(c, p)
            else:
                closer = self.format.closer
                what = f"the call closed with {closer}" if closer else "the call was complete"
                parsed = self._invalid(c, body, f"{ended} before {what}")
            if not c.started:
                out.append(CallStart(index, parsed.name, c.id))
                c.started = True
            out.append(ArgsDelta(index, self._args_tail(c, body, parsed)))
            out.append(parsed)
            c.done = True

    def _find_head(self, c: _Call, p: Piece, seen: str) -> None:
        """The name, and where the arguments object starts, once the body shows them."""
        if p.named:
            if p.name is not None and c.name is None:
                c.name, c.id, c.head_end = p.name, p.id, 0
            if c.name is not None and c.args_start is None:
                m = _FENCE.match(seen)
                if m:
                    c.args_start = c.sent = c.scanned = m.end() - 1
            return
        if p.form != "json":
            return
        if c.head_end is None:
            head = _HEAD.match(seen)
            if not head:
                return
            try:
                name = json.loads(head.group(1))
            except json.JSONDecodeError:
                return
            c.name, c.head_end = name, head.end()
        if c.args_start is None:
            key = _ARGS_KEY.match(seen, c.head_end)
            if key:
                c.args_start = c.sent = c.scanned = key.end() - 1

    @staticmethod
    def _complete(c: _Call, p: Piece) -> bool:
        """Whether an open call's text is whole but for its closing marker."""
        body = p.text.strip()
        if not body:
            return False
        if p.form == "python":
            return True
        if p.named:
            if c.args_start is None or c.args_end is None:
                return False
            return p.text[c.args_end :].strip() in ("", "```")
        return body[0] == "{" and json_end(body, 0) == len(body)

    @staticmethod
    def _scan(c: _Call, body: str) -> None:
        while c.args_end is None and not c.json.broken and c.scanned < len(body):
            c.json.read(body[c.scanned])
            c.scanned += 1
            if not c.json.stack:
                c.args_end = c.scanned

    def _args_tail(self, c: _Call, raw: str, parsed: ParsedCall) -> str:
        """The argument text still due when the call ends (see the module docstring)."""
        if c.args_start is None:  # nothing sent: the whole arguments
            return json.dumps(parsed.arguments, ensure_ascii=False) if parsed.valid else raw + Json(raw).spoiler()
        if parsed.valid and c.args_end is not None:  # a valid call closed its arguments object
            try:
                written = json.loads(raw[c.args_start : c.args_end])
            except json.JSONDecodeError:
                written = None
            if isinstance(written, dict):
                return raw[c.sent : c.args_end - 1] + _completion(written, parsed.arguments)
        end = c.args_end if c.args_end is not None and c.args_end <= len(raw) else len(raw)
        return raw[c.sent : end] + Json(raw[c.args_start : end]).spoiler()

    # ---- one call, judged whole ----------------------------------------------------------------

    def _judge(self, c: _Call, p: Piece) -> ParsedCall:
        raw = p.text
        if p.form == "python":
            return self._judge_python(c, raw)
        if p.named:
            if c.name is None:
                return self._invalid(c, raw, "the call names no tool")
            m = _FENCE.match(raw)
            if not m:
                return self._invalid(c, raw, "the arguments are not a JSON object")
            start = m.end() - 1
            end = json_end(raw, start)
            rest = raw[end:].strip() if end is not None else ""
            if end is None or rest not in ("", "```"):
                return self._invalid(c, raw, "the arguments are not one JSON object")
            try:
                args = json.loads(raw[start:end])
            except json.JSONDecodeError as exc:
                return self._invalid(c, raw, f"the arguments are not valid JSON: {exc}")
            return self._checked(c, raw, c.name, args, None)
        try:
            obj = json.loads(raw.strip())
            pairs = json.loads(raw.strip(), object_pairs_hook=list)
        except json.JSONDecodeError as exc:
            obj = _python_literal(raw) if c.args_start is None else None  # nothing of it streamed yet
            if obj is None:
                return self._invalid(c, raw, f"the call is not valid JSON: {exc}")
            pairs = list(obj.items())
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return self._invalid(c, raw, 'the call is not a JSON object with a string "name"')
        name, keys = obj["name"], [k for k, _ in pairs]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            return self._invalid(c, raw, f"the call repeats the key {repeated[0]!r}", name)
        if "arguments" in obj and "parameters" in obj:
            return self._invalid(c, raw, 'the call has both "arguments" and "parameters"', name)
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):  # some models write the arguments as a JSON string
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                return self._invalid(c, raw, "the arguments are a string that is not JSON", name)
        call_id = obj.get("id") if isinstance(obj.get("id"), str) else None
        return self._checked(c, raw, name, args, call_id)

    def _judge_python(self, c: _Call, raw: str) -> ParsedCall:
        """``name.call(key=value, ...)`` (Llama 3.1's built-in tools) with literal values; other
        text is code for the interpreter, a call of ``python`` with ``{"code": ...}``."""
        import ast

        if not raw.strip():
            return self._invalid(c, raw, "nothing follows <|python_tag|>")
        m = re.fullmatch(r"\s*([A-Za-z_]\w*)\.call\((.*)\)\s*", raw, re.S)
        if not m:  # code for the interpreter
            return self._checked(c, raw, "python", {"code": raw.strip()}, None)
        try:
            node = ast.parse(f"f({m.group(2)})", mode="eval").body
            if node.args:
                raise ValueError("positional arguments")
            args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        except (SyntaxError, ValueError, TypeError):
            return self._invalid(c, raw, "the arguments are not keyword arguments with literal values", m.group(1))
        return self._checked(c, raw, m.group(1), args, None)

    def _checked(self, c: _Call, raw: str, name: str, args: Any, call_id: str | None) -> ParsedCall:
        if not isinstance(args, dict):
            return self._invalid(c, raw, "the arguments are not a JSON object", name)
        if self.schemas is not None:
            if name not in self.schemas:
                bound = ", ".join(self.schemas) or "none"
                return self._invalid(c, raw, f"unknown tool {name!r}; bound tools: {bound}", name)
            schema = self.schemas[name]
            args = coerce(args, schema)
            problem = validation_error(args, schema)
            if problem:
                return self._invalid(c, raw, f"the arguments do not match the schema of {name!r}: {problem}", name)
        return ParsedCall(c.index, name, args, raw, None, c.id or call_id)

    def _invalid(self, c: _Call, raw: str, error: str, name: str | None = None) -> ParsedCall:
        if c.name is not None:  # the name it announced (what the chunks carried)
            name = c.name
        elif name is None:  # keep what can be read of the name
            found = _NAME.search(raw)
            name = found.group(1) if found else None
        return ParsedCall(c.index, name, None, raw, error, c.id)


def _python_literal(raw: str) -> dict | None:
    """A call written as a Python dict (``{'name': 'f', 'arguments': {'x': 1}}``, as Hermes 2 Pro
    models often write it), or None."""
    import ast

    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _completion(written: dict, arguments: dict) -> str:
    """What follows the written arguments (without their "}") so that they load as ``arguments``.

    Coercion changes values only, never keys: a changed value is written again, as the
    last value of a repeated key is the one JSON keeps.
    """
    dump = lambda value: json.dumps(value, ensure_ascii=False)
    changed = {k: v for k, v in arguments.items() if k not in written or dump(written[k]) != dump(v)}
    return "".join(f", {dump(k)}: {dump(v)}" for k, v in changed.items()) + "}"
