"""Resume equivalence: a run killed mid-way and resumed from its checkpoint ends with the same
metrics and curves as the same run left alone (CPU).

The harness is generic: ``run_phase`` trains any trainer of suite/trainers.py in a fresh spawned
process (as the runner does), optionally SIGKILLing itself at the first ``ctx.progress`` call at
or after step ``kill_at`` once a checkpoint exists; ``assert_resume_equivalent`` runs it
uninterrupted, then killed, then resumed, and compares. A trainer is covered by one parametrized
case: a task dict, role -> spec dicts, a ``kill_at`` after its first checkpoint and a tolerance
(0: exact).

What DQN restores to be exact (agents/common.py ``save_sb3_checkpoint``): model, target network
and the role optimizer (state_dict: inner state incl. K-FAC factors, schedule, Lookahead) via
SB3's zip, the replay buffer, ``num_timesteps``/``_n_calls``/``_last_obs``/exploration rate (SB3's
zip data), the training and evaluation environments mid-episode (pickled), the action space's
generator, and python/numpy/torch global generators (``ctx.save_checkpoint``). The checkpoint is
written between rollouts (``_on_rollout_start``), so no transition or update is in flight.

SAC restores the same, with three role optimizers (actor, critic, entropy coefficient) and the
log entropy coefficient in the zip. PPO has no replay buffer: its checkpoint falls at a rollout
boundary (after ``train()``, before the next ``collect_rollouts`` resets the rollout buffer), so
nothing collected is lost; with ``normalize`` the VecNormalize statistics come from its pickle and
the discounted-return accumulator of the reward scaling, which that pickle drops, from the
environments' snapshot. All cases are exact (rel_tol 0).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from suite.result import RunSpec
from suite.run.context import RunContext
from suite.store import write_json_atomic


class KillAt(RunContext):
    """A RunContext whose process kills itself (SIGKILL: nothing runs after it) at ``kill_at``."""

    def __init__(self, *args, kill_at: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kill_at = kill_at

    def progress(self, step: int, total: int) -> None:
        checkpointed = (self.run_dir / "checkpoint.pt").exists()
        if self.kill_at is not None and step >= self.kill_at and checkpointed:
            self.log(f"test: SIGKILL at step {step}")
            os.kill(os.getpid(), signal.SIGKILL)
        super().progress(step, total)


def _phase_main(run_data: dict[str, Any], run_dir: str, kill_at: int | None) -> None:
    import torch

    from suite.optimizers import OptimizerSpec
    from suite.schema import from_dict
    from suite.trainers import trainer_module

    torch.set_num_threads(1)
    run = RunSpec.from_dict(run_data)
    module = trainer_module(run.trainer)
    config = from_dict(module.Config, run.task, "task")
    specs = {role: from_dict(OptimizerSpec, spec, role) for role, spec in run.optimizers.items()}
    ctx = KillAt(run, Path(run_dir), "cpu", kill_at=kill_at)
    result = module.train(config, specs, ctx)
    write_json_atomic(Path(run_dir) / "result.json", result.to_dict())
    ctx.close()


def start_phase(run: RunSpec, run_dir: Path, kill_at: int | None = None) -> mp.Process:
    """Train ``run`` in a fresh spawned process writing ``run_dir/result.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    process = mp.get_context("spawn").Process(
        target=_phase_main, args=(run.to_dict(), str(run_dir), kill_at)
    )
    process.start()
    return process


def finish_phase(process: mp.Process, timeout_s: float = 300) -> int:
    process.join(timeout_s)
    if process.is_alive():
        process.kill()
        pytest.fail("a training phase did not finish in time")
    return process.exitcode


def assert_resume_equivalent(run: RunSpec, tmp_path: Path, kill_at: int, rel_tol: float = 0.0):
    """Uninterrupted vs killed at ``kill_at`` and resumed: same metrics and eval curves.

    :param rel_tol: 0 demands bit-identical floats; a trainer that cannot be exact passes its
        documented tolerance.
    """
    alone, killed = tmp_path / "uninterrupted", tmp_path / "interrupted"
    # Both first phases at once (2 cores); the resumed phase needs the kill to have happened.
    first, second = start_phase(run, alone), start_phase(run, killed, kill_at)
    assert finish_phase(first) == 0
    assert finish_phase(second) == -signal.SIGKILL, "the run finished before it was killed"
    assert not (killed / "result.json").exists()
    assert finish_phase(start_phase(run, killed)) == 0
    log = (killed / "log.txt").read_text()
    assert "SIGKILL at step" in log and "resumed from checkpoint.pt" in log
    expected = json.loads((alone / "result.json").read_text())
    resumed = json.loads((killed / "result.json").read_text())
    assert resumed["status"] == expected["status"] == "done"
    assert resumed["metrics"].keys() == expected["metrics"].keys() and expected["metrics"]
    for name, value in expected["metrics"].items():
        assert resumed["metrics"][name] == pytest.approx(value, rel=rel_tol, abs=0), name
    for name, curve in expected["curves"].items():
        got = resumed["curves"][name]
        assert [s for s, _ in got] == [s for s, _ in curve], name
        assert [v for _, v in got] == pytest.approx([v for _, v in curve], rel=rel_tol), name
    return expected, resumed


