"""``attention-buckets bench speed``: what buckets cost, measured against one row in the same run.

Four measurements, each a median over repeats after a warm-up run:

- ``buckets``: for N in --buckets and each prompt length, time to first token
  (prefill), decode step time and KV-cache bytes, as ratios to N = 1;
- ``sequential``: the N bases run one after another as separate single-row
  passes at every step (what the reference implementation does), against the
  same N as rows of one batch;
- ``hf``: N = 1 against plain transformers ``generate`` on the same prompt;
- ``mask``: decode steps with a grammar against none;
- ``spec``: greedy decoding with speculation against without, on text the context predicts
  (a copy) and text it does not;
- ``agent``: time to first token of the 2nd and 3rd turns of a three-turn tool
  loop over a ~2,000-token tool context, with and without the prefix cache.

Results go to the terminal (a table), ``speed.json`` and ``speed.png`` in --output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import torch

from ..engine import Engine, Request
from ..loading import LoadedModel, ModelSpec, load_model
from ..merge import merge
from ..rope import BucketedRotaryEmbedding, bucket_frequencies, bucketed_rotary, rotary_module

PAPER_RATIOS = (1.0, 1.75, 1.8, 1.9, 2.0, 2.5, 2.25, 2.75)  # the paper's set, then two more for N = 8


def bases_for(n: int, base: float) -> tuple[float, ...]:
    return tuple(base * r for r in PAPER_RATIOS[:n])


def make_prompt(loaded: LoadedModel, length: int, seed: int = 0) -> tuple[int, ...]:
    """``length`` token ids of ordinary text (a fixed passage repeated), deterministic."""
    text = (
        "The committee met on Tuesday to review the quarterly inventory figures, the shipping "
        "schedule for the northern warehouses and the new supplier contracts. "
    )
    ids = loaded.tokenizer.encode(text * (length // 20 + 2), add_special_tokens=False)
    return tuple(ids[seed : seed + length])


class PeakMemory:
    """Peak memory during a block: CUDA allocator peak, or resident-set growth on CPU (sampled)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = _rss()
        self._stop = threading.Event()
        self._max = self._base

        def sample():
            while not self._stop.wait(0.005):
                self._max = max(self._max, _rss())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._max, _rss()) - self._base
        return False


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _user_prompt(loaded: LoadedModel, text: str) -> tuple[int, ...]:
    """Token ids of one user message in the model's chat template, ready for the reply."""
    chat = loaded.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
    return tuple(loaded.tokenizer.encode(chat, add_special_tokens=False))


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


# ---- the engine: N rows of one batch -------------------------------------------------------


def _timed_run(engine: Engine, prompt, bases, decode_tokens: int) -> tuple[float, float, int]:
    """One request: time to first token, mean decode step, peak memory above the start."""
    # speculation off: every token is one forward pass (the repeated benchmark text would
    # otherwise be drafted from the context and make decoding look faster than it is)
    req = Request(prompt, tuple(bases), max_tokens=decode_tokens, prefix_cache=False, ignore_eos=True, speculative_tokens=0)
    with PeakMemory(engine.loaded.device) as mem:
        res = engine.generate(req)
    step = (res.total_seconds - res.time_to_first_token) / max(1, res.completion_tokens - 1)
    return res.time_to_first_token, step, mem.peak


def run_engine(engine: Engine, prompt, bases, decode_tokens: int, repeats: int) -> dict:
    _timed_run(engine, prompt, bases, decode_tokens)  # warm-up
    ttft, step, peak = zip(*(_timed_run(engine, prompt, bases, decode_tokens) for _ in range(repeats)))
    n, length = len(bases), len(prompt)
    return {
        "ttft_s": _median(ttft),
        "decode_step_s": _median(step),
        "prefill_tok_s": length / _median(ttft),
        "decode_tok_s": 1.0 / _median(step),
        "kv_bytes": n * (length + decode_tokens) * engine.loaded.kv_bytes_per_token(),
        "peak_bytes": int(_median(peak)),
    }


