"""``buckets``: what N buckets cost against one, for each N and prompt length (and ``sequential``).

Per row: time to first token (prefill), decode step, KV-cache bytes and peak memory growth,
with prefill and decode as ratios to N = 1 at the same length. With ``sequential`` in
--parts, each N > 1 row also holds the same bases run one after another as single-row
passes (``sequential.run_sequential``) and how much slower that is. Draws ``speed.png``.

May import ``common`` and ``sequential``.
"""

from __future__ import annotations

import time
from pathlib import Path

from ...progress import progress_bar
from .sequential import run_sequential
from .setup import Setup, bases_for, failure, is_out_of_memory, make_prompt, release_memory, run_engine


def run(setup: Setup) -> dict:
    """``{"buckets": rows}``, one row per (length, N), lengths outermost.

    A point that runs out of memory is recorded as such (``"error": "out of memory"``), and the
    points at least as large (N and length) are skipped without trying; a point predicted to
    overrun the time budget is skipped (``"skipped"``). The rows so far are handed to
    ``setup.partial`` after every point.
    """
    rows: list[dict] = []
    rate = None  # seconds per unit of ``_work``, from the latest measured point
    failed: list[tuple[int, int]] = []  # (n, length) points that ran out of memory
    total = len(setup.lengths) * len(setup.ns)
    with progress_bar(total, desc="buckets", unit="point", leave=False, progress=setup.progress) as bar:
        for length in setup.lengths:
            one = None
            for n in setup.ns:
                row = _point(setup, length, n, one, rate, failed)
                rows.append(row)
                if "ttft_s" in row:
                    one = one or row
                    rate = row["seconds"] / _work(n, length)
                elif row.get("error", "").startswith("out of memory"):
                    failed.append((n, length))
                setup.partial({"buckets": rows})
                bar.update()
    return {"buckets": rows}


def _work(n: int, length: int) -> float:
    """What a point costs, up to a factor: rows x tokens, with attention's share growing with length."""
    return n * length * (1.0 + length / 32768)


def _point(setup: Setup, length: int, n: int, one: dict | None, rate: float | None,
           failed: list[tuple[int, int]]) -> dict:
    """The row of one point: measured, or why not (out of memory, too little time left)."""
    kv = n * (length + setup.decode_tokens) * setup.loaded.kv_bytes_per_token()
    smaller = next(((m, k) for m, k in failed if n >= m and length >= k), None)
    if smaller is not None:
        return {"n": n, "length": length, "kv_bytes": kv, "skipped": f"out of memory at N={smaller[0]}, {smaller[1]} tokens"}
    predicted = rate * _work(n, length) if rate is not None else 0.0
    if not setup.budget.allows(predicted):
        return {"n": n, "length": length, "kv_bytes": kv, "skipped": f"time budget ({predicted:.0f} s predicted, "
                f"{max(0.0, setup.budget.left()):.0f} s left)"}
    t0 = time.perf_counter()
    try:
        row = _row(setup, length, n, one)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        error = failure(exc)
    else:
        row["seconds"] = time.perf_counter() - t0
        return row
    release_memory(setup.loaded.device)  # after the error is gone: its traceback held the pass's tensors
    return {"n": n, "length": length, "kv_bytes": kv, "error": error}


def _row(setup: Setup, length: int, n: int, one: dict | None) -> dict:
    """The row of N = ``n`` at ``length``; ``one``: the first measured row at this length (None: this is it)."""
    loaded = setup.loaded
    prompt = make_prompt(loaded, length)
    bases = bases_for(n, loaded.base)
    row = {"n": n, "length": length, **run_engine(setup.engine, prompt, bases, setup.decode_tokens, setup.repeats)}
    one = one or row
    row["ttft_ratio"] = row["ttft_s"] / one["ttft_s"]
    row["decode_step_ratio"] = row["decode_step_s"] / one["decode_step_s"]
    row["ratio_to_n"] = one["n"]
    if "sequential" in setup.parts and n > 1:
        try:
            seq = run_sequential(loaded, prompt, bases, setup.decode_tokens, setup.repeats)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            row["sequential"] = {"error": failure(exc)}
        if "error" in row.get("sequential", {}):
            release_memory(loaded.device)
            return row
        row["sequential"] = seq
        row["batched_speedup_ttft"] = seq["ttft_s"] / row["ttft_s"]
        row["batched_speedup_decode"] = seq["decode_step_s"] / row["decode_step_s"]
    return row


def print_rows(result: dict, setup: Setup) -> None:
    for row in result["buckets"]:
        if "ttft_s" not in row:
            why = row.get("error") or row.get("skipped")
            print(f"N={row['n']} L={row['length']}: not measured ({why}); KV would be {row['kv_bytes'] / 2**20:.0f} MiB")
            continue
        seq = ""
        if "batched_speedup_ttft" in row:
            seq = (f" | sequential bases: TTFT x{row['batched_speedup_ttft']:.2f} slower, "
                   f"decode x{row['batched_speedup_decode']:.2f} slower")
        elif "sequential" in row:
            seq = f" | sequential bases: {row['sequential']['error']}"
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
    rows = [r for r in out["buckets"] if "ttft_s" in r]
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
