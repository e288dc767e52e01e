"""Stacked SAC and DQN seeds (agents/stacked.py, ``suite run --stack-seeds``): seed i of a stack
trains as a stack of one seed i; each role's spec (class, lr, schedule, clipping) is in force;
one diverging seed is recorded while the others go on; an interrupted stack resumes exactly;
optimizers that would mix seeds, and seeds whose settings differ, are refused; the Nature CNN
is SB3's, per seed; a stack's checkpoint run later without --stack-seeds resumes as a stack of
one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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

# A real ALE Breakout with the suite's Atari preprocessing (agents/envs.py: v5's own frame skip
# and sticky actions, SB3's AtariWrapper, 4 stacked 84x84 frames), small enough for the CPU.
ATARI_YAML = """
description: stacked Nature CNN test
trainer: dqn
task: {env_id: ALE/Breakout-v5, network: nature_cnn, net_arch: [], batch_size: 8,
       buffer_size: 300, learning_starts: 100, train_freq: 4, gradient_steps: 1,
       target_update_interval: 50, exploration_fraction: 0.5, total_timesteps: 300,
       eval_every: 150, eval_episodes: 1, final_evals: 1, max_episode_steps: 200}
budgets: {smoke: {}, quick: {}, full: {}}
arms:
  adam: {q: {optimizer: adam, lr: 1.0e-4}}
seeds: 3
metrics: [eval/return_final]
claims: []
"""


# What a finished run's directory keeps: its checkpoint is dropped (suite/run/context.py).
FINISHED_RUN_FILES = ["config.json", "log.txt", "result.json"]


def experiment_runs(tmp_path: Path, text: str, arm: str, seeds: int = 3) -> list[RunSpec]:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return expand(load_experiment(str(path), "smoke", seeds=seeds, arms=[arm]))


def stack(runs: list[RunSpec], results: Path) -> list[dict]:
    Store(results).register(runs)
    execute(WorkerJob(list(runs), str(results), "cpu", 1, stack="bmm"))
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
    # Finished, each seed's checkpoint and pickled envs are gone (saved, then resumed from).
    for run in runs:
        assert sorted(p.name for p in store.run_dir(run).iterdir()) == FINISHED_RUN_FILES


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
            extractor.conv[0].weight.copy_(q.conv.weights[0][i])
            extractor.conv[0].bias.copy_(q.conv.biases[0][i])
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


# --- the Nature CNN (Atari) -----------------------------------------------------------------

ATARI_SPACE = ((4, 84, 84), "uint8")  # agents/envs.py: FrameStackObservation of 84x84 frames


def nature_stack(seeds: tuple[int, ...], actions: int = 4):
    import gymnasium as gym

    from agents import dqn

    space = gym.spaces.Box(0, 255, ATARI_SPACE[0], dtype=np.uint8)
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    config = dqn.Config(network="nature_cnn", net_arch=[])
    return stacked.DqnStack(config, space, gym.spaces.Discrete(actions), generators, "cpu")


def copy_nature_weights(q, i: int, convs: list, linears: list) -> None:
    """Seed i's stacked weights into torch modules (Conv2d weights are (out, in, k, k) in both;
    Linear weights are (out, in), the stack's (in, out))."""
    with torch.no_grad():
        for index, conv in enumerate(convs):
            conv.weight.copy_(q.conv.weights[index][i])
            conv.bias.copy_(q.conv.biases[index][i])
        for index, linear in enumerate(linears):
            linear.weight.copy_(q.q.weights[index][i, 0].T)
            linear.bias.copy_(q.q.biases[index][i, 0, 0])


def test_the_nature_cnn_is_a_plain_torch_nature_cnn_per_seed():
    from torch import nn

    q = nature_stack((3, 4, 5))
    frames = torch.randint(0, 256, (3, 6, *ATARI_SPACE[0]), dtype=torch.uint8)
    values = q.q_values(frames)
    assert values.shape == (3, 6, 4)
    for i in range(3):
        # SB3's NatureCNN (Mnih et al. 2015) and a linear Q head (net_arch []), on frames / 255.
        net = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(), nn.Linear(512, 4),
        )  # fmt: skip
        copy_nature_weights(q, i, [net[0], net[2], net[4]], [net[7], net[9]])
        with torch.no_grad():
            expected = net(frames[i].float() / 255.0)
        torch.testing.assert_close(values[i], expected, rtol=1e-5, atol=1e-5)
    # Each seed's weights are its own draws: seed 3's in a stack of three are a stack of one's.
    alone = nature_stack((3,)).conv.weights[0]
    assert torch.equal(alone[0], q.conv.weights[0][0])
    assert not torch.equal(q.conv.weights[0][0], q.conv.weights[0][1])


