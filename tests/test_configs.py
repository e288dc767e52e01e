"""Every experiment file in configs/ loads and validates at each budget it defines."""

from __future__ import annotations

import pytest

from suite.config import (
    CONFIG_DIR,
    OPTIMIZER_SET_DIR,
    experiment_names,
    load_experiment,
    run_command,
)
from suite.optimizers import OptimizerSpec, validate_spec
from suite.schema import from_dict, read_yaml


@pytest.mark.parametrize("name", experiment_names())
def test_experiment_loads_at_every_budget(name):
    raw = read_yaml(CONFIG_DIR / f"{name}.yaml")
    assert run_command(CONFIG_DIR / f"{name}.yaml") == f"python -m suite run {name}"
    for budget in raw["budgets"]:
        experiment = load_experiment(name, budget)
        assert experiment.arms and experiment.seeds
        assert experiment.budget == budget


@pytest.mark.parametrize("path", sorted(OPTIMIZER_SET_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_optimizer_spec_files_validate(path):
    validate_spec(from_dict(OptimizerSpec, read_yaml(path)))


def test_yaml_reads_exponent_floats_as_numbers():
    # PyYAML alone reads 3e-4 as the string '3e-4' (YAML 1.1); our loader reads a float.
    from suite.schema import parse_yaml

    assert parse_yaml("lr: 3e-4") == {"lr": 3e-4}
    assert parse_yaml("n: 30000") == {"n": 30000}


def test_budget_settings_merge_into_nested_task_settings(tmp_path):
    text = (CONFIG_DIR / "quickstart.yaml").read_text()
    text = text.replace(
        "  env_id: CartPole-v1\n",
        "  env_id: CartPole-v1\n  env_kwargs: {max_episode_steps: 200, render_mode: null}\n",
    )
    text = text.replace("  quick: {", "  quick: {env_kwargs: {max_episode_steps: 100}, ")
    path = tmp_path / "nested.yaml"
    path.write_text(text)
    task = load_experiment(str(path), "quick").task
    assert task.env_kwargs == {"max_episode_steps": 100, "render_mode": None}


def test_cuda_graphs_is_not_part_of_a_runs_identity():
    # A speed setting added after results were recorded: switching it must neither change the
    # run id (resume) nor drop recorded results from reports (suite.result.NOT_IN_IDENTITY).
    from suite.result import RunSpec

    task = {"total_timesteps": 1000, "cuda_graphs": True}
    base = RunSpec("e", "adam", 0, "quick", "dqn", task, {"q": {"optimizer": "adam"}})
    without = RunSpec("e", "adam", 0, "quick", "dqn", {"total_timesteps": 1000}, base.optimizers)
    off = RunSpec("e", "adam", 0, "quick", "dqn", {**task, "cuda_graphs": False}, base.optimizers)
    longer = RunSpec("e", "adam", 0, "quick", "dqn", {**task, "total_timesteps": 2000},
                     base.optimizers)  # fmt: skip
    assert base.run_id == without.run_id == off.run_id != longer.run_id
