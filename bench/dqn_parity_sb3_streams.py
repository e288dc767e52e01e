"""A diagnostic for bench/rl_parity.py: the quickstart's DQN stack drawing SB3's random numbers.

Each seed of a ``--stack-seeds`` run of ``quickstart --arms adam`` starts from the weights SB3's
QNetwork draws with that seed and takes its epsilon draws and batch indices from
``numpy.random.RandomState(seed)`` in SB3's order (DQN.predict; ReplayBuffer.sample, then
_get_samples' env indices), as the lone run does from numpy's global generator. Everything else
is agents/stacked.py as committed. A seed then follows its lone run step for step until float
rounding flips a near-tied greedy action (tests/test_stack_sb3_dqn.py shows the equality on a
short run); what is left to differ between the two sides' laws is only the source of the
random numbers. Judge it with ``python bench/rl_parity.py --stacked ROOT``.

Run (in this process, one torch thread, about 25 min for 16 seeds on a loaded 2-core CPU):
``nice -n 5 python bench/dqn_parity_sb3_streams.py --seeds 16 --results
/tmp/parity-results/stack-sb3streams``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stable_baselines3 import DQN  # noqa: E402

from agents import stacked  # noqa: E402
from suite.config import expand, load_experiment  # noqa: E402
from suite.run.worker import WorkerJob, execute  # noqa: E402
from suite.store import Store  # noqa: E402

original_init, original_update = stacked.DqnStack.__init__, stacked.DqnStack.update


def init(self, config, obs_space, action_space, generators, device):
    """SB3's initial weights per seed (its QNetwork built with the seed) and a numpy stream."""
    original_init(self, config, obs_space, action_space, generators, device)
    self.streams = []
    for i, generator in enumerate(generators):
        seed = int(generator.initial_seed())
        kwargs = {"net_arch": list(config.net_arch)}
        reference = DQN("MlpPolicy", config.env_id, policy_kwargs=kwargs, seed=seed)
        layers = [m for m in reference.q_net.q_net if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for k, layer in enumerate(layers):
                self.q.weights[k][i, 0].copy_(layer.weight.T)
                self.q.biases[k][i, 0, 0].copy_(layer.bias)
        self.streams.append(np.random.RandomState(seed))  # SB3 set_random_seed: np.random.seed
    self.copy_target()


def act(self, obs, step, spaces):
    """DqnStack.act with DQN.predict's draw: one uniform per step, then the space's sample."""
    if step < self.config.learning_starts:
        actions = np.array([space.sample() for space in spaces])
        return actions, actions
    epsilon = self.exploration_rate(step)
    greedy = self._greedy({"obs": obs}).numpy()
    actions = np.array(
        [
            space.sample() if stream.rand() < epsilon else a
            for stream, space, a in zip(self.streams, spaces, greedy, strict=True)
        ]
    )
    return actions, actions


def update(self, replay, optimizers):
    """DqnStack.update with ReplayBuffer.sample's indices (and _get_samples' env indices)."""

    def draw(replay, batch, generators):
        index = []
        for stream in self.streams:
            index.append(stream.randint(0, replay.size(), size=batch))
            stream.randint(0, high=1, size=(batch,))
        return torch.as_tensor(np.stack(index))

    stacked.sample_indices = draw
    return original_update(self, replay, optimizers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--results", required=True)
    args = parser.parse_args()
    stacked.DqnStack.__init__, stacked.DqnStack.act = init, act
    stacked.DqnStack.update = update
    torch.set_num_threads(1)
    runs = expand(load_experiment("quickstart", "quick", seeds=args.seeds, arms=["adam"]))
    Store(args.results).register(runs)
    print(execute(WorkerJob(list(runs), args.results, "cpu", 1, stack="bmm")))


if __name__ == "__main__":
    main()
