"""Stacked seeds through the runner (``suite run --stack-seeds``, suite/run/worker.py: execute):
each seed of a stack records what its lone run records (to float tolerance: a grouped
convolution sums in another order than S convolutions), checkpoints in the lone run's format, so
an interrupted stack resumes exactly as a stack and closely seed by seed, and one seed's
divergence is recorded without stopping the others.

The runs are the experiment files' smoke budgets with the resume tests' overrides
(tests/test_resume_generative.py): a schedule and clipping on one role, two D steps, flips, a
KL warm-up, Gaussian dequantization noise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gans import stacked
from suite.cli import main
from suite.config import expand, load_experiment
from suite.optimizers import OptimizerSpec, build_role_optimizer
from suite.result import RunSpec
from suite.run import stacking
from suite.run.local import jobs
from suite.run.worker import WorkerJob, execute
from suite.schema import from_dict
from suite.store import Store
from tests.helpers import needs_shared
from tests.test_resume_generative import (
    DCGAN,
    DCGAN_ARM,
    DCGAN_SET,
    VAE,
    VAE_ARM,
    VAE_SET,
    interrupt_at,
    scramble_global_generators,
)

pytestmark = [needs_shared, pytest.mark.usefixtures("one_thread")]
ROOT = Path(__file__).resolve().parent.parent


def seed_runs(experiment: str, arm: str, overrides: list[str], seeds: int = 2) -> list[RunSpec]:
    return expand(load_experiment(experiment, "smoke", overrides, seeds=seeds, arms=[arm]))


def alone(runs: list[RunSpec], results: Path) -> list[dict]:
    Store(results).register(runs)
    for run in runs:
        execute(WorkerJob([run], str(results), "cpu", 1))
    return [read(results, run) for run in runs]


def together(runs: list[RunSpec], results: Path, method: str) -> list[dict]:
    Store(results).register(runs)
    execute(WorkerJob(list(runs), str(results), "cpu", 1, stack=method))
    return [read(results, run) for run in runs]


def read(results: Path, run: RunSpec) -> dict:
    return json.loads((Store(results).run_dir(run) / "result.json").read_text())


def assert_close_runs(got: dict, expected: dict, rtol: float) -> None:
    assert got["status"] == expected["status"] == "done"
    assert got["metrics"].keys() == expected["metrics"].keys()
    for key, value in expected["metrics"].items():
        assert got["metrics"][key] == pytest.approx(value, rel=rtol, abs=1e-6), key
    assert got["curves"].keys() == expected["curves"].keys()
    for name, curve in expected["curves"].items():
        assert [s for s, _ in got["curves"][name]] == [s for s, _ in curve], name
        values = [v for _, v in got["curves"][name]]
        # A loss near 0 late in a curve is a difference of larger terms: its rounding drift
        # is relative to the curve's scale, not to its own value (torch 2.14.1's grouped
        # convolutions put a D loss of 0.0696 at 0.0693, 0.46%, with the curve at 0.835).
        scale = max((abs(v) for _, v in curve), default=0.0)
        tol = max(1e-6, rtol * scale)
        assert values == pytest.approx([v for _, v in curve], rel=rtol, abs=tol), name


@pytest.mark.parametrize("method", ["grouped", "vmap"])
def test_dcgan_stacked_seeds_record_what_their_lone_runs_record(tmp_path, method):
    runs = seed_runs(DCGAN, DCGAN_ARM, DCGAN_SET)
    expected = alone(runs, tmp_path / "alone")
    got = together(runs, tmp_path / "stacked", method)
    for g, e in zip(got, expected, strict=True):
        assert_close_runs(g, e, rtol=2e-3)
        assert g["details"]["stacked"]["seeds"] == 2 and g["details"]["stacked"]["method"] == method
        for key in ("generator_optimizer_steps", "discriminator_optimizer_steps"):
            assert g["details"][key] == e["details"][key] == (8 if "gen" in key else 16)
        assert (Store(tmp_path / "stacked").run_dir(runs[0]) / "samples.png").exists()
    # The two seeds differ: each got its own weights, data order and noise.
    assert got[0]["metrics"] != got[1]["metrics"]


def test_vae_stacked_seeds_record_what_their_lone_runs_record(tmp_path):
    runs = seed_runs(VAE, VAE_ARM, VAE_SET)
    expected = alone(runs, tmp_path / "alone")
    got = together(runs, tmp_path / "stacked", "vmap")
    for g, e in zip(got, expected, strict=True):
        assert_close_runs(g, e, rtol=1e-4)
        assert g["details"]["model_optimizer_steps"] == e["details"]["model_optimizer_steps"] == 24
        assert {"samples", "reconstructions"} <= set(g["artifacts"])
    assert got[0]["metrics"] != got[1]["metrics"]


def interrupted_stack(runs, results: Path, step: int, monkeypatch, method: str) -> None:
    """Run the stack until the first seed's progress at ``step`` after a checkpoint, as a
    SIGTERM stops a worker: every seed is handed back, none is finished."""
    with monkeypatch.context() as patch:
        interrupt_at(patch, step)
        with pytest.raises(KeyboardInterrupt):
            together(runs, results, method)
    store = Store(results)
    for run in runs:
        assert store.status(run.run_id) == "pending"
        assert (store.run_dir(run) / "checkpoint.pt").exists()
        assert not (store.run_dir(run) / "result.json").exists()
    scramble_global_generators()


@pytest.mark.parametrize(
    ("experiment", "arm", "overrides", "step", "method"),
    [(DCGAN, DCGAN_ARM, DCGAN_SET, 5, "grouped"), (VAE, VAE_ARM, VAE_SET, 11, "vmap")],
)
def test_an_interrupted_stack_resumes_exactly(
    tmp_path, monkeypatch, experiment, arm, overrides, step, method
):
    runs = seed_runs(experiment, arm, overrides)
    expected = together(runs, tmp_path / "uninterrupted", method)
    interrupted_stack(runs, tmp_path / "interrupted", step, monkeypatch, method)
    resumed = together(runs, tmp_path / "interrupted", method)
    for got, want in zip(resumed, expected, strict=True):
        assert got["metrics"] == want["metrics"]  # bit for bit: the same kernels, same state
        assert got["curves"] == want["curves"]


def test_a_stacked_checkpoint_resumes_as_a_lone_run(tmp_path, monkeypatch):
    # Checkpoints are in dcgan.save_checkpoint's format, generator states included: seed by
    # seed, the resumed runs end where lone runs end.
    runs = seed_runs(DCGAN, DCGAN_ARM, DCGAN_SET)
    expected = alone(runs, tmp_path / "alone")
    interrupted_stack(runs, tmp_path / "mixed", 5, monkeypatch, "grouped")
    resumed = alone(runs, tmp_path / "mixed")
    for got, want in zip(resumed, expected, strict=True):
        assert_close_runs(got, want, rtol=2e-3)
        assert "stacked" not in got["details"]
        log = (Store(tmp_path / "mixed").run_dir(runs[0]) / "log.txt").read_text()
        assert "resumed from checkpoint.pt" in log


def test_seeds_at_different_steps_train_as_separate_stacks(tmp_path, monkeypatch):
    # Seed 0 was interrupted alone after its first checkpoint; seed 1 never started. Both are
    # stacked again: each finishes as its lone run does.
    runs = seed_runs(VAE, VAE_ARM, VAE_SET)
    expected = alone(runs, tmp_path / "alone")
    results = tmp_path / "mixed"
    Store(results).register(runs)
    with monkeypatch.context() as patch:
        interrupt_at(patch, 11)
        with pytest.raises(KeyboardInterrupt):
            execute(WorkerJob([runs[0]], str(results), "cpu", 1))
    got = together(runs, results, "vmap")
    for g, e in zip(got, expected, strict=True):
        assert_close_runs(g, e, rtol=1e-4)


def test_one_diverging_seed_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    original = stacked.train_step
    calls = {"n": 0}

    def nan_for_seed_one_from_step_3(*args, **kwargs):
        losses_d, losses_g = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= 3:
            losses_g = losses_g.clone()
            losses_g[1] = float("nan")
        return losses_d, losses_g

    monkeypatch.setattr(stacked, "train_step", nan_for_seed_one_from_step_3)
    runs = seed_runs(DCGAN, DCGAN_ARM, DCGAN_SET)
    first, second = together(runs, tmp_path, "grouped")
    assert first["status"] == "done" and first["metrics"]
    assert second["status"] == "diverged" and second["diverged_at_step"] == 4  # logged every 2
    assert "loss_generator is not finite at step 4" in second["error"]
    assert [s for s, _ in first["curves"]["eval/fid_classifier"]] == [3, 6, 8]
    assert [s for s, _ in second["curves"]["eval/fid_classifier"]] == [3]
    assert Store(tmp_path).status(runs[1].run_id) == "diverged"


def test_seed_optimizer_states_split_and_join_back():
    # Adam inside Lookahead: moments and slow weights are per element, steps are shared.
    torch.manual_seed(0)
    stack_params = [torch.randn(3, 2, 4, requires_grad=True), torch.randn(3, requires_grad=True)]
    spec = from_dict(
        OptimizerSpec,
        {"optimizer": "adam", "lr": 0.1, "lookahead": {"k": 2, "alpha": 0.5}},
        "model",
    )
    optimizer = build_role_optimizer("model", spec, stack_params)
    for _ in range(3):
        optimizer.zero_grad()
        sum((p**2).sum() for p in stack_params).backward()
        optimizer.step()
    state = optimizer.state_dict()

    def split(t, i):  # a vmap-style stack of 3 seeds
        return t[i]

    seeds = [stacking.seed_optimizer_state(state, stack_params, i, split) for i in range(3)]
    moments = seeds[1]["optimizer"]["inner"]["state"][0]["exp_avg"]
    torch.testing.assert_close(moments, state["optimizer"]["inner"]["state"][0]["exp_avg"][1])
    assert seeds[2]["optimizer"]["slow"][1].shape == ()  # a seed's slice of a (3,) parameter
    assert (
        seeds[0]["steps"] == 3 and seeds[0]["optimizer"]["counter"] == state["optimizer"]["counter"]
    )
    joined = stacking.joined_optimizer_state(seeds, stack_params, split, torch.stack)
    for index, entry in state["optimizer"]["inner"]["state"].items():
        for name, value in entry.items():
            assert torch.equal(joined["optimizer"]["inner"]["state"][index][name], value), name
    for slow, original in zip(joined["optimizer"]["slow"], state["optimizer"]["slow"], strict=True):
        assert torch.equal(slow, original)


def test_jobs_put_each_arms_unfinished_seeds_together():
    runs = expand(load_experiment(VAE, "smoke", [], seeds=3))
    assert [len(job) for job in jobs(runs, None)] == [1] * 9
    grouped = jobs(runs, "vmap")
    assert [[r.arm for r in job] for job in grouped] == [
        [arm] * 3 for arm in ("adam", "adabelief", "adamax_nvae")
    ]
    assert [[r.seed for r in job] for job in grouped] == [[0, 1, 2]] * 3


def suite(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "suite", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_stack_seeds_through_the_cli(tmp_path):
    done = suite("run", VAE, "--budget", "smoke", "--seeds", "2", "--arms", "adam",
                 "--stack-seeds", "--workers", "1", "--no-report", "--results", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = Store(tmp_path).results(VAE)
    assert sorted(r.seed for r in results) == [0, 1]
    assert all(r.status == "done" and r.details["stacked"]["seeds"] == 2 for r in results)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ppo-shared-vs-split-adam", "--stack-seeds"],
         "--stack-seeds: trainer 'ppo' cannot stack seeds"),
        ([VAE, "--stack-seeds", "grouped"], "does not stack with 'grouped' (valid: auto, vmap)"),
        ([DCGAN, "--stack-seeds", "--set", "arms.adam_dcgan.generator.optimizer=lamb"],
         "arms.adam_dcgan: generator: optimizer 'lamb' cannot train stacked seeds"),
        ([VAE, "--stack-seeds", "--executor", "ray"], "--stack-seeds: runs with the local"),
    ],
)  # fmt: skip
def test_bad_stacking_is_one_line_and_runs_nothing(tmp_path, capsys, args, message):
    code = main(["run", *args, "--budget", "smoke", "--results", str(tmp_path)])
    stderr = capsys.readouterr().err
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "index.sqlite").exists()
