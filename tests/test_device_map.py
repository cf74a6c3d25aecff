"""Models placed by accelerate (``model_kwargs={"device_map": ...}``) and the other from_pretrained
arguments of ``model_kwargs``: buckets stay exact when layers are spread and offloaded.

On a CPU-only machine the placement that exercises accelerate's hooks is a map over layers
with some layers on "cpu" and some offloaded to "disk": the offloaded layers' weights sit on
the meta device and the hooks load them for each forward pass. Several GPUs: tests/test_gpu.py.

The hooks only move weights: one forward pass of the split model is the plain model's, bit for
bit. Engine runs that take different paths (a cached prompt, drafts, batches formed by timing,
packed layers on one side) are compared up to the first near-tie (``agreement``).
"""

from __future__ import annotations

import shutil

import pytest
import torch
from agreement import TINY_TOLERANCE, Runs, assert_close_logits, assert_greedy_agrees, assert_runs_agree, reference_logits
from conftest import SMOL_TOKENIZER_DIR, as_loaded, generate_in_threads, random_prompt, tiny_model

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.engine import DeviceMemory, Engine, MemoryBudgetError, Request, forward_buckets, loading, packed
from langchain_attention_buckets.engine.kvcache import BatchCache
from langchain_attention_buckets.engine.limits import estimate_memory
from langchain_attention_buckets.engine.loading import LoadedModel, ModelSpec, load_model
from langchain_attention_buckets.engine.merge import MERGE_RULES
from langchain_attention_buckets.engine.placement import is_dispatched

BASES = (10000.0, 17500.0, 25000.0)
N_LAYERS = 4
TOL = TINY_TOLERANCE[torch.float32]


