"""Tests for suite.stats: hand-worked values, agreement with scipy, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from suite.judge import stats

# --------------------------------------------------------------------------------------------
# Point summaries
# --------------------------------------------------------------------------------------------


def test_iqm_hand_worked():
    # [1, 2, 3, 4, 100, 5, 6, 7] sorted: [1, 2, 3, 4, 5, 6, 7, 100]; n=8 trims int(0.25*8)=2
    # from each end -> [3, 4, 5, 6] -> 18 / 4 = 4.5. The outlier 100 has no effect.
    assert stats.iqm([1, 2, 3, 4, 100, 5, 6, 7]) == pytest.approx(4.5)
    # n=4 trims 1 each side: [2, 3] -> 2.5.
    assert stats.iqm([4, 1, 3, 2]) == pytest.approx(2.5)
    # n=5 trims int(1.25)=1 each side: [2, 3, 4] -> 3.
    assert stats.iqm([5, 1, 4, 2, 3]) == pytest.approx(3.0)
    # n=3 trims int(0.75)=0: plain mean (1 + 2 + 9) / 3 = 4.
    assert stats.iqm([1, 2, 9]) == pytest.approx(4.0)
    assert math.isnan(stats.iqm([]))


def test_summarize_hand_worked():
    # mean = 128 / 8 = 16; median = (4 + 5) / 2 = 4.5; iqm = 4.5 (above).
    # deviations from 16: -15 -14 -13 -12 84 -11 -10 -9; squares sum to
    # 225+196+169+144+7056+121+100+81 = 8092; / (8-1) = 1156; sqrt = 34.
    s = stats.summarize([1, 2, 3, 4, 100, 5, 6, 7])
    assert s == stats.Summary(n=8, mean=16.0, median=4.5, iqm=4.5, std=34.0)


def test_summarize_small_n():
    one = stats.summarize([3.0])
    assert (one.n, one.mean, one.median, one.iqm) == (1, 3.0, 3.0, 3.0)
    assert math.isnan(one.std)
    empty = stats.summarize([])
    assert empty.n == 0
    assert all(math.isnan(v) for v in (empty.mean, empty.median, empty.iqm, empty.std))


def test_split_finite_and_nan_policy():
    finite, bad = stats.split_finite([1.0, np.nan, 2.0, np.inf, -np.inf, 3.0])
    np.testing.assert_array_equal(finite, [1.0, 2.0, 3.0])
    assert bad == 3
    # Every statistic refuses non-finite input instead of dropping it silently.
    for fn in (stats.iqm, stats.summarize, stats.bootstrap_ci):
        with pytest.raises(ValueError, match="split_finite"):
            fn([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="split_finite"):
        stats.paired_difference_ci([1.0, 2.0], [1.0, np.inf])
    with pytest.raises(ValueError, match="1-D"):
        stats.summarize(np.ones((2, 2)))


# --------------------------------------------------------------------------------------------
# Bootstrap intervals
# --------------------------------------------------------------------------------------------


def test_bootstrap_ci_matches_scipy_percentile():
    x = np.random.default_rng(123).normal(loc=2.0, scale=3.0, size=30)
    low, high = stats.bootstrap_ci(x, "mean", n_resamples=10_000, seed=0)
    ref = sps.bootstrap(
        (x,),
        np.mean,
        n_resamples=10_000,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(1),
    ).confidence_interval
    # Monte-Carlo error of each end is about 0.005 * std per run; allow 0.05 * std.
    tol = 0.05 * np.std(x, ddof=1)
    assert abs(low - ref.low) < tol
    assert abs(high - ref.high) < tol
    assert low < np.mean(x) < high


@pytest.mark.parametrize("statistic", ["mean", "median", "iqm"])
def test_bootstrap_ci_deterministic_and_seed_dependent(statistic):
    x = np.random.default_rng(7).normal(size=20)
    a = stats.bootstrap_ci(x, statistic, n_resamples=2_000, seed=3)
    b = stats.bootstrap_ci(x, statistic, n_resamples=2_000, seed=3)
    c = stats.bootstrap_ci(x, statistic, n_resamples=2_000, seed=4)
    assert a == b
    assert a != c
    assert a[0] <= a[1]


def test_bootstrap_ci_edge_cases():
    assert stats.bootstrap_ci([4.2]) == (4.2, 4.2)
    low, high = stats.bootstrap_ci([])
    assert math.isnan(low) and math.isnan(high)
    assert stats.bootstrap_ci([5.0, 5.0, 5.0]) == (5.0, 5.0)
    with pytest.raises(ValueError, match="statistic"):
        stats.bootstrap_ci([1.0, 2.0], "mode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="confidence"):
        stats.bootstrap_ci([1.0, 2.0], confidence=1.0)


def test_bootstrap_ci_wider_at_higher_confidence():
    x = np.random.default_rng(0).normal(size=25)
    lo90, hi90 = stats.bootstrap_ci(x, confidence=0.90, n_resamples=2_000)
    lo99, hi99 = stats.bootstrap_ci(x, confidence=0.99, n_resamples=2_000)
    assert lo99 < lo90 and hi99 > hi90


def test_stratified_bootstrap_resamples_within_tasks():
    # Each task is constant, so resampling runs within a task never changes it: the pooled mean
    # is (1 + 5) / 2 = 3 in every replicate and the CI collapses. An unstratified bootstrap of
    # the pooled six values would not.
    scores = {"cartpole": [1.0, 1.0, 1.0], "acrobot": [5.0, 5.0, 5.0]}
    assert stats.stratified_bootstrap_ci(scores, n_resamples=500) == (3.0, 3.0)
    pooled_low, pooled_high = stats.bootstrap_ci([1.0] * 3 + [5.0] * 3, n_resamples=500)
    assert pooled_low < 3.0 < pooled_high


def test_stratified_bootstrap_matrix_equals_dict_and_is_deterministic():
    mat = np.random.default_rng(5).normal(size=(10, 3))
    as_dict = {f"task{j}": mat[:, j] for j in range(3)}
    for statistic, point in (("mean", np.mean(mat)), ("iqm", stats.iqm(mat.ravel()))):
        ci_mat = stats.stratified_bootstrap_ci(mat, statistic, n_resamples=1_000, seed=2)
        ci_dict = stats.stratified_bootstrap_ci(as_dict, statistic, n_resamples=1_000, seed=2)
        assert ci_mat == ci_dict
        assert ci_mat[0] < point < ci_mat[1]
        assert ci_mat != stats.stratified_bootstrap_ci(mat, statistic, n_resamples=1_000, seed=3)
    # Unequal run counts per task are allowed. issue 12: the aggregate mean is rliable's mean
    # of task means, (2 + 10.5) / 2 = 6.25, not the pooled 5.4 that weights tasks by run count.
    low, high = stats.stratified_bootstrap_ci({"a": [1.0, 2.0, 3.0], "b": [10.0, 11.0]})
    assert low < 6.25 < high
    assert not low < np.mean([1, 2, 3, 10, 11]) < high


def test_stratified_bootstrap_empty_handling():
    assert all(math.isnan(v) for v in stats.stratified_bootstrap_ci({"a": [], "b": []}))
    with pytest.raises(ValueError, match="no runs"):
        stats.stratified_bootstrap_ci({"a": [1.0, 2.0], "b": []})


# --------------------------------------------------------------------------------------------
# Two-arm effects
# --------------------------------------------------------------------------------------------


def _correlated_pairs(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    # A large per-seed effect shared by both arms (sd 10) plus a true difference of 1 with
    # small arm-specific noise (sd 0.3): pairing removes the shared part.
    rng = np.random.default_rng(11)
    shared = rng.normal(100.0, 10.0, size=n)
    b = shared + rng.normal(0.0, 0.3, size=n)
    a = shared + 1.0 + rng.normal(0.0, 0.3, size=n)
    return a, b


def test_paired_ci_narrower_than_unpaired_for_correlated_pairs():
    a, b = _correlated_pairs()
    paired = stats.paired_difference_ci(a, b, n_resamples=4_000)
    unpaired = stats.unpaired_difference_ci(a, b, n_resamples=4_000)
    assert paired.paired and not unpaired.paired
    assert paired.n == unpaired.n == 20
    assert paired.estimate == pytest.approx(np.mean(a - b))
    assert unpaired.estimate == pytest.approx(np.mean(a) - np.mean(b))
    assert (paired.ci_high - paired.ci_low) < 0.2 * (unpaired.ci_high - unpaired.ci_low)
    assert paired.ci_low > 0.0  # the true +1 is detected only with pairing
    assert unpaired.ci_low < 0.0 < unpaired.ci_high


def test_relative_effect_estimate_exact():
    a = np.array([12.0, 11.0, 13.0, 12.5])
    b = np.array([10.0, 9.5, 10.5, 10.0])
    expected = np.mean(a) / np.mean(b) - 1.0  # 12.125 / 10 - 1 = 0.2125
    assert expected == pytest.approx(0.2125)
    for fn in (stats.paired_difference_ci, stats.unpaired_difference_ci):
        eff = fn(a, b, relative=True, n_resamples=2_000)
        assert eff.estimate == expected
        assert eff.ci_low <= expected <= eff.ci_high


def test_relative_paired_resamples_pairs_together():
    # a = 1.5 b exactly, so every pair-resampled replicate has mean(a)/mean(b) - 1 = 0.5.
    b = np.array([2.0, 4.0, 8.0, 16.0])
    eff = stats.paired_difference_ci(1.5 * b, b, relative=True, n_resamples=500)
    assert eff.ci_low == pytest.approx(0.5) and eff.ci_high == pytest.approx(0.5)


def test_difference_ci_edge_cases():
    with pytest.raises(ValueError, match="equal length"):
        stats.paired_difference_ci([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="mean of arm B is 0"):
        stats.paired_difference_ci([1.0, 2.0], [1.0, -1.0], relative=True)
    empty = stats.paired_difference_ci([], [])
    assert empty.n == 0 and math.isnan(empty.estimate) and math.isnan(empty.ci_low)
    one = stats.paired_difference_ci([3.0], [1.0])
    assert (one.estimate, one.ci_low, one.ci_high, one.n) == (2.0, 2.0, 2.0, 1)
    unequal = stats.unpaired_difference_ci([1.0, 2.0, 3.0, 4.0], [0.0, 1.0], n_resamples=500)
    assert unequal.n == 2 and unequal.estimate == pytest.approx(2.0)  # 2.5 - 0.5
    assert stats.unpaired_difference_ci([1.0], []).n == 0
    d1 = stats.paired_difference_ci(*_correlated_pairs(), n_resamples=500, seed=9)
    d2 = stats.paired_difference_ci(*_correlated_pairs(), n_resamples=500, seed=9)
    assert d1 == d2


# --------------------------------------------------------------------------------------------
# Probability of improvement
# --------------------------------------------------------------------------------------------


def test_probability_of_improvement_hand_worked():
    # [1, 2, 3] vs [2, 2, 2]: a=1 beats none (0); a=2 ties all three (3 * 0.5 = 1.5);
    # a=3 beats all three (3). (0 + 1.5 + 3) / 9 = 0.5.
    assert stats.probability_of_improvement([1, 2, 3], [2, 2, 2]) == pytest.approx(0.5)
    # [3, 4] vs [1, 2, 3]: a=3 -> 1 + 1 + 0.5 = 2.5; a=4 -> 3. 5.5 / 6 = 0.91667.
    assert stats.probability_of_improvement([3, 4], [1, 2, 3]) == pytest.approx(5.5 / 6)
    assert stats.probability_of_improvement([1, 2], [5, 6]) == 0.0
    assert stats.probability_of_improvement([5, 6], [1, 2]) == 1.0
    assert math.isnan(stats.probability_of_improvement([], [1.0]))


def test_probability_of_improvement_matches_brute_force_and_mann_whitney():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 5, size=13).astype(float)  # many ties
    b = rng.integers(0, 5, size=9).astype(float)
    brute = np.mean((a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :]))
    u = sps.mannwhitneyu(a, b, alternative="greater").statistic / (a.size * b.size)
    assert stats.probability_of_improvement(a, b) == pytest.approx(brute)
    assert stats.probability_of_improvement(a, b) == pytest.approx(u)


def test_probability_of_improvement_ci():
    rng = np.random.default_rng(4)
    a, b = rng.normal(1.0, 1.0, size=15), rng.normal(0.0, 1.0, size=12)
    eff = stats.probability_of_improvement_ci(a, b, n_resamples=2_000)
    assert eff.estimate == pytest.approx(stats.probability_of_improvement(a, b))
    assert 0.0 <= eff.ci_low <= eff.estimate <= eff.ci_high <= 1.0
    assert eff.n == 12 and not eff.paired
    assert eff == stats.probability_of_improvement_ci(a, b, n_resamples=2_000)
    # issue 12: complete separation at 3 vs 3 no longer gives [1, 1]. Newcombe's method 5 with
    # the t(4) quantile: lower bound 0.3366 (with z it would be 0.502, deciding 10% of nulls).
    separated = stats.probability_of_improvement_ci([10.0, 11.0, 12.0], [1.0, 2.0, 3.0])
    assert separated.estimate == 1.0 and separated.ci_high == 1.0
    assert separated.ci_low == pytest.approx(0.3366, abs=1e-3)
    assert separated.method == "Newcombe score (t)"
    boot = stats.probability_of_improvement_ci([10.0, 11.0, 12.0], [1.0, 2.0], method="bootstrap")
    assert (boot.estimate, boot.ci_low, boot.ci_high) == (1.0, 1.0, 1.0)  # why it is not used


# --------------------------------------------------------------------------------------------
# Seeds needed
# --------------------------------------------------------------------------------------------


def test_seeds_needed_formula_values():
    # z_{0.975} = 1.95996, z_{0.8} = 0.84162, sum 2.80159, squared 7.84888.
    # d = 1:   2 * 7.84888 / 1    = 15.70 -> 16
    # d = 0.5: 2 * 7.84888 / 0.25 = 62.79 -> 63
    # d = 2:   2 * 7.84888 / 4    = 3.92  -> 4
    # d = 3:   2 * 7.84888 / 9    = 1.74  -> 2, raised to the floor of 3
    assert stats.seeds_needed(1.0, 1.0) == 16
    assert stats.seeds_needed(5.0, 10.0) == 63
    assert stats.seeds_needed(-4.0, 2.0) == 4  # sign of the effect is irrelevant
    assert stats.seeds_needed(3.0, 1.0) == 3
    assert stats.seeds_needed(1.0, 0.0) == 3
    # alpha = 0.01, power = 0.9: z = 2.57583 + 1.28155 = 3.85738, 2 * 14.8794 = 29.76 -> 30.
    assert stats.seeds_needed(1.0, 1.0, alpha=0.01, power=0.9) == 30


def test_seeds_needed_rejects_bad_input():
    with pytest.raises(ValueError):
        stats.seeds_needed(0.0, 1.0)
    with pytest.raises(ValueError):
        stats.seeds_needed(1.0, -1.0)
    with pytest.raises(ValueError):
        stats.seeds_needed(float("nan"), 1.0)
    with pytest.raises(ValueError):
        stats.seeds_needed(1.0, 1.0, power=1.0)
