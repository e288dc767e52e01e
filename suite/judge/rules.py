"""How each kind of claim is judged: one precheck, a few guards, and a rule table.

:func:`suite.judge.evaluate.evaluate_claim` runs, in order:

1. :func:`suite.judge.verdicts.precheck` — the one place that decides not-run (an arm has no
   runs), smoke-only (smoke budget) and too few seeds (fewer than MIN_SEEDS values per arm).
2. :data:`GUARDS` — data that makes any interval meaningless: runs on different declared scales,
   no finite values, a baseline that is degenerate in most seeds, a relative effect on values
   that are not all positive, a saturated metric (zero spread in both arms, or every run at a
   bound), a claimed value on another scale than the metric, unpaired arms of very unequal size
   (fewer than IMBALANCE_MIN_SEEDS seeds in the smaller, IMBALANCE_FACTOR x as many in the
   other). Each gives "inconclusive" with its reason.
3. :data:`RULES` — keyed by the claim's kind: computes the interval and the label. A new kind
   of claim is one function here and one row in the table.
4. :data:`ADJUSTMENTS` — what the data rules out afterwards: censoring (a censored baseline
   rules out "weaker"/"contradicted" and caps "reproduced" at "direction-only"; a censored arm A
   rules out every favourable label) and a mostly diverged or degenerate arm (never equivalent).

Diverged runs
-------------
``floor`` (default): a diverged run enters at the metric's floor, the bound it is worst at
(:mod:`suite.judge.metrics`, e.g. IS 1.0), or, where the metric declares none, at the worst
finite value observed in either arm (said so in the outcome: it is an optimistic floor).
``rank``: the verdict rests on P(A > B) with diverged runs ranked below every finished run
(ties among themselves), a rank-based effect that needs no floor; it can state a direction but
not a size ("direction-only" at best) and cannot judge parity. ``exclude``: left out (counted);
not recommended. When runs diverged, the outcome also carries the verdict under the other of
floor/rank, and the report prints both when they differ; under ``floor`` the headline is the
rank policy's for direction and size claims, so that no headline rests on an imputed value
(``suite.judge.evaluate``).

Censored steps-to-threshold
---------------------------
A run that never reached the threshold records the step budget tau. With censoring only at tau,
the mean of the recorded values is the restricted mean time to threshold up to tau (RMST;
Royston & Parmar 2013), and its t interval is a valid interval for the RMST difference. The
claim is about the unrestricted time, which the RMST difference underestimates when the
baseline is censored and overstates when arm A is: hence the adjustments above.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from suite.judge import stats, verdicts
from suite.judge.claims import Claim
from suite.judge.metrics import MetricInfo, declared_scale, is_degenerate
from suite.judge.runs import is_censored, run_class
from suite.result import Result

__all__ = [
    "ADJUSTMENTS",
    "DIVERGED_POLICIES",
    "GUARDS",
    "IMBALANCE_FACTOR",
    "IMBALANCE_MIN_SEEDS",
    "RULES",
    "ArmValues",
    "Judged",
    "Sample",
    "arm_values",
    "imbalance",
    "inconclusive",
    "prepare",
    "rank_verdict",
]

DIVERGED_POLICIES = ("floor", "rank", "exclude")
DECLARED_FLOOR = "the metric's floor"


# --------------------------------------------------------------------------------------------
# One arm's values, every run accounted for
# --------------------------------------------------------------------------------------------


@dataclass
class ArmValues:
    """One arm's per-seed values of one metric, with every run accounted for.

    ``seeds``/``values`` hold the runs that finished or diverged (shape (n,)), diverged runs as
    NaN; the boolean arrays say per seed what the run was; the counts say what every run was.
    """

    name: str
    seeds: list[int]
    values: np.ndarray
    n_runs: int = 0
    n_diverged: int = 0
    n_censored: int = 0
    n_degenerate: int = 0
    n_failed: int = 0
    n_missing: int = 0
    censored: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    degenerate: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    scales: dict[str | None, int] = field(default_factory=dict)
    """runs per declared scale of the metric (None: undeclared), over the runs in ``seeds``"""


def arm_values(results: list[Result], arm: str, metric: str) -> ArmValues:
    """Per-seed values of ``metric`` in ``arm`` (seed order), diverged runs as NaN.

    :param results: results of one experiment at one budget (other arms are ignored).
    :param arm: the arm's name.
    :param metric: a key of ``Result.metrics``.
    """
    mine = sorted((r for r in results if r.arm == arm), key=lambda r: r.seed)
    out = ArmValues(arm, [], np.zeros(0), n_runs=len(mine))
    values, censored, degenerate = [], [], []
    for r in mine:
        kind = run_class(r, metric)
        if kind == "failed":
            out.n_failed += 1
            continue
        if kind == "missing":
            out.n_missing += 1
            continue
        out.seeds.append(r.seed)
        scale = declared_scale(r, metric)
        out.scales[scale] = out.scales.get(scale, 0) + 1
        values.append(float(r.metrics[metric]) if kind == "finished" else float("nan"))
        # Flags on every run that did not diverge (a NaN value of a finished run included).
        censored.append(r.status != "diverged" and is_censored(r, metric))
        degenerate.append(r.status != "diverged" and is_degenerate(r, metric))
    out.values = np.array(values, dtype=np.float64)
    out.censored = np.array(censored, dtype=bool)
    out.degenerate = np.array(degenerate, dtype=bool)
    out.n_diverged = int(np.count_nonzero(~np.isfinite(out.values)))
    out.n_censored = int(np.count_nonzero(out.censored))
    out.n_degenerate = int(np.count_nonzero(out.degenerate))
    return out


# --------------------------------------------------------------------------------------------
# Both arms after the diverged-run policy
# --------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """What a rule judges: each arm's values after the diverged policy, and how they got there."""

    claim: Claim
    kind: str
    raw: list[ArmValues]
    seeds: list[list[int]]
    values: list[np.ndarray]
    paired: bool
    policy: str
    info: MetricInfo
    imputed: float | None = None
    imputed_from: str = ""

    @property
    def n(self) -> int:
        """Seeds per arm the comparison rests on (pairs when paired, else the smaller arm)."""
        return min((v.size for v in self.values), default=0)


