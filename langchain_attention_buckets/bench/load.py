"""``attention-buckets bench serve``: a bounded load run of agent-like sessions against the server.

Each session is an agent's conversation with a warehouse assistant: a shared system prompt
and four tools (the prefix every session shares), a question, and ``turns`` requests, each
sending the whole conversation so far: when the model called tools, the tools' results
follow (synthetic, from the call's arguments); otherwise the session's next question does.
``sessions`` sessions run at once; every request streams (``stream_options.include_usage``)
with greedy decoding, so the run measures:

- lost or failed requests (every request is accounted for: status, error text);
- time to first token (the first content or tool-call delta) and total latency, p50/p95;
- completion tokens per second over the run's wall time;
- the prefix cache's hit rate: cached prompt tokens / prompt tokens, from ``usage``;
- which replica answered (``X-Replica-Id``, when the server sends it);
- then, with ``--replay``, every recorded request sent again alone, one at a time: how many
  greedy answers equal those of the loaded run (text and tool calls).

Affinity (Ray replicas): ``on`` sends one ``X-Session-Id`` per session, so a session's turns
reach one replica; ``off`` sends a fresh id with every request (requests spread over replicas).
Against one server the header changes nothing.

Bounded: ``sessions x turns`` requests, a per-request timeout and a deadline for the whole run,
after which the open requests are cancelled and reported as failed. Binds nothing itself; the
servers it starts bind 127.0.0.1 on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SYSTEM = (
    "You are the assistant of a hardware warehouse. Use the tools to look up stock, prices and orders; "
    "answer in one or two sentences with the numbers the tools return. Never invent a number."
)


def _tool(name: str, description: str, **params: str) -> dict:
    props = {k: {"type": v} for k, v in params.items()}
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": {"type": "object", "properties": props, "required": list(params)}}}


TOOLS = [
    _tool("get_stock_level", "How many units of a product are in stock.", product="string"),
    _tool("get_price", "The unit price of a product in euros.", product="string"),
    _tool("get_order_status", "The status of a customer order.", order_id="string"),
    _tool("reserve_stock", "Reserve units of a product for a customer.", product="string", quantity="integer"),
]
PRODUCTS = ["blue mugs", "steel hammers", "garden hoses", "LED bulbs", "oak shelves", "paint rollers",
            "drill bits", "copper pipes", "door hinges", "tape measures", "ladders", "wood screws"]
QUESTIONS = [
    "How many {p} do we have in stock?",
    "What does one of the {p} cost?",
    "Where is order {o}?",
    "Please reserve {n} {p} for a customer.",
]


@dataclass
class Record:
    """One request of the run: what was sent, what came back, and how long it took."""

    session: int
    turn: int
    body: dict[str, Any]
    status: int = 0
    error: str | None = None
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    ttft: float | None = None
    latency: float | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    replica: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    def answer(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.text, tuple((c["name"], c["arguments"]) for c in self.tool_calls)


def session_questions(index: int, turns: int) -> list[str]:
    """The questions of session ``index`` (deterministic: the same run asks the same things)."""
    out = []
    for t in range(turns):
        k = index * 7 + t * 3
        out.append(QUESTIONS[k % len(QUESTIONS)].format(
            p=PRODUCTS[(index + t * 5) % len(PRODUCTS)], o=f"A-{1000 + index * 13 + t}", n=1 + (index + t) % 9))
    return out


def _result(call: dict[str, Any]) -> str:
    """A tool's (synthetic) result: stable for the same arguments."""
    args = call["arguments"]
    value = sum(args.encode()) % 97 + 3
    return json.dumps({"tool": call["name"], "arguments": args, "result": value})


def _parse_event(record: Record, event: dict[str, Any], t0: float, calls: dict[int, dict]) -> None:
    if "error" in event:
        record.error = event["error"].get("message", str(event["error"]))
        return
    if event.get("usage"):
        usage = event["usage"]
        record.prompt_tokens, record.completion_tokens = usage["prompt_tokens"], usage["completion_tokens"]
        record.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    for choice in event.get("choices", []):
        delta = choice.get("delta", {})
        if (delta.get("content") or delta.get("tool_calls")) and record.ttft is None:
            record.ttft = time.perf_counter() - t0
        record.text += delta.get("content") or ""
        for tc in delta.get("tool_calls") or []:
            call = calls.setdefault(tc["index"], {"id": tc.get("id"), "name": "", "arguments": ""})
            function = tc.get("function") or {}
            call["name"] += function.get("name") or ""
            call["arguments"] += function.get("arguments") or ""