# DQN on CartPole, small: evaluations every 310 steps (not a multiple of train_freq 50, so the
# checkpoint falls between rollouts after the evaluation, at 350, 650 and 950).
DQN_TASK = {
    "env_id": "CartPole-v1",
    "total_timesteps": 1200,
    "buffer_size": 5000,
    "learning_starts": 100,
    "batch_size": 32,
    "train_freq": 50,
    "gradient_steps": 5,
    "target_update_interval": 40,
    "exploration_fraction": 0.5,
    "net_arch": [32, 32],
    "eval_every": 310,
    "eval_episodes": 2,
    "final_evals": 2,
    "return_threshold": 20.0,
}

DQN_SPECS = {
    # Adam with a cosine schedule and clipping: moments, schedule position and step count.
    "adam_cosine": {
        "optimizer": "adam",
        "lr": 1e-3,
        "clip_grad_norm": 10.0,
        "schedule": {"name": "cosine", "kwargs": {"T_max": 200}},
    },
    # K-FAC: Kronecker factors, their inverses and the inner momentum.
    "kfac": {"optimizer": "kfac", "lr": 1e-3, "kwargs": {"update_freq": 3}},
    # Nature DQN RMSprop under Lookahead: slow weights and the Lookahead counter.
    "rmsprop_lookahead": {
        "optimizer": "rmsprop_deepmind",
        "lr": 2.5e-4,
        "kwargs": {"decay": 0.95, "eps": 0.01},
        "lookahead": {"k": 3, "alpha": 0.5},
    },
}


def dqn_run(arm: str, seed: int = 3) -> RunSpec:
    from suite.optimizers import OptimizerSpec
    from suite.schema import from_dict

    spec = from_dict(OptimizerSpec, DQN_SPECS[arm], "q").to_dict()
    return RunSpec("resume", arm, seed, "smoke", "dqn", dict(DQN_TASK), {"q": spec})


@pytest.mark.parametrize(
    "arm",
    [
        "adam_cosine",
        pytest.param("kfac", marks=pytest.mark.slow),
        pytest.param("rmsprop_lookahead", marks=pytest.mark.slow),
    ],
)
def test_dqn_killed_and_resumed_equals_uninterrupted(tmp_path, arm):
    expected, _ = assert_resume_equivalent(dqn_run(arm), tmp_path, kill_at=800)
    # The run learned something and checkpointed past the kill point's predecessor.
    assert [s for s, _ in expected["curves"]["eval/return"]] == [310, 620, 930, 1200]


@pytest.mark.slow
def test_harness_detects_a_resume_that_is_not_exact(tmp_path):
    # Guard against a harness that cannot fail: forget the saved generators on resume, and the
    # resumed run must differ (replay sampling and epsilon-greedy draw from numpy's generator).
    run = dqn_run("adam_cosine")
    alone, killed = tmp_path / "a", tmp_path / "b"
    first, second = start_phase(run, alone), start_phase(run, killed, kill_at=800)
    assert finish_phase(first) == 0 and finish_phase(second) == -signal.SIGKILL
    checkpoint = killed / "checkpoint.pt"
    import torch

    saved = torch.load(checkpoint, weights_only=True)
    del saved["rng"]
    torch.save(saved, checkpoint)
    assert finish_phase(start_phase(run, killed)) == 0
    a = json.loads((alone / "result.json").read_text())["curves"]
    b = json.loads((killed / "result.json").read_text())["curves"]
    assert a != b


# SAC on Pendulum (200-step episodes), small: evaluations every 151 steps; train_freq 2 makes
# each rollout two steps, so the checkpoint after an evaluation waits for the chunk's end (152,
# 304), mid-episode of the training env and with the replay buffer partly filled.
SAC_TASK = {
    "env_id": "Pendulum-v1",
    "total_timesteps": 400,
    "buffer_size": 2000,
    "learning_starts": 64,
    "batch_size": 32,
    "train_freq": 2,
    "gradient_steps": 1,
    "net_arch": [32, 32],
    "eval_every": 151,
    "eval_episodes": 1,
    "final_evals": 2,
}

