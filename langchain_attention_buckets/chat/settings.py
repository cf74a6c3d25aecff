"""The chat model's settings: one table, each setting declared once.

A ``Setting`` row holds a setting's name, type, default, documentation, its check, whether a
call may override it (a call option: ``invoke(..., temperature=0.7)``) and whether it identifies
the model in LangChain's caches and traces (``_identifying_params``). Everything else comes from
the table:

- the pydantic fields of ``ChatAttentionBuckets`` (type, default, description): ``settings_model``;
- the checks at construction (a field validator per row), on assignment and per call (the same
  function, so the three accept and refuse the same values with the same words);
- the call options and their per-call merge (``options.CallOptions``);
- ``_identifying_params``.

Adding a setting is one row here plus the code that uses it. The checks are strict: a boolean
is not a number, a string is neither a number nor a boolean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationInfo, create_model, field_validator

from ..engine import DEFAULT_PREFIX_CACHE_BYTES
from ..engine.bases import MAX_BUCKETS, check_bases_spec
from ..engine.loading import check_device, check_dtype, check_model_kwargs, check_model_source
from ..engine.merge import MERGE_RULES
from .decision import check_tool_call_bias
from .errors import OptionError, shown

__all__ = [
    "ADAPTIVE",
    "ADAPTIVE_TOOL_BASES",
    "SETTINGS",
    "Setting",
    "call_settings",
    "did_you_mean",
    "settings_model",
]

ADAPTIVE = "adaptive"
"""The default ``bases``: buckets for calls with tools bound, the plain model for the rest."""
ADAPTIVE_TOOL_BASES = "paper"
"""The base set ``bases="adaptive"`` runs when tools are bound."""


@dataclass(frozen=True)
class Setting:
    """One setting of the chat model.

    Attributes:
        name: the field's name (and the call option's).
        type: the field's type annotation.
        default: the field's default.
        doc: the field's documentation (its pydantic description), stating the default.
        check: value -> the value to store; raises ValueError naming the setting, the value and
            what is allowed. None: pydantic's own check of ``type``.
        call: a call may override it (``invoke(..., name=value)``).
        identifying: part of ``_identifying_params``.
    """

    name: str
    type: Any
    default: Any
    doc: str
    check: Callable[[Any], Any] | None = None
    call: bool = False
    identifying: bool = False


# ---- checks ------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(name: str, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False, optional: bool = False, integer: bool = False, what: str = "") -> Callable[[Any], Any]:
    """A check of a number setting: finite, in a range, an integer if asked; None if ``optional``."""
    kind = "an integer" if integer else "a finite number"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    allowed = f"{kind}{' ' + ' and '.join(parts) if parts else ''}{what}{' or None' if optional else ''}"

    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        ok = _is_number(value) and math.isfinite(value) and (not integer or isinstance(value, int))
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            if isinstance(value, (bool, str)):
                kind = "a boolean" if isinstance(value, bool) else "a string"
                raise OptionError(f"{name}={shown(value)}: {kind} is not a number; allowed: {allowed}", name)
            raise OptionError(f"{name}={shown(value)} must be {allowed}", name)
        return value

    return check


def boolean(name: str) -> Callable[[Any], bool]:
    """A check of a True/False setting (no 0/1, no "yes")."""

    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise OptionError(f"{name}={shown(value)} must be True or False", name)
        return value

    return check


def choice(name: str, allowed: tuple[str, ...]) -> Callable[[Any], str]:
    """A check of a setting that is one of a few names."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise OptionError(f"{name}={shown(value)} is not allowed; use one of {', '.join(map(repr, allowed))}", name)
        return value

    return check


def optional_boolean(name: str) -> Callable[[Any], bool | None]:
    """A check of a True/False/None setting."""

    def check(value: Any) -> bool | None:
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{name}={value!r} must be True, False or None")
        return value

    return check


def check_tool_format(value: Any) -> str:
    from ..formats import names

    allowed = ("auto", *names())
    if value not in allowed:
        raise ValueError(f"tool_format={value!r} is not allowed; use one of {', '.join(map(repr, allowed))}")
    return value


