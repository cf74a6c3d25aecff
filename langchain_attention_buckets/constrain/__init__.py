"""Constrained decoding: tool-call and JSON grammars -> one token mask per decoding step.

Flow, by function name:

    compiler_for(tokenizer, vocab_size=..., stop_token_ids=...)   # one per tokenizer, cached
      .tool_calls(tools, mode=..., allowed=..., parallel=...)     # or .json_schema / .json_object
        -> schema.prepare_schema (refuse what would not be enforced)
        -> grammar.tool_calls_format (the structural tag for the mode)
        -> compiled grammar (bounded LRU keyed by the spec's canonical JSON)
        -> GrammarConstraint (a fresh xgrammar matcher for this request)
    engine, each step (sampling.process_logits): merge -> ... -> constraint.apply_mask(row)
                       -> constraint.apply_steering(row) -> temperature -> top-k/top-p -> pick
                       -> constraint.accept(token_id)

Modules, each importing only the ones above it in this list:

    schema     the JSON-schema subset checker (pure Python; no xgrammar)
    grammar    tools and schemas -> structural tags / JSON grammars; tool validation
    steering   budget-aware completion and repetition closing (`Steering`, `TokenTable`)
    compiler   xgrammar compile, the per-tokenizer compiler cache, GrammarConstraint

The package is on the ground floor: it knows tools only as OpenAI-format dicts
(`{"type": "function", "function": {"name", "description", "parameters"}}`) and
schemas only as JSON-schema dicts. It imports `engine.sampling` (the `TokenConstraint`
protocol and the `Constraint` base), `formats` (the call markers) and `text.scan` /
`text.repetition` (the JSON scanner and repetition detector it shares with parsing and the
answer guard), never the engine's scheduler or the chat model. xgrammar is imported
lazily (it costs ~2 s).

Every problem with a tool or schema is a `ValueError` raised when the grammar is
compiled, never in the middle of generation. A dead end during generation (no token
allowed) is reported by `apply_mask` returning False.
"""

from ..engine.sampling import TokenConstraint
from .compiler import CacheInfo, ConstraintCompiler, GrammarConstraint, compiler_for
from .grammar import ToolChoiceMode, check_unique_tool_names

__all__ = [
    "CacheInfo",
    "ConstraintCompiler",
    "GrammarConstraint",
    "TokenConstraint",
    "ToolChoiceMode",
    "check_unique_tool_names",
    "compiler_for",
]
