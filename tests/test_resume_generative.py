"""Resume equivalence for the generative trainers: a DCGAN or VAE run interrupted mid-way and
resumed from its checkpoint ends with exactly the metrics and curves of the same run left alone
(CPU).

The runs are the experiment files' smoke budgets with ``--set`` overrides that make every part of
the state matter: a learning-rate schedule and gradient clipping on one role, checkpoints that
fall inside a loss-logging window, several discriminator steps, random flips, a KL warm-up still
rising at the interruption, Gaussian dequantization noise.

What makes them exact (gans/dcgan.py, vae/vae.py ``save_checkpoint`` plus ``ctx.save_checkpoint``):
weights with batch-norm statistics; each RoleOptimizer's state_dict (moments, step counts,
schedule); the DataOrder position (each epoch's permutation is a pure function of seed and epoch);
the partial loss sums of the current log window; the last scores; python/numpy/torch global
generators, restored by ``ctx.restore_rng()`` after everything that draws at construction (weight
init, the score classifier, which trains in a forked RNG and is kept in the run directory).
Flips, training noise and dequantization noise draw from the global generators; evaluation noise,
sample grids and the score classifier use seeded generators of their own; the KL weight is a
function of the step.

The default tests run each phase in this process through the runner's own ``execute`` (claim,
train, release on interrupt, resume), interrupting with the KeyboardInterrupt a SIGTERM becomes;
the slow ones SIGKILL a real ``python -m suite run`` process group at a random moment after its
first checkpoint and resume it with the same command.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from suite.config import expand, load_experiment
from suite.result import RunSpec
from suite.run.context import RunContext
from suite.run.worker import WorkerJob
from suite.run.worker import execute as execute_job
from suite.store import Store

DCGAN = "dcgan-cifar10-adam0-rmsprop-vs-sgd"
DCGAN_ARM = "adam0_rmsprop"
DCGAN_SET = [
    # Checkpoints (evaluations) at 3, 6, 8; losses recorded every 2 steps: the step-3 checkpoint
    # holds a half-full log window.
    "task.generator_steps=8",
    "task.eval_every=3",
    "task.log_every=2",
    "task.discriminator_steps=2",
    "task.eval_samples=64",
    "task.hflip=true",
    f"arms.{DCGAN_ARM}.generator.schedule="
    "{name: warmup_cosine, kwargs: {warmup_steps: 2, total_steps: 8, eta_min: 1.0e-5}}",
    f"arms.{DCGAN_ARM}.discriminator.clip_grad_norm=1.0",
]

VAE = "vae-adabelief-vs-adam"
VAE_ARM = "adamax_nvae"
VAE_SET = [
    # 512 images / 64 = 8 steps an epoch, 3 epochs: checkpoints at 8, 16, 24; losses every 3
    # steps (the step-8 checkpoint is mid-window); the KL weight rises until step 12.
    "task.epochs=3",
    "task.eval_every_epochs=1",
    "task.log_every=3",
    "task.kl_warmup_fraction=0.5",
    "task.likelihood=gaussian",
    # NVAE's Adamax with its warm-up + cosine schedule shortened to this run, plus clipping.
    f"arms.{VAE_ARM}.model.schedule.kwargs={{warmup_steps: 4, total_steps: 24, eta_min: 1.0e-4}}",
    f"arms.{VAE_ARM}.model.clip_grad_norm=5.0",
]


def smoke_run(experiment: str, arm: str, overrides: list[str]) -> RunSpec:
    """The one run ``suite run EXPERIMENT --budget smoke --arms ARM --seeds 1 --set ...`` runs."""
    loaded = load_experiment(experiment, "smoke", overrides, seeds=1, arms=[arm])
    (run,) = expand(loaded)
    return run


@pytest.fixture
def one_thread():
    """execute sets torch's thread count (as a worker process does); give it back after."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def interrupt_at(monkeypatch, step: int) -> None:
    """Make RunContext.progress raise KeyboardInterrupt (what the runner turns SIGTERM into) at
    the first step >= ``step`` once a checkpoint exists."""
    original = RunContext.progress

    def progress(self, current: int, total: int) -> None:
        if current >= step and (self.run_dir / "checkpoint.pt").exists():
            self.log(f"test: interrupted at step {current}")
            raise KeyboardInterrupt
        original(self, current, total)

    monkeypatch.setattr(RunContext, "progress", progress)


def scramble_global_generators() -> None:
    """A fresh process starts with other global generator states: nothing may rely on them."""
    torch.manual_seed(987_654)
    np.random.seed(987_654)
    random.seed(987_654)


def execute(run: RunSpec, results: Path) -> dict:
    """One phase in this process, as a worker runs it; returns result.json when written."""
    store = Store(results)
    store.register([run])
    execute_job(WorkerJob([run], str(results), "cpu", 1))
    return json.loads((store.run_dir(run) / "result.json").read_text())


def interrupted_then_resumed(run: RunSpec, results: Path, step: int, monkeypatch) -> dict:
    with monkeypatch.context() as patch:
        interrupt_at(patch, step)
        with pytest.raises(KeyboardInterrupt):
            execute(run, results)
    run_dir = Store(results).run_dir(run)
    assert not (run_dir / "result.json").exists()
    assert Store(results).status(run.run_id) == "pending"  # handed back, not failed
    scramble_global_generators()
    resumed = execute(run, results)
    log = (run_dir / "log.txt").read_text()
    assert f"test: interrupted at step {step}" in log and "resumed from checkpoint.pt" in log
    return resumed


