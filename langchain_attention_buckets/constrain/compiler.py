"""The compiler: grammars -> xgrammar compiled grammars -> one constraint per request.

Owns everything that touches xgrammar's compiled objects: `ConstraintCompiler` (one
per tokenizer, from `compiler_for`; compiled grammars in a bounded LRU keyed by the
spec's canonical JSON) and `GrammarConstraint` (a fresh matcher per request, which
masks logits in place and advances by the chosen token: the `sampling.TokenConstraint`
protocol).

May import `grammar`, `schema` and torch, never the engine or the chat model
(`GrammarConstraint` meets the protocol structurally). xgrammar is imported lazily, on
the first compile (it costs ~2 s).
"""

from __future__ import annotations

import importlib.util
import json
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from ..engine.sampling import Constraint, keep_only
from .grammar import (
    HERMES,
    JSON_STYLE,
    CallSyntax,
    ToolChoiceMode,
    answer_format,
    json_grammar,
    plan_tool_calls,
    select_tools,
    tool_calls_format,
    tool_calls_or_json_format,
)
from .schema import compile_error, prepare_schema, schema_owner
from .steering import Steering, TokenTable

if TYPE_CHECKING:  # pragma: no cover
    import xgrammar

__all__ = ["CacheInfo", "ConstraintCompiler", "GrammarConstraint", "compiler_for"]


def _xgr():
    import xgrammar

    return xgrammar


# ---------------------------------------------------------------------------
# Per-request state: mask and advance
# ---------------------------------------------------------------------------

_CPU_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_BACKENDS: dict[tuple[str, torch.dtype], str] = {}


def _backend_for(device: torch.device, dtype: torch.dtype) -> str:
    """xgrammar's fastest kernel for this device and dtype; torch ops otherwise."""
    key = (device.type, dtype)
    if key not in _BACKENDS:
        if device.type == "cpu" and dtype in _CPU_KERNEL_DTYPES:
            _BACKENDS[key] = "cpu"
        elif device.type == "cuda" and _has_triton():
            _BACKENDS[key] = "triton"
        else:
            _BACKENDS[key] = "torch_native"
    return _BACKENDS[key]


def _has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


