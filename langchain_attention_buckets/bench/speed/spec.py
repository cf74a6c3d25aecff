"""``spec``: greedy decoding with speculation (8 drafted tokens) against without.

At N = 1 and the largest N, on text the context predicts (a copy) and text it does not.
Same prompt, same output (checked); the ratio is what speculation saves on that kind of text.

May import the engine and ``common``.
"""

from __future__ import annotations

from typing import Any

from ...engine import Engine, Request
from ...engine.loading import LoadedModel
from .setup import Setup, bases_for, median, user_prompt

SPECULATION_PROMPTS = {
    # a tool call whose arguments copy the request: drafts from n-grams of the context
    "copy": "Repeat the following order note exactly, word for word: Order A1001 for Maria Lopez, "
            "two boxes of green tea and one ceramic teapot, ship to 14 Harbour Street, Leith, "
            "Edinburgh, before Friday the 12th of December, gift wrapped, no invoice in the parcel.",
    # free text the context does not predict
    "free": "Write a short paragraph about why people enjoy walking in the mountains.",
}


def _one_prompt(engine: Engine, ids, bases, decode_tokens: int, repeats: int) -> dict:
    """Per-token decode time with speculation off (k = 0) and on (k = 8), interleaved."""
    per_token: dict[int, list[float]] = {0: [], 8: []}
    outputs: dict[int, list[int]] = {}
    drafted = accepted = 0
    for rep in range(repeats + 1):
        for k in (0, 8):  # interleaved
            before = (engine.stats.drafted_tokens, engine.stats.accepted_tokens)
            res = engine.generate(Request(ids, tuple(bases), max_tokens=decode_tokens, prefix_cache=False, speculative_tokens=k))
            outputs[k] = res.token_ids
            if rep and res.completion_tokens > 1:
                per_token[k].append((res.total_seconds - res.time_to_first_token) / (res.completion_tokens - 1))
                if k:
                    drafted += engine.stats.drafted_tokens - before[0]
                    accepted += engine.stats.accepted_tokens - before[1]
    return {
        "tokens": len(outputs[0]),
        "same_output": outputs[0] == outputs[8],
        "per_token_s": {"off": median(per_token[0]), "on": median(per_token[8])},
        "speedup": median(per_token[0]) / median(per_token[8]),
        "acceptance": accepted / drafted if drafted else 0.0,
    }


def run_speculative(loaded: LoadedModel, engine: Engine, bases, decode_tokens: int, repeats: int) -> dict:
    """One entry per kind of text in ``SPECULATION_PROMPTS``."""
    out: dict[str, Any] = {}
    for kind, text in SPECULATION_PROMPTS.items():
        out[kind] = _one_prompt(engine, user_prompt(loaded, text), bases, decode_tokens, repeats)
    return out


def run(setup: Setup) -> dict:
    """``{"spec": {"n=1": ..., "n=<largest>": ...}}``."""
    loaded = setup.loaded
    return {"spec": {
        f"n={n}": run_speculative(loaded, setup.engine, bases_for(n, loaded.base), setup.decode_tokens, setup.repeats)
        for n in sorted({1, max(setup.ns)})
    }}


def print_rows(result: dict, setup: Setup) -> None:
    for key, sp in result["spec"].items():
        print(f"speculative decoding, N={key.removeprefix('n=')}: " + ", ".join(
            f"{k} x{v['speedup']:.2f} per token (acceptance {v['acceptance']:.0%}, same output {v['same_output']})"
            for k, v in sp.items()))
