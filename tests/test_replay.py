"""The stacked seeds' replay (agents/replay.py): Atari frame stacks stored frame by frame sample
exactly as the earlier layout (whole observations, ``ReferenceReplay`` below) did, over episode
starts, terminations, truncations, the buffer's wrap, seeds whose episodes end at different
steps, the ring's growth and checkpoints (its own and the earlier layout's); replays without
frame stacking keep their layout."""

from __future__ import annotations

import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import FrameStackObservation

from agents.replay import FRAME_FORMAT, Replay

pytestmark = pytest.mark.usefixtures("one_thread")

FRAME = (6, 6)
STACK = 4


class ReferenceReplay:
    """agents/replay.py's Replay as it was before the frame ring (commit 789a438), verbatim but
    for its name and docstring: whole observation stacks, the next one's newest frame."""

    FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")

    def __init__(
        self, seeds, capacity, obs_space, action_shape, action_dtype, device, frame_stacked=False
    ):
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

    def size(self) -> int:
        return self.capacity if self.full else self.pos

    def sample(self, index):
        rows = torch.arange(index.shape[0], device=index.device)[:, None]
        batch = [getattr(self, name)[rows, index] for name in self.FIELDS]
        if self.frame_stacked:
            batch[3] = torch.cat([batch[0][:, :, 1:], batch[3][:, :, None]], dim=2)
        batch[0], batch[3] = batch[0].float(), batch[3].float()
        return tuple(batch)

    def seed_state(self, i):
        stored = {name: getattr(self, name)[i, : self.size()].cpu().clone() for name in self.FIELDS}
        return {**stored, "pos": self.pos, "full": self.full}


# --- a fake Atari: single frames stacked by gymnasium's own wrapper -------------------------


