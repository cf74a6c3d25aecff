"""The candidates that keep the trained row's strengths, on tiny models: the anchored merge rules,
the base sets around the trained base, and Ms-PoE (per-head position scaling).

Where two different computations decode the same request (batched and alone, the engine and one
full forward pass), tokens are compared up to the first near-tie (``agreement``); the
``torch.equal`` checks are the same computation, or a setting that must change nothing.
"""

from __future__ import annotations

import pytest
import torch
from agreement import TINY_TOLERANCE, assert_greedy_agrees, reference_logits
from conftest import CLOSING, random_prompt, tiny_model

from langchain_attention_buckets.bench.configs import CANDIDATE_CONFIGS, CONFIGS, BenchConfig, default_factory
from langchain_attention_buckets.engine import Engine, Request, forward_buckets
from langchain_attention_buckets.engine import bases as B
from langchain_attention_buckets.engine.headscale import check_head_scales, mspoe_scales
from langchain_attention_buckets.engine.merge import (
    ANCHOR_TOP_P,
    ANCHORED_RULES,
    MERGE_RULES,
    UNSURE_BELOW,
    merge,
    nucleus,
)

ANCHORED = sorted(ANCHORED_RULES)
OWN = 10000.0
BASES = (OWN, 17500.0, 25000.0)
TOL = TINY_TOLERANCE[torch.float32]


def assert_agrees(model, req: Request, got: list[int], want: list[int], what: str) -> None:
    """``got`` equals ``want`` (the same request's tokens, computed another way) up to a near-tie."""
    logits = reference_logits(model, req.prompt, want, req.bases, req.aggregation, head_scales=req.head_scales,
                              bucket_layers=req.bucket_layers)
    assert_greedy_agrees(got, want, logits, TOL, what, same_length=True)


def _logits(b=2, n=3, v=50, seed=0, scale=3.0):
    return torch.randn(b, n, v, generator=torch.Generator().manual_seed(seed)) * scale


def _confident_row(v=50, top=7, p=0.97):
    """Logits of a row whose top token (``top``) has probability ``p``."""
    rest = torch.full((v,), (1 - p) / (v - 1))
    rest[top] = p
    return rest.log()


# ---- merge rules: shapes, exactness, determinism -------------------------------------------


@pytest.mark.parametrize("rule", sorted(MERGE_RULES))
def test_every_rule_merges_to_one_float_row_per_request(rule):
    out = merge(_logits(b=4, n=5, v=33), rule)
    assert out.shape == (4, 33) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("rule", ANCHORED)
def test_one_row_passes_through_unchanged(rule):
    logits = _logits(n=1)
    assert torch.equal(merge(logits, rule), logits[:, 0])


@pytest.mark.parametrize("rule", sorted(MERGE_RULES))
def test_all_rows_equal_give_the_plain_models_distribution(rule):
    row = _logits(n=1, seed=3)  # (2, 1, V)
    logits = row.expand(-1, 4, -1)
    got = torch.softmax(merge(logits, rule), dim=-1)
    want = torch.softmax(row[:, 0], dim=-1)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(got.argmax(-1), want.argmax(-1))


@pytest.mark.parametrize("rule", ["anchored", "anchored-unsure"])
def test_a_confident_trained_row_is_kept_bit_for_bit(rule):
    trained = _confident_row(top=7, p=max(ANCHOR_TOP_P, UNSURE_BELOW) + 0.05)
    others = torch.full((2, 50), -5.0)
    others[:, 11] = 20.0  # the other rows are sure of another token
    logits = torch.cat([trained[None], others])[None]  # (1, 3, V)
    out = merge(logits, rule)
    assert int(out.argmax()) == 7
    assert torch.equal(out[0], torch.log_softmax(trained, -1))


@pytest.mark.parametrize("rule", sorted(MERGE_RULES))
def test_rules_are_deterministic_and_rows_of_a_batch_independent(rule):
    logits = _logits(b=3, n=4, seed=5)
    once = merge(logits, rule)
    assert torch.equal(once, merge(logits.clone(), rule))
    for i in range(3):
        assert torch.allclose(merge(logits[i : i + 1], rule)[0], once[i], atol=1e-6)