def _floor(claim: Claim, raw: list[ArmValues], info: MetricInfo) -> tuple[float | None, str]:
    declared = info.low if claim.direction == "higher" else info.high
    if declared is not None:
        return declared, DECLARED_FLOOR
    finite = np.concatenate([a.values[np.isfinite(a.values)] for a in raw])
    if not finite.size:
        return None, ""
    worst = float(finite.min() if claim.direction == "higher" else finite.max())
    return worst, "the worst finite value observed; the metric declares no floor"


def prepare(claim: Claim, kind: str, raw: list[ArmValues], policy: str, info: MetricInfo) -> Sample:
    """Apply the diverged policy ("rank" keeps the floor values for the displayed effect)."""
    if policy not in DIVERGED_POLICIES:
        raise ValueError(f"diverged policy must be one of {DIVERGED_POLICIES}, got {policy!r}")
    imputed, source = _floor(claim, raw, info) if policy != "exclude" else (None, "")
    seeds, values = [], []
    for a in raw:
        keep = np.isfinite(a.values) | (imputed is not None)
        filled = np.where(np.isfinite(a.values), a.values, imputed if imputed is not None else 0)
        seeds.append([s for s, k in zip(a.seeds, keep, strict=True) if k])
        values.append(filled[keep])
    paired = len(raw) == 2 and bool(values[0].size) and seeds[0] == seeds[1]
    used = imputed if any(a.n_diverged for a in raw) else None
    return Sample(
        claim,
        kind,
        raw,
        seeds,
        values,
        paired,
        policy,
        info,
        used,
        source if used is not None else "",
    )


# --------------------------------------------------------------------------------------------
# Guards: data that makes an interval meaningless (each returns a reason, or None)
# --------------------------------------------------------------------------------------------


def _baseline_degenerate(s: Sample) -> str | None:
    if len(s.raw) < 2:
        return None
    b = s.raw[1]
    if b.n_degenerate * 2 > b.values.size:
        return (
            f"baseline degenerate: effect not interpretable ({b.name} degenerate in "
            f"{b.n_degenerate}/{b.values.size} runs)"
        )
    return None


def _relative_sign(s: Sample) -> str | None:
    if s.kind not in ("relative", "equivalence"):
        return None
    for a, v in zip(s.raw, s.values, strict=True):
        if v.size and not np.all(v > 0):
            return (
                f"relative effect undefined: arm {a.name} is not positive in every run (min "
                f"{float(np.min(v)):.4g}); a ratio of means needs one sign: claim an absolute "
                "effect"
            )
    return None


