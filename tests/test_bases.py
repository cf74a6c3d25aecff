"""Base sets: the reference search, validation, resolution, coverage, plot."""

import math

import numpy as np
import pytest

from langchain_attention_buckets.engine import bases as B

SMOL = dict(head_dim=64, base=100000.0, context_length=8192)  # the embedded model


# ---------------------------------------------------------------- waveform


@pytest.mark.parametrize("m, base, d", [(1, 10000, 128), (1000, 10000, 128), (4090, 18000, 128), (2500, 1e5, 64)])
def test_waveform_matches_formula(m, base, d):
    want = sum(2 * math.cos(m * base ** (-2 * j / d)) for j in range(d // 2)) / math.sqrt(d)
    assert B.attention_waveform([m], base, d)[0] == pytest.approx(want, abs=1e-12)


def test_waveform_at_zero_is_sqrt_d_and_keeps_shape():
    f = B.attention_waveform(np.zeros((2, 3)), 10000, 64)
    assert f.shape == (2, 3) and f.dtype == np.float64
    assert np.allclose(f, math.sqrt(64))


def test_fast_range_waveform_equals_direct():
    m = np.arange(2000, 8181)
    assert np.allclose(B._waveform_range(2000, 8180, 1e5, 64), B.attention_waveform(m, 1e5, 64), atol=1e-9)


# ---------------------------------------------------------------- reference search


def test_reference_search_reproduces_basic_py():
    got = B.search_bases(
        head_dim=128, base=10000, n=6, min_distance=1000, max_distance=4090, start=[10000, 18000, 19000]
    )
    assert got == (10000.0, 18000.0, 19000.0, 20500.0, 24000.0, 24500.0)


def test_reference_dominant_extrema():
    # basic.py's find_peak_points / find_trough_points for base 10000 (positions as distances)
    f = B.attention_waveform(np.arange(1000, 4091), 10000, 128)
    rules = B._Rules()
    assert [1000 + i for i in B._dominant_peaks(f, rules)] == [1030, 1189, 1375, 1589, 1835, 2118]
    assert [1000 + i for i in B._dominant_troughs(f, rules)] == [1970, 2290, 2629, 3044, 3515, 4060]


def test_reference_setting_has_unit_scale():
    assert B._tolerance_scale(128, 10000, 1000) == 1.0
    assert B._Rules.scaled(1.0) == B._Rules()


def test_search_default_candidates_are_ratios_of_base():
    got = B.search_bases(head_dim=64, base=100000, n=6, min_distance=2000, max_distance=8180)
    assert got[0] == 100000.0 and len(set(got)) == 6
    assert all(x / 100000 * 20 == round(x / 100000 * 20) and 1 <= x / 100000 <= 3 for x in got)


def test_search_custom_candidates_and_errors():
    got = B.search_bases(head_dim=128, base=10000, n=3, min_distance=1000, max_distance=4090, candidates=[20000, 18000])
    assert got == (10000.0, 18000.0, 20000.0)
    with pytest.raises(ValueError, match="unused candidates"):
        B.search_bases(head_dim=128, base=10000, n=4, min_distance=1000, max_distance=4090, candidates=[20000, 18000])
    with pytest.raises(ValueError, match="start bases"):
        B.search_bases(head_dim=128, base=10000, n=1, min_distance=1000, max_distance=4090, start=[10000, 20000])
    with pytest.raises(ValueError, match="head_dim=63"):
        B.search_bases(head_dim=63, base=10000, n=2, min_distance=1000, max_distance=4090)


def test_search_survives_where_reference_crashes():
    # basic.py raises IndexError on this range; we still return n distinct bases
    got = B.search_bases(head_dim=128, base=10000, n=6, min_distance=800, max_distance=3000, tolerance_scale=1.0)
    assert len(set(got)) == 6 and got[0] == 10000.0


# ---------------------------------------------------------------- auto


def test_auto_distance_range_matches_reference():
    assert B.auto_distance_range(4096) == (1000, 4090)
    assert B.auto_distance_range(8192) == (2000, 8180)


def test_auto_llama2_is_the_reference_search_from_base_alone():
    got = B.auto_bases(head_dim=128, base=10000, context_length=4096)
    assert got == B.search_bases(head_dim=128, base=10000, n=6, min_distance=1000, max_distance=4090)
    assert got == (10000.0, 15500.0, 16000.0, 18000.0, 19000.0, 20500.0)


def test_auto_embedded_model_is_deterministic_and_cached():
    B._auto_search.cache_clear()
    first = B.auto_bases(**SMOL)
    assert first == (100000.0, 105000.0, 130000.0, 175000.0, 180000.0, 245000.0)
    assert B.auto_bases(**SMOL) is first
    assert B._auto_search.cache_info().hits == 1
    B._auto_search.cache_clear()
    assert B.auto_bases(**SMOL) == first  # recomputed, same answer


@pytest.mark.parametrize("n", [1, 2, 12])
def test_auto_sizes(n):
    got = B.auto_bases(**SMOL, n=n)
    assert len(got) == n == len(set(got)) and got[0] == 100000.0


def test_auto_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n=33"):
        B.auto_bases(**SMOL, n=33)
    with pytest.raises(ValueError, match="context_length=8"):
        B.auto_bases(head_dim=64, base=1e5, context_length=8)
    with pytest.raises(ValueError, match="base=-1"):
        B.auto_bases(head_dim=64, base=-1, context_length=8192)


# ---------------------------------------------------------------- validation


def test_validate_accepts_numbers_and_sequences():
    assert B.validate_bases(10000) == (10000.0,)
    assert B.validate_bases(np.float32(5e5)) == (5e5,)
    assert B.validate_bases([10000, 17500.5]) == (10000.0, 17500.5)
    assert B.validate_bases(np.array([1e4, 2e4])) == (1e4, 2e4)
    assert B.validate_bases(range(1, 33)) == tuple(float(x) for x in range(1, 33))


@pytest.mark.parametrize(
    "bad, named",
    [
        (True, "True"),
        ("10000", "'10000'"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (0, "0"),
        (-10000, "-10000"),
        ([], "[]"),
        ([10000, [20000]], "[20000]"),
        ([10000, None], "None"),
        ([10000, False], "False"),
        ([10000, float("nan")], "nan"),
        ([10000, 18000, 10000], "10000"),
        (list(range(1, 34)), "33 bases"),
        (None, "None"),
    ],
)
def test_validate_rejects_and_names_the_value(bad, named):
    with pytest.raises(ValueError) as err:
        B.validate_bases(bad)
    msg = str(err.value)
    assert named in msg and "Allowed:" in msg


# ---------------------------------------------------------------- paper / resolve


def test_paper_bases_scale_with_model_base():
    assert B.paper_bases(10000) == B.PAPER_TOOL_BASES
    assert B.paper_bases(100000) == (100000.0, 175000.0, 180000.0, 190000.0, 200000.0, 250000.0)


def test_resolve_each_spec():
    kw = dict(SMOL)
    assert B.resolve_bases("paper", **kw) == B.paper_bases(1e5)
    assert B.resolve_bases(" Auto ", **kw) == B.auto_bases(**SMOL)
    assert B.resolve_bases("auto", **kw, n=3) == B.auto_bases(**SMOL, n=3)
    assert B.resolve_bases(100000, **kw) == (100000.0,)
    assert B.resolve_bases([100000], **kw) == (100000.0,)
    assert B.resolve_bases((1e5, 2e5), **kw) == (1e5, 2e5)


@pytest.mark.parametrize("spec", ["best", "", None, {"a": 1}, [1e5, "auto"], -5])
def test_resolve_rejects_with_allowed_list(spec):
    with pytest.raises(ValueError) as err:
        B.resolve_bases(spec, **SMOL)
    msg = str(err.value)
    assert repr(spec) in msg or repr(spec)[:20] in msg
    assert '"paper"' in msg and '"auto"' in msg and "1..32" in msg


def test_resolve_warns_when_n_is_ignored():
    with pytest.warns(UserWarning, match="n=3"):
        B.resolve_bases("paper", **SMOL, n=3)
    with pytest.warns(UserWarning, match="n=3"):
        B.resolve_bases([1e5, 2e5], **SMOL, n=3)


# ---------------------------------------------------------------- coverage / plot


def test_coverage_numbers():
    lo, hi = B.auto_distance_range(8192)
    one = B.coverage([1e5], head_dim=64, min_distance=lo, max_distance=hi)
    many = B.coverage(B.auto_bases(**SMOL), head_dim=64, min_distance=lo, max_distance=hi)
    assert one["worst"] == one["single_worst"] == pytest.approx(one["waveforms"][0].min())
    assert many["waveforms"].shape == (6, hi - lo + 1) and many["envelope"].shape == (hi - lo + 1,)
    assert many["single_worst"] == one["worst"]
    assert many["worst"] > one["worst"] and many["p05"] > one["p05"] and many["mean"] > one["mean"]
    assert lo <= many["worst_at"] <= hi


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bases.png"
    B.plot_bases(B.auto_bases(**SMOL), head_dim=64, min_distance=2000, max_distance=8180, path=path)
    data = path.read_bytes()
    assert len(data) > 10_000 and data[:8] == b"\x89PNG\r\n\x1a\n"
