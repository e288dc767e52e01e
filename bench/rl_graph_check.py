"""The stacked SAC and DQN update as a CUDA graph against the eager update (agents/stacked.py,
suite/run/graphs.py): same seeds, same replay, N updates each, then every weight, target and last
loss compared to float tolerance, and the batch of acting likewise; updates/s of both.

Two stacks per case, built alike from the same seeds: one with ``task.cuda_graphs`` on (its
update captured after suite/run/graphs.py's warm-up, its optimizers built capturable), one with
it off (eager). On the CPU nothing is captured (``details.cuda_graphs`` would say "off: not
CUDA"): the script is then a dry run comparing eager with eager, which must agree bit for bit.
On CUDA the graph side must report "on", or the check fails.

The replay holds random transitions (no environment: this checks the update, not the envs): SAC
on HalfCheetah's shapes (17 observations, 6 actions, 256-256 nets, batch 256), DQN on MinAtar
Breakout's (10x10x4 boolean frames, 3 actions, the MinAtar CNN, batch 32) with Adam and with
rmsprop_deepmind clipped per seed; DQN's target copy every 100 updates, between updates, as
``after_step`` does in a run.

Run: ``python bench/rl_graph_check.py`` (CPU dry run), ``python bench/rl_graph_check.py
--device cuda --updates 300 --seeds 10``. Exit status 1 when a comparison fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import dqn, sac, stacked  # noqa: E402
from agents.replay import Replay  # noqa: E402
from suite.optimizers import OptimizerSpec  # noqa: E402

ADAM = OptimizerSpec("adam", 3e-4)
CASES = {
    "sac": {"actor": ADAM, "critic": OptimizerSpec("adam", 3e-4, clip_grad_norm=1.0),
            "entropy": ADAM},
    "dqn-adam": {"q": OptimizerSpec("adam", 1e-4)},
    "dqn-rmsprop_deepmind": {"q": OptimizerSpec("rmsprop_deepmind", 2.5e-4,
                                                kwargs={"loss_scale": 32.0},
                                                clip_grad_norm=10.0)},
}  # fmt: skip
TARGET_EVERY = 100  # DQN target copies, in updates
CAPACITY = 2_000


def spaces(case: str):
    if case == "sac":
        obs = gym.spaces.Box(-np.inf, np.inf, (17,), dtype=np.float32)
        return obs, gym.spaces.Box(-1.0, 1.0, (6,), dtype=np.float32)
    return gym.spaces.Box(0, 1, (10, 10, 4), dtype=bool), gym.spaces.Discrete(3)


def config_of(case: str, graphs: bool):
    if case == "sac":
        return sac.Config(batch_size=256, cuda_graphs=graphs)
    return dqn.Config(network="minatar_cnn", net_arch=[], batch_size=32, cuda_graphs=graphs)


def filled_replay(case: str, seeds: int, device: str) -> Replay:
    obs_space, action_space = spaces(case)
    sac_case = case == "sac"
    replay = Replay(
        seeds, CAPACITY, obs_space, action_space.shape,
        torch.float32 if sac_case else torch.long, device,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for _ in range(CAPACITY):
        if sac_case:
            obs, next_obs = rng.normal(size=(2, seeds, 17)).astype(np.float32)
            actions = rng.uniform(-1, 1, (seeds, 6))
        else:
            obs, next_obs = rng.random((2, seeds, 10, 10, 4)) < 0.1
            actions = rng.integers(0, 3, seeds)
        replay.add(obs, actions, rng.normal(size=seeds), next_obs, rng.random(seeds) < 0.05)
    return replay


def build(case: str, seeds: int, device: str, graphs: bool):
    obs_space, action_space = spaces(case)
    generators = [torch.Generator(device).manual_seed(seed) for seed in range(seeds)]
    cls = stacked.SacStack if case == "sac" else stacked.DqnStack
    algo = cls(config_of(case, graphs), obs_space, action_space, generators, device)
    return algo, stacked.build_optimizers(algo, CASES[case])


def seeded(space: gym.Space, seed: int) -> gym.Space:
    space = gym.spaces.Discrete(space.n) if isinstance(space, gym.spaces.Discrete) else space
    space.seed(seed)
    return space


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train(case: str, algo, optimizers, replay: Replay, updates: int, device: str):
    """``updates`` updates (acting on random observations every 10): the acts, and updates/s
    after the first 10 (warm-up and capture outside)."""
    obs_space, action_space = spaces(case)
    rng = np.random.default_rng(1)
    acts, start = [], None
    for n in range(1, updates + 1):
        if n == 11:
            sync(device)
            start = time.perf_counter()
        algo.update(replay, optimizers)
        if case != "sac" and n % TARGET_EVERY == 0:
            algo.after_step(algo.config.target_update_interval)  # the copy's step
        if n % 10 == 0:
            obs = torch.as_tensor(
                rng.random((algo.seeds, *obs_space.shape)), dtype=torch.float32, device=device
            )
            # Past exploration; a random action comes from an action space seeded alike on
            # both sides.
            step = algo.config.total_timesteps
            acts.append(algo.act(obs, step, [seeded(action_space, i) for i in range(algo.seeds)]))
    sync(device)
    rate = (updates - 10) / (time.perf_counter() - start) if start is not None else float("nan")
    return acts, rate


def compare(graph, eager, graph_acts, eager_acts, rtol: float, atol: float) -> tuple[float, str]:
    """The largest weight/loss difference, and what failed ('' when nothing)."""
    worst = 0.0
    for name, params in graph.weights().items():
        for index, (p, q) in enumerate(zip(params, eager.weights()[name], strict=True)):
            worst = max(worst, float((p.detach() - q.detach()).abs().max()))
            if not torch.allclose(p.detach(), q.detach(), rtol=rtol, atol=atol):
                return worst, f"{name}[{index}] differs"
    for role, losses in eager.last_losses.items():
        if not torch.allclose(graph.last_losses[role], losses, rtol=rtol, atol=atol):
            return worst, f"last {role} loss differs"
    # Each act: (the envs' actions, the buffer's), both compared.
    g_acts = np.concatenate([a.reshape(len(a), -1) for pair in graph_acts for a in pair])
    e_acts = np.concatenate([a.reshape(len(a), -1) for pair in eager_acts for a in pair])
    if g_acts.dtype.kind == "f":
        if not np.allclose(g_acts, e_acts, rtol=rtol, atol=atol):
            return worst, "actions differ"
    elif (g_acts != e_acts).mean() > 0.01:  # an argmax may flip on a near tie
        return worst, f"greedy actions differ on {(g_acts != e_acts).mean():.1%}"
    for g, h in zip(graph.generators, eager.generators, strict=True):
        if not torch.equal(g.get_state(), h.get_state()):
            return worst, "the seeds' generators drew differently"
    return worst, ""


def check(case: str, args) -> bool:
    replay = filled_replay(case, args.seeds, args.device)
    graph, graph_opt = build(case, args.seeds, args.device, graphs=True)
    eager, eager_opt = build(case, args.seeds, args.device, graphs=False)
    want = "on" if args.device.startswith("cuda") else "off: not CUDA"
    graph_acts, graph_rate = train(case, graph, graph_opt, replay, args.updates, args.device)
    eager_acts, eager_rate = train(case, eager, eager_opt, replay, args.updates, args.device)
    worst, failure = compare(graph, eager, graph_acts, eager_acts, args.rtol, args.atol)
    if graph.graphs != want:
        failure = f"graph side says {graph.graphs!r}, expected {want!r}"
    steps = {role: o.inner.steps for role, o in graph_opt.items()}
    if steps != {role: o.inner.steps for role, o in eager_opt.items()}:
        failure = f"optimizer step counts differ: {steps}"
    print(
        f"{case}: {args.seeds} seeds x {args.updates} updates on {args.device}, cuda_graphs "
        f"{graph.graphs!r} vs eager: max |weight difference| {worst:.2e}; updates/s "
        f"{graph_rate:.0f} vs {eager_rate:.0f} ({graph_rate / eager_rate:.2f}x): "
        f"{'FAILED: ' + failure if failure else 'ok'}"
    )
    return not failure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--updates", type=int, default=None, help="default 300 (CUDA), 30 (CPU)")
    parser.add_argument("--seeds", type=int, default=None, help="default 10 (CUDA), 3 (CPU)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--atol", type=float, default=1e-5)
    args = parser.parse_args()
    on_cuda = args.device.startswith("cuda")
    args.updates = args.updates or (300 if on_cuda else 30)
    args.seeds = args.seeds or (10 if on_cuda else 3)
    if args.updates <= 10:
        parser.error("--updates must be > 10 (the first 10 are not timed)")
    torch.set_num_threads(1)
    results = [check(case, args) for case in args.cases.split(",")]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
