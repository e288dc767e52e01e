"""Documented claims: the schema of an experiment's ``claims`` entries, and their evaluation.

A claim ("Rainbow DQN, Breakout: Adam 22% higher than RMSprop") becomes a :class:`Claim` when the
experiment file is loaded (``suite.config.from_dict`` checks every key and type) and a
:class:`ClaimOutcome` when it is judged against the experiment's results at one budget::

    outcome = evaluate_claim(claim, results, budget="quick")
    print(outcome.line())   # claim | measured (proxy) | published reference | verdict

What enters the statistic
-------------------------
Every run of the two arms is counted, and nothing vanishes:

* ``done`` with a finite metric: its value.
* ``diverged`` (or ``done`` with a NaN/inf metric): a failure. With the default
  ``diverged="worst"`` it enters at the *worst finite value observed for this metric in either
  arm* at this budget (the minimum for "higher is better", the maximum for "lower"), so a
  diverged run counts as at least as bad as the worst run that finished, and arms that share
  seeds stay paired. With ``diverged="exclude"`` it is left out of the CI. Either way
  ``n_diverged`` is shown beside the figure.
* censored (a ``*/steps_to_threshold`` metric whose ``*/reached_threshold`` is 0): the run did
  not reach the threshold; it enters at the value the trainer recorded, the step budget, which
  is a lower bound on its true value, and ``n_censored`` is shown beside the figure.
* ``failed`` (an exception or a killed worker: a bug, not a property of the optimizer) or
  ``done`` without the metric: left out and counted (``n_failed``, ``n_missing``).

Effects are paired (:func:`suite.stats.paired_difference_ci`) when both arms have values for
exactly the same seeds, which the runner arranges (same environment/data seeds across arms);
otherwise unpaired (:func:`suite.stats.unpaired_difference_ci`). A smoke budget only ever gives
"smoke-only"; no results at all gives "not-run".

The claimed effect is written in raw units, in the direction the claim states: ``relative`` is
mean(A) / mean(B) - 1 (+0.22 = "22% higher"; -0.15 = "15% lower"), ``absolute`` is
mean(A) - mean(B). Arm A is the claimed winner, so the sign must agree with ``direction``:
positive for "higher is better", negative for "lower" (checked at load time).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from suite import stats, verdicts
from suite.result import Result

__all__ = [
    "DIVERGED_POLICIES",
    "ArmValues",
    "Claim",
    "ClaimOutcome",
    "ClaimedEffect",
    "Reference",
    "arm_values",
    "evaluate_claim",
    "format_value",
    "validate_claims",
]

DIVERGED_POLICIES = ("worst", "exclude")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


# --------------------------------------------------------------------------------------------
# The schema (an experiment file's `claims` entries)
# --------------------------------------------------------------------------------------------


@dataclass
class ClaimedEffect:
    """The effect of arm A over arm B that a claim states: exactly one key."""

    relative: float | None = None
    """mean(A) / mean(B) - 1: 0.22 = "22% higher", -0.15 = "15% lower"."""
    absolute: float | None = None
    """mean(A) - mean(B), in the metric's units: 1.2 = "+1.2 IS"."""
    equivalence_margin: float | None = None
    """parity within a relative margin: |mean(A) / mean(B) - 1| <= margin (0.05 = within 5%)."""
    equivalence_margin_absolute: float | None = None
    """parity within an absolute margin: |mean(A) - mean(B)| <= margin, in metric units."""

    def validate(self) -> None:
        given = {k: v for k, v in vars(self).items() if v is not None}
        if len(given) != 1:
            raise ValueError(
                "give exactly one of relative, absolute, equivalence_margin, "
                f"equivalence_margin_absolute (got {sorted(given) or 'none'})"
            )
        ((name, value),) = given.items()
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
        if name.startswith("equivalence") and value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")
        if not name.startswith("equivalence") and value == 0:
            raise ValueError(f"{name} of 0 is a parity claim: use equivalence_margin")

    @property
    def kind(self) -> str:
        """ "relative", "absolute", "equivalence" or "equivalence_absolute"."""
        if self.relative is not None:
            return "relative"
        if self.absolute is not None:
            return "absolute"
        if self.equivalence_margin is not None:
            return "equivalence"
        return "equivalence_absolute"

    @property
    def size(self) -> float:
        """The claimed effect or margin, in its own units."""
        for value in vars(self).values():
            if value is not None:
                return float(value)
        raise ValueError("empty effect")

    @property
    def is_relative(self) -> bool:
        return self.kind in ("relative", "equivalence")


