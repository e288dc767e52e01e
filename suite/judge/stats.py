"""Seed-level statistics: summaries, bootstrap confidence intervals and effect sizes.

Pure functions on numpy arrays, in the style of rliable's ``metrics.py`` / ``library.py``
(Agarwal et al., 2021, "Deep Reinforcement Learning at the Edge of the Statistical Precipice",
https://github.com/google-research/rliable). One array element is one seed's final metric.

NaN policy
----------
Every function here takes *finite* 1-D arrays and raises ``ValueError`` on NaN or +-inf. A run
that diverged (NaN loss, inf score) is information, not noise: the caller splits it off with
:func:`split_finite`, reports the count of non-finite runs next to the statistics, and decides
what the comparison means. Nothing is ever dropped silently here.

Which interval
--------------
Claims are judged with **Student-t intervals**, chosen by simulation at the seed counts the
suite runs (3-30 per arm; ``bench/verdict_calibration.py``, and the numbers in
``tests/test_stats.py``): the percentile bootstrap of a mean at n = 3 is close to [min, max]
and covers the true mean about 75% of the time at a nominal 95%, while the t interval is exact
for normal seeds and close for skewed ones (Colas et al. 2018, Sec. 4, use Welch's t-test for
the same reason).

* :func:`mean_t_ci`: one arm's mean (value claims).
* :func:`paired_t_ci`: mean(A - B) over shared seeds (the runner pairs seeds across arms).
* :func:`welch_t_ci`: mean(A) - mean(B) from independent samples, Welch's standard error with
  Hsu's min(n_A, n_B) - 1 df (conservative at 3 vs 30 seeds, where Welch-Satterthwaite is not).
* :func:`ratio_t_ci`: a relative effect as the ratio of geometric means minus 1, from a t
  interval on the per-seed logs (paired or unpaired), mapped back by exp: asymmetric, never
  below -100%, and defined only for positive values in both arms (a "22% higher" of negative
  returns has no meaning; the caller says so instead).
* :func:`t_parts`: the centre, standard error and df of all of these along the last axis of
  arrays, so that ``bench/verdict_calibration.py`` computes thousands of intervals at once.
* :func:`probability_of_improvement_ci`: P(A > B) with Newcombe's (2006) score interval
  (method 5) using a t quantile (df = n + m - 2) instead of z, so that 3 vs 3 seeds with
  complete separation gives [0.34, 1], not [1, 1].

Every such :class:`Effect` records its ``method``, ``confidence``, standard error ``se`` and
``df`` (on the scale it is symmetric on: raw units, or the log ratio), so the caller can print
the interval's name and level and compute p-values (:func:`effect_p_value`).

Bootstrap
---------
The bootstrap intervals (:func:`bootstrap_ci`, :func:`stratified_bootstrap_ci`, the
``*_difference_ci`` functions) are percentile intervals (Efron & Tibshirani, 1993, ch. 13),
computed vectorised: one ``(n_resamples, n)`` index matrix is drawn from
``numpy.random.default_rng(seed)`` and the statistic is taken along axis 1, so results are
deterministic given ``seed``. They serve per-arm summaries and curves over many runs; they do
not hold their level at 3-5 seeds, so no verdict rests on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

__all__ = [
    "STATISTICS",
    "Effect",
    "Statistic",
    "Summary",
    "bootstrap_ci",
    "effect_p_value",
    "holm",
    "iqm",
    "mean_t_ci",
    "paired_difference_ci",
    "paired_t_ci",
    "ratio_t_ci",
    "t_parts",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "seeds_needed",
    "split_finite",
    "stratified_bootstrap_ci",
    "summarize",
    "unpaired_difference_ci",
    "welch_t_ci",
]

Statistic = Literal["mean", "median", "iqm"]
STATISTICS: tuple[str, ...] = ("mean", "median", "iqm")

# Interval names, as reports print them.
WELCH = "Welch t (Hsu df)"
LOG_PAIRED = "log paired t (geometric means)"
LOG_WELCH = "log Welch t (geometric means, Hsu df)"

# rliable's IQM: scipy.stats.trim_mean with proportiontocut=0.25 (rliable/metrics.py,
# aggregate_iqm). trim_mean cuts int(0.25 * n) values from each end.
_IQM_CUT = 0.25


@dataclass(frozen=True)
class Summary:
    """Point summaries of one arm's per-seed metric.

    ``std`` uses ddof=1 and is NaN when ``n < 2``; every field but ``n`` is NaN when ``n == 0``.
    """

    n: int
    mean: float
    median: float
    iqm: float
    std: float


@dataclass(frozen=True)
class Effect:
    """An effect estimate with its confidence interval (bootstrap or t; ``method`` says which).

    ``n`` is the number of seeds per arm the effect rests on: the number of pairs when
    ``paired``, else the smaller arm's size. All floats are NaN when ``n == 0``.
    """

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    paired: bool
    method: str = "percentile bootstrap"
    """the interval's name, for reports ("paired t", "Welch t (Hsu df)", ...)"""
    confidence: float = 0.95
    """the two-sided level the interval was computed at"""
    center: float = float("nan")
    """the estimate on the scale the interval is symmetric on (raw, or log(mean A / mean B))"""
    se: float = float("nan")
    """standard error of ``center`` (t intervals only)"""
    df: float = float("nan")
    """degrees of freedom of the t quantile (t intervals only)"""
    log_scale: bool = False
    """True when ``center``/``se`` are on the log scale (relative effects: log A - log B)"""


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def split_finite(x: npt.ArrayLike) -> tuple[np.ndarray, int]:
    """Split per-seed values into the finite ones and a count of the rest.

    Args:
      x: array-like of shape (n,) (a scalar counts as n=1).

    Returns:
      ``(finite, n_nonfinite)``: a float64 array of shape (n_finite,) keeping the original order,
      and the number of NaN / +-inf entries removed. Report ``n_nonfinite`` (e.g. as "diverged
      runs") alongside any statistic computed on ``finite``.
    """
    arr = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D array of per-seed values, got shape {arr.shape}")
    mask = np.isfinite(arr)
    return arr[mask], int(arr.size - np.count_nonzero(mask))


