"""``buckets``: what N buckets cost against one, for each N and prompt length (and ``sequential``).

Per row: time to first token (prefill), decode step, KV-cache bytes and peak memory growth,
with prefill and decode as ratios to N = 1 at the same length. With ``sequential`` in
--parts, each N > 1 row also holds the same bases run one after another as single-row
passes (``sequential.run_sequential``) and how much slower that is. Draws ``speed.png``.

May import ``common`` and ``sequential``.
"""

from __future__ import annotations

from pathlib import Path

from ...progress import progress_bar
from .sequential import run_sequential
from .setup import Setup, bases_for, make_prompt, run_engine


def run(setup: Setup) -> dict:
    """``{"buckets": rows}``, one row per (length, N), lengths outermost."""
    rows: list[dict] = []
    total = len(setup.lengths) * len(setup.ns)
    with progress_bar(total, desc="buckets", unit="point", leave=False, progress=setup.progress) as bar:
        for length in setup.lengths:
            one = None
            for n in setup.ns:
                rows.append(_row(setup, length, n, one))
                one = one or rows[-1]
                bar.update()
    return {"buckets": rows}


def _row(setup: Setup, length: int, n: int, one: dict | None) -> dict:
    """The row of N = ``n`` at ``length``; ``one``: the first row at this length (None: this is it)."""
    loaded = setup.loaded
    prompt = make_prompt(loaded, length)
    bases = bases_for(n, loaded.base)
    row = {"n": n, "length": length, **run_engine(setup.engine, prompt, bases, setup.decode_tokens, setup.repeats)}
    one = one or row
    row["ttft_ratio"] = row["ttft_s"] / one["ttft_s"]
    row["decode_step_ratio"] = row["decode_step_s"] / one["decode_step_s"]
    if "sequential" in setup.parts and n > 1:
        seq = run_sequential(loaded, prompt, bases, setup.decode_tokens, setup.repeats)
        row["sequential"] = seq
        row["batched_speedup_ttft"] = seq["ttft_s"] / row["ttft_s"]
        row["batched_speedup_decode"] = seq["decode_step_s"] / row["decode_step_s"]
    return row


def print_rows(result: dict, setup: Setup) -> None:
    for row in result["buckets"]:
        seq = ""
        if "sequential" in row:
            seq = (f" | sequential bases: TTFT x{row['batched_speedup_ttft']:.2f} slower, "
                   f"decode x{row['batched_speedup_decode']:.2f} slower")
        print(
            f"N={row['n']} L={row['length']}: TTFT {row['ttft_s'] * 1e3:.0f} ms (x{row['ttft_ratio']:.2f}), "
            f"decode step {row['decode_step_s'] * 1e3:.1f} ms (x{row['decode_step_ratio']:.2f}), "
            f"KV {row['kv_bytes'] / 2**20:.0f} MiB, peak +{row['peak_bytes'] / 2**20:.0f} MiB{seq}"
        )


def plot_speed(out: dict, path: Path) -> None:
    """Prefill and decode-step ratios against N, one line per prompt length."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    rows = out["buckets"]
    panels = ((fig.add_subplot(1, 2, 1), "ttft_ratio", "prefill (time to first token)"),
              (fig.add_subplot(1, 2, 2), "decode_step_ratio", "decode step"))
    for ax, key, title in panels:
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
