"""Smoke test of `attention-buckets bench speed` on a tiny model: the files and the numbers' shapes."""

from __future__ import annotations

import json

from langchain_attention_buckets.cli import main


def test_speed_bench_writes_json_and_plot(tiny_chat_dir, tmp_path, monkeypatch):
    from langchain_attention_buckets.engine import packed

    monkeypatch.setattr(packed, "MIN_ELEMENTS", 0)  # pack the tiny model's layers too
    out = tmp_path / "speed"
    rc = main(
        ["bench", "speed", "--model", tiny_chat_dir, "--dtype", "float32", "--buckets", "1,2", "--lengths", "24,48",
         "--decode-tokens", "4", "--repeats", "1", "--parts", "buckets,sequential,hf,mask,spec,agent,packed",
         "--output", str(out)]
    )
    assert rc == 0
    data = json.loads((out / "speed.json").read_text())
    assert (out / "speed.png").stat().st_size > 0
    rows = data["buckets"]
    assert [(r["n"], r["length"]) for r in rows] == [(1, 24), (2, 24), (1, 48), (2, 48)]
    for r in rows:
        assert r["ttft_s"] > 0 and r["decode_step_s"] > 0 and r["kv_bytes"] > 0
        if r["n"] == 1:
            assert r["ttft_ratio"] == 1.0 and "sequential" not in r
        else:
            assert r["kv_bytes"] == 2 * rows[0 if r["length"] == 24 else 2]["kv_bytes"]
            assert r["sequential"]["decode_step_s"] > 0 and r["batched_speedup_decode"] > 0
    assert {h["length"] for h in data["hf"]} == {24, 48}
    for kind, m in data["mask"]["n=1"].items():  # masked and unmasked decode the same number of tokens
        assert kind in {"text", "json"} and m["tokens"] >= 3 and m["ratio"] > 0 and m["unmasked_step_s"] > 0
    assert "text" in data["mask"]["n=1"]
    for kind in ("copy", "free"):
        spec = data["spec"]["n=2"][kind]
        assert spec["same_output"] and spec["speedup"] > 0 and 0 <= spec["acceptance"] <= 1
    assert len(data["agent"]["cache"]) == 3 and len(data["agent"]["speedup"]) == 3
    if packed.available():
        pk = data["packed"]
        assert pk["packed_bytes"] > 0 and [r["n"] for r in pk["rows"]] == [1, 2]
        for r in pk["rows"]:
            assert r["packed"]["decode_step_s"] > 0 and r["default"]["ttft_s"] > 0 and r["packed_speedup_decode"] > 0
        assert pk["rows"][0]["packed"]["decode_step_ratio"] == 1.0


def test_speed_bench_dtype_part_reports_the_cpu_kernels_and_a_grid(tiny_chat_dir, tmp_path, monkeypatch, capsys):
    from langchain_attention_buckets.engine import dtype_probe

    # the probe's own timing is tested in test_kernel_paths; here a small one keeps the run short
    monkeypatch.setattr(dtype_probe, "PROBE_FEATURES", 128)
    out = tmp_path / "speed"
    rc = main(["bench", "speed", "--model", tiny_chat_dir, "--lengths", "16,24", "--decode-tokens", "3",
               "--repeats", "1", "--parts", "dtype", "--no-progress", "--output", str(out)])
    assert rc == 0
    d = json.loads((out / "speed.json").read_text())["dtype_comparison"]
    assert d["cpu"]["aten_cpu_capability"] and d["cpu"]["probe"]["choice"] in ("float32", "bfloat16")
    assert set(d["kernels"]) == {"float32", "bfloat16"}
    assert [(g["length"], g["n"]) for g in d["grid"]] == [(16, 1), (16, 6), (24, 1), (24, 6)]
    assert all(g["ttft_ratio"] > 0 and g["bfloat16_decode_step_s"] > 0 for g in d["grid"])
    printed = capsys.readouterr().out
    assert "CPU: ATen" in printed and "kernels that ran:" in printed and "24 tokens, N=6" in printed
