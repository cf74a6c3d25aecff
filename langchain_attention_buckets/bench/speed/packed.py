"""``packed``: the engine with oneDNN-packed linear layers against the model's own layers.

Each N at the first prompt length, both engines in interleaved rounds so the machine's drift
hits all alike; the N / N = 1 decode-step ratio of each engine comes from the same rounds.
Skipped where no layer can be packed (see ``langchain_attention_buckets.engine.packed``).

May import the engine and ``common``.
"""

from __future__ import annotations

from typing import Any

from ...engine import Engine
from .setup import Setup, bases_for, make_prompt, median, timed_run


def _times(engines: dict[str, Engine], setup: Setup, prompt) -> dict[tuple[str, int], list[tuple[float, float]]]:
    """(time to first token, decode step) per (engine, N), counted rounds after a warm-up round."""
    times: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for rep in range(setup.repeats + 1):
        for n in setup.ns:
            for name, eng in engines.items():
                ttft, step, _ = timed_run(eng, prompt, bases_for(n, setup.loaded.base), setup.decode_tokens)
                if rep:  # round 0 is the warm-up
                    times.setdefault((name, n), []).append((ttft, step))
    return times


def run(setup: Setup) -> dict:
    """``{"packed": {"packed_bytes", "rows"}}``, or ``{"packed": {"skipped": why}}``."""
    loaded, ns = setup.loaded, setup.ns
    engines = {
        "packed": Engine(loaded, prefix_cache_bytes=0, packed_weights=True),
        "default": Engine(loaded, prefix_cache_bytes=0, packed_weights=False),
    }
    try:
        weights = engines["packed"].packed_weights
        if weights is None:
            return {"packed": {"skipped": f"no packed layers on {loaded.device} in {loaded.dtype} with this torch build"}}
        times = _times(engines, setup, make_prompt(loaded, setup.lengths[0]))
    finally:
        for eng in engines.values():
            eng.close()
    out: dict[str, Any] = {"packed_bytes": weights.nbytes, "rows": []}
    for n in ns:
        row: dict[str, Any] = {"n": n}
        for name in engines:
            ttft = median([t for t, _ in times[(name, n)]])
            step = median([s for _, s in times[(name, n)]])
            one = median([s for _, s in times[(name, ns[0])]])
            row[name] = {"ttft_s": ttft, "decode_step_s": step, "decode_step_ratio": step / one}
        row["packed_speedup_decode"] = row["default"]["decode_step_s"] / row["packed"]["decode_step_s"]
        row["packed_speedup_ttft"] = row["default"]["ttft_s"] / row["packed"]["ttft_s"]
        out["rows"].append(row)
    return {"packed": out}

def print_rows(result: dict, setup: Setup) -> None:
    pk, length, n0 = result["packed"], setup.lengths[0], setup.ns[0]
    if "skipped" in pk:
        print(f"packed layers: skipped ({pk['skipped']})")
    for r in pk.get("rows", []):
        print(
            f"N={r['n']} L={length}, packed / default layers (interleaved): decode step "
            f"{r['packed']['decode_step_s'] * 1e3:.1f} / {r['default']['decode_step_s'] * 1e3:.1f} ms "
            f"(x{r['packed']['decode_step_ratio']:.2f} / x{r['default']['decode_step_ratio']:.2f} of N={n0}), "
            f"TTFT {r['packed']['ttft_s']:.2f} / {r['default']['ttft_s']:.2f} s"
        )
