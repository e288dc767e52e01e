"""The stacked DQN (agents/stacked.py) against stable-baselines3's own code on the same inputs,
piece by piece: when epsilon takes which value, at which environment steps gradient steps and
target copies happen (the lone trainer agents/dqn.py, SB3's learn loop, against the stack's
loop), what the replay stores from the same actions (terminal observations, time-limit
truncations), one update on a fixed batch (loss, clipped gradient, weights: SB3's
``DQN.train``), greedy evaluation (SB3's ``evaluate_policy``) and the initial weights' law."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3.dqn.dqn as sb3_dqn
import torch
from scipy import stats
from stable_baselines3 import DQN
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from agents import dqn, stacked
from agents.common import eval_seed, make_env
from agents.replay import Replay
from suite.config import expand, load_experiment
from suite.optimizers import OptimizerSpec
from suite.run.worker import WorkerJob, execute
from suite.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")

# train_freq does not divide the budget nor the target interval, learning_starts is not a
# multiple of either: an off-by-one in any of them moves a step.
TASK = (
    "{env_id: CartPole-v1, net_arch: [16, 16], batch_size: 16, buffer_size: 1000,"
    " learning_starts: 41, train_freq: 16, gradient_steps: 3, target_update_interval: 7,"
    " exploration_fraction: 0.4, exploration_final_eps: 0.1, total_timesteps: 250,"
    " eval_every: 100, eval_episodes: 1, final_evals: 1, max_episode_steps: MAX}"
)
YAML = """
description: stacked DQN against SB3
trainer: dqn
task: TASK
budgets: {smoke: {}, quick: {}, full: {}}
arms:
  adam: {q: {optimizer: adam, lr: 1.0e-3, clip_grad_norm: 10}}
