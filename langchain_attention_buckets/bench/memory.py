"""``attention-buckets bench memory``: resident memory and the prefix cache over many varied calls.

A long-running agent process makes thousands of calls; with the prefix cache on, its
memory must level off at the weights, the working set and the cache's bound, not creep.
This benchmark runs a seeded mix of calls through ``ChatAttentionBuckets`` on one model:

- ``agent``: a few interleaved agent sessions, each a fixed system prompt (a tool list)
  and a growing history of turns, so every turn shares a prefix with the one before;
- ``question``: unrelated one-off questions of varied length;
- ``document``: one of a few shared documents followed by a new question;
- ``batch``: three questions sent together (``llm.batch``), so the engine decodes a batch;

over one, two or six buckets (the prefix cache is kept per base set), with 1-``max_tokens``
new tokens each. Every ``sample_every`` calls it records the process's resident memory
(RSS) and the prefix cache's own byte count. The summary says whether the cache stayed
within its bound and the slope of RSS over the last half of the run (a leak keeps a
positive slope; a levelled process has none). Results: a terminal table, ``memory.json``
and ``memory.png`` in the output folder.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..progress import progress_bar
from .tasks.words import CITIES, COMMON_WORDS

MIB = 1024**2
DEFAULT_CACHE_BYTES = 128 * MIB
KIND_SHARES = {"agent": 0.42, "question": 0.28, "document": 0.20, "tool": 0.05, "batch": 0.05}
BUCKET_SHARES = {"one": 0.75, "two": 0.25}  # agent, document, tool and batch calls
QUESTION_BUCKETS = {"one": 0.65, "two": 0.25, "six": 0.10}  # short questions also try six buckets
LEVEL_TOLERANCE = 0.02
"""RSS levels off when its fitted growth over the last half of the run is under this share of the final RSS."""

Message = tuple[str, str]  # (role, text): a LangChain message-like


@dataclass(frozen=True)
class Call:
    """One step of the workload: its kind, bucket set, the conversations it sends (one, or three
    for a batch), its reply length, and for a ``tool`` call which tools are bound."""

    kind: str
    buckets: str
    conversations: tuple[tuple[Message, ...], ...]
    max_tokens: int
    tools: int | None = None  # index into ``tool_sets()``: tools bound with tool_choice="auto" (a grammar each)


# ---- the workload --------------------------------------------------------------------


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(COMMON_WORDS) for _ in range(n))


def _question(rng: random.Random, lo: int = 3, hi: int = 20) -> str:
    return f"In {rng.choice(CITIES)}, what links the {_words(rng, rng.randint(lo, hi))}?"


def _system_prompts(rng: random.Random) -> list[str]:
    """Three agent system prompts, each a short tool list (the long shared prefix of agent turns)."""
    out = []
    for _ in range(3):
        tools = [f"- {_words(rng, 1)}_{_words(rng, 1)}: {_words(rng, rng.randint(4, 10))}." for _ in range(3)]
        out.append("You are an agent. You can call these tools:\n" + "\n".join(tools))
    return out


def _pick(rng: random.Random, shares: dict[str, float]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


class _Sessions:
    """Interleaved agent sessions; each keeps its system prompt, bucket set and history until it ends."""

    def __init__(self, rng: random.Random, n: int = 3):
        self.rng, self.systems = rng, _system_prompts(rng)
        self.slots: list[dict] = [self._new() for _ in range(n)]

    def _new(self) -> dict:
        return {"system": self.rng.choice(self.systems), "buckets": _pick(self.rng, BUCKET_SHARES),
                "turns": [], "left": self.rng.randint(3, 6)}

    def next_turn(self) -> tuple[str, tuple[Message, ...]]:
        i = self.rng.randrange(len(self.slots))
        s = self.slots[i]
        s["turns"].append(("human", _question(self.rng, 3, 12)))
        conversation = (("system", s["system"]), *s["turns"])
        # a canned reply, not the model's: the next turn's prompt does not depend on the output
        s["turns"].append(("ai", f"I will use the {_words(self.rng, self.rng.randint(2, 6))}."))
        s["left"] -= 1
        if s["left"] == 0:
            self.slots[i] = self._new()
        return s["buckets"], conversation


def tool_sets(seed: int = 0) -> list[list[dict]]:
    """Three small tool lists (OpenAI format) for the ``tool`` calls: each is compiled to a grammar once."""
    rng = random.Random(seed)
    sets = []
    for k in range(3):
        tools = []
        for j in range(2 + k):
            props = {w: {"type": rng.choice(["string", "integer"]), "description": _words(rng, 3)}
                     for w in dict.fromkeys(_words(rng, 2).split())}
            tools.append({"type": "function", "function": {
                "name": f"{_words(rng, 1)}_{j}", "description": _words(rng, 6),
                "parameters": {"type": "object", "properties": props, "required": list(props)}}})
        sets.append(tools)
    return sets


def workload(calls: int, seed: int = 0, max_tokens: int = 4) -> Iterator[Call]:
    """The seeded mix of calls; ``calls`` model calls in all (a batch step counts three)."""
    rng = random.Random(seed)
    sessions = _Sessions(rng)
    documents = [f"Notes on {_words(rng, 1)}: {_words(rng, rng.randint(25, 45))}." for _ in range(3)]
    made = 0
    while made < calls:
        kind = _pick(rng, KIND_SHARES)
        n_tokens, tools = rng.randint(1, max_tokens), None
        if kind == "agent":
            buckets, conversation = sessions.next_turn()
            convs = (conversation,)
        elif kind == "document":
            buckets = _pick(rng, BUCKET_SHARES)
            convs = ((("system", rng.choice(documents)), ("human", _question(rng, 3, 12))),)
        elif kind == "tool":
            buckets, tools = "one", rng.randrange(3)
            convs = ((("human", _question(rng, 3, 12)),),)
        elif kind == "question":
            buckets = _pick(rng, QUESTION_BUCKETS)
            convs = ((("human", _question(rng, 3, 8) if buckets == "six" else _question(rng)),),)
        else:
            buckets = "one"
            convs = tuple((("human", _question(rng)),) for _ in range(min(3, calls - made)))
        made += len(convs)
        yield Call(kind, buckets, convs, n_tokens, tools)


# ---- measuring -----------------------------------------------------------------------


def rss_bytes() -> int | None:
    """This process's resident memory: psutil where installed, else /proc/self/status; None where neither works."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        with open("/proc/self/status") as f:
            line = next((ln for ln in f if ln.startswith("VmRSS:")), None)
    except OSError:
        return None
    return int(line.split()[1]) * 1024 if line else None


