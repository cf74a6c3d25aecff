"""The engine on tiny random models: exactness, merge rules, batching, caches, limits.

Two computations of the same tokens (engine and transformers, batched and alone, cached and
fresh, speculative and plain, packed and not) are compared with ``agreement``: logits within
``TOL`` (fp32 on the tiny models), greedy tokens equal up to the first near-tie within it.
"""

from __future__ import annotations

import threading
import weakref

import pytest
import torch
from agreement import TINY_TOLERANCE, assert_greedy_agrees, assert_sampled_agrees, reference_logits
from conftest import as_loaded, generate_in_threads, random_prompt, tiny_model

from langchain_attention_buckets.engine import (
    ContextLengthError,
    Engine,
    MemoryBudgetError,
    Request,
    forward_buckets,
)
from langchain_attention_buckets.engine.merge import merge, validate_aggregation
from langchain_attention_buckets.engine.rope import UnsupportedModelError, check_supported, rotary_module
from langchain_attention_buckets.engine.sampling import SamplingParams

BASES = (10000.0, 17500.0, 25000.0)
TOL = TINY_TOLERANCE[torch.float32]


def assert_same_tokens(model, reqs, got: list[list[int]], want: list[list[int]], what: str) -> None:
    """Per request, ``got`` equals ``want`` up to the first near-tie of the merged reference logits."""
    assert len(got) == len(want)
    for i, (req, g, w) in enumerate(zip(reqs, got, want)):
        logits = reference_logits(model, req.prompt, w, req.bases)
        assert_greedy_agrees(g, w, logits, TOL, f"{what}, request {i}")


def plain_logits(model, ids, base: float | None = None):
    """Logits of the unmodified transformers model (optionally rebuilt with rope_theta=base)."""
    if base is not None:
        cfg = model.config.__class__.from_dict(model.config.to_dict())
        cfg.rope_parameters = {**model.config.rope_parameters, "rope_theta": base}
        other = type(model)(cfg).eval()
        other.load_state_dict(model.state_dict())
        model = other
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0]


def greedy_reference(model, prompt, n):
    out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, eos_token_id=1, pad_token_id=0)
    return out[0, len(prompt) :].tolist()


# ---- exactness ----------------------------------------------------------------------


def test_own_base_gives_the_plain_models_logits(tiny):
    ids = random_prompt(40)
    got = forward_buckets(tiny, ids, [10000.0])[0]
    assert (got - plain_logits(tiny, ids)).abs().max().item() <= 1e-5


def test_own_base_gives_the_plain_models_greedy_tokens(tiny, tiny_loaded):
    prompt = random_prompt(30, seed=1)
    res = Engine(tiny_loaded).generate(Request(prompt, (10000.0,), max_tokens=20, prefix_cache=False))
    want = greedy_reference(tiny, prompt, 20)
    assert_greedy_agrees(res.token_ids, want, reference_logits(tiny, prompt, want, (10000.0,)), TOL, "engine vs generate")


def test_each_row_equals_the_model_rebuilt_with_that_base(tiny):
    ids = random_prompt(40, seed=2)
    got = forward_buckets(tiny, ids, BASES)
    for row, base in enumerate(BASES):
        assert (got[row] - plain_logits(tiny, ids, base)).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    "rope",
    [
        {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0},
        {
            "rope_type": "llama3",
            "rope_theta": 10000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 64},
        {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
    ],
    ids=lambda r: r["rope_type"],
)
def test_rope_scaling_types_per_row(rope):
    # max_positions 48 with an 80-token prompt drives the dynamic type past its window.
    model = tiny_model(rope=rope, max_positions=48 if rope["rope_type"] == "dynamic" else 256)
    ids = random_prompt(80, seed=3)
    got = forward_buckets(model, ids, BASES)
    for row, base in enumerate(BASES):
        assert (got[row] - plain_logits(model, ids, base)).abs().max().item() <= 1e-5, rope["rope_type"]