seeds: 1
metrics: [eval/return_final]
claims: []
"""


def one_run(tmp_path: Path, max_episode_steps: int = 500):
    path = tmp_path / "experiment.yaml"
    task = TASK.replace("MAX", str(max_episode_steps))
    path.write_text(YAML.replace("TASK", task))
    (run,) = expand(load_experiment(str(path), "smoke", seeds=1, arms=["adam"]))
    return run


def run_lone_and_stacked(tmp_path: Path, run) -> None:
    """The run once through the lone SB3 trainer and once as a stack of one, in this process."""
    for name, stack in (("lone", None), ("stacked", "bmm")):
        root = tmp_path / name
        Store(root).register([run])
        execute(WorkerJob([run], str(root), "cpu", 1, stack=stack))
        result = json.loads((Store(root).run_dir(run) / "result.json").read_text())
        assert result["status"] == "done", result


# --- the schedule: epsilon, gradient steps, target copies -------------------------------------


def test_epsilon_gradient_steps_and_target_copies_come_at_sb3s_steps(tmp_path, monkeypatch):
    lone = {"epsilon": {}, "gradient_steps": [], "target_copies": []}
    stack = {"epsilon": {}, "gradient_steps": [], "target_copies": []}
    current = {}

    # SB3: DQN.predict draws epsilon-greedy with the rate _on_step set after the last step;
    # OffPolicyAlgorithm.learn calls train(gradient_steps) after each rollout; DQN._on_step
    # copies the target through polyak_update (tau 1).
    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        if not deterministic:
            lone["epsilon"][self.num_timesteps] = self.exploration_rate
        return original_predict(self, observation, state, episode_start, deterministic)

    def train(self, gradient_steps, batch_size=100):
        lone["gradient_steps"] += [self.num_timesteps] * gradient_steps
        return original_train(self, gradient_steps, batch_size)

    def on_step(self):
        current["model"] = self
        return original_on_step(self)

    def polyak_update(params, target_params, tau):
        lone["target_copies"].append(current["model"].num_timesteps)
        return original_polyak(params, target_params, tau)

    original_predict, original_train = sb3_dqn.DQN.predict, dqn.SuiteDQN.train
    original_on_step, original_polyak = sb3_dqn.DQN._on_step, sb3_dqn.polyak_update
    monkeypatch.setattr(sb3_dqn.DQN, "predict", predict)
    monkeypatch.setattr(dqn.SuiteDQN, "train", train)
    monkeypatch.setattr(sb3_dqn.DQN, "_on_step", on_step)
    monkeypatch.setattr(sb3_dqn, "polyak_update", polyak_update)

    # The stack: the replay holds one transition per step so far (it never fills here).
    def exploration_rate(self, step):
        stack["epsilon"][step] = original_rate(self, step)
        return stack["epsilon"][step]

    def update(self, replay, optimizers):
        stack["gradient_steps"].append(replay.size())
        return original_update(self, replay, optimizers)

    def after_step(self, step):
        current["step"] = step
        return original_after_step(self, step)

    def copy_target(self):
        stack["target_copies"].append(current["step"])
        return original_copy(self)

    original_rate, original_update = stacked.DqnStack.exploration_rate, stacked.DqnStack.update
    original_after_step, original_copy = stacked.DqnStack.after_step, stacked.DqnStack.copy_target
    monkeypatch.setattr(stacked.DqnStack, "exploration_rate", exploration_rate)
    monkeypatch.setattr(stacked.DqnStack, "update", update)
    monkeypatch.setattr(stacked.DqnStack, "after_step", after_step)
    monkeypatch.setattr(stacked.DqnStack, "copy_target", copy_target)

    run_lone_and_stacked(tmp_path, one_run(tmp_path))

    # SB3 calls polyak_update twice per copy (weights, then batch-norm statistics).
    assert sorted(set(lone["target_copies"])) == stack["target_copies"]
    assert stack["target_copies"] == list(range(7, 250, 7))
    assert stack["gradient_steps"] == lone["gradient_steps"]
    assert stack["gradient_steps"][:3] == [48, 48, 48] and stack["gradient_steps"][-1] == 240
    assert stack["epsilon"].keys() == lone["epsilon"].keys() == set(range(41, 250))
    for step, rate in lone["epsilon"].items():
        assert stack["epsilon"][step] == pytest.approx(rate, abs=1e-12), step
    assert stack["epsilon"][249] == 0.1 and stack["epsilon"][41] > 0.5


# --- what the replay stores ------------------------------------------------------------------


def scripted_action(step: int) -> int:
    """Pushes right for 20 steps (the pole falls: terminations), then left and right in turn
    for 20 (it stays up until a short time limit truncates the episode)."""
    return 1 if step % 40 < 20 else step % 2


def test_the_replay_stores_what_sb3s_stores_from_the_same_actions(tmp_path, monkeypatch):
    built, replays = {}, []

    def build(*args, **kwargs):
        built["model"] = original_build(*args, **kwargs)
        return built["model"]

    def sample_action(self, learning_starts, action_noise=None, n_envs=1):
        action = np.array([scripted_action(self.num_timesteps)])
        return action, action

    def act(self, obs, step, spaces):
        action = np.array([scripted_action(step)] * self.seeds)
        return action, action

    class KeptReplay(Replay):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            replays.append(self)

    original_build = dqn.build
    monkeypatch.setattr(dqn, "build", build)
    monkeypatch.setattr(dqn.SuiteDQN, "_sample_action", sample_action)
    monkeypatch.setattr(stacked.DqnStack, "act", act)
    monkeypatch.setattr(stacked, "Replay", KeptReplay)

    run_lone_and_stacked(tmp_path, one_run(tmp_path, max_episode_steps=12))

    sb3, (ours,) = built["model"].replay_buffer, replays
    # The lone run stops inside the budget's last step, before storing it (agents/common.py
    # EvalAndCheckpoint returns False from on_step, which SB3 calls before _store_transition);
    # the stack stores it and trains on it no more.
    size = sb3.pos
    assert size == 249 and ours.size() == 250
    # SB3 ReplayBuffer._get_samples: done only where the episode did not end by a time limit
    # (handle_timeout_termination).
    sb3_dones = sb3.dones[:size, 0] * (1 - sb3.timeouts[:size, 0])
    assert sb3.timeouts[:size].sum() > 0 and sb3_dones.sum() > 0  # both kinds of ending
    np.testing.assert_array_equal(ours.obs[0, :size].numpy(), sb3.observations[:size, 0])
    np.testing.assert_array_equal(ours.next_obs[0, :size].numpy(), sb3.next_observations[:size, 0])
    np.testing.assert_array_equal(ours.actions[0, :size].numpy(), sb3.actions[:size, 0, 0])
    np.testing.assert_array_equal(ours.rewards[0, :size].numpy(), sb3.rewards[:size, 0])
    np.testing.assert_array_equal(ours.dones[0, :size].numpy(), sb3_dones)


# --- one update on a fixed batch ---------------------------------------------------------------

OBS = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
BATCH, HIDDEN = 8, [16, 16]
ADAM = OptimizerSpec("adam", 1e-3, clip_grad_norm=10)


def q_layers(model) -> list[torch.nn.Linear]:
    return [m for m in model.q_net.q_net if isinstance(m, torch.nn.Linear)]


def stack_with_weights_of(model, config: dqn.Config) -> stacked.DqnStack:
    """A stack of one seed whose Q-network and target hold ``model``'s weights."""
    algo = stacked.DqnStack(
        config, OBS, gym.spaces.Discrete(2), [torch.Generator().manual_seed(0)], "cpu"
    )
    with torch.no_grad():
        for index, layer in enumerate(q_layers(model)):
            algo.q.weights[index].copy_(layer.weight.T[None, None])
            algo.q.biases[index].copy_(layer.bias[None, None, None])
    algo.copy_target()
    return algo


