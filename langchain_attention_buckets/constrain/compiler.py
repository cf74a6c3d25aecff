"""Constrained decoding: tool-call and JSON grammars -> one token mask per decoding step.

Flow, by function name:

    compiler_for(tokenizer, vocab_size=..., stop_token_ids=...)   # one per tokenizer, cached
      .tool_calls(tools, mode=..., allowed=..., parallel=...)     # or .json_schema / .json_object
        -> compiled grammar (bounded LRU keyed by the spec's canonical JSON)
        -> GrammarConstraint (a fresh xgrammar matcher for this request)
    engine, each step: merge -> constraint.apply_mask(logits) -> temperature -> top-k/top-p
                       -> pick -> constraint.accept(token_id)

This module is on the ground floor: it knows tools only as OpenAI-format dicts
(`{"type": "function", "function": {"name", "description", "parameters"}}`) and
schemas only as JSON-schema dicts. It imports neither the engine nor the chat model;
the engine duck-types `TokenConstraint`. xgrammar is imported lazily (it costs ~2 s).

Every problem with a tool or schema is a `ValueError` raised when the grammar is
compiled, never in the middle of generation. A dead end during generation (no token
allowed) is reported by `apply_mask` returning False.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable

import torch

from .tool_format import CALL_SEPARATOR, TOOL_CALL_CLOSE, TOOL_CALL_OPEN

if TYPE_CHECKING:  # pragma: no cover
    import xgrammar

__all__ = [
    "CacheInfo",
    "ConstraintCompiler",
    "GrammarConstraint",
    "TokenConstraint",
    "ToolChoiceMode",
    "compiler_for",
]

ToolChoiceMode = Literal["forced", "auto", "none"]

# Compact JSON on one line, as `tool_format.format_tool_call` writes it (json.dumps defaults).
_SEPARATORS = (", ", ": ")


@runtime_checkable
class TokenConstraint(Protocol):
    """What the decoding engine needs from a grammar, per request."""

    def apply_mask(self, logits: torch.Tensor) -> bool:
        """Set disallowed entries of a 1-D logits row (vocab-sized, any float dtype, CPU or
        CUDA) to -inf in place. Returns False when no token is allowed (a dead end)."""
        ...

    def accept(self, token_id: int) -> None:
        """Advance the grammar by the chosen token (raise ValueError if it was not allowed)."""
        ...

    def is_terminated(self) -> bool:
        """True once the grammar has accepted a stop token (the output is complete)."""
        ...


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


class GrammarConstraint:
    """One request's grammar state: an xgrammar matcher over a shared compiled grammar.

    Implements `TokenConstraint`. Not thread-safe; one per generation.
    """

    def __init__(self, compiled: xgrammar.CompiledGrammar, vocab_size: int) -> None:
        xgr = _xgr()
        self._matcher = xgr.GrammarMatcher(compiled)
        self._vocab_size = vocab_size
        self._set_bitmask(xgr.allocate_token_bitmask(1, vocab_size))  # (1, ceil(V/32)) int32, CPU
        self._device_bitmask: torch.Tensor | None = None

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

    def is_terminated(self) -> bool:
        """True once a stop token was accepted."""
        return self._matcher.is_terminated()

    def is_completed(self) -> bool:
        """True when the text so far is a complete output (a stop token may come next)."""
        return self._matcher.is_completed()

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
# Schema checks: refuse what xgrammar would silently not enforce
# ---------------------------------------------------------------------------

# Validation keywords that xgrammar 0.2.8 accepts but does not enforce: a grammar built
# without them could emit output that the schema rejects, so they are refused up front.
_UNENFORCED = frozenset(
    {
        "not",
        "if",
        "then",
        "else",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "$dynamicRef",
        "$recursiveRef",
    }
)
_NUMERIC_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = (
    "items",
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "unevaluatedItems",
    "additionalItems",
)
# Regex features xgrammar ignores (lookaround) or cannot express (backreferences).
_UNSUPPORTED_REGEX = re.compile(r"\(\?<?[=!]|\\[1-9]")
# For naming the keyword in xgrammar's own error messages; most specific first.
_KEYWORDS_IN_ERRORS = (
    "$ref",
    "$defs",
    "definitions",
    "prefixItems",
    "additionalProperties",
    "patternProperties",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minimum",
    "maximum",
    "multipleOf",
    "required",
    "properties",
    "items",
    "pattern",
    "format",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "type",
)


def _schema_error(owner: str, keyword: str, path: str, why: str) -> ValueError:
    return ValueError(f"{owner}: cannot use JSON schema keyword '{keyword}' at {path}: {why}")


def _check_schema(node: Any, path: str, root: Any, owner: str) -> None:
    """Raise ValueError for constructs that would not be enforced; recurse into subschemas."""
    if isinstance(node, bool):
        return
    if not isinstance(node, dict):
        raise ValueError(f"{owner}: the schema at {path} must be an object or a boolean, got {node!r}")
    for kw in node:
        if kw in _UNENFORCED:
            raise _schema_error(owner, kw, path, "xgrammar does not enforce it, so outputs could violate the schema")
    for kw in _SUBSCHEMA_MAPS:
        _typed(node, kw, dict, path, owner)
    for kw in (*_SUBSCHEMA_LISTS, "required"):
        _typed(node, kw, list, path, owner)
    if len(node.get("allOf", ())) > 1:
        raise _schema_error(owner, "allOf", path, "only a single-branch allOf is supported; merge the branches")
    ref = node.get("$ref")
    if ref is not None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _schema_error(
                owner, "$ref", path, f"only local references ('#/$defs/...') are supported, got {ref!r}"
            )
        if _resolve(root, ref) is None:
            raise _schema_error(owner, "$ref", path, f"cannot resolve {ref!r}")
    for kw in _NUMERIC_BOUNDS:
        if kw in node and (isinstance(node[kw], bool) or not isinstance(node[kw], (int, float))):
            raise _schema_error(owner, kw, path, f"must be a number, got {node[kw]!r}")
    if "multipleOf" in node:
        types = node.get("type")
        types = [types] if isinstance(types, str) else types or []
        if "integer" not in types or "number" in types or not float(node["multipleOf"]).is_integer():
            raise _schema_error(
                owner, "multipleOf", path, "enforced only on integer schemas with a whole-number divisor"
            )
    if isinstance(node.get("items"), list):
        raise _schema_error(owner, "items", path, "the tuple form (a list) is not supported; use prefixItems")
    patterns = [node.get("pattern")] + list(node.get("patternProperties", {}))
    for pat in patterns:
        if isinstance(pat, str) and _UNSUPPORTED_REGEX.search(pat):
            raise _schema_error(owner, "pattern", path, f"lookaround and backreferences are not supported: {pat!r}")
    required = node.get("required", [])
    if required and "patternProperties" not in node:
        declared = node.get("properties", {})
        missing = [name for name in required if name not in declared]
        if missing:
            raise _schema_error(owner, "required", path, f"names {missing} that are not declared in properties")
    if "oneOf" in node:
        _check_one_of(node["oneOf"], path, root, owner)
    for kw in _SUBSCHEMA_MAPS:
        for name, sub in _typed(node, kw, dict, path, owner).items():
            _check_schema(sub, f"{path}/{kw}/{name}", root, owner)
    for kw in _SUBSCHEMA_LISTS:
        for i, sub in enumerate(_typed(node, kw, list, path, owner)):
            _check_schema(sub, f"{path}/{kw}/{i}", root, owner)
    for kw in _SUBSCHEMAS:
        if kw in node:
            _check_schema(node[kw], f"{path}/{kw}", root, owner)


def _typed(node: dict, kw: str, kind: type, path: str, owner: str) -> Any:
    value = node.get(kw, kind())
    if not isinstance(value, kind):
        raise _schema_error(owner, kw, path, f"must be {'an object' if kind is dict else 'a list'}, got {value!r}")
    return value


def _resolve(root: Any, ref: str, depth: int = 0) -> Any:
    """The schema a local `$ref` points to (following chains), or None."""
    node = root
    for part in ref.lstrip("#").split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict) and isinstance(node.get("$ref"), str) and depth < 16:
        return _resolve(root, node["$ref"], depth + 1)
    return node


# xgrammar enforces oneOf exactly only when it can prove the branches disjoint and
# otherwise falls back to anyOf (an output could then match two branches). Require
# disjointness we can see: different types, different const/enum values, or a required
# property whose const/enum values differ (a discriminator, as pydantic emits).


def _check_one_of(branches: list, path: str, root: Any, owner: str) -> None:
    sigs = [_signature(b, root) for b in branches]
    for i in range(len(branches)):
        for j in range(i + 1, len(branches)):
            if not _disjoint(sigs[i], sigs[j], branches[i], branches[j], root):
                raise _schema_error(
                    owner,
                    "oneOf",
                    path,
                    f"branches {i} and {j} may overlap, which cannot be enforced exactly; use anyOf, "
                    "or make the branches differ by type or by a required const/enum property",
                )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "null")


def _canonical(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True)


def _signature(schema: Any, root: Any) -> tuple[frozenset | None, frozenset | None]:
    """(JSON types, canonical const/enum values) a schema admits; None where unknown."""
    if isinstance(schema, dict) and "$ref" in schema:
        schema = _resolve(root, schema["$ref"])
    if not isinstance(schema, dict):
        return None, None
    if "const" in schema:
        return frozenset({_json_type(schema["const"])}), frozenset({_canonical(schema["const"])})
    if "enum" in schema:
        values = schema["enum"]
        return frozenset(_json_type(v) for v in values), frozenset(_canonical(v) for v in values)
    types = schema.get("type")
    if types is not None:
        return frozenset([types] if isinstance(types, str) else types), None
    return None, None


def _types_overlap(a: frozenset, b: frozenset) -> bool:
    def widen(t: frozenset) -> frozenset:
        return t | {"number"} if "integer" in t else t | {"integer"} if "number" in t else t

    return bool(widen(a) & widen(b))


def _disjoint(sa: tuple, sb: tuple, a: Any, b: Any, root: Any) -> bool:
    (ta, va), (tb, vb) = sa, sb
    if va is not None and vb is not None:
        return not (va & vb)
    if ta is not None and tb is not None and not _types_overlap(ta, tb):
        return True
    a, b = (_resolve(root, x["$ref"]) if isinstance(x, dict) and "$ref" in x else x for x in (a, b))
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return False
    shared = set(a.get("required", ())) & set(b.get("required", ()))
    for name in shared:
        pa = _signature(a.get("properties", {}).get(name), root)[1]
        pb = _signature(b.get("properties", {}).get(name), root)[1]
        if pa is not None and pb is not None and not (pa & pb):
            return True
    return False


def _compile_error(owner: str, err: Exception) -> ValueError:
    """Turn an xgrammar compile error into a ValueError naming the owner and keyword."""
    msg = (str(err).strip() or type(err).__name__).splitlines()[0]
    msg = re.sub(r"^\[[\d:]+\] \S+: ", "", msg)  # drop xgrammar's "[time] file.cc:line: "
    for kw in _KEYWORDS_IN_ERRORS:
        if re.search(rf"(?<![\w$]){re.escape(kw)}(?!\w)", msg):
            return ValueError(f"{owner}: xgrammar cannot compile the schema (keyword '{kw}'): {msg}")
    return ValueError(f"{owner}: xgrammar cannot compile the schema: {msg}")


def _prepare_schema(schema: Any, owner: str) -> dict:
    if schema is True:
        return {}
    if schema is False:
        raise ValueError(f"{owner}: the schema `false` admits no value")
    _check_schema(schema, "#", schema, owner)
    return schema


# ---------------------------------------------------------------------------
# Tools -> structural tag
# ---------------------------------------------------------------------------


def _tool_name_and_parameters(tool: Any) -> tuple[str, dict]:
    if not isinstance(tool, dict):
        raise ValueError(f"a tool must be an OpenAI-format dict, got {type(tool).__name__}")
    if tool.get("type", "function") != "function" or not isinstance(tool.get("function"), dict):
        raise ValueError(f"a tool must look like {{'type': 'function', 'function': {{...}}}}, got keys {sorted(tool)}")
    fn = tool["function"]
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"a tool's function needs a non-empty string name, got {name!r}")
    owner = f"tool '{name}'"
    params = fn.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}
    params = _prepare_schema(params, owner)
    if not any(k in params for k in ("type", "$ref", "anyOf", "oneOf", "allOf")):
        params = {"type": "object", **params}
    if params.get("type", "object") != "object":
        raise ValueError(f"{owner}: parameters must be an object schema (type 'object'), got {params['type']!r}")
    return name, params


def _select_tools(tools: list, allowed: list[str] | None) -> list[tuple[str, dict]]:
    specs = [_tool_name_and_parameters(t) for t in tools]
    names = [name for name, _ in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"tool names must be unique, repeated: {dupes}")
    if allowed is None:
        return specs
    unknown = [n for n in allowed if n not in names]
    if unknown:
        raise ValueError(f"allowed names {unknown} are not among the tools {names}")
    return [(n, p) for n, p in specs if n in allowed]


def _call_tag(specs: list[tuple[str, dict]]) -> dict:
    """`<tool_call>{"name": N, "arguments": A}</tool_call>`, N among specs, A per N's schema;
    a single optional "\\n" after the open marker and before the close marker."""
    bodies = []
    for name, params in specs:
        grammar = _json_grammar(params, f"tool '{name}'")
        head = '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments": '
        bodies.append(_seq(_const(head), {"type": "grammar", "grammar": _ebnf(grammar)}, _const("}")))
    newline = {"type": "optional", "content": _const("\n")}
    body = bodies[0] if len(bodies) == 1 else {"type": "or", "elements": bodies}
    return {"type": "tag", "begin": TOOL_CALL_OPEN, "content": _seq(newline, body, newline), "end": TOOL_CALL_CLOSE}


def _json_grammar(schema: dict, owner: str) -> xgrammar.Grammar:
    """Compact, strict JSON for `schema`; xgrammar's errors become ValueErrors naming `owner`."""
    try:
        return _xgr().Grammar.from_json_schema(schema, any_whitespace=False, separators=_SEPARATORS, strict_mode=True)
    except (RuntimeError, ValueError) as err:
        raise _compile_error(owner, err) from None