def _finite_1d(x: npt.ArrayLike, name: str = "x") -> np.ndarray:
    """``x`` as a float64 array of shape (n,); ValueError if not 1-D or not all finite."""
    arr = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of per-seed values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name}: {bad} non-finite value(s); separate diverged runs with split_finite() "
            "and report them instead of passing them here"
        )
    return arr


def _check_bootstrap_args(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


def _statistic_fn(statistic: str) -> Callable[[np.ndarray, int], np.ndarray]:
    """A vectorised ``f(x, axis)`` for the named statistic."""
    if statistic == "mean":
        return lambda x, axis: np.mean(x, axis=axis)
    if statistic == "median":
        return lambda x, axis: np.median(x, axis=axis)
    if statistic == "iqm":
        return lambda x, axis: sps.trim_mean(x, _IQM_CUT, axis=axis)
    raise ValueError(f"unknown statistic {statistic!r}; expected one of {STATISTICS}")


def _percentile_interval(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of a bootstrap distribution of shape (n_resamples,)."""
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


# --------------------------------------------------------------------------------------------
# Point summaries
# --------------------------------------------------------------------------------------------


def iqm(x: npt.ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50% of the values.

    Agarwal et al. (2021), Sec. 4; computed as rliable does, ``scipy.stats.trim_mean(x, 0.25)``,
    which trims ``int(0.25 * n)`` values from each end (so for n < 4 it equals the mean).

    Args:
      x: finite values, shape (n,).

    Returns:
      The IQM; NaN when n == 0.
    """
    arr = _finite_1d(x)
    if arr.size == 0:
        return float("nan")
    return float(sps.trim_mean(arr, _IQM_CUT))


def summarize(x: npt.ArrayLike) -> Summary:
    """n, mean, median, IQM and sample standard deviation (ddof=1) of finite values, shape (n,)."""
    arr = _finite_1d(x)
    n = int(arr.size)
    if n == 0:
        nan = float("nan")
        return Summary(n=0, mean=nan, median=nan, iqm=nan, std=nan)
    std = float(np.std(arr, ddof=1)) if n >= 2 else float("nan")
    return Summary(
        n=n,
        mean=float(np.mean(arr)),
        median=float(np.median(arr)),
        iqm=float(sps.trim_mean(arr, _IQM_CUT)),
        std=std,
    )


# --------------------------------------------------------------------------------------------
# Bootstrap intervals for one arm
# --------------------------------------------------------------------------------------------


def bootstrap_ci(
    x: npt.ArrayLike,
    statistic: Statistic = "mean",
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a statistic of one arm.

    Args:
      x: finite per-seed values, shape (n,).
      statistic: "mean", "median" or "iqm".
      confidence: coverage of the two-sided interval.
      n_resamples: bootstrap replicates.
      seed: seed of the ``numpy.random.Generator`` drawing the (n_resamples, n) index matrix.

    Returns:
      ``(low, high)``. For n == 1 the interval collapses to ``(x[0], x[0])``; for n == 0 it is
      ``(nan, nan)``.
    """
    arr = _finite_1d(x)
    _check_bootstrap_args(confidence, n_resamples)
    fn = _statistic_fn(statistic)
    n = arr.size
    if n == 0:
        return float("nan"), float("nan")
    if n == 1:
        return float(arr[0]), float(arr[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_resamples), n))
    return _percentile_interval(fn(arr[idx], 1), confidence)


def _strata(scores: Mapping[str, npt.ArrayLike] | npt.ArrayLike) -> list[np.ndarray]:
    """Per-task 1-D finite arrays from a {task: runs} mapping or a (runs, tasks) matrix."""
    if isinstance(scores, Mapping):
        return [_finite_1d(v, name=f"scores[{k!r}]") for k, v in scores.items()]
    mat = np.asarray(scores, dtype=np.float64)
    if mat.ndim != 2:
        raise ValueError(f"expected a (runs, tasks) matrix or a dict of arrays, got {mat.shape}")
    return [_finite_1d(mat[:, j], name=f"scores[:, {j}]") for j in range(mat.shape[1])]


def stratified_bootstrap_ci(
    scores: Mapping[str, npt.ArrayLike] | npt.ArrayLike,
    statistic: Statistic = "mean",
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Stratified percentile bootstrap CI of a statistic pooled over several tasks.

    Runs are resampled with replacement *within* each task, so every replicate keeps each
    task's number of runs (rliable's ``StratifiedBootstrap``). The aggregate is rliable's:
    "mean" is the mean of the per-task means (each task weighs the same, whatever its run
    count); "median" and "iqm" are taken over the pooled replicate (rliable's aggregate over all
    runs x tasks, which weights tasks by run count when the counts differ).

    Args:
      scores: ``{task: values of shape (n_task,)}`` (tasks may differ in run count) or a matrix of
        shape (n_runs, n_tasks). Values must be finite.
      statistic, confidence, n_resamples, seed: as in :func:`bootstrap_ci`.

    Returns:
      ``(low, high)``; ``(nan, nan)`` when there are no values at all. A task with no runs next
      to tasks that have some raises ``ValueError``: it would silently change the aggregate.
    """
    strata = _strata(scores)
    _check_bootstrap_args(confidence, n_resamples)
    fn = _statistic_fn(statistic)
    sizes = [s.size for s in strata]
    if sum(sizes) == 0:
        return float("nan"), float("nan")
    if min(sizes) == 0:
        raise ValueError("a task has no runs; drop it explicitly or report it as not-run")
    rng = np.random.default_rng(seed)
    draws = [s[rng.integers(0, s.size, size=(int(n_resamples), s.size))] for s in strata]
    if statistic == "mean":
        # rliable's aggregate mean is the mean of the per-task means: every task weighs the
        # same whatever its run count (pooling the runs would weight tasks by run count).
        return _percentile_interval(np.mean([d.mean(axis=1) for d in draws], axis=0), confidence)
    return _percentile_interval(fn(np.concatenate(draws, axis=1), 1), confidence)


# --------------------------------------------------------------------------------------------
# Two-arm effects
# --------------------------------------------------------------------------------------------


def _relative(mean_a: np.ndarray | float, mean_b: np.ndarray | float) -> np.ndarray:
    # A replicate whose B-mean is 0 gives +-inf (or NaN for 0/0); np.quantile orders +-inf
    # correctly, so such replicates widen the interval rather than crash it.
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(mean_a, dtype=np.float64) / np.asarray(mean_b, dtype=np.float64) - 1.0


def _check_relative_base(b: np.ndarray) -> None:
    if float(np.mean(b)) == 0.0:
        raise ValueError("relative effect undefined: mean of arm B is 0")


def paired_difference_ci(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    relative: bool = False,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Effect:
    """Effect of arm A over arm B when both were run on the same seeds.

    ``a[i]`` and ``b[i]`` must come from the same seed. Pairs are resampled together (one index
    matrix applied to both arms), which removes seed-to-seed variance shared by the two arms.

    * ``relative=False``: effect = mean(a - b); CI by bootstrapping the differences.
    * ``relative=True``: effect = mean(a) / mean(b) - 1 (e.g. +0.22 = A is 22% higher); each
      replicate applies the same resampled indices to both arms. Only meaningful for a metric of
      constant sign (a negative mean(b) flips the meaning of "higher").

    Args:
      a, b: finite per-seed values, shape (n,) each.
      relative, confidence, n_resamples, seed: see above and :func:`bootstrap_ci`.

    Returns:
      ``Effect(estimate, ci_low, ci_high, n, paired=True)``; n == 1 gives a zero-width interval,
      n == 0 gives NaNs.
    """
    xa, xb = _finite_1d(a, "a"), _finite_1d(b, "b")
    if xa.shape != xb.shape:
        raise ValueError(f"paired arms need equal length, got {xa.size} and {xb.size}")
    _check_bootstrap_args(confidence, n_resamples)
    n = int(xa.size)
    if n == 0:
        nan = float("nan")
        return Effect(nan, nan, nan, 0, paired=True)
    if relative:
        _check_relative_base(xb)
        estimate = float(_relative(np.mean(xa), np.mean(xb)))
    else:
        d = xa - xb
        estimate = float(np.mean(d))
    if n == 1:
        return Effect(estimate, estimate, estimate, 1, paired=True)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_resamples), n))
    if relative:
        boot = _relative(np.mean(xa[idx], axis=1), np.mean(xb[idx], axis=1))
    else:
        boot = np.mean(d[idx], axis=1)
    low, high = _percentile_interval(boot, confidence)
    return Effect(estimate, low, high, n, paired=True)


def unpaired_difference_ci(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    relative: bool = False,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Effect:
    """Effect of arm A over arm B from independent samples (no shared seeds, or unequal n).

    Each arm is resampled independently (rliable's ``StratifiedIndependentBootstrap`` with one
    task). Effect = mean(a) - mean(b), or mean(a) / mean(b) - 1 with ``relative=True``.

    Args:
      a: finite per-seed values of arm A, shape (n_a,).
      b: finite per-seed values of arm B, shape (n_b,).
      relative, confidence, n_resamples, seed: as in :func:`paired_difference_ci`.

    Returns:
      ``Effect(estimate, ci_low, ci_high, n=min(n_a, n_b), paired=False)``; NaNs if an arm is
      empty; a zero-width interval if both arms have one value.
    """
    xa, xb = _finite_1d(a, "a"), _finite_1d(b, "b")
    _check_bootstrap_args(confidence, n_resamples)
    n = int(min(xa.size, xb.size))
    if n == 0:
        nan = float("nan")
        return Effect(nan, nan, nan, 0, paired=False)
    if relative:
        _check_relative_base(xb)
        estimate = float(_relative(np.mean(xa), np.mean(xb)))
    else:
        estimate = float(np.mean(xa) - np.mean(xb))
    rng = np.random.default_rng(seed)
    r = int(n_resamples)
    mean_a = np.mean(xa[rng.integers(0, xa.size, size=(r, xa.size))], axis=1)
    mean_b = np.mean(xb[rng.integers(0, xb.size, size=(r, xb.size))], axis=1)
    boot = _relative(mean_a, mean_b) if relative else mean_a - mean_b
    low, high = _percentile_interval(boot, confidence)
    return Effect(estimate, low, high, n, paired=False)


# --------------------------------------------------------------------------------------------
# Student-t intervals (what claims are judged with; see the module docstring)
# --------------------------------------------------------------------------------------------


def _t_quantile(confidence: float, df: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return float(sps.t.ppf(0.5 + confidence / 2.0, df))


def _t_effect(
    center: float,
    se: float,
    df: float,
    n: int,
    paired: bool,
    method: str,
    confidence: float,
    log_scale: bool = False,
    ratio: float = float("nan"),
) -> Effect:
    """An Effect from a t statistic's centre, standard error and df (NaN interval when df < 1)."""
    nan = float("nan")
    if not df >= 1 or not np.isfinite(se):
        estimate = ratio - 1.0 if log_scale else center
        return Effect(estimate, nan, nan, n, paired, method, confidence, center, se, df, log_scale)
    half = _t_quantile(confidence, df) * se
    if log_scale:
        # ratio * exp(+-half) - 1; with se == 0 this is exactly ratio - 1.
        low, high = ratio * np.exp(-half) - 1.0, ratio * np.exp(half) - 1.0
        estimate = ratio - 1.0
    else:
        low, high, estimate = center - half, center + half, center
    return Effect(
        float(estimate),
        float(low),
        float(high),
        n,
        paired,
        method,
        confidence,
        center,
        se,
        df,
        log_scale,
    )


def mean_t_ci(x: npt.ArrayLike, confidence: float = 0.95) -> Effect:
    """One arm's mean with a Student-t interval (n - 1 df); NaN interval for n < 2.

    Args:
      x: finite per-seed values, shape (n,).
      confidence: two-sided level.
    """
    arr = _finite_1d(x)
    n = int(arr.size)
    if n == 0:
        nan = float("nan")
        return Effect(nan, nan, nan, 0, False, "Student t", confidence)
    se = float(np.std(arr, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return _t_effect(float(np.mean(arr)), se, n - 1, n, False, "Student t", confidence)


def paired_t_ci(a: npt.ArrayLike, b: npt.ArrayLike, confidence: float = 0.95) -> Effect:
    """mean(A - B) over shared seeds with a paired t interval (n - 1 df).

    Args:
      a, b: finite per-seed values, shape (n,) each, ``a[i]`` and ``b[i]`` from the same seed.
      confidence: two-sided level.
    """
    xa, xb = _finite_1d(a, "a"), _finite_1d(b, "b")
    if xa.shape != xb.shape:
        raise ValueError(f"paired arms need equal length, got {xa.size} and {xb.size}")
    return dataclass_replace(mean_t_ci(xa - xb, confidence), paired=True, method="paired t")


def t_parts(
    a: np.ndarray, b: np.ndarray | None = None, paired: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, standard error and degrees of freedom of a t interval, along the last axis.

    One arm (``b`` None): mean(a), sd / sqrt(n), n - 1. ``paired``: the same on a - b.
    Unpaired: mean(a) - mean(b), sqrt(s_a^2 / n_a + s_b^2 / n_b) (Welch's standard error) with
    **min(n_a, n_b) - 1** degrees of freedom (Hsu 1938): Mickey & Brown (1966) show this df
    never exceeds the level, while the Welch-Satterthwaite df decides 6.5-7.7% of null
    comparisons at 3 vs 10 or 3 vs 30 seeds and 5.5% at 3 vs 3 with an sd ratio of 4 (40,000
    simulated experiments each, bench/verdict_calibration.py).

    Args:
      a: values of shape (..., n_a); b: of shape (..., n_b), or None.
      paired: ``a[..., i]`` and ``b[..., i]`` come from the same seed (n_a == n_b).

    Returns:
      ``(center, se, df)``, each of shape ``a.shape[:-1]``; se is NaN when an arm has one value.
    """
    a = np.asarray(a, dtype=np.float64)
    if b is not None and paired:
        a, b = a - np.asarray(b, dtype=np.float64), None
    n_a = a.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        var_a = np.var(a, axis=-1, ddof=1) / n_a if n_a > 1 else np.full(a.shape[:-1], np.nan)
        if b is None:
            df = np.full(a.shape[:-1], n_a - 1.0)
            return np.mean(a, axis=-1), np.sqrt(var_a), df
        b = np.asarray(b, dtype=np.float64)
        n_b = b.shape[-1]
        var_b = np.var(b, axis=-1, ddof=1) / n_b if n_b > 1 else np.full(b.shape[:-1], np.nan)
    df = np.full(a.shape[:-1], min(n_a, n_b) - 1.0)
    return np.mean(a, axis=-1) - np.mean(b, axis=-1), np.sqrt(var_a + var_b), df


def welch_t_ci(a: npt.ArrayLike, b: npt.ArrayLike, confidence: float = 0.95) -> Effect:
    """mean(A) - mean(B) from independent samples: Welch's standard error, Hsu's df.

    Args:
      a: finite values of arm A, shape (n_a,); b: of arm B, shape (n_b,); both n >= 2 for an
        interval (NaN otherwise).
      confidence: two-sided level.

    Returns:
      ``Effect`` with ``n = min(n_a, n_b)``, ``df = n - 1`` (:func:`t_parts`), ``paired=False``.
    """
    xa, xb = _finite_1d(a, "a"), _finite_1d(b, "b")
    n = int(min(xa.size, xb.size))
    nan = float("nan")
    method = WELCH
    if n == 0:
        return Effect(nan, nan, nan, 0, False, method, confidence)
    center = float(np.mean(xa) - np.mean(xb))
    if n < 2:
        return Effect(center, nan, nan, n, False, method, confidence, center)
    _, se, df = t_parts(xa, xb)
    return _t_effect(center, float(se), float(df), n, False, method, confidence)


def ratio_t_ci(
    a: npt.ArrayLike, b: npt.ArrayLike, paired: bool, confidence: float = 0.95
) -> Effect:
    """A relative effect as a ratio of geometric means: exp(mean log A - mean log B) - 1.

    The t interval (:func:`t_parts`, paired or unpaired) is taken on the per-seed logs and
    mapped back by exp, as in average bioequivalence (Schuirmann 1987; FDA 2001 guidance,
    "Statistical Approaches to Establishing Bioequivalence", Sec. VI): asymmetric, never below
    -100%. Under a multiplicative effect (the model "x% higher" states) the ratio of geometric
    means equals the ratio of means. The delta-method interval on log(mean A / mean B) used
    before decided 7-10% of null comparisons on a lognormal metric with sd of log 1.0 at every
    n (issue 22); on the logs the t interval is exact for lognormal seeds.

    Args:
      a, b: finite per-seed values, all > 0 (ValueError naming the arm otherwise: the log ratio
        and the meaning of "x% higher" need one sign).
      paired: ``a[i]`` and ``b[i]`` come from the same seed.
      confidence: two-sided level.
    """
    xa, xb = _finite_1d(a, "a"), _finite_1d(b, "b")
    for name, x in (("A", xa), ("B", xb)):
        if x.size and not np.all(x > 0):
            raise ValueError(
                f"relative effect undefined: arm {name} is not positive in every run "
                f"(min {float(np.min(x)):.4g})"
            )
    method = LOG_PAIRED if paired else LOG_WELCH
    n = int(min(xa.size, xb.size))
    nan = float("nan")
    if n == 0:
        return Effect(nan, nan, nan, 0, paired, method, confidence, log_scale=True)
    if paired and xa.shape != xb.shape:
        raise ValueError(f"paired arms need equal length, got {xa.size} and {xb.size}")
    la, lb = np.log(xa), np.log(xb)
    center = float(np.mean(la) - np.mean(lb))
    ratio = float(np.exp(center))
    if n < 2:
        return Effect(ratio - 1.0, nan, nan, n, paired, method, confidence, center, log_scale=True)
    _, se, df = t_parts(la, lb, paired)
    return _t_effect(
        center, float(se), float(df), n, paired, method, confidence, log_scale=True, ratio=ratio
    )


def effect_p_value(effect: Effect, null: float = 0.0, alternative: str = "two-sided") -> float:
    """p-value of H0 "effect == null" from a t interval's centre, se and df.

    Args:
      effect: from :func:`paired_t_ci`, :func:`welch_t_ci` or :func:`ratio_t_ci`.
      null: the effect under H0 in the effect's raw units (A - B, or A / B - 1).
      alternative: "two-sided", "greater" (H1: effect > null) or "less".

    Returns:
      p in [0, 1]; NaN when the effect has no t interval. A zero standard error gives 0 or 1.
    """
    if not (np.isfinite(effect.se) and effect.df >= 1):
        return float("nan")
    if effect.log_scale:
        if null <= -1.0:
            return 0.0 if alternative != "less" else 1.0
        null = float(np.log1p(null))
    diff = effect.center - null
    if effect.se == 0:
        if alternative == "two-sided":
            return 0.0 if diff != 0 else 1.0
        favoured = diff > 0 if alternative == "greater" else diff < 0
        return 0.0 if favoured else 1.0
    t = diff / effect.se
    if alternative == "greater":
        return float(sps.t.sf(t, effect.df))
    if alternative == "less":
        return float(sps.t.cdf(t, effect.df))
    return float(min(1.0, 2.0 * sps.t.sf(abs(t), effect.df)))


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm (1979) step-down adjusted p-values; None/NaN entries are left out and kept as None.

    With m tests sorted ascending, adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    """
    idx = [i for i, p in enumerate(p_values) if p is not None and np.isfinite(p)]
    out: list[float | None] = [None] * len(p_values)
    m, running = len(idx), 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


def _poi_rows(xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """P(A > B) per row for samples of shape (r, n) and (r, m), via midranks.

    U_A = sum of A's ranks in the pooled row - n(n+1)/2 counts pairs with a > b plus half the
    ties (Mann & Whitney, 1947), so P(A > B) = U_A / (n m).
    """
    n, m = xa.shape[1], xb.shape[1]
    ranks = sps.rankdata(np.concatenate([xa, xb], axis=1), method="average", axis=1)
    u_a = ranks[:, :n].sum(axis=1) - n * (n + 1) / 2.0
    return u_a / (n * m)


def probability_of_improvement(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """P(A > B): the chance a random seed of A beats a random seed of B, ties counting half.

    P = (1 / (n m)) sum_i sum_j ([a_i > b_j] + 0.5 [a_i == b_j]), the Mann-Whitney U statistic
    over n m, as in rliable's ``probability_of_improvement`` (Agarwal et al., 2021, Sec. 4).
    "Higher is better" is assumed; for a lower-is-better metric pass the arms negated.

    Args:
      a: finite values, shape (n,).
      b: finite values, shape (m,).

    Returns:
      P in [0, 1]; NaN if either arm is empty.
    """
    xa, xb = _finite_1d(a, "a"), _finite_1d(b, "b")
    if xa.size == 0 or xb.size == 0:
        return float("nan")
    return float(_poi_rows(xa[None, :], xb[None, :])[0])


def _newcombe_variance(theta: float | np.ndarray, n: int, m: int) -> np.ndarray:
    """Newcombe (2006, Part 2) method 5: the Hanley-McNeil variance of the Mann-Whitney P with
    Q1 = theta / (2 - theta), Q2 = 2 theta^2 / (1 + theta) and both arm sizes set to (n + m) / 2.
    """
    theta = np.asarray(theta, dtype=np.float64)
    k = (n + m) / 2.0 - 1.0
    return (
        theta
        * (1 - theta)
        * (1 + k * (1 - theta) / (2 - theta) + k * theta / (1 + theta))
        / (n * m)
    )


def _newcombe_ci(estimate: float, n: int, m: int, confidence: float) -> tuple[float, float]:
    """Score-type interval: the thetas with (estimate - theta)^2 <= q^2 Var(theta).

    q is the t quantile with n + m - 2 df rather than Newcombe's z: with z, 3 vs 3 seeds with
    complete separation give a lower bound of 0.502, which decides 10% of null comparisons
    (the exact Mann-Whitney test cannot reach p < 0.1 there); with t(4) it is 0.34.
    """
    q = _t_quantile(confidence, max(n + m - 2, 1))
    grid = np.linspace(0.0, 1.0, 20_001)
    inside = (estimate - grid) ** 2 <= q**2 * _newcombe_variance(grid, n, m)
    inside |= np.isclose(grid, estimate, atol=2.5e-5)
    return float(grid[inside].min()), float(grid[inside].max())


def probability_of_improvement_ci(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    method: Literal["newcombe", "bootstrap"] = "newcombe",
) -> Effect:
    """P(A > B) with a confidence interval.

    ``method="newcombe"`` (default): Newcombe's (2006) score interval, method 5, with a t
    quantile (n + m - 2 df), which never collapses to [1, 1] or [0, 0] and is computed on a grid
    of step 5e-5. ``method="bootstrap"``: the percentile bootstrap resampling each arm
    independently (rliable), which does collapse for separated arms at small n.

    Args:
      a: finite values, shape (n,).
      b: finite values, shape (m,).
      confidence: two-sided level.
      n_resamples, seed: for ``method="bootstrap"``, as in :func:`bootstrap_ci`.
      method: "newcombe" or "bootstrap".

    Returns:
      ``Effect(estimate=P(A > B), ci_low, ci_high, n=min(n, m), paired=False)``; NaNs if an arm
      is empty.
    """
    xa, xb = _finite_1d(a, "a"), _finite_1d(b, "b")
    _check_bootstrap_args(confidence, n_resamples)
    n = int(min(xa.size, xb.size))
    name = "Newcombe score (t)" if method == "newcombe" else "percentile bootstrap"
    if n == 0:
        nan = float("nan")
        return Effect(nan, nan, nan, 0, False, name, confidence)
    estimate = float(_poi_rows(xa[None, :], xb[None, :])[0])
    if method == "newcombe":
        low, high = _newcombe_ci(estimate, xa.size, xb.size, confidence)
        return Effect(estimate, low, high, n, False, name, confidence, estimate)
    if method != "bootstrap":
        raise ValueError(f"method must be 'newcombe' or 'bootstrap', got {method!r}")
    rng = np.random.default_rng(seed)
    r = int(n_resamples)
    ra = xa[rng.integers(0, xa.size, size=(r, xa.size))]
    rb = xb[rng.integers(0, xb.size, size=(r, xb.size))]
    low, high = _percentile_interval(_poi_rows(ra, rb), confidence)
    return Effect(estimate, low, high, n, False, name, confidence, estimate)


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


def seeds_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Seeds per arm to detect a difference ``effect`` between two arms with per-seed SD ``sd``.

    Normal-approximation sample size for a two-sided two-sample test (Colas, Sigaud & Oudeyer,
    2018, "How Many Random Seeds? Statistical Power Analysis in Deep RL Experiments", Sec. 5):
    n = 2 (z_{1-alpha/2} + z_{power})^2 / d^2 with d = |effect| / sd, rounded up and never below
    3. The normal approximation slightly underestimates n for small samples (a t-test needs a
    seed or two more), so treat the result as a lower bound.

    Args:
      effect: the difference to detect, in metric units; non-zero and finite.
      sd: per-seed standard deviation (assumed equal in both arms); >= 0 and finite.
      alpha: two-sided significance level, in (0, 1).
      power: probability of detecting the effect, in (0, 1).

    Returns:
      Seeds per arm (int >= 3).
    """
    if not (np.isfinite(effect) and np.isfinite(sd)):
        raise ValueError(f"effect and sd must be finite, got {effect}, {sd}")
    if effect == 0:
        raise ValueError("a zero effect needs infinitely many seeds")
    if sd < 0:
        raise ValueError(f"sd must be >= 0, got {sd}")
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha}, {power}")
    if sd == 0:
        return 3
    d = abs(effect) / sd
    z = sps.norm.ppf(1.0 - alpha / 2.0) + sps.norm.ppf(power)
    return max(3, int(np.ceil(2.0 * z**2 / d**2)))