@pytest.mark.parametrize("model_type", ["mistral", "qwen2", "qwen3", "granite", "smollm3"])
def test_other_llama_family_models(model_type):
    model = tiny_model(model_type, head_dim=8) if model_type == "qwen3" else tiny_model(model_type)
    check_supported(model)
    if model_type == "smollm3":
        assert model.config.no_rope_layers == [1, 1, 1, 0]  # the last layer without RoPE
    ids = random_prompt(30, seed=4)
    got = forward_buckets(model, ids, BASES)
    for row, base in enumerate(BASES):
        assert (got[row] - plain_logits(model, ids, base)).abs().max().item() <= 1e-5


def test_model_without_rope_is_refused_by_name():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=32, n_positions=32))
    with pytest.raises(UnsupportedModelError, match="GPT2LMHeadModel"):
        check_supported(model)


def test_unsupported_rope_type_is_refused_by_name(tiny):
    tiny.config.rope_parameters = {**tiny.config.rope_parameters, "rope_type": "longrope"}
    with pytest.raises(UnsupportedModelError, match="longrope"):
        check_supported(tiny)


# ---- merge rules ----------------------------------------------------------------------


def test_merge_rules_match_hand_computed_values():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]])  # (B=1, N=2, V=3)
    w = torch.softmax(torch.tensor([2.0, 1.5]), 0)
    expected = w[0] * logits[0, 0] + w[1] * logits[0, 1]
    assert torch.allclose(merge(logits, "confidence")[0], expected)
    lp = torch.log_softmax(logits[0], -1)
    assert torch.allclose(merge(logits, "mean")[0], lp.mean(0))
    # row 0's top token has probability softmax([2,0,-1])[0] = 0.84 > row 1's 0.63
    assert torch.allclose(merge(logits, "max")[0], lp[0])


def test_single_bucket_merge_is_identity():
    logits = torch.randn(2, 1, 7)
    for rule in ("confidence", "mean", "max"):
        assert torch.equal(merge(logits, rule), logits[:, 0])


def test_unknown_aggregation_names_the_value():
    with pytest.raises(ValueError, match="'median'.*confidence, mean, max"):
        validate_aggregation("median")


# ---- decoding ---------------------------------------------------------------------------


def test_buckets_decode_in_lockstep_with_merged_logits(tiny, tiny_loaded):
    prompt = random_prompt(25, seed=5)
    res = Engine(tiny_loaded).generate(Request(prompt, BASES, max_tokens=8, prefix_cache=False))
    # reference: full recomputation of the merged logits at every step
    ids = list(prompt)
    expected = []
    for _ in range(len(res.token_ids)):
        last = forward_buckets(tiny, ids, BASES)[:, -1]
        token = int(merge(last[None], "confidence")[0].argmax())
        expected.append(token)
        ids.append(token)
    assert_greedy_agrees(res.token_ids, expected, reference_logits(tiny, prompt, expected, BASES), TOL, "lockstep",
                         same_length=True)


@pytest.mark.parametrize("model_type", ["granite", "smollm3"])
def test_other_families_decode_with_a_cached_prefix_like_a_full_forward(model_type):
    # Granite's scalings and SmolLM3's layer without RoPE, through the engine's cache: a prompt
    # read partly from the prefix cache decodes as the full recomputation of the merged logits
    model = tiny_model(model_type)
    eng = Engine(as_loaded(model))
    prompt = random_prompt(24, seed=9)
    eng.generate(Request(prompt[:16], BASES, max_tokens=1))
    res = eng.generate(Request(prompt, BASES, max_tokens=6, ignore_eos=True))
    assert res.cached_tokens >= 8 and len(res.token_ids) == 6
    ids, expected = list(prompt), []
    for _ in range(6):
        token = int(merge(forward_buckets(model, ids, BASES)[:, -1][None], "confidence")[0].argmax())
        expected.append(token)
        ids.append(token)
    assert_greedy_agrees(res.token_ids, expected, reference_logits(model, prompt, expected, BASES), TOL,
                         f"{model_type}: cached engine vs full forward", same_length=True)