# xgrammar 0.2.8 prints U+0080..U+00FF as "\xHH", but its EBNF parser reads "\x" greedily:
# "n\xe9e" (née) comes back as "n\u0e9e". Re-spell them as fixed-width "\u00HH" so the
# printed grammar parses back to itself. Escaped backslashes match first and stay as is.
_LATIN1_ESCAPE = re.compile(r"(\\\\)|\\x([0-9a-fA-F]{2})")


def _ebnf(grammar: xgrammar.Grammar) -> str:
    """The grammar as EBNF text that parses back to the same grammar."""
    return _LATIN1_ESCAPE.sub(lambda m: m.group(1) or "\\u00" + m.group(2), str(grammar))


def _const(text: str) -> dict:
    return {"type": "const_string", "value": text}


def _seq(*elements: dict) -> dict:
    return {"type": "sequence", "elements": list(elements)}


def _calls(call: dict, parallel: bool) -> dict:
    """One call, or calls separated by CALL_SEPARATOR."""
    if not parallel:
        return call
    return _seq(call, {"type": "star", "content": _seq(_const(CALL_SEPARATOR), call)})


def _tool_calls_format(specs: list[tuple[str, dict]], mode: ToolChoiceMode, parallel: bool) -> dict:
    free_text = {"type": "any_text", "excludes": [TOOL_CALL_OPEN]}
    if mode == "none":
        return free_text
    calls = _calls(_call_tag(specs), parallel)
    if mode == "forced":
        return calls
    return _seq(free_text, {"type": "optional", "content": calls})


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

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer: Any,
        *,
        vocab_size: int | None = None,
        stop_token_ids: int | list[int] | None = None,
        cache_size: int = 64,
    ) -> ConstraintCompiler:
        """Build from a Hugging Face tokenizer.

        Args:
            tokenizer: a transformers tokenizer.
            vocab_size: the model's `config.vocab_size` (the logits width). Default: the
                tokenizer's own size.
            stop_token_ids: ids that end the output. Default: the tokenizer's eos id.
            cache_size: see the class docstring.

        Special added tokens other than the stop tokens (e.g. `<|im_start|>`) are never
        allowed: constrained output is plain text followed by a stop token.
        """
        xgr = _xgr()
        stops = _stop_ids(tokenizer, stop_token_ids)
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stops)
        special = _special_ids(tokenizer) - set(stops)
        if special:
            # xgrammar treats a token whose text is empty as special: never allowed.
            vocab = [""] * info.vocab_size
            for text, i in tokenizer.get_vocab().items():
                if i < info.vocab_size and i not in special:
                    vocab[i] = text
            info = xgr.TokenizerInfo.from_vocab_and_metadata(vocab, info.dump_metadata())
        return cls(info, cache_size=cache_size)

    def tool_calls(
        self,
        tools: list[dict],
        *,
        mode: ToolChoiceMode,
        allowed: list[str] | None = None,
        parallel: bool = True,
    ) -> GrammarConstraint:
        """A constraint for a turn with tools bound.

        Args:
            tools: OpenAI-format tool dicts.
            mode: "forced": one or more calls (exactly one when not `parallel`), nothing
                else. "auto": free text, then optionally calls; from `<tool_call>` on the
                call is constrained and only calls (or the end) may follow. "none": free
                text that never contains `<tool_call>`.
            allowed: names the calls may use (default: all tools).
            parallel: allow several calls, separated by a newline.

        Raises:
            ValueError: bad tools, unknown `allowed` names, no tool to force, or a schema
                the grammar cannot enforce (the message names the tool and keyword).
        """
        if mode not in ("forced", "auto", "none"):
            raise ValueError(f"mode must be 'forced', 'auto' or 'none', got {mode!r}")
        specs = [] if mode == "none" else _select_tools(tools, allowed)
        if mode == "forced" and not specs:
            raise ValueError("mode 'forced' needs at least one (allowed) tool")
        if not specs:  # "none", or "auto" with nothing to call: the same free-text grammar
            mode, parallel = "none", True
        # Only what shapes the grammar goes in the key (no descriptions).
        spec = {"kind": "tool_calls", "mode": mode, "parallel": bool(parallel), "tools": specs}

        def build():
            return self._compile_structural(_tool_calls_format(specs, mode, parallel))

        return self._constraint(spec, build)

    def tool_calls_or_json(
        self,
        tools: list[dict],
        schema: dict | bool,
        *,
        allowed: list[str] | None = None,
        parallel: bool = True,
    ) -> GrammarConstraint:
        """A constraint for tools plus a structured final answer: the output is either
        calls (as in mode "forced") or one JSON value valid under `schema` (as in
        `json_schema`), nothing else. With no (allowed) tools it is `json_schema(schema)`.

        Raises:
            ValueError: as `tool_calls` and `json_schema`.
        """
        specs = _select_tools(tools, allowed)
        if not specs:
            return self.json_schema(schema)
        title = schema.get("title") if isinstance(schema, dict) else None
        owner = f"schema '{title}'" if title else "schema"
        schema = _prepare_schema(schema, owner)
        spec = {"kind": "tool_calls_or_json", "parallel": bool(parallel), "tools": specs, "schema": schema}

        def build():
            answer = {"type": "grammar", "grammar": _ebnf(_json_grammar(schema, owner))}
            return self._compile_structural({"type": "or", "elements": [_calls(_call_tag(specs), parallel), answer]})

        return self._constraint(spec, build)

    def json_schema(self, schema: dict | bool) -> GrammarConstraint:
        """A constraint whose output is one JSON value valid under `schema` (compact form).

        Objects admit only their declared properties unless `additionalProperties` says
        otherwise (xgrammar's strict mode).

        Raises:
            ValueError: a schema the grammar cannot enforce (names the title and keyword).
        """
        title = schema.get("title") if isinstance(schema, dict) else None
        owner = f"schema '{title}'" if title else "schema"
        schema = _prepare_schema(schema, owner)

        def build():
            try:
                return self._xgc.compile_json_schema(
                    schema, any_whitespace=False, separators=_SEPARATORS, strict_mode=True
                )
            except (RuntimeError, ValueError) as err:
                raise _compile_error(owner, err) from None

        return self._constraint({"kind": "json_schema", "schema": schema}, build)

    def json_object(self) -> GrammarConstraint:
        """A constraint whose output is any JSON object (JSON mode)."""
        schema = {"type": "object"}
        build = lambda: self._xgc.compile_json_schema(schema, any_whitespace=False, separators=_SEPARATORS)  # noqa: E731
        return self._constraint({"kind": "json_object"}, build)

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the compiled-grammar cache."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self._cache_size)

    def _compile_structural(self, fmt: dict) -> Any:
        try:
            return self._xgc.compile_structural_tag({"type": "structural_tag", "format": fmt})
        except (RuntimeError, ValueError) as err:
            raise _compile_error("tool calls", err) from None

    def _constraint(self, spec: dict, build: Callable[[], Any]) -> GrammarConstraint:
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
        return GrammarConstraint(compiled, self.vocab_size)


