"""One rank of the tensor-parallel check (run by tests/test_device_map.py under torchrun).

    torchrun --standalone --nproc_per_node 2 tests/tp_worker.py MODEL_DIR OUT_DIR

Every rank loads the model sharded with ``tp_plan="auto"`` and, unsharded, as the reference;
runs the same requests through an engine on each (N buckets, a prefix-cache hit, speculation);
and writes what it saw to OUT_DIR/rank<R>.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from langchain_attention_buckets.engine import Engine, Request, forward_buckets
from langchain_attention_buckets.engine.loading import ModelSpec, load_model
from langchain_attention_buckets.engine.placement import kv_heads, tensor_parallel_size

BASES = (10000.0, 17500.0, 25000.0)


def main(folder: str, out: str) -> None:
    tp = load_model(ModelSpec(folder, dtype="float32", model_kwargs={"tp_plan": "auto"}))
    ref = load_model(ModelSpec(folder, device="cpu", dtype="float32"))
    prompt = tuple(range(2, 40))
    diff = (forward_buckets(tp.model, prompt, BASES) - forward_buckets(ref.model, prompt, BASES)).abs().max()
    tp_engine, ref_engine = Engine(tp), Engine(ref, packed_weights=False)
    tokens = {}
    for name, engine in (("tp", tp_engine), ("ref", ref_engine)):
        runs = [prompt, prompt + (5, 6, 7)]  # the second reuses the first's cached prefix
        tokens[name] = [engine.generate(Request(p, BASES, max_tokens=10, ignore_eos=True)).token_ids for p in runs]
    result = {
        "tp_size": tensor_parallel_size(tp.model),
        "kv_heads": kv_heads(tp.model),
        "packed": tp_engine.packed_weights is not None,
        "max_logit_diff": float(diff),
        "prefix_hits": tp_engine.prefix_cache.hits,
        "tokens": tokens,
    }
    Path(out, f"rank{os.environ['RANK']}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], sys.argv[2])
