"""A simulated trainer: runs whose metrics are drawn from distributions given in the task.

Simulate a design before spending GPU hours: how many seeds a claimed effect needs, what the
verdict looks like when a fifth of the runs diverge, when the baseline is censored at the step
budget. Nothing is trained; one run takes milliseconds::

    trainer: synthetic
    task:
      metrics:
        eval/score: {distribution: normal, mean: 10.0, sd: 2.0}
    arms:
      a: {model: {optimizer: adam, lr: 1.0e-3}, task: {metrics: {eval/score: {mean: 12.0}}}}
      b: {model: {optimizer: sgd, lr: 0.1}}

Distributions: ``normal`` (mean, sd), ``lognormal`` (mean, sd of the log), ``student_t`` (df,
loc, scale: heavy tails at small df) and ``constant`` (value). Per metric, optionally:
``p_failed`` (the run raises, so the runner records it failed: a crash, left out of verdicts),
``p_diverged`` (status diverged, no metrics, as a NaN loss), ``p_degenerate`` (records
``eval/degenerate`` = 1: a run the trainer marks degenerate, like a collapsed GAN) and
``censor_at`` for a ``*/steps_to_threshold`` metric (a value above it is recorded as the cap with
``*/reached_threshold`` = 0, the way the judge finds censored runs: suite/judge/runs.py).

Each metric draws from its own stream, seeded by (run seed, arm name, metric name): the same run
gives the same values, arms are independent, and adding a metric changes no other metric's draws.
Every stream draws its uniforms for failure, divergence and degeneracy before the value, whatever
the probabilities, so raising ``p_diverged`` on one arm changes which of its runs diverge and not
the values of the others (common random numbers).

The role ``model`` takes any optimizer spec: it is built over a dummy layer and stepped once, so a
spec that cannot build fails here as it would in a real trainer.

``draw`` is the sampling function the trainer and bench/verdict_calibration.py both use.

Run: ``python -m suite run configs/synthetic-demo.yaml --budget smoke``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from suite.optimizers import OptimizerSpec
from suite.result import Result
from suite.run.context import Diverged, RunContext

DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "normal": ("mean", "sd"),
    "lognormal": ("mean", "sd"),
    "student_t": ("df", "loc", "scale"),
    "constant": ("value",),
}
"""distribution -> its parameters (every one required, no other allowed)."""
PARAMETERS = ("mean", "sd", "df", "loc", "scale", "value")
DEGENERATE_METRIC = "eval/degenerate"
CENSORABLE_SUFFIX = "steps_to_threshold"  # suite/judge/runs.py is_censored
REACHED_SUFFIX = "reached_threshold"


@dataclass
class MetricSpec:
    """How one metric of a run is drawn."""

    distribution: Literal["normal", "lognormal", "student_t", "constant"]
    """normal (mean, sd), lognormal (mean, sd of the log), student_t (df, loc, scale), constant
    (value)."""
    mean: float | None = None
    """normal: the mean; lognormal: the mean of the log."""
    sd: float | None = None
    """normal: the standard deviation; lognormal: that of the log (>= 0)."""
    df: float | None = None
    """student_t: degrees of freedom (> 0; the variance is finite only above 2)."""
    loc: float | None = None
    """student_t: the centre."""
    scale: float | None = None
    """student_t: the scale (>= 0); the standard deviation is scale * sqrt(df / (df - 2))."""
    value: float | None = None
    """constant: the value every run records."""
    p_failed: float = 0.0
    """probability that the run fails (raises: the runner records it failed)."""
    p_diverged: float = 0.0
    """probability that the run diverges (status diverged, no metrics)."""
    p_degenerate: float = 0.0
    """probability that the run is marked degenerate (eval/degenerate = 1)."""
    censor_at: float | None = None
    """a steps-to-threshold budget: larger values are recorded as it, with reached_threshold 0."""

    def validate(self) -> None:
        needed = DISTRIBUTIONS[self.distribution]
        for name in PARAMETERS:
            value = getattr(self, name)
            if name in needed and value is None:
                raise ValueError(f"{self.distribution} needs {name} (give {', '.join(needed)})")
            if name not in needed and value is not None:
                raise ValueError(
                    f"{name} is not a parameter of {self.distribution} (give {', '.join(needed)})"
                )
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
        for name in ("sd", "scale"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.df is not None and self.df <= 0:
            raise ValueError(f"df must be > 0, got {self.df}")
        for name in ("p_failed", "p_diverged", "p_degenerate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.censor_at is not None and not math.isfinite(self.censor_at):
            raise ValueError(f"censor_at must be finite, got {self.censor_at}")


@dataclass
class Config:
    """Synthetic task settings (the ``task`` and ``budgets`` keys of an experiment file)."""

    metrics: dict[str, MetricSpec]
    """metric key (``split/name``) -> how it is drawn."""
    total_steps: int = 1000
    """the steps a run stands for: the x axis of its curves."""
    curve_points: int = 5
    """points per curve; each curve rises linearly to the run's drawn value."""

    def validate(self) -> None:
        if not self.metrics:
            raise ValueError("metrics is empty: give at least one metric and its distribution")
        if not 1 <= self.curve_points <= self.total_steps:
            raise ValueError("need 1 <= curve_points <= total_steps (one step per curve point)")
        recorded = set()
        for name, spec in self.metrics.items():
            if spec.censor_at is not None:
                if not name.endswith(CENSORABLE_SUFFIX):
                    raise ValueError(
                        f"metrics.{name}.censor_at: only a */{CENSORABLE_SUFFIX} metric can be "
                        "censored (the judge reads */reached_threshold beside it)"
                    )
                recorded.add(reached_metric(name))
            if spec.p_degenerate > 0:
                recorded.add(DEGENERATE_METRIC)
        clash = sorted(recorded & set(self.metrics))
        if clash:
            raise ValueError(f"metrics.{clash[0]} is recorded by the trainer: do not declare it")


