"""CUDA code paths of the engine and the chat model (skipped without CUDA).

Comparisons of two computations state their tolerance (``agreement``): greedy tokens equal up
to the first near-tie within it; sampled ones (same seed) exactly.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from agreement import TINY_TOLERANCE, assert_close_logits, assert_greedy_agrees, reference_logits
from conftest import as_loaded, generate_in_threads, random_prompt, spy_sdpa, tail_logits, tiny_model

from langchain_attention_buckets.engine import Engine, Request, forward_buckets
from langchain_attention_buckets.engine.loading import resolve_device, resolve_dtype
from langchain_attention_buckets.engine.sampling import SamplingParams

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

BASES = (10000.0, 17500.0, 25000.0)


def cuda_loaded(dtype: torch.dtype = torch.float32):
    model = tiny_model().to("cuda", dtype)
    return model, dataclasses.replace(as_loaded(model), device=torch.device("cuda"), dtype=dtype)


def test_auto_picks_cuda_and_a_half_precision_dtype():
    device = resolve_device("auto")
    assert device.type == "cuda"
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert resolve_dtype("auto", device) == expected


def test_rows_on_cuda_equal_the_cpu_rows():
    cpu = tiny_model()
    gpu = tiny_model().to("cuda")
    ids = random_prompt(48, seed=3)
    want = forward_buckets(cpu, ids, BASES)
    got = forward_buckets(gpu, ids, BASES).cpu()
    assert (got - want).abs().max().item() <= 1e-4


def test_greedy_on_cuda_equals_transformers_generate():
    model, loaded = cuda_loaded()
    prompt = random_prompt(30, seed=1)
    res = Engine(loaded).generate(Request(prompt, (10000.0,), max_tokens=16, prefix_cache=False))
    ref = model.generate(torch.tensor([prompt], device="cuda"), max_new_tokens=16, do_sample=False,
                         eos_token_id=1, pad_token_id=0)[0, len(prompt):].tolist()
    logits = reference_logits(model, prompt, ref, (10000.0,))
    assert_greedy_agrees(res.token_ids, ref, logits, TINY_TOLERANCE[torch.float32], "cuda engine vs generate")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_buckets_batch_like_one_at_a_time(dtype):
    # batched rows (other shapes, left padding) round unlike one request alone: in half precision
    # greedy tokens agree up to a near-tie (the reference's own rating), not bit for bit
    model, loaded = cuda_loaded(dtype)
    engine = Engine(loaded, prefix_cache_bytes=0)
    reqs = [Request(random_prompt(20 + 7 * i, seed=i), BASES, max_tokens=12, prefix_cache=False, ignore_eos=True)
            for i in range(4)]
    alone = [engine.generate(r).token_ids for r in reqs]
    for r, got, want in zip(reqs, generate_in_threads(engine, reqs), alone):
        logits = reference_logits(model, r.prompt, want, r.bases)
        assert_greedy_agrees(got, want, logits, TINY_TOLERANCE[torch.bfloat16], f"{dtype} batched vs alone")
    # a seeded sampled request draws from its own (CPU) generator: the same tokens on every run
    sampled = dataclasses.replace(reqs[0], sampling=SamplingParams(temperature=0.8, seed=3))
    assert engine.generate(sampled).token_ids == engine.generate(sampled).token_ids


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sdpa_switch_runs_a_cached_tail_in_flash_attention(monkeypatch, dtype):
    # flash alone: a materialised mask has no kernel there and raises, so a pass that returns ran
    # the cached tail (9 queries over 49 keys, no padding) in flash attention
    from langchain_attention_buckets.engine import fastpaths

    model = tiny_model().to("cuda", dtype)
    prompt, tail = random_prompt(40, seed=5), random_prompt(9, seed=6)
    masked = tail_logits(model, prompt, tail)
    fastpaths.configure(model, fastpaths.FastPaths(sdpa_backends=("flash",)))
    seen = spy_sdpa(monkeypatch)
    got = tail_logits(model, prompt, tail)
    assert {kind for q, _, kind, _ in seen if q == 9} == {"bias"}
    assert_close_logits(got, masked, TINY_TOLERANCE[torch.bfloat16], "flash with a lower-right bias vs a mask")


def test_memory_estimate_reads_the_cards_free_memory():
    _, loaded = cuda_loaded()
    est = Engine(loaded).estimate_memory(1000, 100, 6)
    assert est.available is not None and est.available > 0
    assert est.kv_cache == 6 * 1100 * loaded.kv_bytes_per_token()


@pytest.mark.embedded
def test_embedded_model_on_cuda_makes_a_forced_tool_call():
    from langchain_attention_buckets import ChatAttentionBuckets

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return "sunny"

    llm = ChatAttentionBuckets(device="cuda", temperature=0, max_tokens=48)
    msg = llm.bind_tools([get_weather], tool_choice="get_weather").invoke("What is the weather in Paris?")
    assert msg.tool_calls and msg.tool_calls[0]["name"] == "get_weather"
    assert msg.response_metadata["bases"] and llm.load().device.type == "cuda"


# ---- models placed by accelerate (model_kwargs={"device_map": ...}) ----------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random Llama of 4 layers with the embedded model's tokenizer files, as a local folder."""
    import shutil

    from conftest import SMOL_TOKENIZER_DIR

    folder = tmp_path_factory.mktemp("tiny-gpu")
    shutil.copytree(SMOL_TOKENIZER_DIR, folder, dirs_exist_ok=True)
    tiny_model(num_hidden_layers=4, vocab_size=2048, bos_token_id=1, eos_token_id=1).save_pretrained(folder)
    return str(folder)


