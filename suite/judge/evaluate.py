"""Claims judged: a :class:`~suite.judge.claims.Claim` and the experiment's results at one
budget become a :class:`ClaimOutcome`::

    outcome = evaluate_claim(claim, results, budget="quick")
    print(outcome.line())   # claim | measured (proxy) | published reference | verdict

What enters the statistic
-------------------------
Every run of the two arms is counted, and nothing vanishes (:mod:`suite.judge.rules`; what each
run counts as is :mod:`suite.judge.runs`):

* ``done`` with a finite metric: its value. A run the trainer marked degenerate
  (``eval/degenerate`` or ``eval/collapsed`` = 1, ``details["degenerate"]``) keeps its value and
  is counted; a baseline degenerate in most seeds makes the effect "not interpretable".
* ``diverged`` (or a NaN/inf metric): a failure, under the ``diverged`` policy: "floor" (the
  metric's floor, else the worst finite value seen), "rank" (ranked last, P(A > B)) or
  "exclude". The verdict under the other of floor/rank is kept when they differ. Under
  "floor" the headline never rests on an imputed value (issue 22): direction and size claims
  take the rank policy's verdict, parity and value claims need a declared floor and a finished
  run in every arm.
* censored (a ``*/steps_to_threshold`` whose ``*/reached_threshold`` is 0): it enters at the
  step budget it recorded, so the mean is a restricted mean (RMST); censoring limits which
  verdicts can stand.
* ``failed`` (a crash: a bug, not a property of the optimizer) or ``done`` without the metric:
  left out and counted (``n_failed``, ``n_missing``).

Intervals are Student-t (paired t when both arms have the same seeds, else Welch's standard
error with Hsu's df; a t on the logs, i.e. a ratio of geometric means, for relative effects;
TOST's 1 - 2 alpha interval for parity and for values), chosen by simulation because the
percentile bootstrap does not hold its level at 3-10 seeds (suite/judge/stats.py,
bench/verdict_calibration.py). :func:`evaluate_claims` labels several claims at the Holm
level. Every
outcome records the interval's method and the confidence actually used: with
``looks_planned = K`` (``run --until-decided``) each look is judged at 1 - alpha / K
(Bonferroni over the planned looks), so stopping at the first decided look keeps the overall
error rate at alpha.

"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from suite.judge import rules, stats, verdicts
from suite.judge.claims import Claim
from suite.judge.metrics import metric_info
from suite.judge.rules import ArmValues, arm_values
from suite.result import Result

__all__ = ["ClaimOutcome", "evaluate_claim", "evaluate_claims", "format_value"]


def format_value(x: float | None, relative: bool = False, signed: bool = False) -> str:
    """4 significant digits; relative values as percentages ("+22%")."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if relative:
        return f"{100 * x:+.3g}%" if signed else f"{100 * x:.3g}%"
    if 1e4 <= abs(x) < 1e12:  # steps: 30000, not 3e+04 (issue 16)
        return f"{x:+.0f}" if signed else f"{x:.0f}"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


