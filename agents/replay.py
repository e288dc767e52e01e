"""The replay buffers of a stack of RL seeds (agents/stacked.py): one preallocated tensor per field
with a leading seed dimension, on the run's device."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class Replay:
    """One replay buffer per seed: a preallocated tensor per field with a seed dimension.

    As SB3's ReplayBuffer (one env): circular over ``capacity`` transitions, ``done`` is the
    termination flag (a time-limit truncation is not a terminal state: SB3's
    ``handle_timeout_termination``) and ``next_obs`` the episode's last observation at its end.

    With ``frame_stacked`` (agents/envs.py's Atari observations: the last k frames, oldest
    first), ``next_obs`` holds only the newest frame of the next observation: the rest is the
    observation shifted by one frame, at an episode's end too (the final observation continues
    the stack). ``add`` checks that it is so. Per seed-transition this stores 4x84x84 + 84x84
    bytes of frames instead of SB3's 2 x 4x84x84 (``optimize_memory_usage`` off).
    """

    FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")

    def __init__(
        self,
        seeds: int,
        capacity: int,
        obs_space,
        action_shape,
        action_dtype,
        device,
        frame_stacked: bool = False,
    ):
        # Boolean / byte frames (MinAtar, Atari) are stored as bytes, as SB3 stores the space's
        # dtype: a float copy of 100k MinAtar frames per seed would take 160 MB.
        compact = np.dtype(obs_space.dtype) in (np.dtype(bool), np.dtype(np.uint8))
        obs_dtype = torch.uint8 if compact else torch.float32
        self.capacity, self.pos, self.full, self.device = capacity, 0, False, device
        self.frame_stacked = frame_stacked
        self.obs = torch.zeros((seeds, capacity, *obs_space.shape), dtype=obs_dtype, device=device)
        next_shape = obs_space.shape[1:] if frame_stacked else obs_space.shape
        self.next_obs = torch.zeros((seeds, capacity, *next_shape), dtype=obs_dtype, device=device)
        self.actions = torch.zeros(
            (seeds, capacity, *action_shape), dtype=action_dtype, device=device
        )
        self.rewards = torch.zeros((seeds, capacity), device=device)
        self.dones = torch.zeros((seeds, capacity), device=device)

    def add(self, obs, actions, rewards, next_obs, dones) -> None:
        if self.frame_stacked:
            if not np.array_equal(next_obs[:, :-1], obs[:, 1:]):
                raise ValueError("frame-stacked replay: a next observation is not the shifted one")
            next_obs = next_obs[:, -1]
        for name, value in zip(self.FIELDS, (obs, actions, rewards, next_obs, dones), strict=True):
            target = getattr(self, name)
            target[:, self.pos] = torch.as_tensor(np.asarray(value), device=self.device).to(
                target.dtype
            )
        self.pos = (self.pos + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def bytes_per_transition(self) -> int:
        """Bytes one seed's transition takes, all fields."""
        return sum(
            getattr(self, name)[0, 0].numel() * getattr(self, name).element_size()
            for name in self.FIELDS
        )

    def size(self) -> int:
        return self.capacity if self.full else self.pos

    def sample(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The transitions at ``index`` (S, B): seed s's batch from seed s's buffer."""
        rows = torch.arange(index.shape[0], device=index.device)[:, None]
        batch = [getattr(self, name)[rows, index] for name in self.FIELDS]
        if self.frame_stacked:
            batch[3] = torch.cat([batch[0][:, :, 1:], batch[3][:, :, None]], dim=2)
        batch[0], batch[3] = batch[0].float(), batch[3].float()
        return tuple(batch)

    def seed_state(self, i: int) -> dict[str, Any]:
        stored = {name: getattr(self, name)[i, : self.size()].cpu().clone() for name in self.FIELDS}
        return {**stored, "pos": self.pos, "full": self.full}

    def load(self, states: list[dict[str, Any]]) -> None:
        self.pos, self.full = states[0]["pos"], states[0]["full"]
        for name in self.FIELDS:
            target = getattr(self, name)
            for i, state in enumerate(states):
                target[i, : len(state[name])] = state[name].to(self.device)


def sample_indices(replay: Replay, batch: int, generators: list[torch.Generator]) -> torch.Tensor:
    """Each seed's batch indices from its own generator (S, B)."""
    return torch.stack(
        [
            torch.randint(0, replay.size(), (batch,), generator=g, device=replay.device)
            for g in generators
        ]
    )