def test_sampling_is_reproducible_with_a_seed(tiny_loaded):
    # The second call of a seed reuses the cached prompt (another computation): its sample
    # equals the first up to a near-tie of the draw.
    eng = Engine(tiny_loaded)
    prompt = random_prompt(20, seed=6)
    sampled = lambda seed: eng.generate(  # noqa: E731
        Request(prompt, BASES, sampling=SamplingParams(temperature=1.0, seed=seed), max_tokens=12)
    ).token_ids
    first = sampled(7)
    logits = reference_logits(tiny_loaded.model, prompt, first, BASES)
    assert assert_sampled_agrees(sampled(7), first, logits, TOL, seed=7, temperature=1.0, what="seed 7 again") is None
    assert any(first != sampled(s) for s in (8, 9, 10))


def test_top_k_one_and_tiny_top_p_are_greedy(tiny_loaded):
    eng = Engine(tiny_loaded)
    prompt = random_prompt(20, seed=7)
    greedy = eng.generate(Request(prompt, BASES, max_tokens=10)).token_ids
    logits = reference_logits(tiny_loaded.model, prompt, greedy, BASES)
    for sp in (SamplingParams(temperature=1.0, top_k=1, seed=1), SamplingParams(temperature=1.0, top_p=1e-6, seed=1)):
        got = eng.generate(Request(prompt, BASES, sampling=sp, max_tokens=10)).token_ids  # cached prompt
        assert_greedy_agrees(got, greedy, logits, TOL, f"{sp} vs greedy", same_length=True)


def test_max_tokens_and_counts(tiny_loaded):
    res = Engine(tiny_loaded).generate(Request(random_prompt(15), BASES, max_tokens=5))
    assert res.completion_tokens == len(res.token_ids) <= 5
    assert res.prompt_tokens == 15
    assert res.finish_reason in ("length", "stop")


def test_stop_string_ends_the_text_before_it(tiny_loaded):
    eng = Engine(tiny_loaded)
    prompt = random_prompt(20, seed=8)
    full = eng.generate(Request(prompt, (10000.0,), max_tokens=30, prefix_cache=False))
    assert len(full.text) >= 6
    stop = full.text[3:5]
    cut = eng.generate(Request(prompt, (10000.0,), max_tokens=30, stop=(stop,), prefix_cache=False))  # as full, step for step
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]


def test_eos_stops(tiny_loaded):
    eng = Engine(tiny_loaded)

    class OnlyEos:
        def apply_mask(self, logits):
            keep = logits[1].clone()
            logits.fill_(float("-inf"))
            logits[1] = keep
            return True

        def accept(self, token):
            pass

        def is_terminated(self):
            return False

    res = eng.generate(Request(random_prompt(10), BASES, max_tokens=10, constraint=OnlyEos()))
    assert res.finish_reason == "stop" and res.token_ids == [1] and res.text == ""


def test_on_token_fires_per_token_and_adds_up(tiny_loaded):
    events = []
    res = Engine(tiny_loaded).generate(Request(random_prompt(12), BASES, max_tokens=9), on_token=events.append)
    assert "".join(e.text for e in events) == res.text
    assert [e.token_id for e in events if e.token_id >= 0] == [t for t in res.token_ids if t != 1]


def test_constraint_masks_the_merged_row(tiny_loaded):
    class EvenOnly:
        def __init__(self):
            self.seen = []

        def apply_mask(self, logits):
            logits[1::2] = float("-inf")
            return True

        def accept(self, token):
            self.seen.append(token)

        def is_terminated(self):
            return False

    c = EvenOnly()
    res = Engine(tiny_loaded).generate(Request(random_prompt(10), BASES, max_tokens=15, constraint=c))
    assert res.token_ids and all(t % 2 == 0 for t in res.token_ids)
    assert c.seen == res.token_ids


def test_grammar_dead_end_finishes_cleanly(tiny_loaded):
    class Nothing:
        def apply_mask(self, logits):
            logits.fill_(float("-inf"))
            return False

        def accept(self, token):
            raise AssertionError("no token may be accepted")

        def is_terminated(self):
            return False

    res = Engine(tiny_loaded).generate(Request(random_prompt(10), BASES, max_tokens=5, constraint=Nothing()))
    assert res.finish_reason == "grammar_dead_end" and res.token_ids == []


