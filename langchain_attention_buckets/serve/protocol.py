"""The OpenAI chat-completions request, checked, and the errors the server answers with.

Owns ``parse_body`` (the body's JSON: not JSON, too deep, a lone surrogate escape, each a 400
naming where), ``ChatCompletionRequest`` (the body of ``POST /v1/chat/completions``: OpenAI's
fields this server reads, plus the bucket settings as extra fields, every one checked strictly:
no boolean or string taken as a number, no string or number taken as a boolean), ``APIError``
(an error with its HTTP status and OpenAI's error shape) and ``validation_error`` (pydantic's
errors as one 400 whose ``param`` names the field as the client wrote it, ``tools[0].function.name``).

The sampling and bucket fields are checked by the chat model's own checks (their rows in
``chat.settings``; tools and response formats by ``chat.options`` and ``chat.grammar_select``), so
the server and the library accept and refuse the same values with the same words. An error message names the bad value and what
is allowed; it never repeats the request's messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from ..chat.errors import OptionError, kind, shown
from ..chat.grammar_select import check_response_format
from ..chat.options import check_tool_shapes
from ..chat.settings import SETTINGS, boolean, number

MAX_DEPTH = 64
"""The deepest nesting of arrays and objects a request body may have (tool schemas included)."""


class APIError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind = kind or _KINDS.get(status, "server_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    503: "overloaded_error",
}


# ---- the body's JSON ------------------------------------------------------------------------


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; a 400 for anything else, naming where it goes wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, f"the request body is not UTF-8 (byte {exc.start})", code="invalid_json") from None
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                       code="invalid_json") from None
    except RecursionError:
        raise APIError(400, f"the request body nests arrays and objects deeper than {MAX_DEPTH} levels",
                       code="invalid_json") from None
    except ValueError as exc:  # NaN / Infinity
        raise APIError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, f"the request body must be a JSON object, not {kind(body)}", code="invalid_json")
    _check_strings(body)
    return body


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number; send a finite number")


def _check_strings(body: dict) -> None:
    """No nesting deeper than ``MAX_DEPTH``; no string (or key) holding a lone surrogate escape
    such as "\\ud800", which is not Unicode text and cannot be tokenized (named by its path)."""
    stack: list[tuple[Any, str, int]] = [(body, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise APIError(400, f"{path or 'the body'} nests arrays and objects deeper than {MAX_DEPTH} levels",
                           param=path or None, code="invalid_json")
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{path}.{key}" if path else key
                _check_text(key, where, " (a key)")
                stack.append((value, where, depth + 1))
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]", depth + 1) for i, value in enumerate(node))
        elif isinstance(node, str):
            _check_text(node, path, "")


def _check_text(text: str, path: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        escape = "".join(f"\\u{ord(c):04x}" for c in text[err.start:err.end])
        raise APIError(
            400, f"{path}{what} holds the JSON escape {escape!r} at character {err.start}: a lone surrogate, "
            "which is not Unicode text; send the whole pair (e.g. \\ud83d\\ude00) or the character itself",
            param=path, code="invalid_unicode") from None


# ---- field checks ---------------------------------------------------------------------------
# Each raises OptionError (a ValueError) naming the field; ``validation_error`` reads its param.


def _checked(check: Callable[[Any], Any]):
    """A field checked by ``check`` before pydantic sees it (None passes: the field is optional)."""
    return BeforeValidator(lambda value: value if value is None else check(value))


_ROWS = {s.name: s for s in SETTINGS}


def _setting(name: str, field: str | None = None) -> Callable[[Any], Any]:
    """The chat model's own check of setting ``name`` (its row in ``chat.settings``), for the request
    field ``field`` (default: the same name): the same values pass, with the same words."""
    check, field = _ROWS[name].check, field or name

    def checked(value):
        try:
            check(value)
        except ValueError as exc:
            message = str(exc) if field == name else str(exc).replace(f"{name}=", f"{field}=", 1)
            raise OptionError(message, field) from None
        return value
    return checked


def _library(name: str, check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A chat-model check whose ValueError becomes an OptionError naming ``name``."""
    def checked(value):
        try:
            check(value)
        except OptionError:
            raise
        except ValueError as exc:
            raise OptionError(str(exc), name) from None
        return value
    return checked


