"""ChatAttentionBuckets: a LangChain chat model over the bucketed engine.

Flow, by function name:

    _stream / _astream
      _prepare:   LangChain messages -> chat dicts (to_chat_dicts)
                  -> prompt text (render.render) -> token ids
                  -> grammar (constrain, for forced tool choice / structured output)
                  -> engine.Request
      engine.submit -> TokenEvents (text of each token)
      _chunks:    text -> parse.ToolCallParser -> AIMessageChunk(content | tool_call_chunks)
      last chunk: usage_metadata, response_metadata, chunk_position="last"
    _generate / _agenerate collect the stream.

Weights load lazily on the first call and are shared by every instance with the
same model, device, dtype and trust_remote_code.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputKeyToolsParser, JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .bases import MAX_BUCKETS, resolve_bases, validate_bases
from .engine import DEFAULT_PREFIX_CACHE_BYTES, Engine, Request, Result, TokenEvent, get_engine
from .loading import DTYPES, LoadedModel, ModelSpec, load_model, resolve_device
from .merge import MERGE_RULES
from .parse import ParsedCall, TextPiece, ToolCallParser
from .render import render
from .sampling import SamplingParams

ToolChoice = Literal["auto", "none", "any", "required"] | str | bool | dict | None


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

    bases: str | float | list[float] = "paper"
    """RoPE bases, one bucket each. "paper" (default): the reference tool-use set as ratios of the
    model's own base (x1, 1.75, 1.8, 1.9, 2.0, 2.5); "auto": the peak/trough cover search for this
    model; a list of 1-32 positive numbers; or one number (one bucket: the plain model when it is
    the model's own base)."""

    n_buckets: int | None = None
    """Number of bases the "auto" search picks (1-32). Default None: 6."""

    aggregation: Literal["confidence", "mean", "max"] = "confidence"
    """How the buckets' next-token logits merge: "confidence" (default, the reference rule),
    "mean" (mean of log-probabilities) or "max" (the most confident bucket)."""

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

    logit_bias: dict[int, float] | None = None
    """Added to the merged logits of the given token ids before sampling (and before the grammar
    mask). Default None."""

    streaming: bool = False
    """Whether invoke streams internally (callbacks see every token either way). Default False."""

    constrained_decoding: bool = True
    """Guarantee the shape of forced tool calls and structured output with a grammar (xgrammar),
    and constrain a call in "auto" mode once it opens. Default True."""

    speculative_tokens: int = 8
    """Greedy decoding checks up to this many drafted tokens per forward pass (drafts: what followed
    the same prompt before, or text copied from the context); the output is unchanged. 0: off.
    Default 8."""

    prefix_cache: bool = True
    """Reuse the keys/values of a prompt prefix seen in an earlier call. Default True."""

    prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES
    """Memory bound of the prefix cache, in bytes (shared by all users of the model). Default 2 GiB."""

    trust_remote_code: bool = False
    """Allow a hub model's own Python code to run. Default False."""

    _bases_cache: dict = PrivateAttr(default_factory=dict)

    # ---- validation -----------------------------------------------------------------

    @field_validator("bases")
    @classmethod
    def _check_bases(cls, value):
        if isinstance(value, str):
            if value.strip().lower() not in ("paper", "auto"):
                raise ValueError(
                    f"bases={value!r} is not allowed; use 'paper', 'auto', a positive number, "
                    f"or a list of 1 to {MAX_BUCKETS} positive numbers"
                )
            return value.strip().lower()
        validate_bases(value)
        return value

    @field_validator("n_buckets")
    @classmethod
    def _check_n(cls, value):
        if value is not None and not (isinstance(value, int) and 1 <= value <= MAX_BUCKETS):
            raise ValueError(f"n_buckets={value!r} must be an integer from 1 to {MAX_BUCKETS}")
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value):
        if not isinstance(value, str) or value.split(":")[0] not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device={value!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
        return value

    @field_validator("dtype")
    @classmethod
    def _check_dtype(cls, value):
        if value != "auto" and value not in DTYPES:
            raise ValueError(f"dtype={value!r} is not allowed; use 'auto', 'float32', 'bfloat16' or 'float16'")
        return value

    @model_validator(mode="after")
    def _check_sampling(self):
        SamplingParams(self.temperature, self.top_k, self.top_p, self.seed, self.repetition_penalty)
        _check_max_tokens(self.max_tokens)
        if not isinstance(self.speculative_tokens, int) or self.speculative_tokens < 0:
            raise ValueError(f"speculative_tokens={self.speculative_tokens!r} must be an integer >= 0")
        if self.prefix_cache_bytes < 0:
            raise ValueError(f"prefix_cache_bytes={self.prefix_cache_bytes!r} must be >= 0")
        if self.stop is not None and not all(isinstance(s, str) for s in self.stop):
            raise ValueError(f"stop={self.stop!r} must be a list of strings")
        return self

    # ---- LangChain plumbing ---------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "attention-buckets"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_attention_buckets", "chat_model"]

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "bases": self.bases,
            "n_buckets": self.n_buckets,
            "aggregation": self.aggregation,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
        }

    @property
    def model_name(self) -> str:
        from .loading import EMBEDDED_MODEL_NAME

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
        return {
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
        return ModelSpec(model if model is not None else self.model, self.device, self.dtype, self.trust_remote_code)

    def load(self, model: str | None = None) -> LoadedModel:
        """Load the weights now (otherwise they load on the first call) and return them."""
        return load_model(self._spec(model))

    def engine(self, model: str | None = None) -> Engine:
        """The engine that runs this model's calls (shared by instances with the same model settings)."""
        return get_engine(self.load(model), self.prefix_cache_bytes)

    def resolved_bases(self, model: str | None = None) -> tuple[float, ...]:
        """The RoPE bases this chat model runs with, for its model."""
        loaded = self.load(model)
        key = (id(loaded), json.dumps(self.bases), self.n_buckets)
        if key not in self._bases_cache:
            self._bases_cache[key] = resolve_bases(
                self.bases,
                head_dim=loaded.head_dim,
                base=loaded.base,
                context_length=loaded.max_positions,
                n=self.n_buckets if self.bases == "auto" else None,
            )
        return self._bases_cache[key]

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
        formatted = [convert_to_openai_tool(t, strict=strict) for t in tools]
        names = [t["function"]["name"] for t in formatted]
        normalize_tool_choice(tool_choice, names)  # raises on bad values
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

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
            llm = self.bind(
                response_format={"type": "json_schema", "json_schema": {"name": json_schema.get("title", "output"), "schema": json_schema}},
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
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")

    # ---- generation -----------------------------------------------------------------

    def _prepare(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict) -> "_Call":
        model = kwargs.pop("model", None)
        unknown = set(kwargs) - _CALL_OPTIONS
        if unknown:
            warnings.warn(f"ignored call options {sorted(unknown)}", stacklevel=3)
        loaded = self.load(model)
        engine = get_engine(loaded, self.prefix_cache_bytes)
        tools = kwargs.get("tools") or []
        names = [t["function"]["name"] for t in tools]
        choice = normalize_tool_choice(kwargs.get("tool_choice"), names)
        parallel = kwargs.get("parallel_tool_calls")
        parallel = self.parallel_tool_calls if parallel is None else bool(parallel)
        response_format = _check_response_format(kwargs.get("response_format"))
        chat = to_chat_dicts(messages)
        prompt = render(
            loaded.tokenizer,
            chat,
            tools,
            tool_instruction=_instruction(choice, response_format),
        )
        if not tools and response_format is not None:
            chat_with_format = _with_format_instruction(chat, response_format)
            prompt = render(loaded.tokenizer, chat_with_format, None)
        ids = tuple(loaded.tokenizer.encode(prompt, add_special_tokens=False))
        constraint = _constraint(loaded, tools, choice, parallel, response_format, self.constrained_decoding)
        sampling = SamplingParams(
            kwargs.get("temperature", self.temperature),
            kwargs.get("top_k", self.top_k),
            kwargs.get("top_p", self.top_p),
            kwargs.get("seed", self.seed),
            kwargs.get("repetition_penalty", self.repetition_penalty),
        )
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        _check_max_tokens(max_tokens)
        bias = _check_logit_bias(kwargs.get("logit_bias", self.logit_bias), loaded.vocab_size)
        stop = list(stop or kwargs.get("stop") or self.stop or [])
        bases = self.resolved_bases(model)
        request = Request(
            prompt=ids,
            bases=bases,
            aggregation=kwargs.get("aggregation", self.aggregation),
            sampling=sampling,
            max_tokens=max_tokens,
            stop=tuple(stop),
            constraint=constraint,
            prefix_cache=self.prefix_cache,
            logit_bias=bias,
            speculative_tokens=self.speculative_tokens,
        )
        schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
        parser = ToolCallParser(schemas) if tools and choice.kind != "none" else None
        return _Call(engine, request, parser, model or self.model_name, bases)

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
                chunk = call.chunk(event)
                if run_manager:
                    run_manager.on_llm_new_token(event.text, chunk=chunk)
                yield chunk
            yield call.last(gen.result())
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
                chunk = call.chunk(event)
                if run_manager:
                    await run_manager.on_llm_new_token(event.text, chunk=chunk)
                yield chunk
            yield call.last(gen.final)
        finally:
            gen.cancel()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _collect(list(self._stream(messages, stop, run_manager, **kwargs)))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _collect([c async for c in self._astream(messages, stop, run_manager, **kwargs)])


_CALL_OPTIONS = {
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "max_tokens",
    "stop",
    "aggregation",
    "ls_structured_output_format",
    "strict",
    "logit_bias",
    "repetition_penalty",
}


def _check_logit_bias(bias, vocab_size: int) -> tuple[tuple[int, float], ...]:
    if not bias:
        return ()
    out = []
    for token, value in bias.items():
        token = int(token)
        if not 0 <= token < vocab_size or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f"logit_bias entry {token!r}: {value!r} needs a token id in [0, {vocab_size}) and a number")
        out.append((token, float(value)))
    return tuple(out)


def _check_max_tokens(value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_tokens={value!r} must be None or an integer >= 1")


# ---- one call ---------------------------------------------------------------------------


@dataclass
class _Call:
    """A prepared call: the engine request, the parser, and what the chunks report."""

    engine: Engine
    request: Request
    parser: ToolCallParser | None
    model_name: str
    bases: tuple[float, ...]

    def __post_init__(self) -> None:
        self.errors: dict[str, str] = {}

    def chunk(self, event: TokenEvent) -> ChatGenerationChunk:
        """The message chunk of one token: its final text, and any call it completed."""
        if self.parser is None:
            return ChatGenerationChunk(message=AIMessageChunk(content=event.text))
        return self._parsed(list(self.parser.feed(event.text)))

    def last(self, result: Result) -> ChatGenerationChunk:
        tail = self._parsed(list(self.parser.finish())) if self.parser else None
        message = AIMessageChunk(
            content=tail.message.content if tail else "",
            tool_call_chunks=tail.message.tool_call_chunks if tail else [],
            usage_metadata={
                "input_tokens": result.prompt_tokens,
                "output_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
                "input_token_details": {"cache_read": result.cached_tokens},
            },
            response_metadata={
                "model_name": self.model_name,
                "model_provider": "attention_buckets",
                "finish_reason": result.finish_reason,
                "bases": list(self.bases),
                "aggregation": self.request.aggregation,
                "time_to_first_token": result.time_to_first_token,
            },
            chunk_position="last",
        )
        return ChatGenerationChunk(message=message, generation_info={"finish_reason": result.finish_reason})

    def _parsed(self, events: list) -> ChatGenerationChunk:
        text = "".join(e.text for e in events if isinstance(e, TextPiece))
        calls = [e for e in events if isinstance(e, ParsedCall)]
        chunks = [self._call_chunk(c) for c in calls]
        return ChatGenerationChunk(message=AIMessageChunk(content=text, tool_call_chunks=chunks))

    def _call_chunk(self, call: ParsedCall):
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        if call.valid:
            args = json.dumps(call.arguments, ensure_ascii=False)
        else:
            # A JSON string literal never parses into an argument object, so the merged
            # message keeps this call invalid; the raw text is kept whole.
            args = json.dumps(call.raw, ensure_ascii=False)
            self.errors[call_id] = call.error or "invalid tool call"
        return tool_call_chunk(name=call.name, args=args, id=call_id, index=call.index)


def _collect(chunks: list[ChatGenerationChunk]) -> ChatResult:
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    msg = merged.message
    message = AIMessage(
        content=msg.content,
        tool_calls=msg.tool_calls,
        invalid_tool_calls=msg.invalid_tool_calls,
        usage_metadata=msg.usage_metadata,
        response_metadata=msg.response_metadata,
        id=msg.id,
    )
    return ChatResult(generations=[ChatGeneration(message=message, generation_info=merged.generation_info)])


# ---- tool choice --------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    kind: Literal["auto", "none", "required", "named"]
    name: str | None = None


def normalize_tool_choice(tool_choice: ToolChoice, names: Sequence[str]) -> Choice:
    """The tool choice in one form; ValueError for values that are not allowed."""
    if tool_choice is None or tool_choice == "auto":
        return Choice("auto")
    if tool_choice == "none" or tool_choice is False:
        return Choice("none")
    if tool_choice is True or tool_choice in ("any", "required"):
        if not names:
            raise ValueError(f"tool_choice={tool_choice!r} needs at least one bound tool")
        return Choice("required")
    name = None
    if isinstance(tool_choice, str):
        name = tool_choice
    elif isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if not isinstance(name, str):
        raise ValueError(
            f"tool_choice={tool_choice!r} is not allowed; use None, 'auto', 'none', 'any', 'required', "
            "True, a tool name, or {'type': 'function', 'function': {'name': ...}}"
        )
    if name not in names:
        raise ValueError(f"tool_choice names {name!r}, which is not a bound tool; bound tools: {', '.join(names) or 'none'}")
    return Choice("named", name)


def _instruction(choice: Choice, response_format: dict | None) -> str | None:
    parts = []
    if choice.kind == "required":
        parts.append("Answer by calling one of the functions.")
    elif choice.kind == "named":
        parts.append(f"Answer by calling the function {choice.name}.")
    elif choice.kind == "none":
        parts.append("Do not call a function now; answer in text.")
    if response_format is not None:
        parts.append(_format_text(response_format, final=True))
    return " ".join(parts) or None


def _check_response_format(rf: Any) -> dict | None:
    if rf is None:
        return None
    if isinstance(rf, dict) and rf.get("type") == "json_object":
        return rf
    if isinstance(rf, dict) and rf.get("type") == "json_schema" and isinstance(rf.get("json_schema"), dict):
        if not isinstance(rf["json_schema"].get("schema"), dict):
            raise ValueError("response_format json_schema needs a 'schema' object")
        return rf
    raise ValueError(
        f"response_format={rf!r} is not allowed; use {{'type': 'json_object'}} or "
        "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}}"
    )


def _format_text(response_format: dict, final: bool = False) -> str:
    when = "When you give your final answer instead of calling a function, reply" if final else "Reply"
    if response_format["type"] == "json_object":
        return f"{when} with a JSON object only."
    schema = json.dumps(response_format["json_schema"]["schema"], ensure_ascii=False)
    return f"{when} with a JSON object only, valid under this JSON schema: {schema}"


def _with_format_instruction(chat: list[dict], response_format: dict) -> list[dict]:
    text = _format_text(response_format)
    if chat and chat[0]["role"] == "system":
        return [{**chat[0], "content": f"{chat[0]['content']}\n\n{text}"}, *chat[1:]]
    return [{"role": "system", "content": text}, *chat]


def _constraint(loaded: LoadedModel, tools, choice: Choice, parallel: bool, response_format, constrained: bool):
    """The grammar of this call, or None when the output is free.

    Forced tool choice: calls only. Otherwise a response format makes the answer JSON (or, with
    tools and "auto", calls or JSON). "none" never lets a call through, even without constrained
    decoding. "auto" constrains a call once it opens.
    """
    from .constrain import compiler_for

    compiler = compiler_for(loaded.tokenizer, vocab_size=loaded.vocab_size, stop_token_ids=sorted(loaded.eos_token_ids))
    forced = tools and choice.kind in ("required", "named")
    if forced and constrained:
        allowed = [choice.name] if choice.kind == "named" else None
        return compiler.tool_calls(tools, mode="forced", allowed=allowed, parallel=parallel and choice.kind != "named")
    if response_format is not None and constrained and not forced:
        if tools and choice.kind == "auto":
            return compiler.tool_calls_or_json(tools, _response_schema(response_format), parallel=parallel)
        if response_format["type"] == "json_object":
            return compiler.json_object()
        return compiler.json_schema(response_format["json_schema"]["schema"])
    if tools and choice.kind == "none":
        return compiler.tool_calls(tools, mode="none")
    if tools and choice.kind == "auto" and constrained:
        return compiler.tool_calls(tools, mode="auto", parallel=parallel)
    return None


def _response_schema(response_format: dict) -> dict:
    if response_format["type"] == "json_object":
        return {"type": "object"}
    return response_format["json_schema"]["schema"]


# ---- messages -------------------------------------------------------------------------------


_UNSUPPORTED_BLOCKS = {"image", "image_url", "audio", "input_audio", "video", "file", "document"}


def _text(content: str | list, where: str) -> str:
    """Text of a message content; non-text media raise (this is a text-only model)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(block.get("text", ""))
        elif kind in ("tool_use", "tool_call", "reasoning", "thinking"):
            continue  # carried by tool_calls / not part of the visible text
        elif kind in _UNSUPPORTED_BLOCKS:
            raise ValueError(f"{where} has a content block of type {kind!r}; this model reads text only")
        else:
            parts.append(json.dumps(block, ensure_ascii=False, default=str))
    return "".join(parts) if all(isinstance(b, str) or b.get("type") == "text" for b in content) else "\n".join(parts)


def to_chat_dicts(messages: Sequence[BaseMessage]) -> list[dict]:
    """LangChain messages -> Hugging Face chat dicts, in order, nothing dropped."""
    out = []
    for i, m in enumerate(messages):
        where = f"message {i} ({m.type})"
        if isinstance(m, SystemMessage):
            d = {"role": "system", "content": _text(m.content, where)}
        elif isinstance(m, HumanMessage):
            d = {"role": "user", "content": _text(m.content, where)}
        elif isinstance(m, AIMessage):
            d = {"role": "assistant", "content": _text(m.content, where)}
            calls = [{"id": c.get("id"), "name": c["name"], "arguments": c["args"]} for c in m.tool_calls]
            calls += [_invalid_as_call(c) for c in m.invalid_tool_calls]
            if calls:
                d["tool_calls"] = calls
        elif isinstance(m, ToolMessage):
            d = {"role": "tool", "content": _text(m.content, where), "tool_call_id": m.tool_call_id}
            if m.name:
                d["name"] = m.name
            if m.status == "error":
                d["content"] = f"Error: {d['content']}"
        elif isinstance(m, FunctionMessage):
            d = {"role": "tool", "content": _text(m.content, where), "name": m.name}
        elif isinstance(m, ChatMessage):
            d = {"role": m.role, "content": _text(m.content, where)}
        else:
            raise ValueError(f"{where}: message type {type(m).__name__} is not supported")
        if m.name and d["role"] != "tool":
            d["name"] = m.name
        out.append(d)
    return _name_prefixes(out)


def _invalid_as_call(call: dict) -> dict:
    args = call.get("args")
    try:
        value = json.loads(args) if isinstance(args, str) else args
    except json.JSONDecodeError:
        value = args
    return {"id": call.get("id"), "name": call.get("name") or "", "arguments": value if isinstance(value, dict) else {"_raw": value}}


def _name_prefixes(messages: list[dict]) -> list[dict]:
    """Names go into the content ("alice: ..."): chat templates rarely render them."""
    out = []
    for m in messages:
        if m.get("name") and m["role"] != "tool":
            m = {k: v for k, v in m.items() if k != "name"}
            m["content"] = f"{messages[len(out)]['name']}: {m['content']}"
        out.append(m)
    return out
