"""CUDA graphs for the stacked SAC and DQN (agents/stacked.py, suite/run/graphs.py), on the CPU:
the update split into host draws and a capture-safe step on static buffers trains exactly as the
update did before the split (its logic copied below); a replayed update's host side (each role's
step counts) comes out as eager updates leave it; a stack records why its update is or is not a
graph; the optimizers are capturable exactly when it is."""

from __future__ import annotations

import contextlib
import json
import types

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from agents import dqn, sac, stacked
from agents.replay import Replay, sample_indices
from suite.config import expand, load_experiment
from suite.optimizers import LookaheadSpec, OptimizerSpec, ScheduleSpec
from suite.run import graphs
from suite.run.worker import WorkerJob, execute
from suite.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = (2, 3)
UPDATES = 6
OBS = gym.spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
SAC_SPECS = {
    "actor": OptimizerSpec("adam", 1e-3),
    "critic": OptimizerSpec("sgd", 1e-2, kwargs={"momentum": 0.9}, clip_grad_norm=0.5),
    "entropy": OptimizerSpec("adam", 3e-3),
}
DQN_SPECS = {"q": OptimizerSpec("adam", 1e-3, clip_grad_norm=0.1)}


def sac_stack(config=None) -> stacked.SacStack:
    config = config or sac.Config(net_arch=[16, 16], batch_size=8)
    generators = [torch.Generator().manual_seed(s) for s in SEEDS]
    return stacked.SacStack(config, OBS, gym.spaces.Box(-2.0, 2.0, (2,)), generators, "cpu")


def dqn_stack(config=None) -> stacked.DqnStack:
    config = config or dqn.Config(net_arch=[16], batch_size=8, target_update_interval=2)
    generators = [torch.Generator().manual_seed(s) for s in SEEDS]
    return stacked.DqnStack(config, OBS, gym.spaces.Discrete(3), generators, "cpu")


def filled_replay(action_shape, action_dtype, transitions: int = 30) -> Replay:
    """A replay holding random transitions (numpy's generator, fixed seed)."""
    rng = np.random.default_rng(0)
    replay = Replay(len(SEEDS), 40, OBS, action_shape, action_dtype, "cpu")
    for _ in range(transitions):
        n = len(SEEDS)
        if action_dtype == torch.long:
            actions = rng.integers(0, 3, n)
        else:
            actions = rng.uniform(-1, 1, (n, *action_shape))
        replay.add(
            rng.uniform(-1, 1, (n, 3)), actions, rng.normal(size=n),
            rng.uniform(-1, 1, (n, 3)), rng.random(n) < 0.2,
        )  # fmt: skip
    return replay


# --- the update before the split (agents/stacked.py at 789a438, copied as it was) ------------


def reference_sac_update(self, replay, optimizers) -> None:
    config = self.config
    index = sample_indices(replay, config.batch_size, self.generators)
    noise = torch.stack(
        [
            torch.randn((2, config.batch_size, self.act_dim), generator=g, device=self.device)
            for g in self.generators
        ]
    )
    obs, actions, rewards, next_obs, dones = replay.sample(index)
    actions_pi, log_prob = self.action_log_prob(obs, noise[:, 0])
    ent_coef = self.ent_coef()
    if self.log_ent_coef is not None:
        target = (log_prob + self.target_entropy).detach()
        ent_loss = -(self.log_ent_coef[:, None] * target).mean(1)
        stacked._step(optimizers["entropy"], ent_loss)
        self.last_losses["entropy"] = ent_loss.detach()
    with torch.no_grad():
        next_actions, next_log_prob = self.action_log_prob(next_obs, noise[:, 1])
        next_q = self.q_values(next_obs, next_actions, self.critic_target).min(1).values
        next_q = next_q - ent_coef[:, None] * next_log_prob
        target_q = rewards + (1 - dones) * config.gamma * next_q
    current_q = self.q_values(obs, actions)
    critic_loss = 0.5 * (current_q - target_q[:, None]).pow(2).mean(2).sum(1)
    stacked._step(optimizers["critic"], critic_loss)
    frozen = [p.detach() for p in self.critic.parameters()]
    min_q_pi = self.q_values(obs, actions_pi, frozen).min(1).values
    actor_loss = (ent_coef[:, None] * log_prob - min_q_pi).mean(1)
    stacked._step(optimizers["actor"], actor_loss)
    with torch.no_grad():
        for t, p in zip(self.critic_target, self.critic.parameters(), strict=True):
            t.mul_(1 - config.tau).add_(p, alpha=config.tau)
    self.last_losses.update(critic=critic_loss.detach(), actor=actor_loss.detach())