def sb3_model(loss: str, max_grad_norm: float, lr: float):
    """SB3's own DQN for the Huber loss (its train() clips at max_grad_norm with its Adam); the
    suite's lone trainer (SuiteDQN: SB3's train with the loss as a setting) for MSE."""
    env = make_env("CartPole-v1", 0)
    common = {"learning_starts": 0, "buffer_size": 64, "batch_size": BATCH, "seed": 0}
    net = {"net_arch": HIDDEN}
    if loss == "huber":
        model = DQN("MlpPolicy", env, lr, max_grad_norm=max_grad_norm, policy_kwargs=net, **common)
    else:
        spec = OptimizerSpec("adam", lr, clip_grad_norm=max_grad_norm)
        model = dqn.SuiteDQN(
            "MlpPolicy", env, role_specs={"q": spec}, loss=loss, learning_rate=lr,
            policy_kwargs=net, **common,
        )  # fmt: skip
    model.set_logger(configure(None, []))
    return model


@pytest.mark.parametrize(
    ("loss", "max_grad_norm"), [("huber", 100.0), ("huber", 0.05), ("mse", 0.05)]
)
def test_updates_on_fixed_batches_are_sb3s(monkeypatch, loss, max_grad_norm):
    lr = 1e-2
    model = sb3_model(loss, max_grad_norm, lr)
    config = dqn.Config(net_arch=HIDDEN, batch_size=BATCH, loss=loss, gamma=model.gamma)
    algo = stack_with_weights_of(model, config)
    spec = OptimizerSpec("adam", lr, clip_grad_norm=max_grad_norm)
    optimizers = stacked.build_optimizers(algo, {"q": spec})
    rng = np.random.default_rng(1)
    replay = Replay(1, 64, OBS, (), torch.long, "cpu")
    for _ in range(40):
        obs, next_obs = rng.normal(size=(2, 1, 4)).astype(np.float32)
        action, reward = rng.integers(0, 2, 1), rng.normal(size=1).astype(np.float32)
        terminated, truncated = rng.random() < 0.2, rng.random() < 0.2
        # As SB3's DummyVecEnv reports it: done = either; a time limit alone is a timeout.
        info = {"TimeLimit.truncated": truncated and not terminated}
        model.replay_buffer.add(
            obs, next_obs, action, reward, np.array([terminated or truncated]), [info]
        )
        replay.add(obs, action, reward, next_obs, np.array([terminated]))
    # Both sides read the same batch: SB3's own _get_samples, the stack's sample on the indices.
    batch = {}
    monkeypatch.setattr(
        model.replay_buffer,
        "sample",
        lambda size, env=None: model.replay_buffer._get_samples(batch["index"]),
    )
    monkeypatch.setattr(
        stacked, "sample_indices", lambda replay, size, generators: batch["index"][None]
    )
    clipped = []
    for _ in range(4):  # the target stays at the first weights: SB3 copies it in _on_step only
        batch["index"] = torch.as_tensor(rng.integers(0, 40, BATCH))
        model.train(gradient_steps=1, batch_size=BATCH)
        algo.update(replay, optimizers)
        assert float(algo.last_losses["q"][0]) == pytest.approx(
            model.logger.name_to_value["train/loss"], rel=1e-5
        )
        clipped.append(float(optimizers["q"].last_grad_norms[0]) > max_grad_norm)
        for ours, layer in zip(algo.q.parameters()[::2], q_layers(model), strict=True):
            close(ours.grad[0, 0].T, layer.weight.grad)
            close(ours.detach()[0, 0].T, layer.weight.detach())
        for ours, layer in zip(algo.q.parameters()[1::2], q_layers(model), strict=True):
            close(ours.grad[0, 0, 0], layer.bias.grad)
            close(ours.detach()[0, 0, 0], layer.bias.detach())
    assert all(clipped) == (max_grad_norm < 1)  # the small norm binds at every step