def test_nucleus_is_the_smallest_top_set_holding_top_p():
    lp = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert nucleus(lp, 0.9).tolist() == [[True, True, True, False]]  # 0.8 < 0.9: the third is needed
    assert nucleus(lp, 0.45).tolist() == [[True, False, False, False]]
    assert nucleus(lp, 0.0).tolist() == [[True, False, False, False]]  # the top token always


def test_anchored_reranks_inside_the_nucleus_only():
    trained = torch.tensor([0.5, 0.42, 0.05, 0.03]).log()  # nucleus {0, 1}
    other = torch.tensor([0.05, 0.05, 0.05, 0.85]).log()  # prefers 3 (outside) and ranks 0 = 1
    leaning = torch.tensor([0.1, 0.8, 0.05, 0.05]).log()  # prefers 1 (inside)
    out = merge(torch.stack([trained, other, leaning])[None], "anchored")[0]
    lp0 = torch.log_softmax(trained, -1)
    assert int(out.argmax()) == 1  # re-ranked inside the nucleus
    assert torch.equal(out[2:], lp0[2:])  # outside: the trained row's log-probabilities, unchanged
    assert torch.allclose(out.logsumexp(-1), torch.tensor(0.0), atol=1e-6)  # still a distribution
    # the nucleus keeps the trained row's mass; the other rows only share it out
    assert torch.allclose(out[:2].logsumexp(-1), lp0[:2].logsumexp(-1), atol=1e-6)


def test_anchored_unsure_merges_only_where_the_trained_row_is_unsure():
    unsure = torch.tensor([0.4, 0.35, 0.25]).log()
    other = torch.tensor([0.1, 0.1, 0.8]).log()
    logits = torch.stack([unsure, other])[None]
    assert torch.allclose(merge(logits, "anchored-unsure"), merge(logits, "mean"))
    assert int(merge(logits, "anchored-unsure").argmax()) == 2


def test_weighted_favours_the_trained_row_over_split_others():
    trained = torch.tensor([0.6, 0.2, 0.2]).log()
    b = torch.tensor([0.2, 0.6, 0.2]).log()
    c = torch.tensor([0.2, 0.2, 0.6]).log()
    out = merge(torch.stack([trained, b, c])[None], "weighted")
    assert int(out.argmax()) == 0
    assert int(merge(torch.stack([b, trained, c])[None], "weighted").argmax()) == 1  # row 0 is the anchor


# ---- base sets around the trained base ---------------------------------------------------


@pytest.mark.parametrize("name", ["near", "narrow"])
def test_named_sets_around_the_trained_base(name):
    got = B.resolve_bases(name, head_dim=64, base=1e5, context_length=8192)
    assert got == pytest.approx(tuple(1e5 * r for r in B.NAMED_RATIOS[name]), rel=1e-12)
    assert all(b == round(b) for b in got)  # whole numbers, as a user would write them
    assert got[0] == 1e5 and min(got) < 1e5 < max(got) <= 1.25e5
    assert B.check_bases_spec(f" {name.upper()} ") == name


def test_unknown_set_names_the_value_and_the_names():
    with pytest.raises(ValueError, match=r"'nearby'.*'paper'.*'near'.*'narrow'"):
        B.check_bases_spec("nearby")


def test_anchor_first_moves_the_trained_base_to_the_front():
    assert B.anchor_first((17500.0, 10000.0, 25000.0), 10000.0) == (10000.0, 17500.0, 25000.0)
    with pytest.raises(ValueError, match=r"lack the model's own rotary base 10000"):
        B.anchor_first((17500.0, 25000.0), 10000.0)


# ---- the engine with anchored rules --------------------------------------------------------


def test_engine_refuses_an_anchored_request_without_the_trained_row_first(tiny_loaded):
    bad = Request(random_prompt(10), (17500.0, OWN), aggregation="anchored", max_tokens=2)
    with pytest.raises(ValueError, match=r"bases\[0\]=17500 is not the model's own rotary base 10000"):
        Engine(tiny_loaded).generate(bad)


