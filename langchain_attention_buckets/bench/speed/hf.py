"""``hf``: the engine with one bucket against plain transformers ``generate`` on the same prompt.

For each prompt length, one engine run and one ``generate`` run per repeat, interleaved so
the machine's drift hits both alike; time to first token and decode step as ratios.

May import ``common``.
"""

from __future__ import annotations

import time

import torch

from ...engine.loading import LoadedModel
from .setup import Setup, failure, is_out_of_memory, make_prompt, median, release_memory, run_engine, sync


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
        sync(dev)
        t1 = time.perf_counter()
        model.generate(ids, max_new_tokens=decode_tokens, min_new_tokens=decode_tokens, **kw)
        sync(dev)
        t2 = time.perf_counter()
        if rep:
            first.append(t1 - t0)
            full.append(t2 - t1)
    step = (median(full) - median(first)) / max(1, decode_tokens - 1)
    return {"ttft_s": median(first), "decode_step_s": step}


def run(setup: Setup) -> dict:
    """``{"hf": rows}``, one row per prompt length (``"error"`` / ``"skipped"`` where not measured,
    as in ``buckets``; rows so far go to ``setup.partial`` after each length)."""
    loaded, rows = setup.loaded, []
    last = None  # (length, seconds) of the latest measured length
    for length in setup.lengths:
        predicted = last[1] * length / last[0] if last else 0.0
        if not setup.budget.allows(predicted):
            rows.append({"length": length, "skipped": f"time budget ({predicted:.0f} s predicted, "
                         f"{max(0.0, setup.budget.left()):.0f} s left)"})
        else:
            t0 = time.perf_counter()
            try:
                rows.append(_row(setup, loaded, length))
                last = (length, time.perf_counter() - t0)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                rows.append({"length": length, "error": failure(exc)})
            if "error" in rows[-1]:
                release_memory(loaded.device)  # after the error is gone: its traceback held the pass's tensors
        setup.partial({"hf": rows})
    return {"hf": rows}


def _row(setup: Setup, loaded: LoadedModel, length: int) -> dict:
    prompt = make_prompt(loaded, length)
    ours_runs, hf_runs = [], []
    for _ in range(setup.repeats):  # interleaved, so drift of the machine hits both alike
        ours_runs.append(run_engine(setup.engine, prompt, (loaded.base,), setup.decode_tokens, 1))
        hf_runs.append(run_hf_generate(loaded, prompt, setup.decode_tokens, 1))
    ours = {k: median([r[k] for r in ours_runs]) for k in ("ttft_s", "decode_step_s")}
    hf = {k: median([r[k] for r in hf_runs]) for k in ("ttft_s", "decode_step_s")}
    return {"length": length, "ours": ours, "hf": hf,
            "decode_step_ratio": ours["decode_step_s"] / hf["decode_step_s"],
            "ttft_ratio": ours["ttft_s"] / hf["ttft_s"]}


def print_rows(result: dict, setup: Setup) -> None:
    for row in result["hf"]:
        if "ttft_ratio" not in row:
            print(f"N=1 vs transformers generate, {row['length']} tokens: not measured "
                  f"({row.get('error') or row.get('skipped')})")
            continue
        print(f"N=1 vs transformers generate, {row['length']} tokens: "
              f"TTFT x{row['ttft_ratio']:.3f}, decode step x{row['decode_step_ratio']:.3f}")
