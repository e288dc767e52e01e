"""The SGD baseline's recorded procedure (issue 13): the sweep experiment's grid and the choice of
the best non-collapsed arm (gans/sgd_sweep.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

from gans.sgd_sweep import SWEEP, choose, set_lines, summarize
from suite.config import load_experiment


def run(arm, seed, is_, fid, collapsed=0.0, status="done", lr=(1e-3, 1e-2)):
    return SimpleNamespace(
        arm=arm,
        seed=seed,
        status=status,
        metrics={
            "eval/is_classifier": is_,
            "eval/fid_classifier": fid,
            "eval/collapsed": collapsed,
        },
        optimizers={"generator": {"lr": lr[0]}, "discriminator": {"lr": lr[1]}},
    )


def test_the_sweep_is_a_grid_of_five_rates_per_network_from_1e_4_to_1e_1():
    experiment = load_experiment(SWEEP, "quick")
    assert len(experiment.arms) == 25 and experiment.task.generator_steps == 3000
    for role in ("generator", "discriminator"):
        rates = sorted({arm[role].lr for arm in experiment.arms.values()})
        assert len(rates) == 5 and rates[0] == 1e-4 and rates[-1] == 1e-1
        assert {arm[role].optimizer for arm in experiment.arms.values()} == {"sgd"}
    assert experiment.arms["sgd_g3e-3_d2e-2"]["generator"].lr == 3e-3
    assert experiment.arms["sgd_g3e-3_d2e-2"]["discriminator"].lr == 2e-2


def test_the_baseline_is_the_best_arm_without_collapse_or_divergence():
    results = [
        # the highest IS, but one seed collapsed: not eligible
        run("sgd_a", 0, 6.0, 10.0),
        run("sgd_a", 1, 1.0, 90.0, collapsed=1.0),
        # one seed diverged: not eligible
        run("sgd_b", 0, 5.0, 12.0),
        run("sgd_b", 1, math.nan, math.nan, status="diverged"),
        run("sgd_c", 0, 3.0, 20.0, lr=(5e-4, 2e-2)),
        run("sgd_c", 1, 3.5, 18.0, lr=(5e-4, 2e-2)),
        run("sgd_d", 0, 3.25, 30.0),
        run("sgd_d", 1, 3.0, 30.0),
    ]
    summaries = {s.arm: s for s in summarize(results)}
    assert summaries["sgd_a"].collapsed == 1 and not summaries["sgd_a"].eligible
    assert summaries["sgd_b"].finished == 1 and not summaries["sgd_b"].eligible
    assert summaries["sgd_c"].mean_is == 3.25 and summaries["sgd_c"].eligible
    best = choose(list(summaries.values()))
    assert best.arm == "sgd_c"  # IS 3.25 beats 3.125
    assert set_lines(best) == [
        "--set arms.sgd_both.generator.lr=0.0005",
        "--set arms.sgd_both.discriminator.lr=0.02",
    ]
    # Equal mean IS: the lower FID wins.
    tie = [run("sgd_x", 0, 3.0, 20.0), run("sgd_y", 0, 3.0, 15.0)]
    assert choose(summarize(tie)).arm == "sgd_y"


def test_no_baseline_when_every_setting_collapsed():
    results = [run("sgd_a", 0, 1.0, 90.0, collapsed=1.0), run("sgd_b", 0, 1.0, 95.0, 1.0)]
    assert choose(summarize(results)) is None