@pytest.mark.parametrize("rule", ANCHORED)
def test_engine_decodes_with_anchored_rules_deterministically(tiny_loaded, rule):
    req = Request(random_prompt(20, seed=4), BASES, aggregation=rule, max_tokens=8, prefix_cache=False)
    a, b = Engine(tiny_loaded).generate(req), Engine(tiny_loaded).generate(req)
    assert a.token_ids == b.token_ids and len(a.token_ids) == 8  # the same computation twice
    one = Request(req.prompt, (OWN,), aggregation=rule, max_tokens=8, prefix_cache=False)
    plain = Request(req.prompt, (OWN,), max_tokens=8, prefix_cache=False)
    want = Engine(tiny_loaded).generate(plain).token_ids
    assert_agrees(tiny_loaded.model, plain, Engine(tiny_loaded).generate(one).token_ids, want, f"one base, {rule} vs plain")


# ---- Ms-PoE --------------------------------------------------------------------------------


def test_mspoe_scales_follow_the_reference_assignment():
    s = mspoe_scales(n_layers=5, kv_heads=3)
    assert s[:2] == ((1.0, 1.0, 1.0),) * 2  # the first two layers keep their positions
    assert all(row == pytest.approx((1.2, 1.4, 1.6)) for row in s[2:])
    with pytest.raises(ValueError, match=r"5 rows .* of 3 ratios"):
        check_head_scales(s[:4], 5, 3)
    with pytest.raises(ValueError, match=r"finite positive ratios; got -1"):
        check_head_scales([[1.0, -1.0, 1.0]] * 5, 5, 3)


@pytest.mark.parametrize("model_type", ["llama", "qwen3"])
def test_all_ratios_one_is_the_plain_model_bit_for_bit(model_type):
    model = tiny_model(model_type, num_hidden_layers=3)
    ids = random_prompt(40)
    plain = forward_buckets(model, ids, [OWN])
    assert torch.equal(forward_buckets(model, ids, [OWN], head_scales=[[1.0, 1.0]] * 3), plain)
    scaled = forward_buckets(model, ids, [OWN], head_scales=mspoe_scales(3, 2))
    assert not torch.allclose(scaled, plain, atol=1e-5)


@pytest.mark.parametrize("model_type", ["llama", "qwen3", "smollm3"])
def test_one_ratio_everywhere_equals_linear_rope_scaling(model_type):
    # Dividing every position by r is what the "linear" rope type with factor r does; a layer
    # without RoPE (SmolLM3's fourth) reads no positions, so a ratio leaves it as it is.
    layers = 4 if model_type == "smollm3" else 2
    model = tiny_model(model_type, num_hidden_layers=layers)
    linear = tiny_model(model_type, num_hidden_layers=layers,
                        rope={"rope_type": "linear", "factor": 1.5, "rope_theta": OWN})
    linear.load_state_dict(model.state_dict())
    ids = random_prompt(40, seed=1)
    got = forward_buckets(model, ids, [OWN], head_scales=[[1.5, 1.5]] * layers)
    assert (got - forward_buckets(linear, ids, [OWN])).abs().max().item() < 1e-5


def test_mspoe_hooks_are_removed_after_the_pass(tiny):
    forward_buckets(tiny, random_prompt(10), [OWN], head_scales=mspoe_scales(2, 2, skip_layers=0))
    for layer in tiny.model.layers:
        assert not layer.self_attn.q_proj._forward_hooks and not layer.self_attn.k_proj._forward_hooks


def _mspoe_request(prompt, **kw):
    return Request(prompt, (OWN,), head_scales=mspoe_scales(2, 2, skip_layers=0), max_tokens=8, **kw)


