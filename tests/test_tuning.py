"""Tuning at an equal budget (suite/tuning.py): trial settings, selection on a constructed grid
whose best setting is known, seed separation, equal budgets, resume in the middle of tuning, and
bad input through the command line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import pytest
import yaml

from suite import tuning
from suite.cli import main
from suite.config import CONFIG_DIR, load_experiment
from suite.errors import ConfigError
from suite.result import FINISHED, Result
from suite.store import Store, owner_id

METRIC = "eval/return_auc"
# The quickstart's smoke budget, shortened: one evaluation, at the end.
SHORT = ["task.eval_every=600", "task.final_evals=1"]


def section(**changes) -> dict:
    base = {
        "search": {
            "adam": {"q": {"lr": {"log_range": [1.0e-4, 1.0]}}},
            "sgd_momentum": {"q": {"lr": {"log_range": [1.0e-4, 1.0]}}},
        },
        "trials": 5,
        "seeds": [100, 101],
        "budget": "smoke",
        "select": {"metric": METRIC, "direction": "higher"},
    }
    return {**base, **changes}


def experiment_with(tuning_section: dict, arms=("adam", "sgd_momentum"), budget="smoke"):
    override = f"tuning={json.dumps(tuning_section)}"
    experiment = load_experiment("quickstart", budget, [override], arms=list(arms))
    tuning.check_tuning(experiment)
    return experiment


# --------------------------------------------------------------------------------------------
# Trial settings
# --------------------------------------------------------------------------------------------


def test_log_range_list_and_rounding_by_hand():
    spaces = {
        "q.lr": tuning.Space("log_range", (1.0e-4, 1.0e-2)),
        "q.kwargs.momentum": tuning.Space("list", (0.0, 0.5, 0.9)),
    }
    trials = tuning.trial_values(spaces, 3)
    # geomspace(1e-4, 1e-2, 3) = 1e-4, 1e-3, 1e-2; lists give trial i their i-th value.
    assert [t["q.lr"] for t in trials] == [1.0e-4, 1.0e-3, 1.0e-2]
    assert [t["q.kwargs.momentum"] for t in trials] == [0.0, 0.5, 0.9]
    # 4 significant digits: geomspace(1, 10, 3)[1] = sqrt(10) = 3.16227... -> 3.162
    (middle,) = [t["x"] for t in tuning.trial_values({"x": tuning.Space("log_range", (1, 10))}, 3)][
        1:2
    ]
    assert middle == 3.162


def test_log_uniform_is_reproducible_and_fills_the_box():
    spaces = {
        "generator.lr": tuning.Space("log_uniform", (1.0e-5, 1.0e-1)),
        "discriminator.lr": tuning.Space("log_uniform", (1.0e-5, 1.0e-1)),
    }
    first, again = tuning.trial_values(spaces, 8), tuning.trial_values(spaces, 8)
    assert first == again  # a fixed scrambled Halton sequence: same trials on every call
    for name in spaces:
        values = [t[name] for t in first]
        assert all(1.0e-5 <= v <= 1.0e-1 for v in values)
        assert len(set(values)) == 8
        # Quasi-random over the log box: each of the 4 decades holds some of the 8 points.
        decades = {math.floor(math.log10(v)) for v in values}
        assert decades == {-5, -4, -3, -2}
    # Two sampled fields are two dimensions: not the same value in every trial.
    assert [t["generator.lr"] for t in first] != [t["discriminator.lr"] for t in first]


def test_trials_are_runs_whose_ids_follow_their_settings():
    experiment = experiment_with(section())
    plan = tuning.build_plan(experiment)
    runs = tuning.trial_runs(experiment, plan)
    assert len(runs) == 2 * 5 * 2
    assert {r.arm for r in runs} == {
        f"{a}@t{i:02d}" for a in ("adam", "sgd_momentum") for i in range(5)
    }
    by_arm = {(r.arm, r.seed): r for r in runs}
    assert by_arm[("adam@t03", 100)].optimizers["q"]["lr"] == 0.1
    assert by_arm[("adam@t03", 100)].optimizers["q"]["clip_grad_norm"] == 10  # documented, kept
    assert len({r.run_id for r in runs}) == len(runs)
    # Another search gives other ids for the same trial names (no old result is taken for a
    # new setting), and the same ids where a trial's name and setting are unchanged (t04: lr 1).
    other = experiment_with(section(search={"adam": {"q": {"lr": {"log_range": [1.0e-3, 1.0]}}}}))
    other_runs = tuning.trial_runs(other, tuning.build_plan(other))
    shared = {r.run_id for r in other_runs} & {r.run_id for r in runs}
    assert shared == {by_arm[("adam@t04", seed)].run_id for seed in (100, 101)}


def test_set_task_changes_trials_and_evaluations_and_tuning_task_only_trials():
    base = f"tuning={json.dumps(section(task={'eval_every': 200}))}"
    sets = [base, "task.total_timesteps=1200", "task.eval_episodes=2"]
    experiment = load_experiment("quickstart", "smoke", sets, arms=["adam"])
    plan = tuning.build_plan(experiment)
    trial = plan.tasks["adam"]
    # --set task.* reaches the trials as it reaches the evaluation runs ...
    assert trial["total_timesteps"] == experiment.task.total_timesteps == 1200
    assert trial["eval_episodes"] == experiment.task.eval_episodes == 2
    # ... and tuning.task, applied last, changes the trials alone.
    assert trial["eval_every"] == 200 and experiment.task.eval_every == 300
    assert experiment.budget_label == (
        "smoke (changed by --set task.total_timesteps=1200, task.eval_episodes=2)"
    )
    # A speed setting changes how fast the runs go, not the budget (suite.config.SPEED_SETTINGS).
    faster = load_experiment("dcgan-cifar10-adam0-rmsprop-vs-sgd", "quick", ["task.compile=true"])
    assert faster.task.compile and faster.budget_label == "quick"


def test_a_plain_run_with_set_is_not_held_to_the_trials_tier():
    # A smoke run's 300 steps are fine for the smoke budget; at the quick tier the trials run at,
    # they end before the first update. Only --tuned runs trials, so only it refuses them.
    sets = ["task.total_timesteps=300", "tuning.budget=quick"]  # smoke trials run at smoke
    experiment = load_experiment("quickstart", "smoke", sets)
    tuning.check_tuning(experiment)
    with pytest.raises(ConfigError) as error:
        tuning.check_tuned(experiment)
    text = str(error.value)  # one line: file, key, that it is the trials, and why
    assert text.startswith(f"{experiment.path}: task.learning_starts: the tuning trials")
    assert "--set task.total_timesteps=300" in text and "\n" not in text


def test_all_roles_shorthand_applies_to_every_arm_and_role():
    experiment = experiment_with(
        {
            **section(),
            "search": {"all_roles": {"lr": {"log_range": [1.0e-4, 1.0e-2]}}},
            "trials": 3,
        },
        arms=("adam", "rmsprop_deepmind", "sgd_momentum"),
    )
    plan = tuning.build_plan(experiment)
    assert plan.counts == {"adam": 3, "rmsprop_deepmind": 3, "sgd_momentum": 3}
    assert [t.settings for t in plan.trials["rmsprop_deepmind"]] == [
        {"q.lr": 1.0e-4},
        {"q.lr": 1.0e-3},
        {"q.lr": 1.0e-2},
    ]


def test_run_kind_marks_trials_and_tuned_arms():
    assert tuning.run_kind("adam@t03") == "trial"
    assert tuning.run_kind("adam@tuned") == "tuned"
    assert tuning.run_kind("adam") == ""
    assert tuning.run_kind("sgd_both_lr1e-2") == ""


# --------------------------------------------------------------------------------------------
# Selection on a constructed grid
# --------------------------------------------------------------------------------------------

# Trial i's value of the metric (before a per-seed offset): trial 2 (lr 1e-2) is the best.
TRUE_MEANS = [1.0, 5.0, 9.0, 7.0, 3.0]


def fake_result(run, value: float, status: str = "done", **metrics) -> Result:
    return Result.for_run(run, status=status, metrics={METRIC: value, **metrics})


def constructed_results(experiment, plan, spoil=None) -> list[Result]:
    """A result for every trial run: TRUE_MEANS[trial] -/+ 0.5 on the two tuning seeds."""
    out = []
    for run in tuning.trial_runs(experiment, plan):
        index = int(run.arm.rpartition("@t")[2])
        mean = TRUE_MEANS[index] if index < len(TRUE_MEANS) else 4.0  # include_documented's
        value = mean + (0.5 if run.seed == plan.seeds[0] else -0.5)
        result = fake_result(run, value)
        if spoil:
            result = spoil(run, index, result)
        out.append(result)
    return out


def test_selection_picks_the_known_best_setting():
    experiment = experiment_with(section())
    plan = tuning.build_plan(experiment)
    chosen = tuning.select(plan, constructed_results(experiment, plan))
    for arm in ("adam", "sgd_momentum"):
        best = chosen[arm].selected
        assert best.trial.index == 2 and best.trial.settings == {"q.lr": 1.0e-2}
        assert best.mean == pytest.approx(9.0) and best.n_bad == 0
        assert [s.mean for s in chosen[arm].scores] == pytest.approx(TRUE_MEANS)
    lower = experiment_with(section(select={"metric": METRIC, "direction": "lower"}))
    plan_lower = tuning.build_plan(lower)
    chosen = tuning.select(plan_lower, constructed_results(lower, plan_lower))
    assert chosen["adam"].selected.trial.index == 0  # mean 1.0, the lowest


@pytest.mark.parametrize(
    "spoil",
    [
        lambda run, i, r: (
            Result.for_run(run, status="diverged") if i == 2 and run.seed == 101 else r
        ),
        lambda run, i, r: Result.for_run(run, status="failed") if i == 2 and run.seed == 100 else r,
        lambda run, i, r: fake_result(run, math.nan) if i == 2 and run.seed == 100 else r,
        lambda run, i, r: (
            fake_result(run, 50.0, **{"eval/collapsed": 1.0}) if i == 2 and run.seed == 100 else r
        ),
    ],
    ids=["diverged", "failed", "nan", "collapsed"],
)
def test_a_trial_with_a_bad_seed_loses(spoil):
    experiment = experiment_with(section())
    plan = tuning.build_plan(experiment)
    chosen = tuning.select(plan, constructed_results(experiment, plan, spoil))
    # Trial 2 had the best mean but one bad seed: trial 3 (mean 7) wins.
    assert chosen["adam"].selected.trial.index == 3
    assert chosen["adam"].scores[2].n_bad == 1


def test_selection_waits_for_every_trial_run():
    experiment = experiment_with(section())
    plan = tuning.build_plan(experiment)
    results = constructed_results(experiment, plan)[1:]  # adam@t00 seed 100 not run yet
    chosen = tuning.select(plan, results)
    assert chosen["adam"].selected is None and not chosen["adam"].complete
    assert chosen["sgd_momentum"].selected.trial.index == 2


# --------------------------------------------------------------------------------------------
# Seed separation and equal budgets
# --------------------------------------------------------------------------------------------


def test_selection_never_reads_evaluation_seeds(tmp_path):
    experiment = experiment_with(section(), budget="smoke")
    plan = tuning.build_plan(experiment)
    assert not set(plan.seeds) & set(experiment.seeds)
    store = Store(tmp_path)
    for result in constructed_results(experiment, plan):
        run = next(r for r in tuning.trial_runs(experiment, plan) if r.run_id == result.run_id)
        store.register([run])
        store.save_result(run, result)
    # Runs of a poor trial's settings at an evaluation seed, with a huge metric: never read.
    poor = next(r for r in tuning.trial_runs(experiment, plan) if r.arm == "adam@t00")
    for seed in experiment.seeds:
        leak = poor.__class__(**{**poor.__dict__, "seed": seed})
        store.register([leak])
        store.save_result(leak, fake_result(leak, 1.0e9))
    chosen = tuning.select(plan, tuning.trial_results(experiment, plan, store))
    assert chosen["adam"].selected.trial.index == 2
    assert {r.seed for r in tuning.trial_results(experiment, plan, store)} == set(plan.seeds)


def test_tuning_seeds_must_not_overlap_evaluation_seeds():
    with pytest.raises(ConfigError, match=r"tuning\.seeds.*evaluation seeds"):
        experiment_with(section(seeds=[0, 100]))  # the smoke budget evaluates seed 0
    with pytest.raises(ConfigError, match=r"tuning\.seeds"):
        experiment_with(section(seeds=[2, 100]), budget="quick")  # quick: seeds 0..2


def test_every_arm_gets_the_same_number_of_trials_unless_told():
    plan = tuning.build_plan(experiment_with(section(trials=4)))
    assert plan.counts == {"adam": 4, "sgd_momentum": 4} and plan.equal_budget
    plan = tuning.build_plan(experiment_with(section(trials=4, trials_per_arm={"adam": 6})))
    assert plan.counts == {"adam": 6, "sgd_momentum": 4} and not plan.equal_budget
    from suite.report.tuning import budget_text

    assert budget_text(plan.counts) == "unequal budgets: adam 6, sgd_momentum 4 trials"
    assert budget_text({"adam": 5, "sgd": 5}) == "an equal budget of 5 trials"


# --------------------------------------------------------------------------------------------
# Resume in the middle of tuning (a fake executor that records what it trains)
# --------------------------------------------------------------------------------------------


class FakeGrid:
    """An executor (execute_grid) that "trains" a run by writing its constructed result, and
    raises KeyboardInterrupt, like Ctrl-C, once it has trained ``stop_after`` runs."""

    def __init__(self, stop_after: int | None = None):
        self.trained: list[str] = []
        self.stop_after = stop_after

    def execute_grid(self, runs, store, settings, display):
        store.register(runs)
        store.reconcile(runs)
        owner = owner_id()
        for run in runs:
            if store.status(run.run_id) in FINISHED:
                continue
            if self.stop_after is not None and len(self.trained) >= self.stop_after:
                raise KeyboardInterrupt
            assert store.claim(run.run_id, owner)
            lr = run.optimizers["q"]["lr"]
            value = 9.0 - (math.log10(lr) + 2.0) ** 2  # best at lr 1e-2
            store.save_result(run, fake_result(run, value))
            store.finish(run.run_id, "done", owner)
            self.trained.append(run.run_id)
        return {"done": len(runs)}


def test_interrupted_tuning_resumes_without_repeating_a_trial(tmp_path, capsys):
    experiment = experiment_with(section())
    plan = tuning.build_plan(experiment)
    trials = tuning.trial_runs(experiment, plan)
    store = Store(tmp_path)
    first = FakeGrid(stop_after=7)
    with pytest.raises(KeyboardInterrupt):
        tuning.run_tuned(experiment, store, None, first, lambda: None)
    assert len(first.trained) == 7  # interrupted in the middle of the trials
    before = {p: p.read_bytes() for p in tmp_path.rglob("result.json")}
    second = FakeGrid()
    tuning.run_tuned(experiment, store, None, second, lambda: None)
    assert not set(first.trained) & set(second.trained), "a finished trial ran again"
    trial_ids = {r.run_id for r in trials}
    assert set(first.trained) | (set(second.trained) & trial_ids) == trial_ids
    assert all(p.read_bytes() == data for p, data in before.items())  # results untouched
    # Then the evaluation at the evaluation seeds: both documented arms and adam@tuned. SGD's
    # selected lr (1e-2) is its documented one: its documented runs serve, none runs twice.
    evaluated = [r for r in store.rows() if r["run_id"] in second.trained]
    evaluated = sorted((r["arm"], r["seed"]) for r in evaluated if r["run_id"] not in trial_ids)
    assert evaluated == sorted(
        (arm, seed) for arm in ("adam", "adam@tuned", "sgd_momentum") for seed in experiment.seeds
    )
    out = capsys.readouterr().out
    assert "adam: selected adam@t02 q.lr=0.01" in out
    third = FakeGrid()
    tuning.run_tuned(experiment, store, None, third, lambda: None)
    assert third.trained == []  # everything finished: no work twice


# --------------------------------------------------------------------------------------------
# Bad input through the command line: one line naming file and key, exit 2, nothing run
# --------------------------------------------------------------------------------------------


def write_variant(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((CONFIG_DIR / "quickstart.yaml").read_text())
    raw["tuning"] = section()
    edit(raw["tuning"])
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _set(path: str, value):
    def edit(node):
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


BAD = [
    (_set("search.adamm", {"q": {"lr": [1]}}), ["tuning.search.adamm", "unknown arm", "adam"]),
    (_set("search.adam", {"policy": {"lr": [1]}}), ["tuning.search.adam.policy", "unknown role"]),
    (_set("trails", 5), ["tuning.trails", "unknown key", "trials"]),
    (
        _set("search.adam.q", {"lrr": {"log_range": [1.0e-4, 1.0]}}),
        ["tuning.search.adam.q.lrr", "unknown key 'lrr'", "lr"],
    ),
    (
        _set("search.adam.q.lr", {"log_range": [1.0e-2, 1.0e-3]}),
        ["tuning.search.adam.q.lr.log_range", "empty range"],
    ),
    (
        _set("search.adam.q.lr", {"log_uniform": [0, 1.0e-3]}),
        ["tuning.search.adam.q.lr.log_uniform", "low > 0"],
    ),
    (_set("search.adam.q.lr", []), ["tuning.search.adam.q.lr", "empty list"]),
    (_set("search.adam.q.lr", [1.0e-3, 1.0e-2]), ["tuning.search.adam.q.lr", "2 values for 5"]),
    (_set("search.adam.q.lr", {"grid": [1, 2]}), ["tuning.search.adam.q.lr", "log_uniform"]),
    (_set("seeds", [0, 100]), ["tuning.seeds", "evaluation seeds"]),
    (_set("select.metric", "eval/nope"), ["tuning.select.metric", "eval/return_final"]),
    (_set("budget", "huge"), ["tuning.budget", "quick"]),
    (_set("trials", 0), ["tuning.trials", "1 to"]),
    (_set("task", {"total_timestep": 5}), ["tuning.task.total_timestep", "unknown key"]),
]


@pytest.mark.parametrize(("edit", "fragments"), BAD, ids=[f[1][0] for f in BAD])
def test_bad_tuning_section(tmp_path, capsys, edit, fragments):
    path = write_variant(tmp_path, edit)
    results = tmp_path / "results"
    for args in (["run", str(path), "--tuned", "--results", str(results)], ["show", str(path)]):
        code = main([*args[:2], "--budget", "smoke", *args[2:]])
        _, err = capsys.readouterr()
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert str(path) in err
        for fragment in fragments:
            assert fragment in err, err
    assert not results.exists(), "a run started despite bad input"


def test_tuned_needs_a_tuning_section_and_not_until_decided(tmp_path, capsys):
    results = tmp_path / "results"
    code = main(["run", "ppo-shared-vs-split-adam", "--tuned", "--results", str(results)])
    assert code == 2 and "--tuned" in capsys.readouterr().err
    code = main(
        [
            "run",
            "quickstart",
            "--tuned",
            "--until-decided",
            "--max-seeds",
            "6",
            "--results",
            str(results),
        ]
    )
    assert code == 2 and "--until-decided" in capsys.readouterr().err
    assert not results.exists()


# --------------------------------------------------------------------------------------------
# Through the real runner, at the smoke budget: both phases, the report, and no work twice
# --------------------------------------------------------------------------------------------


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("result.json"))
    }


def test_tuned_quickstart_smoke_end_to_end(tmp_path, capsys):
    small = section(
        search={"adam": {"q": {"lr": {"log_range": [1.0e-3, 1.0e-2]}}}}, trials=2, seeds=[100]
    )
    args = ["run", "quickstart", "--budget", "smoke", "--tuned", "--arms", "adam"]
    args += ["--results", str(tmp_path), "--workers", "2", f"--set=tuning={json.dumps(small)}"]
    args += [f"--set={s}" for s in SHORT]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 trial runs" in out and "adam: selected adam@t0" in out
    assert "Tuned at an equal budget of 2 trials" in out
    runs = Store(tmp_path).rows("quickstart", "smoke")
    assert sorted(r["arm"] for r in runs) == ["adam", "adam@t00", "adam@t01", "adam@tuned"]
    assert {r["status"] for r in runs} == {"done"}
    # SHORT changes task settings with --set: the report is the changed settings' own
    # (report-set-HASH.*), beside the documented one, which this run did not write.
    directory = tmp_path / "quickstart" / "smoke"
    (markdown,) = directory.glob("report-set-*.md")
    stem = markdown.stem
    assert not (directory / "report.md").exists()
    report = markdown.read_text()
    assert "## Tuned at an equal budget of 2 trials" in report
    assert f"![sensitivity adam]({stem}_files/sensitivity_adam.png)" in report
    assert (directory / f"{stem}_files" / "sensitivity_adam.png").is_file()
    data = json.loads((directory / f"{stem}.json").read_text())
    assert data["tuning"]["arms"][0]["tuned"][METRIC]["n"] == 1
    before = _hashes(tmp_path)
    assert main(args) == 0  # again: nothing runs twice, every result file stays as it was
    assert _hashes(tmp_path) == before
    capsys.readouterr()
    assert main(["list", "runs", "--results", str(tmp_path), "--json"]) == 0
    marks = {row["arm"]: row["tuning"] for row in json.loads(capsys.readouterr().out)}
    assert marks == {"adam": "-", "adam@t00": "trial", "adam@t01": "trial", "adam@tuned": "tuned"}


# --------------------------------------------------------------------------------------------
# The report: two verdicts per claim, both tables, a sensitivity figure per arm
# --------------------------------------------------------------------------------------------

CLAIM = {
    "id": "test-adam-beats-sgd",
    "statement": "Adam beats SGD with momentum on CartPole",
    "metric": METRIC,
    "direction": "higher",
    "arm": "adam",
    "baseline": "sgd_momentum",
}


def tuning_report(tmp_path, search: dict, values: dict[str, float]) -> dict:
    """The report's tuning section over constructed trials and evaluation runs: each
    evaluation run of arm A scores values[A] + its seed."""
    from suite.config import expand
    from suite.report.tuning import tuning_section

    overrides = [f"tuning={json.dumps(section(search=search))}", f"claims={json.dumps([CLAIM])}"]
    experiment = load_experiment("quickstart", "quick", overrides, arms=["adam", "sgd_momentum"])
    plan = tuning.build_plan(experiment)
    store = Store(tmp_path)

    def save(run, value):
        store.register([run])
        store.save_result(run, fake_result(run, value))

    for result in constructed_results(experiment, plan):
        run = next(r for r in tuning.trial_runs(experiment, plan) if r.run_id == result.run_id)
        save(run, result.metrics[METRIC])
    selection = tuning.select(plan, tuning.trial_results(experiment, plan, store))
    for run in tuning.evaluation_runs(experiment, plan, selection):
        save(run, values[run.arm] + run.seed)
    assert len(expand(experiment)) == 6  # documented: 2 arms x seeds 0..2
    return tuning_section(experiment, store, tmp_path / "quickstart" / "quick")


def test_report_section_gives_each_claim_two_verdicts(tmp_path):
    from suite.report.tuning import comparison_tables, markdown

    search = {
        "adam": {"q": {"lr": {"log_range": [1.0e-4, 1.0]}}},
        "sgd_momentum": {"q": {"lr": {"log_range": [1.0e-5, 1.0e-1]}}},  # t02: 1e-3
    }
    # As documented Adam wins by far; tuned, SGD wins by far (values per evaluation seed).
    values = {"adam": 100.0, "sgd_momentum": 10.0, "adam@tuned": 100.0, "sgd_momentum@tuned": 200.0}
    data = tuning_report(tmp_path, search, values)
    (claim,) = data["claims"]
    assert claim["documented"]["measured"] == pytest.approx(90.0)  # adam - sgd, paired
    assert claim["tuned"]["measured"] == pytest.approx(-100.0)
    assert claim["documented"]["verdict"] != claim["tuned"]["verdict"]
    assert data["best"] == {"documented": "adam", "tuned": "sgd_momentum"}
    arms = {a["arm"]: a for a in data["arms"]}
    assert arms["adam"]["documented_settings"] == {"q.lr": 2.3e-3}
    assert arms["adam"]["selected"]["settings"] == {"q.lr": 1.0e-2}
    assert arms["sgd_momentum"]["tuned"][METRIC]["mean"] == pytest.approx(201.0)
    titles = [title for title, _, _ in comparison_tables(data)]
    assert titles == [
        "Claims: as documented and tuned",
        "As documented",
        "Tuned at an equal budget of 5 trials",
    ]
    text = "\n".join(markdown({"tuning": data, "experiment": "quickstart", "budget": "quick"}))
    assert "| test-adam-beats-sgd |" in text and "(adam@t02)" in text
    for arm in ("adam", "sgd_momentum"):
        figure = tmp_path / "quickstart" / "quick" / data["figures"][arm]
        assert figure.is_file() and figure.read_bytes()[:4] == b"\x89PNG"


def test_the_tuned_best_arm_names_an_arm_without_a_search_as_not_tuned(tmp_path):
    # Only sgd_momentum is searched; adam, as documented, outscores its tuned settings. The best
    # line must not call adam "tuned at an equal budget" (the DCGAN report named its clip arm so).
    search = {"sgd_momentum": {"q": {"lr": {"log_range": [1.0e-5, 1.0e-1]}}}}
    values = {"adam": 300.0, "sgd_momentum": 10.0, "sgd_momentum@tuned": 200.0}
    data = tuning_report(tmp_path, search, values)
    assert data["best"] == {"documented": "adam", "tuned": "adam (not tuned)"}


def test_no_best_arm_is_named_across_arms_on_different_scales():
    from suite.report.tuning import _best

    def row(arm, mean, scales):
        return {"arm": arm, "trials": [1], "tuned": {"m": {"mean": mean, "scales": scales}}}

    same = [row("a", 3.0, ["w1"]), row("b", 2.0, ["w1"])]
    assert _best(same, "tuned", "m", "higher") == "a"
    mixed = [row("a", 3.0, ["w1"]), row("b", 2.0, ["w2"])]
    assert _best(mixed, "tuned", "m", "higher") == "none: the arms' runs are on different scales"


def test_a_selected_documented_setting_reuses_the_documented_runs(tmp_path):
    experiment = experiment_with(section())  # sgd_momentum's trial 2 is lr 1e-2, its documented
    plan = tuning.build_plan(experiment)
    chosen = tuning.select(plan, constructed_results(experiment, plan))
    assert tuning.selected_documented(experiment, chosen["sgd_momentum"])
    assert not tuning.selected_documented(experiment, chosen["adam"])  # 1e-2, not 2.3e-3
    arms = {run.arm for run in tuning.evaluation_runs(experiment, plan, chosen)}
    assert arms == {"adam", "sgd_momentum", "adam@tuned"}
    store = Store(tmp_path)
    documented = [Result.for_run(run, metrics={METRIC: 5.0}) for run in expand_runs(experiment)]
    results = tuning.tuned_results(experiment, plan, chosen, store, documented)
    assert [(r.arm, r.metrics[METRIC]) for r in results] == [("sgd_momentum", 5.0)]


def test_include_documented_makes_the_documented_setting_the_last_trial():
    # Trial 5 is the documented setting; scoring 20 on the tuning seeds, it is selected.
    experiment = experiment_with(section(include_documented=True))
    plan = tuning.build_plan(experiment)
    assert plan.counts == {"adam": 6, "sgd_momentum": 6} and plan.equal_budget
    last = plan.trials["adam"][-1]
    assert (last.index, last.settings) == (5, {"q.lr": 2.3e-3})  # the quickstart's adam lr
    assert last.optimizers == {r: s.to_dict() for r, s in experiment.arms["adam"].items()}
    assert [t.settings for t in plan.trials["adam"][:5]] == [
        t.settings for t in tuning.build_plan(experiment_with(section())).trials["adam"]
    ]  # the searched trials are those without it

    def documented_best(run, index, result):
        return fake_result(run, 20.0) if index == 5 else result

    chosen = tuning.select(plan, constructed_results(experiment, plan, documented_best))
    assert tuning.selected_documented(experiment, chosen["adam"])
    arms = {run.arm for run in tuning.evaluation_runs(experiment, plan, chosen)}
    assert arms == {"adam", "sgd_momentum"}  # both documented: no ARM@tuned runs


def test_include_documented_needs_every_searched_value_in_the_arm():
    search = {"adam": {"q": {"kwargs.eps": {"log_range": [1.0e-8, 1.0e-4]}}}}
    with pytest.raises(ConfigError) as error:
        experiment_with(section(search=search, include_documented=True))
    assert error.value.key == "tuning.search.adam.q.kwargs.eps"
    assert "include_documented needs the documented value" in error.value.message


def expand_runs(experiment):
    from suite.config import expand

    return expand(experiment)


def test_a_tuned_run_recorded_under_another_cuda_graphs_setting_is_still_selected(tmp_path):
    # cuda_graphs changes speed, not results (suite.result.NOT_IN_IDENTITY): the tuned comparison
    # finds adam@tuned's runs recorded with it switched, as the run id and the report do.
    experiment = experiment_with(section())
    plan = tuning.build_plan(experiment)
    chosen = tuning.select(plan, constructed_results(experiment, plan))
    tuned = [r for r in tuning.evaluation_runs(experiment, plan, chosen) if r.arm == "adam@tuned"]
    store = Store(tmp_path)
    store.register(tuned)
    for run in tuned:
        graphs = not run.task.get("cuda_graphs", True)
        switched = dataclasses.replace(run, task={**run.task, "cuda_graphs": graphs})
        assert switched.run_id == run.run_id
        store.save_result(switched, fake_result(switched, 7.0))
    results = tuning.tuned_results(experiment, plan, chosen, store, [])
    assert sorted((r.arm, r.seed) for r in results) == [("adam", seed) for seed in experiment.seeds]
