"""Stacked SAC and DQN seeds (agents/stacked.py, ``suite run --stack-seeds``): seed i of a stack
trains as a stack of one seed i; each role's spec (class, lr, schedule, clipping) is in force;
one diverging seed is recorded while the others go on; an interrupted stack resumes exactly;
optimizers that would mix seeds, and seeds whose settings differ, are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agents import stacked
from suite.cli import main
from suite.config import expand, load_experiment
from suite.result import RunSpec
from suite.run.context import RunContext
from suite.run.stacking import clip_per_seed
from suite.run.worker import WorkerJob, execute
from suite.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")

SAC_YAML = """
description: stacked SAC test
trainer: sac
task: {env_id: Pendulum-v1, net_arch: [16, 16], batch_size: 16, buffer_size: 1000,
       learning_starts: 40, total_timesteps: 160, eval_every: 80, eval_episodes: 1,
       final_evals: 1}
budgets: {smoke: {}, quick: {}, full: {}}
arms:
  mixed:
    actor: {optimizer: adam, lr: 1.0e-3, schedule: {name: step, kwargs: {step_size: 50, gamma: 0.5}}}
    critic: {optimizer: sgd, lr: 1.0e-2, kwargs: {momentum: 0.9}, clip_grad_norm: 0.5}
    entropy: {optimizer: adam, lr: 3.0e-3}
  kfac:
    actor: {optimizer: adam, lr: 1.0e-3}
    critic: {optimizer: kfac, lr: 0.05, kwargs: {update_freq: 3}}
    entropy: {optimizer: adam, lr: 1.0e-3}
seeds: 3
metrics: [eval/return_final]
claims: []
"""

DQN_YAML = """
description: stacked DQN test
trainer: dqn
task: {env_id: CartPole-v1, net_arch: [16, 16], batch_size: 16, buffer_size: 1000,
       learning_starts: 40, train_freq: 4, gradient_steps: 2, target_update_interval: 20,
       exploration_fraction: 0.5, total_timesteps: 160, eval_every: 80, eval_episodes: 2,
       final_evals: 1}
budgets: {smoke: {}, quick: {}, full: {}}
arms:
  adam: {q: {optimizer: adam, lr: 1.0e-3, clip_grad_norm: 1.0}}
