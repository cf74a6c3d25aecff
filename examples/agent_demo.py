"""Agent demo: multi-step questions over a 138-tool catalog, one base against Attention Buckets.

For each question the agent (LangChain ``create_agent``) retrieves the relevant tools
from the catalog (``ToolRetriever``, all-MiniLM-L6-v2 embeddings), puts their full
documentation into the context, and calls them with the embedded SmolLM2-135M-Instruct
model, once with its own RoPE base and once with six buckets. The trace shows the
retrieved tools, every call with its arguments and result, and the answer.

A 135M-parameter model can neither plan a multi-step task nor pick reliably between
tools, so the agent follows the plan the question already states: ``StepByStep`` (below)
splits the request into its clauses ("look up ...", "then convert ..."), retrieves the
best tool for each clause, keeps the documentation of all of them in the context, and
at each step calls that step's tool (a named ``tool_choice``), then asks for the answer
in text. The arguments, copied from the request and from earlier results, are the
model's own doing, and that is where a long context can hurt. With a larger model,
drop ``StepByStep`` and let ``ToolRetrievalMiddleware`` bind the retrieved tools.

    python examples/agent_demo.py            # three questions
    python examples/agent_demo.py --fast     # the first question only (what CI runs)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from langchain.agents import create_agent  # noqa: E402
from langchain.agents.middleware import AgentMiddleware  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage  # noqa: E402
from tool_catalog import build_catalog, reset_state  # noqa: E402

from langchain_attention_buckets import ChatAttentionBuckets  # noqa: E402
from langchain_attention_buckets.retrieval import ToolRetriever, split_request  # noqa: E402

QUESTIONS = [
    (
        "Look up order A1001 in the database, then convert its price into EUR, "
        "then compute its delivery date in the destination time zone.",
        ["get_order", "convert_currency", "add_days_in_timezone"],
    ),
    (
        "Convert 72 degrees Fahrenheit to Celsius, then compute 15 percent of 240.",
        ["convert_temperature", "percentage_of"],
    ),
    (
        "Find the customer with the email priya.sharma@example.com, then list the orders of that customer.",
        ["find_customer_by_email", "list_customer_orders"],
    ),
]

SYSTEM = (
    "You are a careful assistant with tools. Use the results of earlier tool calls to fill in "
    "the arguments of the next call. Copy numbers, ids, dates and time zones exactly."
)


class StepByStep(AgentMiddleware):
    """One tool call per clause of the request, then the answer in text.

    The tools retrieved for the clauses (``per_clause`` each, full documentation) stay bound
    for the whole question, so the prompt prefix never changes and the prefix cache serves
    every later step. A short note at the end names the current step; the model must call
    one of the tools (``tool_choice="any"``). Once every clause has had its call, it answers
    in text (``tool_choice="none"``).
    """

    def __init__(self, retriever: ToolRetriever, per_clause: int = 1):
        super().__init__()
        self.retriever = retriever
        self.per_clause = per_clause
        self.trace: list[dict] = []

    def wrap_model_call(self, request, handler):
        human = max(i for i, m in enumerate(request.messages) if isinstance(m, HumanMessage))
        question = request.messages[human].text
        clauses = split_request(question)
        done = sum(isinstance(m, ToolMessage) for m in request.messages[human:])
        per_clause = [self.retriever.select_names(c, k=self.per_clause) for c in clauses]
        names: list[str] = []
        for found in per_clause:
            names += [n for n in found if n not in names]
        by_name = {t.name: t for t in request.tools}
        if done < len(clauses):
            note, choice = f"Step {done + 1}: {clauses[done]}.", per_clause[done][0]
            self.trace.append({"step": done + 1, "clause": clauses[done], "retrieved": names, "tool": choice})
        else:
            note, choice = f"Using the tool results above, answer briefly: {question}", "none"
        request = request.override(
            tools=[by_name[n] for n in names],
            tool_choice=choice,
            model_settings={"parallel_tool_calls": False},
            messages=[*request.messages, HumanMessage(note)],
        )
        return handler(request)


def run(question: str, llm: ChatAttentionBuckets, retriever: ToolRetriever, catalog) -> dict:
    reset_state()
    steps = StepByStep(retriever)
    agent = create_agent(llm, tools=catalog, system_prompt=SYSTEM, middleware=[steps])
    t0 = time.perf_counter()
    state = agent.invoke({"messages": [HumanMessage(question)]}, {"recursion_limit": 20})
    seconds = time.perf_counter() - t0
    calls, results, model_calls = [], {}, []
    for m in state["messages"]:
        if isinstance(m, AIMessage):
            calls += [{"name": c["name"], "args": c["args"], "id": c["id"]} for c in m.tool_calls]
            # a call whose arguments did not parse is kept too (it ends the agent's loop)
            calls += [{"name": c["name"], "args": c["args"], "id": c["id"], "invalid": True} for c in m.invalid_tool_calls]
            u = m.usage_metadata or {}
            model_calls.append(
                (u.get("input_tokens", 0), u.get("input_token_details", {}).get("cache_read", 0),
                 m.response_metadata.get("time_to_first_token", 0.0))
            )
        if isinstance(m, ToolMessage):
            results[m.tool_call_id] = m.content
    for c in calls:
        c["result"] = results.get(c.pop("id"), "(not run: the arguments did not parse)")
    last = state["messages"][-1]
    answer = last.text if isinstance(last, AIMessage) and not (last.tool_calls or last.invalid_tool_calls) else ""
    return {"calls": calls, "answer": answer, "seconds": seconds, "trace": steps.trace, "model_calls": model_calls}


def show(label: str, out: dict, expected: list[str]) -> None:
    print(f"\n--- {label} ({out['seconds']:.1f} s)")
    for step in out["trace"]:
        print(f"  step {step['step']}: {step['clause']!r} -> {step['tool']} (in context: {', '.join(step['retrieved'])})")
    for c in out["calls"]:
        result = c["result"] if len(c["result"]) < 160 else c["result"][:157] + "..."
        args = c["args"] if c.get("invalid") else json.dumps(c["args"], ensure_ascii=False)
        print(f"  call {c['name']}({args}){'  [invalid]' if c.get('invalid') else ''}\n    -> {result}")
    print(f"  answer: {out['answer'] or '(none)'}")
    print(
        "  model calls (prompt tokens, of them from the prefix cache, time to first token): "
        + "; ".join(f"{n} / {c} / {t:.1f} s" for n, c, t in out["model_calls"])
    )
    got = [c["name"] for c in out["calls"]]
    print(f"  tools called: {got}; expected {expected}: {'right' if got == expected else 'different'}")


def main(argv: list[str] | None = None) -> list[tuple]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="the first question only")
    parser.add_argument("--model", default=None, help="hub id, folder or .gguf (default: the embedded model)")
    args = parser.parse_args(argv)

    catalog = build_catalog()
    cache = Path(os.environ.get("ATTENTION_BUCKETS_CACHE", Path.home() / ".cache" / "langchain-attention-buckets"))
    retriever = ToolRetriever(catalog, cache_path=cache / "tool-catalog-embeddings.json")
    probe = ChatAttentionBuckets(model=args.model)  # only to read the model's own base
    own = probe.load().base
    configs = {
        f"one base ({own:g})": ChatAttentionBuckets(model=args.model, bases=own, max_tokens=96),
        "6 buckets (paper set)": ChatAttentionBuckets(model=args.model, bases="paper", max_tokens=96),
    }
    print(f"{len(catalog)} tools in the catalog; model {probe.model_name} on {probe.load().device}")
    summary = []
    for question, expected in QUESTIONS[:1] if args.fast else QUESTIONS:
        print(f"\n=== {question}")
        for label, llm in configs.items():
            out = run(question, llm, retriever, catalog)
            show(label, out, expected)
            valid = sum(not c.get("invalid") for c in out["calls"])
            right = [c["name"] for c in out["calls"]] == expected
            summary.append((question[:40], label, right, valid, len(out["calls"]), out["seconds"]))
    print("\nsummary")
    for q, label, right, valid, n, seconds in summary:
        tools = "right tools" if right else "other tools"
        print(f"  {q:<42} {label:<24} {tools:<12} {valid}/{n} calls parsed {seconds:6.1f} s")
    return summary


if __name__ == "__main__":
    main()