def reference_dqn_update(self, replay, optimizers) -> None:
    config = self.config
    index = sample_indices(replay, config.batch_size, self.generators)
    obs, actions, rewards, next_obs, dones = replay.sample(index)
    with torch.no_grad():
        next_q = self.q_values(next_obs, self.q_target).max(-1).values
        target_q = rewards + (1 - dones) * config.gamma * next_q
    current_q = self.q_values(obs).gather(-1, actions.long()[..., None])[..., 0]
    if config.loss == "huber":
        losses = F.smooth_l1_loss(current_q, target_q, reduction="none").mean(1)
    else:
        losses = F.mse_loss(current_q, target_q, reduction="none").mean(1)
    stacked._step(optimizers["q"], losses)
    self.last_losses["q"] = losses.detach()


def assert_same_state(a, b) -> None:
    """Weights, targets, optimizer moments, last losses and generators: bit for bit."""
    for name, params in a.weights().items():
        for p, q in zip(params, b.weights()[name], strict=True):
            assert torch.equal(p, q), name
    assert a.last_losses.keys() == b.last_losses.keys()
    for role, losses in a.last_losses.items():
        assert torch.equal(losses, b.last_losses[role]), role
    for g, h in zip(a.generators, b.generators, strict=True):
        assert torch.equal(g.get_state(), h.get_state())


def test_the_split_sac_update_is_the_update_before_the_split():
    replay = filled_replay((2,), torch.float32)
    split, before = sac_stack(), sac_stack()
    split_opt = stacked.build_optimizers(split, SAC_SPECS)
    before_opt = stacked.build_optimizers(before, SAC_SPECS)
    for _ in range(UPDATES):
        split.update(replay, split_opt)
        reference_sac_update(before, replay, before_opt)
    assert_same_state(split, before)
    for role, optimizer in split_opt.items():
        assert optimizer.inner.steps == before_opt[role].inner.steps == UPDATES
    # It trained (the comparison is not between two untouched stacks), each seed its own way.
    assert not torch.equal(split.actor.weights[0], sac_stack().actor.weights[0])
    assert not torch.equal(split.last_losses["critic"][0], split.last_losses["critic"][1])


@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_the_split_dqn_update_is_the_update_before_the_split(loss):
    replay = filled_replay((), torch.long)
    config = dqn.Config(net_arch=[16], batch_size=8, target_update_interval=2, loss=loss)
    split, before = dqn_stack(config), dqn_stack(config)
    split_opt = stacked.build_optimizers(split, DQN_SPECS)
    before_opt = stacked.build_optimizers(before, DQN_SPECS)
    for step in range(1, UPDATES + 1):
        split.update(replay, split_opt)
        reference_dqn_update(before, replay, before_opt)
        # The target copy stays outside the step, into the tensors the step reads.
        split.after_step(step)
        before.after_step(step)
    assert_same_state(split, before)
    assert not torch.equal(split.q_target[0], dqn_stack(config).q_target[0])


def test_acting_from_static_buffers_acts_as_before():
    """The batch of acting through its CapturedStep: the draws and actions of the direct code."""
    obs = torch.tensor(
        np.random.default_rng(1).uniform(-1, 1, (len(SEEDS), 3)), dtype=torch.float32
    )
    config = sac.Config(net_arch=[16, 16], learning_starts=0)
    algo, spaces = sac_stack(config), [gym.spaces.Box(-2.0, 2.0, (2,))] * len(SEEDS)
    for _ in range(3):
        generators = [g.clone_state() for g in algo.generators]
        env_actions, scaled = algo.act(obs, 5, spaces)
        noise = torch.stack([torch.randn((1, 2), generator=g) for g in generators])
        with torch.no_grad():
            want, _ = algo.action_log_prob(obs[:, None], noise)
        assert np.array_equal(scaled, want[:, 0].numpy())
        assert np.array_equal(env_actions, algo.unscale(want[:, 0]))
        obs = obs.flip(0)  # the static buffer is refilled, not read stale
    # Past the exploration phase (epsilon 0): the greedy actions, those of the eager forward.
    config = dqn.Config(
        net_arch=[16], total_timesteps=100, learning_starts=0, exploration_final_eps=0.0
    )
    q = dqn_stack(config)
    for _ in range(3):
        actions, _ = q.act(obs, 50, [gym.spaces.Discrete(3)] * len(SEEDS))
        assert np.array_equal(actions, q.greedy(obs))
        obs = obs.flip(0)


# --- a replayed update's host side ----------------------------------------------------------


class FakeGraph:
    """torch.cuda.CUDAGraph on the CPU for the host side of CapturedStep: a capture runs the
    step's Python (as a real one does, once) and here its arithmetic too; a replay runs nothing
    (the device work a real one would do is not what this checks) and is counted."""

    replays = 0

    def replay(self) -> None:
        FakeGraph.replays += 1