def test_engine_mspoe_decode_matches_a_full_forward(tiny, tiny_loaded):
    prompt = random_prompt(25, seed=6)
    res = Engine(tiny_loaded).generate(_mspoe_request(prompt, prefix_cache=False))
    ids = list(prompt) + res.token_ids
    logits = forward_buckets(tiny, ids, [OWN], head_scales=mspoe_scales(2, 2, skip_layers=0))[0]
    steps = logits[len(prompt) - 1 : -1]
    want = steps.argmax(-1).tolist()  # greedy: the full pass picks the same tokens, up to a near-tie
    assert_greedy_agrees(res.token_ids, want, steps, TOL, "Ms-PoE decode vs a full forward")


def test_mspoe_keeps_its_own_prefix_cache_and_batches_with_buckets(tiny_loaded):
    prompt = random_prompt(30, seed=7)
    cold = Engine(tiny_loaded, prefix_cache_bytes=0)
    want_mspoe = cold.generate(_mspoe_request(prompt)).token_ids
    want_plain = cold.generate(Request(prompt, BASES, max_tokens=8)).token_ids
    eng = Engine(tiny_loaded)
    eng.generate(Request(prompt, (OWN,), max_tokens=8))  # the plain model's keys are cached
    assert eng.generate(_mspoe_request(prompt + (3,))).cached_tokens == 0  # ... and not reused
    reqs = [_mspoe_request(prompt, prefix_cache=False), Request(prompt, BASES, max_tokens=8, prefix_cache=False)]
    with eng._scheduler.cond:  # both queued before the worker looks: one batch
        gens = [eng.submit(r) for r in reqs]
    for req, gen, want, what in zip(reqs, gens, (want_mspoe, want_plain), ("Ms-PoE", "buckets")):
        assert_agrees(tiny_loaded.model, req, gen.result().token_ids, want, f"{what}: batched vs alone")
    assert eng.stats.max_requests == 2


def test_engine_refuses_head_scales_of_the_wrong_shape(tiny_loaded):
    bad = Request(random_prompt(10), (OWN,), head_scales=((1.2, 1.4),), max_tokens=2)
    with pytest.raises(ValueError, match=r"2 rows \(one per layer\) of 2 ratios"):
        Engine(tiny_loaded).generate(bad)


# ---- buckets in only some layers --------------------------------------------------------------


def _after_layer(model, index: int, run):
    """The hidden states a layer outputs while ``run()`` runs."""
    seen = []

    def keep(module, args, out):
        seen.append(out[0] if isinstance(out, tuple) else out)

    handle = model.model.layers[index].register_forward_hook(keep)
    try:
        run()
    finally:
        handle.remove()
    return seen[0]


def test_bucket_layers_keep_the_rows_bases_below_and_the_trained_base_above():
    model = tiny_model(num_hidden_layers=3)
    ids = random_prompt(40, seed=2)
    full = forward_buckets(model, ids, BASES)
    assert torch.equal(forward_buckets(model, ids, BASES, bucket_layers=3), full)  # all layers: buckets as ever
    plain = forward_buckets(model, ids, [OWN])[0]
    none = forward_buckets(model, ids, BASES, bucket_layers=0)  # no layer: every row is the plain model
    assert all((row - plain).abs().max().item() < 1e-5 for row in none)
    # one layer: the first layer's output is the buckets', the logits are neither the buckets' nor plain
    below = _after_layer(model, 0, lambda: forward_buckets(model, ids, BASES, bucket_layers=1))
    assert torch.equal(below, _after_layer(model, 0, lambda: forward_buckets(model, ids, BASES)))
    one = forward_buckets(model, ids, BASES, bucket_layers=1)
    assert torch.equal(one[0], full[0])  # the trained row never changes
    assert not torch.allclose(one[1:], full[1:], atol=1e-4) and not torch.allclose(one[1], plain, atol=1e-4)