SAC_SPECS = {
    # Adam everywhere, the critic's with a schedule and clipping; the entropy coefficient learned.
    "adam": {
        "actor": {"optimizer": "adam", "lr": 1e-3},
        "critic": {
            "optimizer": "adam",
            "lr": 1e-3,
            "clip_grad_norm": 10.0,
            "schedule": {"name": "exponential", "kwargs": {"gamma": 0.999}},
        },
        "entropy": {"optimizer": "adam", "lr": 1e-3},
    },
    # K-FAC on the critic: its Kronecker factors and inverses must come back from the zip.
    "kfac_critic": {
        "actor": {"optimizer": "adam", "lr": 1e-3},
        "critic": {"optimizer": "kfac_adam", "lr": 1e-3, "kwargs": {"update_freq": 3}},
        "entropy": {"optimizer": "sgd", "lr": 2e-3},
    },
}


def specs_of(arm_specs: dict[str, dict]) -> dict[str, dict]:
    from suite.optimizers import OptimizerSpec
    from suite.schema import from_dict

    return {role: from_dict(OptimizerSpec, s, role).to_dict() for role, s in arm_specs.items()}


def sac_run(arm: str, seed: int = 3) -> RunSpec:
    return RunSpec("resume", arm, seed, "smoke", "sac", dict(SAC_TASK), specs_of(SAC_SPECS[arm]))


@pytest.mark.parametrize("arm", ["adam", pytest.param("kfac_critic", marks=pytest.mark.slow)])
def test_sac_killed_and_resumed_equals_uninterrupted(tmp_path, arm):
    expected, _ = assert_resume_equivalent(sac_run(arm), tmp_path, kill_at=200)
    assert [s for s, _ in expected["curves"]["eval/return"]] == [151, 302, 400]


# PPO on CartPole, small: 2 envs x 64 steps = 128 transitions a rollout; evaluations every 250
# steps fall mid-rollout, so the checkpoint waits for the rollout boundary (after train(), at
# 256, 512 and 768), where no partial rollout buffer exists.
PPO_TASK = {
    "env_id": "CartPole-v1",
    "n_envs": 2,
    "total_timesteps": 800,
    "n_steps": 64,
    "batch_size": 32,
    "n_epochs": 2,
    "net_arch": [32, 32],
    "eval_every": 250,
    "eval_episodes": 2,
    "final_evals": 2,
    "return_threshold": 30.0,
}

ADAM_COSINE = {
    "optimizer": "adam",
    "lr": 1e-3,
    "clip_grad_norm": 0.5,
    "schedule": {"name": "cosine", "kwargs": {"T_max": 100}},
}

PPO_CASES = {
    "shared": ({"optimizer_roles": "shared"}, {"policy": ADAM_COSINE}),
    "split": (
        {"optimizer_roles": "split"},
        {"actor": ADAM_COSINE, "critic": {"optimizer": "rmsprop", "lr": 1e-3}},
    ),
    # VecNormalize on Pendulum: observation statistics, reward statistics and the discounted
    # return accumulator of the reward normalization (which VecNormalize's pickle drops).
    "normalize": (
        {"env_id": "Pendulum-v1", "normalize": True, "eval_episodes": 1, "return_threshold": None},
        {"policy": ADAM_COSINE},
    ),
}


def ppo_run(case: str, seed: int = 3) -> RunSpec:
    task, arm_specs = PPO_CASES[case]
    return RunSpec("resume", case, seed, "smoke", "ppo", {**PPO_TASK, **task}, specs_of(arm_specs))


@pytest.mark.parametrize(
    "case", ["shared", "normalize", pytest.param("split", marks=pytest.mark.slow)]
)
def test_ppo_killed_and_resumed_equals_uninterrupted(tmp_path, case):
    expected, _ = assert_resume_equivalent(ppo_run(case), tmp_path, kill_at=300)
    assert [s for s, _ in expected["curves"]["eval/return"]] == [250, 500, 750, 800]


@pytest.mark.slow
def test_ppo_resume_without_the_reward_return_accumulator_is_not_exact(tmp_path):
    # Guard for the normalize case: drop the saved VecNormalize return accumulator (as its own
    # pickle does) and the resumed run's reward scaling, hence its training, must differ.
    import pickle

    run = ppo_run("normalize")
    alone, killed = tmp_path / "a", tmp_path / "b"
    first, second = start_phase(run, alone), start_phase(run, killed, kill_at=300)
    assert finish_phase(first) == 0 and finish_phase(second) == -signal.SIGKILL
    (envs,) = killed.glob("envs-*.pkl")
    saved = pickle.loads(envs.read_bytes())  # noqa: S301 - written by this test's own run
    assert saved["returns"] is not None and saved["returns"].any()
    saved["returns"] = None
    envs.write_bytes(pickle.dumps(saved))
    assert finish_phase(start_phase(run, killed)) == 0
    a = json.loads((alone / "result.json").read_text())["curves"]
    b = json.loads((killed / "result.json").read_text())["curves"]
    assert a["eval/return"][:1] == b["eval/return"][:1] and a != b