def run_packed(loaded: LoadedModel, prompt, ns: list[int], decode_tokens: int, repeats: int) -> dict:
    """Engine with oneDNN-packed linear layers against the model's own layers (``packed.py``).

    Every round runs each N with both engines, interleaved, so the machine's drift hits all
    alike; the N / N=1 decode-step ratios of each engine come from the same rounds.
    """
    engines = {
        "packed": Engine(loaded, prefix_cache_bytes=0, packed_weights=True),
        "default": Engine(loaded, prefix_cache_bytes=0, packed_weights=False),
    }
    if engines["packed"]._packed is None:
        return {"skipped": f"no packed layers on {loaded.device} in {loaded.dtype} with this torch build"}
    times: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for rep in range(repeats + 1):
        for n in ns:
            for name, eng in engines.items():
                ttft, step, _ = _timed_run(eng, prompt, bases_for(n, loaded.base), decode_tokens)
                if rep:  # round 0 is the warm-up
                    times.setdefault((name, n), []).append((ttft, step))
    out: dict[str, Any] = {"packed_bytes": engines["packed"]._packed.nbytes, "rows": []}
    for n in ns:
        row: dict[str, Any] = {"n": n}
        for name in engines:
            ttft = _median([t for t, _ in times[(name, n)]])
            step = _median([s for _, s in times[(name, n)]])
            one = _median([s for _, s in times[(name, ns[0])]])
            row[name] = {"ttft_s": ttft, "decode_step_s": step, "decode_step_ratio": step / one}
        row["packed_speedup_decode"] = row["default"]["decode_step_s"] / row["packed"]["decode_step_s"]
        row["packed_speedup_ttft"] = row["default"]["ttft_s"] / row["packed"]["ttft_s"]
        out["rows"].append(row)
    for eng in engines.values():
        eng.close()
    return out


# ---- the reference approach: one row at a time --------------------------------------------


@torch.inference_mode()
def run_sequential(loaded: LoadedModel, prompt, bases, decode_tokens: int, repeats: int) -> dict:
    """Each base a separate single-row pass with its own transformers cache, bases one after another."""
    from transformers import DynamicCache

    model, dev = loaded.model, loaded.device
    freqs, scales = bucket_frequencies(model.config, tuple(bases), dev, rotary_module(model))
    rotaries = [BucketedRotaryEmbedding(freqs[i : i + 1], scales[i : i + 1], model.config, [b]) for i, b in enumerate(bases)]
    ids = torch.tensor([prompt], device=dev)
    ttft, step = [], []
    for rep in range(repeats + 1):
        t0 = time.perf_counter()
        caches, rows = [], []
        for rot in rotaries:
            cache = DynamicCache(config=model.config)
            with bucketed_rotary(model, rot):
                rows.append(model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1])
            caches.append(cache)
        token = merge(torch.stack(rows, dim=1), "confidence").argmax(-1)
        _sync(dev)
        t1 = time.perf_counter()
        for k in range(decode_tokens - 1):
            pos = torch.tensor([[len(prompt) + k]], device=dev)
            rows = []
            for rot, cache in zip(rotaries, caches):
                with bucketed_rotary(model, rot):
                    out = model(input_ids=token[:, None], position_ids=pos, cache=cache, use_cache=True)
                rows.append(out.logits[:, -1])
            token = merge(torch.stack(rows, dim=1), "confidence").argmax(-1)
            token.item()
        t2 = time.perf_counter()
        if rep:
            ttft.append(t1 - t0)
            step.append((t2 - t1) / max(1, decode_tokens - 1))
    return {"ttft_s": _median(ttft), "decode_step_s": _median(step)}


@torch.inference_mode()
def run_hf_generate(loaded: LoadedModel, prompt, decode_tokens: int, repeats: int) -> dict:
    """Plain transformers greedy ``generate`` (the model unmodified)."""
    model, dev = loaded.model, loaded.device
    ids = torch.tensor([prompt], device=dev)
    kw = dict(do_sample=False, pad_token_id=0)
    first, full = [], []
    for rep in range(repeats + 1):
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=1, **kw)
        _sync(dev)
        t1 = time.perf_counter()
        model.generate(ids, max_new_tokens=decode_tokens, min_new_tokens=decode_tokens, **kw)
        _sync(dev)
        t2 = time.perf_counter()
        if rep:
            first.append(t1 - t0)
            full.append(t2 - t1)
    step = (_median(full) - _median(first)) / max(1, decode_tokens - 1)
    return {"ttft_s": _median(first), "decode_step_s": step}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


# ---- dtype on CPU --------------------------------------------------------------------------

AGREEMENT_QUESTIONS = [
    "What is the capital of France?",
    "Give me three tips for a good night's sleep.",
    "Explain what a prime number is.",
    "Write a haiku about autumn.",
    "How do I boil an egg?",
    "What is the difference between weather and climate?",
    "Name two planets of the solar system and one fact about each.",
    "Why is the sky blue?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "What does a database index do?",
    "List the days of the week.",
    "How many legs does a spider have?",
]


