"""`attention-buckets tune`: choose a configuration on a dev split, judge it on a test split, write a preset.

Flow: the candidates (`configs.CONFIGS`, every entry a chat model can run alone, so not the
`reorder` ones; or `--configs`; `plain` always, first) -> the task's dev samples
(`TaskSpec.samples(split="dev")`) -> `search`: one candidate after another, each over every dev
sample, through `accuracy.evaluate`, every result appended at once to `DIR/dev/records.jsonl`
(the bench's `ResultCache`, so a re-run skips what is done) until the `Budget` is spent ->
`choose` (`RULE`) among the candidates evaluated on every dev sample -> `accuracy.run_accuracy`
on the test split with the chosen one and `plain` (`DIR/test/`: paired bootstrap CIs of the
difference, tables, plots) -> `DIR/tune.json`, `DIR/preset.json` (for
`ChatAttentionBuckets(preset=...)`) and the summary on the terminal.

For the built-in `tools` and `qa` the test split holds tool sets and documents the dev split
never shows (`tasks.tool_catalog.HELDOUT_CATALOG`, `tasks.qa.HELDOUT_RELATIONS`): the choice is
judged on data that neither the search nor the candidates' design saw.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..progress import progress_bar
from .accuracy import (
    N_RESAMPLES,
    RECORDS_FILE,
    aggregate,
    cached_records,
    call_order,
    check_concurrency,
    default_positions,
    execute,
    plan_calls,
    record_keys,
    run_accuracy,
    task_arguments,
)
from .cache import ResultCache
from .configs import BASELINE, CONFIGS, BenchConfig, ModelFactory, default_factory, parse_configs
from .tasks import TASKS, get_task

PRESET_FILE = "preset.json"
TUNE_FILE = "tune.json"
RULE = ("the highest dev mean accuracy (primary metric, mean over positions) among the candidates "
        "evaluated on every dev sample; ties: plain first, then the fewest seconds per call, then "
        "the order of the candidates")


@dataclass
class Budget:
    """How much new work the dev search may do: model calls, wall-clock seconds, or both (None: no limit).

    Cached results are free, so a re-run with the same budget goes on where the last one stopped.
    """

    calls: int | None = None
    seconds: float | None = None
    clock: Callable[[], float] = time.monotonic
    used: int = 0
    start: float | None = field(default=None, init=False)

    def begin(self) -> None:
        self.start = self.clock()

    def spent(self) -> bool:
        if self.calls is not None and self.used >= self.calls:
            return True
        return self.seconds is not None and self.clock() - (self.start or self.clock()) >= self.seconds

    def __str__(self) -> str:
        parts = ([f"{self.calls} calls"] if self.calls is not None else []) + (
            [f"{self.seconds / 60:g} minutes"] if self.seconds is not None else [])
        return " or ".join(parts) or "none"


def parse_budget(spec: str | None) -> Budget:
    """ "200" or "200calls" -> 200 model calls; "30m" or "30min" -> 30 minutes; None -> no limit."""
    if spec is None:
        return Budget()
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(calls?|m|min|minutes?)?\s*", spec)
    if not m or (m.group(2) or "calls").startswith("call") and "." in m.group(1):
        raise ValueError(f"budget {spec!r}: allowed N calls ('200', '200calls') or X minutes ('30m', '1.5min')")
    value, unit = float(m.group(1)), m.group(2) or "calls"
    return Budget(calls=int(value)) if unit.startswith("call") else Budget(seconds=value * 60)


def candidates(configs: str | Sequence[str | BenchConfig] | None = None) -> list[BenchConfig]:
    """The configurations to search, `plain` first: `configs`, or every registry entry a chat model
    can run (reordering the context is not a chat-model setting, so `reorder` entries are left out)."""
    chosen = parse_configs(configs) if configs is not None else [c for c in CONFIGS.values() if not c.reorder]
    bad = [c.name for c in chosen if c.reorder]
    if bad:
        raise ValueError(f"{', '.join(bad)}: reorder=True is not a chat-model setting, so it cannot be a preset; "
                         f"allowed: configurations without reorder ({', '.join(n for n, c in CONFIGS.items() if not c.reorder)})")
    for c in chosen:
        _check_settings(c)
    rest = [c for c in chosen if c.name != BASELINE]
    return [CONFIGS[BASELINE] if BASELINE in CONFIGS else BenchConfig(BASELINE)] + rest


def grid(configs: Sequence[BenchConfig]) -> list[BenchConfig]:
    """`configs` and, after them, every base set among them with every merge rule (`merge.MERGE_RULES`)
    that no config already pairs it with; a generated config is named "BASES/RULE"."""
    from ..engine.merge import MERGE_RULES

    sets = list(dict.fromkeys(c.bases for c in configs if c.bases is not None))
    have = {(c.bases, c.aggregation) for c in configs}
    extra = [BenchConfig(f"{_label(b)}/{rule}", bases=b, aggregation=rule)
             for b in sets for rule in MERGE_RULES if (b, rule) not in have]
    return [*configs, *extra]


def _label(bases: Any) -> str:
    return bases if isinstance(bases, str) else "x".join(f"{b:g}" for b in np.atleast_1d(bases))


def _check_settings(config: BenchConfig) -> None:
    """A candidate's preset must be chat-model settings: refused before any call, not after the search."""
    from ..chat.model import ChatAttentionBuckets  # lazy: torch, transformers

    fields = set(ChatAttentionBuckets.model_fields)
    unknown = sorted(k for k, v in config.to_dict().items() if k not in ("name", "reorder") and v is not None
                     and k not in fields)
    if unknown:
        raise ValueError(f"config {config.name!r} sets {', '.join(unknown)}, which ChatAttentionBuckets does not "
                         "take, so it cannot be a preset; allowed: configurations of chat-model fields")


