"""``prefix``: an agent's next turn with and without the prefix cache, on token ids (any model).

Turn 1 is a prompt of the first --lengths length (a tool context); turn 2 repeats it with the
answer and a 64-token tool result appended, as an agent's next call does. Six buckets. Time
to first token of turn 2 with the prefix cache (only the new tail is prefilled) against
without (all of it is), and the bytes the cached keys and values take. Needs no chat
template, so it runs on random-weight shapes too (``--shape``); ``agent`` is the same
through the chat model with real tools.

May import the engine and ``common``.
"""

from __future__ import annotations

from ...engine import Engine, Request
from .setup import Setup, bases_for, make_prompt, median

_BUCKETS = 6
_TAIL = 64


def run(setup: Setup) -> dict:
    loaded = setup.loaded
    bases = bases_for(_BUCKETS, loaded.base)
    prompt = make_prompt(loaded, setup.lengths[0])
    answer = make_prompt(loaded, 24, seed=5)
    turn2 = prompt + answer + make_prompt(loaded, _TAIL, seed=9)
    times: dict[str, list[float]] = {"cache": [], "no_cache": []}
    cached_bytes, cached_tokens = 0, 0
    for rep in range(setup.repeats + 1):
        for label, cache_bytes in (("cache", 2**40), ("no_cache", 0)):
            engine = Engine(loaded, prefix_cache_bytes=cache_bytes)
            if cache_bytes:
                engine.generate(Request(prompt + answer, bases, max_tokens=1, ignore_eos=True, speculative_tokens=0))
            res = engine.generate(Request(turn2, bases, max_tokens=1, ignore_eos=True, speculative_tokens=0))
            if rep:
                times[label].append(res.time_to_first_token)
            if cache_bytes:
                cached_bytes, cached_tokens = engine.prefix_cache.nbytes, res.cached_tokens
            engine.close()
    out = {"buckets": _BUCKETS, "turn2_tokens": len(turn2), "cached_tokens": cached_tokens,
           "prefix_cache_bytes": cached_bytes,
           "cache_ttft_s": median(times["cache"]), "no_cache_ttft_s": median(times["no_cache"])}
    out["speedup"] = out["no_cache_ttft_s"] / out["cache_ttft_s"]
    return {"prefix": out}


def print_rows(result: dict, setup: Setup) -> None:
    p = result["prefix"]
    print(f"agent turn 2 ({p['turn2_tokens']} tokens, {p['buckets']} buckets, {p['cached_tokens']} cached): "
          f"TTFT {p['cache_ttft_s']:.3f}s with the prefix cache / {p['no_cache_ttft_s']:.3f}s without "
          f"(x{p['speedup']:.1f}); cache holds {p['prefix_cache_bytes'] / 2**20:.0f} MiB")