def run_dtype(model: str | None, device: str, length: int, decode_tokens: int, repeats: int) -> dict:
    """float32 against bfloat16 with one bucket: speed, and how far greedy answers agree."""
    out: dict[str, Any] = {}
    answers: dict[str, list[list[int]]] = {}
    for dtype in ("float32", "bfloat16"):
        loaded = load_model(ModelSpec(model, device, dtype))
        engine = Engine(loaded, prefix_cache_bytes=0)
        out[dtype] = run_engine(engine, make_prompt(loaded, length), (loaded.base,), decode_tokens, repeats)
        answers[dtype] = []
        for q in AGREEMENT_QUESTIONS:
            ids = _user_prompt(loaded, q)
            answers[dtype].append(engine.generate(Request(ids, (loaded.base,), max_tokens=48, prefix_cache=False)).token_ids)
    same, prefix = 0, []
    for a, b in zip(answers["float32"], answers["bfloat16"]):
        same += a == b
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        prefix.append(k / max(1, len(a)))
    out["agreement"] = {
        "identical_answers": same,
        "questions": len(AGREEMENT_QUESTIONS),
        "mean_shared_prefix": float(statistics.mean(prefix)),
    }
    out["prefill_ratio_bf16_vs_fp32"] = out["bfloat16"]["ttft_s"] / out["float32"]["ttft_s"]
    out["decode_ratio_bf16_vs_fp32"] = out["bfloat16"]["decode_step_s"] / out["float32"]["decode_step_s"]
    return out


# ---- the grammar mask ----------------------------------------------------------------------


def run_mask(loaded: LoadedModel, engine: Engine, prompt, bases, decode_tokens: int, repeats: int) -> dict:
    """Decode step with a grammar mask against the same number of steps without one (one run).

    "text": free text that may not open a tool call (a mask at every step, most tokens allowed);
    "json": a JSON object whose one field is a free string (a mask at every step). Each masked
    run is paired with an unmasked run that decodes exactly as many tokens (end-of-sequence
    ignored), interleaved, so both average over the same steps at the same cache lengths. The
    masked step includes filling the bitmask, applying it and advancing the matcher.
    """
    from ..constrain import compiler_for

    compiler = compiler_for(loaded.tokenizer, vocab_size=loaded.vocab_size, stop_token_ids=sorted(loaded.eos_token_ids))
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    makers = {
        "text": lambda: compiler.tool_calls([], mode="none"),
        "json": lambda: compiler.json_schema(schema),
    }

    def step_time(res) -> float:
        return (res.total_seconds - res.time_to_first_token) / (res.completion_tokens - 1)

    pairs: dict[str, list[tuple[float, float]]] = {k: [] for k in makers}
    tokens: dict[str, int] = {}
    for rep in range(repeats + 1):
        for kind, make in makers.items():
            masked = engine.generate(Request(prompt, tuple(bases), max_tokens=decode_tokens, prefix_cache=False,
                                             constraint=make(), speculative_tokens=0))
            n = masked.completion_tokens
            tokens[kind] = n
            if n < 3:
                continue
            plain = engine.generate(Request(prompt, tuple(bases), max_tokens=n, prefix_cache=False,
                                            ignore_eos=True, speculative_tokens=0))
            if rep:
                pairs[kind].append((step_time(masked), step_time(plain)))
    out: dict[str, Any] = {}
    for kind, v in pairs.items():
        if v:
            m, u = _median([a for a, _ in v]), _median([b for _, b in v])
            out[kind] = {"tokens": tokens[kind], "decode_step_s": m, "unmasked_step_s": u, "ratio": m / u}
    return out


# ---- speculative decoding -------------------------------------------------------------------

SPECULATION_PROMPTS = {
    # a tool call whose arguments copy the request: drafts from n-grams of the context
    "copy": "Repeat the following order note exactly, word for word: Order A1001 for Maria Lopez, "
            "two boxes of green tea and one ceramic teapot, ship to 14 Harbour Street, Leith, "
            "Edinburgh, before Friday the 12th of December, gift wrapped, no invoice in the parcel.",
    # free text the context does not predict
    "free": "Write a short paragraph about why people enjoy walking in the mountains.",
}


