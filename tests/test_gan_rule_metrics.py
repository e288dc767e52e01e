"""The DCGAN's GAN-rule statistics (gans/dcgan.py ``early_metrics``): early loss oscillation and
the discriminator's early accuracy, worked out by hand on constructed losses and logits; what the
training loop records is the same formula on the losses it saw, resumes exactly inside the early
window, and is left out of runs too short to have one. The judge's view of them (sign, scale,
bounds) is suite/judge/metrics.py."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from gans import dcgan
from suite.judge.metrics import metric_info
from suite.report.render import metric_meanings
from suite.run.context import RunContext
from tests.helpers import needs_shared
from tests.test_dcgan import SPECS, direct_run, toy_config
from tests.test_stacked_runs import alone, seed_runs, together

pytestmark = pytest.mark.usefixtures("one_thread")

CHANGE_D, CHANGE_G, ACCURACY = dcgan.EARLY_METRICS


@pytest.mark.parametrize(
    ("steps", "window"),
    [(6, 0), (8, 0), (45, 0), (46, 10), (50, 10), (51, 11), (1001, 201), (3000, 600)],
)
def test_early_window_is_the_first_fifth_rounded_up_and_off_below_ten_steps(steps, window):
    # ceil(0.2 * steps): 46 -> ceil(9.2) = 10, 51 -> ceil(10.2) = 11; 45 -> 9 < 10: off.
    assert dcgan.early_window(steps) == window


def test_discriminator_accuracy_by_hand():
    real = torch.tensor([2.0, -1.0, 0.0, 0.1])  # right where > 0: 2.0 and 0.1
    fake = torch.tensor([-3.0, 0.5, -0.2, 0.0])  # right where < 0: -3.0 and -0.2
    assert dcgan.discriminator_accuracy(real, fake).item() == pytest.approx(4 / 8)
    # A stack's (S, B) logits: one accuracy per seed.
    stacked = dcgan.discriminator_accuracy(
        torch.stack([real, torch.ones(4)]), torch.stack([fake, -torch.ones(4)])
    )
    assert stacked.tolist() == pytest.approx([0.5, 1.0])


def run_window(d_losses, g_losses, accuracies, seeds: int = 1) -> torch.Tensor:
    early = torch.zeros(seeds, 5)
    for step, losses in enumerate(zip(d_losses, g_losses, accuracies, strict=True), start=1):
        d, g, a = (torch.as_tensor(x, dtype=torch.float32) for x in losses)
        dcgan.early_update(early, step, torch.stack([d, g], dim=-1), a)
    return early


def test_early_statistics_by_hand():
    # W = 4 steps. D: 1.0, 0.5, 1.5, 1.0: |changes| 0.5 + 1.0 + 0.5 = 2.0 over 3 -> 2/3.
    # G: 2, 4, 1, 1: 2 + 3 + 0 = 5 over 3 -> 5/3. Accuracy: (1 + 0.5 + 0.75 + 0.25) / 4 = 0.625.
    early = run_window([1.0, 0.5, 1.5, 1.0], [2.0, 4.0, 1.0, 1.0], [1.0, 0.5, 0.75, 0.25])
    metrics = dcgan.early_metrics(early[0].tolist(), window=4)
    assert metrics == pytest.approx({CHANGE_D: 2 / 3, CHANGE_G: 5 / 3, ACCURACY: 0.625})


def test_a_trend_counts_once_and_an_oscillation_every_step():
    # A loss falling steadily by 1.0 over 5 steps changes by 0.25 a step; one swinging by the
    # same 1.0 every step changes by 1.0 a step, though both span the same range.
    trend = run_window([1.0, 0.75, 0.5, 0.25, 0.0], [0.0] * 5, [1.0] * 5)
    swing = run_window([1.0, 0.0, 1.0, 0.0, 1.0], [0.0] * 5, [1.0] * 5)
    assert dcgan.early_metrics(trend[0].tolist(), 5)[CHANGE_D] == pytest.approx(0.25)
    assert dcgan.early_metrics(swing[0].tolist(), 5)[CHANGE_D] == pytest.approx(1.0)


def test_stacked_seeds_keep_their_own_sums():
    d = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([1.0, 3.0])]
    g = [torch.tensor([0.0, 2.0])] * 3
    a = [torch.tensor([1.0, 0.0])] * 3
    early = run_window(d, g, a, seeds=2)
    first, second = (dcgan.early_metrics(row, 3) for row in early.tolist())
    assert first == pytest.approx({CHANGE_D: 1.0, CHANGE_G: 0.0, ACCURACY: 1.0})
    assert second == pytest.approx({CHANGE_D: 1.5, CHANGE_G: 0.0, ACCURACY: 0.0})


def test_no_early_statistics_without_a_window_or_with_unknown_sums():
    assert dcgan.early_metrics([1.0, 1.0, 1.0, 0.0, 0.0], window=0) == {}
    assert dcgan.early_metrics([math.nan] * 5, window=10) == {}


def test_the_judge_knows_their_sign_scale_and_bounds_and_the_report_explains_them():
    change, accuracy = metric_info(CHANGE_G), metric_info(ACCURACY)
    assert (change.sign, change.low, change.high) == ("positive", 0.0, None)
    assert change.scale == "gan-loss-change-per-step" == metric_info(CHANGE_D).scale
    assert (accuracy.scale, accuracy.low, accuracy.high) == ("discriminator-accuracy", 0.0, 1.0)
    collapsed = metric_info("eval/collapsed")
    assert (collapsed.sign, collapsed.low, collapsed.high) == ("signed", 0.0, 1.0)
    lines = metric_meanings([*dcgan.EARLY_METRICS, "eval/collapsed"])
    assert len(lines) == 5 and all("early" in line for line in lines[1:4])


# --- what the training loop records ----------------------------------------------------------


def spy_on_steps(monkeypatch) -> list[tuple[float, float, float]]:
    """Record every compute_step's (D loss, G loss, D accuracy) as the loop sees them."""
    seen = []
    original = dcgan.compute_step

    def spy(*args, **kwargs):
        loss_d, loss_g = original(*args, **kwargs)
        stats = args[6] if len(args) > 6 else kwargs["stats"]
        seen.append((loss_d.item(), loss_g.item(), stats["discriminator_accuracy"].item()))
        return loss_d, loss_g

    monkeypatch.setattr(dcgan, "compute_step", spy)
    return seen