def check_reasoning_format(value: Any) -> str | None:
    from ..formats import reasoning_names

    if value is not None and value not in reasoning_names():
        allowed = ", ".join(map(repr, reasoning_names()))
        raise ValueError(f"reasoning_format={value!r} is not allowed; use None or one of {allowed}")
    return value


MAX_STOP = 16
"""The most stop strings one call takes."""


def check_stop(value: Any) -> list[str] | None:
    """Stop strings: None, or a list of up to ``MAX_STOP`` non-empty strings (one string is taken as a list of one)."""
    if value is None:
        return None
    stops = [value] if isinstance(value, str) else value
    if (not isinstance(stops, (list, tuple)) or len(stops) > MAX_STOP
            or not all(isinstance(s, str) and s for s in stops)):
        raise OptionError(f"stop={shown(value)} is not allowed; give a string or a list of up to {MAX_STOP} "
                          "non-empty strings (or None)", "stop")
    return list(stops)


SEED_RANGE = (-(2**63), 2**63 - 1)
"""Seeds are 64-bit signed integers (OpenAI's ``seed``; torch's generator takes them all)."""


def check_seed(value: Any) -> int | None:
    """None or a 64-bit signed integer."""
    lo, hi = SEED_RANGE
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi):
        what = f": {'a boolean' if isinstance(value, bool) else 'a string'} is not a number" if isinstance(
            value, (bool, str)) else ""
        raise OptionError(f"seed={shown(value)}{what}; allowed: an integer from -2**63 to 2**63-1, or None", "seed")
    return value


LOGIT_BIAS_RANGE = (-100.0, 100.0)
"""A logit bias, as OpenAI bounds it (-100 bans a token, 100 all but forces it)."""


