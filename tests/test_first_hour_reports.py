"""A researcher's first hour, second round (issue 26), through the command line: reports that
say who won, exploring that never overwrites the documented report, loud failures for metric
names no run records, duplicate YAML keys, `report` where nothing ran, smoke tuning trials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suite.cli import main
from tests.test_first_hour import EXAMPLE, ROOT, one_line_error, run_cli


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def documented(tmp_path_factory):
    """The example at its smoke budget as the file documents it (2 seeds per arm)."""
    root = tmp_path_factory.mktemp("documented")
    args = ["run", str(EXAMPLE), "--budget", "smoke", "--workers", "2", "--results", str(root)]
    assert main(args) == 0
    return root, root / "tiny-classifier" / "smoke"


# --- 1: the report files say who won -------------------------------------------------------


def test_report_files_carry_the_comparison_and_the_winner(documented):
    _, directory = documented
    data = json.loads((directory / "report.json").read_text())
    (compared,) = data["comparison"]
    assert compared["metric"] == "train/accuracy" and compared["best"] in ("adam", "sgd_body")
    (row,) = compared["rows"]
    assert row["n"] == 2 and row["paired"] and row["ci_low"] <= row["difference"] <= row["ci_high"]
    winner = compared["winner"]
    assert winner.startswith("winner on train/accuracy: ")
    markdown = (directory / "report.md").read_text()
    html = (directory / "report.html").read_text()
    assert "## Comparison between arms" in markdown and 'id="comparison"' in html
    assert f"**{winner}**" in markdown and winner in html
    other = "sgd_body" if compared["best"] == "adam" else "adam"
    assert f"- {other} - {compared['best']}: " in markdown


def test_identical_arms_report_no_distinguishable_arm(tmp_path, capsys):
    args = ["run", str(EXAMPLE), "--budget", "smoke", "--workers", "1", "--results", str(tmp_path)]
    args += ["--set", "arms.sgd_body.body.optimizer=adam", "--set", "arms.sgd_body.body.lr=0.01"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    (markdown,) = (tmp_path / "tiny-classifier" / "smoke").glob("report-set-*.md")
    line = "winner on train/accuracy: none; no arm is distinguishable from"
    assert line in out and line in markdown.read_text()


# --- 2: exploring writes its own report, with the command that reproduces it --------------


def test_changed_arms_or_seeds_never_overwrite_the_documented_report(documented, capsys):
    root, directory = documented
    before = (directory / "report.md").read_bytes(), (directory / "report.json").read_bytes()
    base = ["run", str(EXAMPLE), "--budget", "smoke", "--workers", "1", "--results", str(root)]
    explorations = [
        ["--arms", "sgd_body", "--set", "arms.sgd_body.body.lr=1000"],
        ["--seeds", "1"],
    ]
    commands = []
    for options in explorations:
        code, out, err = run_cli([*base, *options], capsys)
        assert code == 0, err
        assert (directory / "report.md").read_bytes() == before[0]
        (path,) = [line.split()[-1] for line in out.splitlines() if line.endswith(".json")]
        data = json.loads(Path(path).read_text())
        assert Path(path).name.startswith("report-set-") and Path(path).parent == directory
        commands.append(data["reproduction"]["command"])
        assert "not the file's configuration" in Path(path).with_suffix(".md").read_text()
    assert commands[0] == (
        f"python -m suite run {EXAMPLE} --budget smoke --set arms.sgd_body.body.lr=1000 --seeds 2"
    )
    assert commands[1] == f"python -m suite run {EXAMPLE} --budget smoke --seeds 1"
    assert (directory / "report.md").read_bytes() == before[0]
    assert (directory / "report.json").read_bytes() == before[1]
    # The documented configuration, run again, writes the documented report.
    assert run_cli(base, capsys)[0] == 0
    data = json.loads((directory / "report.json").read_text())
    assert data["changes"] == [] and data["reproduction"]["seeds"]["sgd_body"] == [0, 1]


# --- 3: a metric no run records is an error naming the ones it does -------------------------


def test_a_metric_the_trainer_does_not_declare_fails_at_validation(tmp_path, capsys):
    args = ["run", str(EXAMPLE), "--budget", "smoke", "--results", str(tmp_path)]
    code, out, err = run_cli([*args, "--set", "metrics=[train/acc]"], capsys)
    assert code == 2 and out == ""
    line = one_line_error(err)
    assert "metrics[0]" in line and "'train/acc' is not recorded" in line
    assert "did you mean 'train/accuracy'" in line and "train/loss_final" in line
    assert not any(tmp_path.iterdir())


def test_a_claim_metric_no_run_records_fails_at_the_end_of_the_first_run(
    tmp_path, capsys, monkeypatch
):
    # The example trainer without its recorded_metrics declaration: known only once a run ends.
    source = (ROOT / "examples" / "tiny_classifier.py").read_text()
    start = source.index("def recorded_metrics")
    end = source.index("def train(")
    package = tmp_path / "issue26_trainers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "undeclared.py").write_text(source[:start] + source[end:])
    monkeypatch.syspath_prepend(str(tmp_path))  # run processes get this process's sys.path
    claim = (
        "claims:\n  - {id: c, statement: s, metric: train/loss, direction: lower, "
        "arm: adam, baseline: sgd_body}\n"
    )
    text = EXAMPLE.read_text().replace("examples.tiny_classifier", "issue26_trainers.undeclared")
    text = text.replace("metrics: [train/accuracy, train/loss_final]", "metrics: []") + claim
    experiment = tmp_path / "undeclared.yaml"
    experiment.write_text(text)
    results = tmp_path / "results"
    args = ["run", str(experiment), "--budget", "smoke", "--workers", "1"]
    code, _, err = run_cli([*args, "--results", str(results)], capsys)
    assert code == 2, err
    line = one_line_error(err)
    assert "claims[0].metric" in line and "'train/loss' is not recorded" in line
    assert "train/accuracy" in line and "did you mean 'train/loss_final'" in line
    # It stopped after the first run instead of running the grid to its end.
    assert len(list(results.rglob("result.json"))) < 4
    assert not list(results.rglob("report*.md"))
    # Run again: the finished run's metrics fail it before any new run starts.
    done = sorted(results.rglob("result.json"))
    code, out, err = run_cli([*args, "--results", str(results)], capsys)
    assert code == 2 and "'train/loss' is not recorded" in one_line_error(err)
    assert sorted(results.rglob("result.json")) == done and "[1/4]" not in out


def test_the_resume_check_takes_a_metric_any_finished_run_recorded(monkeypatch):
    # Runs from before a trainer recorded a metric lack it; one later run that has it will do.
    from types import SimpleNamespace

    from suite import cli, config
    from suite.errors import ConfigError

    runs = [
        SimpleNamespace(status="done", metrics={"eval/a": 1.0}),
        SimpleNamespace(status="done", metrics={"eval/a": 1.0, "eval/b": 2.0}),
        SimpleNamespace(status="failed", metrics={"eval/c": 3.0}),
    ]
    monkeypatch.setattr(config, "select_results", lambda experiment, store: runs)
    experiment = SimpleNamespace(metrics=["eval/b"], claims=[], trainer="t", path="e.yaml")
    cli._check_recorded_results(experiment, store=None)
    experiment.metrics = ["eval/c"]  # only a failed run has it
    with pytest.raises(ConfigError, match="'eval/c' is not recorded"):
        cli._check_recorded_results(experiment, store=None)


# --- 4: `report` where nothing ran ---------------------------------------------------------


def test_report_at_a_budget_without_runs_names_the_budgets_that_have_them(documented, capsys):
    root, _ = documented
    before = files_under(root)
    code, out, err = run_cli(["report", str(EXAMPLE), "--results", str(root)], capsys)
    assert code == 2 and out == ""
    line = one_line_error(err)
    assert "no runs at the quick budget" in line and "runs at: smoke" in line
    assert files_under(root) == before
    code, _, err = run_cli(["report", "quickstart", "--results", str(root)], capsys)
    assert code == 2 and "no budget of quickstart has runs" in one_line_error(err)
    missing = root.parent / "never-ran"
    code, _, err = run_cli(["report", "quickstart", "--results", str(missing)], capsys)
    assert code == 2 and "no results directory" in one_line_error(err)
    assert not missing.exists() and files_under(root) == before


# --- 5: --budget smoke --tuned tunes at smoke ----------------------------------------------


def test_smoke_tuning_trials_run_at_the_smoke_budget(capsys):
    def tuned(*options: str) -> dict:
        code, out, err = run_cli(["show", "quickstart", "--tuned", "--json", *options], capsys)
        assert code == 0, err
        return json.loads(out)["tuning"]

    smoke = json.dumps(tuned("--budget", "smoke"))
    assert '"budget": "smoke"' in smoke and '"budget": "quick"' not in smoke
    chosen = json.dumps(tuned("--budget", "smoke", "--set", "tuning.budget=quick"))
    assert '"budget": "quick"' in chosen
    assert '"budget": "quick"' in json.dumps(tuned("--budget", "quick"))


# --- 6: two equal keys in one mapping ------------------------------------------------------


def test_a_duplicate_key_is_an_error_naming_the_key_and_line(tmp_path, capsys):
    text = EXAMPLE.read_text()
    arms = text.index("  sgd_body:")
    duplicated = text[:arms] + "  adam:\n    body: {optimizer: sgd, lr: 0.1}\n" + text[arms:]
    path = tmp_path / "twice.yaml"
    path.write_text(duplicated)
    line_number = duplicated[:arms].count("\n") + 1
    code, out, err = run_cli(["show", str(path)], capsys)
    assert code == 2 and out == ""
    line = one_line_error(err)
    assert f"line {line_number}: duplicate key 'adam'" in line and str(path) in line
    code, _, err = run_cli(["show", "quickstart", "--set", "task={seed: 1, seed: 2}"], capsys)
    assert code == 2 and "duplicate key 'seed'" in one_line_error(err)


# --- 8: the trial tables do not call a 2-seed range a 95% CI --------------------------------


def test_trial_tables_show_the_range_over_tuning_seeds():
    from suite.report.tuning import trial_rows

    score = {"name": "adam@t00", "settings": {"q.lr": 1e-3}, "values": [4.0, 10.0]}
    score |= {"mean": 7.0, "ci_low": 4.0, "ci_high": 10.0, "n_bad": 0, "n_missing": 0}
    header, rows = trial_rows({"selected": None, "scores": [score]})
    assert "95% CI" not in " ".join(header) and "mean [min, max] over tuning seeds" in header
    assert rows[0][2] == "7 [4, 10]"


# --- 9: your own trainer's import path; roles that depend on the task ------------------------


def test_a_trainer_beside_the_experiment_file_runs_from_another_directory(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "mytrainers").mkdir(parents=True)
    elsewhere.mkdir()
    (project / "mytrainers" / "__init__.py").write_text("")
    source = (ROOT / "examples" / "tiny_classifier.py").read_text()
    (project / "mytrainers" / "tiny.py").write_text(source)
    text = EXAMPLE.read_text().replace("examples.tiny_classifier", "mytrainers.tiny")
    (project / "mine.yaml").write_text(text)
    # A new process, run from another folder: the run processes must find the module too.
    command = [sys.executable, "-m", "suite", "run", str(project / "mine.yaml")]
    command += ["--budget", "smoke", "--seeds", "1", "--results", str(tmp_path / "results")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "results").rglob("result.json"))) == 2


def test_a_trainer_found_nowhere_names_where_it_was_looked_for(tmp_path, capsys):
    text = EXAMPLE.read_text().replace("examples.tiny_classifier", "mytrainers.tiny")
    (tmp_path / "mine.yaml").write_text(text)
    code, _, err = run_cli(["show", str(tmp_path / "mine.yaml")], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "No module named 'mytrainers'" in line
    assert f"or from the experiment file's folder, {tmp_path.resolve()})" in line


def test_ppo_roles_name_the_setting_that_splits_them(tmp_path, capsys):
    path = tmp_path / "ppo.yaml"
    path.write_text(
        "trainer: ppo\ntask: {env_id: CartPole-v1}\nbudgets:\n  smoke: {total_timesteps: 512}\n"
        "arms:\n  adam:\n    actor: {optimizer: adam, lr: 1.0e-3}\n"
        "    critic: {optimizer: adam, lr: 1.0e-3}\n"
    )
    code, _, err = run_cli(["show", str(path), "--budget", "smoke"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "unknown role 'actor'" in line and "valid: policy" in line
    assert "with task.optimizer_roles: split the roles are actor, critic" in line


# --- 11: list runs and claims of one experiment; a summary that fits the terminal ------------


def test_list_runs_and_claims_of_one_experiment(documented, tmp_path, capsys):
    root, _ = documented
    args = ["list", "runs", "--json", "--results", str(root)]
    for name in ("tiny-classifier", str(EXAMPLE)):
        code, out, err = run_cli([*args[:2], name, *args[2:]], capsys)
        assert code == 0, err
        rows = json.loads(out)
        assert len(rows) >= 4 and {r["experiment"] for r in rows} == {"tiny-classifier"}
    code, _, err = run_cli([*args[:2], "tiny-clasifier", *args[2:]], capsys)
    assert code == 2 and "did you mean 'tiny-classifier'" in one_line_error(err)
    # A claim of your own file is listed when you name the file.
    claim = (
        "claims:\n  - {id: own-claim, statement: s, metric: train/accuracy, direction: higher, "
        "arm: adam, baseline: sgd_body}\n"
    )
    path = tmp_path / "tiny-classifier.yaml"
    path.write_text(EXAMPLE.read_text() + claim)
    code, out, err = run_cli(
        ["list", "claims", str(path), "--json", "--results", str(root)], capsys
    )
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["claim"] == "own-claim" and row["budget"] == "smoke" and row["n"] == 2


def test_the_closing_table_fits_the_terminal(documented):
    from suite.report.render import summary_lines

    _, directory = documented
    data = json.loads((directory / "report.json").read_text())
    data["metrics"] = ["train/accuracy", "train/loss_final", "train/accuracy"]  # a wider table
    rows = ("arm ", "adam ", "sgd_body ")
    wide = [line for line in summary_lines(data, data["comparison"]) if line.startswith(rows)]
    assert len(wide) == 3 and max(len(line) for line in wide) > 100
    lines = summary_lines(data, data["comparison"], width=80)
    table = [line for line in lines if line.startswith(rows)]
    assert all(len(line) <= 80 for line in table)
    assert sum(line.startswith("arm ") for line in table) >= 2  # blocks of columns
    cells = " ".join(table)
    for cell in {c for line in wide[1:] for c in line.split("  ") if "n=2" in c}:
        assert cell.strip() in cells  # no interval torn apart


# --- 7: one arm, one implementation ----------------------------------------------------------


def test_stacked_seeds_do_not_pool_with_lone_runs_of_another_implementation(tmp_path, capsys):
    base = ["run", "quickstart", "--budget", "smoke", "--arms", "adam", "--workers", "1"]
    base += ["--results", str(tmp_path)]
    assert run_cli(base, capsys)[0] == 0  # seed 0 with stable-baselines3's DQN
    before = files_under(tmp_path / "quickstart" / "smoke" / "adam")
    code, _, err = run_cli([*base, "--seeds", "2", "--stack-seeds"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "arms.adam: its finished runs are lone (stable-baselines3)" in line
    assert "stacked (agents/stacked.py)" in line and "run without --stack-seeds" in line
    assert files_under(tmp_path / "quickstart" / "smoke" / "adam") == before


def test_a_missing_schedule_argument_is_blamed_on_the_schedule(capsys):
    code, _, err = run_cli(
        ["show", "quickstart", "--set", "arms.adam.q.schedule.name=cosine"], capsys
    )
    assert code == 2
    line = one_line_error(err)
    assert "arms.adam.q.schedule.kwargs: schedule 'cosine'" in line and "'T_max'" in line
