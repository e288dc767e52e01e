"""bench/verdict_calibration.py: its draws, its vectorised labels, and its cells, whose first
experiments it judges through evaluate_claim (the bench stops when they disagree)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from suite.judge import verdicts

BENCH = Path(__file__).resolve().parent.parent / "bench" / "verdict_calibration.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("verdict_calibration", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_draws_have_the_stated_centre_and_spread(bench):
    rng = np.random.default_rng(0)
    normal = bench.draw("normal", rng, (1, 200_000))
    assert normal.mean() == pytest.approx(10, abs=0.02) and normal.std() == pytest.approx(2, 0.01)
    skewed = bench.draw("logn1.5", rng, (1, 200_000))
    assert np.median(skewed) == pytest.approx(10, rel=0.02)
    assert np.log(skewed).std() == pytest.approx(1.5, rel=0.01)
    never = bench.draw("never-learn", rng, (1, 200_000))
    assert np.mean(never < 2.5) == pytest.approx(0.3, abs=0.01)


def test_vectorised_labels_are_the_judges(bench):
    rng = np.random.default_rng(1)
    low = rng.normal(0.3, 0.4, 500)
    high = low + rng.exponential(0.4, 500)
    for log in (False, True):
        labels = bench.size_labels(low, high, 0.5, log)
        for lo, hi, label in zip(low, high, labels, strict=True):
            ci = (math.expm1(lo), math.expm1(hi)) if log else (lo, hi)
            assert verdicts.verdict(*ci, 0.5, budget="q", n=5, log_scale=log) == label


def test_cells_agree_with_the_claim_path_and_hold_their_level(bench):
    # 400 experiments, the first 4 through evaluate_claim (SystemExit on any difference).
    cell = bench.two_arm_cell("logn1.0", 5, 12, False, 1.0, 400, 4, seed=7)
    for kind, (k, total, covered, with_ci) in cell.items():
        assert total == 400 and k / total <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 400), kind
        assert covered / with_ci >= 0.9, kind
    # 3 vs 10 is refused by the judge's imbalance rule: nothing decided, no interval.
    refused = bench.two_arm_cell("logn1.0", 3, 10, False, 1.0, 200, 2, seed=7)
    assert all(k == 0 and with_ci == 0 for k, _, _, with_ci in refused.values())
    k, total, _, _ = bench.diverged_cell(5, 300, 4, seed=8)["direction"]
    assert k / total <= 0.05
    holm, total, unadjusted, _ = bench.family_cell(5, 300, 2, seed=9)["direction"]
    assert holm / total <= 0.09 and unadjusted / total > 0.15