def check_logit_bias(value: Any) -> dict[int, float] | None:
    """{token id: bias}: integer ids (or their decimal strings, as JSON keys are), finite numbers.
    The ids are checked against the model's vocabulary at the call (``CallOptions.bias``)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise OptionError(f"logit_bias={shown(value)} is not allowed; give a dict of token id -> bias (or None)", "logit_bias")
    out = {}
    for token, bias in value.items():
        ok_id = (isinstance(token, int) and not isinstance(token, bool)) or (
            isinstance(token, str) and token.isascii() and token.isdigit() and len(token) <= 9)
        lo, hi = LOGIT_BIAS_RANGE
        if not ok_id or not _is_number(bias) or not lo <= bias <= hi:
            raise OptionError(f"logit_bias entry {shown(token)}: {shown(bias)} needs a token id (an integer) and a "
                              f"number from {lo:g} to {hi:g}", "logit_bias")
        out[int(token)] = float(bias)
    return out


def check_bases(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == ADAPTIVE:
        return ADAPTIVE
    if isinstance(value, bool):
        raise ValueError(f"bases={value!r}: a boolean is not a number; use a name, a number or a list of numbers")
    checked = check_bases_spec(value)
    return checked if isinstance(checked, str) else value  # a list stays the list it was given


def check_bucket_layers(value: Any) -> float:
    if not _is_number(value) or not 0 < value <= 1:
        raise ValueError(f"bucket_layers={value!r} must be a fraction of the layers, greater than 0 and at most 1")
    return float(value)


# ---- the table -----------------------------------------------------------------------

AGGREGATIONS = tuple(MERGE_RULES)

SETTINGS: tuple[Setting, ...] = (
    Setting("model", str | None, None, """Hub id, local folder or .gguf file. Default None: the embedded
    SmolLM2-135M-Instruct.""", check_model_source),
    Setting("preset", str | None, None, """Settings from a preset, applied at construction: a JSON file of
    field names and values (what ``attention-buckets tune`` writes, e.g. ``{"bases": [...], "aggregation": "max"}``;
    its "tuned" entry is not applied) or the name of a built-in one (the named configurations with bases of their
    own, e.g. "paper-max"; see ``chat.configs``). Arguments given explicitly win over the preset's values.
    Default None."""),
    Setting("bases", str | float | list[float], ADAPTIVE, """RoPE bases, one bucket each. "adaptive" (default):
    chosen per call — the "paper" set when tools are bound (tool selection, where buckets were measured to help),
    the model's own base alone for every other call (free text, RAG, QA, JSON answers: where the paper set was
    measured to hurt; docs/results.md); ``response_metadata["bucket_choice"]`` says which. "paper": the reference
    tool-use set as ratios of the model's own base (x1, 1.75, 1.8, 1.9, 2.0, 2.5) for every call; "near": x1,
    0.8, 0.9, 1.1, 1.25 of it; "narrow": x1, 0.9, 1.1; "auto": the peak/trough cover search for this model; a
    list of 1-32 positive numbers; or one number (one bucket: the plain model when it is the model's own base).""",
            check_bases, identifying=True),
    Setting("n_buckets", int | None, None, f"""Number of bases the "auto" search picks (1-{MAX_BUCKETS}).
    Default None: 6.""", number("n_buckets", low=1, high=MAX_BUCKETS, integer=True, optional=True), identifying=True),
    Setting("aggregation", Literal[AGGREGATIONS], "confidence", """How the buckets' next-token logits merge:
    "confidence" (default, the reference rule), "mean" (mean of log-probabilities), "max" (the most confident
    bucket), or a rule anchored on the trained row (the bucket with the model's own base, which must be in the
    set; it runs first): "anchored" (the other buckets re-rank only inside the trained row's top-p 0.9 nucleus),
    "anchored-unsure" (the trained row alone where its top probability is >= 0.5, the mean rule below) or
    "weighted" (log-linear pool, half the weight on the trained row).""",
            choice("aggregation", AGGREGATIONS), call=True, identifying=True),
    Setting("bucket_layers", float, 1.0, """The fraction of the layers, from the bottom, in which each bucket
    runs its own base; the layers above run every bucket at the model's own base. 1.0 (default): all layers;
    0.5: the lower half (rounded to whole layers, at least one).""", check_bucket_layers, identifying=True),
    Setting("strategy", Literal["buckets", "ms-poe"], "buckets", """"buckets" (default): Attention Buckets, one
    row per base in ``bases``. "ms-poe": Ms-PoE (Zhang et al. 2024), one pass at the model's own base in which
    each key/value head reads the positions divided by its own ratio (1.2 up to 1.8, from the third layer on);
    ``bases`` must then be left unset or be one number.""", choice("strategy", ("buckets", "ms-poe")), identifying=True),
    Setting("device", str, "auto", """"auto" (default: CUDA when available, else CPU), "cpu", "cuda" or
    "cuda:N".""", check_device),
    Setting("dtype", str, "auto", """"auto" (default: bfloat16 on CUDA, float16 where bf16 is missing; on CPU
    bfloat16 where the CPU computes it natively (AVX512-BF16 or AMX), else float32; see docs/engine.md),
    "float32", "bfloat16" or "float16".""", check_dtype),
    Setting("temperature", float, 0.0, """Sampling temperature from 0 to 2 (OpenAI's range). Default 0: greedy
    decoding.""", number("temperature", low=0, high=2), call=True, identifying=True),
    Setting("max_tokens", int | None, 512, """Most new tokens per call (>= 1). Default 512. None: up to the
    context window.""", number("max_tokens", low=1, integer=True, optional=True), call=True, identifying=True),
    Setting("top_p", float | None, None, """Nucleus sampling mass in (0, 1]. Default None: off.""",
            number("top_p", low=0, high=1, low_open=True, optional=True), call=True, identifying=True),
    Setting("top_k", int | None, None, """Sample among the k most likely tokens (>= 1). Default None: off.""",
            number("top_k", low=1, integer=True, optional=True), call=True, identifying=True),
    Setting("stop", list[str] | None, None, """Stop strings (up to 16, non-empty; one string is a list of one);
    the text ends before the first one generated. Default None.""", check_stop, call=True),
    Setting("seed", int | None, None, """Seed for sampling (temperature > 0); calls with the same seed give the
    same text. Default None.""", check_seed, call=True, identifying=True),
    Setting("repetition_penalty", float | None, None, """Penalty > 0 for tokens already generated in this answer
    (1 = none; 1.1-1.3 curbs the loops small models fall into). Prompt tokens are not penalised, so values can
    still be copied from it. Default None: off.""", number("repetition_penalty", low=0, low_open=True, optional=True),
            call=True),
    Setting("parallel_tool_calls", bool, False, """Default for bind_tools: allow several tool calls in one
    answer. Default False: one call per answer, then the answer ends (small models tend to repeat a call).""",
            boolean("parallel_tool_calls"), call=True),
    Setting("tool_call_bias", Literal["auto"] | float | tuple[float, float] | None, "auto", """How readily
    ``tool_choice="auto"`` opens a tool call: a logit bias on the call opener at the first token of the answer
    (a negative one: until a call opens), as (before any tool result for the latest request, after results came
    back); one number for both. Once the opener starts, the call is made (the grammar constrains it). "auto"
    (default): calibrated for the embedded model (call when a request needs a tool, answer once the results are
    in; docs/chat-model.md has the measured accuracy), 0 for other models (calibrate yours with
    ``attention-buckets bench decisions``). None or 0: the model decides alone.""", check_tool_call_bias, call=True),
    Setting("logit_bias", dict[int, float] | None, None, """Added to the merged logits of the given token ids
    before sampling (and before the grammar mask). Default None.""", check_logit_bias, call=True),
    Setting("loop_detection", bool, True, """End a free-text answer that loops: once its text (whitespace runs
    read as one space) ends in 3+ copies of one block (holding a letter or digit) spanning ``loop_min_chars``
    characters, generation stops, the text keeps what was streamed, ``finish_reason`` is "stop" and
    ``response_metadata["stopped_by"]`` is "repetition". Tool-call arguments and JSON answers are never cut.
    Default True.""", boolean("loop_detection"), call=True),
    Setting("loop_min_chars", int, 48, """The shortest repeated span (characters) that counts as a loop (>= 1).
    Default 48.""", number("loop_min_chars", low=1, integer=True, what=" (characters)"), call=True),
    Setting("tool_format", str, "auto", """How the model writes tool calls: "auto" (default) detects the
    format from the chat template's text (its markers: ``<tool_call>``, ``<|python_tag|>`` / ``ipython``,
    ``[TOOL_CALLS]``, DeepSeek's call tokens, ``<|tool_call|>``), and where the template renders no tools (the
    embedded model) uses the package's own Hermes format; or a name from ``formats.names()`` ("hermes", "qwen3",
    "llama3", "mistral", "deepseek-r1", "granite"). Rendering, the grammar of forced and automatic calls and the parser all follow
    it (docs/chat-model.md, "Tool-call formats").""", check_tool_format, identifying=True),
    Setting("reasoning_format", str | None, None, """How the model's reasoning is delimited: None (default)
    as its tool format says (``<think>`` ... ``</think>`` for qwen3 and deepseek-r1), "none" (no reasoning
    read), "think", or a format's name. Reasoning goes to ``additional_kwargs["reasoning_content"]`` (a
    ``reasoning`` block in ``content_blocks``), never to ``content``.""", check_reasoning_format, identifying=True),
    Setting("reasoning", bool | None, None, """Switch the model's reasoning on (True) or off (False) where its
    chat template supports it (``enable_thinking``, Qwen3). Default None: the template's default.""",
            optional_boolean("reasoning"), call=True, identifying=True),
    Setting("streaming", bool, False, """Whether ``invoke`` reports each token to callbacks
    (``on_llm_new_token``) as it is generated. Default False: ``invoke`` calls back once, at the end; ``stream``
    and ``astream_events`` stream either way. Set explicitly to False, LangChain turns streaming off altogether:
    ``stream`` then yields the whole message as one chunk.""", boolean("streaming")),
    Setting("constrained_decoding", bool, True, """Guarantee the shape of forced tool calls and structured
    output with a grammar (xgrammar), and constrain a call in "auto" mode once it opens. Default True.""",
            boolean("constrained_decoding")),
    Setting("speculative_tokens", int, 8, """Greedy decoding checks up to this many drafted tokens per forward
    pass (drafts: what followed the same prompt before, or text copied from the context); the output is
    unchanged. 0: off. Default 8.""", number("speculative_tokens", low=0, integer=True)),
    Setting("prefix_cache", bool, True, """Reuse the keys/values of a prompt prefix seen in an earlier call.
    Default True.""", boolean("prefix_cache")),
    Setting("deterministic", bool, False, """Same greedy tokens (and seeded samples) bit for bit whether the
    prompt's prefix came from the prefix cache or not, alone or with other calls in flight (threads or asyncio
    tasks), whatever ``speculative_tokens`` is. Costs speed: each call runs alone (no batching with other calls),
    is prefilled in 64-token blocks and reuses only whole cached blocks, and decodes one token per pass (see
    docs/performance.md). Default False: outputs then equal a lone uncached call's up to floating-point rounding,
    so a greedy pick can flip on a near-tie.""", boolean("deterministic")),
    Setting("prefix_cache_bytes", int, DEFAULT_PREFIX_CACHE_BYTES, """Memory bound of the prefix cache, in bytes
    (shared by all users of the model). Default 2 GiB.""", number("prefix_cache_bytes", low=0, integer=True)),
    Setting("trust_remote_code", bool, False, """Allow a hub model's own Python code to run. Default False.""",
            boolean("trust_remote_code")),
    Setting("model_kwargs", dict[str, Any] | None, None, """Extra keyword arguments for ``from_pretrained``
    (e.g. ``revision``, ``quantization_config``, ``attn_implementation``, ``device_map``), passed as they are;
    part of what identifies the shared weights. ``dtype``, ``device`` and ``trust_remote_code`` have their own
    fields (``dtype`` / ``torch_dtype`` here are a ValueError naming the ``dtype=`` value to use instead). With a
    ``device_map`` leave ``device="auto"``: accelerate places the layers (docs/engine.md, "Models larger than one
    device"). Default None.""", check_model_kwargs),
)
"""Every setting of ``ChatAttentionBuckets``, in the order of its fields."""