@pytest.fixture
def fake_cuda(monkeypatch):
    """CapturedStep's CUDA path on the CPU: fake streams and graphs, and a stack's CapturedStep
    enabled whatever its device (the stack itself stays on the CPU)."""
    stream = types.SimpleNamespace(wait_stream=lambda other: None)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: stream)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", lambda g: contextlib.nullcontext())
    monkeypatch.setattr(FakeGraph, "replays", 0)

    class OnCuda(graphs.CapturedStep):
        def __init__(
            self, step, device, enabled=True, warmup=graphs.WARMUP_STEPS, host_effects=None
        ):
            super().__init__(step, "cuda", enabled, warmup, host_effects)

    monkeypatch.setattr(stacked, "CapturedStep", OnCuda)


def host_side(optimizers) -> dict:
    """What the host keeps of the optimizers' steps: RoleOptimizer.steps, integer step counts."""
    return {
        role: (o.inner.steps, [s.get("step") for s in o.inner.inner.state.values()])
        for role, o in optimizers.items()
    }


@pytest.mark.parametrize("kind", ["sac", "dqn"])
def test_replayed_updates_advance_the_host_side_as_eager_updates(fake_cuda, kind):
    # Graph-safe rows without device step counts (torch's capturable steps need CUDA): SGD has
    # no step count; rmsprop_deepmind keeps an integer one on the host, which replays advance.
    if kind == "sac":
        replay, make = filled_replay((2,), torch.float32), sac_stack
        specs = {role: OptimizerSpec("rmsprop_deepmind", 1e-3) for role in SAC_SPECS}
        specs["critic"] = OptimizerSpec("sgd", 1e-2, kwargs={"momentum": 0.9}, clip_grad_norm=1)
    else:
        replay, make = filled_replay((), torch.long), dqn_stack
        specs = {"q": OptimizerSpec("rmsprop_deepmind", 1e-3, clip_grad_norm=1.0)}
    replayed, eager = make(), make()
    replayed_opt = stacked.build_optimizers(replayed, specs)
    eager_opt = stacked.build_optimizers(eager, specs)
    replayed.graphs = "on"
    calls = graphs.WARMUP_STEPS + 5
    for _ in range(calls):
        replayed.update(replay, replayed_opt)
        eager.update(replay, eager_opt)
    step = replayed._captured_steps["update"][2]
    assert step.captured and FakeGraph.replays == calls - graphs.WARMUP_STEPS
    assert host_side(replayed_opt) == host_side(eager_opt)
    steps = [n for role in replayed_opt for n in host_side(replayed_opt)[role][1]]
    assert steps and all(n == calls for n in steps if n is not None)
    # The losses read are the step's static outputs, the ones each replay overwrites.
    assert all(replayed.last_losses[r] is step.outputs[r] for r in step.outputs)


def test_a_replaced_replay_storage_is_captured_anew(fake_cuda, monkeypatch):
    """agents/replay.py's frame ring may grow into new tensors (``storage_version`` + 1): a
    graph that read the old ones must not be replayed; the step is warmed up and captured
    again, and the host side still counts every update."""
    version = [0]
    monkeypatch.setattr(Replay, "storage_version", property(lambda self: version[0]), raising=False)
    replay, algo = filled_replay((), torch.long), dqn_stack()
    specs = {"q": OptimizerSpec("rmsprop_deepmind", 1e-3)}
    optimizers = stacked.build_optimizers(algo, specs)
    algo.graphs = "on"
    for _ in range(graphs.WARMUP_STEPS + 2):
        algo.update(replay, optimizers)
    first = algo._captured_steps["update"][2]
    assert first.captured and FakeGraph.replays == 2
    version[0] = 1
    algo.update(replay, optimizers)
    second = algo._captured_steps["update"][2]
    assert second is not first and second.calls == 1 and not second.captured
    for _ in range(graphs.WARMUP_STEPS + 1):
        algo.update(replay, optimizers)
    assert second.captured and FakeGraph.replays == 4
    assert optimizers["q"].inner.steps == 2 * graphs.WARMUP_STEPS + 4


# --- whether the update is a graph -----------------------------------------------------------


