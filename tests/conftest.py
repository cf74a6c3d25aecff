"""Shared fixtures: tiny random models (fast tier) and the embedded model (end-to-end tier).

Markers: `tokenizer` is added here to every test that uses the embedded model's tokenizer and chat
template (shipped in tests/data, so such tests stay in the fast tier). Tests that run the 135M
model set `embedded`; long jobs that do not run it set `slow`. Both make the slow tier, deselected
with `-m "not embedded and not slow"`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from langchain_attention_buckets.engine.loading import LoadedModel


class CharTokenizer:
    """Token i is one character: 'a' + i % 26 (ids 0 and 1 decode to nothing: pad and eos)."""

    eos_token_id = 1

    def decode(self, ids, **kwargs):
        return "".join(chr(ord("a") + i % 26) for i in ids if i > 1)


def tiny_config(model_type: str = "llama", rope: dict | None = None, max_positions: int = 256, **overrides):
    from transformers import AutoConfig

    kwargs = dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        rope_parameters=rope or {"rope_type": "default", "rope_theta": 10000.0},
        attn_implementation="sdpa",
        tie_word_embeddings=False,
    )
    if model_type == "smollm3":  # its default pad id lies past a tiny vocabulary; four layers: the last has no RoPE
        kwargs.update(pad_token_id=0, num_hidden_layers=4)
    if model_type == "granite":  # its scalings, away from 1, so that a test sees them
        kwargs.update(embedding_multiplier=2.0, residual_multiplier=0.5, attention_multiplier=0.3, logits_scaling=4.0)
    kwargs.update(overrides)
    return AutoConfig.for_model(model_type, **kwargs)


def tiny_model(model_type: str = "llama", seed: int = 0, **kwargs):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(model_type, **kwargs), attn_implementation="sdpa")
    return model.eval()


def as_loaded(model, tokenizer=None) -> LoadedModel:
    cfg = model.config
    return LoadedModel(
        model=model,
        tokenizer=tokenizer or CharTokenizer(),
        name=f"tiny-{cfg.model_type}",
        device=torch.device("cpu"),
        dtype=torch.float32,
        eos_token_ids=frozenset({1}),
        max_positions=cfg.max_position_embeddings,
        head_dim=cfg.hidden_size // cfg.num_attention_heads,
        base=float(cfg.rope_parameters["rope_theta"]),
        vocab_size=cfg.vocab_size,
    )


@pytest.fixture
def tiny():
    return tiny_model()


@pytest.fixture
def tiny_loaded(tiny):
    return as_loaded(tiny)


def generate_in_threads(engine, requests) -> list:
    """Token ids of each request, all submitted from their own threads at once."""
    import threading

    results = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def call(i):
        barrier.wait()
        results[i] = engine.generate(requests[i]).token_ids

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def random_prompt(n: int, seed: int = 0, vocab: int = 64) -> tuple[int, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randint(2, vocab, (n,), generator=g).tolist())


# The embedded model's tokenizer and chat template, as saved from its GGUF file (tests/data/README.md).
SMOL_TOKENIZER_DIR = Path(__file__).parent / "data" / "smollm2-tokenizer"
# Fixtures that give a test the embedded tokenizer: such tests get the `tokenizer` marker.
TOKENIZER_FIXTURES = frozenset({"smol_tokenizer", "tiny_chat_dir"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TOKENIZER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.tokenizer)


@pytest.fixture(scope="session")
def smol_tokenizer():
    """The embedded model's tokenizer, from tests/data (no GGUF conversion: loads in under a second)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(SMOL_TOKENIZER_DIR))


@pytest.fixture(scope="session")
def tiny_chat_dir(tmp_path_factory):
    """A folder holding a tiny random Llama with the embedded model's tokenizer and chat template.

    Fast chat-model tests load it like any local model folder.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-chat")
    shutil.copytree(SMOL_TOKENIZER_DIR, folder, dirs_exist_ok=True)
    cfg = LlamaConfig(
        vocab_size=49152,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def family_dir(tmp_path_factory):
    """``family_dir(name)``: a folder holding a tiny random model of a tool-calling family with its
    real chat template (tests/families.py), built once per session."""
    from families import build_family

    built: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in built:
            built[name] = str(build_family(name, tmp_path_factory.mktemp(name.replace(".", "_"))))
        return built[name]

    return get


TINY_BASES = [10000.0, 17500.0, 25000.0]

# A random model rarely closes a JSON string; a bias on closing tokens (", }, ], "}, </ ...) makes
# it finish its calls within a few dozen tokens, so the tests see complete outputs.
CLOSING = {3222: 6.0, 18206: 6.0, 109: 6.0, 17859: 6.0, 23597: 6.0, 31845: 6.0, 18: 6.0, 77: 6.0, 28852: 6.0, 9617: 6.0}


def spy_sdpa(monkeypatch) -> list[tuple[int, int, str, bool]]:
    """Record each SDPA call the model makes: (queries, keys, its mask: "none", "tensor" or "bias"
    (torch's ``CausalBias``, no tensor), is_causal). Calls SDPA makes inside a bias are not recorded."""
    from torch.nn.attention.bias import CausalBias

    seen, inner = [], []
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, *args, **kwargs):
        if inner:
            return original(q, k, v, attn_mask, *args, **kwargs)
        kind = "none" if attn_mask is None else "bias" if isinstance(attn_mask, CausalBias) else "tensor"
        seen.append((q.shape[2], k.shape[2], kind, bool(kwargs.get("is_causal"))))
        if kind != "bias":
            return original(q, k, v, attn_mask, *args, **kwargs)
        inner.append(True)  # the bias dispatches by ``func is F.scaled_dot_product_attention``: not the spy
        try:
            return CausalBias._dispatch(q, k, v, attn_mask, *args, **kwargs)
        finally:
            inner.pop()

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    return seen


def tail_logits(model, prompt, tail, valid=None) -> torch.Tensor:
    """Logits of every ``tail`` position fed on top of ``prompt``'s cached keys and values, two
    buckets; ``valid``: (rows, len(prompt) + len(tail)) False at left padding, or None."""
    from langchain_attention_buckets.engine.forward import bucketed_forward
    from langchain_attention_buckets.engine.kvcache import BatchCache
    from langchain_attention_buckets.engine.rope import bucket_frequencies, head_dim

    cfg, bases = model.config, (1e4, 2e4)
    weight = next(model.parameters())
    freqs, scales = bucket_frequencies(cfg, bases, weight.device)
    cache = BatchCache.empty(cfg.num_hidden_layers, 2, cfg.num_key_value_heads, head_dim(cfg), 64, weight.dtype,
                             weight.device)
    ids = torch.tensor([list(prompt) + list(tail)] * 2, device=weight.device)
    pos = torch.arange(ids.shape[1], device=weight.device).expand_as(ids)
    valid = None if valid is None else valid.to(weight.device)
    c = len(prompt)
    with torch.inference_mode():
        bucketed_forward(model, ids[:, :c], pos[:, :c], freqs, scales, bases, None if valid is None else valid[:, :c],
                         cache)
        return bucketed_forward(model, ids[:, c:], pos[:, c:], freqs, scales, bases, valid, cache, logits_to_keep=0)