async def send(client, url: str, record: Record, headers: dict[str, str], timeout: float) -> Record:
    """Send one streamed request and fill ``record`` (never raises: failures land in ``record.error``)."""
    t0 = time.perf_counter()
    calls: dict[int, dict] = {}
    try:
        async with client.stream("POST", f"{url}/chat/completions", json=record.body, headers=headers,
                                 timeout=timeout) as r:
            record.status, record.replica = r.status_code, r.headers.get("x-replica-id")
            if r.status_code != 200:
                record.error = (await r.aread()).decode(errors="replace")[:500]
                return record
            async for line in r.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    _parse_event(record, json.loads(line[6:]), t0, calls)
    except Exception as exc:  # a lost request is a result, not a crash of the run
        record.error = f"{type(exc).__name__}: {exc}"
    record.latency = time.perf_counter() - t0
    record.tool_calls = [calls[i] for i in sorted(calls)]
    return record


async def run_session(client, url: str, model: str, index: int, turns: int, max_tokens: int,
                      affinity: bool, timeout: float) -> list[Record]:
    questions = session_questions(index, turns)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": questions[0]}]
    session_id, records, asked = uuid.uuid4().hex, [], 1
    for turn in range(turns):
        body = {"model": model, "messages": [dict(m) for m in messages], "tools": TOOLS, "max_tokens": max_tokens,
                "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
        headers = {"X-Session-Id": session_id if affinity else uuid.uuid4().hex}
        record = await send(client, url, Record(index, turn, body), headers, timeout)
        records.append(record)
        if not record.ok:
            break
        assistant: dict[str, Any] = {"role": "assistant", "content": record.text or None}
        if record.tool_calls:
            assistant["tool_calls"] = [{"id": c["id"], "type": "function",
                                        "function": {"name": c["name"], "arguments": c["arguments"]}} for c in record.tool_calls]
        messages.append(assistant)
        if record.tool_calls:
            messages += [{"role": "tool", "tool_call_id": c["id"], "content": _result(c)} for c in record.tool_calls]
        else:
            messages.append({"role": "user", "content": questions[asked % len(questions)]})
            asked += 1
    return records


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def summarize(records: list[Record], wall: float, expected: int) -> dict[str, Any]:
    ok = [r for r in records if r.ok]
    ttft = [r.ttft for r in ok if r.ttft is not None]
    lat = [r.latency for r in ok if r.latency is not None]
    prompt = sum(r.prompt_tokens for r in ok)
    replicas: dict[str, int] = {}
    for r in ok:
        replicas[r.replica or "-"] = replicas.get(r.replica or "-", 0) + 1
    return {
        "requests_planned": expected,
        "requests_sent": len(records),
        "requests_ok": len(ok),
        "requests_failed": len(records) - len(ok),
        "errors": sorted({r.error for r in records if r.error})[:5],
        "ttft_p50": _pct(ttft, 0.5), "ttft_p95": _pct(ttft, 0.95),
        "latency_p50": _pct(lat, 0.5), "latency_p95": _pct(lat, 0.95),
        "completion_tokens": sum(r.completion_tokens for r in ok),
        "tokens_per_second": sum(r.completion_tokens for r in ok) / wall if wall > 0 else None,
        "cache_hit_rate": sum(r.cached_tokens for r in ok) / prompt if prompt else None,
        "wall_seconds": wall,
        "replicas": replicas,
    }


async def load_run(url: str, model: str, sessions: int, turns: int, max_tokens: int, affinity: bool,
                   timeout: float, deadline: float, first: int = 0) -> tuple[list[Record], float]:
    """All sessions at once; cancelled at ``deadline`` seconds (open requests then count as failed)."""
    import httpx

    limits = httpx.Limits(max_connections=sessions * 2, max_keepalive_connections=sessions * 2)
    async with httpx.AsyncClient(limits=limits) as client:
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(run_session(client, url, model, i, turns, max_tokens, affinity, timeout))
                 for i in range(first, first + sessions)]
        done, pending = await asyncio.wait(tasks, timeout=deadline)
        for task in pending:
            task.cancel()
        wall = time.perf_counter() - t0
    records = [r for task in done for r in task.result()]
    return sorted(records, key=lambda r: (r.session, r.turn)), wall


async def replay(url: str, records: list[Record], timeout: float) -> dict[str, Any]:
    """Each answered request again, alone and in order: greedy answers equal to the loaded run's?"""
    import httpx

    equal, differ = 0, []
    async with httpx.AsyncClient() as client:
        for rec in records:
            if not rec.ok:
                continue
            again = await send(client, url, Record(rec.session, rec.turn, rec.body), {}, timeout)
            if again.ok and again.answer() == rec.answer():
                equal += 1
            else:
                differ.append({"session": rec.session, "turn": rec.turn, "loaded": rec.answer(),
                               "alone": again.answer(), "error": again.error})
    return {"replayed": equal + len(differ), "equal": equal, "different": differ[:5]}


