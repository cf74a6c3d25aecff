"""The accuracy table for people: plain text, or `rich` when it is installed."""

from __future__ import annotations

import sys
from typing import Any, Sequence


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}"


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.0f}"


def _ci(ci: Sequence[float | None], signed: bool = False) -> str:
    f = _signed if signed else _pct
    return f"[{f(ci[0])},{f(ci[1])}]"


def position_rows(results: dict[str, Any], metric: str) -> tuple[list[str], list[list[str]]]:
    """Accuracy [CI] per configuration and position, with the sample count in the header."""
    s = results["settings"]
    configs = results["summary"]["metrics"][metric]["configs"]
    counts = [min(c["positions"][j]["n"] for c in configs.values()) for j in range(len(s["positions"]))]
    header = ["config"] + [f"pos {p} (n={n})" for p, n in zip(s["positions"], counts)]
    rows = [[name] + [f"{_pct(e['accuracy'])} {_ci(e['ci'])}" for e in c["positions"]]
            for name, c in configs.items()]
    return header, rows


def summary_rows(results: dict[str, Any], metric: str) -> tuple[list[str], list[list[str]]]:
    """Mean and worst position per configuration, and paired differences to the baseline."""
    s = results["settings"]
    m = results["summary"]["metrics"][metric]
    header = ["config", "mean", "worst (pos)"]
    has_vs = bool(m["vs_baseline"])
    if has_vs:
        header += [f"Δmean vs {s['baseline']}", "Δworst", "+/-"]
    header += ["right at all/some/no pos.", "s/call"]
    rows = []
    for name, c in m["configs"].items():
        w = c["worst"]
        row = [name, f"{_pct(c['mean']['accuracy'])} {_ci(c['mean']['ci'])}",
               f"{_pct(w['accuracy'])} {_ci(w['ci'])} ({w['position']})"]
        if has_vs:
            d = m["vs_baseline"].get(name)
            row += ["", "", ""] if d is None else [
                f"{_signed(d['mean']['diff'])} {_ci(d['mean']['ci'], True)}",
                f"{_signed(d['worst']['diff'])} {_ci(d['worst']['ci'], True)}",
                f"+{d['mean']['wins']}/-{d['mean']['losses']}",
            ]
        k = c["consistency"]
        row.append(f"{k['always']}/{k['sometimes']}/{k['never']}")
        sec = results["summary"]["seconds_per_call"].get(name)
        row.append("-" if sec is None else f"{sec:.2f}")
        rows.append(row)
    return header, rows


def title(results: dict[str, Any], metric: str) -> str:
    s = results["settings"]
    tok = results["summary"]["tokens"]["input_tokens_median"]
    ctx = f", ~{tok:.0f} prompt tokens" if tok else ""
    return (f"{s['task']}: {s['samples_per_position']} questions x {len(s['positions'])} positions, "
            f"{s['n_items']} items{ctx}; metric {metric!r}; accuracy % [{100 * s['level']:.0f}% CI]")


def _tables(results: dict[str, Any], metric: str) -> list[tuple[list[str], list[list[str]]]]:
    return [position_rows(results, metric), summary_rows(results, metric)]


def _plain(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[j]) for r in [header] + rows) for j in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    rule = "-" * len(line(header))
    return "\n".join([rule, line(header), rule] + [line(r) for r in rows])


def format_table(results: dict[str, Any], metric: str) -> str:
    """The tables of one metric as aligned plain text."""
    return "\n".join([title(results, metric)] + [_plain(h, r) for h, r in _tables(results, metric)])


def format_report(results: dict[str, Any]) -> str:
    """All metrics' tables, plain text."""
    return "\n\n".join(format_table(results, m) for m in results["settings"]["metrics"])


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: c.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows])


def markdown_report(results: dict[str, Any]) -> str:
    """All metrics' tables as Markdown (for docs)."""
    parts = []
    for metric in results["settings"]["metrics"]:
        parts.append(title(results, metric))
        parts += [_markdown(h, r) for h, r in _tables(results, metric)]
    return "\n\n".join(parts)


def print_report(results: dict[str, Any], *, use_rich: bool | None = None) -> None:
    """Print the tables: with `rich` on a terminal when it is installed, else plain text.

    Args:
        use_rich: Force (True) or forbid (False) rich; None decides as above.
    """
    if use_rich is None:
        use_rich = sys.stdout.isatty()
    if use_rich:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            use_rich = False
    if not use_rich:
        print(format_report(results))
        return
    # wide enough for the whole table: a squeezed table would cut the numbers
    needed = max(len(line) for line in format_report(results).splitlines()) + 16
    console = Console(width=max(Console().width, needed))
    for metric in results["settings"]["metrics"]:
        console.print(title(results, metric))
        for header, rows in _tables(results, metric):
            table = Table()
            for h in header:
                table.add_column(h, no_wrap=True)
            for r in rows:
                table.add_row(*r)
            console.print(table)
