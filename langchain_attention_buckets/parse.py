"""Generated text -> text and tool calls, incrementally.

The parser reads the text as it streams and splits it into

- ``TextPiece``: text outside calls (surrounding whitespace trimmed, and text that
  could be the start of ``<tool_call>`` held back until it is known not to be);
- ``ParsedCall``: a call, once its ``</tool_call>`` arrives (or the text ends):
  either valid (a known tool, a JSON object of arguments that, after coercion to
  the schema's types, validates) or invalid, with the reason.

It never raises on model output: anything that does not parse becomes an
invalid call carrying the raw text, so nothing is lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .tool_format import TOOL_CALL_CLOSE, TOOL_CALL_OPEN


@dataclass(frozen=True)
class TextPiece:
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


Event = TextPiece | ParsedCall


class ToolCallParser:
    """Incremental parser for one generation.

    Args:
        schemas: the bound tools' parameter schemas by name; a call naming another tool is invalid.
    """

    def __init__(self, schemas: Mapping[str, dict]):
        self.schemas = dict(schemas)
        self._buf = ""  # unconsumed text
        self._in_call = False
        self._pending_ws = ""  # whitespace outside calls, emitted only if text follows
        self._started = False  # any non-space text emitted yet
        self._n_calls = 0

    def feed(self, text: str) -> Iterator[Event]:
        self._buf += text
        while True:
            if self._in_call:
                end = _call_end(self._buf)
                if end < 0:
                    return
                raw, self._buf = self._buf[:end], self._buf[end + len(TOOL_CALL_CLOSE) :]
                self._in_call = False
                yield self._call(raw)
                continue
            start = self._buf.find(TOOL_CALL_OPEN)
            if start >= 0:
                yield from self._text(self._buf[:start], final=True)
                self._buf = self._buf[start + len(TOOL_CALL_OPEN) :]
                self._in_call = True
                continue
            keep = _partial_marker(self._buf)
            text, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep :]
            yield from self._text(text, final=False)
            return

    def finish(self) -> Iterator[Event]:
        """The end of the text: an unterminated call is invalid; held text is flushed."""
        if self._in_call:
            end = self._buf.find(TOOL_CALL_CLOSE)
            if end >= 0:  # closed inside what looked like a string: take the first marker
                raw, rest = self._buf[:end], self._buf[end + len(TOOL_CALL_CLOSE) :]
                self._buf, self._in_call = "", False
                yield self._call(raw)
                yield from self.feed(rest)
                yield from self.finish()
                return
            raw, self._buf, self._in_call = self._buf, "", False
            yield self._invalid(None, raw, f"the call was not closed with {TOOL_CALL_CLOSE}")
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

    def _call(self, raw: str) -> ParsedCall:
        try:
            obj = json.loads(raw.strip())
        except json.JSONDecodeError as exc:
            return self._invalid(None, raw, f"the call is not valid JSON: {exc}")
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return self._invalid(None, raw, 'the call is not a JSON object with a string "name"')
        name = obj["name"]
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):  # some models write the arguments as a JSON string
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                return self._invalid(name, raw, "the arguments are a string that is not JSON")
        if not isinstance(args, dict):
            return self._invalid(name, raw, "the arguments are not a JSON object")
        if name not in self.schemas:
            return self._invalid(name, raw, f"unknown tool {name!r}; bound tools: {', '.join(self.schemas) or 'none'}")
        args = coerce(args, self.schemas[name])
        problem = validation_error(args, self.schemas[name])
        if problem:
            return self._invalid(name, raw, f"the arguments do not match the schema of {name!r}: {problem}")
        return self._next(name, args, raw, None)

    def _invalid(self, name: str | None, raw: str, error: str) -> ParsedCall:
        if name is None:  # keep what can be read of the name
            found = _NAME.search(raw)
            name = found.group(1) if found else None
        return self._next(name, None, raw, error)

    def _next(self, name, args, raw, error) -> ParsedCall:
        call = ParsedCall(self._n_calls, name, args, raw, error)
        self._n_calls += 1
        return call


def parse(text: str, schemas: Mapping[str, dict]) -> tuple[str, list[ParsedCall]]:
    """The whole text at once: (content, calls)."""
    parser = ToolCallParser(schemas)
    events = [*parser.feed(text), *parser.finish()]
    content = "".join(e.text for e in events if isinstance(e, TextPiece))
    return content, [e for e in events if isinstance(e, ParsedCall)]


_NAME = re.compile(r'"name"\s*:\s*"([^"\\]+)"')


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
    inside = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and inside:
            escaped = True
        elif ch == '"':
            inside = not inside
    return inside


def _partial_marker(text: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of the opening marker."""
    for n in range(min(len(TOOL_CALL_OPEN) - 1, len(text)), 0, -1):
        if text.endswith(TOOL_CALL_OPEN[:n]):
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
