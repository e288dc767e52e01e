"""Property tests: malformed and hostile experiment files and ``--set`` values end in one line
on stderr naming the file and exit status 2 (or validate cleanly): never a traceback, never an
import or a command a config did not name as an optimizer, never a run started.

Most examples go through ``suite.cli.main`` in-process with ``show`` (validation only, fast);
a few go through a real ``suite run`` process with a results directory that must stay absent.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suite.cli import main

QUICKSTART = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"
BASE = yaml.safe_load(QUICKSTART.read_text())
EXAMPLES = {"count": 0}

KEYS = [
    "trainer",
    "task",
    "budgets",
    "arms",
    "seeds",
    "metrics",
    "claims",
    "description",
    "smoke",
    "quick",
    "full",
    "adam",
    "q",
    "optimizer",
    "lr",
    "kwargs",
    "schedule",
    "name",
    "clip_grad_norm",
    "lookahead",
    "k",
    "alpha",
    "env_id",
    "env_kwargs",
    "total_timesteps",
    "net_arch",
    "gamma",
    "batch_size",
    "eval_every",
    "momentum",
    "betas",
    "T_max",
    "step_size",
]

# Text that a hostile or careless file may hold: arbitrary-object tags the safe loader must
# refuse, other standard tags, self-referring aliases and an alias bomb, odd numbers, unicode.
HOSTILE = [
    '!!python/object/apply:os.system ["touch /tmp/suite-pwned"]',
    "!!python/name:os.system",
    "!!python/object/new:subprocess.Popen [[touch, /tmp/suite-pwned]]",
    "!!python/module:os",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [a: 1, b: 2]",
    "!!timestamp 2001-12-14t21:59:43.10-05:00",
    "!custom 1",
    "&a [*a]",
    "&a {x: *a}",
    "*undefined",
    ".nan",
    "-.inf",
    "1e400",
    "0x1F",
    "1_000",
    "99999999999999999999999999999999999999",
    "-1",
    "0",
    "~",
    "''",
    "[]",
    "{}",
    "{{}}",
    "[[[[[[[[]]]]]]]]",
    "'\u202e\u0000'",
    '"\\ud800"',
    "ünïcödé: ✓",
    "?",
    "- - -",
    "%YAML 1.1",
    "---\n---",
    "'os:system'",
    "os.path:join",
    "tests.helpers:NaNAfterSteps",
    "torch.optim:Optimizer",
    "step",
    "kfac",
]

BOMB = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["adam", "sgd", "kfac", "dqn", "cosine", "huber", "CartPole-v1", "smoke"]),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(-3, 3))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=16,
)


def run_cli(args: list[str]) -> tuple[int, str]:
    """``suite.cli.main`` in-process: its exit status and stderr (argparse exits included)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit_:
            code = exit_.code
    return code, err.getvalue()


def assert_rejected_or_valid(path: Path, extra: list[str] = ()) -> None:
    EXAMPLES["count"] += 1
    code, err = run_cli(["show", str(path), "--budget", "smoke", *extra])
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("error: ") and "Traceback" not in err
        assert str(path) in lines[0], err
    assert not Path("/tmp/suite-pwned").exists(), "a YAML tag ran a command"


def write(text: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="suite-bad-input-"))
    path = directory / "mine.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def dump(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def mutate(data, draw, depth: int = 0):
    """Replace, delete or add one value somewhere inside ``data`` (a copy)."""
    if not isinstance(data, dict) or not data or depth > 5:
        return draw(values)
    data = dict(data)
    key = draw(st.sampled_from([*data.keys(), draw(keys)]))
    action = draw(st.sampled_from(["descend", "replace", "delete"]))
    if action == "delete" and key in data:
        del data[key]
    elif action == "descend" and isinstance(data.get(key), dict):
        data[key] = mutate(data[key], draw, depth + 1)
    else:
        data[key] = draw(values)
    return data