def test_cancel_stops_generation(tiny_loaded):
    eng = Engine(tiny_loaded)
    gen = eng.submit(Request(random_prompt(10), BASES, max_tokens=200))
    for i, _ in enumerate(gen):
        if i == 2:
            gen.cancel()
    res = gen.result()
    assert res.finish_reason == "cancelled"
    assert len(res.token_ids) < 200


# ---- limits ---------------------------------------------------------------------------


def test_context_window_error_names_both_numbers(tiny_loaded):
    eng = Engine(tiny_loaded)
    with pytest.raises(ContextLengthError, match=r"200 prompt tokens \+ max_tokens 100 = 300.*256"):
        eng.submit(Request(random_prompt(200), BASES, max_tokens=100))


def test_memory_estimate_scales_with_buckets_and_refuses_what_does_not_fit(tiny_loaded, monkeypatch):
    eng = Engine(tiny_loaded)
    one, six = eng.estimate_memory(100, 50, 1), eng.estimate_memory(100, 50, 6)
    assert six.kv_cache == 6 * one.kv_cache == 6 * 150 * tiny_loaded.kv_bytes_per_token()
    assert six.weights == one.weights == tiny_loaded.weight_bytes()
    import langchain_attention_buckets.engine as engine_mod

    monkeypatch.setattr(engine_mod, "_free_memory", lambda device: 1000)
    with pytest.raises(MemoryBudgetError, match="fewer buckets"):
        eng.submit(Request(random_prompt(100), BASES, max_tokens=50))


def test_kv_memory_is_n_times_one_row_and_weights_are_shared(tiny_loaded):
    eng = Engine(tiny_loaded)
    seen = {}

    def spy(_mod, _args, kwargs, _out):
        seen.setdefault(kwargs["cache"].layers[0].keys.shape[0], kwargs["cache"].nbytes())

    handle = tiny_loaded.model.register_forward_hook(spy, with_kwargs=True)
    params = {p.data_ptr() for p in tiny_loaded.model.parameters()}
    try:
        eng.generate(Request(random_prompt(20), (10000.0,), max_tokens=2, prefix_cache=False))
        eng.generate(Request(random_prompt(20), BASES, max_tokens=2, prefix_cache=False))
    finally:
        handle.remove()
    assert seen[3] == 3 * seen[1]
    assert {p.data_ptr() for p in tiny_loaded.model.parameters()} == params


def test_rotary_module_is_restored_after_an_exception(tiny, tiny_loaded):
    original = rotary_module(tiny)
    eng = Engine(tiny_loaded)

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    handle = tiny.model.layers[0].register_forward_pre_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            eng.generate(Request(random_prompt(10), BASES, max_tokens=3))
    finally:
        handle.remove()
    assert rotary_module(tiny) is original
    # and the engine still works
    assert eng.generate(Request(random_prompt(10), BASES, max_tokens=3)).completion_tokens >= 1


def test_a_failed_admission_frees_its_kv_buffers_once_the_caller_drops_the_error(tiny, tiny_loaded):
    # a pass that runs out of memory on a GPU: a benchmark records it and goes on to the next size,
    # whose memory check must not find the failed pass's KV buffers still allocated
    import gc
    import time
    import weakref

    eng = Engine(tiny_loaded, prefix_cache_bytes=0, idle_trim_interval=None)  # the worker then waits for work
    caches = []

    def oom(module, args, kwargs):
        caches.append(weakref.ref(kwargs["cache"]))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 16.00 GiB")

    handle = tiny.register_forward_pre_hook(oom, with_kwargs=True)
    try:
        with pytest.raises(torch.cuda.OutOfMemoryError) as info:
            eng.generate(Request(random_prompt(10), BASES, max_tokens=3))
    finally:
        handle.remove()
    assert caches and caches[0]() is not None  # kept by the error's traceback while the caller holds it
    del info
    for _ in range(100):  # the worker lets go of the failed request right after handing out the error
        gc.collect()
        if caches[0]() is None:
            break
        time.sleep(0.01)
    assert caches[0]() is None  # nothing else keeps them: not the worker, waiting for the next request
    assert eng.generate(Request(random_prompt(10), BASES, max_tokens=3)).completion_tokens >= 1


