"""Environment factory: gymnasium ids, with the registrations some families need first.

Classic control and Box2D come with gymnasium; Atari needs ``ale-py`` (``pip install
suite[atari]``) and MinAtar needs ``minatar``, whose gymnasium entry point gymnasium 1.x does not
load, so it is registered explicitly here.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from suite.errors import ConfigError


def _register(env_id: str) -> None:
    if env_id.startswith("ALE/") or "NoFrameskip" in env_id:
        try:
            import ale_py
        except ImportError:
            raise ConfigError(
                f"{env_id} needs ale-py: pip install 'suite[atari]'", key="task.env_id"
            ) from None
        gym.register_envs(ale_py)
    elif env_id.startswith("MinAtar/"):
        try:
            from minatar.gym import register_envs
        except ImportError:
            raise ConfigError(
                f"{env_id} needs minatar: pip install 'suite[atari]'", key="task.env_id"
            ) from None
        if env_id not in gym.registry:
            register_envs()


def make(env_id: str, env_kwargs: dict[str, Any]) -> gym.Env:
    _register(env_id)
    if env_id not in gym.registry:
        raise ConfigError(f"unknown environment {env_id!r}", key="task.env_id")
    return gym.make(env_id, **env_kwargs)
