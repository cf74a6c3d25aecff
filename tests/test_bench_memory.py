"""``bench memory``: the workload, the summary, and a short run on a tiny model (the cache keeps its bound)."""

from __future__ import annotations

import json
import shutil

import pytest

from langchain_attention_buckets.bench.memory import (
    rss_bytes,
    run_memory,
    summarize,
    workload,
)
from langchain_attention_buckets.cli import main


def test_workload_is_seeded_and_varied():
    calls = list(workload(500, seed=3, max_tokens=4))
    assert calls == list(workload(500, seed=3, max_tokens=4))
    assert sum(len(c.conversations) for c in calls) == 500
    assert {c.kind for c in calls} == {"agent", "question", "document", "tool", "batch"}
    assert {c.tools for c in calls if c.kind == "tool"} == {0, 1, 2}
    assert {c.buckets for c in calls} == {"one", "two", "six"}
    assert {c.max_tokens for c in calls} == {1, 2, 3, 4}
    # agent turns grow a shared history: some prompt is a strict prefix of a later one
    agent = [c.conversations[0] for c in calls if c.kind == "agent"]
    assert any(a == b[: len(a)] and len(b) > len(a) for a, b in zip(agent, agent[1:] + agent[2:]))


def test_rss_is_read():
    assert rss_bytes() > 10 * 1024**2


def test_summary_slope_and_bound():
    flat = [{"calls": c, "rss_bytes": 1000 + (min(50, c))} for c in range(0, 101, 10)]
    s = summarize(flat, bound=100, cache_max=100)
    assert s["cache_within_bound"] and s["rss_slope_last_half_bytes_per_call"] == pytest.approx(0, abs=1e-9)
    assert s["rss_levels_off"]
    leak = [{"calls": c, "rss_bytes": 1000 + 10 * c} for c in range(0, 101, 10)]
    s = summarize(leak, bound=100, cache_max=101)
    assert not s["cache_within_bound"] and not s["rss_levels_off"]
    assert s["rss_slope_last_half_bytes_per_call"] == pytest.approx(10)


def test_short_run_keeps_the_cache_bound(tiny_chat_dir, tmp_path):
    # a copy of the model folder: its own engine, so the bound is exactly the one asked for
    model = shutil.copytree(tiny_chat_dir, tmp_path / "model")
    bound = 64 * 1024
    out = run_memory(model=str(model), calls=30, prefix_cache_bytes=bound, sample_every=5, max_tokens=2,
                     output=tmp_path / "out", progress=False)
    saved = json.loads((tmp_path / "out" / "memory.json").read_text())
    assert (tmp_path / "out" / "memory.png").stat().st_size > 0
    s = saved["summary"]
    assert saved["settings"]["prefix_cache_bytes"] == bound
    at = [p["calls"] for p in saved["samples"]]
    assert at[0] == 0 and at[-1] == 30 and len(at) == 7  # one per 5 calls (a batch of 3 may pass a mark)
    assert all(p["cache_bytes"] <= bound and p["rss_bytes"] > 0 for p in saved["samples"])
    assert s["cache_within_bound"] and 0 < s["cache_max_bytes"] <= bound
    assert s["cache_max_bytes"] > bound // 2  # the cache filled up, so eviction was exercised
    for key in ("rss_slope_last_half_bytes_per_call", "rss_growth_last_half_bytes", "rss_levels_off"):
        assert key in s
    assert out["summary"] == s


def test_bad_settings_are_refused(capsys):
    assert main(["bench", "memory", "--calls", "0"]) == 2
    assert "calls=0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="sample_every"):
        run_memory(calls=10, sample_every=0)