def close(ours: torch.Tensor, sb3: torch.Tensor) -> None:
    torch.testing.assert_close(ours, sb3, rtol=1e-4, atol=1e-6)


# --- greedy evaluation -----------------------------------------------------------------------


def test_evaluations_in_a_row_are_sb3s_evaluate_policy():
    model = sb3_model("huber", 10.0, 1e-3)
    with torch.no_grad():  # a policy whose episodes differ in length from start to start
        for layer in q_layers(model):
            layer.weight.mul_(3)
    algo = stack_with_weights_of(model, dqn.Config(net_arch=HIDDEN))
    theirs = make_env("CartPole-v1", eval_seed(0))
    ours = make_env("CartPole-v1", eval_seed(0))
    lengths = set()
    for _ in range(4):  # each evaluation starts where the last one left the env
        returns, steps = evaluate_policy(
            model, theirs, 3, deterministic=True, return_episode_rewards=True
        )
        (got,) = stacked.evaluate(algo, [ours], 3, "cpu")
        assert got["eval/return"] == pytest.approx(np.mean(returns))
        assert got["eval/return_std"] == pytest.approx(np.std(returns))
        assert got["eval/episode_length"] == pytest.approx(np.mean(steps))
        lengths.update(steps)
    assert len(lengths) > 3


# --- initial weights -------------------------------------------------------------------------


def test_initial_weights_have_the_law_of_sb3s_q_network():
    """SB3's QNetwork is torch's default Linear init (no orthogonal init for DQN): per layer,
    the stack's weights and biases pooled over seeds against SB3's pooled over the same seeds,
    two-sample Kolmogorov-Smirnov; the target starts equal to the online network."""
    seeds = range(6)
    env = make_env("CartPole-v1", 0)
    models = [DQN("MlpPolicy", env, policy_kwargs={"net_arch": [64, 64]}, seed=s) for s in seeds]
    config = dqn.Config(net_arch=[64, 64])
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    algo = stacked.DqnStack(config, OBS, gym.spaces.Discrete(2), generators, "cpu")
    layers = [q_layers(m) for m in models]
    for index, (weight, bias) in enumerate(zip(algo.q.weights, algo.q.biases, strict=True)):
        assert weight.shape[2:] == layers[0][index].weight.T.shape
        sb3_weights = torch.cat([m[index].weight.detach().flatten() for m in layers])
        sb3_biases = torch.cat([m[index].bias.detach().flatten() for m in layers])
        assert stats.ks_2samp(weight.detach().flatten(), sb3_weights).pvalue > 1e-3, index
        assert stats.ks_2samp(bias.detach().flatten(), sb3_biases).pvalue > 1e-3, index
    for target, online in zip(algo.q_target, algo.parameters(), strict=True):
        assert torch.equal(target, online)