def test_the_nature_cnn_gets_what_sb3s_dqn_feeds_its_network(tmp_path):
    """SB3's own DQN on the suite's Atari env: no transposition (the frames are channels first
    already) and uint8 frames divided by 255 inside its Q-network (preprocess_obs)."""
    from stable_baselines3.common.vec_env import VecTransposeImage, is_vecenv_wrapped

    from agents import dqn
    from agents.common import make_env
    from suite.optimizers import OptimizerSpec

    env = make_env("ALE/Breakout-v5", 0)
    assert env.observation_space.shape == ATARI_SPACE[0]
    assert env.observation_space.dtype.name == ATARI_SPACE[1]
    config = dqn.Config(env_id="ALE/Breakout-v5", network="nature_cnn", net_arch=[], buffer_size=10)
    model = dqn.build(config, {"q": OptimizerSpec(optimizer="adam", lr=1e-4)}, env, 0, "cpu")
    assert not is_vecenv_wrapped(model.get_env(), VecTransposeImage)
    q = nature_stack((7,), int(env.action_space.n))
    extractor, head = model.q_net.features_extractor, model.q_net.q_net
    copy_nature_weights(q, 0, [extractor.cnn[i] for i in (0, 2, 4)], [extractor.linear[0], head[0]])
    frames = []
    obs, _ = env.reset()
    for step in range(40):
        frames.append(obs)
        obs, *_ = env.step(step % 4)
    frames = torch.as_tensor(np.stack(frames))
    with torch.no_grad():
        expected = model.q_net(frames)  # uint8 in: SB3 scales it itself
    torch.testing.assert_close(q.q_values(frames[None].float())[0], expected, rtol=1e-5, atol=1e-5)


def test_each_seed_of_a_nature_cnn_stack_trains_as_a_stack_of_one(tmp_path):
    runs = experiment_runs(tmp_path, ATARI_YAML, "adam")
    together = stack(runs, tmp_path / "together")
    for index, run in enumerate(runs):
        (alone,) = stack([run], tmp_path / f"alone{index}")
        assert_close(together[index], alone, rtol=1e-4)
        assert together[index]["details"]["network"] == "nature_cnn"
        # 50 updates (steps 104..300, train_freq 4), 2 evaluations, each over a whole game.
        assert together[index]["details"]["q_optimizer_steps"] == 50
        assert [s for s, _ in together[index]["curves"]["eval/return"]] == [150, 300]
    assert (
        together[0]["curves"]["eval/episode_length"] != together[1]["curves"]["eval/episode_length"]
    )