def _saturated(s: Sample) -> str | None:
    """Every run at one value (or at a bound): nothing to compare. Arms constant but different
    are not saturated: the zero-width interval decides them (issue 22)."""
    values = [v for v in s.values if v.size]
    if not values:
        return None
    everything = np.concatenate(values)
    if np.ptp(everything) == 0:
        return f"saturated: every run at {everything[0]:.4g}: the metric cannot tell them apart"
    for bound in (s.info.low, s.info.high):
        if bound is not None and np.allclose(everything, bound, rtol=1e-9, atol=1e-12):
            return f"saturated: every run at the metric's bound {bound:.4g}"
    return None


def mixed_scales(s: Sample) -> str | None:
    """Runs measured on different declared scales (suite/judge/metrics.py declared_scale), in
    one arm or across arms, are not comparable: no interval over them means anything."""
    scales = {scale for a in s.raw for scale in a.scales}
    if len(scales) < 2:
        return None
    where = "; ".join(
        f"{a.name}: "
        + ", ".join(f"{n} on {scale or 'none declared'}" for scale, n in a.scales.items())
        for a in s.raw
    )
    return (
        f"not comparable: the runs measured {s.claim.metric} on different scales ({where}); "
        "rerun the arms on one scale"
    )


def _scale(s: Sample) -> str | None:
    """A claimed value, or an absolute effect the claim puts on a scale, is judged only on a
    metric of that scale ("+1.2 IS" on Inception features is not +1.2 on classifier features)."""
    if s.kind == "value" or (s.kind == "absolute" and s.claim.scale):
        claimed, measured = s.claim.scale, s.info.scale
        if claimed and claimed == measured:
            return None
        what = (
            f"the claimed value {s.claim.value:g}"
            if s.kind == "value"
            else f"the claimed effect {s.claim.effect.size:+g}"
        )
        where = f"on {measured!r}" if measured else "declares no scale (suite/judge/metrics.py)"
        return f"not comparable: {what} is on scale {claimed!r}, metric {s.claim.metric} {where}"
    return None


# Unpaired arms of very unequal size: with far more seeds in one arm, the interval is in effect
# a one-sample t on the smaller arm, and a skewed or bimodal metric is no longer symmetrised by a
# second arm of the same size. bench/verdict_calibration.py, "30% of seeds never learn" (decided
# under no effect for a relative claim; coverage of the 90% parity interval), 2,000-20,000
# experiments per cell: 3 vs 30 7.1% / 79.5% (2,000), 4 vs 30 10.9% / 81.5%, 5 vs 30 11.5% /
# 83.3%, 6 vs 30 10.0% / 86.7%, 6 vs 18 7.0% / 88.2%, 7 vs 20 6.3%, 5 vs 15 87.8% parity; absolute
# and direction claims decide 6.3-6.8% at 5 vs 30 and 30 vs 5. Under 2.5x the cells hold (20,000
# each: 5 vs 12 4.2%, 6 vs 14 4.7%, 7 vs 17 5.5%, parity >= 90.1%), as do those with 10 or more
# seeds in the smaller arm (10 vs 30 4.6%, 12 vs 30 4.9%, 14 vs 30 4.8%). No interval the judge
# has holds its level in between, so it refuses (also 3 vs 8-15, which held: one rule for all).
IMBALANCE_MIN_SEEDS = 10
"""K: the smaller arm of an unpaired comparison needs this many seeds ..."""
IMBALANCE_FACTOR = 2.5
"""F: ... when the larger arm has at least F times as many."""


def imbalance(s: Sample) -> str | None:
    """Unpaired arms with fewer than IMBALANCE_MIN_SEEDS seeds in the smaller arm and at least
    IMBALANCE_FACTOR times as many in the other: no interval holds its level (issue 22)."""
    if len(s.raw) < 2 or s.paired:
        return None
    (small, n_small), (big, n_big) = sorted(
        ((a.name, v.size) for a, v in zip(s.raw, s.values, strict=True)), key=lambda x: x[1]
    )
    if not n_small or n_small >= IMBALANCE_MIN_SEEDS or n_big < IMBALANCE_FACTOR * n_small:
        return None
    return (
        f"{n_small} seeds in arm {small} against {n_big} in arm {big}: no interval holds its "
        f"level at this imbalance (fewer than {IMBALANCE_MIN_SEEDS} seeds in the smaller arm, "
        f"{IMBALANCE_FACTOR}x or more in the other) when the metric may be skewed or bimodal "
        f"(bench/verdict_calibration.py); add seeds to {small}"
    )


GUARDS: tuple[Callable[[Sample], str | None], ...] = (
    mixed_scales,
    _scale,
    _baseline_degenerate,
    _relative_sign,
    _saturated,
    imbalance,
)


# --------------------------------------------------------------------------------------------
# Rules: one per kind of claim
# --------------------------------------------------------------------------------------------