class GrammarConstraint(Constraint):
    """One request's grammar state: an xgrammar matcher over a shared compiled grammar.

    Implements `sampling.TokenConstraint`: `apply_mask` is the grammar's mask. Not
    thread-safe; one per generation. With a token table (the compiler always gives one),
    `apply_steering` also steers: degenerate repetition in strings and arrays is closed, and
    after `limit(max_tokens)` the output is complete within the budget (see `steering`).
    """

    def __init__(
        self,
        compiled: xgrammar.CompiledGrammar,
        vocab_size: int,
        table: TokenTable | None = None,
        label: str = "output",
        syntax: CallSyntax = HERMES,
    ) -> None:
        xgr = _xgr()
        self._matcher = xgr.GrammarMatcher(compiled)
        self._vocab_size = vocab_size
        self._set_bitmask(xgr.allocate_token_bitmask(1, vocab_size))  # (1, ceil(V/32)) int32, CPU
        self._device_bitmask: torch.Tensor | None = None
        self.label = label
        self._steer = None
        if table is not None:
            # a bare-JSON opener (Llama's '{"name"') is the call's own JSON: no fresh start there
            openers = tuple(m for m in syntax.openers if not m.startswith("{"))
            ends = syntax.reasoning[1:] if syntax.reasoning else ()
            json_openers = tuple(m for m in syntax.openers if m.startswith("{"))
            self._steer = Steering(
                self._matcher, table, self._bitmask, None, markers=openers, ends=ends, json_openers=json_openers
            )

    def limit(self, max_tokens: int | None) -> GrammarConstraint:
        """Keep the output complete and valid within `max_tokens` tokens; returns self.

        Raises:
            ValueError: `max_tokens` is below the fewest tokens of a complete output (the
                message names that minimum and the shortest output).
        """
        if self._steer is None or max_tokens is None:
            return self
        shortest = self.shortest()
        if shortest is not None and max_tokens < shortest[0]:
            n, text = shortest
            raise ValueError(
                f"max_tokens={max_tokens} is below {n}, the fewest tokens {self.label} takes "
                f"(the shortest is {text!r}); use max_tokens >= {n}"
            )
        self._steer.max_tokens = max_tokens
        return self

    def shortest(self) -> tuple[int, str] | None:
        """(tokens, text) of the shortest completion found from the current state, or None."""
        plan = None if self._steer is None else self._steer.plan()
        if plan is None:
            return None
        text = b"".join(self._steer.table.bytes[t] for t in plan)
        return len(plan), text.decode("utf-8", errors="replace")

    def apply_mask(self, logits: torch.Tensor) -> bool:
        """Set the logits of tokens the grammar forbids now to -inf, in place.

        Args:
            logits: one row `(vocab,)`, any float dtype, on CPU or CUDA. Entries past the
                tokenizer's vocab (a padded lm_head) are always forbidden.

        Returns:
            False when no token is allowed (a dead end, or the grammar already terminated);
            the whole row is then -inf. True otherwise.
        """
        if logits.dim() != 1:
            raise ValueError(f"apply_mask takes one logits row (1-D), got shape {tuple(logits.shape)}")
        return self._apply_grammar(logits)

    def apply_steering(self, logits: torch.Tensor) -> None:
        """After the mask: keep only the tokens that keep the output complete within the budget,
        or the closer of a degenerate repetition (see ``steering``), when either applies."""
        keep = None if self._steer is None else self._steer.restrict(logits)
        if keep is not None:
            keep_only(logits, keep)

    def _apply_grammar(self, logits: torch.Tensor) -> bool:
        if self._matcher.is_terminated():
            logits.fill_(-math.inf)
            return False
        need_apply = self._matcher.fill_next_token_bitmask(self._bitmask)
        if logits.shape[0] > self._vocab_size:
            logits[self._vocab_size :] = -math.inf
        if not need_apply:  # every token allowed
            return True
        if not self._bitmask_np.any():
            logits.fill_(-math.inf)
            return False
        row = logits.unsqueeze(0) if logits.is_contiguous() else logits.contiguous().unsqueeze(0)  # (1, vocab)
        _xgr().apply_token_bitmask_inplace(
            row,
            self._bitmask_on(logits.device),
            vocab_size=min(logits.shape[0], self._vocab_size),
            backend=_backend_for(logits.device, logits.dtype),
        )
        if row.data_ptr() != logits.data_ptr():
            logits.copy_(row[0])
        return True

    def accept(self, token_id: int) -> None:
        """Advance by the chosen token. Raises ValueError if the grammar forbids it."""
        if self._matcher.is_terminated():
            raise ValueError(f"token {token_id} after the grammar terminated")
        if not self._matcher.accept_token(int(token_id)):
            raise ValueError(f"token {token_id} is not allowed by the grammar at this point")
        if self._steer is not None:
            self._steer.accepted(int(token_id))

    def is_terminated(self) -> bool:
        """True once a stop token was accepted."""
        return self._matcher.is_terminated()

    @property
    def closed_early(self) -> bool:
        """Whether the budget (``limit``) overrode the model's pick to close the output in time."""
        return self._steer is not None and self._steer.closed_early

    def _set_bitmask(self, bitmask: torch.Tensor) -> None:
        self._bitmask = bitmask
        self._bitmask_np = bitmask.numpy()  # same memory; numpy's any() is cheaper on 1.5k words

    def _bitmask_on(self, device: torch.device) -> torch.Tensor:
        if device.type == "cpu":
            return self._bitmask
        if self._device_bitmask is None or self._device_bitmask.device != device:
            # Pinned host memory makes the copy below asynchronous; the engine syncs on the
            # chosen token (accept takes an int) before the next fill overwrites the buffer.
            if torch.cuda.is_available():
                self._set_bitmask(self._bitmask.pin_memory())
            self._device_bitmask = torch.empty_like(self._bitmask, device=device)
        self._device_bitmask.copy_(self._bitmask, non_blocking=True)
        return self._device_bitmask



