"""CUDA code paths of the engine and the chat model (skipped without CUDA)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import as_loaded, generate_in_threads, random_prompt, tiny_model

from langchain_attention_buckets.engine import Engine, Request, forward_buckets
from langchain_attention_buckets.loading import resolve_device, resolve_dtype
from langchain_attention_buckets.sampling import SamplingParams

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
    assert res.token_ids == ref[: len(res.token_ids)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_buckets_batch_like_one_at_a_time(dtype):
    _, loaded = cuda_loaded(dtype)
    engine = Engine(loaded, prefix_cache_bytes=0)
    reqs = [Request(random_prompt(20 + 7 * i, seed=i), BASES, max_tokens=12, prefix_cache=False,
                    sampling=SamplingParams(temperature=0.8, seed=i)) for i in range(4)]
    alone = [engine.generate(r).token_ids for r in reqs]
    assert generate_in_threads(engine, reqs) == alone


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