# 50 examples per property by default (about 10 s each on 2 loaded cores); raise it for a
# longer search: SUITE_HYPOTHESIS_EXAMPLES=1000 python -m pytest tests/test_bad_input.py
FAST = settings(
    max_examples=int(os.environ.get("SUITE_HYPOTHESIS_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FAST
@given(st.data())
def test_mutated_experiment_files(data):
    mutated = mutate(copy.deepcopy(BASE), data.draw)
    assert_rejected_or_valid(write(dump(mutated)))


@FAST
@given(values)
def test_arbitrary_yaml_documents(document):
    assert_rejected_or_valid(write(dump(document)))


@FAST
@given(st.data())
def test_hostile_yaml_text(data):
    lines = QUICKSTART.read_text().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    line = lines[index]
    fragment = data.draw(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20)))
    if ":" in line and data.draw(st.booleans()):
        lines[index] = line.partition(":")[0] + ": " + fragment  # a hostile value
    else:
        lines[index] = fragment  # a hostile line
    assert_rejected_or_valid(write("\n".join(lines) + "\n"))


@FAST
@given(
    st.lists(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), min_size=1, max_size=5),
    st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20), values.map(dump)),
)
def test_hostile_set_values(key_path, value):
    assignment = ".".join(key_path) + "=" + value
    assert_rejected_or_valid(QUICKSTART, [f"--set={assignment}"])


@pytest.mark.parametrize(
    "text",
    [
        BOMB,  # 10**9 values if expanded
        "a: &a [*a]\ntrainer: dqn",
        "trainer: !!python/object/apply:os.system ['touch /tmp/suite-pwned']",
        "seeds: 1000000000000\n" + QUICKSTART.read_text().replace("seeds: 3\n", ""),
    ],
)
def test_named_hostile_files(text):
    assert_rejected_or_valid(write(text))


@pytest.mark.parametrize(
    "assignment",
    [
        "task.env_kwargs=" + BOMB.replace("\n", ", ").join("{}"),
        "task.env_kwargs=&a {x: *a}",
        "arms.adam.q.lr=.nan",
        "arms.adam.q.optimizer=os:system",
        "budgets.smoke.seeds=[4294967296]",
    ],
)
def test_named_hostile_overrides(assignment):
    code, err = run_cli(["show", "quickstart", "--budget", "smoke", f"--set={assignment}"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "quickstart.yaml" in err, err


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "arms.adam.q.kwargs={betas: !!python/tuple [0.9, 0.9]}"],
        ["--set", "task.env_kwargs=&a {x: *a}"],
        ["--seeds", "100000000"],
    ],
)
def test_hostile_input_to_a_real_run_starts_nothing(tmp_path, args):
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "suite", "run", "quickstart", "--results", str(results), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not results.exists()


def test_checkpoints_load_with_weights_only(tmp_path):
    # A checkpoint.pt holding a pickled object (code on load) is refused by the runner's loader.
    import torch

    from suite.result import RunSpec
    from suite.run.context import RunContext

    hostile = {"x": subprocess.CompletedProcess(["true"], 0)}  # any non-tensor object
    torch.save({"state": hostile, "curves": {}, "elapsed_s": 0.0}, tmp_path / "checkpoint.pt")
    ctx = RunContext(RunSpec("e", "a", 0, "smoke", "dqn", {}, {}), tmp_path, "cpu")
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        ctx.load_checkpoint()
    ctx.close()


def test_custom_optimizer_module_is_imported_only_when_named():
    code = (
        "import sys\n"
        "from suite.cli import main\n"
        "main(['show', 'quickstart', '--budget', 'smoke'])\n"
        "assert 'tests.helpers' not in sys.modules\n"
        "main(['show', 'quickstart', '--budget', 'smoke',"
        " '--set=arms.adam.q.optimizer=tests.helpers:FailsAtStep',"
        " '--set=arms.adam.q.kwargs={}'])\n"
        "assert 'tests.helpers' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_no_eval_or_unsafe_yaml_in_the_engine():
    root = Path(__file__).resolve().parent.parent
    for path in [*root.glob("suite/*.py"), *root.glob("agents/*.py")]:
        text = path.read_text()
        for banned in ("eval(", "exec(", "yaml.load(", "yaml.unsafe_load", "Loader=yaml.Loader"):
            if banned == "yaml.load(" and "Loader=_Loader" in text:
                continue  # suite/config.py: yaml.load with its SafeLoader subclass
            assert banned not in text.replace("literal_eval(", ""), f"{path}: {banned}"


def teardown_module():
    print(f"\nbad inputs tried: {EXAMPLES['count']}")
