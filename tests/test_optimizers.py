"""The optimizer table, specs, schedules and RoleOptimizer, checked by hand."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from suite.errors import ConfigError
from suite.optimizers import (
    OPTIMIZERS,
    SCHEDULES,
    OptimizerSpec,
    build_role_optimizer,
    check_roles,
    validate_spec,
)
from suite.schema import from_dict


def spec(**kwargs) -> OptimizerSpec:
    return from_dict(OptimizerSpec, kwargs)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def loss_of(model: nn.Module) -> torch.Tensor:
    x = torch.linspace(-1, 1, 15).reshape(5, 3)
    return model(x).pow(2).mean()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_constructs_and_steps(name):
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = build_role_optimizer(
        "model", spec(optimizer=name, lr=1e-2), model.parameters(), [model]
    )
    for _ in range(3):
        optimizer.zero_grad()
        loss_of(model).backward()
        optimizer.step()
    moved = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=False)]
    assert all(moved), f"{name} left a parameter unchanged"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert optimizer.steps == 3


def test_sgd_momentum_update_by_hand():
    # f(w) = w^2 / 2, grad = w. SGD momentum 0.9, lr 0.1, from w = 1:
    # step 1: buf = 1,                w = 1 - 0.1 * 1      = 0.9
    # step 2: buf = 0.9*1 + 0.9 = 1.8, w = 0.9 - 0.1 * 1.8 = 0.72
    # step 3: buf = 0.9*1.8 + 0.72 = 2.34, w = 0.72 - 0.234 = 0.486
    w = nn.Parameter(torch.tensor([1.0]))
    optimizer = build_role_optimizer(
        "w", spec(optimizer="sgd", lr=0.1, kwargs={"momentum": 0.9}), [w]
    )
    expected = [0.9, 0.72, 0.486]
    for value in expected:
        optimizer.zero_grad()
        (w.pow(2).sum() / 2).backward()
        optimizer.step()
        assert w.item() == pytest.approx(value, abs=1e-6)


def test_clipping_happens_before_the_step():
    # grad = 10 (w^2/2 at w = 10); clip to global norm 1 -> grad 1; SGD lr 0.5 -> w = 9.5.
    w = nn.Parameter(torch.tensor([10.0]))
    optimizer = build_role_optimizer("w", spec(optimizer="sgd", lr=0.5, clip_grad_norm=1.0), [w])
    (w.pow(2).sum() / 2).backward()
    optimizer.step()
    assert w.item() == pytest.approx(9.5)
    assert optimizer.last_grad_norm == pytest.approx(10.0)


def lrs_over(schedule: dict, steps: int, lr: float = 1.0) -> list[float]:
    w = nn.Parameter(torch.zeros(1))
    optimizer = build_role_optimizer("w", spec(optimizer="sgd", lr=lr, schedule=schedule), [w])
    seen = []
    for _ in range(steps):
        seen.append(optimizer.lr)
        w.grad = torch.zeros(1)
        optimizer.step()
    return seen


def test_step_schedule():
    # StepLR(step_size=30, gamma=0.1): lr * 0.1 ** (t // 30)
    lrs = lrs_over({"name": "step", "kwargs": {"step_size": 30, "gamma": 0.1}}, 65)
    assert lrs[29] == pytest.approx(1.0) and lrs[30] == pytest.approx(0.1)
    assert lrs[64] == pytest.approx(0.01)


def test_multistep_schedule():
    lrs = lrs_over({"name": "multistep", "kwargs": {"milestones": [30, 80], "gamma": 0.5}}, 81)
    assert (lrs[29], lrs[30], lrs[79], lrs[80]) == pytest.approx((1.0, 0.5, 0.5, 0.25))


def test_exponential_and_linear_schedules():
    lrs = lrs_over({"name": "exponential", "kwargs": {"gamma": 0.9}}, 4)
    assert lrs == pytest.approx([1.0, 0.9, 0.81, 0.729])
    # LinearLR(start 1, end 0.1, 80 iters): factor 1 - 0.9 * t / 80 until t = 80.
    lrs = lrs_over(
        {"name": "linear", "kwargs": {"start_factor": 1.0, "end_factor": 0.1, "total_iters": 80}},
        100,
    )
    assert lrs[40] == pytest.approx(1 - 0.9 * 40 / 80)
    assert lrs[90] == pytest.approx(0.1)


def test_cosine_schedule():
    # CosineAnnealingLR(T_max=20, eta_min=0.05): eta_min + (1 - eta_min)(1 + cos(pi t / 20)) / 2
    lrs = lrs_over({"name": "cosine", "kwargs": {"T_max": 20, "eta_min": 0.05}}, 21)
    for t in (0, 5, 10, 20):
        assert lrs[t] == pytest.approx(0.05 + 0.95 * (1 + math.cos(math.pi * t / 20)) / 2)


def test_cyclic_schedule():
    # CyclicLR(base 0.1, max 0.2, up 30, down 10), triangular: up linearly for 30 steps.
    lrs = lrs_over(
        {
            "name": "cyclic",
            "kwargs": {
                "base_lr": 0.1,
                "max_lr": 0.2,
                "step_size_up": 30,
                "step_size_down": 10,
                "cycle_momentum": False,
            },
        },
        45,
    )
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[15] == pytest.approx(0.15)
    assert lrs[30] == pytest.approx(0.2)
    assert lrs[35] == pytest.approx(0.15)
    assert lrs[40] == pytest.approx(0.1)


def test_onecycle_schedule():
    # OneCycleLR(max 0.1, pct_start 0.5, 120 steps, div 10, final_div 10), cosine annealing:
    # starts at 0.1/10 = 0.01, peaks at 0.1 at step 59 (= 0.5 * 120 - 1), ends at 0.01/10.
    lrs = lrs_over(
        {
            "name": "onecycle",
            "kwargs": {
                "max_lr": 0.1,
                "pct_start": 0.5,
                "total_steps": 120,
                "div_factor": 10,
                "final_div_factor": 10,
            },
        },
        120,
    )
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[59] == pytest.approx(0.1)
    assert lrs[119] == pytest.approx(0.001)


def test_warmup_cosine_schedule():
    # warm-up 4 steps: lr (t+1)/4; then cosine over the remaining 8 steps to eta_min 0.
    lrs = lrs_over({"name": "warmup_cosine", "kwargs": {"warmup_steps": 4, "total_steps": 12}}, 13)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[8] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert lrs[12] == pytest.approx(0.0, abs=1e-12)


def test_schedule_table_is_complete():
    assert set(SCHEDULES) == {
        "step",
        "multistep",
        "exponential",
        "linear",
        "cyclic",
        "onecycle",
        "cosine",
        "warmup_cosine",
    }


def through_bytes(state: dict) -> dict:
    """Serialize as a checkpoint does (load_state_dict alone would share state tensors)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_state_dict_round_trip_continues_the_schedule():
    def make():
        model = tiny_model()
        return model, build_role_optimizer(
            "model",
            spec(
                optimizer="adam",
                lr=0.1,
                schedule={"name": "step", "kwargs": {"step_size": 2, "gamma": 0.5}},
                lookahead={"k": 2, "alpha": 0.5},
            ),
            model.parameters(),
            [model],
        )

    model, optimizer = make()
    for _ in range(3):
        optimizer.zero_grad()
        loss_of(model).backward()
        optimizer.step()
    copy_model, copy_optimizer = make()
    copy_model.load_state_dict(model.state_dict())
    copy_optimizer.load_state_dict(through_bytes(optimizer.state_dict()))
    assert copy_optimizer.lr == optimizer.lr == pytest.approx(0.05)
    for m, o in ((model, optimizer), (copy_model, copy_optimizer)):
        o.zero_grad()
        loss_of(m).backward()
        o.step()
    for a, b in zip(model.parameters(), copy_model.parameters(), strict=False):
        assert torch.equal(a, b)