def test_engine_bucket_layers_decode_and_batch_like_a_full_forward(tiny, tiny_loaded):
    prompt = random_prompt(25, seed=8)
    req = Request(prompt, BASES, aggregation="anchored", bucket_layers=1, max_tokens=6, prefix_cache=False)
    alone = Engine(tiny_loaded).generate(req).token_ids
    eng = Engine(tiny_loaded)
    other = Request(prompt, BASES, max_tokens=6, prefix_cache=False)
    with eng._scheduler.cond:
        gens = [eng.submit(req), eng.submit(other)]
    assert_agrees(tiny, req, gens[0].result().token_ids, alone, "bucket_layers: batched vs alone")
    assert_agrees(tiny, other, gens[1].result().token_ids, Engine(tiny_loaded).generate(other).token_ids,
                  "all layers: batched with bucket_layers vs alone")
    ids = list(prompt) + alone
    logits = forward_buckets(tiny, ids, BASES, bucket_layers=1)  # (3, S, V)
    steps = torch.stack([merge(logits[None, :, j], "anchored")[0] for j in range(len(prompt) - 1, len(ids) - 1)])
    assert_greedy_agrees(alone, steps.argmax(-1).tolist(), steps, TOL, "bucket_layers decode vs a full forward")
    with pytest.raises(ValueError, match=r"bucket_layers=5 must be None or an integer from 0 to 2"):
        Engine(tiny_loaded).generate(Request(prompt, BASES, bucket_layers=5, max_tokens=2))


# ---- the chat model and the bench ------------------------------------------------------------


def test_chat_model_runs_mspoe_and_says_so(tiny_chat_dir):
    from langchain_attention_buckets import ChatAttentionBuckets

    llm = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", strategy="ms-poe", max_tokens=4, logit_bias=CLOSING)
    msg = llm.invoke("hello")
    assert msg.response_metadata["strategy"] == "ms-poe"
    assert msg.response_metadata["bases"] == [OWN]
    with pytest.raises(ValueError, match=r"strategy='ms-poe' runs one pass at one base; bases='paper'"):
        ChatAttentionBuckets(model=tiny_chat_dir, strategy="ms-poe", bases="paper")


def test_chat_model_puts_the_trained_row_first_for_anchored_rules(tiny_chat_dir):
    from langchain_attention_buckets import ChatAttentionBuckets

    llm = ChatAttentionBuckets(
        model=tiny_chat_dir, dtype="float32", bases=[17500.0, OWN], aggregation="anchored", max_tokens=3
    )
    meta = llm.invoke("hi").response_metadata
    assert meta["bases"] == [OWN, 17500.0] and meta["aggregation"] == "anchored"
    assert meta["strategy"] == "buckets"
    without = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=[17500.0, 25000.0], max_tokens=2)
    without.invoke("hi")  # symmetric rules need no trained row
    with pytest.raises(ValueError, match=r"lack the model's own rotary base 10000"):
        without.invoke("hi", aggregation="weighted")


def test_chat_model_bucket_layers(tiny_chat_dir):
    from langchain_attention_buckets import ChatAttentionBuckets

    llm = ChatAttentionBuckets(model=tiny_chat_dir, dtype="float32", bases=list(BASES), bucket_layers=0.5, max_tokens=3)
    assert llm.invoke("hi").response_metadata["bucket_layers"] == 1  # of the tiny model's 2 layers
    for bad in (0, 1.5, True, "half"):
        with pytest.raises(ValueError, match=r"bucket_layers=.* must be a fraction of the layers"):
            ChatAttentionBuckets(model=tiny_chat_dir, bucket_layers=bad)


def test_candidates_are_bench_configs(tiny_chat_dir):
    assert {c.name for c in CANDIDATE_CONFIGS} <= set(CONFIGS)
    assert "strategy" not in CONFIGS["paper"].to_dict()  # earlier runs' cache keys still match
    assert CONFIGS["ms-poe"].to_dict()["strategy"] == "ms-poe"
    make = default_factory(tiny_chat_dir)
    assert make(CONFIGS["ms-poe"]).resolved_bases() == (OWN,)
    assert make(CONFIGS["near-anchored"]).resolved_bases()[0] == OWN
    assert make(BenchConfig("x", bases="narrow", aggregation="weighted")).aggregation == "weighted"
    assert make(CONFIGS["paper-lower-half"]).bucket_layers == 0.5
    assert "bucket_layers" not in CONFIGS["paper"].to_dict()