# ---------------------------------------------------------------------------
# The compiler: one per tokenizer, compiled grammars in a bounded LRU
# ---------------------------------------------------------------------------



class CacheInfo(NamedTuple):
    hits: int
    misses: int
    size: int
    maxsize: int


class ConstraintCompiler:
    """Compiles tool-call and JSON grammars for one tokenizer; hands out fresh constraints.

    Build it with `compiler_for` (cached per tokenizer) or `from_tokenizer`. Compiled
    grammars are kept in an LRU of `cache_size` entries keyed by the canonical JSON of the
    spec (insertion order kept: property order shapes the grammar).

    Args:
        tokenizer_info: an `xgrammar.TokenizerInfo` (its vocab_size is the mask width).
        cache_size: how many compiled grammars to keep. Default 64.
    """

    def __init__(self, tokenizer_info: xgrammar.TokenizerInfo, *, cache_size: int = 64) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        # xgrammar's own compiler cache is unbounded; ours below is the one cache.
        self._xgc = _xgr().GrammarCompiler(tokenizer_info, cache_enabled=False)
        self.tokenizer_info = tokenizer_info
        self.vocab_size: int = tokenizer_info.vocab_size
        self.stop_token_ids: list[int] = list(tokenizer_info.stop_token_ids)
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size
        self._hits = self._misses = 0
        self._lock = threading.Lock()
        self._table: TokenTable | None = None

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer: Any,
        *,
        vocab_size: int | None = None,
        stop_token_ids: int | list[int] | None = None,
        cache_size: int = 64,
        markers: tuple[str, ...] = (),
    ) -> ConstraintCompiler:
        """Build from a Hugging Face tokenizer.

        Args:
            tokenizer: a transformers tokenizer.
            vocab_size: the model's `config.vocab_size` (the logits width). Default: the
                tokenizer's own size.
            stop_token_ids: ids that end the output. Default: the tokenizer's eos id.
            cache_size: see the class docstring.

            markers: special tokens that are a format's markers (``[TOOL_CALLS]``,
                ``<|python_tag|>``), allowed where the grammar writes them.

        Special added tokens other than the stop tokens and ``markers`` (e.g. `<|im_start|>`)
        are never allowed: constrained output is text and markers followed by a stop token.
        """
        xgr = _xgr()
        stops = _stop_ids(tokenizer, stop_token_ids)
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stops)
        vocab_ids = tokenizer.get_vocab()
        kept = {vocab_ids[m] for m in markers if m in vocab_ids}
        special = _special_ids(tokenizer) - set(stops) - kept
        if special:
            # xgrammar treats a token whose text is empty as special: never allowed.
            vocab = [""] * info.vocab_size
            for text, i in vocab_ids.items():
                if i < info.vocab_size and i not in special:
                    vocab[i] = _encoded(text, info.vocab_type) if i in kept else text
            info = xgr.TokenizerInfo.from_vocab_and_metadata(vocab, info.dump_metadata())
        return cls(info, cache_size=cache_size)

    def tool_calls(
        self,
        tools: list[dict],
        *,
        mode: ToolChoiceMode,
        allowed: list[str] | None = None,
        parallel: bool = True,
        syntax: CallSyntax = HERMES,
    ) -> GrammarConstraint:
        """A constraint for a turn with tools bound.

        Args:
            tools: OpenAI-format tool dicts.
            mode: "forced": one or more calls (exactly one when not `parallel`), nothing
                else. "auto": free text, then optionally calls; from `<tool_call>` on the
                call is constrained and only calls (or the end) may follow. "none": free
                text that never contains `<tool_call>`.
            allowed: names the calls may use (default: all tools).
            parallel: allow several calls (in the syntax's own way: a newline between Hermes
                blocks, ``; `` between Llama objects, ``, `` in Mistral's list).
            syntax: the family's call syntax (default: the package's own, Hermes).

        Raises:
            ValueError: bad tools, unknown `allowed` names, no tool to force, or a schema
                the grammar cannot enforce (the message names the tool and keyword).
        """
        specs, mode, parallel = plan_tool_calls(tools, mode, allowed, parallel)
        # Only what shapes the grammar goes in the key (no descriptions).
        spec = {"kind": "tool_calls", "mode": mode, "parallel": parallel, "tools": specs, **_syntax_key(syntax)}
        label = "the output" if mode != "forced" else f"a call of {specs[0][0]}" if len(specs) == 1 else "a tool call"
        build = lambda: self._compile_structural(tool_calls_format(specs, mode, parallel, syntax))  # noqa: E731
        return self._constraint(spec, build, label, syntax)

    def tool_calls_or_json(
        self,
        tools: list[dict],
        schema: dict | bool,
        *,
        allowed: list[str] | None = None,
        parallel: bool = True,
        syntax: CallSyntax = HERMES,
    ) -> GrammarConstraint:
        """A constraint for tools plus a structured final answer: the output is either
        calls (as in mode "forced") or one JSON value valid under `schema` (as in
        `json_schema`), nothing else. With no (allowed) tools it is `json_schema(schema)`.

        Raises:
            ValueError: as `tool_calls` and `json_schema`.
        """
        specs = select_tools(tools, allowed)
        if not specs:
            return self.json_schema(schema, syntax=syntax)
        owner = schema_owner(schema)
        schema = prepare_schema(schema, owner)
        spec = {"kind": "tool_calls_or_json", "parallel": bool(parallel), "tools": specs, "schema": schema, **_syntax_key(syntax)}

        def build():
            return self._compile_structural(tool_calls_or_json_format(specs, schema, owner, parallel, syntax))

        return self._constraint(spec, build, "a tool call or an answer", syntax)

    def json_schema(self, schema: dict | bool, syntax: CallSyntax = HERMES) -> GrammarConstraint:
        """A constraint whose output is one JSON value valid under `schema` (compact form).

        Objects admit only their declared properties unless `additionalProperties` says
        otherwise (xgrammar's strict mode). A `syntax` with reasoning lets the reasoning come first.

        Raises:
            ValueError: a schema the grammar cannot enforce (names the title and keyword).
        """
        owner = schema_owner(schema)
        schema = prepare_schema(schema, owner)

        def build():
            if _reasons(syntax):
                return self._compile_structural(answer_format(json_grammar(schema, owner), syntax))
            try:
                return self._xgc.compile_json_schema(schema, **JSON_STYLE, strict_mode=True)
            except (RuntimeError, ValueError) as err:
                raise compile_error(owner, err) from None

        spec = {"kind": "json_schema", "schema": schema, **(_syntax_key(syntax) if _reasons(syntax) else {})}
        return self._constraint(spec, build, f"a value of {owner}", syntax)

    def json_object(self, syntax: CallSyntax = HERMES) -> GrammarConstraint:
        """A constraint whose output is any JSON object (JSON mode), after any reasoning of `syntax`."""
        schema = {"type": "object"}

        def build():
            if _reasons(syntax):
                grammar = _xgr().Grammar.from_json_schema(schema, **JSON_STYLE)
                return self._compile_structural(answer_format(grammar, syntax))
            return self._xgc.compile_json_schema(schema, **JSON_STYLE)

        spec = {"kind": "json_object", **(_syntax_key(syntax) if _reasons(syntax) else {})}
        return self._constraint(spec, build, "a JSON object", syntax)

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the compiled-grammar cache."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self._cache_size)

    def _compile_structural(self, fmt: dict) -> Any:
        try:
            return self._xgc.compile_structural_tag({"type": "structural_tag", "format": fmt})
        except (RuntimeError, ValueError) as err:
            raise compile_error("tool calls", err) from None

    def token_table(self) -> TokenTable:
        """The bytes of every token (built on first use; the budget and repetition control read it)."""
        with self._lock:
            if self._table is None:
                self._table = TokenTable(self.tokenizer_info.decoded_vocab, self.stop_token_ids)
            return self._table

    def _constraint(self, spec: dict, build: Callable[[], Any], label: str, syntax: CallSyntax = HERMES) -> GrammarConstraint:
        key = json.dumps(spec, separators=(",", ":"))
        with self._lock:
            compiled = self._cache.get(key)
            if compiled is not None:
                self._cache.move_to_end(key)
                self._hits += 1
            else:
                self._misses += 1
        if compiled is None:
            compiled = build()  # outside the lock: compiles can take tens of ms
            with self._lock:
                self._cache[key] = compiled
                self._cache.move_to_end(key)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return GrammarConstraint(compiled, self.vocab_size, self.token_table(), label, syntax)