def test_lookahead_with_schedule_moves_lr():
    lrs = []
    w = nn.Parameter(torch.zeros(1))
    optimizer = build_role_optimizer(
        "w",
        spec(
            optimizer="sgd",
            lr=1.0,
            lookahead={"k": 3, "alpha": 0.5},
            schedule={"name": "exponential", "kwargs": {"gamma": 0.5}},
        ),
        [w],
    )
    for _ in range(3):
        lrs.append(optimizer.lr)
        w.grad = torch.ones(1)
        optimizer.step()
    assert lrs == pytest.approx([1.0, 0.5, 0.25])


def test_custom_optimizer_class_by_import_path():
    w = nn.Parameter(torch.tensor([1.0]))
    optimizer = build_role_optimizer("w", spec(optimizer="torch.optim:SGD", lr=0.5), [w])
    (w.pow(2).sum() / 2).backward()
    optimizer.step()
    assert w.item() == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"optimizer": "adamm", "lr": 1e-3}, "unknown optimizer 'adamm'"),
        ({"optimizer": "adam", "lr": 1e-3, "kwargs": {"beta1": 0.5}}, "unknown argument 'beta1'"),
        ({"optimizer": "adam", "lr": -1.0}, "lr"),
        ({"optimizer": "adam", "lr": 1e-3, "kwargs": {"betas": [1.5, 0.9]}}, "rejects"),
        ({"optimizer": "adam", "lr": 1e-3, "schedule": {"name": "cosin"}}, "unknown schedule"),
        (
            {
                "optimizer": "adam",
                "lr": 1e-3,
                "schedule": {"name": "cosine", "kwargs": {"tmax": 3}},
            },
            "unknown argument 'tmax'",
        ),
        ({"optimizer": "adam", "lr": 1e-3, "clip_grad_norm": 0}, "must be > 0"),
        ({"optimizer": "no.such.module:Opt", "lr": 1e-3}, "cannot import"),
        ({"optimizer": "torch.nn:Linear", "lr": 1e-3}, "not a torch.optim.Optimizer"),
    ],
)
def test_bad_specs_are_config_errors(settings, fragment):
    with pytest.raises(ConfigError) as info:
        validate_spec(spec(**settings))
    assert fragment in str(info.value)