def placed(folder: str, device_map, **kwargs):
    from langchain_attention_buckets.engine.loading import ModelSpec, load_model

    return load_model(ModelSpec(folder, dtype="float32", model_kwargs={"device_map": device_map, **kwargs}))


def single(folder: str):
    from langchain_attention_buckets.engine.loading import ModelSpec, load_model

    return load_model(ModelSpec(folder, device="cuda:0", dtype="float32"))


def assert_same_buckets(loaded, reference):
    ids = random_prompt(48, seed=4)
    got, want = forward_buckets(loaded.model, ids, BASES), forward_buckets(reference.model, ids, BASES)
    assert (got.to(want.device) - want).abs().max().item() <= 1e-5
    prompts = [random_prompt(30 + 9 * i, seed=i) for i in range(3)]
    reqs = [Request(p, BASES, max_tokens=12, ignore_eos=True) for p in prompts]
    eng, ref = Engine(loaded), Engine(reference)
    tol = TINY_TOLERANCE[torch.float32]

    def agree(got, want, what):
        for r, g, w in zip(reqs, got, want):
            assert_greedy_agrees(g, w, reference_logits(reference.model, r.prompt, w, r.bases), tol, what)

    agree([eng.generate(r).token_ids for r in reqs], [ref.generate(r).token_ids for r in reqs], "placed vs one device")
    agree([eng.generate(r).token_ids for r in reqs], [ref.generate(r).token_ids for r in reqs], "prefix cache hits")
    agree(generate_in_threads(eng, reqs), generate_in_threads(ref, reqs), "batched")
    assert eng.prefix_cache.hits > 0


def layer_map(devices: list) -> dict:
    layers = {f"model.layers.{i}": d for i, d in enumerate(devices)}
    return {"model.embed_tokens": 0, **layers, "model.norm": devices[-1], "model.rotary_emb": 0,
            "lm_head": devices[-1]}


def test_device_map_auto_buckets_equal_the_single_device_model(model_dir):
    loaded = placed(model_dir, "auto")
    assert loaded.device.type == "cuda" and all(d.type == "cuda" for d in loaded.layer_devices())
    assert_same_buckets(loaded, single(model_dir))


def test_layers_offloaded_to_the_cpu_run_on_the_card_with_their_kv_there(model_dir):
    from langchain_attention_buckets.engine.placement import is_dispatched

    loaded = placed(model_dir, layer_map([0, "cpu", 0, "cpu"]))
    assert is_dispatched(loaded.model) and loaded.layer_devices() == (torch.device("cuda", 0),) * 4
    assert any(p.device.type == "meta" for p in loaded.model.model.layers[1].parameters())
    assert_same_buckets(loaded, single(model_dir))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_layers_split_over_two_cards_equal_one_card(model_dir):
    loaded = placed(model_dir, layer_map([0, 0, 1, 1]))
    cards = (torch.device("cuda", 0), torch.device("cuda", 1))
    assert loaded.layer_devices() == (cards[0], cards[0], cards[1], cards[1])
    seen = []

    def spy(_mod, _args, kwargs, _out):
        seen.append(tuple(layer.keys.device for layer in kwargs["cache"].layers))

    handle = loaded.model.register_forward_hook(spy, with_kwargs=True)
    try:
        assert_same_buckets(loaded, single(model_dir))
    finally:
        handle.remove()
    assert seen and all(devices == loaded.layer_devices() for devices in seen)
    est = Engine(loaded).estimate_memory(1000, 24, 6)
    assert [d.device for d in est.devices] == list(cards)
    assert est.devices[0].kv_cache == est.devices[1].kv_cache == est.kv_cache // 2
    assert all(d.available is not None and d.available > 0 for d in est.devices)
