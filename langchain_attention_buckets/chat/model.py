"""ChatAttentionBuckets: a LangChain chat model over the bucketed engine.

Flow, by function name:

    _stream / _astream
      _prepare:   fields + call options -> CallOptions (options.py; every check)
                  LangChain messages -> chat dicts (messages.to_chat_dicts)
                  -> prompt text (render.render_call, with every instruction) -> token ids
                  -> grammar (grammar_select.call_constraint: forced tool choice / structured output)
                  -> engine.Request
      engine.submit -> TokenEvents (text of each token)
      _Call.chunk: text -> parse.ToolCallParser -> AIMessageChunk(content | tool_call_chunks:
                  a call's name first, then its argument text as it is generated); the content
                  through guard.AnswerGuard, which ends it at a loop or a fallback tool marker
                  (then the engine's request is cancelled)
      last chunk: usage_metadata, response_metadata (and each invalid call's reason),
                  chunk_position="last"
    _generate / _agenerate collect the stream (_collect: each invalid call gets its error).

Weights load lazily on the first call and are shared by every instance with the
same model, device, dtype and trust_remote_code.

This module is the LangChain edge: pydantic fields, bind_tools,
with_structured_output, streaming, and the chunks of one call (``_Call``). What
a call does lives beside it: ``options``, ``messages``, ``render``,
``tool_choice``, ``grammar_select``, then the ``engine``.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputKeyToolsParser, JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.tracers._streaming import _StreamingCallbackHandler
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.json import parse_json_markdown
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, PrivateAttr, field_validator, model_validator

from ..engine import DEFAULT_PREFIX_CACHE_BYTES, Engine, Request, Result, TokenEvent, get_engine
from ..engine.bases import MAX_BUCKETS, anchor_first, check_bases_spec, resolve_bases
from ..engine.headscale import model_mspoe_scales
from ..engine.loading import (
    EMBEDDED_MODEL_NAME,
    LoadedModel,
    ModelSpec,
    check_device,
    check_dtype,
    check_model_kwargs,
    check_model_source,
    check_placement,
    context_window,
    load_model,
    load_tokenizer,
)
from ..engine.merge import ANCHORED_RULES
from ..text.guard import AnswerGuard, answer_guard
from ..text.messages import to_chat_dicts
from ..text.parse import ArgsDelta, CallStart, ParsedCall, TextPiece, ToolCallParser
from ..text.render import render_call
from ..text.tool_choice import Choice, ToolChoice, check_tool_name, normalize_tool_choice
from .decision import DecisionConstraint, check_tool_call_bias, conversation_state, opener_ids, resolve_decision
from .grammar_select import call_constraint
from .options import CallOptions, check_not_bool, nearest

__all__ = ["ChatAttentionBuckets", "Choice", "ToolChoice", "normalize_tool_choice", "to_chat_dicts"]

# Fields that CallOptions.from_fields reads: setting one after construction rebuilds the defaults.
ADAPTIVE = "adaptive"
"""The default ``bases``: buckets for calls with tools bound, the plain model for the rest."""
ADAPTIVE_TOOL_BASES = "paper"
"""The base set ``bases="adaptive"`` runs when tools are bound."""

_OPTION_FIELDS = frozenset(
    {"temperature", "top_k", "top_p", "seed", "repetition_penalty", "max_tokens", "stop", "aggregation"}
    | {"logit_bias", "speculative_tokens", "parallel_tool_calls", "tool_call_bias", "loop_detection", "loop_min_chars"}
)
# Numeric fields: a boolean given for one is refused (pydantic would make True 1 or 1.0).
_NUMBER_FIELDS = (
    "bases", "n_buckets", "temperature", "max_tokens", "top_p", "top_k", "seed", "repetition_penalty",
    "speculative_tokens", "prefix_cache_bytes", "loop_min_chars",
)
# LangChain's standard parameters for remote models (init_chat_model and the standard tests pass
# them to every provider): accepted so that provider-agnostic code runs, ignored with a warning.
_REMOTE_ONLY = ("timeout", "max_retries", "api_key", "base_url")
# A tool name as OpenAI's API accepts it (the name is written into the prompt and the grammar).
class ChatAttentionBuckets(BaseChatModel):
    """A local Hugging Face model with Attention Buckets, as a LangChain chat model.

    Example:
        .. code-block:: python

            from langchain_attention_buckets import ChatAttentionBuckets

            llm = ChatAttentionBuckets()  # the embedded SmolLM2-135M-Instruct
            llm.invoke("What is the capital of France?")
    """

    model_config = ConfigDict(populate_by_name=True, protected_namespaces=())

    model: str | None = None
    """Hub id, local folder or .gguf file. Default None: the embedded SmolLM2-135M-Instruct."""

    preset: str | None = None
    """Settings from a preset, applied at construction: a JSON file of field names and values (what
    ``attention-buckets tune`` writes, e.g. ``{"bases": [...], "aggregation": "max"}``; its "tuned"
    entry is not applied) or the name of a built-in one (the accuracy bench's configurations with
    bases of their own, e.g. "paper-max"; see ``presets``). Arguments given explicitly win over the
    preset's values. Default None."""

    bases: str | float | list[float] = "adaptive"
    """RoPE bases, one bucket each. "adaptive" (default): chosen per call — the "paper" set when
    tools are bound (tool selection, where buckets were measured to help), the model's own base
    alone for every other call (free text, RAG, QA, JSON answers: where the paper set was
    measured to hurt; docs/results.md); ``response_metadata["bucket_choice"]`` says which.
    "paper": the reference tool-use set as ratios of the model's own base (x1, 1.75, 1.8, 1.9,
    2.0, 2.5) for every call; "near": x1, 0.8, 0.9, 1.1, 1.25 of it; "narrow": x1, 0.9, 1.1;
    "auto": the peak/trough cover search for this model; a list of 1-32 positive numbers; or one
    number (one bucket: the plain model when it is the model's own base)."""

    n_buckets: int | None = None
    """Number of bases the "auto" search picks (1-32). Default None: 6."""

    aggregation: Literal["confidence", "mean", "max", "anchored", "anchored-unsure", "weighted"] = "confidence"
    """How the buckets' next-token logits merge: "confidence" (default, the reference rule),
    "mean" (mean of log-probabilities), "max" (the most confident bucket), or a rule anchored on
    the trained row (the bucket with the model's own base, which must be in the set; it runs
    first): "anchored" (the other buckets re-rank only inside the trained row's top-p 0.9
    nucleus), "anchored-unsure" (the trained row alone where its top probability is >= 0.5, the
    mean rule below) or "weighted" (log-linear pool, half the weight on the trained row)."""

    bucket_layers: float = 1.0
    """The fraction of the layers, from the bottom, in which each bucket runs its own base; the
    layers above run every bucket at the model's own base. 1.0 (default): all layers; 0.5: the
    lower half (rounded to whole layers, at least one)."""

    strategy: Literal["buckets", "ms-poe"] = "buckets"
    """"buckets" (default): Attention Buckets, one row per base in ``bases``. "ms-poe": Ms-PoE
    (Zhang et al. 2024), one pass at the model's own base in which each key/value head reads the
    positions divided by its own ratio (1.2 up to 1.8, from the third layer on); ``bases`` must
    then be left unset or be one number."""

    device: str = "auto"
    """"auto" (default: CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"."""

    dtype: str = "auto"
    """"auto" (default: bfloat16 on CUDA, float16 where bf16 is missing; on CPU bfloat16 where the CPU
    computes it natively (AVX512-BF16 or AMX), else float32; see docs/engine.md), "float32",
    "bfloat16" or "float16"."""

    temperature: float = 0.0
    """Sampling temperature >= 0. Default 0: greedy decoding."""

    max_tokens: int | None = 512
    """Most new tokens per call (>= 1). Default 512. None: up to the context window."""

    top_p: float | None = None
    """Nucleus sampling mass in (0, 1]. Default None: off."""

    top_k: int | None = None
    """Sample among the k most likely tokens (>= 1). Default None: off."""

    stop: list[str] | None = None
    """Stop strings; the text ends before the first one generated. Default None."""

    seed: int | None = None
    """Seed for sampling (temperature > 0); calls with the same seed give the same text. Default None."""

    repetition_penalty: float | None = None
    """Penalty > 0 for tokens already generated in this answer (1 = none; 1.1-1.3 curbs the loops small
    models fall into). Prompt tokens are not penalised, so values can still be copied from it.
    Default None: off."""

    parallel_tool_calls: bool = False
    """Default for bind_tools: allow several tool calls in one answer. Default False: one call per
    answer, then the answer ends (small models tend to repeat a call)."""

    tool_call_bias: Literal["auto"] | float | tuple[float, float] | None = "auto"
    """How readily ``tool_choice="auto"`` opens a tool call: a logit bias on the call opener at the
    first token of the answer (a negative one: until a call opens), as (before any tool result
    for the latest request, after results came back); one number for both. Once the opener
    starts, the call is made (the grammar constrains it). "auto" (default): calibrated for the embedded model (call when a request
    needs a tool, answer once the results are in; docs/chat-model.md has the measured
    accuracy), 0 for other models (calibrate yours with ``attention-buckets bench decisions``).
    None or 0: the model decides alone."""

    logit_bias: dict[int, float] | None = None
    """Added to the merged logits of the given token ids before sampling (and before the grammar
    mask). Default None."""

    loop_detection: bool = True
    """End a free-text answer that loops: once its text ends in 3+ copies of one block (holding a
    letter or digit) spanning ``loop_min_chars`` characters, generation stops, the text keeps what
    was streamed, ``finish_reason`` is "stop" and ``response_metadata["stopped_by"]`` is
    "repetition". Tool-call arguments and JSON answers are never cut. Default True."""

    loop_min_chars: int = 48
    """The shortest repeated span (characters) that counts as a loop (>= 1). Default 48."""

    streaming: bool = False
    """Whether ``invoke`` reports each token to callbacks (``on_llm_new_token``) as it is generated.
    Default False: ``invoke`` calls back once, at the end; ``stream`` and ``astream_events`` stream
    either way. Set explicitly to False, LangChain turns streaming off altogether: ``stream`` then
    yields the whole message as one chunk."""

    constrained_decoding: bool = True
    """Guarantee the shape of forced tool calls and structured output with a grammar (xgrammar),
    and constrain a call in "auto" mode once it opens. Default True."""

    speculative_tokens: int = 8
    """Greedy decoding checks up to this many drafted tokens per forward pass (drafts: what followed
    the same prompt before, or text copied from the context); the output is unchanged. 0: off.
    Default 8."""

    prefix_cache: bool = True
    """Reuse the keys/values of a prompt prefix seen in an earlier call. Default True."""

    deterministic: bool = False
    """Same greedy tokens (and seeded samples) bit for bit whether the prompt's prefix came from
    the prefix cache or not, alone or with other calls in flight (threads or asyncio tasks),
    whatever ``speculative_tokens`` is. Costs speed: each call runs alone (no batching with
    other calls), is prefilled in 64-token blocks and reuses only whole cached blocks, and
    decodes one token per pass (see docs/performance.md). Default False: outputs then equal
    a lone uncached call's up to floating-point rounding, so a greedy pick can flip on a
    near-tie."""

    prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES
    """Memory bound of the prefix cache, in bytes (shared by all users of the model). Default 2 GiB."""

    trust_remote_code: bool = False
    """Allow a hub model's own Python code to run. Default False."""

    model_kwargs: dict[str, Any] | None = None
    """Extra keyword arguments for ``from_pretrained`` (e.g. ``revision``, ``quantization_config``,
    ``attn_implementation``, ``device_map``), passed as they are; part of what identifies the shared
    weights. ``dtype``, ``device`` and ``trust_remote_code`` have their own fields (``dtype`` /
    ``torch_dtype`` here are a ValueError naming the ``dtype=`` value to use instead). With a
    ``device_map`` leave ``device="auto"``: accelerate places the layers (docs/engine.md, "Models
    larger than one device"). Default None."""

    _bases_cache: dict = PrivateAttr(default_factory=dict)
    _defaults: CallOptions = PrivateAttr(default_factory=CallOptions)

    # ---- validation -----------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _check_keywords(cls, values: Any) -> Any:
        """Unknown keyword arguments and booleans given for numbers are errors, not silently dropped."""
        if not isinstance(values, dict):
            return values
        if values.get("preset") is not None:  # the preset's settings, under the explicit arguments
            from .presets import load_preset

            values = {**values, "preset": os.fspath(values["preset"])}
            values = {**load_preset(values["preset"], cls.model_fields), **values}
        remote = [k for k in _REMOTE_ONLY if k in values]
        if remote:
            values = {k: v for k, v in values.items() if k not in remote}
            warnings.warn(f"{', '.join(remote)}: no use for a local model; ignored", stacklevel=4)
        known = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
        unknown = sorted(set(values) - known)
        if unknown:
            name = unknown[0]
            raise ValueError(
                f"unknown argument {name!r}{nearest(name, known)}; extra arguments for the model's "
                "from_pretrained go in model_kwargs={...}"
            )
        for name in _NUMBER_FIELDS:
            check_not_bool(name, values.get(name))
        return values

    @field_validator("model")
    @classmethod
    def _check_model(cls, value):
        return check_model_source(value)

    @field_validator("model_kwargs")
    @classmethod
    def _check_model_kwargs(cls, value):
        return check_model_kwargs(value)

    @field_validator("bases", mode="before")
    @classmethod
    def _check_bases(cls, value):
        if isinstance(value, str) and value.strip().lower() == ADAPTIVE:
            return ADAPTIVE
        checked = check_bases_spec(value)
        return checked if isinstance(checked, str) else value  # a list stays the list it was given

    @field_validator("bucket_layers", mode="before")
    @classmethod
    def _check_bucket_layers(cls, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(f"bucket_layers={value!r} must be a fraction of the layers, greater than 0 and at most 1")
        return float(value)

    @field_validator("tool_call_bias", mode="before")
    @classmethod
    def _check_tool_call_bias(cls, value):
        return check_tool_call_bias(value)

    @field_validator("n_buckets")
    @classmethod
    def _check_n(cls, value):
        if value is not None and not (isinstance(value, int) and 1 <= value <= MAX_BUCKETS):
            raise ValueError(f"n_buckets={value!r} must be an integer from 1 to {MAX_BUCKETS}")
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value):
        return check_device(value)

    @field_validator("dtype")
    @classmethod
    def _check_dtype(cls, value):
        return check_dtype(value)

    @field_validator("prefix_cache_bytes")
    @classmethod
    def _check_prefix_cache_bytes(cls, value):
        if value < 0:
            raise ValueError(f"prefix_cache_bytes={value!r} must be >= 0")
        return value

    @model_validator(mode="after")
    def _check_options(self):
        if self.strategy == "ms-poe" and "bases" in self.model_fields_set and isinstance(self.bases, (str, list)):
            raise ValueError(
                f"strategy='ms-poe' runs one pass at one base; bases={self.bases!r} is not allowed with it "
                "(leave bases unset for the model's own base, or give one number)"
            )
        check_placement(self.device, self.model_kwargs)
        self._defaults = CallOptions.from_fields(self)  # the checked defaults of every call
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in _OPTION_FIELDS:  # a field set after construction: later calls follow it
            self._defaults = CallOptions.from_fields(self)

    # ---- LangChain plumbing ---------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "attention-buckets"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_attention_buckets", "chat", "model"]

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "bases": self.bases,
            "n_buckets": self.n_buckets,
            "aggregation": self.aggregation,
            "strategy": self.strategy,
            "bucket_layers": self.bucket_layers,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
        }

    @property
    def model_name(self) -> str:
        from ..engine.loading import EMBEDDED_MODEL_NAME

        return self.model or EMBEDDED_MODEL_NAME

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="attention_buckets",
            ls_model_name=kwargs.get("model") or self.model_name,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
        )
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stop = stop or kwargs.get("stop") or self.stop
        if stop:
            params["ls_stop"] = stop
        return params

    def _resolve_model_profile(self):
        window = context_window(self.model)  # the config's, without loading weights; None if unknown
        sizes = {"max_input_tokens": window, "max_output_tokens": window} if window else {}
        return {
            **sizes,
            "tool_calling": True,
            "tool_choice": True,
            "tool_call_streaming": True,
            "structured_output": True,
            "text_inputs": True,
            "text_outputs": True,
            "image_inputs": False,
            "audio_inputs": False,
            "pdf_inputs": False,
            "video_inputs": False,
        }

    # ---- the model ------------------------------------------------------------------

    def _spec(self, model: str | None = None) -> ModelSpec:
        source = model if model is not None else self.model
        return ModelSpec(source, self.device, self.dtype, self.trust_remote_code, self.model_kwargs)

    def load(self, model: str | None = None) -> LoadedModel:
        """Load the weights now (otherwise they load on the first call) and return them."""
        return load_model(self._spec(model))

    def engine(self, model: str | None = None) -> Engine:
        """The engine that runs this model's calls (shared by instances with the same model settings)."""
        return get_engine(self.load(model), self.prefix_cache_bytes)

    def resolved_bases(self, model: str | None = None, tools: bool = True) -> tuple[float, ...]:
        """The RoPE bases this chat model runs with, for its model, in a call with or without tools
        bound (they differ only for ``bases="adaptive"``; see ``bucket_choice``). With
        ``strategy="ms-poe"``: the model's own base unless ``bases`` is one number."""
        loaded = self.load(model)
        if self.strategy == "ms-poe" and "bases" not in self.model_fields_set:
            return (loaded.base,)
        spec = self._bases_spec(tools)
        key = (id(loaded), json.dumps(spec), self.n_buckets)
        if key not in self._bases_cache:
            self._bases_cache[key] = (loaded.base,) if spec is None else resolve_bases(
                spec,
                head_dim=loaded.head_dim,
                base=loaded.base,
                context_length=loaded.max_positions,
                n=self.n_buckets if spec == "auto" else None,
            )
        return self._bases_cache[key]

    def _bases_spec(self, tools: bool):
        """The ``bases`` setting of one call; None: the model's own base alone."""
        if self.bases != ADAPTIVE:
            return self.bases
        return ADAPTIVE_TOOL_BASES if tools else None

    def bucket_choice(self, tools: bool) -> str:
        """What ``bases`` chose for a call with or without tools bound, in words (response metadata)."""
        if self.bases != ADAPTIVE:
            return f"bases={self.bases!r}"
        if tools:
            return f"adaptive: tools bound -> {ADAPTIVE_TOOL_BASES!r} bases"
        return "adaptive: no tools bound -> the model's own base alone"

    def clear_prefix_cache(self) -> None:
        """Forget the cached prompt prefixes of this chat model's engine."""
        self.engine().clear_prefix_cache()

    def estimate_memory(self, messages: LanguageModelInput, **kwargs: Any):
        """The memory a call with these messages would need, before paying it (engine.MemoryEstimate)."""
        call = self._prepare(self._convert_input(messages).to_messages(), None, kwargs)
        return call.engine.estimate_memory(len(call.request.prompt), call.request.max_tokens, len(call.request.bases))

    # ---- tools and structured output --------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: ToolChoice = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (pydantic models, TypedDicts, functions, BaseTools, OpenAI/JSON-schema dicts).

        Args:
            tools: the tools.
            tool_choice: None or "auto" (the model decides), "none" (no call), "any" / "required" /
                True (some call), a tool name or {"type": "function", "function": {"name": ...}}.
            parallel_tool_calls: allow several calls in one answer. Default: the model's
                ``parallel_tool_calls`` field (False).
            strict: passed to the OpenAI-format conversion.
            **kwargs: bound as call options (e.g. ``response_format`` from ``create_agent``).
        """
        formatted = _one_per_name([convert_to_openai_tool(t, strict=strict) for t in tools])
        names = [t["function"]["name"] for t in formatted]
        self._check_tools(formatted)
        normalize_tool_choice(tool_choice, names)  # raises on bad values
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def _check_tools(self, formatted: list[dict]) -> None:
        """What would fail at the first call fails here: names (allowed characters, unique) and
        schemas (the grammar's subset; with constrained decoding, compiled to a grammar too)."""
        from ..constrain.grammar import json_grammar, select_tools

        for tool in formatted:
            check_tool_name(tool["function"].get("name"))
        specs = select_tools(formatted, None)  # unique names; each schema checked, naming the tool
        if self.constrained_decoding:
            for name, params in specs:  # xgrammar's own parse of the schema (no tokenizer needed)
                json_grammar(params, f"tool '{name}'")

    def with_structured_output(
        self,
        schema: dict | type,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict | Any]:
        """Output parsed into ``schema`` (pydantic model, TypedDict or JSON schema).

        Args:
            schema: the output schema.
            method: "json_schema" (default: the answer is JSON valid under the schema, enforced by
                a grammar), "function_calling" (a forced call of a tool with that schema) or
                "json_mode" (any JSON object; describe the shape in the prompt).
            include_raw: return {"raw", "parsed", "parsing_error"} instead of raising on parse errors.
            strict: accepted for compatibility; with constrained decoding on, the output always
                follows the schema exactly.
        """
        if kwargs:
            raise ValueError(f"unexpected arguments {sorted(kwargs)}; allowed: method, include_raw, strict")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        if method == "function_calling":
            tool = convert_to_openai_tool(schema)
            name = tool["function"]["name"]
            llm = self.bind_tools(
                [schema],
                tool_choice=name,
                parallel_tool_calls=False,
                strict=strict,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": tool},
            )
            parser: Runnable = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method == "json_schema":
            json_schema = convert_to_json_schema(schema)
            self._check_response_schema(json_schema)
            llm = self.bind(
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": json_schema.get("title", "output"), "schema": json_schema},
                },
                ls_structured_output_format={"kwargs": {"method": method}, "schema": json_schema},
            )
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
        elif method == "json_mode":
            llm = self.bind(
                response_format={"type": "json_object"},
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            )
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
        else:
            raise ValueError(f"method={method!r} is not allowed; use 'function_calling', 'json_schema' or 'json_mode'")
        if not include_raw:
            return llm | parser
        check = RunnableLambda(_parseable_call if method == "function_calling" else _parseable_json)
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | check | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")

    def _check_response_schema(self, json_schema: dict) -> None:
        """A response schema the grammar cannot enforce fails when the runnable is built."""
        from ..constrain.grammar import json_grammar
        from ..constrain.schema import prepare_schema, schema_owner

        owner = schema_owner(json_schema)
        prepare_schema(json_schema, owner)
        if self.constrained_decoding:
            json_grammar(json_schema, owner)

    # ---- token counting ---------------------------------------------------------------

    def tokenizer(self, model: str | None = None):
        """The model's tokenizer (loads the tokenizer alone when the weights are not loaded yet)."""
        return load_tokenizer(self._spec(model))

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` under the model's own tokenizer (offline; no special tokens added)."""
        if self.custom_get_token_ids is not None:
            return self.custom_get_token_ids(text)
        return self.tokenizer().encode(text, add_special_tokens=False)

    def get_num_tokens(self, text: str) -> int:
        """Number of the model's tokens in ``text``."""
        return len(self.get_token_ids(text))

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence | None = None) -> int:
        """Prompt tokens a call with these messages (and ``tools``) would read: the same chat
        template, tool descriptions and instructions as a call, so it equals the call's
        ``usage_metadata["input_tokens"]`` (with the chat model's default options).

        A ToolMessage need not answer a call here: ``trim_messages`` counts slices of a conversation.
        """
        if not messages:
            return 0
        options = self._defaults
        if tools:
            options = options.merged({"tools": [convert_to_openai_tool(t) for t in tools]})
        return len(_prompt_ids(self.tokenizer(), messages, options, check_tool_call_ids=False))

    # ---- generation -----------------------------------------------------------------

    def _prepare(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict) -> "_Call":
        options = self._defaults.merged(kwargs, stop)
        loaded = self.load(options.model)
        engine = get_engine(loaded, self.prefix_cache_bytes)
        tools, choice, response_format = options.tools, options.choice, options.response_format
        parallel = options.parallel_tool_calls
        constraint = call_constraint(
            loaded, tools, choice, parallel, response_format, self.constrained_decoding, options.max_tokens
        )
        dicts = to_chat_dicts(messages)
        decision = None
        policy = resolve_decision(options.tool_call_bias, loaded.name == EMBEDDED_MODEL_NAME)
        if tools and choice.kind == "auto" and not policy.off:
            state = conversation_state(dicts)
            decision = {"state": state, "bias": policy.bias(state)}
            constraint = DecisionConstraint(constraint, opener_ids(loaded.tokenizer), decision["bias"])
        with_tools = bool(tools) and choice.kind != "none"
        bases = self.resolved_bases(options.model, tools=with_tools)
        if options.aggregation in ANCHORED_RULES and len(bases) > 1:
            bases = anchor_first(bases, loaded.base)  # the trained row first
        request = Request(
            prompt=tuple(_render_ids(loaded.tokenizer, dicts, options)),
            bases=bases,
            aggregation=options.aggregation,
            sampling=options.sampling,
            max_tokens=options.max_tokens,
            stop=options.stop,
            constraint=constraint,
            prefix_cache=self.prefix_cache,
            logit_bias=options.bias(loaded.vocab_size),
            speculative_tokens=options.speculative_tokens,
            deterministic=self.deterministic,
            head_scales=model_mspoe_scales(loaded.config) if self.strategy == "ms-poe" else (),
            bucket_layers=self._bucket_layers(loaded, len(bases)),
        )
        schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
        parser = ToolCallParser(schemas) if tools and choice.kind != "none" else None
        guard = answer_guard(loaded.tokenizer, tools, dicts, response_format, options.loop_chars)
        return _Call(engine, request, parser, options.model or self.model_name, bases, decision, guard,
                     self.bucket_choice(with_tools))

    def _bucket_layers(self, loaded: LoadedModel, n_buckets: int) -> int | None:
        """``bucket_layers`` as a number of layers for the engine (None: all, or one bucket)."""
        if self.bucket_layers >= 1.0 or n_buckets == 1:
            return None
        return max(1, round(self.bucket_layers * loaded.config.num_hidden_layers))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs)
        gen = call.engine.submit(call.request)
        try:
            for event in gen:
                if call.stopped:  # the guard ended the answer; the engine stops at its next step
                    continue
                chunk = call.chunk(event)
                if call.stopped:
                    gen.cancel()
                if run_manager:  # callbacks see what the chunks show, not the raw call markup
                    run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
                yield chunk
            chunk = call.last(gen.result())
            if run_manager:
                run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
            yield chunk
        finally:
            gen.cancel()  # stops the engine's work when the consumer stops early

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = await asyncio.to_thread(self._prepare, messages, stop, kwargs)
        gen = call.engine.submit(call.request, loop=asyncio.get_running_loop())
        try:
            async for event in gen:
                if call.stopped:
                    continue
                chunk = call.chunk(event)
                if call.stopped:
                    gen.cancel()
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
                yield chunk
            chunk = call.last(gen.final)
            if run_manager:
                await run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
            yield chunk
        finally:
            gen.cancel()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        per_token = run_manager if self.streaming else None
        return _collect(list(self._stream(messages, stop, per_token, **kwargs)))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        per_token = run_manager if self.streaming else None
        return _collect([c async for c in self._astream(messages, stop, per_token, **kwargs)])

    def _should_stream(self, *, async_api: bool, run_manager=None, **kwargs: Any) -> bool:
        """LangChain's rule, except that ``streaming=True`` alone does not hand ``invoke`` to
        LangChain's own merge of the stream: ``_generate`` streams (a callback per token) and
        collects with ``_collect``, which keeps each invalid call's ``error`` (the merge drops it)."""
        if not super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs):
            return False
        handlers = run_manager.handlers if run_manager else []
        return bool(kwargs.get("stream")) or any(isinstance(h, _StreamingCallbackHandler) for h in handlers)


def _one_per_name(tools: list[dict]) -> list[dict]:
    """The tools with a repeat of the same tool dropped (a pydantic model and its JSON schema differ
    only in titles); two different tools with one name stay, for the unique-name check to refuse."""
    out, seen = [], {}
    for tool in tools:
        fn = tool.get("function") or {}
        given = {k: v for k, v in fn.items() if v not in ("", None)}  # no description == empty one
        key = json.dumps(_without_titles(given), sort_keys=True, default=str)
        if seen.get(fn.get("name")) == key:
            continue
        seen.setdefault(fn.get("name"), key)
        out.append(tool)
    return out


def _without_titles(node: Any) -> Any:
    """A schema without its "title" annotations (property names called "title" are kept)."""
    if isinstance(node, list):
        return [_without_titles(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: _without_titles(v) for name, v in value.items()}
        elif key != "title":
            out[key] = _without_titles(value)
    return out


def _prompt_ids(tokenizer, messages: list[BaseMessage], options: CallOptions, check_tool_call_ids: bool = True) -> list[int]:
    """The prompt's token ids: messages -> chat dicts -> the call's prompt text -> ids."""
    return _render_ids(tokenizer, to_chat_dicts(messages, check_tool_call_ids=check_tool_call_ids), options)


def _render_ids(tokenizer, dicts: list[dict], options: CallOptions) -> list[int]:
    """The token ids of the call's prompt text for chat dicts."""
    prompt = render_call(tokenizer, dicts, options.tools, options.choice, options.response_format)
    return tokenizer.encode(prompt, add_special_tokens=False)


def _parseable_call(message: AIMessage) -> AIMessage:
    """``message`` if it holds a tool call; else OutputParserException saying why none parsed."""
    if message.tool_calls:
        return message
    errors = [c.get("error") for c in message.invalid_tool_calls if c.get("error")]
    if errors:
        why = errors[0]
    elif message.response_metadata.get("finish_reason") == "length":
        why = "max_tokens reached before the call closed"
    elif message.invalid_tool_calls:
        why = "the call's arguments are not a valid JSON object"
    else:
        why = "no tool call in the output"
    raise OutputParserException(f"no structured output: {why}", llm_output=str(message.content))


def _parseable_json(message: AIMessage) -> AIMessage:
    """``message`` if its text is one whole JSON value; else OutputParserException saying why."""
    text = message.text.strip()
    try:
        parse_json_markdown(text, parser=json.loads)  # strict: no repair of a cut-off object
        return message
    except ValueError as err:
        if message.response_metadata.get("finish_reason") == "length":
            why = "max_tokens reached before the JSON closed"
        elif not text:
            why = "the output is empty"
        else:
            why = f"the output is not JSON ({err})"
    raise OutputParserException(f"no structured output: {why}", llm_output=text)


# ---- one call ---------------------------------------------------------------------------


# Why the text ended, by finish_reason: the error of a call it cut off.
_ENDED = {
    "length": "max_tokens reached",
    "stop": "the answer ended",
    "grammar_dead_end": "the grammar allowed no further token",
    "cancelled": "the stream was cancelled",
}


@dataclass
class _Call:
    """A prepared call: the engine request, the parser, and what the chunks report.

    Each tool call streams as tool_call_chunks with its index: the first carries the name
    and a fresh id, later ones argument text. langchain-core merges chunks by index and
    rebuilds ``invalid_tool_calls`` from them with ``error=None``, so the reasons travel in
    the last chunk's ``response_metadata["tool_call_errors"]`` (call id -> reason), and
    ``_collect`` writes them into ``invalid_tool_calls[].error``.
    """

    engine: Engine
    request: Request
    parser: ToolCallParser | None
    model_name: str
    bases: tuple[float, ...]
    decision: dict | None = None  # the tool decision's state and bias, when one applied
    guard: AnswerGuard | None = None  # ends the answer's text at a loop or a fallback marker
    bucket_choice: str = ""  # what the ``bases`` setting chose for this call, in words
    ids: dict[int, str] = field(default_factory=dict)  # call index -> id
    errors: dict[str, str] = field(default_factory=dict)  # id of an invalid call -> reason

    @property
    def stopped(self) -> bool:
        """Whether the guard ended the answer (a loop or a fallback marker)."""
        return self.guard is not None and self.guard.stopped

    def chunk(self, event: TokenEvent) -> ChatGenerationChunk:
        """The message chunk of one token: its final text, and what it added to tool calls."""
        if self.stopped:
            return ChatGenerationChunk(message=AIMessageChunk(content=""))
        if self.parser is None:
            text = self.guard.feed(event.text) if self.guard else event.text
            return ChatGenerationChunk(message=AIMessageChunk(content=text))
        return self._parsed(self._guarded(self.parser.feed(event.text)))

    def last(self, result: Result) -> ChatGenerationChunk:
        ended = _ENDED.get(result.finish_reason, f"the answer ended ({result.finish_reason})")
        text, calls = "", []
        if self.parser and not self.stopped:
            tail = self._parsed(self._guarded(self.parser.finish(ended))).message
            text, calls = tail.content, tail.tool_call_chunks
        if self.guard and not self.stopped:  # text held back as a possible marker's start
            text += self.guard.finish()
        finish_reason = "stop" if self.stopped else result.finish_reason
        metadata = {
            "model_name": self.model_name,
            "model_provider": "attention_buckets",
            "finish_reason": finish_reason,
            "bases": list(self.bases),
            "bucket_choice": self.bucket_choice,
            "aggregation": self.request.aggregation,
            "strategy": "ms-poe" if self.request.head_scales else "buckets",
            "time_to_first_token": result.time_to_first_token,
        }
        if self.request.bucket_layers is not None:
            metadata["bucket_layers"] = self.request.bucket_layers  # layers with the buckets' own bases
        if self.decision is not None:
            metadata["tool_decision"] = dict(self.decision)
        if self.stopped:
            metadata["stopped_by"] = self.guard.stopped_by
        if self.errors:
            metadata["tool_call_errors"] = dict(self.errors)
        message = AIMessageChunk(
            content=text,
            tool_call_chunks=calls,
            usage_metadata={
                "input_tokens": result.prompt_tokens,
                "output_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
                "input_token_details": {"cache_read": result.cached_tokens},
            },
            response_metadata=metadata,
            chunk_position="last",
        )
        return ChatGenerationChunk(message=message, generation_info={"finish_reason": finish_reason})

    def _guarded(self, events) -> list:
        """The parser's events with their text passed through the guard, up to where it ends the answer."""
        if self.guard is None:
            return list(events)
        out = []
        for e in events:
            if isinstance(e, TextPiece):
                e = TextPiece(self.guard.feed(e.text))
            out.append(e)
            if self.guard.stopped:  # what the parser read past that point is not part of the answer
                break
        return out

    def _parsed(self, events: list) -> ChatGenerationChunk:
        text = "".join(e.text for e in events if isinstance(e, TextPiece))
        # One tool_call_chunk per call in a chunk: langchain-core merges by index only across chunks.
        calls: dict[int, dict] = {}
        for e in events:
            if isinstance(e, CallStart):
                self.ids[e.index] = f"call_{uuid.uuid4().hex[:24]}"
                calls[e.index] = tool_call_chunk(name=e.name, args="", id=self.ids[e.index], index=e.index)
            elif isinstance(e, ArgsDelta):
                calls.setdefault(e.index, tool_call_chunk(name=None, args="", id=None, index=e.index))["args"] += e.text
            elif isinstance(e, ParsedCall) and not e.valid:
                self.errors[self.ids[e.index]] = e.error
        return ChatGenerationChunk(message=AIMessageChunk(content=text, tool_call_chunks=list(calls.values())))


def _collect(chunks: list[ChatGenerationChunk]) -> ChatResult:
    """The stream merged into one message; each invalid call gets its reason as ``error``."""
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    msg = merged.message
    errors = msg.response_metadata.get("tool_call_errors", {})
    invalid = [{**c, "error": c.get("error") or errors.get(c["id"])} for c in msg.invalid_tool_calls]
    message = AIMessage(
        content=msg.content,
        tool_calls=msg.tool_calls,
        invalid_tool_calls=invalid,
        usage_metadata=msg.usage_metadata,
        response_metadata=msg.response_metadata,
        id=msg.id,
    )
    return ChatResult(generations=[ChatGeneration(message=message, generation_info=merged.generation_info)])