def _text(name: str, limit: int = 512) -> Callable[[Any], Any]:
    def check(value):
        if not isinstance(value, str) or len(value) > limit:
            raise OptionError(f"{name}={shown(value)} must be a string of at most {limit} characters, not {kind(value)}",
                              name)
        return value
    return check


def _neutral(name: str, neutral: Any, check: Callable[[Any], Any], instead: str) -> Callable[[Any], Any]:
    """An OpenAI field this server takes only at its neutral value (answering without it would
    change what the caller asked for)."""
    check = _library(name, check)

    def checked(value):
        check(value)
        if value != neutral:
            raise OptionError(f"{name}={shown(value)} is not supported by this server; leave it out or send "
                              f"{json.dumps(neutral)}{instead}", name)
        return value
    return checked


def _messages(value):
    if not isinstance(value, list) or not value:
        got = "an empty array" if value == [] else kind(value)
        raise OptionError(f"messages must be a non-empty array of message objects, not {got}", "messages")
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise OptionError(f"messages[{i}] must be a message object ({{'role': ..., 'content': ...}}), not "
                              f"{kind(message)}", f"messages[{i}]")
    return value


def _tool_choice(value):
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            raise OptionError(f"tool_choice={shown(value)} is not allowed; use 'none', 'auto', 'required' or "
                              "{'type': 'function', 'function': {'name': ...}}", "tool_choice")
        return value
    fn = value.get("function") if isinstance(value, dict) else None
    if not (isinstance(value, dict) and value.get("type") == "function" and set(value) == {"type", "function"}
            and isinstance(fn, dict) and set(fn) == {"name"} and isinstance(fn["name"], str)):
        raise OptionError(f"tool_choice={shown(value)} is not allowed; use 'none', 'auto', 'required' or "
                          "{'type': 'function', 'function': {'name': ...}}", "tool_choice")
    return value


def _logit_bias(value):
    if isinstance(value, dict) and len(value) > 300:
        raise OptionError(f"logit_bias has {len(value)} entries; at most 300", "logit_bias")
    return _setting("logit_bias")(value)


def _metadata(value):
    if not isinstance(value, dict) or len(value) > 16:
        raise OptionError(f"metadata must be an object of at most 16 string values, not {kind(value)}", "metadata")
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str) or len(item) > 512:
            raise OptionError(f"metadata[{shown(key)}] must be a string of at most 512 characters (keys: at most 64)",
                              "metadata")
    return value


def _stream_options(value):
    if not isinstance(value, dict) or set(value) - {"include_usage"}:
        raise OptionError(f"stream_options must be {{'include_usage': true or false}}, not {shown(value)}",
                          "stream_options")
    if "include_usage" in value:
        _library("stream_options.include_usage", boolean("stream_options.include_usage"))(value["include_usage"])
    return value


def _flag(name: str) -> Callable[[Any], Any]:
    return _library(name, boolean(name))


_PENALTY = "; repetition_penalty is this server's penalty"