def _linears(model):
    return {name: m for name, m in model.named_modules() if type(m) is torch.nn.Linear}


def test_packed_weights_give_the_same_tokens_and_are_put_back(tiny, tiny_loaded, monkeypatch):
    from langchain_attention_buckets.engine import packed

    if not packed.available():
        pytest.skip("this torch build has no oneDNN linear operations")
    monkeypatch.setattr(packed, "MIN_ELEMENTS", 0)  # the tiny model's matrices are far below the real threshold
    before = _linears(tiny)
    pw = packed.pack_model(tiny)
    assert pw is not None and len(pw) == len(before)  # every linear layer, the output layer included
    x = torch.randn(6, 2, tiny.config.hidden_size)
    with torch.inference_mode():
        plain = tiny.lm_head(x)
        with pw.installed():
            assert isinstance(tiny.lm_head, packed.PackedLinear)
            assert (tiny.lm_head(x) - plain).abs().max().item() <= 1e-5
    assert _linears(tiny) == before
    eng = Engine(tiny_loaded, prefix_cache_bytes=0, packed_weights=True)
    ref_eng = Engine(tiny_loaded, prefix_cache_bytes=0, packed_weights=False)
    assert eng.packed_weights is not None and ref_eng.packed_weights is None
    prompt = random_prompt(30, seed=1)
    res = eng.generate(Request(prompt, (10000.0,), max_tokens=20, prefix_cache=False))
    want = greedy_reference(tiny, prompt, 20)
    assert_greedy_agrees(res.token_ids, want, reference_logits(tiny, prompt, want, (10000.0,)), TOL, "packed vs generate")
    bucketed = Request(prompt, BASES, max_tokens=20, prefix_cache=False)
    assert_same_tokens(tiny, [bucketed], [eng.generate(bucketed).token_ids], [ref_eng.generate(bucketed).token_ids],
                       "packed vs default layers")
    assert _linears(tiny) == before  # the model is left with its own modules


def test_packed_weights_only_where_supported_and_affordable(tiny, tiny_loaded, monkeypatch):
    from langchain_attention_buckets.engine import packed

    assert packed.pack_model(tiny) is None  # 64 x 32 weights: below MIN_ELEMENTS
    monkeypatch.setattr(packed, "MIN_ELEMENTS", 0)
    assert packed.pack_model(tiny.to(torch.float64)) is None  # fp32 only
    tiny.to(torch.float32)
    if not packed.available():
        pytest.skip("this torch build has no oneDNN linear operations")
    need = packed.packable_bytes(tiny)
    assert need > 0
    assert packed.pack_model(tiny, budget_bytes=need - 1) is None
    assert packed.pack_model(tiny, budget_bytes=need) is not None
    assert Engine(tiny_loaded, packed_weights=False).packed_weights is None
    # a packed layer that does not reproduce its original is never used
    packed._SHARED.clear()
    monkeypatch.setattr(packed.PackedLinear, "forward", lambda self, x: torch.zeros(*x.shape[:-1], self.out_features))
    assert packed.pack_model(tiny) is None
    with pytest.raises(ValueError, match="packed_weights='yes'"):
        Engine(tiny_loaded, packed_weights="yes")


