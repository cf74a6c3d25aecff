"""Deterministic mode: the same tokens and logits bit for bit, cached or not, alone or not.

Fast tier: the engine on a tiny random model, with the merged logits of every step recorded
and compared exactly. Embedded tier: the user-facing guarantee, 24 varied prompts through
``ChatAttentionBuckets(deterministic=True)``: cache cold, cache warm, 8 at once from threads,
8 at once through ``asyncio.gather``.

Tolerance: ``agreement.EXACT`` (none). A deterministic request promises the same rounding
whichever way it runs, on any CPU and in any dtype, so these comparisons stay bit for bit
where the other comparing tests allow a stated tolerance and near-ties (``agreement``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from agreement import EXACT
from conftest import generate_in_threads, random_prompt

from langchain_attention_buckets.engine import Engine, Request
from langchain_attention_buckets.engine.kvcache import PrefixCache
from langchain_attention_buckets.engine.sampling import SamplingParams

BASES = (10000.0, 17500.0, 25000.0)
BLOCK = 8


class Recorder:
    """A constraint that masks nothing and keeps a copy of every merged logit row it sees."""

    def __init__(self):
        self.rows: list[torch.Tensor] = []

    def apply_mask(self, logits):
        self.rows.append(logits.clone())
        return True

    def accept(self, token):
        pass

    def is_terminated(self):
        return False


def run(engine: Engine, prompt, **kw) -> tuple[list[int], torch.Tensor, int]:
    """Token ids, the stacked merged logits of every step, and the cached prompt tokens."""
    rec = Recorder()
    kw = {"bases": BASES, "max_tokens": 6, "deterministic": True} | kw
    res = engine.generate(Request(tuple(prompt), constraint=rec, **kw))
    return res.token_ids, torch.stack(rec.rows), res.cached_tokens


def same(a, b) -> bool:
    """Same tokens and merged logits within ``EXACT``: bit for bit."""
    assert EXACT == 0.0  # torch.equal is the comparison at tolerance EXACT
    return a[0] == b[0] and torch.equal(a[1], b[1])


def det_engine(loaded, cache=True) -> Engine:
    return Engine(loaded, prefix_cache_bytes=2**30 if cache else 0, deterministic_block=BLOCK)


# ---- fast tier: the engine on a tiny model ------------------------------------------------


def test_cache_warm_equals_cold_bit_for_bit(tiny_loaded):
    base = random_prompt(29, seed=1)
    prompts = [base, base + random_prompt(7, seed=2), base[:20] + random_prompt(15, seed=3), base + (5,)]
    cold = [run(det_engine(tiny_loaded, cache=False), p) for p in prompts]
    eng = det_engine(tiny_loaded)
    warm = [run(eng, p) for p in prompts] + [run(eng, p) for p in prompts]
    for i, got in enumerate(warm):
        assert same(got, cold[i % len(prompts)]), i
    cached = [got[2] for got in warm]
    assert all(c % BLOCK == 0 for c in cached)
    assert cached[1] == 24 and cached[3] == 24 and cached[4] == 24  # whole blocks of an earlier prompt


def test_generated_tokens_are_not_reused_in_deterministic_mode(tiny_loaded):
    # The answer's keys were computed one token per pass; a fresh run computes them in a prefill.
    eng = det_engine(tiny_loaded)
    p = random_prompt(16, seed=4)
    first = run(eng, p, max_tokens=12)
    turn2 = p + tuple(first[0]) + (7, 8)
    got = run(eng, turn2)
    assert got[2] == 16
    assert same(got, run(det_engine(tiny_loaded, cache=False), turn2))
    # the default mode reuses the answer too
    assert eng.generate(Request(turn2, BASES, max_tokens=1)).cached_tokens >= 16 + len(first[0])


def test_batch_of_8_from_threads_equals_serial(tiny_loaded):
    prompts = [random_prompt(10 + 5 * i, seed=30 + i) for i in range(8)]
    serial = [run(det_engine(tiny_loaded, cache=False), p) for p in prompts]
    eng = det_engine(tiny_loaded)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda p: run(eng, p), prompts))
    assert all(same(g, s) for g, s in zip(got, serial))
    assert eng.stats.max_requests == 1  # each ran alone


def test_deterministic_requests_wait_for_a_running_batch_and_are_not_overtaken(tiny_loaded):
    eng = det_engine(tiny_loaded)
    mixed = [Request(random_prompt(12, seed=40 + i), BASES, max_tokens=8, deterministic=i % 2 == 0) for i in range(8)]
    # the deterministic ones (even indices), alone: bit for bit, their promise
    alone = [Engine(tiny_loaded, prefix_cache_bytes=0).generate(r).token_ids for r in mixed[0::2]]
    got = generate_in_threads(eng, mixed)
    assert got[0::2] == alone
    assert all(len(t) == 8 for t in got)


def test_asyncio_gather_equals_serial(tiny_loaded):
    prompts = [random_prompt(9 + 4 * i, seed=50 + i) for i in range(8)]
    serial = [run(det_engine(tiny_loaded, cache=False), p)[0] for p in prompts]
    eng = det_engine(tiny_loaded)

    async def one(p):
        gen = eng.submit(Request(p, BASES, max_tokens=6, deterministic=True), asyncio.get_running_loop())
        return [e.token_id async for e in gen if e.token_id >= 0]

    async def main():
        return await asyncio.gather(*(one(p) for p in prompts))

    assert asyncio.run(main()) == serial


def test_speculation_is_off_and_changes_nothing(tiny_loaded):
    copied = random_prompt(12, seed=6)
    prompt = copied * 3  # the n-gram drafter would find drafts here
    off = run(det_engine(tiny_loaded), prompt, speculative_tokens=0, max_tokens=16)
    eng = det_engine(tiny_loaded)
    on = run(eng, prompt, speculative_tokens=8, max_tokens=16)
    assert same(on, off)
    assert eng.stats.drafted_tokens == 0
    again = run(eng, prompt, speculative_tokens=8, max_tokens=16)  # a replay draft would exist now
    assert same(again, off) and eng.stats.drafted_tokens == 0


def test_seeded_sampling_is_equal_cached_or_not_and_in_threads(tiny_loaded):
    sampling = SamplingParams(temperature=1.0, seed=11)
    prompts = [random_prompt(20, seed=60) + random_prompt(3 + i, seed=61 + i) for i in range(4)]
    cold = [run(det_engine(tiny_loaded, cache=False), p, sampling=sampling, max_tokens=10) for p in prompts]
    eng = det_engine(tiny_loaded)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: run(eng, p, sampling=sampling, max_tokens=10), prompts * 2))
    assert all(same(g, cold[i % 4]) for i, g in enumerate(got))


def test_block_is_checked(tiny_loaded):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="deterministic_block"):
            Engine(tiny_loaded, deterministic_block=bad)


def test_prefix_cache_lookup_in_blocks_uses_exact_positions_only():
    cache = PrefixCache(2**20)
    kv = [(torch.zeros(1, 1, 30, 2), torch.zeros(1, 1, 30, 2))]
    cache.store("k", list(range(30)), kv, exact=16)
    assert cache.lookup_with_continuation("k", list(range(30)) + [99], 30)[0] == 30
    assert cache.lookup_with_continuation("k", list(range(30)) + [99], 30, block=8)[0] == 16
    assert cache.lookup_with_continuation("k", list(range(13)) + [99], 30, block=8)[0] == 8
    cache.store("k", list(range(40)), [(torch.zeros(1, 1, 40, 2), torch.zeros(1, 1, 40, 2))], exact=0)
    assert len(cache) == 2  # the more exact entry is kept
    assert cache.lookup_with_continuation("k", list(range(40)), 40, block=8)[0] == 16


def test_chat_model_passes_deterministic(tiny_chat_dir):
    from langchain_core.messages import HumanMessage

    from langchain_attention_buckets import ChatAttentionBuckets

    llm = ChatAttentionBuckets(model=str(tiny_chat_dir), deterministic=True, max_tokens=2)
    assert llm._prepare([HumanMessage("hi")], None, {}).request.deterministic
    assert not ChatAttentionBuckets(model=str(tiny_chat_dir))._prepare([HumanMessage("hi")], None, {}).request.deterministic


# ---- embedded tier: the user-facing guarantee ----------------------------------------------

SYSTEM = (
    "You are a careful assistant inside a test of reproducible output. Answer briefly and "
    "directly, in plain words, without greetings, lists or markdown. If a question has a "
    "number for an answer, give the number first. Keep every answer under twenty words and "
    "never repeat the question."
)


def varied_prompts(n: int = 24) -> list[str]:
    """Questions, instructions, arithmetic and code, built from fixed lists (no randomness)."""
    things = ["the sea", "a violin", "Mars", "bread", "a spider", "winter", "a bridge", "coffee", "glass", "a fox"]
    kinds = [
        lambda i, t: f"What is {t} made of?",
        lambda i, t: f"Describe {t} in five words.",
        lambda i, t: f"What is {17 + 3 * i} plus {i * i}?",
        lambda i, t: f"Write a Python function that returns {i} times its argument.",
        lambda i, t: f"Translate '{t}' into French.",
        lambda i, t: f"Is {100 + 7 * i} a prime number? Answer yes or no.",
        lambda i, t: f"Give one fact about {t}.",
        lambda i, t: f"Finish this sentence: {t.capitalize()} is",
        lambda i, t: f"Fix this code: def f(x) return x+{i}",
        lambda i, t: f"Name {i % 4 + 2} things that go with {t}.",
    ]
    return [kinds[i % len(kinds)](i, things[(i * 3) % len(things)]) for i in range(n)]


@pytest.mark.embedded
def test_varied_prompts_equal_cold_warm_threads_and_asyncio():
    from langchain_core.messages import HumanMessage, SystemMessage

    from langchain_attention_buckets import ChatAttentionBuckets

    llm = ChatAttentionBuckets(bases=100000.0, max_tokens=2, deterministic=True)
    chats = [[SystemMessage(SYSTEM), HumanMessage(p)] for p in varied_prompts()]
    assert len(chats) == 24

    def answer(msgs):
        return llm.invoke(msgs)

    cold = []
    for msgs in chats:
        llm.clear_prefix_cache()
        cold.append(answer(msgs))
    warm = [answer(msgs) for msgs in chats]
    with ThreadPoolExecutor(8) as pool:
        threads = list(pool.map(answer, chats))

    async def gathered():
        out = []
        for i in range(0, len(chats), 8):
            out += await asyncio.gather(*(llm.ainvoke(m) for m in chats[i : i + 8]))
        return out

    tasks = asyncio.run(gathered())
    texts = [m.content for m in cold]
    assert len(set(texts)) > 10  # varied answers, not one template
    for name, got in (("warm", warm), ("threads", threads), ("asyncio", tasks)):
        assert [m.content for m in got] == texts, name
    assert all(m.usage_metadata["input_token_details"]["cache_read"] == 64 for m in warm)  # one whole block
