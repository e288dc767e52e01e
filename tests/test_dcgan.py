"""DCGAN through the CLI at smoke budget with non-default specs on both roles, plus direct runs:
same seed same losses, resume equals an uninterrupted run, collapse and divergence recorded."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from torch import nn

from gans import dcgan
from gans.data import ImageData, ImageDataConfig
from gans.scores import FeatureNetwork, Scorer
from suite.cli import main
from suite.optimizers import OptimizerSpec
from suite.result import RunSpec
from suite.run.context import Diverged, RunContext
from suite.schema import from_dict
from tests.helpers import needs_shared

pytestmark = pytest.mark.usefixtures("one_thread")

GENERATOR = {
    "optimizer": "adamw",
    "lr": 1.0e-3,
    "kwargs": {"betas": [0.0, 0.99], "weight_decay": 0.01},
    "schedule": {"name": "exponential", "kwargs": {"gamma": 0.5}},
    "clip_grad_norm": 1.0,
}
DISCRIMINATOR = {
    "optimizer": "rmsprop",
    "lr": 4.0e-4,
    "kwargs": {"alpha": 0.9},
    "schedule": {"name": "step", "kwargs": {"step_size": 4, "gamma": 0.1}},
}


@needs_shared
def test_smoke_run_through_the_cli_keeps_each_roles_spec(tmp_path, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "suite-cache"  # shared with test_image_data
    code = main(
        [
            "run",
            "dcgan-cifar10-adam0-rmsprop-vs-sgd",
            "--budget", "smoke",
            "--workers", "1",
            "--arms", "adam0_rmsprop",
            "--results", str(tmp_path),
            "--no-report",
            "--set", f"arms.adam0_rmsprop.generator={json.dumps(GENERATOR)}",
            "--set", f"arms.adam0_rmsprop.discriminator={json.dumps(DISCRIMINATOR)}",
            "--set", "task.discriminator_steps=2",
            "--set", f"task.data.cache_dir={cache}",
        ]
    )  # fmt: skip
    assert code == 0
    [path] = tmp_path.rglob("result.json")
    result = json.loads(path.read_text())
    assert result["status"] == "done", result["error"]
    details, steps = result["details"], 6  # the smoke budget's generator_steps
    assert details["generator_optimizer"] == "AdamW"
    assert details["generator_optimizer_steps"] == steps
    assert details["generator_lr_final"] == pytest.approx(1e-3 * 0.5**steps)
    assert details["discriminator_optimizer"] == "RMSprop"
    assert details["discriminator_optimizer_steps"] == 2 * steps
    assert details["discriminator_lr_final"] == pytest.approx(4e-4 * 0.1**3)  # 12 // 4 decays
    # Scores at intervals (steps 3 and 6), labeled as classifier scores, with their settings.
    assert [s for s, _ in result["curves"]["eval/is_classifier"]] == [3, 6]
    assert set(result["metrics"]) >= {"eval/is_classifier", "eval/fid_classifier"}
    assert result["metrics"]["eval/collapsed"] in (0.0, 1.0)
    scores = details["scores"]
    assert "not Inception" in scores["is_name"] and scores["feature_network_tiny"] is True
    assert scores["samples"] == 128 and scores["reference_split"] == "train"
    # Issue 13: a class-balanced reference sample (the first 256 of the class-sorted archive's
    # 512 would hold classes 0-4), its real-data IS, the FID floor and the calibration ladder.
    counts = scores["reference_class_counts"]
    assert len(counts) == 10 and sum(counts.values()) == 256
    assert set(counts.values()) <= {25, 26}
    assert (
        scores["real_fid_floor"]["split"] == "test" and scores["real_fid_floor"]["samples"] == 128
    )
    assert set(scores["calibration"]["spearman"]) == {"noise", "blur", "mode_drop"}
    assert "10 classes" in details["reference_set"] and "FID floor" in details["reference_set"]
    assert "Spearman" in details["score_calibration"]
    assert (path.parent / result["artifacts"]["samples"]).stat().st_size > 0


def toy_data(count: int = 64) -> ImageData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 32, 32), generator=generator, dtype=torch.uint8)
    labels = torch.arange(count) % 2
    return ImageData(images, labels, images[:32], labels[:32], ["a", "b"], "toy", "toy")


def toy_config(**changes) -> dcgan.Config:
    config = dcgan.Config(
        data=ImageDataConfig(source="folder", path="unused"),
        generator_width=4,
        discriminator_width=4,
        latent_dim=8,
        batch_size=8,
        generator_steps=4,
        eval_every=2,
        log_every=1,
        eval_samples=32,
        reference_samples=32,
        classifier="tiny",
        scores="classifier",
    )
    return replace(config, **changes)


def mean_colour_scorer(data: ImageData) -> Scorer:
    """A cheap stand-in feature network: the mean colour of each image."""

    def extract(images):
        features = images.float().mean(dim=(2, 3))
        return features[:, :2], features

    network = FeatureNetwork("classifier", "mean colour, not Inception", extract, "none")
    return Scorer(network, data.train, "train", "toy")


def direct_run(tmp_path: Path, config: dcgan.Config, specs: dict, name: str, monkeypatch):
    monkeypatch.setattr(dcgan, "load_image_data", lambda config, log: toy_data())
    monkeypatch.setattr(dcgan, "build_scorer", lambda *args: mean_colour_scorer(toy_data()))
    run = RunSpec("toy", "arm", 0, "smoke", "dcgan", asdict(config), specs)
    run_dir = tmp_path / name
    run_dir.mkdir(exist_ok=True)
    built = {role: from_dict(OptimizerSpec, spec) for role, spec in specs.items()}
    ctx = RunContext(run, run_dir, "cpu")
    try:
        return dcgan.train(config, built, ctx)
    finally:
        ctx.close()


SPECS = {"generator": GENERATOR, "discriminator": DISCRIMINATOR}


def test_same_seed_identical_losses_and_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    config = toy_config()
    first = direct_run(tmp_path, config, SPECS, "a", monkeypatch)
    second = direct_run(tmp_path, config, SPECS, "b", monkeypatch)
    assert first.curves["train/loss_generator"] == second.curves["train/loss_generator"]
    assert first.curves["train/loss_discriminator"] == second.curves["train/loss_discriminator"]
    assert first.metrics == second.metrics
    # Stop after the step-2 checkpoint, then continue the same run directory to step 4.
    direct_run(tmp_path, replace(config, generator_steps=2), SPECS, "c", monkeypatch)
    resumed = direct_run(tmp_path, config, SPECS, "c", monkeypatch)
    assert resumed.curves["train/loss_generator"] == first.curves["train/loss_generator"]
    assert resumed.details["generator_optimizer_steps"] == 4
    assert resumed.details["discriminator_lr_final"] == first.details["discriminator_lr_final"]


def test_nan_parameters_are_a_divergence(tmp_path, monkeypatch):
    specs = {**SPECS, "generator": {"optimizer": "tests.helpers:NaNAfterSteps", "lr": 0.01}}
    with pytest.raises(Diverged):
        direct_run(tmp_path, toy_config(), specs, "nan", monkeypatch)


def test_constant_generator_is_recorded_as_collapsed():
    config = toy_config()
    gan = dcgan.build(config, 3, "cpu")
    last = [m for m in gan.generator.modules() if isinstance(m, nn.ConvTranspose2d)][-1]
    nn.init.zeros_(last.weight)  # tanh(0): every pixel of every image is 0
    data = toy_data()
    scorer = mean_colour_scorer(data)
    metrics = dcgan.evaluate(gan, scorer, gan.noise(32))
    assert metrics["eval/collapsed"] == 1.0
    assert metrics["eval/fid_classifier"] > 1.0  # real vs real is 0


@pytest.mark.parametrize("size", [28, 32, 64])
def test_network_shapes(size):
    generator = dcgan.Generator(16, 4, 1, size)
    discriminator = dcgan.Discriminator(4, 1, size)
    images = generator(torch.randn(2, 16, 1, 1))
    assert images.shape == (2, 1, size, size)
    assert discriminator(images).shape == (2,)


def test_losses_by_hand():
    zero = torch.zeros(4)
    # BCE at logit 0 is log 2 for either target.
    assert dcgan.discriminator_loss(zero, zero, "bce").item() == pytest.approx(2 * 0.6931472)
    assert dcgan.generator_loss(zero, "bce").item() == pytest.approx(0.6931472)
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    # hinge: mean(relu(1 - real)) + mean(relu(1 + fake)) = (0 + 0.5)/2 + (0 + 1)/2 = 0.75
    assert dcgan.discriminator_loss(real, fake, "hinge").item() == pytest.approx(0.75)
    assert dcgan.generator_loss(fake, "hinge").item() == pytest.approx(1.5)