def roles(config: Config) -> tuple[str, ...]:
    return ("model",)


def reached_metric(name: str) -> str:
    """``eval/steps_to_threshold`` -> ``eval/reached_threshold``."""
    return name[: -len(CENSORABLE_SUFFIX)] + REACHED_SUFFIX


# --------------------------------------------------------------------------------------------
# Sampling (pure numpy: the calibration bench draws thousands of runs with it)
# --------------------------------------------------------------------------------------------


@dataclass
class Draw:
    """One simulated run: its status and what it records."""

    status: str
    """done, diverged or failed."""
    metrics: dict[str, float]
    """the final metrics a done run records (empty unless done)."""
    drawn: dict[str, float]
    """each declared metric's value as a done run records it, whatever the status (curves)."""
    diverged_at_step: int | None = None
    why: str = ""
    """which metric's draw failed or diverged the run."""


def _name_key(name: str) -> int:
    """A stable 64-bit integer for a name (python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def metric_rng(seed: int, arm: str, metric: str) -> np.random.Generator:
    """The stream of one metric of one run: independent across arms, seeds and metrics."""
    return np.random.default_rng([int(seed), _name_key(arm), _name_key(metric)])


def sample_value(spec: MetricSpec, rng: np.random.Generator) -> float:
    """One draw of ``spec``'s distribution."""
    if spec.distribution == "normal":
        return float(rng.normal(spec.mean, spec.sd))
    if spec.distribution == "lognormal":
        return float(np.exp(rng.normal(spec.mean, spec.sd)))
    if spec.distribution == "student_t":
        return float(spec.loc + spec.scale * rng.standard_t(spec.df))
    return float(spec.value)