def search(samples, configs: Sequence[BenchConfig], factory: ModelFactory, cache: ResultCache,
           keys: dict, budget: Budget, progress: bool | None = None, concurrency: int = 1) -> dict[str, int]:
    """Evaluate each config on every sample, skipping cached results, until the budget is spent;
    {config name: samples done}. Candidates run one after another (a budget leaves whole
    candidates done), the merge-rule variants of one base set together on each chunk of
    `concurrency` samples so that they share the prefill (`accuracy.call_order`)."""
    todo, models = plan_calls(call_order(samples, configs, concurrency, configs_first=True), keys, cache, factory,
                              concurrency)
    unique = set(keys.values())
    budget.begin()

    def admit() -> bool:
        if budget.spent():
            return False
        budget.used += 1
        return True

    with progress_bar(len(unique), initial=sum(k in cache for k in unique), desc="tune dev", unit="call",
                      progress=progress) as bar:
        def done(key: str, record: dict[str, Any]) -> None:
            cache.append({"key": key, **record})
            bar.update()
            bar.set_postfix_str(record["config"])

        execute(todo, models, done, concurrency, admit)
    return {c.name: sum(keys[(s.question_index, s.position, c.name)] in cache for s in samples) for c in configs}


def choose(summary: dict[str, Any], configs: Sequence[BenchConfig], metric: str) -> str:
    """The name `RULE` picks among the configs in `summary` (all fully evaluated)."""
    per = summary["metrics"][metric]["configs"]
    order = {c.name: j for j, c in enumerate(configs)}

    def rank(name: str) -> tuple:
        secs = summary["seconds_per_call"].get(name) or 0.0
        return (-round(per[name]["mean"]["accuracy"], 9), name != BASELINE, secs, order[name])

    return min(per, key=rank)