@dataclass
class Judged:
    """A rule's result: the interval the verdict rests on, the verdict, and a p-value."""

    effect: stats.Effect
    verdict: verdicts.Verdict
    p_value: float | None = None


def _difference(s: Sample, confidence: float) -> stats.Effect:
    a, b = s.values
    return stats.paired_t_ci(a, b, confidence) if s.paired else stats.welch_t_ci(a, b, confidence)


def _ratio(s: Sample, confidence: float) -> stats.Effect:
    return stats.ratio_t_ci(*s.values, paired=s.paired, confidence=confidence)


def _no_spread(e: stats.Effect, v: verdicts.Verdict) -> verdicts.Verdict:
    """Say so when a decided interval has zero width (arms constant, or a constant difference)."""
    if e.se != 0 or v.label not in verdicts.DECIDED:
        return v
    return v.noted(
        " (no spread: the difference is the same in every seed, so the interval has no width)"
    )


def _direction(s: Sample, confidence: float, budget: str) -> Judged:
    e = _difference(s, confidence)
    v = verdicts.judge_direction(
        e.ci_low,
        e.ci_high,
        direction=s.claim.direction,
        budget=budget,
        n=s.n,
        confidence=confidence,
    )
    return Judged(e, _no_spread(e, v), stats.effect_p_value(e))


def _sized(effect_fn: Callable[[Sample, float], stats.Effect], percent: bool = False):
    def rule(s: Sample, confidence: float, budget: str) -> Judged:
        e = effect_fn(s, confidence)
        v = verdicts.judge_effect(
            e.ci_low,
            e.ci_high,
            s.claim.effect.size,
            budget=budget,
            n=s.n,
            confidence=confidence,
            tolerance=s.claim.tolerance,
            percent=percent,
        )
        return Judged(e, _no_spread(e, v), stats.effect_p_value(e))

    return rule


def _equivalence(effect_fn: Callable[[Sample, float], stats.Effect], percent: bool = False):
    def rule(s: Sample, confidence: float, budget: str) -> Judged:
        # TOST at alpha = 1 - confidence: the (1 - 2 alpha) interval (Lakens 2017, Sec. 2).
        level = 2.0 * confidence - 1.0
        e = effect_fn(s, level)
        margin = s.claim.effect.size
        v = verdicts.judge_equivalence(
            e.ci_low, e.ci_high, margin, budget=budget, n=s.n, confidence=level, percent=percent
        )
        p = max(
            stats.effect_p_value(e, -margin, "greater"), stats.effect_p_value(e, margin, "less")
        )
        return Judged(e, v, p)

    return rule


def _value(s: Sample, confidence: float, budget: str) -> Judged:
    # An equivalence with the claimed value: TOST's (1 - 2 alpha) interval within +-margin.
    level = 2.0 * confidence - 1.0
    e = stats.mean_t_ci(s.values[0], level)
    value = s.claim.value
    tolerance = s.claim.value_tolerance or s.info.value_tolerance
    margin = verdicts.value_margin(value, tolerance or verdicts.DEFAULT_VALUE_TOLERANCE)
    v = verdicts.judge_value(
        e.ci_low,
        e.ci_high,
        value,
        budget=budget,
        n=s.n,
        direction=s.claim.direction,
        confidence=level,
        margin=margin,
    )
    p = max(
        stats.effect_p_value(e, value - margin, "greater"),
        stats.effect_p_value(e, value + margin, "less"),
    )
    return Judged(e, v, p)


RULES: dict[str, Callable[[Sample, float, str], Judged]] = {
    "direction": _direction,
    "absolute": _sized(_difference),
    "relative": _sized(_ratio, percent=True),  # A / B - 1, quoted as percentages
    "equivalence": _equivalence(_ratio, percent=True),
    "equivalence_absolute": _equivalence(_difference),
    "value": _value,
}


# --------------------------------------------------------------------------------------------
# Adjustments: what the data rules out after the interval
# --------------------------------------------------------------------------------------------


def inconclusive(v: verdicts.Verdict, why: str) -> verdicts.Verdict:
    """``v`` overridden: inconclusive because ``why``, quoting what ``v`` said."""
    return verdicts.say("inconclusive", v.budget, v.n, verdicts.Reason(why, overrides=v))