def start_target(args: argparse.Namespace):
    """(url, served model name, stop) for the server this run loads: given, one thread, or Ray replicas."""
    if args.url:
        import httpx

        models = httpx.get(f"{args.url}/models", timeout=30).json()["data"]
        return args.url, models[0]["id"], lambda: None
    from ..serve.app import ServerSettings

    fields = {k: v for k, v in {"model": args.model, "bases": args.bases, "max_tokens": args.max_tokens}.items() if v is not None}
    settings = ServerSettings(model_kwargs=fields, max_concurrent=args.sessions, max_queue=args.sessions * args.turns)
    if args.replicas == 1:
        from ..serve.run import ServerThread

        server = ServerThread(settings)
        return server.url, server.app.state.served, server.stop
    from ..serve.ray_app import start_ray_app

    app = start_ray_app(settings, replicas=args.replicas)  # one CPU per replica
    return app.url, app.served, app.stop


def run_serve_bench(args: argparse.Namespace) -> dict[str, Any]:
    url, model, stop = start_target(args)
    try:
        results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "func"}, "model": model}
        # warm-up, not measured: one turn of a few sessions spread over the replicas (grammar
        # compilation, the shared system prompt and tools in each replica's cache)
        warm = 4 * args.replicas
        asyncio.run(load_run(url, model, warm, 1, 4, False, args.timeout, args.deadline, first=10_000))
        for k, affinity in enumerate(args.affinity):
            name = f"affinity-{'on' if affinity else 'off'}"
            # each run asks other questions (sessions k*S...), so no run reuses another's conversations;
            # the shared system prompt and tools stay cached, as on any warm server
            records, wall = asyncio.run(load_run(url, model, args.sessions, args.turns, args.max_tokens, affinity,
                                                 args.timeout, args.deadline, first=k * args.sessions))
            summary = summarize(records, wall, args.sessions * args.turns)
            if args.replay:
                summary["replay"] = asyncio.run(replay(url, records, args.timeout))
            results[name] = summary
            results[name + "-records"] = [asdict(r) | {"body": None} for r in records]
            print_summary(name, summary)
    finally:
        stop()
    return results


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def print_summary(name: str, s: dict[str, Any]) -> None:
    print(f"{name}: {s['requests_ok']}/{s['requests_planned']} ok, {s['requests_failed']} failed; "
          f"TTFT p50 {_s(s['ttft_p50'])} s p95 {_s(s['ttft_p95'])} s; latency p50 {_s(s['latency_p50'])} s "
          f"p95 {_s(s['latency_p95'])} s; {_s(s['tokens_per_second'])} tokens/s; cache hit rate "
          f"{_s(s['cache_hit_rate'])}; replicas {s['replicas']}; wall {s['wall_seconds']:.0f} s", file=sys.stderr)
    if "replay" in s:
        r = s["replay"]
        print(f"  replayed alone: {r['equal']}/{r['replayed']} greedy answers equal", file=sys.stderr)
    for e in s["errors"]:
        print(f"  error: {e}", file=sys.stderr)


def add_serve_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, help="load this running server (its /v1 URL) instead of starting one")
    p.add_argument("--model", default=None, help="model to serve (default: the embedded one)")
    p.add_argument("--bases", default=None, help="the served model's bases (default: its default)")
    p.add_argument("--replicas", type=int, default=1, help="1: one server in this process; 2+: Ray Serve replicas")
    p.add_argument("--sessions", type=int, default=32, help="concurrent sessions (default 32)")
    p.add_argument("--turns", type=int, default=3, help="requests per session (default 3)")
    p.add_argument("--max-tokens", type=int, default=48, help="most new tokens per answer (default 48)")
    p.add_argument("--affinity", default="on", help="on, off or on,off (Ray replicas: one session id per session or per request)")
    p.add_argument("--replay", action="store_true", help="then send every request again alone and compare the answers")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per request (default 600)")
    p.add_argument("--deadline", type=float, default=1800.0, help="seconds for the whole load run (default 1800)")
    p.add_argument("--out", default=None, help="write the results (JSON) here")


def serve_bench_main(args: argparse.Namespace) -> int:
    flags = {"on": True, "off": False}
    bad = [a for a in args.affinity.split(",") if a not in flags]
    if bad or args.sessions < 1 or args.turns < 1 or args.replicas < 1 or args.max_tokens < 1:
        raise SystemExit(f"--affinity takes on, off or on,off (got {args.affinity!r}); --sessions, --turns, "
                         "--replicas and --max-tokens must be >= 1")
    args.affinity = [flags[a] for a in args.affinity.split(",")]
    if args.bases is not None and args.bases not in ("paper", "auto"):
        values = [float(b) for b in args.bases.split(",")]
        args.bases = values[0] if len(values) == 1 else values
    results = run_serve_bench(args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))
        print(f"wrote {args.out}", file=sys.stderr)
    failed = sum(v["requests_failed"] + v["requests_planned"] - v["requests_sent"]
                 for k, v in results.items() if k.startswith("affinity-") and not k.endswith("-records"))
    return 1 if failed else 0