def _doc(text: str) -> str:
    return " ".join(text.split())


def settings_model(name: str, base: type, table: tuple[Setting, ...], module: str) -> type:
    """A pydantic model class with one field per setting of ``table`` (type, default, description),
    derived from ``base``; each field given is checked by its row's check before pydantic's own
    (an error is located at the field, as pydantic's are)."""
    fields = {s.name: (s.type, Field(default=s.default, description=_doc(s.doc))) for s in table}
    checks = {s.name: s.check for s in table if s.check is not None}

    def check(cls, value: Any, info: ValidationInfo) -> Any:
        return checks[info.field_name](value)

    validators = {f"_check_{name.lower()}_settings": field_validator(*checks, mode="before")(check)} if checks else {}
    return create_model(name, __base__=base, __module__=module, __validators__=validators, **fields)


def call_settings(table: tuple[Setting, ...]) -> dict[str, Setting]:
    """The settings a call may override, by name."""
    return {s.name: s for s in table if s.call}


def did_you_mean(name: str, allowed) -> str:
    """" (did you mean 'x'?)" for the allowed name closest to ``name``, or ""."""
    import difflib

    close = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.6)
    if not close:  # max_new_tokens -> max_tokens: the shared words count more than the letters
        words = set(name.split("_"))
        scored = [(len(words & set(a.split("_"))), a) for a in allowed if "_" in a or a in words]
        best = max(scored, default=(0, ""))
        close = [best[1]] if best[0] else []
    return f" (did you mean {close[0]!r}?)" if close else ""
