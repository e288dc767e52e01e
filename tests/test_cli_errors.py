"""Bad input: one line naming the file and key (and valid choices), exit 2, nothing run, earlier
results untouched."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from suite.cli import main

QUICKSTART = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"


def write_experiment(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


def base_text() -> str:
    return QUICKSTART.read_text()


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


CASES = [
    # (edit of the quickstart text, expected fragments of the one-line error)
    (lambda t: t.replace("trainer: dqn", "trainer: dqm"), ["trainer", "unknown trainer", "dqn"]),
    (
        lambda t: t.replace("  env_id: CartPole-v1", "  env_idd: CartPole-v1"),
        ["task.env_idd", "unknown key", "env_id"],
    ),
    (
        lambda t: t.replace("  batch_size: 64", "  batch_size: sixty-four"),
        ["task.batch_size", "expected an integer"],
    ),
    (lambda t: t.replace("lr: 2.3e-3", "lr: -2.3e-3"), ["arms.adam.q", "lr must be"]),
    (
        lambda t: t.replace("optimizer: sgd", "optimizer: sgdd"),
        ["arms.sgd_momentum.q.optimizer", "unknown optimizer 'sgdd'", "adam"],
    ),
    (
        lambda t: t.replace("momentum: 0.9", "momentun: 0.9"),
        ["arms.sgd_momentum.q.kwargs.momentun", "unknown argument", "nesterov"],
    ),
    (
        lambda t: t.replace("    q: {optimizer: adam", "    policy: {optimizer: adam"),
        ["arms.adam.policy", "unknown role 'policy'", "valid: q"],
    ),
    (
        # The arm written as a reference to a misspelled spec file in configs/optimizers/.
        lambda t: t.replace(
            "q: {optimizer: rmsprop_deepmind, lr: 2.5e-4, kwargs: {decay: 0.95, eps: 0.01, "
            "loss_scale: 64}}",
            "q: nature-dqn-rmsprp",
        ),
        ["arms.rmsprop_deepmind.q", "unknown optimizer spec file", "nature-dqn-rmsprop"],
    ),
    (lambda t: t + "\nunknown_section: 1\n", ["unknown_section", "unknown key", "arms"]),
    (lambda t: t.replace("arms:", "arms: [\n"), ["malformed YAML"]),
    (lambda t: t.replace("  quick:", "  quik:"), ["budgets.quik", "unknown budget", "smoke"]),
]


@pytest.mark.parametrize(("edit", "fragments"), CASES)
def test_bad_experiment_file(tmp_path, capsys, edit, fragments):
    path = write_experiment(tmp_path, edit(base_text()))
    code, out, err = run_cli(
        ["run", str(path), "--budget", "smoke", "--results", str(tmp_path / "results")], capsys
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert str(path) in err
    for fragment in fragments:
        assert fragment in err
    assert not (tmp_path / "results").exists(), "a run started despite bad input"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--set", "arms.adam.q.lr=-1"], ["arms.adam.q", "lr must be"]),
        (["--set", "arms.adamm.q.lr=1e-4"], ["arms.adamm", "bad --set path", "adam"]),
        (["--set", "task.total_timesteps=many"], ["task.total_timesteps", "expected an integer"]),
        (["--set", "task.nope=1"], ["task.nope", "unknown key"]),
        (["--set", "lr"], ["--set", "dotted.key=value"]),
        (["--arms", "adam,nope"], ["--arms", "unknown arm 'nope'"]),
        (["--seeds", "0"], ["--seeds", "at least 1"]),
    ],
)
def test_bad_overrides(tmp_path, capsys, args, fragments):
    code, _, err = run_cli(
        ["run", "quickstart", "--budget", "smoke", "--results", str(tmp_path / "results"), *args],
        capsys,
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err
    assert not (tmp_path / "results").exists()


def test_unknown_experiment_lists_choices(capsys):
    code, _, err = run_cli(["show", "quickstrat"], capsys)
    assert code == 2 and "unknown experiment 'quickstrat'" in err and "quickstart" in err


def test_bad_input_leaves_earlier_results_untouched(tmp_path, capsys):
    results = tmp_path / "results"
    (results / "quickstart").mkdir(parents=True)
    (results / "quickstart" / "result.json").write_text('{"keep": true}')
    before = snapshot(results)
    code, _, _ = run_cli(
        ["run", "quickstart", "--results", str(results), "--set", "arms.adam.q.optimizer=nope"],
        capsys,
    )
    assert code == 2
    assert snapshot(results) == before


def test_usage_error_is_one_line_without_traceback():
    # Through a real process: exit status 2, one line, no traceback.
    done = subprocess.run(
        [sys.executable, "-m", "suite", "run", "quickstart", "--budget", "huge"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr and "smoke" in done.stderr
