"""Environment factory: gymnasium ids, the registrations and wrappers some families need.

Families and what each needs:

- classic control (CartPole-v1, Acrobot-v1, MountainCar-v0, Pendulum-v1): gymnasium alone;
- Box2D (LunarLander-v3): ``pip install suite[box2d]`` (the Box2D 2.3.10 wheel);
- MuJoCo (HalfCheetah-v5, Hopper-v5): ``pip install suite[mujoco]``;
- Atari through ale-py (``ALE/Breakout-v5``, ``BreakoutNoFrameskip-v4``): ``suite[atari]``; the
  standard preprocessing below (SB3's AtariWrapper, then a stack of the last 4 frames);
- MinAtar (``MinAtar/Breakout-v1``): ``suite[atari]``; its gymnasium entry point is not loaded by
  gymnasium 1.x, so it is registered explicitly, and it has no time limit of its own, so one is
  added (MINATAR_MAX_EPISODE_STEPS unless the task sets ``max_episode_steps``). ``-v1`` ids use
  the game's minimal action set, ``-v0`` all 6 actions; ``env_kwargs`` set either
  (``use_minimal_action_set``) and the sticky-action probability (``sticky_action_prob``,
  MinAtar's default 0.1): MINATAR_KWARGS.

The Monitor that records episode statistics sits *inside* the Atari preprocessing: it sees the
game's own score over whole games (all lives), not clipped rewards over single lives, which is
what published Atari tables report and what greedy evaluation returns.

``describe(env)`` lists the settings in force (sticky actions, frame skip, time limit, wrappers),
defaults included, for each run's result.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import FrameStackObservation, ReshapeObservation, TimeLimit
from stable_baselines3.common.monitor import Monitor

from suite.errors import ConfigError

# The make kwargs MinAtar takes (MinAtar 1.0.15): minatar/gym.py BaseEnv's own
# (use_minimal_action_set, render_mode, display_time), the rest passed on to the game
# (minatar/environment.py Environment: sticky_action_prob, default 0.1; difficulty_ramping).
MINATAR_KWARGS = (
    "use_minimal_action_set",
    "sticky_action_prob",
    "difficulty_ramping",
    "render_mode",
    "display_time",
)

# MinAtar has no episode cap. 10,000 steps lies far beyond a greedy Breakout agent's episodes
# after 1M steps (a few hundred to a few thousand steps) and bounds an evaluation episode in
# which a greedy policy loops forever.
MINATAR_MAX_EPISODE_STEPS = 10_000


@dataclass
class AtariSettings:
    """The standard Atari preprocessing (Mnih et al. 2015, Methods and Extended Data Table 1;
    SB3 ``AtariWrapper``, as in the RL Zoo and CleanRL tables), applied to ALE ids only."""

    frame_skip: int = 4
    """action repeat with max-pooling over the last 2 frames ("action repeat 4"); applied by the
    wrapper only when the ALE env does not skip itself (NoFrameskip-v4, v5 with frameskip=1)."""
    noop_max: int = 30
    """up to this many no-op actions at reset ("no-op max 30")."""
    terminal_on_life_loss: bool = True
    """a life loss ends the episode for the learner; Monitor still scores whole games."""
    clip_reward: bool = True
    """rewards clipped to their sign for learning (Mnih et al. 2015, "Training details")."""
    screen_size: int = 84
    """frames are grayscaled and resized to this square size."""
    frame_stack: int = 4
    """the last this many frames form the observation ("agent history length 4")."""

    def validate(self) -> None:
        for name in ("frame_skip", "screen_size", "frame_stack"):
            if getattr(self, name) < 1:
                raise ValueError(f"atari.{name} must be >= 1")
        if self.noop_max < 0:
            raise ValueError("atari.noop_max must be >= 0")


def family(env_id: str) -> str:
    """'atari', 'minatar' or 'gym' (everything gymnasium registers itself)."""
    if env_id.startswith("ALE/") or "NoFrameskip" in env_id:
        return "atari"
    if env_id.startswith("MinAtar/"):
        return "minatar"
    return "gym"


def _register(env_id: str) -> None:
    if family(env_id) == "atari":
        try:
            import ale_py
        except ImportError:
            raise ConfigError(
                f"{env_id} needs ale-py: pip install 'suite[atari]'", key="task.env_id"
            ) from None
        gym.register_envs(ale_py)
    elif family(env_id) == "minatar":
        try:
            from minatar.gym import register_envs
        except ImportError:
            raise ConfigError(
                f"{env_id} needs minatar: pip install 'suite[atari]'", key="task.env_id"
            ) from None
        if env_id not in gym.registry:
            register_envs()


def check_env_id(env_id: str) -> None:
    """A ConfigError now, before any run, for an id gymnasium cannot make: its family's package
    missing (with the extra to install) or not registered (with the closest registered id)."""
    from suite.errors import did_you_mean

    _register(env_id)
    if env_id in gym.registry:
        _check_extra(env_id, str(gym.registry[env_id].entry_point))
        return
    guess = did_you_mean(env_id, list(gym.registry))
    hint = f"; did you mean {guess!r}?" if guess else " (see gymnasium.pprint_registry())"
    raise ConfigError(f"unknown environment {env_id!r}{hint}", key="task.env_id")


# gymnasium registers the Box2D and MuJoCo ids itself; only make() finds the package missing.
EXTRAS = {"box2d": ("Box2D", "box2d"), "mujoco": ("mujoco", "mujoco")}


def _check_extra(env_id: str, entry_point: str) -> None:
    for marker, (module, extra) in EXTRAS.items():
        if f"envs.{marker}" in entry_point and importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"{env_id} needs {module}: pip install 'suite[{extra}]'", key="task.env_id"
            )


# Which features extractor fits which observations: the Nature CNN takes preprocessed Atari
# frames (84x84, stacked), the MinAtar CNN MinAtar's 10x10xC frames (agents/networks.py).
NETWORK_FAMILIES = {"nature_cnn": "atari", "minatar_cnn": "minatar", "dopamine_minatar": "minatar"}


def check_network(env_id: str, network: str) -> None:
    """A ConfigError now for a CNN on an environment whose observations it cannot take."""
    needed = NETWORK_FAMILIES.get(network)
    if needed is not None and family(env_id) != needed:
        ids = {"atari": "ALE/... or ...NoFrameskip-v4", "minatar": "MinAtar/..."}[needed]
        raise ConfigError(
            f"network {network!r} takes {needed} frames ({ids}), not {env_id!r}",
            key="task.network",
            choices=["mlp", *(n for n, f in NETWORK_FAMILIES.items() if f == family(env_id))],
        )


def check_env_kwargs(env_id: str, env_kwargs: dict[str, Any] | None) -> None:
    """A ConfigError now for a MinAtar make kwarg the game does not take (MinAtar would raise a
    TypeError when the run starts); other families' kwargs are checked by their ``make``."""
    if family(env_id) != "minatar":
        return
    for key in env_kwargs or {}:
        if key not in MINATAR_KWARGS:
            raise ConfigError(
                f"MinAtar takes no env_kwargs {key!r}",
                key=f"task.env_kwargs.{key}",
                choices=list(MINATAR_KWARGS),
            )