@dataclass
class ClaimOutcome:
    """A claim judged at one budget: the measured effect (or value), its CI, and the verdict.

    ``measured``/``ci_low``/``ci_high`` are in the claim's raw units (A / B - 1 for relative and
    relative-equivalence claims, A - B for absolute ones, arm A's mean for a value claim), at
    ``confidence`` (the level actually used: 1 - 2 alpha for parity, alpha / looks_planned per
    look) by ``method``. ``arms`` holds each arm's mean, CI and run counts. ``value_check`` is a
    second outcome (same keys) when a claim states both an effect and a value.
    ``policy_verdicts`` holds the verdict under the floor and the rank policies when runs
    diverged. ``p_value`` is the test's (of no effect; TOST's for parity; None for values).
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
    method: str = ""
    confidence: float = 0.95
    imputed_value: float | None = None
    imputed_from: str = ""
    p_improvement: dict[str, Any] | None = None
    value_check: dict[str, Any] | None = None
    policy_verdicts: dict[str, str] | None = None
    p_value: float | None = None
    look: int = 1
    looks_planned: int = 1
    family_size: int = 1
    """claims tested together (:func:`evaluate_claims`): labels are at the Holm level when > 1"""
    holm_p: float | None = None
    """the Holm-adjusted p over the family (None for a single claim, or without a p-value)"""
    judged: verdicts.Verdict | None = field(default=None, compare=False, repr=False)
    """``verdict`` and ``reason`` as a Verdict (its Reason), for a step that overrides it"""

    @property
    def relative(self) -> bool:
        return self.kind in ("relative", "equivalence")

    def policies_differ(self) -> bool:
        return bool(self.policy_verdicts) and len(set(self.policy_verdicts.values())) > 1

    def measured_text(self) -> str:
        """e.g. "+5.1% (95% CI -3.2% to +14%, paired t), n=5 per arm, paired; diverged 0/1"."""
        if self.verdict == "not-run" or (self.kind == "settings" and not self.n):
            return "not run"
        signed = self.kind not in ("value", "settings")
        level = verdicts.fmt_confidence(self.confidence)
        value = format_value(self.measured, self.relative, signed)
        if self.n < verdicts.MIN_SEEDS:
            body = f"{value} (no CI: {verdicts.MIN_SEEDS} seeds needed)"
        elif math.isnan(self.ci_low) or math.isnan(self.ci_high):  # the rules refused it
            body = f"{value} (no CI: refused, see the verdict's reason; {self.method})"
        else:
            body = (
                f"{value} ({level} CI {format_value(self.ci_low, self.relative, signed)} to "
                f"{format_value(self.ci_high, self.relative, signed)}, {self.method})"
            )
        per = (
            "seeds"
            if self.kind in ("value", "settings")
            else "per arm, " + ("paired" if self.paired else "unpaired")
        )
        sizes = "/".join(str(a["n"]) for a in self.arms)
        # Counts by arm name: "diverged 0/0" read as a fraction (issue 16).
        text = f"{body}, n={self.n} {per} ({sizes}); " + _by_arm(
            self.arms, "n_diverged", "diverged"
        )
        for key, word in (("n_degenerate", "degenerate"), ("n_censored", "censored")):
            if sum(a.get(key, 0) for a in self.arms):
                text += "; " + _by_arm(self.arms, key, word)
        failed = sum(a["n_failed"] for a in self.arms)
        missing = sum(a["n_missing"] for a in self.arms)
        if failed:
            text += f"; failed {failed} (left out)"
        if missing:
            text += f"; finished without the metric {missing} (left out)"
        return text

    def references_text(self) -> str:
        refs = self.claim.references
        if not refs:
            return "none found"
        return "; ".join(f"{r.value:g} ({r.what}, {r.source})" for r in refs)

    def verdict_text(self) -> str:
        """The verdict, the value check's, and both policies' when they differ."""
        verdict = self.verdict
        if self.policies_differ():
            verdict += " (" + ", ".join(f"{k}: {v}" for k, v in self.policy_verdicts.items()) + ")"
        if self.value_check is not None:
            verdict += f"; value {self.value_check['claimed']}: {self.value_check['verdict']}"
        return verdict

    def basis_text(self) -> str:
        """e.g. "quick budget, n=4" or "quick budget, n=6, look 2 of 5 (until-decided)"."""
        text = f"{self.budget} budget, n={self.n}"
        if self.looks_planned > 1:
            text += f", look {self.look} of {self.looks_planned} (until-decided)"
        return text

    def line(self) -> str:
        """The line CLAIMS.md "What the suite should print" asks for."""
        units = f"; {self.claim.units}" if self.claim.units else ""
        return (
            f"{self.claim.id}: claim: {self.claimed} | measured (proxy{units}): "
            f"{self.measured_text()} | published full-budget reference: "
            f"{self.references_text()} | {self.verdict_text()} ({self.basis_text()})"
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
            "method": self.method,
            "confidence": self.confidence,
            "measured_text": self.measured_text(),
            "n": self.n,
            "n_per_arm": {a["name"]: a["n"] for a in self.arms},
            "paired": self.paired,
            "budget": self.budget,
            "verdict": self.verdict,
            "verdict_text": self.verdict_text(),
            "reason": self.reason,
            "p_value": _nan_to_none(self.p_value),
            "n_diverged": {a["name"]: a["n_diverged"] for a in self.arms},
            "n_degenerate": {a["name"]: a["n_degenerate"] for a in self.arms},
            "n_censored": {a["name"]: a["n_censored"] for a in self.arms},
            "diverged_policy": self.diverged_policy,
            "policy_verdicts": self.policy_verdicts,
            "imputed_value": self.imputed_value,
            "imputed_from": self.imputed_from,
            "p_improvement": self.p_improvement,
            "look": self.look,
            "looks_planned": self.looks_planned,
            "family_size": self.family_size,
            "holm_p": self.holm_p,
            "arms": self.arms,
            "value_check": self.value_check,
            "references": [vars(r).copy() for r in self.claim.references],
            "fact_check": self.claim.fact_check,
            "line": self.line(),
        }


def _by_arm(arms: list[dict[str, Any]], key: str, word: str) -> str:
    """ "diverged: none", or "diverged: adam 1, sgd 0" (each arm's count, by name)."""
    if not sum(a.get(key, 0) for a in arms):
        return f"{word}: none"
    return f"{word}: " + ", ".join(f"{a['name']} {a.get(key, 0)}" for a in arms)


def _nan_to_none(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _claimed_text(claim: Claim) -> str:
    effect, vs = claim.effect, f" ({claim.arm} vs {claim.baseline})"
    if claim.settings is not None:
        return f"{claim.arm}'s settings as documented (no comparison)"
    if effect is None and claim.baseline is not None:
        return f"{claim.arm} better than {claim.baseline} ({claim.direction} is better)"
    if effect is None:
        return f"{claim.arm}: {format_value(claim.value)} ({claim.scale})"
    kind, size = effect.kind, effect.size
    if kind == "relative":
        return f"{format_value(size, relative=True, signed=True)}{vs}"
    if kind == "absolute":
        return f"{format_value(size, signed=True)}{vs}"
    margin = format_value(size, relative=kind == "equivalence")
    return f"parity within +-{margin}{vs}"


# Kinds the rank policy can judge (ranks carry no units: no margin, no value).
RANK_KINDS = ("direction", "absolute", "relative")


def _without_imputation(
    kind: str, raw: list[ArmValues], floor: _Judgement, rank: _Judgement
) -> _Judgement:
    """The headline when runs diverged under the floor policy: never a verdict that rests on an
    imputed value (issue 22). Direction and size claims take the rank policy's verdict; parity
    and value claims keep the floor's only when the metric declares it and every arm has a
    finished run, and are inconclusive otherwise."""
    v = floor.verdict
    if kind in RANK_KINDS:
        imputed = floor.sample.imputed
        at = f"at {imputed:.4g}, " if imputed is not None else ""
        note = f"; ranks decide because runs diverged (the floor would enter them {at}an imputed value)"
        if rank.verdict.label not in verdicts.DECIDED:
            return rank
        return dataclasses.replace(rank, verdict=rank.verdict.noted(note))
    if v.label not in verdicts.DECIDED:
        return floor
    unfinished = [a.name for a in raw if not np.isfinite(a.values).any()]
    if unfinished:
        why = f"{', '.join(unfinished)} has no finished run: it is never judged as if it had one"
    elif floor.sample.imputed_from != rules.DECLARED_FLOOR:
        why = (
            "runs diverged and the metric declares no floor: the verdict would rest on an "
            f"imputed value ({floor.sample.imputed_from})"
        )
    else:
        return floor
    return dataclasses.replace(floor, verdict=rules.inconclusive(v, why))


@dataclass
class _Judgement:
    """One kind of claim judged under one policy."""

    sample: rules.Sample
    effect: stats.Effect | None
    verdict: verdicts.Verdict
    p_value: float | None


def _judge(
    claim: Claim,
    kind: str,
    raw: list[ArmValues],
    policy: str,
    info,
    confidence: float,
    budget: str,
) -> _Judgement:
    """Precheck, guards, the kind's rule, adjustments: the whole verdict under one policy."""
    sample = rules.prepare(claim, kind, raw, policy, info)
    unit = "seeds" if kind == "value" else "seeds per arm"
    runs = min(a.values.size for a in raw)
    effect, p_value, verdict, problem = None, None, None, ""
    if sample.n:
        try:
            judged = rules.RULES[kind](sample, confidence, budget)
            effect, p_value, verdict = judged.effect, judged.p_value, judged.verdict
        except ValueError as error:  # e.g. a ratio of non-positive values: a guard says why
            problem = str(error)
    # The one precheck: not-run, smoke-only, too few seeds.
    # Runs without a finite value (all diverged, no floor) count here as runs, not as "not-run".
    early = verdicts.precheck(budget, sample.n or runs, unit)
    if early is None and sample.n == 0:
        diverged = (
            f"{raw[0].n_diverged} diverged"
            if len(raw) == 1
            else "diverged: " + ", ".join(f"{a.name} {a.n_diverged}" for a in raw)
        )
        reason = verdicts.Reason(f"no finite values ({diverged})", unit=None)
        early = verdicts.say("inconclusive", budget, 0, reason)
    if early is not None:
        return _Judgement(sample, effect, early, p_value)
    reasons = (guard(sample) for guard in rules.GUARDS)
    why = next((reason for reason in reasons if reason is not None), None)
    if why is not None or verdict is None:
        reason = verdicts.Reason(why if why is not None else problem, unit)
        return _Judgement(
            sample, effect, verdicts.say("inconclusive", budget, sample.n, reason), None
        )
    if policy == "rank" and kind not in ("value",) and not kind.startswith("equivalence"):
        verdict = rules.rank_verdict(claim, kind, raw, confidence, budget) or verdict
    for adjust in rules.ADJUSTMENTS:
        verdict = adjust(sample, verdict)
    return _Judgement(sample, effect, verdict, p_value)


def evaluate_claim(
    claim: Claim,
    results: list[Result],
    budget: str,
    *,
    diverged: str = "floor",
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    look: int = 1,
    looks_planned: int = 1,
) -> ClaimOutcome:
    """Judge one claim against an experiment's results at one budget.

    :param claim: the claim.
    :param results: the experiment's results at ``budget`` (any arms; failed runs included, they
        are counted). Pass only results of the current config (``suite.config.select_results``).
    :param budget: the budget name; "smoke" yields "smoke-only".
    :param diverged: "floor", "rank" or "exclude" (suite/judge/rules.py).
    :param confidence: the overall level 1 - alpha (two-sided intervals; TOST at alpha).
    :param n_resamples: unused by the t intervals; kept for callers that pass it.
    :param seed: unused by the t intervals; kept for callers that pass it.
    :param look: which look of a sequential design this is (``run --until-decided``).
    :param looks_planned: looks planned; each is judged at 1 - alpha / looks_planned.
    """
    del n_resamples, seed  # t intervals and Newcombe's are deterministic
    if not 1 <= look <= looks_planned:
        raise ValueError(f"look {look} of {looks_planned} planned")
    level = 1.0 - (1.0 - confidence) / looks_planned  # Bonferroni over the planned looks
    if claim.settings is not None:
        return _settings_outcome(claim, results, budget, diverged, level, look, looks_planned)
    names = [claim.arm] + ([claim.baseline] if claim.baseline is not None else [])
    raw = [arm_values(results, name, claim.metric) for name in names]
    info = metric_info(claim.metric, [r for r in results if r.arm in names])
    if claim.metric_sign:
        info = dataclasses.replace(info, sign=claim.metric_sign)
    kind = (
        "value"
        if claim.baseline is None
        else ("direction" if claim.effect is None else claim.effect.kind)
    )
    main = _judge(claim, kind, raw, diverged, info, level, budget)
    policy_verdicts = None
    if diverged in ("floor", "rank") and any(a.n_diverged for a in raw):
        other = "rank" if diverged == "floor" else "floor"
        alt = _judge(claim, kind, raw, other, info, level, budget)
        if other == "floor" or kind in RANK_KINDS:
            policy_verdicts = {diverged: main.verdict.label, other: alt.verdict.label}
        if diverged == "floor":
            main = _without_imputation(kind, raw, main, alt)
    shown = main.sample.values
    arms = [rules.arm_row(a, v, level) for a, v in zip(raw, shown, strict=True)]
    value_check = None
    if claim.value is not None and kind != "value":
        value_check = _value_check(claim, raw[:1], diverged, info, level, budget)
    nan = float("nan")
    e = main.effect
    rank = rules.rank_effect(claim, raw, level)
    n = main.sample.n if all(a.values.size for a in raw) else 0
    # No interval beside "too few seeds", nor beside "no interval holds its level" (imbalance).
    if e is not None and (n < verdicts.MIN_SEEDS or rules.imbalance(main.sample)):
        e = dataclasses.replace(e, ci_low=nan, ci_high=nan)
    return ClaimOutcome(
        claim=claim,
        budget=budget,
        kind=kind,
        claimed=_claimed_text(claim),
        measured=e.estimate if e else nan,
        ci_low=e.ci_low if e else nan,
        ci_high=e.ci_high if e else nan,
        n=n,
        paired=main.sample.paired,
        verdict=main.verdict.label,
        reason=main.verdict.text,
        judged=main.verdict,
        arms=arms,
        diverged_policy=diverged,
        method=e.method if e else "",
        confidence=e.confidence if e else level,
        imputed_value=main.sample.imputed,
        imputed_from=main.sample.imputed_from,
        p_improvement=None
        if rank is None
        else {
            "estimate": rank.estimate,
            "ci_low": rank.ci_low,
            "ci_high": rank.ci_high,
            "method": rank.method + ", diverged runs ranked last",
            "confidence": rank.confidence,
        },
        value_check=value_check,
        policy_verdicts=policy_verdicts,
        p_value=main.p_value,
        look=look,
        looks_planned=looks_planned,
    )


def _settings_outcome(
    claim: Claim,
    results: list[Result],
    budget: str,
    diverged: str,
    level: float,
    look: int,
    looks_planned: int,
) -> ClaimOutcome:
    """A statement of settings: the fact check is the verdict; arm A's mean and t interval are
    what it measured, and a published score at the same task and budget (``value``) is judged
    as a value check beside it."""
    raw = [arm_values(results, claim.arm, claim.metric)]
    info = metric_info(claim.metric, [r for r in results if r.arm == claim.arm])
    values = raw[0].values[np.isfinite(raw[0].values)]
    n = int(values.size)
    nan = float("nan")
    e = stats.mean_t_ci(values, level) if n >= verdicts.MIN_SEEDS else None
    value_check = None
    if claim.value is not None:
        value_check = _value_check(claim, raw, diverged, info, level, budget)
    measured = f"measured at {budget} budget, n={n}" if n else "not measured yet"
    return ClaimOutcome(
        claim=claim,
        budget=budget,
        kind="settings",
        claimed=_claimed_text(claim),
        measured=float(values.mean()) if n else nan,
        ci_low=e.ci_low if e else nan,
        ci_high=e.ci_high if e else nan,
        n=n,
        paired=False,
        verdict=claim.settings,
        reason=(
            f"{claim.settings}: a statement of settings, not a comparison, so no arm is judged "
            f"against another; the fact check says: {claim.fact_check} ({measured})"
        ),
        arms=[rules.arm_row(raw[0], values, level)],
        diverged_policy=diverged,
        method=e.method if e else "",
        confidence=level,
        value_check=value_check,
        look=look,
        looks_planned=looks_planned,
    )


def _value_check(
    claim: Claim, raw: list[ArmValues], policy: str, info, level: float, budget: str
) -> dict[str, Any]:
    """Arm A's mean and CI against the claimed value, as a dict (a claim with an effect and a
    value gets both verdicts)."""
    judged = _judge(
        claim, "value", raw, "exclude" if policy == "exclude" else "floor", info, level, budget
    )
    e = judged.effect
    return {
        "claimed": format_value(claim.value),
        "scale": claim.scale,
        "measured": _nan_to_none(e.estimate) if e else None,
        "ci_low": _nan_to_none(e.ci_low) if e else None,
        "ci_high": _nan_to_none(e.ci_high) if e else None,
        "method": e.method if e else "",
        "confidence": e.confidence if e else level,
        "n": judged.sample.n,
        "verdict": judged.verdict.label,
        "reason": judged.verdict.text,
    }


def evaluate_claims(
    claims: list[Claim], results: list[Result], budget: str, **kwargs
) -> list[ClaimOutcome]:
    """Every claim judged, the labels of several claims at the Holm level (keyword arguments as
    :func:`evaluate_claim`).

    With m >= 2 claims that have a p-value, each claim keeps the interval shown at the overall
    level, but its label is the one at Holm's (1979) step-down level: the claim with the r-th
    smallest p (r = 0, 1, ...) is judged at 1 - alpha / (m - r), and once one claim is not
    rejected none after it is (its decided label becomes "inconclusive", with the Holm p in the
    reason). So "family-wise error controlled" holds for the labels, not only for the p column:
    with 7 null claims the old labels decided 30.6% of reports (issue 22). A single claim is
    unchanged.
    """
    outcomes = [evaluate_claim(c, results, budget, **kwargs) for c in claims]
    tested = [i for i, o in enumerate(outcomes) if _has_p(o.p_value)]
    m = len(tested)
    if m < 2:
        return outcomes
    adjusted = stats.holm([outcomes[i].p_value for i in tested])
    alpha = (1.0 - kwargs.get("confidence", 0.95)) / kwargs.get("looks_planned", 1)
    confidence = kwargs.get("confidence", 0.95)
    order = sorted(range(m), key=lambda j: outcomes[tested[j]].p_value)
    for rank, j in enumerate(order):
        i = tested[j]
        at_level = {**kwargs, "confidence": 1.0 - (1.0 - confidence) / (m - rank)}
        holm_outcome = evaluate_claim(claims[i], results, budget, **at_level)
        judged = holm_outcome.judged
        if adjusted[j] >= alpha and judged.label in verdicts.DECIDED:
            why = (
                f"its Holm-adjusted p = {adjusted[j]:.3g} over {m} claims is not below alpha "
                f"{alpha:.3g}"
            )
            reason = verdicts.Reason(why, unit="", overrides=judged)
            judged = verdicts.say("inconclusive", budget, holm_outcome.n, reason)
        else:
            level = verdicts.fmt_confidence(holm_outcome.confidence)
            judged = judged.noted(f" (Holm level {level}, {m} claims)")
        outcomes[i] = dataclasses.replace(
            outcomes[i],
            verdict=judged.label,
            reason=judged.text,
            judged=judged,
            family_size=m,
            holm_p=adjusted[j],
        )
    return outcomes


def _has_p(p: float | None) -> bool:
    return p is not None and math.isfinite(p)