# --- the whole loop, drawing SB3's random numbers ----------------------------------------------


def test_a_stack_drawing_sb3s_numbers_takes_the_lone_runs_actions(tmp_path, monkeypatch):
    """With SB3's initial weights and SB3's random numbers (numpy's global generator seeded
    with the run's seed: epsilon draws in DQN.predict, batch indices then env indices in
    ReplayBuffer.sample), a stack of one takes every action the lone SB3 run takes, stores every
    transition it stores and evaluates as it does: the loop is SB3's, not only its pieces.
    (Float rounding differs between the batched and the lone matmuls; over long runs a near-tie
    of two Q-values eventually flips one greedy action and the runs part: after 2,499 steps of
    the quickstart at 30k, none in 6,000 steps at a 6k budget.)"""
    built, replays = {}, []

    def build(*args, **kwargs):
        built["model"] = original_build(*args, **kwargs)
        return built["model"]

    def init(self, config, obs_space, action_space, generators, device):
        original_init(self, config, obs_space, action_space, generators, device)
        with torch.no_grad():
            for index, (weight, bias) in enumerate(built["initial"]):  # the lone run's start
                self.q.weights[index].copy_(weight.T[None, None])
                self.q.biases[index].copy_(bias[None, None, None])
        self.copy_target()
        np.random.seed(built["model"].seed)  # SB3 BaseAlgorithm.set_random_seed

    def act(self, obs, step, spaces):  # DqnStack.act with SB3's draws (DQN.predict)
        if step < self.config.learning_starts:
            return original_act(self, obs, step, spaces)
        if np.random.rand() < self.exploration_rate(step):
            action = np.array([spaces[0].sample()])
        else:
            action = self._greedy({"obs": obs}).numpy()
        return action, action

    def sample_indices(replay, batch, generators):  # ReplayBuffer.sample, then _get_samples
        index = np.random.randint(0, replay.size(), size=batch)
        np.random.randint(0, high=1, size=(batch,))
        return torch.as_tensor(index)[None]

    class KeptReplay(Replay):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            replays.append(self)

    original_build, original_init = dqn.build, stacked.DqnStack.__init__
    original_act = stacked.DqnStack.act
    monkeypatch.setattr(dqn, "build", build)
    monkeypatch.setattr(stacked.DqnStack, "__init__", init)
    monkeypatch.setattr(stacked.DqnStack, "act", act)
    monkeypatch.setattr(stacked, "sample_indices", sample_indices)
    monkeypatch.setattr(stacked, "Replay", KeptReplay)

    run = one_run(tmp_path)
    root = tmp_path / "lone"
    Store(root).register([run])
    execute(WorkerJob([run], str(root), "cpu", 1))
    lone = json.loads((Store(root).run_dir(run) / "result.json").read_text())
    # The lone model's initial weights: rebuilt with the run's seed as SB3 builds it.
    env = make_env("CartPole-v1", run.seed)
    fresh = original_build(dqn.Config(net_arch=HIDDEN), {"q": ADAM}, env, run.seed, "cpu")
    built["initial"] = [(layer.weight.detach(), layer.bias.detach()) for layer in q_layers(fresh)]
    root = tmp_path / "stacked"
    Store(root).register([run])
    execute(WorkerJob([run], str(root), "cpu", 1, stack="bmm"))
    ours = json.loads((Store(root).run_dir(run) / "result.json").read_text())

    sb3, (replay,) = built["model"].replay_buffer, replays
    size = sb3.pos
    np.testing.assert_array_equal(replay.actions[0, :size].numpy(), sb3.actions[:size, 0, 0])
    np.testing.assert_allclose(replay.obs[0, :size].numpy(), sb3.observations[:size, 0], atol=1e-5)
    assert ours["curves"]["eval/return"] == lone["curves"]["eval/return"]
    # Not trivially equal: epsilon acted, and the greedy policy learned something.
    assert len(set(sb3.actions[41:size, 0, 0].tolist())) == 2