def expected_value(spec: MetricSpec) -> float:
    """The distribution's mean, before censoring (NaN where it has none: student_t, df <= 1)."""
    if spec.distribution == "normal":
        return float(spec.mean)
    if spec.distribution == "lognormal":
        return float(math.exp(spec.mean + spec.sd**2 / 2))
    if spec.distribution == "student_t":
        return float(spec.loc) if spec.df > 1 else float("nan")
    return float(spec.value)


def draw(config: Config, arm: str, seed: int) -> Draw:
    """The run (arm, seed) of ``config``: reproducible, and independent across arms."""
    metrics: dict[str, float] = {}
    drawn: dict[str, float] = {}
    failed, diverged, degenerate = [], [], False
    for name, spec in config.metrics.items():
        rng = metric_rng(seed, arm, name)
        u_failed, u_diverged, u_degenerate = rng.random(3)
        value = sample_value(spec, rng)
        # A diverged run stops at one of its curve points (the first at the earliest).
        diverged_point = int(rng.integers(1, config.curve_points + 1))
        if u_failed < spec.p_failed:
            failed.append(name)
        if u_diverged < spec.p_diverged:
            diverged.append((diverged_point, name))
        degenerate |= bool(u_degenerate < spec.p_degenerate)
        if spec.censor_at is not None:
            reached = value <= spec.censor_at
            metrics[reached_metric(name)] = float(reached)
            value = value if reached else float(spec.censor_at)
        metrics[name] = drawn[name] = value
    if any(spec.p_degenerate > 0 for spec in config.metrics.values()):
        metrics[DEGENERATE_METRIC] = float(degenerate)
    if failed:
        return Draw("failed", {}, drawn, why=f"simulated failure (p_failed of {failed[0]})")
    if diverged:
        point, name = min(diverged)
        step = curve_steps(config)[point - 1]
        return Draw("diverged", {}, drawn, step, f"{name} (simulated: p_diverged)")
    return Draw("done", metrics, drawn)


def curve_steps(config: Config) -> list[int]:
    """The steps of the curve points: evenly spaced, the last at ``total_steps``."""
    k = config.curve_points
    return [max(1, round(config.total_steps * (i + 1) / k)) for i in range(k)]


def curve(config: Config, final: float) -> list[tuple[int, float]]:
    """A curve rising linearly from 0 to the run's drawn value (reports need curves)."""
    steps = curve_steps(config)
    return [(step, final * (i + 1) / len(steps)) for i, step in enumerate(steps)]


# --------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------


class SimulatedFailure(RuntimeError):
    """A run drawn as failed (``p_failed``): the runner records it like any crash."""


def exercise_optimizer(spec: OptimizerSpec, seed: int) -> str:
    """Build the role's optimizer over a dummy layer and take one step, as a real trainer would
    (a linear layer, so optimizers that precondition per layer, K-FAC, have a module)."""
    import torch
    from torch import nn

    from suite.optimizers import build_role_optimizer

    torch.manual_seed(seed)
    layer = nn.Linear(2, 1)
    optimizer = build_role_optimizer("model", spec, layer.parameters(), modules=[layer])
    optimizer.zero_grad()
    layer(torch.ones(4, 2)).pow(2).mean().backward()
    optimizer.step()
    return type(optimizer.inner).__name__


def train(config: Config, specs: dict[str, OptimizerSpec], ctx: RunContext) -> Result:
    optimizer = exercise_optimizer(specs["model"], ctx.seed)
    outcome = draw(config, ctx.run.arm, ctx.seed)
    if outcome.status == "failed":
        raise SimulatedFailure(outcome.why)
    details: dict[str, Any] = {"simulated": True, "optimizer_class": optimizer}
    stop = outcome.diverged_at_step
    curves = {name: curve(config, value) for name, value in outcome.drawn.items()}
    for i, step in enumerate(curve_steps(config)):
        if stop is not None and step >= stop:
            return ctx.diverged_result(Diverged(stop, outcome.why))
        ctx.record(step, {name: points[i][1] for name, points in curves.items()})
        ctx.progress(step, config.total_steps)
    return ctx.result(outcome.metrics, details=details)
