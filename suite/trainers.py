"""The trainer table: trainer name -> the module that trains it, and the contract as code.

Each trainer module reads top to bottom and is a :class:`Trainer`:

- ``Config``: a dataclass of its task settings (the ``task`` and ``budgets`` keys of an
  experiment file), a docstring line under each field;
- ``roles(config) -> tuple[str, ...]``: the optimizer roles it trains with that config;
- ``train(config, specs, ctx) -> Result``: one run, given role -> OptimizerSpec and a RunContext.

What a trainer may import is listed once, in tests/test_layout.py (``TRAINER_MAY_IMPORT``).

A trainer in STACKED can also train the seeds of one arm together as one stacked model
(``suite run --stack-seeds``): its stack module is a :class:`StackTrainer`, whose
``train_stack(config, specs, contexts, method) -> list[Result]`` returns one result per seed,
each what the seed's lone run would record.

To add a trainer: write its module and add a row to TRAINERS (and to STACKED for a stack).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from suite.errors import ConfigError
from suite.optimizers import OptimizerSpec
from suite.result import Result
from suite.run.context import RunContext


class Trainer(Protocol):
    """What a trainer module provides (a module satisfies a Protocol by its attributes).
    ``Config``, ``roles`` and ``train`` are required; the methods after them are optional hooks,
    looked up with :func:`hook`."""

    Config: type

    def roles(self, config: Any) -> tuple[str, ...]: ...

    def train(self, config: Any, specs: dict[str, OptimizerSpec], ctx: RunContext) -> Result: ...

    def recorded_metrics(self, config: Any) -> tuple[str, ...]:
        """Optional: the metric keys a run with ``config`` records, so a file naming another
        is refused when it loads (suite/config.py) rather than after the runs."""
        ...


class StackTrainer(Protocol):
    """What a stack module (STACKED) provides: ``train_stack``; the rest are optional hooks,
    looked up with :func:`hook`."""

    # Optional: set where the stack is its own implementation of the lone trainer's algorithm
    # (agents/stacked.py, not stable-baselines3); results record it in details.implementation.
    IMPLEMENTATION: str

    def train_stack(
        self,
        config: Any,
        specs: dict[str, OptimizerSpec],
        contexts: list[RunContext],
        method: str,
    ) -> list[Result]: ...

    def check_stackable(self, role: str, spec: OptimizerSpec) -> None:
        """Optional: raise ValueError for a spec the stack cannot batch over seeds (default:
        suite.optimizers.check_stackable, the elementwise optimizers)."""
        ...

    def resumes_lone(self, ctx: RunContext) -> bool:
        """Optional: whether the seed of ``ctx`` holds a lone run's checkpoint that the stack
        cannot load, so it goes on lone (suite/run/worker.py)."""
        ...

    def resume_method(self, ctx: RunContext) -> str | None:
        """Optional: the stacking method a lone run must resume with, where its directory holds
        a stack's checkpoint its lone trainer cannot load."""
        ...


# The optional hooks of each Protocol: everything the run machinery looks up by name.
OPTIONAL_HOOKS: dict[type, tuple[str, ...]] = {
    Trainer: ("recorded_metrics",),
    StackTrainer: ("IMPLEMENTATION", "check_stackable", "resumes_lone", "resume_method"),
}


def hook(module: ModuleType, protocol: type, name: str) -> Any:
    """``module``'s optional hook ``name`` of ``protocol``, or None where it has none. A name
    the Protocol does not declare is a programming error, not a missing hook."""
    if name not in OPTIONAL_HOOKS[protocol]:
        raise KeyError(f"{name!r} is not an optional hook of {protocol.__name__}")
    return getattr(module, name, None)


# Written by hand; modules are imported only when an experiment uses them.
TRAINERS: dict[str, str] = {
    "dqn": "agents.dqn",
    "ppo": "agents.ppo",
    "sac": "agents.sac",
    "dcgan": "gans.dcgan",
    "vae": "vae.vae",
    "synthetic": "suite.synthetic",  # simulated metrics: try a design before training
}


