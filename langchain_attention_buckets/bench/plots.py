"""PNG plots of accuracy by position (matplotlib's Agg canvas; no pyplot state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _slug(metric: str) -> str:
    return metric.replace("+", "_")


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _bars(ax, xs: list[float], ys: list[float], cis: list, label: str) -> None:
    """Points joined by a thin line, each with its interval as an error bar (bands of several
    configurations overlap into an unreadable smear; dodged bars stay apart)."""
    lo = [max(0.0, y - _nan(c[0])) for y, c in zip(ys, cis)]
    hi = [max(0.0, _nan(c[1]) - y) for y, c in zip(ys, cis)]
    ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", markersize=4, capsize=3, linewidth=0.8, elinewidth=1.2, label=label)


def plot_accuracy(results: dict[str, Any], metric: str, path: Path) -> Path:
    """Accuracy vs position, one series per configuration, each position with its Wilson interval."""
    s = results["settings"]
    fig, ax = _figure()
    configs = results["summary"]["metrics"][metric]["configs"]
    for k, (name, c) in enumerate(configs.items()):
        xs = _dodge([e["position"] for e in c["positions"]], k, len(configs))
        ys = [_nan(e["accuracy"]) for e in c["positions"]]
        _bars(ax, xs, ys, [e["ci"] for e in c["positions"]], f"{name} (mean {100 * (c['mean']['accuracy'] or 0):.0f}%)")
    ax.set_xlabel(f"position of the essential item (0 = first of {s['n_items']}; "
                  "for +reorder: its rank before reordering)")
    ax.set_ylabel(f"accuracy ({metric})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(s["positions"])
    ax.set_title(f"{s['task']}: {s['samples_per_position']} questions per position, "
                 f"{100 * s['level']:.0f}% Wilson intervals", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_differences(results: dict[str, Any], metric: str, path: Path) -> Path:
    """Paired difference to the baseline by position, with paired bootstrap intervals as error bars."""
    s = results["settings"]
    fig, ax = _figure()
    diffs = results["summary"]["metrics"][metric]["vs_baseline"]
    for k, (name, d) in enumerate(diffs.items()):
        xs = _dodge([e["position"] for e in d["positions"]], k, len(diffs))
        _bars(ax, xs, [_nan(e["diff"]) for e in d["positions"]], [e["ci"] for e in d["positions"]], name)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("position of the essential item")
    ax.set_ylabel(f"accuracy − {s['baseline']} ({metric})")
    ax.set_xticks(s["positions"])
    ax.set_title(f"{s['task']}: paired difference to {s['baseline']}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_results(results: dict[str, Any], output: Path) -> list[Path]:
    """All plots of a run, written to `output`; their paths."""
    paths = []
    for metric in results["settings"]["metrics"]:
        paths.append(plot_accuracy(results, metric, output / f"accuracy_{_slug(metric)}.png"))
        if results["summary"]["metrics"][metric]["vs_baseline"]:
            paths.append(plot_differences(results, metric, output / f"diff_vs_baseline_{_slug(metric)}.png"))
    return paths


def _dodge(xs: list[int], k: int, n: int) -> list[float]:
    """Shift line k of n sideways a little, so equal values stay visible."""
    width = 0.025 * (max(xs) - min(xs) + 1) if xs else 0
    return [x + (k - (n - 1) / 2) * width for x in xs]


def _nan(x: float | None) -> float:
    return float("nan") if x is None else x
