"""A researcher's first hour (issue 16), through the command line: what `run` says at the end,
`--set`, early validation, Ctrl-C, `list`, numbers in the summary, the report, your own trainer."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suite.cli import main
from suite.report.listing import format_rows
from suite.run.display import Display

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tiny-classifier.yaml"


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


# --- 1 and 10: `run` ends with who won and where the report is; your own trainer -------------


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """The custom-trainer example at its smoke budget (2 seeds), as a user runs it; in this
    process, which shares its process server with the other runs of the tests (a new
    interpreter would import torch and start one of its own: a minute on a loaded machine)."""
    root = tmp_path_factory.mktemp("example")
    args = ["run", str(EXAMPLE), "--budget", "smoke", "--workers", "2", "--results", str(root)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return root, subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_own_trainer_runs_and_run_names_winner_and_report_paths(example_run):
    root, completed = example_run
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "runs: 4 done" in out
    assert "comparison on train/accuracy (higher is better): best: " in out
    assert "sgd_body - adam" in out or "adam - sgd_body" in out
    assert "P(" in out and "95% CI" in out
    winner = [line for line in out.splitlines() if "winner on train/accuracy:" in line]
    assert len(winner) == 1
    directory = root / "tiny-classifier" / "smoke"
    for name in ("report.html", "report.md", "report.json"):
        assert (directory / name).is_file()
        assert str(directory / name) in out
    data = json.loads((directory / "report.json").read_text())
    assert {a["name"] for a in data["arms"]} == {"adam", "sgd_body"}
    # The reproduction card lists each arm's full resolved spec.
    card = data["reproduction"]["arms"]
    assert card["sgd_body"]["body"]["kwargs"] == {"momentum": 0.9}
    assert card["sgd_body"]["body"]["lr"] == 0.1
    markdown = (directory / "report.md").read_text()
    assert '| arm sgd_body | body: sgd lr=0.1 kwargs={"momentum": 0.9} schedule=none' in markdown
    assert "## Samples" not in markdown  # the example records no images


def test_identical_arms_are_not_distinguishable_and_the_override_is_shown(tmp_path, capsys):
    # sgd_body made identical to adam: the same seeds give the same numbers, a CI of [0, 0].
    args = ["run", str(EXAMPLE), "--budget", "smoke", "--workers", "1"]
    args += ["--results", str(tmp_path), "--set", "arms.sgd_body.body.optimizer=adam"]
    args += ["--set", "arms.sgd_body.body.lr=0.01"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    # The old momentum kwarg is dropped, in one line naming it.
    notes = [line for line in err.splitlines() if "momentum" in line]
    assert len(notes) == 1 and "arms.sgd_body.body" in notes[0] and "dropped" in notes[0]
    assert "not distinguishable at n = 2" in out
    assert "winner on train/accuracy: none" in out
    # Wherever the arm is listed, its overridden fields are shown.
    assert "sgd_body (body.optimizer=adam, body.lr=0.01)" in out
    assert "sgd_body/seed0 (body.optimizer=adam, body.lr=0.01) done" in out


def test_reference_arm_and_a_mistyped_one(example_run, capsys):
    root, _ = example_run
    base = ["report", str(EXAMPLE), "--budget", "smoke", "--results", str(root)]
    code, out, _ = run_cli([*base, "--reference", "sgd_body"], capsys)
    assert code == 0
    assert "reference: sgd_body" in out and "adam - sgd_body" in out
    code, _, err = run_cli([*base, "--reference", "sgd_bdy"], capsys)
    assert code == 2
    assert "did you mean 'sgd_body'" in one_line_error(err)


def test_own_trainer_missing_a_function_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg" / "__init__.py").write_text("")
    module = "from dataclasses import dataclass\n@dataclass\nclass Config:\n    steps: int = 1\n"
    module += "def roles(config):\n    return ('body',)\n"
    (tmp_path / "my_pkg" / "half_trainer.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    text = EXAMPLE.read_text().replace("examples.tiny_classifier", "my_pkg.half_trainer")
    experiment = tmp_path / "half.yaml"
    experiment.write_text(text)
    code, _, err = run_cli(["run", str(experiment), "--results", str(tmp_path / "r")], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "trainer" in line and "lacks train" in line
    assert not (tmp_path / "r").exists()


def test_list_runs_tells_overridden_runs_apart(example_run, tmp_path, capsys):
    root, _ = example_run
    args = ["run", str(EXAMPLE), "--budget", "smoke", "--workers", "1", "--arms", "adam"]
    args += ["--seeds", "1", "--results", str(root), "--set", "arms.adam.head.lr=0.05"]
    assert run_cli(args, capsys)[0] == 0
    code, out, _ = run_cli(["list", "runs", "--json", "--results", str(root)], capsys)
    assert code == 0
    seed0 = [r for r in json.loads(out) if r["arm"] == "adam" and r["seed"] == 0]
    assert len(seed0) == 2 and len({r["spec"] for r in seed0}) == 2


# --- 2, 3: --set ----------------------------------------------------------------------------


def show(args: list[str], capsys) -> dict:
    code, out, err = run_cli(["show", "quickstart", "--json", *args], capsys)
    assert code == 0, err
    return json.loads(out)


def test_set_creates_missing_mappings(capsys):
    resolved = show(["--budget", "smoke", "--set", "arms.adam.q.kwargs.eps=1e-6"], capsys)
    assert resolved["arms"]["adam"]["q"]["kwargs"] == {"eps": 1e-6}
    resolved = show(
        [
            "--set",
            "arms.adam.q.schedule.name=cosine",
            "--set",
            "arms.adam.q.schedule.kwargs.T_max=100",
        ],
        capsys,
    )
    assert resolved["arms"]["adam"]["q"]["schedule"] == {"name": "cosine", "kwargs": {"T_max": 100}}


def test_set_does_not_invent_an_arm(capsys):
    code, _, err = run_cli(["show", "quickstart", "--set", "arms.adamm.q.lr=1e-3"], capsys)
    assert code == 2
    assert "did you mean 'adam'" in one_line_error(err)


def test_set_beats_the_budget_and_zero_seeds_is_an_error(tmp_path, capsys):
    # The full budget says seeds: 10; --set wins, as for every other key.
    assert show(["--budget", "full", "--set", "seeds=2"], capsys)["seeds"] == [0, 1]
    assert (
        show(["--budget", "full", "--set", "task.total_timesteps=7000"], capsys)["task"][
            "total_timesteps"
        ]
        == 7000
    )
    args = ["run", "quickstart", "--budget", "smoke", "--set", "seeds=0"]
    code, out, err = run_cli([*args, "--results", str(tmp_path)], capsys)
    assert code == 2 and out == ""
    assert "seeds" in one_line_error(err)
    assert not any(tmp_path.iterdir())


# --- 4, 5, 8: validation before anything runs, with "did you mean" --------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--set", "task.env_id=Acrobot-v9"], ["task.env_id", "did you mean 'Acrobot-v1'"]),
        (["--set", "task.network=nature_cnn"], ["task.network", "atari"]),
        # 600 steps, first update after learning_starts 1000: no optimizer step, refused.
        (["--set", "task.learning_starts=1000"], ["task.learning_starts", "no optimizer step"]),
        (["--set", "arms.adam.q.optimizer=adamm"], ["unknown optimizer", "did you mean 'adam'"]),
        (["--set", "arms.adam.q.optimizer=Radam"], ["did you mean 'radam'"]),
        (["--arms", "adamm"], ["--arms", "did you mean 'adam'"]),
    ],
)
def test_bad_settings_fail_before_any_run(tmp_path, capsys, args, fragments):
    base = ["run", "quickstart", "--budget", "smoke", "--results", str(tmp_path)]
    code, out, err = run_cli([*base, *args], capsys)
    assert code == 2 and out == ""
    line = one_line_error(err)
    for fragment in fragments:
        assert fragment in line
    assert not any(tmp_path.iterdir())  # no run was registered


def test_missing_data_fails_before_any_run(tmp_path, capsys):
    args = ["run", "vae-adabelief-vs-adam", "--budget", "smoke", "--results", str(tmp_path)]
    code, out, err = run_cli([*args, "--set", f"task.data.path={tmp_path / 'nope'}"], capsys)
    assert code == 2 and out == ""
    line = one_line_error(err)
    assert "task.data.path: data not found at" in line and str(tmp_path / "nope") in line
    assert not any(tmp_path.iterdir())


def test_unknown_experiment_suggests_the_close_name(capsys):
    code, _, err = run_cli(["run", "quickstrat"], capsys)
    assert code == 2
    assert "did you mean 'quickstart'" in one_line_error(err)


# --- 6: Ctrl-C -----------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["loading", "forkserver"])
def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, phase):
    # loading: 1 s in, the command still imports and validates; forkserver: just after the
    # header line, while the process server imports torch (its preloads, several seconds).
    process = subprocess.Popen(
        [sys.executable, "-m", "suite", "run", "quickstart", "--budget", "smoke"]
        + ["--workers", "1", "--results", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group, as a terminal's Ctrl-C signals one
    )
    if phase == "loading":
        time.sleep(1.0)
    else:
        assert "quickstart [smoke budget]" in process.stdout.readline()
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["interrupted: run the same command again to resume"]


# --- 7: list --------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["optimizers", "experiments"])
def test_list_wraps_to_the_terminal_without_cutting_words(what, capsys, monkeypatch):
    # In this process: the width comes from $COLUMNS, and captured output is not a terminal,
    # as a pipe is not (suite/report/render.py: terminal_width).
    def listing(*args: str, columns: str = "") -> str:
        if columns:
            monkeypatch.setenv("COLUMNS", columns)
        else:
            monkeypatch.delenv("COLUMNS", raising=False)
        code, out, err = run_cli(["list", what, *args], capsys)
        assert code == 0, err
        return out

    words = {
        w for row in json.loads(listing("--json")) for v in row.values() for w in str(v).split()
    }
    words |= {w.rstrip(",") for w in words}
    lines = listing(columns="160").splitlines()
    assert len(lines) > len(json.loads(listing("--json"))) + 1  # long cells did wrap
    for line in lines[1:]:
        for word in line.split():
            assert word in words or word.rstrip(",") in words, f"{word!r} cut in {line!r}"
    # On a pipe (no COLUMNS), nothing wraps: one line per row, for grep and awk.
    assert len(listing().splitlines()) == len(json.loads(listing("--json"))) + 1


def test_format_rows_wraps_long_cells_at_item_boundaries():
    rows = [{"name": "a", "kwargs": ", ".join(f"arg{i}: float = {i}" for i in range(12))}]
    lines = format_rows(rows, width=40)
    assert all(len(line) <= 40 for line in lines)
    cells = [line[len("name  ") :].strip() for line in lines[1:]]
    items = [item for cell in cells for item in cell.rstrip(",").split(", ")]
    assert items == [f"arg{i}: float = {i}" for i in range(12)]
    assert format_rows(rows, width=None)[1].endswith("arg11: float = 11")  # a pipe: no wrap


def test_list_into_a_closed_pipe_is_quiet():
    # The experiments listing: 2 kB of JSON without importing torch (a second, not fifteen).
    completed = subprocess.run(
        f"'{sys.executable}' -m suite list experiments --json | head -c 1500",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert len(completed.stdout) == 1500
    assert completed.stderr == ""


# --- 8, 9: numbers and the report of an RL run ---------------------------------------------


def test_rl_summary_numbers_and_report(tmp_path, capsys):
    args = ["run", "quickstart", "--budget", "smoke", "--arms", "adam,sgd_momentum"]
    code, out, err = run_cli([*args, "--workers", "2", "--results", str(tmp_path)], capsys)
    assert code == 0, err
    # Steps are whole numbers, and a threshold never reached says so.
    row = next(line for line in out.splitlines() if line.startswith("adam "))
    # One seed: no interval ("-"), steps as integers, and the censoring said in words.
    assert "600 [-, -] n=1; censored: never reached 475 in 1/1" in row
    assert "e+0" not in out
    assert "eval/return_final: mean greedy evaluation return" in out
    assert "not distinguishable at n = 1" in out
    directory = tmp_path / "quickstart" / "smoke"
    markdown = (directory / "report.md").read_text()
    assert "## Samples" not in markdown and "No sample images" not in markdown
    assert 'id="samples"' not in (directory / "report.html").read_text()
    data = json.loads((directory / "report.json").read_text())
    curves = list(data["curves"])
    assert curves[0] == "eval/return"  # the first metric's curve comes first
    # CartPole's episode length is its return: the same curve is drawn once.
    assert "eval/episode_length" not in curves
    card = data["reproduction"]["arms"]["adam"]["q"]
    assert card["lr"] == 2.3e-3 and card["clip_grad_norm"] == 10
    # A run of some arms reports the whole experiment: the arm not run is listed without runs,
    # and the report of earlier runs of other arms is not replaced by one of these alone.
    runs = {arm["name"]: arm["n_runs"] for arm in data["arms"]}
    assert runs == {"adam": 1, "rmsprop_deepmind": 0, "sgd_momentum": 1}
    # 11: a finished run drops its checkpoint (model, replay buffer, envs: 47 MB at quick).
    run_dirs, kept = list(directory.glob("*/seed*")), ["config.json", "log.txt", "result.json"]
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        assert sorted(p.name for p in run_dir.iterdir()) == kept


# --- resume: the live display says so ------------------------------------------------------


def test_display_says_a_run_resumed(capsys):
    class Run:
        run_id, arm, label = "r1", "adam", "adam/seed0"

    display = Display(notes={"adam": "q.lr=0.001"})
    display.begin([Run()], done=0)
    display.event("resumed", "r1", {"checkpoint": "checkpoint.pt"})
    out = capsys.readouterr().out
    assert out.strip() == "adam/seed0 (q.lr=0.001): resumed from checkpoint.pt"


def test_a_resumed_run_tells_the_display(tmp_path):
    from suite.result import RunSpec
    from suite.run.context import RunContext

    class Events(list):
        put = list.append

    run = RunSpec("e", "adam", 0, "smoke", "dqn", {}, {})
    first = RunContext(run, tmp_path, "cpu")
    first.save_checkpoint({"step": 3})
    first.close()
    events = Events()
    again = RunContext(run, tmp_path, "cpu", events=events)
    assert again.load_checkpoint() == {"step": 3}
    again.close()
    assert events == [("resumed", run.run_id, {"checkpoint": "checkpoint.pt"})]


def test_steps_print_as_integers_and_say_when_censored():
    from suite.judge.evaluate import format_value
    from suite.report.render import _metric_cell

    steps = {"mean": 30000.0, "ci_low": 30000.0, "ci_high": 30000.0, "n": 3, "n_censored": 3}
    assert (
        _metric_cell(steps, 475) == "30000 [30000, 30000] n=3; censored: never reached 475 in 3/3"
    )
    reached = {**steps, "mean": 12345.6, "ci_low": 9000.2, "n_censored": 0}
    assert _metric_cell(reached, 475) == "12346 [9000, 30000] n=3"
    return_auc = {"mean": 31234.5, "ci_low": 30000.0, "ci_high": 32000.0, "n": 3}
    assert _metric_cell(return_auc) == "31234 [30000, 32000] n=3"  # no 3.123e+04
    assert format_value(-15000.0, signed=True) == "-15000"


def test_an_interrupted_in_process_main_leaves_ctrl_c_working(monkeypatch):
    # main([...]) called in a process (tests, a notebook) used to leave SIGINT ignored, and
    # every process started afterwards inherited it: a later Ctrl-C did nothing.
    import signal

    from suite import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "list", interrupted)
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["list", "experiments"]) == cli.EXIT_INTERRUPTED
    assert signal.getsignal(signal.SIGINT) is before is not signal.SIG_IGN