def preset_of(config: BenchConfig, own_base: Callable[[], float]) -> dict[str, Any]:
    """The chat-model settings of `config`: its fields but the name and `reorder`; no bases (the
    plain model) becomes the model's own base."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("name", "reorder")}
    if config.bases is None:
        settings["bases"] = float(own_base())
    return {k: v for k, v in settings.items() if v is not None}


def run_tune(
    task: str,
    *,
    configs: str | Sequence[str | BenchConfig] | None = None,
    with_grid: bool = False,
    factory: ModelFactory | None = None,
    model: str | None = None,
    budget: Budget | str | None = None,
    output: str | Path | None = None,
    positions: Sequence[int] | None = None,
    n_items: int | None = None,
    samples: int = 12,
    test_samples: int = 24,
    seed: int = 0,
    max_tokens: int | None = None,
    progress: bool | None = None,
    n_resamples: int = N_RESAMPLES,
    own_base: Callable[[], float] | None = None,
    plots: bool = True,
    concurrency: int = 1,
) -> dict[str, Any]:
    """Search the candidates on the dev split, test the chosen one against `plain`, write the preset.

    A built-in `tools` or `qa` task's test split holds tools or documents the dev split never
    shows (`tasks.TaskSpec.samples`).

    Args:
        task: A built-in task name or a user JSONL file (`tasks.user`).
        configs: Candidates (names or `BenchConfig`s); default `candidates()`. `plain` is always added.
        with_grid: Add every base set of the candidates with every merge rule (`grid`).
        factory: Makes the chat model of a config; default `ChatAttentionBuckets` on `model`.
        model: Model path or hub id (the default factory's, and part of the cache key).
        budget: Limit of the dev search: a `Budget` or "200" (calls) / "30m" (minutes); None: none.
        output: Folder of dev/, test/, tune.json, preset.json; re-running with it resumes.
        positions: Positions of the essential item; default first, middle and last.
        n_items: Items per prompt; default the task's.
        samples: Dev questions (each asked at every position).
        test_samples: Test questions.
        seed: Seed of the built-in tasks' data and of the bootstrap.
        max_tokens: Reply length; default the task's.
        progress: Progress bars (None: on a terminal).
        n_resamples: Bootstrap resamples.
        own_base: The model's own rope base, for a preset of the plain model; default: loaded.
        plots: Write the test split's plots.
        concurrency: Calls run at once (`accuracy.execute`); results equal up to rounding.

    Returns:
        The content of tune.json (see docs/bench.md); no "chosen" when the budget ran out before
        `plain` was evaluated on every dev sample.
    """
    # 1. settings, candidates, dev samples
    check_concurrency(concurrency)
    spec = get_task(task)
    n_items = n_items or spec.default_items
    positions = sorted(set(positions)) if positions is not None else default_positions(n_items, 3)
    configs = grid(candidates(configs)) if with_grid else candidates(configs)
    max_tokens = max_tokens or spec.max_tokens
    factory = factory or default_factory(model, max_tokens=max_tokens)
    budget = budget if isinstance(budget, Budget) else parse_budget(budget)
    out = Path(output or f"bench-results/tune-{Path(task).stem}")
    (out / "dev").mkdir(parents=True, exist_ok=True)
    dev = spec.samples(n_items=n_items, positions=positions, samples_per_position=samples, seed=seed, split="dev")
    key_settings = {"task": task, "model": model, "max_tokens": max_tokens}  # as bench accuracy's
    keys = record_keys(dev, configs, key_settings)

    # 2. the dev search, as far as the budget goes
    cache = ResultCache(out / "dev" / RECORDS_FILE)
    t0 = time.perf_counter()
    done = search(dev, configs, factory, cache, keys, budget, progress, concurrency)
    complete = [c for c in configs if done[c.name] == len(dev)]
    results: dict[str, Any] = {
        "settings": {"task": task, "model": model, "n_items": n_items, "positions": positions,
                     "dev_samples": len({s.question_index for s in dev}), "test_samples": test_samples,
                     "seed": seed, "max_tokens": max_tokens, "budget": str(budget), "rule": RULE,
                     "metric": spec.metrics[0], "new_dev_calls": budget.used,
                     "dev_seconds": round(time.perf_counter() - t0, 2)},
        "candidates": [{"name": c.name, "config": c.to_dict(), "done": done[c.name], "total": len(dev)}
                       for c in configs],
        "not_evaluated": [c.name for c in configs if done[c.name] < len(dev)],
    }
    if BASELINE not in {c.name for c in complete}:
        _write(out / TUNE_FILE, results)
        return results

    # 3. choose on dev
    done_names = {c.name for c in complete}
    records = cached_records(cache, {k: v for k, v in keys.items() if k[2] in done_names})
    results["dev"] = aggregate(records, complete, positions, results["settings"]["dev_samples"], spec.metrics,
                               n_resamples=n_resamples, seed=seed)
    best = next(c for c in complete if c.name == choose(results["dev"], complete, spec.metrics[0]))
    results["chosen"] = best.name

    # 4. the chosen one against plain on the test split
    test_configs = [configs[0]] + ([best] if best.name != BASELINE else [])
    test = run_accuracy(task, configs=test_configs, factory=factory, positions=positions, n_items=n_items,
                        samples_per_position=test_samples, seed=seed, output=out / "test", max_tokens=max_tokens,
                        progress=progress, model=model, n_resamples=n_resamples, plots=plots, split="test",
                        concurrency=concurrency)
    results["test"] = {"settings": test["settings"], "summary": test["summary"], "plots": test["plots"]}

    # 5. the preset
    own = own_base or (lambda: _own_base(model))
    results["preset"] = {**preset_of(best, own), "tuned": _provenance(results, best)}
    (out / PRESET_FILE).write_text(json.dumps(results["preset"], indent=1) + "\n")
    _write(out / TUNE_FILE, results)
    return results


def _own_base(model: str | None) -> float:
    from ..chat.model import ChatAttentionBuckets  # lazy: torch, transformers

    return float(ChatAttentionBuckets(model=model).load().base)


def _provenance(results: dict[str, Any], best: BenchConfig) -> dict[str, Any]:
    """What the preset was chosen on and how it did: the preset's "tuned" entry (ignored by the chat model)."""
    s, metric = results["settings"], results["settings"]["metric"]
    test = results["test"]["summary"]["metrics"][metric]
    out = {"config": best.name, "task": s["task"], "model": s["model"], "metric": metric, "rule": RULE,
           "dev_mean": results["dev"]["metrics"][metric]["configs"][best.name]["mean"],
           "test_mean": test["configs"][best.name]["mean"],
           "test_plain_mean": test["configs"][BASELINE]["mean"]}
    if best.name in test["vs_baseline"]:
        out["test_vs_plain"] = test["vs_baseline"][best.name]["mean"]
    return out


def _write(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=_plain) + "\n")


