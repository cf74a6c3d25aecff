"""`attention-buckets bench accuracy`: accuracy against the position of the essential item.

Flow: `tasks.make_samples` builds questions x positions -> for each sample and
configuration, `evaluate` optionally reorders the items (`configs.reorder_items`),
builds the messages (and tools), calls the chat model and scores the reply ->
`cache.ResultCache` appends the record at once -> `aggregate` computes accuracy
per position, mean and worst position with bootstrap CIs (`stats`) and paired
differences against `plain` -> `results.json`, the table (`report`) and the
plots (`plots`) in the output folder.

Any `BaseChatModel` works: models come from a `ModelFactory`; the default one
builds `ChatAttentionBuckets`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from langchain_core.language_models import BaseChatModel

from ..progress import progress_bar
from .cache import ResultCache, record_key
from .configs import (
    BASELINE,
    CONFIGS,
    DEFAULT_CONFIGS,
    BenchConfig,
    ModelFactory,
    default_factory,
    key_config,
    parse_configs,
    reorder_items,
)
from .report import markdown_report
from .stats import LEVEL, bootstrap_indices, compare, consistency, summarize
from .tasks import TASKS, Sample, get_task

RECORDS_FILE = "records.jsonl"
RESULTS_FILE = "results.json"
TABLES_FILE = "tables.md"
N_RESAMPLES = 2000


def default_positions(n_items: int, k: int = 5) -> list[int]:
    """`k` positions spread evenly from the first item to the last."""
    return sorted({int(round(x)) for x in np.linspace(0, n_items - 1, min(k, n_items))})


def parse_positions(spec: str, n_items: int) -> list[int]:
    """Positions from "0,4,8"; negative indices count from the end (-1 = last)."""
    try:
        raw = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"positions must be comma-separated integers, got {spec!r}") from None
    out = sorted({p + n_items if p < 0 else p for p in raw})
    bad = [p for p in out if not 0 <= p < n_items]
    if not out or bad:
        raise ValueError(f"positions {spec!r} out of range: allowed 0..{n_items - 1} (or -{n_items}..-1)")
    return out


def evaluate(sample: Sample, config: BenchConfig, model: BaseChatModel) -> dict[str, Any]:
    """Run one sample under one configuration; the record without its key."""
    n = len(sample.items)
    order = reorder_items(sample.items) if config.reorder else list(range(n))
    items = [sample.items[j] for j in order]
    messages, tools = sample.messages(items), sample.tools(items)
    # one call is the answer: parallel calls off, so generation ends when the call closes
    runnable = model if tools is None else model.bind_tools(tools, tool_choice="any", parallel_tool_calls=False)
    t0 = time.perf_counter()
    reply = runnable.invoke(messages)
    seconds = time.perf_counter() - t0
    usage = getattr(reply, "usage_metadata", None) or {}
    text = reply.text if isinstance(reply.text, str) else str(reply.content)
    return {
        "task": sample.task,
        "config": config.name,
        "question": sample.question_index,
        "position": sample.position,
        "shown_position": order.index(sample.position),
        "order": order,
        "scores": sample.score(reply),
        "answer": sample.answer,
        "output": text[:2000],
        "tool_calls": [{"name": c["name"], "args": c["args"]} for c in getattr(reply, "tool_calls", [])],
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "seconds": round(seconds, 4),
        "sample_uid": sample.uid,
    }


def run_accuracy(
    task: str,
    *,
    configs: str | Sequence[str | BenchConfig] | None = None,
    factory: ModelFactory | None = None,
    positions: Sequence[int] | None = None,
    n_items: int | None = None,
    samples_per_position: int = 24,
    seed: int = 0,
    output: str | Path = "bench-results/accuracy",
    max_tokens: int | None = None,
    progress: bool | None = None,
    model: str | None = None,
    n_resamples: int = N_RESAMPLES,
    plots: bool = True,
    split: str | None = None,
    concurrency: int = 1,
) -> dict[str, Any]:
    """Measure accuracy by position for several configurations in one run.

    Args:
        task: "kv", "kv-short", "tools", "qa", or a JSONL file of the user's own items
            (`tasks.user`).
        configs: Names from `CONFIGS` (a list or "a,b") or `BenchConfig`s; default the
            `DEFAULT_CONFIGS` (the candidates run only when named).
        factory: Makes the chat model of a config; default `ChatAttentionBuckets`
            on `model` with `max_tokens`.
        positions: Positions of the essential item; default 5 spread over the items.
        n_items: Items per prompt; default the task's.
        samples_per_position: Questions; each is asked once at every position.
        seed: Seed of the data and of the bootstrap.
        output: Folder for records.jsonl, results.json and the plots.
        max_tokens: Reply length for the default factory; default the task's.
        progress: Show a progress bar (None: on a terminal, see ``progress.progress_enabled``).
        model: Model path or hub id for the default factory; also part of the cache key.
        n_resamples: Bootstrap resamples.
        plots: Write the PNG plots.
        split: "dev" or "test" (`TaskSpec.samples`; a built-in `tools` or `qa` test split holds
            held-out tools or documents); None: a built-in task's questions from `seed` (its dev
            data), a file's every row.
        concurrency: Calls run at once (threads; the engine batches their decoding). Results
            equal one-at-a-time calls up to floating-point rounding; higher throughput, longer
            seconds per call.

    Returns:
        The content of results.json: settings, summary and records.
    """
    # 1. settings and samples
    check_concurrency(concurrency)
    spec = get_task(task)
    n_items = n_items or spec.default_items
    positions = sorted(set(positions)) if positions is not None else default_positions(n_items)
    configs = parse_configs(configs if configs is not None else list(DEFAULT_CONFIGS))
    max_tokens = max_tokens or spec.max_tokens
    factory = factory or default_factory(model, max_tokens=max_tokens)
    samples = spec.samples(
        n_items=n_items, positions=positions, samples_per_position=samples_per_position, seed=seed, split=split
    )
    samples_per_position = len({s.question_index for s in samples})  # a file may hold fewer rows
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    key_settings = {"task": task, "model": model, "max_tokens": max_tokens}
    cache = ResultCache(out / RECORDS_FILE)
    keys = record_keys(samples, configs, key_settings)

    # 2. run what the cache lacks
    unique = set(keys.values())  # configs that run the same call share a key
    todo = sum(k not in cache for k in unique)
    t0 = time.perf_counter()
    with _progress(len(unique), len(unique) - todo, task, progress) as bar:
        _run_missing(samples, configs, factory, cache, keys, bar, spec.metrics[0], concurrency)
    elapsed = time.perf_counter() - t0

    # 3. aggregate and write
    records = cached_records(cache, keys)
    settings = {
        "task": task, "model": model, "n_items": n_items, "positions": positions,
        "samples_per_position": samples_per_position, "seed": seed, "split": split, "max_tokens": max_tokens,
        "configs": [c.to_dict() for c in configs], "metrics": list(spec.metrics),
        "baseline": BASELINE, "n_resamples": n_resamples, "level": LEVEL,
        "new_calls": todo, "seconds": round(elapsed, 2),
    }
    results = {
        "settings": settings,
        "summary": aggregate(records, configs, positions, samples_per_position, spec.metrics,
                             n_resamples=n_resamples, seed=seed),
        "records": records,
    }
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    (out / TABLES_FILE).write_text(markdown_report(results) + "\n")
    results["plots"] = []
    if plots:
        from .plots import plot_results  # lazy: matplotlib

        results["plots"] = [str(p) for p in plot_results(results, out)]
    return results


def check_concurrency(value: Any, name: str = "concurrency") -> None:
    """ValueError naming the value unless it is an integer >= 1 (calls run at once)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r}; allowed: an integer >= 1")