def test_packed_weights_are_shared_and_rebuilt_when_the_model_changes(tiny, tiny_loaded, monkeypatch):
    import gc

    from langchain_attention_buckets.engine import packed

    if not packed.available():
        pytest.skip("this torch build has no oneDNN linear operations")
    monkeypatch.setattr(packed, "MIN_ELEMENTS", 0)
    a = Engine(tiny_loaded, prefix_cache_bytes=0, packed_weights=True)
    b = Engine(tiny_loaded, prefix_cache_bytes=0, packed_weights=True)
    assert a.packed_weights is b.packed_weights and a.packed_weights.fresh()  # one set of copies per model
    prompt = random_prompt(30, seed=2)
    req = Request(prompt, (10000.0,), max_tokens=12, prefix_cache=False)
    before = a.generate(req).token_ids
    old = a.packed_weights
    with torch.no_grad():
        tiny.lm_head.weight.mul_(-1.0)  # in place: the copies are now stale
    assert not old.fresh()
    after = a.generate(req).token_ids
    assert a.packed_weights is not old and a.packed_weights.fresh()
    assert after == greedy_reference(tiny, prompt, 12)[: len(after)] != before
    new = torch.nn.Linear(tiny.config.intermediate_size, tiny.config.hidden_size, bias=False)
    tiny.model.layers[0].mlp.down_proj = new
    assert not a.packed_weights.fresh()  # a replaced module is never overridden by an old copy
    got = b.generate(req).token_ids
    assert tiny.model.layers[0].mlp.down_proj is new
    assert got == greedy_reference(tiny, prompt, 12)[: len(got)]
    # the shared copies do not keep a model alive
    model = tiny_model()
    assert packed.pack_model(model) is not None
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


# ---- batching, concurrency, prefix cache -------------------------------------------------


def _requests():
    return [
        Request(random_prompt(12 + 7 * i, seed=20 + i), BASES if i % 2 else (10000.0,), max_tokens=6 + i)
        for i in range(5)
    ]


def test_concurrent_calls_equal_calls_one_at_a_time(tiny_loaded):
    reqs = _requests()
    alone = [Engine(tiny_loaded).generate(r).token_ids for r in reqs]
    assert_same_tokens(tiny_loaded.model, reqs, generate_in_threads(Engine(tiny_loaded), reqs), alone, "threads vs alone")


def test_submitted_together_run_in_one_batch(tiny_loaded):
    reqs = _requests()
    alone = [Engine(tiny_loaded).generate(r).token_ids for r in reqs]
    eng = Engine(tiny_loaded)
    with eng._scheduler.cond:  # hold the worker so that all five are queued before it looks
        gens = [eng.submit(r) for r in reqs]
    got = [g.result().token_ids for g in gens]
    assert_same_tokens(tiny_loaded.model, reqs, got, alone, "one batch vs alone")
    assert eng.stats.max_requests == len(reqs)
    assert eng.stats.max_rows == sum(len(r.bases) for r in reqs)


def test_late_arrivals_join_a_running_batch(tiny_loaded):
    long = Request(random_prompt(10, seed=30), BASES, max_tokens=40)
    late = Request(random_prompt(33, seed=31), BASES, max_tokens=5)
    alone = [Engine(tiny_loaded).generate(r).token_ids for r in (long, late)]
    eng = Engine(tiny_loaded)
    first = eng.submit(long)
    it = iter(first)
    next(it)
    next(it)
    second = eng.submit(late)
    got = [first.result().token_ids, second.result().token_ids]
    assert_same_tokens(tiny_loaded.model, [long, late], got, alone, "joined a running batch vs alone")
    assert eng.stats.max_requests == 2


def test_prefix_cache_is_exact_and_used(tiny_loaded):
    base = random_prompt(40, seed=40)
    turns = [base, base + random_prompt(9, seed=41), base + random_prompt(9, seed=41) + random_prompt(5, seed=42)]
    cold = [Engine(tiny_loaded, prefix_cache_bytes=0).generate(Request(p, BASES, max_tokens=6)).token_ids for p in turns]
    eng = Engine(tiny_loaded)
    warm = [eng.generate(Request(p, BASES, max_tokens=6)) for p in turns]
    reqs = [Request(p, BASES) for p in turns]
    assert_same_tokens(tiny_loaded.model, reqs, [r.token_ids for r in warm], cold, "cached vs fresh")
    assert warm[0].cached_tokens == 0
    assert warm[1].cached_tokens >= 40 and warm[2].cached_tokens >= 49