def mean_change(values: tuple[float, ...]) -> float:
    return sum(abs(b - a) for a, b in pairwise(values)) / (len(values) - 1)


def by_hand(seen: list[tuple[float, float, float]], window: int) -> dict[str, float]:
    d, g, a = zip(*seen[:window], strict=True)
    return {CHANGE_D: mean_change(d), CHANGE_G: mean_change(g), ACCURACY: sum(a) / window}


def test_a_run_records_the_statistics_of_its_first_fifth(tmp_path, monkeypatch):
    config = toy_config(generator_steps=50, eval_every=25, log_every=10)
    seen = spy_on_steps(monkeypatch)
    result = direct_run(tmp_path, config, SPECS, "run", monkeypatch)
    assert len(seen) == 50 and dcgan.early_window(50) == 10
    recorded = {key: result.metrics[key] for key in dcgan.EARLY_METRICS}
    assert recorded == pytest.approx(by_hand(seen, 10), rel=1e-5)
    assert 0.0 <= recorded[ACCURACY] <= 1.0
    # Summary numbers, not curves: the loss curves are what they were.
    assert not any(name in result.curves for name in dcgan.EARLY_METRICS)


def test_a_short_run_records_only_what_it_always_recorded(tmp_path, monkeypatch):
    result = direct_run(tmp_path, toy_config(), SPECS, "short", monkeypatch)  # 4 steps
    scores = {"eval/is_classifier", "eval/fid_classifier", "eval/classes_classifier"}
    assert set(result.metrics) == {"eval/collapsed", *scores}


def test_a_run_interrupted_inside_the_window_resumes_to_the_same_statistics(tmp_path, monkeypatch):
    # Window of 10 steps, checkpoints every 4: the step-4 and step-8 checkpoints hold partial
    # early sums (and the previous step's losses, for the next change).
    config = toy_config(generator_steps=50, eval_every=4, log_every=5)
    expected = direct_run(tmp_path, config, SPECS, "alone", monkeypatch)
    original = RunContext.progress

    def interrupt(self, step, total):
        if step >= 6 and (self.run_dir / "checkpoint.pt").exists():
            raise KeyboardInterrupt
        original(self, step, total)

    with monkeypatch.context() as patch:
        patch.setattr(RunContext, "progress", interrupt)
        with pytest.raises(KeyboardInterrupt):
            direct_run(tmp_path, config, SPECS, "resumed", monkeypatch)
    torch.manual_seed(987_654)  # a fresh process's generators: nothing may rely on them
    resumed = direct_run(tmp_path, config, SPECS, "resumed", monkeypatch)
    assert "resumed from checkpoint.pt" in (tmp_path / "resumed" / "log.txt").read_text()
    assert resumed.metrics == expected.metrics  # bit for bit, early statistics included
    assert set(dcgan.EARLY_METRICS) <= set(resumed.metrics)


# --- a stack of seeds records what its lone runs record ---------------------------------------


@needs_shared
def test_stacked_seeds_record_the_early_statistics_of_their_lone_runs(tmp_path):
    # The proxy file's smoke budget: 50 generator steps, an early window of 10.
    runs = seed_runs("dcgan-cifar10-cpu-proxy", "adam0_rmsprop", [], seeds=2)
    expected = alone(runs, tmp_path / "alone")
    got = together(runs, tmp_path / "stacked", "grouped")
    for g, e in zip(got, expected, strict=True):
        assert g["status"] == e["status"] == "done"
        assert set(dcgan.EARLY_METRICS) <= set(g["metrics"]) == set(e["metrics"])
        # To float tolerance (a grouped convolution sums in another order), as every metric
        # (tests/test_stacked_runs.py); the loss curves of this 50-step run drift further.
        for key in dcgan.EARLY_METRICS:
            assert g["metrics"][key] == pytest.approx(e["metrics"][key], rel=2e-3), key
    assert got[0]["metrics"][CHANGE_G] != got[1]["metrics"][CHANGE_G]