def record_keys(samples: Sequence[Sample], configs: Sequence[BenchConfig], settings: dict[str, Any]) -> dict:
    """{(question, position, config name): cache key}; configs that run the same call share a key
    (`configs.key_config`: the `default` config is keyed as what it resolves to)."""
    return {
        (s.question_index, s.position, c.name): record_key(
            settings, s.uid, key_config(c, tools_bound=s.tools(s.items) is not None)
        )
        for s in samples for c in configs
    }


def cached_records(cache: ResultCache, keys: dict) -> list[dict[str, Any]]:
    """The records of `keys`, each labelled with the config it was asked for (a shared record
    carries the name of the config that computed it)."""
    return [{**cache[k], "config": name} for (_, _, name), k in keys.items()]


def _run_missing(
    samples, configs, factory: ModelFactory, cache: ResultCache, keys: dict, bar, metric: str, concurrency: int = 1
) -> None:
    """Evaluate and append every (sample, config) the cache lacks, in `call_order`."""

    def done(key: str, record: dict[str, Any]) -> None:
        cache.append({"key": key, **record})
        bar.update()
        bar.set_postfix_str(_running_accuracy(cache, keys, configs, metric))

    todo, models = plan_calls(call_order(samples, configs, concurrency), keys, cache, factory, concurrency)
    execute(todo, models, done, concurrency)


