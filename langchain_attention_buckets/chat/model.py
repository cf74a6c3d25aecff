"""ChatAttentionBuckets: a LangChain chat model over the bucketed engine (the LangChain edge).

Flow, by function name:

    _stream / _astream
      _prepare:   the fields' call defaults + call options -> CallOptions (options.py; every check
                  from the table of settings, settings.py); the weights (loaded once, shared);
                  the call's bases (``resolved_bases``, ``bucket_choice``) and tool-decision policy
                  -> call.prepare_call: prompt ids, grammar, decision, engine.Request, parser, guard
      engine.submit -> TokenEvents -> Call.chunk -> AIMessageChunk (content | tool_call_chunks)
      last chunk: Call.last (usage_metadata, response_metadata, chunk_position="last")
    _generate / _agenerate collect the stream (call.collect: each invalid call gets its error).

Weights load lazily on the first call and are shared by every instance with the same model,
device, dtype and trust_remote_code. The fields come from ``settings.SETTINGS``; what one call
does lives in ``call.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import partial
from operator import itemgetter
from typing import Any, ClassVar, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import JsonOutputKeyToolsParser, JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import PydanticToolsParser
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.tracers._streaming import _StreamingCallbackHandler
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, PrivateAttr, model_validator

from ..engine import Engine, get_engine
from ..engine.bases import anchor_first, resolve_bases
from ..engine.loading import (
    EMBEDDED_MODEL_NAME,
    LoadedModel,
    ModelSpec,
    check_placement,
    context_window,
    load_model,
    load_tokenizer,
)
from ..engine.merge import ANCHORED_RULES
from ..text.messages import to_chat_dicts
from ..text.render import call_format
from ..text.tool_choice import Choice, ToolChoice, normalize_tool_choice
from .call import Call, CallSettings, collect, prepare_call, prompt_ids
from .decision import resolve_decision
from .options import CallOptions
from .settings import ADAPTIVE, ADAPTIVE_TOOL_BASES, SETTINGS, Setting, did_you_mean, settings_model
from .structured import complete, parseable_call, parseable_json
from .tools import check_tools, format_tools

__all__ = ["ChatAttentionBuckets", "Choice", "ToolChoice", "normalize_tool_choice", "to_chat_dicts"]

# LangChain's standard parameters for remote models (init_chat_model and the standard tests pass
# them to every provider): accepted so that provider-agnostic code runs, ignored with a warning.
_REMOTE_ONLY = ("timeout", "max_retries", "api_key", "base_url")


class _ChatModelBase(BaseChatModel):
    model_config = ConfigDict(populate_by_name=True, protected_namespaces=())


_Fields = settings_model("_Fields", _ChatModelBase, SETTINGS, __name__)


def _as_raw(message: AIMessage) -> dict[str, AIMessage]:
    return {"raw": message}


class ChatAttentionBuckets(_Fields):
    """A local Hugging Face model with Attention Buckets, as a LangChain chat model.

    Its settings (fields and call options) are the rows of ``settings.SETTINGS``; each field's
    description there states its default.

    Example:
        .. code-block:: python

            from langchain_attention_buckets import ChatAttentionBuckets

            llm = ChatAttentionBuckets()  # the embedded SmolLM2-135M-Instruct
            llm.invoke("What is the capital of France?")
    """

    settings_table: ClassVar[tuple[Setting, ...]] = SETTINGS
    """The table the fields, checks, call options and identifying parameters come from."""

    _bases_cache: dict = PrivateAttr(default_factory=dict)
    _defaults: CallOptions = PrivateAttr(default_factory=CallOptions)

    @classmethod
    def with_settings(cls, *rows: Setting) -> type[ChatAttentionBuckets]:
        """A subclass with more settings (rows of the table): fields, checks, call options and
        identifying parameters, as for the built-in ones."""
        table = cls.settings_table + tuple(rows)
        sub = settings_model(cls.__name__, cls, tuple(rows), cls.__module__)
        sub.settings_table = table
        return sub

    # ---- validation -----------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _check_keywords(cls, values: Any) -> Any:
        """Unknown keyword arguments are errors naming the nearest field (each setting given is then
        checked by its row's check: ``settings.settings_model``)."""
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
                f"unknown argument {name!r}{did_you_mean(name, known)}; extra arguments for the model's "
                "from_pretrained go in model_kwargs={...}"
            )
        return values

    @model_validator(mode="after")
    def _check_options(self):
        if self.strategy == "ms-poe" and "bases" in self.model_fields_set and isinstance(self.bases, (str, list)):
            raise ValueError(
                f"strategy='ms-poe' runs one pass at one base; bases={self.bases!r} is not allowed with it "
                "(leave bases unset for the model's own base, or give one number)"
            )
        check_placement(self.device, self.model_kwargs)
        self._defaults = CallOptions.from_fields(self, self.settings_table)  # the checked defaults of every call
        return self

    def _checked(self, name: str, value: Any) -> tuple[Setting | None, Any]:
        """The setting row called ``name`` (None: not a setting) and ``value`` through its check,
        the same check as at construction."""
        row = next((s for s in self.settings_table if s.name == name), None)
        if row is not None and row.check is not None:
            value = row.check(value)
        return row, value

    def __setattr__(self, name: str, value: Any) -> None:
        row, value = self._checked(name, value)
        super().__setattr__(name, value)
        if row is not None and row.call:  # a call setting set after construction: later calls follow it
            self._defaults = CallOptions.from_fields(self, self.settings_table)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> ChatAttentionBuckets:
        """A copy with ``update`` applied as construction would apply it: unknown names and bad
        values are errors, and the copy's calls follow the updated settings (pydantic's own
        ``model_copy`` checks nothing and would keep the original's call defaults)."""
        update = dict(update or {})
        known = set(type(self).model_fields)
        unknown = sorted(set(update) - known)
        if unknown:
            name = unknown[0]
            raise ValueError(f"model_copy: unknown setting {name!r}{did_you_mean(name, known)}")
        update = {name: self._checked(name, value)[1] for name, value in update.items()}
        copy = super().model_copy(update=update, deep=deep)
        copy._check_options()  # the cross-setting checks, and the call defaults rebuilt from the copy's fields
        return copy

    # ---- LangChain plumbing ---------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "attention-buckets"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_attention_buckets", "chat_model"]  # serialized ids: a public contract (chat_model.py)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        ident = {s.name: getattr(self, s.name) for s in self.settings_table if s.identifying}
        return {"model": self.model_name, **ident}

    @property
    def model_name(self) -> str:
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
        formatted = format_tools(tools, strict)
        check_tools(formatted, self.constrained_decoding)
        normalize_tool_choice(tool_choice, [t["function"]["name"] for t in formatted])  # raises on bad values
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        CallOptions(table=self.settings_table).merged({**kwargs, "tools": formatted})  # a bad bound option fails here
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict | type,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        allow_truncated: bool = False,
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
            allow_truncated: take an object that ``max_tokens`` cut or closed early (the grammar keeps
                it valid, but its fields may be empty or short). Default False: such an output raises
                OutputParserException naming ``max_tokens`` (with ``include_raw``: it is the
                ``parsing_error``, and ``raw.response_metadata["truncated"]`` is True).

        Per-call options reach the model either way: ``structured.invoke(messages, max_tokens=64)``.
        """
        if kwargs:
            raise ValueError(
                f"unexpected arguments {sorted(kwargs)}; allowed: method, include_raw, strict, allow_truncated"
            )
        if not isinstance(allow_truncated, bool):
            raise ValueError(f"allow_truncated={allow_truncated!r} must be True or False")
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
        whole = RunnableLambda(partial(complete, allow_truncated=allow_truncated), name="complete")
        if not include_raw:
            return llm | whole | parser
        check = RunnableLambda(parseable_call if method == "function_calling" else parseable_json)
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | check | whole | parser, parsing_error=lambda _: None
        )
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        # the model is the chain's first step, so that call options (invoke(..., max_tokens=64))
        # reach it: a sequence passes them to its first step only, and a map drops them
        raw = llm | RunnableLambda(_as_raw, name="raw")
        return raw | parsed.with_fallbacks([fallback], exception_key="parsing_error")

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
        tokenizer = self.tokenizer()
        fmt = call_format(tokenizer, self.tool_format, self.reasoning_format)
        return len(prompt_ids(tokenizer, messages, options, check_tool_call_ids=False, fmt=fmt))

    # ---- generation -----------------------------------------------------------------

    def call_options(self, stop: list[str] | None = None, **kwargs: Any) -> CallOptions:
        """The checked options a call with these keyword options would run with."""
        return self._defaults.merged(kwargs, stop)

    def _prepare(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict) -> Call:
        """One call's inputs resolved (options, weights, bases, decision policy), then built (call.py)."""
        options = self.call_options(stop, **kwargs)
        loaded = self.load(options.model)
        with_tools = bool(options.tools) and options.choice.kind != "none"
        bases = self.resolved_bases(options.model, tools=with_tools)
        if options.aggregation in ANCHORED_RULES and len(bases) > 1:
            bases = anchor_first(bases, loaded.base)  # the trained row first
        return prepare_call(
            loaded,
            get_engine(loaded, self.prefix_cache_bytes),
            options,
            to_chat_dicts(messages),
            bases,
            self.bucket_choice(with_tools),
            resolve_decision(options.tool_call_bias, loaded.name == EMBEDDED_MODEL_NAME),
            CallSettings(self.model_name, self.strategy, self.bucket_layers, self.constrained_decoding,
                         self.speculative_tokens, self.prefix_cache, self.deterministic, self.tool_format,
                         self.reasoning_format),
        )

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
        return collect(list(self._stream(messages, stop, per_token, **kwargs)))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        per_token = run_manager if self.streaming else None
        return collect([c async for c in self._astream(messages, stop, per_token, **kwargs)])

    def _should_stream(self, *, async_api: bool, run_manager=None, **kwargs: Any) -> bool:
        """LangChain's rule, except that ``streaming=True`` alone does not hand ``invoke`` to
        LangChain's own merge of the stream: ``_generate`` streams (a callback per token) and
        collects with ``call.collect``, which keeps each invalid call's ``error`` (the merge drops it)."""
        if not super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs):
            return False
        handlers = run_manager.handlers if run_manager else []
        return bool(kwargs.get("stream")) or any(isinstance(h, _StreamingCallbackHandler) for h in handlers)