def _stop_ids(tokenizer: Any, stop_token_ids: int | list[int] | None) -> list[int]:
    if stop_token_ids is None:
        stop_token_ids = getattr(tokenizer, "eos_token_id", None)
    if isinstance(stop_token_ids, int):
        stop_token_ids = [stop_token_ids]
    if not stop_token_ids:
        raise ValueError("stop_token_ids is required: the tokenizer has no eos_token_id")
    return [int(i) for i in stop_token_ids]


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
) -> ConstraintCompiler:
    """The `ConstraintCompiler` for this tokenizer object, built once and then reused.

    Keyed by the tokenizer's identity (weakly: the entry goes when the tokenizer does)
    and the arguments. See `ConstraintCompiler.from_tokenizer` for the arguments.
    """
    stops = tuple(_stop_ids(tokenizer, stop_token_ids))
    key = (id(tokenizer), vocab_size, stops)
    with _COMPILERS_LOCK:
        entry = _COMPILERS.get(key)
        if entry is not None and entry[0]() is tokenizer:
            return entry[1]
    compiler = ConstraintCompiler.from_tokenizer(tokenizer, vocab_size=vocab_size, stop_token_ids=list(stops))
    try:
        ref = weakref.ref(tokenizer)
    except TypeError:  # not weakly referenceable: do not cache rather than keep it alive
        return compiler
    with _COMPILERS_LOCK:
        _COMPILERS[key] = (ref, compiler)
    weakref.finalize(tokenizer, _COMPILERS.pop, key, None)
    return compiler
