"""The trainer Protocols declare every hook the run machinery looks up (issue 23): a lookup of
an undeclared name is an error, the stacks' hooks have the declared signatures, and nothing in
suite/ reaches into a trainer module by ``getattr`` outside suite/trainers.py ``hook``."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from suite.trainers import OPTIONAL_HOOKS, STACKED, StackTrainer, Trainer, hook

SUITE = Path(__file__).resolve().parents[1] / "suite"


def test_an_undeclared_hook_is_an_error_and_a_missing_one_is_none():
    import vae.stacked

    with pytest.raises(KeyError, match="not an optional hook of StackTrainer"):
        hook(vae.stacked, StackTrainer, "resume_later")
    assert hook(vae.stacked, StackTrainer, "IMPLEMENTATION") is None  # the VAE stack has none
    assert callable(hook(importlib.import_module("agents.stacked"), StackTrainer, "resume_method"))


@pytest.mark.parametrize("trainer", sorted(STACKED))
def test_stack_hooks_have_the_declared_parameters(trainer):
    module = importlib.import_module(STACKED[trainer][0])
    for name in OPTIONAL_HOOKS[StackTrainer]:
        found, declared = getattr(module, name, None), getattr(StackTrainer, name, None)
        if callable(found) and callable(declared):
            ours = list(inspect.signature(found).parameters)
            assert ours == list(inspect.signature(declared).parameters)[1:], (trainer, name)


def test_the_example_trainers_hook_has_the_declared_parameters():
    example = importlib.import_module("examples.tiny_classifier")
    declared = list(inspect.signature(Trainer.recorded_metrics).parameters)[1:]
    assert list(inspect.signature(example.recorded_metrics).parameters) == declared


def test_no_module_outside_trainers_looks_up_a_hook_by_getattr():
    names = "|".join(n for hooks in OPTIONAL_HOOKS.values() for n in hooks)
    pattern = re.compile(rf"getattr\([^)]*[\"']({names})[\"']")
    found = [
        f"{path.relative_to(SUITE)}:{number}"
        for path in SUITE.rglob("*.py")
        if path.name != "trainers.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
