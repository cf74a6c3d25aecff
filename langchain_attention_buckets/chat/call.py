"""One chat-model call, outside the LangChain class: built from resolved inputs, then its chunks.

    prepare_call(loaded, engine, options, dicts, bases, ...)
      format:       render.call_format (the family's tool-call and reasoning format: detected from
                    the chat template, the Hermes fallback where it renders no tools, or named)
      prompt_ids:   chat dicts -> prompt text (render.render_call, with every instruction) -> token ids
      grammar:      grammar_select.call_constraint in the format's syntax (forced tool choice,
                    structured output, auto), reasoning first where the format has it
      decision:     in tool_choice="auto", decision.DecisionConstraint around the grammar (the
                    format's own opener, after the reasoning)
      request:      engine.Request (bases, merge rule, sampling, budget, stops, caches)
      parser:       the format's parser when tools are bound or the model reasons
      guard:        guard.answer_guard (a loop or a fallback marker ends the answer)
    Call.chunk(TokenEvent) -> ChatGenerationChunk   text / reasoning / tool_call_chunks, per token
    Call.last(Result)      -> ChatGenerationChunk   usage and response metadata
    collect(chunks)        -> ChatResult            each invalid call gets its reason

The chat model (``model.py``) resolves the inputs (options, loaded model, bases, the bucket
choice) and runs the stream; this module knows nothing of its fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from ..constrain.grammar import syntax_of
from ..engine import Engine, Request, Result, TokenEvent
from ..engine.headscale import model_mspoe_scales
from ..engine.loading import LoadedModel
from ..formats.base import Format, FormatParser
from ..formats.base import text as text_piece
from ..text.guard import AnswerGuard, answer_guard
from ..text.messages import to_chat_dicts
from ..text.parse import ArgsDelta, CallStart, ParsedCall, ReasoningPiece, TextPiece
from ..text.render import call_format, render_call
from .decision import DecisionConstraint, ToolDecision, conversation_state, opener_ids, reasoning_ids
from .grammar_select import call_constraint
from .options import CallOptions

__all__ = ["Call", "CallSettings", "collect", "prepare_call", "prompt_ids"]


def prompt_ids(tokenizer, messages: Sequence[BaseMessage] | Sequence[dict], options: CallOptions,
               check_tool_call_ids: bool = True, fmt: Format | None = None) -> list[int]:
    """The prompt's token ids for LangChain messages (or chat dicts): the same chat template, tool
    descriptions and instructions as a call with ``options`` (calls written in ``fmt`` where the
    template renders no tools; None: the package's own format)."""
    text = prompt_text(tokenizer, messages, options, check_tool_call_ids, fmt)
    return tokenizer.encode(text, add_special_tokens=False)


def prompt_text(tokenizer, messages: Sequence[BaseMessage] | Sequence[dict], options: CallOptions,
                check_tool_call_ids: bool = True, fmt: Format | None = None) -> str:
    """The prompt's text (see ``prompt_ids``)."""
    dicts = messages if messages and isinstance(messages[0], dict) else to_chat_dicts(
        messages, check_tool_call_ids=check_tool_call_ids)
    reasoning = options.values.get("reasoning")
    return render_call(tokenizer, list(dicts), options.tools, options.choice, options.response_format,
                       reasoning=reasoning, call_format=fmt)


@dataclass(frozen=True)
class CallSettings:
    """The chat model's settings that shape a call beyond its options (no call overrides them)."""

    model_name: str
    strategy: str = "buckets"
    bucket_layers: float = 1.0
    constrained_decoding: bool = True
    speculative_tokens: int = 8
    prefix_cache: bool = True
    deterministic: bool = False
    tool_format: str = "auto"
    reasoning_format: str | None = None


def prepare_call(
    loaded: LoadedModel,
    engine: Engine,
    options: CallOptions,
    dicts: list[dict],
    bases: tuple[float, ...],
    bucket_choice: str,
    decision: ToolDecision,
    settings: CallSettings,
) -> Call:
    """A call ready to submit: its request, parser, guard and tool decision.

    Args:
        loaded: the model; engine: its engine.
        options: the call's checked options.
        dicts: the conversation as chat dicts.
        bases: the call's RoPE bases (the trained row first for the anchored rules).
        bucket_choice: what the ``bases`` setting chose, in words (response metadata).
        decision: the tool-call bias policy (applies with tools bound and tool_choice="auto").
        settings: the chat model's settings that shape a call.
    """
    tools, choice = options.tools, options.choice
    fmt = call_format(loaded.tokenizer, settings.tool_format, settings.reasoning_format)
    prompt = prompt_text(loaded.tokenizer, dicts, options, fmt=fmt)
    syntax = syntax_of(fmt).for_prompt(prompt)
    opened = syntax.reasoning_start == "inside"  # the prompt opened the reasoning: the answer starts in it
    constraint = call_constraint(loaded, tools, choice, options.parallel_tool_calls, options.response_format,
                                 settings.constrained_decoding, options.max_tokens, syntax)
    state = None
    if tools and choice.kind == "auto" and not decision.off:
        conversation = conversation_state(dicts)
        state = {"state": conversation, "bias": decision.bias(conversation)}
        reasoning = reasoning_ids(loaded.tokenizer, syntax.reasoning if syntax.reasoning_start != "none" else None, opened)
        opener = opener_ids(loaded.tokenizer, fmt.openers[0])
        constraint = DecisionConstraint(constraint, opener, state["bias"], reasoning)
    request = Request(
        prompt=tuple(loaded.tokenizer.encode(prompt, add_special_tokens=False)),
        bases=bases,
        aggregation=options.aggregation,
        sampling=options.sampling,
        max_tokens=options.max_tokens,
        stop=options.stops,
        constraint=constraint,
        prefix_cache=settings.prefix_cache,
        logit_bias=options.bias(loaded.vocab_size),
        speculative_tokens=settings.speculative_tokens,
        deterministic=settings.deterministic,
        head_scales=model_mspoe_scales(loaded.config) if settings.strategy == "ms-poe" else (),
        bucket_layers=_bucket_layers(settings.bucket_layers, loaded, len(bases)),
    )
    with_tools = bool(tools) and choice.kind != "none"
    schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
    parser = None
    if with_tools:
        parser = fmt.parser(schemas, reasoning_opened=opened)
    elif fmt.reasoning:  # no calls to read, but reasoning to keep out of the content
        parser = _TextAndReasoning(fmt.reasoning, fmt.end_markers).parser({}, reasoning_opened=opened)
    guard = answer_guard(loaded.tokenizer, tools, dicts, options.response_format, options.loop_chars)
    name = options.model or settings.model_name
    return Call(engine, request, parser, name, bases, state, guard, bucket_choice, tool_format=fmt.name)


class _TextAndReasoning(Format):
    """A format that reads reasoning and text only: a call written with no tools bound is text."""

    name = "text"

    def __init__(self, reasoning: tuple[str, str], end_markers: tuple[str, ...] = ()) -> None:
        self.reasoning, self.end_markers = reasoning, end_markers

    def split_calls(self, s: str, final: bool):
        return [text_piece(s)]


def _bucket_layers(fraction: float, loaded: LoadedModel, n_buckets: int) -> int | None:
    """``bucket_layers`` as a number of layers for the engine (None: all, or one bucket)."""
    if fraction >= 1.0 or n_buckets == 1:
        return None
    return max(1, round(fraction * loaded.config.num_hidden_layers))


# Why the text ended, by finish_reason: the error of a call it cut off.
_ENDED = {
    "length": "max_tokens reached",
    "stop": "the answer ended",
    "grammar_dead_end": "the grammar allowed no further token",
    "cancelled": "the stream was cancelled",
}


@dataclass
class Call:
    """A prepared call: the engine request, the parser, and what the chunks report.

    Each tool call streams as tool_call_chunks with its index: the first carries the name
    and a fresh id, later ones argument text. langchain-core merges chunks by index and
    rebuilds ``invalid_tool_calls`` from them with ``error=None``, so the reasons travel in
    the last chunk's ``response_metadata["tool_call_errors"]`` (call id -> reason), and
    ``collect`` writes them into ``invalid_tool_calls[].error``.
    """

    engine: Engine
    request: Request
    parser: FormatParser | None
    model_name: str
    bases: tuple[float, ...]
    decision: dict | None = None  # the tool decision's state and bias, when one applied
    guard: AnswerGuard | None = None  # ends the answer's text at a loop or a fallback marker
    bucket_choice: str = ""  # what the ``bases`` setting chose for this call, in words
    ids: dict[int, str] = field(default_factory=dict)  # call index -> id
    errors: dict[str, str] = field(default_factory=dict)  # id of an invalid call -> reason
    tool_format: str = "hermes"  # the format the answer is read in (response metadata)

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
        text, calls, extra = "", [], {}
        if self.parser and not self.stopped:
            tail = self._parsed(self._guarded(self.parser.finish(ended))).message
            text, calls, extra = tail.content, tail.tool_call_chunks, tail.additional_kwargs
        if self.guard and not self.stopped:  # text held back as a possible marker's start
            text += self.guard.finish()
        truncated = not self.stopped and self.truncated(result)
        finish_reason = "stop" if self.stopped else "length" if truncated else result.finish_reason
        message = AIMessageChunk(
            content=text,
            additional_kwargs=extra,
            tool_call_chunks=calls,
            usage_metadata={
                "input_tokens": result.prompt_tokens,
                "output_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
                "input_token_details": {"cache_read": result.cached_tokens},
            },
            response_metadata=self._metadata(result, finish_reason, truncated),
            chunk_position="last",
        )
        return ChatGenerationChunk(message=message, generation_info={"finish_reason": finish_reason})

    def truncated(self, result: Result) -> bool:
        """Whether the budget ended the answer: max_tokens (or the context window) reached, or a
        constrained output (JSON, a forced call) closed early to fit in ``max_tokens``."""
        return result.finish_reason == "length" or bool(getattr(self.request.constraint, "closed_early", False))

    def _metadata(self, result: Result, finish_reason: str, truncated: bool = False) -> dict:
        metadata = {
            "model_name": self.model_name,
            "model_provider": "attention_buckets",
            "finish_reason": finish_reason,
            "truncated": truncated,
            "bases": list(self.bases),
            "bucket_choice": self.bucket_choice,
            "aggregation": self.request.aggregation,
            "strategy": "ms-poe" if self.request.head_scales else "buckets",
            "time_to_first_token": result.time_to_first_token,
            "tool_format": self.tool_format,
        }
        if truncated:
            metadata["max_tokens"] = self.request.max_tokens  # the budget that cut it (None: the context window)
        if self.request.bucket_layers is not None:
            metadata["bucket_layers"] = self.request.bucket_layers  # layers with the buckets' own bases
        if self.decision is not None:
            metadata["tool_decision"] = dict(self.decision)
        if self.stopped:
            metadata["stopped_by"] = self.guard.stopped_by
        if self.errors:
            metadata["tool_call_errors"] = dict(self.errors)
        return metadata

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
        reasoning = "".join(e.text for e in events if isinstance(e, ReasoningPiece))
        # reasoning as langchain-ollama and langchain-deepseek send it (content_blocks shows a "reasoning" block)
        extra = {"reasoning_content": reasoning} if reasoning else {}
        # One tool_call_chunk per call in a chunk: langchain-core merges by index only across chunks.
        calls: dict[int, dict] = {}
        for e in events:
            if isinstance(e, CallStart):
                self.ids[e.index] = e.id or f"call_{uuid.uuid4().hex[:24]}"
                calls[e.index] = tool_call_chunk(name=e.name, args="", id=self.ids[e.index], index=e.index)
            elif isinstance(e, ArgsDelta):
                calls.setdefault(e.index, tool_call_chunk(name=None, args="", id=None, index=e.index))["args"] += e.text
            elif isinstance(e, ParsedCall) and not e.valid:
                self.errors[self.ids[e.index]] = e.error
        message = AIMessageChunk(content=text, additional_kwargs=extra, tool_call_chunks=list(calls.values()))
        return ChatGenerationChunk(message=message)


def collect(chunks: list[ChatGenerationChunk]) -> ChatResult:
    """The stream merged into one message; each invalid call gets its reason as ``error``."""
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    msg = merged.message
    errors = msg.response_metadata.get("tool_call_errors", {})
    invalid = [{**c, "error": c.get("error") or errors.get(c["id"])} for c in msg.invalid_tool_calls]
    message = AIMessage(
        content=msg.content,
        additional_kwargs=msg.additional_kwargs,
        tool_calls=msg.tool_calls,
        invalid_tool_calls=invalid,
        usage_metadata=msg.usage_metadata,
        response_metadata=msg.response_metadata,
        id=msg.id,
    )
    return ChatResult(generations=[ChatGeneration(message=message, generation_info=merged.generation_info)])