def run_speculative(loaded: LoadedModel, engine: Engine, bases, decode_tokens: int, repeats: int) -> dict:
    """Greedy decode time per generated token with speculation (8 drafted tokens) against without.

    Same prompt, same output (checked); the ratio is what speculation saves on that kind of text.
    """
    out: dict[str, Any] = {}
    for kind, text in SPECULATION_PROMPTS.items():
        ids = _user_prompt(loaded, text)
        per_token: dict[int, list[float]] = {0: [], 8: []}
        outputs: dict[int, list[int]] = {}
        drafted = accepted = 0
        for rep in range(repeats + 1):
            for k in (0, 8):  # interleaved
                before = (engine.stats.drafted_tokens, engine.stats.accepted_tokens)
                res = engine.generate(Request(ids, tuple(bases), max_tokens=decode_tokens, prefix_cache=False, speculative_tokens=k))
                outputs[k] = res.token_ids
                if rep and res.completion_tokens > 1:
                    per_token[k].append((res.total_seconds - res.time_to_first_token) / (res.completion_tokens - 1))
                    if k:
                        drafted += engine.stats.drafted_tokens - before[0]
                        accepted += engine.stats.accepted_tokens - before[1]
        out[kind] = {
            "tokens": len(outputs[0]),
            "same_output": outputs[0] == outputs[8],
            "per_token_s": {"off": _median(per_token[0]), "on": _median(per_token[8])},
            "speedup": _median(per_token[0]) / _median(per_token[8]),
            "acceptance": accepted / drafted if drafted else 0.0,
        }
    return out


# ---- an agent loop: the prefix cache ------------------------------------------------------


def _agent_tools(n: int = 14) -> list[dict]:
    topics = [
        ("get_order", "Look up an order in the shop database by its id", {"order_id": "The order id, like A1001"}),
        ("convert_currency", "Convert an amount of money between two currencies", {"amount": "The amount", "from_currency": "ISO code", "to_currency": "ISO code"}),
        ("add_days", "Add a number of days to a date", {"date": "ISO date", "days": "Days to add"}),
        ("get_weather", "Current weather for a city", {"city": "City name"}),
        ("search_products", "Search the product catalog by keyword", {"query": "Search words"}),
        ("track_package", "Tracking status of a parcel", {"tracking_number": "Carrier tracking number"}),
        ("list_events", "Calendar events on a date", {"date": "ISO date"}),
        ("stock_level", "Units in stock for a product", {"product_id": "Product id"}),
        ("send_email", "Send an email message", {"to": "Address", "subject": "Subject line", "body": "Text"}),
        ("translate", "Translate text into another language", {"text": "Text", "target_language": "Language code"}),
        ("geocode", "Coordinates of an address", {"address": "Street address"}),
        ("word_count", "Count the words of a text", {"text": "The text"}),
        ("compound_interest", "Future value with compound interest", {"principal": "Amount", "rate": "Yearly rate in percent", "years": "Years"}),
        ("time_in_zone", "Convert a time into another time zone", {"datetime": "ISO datetime", "timezone": "IANA zone"}),
    ]
    filler = (
        " It is meant for customer-support agents and returns a compact JSON object. Use it only when the "
        "request clearly asks for this information, and pass every argument exactly as the user gave it; "
        "never guess missing values, ask instead. Errors come back as an object with an 'error' field."
    )
    tools = []
    for name, desc, params in topics[:n]:
        props = {k: {"type": "string", "description": v + ". Required; no default."} for k, v in params.items()}
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": desc + "." + filler * 2,
                    "parameters": {"type": "object", "properties": props, "required": list(params)},
                },
            }
        )
    return tools


def run_agent_loop(loaded: LoadedModel, model: str | None, dtype: str, bases_n: int, repeats: int) -> dict:
    """TTFT of turns 2 and 3 of a tool loop, with and without the prefix cache (same outputs)."""
    from langchain_core.messages import HumanMessage, ToolMessage

    from ..chat_model import ChatAttentionBuckets

    tools = _agent_tools()
    results: dict[str, list[list[float]]] = {"cache": [], "no_cache": []}
    for rep in range(repeats + 1):
        for label, use_cache in (("cache", True), ("no_cache", False)):
            bases = list(bases_for(bases_n, loaded.base))
            llm = ChatAttentionBuckets(model=model, dtype=dtype, bases=bases, max_tokens=40, prefix_cache=use_cache)
            llm.clear_prefix_cache()
            bound = llm.bind_tools(tools, tool_choice="any")
            messages = [HumanMessage("Look up order A1001, convert its price to EUR and tell me the delivery date.")]
            ttfts = []
            for turn in range(3):
                ai = bound.invoke(messages)
                ttfts.append(ai.response_metadata["time_to_first_token"])
                messages.append(ai)
                for call in ai.tool_calls:
                    messages.append(ToolMessage(json.dumps({"ok": True, "turn": turn, "value": 129.99}), tool_call_id=call["id"]))
            if rep:
                results[label].append(ttfts)
    prompt_tokens = len(loaded.tokenizer.encode(json.dumps(tools)))
    out = {"tool_context_tokens_approx": prompt_tokens}
    for label, runs in results.items():
        out[label] = [_median([r[t] for r in runs]) for t in range(3)]
    out["speedup"] = [out["no_cache"][t] / out["cache"][t] for t in range(3)]
    return out