def test_unknown_optimizer_lists_choices():
    with pytest.raises(ConfigError) as info:
        validate_spec(spec(optimizer="adamm", lr=1e-3))
    assert "rmsprop_deepmind" in str(info.value) and "kfac" in str(info.value)


def test_check_roles_disjoint_and_covering():
    model = tiny_model()
    first, second = list(model[0].parameters()), list(model[2].parameters())
    check_roles({"a": first, "b": second}, model.parameters())
    with pytest.raises(AssertionError, match="in no role"):
        check_roles({"a": first}, model.parameters())
    with pytest.raises(AssertionError, match="in roles"):
        check_roles({"a": first, "b": first + second}, model.parameters())


def test_schedule_that_fails_only_when_stepped_is_caught_before_training():
    # StepLR(step_size=0) constructs fine and divides by zero at its first step.
    with pytest.raises(ConfigError) as info:
        validate_spec(
            spec(optimizer="adam", lr=1e-3, schedule={"name": "step", "kwargs": {"step_size": 0}})
        )
    assert "schedule 'step' rejects" in str(info.value)
    assert info.value.key == "schedule.kwargs"


def test_a_users_optimizer_is_not_stepped_during_validation():
    # tests.helpers:FailsAtStep raises at its first step; validation must only construct it.
    validate_spec(spec(optimizer="tests.helpers:FailsAtStep", lr=1e-2, kwargs={"fail_at": 1}))
    with pytest.raises(ConfigError, match="schedule 'step' rejects"):
        validate_spec(
            spec(
                optimizer="tests.helpers:FailsAtStep",
                lr=1e-2,
                schedule={"name": "step", "kwargs": {"step_size": 0}},
            )
        )