seeds: 3
metrics: [eval/return_final]
claims: []
"""


def experiment_runs(tmp_path: Path, text: str, arm: str, seeds: int = 3) -> list[RunSpec]:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return expand(load_experiment(str(path), "smoke", seeds=seeds, arms=[arm]))


def stack(runs: list[RunSpec], results: Path) -> list[dict]:
    Store(results).register(runs)
    execute(WorkerJob([run.to_dict() for run in runs], str(results), "cpu", 1, stack="bmm"))
    return [json.loads((Store(results).run_dir(r) / "result.json").read_text()) for r in runs]


def assert_close(got: dict, want: dict, rtol: float = 1e-4) -> None:
    assert got["status"] == want["status"] == "done"
    assert got["metrics"].keys() == want["metrics"].keys()
    for key, value in want["metrics"].items():
        assert got["metrics"][key] == pytest.approx(value, rel=rtol, abs=1e-6), key
    assert got["curves"].keys() == want["curves"].keys()
    for name, curve in want["curves"].items():
        assert [step for step, _ in got["curves"][name]] == [step for step, _ in curve], name
        values = [value for _, value in curve]
        assert [v for _, v in got["curves"][name]] == pytest.approx(values, rel=rtol, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "arm"),
    [(SAC_YAML, "mixed"), (SAC_YAML, "kfac"), (DQN_YAML, "adam")],
    ids=["sac", "sac-kfac", "dqn"],
)
def test_each_seed_of_a_stack_trains_as_a_stack_of_one(tmp_path, text, arm):
    runs = experiment_runs(tmp_path, text, arm)
    together = stack(runs, tmp_path / "together")
    for index, run in enumerate(runs):
        (alone,) = stack([run], tmp_path / f"alone{index}")
        assert_close(together[index], alone)
        assert together[index]["details"]["stacked"]["seeds"] == 3
        assert alone["details"]["stacked"]["seeds"] == 1
        assert "not stable-baselines3" in alone["details"]["implementation"]
        if "ent_coef_final" in alone["details"]:
            assert together[index]["details"]["ent_coef_final"] == pytest.approx(
                alone["details"]["ent_coef_final"], rel=1e-4
            )
    # The lone trainer's metric names, and seeds that differ from one another.
    assert {"eval/return_final", "eval/return_auc"} <= together[0]["metrics"].keys()
    assert {"eval/return", "eval/return_std", "eval/episode_length"} <= together[0]["curves"].keys()
    assert together[0]["curves"]["eval/return"] != together[1]["curves"]["eval/return"]


def test_each_role_trains_with_its_own_spec(tmp_path):
    (result,) = stack(experiment_runs(tmp_path, SAC_YAML, "mixed", seeds=1), tmp_path / "r")
    details = result["details"]
    # 120 updates: steps 41..160, one gradient step each (learning_starts 40, train_freq 1).
    assert [details[f"{r}_optimizer_steps"] for r in ("actor", "critic", "entropy")] == [120] * 3
    assert (details["actor_optimizer"], details["critic_optimizer"]) == ("Adam", "SGD")
    assert details["entropy_optimizer"] == "Adam"
    # The actor's step schedule halved its lr at steps 50 and 100; the others kept theirs.
    assert details["actor_lr_final"] == pytest.approx(2.5e-4)
    assert details["critic_lr_final"] == pytest.approx(1.0e-2)
    assert details["entropy_lr_final"] == pytest.approx(3.0e-3)


def test_clipping_is_per_seed():
    params = [torch.tensor([[3.0, 4.0], [0.3, 0.4]], requires_grad=True)]
    params[0].grad = params[0].detach().clone()
    norms = clip_per_seed(params, 2, max_norm=1.0)
    assert norms.tolist() == pytest.approx([5.0, 0.5])
    # Seed 0 (norm 5) is scaled to norm 1; seed 1 (norm 0.5) is left as it was.
    assert params[0].grad.flatten().tolist() == pytest.approx([0.6, 0.8, 0.3, 0.4], rel=1e-5)


def test_a_diverging_seed_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    runs = experiment_runs(tmp_path, DQN_YAML, "adam", seeds=2)
    (alone,) = stack(runs[:1], tmp_path / "alone")
    original = stacked.DqnStack.update

    def update_then_poison_seed_one(self, replay, optimizers):
        original(self, replay, optimizers)
        if self.seeds == 2:
            with torch.no_grad():
                self.q.weights[0][1].fill_(float("nan"))

    monkeypatch.setattr(stacked.DqnStack, "update", update_then_poison_seed_one)
    together = stack(runs, tmp_path / "together")
    assert together[1]["status"] == "diverged" and together[1]["diverged_at_step"] == 80
    assert_close(together[0], alone)


@pytest.mark.parametrize("arm", ["mixed", "kfac"])
def test_an_interrupted_stack_resumes_exactly(tmp_path, monkeypatch, arm):
    runs = experiment_runs(tmp_path, SAC_YAML, arm, seeds=2)
    expected = stack(runs, tmp_path / "uninterrupted")
    original = RunContext.progress

    def progress(self, current: int, total: int) -> None:
        if current >= 100 and (self.run_dir / stacked.CHECKPOINT).exists():
            raise KeyboardInterrupt
        original(self, current, total)

    with monkeypatch.context() as patch:
        patch.setattr(RunContext, "progress", progress)
        with pytest.raises(KeyboardInterrupt):
            stack(runs, tmp_path / "interrupted")
    store = Store(tmp_path / "interrupted")
    assert all(not (store.run_dir(r) / "result.json").exists() for r in runs)
    torch.manual_seed(987_654)  # a fresh process: nothing may rely on the global generator
    resumed = stack(runs, tmp_path / "interrupted")
    for got, want in zip(resumed, expected, strict=True):
        assert got["metrics"] == want["metrics"]
        assert got["curves"] == want["curves"]


def test_seeds_of_a_stack_must_share_their_settings(tmp_path):
    first, second = experiment_runs(tmp_path, DQN_YAML, "adam", seeds=2)
    data = second.to_dict()
    data.pop("run_id")
    data["task"] = {**second.task, "gamma": 0.9}
    changed = RunSpec(**data)
    contexts = []
    for index, run in enumerate((first, changed)):
        (tmp_path / f"run{index}").mkdir()
        contexts.append(RunContext(run, tmp_path / f"run{index}", "cpu"))
    with pytest.raises(ValueError, match="seeds 0 and 1 differ in task"):
        stacked.check_same_settings(contexts)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--arms", "mixed", "--set", "arms.mixed.actor.optimizer=lamb"],
         "actor: optimizer 'lamb' cannot train stacked seeds"),
        (["--arms", "kfac", "--set", "arms.kfac.critic.lookahead={k: 5, alpha: 0.5}"],
         "critic: Lookahead around K-FAC cannot train stacked seeds"),
    ],
)  # fmt: skip
def test_optimizers_that_mix_seeds_are_one_line_and_run_nothing(
    tmp_path, capsys, overrides, message
):
    path = tmp_path / "experiment.yaml"
    path.write_text(SAC_YAML)
    results = tmp_path / "results"
    code = main(["run", str(path), "--stack-seeds", "--results", str(results), *overrides])
    stderr = capsys.readouterr().err
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not (results / "index.sqlite").exists()


def test_the_minatar_q_network_is_agents_networks_one_per_seed():
    import gymnasium as gym

    from agents import dqn
    from agents.networks import MinAtarCNN

    space = gym.spaces.Box(0, 1, (10, 10, 4), dtype=bool)
    config = dqn.Config(network="minatar_cnn", net_arch=[])
    generators = [torch.Generator().manual_seed(seed) for seed in (3, 4)]
    q = stacked.DqnStack(config, space, gym.spaces.Discrete(3), generators, "cpu")
    frames = torch.rand(2, 5, 10, 10, 4) > 0.5
    values = q.q_values(frames)
    for i in range(2):
        # The lone network: agents/networks.py's extractor with a linear head, seed i's weights.
        extractor, head = MinAtarCNN(space), torch.nn.Linear(128, 3)
        with torch.no_grad():
            extractor.conv[0].weight.copy_(q.conv.weight[i])
            extractor.conv[0].bias.copy_(q.conv.bias[i])
            extractor.linear[1].weight.copy_(q.q.weights[0][i, 0].T)
            extractor.linear[1].bias.copy_(q.q.biases[0][i, 0, 0])
            head.weight.copy_(q.q.weights[1][i, 0].T)
            head.bias.copy_(q.q.biases[1][i, 0, 0])
            expected = head(extractor(frames[i]))
        torch.testing.assert_close(values[i], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("kfac", {"update_freq": 3}), ("kfac_adam", {"update_freq": 2, "damping": 1e-2})],
)
def test_stacked_kfac_trains_each_seed_as_the_lone_kfac(name, kwargs):
    """Two seeds x two members (SAC's twin critics, one optimizer per seed, so the KL clip sums
    over both) against suite/optimizers/kfac.py on nn.Linear modules with the same weights."""
    from agents import stacked_kfac
    from suite.optimizers import OptimizerSpec, optimizer_class

    spec = OptimizerSpec(optimizer=name, lr=0.05 if name == "kfac" else 1e-2, kwargs=kwargs)
    generators = [torch.Generator().manual_seed(seed) for seed in (0, 1)]
    mlp = stacked.StackedMLP([5, 8, 3], 2, generators, "cpu")
    mlp.capture.enabled = True
    optimizer = stacked_kfac.build_kfac_role("critic", spec, [mlp], 2)
    lone = []
    for s in range(2):
        members = []
        for m in range(2):
            model = torch.nn.Sequential(
                torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
            )
            with torch.no_grad():
                for layer, index in ((model[0], 0), (model[2], 1)):
                    layer.weight.copy_(mlp.weights[index][s, m].T)
                    layer.bias.copy_(mlp.biases[index][s, m, 0])
            members.append(model)
        params = [p for model in members for p in model.parameters()]
        cls = optimizer_class(name)
        lone.append((members, cls(params, lr=spec.lr, modules=members, **kwargs)))
    data = torch.Generator().manual_seed(9)
    for _ in range(7):
        x, y = torch.randn(2, 16, 5, generator=data), torch.randn(2, 16, 3, generator=data)
        with mlp.capture.capturing():
            out = mlp.forward(x[:, None].expand(-1, 2, -1, -1))
        losses = (out - y[:, None]).pow(2).mean((2, 3)).sum(1)
        optimizer.zero_grad()
        losses.sum().backward()
        optimizer.step()
        for s, (members, lone_optimizer) in enumerate(lone):
            loss = sum((model(x[s]) - y[s]).pow(2).mean() for model in members)
            lone_optimizer.zero_grad()
            loss.backward()
            lone_optimizer.step()
    for s, (members, _) in enumerate(lone):
        for m, model in enumerate(members):
            for layer, index in ((model[0], 0), (model[2], 1)):
                torch.testing.assert_close(mlp.weights[index][s, m].detach(), layer.weight.T)
                torch.testing.assert_close(mlp.biases[index][s, m, 0].detach(), layer.bias)
    # It trained: the weights moved from their initial values.
    assert not torch.allclose(mlp.weights[0].detach(), torch.stack(
        [stacked._uniform((2, 5, 8), 1 / 5**0.5, torch.Generator().manual_seed(s), "cpu")
         for s in (0, 1)]))  # fmt: skip