# ---- command ---------------------------------------------------------------------------------


def add_speed_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="hub id, folder or .gguf (default: the embedded model)")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--buckets", default="1,2,4,6,8", help="numbers of buckets (default 1,2,4,6,8)")
    p.add_argument("--lengths", default="256,1024,2048", help="prompt lengths in tokens (default 256,1024,2048)")
    p.add_argument("--decode-tokens", type=int, default=32, help="tokens generated per run (default 32)")
    p.add_argument("--repeats", type=int, default=3, help="counted runs per point, after one warm-up (default 3)")
    p.add_argument("--parts", default="buckets,sequential,hf,mask,spec,agent", help="which measurements: buckets, sequential, hf, mask, spec, agent, packed, dtype (default: all but packed and dtype)")
    p.add_argument("--output", default="bench-out/speed", help="folder for speed.json and speed.png")


def speed_main(args: argparse.Namespace) -> int:
    ns = [int(x) for x in args.buckets.split(",")]
    lengths = [int(x) for x in args.lengths.split(",")]
    parts = set(args.parts.split(","))
    loaded = load_model(ModelSpec(args.model, args.device, args.dtype))
    engine = Engine(loaded, prefix_cache_bytes=0)
    out: dict[str, Any] = {
        "model": loaded.name,
        "device": str(loaded.device),
        "dtype": str(loaded.dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "hardware": _hardware(loaded.device),
        "settings": {"buckets": ns, "lengths": lengths, "decode_tokens": args.decode_tokens, "repeats": args.repeats},
    }
    if "buckets" in parts or "sequential" in parts:
        out["buckets"] = []
        for length in lengths:
            prompt = make_prompt(loaded, length)
            one = None
            for n in ns:
                row = {"n": n, "length": length, **run_engine(engine, prompt, bases_for(n, loaded.base), args.decode_tokens, args.repeats)}
                one = one or row
                row["ttft_ratio"] = row["ttft_s"] / one["ttft_s"]
                row["decode_step_ratio"] = row["decode_step_s"] / one["decode_step_s"]
                if "sequential" in parts and n > 1:
                    seq = run_sequential(loaded, prompt, bases_for(n, loaded.base), args.decode_tokens, args.repeats)
                    row["sequential"] = seq
                    row["batched_speedup_ttft"] = seq["ttft_s"] / row["ttft_s"]
                    row["batched_speedup_decode"] = seq["decode_step_s"] / row["decode_step_s"]
                out["buckets"].append(row)
                _print_row(row)
    if "hf" in parts:
        out["hf"] = []
        for length in lengths:
            prompt = make_prompt(loaded, length)
            ours_runs, hf_runs = [], []
            for _ in range(args.repeats):  # interleaved, so drift of the machine hits both alike
                ours_runs.append(run_engine(engine, prompt, (loaded.base,), args.decode_tokens, 1))
                hf_runs.append(run_hf_generate(loaded, prompt, args.decode_tokens, 1))
            ours = {k: _median([r[k] for r in ours_runs]) for k in ("ttft_s", "decode_step_s")}
            hf = {k: _median([r[k] for r in hf_runs]) for k in ("ttft_s", "decode_step_s")}
            row = {"length": length, "ours": ours, "hf": hf, "decode_step_ratio": ours["decode_step_s"] / hf["decode_step_s"], "ttft_ratio": ours["ttft_s"] / hf["ttft_s"]}
            out["hf"].append(row)
            print(f"N=1 vs transformers generate, {length} tokens: TTFT x{row['ttft_ratio']:.3f}, decode step x{row['decode_step_ratio']:.3f}")
    if "packed" in parts:
        out["packed"] = pk = run_packed(loaded, make_prompt(loaded, lengths[0]), ns, args.decode_tokens, args.repeats)
        if "skipped" in pk:
            print(f"packed layers: skipped ({pk['skipped']})")
        for r in pk.get("rows", []):
            print(
                f"N={r['n']} L={lengths[0]}, packed / default layers (interleaved): decode step "
                f"{r['packed']['decode_step_s'] * 1e3:.1f} / {r['default']['decode_step_s'] * 1e3:.1f} ms "
                f"(x{r['packed']['decode_step_ratio']:.2f} / x{r['default']['decode_step_ratio']:.2f} of N={ns[0]}), "
                f"TTFT {r['packed']['ttft_s']:.2f} / {r['default']['ttft_s']:.2f} s"
            )
    if "dtype" in parts:
        out["dtype"] = d = run_dtype(args.model, args.device, lengths[0], args.decode_tokens, args.repeats)
        print(
            f"bfloat16 vs float32, {lengths[0]} tokens: prefill x{d['prefill_ratio_bf16_vs_fp32']:.2f}, decode step "
            f"x{d['decode_ratio_bf16_vs_fp32']:.2f}; greedy answers identical {d['agreement']['identical_answers']}"
            f"/{d['agreement']['questions']}, shared prefix {d['agreement']['mean_shared_prefix']:.0%}"
        )
    if "mask" in parts:
        prompt = make_prompt(loaded, lengths[0])
        out["mask"] = {}
        for n in sorted({1, max(ns)}):
            out["mask"][f"n={n}"] = m = run_mask(loaded, engine, prompt, bases_for(n, loaded.base), args.decode_tokens, args.repeats)
            print(f"grammar mask, N={n}, {lengths[0]} tokens: " + ", ".join(
                f"{k} {v['decode_step_s'] * 1e3:.1f} ms against {v['unmasked_step_s'] * 1e3:.1f} ms unmasked "
                f"(x{v['ratio']:.3f}, {v['tokens']} tokens)" for k, v in m.items()))
    if "spec" in parts:
        out["spec"] = {}
        for n in sorted({1, max(ns)}):
            out["spec"][f"n={n}"] = sp = run_speculative(loaded, engine, bases_for(n, loaded.base), args.decode_tokens, args.repeats)
            print(f"speculative decoding, N={n}: " + ", ".join(
                f"{k} x{v['speedup']:.2f} per token (acceptance {v['acceptance']:.0%}, same output {v['same_output']})" for k, v in sp.items()))
    if "agent" in parts:
        out["agent"] = run_agent_loop(loaded, args.model, args.dtype, 6, args.repeats)
        a = out["agent"]
        print(
            "agent loop (6 buckets), TTFT per turn with / without prefix cache: "
            + ", ".join(f"turn {t + 1}: {a['cache'][t]:.2f}s / {a['no_cache'][t]:.2f}s (x{a['speedup'][t]:.1f})" for t in range(3))
        )
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "speed.json").write_text(json.dumps(out, indent=2))
    if out.get("buckets"):
        plot_speed(out, folder / "speed.png")
    print(f"wrote {folder / 'speed.json'}")
    return 0


