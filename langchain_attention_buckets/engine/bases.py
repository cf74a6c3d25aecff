"""Rotary base sets for Attention Buckets: choose them, check them, show them.

With RoPE, the pre-softmax score a query gives a key at distance ``m`` follows
the waveform ``f(m, base) = sum_j 2*cos(m * base**(-2j/d)) / sqrt(d)``. Its
troughs are distances the model under-attends. Attention Buckets runs one row
per base so that one row's trough is another row's peak.

Flow: ``resolve_bases(spec)`` ->
``"paper"`` -> :func:`paper_bases` |
``"near"``, ``"narrow"`` -> :func:`named_bases` (ratios around the model's own base) |
``"auto"`` -> :func:`auto_bases` -> :func:`search_bases` |
numbers -> :func:`validate_bases`.
:func:`coverage` and :func:`plot_bases` describe a chosen set.

:func:`search_bases` re-implements the base search of the reference code
(``attention-buckets/basic.py``, ``base_choose_method1``, in
AlibabaResearch/DAMO-ConvAI) step for step; where the reference would crash
(it runs out of extrema or finds no covering candidate) it degrades gracefully
instead, as documented on each helper.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from dataclasses import astuple, dataclass

import numpy as np

PAPER_TOOL_BASES: tuple[float, ...] = (10000.0, 17500.0, 18000.0, 19000.0, 20000.0, 25000.0)
_PAPER_REF_BASE = 10000.0  # PAPER_TOOL_BASES were chosen for this model base
PAPER_RATIOS: tuple[float, ...] = tuple(b / _PAPER_REF_BASE for b in PAPER_TOOL_BASES)  # x1, 1.75, ... 2.5
MAX_BUCKETS = 32
# Named sets as ratios of the model's own base, the trained base first. "near" and "narrow" stay
# inside or just around the trained range (ratios below 1 as well as above): rows the model
# reads almost as it was trained, unlike the paper set's 1.75-2.5x.
NAMED_RATIOS: dict[str, tuple[float, ...]] = {
    "paper": PAPER_RATIOS,
    "near": (1.0, 0.8, 0.9, 1.1, 1.25),
    "narrow": (1.0, 0.9, 1.1),
}

# The reference search's setting: Llama-2 (head_dim 128, base 10000, 4096
# positions), distances [1000, 4090]. Its token rules below hold for that
# setting; other settings rescale them (see _tolerance_scale).
_REF_HEAD_DIM, _REF_BASE = 128, 10000.0
_REF_CONTEXT, _REF_MIN_DISTANCE, _REF_MAX_DISTANCE = 4096, 1000, 4090
_N_EXTREMA = 6  # dominant peaks / troughs kept per base
_MATCH_TOL = 1e-3  # a local extremum "is" the window's extreme value within this
_RATIO_STEPS = range(20, 61)  # candidate ratios k/20: 1.00 .. 3.00 step 0.05

_ALLOWED = "a positive number or a list of 1..32 distinct positive numbers"
_NAMES = (*NAMED_RATIOS, "auto")
BASE_SET_NAMES = _NAMES
"""The named base sets ``bases`` accepts (besides numbers): the fixed ratio sets and the search."""

# Every base a chat model is given lies in BASE_RANGE (checked at construction, no model needed),
# and within BASE_RATIO_RANGE times the model's own base (checked once the model is known).
# Known models use 1e4..1e8; the paper's sets and the "auto" search use x1..x3 of the model's
# base. Far outside, the rotations stop telling positions apart (a base of 1e30 answers with
# template tokens), so such a base is a typo, not an experiment.
BASE_RANGE = (1e2, 1e10)
BASE_RATIO_RANGE = (0.1, 100.0)


# ---------------------------------------------------------------- waveform


def attention_waveform(distances, base: float, head_dim: int) -> np.ndarray:
    """RoPE pre-softmax score versus distance, ``f(m, base)``.

    Args:
        distances: Distances ``m`` (any array shape).
        base: The rotary base (``rope_theta``).
        head_dim: Attention head dimension ``d`` (even).

    Returns:
        float64 array shaped like ``distances``.
    """
    m = np.asarray(distances, dtype=np.float64)
    return 2.0 * np.cos(m[..., None] * _inv_freq(base, head_dim)).sum(-1) / np.sqrt(head_dim)


def _inv_freq(base: float, head_dim: int) -> np.ndarray:
    return base ** (-2.0 * np.arange(head_dim // 2) / head_dim)  # (d/2,)


def _waveform_range(lo: int, hi: int, base: float, head_dim: int, block: int = 256) -> np.ndarray:
    """``attention_waveform(np.arange(lo, hi + 1), ...)``, fast.

    With m = s + k (block start s, offset k), cos(a + b) = cos a cos b -
    sin a sin b turns the (M, d/2) cosines into two small tables and a
    matmul: ~10x faster for long contexts, equal to ~1e-12.
    """
    inv_freq = _inv_freq(base, head_dim)
    a = np.arange(lo, hi + 1, block)[:, None] * inv_freq  # (n_blocks, d/2)
    b = np.arange(block)[:, None] * inv_freq  # (block, d/2)
    f = np.cos(a) @ np.cos(b).T - np.sin(a) @ np.sin(b).T  # (n_blocks, block)
    return 2.0 * f.ravel()[: hi - lo + 1] / np.sqrt(head_dim)


# ---------------------------------------------------------------- validation


def _is_number(x) -> bool:
    # bool is an int subclass; True as a base is a bug, not 1.0
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _bad(value, why: str) -> ValueError:
    return ValueError(f"bases={value!r}: {why}. Allowed: {_ALLOWED}.")


def validate_bases(bases) -> tuple[float, ...]:
    """Check an explicit base set and return it as a tuple of floats.

    Duplicates are rejected: a repeated base costs a whole extra model row and
    only re-weights the merge, which is almost certainly a typo.

    Args:
        bases: One number, or a flat sequence of 1..``MAX_BUCKETS`` numbers.

    Returns:
        The bases as floats, in the given order.

    Raises:
        ValueError: For bools, strings, NaN/inf, zero or negative values,
            empty or nested sequences, more than ``MAX_BUCKETS`` values, or
            duplicates. The message names the bad value.
    """
    if isinstance(bases, np.ndarray) and bases.ndim == 0:
        bases = bases.item()
    if _is_number(bases):
        items = [bases]
    elif isinstance(bases, (str, bytes)) or not hasattr(bases, "__iter__"):
        raise _bad(bases, "not a number or a list of numbers")
    else:
        items = list(bases)
    if not items:
        raise _bad(bases, "empty")
    if len(items) > MAX_BUCKETS:
        raise _bad(bases, f"{len(items)} bases, more than MAX_BUCKETS={MAX_BUCKETS}")
    out = []
    for i, x in enumerate(items):
        if not _is_number(x):
            raise _bad(bases, f"item {i} ({x!r}) is not a number")
        v = float(x)
        if not math.isfinite(v) or v <= 0:
            raise _bad(bases, f"item {i} ({x!r}) is not a finite number > 0")
        out.append(v)
    dups = sorted({v for v in out if out.count(v) > 1})
    if dups:
        raise _bad(bases, f"{', '.join(f'{v:g}' for v in dups)} appears more than once")
    return tuple(out)


def _check_base(base) -> float:
    if not _is_number(base) or not math.isfinite(float(base)) or float(base) <= 0:
        raise ValueError(f"base={base!r}: the model's rotary base must be a finite number > 0")
    return float(base)


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not ok or value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        raise ValueError(f"{name}={value!r}: must be {allowed}")
    return int(value)


def _check_head_dim(head_dim) -> int:
    d = _check_int("head_dim", head_dim, 2)
    if d % 2:
        raise ValueError(f"head_dim={head_dim!r}: RoPE needs an even head dimension")
    return d


# ---------------------------------------------------------------- fixed sets


def paper_bases(model_base: float) -> tuple[float, ...]:
    """The paper's tool-use set as ratios of the model's own base.

    ``PAPER_TOOL_BASES`` were picked for Llama-2 (base 10000); scaling by
    ``model_base / 10000`` keeps the same ratios (x1, 1.75, 1.8, 1.9, 2.0, 2.5).

    Args:
        model_base: The model's ``rope_theta``.

    Returns:
        Six bases, the first equal to ``model_base``.
    """
    model_base = _check_base(model_base)
    return tuple(model_base * b / _PAPER_REF_BASE for b in PAPER_TOOL_BASES)


def named_bases(name: str, model_base: float) -> tuple[float, ...]:
    """A named set (``NAMED_RATIOS``: "paper", "near", "narrow") for a model's own base.

    Returns:
        The ratios times ``model_base``, the model's own base first.
    """
    if name == "paper":
        return paper_bases(model_base)
    if name not in NAMED_RATIOS:
        raise ValueError(f"bases={name!r} is not a named set; allowed: {', '.join(_NAMES)}")
    model_base = _check_base(model_base)
    return tuple(float(f"{model_base * r:.12g}") for r in NAMED_RATIOS[name])  # 110000, not 110000.00000000001


def anchor_first(bases: tuple[float, ...], model_base: float) -> tuple[float, ...]:
    """``bases`` with the model's own base moved to the front (the trained row of the anchored
    merge rules); the others keep their order.

    Raises:
        ValueError: ``model_base`` is not in ``bases``.
    """
    if model_base not in bases:
        raise ValueError(
            f"bases={list(bases)!r} lack the model's own rotary base {model_base:g}, which the anchored "
            f"merge rules need as their trained row; add it, or use a symmetric rule (confidence, mean, max)"
        )
    return (model_base, *(b for b in bases if b != model_base))


# ---------------------------------------------------------------- the search


@dataclass(frozen=True)
class _Rules:
    """Token rules of the reference search (values at scale 1 are basic.py's)."""

    peak_gap: int = 50  # kept peaks are more than this apart
    peak_step: int = 50  # the next peak window starts this far past a peak
    peak_window: int = 500  # ... and is this long
    trough_gap: int = 60  # kept troughs are more than this apart
    trough_step: int = 50  # the next trough search ends this far before a trough
    cover_tol: int = 3  # a peak within this of a trough covers it

    @classmethod
    def scaled(cls, scale: float) -> _Rules:
        ref = cls()
        return cls(*(max(1, math.floor(v * scale + 0.5)) for v in astuple(ref)))


def _tolerance_scale(head_dim: int, base: float, min_distance: int) -> float:
    """How much wider this waveform's dominant structure is than the reference's.

    ``f`` is close to log-periodic: scaling ``m`` by ``q = base**(2/d)`` shifts
    the frequency ladder by one rung, so dominant peaks near distance ``m``
    are about ``m * (q - 1)`` tokens apart. The reference rules were tuned
    where that spacing is ``1000 * (10000**(1/64) - 1)`` ~ 155 tokens; the
    ratio is 1.0 exactly in the reference setting.
    """
    q = base ** (2.0 / head_dim)
    q_ref = _REF_BASE ** (2.0 / _REF_HEAD_DIM)
    return (min_distance * (q - 1.0)) / (_REF_MIN_DISTANCE * (q_ref - 1.0))


def _local_extrema(f: np.ndarray, sign: float) -> np.ndarray:
    # strict interior extrema, like scipy.signal.argrelextrema(order=1)
    g = sign * f
    return np.flatnonzero((g[1:-1] > g[:-2]) & (g[1:-1] > g[2:])) + 1


def _dominant_peaks(f: np.ndarray, rules: _Rules) -> list[int]:
    """Indices of up to 6 dominant maxima, left to right (``find_peak_points``).

    Starts at the global maximum; each next target is the highest value in a
    window just past the last match, and the scan moves right to the local
    maximum holding that value. Stops early where the reference would raise
    IndexError (no maxima left).
    """
    idx = _local_extrema(f, 1.0)
    if idx.size == 0:
        return []
    target, res = f[idx].max(), []
    for i, p in enumerate(idx):
        if len(res) == _N_EXTREMA:
            break
        if abs(f[p] - target) > _MATCH_TOL:
            continue
        if not res or p - res[-1] > rules.peak_gap:
            res.append(int(p))
        if i + 1 == idx.size:
            break
        lo = min(p + rules.peak_step, idx[i + 1])
        target = f[lo : lo + rules.peak_window].max()
    return res


def _dominant_troughs(f: np.ndarray, rules: _Rules) -> list[int]:
    """Indices of up to 6 dominant minima, left to right (``find_trough_points``).

    Mirrors :func:`_dominant_peaks` from the right: starts at the global
    minimum, each next target is the minimum of everything left of it.
    """
    idx = _local_extrema(f, -1.0)
    if idx.size == 0:
        return []
    target, res = f[idx].min(), []
    for i in range(idx.size - 1, -1, -1):
        if len(res) == _N_EXTREMA:
            break
        t = idx[i]
        if abs(f[t] - target) > _MATCH_TOL:
            continue
        if not res or res[-1] - t > rules.trough_gap:
            res.append(int(t))
        # min(), not the nearer one: the reference's choice, kept as is
        hi = min(t - rules.trough_step, idx[i - 1]) if i > 0 else 0
        if hi <= 0:
            break
        target = f[:hi].min()
    return res[::-1]


def _cover(peaks: list[int], troughs: list[int], tol: int) -> tuple[int, float]:
    """(number of peak/trough pairs within ``tol``, sum of their squared gaps)."""
    gap = np.subtract.outer(np.asarray(peaks, int), np.asarray(troughs, int))
    hit = np.abs(gap) <= tol
    return int(hit.sum()), float((gap[hit] ** 2).sum())


def _merge(peaks: list[int], troughs: list[int], new_peaks, new_troughs):
    """Pool extrema; a peak landing exactly on a trough cancels both (``fliter``)."""
    peaks, troughs = sorted(peaks + new_peaks), sorted(troughs + new_troughs)
    both = set(peaks) & set(troughs)
    return [p for p in peaks if p not in both], [t for t in troughs if t not in both]


def _best_cover(extrema, pool, peaks, troughs, tol):
    """Candidate with the most covers, ties to the smaller mean squared gap
    (first in order on a full tie); None when nothing covers (``select_cover_max``)."""
    best, best_cover, best_dist = None, 0, math.inf
    for b in pool:
        cand_peaks, cand_troughs = extrema(b)
        c1, d1 = _cover(cand_peaks, troughs, tol)  # its peaks fill our troughs
        c2, d2 = _cover(peaks, cand_troughs, tol)  # our peaks fill its troughs
        cover = c1 + c2
        dist = (d1 + d2) / cover if cover else math.inf
        if cover > best_cover or (cover == best_cover and dist < best_dist):
            best, best_cover, best_dist = b, cover, dist
    return best


def _next_base(extrema, waveform, pool, peaks, troughs, envelope, rules, width):
    """One greedy step. Where the reference would append None (no candidate
    covers anything) widen the tolerance x2 at a time; if even the whole
    range covers nothing, take the candidate that most raises the envelope's
    minimum."""
    tol = rules.cover_tol
    while tol <= 2 * width:
        best = _best_cover(extrema, pool, peaks, troughs, tol)
        if best is not None:
            return best
        tol *= 2
    return max(pool, key=lambda b: np.maximum(envelope, waveform(b)).min())


def _candidates(candidates, base: float) -> list[float]:
    """Candidate bases in search order, duplicates dropped (first one kept)."""
    if candidates is None:
        # base * k / 20, not base * 0.05k: keeps 10000 -> 24500.0 exact, no float dust
        return [base * k / 20 for k in _RATIO_STEPS]
    items = [candidates] if _is_number(candidates) else list(candidates)
    if not items or not all(_is_number(x) and math.isfinite(x) and x > 0 for x in items):
        raise ValueError(f"candidates={candidates!r}: must be a non-empty list of finite numbers > 0")
    return list(dict.fromkeys(float(x) for x in items))


def search_bases(
    *,
    head_dim: int,
    base: float,
    n: int,
    min_distance: int,
    max_distance: int,
    candidates=None,
    start=None,
    tolerance_scale: float | None = None,
) -> tuple[float, ...]:
    """The reference peak/trough cover search (``basic.py``).

    1. ``f`` of every base over distances ``min_distance..max_distance``.
    2. Each base's dominant peaks and troughs (up to 6 each).
    3. Pool the extrema of the ``start`` set.
    4. Greedily add the candidate whose peaks land within ``cover_tol`` of
       the pooled troughs and whose troughs land near the pooled peaks (most
       such pairs; ties to the smaller mean squared gap), until ``n`` bases.

    The token rules (peak spacing 50, trough spacing 60, peak window 500,
    cover tolerance +-3) are the reference's times ``tolerance_scale``; by
    default that is the ratio of this waveform's dominant-peak spacing at
    ``min_distance`` to the reference's (1.0 for head_dim 128, base 10000,
    min_distance 1000, which reproduces basic.py exactly).

    Args:
        head_dim: Attention head dimension (even).
        base: The model's rotary base; default start and candidate scale.
        n: Number of bases wanted, ``len(start)..MAX_BUCKETS``.
        min_distance: Smallest query-key distance to protect (tokens).
        max_distance: Largest distance to protect (tokens).
        candidates: Absolute bases to choose from (default: ``base`` times
            1.00, 1.05, ..., 3.00; 10000..30000 step 500 for base 10000).
        start: Initial set (default ``(base,)``).
        tolerance_scale: Override the rule scale (1.0 = basic.py's numbers).

    Returns:
        ``n`` distinct bases: ``start[0]`` first, the rest ascending (the
        reference sorts its result; its start base is also the smallest).

    Raises:
        ValueError: On bad arguments, or fewer unused candidates than needed.
    """
    # 1. arguments
    head_dim, base = _check_head_dim(head_dim), _check_base(base)
    n = _check_int("n", n, 1, MAX_BUCKETS)
    lo = _check_int("min_distance", min_distance, 1)
    hi = _check_int("max_distance", max_distance, lo + 2)
    chosen = list(validate_bases((base,) if start is None else start))
    if n < len(chosen):
        raise ValueError(f"n={n}: smaller than the {len(chosen)} start bases")
    pool = [c for c in _candidates(candidates, base) if not _in(c, chosen)]
    if len(pool) < n - len(chosen):
        raise ValueError(f"n={n}: only {len(pool)} unused candidates for {n - len(chosen)} more bases")
    scale = _tolerance_scale(head_dim, base, lo) if tolerance_scale is None else tolerance_scale
    if not _is_number(scale) or not 0 < scale < math.inf:
        raise ValueError(f"tolerance_scale={tolerance_scale!r}: must be a finite number > 0")
    rules = _Rules.scaled(float(scale))

    # 2. waveform and dominant extrema per base, each computed once
    @functools.cache
    def waveform(b: float) -> np.ndarray:  # (M,)
        return _waveform_range(lo, hi, b, head_dim)

    @functools.cache
    def extrema(b: float) -> tuple[list[int], list[int]]:
        return _dominant_peaks(waveform(b), rules), _dominant_troughs(waveform(b), rules)

    # 3. pool the start set, then grow it greedily
    peaks, troughs = extrema(chosen[0])
    for b in chosen[1:]:
        peaks, troughs = _merge(peaks, troughs, *extrema(b))
    envelope = np.max([waveform(b) for b in chosen], axis=0)  # only for the last-resort fallback
    while len(chosen) < n:
        b = _next_base(extrema, waveform, pool, peaks, troughs, envelope, rules, hi - lo)
        chosen.append(b)
        pool.remove(b)
        peaks, troughs = _merge(peaks, troughs, *extrema(b))
        envelope = np.maximum(envelope, waveform(b))
    return (chosen[0], *sorted(chosen[1:]))


def _in(x: float, values) -> bool:
    return any(math.isclose(x, v, rel_tol=1e-9) for v in values)


# ---------------------------------------------------------------- auto


def auto_distance_range(context_length: int) -> tuple[int, int]:
    """Distances the ``auto`` search protects for a context window.

    The reference protects [1000, 4090] of Llama-2's 4096 positions, i.e. from
    about a quarter of the window (1000/4096) to its end (4090/4096); both
    fractions are kept, so 4096 gives exactly (1000, 4090) and 8192 gives
    (2000, 8180).
    """
    n = _check_int("context_length", context_length, 16)
    lo = math.floor(n * _REF_MIN_DISTANCE / _REF_CONTEXT + 0.5)
    hi = math.floor(n * _REF_MAX_DISTANCE / _REF_CONTEXT + 0.5)
    return lo, hi


def auto_bases(*, head_dim: int, base: float, context_length: int, n: int = 6) -> tuple[float, ...]:
    """The reference search, run for one model's own settings.

    Distances come from :func:`auto_distance_range` (the reference's
    [1000, 4090] as fractions of the window). Candidates are ratios
    1.00..3.00 step 0.05 of ``base``, and the search starts from ``base``
    alone, so the first base is always the model's own. The token rules scale
    with the spacing of the waveform's dominant peaks, which grows with
    distance and with ``base**(2/head_dim)`` (see ``search_bases``); for
    head_dim 64, base 1e5, 8192 positions they are ~5.6x the reference's.
    Results are cached per argument tuple.

    Args:
        head_dim: Attention head dimension.
        base: The model's ``rope_theta``.
        context_length: The model's context window (positions).
        n: Number of bases, 1..``MAX_BUCKETS``.

    Returns:
        ``n`` distinct bases, ``base`` first, the rest ascending.
    """
    return _auto_search(
        _check_head_dim(head_dim),
        _check_base(base),
        _check_int("context_length", context_length, 16),
        _check_int("n", n, 1, MAX_BUCKETS),
    )


@functools.lru_cache(maxsize=64)
def _auto_search(head_dim: int, base: float, context_length: int, n: int) -> tuple[float, ...]:
    lo, hi = auto_distance_range(context_length)
    return search_bases(head_dim=head_dim, base=base, n=n, min_distance=lo, max_distance=hi)


# ---------------------------------------------------------------- resolve


def resolve_bases(
    spec, *, head_dim: int, base: float, context_length: int, n: int | None = None
) -> tuple[float, ...]:
    """Turn a user's ``bases`` setting into a concrete base set.

    Args:
        spec: ``"paper"``, ``"near"``, ``"narrow"``, ``"auto"``, a positive number, or a
            list of 1..32 distinct positive numbers.
        head_dim: The model's head dimension (for ``"auto"``).
        base: The model's ``rope_theta``.
        context_length: The model's context window (for ``"auto"``).
        n: Set size for ``"auto"`` (default 6); ignored with a warning
            otherwise.

    Returns:
        The bases as a tuple of floats.

    Raises:
        ValueError: Naming the value and listing what is allowed.
    """
    checked = check_bases_spec(spec)
    if checked == "auto":
        n = 6 if n is None else n
        return auto_bases(head_dim=head_dim, base=base, context_length=context_length, n=n)
    _warn_ignored_n(n, spec)
    return named_bases(checked, base) if isinstance(checked, str) else check_bases_for_model(checked, base)


def check_bases_for_model(bases: tuple[float, ...], model_base: float) -> tuple[float, ...]:
    """``bases`` if each lies within ``BASE_RATIO_RANGE`` times ``model_base``, else ValueError."""
    lo, hi = (r * model_base for r in BASE_RATIO_RANGE)
    far = [b for b in bases if not lo <= b <= hi]
    if far:
        raise ValueError(
            f"bases={list(bases)!r}: {', '.join(f'{b:g}' for b in far)} is too far from the model's own "
            f"rotary base {model_base:g}; allowed: {lo:g} to {hi:g} "
            f"({BASE_RATIO_RANGE[0]:g}x to {BASE_RATIO_RANGE[1]:g}x the model's base)"
        )
    return bases


def check_bases_spec(spec) -> str | tuple[float, ...]:
    """A ``bases`` setting checked: the name ("paper", "near", "narrow" or "auto", case and spaces
    ignored) or the bases.

    Raises:
        ValueError: Naming the value and listing what is allowed.
    """
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in _NAMES:
            return key
        raise ValueError(
            f"bases={spec!r} is not allowed; use 'paper', 'auto', 'near', 'narrow', {_ALLOWED} "
            '("paper": the reference tool-use set as ratios of the model\'s own base; '
            '"near": x1, 0.8, 0.9, 1.1, 1.25 of it; "narrow": x1, 0.9, 1.1; '
            '"auto": the peak/trough cover search for this model)'
        )
    try:
        bases = validate_bases(spec)
    except ValueError as err:
        raise ValueError(f'{err} Or one of the names "paper", "near", "narrow" and "auto".') from None
    lo, hi = BASE_RANGE
    far = [b for b in bases if not lo <= b <= hi]
    if far:
        raise ValueError(
            f"bases={spec!r}: {', '.join(f'{b:g}' for b in far)} is outside the range of rotary bases "
            f"this package runs, {lo:g} to {hi:g} (known models use 1e4 to 1e8)"
        )
    return bases


def _warn_ignored_n(n, spec) -> None:
    if n is not None:
        warnings.warn(f"n={n!r} applies only to bases='auto'; ignored for bases={spec!r}", stacklevel=3)


# ---------------------------------------------------------------- inspect


def coverage(bases, *, head_dim: int, min_distance: int, max_distance: int) -> dict:
    """Numbers for how well a set fills the waveform's troughs.

    The envelope is the per-distance max over bases of ``f``: a trough of one
    base is "covered" where another base is high. It is a proxy (the engine
    merges logits, not scores), and it favours bigger sets, so compare sets
    of equal size.

    Args:
        bases: The set; ``bases[0]`` (the model's own base) is the baseline.
        head_dim: Attention head dimension.
        min_distance: First distance.
        max_distance: Last distance.

    Returns:
        dict with arrays ``distances`` (M,), ``waveforms`` (N, M),
        ``envelope`` (M,), and floats ``worst`` (min of the envelope),
        ``worst_at`` (its distance), ``p05`` (5th percentile; the min is
        set by the fine ripple, p05 by the broad troughs), ``mean``, and
        ``single_worst``, ``single_p05``, ``single_mean`` for ``bases[0]``
        alone.
    """
    bases = validate_bases(bases)
    head_dim = _check_head_dim(head_dim)
    lo = _check_int("min_distance", min_distance, 1)
    hi = _check_int("max_distance", max_distance, lo + 1)
    m = np.arange(lo, hi + 1)
    waves = np.stack([_waveform_range(lo, hi, b, head_dim) for b in bases])  # (N, M)
    env = waves.max(0)
    return {
        "distances": m,
        "waveforms": waves,
        "envelope": env,
        "worst": float(env.min()),
        "worst_at": int(m[env.argmin()]),
        "p05": float(np.percentile(env, 5)),
        "mean": float(env.mean()),
        "single_worst": float(waves[0].min()),
        "single_p05": float(np.percentile(waves[0], 5)),
        "single_mean": float(waves[0].mean()),
    }


def _moving_mean(x: np.ndarray, w: int) -> np.ndarray:
    # valid-mode: no zero padding dragging the ends down
    return np.convolve(x, np.ones(w) / w, mode="valid")


def plot_bases(bases, *, head_dim: int, min_distance: int, max_distance: int, path) -> None:
    """Save a PNG: each base's waveform, and how the envelope fills troughs.

    Top: each base's ``f(m)`` smoothed by a moving mean (the raw curves are
    dominated by a ~6-token ripple that hides the broad troughs). Bottom: raw
    ``f`` of ``bases[0]`` alone against the envelope (max over bases), with
    both worst cases.

    Args:
        bases: The set to draw.
        head_dim: Attention head dimension.
        min_distance: First distance on the x axis.
        max_distance: Last distance on the x axis.
        path: Output file (PNG).
    """
    # Figure + Agg canvas instead of pyplot: no global backend switch, no GUI
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bases = validate_bases(bases)
    cov = coverage(bases, head_dim=head_dim, min_distance=min_distance, max_distance=max_distance)
    m, waves, env = cov["distances"], cov["waveforms"], cov["envelope"]
    w = min(max(1, m.size // 64), m.size)
    m_s = _moving_mean(m.astype(float), w)

    fig = Figure(figsize=(10, 6.5), dpi=90)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    for b, f in zip(bases, waves):
        top.plot(m_s, _moving_mean(f, w), lw=1.1, label=f"base {b:g}")
    top.plot(m_s, _moving_mean(env, w), color="black", lw=2, label="envelope")
    top.set_title(f"RoPE attention waveform f(m), head_dim={head_dim} (moving mean over {w} tokens)")
    top.set_ylabel("pre-softmax score")
    top.legend(fontsize=7, ncol=4, loc="upper right")

    bottom.plot(m, waves[0], lw=0.5, color="tab:blue", alpha=0.7, label=f"base {bases[0]:g} alone")
    bottom.plot(m, env, lw=0.5, color="black", label=f"envelope of {len(bases)} bases")
    bottom.axhline(cov["single_worst"], color="tab:blue", ls=":", lw=1, label="worst, alone")
    bottom.axhline(cov["worst"], color="black", ls="--", lw=1, label="worst, envelope")
    bottom.set_title("raw f(m): troughs of one base, filled by the others", fontsize=10)
    bottom.set_xlabel("query-key distance m (tokens)")
    bottom.set_ylabel("pre-softmax score")
    bottom.legend(fontsize=7, ncol=4, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, format="png")
