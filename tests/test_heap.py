"""Memory over time: the engine hands freed heap back when it goes idle (rate-limited), and the
oneDNN shape caches behind the packed layers are bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import random_prompt

from langchain_attention_buckets.engine import Engine, Request, packed
from langchain_attention_buckets.engine.heap import IdleTrim, available


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, pad: int) -> int:
        self.calls.append(pad)
        return 1


def test_idle_trim_is_rate_limited_and_can_be_off():
    rec = Recorder()
    trim = IdleTrim(0.05, trim=rec)
    assert not trim() and trim.wait_time() > 0  # not right after start
    time.sleep(0.06)
    assert trim.wait_time() == 0 and trim() and rec.calls == [0]
    assert not trim() and rec.calls == [0]  # at most once per interval
    assert trim.count == 1 and trim.seconds >= 0
    for off in (None, 0):
        trim = IdleTrim(off, trim=rec)
        time.sleep(0.01)
        assert trim.wait_time() is None and not trim()
    assert rec.calls == [0]


@pytest.mark.parametrize("bad", [-1, True, "10", float("nan")])
def test_idle_trim_interval_is_checked(tiny_loaded, bad):
    with pytest.raises(ValueError, match="idle_trim_interval"):
        Engine(tiny_loaded, idle_trim_interval=bad)


def _wait_for(cond, timeout=5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_engine_trims_once_when_it_goes_idle(tiny_loaded):
    engine = Engine(tiny_loaded, idle_trim_interval=0.2)
    rec = Recorder()
    engine.idle_trim._trim = rec  # the worker's trim: recorded, not glibc's
    engine.generate(Request(random_prompt(12), (10000.0,), max_tokens=3))
    # work was done less than an interval after start: the idle worker trims when it comes due
    assert _wait_for(lambda: len(rec.calls) == 1)
    time.sleep(0.5)
    assert len(rec.calls) == 1  # once per idle period, however long the engine stays idle
    engine.generate(Request(random_prompt(12, seed=1), (10000.0,), max_tokens=3))
    assert _wait_for(lambda: len(rec.calls) == 2)
    assert engine.idle_trim.count == 2
    engine.idle_trim_interval = None  # off on a running engine
    engine.generate(Request(random_prompt(12, seed=2), (10000.0,), max_tokens=3))
    time.sleep(0.5)
    assert len(rec.calls) == 2
    engine.close()


def test_engine_idle_trim_is_on_by_default(tiny_loaded):
    engine = Engine(tiny_loaded)
    assert engine.idle_trim_interval == 10.0
    assert (engine.idle_trim.wait_time() is None) == (not available())  # glibc only
    engine.close()


@pytest.mark.skipif(not sys.platform.startswith("linux") or not packed.available(),
                    reason="needs glibc's mallinfo2 and torch's oneDNN linear operations")
def test_packed_layers_shape_caches_are_bounded(tmp_path):
    # A fresh process, so the caches' capacities are read from what importing the package set:
    # 300 distinct input shapes through one packed layer. With the default capacities (1,024
    # shapes each) the in-use heap grows ~0.27 MiB per new shape throughout; bounded at 64
    # it stops growing once 64 shapes are held.
    script = textwrap.dedent("""
        import ctypes, torch
        from langchain_attention_buckets.engine.packed import PackedLinear
        libc = ctypes.CDLL("libc.so.6")
        class Info(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in
                        ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                         "fordblks", "keepcost")]
        libc.mallinfo2.restype = Info
        def in_use():
            m = libc.mallinfo2()
            return m.uordblks + m.hblkhd
        torch.manual_seed(0)
        layer = PackedLinear(torch.nn.Linear(576, 576, bias=False))
        with torch.inference_mode():
            for m in range(1, 301):
                layer(torch.randn(m, 576))  # a new shape each time
                if m == 100:
                    start = in_use()
        print((in_use() - start) / 2**20)  # MiB
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(packed.__file__)))  # this checkout's package
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    try:
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                             check=True).stdout
    except subprocess.CalledProcessError as e:
        if "mallinfo2" in e.stderr:
            pytest.skip("this C library has no mallinfo2")
        raise
    growth_mib = float(out.strip().splitlines()[-1])
    assert growth_mib < 10, f"the in-use heap grew {growth_mib:.1f} MiB over 200 new input shapes"