def test_the_stack_says_why_its_update_is_not_a_graph():
    algo = sac_stack()
    stacked.build_optimizers(algo, SAC_SPECS)
    assert algo.graphs == "off: not CUDA"
    kfac = {**SAC_SPECS, "critic": OptimizerSpec("kfac", 0.05, kwargs={"update_freq": 3})}
    stacked.build_optimizers(algo, kfac)
    assert algo.graphs.startswith("off: critic: optimizer 'kfac' keeps host-side step state")
    scheduled = {**SAC_SPECS, "actor": OptimizerSpec("adam", 1e-3, schedule=ScheduleSpec("step", {"step_size": 5}))}  # fmt: skip
    assert stacked.graph_setting(algo.config, scheduled, "cuda") == (
        "off: actor: schedule 'step' changes the learning rate from the host"
    )
    slow = {"q": OptimizerSpec("adam", 1e-3, lookahead=LookaheadSpec())}
    assert stacked.graph_setting(dqn.Config(), slow, "cuda").startswith("off: q: lookahead")
    assert stacked.graph_setting(dqn.Config(), DQN_SPECS, "cuda") == "on"
    assert stacked.graph_setting(dqn.Config(cuda_graphs=False), DQN_SPECS, "cuda") == (
        "off: task.cuda_graphs false"
    )


def test_the_optimizers_are_capturable_exactly_when_the_update_is_a_graph(monkeypatch):
    algo = dqn_stack()
    stacked.build_optimizers(algo, DQN_SPECS)
    assert algo.graphs != "on" and not algo.graphs.startswith("on")
    (optimizer,) = stacked.build_optimizers(algo, DQN_SPECS).values()
    assert optimizer.inner.param_groups[0]["capturable"] is False
    monkeypatch.setattr(stacked, "graph_setting", lambda config, specs, device: "on")
    (optimizer,) = stacked.build_optimizers(algo, DQN_SPECS).values()
    assert algo.graphs == "on" and optimizer.inner.param_groups[0]["capturable"] is True


def test_a_graph_runs_checkpoint_resumes_on_the_cpu_with_its_own_optimizer_flags():
    """A checkpoint's optimizer groups carry the saving run's ``capturable`` (a graph run's:
    True), which torch's load_state_dict would adopt and then refuse to step on the CPU."""
    replay = filled_replay((), torch.long)
    saved, algo = dqn_stack(), dqn_stack()
    saved_opt = stacked.build_optimizers(saved, DQN_SPECS)
    for _ in range(3):
        saved.update(replay, saved_opt)
    states = [stacked._seed_optimizer_states(saved_opt, saved, i) for i in range(len(SEEDS))]
    for state in states:  # as a CUDA graph run saves them
        state["q"]["optimizer"]["param_groups"][0]["capturable"] = True
    optimizers = stacked.build_optimizers(algo, DQN_SPECS)
    stacked._load_optimizer_states(optimizers, algo, states)
    torch_adam = optimizers["q"].inner.inner
    assert torch_adam.param_groups[0]["capturable"] is False
    assert all(s["step"].device.type == "cpu" for s in torch_adam.state.values())
    assert [int(s["step"]) for s in torch_adam.state.values()] == [3] * len(torch_adam.state)
    algo.update(replay, optimizers)  # torch: "If capturable=True, ... supported devices"
    assert [int(s["step"]) for s in torch_adam.state.values()] == [4] * len(torch_adam.state)


RUN_YAML = """
description: details.cuda_graphs
trainer: {trainer}
task: {{env_id: {env}, net_arch: [8], batch_size: 8, buffer_size: 100, learning_starts: 20,
       total_timesteps: 40, eval_every: 40, eval_episodes: 1, final_evals: 1}}
budgets: {{smoke: {{}}, quick: {{}}, full: {{}}}}
arms:
  {arms}
seeds: 2
metrics: [eval/return_final]
claims: []
"""


@pytest.mark.parametrize(
    ("trainer", "env", "arm", "want"),
    [
        ("dqn", "CartPole-v1", "adam: {q: {optimizer: adam, lr: 1.0e-3}}", "off: not CUDA"),
        (
            "sac",
            "Pendulum-v1",
            "kfac: {actor: {optimizer: adam, lr: 1.0e-3}, critic: {optimizer: kfac, lr: 0.05},"
            " entropy: {optimizer: adam, lr: 1.0e-3}}",
            "off: critic: optimizer 'kfac' keeps host-side step state",
        ),
    ],
    ids=["dqn-cpu", "sac-kfac"],
)
def test_each_seeds_result_records_whether_its_update_was_a_graph(
    tmp_path, trainer, env, arm, want
):
    path = tmp_path / "experiment.yaml"
    path.write_text(RUN_YAML.format(trainer=trainer, env=env, arms=arm))
    runs = expand(load_experiment(str(path), "smoke"))
    Store(tmp_path / "r").register(runs)
    execute(WorkerJob(list(runs), str(tmp_path / "r"), "cpu", 1, stack="bmm"))
    for run in runs:
        result = json.loads((Store(tmp_path / "r").run_dir(run) / "result.json").read_text())
        assert result["status"] == "done"
        assert result["details"]["cuda_graphs"].startswith(want)
