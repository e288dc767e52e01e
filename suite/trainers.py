"""The trainer table: trainer name -> the module that trains it.

Each trainer module reads top to bottom and provides:

- ``Config``: a dataclass of its task settings (the ``task`` and ``budgets`` keys of an
  experiment file), a docstring line under each field;
- ``roles(config) -> tuple[str, ...]``: the optimizer roles it trains with that config;
- ``train(config, specs, ctx) -> Result``: one run, given role -> OptimizerSpec and a RunContext.
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


def trainer_module(name: str) -> ModuleType:
    if not isinstance(name, str) or name not in TRAINERS:
        raise ConfigError(f"unknown trainer {name!r}", key="trainer", choices=list(TRAINERS))
    try:
        return importlib.import_module(TRAINERS[name])
    except ModuleNotFoundError as error:
        raise ConfigError(f"trainer {name!r} cannot be loaded: {error}", key="trainer") from None