def _print_row(row: dict) -> None:
    seq = ""
    if "sequential" in row:
        seq = f" | sequential bases: TTFT x{row['batched_speedup_ttft']:.2f} slower, decode x{row['batched_speedup_decode']:.2f} slower"
    print(
        f"N={row['n']} L={row['length']}: TTFT {row['ttft_s'] * 1e3:.0f} ms (x{row['ttft_ratio']:.2f}), "
        f"decode step {row['decode_step_s'] * 1e3:.1f} ms (x{row['decode_step_ratio']:.2f}), "
        f"KV {row['kv_bytes'] / 2**20:.0f} MiB, peak +{row['peak_bytes'] / 2**20:.0f} MiB{seq}"
    )


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def plot_speed(out: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    rows = out["buckets"]
    for ax, key, title in ((fig.add_subplot(1, 2, 1), "ttft_ratio", "prefill (time to first token)"), (fig.add_subplot(1, 2, 2), "decode_step_ratio", "decode step")):
        for length in sorted({r["length"] for r in rows}):
            pts = [r for r in rows if r["length"] == length]
            ax.plot([r["n"] for r in pts], [r[key] for r in pts], marker="o", label=f"{length} tokens")
        ns = sorted({r["n"] for r in rows})
        ax.plot(ns, ns, ls="--", color="grey", label="N x (no sharing)")
        ax.set_xlabel("buckets N")
        ax.set_ylabel("time / time at N = 1")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle(f"{out['model']} on {out['device']} ({out['dtype']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