def split_map(n_layers: int = N_LAYERS) -> dict[str, str]:
    """Embeddings and odd layers offloaded to "disk" (weights on meta until a pass loads them),
    even layers and the head on "cpu"."""
    layers = {f"model.layers.{i}": ("disk" if i % 2 else "cpu") for i in range(n_layers)}
    return {"model.embed_tokens": "disk", **layers, "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random Llama (4 layers; vocab 2048, so that its output layer is large enough to pack)."""
    folder = tmp_path_factory.mktemp("tiny-4-layers")
    shutil.copytree(SMOL_TOKENIZER_DIR, folder, dirs_exist_ok=True)
    tiny_model(num_hidden_layers=N_LAYERS, vocab_size=2048, bos_token_id=1, eos_token_id=1).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def plain(model_dir):
    return load_model(ModelSpec(model_dir, device="cpu", dtype="float32"))


@pytest.fixture(scope="module")
def spread(model_dir, tmp_path_factory):
    offload = str(tmp_path_factory.mktemp("offload"))
    kwargs = {"device_map": split_map(), "offload_folder": offload}
    return load_model(ModelSpec(model_dir, dtype="float32", model_kwargs=kwargs))


def greedy(engine: Engine, prompt, bases=BASES, **kw) -> list[int]:
    return engine.generate(Request(tuple(prompt), bases, max_tokens=12, ignore_eos=True, **kw)).token_ids


def assert_agrees(model, prompt, got: list[int], want: list[int], what: str) -> None:
    """Greedy tokens of ``prompt`` (``BASES``) equal up to a near-tie of ``model``'s merged logits."""
    assert_greedy_agrees(got, want, reference_logits(model, prompt, want, BASES), TOL, what, same_length=True)


# ---- placement --------------------------------------------------------------------------------


def test_the_split_model_runs_through_accelerates_hooks(spread):
    model = spread.model
    assert is_dispatched(model)
    offloaded = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    assert offloaded and all(n.startswith(("model.embed_tokens.", "model.layers.1.", "model.layers.3.")) for n in offloaded)
    assert model.device.type == "meta" and spread.device == torch.device("cpu")  # the embeddings' execution device
    assert spread.layer_devices() == (torch.device("cpu"),) * N_LAYERS


def test_buckets_logits_of_the_split_model_equal_the_plain_models(spread, plain):
    ids = random_prompt(40, seed=2)
    want, got = forward_buckets(plain.model, ids, BASES), forward_buckets(spread.model, ids, BASES)
    assert torch.equal(got, want)
    for rule in MERGE_RULES.values():
        assert torch.equal(rule(got[None, :, -1]), rule(want[None, :, -1]))
    assert all(p.device.type == "meta" for p in spread.model.model.layers[1].parameters())  # unloaded again


def test_engine_on_the_split_model_equals_the_plain_model(spread, plain):
    split_engine, plain_engine = Engine(spread, packed_weights=True), Engine(plain, packed_weights=False)
    assert split_engine.packed_weights is None  # packed layers would bypass the hooks
    assert Engine(plain, packed_weights=True).packed_weights is not None or not packed.available()
    prompts = [random_prompt(30 + 9 * i, seed=i) for i in range(3)]
    # alone (with drafting), prefix-cache hits (prompt extended), and batched with continuous joins
    model = plain.model
    for prompt in prompts:
        want = greedy(plain_engine, prompt)
        assert greedy(split_engine, prompt) == want  # the same passes, fresh on both
        # the cached answer is drafted and verified in one pass
        assert_agrees(model, prompt, greedy(split_engine, prompt), want, "split, cached and drafted vs plain")
        longer = prompt + random_prompt(7, seed=99)
        assert_agrees(model, longer, greedy(split_engine, longer), greedy(plain_engine, longer), "split vs plain, cached")
    reqs = [Request(p, BASES, max_tokens=6 + 4 * i, ignore_eos=True) for i, p in enumerate(prompts)]
    for r, got, want in zip(reqs, generate_in_threads(split_engine, reqs), generate_in_threads(plain_engine, reqs)):
        assert_agrees(model, r.prompt, got, want, "split vs plain, in threads")
    assert split_engine.prefix_cache.hits > 0 and split_engine.stats.drafted_tokens > 0


def test_kv_cache_of_the_split_model_sits_on_each_layers_device(spread):
    seen = []

    def spy(_mod, _args, kwargs, _out):
        seen.append([layer.keys.device for layer in kwargs["cache"].layers])

    handle = spread.model.register_forward_hook(spy, with_kwargs=True)
    try:
        Engine(spread).generate(Request(random_prompt(20), BASES, max_tokens=2, prefix_cache=False))
    finally:
        handle.remove()
    assert seen and all(devices == list(spread.layer_devices()) for devices in seen)


def test_batch_cache_keeps_each_layer_on_its_own_device():
    devices = [torch.device("cpu"), torch.device("meta"), torch.device("cpu")]
    cache = BatchCache.empty(3, 4, 2, 8, 16, torch.float32, devices)
    assert [layer.keys.device for layer in cache.layers] == devices
    kv = [(torch.ones(2, 2, 5, 8), torch.ones(2, 2, 5, 8)) for _ in devices]
    cache.write(kv, slice(0, 2), 0)
    for layer in cache.layers:
        layer.length = 5
    cache.select_rows(torch.tensor([0, 3]))
    assert [k.device for k, _ in cache.gather(0, torch.arange(5))] == devices
    assert set(cache.nbytes_by_device()) == {torch.device("cpu"), torch.device("meta")}
    with pytest.raises(ValueError, match="2 devices given for 3 layers"):
        BatchCache.empty(3, 4, 2, 8, 16, torch.float32, devices[:2])


# ---- the memory pre-check -------------------------------------------------------------------


def kv_formula(loaded: LoadedModel, n_buckets: int, layers: int, tokens: int) -> int:
    cfg = loaded.config
    elem = torch.finfo(loaded.dtype).bits // 8
    return n_buckets * layers * 2 * cfg.num_key_value_heads * loaded.head_dim * elem * tokens


def test_memory_estimate_of_the_split_model_counts_n_kv_caches(spread):
    est = Engine(spread).estimate_memory(100, 28, 6)
    assert est.kv_cache == kv_formula(spread, 6, N_LAYERS, 128)
    assert [d.device for d in est.devices] == [torch.device("cpu")] and est.devices[0].kv_cache == est.kv_cache


def test_memory_estimate_splits_kv_by_the_devices_layers_run_on(tiny_loaded, monkeypatch):
    layers = (torch.device("cuda:0"), torch.device("cuda:1"))  # the tiny model's 2 layers, one per card
    loaded = LoadedModel(**{**tiny_loaded.__dict__, "device": torch.device("cuda:0")})
    monkeypatch.setattr(loaded, "layer_devices", lambda: layers)
    free = {layers[0]: 10**9, layers[1]: 10**9}
    est = estimate_memory(loaded, 1024, 1000, 24, 6, free.get)
    per_card = kv_formula(loaded, 6, 1, 1024)
    assert [(d.device, d.kv_cache) for d in est.devices] == [(layers[0], per_card), (layers[1], per_card)]
    assert est.kv_cache == kv_formula(loaded, 6, 2, 1024) and est.available == 2 * 10**9
    assert est.devices[0].activations > est.devices[1].activations > 0  # logits rows on the input device
    assert est.fits
    free[layers[1]] = per_card  # the second card holds its KV but not the chunk's activations
    short = estimate_memory(loaded, 1024, 1000, 24, 6, free.get)
    assert not short.fits and short.devices[0].fits
    engine = Engine(tiny_loaded)
    monkeypatch.setattr(engine, "estimate_memory", lambda *a: short)
    with pytest.raises(MemoryBudgetError, match=r"on cuda:1 \(of 2 devices.*free on cuda:1"):
        engine.check(Request(random_prompt(10), BASES, max_tokens=5))


@pytest.mark.parametrize("layers, heads, head_dim, dtype, per_1k, six_at_8k", [
    (32, 8, 128, torch.bfloat16, 128 * 2**20, 6 * 2**30),  # Llama-3-8B
    (80, 8, 128, torch.bfloat16, 320 * 2**20, 15 * 2**30),  # Llama-3-70B
    (30, 3, 64, torch.float32, 45 * 2**20, 6 * 8 * 45 * 2**20),  # SmolLM2-135M in fp32
])
def test_kv_per_bucket_matches_the_docs_table(layers, heads, head_dim, dtype, per_1k, six_at_8k):
    """docs/engine.md, "How much KV N buckets add": per 1k tokens per bucket, and N = 6 at 8k tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM

    # the KV figures depend on layers, KV heads, head_dim and dtype only: small other sizes, no weights
    cfg = LlamaConfig(num_hidden_layers=layers, num_key_value_heads=heads, num_attention_heads=heads,
                      hidden_size=8 * heads, intermediate_size=16, vocab_size=32)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    loaded = LoadedModel(model, None, "meta", torch.device("cpu"), dtype, frozenset(), 8192, head_dim, 1e4, 32)
    assert estimate_memory(loaded, 1024, 1024, None, 1, lambda d: None).kv_cache == per_1k
    assert estimate_memory(loaded, 1024, 8000, 192, 6, lambda d: None).kv_cache == six_at_8k
    assert per_1k == kv_formula(loaded, 1, layers, 1024)


# ---- the other model_kwargs --------------------------------------------------------------------


def test_eager_and_sdpa_attention_give_the_same_buckets(model_dir):
    eager = load_model(ModelSpec(model_dir, "cpu", "float32", model_kwargs={"attn_implementation": "eager"}))
    sdpa = load_model(ModelSpec(model_dir, "cpu", "float32", model_kwargs={"attn_implementation": "sdpa"}))
    assert eager.model.config._attn_implementation == "eager" and eager.model is not sdpa.model
    ids = random_prompt(40, seed=5)
    assert_close_logits(forward_buckets(eager.model, ids, BASES), forward_buckets(sdpa.model, ids, BASES), TOL,
                        "eager vs sdpa")
    prompt = random_prompt(25, seed=6)
    eager_engine, sdpa_engine = Engine(eager, packed_weights=False), Engine(sdpa, packed_weights=False)
    assert_agrees(sdpa.model, prompt, greedy(eager_engine, prompt), greedy(sdpa_engine, prompt), "eager vs sdpa")


def test_revision_and_quantization_config_reach_from_pretrained(model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True)  # bitsandbytes itself is not needed to build it
    seen = {}
    real_model, real_tok = AutoModelForCausalLM.from_pretrained, AutoTokenizer.from_pretrained

    def fake_model(folder, **kwargs):
        seen["model"] = kwargs
        return real_model(folder, dtype=kwargs["dtype"])

    def fake_tokenizer(folder, **kwargs):
        seen["tokenizer"] = kwargs
        return real_tok(folder)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake_model)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", fake_tokenizer)
    kwargs = {"revision": "v1.0", "quantization_config": quant, "attn_implementation": "eager"}
    llm = ChatAttentionBuckets(model=model_dir, dtype="float32", model_kwargs=kwargs)
    llm.load()
    assert seen["model"]["quantization_config"] is quant
    assert seen["model"]["device_map"] == {"": "cpu"}  # placed while loading, on the device asked for
    assert seen["model"]["revision"] == "v1.0" and seen["model"]["attn_implementation"] == "eager"
    assert seen["tokenizer"]["revision"] == "v1.0" and "quantization_config" not in seen["tokenizer"]


@pytest.mark.parametrize("key, value, field", [
    ("torch_dtype", torch.bfloat16, "dtype='bfloat16'"),
    ("torch_dtype", "float16", "dtype='float16'"),
    ("dtype", "auto", "dtype='auto'"),
    ("torch_dtype", "torch.float32", "dtype='float32'"),
    ("dtype", torch.int8, "dtype='auto', 'float32'"),
])
def test_a_dtype_in_model_kwargs_names_the_field_value_to_use(key, value, field):
    with pytest.raises(ValueError, match=rf"model_kwargs\['{key}'\]=.*set it with {field}"):
        ChatAttentionBuckets(model_kwargs={key: value})


def test_device_and_device_map_together_are_refused():
    with pytest.raises(ValueError, match=r"device='cpu' and model_kwargs\['device_map'\]='auto'.*device='auto'"):
        ChatAttentionBuckets(device="cpu", model_kwargs={"device_map": "auto"})
    with pytest.raises(ValueError, match="both place the model"):
        ModelSpec(device="cpu", model_kwargs={"device_map": {"": "cpu"}})
    with pytest.raises(ValueError, match=r"device='cuda' and model_kwargs\['tp_plan'\]='auto'"):
        ModelSpec(device="cuda", model_kwargs={"tp_plan": "auto"})
    assert ModelSpec(model_kwargs={"device_map": {"": "cpu"}}).resolved().device == "auto"


def test_chat_model_with_a_device_map_answers_like_the_plain_one(tiny_chat_dir, tmp_path, monkeypatch):
    kwargs = {"device_map": split_map(2), "offload_folder": str(tmp_path)}
    fields = {"model": tiny_chat_dir, "dtype": "float32", "bases": list(BASES), "temperature": 0, "max_tokens": 8}
    split = ChatAttentionBuckets(**fields, model_kwargs=kwargs)
    plain = ChatAttentionBuckets(**fields, device="cpu")
    assert is_dispatched(split.load().model) and not is_dispatched(plain.load().model)
    runs = Runs(monkeypatch)
    got, want = split.invoke("Hello there").content, plain.invoke("Hello there").content
    split_run, plain_run = runs.take()  # the plain one may run packed layers: another computation
    if assert_runs_agree(split_run, plain_run, TOL, "device map vs plain") is None:
        assert got == want


def test_loaded_model_of_the_tests_reports_one_device(tiny_loaded):
    assert tiny_loaded.layer_devices() == (torch.device("cpu"),) * tiny_loaded.config.num_hidden_layers
    assert as_loaded(tiny_model()).device == torch.device("cpu")
    assert DeviceMemory(torch.device("cpu"), 1, 2, None).fits
    assert loading.check_placement("auto", {"device_map": "auto"}) is None


# ---- tensor parallelism (tp_plan) ------------------------------------------------------------


@pytest.mark.slow
def test_tensor_parallel_buckets_equal_the_unsharded_model(model_dir, tmp_path):
    """Two CPU processes under torchrun (gloo): each holds half of every layer's heads."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    worker = Path(__file__).with_name("tp_worker.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(worker.parent.parent), os.environ.get("PYTHONPATH", "")])}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(worker), model_dir, str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert rank["tp_size"] == 2 and rank["kv_heads"] == 1 and not rank["packed"]  # 2 KV heads, 1 per rank
        assert rank["max_logit_diff"] <= TOL and rank["prefix_hits"] == 1
    # the shards' partial sums add up in another order than one layer's: tokens up to a near-tie
    model = load_model(ModelSpec(model_dir, device="cpu", dtype="float32")).model
    prompt = tuple(range(2, 40))  # tp_worker's prompts
    for rank in ranks:
        for p, got, want in zip((prompt, prompt + (5, 6, 7)), rank["tokens"]["tp"], rank["tokens"]["ref"]):
            assert_agrees(model, p, got, want, "tensor parallel vs unsharded")
