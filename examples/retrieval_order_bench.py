"""Which order of retrieved tools works best? Measured on the labelled requests of the catalog.

For each single-tool request of examples/tool_catalog/requests.jsonl, the retriever selects k
tools; they are bound in each order ("retrieval": most similar first, "reversed": most similar
last, "long_context": LangChain's LongContextReorder) and the model must call one
(tool_choice="any", one call). Scored: the called tool is the labelled one, among requests whose
labelled tool was retrieved at all (order cannot help the others). One base against buckets.

    python examples/retrieval_order_bench.py --requests 40 --k 5 --output bench-out/retrieval-order
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from langchain_core.messages import HumanMessage  # noqa: E402
from tool_catalog import build_catalog, load_requests  # noqa: E402
from tqdm import tqdm  # noqa: E402

from langchain_attention_buckets import ChatAttentionBuckets  # noqa: E402
from langchain_attention_buckets.bench.stats import bootstrap_indices, compare, summarize  # noqa: E402
from langchain_attention_buckets.retrieval.tools import ORDERS, ToolRetriever  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=40, help="single-tool requests to use (default 40)")
    p.add_argument("--k", type=int, default=5, help="tools retrieved per request (default 5)")
    p.add_argument("--configs", default="one-base,paper", help="one-base and/or paper (default both)")
    p.add_argument("--output", default="bench-out/retrieval-order")
    args = p.parse_args(argv)

    catalog = build_catalog()
    cache = Path(os.environ.get("ATTENTION_BUCKETS_CACHE", Path.home() / ".cache" / "langchain-attention-buckets"))
    retriever = ToolRetriever(catalog, k=args.k, split=False, cache_path=cache / "tool-catalog-embeddings.json")
    requests = [r for r in load_requests() if len(r["tools"]) == 1]
    requests = [r for r in requests if r["tools"][0] in retriever.select_names(r["request"])][: args.requests]
    probe = ChatAttentionBuckets()  # only to read the model's own base
    base = probe.load().base
    configs = {"one-base": base, "paper": "paper"}
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    done_path = out_dir / "records.jsonl"
    records = [json.loads(line) for line in done_path.read_text().splitlines()] if done_path.exists() else []
    done = {(r["config"], r["order"], r["request"]) for r in records}
    todo = [(c, o, r) for c in args.configs.split(",") for o in ORDERS for r in requests if (c, o, r["request"]) not in done]
    llms = {c: ChatAttentionBuckets(bases=configs[c], max_tokens=64) for c in args.configs.split(",")}
    with done_path.open("a") as f:
        for config, order, req in tqdm(todo, desc="requests"):
            names = retriever.select_names(req["request"], order=order)
            tools = [retriever.by_name[n] for n in names]
            t0 = time.perf_counter()
            msg = llms[config].bind_tools(tools, tool_choice="any").invoke([HumanMessage(req["request"])])
            called = [c["name"] for c in msg.tool_calls] or [c.get("name") for c in msg.invalid_tool_calls]
            rec = {
                "config": config,
                "order": order,
                "request": req["request"],
                "gold": req["tools"][0],
                "gold_position": names.index(req["tools"][0]),
                "called": called[0] if called else None,
                "correct": bool(called) and called[0] == req["tools"][0],
                "seconds": time.perf_counter() - t0,
            }
            records.append(rec)
            f.write(json.dumps(rec) + "\n")
            f.flush()
    table = {}
    reqs = [r["request"] for r in requests]
    score = {(r["config"], r["order"], r["request"]): float(r["correct"]) for r in records}
    idx = bootstrap_indices(len(reqs), seed=0)
    for config in args.configs.split(","):
        base_order = np.array([[score.get((config, "retrieval", q), np.nan)] for q in reqs])
        for order in ORDERS:
            X = np.array([[score.get((config, order, q), np.nan)] for q in reqs])
            s = summarize(X, idx)["positions"][0]
            row = {"accuracy": s["accuracy"], "ci": s["ci"], "n": s["n"]}
            if order != "retrieval":
                d = compare(X, base_order, idx)
                row["vs_retrieval_order"] = d
            table[f"{config}/{order}"] = row
    (out_dir / "results.json").write_text(json.dumps({"k": args.k, "n": len(requests), "table": table}, indent=2))
    print(f"{len(requests)} single-tool requests whose tool was among the top {args.k}")
    for key, row in table.items():
        lo, hi = row["ci"]
        print(f"  {key:<24} accuracy {row['accuracy']:.2f}  95% CI [{lo:.2f}, {hi:.2f}]  n={row['n']}")
    return table


if __name__ == "__main__":
    main()
