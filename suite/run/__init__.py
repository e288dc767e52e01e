"""Running grids of runs.

- ``context.py``: ``RunContext`` and ``Diverged``, the only run module a trainer imports;
- ``worker.py``: what one run process does (claim, train lone or stacked, record, release);
- ``local.py`` and ``ray.py``: executors that start workers, listed in ``EXECUTORS``;
- ``device.py``: the device and its speed settings; ``stacking.py``: many seeds as one model;
- ``display.py``: the live progress display.

An executor module provides ``execute_grid(runs, store, settings, display) -> counts by
status``; add one by writing such a module and a row below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from suite.errors import ConfigError

# Written by hand; a module is imported only when a grid uses it.
EXECUTORS: dict[str, str] = {
    "local": "suite.run.local",  # worker processes on this machine
    "ray": "suite.run.ray",  # tasks on a Ray cluster (pip install 'suite[ray]')
}


@dataclass(frozen=True)
class GridSettings:
    """How a grid runs, whatever the executor."""

    device: str
    threads: int = 1  # torch threads per run
    workers: int | None = None  # runs in flight at once (None: the executor's default)
    stack: str | None = None  # a stacking method (suite/trainers.py: STACKED), local only
    address: str | None = None  # the Ray cluster, ray only
    keep_checkpoints: bool = False  # keep finished runs' checkpoints (default: dropped)


def executor(name: str) -> ModuleType:
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}", key="--executor", choices=list(EXECUTORS))
    return importlib.import_module(EXECUTORS[name])
