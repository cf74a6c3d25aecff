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


# ---- what the GPU check relies on: out of memory, time budget, partial results --------------------


def _speed(tmp_path, *extra):
    out = tmp_path / "speed"
    rc = main(["bench", "speed", "--shape", "tiny", "--device", "cpu", "--dtype", "float32", "--buckets", "1,2",
               "--lengths", "16,48", "--decode-tokens", "2", "--repeats", "1", "--no-progress", "--output", str(out),
               *extra])
    return rc, out


def test_a_point_out_of_memory_is_recorded_and_larger_ones_skipped_then_the_report_says_so(tmp_path, monkeypatch):
    import torch

    from langchain_attention_buckets.bench.speed import buckets, hf, report

    real_engine, real_hf = buckets.run_engine, hf.run_hf_generate

    def engine(eng, prompt, bases, *args):
        if len(bases) == 2 and len(prompt) == 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 16.00 GiB")
        return real_engine(eng, prompt, bases, *args)

    def generate(loaded, prompt, *args):
        if len(prompt) == 48:
            raise RuntimeError("CUDA error: out of memory")
        return real_hf(loaded, prompt, *args)

    from langchain_attention_buckets.bench.speed.setup import failure, is_out_of_memory
    from langchain_attention_buckets.engine import MemoryBudgetError

    refused = MemoryBudgetError("this call needs about 40.00 GiB on cuda:0 ...")
    assert is_out_of_memory(refused) and failure(refused).startswith("out of memory (refused before running: this call")
    assert not is_out_of_memory(ValueError("a bug")) and not is_out_of_memory(RuntimeError("shape mismatch"))

    monkeypatch.setattr(buckets, "run_engine", engine)
    monkeypatch.setattr(hf, "run_hf_generate", generate)
    rc, out = _speed(tmp_path, "--parts", "buckets,hf")
    assert rc == 0  # running out of memory is a measurement, not a failure
    rows = json.loads((out / "speed.json").read_text())["buckets"]
    assert [(r["n"], r["length"]) for r in rows] == [(1, 16), (2, 16), (1, 48), (2, 48)]
    assert rows[1]["error"] == "out of memory" and rows[1]["kv_bytes"] > 0 and "ttft_s" not in rows[1]
    assert rows[2]["ttft_s"] > 0  # a smaller N at a longer length is still tried
    assert rows[3]["skipped"] == "out of memory at N=2, 16 tokens"  # never tried: it cannot fit either
    hf_rows = json.loads((out / "speed.json").read_text())["hf"]
    assert hf_rows[0]["ttft_ratio"] > 0 and hf_rows[1] == {"length": 48, "error": "out of memory"}
    steps = ["gpu-tests\t0\t12\t", "speed\t124\t120\tstopped at its 120s limit", "last\tskipped\t0\tbudget spent"]
    (tmp_path / "steps.tsv").write_text("\n".join(steps) + "\n")
    rep = report.write(tmp_path)
    assert [s["status"] for s in rep["steps"]] == [0, 124, "skipped"]
    md = (tmp_path / "report.md").read_text()
    assert "| 2 | 16 | out of memory |" in md and "| 2 | 48 | skipped: out of memory at N=2, 16 tokens |" in md
    assert "48 tokens: out of memory" in md and "| 124 (stopped at its 120s limit) |" in md


def test_points_predicted_to_overrun_the_time_budget_are_skipped(tmp_path, monkeypatch):
    from langchain_attention_buckets.bench.speed import buckets
    from langchain_attention_buckets.bench.speed.setup import Setup

    clock = [0.0]

    class Budget:  # 10 s in all, on the fake clock
        def left(self):
            return 10.0 - clock[0]

        def allows(self, predicted=0.0):
            return self.left() > predicted

    def row(setup, length, n, one):
        clock[0] += buckets._work(n, length) / 16  # the point at N=1, 16 tokens takes one second
        return {"n": n, "length": length, "ttft_s": 1.0}

    monkeypatch.setattr(buckets, "_row", row)
    monkeypatch.setattr(buckets.time, "perf_counter", lambda: clock[0])
    loaded = type("Loaded", (), {"kv_bytes_per_token": lambda self: 8})()
    saved = []
    setup = Setup(loaded, None, None, "cpu", "float32", [1, 2, 4], [16, 64], 2, 1, frozenset({"buckets"}),
                  budget=Budget(), on_partial=lambda result: saved.append(len(result["buckets"])))
    rows = buckets.run(setup)["buckets"]
    # 1 + 2 + 4 s at 16 tokens; 64 tokens at N=1 would take ~4 s with 3 s left: skipped, and so on
    assert ["ttft_s" in r for r in rows] == [True, True, True, False, False, False]
    assert rows[3]["skipped"].startswith("time budget (4 s predicted, 3 s left)")
    assert saved == [1, 2, 3, 4, 5, 6]  # every point handed on as it was done


def test_a_failing_part_keeps_its_points_and_the_next_part_runs(tmp_path, monkeypatch):
    from langchain_attention_buckets.bench.speed import buckets

    real = buckets.run_engine
    seen = []

    def engine(eng, prompt, bases, *args):
        if len(bases) == 2 and len(prompt) == 48:
            saved = json.loads((tmp_path / "speed" / "speed.json").read_text())
            seen.append(len(saved["buckets"]))  # on disk before the part ends
            raise ValueError("a bug")
        return real(eng, prompt, bases, *args)

    monkeypatch.setattr(buckets, "run_engine", engine)
    rc, out = _speed(tmp_path, "--parts", "buckets,hf")
    assert rc == 1 and seen == [3]
    data = json.loads((out / "speed.json").read_text())
    assert data["errors"] == {"buckets": "ValueError: a bug"}
    assert [r["length"] for r in data["hf"]] == [16, 48] and all(r["ttft_ratio"] > 0 for r in data["hf"])
    assert len(data["buckets"]) == 3  # the points measured before the error


def test_sequential_bases_out_of_memory_leave_the_batched_row(tmp_path, monkeypatch):
    import torch

    from langchain_attention_buckets.bench.speed import buckets, report

    def sequential(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(buckets, "run_sequential", sequential)
    rc, out = _speed(tmp_path, "--parts", "buckets,sequential", "--lengths", "16")
    assert rc == 0
    rows = json.loads((out / "speed.json").read_text())["buckets"]
    assert rows[1]["ttft_s"] > 0 and rows[1]["sequential"] == {"error": "out of memory"}
    assert "batched_speedup_ttft" not in rows[1]
    report.write(out.parent)
    assert "| out of memory |" in (out.parent / "report.md").read_text()