def plan_calls(order, keys: dict, cache: ResultCache, factory: ModelFactory, concurrency: int = 1):
    """([(sample, config, key)] the cache lacks, each key once; {config name: chat model}), one
    model per config, made (and, for concurrent calls, loaded) before the calls start."""
    models: dict[str, BaseChatModel] = {}
    todo: list[tuple[Sample, BenchConfig, str]] = []
    planned: set[str] = set()
    for s, c in order:
        key = keys[(s.question_index, s.position, c.name)]
        if key in cache or key in planned:  # shared keys (`key_config`) are computed once
            continue
        if c.name not in models:
            models[c.name] = factory(c)
            load = getattr(models[c.name], "load", None)
            if callable(load) and concurrency > 1:
                load()  # now, not raced by the first calls' threads
        planned.add(key)
        todo.append((s, c, key))
    return todo, models


def execute(todo, models: dict, done: Callable[[str, dict], None], concurrency: int = 1,
            admit: Callable[[], bool] | None = None) -> None:
    """Run `todo` ((sample, config, key) triples) with at most `concurrency` calls at once, from
    threads, so the engine decodes them in one batch (continuous batching; results equal calls
    made one at a time up to floating-point rounding, docs/engine.md). `done(key, record)` runs in
    this thread as each call finishes; `admit()` runs before each call starts, and False stops
    the run (a budget). An error or Ctrl-C stops it too: calls already finished are kept."""
    pending = iter(todo)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-accuracy") as pool:
        running: dict = {}

        stopped = False

        def fill() -> None:
            nonlocal stopped
            while not stopped and len(running) < concurrency:
                nxt = next(pending, None)
                if nxt is None or (admit is not None and not admit()):
                    stopped = True
                    return
                s, c, key = nxt
                running[pool.submit(evaluate, s, c, models[c.name])] = key

        try:
            fill()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    done(running.pop(fut), fut.result())
                fill()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def call_order(samples: Sequence[Sample], configs: Sequence[BenchConfig], concurrency: int = 1,
               *, configs_first: bool = False) -> list:
    """(sample, config) pairs in chunks of `concurrency` samples. Configs whose prompts share keys
    and values in the engine's prefix cache (same bases, strategy, layers and item order: the
    merge-rule variants of one base set) run one after another on a chunk, so only the first of
    them prefills. Sample-major (default): every config of a chunk before the next chunk, so an
    interrupted run has every config of the samples done. `configs_first`: each such group of
    configs over every sample before the next group (a search that completes candidates)."""
    def prefill_group(c: BenchConfig) -> tuple:
        d = key_config(c, tools_bound=True)
        return (repr(d.get("bases")), d.get("strategy"), d.get("bucket_layers"), d.get("reorder"))

    groups: dict[tuple, list[BenchConfig]] = {}
    for c in configs:
        groups.setdefault(prefill_group(c), []).append(c)
    chunks = [samples[i:i + max(concurrency, 1)] for i in range(0, len(samples), max(concurrency, 1))]
    if configs_first:
        return [(s, c) for group in groups.values() for chunk in chunks for c in group for s in chunk]
    return [(s, c) for chunk in chunks for group in groups.values() for c in group for s in chunk]


