"""``mask``: decode steps with a grammar mask against the same number of steps without one.

At N = 1 and the largest N, at the first prompt length. "text": free text that may not open
a tool call (a mask at every step, most tokens allowed); "json": a JSON object whose one
field is a free string (a mask at every step).

May import the engine, constrain and ``common``.
"""

from __future__ import annotations

from typing import Any

from ...engine import Engine, Request
from ...engine.loading import LoadedModel
from .setup import Setup, bases_for, make_prompt, median


def _step_time(res) -> float:
    return (res.total_seconds - res.time_to_first_token) / (res.completion_tokens - 1)


def run_mask(loaded: LoadedModel, engine: Engine, prompt, bases, decode_tokens: int, repeats: int) -> dict:
    """Decode step with a grammar mask against the same number of steps without one (one run).

    Each masked run is paired with an unmasked run that decodes exactly as many tokens
    (end-of-sequence ignored), interleaved, so both average over the same steps at the same
    cache lengths. The masked step includes filling the bitmask, applying it and advancing
    the matcher.
    """
    from ...constrain import compiler_for

    compiler = compiler_for(loaded.tokenizer, vocab_size=loaded.vocab_size, stop_token_ids=sorted(loaded.eos_token_ids))
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    makers = {
        "text": lambda: compiler.tool_calls([], mode="none"),
        "json": lambda: compiler.json_schema(schema),
    }
    pairs: dict[str, list[tuple[float, float]]] = {k: [] for k in makers}
    tokens: dict[str, int] = {}
    for rep in range(repeats + 1):
        for kind, make in makers.items():
            masked = engine.generate(Request(prompt, tuple(bases), max_tokens=decode_tokens, prefix_cache=False,
                                             constraint=make(), speculative_tokens=0))
            n = masked.completion_tokens
            tokens[kind] = n
            if n < 3:
                continue
            plain = engine.generate(Request(prompt, tuple(bases), max_tokens=n, prefix_cache=False,
                                            ignore_eos=True, speculative_tokens=0))
            if rep:
                pairs[kind].append((_step_time(masked), _step_time(plain)))
    out: dict[str, Any] = {}
    for kind, v in pairs.items():
        if v:
            m, u = median([a for a, _ in v]), median([b for _, b in v])
            out[kind] = {"tokens": tokens[kind], "decode_step_s": m, "unmasked_step_s": u, "ratio": m / u}
    return out


def run(setup: Setup) -> dict:
    """``{"mask": {"n=1": ..., "n=<largest>": ...}}``."""
    loaded = setup.loaded
    prompt = make_prompt(loaded, setup.lengths[0])
    return {"mask": {
        f"n={n}": run_mask(loaded, setup.engine, prompt, bases_for(n, loaded.base), setup.decode_tokens, setup.repeats)
        for n in sorted({1, max(setup.ns)})
    }}


def print_rows(result: dict, setup: Setup) -> None:
    for key, m in result["mask"].items():
        print(f"grammar mask, N={key.removeprefix('n=')}, {setup.lengths[0]} tokens: " + ", ".join(
            f"{k} {v['decode_step_s'] * 1e3:.1f} ms against {v['unmasked_step_s'] * 1e3:.1f} ms unmasked "
            f"(x{v['ratio']:.3f}, {v['tokens']} tokens)" for k, v in m.items()))