def chat_models(model: str | None, prefix_cache_bytes: int) -> dict[str, Any]:
    """One ``ChatAttentionBuckets`` per bucket set (one, two and six buckets), sharing weights and engine."""
    from ..chat.model import ChatAttentionBuckets

    def make(bases) -> ChatAttentionBuckets:
        return ChatAttentionBuckets(model=model, bases=bases, temperature=0, prefix_cache_bytes=prefix_cache_bytes)

    one = make("paper")  # only to read the model's base; replaced below
    base = one.load().base
    return {"one": make([base]), "two": make([base, 2 * base]), "six": one}


def _check_settings(calls: int, sample_every: int, max_tokens: int, prefix_cache_bytes: int) -> None:
    for name, value, low in (("calls", calls, 1), ("sample_every", sample_every, 1), ("max_tokens", max_tokens, 1),
                             ("prefix_cache_bytes", prefix_cache_bytes, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}")


def run_memory(
    *,
    model: str | None = None,
    calls: int = 1000,
    prefix_cache_bytes: int = DEFAULT_CACHE_BYTES,
    sample_every: int = 10,
    max_tokens: int = 4,
    seed: int = 0,
    output: str | Path = "bench-out/memory",
    progress: bool | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Run the workload, sampling RSS and the prefix cache; write memory.json (and memory.png).

    Args:
        model: Model path or hub id; default the embedded model.
        calls: Model calls in all.
        prefix_cache_bytes: The prefix cache's bound (the engine's effective bound is recorded:
            an engine already shared in this process may have a larger one).
        sample_every: Calls between samples.
        max_tokens: Each call generates 1 to this many tokens.
        seed: Seed of the workload.
        output: Folder for memory.json and memory.png.
        progress: Show a progress bar (None: on a terminal, see ``progress.progress_enabled``).
        plots: Write memory.png.

    Returns:
        The content of memory.json: settings, samples and summary.
    """
    _check_settings(calls, sample_every, max_tokens, prefix_cache_bytes)
    models = chat_models(model, prefix_cache_bytes)
    bound = [models["one"].bind_tools(tools, tool_choice="auto") for tools in tool_sets(seed)]
    engine = models["one"].engine()
    cache = engine.prefix_cache
    t0 = time.perf_counter()
    samples, kinds, seconds, done, cache_max = [_sample(cache, 0, t0)], Counter(), Counter(), 0, 0
    with progress_bar(calls, desc="bench memory", unit="call", progress=progress) as bar:
        for call in workload(calls, seed, max_tokens):
            t = time.perf_counter()
            _send(models[call.buckets] if call.tools is None else bound[call.tools], call)
            name = f"{call.kind}/{call.buckets}"
            kinds[name] += len(call.conversations)
            seconds[name] += time.perf_counter() - t
            cache_max = max(cache_max, cache.nbytes)  # every call, not only at samples
            before, done = done, done + len(call.conversations)
            bar.update(len(call.conversations))
            if done // sample_every > before // sample_every or done == calls:
                samples.append(_sample(cache, done, t0))
                bar.set_postfix_str(f"rss {samples[-1]['rss_bytes'] / MIB:.0f} MiB, cache {cache.nbytes / MIB:.1f} MiB")
    settings = {"model": model or "embedded", "calls": calls, "prefix_cache_bytes": cache.max_bytes,
                "requested_prefix_cache_bytes": prefix_cache_bytes, "sample_every": sample_every,
                "max_tokens": max_tokens, "seed": seed, "calls_by_kind": dict(sorted(kinds.items())),
                "seconds_per_call_by_kind": {k: round(seconds[k] / kinds[k], 3) for k in sorted(kinds)},
                "seconds": round(time.perf_counter() - t0, 1), "idle_trim_interval": engine.idle_trim_interval,
                "idle_trims": engine.idle_trim.count, "idle_trim_seconds": round(engine.idle_trim.seconds, 3)}
    results = {"settings": settings, "summary": summarize(samples, cache.max_bytes, cache_max), "samples": samples}
    return _write(results, Path(output), plots)


def _sample(cache, done: int, t0: float) -> dict[str, Any]:
    return {"calls": done, "seconds": round(time.perf_counter() - t0, 2), "rss_bytes": rss_bytes(),
            "cache_bytes": cache.nbytes, "cache_entries": len(cache)}


def _send(llm, call: Call) -> None:
    if len(call.conversations) == 1:
        llm.invoke(list(call.conversations[0]), max_tokens=call.max_tokens)
    else:
        llm.batch([list(c) for c in call.conversations], max_tokens=call.max_tokens)


def summarize(samples: list[dict], bound: int, cache_max: int) -> dict[str, Any]:
    """Whether the cache kept its bound, and how RSS moved (least-squares slope over the last half)."""
    import numpy as np

    rss = [(s["calls"], s["rss_bytes"]) for s in samples if s["rss_bytes"] is not None]
    calls = samples[-1]["calls"]
    late = [(c, r) for c, r in rss if c >= calls / 2]
    slope = float(np.polyfit(*zip(*late), 1)[0]) if len(late) >= 2 else None
    growth = slope * (late[-1][0] - late[0][0]) if slope is not None else None
    rss_end = rss[-1][1] if rss else None
    return {
        "cache_bound_bytes": bound,
        "cache_max_bytes": cache_max,
        "cache_within_bound": cache_max <= bound,
        "rss_start_bytes": rss[0][1] if rss else None,
        "rss_end_bytes": rss_end,
        "rss_max_bytes": max(r for _, r in rss) if rss else None,
        "rss_slope_last_half_bytes_per_call": slope,
        "rss_growth_last_half_bytes": growth,
        "rss_levels_off": None if growth is None else growth <= LEVEL_TOLERANCE * rss_end,
        "level_tolerance": LEVEL_TOLERANCE,
    }


# ---- output --------------------------------------------------------------------------


def _write(results: dict[str, Any], folder: Path, plots: bool) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "memory.json").write_text(json.dumps(results, indent=1))
    results["files"] = [str(folder / "memory.json")]
    if plots:
        plot_memory(results, folder / "memory.png")
        results["files"].append(str(folder / "memory.png"))
    return results


def _mib(n: float | None) -> str:
    return "-" if n is None else f"{n / MIB:.1f}"


def print_report(results: dict[str, Any], rows: int = 10) -> None:
    """About ``rows`` evenly spaced samples, then the summary."""
    samples, s = results["samples"], results["summary"]
    step = max(1, (len(samples) - 1) // rows)
    picked = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    print(f"{'calls':>6} {'seconds':>8} {'RSS MiB':>9} {'cache MiB':>10} {'entries':>8}")
    for p in picked:
        print(f"{p['calls']:>6} {p['seconds']:>8.0f} {_mib(p['rss_bytes']):>9} {_mib(p['cache_bytes']):>10} "
              f"{p['cache_entries']:>8}")
    slope = s["rss_slope_last_half_bytes_per_call"]
    print(f"prefix cache: max {_mib(s['cache_max_bytes'])} MiB of a {_mib(s['cache_bound_bytes'])} MiB bound "
          f"({'within' if s['cache_within_bound'] else 'OVER'} the bound)")
    print(f"RSS: {_mib(s['rss_start_bytes'])} -> {_mib(s['rss_end_bytes'])} MiB (max {_mib(s['rss_max_bytes'])}); "
          f"last half: {'-' if slope is None else f'{slope * 100 / MIB:+.2f}'} MiB per 100 calls, "
          f"{_mib(s['rss_growth_last_half_bytes'])} MiB in all "
          f"({'levels off' if s['rss_levels_off'] else 'still growing' if s['rss_levels_off'] is False else '-'})")


def plot_memory(results: dict[str, Any], path: Path) -> Path:
    """RSS and prefix-cache bytes against calls, with the cache's bound."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = [p["calls"] for p in results["samples"]]
    rss = [p["rss_bytes"] / MIB if p["rss_bytes"] is not None else float("nan") for p in results["samples"]]
    ax.plot(xs, rss, label="resident memory (RSS)")
    ax.plot(xs, [p["cache_bytes"] / MIB for p in results["samples"]], label="prefix cache")
    ax.axhline(results["summary"]["cache_bound_bytes"] / MIB, ls="--", color="grey", label="prefix cache bound")
    ax.set_xlabel("calls")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    st = results["settings"]
    ax.set_title(f"{st['model']}: {st['calls']} varied calls, prefix cache bound {_mib(st['prefix_cache_bytes'])} MiB")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


# ---- command line --------------------------------------------------------------------


def add_memory_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="hub id, folder or .gguf (default: the embedded model)")
    p.add_argument("--calls", type=int, default=1000, help="model calls in all (default 1000)")
    p.add_argument("--prefix-cache-bytes", type=int, default=DEFAULT_CACHE_BYTES,
                   help=f"the prefix cache's bound in bytes (default {DEFAULT_CACHE_BYTES} = {DEFAULT_CACHE_BYTES // MIB} MiB)")
    p.add_argument("--sample-every", type=int, default=10, help="calls between memory samples (default 10)")
    p.add_argument("--max-tokens", type=int, default=4, help="each call generates 1 to this many tokens (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the workload (default 0)")
    p.add_argument("--output", default="bench-out/memory", help="folder for memory.json and memory.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def memory_main(args: argparse.Namespace) -> int:
    """Run `attention-buckets bench memory` from parsed arguments; the exit status."""
    try:
        _check_settings(args.calls, args.sample_every, args.max_tokens, args.prefix_cache_bytes)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = run_memory(
        model=args.model, calls=args.calls, prefix_cache_bytes=args.prefix_cache_bytes,
        sample_every=args.sample_every, max_tokens=args.max_tokens, seed=args.seed, output=args.output,
        progress=False if args.no_progress else None,
    )
    print_report(results)
    print("wrote " + ", ".join(results["files"]))
    return 0