def aggregate(
    records: Sequence[dict[str, Any]],
    configs: Sequence[BenchConfig],
    positions: Sequence[int],
    n_questions: int,
    metrics: Sequence[str],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Per metric: per-config summaries and paired comparisons with the baseline.

    Returns:
        {"tokens": {...}, "seconds_per_call": {name: median}, "metrics": {metric:
        {"configs": {name: summary}, "vs_baseline": {name: comparison}}}}; see
        `stats.summarize` and `stats.compare`.
    """
    col = {p: j for j, p in enumerate(positions)}
    idx = bootstrap_indices(n_questions, n_resamples, seed)  # shared: comparisons are paired
    names = [c.name for c in configs]
    out: dict[str, Any] = {"tokens": _token_stats(records), "seconds_per_call": {}, "metrics": {}}
    for name in names:
        secs = [r["seconds"] for r in records if r["config"] == name]
        out["seconds_per_call"][name] = float(np.median(secs)) if secs else None
    for metric in metrics:
        X = {name: np.full((n_questions, len(positions)), np.nan) for name in names}
        for r in records:
            X[r["config"]][r["question"], col[r["position"]]] = float(r["scores"][metric])
        per_config = {}
        for name in names:
            s = summarize(X[name], idx)
            for entry, p in zip(s["positions"], positions):
                entry["position"] = p
            s["worst"]["position"] = positions[s["worst"].pop("position_index")]
            s["consistency"] = consistency(X[name])
            per_config[name] = s
        vs = {}
        if BASELINE in X:
            for name in names:
                if name != BASELINE:
                    d = compare(X[name], X[BASELINE], idx)
                    for entry, p in zip(d["positions"], positions):
                        entry["position"] = p
                    vs[name] = d
        out["metrics"][metric] = {"configs": per_config, "vs_baseline": vs}
    return out


def _token_stats(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    toks = [r["input_tokens"] for r in records if r.get("input_tokens")]
    if not toks:
        return {"input_tokens_median": None, "input_tokens_min": None, "input_tokens_max": None}
    return {"input_tokens_median": float(np.median(toks)), "input_tokens_min": int(min(toks)),
            "input_tokens_max": int(max(toks))}


def _running_accuracy(cache: ResultCache, keys: dict, configs: Sequence[BenchConfig], metric: str) -> str:
    parts = []
    for c in configs:
        got = [cache[k]["scores"][metric] for (_, _, name), k in keys.items() if name == c.name and k in cache]
        if got:
            parts.append(f"{c.name} {100 * sum(got) / len(got):.0f}%")
    return " ".join(parts)


def _progress(total: int, done: int, task: str, enabled: bool | None):
    return progress_bar(total, initial=done, desc=f"bench accuracy {task}", unit="call", progress=enabled)


# ---- command line -----------------------------------------------------------------


def add_accuracy_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `attention-buckets bench accuracy` to `parser`."""
    parser.add_argument("--task", required=True, metavar="TASK",
                        help="kv (UUID pairs), kv-short (word -> number), tools (tool-in-the-middle), "
                             "qa (multi-document QA), or FILE.jsonl: your own tool-selection or "
                             "question-answer items (docs/bench.md, 'Your own data')")
    parser.add_argument("--split", default=None, choices=["dev", "test"],
                        help="only the dev or the test split (a file's 'split' field; for a built-in "
                             "task, test questions come from another seed, for tools and qa from held-out "
                             "tools and documents the dev split never shows); default: a file's every row")
    parser.add_argument("--model", default=None,
                        help="model path or hub id (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--items", type=int, default=None,
                        help="items per prompt (default per task: "
                             + ", ".join(f"{t} {s.default_items}" for t, s in TASKS.items())
                             + "; a file: its smallest row's count)")
    parser.add_argument("--positions", default=None,
                        help="positions of the essential item, e.g. 0,4,8,12,15 (-1 = last); "
                             "default: 5 spread over the items")
    parser.add_argument("--samples", type=int, default=24,
                        help="questions, each asked at every position (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the bootstrap (default 0)")
    parser.add_argument("--configs", default=",".join(c.name for c in DEFAULT_CONFIGS),
                        help=f"comma-separated configurations from: {', '.join(CONFIGS)} "
                             f"(default: {', '.join(c.name for c in DEFAULT_CONFIGS)})")
    parser.add_argument("--output", default=None,
                        help="output folder (default: bench-results/accuracy-TASK); re-running with "
                             "the same folder resumes")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="reply length (default per task: "
                             + ", ".join(f"{t} {s.max_tokens}" for t, s in TASKS.items()) + ")")
    parser.add_argument("--resamples", type=int, default=N_RESAMPLES,
                        help=f"bootstrap resamples (default {N_RESAMPLES})")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="calls run at once, decoded in one batch (default 1); higher throughput, "
                             "results equal up to floating-point rounding, seconds per call not comparable")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def task_arguments(args: argparse.Namespace, splits: Sequence[str | None]):
    """(task spec, items per prompt, positions or None) of a command's --task, --items and
    --positions; builds one sample per split so that a bad item count or an empty split fails
    now (ValueError, FileNotFoundError), not after the model has loaded."""
    spec = get_task(args.task)
    n_items = args.items or spec.default_items
    positions = parse_positions(args.positions, n_items) if args.positions else None
    for split in splits:
        spec.samples(n_items=n_items, positions=positions or [0], samples_per_position=1, seed=args.seed, split=split)
    return spec, n_items, positions


def accuracy_main(args: argparse.Namespace) -> int:
    """Run `attention-buckets bench accuracy` from parsed arguments; the exit status."""
    from .report import print_report

    try:
        _, n_items, positions = task_arguments(args, [args.split])
        configs = parse_configs(args.configs)
        check_concurrency(args.concurrency, "--concurrency")
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    output = args.output or f"bench-results/accuracy-{Path(args.task).stem}"
    results = run_accuracy(
        args.task, configs=configs, positions=positions, n_items=n_items,
        samples_per_position=args.samples, seed=args.seed, output=output,
        max_tokens=args.max_tokens, progress=False if args.no_progress else None, model=args.model,
        n_resamples=args.resamples, split=args.split, concurrency=args.concurrency,
    )
    print_report(results)
    print(f"\nwrote {Path(output) / RESULTS_FILE}, {Path(output) / RECORDS_FILE}, "
          + ", ".join(results["plots"]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m langchain_attention_buckets.bench.accuracy",
                                     description="Accuracy against the position of the essential item.")
    add_accuracy_arguments(parser)
    return accuracy_main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
