"""``determinism``: what ``deterministic=True`` costs against the default, in one run.

Three workloads, each run both ways, interleaved, medians over the repeats after one warm-up:

1. a lone agent loop: three turns over a growing prompt (the first ``--lengths`` tokens of
   text, then each turn adds the answer and 60 tokens), prefix cache on and emptied before
   each loop; time to first token per turn and the whole loop;
2. eight requests submitted at once from eight threads: time until all are done;
3. a greedy answer that copies the request (where speculation helps most): time per token.

May import the engine, ``spec`` (its prompts) and ``common``.
"""

from __future__ import annotations

import threading
import time

from ...engine import Engine, Request
from .setup import Setup, bases_for, make_prompt, median, user_prompt
from .spec import SPECULATION_PROMPTS

CONCURRENT_TEXTS = [
    "Name a color.", "What is 12 times 7?", "Write a haiku about rain.", "Say hi.",
    "Explain what a list is in Python.", "Give me a word that rhymes with cat.",
    "What is the capital of Norway?", "Describe a cat in one sentence.",
]


def _agent_loop(engine: Engine, prompt: tuple[int, ...], bases, tokens: int, det: bool) -> dict:
    engine.clear_prefix_cache()
    ttft, t0 = [], time.perf_counter()
    for turn in range(3):
        res = engine.generate(Request(prompt, bases, max_tokens=tokens, ignore_eos=True, deterministic=det))
        ttft.append(res.time_to_first_token)
        prompt = prompt + tuple(res.token_ids) + make_prompt(engine.loaded, 60, seed=turn + 1)
    return {"ttft": ttft, "total": time.perf_counter() - t0}


def _concurrent(engine: Engine, prompts, bases, tokens: int, det: bool) -> float:
    barrier = threading.Barrier(len(prompts) + 1)

    def call(p):
        barrier.wait()
        engine.generate(Request(p, bases, max_tokens=tokens, ignore_eos=True, prefix_cache=False, deterministic=det))

    threads = [threading.Thread(target=call, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def _copy_per_token(engine: Engine, prompt, bases, tokens: int, det: bool) -> tuple[float, list[int]]:
    res = engine.generate(Request(prompt, bases, max_tokens=tokens, prefix_cache=False, deterministic=det))
    return (res.total_seconds - res.time_to_first_token) / max(1, res.completion_tokens - 1), res.token_ids


def _ratio(runs: dict[bool, list[float]]) -> dict:
    default, det = median(runs[False]), median(runs[True])
    return {"default_s": default, "deterministic_s": det, "ratio": det / default}


def run(setup: Setup) -> dict:
    """``{"determinism": {"agent_ttft_turn_2": ..., "agent_loop": ..., "concurrent_8": ..., "copy_per_token": ...}}``."""
    loaded, engine, k = setup.loaded, setup.engine, setup.decode_tokens
    bases = bases_for(max(setup.ns), loaded.base)
    agent_prompt = make_prompt(loaded, setup.lengths[0])
    many = [user_prompt(loaded, t) for t in CONCURRENT_TEXTS]
    copy = user_prompt(loaded, SPECULATION_PROMPTS["copy"])
    keys = ("turn1", "turn2", "turn3", "loop", "concurrent", "copy")
    runs = {key: {False: [], True: []} for key in keys}
    outputs: dict[bool, list[int]] = {}
    for rep in range(setup.repeats + 1):
        for det in (False, True):  # interleaved
            loop = _agent_loop(engine, agent_prompt, bases, k, det)
            conc = _concurrent(engine, many, bases, k, det)
            per_token, out = _copy_per_token(engine, copy, bases, 4 * k, det)
            if rep:
                for i in range(3):
                    runs[f"turn{i + 1}"][det].append(loop["ttft"][i])
                runs["loop"][det].append(loop["total"])
                runs["concurrent"][det].append(conc)
                runs["copy"][det].append(per_token)
            outputs[det] = out
    result = {key: _ratio(runs[key]) for key in keys}
    result["copy_same_output"] = outputs[False] == outputs[True]
    result["buckets"] = len(bases)
    return {"determinism": result}


def print_rows(result: dict, setup: Setup) -> None:
    d = result["determinism"]
    names = {"turn1": "agent loop, turn 1 TTFT", "turn2": "agent loop, turn 2 TTFT", "turn3": "agent loop, turn 3 TTFT",
             "loop": "agent loop, 3 turns", "concurrent": "8 requests at once", "copy": "copied text, per token"}
    print(f"deterministic=True against the default (N={d['buckets']}):")
    for key, name in names.items():
        r = d[key]
        print(f"  {name}: {r['default_s']:.2f} s -> {r['deterministic_s']:.2f} s (x{r['ratio']:.2f})")
