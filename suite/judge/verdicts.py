"""Verdicts on documented claims from confidence intervals (Student-t; see suite/judge/stats.py).

A claim compares arm A with arm B on one metric. It states an effect (absolute, A - B, or
relative, mean(A) / mean(B) - 1: +0.22 = "22% higher"), an equivalence ("parity"), or an
absolute value for arm A ("IS 7.8"), and the metric has a direction: "higher" or "lower" is
better. A verdict compares the claim with the CI measured at some budget over n seeds per arm.

Effect claims: labels by where the CI lies relative to 0 and to the claimed effect (a CI that
excludes 0 is a significant two-sided test at 1 - confidence; cf. Agarwal et al., 2021, on
reporting intervals rather than point estimates; Colas et al., 2018, on seeds).

Labels (:data:`VERDICTS`)
-------------------------
``reproduced``      the CI excludes 0 and is pinned to the claimed size: it lies inside the band
                    claimed x [1 / tolerance, 2 - 1 / tolerance] (:func:`size_band`; on the log
                    ratio for relative effects; default tolerance 2: "+22%" is reproduced by a
                    CI inside [+10.5%, +34.7%]); for parity, the (1 - 2 alpha) CI lies inside
                    the margin (TOST, Lakens 2017); for a value, the (1 - 2 alpha) CI lies
                    within the value's tolerance (+-10% by default).
``direction-only``  direction reproduced, consistent with the claimed size but not pinned to it:
                    the CI excludes 0 on the claimed side and overlaps the band without lying
                    inside it.
``weaker`` / ``stronger``  the CI excludes 0 and lies entirely below / above the band (for a
                    value: entirely below / above its tolerance band).
``contradicted``    the CI lies on the other side of 0 (for parity: entirely outside the margin).
``inconclusive``    anything else; the reason always says why (CI contains 0, too few seeds,
                    saturated, baseline degenerate, not comparable scales, undefined relative
                    effect, censoring, ...).
``not-run``         no results; ``smoke-only``: the smoke budget never yields a verdict.
``supported`` / ``partly-supported`` / ``unsupported``  a claim that states settings and
                    compares nothing: the fact check's verdict, shown beside what was measured.

The precheck (not-run, smoke-only, too few seeds) is decided in one place, :func:`precheck`.
Every verdict's sentence is written in one place too, :func:`say`, from a :class:`Reason`:
rules, guards and adjustments (suite/judge/rules.py, suite/judge/evaluate.py) give the reason
as data, and a step that overrides a verdict quotes it through ``Reason.overrides``.

Direction and sign convention
-----------------------------
The claimed effect and the CI must be in the same units, the raw ones the effect is measured in
(A - B or A / B - 1). :func:`orient` maps them to the claim's *favoured* orientation, where
positive means "A better": for a "lower is better" metric it flips every sign
(``(low, high, claimed) -> (-high, -low, -claimed)``), so "FID 15% lower" (raw -0.15) becomes
+0.15. :func:`verdict` works in the claim's own orientation (it aligns everything with the sign
of the claimed effect), so its label is unchanged by that flip: callers may orient or not.
Direction matters for :func:`value_verdict`, where "below the claimed value" is worse for a
"higher" metric and better for a "lower" one.

Budgets: ``"smoke"`` never yields a reproduction verdict. Any other budget name ("quick",
"full", ...) is only quoted in the text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "DECIDED",
    "DEFAULT_TOLERANCE",
    "DEFAULT_VALUE_TOLERANCE",
    "DIRECTIONS",
    "MIN_SEEDS",
    "SMOKE_BUDGET",
    "VERDICTS",
    "Direction",
    "Reason",
    "Verdict",
    "direction_verdict",
    "fmt_confidence",
    "equivalence_verdict",
    "judge_direction",
    "judge_effect",
    "judge_equivalence",
    "judge_value",
    "orient",
    "precheck",
    "say",
    "size_band",
    "value_margin",
    "value_verdict",
    "verdict",
]

VERDICTS: tuple[str, ...] = (
    "reproduced",
    "direction-only",
    "weaker",
    "stronger",
    "contradicted",
    "inconclusive",
    "not-run",
    "smoke-only",
    # A statement of settings (claims.Claim.settings) is not measured: its verdict is the
    # fact check, never "reproduced" by beating another arm (issue 24).
    "supported",
    "partly-supported",
    "unsupported",
)
Direction = Literal["higher", "lower"]
DIRECTIONS: tuple[str, ...] = ("higher", "lower")
SMOKE_BUDGET = "smoke"
# A t interval needs n >= 2, but at n = 2 it has 1 df (t = 12.7) and one outlying seed decides
# it; the quick budgets run 3 seeds. Fewer than MIN_SEEDS seeds per arm is always "inconclusive".
MIN_SEEDS = 3
# "reproduced" needs the CI inside [claimed / TOLERANCE, claimed * TOLERANCE]: a factor of 2
# either way is as precise as a 3-10 seed proxy experiment can hope to pin a published effect.
DEFAULT_TOLERANCE = 2.0
# A value claim is reproduced by a CI within +-10% of the claimed value unless the claim
# (value_tolerance) or the metric (suite/judge/metrics.py) says otherwise: a convention, as
# tight as 3-10 proxy seeds can pin a published score.
DEFAULT_VALUE_TOLERANCE = 0.10
# Labels that state a conclusion (what --until-decided stops on, and calibration counts).
DECIDED: tuple[str, ...] = ("reproduced", "direction-only", "weaker", "stronger", "contradicted")


@dataclass(frozen=True)
class Verdict:
    """A verdict label with the budget and seeds per arm it rests on, and one sentence why.

    Made by :func:`say`, which keeps the sentence's parts in ``reason``, so that a later step
    quotes or extends the reason (``body``, ``noted``) without taking the sentence apart.
    """

    label: str
    budget: str
    n: int
    text: str
    reason: Reason | None = field(default=None, compare=False, repr=False)

    @property
    def body(self) -> str:
        """The sentence after its head ("95% CI [-3.1, 12] contains 0")."""
        return self.text if self.reason is None else self.reason.body()

    def noted(self, note: str) -> Verdict:
        """The same verdict with ``note`` added at the end of its sentence."""
        if self.reason is None:
            return replace(self, text=self.text + note)
        return say(
            self.label, self.budget, self.n, replace(self.reason, notes=self.reason.notes + note)
        )


@dataclass(frozen=True)
class Reason:
    """Why a verdict has its label, as data; :func:`say` writes the words."""

    why: str
    """the clause that says why ("95% CI [-3.1, 12] contains 0")"""
    unit: str | None = "seeds per arm"
    """how ``n`` is counted in the head ("seeds per arm", "seeds"); "" names n alone, None
    names no n ("not-run at quick budget: ...")"""
    ranked: bool = False
    """the rank policy decided: the head says so"""
    overrides: Verdict | None = None
    """the verdict this one replaces (an adjustment, Holm), quoted after ``why``"""
    notes: str = ""
    """added at the end of the sentence (no spread, ranks decide, the Holm level)"""

    def body(self) -> str:
        text = self.why
        if self.overrides is not None:
            text += f" ({self.overrides.label}: {self.overrides.body})"
        return text + self.notes


def say(label: str, budget: str, n: int, reason: Reason) -> Verdict:
    """The verdict with its sentence: "LABEL at BUDGET budget, n=N UNIT: BODY" (the one place
    that writes a verdict's words)."""
    head = f"{label} at {budget} budget"
    if reason.unit is not None:
        head += f", n={n}" + (f" {reason.unit}" if reason.unit else "")
    if reason.ranked:
        head += " (rank policy: diverged runs ranked last)"
    return Verdict(label, budget, n, f"{head}: {reason.body()}", reason)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def precheck(budget: str, n: int, unit: str = "seeds per arm") -> Verdict | None:
    """The one place that decides a verdict before any interval: not-run (n == 0), smoke-only
    (the smoke budget), inconclusive (fewer than MIN_SEEDS seeds); None when the CI decides.

    :param budget: budget name.
    :param n: seeds behind the comparison (the smaller arm's count; 0 when an arm has no runs).
    :param unit: how n is counted in the sentence ("seeds per arm", "seeds").
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        return say("not-run", budget, 0, Reason("no seeds completed", unit=None))
    if budget.split(" ", 1)[0] == SMOKE_BUDGET:  # "smoke (changed by --set ...)" too
        why = "a smoke run never yields a reproduction verdict"
        return say("smoke-only", budget, n, Reason(why, unit))
    if n < MIN_SEEDS:
        return say("inconclusive", budget, n, Reason(_few_seeds(n), unit))
    return None


def _precheck(ci_low: float, ci_high: float, budget: str, n: int) -> str | None:
    """:func:`precheck`'s label, and the CI validated once it matters (NaN endpoints with
    n >= MIN_SEEDS raise ValueError)."""
    early = precheck(budget, n)
    if early is not None:
        return early.label
    if math.isnan(ci_low) or math.isnan(ci_high):
        raise ValueError(f"CI [{ci_low}, {ci_high}] is undefined for n={n} seeds")
    if ci_low > ci_high:
        raise ValueError(f"CI low {ci_low} exceeds high {ci_high}")
    return None


def _fmt(x: float) -> str:
    # Large values (steps to a threshold, returns) as plain numbers: "-54893", not "-5.489e+04",
    # which hides the value (the first-hour issue, item 8).
    if math.isfinite(x) and abs(x) >= 1e4:
        return f"{x:.0f}"
    return f"{x:.4g}"


def _pct(x: float) -> str:
    # A relative effect (A / B - 1) as the percentage the claims and the measured line use.
    return f"{100 * x:+.3g}%"


def _ci_text(ci_low: float, ci_high: float, confidence: float, fmt=_fmt) -> str:
    return f"{fmt_confidence(confidence)} CI [{fmt(ci_low)}, {fmt(ci_high)}]"


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def orient(
    ci_low: float, ci_high: float, claimed_effect: float, direction: Direction
) -> tuple[float, float, float]:
    """Map an effect CI and claimed effect to the favoured orientation (positive = A better).

    "higher": unchanged. "lower": ``(-ci_high, -ci_low, -claimed_effect)``, since a negative
    A - B (or A / B - 1) is an improvement when lower is better.
    """
    _check_direction(direction)
    if direction == "higher":
        return ci_low, ci_high, claimed_effect
    return -ci_high, -ci_low, -claimed_effect


def size_band(
    claimed_effect: float, tolerance: float, log_scale: bool = False
) -> tuple[float, float]:
    """The band of effects that count as the claimed size, in the claim's raw units, sorted.

    Symmetric around the claim: claimed x [1 / tolerance, 2 - 1 / tolerance] (tolerance 2:
    half to one and a half times the claim), on the log ratio log(1 + effect) for relative
    effects, so "2x higher" (+100%) and "2x lower" (-50%) get mirror-image bands ([+41%, +183%]
    and [-29%, -65%]). A band symmetric around the claim on the scale the interval is symmetric
    on does not favour estimates above the claim, as [claim / 2, claim * 2] did (issue 22).
    """
    size = math.log1p(claimed_effect) if log_scale else claimed_effect
    ends = (size / tolerance, size * (2.0 - 1.0 / tolerance))
    if log_scale:
        ends = tuple(math.expm1(x) for x in ends)
    return min(ends), max(ends)


def verdict(
    effect_ci_low: float,
    effect_ci_high: float,
    claimed_effect: float,
    *,
    budget: str,
    n: int,
    tolerance: float = DEFAULT_TOLERANCE,
    log_scale: bool = False,
) -> str:
    """Label a claimed non-zero effect of A over B given the CI of the measured effect.

    Rules, in order, with the band of :func:`size_band` (comparisons strict at 0):
      :func:`precheck` (not-run, smoke-only, fewer than MIN_SEEDS seeds);
      CI contains 0 -> "inconclusive";
      CI entirely on the other side of 0 from the claim -> "contradicted";
      otherwise (same side) CI entirely below the band -> "weaker", entirely above -> "stronger";
      CI inside the band -> "reproduced" (pinned to the claimed size);
      else (it overlaps the band without lying inside it) -> "direction-only".

    Args:
      effect_ci_low, effect_ci_high: CI of the measured effect, in the claim's units (see the
        module docstring on orientation; the label does not depend on it).
      claimed_effect: the claimed effect, non-zero (use :func:`equivalence_verdict` for 0).
      budget: budget name; "smoke" short-circuits.
      n: seeds per arm behind the CI.
      tolerance: factor > 1 that sets the band's width (:func:`size_band`).
      log_scale: a relative effect (A / B - 1), judged on log(1 + effect).

    Returns:
      One of :data:`VERDICTS`.
    """
    if not math.isfinite(claimed_effect):
        raise ValueError(f"claimed effect must be finite, got {claimed_effect}")
    if claimed_effect == 0:
        raise ValueError("a claimed effect of 0 is an equivalence claim: use equivalence_verdict")
    if not (math.isfinite(tolerance) and tolerance > 1):
        raise ValueError(f"tolerance must be a finite factor > 1, got {tolerance}")
    early = _precheck(effect_ci_low, effect_ci_high, budget, n)
    if early is not None:
        return early
    # The band and the CI on one scale; a relative CI reaches -100% at most (log -inf).
    to = (lambda x: math.log1p(x) if x > -1 else -math.inf) if log_scale else (lambda x: x)
    band = sorted(to(x) for x in size_band(claimed_effect, tolerance, log_scale))
    # Align with the claim: s * effect > 0 means "in the claimed direction".
    s = 1.0 if claimed_effect > 0 else -1.0
    low, high = sorted((s * to(effect_ci_low), s * to(effect_ci_high)))
    lower, upper = sorted((s * band[0], s * band[1]))
    if low <= 0.0 <= high:
        return "inconclusive"
    if high < 0.0:
        return "contradicted"
    if high < lower:
        return "weaker"
    if low > upper:
        return "stronger"
    if lower <= low and high <= upper:
        return "reproduced"
    return "direction-only"


def equivalence_verdict(ci_low: float, ci_high: float, margin: float, budget: str, n: int) -> str:
    """Label an equivalence claim ("parity", "one Adam equals two Adams") with margin ``margin``.

    Two one-sided tests (Schuirmann, 1987; Lakens, 2017) in interval form: pass the
    (1 - 2 alpha) CI (90% for alpha = 0.05). "reproduced" if it lies within [-margin, +margin],
    "contradicted" only if it lies entirely outside (above +margin or below -margin: a
    difference larger than the margin is shown), else "inconclusive"; :func:`precheck` first.

    Args:
      ci_low, ci_high: (1 - 2 alpha) CI of the effect (A - B or A / B - 1); the check is
        symmetric, so orientation does not matter.
      margin: largest effect still counted as "equal", > 0, in the same units.
      budget, n: as in :func:`verdict`.
    """
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"equivalence margin must be finite and > 0, got {margin}")
    early = _precheck(ci_low, ci_high, budget, n)
    if early is not None:
        return early
    if -margin <= ci_low and ci_high <= margin:
        return "reproduced"
    if ci_low > margin or ci_high < -margin:
        return "contradicted"
    return "inconclusive"


def value_verdict(
    ci_low: float,
    ci_high: float,
    claimed_value: float,
    budget: str,
    n: int,
    direction: Direction = "higher",
    margin: float | None = None,
) -> str:
    """Label a claimed absolute value of arm A's metric ("IS 7.8") as an equivalence.

    Pass the (1 - 2 alpha) CI of arm A's mean (TOST, as for parity). "reproduced" only if it
    lies within ``claimed_value +- margin``; a CI entirely below that band is "weaker" when
    higher is better and "stronger" when lower is better (and vice versa above it); anything
    else is "inconclusive": a CI wide enough to contain the value says nothing about it (issue
    22: IS [2.0, 5.0, 9.5] no longer reproduces a claimed 7.8). smoke-only / not-run / too few
    seeds as in :func:`verdict`.

    Args:
      ci_low, ci_high: (1 - 2 alpha) CI of arm A's metric.
      claimed_value: the claimed value, finite.
      budget: budget name.
      n: seeds of arm A behind the CI.
      direction: "higher" or "lower" is better for the metric.
      margin: the tolerance around the value, > 0, in the metric's units (default: 10% of it).
    """
    _check_direction(direction)
    if not math.isfinite(claimed_value):
        raise ValueError(f"claimed value must be finite, got {claimed_value}")
    margin = value_margin(claimed_value) if margin is None else margin
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"value margin must be finite and > 0, got {margin}")
    early = _precheck(ci_low, ci_high, budget, n)
    if early is not None:
        return early
    if ci_high < claimed_value - margin:
        return "weaker" if direction == "higher" else "stronger"
    if ci_low > claimed_value + margin:
        return "stronger" if direction == "higher" else "weaker"
    if claimed_value - margin <= ci_low and ci_high <= claimed_value + margin:
        return "reproduced"
    return "inconclusive"


def value_margin(claimed_value: float, tolerance: float = DEFAULT_VALUE_TOLERANCE) -> float:
    """The margin around a claimed value: ``tolerance`` (a fraction) of its magnitude."""
    return abs(claimed_value) * tolerance if claimed_value else tolerance


def direction_verdict(
    ci_low: float, ci_high: float, direction: Direction, budget: str, n: int
) -> str:
    """Label a claim that A is better than B with no size given ("Adam works better").

    The CI is of the raw effect A - B (or A / B - 1). "reproduced" if it lies entirely on the
    favoured side of 0 (above for "higher", below for "lower"), "contradicted" if entirely on the
    other side, else "inconclusive"; smoke-only / not-run / too few seeds as in :func:`verdict`.
    "weaker" and "stronger" need a claimed size, so they never occur here.
    """
    _check_direction(direction)
    early = _precheck(ci_low, ci_high, budget, n)
    if early is not None:
        return early
    low, high = (ci_low, ci_high) if direction == "higher" else (-ci_high, -ci_low)
    if low > 0.0:
        return "reproduced"
    if high < 0.0:
        return "contradicted"
    return "inconclusive"


# --------------------------------------------------------------------------------------------
# Labels with their one-sentence reason
# --------------------------------------------------------------------------------------------


def judge_effect(
    ci_low: float,
    ci_high: float,
    claimed_effect: float,
    *,
    budget: str,
    n: int,
    confidence: float = 0.95,
    tolerance: float = DEFAULT_TOLERANCE,
    percent: bool = False,
) -> Verdict:
    """:func:`verdict` plus a sentence, e.g. "inconclusive at quick budget, n=5 seeds per arm:
    95% CI [-3.1, 12] contains 0". Values are quoted in the units given (``percent``: a
    relative effect, quoted as percentages and judged on the log ratio); the CI's level is the
    ``confidence`` given."""
    early = precheck(budget, n)
    if early is not None:
        return early
    label = verdict(
        ci_low, ci_high, claimed_effect, budget=budget, n=n, tolerance=tolerance, log_scale=percent
    )
    fmt = _pct if percent else _fmt
    ci = _ci_text(ci_low, ci_high, confidence, fmt)
    claim = f"the claimed effect {fmt(claimed_effect)}"
    low, high = size_band(claimed_effect, tolerance, percent)
    band = f"the band [{fmt(low)}, {fmt(high)}] around {claim}"
    contains = min(ci_low, ci_high) <= claimed_effect <= max(ci_low, ci_high)
    reason = {
        "reproduced": f"{ci} excludes 0 and lies within {band}: pinned to the claimed size",
        "direction-only": f"direction reproduced, consistent with the claimed size but not "
        f"pinned to it: {ci} excludes 0 and "
        + ("contains the claim" if contains else "overlaps the band")
        + f" but does not lie within {band}",
        "weaker": f"{ci} excludes 0 but lies entirely below {band}",
        "stronger": f"{ci} excludes 0 and lies entirely above {band}",
        "contradicted": f"{ci} lies entirely on the opposite side of 0 from {claim}",
    }
    if label == "inconclusive":
        reason_text = f"{ci} contains 0"
        if not contains:
            # CLAIMS.md: "inconclusive" proper is a CI covering both 0 and the claimed effect;
            # one that excludes the claimed size says more, so the sentence says it.
            reason_text += (
                f" but excludes {claim}: no effect shown, and the claimed size is ruled out"
            )
    else:
        reason_text = reason[label]
    return say(label, budget, n, Reason(reason_text, "seeds per arm"))


def judge_equivalence(
    ci_low: float,
    ci_high: float,
    margin: float,
    *,
    budget: str,
    n: int,
    confidence: float = 0.90,
    percent: bool = False,
) -> Verdict:
    """:func:`equivalence_verdict` plus a one-sentence reason; ``confidence`` is the level of
    the CI given (1 - 2 alpha: 0.90 for a 5% TOST); ``percent``: a relative effect, quoted as
    percentages."""
    early = precheck(budget, n)
    if early is not None:
        return early
    label = equivalence_verdict(ci_low, ci_high, margin, budget, n)
    fmt = _pct if percent else _fmt
    ci = _ci_text(ci_low, ci_high, confidence, fmt)
    band = f"the equivalence margin +-{fmt(abs(margin)).lstrip('+')}"
    tost = f" (TOST at alpha {_fmt((1 - confidence) / 2)})"
    reason_text = {
        "reproduced": f"{ci} lies within {band}{tost}",
        "contradicted": f"{ci} lies entirely outside {band}",
        "inconclusive": f"{ci} is neither within nor entirely outside {band}",
    }[label]
    return say(label, budget, n, Reason(reason_text, "seeds per arm"))


def judge_value(
    ci_low: float,
    ci_high: float,
    claimed_value: float,
    *,
    budget: str,
    n: int,
    direction: Direction = "higher",
    confidence: float = 0.90,
    margin: float | None = None,
) -> Verdict:
    """:func:`value_verdict` plus a one-sentence reason; ``confidence`` is the level of the CI
    given (1 - 2 alpha, as for parity)."""
    early = precheck(budget, n, "seeds")
    if early is not None:
        return early
    margin = value_margin(claimed_value) if margin is None else margin
    label = value_verdict(ci_low, ci_high, claimed_value, budget, n, direction, margin)
    ci = _ci_text(ci_low, ci_high, confidence)
    band = (
        f"[{_fmt(claimed_value - margin)}, {_fmt(claimed_value + margin)}], the claimed value "
        f"{_fmt(claimed_value)} +- {_fmt(margin)} ({direction} is better)"
    )
    tost = f" (TOST at alpha {_fmt((1 - confidence) / 2)})"
    if label in ("weaker", "stronger"):
        side = "below" if ci_high < claimed_value else "above"
        reason_text = f"{ci} lies entirely {side} {band}"
    elif label == "reproduced":
        reason_text = f"{ci} lies within {band}{tost}"
    else:
        reason_text = f"{ci} is too wide to place it within or outside {band}"
    return say(label, budget, n, Reason(reason_text, "seeds"))


def judge_direction(
    ci_low: float,
    ci_high: float,
    *,
    direction: Direction,
    budget: str,
    n: int,
    confidence: float = 0.95,
) -> Verdict:
    """:func:`direction_verdict` plus a one-sentence reason."""
    early = precheck(budget, n)
    if early is not None:
        return early
    label = direction_verdict(ci_low, ci_high, direction, budget, n)
    ci = _ci_text(ci_low, ci_high, confidence)
    favoured = "above" if direction == "higher" else "below"
    reason_text = {
        "reproduced": f"{ci} lies entirely {favoured} 0 ({direction} is better)",
        "contradicted": f"{ci} lies entirely on the unfavoured side of 0 ({direction} is better)",
        "inconclusive": f"{ci} contains 0",
    }[label]
    return say(label, budget, n, Reason(reason_text, "seeds per arm"))


def _few_seeds(n: int) -> str:
    return f"{n} seed(s) cannot support a confidence interval (need at least {MIN_SEEDS})"


def fmt_confidence(confidence: float) -> str:
    """ "95%", "90%", "98.33%": the level actually used, never a fixed "95%"."""
    return f"{_fmt(100 * confidence)}%"