def test_prefix_cache_keys_on_the_base_set(tiny_loaded):
    eng = Engine(tiny_loaded)
    p = random_prompt(30, seed=43)
    eng.generate(Request(p, BASES, max_tokens=3))
    assert eng.generate(Request(p + (5,), (10000.0,), max_tokens=3)).cached_tokens == 0
    assert eng.generate(Request(p + (5,), BASES, max_tokens=3)).cached_tokens >= 30


def test_prefix_cache_stays_exact_after_evictions(tiny_loaded):
    per_token = tiny_loaded.kv_bytes_per_token() * len(BASES)
    eng = Engine(tiny_loaded, prefix_cache_bytes=per_token * 60)  # room for one ~50-token entry
    prompts = [random_prompt(45, seed=50 + i) for i in range(4)]
    cold = [Engine(tiny_loaded, prefix_cache_bytes=0).generate(Request(p + (7,), BASES, max_tokens=4)).token_ids for p in prompts]
    for p in prompts:
        eng.generate(Request(p, BASES, max_tokens=4))
    assert eng.prefix_cache.nbytes <= per_token * 60
    assert len(eng.prefix_cache) == 1
    # newest first: the survivor is reused, the evicted ones are recomputed
    got = [eng.generate(Request(p + (7,), BASES, max_tokens=4)) for p in reversed(prompts)][::-1]
    reqs = [Request(p + (7,), BASES) for p in prompts]
    assert_same_tokens(tiny_loaded.model, reqs, [r.token_ids for r in got], cold, "cached after evictions vs fresh")
    assert got[-1].cached_tokens >= 45
    assert got[0].cached_tokens == 0


def test_prefix_cache_under_concurrent_calls(tiny_loaded):
    shared = random_prompt(30, seed=60)
    reqs = [Request(shared + random_prompt(5, seed=61 + i), BASES, max_tokens=5) for i in range(4)]
    cold = [Engine(tiny_loaded, prefix_cache_bytes=0).generate(r).token_ids for r in reqs]
    eng = Engine(tiny_loaded)
    eng.generate(Request(shared, BASES, max_tokens=2))
    out = [None] * 4
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, eng.generate(reqs[i]))) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_same_tokens(tiny_loaded.model, reqs, [r.token_ids for r in out], cold, "cached, concurrent vs fresh")
    assert all(r.cached_tokens >= 30 for r in out)


def test_clear_prefix_cache(tiny_loaded):
    eng = Engine(tiny_loaded)
    p = random_prompt(20)
    eng.generate(Request(p, BASES, max_tokens=2))
    eng.clear_prefix_cache()
    assert len(eng.prefix_cache) == 0
    assert eng.generate(Request(p + (3,), BASES, max_tokens=2)).cached_tokens == 0


async def test_async_iteration_and_cancellation(tiny_loaded):
    import asyncio

    eng = Engine(tiny_loaded)
    gen = eng.submit(Request(random_prompt(10), BASES, max_tokens=100), loop=asyncio.get_running_loop())
    n = 0
    async for _ in gen:
        n += 1
        if n == 3:
            gen.cancel()
    assert gen.final.finish_reason == "cancelled"


# ---- speculative decoding ---------------------------------------------------------------


def _spec_pair(loaded, prompt, **kw):
    plain = Engine(loaded, prefix_cache_bytes=0).generate(Request(prompt, BASES, speculative_tokens=0, **kw))
    eng = Engine(loaded, prefix_cache_bytes=0)
    fast = eng.generate(Request(prompt, BASES, speculative_tokens=8, **kw))
    return plain, fast, eng.stats


def test_speculative_decoding_gives_the_same_tokens(tiny_loaded):
    # a random tiny model loops quickly, so n-gram drafts get accepted
    for seed in range(3):
        prompt = random_prompt(30, seed=70 + seed)
        plain, fast, stats = _spec_pair(tiny_loaded, prompt, max_tokens=40)
        logits = reference_logits(tiny_loaded.model, prompt, plain.token_ids, BASES)
        if assert_greedy_agrees(fast.token_ids, plain.token_ids, logits, TOL, "speculative vs plain") is None:
            assert fast.text == plain.text
    assert stats.drafted_tokens > 0