def check_trains(total_timesteps: int, learning_starts: int, train_freq: int) -> None:
    """A ConfigError for a budget at which an off-policy learner never steps its optimizers.

    stable-baselines3 trains after a rollout of ``train_freq`` steps once ``num_timesteps >
    learning_starts`` (OffPolicyAlgorithm.learn), so the first update comes at the first
    multiple of ``train_freq`` past ``learning_starts``; a shorter budget leaves every arm at
    its initial weights and the arms identical.
    """
    first = (learning_starts // train_freq + 1) * train_freq
    if total_timesteps < first:
        raise ConfigError(
            f"no optimizer step at this budget: total_timesteps {total_timesteps} ends before "
            f"the first update at step {first} (learning_starts {learning_starts}, train_freq "
            f"{train_freq}); lower learning_starts or raise total_timesteps",
            key="task.learning_starts",
        )


def make(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    max_episode_steps: int | None = None,
    atari: AtariSettings | None = None,
) -> gym.Env:
    """One environment with its Monitor and the family's wrappers (not seeded).

    :param env_kwargs: passed to ``gym.make`` (``repeat_action_probability``, ``frameskip``, ...).
    :param max_episode_steps: overrides the registered time limit (for ALE ids: agent steps
        after frame skipping); MinAtar gets MINATAR_MAX_EPISODE_STEPS when this is None.
    :param atari: the preprocessing for ALE ids (defaults: AtariSettings()).
    """
    _register(env_id)
    if env_id not in gym.registry:
        raise ConfigError(f"unknown environment {env_id!r}", key="task.env_id")
    kind = family(env_id)
    if kind == "gym":
        return Monitor(gym.make(env_id, max_episode_steps=max_episode_steps, **(env_kwargs or {})))
    if kind == "minatar":
        check_env_kwargs(env_id, env_kwargs)
        env = gym.make(env_id, **(env_kwargs or {}))
        return Monitor(TimeLimit(env, max_episode_steps or MINATAR_MAX_EPISODE_STEPS))
    return _atari(env_id, env_kwargs or {}, max_episode_steps, atari or AtariSettings())


def _atari(
    env_id: str, env_kwargs: dict[str, Any], max_episode_steps: int | None, atari: AtariSettings
) -> gym.Env:
    from stable_baselines3.common.atari_wrappers import AtariWrapper

    env = gym.make(env_id, **env_kwargs)
    # ALE/*-v5 skips 4 frames itself (and sticks actions with p=0.25, Machado et al. 2018);
    # skipping again in the wrapper would make it 16.
    own_skip = env.unwrapped.spec.kwargs.get("frameskip", 1)
    env = Monitor(env)
    env = AtariWrapper(
        env,
        noop_max=atari.noop_max,
        frame_skip=atari.frame_skip if own_skip == 1 else 1,
        screen_size=atari.screen_size,
        terminal_on_life_loss=atari.terminal_on_life_loss,
        clip_reward=atari.clip_reward,
    )
    if max_episode_steps is not None:
        env = TimeLimit(env, max_episode_steps)
    # (84, 84, 1) -> (84, 84) -> (4, 84, 84): channels first, which SB3's CNNs take as is.
    env = ReshapeObservation(env, (atari.screen_size, atari.screen_size))
    return FrameStackObservation(env, atari.frame_stack)


def describe(env: gym.Env, atari: AtariSettings | None = None) -> dict[str, Any]:
    """The settings in force, defaults included: make kwargs (sticky actions, frame skip), time
    limit, wrappers (outermost first), observation shape, the Atari preprocessing, and MinAtar's
    sticky-action probability and action set."""
    spec = env.unwrapped.spec
    wrappers, limit, node = [], None, env
    while isinstance(node, gym.Wrapper):
        wrappers.append(type(node).__name__)
        if isinstance(node, TimeLimit) and limit is None:
            limit = node._max_episode_steps
        node = node.env
    info: dict[str, Any] = {
        "env_id": spec.id if spec else None,
        "make_kwargs": {k: v for k, v in (spec.kwargs if spec else {}).items() if _plain(v)},
        "max_episode_steps": limit,
        "wrappers": wrappers,
        "observation_shape": list(env.observation_space.shape or ()),
    }
    if spec is not None and family(spec.id) == "atari":
        info["atari"] = asdict(atari or AtariSettings())
    if spec is not None and family(spec.id) == "minatar":
        # In force whether or not env_kwargs set them (minatar/gym.py BaseEnv).
        game = env.unwrapped
        info["minatar"] = {
            "sticky_action_prob": float(game.game.sticky_action_prob),
            "action_set": [int(a) for a in game.action_set],
        }
    return info


def _plain(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool, type(None)))
