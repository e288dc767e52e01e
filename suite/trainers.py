"""The trainer table: trainer name -> the module that trains it.

Each trainer module reads top to bottom and provides:

- ``Config``: a dataclass of its task settings (the ``task`` and ``budgets`` keys of an
  experiment file), a docstring line under each field;
- ``roles(config) -> tuple[str, ...]``: the optimizer roles it trains with that config;
- ``train(config, specs, ctx) -> Result``: one run, given role -> OptimizerSpec and a RunContext.

A trainer in STACKED can also train the seeds of one arm together as one stacked model
(``suite run --stack-seeds``): its stack module provides ``train_stack(config, specs, contexts,
method) -> list[Result]``, one result per seed, each what the seed's lone run would record.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from suite.errors import ConfigError

# Written by hand; modules are imported only when an experiment uses them.
TRAINERS: dict[str, str] = {
    "dqn": "agents.dqn",
    "ppo": "agents.ppo",
    "sac": "agents.sac",
    "dcgan": "gans.dcgan",
    "vae": "vae.vae",
}


# trainer -> (its stack module, the stacking methods it has; the first is the default).
# gans/stacked.py measured grouped convolutions faster than vmap for the DCGAN (bench/README.md).
STACKED: dict[str, tuple[str, tuple[str, ...]]] = {
    "dcgan": ("gans.stacked", ("grouped", "vmap")),
    "vae": ("vae.stacked", ("vmap",)),
}


def trainer_module(name: str) -> ModuleType:
    if not isinstance(name, str) or name not in TRAINERS:
        raise ConfigError(f"unknown trainer {name!r}", key="trainer", choices=list(TRAINERS))
    try:
        return importlib.import_module(TRAINERS[name])
    except ModuleNotFoundError as error:
        raise ConfigError(f"trainer {name!r} cannot be loaded: {error}", key="trainer") from None


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
