"""The synthetic trainer (suite/synthetic.py) and the arm-level ``task:`` mapping (suite/config.py).

The trainer's runs are draws from distributions in the task: reproducible from the run's seed,
independent across arms; the CLI runs it like any trainer. An arm's ``task:`` is merged over the
experiment's task, enters that arm's run ids only, and sets that arm's roles.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from suite.cli import main
from suite.config import expand, load_experiment
from suite.errors import ConfigError
from suite.judge.rules import arm_values
from suite.result import Result, RunSpec
from suite.schema import from_dict
from suite.synthetic import Config, draw, exercise_optimizer

REPOSITORY = Path(__file__).resolve().parent.parent
DEMO = REPOSITORY / "configs" / "synthetic-demo.yaml"

EXPERIMENT = """\
# python -m suite run mine
trainer: synthetic
task:
  metrics:
    eval/score: {distribution: normal, mean: 10.0, sd: 2.0}
budgets:
  smoke: {seeds: 2}
  quick: {seeds: 3}
arms:
  a:
    model: {optimizer: adam, lr: 1.0e-3}
    task: {metrics: {eval/score: {mean: 12.0}}}
  b: {model: {optimizer: sgd, lr: 0.1}}
"""


def config(**metrics) -> Config:
    return from_dict(Config, {"metrics": metrics}, "task")


def write(tmp_path: Path, text: str, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def test_same_seed_same_values_and_arms_seeds_metrics_independent():
    c = config(**{"eval/score": {"distribution": "normal", "mean": 10.0, "sd": 2.0}})
    assert draw(c, "a", 3) == draw(c, "a", 3)
    values = {
        (arm, seed): draw(c, arm, seed).metrics["eval/score"] for arm in "ab" for seed in (0, 1)
    }
    assert len(set(values.values())) == 4  # two arms x two seeds: four different draws
    # Adding a metric changes no other metric's draws (one stream per metric).
    more = config(
        **{
            "eval/score": {"distribution": "normal", "mean": 10.0, "sd": 2.0},
            "eval/other": {"distribution": "constant", "value": 1.0},
        }
    )
    assert draw(more, "a", 3).metrics["eval/score"] == draw(c, "a", 3).metrics["eval/score"]


def test_distributions_have_the_moments_they_are_given():
    c = config(
        **{
            "x/normal": {"distribution": "normal", "mean": 10.0, "sd": 2.0},
            "x/lognormal": {"distribution": "lognormal", "mean": 1.0, "sd": 0.5},
            "x/t": {"distribution": "student_t", "df": 5.0, "loc": -3.0, "scale": 1.0},
            "x/constant": {"distribution": "constant", "value": 7.5},
        }
    )
    runs = [draw(c, "a", seed).metrics for seed in range(4000)]
    column = {name: np.array([r[name] for r in runs]) for name in runs[0]}
    # 4000 draws: the mean is within ~4 standard errors (2/sqrt(4000) = 0.032 for the normal).
    assert abs(column["x/normal"].mean() - 10.0) < 0.13
    assert abs(column["x/normal"].std() - 2.0) < 0.1
    # log of a lognormal is normal(1, 0.5): median exp(1).
    assert abs(np.log(column["x/lognormal"]).mean() - 1.0) < 0.04
    assert abs(np.log(column["x/lognormal"]).std() - 0.5) < 0.03
    # t with 5 dof: mean loc, sd scale * sqrt(5 / 3) = 1.29.
    assert abs(column["x/t"].mean() + 3.0) < 0.1
    assert abs(column["x/t"].std() - np.sqrt(5 / 3)) < 0.12
    assert set(column["x/constant"]) == {7.5}


def test_probabilities_mark_runs_failed_diverged_degenerate_at_their_rates():
    c = config(
        **{
            "eval/score": {
                "distribution": "normal",
                "mean": 0.0,
                "sd": 1.0,
                "p_failed": 0.1,
                "p_diverged": 0.2,
                "p_degenerate": 0.3,
            }
        }
    )
    runs = [draw(c, "a", seed) for seed in range(3000)]
    status = np.array([r.status for r in runs])
    # Failure is drawn first and wins; divergence among the rest: 0.9 * 0.2 = 0.18.
    assert abs(np.mean(status == "failed") - 0.1) < 0.02
    assert abs(np.mean(status == "diverged") - 0.18) < 0.025
    done = [r for r in runs if r.status == "done"]
    assert all(r.metrics["eval/degenerate"] in (0.0, 1.0) for r in done)
    assert abs(np.mean([r.metrics["eval/degenerate"] for r in done]) - 0.3) < 0.03
    assert all(r.metrics == {} and r.diverged_at_step for r in runs if r.status == "diverged")
    # Raising p_diverged changes which runs diverge, not the values of the others.
    calm = config(**{"eval/score": {"distribution": "normal", "mean": 0.0, "sd": 1.0}})
    for seed, run in enumerate(runs[:200]):
        assert run.drawn["eval/score"] == draw(calm, "a", seed).metrics["eval/score"]


def test_censored_values_are_capped_and_the_judge_counts_them_censored():
    c = config(
        **{
            "eval/steps_to_threshold": {
                "distribution": "lognormal",
                "mean": 11.0,
                "sd": 1.0,
                "censor_at": 100000.0,
            }
        }
    )
    runs = [draw(c, "a", seed) for seed in range(40)]
    reached = [r.metrics["eval/reached_threshold"] for r in runs]
    # The same stream without censor_at gives the uncensored draw.
    uncensored = config(
        **{"eval/steps_to_threshold": {"distribution": "lognormal", "mean": 11.0, "sd": 1.0}}
    )
    for seed, run in enumerate(runs):
        raw = draw(uncensored, "a", seed).metrics["eval/steps_to_threshold"]
        assert run.metrics["eval/steps_to_threshold"] == min(raw, 100000.0)
        assert run.metrics["eval/reached_threshold"] == float(raw <= 100000.0)
    assert 0 < reached.count(0.0) < 40  # P(lognormal(11, 1) > 1e5) = 0.30: some of each
    results = [
        Result(
            run_id=str(seed),
            experiment="x",
            arm="a",
            seed=seed,
            budget="quick",
            trainer="synthetic",
            task={},
            optimizers={},
            metrics=run.metrics,
        )
        for seed, run in enumerate(runs)
    ]
    assert arm_values(results, "a", "eval/steps_to_threshold").n_censored == reached.count(0.0)


def test_any_optimizer_spec_is_built_and_stepped():
    from suite.optimizers import OptimizerSpec, optimizer_class

    assert exercise_optimizer(OptimizerSpec(optimizer="adam", lr=1e-3), 0) == "Adam"
    # K-FAC preconditions per layer: it needs the dummy layer as a module.
    kfac = exercise_optimizer(OptimizerSpec(optimizer="kfac", lr=1e-3), 0)
    assert kfac == optimizer_class("kfac").__name__
    with pytest.raises(TypeError):
        exercise_optimizer(OptimizerSpec(optimizer="sgd", lr=0.1, kwargs={"nope": 1}), 0)


# --------------------------------------------------------------------------------------------
# Through the command line
# --------------------------------------------------------------------------------------------


def test_demo_smoke_run_through_the_cli_records_the_drawn_metrics_and_curves(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "suite", "run", str(DEMO), "--budget", "smoke"]
        + ["--workers", "1", "--results", str(tmp_path)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "synthetic-score" in done.stdout  # the claims are judged in the summary
    assert (tmp_path / "synthetic-demo" / "smoke" / "report.md").is_file()
    experiment = load_experiment(str(DEMO), "smoke")
    results = [json.loads(p.read_text()) for p in tmp_path.rglob("result.json")]
    assert len(results) == 4
    for result in results:
        expected = draw(experiment.task_for(result["arm"]), result["arm"], result["seed"])
        assert result["status"] == expected.status
        assert result["metrics"] == expected.metrics
        assert result["details"]["optimizer_class"] == {"adam": "Adam", "sgd": "SGD"}[result["arm"]]
        steps = [step for step, _ in result["curves"]["eval/score"]]
        assert steps == [20000, 40000, 60000, 80000, 100000]
        assert result["curves"]["eval/score"][-1][1] == pytest.approx(expected.drawn["eval/score"])


def test_failed_diverged_and_degenerate_runs_through_the_cli(tmp_path, capsys):
    text = EXPERIMENT.replace(
        "  b: {model: {optimizer: sgd, lr: 0.1}}\n",
        "  b: {model: {optimizer: sgd, lr: 0.1}}\n"
        "  div: {model: {optimizer: sgd, lr: 0.1},"
        " task: {metrics: {eval/score: {p_diverged: 1}}}}\n"
        "  bad: {model: {optimizer: sgd, lr: 0.1},"
        " task: {metrics: {eval/score: {p_failed: 1}}}}\n"
        "  deg: {model: {optimizer: sgd, lr: 0.1},"
        " task: {metrics: {eval/score: {p_degenerate: 1}}}}\n",
    )
    path = write(tmp_path, text)
    args = ["run", str(path), "--budget", "smoke", "--workers", "1", "--no-report"]
    code = main([*args, "--results", str(tmp_path / "results")])
    assert code == 1  # a failed run makes the command fail; the others are recorded
    results = {}
    for p in (tmp_path / "results").rglob("result.json"):
        r = json.loads(p.read_text())
        results[r["arm"], r["seed"]] = r
    assert len(results) == 10
    assert {r["status"] for (arm, _), r in results.items() if arm == "div"} == {"diverged"}
    assert {r["status"] for (arm, _), r in results.items() if arm == "bad"} == {"failed"}
    assert all("simulated failure" in r["error"] for (arm, _), r in results.items() if arm == "bad")
    assert all(
        r["metrics"]["eval/degenerate"] == 1.0 for (a, _), r in results.items() if a == "deg"
    )
    assert all("eval/degenerate" not in r["metrics"] for (a, _), r in results.items() if a == "a")


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (("distribution: normal", "distribution: gamma"), ["eval/score.distribution", "normal"]),
        (("sd: 2.0", "sd: -2.0"), ["sd must be >= 0"]),
        (("sd: 2.0", "sd: 2.0, value: 1.0"), ["value is not a parameter of normal"]),
        (("mean: 10.0, ", ""), ["normal needs mean"]),
        (("sd: 2.0", "sd: 2.0, p_diverged: 1.5"), ["p_diverged must be in [0, 1]"]),
        (("sd: 2.0", "sd: 2.0, censor_at: 10"), ["censor_at", "steps_to_threshold"]),
        (("{mean: 12.0}", "{mean: 12.0, sd: -1}"), ["arms.a.task", "sd must be >= 0"]),
        (("task: {metrics", "task: {seeds: 4, metrics"), ["arms.a.task", "seeds"]),
        (("    task: {metrics: {eval/score: {mean: 12.0}}}", "    task: 3"), ["arms.a.task"]),
    ],
)
def test_bad_synthetic_input_is_one_line_exit_2_nothing_run(tmp_path, capsys, edit, fragments):
    path = write(tmp_path, EXPERIMENT.replace(*edit))
    results = tmp_path / "results"
    code = main(["run", str(path), "--budget", "smoke", "--results", str(results)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    assert not list(results.rglob("result.json"))


# --------------------------------------------------------------------------------------------
# The arm-level task mapping
# --------------------------------------------------------------------------------------------


def test_arm_task_merges_over_task_and_budget_and_set_overrides_both(tmp_path):
    path = write(
        tmp_path, EXPERIMENT.replace("quick: {seeds: 3}", "quick: {seeds: 3, curve_points: 2}")
    )
    experiment = load_experiment(str(path), "quick")
    a, b = experiment.task_for("a"), experiment.task_for("b")
    assert (a.metrics["eval/score"].mean, a.metrics["eval/score"].sd) == (12.0, 2.0)  # deep merge
    assert (b.metrics["eval/score"].mean, b.metrics["eval/score"].sd) == (10.0, 2.0)
    assert a.curve_points == b.curve_points == 2  # the budget's settings reach every arm
    assert b is experiment.task and list(experiment.arm_tasks) == ["a"]
    runs = expand(experiment)
    assert [r.task["metrics"]["eval/score"]["mean"] for r in runs] == [12.0] * 3 + [10.0] * 3
    # --set task.* applies over the arm's task too; --set arms.X.task.* to one arm only.
    overridden = load_experiment(
        str(path), "quick", ["task.metrics.eval/score.sd=3.0", "arms.b.task.curve_points=4"]
    )
    assert overridden.task_for("a").metrics["eval/score"].sd == 3.0
    assert overridden.task_for("a").metrics["eval/score"].mean == 12.0
    assert overridden.task_for("b").curve_points == 4
    assert overridden.task.curve_points == 2


def test_arm_task_enters_only_that_arms_run_ids(tmp_path):
    plain = write(
        tmp_path,
        EXPERIMENT.replace("    task: {metrics: {eval/score: {mean: 12.0}}}\n", ""),
        "p.yaml",
    )
    empty = write(
        tmp_path, EXPERIMENT.replace("{metrics: {eval/score: {mean: 12.0}}}", "{}"), "p.yaml"
    )
    ids = {}
    for name, text in (
        ("plain", plain.read_text()),
        ("empty", empty.read_text()),
        ("own", EXPERIMENT),
    ):
        path = write(tmp_path, text, "same-name.yaml")
        ids[name] = {r.label: r.run_id for r in expand(load_experiment(str(path), "quick"))}
    assert ids["plain"] == ids["empty"]  # an empty arm task is no change
    assert all(ids["own"][k] == ids["plain"][k] for k in ids["plain"] if k.startswith("b/"))
    assert all(ids["own"][k] != ids["plain"][k] for k in ids["plain"] if k.startswith("a/"))


def test_quickstart_run_ids_hash_the_experiments_task_as_before():
    """Arms without ``task:`` get the experiment's task, so their ids are the ones computed
    before arm tasks existed (RunSpec of ``asdict(experiment.task)``)."""
    experiment = load_experiment("quickstart", "quick")
    assert experiment.arm_tasks == {}
    task = asdict(experiment.task)
    before = [
        RunSpec(
            experiment.name,
            arm,
            seed,
            "quick",
            "dqn",
            task,
            {r: s.to_dict() for r, s in specs.items()},
        ).run_id
        for arm, specs in experiment.arms.items()
        for seed in experiment.seeds
    ]
    assert [r.run_id for r in expand(experiment)] == before


def test_roles_come_from_each_arms_task(tmp_path):
    text = (REPOSITORY / "configs" / "ppo-shared-vs-split-adam.yaml").read_text()
    one_role = (
        "  one_adam:\n"
        "    policy: {optimizer: adam, lr: 3.0e-4}\n"
        "    task: {optimizer_roles: shared}\n"
    )
    path = write(tmp_path, text.replace("seeds: 5\nmetrics:", one_role + "seeds: 5\nmetrics:"))
    experiment = load_experiment(str(path), "smoke")
    assert list(experiment.arms["one_adam"]) == ["policy"]
    assert list(experiment.arms["adam_shared"]) == ["actor", "critic"]
    wrong = one_role.replace("policy:", "actor:")
    path = write(tmp_path, text.replace("seeds: 5\nmetrics:", wrong + "seeds: 5\nmetrics:"))
    with pytest.raises(ConfigError, match=r"arms\.one_adam.*unknown role 'actor'"):
        load_experiment(str(path), "smoke")


def test_migrated_arm_settings_and_the_retired_arm_overrides():
    dqn = load_experiment("dqn-breakout-adam-vs-rmsprop", "quick")
    assert {arm: dqn.task_for(arm).loss for arm in dqn.arms} == {
        "adam_rainbow_mse": "mse",
        "rmsprop_mse": "mse",
        "adam_mse": "mse",
        "rmsprop_huber": "huber",
        "adam_huber": "huber",
    }
    ppo = load_experiment("ppo-shared-vs-split-adam", "full")
    assert ppo.task_for("adam_split").max_grad_norm is None
    assert ppo.task_for("adam_shared").max_grad_norm == 0.5
    assert ppo.task_for("adam_shared_trunk").network == "mlp_trunk"
    assert ppo.task_for("adam_shared_trunk").env_id == "HalfCheetah-v5"  # the budget's, kept
    with pytest.raises(ConfigError, match=r"arm_overrides moved.*arms\.adam_mse\.task"):
        load_experiment(
            "dqn-breakout-adam-vs-rmsprop", "smoke", ["task.arm_overrides={adam_mse: {loss: mse}}"]
        )
