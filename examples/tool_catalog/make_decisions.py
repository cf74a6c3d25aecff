"""Build `decisions.jsonl`: conversations labelled with what the assistant should do next.

Each line is one conversation in OpenAI's chat format, the tools bound for it and the label:

    {"id": ..., "split": "dev" | "test", "state": "request" | "results",
     "messages": [{"role": "user", ...}, {"role": "assistant", "tool_calls": [...]}, {"role": "tool", ...}],
     "tools": [{"type": "function", "function": {...}}, ...], "label": "call" | "answer"}

- "request" state, label "call": a request from `requests.jsonl` (it needs tools), nothing else yet.
- "request" state, label "answer": a request from `no_tool_requests.txt` (small talk, writing,
  explanations: no catalog tool helps).
- "results" state: a request from `requests.jsonl` (every multi-tool one, every third
  single-tool one: the model's calls are what takes the time) after the calls of its first j tools and
  their results; label "call" while tools it needs have no result yet, "answer" once all have.

The tools bound are what `ToolRetriever` (k=5, the agent middleware's default) retrieves for
the request, plus the needed tools where retrieval missed them (as an agent that found them).
The calls are made by the embedded model itself (its own base, greedy, the tool named: a
forced choice), and run against the offline catalog; an error becomes the result text, as an
agent would see it. Splits are fixed by a hash of the request: every conversation of one
request lands in the same split.

    python examples/tool_catalog/make_decisions.py      # about 20 minutes on 2 CPU cores
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from langchain_core.messages import HumanMessage, ToolMessage  # noqa: E402
from langchain_core.messages.utils import convert_to_openai_messages  # noqa: E402
from langchain_core.utils.function_calling import convert_to_openai_tool  # noqa: E402
from tqdm import tqdm  # noqa: E402

from langchain_attention_buckets import ChatAttentionBuckets  # noqa: E402
from langchain_attention_buckets.retrieval.tools import ToolRetriever  # noqa: E402
from tool_catalog import build_catalog, load_requests, reset_state  # noqa: E402

OUT = HERE / "decisions.jsonl"
RESULTS_EVERY = 3  # results-state conversations for every third single-tool request (and every multi-tool one)


def split_of(request: str) -> str:
    return "dev" if int(hashlib.sha256(request.encode()).hexdigest(), 16) % 2 == 0 else "test"


def main() -> None:
    catalog = build_catalog()
    by_name = {t.name: t for t in catalog}
    cache = Path(os.environ.get("ATTENTION_BUCKETS_CACHE", Path.home() / ".cache" / "langchain-attention-buckets"))
    retriever = ToolRetriever(catalog, cache_path=cache / "tool-catalog-embeddings.json")
    probe = ChatAttentionBuckets()
    llm = ChatAttentionBuckets(bases=probe.load().base, max_tokens=64)
    rows = []
    no_tool = [line.strip() for line in (HERE / "no_tool_requests.txt").read_text().splitlines() if line.strip()]
    for i, request in enumerate(no_tool):
        names = retriever.select_names(request)
        rows.append(_row(f"none-{i}", request, "request", [HumanMessage(request)], names, by_name, "answer"))
    requests = load_requests()
    single = [i for i, item in enumerate(requests) if len(item["tools"]) == 1]
    with_results = set(single[::RESULTS_EVERY]) | {i for i, item in enumerate(requests) if len(item["tools"]) > 1}
    for i, item in enumerate(tqdm(requests, desc="requests")):
        request, needed = item["request"], item["tools"]
        names = retriever.select_names(request)
        names += [n for n in needed if n not in names]
        messages = [HumanMessage(request)]
        rows.append(_row(f"req-{i}-0", request, "request", messages, names, by_name, "call"))
        if i not in with_results:
            continue
        reset_state()
        tools = [by_name[n] for n in names]
        for j, name in enumerate(needed):
            ai = llm.bind_tools(tools, tool_choice=name).invoke(messages)
            if not ai.tool_calls:
                break  # the call did not parse: no results state for this request
            call = ai.tool_calls[0]
            try:
                result = str(by_name[name].invoke(call["args"]))
            except Exception as exc:  # the agent's ToolNode reports errors the same way
                result = f"Error: {exc!r}"
            messages = [*messages, ai.model_copy(update={"content": ""}), ToolMessage(result, tool_call_id=call["id"], name=name)]
            label = "answer" if j == len(needed) - 1 else "call"
            rows.append(_row(f"req-{i}-{j + 1}", request, "results", messages, names, by_name, label))
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} conversations -> {OUT}")


def _row(id_, request, state, messages, names, by_name, label) -> dict:
    return {
        "id": id_,
        "split": split_of(request),
        "state": state,
        "messages": convert_to_openai_messages(messages),
        "tools": [convert_to_openai_tool(by_name[n]) for n in names],
        "label": label,
    }


if __name__ == "__main__":
    main()