def test_speculation_accepts_drafts_and_saves_forward_passes(tiny_loaded):
    prompt = random_prompt(30, seed=71)
    plain, fast, stats = _spec_pair(tiny_loaded, prompt, max_tokens=60, ignore_eos=True)
    logits = reference_logits(tiny_loaded.model, prompt, plain.token_ids, BASES)
    assert_greedy_agrees(fast.token_ids, plain.token_ids, logits, TOL, "speculative vs plain")
    assert stats.accepted_tokens > 0
    assert stats.decode_passes < len(fast.token_ids) - 1


def test_a_repeated_prompt_replays_its_earlier_answer_as_the_draft(tiny_loaded):
    eng = Engine(tiny_loaded)
    prompt = random_prompt(25, seed=72)
    first = eng.generate(Request(prompt, BASES, max_tokens=30, ignore_eos=True, speculative_tokens=0))
    before = eng.stats.decode_passes
    again = eng.generate(Request(prompt, BASES, max_tokens=30, ignore_eos=True))
    logits = reference_logits(tiny_loaded.model, prompt, first.token_ids, BASES)
    assert_greedy_agrees(again.token_ids, first.token_ids, logits, TOL, "replayed draft vs plain", same_length=True)
    assert eng.stats.decode_passes - before <= 30 // 8 + 2  # drafts of 8, nearly all accepted


def test_speculation_respects_stop_strings_max_tokens_and_grammars(tiny_loaded):
    prompt = random_prompt(30, seed=73)
    full = Engine(tiny_loaded, prefix_cache_bytes=0).generate(Request(prompt, BASES, max_tokens=30, speculative_tokens=0))
    stop = full.text[5:7]

    class EvenOnly:
        def apply_mask(self, logits):
            logits[1::2] = float("-inf")
            return True

        def accept(self, token):
            assert token % 2 == 0

        def is_terminated(self):
            return False

    for kw in ({"stop": (stop,)}, {"max_tokens": 7}):
        plain, fast, _ = _spec_pair(tiny_loaded, prompt, **{"max_tokens": 30, **kw})
        logits = reference_logits(tiny_loaded.model, prompt, plain.token_ids, BASES)
        if assert_greedy_agrees(fast.token_ids, plain.token_ids, logits, TOL, f"speculative vs plain, {kw}") is None:
            assert (fast.text, fast.finish_reason) == (plain.text, plain.finish_reason)
    request = Request(prompt, BASES, max_tokens=25, constraint=EvenOnly(), speculative_tokens=0)
    plain = Engine(tiny_loaded, prefix_cache_bytes=0).generate(request)
    fast = Engine(tiny_loaded, prefix_cache_bytes=0).generate(Request(prompt, BASES, max_tokens=25, constraint=EvenOnly()))
    logits = reference_logits(tiny_loaded.model, prompt, plain.token_ids, BASES)
    logits[:, 1::2] = float("-inf")  # the grammar's mask: odd tokens are never candidates
    assert_greedy_agrees(fast.token_ids, plain.token_ids, logits, TOL, "speculative vs plain under a grammar")


def test_ngram_draft():
    from langchain_attention_buckets.engine.steps import ngram_draft as _ngram_draft

    assert _ngram_draft([5, 6, 7, 8, 9, 1, 5, 6, 7], 3) == [8, 9, 1]
    assert _ngram_draft([1, 2, 3], 4) == []


def test_prompt_is_cached_as_soon_as_its_prefill_is_done(tiny_loaded):
    # A client that stops reading after the first token still leaves the next turn fast.
    eng = Engine(tiny_loaded)
    prompt = random_prompt(40, seed=70)
    gen = eng.submit(Request(prompt, BASES, max_tokens=50))
    next(iter(gen))
    gen.cancel()
    assert gen.result().finish_reason == "cancelled"
    again = eng.generate(Request(prompt + (3, 4), BASES, max_tokens=3))
    assert again.cached_tokens == len(prompt)