# trainer -> (its stack module, the stacking methods it has; the first is the default).
# gans/stacked.py measured grouped convolutions faster than vmap for the DCGAN (bench/README.md).
STACKED: dict[str, tuple[str, tuple[str, ...]]] = {
    "dcgan": ("gans.stacked", ("grouped", "vmap")),
    "vae": ("vae.stacked", ("vmap",)),
    # The suite's own SAC/DQN over a seed dimension, not stable-baselines3 (agents/stacked.py).
    "sac": ("agents.stacked", ("bmm",)),
    "dqn": ("agents.stacked", ("bmm",)),
}


# What every trainer module provides (Trainer above).
TRAINER_API = ("Config", "roles", "train")
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def module_name(name: str) -> str:
    """The module a trainer name stands for: a table row, or ``package.module`` itself."""
    return TRAINERS.get(name, name)


def trainer_module(name: str, beside: Path | None = None) -> ModuleType:
    """The module that trains ``name``: a name from TRAINERS, or your own ``package.module``
    with the same API, checked here like the others. Your own module is imported from the
    working directory or PYTHONPATH, else from ``beside`` (the experiment file's folder)."""
    custom = isinstance(name, str) and name not in TRAINERS and bool(_MODULE_NAME.match(name))
    if not isinstance(name, str) or (name not in TRAINERS and not custom):
        raise ConfigError(
            f"unknown trainer {name!r}", key="trainer", choices=[*TRAINERS, "package.module"]
        )
    if custom and beside is not None:
        _look_beside(name, beside)
    try:
        module = importlib.import_module(module_name(name))
    except ModuleNotFoundError as error:
        raise ConfigError(f"trainer {name!r} cannot be loaded: {error}", key="trainer") from None
    if custom:
        _check_api(name, module)
    return module


def _look_beside(name: str, folder: Path) -> None:
    """Put the experiment file's folder on sys.path (at the end: the working directory and
    PYTHONPATH come first) when ``name``'s top package lies there and is not importable
    otherwise. Run processes start from a forkserver that copies sys.path when it starts."""
    top = name.split(".")[0]
    folder = folder.resolve()
    beside = (folder / top).is_dir() or (folder / f"{top}.py").is_file()
    if beside and importlib.util.find_spec(top) is None and str(folder) not in sys.path:
        sys.path.append(str(folder))


def _check_api(name: str, module: ModuleType) -> None:
    missing = [attr for attr in TRAINER_API if not hasattr(module, attr)]
    if missing:
        raise ConfigError(
            f"trainer module {name!r} lacks {', '.join(missing)} (a trainer provides Config, "
            "roles(config) and train(config, specs, ctx); see suite/trainers.py)",
            key="trainer",
        )
    if not dataclasses.is_dataclass(module.Config):
        raise ConfigError(f"{name}.Config must be a dataclass", key="trainer")
    for attr in ("roles", "train"):
        if not callable(getattr(module, attr)):
            raise ConfigError(f"{name}.{attr} must be a function", key="trainer")


def stacked_module(name: str) -> ModuleType:
    stack_method(name, "auto")  # a clear error for a trainer that cannot stack
    return importlib.import_module(STACKED[name][0])


def stack_method(name: str, method: str) -> str:
    """The stacking method ``--stack-seeds METHOD`` names for trainer ``name`` (auto: default)."""
    if name not in STACKED:
        raise ConfigError(
            f"trainer {name!r} cannot stack seeds", key="--stack-seeds", choices=list(STACKED)
        )
    methods = STACKED[name][1]
    if method == "auto":
        return methods[0]
    if method not in methods:
        raise ConfigError(
            f"trainer {name!r} does not stack with {method!r}",
            key="--stack-seeds",
            choices=["auto", *methods],
        )
    return method