def _plain(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else str(x)


# ---- report and command line ------------------------------------------------------


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _ci(ci: Sequence[float | None], signed: bool = False) -> str:
    f = "{:+.0f}" if signed else "{:.0f}"
    return "[" + ", ".join("-" if v is None else f.format(100 * v) for v in ci) + "]"


def format_tune(results: dict[str, Any], out: Path | None = None) -> str:
    """The terminal summary: the dev table, what was not evaluated, the test comparison, the preset."""
    s, metric = results["settings"], results["settings"]["metric"]
    lines = [f"tune {s['task']} (model {s['model'] or 'embedded'}): {s['dev_samples']} dev questions x "
             f"{len(s['positions'])} positions {s['positions']}, metric {metric!r}; budget {s['budget']}, "
             f"{s['new_dev_calls']} new dev calls",
             f"{'candidate':<22} {'dev mean [95% CI]':>20} {'worst position':>15} {'s/call':>7}"]
    dev = results.get("dev", {"metrics": {metric: {"configs": {}}}, "seconds_per_call": {}})
    for c in results["candidates"]:
        d = dev["metrics"][metric]["configs"].get(c["name"])
        if d is None:
            lines.append(f"{c['name']:<22} not evaluated: {c['done']} of {c['total']} dev samples (budget)")
            continue
        worst = f"{_pct(d['worst']['accuracy'])} (pos {d['worst']['position']})"
        secs = dev["seconds_per_call"].get(c["name"])
        lines.append(f"{c['name']:<22} {_pct(d['mean']['accuracy']) + ' ' + _ci(d['mean']['ci']):>20} "
                     f"{worst:>15} {secs or 0:>7.2f}")
    if results["not_evaluated"]:
        lines.append(f"the budget stopped the search: not evaluated on every dev sample: "
                     f"{', '.join(results['not_evaluated'])} (re-run with the same --out to go on)")
    if "chosen" not in results:
        lines.append(f"nothing chosen: {BASELINE!r} was not evaluated on every dev sample; give a larger --budget")
        return "\n".join(lines)
    lines += [f"chosen: {results['chosen']} (rule: {s['rule']})", *_test_lines(results, metric)]
    settings = {k: v for k, v in results["preset"].items() if k != "tuned"}
    where = out / PRESET_FILE if out else PRESET_FILE
    lines += [f"wrote {where}: ChatAttentionBuckets(preset={str(where)!r})", "or paste:"]
    lines += [f"    {k}={v!r}" for k, v in settings.items()]
    return "\n".join(lines)


def _test_lines(results: dict[str, Any], metric: str) -> list[str]:
    t = results["test"]["summary"]["metrics"][metric]
    n = results["test"]["settings"]["samples_per_position"]
    lines = [f"test split ({n} questions x {len(results['settings']['positions'])} positions, none seen in the search):"]
    for name, d in t["configs"].items():
        lines.append(f"    {name:<22} mean {_pct(d['mean']['accuracy'])} {_ci(d['mean']['ci'])}, "
                     f"worst {_pct(d['worst']['accuracy'])} (pos {d['worst']['position']})")
    if results["chosen"] == BASELINE:
        lines.append(f"    (the chosen one is {BASELINE}: nothing to compare)")
    for name, d in t["vs_baseline"].items():
        m = d["mean"]
        lines.append(f"    {name} - {BASELINE}: {100 * m['diff']:+.1f} points, paired 95% CI "
                     f"{_ci(m['ci'], signed=True)}, {m['wins']} wins / {m['losses']} losses")
    return lines


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `attention-buckets tune` to `parser`."""
    tunable = [n for n, c in CONFIGS.items() if not c.reorder]
    parser.add_argument("--task", required=True, metavar="TASK",
                        help=f"{', '.join(TASKS)}, or FILE.jsonl: your own items (docs/bench.md, 'Your own data')")
    parser.add_argument("--model", default=None, help="model path or hub id (default: the embedded model)")
    parser.add_argument("--configs", default=None,
                        help=f"comma-separated candidates (default: {', '.join(tunable)}); plain is always added")
    parser.add_argument("--grid", action="store_true",
                        help="also try every base set of the candidates with every merge rule (after them)")
    parser.add_argument("--budget", default=None,
                        help="limit of the dev search: N model calls ('200') or X minutes ('30m'); "
                             "cached results are free (default: none)")
    parser.add_argument("--out", "--output", dest="output", default=None,
                        help="output folder (default: bench-results/tune-TASK); re-running with it resumes")
    parser.add_argument("--items", type=int, default=None, help="items per prompt (default: the task's)")
    parser.add_argument("--positions", default=None,
                        help="positions of the essential item, e.g. 0,8,15 (-1 = last; default: first, middle, last)")
    parser.add_argument("--samples", type=int, default=12, help="dev questions, each at every position (default 12)")
    parser.add_argument("--test-samples", type=int, default=24,
                        help="test questions (default 24); for tools and qa from held-out tools and "
                             "documents the dev split never shows")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the bootstrap (default 0)")
    parser.add_argument("--max-tokens", type=int, default=None, help="reply length (default: the task's)")
    parser.add_argument("--resamples", type=int, default=N_RESAMPLES, help=f"bootstrap resamples (default {N_RESAMPLES})")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="calls run at once, decoded in one batch (default 1); results equal up to rounding")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def tune_main(args: argparse.Namespace) -> int:
    """Run `attention-buckets tune` from parsed arguments; the exit status (1: nothing chosen)."""
    try:
        _, n_items, positions = task_arguments(args, ["dev", "test"])  # both splits must have rows
        configs = candidates(args.configs)
        budget = parse_budget(args.budget)
        check_concurrency(args.concurrency, "--concurrency")
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    output = Path(args.output or f"bench-results/tune-{Path(args.task).stem}")
    results = run_tune(args.task, configs=configs, with_grid=args.grid, model=args.model, budget=budget, output=output,
                       positions=positions, n_items=n_items, samples=args.samples, test_samples=args.test_samples,
                       seed=args.seed, max_tokens=args.max_tokens, progress=False if args.no_progress else None,
                       n_resamples=args.resamples, concurrency=args.concurrency)
    print(format_tune(results, output))
    return 0 if "chosen" in results else 1
