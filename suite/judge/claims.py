"""Documented claims: the schema of an experiment's ``claims`` entries.

A claim ("Rainbow DQN, Breakout: Adam 22% higher than RMSprop") becomes a :class:`Claim` when the
experiment file is loaded (``suite.schema.from_dict`` checks every key and type); it is judged
by :mod:`suite.judge.evaluate`.

The claimed effect is written in raw units, in the direction the claim states: ``relative`` is
mean(A) / mean(B) - 1 (+0.22 = "22% higher"; -0.15 = "15% lower"), ``absolute`` is
mean(A) - mean(B). Arm A is the claimed winner, so the sign must agree with ``direction``:
positive for "higher is better", negative for "lower" (checked at load time). A relative claim
needs a positive metric and a value claim a ``scale`` (load-time errors otherwise).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from suite.judge.metrics import metric_info

__all__ = ["Claim", "ClaimedEffect", "Reference", "planned_looks", "validate_claims"]

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
    scale: str = ""
    """the scale the claimed ``value`` and an ``absolute`` effect are on (e.g. "tf-inception"); a
    value claim needs it; both are judged only when the metric is on the same scale
    (suite/judge/metrics.py)"""
    metric_sign: Literal["positive", "signed"] | None = None
    """"positive" or "signed": overrides the metric's declared sign for this task (a relative
    claim on a signed metric is refused unless this says "positive")"""
    tolerance: float = 2.0
    """a factor > 1: "reproduced" needs the CI inside claimed x [1 / tolerance, 2 - 1 / tolerance]
    (on the log ratio for relative effects; suite.judge.verdicts.size_band)"""
    value_tolerance: float | None = None
    """how far, as a fraction of ``value``, arm A's CI may reach and still reproduce it (None:
    the metric's default, else 10%)"""
    references: list[Reference] = field(default_factory=list)
    """published full-budget reference values"""
    settings: Literal["supported", "partly-supported", "unsupported"] | None = None
    """a claim that states a documented setting and compares nothing ("DQN: RMSprop(lr 2.5e-4,
    alpha 0.95), as in the original paper"): its verdict is this fact check of ``fact_check``,
    shown beside what arm A measured; it has no baseline or effect, and a ``value`` only for a
    published score at the same task and budget, on the metric's ``scale``"""

    def validate(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"claim id {self.id!r}: use lower case letters, digits, '-', '_'")
        if not self.statement.strip():
            raise ValueError(f"claim {self.id}: the statement is empty")
        if self.effect is not None and self.baseline is None:
            raise ValueError(f"claim {self.id}: an effect needs a baseline arm")
        if self.baseline is not None and self.baseline == self.arm:
            raise ValueError(f"claim {self.id}: arm and baseline are both {self.arm!r}")
        if self.settings is not None:
            if self.baseline is not None or self.effect is not None:
                raise ValueError(
                    f"claim {self.id}: a settings claim compares nothing: remove baseline and "
                    "effect (or remove settings to judge a comparison)"
                )
            if not self.fact_check.strip():
                raise ValueError(f"claim {self.id}: a settings claim needs its fact_check")
        elif self.baseline is None and self.value is None:
            raise ValueError(
                f"claim {self.id}: nothing to measure: give a baseline (with or without an "
                "effect) or a value"
            )
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"claim {self.id}: value must be finite")
        if not (math.isfinite(self.tolerance) and self.tolerance > 1):
            raise ValueError(
                f"claim {self.id}: tolerance must be a factor > 1, got {self.tolerance}"
            )
        if self.value_tolerance is not None and not (
            math.isfinite(self.value_tolerance) and self.value_tolerance > 0
        ):
            raise ValueError(
                f"claim {self.id}: value_tolerance must be a fraction > 0, got "
                f"{self.value_tolerance}"
            )
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

    def sign(self) -> str | None:
        """The metric's sign for this claim: ``metric_sign``, else the metric's declaration."""
        return self.metric_sign or metric_info(self.metric).sign

    def to_dict(self) -> dict[str, Any]:
        """The claim as written in the file, without the keys left at their defaults."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None or value == "" or value == [] or (name == "tolerance" and value == 2):
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
    from suite.errors import ConfigError
    from suite.schema import from_dict

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
        _check_judgeable(claim, key)
        if metrics and claim.metric not in metrics:
            raise ConfigError(
                f"metric {claim.metric!r} is not among the experiment's metrics",
                key=f"{key}.metric",
                choices=list(metrics),
            )
        claims.append(claim)
    return claims


def _check_judgeable(claim: Claim, key: str) -> None:
    """Claims that cannot be judged as written: a value without a scale, a relative effect on a
    metric that can be <= 0 (ConfigError naming the key)."""
    from suite.errors import ConfigError

    if claim.value is not None and not claim.scale:
        raise ConfigError(
            f"a value claim needs the scale {claim.value:g} is on (e.g. tf-inception), to compare "
            f"with the metric's (suite/judge/metrics.py)",
            key=f"{key}.scale",
        )
    effect = claim.effect
    if effect is not None and effect.is_relative and claim.sign() == "signed":
        name = "relative" if effect.kind == "relative" else "equivalence_margin"
        raise ConfigError(
            f"a relative effect needs a positive metric, and {claim.metric} can be <= 0: give "
            "metric_sign: positive if it is positive for this task, or an absolute effect",
            key=f"{key}.effect.{name}",
        )


# --------------------------------------------------------------------------------------------
# The outcome of one claim at one budget
# --------------------------------------------------------------------------------------------


def planned_looks(first: int, max_seeds: int) -> int:
    """Looks of ``run --until-decided``: the first batch of ``first`` seeds, then batches of
    ``first`` more until ``max_seeds`` (the last one possibly smaller)."""
    if first < 1 or max_seeds < first:
        raise ValueError(f"need 1 <= first seeds <= max_seeds, got {first}, {max_seeds}")
    return 1 + math.ceil((max_seeds - first) / first)