@dataclass
class Reference:
    """A published full-budget reference value (CLAIMS.md Part 2), printed for context."""

    value: float
    """the published number, in the paper's units (not necessarily the proxy's)"""
    what: str
    """what was measured: method, task, budget (e.g. "Rainbow, Breakout, 200M frames")"""
    source: str
    """where it is published (e.g. "Hessel et al. 2018, Table 6")"""


@dataclass
class Claim:
    """One documented claim (CLAIMS.md Part 1) and how the experiment measures it."""

    id: str
    """the id in CLAIMS.md Part 1 (lower case, digits, '-', '_', '.')"""
    statement: str
    """the claim as documented"""
    metric: str
    """a metric key the trainer records in Result.metrics (e.g. eval/return_final)"""
    direction: Literal["higher", "lower"]
    """whether higher or lower is better for the metric"""
    arm: str
    """arm A, the claimed winner"""
    source: str = ""
    """where the claim was made"""
    baseline: str | None = None
    """arm B; omit for a pure value claim"""
    effect: ClaimedEffect | None = None
    """the claimed effect of A over B; omit for "A beats B" with no size (needs a baseline)"""
    value: float | None = None
    """the claimed absolute value of arm A's metric (e.g. IS 7.8)"""
    units: str = ""
    """what the proxy metric measures, so nobody reads it against published numbers"""
    claimed_budget: str = ""
    """the budget the claim was made at (e.g. "Rainbow, 200M frames")"""
    fact_check: str = ""
    """the fact-check verdict and where it is argued (CLAIMS.md Part 2)"""
    references: list[Reference] = field(default_factory=list)
    """published full-budget reference values"""

    def validate(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"claim id {self.id!r}: use lower case letters, digits, '-', '_'")
        if not self.statement.strip():
            raise ValueError(f"claim {self.id}: the statement is empty")
        if self.effect is not None and self.baseline is None:
            raise ValueError(f"claim {self.id}: an effect needs a baseline arm")
        if self.baseline is not None and self.baseline == self.arm:
            raise ValueError(f"claim {self.id}: arm and baseline are both {self.arm!r}")
        if self.baseline is None and self.value is None:
            raise ValueError(
                f"claim {self.id}: nothing to measure: give a baseline (with or without an "
                "effect) or a value"
            )
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"claim {self.id}: value must be finite")
        effect = self.effect
        if effect is not None and effect.kind in ("relative", "absolute"):
            favoured = 1.0 if self.direction == "higher" else -1.0
            if effect.size * favoured < 0:
                sign = "positive" if self.direction == "higher" else "negative"
                raise ValueError(
                    f"claim {self.id}: effect.{effect.kind} {effect.size:g} says arm A is worse; "
                    f"with direction {self.direction!r} a claimed improvement is {sign} "
                    "(A / B - 1 or A - B, e.g. -0.15 for '15% lower')"
                )

    def to_dict(self) -> dict[str, Any]:
        """The claim as written in the file, without the keys left at their defaults."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None or value == "" or value == []:
                continue
            if name == "effect":
                value = {k: v for k, v in vars(value).items() if v is not None}
            elif name == "references":
                value = [vars(r).copy() for r in value]
            out[name] = value
        return out


def validate_claims(raw: Any, arm_names: list[str], metrics: list[str]) -> list[Claim]:
    """Build and check an experiment file's ``claims`` list; ConfigError names the bad key.

    :param raw: the file's ``claims`` value (a list of mappings, or None).
    :param arm_names: every arm in the file (not only those selected with ``--arms``).
    :param metrics: the file's ``metrics``; when non-empty, a claim's metric must be one of them.
    """
    from suite.config import from_dict
    from suite.errors import ConfigError

    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("expected a list of claims", key="claims")
    claims, seen = [], set()
    for i, entry in enumerate(raw):
        key = f"claims[{i}]"
        claim = from_dict(Claim, entry, key)
        if claim.id in seen:
            raise ConfigError(f"duplicate claim id {claim.id!r}", key=f"{key}.id")
        seen.add(claim.id)
        for role in ("arm", "baseline"):
            name = getattr(claim, role)
            if name is not None and name not in arm_names:
                raise ConfigError(
                    f"no arm named {name!r}", key=f"{key}.{role}", choices=list(arm_names)
                )
        if metrics and claim.metric not in metrics:
            raise ConfigError(
                f"metric {claim.metric!r} is not among the experiment's metrics",
                key=f"{key}.metric",
                choices=list(metrics),
            )
        claims.append(claim)
    return claims


# --------------------------------------------------------------------------------------------
# One arm's values for one metric
# --------------------------------------------------------------------------------------------


@dataclass
class ArmValues:
    """One arm's per-seed values of one metric, with every run accounted for.

    ``seeds``/``values`` hold the finished runs (shape (n,)), diverged runs as NaN until a
    policy replaces or drops them; the counts say what each run was.
    """

    name: str
    seeds: list[int]
    values: np.ndarray
    n_runs: int = 0
    n_diverged: int = 0
    n_censored: int = 0
    n_failed: int = 0
    n_missing: int = 0


def _censored(result: Result, metric: str) -> bool:
    if not metric.endswith("steps_to_threshold"):
        return False
    reached = metric[: -len("steps_to_threshold")] + "reached_threshold"
    return result.metrics.get(reached) == 0.0


def arm_values(results: list[Result], arm: str, metric: str) -> ArmValues:
    """Per-seed values of ``metric`` in ``arm`` (seed order), diverged runs as NaN.

    :param results: results of one experiment at one budget (other arms are ignored).
    :param arm: the arm's name.
    :param metric: a key of ``Result.metrics``.
    """
    mine = sorted((r for r in results if r.arm == arm), key=lambda r: r.seed)
    out = ArmValues(arm, [], np.zeros(0), n_runs=len(mine))
    values = []
    for r in mine:
        if r.status == "failed":
            out.n_failed += 1
            continue
        if r.status == "diverged":
            out.n_diverged += 1
            out.seeds.append(r.seed)
            values.append(float("nan"))
            continue
        if metric not in r.metrics:
            out.n_missing += 1
            continue
        value = float(r.metrics[metric])
        out.n_diverged += not math.isfinite(value)
        out.n_censored += _censored(r, metric)
        out.seeds.append(r.seed)
        values.append(value if math.isfinite(value) else float("nan"))
    out.values = np.array(values, dtype=np.float64)
    return out


def _apply_policy(
    arms: list[ArmValues], direction: str, policy: str
) -> tuple[list[tuple[list[int], np.ndarray]], float | None]:
    """Each arm's (seeds, finite values) after the diverged-run policy, and the imputed value."""
    if policy not in DIVERGED_POLICIES:
        raise ValueError(f"diverged policy must be one of {DIVERGED_POLICIES}, got {policy!r}")
    finite = np.concatenate([a.values[np.isfinite(a.values)] for a in arms])
    worst = None
    if policy == "worst" and finite.size:
        worst = float(finite.min() if direction == "higher" else finite.max())
    out = []
    for a in arms:
        keep = np.isfinite(a.values) | (worst is not None)
        values = np.where(np.isfinite(a.values), a.values, worst if worst is not None else 0.0)
        out.append(([s for s, k in zip(a.seeds, keep, strict=True) if k], values[keep]))
    return out, worst