def assert_same_run(resumed: dict, expected: dict, roles: tuple[str, ...]) -> None:
    """Bit-identical final metrics and curves, and the same optimizer step counts and lrs."""
    assert resumed["status"] == expected["status"] == "done"
    assert expected["metrics"] and resumed["metrics"] == expected["metrics"]
    assert resumed["curves"].keys() == expected["curves"].keys()
    for name, curve in expected["curves"].items():
        assert resumed["curves"][name] == curve, name
    for role in roles:
        for key in (f"{role}_optimizer_steps", f"{role}_lr_final"):
            assert resumed["details"][key] == expected["details"][key], key


def test_dcgan_interrupted_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, one_thread):
    run = smoke_run(DCGAN, DCGAN_ARM, DCGAN_SET)
    expected = execute(run, tmp_path / "alone")
    resumed = interrupted_then_resumed(run, tmp_path / "interrupted", 5, monkeypatch)
    assert_same_run(resumed, expected, ("generator", "discriminator"))
    curves = expected["curves"]
    assert [s for s, _ in curves["eval/fid_classifier"]] == [3, 6, 8]
    assert [s for s, _ in curves["train/loss_generator"]] == [2, 4, 6, 8]
    lrs = [lr for _, lr in curves["train/lr_generator"]]
    assert lrs[0] == pytest.approx(2e-4) and lrs[-1] == pytest.approx(1e-5)  # the schedule ran
    assert resumed["details"]["discriminator_optimizer_steps"] == 16  # 2 D steps per G step
    # The resumed run scored with the tiny classifier the interrupted phase trained and kept.
    run_dir = Store(tmp_path / "interrupted").run_dir(run)
    assert (
        "tiny score classifier loaded from score_classifier.pt" in (run_dir / "log.txt").read_text()
    )


def test_vae_interrupted_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, one_thread):
    run = smoke_run(VAE, VAE_ARM, VAE_SET)
    expected = execute(run, tmp_path / "alone")
    resumed = interrupted_then_resumed(run, tmp_path / "interrupted", 11, monkeypatch)
    assert_same_run(resumed, expected, ("model",))
    curves = expected["curves"]
    assert [s for s, _ in curves["test/neg_elbo_nats"]] == [8, 16, 24]
    assert [s for s, _ in curves["train/loss"]] == [3, 6, 9, 12, 15, 18, 21, 24]
    # Each record shows its last update's KL weight, (step - 1) / 12 during the 12-step warm-up;
    # the resumed part (steps 9-11) was still warming up.
    assert [w for _, w in curves["train/kl_weight"]][:4] == pytest.approx(
        [2 / 12, 5 / 12, 8 / 12, 11 / 12]
    )
    assert "test/bpd" in resumed["metrics"]  # the Gaussian (dequantized) likelihood ran


def test_a_resume_without_the_generators_differs(tmp_path, monkeypatch, one_thread):
    # Guard against a comparison that cannot fail: skip restoring the global generators and the
    # resumed VAE draws other dequantization and reparameterization noise.
    run = smoke_run(VAE, VAE_ARM, VAE_SET)
    expected = execute(run, tmp_path / "alone")
    monkeypatch.setattr(RunContext, "restore_rng", lambda self: None)
    resumed = interrupted_then_resumed(run, tmp_path / "interrupted", 11, monkeypatch)
    steps = {s for s, _ in expected["curves"]["train/loss"]}
    assert steps == {s for s, _ in resumed["curves"]["train/loss"]}
    assert resumed["curves"]["train/loss"][:2] == expected["curves"]["train/loss"][:2]
    assert resumed["curves"]["train/loss"][-1] != expected["curves"]["train/loss"][-1]
    assert resumed["metrics"] != expected["metrics"]


# --- end to end: SIGKILL a real `suite run` at a random moment, resume with the same command ----


def suite_run(experiment: str, arm: str, overrides: list[str], results: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "suite", "run", experiment, "--budget", "smoke"]
    command += ["--arms", arm, "--seeds", "1", "--workers", "1", "--no-report"]
    command += ["--results", str(results)]
    for assignment in overrides:
        command += ["--set", assignment]
    # A session of its own: the kill takes the worker process with the command.
    return subprocess.Popen(
        command,
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, timeout_s: float = 300) -> None:
    _, stderr = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, stderr.decode()


def kill_after_first_checkpoint(process: subprocess.Popen, results: Path, wait_s: float) -> None:
    """SIGKILL the command's process group ``wait_s`` after a checkpoint first appears."""
    deadline = time.monotonic() + 300
    while not list(results.rglob("checkpoint.pt")):
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(wait_s)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("experiment", "arm", "overrides"),
    [
        (DCGAN, DCGAN_ARM, [*DCGAN_SET, "task.generator_steps=40", "task.eval_every=7"]),
        (VAE, VAE_ARM, [*VAE_SET, "task.epochs=12"]),
    ],
    ids=["dcgan", "vae"],
)
def test_suite_run_killed_and_rerun_equals_uninterrupted(tmp_path, experiment, arm, overrides):
    alone, killed = tmp_path / "alone", tmp_path / "killed"
    first = suite_run(experiment, arm, overrides, alone)
    second = suite_run(experiment, arm, overrides, killed)
    kill_after_first_checkpoint(second, killed, wait_s=random.uniform(0.0, 0.5))
    assert not list(killed.rglob("result.json")), "the run finished before the kill"
    finish(first)
    finish(suite_run(experiment, arm, overrides, killed))
    (expected_file,) = alone.rglob("result.json")
    (resumed_file,) = killed.rglob("result.json")
    assert "resumed from checkpoint.pt" in (resumed_file.parent / "log.txt").read_text()
    expected = json.loads(expected_file.read_text())
    resumed = json.loads(resumed_file.read_text())
    roles = tuple(expected["optimizers"])
    assert_same_run(resumed, expected, roles)
