"""The OpenAI chat-completions request, checked, and the errors the server answers with.

Owns ``ChatCompletionRequest`` (the body of ``POST /v1/chat/completions``: OpenAI's fields this
server reads, plus the bucket settings as extra fields), ``APIError`` (an error with its HTTP
status and OpenAI's error shape) and ``validation_error`` (pydantic's errors as one 400 naming
the field). Imports pydantic only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Fields OpenAI defines that this server refuses unless they have their neutral value: answering
# without them would silently change what the caller asked for.
_NEUTRAL = {"n": 1, "presence_penalty": 0, "frequency_penalty": 0, "logprobs": False, "top_logprobs": None}


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
    413: "invalid_request_error",
    503: "overloaded_error",
}


def validation_error(exc: ValidationError | Any) -> APIError:
    """pydantic's (or FastAPI's) validation errors as one 400 naming the first bad field."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return APIError(400, f"the request body is not valid JSON: {first.get('msg')}", code="invalid_json")
    if first.get("type") == "extra_forbidden":
        return APIError(400, f"unrecognized request argument supplied: {param}; see GET /docs for the fields", param=param)
    where = f"{param}: " if param else ""
    return APIError(400, f"{where}{first.get('msg')} (got {first.get('input')!r})"[:2000], param=param)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``.

    OpenAI's fields keep OpenAI's meaning. Differences, each said in docs/serving.md:
    ``n`` must be 1; ``logprobs``, ``presence_penalty`` and ``frequency_penalty`` only take their
    neutral values; ``parallel_tool_calls`` defaults to the served model's setting (one call per
    answer unless the server was started otherwise). Extra fields (this package's settings):
    ``bases``, ``n_buckets``, ``aggregation``, ``top_k``, ``repetition_penalty``,
    ``tool_call_bias``, ``loop_detection``, ``deterministic``, ``reasoning`` (switch thinking on or
    off where the template supports it; vLLM's ``chat_template_kwargs: {"enable_thinking": ...}``
    is read the same way). Unknown fields are a 400.
    """

    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]] = Field(min_length=1)
    model: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    logit_bias: dict[str, float] | None = None
    n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    # this package's settings
    bases: str | float | list[float] | None = None
    n_buckets: int | None = None
    aggregation: str | None = None
    top_k: int | None = Field(default=None, ge=1)
    repetition_penalty: float | None = Field(default=None, gt=0)
    tool_call_bias: Literal["auto"] | float | list[float] | None = "auto"
    loop_detection: bool | None = None
    deterministic: bool | None = None
    reasoning: bool | None = None
    chat_template_kwargs: dict[str, bool] | None = None

    @field_validator("chat_template_kwargs")
    @classmethod
    def _template_kwargs(cls, value):
        unknown = sorted(set(value or {}) - {"enable_thinking"})
        if unknown:
            raise ValueError(f"chat_template_kwargs {unknown[0]!r} is not read; only 'enable_thinking' is")
        return value

    @field_validator("stop")
    @classmethod
    def _stop(cls, value):
        stops = [value] if isinstance(value, str) else value
        if stops is not None and (len(stops) > 16 or any(not s for s in stops)):
            raise ValueError("stop takes at most 16 non-empty strings")
        return stops

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias(cls, value):
        for token, bias in (value or {}).items():
            if not token.strip().isdigit() or not -100 <= bias <= 100:
                raise ValueError(f"logit_bias entry {token!r}: {bias!r} needs a token id and a bias in [-100, 100]")
        return value

    @model_validator(mode="after")
    def _neutral(self):
        for name, neutral in _NEUTRAL.items():
            value = getattr(self, name)
            if value is not None and value != neutral:
                raise ValueError(f"{name}={value!r} is not supported by this server; leave it out or use {neutral!r}")
        if self.max_tokens and self.max_completion_tokens and self.max_tokens != self.max_completion_tokens:
            raise ValueError(
                f"max_tokens={self.max_tokens} and max_completion_tokens={self.max_completion_tokens} differ; give one"
            )
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream=true")
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
            out["stop"] = list(self.stop)
        if self.logit_bias:
            out["logit_bias"] = {int(k): float(v) for k, v in self.logit_bias.items()}
        if "tool_call_bias" in self.model_fields_set:
            bias = self.tool_call_bias
            out["tool_call_bias"] = tuple(bias) if isinstance(bias, list) else bias
        if not self.tools and self.tool_choice not in (None, "none", "auto"):
            raise APIError(400, f"tool_choice={self.tool_choice!r} needs tools", param="tool_choice")
        return out

    def tool_binding(self) -> dict[str, Any] | None:
        """``bind_tools`` arguments (tools, tool_choice, parallel_tool_calls), or None without tools."""
        if not self.tools:
            return None
        return {"tools": self.tools, "tool_choice": self.tool_choice, "parallel_tool_calls": self.parallel_tool_calls}

    def model_overrides(self) -> dict[str, Any]:
        """Settings that need a chat model of their own (bases, n_buckets, deterministic)."""
        return {k: getattr(self, k) for k in ("bases", "n_buckets", "deterministic") if getattr(self, k) is not None}
