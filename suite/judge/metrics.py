"""What the judge knows about a metric: its sign, its scale and its bounds.

A claim is judged against a metric the trainers record in ``Result.metrics``. Three facts about
that metric decide whether a verdict means anything:

* **sign**: ``positive`` (every value > 0: a score, a loss in nats, a step count) or ``signed``
  (may be <= 0: an RL return). A relative effect ("22% higher") is defined only on a positive
  metric, so a relative claim on a signed metric is refused at load time unless the claim
  declares ``metric_sign: positive`` for its task (and every run is then checked at judging).
* **scale**: what the numbers are comparable with. A claimed *value* ("IS 7.8", on the
  TF-Inception scale of Salimans et al. 2016) is only judged against a metric on the same scale:
  the suite's ``eval/is_classifier`` uses its own CIFAR-10 classifier's features and is "not
  comparable".
* **bounds**: the metric's known range. A run that diverged enters at the bound it is worst at
  (the metric's floor, under the "floor" policy); every run sitting at a bound is "saturated".

:data:`METRICS` holds the defaults by name pattern (first match wins). A trainer overrides
them per run through ``Result.details``: ``details["metric_scales"] = {metric: scale}`` and
``details["metric_bounds"] = {metric: [low, high]}`` (None for an open end), e.g. a scorer whose
features changed, or an environment whose maximum return is known.

A trainer marks a run **degenerate** (it finished, but its result is not a measurement of the
optimizer: a collapsed GAN, a VAE with posterior collapse) with ``metrics["eval/degenerate"] =
1`` or ``details["degenerate"] = True``; the DCGAN's ``eval/collapsed = 1`` counts the same.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEGENERATE_FLAGS",
    "METRICS",
    "MetricInfo",
    "declared_scale",
    "is_degenerate",
    "metric_info",
]

DEGENERATE_FLAGS = ("eval/degenerate", "eval/collapsed")


@dataclass(frozen=True)
class MetricInfo:
    """Sign, scale and bounds of one metric."""

    sign: str | None = None
    """"positive" (every value > 0), "signed" (may be <= 0) or None (not declared: a relative
    claim is allowed, and every run is checked when it is judged)"""
    scale: str | None = None
    """what the values are comparable with (None: not declared, so no value claim is judged)"""
    low: float | None = None
    """the smallest value the metric can take, if known"""
    high: float | None = None
    """the largest value the metric can take, if known"""
    value_tolerance: float | None = None
    """how far (a fraction of the claimed value) a value claim may be off and still be
    reproduced; None: ``suite.judge.verdicts.DEFAULT_VALUE_TOLERANCE`` (10%)"""


# Name patterns (fnmatch), first match wins.
METRICS: tuple[tuple[str, MetricInfo], ...] = (
    # Inception Score >= 1 (exp of a KL divergence), <= the number of classes.
    ("*/is_inception", MetricInfo("positive", "tf-inception", 1.0, 1000.0)),
    ("*/fid_inception", MetricInfo("positive", "tf-inception", 0.0, None)),
    ("*/is_classifier", MetricInfo("positive", "classifier-features", 1.0, 10.0)),
    ("*/fid_classifier", MetricInfo("positive", "classifier-features", 0.0, None)),
    # The effective number of classes among generated images (gans/scores.py
    # effective_classes): 1 (all in one class) to the classifier's class count.
    ("*/classes_inception", MetricInfo("positive", "tf-inception", 1.0, 1000.0)),
    ("*/classes_classifier", MetricInfo("positive", "classifier-features", 1.0, 10.0)),
    ("*steps_to_threshold", MetricInfo("positive", "env-steps", 0.0, None)),
    ("*_nats", MetricInfo("positive", "nats", 0.0, None)),
    ("*_bpd", MetricInfo("positive", "bits-per-dim", 0.0, None)),
    ("*/return*", MetricInfo("signed", "env-return", None, None)),
    # The DCGAN's GAN-rule statistics of the first 20% of generator steps (gans/dcgan.py
    # early_metrics). A mean absolute step-to-step change of a loss: >= 0, in the loss's units
    # per step (nats for BCE), > 0 unless the loss never moved; comparable only between runs with
    # the same loss and batch size (minibatch noise shrinks with the batch), hence its own scale.
    ("*/early_*_loss_change", MetricInfo("positive", "gan-loss-change-per-step", 0.0, None)),
    # D's mean accuracy on its own batches (real and generated halves), a fraction in [0, 1];
    # the sign is left undeclared (0 is possible in principle), so each run is checked when a
    # relative claim is judged.
    ("*/early_discriminator_accuracy", MetricInfo(None, "discriminator-accuracy", 0.0, 1.0)),
    # 1 if the last evaluation's samples were (near-)constant (gans/scores.py
    # collapse_statistics), else 0: its mean over seeds is the collapse rate. Signed (0 is the
    # usual value), so no relative claim; a diverged run enters at 1 under the floor policy.
    ("*/collapsed", MetricInfo("signed", "collapse-flag", 0.0, 1.0)),
)


def metric_info(metric: str, results: list[Any] = ()) -> MetricInfo:
    """The metric's sign, scale and bounds: :data:`METRICS`, overridden by the runs' details.

    :param metric: a key of ``Result.metrics``.
    :param results: runs whose ``details["metric_scales"]`` / ``details["metric_bounds"]`` may
        override the table (the first run that declares one wins).
    """
    info = next((i for pattern, i in METRICS if fnmatch.fnmatchcase(metric, pattern)), None)
    info = info or MetricInfo()
    for r in results:
        details = getattr(r, "details", None) or {}
        scale = (details.get("metric_scales") or {}).get(metric)
        bounds = (details.get("metric_bounds") or {}).get(metric)
        if scale is not None or bounds is not None:
            low, high = bounds if bounds is not None else (info.low, info.high)
            return MetricInfo(
                info.sign, scale or info.scale, _bound(low), _bound(high), info.value_tolerance
            )
    return info


def declared_scale(result: Any, metric: str) -> str | None:
    """The scale one run declares for ``metric`` (``details["metric_scales"]``), None if it
    declares none. Runs on different declared scales are never compared (the judge's guard
    ``mixed_scales``): e.g. a classifier IS whose feature network was retrained on another
    machine, whose weights differ."""
    return ((getattr(result, "details", None) or {}).get("metric_scales") or {}).get(metric)


def run_scales(results: list[Any], metric: str) -> list[str]:
    """The distinct scales ``results`` declare for ``metric`` ("none declared" for a run without
    one), over the runs that hold it: more than one, and their values are not one sample."""
    held = [r for r in results if metric in (getattr(r, "metrics", None) or {})]
    return sorted({declared_scale(r, metric) or "none declared" for r in held})


def _bound(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def is_degenerate(result: Any, metric: str | None = None) -> bool:
    """Whether a trainer marked the run degenerate (see the module docstring). For a claim on
    a degenerate flag itself (a collapse rate), the flag is the outcome measured, not a reason
    to set the run aside: no run is degenerate for that ``metric``."""
    if metric in DEGENERATE_FLAGS:
        return False
    metrics = result.metrics or {}
    if any(metrics.get(flag) == 1 for flag in DEGENERATE_FLAGS):
        return True
    return bool((result.details or {}).get("degenerate"))
