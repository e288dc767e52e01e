"""What the suite's RL trainers cost over stock stable-baselines3, in environment steps per second.

The suite's DQN and SAC (role optimizers, per-role clipping, the suite's train loops) against
stock SB3 with identical hyperparameters, on the same machine, one torch thread, interleaved
(suite, stock, suite, stock, ...) so that load on the machine hits both alike. Each timing is
``learn()`` of ``--steps`` steps after ``learning_starts`` random ones, i.e. steps with a gradient
step each (the part the suite changes). The target: the suite costs at most 5% over stock.

Run: ``python bench/rl_overhead.py [--steps 2000] [--rounds 3] [--algos dqn,sac]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from stable_baselines3 import DQN, SAC

from agents import dqn, sac
from agents.common import make_env
from suite.optimizers import OptimizerSpec
from suite.schema import from_dict

ADAM = {"optimizer": "adam", "lr": 1e-3}


def dqn_pair():
    """Suite and stock DQN on CartPole-v1: 64-64 MLP, Adam 1e-3, clipping 10, one update per step."""
    settings = {
        "learning_starts": 500,
        "buffer_size": 50_000,
        "batch_size": 64,
        "train_freq": 1,
        "gradient_steps": 1,
        "target_update_interval": 500,
    }
    spec = from_dict(OptimizerSpec, {**ADAM, "clip_grad_norm": 10})

    def suite_model():
        config = dqn.Config(net_arch=[64, 64], **settings)
        return dqn.build(config, {"q": spec}, make_env("CartPole-v1", 0), seed=0, device="cpu")

    def stock_model():
        return DQN(
            "MlpPolicy",
            make_env("CartPole-v1", 0),
            learning_rate=1e-3,
            max_grad_norm=10,
            policy_kwargs={"net_arch": [64, 64]},
            seed=0,
            device="cpu",
            **settings,
        )

    return suite_model, stock_model, settings["learning_starts"]


def sac_pair():
    """Suite and stock SAC on Pendulum-v1: 256-256 MLPs, Adam 3e-4 for all three roles."""
    settings = {"learning_starts": 200, "buffer_size": 50_000, "batch_size": 256}
    spec = from_dict(OptimizerSpec, {"optimizer": "adam", "lr": 3e-4})

    def suite_model():
        config = sac.Config(net_arch=[256, 256], **settings)
        specs = {"actor": spec, "critic": spec, "entropy": spec}
        return sac.build(config, specs, make_env("Pendulum-v1", 0), seed=0, device="cpu")

    def stock_model():
        return SAC(
            "MlpPolicy",
            make_env("Pendulum-v1", 0),
            learning_rate=3e-4,
            policy_kwargs={"net_arch": [256, 256]},
            seed=0,
            device="cpu",
            **settings,
        )

    return suite_model, stock_model, settings["learning_starts"]


PAIRS = {"dqn": dqn_pair, "sac": sac_pair}


def steps_per_second(make, warmup: int, steps: int) -> float:
    """Steps/s of learn() over ``steps`` steps that each train, after the random warm-up."""
    model = make()
    model.learn(warmup)
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved suite/stock pairs")
    parser.add_argument("--algos", default="dqn,sac", help="comma-separated: dqn, sac")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'algo':5} {'suite steps/s':>14} {'stock steps/s':>14} {'time ratio':>12}")
    for name in args.algos.split(","):
        suite_model, stock_model, warmup = PAIRS[name]()
        suite_rates, stock_rates = [], []
        for _ in range(args.rounds):
            suite_rates.append(steps_per_second(suite_model, warmup, args.steps))
            stock_rates.append(steps_per_second(stock_model, warmup, args.steps))
        suite_rate, stock_rate = statistics.median(suite_rates), statistics.median(stock_rates)
        # Ratio of times per step: 1.05 means the suite costs 5% more than stock.
        print(f"{name:5} {suite_rate:14.1f} {stock_rate:14.1f} {stock_rate / suite_rate:12.3f}")


if __name__ == "__main__":
    main()
