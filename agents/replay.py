"""The replay buffers of a stack of RL seeds (agents/stacked.py): one preallocated tensor per field
with a leading seed dimension, on the run's device.

Stacked Atari observations (the last k frames) are stored frame by frame (``FrameRing``): each
frame once, and per transition the positions of its k + 1 frames, as Dopamine's circular replay
(Castro et al. 2018, ``circular_replay_buffer.py``) and SB3's ``optimize_memory_usage`` store one
frame per step, here with the episode's final observation kept (a truncated episode's next
observation is needed for its target, which SB3's memory-saving buffer drops).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

# Frames the ring holds beyond one per transition, as a fraction of the capacity: an episode
# stores one frame more than its steps (its reset frame), so episodes of 16 steps or more on
# average over the buffer's window fit without growing the ring (an Atari life is longer).
RING_RESERVE_FRACTION = 16

# The tag of FrameRing's checkpoint layout (Replay.seed_state); a state without it is the
# earlier layout (obs, next_obs fields), converted on load.
FRAME_FORMAT = "frame-ring-1"


class Replay:
    """One replay buffer per seed: a preallocated tensor per field with a seed dimension.

    As SB3's ReplayBuffer (one env): circular over ``capacity`` transitions, ``done`` is the
    termination flag (a time-limit truncation is not a terminal state: SB3's
    ``handle_timeout_termination``) and ``next_obs`` the episode's last observation at its end.

    With ``frame_stacked`` (agents/envs.py's Atari observations: the last k frames, oldest
    first), ``next_obs`` must be ``obs`` shifted by one frame, at an episode's end too (the
    final observation continues the stack); ``add`` checks that it is so. The frames then go to
    a ``FrameRing``: about one frame per transition instead of SB3's 2 x k, 7,534 bytes per
    seed-transition for 4 x 84 x 84 frames at a capacity of 100k where whole observations and
    the next one's newest frame took 35,296 (``sample`` returns the same tensors). Its frame tensor can grow (a new tensor, ``storage_version`` + 1) when
    episodes are shorter than the ring's reserve assumes: a CUDA graph that captured
    ``sample`` must then be captured again.
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
        self.ring = None
        if frame_stacked:
            self.ring = FrameRing(seeds, capacity, obs_space.shape, obs_dtype, device)
        else:
            shape = (seeds, capacity, *obs_space.shape)
            self.obs = torch.zeros(shape, dtype=obs_dtype, device=device)
            self.next_obs = torch.zeros(shape, dtype=obs_dtype, device=device)
        self.actions = torch.zeros(
            (seeds, capacity, *action_shape), dtype=action_dtype, device=device
        )
        self.rewards = torch.zeros((seeds, capacity), device=device)
        self.dones = torch.zeros((seeds, capacity), device=device)

    @property
    def storage_version(self) -> int:
        """Bumped whenever a tensor ``sample`` reads is replaced by a new one (FrameRing)."""
        return self.ring.version if self.ring is not None else 0

    def _fields(self) -> tuple[str, ...]:
        """The per-transition tensors held here (the frames are the ring's)."""
        return ("actions", "rewards", "dones") if self.ring is not None else self.FIELDS

    def add(self, obs, actions, rewards, next_obs, dones) -> None:
        values = dict(zip(self.FIELDS, (obs, actions, rewards, next_obs, dones), strict=True))
        if self.ring is not None:
            obs, next_obs = np.asarray(obs), np.asarray(next_obs)
            if not np.array_equal(next_obs[:, :-1], obs[:, 1:]):
                raise ValueError("frame-stacked replay: a next observation is not the shifted one")
            filled = self.full or self.pos == self.capacity - 1
            oldest = (self.pos + 1) % self.capacity if filled else 0
            self.ring.add(self.pos, oldest, obs, next_obs)
        for name in self._fields():
            target = getattr(self, name)
            target[:, self.pos] = torch.as_tensor(np.asarray(values[name]), device=self.device).to(
                target.dtype
            )
        self.pos = (self.pos + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def bytes_per_transition(self) -> int:
        """Bytes one seed's transition takes, all fields (with a FrameRing: its frames and
        reserve spread over the capacity, rounded up)."""
        tensors = [getattr(self, name) for name in self._fields()]
        if self.ring is not None:
            tensors += [self.ring.frames, self.ring.index]
        per_seed = sum(t[0].numel() * t.element_size() for t in tensors)
        return math.ceil(per_seed / self.capacity)

    def size(self) -> int:
        return self.capacity if self.full else self.pos

    def sample(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The transitions at ``index`` (S, B): seed s's batch from seed s's buffer. Tensor
        indexing alone (no host read), so that a CUDA graph can capture it."""
        rows = torch.arange(index.shape[0], device=index.device)[:, None]
        if self.ring is not None:
            obs, next_obs = self.ring.sample(rows, index)
        else:
            obs, next_obs = self.obs[rows, index], self.next_obs[rows, index]
        actions, rewards, dones = (self.actions, self.rewards, self.dones)
        return (
            obs.float(),
            actions[rows, index],
            rewards[rows, index],
            next_obs.float(),
            dones[rows, index],
        )

    def seed_state(self, i: int) -> dict[str, Any]:
        stored = {
            name: getattr(self, name)[i, : self.size()].cpu().clone() for name in self._fields()
        }
        if self.ring is not None:
            oldest = self.pos if self.full else 0
            stored.update(self.ring.seed_state(i, oldest, self.size()))
        return {**stored, "pos": self.pos, "full": self.full}

    def load(self, states: list[dict[str, Any]]) -> None:
        if self.ring is not None:
            states = [as_frame_ring_state(s) for s in states]
        elif any("format" in s for s in states):
            raise ValueError(
                f"replay checkpoint in the frame-stacked layout ({FRAME_FORMAT}) loaded into a "
                "replay without frame stacking"
            )
        self.pos, self.full = states[0]["pos"], states[0]["full"]
        for name in self._fields():
            target = getattr(self, name)
            for i, state in enumerate(states):
                target[i, : len(state[name])] = state[name].to(self.device)
        if self.ring is not None:
            self.ring.load(states, (self.pos - 1) % self.capacity)


class FrameRing:
    """Stacked observations (k frames, oldest first) of S seeds' transitions, each frame once.

    Per seed: a ring of single frames, written in order (``written`` counts them: frame c lies
    at position c mod ``slots``), and per transition slot the positions of its k + 1 frames:
    its observation is frames ``index[..., :k]``, its next observation ``index[..., 1:]``.

    Adding a transition writes the next observation's newest frame. Its observation's frames
    are those of the previous transition's next observation when it equals it (the episode goes
    on), else they are written too: at an episode's start, after a termination or a truncation
    (the next observation was the episode's final one; this one is a reset's), where
    gymnasium's FrameStackObservation pads the reset frame k times ("reset" padding), so that a
    frame equal to the one before it is shared and a reset costs one frame.

    A frame may be overwritten once no transition in the buffer uses it: the live frames are
    those from the oldest transition's first frame on (each transition's frames come after its
    predecessor's first). The ring holds the capacity plus a reserve (RING_RESERVE_FRACTION)
    and grows when the live frames would not fit, so any sequence of adds is stored exactly.
    """

    def __init__(self, seeds: int, capacity: int, stack_shape, dtype, device):
        self.k, self.capacity, self.device = stack_shape[0], capacity, device
        self.slots = capacity + capacity // RING_RESERVE_FRACTION + self.k + 1
        self.frames = torch.zeros((seeds, self.slots, *stack_shape[1:]), dtype=dtype, device=device)
        self.index = torch.zeros((seeds, capacity, self.k + 1), dtype=torch.int32, device=device)
        self.version = 0
        # Host-side bookkeeping (no device reads in ``add``): frames written per seed, the
        # first frame of each slot's transition, the newest transition's frames and next obs.
        self.written = np.zeros(seeds, dtype=np.int64)
        self.first = np.zeros((seeds, capacity), dtype=np.int64)
        self.last_ids = np.zeros((seeds, self.k + 1), dtype=np.int64)
        self.last_next: np.ndarray | None = None

    def add(self, pos: int, oldest: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """Store the frames of the transition at slot ``pos``; ``oldest`` is the slot of the
        oldest transition once it is added."""
        seeds = len(obs)
        ids = np.empty((seeds, self.k + 1), dtype=np.int64)
        goes_on = np.zeros(seeds, dtype=bool)
        if self.last_next is not None:
            goes_on = (obs.reshape(seeds, -1) == self.last_next.reshape(seeds, -1)).all(1)
        ids[goes_on, : self.k] = self.last_ids[goes_on, 1:]
        written = self.written.copy()
        owners, counters, new = [], [], []
        for s in np.flatnonzero(~goes_on):
            ids[s, : self.k], frames = stack_ids(obs[s], written[s])
            owners += [s] * len(frames)
            counters += range(written[s], written[s] + len(frames))
            new += frames
            written[s] += len(frames)
        ids[:, self.k] = written  # the next observation's newest frame: always a new one
        owners += range(seeds)
        counters += list(written)
        new += list(next_obs[:, -1])
        written += 1
        self.first[:, pos] = ids.min(1)
        needed = int((written - self.first[:, oldest]).max())
        if needed > self.slots:
            self.grow(needed, self.first[:, oldest])
        where = (
            torch.as_tensor(owners, device=self.device),
            torch.as_tensor(np.asarray(counters) % self.slots, device=self.device),
        )
        self.frames[where] = torch.as_tensor(np.stack(new)).to(self.device, self.frames.dtype)
        self.index[:, pos] = torch.as_tensor(ids % self.slots, dtype=torch.int32).to(self.device)
        self.written, self.last_ids, self.last_next = written, ids, next_obs.copy()

    def grow(self, needed: int, live_from: np.ndarray) -> None:
        """A larger ring holding the live frames (from ``live_from`` per seed on): the reserve
        doubled at least, so that a stream of short episodes grows it a few times only."""
        slots = max(needed, self.slots + (self.slots - self.capacity))
        frames = torch.zeros(
            (len(self.frames), slots, *self.frames.shape[2:]),
            dtype=self.frames.dtype,
            device=self.device,
        )
        for s, start in enumerate(live_from):
            counters = torch.arange(int(start), int(self.written[s]), device=self.device)
            frames[s, counters % slots] = self.frames[s, counters % self.slots]
        start = torch.as_tensor(live_from, device=self.device)[:, None, None]
        counters = start + (self.index.long() - start) % self.slots
        self.index = (counters % slots).to(torch.int32)
        self.frames, self.slots, self.version = frames, slots, self.version + 1

    def sample(self, rows: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The observations and next observations at ``index`` (S, B), as stored (bytes)."""
        frames = self.frames[rows[:, :, None], self.index[rows, index]]  # (S, B, k + 1, ...)
        return frames[:, :, :-1], frames[:, :, 1:]

    def seed_state(self, i: int, oldest: int, size: int) -> dict[str, Any]:
        """Seed i's live frames, oldest first, and each slot's frames counted from there."""
        start = int(self.first[i, oldest]) if size else int(self.written[i])
        counters = torch.arange(start, int(self.written[i]), device=self.device) % self.slots
        relative = (self.index[i, :size].long() - start) % self.slots
        return {
            "format": FRAME_FORMAT,
            "frames": self.frames[i, counters].cpu().clone(),
            "frame_index": relative.to(torch.int32).cpu(),
        }

    def load(self, states: list[dict[str, Any]], newest: int) -> None:
        """The seeds' states (``as_frame_ring_state``, one size), each ring from position 0."""
        needed = max(len(s["frames"]) for s in states)
        if needed > self.slots:
            self.slots = needed + (self.slots - self.capacity)
            shape = (len(self.frames), self.slots, *self.frames.shape[2:])
            self.frames = torch.zeros(shape, dtype=self.frames.dtype, device=self.device)
            self.version += 1
        size = len(states[0]["frame_index"])
        self.last_next = None
        if size:
            shape = (len(states), self.k, *self.frames.shape[2:])
            self.last_next = np.zeros(shape, dtype=states[0]["frames"].numpy().dtype)
        for i, state in enumerate(states):
            frames, index = state["frames"], state["frame_index"].long()
            self.frames[i, : len(frames)] = frames.to(self.device, self.frames.dtype)
            self.index[i, :size] = index.to(self.device, torch.int32)
            self.written[i] = len(frames)
            if size:
                self.first[i, :size] = index.min(1).values.numpy()
                self.last_ids[i] = index[newest].numpy()
                self.last_next[i] = frames[index[newest, 1:]].numpy()


def stack_ids(stack: np.ndarray, start: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A stack's frames numbered from ``start`` on, one equal to the frame before it sharing
    its number (FrameStackObservation's reset padding repeats the reset frame); the frames to
    write."""
    ids, frames = [], []
    for i, frame in enumerate(stack):
        if i and np.array_equal(frame, stack[i - 1]):
            ids.append(ids[-1])
        else:
            ids.append(start + len(frames))
            frames.append(frame)
    return np.asarray(ids), frames


def as_frame_ring_state(state: dict[str, Any]) -> dict[str, Any]:
    """A seed's frame-stacked replay state in FrameRing's layout: as is, or converted from the
    earlier layout (``obs`` stacks and the next observations' newest frames, commits 278f7f4 to
    789a438), the transitions taken in the order they were added."""
    if state.get("format") == FRAME_FORMAT:
        return state
    if "format" in state or "obs" not in state:
        raise ValueError(
            f"replay checkpoint layout {state.get('format', 'unknown')!r}: this replay reads "
            f"{FRAME_FORMAT!r} or the earlier one (fields obs, actions, rewards, next_obs, dones)"
        )
    obs, next_obs = state["obs"].numpy(), state["next_obs"].numpy()
    size, k = len(obs), obs.shape[1]
    order = [*range(state["pos"], size), *range(state["pos"])] if state["full"] else range(size)
    index = np.zeros((size, k + 1), dtype=np.int64)
    frames: list[np.ndarray] = []
    previous = None
    for slot in order:
        if previous is not None and np.array_equal(obs[slot], previous[1]):
            index[slot, :k] = previous[0][1:]
        else:
            index[slot, :k], new = stack_ids(obs[slot], len(frames))
            frames += new
        index[slot, k] = len(frames)
        frames.append(next_obs[slot])
        previous = (index[slot], np.concatenate([obs[slot][1:], next_obs[slot][None]]))
    rest = {name: state[name] for name in ("actions", "rewards", "dones", "pos", "full")}
    shape = (0, *obs.shape[2:])
    stored = torch.as_tensor(np.stack(frames)) if frames else torch.zeros(shape, dtype=torch.uint8)
    return {**rest, "format": FRAME_FORMAT, "frames": stored, "frame_index": torch.as_tensor(index)}


def sample_indices(replay: Replay, batch: int, generators: list[torch.Generator]) -> torch.Tensor:
    """Each seed's batch indices from its own generator (S, B)."""
    return torch.stack(
        [
            torch.randint(0, replay.size(), (batch,), generator=g, device=replay.device)
            for g in generators
        ]
    )
