"""The records every trainer shares: what a run is (RunSpec) and what it produced (Result).

Reports read only ``Result`` files, so every figure in a report traces back to one run with its
config, seed, package versions and hardware.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("pending", "running", "done", "diverged", "failed")
FINISHED = ("done", "diverged")


# Task settings left out of a run's identity (its run id, and which recorded results a report
# selects): switching them changes how fast the run goes, not what it computes, so a run
# resumes and is reported across them. Only settings added after results were recorded with
# the rest of the task in the hash can be listed here: dropping an older key (amp, compile)
# would change every recorded run id.
NOT_IN_IDENTITY = ("cuda_graphs",)


def task_identity(task: dict[str, Any]) -> dict[str, Any]:
    """The part of a task dict that identifies a run (``NOT_IN_IDENTITY`` left out)."""
    return {k: v for k, v in task.items() if k not in NOT_IN_IDENTITY}


def settings_identity(task: dict[str, Any], optimizers: dict[str, Any]) -> str:
    """What identifies an arm's runs but the seed: its task (``task_identity``) and optimizer
    specs, as canonical text. Everything that selects, resumes or tunes runs compares this (or
    ``RunSpec.run_id``, its hash with the seed and names): one rule for all."""
    return canonical({"task": task_identity(task), "optimizers": optimizers})


def canonical(obj: Any) -> str:
    """JSON with sorted keys and no spaces: equal settings give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: an arm of an experiment at one budget and seed."""

    experiment: str
    arm: str
    seed: int
    budget: str
    trainer: str
    task: dict[str, Any]  # the trainer's resolved Config, as a dict
    optimizers: dict[str, dict[str, Any]]  # role -> resolved OptimizerSpec, as a dict

    @property
    def run_id(self) -> str:
        """Stable id: a hash of the resolved config and seed (same config -> same run)."""
        fields = {**asdict(self), "task": task_identity(self.task)}
        return hashlib.sha256(canonical(fields).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.arm}/seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "run_id": self.run_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return cls(**{k: v for k, v in data.items() if k != "run_id"})


def _spec_fields(obj: Any) -> dict[str, Any]:
    """The RunSpec fields of ``obj`` (a RunSpec, or a Result recorded for one), by name."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(RunSpec)}


@dataclass
class Result:
    """What one run produced. Curves are lists of [step, value]; metric keys are ``split/name``.

    :param status: ``done``, ``diverged`` (NaN/inf loss or parameters, at ``diverged_at_step``)
        or ``failed`` (an exception, in ``error``). Diverged runs are results, never dropped.
    :param details: trainer-specific facts a report needs (metric settings, env settings).
    :param artifacts: files in the run directory (sample grids), relative paths.
    """

    run_id: str
    experiment: str
    arm: str
    seed: int
    budget: str
    trainer: str
    task: dict[str, Any]
    optimizers: dict[str, dict[str, Any]]
    status: str = "done"
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[list[float]]] = field(default_factory=dict)
    diverged_at_step: int | None = None
    error: str | None = None
    wall_time_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float | None = None
    device: str = "cpu"
    environment: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def core_seconds(self) -> float:
        """This run's share of a process's time: one process per run, or one per stack of
        seeds, whose wall time every seed of the stack records (details.stacked.seeds)."""
        stacked = self.details.get("stacked")
        seeds = stacked.get("seeds", 1) if isinstance(stacked, dict) else 1
        return self.wall_time_s / max(int(seeds), 1)

    def run_spec(self) -> RunSpec:
        """The RunSpec this result was recorded for (its run id recomputes from it)."""
        return RunSpec(**_spec_fields(self))

    @classmethod
    def for_run(cls, run: RunSpec, **fields: Any) -> Result:
        """A result carrying ``run``'s identity and resolved config, plus ``fields``."""
        return cls(run_id=run.run_id, **_spec_fields(run), **fields)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})
