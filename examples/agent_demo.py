"""Agent demo: LangChain's ``create_agent`` over a 138-tool catalog, one base against Attention Buckets.

The agent is plain ``create_agent`` with one middleware, ``ToolRetrievalMiddleware``: for each
model call it retrieves the tools most similar to the request from the catalog
(all-MiniLM-L6-v2 embeddings) and binds only those, with their full documentation, in
``tool_choice="auto"``. The embedded SmolLM2-135M-Instruct decides by itself whether to call a
tool or answer (the calibrated ``tool_call_bias``, docs/chat-model.md), fills in the
arguments, reads the results and answers. Each question runs once with the model's own RoPE
base and once with the default six buckets. The trace shows every call with its arguments
and result, and the answer; the summary says what completed.

A 135M-parameter model is weak: expect most single-step requests to reach the right tool, and
multi-step requests to stop after the first step or to go wrong. With a larger model (any
Llama-family model on the Hub or on disk, ``--model``), the same agent does more.

    python examples/agent_demo.py                  # four single-step and two multi-step questions
    python examples/agent_demo.py --fast           # the first question only (what CI runs)
    python examples/agent_demo.py --labelled 20    # completion rate on labelled requests (test split)
    python examples/agent_demo.py --mcp            # the catalog from two MCP servers (examples/mcp/)
    python examples/agent_demo.py --mcp-config servers.json   # your own servers (docs/retrieval.md)

With ``--mcp`` the catalog comes from the example MCP servers ("shop" and "utilities",
``examples/mcp/servers.py``), started here as subprocesses serving streamable HTTP on free
127.0.0.1 ports, loaded with ``langchain-mcp-adapters`` and stopped at the end; every tool call
goes to a server. ``--mcp-config`` reads servers in the JSON shape ``MultiServerMCPClient``
takes (``{"name": {"transport": "stdio", "command": ..., "args": [...]}, ...}``) instead, and
keeps one session per server for the run (``McpSessions``: a stdio server starts once).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from langchain.agents import create_agent  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage  # noqa: E402
from tool_catalog import build_catalog, load_requests, reset_state  # noqa: E402
from tool_catalog.make_decisions import split_of  # noqa: E402
from tool_catalog.result_forms import salient  # noqa: E402

from langchain_attention_buckets import ChatAttentionBuckets  # noqa: E402
from langchain_attention_buckets.retrieval.tools import ToolRetriever  # noqa: E402

SINGLE = [
    ("How many units of product P007 are in stock?", ["get_stock_level"]),
    ("Convert 20 EUR to USD.", ["convert_currency"]),
    ("What is the status of order A1017?", ["get_order"]),
    ("How many days are there between 2024-03-01 and 2024-04-15?", ["days_between_dates"]),
]
MULTI = [
    ("Look up order A1001, then convert its price into EUR.", ["get_order", "convert_currency"]),
    ("Convert 72 degrees Fahrenheit to Celsius, then compute 15 percent of 240.", ["convert_temperature", "percentage_of"]),
]
RECURSION_LIMIT = 12  # model and tool steps together: up to five tool calls and the answer


MCP_SERVERS = Path(__file__).resolve().parent / "mcp" / "servers.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def example_servers(names=("shop", "utilities"), dotted: bool = False, timeout: float = 60.0):
    """The example MCP servers as subprocesses on free loopback ports: yields their connections; stops them."""
    procs, connections = [], {}
    try:
        for name in names:
            port = free_port()
            cmd = [sys.executable, str(MCP_SERVERS), name, "--transport", "http", "--port", str(port)]
            procs.append(subprocess.Popen(cmd + (["--dotted"] if dotted else []), stderr=subprocess.DEVNULL))
            connections[name] = {"transport": "http", "url": f"http://127.0.0.1:{port}/mcp"}
        for proc, conn in zip(procs, connections.values()):
            wait_for_port(proc, int(conn["url"].rsplit(":", 1)[1].split("/")[0]), timeout)
        yield connections
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for_port(proc: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the MCP server {proc.args} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"the MCP server {proc.args} did not listen on port {port} within {timeout:.0f} s")


def run(question: str, llm: ChatAttentionBuckets, retriever: ToolRetriever, catalog) -> dict:
    """One agent run: the calls (name, args, result), the answer, and whether the loop ended by itself."""
    reset_state()
    agent = create_agent(llm, tools=catalog, middleware=[retriever.middleware()])
    t0 = time.perf_counter()
    try:
        state = agent.invoke({"messages": [HumanMessage(question)]}, {"recursion_limit": RECURSION_LIMIT})
        messages, ended = state["messages"], True
    except Exception as exc:  # GraphRecursionError: the model kept calling tools
        messages, ended = [], False
        print(f"  (stopped: {type(exc).__name__})")
    seconds = time.perf_counter() - t0
    calls, results = [], {}
    for m in messages:
        if isinstance(m, AIMessage):
            calls += [{"name": c["name"], "args": c["args"], "id": c["id"]} for c in m.tool_calls]
            calls += [{"name": c["name"], "args": c["args"], "id": c["id"], "invalid": True} for c in m.invalid_tool_calls]
        if isinstance(m, ToolMessage):
            results[m.tool_call_id] = m.text  # MCP results are text blocks
    for c in calls:
        c["result"] = results.get(c.pop("id"), "(not run: the arguments did not parse)")
    last = messages[-1] if messages else None
    answered = isinstance(last, AIMessage) and not (last.tool_calls or last.invalid_tool_calls) and bool(last.text.strip())
    return {"calls": calls, "answer": last.text.strip() if answered else "", "ended": ended, "seconds": seconds}


def right_tools(out: dict, expected: list[str]) -> bool:
    """Every expected tool called with arguments that parsed, in order (other calls may come between)."""
    valid = [c["name"] for c in out["calls"] if not c.get("invalid")]
    return _in_order(expected, valid)


def uses_result(out: dict) -> bool:
    """The answer contains a value from a tool result (a number, an id, a name; see result_forms.salient)."""
    values = set().union(*(salient(c["result"]) for c in out["calls"] if not c.get("invalid")))
    return any(v in out["answer"] for v in values)


def completed(out: dict, expected: list[str]) -> bool:
    """The loop ended by itself, the expected tools were called, and the answer uses their results."""
    return out["ended"] and right_tools(out, expected) and uses_result(out)


def _in_order(expected: list[str], got: list[str]) -> bool:
    it = iter(got)
    return all(name in it for name in expected)


def show(label: str, out: dict, expected: list[str]) -> None:
    print(f"\n--- {label} ({out['seconds']:.1f} s)")
    for c in out["calls"]:
        result = c["result"] if len(c["result"]) < 160 else c["result"][:157] + "..."
        args = c["args"] if c.get("invalid") else json.dumps(c["args"], ensure_ascii=False)
        print(f"  call {c['name']}({args}){'  [invalid]' if c.get('invalid') else ''}\n    -> {result}")
    print(f"  answer: {out['answer'] or '(none)'}")
    print(
        f"  expected tools {expected}: {'called' if right_tools(out, expected) else 'not called'}; "
        f"the answer {'uses' if uses_result(out) else 'does not use'} a result"
    )


def labelled(n: int) -> list[tuple[str, list[str]]]:
    """The first ``n`` single-tool requests of requests.jsonl's test split (the split
    ``make_decisions.py`` uses: a hash of the request; the decision bias is calibrated on dev)."""
    items = [r for r in load_requests() if len(r["tools"]) == 1]
    test = [r for r in items if split_of(r["request"]) == "test"]
    return [(r["request"], r["tools"]) for r in test[:n]]


def main(argv: list[str] | None = None) -> list[tuple]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="the first single-step question only")
    parser.add_argument("--labelled", type=int, default=None, metavar="N",
                        help="instead: N labelled single-tool requests (test split), quietly, with a completion rate")
    parser.add_argument("--configs", default="one,buckets", help="which of 'one' (own base) and 'buckets' (default: both)")
    parser.add_argument("--model", default=None, help="hub id, folder or .gguf (default: the embedded model)")
    parser.add_argument("--tool-call-bias", default="auto", help="'auto' (default), 'none', or a number")
    parser.add_argument("--mcp", action="store_true", help="load the catalog from the example MCP servers (subprocesses)")
    parser.add_argument("--mcp-config", default=None, metavar="JSON",
                        help="load the catalog from these MCP servers (MultiServerMCPClient's shape)")
    parser.add_argument("--deterministic", action="store_true", help="deterministic=True (for comparing runs)")
    parser.add_argument("--index-only", action="store_true", help="load and index the catalog, then stop (timings)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the runs (calls, answers) to FILE")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        if args.mcp_config:
            connections = json.loads(Path(args.mcp_config).read_text())
        elif args.mcp:
            connections = stack.enter_context(example_servers())
        else:
            connections = None
        return demo(args, connections, stack, sessions=bool(args.mcp_config))


def demo(args, connections: dict | None, stack: contextlib.ExitStack, sessions: bool = False) -> list[tuple]:
    """The questions over the in-process catalog, or over the MCP servers in ``connections``
    (with ``sessions``, one session per server for the whole run: stdio servers start once)."""
    t0 = time.perf_counter()
    if connections is None:
        catalog = build_catalog()
    else:
        from langchain_attention_buckets.retrieval.mcp import McpSessions, load_mcp_catalog

        catalog = stack.enter_context(McpSessions(connections)) if sessions else load_mcp_catalog(connections)
    loaded = time.perf_counter() - t0
    cache = Path(os.environ.get("ATTENTION_BUCKETS_CACHE", Path.home() / ".cache" / "langchain-attention-buckets"))
    retriever = ToolRetriever(catalog, cache_path=cache)
    indexed = time.perf_counter() - t0 - loaded
    source = "in process" if connections is None else f"from MCP servers {', '.join(connections)}"
    print(f"catalog {source}: loaded in {loaded:.2f} s, indexed in {indexed:.2f} s "
          f"({retriever.stats.embedded} embedded, {retriever.stats.cached} from the cache)")
    if args.index_only:
        return []
    value = args.tool_call_bias.lower()
    bias = "auto" if value == "auto" else None if value == "none" else float(value)
    probe = ChatAttentionBuckets(model=args.model)
    own = probe.load().base
    every = {
        "one": (f"one base ({own:g})", ChatAttentionBuckets(model=args.model, bases=own, tool_call_bias=bias,
                                                            deterministic=args.deterministic)),
        "buckets": ("6 buckets (default)", ChatAttentionBuckets(model=args.model, tool_call_bias=bias,
                                                                deterministic=args.deterministic)),
    }
    configs = [every[c.strip()] for c in args.configs.split(",") if c.strip()]
    print(f"{len(catalog)} tools in the catalog; model {probe.model_name} on {probe.load().device}")
    if args.labelled:
        questions = labelled(args.labelled)
    else:
        questions = SINGLE[:1] if args.fast else SINGLE + MULTI
    summary, runs = [], []
    for question, expected in questions:
        if not args.labelled:
            print(f"\n=== {question}")
        for label, llm in configs:
            out = run(question, llm, retriever, catalog)
            runs.append({"question": question, "config": label, **out})
            if not args.labelled:
                show(label, out, expected)
            valid = sum(not c.get("invalid") for c in out["calls"])
            summary.append(
                (question, label, len(expected), right_tools(out, expected), completed(out, expected),
                 valid, len(out["calls"]), out["seconds"])
            )
    print("\nsummary (completed: the loop ended by itself, the expected tools were called, the answer uses a result)")
    for q, label, steps, tools_ok, done, valid, n, seconds in summary:
        kind = "single-step" if steps == 1 else f"{steps} steps"
        print(f"  {q[:44]:<46} {kind:<11} {label:<20} {'right tools' if tools_ok else 'other tools':<12} "
              f"{'completed' if done else 'not completed':<14} {valid}/{n} calls parsed {seconds:6.1f} s")
    for label, _ in configs:
        for kind, wanted in (("single-step", lambda s: s == 1), ("multi-step", lambda s: s > 1)):
            rows = [r for r in summary if r[1] == label and wanted(r[2])]
            if rows:
                print(f"  {label}: {kind} requests: {sum(r[3] for r in rows)}/{len(rows)} reached the right tools, "
                      f"{sum(r[4] for r in rows)}/{len(rows)} completed")
    if args.json:
        record = {"source": source, "load_s": loaded, "index_s": indexed, "embedded": retriever.stats.embedded,
                  "cached": retriever.stats.cached, "runs": runs}
        Path(args.json).write_text(json.dumps(record, indent=1, ensure_ascii=False, default=str))
    return summary


if __name__ == "__main__":
    main()
