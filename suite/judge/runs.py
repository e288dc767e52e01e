"""What one run counts as for one metric: the one owner of the bad-run and censoring rules.

The judge (suite/judge/rules.py ``arm_values``), tuning's selection (suite/tuning.py) and the
reports' counts (suite/report/) all classify runs here. For a metric, a run is

- ``failed``: it crashed (a bug, not a property of the optimizer);
- ``missing``: it finished without the metric;
- ``diverged``: it diverged, or its metric is NaN or inf;
- ``finished``: it recorded a finite value.

It is *degenerate* when its trainer marks it so (suite/judge/metrics.py ``is_degenerate``: a
collapsed GAN), and *censored* when its ``*/steps_to_threshold`` never reached the threshold
(``*/reached_threshold`` is 0: the value recorded is the step budget). A *bad* run, one a tuning
trial is ranked by, is any run but a finished, non-degenerate one.
"""

from __future__ import annotations

import math
from typing import Any

from suite.judge.metrics import is_degenerate

__all__ = ["CENSORABLE_SUFFIX", "RUN_CLASSES", "is_bad", "is_censored", "run_class"]

RUN_CLASSES = ("failed", "missing", "diverged", "finished")
CENSORABLE_SUFFIX = "steps_to_threshold"
REACHED_SUFFIX = "reached_threshold"


def run_class(result: Any, metric: str) -> str:
    """One of :data:`RUN_CLASSES` for ``result`` (a suite.result.Result) and ``metric``."""
    if result.status == "failed":
        return "failed"
    if result.status != "diverged" and metric not in result.metrics:
        return "missing"
    if result.status == "diverged" or not math.isfinite(float(result.metrics[metric])):
        return "diverged"
    return "finished"


def is_censored(result: Any, metric: str) -> bool:
    """A ``*/steps_to_threshold`` run that never reached the threshold (its value is the cap)."""
    if not metric.endswith(CENSORABLE_SUFFIX):
        return False
    reached = metric[: -len(CENSORABLE_SUFFIX)] + REACHED_SUFFIX
    return result.metrics.get(reached) == 0.0


def is_bad(result: Any, metric: str) -> bool:
    """Failed, missing the metric, diverged (or a NaN/inf metric), or degenerate."""
    return run_class(result, metric) != "finished" or is_degenerate(result, metric)