def _censoring(s: Sample, v: verdicts.Verdict) -> verdicts.Verdict:
    if len(s.raw) < 2 or v.label not in verdicts.DECIDED:
        return v
    a, b = s.raw
    if a.n_censored and v.label in ("reproduced", "direction-only", "stronger"):
        return (
            inconclusive(
                v,
                f"{a.name} censored in {a.n_censored} runs: its true values are larger, so the "
                "effect is at most this large and a favourable verdict cannot stand",
            )
            if s.claim.direction == "lower"
            else v
        )
    if b.n_censored and s.claim.direction == "lower":
        if v.label in ("weaker", "contradicted"):
            return inconclusive(
                v,
                f"{b.name} censored in {b.n_censored} runs: the effect is at least this large, "
                f"so {v.label!r} cannot be concluded",
            )
        if v.label == "reproduced" and s.kind != "direction":
            why = (
                f"direction reproduced, size undetermined: {b.name} censored in {b.n_censored} "
                f"runs, so the effect is only bounded below ({v.body})"
            )
            return verdicts.say("direction-only", v.budget, v.n, verdicts.Reason(why))
    return v


def _equivalence_needs_finished_runs(s: Sample, v: verdicts.Verdict) -> verdicts.Verdict:
    if not s.kind.startswith("equivalence") or v.label != "reproduced":
        return v
    for a in s.raw:
        bad = a.n_diverged + a.n_degenerate
        if bad * 2 > a.values.size:
            return inconclusive(
                v,
                f"{a.name} diverged or degenerate in {bad}/{a.values.size} runs: an arm that "
                "mostly fails is never shown equivalent",
            )
    return v


ADJUSTMENTS: tuple[Callable[[Sample, verdicts.Verdict], verdicts.Verdict], ...] = (
    _censoring,
    _equivalence_needs_finished_runs,
)


# --------------------------------------------------------------------------------------------
# The rank policy
# --------------------------------------------------------------------------------------------


def ranked(claim: Claim, raw: list[ArmValues]) -> list[np.ndarray]:
    """Each arm's values oriented so that higher is better, diverged runs below every finished
    run (all at one value, so they tie with each other)."""
    sign = 1.0 if claim.direction == "higher" else -1.0
    finite = np.concatenate([sign * a.values[np.isfinite(a.values)] for a in raw])
    bottom = (finite.min() - 1.0) if finite.size else 0.0
    return [np.where(np.isfinite(a.values), sign * a.values, bottom) for a in raw]


def rank_effect(claim: Claim, raw: list[ArmValues], confidence: float) -> stats.Effect | None:
    """P(A better than B) with diverged runs ranked last; None without values in both arms."""
    if len(raw) < 2 or not all(a.values.size for a in raw):
        return None
    a, b = ranked(claim, raw)
    return stats.probability_of_improvement_ci(a, b, confidence=confidence)


def rank_verdict(
    claim: Claim, kind: str, raw: list[ArmValues], confidence: float, budget: str
) -> verdicts.Verdict | None:
    """The verdict under the rank policy (None for parity and value claims: ranks carry no
    units, so a margin or a value cannot be checked)."""
    if kind not in ("direction", "absolute", "relative"):
        return None
    e = rank_effect(claim, raw, confidence)
    if e is None:
        return None
    n = e.n
    early = verdicts.precheck(budget, n)
    if early is not None:
        return early
    ci = f"{verdicts.fmt_confidence(confidence)} CI [{e.ci_low:.3g}, {e.ci_high:.3g}]"
    p = f"P(A better than B) = {e.estimate:.3g}, {ci} ({e.method})"
    if e.ci_low > 0.5:
        label = "reproduced" if kind == "direction" else "direction-only"
        why = f"{p} lies above 0.5" + ("" if kind == "direction" else ": ranks give no size")
    elif e.ci_high < 0.5:
        label, why = "contradicted", f"{p} lies below 0.5"
    else:
        label, why = "inconclusive", f"{p} contains 0.5"
    return verdicts.say(label, budget, n, verdicts.Reason(why, ranked=True))


def arm_row(a: ArmValues, values: np.ndarray, confidence: float) -> dict[str, Any]:
    """One arm's mean with its t interval and its run counts, for the outcome."""
    e = stats.mean_t_ci(values, confidence) if values.size else None
    none = lambda x: None if x is None or not math.isfinite(x) else float(x)  # noqa: E731
    return {
        "name": a.name,
        "n": int(values.size),
        "n_runs": a.n_runs,
        "n_diverged": a.n_diverged,
        "n_degenerate": a.n_degenerate,
        "n_censored": a.n_censored,
        "n_failed": a.n_failed,
        "n_missing": a.n_missing,
        "mean": none(e.estimate) if e else None,
        "ci_low": none(e.ci_low) if e else None,
        "ci_high": none(e.ci_high) if e else None,
    }