def test_the_replay_keeps_atari_frames_as_bytes_and_next_frames_alone():
    import gymnasium as gym

    space = gym.spaces.Box(0, 255, ATARI_SPACE[0], dtype=np.uint8)
    replay = stacked.Replay(2, 10, space, (), torch.long, "cpu", frame_stacked=True)
    assert replay.ring.frames.dtype == torch.uint8
    # Each 84 x 84 frame once (agents/replay.py FrameRing: 10 transitions' frames, a reserve of
    # 10 // 16 and one stack), per transition 5 int32 frame positions, action (int64), reward
    # and done (float32); tests/test_replay.py checks the samples against whole stacks.
    assert replay.bytes_per_transition() == -(-(15 * 84 * 84 + 10 * (20 + 8 + 4 + 4)) // 10)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 6, 84, 84), dtype=np.uint8)  # two seeds' frame streams
    for t in range(2):
        obs, next_obs = frames[:, t : t + 4], frames[:, t + 1 : t + 5]
        replay.add(obs, np.array([t, t]), np.ones(2), next_obs, np.zeros(2))
    obs, actions, _, next_obs, _ = replay.sample(torch.tensor([[1, 0], [0, 1]]))
    assert actions.tolist() == [[1, 0], [0, 1]]
    assert torch.equal(next_obs[0, 0], torch.as_tensor(frames[0, 2:6]).float())
    assert torch.equal(next_obs[1, 0], torch.as_tensor(frames[1, 1:5]).float())
    assert torch.equal(obs[1, 1], torch.as_tensor(frames[1, 1:5]).float())
    with pytest.raises(ValueError, match="not the shifted one"):
        replay.add(frames[:, :4], np.zeros(2), np.ones(2), frames[:, :4], np.zeros(2))


def test_an_unstackable_q_network_is_one_line_naming_the_choices():
    import gymnasium as gym

    from agents import dqn
    from suite.errors import ConfigError

    space = gym.spaces.Box(0, 1, (4,))
    config = dqn.Config(network="mlp_trunk")
    generators = [torch.Generator().manual_seed(0)]
    with pytest.raises(ConfigError) as error:
        stacked.DqnStack(config, space, gym.spaces.Discrete(2), generators, "cpu")
    message = str(error.value)
    valid = "(valid: mlp, minatar_cnn, nature_cnn, dopamine_minatar)"
    assert "'mlp_trunk'" in message and valid in message
    assert "\n" not in message


def test_an_interrupted_atari_stack_resumes_with_fresh_envs(tmp_path, monkeypatch):
    """Atari envs cannot be pickled (as for the lone trainer): the stack resumes from its
    checkpoint with its envs restarted, and says so in the log."""
    runs = experiment_runs(tmp_path, ATARI_YAML, "adam", seeds=2)
    expected = stack(runs, tmp_path / "uninterrupted")
    interrupt_after(monkeypatch, 200, lambda: stack(runs, tmp_path / "interrupted"))
    resumed = stack(runs, tmp_path / "interrupted")
    for got, want, run in zip(resumed, expected, runs, strict=True):
        assert got["status"] == "done"
        # The evaluation before the interruption is the checkpoint's.
        assert got["curves"]["eval/return"][0] == want["curves"]["eval/return"][0]
        log = (Store(tmp_path / "interrupted").run_dir(run) / "log.txt").read_text()
        assert "environments not saved" in log and "restart from a reset" in log


# --- a stack's checkpoint, resumed without --stack-seeds -----------------------------------


def interrupt_after(monkeypatch, step: int, run, checkpoint: str = stacked.CHECKPOINT) -> None:
    """Run ``run`` until it passes ``step`` with its ``checkpoint`` written (a stack's by
    default), then interrupt."""
    original = RunContext.progress

    def progress(self, current: int, total: int) -> None:
        if current >= step and (self.run_dir / checkpoint).exists():
            raise KeyboardInterrupt
        original(self, current, total)

    with monkeypatch.context() as patch:
        patch.setattr(RunContext, "progress", progress)
        with pytest.raises(KeyboardInterrupt):
            run()


def test_a_stack_checkpoint_resumes_seed_by_seed_as_a_stack_of_one(tmp_path, monkeypatch):
    runs = experiment_runs(tmp_path, DQN_YAML, "adam", seeds=2)
    expected = stack(runs, tmp_path / "uninterrupted")
    results = tmp_path / "interrupted"
    interrupt_after(monkeypatch, 100, lambda: stack(runs, results))
    store = Store(results)
    assert all((store.run_dir(r) / stacked.CHECKPOINT).exists() for r in runs)
    assert not any((store.run_dir(r) / "result.json").exists() for r in runs)
    for run, want in zip(runs, expected, strict=True):
        # Without --stack-seeds: the lone worker path, one run per process.
        (status,) = execute(WorkerJob([run], str(results), "cpu", 1))
        got = json.loads((store.run_dir(run) / "result.json").read_text())
        assert status == "done"
        assert_close(got, want)
        assert "not stable-baselines3" in got["details"]["implementation"]
        assert got["details"]["stacked"]["seeds"] == 1
        log = (store.run_dir(run) / "log.txt").read_text()
        assert "resuming with the stacked implementation" in log
        assert not (store.run_dir(run) / "checkpoint.pt").exists()  # SB3 never ran


def test_a_lone_checkpoint_newer_than_a_stack_one_resumes_lone(tmp_path):
    import os

    run = experiment_runs(tmp_path, DQN_YAML, "adam", seeds=1)[0]
    (tmp_path / "run").mkdir()
    ctx = RunContext(run, tmp_path / "run", "cpu")
    assert stacked.resume_method(ctx) is None
    (ctx.run_dir / stacked.CHECKPOINT).write_bytes(b"")
    assert stacked.resume_method(ctx) == "bmm"
    (ctx.run_dir / stacked.LONE_CHECKPOINT).write_bytes(b"")
    os.utime(ctx.run_dir / stacked.CHECKPOINT, (1, 1))
    assert stacked.resume_method(ctx) is None
    ctx.close()


def test_a_lone_checkpoint_goes_on_lone_inside_a_stacked_job(tmp_path, monkeypatch):
    # The reverse case: seed 0 ran lone (SB3) and was interrupted after its checkpoint; the grid
    # is then run with --stack-seeds. Seed 0 must finish as its lone run would have (not start
    # afresh in the stack), seed 1 trains as a stack of one.
    runs = experiment_runs(tmp_path, DQN_YAML, "adam", seeds=2)
    alone = tmp_path / "alone"
    Store(alone).register(runs[:1])
    execute(WorkerJob([runs[0]], str(alone), "cpu", 1))
    want_lone = json.loads((Store(alone).run_dir(runs[0]) / "result.json").read_text())
    (want_stacked,) = stack(runs[1:], tmp_path / "stacked")
    results = tmp_path / "mixed"
    Store(results).register(runs)
    lone = WorkerJob([runs[0]], str(results), "cpu", 1)
    interrupt_after(monkeypatch, 100, lambda: execute(lone), stacked.LONE_CHECKPOINT)
    got_lone, got_stacked = stack(runs, results)
    assert_close(got_lone, want_lone)
    assert "not stable-baselines3" not in got_lone["details"].get("implementation", "")
    log = (Store(results).run_dir(runs[0]) / "log.txt").read_text()
    assert "resuming as a lone stable-baselines3 run" in log and "resumed" in log
    assert not (Store(results).run_dir(runs[0]) / stacked.CHECKPOINT).exists()
    assert_close(got_stacked, want_stacked)
    assert got_stacked["details"]["stacked"]["seeds"] == 1