@pytest.mark.parametrize(
    ("optimizer", "kwargs", "typo", "valid"),
    [
        # pytorch-optimizer's classes take **kwargs and ignore what they do not know.
        ("adabelief", {"rectfy": True}, "rectfy", "rectify"),
        ("pytorch_optimizer:AdaBelief", {"rectfy": True}, "rectfy", "rectify"),
        ("pytorch_optimizer:Lamb", {"weight_decay_": 0.01}, "weight_decay_", "weight_decay"),
        ("lamb", {"weight_decay_": 0.01}, "weight_decay_", "weight_decay"),
        ("kfac", {"inner": "adam"}, "inner", "kl_clip"),  # the natural K-FAC has no Adam inside
    ],
)
def test_kwargs_are_checked_even_for_classes_taking_var_kwargs(optimizer, kwargs, typo, valid):
    with pytest.raises(ConfigError) as info:
        validate_spec(spec(optimizer=optimizer, lr=1e-3, kwargs=kwargs))
    assert info.value.key == f"kwargs.{typo}"
    assert valid in info.value.choices


def test_kwargs_of_a_var_kwargs_class_include_its_bases_parameters():
    # A subclass passing **kwargs on to torch.optim.SGD accepts SGD's names, and only those.
    validate_spec(
        spec(optimizer="tests.test_optimizers:ForwardingSGD", lr=1e-2, kwargs={"momentum": 0.5})
    )
    with pytest.raises(ConfigError, match="unknown argument 'momentun'"):
        validate_spec(
            spec(optimizer="tests.test_optimizers:ForwardingSGD", lr=1e-2, kwargs={"momentun": 0.5})
        )


class ForwardingSGD(torch.optim.SGD):
    """A user's class whose signature is only **kwargs (forwarded to SGD)."""

    def __init__(self, params, lr=1e-2, **kwargs):
        super().__init__(params, lr=lr, **kwargs)


@pytest.mark.parametrize(
    ("override", "name"),
    [
        ("arms.adam.q={optimizer: adabelief, lr: 0.001, kwargs: {rectfy: true}}", "rectfy"),
        (
            "arms.adam.q={optimizer: lamb, lr: 0.001, kwargs: {weight_decay_: 0.01}}",
            "weight_decay_",
        ),
    ],
)
def test_an_optimizer_kwarg_typo_is_exit_2_with_the_valid_names(override, name, tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "suite",
            "run",
            "quickstart",
            "--budget",
            "smoke",
            "--results",
            str(tmp_path / "results"),
            "--set",
            override,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert f"arms.adam.q.kwargs.{name}: unknown argument {name!r}" in done.stderr
    assert "(valid: " in done.stderr and "weight_decay" in done.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.json"))


def test_list_optimizers_shows_sources_defaults_differences_and_lookahead(capsys):
    import json

    from suite.cli import main
    from suite.optimizers import WRAPPERS

    assert main(["list", "optimizers", "--json"]) == 0
    rows = {row["optimizer"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(OPTIMIZERS) | {f"{name} (wrapper)" for name in WRAPPERS}
    for name, row in OPTIMIZERS.items():
        assert rows[name]["source"] == row.source and rows[name]["differs"] == (row.note or "-")
    assert "Zhang et al. 2019" in rows["lookahead (wrapper)"]["source"]
    assert "loss_scale: 'float' = 1.0" in rows["rmsprop_deepmind"]["defaults"]
    assert "relative-step CAP" in rows["adafactor"]["differs"]
    assert main(["list", "optimizers"]) == 0
    text = capsys.readouterr().out
    assert "lookahead (wrapper)" in text and "Algorithm 2" in text
    # Long sources and notes wrap instead of being cut: every word of a note is printed.
    assert all(word in text for word in OPTIMIZERS["adafactor"].note.split()[:12])


def test_list_specs_shows_every_named_spec_with_its_citation(capsys):
    import json

    from suite.cli import main
    from suite.config import OPTIMIZER_SET_DIR

    assert main(["list", "specs", "--json"]) == 0
    rows = {row["spec"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {p.stem for p in OPTIMIZER_SET_DIR.glob("*.yaml")}
    assert rows["nature-dqn-rmsprop"]["optimizer"] == "rmsprop_deepmind"
    assert "Mnih et al. 2015" in rows["nature-dqn-rmsprop"]["source"]
    assert rows["kfac-critic"]["kwargs"]["kl_clip"] == 5.0e-4
    assert all(row["source"] for row in rows.values())  # every spec cites its source
    assert main(["list", "specs"]) == 0
    assert "dcgan-adam" in capsys.readouterr().out
