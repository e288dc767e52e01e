"""The RL trainers' summary metrics (agents/common.py final_metrics), worked out by hand."""

from __future__ import annotations

import pytest

from agents.common import final_metrics


def test_areas_final_return_and_threshold_by_hand():
    curves = {
        "eval/return": [[10, 100.0], [20, 200.0]],
        "train/episode_return": [[10, 20.0], [20, 60.0]],
    }
    metrics = final_metrics(curves, total=20, final_evals=1, threshold=150.0)
    # eval: held at 100 over [0, 10], then the trapezoid 100 -> 200: (1000 + 1500) / 20 steps.
    assert metrics["eval/return_auc"] == pytest.approx(125.0)
    # train: held at 20 over [0, 10], then 20 -> 60: (200 + 400) / 20.
    assert metrics["train/episode_return_auc"] == pytest.approx(30.0)
    assert metrics["eval/return_final"] == 200.0
    assert metrics["eval/steps_to_threshold"] == 20.0
    assert metrics["eval/reached_threshold"] == 1.0


def test_no_training_episodes_no_training_area_and_censored_threshold():
    metrics = final_metrics({"eval/return": [[10, 5.0]]}, total=40, final_evals=3, threshold=9.0)
    assert "train/episode_return_auc" not in metrics
    assert metrics["eval/return_auc"] == pytest.approx(5.0 * 10 / 40)  # nothing after step 10
    assert metrics["eval/steps_to_threshold"] == 40.0  # never reached: censored at the budget
    assert metrics["eval/reached_threshold"] == 0.0