# --------------------------------------------------------------------------------------------
# The outcome of one claim at one budget
# --------------------------------------------------------------------------------------------


def format_value(x: float | None, relative: bool = False, signed: bool = False) -> str:
    """4 significant digits; relative values as percentages ("+22%")."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if relative:
        return f"{100 * x:+.3g}%" if signed else f"{100 * x:.3g}%"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


@dataclass
class ClaimOutcome:
    """A claim judged at one budget: the measured effect (or value), its CI, and the verdict.

    ``measured``/``ci_low``/``ci_high`` are in the claim's raw units (A / B - 1 for relative and
    relative-equivalence claims, A - B for absolute ones, arm A's mean for a value claim).
    ``arms`` holds each arm's mean, CI and run counts. ``value_check`` is a second outcome
    (same keys) when a claim states both an effect and a value.
    """

    claim: Claim
    budget: str
    kind: str
    claimed: str
    measured: float
    ci_low: float
    ci_high: float
    n: int
    paired: bool
    verdict: str
    reason: str
    arms: list[dict[str, Any]]
    diverged_policy: str
    imputed_value: float | None = None
    p_improvement: dict[str, float] | None = None
    value_check: dict[str, Any] | None = None

    @property
    def relative(self) -> bool:
        return self.kind in ("relative", "equivalence")

    def measured_text(self) -> str:
        """e.g. "+5.1% (95% CI -3.2% to +14%), n=5 per arm, paired; diverged 0/1"."""
        if self.verdict == "not-run":
            return "not run"
        signed = self.kind != "value"
        body = (
            f"{format_value(self.measured, self.relative, signed)} (95% CI "
            f"{format_value(self.ci_low, self.relative, signed)} to "
            f"{format_value(self.ci_high, self.relative, signed)})"
        )
        per = (
            "seeds"
            if self.kind == "value"
            else "per arm, " + ("paired" if self.paired else "unpaired")
        )
        counts = "/".join(str(a["n_diverged"]) for a in self.arms)
        text = f"{body}, n={self.n} {per}; diverged {counts}"
        censored = sum(a["n_censored"] for a in self.arms)
        if censored:
            text += "; censored " + "/".join(str(a["n_censored"]) for a in self.arms)
        failed = sum(a["n_failed"] + a["n_missing"] for a in self.arms)
        if failed:
            text += f"; failed {failed} (left out)"
        return text

    def references_text(self) -> str:
        refs = self.claim.references
        if not refs:
            return "none found"
        return "; ".join(f"{r.value:g} ({r.what}, {r.source})" for r in refs)

    def line(self) -> str:
        """The line CLAIMS.md "What the suite should print" asks for."""
        units = f"; {self.claim.units}" if self.claim.units else ""
        verdict = self.verdict
        if self.value_check is not None:
            verdict += f"; value {self.value_check['claimed']}: {self.value_check['verdict']}"
        return (
            f"{self.claim.id}: claim: {self.claimed} | measured (proxy{units}): "
            f"{self.measured_text()} | published full-budget reference: "
            f"{self.references_text()} | {verdict} ({self.budget} budget, n={self.n})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the keys the report's ``--json`` promises, NaN as None."""
        return {
            "id": self.claim.id,
            "statement": self.claim.statement,
            "source": self.claim.source,
            "metric": self.claim.metric,
            "direction": self.claim.direction,
            "units": self.claim.units,
            "arm": self.claim.arm,
            "baseline": self.claim.baseline,
            "kind": self.kind,
            "claimed": self.claimed,
            "claimed_budget": self.claim.claimed_budget,
            "measured": _nan_to_none(self.measured),
            "ci_low": _nan_to_none(self.ci_low),
            "ci_high": _nan_to_none(self.ci_high),
            "measured_text": self.measured_text(),
            "n": self.n,
            "paired": self.paired,
            "budget": self.budget,
            "verdict": self.verdict,
            "reason": self.reason,
            "n_diverged": {a["name"]: a["n_diverged"] for a in self.arms},
            "n_censored": {a["name"]: a["n_censored"] for a in self.arms},
            "diverged_policy": self.diverged_policy,
            "imputed_value": self.imputed_value,
            "p_improvement": self.p_improvement,
            "arms": self.arms,
            "value_check": self.value_check,
            "references": [vars(r).copy() for r in self.claim.references],
            "fact_check": self.claim.fact_check,
            "line": self.line(),
        }


