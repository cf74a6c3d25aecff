"""Every kernel path the package can take on a CPU, and the choice between them.

- ``dtype="auto"`` on CPU: the override, fp32 where bf16 is emulated, else a timing probe
  kept per machine;
- packed (oneDNN) linear layers for bf16 where oneDNN has bf16 and they pay, never elsewhere;
- the tolerance helper the comparing tests use (it must be able to fail);
- bf16 against transformers on a tiny model, within the stated bf16 tolerance;
- the shipped model shapes (Llama-3.1-8B, Qwen2.5-7B) build and are supported by the engine;
- ``scripts/gpu_check.sh``: the dry run here, the CPU run with the tiny shape in the slow tier;
- the switches for the GPU path (``fastpaths``): off by default; SDPA without a mask tensor where
  nothing is padded (a cached tail through a lower-right causal bias); a compiled decode step
  without graph breaks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from agreement import (
    TINY_TOLERANCE,
    assert_close_logits,
    assert_greedy_agrees,
    assert_sampled_agrees,
    reference_logits,
)
from conftest import as_loaded, random_prompt, spy_sdpa, tail_logits, tiny_config, tiny_model

from langchain_attention_buckets.engine import Engine, Request, dtype_probe, loading, packed

ROOT = Path(__file__).resolve().parent.parent


# ---- dtype="auto" on CPU ------------------------------------------------------------------


def test_auto_dtype_follows_the_environment_override(monkeypatch):
    monkeypatch.setenv(loading.CPU_DTYPE_ENV, "bfloat16")
    assert loading.resolve_dtype("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setenv(loading.CPU_DTYPE_ENV, "float32")
    assert loading.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    monkeypatch.setenv(loading.CPU_DTYPE_ENV, "float16")
    with pytest.raises(ValueError, match="ATTENTION_BUCKETS_CPU_DTYPE='float16'.*'float32' or 'bfloat16'"):
        loading.resolve_dtype("auto", torch.device("cpu"))
    assert loading.resolve_dtype("float32", torch.device("cpu")) == torch.float32  # an explicit dtype wins


def test_auto_dtype_is_fp32_where_bf16_is_emulated_without_probing(monkeypatch):
    monkeypatch.delenv(loading.CPU_DTYPE_ENV, raising=False)
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(dtype_probe, "probe", lambda: pytest.fail("no probe where bf16 is emulated"))
    assert loading.cpu_default_dtype() == torch.float32


@pytest.mark.parametrize("faster", ["bfloat16", "float32"])
def test_auto_dtype_follows_the_probe_once_per_machine(monkeypatch, tmp_path, faster):
    monkeypatch.delenv(loading.CPU_DTYPE_ENV, raising=False)
    monkeypatch.setenv("ATTENTION_BUCKETS_CACHE", str(tmp_path))
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: True)
    calls = []

    def fake_time(dtype, *args, **kwargs):
        calls.append(dtype)
        fast = dtype == loading.DTYPES[faster]
        return {"kernel": "aten", "seconds": {}, "total": 1.0 if fast else 2.0}

    monkeypatch.setattr(dtype_probe, "time_linear", fake_time)
    dtype_probe.measured_choice.cache_clear()
    try:
        assert loading.cpu_default_dtype() == loading.DTYPES[faster]
        assert len(calls) == 2
        saved = json.loads((tmp_path / "cpu-dtype.json").read_text())
        assert saved[dtype_probe.machine_key()]["choice"] == faster
        dtype_probe.measured_choice.cache_clear()  # a new process: read from the file, no probe
        assert loading.cpu_default_dtype() == loading.DTYPES[faster]
        assert len(calls) == 2
    finally:
        dtype_probe.measured_choice.cache_clear()


def test_bf16_must_be_clearly_faster_to_be_chosen(monkeypatch):
    times = {torch.float32: 1.0, torch.bfloat16: 0.95}  # within the margin: fp32 stays
    monkeypatch.setattr(dtype_probe, "time_linear", lambda dt, *a, **k: {"kernel": "aten", "seconds": {}, "total": times[dt]})
    assert dtype_probe.probe()["choice"] == "float32"
    times[torch.bfloat16] = 0.5
    assert dtype_probe.probe()["choice"] == "bfloat16"


def test_the_probe_times_real_kernels_and_names_them():
    out = dtype_probe.time_linear(torch.float32, features=128, rows=(2, 8))
    assert out["kernel"] == ("onednn-packed" if packed.available() else "aten")
    assert set(out["seconds"]) == {"2", "8"} and all(t > 0 for t in out["seconds"].values())


# ---- packed layers for bf16 --------------------------------------------------------------------


def test_bf16_packing_is_offered_exactly_where_onednn_has_bf16():
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    native = packed.available() and check is not None and bool(check())
    assert packed.supports(torch.bfloat16) == native
    assert packed.supports(torch.float32) == packed.available()
    assert not packed.supports(torch.float16)


def test_bf16_model_is_packed_only_where_supported_and_paying(monkeypatch):
    model = tiny_model().to(torch.bfloat16)
    monkeypatch.setattr(packed, "MIN_ELEMENTS", 0)
    if not packed.supports(torch.bfloat16):
        assert packed.pack_model(model) is None  # e.g. AVX2: oneDNN has no bf16 inner product
        return
    monkeypatch.setattr(packed, "pays_off", lambda *a: False)
    assert packed.pack_model(model) is None
    monkeypatch.setattr(packed, "pays_off", lambda *a: True)
    pw = packed.pack_model(model)
    assert pw is not None
    x = torch.randn(6, 2, model.config.hidden_size).to(torch.bfloat16)
    with torch.inference_mode():
        want = model.lm_head(x)
        with pw.installed():
            got = model.lm_head(x)
    assert_close_logits(got, want, TINY_TOLERANCE[torch.bfloat16], "packed bf16 layer")


def test_a_packed_layer_that_computes_something_else_is_refused(monkeypatch):
    if not packed.available():
        pytest.skip("this torch build has no oneDNN linear operations")
    lin = torch.nn.Linear(64, 32)
    monkeypatch.setattr(packed.PackedLinear, "forward", lambda self, x: torch.zeros(*x.shape[:-1], 32))
    assert packed.packed_linear(lin) is None


# ---- the tolerance helper ----------------------------------------------------------------------


def test_greedy_comparison_allows_near_ties_only():
    logits = torch.zeros(3, 5)
    logits[0, 2] = 5.0
    logits[1, 3], logits[1, 4] = 2.0, 2.0 - 1e-5  # a near-tie at step 1
    logits[2, 1] = 5.0
    assert assert_greedy_agrees([2, 3, 1], [2, 3, 1], logits, 1e-4) is None
    assert assert_greedy_agrees([2, 4, 0], [2, 3, 1], logits, 1e-4) == 1  # parted at the near-tie
    with pytest.raises(AssertionError, match="not a near-tie"):
        assert_greedy_agrees([0, 3, 1], [2, 3, 1], logits, 1e-4)
    with pytest.raises(AssertionError, match="equal so far"):
        assert_greedy_agrees([2, 3], [2, 3, 1], logits, 1e-4, same_length=True)


def test_sampled_comparison_allows_near_ties_of_the_draw_only():
    u = float(torch.rand((), generator=torch.Generator().manual_seed(3)))  # the first draw of seed 3
    # step 0: the drawn number sits 1e-6 below the end of token 1's interval (a near-tie of 1 and 2)
    probs = torch.tensor([u / 2, u / 2 + 1e-6, (1 - u - 1e-6) / 2, (1 - u - 1e-6) / 2])
    logits = probs.log()[None].repeat(2, 1)
    assert assert_sampled_agrees([1], [1], logits, 1e-4, seed=3, temperature=1.0) is None
    assert assert_sampled_agrees([2], [1], logits, 1e-4, seed=3, temperature=1.0) == 0
    with pytest.raises(AssertionError, match="not a near-tie of the draw"):
        assert_sampled_agrees([3], [1], logits, 1e-4, seed=3, temperature=1.0)  # far from the drawn number
    with pytest.raises(AssertionError, match="not a near-tie of the draw"):
        assert_sampled_agrees([1], [1], logits, 1e-4, seed=4, temperature=1.0)  # another seed's draw: not 1's


def test_bf16_engine_equals_transformers_within_the_bf16_tolerance():
    model = tiny_model().to(torch.bfloat16)
    loaded = as_loaded(model)
    loaded.dtype = torch.bfloat16
    prompt = random_prompt(30, seed=1)
    res = Engine(loaded, prefix_cache_bytes=0).generate(Request(prompt, (10000.0,), max_tokens=16, prefix_cache=False))
    want = model.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False, eos_token_id=1,
                          pad_token_id=0)[0, len(prompt):].tolist()
    tol = TINY_TOLERANCE[torch.bfloat16]
    ref = reference_logits(model, prompt, want, (10000.0,))
    assert_greedy_agrees(res.token_ids, want, ref, tol, "bf16 engine vs generate")
    fp32 = reference_logits(tiny_model(), prompt, want, (10000.0,))
    assert_close_logits(ref, fp32, tol, "bf16 vs fp32 logits")


# ---- model shapes for the GPU check ----------------------------------------------------------


@pytest.mark.parametrize("name, layers, kv_bytes", [("llama-3.1-8b", 32, 131072), ("qwen2.5-7b", 28, 57344)])
def test_shipped_shapes_build_and_the_engine_supports_them(name, layers, kv_bytes):
    from transformers import AutoConfig, AutoModelForCausalLM

    from langchain_attention_buckets.bench.speed.shapes import shape_config
    from langchain_attention_buckets.engine.rope import check_supported, head_dim

    raw = shape_config(name)
    cfg = AutoConfig.for_model(raw["model_type"], **{k: v for k, v in raw.items() if k != "model_type"})
    with torch.device("meta"):  # the shape without memory
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    check_supported(model)
    assert cfg.num_hidden_layers == layers and head_dim(cfg) == 128
    assert 2 * layers * cfg.num_key_value_heads * head_dim(cfg) * 2 == kv_bytes  # bf16 keys and values per token


def test_random_shape_runs_in_the_engine_and_unknown_shapes_are_named():
    from langchain_attention_buckets.bench.speed.shapes import random_loaded

    loaded = random_loaded("tiny", "cpu", "float32")
    res = Engine(loaded, prefix_cache_bytes=0).generate(Request(tuple(range(3, 40)), (1e4, 2e4), max_tokens=3,
                                                               ignore_eos=True))
    assert len(res.token_ids) == 3
    with pytest.raises(ValueError, match="shape='llama-70b' is not shipped; choose from .*llama-3.1-8b"):
        random_loaded("llama-70b")


# ---- scripts/gpu_check.sh ----------------------------------------------------------------------------


def _gpu_check(*args, timeout: int, python: str = sys.executable):
    env = {**os.environ, "PYTHON": python}
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_gpu_check_dry_run_says_what_it_carries_and_runs(tmp_path):
    out = _gpu_check("--dry-run", "--out", str(tmp_path / "gc"), timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "carries this tree" in text and "wheels" in text
    for shape in ("llama-3.1-8b", "qwen2.5-7b"):
        assert f"--shape {shape} --device cuda --dtype bfloat16 --buckets 1,2,4,6,8 --lengths 1024,4096,16384" in text
        assert f"--parts buckets,sequential --output {tmp_path / 'gc'}/{shape}-sequential" in text
    assert "tests/test_gpu.py" in text and "speed/report.py" in text and "budget 450s" in text
    assert "--time-budget" in text and "import torch, numpy, transformers" in text
    assert "-p pytest_socket -p pytest_timeout --timeout 40 -m 'gpu and not embedded'" in text  # no plugin of the machine's
    assert not (tmp_path / "gc").exists()  # a dry run writes nothing
    assert "unknown argument" in _gpu_check("--bogus", timeout=30).stderr
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    text = _gpu_check("--dry-run", "--wheels", str(wheels), timeout=60).stdout
    assert f"pip install --no-index --no-deps --target /tmp/gpu-check-site {wheels}/*.whl" in text  # never the network


def test_gpu_check_fails_fast_without_torch_and_skips_steps_once_the_budget_is_spent(tmp_path):
    out = _gpu_check("--cpu", "--out", str(tmp_path / "a"), timeout=60, python="/bin/false")
    assert out.returncode == 3 and "cannot import torch" in out.stderr
    assert "cannot import torch" in (tmp_path / "a" / "preflight.log").read_text()
    assert not (tmp_path / "a" / "steps.tsv").read_text()  # nothing ran
    out = _gpu_check("--cpu", "--budget", "5", "--out", str(tmp_path / "b"), "--bundle", str(tmp_path / "back"), timeout=120)
    assert out.returncode == 1, out.stderr
    # what a machine that hands back a few files keeps: the report, and all of --out in one archive
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["gpu-check.tar.gz", "report.json", "report.md"]
    with tarfile.open(tmp_path / "back" / "gpu-check.tar.gz") as tar:
        assert {"b/steps.tsv", "b/environment.json", "b/report.md"} <= set(tar.getnames())
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [(s["step"], s["status"]) for s in report["steps"]] == [
        ("gpu-tests", "skipped"), ("tiny", "skipped"), ("tiny-sequential", "skipped"), ("tiny-agent", "skipped"),
        ("tiny-sdpa", "skipped"), ("tiny-compiled", "skipped")]
    assert report["environment"]["torch"] == torch.__version__ and report["runs"] == {}


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_with_the_tiny_shape(tmp_path):
    folder = tmp_path / "gc"
    out = _gpu_check("--cpu", "--out", str(folder), timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((folder / "report.json").read_text())
    assert set(report["runs"]) == {"tiny", "tiny-sequential", "tiny-agent", "tiny-sdpa", "tiny-compiled"}
    grid = report["runs"]["tiny"]["buckets"]
    assert [(r["n"], r["length"]) for r in grid] == [(1, 16), (2, 16), (1, 48), (2, 48)]
    assert all(r["kv_bytes"] > 0 for r in grid)
    assert report["runs"]["tiny"]["hf"] and "sequential" in report["runs"]["tiny-sequential"]["buckets"][0]
    assert report["runs"]["tiny-agent"]["prefix"]["cached_tokens"] > 0
    assert report["tests"]["tests"] > 0 and report["tests"]["failures"] == 0
    assert [s["status"] for s in report["steps"]] == [0, 0, 0, 0, 0, 0]
    assert report["runs"]["tiny-sdpa"]["fast_paths"]["sdpa_backends"] == ["math"]
    compiled = report["runs"]["tiny-compiled"]
    assert compiled["fast_paths"]["compile_decode"] == "eager" and [r["n"] for r in compiled["buckets"]] == [1, 6]
    assert report["runs"]["tiny"]["fast_paths"]["compile_decode"] is None
    assert report["environment"]["torch"] == torch.__version__
    md = (folder / "report.md").read_text()
    assert "| N | tokens |" in md and "agent turn 2" in md and "transformers `generate`" in md
    assert "Fast paths on: compile_decode=eager." in md


# ---- switches for the GPU path (off by default) -----------------------------------------------


def test_fast_paths_are_off_by_default_and_checked(monkeypatch):
    from langchain_attention_buckets.engine.fastpaths import FastPaths

    monkeypatch.delenv("ATTENTION_BUCKETS_FAST_PATHS", raising=False)
    eng = Engine(as_loaded(tiny_model()), prefix_cache_bytes=0)
    assert eng.fast_paths == FastPaths() and not eng.fast_paths.any
    assert FastPaths.from_env("sdpa=flash+efficient,compile=reduce-overhead,pin") == FastPaths(
        ("flash", "efficient"), "reduce-overhead", True)
    with pytest.raises(ValueError, match="sdpa_backends=\\('fast',\\): use one or more of flash"):
        FastPaths(sdpa_backends=("fast",))
    with pytest.raises(ValueError, match="compile_decode='cudagraphs': use None"):
        FastPaths(compile_decode="cudagraphs")
    with pytest.raises(ValueError, match="'turbo' is not understood"):
        FastPaths.from_env("turbo")


def test_compiled_decode_is_built_once_used_for_decode_steps_only_and_changes_no_token():
    from langchain_attention_buckets.engine import fastpaths

    model = tiny_model()
    loaded = as_loaded(model)
    prompt = random_prompt(20, seed=1)
    req = Request(prompt, (1e4, 2e4), max_tokens=8, speculative_tokens=0, ignore_eos=True)
    plain = Engine(loaded, prefix_cache_bytes=0).generate(req).token_ids
    seen = []

    def fake_compile(fn, mode):  # what torch.compile is handed: the forward, wrapped once
        seen.append(mode)
        return lambda **kw: (seen.append(kw["input_ids"].shape), fn(**kw))[1]

    eng = Engine(loaded, prefix_cache_bytes=0, fast_paths=fastpaths.FastPaths(compile_decode="reduce-overhead"))
    compiler = fastpaths.decode_compiler(model, eng.fast_paths, fake_compile)
    assert eng.generate(req).token_ids == plain  # the fake compiler runs the same forward: the same computation
    assert eng.generate(req).token_ids == plain
    assert compiler.builds == 1 and seen[0] == "reduce-overhead"
    assert compiler.calls == 2 * 7  # 8 tokens: the first from the prefill, 7 decode steps each
    assert all(shape == (2, 1) for shape in seen[1:])  # one token per row, never a prefill
    assert Engine(loaded, prefix_cache_bytes=0).fast_paths == eng.fast_paths  # a default engine keeps them
    Engine(loaded, prefix_cache_bytes=0, fast_paths=fastpaths.FastPaths())  # all off, said so: off
    assert fastpaths.decode_compiler(model, fastpaths.of(model)) is None


def test_sdpa_backend_switch_restricts_attention(monkeypatch):
    from langchain_attention_buckets.engine import fastpaths

    loaded = as_loaded(tiny_model())
    req = Request(random_prompt(20, seed=2), (1e4, 2e4), max_tokens=4, speculative_tokens=0, ignore_eos=True)
    plain = Engine(loaded, prefix_cache_bytes=0).generate(req).token_ids
    eng = Engine(loaded, prefix_cache_bytes=0, fast_paths=fastpaths.FastPaths(sdpa_backends=("math",)))
    ref = reference_logits(loaded.model, req.prompt, plain, req.bases)  # another attention kernel: up to a near-tie
    assert_greedy_agrees(eng.generate(req).token_ids, plain, ref, TINY_TOLERANCE[torch.float32], "math sdpa vs default",
                         same_length=True)
    if not torch.cuda.is_available():  # flash attention has no CPU kernel under sdpa_kernel: it must refuse
        eng = Engine(loaded, prefix_cache_bytes=0, fast_paths=fastpaths.FastPaths(sdpa_backends=("cudnn",)))
        with pytest.raises(RuntimeError):
            eng.generate(req)


def test_pinned_prefix_cache_copies_leave_cpu_entries_alone():
    from langchain_attention_buckets.engine import fastpaths

    kv = [(torch.ones(2, 1, 3, 4), torch.zeros(2, 1, 3, 4))]
    assert fastpaths.to_host(kv, fastpaths.FastPaths(pin_prefix_cache=True)) is kv  # already in host memory
    loaded = as_loaded(tiny_model())
    eng = Engine(loaded, fast_paths=fastpaths.FastPaths(pin_prefix_cache=True))
    p = random_prompt(30, seed=3)
    first = eng.generate(Request(p, (1e4,), max_tokens=3))
    again = eng.generate(Request(p + (5,), (1e4,), max_tokens=3))
    assert again.cached_tokens >= 30 and first.token_ids


def test_a_cuda_model_gets_bf16_without_the_cpu_probe_and_no_packed_layers(monkeypatch):
    from langchain_attention_buckets.engine import dtype_probe, packed
    from langchain_attention_buckets.engine.loading import resolve_dtype

    def probe(*args):
        raise AssertionError("the CPU dtype probe ran for a CUDA model")

    monkeypatch.setattr(dtype_probe, "measured_choice", probe)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(packed, "MIN_ELEMENTS", 0)
    off_cpu = tiny_model().to("meta")  # weights off the CPU, as on a card: oneDNN packing is for CPU weights only
    assert packed.packable_bytes(off_cpu) == 0 and packed.pack_model(off_cpu) is None
    assert packed.packable_bytes(tiny_model()) > 0  # the same model on the CPU would be packed


def test_free_memory_on_a_card_counts_what_the_allocator_holds_unused(monkeypatch):
    # after a long call torch keeps its KV cache's blocks for reuse: the driver counts them as used,
    # and a memory check reading the driver alone would refuse the next call of the same size
    from langchain_attention_buckets.engine.limits import free_memory

    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (30 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 40 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 16 * gib)  # the weights
    assert free_memory(torch.device("cuda", 0)) == 54 * gib


def test_the_rotary_forward_reads_no_tensor_value_on_the_host(monkeypatch):
    # on a GPU every such read waits for the device, once per forward pass, and inside a compiled
    # decode step it breaks the graph (the per-row scaling was read with float() there)
    from langchain_attention_buckets.engine.rope import BucketedRotaryEmbedding, bucket_frequencies

    model = tiny_model()
    freqs, scales = bucket_frequencies(model.config, (1e4, 2e4))
    rotary = BucketedRotaryEmbedding(freqs, scales, model.config, [1e4, 2e4])
    pos = torch.arange(5).expand(2, 5)

    def host_read(*args, **kwargs):
        raise AssertionError("a tensor value was read on the host during the forward pass")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, host_read)
    cos, sin = rotary(torch.zeros(2, 5, 8), pos)
    monkeypatch.undo()
    want = pos[..., None].float() * freqs[:, None, :]
    assert torch.equal(cos, torch.cat([want, want], -1).cos()) and torch.equal(sin, torch.cat([want, want], -1).sin())


@pytest.mark.slow
def test_compiled_decode_with_dynamo_keeps_its_graphs_across_requests():
    import torch._dynamo
    from torch._dynamo.utils import counters

    from langchain_attention_buckets.engine import fastpaths

    torch._dynamo.reset()
    loaded = as_loaded(tiny_model())
    req = Request(random_prompt(20, seed=1), (1e4, 2e4), max_tokens=6, speculative_tokens=0, ignore_eos=True)
    plain = Engine(loaded, prefix_cache_bytes=0).generate(req).token_ids
    eng = Engine(loaded, prefix_cache_bytes=0, fast_paths=fastpaths.FastPaths(compile_decode="eager"))
    assert eng.generate(req).token_ids == plain  # dynamo's "eager" backend runs the same operations
    graphs = counters["stats"]["unique_graphs"]
    assert eng.generate(req).token_ids == plain
    assert counters["stats"]["unique_graphs"] == graphs  # no recompilation in the steady state


def test_bench_dtype_part_prints_the_isa_and_the_kernels_that_ran(capsys):
    from langchain_attention_buckets.bench.speed import dtype as dtype_part

    cpu = dtype_part.cpu_report(probe=False)
    assert cpu["aten_cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX") or cpu["aten_cpu_capability"]
    assert cpu["auto_dtype"] in ("float32", "bfloat16") and isinstance(cpu["onednn_bf16"], bool)
    probe = {"float32": {"kernel": "onednn-packed", "total": 0.01}, "bfloat16": {"kernel": "aten", "total": 0.05},
             "choice": "float32"}
    result = {"dtype_comparison": {"cpu": {**cpu, "probe": probe},
                                   "kernels": {"float32": "onednn-packed linear", "bfloat16": "aten linear"},
                                   "prefill_ratio_bf16_vs_fp32": 5.5, "decode_ratio_bf16_vs_fp32": 0.7,
                                   "agreement": {"identical_answers": 7, "questions": 12, "mean_shared_prefix": 0.8}}}
    dtype_part.print_rows(result, type("S", (), {"lengths": [512]})())
    out = capsys.readouterr().out
    assert f"ATen {cpu['aten_cpu_capability']}" in out and "oneDNN bf16" in out
    assert "float32 10.0 ms (onednn-packed), bfloat16 50.0 ms (aten) -> float32" in out
    assert "kernels that ran: float32 onednn-packed linear, bfloat16 aten linear" in out
    assert "identical 7/12" in out


def test_the_probe_result_is_kept_apart_per_isa_limit(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    plain = dtype_probe.machine_key()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert dtype_probe.machine_key() != plain


def test_ci_runs_the_readme_command_then_the_other_kernel_paths():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/setup.sh && .venv/bin/python -m pytest" in readme
    assert ".venv/bin/python -m pytest" in ci and "bash scripts/kernel_paths.sh" in ci
    assert ci.index(".venv/bin/python -m pytest") < ci.index("bash scripts/kernel_paths.sh")
    script = (ROOT / "scripts" / "kernel_paths.sh").read_text()
    assert "ATTENTION_BUCKETS_CPU_DTYPE=bfloat16" in script
    assert 'ATTENTION_BUCKETS_CPU_DTYPE=bfloat16 "$PY" -m pytest tests -q -m embedded' in script  # every embedded test
    assert "ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2" in script and "grep -qw avx512f" in script


def test_without_padding_attention_gets_no_mask_except_on_a_cached_tail(monkeypatch):
    # the default (sdpa_backends off): a fresh prefill is causal without a mask, a decode step has
    # none; a tail on top of a cached prefix needs a bottom-right causal mask and gets it materialised
    seen = spy_sdpa(monkeypatch)
    eng = Engine(as_loaded(tiny_model()))
    prompt = random_prompt(20)
    eng.generate(Request(prompt, (1e4, 2e4), max_tokens=3, speculative_tokens=0, ignore_eos=True))
    assert (20, 20, "none", True) in seen  # the prefill: is_causal, no mask
    assert all(kind == "none" for q, _, kind, _ in seen if q == 1)  # decode steps
    seen.clear()
    eng.generate(Request(prompt + (5, 6, 7), (1e4, 2e4), max_tokens=2, speculative_tokens=0, ignore_eos=True))
    assert (3, 23, "tensor", False) in seen  # the uncached tail of a cached prompt


@pytest.mark.parametrize("model_type", ["llama", "mistral", "qwen2", "qwen3", "granite", "smollm3"])
def test_sdpa_switch_attends_a_cached_tail_through_a_lower_right_bias(monkeypatch, model_type):
    # with sdpa_backends set, a cached tail without padding goes to SDPA with torch's
    # causal_lower_right bias (no tensor: what flash and memory-efficient attention take), and its
    # logits are those of the materialised mask and of a fresh pass; a padded batch keeps its mask
    from langchain_attention_buckets.engine import fastpaths
    from langchain_attention_buckets.engine.forward import forward_buckets

    model = tiny_model(model_type, head_dim=8) if model_type == "qwen3" else tiny_model(model_type)
    seen = spy_sdpa(monkeypatch)
    prompt, tail = random_prompt(20, seed=5), random_prompt(5, seed=6)
    tol = TINY_TOLERANCE[torch.float32]
    masked = tail_logits(model, prompt, tail)  # the switch off: a materialised mask
    assert {kind for q, _, kind, _ in seen if q == 5} == {"tensor"}
    fresh = forward_buckets(model, prompt + tail, (1e4, 2e4), logits_to_keep=5)
    assert_close_logits(masked, fresh, tol, "masked tail vs fresh")
    valid = torch.ones(2, 25, dtype=torch.bool)
    valid[1, :3] = False  # the second row left-padded by three positions
    padded_masked = tail_logits(model, prompt, tail, valid)

    fastpaths.configure(model, fastpaths.FastPaths(sdpa_backends=("efficient", "math")))
    seen.clear()
    biased = tail_logits(model, prompt, tail)
    assert {kind for q, _, kind, _ in seen if q == 5} == {"bias"}  # every layer: no mask tensor
    assert (20, 20, "none", True) in seen  # the fresh prefill is as before
    assert_close_logits(biased, masked, tol, "lower-right bias vs materialised mask")
    seen.clear()
    padded = tail_logits(model, prompt, tail, valid)
    assert {kind for q, _, kind, _ in seen if q == 5} == {"tensor"}  # padding keeps its mask
    assert_close_logits(padded, padded_masked, tol, "padded batch with the switch vs without")
    assert model.config._attn_implementation == "sdpa"  # put back after the pass


def test_sdpa_switch_leaves_a_model_without_sdpa_as_it_is(monkeypatch):
    from transformers import AutoModelForCausalLM

    from langchain_attention_buckets.engine import fastpaths

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(), attn_implementation="eager").eval()
    prompt, tail = random_prompt(20, seed=5), random_prompt(5, seed=6)
    want = tail_logits(model, prompt, tail)
    fastpaths.configure(model, fastpaths.FastPaths(sdpa_backends=("math",)))
    seen = spy_sdpa(monkeypatch)
    assert torch.equal(tail_logits(model, prompt, tail), want)
    assert seen == [] and model.config._attn_implementation == "eager"


def test_sdpa_switch_in_the_engine_changes_no_token_and_is_undone_on_errors(monkeypatch):
    from langchain_attention_buckets.engine import fastpaths

    loaded = as_loaded(tiny_model())
    prompt = random_prompt(20, seed=7)
    first = Request(prompt, (1e4, 2e4), max_tokens=3, speculative_tokens=0, ignore_eos=True)
    second = Request(prompt + (5, 6, 7), (1e4, 2e4), max_tokens=6, speculative_tokens=0, ignore_eos=True)
    plain = Engine(loaded)
    plain.generate(first)
    want = plain.generate(second).token_ids
    seen = spy_sdpa(monkeypatch)
    eng = Engine(loaded, fast_paths=fastpaths.FastPaths(sdpa_backends=("math",)))
    eng.generate(first)
    res = eng.generate(second)
    assert res.cached_tokens == 20 and (3, 23, "bias", False) in seen
    assert_greedy_agrees(res.token_ids, want, reference_logits(loaded.model, prompt + (5, 6, 7), want, (1e4, 2e4)),
                         TINY_TOLERANCE[torch.float32], "lower-right bias vs mask", same_length=True)
    assert loaded.model.config._attn_implementation == "sdpa"
    if not torch.cuda.is_available():  # cuDNN attention has no CPU kernel: the pass raises inside the switch
        cudnn = Engine(loaded, prefix_cache_bytes=0, fast_paths=fastpaths.FastPaths(sdpa_backends=("cudnn",)))
        with pytest.raises(RuntimeError):
            cudnn.generate(Request(random_prompt(9), (1e4, 2e4), max_tokens=2))
        assert loaded.model.config._attn_implementation == "sdpa"  # put back on the error too


@pytest.mark.parametrize("case", ["default", pytest.param("dynamic", marks=pytest.mark.slow),
                                  pytest.param("with-sdpa-switch", marks=pytest.mark.slow)])
def test_compiled_decode_step_has_no_graph_break(case):
    # a graph break splits the step into pieces, and CUDA graphs (compile_decode="reduce-overhead")
    # would cover only those; dynamo's "eager" backend traces the same graphs without code generation
    import dataclasses

    import torch._dynamo
    from torch._dynamo.utils import counters

    from langchain_attention_buckets.engine import fastpaths

    torch._dynamo.reset()
    counters["graph_break"].clear()
    if case == "dynamic":  # a 24-position window: the decode steps run past it, where the frequencies change
        model = tiny_model(rope={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}, max_positions=24)
    else:
        model = tiny_model()
    loaded = dataclasses.replace(as_loaded(model), max_positions=256)
    req = Request(random_prompt(20, seed=1), (1e4, 2e4), max_tokens=8, speculative_tokens=0, ignore_eos=True)
    plain = Engine(loaded, prefix_cache_bytes=0).generate(req).token_ids
    paths = fastpaths.FastPaths(compile_decode="eager", sdpa_backends=("math",) if case == "with-sdpa-switch" else None)
    eng = Engine(loaded, prefix_cache_bytes=0, fast_paths=paths)
    got = eng.generate(req).token_ids
    if case == "with-sdpa-switch":  # the math kernel is another computation: up to a near-tie
        ref = reference_logits(model, req.prompt, plain, req.bases)
        assert_greedy_agrees(got, plain, ref, TINY_TOLERANCE[torch.float32], "compiled with the math kernel", same_length=True)
    else:
        assert got == plain  # dynamo's "eager" backend runs the same operations
    assert fastpaths.decode_compiler(model, paths).calls == 7
    assert sum(counters["graph_break"].values()) == 0, list(counters["graph_break"])