def _template_kwargs(value):
    """vLLM's ``chat_template_kwargs``: only ``enable_thinking`` (a boolean) is read."""
    if not isinstance(value, dict):
        raise OptionError(f"chat_template_kwargs must be an object, not {kind(value)}", "chat_template_kwargs")
    unknown = sorted(set(value) - {"enable_thinking"})
    if unknown:
        raise OptionError(f"chat_template_kwargs {unknown[0]!r} is not read; only 'enable_thinking' is",
                          f"chat_template_kwargs.{unknown[0]}")
    if "enable_thinking" in value:
        _flag("chat_template_kwargs.enable_thinking")(value["enable_thinking"])
    return value


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``.

    OpenAI's fields keep OpenAI's meaning. Differences, each said in docs/serving.md:
    ``n`` must be 1; ``logprobs``, ``presence_penalty`` and ``frequency_penalty`` only take their
    neutral values; ``parallel_tool_calls`` defaults to the served model's setting (one call per
    answer unless the server was started otherwise). Extra fields (this package's settings):
    ``bases``, ``n_buckets``, ``aggregation``, ``top_k``, ``repetition_penalty``,
    ``tool_call_bias``, ``loop_detection``, ``deterministic``, ``reasoning`` (switch thinking on or
    off where the template supports it; vLLM's ``chat_template_kwargs: {"enable_thinking": ...}``
    is read the same way). Unknown fields are a 400. Types are strict: ``max_tokens: true`` or
    ``"8"``, ``stream: "yes"`` are 400s.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    messages: Annotated[list[dict[str, Any]], BeforeValidator(_messages)]
    model: Annotated[str | None, _checked(_text("model", 256))] = None
    tools: Annotated[list[dict[str, Any]] | None, _checked(_library("tools", check_tool_shapes))] = None
    tool_choice: Annotated[Literal["none", "auto", "required"] | dict[str, Any] | None, _checked(_tool_choice)] = None
    parallel_tool_calls: Annotated[bool | None, _checked(_setting("parallel_tool_calls"))] = None
    response_format: Annotated[dict[str, Any] | None, _checked(_library("response_format", check_response_format))] = None
    temperature: Annotated[float | None, _checked(_setting("temperature"))] = None
    top_p: Annotated[float | None, _checked(_setting("top_p"))] = None
    max_tokens: Annotated[int | None, _checked(_setting("max_tokens"))] = None
    max_completion_tokens: Annotated[int | None, _checked(_setting("max_tokens", "max_completion_tokens"))] = None
    stop: Annotated[str | list[str] | None, _checked(_setting("stop"))] = None
    seed: Annotated[int | None, _checked(_setting("seed"))] = None
    stream: Annotated[bool | None, _checked(_flag("stream"))] = None
    stream_options: Annotated[dict[str, bool] | None, _checked(_stream_options)] = None
    user: Annotated[str | None, _checked(_text("user"))] = None
    metadata: Annotated[dict[str, str] | None, _checked(_metadata)] = None
    logit_bias: Annotated[dict[str, float] | None, _checked(_logit_bias)] = None
    n: Annotated[int | None, _checked(_neutral("n", 1, number("n", low=1, high=128, integer=True),
                                               " (one choice per request; send several requests)"))] = None
    presence_penalty: Annotated[float | None, _checked(_neutral(
        "presence_penalty", 0, number("presence_penalty", low=-2, high=2), _PENALTY))] = None
    frequency_penalty: Annotated[float | None, _checked(_neutral(
        "frequency_penalty", 0, number("frequency_penalty", low=-2, high=2), _PENALTY))] = None
    logprobs: Annotated[bool | None, _checked(_neutral("logprobs", False, boolean("logprobs"),
                                                       " (this server returns no log-probabilities)"))] = None
    top_logprobs: Annotated[int | None, _checked(_neutral("top_logprobs", 0, number("top_logprobs", low=0, high=20, integer=True),
                                                          " (this server returns no log-probabilities)"))] = None
    # this package's settings
    bases: Annotated[str | float | list[float] | None, _checked(_setting("bases"))] = None
    n_buckets: Annotated[int | None, _checked(_setting("n_buckets"))] = None
    aggregation: Annotated[str | None, _checked(_setting("aggregation"))] = None
    top_k: Annotated[int | None, _checked(_setting("top_k"))] = None
    repetition_penalty: Annotated[float | None, _checked(_setting("repetition_penalty"))] = None
    tool_call_bias: Annotated[Literal["auto"] | float | list[float] | None, _checked(_setting("tool_call_bias"))] = "auto"
    loop_detection: Annotated[bool | None, _checked(_setting("loop_detection"))] = None
    deterministic: Annotated[bool | None, _checked(_setting("deterministic"))] = None
    reasoning: Annotated[bool | None, _checked(_setting("reasoning"))] = None
    chat_template_kwargs: Annotated[dict[str, bool] | None, _checked(_template_kwargs)] = None

    @model_validator(mode="after")
    def _together(self):
        if self.max_tokens and self.max_completion_tokens and self.max_tokens != self.max_completion_tokens:
            raise OptionError(f"max_tokens={self.max_tokens} and max_completion_tokens={self.max_completion_tokens} "
                              "differ; give one (max_completion_tokens is OpenAI's newer name)", "max_completion_tokens")
        if self.stream_options is not None and not self.stream:
            raise OptionError("stream_options is only allowed with stream=true", "stream_options")
        if not self.tools and self.tool_choice not in (None, "none", "auto"):
            raise OptionError(f"tool_choice={shown(self.tool_choice)} needs tools; none were sent", "tool_choice")
        return self

    @property
    def completion_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def call_options(self) -> dict[str, Any]:
        """The chat model's call options this request sets (unset fields keep the served model's)."""
        out: dict[str, Any] = {}
        for name in ("temperature", "top_p", "seed", "top_k", "repetition_penalty", "aggregation",
                     "response_format", "loop_detection"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.response_format is not None and self.response_format.get("type") == "text":
            del out["response_format"]
        if self.completion_limit is not None:
            out["max_tokens"] = self.completion_limit
        thinking = (self.chat_template_kwargs or {}).get("enable_thinking")
        if self.reasoning is not None or thinking is not None:
            out["reasoning"] = self.reasoning if self.reasoning is not None else thinking
        if self.stop:
            out["stop"] = [self.stop] if isinstance(self.stop, str) else list(self.stop)  # one string: one stop
        if self.logit_bias:
            out["logit_bias"] = {int(k): float(v) for k, v in self.logit_bias.items()}
        if "tool_call_bias" in self.model_fields_set:
            bias = self.tool_call_bias
            out["tool_call_bias"] = tuple(bias) if isinstance(bias, list) else bias
        return out

    def tool_binding(self) -> dict[str, Any] | None:
        """``bind_tools`` arguments (tools, tool_choice, parallel_tool_calls), or None without tools."""
        if not self.tools:
            return None
        return {"tools": self.tools, "tool_choice": self.tool_choice, "parallel_tool_calls": self.parallel_tool_calls}

    def model_overrides(self) -> dict[str, Any]:
        """Settings that need a chat model of their own (bases, n_buckets, deterministic)."""
        return {k: getattr(self, k) for k in ("bases", "n_buckets", "deterministic") if getattr(self, k) is not None}


# ---- errors -----------------------------------------------------------------------------------

_TYPES = {
    "bool_type": "true or false", "int_type": "an integer", "float_type": "a number", "string_type": "a string",
    "list_type": "an array", "dict_type": "an object", "model_type": "an object", "literal_error": "one of the values",
}


def param_path(loc: tuple) -> str | None:
    """pydantic's location as the client wrote it: ("tools", 0, "function") -> tools[0].function.
    Union members pydantic adds ("str", "list[str]", "function-after[...]") are dropped."""
    out = ""
    for part in loc:
        if part == "body":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif not any(c in part for c in "[]()-,'") and part not in ("str", "int", "float", "bool", "list", "dict", "none"):
            out += f".{part}" if out else part
    return out or None


def validation_error(exc: ValidationError | Any) -> APIError:
    """pydantic's validation errors as one 400 naming the first bad field; never the request's
    messages (a message's value is described by its type only)."""
    errors = exc.errors()
    if not errors:
        return APIError(400, "the request is not valid")
    first = errors[0]
    param = param_path(tuple(first.get("loc", ())))
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, OptionError) and cause.param:
        return APIError(400, str(cause), param=cause.param)
    if isinstance(cause, ValueError):
        return APIError(400, str(cause), param=param)
    kind_ = first.get("type")
    if kind_ == "json_invalid":
        return APIError(400, f"the request body is not valid JSON: {first.get('msg')}", code="invalid_json")
    if kind_ == "extra_forbidden":
        return APIError(400, f"unrecognized request argument supplied: {param}; see docs/serving.md for the fields",
                        param=param)
    if kind_ == "missing":
        return APIError(400, f"{param} is required", param=param)
    value = first.get("input")
    given = kind(value) if (param or "").startswith("messages") else shown(value)
    want = _TYPES.get(kind_ or "", "")
    message = f"{param}={given} must be {want}" if want else f"{param}: {first.get('msg')} (got {given})"
    return APIError(400, message, param=param)
