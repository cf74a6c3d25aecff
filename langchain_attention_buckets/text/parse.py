"""Generated text -> text and tool calls, incrementally.

The parser reads the text as it streams and splits it into events:

- ``TextPiece``: text outside calls (surrounding whitespace trimmed, and text that
  could be the start of ``<tool_call>`` held back until it is known not to be);
- ``CallStart``: a call opened and its name is known (its index counts the calls of
  the answer, from 0);
- ``ArgsDelta``: more of that call's argument text;
- ``ParsedCall``: the call ended (``</tool_call>``, or the text ended): either valid
  (a known tool, a JSON object of arguments that, after coercion to the schema's
  types, validates) or invalid, with the reason.

The argument text of a call adds up, over its ``ArgsDelta`` events, to text that
langchain-core reads back as the call: for a valid call, JSON that loads to exactly
``ParsedCall.arguments``; for an invalid one, text that is certainly not a JSON object
(langchain-core then lists the call under ``invalid_tool_calls``).

Only text that is certainly argument text goes out while the call is open. In the
form every prompt and grammar of this package asks for,
``{"name": N, "arguments": {...}}``, the name goes out as soon as its string closes
and the arguments object character by character, holding back its closing ``}`` (the
call may still turn out invalid, or need a coerced value) and any text that could be
the start of ``</tool_call>``. When the call ends, one last delta completes the
arguments: the ``}``; or, where coercion changed a value ("3" -> 3), the changed keys
written again before the ``}`` (JSON objects keep the last value of a repeated key);
or, for an invalid call, the rest of the raw text and an unmatched closing bracket.
Calls written in any other form (arguments as a string, other key orders) send their
name and arguments whole when they end. The events depend only on the text, not on
how it was split into pieces.

It never raises on model output: anything that does not parse becomes an
invalid call carrying the raw text, so nothing is lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..formats.hermes import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from .scan import JsonScanner


@dataclass(frozen=True)
class TextPiece:
    text: str


@dataclass(frozen=True)
class CallStart:
    index: int
    name: str | None


@dataclass(frozen=True)
class ArgsDelta:
    index: int
    text: str


@dataclass(frozen=True)
class ParsedCall:
    index: int
    name: str | None
    arguments: dict[str, Any] | None  # None when invalid
    raw: str  # the text between the markers
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.error is None


Event = TextPiece | CallStart | ArgsDelta | ParsedCall

# The head of a call in the form the package asks for: the name first, then the arguments object.
_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")')
_ARGS_KEY = re.compile(r'\s*,\s*"arguments"\s*:\s*\{')
_NAME = re.compile(r'"name"\s*:\s*"([^"\\]+)"')


@dataclass
class _Open:
    """The call being read. Positions are offsets in its body (the text after ``<tool_call>``)."""

    index: int
    name: str | None = None  # the name it announced
    started: bool = False  # CallStart sent
    head_end: int | None = None  # just past the name string
    args_start: int | None = None  # the arguments' "{"
    args_end: int | None = None  # just past their closing "}"
    sent: int = 0  # argument text sent up to here
    scanned: int = 0
    json: JsonScanner = field(default_factory=JsonScanner)


class ToolCallParser:
    """Incremental parser for one generation.

    Args:
        schemas: the bound tools' parameter schemas by name; a call naming another tool is invalid.
    """

    def __init__(self, schemas: Mapping[str, dict]):
        self.schemas = dict(schemas)
        self._buf = ""  # unconsumed text (inside a call: the call's body so far)
        self._open: _Open | None = None
        self._pending_ws = ""  # whitespace outside calls, emitted only if text follows
        self._started = False  # any non-space text emitted yet
        self._n_calls = 0

    def feed(self, text: str) -> Iterator[Event]:
        self._buf += text
        while True:
            if self._open:
                end = _call_end(self._buf)
                if end < 0:
                    yield from self._progress(self._buf)
                    return
                raw, self._buf = self._buf[:end], self._buf[end + len(TOOL_CALL_CLOSE) :]
                yield from self._close(raw)
                continue
            start = self._buf.find(TOOL_CALL_OPEN)
            if start >= 0:
                yield from self._text(self._buf[:start], final=True)
                self._buf = self._buf[start + len(TOOL_CALL_OPEN) :]
                self._open = _Open(self._n_calls)
                continue
            keep = _partial_marker(self._buf, TOOL_CALL_OPEN)
            text, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep :]
            yield from self._text(text, final=False)
            return

    def finish(self, ended: str = "the text ended") -> Iterator[Event]:
        """The end of the text: an unterminated call is invalid; held text is flushed.

        Args:
            ended: why the text ended, for the error of a call it cut ("max_tokens reached").
        """
        if self._open:
            end = self._buf.find(TOOL_CALL_CLOSE)
            if end >= 0:  # closed inside what looked like a string: take the first marker
                raw, rest = self._buf[:end], self._buf[end + len(TOOL_CALL_CLOSE) :]
                self._buf = ""
                yield from self._close(raw)
                yield from self.feed(rest)
                yield from self.finish(ended)
                return
            raw, self._buf = self._buf, ""
            yield from self._close(raw, unclosed=f"{ended} before the call closed with {TOOL_CALL_CLOSE}")
        else:
            text, self._buf = self._buf, ""
            yield from self._text(text, final=True)

    def _text(self, text: str, final: bool) -> Iterator[TextPiece]:
        # Trim whitespace around the content: leading space is dropped, trailing space
        # waits until more text follows (it is dropped before a call or at the end).
        body = text.rstrip()
        if body:
            out = self._pending_ws + body if self._started else body.lstrip()
            self._started = True
            self._pending_ws = text[len(body) :]
            yield TextPiece(out)
        else:
            self._pending_ws += text
        if final:
            self._pending_ws = ""

    # ---- one call, as it streams -------------------------------------------------------

    def _progress(self, body: str) -> Iterator[Event]:
        """Events of an open call whose body is ``body`` so far: its start, new argument text."""
        o = self._open
        self._find_head(body)
        if o.name is not None and not o.started:
            o.started = True
            yield CallStart(o.index, o.name)
        if o.args_start is None:
            return
        self._scan(body)
        # Hold back text that may be the closing marker, text from a marker inside a string on
        # (the call may end there if it never closes outside one) and the arguments' last "}".
        limit = len(body) - _partial_marker(body, TOOL_CALL_CLOSE)
        inside = body.find(TOOL_CALL_CLOSE, o.args_start)
        if inside >= 0:
            limit = min(limit, inside)
        if o.args_end is not None:
            limit = min(limit, o.args_end - 1)
        if limit > o.sent:
            yield ArgsDelta(o.index, body[o.sent : limit])
            o.sent = limit

    def _find_head(self, body: str) -> None:
        """The name, and where the arguments object starts, once the body shows them."""
        o = self._open
        if o.head_end is None:
            head = _HEAD.match(body)
            if not head or TOOL_CALL_CLOSE in body[: head.end()]:
                return
            try:
                name = json.loads(head.group(1))
            except json.JSONDecodeError:
                return
            o.name, o.head_end = name, head.end()
        if o.args_start is None:
            key = _ARGS_KEY.match(body, o.head_end)
            if key:
                o.args_start = o.sent = o.scanned = key.end() - 1

    def _scan(self, body: str) -> None:
        o = self._open
        while o.args_end is None and not o.json.broken and o.scanned < len(body):
            o.json.read(body[o.scanned])
            o.scanned += 1
            if not o.json.stack:
                o.args_end = o.scanned

    def _close(self, raw: str, unclosed: str | None = None) -> Iterator[Event]:
        """The events that end the open call, whose body is ``raw``."""
        o = self._open
        self._find_head(raw)
        if o.args_start is not None:
            self._scan(raw)
        call = self._call(raw) if unclosed is None else self._invalid(raw, unclosed)
        if not o.started:
            yield CallStart(o.index, call.name)
        yield ArgsDelta(o.index, self._args_tail(raw, call))
        yield call
        self._open = None
        self._n_calls += 1

    def _args_tail(self, raw: str, call: ParsedCall) -> str:
        """The argument text still due when the call ends (see the module docstring)."""
        o = self._open
        if o.args_start is None:  # nothing sent: the whole arguments
            return json.dumps(call.arguments, ensure_ascii=False) if call.valid else raw + JsonScanner(raw).spoiler()
        if call.valid:  # a valid call closed its arguments object: args_end is known
            written = raw[o.args_start : o.args_end]
            return raw[o.sent : o.args_end - 1] + _completion(json.loads(written), call.arguments)
        end = o.args_end if o.args_end is not None and o.args_end <= len(raw) else len(raw)
        return raw[o.sent : end] + JsonScanner(raw[o.args_start : end]).spoiler()

    # ---- one call, judged whole --------------------------------------------------------

    def _call(self, raw: str) -> ParsedCall:
        try:
            obj = json.loads(raw.strip())
            pairs = json.loads(raw.strip(), object_pairs_hook=list)
        except json.JSONDecodeError as exc:
            return self._invalid(raw, f"the call is not valid JSON: {exc}")
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return self._invalid(raw, 'the call is not a JSON object with a string "name"')
        name, keys = obj["name"], [k for k, _ in pairs]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            return self._invalid(raw, f"the call repeats the key {repeated[0]!r}", name)
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):  # some models write the arguments as a JSON string
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                return self._invalid(raw, "the arguments are a string that is not JSON", name)
        if not isinstance(args, dict):
            return self._invalid(raw, "the arguments are not a JSON object", name)
        if name not in self.schemas:
            bound = ", ".join(self.schemas) or "none"
            return self._invalid(raw, f"unknown tool {name!r}; bound tools: {bound}", name)
        args = coerce(args, self.schemas[name])
        problem = validation_error(args, self.schemas[name])
        if problem:
            return self._invalid(raw, f"the arguments do not match the schema of {name!r}: {problem}", name)
        return ParsedCall(self._open.index, name, args, raw, None)

    def _invalid(self, raw: str, error: str, name: str | None = None) -> ParsedCall:
        if self._open.name is not None:  # the name it announced (what the chunks carried)
            name = self._open.name
        elif name is None:  # keep what can be read of the name
            found = _NAME.search(raw)
            name = found.group(1) if found else None
        return ParsedCall(self._open.index, name, None, raw, error)


def parse(text: str, schemas: Mapping[str, dict]) -> tuple[str, list[ParsedCall]]:
    """The whole text at once: (content, calls)."""
    parser = ToolCallParser(schemas)
    events = [*parser.feed(text), *parser.finish()]
    content = "".join(e.text for e in events if isinstance(e, TextPiece))
    return content, [e for e in events if isinstance(e, ParsedCall)]


def _completion(written: dict, arguments: dict) -> str:
    """What follows the written arguments (without their "}") so that they load as ``arguments``.

    Coercion changes values only, never keys: a changed value is written again, as the
    last value of a repeated key is the one JSON keeps.
    """
    dump = lambda value: json.dumps(value, ensure_ascii=False)
    changed = {k: v for k, v in arguments.items() if k not in written or dump(written[k]) != dump(v)}
    return "".join(f", {dump(k)}: {dump(v)}" for k, v in changed.items()) + "}"


def _call_end(buf: str) -> int:
    """Where the call's closing marker starts, or -1 while the call may still go on.

    A closing marker inside a JSON string (an argument may contain the text) does not end
    the call; any other marker does.
    """
    start = 0
    while True:
        end = buf.find(TOOL_CALL_CLOSE, start)
        if end < 0 or not _ends_inside_string(buf[:end]):
            return end
        start = end + 1


def _ends_inside_string(text: str) -> bool:
    return JsonScanner(text).in_string


def _partial_marker(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:n]):
            return n
    return 0


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
