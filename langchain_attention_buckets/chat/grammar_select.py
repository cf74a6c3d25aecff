"""Which grammar one chat-model call runs under: tool calls, JSON, both, or none.

Owns the response-format check (``check_response_format``) and the choice of
grammar for a call (``call_constraint``). It decides; ``constrain`` builds and
compiles. Imports ``constrain`` (the compiler), ``tool_choice`` (``Choice``) and,
for types only, ``loading``; never the engine or the chat model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..constrain import compiler_for
from ..constrain.grammar import HERMES, CallSyntax
from ..text.tool_choice import Choice
from .errors import OptionError, kind, shown

if TYPE_CHECKING:  # pragma: no cover
    from ..constrain import TokenConstraint
    from ..engine.loading import LoadedModel


_FORMATS = ("{'type': 'text'}, {'type': 'json_object'} or "
            "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}}")
_JSON_SCHEMA_FIELDS = {"name": str, "description": str, "schema": dict, "strict": bool}


def check_response_format(rf: Any) -> dict | None:
    """``rf`` if it is a json_object or json_schema format (None for None or {"type": "text"});
    else OptionError naming the field (``response_format.json_schema.schema``)."""
    if rf is None:
        return None
    if not isinstance(rf, dict):
        raise OptionError(f"response_format={shown(rf)} is not allowed; use {_FORMATS}", "response_format")
    kind_ = rf.get("type")
    allowed = {"text": {"type"}, "json_object": {"type"}, "json_schema": {"type", "json_schema"}}.get(kind_)
    if allowed is None:
        got = "is missing" if "type" not in rf else f"={shown(kind_)} is not allowed"
        raise OptionError(f"response_format.type {got}; use {_FORMATS}", "response_format.type")
    extra = sorted(set(rf) - allowed)
    if extra:
        raise OptionError(f"response_format.{extra[0]} is not a field of a {kind_!r} response format; use {_FORMATS}",
                          f"response_format.{extra[0]}")
    if kind_ == "text":
        return None
    if kind_ == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict):
            raise OptionError(f"response_format.json_schema must be an object, not {kind(spec)}; use {_FORMATS}",
                              "response_format.json_schema")
        for key, value in spec.items():
            want = _JSON_SCHEMA_FIELDS.get(key)
            where = f"response_format.json_schema.{key}"
            if want is None:
                raise OptionError(f"{where} is not a field of json_schema (name, description, schema, strict)", where)
            if not isinstance(value, want) and not (value is None and key in ("description", "strict")):
                words = {str: "a string", dict: "an object (a JSON schema)", bool: "a boolean"}[want]
                raise OptionError(f"{where} must be {words}, not {kind(value)}", where)
        if "schema" not in spec:
            raise OptionError("response_format.json_schema.schema is missing: the JSON schema the answer must follow",
                              "response_format.json_schema.schema")
    return rf


def response_schema(response_format: dict) -> dict:
    """The JSON schema a (checked) response format asks for."""
    if response_format["type"] == "json_object":
        return {"type": "object"}
    return response_format["json_schema"]["schema"]


def call_constraint(
    loaded: LoadedModel,
    tools,
    choice: Choice,
    parallel: bool,
    response_format: dict | None,
    constrained: bool,
    max_tokens: int | None = None,
    syntax: CallSyntax = HERMES,
) -> TokenConstraint | None:
    """The grammar of this call, or None when the output is free.

    Forced tool choice: calls only. Otherwise a response format makes the answer JSON (or, with
    tools and "auto", calls or JSON). "none" never lets a call through, even without constrained
    decoding. "auto" constrains a call once it opens. Calls are written in ``syntax`` (the model
    family's own; reasoning first where it has some). The grammar keeps its output complete
    within ``max_tokens`` (see ``constrain.steering``).

    Raises:
        ValueError: ``max_tokens`` is below the fewest tokens of a complete output (forced
            calls, structured output); the message names the minimum.
    """
    constraint = _grammar(loaded, tools, choice, parallel, response_format, constrained, syntax)
    return None if constraint is None else constraint.limit(max_tokens)


def _grammar(
    loaded: LoadedModel,
    tools,
    choice: Choice,
    parallel: bool,
    response_format: dict | None,
    constrained: bool,
    syntax: CallSyntax,
):
    stops = sorted(loaded.eos_token_ids)
    # the format's markers that are special tokens of their own (Hermes 3's <tool_call>) stay allowed
    compiler = compiler_for(loaded.tokenizer, vocab_size=loaded.vocab_size, stop_token_ids=stops, markers=syntax.markers)
    forced = tools and choice.kind in ("required", "named")
    if forced and constrained:
        allowed = [choice.name] if choice.kind == "named" else None
        single = not parallel or choice.kind == "named"
        return compiler.tool_calls(tools, mode="forced", allowed=allowed, parallel=not single, syntax=syntax)
    if response_format is not None and constrained and not forced:
        if tools and choice.kind == "auto":
            return compiler.tool_calls_or_json(tools, response_schema(response_format), parallel=parallel, syntax=syntax)
        if response_format["type"] == "json_object":
            return compiler.json_object(syntax=syntax)
        return compiler.json_schema(response_format["json_schema"]["schema"], syntax=syntax)
    if tools and choice.kind == "none":
        return compiler.tool_calls(tools, mode="none", syntax=syntax)
    if tools and choice.kind == "auto" and constrained:
        return compiler.tool_calls(tools, mode="auto", parallel=parallel, syntax=syntax)
    return None