def _syntax_key(syntax: CallSyntax) -> dict:
    """The syntax in a cache key; nothing for the default (the keys of Hermes grammars stay as they were)."""
    return {} if syntax == HERMES else {"syntax": syntax.key()}


def _reasons(syntax: CallSyntax) -> bool:
    return syntax.reasoning is not None and syntax.reasoning_start != "none"


def _stop_ids(tokenizer: Any, stop_token_ids: int | list[int] | None) -> list[int]:
    if stop_token_ids is None:
        stop_token_ids = getattr(tokenizer, "eos_token_id", None)
    if isinstance(stop_token_ids, int):
        stop_token_ids = [stop_token_ids]
    if not stop_token_ids:
        raise ValueError("stop_token_ids is required: the tokenizer has no eos_token_id")
    return [int(i) for i in stop_token_ids]


def _encoded(marker: str, vocab_type: Any) -> str:
    """A special token's text as the vocabulary spells tokens (byte-level: each byte as its
    printable stand-in), so that it decodes back to ``marker`` (DeepSeek's markers are not ASCII)."""
    if vocab_type != _xgr().VocabType.BYTE_LEVEL:
        return marker
    return "".join(_BYTE_CHARS[b] for b in marker.encode("utf-8"))


def _byte_chars() -> dict[int, str]:
    """GPT-2's byte -> printable character table (byte-level BPE vocabularies)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b], extra = chr(256 + extra), extra + 1
    return table


_BYTE_CHARS = _byte_chars()


def _special_ids(tokenizer: Any) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", ()))
    for i, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(i))
    return ids


_COMPILERS: dict[tuple, tuple[weakref.ref, ConstraintCompiler]] = {}
_COMPILERS_LOCK = threading.Lock()


def compiler_for(
    tokenizer: Any,
    *,
    vocab_size: int | None = None,
    stop_token_ids: int | list[int] | None = None,
    markers: Sequence[str] = (),
) -> ConstraintCompiler:
    """The `ConstraintCompiler` for this tokenizer object, built once and then reused.

    Keyed by the tokenizer's identity (weakly: the entry goes when the tokenizer does)
    and the arguments. See `ConstraintCompiler.from_tokenizer` for the arguments.
    """
    stops = tuple(_stop_ids(tokenizer, stop_token_ids))
    markers = tuple(sorted(set(markers)))
    key = (id(tokenizer), vocab_size, stops, markers)
    with _COMPILERS_LOCK:
        entry = _COMPILERS.get(key)
        if entry is not None and entry[0]() is tokenizer:
            return entry[1]
    compiler = ConstraintCompiler.from_tokenizer(tokenizer, vocab_size=vocab_size, stop_token_ids=list(stops), markers=markers)
    try:
        ref = weakref.ref(tokenizer)
    except TypeError:  # not weakly referenceable: do not cache rather than keep it alive
        return compiler
    with _COMPILERS_LOCK:
        _COMPILERS[key] = (ref, compiler)
    weakref.finalize(tokenizer, _COMPILERS.pop, key, None)
    return compiler