def _nan_to_none(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _claimed_text(claim: Claim) -> str:
    effect, vs = claim.effect, f" ({claim.arm} vs {claim.baseline})"
    if effect is None and claim.baseline is not None:
        return f"{claim.arm} better than {claim.baseline} ({claim.direction} is better)"
    if effect is None:
        return f"{claim.arm}: {format_value(claim.value)}"
    kind, size = effect.kind, effect.size
    if kind == "relative":
        return f"{format_value(size, relative=True, signed=True)}{vs}"
    if kind == "absolute":
        return f"{format_value(size, signed=True)}{vs}"
    margin = format_value(size, relative=kind == "equivalence")
    return f"parity within +-{margin}{vs}"


def _arm_row(a: ArmValues, values: np.ndarray, seed: int) -> dict[str, Any]:
    mean = float(np.mean(values)) if values.size else float("nan")
    low, high = stats.bootstrap_ci(values, seed=seed)
    return {
        "name": a.name,
        "n": int(values.size),
        "n_runs": a.n_runs,
        "n_diverged": a.n_diverged,
        "n_censored": a.n_censored,
        "n_failed": a.n_failed,
        "n_missing": a.n_missing,
        "mean": _nan_to_none(mean),
        "ci_low": _nan_to_none(low),
        "ci_high": _nan_to_none(high),
    }


def evaluate_claim(
    claim: Claim,
    results: list[Result],
    budget: str,
    *,
    diverged: str = "worst",
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> ClaimOutcome:
    """Judge one claim against an experiment's results at one budget.

    :param claim: the claim.
    :param results: the experiment's results at ``budget`` (any arms; failed runs included, they
        are counted). Pass only results of the current config (``suite.report.select_results``).
    :param budget: the budget name; "smoke" yields "smoke-only".
    :param diverged: "worst" (a diverged run enters at the worst finite value observed in either
        arm) or "exclude" (left out of the CI, counted); see the module docstring.
    :param confidence: coverage of the bootstrap intervals.
    :param n_resamples: bootstrap replicates.
    :param seed: seed of the bootstrap, so a report is deterministic.
    """
    names = [claim.arm] + ([claim.baseline] if claim.baseline is not None else [])
    raw = [arm_values(results, name, claim.metric) for name in names]
    (kept, imputed) = _apply_policy(raw, claim.direction, diverged)
    arms = [_arm_row(a, values, seed) for a, (_, values) in zip(raw, kept, strict=True)]
    claimed = _claimed_text(claim)
    common = {
        "claim": claim,
        "budget": budget,
        "claimed": claimed,
        "arms": arms,
        "diverged_policy": diverged,
        "imputed_value": imputed,
    }
    value_check = None
    if claim.value is not None:
        value_check = _value_outcome(
            claim, raw[0], kept[0][1], budget, confidence, n_resamples, seed
        )
    if claim.baseline is None:
        v = value_check
        return ClaimOutcome(
            kind="value",
            measured=v["measured"],
            ci_low=v["ci_low"],
            ci_high=v["ci_high"],
            n=v["n"],
            paired=False,
            verdict=v["verdict"],
            reason=v["reason"],
            **common,
        )

    (seeds_a, a), (seeds_b, b) = kept
    paired = bool(a.size) and seeds_a == seeds_b
    kind = "direction" if claim.effect is None else claim.effect.kind
    relative = claim.effect is not None and claim.effect.is_relative
    nan = float("nan")
    estimate, low, high, n, problem = nan, nan, nan, 0, None
    if a.size and b.size:
        compute = stats.paired_difference_ci if paired else stats.unpaired_difference_ci
        try:
            effect = compute(
                a, b, relative=relative, confidence=confidence, n_resamples=n_resamples, seed=seed
            )
            estimate, low, high, n = effect.estimate, effect.ci_low, effect.ci_high, effect.n
        except ValueError as error:  # relative effect with a zero baseline mean
            problem = str(error)
    judged = _judge(claim, kind, low, high, budget, n, confidence, problem, raw)
    if value_check is not None:
        value_check = {
            k: _nan_to_none(v) if isinstance(v, float) else v for k, v in value_check.items()
        }
    return ClaimOutcome(
        kind=kind,
        measured=estimate,
        ci_low=low,
        ci_high=high,
        n=n,
        paired=paired,
        verdict=judged.label,
        reason=judged.text,
        p_improvement=_p_improvement(claim, a, b, confidence, n_resamples, seed),
        value_check=value_check,
        **common,
    )


def _judge(
    claim: Claim,
    kind: str,
    low: float,
    high: float,
    budget: str,
    n: int,
    confidence: float,
    problem: str | None,
    raw: list[ArmValues],
) -> verdicts.Verdict:
    """The verdict, with not-run (no runs) and undefined effects decided before the CI."""
    if not all(a.values.size for a in raw):
        empty = [a.name for a in raw if not a.values.size]
        return verdicts.Verdict("not-run", budget, 0, f"not-run: no results for {empty}")
    if problem is not None:
        label = "smoke-only" if budget == verdicts.SMOKE_BUDGET else "inconclusive"
        return verdicts.Verdict(label, budget, n, f"{label} at {budget} budget: {problem}")
    if n == 0:  # runs exist, but no arm-A or arm-B run left a finite value to compare
        label = "smoke-only" if budget == verdicts.SMOKE_BUDGET else "inconclusive"
        diverged = ", ".join(f"{a.name} {a.n_diverged}" for a in raw)
        return verdicts.Verdict(
            label, budget, 0, f"{label} at {budget} budget: no finite values (diverged: {diverged})"
        )
    args = {"budget": budget, "n": n, "confidence": confidence}
    if kind == "direction":
        return verdicts.judge_direction(low, high, direction=claim.direction, **args)
    if kind.startswith("equivalence"):
        return verdicts.judge_equivalence(low, high, claim.effect.size, **args)
    return verdicts.judge_effect(low, high, claim.effect.size, **args)


def _value_outcome(
    claim: Claim,
    raw: ArmValues,
    values: np.ndarray,
    budget: str,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Arm A's mean and CI against the claimed value (``values``: after the diverged policy)."""
    n = int(values.size)
    if n == 0:
        nan = float("nan")
        mean, low, high = nan, nan, nan
        if raw.values.size == 0:
            judged = verdicts.Verdict("not-run", budget, 0, f"not-run: no results for {claim.arm}")
        else:
            label = "smoke-only" if budget == verdicts.SMOKE_BUDGET else "inconclusive"
            text = f"{label} at {budget} budget: no finite values ({raw.n_diverged} diverged)"
            judged = verdicts.Verdict(label, budget, 0, text)
    else:
        mean = float(np.mean(values))
        low, high = stats.bootstrap_ci(
            values, confidence=confidence, n_resamples=n_resamples, seed=seed
        )
        judged = verdicts.judge_value(
            low,
            high,
            claim.value,
            budget=budget,
            n=n,
            direction=claim.direction,
            confidence=confidence,
        )
    return {
        "claimed": format_value(claim.value),
        "measured": mean,
        "ci_low": low,
        "ci_high": high,
        "n": n,
        "verdict": judged.label,
        "reason": judged.text,
    }


def _p_improvement(
    claim: Claim, a: np.ndarray, b: np.ndarray, confidence: float, n_resamples: int, seed: int
) -> dict[str, float] | None:
    """P(A better than B) with its CI, oriented by the claim's direction."""
    if not (a.size and b.size):
        return None
    sign = 1.0 if claim.direction == "higher" else -1.0
    effect = stats.probability_of_improvement_ci(
        sign * a, sign * b, confidence=confidence, n_resamples=min(n_resamples, 2000), seed=seed
    )
    return {"estimate": effect.estimate, "ci_low": effect.ci_low, "ci_high": effect.ci_high}
