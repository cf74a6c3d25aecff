"""`attention-buckets bench compare`: several accuracy runs side by side.

Reads the `results.json` of each run folder (`bench accuracy`, or a `tune` folder's `dev/` and
`test/` runs' results), and writes one table and one figure of every configuration's paired
difference to `plain` on the run's primary metric: the mean over positions and the worst
position, each with its paired bootstrap 95% CI, one panel per run (small multiples, the
intervals drawn as error bars). A configuration a run lacks is left blank, so candidates
screened on some tasks only still line up.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .accuracy import RESULTS_FILE


def load_run(folder: str | Path) -> dict[str, Any]:
    """The results.json of a run folder (or the file itself), with a clear error when missing."""
    path = Path(folder)
    path = path / RESULTS_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {RESULTS_FILE} (allowed: a folder written by 'bench accuracy', "
                                "or its results.json)")
    results = json.loads(path.read_text())
    if "settings" not in results or "summary" not in results:
        raise ValueError(f"{path}: not a 'bench accuracy' results file (no settings/summary)")
    return results


def rows(runs: Sequence[tuple[str, dict[str, Any]]], metric: str | None = None) -> list[dict[str, Any]]:
    """One row per (run, config): accuracy mean and worst, and the paired differences to plain."""
    out = []
    for label, res in runs:
        m = metric if metric in res["summary"]["metrics"] else res["settings"]["metrics"][0]
        block = res["summary"]["metrics"][m]
        for name, c in block["configs"].items():
            d = block["vs_baseline"].get(name)
            out.append({
                "run": label, "metric": m, "config": name, "n": res["settings"]["samples_per_position"],
                "mean": c["mean"]["accuracy"], "mean_ci": c["mean"]["ci"],
                "worst": c["worst"]["accuracy"], "worst_position": c["worst"]["position"],
                "d_mean": d["mean"]["diff"] if d else None, "d_mean_ci": d["mean"]["ci"] if d else None,
                "d_worst": d["worst"]["diff"] if d else None, "d_worst_ci": d["worst"]["ci"] if d else None,
                "wins": d["mean"]["wins"] if d else None, "losses": d["mean"]["losses"] if d else None,
                "seconds": res["summary"]["seconds_per_call"].get(name),
            })
    return out


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return ""
    return f"{100 * x:+.0f}" if signed else f"{100 * x:.0f}"


def _ci(ci: Sequence[float | None] | None, signed: bool = False) -> str:
    return f"[{_pct(ci[0], signed)}, {_pct(ci[1], signed)}]" if ci and None not in ci else ""


def markdown(table: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table: per run and config, accuracy and the paired differences."""
    lines = ["| run | config | mean % | worst % (pos) | Δmean vs plain [95% CI] | Δworst [95% CI] | +/- | s/call |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table:
        d_mean = f"{_pct(r['d_mean'], True)} {_ci(r['d_mean_ci'], True)}" if r["d_mean"] is not None else ""
        d_worst = f"{_pct(r['d_worst'], True)} {_ci(r['d_worst_ci'], True)}" if r["d_worst"] is not None else ""
        wl = f"+{r['wins']}/-{r['losses']}" if r["wins"] is not None else ""
        secs = f"{r['seconds']:.2f}" if r["seconds"] is not None else ""
        lines.append(f"| {r['run']} | {r['config']} | {_pct(r['mean'])} {_ci(r['mean_ci'])} | "
                     f"{_pct(r['worst'])} ({r['worst_position']}) | {d_mean} | {d_worst} | {wl} | {secs} |")
    return "\n".join(lines)


def plot_forest(table: list[dict[str, Any]], path: Path) -> Path:
    """Small multiples, one panel per run: each config's paired difference to plain (mean over
    positions, and worst position), with its 95% CI as an error bar; 0 marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = list(dict.fromkeys(r["run"] for r in table))
    configs = list(dict.fromkeys(r["config"] for r in table if r["d_mean"] is not None))
    fig = Figure(figsize=(2.7 * len(runs) + 1.4, max(2.8, 0.34 * len(configs) + 1.8)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(runs), sharex=True, sharey=True, squeeze=False)[0]  # one scale: panels compare
    for ax, run in zip(axes, runs):
        by = {r["config"]: r for r in table if r["run"] == run}
        for j, name in enumerate(configs):
            r = by.get(name)
            if r is None or r["d_mean"] is None:
                continue
            for shift, key, style in ((-0.15, "mean", "o"), (0.15, "worst", "s")):
                d, ci = r[f"d_{key}"], r[f"d_{key}_ci"]
                if d is None or ci is None or None in ci:
                    continue
                ax.errorbar([100 * d], [j + shift], xerr=[[100 * (d - ci[0])], [100 * (ci[1] - d)]], fmt=style,
                            markersize=4, capsize=2, color="C0" if key == "mean" else "C1",
                            label=f"{key} over positions" if key == "mean" else "worst position")
        ax.axvline(0, color="black", linewidth=0.8)
        n = next(r["n"] for r in table if r["run"] == run)
        ax.set_title(f"{run} (n={n}/position)", fontsize=9)
        ax.set_xlabel("accuracy − plain (points)", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(range(len(configs)), configs, fontsize=8)
    axes[0].set_ylim(len(configs) - 0.5, -0.5)  # first config on top, rows one unit apart
    handles, labels = axes[0].get_legend_handles_labels()
    keep = dict(zip(labels, handles))
    if keep:
        fig.legend(keep.values(), keep.keys(), loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path)
    return path


def parse_run(spec: str) -> tuple[str, str]:
    """"LABEL=FOLDER" or "FOLDER" (labelled by the folder's name)."""
    label, sep, folder = spec.partition("=")
    return (label, folder) if sep and label else (Path(spec).name, spec)


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="[LABEL=]FOLDER",
                        help="folders written by 'bench accuracy' (or their results.json), each optionally labelled")
    parser.add_argument("--metric", default=None, help="metric to compare (default: each run's primary one)")
    parser.add_argument("--output", default=None, help="PNG of the forest plot (default: none)")
    parser.add_argument("--markdown", default=None, help="write the table to this Markdown file too")


def compare_main(args: argparse.Namespace) -> int:
    """Run `attention-buckets bench compare` from parsed arguments; the exit status."""
    try:
        runs = [(label, load_run(folder)) for label, folder in map(parse_run, args.runs)]
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = rows(runs, args.metric)
    text = markdown(table)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.output:
        print(f"\nwrote {plot_forest(table, Path(args.output))}")
    return 0