class FrameEnv(gym.Env):
    """Random single frames; episodes of ``lengths`` steps (drawn), each ending in a
    termination or a truncation (drawn). ``palette`` > 0 draws frames from that many fixed ones,
    so that frames repeat (a reset stack may equal the previous final one, a frame the one
    before it)."""

    observation_space = gym.spaces.Box(0, 255, FRAME, dtype=np.uint8)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, seed: int, lengths: tuple[int, int], palette: int = 0):
        self.rng, self.lengths = np.random.default_rng(seed), lengths
        self.palette = np.random.default_rng(seed + 1000).integers(0, 256, (palette, *FRAME))

    def frame(self) -> np.ndarray:
        if len(self.palette):
            return self.palette[self.rng.integers(len(self.palette))].astype(np.uint8)
        return self.rng.integers(0, 256, FRAME, dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        self.t, self.length = 0, int(self.rng.integers(*self.lengths, endpoint=True))
        return self.frame(), {}

    def step(self, action):
        self.t += 1
        ended = self.t >= self.length
        terminated = ended and bool(self.rng.integers(2))
        return self.frame(), float(action), terminated, ended and not terminated, {}


def stream(steps: int, lengths: list[tuple[int, int]], palette: int = 0, seed: int = 0):
    """The adds agents/stacked.py makes (train_group): one vector env over the seeds that
    resets an ended episode in the same step, ``next_obs`` the final observation at an
    episode's end, ``dones`` the terminations."""
    factories = [
        lambda i=i, span=span: FrameStackObservation(FrameEnv(seed + i, span, palette), STACK)
        for i, span in enumerate(lengths)
    ]
    yield from vector_stream(
        SyncVectorEnv(factories, autoreset_mode=AutoresetMode.SAME_STEP), steps
    )


def vector_stream(envs, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    for _ in range(steps):
        actions = rng.integers(0, envs.single_action_space.n, envs.num_envs)
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        real_next = next_obs.copy()
        for i in np.nonzero(infos.get("_final_obs", np.zeros(envs.num_envs, bool)))[0]:
            real_next[i] = infos["final_obs"][i]
        yield obs, actions, rewards, real_next, terminated, truncated
        obs = next_obs


def make_pair(seeds: int, capacity: int, shape=(STACK, *FRAME), dtype=np.uint8, stacked=True):
    space = gym.spaces.Box(0, 1 if dtype is bool else 255, shape, dtype=dtype)
    args = (seeds, capacity, space, (), torch.long, "cpu")
    return Replay(*args, frame_stacked=stacked), ReferenceReplay(*args, frame_stacked=stacked)


def assert_same_samples(replay, reference, rng) -> None:
    """Every stored transition of every seed, then a random batch, sampled from both."""
    assert replay.size() == reference.size()
    seeds, size = reference.obs.shape[0], reference.size()
    everything = torch.arange(size).repeat(seeds, 1)
    batch = torch.as_tensor(rng.integers(0, size, (seeds, 32)))
    for index in (everything, batch, everything.flip(1)):
        for got, want in zip(replay.sample(index), reference.sample(index), strict=True):
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.is_contiguous()
            assert torch.equal(got, want)


def drive(replays, reference, adds, rng, check_every: int = 1) -> dict:
    """Feed the same adds to the replays and the reference, checking samples as it goes; what
    the stream held (so that a test can say it covered it)."""
    seen = {"terminations": 0, "truncations": 0, "wraps": 0, "checked_after_wrap": 0, "ends": 0}
    for step, (obs, actions, rewards, next_obs, terminated, truncated) in enumerate(adds, 1):
        for replay in [*replays, reference]:
            replay.add(obs, actions, rewards, next_obs, terminated)
        seen["terminations"] += int(np.sum(terminated))
        seen["truncations"] += int(np.sum(truncated))
        seen["ends"] = seen["ends"] + np.logical_or(terminated, truncated)
        seen["wraps"] += reference.pos == 0
        if step % check_every == 0 or reference.pos in (0, 1):
            seen["checked_after_wrap"] += reference.full and reference.pos in (0, 1)
            for replay in replays:
                assert_same_samples(replay, reference, rng)
    return seen


# --- samples as the earlier layout's ---------------------------------------------------------


def test_episodes_of_several_seeds_sample_as_whole_stacks():
    # Three seeds whose episodes (1-3, 2-9 and 5-20 steps) end at different steps, some of one
    # step (a reset stack straight to a final one); no wrap.
    replay, reference = make_pair(3, 200)
    rng = np.random.default_rng(0)
    seen = drive([replay], reference, stream(150, [(1, 3), (2, 9), (5, 20)]), rng)
    assert seen["terminations"] > 5 and seen["truncations"] > 5 and seen["wraps"] == 0


def test_the_wrap_samples_as_whole_stacks_right_after_it():
    # Capacity 23 over 160 steps: episodes span the wrap; samples checked after every add,
    # right after each wrap (pos 0 and 1) among them.
    replay, reference = make_pair(2, 23)
    rng = np.random.default_rng(1)
    seen = drive([replay], reference, stream(160, [(3, 12), (1, 30)], seed=5), rng)
    assert seen["wraps"] == 160 // 23 and seen["checked_after_wrap"] >= 2 * (160 // 23)
    assert seen["terminations"] and seen["truncations"]


def test_repeated_frames_and_a_reset_equal_to_the_final_stack_sample_as_whole_stacks():
    # Two frames in all: stacks hold equal neighbours, and a reset stack often equals the
    # previous next observation (taken as the episode going on: the same frames).
    replay, reference = make_pair(2, 17)
    rng = np.random.default_rng(2)
    drive([replay], reference, stream(120, [(1, 4), (2, 6)], palette=2, seed=9), rng)


def test_a_capacity_of_one():
    replay, reference = make_pair(2, 1)
    drive([replay], reference, stream(30, [(1, 3), (2, 4)]), np.random.default_rng(3))


def test_stacks_unrelated_to_the_previous_transition():
    # Any adds the earlier layout took (next_obs the shifted obs) sample the same, also stacks
    # that are no reset padding ([a, a, b, c], [a, b, b, c]) and follow no previous one.
    replay, reference = make_pair(2, 9)
    rng = np.random.default_rng(4)
    palette = rng.integers(0, 256, (3, *FRAME), dtype=np.uint8)

    def adds():
        for _ in range(40):
            frames = palette[rng.integers(0, 3, (2, STACK + 1))]
            done = rng.integers(0, 2, 2)
            yield frames[:, :-1], rng.integers(0, 3, 2), rng.random(2), frames[:, 1:], done, done

    drive([replay], reference, adds(), rng)


def test_one_step_episodes_grow_the_ring_and_still_sample_as_whole_stacks():
    # Long episodes first (the ring wraps), then every step a reset: two frames per transition,
    # beyond the ring's reserve, so that it grows with frames at wrapped positions.
    replay, reference = make_pair(2, 64)
    slots, rng = replay.ring.slots, np.random.default_rng(5)
    drive([replay], reference, stream(150, [(20, 40), (30, 50)]), rng)
    assert replay.ring.slots == slots and (replay.ring.written > slots).all()
    drive([replay], reference, stream(200, [(1, 1), (1, 2)], seed=3), rng)
    assert replay.ring.slots > slots and replay.storage_version >= 1
    assert replay.ring.slots <= 2 * 64 + STACK + 1 + 64


def test_a_bad_next_observation_is_refused():
    replay, _ = make_pair(1, 5)
    frames = np.zeros((1, STACK, *FRAME), dtype=np.uint8)
    shifted = frames.copy()
    shifted[0, 0] = 1
    with pytest.raises(ValueError, match="not the shifted one"):
        replay.add(frames, np.zeros(1), np.ones(1), shifted, np.zeros(1))


# --- checkpoints -----------------------------------------------------------------------------


def through_file(state: dict) -> dict:
    """As RunContext.save_checkpoint / load_checkpoint write and read it."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("saved_at", [10, 40, 46])  # not full; full, mid-ring; at a wrap
def test_a_saved_replay_goes_on_as_the_unsaved_one(saved_at):
    capacity, seeds, rng = 23, 3, np.random.default_rng(6)
    adds = list(stream(90, [(1, 3), (2, 9), (4, 15)], seed=11))
    replay, reference = make_pair(seeds, capacity)
    drive([replay], reference, adds[:saved_at], rng, check_every=1000)
    states = [through_file(replay.seed_state(i)) for i in range(seeds)]
    assert all(s["format"] == FRAME_FORMAT for s in states)
    resumed, _ = make_pair(seeds, capacity)
    resumed.load(states)
    written = replay.ring.written - resumed.ring.written
    # The resumed and the unsaved replay, each against the reference after every further add,
    # storing the same frames (an episode going on across the save is known as such).
    drive([replay, resumed], reference, adds[saved_at:], rng)
    assert (replay.ring.written - resumed.ring.written == written).all()


def test_a_checkpoint_of_the_earlier_layout_loads():
    # The earlier layout's states (obs, actions, rewards, next_obs, dones, pos, full), full and
    # wrapped, are converted: the same samples, and the same after further adds.
    capacity, seeds, rng = 19, 2, np.random.default_rng(7)
    adds = list(stream(80, [(1, 4), (3, 11)], seed=13))
    _, reference = make_pair(seeds, capacity)
    drive([], reference, adds[:50], rng, check_every=1000)
    old_states = [through_file(reference.seed_state(i)) for i in range(seeds)]
    assert set(old_states[0]) == {*ReferenceReplay.FIELDS, "pos", "full"}
    replay, _ = make_pair(seeds, capacity)
    replay.load(old_states)
    assert_same_samples(replay, reference, rng)
    # One new frame per transition and one per reset, as if the adds had been made here.
    fresh, _ = make_pair(seeds, capacity)
    for add in adds[:50]:
        fresh.add(*add[:5])
    for i in range(seeds):  # no more frames than the replay that made the adds keeps
        assert len(replay.seed_state(i)["frames"]) <= len(fresh.seed_state(i)["frames"])
    drive([replay], reference, adds[50:], rng)


def test_a_checkpoint_of_the_earlier_layout_not_yet_full_loads():
    capacity, seeds, rng = 40, 2, np.random.default_rng(8)
    adds = list(stream(30, [(1, 4), (3, 11)], seed=17))
    replay, reference = make_pair(seeds, capacity)
    drive([], reference, adds[:12], rng, check_every=1000)
    replay.load([reference.seed_state(i) for i in range(seeds)])
    drive([replay], reference, adds[12:], rng)


def test_an_unknown_checkpoint_layout_is_refused_by_name():
    replay, _ = make_pair(1, 5)
    with pytest.raises(ValueError, match="'frame-ring-0'.*frame-ring-1"):
        replay.load([{"format": "frame-ring-0", "pos": 0, "full": False}])
    flat, _ = make_pair(1, 5, shape=(4,), dtype=np.float32, stacked=False)
    with pytest.raises(ValueError, match="frame-stacked layout"):
        flat.load([replay.seed_state(0)])


# --- replays without frame stacking keep their layout ---------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype"), [((4,), np.float32), ((10, 10, 4), bool)], ids=["mlp", "minatar"]
)
def test_a_replay_without_frame_stacking_is_unchanged(shape, dtype):
    capacity, seeds, rng = 11, 2, np.random.default_rng(9)
    replay, reference = make_pair(seeds, capacity, shape=shape, dtype=dtype, stacked=False)
    for name in ReferenceReplay.FIELDS:
        assert getattr(replay, name).shape == getattr(reference, name).shape
        assert getattr(replay, name).dtype == getattr(reference, name).dtype
    for step in range(30):
        obs, next_obs = (rng.random((seeds, *shape)) > 0.5).astype(dtype), rng.random((2, *shape))
        next_obs = next_obs.astype(dtype)
        args = (obs, rng.integers(0, 3, seeds), rng.random(seeds), next_obs, rng.integers(0, 2, 2))
        replay.add(*args)
        reference.add(*args)
        assert_same_samples(replay, reference, rng)
        if step == 20:
            state = replay.seed_state(1)
            want = reference.seed_state(1)
            assert state.keys() == want.keys()
            assert all(torch.equal(state[n], want[n]) for n in ReferenceReplay.FIELDS)
    bytes_each = np.prod(shape) * (1 if dtype is bool else 4) * 2 + 8 + 4 + 4
    assert replay.bytes_per_transition() == bytes_each


# --- memory ------------------------------------------------------------------------------------


def test_an_atari_transition_takes_about_one_frame():
    space = gym.spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8)
    replay = Replay(2, 1600, space, (), torch.long, "cpu", frame_stacked=True)
    assert replay.ring.frames.dtype == torch.uint8
    # The ring: 1600 frames, a reserve of 1600 / 16 and one stack; per transition 5 int32
    # frame positions, an int64 action, a float32 reward and done.
    frames = (1600 + 100 + 5) * 84 * 84
    assert replay.bytes_per_transition() == math.ceil((frames + 1600 * (20 + 8 + 4 + 4)) / 1600)
    earlier = 4 * 84 * 84 + 84 * 84 + 8 + 4 + 4  # ReferenceReplay's
    assert earlier / replay.bytes_per_transition() > 4.5


def test_sample_traces_without_data_dependent_steps():
    # What a CUDA graph captures: make_fx on fake tensors fails on a host read (.item(),
    # .tolist(), a branch on a tensor's value) of the index.
    from torch.fx.experimental.proxy_tensor import make_fx

    replay, _ = make_pair(2, 13)
    for add in stream(20, [(1, 3), (2, 5)]):
        replay.add(*add[:5])

    def sample(index):
        return replay.sample(index)

    graph = make_fx(sample, tracing_mode="fake", _allow_non_fake_inputs=True)(
        torch.zeros((2, 8), dtype=torch.long)
    )
    index = torch.tensor([[0, 12, 5], [7, 3, 12]])
    for traced, direct in zip(graph(index), replay.sample(index), strict=True):
        assert torch.equal(traced, direct)


# --- the real Atari env ------------------------------------------------------------------------


def test_real_breakout_frames_sample_as_whole_stacks():
    pytest.importorskip("ale_py")
    from agents.envs import make

    # agents/envs.py's preprocessing (life loss ends an episode for the learner) with a
    # 40-step time limit: terminations and truncations in 300 steps; capacity 120 wraps.
    def factory(seed):
        return lambda: make("ALE/Breakout-v5", max_episode_steps=40)

    envs = SyncVectorEnv([factory(s) for s in range(2)], autoreset_mode=AutoresetMode.SAME_STEP)
    replay, reference = make_pair(2, 120, shape=(4, 84, 84))
    seen = drive([replay], reference, vector_stream(envs, 300), np.random.default_rng(10), 25)
    assert seen["truncations"] and seen["wraps"] == 2
    # One frame per transition, plus one per reset (the first one's too) at most.
    assert (replay.ring.written <= 300 + 1 + seen["ends"]).all()
